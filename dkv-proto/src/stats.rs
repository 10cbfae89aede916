//! Operator counters: traffic by kind, drops by reason, peers, gets and bootstrap.

use crate::beacon::BeaconError;
use crate::message::{DecodeError, Kind};

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
        }
    };
}

counters! {
    /// `set` messages received and accepted.
    in_set,
    /// `question` messages received and accepted.
    in_question,
    /// `answer` messages received and accepted.
    in_answer,
    /// `list` messages received and accepted.
    in_list,
    /// `list_answer` messages received and accepted.
    in_list_answer,
    /// `set` messages published.
    out_set,
    /// `question` messages published.
    out_question,
    /// `answer` messages published.
    out_answer,
    /// `list` messages published.
    out_list,
    /// `list_answer` messages published.
    out_list_answer,
    /// Beacons emitted.
    beacons_out,
    /// Beacons received from peers (own beacons excluded).
    beacons_in,
    /// Own beacons heard back and ignored.
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
    /// Dropped: an `answer` addressed to another node.
    drop_answer_not_ours,
    /// Dropped: a `list_answer` addressed to another node (the prototype dies on it).
    drop_list_answer_not_ours,
    /// Dropped: a datagram that is not a beacon.
    drop_not_beacon,
    /// Dropped: a beacon whose port is not a canonical number in 1..=65535.
    drop_beacon_bad_port,
    /// Dropped: a beacon heard while the net is down (no local address).
    drop_beacon_net_down,
    /// Peers that came up.
    peers_up,
    /// Peers that went down.
    peers_down,
    /// Times the net came up (including address changes).
    net_up,
    /// Times the net went down.
    net_down,
    /// Gets served from the local store at once.
    gets_hit,
    /// Gets that missed locally and were completed by a value arriving.
    gets_answered,
    /// Gets that reached their timeout.
    gets_timed_out,
    /// Local sets.
    sets,
    /// Bootstraps started.
    bootstraps_started,
    /// Bootstraps completed.
    bootstraps_done,
    /// Distinct keys learned from list answers, over all bootstraps.
    bootstrap_keys_listed,
    /// Bootstrap questions published.
    bootstrap_keys_requested,
    /// Bootstrap questions answered.
    bootstrap_keys_received,
    /// Bootstrap questions given up after their timeout.
    bootstrap_keys_unanswered,
}

impl Stats {
    pub(crate) fn count_in(&mut self, kind: Kind) {
        *match kind {
            Kind::Set => &mut self.in_set,
            Kind::Question => &mut self.in_question,
            Kind::Answer => &mut self.in_answer,
            Kind::List => &mut self.in_list,
            Kind::ListAnswer => &mut self.in_list_answer,
        } += 1;
    }

    pub(crate) fn count_out(&mut self, kind: Kind) {
        *match kind {
            Kind::Set => &mut self.out_set,
            Kind::Question => &mut self.out_question,
            Kind::Answer => &mut self.out_answer,
            Kind::List => &mut self.out_list,
            Kind::ListAnswer => &mut self.out_list_answer,
        } += 1;
    }

    pub(crate) fn count_decode_error(&mut self, err: DecodeError) {
        *match err {
            DecodeError::Empty => &mut self.drop_empty,
            DecodeError::UnknownTopic => &mut self.drop_unknown_topic,
            DecodeError::BadId => &mut self.drop_bad_id,
            DecodeError::FrameCount => &mut self.drop_frame_count,
            DecodeError::KeyNotUtf8 => &mut self.drop_key_not_utf8,
        } += 1;
    }

    pub(crate) fn count_beacon_error(&mut self, err: BeaconError) {
        *match err {
            BeaconError::NotBeacon => &mut self.drop_not_beacon,
            BeaconError::BadPort => &mut self.drop_beacon_bad_port,
        } += 1;
    }

    /// Every input dropped, whatever the reason.
    pub fn dropped(&self) -> u64 {
        self.iter()
            .filter(|(name, _)| name.starts_with("drop_"))
            .map(|(_, v)| v)
            .sum()
    }
}
