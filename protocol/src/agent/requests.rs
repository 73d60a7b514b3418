//! The requests part: every fetch in flight with its deadline, how many go to the hub, to peers
//! and to each peer, and the ready set from which peer requests are picked.
//!
//! Invariants: every request has exactly one entry in the deadline set and the `Deadline`
//! timer is that set's first; `hub_downloads` counts the hub requests, `slotted` holds the peer
//! requests that still take a download slot (see [`Requests::release_overdue`]),
//! `inflight[b]` the requests for block `b` and a peer's load its requests. The ready set
//! holds the missing blocks with a holder and nothing in flight, keyed
//! `(tier, holders, per-node tie-break, index)`; the agent calls [`Requests::ready_remove`] /
//! [`Requests::ready_insert`] around every change of a block's state or holder count.

use std::collections::{BTreeMap, BTreeSet, VecDeque, btree_map};
use std::ops::Bound;
use std::time::Duration;

use super::id_map::IdMap;
use super::plan::{Plan, State};
use super::timers::{TimerKind, Timers};
use super::{AgentConfig, Bitfield, NodeId, RequestId, Source, Time, mix64};

#[cfg(any(test, feature = "fuzzing"))]
mod invariants;

/// Candidates examined per scheduling pass.
const SCAN_LIMIT: usize = 64;
/// Peer deliveries whose times are remembered.
const TOOK: usize = 16;
/// The least a holder not relied on is given before another is asked.
const MIN_DOUBT: Duration = Duration::from_millis(50);
/// Requests on probation kept at most (the oldest is forgotten, unjudged).
const PROBATION: usize = 256;

type ReadyKey = (u32, u32, u64, u32);

/// One fetch in flight.
#[derive(Debug)]
pub(super) struct Request {
    pub(super) idx: u32,
    pub(super) source: Source,
    pub(super) started: Time,
    /// The throughput floor: `started + base + len / min_rate`.
    deadline: Time,
    /// The deadline, or earlier once the idle timeout applies; its entry in the deadline set.
    effective: Time,
}

/// A request outrun before its holder, not relied on, had answered (see
/// [`Requests::probation`]).
#[derive(Debug, Clone, Copy)]
pub(super) struct OnProbation {
    pub(super) idx: u32,
    pub(super) peer: NodeId,
    pub(super) started: Time,
    deadline: Time,
}

/// How busy this node keeps a neighbour.
#[derive(Debug, Default)]
struct PeerLoad {
    inflight: u32,
    /// A `Busy` answer: not asked again before.
    busy_until: Time,
    /// The first `Busy` answer since the peer last delivered.
    busy_since: Option<Time>,
}

#[derive(Debug)]
pub(super) struct Requests {
    seed: u64,
    /// Seeds the ready set's tie-break, different on every node.
    tie_seed: u64,
    pipeline: u32,
    max_peer_downloads: usize,
    hub_concurrency: usize,
    peer_timeout: Duration,
    peer_min_rate: u64,
    hub_timeout: Duration,
    hub_min_rate: u64,
    idle_timeout: Duration,
    requests: BTreeMap<RequestId, Request>,
    deadlines: BTreeSet<(Time, RequestId)>,
    next_req: u64,
    /// The peer requests that take a download slot, by start: all but those released (see
    /// [`Self::release_overdue`]).
    slotted: BTreeSet<(Time, RequestId)>,
    hub_downloads: usize,
    inflight: Vec<u8>,
    /// The neighbours asked so far (dropped with the neighbour).
    loads: IdMap<PeerLoad>,
    ready: BTreeSet<ReadyKey>,
    /// Something changed that may let a peer request start.
    dirty: bool,
    second_holder_after: Duration,
    /// How long the last peer deliveries took (at most [`TOOK`]).
    took: VecDeque<Duration>,
    /// [`Self::doubt_after`], kept current as deliveries come.
    doubt: Duration,
    /// The peer requests that went to a holder not relied on, by start (see [`Self::unsure`]).
    unsure: BTreeSet<(Time, RequestId)>,
    /// Blocks found unsure this release (see [`Self::doubt`]).
    doubted: BTreeSet<u32>,
    /// Manifests whose owner sent this node a corrupt copy (see [`Self::owner_corrupt`]).
    owner_corrupt: BTreeSet<u32>,
    /// Chunks only other racks hold, kept out of the ready set until a holder in this node's
    /// rack appears or their turn to cross comes (see the racks part), with that turn.
    deferred: BTreeMap<u32, Time>,
    deferred_at: BTreeSet<(Time, u32)>,
    /// Bytes of the endgame's duplicate requests this boot.
    raced: u64,
    /// Requests on probation, and their deadlines (see [`Self::probation`]).
    on_probation: BTreeMap<RequestId, OnProbation>,
    probation_at: BTreeSet<(Time, RequestId)>,
}

impl Requests {
    pub(super) fn new(cfg: &AgentConfig) -> Self {
        Requests {
            seed: cfg.seed,
            tie_seed: cfg.seed ^ mix64(cfg.id.0),
            pipeline: cfg.peer_pipeline as u32,
            max_peer_downloads: cfg.max_peer_downloads,
            hub_concurrency: cfg.hub_concurrency,
            peer_timeout: cfg.peer_timeout,
            peer_min_rate: cfg.peer_min_rate,
            hub_timeout: cfg.hub_timeout,
            hub_min_rate: cfg.hub_min_rate,
            idle_timeout: cfg.idle_timeout,
            requests: BTreeMap::new(),
            deadlines: BTreeSet::new(),
            next_req: 0,
            slotted: BTreeSet::new(),
            hub_downloads: 0,
            inflight: Vec::new(),
            loads: IdMap::new(),
            ready: BTreeSet::new(),
            dirty: false,
            second_holder_after: cfg.second_holder_after,
            took: VecDeque::new(),
            doubt: cfg.second_holder_after,
            unsure: BTreeSet::new(),
            doubted: BTreeSet::new(),
            owner_corrupt: BTreeSet::new(),
            deferred: BTreeMap::new(),
            deferred_at: BTreeSet::new(),
            raced: 0,
            on_probation: BTreeMap::new(),
            probation_at: BTreeSet::new(),
        }
    }

    /// A new release: call once every request is finished.
    pub(super) fn restart(&mut self) {
        self.ready.clear();
        self.inflight.clear();
        self.deferred.clear();
        self.deferred_at.clear();
        self.doubted.clear();
        self.owner_corrupt.clear();
        self.raced = 0;
        self.on_probation.clear();
        self.probation_at.clear();
    }

    /// Request `req`, finished because its block came from elsewhere first, stays open until
    /// its deadline to judge its holder, not relied on: one that answers with the block in
    /// time served (late), one that answers nothing in time failed it. Its block no longer
    /// counts it, nor its holder's load. A peer request cannot be taken back on the wire
    /// anyway: its answer comes, or its deadline.
    pub(super) fn probation(&mut self, req: RequestId, r: &Request, timers: &mut Timers) {
        let Source::Peer(peer) = r.source else {
            return;
        };
        if self.on_probation.len() >= PROBATION
            && let Some((_, old)) = self.probation_at.pop_first()
        {
            self.on_probation.remove(&old);
        }
        self.on_probation.insert(
            req,
            OnProbation {
                idx: r.idx,
                peer,
                started: r.started,
                deadline: r.deadline,
            },
        );
        self.probation_at.insert((r.deadline, req));
        self.sync_probation(timers);
    }

    /// Request `req` on probation answered: it is judged now.
    pub(super) fn end_probation(
        &mut self,
        req: RequestId,
        timers: &mut Timers,
    ) -> Option<OnProbation> {
        let p = self.on_probation.remove(&req)?;
        self.probation_at.remove(&(p.deadline, req));
        self.sync_probation(timers);
        Some(p)
    }

    /// The requests on probation whose deadline has passed, ended.
    pub(super) fn probation_expired(
        &mut self,
        now: Time,
        timers: &mut Timers,
    ) -> Vec<(RequestId, OnProbation)> {
        let mut out = Vec::new();
        while let Some(&(t, req)) = self.probation_at.first() {
            if t > now {
                break;
            }
            self.probation_at.pop_first();
            if let Some(p) = self.on_probation.remove(&req) {
                out.push((req, p));
            }
        }
        self.sync_probation(timers);
        out
    }

    fn sync_probation(&self, timers: &mut Timers) {
        timers.set(
            TimerKind::Probation,
            self.probation_at.first().map(|(t, _)| *t),
        );
    }

    pub(super) fn ids(&self) -> Vec<RequestId> {
        self.requests.keys().copied().collect()
    }

    /// The requests to `peer`.
    pub(super) fn to_peer(&self, peer: NodeId) -> Vec<RequestId> {
        self.select(|r| r.source == Source::Peer(peer))
    }

    /// The requests for block `idx`.
    pub(super) fn for_block(&self, idx: u32) -> Vec<RequestId> {
        self.select(|r| r.idx == idx)
    }

    fn select(&self, f: impl Fn(&Request) -> bool) -> Vec<RequestId> {
        self.requests
            .iter()
            .filter(|(_, r)| f(r))
            .map(|(id, _)| *id)
            .collect()
    }

    /// Requests in flight for block `idx`.
    pub(super) fn inflight(&self, idx: u32) -> u8 {
        self.inflight.get(idx as usize).copied().unwrap_or(0)
    }

    /// The blocks asked only of peers `relied` does not rely on, the last of them
    /// [`Self::doubt_after`] ago or longer, with the peers asked; and when the next such block
    /// will have waited that long.
    ///
    /// Only the blocks of requests marked [`Self::mark_unsure`] as they started, and that
    /// old, are looked at: in the steady state of a swarm, none.
    pub(super) fn unsure(
        &self,
        now: Time,
        relied: impl Fn(NodeId) -> bool,
    ) -> (Vec<(u32, Vec<NodeId>)>, Option<Time>) {
        // Every request of the block must be to a holder not relied on; the last one decides
        // when it is doubted.
        struct Asked {
            sure: bool,
            last: Time,
            peers: Vec<NodeId>,
        }
        let after = self.doubt_after();
        let mut next: Option<Time> = None;
        let mut soonest = |at: Time| next = Some(next.map_or(at, |n: Time| n.min(at)));
        // The blocks of the old enough unsure requests, in the order of those requests.
        let mut blocks: Vec<u32> = Vec::new();
        let mut asked: BTreeMap<u32, Asked> = BTreeMap::new();
        for &(started, req) in &self.unsure {
            if started + after > now {
                soonest(started + after);
                break;
            }
            if let Some(r) = self.requests.get(&req)
                && let btree_map::Entry::Vacant(e) = asked.entry(r.idx)
            {
                e.insert(Asked {
                    sure: false,
                    last: Time::ZERO,
                    peers: Vec::new(),
                });
                blocks.push(r.idx);
            }
        }
        if blocks.is_empty() {
            return (Vec::new(), next);
        }
        // One pass over the requests for all the blocks.
        for r in self.requests.values() {
            let Some(a) = asked.get_mut(&r.idx).filter(|a| !a.sure) else {
                continue;
            };
            a.last = a.last.max(r.started);
            match r.source {
                Source::Peer(p) if !relied(p) => a.peers.push(p),
                _ => a.sure = true,
            }
        }
        let mut due = Vec::new();
        for idx in blocks {
            let Some(a) = asked.remove(&idx).filter(|a| !a.sure) else {
                continue;
            };
            let at = a.last + after;
            if at <= now {
                due.push((idx, a.peers));
            } else {
                soonest(at);
            }
        }
        (due, next)
    }

    /// Block `idx` was found unsure (see [`Self::unsure`]): for the rest of the release its
    /// owner waits no more for holders not relied on. Returns whether it is newly doubted.
    pub(super) fn doubt(&mut self, idx: u32) -> bool {
        self.doubted.insert(idx)
    }

    /// The owner of manifest `idx` sent this node a corrupt copy: this node fetches it from
    /// the hub itself. The owners that rank next may not have been sent one, and wait for the
    /// owner's silence to show, while every block under the manifest waits for it.
    pub(super) fn owner_corrupt(&mut self, idx: u32) {
        self.owner_corrupt.insert(idx);
    }

    /// The manifests of [`Self::owner_corrupt`].
    pub(super) fn owner_corrupt_manifests(&self) -> impl Iterator<Item = u32> + '_ {
        self.owner_corrupt.iter().copied()
    }

    /// Whether block `idx` was found unsure this release.
    pub(super) fn is_doubted(&self, idx: u32) -> bool {
        self.doubted.contains(&idx)
    }

    /// Whether block `idx` is being fetched from the hub or from a holder `relied` relies on.
    pub(super) fn sure(&self, idx: u32, relied: impl Fn(NodeId) -> bool) -> bool {
        self.inflight(idx) > 0
            && self.requests.values().any(|r| {
                r.idx == idx
                    && match r.source {
                        Source::Hub => true,
                        Source::Peer(p) => relied(p),
                    }
            })
    }

    /// Whether block `idx` is in flight from `peer`.
    pub(super) fn asked(&self, idx: u32, peer: NodeId) -> bool {
        self.requests
            .values()
            .any(|r| r.idx == idx && r.source == Source::Peer(peer))
    }

    /// When the oldest and the newest request in flight for block `idx` started.
    pub(super) fn asked_span(&self, idx: u32) -> Option<(Time, Time)> {
        self.requests
            .values()
            .filter(|r| r.idx == idx)
            .map(|r| r.started)
            .fold(None, |span, t| match span {
                None => Some((t, t)),
                Some((first, last)) => Some((first.min(t), last.max(t))),
            })
    }

    /// The first time after `now` that a request to a holder not relied on will have waited
    /// `after`.
    pub(super) fn next_overdue(&self, now: Time, after: Duration) -> Option<Time> {
        self.unsure
            .iter()
            .map(|&(started, _)| started + after)
            .find(|&at| at > now)
    }

    /// The peers with a request from this node in flight for [`Self::doubt_after`] or longer
    /// (each once).
    pub(super) fn overdue_peers(&self, now: Time) -> Vec<NodeId> {
        self.peers_waited_on(now, self.doubt_after())
    }

    /// The peers with a request from this node in flight for `after` or longer (each once).
    pub(super) fn peers_waited_on(&self, now: Time, after: Duration) -> Vec<NodeId> {
        let mut slow = Vec::new();
        for r in self.requests.values() {
            if let Source::Peer(p) = r.source
                && r.started + after <= now
                && !slow.contains(&p)
            {
                slow.push(p);
            }
        }
        slow
    }

    /// The first time after `now` that a peer request in flight will have run `after`.
    pub(super) fn next_waited(&self, now: Time, after: Duration) -> Option<Time> {
        self.requests
            .values()
            .filter(|r| matches!(r.source, Source::Peer(_)))
            .map(|r| r.started + after)
            .filter(|&at| at > now)
            .min()
    }

    /// Requests to holders not relied on ([`Self::unsure`]) that have gone undelivered for
    /// [`Self::doubt_after`] give up their download slot (they go on, and still count against
    /// their peer's pipeline): peers that take requests and serve them at a trickle, or not at
    /// all, would otherwise hold the node's slots until their deadlines, and the holders that
    /// do deliver would go unasked. A holder relied on keeps its slots: one that is slow under
    /// load would only be asked more of at once. Returns the requests released now, and when
    /// the next slotted request will have run `doubt_after`.
    pub(super) fn release_overdue(&mut self, now: Time) -> (Vec<RequestId>, Option<Time>) {
        let after = self.doubt_after();
        let due: Vec<(Time, RequestId)> = self
            .unsure
            .iter()
            .take_while(|&&(started, _)| started + after <= now)
            .filter(|k| self.slotted.contains(k))
            .copied()
            .collect();
        for k in &due {
            self.slotted.remove(k);
        }
        if !due.is_empty() {
            self.dirty = true;
        }
        // Those started after `now - after`: the overdue ones of holders relied on stay
        // slotted, and are not walked past at every pass.
        let after_nanos = u64::try_from(after.as_nanos()).unwrap_or(u64::MAX);
        let not_due = match now.as_nanos().checked_sub(after_nanos) {
            Some(t) => Bound::Excluded((Time::from_nanos(t), RequestId(u64::MAX))),
            None => Bound::Unbounded,
        };
        let next = self
            .slotted
            .range((not_due, Bound::Unbounded))
            .next()
            .map(|&(started, _)| started + after);
        (due.into_iter().map(|(_, req)| req).collect(), next)
    }

    /// Request `req` went to a holder not relied on.
    pub(super) fn mark_unsure(&mut self, req: RequestId) {
        if let Some(r) = self.requests.get(&req) {
            self.unsure.insert((r.started, req));
        }
    }

    /// The blocks being fetched from the hub.
    pub(super) fn hub_fetching(&self) -> Bitfield {
        let mut fetching = Bitfield::new();
        for r in self.requests.values() {
            if r.source == Source::Hub {
                fetching.set(r.idx);
            }
        }
        fetching
    }

    /// Hub fetches that may start now.
    pub(super) fn hub_room(&self) -> usize {
        self.hub_concurrency.saturating_sub(self.hub_downloads)
    }

    /// Whether another peer request may start.
    pub(super) fn peer_room(&self) -> bool {
        self.slotted.len() < self.max_peer_downloads
    }

    /// Starts a fetch of block `idx` (`holders`: neighbours holding it) with a deadline of
    /// `base + len / min_rate` for its source.
    pub(super) fn start(
        &mut self,
        plan: &Plan,
        holders: u32,
        idx: u32,
        source: Source,
        now: Time,
        timers: &mut Timers,
    ) -> RequestId {
        let req = RequestId(self.next_req);
        self.next_req += 1;
        let len = plan.blocks[idx as usize].len;
        let (base, rate) = match source {
            Source::Hub => (self.hub_timeout, self.hub_min_rate),
            Source::Peer(_) => (self.peer_timeout, self.peer_min_rate),
        };
        let budget = base + Duration::from_secs_f64(f64::from(len) / rate.max(1) as f64);
        let deadline = now + budget;
        self.ready_remove(plan, holders, idx);
        let i = idx as usize;
        if self.inflight.len() <= i {
            self.inflight.resize(i + 1, 0);
        }
        self.inflight[i] += 1;
        match source {
            Source::Hub => self.hub_downloads += 1,
            Source::Peer(p) => {
                self.slotted.insert((now, req));
                self.loads.entry_or_default(p).inflight += 1;
            }
        }
        self.requests.insert(
            req,
            Request {
                idx,
                source,
                started: now,
                deadline,
                effective: deadline,
            },
        );
        self.deadlines.insert((deadline, req));
        self.sync(timers);
        req
    }

    /// Removes a request and releases what it held. The agent then puts its block back in
    /// the ready set if nothing else is in flight for it.
    pub(super) fn finish(&mut self, req: RequestId, timers: &mut Timers) -> Option<Request> {
        let r = self.requests.remove(&req)?;
        self.deadlines.remove(&(r.effective, req));
        self.unsure.remove(&(r.started, req));
        self.sync(timers);
        match r.source {
            Source::Hub => self.hub_downloads -= 1,
            Source::Peer(p) => {
                self.slotted.remove(&(r.started, req));
                self.dirty = true;
                if let Some(load) = self.loads.get_mut(&p) {
                    load.inflight = load.inflight.saturating_sub(1);
                }
            }
        }
        if let Some(n) = self.inflight.get_mut(r.idx as usize) {
            *n = n.saturating_sub(1);
        }
        Some(r)
    }

    /// The first request whose deadline has passed, finished.
    pub(super) fn pop_expired(
        &mut self,
        now: Time,
        timers: &mut Timers,
    ) -> Option<(RequestId, Request)> {
        while let Some(&(t, req)) = self.deadlines.first() {
            if t > now {
                break;
            }
            self.deadlines.pop_first();
            if let Some(r) = self.finish(req, timers) {
                return Some((req, r));
            }
        }
        self.sync(timers);
        None
    }

    /// Some bytes of `req` arrived: it may now sit idle for `idle_timeout` at most. Returns
    /// its source.
    pub(super) fn progress(
        &mut self,
        req: RequestId,
        now: Time,
        timers: &mut Timers,
    ) -> Option<Source> {
        let r = self.requests.get_mut(&req)?;
        let effective = r.deadline.min(now + self.idle_timeout);
        self.deadlines.remove(&(r.effective, req));
        r.effective = effective;
        self.deadlines.insert((effective, req));
        let source = r.source;
        self.sync(timers);
        Some(source)
    }

    /// Keeps the `Deadline` timer on the earliest deadline.
    fn sync(&self, timers: &mut Timers) {
        timers.set(TimerKind::Deadline, self.deadlines.first().map(|(t, _)| *t));
    }

    // ----- peers -----

    /// `peer` answered busy at `now`: leave it alone until `until`. Returns how long it has
    /// answered only `Busy` (since its first `Busy` after its last delivery).
    pub(super) fn busy(
        &mut self,
        peer: NodeId,
        now: Time,
        until: Time,
        timers: &mut Timers,
    ) -> Duration {
        let load = self.loads.entry_or_default(peer);
        load.busy_until = until;
        let since = *load.busy_since.get_or_insert(now);
        timers.arm_earliest(TimerKind::BusyWake, until);
        now.saturating_duration_since(since)
    }

    /// `peer` delivered a block, asked `took` ago: its `Busy` streak ends.
    pub(super) fn delivered(&mut self, peer: NodeId, took: Duration) {
        if let Some(load) = self.loads.get_mut(&peer) {
            load.busy_since = None;
        }
        if self.took.len() >= TOOK {
            self.took.pop_front();
        }
        self.took.push_back(took);
        let slowest = self.took.iter().max().copied().unwrap_or_default();
        self.doubt = (slowest * 2).clamp(MIN_DOUBT, self.second_holder_after.max(MIN_DOUBT));
    }

    /// How long a request to a holder not relied on may go undelivered before another holder
    /// (and the owner, the hub) is asked: twice the slowest of the last peer deliveries, at
    /// least [`MIN_DOUBT`] and at most `second_holder_after` (all of it before any delivery).
    pub(super) fn doubt_after(&self) -> Duration {
        self.doubt
    }

    /// `peer` is no longer a neighbour (its requests are finished).
    pub(super) fn forget_peer(&mut self, peer: NodeId) {
        self.loads.remove(&peer);
    }

    /// Asks for a peer scheduling pass.
    pub(super) fn wake_peers(&mut self) {
        self.dirty = true;
    }

    /// The ready blocks to try, best first, if a peer scheduling pass is due; consumes the
    /// wake-up.
    pub(super) fn peer_candidates(&mut self) -> Option<Vec<u32>> {
        if !self.dirty || !self.peer_room() || self.ready.is_empty() {
            return None;
        }
        self.dirty = false;
        Some(self.ready.iter().take(SCAN_LIMIT).map(|k| k.3).collect())
    }

    /// The least-loaded of `holders` (in id order) under the pipeline cap and not busy, other
    /// than `not`: those in this node's rack first (the second flag beside each), then those
    /// relied on (the first); ties broken by a hash of the block.
    pub(super) fn pick_holder(
        &self,
        idx: u32,
        holders: impl Iterator<Item = (NodeId, bool, bool)>,
        not: Option<NodeId>,
        now: Time,
    ) -> Option<NodeId> {
        let salt = mix64(self.seed ^ u64::from(idx));
        let load = |id: &NodeId| {
            self.loads
                .get(id)
                .map_or((0, Time::ZERO), |l| (l.inflight, l.busy_until))
        };
        holders
            .filter(|(id, _, _)| Some(*id) != not)
            .filter_map(|(id, relied, local)| {
                let (inflight, busy_until) = load(&id);
                (inflight < self.pipeline && busy_until <= now)
                    .then(|| ((!local, !relied, inflight, mix64(id.0 ^ salt)), id))
            })
            .min_by_key(|&(key, _)| key)
            .map(|(_, id)| id)
    }

    /// Whether every missing block with a holder is in flight.
    pub(super) fn ready_is_empty(&self) -> bool {
        self.ready.is_empty()
    }

    /// The peer requests that are their block's only request, with their peer and start.
    pub(super) fn single_sourced(&self) -> Vec<(u32, NodeId, Time)> {
        self.requests
            .values()
            .filter_map(|r| match r.source {
                Source::Peer(p) if self.inflight(r.idx) == 1 => Some((r.idx, p, r.started)),
                _ => None,
            })
            .collect()
    }

    /// The slowest of the last peer deliveries (zero before the first): a request that has
    /// run this long is slower than the node's recent ones.
    pub(super) fn slowest_delivery(&self) -> Duration {
        self.took.iter().max().copied().unwrap_or_default()
    }

    /// Bytes of the endgame's duplicate requests this boot.
    pub(super) fn raced(&self) -> u64 {
        self.raced
    }

    /// A duplicate request of `len` bytes starts.
    pub(super) fn race(&mut self, len: u32) {
        self.raced += u64::from(len);
    }

    // ----- the ready set -----

    fn ready_key(&self, plan: &Plan, holders: u32, idx: u32) -> Option<ReadyKey> {
        if holders == 0 || self.inflight(idx) != 0 || self.deferred.contains_key(&idx) {
            return None;
        }
        let b = plan.blocks.get(idx as usize)?;
        (b.state == State::Missing)
            .then(|| (b.tier, holders, mix64(self.tie_seed ^ u64::from(idx)), idx))
    }

    /// Takes `idx` out of the ready set, given the holder count it was filed under.
    pub(super) fn ready_remove(&mut self, plan: &Plan, holders: u32, idx: u32) {
        if let Some(k) = self.ready_key(plan, holders, idx) {
            self.ready.remove(&k);
        }
    }

    /// Files `idx` in the ready set if it is missing, idle, held by a neighbour and not
    /// deferred.
    pub(super) fn ready_insert(&mut self, plan: &Plan, holders: u32, idx: u32) {
        if let Some(k) = self.ready_key(plan, holders, idx) {
            self.ready.insert(k);
            self.dirty = true;
        }
    }

    // ----- chunks waiting for a holder in this node's rack -----

    /// Keeps `idx` out of the ready set until `until` or [`Self::undefer`].
    pub(super) fn defer(
        &mut self,
        plan: &Plan,
        holders: u32,
        idx: u32,
        until: Time,
        timers: &mut Timers,
    ) {
        self.ready_remove(plan, holders, idx);
        if let Some(old) = self.deferred.insert(idx, until) {
            self.deferred_at.remove(&(old, idx));
        }
        self.deferred_at.insert((until, idx));
        self.sync_deferred(timers);
    }

    /// Puts a deferred `idx` back in the ready set (if it still belongs there).
    pub(super) fn undefer(&mut self, plan: &Plan, holders: u32, idx: u32, timers: &mut Timers) {
        if let Some(at) = self.deferred.remove(&idx) {
            self.deferred_at.remove(&(at, idx));
            self.sync_deferred(timers);
            self.ready_insert(plan, holders, idx);
        }
    }

    /// Whether `idx` is deferred.
    pub(super) fn is_deferred(&self, idx: u32) -> bool {
        self.deferred.contains_key(&idx)
    }

    /// Whether a block is deferred.
    pub(super) fn any_deferred(&self) -> bool {
        !self.deferred.is_empty()
    }

    /// The deferred blocks.
    pub(super) fn deferred(&self) -> Vec<u32> {
        self.deferred.keys().copied().collect()
    }

    /// The deferred blocks whose turn has come.
    pub(super) fn deferred_due(&self, now: Time) -> Vec<u32> {
        self.deferred_at
            .iter()
            .take_while(|(t, _)| *t <= now)
            .map(|&(_, idx)| idx)
            .collect()
    }

    /// Keeps the `RackGate` timer on the earliest turn.
    fn sync_deferred(&self, timers: &mut Timers) {
        timers.set(
            TimerKind::RackGate,
            self.deferred_at.first().map(|(t, _)| *t),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::plan::test_plan;

    const A: NodeId = NodeId(1);
    const B: NodeId = NodeId(2);

    fn secs(s: u64) -> Time {
        Time::from_nanos(s * 1_000_000_000)
    }

    #[test]
    fn doubt_follows_the_slowest_recent_peer_delivery_within_bounds() {
        let cfg = AgentConfig::default();
        let mut reqs = Requests::new(&cfg);
        let ms = Duration::from_millis;
        assert_eq!(
            reqs.doubt_after(),
            cfg.second_holder_after,
            "nothing delivered yet"
        );
        reqs.delivered(NodeId(1), ms(5));
        assert_eq!(reqs.doubt_after(), MIN_DOUBT);
        reqs.delivered(NodeId(1), ms(200));
        assert_eq!(reqs.doubt_after(), ms(400));
        reqs.delivered(NodeId(2), ms(900));
        assert_eq!(reqs.doubt_after(), cfg.second_holder_after);
        // Only the last deliveries count.
        for _ in 0..TOOK {
            reqs.delivered(NodeId(2), ms(30));
        }
        assert_eq!(reqs.doubt_after(), ms(60));
    }

    #[test]
    fn requests_on_probation_leave_the_counts_and_end_by_answer_or_deadline() {
        let cfg = AgentConfig::default();
        let plan = test_plan(3);
        let mut reqs = Requests::new(&cfg);
        let mut timers = Timers::default();
        let a = reqs.start(&plan, 1, 1, Source::Peer(A), Time::ZERO, &mut timers);
        let b = reqs.start(&plan, 1, 2, Source::Peer(B), secs(1), &mut timers);
        for req in [a, b] {
            let r = reqs.finish(req, &mut timers).expect("in flight");
            reqs.probation(req, &r, &mut timers);
        }
        assert_eq!((reqs.slotted.len(), reqs.inflight(1)), (0, 0));
        // Only the probation timer is armed, for A's deadline.
        assert!(!timers.is_armed(TimerKind::Deadline));
        let first = timers.next().expect("armed");
        assert!(first > secs(3) && first < secs(4), "{first}");
        // B answers; A runs out, once.
        assert_eq!(reqs.end_probation(b, &mut timers).map(|p| p.peer), Some(B));
        assert!(reqs.probation_expired(secs(2), &mut timers).is_empty());
        let out = reqs.probation_expired(secs(10), &mut timers);
        assert_eq!(
            out.iter().map(|(r, p)| (*r, p.peer)).collect::<Vec<_>>(),
            [(a, A)]
        );
        assert!(reqs.end_probation(a, &mut timers).is_none());
        assert!(!timers.is_armed(TimerKind::Probation));
        // Bounded: the earliest deadline is forgotten to make room.
        for i in 0..=PROBATION as u64 {
            let req = reqs.start(&plan, 1, 1, Source::Peer(A), secs(i), &mut timers);
            let r = reqs.finish(req, &mut timers).expect("in flight");
            reqs.probation(req, &r, &mut timers);
        }
        assert_eq!(reqs.on_probation.len(), PROBATION);
        assert_eq!(reqs.probation_at.len(), PROBATION);
    }

    #[test]
    fn counters_and_the_deadline_timer_follow_the_requests() {
        let cfg = AgentConfig::default();
        let plan = test_plan(3);
        let mut reqs = Requests::new(&cfg);
        let mut timers = Timers::default();
        let hub = reqs.start(&plan, 0, 1, Source::Hub, Time::ZERO, &mut timers);
        let p1 = reqs.start(&plan, 1, 2, Source::Peer(A), Time::ZERO, &mut timers);
        let p2 = reqs.start(&plan, 1, 3, Source::Peer(A), Time::ZERO, &mut timers);
        assert_eq!(reqs.hub_room(), cfg.hub_concurrency - 1);
        assert_eq!((reqs.slotted.len(), reqs.hub_downloads), (2, 1));
        assert_eq!(reqs.loads.get(&A).unwrap().inflight, 2);
        assert_eq!(
            (reqs.inflight(1), reqs.inflight(2), reqs.inflight(4)),
            (1, 1, 0)
        );
        assert_eq!(reqs.to_peer(A), vec![p1, p2]);
        assert!(reqs.hub_fetching().get(1) && !reqs.hub_fetching().get(2));
        // The peer deadlines (about 3 s) come before the hub's (about 30 s).
        let first = timers.next().unwrap();
        assert!(first > secs(3) && first < secs(4), "{first}");
        // Bytes on the hub fetch at 1 s: idle after 6 s.
        assert_eq!(reqs.progress(hub, secs(1), &mut timers), Some(Source::Hub));
        assert!(reqs.finish(p1, &mut timers).is_some());
        assert!(reqs.finish(p1, &mut timers).is_none());
        assert!(reqs.finish(p2, &mut timers).is_some());
        assert_eq!(reqs.loads.get(&A).unwrap().inflight, 0);
        assert_eq!(timers.next(), Some(secs(6)));
        assert!(reqs.pop_expired(secs(5), &mut timers).is_none());
        let (id, r) = reqs.pop_expired(secs(6), &mut timers).unwrap();
        assert_eq!((id, r.idx, r.source), (hub, 1, Source::Hub));
        assert_eq!((reqs.slotted.len(), reqs.hub_downloads), (0, 0));
        assert_eq!(reqs.deadlines.len(), 0);
        assert_eq!(timers.next(), None);
    }

    #[test]
    fn the_ready_set_puts_rarer_blocks_first_and_holds_only_idle_ones() {
        let cfg = AgentConfig::default();
        let plan = test_plan(3);
        let mut reqs = Requests::new(&cfg);
        let mut timers = Timers::default();
        reqs.ready_insert(&plan, 3, 1);
        reqs.ready_insert(&plan, 1, 2);
        reqs.ready_insert(&plan, 0, 3);
        reqs.ready_insert(&plan, 2, 0);
        assert_eq!(reqs.peer_candidates(), Some(vec![2, 1]));
        assert_eq!(reqs.peer_candidates(), None, "the wake-up is consumed");
        reqs.start(&plan, 1, 2, Source::Peer(A), Time::ZERO, &mut timers);
        reqs.wake_peers();
        assert_eq!(reqs.peer_candidates(), Some(vec![1]));
        // Filed under 3 holders: removing it under another count would miss it.
        reqs.ready_remove(&plan, 3, 1);
        assert!(reqs.ready_is_empty());
    }

    #[test]
    fn holders_are_picked_by_load_under_the_pipeline_cap() {
        let cfg = AgentConfig {
            peer_pipeline: 1,
            ..AgentConfig::default()
        };
        let plan = test_plan(4);
        let mut reqs = Requests::new(&cfg);
        let mut timers = Timers::default();
        let both = || [(A, true, false), (B, true, false)].into_iter();
        reqs.start(&plan, 2, 1, Source::Peer(A), Time::ZERO, &mut timers);
        assert_eq!(reqs.pick_holder(2, both(), None, Time::ZERO), Some(B));
        assert_eq!(reqs.single_sourced(), vec![(1, A, Time::ZERO)]);
        assert_eq!(
            reqs.busy(B, Time::ZERO, secs(1), &mut timers),
            Duration::ZERO
        );
        assert_eq!(timers.next(), Some(secs(1)));
        assert_eq!(
            reqs.busy(B, secs(1), secs(1), &mut timers),
            secs(1).saturating_duration_since(Time::ZERO)
        );
        reqs.delivered(B, Duration::ZERO);
        assert_eq!(reqs.busy(B, secs(1), secs(1), &mut timers), Duration::ZERO);
        assert_eq!(reqs.pick_holder(2, both(), None, Time::ZERO), None);
        assert_eq!(reqs.pick_holder(2, both(), None, secs(1)), Some(B));
        assert_eq!(reqs.pick_holder(2, both(), Some(B), secs(1)), None);
        reqs.forget_peer(B);
        assert_eq!(reqs.pick_holder(2, both(), None, Time::ZERO), Some(B));
    }

    #[test]
    fn the_endgame_yardsticks_are_the_slowest_delivery_and_the_bytes_raced_this_boot() {
        let mut reqs = Requests::new(&AgentConfig::default());
        let ms = Duration::from_millis;
        assert_eq!(reqs.slowest_delivery(), Duration::ZERO);
        reqs.delivered(A, ms(30));
        reqs.delivered(B, ms(10));
        assert_eq!(reqs.slowest_delivery(), ms(30));
        reqs.race(100);
        reqs.race(50);
        assert_eq!(reqs.raced(), 150);
        reqs.restart();
        assert_eq!(reqs.raced(), 0, "a new boot races afresh");
    }

    #[test]
    fn holders_in_the_rack_come_first_then_those_relied_on() {
        let cfg = AgentConfig::default();
        let reqs = Requests::new(&cfg);
        const C: NodeId = NodeId(3);
        let pick =
            |h: &[(NodeId, bool, bool)]| reqs.pick_holder(0, h.iter().copied(), None, Time::ZERO);
        assert_eq!(pick(&[(A, true, false), (B, false, true)]), Some(B));
        assert_eq!(
            pick(&[(A, false, true), (B, true, true), (C, true, false)]),
            Some(B)
        );
        assert_eq!(pick(&[(A, false, false), (C, true, false)]), Some(C));
    }

    #[test]
    fn deferred_blocks_leave_the_ready_set_until_undeferred() {
        let cfg = AgentConfig::default();
        let plan = test_plan(4);
        let mut reqs = Requests::new(&cfg);
        let mut timers = Timers::default();
        reqs.ready_insert(&plan, 1, 2);
        reqs.defer(&plan, 1, 2, secs(3), &mut timers);
        assert!(reqs.ready_is_empty() && reqs.is_deferred(2));
        reqs.ready_insert(&plan, 2, 2);
        assert!(reqs.ready_is_empty(), "a new holder does not undefer it");
        assert_eq!(timers.next(), Some(secs(3)));
        assert!(reqs.deferred_due(secs(2)).is_empty());
        assert_eq!(reqs.deferred_due(secs(3)), vec![2]);
        reqs.undefer(&plan, 2, 2, &mut timers);
        assert!(!reqs.ready_is_empty() && !reqs.is_deferred(2));
        assert_eq!(timers.next(), None);
    }
}
