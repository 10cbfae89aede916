//! The ZeroMQ side: one publishing socket on a random port and one SUB socket,
//! their readiness as ZeroMQ reports it, the send policy, and which dkv peers
//! subscribe to this node.
//!
//! # Who listens
//! The publishing socket is an XPUB, which to peers is a PUB like the prototype's,
//! but also reports the subscriptions its subscribers make. Every dkv node
//! subscribes `dkv2.to <its id>`, so this node knows exactly which dkv peers receive
//! its messages. A message addressed to a dkv peer that has not subscribed yet (it
//! has not heard this node's beacon, or its connection is still being made) would
//! be lost, costing the protocol a session timeout; instead it waits, in order, until
//! that peer subscribes, for at most a peer timeout (then it is dropped and counted).
//!
//! # Send policy: one subscriber never holds back the others
//! Every subscriber has its own queue in the PUB socket, `SNDHWM`
//! ([`Config::send_hwm`]) messages long. A subscriber that reads too slowly, or not
//! at all, fills only its own queue; from then on it misses messages (ZeroMQ drops
//! them for that queue alone) until it has read its queue down, while every other
//! subscriber goes on receiving at full speed. Nothing waits in a shared backlog.
//! What a dkv peer missed, anti-entropy repairs (periodic syncs, and a sync as soon
//! as a peer is heard again after a gap); a prototype peer has no anti-entropy and
//! keeps the loss, as between prototypes.
//!
//! No loss is silent: each message is first offered with `ZMQ_XPUB_NODROP` on,
//! which refuses it (`EAGAIN`) when a subscriber it is for has a full queue; it is
//! then counted in [`TransportStats::pub_overflows`] and sent again with drops
//! allowed, so that every other subscriber gets it. ZeroMQ then sets the full queue
//! aside until its reader catches up, so an overflow counts once per stall, not per
//! message the stalled subscriber misses.
//!
//! # Stalled subscribers are cut off
//! A subscriber whose host stops reading (a frozen laptop, a stopped process, a
//! hostile reader) leaves the TCP window at zero. The PUB socket sets
//! `ZMQ_TCP_MAXRT` ([`Config::stall_timeout`], default the peer timeout), which
//! libzmq applies to every accepted connection as `TCP_USER_TIMEOUT`: Linux aborts a
//! connection whose data (or zero-window probes) stay unacknowledged that long, and
//! libzmq then frees that subscriber's queue. When the stalled host resumes, its SUB
//! socket reconnects and anti-entropy brings it up to date. A slow reader that keeps
//! reading is never cut; it only misses messages.
//!
//! # Memory bound
//! Per subscriber, the PUB socket holds at most `send_hwm` messages (messages shared
//! by several subscribers are held once, reference-counted), each at most the
//! largest message the node builds (about [`Limits::max_message_bytes`]), plus the
//! kernel's TCP send buffer (`net.ipv4.tcp_wmem`, 4 MiB by default). Messages held
//! for dkv peers not subscribed yet are capped in bytes ([`Config::held_bytes`]) and
//! time (a peer timeout). When the node stops, its last messages get up to a peer
//! timeout (at most 2 s) to leave; what is still held then is dropped and counted.
//!
//! [`Limits::max_message_bytes`]: dkv_proto::Limits::max_message_bytes
//!
//! # Dead connections
//! Both sockets use TCP keepalive (probes after half a peer timeout of silence,
//! then every second), so a half-open TCP connection (a host that vanished, a
//! cable unplugged at the switch, a split switch) is closed, and re-opened by
//! ZeroMQ on the SUB side, instead of blackholing messages. ZMTP heartbeats are
//! off: in libzmq 4.3.4 they can abort the process when a paused connection fails
//! (`set_keepalive`), and they would not catch a stalled subscriber anyway (libzmq
//! queues its ping behind the data the subscriber does not read).

#![allow(unsafe_code)]

use crate::config::Config;
use crate::error::Error;
use crate::monitor::{self, event, Inbound, Monitor, Redials};
use crate::stats::TransportStats;
use bytes::Bytes;
use dkv_proto::wire::v2::TOPIC_TO;
use std::cell::Cell;
use std::collections::{HashSet, VecDeque};
use std::ffi::{c_int, c_void};
use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::time::{Duration, Instant};

extern "C" {
    // Provided by libzmq, which the `zmq` crate links. The crate has no setter
    // for ZMQ_XPUB_NODROP or ZMQ_TCP_MAXRT.
    fn zmq_setsockopt(
        socket: *mut c_void,
        option: c_int,
        value: *const c_void,
        len: usize,
    ) -> c_int;
}

/// `ZMQ_XPUB_NODROP` from zmq.h (libzmq 4.1 and later).
const ZMQ_XPUB_NODROP: c_int = 69;
/// `ZMQ_TCP_MAXRT` from zmq.h (libzmq 4.2 and later): `TCP_USER_TIMEOUT` in ms on
/// every TCP connection the socket makes or accepts afterwards.
const ZMQ_TCP_MAXRT: c_int = 80;

/// Sets an `int` socket option the `zmq` crate has no setter for.
fn set_int_option(socket: &mut zmq::Socket, option: c_int, value: c_int) -> Result<(), zmq::Error> {
    // SAFETY: `as_mut_ptr` is the live libzmq socket `socket` owns (borrowed
    // mutably, so no other call uses it meanwhile), and the option value is a valid
    // `c_int` of the size passed, as zmq_setsockopt(3) requires for the int options
    // used here; libzmq copies it before returning.
    let rc = unsafe {
        zmq_setsockopt(
            socket.as_mut_ptr(),
            option,
            (&value as *const c_int).cast(),
            std::mem::size_of::<c_int>(),
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        let errno = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
        Err(zmq::Error::from_raw(errno))
    }
}

/// The longest a closing node waits for its last messages to reach subscribers.
const CLOSE_LINGER_MAX: Duration = Duration::from_secs(2);

/// What a held message costs beyond its frames (queue entry, frame handles), for
/// the byte cap.
const HELD_OVERHEAD: usize = 64;

/// A duration as ZeroMQ's milliseconds, saturating at `i32::MAX`.
fn zmq_ms(d: Duration) -> i32 {
    i32::try_from(d.as_millis()).unwrap_or(i32::MAX)
}

/// TCP keepalive instead of ZMTP heartbeats: probes after half a peer timeout of
/// silence (at least 1 s, the kernel's unit), every second, so a connection whose
/// other end vanished (a host gone, a cable unplugged at the switch) is closed
/// within about half a peer timeout plus 2 s and, on the SUB side, re-opened by
/// ZeroMQ.
///
/// No ZMTP heartbeats: libzmq 4.3.4 aborts the whole process
/// (`Assertion failed: !_io_error`, stream_engine_base.cpp, upstream issues
/// #3937, #4364, #4767) when a connection whose input is paused (a full receive
/// queue: exactly a slow or just-resumed node) fails and then a heartbeat timer
/// fires or a buffered PING is answered. With no heartbeat interval on either side
/// no honest node sends a PING or arms that timer.
fn set_keepalive(socket: &zmq::Socket, config: &Config) -> Result<(), Error> {
    let idle = i32::try_from((config.timings.peer_timeout / 2).as_secs())
        .unwrap_or(i32::MAX)
        .max(1);
    socket
        .set_tcp_keepalive(1)
        .map_err(Error::zmq("set ZMQ_TCP_KEEPALIVE"))?;
    socket
        .set_tcp_keepalive_idle(idle)
        .map_err(Error::zmq("set ZMQ_TCP_KEEPALIVE_IDLE"))?;
    socket
        .set_tcp_keepalive_intvl(1)
        .map_err(Error::zmq("set ZMQ_TCP_KEEPALIVE_INTVL"))?;
    socket
        .set_tcp_keepalive_cnt(2)
        .map_err(Error::zmq("set ZMQ_TCP_KEEPALIVE_CNT"))
}

/// One received frame, still in ZeroMQ's buffer.
pub(crate) struct Frame(zmq::Message);

impl AsRef<[u8]> for Frame {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

/// A dkv node id, as its directed topic carries it.
type PeerId = [u8; 8];

/// A message held for a dkv peer not subscribed yet.
struct Held {
    at: Instant,
    peer: PeerId,
    frames: Vec<Bytes>,
    bytes: usize,
}

/// The node's two ZeroMQ sockets, and messages held for dkv peers not subscribed
/// yet.
pub(crate) struct ZmqIo {
    publisher: zmq::Socket,
    subscriber: zmq::Socket,
    /// dkv peers whose `dkv2.to <id>` subscription is live on the XPUB socket.
    subscribed: HashSet<PeerId>,
    /// Messages for dkv peers not subscribed yet, oldest first.
    held: VecDeque<Held>,
    /// Their bytes (frames plus [`HELD_OVERHEAD`] each).
    held_bytes: usize,
    /// At most this many held bytes.
    held_cap: usize,
    /// How long a message may be held.
    hold_limit: Duration,
    pub_port: u16,
    /// How long [`close`](Self::close) gives the last messages.
    close_linger: Duration,
    /// The XPUB socket's accepted and closed connections.
    pub_monitor: Monitor,
    /// The SUB socket's connections to peers.
    sub_monitor: Monitor,
    /// Inbound (subscriber) connections now.
    inbound: Inbound,
    /// Caps on them: in all, and from one IP.
    max_subscribers: usize,
    max_subscribers_per_ip: usize,
    /// SUB connections to re-dial.
    redials: Redials,
    /// Whether the last call on the SUB (XPUB) socket was a receive that found
    /// nothing: it processed the socket's pending commands and saw nothing to
    /// read, as [`settle`](Self::settle) would, so its descriptor signals the
    /// next change.
    sub_settled: Cell<bool>,
    pub_settled: Cell<bool>,
    // Dropped last: terminating the context waits for the sockets to close (SUB
    // at once, PUB within the linger `close` set).
    _context: zmq::Context,
}

impl ZmqIo {
    /// Binds the PUB socket to a random port on the configured interface and
    /// creates the SUB socket, not yet subscribed.
    pub(crate) fn new(config: &Config) -> Result<ZmqIo, Error> {
        let context = zmq::Context::new();
        let mut publisher = context
            .socket(zmq::XPUB)
            .map_err(Error::zmq("create the PUB socket"))?;
        publisher
            .set_linger(0)
            .map_err(Error::zmq("set PUB linger"))?;
        publisher
            .set_sndhwm(config.send_hwm)
            .map_err(Error::zmq("set PUB SNDHWM"))?;
        set_int_option(&mut publisher, ZMQ_XPUB_NODROP, 1)
            .map_err(Error::zmq("set ZMQ_XPUB_NODROP"))?;
        // Before bind: libzmq applies it to the connections it accepts.
        set_int_option(
            &mut publisher,
            ZMQ_TCP_MAXRT,
            zmq_ms(config.effective_stall_timeout()).max(1),
        )
        .map_err(Error::zmq("set ZMQ_TCP_MAXRT"))?;
        // Subscriptions are taken off the pipe at once; with no limit the
        // connection's input never pauses (see `set_keepalive`).
        publisher
            .set_rcvhwm(0)
            .map_err(Error::zmq("set PUB RCVHWM"))?;
        set_keepalive(&publisher, config)?;
        let pub_monitor = Monitor::new(
            &context,
            &publisher,
            "dkv-monitor-pub",
            event::ACCEPTED | event::ACCEPT_FAILED | event::DISCONNECTED,
        )?;
        let endpoint = match config.bind {
            Some(ip) => format!("tcp://{ip}:*"),
            None => "tcp://*:*".to_string(),
        };
        publisher
            .bind(&endpoint)
            .map_err(Error::zmq("bind the PUB socket"))?;
        let bound = publisher
            .get_last_endpoint()
            .map_err(Error::zmq("read the PUB endpoint"))?
            .map_err(|_| Error::Zmq {
                action: "read the PUB endpoint",
                source: zmq::Error::EINVAL,
            })?;
        let pub_port = bound
            .rsplit(':')
            .next()
            .and_then(|port| port.parse::<u16>().ok())
            .ok_or(Error::Zmq {
                action: "parse the PUB endpoint",
                source: zmq::Error::EINVAL,
            })?;
        let subscriber = context
            .socket(zmq::SUB)
            .map_err(Error::zmq("create the SUB socket"))?;
        subscriber
            .set_linger(0)
            .map_err(Error::zmq("set SUB linger"))?;
        subscriber
            .set_rcvhwm(config.recv_hwm)
            .map_err(Error::zmq("set SUB RCVHWM"))?;
        set_keepalive(&subscriber, config)?;
        // A frame over the limit is refused at its size header, before anything is
        // allocated; the connection then ends and is re-dialed (`monitor`).
        subscriber
            .set_maxmsgsize(i64::try_from(config.limits.max_message_bytes).unwrap_or(i64::MAX))
            .map_err(Error::zmq("set SUB MAXMSGSIZE"))?;
        let sub_monitor = Monitor::new(
            &context,
            &subscriber,
            "dkv-monitor-sub",
            event::CONNECTED | event::CONNECT_RETRIED | event::DISCONNECTED,
        )?;
        Ok(ZmqIo {
            publisher,
            subscriber,
            subscribed: HashSet::new(),
            held: VecDeque::new(),
            held_bytes: 0,
            held_cap: config.held_bytes,
            hold_limit: config.timings.peer_timeout,
            pub_port,
            close_linger: config.timings.peer_timeout.min(CLOSE_LINGER_MAX),
            pub_monitor,
            sub_monitor,
            inbound: Inbound::default(),
            max_subscribers: config.effective_max_subscribers(),
            max_subscribers_per_ip: config.max_subscribers_per_ip,
            redials: Redials::default(),
            sub_settled: Cell::new(false),
            pub_settled: Cell::new(false),
            _context: context,
        })
    }

    /// Whether the SUB socket's last call was a receive that found nothing, so
    /// its descriptor signals the next message: reading it now would find
    /// nothing either.
    pub(crate) fn sub_settled(&self) -> bool {
        self.sub_settled.get()
    }

    /// The same for the PUB socket and its subscription changes.
    pub(crate) fn pub_settled(&self) -> bool {
        self.pub_settled.get()
    }

    /// The port the PUB socket is bound to.
    pub(crate) fn pub_port(&self) -> u16 {
        self.pub_port
    }

    /// Adds the SUB socket's prefix subscriptions.
    pub(crate) fn subscribe(&self, prefixes: &[Bytes]) -> Result<(), Error> {
        for prefix in prefixes {
            self.subscriber
                .set_subscribe(prefix)
                .map_err(Error::zmq("subscribe"))?;
        }
        Ok(())
    }

    /// The descriptors ZeroMQ signals readiness changes on: PUB, SUB, and their
    /// monitors.
    pub(crate) fn fds(&self) -> Result<[RawFd; 4], Error> {
        let publisher = self.publisher.get_fd().map_err(Error::zmq("get PUB fd"))?;
        let subscriber = self.subscriber.get_fd().map_err(Error::zmq("get SUB fd"))?;
        Ok([
            publisher,
            subscriber,
            self.pub_monitor.fd()?,
            self.sub_monitor.fd()?,
        ])
    }

    /// Reads up to `batch` events of each monitor: inbound connections over the
    /// caps are cut, and SUB connections that ended are scheduled for a re-dial.
    /// True if more may wait. Settles both monitors (as [`settle`](Self::settle)
    /// does the sockets): nothing else touches them, so until this is called
    /// again their descriptors signal their next event.
    pub(crate) fn read_monitors(&mut self, batch: usize, stats: &mut TransportStats) -> bool {
        let mut more = false;
        for i in 0..=batch {
            let Some(ev) = self.pub_monitor.next() else {
                break;
            };
            more = i == batch;
            self.on_pub_event(&ev, stats);
        }
        let now = Instant::now();
        for i in 0..=batch {
            let Some(ev) = self.sub_monitor.next() else {
                break;
            };
            more |= i == batch;
            self.redials.on_event(now, &ev);
        }
        more | self.pub_monitor.ready() | self.sub_monitor.ready()
    }

    fn on_pub_event(&mut self, ev: &monitor::Event, stats: &mut TransportStats) {
        let fd = ev.value as RawFd;
        match ev.kind {
            event::ACCEPTED => {
                stats.sub_in_accepted += 1;
                let Some(peer) = monitor::peer_of(fd) else {
                    return;
                };
                let within = self.inbound.accepted(
                    fd,
                    peer,
                    self.max_subscribers,
                    self.max_subscribers_per_ip,
                );
                if !within && monitor::cut(fd, peer) {
                    stats.sub_in_cut_cap += 1;
                    if stats.sub_in_cut_cap.is_power_of_two() {
                        tracing::warn!(%peer, cut = stats.sub_in_cut_cap,
                            "too many subscriber connections: cut one");
                    }
                }
            }
            event::DISCONNECTED if self.inbound.closed(fd) => stats.sub_in_closed += 1,
            event::ACCEPT_FAILED => {
                stats.accept_failed += 1;
                if stats.accept_failed.is_power_of_two() {
                    let err = std::io::Error::from_raw_os_error(ev.value as i32);
                    tracing::warn!(%err, failed = stats.accept_failed,
                        "the PUB socket could not accept a connection");
                }
            }
            _ => {}
        }
        stats.sub_in_open = self.inbound.len() as u64;
    }

    /// Re-dials the SUB connections whose re-dial is due, if `live` says their peer
    /// is still up (module `monitor`).
    pub(crate) fn redial(
        &mut self,
        now: Instant,
        live: impl Fn(SocketAddr) -> bool,
        stats: &mut TransportStats,
    ) {
        for addr in self.redials.due(now) {
            if !live(addr) {
                self.redials.forget(addr);
                continue;
            }
            let endpoint = format!("tcp://{addr}");
            self.sub_settled.set(false);
            // ENOENT: libzmq already forgot the endpoint; connecting is what counts.
            let _ = self.subscriber.disconnect(&endpoint);
            match self.subscriber.connect(&endpoint) {
                Ok(()) => {
                    stats.sub_redials += 1;
                    tracing::info!(peer = %addr, "re-dialed a peer whose connection ended");
                }
                Err(err) => {
                    stats.sub_errors += 1;
                    tracing::warn!(peer = %addr, %err, "SUB re-dial failed");
                }
            }
        }
    }

    /// When the next re-dial is due, if any.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.redials.next_due()
    }

    /// Connects the SUB socket to a peer's PUB endpoint.
    pub(crate) fn connect(&self, peer: SocketAddr, stats: &mut TransportStats) {
        self.sub_settled.set(false);
        match self.subscriber.connect(&format!("tcp://{peer}")) {
            Ok(()) => stats.sub_connects += 1,
            Err(err) => {
                stats.sub_errors += 1;
                tracing::warn!(%peer, %err, "SUB connect failed");
            }
        }
    }

    /// Disconnects the SUB socket from a peer's PUB endpoint.
    pub(crate) fn disconnect(&mut self, peer: SocketAddr, stats: &mut TransportStats) {
        self.redials.forget(peer);
        self.sub_settled.set(false);
        match self.subscriber.disconnect(&format!("tcp://{peer}")) {
            Ok(()) => stats.sub_disconnects += 1,
            Err(err) => {
                stats.sub_errors += 1;
                tracing::warn!(%peer, %err, "SUB disconnect failed");
            }
        }
    }

    /// Publishes one multipart message under the send policy (module docs); one for
    /// a dkv peer not subscribed yet is held until it is.
    pub(crate) fn publish(&mut self, frames: Vec<Bytes>, stats: &mut TransportStats) {
        if let Some(peer) = directed_to(&frames) {
            if !self.subscribed.contains(&peer) {
                self.hold(peer, frames, stats);
                return;
            }
        }
        self.send(&frames, stats);
    }

    /// Holds a message for `peer`, dropping the oldest held ones past the byte cap.
    fn hold(&mut self, peer: PeerId, frames: Vec<Bytes>, stats: &mut TransportStats) {
        stats.pub_held += 1;
        let bytes = frames.iter().map(Bytes::len).sum::<usize>() + HELD_OVERHEAD;
        self.held_bytes += bytes;
        self.held.push_back(Held {
            at: Instant::now(),
            peer,
            frames,
            bytes,
        });
        while self.held_bytes > self.held_cap {
            let Some(old) = self.held.pop_front() else {
                break;
            };
            self.held_bytes -= old.bytes;
            stats.pub_held_dropped += 1;
        }
        self.held_gauges(stats);
    }

    fn held_gauges(&self, stats: &mut TransportStats) {
        stats.pub_holding = self.held.len() as u64;
        stats.pub_holding_bytes = self.held_bytes as u64;
    }

    /// Reads the subscription changes the XPUB socket reports, up to `batch`; a dkv
    /// peer's new subscription releases the messages held for it, in order. Each
    /// dkv peer's change is then told to `changed` (true: subscribed). True if more
    /// may wait.
    pub(crate) fn read_subscriptions(
        &mut self,
        batch: usize,
        stats: &mut TransportStats,
        mut changed: impl FnMut(PeerId, bool),
    ) -> bool {
        self.pub_settled.set(false);
        for _ in 0..batch {
            let event = match self.publisher.recv_bytes(zmq::DONTWAIT) {
                Ok(event) => event,
                Err(zmq::Error::EAGAIN) => {
                    self.pub_settled.set(true);
                    return false;
                }
                Err(err) => {
                    tracing::warn!(%err, "XPUB receive failed");
                    return false;
                }
            };
            // A subscription change: 1 (subscribe) or 0 (unsubscribe), then the topic.
            let Some((&kind, topic)) = event.split_first() else {
                continue;
            };
            let Some(peer) = peer_of_topic(topic) else {
                continue;
            };
            if kind == 1 {
                stats.subscribes += 1;
                self.subscribed.insert(peer);
                self.release(peer, stats);
                changed(peer, true);
            } else if kind == 0 {
                stats.unsubscribes += 1;
                self.subscribed.remove(&peer);
                changed(peer, false);
            }
        }
        true
    }

    /// Publishes, in order, every message held for `peer`.
    fn release(&mut self, peer: PeerId, stats: &mut TransportStats) {
        if !self.held.iter().any(|held| held.peer == peer) {
            return;
        }
        let (mine, others): (VecDeque<_>, VecDeque<_>) = std::mem::take(&mut self.held)
            .into_iter()
            .partition(|held| held.peer == peer);
        self.held = others;
        for held in mine {
            self.held_bytes -= held.bytes;
            self.send(&held.frames, stats);
        }
        self.held_gauges(stats);
    }

    /// Drops held messages older than the hold limit.
    fn expire_held(&mut self, stats: &mut TransportStats) {
        let now = Instant::now();
        while let Some(old) = self.held.front() {
            if now.saturating_duration_since(old.at) <= self.hold_limit {
                break;
            }
            self.held_bytes -= old.bytes;
            self.held.pop_front();
            stats.pub_held_dropped += 1;
        }
        self.held_gauges(stats);
    }

    /// Sends one message to every subscriber whose queue has room, never waiting;
    /// a subscriber with a full queue misses it, counted as an overflow (module
    /// docs).
    fn send(&mut self, frames: &[Bytes], stats: &mut TransportStats) {
        self.pub_settled.set(false);
        let parts = || frames.iter().map(|frame| &frame[..]);
        match self.publisher.send_multipart(parts(), zmq::DONTWAIT) {
            Ok(()) => {
                stats.zmq_out += 1;
                return;
            }
            Err(zmq::Error::EAGAIN) => {}
            Err(err) => {
                stats.pub_send_errors += 1;
                tracing::warn!(%err, "PUB send failed; message lost");
                return;
            }
        }
        // A subscriber this message is for has a full queue: send it to the others.
        // (Refused at its first frame, so nothing of it left yet.)
        stats.pub_overflows += 1;
        if stats.pub_overflows.is_power_of_two() {
            tracing::warn!(
                overflows = stats.pub_overflows,
                "a subscriber's send queue is full: it misses messages until it catches up"
            );
        }
        let lossy = set_int_option(&mut self.publisher, ZMQ_XPUB_NODROP, 0);
        let sent = self.publisher.send_multipart(parts(), zmq::DONTWAIT);
        let strict = set_int_option(&mut self.publisher, ZMQ_XPUB_NODROP, 1);
        match (lossy.and(strict), sent) {
            (Ok(()), Ok(())) => stats.zmq_out += 1,
            (Err(err), _) | (_, Err(err)) => {
                stats.pub_send_errors += 1;
                tracing::warn!(%err, "PUB send failed; message lost");
            }
        }
    }

    /// Receives one multipart message if one is ready, its frames left in
    /// ZeroMQ's buffers (no copy). A non-blocking receive that finds nothing
    /// processes ZeroMQ's pending commands itself (unthrottled) before it reports
    /// `EAGAIN`, so no `ZMQ_EVENTS` read is needed per message;
    /// [`settle`](Self::settle) re-reads it once before the loop sleeps if
    /// another call came after that.
    pub(crate) fn recv(&self) -> Option<Vec<Frame>> {
        self.sub_settled.set(false);
        let mut frames = Vec::new();
        loop {
            match self.subscriber.recv_msg(zmq::DONTWAIT) {
                Ok(frame) => frames.push(Frame(frame)),
                Err(zmq::Error::EAGAIN) if frames.is_empty() => {
                    self.sub_settled.set(true);
                    return None;
                }
                Err(err) => {
                    tracing::warn!(%err, "SUB receive failed");
                    return None;
                }
            }
            // The rest of a multipart message is always there once its first
            // frame is.
            match self.subscriber.get_rcvmore() {
                Ok(true) => {}
                Ok(false) => return Some(frames),
                Err(err) => {
                    tracing::warn!(%err, "SUB receive failed");
                    return None;
                }
            }
        }
    }

    /// Makes it safe to sleep until a descriptor signals; true if a socket holds
    /// something to read, so the loop must not sleep.
    ///
    /// Reading `ZMQ_EVENTS` processes each socket's pending commands, after which
    /// its descriptor signals again on the next one. `POLLIN` is the truth for the
    /// SUB socket (messages) and the XPUB socket (subscription changes). The PUB
    /// side's `POLLOUT` is never waited for: sends never wait. A socket whose
    /// last call was a receive that found nothing is settled already and not read
    /// again. (The monitors are settled by [`read_monitors`](Self::read_monitors).)
    pub(crate) fn settle(&mut self, stats: &mut TransportStats) -> bool {
        self.expire_held(stats);
        let settle = |socket: &zmq::Socket, settled: &Cell<bool>| {
            let ready = !settled.get() && has_event(socket, zmq::POLLIN);
            settled.set(!ready);
            ready
        };
        let sub_ready = settle(&self.subscriber, &self.sub_settled);
        let pub_ready = settle(&self.publisher, &self.pub_settled);
        sub_ready || pub_ready
    }

    /// Before the sockets close: gives the messages ZeroMQ still queues up to a
    /// peer timeout (at most 2 s) to reach subscribers, so a set made just before
    /// shutdown is not thrown away; held messages are dropped and counted. A
    /// subscriber that takes nothing in that time is the only thing that makes
    /// closing wait.
    pub(crate) fn close(&mut self, stats: &mut TransportStats) {
        stats.pub_held_dropped += self.held.len() as u64;
        self.held.clear();
        self.held_bytes = 0;
        self.held_gauges(stats);
        if let Err(err) = self.publisher.set_linger(zmq_ms(self.close_linger)) {
            tracing::warn!(%err, "cannot set PUB linger; queued messages may be lost");
        }
    }
}

/// The dkv peer a message is addressed to (topic `dkv2.to <id>`), if any.
fn directed_to(frames: &[Bytes]) -> Option<PeerId> {
    peer_of_topic(frames.first()?)
}

/// The id in a `dkv2.to <id>` topic.
fn peer_of_topic(topic: &[u8]) -> Option<PeerId> {
    topic.strip_prefix(TOPIC_TO)?.try_into().ok()
}

/// Reads `ZMQ_EVENTS` (processing the socket's pending commands) and tells whether
/// it holds `event`; an error reads as no event.
fn has_event(socket: &zmq::Socket, event: zmq::PollEvents) -> bool {
    socket
        .get_events()
        .map(|events| events.contains(event))
        .unwrap_or(false)
}
