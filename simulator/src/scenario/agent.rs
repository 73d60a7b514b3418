//! `[agent]`: agent settings that differ from its defaults.

use super::Scenario;
use serde::Deserialize;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAgent {
    neighbours: Option<usize>,
    hub_concurrency: Option<usize>,
}

/// Fills `agent_neighbours` and `agent_hub_concurrency` (0: the agent's default).
pub(super) fn parse(a: &RawAgent, sc: &mut Scenario) {
    sc.agent_neighbours = a.neighbours.unwrap_or(0);
    sc.agent_hub_concurrency = a.hub_concurrency.unwrap_or(0);
}
