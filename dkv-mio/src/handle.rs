//! The library handle: starts a node's loop thread and talks to it through a
//! command channel and a `mio::Waker`.

use crate::config::Config;
use crate::error::Error;
use crate::event_loop::{
    Command, EventLoop, Wakeup, BEACON, PUB, PUB_MONITOR, SUB, SUB_MONITOR, WAKER,
};
use crate::net;
use crate::stats::{Stats, Status, TransportStats};
use crate::storage::{Acks, Pending, Persistence, Store};
use crate::watch::{Shared, Watch, WATCH_CAPACITY};
use crate::zmq_io::ZmqIo;
use bytes::Bytes;
use dkv_proto::{BootstrapProgress, Entry, Node, NodeId, Timestamp, Version, WallClock};
use mio::unix::SourceFd;
use mio::{Interest, Poll, Waker};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The longest timeout [`Dkv::get`] accepts.
pub const MAX_GET_TIMEOUT: Duration = Duration::from_secs(24 * 60 * 60);

/// The longest peer timeout (hence beacon interval) [`Dkv::start`] accepts. The
/// core multiplies both by small factors; far longer ones overflow there.
pub const MAX_PEER_TIMEOUT: Duration = Duration::from_secs(24 * 60 * 60);

/// A running dkv node: one thread that owns its sockets and protocol state.
///
/// The handle is `Send + Sync`; share it between threads with an `Arc`. Every
/// request is carried out by the node's thread in the order it was made, so a
/// [`get`](Self::get) after a [`set`](Self::set) from the same thread sees the set.
/// Once the node has stopped every request returns [`Error::Stopped`].
/// Dropping the handle shuts the node down, as [`shutdown`](Self::shutdown) does.
pub struct Dkv {
    commands: mpsc::Sender<Command>,
    waker: Arc<Wakeup>,
    /// The number of the last write sent to the loop.
    last_write: Mutex<u64>,
    /// How far the writes are acknowledged.
    acks: Arc<Acks>,
    thread: Mutex<Option<JoinHandle<()>>>,
    id: NodeId,
    pub_port: u16,
    beacon_port: u16,
    next_watch: AtomicU64,
    /// The limits the node runs with, to refuse a write before it is sent.
    limits: dkv_proto::Limits,
}

/// A live key with its value and version, as [`Dkv::scan`] returns them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyValue {
    /// The key.
    pub key: String,
    /// Its value.
    pub value: Bytes,
    /// The version of the write that set it.
    pub version: Version,
}

impl std::fmt::Debug for Dkv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dkv")
            .field("id", &self.id)
            .field("pub_port", &self.pub_port)
            .field("beacon_port", &self.beacon_port)
            .finish()
    }
}

impl Dkv {
    /// Opens the sockets (PUB on a random port, SUB, the beacon socket) and starts
    /// the node's thread. On success the node looks for its local address at once
    /// and, once it has one, beacons and bootstraps. On error nothing is left
    /// running. Refused with [`Error::InvalidArgument`]: a send or receive
    /// high-water mark below 1, a stall timeout outside 1 ms to 24 hours,
    /// a default get timeout above [`MAX_GET_TIMEOUT`], a peer timeout above
    /// [`MAX_PEER_TIMEOUT`], beacon port 0, and a
    /// bind address that is unspecified, broadcast or
    /// multicast; with [`Error::InvalidTimings`]: timings
    /// [`Timings::validate`](dkv_proto::Timings::validate) rejects.
    ///
    /// With [`Config::data_dir`] it first opens the dir (creating it if missing) and
    /// puts every entry held there back into the node, before the node sees the
    /// network; the node id is still a fresh one (unless [`Config::id`] sets it).
    /// A dir another process holds ([`Error::DataDirLocked`]), from a newer dkv
    /// ([`Error::DataDirNewer`]), damaged ([`Error::DataDirCorrupt`]) or unusable
    /// ([`Error::DataDir`]) is refused and left untouched.
    pub fn start(config: Config) -> Result<Dkv, Error> {
        config.timings.validate()?;
        config.limits.validate()?;
        if config.max_subscribers_per_ip == 0 || config.effective_max_subscribers() == 0 {
            return Err(Error::InvalidArgument(
                "the subscriber caps must allow at least 1 connection",
            ));
        }
        crate::fds::ensure(config.fd_budget())?;
        if config.send_hwm <= 0 || config.recv_hwm <= 0 {
            return Err(Error::InvalidArgument(
                "the send and receive high-water marks must be at least 1 message",
            ));
        }
        if config
            .stall_timeout
            .is_some_and(|t| t < Duration::from_millis(1) || t > MAX_PEER_TIMEOUT)
        {
            return Err(Error::InvalidArgument(
                "the stall timeout must be 1 ms to 24 hours",
            ));
        }
        if config.timings.get_timeout > MAX_GET_TIMEOUT {
            return Err(Error::InvalidArgument(
                "the default get timeout is above 24 hours",
            ));
        }
        if config.timings.peer_timeout > MAX_PEER_TIMEOUT {
            return Err(Error::InvalidArgument("the peer timeout is above 24 hours"));
        }
        if config.beacon_port == 0 {
            return Err(Error::InvalidArgument("the beacon port must be 1..=65535"));
        }
        if config
            .bind
            .is_some_and(|ip| ip.is_unspecified() || ip.is_broadcast() || ip.is_multicast())
        {
            // As the node's own address it would make the node take its own
            // beacons (which leave from a real address) for a peer's.
            return Err(Error::InvalidArgument(
                "the bind address must be one unicast address of this host \
                 (leave it out to use every interface)",
            ));
        }
        let id = match config.id {
            Some(id) => id,
            None => NodeId(net::random_id().map_err(Error::Random)?),
        };
        let seed = u64::from_le_bytes(net::random_id().map_err(Error::Random)?);
        // First, so that a data dir that cannot be used fails before any socket.
        let mut store = config.data_dir.as_deref().map(Store::open).transpose()?;
        let zmq = ZmqIo::new(&config)?;
        let pub_port = zmq.pub_port();
        let wall = WallClock {
            at: Instant::now(),
            unix_ms: net::unix_ms_now(),
        };
        let mut proto = dkv_proto::Config::new(id, pub_port, wall);
        proto.seed = seed;
        proto.timings = config.timings.clone();
        proto.limits = config.limits.clone();
        proto.cluster = config.cluster.clone();
        proto.keys = config.keys.clone();
        let mut node = Node::new(proto);
        let restored = match &mut store {
            Some(store) => store.restore(&mut node, Instant::now())?,
            None => Default::default(),
        };
        // The core's clock is above every restored version; a tombstone collected
        // from disk is no longer among them. Only a wall clock stepped back by more
        // than the tombstone horizon could issue a version below it.
        let floor = node.clock().max(Timestamp::from_millis(wall.unix_ms));
        if restored.collected_floor > floor {
            tracing::warn!(
                collected = %restored.collected_floor,
                clock = %floor,
                "the wall clock is behind a tombstone this node already collected: \
                 new versions may be below it"
            );
        }
        zmq.subscribe(&node.subscriptions())?;
        let mut beacon =
            net::beacon_socket(config.beacon_port).map_err(|source| Error::BeaconSocket {
                port: config.beacon_port,
                source,
            })?;
        let beacon_sender = match config.bind {
            Some(ip) => {
                Some(net::beacon_sender(ip).map_err(|source| Error::BeaconSender { ip, source })?)
            }
            None => None,
        };
        let poll = Poll::new().map_err(Error::EventLoop)?;
        let [pub_fd, sub_fd, pub_monitor_fd, sub_monitor_fd] = zmq.fds()?;
        let registry = poll.registry();
        registry
            .register(&mut beacon, BEACON, Interest::READABLE)
            .map_err(Error::EventLoop)?;
        // ZMQ_FD signals "something changed" for both directions as readable.
        registry
            .register(&mut SourceFd(&pub_fd), PUB, Interest::READABLE)
            .map_err(Error::EventLoop)?;
        registry
            .register(&mut SourceFd(&sub_fd), SUB, Interest::READABLE)
            .map_err(Error::EventLoop)?;
        registry
            .register(
                &mut SourceFd(&pub_monitor_fd),
                PUB_MONITOR,
                Interest::READABLE,
            )
            .map_err(Error::EventLoop)?;
        registry
            .register(
                &mut SourceFd(&sub_monitor_fd),
                SUB_MONITOR,
                Interest::READABLE,
            )
            .map_err(Error::EventLoop)?;
        let probe = net::AddressProbe::new().map_err(Error::EventLoop)?;
        let waker = Arc::new(Wakeup::new(
            Waker::new(registry, WAKER).map_err(Error::EventLoop)?,
        ));
        let acks = Arc::new(Acks::default());
        let persist = match store {
            Some(store) => {
                let waker = Arc::clone(&waker);
                let name = format!("dkvd-{}", id.to_hex());
                let acks = Arc::clone(&acks);
                Persistence::start(store, config.sync, restored, acks, name, move || {
                    let _ = waker.wake();
                })?
            }
            None => Persistence::memory(Arc::clone(&acks)),
        };
        let (commands, receiver) = mpsc::channel();
        let event_loop = EventLoop {
            poll,
            node,
            beacon,
            beacon_sender,
            beacon_target: config.beacon_target(),
            bind: config.bind,
            probe,
            zmq,
            commands: receiver,
            wakeup: Arc::clone(&waker),
            address_check_interval: config.effective_address_check_interval(),
            next_address_check: Instant::now(),
            gets: HashMap::new(),
            stats: TransportStats::default(),
            last_own_datagram_check: None,
            refusals_logged: (0, Instant::now()),
            persist,
            watches: Vec::new(),
        };
        let thread = std::thread::Builder::new()
            .name(format!("dkv-{}", id.to_hex()))
            .spawn(move || event_loop.run())
            .map_err(Error::EventLoop)?;
        tracing::debug!(id = %id, pub_port, beacon_port = config.beacon_port, "node started");
        Ok(Dkv {
            commands,
            waker,
            last_write: Mutex::new(0),
            acks,
            thread: Mutex::new(Some(thread)),
            id,
            pub_port,
            beacon_port: config.beacon_port,
            next_watch: AtomicU64::new(0),
            limits: config.limits,
        })
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// The port this node's PUB socket is bound to (announced in its beacons).
    pub fn pub_port(&self) -> u16 {
        self.pub_port
    }

    /// The UDP port this node beacons on and listens to.
    pub fn beacon_port(&self) -> u16 {
        self.beacon_port
    }

    /// Stores `key = value` here with a fresh version and publishes it to every
    /// connected peer; it wins over every write of `key` this node has seen.
    /// Returns once the write is applied and, with a data dir, committed to disk
    /// ([`SyncPolicy`](crate::SyncPolicy)); [`Error::Commit`] if that commit failed.
    /// A key or value over [`Config::limits`] (by default 1 KiB and 1 MiB) is an
    /// [`Error::TooLarge`], and nothing is written.
    pub fn set(&self, key: impl Into<String>, value: impl Into<Bytes>) -> Result<(), Error> {
        self.set_pending(key, value)?.wait()
    }

    /// Like [`set`](Self::set), but returns as soon as the node has the request,
    /// with a [`Pending`] that waits for the acknowledgement. Requests are still
    /// carried out in order (a later get sees the write), so one thread can keep
    /// many writes in flight and let group commit put them under few fsyncs.
    pub fn set_pending(
        &self,
        key: impl Into<String>,
        value: impl Into<Bytes>,
    ) -> Result<Pending, Error> {
        let (key, value) = (key.into(), value.into());
        self.limits.check_write(&key, Some(&value))?;
        self.write(|write| Command::Set { key, value, write })
    }

    /// Deletes `key`: stores a tombstone with a fresh version and publishes it. The
    /// delete replicates and wins like a set (a later set brings the key back);
    /// prototype peers receive it as a set of an empty value, the closest they
    /// have. Deleting a key not held is still a delete (it wins over older writes
    /// elsewhere). Returns once the delete is applied and, with a data dir,
    /// committed to disk, as [`set`](Self::set) does.
    pub fn delete(&self, key: impl Into<String>) -> Result<(), Error> {
        let key = key.into();
        self.limits.check_write(&key, None)?;
        self.write(|write| Command::Delete { key, write })?.wait()
    }

    /// The value of `key`: the local one at once if held, else the first value a
    /// peer answers within `timeout` (`None`: the configured get timeout), which is
    /// then kept locally. `Ok(None)` when no value arrived in time, and at once when
    /// the key is deleted here. Blocks until then. A timeout above
    /// [`MAX_GET_TIMEOUT`] is an [`Error::InvalidArgument`].
    pub fn get(
        &self,
        key: impl Into<String>,
        timeout: Option<Duration>,
    ) -> Result<Option<Bytes>, Error> {
        Ok(self.get_entry(key.into(), timeout)?.0)
    }

    /// Like [`get`](Self::get), with the version of the value: `Some((value,
    /// version))` when a value is held once the get completes, `None` when the key
    /// is absent (nothing arrived in time) or deleted. Values learned from a
    /// prototype's answer carry [`Version::UNVERSIONED`].
    pub fn get_versioned(
        &self,
        key: impl Into<String>,
        timeout: Option<Duration>,
    ) -> Result<Option<(Bytes, Version)>, Error> {
        Ok(match self.get_entry(key.into(), timeout)? {
            (Some(value), Some(version)) => Some((value, version)),
            _ => None,
        })
    }

    fn get_entry(
        &self,
        key: String,
        timeout: Option<Duration>,
    ) -> Result<(Option<Bytes>, Option<Version>), Error> {
        if timeout.is_some_and(|t| t > MAX_GET_TIMEOUT) {
            return Err(Error::InvalidArgument("the get timeout is above 24 hours"));
        }
        let (reply, answer) = mpsc::channel();
        self.send(Command::Get {
            key,
            timeout,
            reply,
        })?;
        answer.recv().map_err(|_| Error::Stopped)
    }

    /// The value held locally for `key`, without asking peers; `None` if absent or
    /// deleted.
    pub fn get_local(&self, key: impl Into<String>) -> Result<Option<Bytes>, Error> {
        let key = key.into();
        self.query(move |node, _| node.value(&key).map(Bytes::copy_from_slice))
    }

    /// The entry held locally for `key`, tombstones included (a deleted key gives
    /// an entry with `value: None`), without asking peers.
    pub fn entry(&self, key: impl Into<String>) -> Result<Option<Entry>, Error> {
        let key = key.into();
        self.query(move |node, _| node.entry(&key))
    }

    /// Every key holding a value here (deleted keys left out), sorted by key.
    pub fn keys(&self) -> Result<Vec<String>, Error> {
        self.keys_with_prefix("")
    }

    /// Every key under `prefix` holding a value here (deleted keys left out),
    /// sorted by key; `""` gives every key.
    pub fn keys_with_prefix(&self, prefix: impl Into<String>) -> Result<Vec<String>, Error> {
        let prefix = prefix.into();
        let mut keys: Vec<String> = self.query(move |node, _| {
            node.keys()
                .filter(|key| key.starts_with(&prefix))
                .map(str::to_owned)
                .collect()
        })?;
        keys.sort_unstable();
        Ok(keys)
    }

    /// Every key under `prefix` holding a value here, with its value and version,
    /// sorted by key; taken in one turn of the node's loop, so it is one
    /// consistent view. `""` gives the whole store (deleted keys left out).
    pub fn scan(&self, prefix: impl Into<String>) -> Result<Vec<KeyValue>, Error> {
        let prefix = prefix.into();
        let mut items: Vec<KeyValue> = self.query(move |node, _| {
            // Keys first, so only the values under the prefix are copied out.
            node.keys()
                .filter(|key| key.starts_with(&prefix))
                .filter_map(|key| {
                    let entry = node.entry(key)?;
                    Some(KeyValue {
                        key: key.to_owned(),
                        value: entry.value?,
                        version: entry.version,
                    })
                })
                .collect()
        })?;
        items.sort_unstable_by(|a, b| a.key.cmp(&b.key));
        Ok(items)
    }

    /// Subscribes to every change of the keys under `prefix` (`""`: every key)
    /// applied from now on: see [`Watch`]. Its queue holds [`WATCH_CAPACITY`]
    /// events; a consumer that falls further behind loses events and is told how
    /// many ([`WatchEvent::Lost`](crate::WatchEvent::Lost)). The node never waits
    /// for a watcher.
    pub fn watch(&self, prefix: impl Into<String>) -> Result<Watch, Error> {
        self.watch_with_capacity(prefix, WATCH_CAPACITY)
    }

    /// [`watch`](Self::watch) with a queue of `capacity` events (at least 1, else
    /// [`Error::InvalidArgument`]).
    pub fn watch_with_capacity(
        &self,
        prefix: impl Into<String>,
        capacity: usize,
    ) -> Result<Watch, Error> {
        if capacity == 0 {
            return Err(Error::InvalidArgument(
                "a watch's queue must hold at least 1 event",
            ));
        }
        let id = self.next_watch.fetch_add(1, Ordering::Relaxed);
        let shared = Shared::new(prefix.into(), capacity);
        let (ack, acked) = mpsc::channel();
        self.send(Command::Watch {
            id,
            shared: Arc::clone(&shared),
            ack,
        })?;
        acked.recv().map_err(|_| Error::Stopped)?;
        Ok(Watch::new(
            shared,
            id,
            self.commands.clone(),
            Arc::clone(&self.waker),
        ))
    }

    /// Waits until at least `count` peers are ready
    /// ([`ready_peers`](Self::ready_peers)), checking every 10 ms; returns at once
    /// if they already are, and [`Error::Timeout`] if they are not within
    /// `timeout`.
    ///
    /// What it promises: a set made after it returns is published on connections
    /// those peers were proven to receive. For a dkv peer, this node completed a
    /// reconciliation with it since it came up, so its SUB socket was receiving
    /// this node's messages; the set reaches it in its own message unless that
    /// peer goes down, the connection breaks, or the send queues overflow first
    /// (anti-entropy repairs those later). Prototype peers count as ready as soon
    /// as they are up, since nothing proves their connection; a set made at once
    /// may miss one whose connection is still forming. It counts peers, not which
    /// ones, and a peer may go down after it returned.
    pub fn wait_for_peers(&self, count: usize, timeout: Duration) -> Result<(), Error> {
        let deadline = Instant::now().checked_add(timeout);
        loop {
            let ready = self.query(|node, _| node.ready_peers().count())?;
            if ready >= count {
                return Ok(());
            }
            if deadline.is_some_and(|at| Instant::now() >= at) {
                return Err(Error::Timeout {
                    what: "ready peers",
                    wanted: count,
                    got: ready,
                });
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Live peers' PUB endpoints (`ip:port`), in address order.
    pub fn peers(&self) -> Result<Vec<SocketAddr>, Error> {
        self.query(|node, _| node.peers().collect())
    }

    /// The live peers a write made now reaches, in address order: prototype peers,
    /// and dkv peers this node has completed a reconciliation with since they came
    /// up (which proves their SUB socket receives this node's messages). A subset
    /// of [`peers`](Self::peers).
    pub fn ready_peers(&self) -> Result<Vec<SocketAddr>, Error> {
        self.query(|node, _| node.ready_peers().collect())
    }

    /// The protocol's and the transport's counters.
    pub fn stats(&self) -> Result<Stats, Error> {
        self.query(snapshot_stats)
    }

    /// Counters, state, sizes, the store's fingerprint and the clock, all taken in
    /// one turn of the node's loop (no key list copied).
    pub fn status(&self) -> Result<Status, Error> {
        self.query(|node, transport| Status {
            local_ip: node.local_ip(),
            peers: node.peers().count(),
            ready_peers: node.ready_peers().count(),
            keys: node.len(),
            tombstones: node.tombstones(),
            summary: node.summary(),
            clock: node.clock(),
            bootstrap: node.bootstrap(),
            cluster: node.cluster().name().to_string(),
            send_key: node.send_key(),
            stats: snapshot_stats(node, transport),
        })
    }

    /// The local address while the net is up.
    pub fn local_ip(&self) -> Result<Option<IpAddr>, Error> {
        self.query(|node, _| node.local_ip())
    }

    /// Where the current bootstrap stands.
    pub fn bootstrap(&self) -> Result<BootstrapProgress, Error> {
        self.query(|node, _| node.bootstrap())
    }

    /// Stops the node: peers go down, pending gets complete with what is held
    /// locally, sockets close and the thread is joined. Returns once the thread is
    /// gone, also when another thread's call is doing the work. Later calls do
    /// nothing and succeed.
    pub fn shutdown(&self) -> Result<(), Error> {
        // The lock is held through the join so that a concurrent call waits for
        // it. The loop thread never takes this lock, so this cannot deadlock.
        let mut slot = self
            .thread
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(thread) = slot.take() {
            // If the loop is already gone the send fails; joining still works.
            let _ = self.send(Command::Shutdown);
            if thread.join().is_err() {
                tracing::error!("the node's thread panicked");
            }
        }
        Ok(())
    }

    /// Waits up to `timeout` for the node to stop, by [`shutdown`](Self::shutdown) or
    /// by itself (a failed commit to the data dir stops it); whether it has. A
    /// service uses it to exit when its node can no longer work.
    pub fn wait_stopped(&self, timeout: Duration) -> bool {
        self.acks.wait_stopped(timeout)
    }

    /// Runs `f` on the node's thread and returns its result.
    fn query<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Node, &TransportStats) -> T + Send + 'static,
    ) -> Result<T, Error> {
        let (reply, answer) = mpsc::channel();
        self.send(Command::Query(Box::new(move |node, transport| {
            let _ = reply.send(f(node, transport));
        })))?;
        answer.recv().map_err(|_| Error::Stopped)
    }

    fn send(&self, command: Command) -> Result<(), Error> {
        self.commands.send(command).map_err(|_| Error::Stopped)?;
        self.waker.wake().map_err(|_| Error::Stopped)
    }

    /// Sends the write `command` makes with its number; the [`Pending`] waits for
    /// its acknowledgement.
    fn write(&self, command: impl FnOnce(u64) -> Command) -> Result<Pending, Error> {
        let write = {
            // Numbered and sent under one lock, so the loop receives writes in
            // the order of their numbers.
            let mut last = self.last_write.lock().unwrap_or_else(|p| p.into_inner());
            self.commands
                .send(command(*last + 1))
                .map_err(|_| Error::Stopped)?;
            *last += 1;
            *last
        };
        self.waker.wake().map_err(|_| Error::Stopped)?;
        Ok(Pending::new(Arc::clone(&self.acks), write))
    }
}

fn snapshot_stats(node: &Node, transport: &TransportStats) -> Stats {
    Stats {
        proto: node.stats(),
        transport: transport.clone(),
    }
}

impl Drop for Dkv {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    #[test]
    fn a_concurrent_shutdown_returns_only_once_the_thread_is_joined() {
        let poll = Poll::new().unwrap();
        let waker = Arc::new(Wakeup::new(Waker::new(poll.registry(), WAKER).unwrap()));
        let (commands, receiver) = mpsc::channel();
        let stopping = Arc::new(AtomicBool::new(false));
        let stopped = Arc::new(AtomicBool::new(false));
        // A loop that is slow to stop once told to.
        let (told, gone) = (Arc::clone(&stopping), Arc::clone(&stopped));
        let thread = std::thread::spawn(move || {
            let _ = receiver.recv();
            told.store(true, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(300));
            gone.store(true, Ordering::SeqCst);
        });
        let dkv = Arc::new(Dkv {
            commands,
            waker,
            last_write: Mutex::new(0),
            acks: Arc::default(),
            thread: Mutex::new(Some(thread)),
            id: NodeId([0; 8]),
            pub_port: 1,
            beacon_port: 1,
            next_watch: AtomicU64::new(0),
            limits: dkv_proto::Limits::default(),
        });
        let first = {
            let dkv = Arc::clone(&dkv);
            std::thread::spawn(move || dkv.shutdown())
        };
        let start = Instant::now();
        while !stopping.load(Ordering::SeqCst) {
            assert!(start.elapsed() < Duration::from_secs(10), "never told");
            std::thread::sleep(Duration::from_millis(1));
        }
        // The first call is joining; this one must wait for that too.
        dkv.shutdown().unwrap();
        assert!(stopped.load(Ordering::SeqCst), "returned before the join");
        first.join().unwrap().unwrap();
    }
}
