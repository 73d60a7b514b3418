//! `[agent]`: agent settings that differ from its defaults.

use super::Scenario;
use serde::Deserialize;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAgent {
    neighbours: Option<usize>,
    hub_concurrency: Option<usize>,
    /// MiB; 0: no window.
    hub_window_mib: Option<u64>,
}

/// Fills `agent_neighbours` and `agent_hub_concurrency` (0: the agent's default) and
/// `agent_hub_window`.
pub(super) fn parse(a: &RawAgent, sc: &mut Scenario) {
    sc.agent_neighbours = a.neighbours.unwrap_or(0);
    sc.agent_hub_concurrency = a.hub_concurrency.unwrap_or(0);
    sc.agent_hub_window = a.hub_window_mib.map(|m| match m {
        0 => u64::MAX,
        m => m.saturating_mul(1 << 20),
    });
}
