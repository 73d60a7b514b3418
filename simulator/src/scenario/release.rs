//! `[release]`: how many packages the synthetic release has and how many bytes.

use super::{Ctx, Scenario, ScenarioError};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRelease {
    packages: u32,
    size: String,
}

/// Fills `packages` and `size`.
pub(super) fn parse(
    cx: &Ctx<'_>,
    release: &RawRelease,
    sc: &mut Scenario,
) -> Result<(), ScenarioError> {
    if release.packages == 0 || release.packages > 4096 {
        return Err(cx.err(format!(
            "[release] packages = {} must be between 1 and 4096",
            release.packages
        )));
    }
    let size = cx.size("[release] size", &release.size)?;
    if size < release.packages as u64 {
        return Err(cx.err("[release] size must give every package at least one byte".into()));
    }
    if size > (1 << 40) {
        return Err(
            cx.err("[release] size is over 1 TiB, which the simulator does not support".into())
        );
    }
    sc.packages = release.packages;
    sc.size = size;
    Ok(())
}
