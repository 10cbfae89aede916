//! The `node` seeds reach what their names say: each scenario is checked by the
//! target's invariants and, here, by the counters it must have moved.

use dkv_fuzz::seeds;
use dkv_proto::Stats;

fn stats_of(name: &str) -> Stats {
    let seed = seeds::all()
        .into_iter()
        .find(|s| s.target == "node" && s.name == name)
        .unwrap_or_else(|| panic!("no node seed {name}"));
    dkv_fuzz::node_run(&seed.data)
}

#[test]
fn peer_seed_brings_a_peer_up_and_lets_it_time_out() {
    let s = stats_of("peer-up-then-times-out");
    assert_eq!((s.peers_up, s.peers_down), (1, 1));
}

#[test]
fn own_beacon_seed_is_recognised_as_own() {
    let s = stats_of("own-beacon-ignored");
    assert_eq!((s.beacons_own, s.peers_up), (1, 0));
}

#[test]
fn get_seeds_complete_by_answer_and_by_timeout() {
    assert_eq!(stats_of("get-answered").gets_answered, 1);
    assert_eq!(stats_of("get-miss-times-out").gets_timed_out, 1);
    assert_eq!(stats_of("set-then-get-hits").gets_hit, 1);
}

#[test]
fn question_seeds_answer_only_non_empty_values() {
    assert_eq!(stats_of("question-answered").out_answer, 1);
    let empty = stats_of("question-empty-value-unanswered");
    assert_eq!((empty.in_question, empty.out_answer), (1, 0));
}

#[test]
fn bootstrap_seed_fetches_listed_keys_and_finishes() {
    let s = stats_of("bootstrap-fetches-listed-keys");
    // Listed: "a", "b", "k", "key"; answered: "a" and "b".
    assert_eq!(s.bootstrap_keys_listed, 4);
    assert_eq!(s.bootstrap_keys_received, 2);
    assert_eq!(s.bootstrap_keys_unanswered, 2);
    assert_eq!(s.bootstraps_done, 1);
}

#[test]
fn crossfire_seed_drops_a_list_answer_for_another_node() {
    assert_eq!(
        stats_of("list-answer-crossfire").drop_list_answer_not_ours,
        1
    );
}

#[test]
fn shutdown_seed_disconnects_every_peer() {
    let s = stats_of("shutdown-with-peers");
    assert_eq!((s.peers_up, s.peers_down), (2, 2));
}
