//! Bootstrap from prototype peers, which speak nothing newer: after net up, list
//! their keys and fetch the ones not held with a bounded window of questions in
//! flight, then settle. (dkv peers are caught up with by reconciliation instead.)

use crate::config::{later, Timings};
use crate::limits::Limits;
use crate::wire::{Message, NodeId};
use std::collections::{BTreeSet, VecDeque};
use std::time::Instant;

/// Where a node's bootstrap stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BootstrapPhase {
    /// Never started, or abandoned because the net went down.
    Idle,
    /// Net came up; waiting the bootstrap delay so peers can be found.
    Waiting,
    /// Catching up: reconciling with every dkv peer found, and fetching the keys of
    /// prototype peers.
    Fetching,
    /// Every listed prototype key was fetched or given up; waiting for late list
    /// answers.
    Settling,
    /// Caught up with every peer found during the delay.
    Done,
}

/// A snapshot of the current bootstrap, for operators and tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BootstrapProgress {
    /// The phase.
    pub phase: BootstrapPhase,
    /// Distinct keys listed by prototype peers in this bootstrap.
    pub listed: usize,
    /// Listed keys not yet asked for.
    pub queued: usize,
    /// Questions awaiting an answer.
    pub in_flight: usize,
}

/// Counters of the prototype bootstrap.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct BootstrapCounters {
    pub(crate) keys_listed: u64,
    pub(crate) keys_requested: u64,
    pub(crate) keys_received: u64,
    pub(crate) keys_unanswered: u64,
    pub(crate) keys_over_limit: u64,
    pub(crate) abandoned: u64,
}

#[derive(Debug)]
enum Phase {
    Idle,
    Waiting { list_at: Instant },
    Fetching,
    Settling { done_at: Instant },
    Done,
}

/// The prototype-facing bootstrap: `list`, then pipelined `question`s.
#[derive(Debug)]
pub(crate) struct Bootstrap {
    own: NodeId,
    timings: Timings,
    phase: Phase,
    listed: BTreeSet<String>,
    queued: VecDeque<String>,
    in_flight: BTreeSet<String>,
    /// Question deadlines in send order; entries for answered keys are skipped.
    deadlines: VecDeque<(Instant, String)>,
    /// Keys one bootstrap accepts from list answers, in all.
    max_keys: usize,
    /// Questions unanswered in a row after which the rest is given up.
    max_unanswered: usize,
    /// Questions unanswered in a row so far.
    unanswered_run: usize,
    pub(crate) counters: BootstrapCounters,
}

impl Bootstrap {
    pub(crate) fn new(own: NodeId, timings: &Timings, limits: &Limits) -> Bootstrap {
        Bootstrap {
            own,
            timings: timings.clone(),
            phase: Phase::Idle,
            listed: BTreeSet::new(),
            queued: VecDeque::new(),
            in_flight: BTreeSet::new(),
            deadlines: VecDeque::new(),
            max_keys: limits.bootstrap_max_keys,
            max_unanswered: limits.bootstrap_max_unanswered,
            unanswered_run: 0,
            counters: BootstrapCounters::default(),
        }
    }

    /// Starts afresh: anything a previous bootstrap had is forgotten.
    pub(crate) fn start(&mut self, now: Instant) {
        self.abandon();
        self.phase = Phase::Waiting {
            list_at: later(now, self.timings.bootstrap_delay),
        };
    }

    pub(crate) fn abandon(&mut self) {
        self.phase = Phase::Idle;
        self.listed.clear();
        self.queued.clear();
        self.in_flight.clear();
        self.deadlines.clear();
        self.unanswered_run = 0;
    }

    pub(crate) fn progress(&self) -> BootstrapProgress {
        BootstrapProgress {
            phase: match self.phase {
                Phase::Idle => BootstrapPhase::Idle,
                Phase::Waiting { .. } => BootstrapPhase::Waiting,
                Phase::Fetching => BootstrapPhase::Fetching,
                Phase::Settling { .. } => BootstrapPhase::Settling,
                Phase::Done => BootstrapPhase::Done,
            },
            listed: self.listed.len(),
            queued: self.queued.len(),
            in_flight: self.in_flight.len(),
        }
    }

    /// Whether this bootstrap is under way (list answers still count).
    pub(crate) fn running(&self) -> bool {
        !matches!(self.phase, Phase::Idle | Phase::Done)
    }

    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        match self.phase {
            Phase::Waiting { list_at } => Some(list_at),
            Phase::Fetching => self.deadlines.front().map(|(at, _)| *at),
            Phase::Settling { done_at } => Some(done_at),
            Phase::Idle | Phase::Done => None,
        }
    }

    /// Queues the listed keys not seen before in this bootstrap, except those
    /// `held` says are held already, up to `max_keys` in this bootstrap; the rest
    /// are counted and left to later writes.
    pub(crate) fn on_list_answer(
        &mut self,
        now: Instant,
        keys: Vec<String>,
        held: impl Fn(&str) -> bool,
    ) -> Vec<Message> {
        if !self.running() {
            return Vec::new();
        }
        for key in keys {
            if self.listed.len() >= self.max_keys {
                if !self.listed.contains(&key) && !held(&key) {
                    self.counters.keys_over_limit += 1;
                }
                continue;
            }
            if !held(&key) && self.listed.insert(key.clone()) {
                self.counters.keys_listed += 1;
                self.queued.push_back(key);
            }
        }
        if matches!(self.phase, Phase::Settling { .. }) && !self.queued.is_empty() {
            self.phase = Phase::Fetching;
        }
        self.step(now)
    }

    /// An entry for `key` arrived: its question, if any, is answered.
    pub(crate) fn on_stored(&mut self, now: Instant, key: &str) -> Vec<Message> {
        if !self.in_flight.remove(key) {
            return Vec::new();
        }
        self.counters.keys_received += 1;
        self.unanswered_run = 0;
        self.drop_stale_deadlines();
        self.step(now)
    }

    /// Fires what is due. `prototypes` tells whether any live peer is a prototype
    /// node: only then is `list` published; without, this part is done at once.
    pub(crate) fn on_timeout(&mut self, now: Instant, prototypes: bool) -> Vec<Message> {
        let mut send = Vec::new();
        match self.phase {
            Phase::Waiting { list_at } if list_at <= now => {
                if !prototypes {
                    self.phase = Phase::Done;
                    return send;
                }
                send.push(Message::List { asker: self.own });
                self.phase = Phase::Fetching;
            }
            Phase::Fetching => {
                while let Some((at, _)) = self.deadlines.front() {
                    if *at > now {
                        break;
                    }
                    // Invariant: the front is never stale (drop_stale_deadlines).
                    let Some((_, key)) = self.deadlines.pop_front() else {
                        break;
                    };
                    self.in_flight.remove(&key);
                    self.counters.keys_unanswered += 1;
                    self.unanswered_run += 1;
                    self.drop_stale_deadlines();
                }
                // Nobody is answering (the prototype left, or listed keys it will
                // not serve): give up the rest instead of asking for hours.
                if self.unanswered_run >= self.max_unanswered.max(1) {
                    self.counters.abandoned += 1;
                    self.unanswered_run = 0;
                    self.queued.clear();
                    self.in_flight.clear();
                    self.deadlines.clear();
                }
            }
            Phase::Settling { done_at } if done_at <= now => {
                self.phase = Phase::Done;
                return send;
            }
            _ => return send,
        }
        send.extend(self.step(now));
        send
    }

    fn drop_stale_deadlines(&mut self) {
        while let Some((_, key)) = self.deadlines.front() {
            if self.in_flight.contains(key) {
                break;
            }
            self.deadlines.pop_front();
        }
    }

    /// Fills the window with questions; moves to settling when nothing is left.
    fn step(&mut self, now: Instant) -> Vec<Message> {
        let mut send = Vec::new();
        if !matches!(self.phase, Phase::Fetching) {
            return send;
        }
        while self.in_flight.len() < self.timings.bootstrap_window.max(1) {
            let Some(key) = self.queued.pop_front() else {
                break;
            };
            send.push(Message::Question {
                asker: self.own,
                key: key.clone(),
            });
            self.counters.keys_requested += 1;
            let deadline = later(now, self.timings.bootstrap_question_timeout);
            self.deadlines.push_back((deadline, key.clone()));
            self.in_flight.insert(key);
        }
        if self.queued.is_empty() && self.in_flight.is_empty() {
            self.phase = Phase::Settling {
                done_at: later(now, self.timings.bootstrap_settle),
            };
        }
        send
    }
}
