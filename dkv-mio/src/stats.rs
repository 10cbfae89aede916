//! Transport counters (sockets, send queue, address checks), the combined
//! counters a handle returns, and the operator's snapshot of a node ([`Status`]).

use dkv_proto::wire::Summary;
use dkv_proto::{BootstrapProgress, Timestamp};
use std::net::IpAddr;

/// Counters kept by the transport loop, beside the protocol's
/// [`dkv_proto::Stats`]. All only grow, except the gauges `pub_holding`,
/// `pub_holding_bytes`, `sub_in_open` and `watches`. They
/// are `u64` and grow by one per event, so `+= 1` cannot overflow in practice.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TransportStats {
    /// Beacon datagrams sent.
    pub beacons_sent: u64,
    /// Beacon sends that failed (any reason).
    pub beacon_send_errors: u64,
    /// UDP datagrams received on the beacon port (own beacons included).
    pub datagrams_in: u64,
    /// Multipart messages received on the SUB socket.
    pub zmq_in: u64,
    /// Multipart messages handed to the PUB socket.
    pub zmq_out: u64,
    /// Times a subscriber's send queue was found full: from then on it missed
    /// messages until it read its queue down (counted once per such stall, not per
    /// message missed; anti-entropy repairs what a dkv peer missed).
    pub pub_overflows: u64,
    /// PUB sends that failed for a reason other than being full; the message is lost.
    pub pub_send_errors: u64,
    /// Messages for a dkv peer that had not subscribed yet, held until it did.
    pub pub_held: u64,
    /// Held messages dropped: their peer did not subscribe within a peer timeout,
    /// too many were held, or the node stopped.
    pub pub_held_dropped: u64,
    /// Messages held now (a gauge).
    pub pub_holding: u64,
    /// Bytes of the messages held now (a gauge).
    pub pub_holding_bytes: u64,
    /// dkv peers' subscriptions to this node's messages, as the PUB socket saw them.
    pub subscribes: u64,
    /// dkv peers' subscriptions withdrawn (their connection closed).
    pub unsubscribes: u64,
    /// SUB connects to peers.
    pub sub_connects: u64,
    /// SUB disconnects from peers.
    pub sub_disconnects: u64,
    /// SUB connects or disconnects that ZeroMQ refused.
    pub sub_errors: u64,
    /// TCP connections other hosts opened to the PUB socket (subscribers).
    pub sub_in_accepted: u64,
    /// Of those, cut at once for being over the caps (`max_subscribers`,
    /// `max_subscribers_per_ip`).
    pub sub_in_cut_cap: u64,
    /// Subscriber connections that ended (closed by the subscriber, dead, or cut:
    /// stalled past the stall timeout, or over the caps).
    pub sub_in_closed: u64,
    /// Subscriber connections open now (a gauge).
    pub sub_in_open: u64,
    /// Connections the PUB socket failed to accept (out of descriptors?).
    pub accept_failed: u64,
    /// SUB connections to a live peer re-dialed after libzmq gave them up (a frame
    /// over `max_message_bytes` ends a connection for good in libzmq).
    pub sub_redials: u64,
    /// Local address checks done.
    pub address_checks: u64,
    /// Times the local address was found changed, lost or regained.
    pub address_changes: u64,
    /// Address checks that failed for lack of resources (descriptors, memory);
    /// the node kept its state (never taken for net down).
    pub address_check_errors: u64,
    /// Turns of the event loop.
    pub loop_turns: u64,
    /// Live watches ([`Dkv::watch`](crate::Dkv::watch)) now (a gauge).
    pub watches: u64,
    /// Changes a watch's full queue could not take (each is reported to its
    /// watcher as part of a [`WatchEvent::Lost`](crate::WatchEvent::Lost)).
    pub watch_events_lost: u64,
    /// Entries read back from the data dir at start.
    pub disk_restored: u64,
    /// Commits to the data dir (each one fsync).
    pub disk_commits: u64,
    /// Entries written to the data dir.
    pub disk_puts: u64,
    /// Collected tombstones removed from the data dir.
    pub disk_removes: u64,
}

impl TransportStats {
    /// Every counter as `(name, value)`, in declaration order.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, u64)> {
        [
            ("beacons_sent", self.beacons_sent),
            ("beacon_send_errors", self.beacon_send_errors),
            ("datagrams_in", self.datagrams_in),
            ("zmq_in", self.zmq_in),
            ("zmq_out", self.zmq_out),
            ("pub_overflows", self.pub_overflows),
            ("pub_send_errors", self.pub_send_errors),
            ("pub_held", self.pub_held),
            ("pub_held_dropped", self.pub_held_dropped),
            ("pub_holding", self.pub_holding),
            ("pub_holding_bytes", self.pub_holding_bytes),
            ("subscribes", self.subscribes),
            ("unsubscribes", self.unsubscribes),
            ("sub_connects", self.sub_connects),
            ("sub_disconnects", self.sub_disconnects),
            ("sub_errors", self.sub_errors),
            ("sub_in_accepted", self.sub_in_accepted),
            ("sub_in_cut_cap", self.sub_in_cut_cap),
            ("sub_in_closed", self.sub_in_closed),
            ("sub_in_open", self.sub_in_open),
            ("accept_failed", self.accept_failed),
            ("sub_redials", self.sub_redials),
            ("address_checks", self.address_checks),
            ("address_changes", self.address_changes),
            ("address_check_errors", self.address_check_errors),
            ("loop_turns", self.loop_turns),
            ("watches", self.watches),
            ("watch_events_lost", self.watch_events_lost),
            ("disk_restored", self.disk_restored),
            ("disk_commits", self.disk_commits),
            ("disk_puts", self.disk_puts),
            ("disk_removes", self.disk_removes),
        ]
        .into_iter()
    }
}

/// A snapshot of a node's counters: the protocol's and the transport's.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// The protocol core's counters.
    pub proto: dkv_proto::Stats,
    /// The transport's counters.
    pub transport: TransportStats,
}

impl Stats {
    /// Every counter as `(name, value)`: the protocol's, then the transport's.
    /// Names are unique across both.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        self.proto.iter().chain(self.transport.iter())
    }
}

/// What an operator needs to know about a node, taken at one instant
/// ([`Dkv::status`](crate::Dkv::status)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    /// The local address while the net is up.
    pub local_ip: Option<IpAddr>,
    /// Live peers.
    pub peers: usize,
    /// Live peers a write made now reaches ([`Dkv::ready_peers`](crate::Dkv::ready_peers)).
    pub ready_peers: usize,
    /// Keys holding a value.
    pub keys: usize,
    /// Deleted keys whose tombstones are still held.
    pub tombstones: usize,
    /// The whole store's fingerprint and entry count, tombstones included: two
    /// nodes with equal summaries hold the same entries.
    pub summary: Summary,
    /// The node's clock: every version it issues from now on is above this.
    pub clock: Timestamp,
    /// Where the current bootstrap stands.
    pub bootstrap: BootstrapProgress,
    /// The cluster's name ("" for the prototype's open cluster).
    pub cluster: String,
    /// With keys: the id of the key that seals what this node sends (the node
    /// then refuses every unauthenticated input). `None`: unkeyed.
    pub send_key: Option<dkv_proto::seal::KeyId>,
    /// Every counter.
    pub stats: Stats,
}

impl Status {
    /// Who this node talks to, as one word: `open` (any host, prototypes too),
    /// `named` (nodes of its cluster name, unauthenticated) or `keyed` (only key
    /// holders; every unauthenticated input is refused).
    pub fn security(&self) -> &'static str {
        match (&self.send_key, self.cluster.is_empty()) {
            (Some(_), _) => "keyed",
            (None, true) => "open",
            (None, false) => "named",
        }
    }
}
