//! Target `node`: an arbitrary sequence of inputs through one [`Node`], driven by
//! its contract, with the contract's invariants checked after every step.

use super::assert_stats_monotonic;
use crate::input::Reader;
use bytes::Bytes;
use dkv_proto::{
    encode_beacon, BootstrapPhase, Config, GetId, Message, Node, NodeId, Output, Stats, Timings,
};
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

/// The fuzzed node's id; it contains a space, as real ids may.
pub const OWN_ID: NodeId = NodeId(*b"own id\x00\xff");
/// The fuzzed node's PUB port.
pub const PUB_PORT: u16 = 41017;
/// Ids that messages may carry: the node's own first, then other peers'.
pub const IDS: [NodeId; 4] = [
    OWN_ID,
    NodeId(*b"peer-one"),
    NodeId(*b"peer two"),
    NodeId([0; 8]),
];
/// Addresses for net up and beacon sources. Several nodes share the first host.
pub const IPS: [IpAddr; 8] = [
    IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
    IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)),
    IpAddr::V4(Ipv4Addr::new(10, 0, 0, 3)),
    IpAddr::V4(Ipv4Addr::new(192, 168, 7, 9)),
    IpAddr::V4(Ipv4Addr::LOCALHOST),
    IpAddr::V6(Ipv6Addr::LOCALHOST),
    IpAddr::V6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 2)),
    IpAddr::V6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 3)),
];
/// Keys most operations pick from, so that sets, gets, answers and lists collide.
pub const KEYS: [&str; 8] = ["a", "b", "k", "key", "", "clé", "a b", "list"];
/// Upper bound on timer firings one `Advance` may cause, so no input can hang.
const MAX_FIRINGS_PER_ADVANCE: usize = 100_000;

/// One operation of the `node` target: its opcode is the first byte (modulo the
/// number of operations), its operands follow in [`Reader`] format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Op {
    /// `ip: u8` (index into `IPS`): `handle_net_up`.
    NetUp = 0,
    /// `handle_net_down`.
    NetDown = 1,
    /// `ip: u8`, `datagram: bytes`: `handle_beacon` with arbitrary bytes.
    RawBeacon = 2,
    /// `ip: u8`, `port: u16`: `handle_beacon` with a well-formed payload.
    Beacon = 3,
    /// `count: u8` (mod 8), then that many `frame: bytes`: raw `handle_message`.
    RawMessage = 4,
    /// `kind: u8`, `id: u8` (index into `IDS`), `key`, `value: bytes`, `count: u8`
    /// (mod 8) and that many keys (list answers): an encoded well-formed message.
    Message = 5,
    /// `key`, `timeout: u16` (0: the default, else that many ms): `get`.
    Get = 6,
    /// `key`, `value: bytes`: `set`.
    Set = 7,
    /// `ms: u16`: time advances, firing every deadline on the way in order.
    Advance = 8,
    /// `secs: u8`: time jumps forward and `handle_timeout` fires once, late.
    Jump = 9,
    /// Time advances to the next deadline, which fires.
    NextDeadline = 10,
    /// `handle_timeout` at the current time, possibly early.
    TimeoutNow = 11,
    /// `shutdown`.
    Shutdown = 12,
}

impl Op {
    const ALL: [Op; 13] = [
        Op::NetUp,
        Op::NetDown,
        Op::RawBeacon,
        Op::Beacon,
        Op::RawMessage,
        Op::Message,
        Op::Get,
        Op::Set,
        Op::Advance,
        Op::Jump,
        Op::NextDeadline,
        Op::TimeoutNow,
        Op::Shutdown,
    ];

    fn from_byte(b: u8) -> Op {
        Op::ALL[usize::from(b) % Op::ALL.len()]
    }
}

/// Reads a key: a byte below `0x80` picks from [`KEYS`], anything else is followed
/// by arbitrary bytes (made UTF-8 lossily where the API needs a `String`).
fn read_key<'a>(r: &mut Reader<'a>) -> Option<Vec<u8>> {
    let b = r.u8()?;
    if b < 0x80 {
        Some(KEYS[usize::from(b) % KEYS.len()].as_bytes().to_vec())
    } else {
        Some(r.bytes()?.to_vec())
    }
}

fn read_string_key(r: &mut Reader<'_>) -> Option<String> {
    read_key(r).map(|k| String::from_utf8_lossy(&k).into_owned())
}

/// Timings: the prototype's defaults, or short fuzzed ones (all at least 1 ms).
fn read_timings(r: &mut Reader<'_>) -> Timings {
    if r.u8().unwrap_or(0) & 1 == 0 {
        return Timings::default();
    }
    let mut ms = |scale: u64| Duration::from_millis((1 + u64::from(r.u8().unwrap_or(0))) * scale);
    Timings {
        beacon_interval: ms(10),
        peer_timeout: ms(20),
        get_timeout: ms(5),
        bootstrap_delay: ms(10),
        bootstrap_settle: ms(10),
        bootstrap_question_timeout: ms(5),
        bootstrap_window: 1 + usize::from(r.u8().unwrap_or(0) % 8),
    }
}

/// The harness: the node, the clock, and a model of what the outputs promised.
struct Harness {
    node: Node,
    window: usize,
    now: Instant,
    /// Gets issued and not completed yet, with their key and deadline.
    pending: BTreeMap<GetId, (String, Instant)>,
    /// Every get id ever issued.
    issued: BTreeSet<GetId>,
    /// Endpoints the SUB socket is connected to, per the outputs.
    connected: BTreeSet<SocketAddr>,
    /// What the store must hold: the last value each key was set to by a local
    /// `set`, a `set` message, or an `answer` addressed to this node.
    model: BTreeMap<String, Bytes>,
    stats: Stats,
}

impl Harness {
    fn new(config: Config, now: Instant) -> Harness {
        let window = config.timings.bootstrap_window.max(1);
        let node = Node::new(config);
        let stats = node.stats().clone();
        Harness {
            node,
            window,
            now,
            pending: BTreeMap::new(),
            issued: BTreeSet::new(),
            connected: BTreeSet::new(),
            model: BTreeMap::new(),
            stats,
        }
    }

    /// Drains the outputs, checking each, then checks the node-wide invariants.
    fn drain(&mut self) {
        while let Some(output) = self.node.poll_output() {
            self.check_output(output);
        }
        let peers: BTreeSet<SocketAddr> = self.node.peers().collect();
        assert_eq!(
            peers, self.connected,
            "peers differ from connects - disconnects"
        );
        assert_eq!(self.node.pending_gets(), self.pending.len(), "pending gets");
        assert!(
            self.node
                .entries()
                .eq(self.model.iter().map(|(k, v)| (k.as_str(), v))),
            "the store differs from the last values written"
        );
        let stats = self.node.stats().clone();
        assert_stats_monotonic(&self.stats, &stats);
        self.stats = stats;
        let progress = self.node.bootstrap();
        assert!(
            progress.in_flight <= self.window,
            "window exceeded: {progress:?}"
        );
        if self.node.local_ip().is_none() {
            assert_eq!(
                progress.phase,
                BootstrapPhase::Idle,
                "bootstrap without net"
            );
        }
    }

    fn check_output(&mut self, output: Output) {
        match output {
            Output::Publish(msg) => {
                let frames = msg.encode();
                assert_eq!(
                    Message::decode(&frames).as_ref(),
                    Ok(&msg),
                    "malformed publish"
                );
                match &msg {
                    Message::Question { asker, .. } | Message::List { asker } => {
                        assert_eq!(*asker, OWN_ID, "asked on behalf of another id: {msg:?}")
                    }
                    Message::Answer { value, .. } => {
                        assert!(!value.is_empty(), "answered with an empty value")
                    }
                    Message::Set { .. } | Message::ListAnswer { .. } => {}
                }
            }
            Output::Beacon(payload) => {
                assert_eq!(&payload[..], &encode_beacon(PUB_PORT)[..], "beacon payload");
                assert!(
                    self.node.local_ip().is_some(),
                    "beacon while the net is down"
                );
            }
            Output::Connect(addr) => {
                let own = self.node.local_ip().map(|ip| SocketAddr::new(ip, PUB_PORT));
                assert_ne!(Some(addr), own, "connect to the node's own PUB socket");
                assert_ne!(addr.port(), 0, "connect to port 0");
                assert!(self.connected.insert(addr), "connect twice to {addr}");
            }
            Output::Disconnect(addr) => {
                assert!(
                    self.connected.remove(&addr),
                    "disconnect from {addr} unconnected"
                );
            }
            Output::GetDone(done) => {
                assert!(
                    self.issued.contains(&done.id),
                    "completion of unknown {:?}",
                    done.id
                );
                let Some((key, _)) = self.pending.remove(&done.id) else {
                    panic!("get {:?} completed twice", done.id);
                };
                assert_eq!(done.key, key, "completion for another key");
                assert_eq!(
                    done.value.as_ref(),
                    self.node.value(&key),
                    "completion value differs from the store"
                );
            }
        }
    }

    /// Calls `handle_timeout` at the current time and checks it fired everything due.
    fn fire(&mut self) {
        self.node.handle_timeout(self.now);
        self.drain();
        if let Some(next) = self.node.poll_timeout() {
            assert!(
                next > self.now,
                "deadline {next:?} still due after handle_timeout"
            );
        }
        for (id, (_, deadline)) in &self.pending {
            assert!(*deadline > self.now, "get {id:?} outlived its deadline");
        }
    }

    /// Moves the clock to `to`, firing each deadline on the way at its own time.
    fn advance_to(&mut self, to: Instant) {
        for _ in 0..MAX_FIRINGS_PER_ADVANCE {
            match self.node.poll_timeout() {
                Some(at) if at <= to => {
                    self.now = self.now.max(at);
                    self.fire();
                }
                _ => break,
            }
        }
        self.now = self.now.max(to);
    }

    /// Records in the model what a message the node accepts writes to the store.
    fn model_message(&mut self, msg: &Message) {
        match msg {
            Message::Set { key, value } => {
                self.model.insert(key.clone(), value.clone());
            }
            Message::Answer { asker, key, value } if *asker == OWN_ID => {
                self.model.insert(key.clone(), value.clone());
            }
            _ => {}
        }
    }

    fn get(&mut self, key: String, timeout: Option<Duration>) {
        let deadline = self.now + timeout.unwrap_or(self.node.config().timings.get_timeout);
        let id = self.node.get(self.now, key.clone(), timeout);
        assert!(self.issued.insert(id), "get id {id:?} reused");
        self.pending.insert(id, (key, deadline));
        self.drain();
    }

    fn step(&mut self, op: Op, r: &mut Reader<'_>) -> Option<()> {
        let ip = |r: &mut Reader<'_>| r.u8().map(|b| IPS[usize::from(b) % IPS.len()]);
        match op {
            Op::NetUp => {
                let ip = ip(r)?;
                self.node.handle_net_up(self.now, ip);
            }
            Op::NetDown => self.node.handle_net_down(self.now),
            Op::RawBeacon => {
                let src = ip(r)?;
                let datagram = r.bytes()?;
                self.node.handle_beacon(self.now, src, datagram);
            }
            Op::Beacon => {
                let src = ip(r)?;
                let port = r.u16()?;
                self.node.handle_beacon(self.now, src, &encode_beacon(port));
            }
            Op::RawMessage => {
                let count = r.u8()? % 8;
                let frames: Vec<&[u8]> = (0..count).map_while(|_| r.bytes()).collect();
                if let Ok(msg) = Message::decode(&frames) {
                    self.model_message(&msg);
                }
                self.node.handle_message(self.now, &frames);
            }
            Op::Message => {
                let msg = read_message(r)?;
                self.model_message(&msg);
                self.node.handle_message(self.now, &msg.encode());
            }
            Op::Get => {
                let key = read_string_key(r)?;
                let timeout = match r.u16()? {
                    0 => None,
                    ms => Some(Duration::from_millis(u64::from(ms))),
                };
                self.get(key, timeout);
                return Some(());
            }
            Op::Set => {
                let key = read_string_key(r)?;
                let value = Bytes::copy_from_slice(r.bytes()?);
                self.model.insert(key.clone(), value.clone());
                self.node.set(self.now, key, value);
            }
            Op::Advance => {
                let to = self.now + Duration::from_millis(u64::from(r.u16()?));
                self.advance_to(to);
            }
            Op::Jump => {
                self.now += Duration::from_secs(u64::from(r.u8()?));
                self.fire();
                return Some(());
            }
            Op::NextDeadline => {
                if let Some(at) = self.node.poll_timeout() {
                    self.now = self.now.max(at);
                }
                self.fire();
                return Some(());
            }
            Op::TimeoutNow => {
                self.fire();
                return Some(());
            }
            Op::Shutdown => {
                self.node.shutdown(self.now);
                self.drain();
                assert!(self.pending.is_empty(), "gets left pending by shutdown");
                assert!(
                    self.connected.is_empty(),
                    "peers left connected by shutdown"
                );
                assert_eq!(self.node.local_ip(), None, "net still up after shutdown");
                return Some(());
            }
        }
        self.drain();
        Some(())
    }

    /// The end of every run: time passes every get's deadline, then the node shuts
    /// down; every get has completed exactly once and every connect was undone.
    fn finish(mut self) -> Stats {
        if let Some(last) = self.pending.values().map(|(_, at)| *at).max() {
            self.now = self.now.max(last);
            self.fire();
        }
        assert!(self.pending.is_empty(), "gets pending past their deadline");
        self.node.shutdown(self.now);
        self.drain();
        assert!(
            self.connected.is_empty(),
            "connects and disconnects do not balance"
        );
        self.stats
    }
}

/// Reads the operands of [`Op::Message`] into a well-formed message.
fn read_message(r: &mut Reader<'_>) -> Option<Message> {
    let kind = r.u8()?;
    let asker = IDS[usize::from(r.u8()?) % IDS.len()];
    let key = read_string_key(r)?;
    Some(match kind % 5 {
        0 => Message::Set {
            key,
            value: Bytes::copy_from_slice(r.bytes()?),
        },
        1 => Message::Question { asker, key },
        2 => Message::Answer {
            asker,
            key,
            value: Bytes::copy_from_slice(r.bytes()?),
        },
        3 => Message::List { asker },
        _ => {
            let count = r.u8()? % 8;
            let mut keys = vec![key];
            keys.extend((0..count).map_while(|_| read_string_key(r)));
            Message::ListAnswer { asker, keys }
        }
    })
}

/// Runs the sequence of operations in `data` against one node (id `OWN_ID`, PUB
/// port `PUB_PORT`). The first byte chooses default or fuzzed timings; then come
/// [`Op`]s until the input ends. After every step it checks that:
/// - nothing panics, and `handle_timeout` leaves no deadline due;
/// - every `Publish` re-encodes to frames that decode to itself, questions and lists
///   carry the node's own id, and answers are never empty;
/// - beacons are the node's own payload, sent only while the net is up;
/// - connects and disconnects alternate per endpoint, never target the node's own
///   (local ip, PUB port), and match [`Node::peers`];
/// - the store holds exactly the last value written to each key by a local `set`, a
///   `set` message or an `answer` to this node;
/// - every get completes exactly once, for its key, with the value then stored, and
///   no later than its deadline;
/// - counters never go down; bootstrap stays within its window and idle without net.
///
/// At the end, time passes every get's deadline (all must be complete) and the node
/// shuts down (every peer must be disconnected).
pub fn node(data: &[u8]) {
    node_run(data);
}

/// Runs and checks `data` exactly as [`node`] does, and returns the node's final
/// counters, so tests can show what an input reached.
pub fn node_run(data: &[u8]) -> Stats {
    let mut r = Reader::new(data);
    let timings = read_timings(&mut r);
    let mut config = Config::new(OWN_ID, PUB_PORT);
    config.timings = timings;
    let mut harness = Harness::new(config, Instant::now());
    while let Some(byte) = r.u8() {
        if harness.step(Op::from_byte(byte), &mut r).is_none() {
            break;
        }
    }
    harness.finish()
}
