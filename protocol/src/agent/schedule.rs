//! Scheduling after each input: peer requests from the ready set, hub fetches by ownership
//! and fallback level, endgame duplicates, and the announcements of the call.

use std::time::Duration;

use super::neighbours::Neighbours;
use super::owners::Supply;
use super::requests::Requests;
use super::timers::TimerKind;
use super::{
    Agent, HubMode, NodeId, Output, Payload, Plan, Request, RequestId, Source, State, Time,
};

/// The endgame's duplicates start at once up to 1/`RACE_SHARE` of the bytes a boot fetches.
const RACE_SHARE: u64 = 20;

impl<P: Payload> Agent<P> {
    pub(super) fn schedule(&mut self) {
        self.flush_announcements();
        if self.booted || self.plan.is_none() {
            return;
        }
        self.release_overdue();
        if self.cfg.hub != HubMode::Only {
            self.schedule_peers();
            self.second_holders();
        }
        self.schedule_hub();
        self.endgame();
    }

    /// Releases the download slots of requests to holders not relied on gone undelivered for
    /// `doubt_after` (see `Requests::release_overdue`). The `Overdue` timer wakes the hub
    /// whenever a request has run that long: its peer's claims keep no owner from the hub
    /// meanwhile (see [`vouches`]).
    fn release_overdue(&mut self) {
        let (released, mut next) = self.requests.release_overdue(self.now);
        if self.timers.is_armed(TimerKind::JoinerGrace) {
            // The grace is reconsidered once a request has run `second_holder_after`.
            let after = self.cfg.second_holder_after;
            if let Some(at) = self.requests.next_waited(self.now, after) {
                next = Some(next.map_or(at, |n| n.min(at)));
            }
        }
        self.timers.set(TimerKind::Overdue, next);
        if !released.is_empty() {
            self.hub.wake();
        }
    }

    fn schedule_peers(&mut self) {
        let Some(candidates) = self.requests.peer_candidates() else {
            return;
        };
        for idx in candidates {
            if !self.requests.peer_room() {
                break;
            }
            if let Some(peer) = self.pick_holder(idx, None)
                && self.may_fetch_from(idx, peer)
            {
                self.start_fetch(idx, Source::Peer(peer));
            }
        }
    }

    /// Whether block `idx` may come from `peer` now. A chunk that only other racks hold waits
    /// for its turn to cross this rack's uplink (see the racks part): it is deferred, and
    /// comes back when a holder in the rack announces it or the turn comes. Manifests never
    /// wait (everything after them does).
    fn may_fetch_from(&mut self, idx: u32, peer: NodeId) -> bool {
        if !self.racks.placed() || self.racks.is_local(peer) {
            return true;
        }
        let Some(plan) = self.plan.as_ref() else {
            return false;
        };
        let b = &plan.blocks[idx as usize];
        if b.manifest {
            return true;
        }
        let turn = self
            .racks
            .cross_at(idx, b.key, self.neighbours.members(), self.now);
        let at = self.racks.crossing_until(idx).map_or(turn, |u| turn.max(u));
        if at <= self.now {
            return true;
        }
        // A holder in the rack that is busy now: the block stays ready for it.
        let racks = &self.racks;
        if !self
            .neighbours
            .holders_trusted(idx)
            .any(|(p, _)| racks.is_local(p))
        {
            let holders = self.neighbours.holders_of(idx);
            self.requests
                .defer(plan, holders, idx, at, &mut self.timers);
        }
        false
    }

    /// Deferred chunks whose turn to cross came, or that a holder in the rack now has, go back
    /// to the ready set.
    pub(super) fn undefer(&mut self, blocks: impl IntoIterator<Item = u32>) {
        let Some(plan) = self.plan.as_ref() else {
            return;
        };
        for idx in blocks {
            let holders = self.neighbours.holders_of(idx);
            self.requests.undefer(plan, holders, idx, &mut self.timers);
        }
    }

    /// Blocks asked only of holders not relied on, the last `Requests::doubt_after` ago, are
    /// doubted: each is asked of one more holder (one relied on first), and its owner no
    /// longer waits for holders not relied on (see `schedule_hub`). A peer that claims blocks
    /// and never serves them holds a block back for that long, not for a whole deadline.
    fn second_holders(&mut self) {
        let (neighbours, requests, now) = (&self.neighbours, &self.requests, self.now);
        // Only when a request is due.
        let overdue = std::cell::OnceCell::new();
        let (due, next) = self.requests.unsure(self.now, |p| {
            neighbours.is_relied(p)
                && vouches(
                    neighbours,
                    overdue.get_or_init(|| requests.overdue_peers(now)),
                    p,
                )
        });
        self.timers.set(TimerKind::SecondHolder, next);
        let pass = self
            .requests
            .next_overdue(self.now, self.cfg.second_holder_after);
        self.timers.set(TimerKind::PassOver, pass);
        for (idx, _) in &due {
            if self.requests.doubt(*idx) {
                // Its owner may fetch it from the hub now.
                self.hub.wake();
            }
        }
        for (idx, asked) in due {
            if !self.requests.peer_room() {
                break;
            }
            let racks = &self.racks;
            let holders = self
                .neighbours
                .holders_trusted(idx)
                .filter(|(p, _)| !asked.contains(p))
                .map(|(p, relied)| (p, relied, racks.is_local(p)));
            if let Some(peer) = self.requests.pick_holder(idx, holders, None, self.now) {
                self.start_fetch(idx, Source::Peer(peer));
            }
        }
    }

    fn schedule_hub(&mut self) {
        if let Some(plan) = self.plan.as_ref()
            && self.cfg.hub == HubMode::Fallback
        {
            let neighbours = &self.neighbours;
            if self
                .window
                .advance(plan, self.now, |i| neighbours.holders_of(i) > 0)
            {
                self.hub.wake();
                // Watchers judge owners on chunks from when they entered.
                self.timers.arm_earliest(TimerKind::Duty, self.now);
            }
        }
        if !self.hub.take_wake(&self.timers) {
            return;
        }
        let room = self.requests.hub_room();
        let Some(plan) = self.plan.as_ref() else {
            return;
        };
        if room == 0 {
            return;
        }
        let overdue = self.requests.overdue_peers(self.now);
        let neighbours = &self.neighbours;
        if self.timers.is_armed(TimerKind::JoinerGrace) {
            let slow = self
                .requests
                .peers_waited_on(self.now, self.cfg.second_holder_after);
            let owners = &self.owners;
            let holdings = neighbours
                .relied_holdings(|p| owners.is_joiner_voucher(p) && vouches(neighbours, &slow, p));
            self.owners.recheck_joiner(plan, holdings, &mut self.timers);
        }
        let requests = &self.requests;
        let idle = |idx: u32| hub_idle(plan, requests, neighbours, &overdue, idx);
        let mut forced: Vec<u32> = self
            .requests
            .owner_corrupt_manifests()
            .filter(|&idx| idle(idx))
            .take(room)
            .collect();
        let room = room - forced.len();
        let picks = if self.hub.takes_anything() {
            self.hub.scan_any(plan, room, idle)
        } else if self.hub.resigned() {
            Vec::new()
        } else {
            self.owned_picks(plan, room, &overdue)
        };
        let picks: Vec<u32> = picks.into_iter().filter(|i| !forced.contains(i)).collect();
        forced.extend(picks);
        for idx in forced {
            self.start_fetch(idx, Source::Hub);
        }
    }

    /// Up to `room` blocks this node's ranks (and passes) call on it to fetch from the hub at
    /// its fallback level now. An owner whose claim of its own block is doubted is passed
    /// over for that block: its claim hides the block from the duty rules (nothing looks
    /// late), so the next rank takes it once the owner has had `second_holder_after`, rather
    /// than when the request to it runs out. Only the claims of neighbours that vouch for
    /// them count (see [`vouches`]; `overdue`: the peers with a request overdue).
    pub(super) fn owned_picks(&self, plan: &Plan, room: usize, overdue: &[NodeId]) -> Vec<u32> {
        let supply = |idx: u32| Supply {
            holders: self.claimed(plan, idx, overdue),
            fetchers: self.neighbours.fetchers_of(idx),
            idle: hub_idle(plan, &self.requests, &self.neighbours, overdue, idx)
                && (plan.blocks[idx as usize].manifest || self.window.allows(idx)),
            passes: self.owners.passes(idx, self.now),
            top_passed: self.requests.is_doubted(idx)
                && self.duty.top(idx).is_some_and(|t| {
                    !self.neighbours.is_relied(t)
                        && self.neighbours.claims(t, idx)
                        && self
                            .requests
                            .asked_span(idx)
                            .is_some_and(|(at, _)| at + self.cfg.second_holder_after <= self.now)
                }),
        };
        self.owners
            .hub_picks(plan, self.hub.level(), room, &self.timers, supply)
    }

    /// The neighbours whose claim of block `idx` keeps its owner from the hub: those that
    /// vouch for their claims, and of a manifest or a doubted block only those relied on.
    fn claimed(&self, plan: &Plan, idx: u32, overdue: &[NodeId]) -> u32 {
        let unproven = unproven(plan, &self.requests, idx);
        if overdue.is_empty() && unproven {
            // Every neighbour relied on is free of faults.
            return self.neighbours.relied_of(idx);
        }
        self.neighbours
            .holders_trusted(idx)
            .filter(|&(p, relied)| (relied || !unproven) && vouches(&self.neighbours, overdue, p))
            .count() as u32
    }

    /// Duplicates requests for the last blocks (and for manifests, which block everything
    /// after them) to a second holder when nothing else can be scheduled (a chunk waiting for
    /// its turn to cross the rack's uplink is something else).
    ///
    /// Each race costs the bytes the losing holder sent, so chunk duplicates are sized: within
    /// 1/[`RACE_SHARE`] of the bytes this boot fetches they start at once; beyond it only a
    /// request that has run for twice the slowest recent delivery is duplicated (a hedge
    /// against a slow holder). A storm's last few chunks are well inside the share; a small
    /// upgrade, whose last two chunks may be a fifth of what it fetches, hedges. Manifests
    /// (small, and everything waits on them) never wait.
    fn endgame(&mut self) {
        let Some(plan) = self.plan.as_ref() else {
            return;
        };
        let remaining = plan.blocks.len() - plan.held_count as usize;
        // The last few blocks of what this boot fetches, not of the release: an upgrade that
        // fetches 30 blocks duplicates 2 of them, not 8.
        let last_few = self
            .cfg
            .endgame_blocks
            .min((plan.to_fetch as usize / 16).max(2));
        let in_endgame = !plan.complete || remaining <= last_few;
        if self.cfg.hub == HubMode::Only
            || self.cfg.endgame_blocks == 0
            || remaining == 0
            || !in_endgame
            || !self.requests.ready_is_empty()
            || self.requests.any_deferred()
            || !self.requests.peer_room()
        {
            return;
        }
        let share = plan.to_fetch_bytes / RACE_SHARE;
        let hedge = self.requests.slowest_delivery() * 2;
        let mut next: Option<Time> = None;
        for (idx, busy_with, started) in self.requests.single_sourced() {
            if !self.requests.peer_room() {
                break;
            }
            let Some(b) = self.plan.as_ref().map(|p| &p.blocks[idx as usize]) else {
                return;
            };
            let (manifest, len) = (b.manifest, b.len);
            let due = if manifest || self.requests.raced() + u64::from(len) <= share {
                started
            } else {
                started + hedge
            };
            if due > self.now {
                next = Some(next.map_or(due, |n| n.min(due)));
                continue;
            }
            if let Some(peer) = self.pick_holder(idx, Some(busy_with)) {
                if !manifest {
                    self.requests.race(len);
                }
                self.start_fetch(idx, Source::Peer(peer));
            }
        }
        self.timers.set(TimerKind::Endgame, next);
    }

    /// `from` announced manifests (`Have`): each one missing here, asked so far only of
    /// holders that do not vouch for it (not relied on, or overdue), none of them in the last
    /// twice the slowest recent delivery (an answer may yet come), is asked of `from` at once.
    /// A manifest is small and everything under it waits for it; peers that claim every block
    /// from the start would hold it back for a doubt period per holder asked (a second
    /// before any delivery), and a fresh announcement is the first sign that an honest holder
    /// has it.
    pub(super) fn ask_new_holder(&mut self, from: NodeId, manifests: Vec<u32>) {
        if manifests.is_empty() || self.booted || self.cfg.hub == HubMode::Only {
            return;
        }
        let overdue = self.requests.overdue_peers(self.now);
        let fresh = self.requests.slowest_delivery() * 2;
        for idx in manifests {
            let Some(plan) = self.plan.as_ref() else {
                return;
            };
            let neighbours = &self.neighbours;
            let waiting = plan.blocks[idx as usize].state == State::Missing
                && self.requests.inflight(idx) > 0
                && !self.requests.sure(idx, |p| {
                    neighbours.is_relied(p) && vouches(neighbours, &overdue, p)
                })
                && !self.requests.asked(idx, from)
                && self
                    .requests
                    .asked_span(idx)
                    .is_some_and(|(_, last)| last + fresh <= self.now);
            if !waiting || !self.requests.peer_room() {
                continue;
            }
            let racks = &self.racks;
            let holders = neighbours
                .holders_trusted(idx)
                .filter(|&(p, _)| p == from)
                .map(|(p, relied)| (p, relied, racks.is_local(p)));
            if let Some(peer) = self.requests.pick_holder(idx, holders, None, self.now) {
                self.start_fetch(idx, Source::Peer(peer));
            }
        }
    }

    fn pick_holder(&self, idx: u32, not: Option<NodeId>) -> Option<NodeId> {
        let racks = &self.racks;
        let holders = self
            .neighbours
            .holders_trusted(idx)
            .map(|(p, relied)| (p, relied, racks.is_local(p)));
        self.requests.pick_holder(idx, holders, not, self.now)
    }

    fn start_fetch(&mut self, idx: u32, source: Source) {
        let Some(plan) = self.plan.as_ref() else {
            return;
        };
        let b = &plan.blocks[idx as usize];
        let (cid, len) = (b.cid, b.len);
        let holders = self.neighbours.holders_of(idx);
        let req = self
            .requests
            .start(plan, holders, idx, source, self.now, &mut self.timers);
        if source == Source::Hub && self.cfg.hub == HubMode::Fallback {
            self.neighbours.queue_fetching(idx);
        }
        if let Source::Peer(p) = source
            && self.racks.placed()
            && !self.racks.is_local(p)
            && !plan.blocks[idx as usize].manifest
        {
            self.racks.crossing(idx, self.now, Duration::ZERO);
            self.neighbours.queue_crossing(idx);
        }
        if let Source::Peer(p) = source
            && !self.neighbours.is_relied(p)
        {
            self.requests.mark_unsure(req);
        }
        self.out.push_back(Output::Fetch {
            req,
            from: source,
            cid,
            len,
        });
    }

    /// Removes a request and releases what it held; the block becomes schedulable again.
    pub(super) fn finish_request(&mut self, req: RequestId) -> Option<Request> {
        let r = self.requests.finish(req, &mut self.timers)?;
        self.released(&r);
        Some(r)
    }

    /// A finished request's block may go back to the ready set and to the hub.
    pub(super) fn released(&mut self, r: &Request) {
        if r.source == Source::Hub {
            self.hub.wake();
        }
        let missing = self
            .plan
            .as_ref()
            .is_some_and(|p| p.blocks[r.idx as usize].state == State::Missing);
        if missing && self.requests.inflight(r.idx) == 0 {
            self.ready_insert(r.idx);
            self.hub.wake();
        }
    }

    pub(super) fn cancel(&mut self, req: RequestId) {
        if self.finish_request(req).is_some() {
            self.out.push_back(Output::Cancel { req });
        }
    }

    /// Sends the blocks verified (`Have`) and the hub fetches started (`Fetching`) during
    /// this `handle` call.
    fn flush_announcements(&mut self) {
        let tag = self.plan.as_ref().map(|p| p.tag);
        let lookups_pending = self.plan.as_ref().is_some_and(|p| p.lookups > 0);
        let racks = &self.racks;
        self.neighbours
            .announce(tag, lookups_pending, |p| racks.is_local(p), &mut self.out);
    }

    /// How long a member of the rack waits for a chunk another is bringing across: twice
    /// the slowest recent delivery, and at least a rack step.
    fn crossing_wait(&self) -> Duration {
        (self.requests.slowest_delivery() * 2).max(self.cfg.rack_step)
    }

    /// Members of this node's rack said they fetch `blocks` across the uplink (a `Crossing`,
    /// or a `Fetching` from the hub): the chunks missing here wait for that copy, and news of
    /// a crossing goes on once to the rack. It is a claim: it restarts the owner's duty clock
    /// only from a member relied on (one that never delivered could otherwise keep a silent
    /// owner in place by naming its chunks one after another).
    pub(super) fn heard_crossing(&mut self, from: NodeId, blocks: &[u32]) {
        let wait = self.crossing_wait();
        let relied = self.neighbours.is_relied(from);
        let Some(plan) = self.plan.as_ref() else {
            return;
        };
        for &idx in blocks {
            let missing = plan
                .blocks
                .get(idx as usize)
                .is_some_and(|b| b.state == State::Missing && !b.manifest);
            if missing && self.racks.crossing(idx, self.now, wait) {
                self.neighbours.queue_crossing(idx);
                // Another rack holds it: its owner delivered, if the news is to be believed.
                if relied {
                    self.duty.appeared(idx, self.now);
                }
            }
        }
    }
}

/// Whether `peer`'s claims may keep an owner from the hub now: it has failed no request since
/// it last delivered, and no request of this node's to it has gone undelivered for
/// `doubt_after` (`overdue`). A peer that claims every block and serves none, or serves at a
/// trickle, is found out as soon as it has been asked for anything, not block by block: the
/// blocks nobody else claims would otherwise wait for it to be asked for each of them.
fn vouches(neighbours: &Neighbours, overdue: &[NodeId], peer: NodeId) -> bool {
    neighbours.faults(peer) == 0 && !overdue.contains(&peer)
}

/// Whether block `idx` is missing with nothing in flight that counts. Claims not relied on keep
/// an owner from the hub only until they have been asked for `doubt_after` (a peer that claims
/// a block and never serves it would hold it back for a whole request deadline, then for the
/// next claimant's), and never for a manifest: it is small and everything after it waits for
/// it. A request to a peer that no longer vouches for its claims counts for neither.
fn hub_idle(
    plan: &Plan,
    requests: &Requests,
    neighbours: &Neighbours,
    overdue: &[NodeId],
    idx: u32,
) -> bool {
    let unproven = unproven(plan, requests, idx);
    plan.blocks[idx as usize].state == State::Missing
        && !requests.sure(idx, |p| {
            (neighbours.is_relied(p) || !unproven) && vouches(neighbours, overdue, p)
        })
}

/// A manifest, or a block whose claims are doubted.
fn unproven(plan: &Plan, requests: &Requests, idx: u32) -> bool {
    plan.blocks[idx as usize].manifest || requests.is_doubted(idx)
}
