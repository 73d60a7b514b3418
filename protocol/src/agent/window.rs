//! The hub window: the farm takes chunks from the hub in boot order, at the pace the swarm
//! spreads them.
//!
//! When every owner fetches everything it owns at once, the hub's link is shared by all of
//! the release's chunks, so every chunk lands near the time the whole release takes to cross
//! it, and only then spreads through the farm: on a LAN no faster than the hub the boot takes
//! about twice as long as it must. So an owner fetches a chunk from the hub only once the
//! chunk has entered its *window*: the first `bytes` of the plan, in boot order, that nobody
//! is seen to hold (held here, or announced by a neighbour; manifests do not count, and are
//! never held back). As chunks appear the window slides on. A chunk that entered stays in:
//! the window only grows, so a neighbour that claims chunks it does not hold (or leaves) can
//! widen it, never close it. Nodes see different holders, so their windows differ: an owner's
//! may lag a watcher's by what the watcher sees and it does not. So watchers judge an owner on
//! a chunk only from when it entered the inner half of their own window (it is *due*).

use super::Time;
use super::plan::{Plan, State};

#[derive(Debug)]
pub(super) struct Window {
    bytes: u64,
    /// Per block of the plan, when it entered the window.
    entered: Vec<Option<Time>>,
    /// Per block of the plan, when it entered the window's first half.
    due: Vec<Option<Time>>,
    /// Positions of the plan's order before it have all entered and were seen held.
    cursor: usize,
    /// Something the window depends on changed since it last advanced.
    dirty: bool,
}

impl Window {
    /// A window of `bytes` (`u64::MAX`: every chunk is in at once).
    pub(super) fn new(bytes: u64) -> Self {
        Window {
            bytes,
            entered: Vec::new(),
            due: Vec::new(),
            cursor: 0,
            dirty: true,
        }
    }

    fn open(&self) -> bool {
        self.bytes == u64::MAX
    }

    /// A new release.
    pub(super) fn restart(&mut self) {
        self.entered.clear();
        self.due.clear();
        self.cursor = 0;
        self.dirty = true;
    }

    /// The plan's order changed (blocks were added).
    pub(super) fn reordered(&mut self) {
        self.cursor = 0;
        self.dirty = true;
    }

    /// Block `idx` was seen held for the first time (here or by a neighbour): the window may
    /// slide if it had entered.
    pub(super) fn seen(&mut self, idx: u32) {
        if self.entered(idx).is_some() {
            self.dirty = true;
        }
    }

    /// Whether block `idx` may come from the hub.
    pub(super) fn allows(&self, idx: u32) -> bool {
        self.entered(idx).is_some()
    }

    /// When block `idx` entered the window (the start for an open window).
    pub(super) fn entered(&self, idx: u32) -> Option<Time> {
        if self.open() {
            return Some(Time::ZERO);
        }
        self.entered.get(idx as usize).copied().flatten()
    }

    /// When block `idx` entered the window's first half: from then on its owner is judged.
    pub(super) fn due(&self, idx: u32) -> Option<Time> {
        if self.open() {
            return Some(Time::ZERO);
        }
        self.due.get(idx as usize).copied().flatten()
    }

    /// Slides the window over `plan` (`held_elsewhere`: a neighbour holds the block). Returns
    /// whether blocks entered.
    pub(super) fn advance(
        &mut self,
        plan: &Plan,
        now: Time,
        held_elsewhere: impl Fn(u32) -> bool,
    ) -> bool {
        if self.open() || !std::mem::take(&mut self.dirty) {
            return false;
        }
        self.entered.resize(plan.blocks.len(), None);
        self.due.resize(plan.blocks.len(), None);
        let seen = |idx: u32| {
            let b = &plan.blocks[idx as usize];
            b.manifest || b.state == State::Held || held_elsewhere(idx)
        };
        let mut grew = false;
        let mut enter = |at: &mut Option<Time>| {
            if at.is_none() {
                *at = Some(now);
                grew = true;
            }
        };
        while let Some(&idx) = plan.order.get(self.cursor) {
            if !seen(idx) {
                break;
            }
            enter(&mut self.entered[idx as usize]);
            enter(&mut self.due[idx as usize]);
            self.cursor += 1;
        }
        let mut unseen = 0u64;
        for &idx in &plan.order[self.cursor.min(plan.order.len())..] {
            if unseen >= self.bytes {
                break;
            }
            enter(&mut self.entered[idx as usize]);
            if unseen < self.bytes / 2 {
                enter(&mut self.due[idx as usize]);
            }
            if !seen(idx) {
                unseen += u64::from(plan.blocks[idx as usize].len);
            }
        }
        grew
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::plan::test_plan;

    fn t(s: u64) -> Time {
        Time::from_nanos(s * 1_000_000_000)
    }

    /// Chunks of the plan in boot order.
    fn chunks(plan: &Plan) -> Vec<u32> {
        plan.order
            .iter()
            .copied()
            .filter(|&i| !plan.blocks[i as usize].manifest)
            .collect()
    }

    #[test]
    fn the_window_holds_its_bytes_of_unseen_chunks_and_slides_as_they_appear() {
        let mut plan = test_plan(6);
        let order = chunks(&plan);
        let len = u64::from(plan.blocks[order[0] as usize].len);
        let mut w = Window::new(2 * len);
        assert!(w.advance(&plan, t(1), |_| false));
        let inside: Vec<bool> = order.iter().map(|&i| w.allows(i)).collect();
        assert_eq!(inside, [true, true, false, false, false, false]);
        let due: Vec<bool> = order.iter().map(|&i| w.due(i).is_some()).collect();
        assert_eq!(
            due,
            [true, false, false, false, false, false],
            "the first half"
        );
        // Nothing changed: no rescan, nothing new.
        assert!(!w.advance(&plan, t(2), |_| false));
        // A neighbour holds the first chunk; this node the second.
        let first = order[0];
        w.seen(first);
        plan.mark_held(order[1], len);
        w.seen(order[1]);
        assert!(w.advance(&plan, t(3), |i| i == first));
        let inside: Vec<bool> = order.iter().map(|&i| w.allows(i)).collect();
        assert_eq!(inside, [true, true, true, true, false, false]);
        assert_eq!(w.entered(order[0]), Some(t(1)));
        assert_eq!(w.entered(order[3]), Some(t(3)));
        // The holder leaves: the chunk stays in, the window does not shrink.
        w.seen(first);
        w.advance(&plan, t(4), |_| false);
        assert!(order[..4].iter().all(|&i| w.allows(i)));
    }

    #[test]
    fn a_chunk_seen_outside_the_window_does_not_rescan_and_an_open_window_holds_all() {
        let plan = test_plan(4);
        let order = chunks(&plan);
        let mut w = Window::new(1);
        w.advance(&plan, t(1), |_| false);
        assert!(w.allows(order[0]) && !w.allows(order[1]));
        w.seen(order[3]);
        assert!(!w.advance(&plan, t(2), |_| true));
        let open = Window::new(u64::MAX);
        assert!(order.iter().all(|&i| open.entered(i) == Some(Time::ZERO)));
    }
}
