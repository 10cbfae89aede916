//! A hostile host on the simulated LAN: it hears honest traffic and sends forged,
//! replayed, corrupted, oversized and flooding messages and spoofed beacons. It is
//! not a node: the world (`sim.rs`) gives it a station (so honest nodes may connect
//! to its PUB port, as they would to any beaconing host), ticks it, and carries
//! out what it returns.
//!
//! Everything it sends leaves as wire bytes, so receivers decode it under their own
//! limits, exactly as from a socket. Honest messages it overhears are kept as wire
//! bytes too, so a keyed mode can replay and corrupt sealed frames unchanged (see
//! [`Attack`]).

use crate::rng::Rng;
use bytes::Bytes;
use dkv_proto::seal::{Cluster, Keyring, Sealer};
use dkv_proto::wire::{Body, Envelope, Range, Record, Step, Summary};
use dkv_proto::{encode_beacon, encode_hello};
use dkv_proto::{Entry, Message, NodeId, Timestamp, Version};
use std::collections::{BTreeMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr};
use std::rc::Rc;
use std::time::Duration;

/// Honest messages kept for replay, at most.
const CAPTURED: usize = 256;
/// Honest ids and keys remembered, at most.
const KNOWN: usize = 512;

/// One kind of hostile traffic; [`Hostile::tick`] picks one at random per tick.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Attack {
    /// A `put` of 1 to 4 records with versions claimed in honest nodes' names (or
    /// invented ones), some ahead of every clock: honest keys overwritten, new keys
    /// added. The open cluster accepts these by design.
    Forge,
    /// A `push` to one honest node, outside any reconciliation it asked for.
    ForgePush,
    /// An honest message heard earlier, sent again byte for byte (prototype
    /// `list`s and `list_answer`s only alongside [`ListFlood`](Self::ListFlood)).
    Replay,
    /// An honest message heard earlier with one byte flipped.
    Corrupt,
    /// A message over the receive limit, a key over the key limit, a value over the
    /// value limit.
    Oversized,
    /// A burst of prototype `question`s from invented askers.
    QuestionFlood,
    /// A burst of prototype `list`s from invented askers (only without prototypes
    /// on the LAN: an answer to another asker kills a prototype's worker, which is
    /// the prototype's bug).
    ListFlood,
    /// A burst of dkv/2 `ask`s from invented ids.
    AskFlood,
    /// A burst of dkv/2 `sync` openings to honest nodes from invented ids.
    SyncFlood,
    /// A burst of hellos and prototype beacons: many ports on the host's own
    /// address, on invented addresses, and on honest nodes' addresses.
    BeaconFlood,
}

impl Attack {
    /// Every attack, in a fixed order.
    pub const ALL: [Attack; 10] = [
        Attack::Forge,
        Attack::ForgePush,
        Attack::Replay,
        Attack::Corrupt,
        Attack::Oversized,
        Attack::QuestionFlood,
        Attack::ListFlood,
        Attack::AskFlood,
        Attack::SyncFlood,
        Attack::BeaconFlood,
    ];
}

/// What the hostile host does in one tick. `replay`: a byte-for-byte copy of
/// something an honest node sent (else the host made or altered it).
#[derive(Debug)]
pub(crate) enum Act {
    /// Publish these frames on its PUB socket. `topic` is the first frame.
    Publish { frames: Rc<[Bytes]>, replay: bool },
    /// Broadcast a datagram with this source address (unspecified: its own).
    Beacon {
        src: IpAddr,
        payload: Bytes,
        replay: bool,
    },
}

/// The hostile host's state: its randomness, what it overheard, what it may do.
#[derive(Debug)]
pub(crate) struct Hostile {
    rng: Rng,
    /// Its own id (it may also claim others').
    pub(crate) id: NodeId,
    /// Its PUB port.
    pub(crate) port: u16,
    /// The attacks it chooses from.
    pub(crate) attacks: Vec<Attack>,
    /// Time between ticks.
    pub(crate) every: Duration,
    /// Most messages or datagrams in one flood.
    pub(crate) flood: u64,
    /// Whether it is attacking.
    pub(crate) active: bool,
    captured: VecDeque<Rc<[Bytes]>>,
    /// Sealed hellos overheard in a keyed cluster, with their source address.
    hellos: VecDeque<(IpAddr, Bytes)>,
    ids: Vec<NodeId>,
    keys: Vec<String>,
    addrs: Vec<IpAddr>,
    big: Bytes,
    sent: u64,
    /// The keyed cluster's key, only in a test that shows the keyed check can fail:
    /// it then seals its dkv/2 forgeries (one sealer per claimed id, so the sealed
    /// sender matches the body's `from`).
    key: Option<(Cluster, Keyring)>,
    sealers: BTreeMap<NodeId, Sealer>,
}

impl Hostile {
    pub(crate) fn new(rng: Rng, id: NodeId, port: u16, attacks: Vec<Attack>) -> Hostile {
        Hostile {
            rng,
            id,
            port,
            attacks,
            every: Duration::from_millis(250),
            flood: 60,
            active: true,
            captured: VecDeque::new(),
            hellos: VecDeque::new(),
            ids: Vec::new(),
            keys: Vec::new(),
            addrs: Vec::new(),
            big: Bytes::from(vec![0x5a; (2 << 20) + 1]),
            sent: 0,
            key: None,
            sealers: BTreeMap::new(),
        }
    }

    /// Gives it the keyed cluster's key: its dkv/2 messages are sealed from now on.
    pub(crate) fn steal_key(&mut self, cluster: Cluster, keys: Keyring) {
        self.key = Some((cluster, keys));
    }

    /// A random index below `n` (0 when `n` is 0), from its own randomness.
    pub(crate) fn pick(&mut self, n: usize) -> usize {
        self.index(n).unwrap_or(0)
    }

    /// `frames` as it sends them: sealed at `wall_ms` when it holds the key and they
    /// are a dkv/2 message, else unchanged.
    pub(crate) fn seal(&mut self, frames: Rc<[Bytes]>, wall_ms: u64) -> Rc<[Bytes]> {
        let Some((cluster, keys)) = &self.key else {
            return frames;
        };
        let Ok(Message::Dkv(e)) = Message::decode(&frames) else {
            return frames;
        };
        let seed = self.rng.next_u64();
        let sealer = self
            .sealers
            .entry(e.from)
            .or_insert_with(|| Sealer::new(e.from, seed));
        match sealer.seal_frame(keys, cluster, &frames[0], &frames[1], wall_ms) {
            Ok(body) => Rc::from(vec![frames[0].clone(), Bytes::from(body)]),
            Err(_) => frames,
        }
    }

    /// Messages and datagrams sent so far.
    pub(crate) fn sent(&self) -> u64 {
        self.sent
    }

    /// Overhears an honest hello of a keyed cluster, sent from `src`: kept (a
    /// bounded number) to replay and corrupt.
    pub(crate) fn overhear_hello(&mut self, src: IpAddr, payload: Bytes) {
        if self.hellos.len() == CAPTURED {
            self.hellos.pop_front();
        }
        self.hellos.push_back((src, payload));
        remember(&mut self.addrs, src, &mut self.rng);
    }

    /// Overhears an honest message: keeps its wire bytes (a bounded number, the
    /// oldest dropped first) and learns the ids and keys in it.
    pub(crate) fn overhear(&mut self, frames: Vec<Bytes>, msg: &Message, src: IpAddr) {
        // A list or list answer replayed kills a prototype's worker (its bug): only
        // a host that floods lists anyway keeps them.
        let list = matches!(msg, Message::List { .. } | Message::ListAnswer { .. });
        if list && !self.attacks.contains(&Attack::ListFlood) {
            return;
        }
        if self.captured.len() == CAPTURED {
            self.captured.pop_front();
        }
        self.captured.push_back(Rc::from(frames));
        if let Message::Dkv(e) = msg {
            remember(&mut self.ids, e.from, &mut self.rng);
            if let Body::Put { records, .. } | Body::Push { records, .. } = &e.body {
                for r in records {
                    remember(&mut self.keys, r.key.clone(), &mut self.rng);
                }
            }
        }
        if let Message::Set { key, .. } = msg {
            remember(&mut self.keys, key.clone(), &mut self.rng);
        }
        remember(&mut self.addrs, src, &mut self.rng);
    }

    /// A random index into a list of `len` (none when empty).
    fn index(&mut self, len: usize) -> Option<usize> {
        (len > 0).then(|| self.rng.below(len as u64) as usize)
    }

    /// A known honest id, if any.
    fn honest_id(&mut self) -> Option<NodeId> {
        self.index(self.ids.len()).map(|i| self.ids[i])
    }

    fn invented_id(&mut self) -> NodeId {
        NodeId(self.rng.next_u64().to_le_bytes())
    }

    /// An id to send as: its own, an invented one, or an honest node's.
    fn claimed_id(&mut self) -> NodeId {
        match self.rng.below(3) {
            0 => self.id,
            1 => self.invented_id(),
            _ => self.honest_id().unwrap_or(self.id),
        }
    }

    /// A key to write or ask for: mostly one heard from honest nodes (asking for
    /// a held key makes a node answer), else an invented one.
    fn key(&mut self) -> String {
        self.key_known(0.6)
    }

    fn key_known(&mut self, p: f64) -> String {
        if self.rng.chance(p) {
            if let Some(i) = self.index(self.keys.len()) {
                return self.keys[i].clone();
            }
        }
        format!("evil/{}", self.rng.below(64))
    }

    /// Records claimed in honest or invented names, at `wall_ms` give or take: most
    /// within the clock offset nodes accept, some far ahead.
    fn records(&mut self, wall_ms: u64) -> Vec<Record> {
        let n = self.rng.range(1, 4);
        (0..n)
            .map(|_| {
                let ahead = if self.rng.chance(0.2) {
                    self.rng.range(1_000, 60_000)
                } else {
                    self.rng.below(300)
                };
                let ts =
                    Timestamp(Timestamp::from_millis(wall_ms + ahead).0 | self.rng.below(1 << 16));
                let value = (!self.rng.chance(0.2))
                    .then(|| Bytes::from(format!("forged-{}", self.rng.below(1000))));
                Record {
                    key: self.key(),
                    entry: Entry {
                        version: Version {
                            ts,
                            node: self.claimed_id(),
                        },
                        value,
                    },
                }
            })
            .collect()
    }

    fn dkv(&mut self, to: Option<NodeId>, from: NodeId, body: Body) -> Act {
        let msg = Message::Dkv(Envelope { to, from, body });
        publish(msg.encode())
    }

    /// One tick's traffic, at true wall time `wall_ms`. `max_value` is the value
    /// limit honest nodes run with (oversized input is sized past it).
    pub(crate) fn tick(&mut self, wall_ms: u64, max_value: usize) -> Vec<Act> {
        if !self.active {
            return Vec::new();
        }
        let attack = match self.index(self.attacks.len()) {
            Some(i) => self.attacks[i],
            None => return Vec::new(),
        };
        let mut out = Vec::new();
        match attack {
            Attack::Forge => {
                let records = self.records(wall_ms);
                let from = self.claimed_id();
                out.push(self.dkv(
                    None,
                    from,
                    Body::Put {
                        echo: false,
                        records,
                    },
                ));
            }
            Attack::ForgePush => {
                let to = self.honest_id();
                let records = self.records(wall_ms);
                let from = self.claimed_id();
                let request = self.rng.next_u64();
                out.push(self.dkv(
                    to,
                    from,
                    Body::Push {
                        request,
                        records,
                        more: None,
                    },
                ));
            }
            Attack::Replay | Attack::Corrupt => {
                let replay = attack == Attack::Replay;
                // A sealed hello (keyed clusters only) or a message.
                let hello = !self.hellos.is_empty() && self.rng.chance(0.3);
                if hello {
                    let i = self.rng.below(self.hellos.len() as u64) as usize;
                    let (src, payload) = self.hellos[i].clone();
                    // From the sender's address (spoofed) or its own.
                    let src = if self.rng.chance(0.5) {
                        src
                    } else {
                        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
                    };
                    let payload = if replay {
                        payload
                    } else {
                        self.flip(&Rc::from(vec![payload]))[0].clone()
                    };
                    out.push(Act::Beacon {
                        src,
                        payload,
                        replay,
                    });
                } else {
                    let i = self.index(self.captured.len());
                    if let Some(frames) = i.map(|i| self.captured[i].clone()) {
                        let frames = if replay { frames } else { self.flip(&frames) };
                        out.push(Act::Publish { frames, replay });
                    }
                }
            }
            Attack::Oversized => {
                let big = self.big.slice(..(max_value + 1).min(self.big.len()));
                let key = "k".repeat(4096);
                let msg = match self.rng.below(3) {
                    0 => Message::Set {
                        key: self.key(),
                        value: big,
                    },
                    1 => Message::Set {
                        key,
                        value: Bytes::from_static(b"v"),
                    },
                    _ => {
                        // A dkv/2 put over the message limit (every limit: twice the value).
                        let mut records = self.records(wall_ms);
                        records[0].entry.value = Some(self.big.clone());
                        Message::Dkv(Envelope {
                            to: None,
                            from: self.id,
                            body: Body::Put {
                                echo: false,
                                records,
                            },
                        })
                    }
                };
                out.push(publish(msg.encode()));
            }
            Attack::QuestionFlood | Attack::ListFlood | Attack::AskFlood | Attack::SyncFlood => {
                let n = self.rng.range(self.flood / 4, self.flood).max(1);
                for _ in 0..n {
                    let asker = self.invented_id();
                    let act = match attack {
                        Attack::QuestionFlood => {
                            let key = self.key_known(0.95);
                            let msg = Message::Question { asker, key };
                            publish(msg.encode())
                        }
                        Attack::ListFlood => publish(Message::List { asker }.encode()),
                        Attack::AskFlood => {
                            let key = self.key_known(0.95);
                            self.dkv(None, asker, Body::Ask { key })
                        }
                        _ => {
                            let to = self.honest_id();
                            let session = self.rng.next_u64();
                            let summary = Summary {
                                fingerprint: self.rng.next_u64(),
                                count: self.rng.below(1 << 20),
                            };
                            let steps = vec![Step::Fingerprint {
                                range: Range::ROOT,
                                summary,
                            }];
                            let body = Body::Sync {
                                session,
                                initiator: true,
                                last: false,
                                steps,
                            };
                            self.dkv(to, asker, body)
                        }
                    };
                    out.push(act);
                }
            }
            Attack::BeaconFlood => {
                let n = self.rng.range(self.flood / 4, self.flood).max(1);
                for _ in 0..n {
                    let port = self.rng.range(1, 65_535) as u16;
                    // Its own address, an invented one (unreachable: a node retries
                    // it once a second) or an honest host's (refused: retried every
                    // 100 ms, and it takes that address's per-IP places).
                    let src = match self.rng.below(6) {
                        0 | 1 => None,
                        2..=4 => Some(IpAddr::V4(Ipv4Addr::new(
                            10,
                            200,
                            self.rng.below(256) as u8,
                            self.rng.below(256) as u8,
                        ))),
                        _ => self.index(self.addrs.len()).map(|i| self.addrs[i]),
                    };
                    let payload = if self.rng.chance(0.5) {
                        let id = self.claimed_id();
                        encode_hello(port, id)
                    } else {
                        encode_beacon(port)
                    };
                    // `None`: the host's own address, filled in by the world.
                    let src = src.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
                    out.push(Act::Beacon {
                        src,
                        payload: Bytes::from(payload),
                        replay: false,
                    });
                }
            }
        }
        self.sent += out.len() as u64;
        out
    }

    /// A copy of `frames` with one byte flipped in a random frame.
    fn flip(&mut self, frames: &Rc<[Bytes]>) -> Rc<[Bytes]> {
        let mut v: Vec<Bytes> = frames.to_vec();
        let f = self.rng.below(v.len() as u64) as usize;
        if v[f].is_empty() {
            return Rc::from(v);
        }
        let mut bytes = v[f].to_vec();
        let i = self.rng.below(bytes.len() as u64) as usize;
        bytes[i] ^= 1 << self.rng.below(8);
        v[f] = Bytes::from(bytes);
        Rc::from(v)
    }
}

fn publish(frames: Vec<Bytes>) -> Act {
    Act::Publish {
        frames: Rc::from(frames),
        replay: false,
    }
}

/// Adds `x` to a bounded memory, replacing a random entry once full.
fn remember<T: PartialEq>(list: &mut Vec<T>, x: T, rng: &mut Rng) {
    if list.contains(&x) {
        return;
    }
    if list.len() < KNOWN {
        list.push(x);
    } else {
        let i = rng.below(list.len() as u64) as usize;
        list[i] = x;
    }
}
