//! Incremental max-min re-solve for unit-weight, unbounded flows.
//!
//! Progressive filling pops resources in increasing order of `(rem / n, id)` (`rem` the
//! capacity not yet allocated, `n` the flows through it not yet frozen; compared exactly) and
//! freezes a popped resource's unfrozen flows at `rem / n`, rounded down. The popped keys never
//! decrease, so each resource's *level* — its key when it popped — and each flow's
//! *bottleneck* — the resource that froze it — describe the whole run.
//!
//! After a change (flows added or removed, a capacity changed: the *dirty* resources) the new
//! run is replayed in level order, but only the resources the change can reach are simulated
//! (*touched*). Every other resource is *clean*: its state at each level equals the previous
//! run's, so it pops at its old level and freezes its old flows at its old share. A clean
//! resource becomes touched (its state computed from the flows frozen so far) when
//! - a touched resource freezes one of its flows at a different rate, or freezes a flow the
//!   clean resource itself froze before, or
//! - one of its flows is late: its old bottleneck is touched and has not frozen it by the
//!   bottleneck's old level (the *alarm*).
//!
//! A clean resource's pop is replayed (a *visit*) only when a touched resource shares one of
//! the flows it freezes. The result equals [`super::maxmin::Solver`] on the same flows, with
//! the same integer arithmetic.

use crate::topology::ResId;
use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

/// No resource (a flow not frozen yet).
const NONE: u32 = u32::MAX;

const POP: u8 = 0;
const VISIT: u8 = 1;
const ALARM: u8 = 2;

/// A point in the sweep: the level `num / den` of resource `id`, then the event kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Key {
    num: u64,
    den: u64,
    id: u32,
    kind: u8,
    ver: u32,
}

impl Key {
    /// Orders by level, then resource; the kind and version only separate equal levels.
    fn level_cmp(&self, o: &Key) -> Ordering {
        (self.num as u128 * o.den as u128)
            .cmp(&(o.num as u128 * self.den as u128))
            .then(self.id.cmp(&o.id))
    }
}

impl Ord for Key {
    fn cmp(&self, o: &Self) -> Ordering {
        self.level_cmp(o)
            .then(self.kind.cmp(&o.kind))
            .then(self.ver.cmp(&o.ver))
    }
}

impl PartialOrd for Key {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}

/// The previous run (levels, bottlenecks, rates) and the scratch of the next.
#[derive(Debug, Default)]
pub(crate) struct Incremental {
    // Per flow.
    path: Vec<[ResId; 4]>,
    len: Vec<u8>,
    bneck: Vec<u32>,
    rate: Vec<u64>,
    frozen_at: Vec<u32>,
    new_bneck: Vec<u32>,
    new_rate: Vec<u64>,
    // Per resource: the level it popped at (`den == 0`: it did not pop).
    lvl_num: Vec<u64>,
    lvl_den: Vec<u64>,
    touched_at: Vec<u32>,
    visit_at: Vec<u32>,
    rem: Vec<u64>,
    cnt: Vec<u64>,
    ver: Vec<u32>,
    // This run.
    epoch: u32,
    frozen: Vec<u32>,
    heap: BinaryHeap<Reverse<Key>>,
}

impl Incremental {
    /// Sizes the per-resource state for `nres` resources.
    pub(crate) fn new(nres: usize) -> Incremental {
        Incremental {
            lvl_num: vec![0; nres],
            lvl_den: vec![0; nres],
            touched_at: vec![0; nres],
            visit_at: vec![0; nres],
            rem: vec![0; nres],
            cnt: vec![0; nres],
            ver: vec![0; nres],
            ..Incremental::default()
        }
    }

    /// Registers flow `id` (the next index) crossing `path[..len]`.
    pub(crate) fn add_flow(&mut self, path: [ResId; 4], len: u8) {
        self.path.push(path);
        self.len.push(len);
        self.bneck.push(NONE);
        self.rate.push(0);
        self.frozen_at.push(0);
        self.new_bneck.push(NONE);
        self.new_rate.push(0);
    }

    /// Forgets a flow's rate and bottleneck (it became active or idle; its resources are dirty).
    pub(crate) fn reset_flow(&mut self, id: u32) {
        self.rate[id as usize] = 0;
        self.bneck[id as usize] = NONE;
    }

    /// Re-solves after changes on `dirty`. `by_res` lists the active flows of each resource.
    /// Pushes `(flow, new rate)` for every flow whose rate changed or was 0, in flow order.
    pub(crate) fn solve(
        &mut self,
        caps: &[u64],
        by_res: &[Vec<u32>],
        dirty: &[ResId],
        changed: &mut Vec<(u32, u64)>,
    ) {
        self.epoch = self.epoch.wrapping_add(1);
        if self.epoch == 0 {
            self.touched_at.iter_mut().for_each(|s| *s = 0);
            self.visit_at.iter_mut().for_each(|s| *s = 0);
            self.frozen_at.iter_mut().for_each(|s| *s = 0);
            self.epoch = 1;
        }
        self.heap.clear();
        self.frozen.clear();
        for &d in dirty {
            self.touch(d, None, caps, by_res);
        }
        while let Some(Reverse(k)) = self.heap.pop() {
            match k.kind {
                POP => self.pop(k, caps, by_res),
                VISIT => self.visit(k.id, by_res),
                _ => self.alarm(k, caps, by_res),
            }
        }
        changed.clear();
        for &f in &self.frozen {
            let f = f as usize;
            let (old, new) = (self.rate[f], self.new_rate[f]);
            self.rate[f] = new;
            self.bneck[f] = self.new_bneck[f];
            if new != old || old == 0 {
                changed.push((f as u32, new));
            }
        }
        changed.sort_unstable_by_key(|c| c.0);
    }

    fn touched(&self, r: u32) -> bool {
        self.touched_at[r as usize] == self.epoch
    }

    fn is_frozen(&self, f: u32) -> bool {
        self.frozen_at[f as usize] == self.epoch
    }

    /// Whether flow `f`, not frozen in this run, was frozen by its clean old bottleneck before `at`.
    fn frozen_before(&self, f: u32, at: &Key) -> bool {
        let p = self.bneck[f as usize];
        if p == NONE || self.touched(p) || self.lvl_den[p as usize] == 0 {
            return false;
        }
        let lvl = Key {
            num: self.lvl_num[p as usize],
            den: self.lvl_den[p as usize],
            id: p,
            kind: POP,
            ver: 0,
        };
        lvl.level_cmp(at) == Ordering::Less
    }

    /// A flow of touched `r` froze at `x` elsewhere: `r`'s key grows; its queued entry is now
    /// a lower bound (see [`Self::pop`]).
    fn take(&mut self, r: u32, x: u64) {
        let r = r as usize;
        self.rem[r] = self.rem[r].saturating_sub(x);
        self.cnt[r] = self.cnt[r].saturating_sub(1);
        self.ver[r] = self.ver[r].wrapping_add(1);
    }

    fn push(&mut self, r: u32, kind: u8) {
        let r = r as usize;
        let (num, den) = match kind {
            POP => (self.rem[r], self.cnt[r]),
            _ => (self.lvl_num[r], self.lvl_den[r]),
        };
        self.heap.push(Reverse(Key {
            num,
            den,
            id: r as u32,
            kind,
            ver: self.ver[r],
        }));
    }

    /// Starts simulating `q` at level `at` (`None`: before the first pop).
    fn touch(&mut self, q: u32, at: Option<&Key>, caps: &[u64], by_res: &[Vec<u32>]) {
        let qi = q as usize;
        if self.touched_at[qi] == self.epoch {
            return;
        }
        self.touched_at[qi] = self.epoch;
        let mut rem = caps[qi];
        let mut cnt = 0;
        let mut mine = false;
        for &g in &by_res[qi] {
            if self.is_frozen(g) {
                rem = rem.saturating_sub(self.new_rate[g as usize]);
            } else if at.is_some_and(|at| self.frozen_before(g, at)) {
                rem = rem.saturating_sub(self.rate[g as usize]);
            } else {
                cnt += 1;
                let p = self.bneck[g as usize];
                mine |= p == q;
                if p != NONE
                    && !self.touched(p)
                    && self.lvl_den[p as usize] != 0
                    && self.visit_at[p as usize] != self.epoch
                {
                    self.visit_at[p as usize] = self.epoch;
                    self.push(p, VISIT);
                }
            }
        }
        self.rem[qi] = rem;
        self.cnt[qi] = cnt;
        // Flows it froze before may be late: the alarm at its old level checks them. From
        // now on its level is this run's.
        if mine && self.lvl_den[qi] != 0 {
            self.push(q, ALARM);
        }
        self.lvl_den[qi] = 0;
        if cnt > 0 {
            self.push(q, POP);
        }
    }

    /// A touched resource pops: its unfrozen flows freeze at its share.
    fn pop(&mut self, k: Key, caps: &[u64], by_res: &[Vec<u32>]) {
        let r = k.id as usize;
        if self.cnt[r] == 0 {
            return;
        }
        if k.ver != self.ver[r] {
            // Keys only grow, so the entry was a lower bound: queue the current key instead.
            self.push(k.id, POP);
            return;
        }
        let share = self.rem[r] / self.cnt[r];
        self.lvl_num[r] = self.rem[r];
        self.lvl_den[r] = self.cnt[r];
        self.ver[r] = self.ver[r].wrapping_add(1);
        for i in 0..by_res[r].len() {
            let g = by_res[r][i];
            if self.is_frozen(g) || self.frozen_before(g, &k) {
                continue;
            }
            self.freeze(g, k.id, share, &k, caps, by_res);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn freeze(&mut self, g: u32, r: u32, share: u64, at: &Key, caps: &[u64], by_res: &[Vec<u32>]) {
        let gi = g as usize;
        self.frozen_at[gi] = self.epoch;
        self.new_rate[gi] = share;
        self.new_bneck[gi] = r;
        self.frozen.push(g);
        let (path, len) = (self.path[gi], self.len[gi] as usize);
        for &q in &path[..len] {
            let qi = q as usize;
            if q == r {
                self.rem[qi] = self.rem[qi].saturating_sub(share);
                self.cnt[qi] = self.cnt[qi].saturating_sub(1);
            } else if self.touched(q) {
                self.take(q, share);
            } else if share != self.rate[gi] || self.bneck[gi] == q || self.bneck[gi] == NONE {
                self.touch(q, Some(at), caps, by_res);
            }
        }
    }

    /// A clean resource pops as before: its flows freeze at their old rates.
    fn visit(&mut self, q: u32, by_res: &[Vec<u32>]) {
        if self.touched(q) {
            return;
        }
        for &g in &by_res[q as usize] {
            let gi = g as usize;
            if self.bneck[gi] != q || self.is_frozen(g) {
                continue;
            }
            let (path, len, x) = (self.path[gi], self.len[gi] as usize, self.rate[gi]);
            for &r in &path[..len] {
                if r != q && self.touched(r) {
                    self.take(r, x);
                }
            }
        }
    }

    /// The old level of touched `p`: flows it froze then and that are still unfrozen are late,
    /// so every other resource they cross is simulated from here on.
    fn alarm(&mut self, k: Key, caps: &[u64], by_res: &[Vec<u32>]) {
        let p = k.id as usize;
        for i in 0..by_res[p].len() {
            let g = by_res[p][i];
            let gi = g as usize;
            if self.bneck[gi] != k.id || self.is_frozen(g) {
                continue;
            }
            let (path, len) = (self.path[gi], self.len[gi] as usize);
            for &q in &path[..len] {
                if q != k.id {
                    self.touch(q, Some(&k), caps, by_res);
                }
            }
        }
    }
}
