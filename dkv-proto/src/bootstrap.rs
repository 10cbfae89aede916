//! Bootstrap: after net up, list the peers' keys and fetch them with a bounded
//! window of questions in flight, then settle and report done.

use crate::config::{later, Timings};
use crate::message::{Message, NodeId};
use crate::node::Outbox;
use std::collections::{BTreeSet, VecDeque};
use std::time::Instant;

/// Where a node's bootstrap stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BootstrapPhase {
    /// Never started, or abandoned because the net went down.
    Idle,
    /// Net came up; `list` is published once peers had time to connect.
    Waiting,
    /// `list` published; listed keys are being fetched.
    Fetching,
    /// Every listed key was fetched or given up; waiting for late list answers.
    Settling,
    /// Finished: every listed key was answered or timed out, and the settle time
    /// passed with no new keys.
    Done,
}

/// A snapshot of the current bootstrap, for operators and tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BootstrapProgress {
    /// The phase.
    pub phase: BootstrapPhase,
    /// Distinct keys listed by peers in this bootstrap.
    pub listed: usize,
    /// Listed keys not yet asked for.
    pub queued: usize,
    /// Questions awaiting an answer.
    pub in_flight: usize,
}

#[derive(Debug)]
enum Phase {
    Idle,
    Waiting { list_at: Instant },
    Fetching,
    Settling { done_at: Instant },
    Done,
}

#[derive(Debug)]
pub(crate) struct Bootstrap {
    phase: Phase,
    listed: BTreeSet<String>,
    queued: VecDeque<String>,
    in_flight: BTreeSet<String>,
    /// Question deadlines in send order; entries for answered keys are skipped.
    deadlines: VecDeque<(Instant, String)>,
}

impl Bootstrap {
    pub(crate) fn new() -> Bootstrap {
        Bootstrap {
            phase: Phase::Idle,
            listed: BTreeSet::new(),
            queued: VecDeque::new(),
            in_flight: BTreeSet::new(),
            deadlines: VecDeque::new(),
        }
    }

    /// Starts afresh: anything a previous bootstrap had is forgotten.
    pub(crate) fn start(&mut self, now: Instant, timings: &Timings, out: &mut Outbox) {
        *self = Bootstrap::new();
        self.phase = Phase::Waiting {
            list_at: later(now, timings.bootstrap_delay),
        };
        out.stats.bootstraps_started += 1;
    }

    pub(crate) fn abandon(&mut self) {
        *self = Bootstrap::new();
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

    fn running(&self) -> bool {
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

    /// Queues the listed keys not seen before in this bootstrap.
    pub(crate) fn on_list_answer(
        &mut self,
        now: Instant,
        keys: Vec<String>,
        own: NodeId,
        timings: &Timings,
        out: &mut Outbox,
    ) {
        if !self.running() {
            return;
        }
        for key in keys {
            if self.listed.insert(key.clone()) {
                out.stats.bootstrap_keys_listed += 1;
                self.queued.push_back(key);
            }
        }
        if matches!(self.phase, Phase::Settling { .. }) && !self.queued.is_empty() {
            self.phase = Phase::Fetching;
        }
        self.step(now, own, timings, out);
    }

    /// A value for `key` arrived: its question, if any, is answered.
    pub(crate) fn on_stored(
        &mut self,
        now: Instant,
        key: &str,
        own: NodeId,
        timings: &Timings,
        out: &mut Outbox,
    ) {
        if !self.in_flight.remove(key) {
            return;
        }
        out.stats.bootstrap_keys_received += 1;
        self.drop_stale_deadlines();
        self.step(now, own, timings, out);
    }

    pub(crate) fn on_timeout(
        &mut self,
        now: Instant,
        own: NodeId,
        timings: &Timings,
        out: &mut Outbox,
    ) {
        match self.phase {
            Phase::Waiting { list_at } if list_at <= now => {
                out.publish(Message::List { asker: own });
                self.phase = Phase::Fetching;
            }
            Phase::Fetching => {
                while let Some((at, _)) = self.deadlines.front() {
                    if *at > now {
                        break;
                    }
                    // Invariant: the front is never stale (drop_stale_deadlines).
                    let (_, key) = self.deadlines.pop_front().expect("front exists");
                    self.in_flight.remove(&key);
                    out.stats.bootstrap_keys_unanswered += 1;
                    self.drop_stale_deadlines();
                }
            }
            Phase::Settling { done_at } if done_at <= now => {
                self.phase = Phase::Done;
                out.stats.bootstraps_done += 1;
                return;
            }
            _ => return,
        }
        self.step(now, own, timings, out);
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
    fn step(&mut self, now: Instant, own: NodeId, timings: &Timings, out: &mut Outbox) {
        if !matches!(self.phase, Phase::Fetching) {
            return;
        }
        while self.in_flight.len() < timings.bootstrap_window.max(1) {
            let Some(key) = self.queued.pop_front() else {
                break;
            };
            out.publish(Message::Question {
                asker: own,
                key: key.clone(),
            });
            out.stats.bootstrap_keys_requested += 1;
            self.deadlines
                .push_back((later(now, timings.bootstrap_question_timeout), key.clone()));
            self.in_flight.insert(key);
        }
        if self.queued.is_empty() && self.in_flight.is_empty() {
            self.phase = Phase::Settling {
                done_at: later(now, timings.bootstrap_settle),
            };
        }
    }
}
