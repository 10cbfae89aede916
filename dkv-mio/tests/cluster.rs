//! Several nodes in one process over loopback broadcast, each test on its own
//! beacon port: discovery, set and get across nodes, a late joiner's bootstrap,
//! peer down when a node stops, and the handle's contract.

mod support;

use bytes::Bytes;
use dkv_mio::{BootstrapPhase, Config, Dkv, Error, MAX_GET_TIMEOUT, MAX_PEER_TIMEOUT};
use std::sync::Arc;
use std::time::Duration;
use support::{cluster, config, connect_fully, wait_until};

#[test]
fn three_nodes_discover_each_other_by_hellos() {
    let config = config();
    let nodes = cluster(&config, 3);
    for node in &nodes {
        let peers = node.peers().unwrap();
        let mut expected: Vec<u16> = nodes
            .iter()
            .filter(|other| other.pub_port() != node.pub_port())
            .map(Dkv::pub_port)
            .collect();
        expected.sort_unstable();
        let mut ports: Vec<u16> = peers.iter().map(|p| p.port()).collect();
        ports.sort_unstable();
        assert_eq!(ports, expected);
        assert!(peers.iter().all(|p| p.ip().is_loopback()));
        assert!(node.local_ip().unwrap().unwrap().is_loopback());
        let stats = node.stats().unwrap();
        assert!(stats.proto.hellos_in > 0 && stats.transport.beacons_sent > 0);
        assert_eq!(stats.proto.beacons_out, 0, "no prototype: hellos only");
    }
}

#[test]
fn nodes_on_other_beacon_ports_do_not_meet() {
    let a = Dkv::start(config()).unwrap();
    let b = Dkv::start(config()).unwrap();
    // Both beacon several times; neither may hear the other.
    wait_until("both nodes to beacon a few times", || {
        [&a, &b]
            .iter()
            .all(|n| n.stats().unwrap().transport.beacons_sent >= 3)
    });
    assert!(a.peers().unwrap().is_empty());
    assert!(b.peers().unwrap().is_empty());
}

#[test]
fn a_set_on_one_node_replicates_to_the_others() {
    let config = config();
    let nodes = cluster(&config, 3);
    connect_fully(&nodes);
    nodes[0].set("color", "blue").unwrap();
    wait_until("the set to reach every node", || {
        nodes
            .iter()
            .all(|n| n.get_local("color").unwrap().as_deref() == Some(&b"blue"[..]))
    });
}

#[test]
fn a_get_that_misses_locally_is_answered_by_a_peer_and_kept() {
    let config = config();
    let nodes = cluster(&config, 2);
    connect_fully(&nodes);
    // A newcomer sets a key before anyone is connected to it, so only it holds it.
    let solo = Dkv::start(config.clone()).unwrap();
    solo.set("only-here", "v1").unwrap();
    wait_until("the newcomer to see both peers", || {
        solo.peers().unwrap().len() == 2 && nodes.iter().all(|n| n.peers().unwrap().len() == 2)
    });
    let mut value = None;
    wait_until("a remote get to be answered", || {
        value = nodes[1]
            .get("only-here", Some(Duration::from_millis(200)))
            .unwrap();
        value.is_some()
    });
    assert_eq!(value.as_deref(), Some(&b"v1"[..]));
    assert_eq!(
        nodes[1].get_local("only-here").unwrap().as_deref(),
        Some(&b"v1"[..])
    );
}

#[test]
fn a_get_with_no_holder_times_out_with_nothing() {
    let config = config();
    let nodes = cluster(&config, 2);
    let value = nodes[0]
        .get("nobody-has-this", Some(Duration::from_millis(100)))
        .unwrap();
    assert_eq!(value, None);
    assert_eq!(nodes[0].stats().unwrap().proto.gets_timed_out, 1);
}

#[test]
fn a_local_get_answers_at_once_with_the_latest_set() {
    let node = Dkv::start(config()).unwrap();
    node.set("k", "one").unwrap();
    node.set("k", Bytes::from_static(b"two")).unwrap();
    assert_eq!(
        node.get("k", Some(Duration::ZERO)).unwrap().as_deref(),
        Some(&b"two"[..])
    );
    assert_eq!(node.keys().unwrap(), vec!["k".to_string()]);
}

#[test]
fn a_late_joiner_bootstraps_every_key() {
    let config = config();
    let founders = cluster(&config, 2);
    connect_fully(&founders);
    for i in 0..300 {
        founders[i % 2]
            .set(format!("key/{i:04}"), format!("value {i}"))
            .unwrap();
    }
    wait_until("the founders to hold every key", || {
        founders.iter().all(|n| n.keys().unwrap().len() >= 300 + 2)
    });
    let mut late_config = config.clone();
    late_config.timings.bootstrap_delay = Duration::from_millis(600);
    let late = Dkv::start(late_config).unwrap();
    wait_until("the late joiner's bootstrap to finish", || {
        late.bootstrap().unwrap().phase == BootstrapPhase::Done
    });
    let keys = late.keys().unwrap();
    assert_eq!(keys, founders[0].keys().unwrap());
    assert_eq!(
        late.get_local("key/0123").unwrap().as_deref(),
        Some(&b"value 123"[..])
    );
    let stats = late.stats().unwrap().proto;
    assert_eq!(stats.bootstraps_done, 1);
    // Between dkv nodes, bootstrap is reconciliation: the keys are pulled in pages,
    // not asked for one by one.
    assert!(stats.entries_applied >= 300, "{stats:?}");
    assert!(stats.sync_pull_pages >= 1, "{stats:?}");
    assert_eq!(stats.out_question + stats.out_list, 0, "{stats:?}");
}

#[test]
fn peers_see_a_stopped_node_go_down() {
    let config = config();
    let mut nodes = cluster(&config, 3);
    let gone = nodes.pop().unwrap();
    let endpoint = std::net::SocketAddr::from(([127, 0, 0, 1], gone.pub_port()));
    gone.shutdown().unwrap();
    wait_until("the others to drop the stopped node", || {
        nodes
            .iter()
            .all(|n| !n.peers().unwrap().contains(&endpoint))
    });
    for node in &nodes {
        assert_eq!(node.peers().unwrap().len(), 1);
        let stats = node.stats().unwrap();
        assert!(stats.proto.peers_down >= 1);
        assert!(stats.transport.sub_disconnects >= 1);
    }
}

#[test]
fn requests_after_shutdown_fail_with_stopped_and_shutdown_is_idempotent() {
    let node = Dkv::start(config()).unwrap();
    assert!(!node.wait_stopped(Duration::from_millis(50)));
    node.shutdown().unwrap();
    assert!(node.wait_stopped(Duration::ZERO));
    node.shutdown().unwrap();
    assert!(matches!(node.set("k", "v"), Err(Error::Stopped)));
    assert!(matches!(node.get("k", None), Err(Error::Stopped)));
    assert!(matches!(node.keys(), Err(Error::Stopped)));
    assert!(matches!(node.stats(), Err(Error::Stopped)));
}

#[test]
fn a_pending_get_completes_when_the_node_shuts_down() {
    let node = Arc::new(Dkv::start(config()).unwrap());
    let asker = Arc::clone(&node);
    let get = std::thread::spawn(move || asker.get("k", Some(Duration::from_secs(60))));
    wait_until("the get to be pending", || {
        node.stats().unwrap().proto.out_question == 1
    });
    node.shutdown().unwrap();
    let result = get.join().unwrap();
    assert!(matches!(result, Ok(None)), "{result:?}");
}

#[test]
fn the_handle_is_shared_between_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Dkv>();
    let node = Arc::new(Dkv::start(config()).unwrap());
    let writers: Vec<_> = (0..4)
        .map(|t| {
            let node = Arc::clone(&node);
            std::thread::spawn(move || {
                for i in 0..50 {
                    node.set(format!("t{t}/{i}"), "x").unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    assert_eq!(node.keys().unwrap().len(), 200);
}

#[test]
fn out_of_range_arguments_are_refused_without_harm() {
    let node = Dkv::start(config()).unwrap();
    let too_long = MAX_GET_TIMEOUT + Duration::from_secs(1);
    assert!(matches!(
        node.get("k", Some(too_long)),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        node.get("k", Some(Duration::MAX)),
        Err(Error::InvalidArgument(_))
    ));
    node.set("k", "still fine").unwrap();
    assert!(node.get_local("k").unwrap().is_some());
    let bad = Config {
        timings: dkv_mio::Timings {
            beacon_interval: Duration::ZERO,
            ..support::timings()
        },
        ..config()
    };
    assert!(matches!(Dkv::start(bad), Err(Error::InvalidTimings(_))));
    let bad = Config {
        timings: dkv_mio::Timings {
            peer_timeout: Duration::from_millis(10),
            ..support::timings()
        },
        ..config()
    };
    assert!(matches!(Dkv::start(bad), Err(Error::InvalidTimings(_))));
}

#[test]
fn a_node_with_a_fixed_bind_address_uses_it_as_its_local_address() {
    let config = Config {
        bind: Some(std::net::Ipv4Addr::LOCALHOST),
        ..config()
    };
    let nodes = cluster(&config, 2);
    for node in &nodes {
        assert_eq!(
            node.local_ip().unwrap(),
            Some(std::net::Ipv4Addr::LOCALHOST.into())
        );
    }
    connect_fully(&nodes);
}

#[test]
fn a_given_id_is_used_and_fresh_ids_differ() {
    let id = dkv_mio::NodeId(*b"fixed id");
    let fixed = Dkv::start(Config {
        id: Some(id),
        ..config()
    })
    .unwrap();
    assert_eq!(fixed.id(), id);
    let a = Dkv::start(config()).unwrap();
    let b = Dkv::start(config()).unwrap();
    assert_ne!(a.id(), b.id());
}

#[test]
fn an_idle_node_sleeps_until_its_next_deadline_instead_of_spinning() {
    let node = Dkv::start(config()).unwrap();
    wait_until("the node to be up", || node.local_ip().unwrap().is_some());
    let before = node.stats().unwrap().transport.loop_turns;
    std::thread::sleep(Duration::from_millis(500));
    let turns = node.stats().unwrap().transport.loop_turns - before;
    // Beacons, own beacons heard back and address checks every 50 ms wake it about
    // 30 times in 500 ms; a loop that spun would turn many thousands of times.
    assert!(turns < 500, "{turns} loop turns in 500 ms of idling");
    assert!(turns > 0);
}

#[test]
fn a_bind_address_not_on_this_host_fails_to_start_with_a_typed_error() {
    // 198.51.100.0/24 is TEST-NET-2: never assigned here. Binding sends nothing.
    let config = Config {
        bind: Some(std::net::Ipv4Addr::new(198, 51, 100, 7)),
        ..config()
    };
    let err = Dkv::start(config).unwrap_err();
    assert!(
        matches!(err, Error::Zmq { .. } | Error::BeaconSender { .. }),
        "{err}"
    );
}

#[test]
fn huge_intervals_and_hwms_are_refused_or_saturated_never_a_dead_node() {
    // A re-check interval (or a beacon interval) too long to add to "now" once
    // made the loop thread panic at start, and every request after failed. The
    // dkv/2 core multiplies the peer timeout, so one above a day is refused.
    let huge = Config {
        timings: dkv_mio::Timings {
            beacon_interval: Duration::MAX / 2,
            peer_timeout: Duration::MAX,
            ..support::timings()
        },
        ..config()
    };
    let err = Dkv::start(huge).unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)), "{err}");
    for config in [
        Config {
            address_check_interval: Some(Duration::MAX),
            ..config()
        },
        Config {
            timings: dkv_mio::Timings {
                beacon_interval: MAX_PEER_TIMEOUT / 2,
                peer_timeout: MAX_PEER_TIMEOUT,
                ..support::timings()
            },
            ..config()
        },
    ] {
        let node = Dkv::start(config).unwrap();
        node.set("k", "v").unwrap();
        assert_eq!(node.keys().unwrap(), vec!["k".to_string()]);
        assert!(node.stats().unwrap().transport.address_checks >= 1);
        node.shutdown().unwrap();
    }
    // A negative high-water mark means nothing to ZeroMQ, and 0 ("no limit")
    // would leave a stalled subscriber's memory unbounded: refused at start.
    for config in [
        Config {
            send_hwm: -1,
            ..config()
        },
        Config {
            recv_hwm: -1,
            ..config()
        },
        Config {
            send_hwm: 0,
            ..config()
        },
    ] {
        let err = Dkv::start(config).unwrap_err();
        assert!(matches!(err, Error::InvalidArgument(_)), "{err}");
    }
}

#[test]
fn a_bind_address_or_beacon_port_that_cannot_work_is_refused_at_start() {
    // 0.0.0.0 as "the" local address made the node hear its own beacons from its
    // real address as a peer's and subscribe to itself; port 0 sends no beacon.
    for bind in [
        std::net::Ipv4Addr::UNSPECIFIED,
        std::net::Ipv4Addr::BROADCAST,
        std::net::Ipv4Addr::new(224, 0, 0, 1),
    ] {
        let config = Config {
            bind: Some(bind),
            ..config()
        };
        let err = Dkv::start(config).unwrap_err();
        assert!(matches!(err, Error::InvalidArgument(_)), "{bind}: {err}");
    }
    let err = Dkv::start(Config::loopback(0)).unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)), "{err}");
}

#[test]
fn a_default_get_timeout_above_the_get_limit_is_refused_at_start() {
    // Explicit get timeouts are capped at MAX_GET_TIMEOUT; the default one was
    // not, so a plain get could block for a century.
    let refused = Config {
        timings: dkv_mio::Timings {
            get_timeout: Duration::MAX,
            ..support::timings()
        },
        ..config()
    };
    let err = Dkv::start(refused).unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)), "{err}");
    let accepted = Config {
        timings: dkv_mio::Timings {
            get_timeout: MAX_GET_TIMEOUT,
            ..support::timings()
        },
        ..config()
    };
    Dkv::start(accepted).unwrap().shutdown().unwrap();
}

#[test]
fn a_write_over_the_core_limits_is_refused_and_nothing_is_written() {
    let config = config();
    let nodes = cluster(&config, 1);
    let dkv = &nodes[0];
    let big = Bytes::from(vec![b'x'; (1 << 20) + 1]);
    let err = dkv.set("k", big).unwrap_err();
    assert!(matches!(err, Error::TooLarge(_)), "{err}");
    let err = dkv.delete("k".repeat(1025)).unwrap_err();
    assert!(matches!(err, Error::TooLarge(_)), "{err}");
    assert_eq!(dkv.get_local("k").unwrap(), None);
    dkv.set("k", Bytes::from(vec![b'x'; 1 << 20])).unwrap();
    assert_eq!(dkv.get_local("k").unwrap().map(|v| v.len()), Some(1 << 20));
}

#[test]
fn a_set_made_just_before_shutdown_still_reaches_the_peers() {
    // set() returns once the node has the request; shutting down right after
    // must not throw the published message away (as `echo "set k v" | dkv node`
    // would). 8 MiB take a while to cross TCP; in values of 1 MiB, the largest
    // the default limits accept.
    let config = config();
    let mut nodes = cluster(&config, 2);
    connect_fully(&nodes);
    let writer = nodes.remove(0);
    let value = Bytes::from(vec![b'x'; 1 << 20]);
    for i in 0..8 {
        writer
            .set(format!("last words {i}"), value.clone())
            .unwrap();
    }
    writer.shutdown().unwrap();
    let reader = &nodes[0];
    wait_until("the last set to arrive", || {
        reader.get_local("last words 7").unwrap().is_some()
    });
    for i in 0..8 {
        let got = reader.get_local(format!("last words {i}")).unwrap();
        assert_eq!(got, Some(value.clone()), "last words {i}");
    }
}

#[test]
fn a_delete_replicates_as_a_tombstone_and_reads_as_none_everywhere() {
    let config = config();
    let nodes = cluster(&config, 2);
    connect_fully(&nodes);
    nodes[0].set("doomed", "v").unwrap();
    nodes[0].set("kept", "v").unwrap();
    wait_until("both keys to reach the other node", || {
        nodes[1].keys().unwrap().contains(&"kept".to_string())
            && nodes[1].get_local("doomed").unwrap().is_some()
    });
    nodes[1].delete("doomed").unwrap();
    wait_until("the delete to reach the writer", || {
        nodes[0]
            .entry("doomed")
            .unwrap()
            .is_some_and(|e| e.is_tombstone())
    });
    for node in &nodes {
        assert_eq!(node.get("doomed", Some(Duration::ZERO)).unwrap(), None);
        assert_eq!(node.get_versioned("doomed", None).unwrap(), None);
        assert!(!node.keys().unwrap().contains(&"doomed".to_string()));
        let entry = node.entry("doomed").unwrap().unwrap();
        assert_eq!(entry.version.node, nodes[1].id(), "the delete's version");
        let status = node.status().unwrap();
        assert_eq!(status.tombstones, 1);
        assert_eq!(
            status.stats.proto.deletes,
            u64::from(node.id() == nodes[1].id())
        );
    }
    wait_until("both stores to have the same summary", || {
        nodes[0].status().unwrap().summary == nodes[1].status().unwrap().summary
    });
    // A later set brings the key back.
    nodes[0].set("doomed", "again").unwrap();
    wait_until("the key to come back on the deleter", || {
        nodes[1].get_local("doomed").unwrap().as_deref() == Some(&b"again"[..])
    });
}

#[test]
fn get_versioned_gives_the_writer_and_a_later_write_a_higher_version() {
    let config = config();
    let nodes = cluster(&config, 2);
    connect_fully(&nodes);
    nodes[0].set("k", "one").unwrap();
    let (value, first) = nodes[0].get_versioned("k", None).unwrap().unwrap();
    assert_eq!((&value[..], first.node), (&b"one"[..], nodes[0].id()));
    wait_until("the set to replicate", || {
        nodes[1].get_local("k").unwrap().is_some()
    });
    let (_, there) = nodes[1].get_versioned("k", None).unwrap().unwrap();
    assert_eq!(there, first, "a replica keeps the writer's version");
    nodes[1].set("k", "two").unwrap();
    let (value, second) = nodes[1].get_versioned("k", None).unwrap().unwrap();
    assert_eq!(&value[..], b"two");
    assert!(second > first, "{second} not above {first}");
    assert_eq!(second.node, nodes[1].id());
    assert!(nodes[1].status().unwrap().clock >= second.ts);
    assert_eq!(
        nodes[0]
            .get_versioned("nobody-has-this", Some(Duration::from_millis(50)))
            .unwrap(),
        None
    );
}

#[test]
fn keys_come_sorted_and_the_status_counts_what_is_held() {
    let node = Dkv::start(config()).unwrap();
    for key in ["zebra", "apple", "mango", "banana"] {
        node.set(key, "v").unwrap();
    }
    node.delete("mango").unwrap();
    assert_eq!(node.keys().unwrap(), vec!["apple", "banana", "zebra"]);
    let status = node.status().unwrap();
    assert_eq!((status.keys, status.tombstones), (3, 1));
    assert_eq!(status.summary.count, 4, "the tombstone counts as an entry");
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    // The clock stamps versions with wall time.
    assert!(
        status.clock.millis().abs_diff(now_ms) < 60_000,
        "{}",
        status.clock
    );
    assert_eq!((status.peers, status.ready_peers), (0, 0));
}

#[test]
fn every_peer_becomes_ready_and_ready_peers_are_live_peers() {
    let config = config();
    let nodes = cluster(&config, 3);
    wait_until("every node to have two ready peers", || {
        nodes.iter().all(|n| n.ready_peers().unwrap().len() == 2)
    });
    for node in &nodes {
        let peers = node.peers().unwrap();
        assert!(node
            .ready_peers()
            .unwrap()
            .iter()
            .all(|p| peers.contains(p)));
        assert_eq!(node.status().unwrap().ready_peers, 2);
    }
    // Ready means a write reaches them now: no repetition needed.
    nodes[2].set("once", "x").unwrap();
    wait_until("the one set to reach both others", || {
        nodes[..2]
            .iter()
            .all(|n| n.get_local("once").unwrap().is_some())
    });
}
