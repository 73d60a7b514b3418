//! Properties of the max-min solver: feasibility, the bottleneck property, and incremental
//! re-solves equal a full re-solve.

use bootswarm_sim::flow::maxmin::{FlowSpec, Solver, UNBOUNDED};
use bootswarm_sim::flow::{Chunk, FlowNet};
use bootswarm_sim::time::SimTime;
use bootswarm_sim::topology::{HUB, Topology};
use proptest::prelude::*;

fn problem() -> impl Strategy<Value = (Vec<u64>, Vec<FlowSpec>)> {
    (1usize..12).prop_flat_map(|nres| {
        let caps = prop::collection::vec(1u64..10_000, nres);
        let flow = (
            prop::collection::btree_set(0..nres as u32, 1..=4.min(nres)),
            1u64..4,
            prop::option::of(1u64..5_000),
        );
        (caps, prop::collection::vec(flow, 0..30)).prop_map(|(caps, fl)| {
            let flows = fl
                .into_iter()
                .enumerate()
                .map(|(i, (path, weight, bound))| {
                    let path: Vec<u32> = path.into_iter().collect();
                    let mut f = FlowSpec::new(&path, i as u64);
                    f.weight = weight;
                    f.bound = bound.unwrap_or(UNBOUNDED);
                    f
                })
                .collect();
            (caps, flows)
        })
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn feasible_and_bottlenecked((caps, flows) in problem()) {
        let mut rates = Vec::new();
        Solver::new().solve(&caps, &flows, &mut rates);
        let mut load = vec![0u64; caps.len()];
        let mut wsum = vec![0u64; caps.len()];
        for (f, &x) in flows.iter().zip(&rates) {
            prop_assert!(x <= f.bound);
            for &r in f.path() {
                load[r as usize] += x;
                wsum[r as usize] += f.weight;
            }
        }
        for r in 0..caps.len() {
            prop_assert!(load[r] <= caps[r], "resource {} over capacity", r);
        }
        // Every flow is held by its bound or by a saturated resource on which no flow has a
        // larger per-weight rate (compared as rationals). Saturated means the unallocated
        // remainder is below the total weight (integer rounding).
        for (i, f) in flows.iter().enumerate() {
            if rates[i] == f.bound {
                continue;
            }
            let held = f.path().iter().any(|&r| {
                let r = r as usize;
                let saturated = caps[r] - load[r] < wsum[r];
                let is_max = flows.iter().zip(&rates).filter(|(g, _)| g.path().contains(&(r as u32))).all(|(g, &y)| {
                    (rates[i] as u128 + f.weight as u128) * g.weight as u128 > y as u128 * f.weight as u128
                });
                saturated && is_max
            });
            prop_assert!(held, "flow {} has no bottleneck: rates {:?}", i, rates);
        }
    }

    #[test]
    fn incremental_equals_full(ops in prop::collection::vec((0u8..4, 0u32..7, 0u32..6, 1u64..5_000), 1..60)) {
        let topo = Topology::new(6, 10_000, 2, 7_000, 3_000);
        let mut net = FlowNet::new(topo.clone());
        let mut solver = Solver::new();
        let mut out = Vec::new();
        for (t, (op, a, b, x)) in ops.into_iter().enumerate() {
            let now = SimTime(t as u64 * 1000);
            let src = if a == 6 { HUB } else { a };
            let dst = b;
            match op {
                0 | 1 if src != dst => {
                    net.enqueue(now, src, dst, Chunk { len: x, tag: t as u64 });
                }
                2 => {
                    net.abort(src, dst);
                }
                3 => {
                    let r = (x % topo.resources() as u64) as u32;
                    net.set_cap(r, x + 1);
                }
                _ => {}
            }
            net.solve(now, &mut out);
            let active = net.active_rates();
            let caps: Vec<u64> = (0..topo.resources() as u32).map(|r| net.cap(r)).collect();
            let mut specs = Vec::new();
            let mut keys: Vec<(u32, u32)> = active.iter().map(|&(s, d, _)| (s, d)).collect();
            keys.sort();
            for &(s, d) in &keys {
                let (p, n) = topo.path(s, d);
                specs.push(FlowSpec::new(&p[..n as usize], 0));
            }
            let mut full = Vec::new();
            solver.solve(&caps, &specs, &mut full);
            let mut got: Vec<((u32, u32), u64)> = active.iter().map(|&(s, d, r)| ((s, d), r)).collect();
            got.sort();
            let want: Vec<((u32, u32), u64)> = keys.iter().copied().zip(full).collect();
            prop_assert_eq!(got, want);
        }
    }
}

/// Applies `ops` to a network, re-solving after every `every` operations, and checks each
/// re-solve against a full solve of the active flows.
fn replay(topo: &Topology, ops: &[(u8, u32, u32, u64)], every: usize) -> Result<(), TestCaseError> {
    let mut net = FlowNet::new(topo.clone());
    let mut solver = Solver::new();
    let mut out = Vec::new();
    let n = topo.nodes;
    for (t, &(op, a, b, x)) in ops.iter().enumerate() {
        let now = SimTime(t as u64 * 1000);
        let src = if a % (n + 1) == n { HUB } else { a % (n + 1) };
        let dst = b % n;
        match op {
            0..=3 if src != dst => {
                net.enqueue(
                    now,
                    src,
                    dst,
                    Chunk {
                        len: x,
                        tag: t as u64,
                    },
                );
            }
            4 | 5 => {
                net.abort(src, dst);
            }
            6 => {
                let r = (x % topo.resources() as u64) as u32;
                net.set_cap(r, 1 + x % 20_000);
            }
            _ => {}
        }
        if t % every != every - 1 {
            continue;
        }
        net.solve(now, &mut out);
        let active = net.active_rates();
        let caps: Vec<u64> = (0..topo.resources() as u32).map(|r| net.cap(r)).collect();
        let specs: Vec<FlowSpec> = active
            .iter()
            .map(|&(s, d, _)| {
                let (p, len) = topo.path(s, d);
                FlowSpec::new(&p[..len as usize], 0)
            })
            .collect();
        let mut full = Vec::new();
        solver.solve(&caps, &specs, &mut full);
        let got: Vec<u64> = active.iter().map(|&(_, _, r)| r).collect();
        prop_assert_eq!(got, full);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    /// Many flows on few, narrow resources: changes cascade through shared bottlenecks, and
    /// flows outlive the bottlenecks that froze them.
    #[test]
    fn incremental_equals_full_under_cascades(
        nodes in 2u32..12,
        racks in 0u32..4,
        every in 1usize..5,
        ops in prop::collection::vec((0u8..8, 0u32..13, 0u32..12, 1u64..40_000), 1..150),
    ) {
        let racks = racks.min(nodes);
        let topo = Topology::new(nodes, 10_000, racks, 15_000, 3_000);
        replay(&topo, &ops, every)?;
    }

    /// Equal capacities make equal levels, so ties between resources decide the order.
    #[test]
    fn incremental_equals_full_with_ties(
        every in 1usize..4,
        ops in prop::collection::vec((0u8..7, 0u32..7, 0u32..6, 1u64..4), 1..120),
    ) {
        let topo = Topology::new(6, 1_200, 0, 0, 1_200);
        replay(&topo, &ops, every)?;
    }
}
