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
//! # Send policy
//! A plain PUB socket silently drops messages for a subscriber whose queue is full.
//! dkv instead sets `ZMQ_XPUB_NODROP` with a large `SNDHWM`, and sends with
//! `ZMQ_DONTWAIT`: a full socket answers `EAGAIN`. The message then waits, in
//! order, in a bounded local backlog that every loop turn tries to flush; the PUB
//! descriptor wakes the loop when a full pipe has room again (`ZMQ_EVENTS` is no
//! guide here: PUB always reports `POLLOUT`). Only when that backlog is full too is a message dropped,
//! the oldest first, and counted ([`TransportStats::pub_dropped`]). Nothing is lost
//! silently; the price is that one subscriber that stops reading for
//! `SNDHWM` messages holds everyone's messages in the backlog until its peer times
//! out and disconnects. When the node stops, its last messages get up to a peer
//! timeout (at most 2 s) to leave; what is still held then is dropped and counted.
//!
//! # Dead connections
//! Both sockets send ZMTP heartbeats every beacon interval and drop a connection
//! that leaves one unanswered for half a peer timeout, so a half-open TCP
//! connection (a host that vanished, a cable unplugged at the switch, a split
//! switch) is closed and re-opened by ZeroMQ instead of blackholing messages, is
//! gone before its peer is declared down, and never holds the PUB backlog for long.

#![allow(unsafe_code)]

use crate::config::Config;
use crate::error::Error;
use crate::stats::TransportStats;
use bytes::Bytes;
use dkv_proto::wire::v2::TOPIC_TO;
use std::collections::{HashSet, VecDeque};
use std::ffi::{c_int, c_void};
use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::time::{Duration, Instant};

extern "C" {
    // Provided by libzmq, which the `zmq` crate links. The crate has no setter
    // for ZMQ_XPUB_NODROP.
    fn zmq_setsockopt(
        socket: *mut c_void,
        option: c_int,
        value: *const c_void,
        len: usize,
    ) -> c_int;
}

/// `ZMQ_XPUB_NODROP` from zmq.h (libzmq 4.1 and later; applies to PUB too).
const ZMQ_XPUB_NODROP: c_int = 69;

fn set_xpub_nodrop(socket: &mut zmq::Socket) -> Result<(), zmq::Error> {
    let value: c_int = 1;
    // SAFETY: `as_mut_ptr` is the live libzmq socket `socket` owns, and the option
    // value is a valid `c_int` of the size passed, as zmq_setsockopt(3) requires
    // for ZMQ_XPUB_NODROP; libzmq copies it before returning.
    let rc = unsafe {
        zmq_setsockopt(
            socket.as_mut_ptr(),
            ZMQ_XPUB_NODROP,
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

/// A duration as ZeroMQ's milliseconds, saturating at `i32::MAX`.
fn zmq_ms(d: Duration) -> i32 {
    i32::try_from(d.as_millis()).unwrap_or(i32::MAX)
}

/// Heartbeats every beacon interval; a connection silent for half a peer timeout
/// after a heartbeat is dropped (and, on the SUB side, re-opened by ZeroMQ). So a
/// connection cut by a partition is gone before its peer is declared down: when
/// the peer comes back, its new subscription is reported afresh, and nothing is
/// sent into the dead connection meanwhile.
fn set_heartbeats(socket: &zmq::Socket, config: &Config) -> Result<(), Error> {
    let ms = |d: Duration| zmq_ms(d).max(1);
    socket
        .set_heartbeat_ivl(ms(config.timings.beacon_interval))
        .map_err(Error::zmq("set ZMQ_HEARTBEAT_IVL"))?;
    socket
        .set_heartbeat_timeout(ms(config.timings.peer_timeout / 2))
        .map_err(Error::zmq("set ZMQ_HEARTBEAT_TIMEOUT"))
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

/// The node's two ZeroMQ sockets, the PUB backlog, and messages held for dkv peers
/// not subscribed yet.
pub(crate) struct ZmqIo {
    publisher: zmq::Socket,
    subscriber: zmq::Socket,
    backlog: VecDeque<Vec<Bytes>>,
    backlog_cap: usize,
    /// dkv peers whose `dkv2.to <id>` subscription is live on the XPUB socket.
    subscribed: HashSet<PeerId>,
    /// Messages for dkv peers not subscribed yet, oldest first, with when held.
    held: VecDeque<(Instant, PeerId, Vec<Bytes>)>,
    /// How long a message may be held.
    hold_limit: Duration,
    pub_port: u16,
    /// How long [`close`](Self::close) gives the last messages.
    close_linger: Duration,
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
        set_xpub_nodrop(&mut publisher).map_err(Error::zmq("set ZMQ_XPUB_NODROP"))?;
        set_heartbeats(&publisher, config)?;
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
        set_heartbeats(&subscriber, config)?;
        Ok(ZmqIo {
            publisher,
            subscriber,
            backlog: VecDeque::new(),
            backlog_cap: config.send_backlog,
            subscribed: HashSet::new(),
            held: VecDeque::new(),
            hold_limit: config.timings.peer_timeout,
            pub_port,
            close_linger: config.timings.peer_timeout.min(CLOSE_LINGER_MAX),
            _context: context,
        })
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

    /// The descriptors ZeroMQ signals readiness changes on (PUB, SUB).
    pub(crate) fn fds(&self) -> Result<(RawFd, RawFd), Error> {
        let publisher = self.publisher.get_fd().map_err(Error::zmq("get PUB fd"))?;
        let subscriber = self.subscriber.get_fd().map_err(Error::zmq("get SUB fd"))?;
        Ok((publisher, subscriber))
    }

    /// Connects the SUB socket to a peer's PUB endpoint.
    pub(crate) fn connect(&self, peer: SocketAddr, stats: &mut TransportStats) {
        match self.subscriber.connect(&format!("tcp://{peer}")) {
            Ok(()) => stats.sub_connects += 1,
            Err(err) => {
                stats.sub_errors += 1;
                tracing::warn!(%peer, %err, "SUB connect failed");
            }
        }
    }

    /// Disconnects the SUB socket from a peer's PUB endpoint.
    pub(crate) fn disconnect(&self, peer: SocketAddr, stats: &mut TransportStats) {
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
                stats.pub_held += 1;
                self.held.push_back((Instant::now(), peer, frames));
                while self.held.len() > self.backlog_cap {
                    self.held.pop_front();
                    stats.pub_held_dropped += 1;
                }
                stats.pub_holding = self.held.len() as u64;
                return;
            }
        }
        self.send_or_backlog(frames, stats);
    }

    fn send_or_backlog(&mut self, frames: Vec<Bytes>, stats: &mut TransportStats) {
        self.flush(stats);
        if self.backlog.is_empty() && self.try_send(&frames, stats) {
            return;
        }
        stats.pub_backlogged += 1;
        self.backlog.push_back(frames);
        while self.backlog.len() > self.backlog_cap {
            self.backlog.pop_front();
            stats.pub_dropped += 1;
        }
        stats.pub_backlog = self.backlog.len() as u64;
    }

    /// Reads the subscription changes the XPUB socket reports, up to `batch`; a dkv
    /// peer's new subscription releases the messages held for it, in order. True if
    /// more may wait.
    pub(crate) fn read_subscriptions(&mut self, batch: usize, stats: &mut TransportStats) -> bool {
        for _ in 0..batch {
            let event = match self.publisher.recv_bytes(zmq::DONTWAIT) {
                Ok(event) => event,
                Err(zmq::Error::EAGAIN) => return false,
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
            } else if kind == 0 {
                stats.unsubscribes += 1;
                self.subscribed.remove(&peer);
            }
        }
        true
    }

    /// Publishes, in order, every message held for `peer`.
    fn release(&mut self, peer: PeerId, stats: &mut TransportStats) {
        if !self.held.iter().any(|(_, p, _)| *p == peer) {
            return;
        }
        let (mine, others): (VecDeque<_>, VecDeque<_>) = std::mem::take(&mut self.held)
            .into_iter()
            .partition(|(_, p, _)| *p == peer);
        self.held = others;
        stats.pub_holding = self.held.len() as u64;
        for (_, _, frames) in mine {
            self.send_or_backlog(frames, stats);
        }
    }

    /// Drops held messages older than the hold limit.
    fn expire_held(&mut self, stats: &mut TransportStats) {
        let now = Instant::now();
        while self
            .held
            .front()
            .is_some_and(|(at, _, _)| now.saturating_duration_since(*at) > self.hold_limit)
        {
            self.held.pop_front();
            stats.pub_held_dropped += 1;
        }
        stats.pub_holding = self.held.len() as u64;
    }

    /// Sends backlogged messages, in order, while the PUB socket takes them.
    pub(crate) fn flush(&mut self, stats: &mut TransportStats) {
        while let Some(frames) = self.backlog.front() {
            if !self.try_send(frames, stats) {
                break;
            }
            self.backlog.pop_front();
        }
        stats.pub_backlog = self.backlog.len() as u64;
    }

    /// One non-blocking send. False only when the socket is full (`EAGAIN`): the
    /// message must wait. True when it left, or was lost to an error (counted).
    fn try_send(&self, frames: &[Bytes], stats: &mut TransportStats) -> bool {
        let frames = frames.iter().map(|frame| &frame[..]);
        match self.publisher.send_multipart(frames, zmq::DONTWAIT) {
            Ok(()) => {
                stats.zmq_out += 1;
                true
            }
            Err(zmq::Error::EAGAIN) => false,
            Err(err) => {
                stats.pub_send_errors += 1;
                tracing::warn!(%err, "PUB send failed; message lost");
                true
            }
        }
    }

    /// Receives one multipart message if one is ready, its frames left in
    /// ZeroMQ's buffers (no copy). A non-blocking receive that finds nothing
    /// processes ZeroMQ's pending commands itself (unthrottled) before it reports
    /// `EAGAIN`, so no `ZMQ_EVENTS` read is needed per message;
    /// [`settle`](Self::settle) re-reads it once before the loop sleeps.
    pub(crate) fn recv(&self) -> Option<Vec<Frame>> {
        let mut frames = Vec::new();
        loop {
            match self.subscriber.recv_msg(zmq::DONTWAIT) {
                Ok(frame) => frames.push(Frame(frame)),
                Err(zmq::Error::EAGAIN) if frames.is_empty() => return None,
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

    /// Makes it safe to sleep until a descriptor signals; true if the SUB socket
    /// holds a message, so the loop must not sleep.
    ///
    /// Reading `ZMQ_EVENTS` processes each socket's pending commands, after which
    /// its descriptor signals again on the next one. For the SUB socket `POLLIN`
    /// is the truth. For the PUB socket it is not: PUB always reports `POLLOUT`,
    /// even while `ZMQ_XPUB_NODROP` refuses every send, so trusting it would spin
    /// the loop for as long as a subscriber is stalled. Instead the backlog is
    /// flushed: a send that still meets `EAGAIN` comes after the commands were
    /// processed, so the pipe's "room again" command arrives later and signals
    /// the descriptor.
    ///
    /// The XPUB socket's `POLLIN` (subscription changes to read) is the truth too.
    pub(crate) fn settle(&mut self, stats: &mut TransportStats) -> bool {
        self.expire_held(stats);
        let sub_ready = has_event(&self.subscriber, zmq::POLLIN);
        let pub_ready = has_event(&self.publisher, zmq::POLLIN); // processes its commands
        self.flush(stats);
        sub_ready || pub_ready
    }

    /// Before the sockets close: gives the backlog and the messages ZeroMQ still
    /// queues up to a peer timeout (at most 2 s) to reach subscribers, so a set
    /// made just before shutdown is not thrown away. A subscriber that takes
    /// nothing in that time is the only thing that makes closing wait.
    pub(crate) fn close(&mut self, stats: &mut TransportStats) {
        let deadline = Instant::now() + self.close_linger; // at most 2 s: no overflow
        loop {
            self.flush(stats);
            if self.backlog.is_empty() || Instant::now() >= deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        stats.pub_dropped += self.backlog.len() as u64;
        self.backlog.clear();
        stats.pub_backlog = 0;
        stats.pub_held_dropped += self.held.len() as u64;
        self.held.clear();
        stats.pub_holding = 0;
        let left = deadline.saturating_duration_since(Instant::now());
        if let Err(err) = self.publisher.set_linger(zmq_ms(left)) {
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
