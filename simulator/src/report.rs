//! Output: the human table, JSON lines, and the SVG plot.

use crate::run::SeedResult;
use serde_json::json;
use std::fmt::Write;

fn opt(v: Option<f64>, prec: usize) -> String {
    v.map_or("-".into(), |v| format!("{v:.prec$}"))
}

/// The table: one row per seed, then each check's verdict.
pub fn table(results: &[SeedResult]) -> String {
    let mut s = String::new();
    let Some(first) = results.first() else {
        return s;
    };
    let _ = writeln!(
        s,
        "scenario {}: {} nodes, release {:.1} MiB, T_min {:.3} s",
        first.scenario,
        first.topology_nodes,
        first.release_bytes as f64 / (1 << 20) as f64,
        first.t_min_s
    );
    let _ = writeln!(
        s,
        "{:>6} {:>11} {:>13} {:>9} {:>12} {:>15} {:>15} {:>16} {:>19} {:>8}  checks",
        "seed",
        "booted/N",
        "all_booted_s",
        "t_min_s",
        "time_vs_tmin",
        "hub_egress_vs_f",
        "control_vs_data",
        "corrupt_accepted",
        "hub-only all_booted",
        "wall_s"
    );
    for r in results {
        let checks: Vec<String> = r
            .checks
            .iter()
            .map(|c| format!("{}={}", c.name, if c.pass { "PASS" } else { "FAIL" }))
            .collect();
        let _ = writeln!(
            s,
            "{:>6} {:>11} {:>13} {:>9.3} {:>12} {:>15.3} {:>15.5} {:>16} {:>19} {:>8.2}  {}",
            r.seed,
            format!("{}/{}", r.booted, r.nodes),
            opt(r.all_booted_s, 3),
            r.t_min_s,
            opt(r.time_vs_tmin, 3),
            r.hub_egress_vs_f,
            r.control_vs_data,
            r.corrupt_accepted,
            opt(r.hub_only_all_booted_s, 3),
            r.wall_s,
            checks.join(" ")
        );
        let _ = write!(
            s,
            "{:>6}   LAN bytes {} for {} B needed = {:.3}",
            "", r.data_bytes, r.needed_bytes, r.lan_bytes_vs_needed
        );
        if let (Some(b), Some(v)) = (r.inter_rack_bytes, r.inter_rack_vs_racks_f) {
            let _ = write!(s, "; inter-rack {b} B = {v:.3} × racks × F");
        }
        if let Some(m) = r.peak_rss_mib {
            let _ = write!(s, "; peak RSS {m:.0} MiB");
        }
        let _ = writeln!(s);
        for c in r.checks.iter().filter(|c| !c.pass) {
            let _ = writeln!(s, "{:>6}   FAIL {}: {}", "", c.name, c.detail);
        }
        if let Some(h) = &r.host {
            let _ = writeln!(
                s,
                "{:>6}   host CPU ({} cores, transfer {} and install {} core-s/MiB): all blocks held {} s, all booted {} s",
                "",
                h.cores,
                h.transfer_cpu_per_mib,
                h.install_cpu_per_mib,
                opt(r.all_held_s, 3),
                opt(r.all_booted_s, 3)
            );
        }
        if !r.stall_reasons.is_empty() {
            let reasons: Vec<String> = r
                .stall_reasons
                .iter()
                .map(|(k, v)| format!("{v}× {k}"))
                .collect();
            let _ = writeln!(
                s,
                "{:>6}   stalls ({} nodes): {}",
                "",
                r.stalled_nodes,
                reasons.join("; ")
            );
        }
        for (k, v) in &r.failures {
            let _ = writeln!(s, "{:>6}   failed {v}×: {k}", "");
        }
        if let Some(u) = &r.upgrade {
            let _ = writeln!(
                s,
                "{:>6}   upgrade: {}/{} installed in {} s; 99 % heard in {} s; hub {} B for {} B of new blocks = {:.3}",
                "",
                u.upgraded,
                u.nodes,
                opt(u.all_upgraded_s, 3),
                opt(u.announce_p99_s, 4),
                u.hub_bytes,
                u.changed_bytes,
                u.hub_upgrade_bytes_vs_changed
            );
        }
        if let Some(p) = r.hub_polls_per_period {
            let _ = writeln!(s, "{:>6}   hub release polls per period (farm): {p:.2}", "");
        }
        if let Some(a) = &r.adversaries {
            let _ = writeln!(
                s,
                "{:>6}   adversaries: {}/{} penalised or resigned ({} resigned), {} honest nodes banned; honest all booted {} s against {} s without faults ({})",
                "",
                a.penalised,
                a.identities,
                a.resigned,
                a.honest_banned,
                opt(r.all_booted_s, 3),
                opt(a.clean_all_booted_s, 3),
                opt(a.honest_time_vs_clean, 3)
            );
        }
        if let Some(v) = r.hub_recovery_s {
            let _ = writeln!(
                s,
                "{:>6}   hub outage: all booted {v:.3} s after the hub's return ({:.3} x T_min)",
                "",
                v / r.t_min_s
            );
        }
        if let Some(v) = r.rejoin_boot_s {
            let _ = writeln!(
                s,
                "{:>6}   restarted nodes booted within {v:.3} s of their return",
                ""
            );
        }
        if r.injectors.0 > 0 || r.bad_installs > 0 {
            let _ = writeln!(
                s,
                "{:>6}   gossip attacks: {}/{} injectors penalised, {} honest nodes penalised, {} bad installs",
                "", r.injectors.1, r.injectors.0, r.honest_gossip_penalised, r.bad_installs
            );
        }
    }
    let pass = results.iter().all(SeedResult::passed);
    let _ = writeln!(s, "{}", if pass { "PASS" } else { "FAIL" });
    s
}

/// One JSON object (one line) for a seed.
pub fn json_line(r: &SeedResult) -> String {
    json_value(r).to_string()
}

/// The JSON object of [`json_line`], for callers that add keys.
pub fn json_value(r: &SeedResult) -> serde_json::Value {
    let mut v = base_json(r);
    let up = r.upgrade.as_ref();
    let extra = json!({
        "announce_p99_s": up.and_then(|u| u.announce_p99_s),
        "all_upgraded_s": up.and_then(|u| u.all_upgraded_s),
        "upgraded": up.map(|u| u.upgraded),
        "hub_upgrade_bytes": up.map(|u| u.hub_bytes),
        "changed_bytes": up.map(|u| u.changed_bytes),
        "hub_upgrade_bytes_vs_changed": up.map(|u| u.hub_upgrade_bytes_vs_changed),
        "hub_polls_per_period": r.hub_polls_per_period,
        "hub_startup_polls": r.hub_startup_polls,
        "bad_installs": r.bad_installs,
        "injectors": r.injectors.0,
        "injectors_penalised": r.injectors.1,
        "honest_gossip_penalised": r.honest_gossip_penalised,
        "needed_bytes": r.needed_bytes,
        "lan_bytes_vs_needed": r.lan_bytes_vs_needed,
        "inter_rack_bytes": r.inter_rack_bytes,
        "inter_rack_vs_racks_f": r.inter_rack_vs_racks_f,
        "peak_rss_mib": r.peak_rss_mib,
    });
    if let (Some(obj), serde_json::Value::Object(more)) = (v.as_object_mut(), extra) {
        obj.extend(more);
    }
    // Figures only some scenarios have appear only in theirs.
    let a = r.adversaries.as_ref();
    let optional = [
        ("adversaries", a.map(|a| json!(a.identities))),
        ("adversaries_penalised", a.map(|a| json!(a.penalised))),
        ("adversaries_resigned", a.map(|a| json!(a.resigned))),
        ("honest_banned", a.map(|a| json!(a.honest_banned))),
        (
            "clean_all_booted_s",
            a.and_then(|a| a.clean_all_booted_s).map(|v| json!(v)),
        ),
        (
            "honest_time_vs_clean",
            a.and_then(|a| a.honest_time_vs_clean).map(|v| json!(v)),
        ),
        ("hub_recovery_s", r.hub_recovery_s.map(|v| json!(v))),
        ("rejoin_boot_s", r.rejoin_boot_s.map(|v| json!(v))),
        (
            "announce_all_s",
            up.and_then(|u| u.announce_all_s).map(|v| json!(v)),
        ),
    ];
    if let Some(obj) = v.as_object_mut() {
        for (k, val) in optional {
            if let Some(val) = val {
                obj.insert(k.to_string(), val);
            }
        }
    }
    v
}

fn base_json(r: &SeedResult) -> serde_json::Value {
    json!({
        "scenario": r.scenario,
        "seed": r.seed,
        "nodes": r.nodes,
        "booted": r.booted,
        "all_booted_s": r.all_booted_s,
        "all_held_s": r.all_held_s,
        "t_min_s": r.t_min_s,
        "time_vs_tmin": r.time_vs_tmin,
        "release_bytes": r.release_bytes,
        "hub_egress_bytes": r.hub_egress_bytes,
        "hub_egress_vs_f": r.hub_egress_vs_f,
        "honest_hub_egress_vs_f": r.honest_hub_egress_vs_f,
        "control_bytes": r.control_bytes,
        "data_bytes": r.data_bytes,
        "control_vs_data": r.control_vs_data,
        "corrupt_accepted": r.corrupt_accepted,
        "corrupt_rejected": r.corrupt_rejected,
        "banned": r.banned,
        "stalled_nodes": r.stalled_nodes,
        "stall_reasons": r.stall_reasons,
        "failures": r.failures,
        "p50_boot_s": r.p50_s,
        "p99_boot_s": r.p99_s,
        "hub_only_all_booted_s": r.hub_only_all_booted_s,
        "trace_hash": r.trace_hash,
        "events": r.events,
        "solves": r.solves,
        "wall_s": r.wall_s,
        "swarm_wall_s": r.swarm_wall_s,
        "aborted": r.aborted,
        "passed": r.passed(),
        "checks": r.checks.iter().map(|c| json!({"name": c.name, "pass": c.pass, "detail": c.detail})).collect::<Vec<_>>(),
    })
}

const W: f64 = 720.0;
const H: f64 = 260.0;
const ML: f64 = 60.0;
const MR: f64 = 20.0;
const MT: f64 = 30.0;
const MB: f64 = 40.0;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The plot for one seed: boot-completion CDF (swarm and hub-only, log time axis) and hub
/// egress rate over time of the swarm run.
pub fn svg(r: &SeedResult) -> String {
    let mut s = String::new();
    let total_h = 2.0 * H + 20.0;
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{total_h}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    cdf_panel(&mut s, r);
    hub_panel(&mut s, r);
    s.push_str("</svg>\n");
    s
}

/// Vertical position of share `f` (0 at the bottom, 1 at the top) in the panel at `top`.
fn y(f: f64, top: f64) -> f64 {
    top + MT + (1.0 - f) * (H - MT - MB)
}

/// Panel 1: the boot-completion CDF on a log10 time axis.
fn cdf_panel(s: &mut String, r: &SeedResult) {
    let n = r.nodes.max(1) as f64;
    let all: Vec<f64> = r
        .boot_times
        .iter()
        .chain(&r.hub_only_boot_times)
        .copied()
        .filter(|t| *t > 0.0)
        .collect();
    let lo = all
        .iter()
        .copied()
        .fold(f64::INFINITY, f64::min)
        .min(r.t_min_s)
        .max(1e-3);
    let hi = all
        .iter()
        .copied()
        .fold(0.0, f64::max)
        .max(r.t_min_s * 1.1)
        .max(lo * 10.0);
    let (l0, l1) = (lo.log10().floor(), hi.log10().ceil());
    let x = |t: f64| ML + (t.max(10f64.powf(l0)).log10() - l0) / (l1 - l0) * (W - ML - MR);
    let _ = writeln!(
        s,
        r#"<text x="{ML}" y="18" font-size="13">{}: boot completion (seed {}), log time</text>"#,
        esc(&r.scenario),
        r.seed
    );
    axes(s, 0.0);
    let mut d = l0;
    while d <= l1 {
        let px = x(10f64.powf(d));
        let _ = writeln!(
            s,
            r##"<line x1="{px:.1}" y1="{:.1}" x2="{px:.1}" y2="{:.1}" stroke="#ddd"/><text x="{px:.1}" y="{:.1}" text-anchor="middle">{}s</text>"##,
            MT,
            H - MB,
            H - MB + 14.0,
            10f64.powf(d)
        );
        d += 1.0;
    }
    for (k, f) in [0.0, 0.5, 1.0].iter().enumerate() {
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}%</text>"#,
            ML - 4.0,
            y(*f, 0.0) + 4.0,
            k * 50
        );
    }
    let tx = x(r.t_min_s);
    let _ = writeln!(
        s,
        r#"<line x1="{tx:.1}" y1="{MT}" x2="{tx:.1}" y2="{:.1}" stroke="gray" stroke-dasharray="4 3"/><text x="{:.1}" y="{:.1}" fill="gray">T_min</text>"#,
        H - MB,
        tx + 3.0,
        MT + 10.0
    );
    for (times, color, label, ly) in [
        (&r.boot_times, "#1f77b4", "swarm", 0.0),
        (&r.hub_only_boot_times, "#d62728", "hub-only", 14.0),
    ] {
        let mut pts = format!("{:.1},{:.1}", x(lo), y(0.0, 0.0));
        for (i, t) in times.iter().enumerate() {
            let _ = write!(
                pts,
                " {:.1},{:.1} {:.1},{:.1}",
                x(*t),
                y(i as f64 / n, 0.0),
                x(*t),
                y((i + 1) as f64 / n, 0.0)
            );
        }
        let _ = writeln!(
            s,
            r#"<polyline fill="none" stroke="{color}" stroke-width="1.5" points="{pts}"/>"#
        );
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" fill="{color}">{label}</text>"#,
            W - MR - 60.0,
            MT + 10.0 + ly
        );
    }
}

/// Panel 2: cumulative hub egress over the swarm run, against the release size F. (A rate
/// binned by chunk completions spikes above the link's capacity and misleads.)
fn hub_panel(s: &mut String, r: &SeedResult) {
    let top = H + 20.0;
    let end = r
        .hub_samples
        .last()
        .map_or(1.0, |s| s.0)
        .max(r.all_booted_s.unwrap_or(0.0))
        .max(1e-3);
    let f = r.release_bytes.max(1) as f64;
    let total = r.hub_samples.last().map_or(0, |s| s.1) as f64;
    let peak = total.max(f);
    let _ = writeln!(
        s,
        r#"<text x="{ML}" y="{:.1}" font-size="13">hub egress of the swarm run, cumulative (total {:.2} × F)</text>"#,
        top + 18.0,
        r.hub_egress_vs_f
    );
    axes(s, top);
    let xl = |t: f64| ML + t / end * (W - ML - MR);
    let mut pts = format!("{:.1},{:.1}", xl(0.0), y(0.0, top));
    let mut last = 0.0;
    for &(t, cum) in &r.hub_samples {
        let (px, py0, py1) = (xl(t), y(last / peak, top), y(cum as f64 / peak, top));
        let _ = write!(pts, " {px:.1},{py0:.1} {px:.1},{py1:.1}");
        last = cum as f64;
    }
    let _ = write!(pts, " {:.1},{:.1}", xl(end), y(last / peak, top));
    let _ = writeln!(
        s,
        r##"<polyline fill="none" stroke="#2ca02c" stroke-width="1.5" points="{pts}"/>"##
    );
    let fy = y(f / peak, top);
    let _ = writeln!(
        s,
        r##"<line x1="{ML}" y1="{fy:.1}" x2="{:.1}" y2="{fy:.1}" stroke="#555" stroke-dasharray="4 3"/>"##,
        W - MR
    );
    let _ = writeln!(
        s,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="end">F = {:.0} MiB</text>"#,
        W - MR - 4.0,
        fy - 4.0,
        f / f64::from(1u32 << 20)
    );
    let _ = writeln!(
        s,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="end">0</text>"#,
        ML - 4.0,
        y(0.0, top) + 4.0
    );
    for k in 0..=4 {
        let t = end * k as f64 / 4.0;
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{t:.2}s</text>"#,
            xl(t),
            top + H - MB + 14.0
        );
    }
}

fn axes(s: &mut String, top: f64) {
    let _ = writeln!(
        s,
        r#"<line x1="{ML}" y1="{:.1}" x2="{ML}" y2="{:.1}" stroke="black"/><line x1="{ML}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="black"/>"#,
        top + MT,
        top + H - MB,
        top + H - MB,
        W - MR,
        top + H - MB
    );
}
