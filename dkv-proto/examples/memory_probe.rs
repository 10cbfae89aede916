//! Resident bytes per key of a node holding 1,000,000 keys (16-byte keys, 100-byte
//! values), loaded as a peer's puts. Prints RSS before and after.
use bytes::Bytes;
use dkv_proto::wire::v2::{Body, Envelope, Record};
use dkv_proto::{Config, Entry, Message, Node, NodeId, Timestamp, Version, WallClock};
use std::time::Instant;

fn rss() -> u64 {
    let s = std::fs::read_to_string("/proc/self/statm").unwrap();
    s.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 4096
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let now = Instant::now();
    let wall = WallClock {
        at: now,
        unix_ms: 1_700_000_000_000,
    };
    let mut node = Node::new(Config::new(NodeId(*b"probe-01"), 7000, wall));
    let before = rss();
    let mut batch = Vec::new();
    for i in 0..n {
        let key = format!("key-{i:012}");
        let value = Bytes::from(vec![b'v'; 100]);
        batch.push(Record {
            key,
            entry: Entry {
                version: Version {
                    ts: Timestamp::from_millis(1_699_999_000_000 + i as u64),
                    node: NodeId(*b"writer-0"),
                },
                value: Some(value),
            },
        });
        if batch.len() == 4096 || i + 1 == n {
            let records = std::mem::take(&mut batch);
            node.handle_decoded(
                now,
                Message::Dkv(Envelope {
                    to: None,
                    from: NodeId(*b"writer-0"),
                    body: Body::Put {
                        echo: false,
                        records,
                    },
                }),
            );
            while node.poll_output().is_some() {}
        }
    }
    let after = rss();
    let per_key = (after - before) as f64 / n as f64;
    println!(
        "{n} keys: {:.0} bytes resident per key ({:.2}x the 116 raw bytes)",
        per_key,
        per_key / 116.0
    );
}
