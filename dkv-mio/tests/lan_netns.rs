//! A real LAN in network namespaces (harness/netns.rs): hosts on one bridge, each
//! running a real `dkv node` (or the Python prototype fixture) with the default
//! beacon address 255.255.255.255:5005. Checks set and get across hosts, a host whose
//! link is cut (seen down, then re-bootstraps what it missed), a host whose IP
//! changes (seen under its new address), partitions with every link up (the switch
//! split in two; one host deaf to broadcasts) healing to identical replicas, and
//! prototype compatibility on the LAN. Partition tests print their convergence
//! times as `FIGURE` lines.
//!
//! Needs root (skips with a visible message otherwise). Under CI (`CI=true`) as root,
//! a LAN that cannot be built is a failure, not a skip.

mod harness;

use harness::netns::{can_build_lans, lan_or_skip, Lan};
use harness::nodes::{Kind, Place, Timings};
use harness::proc::NodeProc;
use harness::scenario::{
    crossfire, interop, must_start, prototype_beside_dkv_nodes, set_until_seen, wait_converged,
    wait_get, wait_keys, wait_peers, wait_ready,
};
use harness::{dkv_or_skip, median, python_or_skip, report};
use std::time::{Duration, Instant};

/// Starts `dkv node` on every host of `lan`.
fn dkv_on_every_host(lan: &Lan, hosts: usize, t: Timings) -> Vec<NodeProc> {
    (0..hosts)
        .map(|i| must_start(Kind::Dkv, &format!("h{i}"), Place::Host(lan.host(i)), t))
        .collect()
}

/// Waits until node `i` lists exactly the other hosts' current IPs as peers.
fn wait_sees_others(nodes: &mut [NodeProc], lan: &Lan, i: usize, t: Timings) {
    let others: Vec<String> = (0..nodes.len())
        .filter(|&j| j != i)
        .map(|j| lan.host(j).ip.to_string())
        .collect();
    wait_peers(
        &mut nodes[i],
        "listed every other host",
        t.within(6),
        |peers| {
            let ips: Vec<&str> = peers
                .iter()
                .map(|p| p.rsplit_once(':').map_or(p.as_str(), |(ip, _)| ip))
                .collect();
            ips.len() == others.len() && others.iter().all(|o| ips.contains(&o.as_str()))
        },
    );
}

/// Waits until every node lists every other as a peer, and a set on each reaches
/// each other (so both directions of every subscription are connected).
fn wait_full_mesh(nodes: &mut [NodeProc], lan: &Lan, t: Timings) {
    for i in 0..nodes.len() {
        wait_sees_others(nodes, lan, i, t);
    }
    for i in 0..nodes.len() {
        for j in 0..nodes.len() {
            if i != j {
                let (from, to) = pair(nodes, i, j);
                set_until_seen(from, to, &format!("probe-{i}-{j}"), "1", t.within(6));
            }
        }
    }
}

fn pair(nodes: &mut [NodeProc], i: usize, j: usize) -> (&mut NodeProc, &mut NodeProc) {
    assert_ne!(i, j);
    if i < j {
        let (a, b) = nodes.split_at_mut(j);
        (&mut a[i], &mut b[0])
    } else {
        let (a, b) = nodes.split_at_mut(i);
        (&mut b[0], &mut a[j])
    }
}

fn has_ip(peers: &[String], ip: &str) -> bool {
    let prefix = format!("{ip}:");
    peers.iter().any(|p| p.starts_with(&prefix))
}

/// Sets, replication and remote gets across three hosts.
fn set_and_get_across_three_hosts(test: &str, t: Timings) {
    if !dkv_or_skip(test) {
        return;
    }
    let Some(lan) = lan_or_skip(test, 3) else {
        return;
    };
    let mut nodes = dkv_on_every_host(&lan, 3, t);
    wait_full_mesh(&mut nodes, &lan, t);

    for (i, node) in nodes.iter_mut().enumerate() {
        node.set(&format!("from-h{i}"), &format!("set on host {i}"));
    }
    let all: Vec<String> = (0..3).map(|i| format!("from-h{i}")).collect();
    for node in nodes.iter_mut() {
        wait_keys(node, &all, t.within(4));
    }
    for node in nodes.iter_mut() {
        for i in 0..3 {
            assert_eq!(
                node.get(&format!("from-h{i}"), 500).as_deref(),
                Some(format!("set on host {i}").as_str()),
                "{} reading from-h{i}",
                node.name()
            );
        }
    }
    // A key set before a host joined is fetched on its get (or its bootstrap).
    nodes[0].quit(std::time::Duration::from_secs(5));
    nodes[1].set("while-h0-was-gone", "late value");
    nodes[0] = must_start(Kind::Dkv, "h0-again", Place::Host(lan.host(0)), t);
    assert_eq!(
        wait_get(&mut nodes[0], "while-h0-was-gone", t.within(6)),
        "late value"
    );
}

#[test]
fn three_hosts_set_and_get_across_the_lan() {
    set_and_get_across_three_hosts("three_hosts_set_and_get_across_the_lan", Timings::fast());
}

#[test]
fn three_hosts_set_and_get_across_the_lan_with_default_timings() {
    set_and_get_across_three_hosts(
        "three_hosts_set_and_get_across_the_lan_with_default_timings",
        Timings::defaults(),
    );
}

/// On hosts where host `i` runs `kinds[i]`, cuts the last host's link: the others
/// see it go down, it loses its peers; keys set meanwhile reach it by bootstrap
/// after healing.
fn cut_and_heal(test: &str, kinds: &[Kind], t: Timings) {
    let hosts = kinds.len();
    let Some(lan) = lan_or_skip(test, hosts) else {
        return;
    };
    let cut = hosts - 1;
    let mut nodes: Vec<NodeProc> = kinds
        .iter()
        .enumerate()
        .map(|(i, kind)| must_start(*kind, &format!("h{i}"), Place::Host(lan.host(i)), t))
        .collect();
    wait_full_mesh(&mut nodes, &lan, t);
    nodes[cut].set("before-cut", "everyone has this");
    wait_keys(&mut nodes[0], &["before-cut".to_string()], t.within(4));

    lan.cut(cut).expect("cut the host's link");
    let gone = lan.host(cut).ip.to_string();
    for node in nodes[..cut].iter_mut() {
        wait_peers(node, "saw the cut host go down", t.down_within(), |p| {
            !has_ip(p, &gone)
        });
    }
    wait_peers(
        &mut nodes[cut],
        "lost its peers while cut off",
        t.down_within(),
        |p| p.is_empty(),
    );

    let away: Vec<String> = (0..20).map(|i| format!("while-away-{i}")).collect();
    for k in &away {
        nodes[0].set(k, &format!("{k} value"));
    }
    for node in nodes[1..cut].iter_mut() {
        wait_keys(node, &away, t.within(4));
    }
    assert!(
        !nodes[cut]
            .keys()
            .iter()
            .any(|k| k.starts_with("while-away-")),
        "the cut host received sets while cut off"
    );

    lan.heal(cut).expect("heal the host's link");
    wait_full_mesh(&mut nodes, &lan, t);
    // `keys` only reads the local store: the keys arrive by bootstrap, not by gets.
    // (The prototype fetches about ten keys a second.)
    wait_keys(
        &mut nodes[cut],
        &away,
        t.within(12) + std::time::Duration::from_secs(3),
    );
    assert_eq!(
        nodes[cut].get("while-away-13", 0).as_deref(),
        Some("while-away-13 value")
    );
}

#[test]
fn cut_host_is_seen_down_and_rebootstraps_keys_set_while_away() {
    let test = "cut_host_is_seen_down_and_rebootstraps_keys_set_while_away";
    if dkv_or_skip(test) {
        cut_and_heal(test, &[Kind::Dkv; 3], Timings::fast());
    }
}

/// The same with two prototype fixtures (two, because a third would die in the
/// list_answer crossfire when the healed host re-bootstraps): checks the harness's
/// cut and heal give the prototype its net down and net up.
#[test]
fn fixture_cut_prototype_host_rebootstraps_keys_set_while_away() {
    let test = "fixture_cut_prototype_host_rebootstraps_keys_set_while_away";
    if can_build_lans(test) && python_or_skip(test) {
        cut_and_heal(test, &[Kind::Prototype; 2], Timings::short());
    }
}

#[test]
fn cut_dkv_host_rebootstraps_from_a_prototype_peer() {
    let test = "cut_dkv_host_rebootstraps_from_a_prototype_peer";
    if can_build_lans(test) && dkv_or_skip(test) && python_or_skip(test) {
        cut_and_heal(test, &[Kind::Prototype, Kind::Dkv], Timings::fast());
    }
}

#[test]
fn cut_prototype_host_rebootstraps_from_a_dkv_peer() {
    let test = "cut_prototype_host_rebootstraps_from_a_dkv_peer";
    if can_build_lans(test) && dkv_or_skip(test) && python_or_skip(test) {
        cut_and_heal(test, &[Kind::Dkv, Kind::Prototype], Timings::fast());
    }
}

/// Unplugging a host at the switch (its bridge port down) leaves the host its address,
/// so it sees no net down, only silence. Both sides see each other go down and come
/// back; keys set meanwhile reach the unplugged host by reconciliation when its
/// peers come back (no get, no net up needed), and new sets replicate again.
#[test]
fn unplugged_host_is_seen_down_and_back_and_fetches_missed_keys_on_get() {
    let test = "unplugged_host_is_seen_down_and_back_and_fetches_missed_keys_on_get";
    if !dkv_or_skip(test) {
        return;
    }
    let t = Timings::fast();
    let Some(lan) = lan_or_skip(test, 3) else {
        return;
    };
    let mut nodes = dkv_on_every_host(&lan, 3, t);
    wait_full_mesh(&mut nodes, &lan, t);

    lan.unplug(2).expect("unplug host 2");
    let gone = lan.host(2).ip.to_string();
    for node in nodes[..2].iter_mut() {
        wait_peers(
            node,
            "saw the unplugged host go down",
            t.down_within(),
            |p| !has_ip(p, &gone),
        );
    }
    wait_peers(
        &mut nodes[2],
        "lost its peers while unplugged",
        t.down_within(),
        |p| p.is_empty(),
    );
    nodes[0].set("while-unplugged", "missed");

    lan.replug(2).expect("replug host 2");
    wait_full_mesh(&mut nodes, &lan, t);
    wait_keys(
        &mut nodes[2],
        &["while-unplugged".to_string()],
        t.within(12),
    );
    assert_eq!(
        nodes[2].get("while-unplugged", 0).as_deref(),
        Some("missed")
    );
    nodes[1].set("after-replug", "replicated");
    wait_keys(&mut nodes[2], &["after-replug".to_string()], t.within(6));
    nodes[2].set("from-replugged", "back");
    wait_keys(&mut nodes[0], &["from-replugged".to_string()], t.within(6));
}

/// Three dkv hosts in a full mesh, then host 1 renumbered: old address removed, new
/// one added (as a DHCP lease change would). Returns the nodes, the LAN, and host 1's
/// old and new addresses.
fn renumber_host_1(test: &str, t: Timings) -> Option<(Vec<NodeProc>, Lan, String, String)> {
    if !dkv_or_skip(test) {
        return None;
    }
    let mut lan = lan_or_skip(test, 3)?;
    let mut nodes = dkv_on_every_host(&lan, 3, t);
    wait_full_mesh(&mut nodes, &lan, t);
    let old = lan.host(1).ip.to_string();
    let new = lan.change_ip(1).expect("renumber host 1").to_string();
    Some((nodes, lan, old, new))
}

#[test]
fn host_with_new_ip_is_seen_under_new_address() {
    let t = Timings::fast();
    let Some((mut nodes, _lan, old, new)) =
        renumber_host_1("host_with_new_ip_is_seen_under_new_address", t)
    else {
        return;
    };
    for i in [0, 2] {
        wait_peers(
            &mut nodes[i],
            "saw host 1 under its new address only",
            t.down_within(),
            |p| has_ip(p, &new) && !has_ip(p, &old),
        );
    }
}

/// After renumbering, sets flow both ways between the moved host and every other:
/// its subscriptions made from the old address must be rebuilt from the new one.
#[test]
fn renumbered_host_exchanges_sets_with_every_peer() {
    let t = Timings::fast();
    let Some((mut nodes, _lan, _old, new)) =
        renumber_host_1("renumbered_host_exchanges_sets_with_every_peer", t)
    else {
        return;
    };
    for i in [0, 2] {
        wait_peers(
            &mut nodes[i],
            "saw host 1's new address",
            t.within(6),
            |p| has_ip(p, &new),
        );
    }
    for other in [0, 2] {
        let (from, to) = pair(&mut nodes, 1, other);
        set_until_seen(
            from,
            to,
            &format!("from-new-address-to-{other}"),
            "moved",
            t.within(6),
        );
        let (from, to) = pair(&mut nodes, other, 1);
        set_until_seen(
            from,
            to,
            &format!("to-new-address-from-{other}"),
            "hi",
            t.within(6),
        );
    }
}

/// A dkv host renumbered beside a prototype peer: the prototype sees it under the new
/// address only, and sets flow both ways again.
#[test]
fn renumbered_dkv_host_keeps_exchanging_with_a_prototype_peer() {
    let test = "renumbered_dkv_host_keeps_exchanging_with_a_prototype_peer";
    if !can_build_lans(test) || !dkv_or_skip(test) || !python_or_skip(test) {
        return;
    }
    let t = Timings::fast();
    let Some(mut lan) = lan_or_skip(test, 2) else {
        return;
    };
    let mut nodes = vec![
        must_start(Kind::Prototype, "prototype", Place::Host(lan.host(0)), t),
        must_start(Kind::Dkv, "dkv", Place::Host(lan.host(1)), t),
    ];
    wait_full_mesh(&mut nodes, &lan, t);
    let old = lan.host(1).ip.to_string();
    let new = lan.change_ip(1).expect("renumber the dkv host").to_string();
    wait_peers(
        &mut nodes[0],
        "saw dkv under its new address only",
        t.down_within(),
        |p| has_ip(p, &new) && !has_ip(p, &old),
    );
    let (from, to) = pair(&mut nodes, 1, 0);
    set_until_seen(from, to, "from-moved-dkv", "moved", t.within(6));
    let (from, to) = pair(&mut nodes, 0, 1);
    set_until_seen(from, to, "to-moved-dkv", "hi", t.within(6));
}

#[test]
fn prototype_and_dkv_interoperate_on_a_namespace_lan() {
    let test = "prototype_and_dkv_interoperate_on_a_namespace_lan";
    if !can_build_lans(test) || !dkv_or_skip(test) || !python_or_skip(test) {
        return;
    }
    let Some(lan) = lan_or_skip(test, 2) else {
        return;
    };
    let (h0, h1) = (lan.host(0), lan.host(1));
    let (ip0, ip1) = (h0.ip.to_string(), h1.ip.to_string());
    // Defaults on both sides: what a deployed prototype and a stock dkv node run.
    interop(
        Kind::Prototype,
        Kind::Dkv,
        Place::Host(h0),
        Place::Host(h1),
        Some(&ip0),
        Some(&ip1),
        Timings::defaults(),
    );
}

#[test]
fn fixture_prototypes_interoperate_on_a_namespace_lan() {
    let test = "fixture_prototypes_interoperate_on_a_namespace_lan";
    if !can_build_lans(test) || !python_or_skip(test) {
        return;
    }
    let Some(lan) = lan_or_skip(test, 2) else {
        return;
    };
    let (h0, h1) = (lan.host(0), lan.host(1));
    let (ip0, ip1) = (h0.ip.to_string(), h1.ip.to_string());
    interop(
        Kind::Prototype,
        Kind::Prototype,
        Place::Host(h0),
        Place::Host(h1),
        Some(&ip0),
        Some(&ip1),
        Timings::short(),
    );
}

#[test]
fn a_dkv_node_beside_two_prototypes_kills_neither_on_a_namespace_lan() {
    let test = "a_dkv_node_beside_two_prototypes_kills_neither_on_a_namespace_lan";
    if !can_build_lans(test) || !dkv_or_skip(test) || !python_or_skip(test) {
        return;
    }
    let t = Timings::fast();
    let Some(lan) = lan_or_skip(test, 3) else {
        return;
    };
    let places = [0, 1, 2].map(|i| Place::Host(lan.host(i)));
    let (_p1, mut dkv, mut p2) = crossfire(Kind::Dkv, places, t);
    wait_keys(
        &mut p2,
        &["warm-s".to_string(), "warm-p1".to_string()],
        t.within(10),
    );
    dkv.set("after-crossfire", "still here");
    wait_keys(&mut p2, &["after-crossfire".to_string()], t.within(4));
    assert!(dkv.is_running(), "dkv exited after the crossfire");
}

#[test]
fn one_prototype_survives_and_interoperates_beside_three_dkv_nodes_on_a_namespace_lan() {
    let test = "one_prototype_survives_and_interoperates_beside_three_dkv_nodes_on_a_namespace_lan";
    if !can_build_lans(test) || !dkv_or_skip(test) || !python_or_skip(test) {
        return;
    }
    let Some(lan) = lan_or_skip(test, 4) else {
        return;
    };
    let places = [0, 1, 2, 3].map(|i| Place::Host(lan.host(i)));
    prototype_beside_dkv_nodes(places, Timings::fast());
}

/// Three dkv hosts, every node seeing the other two as peers and ready (a write
/// reaches them).
fn ready_mesh_of_three(test: &str, t: Timings) -> Option<(Lan, Vec<NodeProc>)> {
    if !dkv_or_skip(test) {
        return None;
    }
    let lan = lan_or_skip(test, 3)?;
    let mut nodes = dkv_on_every_host(&lan, 3, t);
    for i in 0..3 {
        wait_sees_others(&mut nodes, &lan, i, t);
    }
    for node in nodes.iter_mut() {
        wait_ready(node, 2, t.within(8));
    }
    Some((lan, nodes))
}

/// Waits until every node in `left` lists no host of `right` as a peer and the
/// other way round.
fn wait_sides_apart(
    nodes: &mut [NodeProc],
    lan: &Lan,
    left: &[usize],
    right: &[usize],
    t: Timings,
) {
    for (mine, theirs) in [(left, right), (right, left)] {
        let gone: Vec<String> = theirs.iter().map(|&j| lan.host(j).ip.to_string()).collect();
        for &i in mine {
            wait_peers(
                &mut nodes[i],
                "saw the other side go down",
                t.down_within(),
                |peers| gone.iter().all(|ip| !has_ip(peers, ip)),
            );
        }
    }
}

/// Asserts every node holds `key = value` (`None`: no value) locally.
fn assert_everywhere(nodes: &mut [NodeProc], key: &str, value: Option<&str>) {
    for node in nodes.iter_mut() {
        assert_eq!(
            node.get(key, 0).as_deref(),
            value,
            "{} reading {key}",
            node.name()
        );
    }
}

/// The issue's "done when": the switch split in two with every link up, {h0, h1} |
/// {h2}, long enough for each side to see the other go down; on both sides the same
/// key is written (h2 writes later), a side-only key is written, and h2 deletes a key
/// all three held. After the switch is joined, all three converge to one fingerprint;
/// the later write wins everywhere, the delete holds everywhere, and every side-only
/// key is everywhere.
#[test]
fn a_split_switch_heals_to_identical_replicas_where_the_later_write_wins() {
    let test = "a_split_switch_heals_to_identical_replicas_where_the_later_write_wins";
    let t = Timings::fast();
    let Some((mut lan, mut nodes)) = ready_mesh_of_three(test, t) else {
        return;
    };
    nodes[0].set("before-split", "held by all");
    nodes[0].set("doomed", "held by all, deleted on h2 while apart");
    let before = ["before-split".to_string(), "doomed".to_string()];
    for node in nodes.iter_mut() {
        wait_keys(node, &before, t.within(4));
    }

    lan.split(&[&[0, 1], &[2]]).expect("split the switch");
    let split_at = Instant::now();
    wait_sides_apart(&mut nodes, &lan, &[0, 1], &[2], t);
    report(&format!(
        "{test}: both sides saw the other go down {:?} after the split",
        split_at.elapsed()
    ));
    nodes[0].set("contested", "left, earlier");
    // Later by wall clock (all hosts share this machine's clock).
    std::thread::sleep(Duration::from_millis(50));
    nodes[2].set("contested", "right, later");
    nodes[1].set("left-only", "set on h1 while apart");
    nodes[2].set("right-only", "set on h2 while apart");
    nodes[2].del("doomed");
    // Each side works on its own, and hears nothing from the other.
    wait_keys(&mut nodes[0], &["left-only".to_string()], t.within(4));
    wait_keys(&mut nodes[1], &["contested".to_string()], t.within(4));
    assert_eq!(
        nodes[1].get("contested", 0).as_deref(),
        Some("left, earlier")
    );
    assert_eq!(nodes[0].get("right-only", 0), None);
    assert_eq!(nodes[2].get("left-only", 0), None);
    assert_eq!(
        nodes[1].get("doomed", 0).as_deref(),
        Some("held by all, deleted on h2 while apart")
    );

    lan.join().expect("join the switch");
    let took = wait_converged(&mut nodes, t.within(30));
    report(&format!(
        "{test}: join -> identical fingerprints in {took:?}"
    ));
    assert_everywhere(&mut nodes, "contested", Some("right, later"));
    assert_everywhere(&mut nodes, "doomed", None);
    assert_everywhere(&mut nodes, "left-only", Some("set on h1 while apart"));
    assert_everywhere(&mut nodes, "right-only", Some("set on h2 while apart"));
    assert_everywhere(&mut nodes, "before-split", Some("held by all"));
}

/// A split shorter than the peer timeout: nobody goes down, the writes made on each
/// side meanwhile still reach the other (TCP retransmits or reconciliation), and all
/// three converge with the later write of a contested key winning.
#[test]
fn a_split_shorter_than_the_peer_timeout_heals_to_identical_replicas() {
    let test = "a_split_shorter_than_the_peer_timeout_heals_to_identical_replicas";
    let t = Timings::fast();
    let Some((mut lan, mut nodes)) = ready_mesh_of_three(test, t) else {
        return;
    };
    lan.split(&[&[0, 1], &[2]]).expect("split the switch");
    let split_at = Instant::now();
    nodes[0].set("brief", "left, earlier");
    std::thread::sleep(Duration::from_millis(50));
    nodes[2].set("brief", "right, later");
    nodes[0].set("brief-left", "l");
    nodes[2].set("brief-right", "r");
    std::thread::sleep((t.peer_timeout / 4).saturating_sub(split_at.elapsed()));
    lan.join().expect("join the switch");
    let apart = split_at.elapsed();
    let took = wait_converged(&mut nodes, t.within(30));
    report(&format!(
        "{test}: apart {apart:?} (peer timeout {:?}); join -> identical fingerprints in {took:?}",
        t.peer_timeout
    ));
    assert_everywhere(&mut nodes, "brief", Some("right, later"));
    assert_everywhere(&mut nodes, "brief-left", Some("l"));
    assert_everywhere(&mut nodes, "brief-right", Some("r"));
}

/// A one-way partition of discovery: h2 stops hearing broadcasts, so its peers go
/// down for it and it unsubscribes from them, while h0 and h1 still hear it and stay
/// subscribed. Writes of h2 still reach them; theirs no longer reach h2. Once h2
/// hears again, all three converge.
#[test]
fn a_host_deaf_to_broadcasts_misses_writes_one_way_and_converges_when_it_hears_again() {
    let test = "a_host_deaf_to_broadcasts_misses_writes_one_way_and_converges_when_it_hears_again";
    let t = Timings::fast();
    let Some((lan, mut nodes)) = ready_mesh_of_three(test, t) else {
        return;
    };
    lan.deafen(2).expect("deafen host 2");
    wait_peers(
        &mut nodes[2],
        "lost its peers while deaf",
        t.down_within(),
        |p| p.is_empty(),
    );
    let h2 = lan.host(2).ip.to_string();
    for node in nodes[..2].iter_mut() {
        assert!(
            has_ip(&node.peers(), &h2),
            "{} lost the deaf host",
            node.name()
        );
    }
    nodes[0].set("said-to-deaf", "from h0");
    nodes[2].set("said-by-deaf", "from h2");
    wait_keys(&mut nodes[0], &["said-by-deaf".to_string()], t.within(4));
    wait_keys(&mut nodes[1], &["said-to-deaf".to_string()], t.within(4));
    std::thread::sleep(t.beacon_interval * 2);
    assert_eq!(
        nodes[2].get("said-to-deaf", 0),
        None,
        "h2 heard h0 while deaf"
    );

    lan.undeafen(2).expect("undeafen host 2");
    let took = wait_converged(&mut nodes, t.within(30));
    report(&format!(
        "{test}: hearing again -> identical fingerprints in {took:?}"
    ));
    assert_everywhere(&mut nodes, "said-to-deaf", Some("from h0"));
    assert_everywhere(&mut nodes, "said-by-deaf", Some("from h2"));
}

/// The figure "after a partition heals, a 3-node cluster holding 10,000 keys is
/// identical everywhere within 2 s": 10,000 keys piped into h0 as `set` lines and
/// replicated; then three rounds of a split {h0, h1} | {h2} with a few hundred
/// differences made on each side (new keys, overwrites, deletes, a contested key).
/// Prints the time from join to identical fingerprints per round and the median;
/// asserts only a generous bound. `DKV_FIGURE_DEFAULT_TIMINGS=1` runs it with the
/// prototype's timings (1 s beacons, 4 s peer timeout) instead of the fast ones.
#[test]
fn ten_thousand_keys_are_identical_everywhere_soon_after_a_partition_heals() {
    let test = "ten_thousand_keys_are_identical_everywhere_soon_after_a_partition_heals";
    const KEYS: usize = 10_000;
    let t = if std::env::var_os("DKV_FIGURE_DEFAULT_TIMINGS").is_some() {
        Timings::defaults()
    } else {
        Timings::fast()
    };
    let Some((mut lan, mut nodes)) = ready_mesh_of_three(test, t) else {
        return;
    };
    let value = |i: usize, round: &str| format!("{round} value {i:05} {}", "x".repeat(80));
    let lines: Vec<String> = (0..KEYS)
        .map(|i| format!("set bulk-{i:05} {}", value(i, "loaded")))
        .collect();
    let loaded_at = Instant::now();
    let replies = nodes[0].pipeline(&lines);
    assert!(replies.iter().all(|r| r == "OK"), "a set failed");
    let took = wait_converged(&mut nodes, Duration::from_secs(60));
    let count = nodes[0].fingerprint();
    assert!(count.ends_with(&format!("-{KEYS}")), "{count}");
    report(&format!(
        "{test}: {KEYS} keys piped into h0 and identical on all three {:?} after the first set \
         ({took:?} after the last reply)",
        loaded_at.elapsed()
    ));

    let mut rounds = Vec::new();
    for round in 0..3 {
        lan.split(&[&[0, 1], &[2]]).expect("split the switch");
        wait_sides_apart(&mut nodes, &lan, &[0, 1], &[2], t);
        let tag = format!("round{round}");
        let at = |i: usize| format!("bulk-{:05}", (round * 997 + i * 13) % KEYS);
        let mut left = Vec::new();
        let mut right = Vec::new();
        for i in 0..100 {
            left.push(format!("set new-{tag}-left-{i:03} {}", value(i, &tag)));
            left.push(format!(
                "set {} {}",
                at(i),
                value(i, &format!("{tag} left"))
            ));
            right.push(format!("set new-{tag}-right-{i:03} {}", value(i, &tag)));
            right.push(format!("del {}", at(i + 100)));
        }
        right.push(format!(
            "set {} {}",
            at(0),
            value(0, &format!("{tag} right"))
        ));
        assert!(nodes[1].pipeline(&left).iter().all(|r| r == "OK"));
        std::thread::sleep(Duration::from_millis(50));
        assert!(nodes[2].pipeline(&right).iter().all(|r| r == "OK"));
        lan.join().expect("join the switch");
        let took = wait_converged(&mut nodes, Duration::from_secs(60));
        report(&format!(
            "{test}: round {round}: {} differences on the left, {} on the right; join -> \
             identical fingerprints in {took:?}",
            left.len(),
            right.len()
        ));
        rounds.push(took);
        // The right side's write of the contested key came later: it wins.
        assert_everywhere(&mut nodes, &at(0), Some(&value(0, &format!("{tag} right"))));
        assert_everywhere(&mut nodes, &at(150), None);
        assert_everywhere(
            &mut nodes,
            &format!("new-{tag}-left-042"),
            Some(&value(42, &tag)),
        );
        assert_everywhere(
            &mut nodes,
            &format!("new-{tag}-right-042"),
            Some(&value(42, &tag)),
        );
    }
    report(&format!(
        "{test}: median join -> identical of 3 rounds: {:?} (timings: beacons every {:?}, \
         peer timeout {:?})",
        median(&rounds),
        t.beacon_interval,
        t.peer_timeout
    ));
}
