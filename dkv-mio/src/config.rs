//! What a [`Dkv`](crate::Dkv) node is told at start: where beacons go, which
//! interface it uses, its id, its timings, its queue limits and where it
//! keeps its entries.

use crate::storage::SyncPolicy;
use dkv_proto::seal::{Cluster, Keyring};
use dkv_proto::{Limits, NodeId, Timings};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::PathBuf;
use std::time::Duration;

/// The prototype's beacon port.
pub const DEFAULT_BEACON_PORT: u16 = 5005;

/// The loopback broadcast address: beacons sent there reach every node on this
/// host and nothing else. Tests and `dkv demo` use it.
pub const LOOPBACK_BROADCAST: Ipv4Addr = Ipv4Addr::new(127, 255, 255, 255);

/// The longest time between two checks of the local address, whatever the
/// configuration says.
pub const MAX_ADDRESS_CHECK_INTERVAL: Duration = Duration::from_secs(24 * 60 * 60);

/// Everything a node needs to start. [`Config::default`] gives the prototype's
/// settings (beacons to `255.255.255.255:5005`, PUB on every interface);
/// [`Config::loopback`] gives a node that only talks to nodes on this host.
#[derive(Clone, Debug)]
pub struct Config {
    /// Where beacons are sent. Default: `255.255.255.255`.
    pub broadcast_ip: Ipv4Addr,
    /// The UDP port beacons are sent to and received on (`0.0.0.0:<port>`).
    /// Default: 5005.
    pub beacon_port: u16,
    /// The interface address to use. `None` (the default): the PUB socket binds
    /// every interface and the local address is the one traffic toward
    /// `broadcast_ip` leaves from. `Some(ip)`: the PUB socket binds `ip` only,
    /// beacons leave from `ip`, and `ip` is the local address.
    pub bind: Option<Ipv4Addr>,
    /// The node id. `None` (the default): 8 fresh random bytes from the OS.
    pub id: Option<NodeId>,
    /// Protocol timings; the default is the prototype's.
    pub timings: Timings,
    /// How often the local address is re-checked, to notice net down, net up and a
    /// changed IP. `None` (the default): once per beacon interval. Capped at
    /// [`MAX_ADDRESS_CHECK_INTERVAL`].
    pub address_check_interval: Option<Duration>,
    /// Messages the PUB socket queues per subscriber (ZeroMQ `SNDHWM`). A
    /// subscriber whose queue is full misses messages until it reads it down (and
    /// anti-entropy repairs them); the others are never held back. With
    /// [`stall_timeout`](Self::stall_timeout) it bounds the memory one subscriber
    /// costs: `send_hwm` × the largest message (about
    /// [`Limits::max_message_bytes`](dkv_proto::Limits::max_message_bytes)) plus
    /// the kernel's TCP send buffer. Default: 1 000 (4 bootstrap windows of
    /// questions, so a slow prototype peer keeps up). 0 is ZeroMQ's "no limit",
    /// refused by [`Dkv::start`](crate::Dkv::start).
    pub send_hwm: i32,
    /// Messages the SUB socket queues per publisher (ZeroMQ `RCVHWM`); past it,
    /// ZeroMQ stops reading that connection until the node catches up. Default:
    /// 256. 0 ("no limit") is refused.
    pub recv_hwm: i32,
    /// How long a subscriber may leave this node's data unacknowledged (its TCP
    /// window at zero: a frozen host, a stopped process, a reader that stopped)
    /// before its connection is cut and its queue freed (`TCP_USER_TIMEOUT`). When
    /// it recovers it reconnects and anti-entropy brings it up to date. `None` (the
    /// default): the peer timeout. At least 1 ms.
    pub stall_timeout: Option<Duration>,
    /// The most bytes of messages held for dkv peers that have not subscribed yet
    /// (each held at most a peer timeout); past it the oldest are dropped and
    /// counted in
    /// [`TransportStats::pub_held_dropped`](crate::TransportStats::pub_held_dropped).
    /// Default: 32 MiB.
    pub held_bytes: usize,
    /// The protocol's limits (key, value and message sizes, peers, rates, store
    /// size; see [`Limits`]), passed to the core. The transport enforces
    /// `max_message_bytes` per received frame too (`ZMQ_MAXMSGSIZE`, before
    /// anything is allocated) and sizes its connection caps and descriptor
    /// budget from `max_peers`. Run the same limits on every node: a peer's message
    /// over this node's limit is refused. Default: [`Limits::default`].
    pub limits: Limits,
    /// The most TCP connections other hosts may have open to this node's PUB
    /// socket at once (subscribers); past it, new ones are cut and counted in
    /// [`TransportStats::sub_in_cut_cap`](crate::TransportStats::sub_in_cut_cap).
    /// `None` (the default): `limits.max_peers` + 16.
    pub max_subscribers: Option<usize>,
    /// The most such connections from one IP address. Default: 16 (`dkv demo`
    /// runs 12 nodes on one host).
    pub max_subscribers_per_ip: usize,
    /// The cluster this node belongs to. [`Cluster::open`] (the default) is the
    /// prototype's open cluster, today's wire byte for byte. A named cluster
    /// ([`Cluster::new`]) peers only with nodes of the same name and never with
    /// prototype nodes: a guard against mistakes, not attackers.
    pub cluster: Cluster,
    /// Pre-shared keys ([`read_key_file`](crate::read_key_file) reads a key file).
    /// `Some`: every datagram and message is sealed with the first key and opened
    /// with any key; the node accepts no unauthenticated traffic at all. Default:
    /// `None`.
    pub keys: Option<Keyring>,
    /// Where the node keeps its entries on disk (created if missing; one node per
    /// dir). At start it holds everything it held when it stopped. `None` (the
    /// default): in memory only.
    pub data_dir: Option<PathBuf>,
    /// With a data dir, how writes share fsyncs; acknowledgements always wait for
    /// the commit. Default: group commit with no added delay.
    pub sync: SyncPolicy,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            broadcast_ip: Ipv4Addr::BROADCAST,
            beacon_port: DEFAULT_BEACON_PORT,
            bind: None,
            id: None,
            timings: Timings::default(),
            address_check_interval: None,
            send_hwm: 1_000,
            recv_hwm: 256,
            stall_timeout: None,
            held_bytes: 32 << 20,
            limits: Limits::default(),
            max_subscribers: None,
            max_subscribers_per_ip: 16,
            cluster: Cluster::open(),
            keys: None,
            data_dir: None,
            sync: SyncPolicy::default(),
        }
    }
}

impl Config {
    /// A node that beacons to the loopback broadcast address `127.255.255.255` on
    /// `beacon_port`: it finds only nodes on this host using the same port, and
    /// sends nothing off the host.
    pub fn loopback(beacon_port: u16) -> Config {
        Config {
            broadcast_ip: LOOPBACK_BROADCAST,
            beacon_port,
            ..Config::default()
        }
    }

    /// The address beacons are sent to.
    pub fn beacon_target(&self) -> SocketAddrV4 {
        SocketAddrV4::new(self.broadcast_ip, self.beacon_port)
    }

    /// The interval at which the local address is re-checked: the configured one
    /// (or the beacon interval), at least 1 ms and at most
    /// [`MAX_ADDRESS_CHECK_INTERVAL`], so that any setting gives a deadline the
    /// clock can represent.
    pub fn effective_address_check_interval(&self) -> Duration {
        self.address_check_interval
            .unwrap_or(self.timings.beacon_interval)
            .clamp(Duration::from_millis(1), MAX_ADDRESS_CHECK_INTERVAL)
    }

    /// The stall timeout in force: the configured one, else the peer timeout.
    pub fn effective_stall_timeout(&self) -> Duration {
        self.stall_timeout.unwrap_or(self.timings.peer_timeout)
    }

    /// The cap on subscriber connections in force: the configured one, else
    /// `limits.max_peers` + 16.
    pub fn effective_max_subscribers(&self) -> usize {
        self.max_subscribers
            .unwrap_or(self.limits.max_peers.saturating_add(16))
    }

    /// The file descriptors a node needs at most: its fixed sockets and storage
    /// (64), one SUB connection per peer and a spare for re-dials (2 per peer),
    /// one per subscriber, and 256 for ZeroMQ's internals and the process.
    pub fn fd_budget(&self) -> u64 {
        let peers = self.limits.max_peers as u64;
        64 + 2 * peers + self.effective_max_subscribers() as u64 + 256
    }

    /// Timings scaled for tests and demos on one host: beacons every 50 ms, peers
    /// down after 400 ms of silence, bootstrap after 150 ms and settled after
    /// 150 ms. Only the speed changes, not the protocol.
    pub fn fast_timings() -> Timings {
        Timings {
            beacon_interval: Duration::from_millis(50),
            peer_timeout: Duration::from_millis(400),
            get_timeout: Duration::from_millis(200),
            bootstrap_delay: Duration::from_millis(150),
            bootstrap_settle: Duration::from_millis(150),
            bootstrap_question_timeout: Duration::from_millis(500),
            ..Timings::default()
        }
    }
}
