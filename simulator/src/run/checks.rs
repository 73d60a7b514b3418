//! The `[expect]` checks of a simulated run.

use super::{Check, SeedResult, secs};
use crate::faults::Roles;
use crate::host::WorldStats;
use crate::scenario::{Expect, FaultKind, Scenario};

/// The checks, in the order they are reported.
struct Checks(Vec<Check>);

impl Checks {
    fn push(&mut self, name: &str, pass: bool, detail: String) {
        self.0.push(Check {
            name: name.into(),
            pass,
            detail,
        })
    }
}

/// A value with three decimals, `-` when missing.
fn fmt(v: Option<f64>) -> String {
    v.map_or("-".to_string(), |v| format!("{v:.3}"))
}

/// Every `[expect]` check of `sc` on the run `s` summarised in `r`, then `no_abort` if the run
/// was cut short.
pub(super) fn checks(
    sc: &Scenario,
    roles: &Roles,
    corrupt: &[bool],
    honest: &[u32],
    s: &WorldStats,
    r: &SeedResult,
) -> Vec<Check> {
    let x = &sc.expect;
    let mut out = Checks(Vec::new());
    figures(&mut out, x, r);
    booting(&mut out, sc, roles, honest, s, r);
    bad_peers(&mut out, sc, corrupt, honest, s);
    if let Some(m) = x.time_vs_hub_only_max {
        let v = match (r.all_booted_s, r.hub_only_all_booted_s) {
            (Some(a), Some(b)) if b > 0.0 => Some(a / b),
            _ => None,
        };
        out.push(
            "time_vs_hub_only",
            v.is_some_and(|v| v <= m),
            format!("{} <= {m}", fmt(v)),
        );
    }
    upgrade(&mut out, x, r);
    adversaries(&mut out, x, r);
    recovery(&mut out, x, r);
    if let Some(why) = &r.aborted {
        out.push("no_abort", false, why.clone());
    }
    out.0
}

/// Whether every honest node booted, and the run's figures against their limits.
fn figures(out: &mut Checks, x: &Expect, r: &SeedResult) {
    if let Some(want) = x.all_booted {
        let got = r.honest_booted == r.honest && r.aborted.is_none();
        out.push(
            "all_booted",
            got == want,
            format!("{}/{} honest booted", r.honest_booted, r.honest),
        );
    }
    if let Some(m) = x.time_vs_tmin_max {
        out.push(
            "time_vs_tmin",
            r.time_vs_tmin.is_some_and(|v| v <= m),
            format!("{} <= {m}", fmt(r.time_vs_tmin)),
        );
    }
    if let Some(m) = x.hub_egress_vs_f_max {
        out.push(
            "hub_egress_vs_f",
            r.hub_egress_vs_f <= m,
            format!("{:.3} <= {m}", r.hub_egress_vs_f),
        );
    }
    if let Some(m) = x.honest_hub_egress_vs_f_max {
        out.push(
            "honest_hub_egress_vs_f",
            r.honest_hub_egress_vs_f <= m,
            format!("{:.3} <= {m}", r.honest_hub_egress_vs_f),
        );
    }
    if let Some(m) = x.hub_egress_bytes_max {
        out.push(
            "hub_egress_bytes",
            r.hub_egress_bytes <= m,
            format!("{} <= {m}", r.hub_egress_bytes),
        );
    }
    if let Some(m) = x.control_vs_data_max {
        out.push(
            "control_vs_data",
            r.control_vs_data <= m && r.data_bytes > 0,
            format!("{:.4} <= {m}", r.control_vs_data),
        );
    }
    if let Some(m) = x.inter_rack_vs_racks_f_max {
        out.push(
            "inter_rack_vs_racks_f",
            r.inter_rack_vs_racks_f.is_some_and(|v| v <= m),
            format!("{} <= {m}", fmt(r.inter_rack_vs_racks_f)),
        );
    }
    if let Some(m) = x.lan_bytes_vs_needed_max {
        out.push(
            "lan_bytes_vs_needed",
            r.needed_bytes > 0 && r.lan_bytes_vs_needed <= m,
            format!("{:.4} <= {m}", r.lan_bytes_vs_needed),
        );
    }
    if let Some(m) = x.corrupt_accepted {
        out.push(
            "corrupt_accepted",
            r.corrupt_accepted <= m,
            format!("{} <= {m}", r.corrupt_accepted),
        );
    }
}

/// When nodes booted: all by `booted_before`, none before `none_booted_before`.
fn booting(
    out: &mut Checks,
    sc: &Scenario,
    roles: &Roles,
    honest: &[u32],
    s: &WorldStats,
    r: &SeedResult,
) {
    let x = &sc.expect;
    if let Some(t) = x.booted_before {
        let ok = r.aborted.is_none()
            && honest
                .iter()
                .all(|&n| s.booted_at[n as usize].is_some_and(|b| b < t));
        out.push("booted_before", ok, format!("all by {:.1}s", secs(t)));
    }
    if let Some(t) = x.none_booted_before {
        let early = (0..sc.nodes)
            .filter(|&n| {
                roles.booting[n as usize] && s.booted_at[n as usize].is_some_and(|b| b < t)
            })
            .count();
        out.push(
            "none_booted_before",
            early == 0,
            format!("{early} booted before {:.1}s", secs(t)),
        );
    }
}

/// Corrupt peers penalised or banned, and stuck nodes that said why.
fn bad_peers(out: &mut Checks, sc: &Scenario, corrupt: &[bool], honest: &[u32], s: &WorldStats) {
    let x = &sc.expect;
    let bad: Vec<usize> = (0..corrupt.len()).filter(|&n| corrupt[n]).collect();
    if x.each_corrupt_peer_penalised == Some(true) {
        let k = bad
            .iter()
            .filter(|&&n| s.penalised[n] || s.banned[n])
            .count();
        out.push(
            "each_corrupt_peer_penalised",
            k == bad.len(),
            format!("{k}/{} penalised", bad.len()),
        );
    }
    if x.each_corrupt_peer_banned == Some(true) {
        let k = bad.iter().filter(|&&n| s.banned[n]).count();
        out.push(
            "each_corrupt_peer_banned",
            k == bad.len(),
            format!("{k}/{} banned", bad.len()),
        );
    }
    if x.stall_reported == Some(true) {
        // Nodes still missing blocks when the first hub outage ended must have said why.
        let end = sc
            .faults
            .iter()
            .filter(|f| f.kind == FaultKind::HubOutage)
            .map(|f| f.until.unwrap_or(u64::MAX))
            .min()
            .unwrap_or(u64::MAX);
        let stuck: Vec<u32> = honest
            .iter()
            .copied()
            .filter(|&n| s.booted_at[n as usize].is_none_or(|b| b >= end))
            .collect();
        let told = stuck
            .iter()
            .filter(|&&n| {
                s.first_stall[n as usize]
                    .is_some_and(|t| s.booted_at[n as usize].is_none_or(|b| t <= b))
            })
            .count();
        out.push(
            "stall_reported",
            told == stuck.len(),
            format!("{told}/{} stuck nodes said why", stuck.len()),
        );
    }
}

/// The published release: installs, spread, hub bytes, polls, and gossiped attacks.
fn upgrade(out: &mut Checks, x: &Expect, r: &SeedResult) {
    let up = r.upgrade.as_ref();
    if let Some(want) = x.all_upgraded {
        let got = up.is_some_and(|u| u.upgraded == u.nodes);
        out.push(
            "all_upgraded",
            got == want,
            up.map_or("no release was published".into(), |u| {
                format!("{}/{} upgraded", u.upgraded, u.nodes)
            }),
        );
    }
    if let Some(m) = x.announce_p99_s_max {
        let v = up.and_then(|u| u.announce_p99_s);
        out.push(
            "announce_p99_s",
            v.is_some_and(|v| v <= m),
            format!("{} <= {m}", fmt(v)),
        );
    }
    if let Some(m) = x.hub_upgrade_bytes_vs_changed_max {
        let v = up.map(|u| u.hub_upgrade_bytes_vs_changed);
        out.push(
            "hub_upgrade_bytes_vs_changed",
            v.is_some_and(|v| v <= m),
            format!("{} <= {m}", fmt(v)),
        );
    }
    if let Some(m) = x.hub_polls_per_period_max {
        let v = r.hub_polls_per_period;
        out.push(
            "hub_polls_per_period",
            v.is_some_and(|v| v <= m),
            format!("{} <= {m}", fmt(v)),
        );
    }
    if let Some(m) = x.bad_installs {
        out.push(
            "bad_installs",
            r.bad_installs <= m,
            format!("{} <= {m}", r.bad_installs),
        );
    }
    if let Some(want) = x.each_injector_penalised {
        let (all, penalised) = r.injectors;
        let got = all > 0 && penalised == all && r.honest_gossip_penalised == 0;
        out.push(
            "each_injector_penalised",
            got == want,
            format!(
                "{penalised}/{all} injectors penalised, {} honest nodes penalised",
                r.honest_gossip_penalised
            ),
        );
    }
}

/// Adversaries: honest nodes as fast as without them, every adversary caught, no honest node
/// banned.
fn adversaries(out: &mut Checks, x: &Expect, r: &SeedResult) {
    let a = r.adversaries.as_ref();
    if let Some(m) = x.honest_time_vs_clean_max {
        let v = a.and_then(|a| a.honest_time_vs_clean);
        let clean = a.and_then(|a| a.clean_all_booted_s);
        out.push(
            "honest_time_vs_clean",
            v.is_some_and(|v| v <= m),
            format!("{} <= {m} (clean {} s)", fmt(v), fmt(clean)),
        );
    }
    if let Some(want) = x.each_adversary_penalised {
        let got = a.is_some_and(|a| a.identities > 0 && a.penalised == a.identities);
        out.push(
            "each_adversary_penalised",
            got == want,
            a.map_or("no adversaries".into(), |a| {
                format!("{}/{} adversaries penalised", a.penalised, a.identities)
            }),
        );
    }
    if let Some(want) = x.no_honest_banned {
        let banned = a.map_or(0, |a| a.honest_banned);
        out.push(
            "no_honest_banned",
            (banned == 0) == want,
            format!("{banned} honest nodes banned"),
        );
    }
}

/// How soon the farm recovers once a fault ends.
fn recovery(out: &mut Checks, x: &Expect, r: &SeedResult) {
    if let Some(m) = x.hub_recovery_vs_tmin_max {
        let v = r.hub_recovery_s.map(|s| s / r.t_min_s);
        out.push(
            "hub_recovery_vs_tmin",
            v.is_some_and(|v| v <= m),
            format!(
                "{} <= {m} ({} s after the hub's return)",
                fmt(v),
                fmt(r.hub_recovery_s)
            ),
        );
    }
    if let Some(m) = x.rejoin_boot_max {
        let m = secs(m);
        out.push(
            "rejoin_boot",
            r.rejoin_boot_s.is_some_and(|v| v <= m),
            format!("{} s <= {m} s", fmt(r.rejoin_boot_s)),
        );
    }
    if let Some(m) = x.announce_all_max {
        let m = secs(m);
        let v = r.upgrade.as_ref().and_then(|u| u.announce_all_s);
        out.push(
            "announce_all",
            v.is_some_and(|v| v <= m),
            format!("{} s <= {m} s", fmt(v)),
        );
    }
}

#[cfg(test)]
mod tests {
    use crate::run::{Options, run_seed};
    use crate::scenario::Scenario;

    fn scenario(expect: &str) -> Scenario {
        let text = format!(
            r#"
[meta]
name = "tiny"
seeds = [1]
[topology]
nodes = 4
nic = "10Gbit"
hub_link = "1Gbit"
[release]
packages = 2
size = "8MiB"
[[event]]
at = "0s"
kind = "boot"
[expect]
{expect}
"#
        );
        Scenario::parse("tiny.toml", &text).unwrap()
    }

    #[test]
    fn possible_expectations_pass() {
        let r = run_seed(
            &scenario("all_booted = true\ncorrupt_accepted = 0\ntime_vs_tmin_max = 3.0"),
            1,
            Options::default(),
        )
        .unwrap();
        assert!(r.passed(), "{:?}", r.checks);
        assert_eq!(r.booted, 4);
        assert!(r.hub_only_all_booted_s.is_some());
    }

    #[test]
    fn impossible_expectations_fail() {
        for expect in [
            "time_vs_tmin_max = 0.5",
            "hub_egress_vs_f_max = 0.5",
            "hub_egress_bytes_max = 0",
            "control_vs_data_max = 0.0",
            "none_booted_before = \"1h\"",
            "booted_before = \"1ms\"",
            "time_vs_hub_only_max = 0.01",
        ] {
            let r = run_seed(&scenario(expect), 1, Options::default()).unwrap();
            assert!(!r.passed(), "{expect} passed: {:?}", r.checks);
        }
    }
}
