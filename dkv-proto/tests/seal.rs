//! The seal module: keyring files, sealed frames and hellos (round trips, every
//! single-bit flip refused, wrong key, cluster, topic or class refused), nonce
//! uniqueness, the replay guard's window, freshness, expiry and cap, and garbage
//! that never panics.

use dkv_proto::seal::*;
use dkv_proto::NodeId;
use proptest::prelude::*;
use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;

const HEX_A: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
const HEX_B: &str = "F0E1D2C3B4A5968778695A4B3C2D1E0F00112233445566778899AABBCCDDEEFF";
const WALL: u64 = 1_700_000_000_000;
const ME: NodeId = NodeId(*b"sender-1");
const TO_ME: &[u8] = b"dkv2.to sender-1";
const ALL: &[u8] = b"dkv2.all";

fn key(seed: u8) -> Key {
    Key::from_bytes([seed; 32])
}

fn ring(keys: &[u8]) -> Keyring {
    Keyring::new(keys.iter().map(|&k| key(k)).collect()).unwrap()
}

fn cluster(name: &str) -> Cluster {
    Cluster::new(name).unwrap()
}

fn hello_addr() -> HelloAddr {
    HelloAddr {
        port: 41017,
        ip: Ipv4Addr::new(10, 0, 0, 5),
    }
}

// ---- keys and key files ----

#[test]
fn a_key_file_skips_comments_and_blank_lines_and_the_first_key_sends() {
    let text = format!("# cluster keys\n\n  {HEX_B}  \r\n# old key\n{HEX_A}\n\n");
    let ring = Keyring::parse(&text).unwrap();
    assert_eq!(ring.len(), 2);
    let b = Key::from_hex(HEX_B).unwrap().id();
    let a = Key::from_hex(HEX_A).unwrap().id();
    assert_eq!(ring.send_id(), b);
    assert_eq!(ring.ids().collect::<Vec<_>>(), vec![b, a]);
    assert!(ring.knows(a) && ring.knows(b) && !ring.knows(key(9).id()));
}

#[test]
fn hex_digits_parse_in_either_case_to_the_same_key() {
    let lower = Key::from_hex(&HEX_B.to_lowercase()).unwrap();
    assert_eq!(lower.id(), Key::from_hex(HEX_B).unwrap().id());
    let mut bytes = [0u8; 32];
    for (i, b) in bytes.iter_mut().enumerate() {
        *b = i as u8;
    }
    assert_eq!(
        Key::from_hex(HEX_A).unwrap().id(),
        Key::from_bytes(bytes).id()
    );
}

#[test]
fn bad_key_file_lines_are_refused_with_their_line_number() {
    let cases: Vec<(String, usize, KeyFileWhy)> = vec![
        (
            format!("# c\n{}\n", &HEX_A[1..]),
            2,
            KeyFileWhy::BadKey(KeyError::Length(63)),
        ),
        (
            format!("{HEX_A}0\n"),
            1,
            KeyFileWhy::BadKey(KeyError::Length(65)),
        ),
        (
            format!("\n\n{}g\n", &HEX_A[..63]),
            3,
            KeyFileWhy::BadKey(KeyError::NotHex(64)),
        ),
        (
            format!("{HEX_A} # inline\n"),
            1,
            KeyFileWhy::BadKey(KeyError::Length(73)),
        ),
        ("# nothing here\n\n".into(), 0, KeyFileWhy::NoKey),
        (String::new(), 0, KeyFileWhy::NoKey),
        (
            format!("{HEX_A}\n#\n{}\n", HEX_A.to_uppercase()),
            3,
            KeyFileWhy::DuplicateId {
                id: Key::from_hex(HEX_A).unwrap().id(),
                first: 1,
            },
        ),
    ];
    for (text, line, why) in cases {
        let err = Keyring::parse(&text).unwrap_err();
        assert_eq!(err, KeyFileError { line, why }, "{text:?}");
    }
    let many: String = (0..17).map(|i| format!("{:064x}\n", i + 1)).collect();
    let err = Keyring::parse(&many).unwrap_err();
    assert_eq!((err.line, err.why), (17, KeyFileWhy::TooManyKeys));
    let sixteen: String = (0..16).map(|i| format!("{:064x}\n", i + 1)).collect();
    assert_eq!(Keyring::parse(&sixteen).unwrap().len(), MAX_KEYS);
}

#[test]
fn errors_and_debug_output_never_show_key_material() {
    let bad = format!("{}z", &HEX_B[..63]);
    let err = Keyring::parse(&bad).unwrap_err().to_string();
    assert_eq!(err, "line 1: character 64 is not a hex digit");
    let key = Key::from_hex(HEX_B).unwrap();
    let shown = format!("{key:?} {:?}", Keyring::parse(HEX_B).unwrap());
    for needle in [&HEX_B[..16], &HEX_B.to_lowercase()[..16], "240, 225"] {
        assert!(!shown.contains(needle), "{shown}");
    }
    assert!(shown.contains(&key.id().to_string()), "{shown}");
}

#[test]
fn key_ids_are_stable_and_differ_between_keys() {
    assert_eq!(key(1).id(), key(1).id());
    let ids: HashSet<KeyId> = (0..=255).map(|k| key(k).id()).collect();
    assert_eq!(ids.len(), 256);
}

// ---- sealing and opening ----

#[test]
fn frames_round_trip_on_both_topics_and_have_the_stated_layout() {
    let keys = ring(&[1]);
    let c = cluster("team-a");
    let mut sealer = Sealer::new(ME, 7);
    for (topic, class) in [(ALL, Class::All), (TO_ME, Class::To)] {
        let body = b"\x01\x02plain v2 body".to_vec();
        let frame = sealer.seal_frame(&keys, &c, topic, &body, WALL).unwrap();
        assert_eq!(frame.len(), FRAME_HEADER_LEN + body.len() + TAG_LEN);
        assert_eq!(frame[0], FRAME_MARKER);
        assert_ne!(
            &frame[FRAME_HEADER_LEN..FRAME_HEADER_LEN + body.len()],
            &body[..]
        );
        let header = parse_frame(topic, &frame).unwrap();
        let expected = SealHeader {
            class,
            key_id: keys.send_id(),
            cluster_tag: c.tag(),
            sender: ME,
            salt: Salt::from_seed(7),
            counter: 0,
            stamp_ms: WALL,
        };
        assert_eq!(header, expected);
        let opened = keys.open_frame(&c, topic, &frame).unwrap();
        assert_eq!((opened.header, opened.body), (expected, body));
    }
    assert_eq!(sealer.next_counter(Class::All), 1);
    assert_eq!(sealer.next_counter(Class::To), 1);
    assert_eq!(sealer.next_counter(Class::Hello), 0);
}

#[test]
fn hellos_round_trip_in_68_bytes() {
    let keys = ring(&[1]);
    let c = cluster("");
    let mut sealer = Sealer::new(ME, 7);
    let hello = sealer.seal_hello(&keys, &c, hello_addr(), WALL).unwrap();
    assert_eq!(hello.len(), 68);
    assert_eq!(&hello[..7], b"dkv2\0\x02\x01");
    let opened = keys.open_hello(&c, &hello).unwrap();
    assert_eq!(opened.addr, hello_addr());
    assert_eq!(opened.header, parse_hello(&hello).unwrap());
    assert_eq!(
        (opened.header.class, opened.header.counter),
        (Class::Hello, 0)
    );
    // The unsealed v1 hello and prototype beacon are not sealed hellos.
    assert_eq!(
        parse_hello(&dkv_proto::encode_hello(1, ME)),
        Err(OpenError::NotSealed)
    );
    assert_eq!(parse_hello(b"beacon 41017"), Err(OpenError::NotSealed));
    assert_eq!(parse_hello(&hello[..67]), Err(OpenError::Truncated));
}

#[test]
fn every_single_bit_flip_of_a_frame_or_hello_is_refused() {
    let keys = ring(&[1]);
    let c = cluster("team-a");
    let mut sealer = Sealer::new(ME, 7);
    let frame = sealer
        .seal_frame(&keys, &c, ALL, b"body bytes", WALL)
        .unwrap();
    for bit in 0..frame.len() * 8 {
        let mut bad = frame.clone();
        bad[bit / 8] ^= 1 << (bit % 8);
        assert!(keys.open_frame(&c, ALL, &bad).is_err(), "bit {bit}");
    }
    let hello = sealer.seal_hello(&keys, &c, hello_addr(), WALL).unwrap();
    for bit in 0..hello.len() * 8 {
        let mut bad = hello;
        bad[bit / 8] ^= 1 << (bit % 8);
        assert!(keys.open_hello(&c, &bad).is_err(), "bit {bit}");
    }
}

#[test]
fn every_single_bit_flip_of_the_topic_is_refused() {
    let keys = ring(&[1]);
    let c = cluster("team-a");
    let frame = Sealer::new(ME, 7)
        .seal_frame(&keys, &c, TO_ME, b"x", WALL)
        .unwrap();
    for bit in 0..TO_ME.len() * 8 {
        let mut topic = TO_ME.to_vec();
        topic[bit / 8] ^= 1 << (bit % 8);
        assert!(keys.open_frame(&c, &topic, &frame).is_err(), "bit {bit}");
    }
    // Moved to another addressee or to every node: the topic and class are bound.
    assert_eq!(
        keys.open_frame(&c, b"dkv2.to other-id", &frame),
        Err(OpenError::Forged)
    );
    assert_eq!(keys.open_frame(&c, ALL, &frame), Err(OpenError::Forged));
    assert_eq!(keys.open_frame(&c, b"set", &frame), Err(OpenError::Topic));
}

/// Two names with one 32-bit tag (a birthday search, bounded), so the test reaches
/// the AEAD: the name itself, not only its tag, must be bound.
fn colliding_cluster_names() -> (String, String) {
    let mut seen: HashMap<ClusterTag, String> = HashMap::new();
    for i in 0..2_000_000u32 {
        let name = format!("c{i}");
        let tag = cluster(&name).tag();
        if let Some(other) = seen.insert(tag, name.clone()) {
            return (other, name);
        }
    }
    panic!("no tag collision in 2,000,000 names");
}

#[test]
fn another_cluster_cannot_open_even_with_the_same_tag() {
    let keys = ring(&[1]);
    let (a, b) = colliding_cluster_names();
    let (a, b) = (cluster(&a), cluster(&b));
    assert_eq!(a.tag(), b.tag());
    let mut sealer = Sealer::new(ME, 7);
    let frame = sealer.seal_frame(&keys, &a, ALL, b"body", WALL).unwrap();
    assert_eq!(keys.open_frame(&b, ALL, &frame), Err(OpenError::Forged));
    let hello = sealer.seal_hello(&keys, &a, hello_addr(), WALL).unwrap();
    assert_eq!(keys.open_hello(&b, &hello), Err(OpenError::Forged));
    // A cluster with another tag is refused before any crypto.
    let other = cluster("team-b");
    assert_eq!(
        keys.open_frame(&other, ALL, &frame),
        Err(OpenError::ForeignCluster)
    );
    assert_eq!(
        keys.open_hello(&other, &hello),
        Err(OpenError::ForeignCluster)
    );
}

/// Two keys with one 32-bit id: the keys whose first 8 bytes are these little-endian
/// integers (the rest zero), found by a birthday search over 0, 1, 2, ...
fn colliding_keys() -> (Key, Key) {
    let key = |i: u64| {
        let mut bytes = [0u8; 32];
        bytes[..8].copy_from_slice(&i.to_le_bytes());
        Key::from_bytes(bytes)
    };
    (key(104_146), key(166_829))
}

#[test]
fn a_wrong_key_cannot_open_even_with_the_same_id() {
    let (k1, k2) = colliding_keys();
    assert_eq!(k1.id(), k2.id());
    let (sender, receiver) = (
        Keyring::new(vec![k1]).unwrap(),
        Keyring::new(vec![k2]).unwrap(),
    );
    let c = cluster("x");
    let mut sealer = Sealer::new(ME, 7);
    let frame = sealer.seal_frame(&sender, &c, ALL, b"body", WALL).unwrap();
    assert_eq!(receiver.open_frame(&c, ALL, &frame), Err(OpenError::Forged));
    let hello = sealer.seal_hello(&sender, &c, hello_addr(), WALL).unwrap();
    assert_eq!(receiver.open_hello(&c, &hello), Err(OpenError::Forged));
    // A key id the receiver lacks is refused before any crypto.
    assert_eq!(
        ring(&[3]).open_frame(&c, ALL, &frame),
        Err(OpenError::UnknownKey)
    );
}

#[test]
fn a_rotation_keyring_opens_the_old_and_the_new_key() {
    let c = cluster("x");
    let old_sender = ring(&[1]);
    let new_sender = ring(&[2, 1]);
    let receiver = ring(&[1, 2]);
    let mut sealer = Sealer::new(ME, 7);
    for keys in [&old_sender, &new_sender] {
        let frame = sealer.seal_frame(keys, &c, ALL, b"body", WALL).unwrap();
        assert_eq!(receiver.open_frame(&c, ALL, &frame).unwrap().body, b"body");
    }
    let frame = sealer
        .seal_frame(&new_sender, &c, ALL, b"body", WALL)
        .unwrap();
    assert_eq!(
        old_sender.open_frame(&c, ALL, &frame),
        Err(OpenError::UnknownKey)
    );
}

#[test]
fn short_and_unmarked_frames_are_refused_without_a_topic_check_first() {
    let keys = ring(&[1]);
    let c = cluster("x");
    assert_eq!(parse_frame(ALL, b""), Err(OpenError::NotSealed));
    assert_eq!(
        parse_frame(ALL, b"\x01\x00plain"),
        Err(OpenError::NotSealed)
    );
    let frame = Sealer::new(ME, 7)
        .seal_frame(&keys, &c, ALL, b"", WALL)
        .unwrap();
    assert_eq!(frame.len(), FRAME_HEADER_LEN + TAG_LEN);
    assert_eq!(keys.open_frame(&c, ALL, &frame).unwrap().body, b"");
    for len in 1..frame.len() {
        assert_eq!(
            keys.open_frame(&c, ALL, &frame[..len]),
            Err(OpenError::Truncated)
        );
    }
    assert!(Cluster::new(&"n".repeat(MAX_CLUSTER_BYTES)).is_ok());
    assert_eq!(
        Cluster::new(&"n".repeat(MAX_CLUSTER_BYTES + 1)),
        Err(SealError::ClusterName(65))
    );
    let mut sealer = Sealer::new(ME, 7);
    assert_eq!(
        sealer.seal_frame(&keys, &c, b"set", b"", WALL),
        Err(SealError::Topic)
    );
    assert_eq!(sealer.next_counter(Class::All), 0);
}

// ---- nonces ----

#[test]
fn nonces_never_repeat_across_classes_runs_and_senders() {
    let keys = ring(&[1]);
    let c = cluster("x");
    let mut nonces = HashSet::new();
    let mut total = 0;
    // 10,000 seals per class, then two runs of one id (different seeds) and a run of
    // another id with the same seed (fewer: an unoptimized test build seals slowly).
    let runs = [
        (ME, 1, 10_000),
        (ME, 2, 2_000),
        (NodeId(*b"sender-2"), 1, 2_000),
    ];
    for (id, seed, runs) in runs {
        let mut sealer = Sealer::new(id, seed);
        for i in 0..runs {
            let all = sealer.seal_frame(&keys, &c, ALL, b"b", WALL + i).unwrap();
            let to = sealer.seal_frame(&keys, &c, TO_ME, b"b", WALL + i).unwrap();
            let hello = sealer
                .seal_hello(&keys, &c, hello_addr(), WALL + i)
                .unwrap();
            for header in [
                parse_frame(ALL, &all).unwrap(),
                parse_frame(TO_ME, &to).unwrap(),
                parse_hello(&hello).unwrap(),
            ] {
                assert_eq!(header.counter, i);
                nonces.insert(header.nonce());
                total += 1;
            }
        }
        for class in Class::ALL {
            assert_eq!(sealer.next_counter(class), runs);
        }
    }
    assert_eq!(nonces.len(), total);
    assert_ne!(Salt::from_seed(1), Salt::from_seed(2));
}

// ---- replay guard ----

fn header(counter: u64, stamp_ms: u64) -> SealHeader {
    SealHeader {
        class: Class::All,
        key_id: KeyId([1; 4]),
        cluster_tag: ClusterTag([2; 4]),
        sender: ME,
        salt: Salt([3; 7]),
        counter,
        stamp_ms,
    }
}

fn guard() -> ReplayGuard {
    ReplayGuard::new(ReplayConfig::default(), WALL - 500)
}

#[test]
fn a_replayed_frame_is_refused_and_a_fresh_one_accepted() {
    let keys = ring(&[1]);
    let c = cluster("x");
    let mut sealer = Sealer::new(ME, 7);
    let mut guard = guard();
    let first = sealer.seal_frame(&keys, &c, ALL, b"one", WALL).unwrap();
    let second = sealer.seal_frame(&keys, &c, ALL, b"two", WALL).unwrap();
    for frame in [&first, &second] {
        let h = parse_frame(ALL, frame).unwrap();
        guard.check(&h, WALL).unwrap();
        keys.open_frame(&c, ALL, frame).unwrap();
        guard.commit(&h, WALL).unwrap();
    }
    for frame in [&first, &second] {
        let h = parse_frame(ALL, frame).unwrap();
        assert_eq!(guard.check(&h, WALL + 1), Err(Refusal::Replay));
        assert_eq!(guard.commit(&h, WALL + 1), Err(Refusal::Replay));
    }
    let third = sealer
        .seal_frame(&keys, &c, ALL, b"three", WALL + 2)
        .unwrap();
    guard
        .commit(&parse_frame(ALL, &third).unwrap(), WALL + 2)
        .unwrap();
    let stats = guard.stats();
    assert_eq!((stats.accepted, stats.replay), (3, 4));
}

#[test]
fn the_window_accepts_each_counter_once_and_refuses_below_it() {
    let mut g = guard();
    g.commit(&header(200, WALL), WALL).unwrap();
    // Out of order inside the window: accepted once.
    g.commit(&header(150, WALL), WALL).unwrap();
    assert_eq!(g.commit(&header(150, WALL), WALL), Err(Refusal::Replay));
    g.commit(&header(73, WALL), WALL).unwrap(); // 127 below the top
    assert_eq!(g.check(&header(72, WALL), WALL), Err(Refusal::BelowWindow));
    // Above the top slides the window.
    g.commit(&header(201, WALL), WALL).unwrap();
    assert_eq!(g.check(&header(73, WALL), WALL), Err(Refusal::BelowWindow));
    assert_eq!(g.check(&header(200, WALL), WALL), Err(Refusal::Replay));
    g.commit(&header(1_000, WALL), WALL).unwrap();
    assert_eq!(g.check(&header(201, WALL), WALL), Err(Refusal::BelowWindow));
    g.commit(&header(999, WALL), WALL).unwrap();
    assert_eq!(g.top(ME, Salt([3; 7]), Class::All), Some(1_000));
    // Classes and streams have their own windows.
    let mut to = header(5, WALL);
    to.class = Class::To;
    g.commit(&to, WALL).unwrap();
    let mut other_run = header(5, WALL);
    other_run.salt = Salt([4; 7]);
    g.commit(&other_run, WALL).unwrap();
    let stats = g.stats();
    assert_eq!(
        (stats.accepted, stats.replay, stats.below_window),
        (8, 2, 3)
    );
}

#[test]
fn a_check_changes_no_window() {
    let mut g = guard();
    g.check(&header(5, WALL), WALL).unwrap();
    g.check(&header(5, WALL), WALL).unwrap();
    assert_eq!((g.streams(), g.stats().accepted), (0, 0));
    g.commit(&header(5, WALL), WALL).unwrap();
    assert_eq!(g.check(&header(5, WALL), WALL), Err(Refusal::Replay));
}

#[test]
fn stale_future_and_pre_start_stamps_are_refused() {
    let w = ReplayConfig::default().window_ms;
    let mut g = guard();
    let now = WALL + 60_000;
    assert_eq!(g.check(&header(0, now - w - 1), now), Err(Refusal::Stale));
    g.commit(&header(0, now - w), now).unwrap();
    assert_eq!(g.check(&header(1, now + w + 1), now), Err(Refusal::Future));
    g.commit(&header(1, now + w), now).unwrap();
    // Sealed before the receiver's run started (less its clock offset), though fresh.
    assert_eq!(
        g.check(&header(2, WALL - 501), WALL),
        Err(Refusal::BeforeStart)
    );
    g.commit(&header(2, WALL - 500), WALL).unwrap();
    let s = g.stats();
    assert_eq!(
        (s.stale, s.future, s.before_start, s.accepted),
        (1, 1, 1, 3)
    );
}

#[test]
fn a_restarted_receiver_refuses_what_it_accepted_before() {
    let mut before = ReplayGuard::new(ReplayConfig::default(), WALL - 500);
    before.commit(&header(0, WALL), WALL).unwrap();
    // A new run with no memory, started 1 s later: its floor refuses the old frame.
    let mut after = ReplayGuard::new(ReplayConfig::default(), WALL + 1_000 - 500);
    assert_eq!(
        after.commit(&header(0, WALL), WALL + 1_000),
        Err(Refusal::BeforeStart)
    );
    after
        .commit(&header(1, WALL + 1_000), WALL + 1_000)
        .unwrap();
}

#[test]
fn quiet_streams_expire_and_the_stream_cap_holds() {
    let w = ReplayConfig::default().window_ms;
    let mut g = ReplayGuard::new(
        ReplayConfig {
            window_ms: w,
            max_streams: 2,
        },
        0,
    );
    let stream = |id: u8, stamp| {
        let mut h = header(0, stamp);
        h.sender = NodeId([id; 8]);
        h
    };
    g.commit(&stream(1, WALL), WALL).unwrap();
    g.commit(&stream(2, WALL + 10_000), WALL + 10_000).unwrap();
    assert_eq!(
        g.check(&stream(3, WALL + 10_000), WALL + 10_000),
        Err(Refusal::StreamsFull)
    );
    assert_eq!(g.streams(), 2);
    // Stream 1 is quiet for more than W: a new stream takes its place.
    let later = WALL + w + 1;
    g.commit(&stream(3, later), later).unwrap();
    assert_eq!(g.streams(), 2);
    g.expire(WALL + 10_000 + w + 1);
    assert_eq!(g.streams(), 1);
    let s = g.stats();
    assert_eq!((s.streams_full, s.expired, s.accepted), (1, 2, 3));
}

// ---- properties ----

fn topic_strategy() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(ALL.to_vec()),
        any::<[u8; 8]>().prop_map(|id| [b"dkv2.to ".as_slice(), &id].concat()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_body_round_trips(
        body in proptest::collection::vec(any::<u8>(), 0..2_000),
        name in "[a-z0-9-]{0,64}",
        topic in topic_strategy(),
        id in any::<[u8; 8]>(),
        seed in any::<u64>(),
        stamp in any::<u64>(),
        port in any::<u16>(),
        ip in any::<[u8; 4]>(),
    ) {
        let keys = ring(&[1, 2]);
        let c = cluster(&name);
        let mut sealer = Sealer::new(NodeId(id), seed);
        let frame = sealer.seal_frame(&keys, &c, &topic, &body, stamp).unwrap();
        let opened = keys.open_frame(&c, &topic, &frame).unwrap();
        prop_assert_eq!(&opened.body, &body);
        prop_assert_eq!((opened.header.sender, opened.header.stamp_ms), (NodeId(id), stamp));
        let addr = HelloAddr { port, ip: Ipv4Addr::from(ip) };
        let hello = sealer.seal_hello(&keys, &c, addr, stamp).unwrap();
        prop_assert_eq!(keys.open_hello(&c, &hello).unwrap().addr, addr);
    }

    #[test]
    fn a_changed_byte_is_refused(
        body in proptest::collection::vec(any::<u8>(), 0..300),
        at in any::<prop::sample::Index>(),
        xor in 1..=255u8,
        cut in any::<prop::sample::Index>(),
    ) {
        let keys = ring(&[1]);
        let c = cluster("x");
        let mut sealer = Sealer::new(ME, 1);
        let mut frame = sealer.seal_frame(&keys, &c, ALL, &body, WALL).unwrap();
        let len = frame.len();
        frame[at.index(len)] ^= xor;
        prop_assert!(keys.open_frame(&c, ALL, &frame).is_err());
        frame[at.index(len)] ^= xor;
        prop_assert!(keys.open_frame(&c, ALL, &frame[..cut.index(len)]).is_err());
        let mut extended = frame.clone();
        extended.push(xor);
        prop_assert!(keys.open_frame(&c, ALL, &extended).is_err());
    }

    #[test]
    fn garbage_never_panics_and_never_opens(
        bytes in proptest::collection::vec(any::<u8>(), 0..200),
        marked in any::<bool>(),
        topic in topic_strategy(),
    ) {
        let keys = ring(&[1]);
        let c = cluster("x");
        let mut frame = bytes.clone();
        let mut hello = bytes.clone();
        if marked {
            // Past the cheap checks: the marker or prefix, our tag and a known key id.
            frame.resize(frame.len().max(FRAME_HEADER_LEN + TAG_LEN), 0);
            frame[0] = FRAME_MARKER;
            frame[1..5].copy_from_slice(&keys.send_id().0);
            frame[5..9].copy_from_slice(&c.tag().0);
            hello.resize(SEALED_HELLO_LEN, 0);
            hello[..7].copy_from_slice(b"dkv2\0\x02\x01");
            hello[7..11].copy_from_slice(&c.tag().0);
            hello[19..23].copy_from_slice(&keys.send_id().0);
        }
        prop_assert!(keys.open_frame(&c, &topic, &frame).is_err());
        prop_assert!(keys.open_hello(&c, &hello).is_err());
        let _ = parse_frame(&topic, &bytes);
        let _ = parse_hello(&bytes);
        let mut g = guard();
        if let Ok(h) = parse_frame(&topic, &frame) {
            let _ = g.check(&h, WALL);
        }
        let _ = Keyring::parse(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn two_runs_never_share_a_nonce(
        a in any::<([u8; 8], u64)>(),
        b in any::<([u8; 8], u64)>(),
        same_id in any::<bool>(),
    ) {
        let keys = ring(&[1]);
        let c = cluster("x");
        // Half the cases are two runs of one id (a fixed `Config::id`), told apart by salt.
        let b = if same_id { (a.0, b.1) } else { b };
        prop_assume!((a.0, Salt::from_seed(a.1)) != (b.0, Salt::from_seed(b.1)));
        let mut nonces = HashSet::new();
        for (id, seed) in [a, b] {
            let mut sealer = Sealer::new(NodeId(id), seed);
            for i in 0..50 {
                let frame = sealer.seal_frame(&keys, &c, ALL, b"b", i).unwrap();
                let hello = sealer.seal_hello(&keys, &c, hello_addr(), i).unwrap();
                prop_assert!(nonces.insert(parse_frame(ALL, &frame).unwrap().nonce()));
                prop_assert!(nonces.insert(parse_hello(&hello).unwrap().nonce()));
            }
        }
    }

    #[test]
    fn a_guard_accepts_each_item_at_most_once(
        counters in proptest::collection::vec(0..300u64, 1..400),
    ) {
        let mut g = guard();
        let mut accepted = HashSet::new();
        for c in counters {
            if g.commit(&header(c, WALL), WALL).is_ok() {
                prop_assert!(accepted.insert(c), "counter {} accepted twice", c);
            }
        }
        prop_assert_eq!(g.stats().accepted as usize, accepted.len());
    }
}
