//! The requests part's invariants, checked for tests and fuzzing.

use std::collections::{BTreeMap, BTreeSet};

use super::{ReadyKey, Requests};
use crate::agent::plan::{Plan, State};
use crate::agent::timers::{TimerKind, Timers};
use crate::agent::{NodeId, Source, mix64};

impl Requests {
    /// Panics unless the counters, the deadline set, the `Deadline` timer and the ready set
    /// agree with the requests, every request is for a missing block of `plan`, and none goes
    /// to a banned peer.
    pub(in crate::agent) fn check_invariants(
        &self,
        plan: Option<&Plan>,
        holders_of: impl Fn(u32) -> u32,
        is_banned: impl Fn(NodeId) -> bool,
        timers: &Timers,
    ) {
        assert_eq!(
            self.deadlines.len(),
            self.requests.len(),
            "one deadline each"
        );
        assert_eq!(
            timers.is_armed(TimerKind::Deadline),
            !self.deadlines.is_empty(),
            "the Deadline timer is armed while a request is in flight"
        );
        let (mut hub, mut peer) = (0, 0);
        let mut per_peer: BTreeMap<NodeId, u32> = BTreeMap::new();
        let mut per_block: BTreeMap<u32, u32> = BTreeMap::new();
        for (id, r) in &self.requests {
            assert!(self.deadlines.contains(&(r.effective, *id)), "{id:?}");
            assert!(r.effective <= r.deadline, "{id:?}");
            match r.source {
                Source::Hub => hub += 1,
                Source::Peer(p) => {
                    assert!(!is_banned(p), "{id:?} goes to banned {p}");
                    peer += 1;
                    *per_peer.entry(p).or_default() += 1;
                }
            }
            *per_block.entry(r.idx).or_default() += 1;
            let plan = plan.expect("requests only under a plan");
            let state = plan.blocks.get(r.idx as usize).map(|b| b.state);
            assert_eq!(state, Some(State::Missing), "{id:?} for block {}", r.idx);
        }
        assert_eq!(self.hub_downloads, hub);
        assert!(
            self.slotted.len() <= peer,
            "slotted requests are peer requests"
        );
        for (started, id) in &self.slotted {
            let r = self
                .requests
                .get(id)
                .expect("a slotted request is in flight");
            assert!(
                matches!(r.source, Source::Peer(_)) && r.started == *started,
                "{id:?}"
            );
        }
        for (p, load) in self.loads.iter() {
            let n = per_peer.get(p).copied().unwrap_or(0);
            assert_eq!(load.inflight, n, "load of {p}");
        }
        for (p, n) in &per_peer {
            assert!(
                self.loads.contains_key(p),
                "{p} has {n} requests and no load"
            );
        }
        for (idx, n) in self.inflight.iter().enumerate() {
            let expected = per_block.get(&(idx as u32)).copied().unwrap_or(0);
            assert_eq!(u32::from(*n), expected, "in flight for block {idx}");
        }
        let expected: BTreeSet<ReadyKey> = plan.map_or_else(BTreeSet::new, |plan| {
            (0..plan.blocks.len() as u32)
                .filter_map(|idx| {
                    let b = &plan.blocks[idx as usize];
                    let holders = holders_of(idx);
                    let idle = !per_block.contains_key(&idx) && !self.deferred.contains_key(&idx);
                    (b.state == State::Missing && idle && holders > 0)
                        .then(|| (b.tier, holders, mix64(self.tie_seed ^ u64::from(idx)), idx))
                })
                .collect()
        });
        assert_eq!(
            self.ready, expected,
            "the ready set is the idle missing blocks with a holder, not deferred"
        );
        assert_eq!(self.deferred.len(), self.deferred_at.len(), "one turn each");
        for (&idx, &at) in &self.deferred {
            assert!(self.deferred_at.contains(&(at, idx)), "turn of block {idx}");
            let state = plan
                .and_then(|p| p.blocks.get(idx as usize))
                .map(|b| b.state);
            assert_eq!(state, Some(State::Missing), "deferred block {idx}");
        }
        assert_eq!(
            timers.is_armed(TimerKind::RackGate),
            !self.deferred.is_empty(),
            "the RackGate timer is armed while a block is deferred"
        );
    }
}
