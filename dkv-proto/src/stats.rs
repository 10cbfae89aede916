//! Operator counters: traffic by kind, drops by reason, peers, gets, writes,
//! bootstrap and reconciliation.

use crate::beacon::BeaconError;
use crate::seal::Refusal;
use crate::wire::{DecodeError, Kind};

macro_rules! counters {
    ($( $(#[doc = $doc:literal])+ $name:ident, )*) => {
        /// Monotonic counters since the node was created. Every field only grows.
        #[derive(Clone, Debug, Default, PartialEq, Eq)]
        pub struct Stats {
            $( $(#[doc = $doc])+ pub $name: u64, )*
        }

        impl Stats {
            /// Every counter as `(name, value)`, in declaration order.
            pub fn iter(&self) -> impl Iterator<Item = (&'static str, u64)> {
                [$( (stringify!($name), self.$name), )*].into_iter()
            }

            /// Adds every counter of `other` to this one.
            pub fn add(&mut self, other: &Stats) {
                $( self.$name += other.$name; )*
            }

            /// Every counter set to a different scrambled value below 2^48:
            /// sums of different sets of them differ, and never overflow.
            #[cfg(test)]
            fn numbered() -> Stats {
                let mut next = 1u64;
                let mut value = || {
                    next = next.wrapping_mul(10) ^ 0x9E37_79B9;
                    next >> 16
                };
                Stats { $( $name: value(), )* }
            }

            /// Every input dropped or refused, whatever the reason: the sum of the
            /// `drop_` counters, which are picked when the crate is compiled (the
            /// simulator reads it around every input of a keyed node).
            pub fn dropped(&self) -> u64 {
                let mut sum = 0;
                $( if const { is_drop(stringify!($name)) } { sum += self.$name; } )*
                sum
            }
        }
    };
}

/// Whether a counter's name says it counts dropped input (`drop_…`).
const fn is_drop(name: &str) -> bool {
    let (name, prefix) = (name.as_bytes(), b"drop_");
    if name.len() < prefix.len() {
        return false;
    }
    let mut i = 0;
    while i < prefix.len() {
        if name[i] != prefix[i] {
            return false;
        }
        i += 1;
    }
    true
}

counters! {
    /// Prototype `set` messages received and accepted.
    in_set,
    /// Prototype `question` messages received and accepted.
    in_question,
    /// Prototype `answer` messages received and accepted.
    in_answer,
    /// Prototype `list` messages received and accepted.
    in_list,
    /// Prototype `list_answer` messages received and accepted.
    in_list_answer,
    /// dkv/2 `put` messages received and accepted.
    in_put,
    /// dkv/2 `ask` messages received and accepted.
    in_ask,
    /// dkv/2 `sync` messages received and accepted.
    in_sync,
    /// dkv/2 `pull` messages received and accepted.
    in_pull,
    /// dkv/2 `fetch` messages received and accepted.
    in_fetch,
    /// dkv/2 `push` messages received and accepted.
    in_push,
    /// Prototype `set` messages published.
    out_set,
    /// Prototype `question` messages published.
    out_question,
    /// Prototype `answer` messages published.
    out_answer,
    /// Prototype `list` messages published.
    out_list,
    /// Prototype `list_answer` messages published.
    out_list_answer,
    /// dkv/2 `put` messages published.
    out_put,
    /// dkv/2 `ask` messages published.
    out_ask,
    /// dkv/2 `sync` messages published.
    out_sync,
    /// dkv/2 `pull` messages published.
    out_pull,
    /// dkv/2 `fetch` messages published.
    out_fetch,
    /// dkv/2 `push` messages published.
    out_push,
    /// Beacons emitted.
    beacons_out,
    /// Hellos emitted.
    hellos_out,
    /// Beacons received from peers (own beacons excluded).
    beacons_in,
    /// Hellos received from peers (own hellos excluded).
    hellos_in,
    /// Own beacons and hellos heard back and ignored.
    beacons_own,
    /// Dropped: a message with no frames.
    drop_empty,
    /// Dropped: unknown topic.
    drop_unknown_topic,
    /// Dropped: topic id missing or not 8 bytes.
    drop_bad_id,
    /// Dropped: wrong frame count for the topic.
    drop_frame_count,
    /// Dropped: a key that is not UTF-8.
    drop_key_not_utf8,
    /// Dropped: a dkv/2 body of an unknown wire version.
    drop_unknown_version,
    /// Dropped: a malformed dkv/2 body.
    drop_bad_body,
    /// Dropped: a prototype `answer` addressed to another node.
    drop_answer_not_ours,
    /// Dropped: a `list_answer` addressed to another node (the prototype dies on it).
    drop_list_answer_not_ours,
    /// Dropped: a dkv/2 message addressed to another node, or claiming this node's id.
    drop_not_ours,
    /// Dropped: a prototype `question` or `list` from a dkv node (it reconciles instead).
    drop_legacy_from_dkv,
    /// Dropped: a prototype `list` while several prototype peers are beaconing (an
    /// answer would kill the others' workers).
    drop_list_many_prototypes,
    /// Dropped: a datagram that is neither a beacon nor a hello.
    drop_not_beacon,
    /// Dropped: a beacon whose port is not a canonical number in 1..=65535.
    drop_beacon_bad_port,
    /// Dropped: a malformed hello.
    drop_bad_hello,
    /// Dropped: a beacon or hello heard while the net is down (no local address).
    drop_beacon_net_down,
    /// Dropped by a keyed node: a prototype beacon, or a hello not sealed.
    drop_hello_unauthenticated,
    /// Dropped: a hello of another cluster (by an open node: any version-2 hello;
    /// by a named node: a prototype beacon, a version-1 hello, another tag, or a
    /// sealed hello when unkeyed).
    drop_hello_foreign_cluster,
    /// Dropped by a keyed node: a sealed hello under a key id it does not hold.
    drop_hello_unknown_key,
    /// Dropped by a keyed node: a sealed hello stamped outside the replay window,
    /// or before this run started (less the maximum clock offset).
    drop_hello_stale,
    /// Dropped by a keyed node: a sealed hello already accepted (or below the
    /// sender's replay window).
    drop_hello_replay,
    /// Dropped by a keyed node: a sealed hello from a new sender run while the
    /// replay guard remembers its maximum of runs.
    drop_hello_streams_full,
    /// Dropped by a keyed node: a sealed hello that does not authenticate.
    drop_hello_forged,
    /// Dropped: a version-2 hello announcing an address other than the datagram's
    /// source (a replay or spoof: it connects no one anywhere).
    drop_hello_spoofed,
    /// Refused: a received entry whose version is more than the maximum clock offset
    /// ahead of local wall time.
    drop_clock_ahead,
    /// Refused: a received entry for a new key while the store holds
    /// `Limits::max_store_keys` keys (updates and deletes of held keys pass).
    drop_store_full,
    /// Dropped: a received message whose frames sum to more than
    /// `Limits::max_message_bytes` (checked before decoding).
    drop_oversized,
    /// Dropped: a received message holding a key over `Limits::max_key_bytes`.
    drop_key_too_long,
    /// Dropped: a received message holding a value over `Limits::max_value_bytes`.
    drop_value_too_large,
    /// Dropped by a keyed node: a message not sealed (plain dkv/2, a prototype's,
    /// or handed over already decoded).
    drop_unauthenticated,
    /// Dropped: a message of another cluster (by a named node: a prototype
    /// message; by a keyed node: a sealed frame with another cluster's tag).
    drop_foreign_cluster,
    /// Dropped by a keyed node: a sealed frame under a key id it does not hold.
    drop_unknown_key,
    /// Dropped by a keyed node: a sealed frame stamped outside the replay window,
    /// or before this run started (less the maximum clock offset).
    drop_stale,
    /// Dropped by a keyed node: a sealed frame already accepted (or below the
    /// sender's replay window).
    drop_replay,
    /// Dropped by a keyed node: a sealed frame from a new sender run while the
    /// replay guard remembers its maximum of runs.
    drop_streams_full,
    /// Dropped by a keyed node: a sealed frame that does not authenticate (forged,
    /// corrupted, truncated, moved to another topic, sealed for another cluster
    /// name or with another key).
    drop_forged,
    /// Dropped by a keyed node: an authentic frame whose body names a sender other
    /// than its seal's.
    drop_seal_mismatch,
    /// Messages or hellos a keyed node could not seal (a nonce counter exhausted)
    /// and did not send.
    seal_failures,
    /// Refused: local sets and deletes over the key or value limit.
    writes_refused,
    /// Ignored: a beacon or hello from a new endpoint while `Limits::max_peers` peers
    /// are live.
    drop_peer_limit,
    /// Ignored: a beacon or hello from a new endpoint whose IP already has
    /// `Limits::max_peers_per_ip` live peers.
    drop_peer_ip_limit,
    /// Ignored: a beacon or hello from a new endpoint over the `Limits::new_peers` rate.
    drop_peer_rate,
    /// Unanswered: a prototype `question` over the answer rate (per asker or in all).
    drop_answer_rate,
    /// Unserved: a dkv/2 `ask`, `sync`, `pull` or `fetch` over the request rate (per
    /// asker or in all).
    drop_request_rate,
    /// Unanswered: a prototype `list` over the list answer rate (per asker or in all).
    drop_list_rate,
    /// Listed keys a prototype bootstrap did not fetch, over
    /// `Limits::bootstrap_max_keys`.
    bootstrap_keys_over_limit,
    /// Prototype bootstraps that gave up their remaining keys after
    /// `Limits::bootstrap_max_unanswered` questions went unanswered in a row.
    bootstrap_abandoned,
    /// Records of new keys refused from a dkv peer over its transfer budget
    /// (`Limits::peer_new_keys`, `Limits::peer_new_kib`); a later reconciliation
    /// brings them once the budget refills.
    sync_peer_over_budget,
    /// Prototype `set` copies of dkv/2 writes, recognised and ignored.
    echoes_ignored,
    /// Peers that came up.
    peers_up,
    /// Peers that went down.
    peers_down,
    /// Times the net came up (including address changes).
    net_up,
    /// Times the net went down.
    net_down,
    /// Gets served from the local store at once (a tombstone counts: deleted).
    gets_hit,
    /// Gets that missed locally and were completed by an entry arriving.
    gets_answered,
    /// Gets that reached their timeout.
    gets_timed_out,
    /// Local sets.
    sets,
    /// Local deletes.
    deletes,
    /// Received entries that won the merge and were stored.
    entries_applied,
    /// Received entries that lost the merge (already held, or older).
    entries_stale,
    /// Tombstones forgotten after the horizon.
    tombstones_collected,
    /// Bootstraps started.
    bootstraps_started,
    /// Bootstraps completed.
    bootstraps_done,
    /// Distinct keys learned from prototype list answers, over all bootstraps.
    bootstrap_keys_listed,
    /// Bootstrap questions published.
    bootstrap_keys_requested,
    /// Bootstrap questions answered.
    bootstrap_keys_received,
    /// Bootstrap questions given up after their timeout.
    bootstrap_keys_unanswered,
    /// Reconciliation sessions started.
    sync_sessions_started,
    /// Reconciliation sessions that ran to the end.
    sync_sessions_completed,
    /// Reconciliation sessions abandoned for lack of replies.
    sync_sessions_timed_out,
    /// Range steps compared.
    sync_steps_compared,
    /// Ranges this node found it lacked and pulled.
    sync_ranges_pulled,
    /// Pages received for pulls.
    sync_pull_pages,
    /// Pull requests abandoned for lack of a reply.
    sync_pulls_timed_out,
    /// Fetch requests sent.
    sync_fetches,
    /// Fetch requests abandoned for lack of a reply.
    sync_fetches_timed_out,
    /// Pushes of entries a reconciliation found the peer lacked.
    sync_pushes,
    /// Session replies for a session no longer running, ignored.
    sync_stale_replies,
    /// Subscriptions forgotten at the cap to make room for a newer one.
    sync_subscriptions_forgotten,
    /// Sessions this node had waiting with a peer, dropped because the peer's
    /// opening found both stores equal.
    sync_sessions_settled,
}

impl Stats {
    pub(crate) fn count_in(&mut self, kind: Kind) {
        *self.by_kind(kind).0 += 1;
    }

    pub(crate) fn count_out(&mut self, kind: Kind) {
        *self.by_kind(kind).1 += 1;
    }

    fn by_kind(&mut self, kind: Kind) -> (&mut u64, &mut u64) {
        match kind {
            Kind::Set => (&mut self.in_set, &mut self.out_set),
            Kind::Question => (&mut self.in_question, &mut self.out_question),
            Kind::Answer => (&mut self.in_answer, &mut self.out_answer),
            Kind::List => (&mut self.in_list, &mut self.out_list),
            Kind::ListAnswer => (&mut self.in_list_answer, &mut self.out_list_answer),
            Kind::Put => (&mut self.in_put, &mut self.out_put),
            Kind::Ask => (&mut self.in_ask, &mut self.out_ask),
            Kind::Sync => (&mut self.in_sync, &mut self.out_sync),
            Kind::Pull => (&mut self.in_pull, &mut self.out_pull),
            Kind::Fetch => (&mut self.in_fetch, &mut self.out_fetch),
            Kind::Push => (&mut self.in_push, &mut self.out_push),
        }
    }

    pub(crate) fn count_decode_error(&mut self, err: DecodeError) {
        *match err {
            DecodeError::Empty => &mut self.drop_empty,
            DecodeError::UnknownTopic => &mut self.drop_unknown_topic,
            DecodeError::BadId => &mut self.drop_bad_id,
            DecodeError::FrameCount => &mut self.drop_frame_count,
            DecodeError::KeyNotUtf8 => &mut self.drop_key_not_utf8,
            DecodeError::UnknownVersion => &mut self.drop_unknown_version,
            DecodeError::BadBody => &mut self.drop_bad_body,
            DecodeError::Oversized => &mut self.drop_oversized,
            DecodeError::KeyTooLong => &mut self.drop_key_too_long,
            DecodeError::ValueTooLarge => &mut self.drop_value_too_large,
        } += 1;
    }

    pub(crate) fn count_beacon_error(&mut self, err: BeaconError) {
        *match err {
            BeaconError::NotBeacon => &mut self.drop_not_beacon,
            BeaconError::BadPort => &mut self.drop_beacon_bad_port,
            BeaconError::BadHello => &mut self.drop_bad_hello,
        } += 1;
    }

    pub(crate) fn count_refusal(&mut self, why: Refusal, hello: bool) {
        *match (why, hello) {
            (Refusal::Stale | Refusal::Future | Refusal::BeforeStart, false) => {
                &mut self.drop_stale
            }
            (Refusal::Stale | Refusal::Future | Refusal::BeforeStart, true) => {
                &mut self.drop_hello_stale
            }
            (Refusal::Replay | Refusal::BelowWindow, false) => &mut self.drop_replay,
            (Refusal::Replay | Refusal::BelowWindow, true) => &mut self.drop_hello_replay,
            (Refusal::StreamsFull, false) => &mut self.drop_streams_full,
            (Refusal::StreamsFull, true) => &mut self.drop_hello_streams_full,
        } += 1;
    }

    /// Input a keyed node refused as unauthenticated or not authentic: unsealed
    /// messages and datagrams, unknown keys, forgeries, replays, stale stamps,
    /// spoofed hellos. What `stats` shows beside "keyed: refusing unauthenticated
    /// traffic".
    pub fn refused_unauthenticated(&self) -> u64 {
        [
            self.drop_unauthenticated,
            self.drop_unknown_key,
            self.drop_stale,
            self.drop_replay,
            self.drop_forged,
            self.drop_seal_mismatch,
            self.drop_hello_unauthenticated,
            self.drop_hello_unknown_key,
            self.drop_hello_stale,
            self.drop_hello_replay,
            self.drop_hello_forged,
            self.drop_hello_spoofed,
        ]
        .iter()
        .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dropped_sums_exactly_the_drop_counters() {
        let s = Stats::numbered();
        let by_name: u64 = s
            .iter()
            .filter(|(name, _)| name.starts_with("drop_"))
            .map(|(_, v)| v)
            .sum();
        assert!(s.iter().filter(|(n, _)| n.starts_with("drop_")).count() > 20);
        assert_eq!(s.dropped(), by_name);
    }
}
