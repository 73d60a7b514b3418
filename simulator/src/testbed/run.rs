//! Orchestration: the simulation, the work directory, publishing, the lab and the hub, the
//! swarm run (and its upgrade), the hub-only run, the checks.

use super::Error;
use super::checks::checks;
use super::lab::{self, Lab, Shaping};
use super::outcome::Outcome;
use super::phase::{Env, Mode};
use super::process::{Ctx, Proc, check_stop};
use super::publish::{self, Published, UpgradePlan};
use super::workdir::{self, WorkDir};
use bootswarm_sim::run::{Options as SimOptions, run_seed, t_min};
use bootswarm_sim::scenario::{Discovery, Scenario};
use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

/// Port of the hub.
const HUB_PORT: u16 = 8080;
/// NICs below this rate (bytes/s) are always shaped.
const SHAPE_BELOW: u64 = 125_000_000;

/// How to run the testbed.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    /// The `bootswarm` binary.
    pub(crate) bin: PathBuf,
    /// Peer discovery; `None`: the scenario's `[testbed] discovery`, else static.
    pub(crate) discovery: Option<Discovery>,
    /// Also run the hub-only baseline.
    pub(crate) baseline: bool,
    /// Keep the work directory (samples, hub, stores, logs) and print where it is.
    pub(crate) keep_workdir: bool,
    /// Put the work directory on the disk instead of a tmpfs of its own.
    pub(crate) on_disk: bool,
    /// Set by SIGINT/SIGTERM: the run stops and cleans up.
    pub(crate) stop: Arc<AtomicBool>,
    /// Progress lines on stderr.
    pub(crate) progress: bool,
}

/// Runs `sc` with real processes and in the simulator.
pub(crate) fn run(sc: &Scenario, opts: &Options) -> Result<Outcome, Error> {
    let n = prepare(sc, opts)?;
    let discovery = opts
        .discovery
        .or(sc.testbed.discovery)
        .unwrap_or(Discovery::Static);
    let seed = sc.seeds.first().copied().unwrap_or(1);
    let ctx = Ctx {
        bin: &opts.bin,
        stop: &opts.stop,
        progress: opts.progress,
    };

    ctx.report("simulating the scenario");
    let sim = run_seed(
        sc,
        seed,
        SimOptions {
            no_baseline: !opts.baseline,
        },
    )
    .map_err(Error::Failed)?;
    check_stop(&opts.stop)?;

    let work = WorkDir::create(sc.nodes, sc.size, opts.keep_workdir, opts.on_disk)?;
    let w = work.path().to_path_buf();
    let v1 = publish::publish_v1(&ctx, &w, sc)?;
    let f = v1.f;
    let t_min_s = t_min(f, sc.hub_link, sc.nic_down, sc.nic_up, n);

    let shape_nics = sc.testbed.shape_nics || sc.nic_up < SHAPE_BELOW || sc.nic_down < SHAPE_BELOW;
    ctx.report(&format!(
        "building {n} node namespaces, a hub namespace and a bridge (hub link shaped{})",
        if shape_nics { ", NICs shaped" } else { "" }
    ));
    let lab = Lab::build(
        n,
        Shaping {
            hub: sc.hub_link,
            node_up: shape_nics.then_some(sc.nic_up),
            node_down: shape_nics.then_some(sc.nic_down),
        },
    )?;
    check_stop(&opts.stop)?;
    let (hub, hub_addr) = start_hub(&ctx, &lab, &v1.hub_dir, &w)?;
    let mut env = env(sc, &ctx, &lab, hub_addr, &w, v1);

    let swarm_timeout = sc.testbed.timeout.map_or_else(
        || Duration::from_secs_f64((10.0 * t_min_s).max(120.0)),
        Duration::from_nanos,
    );
    ctx.report(&format!(
        "swarm run: {n} nodes, {discovery:?} discovery, F = {f} bytes, T_min {t_min_s:.2} s"
    ));
    let (swarm, upgrade) = env.phase(&w.join("swarm"), Mode::Swarm(discovery), swarm_timeout)?;
    // The hub now offers v2: the baseline boots that.
    if let Some(v2) = env.v2_want.take() {
        env.want = v2;
    }
    let hub_only = if opts.baseline {
        // Fresh stores and targets; the swarm run's are no longer needed.
        let _ = fs::remove_dir_all(w.join("swarm"));
        let hub_only_s = n as f64 * f as f64 / sc.hub_link as f64;
        ctx.report(&format!(
            "hub-only run: {n} nodes (about {hub_only_s:.0} s at the hub link's rate)"
        ));
        let timeout = Duration::from_secs_f64(3.0 * hub_only_s + 120.0);
        Some(env.phase(&w.join("hub-only"), Mode::HubOnly, timeout)?.0)
    } else {
        None
    };
    drop(env);
    drop(hub);
    drop(lab);

    let mut out = Outcome {
        scenario: sc.name.clone(),
        scenario_file: sc.file.clone(),
        host: sc.host,
        nodes: n,
        tree_bytes: sc.size,
        release_bytes: f,
        t_min_s,
        discovery,
        shaped_nics: shape_nics,
        swarm,
        upgrade,
        hub_only,
        sim,
        checks: Vec::new(),
        workdir: opts.keep_workdir.then(|| work.path().to_path_buf()),
    };
    out.checks = checks(sc, &out);
    Ok(out)
}

/// Checks that this machine can run `sc` and removes what earlier runs left behind; returns
/// the number of nodes.
fn prepare(sc: &Scenario, opts: &Options) -> Result<usize, Error> {
    lab::preflight()?;
    if !opts.bin.is_file() {
        return Err(Error::Failed(format!(
            "the bootswarm binary {} does not exist; build it with `cargo build --release -p bootswarm-node` and pass --bin",
            opts.bin.display()
        )));
    }
    for stale in lab::remove_stale() {
        eprintln!("removed namespace {stale} left by an earlier run");
    }
    workdir::remove_stale();
    let n = sc.nodes as usize;
    if n > lab::MAX_NODES {
        return Err(Error::Failed(format!(
            "scenario {}: the testbed runs at most {} nodes, not {n}",
            sc.file,
            lab::MAX_NODES
        )));
    }
    Ok(n)
}

/// Starts `bootswarm hub serve` on `hub_dir` in the hub's namespace and waits until it serves.
fn start_hub(
    ctx: &Ctx<'_>,
    lab: &Lab,
    hub_dir: &Path,
    w: &Path,
) -> Result<(Proc, SocketAddr), Error> {
    let hub_addr = SocketAddr::from((Lab::hub_ip(), HUB_PORT));
    let hub = ctx.spawn(&lab.hub_ns(), "hub", &w.join("hub.log"), |c| {
        c.args(["hub", "serve", "--dir"])
            .arg(hub_dir)
            .arg("--listen")
            .arg(hub_addr.to_string());
    })?;
    hub.wait_line("hub serving", ctx)?;
    Ok((hub, hub_addr))
}

/// What the runs share: the lab, the hub, v1's tree, and the upgrade when `sc` publishes.
fn env<'a>(
    sc: &Scenario,
    ctx: &'a Ctx<'a>,
    lab: &'a Lab,
    hub_addr: SocketAddr,
    w: &Path,
    v1: Published,
) -> Env<'a> {
    Env {
        lab,
        ctx,
        hub_ns: lab.hub_ns(),
        hub_addr,
        hub_url: format!("http://{hub_addr}"),
        trust: publish::lab_trust(&v1.key),
        want: v1.want,
        f: v1.f,
        upgrade: sc.publish.as_ref().map(|p| UpgradePlan {
            work: w.to_path_buf(),
            pkgs: v1.pkgs,
            key: v1.key,
            hub_dir: v1.hub_dir,
            packages: p.packages,
            fraction: p.fraction,
            size: sc.size,
            hub_link: sc.hub_link,
            timeout: sc.testbed.timeout.map(Duration::from_nanos),
        }),
        v2_want: None,
    }
}
