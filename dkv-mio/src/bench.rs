//! What `dkv bench` and the `loopback_bench` example measure, in one place: dkv
//! nodes in this process over the loopback broadcast address, and the same
//! workloads on raw ZeroMQ PUB/SUB sockets over loopback TCP (no dkv), so the two
//! can be compared on one machine in one run. Every wait is bounded by the
//! workload's timeout and fails with a [`BenchError`] naming what it waited for;
//! nothing here asserts a speed.

use crate::{unused_udp_port, Config, Dkv, LOOPBACK_BROADCAST};
use bytes::Bytes;
use std::collections::VecDeque;
use std::net::{Ipv4Addr, UdpSocket};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

/// The 1, 5 and 15 minute load averages, as `/proc/loadavg` has them (empty
/// where there is none).
pub fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The median of `values` (the upper one of an even count); NaN if empty.
pub fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Why a measurement could not be made: a wait that timed out, a node or socket
/// that failed. The text says which.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BenchError(pub String);

impl std::fmt::Display for BenchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BenchError {}

impl From<crate::Error> for BenchError {
    fn from(err: crate::Error) -> Self {
        BenchError(format!("node error: {err}"))
    }
}

impl From<zmq::Error> for BenchError {
    fn from(err: zmq::Error) -> Self {
        BenchError(format!("zmq error: {err}"))
    }
}

impl From<std::io::Error> for BenchError {
    fn from(err: std::io::Error) -> Self {
        BenchError(format!("I/O error: {err}"))
    }
}

/// What one measurement moves, and how long any one wait in it may take.
#[derive(Clone, Debug)]
pub struct Workload {
    /// Keys written (replication), held (gets, bootstrap) or shared before the
    /// partition (reconciliation).
    pub keys: usize,
    /// Bytes per value.
    pub value_bytes: usize,
    /// Writes in flight at once on the writing node (`Dkv::set_pending`); 1 waits
    /// for each acknowledgement as `Dkv::set` does.
    pub window: usize,
    /// The longest any single wait may take before the measurement fails.
    pub timeout: Duration,
}

impl Workload {
    /// The key of number `i`: 16 bytes for up to 10^11 keys.
    pub fn key(i: usize) -> String {
        format!("bench/{i:010}")
    }

    /// The value every key gets.
    pub fn value(&self) -> Bytes {
        Bytes::from(vec![b'v'; self.value_bytes])
    }
}

/// A loopback config on a fresh beacon port, with fast beacons (50 ms) and a 2 s
/// peer timeout so a busy machine does not drop peers mid-run; the rest (sync
/// every 2 s, limits, queues) is dkv's default.
pub fn loopback_config() -> Result<Config, BenchError> {
    let port = unused_udp_port()?;
    let mut config = Config {
        timings: Config::fast_timings(),
        ..Config::loopback(port)
    };
    config.timings.peer_timeout = Duration::from_secs(2);
    Ok(config)
}

/// The same config on another fresh beacon port: nodes on it do not meet nodes
/// on the old one.
fn on_fresh_port(config: &Config) -> Result<Config, BenchError> {
    Ok(Config {
        beacon_port: unused_udp_port()?,
        ..config.clone()
    })
}

/// Polls `done` every `every` until it holds; fails naming `what` after `limit`.
pub fn wait_for(
    what: &str,
    limit: Duration,
    every: Duration,
    mut done: impl FnMut() -> Result<bool, BenchError>,
) -> Result<Duration, BenchError> {
    let start = Instant::now();
    while !done()? {
        if start.elapsed() > limit {
            return Err(BenchError(format!(
                "timed out after {:.0} s waiting for {what}",
                limit.as_secs_f64()
            )));
        }
        std::thread::sleep(every);
    }
    Ok(start.elapsed())
}

fn keys_held(node: &Dkv) -> Result<usize, BenchError> {
    Ok(node.status()?.keys)
}

/// Writes keys `range` to `node`, `window` writes in flight, each acknowledged
/// before it returns.
pub fn write_keys(
    node: &Dkv,
    range: std::ops::Range<usize>,
    value: &Bytes,
    window: usize,
) -> Result<(), BenchError> {
    let window = window.max(1);
    let mut in_flight = VecDeque::with_capacity(window);
    for i in range {
        in_flight.push_back(node.set_pending(Workload::key(i), value.clone())?);
        if in_flight.len() >= window {
            if let Some(pending) = in_flight.pop_front() {
                pending.wait()?;
            }
        }
    }
    for pending in in_flight {
        pending.wait()?;
    }
    Ok(())
}

/// Waits until every node in `nodes` sees all the others as ready peers (a
/// write made now reaches them).
fn wait_ready(nodes: &[&Dkv], limit: Duration) -> Result<(), BenchError> {
    for node in nodes {
        node.wait_for_peers(nodes.len() - 1, limit)?;
    }
    Ok(())
}

/// What a replication run measured.
#[derive(Clone, Debug)]
pub struct Replication {
    /// Sets per second, counted until every peer held every key.
    pub rate: f64,
    /// How long the writes took to be acknowledged by the writer.
    pub written: Duration,
    /// How long until every peer held every key.
    pub took: Duration,
    /// Put messages the writer sent.
    pub put_messages: u64,
    /// Times the writer's PUB queue to a subscriber overflowed.
    pub pub_overflows: u64,
}

/// dkv replication: a writer and `peers` peers start on `config`'s port; once
/// all are ready peers, the writer sets `keys` keys (`window` in flight); the
/// time runs until every peer holds every key.
pub fn dkv_replication(
    config: &Config,
    workload: &Workload,
    peers: usize,
) -> Result<Replication, BenchError> {
    let config = on_fresh_port(config)?;
    let nodes = (0..=peers)
        .map(|_| Dkv::start(config.clone()))
        .collect::<Result<Vec<_>, _>>()?;
    wait_ready(&nodes.iter().collect::<Vec<_>>(), workload.timeout)?;
    let (writer, receivers) = nodes.split_first().expect("at least the writer");
    let value = workload.value();
    let start = Instant::now();
    write_keys(writer, 0..workload.keys, &value, workload.window)?;
    let written = start.elapsed();
    wait_for(
        "every peer to hold every key",
        workload.timeout,
        Duration::from_millis(1),
        || {
            for node in receivers {
                if keys_held(node)? < workload.keys {
                    return Ok(false);
                }
            }
            Ok(true)
        },
    )?;
    let took = start.elapsed();
    let stats = writer.stats()?;
    for node in &nodes {
        node.shutdown()?;
    }
    Ok(Replication {
        rate: workload.keys as f64 / took.as_secs_f64(),
        written,
        took,
        put_messages: stats.proto.out_put,
        pub_overflows: stats.transport.pub_overflows,
    })
}

/// Sends each node of each of `pairs` the other's dkv hello every 100 ms until
/// `stop`, so the two are dkv peers though each node beacons on a port of its
/// own (where no other node listens). With 1 s beacon intervals that is far
/// below the gap after which a peer heard again counts as back (2.5 s), which
/// reconciles, and seldom enough that few gets meet a loop reading a hello.
fn cross_hellos(
    pairs: &[[&Dkv; 2]],
    stop: Arc<AtomicBool>,
) -> Result<std::thread::JoinHandle<()>, BenchError> {
    let hello = |node: &Dkv| dkv_proto::encode_hello(node.pub_port(), node.id());
    let sends: Vec<(Vec<u8>, u16)> = pairs
        .iter()
        .flat_map(|[a, b]| [(hello(a), b.beacon_port()), (hello(b), a.beacon_port())])
        .collect();
    let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?;
    socket.set_broadcast(true)?;
    Ok(std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            for (hello, beacon_port) in &sends {
                let _ = socket.send_to(hello, (LOOPBACK_BROADCAST, *beacon_port));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }))
}

/// Round-trip times, sorted.
#[derive(Clone, Debug)]
pub struct Latencies {
    /// Every sample, shortest first.
    pub sorted: Vec<Duration>,
    /// Gets that found nothing in time (dkv only).
    pub unanswered: usize,
}

impl Latencies {
    /// The latencies of `samples`, of which `unanswered` found nothing.
    pub fn new(mut samples: Vec<Duration>, unanswered: usize) -> Latencies {
        samples.sort();
        Latencies {
            sorted: samples,
            unanswered,
        }
    }

    /// The `p`th percentile (0..=100), nearest rank below; zero without samples.
    pub fn percentile(&self, p: usize) -> Duration {
        if self.sorted.is_empty() {
            return Duration::ZERO;
        }
        self.sorted[(self.sorted.len() - 1) * p.min(100) / 100]
    }
}

/// Samples a get-latency run takes: up to 1,000, one per key held besides the
/// first (the dkv run's probe), so no sample asks for a key already fetched.
pub fn get_samples(keys: usize) -> usize {
    keys.saturating_sub(1).clamp(1, 1000)
}

/// dkv remote gets, as in a cluster where a key was written by a node the asker
/// does not hear: [`with_remote_asker`]'s asker gets each of [`get_samples`]
/// keys, which misses locally and is answered by the server's reply.
pub fn dkv_remote_get(config: &Config, workload: &Workload) -> Result<Latencies, BenchError> {
    with_remote_asker(config, workload, |asker| {
        timed_gets(asker, get_samples(workload.keys))
    })
}

/// Gets keys `1..=gets` on `asker` one at a time (each waits up to 1 s), timing
/// each.
pub fn timed_gets(asker: &Dkv, gets: usize) -> Result<Latencies, BenchError> {
    let mut latencies = Vec::with_capacity(gets);
    let mut unanswered = 0;
    for i in 1..=gets {
        let start = Instant::now();
        let value = asker.get(Workload::key(i), Some(Duration::from_secs(1)))?;
        latencies.push(start.elapsed());
        unanswered += usize::from(value.is_none());
    }
    Ok(Latencies::new(latencies, unanswered))
}

/// The setup of [`dkv_remote_get`], three dkv nodes, each beaconing on a port of
/// its own: the server meets the writer and the asker through hand-made dkv
/// hellos ([`cross_hellos`]); the writer and the asker never meet. Once the
/// server has reconciled with both (all empty), the writer writes keys
/// `0..keys`, which reach the server alone. Neither the server nor the asker
/// reconciles periodically (an hour apart), so every key misses on the asker
/// until it gets it, and a get asks the server only, with one dkv `ask` (no prototype peer, so no
/// prototype question). Waits until the asker's get of key 0 is answered, runs
/// `measure` on the asker, then stops the nodes. Fails if the asker then holds
/// a key it did not ask for (a reconciliation ran after all) or it sent a
/// prototype question.
pub fn with_remote_asker<T>(
    config: &Config,
    workload: &Workload,
    measure: impl FnOnce(&Dkv) -> Result<T, BenchError>,
) -> Result<T, BenchError> {
    // Beacons every second: a peer counts as back (and is reconciled with) only
    // after 2.5 s without its hello (`cross_hellos`). The server and the asker
    // never reconcile on their own after they met; the writer keeps its periodic
    // reconciliation, which repairs a write the server missed.
    let mut writer_config = config.clone();
    writer_config.timings.beacon_interval = Duration::from_secs(1);
    let mut quiet = writer_config.clone();
    quiet.timings.sync_interval = Duration::from_secs(3600);
    let server = Dkv::start(on_fresh_port(&quiet)?)?;
    let writer = Dkv::start(on_fresh_port(&writer_config)?)?;
    let asker = Dkv::start(on_fresh_port(&quiet)?)?;
    let stop = Arc::new(AtomicBool::new(false));
    let hellos = cross_hellos(&[[&server, &writer], [&server, &asker]], Arc::clone(&stop))?;
    let measured = (|| {
        wait_ready(&[&server, &writer], workload.timeout)?;
        wait_ready(&[&server, &asker], workload.timeout)?;
        server.wait_for_peers(2, workload.timeout)?;
        write_keys(
            &writer,
            0..workload.keys,
            &workload.value(),
            workload.window,
        )?;
        wait_for(
            "the server to hold every key",
            workload.timeout,
            Duration::from_millis(1),
            || Ok(keys_held(&server)? >= workload.keys),
        )?;
        wait_for(
            "the asker's first remote get",
            workload.timeout,
            Duration::from_millis(1),
            || {
                Ok(asker
                    .get(Workload::key(0), Some(Duration::from_millis(100)))?
                    .is_some())
            },
        )?;
        let asked_before = asker.stats()?.proto.out_ask;
        let result = measure(&asker)?;
        let stats = asker.stats()?.proto;
        let held = keys_held(&asker)?;
        let asked = stats.out_ask - asked_before;
        if stats.out_question > 0 || held > asked as usize + 1 {
            return Err(BenchError(format!(
                "the asker holds {held} keys after {asked} asks and {} questions: \
                 keys reached it other than by its gets",
                stats.out_question
            )));
        }
        Ok(result)
    })();
    stop.store(true, Ordering::Relaxed);
    let _ = hellos.join();
    for node in [&asker, &writer, &server] {
        node.shutdown()?;
    }
    measured
}

/// A node loaded with `keys` keys, for bootstrap runs.
pub fn dkv_holder(config: &Config, workload: &Workload) -> Result<Dkv, BenchError> {
    let holder = Dkv::start(on_fresh_port(config)?)?;
    write_keys(
        &holder,
        0..workload.keys,
        &workload.value(),
        workload.window,
    )?;
    Ok(holder)
}

/// dkv bootstrap: a joiner starts next to `holder` (on its beacon port); the
/// time runs from its start until it holds every one of `holder`'s keys.
pub fn dkv_bootstrap(
    holder: &Dkv,
    config: &Config,
    limit: Duration,
) -> Result<Duration, BenchError> {
    let keys = keys_held(holder)?;
    let config = Config {
        beacon_port: holder.beacon_port(),
        ..config.clone()
    };
    let started = Instant::now();
    let joiner = Dkv::start(config)?;
    wait_for(
        "the joiner to hold every key",
        limit,
        Duration::from_millis(1),
        || Ok(keys_held(&joiner)? >= keys),
    )?;
    let took = started.elapsed();
    joiner.shutdown()?;
    Ok(took)
}

/// Keys each side of a reconciliation run writes while partitioned: a tenth of
/// the shared keys, at least one.
pub fn partition_writes(keys: usize) -> usize {
    (keys / 10).max(1)
}

/// A directory removed (with what it holds) when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Result<TempDir, BenchError> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let path = std::env::temp_dir().join(format!("dkv-bench-{}-{nanos}", std::process::id()));
        std::fs::create_dir(&path)?;
        Ok(TempDir(path))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// dkv reconciliation after a partition. Nodes a (in memory) and b (on disk, in a
/// temporary data dir) share `keys` keys. Then b stops and starts again from its
/// data dir on another beacon port: the two no longer meet. Each side writes
/// [`partition_writes`] keys of its own. Then b stops and starts again from its
/// data dir on a's port; the time runs from that start until both hold the
/// union (equal fingerprints). It includes b's start from its data dir.
pub fn dkv_reconciliation(config: &Config, workload: &Workload) -> Result<Duration, BenchError> {
    let dir = TempDir::new()?;
    let shared = on_fresh_port(config)?;
    let on_disk = |config: &Config| Config {
        data_dir: Some(dir.0.clone()),
        ..config.clone()
    };
    let value = workload.value();
    let a = Dkv::start(shared.clone())?;
    let b = Dkv::start(on_disk(&shared))?;
    wait_ready(&[&a, &b], workload.timeout)?;
    write_keys(&a, 0..workload.keys, &value, workload.window)?;
    wait_for(
        "b to hold the shared keys",
        workload.timeout,
        Duration::from_millis(5),
        || Ok(keys_held(&b)? >= workload.keys),
    )?;
    b.shutdown()?;
    let apart = Dkv::start(on_disk(&on_fresh_port(config)?))?;
    let extra = partition_writes(workload.keys);
    let (a_keys, b_keys) = (
        workload.keys..workload.keys + extra,
        workload.keys + extra..workload.keys + 2 * extra,
    );
    write_keys(&a, a_keys, &value, workload.window)?;
    write_keys(&apart, b_keys, &value, workload.window)?;
    apart.shutdown()?;
    let union = workload.keys + 2 * extra;
    let started = Instant::now();
    let b = Dkv::start(on_disk(&shared))?;
    wait_for(
        "both sides to hold the union",
        workload.timeout,
        Duration::from_millis(1),
        || {
            let (sa, sb) = (a.status()?, b.status()?);
            Ok(sa.keys >= union && sb.keys >= union && sa.summary == sb.summary)
        },
    )?;
    let took = started.elapsed();
    a.shutdown()?;
    b.shutdown()?;
    Ok(took)
}

/// The raw PUB side: an XPUB socket on a loopback TCP port of its own, verbose
/// so each subscriber's subscription shows, with no queue limit so nothing is
/// dropped (the memory is bounded by the workload).
struct RawPub {
    socket: zmq::Socket,
    endpoint: String,
}

impl RawPub {
    fn bind(context: &zmq::Context) -> Result<RawPub, BenchError> {
        let socket = context.socket(zmq::XPUB)?;
        socket.set_xpub_verbose(true)?;
        socket.set_sndhwm(0)?;
        socket.set_linger(0)?;
        socket.bind("tcp://127.0.0.1:*")?;
        let endpoint = socket
            .get_last_endpoint()?
            .map_err(|_| BenchError("the PUB endpoint is not UTF-8".into()))?;
        Ok(RawPub { socket, endpoint })
    }

    /// Waits until `count` subscriptions arrived.
    fn wait_subscribers(&self, count: usize, limit: Duration) -> Result<(), BenchError> {
        let deadline = Instant::now() + limit;
        let mut seen = 0;
        while seen < count {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(BenchError(format!(
                    "timed out waiting for raw subscribers ({seen} of {count})"
                )));
            }
            if self
                .socket
                .poll(zmq::POLLIN, left.as_millis().min(1000) as i64)?
                > 0
            {
                let message = self.socket.recv_bytes(0)?;
                seen += usize::from(message.first() == Some(&1));
            }
        }
        Ok(())
    }
}

/// A raw SUB socket connected to `endpoint`, subscribed to `topic`, with no
/// queue limit.
fn raw_sub(
    context: &zmq::Context,
    endpoint: &str,
    topic: &[u8],
) -> Result<zmq::Socket, BenchError> {
    let socket = context.socket(zmq::SUB)?;
    socket.set_rcvhwm(0)?;
    socket.set_linger(0)?;
    socket.set_subscribe(topic)?;
    socket.connect(endpoint)?;
    Ok(socket)
}

/// Receives `count` messages on `socket` (each checked to have `frames`
/// frames), failing after `limit` without one.
fn receive_all(
    socket: &zmq::Socket,
    count: usize,
    frames: usize,
    limit: Duration,
) -> Result<(), BenchError> {
    socket.set_rcvtimeo(limit.as_millis().min(i32::MAX as u128) as i32)?;
    for received in 0..count {
        let message = socket.recv_multipart(0).map_err(|err| {
            BenchError(format!(
                "raw subscriber got {received} of {count} messages: {err}"
            ))
        })?;
        if message.len() != frames {
            return Err(BenchError(format!(
                "raw subscriber got a message of {} frames, not {frames}",
                message.len()
            )));
        }
    }
    Ok(())
}

/// Sends keys `range` as prototype `set` messages: three frames, topic, key and
/// value.
fn send_sets(
    publisher: &RawPub,
    range: std::ops::Range<usize>,
    value: &[u8],
) -> Result<(), BenchError> {
    for i in range {
        let key = Workload::key(i);
        publisher
            .socket
            .send_multipart([&b"set"[..], key.as_bytes(), value], 0)?;
    }
    Ok(())
}

/// Raw streams: one publisher per entry of `streams`, each sending its range
/// of keys to its subscribers (each on a thread of its own, as each dkv node
/// has one). Returns the time from the first send until every subscriber has
/// received all its publisher sent; with `from_connect`, from before the
/// subscribers connect.
fn raw_streams(
    streams: &[(std::ops::Range<usize>, usize)],
    value_bytes: usize,
    limit: Duration,
    from_connect: bool,
) -> Result<Duration, BenchError> {
    let context = zmq::Context::new();
    let value = vec![b'v'; value_bytes];
    let publishers = streams
        .iter()
        .map(|_| RawPub::bind(&context))
        .collect::<Result<Vec<_>, _>>()?;
    let connect_start = Instant::now();
    let (done_tx, done_rx) = mpsc::channel();
    let mut threads = Vec::new();
    for ((range, subscribers), publisher) in streams.iter().zip(&publishers) {
        for _ in 0..*subscribers {
            let socket = raw_sub(&context, &publisher.endpoint, b"set")?;
            let (count, done) = (range.len(), done_tx.clone());
            threads.push(std::thread::spawn(move || {
                let _ = done.send(receive_all(&socket, count, 3, limit));
            }));
        }
    }
    drop(done_tx);
    for ((_, subscribers), publisher) in streams.iter().zip(&publishers) {
        publisher.wait_subscribers(*subscribers, limit)?;
    }
    let start = if from_connect {
        connect_start
    } else {
        Instant::now()
    };
    for ((range, _), publisher) in streams.iter().zip(&publishers) {
        send_sets(publisher, range.clone(), &value)?;
    }
    let mut outcome = Ok(());
    for done in done_rx {
        outcome = outcome.and(done);
    }
    let took = start.elapsed();
    for thread in threads {
        let _ = thread.join();
    }
    outcome.map(|()| took)
}

/// Raw replication: one message per set (prototype `set`: topic, key, value) on
/// one PUB socket to `peers` SUB sockets; messages per second until every
/// subscriber received every message.
pub fn raw_replication(workload: &Workload, peers: usize) -> Result<f64, BenchError> {
    let took = raw_streams(
        &[(0..workload.keys, peers)],
        workload.value_bytes,
        workload.timeout,
        false,
    )?;
    Ok(workload.keys as f64 / took.as_secs_f64())
}

/// Raw bootstrap: a subscriber connects to a publisher that then sends it every
/// key and value, one message each; the time runs from the connect until all
/// arrived.
pub fn raw_bootstrap(workload: &Workload) -> Result<Duration, BenchError> {
    raw_streams(
        &[(0..workload.keys, 1)],
        workload.value_bytes,
        workload.timeout,
        true,
    )
}

/// Raw reconciliation: the differences known in advance, each side sends the
/// other the [`partition_writes`] keys it wrote, one message each, over a
/// PUB/SUB pair per direction; the time until both received them all.
pub fn raw_reconciliation(workload: &Workload) -> Result<Duration, BenchError> {
    let (keys, extra) = (workload.keys, partition_writes(workload.keys));
    raw_streams(
        &[(keys..keys + extra, 1), (keys + extra..keys + 2 * extra, 1)],
        workload.value_bytes,
        workload.timeout,
        false,
    )
}

/// Raw remote gets: a question (`question`, key) on one PUB/SUB pair and its
/// answer (`answer`, key, value) on another, a server thread answering; one
/// question at a time, [`get_samples`] of them after one to warm up. One ZeroMQ
/// context (one I/O thread) serves both sides.
pub fn raw_remote_get(workload: &Workload) -> Result<Latencies, BenchError> {
    raw_remote_get_on(workload, false)
}

/// [`raw_remote_get`], with a ZeroMQ context per side if `context_per_side` (the
/// asker's PUB and SUB on one, the server's on another): one I/O thread per
/// side, as each dkv node has.
pub fn raw_remote_get_on(
    workload: &Workload,
    context_per_side: bool,
) -> Result<Latencies, BenchError> {
    let context = zmq::Context::new();
    let server_context = if context_per_side {
        zmq::Context::new()
    } else {
        context.clone()
    };
    let questions = RawPub::bind(&context)?;
    let answers = RawPub::bind(&server_context)?;
    let asker = raw_sub(&context, &answers.endpoint, b"answer")?;
    let server_in = raw_sub(&server_context, &questions.endpoint, b"question")?;
    let limit = workload.timeout;
    server_in.set_rcvtimeo(limit.as_millis().min(i32::MAX as u128) as i32)?;
    asker.set_rcvtimeo(limit.as_millis().min(i32::MAX as u128) as i32)?;
    questions.wait_subscribers(1, limit)?;
    answers.wait_subscribers(1, limit)?;
    let samples = get_samples(workload.keys);
    let value = vec![b'v'; workload.value_bytes];
    let answer_socket = answers.socket;
    let server = std::thread::spawn(move || -> Result<(), BenchError> {
        for _ in 0..=samples {
            let question = server_in.recv_multipart(0)?;
            let key = question.get(1).map_or(&[][..], Vec::as_slice);
            answer_socket.send_multipart([&b"answer"[..], key, &value], 0)?;
        }
        Ok(())
    });
    let mut latencies = Vec::with_capacity(samples);
    let asked = (|| {
        for i in 0..=samples {
            let key = Workload::key(i % workload.keys.max(1));
            let start = Instant::now();
            questions
                .socket
                .send_multipart([&b"question"[..], key.as_bytes()], 0)?;
            let answer = asker
                .recv_multipart(0)
                .map_err(|err| BenchError(format!("raw question {i} got no answer: {err}")))?;
            if answer.get(1).map(Vec::as_slice) != Some(key.as_bytes()) {
                return Err(BenchError("a raw answer for the wrong key".into()));
            }
            if i > 0 {
                latencies.push(start.elapsed());
            }
        }
        Ok(())
    })();
    let served = server
        .join()
        .unwrap_or_else(|_| Err(BenchError("the raw server thread panicked".into())));
    asked.and(served)?;
    Ok(Latencies::new(latencies, 0))
}
