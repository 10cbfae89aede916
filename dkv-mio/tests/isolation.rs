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
use support::{wait_until, RawPeer};

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

/// Test-only steps of the shared [`RawPeer`].
trait SetUntilHeld {
    fn set_until_held(&self, node: &Dkv, key: &str, value: &[u8]);
}

impl SetUntilHeld for RawPeer {
    /// Sends `set key value` (bounded, beaconing meanwhile) until `node` holds it.
    fn set_until_held(&self, node: &Dkv, key: &str, value: &[u8]) {
        wait_for(
            "the raw publisher's set to arrive",
            Duration::from_secs(20),
            || {
                self.announce(node.beacon_port());
                self.send(&[b"set", key.as_bytes(), value]);
                std::thread::sleep(Duration::from_millis(20));
                node.get_local(key).unwrap().as_deref() == Some(value)
            },
        );
    }
}

#[test]
fn a_peer_that_sends_one_oversized_frame_is_re_dialed_and_heard_again() {
    let node = Dkv::start(config()).unwrap();
    let peer = RawPeer::new();
    peer.set_until_held(&node, "before", b"1");
    // One frame over max_message_bytes (1 MiB + 64 KiB): refused at its size
    // header, and libzmq ends the connection for good.
    let huge = vec![b'x'; 4 << 20];
    peer.send(&[b"set", b"huge", &huge]);
    wait_for("the re-dial", Duration::from_secs(10), || {
        node.stats().unwrap().transport.sub_redials >= 1
    });
    // Its later, normal messages arrive.
    peer.set_until_held(&node, "after", b"2");
    assert_eq!(node.get_local("huge").unwrap(), None);
    let t = node.stats().unwrap().transport;
    assert!(t.sub_redials >= 1, "{t:?}");
}

#[test]
fn subscriber_connections_over_the_per_ip_cap_are_cut_and_counted() {
    let node = Dkv::start(Config {
        max_subscribers_per_ip: 2,
        ..config()
    })
    .unwrap();
    let streams: Vec<std::net::TcpStream> = (0..5)
        .map(|_| std::net::TcpStream::connect(("127.0.0.1", node.pub_port())).unwrap())
        .collect();
    wait_for("3 connections to be cut", Duration::from_secs(10), || {
        node.stats().unwrap().transport.sub_in_cut_cap == 3
    });
    // The cut ones see their connection end; the others stay open.
    let mut ended = 0;
    for mut stream in &streams {
        use std::io::Read;
        stream
            .set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let mut buf = [0u8; 256];
        // A ZMTP greeting may come first; read until EOF, a timeout, or a bound.
        for _ in 0..16 {
            match stream.read(&mut buf) {
                Ok(0) => {
                    ended += 1;
                    break;
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
    }
    assert_eq!(ended, 3);
    let t = node.stats().unwrap().transport;
    assert_eq!((t.sub_in_accepted, t.sub_in_cut_cap), (5, 3), "{t:?}");
    drop(streams);
    wait_for("the closes to be counted", Duration::from_secs(10), || {
        let t = node.stats().unwrap().transport;
        t.sub_in_open == 0 && t.sub_in_closed == 5
    });
}

/// The env var that makes [`fd_exhaustion_process`] run.
const FD_EXHAUSTION: &str = "DKV_TEST_FD_EXHAUSTION";

/// Not a test of its own: run as a child process by the test below, since it uses
/// up every descriptor of its process.
#[test]
fn fd_exhaustion_process() {
    if std::env::var_os(FD_EXHAUSTION).is_none() {
        return;
    }
    let nodes = support::cluster(
        &Config {
            address_check_interval: Some(Duration::from_millis(20)),
            ..config()
        },
        2,
    );
    let (a, b) = (&nodes[0], &nodes[1]);
    support::connect_fully(&nodes);
    let before = a.stats().unwrap();
    // Every descriptor the process may have (bounded).
    let mut held = Vec::new();
    let exhausted = loop {
        match std::fs::File::open("/dev/null") {
            Ok(file) => held.push(file),
            Err(err) => break err,
        }
        assert!(held.len() < 1_000_000, "no descriptor limit?");
    };
    assert_eq!(exhausted.raw_os_error(), Some(24), "{exhausted}"); // EMFILE
                                                                   // Many address checks and beacons with no descriptor to spare.
    std::thread::sleep(Duration::from_millis(1500));
    let during = a.stats().unwrap();
    drop(held);
    assert_eq!(
        during.proto.net_down, before.proto.net_down,
        "taken for net down"
    );
    assert_eq!(
        during.transport.address_changes, before.transport.address_changes,
        "{:?}",
        during.transport
    );
    assert!(during.transport.address_checks > before.transport.address_checks + 10);
    assert!(a.local_ip().unwrap().is_some());
    // Replication goes on.
    a.set("after", "fds").unwrap();
    wait_for(
        "the write after to replicate",
        Duration::from_secs(10),
        || b.get_local("after").unwrap().is_some(),
    );
    println!("FD-EXHAUSTION-OK");
}

#[test]
fn running_out_of_descriptors_never_looks_like_net_down() {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "fd_exhaustion_process", "--nocapture"])
        .env(FD_EXHAUSTION, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("FD-EXHAUSTION-OK"),
        "{}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}
