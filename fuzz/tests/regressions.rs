//! The regression inputs of `dkv-proto` bugs, as scripts: each file in
//! `fuzz/regressions/` built here is exactly its script (run with
//! `DKV_FUZZ_WRITE_SEEDS=1` to rewrite it), and still reaches the code path of its
//! bug, shown by the counters it moves. Whether the target passes is
//! `tests/corpus_replay.rs`'s business.

use dkv_fuzz::seeds::Script;
use dkv_fuzz::{node_run, Op, Stamp};
use dkv_proto::wire::{Body, Envelope, Range, Step, Summary};
use dkv_proto::{Message, NodeId, Stats};
use std::path::Path;

/// Checks `fuzz/regressions/<target>/<name>` holds `data` (writing it on request).
fn regression_file(target: &str, name: &str, data: &[u8]) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("regressions")
        .join(target)
        .join(name);
    if std::env::var_os("DKV_FUZZ_WRITE_SEEDS").is_some() {
        std::fs::create_dir_all(path.parent().expect("has a parent")).expect("mkdir");
        std::fs::write(&path, data).expect("write regression");
    }
    let on_disk = std::fs::read(&path).expect("regression file; DKV_FUZZ_WRITE_SEEDS=1");
    assert_eq!(on_disk, data, "{} is stale", path.display());
}

/// The `node` regression `name`, checked against `script`; its final counters.
fn node_regression(name: &str, script: Script) -> Stats {
    let data = script.finish();
    regression_file("node", name, &data);
    node_run(&data)
}

#[test]
fn a_prototype_set_after_the_wall_clock_steps_back_is_stored() {
    // A local write at wall time w, the wall clock steps back 1 s, then a prototype
    // set: the node versions it w + 1 tick, more than 500 ms ahead of its wall
    // time; it was refused as clock-ahead (fixed in 02ecdb7).
    let script = Script::new()
        .set(0, b"v")
        .wall(1, 1, true)
        .message(0, 1, 0, b"w", &[]);
    let s = node_regression("known-bug-own-set-clock-ahead-wall-step", script);
    assert_eq!((s.in_set, s.entries_applied, s.drop_clock_ahead), (1, 1, 0));
}

#[test]
fn a_prototype_set_after_a_version_at_the_offset_edge_is_stored() {
    // A put whose version sits exactly at the clock-offset edge with a full logical
    // counter is accepted; the next tick carries into the next millisecond, past the
    // edge: the prototype set versioned with it was refused (fixed in 02ecdb7).
    let script = Script::new()
        .dkv(1, 0, 0)
        .u8(0)
        .u8(1)
        .record(0, Stamp::EdgeFull, 0, Some(b"edge"))
        .message(0, 1, 1, b"proto", &[]);
    let s = node_regression("known-bug-own-set-clock-ahead-edge", script);
    assert_eq!((s.in_set, s.entries_applied, s.drop_clock_ahead), (1, 2, 0));
}

#[test]
fn writes_back_to_back_travel_in_one_put() {
    // Each write went out in a put of its own (fixed in 7d5a0ba).
    let script = Script::new().writes(&[(0, Some(b"1")), (1, Some(b"2"))]);
    let s = node_regression("known-bug-unbatched-puts", script);
    assert_eq!((s.sets, s.out_put), (2, 1));
}

#[test]
fn writes_completing_a_bootstrap_question_stay_in_one_put() {
    // The second write stores a key the bootstrap is asking a prototype for; that
    // publishes the next question between the writes, and the second write started
    // a put of its own (found by the fuzzer, rebuilt by hand; fixed in c54325a).
    // The other put is the empty announcement that precedes the bootstrap's list.
    let script = Script::short_timings()
        .net_up(0)
        .beacon(1, 5005)
        .advance(150)
        .message(4, 0, 0, b"", &[1])
        .writes(&[(2, Some(b"2")), (0, Some(b"1"))]);
    let s = node_regression("bug-bootstrap-question-splits-puts", script);
    assert_eq!((s.sets, s.out_put, s.out_question), (2, 2, 2));
}

#[test]
fn a_peer_due_while_its_session_runs_leaves_no_deadline_due() {
    // A session starts with the hello; the peer's hello at 2600 ms comes after a
    // gap and makes it due again while the session runs: poll_timeout stayed in
    // the past until the session ended (fixed in 7d5a0ba).
    let script = Script::new()
        .net_up(0)
        .hello(1, 5005, 1)
        .advance(2600)
        .hello(1, 5005, 1)
        .op(Op::TimeoutNow);
    let s = node_regression("known-bug-due-while-session-runs", script);
    assert_eq!(s.hellos_in, 2);
    assert!(s.sync_sessions_started >= 2, "{s:?}");
}

#[test]
fn sync_steps_claiming_huge_counts_pull_a_bounded_split() {
    // One sync step claiming 2^64 - 1 entries for a range the node lacks: the pull
    // was split into up to 16^13 ranges, exhausting memory (fixed in 02ecdb7).
    let script = Script::new()
        .dkv(1, 1, 2)
        .u8(0x87)
        .u8(1)
        .u8(1)
        .u8(0)
        .range(0, 0)
        .u8(3)
        .u64(7)
        .u64(u64::MAX);
    let s = node_regression("known-bug-pull-split-trusts-count", script);
    assert_eq!((s.in_sync, s.sync_ranges_pulled), (1, 1));
    assert!((1..=8).contains(&s.out_pull), "{s:?}");

    let msg = Message::Dkv(Envelope {
        to: Some(NodeId(*b"me \x00\xffid!")),
        from: NodeId(*b"someone!"),
        body: Body::Sync {
            session: 7,
            initiator: true,
            last: false,
            steps: vec![Step::Fingerprint {
                range: Range::ROOT,
                summary: Summary {
                    fingerprint: 1,
                    count: u64::MAX,
                },
            }],
        },
    });
    let data = msg
        .encode()
        .iter()
        .fold(dkv_fuzz::input::Writer::new(), |w, f| w.bytes(f))
        .finish();
    regression_file("decode", "known-bug-pull-split-trusts-count", &data);
}
