//! Benchmark: reconciliation core to core. Two nodes hold the same `N` keys, then
//! `D` differences are made (updates, new keys and deletes on either side); one
//! session finds and repairs them. Last, an empty node joins and fetches all `N`
//! (bootstrap is the same mechanism with everything different). Messages are
//! carried in lockstep: a round trip is one delivery each way. Prints round trips
//! and bytes each way, and the time taken (both cores' work, one thread).
//!
//! `cargo run -p dkv-proto --release --example reconcile_bench -- [N] [D]`
//! (defaults: 1,000,000 keys, 10 differences)

use bytes::Bytes;
use dkv_proto::wire::v2::{Body, Envelope, Record};
use dkv_proto::{
    encode_hello, Config, Entry, Message, Node, NodeId, Output, Timestamp, Version, WallClock,
};
use std::net::IpAddr;
use std::time::{Duration, Instant};

const A: NodeId = NodeId(*b"node--aa");
const B: NodeId = NodeId(*b"node--bb");
const WRITER: NodeId = NodeId(*b"writer-0");

fn node(id: NodeId, port: u16, t0: Instant) -> Node {
    let wall = WallClock {
        at: t0,
        unix_ms: 1_700_000_000_000,
    };
    let mut n = Node::new(Config::new(id, port, wall));
    let ip: IpAddr = format!("10.0.0.{}", port % 100).parse().unwrap();
    n.handle_net_up(t0, ip);
    while n.poll_output().is_some() {}
    n
}

/// Loads `n` keys into `node` as one writer's puts, in batches.
fn load(node: &mut Node, now: Instant, keys: impl Iterator<Item = (String, Entry)>) {
    let mut batch = Vec::new();
    let flush = |node: &mut Node, batch: &mut Vec<Record>| {
        let records = std::mem::take(batch);
        node.handle_decoded(
            now,
            Message::Dkv(Envelope {
                to: None,
                from: WRITER,
                body: Body::Put {
                    echo: false,
                    records,
                },
            }),
        );
        while node.poll_output().is_some() {}
    };
    for (key, entry) in keys {
        batch.push(Record { key, entry });
        if batch.len() == 4096 {
            flush(node, &mut batch);
        }
    }
    flush(node, &mut batch);
}

fn entry(ms: u64, value: Option<Bytes>) -> Entry {
    Entry {
        version: Version {
            ts: Timestamp::from_millis(1_700_000_000_000 - 1_000_000 + ms),
            node: WRITER,
        },
        value,
    }
}

/// Published messages of `from`, encoded; other outputs dropped.
fn take(from: &mut Node) -> Vec<Vec<Bytes>> {
    std::iter::from_fn(|| from.poll_output())
        .filter_map(|o| match o {
            Output::Publish(m @ Message::Dkv(_)) => Some(m.encode()),
            _ => None,
        })
        .collect()
}

struct Exchange {
    round_trips: usize,
    a_to_b: usize,
    b_to_a: usize,
    wall: Duration,
}

/// `a` learns of `b` by its hello and reconciles; messages go back and forth until
/// both are quiet.
fn exchange(a: &mut Node, b: &mut Node, now: Instant) -> Exchange {
    let started = Instant::now();
    let hello = encode_hello(b.config().pub_port, b.id());
    a.handle_beacon(now, "10.0.0.2".parse().unwrap(), &hello);
    let (mut a_to_b, mut b_to_a, mut halves) = (0usize, 0usize, 0usize);
    let mut to_b = take(a);
    loop {
        if to_b.is_empty() {
            break;
        }
        halves += 1;
        for frames in &to_b {
            a_to_b += frames.iter().map(|f| f.len()).sum::<usize>();
            b.handle_message(now, frames);
        }
        let to_a = take(b);
        if to_a.is_empty() {
            break;
        }
        halves += 1;
        for frames in &to_a {
            b_to_a += frames.iter().map(|f| f.len()).sum::<usize>();
            a.handle_message(now, frames);
        }
        to_b = take(a);
    }
    Exchange {
        round_trips: halves.div_ceil(2),
        a_to_b,
        b_to_a,
        wall: started.elapsed(),
    }
}

fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("numbers"))
        .collect();
    let n = args.first().copied().unwrap_or(1_000_000);
    let d = args.get(1).copied().unwrap_or(10);
    let t0 = Instant::now();
    let value = Bytes::from(vec![b'v'; 100]);
    let keys = |value: &Bytes| {
        let value = value.clone();
        (0..n).map(move |i| (format!("key-{i:010}"), entry(i, Some(value.clone()))))
    };
    let mut a = node(A, 7001, t0);
    let mut b = node(B, 7002, t0);
    let loading = Instant::now();
    load(&mut a, t0, keys(&value));
    load(&mut b, t0, keys(&value));
    println!(
        "loaded {n} keys into each of two nodes in {:.2} s",
        loading.elapsed().as_secs_f64()
    );

    let same = exchange(&mut a, &mut b, t0);
    println!(
        "identical stores:   {} round trip(s), {} B a->b, {} B b->a, {:.3} ms",
        same.round_trips,
        same.a_to_b,
        same.b_to_a,
        same.wall.as_secs_f64() * 1e3
    );

    // d differences: a third updates on a, a third new keys on b, a third deletes.
    let later = t0 + Duration::from_secs(1);
    for i in 0..d {
        let key = format!("key-{:010}", (i * 7919) % n);
        match i % 3 {
            0 => a.set(later, key, Bytes::from_static(b"updated on a")),
            1 => b.set(later, format!("new-on-b-{i}"), Bytes::from_static(b"fresh")),
            _ => b.delete(later, key),
        }
    }
    take(&mut a);
    take(&mut b);
    // A new session: forget the peer, then hear it again.
    a.shutdown(later);
    a.handle_net_up(later, "10.0.0.1".parse().unwrap());
    take(&mut a);
    let diff = exchange(&mut a, &mut b, later);
    println!(
        "{d} differences:     {} round trip(s), {} B a->b, {} B b->a, {:.3} ms",
        diff.round_trips,
        diff.a_to_b,
        diff.b_to_a,
        diff.wall.as_secs_f64() * 1e3
    );
    let same_now = a.entries().count() == b.entries().count()
        && a.entries().all(|(k, e)| b.entry(k) == Some(e));
    println!("stores identical after: {same_now}");
    assert!(same_now, "reconciliation left differences");

    let mut c = node(NodeId(*b"joiner-c"), 7003, t0);
    let join = exchange(&mut c, &mut a, later);
    println!(
        "empty joiner:       {} round trip(s), {} B c->a, {} B a->c, {:.3} s for {} keys",
        join.round_trips,
        join.a_to_b,
        join.b_to_a,
        join.wall.as_secs_f64(),
        c.entries().count()
    );
    assert_eq!(
        c.entries().count(),
        a.entries().count(),
        "joiner incomplete"
    );
}
