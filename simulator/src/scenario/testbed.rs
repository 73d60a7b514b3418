//! `[testbed]`: how `bootswarm-sim testbed` runs the scenario with real processes; the
//! simulator ignores it.

use super::{Ctx, Scenario, ScenarioError};
use serde::Deserialize;

/// How testbed nodes find each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Discovery {
    /// Node k dials nodes 0..k at fixed addresses (`--peer`).
    Static,
    /// libp2p mDNS on the testbed's bridge (`--mdns`).
    Mdns,
}

/// `[testbed]`: how `bootswarm-sim testbed` runs the scenario with real processes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TestbedSettings {
    /// Shape node NICs even at 1 Gbit/s and above (below that they are always shaped).
    pub shape_nics: bool,
    /// Peer discovery (default: static).
    pub discovery: Option<Discovery>,
    /// Longest wait for all nodes to boot in the swarm run (ns); default derived from T_min.
    pub timeout: Option<u64>,
    /// `[testbed.expect]`: checks on the measured figures.
    pub expect: TestbedExpect,
}

/// `[testbed.expect]`: checks a testbed run must pass. `None` means not checked.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TestbedExpect {
    /// Every node booted.
    pub all_booted: Option<bool>,
    /// Measured time to boot everyone over T_min.
    pub time_vs_tmin_max: Option<f64>,
    /// Measured hub egress over the release bytes F.
    pub hub_egress_vs_f_max: Option<f64>,
    /// Measured hub-only boot time over the measured swarm boot time.
    pub hub_only_speedup_min: Option<f64>,
    /// |simulated − measured| / measured boot time of everyone.
    pub sim_time_error_max: Option<f64>,
    /// |simulated − measured| / measured hub egress bytes.
    pub sim_hub_bytes_error_max: Option<f64>,
    /// Seconds from the announce of the published release until every node runs it.
    pub upgrade_s_max: Option<f64>,
    /// Hub bytes during the upgrade over the bytes the published release adds.
    pub hub_upgrade_bytes_vs_changed_max: Option<f64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTestbed {
    #[serde(default)]
    shape_nics: bool,
    discovery: Option<String>,
    timeout: Option<String>,
    #[serde(default)]
    expect: RawTestbedExpect,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawTestbedExpect {
    all_booted: Option<bool>,
    time_vs_tmin_max: Option<f64>,
    hub_egress_vs_f_max: Option<f64>,
    hub_only_speedup_min: Option<f64>,
    sim_time_error_max: Option<f64>,
    sim_hub_bytes_error_max: Option<f64>,
    upgrade_s_max: Option<f64>,
    hub_upgrade_bytes_vs_changed_max: Option<f64>,
}

/// Fills `testbed`.
pub(super) fn parse(cx: &Ctx<'_>, tb: &RawTestbed, sc: &mut Scenario) -> Result<(), ScenarioError> {
    let discovery = match tb.discovery.as_deref() {
        None => None,
        Some("static") => Some(Discovery::Static),
        Some("mdns") => Some(Discovery::Mdns),
        Some(d) => {
            return Err(cx.err(format!(
                "[testbed] discovery = {d:?} is not \"static\" or \"mdns\""
            )));
        }
    };
    let te = &tb.expect;
    for (key, v) in [
        ("time_vs_tmin_max", te.time_vs_tmin_max),
        ("hub_egress_vs_f_max", te.hub_egress_vs_f_max),
        ("hub_only_speedup_min", te.hub_only_speedup_min),
        ("sim_time_error_max", te.sim_time_error_max),
        ("sim_hub_bytes_error_max", te.sim_hub_bytes_error_max),
        ("upgrade_s_max", te.upgrade_s_max),
        (
            "hub_upgrade_bytes_vs_changed_max",
            te.hub_upgrade_bytes_vs_changed_max,
        ),
    ] {
        if v.is_some_and(|v| !(v.is_finite() && v >= 0.0)) {
            return Err(cx.err(format!(
                "[testbed.expect] {key} must be a non-negative number"
            )));
        }
    }
    sc.testbed = TestbedSettings {
        shape_nics: tb.shape_nics,
        discovery,
        timeout: tb
            .timeout
            .as_deref()
            .map(|v| cx.dur("[testbed] timeout", v))
            .transpose()?,
        expect: TestbedExpect {
            all_booted: te.all_booted,
            time_vs_tmin_max: te.time_vs_tmin_max,
            hub_egress_vs_f_max: te.hub_egress_vs_f_max,
            hub_only_speedup_min: te.hub_only_speedup_min,
            sim_time_error_max: te.sim_time_error_max,
            sim_hub_bytes_error_max: te.sim_hub_bytes_error_max,
            upgrade_s_max: te.upgrade_s_max,
            hub_upgrade_bytes_vs_changed_max: te.hub_upgrade_bytes_vs_changed_max,
        },
    };
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::tests::OK;

    #[test]
    fn parses_the_testbed_section() {
        let text = format!(
            "{OK}\n[testbed]\nshape_nics = true\ndiscovery = \"mdns\"\ntimeout = \"2m\"\n[testbed.expect]\nall_booted = true\nhub_egress_vs_f_max = 1.1\nupgrade_s_max = 30\n"
        );
        let s = Scenario::parse("t.toml", &text).unwrap();
        assert!(s.testbed.shape_nics);
        assert_eq!(s.testbed.discovery, Some(Discovery::Mdns));
        assert_eq!(s.testbed.timeout, Some(120_000_000_000));
        assert_eq!(s.testbed.expect.hub_egress_vs_f_max, Some(1.1));
        assert_eq!(s.testbed.expect.upgrade_s_max, Some(30.0));
        let bad = text.replace("\"mdns\"", "\"carrier-pigeon\"");
        let e = Scenario::parse("x.toml", &bad).unwrap_err().to_string();
        assert!(e.contains("[testbed] discovery"), "{e}");
        let bad = text.replace("1.1", "-1.0");
        let e = Scenario::parse("x.toml", &bad).unwrap_err().to_string();
        assert!(e.contains("[testbed.expect] hub_egress_vs_f_max"), "{e}");
        assert_eq!(
            Scenario::parse("t.toml", OK).unwrap().testbed,
            TestbedSettings::default()
        );
    }
}
