//! `[topology]`: nodes, their NICs, the hub link, latencies and racks.
//!
//! A new key is a field of [`RawTopology`], its reading in [`parse`] and the [`Scenario`]
//! field it fills.

use super::{Ctx, Scenario, ScenarioError};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTopology {
    nodes: u32,
    nic: Option<String>,
    nic_up: Option<String>,
    nic_down: Option<String>,
    hub_link: String,
    lan_latency: Option<String>,
    hub_latency: Option<String>,
    racks: Option<u32>,
    rack_uplink: Option<String>,
    rack_latency: Option<String>,
    rack_labels: Option<String>,
}

/// Whether the nodes are told their rack (`[topology] rack_labels`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RackLabels {
    /// Each node is configured with its rack.
    #[default]
    Shown,
    /// The nodes are not told: they must infer their locality.
    Hidden,
}

/// Fills `nodes`, `nic_up`, `nic_down`, `racks`, `rack_uplink`, `rack_labels`, `hub_link` and
/// the latencies.
pub(super) fn parse(cx: &Ctx<'_>, t: &RawTopology, sc: &mut Scenario) -> Result<(), ScenarioError> {
    if t.nodes == 0 {
        return Err(cx.err("[topology] nodes must be at least 1".into()));
    }
    let n = t.nodes;
    let nic = t
        .nic
        .as_deref()
        .map(|v| cx.rate("[topology] nic", v))
        .transpose()?;
    let nic_or = |key: &str, v: &Option<String>| match v {
        Some(v) => cx.rate(key, v),
        None => nic.ok_or_else(|| {
            cx.err("[topology] nic is missing (write e.g. nic = \"10Gbit\")".into())
        }),
    };
    sc.nodes = n;
    sc.nic_up = nic_or("[topology] nic_up", &t.nic_up)?;
    sc.nic_down = nic_or("[topology] nic_down", &t.nic_down)?;
    let racks = t.racks.unwrap_or(0);
    if racks > n {
        return Err(cx.err(format!(
            "[topology] racks = {racks} is more than the {n} nodes"
        )));
    }
    sc.racks = racks;
    sc.rack_uplink = match (&t.rack_uplink, racks) {
        (Some(v), _) => cx.rate("[topology] rack_uplink", v)?,
        (None, 0) => 0,
        (None, _) => {
            return Err(cx.err("[topology] rack_uplink is missing although racks is set".into()));
        }
    };
    sc.rack_labels = match t.rack_labels.as_deref() {
        None | Some("shown") => RackLabels::Shown,
        Some("hidden") => RackLabels::Hidden,
        Some(v) => {
            return Err(cx.err(format!(
                "[topology] rack_labels = {v:?} is neither \"shown\" nor \"hidden\""
            )));
        }
    };
    if sc.rack_labels == RackLabels::Hidden && racks == 0 {
        return Err(cx.err("[topology] rack_labels = \"hidden\" needs racks".into()));
    }
    sc.hub_link = cx.rate("[topology] hub_link", &t.hub_link)?;
    let dur_or = |key: &str, v: &Option<String>, default: u64| {
        v.as_deref()
            .map(|v| cx.dur(key, v))
            .transpose()
            .map(|d| d.unwrap_or(default))
    };
    sc.lan_latency = dur_or("[topology] lan_latency", &t.lan_latency, 200_000)?;
    sc.hub_latency = dur_or("[topology] hub_latency", &t.hub_latency, 20_000_000)?;
    sc.rack_latency = dur_or("[topology] rack_latency", &t.rack_latency, 0)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::tests::OK;
    use super::*;

    #[test]
    fn rack_labels_are_shown_unless_hidden() {
        let racks = OK.replace(
            "hub_link = ",
            "racks = 2\nrack_uplink = \"20Gbit\"\nhub_link = ",
        );
        let s = Scenario::parse("r.toml", &racks).unwrap();
        assert_eq!(s.rack_labels, RackLabels::Shown);
        let hidden = racks.replace("racks = 2", "racks = 2\nrack_labels = \"hidden\"");
        let s = Scenario::parse("r.toml", &hidden).unwrap();
        assert_eq!(s.rack_labels, RackLabels::Hidden);
        let bad = racks.replace("racks = 2", "racks = 2\nrack_labels = \"secret\"");
        let e = Scenario::parse("r.toml", &bad).unwrap_err().to_string();
        assert!(e.contains("[topology] rack_labels"), "{e}");
        let flat = OK.replace("hub_link = ", "rack_labels = \"hidden\"\nhub_link = ");
        let e = Scenario::parse("r.toml", &flat).unwrap_err().to_string();
        assert!(e.contains("needs racks"), "{e}");
    }
}
