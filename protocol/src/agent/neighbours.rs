//! The neighbours part: the cohort members, the bounded set of neighbours this node talks to,
//! what each of them holds and fetches, what is still to be announced to them, and how far
//! each peer is trusted (faults, bans, per-block exclusions).
//!
//! Invariants: `holders[b]` is the number of neighbours whose holdings include block `b` and
//! `fetchers[b]` the number that announced a hub fetch of it; a banned node is neither a member
//! nor a neighbour. Every change of a count is reported as a [`Change`] so the agent can
//! update what depends on it.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use super::{
    AgentConfig, Bitfield, MAX_BLOCKS, MAX_HAVE_BLOCKS, Message, NodeId, Output, Rng, Time,
};

/// How long a node that said `Bye` is not picked again.
const BYE_QUIET: Duration = Duration::from_secs(10);

/// A change in how many neighbours hold or fetch a block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Change {
    /// The neighbours holding `idx` went from `before` to `after`.
    Holders { idx: u32, before: u32, after: u32 },
    /// `after` neighbours now announce a hub fetch of `idx`.
    Fetchers { idx: u32, after: u32 },
}

#[derive(Debug)]
struct Peer {
    /// This node picked it (rather than the other way round).
    outbound: bool,
    bits: Bitfield,
    /// Blocks the peer announced it is fetching from the hub.
    fetching: Bitfield,
    /// Its `Hello` arrived.
    greeted: bool,
}

impl Peer {
    fn new(outbound: bool) -> Self {
        Peer {
            outbound,
            bits: Bitfield::new(),
            fetching: Bitfield::new(),
            greeted: false,
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
    /// Live, unbanned cohort members other than this node, sorted.
    members: Vec<NodeId>,
    peers: BTreeMap<NodeId, Peer>,
    /// Nodes that said `Bye`, not picked again before the time given.
    said_bye: BTreeMap<NodeId, Time>,
    faults: BTreeMap<NodeId, u32>,
    banned: BTreeSet<NodeId>,
    /// Peers not asked again for a block (at most `max` per block).
    excluded: BTreeMap<u32, Vec<NodeId>>,
    holders: Vec<u32>,
    fetchers: Vec<u32>,
    /// Blocks verified and hub fetches started, not yet announced.
    new_haves: Vec<u32>,
    new_fetches: Vec<u32>,
}

impl Neighbours {
    pub(super) fn new(cfg: &AgentConfig) -> Self {
        Neighbours {
            me: cfg.id,
            want: cfg.neighbours,
            max: cfg.max_neighbours,
            members: Vec::new(),
            peers: BTreeMap::new(),
            said_bye: BTreeMap::new(),
            faults: BTreeMap::new(),
            banned: BTreeSet::new(),
            excluded: BTreeMap::new(),
            holders: Vec::new(),
            fetchers: Vec::new(),
            new_haves: Vec::new(),
            new_fetches: Vec::new(),
        }
    }

    // ----- members -----

    pub(super) fn members(&self) -> &[NodeId] {
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
        self.members = members;
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
            self.members.insert(pos, id);
        }
        true
    }

    pub(super) fn remove_member(&mut self, id: NodeId) {
        if let Ok(pos) = self.members.binary_search(&id) {
            self.members.remove(pos);
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
    /// (a bounded number of draws). Returns them in the order picked; each needs a `Hello`.
    pub(super) fn pick_more(&mut self, rng: &mut Rng) -> Vec<NodeId> {
        let mut picked = Vec::new();
        if self.members.is_empty() {
            return picked;
        }
        let outbound = self.peers.values().filter(|p| p.outbound).count();
        let mut need = self.want.saturating_sub(outbound);
        let mut tries = 4 * need + 8;
        while need > 0 && tries > 0 && self.peers.len() < self.max {
            tries -= 1;
            let pick = self.members[rng.below(self.members.len() as u64) as usize];
            if self.peers.contains_key(&pick) || self.said_bye.contains_key(&pick) {
                continue;
            }
            self.peers.insert(pick, Peer::new(true));
            picked.push(pick);
            need -= 1;
        }
        picked
    }

    /// Takes `from`, whose `Hello` arrived, as a neighbour; false when the set is full.
    pub(super) fn accept(&mut self, from: NodeId) -> bool {
        if self.peers.contains_key(&from) {
            return true;
        }
        if self.peers.len() >= self.max {
            return false;
        }
        self.peers.insert(from, Peer::new(false));
        true
    }

    pub(super) fn mark_greeted(&mut self, id: NodeId) {
        if let Some(peer) = self.peers.get_mut(&id) {
            peer.greeted = true;
        }
    }

    /// Whether every neighbour this node picked has sent its `Hello`.
    pub(super) fn all_outbound_greeted(&self) -> bool {
        self.peers
            .values()
            .filter(|p| p.outbound)
            .all(|p| p.greeted)
    }

    /// Removes a neighbour and what it held and fetched.
    pub(super) fn remove(&mut self, id: NodeId) -> Option<Vec<Change>> {
        let peer = self.peers.remove(&id)?;
        let mut changes = Vec::new();
        for b in peer.bits.iter() {
            changes.extend(self.add_holder(b, -1));
        }
        for b in peer.fetching.iter() {
            changes.extend(self.add_fetcher(b, -1));
        }
        Some(changes)
    }

    /// `from` said `Bye`: it is not picked again for a while.
    pub(super) fn said_bye(&mut self, from: NodeId, now: Time) {
        self.said_bye.insert(from, now + BYE_QUIET);
    }

    pub(super) fn expire_byes(&mut self, now: Time) {
        self.said_bye.retain(|_, t| *t > now);
    }

    // ----- holdings -----

    /// Forgets every holding and announcement of the previous release.
    pub(super) fn restart(&mut self) {
        self.holders.clear();
        self.fetchers.clear();
        self.excluded.clear();
        for peer in self.peers.values_mut() {
            peer.bits = Bitfield::new();
            peer.fetching = Bitfield::new();
        }
        self.new_haves.clear();
        self.new_fetches.clear();
    }

    /// Neighbours holding `idx`.
    pub(super) fn holders_of(&self, idx: u32) -> u32 {
        self.holders.get(idx as usize).copied().unwrap_or(0)
    }

    /// Neighbours fetching `idx` from the hub.
    pub(super) fn fetchers_of(&self, idx: u32) -> u32 {
        self.fetchers.get(idx as usize).copied().unwrap_or(0)
    }

    /// The neighbours' holdings, one bitfield each.
    pub(super) fn holdings(&self) -> impl Iterator<Item = &Bitfield> + '_ {
        self.peers.values().map(|p| &p.bits)
    }

    /// The neighbours holding `idx` that are not excluded for it, in id order.
    pub(super) fn holders(&self, idx: u32) -> impl Iterator<Item = NodeId> + '_ {
        let excluded = self.excluded.get(&idx);
        self.peers
            .iter()
            .filter(move |(id, p)| p.bits.get(idx) && !excluded.is_some_and(|e| e.contains(id)))
            .map(|(id, _)| *id)
    }

    /// Adds holdings from a `Hello`. Holdings only grow during a release (a `NotFound` answer
    /// clears one bit), so a union is right even when a `Hello` overtakes a `Have`.
    pub(super) fn add_bits(&mut self, id: NodeId, bits: &Bitfield) -> Vec<Change> {
        let Some(peer) = self.peers.get_mut(&id) else {
            return Vec::new();
        };
        let added: Vec<u32> = bits.iter().filter(|b| peer.bits.set(*b)).collect();
        added
            .into_iter()
            .filter_map(|b| self.add_holder(b, 1))
            .collect()
    }

    /// Records hub fetches a neighbour announced (of blocks it does not hold yet).
    pub(super) fn add_fetching(
        &mut self,
        id: NodeId,
        blocks: impl Iterator<Item = u32>,
    ) -> Vec<Change> {
        let Some(peer) = self.peers.get_mut(&id) else {
            return Vec::new();
        };
        let added: Vec<u32> = blocks
            .filter(|b| !peer.bits.get(*b) && peer.fetching.set(*b))
            .collect();
        added
            .into_iter()
            .filter_map(|b| self.add_fetcher(b, 1))
            .collect()
    }

    /// A neighbour's `Have`: the blocks are held, no longer fetched.
    pub(super) fn have(&mut self, id: NodeId, blocks: Vec<u32>) -> Vec<Change> {
        let Some(peer) = self.peers.get_mut(&id) else {
            return Vec::new();
        };
        let mut new = Vec::new();
        let mut done = Vec::new();
        for b in blocks {
            if peer.bits.set(b) {
                new.push(b);
            }
            if peer.fetching.clear(b) {
                done.push(b);
            }
        }
        let mut changes: Vec<Change> = done
            .into_iter()
            .filter_map(|b| self.add_fetcher(b, -1))
            .collect();
        changes.extend(new.into_iter().filter_map(|b| self.add_holder(b, 1)));
        changes
    }

    /// A neighbour said it does not have `idx` after all.
    pub(super) fn not_found(&mut self, id: NodeId, idx: u32) -> Option<Change> {
        let cleared = self
            .peers
            .get_mut(&id)
            .is_some_and(|peer| peer.bits.clear(idx));
        if cleared {
            self.add_holder(idx, -1)
        } else {
            None
        }
    }

    fn add_holder(&mut self, idx: u32, delta: i32) -> Option<Change> {
        let n = counter(&mut self.holders, idx)?;
        let before = *n;
        *n = before.saturating_add_signed(delta);
        Some(Change::Holders {
            idx,
            before,
            after: *n,
        })
    }

    fn add_fetcher(&mut self, idx: u32, delta: i32) -> Option<Change> {
        let n = counter(&mut self.fetchers, idx)?;
        *n = n.saturating_add_signed(delta);
        Some(Change::Fetchers { idx, after: *n })
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

    /// Sends what was queued, one message of each kind per neighbour that lacks the blocks.
    /// `tag` is the release's; while `lookups_pending` (the store still answers for known
    /// blocks, one by one) `Have`s wait so they go out together, unless fetches are queued.
    pub(super) fn announce<P>(
        &mut self,
        tag: Option<u64>,
        lookups_pending: bool,
        out: &mut VecDeque<Output<P>>,
    ) {
        if self.new_haves.is_empty() && self.new_fetches.is_empty() {
            return;
        }
        if lookups_pending && self.new_fetches.is_empty() {
            return;
        }
        let Some(tag) = tag else {
            self.new_haves.clear();
            self.new_fetches.clear();
            return;
        };
        let have = std::mem::take(&mut self.new_haves);
        let fetching = std::mem::take(&mut self.new_fetches);
        for (&id, peer) in &self.peers {
            for (blocks, is_have) in [(&have, true), (&fetching, false)] {
                let news: Vec<u32> = blocks
                    .iter()
                    .copied()
                    .filter(|b| !peer.bits.get(*b))
                    .collect();
                for part in news.chunks(MAX_HAVE_BLOCKS) {
                    let blocks = part.to_vec();
                    let msg = if is_have {
                        Message::Have {
                            release: tag,
                            blocks,
                        }
                    } else {
                        Message::Fetching {
                            release: tag,
                            blocks,
                        }
                    };
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
        self.remove_member(id);
        true
    }

    /// Counts a fault of `peer`; returns its faults so far.
    pub(super) fn add_fault(&mut self, peer: NodeId) -> u32 {
        let faults = self.faults.entry(peer).or_insert(0);
        *faults += 1;
        *faults
    }

    pub(super) fn faults(&self, peer: NodeId) -> u32 {
        self.faults.get(&peer).copied().unwrap_or(0)
    }

    /// `peer` is not asked for `idx` again (until the block is held or the release changes).
    pub(super) fn exclude(&mut self, idx: u32, peer: NodeId) {
        let list = self.excluded.entry(idx).or_default();
        if !list.contains(&peer) && list.len() < self.max {
            list.push(peer);
        }
    }

    /// `idx` is held: its exclusions are moot.
    pub(super) fn clear_exclusions(&mut self, idx: u32) {
        self.excluded.remove(&idx);
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
        assert!(n.accept(A) && n.accept(B));
        let changes = n.add_bits(A, &bits(&[1, 2]));
        assert_eq!(
            changes,
            [
                Change::Holders {
                    idx: 1,
                    before: 0,
                    after: 1
                },
                Change::Holders {
                    idx: 2,
                    before: 0,
                    after: 1
                }
            ]
        );
        // Block 1 is held by A already: not counted as fetched by A.
        n.add_fetching(A, [1, 3].into_iter());
        n.add_fetching(B, [3].into_iter());
        assert_eq!(n.fetchers_of(3), 2);
        assert_eq!(n.fetchers_of(1), 0);
        let changes = n.have(B, vec![2, 3, 3]);
        assert_eq!(changes[0], Change::Fetchers { idx: 3, after: 1 });
        assert_eq!(changes.len(), 3);
        assert_eq!(holders(&n, &[1, 2, 3]), [1, 2, 1]);
        assert_eq!(n.holders(2).collect::<Vec<_>>(), [A, B]);
        n.exclude(2, A);
        assert_eq!(n.holders(2).collect::<Vec<_>>(), [B]);
        assert_eq!(
            n.not_found(B, 3),
            Some(Change::Holders {
                idx: 3,
                before: 1,
                after: 0
            })
        );
        assert_eq!(n.not_found(B, 3), None);
        n.remove(A).unwrap();
        assert_eq!(holders(&n, &[1, 2, 3]), [0, 1, 0]);
        assert_eq!(n.fetchers_of(3), 0);
        assert!(n.remove(A).is_none());
        n.restart();
        assert_eq!(holders(&n, &[2]), [0]);
        assert_eq!(n.holdings().map(Bitfield::count).sum::<u32>(), 0);
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
        assert!(n.accept(A) && n.accept(B) && !n.accept(C));
        assert!(n.ban(B) && !n.ban(B));
        assert!(n.is_banned(B) && !n.add_member(B) && !n.add_member(NodeId(9)));
        assert_eq!(n.members(), [A, C]);
        // The agent drops a banned peer as a neighbour; a new member list does too.
        assert_eq!(n.set_members(vec![A, B, C]), [B]);
        assert_eq!(n.members(), [A, C]);
        assert_eq!((n.add_fault(A), n.add_fault(A), n.faults(C)), (1, 2, 0));
    }

    #[test]
    fn announcements_go_once_to_neighbours_that_lack_the_blocks() {
        let mut n = Neighbours::new(&AgentConfig::default());
        n.accept(A);
        n.accept(B);
        n.add_bits(A, &bits(&[5]));
        n.queue_have(5);
        n.queue_have(6);
        let mut out: VecDeque<Output<Vec<u8>>> = VecDeque::new();
        n.announce(Some(7), true, &mut out);
        assert!(out.is_empty(), "Haves wait for the store's answers");
        n.announce(Some(7), false, &mut out);
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
        n.announce(Some(7), false, &mut out);
        assert!(out.is_empty());
    }
}
