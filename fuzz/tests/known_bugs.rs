//! The `dkv-proto` bugs the targets tolerate ([`dkv_fuzz::KNOWN_BUGS`]) are still
//! there: each minimized input in `fuzz/regressions/` fails the target with only
//! that bug's toleration turned off, for the reason the bug describes, and passes
//! with it on. When `dkv-proto` fixes one, its test here fails: turn its toleration
//! off in `KNOWN_BUGS` and delete the test. Run with `DKV_FUZZ_WRITE_SEEDS=1` to
//! (re)write the regression files after changing an input here.

use dkv_fuzz::seeds::Script;
use dkv_fuzz::{node_run_with, KnownBugs, Op, Stamp, KNOWN_BUGS};
use std::panic::{catch_unwind, AssertUnwindSafe};
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

/// Runs the `node` target on `data` with `known`; returns the panic message.
fn node_failure(data: &[u8], known: KnownBugs) -> Option<String> {
    let err = catch_unwind(AssertUnwindSafe(|| node_run_with(data, known))).err()?;
    Some(match err.downcast::<String>() {
        Ok(msg) => *msg,
        Err(err) => err
            .downcast::<&str>()
            .map_or_else(|_| "?".into(), |m| m.to_string()),
    })
}

/// The regression `name` for the `node` target fails with `strict` (one toleration
/// off) with a message containing `why`, and passes with every known bug tolerated.
fn still_fails(name: &str, script: Script, strict: KnownBugs, why: &str) {
    let data = script.finish();
    regression_file("node", name, &data);
    let failure = node_failure(&data, strict);
    assert!(
        failure.as_deref().is_some_and(|m| m.contains(why)),
        "{name}: the bug seems fixed in dkv-proto (strict run: {failure:?}); \
         turn its toleration off in KNOWN_BUGS and delete this test"
    );
    assert_eq!(node_failure(&data, KNOWN_BUGS), None, "{name} tolerated");
}

#[test]
fn a_prototype_set_after_the_wall_clock_steps_back_is_refused_as_clock_ahead() {
    // A local write at wall time w, the wall clock steps back 1 s, then a prototype
    // set: the node versions it w + 1 tick and refuses that as > w - 1 s + 500 ms.
    let script = Script::new()
        .set(0, b"v")
        .wall(1, 1, true)
        .message(0, 1, 0, b"w", &[]);
    let strict = KnownBugs {
        own_set_clock_ahead: false,
        ..KNOWN_BUGS
    };
    still_fails(
        "known-bug-own-set-clock-ahead-wall-step",
        script,
        strict,
        "predicted Applied outputs missing",
    );
}

#[test]
fn a_prototype_set_after_a_version_at_the_offset_edge_is_refused_as_clock_ahead() {
    // A put whose version sits exactly at the clock-offset edge with a full logical
    // counter is accepted; the next tick carries into the next millisecond, past the
    // edge, and the prototype set versioned with it is refused.
    let script = Script::new()
        .dkv(1, 0, 0)
        .u8(0)
        .u8(1)
        .record(0, Stamp::EdgeFull, 0, Some(b"edge"))
        .message(0, 1, 1, b"proto", &[]);
    let strict = KnownBugs {
        own_set_clock_ahead: false,
        ..KNOWN_BUGS
    };
    still_fails(
        "known-bug-own-set-clock-ahead-edge",
        script,
        strict,
        "predicted Applied outputs missing",
    );
}

#[test]
fn writes_back_to_back_each_travel_in_their_own_put() {
    let script = Script::new().writes(&[(0, Some(b"1")), (1, Some(b"2"))]);
    let strict = KnownBugs {
        unbatched_puts: false,
        ..KNOWN_BUGS
    };
    still_fails(
        "known-bug-unbatched-puts",
        script,
        strict,
        "writes not batched",
    );
}

#[test]
fn a_peer_due_while_its_session_runs_leaves_a_deadline_in_the_past() {
    // A session starts at 2000 ms (its deadline 3000 ms); the peer's hello at
    // 2600 ms comes after a gap, making it due again: poll_timeout stays at 2600 ms.
    let script = Script::new()
        .net_up(0)
        .hello(1, 5005, 1)
        .advance(2600)
        .hello(1, 5005, 1)
        .op(Op::TimeoutNow);
    let strict = KnownBugs {
        due_while_session_runs: false,
        ..KNOWN_BUGS
    };
    still_fails(
        "known-bug-due-while-session-runs",
        script,
        strict,
        "still due after handle_timeout",
    );
}

#[test]
fn an_id_replaced_at_its_endpoint_leaves_its_session_due_with_no_dkv_peer_live() {
    // Found by the fuzzer (29 bytes, minimized): peer-one's session runs and a net
    // up makes it due; a hello from the same endpoint with id "peer two" replaces
    // the id without ending peer-one's reconciliation state; once peer two times
    // out no dkv peer is live, yet peer-one's stale due entry keeps poll_timeout in
    // the past until its session times out.
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("regressions/node/known-bug-due-after-id-replaced");
    let data = std::fs::read(path).expect("regression file");
    let strict = KnownBugs {
        due_while_session_runs: false,
        ..KNOWN_BUGS
    };
    let failure = node_failure(&data, strict);
    assert!(
        failure
            .as_deref()
            .is_some_and(|m| m.contains("still due after handle_timeout")),
        "the bug seems fixed in dkv-proto (strict run: {failure:?})"
    );
    assert_eq!(node_failure(&data, KNOWN_BUGS), None);
}

#[test]
fn sync_steps_claiming_huge_counts_are_kept_as_regressions() {
    // Shown in tests/known_bug_pull_split.rs (strict, it exhausts memory); here the
    // inputs that trigger it are kept and pass tolerated.
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
    let data = script.finish();
    regression_file("node", "known-bug-pull-split-trusts-count", &data);
    assert_eq!(node_failure(&data, KNOWN_BUGS), None);

    use dkv_proto::wire::{Body, Envelope, Range, Step, Summary};
    let msg = dkv_proto::Message::Dkv(Envelope {
        to: Some(dkv_proto::NodeId(*b"me \x00\xffid!")),
        from: dkv_proto::NodeId(*b"someone!"),
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
    dkv_fuzz::decode(&data);
}
