//! `[meta]`: the scenario's name, its seeds and an optional horizon.

use super::{Ctx, Scenario, ScenarioError};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMeta {
    name: String,
    #[serde(default)]
    description: Option<String>,
    seeds: Vec<u64>,
    horizon: Option<String>,
}

/// Fills `name`, `seeds` and `horizon`.
pub(super) fn parse(cx: &Ctx<'_>, m: &RawMeta, sc: &mut Scenario) -> Result<(), ScenarioError> {
    if m.seeds.is_empty() {
        return Err(cx.err("[meta] seeds is empty; give at least one seed".into()));
    }
    let _ = &m.description;
    sc.name = m.name.clone();
    sc.seeds = m.seeds.clone();
    sc.horizon = m
        .horizon
        .as_deref()
        .map(|v| cx.dur("[meta] horizon", v))
        .transpose()?;
    Ok(())
}
