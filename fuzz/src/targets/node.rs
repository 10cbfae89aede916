//! Target `node`: an arbitrary sequence of inputs through one [`Node`], driven by
//! its contract, with the contract's invariants checked after every step against a
//! [`Model`] of the store and clock.

use super::model::{items, live_keys, summary, ts_at, Model, Prediction, Wall};
use super::{
    assert_publish_well_formed, assert_stats_monotonic, moved, moved_by, stats_delta, Counter,
};
use crate::input::Reader;
use bytes::Bytes;
use dkv_proto::reconcile::PAGE_BYTES;
use dkv_proto::wire::v2::record_len;
use dkv_proto::wire::{Body, Envelope, Item, Range, Record, Step, Summary};
use dkv_proto::{
    encode_beacon, encode_hello, key_hash, parse_datagram, Applied, BootstrapPhase, Config,
    Datagram, Entry, GetId, Message, Node, NodeId, Output, Stats, Timestamp, Timings, Version,
    WallClock,
};
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

/// The fuzzed node's id; it contains a space, as real ids may.
pub const OWN_ID: NodeId = NodeId(*b"own id\x00\xff");
/// The fuzzed node's PUB port.
pub const PUB_PORT: u16 = 41017;
/// Ids that messages and hellos may carry: the node's own first, then other peers'.
pub const IDS: [NodeId; 4] = [
    OWN_ID,
    NodeId(*b"peer-one"),
    NodeId(*b"peer two"),
    NodeId([0; 8]),
];
/// Writers of the versions in dkv/2 records: two peers, the node itself (a forged
/// or replayed write) and the all-zero id of `Version::UNVERSIONED`.
const VERSION_NODES: [NodeId; 4] = [IDS[1], IDS[2], OWN_ID, IDS[3]];
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
/// Keys most operations pick from, so that writes, gets, answers and lists collide.
pub const KEYS: [&str; 8] = ["a", "b", "k", "key", "", "clé", "a b", "list"];
/// The node's wall clock at the start of every run, in ms since the Unix epoch.
pub const START_WALL_MS: u64 = 1_700_000_000_000;
/// The wall clock never jumps past this (2^47 ms, in the year 6429), so wall times
/// stay inside a timestamp's 48 bits of milliseconds.
const MAX_WALL_MS: u64 = 1 << 47;
/// The timestamp of a record's version in [`Op::Dkv`]: the low 4 bits of the
/// version byte (bits 4..6 pick the writer: peer one, peer two, the node itself,
/// the all-zero id). Relative to the wall time `w` when the message is read, and to
/// the clock offset (`offset`), so that every outcome of the clock check is near.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Stamp {
    /// `Version::UNVERSIONED` (the writer bits are ignored).
    Unversioned = 0,
    /// Timestamp 0.
    Zero = 1,
    /// `w`.
    Now = 2,
    /// `w` with the logical counter from a `u16` that follows.
    NowCounter = 3,
    /// `w` - 1 s.
    SecondAgo = 4,
    /// `w` - 1 day (past the default tombstone horizon).
    DayAgo = 5,
    /// `w + offset`: the furthest ahead still accepted.
    Edge = 6,
    /// `w + offset` with a full counter: accepted, and the next tick carries past it.
    EdgeFull = 7,
    /// `w + offset + 1 ms`: refused.
    PastEdge = 8,
    /// `w` + 1 h: refused.
    HourAhead = 9,
    /// The largest timestamp.
    Max = 10,
    /// The node's clock (per the model).
    Clock = 11,
    /// Just above the node's clock.
    AboveClock = 12,
    /// The whole version of the entry held for the key (a tie), or `UNVERSIONED`.
    Held = 13,
    /// The run's start, `START_WALL_MS`.
    Start = 14,
    /// Any timestamp: a `u64` follows.
    Raw = 15,
}

impl Stamp {
    /// Every stamp, by its value.
    pub const ALL: [Stamp; 16] = [
        Stamp::Unversioned,
        Stamp::Zero,
        Stamp::Now,
        Stamp::NowCounter,
        Stamp::SecondAgo,
        Stamp::DayAgo,
        Stamp::Edge,
        Stamp::EdgeFull,
        Stamp::PastEdge,
        Stamp::HourAhead,
        Stamp::Max,
        Stamp::Clock,
        Stamp::AboveClock,
        Stamp::Held,
        Stamp::Start,
        Stamp::Raw,
    ];

    /// The version byte for this timestamp written by `VERSION_NODES[writer]`.
    pub fn by(self, writer: u8) -> u8 {
        ((writer & 3) << 4) | self as u8
    }
}

/// Upper bound on timer firings one `Advance` may cause, so no input can hang.
const MAX_FIRINGS_PER_ADVANCE: usize = 100_000;
/// Session and request ids of the node's own messages remembered for replies.
const RECENT_IDS: usize = 16;

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
    /// `ip: u8`, `port: u16`: `handle_beacon` with a well-formed beacon.
    Beacon = 3,
    /// `count: u8` (mod 8), then that many `frame: bytes`: raw `handle_message`.
    RawMessage = 4,
    /// `kind: u8`, `id: u8` (index into `IDS`), `key`, `value: bytes`, `count: u8`
    /// (mod 8) and that many keys (list answers): a well-formed prototype message.
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
    /// `key`: `delete`.
    Delete = 13,
    /// `mode: u8`, `amount: u16`: the wall clock jumps `amount` units (bits 0..7 of
    /// `mode` mod 5: ms, s, min, h, days) forward, or back if bit 7 is set:
    /// `handle_wall_clock`.
    WallClock = 14,
    /// `ip: u8`, `port: u16`, `id: u8` (index into `IDS`): `handle_beacon` with a
    /// hello, after `handle_subscribed` of that id (the sender heard this node), or
    /// `handle_unsubscribed` if bit 6 of `id` is set.
    Hello = 15,
    /// `from: u8` (index into `IDS`), `to: u8` (mod 4: every node, this node, another
    /// node, this node), `kind: u8` (mod 6: put, ask, sync, pull, fetch, push), then
    /// the body's operands: a well-formed dkv/2 message (see `read_body`).
    Dkv = 16,
    /// `count: u8` (mod 8), then per write `key` and `what: u8` (odd: delete, even:
    /// set to the `value: bytes` that follows): writes back to back, drained once.
    Writes = 17,
}

impl Op {
    const ALL: [Op; 18] = [
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
        Op::Delete,
        Op::WallClock,
        Op::Hello,
        Op::Dkv,
        Op::Writes,
    ];

    fn from_byte(b: u8) -> Op {
        Op::ALL[usize::from(b) % Op::ALL.len()]
    }
}

/// Reads a key: a byte below `0x80` picks from [`KEYS`], anything else is followed
/// by arbitrary bytes (made UTF-8 lossily where the API needs a `String`).
fn read_key(r: &mut Reader<'_>) -> Option<Vec<u8>> {
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

/// A key hash: of a pool key (a byte below `0x80`), or any `u64`.
fn read_hash(r: &mut Reader<'_>) -> Option<u64> {
    let b = r.u8()?;
    if b < 0x80 {
        Some(key_hash(KEYS[usize::from(b) % KEYS.len()]))
    } else {
        r.u64()
    }
}

/// A range: `level: u8` (mod 17), and for levels above 0 a hash (see [`read_hash`])
/// whose range at that level it is.
fn read_range(r: &mut Reader<'_>) -> Option<Range> {
    let level = r.u8()? % (Range::MAX_LEVEL + 1);
    if level == 0 {
        return Some(Range::ROOT);
    }
    let prefix = read_hash(r)? >> (64 - 4 * u32::from(level));
    Range::new(level, prefix)
}

/// "More after" of a pull or push: none, a pool key's hash, the last hash, any.
fn read_after(r: &mut Reader<'_>) -> Option<Option<u64>> {
    Some(match r.u8()? % 4 {
        0 => None,
        1 => Some(read_hash(r)?),
        2 => Some(u64::MAX),
        _ => Some(r.u64()?),
    })
}

/// Timings and seed from the header: the first byte's bit 0 picks the defaults or
/// short fuzzed timings (every one at least 1 ms); its other bits are the seed.
fn read_config(r: &mut Reader<'_>) -> (Timings, u64) {
    let header = r.u8().unwrap_or(0);
    let seed = u64::from(header >> 1);
    if header & 1 == 0 {
        return (Timings::default(), seed);
    }
    let ms = |r: &mut Reader<'_>, scale: u64| {
        Duration::from_millis((1 + u64::from(r.u8().unwrap_or(0))) * scale)
    };
    let timings = Timings {
        beacon_interval: ms(r, 10),
        peer_timeout: ms(r, 20),
        get_timeout: ms(r, 5),
        bootstrap_delay: ms(r, 10),
        bootstrap_settle: ms(r, 10),
        bootstrap_question_timeout: ms(r, 5),
        bootstrap_window: 1 + usize::from(r.u8().unwrap_or(0) % 8),
        sync_interval: ms(r, 10),
        sync_timeout: ms(r, 5),
        max_clock_offset: ms(r, 5),
        tombstone_horizon: ms(r, 100),
    };
    (timings, seed)
}

/// The harness: the node, the clocks, and a model of what the outputs promised.
struct Harness {
    node: Node,
    window: usize,
    horizon_ms: u64,
    offset_ms: u64,
    now: Instant,
    wall: Wall,
    /// The highest wall time the node may have read so far.
    max_wall_ms: u64,
    /// Gets issued and not completed yet, with their key and deadline.
    pending: BTreeMap<GetId, (String, Instant)>,
    /// Every get id ever issued.
    issued: BTreeSet<GetId>,
    /// Endpoints the SUB socket is connected to, per the outputs.
    connected: BTreeSet<SocketAddr>,
    /// The store and clock as the inputs dictate.
    model: Model,
    /// The store as the `Applied` outputs tell it, up to the output being checked.
    view: BTreeMap<String, Entry>,
    /// The `Applied` outputs the current step must produce, in order.
    expected: VecDeque<Applied>,
    /// Whether the current step's writes must be echoed as prototype `set`s.
    echo: Option<bool>,
    /// The highest version applied so far: every local write must beat it.
    max_version: Option<Version>,
    /// The node's clock after the last step.
    clock: Timestamp,
    /// Ids the node may know as dkv nodes (from hellos and accepted dkv/2 messages).
    dkv_ids: BTreeSet<NodeId>,
    /// When each endpoint was last heard (beacon or hello).
    heard: BTreeMap<SocketAddr, Instant>,
    /// When a live peer with no dkv id (a prototype) last beaconed.
    prototype_heard: Option<Instant>,
    /// Whether the last drain held a beacon without a hello.
    lone_beacon: bool,
    /// Whether the input being drained is a datagram (the only one a lone beacon
    /// may answer).
    in_datagram: bool,
    /// Session and request ids from the node's latest messages, newest last.
    recent_ids: VecDeque<u64>,
    stats: Stats,
    /// The run's start, for traces.
    start: Instant,
    /// Print every operation and output (`DKV_FUZZ_TRACE` set), to read an input.
    trace: bool,
}

impl Harness {
    fn new(config: Config) -> Harness {
        let now = config.wall.at;
        let t = &config.timings;
        let model = Model::new(config.id, t.max_clock_offset);
        let node = Node::new(config.clone());
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        Harness {
            window: t.bootstrap_window.max(1),
            horizon_ms: ms(t.tombstone_horizon),
            offset_ms: ms(t.max_clock_offset),
            stats: node.stats(),
            clock: node.clock(),
            node,
            now,
            wall: Wall {
                at: now,
                unix_ms: config.wall.unix_ms,
            },
            max_wall_ms: config.wall.unix_ms,
            pending: BTreeMap::new(),
            issued: BTreeSet::new(),
            connected: BTreeSet::new(),
            model,
            view: BTreeMap::new(),
            expected: VecDeque::new(),
            echo: None,
            max_version: None,
            dkv_ids: BTreeSet::new(),
            heard: BTreeMap::new(),
            prototype_heard: None,
            lone_beacon: false,
            in_datagram: false,
            recent_ids: VecDeque::new(),
            start: now,
            trace: std::env::var_os("DKV_FUZZ_TRACE").is_some(),
        }
    }

    fn wall_ms(&self) -> u64 {
        self.wall.ms(self.now)
    }

    /// A tombstone reported collected: it must be one the view holds, past the
    /// horizon of the latest wall time the node may have read. It leaves the view,
    /// and the model too (which may already hold this step's next entry for it).
    fn collected(&mut self, key: &str) {
        self.max_wall_ms = self.max_wall_ms.max(self.wall_ms());
        let cutoff = ts_at(self.max_wall_ms.saturating_sub(self.horizon_ms));
        let Some(entry) = self.view.remove(key) else {
            panic!("reported {key:?} collected, which it does not hold");
        };
        assert!(entry.value.is_none(), "collected {key:?}, not a tombstone");
        assert!(
            entry.version.ts < cutoff,
            "tombstone of {key:?} collected early"
        );
        if self.model.store.get(key) == Some(&entry) {
            self.model.store.remove(key);
        }
    }

    /// Drains the outputs, checking each in order, then checks the node-wide
    /// invariants. Returns what was published.
    fn drain(&mut self) -> Vec<Message> {
        let outputs: Vec<Output> = std::iter::from_fn(|| self.node.poll_output()).collect();
        if self.trace {
            outputs.iter().for_each(|o| eprintln!("    -> {o:?}"));
            let entries: Vec<_> = self.node.entries().collect();
            eprintln!("    store {entries:?} summary {:?}", self.node.summary());
        }
        let mut published = Vec::new();
        let mut datagrams = Vec::new();
        let mut local = Vec::new();
        let mut collected = 0;
        for output in &outputs {
            match output {
                Output::Publish(msg) | Output::PublishSealed(dkv_proto::Sealed { msg, .. }) => {
                    self.check_publish(msg);
                    published.push(msg.clone());
                }
                Output::Beacon(payload) => {
                    assert!(
                        self.node.local_ip().is_some(),
                        "beacon while the net is down"
                    );
                    datagrams.push(payload.clone());
                }
                Output::Connect(addr) => {
                    let own = self.node.local_ip().map(|ip| SocketAddr::new(ip, PUB_PORT));
                    assert_ne!(Some(*addr), own, "connect to the node's own PUB socket");
                    assert_ne!(addr.port(), 0, "connect to port 0");
                    assert!(self.connected.insert(*addr), "connect twice to {addr}");
                }
                Output::Disconnect(addr) => {
                    assert!(
                        self.connected.remove(addr),
                        "disconnect from {addr} unconnected"
                    );
                }
                Output::GetDone(done) => {
                    assert!(self.issued.contains(&done.id), "unknown {:?}", done.id);
                    let Some((key, _)) = self.pending.remove(&done.id) else {
                        panic!("get {:?} completed twice", done.id);
                    };
                    assert_eq!(done.key, key, "completion for another key");
                    // Completed with the entry held at this point: by a hit, a
                    // timeout, or an arriving entry whose Applied came just before.
                    let held = self.view.get(&key);
                    assert!(
                        done.value == held.and_then(|e| e.value.clone())
                            && done.version == held.map(|e| e.version),
                        "completion {done:?} does not match the entry held, {held:?}"
                    );
                }
                Output::Collected(key) => {
                    self.collected(key);
                    collected += 1;
                }
                Output::Applied(applied) => {
                    self.check_applied(applied);
                    if applied.local {
                        local.push(Record {
                            key: applied.key.clone(),
                            entry: applied.entry.clone(),
                        });
                    }
                }
            }
        }
        assert!(
            self.expected.is_empty(),
            "predicted Applied outputs missing: {:?}",
            self.expected
        );
        self.check_datagrams(&datagrams);
        self.check_puts(&published, &local);
        let changed = outputs.iter().any(|o| matches!(o, Output::Applied(_)));
        self.check_state(changed, collected);
        published
    }

    fn check_publish(&mut self, msg: &Message) {
        assert_publish_well_formed(OWN_ID, msg);
        match msg {
            Message::Answer { key, value, .. } => assert_eq!(
                self.view.get(key).and_then(|e| e.value.as_ref()),
                Some(value),
                "answered with what the store does not hold for {key:?}"
            ),
            Message::ListAnswer { keys, .. } => {
                let mut keys = keys.clone();
                keys.sort();
                assert_eq!(
                    keys,
                    live_keys(&self.view),
                    "a list answer not of live keys"
                );
            }
            Message::Dkv(Envelope { body, .. }) => self.check_dkv_publish(body),
            Message::Set { .. } | Message::Question { .. } | Message::List { .. } => {}
        }
    }

    fn check_dkv_publish(&mut self, body: &Body) {
        let remember = match body {
            Body::Sync { session, steps, .. } => {
                for step in steps {
                    match step {
                        Step::Fingerprint { range, summary: s } => {
                            assert_eq!(*s, summary(&self.view, *range), "sent summary");
                        }
                        Step::Items { range, items: sent } => {
                            let mut sent = sent.clone();
                            sent.sort();
                            assert_eq!(sent, items(&self.view, *range), "sent items");
                        }
                    }
                }
                Some(*session)
            }
            Body::Push { records, .. } => {
                for r in records {
                    assert_eq!(
                        self.view.get(&r.key),
                        Some(&r.entry),
                        "pushed an entry the store does not hold"
                    );
                }
                None
            }
            Body::Pull { request, .. } | Body::Fetch { request, .. } => Some(*request),
            Body::Put { .. } | Body::Ask { .. } => None,
        };
        if let Some(id) = remember {
            self.recent_ids.push_back(id);
            if self.recent_ids.len() > RECENT_IDS {
                self.recent_ids.pop_front();
            }
        }
    }

    fn check_applied(&mut self, applied: &Applied) {
        let want = self.expected.pop_front();
        assert_eq!(
            Some(applied),
            want.as_ref(),
            "an Applied output not predicted"
        );
        if let Some(held) = self.view.get(&applied.key) {
            assert_eq!(
                applied.entry.merge_order(held),
                Ordering::Greater,
                "applied an entry that loses the merge"
            );
        }
        let version = applied.entry.version;
        if applied.local {
            assert!(
                self.max_version.is_none_or(|max| version > max) && version.ts > self.clock,
                "local write {version:?} not above every earlier version"
            );
        }
        self.max_version = self.max_version.max(Some(version));
        self.view.insert(applied.key.clone(), applied.entry.clone());
    }

    /// Each interval a hello, then the prototype's beacon while a prototype was
    /// heard within a peer timeout; a lone beacon only answers a prototype (checked
    /// in `datagram`).
    fn check_datagrams(&mut self, datagrams: &[Bytes]) {
        let hello = encode_hello(PUB_PORT, OWN_ID);
        let beacon = encode_beacon(PUB_PORT);
        let sent: Vec<&[u8]> = datagrams.iter().map(|d| &d[..]).collect();
        self.lone_beacon = sent == [&beacon[..]];
        assert!(
            !self.lone_beacon || self.in_datagram,
            "a beacon without its hello, not for a datagram"
        );
        if self.lone_beacon || sent.is_empty() {
            return;
        }
        let expected: &[&[u8]] = if self.beaconing() {
            &[&hello, &beacon]
        } else {
            &[&hello]
        };
        assert_eq!(sent, expected, "announcement");
    }

    /// Whether the node should be sending the prototype's beacon now.
    fn beaconing(&self) -> bool {
        let timeout = self.node.config().timings.peer_timeout;
        self.prototype_heard
            .is_some_and(|at| self.now.saturating_duration_since(at) <= timeout)
    }

    /// The step's local writes went out in `put`s, in order, batched, each record
    /// followed by its prototype `set` copy when prototype peers are live. An empty
    /// `put` announces the node right before each prototype `list` it sends, and
    /// only there.
    fn check_puts(&self, published: &[Message], local: &[Record]) {
        let mut puts = Vec::new();
        let mut copies = VecDeque::new();
        let announcement = |m: Option<&Message>| {
            matches!(m, Some(Message::Dkv(Envelope {
                body: Body::Put { echo: false, records },
                ..
            })) if records.is_empty())
        };
        for (i, msg) in published.iter().enumerate() {
            match msg {
                Message::List { .. } => assert!(
                    i > 0 && announcement(published.get(i - 1)),
                    "a list not right after an empty put"
                ),
                Message::Dkv(Envelope {
                    body: Body::Put { records, .. },
                    ..
                }) if records.is_empty() => assert!(
                    announcement(Some(msg))
                        && matches!(published.get(i + 1), Some(Message::List { .. })),
                    "an empty put not right before a list: {msg:?}"
                ),
                Message::Dkv(Envelope {
                    body: Body::Put { echo, records },
                    ..
                }) => {
                    assert_eq!(Some(*echo), self.echo, "put echo flag");
                    if *echo {
                        copies.extend(records.iter().map(|r| Message::Set {
                            key: r.key.clone(),
                            value: r.entry.value.clone().unwrap_or_default(),
                        }));
                    }
                    puts.push(records);
                }
                Message::Set { .. } => {
                    assert_eq!(copies.pop_front().as_ref(), Some(msg), "a set not a copy")
                }
                _ => {}
            }
        }
        assert!(copies.is_empty(), "set copies missing: {copies:?}");
        let sent: Vec<&Record> = puts.iter().flat_map(|p| p.iter()).collect();
        assert!(
            sent.iter().copied().eq(local.iter()),
            "put records != writes"
        );
        let size = |r: &Record| record_len(&r.key, &r.entry);
        for (i, put) in puts.iter().enumerate() {
            let bytes: usize = put.iter().map(size).sum();
            assert!(put.len() == 1 || bytes <= PAGE_BYTES, "put over a page");
            if let Some(next) = puts.get(i + 1) {
                assert!(bytes + size(&next[0]) > PAGE_BYTES, "writes not batched");
            }
        }
    }

    /// Node-wide invariants, after every drain.
    fn check_state(&mut self, store_changed: bool, collected_now: usize) {
        let stats = self.node.stats();
        let collected = if stats == self.stats {
            0
        } else {
            assert_stats_monotonic(&self.stats, &stats);
            stats.tombstones_collected - self.stats.tombstones_collected
        };
        self.stats = stats;
        assert_eq!(collected, collected_now as u64, "tombstones_collected");

        let mut held = 0;
        for (key, entry) in self.node.entries() {
            held += 1;
            assert_eq!(
                self.model.store.get(key),
                Some(&entry),
                "the store differs from the model at {key:?}"
            );
        }
        assert_eq!(held, self.model.store.len(), "the store holds other keys");
        assert_eq!(
            self.view, self.model.store,
            "the store differs from Applied"
        );
        if store_changed || collected_now > 0 {
            let store = &self.model.store;
            assert_eq!(self.node.summary(), summary(store, Range::ROOT), "summary");
            let tombstones = store.values().filter(|e| e.value.is_none()).count();
            assert_eq!(self.node.tombstones(), tombstones, "tombstones");
        }

        let clock = self.node.clock();
        assert!(
            clock >= self.clock,
            "clock went back: {:?} -> {clock:?}",
            self.clock
        );
        assert_eq!(clock, self.model.clock, "the clock differs from the model");
        self.clock = clock;

        let peers: BTreeSet<SocketAddr> = self.node.peers().collect();
        assert_eq!(
            peers, self.connected,
            "peers differ from connects - disconnects"
        );
        assert!(
            self.node.ready_peers().all(|p| peers.contains(&p)),
            "ready, not live"
        );
        assert_eq!(self.node.pending_gets(), self.pending.len(), "pending gets");
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
        } else {
            assert!(
                self.node.poll_timeout().is_some(),
                "net up, no beacon timer"
            );
        }
    }

    /// Calls `handle_timeout` at the current time and checks it fired everything due.
    fn fire(&mut self) {
        self.node.handle_timeout(self.now);
        self.drain();
        for (id, (_, deadline)) in &self.pending {
            assert!(*deadline > self.now, "get {id:?} outlived its deadline");
        }
        if let Some(next) = self.node.poll_timeout().filter(|&at| at <= self.now) {
            panic!("deadline {next:?} still due after handle_timeout");
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

    /// Feeds one multipart message and checks its verdict, entry counters and
    /// replies against the model.
    fn receive<F: AsRef<[u8]>>(&mut self, frames: &[F]) {
        // Decoded under the node's own size limits, so the model sees what it sees.
        let limits = dkv_proto::wire::DecodeLimits::from(&self.node.config().limits);
        let decoded = Message::decode_limited(frames, limits);
        let mut p: Prediction = self.model.receive(self.wall_ms(), &decoded);
        // A prototype's list is left to another prototype while more than one is
        // beaconing (heard within 1.5 beacon intervals): every prototype hears every
        // list_answer and dies on one not its own.
        let recent = self.node.config().timings.beacon_interval.saturating_mul(3) / 2;
        let since = self.now.checked_sub(recent).unwrap_or(self.now);
        let prototypes = self
            .node
            .peers()
            .filter(|a| self.node.peer_id(*a).is_none())
            .filter(|a| self.heard.get(a).is_some_and(|t| *t >= since))
            .count();
        if p.verdict == "in_list" && prototypes > 1 {
            p.verdict = "drop_list_many_prototypes";
        }
        self.expected.extend(p.applied.iter().cloned());
        let before = self.stats.clone();
        self.node.handle_message(self.now, frames);
        let published = self.drain();
        let delta = stats_delta(&before, &self.stats);
        let verdicts = moved(&delta, Counter::MessageVerdict);
        let legacy = match &decoded {
            Ok(Message::Question { asker, .. } | Message::List { asker }) => {
                self.dkv_ids.contains(asker)
            }
            _ => false,
        };
        let verdict = match &verdicts[..] {
            [(v, 1)] if *v == p.verdict => p.verdict,
            [("drop_legacy_from_dkv", 1)] if legacy => "drop_legacy_from_dkv",
            _ => panic!("verdict {verdicts:?}, want {} for {decoded:?}", p.verdict),
        };
        for (name, want) in [
            ("entries_applied", p.entries_applied),
            ("entries_stale", p.entries_stale),
            ("drop_clock_ahead", p.clock_ahead),
            ("echoes_ignored", p.echoes_ignored),
        ] {
            assert_eq!(moved_by(&delta, name), want, "{name} for {decoded:?}");
        }
        for (name, _) in &delta {
            let c = super::counter(name);
            assert!(
                !matches!(
                    c,
                    Counter::DatagramVerdict | Counter::Peers | Counter::Writes
                ),
                "{name} moved for a message"
            );
        }
        let answers: Vec<&Message> = published
            .iter()
            .filter(|m| matches!(m, Message::Answer { .. } | Message::ListAnswer { .. }))
            .collect();
        match (&decoded, verdict) {
            // Over the answer or list answer rate: counted, nothing sent.
            (Ok(Message::Question { .. } | Message::List { .. }), _)
                if moved_by(&delta, "drop_answer_rate") + moved_by(&delta, "drop_list_rate")
                    == 1 =>
            {
                assert!(answers.is_empty(), "answered over the rate")
            }
            (Ok(Message::Question { asker, key }), "in_question") => {
                let value = self.view.get(key).and_then(|e| e.value.clone());
                let want: Vec<Message> = value
                    .filter(|v| !v.is_empty())
                    .map(|value| Message::Answer {
                        asker: *asker,
                        key: key.clone(),
                        value,
                    })
                    .into_iter()
                    .collect();
                assert!(answers.into_iter().eq(want.iter()), "answer to {key:?}");
            }
            (Ok(Message::List { .. }), "in_list") => {
                assert!(
                    matches!(answers[..], [Message::ListAnswer { .. }]),
                    "list answer"
                )
            }
            _ => assert!(answers.is_empty(), "answered {decoded:?} with {verdict}"),
        }
        if let (
            Ok(Message::Dkv(e)),
            "in_put" | "in_ask" | "in_sync" | "in_pull" | "in_fetch" | "in_push",
        ) = (&decoded, verdict)
        {
            self.dkv_ids.insert(e.from);
        }
    }

    /// Feeds one datagram; exactly one datagram counter moves, and a valid hello
    /// from a peer marks it as a dkv node with that id.
    fn datagram(&mut self, src: IpAddr, datagram: &[u8]) {
        let before = self.stats.clone();
        let was_beaconing = self.beaconing();
        self.node.handle_beacon(self.now, src, datagram);
        self.in_datagram = true;
        self.drain();
        self.in_datagram = false;
        let delta = stats_delta(&before, &self.stats);
        let verdicts = moved(&delta, Counter::DatagramVerdict);
        assert!(
            matches!(verdicts[..], [(_, 1)]),
            "datagram counted {verdicts:?}"
        );
        // A live peer's beacon, the peer without a dkv id: a prototype.
        let prototype = match (parse_datagram(datagram), &verdicts[..]) {
            (Ok(Datagram::Beacon(port)), [("beacons_in", 1)]) => {
                let addr = SocketAddr::new(src, port);
                self.node.peers().any(|a| a == addr) && self.node.peer_id(addr).is_none()
            }
            _ => false,
        };
        assert_eq!(
            self.lone_beacon,
            prototype && !was_beaconing,
            "a beacon at once answers a prototype heard while none was"
        );
        if prototype {
            self.prototype_heard = Some(self.now);
        }
        // A new endpoint over a peer limit is counted there and not heard.
        let refused = ["drop_peer_limit", "drop_peer_ip_limit", "drop_peer_rate"]
            .iter()
            .map(|n| moved_by(&delta, n))
            .sum::<u64>();
        if refused > 0 {
            assert_eq!(refused, 1, "one peer refusal per datagram");
            if let Ok(d) = parse_datagram(datagram) {
                let addr = SocketAddr::new(src, d.port());
                assert!(!self.node.peers().any(|a| a == addr), "refused yet a peer");
            }
            return;
        }
        if let (Ok(d), [("beacons_in" | "hellos_in", 1)]) =
            (parse_datagram(datagram), &verdicts[..])
        {
            self.heard.insert(SocketAddr::new(src, d.port()), self.now);
        }
        if let (Ok(Datagram::Hello { port, id }), [("hellos_in", 1)]) =
            (parse_datagram(datagram), &verdicts[..])
        {
            let addr = SocketAddr::new(src, port);
            assert_eq!(self.node.peer_id(addr), Some(id), "hello did not identify");
            self.dkv_ids.insert(id);
        }
    }

    fn get(&mut self, key: String, timeout: Option<Duration>) {
        let deadline = self.now + timeout.unwrap_or(self.node.config().timings.get_timeout);
        let id = self.node.get(self.now, key.clone(), timeout);
        assert!(self.issued.insert(id), "get id {id:?} reused");
        self.pending.insert(id, (key, deadline));
        self.drain();
    }

    /// Local writes back to back (`Some`: set, `None`: delete), drained once.
    fn writes(&mut self, writes: Vec<(String, Option<Bytes>)>) {
        self.echo = Some(self.node.peers().any(|a| self.node.peer_id(a).is_none()));
        let before = self.stats.clone();
        let (mut count, mut refused) = (0, 0);
        for (key, value) in writes {
            // Over the key or value limit: refused with a reason, nothing changes.
            let check = self
                .node
                .config()
                .limits
                .check_write(&key, value.as_deref());
            if check.is_ok() {
                let wall_ms = self.wall_ms();
                let applied = self.model.local_write(wall_ms, &key, value.clone());
                self.expected.push_back(applied);
                count += 1;
            } else {
                refused += 1;
            }
            let done = match value {
                Some(value) => self.node.try_set(self.now, key, value),
                None => self.node.try_delete(self.now, key),
            };
            assert_eq!(done, check, "try_set/try_delete against check_write");
        }
        self.drain();
        self.echo = None;
        let delta = stats_delta(&before, &self.stats);
        assert_eq!(
            moved_by(&delta, "sets") + moved_by(&delta, "deletes"),
            count
        );
        assert_eq!(moved_by(&delta, "writes_refused"), refused);
    }

    /// A version for a record of `key` (see [`Stamp`]).
    fn read_version(&self, r: &mut Reader<'_>, key: &str) -> Option<Version> {
        let b = r.u8()?;
        let node = VERSION_NODES[usize::from(b >> 4) & 3];
        let w = self.wall_ms();
        let edge = w.saturating_add(self.offset_ms);
        let ts = match Stamp::ALL[usize::from(b & 0x0f)] {
            Stamp::Unversioned => return Some(Version::UNVERSIONED),
            Stamp::Zero => Timestamp(0),
            Stamp::Now => ts_at(w),
            Stamp::NowCounter => Timestamp(ts_at(w).0 | u64::from(r.u16()?)),
            Stamp::SecondAgo => ts_at(w.saturating_sub(1_000)),
            Stamp::DayAgo => ts_at(w.saturating_sub(86_400_000)),
            Stamp::Edge => ts_at(edge),
            Stamp::EdgeFull => Timestamp(ts_at(edge).0 | 0xffff),
            Stamp::PastEdge => ts_at(edge + 1),
            Stamp::HourAhead => ts_at(w + 3_600_000),
            Stamp::Max => Timestamp(u64::MAX),
            Stamp::Clock => self.model.clock,
            Stamp::AboveClock => Timestamp(self.model.clock.0.saturating_add(1)),
            Stamp::Held => {
                let held = self.model.store.get(key);
                return Some(held.map_or(Version::UNVERSIONED, |e| e.version));
            }
            Stamp::Start => ts_at(START_WALL_MS),
            Stamp::Raw => Timestamp(r.u64()?),
        };
        Some(Version { ts, node })
    }

    fn read_entry(&self, r: &mut Reader<'_>, key: &str) -> Option<Entry> {
        let version = self.read_version(r, key)?;
        let value = match r.u8()? & 1 {
            0 => Some(Bytes::copy_from_slice(r.bytes()?)),
            _ => None,
        };
        Some(Entry { version, value })
    }

    fn read_records(&self, r: &mut Reader<'_>) -> Option<Vec<Record>> {
        let count = r.u8()? % 8;
        let mut records = Vec::new();
        for _ in 0..count {
            let key = read_string_key(r)?;
            let entry = self.read_entry(r, &key)?;
            records.push(Record { key, entry });
        }
        Some(records)
    }

    /// A session or request id: one of the node's recent ones (a byte below `0x80`:
    /// 0 the newest, 1 the one before, ...), a small one (below `0xc0`: the low 6
    /// bits; 0 is "no request"), or any `u64`.
    fn read_id(&self, r: &mut Reader<'_>) -> Option<u64> {
        let b = r.u8()?;
        match b {
            0..0x80 if !self.recent_ids.is_empty() => {
                let back = usize::from(b) % self.recent_ids.len();
                Some(self.recent_ids[self.recent_ids.len() - 1 - back])
            }
            0..0xc0 => Some(u64::from(b & 0x3f)),
            _ => r.u64(),
        }
    }

    /// A sync step (`tag: u8` mod 4): the fingerprint of `read_range` (`how: u8` mod
    /// 4: the node's own, empty, the node's own off by one, or any `u64` pair); items
    /// (`count: u8` mod 8 of key, version, value); the node's own items for the
    /// range; or those minus the last.
    fn read_step(&self, r: &mut Reader<'_>) -> Option<Step> {
        let tag = r.u8()?;
        let range = read_range(r)?;
        Some(match tag % 4 {
            0 => {
                let own = summary(&self.view, range);
                let summary = match r.u8()? % 4 {
                    0 => own,
                    1 => Summary::default(),
                    2 => Summary {
                        fingerprint: own.fingerprint ^ 1,
                        count: own.count + 1,
                    },
                    _ => {
                        let fingerprint = r.u64()?;
                        let count = r.u64()?;
                        Summary { fingerprint, count }
                    }
                };
                Step::Fingerprint { range, summary }
            }
            1 => {
                let count = r.u8()? % 8;
                let mut items = Vec::new();
                for _ in 0..count {
                    let key = read_string_key(r)?;
                    let entry = self.read_entry(r, &key)?;
                    let key_hash = key_hash(&key);
                    items.push(Item {
                        key_hash,
                        version: entry.version,
                        digest: entry.digest(key_hash),
                    });
                }
                Step::Items { range, items }
            }
            n => {
                let mut items = items(&self.view, range);
                if n == 3 {
                    items.pop();
                }
                Step::Items { range, items }
            }
        })
    }

    /// The operands of [`Op::Dkv`] as a well-formed message. A record is a key, a
    /// version byte (see [`Stamp`]) and `what: u8` (even: a value, `bytes`, follows;
    /// odd: a tombstone).
    fn read_dkv(&self, r: &mut Reader<'_>) -> Option<Message> {
        let from = IDS[usize::from(r.u8()?) % IDS.len()];
        let to = match r.u8()? % 4 {
            0 => None,
            2 => Some(IDS[2]),
            _ => Some(OWN_ID),
        };
        let body = match r.u8()? % 6 {
            0 => Body::Put {
                echo: r.u8()? & 1 == 1,
                records: self.read_records(r)?,
            },
            1 => Body::Ask {
                key: read_string_key(r)?,
            },
            2 => {
                let session = self.read_id(r)?;
                let flags = r.u8()?;
                let count = r.u8()? % 8;
                let mut steps = Vec::new();
                for _ in 0..count {
                    steps.push(self.read_step(r)?);
                }
                Body::Sync {
                    session,
                    initiator: flags & 1 == 1,
                    last: flags & 2 == 2,
                    steps,
                }
            }
            3 => Body::Pull {
                request: self.read_id(r)?,
                range: read_range(r)?,
                after: read_after(r)?,
            },
            4 => {
                let request = self.read_id(r)?;
                let count = r.u8()? % 8;
                let mut key_hashes = Vec::new();
                for _ in 0..count {
                    key_hashes.push(read_hash(r)?);
                }
                Body::Fetch {
                    request,
                    key_hashes,
                }
            }
            _ => Body::Push {
                request: self.read_id(r)?,
                records: self.read_records(r)?,
                more: read_after(r)?,
            },
        };
        Some(Message::Dkv(Envelope { to, from, body }))
    }

    fn step(&mut self, op: Op, r: &mut Reader<'_>) -> Option<()> {
        if self.trace {
            let at = self.now - self.start;
            eprintln!("{at:?} (wall {}): {op:?} {:?}", self.wall_ms(), r.clone());
        }
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
                self.datagram(src, datagram);
                return Some(());
            }
            Op::Beacon => {
                let src = ip(r)?;
                let port = r.u16()?;
                self.datagram(src, &encode_beacon(port));
                return Some(());
            }
            Op::Hello => {
                let src = ip(r)?;
                let port = r.u16()?;
                let which = r.u8()?;
                let id = IDS[usize::from(which) % IDS.len()];
                if which & 0x40 == 0 {
                    self.node.handle_subscribed(self.now, id);
                } else {
                    self.node.handle_unsubscribed(self.now, id);
                }
                self.drain();
                self.datagram(src, &encode_hello(port, id));
                return Some(());
            }
            Op::RawMessage => {
                let count = r.u8()? % 8;
                let frames: Vec<&[u8]> = (0..count).map_while(|_| r.bytes()).collect();
                self.receive(&frames);
                return Some(());
            }
            Op::Message => {
                let msg = read_message(r)?;
                self.receive_built(&msg);
                return Some(());
            }
            Op::Dkv => {
                let msg = self.read_dkv(r)?;
                self.receive_built(&msg);
                return Some(());
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
                self.writes(vec![(key, Some(value))]);
                return Some(());
            }
            Op::Delete => {
                let key = read_string_key(r)?;
                self.writes(vec![(key, None)]);
                return Some(());
            }
            Op::Writes => {
                let count = r.u8()? % 8;
                let mut writes = Vec::new();
                for _ in 0..count {
                    let key = read_string_key(r)?;
                    let value = match r.u8()? & 1 {
                        0 => Some(Bytes::copy_from_slice(r.bytes()?)),
                        _ => None,
                    };
                    writes.push((key, value));
                }
                self.writes(writes);
                return Some(());
            }
            Op::WallClock => {
                let mode = r.u8()?;
                let amount = u64::from(r.u16()?);
                let unit = [1, 1_000, 60_000, 3_600_000, 86_400_000][usize::from(mode & 0x7f) % 5];
                let w = self.wall_ms();
                let unix_ms = match mode & 0x80 {
                    0 => w.saturating_add(amount * unit).min(MAX_WALL_MS),
                    _ => w.saturating_sub(amount * unit),
                };
                self.wall = Wall {
                    at: self.now,
                    unix_ms,
                };
                self.node.handle_wall_clock(self.now, unix_ms);
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

    /// Feeds a message built by the harness, after checking the decoder accepts
    /// exactly what the encoder produced.
    fn receive_built(&mut self, msg: &Message) {
        let frames = msg.encode();
        assert_eq!(
            Message::decode(&frames).as_ref(),
            Ok(msg),
            "the decoder refuses what the encoder produced"
        );
        self.receive(&frames);
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

/// Reads the operands of [`Op::Message`] into a well-formed prototype message.
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
/// port `PUB_PORT`, wall clock at `START_WALL_MS`). The first byte chooses default
/// or fuzzed timings and the seed; then come [`Op`]s until the input ends. After
/// every step it checks that:
/// - nothing panics, and `handle_timeout` leaves no deadline due;
/// - every `Publish` decodes back to itself and speaks for the node; answers to
///   prototype `question`s are the live, non-empty value held; `list_answer`s list
///   exactly the live keys (never a deleted one); `sync` summaries and items, and
///   pushed records, are what the store holds; the step's local writes go out as
///   `put`s in order, batched, with a prototype `set` copy each if prototype peers
///   are live; an empty `put` comes right before each prototype `list`, and only
///   there;
/// - datagrams are a hello each interval, then the beacon while a prototype was
///   heard within a peer timeout, and a lone beacon at once for a prototype heard
///   while none was; only while the net is up;
/// - connects and disconnects alternate per endpoint, never target the node's own
///   (local ip, PUB port), and match [`Node::peers`]; a hello identifies its peer;
/// - every received message moves exactly one message-verdict counter (as the model
///   predicts; `drop_legacy_from_dkv` only for an asker heard as a dkv node;
///   `drop_list_many_prototypes` for a `list` while two or more prototypes are
///   live); its entry counters and `Applied` outputs are exactly the model's, which
///   merges every accepted entry with `Entry::merge_order`, refuses remote versions
///   beyond the clock offset, versions prototype `set`s from its own clock (never
///   refused) and ignores their echoes;
/// - the store equals the model and what the `Applied` and `Collected` outputs
///   say, in order (only tombstones past the horizon are collected, each reported
///   once and counted); the summary equals a naive sum;
/// - the clock never goes back and equals the model's; every local write's version
///   is above every version applied before;
/// - every get completes exactly once, for its key, with the entry held at that
///   point of the outputs (after the `Applied` of one that completes it), no later
///   than its deadline;
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
    let (timings, seed) = read_config(&mut r);
    let wall = WallClock {
        at: Instant::now(),
        unix_ms: START_WALL_MS,
    };
    let mut config = Config::new(OWN_ID, PUB_PORT, wall);
    config.timings = timings;
    config.seed = seed;
    let mut harness = Harness::new(config);
    while let Some(byte) = r.u8() {
        if harness.step(Op::from_byte(byte), &mut r).is_none() {
            break;
        }
    }
    harness.finish()
}
