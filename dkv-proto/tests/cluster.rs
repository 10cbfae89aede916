//! Three cores wired together on an in-memory LAN: replication, remote gets, a late
//! joiner's bootstrap, and the list_answer crossfire that kills the prototype.

mod support;

use dkv_proto::{BootstrapPhase, Timings};
use std::time::Duration;
use support::*;

fn three_discovered() -> Lan {
    let mut lan = Lan::new(Timings::default());
    for _ in 0..3 {
        lan.add();
    }
    lan.run_for(Duration::from_millis(1_500));
    for h in 0..3 {
        assert_eq!(lan.peers(h).len(), 2, "host {h} sees both others");
    }
    lan
}

/// Every host loses and regains its address at once, so all bootstrap together.
fn everyone_bootstraps_at_once(lan: &mut Lan) {
    let now = lan.now;
    for (h, host) in lan.hosts.iter_mut().enumerate() {
        host.node.handle_net_down(now);
        host.node.handle_net_up(now, ip(h as u8 + 1));
    }
}

#[test]
fn three_nodes_discover_each_other_by_beacons() {
    let lan = three_discovered();
    let addrs: Vec<_> = lan.hosts.iter().map(|h| h.addr()).collect();
    for (h, host) in lan.hosts.iter().enumerate() {
        let expected: Vec<_> = addrs
            .iter()
            .copied()
            .filter(|a| *a != host.addr())
            .collect();
        assert_eq!(lan.peers(h), expected);
        assert_eq!(host.connected.iter().copied().collect::<Vec<_>>(), expected);
    }
}

#[test]
fn a_set_on_one_core_is_readable_on_the_others() {
    let mut lan = three_discovered();
    lan.set(0, "colour", "blue");
    for h in 1..3 {
        assert_eq!(lan.value(h, "colour"), Some(&b"blue"[..]));
        let get = lan.get(h, "colour");
        let done = lan
            .completion(h, get)
            .expect("a local hit completes at once");
        assert_eq!(done.value.as_deref(), Some(&b"blue"[..]));
    }
}

#[test]
fn a_remote_get_is_answered_by_a_peer_and_cached() {
    let mut lan = three_discovered();
    lan.hosts[0].link_up = false;
    lan.set(0, "only-on-0", "x");
    lan.hosts[0].link_up = true;
    assert_eq!(lan.value(1, "only-on-0"), None);
    let get = lan.get(1, "only-on-0");
    let done = lan.completion(1, get).expect("answered without waiting");
    assert_eq!(done.value.as_deref(), Some(&b"x"[..]));
    assert_eq!(lan.value(1, "only-on-0"), Some(&b"x"[..]));
    assert_eq!(lan.hosts[1].node.stats().gets_answered, 1);
}

#[test]
fn a_remote_get_for_a_key_nobody_holds_times_out_empty() {
    let mut lan = three_discovered();
    let get = lan.get(2, "nowhere");
    assert!(lan.completion(2, get).is_none());
    lan.run_for(Duration::from_millis(100));
    assert_eq!(lan.completion(2, get).map(|d| d.value.clone()), Some(None));
}

#[test]
fn a_late_joiner_bootstraps_every_key() {
    let mut lan = three_discovered();
    for i in 0..500 {
        lan.set(i % 2, &format!("key-{i}"), &format!("value-{i}"));
    }
    lan.set(2, "empty", "");
    let late = lan.add();
    lan.run_for(Duration::from_secs(6));
    let node = &lan.hosts[late].node;
    assert_eq!(node.bootstrap().phase, BootstrapPhase::Done);
    for i in 0..500 {
        assert_eq!(
            lan.value(late, &format!("key-{i}")),
            Some(format!("value-{i}").as_bytes())
        );
    }
    assert_eq!(
        lan.value(late, "empty"),
        None,
        "empty values are never answered"
    );
    let s = node.stats();
    assert_eq!(s.bootstrap_keys_listed, 501);
    assert_eq!(s.bootstrap_keys_received, 500);
    assert_eq!(s.bootstrap_keys_unanswered, 1);
}

#[test]
fn a_node_whose_link_returns_catches_up_on_sets_it_missed() {
    let mut lan = three_discovered();
    lan.hosts[2].link_up = false;
    let down_at = lan.now;
    lan.hosts[2].node.handle_net_down(down_at);
    lan.set(0, "while-away", "1");
    lan.run_for(Duration::from_secs(5));
    assert_eq!(lan.peers(0).len(), 1, "the silent host went down");
    lan.hosts[2].link_up = true;
    let now = lan.now;
    lan.hosts[2].node.handle_net_up(now, ip(3));
    lan.run_for(Duration::from_secs(6));
    assert_eq!(lan.value(2, "while-away"), Some(&b"1"[..]));
    assert_eq!(lan.peers(0).len(), 2);
}

#[test]
fn list_answer_crossfire_among_three_nodes_harms_nobody() {
    let mut lan = three_discovered();
    lan.prototype_subscriptions = true;
    lan.set(0, "a", "1");
    lan.set(1, "b", "2");
    // Each list is answered by two nodes, and every list_answer reaches the third
    // node through the prototype's `list` subscription.
    everyone_bootstraps_at_once(&mut lan);
    lan.run_for(Duration::from_secs(6));
    for h in 0..3 {
        let node = &lan.hosts[h].node;
        assert_eq!(node.bootstrap().phase, BootstrapPhase::Done);
        assert_eq!(node.stats().drop_list_answer_not_ours, 2, "host {h}");
        assert_eq!(lan.value(h, "a"), Some(&b"1"[..]));
        assert_eq!(lan.value(h, "b"), Some(&b"2"[..]));
        assert_eq!(lan.peers(h).len(), 2, "host {h} keeps its peers");
    }
}

#[test]
fn a_stopped_node_is_seen_down_by_the_others() {
    let mut lan = three_discovered();
    let now = lan.now;
    lan.hosts[1].node.shutdown(now);
    lan.flush();
    assert!(
        lan.hosts[1].connected.is_empty(),
        "shutdown disconnects everything"
    );
    lan.run_for(Duration::from_secs(5));
    assert_eq!(lan.peers(0), vec![lan.hosts[2].addr()]);
    assert_eq!(lan.peers(2), vec![lan.hosts[0].addr()]);
}

#[test]
fn dkv_subscriptions_keep_other_nodes_list_answers_off_the_wire() {
    let mut lan = three_discovered();
    lan.set(0, "a", "1");
    everyone_bootstraps_at_once(&mut lan);
    lan.run_for(Duration::from_secs(6));
    for h in 0..3 {
        let stats = lan.hosts[h].node.stats();
        assert_eq!(stats.drop_list_answer_not_ours, 0, "host {h}");
        assert_eq!(
            stats.in_list_answer, 2,
            "host {h} hears its own two answers"
        );
        assert_eq!(lan.value(h, "a"), Some(&b"1"[..]));
    }
}
