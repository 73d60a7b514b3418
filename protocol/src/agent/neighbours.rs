//! The neighbours part: the cohort members, the bounded set of neighbours this node talks to,
//! what each of them holds and fetches, what is still to be announced to them, and how far
//! each peer is trusted (faults, bans, per-block exclusions).
//!
//! Invariants: `holders[b]` is the number of neighbours whose holdings include block `b` and
//! that are not excluded for it (a holder that failed to deliver `b` does not count as one),
//! `relied[b]` the number of those whose claims are *relied on*, and `fetchers[b]` the number
//! that announced a hub fetch of it; a banned node is neither a member nor a neighbour. Every
//! change of a count is reported as a [`Change`] so the agent can update what depends on it.
//!
//! What a neighbour holds is its claim. Claims are relied on only from a neighbour that has
//! delivered a verified block to this node, has not failed a request since and never sent a
//! corrupt one. Every claim is still asked (that is how a neighbour proves itself, and how an
//! honest one under load recovers), but only relied claims keep owners from the hub and count
//! as an owner's block appearing: a peer that claims blocks it never serves cannot hold the
//! farm back for longer than it takes to ask it.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use super::bitmatrix::BitMatrix;
use super::id_map::IdMap;
use super::racks::Racks;
use super::{
    AgentConfig, Bitfield, MAX_BLOCKS, MAX_HAVE_BLOCKS, Message, NodeId, Output, Rng, Time,
};

/// How long a node that said `Bye`, or was dropped, is not picked again.
const BYE_QUIET: Duration = Duration::from_secs(10);
/// Peers whose faults, failed requests or ban are remembered (each map apart); beyond it the
/// oldest-keyed entry is forgotten, so identities minted in bulk cost bounded memory.
const TRACKED: usize = 4096;
/// Announced hub fetches remembered (to time them when their `Have` comes, and to void
/// those that do not come in time).
const ANNOUNCED: usize = 512;

/// A change in how many neighbours hold or fetch a block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Change {
    /// The neighbours holding `idx` went from `before` to `after`, and those relied on from
    /// `relied[0]` to `relied[1]` (either may be unchanged).
    Holders {
        idx: u32,
        before: u32,
        after: u32,
        relied: [u32; 2],
    },
    /// `after` neighbours now announce a hub fetch of `idx`.
    Fetchers { idx: u32, after: u32 },
}

#[derive(Debug)]
struct Peer {
    /// This node picked it (rather than the other way round).
    outbound: bool,
    /// Its `Hello` arrived.
    greeted: bool,
    /// When this node's `Hello` went to it (for one this node picked).
    hello_at: Time,
    /// Its claims are relied on ([`Neighbours::is_relied`], kept here for the hot paths).
    relied: bool,
}

impl Peer {
    fn new(outbound: bool, now: Time, relied: bool) -> Self {
        Peer {
            outbound,
            greeted: !outbound,
            hello_at: now,
            relied,
        }
    }
}

#[derive(Debug)]
pub(super) struct Neighbours {
    me: NodeId,
    /// Neighbours this node picks.
    want: usize,
    /// Neighbours in total.
    max: usize,
    /// Live, unbanned cohort members other than this node, sorted. Shared with the owners
    /// until either changes (a farm's list, kept twice by each of its nodes, would be
    /// quadratic in a simulation of the farm).
    members: Arc<Vec<NodeId>>,
    peers: IdMap<Peer>,
    /// What each neighbour holds, a column each in `peers`' order.
    bits: BitMatrix,
    /// The blocks each neighbour announced it is fetching from the hub, the same way.
    fetching: BitMatrix,
    /// Nodes that said `Bye`, not picked again before the time given.
    said_bye: BTreeMap<NodeId, Time>,
    /// Corrupt blocks sent, per peer (never forgiven).
    faults: BTreeMap<NodeId, u32>,
    /// Requests a peer failed (ran out of time, refused, or answered only `Busy` for 3 stall
    /// periods) since it last delivered one.
    misses: BTreeMap<NodeId, Misses>,
    /// Peers that delivered a verified block to this node (bounded like the others).
    proven: BTreeSet<NodeId>,
    banned: BTreeSet<NodeId>,
    /// When neighbours announced each hub fetch they are making (the latest announcement), and
    /// whether as it started (a `Fetching`, rather than in a `Hello`), bounded.
    announced: BTreeMap<(NodeId, u32), (Time, bool)>,
    /// Owners deposed during this release: the hub fetches they announce no longer count
    /// (one whose route to the hub is broken retries, and announces, without end).
    deposed: BTreeSet<NodeId>,
    /// Peers not asked again for a block (at most `max` per block).
    excluded: BTreeMap<u32, Vec<NodeId>>,
    holders: Vec<u32>,
    relied: Vec<u32>,
    fetchers: Vec<u32>,
    /// Blocks verified, hub fetches started and crossings heard or started, not yet announced.
    new_haves: Vec<u32>,
    new_fetches: Vec<u32>,
    new_crossings: Vec<u32>,
}

impl Neighbours {
    pub(super) fn new(cfg: &AgentConfig) -> Self {
        Neighbours {
            me: cfg.id,
            want: cfg.neighbours,
            max: cfg.max_neighbours,
            members: Arc::new(Vec::new()),
            peers: IdMap::new(),
            bits: BitMatrix::new(),
            fetching: BitMatrix::new(),
            said_bye: BTreeMap::new(),
            faults: BTreeMap::new(),
            misses: BTreeMap::new(),
            proven: BTreeSet::new(),
            banned: BTreeSet::new(),
            announced: BTreeMap::new(),
            deposed: BTreeSet::new(),
            excluded: BTreeMap::new(),
            holders: Vec::new(),
            relied: Vec::new(),
            fetchers: Vec::new(),
            new_haves: Vec::new(),
            new_fetches: Vec::new(),
            new_crossings: Vec::new(),
        }
    }

    // ----- members -----

    pub(super) fn members(&self) -> &[NodeId] {
        &self.members
    }

    /// [`Self::members`], shared.
    pub(super) fn members_shared(&self) -> &Arc<Vec<NodeId>> {
        &self.members
    }

    /// Replaces the cohort. Returns the neighbours that are no longer members (still
    /// neighbours: the agent drops them).
    pub(super) fn set_members(&mut self, list: Vec<NodeId>) -> Vec<NodeId> {
        let mut members: Vec<NodeId> = list
            .into_iter()
            .filter(|m| *m != self.me && !self.banned.contains(m))
            .collect();
        members.sort_unstable();
        members.dedup();
        self.members = Arc::new(members);
        self.peers
            .keys()
            .copied()
            .filter(|n| self.members.binary_search(n).is_err())
            .collect()
    }

    /// Adds a member; false for this node or a banned one.
    pub(super) fn add_member(&mut self, id: NodeId) -> bool {
        if id == self.me || self.banned.contains(&id) {
            return false;
        }
        if let Err(pos) = self.members.binary_search(&id) {
            Arc::make_mut(&mut self.members).insert(pos, id);
        }
        true
    }

    pub(super) fn remove_member(&mut self, id: NodeId) {
        if let Ok(pos) = self.members.binary_search(&id) {
            Arc::make_mut(&mut self.members).remove(pos);
        }
    }

    // ----- the neighbour set -----

    pub(super) fn ids(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.peers.keys().copied()
    }

    pub(super) fn contains(&self, id: NodeId) -> bool {
        self.peers.contains_key(&id)
    }

    /// Picks random members as new outbound neighbours until this node has `want` of them
    /// (a bounded number of draws): when this node knows its rack, all but `cross` among the
    /// members that said they share it, the rest outside it. Returns them in the order picked;
    /// each needs a `Hello`.
    pub(super) fn pick_more(
        &mut self,
        rng: &mut Rng,
        now: Time,
        racks: &Racks,
        cross: usize,
    ) -> Vec<NodeId> {
        let mut picked = Vec::new();
        if self.members.is_empty() {
            return picked;
        }
        let outbound = self.peers.values().filter(|p| p.outbound).count();
        let mut need = self.want.saturating_sub(outbound);
        if racks.placed() && need > 0 {
            // All but `cross` in this node's rack.
            let local_out = self
                .peers
                .iter()
                .filter(|(id, p)| p.outbound && racks.is_local(**id))
                .count();
            let mut local_need = self.want.saturating_sub(cross).saturating_sub(local_out);
            let mut pool: Vec<NodeId> = racks
                .local()
                .iter()
                .copied()
                .filter(|id| {
                    self.members.binary_search(id).is_ok()
                        && !self.peers.contains_key(id)
                        && !self.said_bye.contains_key(id)
                })
                .collect();
            while local_need > 0 && need > 0 && !pool.is_empty() && self.peers.len() < self.max {
                let pick = pool.swap_remove(rng.below(pool.len() as u64) as usize);
                let relied = self.is_relied(pick);
                self.insert(pick, Peer::new(true, now, relied));
                picked.push(pick);
                need -= 1;
                local_need -= 1;
            }
        }
        let mut tries = 4 * need + 8;
        while need > 0 && tries > 0 && self.peers.len() < self.max {
            tries -= 1;
            let pick = self.members[rng.below(self.members.len() as u64) as usize];
            if self.peers.contains_key(&pick)
                || self.said_bye.contains_key(&pick)
                || racks.is_local(pick)
            {
                continue;
            }
            let relied = self.is_relied(pick);
            self.insert(pick, Peer::new(true, now, relied));
            picked.push(pick);
            need -= 1;
        }
        picked
    }

    /// Takes `from`, whose `Hello` arrived, as a neighbour; false when the set is full.
    pub(super) fn accept(&mut self, from: NodeId, now: Time) -> bool {
        if self.peers.contains_key(&from) {
            return true;
        }
        if self.peers.len() >= self.max {
            return false;
        }
        let relied = self.is_relied(from);
        self.insert(from, Peer::new(false, now, relied));
        true
    }

    /// Adds (or replaces) neighbour `id`, holding and fetching nothing.
    fn insert(&mut self, id: NodeId, peer: Peer) {
        match self.peers.index(&id) {
            Some(c) => {
                self.bits.clear_col(c);
                self.fetching.clear_col(c);
            }
            None => {
                let c = self.peers.insertion_point(&id);
                self.bits.insert_col(c);
                self.fetching.insert_col(c);
            }
        }
        self.peers.insert(id, peer);
    }

    /// `id`'s `Hello` arrived; returns the round trip if this node's `Hello` awaited it.
    pub(super) fn mark_greeted(&mut self, id: NodeId, now: Time) -> Option<Duration> {
        let peer = self.peers.get_mut(&id)?;
        let waited = !peer.greeted;
        peer.greeted = true;
        waited.then(|| now.saturating_duration_since(peer.hello_at))
    }

    /// Whether every neighbour this node picked has sent its `Hello`.
    pub(super) fn all_outbound_greeted(&self) -> bool {
        self.peers.values().all(|p| p.greeted)
    }

    /// The neighbours this node picked that have not answered its `Hello` within `timeout`,
    /// and when the next one would be due.
    pub(super) fn silent(&self, now: Time, timeout: Duration) -> (Vec<NodeId>, Option<Time>) {
        let mut silent = Vec::new();
        let mut next: Option<Time> = None;
        for (&id, p) in self.peers.iter().filter(|(_, p)| !p.greeted) {
            let due = p.hello_at + timeout;
            if due <= now {
                silent.push(id);
            } else {
                next = Some(next.map_or(due, |n| n.min(due)));
            }
        }
        (silent, next)
    }

    /// Removes a neighbour and what it held and fetched.
    pub(super) fn remove(&mut self, id: NodeId) -> Option<Vec<Change>> {
        let c = self.peers.index(&id)?;
        self.peers.remove(&id);
        let held: Vec<u32> = self.bits.col(c).collect();
        let fetching: Vec<u32> = self.fetching.col(c).collect();
        self.bits.remove_col(c);
        self.fetching.remove_col(c);
        let mut changes = Vec::new();
        let relied = self.is_relied(id);
        for b in held {
            if !self.is_excluded(b, id) {
                self.add_holder(b, -1, relied, &mut changes);
            }
        }
        for b in fetching {
            changes.extend(self.add_fetcher(b, -1));
        }
        self.announced.retain(|(p, _), _| *p != id);
        Some(changes)
    }

    /// A deposed owner's announced hub fetches no longer count, nor do those it announces
    /// later in this release.
    pub(super) fn drop_fetching(&mut self, id: NodeId) -> Vec<Change> {
        if self.deposed.len() >= TRACKED && !self.deposed.contains(&id) {
            self.deposed.pop_first();
        }
        self.deposed.insert(id);
        let Some(c) = self.peers.index(&id) else {
            return Vec::new();
        };
        let fetching: Vec<u32> = self.fetching.col(c).collect();
        self.fetching.clear_col(c);
        self.announced.retain(|(p, _), _| *p != id);
        fetching
            .into_iter()
            .filter_map(|b| self.add_fetcher(b, -1))
            .collect()
    }

    /// `from` said `Bye` (or was dropped): it is not picked again for a while.
    pub(super) fn said_bye(&mut self, from: NodeId, now: Time) {
        self.said_bye.insert(from, now + BYE_QUIET);
    }

    /// Forgets the byes whose quiet time is over; whether any was.
    pub(super) fn expire_byes(&mut self, now: Time) -> bool {
        let before = self.said_bye.len();
        self.said_bye.retain(|_, t| *t > now);
        self.said_bye.len() < before
    }

    // ----- holdings -----

    /// Forgets every holding and announcement of the previous release.
    pub(super) fn restart(&mut self) {
        self.holders.clear();
        self.relied.clear();
        self.fetchers.clear();
        self.excluded.clear();
        self.announced.clear();
        self.deposed.clear();
        self.bits.clear();
        self.fetching.clear();
        self.new_haves.clear();
        self.new_fetches.clear();
        self.new_crossings.clear();
    }

    /// The plan is complete with `blocks` blocks: claims of blocks beyond them (which no
    /// honest peer makes) are dropped, and later ones ignored, so that one peer's claim of a
    /// block near [`MAX_BLOCKS`] cannot keep every neighbour's row of the matrices that long.
    pub(super) fn bound(&mut self, blocks: u32) {
        self.bits.bound(blocks);
        self.fetching.bound(blocks);
        for counts in [&mut self.holders, &mut self.relied, &mut self.fetchers] {
            counts.truncate(blocks as usize);
            counts.shrink_to_fit();
        }
        self.announced.retain(|&(_, b), _| b < blocks);
        self.excluded.retain(|&b, _| b < blocks);
    }

    /// Neighbours holding `idx`.
    pub(super) fn holders_of(&self, idx: u32) -> u32 {
        self.holders.get(idx as usize).copied().unwrap_or(0)
    }

    /// Neighbours holding `idx` whose claims are relied on.
    pub(super) fn relied_of(&self, idx: u32) -> u32 {
        self.relied.get(idx as usize).copied().unwrap_or(0)
    }

    /// Neighbours fetching `idx` from the hub.
    pub(super) fn fetchers_of(&self, idx: u32) -> u32 {
        self.fetchers.get(idx as usize).copied().unwrap_or(0)
    }

    /// Whether neighbour `id` claims to hold `idx`.
    pub(super) fn claims(&self, id: NodeId, idx: u32) -> bool {
        self.peers.index(&id).is_some_and(|c| self.bits.get(c, idx))
    }

    /// The neighbours relied on.
    pub(super) fn relied_peers(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.peers.keys().copied().filter(|&id| self.is_relied(id))
    }

    /// The blocks the neighbours relied on (and passing `also`) hold, neighbour by neighbour.
    pub(super) fn relied_holdings<'a>(
        &'a self,
        also: impl Fn(NodeId) -> bool + 'a,
    ) -> impl Iterator<Item = u32> + 'a {
        self.peers
            .keys()
            .enumerate()
            .filter(move |(_, id)| self.is_relied(**id) && also(**id))
            .flat_map(|(c, _)| self.bits.col(c))
    }

    /// The neighbours holding `idx` that are not excluded for it, in id order.
    #[cfg(test)]
    pub(super) fn holders(&self, idx: u32) -> impl Iterator<Item = NodeId> + '_ {
        self.holders_trusted(idx).map(|(id, _)| id)
    }

    /// [`Self::holders`], each with whether it is relied on.
    pub(super) fn holders_trusted(&self, idx: u32) -> impl Iterator<Item = (NodeId, bool)> + '_ {
        let excluded = self.excluded.get(&idx);
        let (row, mask) = self.bits.row_of(idx);
        self.peers
            .iter()
            .zip(row)
            .filter(move |((id, _), w)| *w & mask != 0 && !excluded.is_some_and(|e| e.contains(id)))
            .map(|((id, p), _)| (*id, p.relied))
    }

    /// Whether `id` was deposed as an owner during this release.
    pub(super) fn is_deposed(&self, id: NodeId) -> bool {
        self.deposed.contains(&id)
    }

    fn is_excluded(&self, idx: u32, id: NodeId) -> bool {
        self.excluded.get(&idx).is_some_and(|e| e.contains(&id))
    }

    /// Adds holdings from a `Hello`. Holdings only grow during a release (a `NotFound` answer
    /// clears one bit), so a union is right even when a `Hello` overtakes a `Have`.
    pub(super) fn add_bits(&mut self, id: NodeId, bits: &Bitfield) -> Vec<Change> {
        let Some(c) = self.peers.index(&id) else {
            return Vec::new();
        };
        let added: Vec<u32> = bits.iter().filter(|b| self.bits.set(c, *b)).collect();
        let counted: Vec<u32> = added
            .into_iter()
            .filter(|&b| !self.is_excluded(b, id))
            .collect();
        let relied = self.is_relied(id);
        let mut changes = Vec::new();
        for b in counted {
            self.add_holder(b, 1, relied, &mut changes);
        }
        changes
    }

    /// Records hub fetches a neighbour announced at `now` (of blocks it does not hold yet),
    /// `started` if as they started (a `Fetching`, not a `Hello`). A repeated announcement is
    /// a retry: its time replaces the earlier one. A deposed owner's are ignored.
    pub(super) fn add_fetching(
        &mut self,
        id: NodeId,
        blocks: impl Iterator<Item = u32>,
        now: Time,
        started: bool,
    ) -> Vec<Change> {
        if self.deposed.contains(&id) {
            return Vec::new();
        }
        let Some(c) = self.peers.index(&id) else {
            return Vec::new();
        };
        let mut added = Vec::new();
        let limit = self.fetching.limit();
        for b in blocks.filter(|b| !self.bits.get(c, *b) && *b < limit) {
            if self.fetching.set(c, b) {
                added.push(b);
            }
            let room = self.announced.len() < ANNOUNCED || self.announced.contains_key(&(id, b));
            if room {
                self.announced.insert((id, b), (now, started));
            }
        }
        added
            .into_iter()
            .filter_map(|b| self.add_fetcher(b, 1))
            .collect()
    }

    /// Voids the announced hub fetches that `overdue(announced at, block)` says should have
    /// completed by now: they no longer count.
    pub(super) fn void_overdue(&mut self, overdue: impl Fn(Time, u32) -> bool) -> Vec<Change> {
        let stale: Vec<(NodeId, u32)> = self
            .announced
            .iter()
            .filter(|&(&(_, b), &(t, _))| overdue(t, b))
            .map(|(&k, _)| k)
            .collect();
        stale
            .into_iter()
            .filter_map(|(id, b)| self.unannounce(id, b))
            .collect()
    }

    /// Neighbour `id` said its hub fetches of `blocks` failed: they no longer count.
    pub(super) fn fetches_failed(&mut self, id: NodeId, blocks: &[u32]) -> Vec<Change> {
        blocks
            .iter()
            .filter_map(|&b| self.unannounce(id, b))
            .collect()
    }

    /// `id`'s announced hub fetch of `b` no longer counts.
    fn unannounce(&mut self, id: NodeId, b: u32) -> Option<Change> {
        self.announced.remove(&(id, b));
        let c = self.peers.index(&id)?;
        if self.fetching.unset(c, b) {
            self.add_fetcher(b, -1)
        } else {
            None
        }
    }

    /// A neighbour's `Have`: the blocks are held, no longer fetched. The hub fetches it had
    /// announced go to `fetched` with their start.
    pub(super) fn have(
        &mut self,
        id: NodeId,
        blocks: Vec<u32>,
        fetched: &mut Vec<(u32, Time)>,
    ) -> Vec<Change> {
        let Neighbours {
            peers,
            bits,
            fetching,
            announced,
            fetchers,
            ..
        } = self;
        let Some(c) = peers.index(&id) else {
            return Vec::new();
        };
        let mut changes = Vec::new();
        let mut new = blocks;
        new.retain(|&b| {
            if fetching.unset(c, b) {
                if let Some((start, true)) = announced.remove(&(id, b)) {
                    fetched.push((b, start));
                }
                changes.extend(fetcher_change(fetchers, b, -1));
            }
            bits.set(c, b)
        });
        new.retain(|&b| !self.is_excluded(b, id));
        let relied = self.is_relied(id);
        for b in new {
            self.add_holder(b, 1, relied, &mut changes);
        }
        changes
    }

    /// A neighbour said it does not have `idx` after all.
    pub(super) fn not_found(&mut self, id: NodeId, idx: u32) -> Vec<Change> {
        let cleared = self
            .peers
            .index(&id)
            .is_some_and(|c| self.bits.unset(c, idx));
        let mut changes = Vec::new();
        if cleared && !self.is_excluded(idx, id) {
            let relied = self.is_relied(id);
            self.add_holder(idx, -1, relied, &mut changes);
        }
        changes
    }

    /// Counts a holder of `idx` in or out (`relied`: one relied on, counted there too).
    fn add_holder(&mut self, idx: u32, delta: i32, relied: bool, changes: &mut Vec<Change>) {
        let Some(n) = counter(&mut self.holders, idx) else {
            return;
        };
        let before = *n;
        *n = before.saturating_add_signed(delta);
        let after = *n;
        let relied = self.count_relied(idx, if relied { delta } else { 0 });
        changes.push(Change::Holders {
            idx,
            before,
            after,
            relied,
        });
    }

    /// Moves the relied count of `idx` by `delta`; returns it before and after.
    fn count_relied(&mut self, idx: u32, delta: i32) -> [u32; 2] {
        let Some(n) = counter(&mut self.relied, idx) else {
            return [0, 0];
        };
        let before = *n;
        *n = before.saturating_add_signed(delta);
        [before, *n]
    }

    /// A relied count alone moved (the holders did not).
    fn add_relied(&mut self, idx: u32, delta: i32) -> Option<Change> {
        let holders = self.holders_of(idx);
        let relied = self.count_relied(idx, delta);
        Some(Change::Holders {
            idx,
            before: holders,
            after: holders,
            relied,
        })
    }

    /// `id` is no longer relied on (`delta` -1) or is now (+1): its counted holdings move out
    /// of or into the relied counts.
    fn rely_on(&mut self, id: NodeId, delta: i32) -> Vec<Change> {
        let Neighbours {
            peers,
            bits,
            excluded,
            ..
        } = self;
        let Some(c) = peers.index(&id) else {
            return Vec::new();
        };
        if let Some(peer) = peers.get_mut(&id) {
            peer.relied = delta > 0;
        }
        let blocks: Vec<u32> = bits
            .col(c)
            .filter(|b| !excluded.get(b).is_some_and(|e| e.contains(&id)))
            .collect();
        blocks
            .into_iter()
            .filter_map(|b| self.add_relied(b, delta))
            .collect()
    }

    fn add_fetcher(&mut self, idx: u32, delta: i32) -> Option<Change> {
        fetcher_change(&mut self.fetchers, idx, delta)
    }

    // ----- announcements -----

    /// A block verified: announce it (`Have`) to the neighbours that lack it.
    pub(super) fn queue_have(&mut self, idx: u32) {
        self.new_haves.push(idx);
    }

    /// A hub fetch started: announce it (`Fetching`) so neighbours know it is on its way.
    pub(super) fn queue_fetching(&mut self, idx: u32) {
        self.new_fetches.push(idx);
    }

    /// A hub fetch failed before its `Fetching` went out: it is not announced.
    pub(super) fn unqueue_fetching(&mut self, idx: u32) {
        self.new_fetches.retain(|&i| i != idx);
    }

    /// A chunk is crossing the rack's uplink: tell the neighbours in the rack (`Crossing`).
    pub(super) fn queue_crossing(&mut self, idx: u32) {
        self.new_crossings.push(idx);
    }

    /// Sends what was queued, one message of each kind per neighbour that lacks the blocks
    /// (crossings only to those `in_rack`). `tag` is the release's; while `lookups_pending`
    /// (the store still answers for known blocks, one by one) `Have`s wait so they go out
    /// together, unless fetches or crossings are queued.
    pub(super) fn announce<P>(
        &mut self,
        tag: Option<u64>,
        lookups_pending: bool,
        in_rack: impl Fn(NodeId) -> bool,
        out: &mut VecDeque<Output<P>>,
    ) {
        let urgent = !self.new_fetches.is_empty() || !self.new_crossings.is_empty();
        if self.new_haves.is_empty() && !urgent {
            return;
        }
        if lookups_pending && !urgent {
            return;
        }
        let Some(tag) = tag else {
            self.new_haves.clear();
            self.new_fetches.clear();
            self.new_crossings.clear();
            return;
        };
        let have = std::mem::take(&mut self.new_haves);
        let fetching = std::mem::take(&mut self.new_fetches);
        let crossing = std::mem::take(&mut self.new_crossings);
        type Kind = fn(u64, Vec<u32>) -> Message;
        let kinds: [(&[u32], Kind); 3] = [
            (&have, |release, blocks| Message::Have { release, blocks }),
            (&fetching, |release, blocks| Message::Fetching {
                release,
                blocks,
            }),
            (&crossing, |release, blocks| Message::Crossing {
                release,
                blocks,
            }),
        ];
        for (c, &id) in self.peers.keys().enumerate() {
            let to_rack = !crossing.is_empty() && in_rack(id);
            // Crossings, the last kind, go only to the rack.
            for (blocks, message) in kinds.iter().take(if to_rack { 3 } else { 2 }) {
                let bits = &self.bits;
                let mut news = blocks.iter().copied().filter(|b| !bits.get(c, *b));
                loop {
                    let blocks: Vec<u32> = news.by_ref().take(MAX_HAVE_BLOCKS).collect();
                    if blocks.is_empty() {
                        break;
                    }
                    let msg = message(tag, blocks);
                    out.push_back(Output::Send { to: id, msg });
                }
            }
        }
    }

    // ----- trust -----

    pub(super) fn is_banned(&self, id: NodeId) -> bool {
        self.banned.contains(&id)
    }

    /// Bans `id` and drops it from the members; false if it already was. The agent then drops
    /// it as a neighbour and an owner.
    pub(super) fn ban(&mut self, id: NodeId) -> bool {
        if !self.banned.insert(id) {
            return false;
        }
        if self.banned.len() > TRACKED {
            self.banned.pop_first();
        }
        self.remove_member(id);
        true
    }

    /// Whether nothing is kept of claims at or beyond `blocks` (the plan is complete).
    #[cfg(any(test, feature = "fuzzing"))]
    pub(super) fn bounded_to(&self, blocks: u32) -> bool {
        let kept = |m: &BitMatrix| {
            m.limit() <= blocks && (0..self.peers.len()).all(|c| m.col(c).all(|b| b < blocks))
        };
        kept(&self.bits)
            && kept(&self.fetching)
            && [&self.holders, &self.relied, &self.fetchers]
                .iter()
                .all(|v| v.len() <= blocks as usize)
            && self.announced.keys().all(|&(_, b)| b < blocks)
    }

    /// Whether every neighbour's cached trust agrees with [`Self::is_relied`].
    #[cfg(any(test, feature = "fuzzing"))]
    pub(super) fn relied_flags_agree(&self) -> bool {
        self.peers
            .iter()
            .all(|(id, p)| p.relied == self.is_relied(*id))
    }

    /// Whether `peer`'s claims are relied on: it delivered a verified block to this node, has
    /// not failed a request since, and never sent a corrupt one.
    pub(super) fn is_relied(&self, peer: NodeId) -> bool {
        self.proven.contains(&peer) && self.faults(peer) == 0
    }

    /// `peer` was relied on (`was`) before a change of its record: moves its counted
    /// holdings into or out of the relied counts if that changed.
    fn retrust(&mut self, peer: NodeId, was: bool) -> Vec<Change> {
        match (was, self.is_relied(peer)) {
            (false, true) => self.rely_on(peer, 1),
            (true, false) => self.rely_on(peer, -1),
            _ => Vec::new(),
        }
    }

    /// Counts a corrupt block from `peer`; returns its faults so far (see [`Self::faults`])
    /// and the changes of the relied counts.
    pub(super) fn add_fault(&mut self, peer: NodeId) -> (u32, Vec<Change>) {
        let was = self.is_relied(peer);
        let mut changes = Vec::new();
        if self.faults.len() >= TRACKED && !self.faults.contains_key(&peer) {
            changes.extend(self.forget_first(|n| &mut n.faults));
        }
        let n = self.faults.entry(peer).or_insert(0);
        *n = n.saturating_add(1);
        changes.extend(self.retrust(peer, was));
        (self.faults(peer), changes)
    }

    /// Forgets the lowest-keyed peer of a bounded record to make room, keeping the relied
    /// counts true.
    fn forget_first<V>(
        &mut self,
        record: impl Fn(&mut Self) -> &mut BTreeMap<NodeId, V>,
    ) -> Vec<Change> {
        let Some(id) = record(self).keys().next().copied() else {
            return Vec::new();
        };
        let was = self.is_relied(id);
        record(self).remove(&id);
        self.retrust(id, was)
    }

    /// Counts a request `peer` failed.
    ///
    /// A request that started before the peer's last counted miss overlapped it, and the
    /// overlapping failures count once: a peer that was slow for a while (under load, or
    /// behind a congested link) takes one miss for that while, not one per request it had
    /// in flight. Failures judged `apart` (requests whose block another holder delivered
    /// meanwhile) of a peer that never delivered to this node count one by one: the block
    /// was there to be had, and nothing shows the peer serves at all. Returns the peer's
    /// faults and the changes of the relied counts, or `None` if this failure was not
    /// counted.
    pub(super) fn add_miss(
        &mut self,
        peer: NodeId,
        started: Time,
        now: Time,
        apart: bool,
    ) -> Option<(u32, Vec<Change>)> {
        let was = self.is_relied(peer);
        let mut changes = Vec::new();
        if let Some(m) = self.misses.get_mut(&peer) {
            if started <= m.last && (!apart || self.proven.contains(&peer)) {
                return None;
            }
            m.count = m.count.saturating_add(1);
            m.last = now;
        } else {
            if self.misses.len() >= TRACKED {
                changes.extend(self.forget_first(|n| &mut n.misses));
            }
            self.misses.insert(
                peer,
                Misses {
                    count: 1,
                    last: now,
                },
            );
        }
        changes.extend(self.retrust(peer, was));
        Some((self.faults(peer), changes))
    }

    /// `peer` delivered a block that verified: it is proven, its failed requests are forgiven
    /// (its corrupt blocks are not), and its claims are relied on unless it sent one.
    pub(super) fn delivered(&mut self, peer: NodeId) -> Vec<Change> {
        let was = self.is_relied(peer);
        let mut changes = Vec::new();
        if !self.proven.contains(&peer)
            && self.proven.len() >= TRACKED
            && let Some(&first) = self.proven.first()
        {
            let was = self.is_relied(first);
            self.proven.remove(&first);
            changes.extend(self.retrust(first, was));
        }
        self.proven.insert(peer);
        self.misses.remove(&peer);
        changes.extend(self.retrust(peer, was));
        changes
    }

    /// The corrupt blocks `peer` sent, plus the requests it failed since it last delivered.
    pub(super) fn faults(&self, peer: NodeId) -> u32 {
        let corrupt = self.faults.get(&peer).copied().unwrap_or(0);
        corrupt.saturating_add(self.misses.get(&peer).map_or(0, |m| m.count))
    }

    /// `peer` is not asked for `idx` again, nor counted as its holder (until the block is held
    /// or the release changes).
    pub(super) fn exclude(&mut self, idx: u32, peer: NodeId) -> Vec<Change> {
        let list = self.excluded.entry(idx).or_default();
        if list.contains(&peer) || list.len() >= self.max {
            return Vec::new();
        }
        list.push(peer);
        let holds = self.claims(peer, idx);
        let mut changes = Vec::new();
        if holds {
            let relied = self.is_relied(peer);
            self.add_holder(idx, -1, relied, &mut changes);
        }
        changes
    }

    /// `idx` is held: its exclusions are moot, and its excluded holders count again.
    pub(super) fn clear_exclusions(&mut self, idx: u32) -> Vec<Change> {
        let Some(list) = self.excluded.remove(&idx) else {
            return Vec::new();
        };
        let back: Vec<NodeId> = list
            .into_iter()
            .filter(|id| self.claims(*id, idx))
            .collect();
        let mut changes = Vec::new();
        for id in back {
            let relied = self.is_relied(id);
            self.add_holder(idx, 1, relied, &mut changes);
        }
        changes
    }
}

/// The counter of `idx` in `counts`, grown as needed; `None` beyond the plan's limit.
fn counter(counts: &mut Vec<u32>, idx: u32) -> Option<&mut u32> {
    if idx >= MAX_BLOCKS {
        return None;
    }
    let i = idx as usize;
    if counts.len() <= i {
        counts.resize(i + 1, 0);
    }
    Some(&mut counts[i])
}

/// Adds `delta` to the fetchers of `idx`.
fn fetcher_change(fetchers: &mut Vec<u32>, idx: u32, delta: i32) -> Option<Change> {
    let n = counter(fetchers, idx)?;
    *n = n.saturating_add_signed(delta);
    Some(Change::Fetchers { idx, after: *n })
}

/// The requests a peer failed since it last delivered one.
#[derive(Debug, Clone, Copy)]
struct Misses {
    count: u32,
    /// When the last counted one failed.
    last: Time,
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: NodeId = NodeId(1);
    const B: NodeId = NodeId(2);
    const C: NodeId = NodeId(3);

    fn bits(blocks: &[u32]) -> Bitfield {
        let mut b = Bitfield::new();
        for &i in blocks {
            b.set(i);
        }
        b
    }

    fn holders(n: &Neighbours, blocks: &[u32]) -> Vec<u32> {
        blocks.iter().map(|&b| n.holders_of(b)).collect()
    }

    #[test]
    fn holder_and_fetcher_counts_follow_hellos_haves_and_departures() {
        let mut n = Neighbours::new(&AgentConfig::default());
        assert!(n.accept(A, Time::ZERO) && n.accept(B, Time::ZERO));
        let changes = n.add_bits(A, &bits(&[1, 2]));
        assert_eq!(
            changes,
            [
                Change::Holders {
                    idx: 1,
                    before: 0,
                    after: 1,
                    relied: [0, 0]
                },
                Change::Holders {
                    idx: 2,
                    before: 0,
                    after: 1,
                    relied: [0, 0]
                }
            ]
        );
        // Block 1 is held by A already: not counted as fetched by A.
        n.add_fetching(A, [1, 3].into_iter(), Time::ZERO, true);
        n.add_fetching(B, [3].into_iter(), Time::ZERO, true);
        assert_eq!(n.fetchers_of(3), 2);
        assert_eq!(n.fetchers_of(1), 0);
        let mut fetched = Vec::new();
        let changes = n.have(B, vec![2, 3, 3], &mut fetched);
        assert_eq!(fetched, [(3, Time::ZERO)], "B's hub fetch of 3 completed");
        assert_eq!(changes[0], Change::Fetchers { idx: 3, after: 1 });
        assert_eq!(changes.len(), 3);
        assert_eq!(holders(&n, &[1, 2, 3]), [1, 2, 1]);
        assert_eq!(n.holders(2).collect::<Vec<_>>(), [A, B]);
        n.exclude(2, A);
        assert_eq!(n.holders(2).collect::<Vec<_>>(), [B]);
        assert_eq!(holders(&n, &[2]), [1], "an excluded holder does not count");
        n.clear_exclusions(2);
        assert_eq!(holders(&n, &[2]), [2]);
        n.exclude(2, A);
        assert_eq!(
            n.not_found(B, 3),
            [Change::Holders {
                idx: 3,
                before: 1,
                after: 0,
                relied: [0, 0]
            }],
            "B was not relied on: only the holders changed"
        );
        assert_eq!(n.not_found(B, 3), []);
        n.remove(A).unwrap();
        assert_eq!(
            holders(&n, &[1, 2, 3]),
            [0, 1, 0],
            "A was not counted for 2"
        );
        assert_eq!(n.fetchers_of(3), 0);
        assert!(n.remove(A).is_none());
        n.restart();
        assert_eq!(holders(&n, &[2]), [0]);
        assert_eq!((0..n.peers.len()).map(|c| n.bits.count(c)).sum::<u32>(), 0);
    }

    /// Once the plan is complete, claims beyond its blocks are dropped and ignored: one peer
    /// cannot make every neighbour's holdings that long.
    #[test]
    fn claims_beyond_a_complete_plan_are_dropped() {
        let far = MAX_BLOCKS - 1;
        let mut n = Neighbours::new(&AgentConfig::default());
        assert!(n.accept(A, Time::ZERO) && n.accept(B, Time::ZERO));
        n.add_bits(A, &bits(&[1, far]));
        n.add_fetching(B, [far].into_iter(), Time::ZERO, true);
        assert_eq!(
            holders(&n, &[1, far]),
            [1, 1],
            "the plan's size is not known yet"
        );
        assert_eq!(n.fetchers_of(far), 1);
        n.bound(3);
        assert_eq!(holders(&n, &[1, far]), [1, 0]);
        assert_eq!(n.fetchers_of(far), 0);
        assert!(n.holders.len() <= 3 && n.fetchers.len() <= 3);
        assert!(n.announced.is_empty());
        assert_eq!(
            n.add_bits(B, &bits(&[2, far])).len(),
            1,
            "only block 2 counts"
        );
        assert!(n.have(A, vec![far], &mut Vec::new()).is_empty());
        assert!(
            n.add_fetching(A, [far].into_iter(), Time::ZERO, true)
                .is_empty()
        );
        assert!(n.announced.is_empty());
        assert_eq!(n.holders(far).count(), 0);
        n.restart();
        n.add_bits(A, &bits(&[far]));
        assert_eq!(holders(&n, &[far]), [1], "a new release lifts the bound");
    }

    #[test]
    fn bans_and_a_full_set_keep_peers_out() {
        let cfg = AgentConfig {
            id: NodeId(9),
            max_neighbours: 2,
            ..AgentConfig::default()
        };
        let mut n = Neighbours::new(&cfg);
        let gone = n.set_members(vec![C, A, NodeId(9), B, A]);
        assert!(gone.is_empty());
        assert_eq!(n.members(), [A, B, C]);
        let t = Time::ZERO;
        assert!(n.accept(A, t) && n.accept(B, t) && !n.accept(C, t));
        assert!(n.ban(B) && !n.ban(B));
        assert!(n.is_banned(B) && !n.add_member(B) && !n.add_member(NodeId(9)));
        assert_eq!(n.members(), [A, C]);
        // The agent drops a banned peer as a neighbour; a new member list does too.
        assert_eq!(n.set_members(vec![A, B, C]), [B]);
        assert_eq!(n.members(), [A, C]);
        assert_eq!((n.add_fault(A).0, n.add_fault(A).0, n.faults(C)), (1, 2, 0));
        let faults = |m: Option<(u32, Vec<Change>)>| m.map(|(f, _)| f);
        assert_eq!(
            (
                faults(n.add_miss(A, t, t, false)),
                faults(n.add_miss(C, t, t, false))
            ),
            (Some(3), Some(1))
        );
        n.delivered(A);
        n.delivered(C);
        assert_eq!(
            (n.faults(A), n.faults(C)),
            (2, 0),
            "corrupt blocks are not forgiven"
        );
    }

    #[test]
    fn claims_are_relied_on_only_from_a_peer_that_delivered_and_has_not_failed_since() {
        let mut n = Neighbours::new(&AgentConfig::default());
        let t = Time::ZERO;
        n.accept(A, t);
        n.accept(B, t);
        n.add_bits(A, &bits(&[1, 2]));
        n.add_bits(B, &bits(&[2]));
        let relied = |n: &Neighbours| [1, 2].map(|b| n.relied_of(b));
        assert_eq!(holders(&n, &[1, 2]), [1, 2]);
        assert_eq!(relied(&n), [0, 0], "nobody has delivered yet");
        assert_eq!(n.relied_holdings(|_| true).count(), 0);
        let changes = n.delivered(A);
        assert_eq!(relied(&n), [1, 1]);
        let held: Vec<u32> = n.relied_holdings(|_| true).collect();
        assert_eq!(held, [1, 2], "A's claims only");
        assert_eq!(changes.len(), 2, "{changes:?}");
        // A new claim of a relied peer is relied on at once; an excluded one is not.
        n.add_bits(A, &bits(&[3]));
        assert_eq!(n.relied_of(3), 1);
        n.exclude(3, A);
        assert_eq!((n.holders_of(3), n.relied_of(3)), (0, 0));
        // A failure takes A's claims out of the relied counts, the next delivery back in.
        let (_, changes) = n.add_miss(A, t, t, false).expect("counted");
        assert_eq!(relied(&n), [0, 0]);
        assert!(
            changes
                .iter()
                .all(|c| matches!(c, Change::Holders { relied: [1, 0], .. }))
        );
        assert_eq!(holders(&n, &[1, 2]), [1, 2], "still asked");
        n.delivered(A);
        assert_eq!(relied(&n), [1, 1]);
        // A corrupt block is never forgiven.
        n.add_fault(A);
        n.delivered(A);
        assert_eq!(relied(&n), [0, 0]);
        assert!(!n.is_relied(A));
        n.delivered(B);
        assert_eq!(relied(&n), [0, 1]);
        n.remove(B).expect("a neighbour");
        assert_eq!(relied(&n), [0, 0]);
    }

    #[test]
    fn overlapping_failed_requests_count_as_one_miss_unless_judged_apart() {
        let mut n = Neighbours::new(&AgentConfig::default());
        let at = |s: u64| Time::ZERO + Duration::from_secs(s);
        let mut miss = |started, now| n.add_miss(A, at(started), at(now), false).map(|(f, _)| f);
        // Three requests in flight together time out one after another: one miss.
        assert_eq!(miss(0, 3), Some(1));
        assert_eq!(miss(1, 4), None);
        assert_eq!(miss(3, 5), None);
        // A request started after that miss is a new failure.
        assert_eq!(miss(4, 7), Some(2));
        assert_eq!(miss(8, 11), Some(3));
        // A delivery forgives them; the next failure starts a new count.
        n.delivered(A);
        assert_eq!(n.add_miss(A, at(9), at(12), false).map(|(f, _)| f), Some(1));
        // Judged apart (requests outrun by another holder), the failures of a peer that never
        // delivered count one by one; those of one that did still overlap.
        assert_eq!(n.add_miss(B, at(0), at(3), true).map(|(f, _)| f), Some(1));
        assert_eq!(n.add_miss(B, at(1), at(4), true).map(|(f, _)| f), Some(2));
        assert_eq!(n.add_miss(A, at(10), at(13), true).map(|(f, _)| f), None);
    }

    #[test]
    fn a_deposed_owners_hub_fetches_count_no_more_this_release() {
        let mut n = Neighbours::new(&AgentConfig::default());
        n.accept(A, Time::ZERO);
        n.add_fetching(A, [3].into_iter(), Time::ZERO, true);
        assert_eq!(n.fetchers_of(3), 1);
        n.drop_fetching(A);
        assert_eq!(n.fetchers_of(3), 0);
        // It retries and announces again: ignored.
        n.add_fetching(A, [3, 4].into_iter(), Time::ZERO, true);
        assert_eq!((n.fetchers_of(3), n.fetchers_of(4)), (0, 0));
        assert!(n.is_deposed(A));
        // A new release starts with a clean slate.
        n.restart();
        n.add_fetching(A, [3].into_iter(), Time::ZERO, true);
        assert_eq!(n.fetchers_of(3), 1);
    }

    #[test]
    fn announcements_go_once_to_neighbours_that_lack_the_blocks() {
        let mut n = Neighbours::new(&AgentConfig::default());
        n.accept(A, Time::ZERO);
        n.accept(B, Time::ZERO);
        n.add_bits(A, &bits(&[5]));
        n.queue_have(5);
        n.queue_have(6);
        let mut out: VecDeque<Output<Vec<u8>>> = VecDeque::new();
        n.announce(Some(7), true, |_| true, &mut out);
        assert!(out.is_empty(), "Haves wait for the store's answers");
        n.announce(Some(7), false, |_| true, &mut out);
        let sent: Vec<(NodeId, Vec<u32>)> = out
            .drain(..)
            .map(|o| match o {
                Output::Send {
                    to,
                    msg: Message::Have { release: 7, blocks },
                } => (to, blocks),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(sent, [(A, vec![6]), (B, vec![5, 6])]);
        n.announce(Some(7), false, |_| true, &mut out);
        assert!(out.is_empty());
        // Crossings go at once, only to the rack.
        n.queue_crossing(9);
        n.announce(Some(7), true, |p| p == B, &mut out);
        let sent: Vec<_> = out.drain(..).collect();
        assert!(
            matches!(&sent[..], [Output::Send { to: B, msg: Message::Crossing { release: 7, blocks } }] if *blocks == [9]),
            "{sent:?}"
        );
    }
}
