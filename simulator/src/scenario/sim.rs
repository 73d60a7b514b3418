//! `[sim]`: settings of the simulation itself.

use super::{Ctx, Scenario, ScenarioError};
use serde::Deserialize;

/// Default minimum spacing of flow re-solves.
pub const DEFAULT_SOLVE_QUANTUM: u64 = 200_000;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSim {
    solve_quantum: Option<String>,
}

/// Fills `solve_quantum`.
pub(super) fn parse(cx: &Ctx<'_>, s: &RawSim, sc: &mut Scenario) -> Result<(), ScenarioError> {
    sc.solve_quantum = s
        .solve_quantum
        .as_deref()
        .map(|v| cx.dur("[sim] solve_quantum", v))
        .transpose()?
        .unwrap_or(DEFAULT_SOLVE_QUANTUM);
    Ok(())
}
