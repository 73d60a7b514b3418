//! Resolving scenario node selections and faults into concrete node sets.

use crate::rng::{Rng, purpose};
use crate::scenario::{EventKind, NodeSel, Scenario};

/// Picks nodes for a selection. Events take the first eligible nodes in index order;
/// faults (`random = true`) draw them from the seed.
pub fn select(sel: &NodeSel, eligible: &[u32], rng: Option<&mut Rng>) -> Vec<u32> {
    let count = |c: usize, rng: Option<&mut Rng>| -> Vec<u32> {
        let mut v = eligible.to_vec();
        if let Some(r) = rng {
            r.shuffle(&mut v);
        }
        v.truncate(c.min(eligible.len()));
        v.sort_unstable();
        v
    };
    match sel {
        NodeSel::All => eligible.to_vec(),
        NodeSel::Range(a, b) => eligible
            .iter()
            .copied()
            .filter(|n| (*a..*b).contains(n))
            .collect(),
        NodeSel::Count(c) => count(*c as usize, rng),
        NodeSel::Fraction(f) => count((f * eligible.len() as f64).round() as usize, rng),
    }
}

/// What each node does at the start of the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Roles {
    /// `(node, start time, kind)` for every node that powers on.
    pub starts: Vec<(u32, u64, EventKind)>,
    /// For each node: whether it boots the release (it is measured).
    pub booting: Vec<bool>,
    /// Nodes per fault, in scenario order.
    pub fault_nodes: Vec<Vec<u32>>,
}

/// Resolves the scenario's events and faults for one seed.
pub fn resolve(sc: &Scenario, seed: u64) -> Roles {
    let n = sc.nodes;
    let mut assigned = vec![false; n as usize];
    let mut starts = Vec::new();
    let mut booting = vec![false; n as usize];
    for (i, e) in sc.events.iter().enumerate() {
        let eligible: Vec<u32> = (0..n).filter(|&x| !assigned[x as usize]).collect();
        let nodes = select(&e.nodes, &eligible, None);
        for &x in &nodes {
            assigned[x as usize] = true;
            let mut r = crate::rng::stream(seed, x as u64, purpose::SPREAD ^ ((i as u64) << 8));
            let at = e.at + if e.spread > 0 { r.below(e.spread) } else { 0 };
            starts.push((x, at, e.kind));
            booting[x as usize] = e.kind == EventKind::Boot;
        }
    }
    starts.sort_by_key(|&(x, at, _)| (at, x));
    // Faults hit booting nodes; in a farm that only upgrades (every node a seed), any node.
    let mut boots: Vec<u32> = (0..n).filter(|&x| booting[x as usize]).collect();
    if boots.is_empty() {
        boots = starts.iter().map(|&(x, _, _)| x).collect();
        boots.sort_unstable();
    }
    // Adversaries are distinct nodes: each adversary fault picks among those no earlier one
    // took.
    let mut taken = vec![false; n as usize];
    let fault_nodes = sc
        .faults
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let mut r = crate::rng::stream(seed, i as u64, purpose::PICK);
            let adversary = f.kind.is_attacker() || f.kind.is_faulty_node();
            if !adversary {
                return select(&f.nodes, &boots, Some(&mut r));
            }
            let free: Vec<u32> = boots
                .iter()
                .copied()
                .filter(|&x| !taken[x as usize])
                .collect();
            let picked = select(&f.nodes, &free, Some(&mut r));
            for &x in &picked {
                taken[x as usize] = true;
            }
            picked
        })
        .collect();
    Roles {
        starts,
        booting,
        fault_nodes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selections() {
        let el: Vec<u32> = (0..10).collect();
        assert_eq!(select(&NodeSel::All, &el, None).len(), 10);
        assert_eq!(select(&NodeSel::Count(3), &el, None), vec![0, 1, 2]);
        assert_eq!(select(&NodeSel::Range(2, 5), &el, None), vec![2, 3, 4]);
        let mut r = Rng::new(1);
        let picked = select(&NodeSel::Fraction(0.3), &el, Some(&mut r));
        assert_eq!(picked.len(), 3);
        assert!(picked.windows(2).all(|w| w[0] < w[1]));
    }
}
