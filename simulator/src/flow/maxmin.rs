//! Weighted max-min fair allocation by integer progressive filling.
//!
//! Resources are popped from a heap in order of their fair share `rem / W` (compared exactly
//! as rationals in u128; ties broken by resource id), their unfrozen flows are frozen at that
//! share, and the other resources on those flows are updated. Freezing never lowers another
//! resource's share, so stale heap entries are skipped lazily. A per-flow `bound` acts as a
//! private pseudo-resource. Rates are integers (bytes per second); each resource may leave
//! fewer than `W` bytes per second unallocated by rounding.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

/// No per-flow bound.
pub const UNBOUNDED: u64 = u64::MAX;

/// One flow as the solver sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowSpec {
    /// Resources crossed (the first `len` entries).
    pub path: [u32; 4],
    /// Number of resources in `path` (at least 1).
    pub len: u8,
    /// Weight (at least 1).
    pub weight: u64,
    /// Rate cap in bytes per second, or [`UNBOUNDED`].
    pub bound: u64,
    /// A stable, globally unique key used only to break ties between bounds.
    pub key: u64,
}

impl FlowSpec {
    /// An unbounded weight-1 flow.
    pub fn new(path: &[u32], key: u64) -> FlowSpec {
        let mut p = [0; 4];
        p[..path.len()].copy_from_slice(path);
        FlowSpec {
            path: p,
            len: path.len() as u8,
            weight: 1,
            bound: UNBOUNDED,
            key,
        }
    }

    /// The resources crossed.
    pub fn path(&self) -> &[u32] {
        &self.path[..self.len as usize]
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Key {
    num: u64,
    den: u64,
    id: u64,
    ver: u32,
}

impl Ord for Key {
    fn cmp(&self, o: &Self) -> Ordering {
        (self.num as u128 * o.den as u128)
            .cmp(&(o.num as u128 * self.den as u128))
            .then(self.id.cmp(&o.id))
            .then(self.ver.cmp(&o.ver))
    }
}

impl PartialOrd for Key {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}

const BOUND_ID: u64 = 1 << 32;

/// Reusable solver state (scratch buffers sized to the resource count).
#[derive(Debug, Default)]
pub struct Solver {
    rem: Vec<u64>,
    w: Vec<u64>,
    ver: Vec<u32>,
    seen: Vec<bool>,
    touched: Vec<u32>,
    start: Vec<u32>,
    end: Vec<u32>,
    members: Vec<u32>,
    frozen: Vec<bool>,
    heap: BinaryHeap<Reverse<Key>>,
}

impl Solver {
    /// A solver with empty scratch space.
    pub fn new() -> Solver {
        Solver::default()
    }

    /// Computes the max-min fair rates of `flows` under `caps` into `rates`.
    pub fn solve(&mut self, caps: &[u64], flows: &[FlowSpec], rates: &mut Vec<u64>) {
        let nres = caps.len();
        if self.rem.len() < nres {
            self.rem.resize(nres, 0);
            self.w.resize(nres, 0);
            self.ver.resize(nres, 0);
            self.seen.resize(nres, false);
            self.start.resize(nres, 0);
            self.end.resize(nres, 0);
        }
        rates.clear();
        rates.resize(flows.len(), 0);
        self.frozen.clear();
        self.frozen.resize(flows.len(), false);
        self.touched.clear();
        self.heap.clear();

        // Per-resource totals; `start[r]` counts flows first, then becomes a CSR offset.
        for f in flows {
            for &r in f.path() {
                let r = r as usize;
                if !self.seen[r] {
                    self.seen[r] = true;
                    self.touched.push(r as u32);
                    self.rem[r] = caps[r];
                    self.w[r] = 0;
                    self.ver[r] = 0;
                    self.start[r] = 0;
                }
                self.w[r] += f.weight;
                self.start[r] += 1;
            }
        }
        let mut off = 0u32;
        for &r in &self.touched {
            let c = self.start[r as usize];
            self.start[r as usize] = off;
            off += c;
            self.end[r as usize] = off;
        }
        self.members.clear();
        self.members.resize(off as usize, 0);
        // Fill (using `ver` as a temporary cursor, reset below).
        for (i, f) in flows.iter().enumerate() {
            for &r in f.path() {
                let r = r as usize;
                let pos = self.start[r] + self.ver[r];
                self.members[pos as usize] = i as u32;
                self.ver[r] += 1;
            }
        }
        for &r in &self.touched {
            let r = r as usize;
            self.ver[r] = 0;
            self.heap.push(Reverse(Key {
                num: self.rem[r],
                den: self.w[r],
                id: r as u64,
                ver: 0,
            }));
        }
        for f in flows {
            if f.bound != UNBOUNDED {
                self.heap.push(Reverse(Key {
                    num: f.bound,
                    den: f.weight,
                    id: BOUND_ID + f.key,
                    ver: 0,
                }));
            }
        }
        // Bound keys refer to flows by key; map back with a sorted index when needed.
        let mut bound_index: Vec<(u64, u32)> = flows
            .iter()
            .enumerate()
            .filter(|(_, f)| f.bound != UNBOUNDED)
            .map(|(i, f)| (f.key, i as u32))
            .collect();
        bound_index.sort_unstable();

        while let Some(Reverse(k)) = self.heap.pop() {
            if k.id >= BOUND_ID {
                let key = k.id - BOUND_ID;
                let Ok(pos) = bound_index.binary_search_by_key(&key, |e| e.0) else {
                    continue;
                };
                let i = bound_index[pos].1 as usize;
                if !self.frozen[i] {
                    self.freeze(flows, rates, i, flows[i].bound, u32::MAX);
                }
                continue;
            }
            let r = k.id as usize;
            if k.ver != self.ver[r] || self.w[r] == 0 {
                continue;
            }
            let share = self.rem[r] / self.w[r];
            let (a, b) = (self.start[r] as usize, self.end[r] as usize);
            for m in a..b {
                let i = self.members[m] as usize;
                if !self.frozen[i] {
                    self.freeze(flows, rates, i, share * flows[i].weight, r as u32);
                }
            }
        }
        for &r in &self.touched {
            self.seen[r as usize] = false;
        }
    }

    fn freeze(&mut self, flows: &[FlowSpec], rates: &mut [u64], i: usize, rate: u64, current: u32) {
        rates[i] = rate;
        self.frozen[i] = true;
        let f = &flows[i];
        for &r2 in f.path() {
            let r2u = r2 as usize;
            self.rem[r2u] = self.rem[r2u].saturating_sub(rate);
            self.w[r2u] -= f.weight;
            if r2 != current && self.w[r2u] > 0 {
                self.ver[r2u] += 1;
                self.heap.push(Reverse(Key {
                    num: self.rem[r2u],
                    den: self.w[r2u],
                    id: r2 as u64,
                    ver: self.ver[r2u],
                }));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn solve(caps: &[u64], flows: &[FlowSpec]) -> Vec<u64> {
        let mut rates = Vec::new();
        Solver::new().solve(caps, flows, &mut rates);
        rates
    }

    #[test]
    fn n_flows_on_one_link_share_equally() {
        for n in 1..20u64 {
            let flows: Vec<_> = (0..n).map(|i| FlowSpec::new(&[0], i)).collect();
            let rates = solve(&[1_000_000], &flows);
            assert!(rates.iter().all(|&r| r == 1_000_000 / n), "{n}: {rates:?}");
        }
    }

    #[test]
    fn parking_lot() {
        // Three links of capacity C; one long flow over all, one short flow per link: C/2 each.
        let caps = [100, 100, 100];
        let mut flows = vec![FlowSpec::new(&[0, 1, 2], 0)];
        flows.extend((0..3).map(|r| FlowSpec::new(&[r], 1 + r as u64)));
        assert_eq!(solve(&caps, &flows), vec![50, 50, 50, 50]);
        // Unequal links: the long flow is held by the narrow one, the rest take what is left.
        let caps = [10, 20];
        let flows = [
            FlowSpec::new(&[0, 1], 0),
            FlowSpec::new(&[0], 1),
            FlowSpec::new(&[1], 2),
        ];
        assert_eq!(solve(&caps, &flows), vec![5, 5, 15]);
    }

    #[test]
    fn bounds_and_weights() {
        let mut a = FlowSpec::new(&[0], 0);
        a.bound = 10;
        let b = FlowSpec::new(&[0], 1);
        assert_eq!(solve(&[100], &[a, b]), vec![10, 90]);
        let mut c = FlowSpec::new(&[0], 2);
        c.weight = 3;
        assert_eq!(solve(&[100], &[FlowSpec::new(&[0], 1), c]), vec![25, 75]);
    }

    #[test]
    fn empty_and_reuse() {
        let mut s = Solver::new();
        let mut rates = vec![7];
        s.solve(&[5], &[], &mut rates);
        assert!(rates.is_empty());
        s.solve(&[5, 6], &[FlowSpec::new(&[1], 0)], &mut rates);
        assert_eq!(rates, vec![6]);
        s.solve(&[5, 6], &[FlowSpec::new(&[0, 1], 0)], &mut rates);
        assert_eq!(rates, vec![5]);
    }
}
