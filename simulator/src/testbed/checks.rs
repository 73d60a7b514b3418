//! The testbed's checks: every installed tree is the sample, and `[testbed.expect]`.

use super::outcome::{Outcome, UpgradeMeasured};
use bootswarm_sim::run::Check;
use bootswarm_sim::scenario::Scenario;

/// The `[testbed.expect]` checks of a run, after the check that every tree is the sample.
pub(crate) fn checks(sc: &Scenario, o: &Outcome) -> Vec<Check> {
    let x = &sc.testbed.expect;
    let mut out = Vec::new();
    let mut push = |name: &str, pass: bool, detail: String| {
        out.push(Check {
            name: name.into(),
            pass,
            detail,
        })
    };
    let fmt = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.3}"));
    let trees = [Some(&o.swarm), o.hub_only.as_ref()]
        .into_iter()
        .flatten()
        .find_map(|p| p.tree_difference.clone())
        .or_else(|| o.upgrade.as_ref().and_then(|u| u.tree_difference.clone()));
    push(
        "trees_identical",
        trees.is_none(),
        trees.unwrap_or_else(|| "every booted node's tree equals the sample".into()),
    );
    let booted = o.swarm.boot_times.iter().flatten().count();
    if let Some(want) = x.all_booted {
        let got = o.swarm.all_booted_s.is_some();
        push(
            "all_booted",
            got == want,
            o.swarm
                .incomplete
                .clone()
                .unwrap_or_else(|| format!("{booted}/{} booted", o.nodes)),
        );
    }
    if sc.publish.is_some() {
        let u = o.upgrade.as_ref();
        push(
            "all_upgraded",
            u.is_some_and(|u| u.all_upgraded_s.is_some()),
            match u {
                None => "the upgrade did not run: not every node booted v1".into(),
                Some(u) => u.incomplete.clone().unwrap_or_else(|| {
                    format!(
                        "{}/{} switched to seq {}",
                        u.times.iter().flatten().count(),
                        o.nodes,
                        u.seq
                    )
                }),
            },
        );
    }
    // A measured value against its limit (`<=` a maximum, `>=` a minimum); a missing value fails.
    let mut bound = |name: &str, limit: Option<f64>, v: Option<f64>, op: &str| {
        if let Some(m) = limit {
            let pass = v.is_some_and(|v| if op == ">=" { v >= m } else { v <= m });
            push(name, pass, format!("{} {op} {m}", fmt(v)));
        }
    };
    bound(
        "upgrade_s",
        x.upgrade_s_max,
        o.upgrade.as_ref().and_then(|u| u.all_upgraded_s),
        "<=",
    );
    bound(
        "hub_upgrade_bytes_vs_changed",
        x.hub_upgrade_bytes_vs_changed_max,
        o.upgrade
            .as_ref()
            .map(UpgradeMeasured::hub_bytes_vs_changed),
        "<=",
    );
    bound("time_vs_tmin", x.time_vs_tmin_max, o.time_vs_tmin(), "<=");
    bound(
        "hub_egress_vs_f",
        x.hub_egress_vs_f_max,
        Some(o.hub_egress_vs_f()),
        "<=",
    );
    if o.hub_only.is_some() {
        bound(
            "hub_only_speedup",
            x.hub_only_speedup_min,
            o.speedup(),
            ">=",
        );
    }
    bound(
        "sim_time_error",
        x.sim_time_error_max,
        o.sim_time_error(),
        "<=",
    );
    bound(
        "sim_hub_bytes_error",
        x.sim_hub_bytes_error_max,
        o.sim_hub_bytes_error(),
        "<=",
    );
    out
}
