//! A real LAN in network namespaces (harness/netns.rs): hosts on one bridge, each
//! running a real `dkv node` (or the Python prototype fixture) with the default
//! beacon address 255.255.255.255:5005. Checks set and get across hosts, a host whose
//! link is cut (seen down, then re-bootstraps what it missed), a host whose IP
//! changes (seen under its new address), and prototype compatibility on the LAN.
//!
//! Needs root (skips with a visible message otherwise). Under CI (`CI=true`) as root,
//! a LAN that cannot be built is a failure, not a skip.

mod harness;

use harness::netns::{can_build_lans, lan_or_skip, Lan};
use harness::nodes::{Kind, Place, Timings};
use harness::proc::NodeProc;
use harness::scenario::{
    crossfire, interop, must_start, set_until_seen, wait_get, wait_keys, wait_peers,
};
use harness::{dkv_or_skip, python_or_skip};

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
/// back; the protocol bootstraps only on net up, so keys set meanwhile reach the
/// unplugged host through its gets (not by bootstrap), and new sets replicate again.
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
    assert_eq!(
        wait_get(&mut nodes[2], "while-unplugged", t.within(6)),
        "missed"
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
fn dkv_survives_the_list_answer_crossfire_on_a_namespace_lan() {
    let test = "dkv_survives_the_list_answer_crossfire_on_a_namespace_lan";
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
