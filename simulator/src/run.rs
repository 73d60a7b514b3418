//! One scenario on one seed: the swarm run, the hub-only baseline, T_min, and the checks.

use crate::faults::{Roles, resolve};
use crate::host::{World, WorldStats};
use crate::release::SimRelease;
use crate::scenario::{FaultKind, HostCpu, Scenario};
use crate::time::NANOS_PER_SEC;
use bootswarm_protocol::agent::HubMode;
use std::collections::BTreeMap;
use std::time::Instant;

mod checks;

/// One expectation and whether it held.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    /// The `[expect]` key.
    pub name: String,
    /// Whether it held.
    pub pass: bool,
    /// The measured value against the limit.
    pub detail: String,
}

/// Everything measured for one seed.
#[derive(Debug, Clone)]
pub struct SeedResult {
    /// Scenario name.
    pub scenario: String,
    /// Seed.
    pub seed: u64,
    /// Booting nodes (seeds excluded).
    pub nodes: usize,
    /// Booting nodes that booted.
    pub booted: usize,
    /// Honest booting nodes.
    pub honest: usize,
    /// Honest booting nodes that booted.
    pub honest_booted: usize,
    /// Seconds from the first boot event until the last honest booting node booted.
    pub all_booted_s: Option<f64>,
    /// Seconds from the first boot event until the last honest booting node held every
    /// block; before `all_booted_s` only with `[host]`, whose installs take time.
    pub all_held_s: Option<f64>,
    /// The scenario's `[host]`.
    pub host: Option<HostCpu>,
    /// max(F/B, F/d, N·F/(B + Σu)) in seconds.
    pub t_min_s: f64,
    /// all_booted_s / t_min_s.
    pub time_vs_tmin: Option<f64>,
    /// F: bytes of every block of the release.
    pub release_bytes: u64,
    /// Bytes the hub sent.
    pub hub_egress_bytes: u64,
    /// hub_egress_bytes / F.
    pub hub_egress_vs_f: f64,
    /// Hub bytes sent to honest nodes / F (banned corrupt nodes fall back to the hub).
    pub honest_hub_egress_vs_f: f64,
    /// Control bytes.
    pub control_bytes: u64,
    /// Data bytes (all flows).
    pub data_bytes: u64,
    /// control_bytes / data_bytes.
    pub control_vs_data: f64,
    /// Bytes of the blocks the nodes came to hold and did not hold before.
    pub needed_bytes: u64,
    /// data_bytes / needed_bytes: the LAN bytes moved per byte the nodes needed.
    pub lan_bytes_vs_needed: f64,
    /// Bytes that entered a rack from another rack or the hub, when there are racks.
    pub inter_rack_bytes: Option<u64>,
    /// inter_rack_bytes / (racks × F): 1 when each block enters each rack once.
    pub inter_rack_vs_racks_f: Option<f64>,
    /// Peak resident memory of the process so far (MiB), when the caller measured it.
    pub peak_rss_mib: Option<f64>,
    /// Corrupt blocks stored.
    pub corrupt_accepted: u64,
    /// Corrupt blocks rejected.
    pub corrupt_rejected: u64,
    /// Nodes banned by someone.
    pub banned: usize,
    /// Booting nodes that reported a stall.
    pub stalled_nodes: usize,
    /// Stall reasons with counts.
    pub stall_reasons: BTreeMap<String, u64>,
    /// `Failed` events with counts.
    pub failures: BTreeMap<String, u64>,
    /// Median boot duration of booted nodes (from their own start), seconds.
    pub p50_s: Option<f64>,
    /// 99th percentile boot duration, seconds.
    pub p99_s: Option<f64>,
    /// Boot completion times (s since the first boot event), sorted.
    pub boot_times: Vec<f64>,
    /// The same for the hub-only baseline.
    pub hub_only_boot_times: Vec<f64>,
    /// all_booted_s of the hub-only baseline.
    pub hub_only_all_booted_s: Option<f64>,
    /// `(s, cumulative hub bytes)` of the swarm run.
    pub hub_samples: Vec<(f64, u64)>,
    /// Trace hash of the swarm run.
    pub trace_hash: String,
    /// Events dispatched in the swarm run.
    pub events: u64,
    /// Flow re-solves in the swarm run.
    pub solves: u64,
    /// Wall seconds for both runs.
    pub wall_s: f64,
    /// Wall seconds of the swarm run alone.
    pub swarm_wall_s: f64,
    /// Why a run was cut short, if one was.
    pub aborted: Option<String>,
    /// The `[expect]` checks.
    pub checks: Vec<Check>,
    /// Number of nodes in the topology.
    pub topology_nodes: u32,
    /// The upgrade, when the scenario publishes a release.
    pub upgrade: Option<UpgradeResult>,
    /// Release polls of the hub per poll period for the whole farm, when nodes poll (each
    /// node's start-up poll apart).
    pub hub_polls_per_period: Option<f64>,
    /// Polls each node made when it started (not counted per period), when nodes poll.
    pub hub_startup_polls: Option<u64>,
    /// Installs of anything but the first and the published release.
    pub bad_installs: u64,
    /// Nodes injecting bad releases, and how many of them some node penalised.
    pub injectors: (usize, usize),
    /// Honest nodes (not injecting) penalised for what they gossiped.
    pub honest_gossip_penalised: usize,
    /// The adversaries: what the scenario's faults make of its nodes.
    pub adversaries: Option<AdversaryResult>,
    /// Seconds from the end of the last hub outage until every honest node booted, when a
    /// hub outage ends before that.
    pub hub_recovery_s: Option<f64>,
    /// Longest time from a crashed node's restart to its boot, when crashed nodes restart
    /// unbooted.
    pub rejoin_boot_s: Option<f64>,
}

/// What adversaries did to the honest nodes.
#[derive(Debug, Clone, PartialEq)]
pub struct AdversaryResult {
    /// Adversary identities that can be caught (all but replayers of a valid release, and
    /// nodes whose hub route is broken that never fetched a block from the hub).
    pub identities: usize,
    /// Of them, those some node penalised, banned, or rejected the gossip of, or that resigned
    /// (a node that cannot reach the hub steps down by itself).
    pub penalised: usize,
    /// Adversary nodes that resigned their ownership.
    pub resigned: usize,
    /// Honest nodes some node banned.
    pub honest_banned: usize,
    /// all_booted_s of the honest nodes in the same scenario without its faults, when asked.
    pub clean_all_booted_s: Option<f64>,
    /// all_booted_s / clean_all_booted_s.
    pub honest_time_vs_clean: Option<f64>,
}

/// How the published release spread and installed.
#[derive(Debug, Clone, PartialEq)]
pub struct UpgradeResult {
    /// Nodes alive at the publication.
    pub nodes: usize,
    /// Nodes that installed it.
    pub upgraded: usize,
    /// Time for 99 % of the nodes to hear of it (s).
    pub announce_p99_s: Option<f64>,
    /// Time for every node to hear of it (s).
    pub announce_all_s: Option<f64>,
    /// Time from the publication until every node installed it (s).
    pub all_upgraded_s: Option<f64>,
    /// Bytes the new release adds.
    pub changed_bytes: u64,
    /// Hub bytes sent after the publication.
    pub hub_bytes: u64,
    /// hub_bytes / changed_bytes.
    pub hub_upgrade_bytes_vs_changed: f64,
}

impl SeedResult {
    /// Whether every check held.
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.pass)
    }
}

/// Options of a run.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Skip the hub-only baseline.
    pub no_baseline: bool,
}

fn secs(ns: u64) -> f64 {
    ns as f64 / NANOS_PER_SEC as f64
}

/// T_min = max(F/B, F/d, N·F/(B + Σu)) in seconds.
pub fn t_min(f: u64, hub: u64, down: u64, up: u64, n: usize) -> f64 {
    let f = f as f64;
    let (b, d, u) = (hub as f64, down as f64, up as f64);
    (f / b).max(f / d).max(n as f64 * f / (b + n as f64 * u))
}

/// The default horizon: the last scheduled event plus twice the hub-only time plus 10 minutes.
pub fn horizon(sc: &Scenario, f: u64, n: usize) -> u64 {
    if let Some(h) = sc.horizon {
        return h;
    }
    let last = sc
        .events
        .iter()
        .map(|e| e.at + e.spread)
        .chain(sc.faults.iter().map(|x| x.until.unwrap_or(x.at)))
        .max()
        .unwrap_or(0);
    let hub_only = (n as f64 * f as f64 / sc.hub_link as f64 * 1e9) as u64;
    last + 2 * hub_only + 600 * NANOS_PER_SEC
}

/// Runs the scenario on one seed (swarm and, unless skipped, the hub-only baseline).
pub fn run_seed(sc: &Scenario, seed: u64, opts: Options) -> Result<SeedResult, String> {
    let wall = Instant::now();
    let upgrade = sc.publish.as_ref().map(|p| (p.packages, p.fraction));
    let rel = SimRelease::build_with_upgrade(seed, sc.packages, sc.size, upgrade).map_err(|e| {
        format!(
            "scenario {}: the synthetic release cannot be built ({e})",
            sc.file
        )
    })?;
    let roles = resolve(sc, seed);
    let f = rel.total_bytes();
    let n_boot = roles.booting.iter().filter(|b| **b).count();
    let hz = horizon(sc, f, n_boot);
    let swarm = World::new(sc, &rel, &roles, seed, HubMode::Fallback).run(hz);
    let swarm_wall_s = wall.elapsed().as_secs_f64();
    let clean = sc.expect.honest_time_vs_clean_max.map(|_| {
        let clean = Scenario {
            faults: Vec::new(),
            ..sc.clone()
        };
        let clean_roles = resolve(&clean, seed);
        World::new(&clean, &rel, &clean_roles, seed, HubMode::Fallback).run(hz)
    });
    let base = if opts.no_baseline {
        None
    } else {
        Some(World::new(sc, &rel, &roles, seed, HubMode::Only).run(hz))
    };
    let wall_s = wall.elapsed().as_secs_f64();
    let mut r = summarise(sc, seed, &rel, &roles, &swarm, base.as_ref(), wall_s);
    r.swarm_wall_s = swarm_wall_s;
    if let (Some(clean), Some(a)) = (clean.as_ref(), r.adversaries.as_mut()) {
        let honest = honest_nodes(sc, &roles);
        let t0 = first_start(&roles);
        let last = honest
            .iter()
            .map(|&n| clean.booted_at[n as usize])
            .try_fold(0, |m, b| b.map(|b| m.max(b)));
        a.clean_all_booted_s = last
            .filter(|_| clean.aborted.is_none())
            .map(|l| secs(l.saturating_sub(t0)));
        a.honest_time_vs_clean = match (r.all_booted_s, a.clean_all_booted_s) {
            (Some(x), Some(c)) if c > 0.0 => Some(x / c),
            _ => None,
        };
        r.checks = checks::checks(sc, &roles, &corrupt_nodes(sc, &roles), &honest, &swarm, &r);
    }
    Ok(r)
}

/// The booting nodes that are neither corrupt nor adversaries.
fn honest_nodes(sc: &Scenario, roles: &Roles) -> Vec<u32> {
    let corrupt = corrupt_nodes(sc, roles);
    let adversary = adversary_nodes(sc, roles);
    (0..sc.nodes)
        .filter(|&n| roles.booting[n as usize] && !corrupt[n as usize] && !adversary[n as usize])
        .collect()
}

/// When the first booting node starts (ns).
fn first_start(roles: &Roles) -> u64 {
    roles
        .starts
        .iter()
        .filter(|&&(n, _, _)| roles.booting[n as usize])
        .map(|&(_, at, _)| at)
        .min()
        .unwrap_or(0)
}

/// Nodes made adversaries by an attacker or faulty-node fault.
fn adversary_nodes(sc: &Scenario, roles: &Roles) -> Vec<bool> {
    let mut a = vec![false; sc.nodes as usize];
    for (f, nodes) in sc.faults.iter().zip(&roles.fault_nodes) {
        if f.kind.is_attacker() || f.kind.is_faulty_node() {
            for &n in nodes {
                a[n as usize] = true;
            }
        }
    }
    a
}

fn corrupt_nodes(sc: &Scenario, roles: &Roles) -> Vec<bool> {
    let mut c = vec![false; sc.nodes as usize];
    for (i, f) in sc.faults.iter().enumerate() {
        if f.kind == FaultKind::Corrupt {
            for &n in &roles.fault_nodes[i] {
                c[n as usize] = true;
            }
        }
    }
    c
}

fn summarise(
    sc: &Scenario,
    seed: u64,
    rel: &SimRelease,
    roles: &Roles,
    s: &WorldStats,
    base: Option<&WorldStats>,
    wall_s: f64,
) -> SeedResult {
    let f = rel.total_bytes();
    let corrupt = corrupt_nodes(sc, roles);
    let start: BTreeMap<u32, u64> = roles.starts.iter().map(|&(n, at, _)| (n, at)).collect();
    let booting: Vec<u32> = (0..sc.nodes)
        .filter(|&n| roles.booting[n as usize])
        .collect();
    let honest = honest_nodes(sc, roles);
    let t0 = booting
        .iter()
        .filter_map(|n| start.get(n))
        .copied()
        .min()
        .unwrap_or(0);
    let times = |st: &WorldStats| -> Vec<f64> {
        let mut v: Vec<f64> = booting
            .iter()
            .filter_map(|&n| st.booted_at[n as usize])
            .map(|t| secs(t.saturating_sub(t0)))
            .collect();
        v.sort_by(f64::total_cmp);
        v
    };
    let last_of = |at: &[Option<u64>], st: &WorldStats| -> Option<f64> {
        let mut last = 0;
        for &n in &honest {
            last = last.max(at[n as usize]?);
        }
        (st.aborted.is_none()).then(|| secs(last.saturating_sub(t0)))
    };
    let all_at = |st: &WorldStats| last_of(&st.booted_at, st);
    let all_booted_s = all_at(s);
    let t_min_s = t_min(f, sc.hub_link, sc.nic_down, sc.nic_up, booting.len());
    let mut durations: Vec<u64> = booting
        .iter()
        .filter_map(|&n| Some(s.booted_at[n as usize]?.saturating_sub(*start.get(&n)?)))
        .collect();
    durations.sort_unstable();
    let ratio = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    let mut r = SeedResult {
        scenario: sc.name.clone(),
        seed,
        nodes: booting.len(),
        booted: booted_count(&booting, s),
        honest: honest.len(),
        honest_booted: booted_count(&honest, s),
        all_booted_s,
        all_held_s: last_of(&s.held_at, s),
        host: sc.host,
        t_min_s,
        time_vs_tmin: all_booted_s.map(|a| a / t_min_s),
        release_bytes: f,
        hub_egress_bytes: s.hub_egress,
        hub_egress_vs_f: ratio(s.hub_egress, f),
        honest_hub_egress_vs_f: ratio(s.hub_egress - s.hub_egress_to_corrupt, f),
        control_bytes: s.control_bytes,
        data_bytes: s.data_bytes,
        control_vs_data: ratio(s.control_bytes, s.data_bytes),
        needed_bytes: s.needed_bytes,
        lan_bytes_vs_needed: ratio(s.data_bytes, s.needed_bytes),
        inter_rack_bytes: (sc.racks > 0).then_some(s.inter_rack_bytes),
        inter_rack_vs_racks_f: (sc.racks > 0)
            .then(|| ratio(s.inter_rack_bytes, sc.racks as u64 * f)),
        peak_rss_mib: None,
        corrupt_accepted: s.corrupt_accepted,
        corrupt_rejected: s.corrupt_rejected,
        banned: s.banned.iter().filter(|b| **b).count(),
        stalled_nodes: booting
            .iter()
            .filter(|&&n| s.first_stall[n as usize].is_some())
            .count(),
        stall_reasons: s.stall_reasons.clone(),
        failures: s.failures.clone(),
        p50_s: percentile(&durations, 0.5),
        p99_s: percentile(&durations, 0.99),
        boot_times: times(s),
        hub_only_boot_times: base.map(times).unwrap_or_default(),
        hub_only_all_booted_s: base.and_then(all_at),
        hub_samples: s
            .hub_samples
            .iter()
            .map(|&(t, b)| (secs(t.saturating_sub(t0)), b))
            .collect(),
        trace_hash: s.trace_hash.clone(),
        events: s.events,
        solves: s.solves,
        wall_s,
        swarm_wall_s: wall_s,
        aborted: s
            .aborted
            .clone()
            .or_else(|| base.and_then(|b| b.aborted.clone())),
        checks: Vec::new(),
        topology_nodes: sc.nodes,
        upgrade: upgrade_result(sc, rel, s),
        hub_polls_per_period: polls_per_period(sc, s),
        hub_startup_polls: sc.poll_interval.map(|_| s.hub_startup_polls),
        bad_installs: s.bad_installs,
        injectors: injectors(sc, roles, s),
        honest_gossip_penalised: (0..sc.nodes as usize)
            .filter(|&n| s.gossip_penalised[n] && !is_injector(sc, roles, n as u32))
            .count(),
        adversaries: adversary_result(sc, roles, &honest, s),
        hub_recovery_s: hub_recovery(sc, &honest, s),
        rejoin_boot_s: rejoin(sc, roles, s),
    };
    r.checks = checks::checks(sc, roles, &corrupt, &honest, s, &r);
    r
}

/// Percentile `p` of sorted durations, in seconds.
fn percentile(durations: &[u64], p: f64) -> Option<f64> {
    if durations.is_empty() {
        return None;
    }
    let i = ((p * durations.len() as f64).ceil() as usize).clamp(1, durations.len()) - 1;
    Some(secs(durations[i]))
}

/// How many of `nodes` booted.
fn booted_count(nodes: &[u32], s: &WorldStats) -> usize {
    nodes
        .iter()
        .filter(|&&n| s.booted_at[n as usize].is_some())
        .count()
}

/// Release polls of the hub per poll period for the whole farm, when nodes poll.
fn polls_per_period(sc: &Scenario, s: &WorldStats) -> Option<f64> {
    sc.poll_interval.map(|p| {
        let periods = s.end as f64 / p as f64;
        if periods > 0.0 {
            s.hub_polls as f64 / periods
        } else {
            0.0
        }
    })
}

fn upgrade_result(sc: &Scenario, rel: &SimRelease, s: &WorldStats) -> Option<UpgradeResult> {
    let (p, v2) = (sc.publish.as_ref()?, rel.v2.as_ref()?);
    let alive: Vec<usize> = (0..sc.nodes as usize)
        .filter(|&n| s.booted_at[n].is_some() || s.upgraded_at[n].is_some())
        .collect();
    let mut heard: Vec<u64> = alive
        .iter()
        .filter_map(|&n| s.heard_at[n])
        .map(|t| t.saturating_sub(p.at))
        .collect();
    heard.sort_unstable();
    let need = ((alive.len() as f64 * 0.99).ceil() as usize).max(1);
    let announce_p99_s = (heard.len() >= need).then(|| secs(heard[need - 1]));
    let announce_all_s = (heard.len() == alive.len())
        .then(|| heard.last().map(|&t| secs(t)))
        .flatten();
    let upgraded: Vec<u64> = alive.iter().filter_map(|&n| s.upgraded_at[n]).collect();
    let all_upgraded_s = (upgraded.len() == alive.len())
        .then(|| upgraded.iter().max().map(|t| secs(t.saturating_sub(p.at))))
        .flatten();
    let hub_bytes = s.hub_egress.saturating_sub(s.hub_egress_at_publish);
    Some(UpgradeResult {
        nodes: alive.len(),
        upgraded: upgraded.len(),
        announce_p99_s,
        announce_all_s,
        all_upgraded_s,
        changed_bytes: v2.new_bytes,
        hub_bytes,
        hub_upgrade_bytes_vs_changed: hub_bytes as f64 / v2.new_bytes.max(1) as f64,
    })
}

/// The adversaries of a scenario that has some: how many were caught, how many honest nodes
/// were banned.
fn adversary_result(
    sc: &Scenario,
    roles: &Roles,
    honest: &[u32],
    s: &WorldStats,
) -> Option<AdversaryResult> {
    let mut catchable = vec![false; sc.nodes as usize];
    let mut any = false;
    for (f, nodes) in sc.faults.iter().zip(&roles.fault_nodes) {
        if f.kind.is_attacker() || f.kind.is_faulty_node() {
            any = true;
            for &n in nodes {
                // A replayer sends only what is valid. A node whose hub route is broken
                // shows it only when it fetches a block from the hub: one that got every block
                // from its peers looks healthy to them, and is.
                catchable[n as usize] |= match f.kind {
                    FaultKind::Replay { .. } => false,
                    FaultKind::HubUnreachable => s.route_failed[n as usize],
                    _ => true,
                };
            }
        }
    }
    if !any {
        return None;
    }
    let ids: Vec<usize> = (0..s.identity_host.len())
        .filter(|&i| catchable[s.identity_host[i] as usize])
        .collect();
    let caught = |i: usize| {
        let host = s.identity_host[i] as usize;
        s.penalised[i] || s.banned[i] || s.gossip_penalised[host] || s.resigned[host]
    };
    Some(AdversaryResult {
        identities: ids.len(),
        penalised: ids.iter().filter(|&&i| caught(i)).count(),
        resigned: (0..sc.nodes as usize)
            .filter(|&n| catchable[n] && s.resigned[n])
            .count(),
        honest_banned: honest.iter().filter(|&&n| s.banned[n as usize]).count(),
        clean_all_booted_s: None,
        honest_time_vs_clean: None,
    })
}

/// Seconds from the end of the last hub outage that ended before every honest node booted,
/// until they all had.
fn hub_recovery(sc: &Scenario, honest: &[u32], s: &WorldStats) -> Option<f64> {
    let mut last = 0;
    for &n in honest {
        last = last.max(s.booted_at[n as usize]?);
    }
    let end = sc
        .faults
        .iter()
        .filter(|f| f.kind == FaultKind::HubOutage)
        .filter_map(|f| f.until)
        .filter(|&u| u <= last)
        .max()?;
    Some(secs(last - end))
}

/// The longest time from a crashed node's restart to its first boot, over the nodes that
/// restarted before booting.
fn rejoin(sc: &Scenario, roles: &Roles, s: &WorldStats) -> Option<f64> {
    let mut worst: Option<u64> = None;
    for (f, nodes) in sc.faults.iter().zip(&roles.fault_nodes) {
        let (FaultKind::Crash, Some(until)) = (&f.kind, f.until) else {
            continue;
        };
        for &n in nodes {
            if let Some(b) = s.booted_at[n as usize].filter(|&b| b >= until) {
                worst = Some(worst.unwrap_or(0).max(b - until));
            }
        }
    }
    worst.map(secs)
}

fn is_injector(sc: &Scenario, roles: &Roles, n: u32) -> bool {
    sc.faults
        .iter()
        .zip(&roles.fault_nodes)
        .any(|(f, nodes)| matches!(f.kind, FaultKind::Inject(_)) && nodes.contains(&n))
}

fn injectors(sc: &Scenario, roles: &Roles, s: &WorldStats) -> (usize, usize) {
    let all: Vec<u32> = (0..sc.nodes)
        .filter(|&n| is_injector(sc, roles, n))
        .collect();
    let penalised = all
        .iter()
        .filter(|&&n| s.gossip_penalised[n as usize])
        .count();
    (all.len(), penalised)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn t_min_formula() {
        // 1000 nodes, F = 1000 B, hub 100 B/s, NICs 1000 B/s: the hub bounds it (10 s).
        assert_eq!(t_min(1000, 100, 1000, 1000, 1000), 10.0);
        // One node: max(F/B, F/d).
        assert_eq!(t_min(1000, 100, 50, 1000, 1), 20.0);
        // Upload-bound: N·F/(B + N·u) = 10·1000/(100 + 10·10) = 50 s.
        assert_eq!(t_min(1000, 100, 1000, 10, 10), 50.0);
    }
}

#[cfg(test)]
mod host_cpu_tests {
    use super::*;

    fn scenario(nodes: u32, host: &str) -> Scenario {
        let text = format!(
            r#"
[meta]
name = "host"
seeds = [1]
[topology]
nodes = {nodes}
nic = "10Gbit"
hub_link = "1Gbit"
[release]
packages = 2
size = "32MiB"
[[event]]
at = "0s"
kind = "boot"
[sim]
solve_quantum = "0"
{host}
"#
        );
        Scenario::parse("host.toml", &text).unwrap()
    }

    #[test]
    fn a_cpu_starved_farm_is_slower() {
        let opts = Options { no_baseline: true };
        let free = run_seed(&scenario(8, ""), 1, opts).unwrap();
        // 0.5 cores at 0.05 core-s/MiB: 10 MiB/s for the farm's 8 × 32 MiB.
        let host = "[host]\ncores = 0.5\ntransfer_cpu_per_mib = 0.05\ninstall_cpu_per_mib = 0.01";
        let sc = scenario(8, host);
        let starved = run_seed(&sc, 1, opts).unwrap();
        let (Some(f_held), Some(f_booted)) = (free.all_held_s, free.all_booted_s) else {
            panic!("the free farm did not boot: {:?}", free.checks);
        };
        let (Some(held), Some(booted)) = (starved.all_held_s, starved.all_booted_s) else {
            panic!("the starved farm did not boot: {:?}", starved.checks);
        };
        assert_eq!(f_held, f_booted, "without [host] installs are instant");
        let cap = sc.host.unwrap().capacity() as f64;
        // Every byte a node receives crosses the CPU, so no farm can hold its blocks sooner.
        let received = starved.data_bytes as f64;
        assert!(
            held >= received / cap,
            "{held} s for {received} B at {cap} B/s"
        );
        assert!(held > 10.0 * f_booted, "{held} s against {f_booted} s");
        assert!(booted > held);
        assert_eq!(starved.booted, 8);
    }

    #[test]
    fn a_lone_node_installs_in_work_over_capacity() {
        let sc = scenario(
            1,
            "[host]\ncores = 1.5\ntransfer_cpu_per_mib = 0.01\ninstall_cpu_per_mib = 0.03",
        );
        let rel = SimRelease::build(1, sc.packages, sc.size).unwrap();
        let roles = resolve(&sc, 1);
        let st = World::new(&sc, &rel, &roles, 1, HubMode::Fallback).run(horizon(
            &sc,
            rel.total_bytes(),
            1,
        ));
        let (Some(held), Some(booted)) = (st.held_at[0], st.booted_at[0]) else {
            panic!("the node did not boot: {:?}", st.aborted);
        };
        let h = sc.host.unwrap();
        // 32 MiB × 0.03 / 0.01 transfer-equivalent bytes at 1.5 / 0.01 MiB/s: 0.64 s.
        let (work, cap) = (h.install_work(sc.size), h.capacity());
        assert_eq!((work, cap), (3 * (32 << 20), 157_286_400));
        let ns = (work as u128 * NANOS_PER_SEC as u128).div_ceil(cap as u128) as u64;
        assert_eq!(ns, 640_000_000);
        assert_eq!(booted - held, ns);
    }
}
