//! The agent's invariants (ARCHITECTURE.md, "Invariants"), checked for tests and fuzzing.

use super::plan::{Plan, State};
use super::{Agent, Payload};

impl<P: Payload> Agent<P> {
    /// Panics unless the parts agree: the plan's held set and counters, each block's holder
    /// count, the requests' counters, deadlines and ready set, and no banned peer among the
    /// members, the neighbours or the requests.
    #[doc(hidden)]
    pub fn check_invariants(&self) {
        let plan = self.plan.as_ref();
        if let Some(plan) = plan {
            check_plan(plan);
            for idx in 0..plan.blocks.len() as u32 {
                let holding = self.neighbours.holders_trusted(idx).count();
                assert_eq!(
                    self.neighbours.holders_of(idx) as usize,
                    holding,
                    "holders of block {idx} (not excluded for it)"
                );
                let relied = self
                    .neighbours
                    .holders_trusted(idx)
                    .filter(|&(_, relied)| relied)
                    .count();
                assert_eq!(
                    self.neighbours.relied_of(idx) as usize,
                    relied,
                    "relied holders of block {idx}"
                );
            }
        }
        if let Some(plan) = plan.filter(|p| p.complete) {
            assert!(
                self.neighbours.bounded_to(plan.blocks.len() as u32),
                "claims beyond the complete plan are kept"
            );
        }
        assert!(self.neighbours.relied_flags_agree(), "cached trust");
        assert_eq!(self.booted, plan.is_some_and(Plan::is_booted), "booted");
        for id in self.neighbours.ids() {
            assert!(!self.neighbours.is_banned(id), "banned {id} is a neighbour");
            assert_ne!(id, self.cfg.id, "a node is not its own neighbour");
        }
        for &id in self.neighbours.members() {
            assert!(!self.neighbours.is_banned(id), "banned {id} is a member");
        }
        self.requests.check_invariants(
            plan,
            |idx| self.neighbours.holders_of(idx),
            |peer| self.neighbours.is_banned(peer),
            &self.timers,
        );
    }
}

fn check_plan(plan: &Plan) {
    let count = |s: State| plan.blocks.iter().filter(|b| b.state == s).count() as u32;
    assert_eq!(plan.held_count, count(State::Held), "held_count");
    assert_eq!(plan.held.count(), plan.held_count, "held bitfield");
    assert_eq!(plan.lookups, count(State::Lookup), "lookups");
    let mut bytes = 0;
    for (idx, b) in plan.blocks.iter().enumerate() {
        assert_eq!(plan.held.get(idx as u32), b.state == State::Held, "{idx}");
        if b.state == State::Held {
            bytes += u64::from(b.len);
        }
    }
    assert_eq!(plan.held_bytes, bytes, "held_bytes");
}
