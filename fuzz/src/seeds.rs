//! The seed corpus: for every target, inputs built from `dkv-proto`'s own encoders
//! that reach each message kind, each beacon outcome and each node operation.
//! `tests/seeds.rs` checks that `fuzz/seeds/` holds exactly these files.

use crate::input::Writer;
use crate::targets::beacon::{FLAG_HEARD_BEFORE, FLAG_NET_UP};
use crate::targets::decode::DECODE_NODE_ID;
use crate::targets::node::{Op, OWN_ID};
use bytes::Bytes;
use dkv_proto::{encode_beacon, Message, NodeId};

/// One seed input: the target it is for, its file name, and its bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seed {
    /// The target's name, as in [`TARGETS`](crate::TARGETS).
    pub target: &'static str,
    /// The file name, unique within the target; stable across runs.
    pub name: String,
    /// The input.
    pub data: Vec<u8>,
}

fn frames_input(frames: &[&[u8]]) -> Vec<u8> {
    frames
        .iter()
        .fold(Writer::new(), |w, f| w.bytes(f))
        .finish()
}

fn message_input(msg: &Message) -> Vec<u8> {
    let frames = msg.encode();
    let refs: Vec<&[u8]> = frames.iter().map(|f| &f[..]).collect();
    frames_input(&refs)
}

const OTHER: NodeId = NodeId(*b"someone!");

/// Every well-formed message shape the seeds use, named.
fn messages(own: NodeId) -> Vec<(&'static str, Message)> {
    let b = |s: &'static [u8]| Bytes::from_static(s);
    vec![
        (
            "set",
            Message::Set {
                key: "key".into(),
                value: b(b"value"),
            },
        ),
        (
            "set-empty-value",
            Message::Set {
                key: "k".into(),
                value: b(b""),
            },
        ),
        (
            "set-binary-value",
            Message::Set {
                key: "clé".into(),
                value: b(b"\x00\xff v"),
            },
        ),
        (
            "question",
            Message::Question {
                asker: OTHER,
                key: "key".into(),
            },
        ),
        (
            "question-own",
            Message::Question {
                asker: own,
                key: "key".into(),
            },
        ),
        (
            "answer-own",
            Message::Answer {
                asker: own,
                key: "key".into(),
                value: b(b"v"),
            },
        ),
        (
            "answer-other",
            Message::Answer {
                asker: OTHER,
                key: "key".into(),
                value: b(b"v"),
            },
        ),
        ("list", Message::List { asker: OTHER }),
        (
            "list-answer-own-empty",
            Message::ListAnswer {
                asker: own,
                keys: vec![],
            },
        ),
        (
            "list-answer-own",
            Message::ListAnswer {
                asker: own,
                keys: vec!["a".into(), "b b".into(), "".into()],
            },
        ),
        (
            "list-answer-other",
            Message::ListAnswer {
                asker: OTHER,
                keys: vec!["a".into()],
            },
        ),
    ]
}

fn decode_seeds() -> Vec<Seed> {
    let mut seeds: Vec<(String, Vec<u8>)> = messages(DECODE_NODE_ID)
        .into_iter()
        .map(|(name, msg)| (format!("ok-{name}"), message_input(&msg)))
        .collect();
    let id = |name: &str, id: &[u8]| [name.as_bytes(), b" ", id].concat();
    let malformed: Vec<(&str, Vec<Vec<u8>>)> = vec![
        ("empty", vec![]),
        (
            "unknown-topic",
            vec![b"put".to_vec(), b"k".to_vec(), b"v".to_vec()],
        ),
        (
            "set-with-id",
            vec![id("set", b"12345678"), b"k".to_vec(), b"v".to_vec()],
        ),
        ("question-no-id", vec![b"question".to_vec(), b"k".to_vec()]),
        (
            "question-short-id",
            vec![id("question", b"1234567"), b"k".to_vec()],
        ),
        (
            "answer-long-id",
            vec![id("answer", b"123456789"), b"k".to_vec(), b"v".to_vec()],
        ),
        ("set-missing-value", vec![b"set".to_vec(), b"k".to_vec()]),
        (
            "list-extra-frame",
            vec![id("list", b"12345678"), b"k".to_vec()],
        ),
        (
            "key-not-utf8",
            vec![b"set".to_vec(), b"\xff\xfe".to_vec(), b"v".to_vec()],
        ),
        (
            "list-answer-key-not-utf8",
            vec![
                id("list_answer", &DECODE_NODE_ID.0),
                b"a".to_vec(),
                b"\xc3".to_vec(),
            ],
        ),
        (
            "long-value",
            vec![b"set".to_vec(), b"k".to_vec(), vec![b'x'; 300]],
        ),
    ];
    seeds.extend(malformed.into_iter().map(|(name, frames)| {
        let refs: Vec<&[u8]> = frames.iter().map(Vec::as_slice).collect();
        (format!("bad-{name}"), frames_input(&refs))
    }));
    seeds
        .into_iter()
        .map(|(name, data)| Seed {
            target: "decode",
            name,
            data,
        })
        .collect()
}

fn beacon_seeds() -> Vec<Seed> {
    let up = FLAG_NET_UP;
    let src = |index: u8| index << 2;
    let payloads: Vec<(&str, Vec<u8>)> = vec![
        ("valid", encode_beacon(5005)),
        ("own-port", encode_beacon(41017)),
        ("max-port", encode_beacon(65535)),
        ("port-zero", b"beacon 0".to_vec()),
        ("port-too-big", b"beacon 65536".to_vec()),
        ("leading-zero", b"beacon 05005".to_vec()),
        ("sign", b"beacon +5005".to_vec()),
        ("trailing", b"beacon 5005\n".to_vec()),
        ("no-port", b"beacon ".to_vec()),
        ("no-space", b"beacon".to_vec()),
        ("not-beacon", b"hello".to_vec()),
        ("long", [&b"beacon "[..], &[b'1'; 1100][..]].concat()),
    ];
    let mut seeds = Vec::new();
    for (name, payload) in &payloads {
        let cases = [
            ("peer", up | src(1)),
            ("own-host", up | src(0)),
            ("refresh", up | FLAG_HEARD_BEFORE | src(2)),
            ("net-down", src(1)),
        ];
        for (case, flags) in cases {
            seeds.push(Seed {
                target: "beacon",
                name: format!("{name}-{case}"),
                data: [&[flags][..], payload].concat(),
            });
        }
    }
    seeds
}

/// Builds a `node` target input operation by operation.
struct Script(Writer);

impl Script {
    fn new() -> Script {
        Script(Writer::new().u8(0)) // default timings
    }
    fn short_timings() -> Script {
        Script(
            Writer::new()
                .u8(1)
                .u8(9)
                .u8(9)
                .u8(9)
                .u8(9)
                .u8(9)
                .u8(9)
                .u8(1),
        )
    }
    fn op(self, op: Op) -> Script {
        Script(self.0.u8(op as u8))
    }
    fn net_up(self, ip: u8) -> Script {
        Script(self.op(Op::NetUp).0.u8(ip))
    }
    fn beacon(self, ip: u8, port: u16) -> Script {
        Script(self.op(Op::Beacon).0.u8(ip).u16(port))
    }
    fn raw_beacon(self, ip: u8, datagram: &[u8]) -> Script {
        Script(self.op(Op::RawBeacon).0.u8(ip).bytes(datagram))
    }
    /// A pool key by index (see `KEYS`).
    fn key(self, index: u8) -> Script {
        Script(self.0.u8(index))
    }
    fn message(self, kind: u8, id: u8, key: u8, value: &[u8], more: &[u8]) -> Script {
        let s = self.op(Op::Message).0.u8(kind).u8(id);
        let mut s = Script(s).key(key).0;
        match kind {
            0 | 2 => s = s.bytes(value),
            4 => {
                s = s.u8(more.len() as u8);
                for &k in more {
                    s = s.u8(k);
                }
            }
            _ => {}
        }
        Script(s)
    }
    fn raw_message(self, frames: &[&[u8]]) -> Script {
        let s = self.op(Op::RawMessage).0.u8(frames.len() as u8);
        Script(frames.iter().fold(s, |s, f| s.bytes(f)))
    }
    fn get(self, key: u8, timeout_ms: u16) -> Script {
        Script(self.op(Op::Get).key(key).0.u16(timeout_ms))
    }
    fn set(self, key: u8, value: &[u8]) -> Script {
        Script(self.op(Op::Set).key(key).0.bytes(value))
    }
    fn advance(self, ms: u16) -> Script {
        Script(self.op(Op::Advance).0.u16(ms))
    }
    fn jump(self, secs: u8) -> Script {
        Script(self.op(Op::Jump).0.u8(secs))
    }
    fn finish(self) -> Vec<u8> {
        self.0.finish()
    }
}

fn node_seeds() -> Vec<Seed> {
    let own_answer_topic = [&b"answer "[..], &OWN_ID.0[..]].concat();
    let scripts: Vec<(&str, Script)> = vec![
        ("empty-default-timings", Script::new()),
        ("net-up-beacons", Script::new().net_up(0).advance(3500)),
        (
            "peer-up-then-times-out",
            Script::new().net_up(0).beacon(1, 5005).advance(6000),
        ),
        (
            "own-beacon-ignored",
            Script::new().net_up(0).beacon(0, 41017).advance(100),
        ),
        (
            "same-host-other-port-is-a-peer",
            Script::new()
                .net_up(0)
                .beacon(0, 41018)
                .beacon(0, 41018)
                .advance(1000),
        ),
        (
            "bad-beacon",
            Script::new().net_up(0).raw_beacon(1, b"beacon 0"),
        ),
        ("beacon-while-net-down", Script::new().beacon(1, 5005)),
        (
            "net-down-then-up-new-ip",
            Script::new()
                .net_up(0)
                .beacon(1, 5005)
                .op(Op::NetDown)
                .advance(1000)
                .net_up(2)
                .advance(5000),
        ),
        ("set-then-get-hits", Script::new().set(0, b"v").get(0, 0)),
        (
            "get-miss-times-out",
            Script::new().net_up(0).get(1, 0).advance(200),
        ),
        ("get-miss-long-timeout", Script::new().get(1, 60000).jump(2)),
        (
            "get-answered",
            Script::new().get(2, 500).message(2, 0, 2, b"val", &[]),
        ),
        (
            "get-completed-by-set-message",
            Script::new().get(3, 0).message(0, 1, 3, b"x", &[]),
        ),
        (
            "get-then-shutdown",
            Script::new().get(3, 1000).op(Op::Shutdown),
        ),
        (
            "question-answered",
            Script::new().set(0, b"v").message(1, 1, 0, b"", &[]),
        ),
        (
            "question-empty-value-unanswered",
            Script::new().set(0, b"").message(1, 2, 0, b"", &[]),
        ),
        (
            "answer-for-other-ignored",
            Script::new().get(0, 0).message(2, 1, 0, b"v", &[]),
        ),
        (
            "list-answered",
            Script::new()
                .set(0, b"1")
                .set(1, b"2")
                .message(3, 1, 0, b"", &[]),
        ),
        (
            "bootstrap-fetches-listed-keys",
            Script::new()
                .net_up(0)
                .beacon(1, 5005)
                .advance(2000)
                .message(4, 0, 0, b"", &[1, 2, 3])
                .message(2, 0, 0, b"va", &[])
                .message(2, 0, 1, b"vb", &[])
                .advance(600)
                .advance(2500),
        ),
        (
            "bootstrap-window-of-one",
            Script::short_timings()
                .net_up(0)
                .op(Op::NextDeadline)
                .message(4, 0, 0, b"", &[1, 2, 3, 4, 5, 6, 7])
                .message(2, 0, 0, b"v", &[])
                .op(Op::NextDeadline)
                .op(Op::NextDeadline)
                .advance(3000),
        ),
        (
            "list-answer-crossfire",
            Script::new()
                .net_up(0)
                .advance(2000)
                .message(4, 1, 0, b"", &[1]),
        ),
        (
            "raw-answer-own",
            Script::new()
                .get(0, 0)
                .raw_message(&[&own_answer_topic, b"a", b"v"]),
        ),
        (
            "raw-garbage",
            Script::new().raw_message(&[b"set", b"\xff", b"v"]),
        ),
        ("raw-no-frames", Script::new().raw_message(&[])),
        (
            "shutdown-with-peers",
            Script::new()
                .net_up(0)
                .beacon(1, 5005)
                .beacon(5, 6000)
                .get(0, 0)
                .op(Op::Shutdown),
        ),
        (
            "timeout-early",
            Script::new()
                .net_up(0)
                .op(Op::TimeoutNow)
                .op(Op::TimeoutNow),
        ),
    ];
    scripts
        .into_iter()
        .map(|(name, script)| Seed {
            target: "node",
            name: name.into(),
            data: script.finish(),
        })
        .collect()
}

/// Every seed of every target, in a fixed order with fixed names.
pub fn all() -> Vec<Seed> {
    let mut seeds = decode_seeds();
    seeds.extend(beacon_seeds());
    seeds.extend(node_seeds());
    seeds
}
