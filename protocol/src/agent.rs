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
//!   from the least-loaded holder (one in this node's rack first), with per-peer pipelining
//!   and an endgame for the last few; a chunk only other racks hold crosses the rack's uplink
//!   at one member of the rack first, the others waiting their turn;
//! - an owner that does not deliver its blocks in time, judged against the hub fetches this
//!   node sees complete, is deposed and its blocks move to the next rank; when nothing
//!   progresses for a stall period, the next-ranked owners and then anyone fetch what has no
//!   holder from the hub; hub errors back off with jitter;
//! - a block that fails verification blames the peer that sent it, and so does a request it
//!   fails; repeated faults ban it; a neighbour that never answers is dropped.
//!
//! The [`Agent`] coordinates parts that each keep their own state and invariants: `owners`
//! (owner set, ranks, joiner grace), `duty` (the owners this node follows and whether they
//! deliver), `neighbours` (members, links, holdings, faults, bans), `requests` (fetches,
//! deadlines, loads, the ready set), `racks` (who shares this node's rack, when a chunk may
//! cross its uplink), `hub` (back-off, stall levels), `serve` (upload slots) and one
//! `timers` table. `inputs` routes each [`Input`] to them and `schedule` starts
//! fetches.

mod bitfield;
mod bitmatrix;
mod config;
mod duty;
mod hub;
mod id_map;
mod inputs;
#[cfg(any(test, feature = "fuzzing"))]
mod invariants;
mod io;
mod message;
mod neighbours;
mod owners;
mod plan;
mod racks;
mod requests;
mod rng;
mod schedule;
mod serve;
mod time;
mod timers;
mod window;

use std::collections::{BTreeSet, VecDeque};
use std::fmt;

pub use bitfield::{Bitfield, MAX_BLOCKS};
pub use config::{AgentConfig, HubMode};
pub use io::{AgentStats, Event, FetchError, Input, Output, Progress, StallReason};
pub use message::{MAX_HAVE_BLOCKS, MAX_MESSAGE_SIZE, Message, MessageError};
pub use plan::{PlanError, release_tag};
pub use racks::Rack;
pub use rng::{Rng, mix64};
pub use time::Time;

use crate::block::{BlockError, Cid};
use duty::{Duty, Sample};
use hub::Hub;
use neighbours::{Change, Neighbours};
use owners::Owners;
use plan::{Plan, State};
use racks::Racks;
use requests::{Request, Requests};
use serve::Serves;
use timers::{TimerKind, Timers};
use window::Window;

/// The output queue's capacity kept once drained: a burst (a manifest's lookups, one per
/// block) need not hold memory for the rest of the boot.
const OUT_KEPT: usize = 64;

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
    duty: Duty,
    neighbours: Neighbours,
    requests: Requests,
    racks: Racks,
    serves: Serves,
    hub: Hub,
    window: Window,
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
            window: Window::new(cfg.hub_window),
            owners: Owners::new(&cfg),
            duty: Duty::new(cfg.duty_grace, cfg.stall_timeout * 2),
            neighbours: Neighbours::new(&cfg),
            requests: Requests::new(&cfg),
            racks: Racks::new(&cfg),
            serves: Serves::new(cfg.max_serves, cfg.max_serves_per_peer),
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
            Input::Racks(claims) => self.on_racks(claims),
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
        let next = self.out.pop_front();
        if next.is_none() && self.out.capacity() > OUT_KEPT {
            self.out.shrink_to(OUT_KEPT);
        }
        next
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
        AgentStats {
            resigned: self.hub.resigned(),
            ..self.stats
        }
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
        // A member rotated out may be picked again (it may be the only one left).
        if self.neighbours.expire_byes(now) && !self.booted {
            self.ensure_neighbours();
        }
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
            TimerKind::Greet => self.on_greet(),
            TimerKind::Duty => self.on_duty(),
            // `schedule` after the timers asks the second holders and the endgame's.
            TimerKind::SecondHolder | TimerKind::Endgame => {}
            TimerKind::Probation => self.on_probation_expired(),
            TimerKind::PassOver | TimerKind::Overdue => self.hub.wake(),
            TimerKind::RackGate => {
                let due = self.requests.deferred_due(self.now);
                self.undefer(due);
            }
        }
    }

    /// Times out the requests whose deadline has passed.
    fn on_deadlines(&mut self) {
        while let Some((req, r)) = self.requests.pop_expired(self.now, &mut self.timers) {
            self.released(&r);
            self.stats.timeouts += 1;
            self.out.push_back(Output::Cancel { req });
            match r.source {
                Source::Hub => self.hub_failed(r.idx),
                Source::Peer(p) => {
                    let change = self.neighbours.exclude(r.idx, p);
                    self.apply(change);
                    self.missed(p, r.started);
                    self.owner_failed(p, self.duty.top(r.idx));
                }
            }
        }
    }

    /// `peer` failed a request for a block whose watched owner ranking it first is `top`: if
    /// that is `peer`, it is deposed. It claimed its own block, so it is not waiting for the
    /// hub, and no hub fetch elsewhere would show it late.
    fn owner_failed(&mut self, peer: NodeId, top: Option<NodeId>) {
        if top == Some(peer) {
            self.stats.owners_deposed += 1;
            self.depose(&[peer]);
        }
    }

    /// Drops the neighbours this node picked that did not answer its `Hello` in time: they
    /// are penalised, not picked again for a while, and no longer count as owners. Deposes the
    /// owners it pinged that did not answer.
    fn on_greet(&mut self) {
        let timeout = self.cfg.greet_timeout;
        let (silent, next) = self.neighbours.silent(self.now, timeout);
        for &peer in &silent {
            self.neighbours.said_bye(peer, self.now);
            self.drop_neighbour(peer, true);
            self.stats.silent_dropped += 1;
        }
        let (mute, next_ping) = self.duty.silent(self.now, self.duty.ping_timeout(timeout));
        self.timers
            .set(TimerKind::Greet, next.into_iter().chain(next_ping).min());
        let mut gone: Vec<NodeId> = silent.iter().chain(&mute).copied().collect();
        gone.sort_unstable();
        gone.dedup();
        self.depose(&gone);
        if !silent.is_empty() {
            self.ensure_neighbours();
        }
    }

    /// Deposes the owners that did not deliver a block in time, and voids the announced hub
    /// fetches that did not complete in time (see `duty`).
    fn on_duty(&mut self) {
        let Some(plan) = self.plan.as_ref().filter(|_| !self.booted) else {
            return;
        };
        let (duty, now) = (&self.duty, self.now);
        let changes = self
            .neighbours
            .void_overdue(|since, idx| duty.overdue(plan, since, idx, now));
        self.apply(changes);
        let Some(plan) = self.plan.as_ref() else {
            return;
        };
        let (neighbours, window) = (&self.neighbours, &self.window);
        let (late, next) = self.duty.late(
            plan,
            self.now,
            |i| appeared(plan, neighbours, i),
            |i| window.due(i),
        );
        self.timers.set(TimerKind::Duty, next);
        self.stats.owners_deposed += late.len() as u64;
        self.depose(&late);
    }

    /// `peers` no longer count as owners (and their announced hub fetches are void); each is
    /// penalised.
    fn depose(&mut self, peers: &[NodeId]) {
        self.unseat(peers, true);
    }

    /// `peers` no longer count as owners and their announced hub fetches are void; with
    /// `penalise`, each is penalised (a resignation is not).
    fn unseat(&mut self, peers: &[NodeId], penalise: bool) {
        let mut changed = false;
        for &peer in peers {
            let changes = self.neighbours.drop_fetching(peer);
            self.apply(changes);
            changed |= self.owners.forget(peer, self.plan.as_ref());
            if penalise {
                let faults = self.neighbours.faults(peer);
                self.out
                    .push_back(Output::Event(Event::PeerPenalised { peer, faults }));
            }
        }
        if changed {
            self.hub.wake();
            self.rebuild_duty();
        }
    }

    /// A neighbour's hub fetch that started at `start` completed: the hub works (a back-off
    /// may end), and if this node's own fetches failed unreachable meanwhile, its route to the
    /// hub is broken and it resigns.
    fn hub_served(&mut self, start: Time) {
        self.hub.works(self.now, &mut self.timers);
        if self.hub.served_other(start) {
            self.resign();
        }
        self.pass_on_while_backing_off();
    }

    /// The hub serves others while this node backs off from it: the manifests its ranks call
    /// on it to fetch now go to the owners ranked next (`Unfetched`, once each per back-off)
    /// rather than wait for its retry; everything under them waits too. Not chunks: at the
    /// hub's return after an outage, owners still backing off passed theirs on and fetched
    /// them again at their retry (hub-outage-cold 1.00 → 1.06 F). A manifest twice costs
    /// little.
    fn pass_on_while_backing_off(&mut self) {
        if !self.timers.is_armed(TimerKind::HubRetry)
            || self.hub.takes_anything()
            || self.hub.resigned()
        {
            return;
        }
        let Some(plan) = self.plan.as_ref() else {
            return;
        };
        let overdue = self.requests.overdue_peers(self.now);
        let due = self.owned_picks(plan, self.cfg.hub_concurrency, &overdue);
        let manifests: Vec<u32> = due
            .into_iter()
            .filter(|&idx| plan.blocks[idx as usize].manifest)
            .collect();
        for idx in manifests {
            if self.hub.pass_on(idx) {
                self.tell_unfetched(idx, false);
            }
        }
    }

    /// Tells the owners ranked next for block `idx` (and with `neighbours`, the neighbours,
    /// who heard of the fetch) that this node's hub fetch of it failed or will not happen.
    fn tell_unfetched(&mut self, idx: u32, neighbours: bool) {
        let Some(plan) = self.plan.as_ref() else {
            return;
        };
        let Some(b) = plan.blocks.get(idx as usize) else {
            return;
        };
        let msg = Message::Unfetched {
            release: plan.tag,
            blocks: vec![idx],
        };
        let below = self.owners.below(b.key);
        if neighbours {
            let to: BTreeSet<NodeId> = below.into_iter().chain(self.neighbours.ids()).collect();
            self.send_to(to, &msg);
        } else {
            self.send_to(below, &msg);
        }
    }

    /// Sends `msg` to each of `to`.
    fn send_to(&mut self, to: impl IntoIterator<Item = NodeId>, msg: &Message) {
        for to in to {
            self.out.push_back(Output::Send {
                to,
                msg: msg.clone(),
            });
        }
    }

    /// This node's hub fetch of block `idx` failed: its passes on it are spent, the neighbours
    /// it announced the fetch to stop counting it, and the owners ranked next may try the
    /// block at once (`Message::Unfetched`).
    pub(super) fn unfetched(&mut self, idx: u32) {
        self.owners.unpass(idx);
        self.neighbours.unqueue_fetching(idx);
        self.tell_unfetched(idx, true);
    }

    /// A pass on block `idx` reached this node while it backs off from the hub: its passes on
    /// it are spent and the owners ranked next hear of it, not the neighbours (they heard of no
    /// fetch of it from this node, and one `Unfetched` must not become one per neighbour).
    fn forward_pass(&mut self, idx: u32) {
        self.owners.unpass(idx);
        self.neighbours.unqueue_fetching(idx);
        self.tell_unfetched(idx, false);
    }

    /// This node cannot reach the hub while others do: it tells the owners that watch it (or
    /// would) to move its blocks on now rather than wait to find it late.
    fn resign(&mut self) {
        let Some(plan) = self.plan.as_ref() else {
            return;
        };
        let release = plan.tag;
        let watchers = self.owners.watchers(plan);
        self.out.push_back(Output::Event(Event::Resigned));
        self.send_to(watchers, &Message::Resign { release });
    }

    /// A hub fetch completed (this node's or a neighbour's): a yardstick for the owners, and
    /// a sign that the hub works.
    fn hub_sample(&mut self, start: Time, len: u32) {
        let done = self.now;
        self.duty.sample(Sample { start, len, done });
        self.hub.works(self.now, &mut self.timers);
        if !self.booted {
            self.timers
                .arm_earliest(TimerKind::Duty, self.now + self.cfg.duty_grace);
        }
    }

    /// `peer` failed a request that started at `started`: penalised, and banned after
    /// `ban_after` faults (failures that overlap count once, see `Neighbours::add_miss`).
    /// Returns whether it counted.
    fn missed(&mut self, peer: NodeId, started: Time) -> bool {
        self.missed_as(peer, started, false)
    }

    /// [`Self::missed`], for a failure judged `apart` from those it overlaps when `peer` never
    /// delivered (a request on probation, see `Neighbours::add_miss`).
    fn missed_as(&mut self, peer: NodeId, started: Time, apart: bool) -> bool {
        let Some((faults, changes)) = self.neighbours.add_miss(peer, started, self.now, apart)
        else {
            return false;
        };
        self.apply(changes);
        self.doubt_requests_to(peer);
        self.stats.misses += 1;
        self.out
            .push_back(Output::Event(Event::PeerPenalised { peer, faults }));
        if faults >= self.cfg.ban_after {
            self.ban(peer);
        }
        true
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
                Change::Holders {
                    idx,
                    before,
                    after,
                    relied: [was, now],
                } => {
                    if before != after {
                        self.holders_changed(idx, before, after);
                    }
                    if was != now {
                        self.relied_changed(idx, was, now);
                    }
                }
                Change::Fetchers { after, .. } => {
                    if after == 0 {
                        self.hub.wake();
                    }
                }
            }
        }
    }

    /// A block's holders changed: its place in the ready set moves, and its first holder is
    /// its owner's progress (a claim never served is excluded once asked).
    fn holders_changed(&mut self, idx: u32, before: u32, after: u32) {
        if let Some(plan) = self.plan.as_ref() {
            self.requests.ready_remove(plan, before, idx);
        }
        if before == 0 && after > 0 {
            self.duty.appeared(idx, self.now);
            self.window.seen(idx);
        }
        self.ready_insert(idx);
    }

    /// A missing block that gains its first holder relied on is progress; one that loses its
    /// last may have to come from the hub.
    fn relied_changed(&mut self, idx: u32, before: u32, after: u32) {
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
            self.window.reordered();
            self.hub.wake();
        }
        self.rebuild_duty();
    }

    /// What this node follows after the owners or the plan changed.
    fn rebuild_duty(&mut self) {
        if self.cfg.hub != HubMode::Fallback {
            return;
        }
        if let Some(plan) = self.plan.as_ref() {
            let (owners, ranks) = (self.owners.owners(), self.owners.ranks());
            self.duty
                .rebuild(self.cfg.id, owners, ranks, plan, self.now);
            // The owners watched now are judged from now on (the timer is otherwise armed
            // only by hub fetches completing, which a farm of broken owners never sees).
            if !self.booted {
                self.timers
                    .arm_earliest(TimerKind::Duty, self.now + self.cfg.duty_grace);
            }
        }
        let pings = self.duty.take_unpinged(self.now);
        if !pings.is_empty() {
            let timeout = self.duty.ping_timeout(self.cfg.greet_timeout);
            self.timers
                .arm_earliest(TimerKind::Greet, self.now + timeout);
        }
        for to in pings {
            self.out.push_back(Output::Send {
                to,
                msg: Message::Ping,
            });
        }
    }

    fn rerank_all(&mut self) {
        let n = self.plan.as_ref().map_or(0, |p| p.blocks.len() as u32);
        self.rank_blocks(0..n);
    }

    fn forget_owner(&mut self, id: NodeId) {
        if self.owners.forget(id, self.plan.as_ref()) {
            self.hub.wake();
            self.rebuild_duty();
        }
    }

    /// Whether this node joined a swarm under way (see [`Owners::decide_joiner`]).
    fn decide_joiner(&mut self) {
        let Some(plan) = self.plan.as_ref() else {
            return;
        };
        // Only claims relied on: peers claiming every block would make every node leave its
        // chunks to the others.
        let neighbours = &self.neighbours;
        let holdings = neighbours.relied_holdings(|_| true);
        // Those that claim chunks missing here (evaluated only if a grace starts).
        let lacks = |b: u32| {
            plan.blocks
                .get(b as usize)
                .is_some_and(|blk| !blk.manifest && blk.state != State::Held)
        };
        let vouchers = neighbours
            .relied_peers()
            .filter(move |&p| neighbours.relied_holdings(|q| q == p).any(lacks));
        if self
            .owners
            .decide_joiner(plan, self.now, holdings, vouchers, &mut self.timers)
        {
            self.hub.wake();
        }
    }

    /// `peer` is no longer relied on: its requests in flight are to a holder not relied on.
    pub(super) fn doubt_requests_to(&mut self, peer: NodeId) {
        for req in self.requests.to_peer(peer) {
            self.requests.mark_unsure(req);
        }
    }

    fn touch_progress(&mut self) {
        self.hub.progressed(self.now, &mut self.timers);
    }

    /// This node's hub fetch of block `idx` failed (an error, a timeout, a bad block). One
    /// it tried only on passes (a probe for the owners above) is handed on without a
    /// back-off: the hub may be down for everyone, and a node backing off from it takes no
    /// part in the fallback levels, which must find the hub again once it is back.
    fn hub_failed(&mut self, idx: u32) {
        if self.owners.passes(idx, self.now) == 0 {
            self.hub
                .failed(idx, self.now, &mut self.rng, &mut self.timers);
        }
        self.duty.hub_failed(self.now);
        self.unfetched(idx);
    }

    /// The neighbours have answered (or had their time): if they already hold blocks of the
    /// release, this node joined a swarm under way and leaves hub fetching to the owners.
    fn end_grace(&mut self) {
        self.timers.clear(TimerKind::HelloGrace);
        self.hub.wake();
    }
}

/// Whether block `idx` has appeared: held (or looked up) here, or claimed by a neighbour not
/// excluded for it (a claim is excluded as soon as a request on it fails, so a claim never
/// served stops counting once asked).
fn appeared(plan: &Plan, neighbours: &Neighbours, idx: u32) -> bool {
    plan.blocks
        .get(idx as usize)
        .is_none_or(|b| b.state != State::Missing)
        || neighbours.holders_of(idx) > 0
}

#[cfg(test)]
mod tests;
