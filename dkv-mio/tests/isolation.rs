//! Fault isolation on the send side, over loopback: a subscriber that stops
//! reading (a raw ZeroMQ reader, or a `dkv node` stopped with SIGSTOP) holds no
//! other subscriber back, is counted, is cut off within its stall timeout, and,
//! once it resumes, gets every acknowledged write by anti-entropy. Every loop is
//! bounded in count and time; beacons go to 127.255.255.255 on a port unique to
//! each test.

mod harness;
mod support;

use dkv_mio::{Config, Dkv, Timings};
use std::time::{Duration, Instant};
use support::wait_until;

/// Waits up to `limit` for `done`, checking every 20 ms; panics naming `what`.
fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    loop {
        if done() {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A loopback config with a 2 s peer timeout (and so a 2 s stall timeout).
fn config() -> Config {
    Config {
        timings: Timings {
            peer_timeout: Duration::from_secs(2),
            ..support::timings()
        },
        ..support::config()
    }
}

/// The env var that makes [`frozen_reader_process`] a frozen reader of the PUB
/// port it holds.
const FROZEN_READER: &str = "DKV_TEST_FROZEN_READER";

/// Not a test of its own: run as a child process by the test below (libzmq 4.3.4
/// aborts a reader like this one once its connection is cut, so it cannot live in
/// the test's process). A ZeroMQ SUB socket that reads nothing, ever: it holds one
/// message and a 4 KiB socket buffer, so the node's data fills its TCP window at
/// once. Its I/O thread keeps sending ZMTP heartbeats every 50 ms, so heartbeats
/// alone would never cut it off. It subscribes to `dkv2.to frozen!!` too, so the
/// node reports its going as an unsubscription. Exits after 120 s at most.
#[test]
fn frozen_reader_process() {
    let Ok(port) = std::env::var(FROZEN_READER) else {
        return;
    };
    let context = zmq::Context::new();
    let reader = context.socket(zmq::SUB).unwrap();
    reader.set_rcvhwm(1).unwrap();
    reader.set_rcvbuf(4096).unwrap();
    reader.set_linger(0).unwrap();
    reader.set_heartbeat_ivl(50).unwrap();
    reader.set_heartbeat_timeout(60_000).unwrap();
    reader.set_subscribe(b"dkv2.all").unwrap();
    let mut directed = dkv_proto::wire::v2::TOPIC_TO.to_vec();
    directed.extend_from_slice(b"frozen!!");
    reader.set_subscribe(&directed).unwrap();
    reader.connect(&format!("tcp://127.0.0.1:{port}")).unwrap();
    std::thread::sleep(Duration::from_secs(120));
}

/// Starts [`frozen_reader_process`] on `node`'s PUB port and waits until it has
/// subscribed.
fn frozen_reader(node: &Dkv) -> std::process::Child {
    let subscribes = node.stats().unwrap().transport.subscribes;
    let child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "frozen_reader_process", "--nocapture"])
        .env(FROZEN_READER, node.pub_port().to_string())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_until("the frozen reader to subscribe", || {
        node.stats().unwrap().transport.subscribes > subscribes
    });
    child
}

#[test]
fn a_frozen_subscriber_holds_no_one_back_and_is_cut_off_within_its_stall_timeout() {
    const SETS: usize = 20_000;
    let config = config();
    let stall = config.effective_stall_timeout();
    let nodes = support::cluster(&config, 2);
    support::connect_fully(&nodes);
    let (a, b) = (&nodes[0], &nodes[1]);
    let mut reader = frozen_reader(a);
    let unsubscribes = a.stats().unwrap().transport.unsubscribes;

    let value = vec![b'v'; 1024];
    let start = Instant::now();
    let mut first_overflow = None;
    for i in 0..SETS {
        a.set(format!("key/{i:05}"), value.clone()).unwrap();
        if first_overflow.is_none() && i % 64 == 0 && a.stats().unwrap().transport.pub_overflows > 0
        {
            first_overflow = Some(Instant::now());
        }
    }
    // B gets every write although the reader took none of them.
    wait_for("b to hold every set", Duration::from_secs(60), || {
        b.status().unwrap().keys >= SETS + 2
    });
    let replicated = start.elapsed();
    let overflowed = wait_for("a to count the full queue", Duration::from_secs(10), || {
        a.stats().unwrap().transport.pub_overflows > 0
    });
    let first_overflow = first_overflow.unwrap_or(Instant::now() - overflowed);
    // The reader is cut: its subscription goes away although it never closed.
    wait_for(
        "the frozen reader to be cut off",
        stall + Duration::from_secs(10),
        || a.stats().unwrap().transport.unsubscribes > unsubscribes,
    );
    let cut_after = first_overflow.elapsed();
    harness::report(&format!(
        "frozen subscriber: {SETS} sets reached b in {:.2} s; reader cut {:.2} s after its \
         queue was found full (stall timeout {stall:?})",
        replicated.as_secs_f64(),
        cut_after.as_secs_f64()
    ));
    assert!(
        cut_after <= stall + Duration::from_secs(4),
        "cut after {cut_after:?}, stall timeout {stall:?}"
    );
    let t = a.stats().unwrap().transport;
    assert!(t.pub_overflows >= 1, "{t:?}");
    let _ = reader.kill();
    let _ = reader.wait();
}

#[cfg(feature = "cli")]
#[test]
fn a_stopped_node_is_cut_off_and_gets_every_acknowledged_write_once_it_resumes() {
    use harness::proc::NodeProc;
    use std::process::Command;

    const SETS: usize = 4_000;
    let config = config();
    let nodes = support::cluster(&config, 2);
    let (a, b) = (&nodes[0], &nodes[1]);
    let mut args = support::loopback_node_args(config.beacon_port);
    args.push("--no-socket".into());
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dkv"));
    cmd.args(&args);
    let mut c = NodeProc::spawn("c", cmd).unwrap();
    wait_until("every node to be ready with every other", || {
        a.ready_peers().unwrap().len() == 2 && b.ready_peers().unwrap().len() == 2
    });
    let unsubscribes = a.stats().unwrap().transport.unsubscribes;
    let signal = |sig: &str| {
        let ok = Command::new("kill")
            .args([sig, &c.pid().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {sig} failed");
    };
    signal("-STOP");
    let stopped = Instant::now();
    // Large enough to fill c's queue and TCP buffers many times over.
    let value = vec![b'w'; 8 * 1024];
    for i in 0..SETS {
        a.set(format!("w/{i:05}"), value.clone()).unwrap();
    }
    wait_for("b to hold every write", Duration::from_secs(60), || {
        b.get_local(format!("w/{:05}", SETS - 1)).unwrap().is_some()
            && b.keys_with_prefix("w/").unwrap().len() == SETS
    });
    wait_for(
        "the stopped node to be cut off",
        Duration::from_secs(20),
        || a.stats().unwrap().transport.unsubscribes > unsubscribes,
    );
    let cut = stopped.elapsed();
    signal("-CONT");
    let resumed = Instant::now();
    wait_for("c to hold every write", Duration::from_secs(30), || {
        let stats = c.stats();
        stats.get("keys").and_then(|k| k.parse::<usize>().ok()) >= Some(SETS)
    });
    let t = a.stats().unwrap().transport;
    harness::report(&format!(
        "stopped node: cut {:.2} s after SIGSTOP; converged {:.2} s after SIGCONT; a's \
         overflows {}",
        cut.as_secs_f64(),
        resumed.elapsed().as_secs_f64(),
        t.pub_overflows
    ));
    assert!(t.pub_overflows >= 1, "{t:?}");
    for i in (0..SETS).step_by(499) {
        let key = format!("w/{i:05}");
        assert_eq!(
            c.get(&key, 1000).as_deref().map(str::len),
            Some(value.len()),
            "{key}"
        );
    }
    drop(c);
}
