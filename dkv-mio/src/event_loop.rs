//! The node's one thread: a `mio::Poll` around the beacon socket, the two ZeroMQ
//! sockets and the command channel, driving a [`dkv_proto::Node`].
//!
//! Each turn services the command channel, the address re-check (which also
//! re-reads the wall clock) and the node's timers. The beacon socket (until
//! `WouldBlock`), the SUB socket (until a receive finds nothing), the PUB socket's
//! subscription changes and the socket monitors are read when they signalled,
//! and for as long as they may hold more: stopped at their batch limit, or, for
//! a ZeroMQ socket, touched by another call since it was last found empty
//! (`ZmqIo::sub_settled`). Otherwise their next input signals, and a turn that
//! does not concern them (most turns of a get) saves their system calls. Every
//! source is drained in bounded batches
//! (commands and SUB messages also within a time budget, so beacons and timers are
//! never starved for long); the
//! node's outputs are carried out once per batch of commands, so writes made back
//! to back can travel in one message. Last, both ZeroMQ sockets are settled
//! (pending commands processed; see
//! `ZmqIo::settle`). The loop then sleeps in `poll` until the nearest deadline,
//! unless the SUB socket still holds a message or a source stopped at its batch
//! limit: ZeroMQ's descriptors only signal edges, so sleeping with work pending
//! could sleep forever.

use crate::net;
use crate::stats::TransportStats;
use crate::storage::Persistence;
use crate::watch::{Shared, WatchEvent};
use crate::zmq_io::ZmqIo;
use bytes::Bytes;
use dkv_proto::{GetId, Node, NodeId, Output, Version, MAX_BEACON_LEN};
use mio::{Events, Poll, Token};
use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub(crate) const BEACON: Token = Token(0);
pub(crate) const PUB: Token = Token(1);
pub(crate) const SUB: Token = Token(2);
pub(crate) const WAKER: Token = Token(3);
pub(crate) const PUB_MONITOR: Token = Token(4);
pub(crate) const SUB_MONITOR: Token = Token(5);

/// At most this many inputs of one source are handled per turn, so no source can
/// starve the others.
const BATCH: usize = 1024;

/// Commands and SUB messages stop being handled for the turn after this long, even
/// short of a batch: a batch of large messages (bootstrap pages) can take seconds,
/// during which no beacon would be read, yet peer timeouts would fire at the end of
/// the turn.
const BUDGET: Duration = Duration::from_millis(5);

/// The least time between two address checks triggered by hearing this node's
/// own beacon or hello from another address.
const OWN_DATAGRAM_CHECK_GAP: Duration = Duration::from_millis(100);

/// The least time between two warnings about refused unauthenticated input.
const REFUSALS_LOG_GAP: Duration = Duration::from_secs(60);

/// Commands handled between two readings of the clock (and of [`BUDGET`]): one
/// `now` serves a run of writes, as a clock read costs as much as a write.
const CLOCK_EVERY: usize = 64;

/// Wakes the loop thread for new commands with one `eventfd` write per turn, not
/// per command: a wake while one is pending (the loop has not yet started reading
/// commands since the last) is skipped, as that read will find the command too.
pub(crate) struct Wakeup {
    waker: mio::Waker,
    pending: AtomicBool,
}

impl Wakeup {
    pub(crate) fn new(waker: mio::Waker) -> Wakeup {
        Wakeup {
            waker,
            pending: AtomicBool::new(false),
        }
    }

    /// After sending a command: makes sure the loop reads the channel again.
    pub(crate) fn wake(&self) -> io::Result<()> {
        // AcqRel: the loop's `take` that reads this `true` also sees the command
        // sent before it.
        if self.pending.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        self.waker.wake()
    }

    /// By the loop, before it reads the channel: later commands wake it again.
    fn take(&self) {
        self.pending.swap(false, Ordering::AcqRel);
    }
}

/// A read-only look at the node, for queries from the handle.
pub(crate) type Query = Box<dyn FnOnce(&Node, &TransportStats) + Send>;

/// What a completed get hands back: the live value and the version of the entry
/// held (a tombstone's too).
pub(crate) type GetReply = (Option<Bytes>, Option<Version>);

/// What a handle asks of the loop.
pub(crate) enum Command {
    Set {
        key: String,
        value: Bytes,
        /// The write's number ([`Persistence::ack`]).
        write: u64,
    },
    Delete {
        key: String,
        write: u64,
    },
    Get {
        key: String,
        timeout: Option<Duration>,
        reply: mpsc::Sender<GetReply>,
    },
    Query(Query),
    /// Starts delivering changes to `shared`; `ack` is answered once it is in place.
    Watch {
        id: u64,
        shared: Arc<Shared>,
        ack: mpsc::Sender<()>,
    },
    /// The watch `id` is gone.
    Unwatch(u64),
    Shutdown,
}

/// Everything the loop thread owns.
pub(crate) struct EventLoop {
    pub(crate) poll: Poll,
    pub(crate) node: Node,
    pub(crate) beacon: mio::net::UdpSocket,
    /// With a fixed bind address, beacons leave from a socket bound to it.
    pub(crate) beacon_sender: Option<std::net::UdpSocket>,
    pub(crate) beacon_target: SocketAddrV4,
    pub(crate) bind: Option<Ipv4Addr>,
    /// The socket the local address is found with (opened at start, so a check
    /// needs no new descriptor).
    pub(crate) probe: net::AddressProbe,
    pub(crate) zmq: ZmqIo,
    pub(crate) commands: mpsc::Receiver<Command>,
    pub(crate) wakeup: Arc<Wakeup>,
    pub(crate) address_check_interval: Duration,
    pub(crate) next_address_check: Instant,
    pub(crate) gets: HashMap<GetId, mpsc::Sender<GetReply>>,
    pub(crate) stats: TransportStats,
    /// When this node's own beacon or hello, heard from an address not its own,
    /// last triggered an address check (anyone can replay one: at most one check
    /// per [`OWN_DATAGRAM_CHECK_GAP`]).
    pub(crate) last_own_datagram_check: Option<Instant>,
    /// The refusal count last logged, and when ([`REFUSALS_LOG_GAP`]).
    pub(crate) refusals_logged: (u64, Instant),
    /// Live watches, by id.
    pub(crate) watches: Vec<(u64, Arc<Shared>)>,
    /// Where applied changes and write acknowledgements go (the data dir, if any).
    pub(crate) persist: Persistence,
}

enum Flow {
    Continue,
    Stop,
}

/// What is left in the command channel after taking commands from it.
enum Queue {
    /// Maybe more commands.
    More,
    /// Nothing for now.
    Empty,
    /// Nothing, and every handle is gone.
    Disconnected,
}

/// How a turn's beacon reading ended.
#[derive(PartialEq, Eq)]
enum BeaconRead {
    /// At `WouldBlock`: the next datagram signals.
    Drained,
    /// At the batch limit: more may wait.
    More,
    /// A receive failed (logged).
    Failed,
}

/// The sources read only when they signalled or may hold more (module docs):
/// whether each is to be read next turn.
struct Due {
    beacons: bool,
    /// The SUB socket (also read while not settled).
    messages: bool,
    /// The PUB socket's subscription changes (also read while not settled).
    subscriptions: bool,
    monitors: bool,
}

impl Due {
    const ALL: Due = Due {
        beacons: true,
        messages: true,
        subscriptions: true,
        monitors: true,
    };
}

impl EventLoop {
    /// Runs until a shutdown command, or until every handle is gone.
    pub(crate) fn run(mut self) {
        let span = tracing::info_span!("node", id = %self.node.id(), pub_port = self.node.config().pub_port);
        let _entered = span.enter();
        let mut events = Events::with_capacity(16);
        match self.node.send_key() {
            Some(key) => tracing::info!(cluster = self.node.cluster().name(), %key,
                "keyed cluster: refusing unauthenticated traffic, prototype nodes included"),
            None if self.node.isolated() => tracing::info!(
                cluster = self.node.cluster().name(),
                "named cluster: unauthenticated, no prototype nodes"
            ),
            None => {}
        }
        self.report_applied();
        self.check_address(Instant::now());
        // The first turn reads every source.
        let mut due = Due::ALL;
        loop {
            self.stats.loop_turns += 1;
            let (flow, mut busy) = self.handle_commands();
            if let Flow::Stop = flow {
                break;
            }
            if self.persist.failed() {
                break; // the writer logged why
            }
            if due.beacons {
                let read = self.read_beacons();
                busy |= read == BeaconRead::More;
                // After a failed receive, try again next turn.
                due.beacons = read != BeaconRead::Drained;
            }
            if due.messages || !self.zmq.sub_settled() {
                due.messages = false;
                busy |= self.read_messages();
            }
            if due.subscriptions || !self.zmq.pub_settled() {
                due.subscriptions = false;
                let (node, now) = (&mut self.node, Instant::now());
                let mut changed = false;
                busy |= self
                    .zmq
                    .read_subscriptions(BATCH, &mut self.stats, |peer, up| {
                        changed = true;
                        if up {
                            node.handle_subscribed(now, NodeId(peer));
                        } else {
                            node.handle_unsubscribed(now, NodeId(peer));
                        }
                    });
                if changed {
                    self.drain_outputs();
                }
            }
            if due.monitors {
                due.monitors = self.zmq.read_monitors(BATCH, &mut self.stats);
                busy |= due.monitors;
            }
            let now = Instant::now();
            let node = &self.node;
            self.zmq
                .redial(now, |addr| node.peers().any(|p| p == addr), &mut self.stats);
            if now >= self.next_address_check {
                self.check_address(now);
            }
            if self.node.poll_timeout().is_some_and(|at| at <= now) {
                self.node.handle_timeout(now);
                self.drain_outputs();
            }
            // ZeroMQ's descriptors only signal edges: after the last ZeroMQ call of
            // the turn, make sure no work is pending that would signal nothing.
            busy |= self.zmq.settle(&mut self.stats);
            let timeout = if busy {
                Duration::ZERO
            } else {
                let mut deadline = match self.node.poll_timeout() {
                    Some(at) => at.min(self.next_address_check),
                    None => self.next_address_check,
                };
                if let Some(at) = self.zmq.next_deadline() {
                    deadline = deadline.min(at);
                }
                deadline.saturating_duration_since(Instant::now())
            };
            if let Err(err) = self.poll.poll(&mut events, Some(timeout)) {
                if err.kind() != io::ErrorKind::Interrupted {
                    tracing::error!(%err, "poll failed; stopping the node");
                    break;
                }
            }
            // A turn woken by a timer reads every source: should an edge ever go
            // unsignalled, a read waits one timer, not forever.
            if events.is_empty() && !timeout.is_zero() {
                due = Due::ALL;
            }
            for event in events.iter() {
                tracing::trace!(token = event.token().0, "ready");
                match event.token() {
                    BEACON => due.beacons = true,
                    SUB => due.messages = true,
                    PUB => due.subscriptions = true,
                    PUB_MONITOR | SUB_MONITOR => due.monitors = true,
                    _ => {}
                }
            }
        }
        self.stop();
    }

    /// Handles up to a batch of commands, then carries out the node's outputs
    /// (before a query too, so what it reads is consistent). Outputs of back-to-back
    /// writes are thus carried out together, which lets the node batch them. Returns
    /// whether to go on, and whether commands remain.
    ///
    /// Commands are taken from the channel [`CLOCK_EVERY`] at a time, so a run of
    /// sets among them reaches the node in one go ([`Node::set_all`]).
    fn handle_commands(&mut self) -> (Flow, bool) {
        self.wakeup.take();
        let start = Instant::now();
        let mut now = start;
        let mut commands = Vec::with_capacity(CLOCK_EVERY);
        let mut handled = 0;
        let result = loop {
            let queue = self.take_commands(&mut commands);
            handled += commands.len();
            if let Flow::Stop = self.carry_out(now, &mut commands) {
                break (Flow::Stop, false);
            }
            match queue {
                Queue::Empty => break (Flow::Continue, false),
                Queue::Disconnected => break (Flow::Stop, false),
                Queue::More => {}
            }
            now = Instant::now();
            if handled >= BATCH || now.duration_since(start) >= BUDGET {
                break (Flow::Continue, true);
            }
        };
        self.drain_outputs();
        result
    }

    /// Moves up to [`CLOCK_EVERY`] commands from the channel into the empty
    /// `commands`; says what is left there.
    fn take_commands(&self, commands: &mut Vec<Command>) -> Queue {
        while commands.len() < CLOCK_EVERY {
            match self.commands.try_recv() {
                Ok(command) => commands.push(command),
                Err(TryRecvError::Empty) => return Queue::Empty,
                Err(TryRecvError::Disconnected) => return Queue::Disconnected,
            }
        }
        Queue::More
    }

    /// Carries out `commands` in order, leaving it empty: each run of sets in one
    /// call to the node. Stops at a shutdown, dropping the commands after it.
    fn carry_out(&mut self, now: Instant, commands: &mut Vec<Command>) -> Flow {
        let mut sets = Vec::with_capacity(commands.len());
        let mut last_set = None;
        for command in commands.drain(..) {
            if let Command::Set { key, value, write } = command {
                sets.push((key, value));
                last_set = Some(write);
                continue;
            }
            self.store_sets(now, &mut sets, last_set.take());
            match command {
                Command::Set { .. } => {} // taken into `sets` above
                Command::Delete { key, write } => {
                    self.node.delete(now, key);
                    self.persist.ack(write);
                }
                Command::Get {
                    key,
                    timeout,
                    reply,
                } => {
                    let id = self.node.get(now, key, timeout);
                    self.gets.insert(id, reply);
                }
                Command::Query(query) => {
                    self.drain_outputs();
                    self.persist.fill_stats(&mut self.stats);
                    query(&self.node, &self.stats);
                }
                Command::Watch { id, shared, ack } => {
                    // Changes already made are delivered to earlier watches only.
                    self.drain_outputs();
                    self.watches.push((id, shared));
                    self.stats.watches = self.watches.len() as u64;
                    self.report_applied();
                    let _ = ack.send(());
                }
                Command::Unwatch(id) => {
                    self.watches.retain(|(watch, _)| *watch != id);
                    self.stats.watches = self.watches.len() as u64;
                    self.report_applied();
                }
                Command::Shutdown => return Flow::Stop,
            }
        }
        self.store_sets(now, &mut sets, last_set);
        Flow::Continue
    }

    /// Hands the node a run of `sets` (emptied), the last numbered `last`.
    fn store_sets(&mut self, now: Instant, sets: &mut Vec<(String, Bytes)>, last: Option<u64>) {
        if let Some(write) = last {
            self.node.set_all(now, std::mem::take(sets));
            self.persist.ack(write);
        }
    }

    /// Has the node report its changes only while someone takes them: a watch or
    /// the data dir.
    fn report_applied(&mut self) {
        let wanted = !self.watches.is_empty() || self.persist.records_changes();
        self.node.report_applied(wanted);
    }

    /// Reads beacon datagrams until `WouldBlock`, a failed receive, or a batch.
    fn read_beacons(&mut self) -> BeaconRead {
        let mut buf = [0u8; MAX_BEACON_LEN];
        for _ in 0..BATCH {
            match self.beacon.recv_from(&mut buf) {
                Ok((len, src)) => {
                    self.stats.datagrams_in += 1;
                    // recv_from: len <= buf.len()
                    let datagram = &buf[..len];
                    // Our own beacon or hello from an address we do not know as
                    // ours: the address changed since the last check. Look now,
                    // before the node takes its own beacon for a peer's.
                    let now = Instant::now();
                    if self.node.is_own_datagram(datagram)
                        && self.node.local_ip() != Some(src.ip())
                        && self
                            .last_own_datagram_check
                            .is_none_or(|at| now.duration_since(at) >= OWN_DATAGRAM_CHECK_GAP)
                    {
                        self.last_own_datagram_check = Some(now);
                        self.check_address(now);
                    }
                    self.node.handle_beacon(Instant::now(), src.ip(), datagram);
                    self.drain_outputs();
                }
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => return BeaconRead::Drained,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => {
                    tracing::warn!(%err, "beacon receive failed");
                    return BeaconRead::Failed;
                }
            }
        }
        BeaconRead::More
    }

    /// Reads SUB messages until none is ready, a batch, or [`BUDGET`]. True if more
    /// may wait.
    fn read_messages(&mut self) -> bool {
        let start = Instant::now();
        for _ in 0..BATCH {
            if start.elapsed() >= BUDGET {
                return true;
            }
            let Some(frames) = self.zmq.recv() else {
                return false;
            };
            self.stats.zmq_in += 1;
            self.node.handle_message(Instant::now(), &frames);
            self.drain_outputs();
        }
        true
    }

    /// At most once a minute, a warning with how many inputs a keyed node refused
    /// as unauthenticated since the last one, if any.
    fn log_refusals(&mut self, now: Instant) {
        let refused = self.node.stats().refused_unauthenticated();
        let (logged, at) = self.refusals_logged;
        if refused > logged && now.duration_since(at) >= REFUSALS_LOG_GAP {
            tracing::warn!(
                refused = refused - logged,
                total = refused,
                "refused unauthenticated traffic (see `dkv stats`, drop_*)"
            );
            self.refusals_logged = (refused, now);
        }
    }

    /// Re-reads the wall clock for the node, re-checks the local address and tells
    /// the node about a change. (On a new address the node re-dials every peer, so
    /// SUB connections leave from it.)
    fn check_address(&mut self, now: Instant) {
        self.stats.address_checks += 1;
        self.log_refusals(now);
        self.node.handle_wall_clock(now, net::unix_ms_now());
        // Cannot overflow: the interval is at most a day
        // (Config::effective_address_check_interval).
        self.next_address_check = now + self.address_check_interval;
        let found = match self.bind {
            Some(ip) => Some(IpAddr::V4(ip)),
            None => match self.probe.local_ip(self.beacon_target) {
                Ok(ip) => ip.map(IpAddr::V4),
                Err(err) => {
                    // Out of descriptors or memory says nothing about the network:
                    // keep the state, count, and look again at the next check.
                    self.stats.address_check_errors += 1;
                    if self.stats.address_check_errors.is_power_of_two() {
                        tracing::warn!(%err, errors = self.stats.address_check_errors,
                            "address check failed; keeping the current state");
                    }
                    self.drain_outputs();
                    return;
                }
            },
        };
        let current = self.node.local_ip();
        match found {
            Some(ip) if current != Some(ip) => {
                self.stats.address_changes += 1;
                tracing::info!(%ip, previous = ?current, "net up");
                self.node.handle_net_up(now, ip);
            }
            None if current.is_some() => {
                self.stats.address_changes += 1;
                tracing::info!(previous = ?current, "net down: no local address");
                self.node.handle_net_down(now);
            }
            _ => {}
        }
        self.drain_outputs();
    }

    /// Carries out every output the node has queued, in order.
    fn drain_outputs(&mut self) {
        while let Some(output) = self.node.poll_output() {
            match output {
                Output::Publish(msg) => {
                    tracing::trace!(?msg, "publish");
                    self.zmq.publish(msg.encode(), &mut self.stats);
                }
                Output::PublishSealed(sealed) => {
                    tracing::trace!(msg = ?sealed.msg, "publish sealed");
                    self.zmq.publish(sealed.frames.to_vec(), &mut self.stats);
                }
                Output::Beacon(payload) => self.send_beacon(&payload),
                Output::Connect(peer) => {
                    tracing::info!(%peer, "peer up");
                    self.zmq.connect(peer, &mut self.stats);
                }
                Output::Disconnect(peer) => {
                    tracing::info!(%peer, "peer down");
                    self.zmq.disconnect(peer, &mut self.stats);
                }
                Output::GetDone(done) => {
                    if let Some(reply) = self.gets.remove(&done.id) {
                        // The asker may have given up; nothing to do then.
                        let _ = reply.send((done.value, done.version));
                    }
                }
                Output::Applied(applied) => {
                    for (_, watch) in &self.watches {
                        if watch.matches(&applied.key)
                            && !watch.push(WatchEvent::from_applied(&applied))
                        {
                            self.stats.watch_events_lost += 1;
                        }
                    }
                    self.persist.applied(applied);
                }
                // A forgotten tombstone changes no value: no watch hears of it.
                Output::Collected(key) => self.persist.collected(key),
            }
        }
        // After the outputs: a write is acknowledged after the changes it made.
        self.persist.flush();
    }

    /// Sends one beacon; only a failure that means the address or route is gone
    /// is net down for the node (running out of descriptors or buffers is not).
    fn send_beacon(&mut self, payload: &[u8]) {
        let target = SocketAddr::V4(self.beacon_target);
        let sent = match &self.beacon_sender {
            Some(sender) => sender.send_to(payload, target),
            None => self.beacon.send_to(payload, target),
        };
        match sent {
            Ok(_) => self.stats.beacons_sent += 1,
            Err(err) => {
                self.stats.beacon_send_errors += 1;
                if net::is_net_down_error(&err) {
                    tracing::info!(%err, "net down: beacon send failed");
                    self.node.handle_net_down(Instant::now());
                } else if crate::fds::is_resource_error(&err) {
                    if self.stats.beacon_send_errors.is_power_of_two() {
                        tracing::warn!(%err, "beacon send failed for lack of resources; \
                            not net down");
                    }
                } else {
                    tracing::warn!(%err, "beacon send failed");
                }
            }
        }
    }

    /// Shuts the node down: peers go down, pending gets complete, and published
    /// messages get a bounded time to leave before the sockets close.
    fn stop(&mut self) {
        self.node.shutdown(Instant::now());
        self.drain_outputs();
        self.persist.close();
        self.zmq.close(&mut self.stats);
        for (_, watch) in self.watches.drain(..) {
            watch.close();
        }
        tracing::debug!("node stopped");
    }
}
