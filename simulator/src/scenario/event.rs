//! `[[event]]`: the workload (nodes that boot, or start warm) and the one release published
//! during the run.

use super::nodes::{self, NodeSel, RawNodes};
use super::{Ctx, Scenario, ScenarioError};
use serde::Deserialize;

/// A workload event.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// When (ns).
    pub at: u64,
    /// What.
    pub kind: EventKind,
    /// Which nodes.
    pub nodes: NodeSel,
    /// Start times are spread uniformly over this window (ns).
    pub spread: u64,
}

/// Kinds of workload events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// Power on and boot the release.
    Boot,
    /// Power on already holding the release (a warm node).
    Seed,
}

/// A new release published during the run (`[[event]] kind = "publish"`).
#[derive(Debug, Clone, PartialEq)]
pub struct Publish {
    /// When (ns).
    pub at: u64,
    /// Packages that change.
    pub packages: u32,
    /// Share of the release's bytes that the new version adds.
    pub fraction: f64,
    /// Nodes the operator hands the release to (`bootswarm announce`); the rest hear it by
    /// gossip or by polling the hub.
    pub announce: NodeSel,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEvent {
    at: String,
    kind: String,
    nodes: Option<RawNodes>,
    fraction: Option<f64>,
    spread: Option<String>,
    packages: Option<u32>,
}

/// Fills `events` and `publish`; needs `nodes` and `packages`.
pub(super) fn parse(
    cx: &Ctx<'_>,
    raw: &[RawEvent],
    sc: &mut Scenario,
) -> Result<(), ScenarioError> {
    let n = sc.nodes;
    let mut events = Vec::new();
    let mut publish = None;
    for (i, e) in raw.iter().enumerate() {
        let key = format!("[[event]] #{}", i + 1);
        let kind = match e.kind.as_str() {
            "boot" => EventKind::Boot,
            "seed" => EventKind::Seed,
            "publish" => {
                if publish.is_some() {
                    return Err(cx.err(format!(
                        "{key} is a second publish; the simulator models one upgrade per run"
                    )));
                }
                publish = Some(parse_publish(cx, &key, e, sc)?);
                continue;
            }
            k => {
                return Err(cx.err(format!(
                    "{key}.kind = {k:?} is not \"boot\", \"seed\" or \"publish\""
                )));
            }
        };
        if e.packages.is_some() {
            return Err(cx.err(format!("{key}.packages only applies to kind = \"publish\"")));
        }
        events.push(Event {
            at: cx.dur(&format!("{key}.at"), &e.at)?,
            kind,
            nodes: nodes::select(cx, &key, e.nodes.as_ref(), e.fraction, n)?,
            spread: e
                .spread
                .as_deref()
                .map(|v| cx.dur(&format!("{key}.spread"), v))
                .transpose()?
                .unwrap_or(0),
        });
    }
    if events.is_empty() {
        return Err(cx.err(
            "has no [[event]]; add e.g. { at = \"0s\", kind = \"boot\", nodes = \"all\" }".into(),
        ));
    }
    sc.events = events;
    sc.publish = publish;
    Ok(())
}

/// The `kind = "publish"` event `key`.
fn parse_publish(
    cx: &Ctx<'_>,
    key: &str,
    e: &RawEvent,
    sc: &Scenario,
) -> Result<Publish, ScenarioError> {
    let packages = e.packages.unwrap_or(1);
    if packages == 0 || packages > sc.packages {
        return Err(cx.err(format!(
            "{key}.packages = {packages} must be between 1 and the release's {} packages",
            sc.packages
        )));
    }
    let fraction = e.fraction.unwrap_or(0.05);
    if !(fraction > 0.0 && fraction <= 1.0) {
        return Err(cx.err(format!(
            "{key}.fraction = {fraction} must be above 0 and at most 1"
        )));
    }
    Ok(Publish {
        at: cx.dur(&format!("{key}.at"), &e.at)?,
        packages,
        fraction,
        announce: match &e.nodes {
            None => NodeSel::Count(1),
            Some(_) => nodes::select(cx, key, e.nodes.as_ref(), None, sc.nodes)?,
        },
    })
}
