//! `[expect]`: the checks a simulated run must pass.

use super::nodes::RawNodes;
use super::{Ctx, Scenario, ScenarioError};
use serde::Deserialize;

/// Checks a run must pass. `None` means not checked.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Expect {
    /// Every honest booting node boots.
    pub all_booted: Option<bool>,
    /// Time to boot everyone over T_min.
    pub time_vs_tmin_max: Option<f64>,
    /// Hub egress over release bytes.
    pub hub_egress_vs_f_max: Option<f64>,
    /// Most hub bytes sent to honest nodes, as a multiple of the release size.
    pub honest_hub_egress_vs_f_max: Option<f64>,
    /// Hub egress in bytes.
    pub hub_egress_bytes_max: Option<u64>,
    /// Control bytes over data bytes.
    pub control_vs_data_max: Option<f64>,
    /// Bytes entering racks over racks × release bytes.
    pub inter_rack_vs_racks_f_max: Option<f64>,
    /// Bytes moved (LAN and hub) over the bytes the nodes needed.
    pub lan_bytes_vs_needed_max: Option<f64>,
    /// Corrupt blocks accepted (at most).
    pub corrupt_accepted: Option<u64>,
    /// Every honest booting node boots before this time (ns since the start).
    pub booted_before: Option<u64>,
    /// No node boots before this time (ns since the start).
    pub none_booted_before: Option<u64>,
    /// Every corrupt node is penalised by some honest node.
    pub each_corrupt_peer_penalised: Option<bool>,
    /// Every corrupt node is banned by some honest node.
    pub each_corrupt_peer_banned: Option<bool>,
    /// Every booting node that was stuck at the end of an outage reported why.
    pub stall_reported: Option<bool>,
    /// Swarm boot time over the hub-only boot time.
    pub time_vs_hub_only_max: Option<f64>,
    /// Every live honest node installs the published release.
    pub all_upgraded: Option<bool>,
    /// Time for 99 % of the nodes to hear of the published release (s).
    pub announce_p99_s_max: Option<f64>,
    /// Hub bytes during the upgrade over the bytes the new release adds.
    pub hub_upgrade_bytes_vs_changed_max: Option<f64>,
    /// Release polls of the hub per poll period, for the whole farm.
    pub hub_polls_per_period_max: Option<f64>,
    /// Installs of anything but the newest valid release (at most).
    pub bad_installs: Option<u64>,
    /// Every node that injects a bad release is penalised by some honest node.
    pub each_injector_penalised: Option<bool>,
    /// Honest nodes' all-booted time over that of the same scenario without its faults.
    pub honest_time_vs_clean_max: Option<f64>,
    /// Every adversary identity (but replayers of a valid release, and nodes whose hub route
    /// is broken that never fetched a block from the hub) is penalised, banned or has its
    /// gossip rejected by some node, or resigned.
    pub each_adversary_penalised: Option<bool>,
    /// No honest node is banned by anyone.
    pub no_honest_banned: Option<bool>,
    /// Time from the end of the last hub outage until all honest nodes booted, over T_min.
    pub hub_recovery_vs_tmin_max: Option<f64>,
    /// Longest time from a crashed node's restart to its boot (ns).
    pub rejoin_boot_max: Option<u64>,
    /// Time for every node to hear of the published release (ns).
    pub announce_all_max: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawExpect {
    all_booted: Option<bool>,
    time_vs_tmin_max: Option<f64>,
    hub_egress_vs_f_max: Option<f64>,
    honest_hub_egress_vs_f_max: Option<f64>,
    hub_egress_bytes_max: Option<RawNodes>,
    control_vs_data_max: Option<f64>,
    inter_rack_vs_racks_f_max: Option<f64>,
    lan_bytes_vs_needed_max: Option<f64>,
    corrupt_accepted: Option<u64>,
    booted_before: Option<String>,
    none_booted_before: Option<String>,
    each_corrupt_peer_penalised: Option<bool>,
    each_corrupt_peer_banned: Option<bool>,
    stall_reported: Option<bool>,
    time_vs_hub_only_max: Option<f64>,
    all_upgraded: Option<bool>,
    announce_p99_s_max: Option<f64>,
    hub_upgrade_bytes_vs_changed_max: Option<f64>,
    hub_polls_per_period_max: Option<f64>,
    bad_installs: Option<u64>,
    each_injector_penalised: Option<bool>,
    honest_time_vs_clean_max: Option<f64>,
    each_adversary_penalised: Option<bool>,
    no_honest_banned: Option<bool>,
    hub_recovery_vs_tmin_max: Option<f64>,
    rejoin_boot_max: Option<String>,
    announce_all_max: Option<String>,
}

/// Fills `expect`.
pub(super) fn parse(cx: &Ctx<'_>, x: &RawExpect, sc: &mut Scenario) -> Result<(), ScenarioError> {
    let hub_egress_bytes_max = match &x.hub_egress_bytes_max {
        None => None,
        Some(RawNodes::Count(c)) if *c >= 0 => Some(*c as u64),
        Some(RawNodes::Text(t)) => Some(cx.size("[expect] hub_egress_bytes_max", t)?),
        Some(RawNodes::Count(c)) => {
            return Err(cx.err(format!("[expect] hub_egress_bytes_max = {c} is negative")));
        }
    };
    sc.expect = Expect {
        all_booted: x.all_booted,
        time_vs_tmin_max: x.time_vs_tmin_max,
        hub_egress_vs_f_max: x.hub_egress_vs_f_max,
        honest_hub_egress_vs_f_max: x.honest_hub_egress_vs_f_max,
        hub_egress_bytes_max,
        control_vs_data_max: x.control_vs_data_max,
        inter_rack_vs_racks_f_max: x.inter_rack_vs_racks_f_max,
        lan_bytes_vs_needed_max: x.lan_bytes_vs_needed_max,
        corrupt_accepted: x.corrupt_accepted,
        booted_before: x
            .booted_before
            .as_deref()
            .map(|v| cx.dur("[expect] booted_before", v))
            .transpose()?,
        none_booted_before: x
            .none_booted_before
            .as_deref()
            .map(|v| cx.dur("[expect] none_booted_before", v))
            .transpose()?,
        each_corrupt_peer_penalised: x.each_corrupt_peer_penalised,
        each_corrupt_peer_banned: x.each_corrupt_peer_banned,
        stall_reported: x.stall_reported,
        time_vs_hub_only_max: x.time_vs_hub_only_max,
        all_upgraded: x.all_upgraded,
        announce_p99_s_max: x.announce_p99_s_max,
        hub_upgrade_bytes_vs_changed_max: x.hub_upgrade_bytes_vs_changed_max,
        hub_polls_per_period_max: x.hub_polls_per_period_max,
        bad_installs: x.bad_installs,
        each_injector_penalised: x.each_injector_penalised,
        honest_time_vs_clean_max: x.honest_time_vs_clean_max,
        each_adversary_penalised: x.each_adversary_penalised,
        no_honest_banned: x.no_honest_banned,
        hub_recovery_vs_tmin_max: x.hub_recovery_vs_tmin_max,
        rejoin_boot_max: x
            .rejoin_boot_max
            .as_deref()
            .map(|v| cx.dur("[expect] rejoin_boot_max", v))
            .transpose()?,
        announce_all_max: x
            .announce_all_max
            .as_deref()
            .map(|v| cx.dur("[expect] announce_all_max", v))
            .transpose()?,
    };
    Ok(())
}
