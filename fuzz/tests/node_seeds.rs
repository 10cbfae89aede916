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

#[test]
fn delete_seeds_complete_gets_and_hide_the_key_from_prototypes() {
    let s = stats_of("delete-then-get-completes-deleted");
    assert_eq!((s.deletes, s.gets_hit), (1, 1));
    let s = stats_of("deleted-key-neither-listed-nor-answered");
    assert_eq!((s.in_list, s.out_list_answer), (1, 1));
    assert_eq!((s.in_question, s.out_answer), (1, 0));
}

#[test]
fn tombstone_seeds_collect_the_tombstone_after_the_horizon() {
    assert_eq!(
        stats_of("short-horizon-collects-tombstone").tombstones_collected,
        1
    );
    assert_eq!(
        stats_of("wall-clock-forward-then-collect").tombstones_collected,
        1
    );
}

#[test]
fn hello_seeds_identify_a_dkv_peer_and_reconcile_with_it() {
    let s = stats_of("hello-identifies-and-syncs");
    assert_eq!((s.hellos_in, s.peers_up), (1, 1));
    assert!(s.sync_sessions_started >= 1);
    assert_eq!(stats_of("hello-own-id-ignored").beacons_own, 1);
    assert_eq!(
        stats_of("legacy-question-from-dkv-dropped").drop_legacy_from_dkv,
        1
    );
}

#[test]
fn put_seeds_apply_refuse_and_ignore_as_the_model_says() {
    let s = stats_of("put-clock-edges");
    // Refused: past the edge, an hour ahead, the largest timestamp. Applied: the
    // edge (by peer two), the full edge, the unversioned entry, the same edge by
    // peer-one (a higher id: '-' > ' ') and the tie (the same version, a higher value).
    assert_eq!(s.drop_clock_ahead, 3);
    assert_eq!(s.entries_applied, 5);
    let s = stats_of("put-echo-then-set-copy-ignored");
    assert_eq!((s.echoes_ignored, s.in_set), (2, 3));
    assert_eq!(stats_of("put-not-ours-ignored").drop_not_ours, 2);
}

#[test]
fn request_seeds_are_answered_with_pushes() {
    assert_eq!(stats_of("ask-answered-with-push").out_push, 1);
    assert_eq!(stats_of("pull-answered-in-pages").out_push, 2);
    assert_eq!(stats_of("fetch-answered").out_push, 1);
    assert_eq!(stats_of("get-answered-by-push").gets_answered, 1);
}

#[test]
fn sync_seeds_reach_pulls_fetches_and_completed_sessions() {
    let s = stats_of("sync-session-round-trip");
    assert!(s.sync_fetches >= 1 && s.sync_pushes >= 1, "{s:?}");
    assert!(s.sync_sessions_completed >= 1, "{s:?}");
    let s = stats_of("sync-pull-of-empty-store");
    assert_eq!(s.sync_ranges_pulled, 1);
    assert_eq!(s.sync_pull_pages, 1);
    assert!(s.out_pull >= 8, "{s:?}");
    let s = stats_of("sync-responder-splits-and-lists");
    assert_eq!(s.sync_steps_compared, 3);
}

#[test]
fn writes_seeds_publish_puts_with_set_copies_for_prototype_peers() {
    let s = stats_of("writes-echoed-to-prototype-peer");
    assert_eq!(s.out_set, 2);
    let s = stats_of("writes-batched");
    assert_eq!((s.sets, s.deletes), (2, 1));
}

#[test]
fn genuine_seal_seeds_are_taken_and_flipped_ones_refused() {
    // The seal target asserts what a keyed node does with each; here, that the
    // genuine seeds reach the "taken" path at all (so the target checks it).
    use dkv_fuzz::seeds::all;
    let seeds: Vec<_> = all().into_iter().filter(|s| s.target == "seal").collect();
    assert!(seeds.iter().any(|s| s.name == "node-frame-0-genuine"));
    assert!(seeds.iter().any(|s| s.name == "node-hello-0-flipped"));
    for s in &seeds {
        dkv_fuzz::seal(&s.data);
    }
}
