//! Measured against simulated, side by side: the table and the JSON object.

use super::outcome::{Outcome, PhaseResult};
use bootswarm_sim::report;
use std::fmt::Write;

fn opt(v: Option<f64>, prec: usize) -> String {
    v.map_or("-".into(), |v| format!("{v:.prec$}"))
}

fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.3}", a / b),
        _ => "-".into(),
    }
}

/// Percentile `p` of the booted nodes' times.
fn pct(times: &[f64], p: f64) -> Option<f64> {
    if times.is_empty() {
        return None;
    }
    let i = ((p * times.len() as f64).ceil() as usize).clamp(1, times.len()) - 1;
    Some(times[i])
}

fn sorted(p: &PhaseResult) -> Vec<f64> {
    let mut v: Vec<f64> = p.boot_times.iter().flatten().copied().collect();
    v.sort_by(f64::total_cmp);
    v
}

fn mib(b: u64) -> f64 {
    b as f64 / (1 << 20) as f64
}

/// The human table.
pub(crate) fn table(o: &Outcome) -> String {
    let s = &o.sim;
    let mut t = String::new();
    let _ = writeln!(
        t,
        "testbed {}: {} nodes, release F = {} B ({:.1} MiB; simulated {} B), T_min {:.3} s (simulated {:.3} s)",
        o.scenario,
        o.nodes,
        o.release_bytes,
        mib(o.release_bytes),
        s.release_bytes,
        o.t_min_s,
        s.t_min_s
    );
    let _ = writeln!(
        t,
        "discovery {:?}, NICs {}, seed {} for the simulation; nodes started within {:.2} s",
        o.discovery,
        if o.shaped_nics { "shaped" } else { "unshaped" },
        s.seed,
        o.swarm.spawn_s
    );
    let _ = writeln!(
        t,
        "{:<28} {:>14} {:>14} {:>10}",
        "", "measured", "simulated", "meas/sim"
    );
    boot_rows(&mut t, o);
    if o.upgrade.is_some() || s.upgrade.is_some() {
        upgrade_rows(&mut t, o);
    }
    row(
        &mut t,
        "CPU busy % (swarm run)",
        o.swarm.cpu_busy.map(|c| c * 100.0),
        None,
        0,
    );
    let _ = writeln!(t, "{}", host_fit(o));
    verdicts(&mut t, o);
    t
}

/// One row of the table: a measured and a simulated figure and their ratio.
fn row(t: &mut String, name: &str, m: Option<f64>, sv: Option<f64>, prec: usize) {
    let _ = writeln!(
        t,
        "{name:<28} {:>14} {:>14} {:>10}",
        opt(m, prec),
        opt(sv, prec),
        ratio(m, sv)
    );
}

/// The rows of the boot: times, hub egress, the hub-only run.
fn boot_rows(t: &mut String, o: &Outcome) {
    let s = &o.sim;
    let m_times = sorted(&o.swarm);
    row(
        t,
        "booted",
        Some(m_times.len() as f64),
        Some(s.booted as f64),
        0,
    );
    row(t, "all booted (s)", o.swarm.all_booted_s, s.all_booted_s, 3);
    row(
        t,
        "all blocks held (s)",
        o.swarm.all_held_s,
        s.all_held_s,
        3,
    );
    row(
        t,
        "boot p50 (s)",
        pct(&m_times, 0.5),
        pct(&s.boot_times, 0.5),
        3,
    );
    row(
        t,
        "boot p90 (s)",
        pct(&m_times, 0.9),
        pct(&s.boot_times, 0.9),
        3,
    );
    row(t, "time vs T_min", o.time_vs_tmin(), s.time_vs_tmin, 3);
    row(
        t,
        "hub egress (MiB)",
        Some(mib(o.swarm.hub_egress_bytes)),
        Some(mib(s.hub_egress_bytes)),
        2,
    );
    row(
        t,
        "hub egress vs F",
        Some(o.hub_egress_vs_f()),
        Some(s.hub_egress_vs_f),
        3,
    );
    row(
        t,
        "bytes from peers (MiB)",
        Some(mib(o.swarm.bytes_from_peers)),
        None,
        1,
    );
    let ho = o.hub_only.as_ref();
    row(
        t,
        "hub-only all booted (s)",
        ho.and_then(|h| h.all_booted_s),
        s.hub_only_all_booted_s,
        3,
    );
    row(
        t,
        "hub-only hub egress vs F",
        ho.map(|h| h.hub_egress_bytes as f64 / o.release_bytes.max(1) as f64),
        None,
        3,
    );
    let sim_speedup = match (s.hub_only_all_booted_s, s.all_booted_s) {
        (Some(h), Some(a)) if a > 0.0 => Some(h / a),
        _ => None,
    };
    row(t, "speed-up vs hub-only", o.speedup(), sim_speedup, 2);
}

/// The rows of the upgrade.
fn upgrade_rows(t: &mut String, o: &Outcome) {
    let mu = o.upgrade.as_ref();
    let su = o.sim.upgrade.as_ref();
    row(
        t,
        "upgraded",
        mu.map(|u| u.times.iter().flatten().count() as f64),
        su.map(|u| u.upgraded as f64),
        0,
    );
    row(
        t,
        "upgrade: all switched (s)",
        mu.and_then(|u| u.all_upgraded_s),
        su.and_then(|u| u.all_upgraded_s),
        3,
    );
    row(
        t,
        "upgrade: new bytes (MiB)",
        mu.map(|u| mib(u.changed_bytes)),
        su.map(|u| mib(u.changed_bytes)),
        2,
    );
    row(
        t,
        "upgrade: hub egress (MiB)",
        mu.map(|u| mib(u.hub_bytes)),
        su.map(|u| mib(u.hub_bytes)),
        2,
    );
    row(
        t,
        "upgrade: hub vs new bytes",
        mu.map(|u| u.hub_bytes_vs_changed()),
        su.map(|u| u.hub_upgrade_bytes_vs_changed),
        3,
    );
}

/// What did not finish, the checks, the kept work directory, and PASS or FAIL.
fn verdicts(t: &mut String, o: &Outcome) {
    for (label, p) in [("swarm", Some(&o.swarm)), ("hub-only", o.hub_only.as_ref())] {
        if let Some(why) = p.and_then(|p| p.incomplete.as_ref()) {
            let _ = writeln!(t, "{label} run incomplete: {why}");
        }
    }
    if let Some(why) = o.upgrade.as_ref().and_then(|u| u.incomplete.as_ref()) {
        let _ = writeln!(t, "upgrade incomplete: {why}");
    }
    if o.upgrade.is_some() {
        let _ = writeln!(
            t,
            "upgrade: measured from `bootswarm announce` to node 0 after every node booted; simulated from the publish event"
        );
    }
    let checks: Vec<String> = o
        .checks
        .iter()
        .map(|c| format!("{}={}", c.name, if c.pass { "PASS" } else { "FAIL" }))
        .collect();
    let _ = writeln!(t, "checks: {}", checks.join(" "));
    for c in o.checks.iter().filter(|c| !c.pass) {
        let _ = writeln!(t, "  FAIL {}: {}", c.name, c.detail);
    }
    if let Some(w) = &o.workdir {
        let _ = writeln!(t, "work directory kept: {}", w.display());
    }
    let _ = writeln!(t, "{}", if o.passed() { "PASS" } else { "FAIL" });
}

/// The measured CPU cost of transfers and installs, beside the scenario's `[host]`: what an
/// operator copies into `[host]` to calibrate the simulator for this machine.
fn host_fit(o: &Outcome) -> String {
    let m = o.swarm.bytes_from_peers + o.swarm.bytes_from_hub;
    let configured = match &o.host {
        Some(h) => format!(
            "[host] in {} has transfer {}, install {}",
            o.scenario_file, h.transfer_cpu_per_mib, h.install_cpu_per_mib
        ),
        None => format!("{} has no [host]", o.scenario_file),
    };
    format!(
        "host fit: transfer {} core-s/MiB (fetch phase: {} core-s for {:.1} MiB received), install {} core-s/MiB ({} core-s for {:.1} MiB written); {configured}",
        opt(o.transfer_cpu_per_mib(), 4),
        opt(o.swarm.fetch_cpu_s, 1),
        mib(m),
        opt(o.install_cpu_per_mib(), 4),
        opt(o.swarm.install_cpu_s, 1),
        o.installed_mib(),
    )
}

/// The simulator's JSON object for the seed, plus the measured figures.
pub(crate) fn json(o: &Outcome) -> serde_json::Value {
    let mut v = report::json_value(&o.sim);
    let extra = serde_json::json!({
        "measured_all_booted_s": o.swarm.all_booted_s,
        "measured_all_held_s": o.swarm.all_held_s,
        "measured_time_vs_tmin": o.time_vs_tmin(),
        "measured_hub_egress_vs_f": o.hub_egress_vs_f(),
        "measured_hub_only_s": o.hub_only.as_ref().and_then(|h| h.all_booted_s),
        "simulated_all_booted_s": o.sim.all_booted_s,
        "simulated_all_held_s": o.sim.all_held_s,
        "simulated_hub_egress_bytes": o.sim.hub_egress_bytes,
        "measured_hub_egress_bytes": o.swarm.hub_egress_bytes,
        "measured_release_bytes": o.release_bytes,
        "measured_t_min_s": o.t_min_s,
        "measured_boot_times": o.swarm.boot_times,
        "measured_bytes_from_peers": o.swarm.bytes_from_peers,
        "measured_bytes_from_hub": o.swarm.bytes_from_hub,
        "measured_hub_only_egress_bytes": o.hub_only.as_ref().map(|h| h.hub_egress_bytes),
        "measured_spawn_s": o.swarm.spawn_s,
        "measured_cpu_busy": o.swarm.cpu_busy,
        "measured_fetch_cpu_s": o.swarm.fetch_cpu_s,
        "measured_install_cpu_s": o.swarm.install_cpu_s,
        "measured_transfer_cpu_per_mib": o.transfer_cpu_per_mib(),
        "measured_install_cpu_per_mib": o.install_cpu_per_mib(),
        "measured_speedup_vs_hub_only": o.speedup(),
        "measured_upgrade_s": o.upgrade.as_ref().and_then(|u| u.all_upgraded_s),
        "measured_hub_upgrade_bytes_vs_changed": o.upgrade.as_ref().map(|u| u.hub_bytes_vs_changed()),
        "measured_upgrade_new_bytes": o.upgrade.as_ref().map(|u| u.changed_bytes),
        "measured_upgrade_hub_bytes": o.upgrade.as_ref().map(|u| u.hub_bytes),
        "measured_upgrade_times": o.upgrade.as_ref().map(|u| u.times.clone()),
        "measured_upgrade_incomplete": o.upgrade.as_ref().and_then(|u| u.incomplete.clone()),
        "simulated_upgrade_s": o.sim.upgrade.as_ref().and_then(|u| u.all_upgraded_s),
        "sim_time_error": o.sim_time_error(),
        "sim_hub_bytes_error": o.sim_hub_bytes_error(),
        "testbed_discovery": format!("{:?}", o.discovery).to_lowercase(),
        "testbed_shaped_nics": o.shaped_nics,
        "testbed_incomplete": o.swarm.incomplete,
        "testbed_passed": o.passed(),
        "testbed_checks": o.checks.iter().map(|c| serde_json::json!({"name": c.name, "pass": c.pass, "detail": c.detail})).collect::<Vec<_>>(),
    });
    if let (Some(obj), serde_json::Value::Object(add)) = (v.as_object_mut(), extra) {
        obj.extend(add);
    }
    v
}
