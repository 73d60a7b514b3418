//! The swarm agent: one sans-IO state machine per node that decides what to fetch, from whom,
//! and what to serve.
//!
//! The driver (the libp2p node or the simulator) feeds it [`Input`]s with the current [`Time`],
//! then drains [`Agent::poll_output`] until it returns `None`, and arms a timer for
//! [`Agent::poll_timeout`]. No decision about the swarm is made outside this module.
//!
//! Scheduling, in short (see ARCHITECTURE.md):
//! - every node of the cohort derives the same block plan from the release's manifests;
//! - the owner of a block (highest rendezvous hash among live members) is the only node that
//!   fetches it from the hub, so each block crosses the WAN once;
//! - a node announces each block to a bounded set of neighbours the moment it verifies (HAVE),
//!   and its whole holdings when a link opens (Hello);
//! - blocks are requested from neighbours by boot tier, rarest first, random among equals,
//!   from the least-loaded holder, with per-peer pipelining and an endgame for the last few;
//! - when nothing progresses for a stall period, the next-ranked owners and then anyone fetch
//!   what has no holder from the hub; hub errors back off with jitter;
//! - a block that fails verification blames the peer that sent it; repeated faults ban it.
//!
//! The [`Agent`] coordinates parts that each keep their own state and invariants: `owners`
//! (owner set, ranks, joiner grace), `neighbours` (members, links, holdings, faults, bans),
//! `requests` (fetches, deadlines, loads, the ready set), `hub` (back-off, stall levels),
//! `serve` (upload slots) and one `timers` table. `inputs` routes each [`Input`] to them and
//! `schedule` starts fetches.

mod bitfield;
mod config;
mod hub;
mod inputs;
#[cfg(any(test, feature = "fuzzing"))]
mod invariants;
mod io;
mod message;
mod neighbours;
mod owners;
mod plan;
mod requests;
mod rng;
mod schedule;
mod serve;
mod time;
mod timers;

use std::collections::VecDeque;
use std::fmt;

pub use bitfield::{Bitfield, MAX_BLOCKS};
pub use config::{AgentConfig, HubMode};
pub use io::{AgentStats, Event, FetchError, Input, Output, Progress, StallReason};
pub use message::{MAX_HAVE_BLOCKS, MAX_MESSAGE_SIZE, Message, MessageError};
pub use plan::{PlanError, release_tag};
pub use rng::{Rng, mix64};
pub use time::Time;

use crate::block::{BlockError, Cid};
use hub::Hub;
use neighbours::{Change, Neighbours};
use owners::Owners;
use plan::{Plan, State};
use requests::{Request, Requests};
use serve::Serves;
use timers::{TimerKind, Timers};

/// A node of the swarm, as the agent knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId(pub u64);

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "node {:016x}", self.0)
    }
}

/// The agent's identifier for one of its fetches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RequestId(pub u64);

/// The driver's identifier for one block request from a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServeId(pub u64);

/// Where a block comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Source {
    /// A peer of the swarm.
    Peer(NodeId),
    /// The hub (the origin).
    Hub,
}

/// A block's bytes as the driver holds them. The node passes real bytes; the simulator passes
/// a synthetic payload for chunks. Whether a block is accepted is decided by the agent.
pub trait Payload: fmt::Debug {
    /// The payload's length in bytes.
    fn len(&self) -> usize;
    /// Whether the payload is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Checks the payload against `cid`.
    fn verify(&self, cid: &Cid) -> Result<(), BlockError>;
    /// The bytes, if the payload has real ones (manifests always must).
    fn bytes(&self) -> Option<&[u8]>;
}

impl Payload for Vec<u8> {
    fn len(&self) -> usize {
        Vec::len(self)
    }

    fn verify(&self, cid: &Cid) -> Result<(), BlockError> {
        crate::block::verify(cid, self)
    }

    fn bytes(&self) -> Option<&[u8]> {
        Some(self)
    }
}

/// The swarm agent of one node. See the [module documentation](self).
#[derive(Debug)]
pub struct Agent<P> {
    cfg: AgentConfig,
    rng: Rng,
    now: Time,
    plan: Option<Plan>,
    owners: Owners,
    neighbours: Neighbours,
    requests: Requests,
    serves: Serves,
    hub: Hub,
    timers: Timers,
    booted: bool,
    stats: AgentStats,
    out: VecDeque<Output<P>>,
}

impl<P: Payload> Agent<P> {
    /// A new agent with no release and no peers.
    pub fn new(cfg: AgentConfig) -> Self {
        Agent {
            rng: Rng::new(mix64(cfg.seed ^ mix64(cfg.id.0))),
            hub: Hub::new(&cfg),
            owners: Owners::new(&cfg),
            neighbours: Neighbours::new(&cfg),
            requests: Requests::new(&cfg),
            serves: Serves::new(cfg.max_serves),
            cfg,
            now: Time::ZERO,
            plan: None,
            timers: Timers::default(),
            booted: false,
            stats: AgentStats::default(),
            out: VecDeque::new(),
        }
    }

    /// Feeds one input. Drain [`poll_output`](Self::poll_output) afterwards.
    pub fn handle(&mut self, now: Time, input: Input<P>) {
        self.now = self.now.max(now);
        match input {
            Input::Boot { root } => self.on_boot(root),
            Input::Members(list) => self.on_members(list),
            Input::MemberUp(id) => self.on_member_up(id),
            Input::MemberDown(id) => self.on_member_down(id),
            Input::Message { from, msg } => self.on_message(from, msg),
            Input::BlockRequest { from, id, cid } => self.on_block_request(from, id, cid),
            Input::ServeDone { id } => self.serves.done(id),
            Input::Block { req, payload } => self.on_block(req, payload),
            Input::FetchProgress { req } => self.on_progress(req),
            Input::FetchFailed { req, error } => self.on_fetch_failed(req, error),
            Input::Local { cid, block } => self.on_local(cid, block),
            Input::Timeout => {}
        }
        self.on_timers();
        self.decide_joiner();
        self.schedule();
    }

    /// The next thing to do, if any.
    pub fn poll_output(&mut self) -> Option<Output<P>> {
        self.out.pop_front()
    }

    /// When the agent next needs [`Input::Timeout`].
    pub fn poll_timeout(&self) -> Option<Time> {
        self.timers.next()
    }

    /// Whether every block of the current release is held.
    pub fn is_booted(&self) -> bool {
        self.booted
    }

    /// How far the current boot is.
    pub fn progress(&self) -> Progress {
        match &self.plan {
            None => Progress::default(),
            Some(p) => Progress {
                have_blocks: p.held_count as usize,
                total_blocks: p.blocks.len(),
                have_bytes: p.held_bytes,
                total_bytes: p.total_bytes(),
                complete: p.complete,
            },
        }
    }

    /// What the agent has done so far.
    pub fn stats(&self) -> AgentStats {
        self.stats
    }

    /// The current neighbours.
    pub fn neighbours(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.neighbours.ids()
    }

    /// Whether `peer` is banned.
    pub fn is_banned(&self, peer: NodeId) -> bool {
        self.neighbours.is_banned(peer)
    }

    // ----- timers -----

    /// Fires the due timers, each kind once, in [`TimerKind`] order.
    fn on_timers(&mut self) {
        let mut last = None;
        while let Some(kind) = self.timers.take_due(last, self.now) {
            last = Some(kind);
            self.fire(kind);
        }
        let now = self.now;
        self.neighbours.expire_byes(now);
    }

    /// What each timer does; a new [`TimerKind`] gets its arm here.
    fn fire(&mut self, kind: TimerKind) {
        match kind {
            TimerKind::Deadline => self.on_deadlines(),
            TimerKind::HubRetry | TimerKind::JoinerGrace => self.hub.wake(),
            TimerKind::BusyWake => self.requests.wake_peers(),
            TimerKind::HelloGrace => self.end_grace(),
            TimerKind::StallTick => self.on_stall_tick(),
            TimerKind::Escalate => self.on_escalate(),
        }
    }

    /// Times out the requests whose deadline has passed.
    fn on_deadlines(&mut self) {
        while let Some((req, r)) = self.requests.pop_expired(self.now, &mut self.timers) {
            self.released(&r);
            self.stats.timeouts += 1;
            self.out.push_back(Output::Cancel { req });
            match r.source {
                Source::Hub => self.hub_failed(),
                Source::Peer(p) => {
                    self.neighbours.exclude(r.idx, p);
                    let faults = self.neighbours.faults(p);
                    self.out
                        .push_back(Output::Event(Event::PeerPenalised { peer: p, faults }));
                }
            }
        }
    }

    fn on_stall_tick(&mut self) {
        let active = !self.booted && self.plan.is_some();
        let Some(reason) = self.hub.stall_tick(self.now, active, &mut self.timers) else {
            return;
        };
        self.hello_all();
        let missing = self
            .plan
            .as_ref()
            .map_or(0, |p| p.blocks.len() - p.held_count as usize);
        self.out
            .push_back(Output::Event(Event::Stalled { reason, missing }));
    }

    fn on_escalate(&mut self) {
        let active = !self.booted && self.plan.is_some();
        self.hub.escalate(self.now, active, &mut self.timers);
    }

    // ----- between the parts -----

    /// Updates what depends on how many neighbours hold or fetch a block.
    fn apply(&mut self, changes: impl IntoIterator<Item = Change>) {
        for change in changes {
            match change {
                Change::Holders { idx, before, after } => self.holders_changed(idx, before, after),
                Change::Fetchers { after, .. } => {
                    if after == 0 {
                        self.hub.wake();
                    }
                }
            }
        }
    }

    /// A missing block that gains its first holder is progress; one that loses its last may
    /// have to come from the hub; either way its place in the ready set moves.
    fn holders_changed(&mut self, idx: u32, before: u32, after: u32) {
        if let Some(plan) = self.plan.as_ref() {
            self.requests.ready_remove(plan, before, idx);
        }
        let missing = self
            .plan
            .as_ref()
            .and_then(|p| p.blocks.get(idx as usize))
            .is_some_and(|b| b.state == State::Missing);
        if missing {
            if before == 0 && after > 0 {
                self.touch_progress();
            }
            if after == 0 {
                self.hub.wake();
            }
        }
        self.ready_insert(idx);
    }

    fn ready_remove(&mut self, idx: u32) {
        if let Some(plan) = self.plan.as_ref() {
            self.requests
                .ready_remove(plan, self.neighbours.holders_of(idx), idx);
        }
    }

    fn ready_insert(&mut self, idx: u32) {
        if let Some(plan) = self.plan.as_ref() {
            self.requests
                .ready_insert(plan, self.neighbours.holders_of(idx), idx);
        }
    }

    /// Ranks the blocks in `range` of the plan.
    fn rank_blocks(&mut self, range: std::ops::Range<u32>) {
        if let Some(plan) = self.plan.as_ref() {
            self.owners.rank(plan, range);
            self.hub.wake();
        }
    }

    fn rerank_all(&mut self) {
        let n = self.plan.as_ref().map_or(0, |p| p.blocks.len() as u32);
        self.rank_blocks(0..n);
    }

    fn forget_owner(&mut self, id: NodeId) {
        if self.owners.forget(id, self.plan.as_ref()) {
            self.hub.wake();
        }
    }

    /// Whether this node joined a swarm under way (see [`Owners::decide_joiner`]).
    fn decide_joiner(&mut self) {
        let Some(plan) = self.plan.as_ref() else {
            return;
        };
        let holdings = self.neighbours.holdings();
        if self
            .owners
            .decide_joiner(plan, self.now, holdings, &mut self.timers)
        {
            self.hub.wake();
        }
    }

    fn touch_progress(&mut self) {
        self.hub.progressed(self.now, &mut self.timers);
    }

    fn hub_failed(&mut self) {
        self.hub.failed(self.now, &mut self.rng, &mut self.timers);
    }

    /// The neighbours have answered (or had their time): if they already hold blocks of the
    /// release, this node joined a swarm under way and leaves hub fetching to the owners.
    fn end_grace(&mut self) {
        self.timers.clear(TimerKind::HelloGrace);
        self.hub.wake();
    }
}

#[cfg(test)]
mod tests;
