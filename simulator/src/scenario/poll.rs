//! `[poll]`: how often each node asks the hub for its channel's release.

use super::{Ctx, Scenario, ScenarioError};
use serde::Deserialize;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPoll {
    interval: Option<String>,
}

/// Fills `poll_interval` (absent or 0: no polling).
pub(super) fn parse(cx: &Ctx<'_>, p: &RawPoll, sc: &mut Scenario) -> Result<(), ScenarioError> {
    sc.poll_interval = p
        .interval
        .as_deref()
        .map(|v| cx.dur("[poll] interval", v))
        .transpose()?
        .filter(|&p| p > 0);
    Ok(())
}
