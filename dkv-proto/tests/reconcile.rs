//! Anti-entropy between nodes driven directly, in lockstep: every dkv/2 message one
//! node publishes is delivered (through the codec) to its addressee before the next
//! round. Pins convergence, cost that grows with differences rather than store size,
//! joiners, timeouts and retries, and pulling from one peer at a time.

mod support;

use bytes::Bytes;
use dkv_proto::wire::v2::{Body, Envelope, Item, Range, Record, Step, Summary};
use dkv_proto::{
    key_hash, BootstrapPhase, Entry, Message, Node, NodeId, Output, Timestamp, Timings, Version,
};
use proptest::prelude::*;
use std::collections::VecDeque;
use std::time::{Duration, Instant};
use support::*;

/// The writer whose puts fill stores before a test.
const WRITER: u8 = 99;

/// Nodes wired to each other's dkv/2 messages, with lockstep delivery.
struct Mesh {
    nodes: Vec<Node>,
    now: Instant,
    /// Bytes of dkv/2 frames each node sent.
    sent: Vec<usize>,
    /// Every dkv/2 message delivered, with its sender's index.
    log: Vec<(usize, Envelope)>,
    /// How many of [`log`](Self::log)'s messages each round had delivered.
    round_ends: Vec<usize>,
    /// Delivery rounds that carried at least one message.
    rounds: usize,
}

impl Mesh {
    /// Nodes 1..=n, up at `ip(i)` with PUB port `i`, knowing nobody yet; the mesh
    /// reaches every node, so each reports every other subscribed.
    fn new(n: u8) -> Mesh {
        let nodes: Vec<Node> = (1..=n)
            .map(|i| {
                let mut node = up_node(i, u16::from(i), at(0));
                for j in (1..=n).filter(|&j| j != i) {
                    node.handle_subscribed(at(0), id(j));
                }
                node
            })
            .collect();
        Mesh {
            sent: vec![0; nodes.len()],
            nodes,
            now: at(0),
            log: Vec::new(),
            round_ends: Vec::new(),
            rounds: 0,
        }
    }

    fn index(&self, id: NodeId) -> Option<usize> {
        self.nodes.iter().position(|n| n.id() == id)
    }

    /// Node `i` hears node `j`'s hello (and so reconciles with it if new).
    fn hear(&mut self, i: usize, j: usize) {
        let n = (j + 1) as u8;
        let now = self.now;
        self.nodes[i].handle_beacon(now, ip(n), &hello(n, u16::from(n)));
    }

    /// Runs due timers, then delivers messages round by round until none is sent;
    /// `keep(from, message)` decides which are delivered.
    fn settle(&mut self, mut keep: impl FnMut(usize, &Envelope) -> bool) {
        for _ in 0..100_000 {
            let now = self.now;
            let mut batch = Vec::new();
            for (i, node) in self.nodes.iter_mut().enumerate() {
                if node.poll_timeout().is_some_and(|t| t <= now) {
                    node.handle_timeout(now);
                }
                for o in std::iter::from_fn(|| node.poll_output()) {
                    if let Output::Publish(Message::Dkv(e)) = o {
                        batch.push((i, e));
                    }
                }
            }
            if batch.is_empty() {
                return;
            }
            self.rounds += 1;
            for (from, e) in batch {
                let frames = Message::Dkv(e.clone()).encode();
                self.sent[from] += frames.iter().map(Bytes::len).sum::<usize>();
                if !keep(from, &e) {
                    continue;
                }
                let to: Vec<usize> = match e.to {
                    Some(id) => self.index(id).into_iter().collect(),
                    None => (0..self.nodes.len()).filter(|&i| i != from).collect(),
                };
                for i in to {
                    self.nodes[i].handle_message(now, &frames);
                }
                self.log.push((from, e));
            }
            self.round_ends.push(self.log.len());
        }
        panic!("the nodes never went quiet");
    }

    fn run(&mut self) {
        self.settle(|_, _| true);
    }

    /// Moves time to `ms` after t0 in 100 ms steps: timers fire, every node hears
    /// the hellos of the peers it knows once a second (so none goes down), and
    /// `keep` filters the messages as in [`settle`](Self::settle).
    fn advance_to(&mut self, ms: u64, mut keep: impl FnMut(usize, &Envelope) -> bool) {
        let mut t = self.now;
        while t < at(ms) {
            t = (t + Duration::from_millis(100)).min(at(ms));
            self.now = t;
            if (t - t0()).as_millis() % 1_000 == 0 {
                for i in 0..self.nodes.len() {
                    for j in 0..self.nodes.len() {
                        if i != j
                            && self.nodes[i]
                                .peer_id(addr((j + 1) as u8, (j + 1) as u16))
                                .is_some()
                        {
                            self.hear(i, j);
                        }
                    }
                }
            }
            self.settle(&mut keep);
        }
    }
}

/// Fills `node` with `records` as puts from [`WRITER`], in batches.
fn load(node: &mut Node, now: Instant, records: impl IntoIterator<Item = Record>) {
    let mut batch = Vec::new();
    let flush = |node: &mut Node, batch: &mut Vec<Record>| {
        let records = std::mem::take(batch);
        node.handle_decoded(now, put(WRITER, records));
        while node.poll_output().is_some() {}
    };
    for r in records {
        batch.push(r);
        if batch.len() == 1_000 {
            flush(node, &mut batch);
        }
    }
    flush(node, &mut batch);
}

/// `n` keys of 100-byte values, written by [`WRITER`] before t0.
fn keys(n: usize) -> impl Iterator<Item = Record> {
    let value = Bytes::from(vec![b'v'; 100]);
    (0..n).map(move |i| Record {
        key: format!("key-{i:06}"),
        entry: Entry {
            version: Version {
                ts: Timestamp(ts(-1_000_000).0 + i as u64),
                node: id(WRITER),
            },
            value: Some(value.clone()),
        },
    })
}

fn same_entries(a: &Node, b: &Node) -> bool {
    a.entries().count() == b.entries().count() && a.entries().all(|(k, e)| b.entry(k) == Some(e))
}

/// Two nodes holding the same `n` keys, then `diffs` differences (updates on node 1,
/// new keys and deletes on node 2); node 1 reconciles with node 2. Returns the
/// bytes both sent and the delivery rounds.
fn cost(n: usize, diffs: usize) -> (usize, usize) {
    let mut m = Mesh::new(2);
    load(&mut m.nodes[0], at(0), keys(n));
    load(&mut m.nodes[1], at(0), keys(n));
    for i in 0..diffs {
        let key = format!("key-{:06}", (i * 7_919) % n);
        match i % 3 {
            0 => m.nodes[0].set(at(0), key, bytes("updated on 1")),
            1 => m.nodes[1].set(at(0), format!("new-{i}"), bytes("new on 2")),
            _ => m.nodes[1].delete(at(0), key),
        }
    }
    m.nodes.iter_mut().for_each(|n| drop(drain(n)));
    m.hear(0, 1);
    m.run();
    assert_eq!(m.nodes[0].summary(), m.nodes[1].summary());
    assert!(same_entries(&m.nodes[0], &m.nodes[1]));
    (m.sent[0] + m.sent[1], m.rounds)
}

#[test]
fn identical_stores_agree_in_one_round_trip_of_one_fingerprint() {
    for n in [0, 1_000] {
        let mut m = Mesh::new(2);
        load(&mut m.nodes[0], at(0), keys(n));
        load(&mut m.nodes[1], at(0), keys(n));
        m.hear(0, 1);
        m.run();
        assert_eq!(m.rounds, 2, "one message each way");
        assert!(m.sent[0] <= 80 && m.sent[1] <= 80, "{:?}", m.sent);
        let s = m.nodes[0].stats();
        assert_eq!((s.sync_sessions_started, s.sync_sessions_completed), (1, 1));
        assert_eq!(m.nodes[0].ready_peers().count(), 1);
    }
}

#[test]
fn the_cost_grows_with_the_differences_not_the_store_size() {
    let (small, _) = cost(1_000, 10);
    let (large, _) = cost(20_000, 10);
    let (many, _) = cost(1_000, 100);
    println!("10 diffs: {small} B in 1,000 keys, {large} B in 20,000; 100 diffs: {many} B");
    // A 20 times larger store costs one more tree level per difference, not 20x.
    assert!(large < 3 * small, "{large} vs {small}");
    // Far below shipping the store (20,000 records of over 100 bytes).
    assert!(large < 20_000 * 100 / 100, "{large}");
    assert!(many > 3 * small, "{many} vs {small}");
}

#[test]
fn an_empty_joiner_pulls_everything_in_pages() {
    let mut m = Mesh::new(2);
    load(&mut m.nodes[1], at(0), keys(3_000));
    m.hear(0, 1);
    m.run();
    assert!(same_entries(&m.nodes[0], &m.nodes[1]));
    assert_eq!(m.nodes[0].summary(), m.nodes[1].summary());
    let s = m.nodes[0].stats();
    assert!(
        s.sync_pull_pages >= 2,
        "3,000 x 100 B is more than one page: {s:?}"
    );
    assert_eq!(s.entries_applied, 3_000, "each entry once");
    assert_eq!(s.sync_pulls_timed_out, 0);
}

#[test]
fn a_joiner_of_a_large_store_pulls_sub_ranges_a_window_at_a_time() {
    let mut m = Mesh::new(2);
    load(&mut m.nodes[1], at(0), keys(5_000));
    m.hear(0, 1);
    m.run();
    assert!(same_entries(&m.nodes[0], &m.nodes[1]));
    let mut start = 0;
    let mut ranges = std::collections::BTreeSet::new();
    for &end in &m.round_ends {
        let pulls: Vec<Range> = m.log[start..end]
            .iter()
            .filter_map(|(_, e)| match e.body {
                Body::Pull { range, .. } => Some(range),
                _ => None,
            })
            .collect();
        assert!(
            pulls.len() <= 8,
            "{} pulls in flight in one round",
            pulls.len()
        );
        ranges.extend(pulls);
        start = end;
    }
    assert!(ranges.len() >= 16, "split into sub-ranges: {ranges:?}");
    assert!(ranges.iter().all(|r| r.level() >= 1));
    assert_eq!(m.nodes[0].stats().entries_applied, 5_000);
}

#[test]
fn a_record_larger_than_a_page_still_transfers() {
    let mut m = Mesh::new(2);
    let big = Bytes::from(vec![7u8; 600 * 1024]);
    for i in 0..3 {
        m.nodes[1].set(at(0), format!("big-{i}"), big.clone());
    }
    m.nodes[1].set(at(0), "small".into(), bytes("s"));
    drain(&mut m.nodes[1]);
    m.hear(0, 1);
    m.run();
    assert!(same_entries(&m.nodes[0], &m.nodes[1]));
    assert_eq!(m.nodes[0].len(), 4);
}

#[test]
fn a_joiner_pulls_from_one_peer_at_a_time() {
    let mut m = Mesh::new(3);
    load(&mut m.nodes[1], at(0), keys(500));
    load(&mut m.nodes[2], at(0), keys(500));
    m.hear(0, 1);
    m.hear(0, 2);
    m.run();
    assert!(same_entries(&m.nodes[0], &m.nodes[1]));
    let pulls_to = |n: u8| {
        m.log
            .iter()
            .filter(|(_, e)| e.to == Some(id(n)) && matches!(e.body, Body::Pull { .. }))
            .count()
    };
    assert!(pulls_to(2) > 0);
    assert_eq!(
        pulls_to(3),
        0,
        "node 3's session waited, then found nothing to pull"
    );
    let records_in: usize = m
        .log
        .iter()
        .filter(|(_, e)| e.to == Some(id(1)))
        .map(|(_, e)| match &e.body {
            Body::Push { records, .. } => records.len(),
            _ => 0,
        })
        .sum();
    assert_eq!(records_in, 500, "everything once, not once per peer");
    let s = m.nodes[0].stats();
    assert_eq!((s.sync_sessions_started, s.sync_sessions_completed), (3, 3));
}

/// Whether `e` opens a session (an initiator's message with the whole range).
fn opens(e: &Envelope) -> bool {
    matches!(&e.body, Body::Sync { initiator: true, steps, .. }
        if steps.iter().any(|s| s.range() == Range::ROOT))
}

#[test]
fn two_nodes_that_meet_with_equal_stores_run_one_session() {
    // Both hear each other at once; the lower id opens, and its opening finds the
    // stores equal, which settles the higher id's waiting session.
    let mut m = Mesh::new(2);
    load(&mut m.nodes[0], at(0), keys(100));
    load(&mut m.nodes[1], at(0), keys(100));
    m.hear(0, 1);
    m.hear(1, 0);
    m.run();
    m.advance_to(1_500, |_, _| true);
    let openings =
        |from: usize, m: &Mesh| m.log.iter().filter(|(f, e)| *f == from && opens(e)).count();
    assert_eq!(openings(0, &m), 1);
    assert_eq!(openings(1, &m), 0, "the higher id opened a second session");
    let s = m.nodes[1].stats();
    assert_eq!((s.sync_sessions_started, s.sync_sessions_settled), (0, 1));
    assert_eq!(
        m.nodes[1].ready_peers().collect::<Vec<_>>(),
        vec![addr(1, 1)],
        "a settled peer counts as reconciled with"
    );
}

/// Node 2, up at t0, having heard node 1's hello; node 1 has not subscribed.
fn node_2_hearing_1() -> Node {
    let mut n = up_node(2, 2, at(0));
    n.handle_beacon(at(0), ip(1), &hello(1, 1));
    n
}

/// A hand-made opening from `from` to `to` with the fingerprint `summary`.
fn opening(from: NodeId, to: NodeId, summary: Summary) -> Vec<Bytes> {
    Message::Dkv(Envelope {
        to: Some(to),
        from,
        body: Body::Sync {
            session: 7,
            initiator: true,
            last: false,
            steps: vec![Step::Fingerprint {
                range: Range::ROOT,
                summary,
            }],
        },
    })
    .encode()
}

#[test]
fn an_equal_opening_before_the_subscription_settles_once_it_comes_if_nothing_changed() {
    // Node 2 hears node 1, whose opening finds the stores equal before node 1's
    // subscription to node 2 is reported: node 2 is not ready with it yet, as its
    // puts would not reach node 1. The subscription settles the pair, unless node
    // 2's store changed meanwhile (node 1 may lack that change): then node 2 runs
    // its own session a first reply wait (62.5 ms) later.
    for write_meanwhile in [false, true] {
        let mut n = node_2_hearing_1();
        let equal = n.summary();
        n.handle_message(at(10), &opening(id(1), id(2), equal));
        assert_eq!(n.ready_peers().count(), 0);
        if write_meanwhile {
            n.set(at(15), "k".into(), bytes("v"));
        }
        n.handle_subscribed(at(20), id(1));
        let s = n.stats();
        assert_eq!(s.sync_sessions_settled, u64::from(!write_meanwhile));
        assert_eq!(n.ready_peers().count(), usize::from(!write_meanwhile));
        drain(&mut n);
        n.handle_timeout(at(82));
        assert_eq!(n.stats().sync_sessions_started, 0, "opened early");
        n.handle_timeout(at(83));
        assert_eq!(
            n.stats().sync_sessions_started,
            u64::from(write_meanwhile),
            "write meanwhile: {write_meanwhile}"
        );
    }
}

#[test]
fn an_equal_opening_from_a_listening_peer_settles_at_once_and_from_an_unknown_id_never() {
    let mut n = node_2_hearing_1();
    n.handle_subscribed(at(0), id(1));
    n.handle_subscribed(at(0), id(0xEE));
    let equal = n.summary();
    n.handle_message(at(10), &opening(id(0xEE), id(2), equal));
    assert_eq!(n.stats().sync_sessions_settled, 0);
    assert_eq!(n.ready_peers().count(), 0);
    n.handle_message(at(20), &opening(id(1), id(2), equal));
    assert_eq!(n.stats().sync_sessions_settled, 1);
    assert_eq!(n.ready_peers().collect::<Vec<_>>(), vec![addr(1, 1)]);
    drain(&mut n);
    n.handle_timeout(at(1_500));
    assert_eq!(
        n.stats().sync_sessions_started,
        0,
        "the settled session ran"
    );
}

#[test]
fn a_session_due_with_a_peer_whose_subscription_went_waits_for_it_again() {
    // Node 2 waits 62.5 ms after node 1's subscription (node 1 has the lower id),
    // but the subscription goes before then: a session now would be held or lost.
    let mut n = node_2_hearing_1();
    n.handle_subscribed(at(0), id(1));
    n.handle_unsubscribed(at(30), id(1));
    n.handle_timeout(at(1_500));
    assert_eq!(
        n.stats().sync_sessions_started,
        0,
        "opened to a peer gone deaf"
    );
    n.handle_subscribed(at(1_600), id(1));
    n.handle_timeout(at(1_662));
    assert_eq!(n.stats().sync_sessions_started, 0);
    n.handle_timeout(at(1_663));
    assert_eq!(n.stats().sync_sessions_started, 1);
}

#[test]
fn a_session_unanswered_by_a_peer_whose_subscription_went_waits_for_it_again() {
    let mut n = up_node(1, 1, at(0));
    n.handle_subscribed(at(0), id(2));
    n.handle_beacon(at(0), ip(2), &hello(2, 2));
    assert_eq!(n.stats().sync_sessions_started, 1);
    n.handle_unsubscribed(at(10), id(2));
    // The first reply wait ends at 62.5 ms; the retry waits for the subscription.
    n.handle_timeout(at(63));
    n.handle_timeout(at(1_000));
    assert_eq!(n.stats().sync_sessions_timed_out, 1);
    assert_eq!(n.stats().sync_sessions_started, 1, "retried into the void");
    n.handle_subscribed(at(1_200), id(2));
    assert_eq!(n.stats().sync_sessions_started, 2);
}

#[test]
fn the_higher_id_opens_its_own_session_a_first_reply_wait_later_if_none_settles_it() {
    // The lower id's openings are lost (a one-way link), or find the stores unequal.
    for lose in [true, false] {
        let mut m = Mesh::new(2);
        load(&mut m.nodes[usize::from(!lose)], at(0), keys(10));
        m.hear(0, 1);
        m.hear(1, 0);
        let keep = |from: usize, e: &Envelope| !(lose && from == 0 && opens(e));
        m.settle(keep);
        // A sixteenth of the sync timeout: 62.5 ms.
        m.advance_to(60, keep);
        let from_higher = |m: &Mesh| m.nodes[1].stats().sync_sessions_started;
        assert_eq!(from_higher(&m), 0, "opened before its wait (lose {lose})");
        m.advance_to(100, keep);
        assert_eq!(from_higher(&m), 1, "never opened (lose {lose})");
        assert_eq!(m.nodes[1].stats().sync_sessions_settled, 0);
        assert!(same_entries(&m.nodes[0], &m.nodes[1]));
    }
}

#[test]
fn a_session_whose_replies_are_lost_is_retried_at_once_with_a_doubling_wait() {
    // The first wait is a sixteenth of the sync timeout (62.5 ms), then 125, 250,
    // 500 and 1,000 ms: a peer that came up before its SUB socket reached this node
    // is retried soon, one that stays silent costs a session per sync timeout.
    let mut m = Mesh::new(2);
    load(&mut m.nodes[1], at(0), keys(50));
    m.hear(0, 1);
    let silent = |from: usize, _: &Envelope| from != 1;
    m.settle(silent);
    let timed_out = |m: &Mesh| m.nodes[0].stats().sync_sessions_timed_out;
    for (before, after, n) in [(62, 63, 1), (187, 188, 2), (437, 438, 3), (937, 938, 4)] {
        m.advance_to(before, silent);
        assert_eq!(timed_out(&m), n - 1, "at {before} ms");
        m.advance_to(after, silent);
        assert_eq!(timed_out(&m), n, "at {after} ms");
        assert_eq!(m.nodes[0].stats().sync_sessions_started, n + 1, "retried");
    }
    m.advance_to(1_937, silent);
    assert_eq!(timed_out(&m), 4);
    m.advance_to(1_938, silent);
    assert_eq!(timed_out(&m), 5);
    m.advance_to(2_938, silent);
    assert_eq!(
        timed_out(&m),
        6,
        "the wait stops doubling at the sync timeout"
    );
    assert!(m.nodes[0].is_empty());
    m.advance_to(5_000, |_, _| true);
    assert!(same_entries(&m.nodes[0], &m.nodes[1]));
    assert!(m.nodes[0].stats().sync_sessions_completed >= 1);
}

#[test]
fn a_difference_found_with_several_peers_at_once_is_fetched_once() {
    let mut n = up_node(1, 1, at(0));
    drain(&mut n);
    let items = vec![Item {
        key_hash: key_hash("k"),
        version: version(0, 2),
        digest: 1,
    }];
    let opening = |session| Body::Sync {
        session,
        initiator: true,
        last: false,
        steps: vec![Step::Items {
            range: Range::ROOT,
            items: items.clone(),
        }],
    };
    let fetches = |n: &mut Node| -> Vec<(Option<NodeId>, Vec<u64>)> {
        dkv(&drain(n))
            .into_iter()
            .filter_map(|e| match e.body {
                Body::Fetch { key_hashes, .. } => Some((e.to, key_hashes)),
                _ => None,
            })
            .collect()
    };
    deliver(&mut n, at(0), &to_one(2, 1, opening(1)));
    assert_eq!(fetches(&mut n), vec![(Some(id(2)), vec![key_hash("k")])]);
    deliver(&mut n, at(10), &to_one(3, 1, opening(2)));
    assert_eq!(fetches(&mut n), vec![], "fetched again while in flight");
    // Unanswered for a sync timeout: the next session fetches it again.
    n.handle_timeout(at(0) + Timings::default().sync_timeout);
    drain(&mut n);
    deliver(&mut n, at(1_010), &to_one(3, 1, opening(3)));
    assert_eq!(fetches(&mut n), vec![(Some(id(3)), vec![key_hash("k")])]);
    assert_eq!(n.stats().sync_fetches_timed_out, 1);
}

#[test]
fn a_pull_whose_pages_are_lost_is_retried_by_a_later_session() {
    let mut m = Mesh::new(2);
    load(&mut m.nodes[1], at(0), keys(50));
    m.hear(0, 1);
    let no_pages =
        |_: usize, e: &Envelope| !matches!(e.body, Body::Push { request, .. } if request != 0);
    m.settle(no_pages);
    assert_eq!(m.nodes[0].stats().sync_sessions_completed, 1);
    m.advance_to(1_000, no_pages);
    assert_eq!(m.nodes[0].stats().sync_pulls_timed_out, 1);
    assert!(m.nodes[0].is_empty());
    m.advance_to(4_100, |_, _| true);
    assert!(same_entries(&m.nodes[0], &m.nodes[1]));
}

#[test]
fn a_pull_left_unanswered_ends_and_the_waiting_peer_is_pulled_from_at_once() {
    // Node 2 falls silent mid-pull. Its store splits into more sub-ranges than one
    // window: had its pull gone on, node 1 would ask for them a window per sync
    // timeout, and node 3 would wait behind it.
    let mut m = Mesh::new(3);
    load(&mut m.nodes[1], at(0), keys(5_000));
    let others = (0..40).map(|i| Record {
        key: format!("other-{i}"),
        entry: Entry {
            version: Version {
                ts: ts(-1_000),
                node: id(WRITER),
            },
            value: Some(bytes("from node 3")),
        },
    });
    load(&mut m.nodes[2], at(0), others);
    m.hear(0, 1);
    m.hear(0, 2);
    m.settle(|from, e| from != 1 || !matches!(e.body, Body::Push { request, .. } if request != 0));
    let pulls_to_2 = |m: &Mesh| {
        m.log
            .iter()
            .filter(|(_, e)| e.to == Some(id(2)) && matches!(e.body, Body::Pull { .. }))
            .count()
    };
    assert_eq!(pulls_to_2(&m), 8, "one window");
    assert!(
        m.nodes[0].is_empty(),
        "node 3 waits for the pull from node 2"
    );
    let node_2_silent = |from: usize, _: &Envelope| from != 1;
    m.advance_to(1_000, node_2_silent);
    assert_eq!(m.nodes[0].stats().sync_pulls_timed_out, 8);
    assert_eq!(
        m.nodes[0].len(),
        40,
        "node 3 pulled from once the pull ended"
    );
    assert_eq!(pulls_to_2(&m), 8, "nothing more asked of a silent peer");
    m.advance_to(5_000, |_, _| true);
    assert_eq!(m.nodes[0].len(), 5_040, "node 2 is retried");
}

#[test]
fn a_pull_whose_pages_come_slowly_goes_on() {
    // A slow link: one page every 300 ms, so the last of 8 requests in flight waits
    // 2.4 s, past the sync timeout. Pages keep coming, so the pull goes on.
    let mut m = Mesh::new(2);
    load(&mut m.nodes[1], at(0), keys(5_000));
    m.hear(0, 1);
    let mut held: VecDeque<Envelope> = VecDeque::new();
    let hold_pages = |held: &mut VecDeque<Envelope>, from: usize, e: &Envelope| {
        let page = from == 1 && matches!(e.body, Body::Push { request, .. } if request != 0);
        if page {
            held.push_back(e.clone());
        }
        !page
    };
    m.settle(|from, e| hold_pages(&mut held, from, e));
    let mut pages = 0;
    for step in 1..=100 {
        m.advance_to(step * 300, |from, e| hold_pages(&mut held, from, e));
        if let Some(e) = held.pop_front() {
            m.nodes[0].handle_message(m.now, &Message::Dkv(e).encode());
            pages += 1;
        }
        if m.nodes[0].len() == 5_000 {
            break;
        }
    }
    let s = m.nodes[0].stats();
    assert_eq!(m.nodes[0].len(), 5_000);
    assert!(pages >= 16, "{pages} pages, 300 ms each");
    assert_eq!(s.sync_pulls_timed_out, 0, "{s:?}");
}

#[test]
fn a_forged_opening_holds_the_pull_for_one_sync_timeout_at_most() {
    // An id no node has claims a full store: the node pulls from it, but the first
    // unanswered request ends that pull, so a real peer waits one timeout at most.
    let mut m = Mesh::new(2);
    load(&mut m.nodes[1], at(0), keys(50));
    let stranger = id(0xEE);
    let claim = Summary {
        fingerprint: 1,
        count: 1 << 20,
    };
    m.nodes[0].handle_message(m.now, &opening(stranger, id(1), claim));
    m.hear(0, 1);
    m.run();
    let pulls_to_stranger = |m: &Mesh| {
        m.log
            .iter()
            .filter(|(_, e)| e.to == Some(stranger) && matches!(e.body, Body::Pull { .. }))
            .count()
    };
    assert_eq!(pulls_to_stranger(&m), 8, "one window");
    assert!(m.nodes[0].is_empty(), "node 2 waits for the pull under way");
    m.advance_to(1_100, |_, _| true);
    assert!(same_entries(&m.nodes[0], &m.nodes[1]));
    assert_eq!(
        pulls_to_stranger(&m),
        8,
        "nothing more asked of the stranger"
    );
    assert_eq!(m.nodes[0].stats().sync_pulls_timed_out, 8);
}

#[test]
fn a_write_refused_as_too_far_ahead_is_fetched_once_it_is_acceptable() {
    // Node 2's wall clock runs 1.5 s ahead: its write is refused (more than 500 ms
    // ahead), and node 1 reconciles with it when the version becomes acceptable,
    // at 1 s, not at the next periodic session (2 s).
    let mut m = Mesh::new(2);
    let mut c = config(2, 2);
    c.wall.unix_ms += 1_500;
    m.nodes[1] = up(Node::new(c), 2, at(0));
    m.hear(0, 1);
    m.hear(1, 0);
    m.run();
    m.nodes[1].set(m.now, "late".into(), bytes("from a clock ahead"));
    m.run();
    assert_eq!(m.nodes[0].stats().drop_clock_ahead, 1);
    m.advance_to(990, |_, _| true);
    assert!(m.nodes[0].entry("late").is_none(), "still too far ahead");
    m.advance_to(1_100, |_, _| true);
    assert_eq!(m.nodes[0].value("late"), Some(&b"from a clock ahead"[..]));
}

#[test]
fn a_lost_put_is_repaired_by_the_periodic_session() {
    let mut m = Mesh::new(2);
    m.hear(0, 1);
    m.hear(1, 0);
    m.run();
    let now = m.now;
    m.nodes[0].set(now, "k".into(), bytes("v"));
    m.settle(|_, e| !matches!(e.body, Body::Put { .. }));
    assert_eq!(m.nodes[1].entry("k"), None, "the put was lost");
    m.advance_to(2_100, |_, _| true);
    assert_eq!(m.nodes[1].entry("k"), m.nodes[0].entry("k"));
}

#[test]
fn bootstrap_is_done_once_every_dkv_peer_found_during_the_delay_is_reconciled() {
    for replies in [true, false] {
        let mut m = Mesh::new(2);
        load(&mut m.nodes[1], at(0), keys(100));
        m.hear(0, 1);
        let keep = |from: usize, _: &Envelope| replies || from != 1;
        m.settle(keep);
        m.advance_to(2_000, keep);
        let want = if replies {
            BootstrapPhase::Done
        } else {
            BootstrapPhase::Fetching
        };
        assert_eq!(m.nodes[0].bootstrap().phase, want, "replies: {replies}");
        assert_eq!(m.nodes[0].len(), if replies { 100 } else { 0 });
    }
}

#[test]
fn no_deadline_is_left_due_while_a_session_with_the_due_peer_runs() {
    let mut n = up_node(1, 1, at(0));
    n.handle_beacon(at(0), ip(2), &hello(2, 2));
    drain(&mut n);
    // A session with node 2 is under way (unanswered, 1 s timeout) when the address
    // changes, which makes node 2 due for reconciliation again.
    n.handle_net_up(at(10), ip(7));
    drain(&mut n);
    n.handle_timeout(at(10));
    drain(&mut n);
    let next = n.poll_timeout().unwrap();
    assert!(
        next > at(10),
        "handle_timeout(now) left a deadline {:?} in the past: a transport spins until the session ends",
        at(10) - next
    );
}

/// One change to one side's store before the two reconcile.
#[derive(Clone, Debug)]
enum Change {
    Set(usize, u16, u8),
    Delete(usize, u16),
    /// A prototype answer: unversioned, so equal versions with different content.
    Answer(usize, u16, u8),
    /// A put of one fixed version with side-specific content.
    SameVersion(usize, u16, u8),
}

fn change() -> impl Strategy<Value = Change> {
    let side = 0usize..2;
    let key = 0u16..400;
    prop_oneof![
        (side.clone(), key.clone(), any::<u8>()).prop_map(|(s, k, v)| Change::Set(s, k, v)),
        (side.clone(), key.clone()).prop_map(|(s, k)| Change::Delete(s, k)),
        (side.clone(), key.clone(), any::<u8>()).prop_map(|(s, k, v)| Change::Answer(s, k, v)),
        (side, key, any::<u8>()).prop_map(|(s, k, v)| Change::SameVersion(s, k, v)),
    ]
}

fn apply(m: &mut Mesh, change: &Change) {
    let now = m.now;
    let key = |k: &u16| format!("key-{k:06}");
    match change {
        Change::Set(s, k, v) => m.nodes[*s].set(now, key(k), Bytes::from(vec![*v])),
        Change::Delete(s, k) => m.nodes[*s].delete(now, key(k)),
        Change::Answer(s, k, v) => {
            let asker = m.nodes[*s].id();
            m.nodes[*s].handle_decoded(
                now,
                Message::Answer {
                    asker,
                    key: key(k),
                    value: Bytes::from(vec![*v]),
                },
            );
        }
        Change::SameVersion(s, k, v) => {
            let e = Entry {
                version: Version {
                    ts: ts(-500),
                    node: id(WRITER),
                },
                value: (*v % 4 != 0).then(|| Bytes::from(vec![*v])),
            };
            m.nodes[*s].handle_decoded(now, put(WRITER, vec![record(&key(k), e)]));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn random_differences_always_end_in_equal_stores(
        shared in prop_oneof![3 => 0usize..60, 1 => 300usize..1_500],
        changes in prop::collection::vec(change(), 0..60),
        both_start in any::<bool>(),
    ) {
        let mut m = Mesh::new(2);
        for node in &mut m.nodes {
            load(node, at(0), keys(shared));
        }
        for c in &changes {
            apply(&mut m, c);
        }
        m.nodes.iter_mut().for_each(|n| drop(drain(n)));
        m.hear(0, 1);
        if both_start {
            m.hear(1, 0);
        }
        m.run();
        let (a, b) = (&m.nodes[0], &m.nodes[1]);
        prop_assert_eq!(a.summary(), b.summary());
        prop_assert!(same_entries(a, b));
        prop_assert!(m.rounds <= 16, "{} rounds", m.rounds);
    }
}
