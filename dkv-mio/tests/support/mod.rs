//! Shared helpers for dkv-mio's loopback tests: configs on a beacon port unique to
//! each test, bounded waits, and small clusters.

#![allow(dead_code)] // each test binary uses a different part

use dkv_mio::{unused_udp_port, Config, Dkv, Timings};
use std::time::{Duration, Instant};

/// The longest any single wait in these tests may take before it fails.
pub const LIMIT: Duration = Duration::from_secs(15);

/// Fast timings with some slack for a busy machine: beacons every 50 ms, peers
/// down after 1 s of silence.
pub fn timings() -> Timings {
    Timings {
        peer_timeout: Duration::from_millis(1000),
        bootstrap_delay: Duration::from_millis(300),
        bootstrap_settle: Duration::from_millis(500),
        ..Config::fast_timings()
    }
}

/// A loopback config on a fresh beacon port.
pub fn config() -> Config {
    let port = unused_udp_port().expect("a free UDP port");
    Config {
        timings: timings(),
        ..Config::loopback(port)
    }
}

/// Checks `done` every 10 ms until it holds; panics naming `what` after `LIMIT`.
pub fn wait_until(what: &str, mut done: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    loop {
        if done() {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < LIMIT,
            "timed out after {LIMIT:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Starts `n` nodes sharing `config` and waits until every node sees all others.
pub fn cluster(config: &Config, n: usize) -> Vec<Dkv> {
    let nodes: Vec<Dkv> = (0..n)
        .map(|_| Dkv::start(config.clone()).expect("node starts"))
        .collect();
    wait_until("every node to see every other", || {
        nodes
            .iter()
            .all(|node| node.peers().expect("running").len() == n - 1)
    });
    nodes
}

/// Waits until every node's data connections carry sets to every other node, by
/// setting a probe key on each (repeatedly, bounded) until all hold all probes.
pub fn connect_fully(nodes: &[Dkv]) {
    wait_until("sets from every node to reach every node", || {
        for (i, node) in nodes.iter().enumerate() {
            node.set(format!("probe/{i}"), "x").expect("running");
        }
        std::thread::sleep(Duration::from_millis(20));
        nodes.iter().all(|node| {
            (0..nodes.len()).all(|i| {
                node.get_local(format!("probe/{i}"))
                    .expect("running")
                    .is_some()
            })
        })
    });
}

/// The lines `reader` yields, sent on by a thread of their own until the reader
/// ends or fails, or the receiver is dropped.
pub fn line_channel(
    reader: impl std::io::Read + Send + 'static,
) -> std::sync::mpsc::Receiver<String> {
    use std::io::BufRead;
    let (tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(reader).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    lines
}

/// `dkv node` on loopback broadcast at beacon `port`, with fast beacons (50 ms)
/// and a 1 s peer timeout; callers add their own options.
pub fn loopback_node_args(port: u16) -> Vec<String> {
    [
        "node",
        "--beacon-addr",
        "127.255.255.255",
        "--beacon-port",
        &port.to_string(),
        "--beacon-interval-ms",
        "50",
        "--peer-timeout-ms",
        "1000",
    ]
    .map(String::from)
    .to_vec()
}

/// A peer made of raw sockets: a ZeroMQ PUB socket on loopback (no send limit), which
/// a node subscribes to once it hears the hand-made prototype beacon `announce` sends.
pub struct RawPeer {
    _context: zmq::Context,
    publisher: zmq::Socket,
    port: u16,
}

impl RawPeer {
    /// A PUB socket bound to a free loopback port.
    pub fn new() -> RawPeer {
        let context = zmq::Context::new();
        let publisher = context.socket(zmq::PUB).unwrap();
        publisher.set_sndhwm(0).unwrap(); // unlimited: a test's burst must not drop
        publisher.set_linger(0).unwrap();
        publisher.bind("tcp://127.0.0.1:*").unwrap();
        let endpoint = publisher.get_last_endpoint().unwrap().unwrap();
        let port = endpoint.rsplit(':').next().unwrap().parse().unwrap();
        RawPeer {
            _context: context,
            publisher,
            port,
        }
    }

    /// Its PUB endpoint, as a node lists it among its peers.
    pub fn endpoint(&self) -> std::net::SocketAddr {
        std::net::SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Sends one prototype beacon for its port to `beacon_port` on loopback broadcast.
    pub fn announce(&self, beacon_port: u16) {
        let socket = std::net::UdpSocket::bind(("127.0.0.1", 0)).unwrap();
        socket.set_broadcast(true).unwrap();
        socket
            .send_to(
                format!("beacon {}", self.port).as_bytes(),
                (dkv_mio::LOOPBACK_BROADCAST, beacon_port),
            )
            .unwrap();
    }

    /// Publishes one multipart message.
    pub fn send(&self, frames: &[&[u8]]) {
        self.publisher.send_multipart(frames, 0).unwrap();
    }
}
