//! Which nodes an event or fault applies to: `nodes = "all" | N | "A..B" | "A..=B" | "P%"`, or
//! `fraction = F`.

use super::{Ctx, ScenarioError};
use serde::Deserialize;

/// Which nodes an event or fault applies to.
#[derive(Debug, Clone, PartialEq)]
pub enum NodeSel {
    /// Every eligible node.
    All,
    /// This many nodes.
    Count(u32),
    /// Nodes `a..b` (half-open).
    Range(u32, u32),
    /// This fraction of the eligible nodes (rounded to nearest).
    Fraction(f64),
}

/// A number or a string, as `nodes` (and `[expect] hub_egress_bytes_max`) may be written.
#[derive(Deserialize)]
#[serde(untagged)]
pub(super) enum RawNodes {
    Count(i64),
    Text(String),
}

/// The selection of `KEY.nodes` / `KEY.fraction` (at most one of them) among `n` nodes;
/// neither: every node.
pub(super) fn select(
    cx: &Ctx<'_>,
    key: &str,
    v: Option<&RawNodes>,
    fraction: Option<f64>,
    n: u32,
) -> Result<NodeSel, ScenarioError> {
    if let Some(f) = fraction {
        if v.is_some() {
            return Err(cx.err(format!("{key} has both nodes and fraction; give one")));
        }
        if !(0.0..=1.0).contains(&f) {
            return Err(cx.err(format!("{key}.fraction = {f} must be between 0 and 1")));
        }
        return Ok(NodeSel::Fraction(f));
    }
    let sel = match v {
        None => NodeSel::All,
        Some(RawNodes::Count(c)) => {
            if *c < 0 || *c > n as i64 {
                return Err(cx.err(format!("{key}.nodes = {c} must be between 0 and the {n} nodes of the topology")));
            }
            NodeSel::Count(*c as u32)
        }
        Some(RawNodes::Text(t)) => parse_nodes(t, n).ok_or_else(|| {
            cx.err(format!(
                "{key}.nodes = {t:?} is not \"all\", a count, or a range \"A..B\" / \"A..=B\" within the {n} nodes"
            ))
        })?,
    };
    Ok(sel)
}

fn parse_nodes(t: &str, n: u32) -> Option<NodeSel> {
    let t = t.trim();
    if t == "all" {
        return Some(NodeSel::All);
    }
    if let Some(pct) = t.strip_suffix('%') {
        let p: f64 = pct.trim().parse().ok()?;
        return (0.0..=100.0)
            .contains(&p)
            .then_some(NodeSel::Fraction(p / 100.0));
    }
    if let Some((a, b)) = t.split_once("..") {
        let a: u32 = a.trim().parse().ok()?;
        let (b, inclusive) = match b.strip_prefix('=') {
            Some(b) => (b, true),
            None => (b, false),
        };
        let b: u32 = b.trim().parse().ok()?;
        let b = if inclusive { b.checked_add(1)? } else { b };
        return (a <= b && b <= n).then_some(NodeSel::Range(a, b));
    }
    let c: u32 = t.parse().ok()?;
    (c <= n).then_some(NodeSel::Count(c))
}
