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

/// A flow's bottleneck and rate in the previous run, and in this one once it froze.
#[derive(Debug, Clone, Copy)]
struct FlowState {
    path: [ResId; 4],
    rate: u64,
    new_rate: u64,
    bneck: u32,
    new_bneck: u32,
    frozen_at: u32,
    len: u8,
}

/// A resource's level in the previous run (`lvl_den == 0`: it did not pop) and, once touched,
/// its state in this one.
#[derive(Debug, Clone, Copy, Default)]
struct ResState {
    lvl_num: u64,
    lvl_den: u64,
    rem: u64,
    cnt: u64,
    touched_at: u32,
    visit_at: u32,
    ver: u32,
}

/// The previous run (levels, bottlenecks, rates) and the scratch of the next.
#[derive(Debug, Default)]
pub(crate) struct Incremental {
    fl: Vec<FlowState>,
    res: Vec<ResState>,
    epoch: u32,
    frozen: Vec<u32>,
    heap: BinaryHeap<Reverse<Key>>,
}

impl Incremental {
    /// Sizes the per-resource state for `nres` resources.
    pub(crate) fn new(nres: usize) -> Incremental {
        Incremental {
            res: vec![ResState::default(); nres],
            ..Incremental::default()
        }
    }

    /// Registers flow `id` (the next index) crossing `path[..len]`.
    pub(crate) fn add_flow(&mut self, path: [ResId; 4], len: u8) {
        self.fl.push(FlowState {
            path,
            rate: 0,
            new_rate: 0,
            bneck: NONE,
            new_bneck: NONE,
            frozen_at: 0,
            len,
        });
    }

    /// Forgets a flow's rate and bottleneck (it became active or idle; its resources are dirty).
    pub(crate) fn reset_flow(&mut self, id: u32) {
        self.fl[id as usize].rate = 0;
        self.fl[id as usize].bneck = NONE;
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
            for r in &mut self.res {
                (r.touched_at, r.visit_at) = (0, 0);
            }
            self.fl.iter_mut().for_each(|f| f.frozen_at = 0);
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
            let (old, new) = (self.fl[f].rate, self.fl[f].new_rate);
            self.fl[f].rate = new;
            self.fl[f].bneck = self.fl[f].new_bneck;
            if new != old || old == 0 {
                changed.push((f as u32, new));
            }
        }
        changed.sort_unstable_by_key(|c| c.0);
    }

    fn touched(&self, r: u32) -> bool {
        self.res[r as usize].touched_at == self.epoch
    }

    fn is_frozen(&self, f: u32) -> bool {
        self.fl[f as usize].frozen_at == self.epoch
    }

    /// Whether flow `f`, not frozen in this run, was frozen by its clean old bottleneck before `at`.
    fn frozen_before(&self, f: u32, at: &Key) -> bool {
        let p = self.fl[f as usize].bneck;
        if p == NONE || self.touched(p) || self.res[p as usize].lvl_den == 0 {
            return false;
        }
        let lvl = Key {
            num: self.res[p as usize].lvl_num,
            den: self.res[p as usize].lvl_den,
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
        self.res[r].rem = self.res[r].rem.saturating_sub(x);
        self.res[r].cnt = self.res[r].cnt.saturating_sub(1);
        self.res[r].ver = self.res[r].ver.wrapping_add(1);
    }

    fn push(&mut self, r: u32, kind: u8) {
        let r = r as usize;
        let (num, den) = match kind {
            POP => (self.res[r].rem, self.res[r].cnt),
            _ => (self.res[r].lvl_num, self.res[r].lvl_den),
        };
        self.heap.push(Reverse(Key {
            num,
            den,
            id: r as u32,
            kind,
            ver: self.res[r].ver,
        }));
    }

    /// Starts simulating `q` at level `at` (`None`: before the first pop).
    fn touch(&mut self, q: u32, at: Option<&Key>, caps: &[u64], by_res: &[Vec<u32>]) {
        let qi = q as usize;
        if self.res[qi].touched_at == self.epoch {
            return;
        }
        self.res[qi].touched_at = self.epoch;
        let mut rem = caps[qi];
        let mut cnt = 0;
        let mut mine = false;
        for &g in &by_res[qi] {
            if self.is_frozen(g) {
                rem = rem.saturating_sub(self.fl[g as usize].new_rate);
            } else if at.is_some_and(|at| self.frozen_before(g, at)) {
                rem = rem.saturating_sub(self.fl[g as usize].rate);
            } else {
                cnt += 1;
                let p = self.fl[g as usize].bneck;
                mine |= p == q;
                if p != NONE
                    && !self.touched(p)
                    && self.res[p as usize].lvl_den != 0
                    && self.res[p as usize].visit_at != self.epoch
                {
                    self.res[p as usize].visit_at = self.epoch;
                    self.push(p, VISIT);
                }
            }
        }
        self.res[qi].rem = rem;
        self.res[qi].cnt = cnt;
        // Flows it froze before may be late: the alarm at its old level checks them. From
        // now on its level is this run's.
        if mine && self.res[qi].lvl_den != 0 {
            self.push(q, ALARM);
        }
        self.res[qi].lvl_den = 0;
        if cnt > 0 {
            self.push(q, POP);
        }
    }

    /// A touched resource pops: its unfrozen flows freeze at its share.
    fn pop(&mut self, k: Key, caps: &[u64], by_res: &[Vec<u32>]) {
        let r = k.id as usize;
        if self.res[r].cnt == 0 {
            return;
        }
        if k.ver != self.res[r].ver {
            // Keys only grow, so the entry was a lower bound: queue the current key instead.
            self.push(k.id, POP);
            return;
        }
        let share = self.res[r].rem / self.res[r].cnt;
        self.res[r].lvl_num = self.res[r].rem;
        self.res[r].lvl_den = self.res[r].cnt;
        self.res[r].ver = self.res[r].ver.wrapping_add(1);
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
        self.fl[gi].frozen_at = self.epoch;
        self.fl[gi].new_rate = share;
        self.fl[gi].new_bneck = r;
        self.frozen.push(g);
        let (path, len) = (self.fl[gi].path, self.fl[gi].len as usize);
        for &q in &path[..len] {
            let qi = q as usize;
            if q == r {
                self.res[qi].rem = self.res[qi].rem.saturating_sub(share);
                self.res[qi].cnt = self.res[qi].cnt.saturating_sub(1);
            } else if self.touched(q) {
                self.take(q, share);
            } else if share != self.fl[gi].rate
                || self.fl[gi].bneck == q
                || self.fl[gi].bneck == NONE
            {
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
            if self.fl[gi].bneck != q || self.is_frozen(g) {
                continue;
            }
            let (path, len, x) = (self.fl[gi].path, self.fl[gi].len as usize, self.fl[gi].rate);
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
            if self.fl[gi].bneck != k.id || self.is_frozen(g) {
                continue;
            }
            let (path, len) = (self.fl[gi].path, self.fl[gi].len as usize);
            for &q in &path[..len] {
                if q != k.id {
                    self.touch(q, Some(&k), caps, by_res);
                }
            }
        }
    }
}
