//! The four targets; each module owns one target and the invariants it checks.
//! This module owns what they share: which counters say what, and [`model`], the
//! reference the store and clock are checked against.

pub mod beacon;
pub mod decode;
pub mod model;
pub mod node;
pub mod seal;

use dkv_proto::wire::Body;
use dkv_proto::{Message, NodeId, Stats};

/// What a counter of [`Stats`] records, as far as the targets' checks go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counter {
    /// The fate of one received message: exactly one of these moves, by one, for
    /// every `handle_message` (`in_<kind>` or the drop counter of its reason).
    MessageVerdict,
    /// The fate of one received datagram: exactly one moves, by one, for every
    /// `handle_beacon`.
    DatagramVerdict,
    /// The fate of one received entry (or prototype `set`): predicted by the model.
    Entry,
    /// Traffic the node sends and the reconciliation it runs: free to move in reply.
    Traffic,
    /// Peers and the net.
    Peers,
    /// Gets.
    Gets,
    /// Local writes and tombstone collection.
    Writes,
    /// Bootstrap.
    Bootstrap,
}

/// The category of the counter `name`. Panics on a counter it does not know, so a
/// counter added to `dkv-proto` fails the targets until it is classified here
/// (instead of silently escaping the "exactly one counter" checks).
pub fn counter(name: &str) -> Counter {
    const MESSAGE_DROPS: [&str; 23] = [
        "drop_empty",
        "drop_unknown_topic",
        "drop_bad_id",
        "drop_frame_count",
        "drop_key_not_utf8",
        "drop_unknown_version",
        "drop_bad_body",
        "drop_answer_not_ours",
        "drop_list_answer_not_ours",
        "drop_not_ours",
        "drop_legacy_from_dkv",
        "drop_list_many_prototypes",
        "drop_oversized",
        "drop_key_too_long",
        "drop_value_too_large",
        "drop_unauthenticated",
        "drop_foreign_cluster",
        "drop_unknown_key",
        "drop_stale",
        "drop_replay",
        "drop_streams_full",
        "drop_forged",
        "drop_seal_mismatch",
    ];
    const DATAGRAM: [&str; 15] = [
        "beacons_in",
        "hellos_in",
        "beacons_own",
        "drop_not_beacon",
        "drop_beacon_bad_port",
        "drop_bad_hello",
        "drop_beacon_net_down",
        "drop_hello_unauthenticated",
        "drop_hello_foreign_cluster",
        "drop_hello_unknown_key",
        "drop_hello_stale",
        "drop_hello_replay",
        "drop_hello_streams_full",
        "drop_hello_forged",
        "drop_hello_spoofed",
    ];
    const ENTRY: [&str; 5] = [
        "entries_applied",
        "entries_stale",
        "drop_clock_ahead",
        "echoes_ignored",
        "drop_store_full",
    ];
    // A beacon over a peer limit is still counted in `beacons_in`/`hellos_in`.
    const PEERS: [&str; 7] = [
        "peers_up",
        "peers_down",
        "net_up",
        "net_down",
        "drop_peer_limit",
        "drop_peer_ip_limit",
        "drop_peer_rate",
    ];
    const GETS: [&str; 3] = ["gets_hit", "gets_answered", "gets_timed_out"];
    const WRITES: [&str; 4] = ["sets", "deletes", "tombstones_collected", "writes_refused"];
    match name {
        n if n.starts_with("in_") || MESSAGE_DROPS.contains(&n) => Counter::MessageVerdict,
        n if DATAGRAM.contains(&n) => Counter::DatagramVerdict,
        n if ENTRY.contains(&n) => Counter::Entry,
        n if n.starts_with("out_") || n.starts_with("sync_") => Counter::Traffic,
        // A question, list or ask over its rate is still counted in `in_<kind>`.
        "beacons_out" | "hellos_out" | "seal_failures" | "drop_answer_rate" | "drop_list_rate"
        | "drop_request_rate" => Counter::Traffic,
        n if PEERS.contains(&n) => Counter::Peers,
        n if GETS.contains(&n) => Counter::Gets,
        n if WRITES.contains(&n) => Counter::Writes,
        n if n.starts_with("bootstrap") => Counter::Bootstrap,
        n => panic!("counter {n} is not classified in dkv-fuzz's targets::counter"),
    }
}

/// Asserts that no counter went down between two snapshots (`Stats` promises every
/// field only grows).
pub(crate) fn assert_stats_monotonic(before: &Stats, after: &Stats) {
    for ((name, old), (_, new)) in before.iter().zip(after.iter()) {
        assert!(new >= old, "stats counter {name} went down: {old} -> {new}");
    }
}

/// The counters that moved between two snapshots, with how much.
pub(crate) fn stats_delta(before: &Stats, after: &Stats) -> Vec<(&'static str, u64)> {
    before
        .iter()
        .zip(after.iter())
        .filter(|((_, old), (_, new))| new != old)
        .map(|((name, old), (_, new))| (name, new.saturating_sub(old)))
        .collect()
}

/// The counters of category `of` that moved, with how much.
pub(crate) fn moved(delta: &[(&'static str, u64)], of: Counter) -> Vec<(&'static str, u64)> {
    delta
        .iter()
        .copied()
        .filter(|(name, _)| counter(name) == of)
        .collect()
}

/// How much counter `name` moved (0 if it did not).
pub(crate) fn moved_by(delta: &[(&'static str, u64)], name: &str) -> u64 {
    delta
        .iter()
        .find(|(n, _)| *n == name)
        .map_or(0, |(_, d)| *d)
}

/// Asserts that a message a node with id `own` publishes decodes back to itself,
/// speaks for `own` (the asker of its questions and lists, the sender of its dkv/2
/// messages), never answers with an empty value, and addresses dkv/2 replies to one
/// other node (`put` and `ask` go to every node).
pub(crate) fn assert_publish_well_formed(own: NodeId, msg: &Message) {
    assert_eq!(
        Message::decode(&msg.encode()).as_ref(),
        Ok(msg),
        "malformed publish"
    );
    match msg {
        Message::Question { asker, .. } | Message::List { asker } => {
            assert_eq!(*asker, own, "asked on behalf of another id: {msg:?}")
        }
        Message::Answer { value, .. } => assert!(!value.is_empty(), "answered an empty value"),
        Message::Dkv(e) => {
            assert_eq!(e.from, own, "dkv/2 message from another id: {msg:?}");
            match e.body {
                Body::Put { .. } | Body::Ask { .. } => {
                    assert_eq!(e.to, None, "put or ask to one node: {msg:?}")
                }
                _ => assert!(
                    e.to.is_some_and(|to| to != own),
                    "reply not addressed to one other node: {msg:?}"
                ),
            }
        }
        Message::Set { .. } | Message::ListAnswer { .. } => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_counter_is_classified() {
        for (name, _) in Stats::default().iter() {
            counter(name);
        }
    }
}
