//! Orchestration: sample, publish, hub, the swarm run, the hub-only run, the simulation.

use super::Error;
use super::lab::{self, Lab, Shaping};
use super::sample;
use crate::run::{Check, Options as SimOptions, SeedResult, run_seed, t_min};
use crate::scenario::{Discovery, Scenario};
use std::fs;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

/// The channel the testbed publishes on.
const CHANNEL: &str = "testbed";
/// Port of every node's libp2p listener.
const P2P_PORT: u16 = 4101;
/// Port of every node's /status endpoint.
const HTTP_PORT: u16 = 9100;
/// Port of the hub.
const HUB_PORT: u16 = 8080;
/// Longest wait for a process's first stdout line (hub URL, node address).
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// NICs below this rate (bytes/s) are always shaped.
const SHAPE_BELOW: u64 = 125_000_000;

/// How to run the testbed.
#[derive(Debug, Clone)]
pub struct Options {
    /// The `bootswarm` binary.
    pub bin: PathBuf,
    /// Peer discovery; `None`: the scenario's `[testbed] discovery`, else static.
    pub discovery: Option<Discovery>,
    /// Also run the hub-only baseline.
    pub baseline: bool,
    /// Keep the work directory (samples, hub, stores, logs) and print where it is.
    pub keep_workdir: bool,
    /// Set by SIGINT/SIGTERM: the run stops and cleans up.
    pub stop: Arc<AtomicBool>,
    /// Progress lines on stderr.
    pub progress: bool,
}

/// What one run of real processes measured.
#[derive(Debug, Clone, Default)]
pub struct PhaseResult {
    /// Seconds from the first node's start until each node printed `booted` (`None`: never).
    pub boot_times: Vec<Option<f64>>,
    /// Seconds until the last node booted, if all did.
    pub all_booted_s: Option<f64>,
    /// Seconds from the first node's start until the last node held every block (from
    /// /status `held_after_secs`): the boot without writing the tree out.
    pub all_held_s: Option<f64>,
    /// Average share of all CPUs busy (user + system) from the start until all booted; above
    /// ~0.7 the emulation is CPU-bound and times are stretched.
    pub cpu_busy: Option<f64>,
    /// Seconds spent starting the nodes (static discovery starts them one by one).
    pub spawn_s: f64,
    /// Bytes the hub sent during the run.
    pub hub_egress_bytes: u64,
    /// Σ over nodes of `bytes_from_peers` (from /status).
    pub bytes_from_peers: u64,
    /// Σ over nodes of `bytes_from_hub` (from /status).
    pub bytes_from_hub: u64,
    /// The first node whose tree differs from the sample, and how; `None`: all identical.
    pub tree_difference: Option<String>,
    /// Why the run ended without every node booted.
    pub incomplete: Option<String>,
}

/// Everything measured and simulated for a scenario.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Scenario name.
    pub scenario: String,
    /// Nodes.
    pub nodes: usize,
    /// F of the published release: bytes of all its blocks.
    pub release_bytes: u64,
    /// T_min for the published release on the scenario's links.
    pub t_min_s: f64,
    /// Discovery used.
    pub discovery: Discovery,
    /// Whether node NICs were shaped.
    pub shaped_nics: bool,
    /// The swarm run.
    pub swarm: PhaseResult,
    /// The hub-only run, unless skipped.
    pub hub_only: Option<PhaseResult>,
    /// The simulator's run of the same scenario on its first seed.
    pub sim: SeedResult,
    /// The `[testbed.expect]` checks, plus the tree check.
    pub checks: Vec<Check>,
    /// The kept work directory.
    pub workdir: Option<PathBuf>,
}

impl Outcome {
    /// Whether every check held.
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.pass)
    }

    /// Measured all-booted time over T_min.
    pub fn time_vs_tmin(&self) -> Option<f64> {
        self.swarm.all_booted_s.map(|a| a / self.t_min_s)
    }

    /// Measured hub egress over F.
    pub fn hub_egress_vs_f(&self) -> f64 {
        self.swarm.hub_egress_bytes as f64 / self.release_bytes.max(1) as f64
    }

    /// Measured hub-only time over measured swarm time.
    pub fn speedup(&self) -> Option<f64> {
        match (
            self.hub_only.as_ref()?.all_booted_s,
            self.swarm.all_booted_s,
        ) {
            (Some(h), Some(s)) if s > 0.0 => Some(h / s),
            _ => None,
        }
    }

    /// |simulated − measured| / measured all-booted time.
    pub fn sim_time_error(&self) -> Option<f64> {
        match (self.sim.all_booted_s, self.swarm.all_booted_s) {
            (Some(s), Some(m)) if m > 0.0 => Some((s - m).abs() / m),
            _ => None,
        }
    }

    /// |simulated − measured| / measured hub egress bytes.
    pub fn sim_hub_bytes_error(&self) -> Option<f64> {
        let m = self.swarm.hub_egress_bytes;
        (m > 0).then(|| (self.sim.hub_egress_bytes as f64 - m as f64).abs() / m as f64)
    }
}

/// Runs `sc` with real processes and in the simulator.
pub fn run(sc: &Scenario, opts: &Options) -> Result<Outcome, Error> {
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
    remove_stale_workdirs();
    let n = sc.nodes as usize;
    if n > lab::MAX_NODES {
        return Err(Error::Failed(format!(
            "scenario {}: the testbed runs at most {} nodes, not {n}",
            sc.file,
            lab::MAX_NODES
        )));
    }
    let discovery = opts
        .discovery
        .or(sc.testbed.discovery)
        .unwrap_or(Discovery::Static);
    let seed = sc.seeds.first().copied().unwrap_or(1);
    let progress = |msg: &str| {
        if opts.progress {
            eprintln!("testbed: {msg}");
        }
    };

    progress("simulating the scenario");
    let sim = run_seed(
        sc,
        seed,
        SimOptions {
            no_baseline: !opts.baseline,
        },
    )
    .map_err(Error::Failed)?;
    check_stop(&opts.stop)?;

    let mut work = tempfile::Builder::new()
        // Kept directories get another prefix, so later runs do not take them for stale.
        .prefix(&if opts.keep_workdir {
            format!("bootswarm-testbed-keep-{}-", std::process::id())
        } else {
            format!("bootswarm-testbed-{}-", std::process::id())
        })
        .tempdir()
        .map_err(|e| {
            Error::Failed(format!(
                "cannot create a work directory in {} ({e}); set TMPDIR to a writable directory",
                std::env::temp_dir().display()
            ))
        })?;
    if opts.keep_workdir {
        work.disable_cleanup(true);
    }
    let w = work.path().to_path_buf();
    let ctx = Ctx {
        bin: &opts.bin,
        stop: &opts.stop,
        progress: opts.progress,
    };

    progress(&format!(
        "writing {} sample packages ({} bytes)",
        sc.packages, sc.size
    ));
    let pkgs = sample::generate(&w.join("pkgs"), sc.packages, sc.size).map_err(|e| {
        Error::Failed(format!(
            "cannot write the sample packages in {} ({e})",
            w.display()
        ))
    })?;
    let want = sample::digest(&w.join("pkgs"))
        .map_err(|e| Error::Failed(format!("cannot read back the sample packages ({e})")))?;
    check_stop(&opts.stop)?;
    let key = w.join("publisher.key");
    ctx.tool(&w, "keygen", |c| {
        c.arg("keygen").arg("--out").arg(&key);
    })?;
    let hub_dir = w.join("hub");
    ctx.tool(&w, "publish", |c| {
        c.args(["publish", "--channel", CHANNEL, "--hub-dir"])
            .arg(&hub_dir)
            .arg("--key")
            .arg(&key)
            .args(&pkgs);
    })?;
    let f = dir_bytes(&hub_dir.join("blocks")).map_err(|e| {
        Error::Failed(format!(
            "cannot measure the published blocks in {} ({e})",
            hub_dir.display()
        ))
    })?;
    let t_min_s = t_min(f, sc.hub_link, sc.nic_down, sc.nic_up, n);

    let shape_nics = sc.testbed.shape_nics || sc.nic_up < SHAPE_BELOW || sc.nic_down < SHAPE_BELOW;
    progress(&format!(
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
    let hub_addr = SocketAddr::from((Lab::hub_ip(), HUB_PORT));
    let hub = ctx.spawn(&lab.hub_ns(), "hub", &w.join("hub.log"), |c| {
        c.args(["hub", "serve", "--dir"])
            .arg(&hub_dir)
            .arg("--listen")
            .arg(hub_addr.to_string());
    })?;
    hub.wait_line("hub serving", &ctx)?;
    let hub_url = format!("http://{hub_addr}");
    let env = Env {
        lab: &lab,
        ctx: &ctx,
        hub_ns: lab.hub_ns(),
        hub_addr,
        hub_url,
        trust: lab_trust(&key),
        want: &want,
        f,
    };

    let swarm_timeout = sc.testbed.timeout.map_or_else(
        || Duration::from_secs_f64((10.0 * t_min_s).max(120.0)),
        Duration::from_nanos,
    );
    progress(&format!(
        "swarm run: {n} nodes, {discovery:?} discovery, F = {f} bytes, T_min {t_min_s:.2} s"
    ));
    let swarm = env.phase(&w.join("swarm"), Mode::Swarm(discovery), swarm_timeout)?;
    let hub_only = if opts.baseline {
        // Fresh stores and targets; the swarm run's are no longer needed.
        let _ = fs::remove_dir_all(w.join("swarm"));
        let hub_only_s = n as f64 * f as f64 / sc.hub_link as f64;
        progress(&format!(
            "hub-only run: {n} nodes (about {hub_only_s:.0} s at the hub link's rate)"
        ));
        let timeout = Duration::from_secs_f64(3.0 * hub_only_s + 120.0);
        Some(env.phase(&w.join("hub-only"), Mode::HubOnly, timeout)?)
    } else {
        None
    };
    drop(hub);
    drop(lab);

    let mut out = Outcome {
        scenario: sc.name.clone(),
        nodes: n,
        release_bytes: f,
        t_min_s,
        discovery,
        shaped_nics: shape_nics,
        swarm,
        hub_only,
        sim,
        checks: Vec::new(),
        workdir: opts.keep_workdir.then(|| work.path().to_path_buf()),
    };
    out.checks = checks(sc, &out);
    Ok(out)
}

/// (busy, total) jiffies of all CPUs from /proc/stat.
fn cpu_times() -> Option<(u64, u64)> {
    let stat = fs::read_to_string("/proc/stat").ok()?;
    let v: Vec<u64> = stat
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3)? + v.get(4).unwrap_or(&0);
    Some((total - idle, total))
}

/// Removes work directories of earlier runs whose process is gone (killed with SIGKILL).
fn remove_stale_workdirs() {
    let Ok(dir) = fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for e in dir.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix("bootswarm-testbed-")
            .and_then(|r| r.split_once('-'))
            .and_then(|(pid, _)| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id()
            && !Path::new(&format!("/proc/{pid}")).exists()
            && fs::remove_dir_all(e.path()).is_ok()
        {
            eprintln!("removed {} left by an earlier run", e.path().display());
        }
    }
}

fn check_stop(stop: &AtomicBool) -> Result<(), Error> {
    if stop.load(Ordering::SeqCst) {
        Err(Error::Interrupted)
    } else {
        Ok(())
    }
}

/// The trust file `keygen` wrote next to the key.
fn lab_trust(key: &Path) -> PathBuf {
    let mut s = key.as_os_str().to_owned();
    s.push(".pub");
    PathBuf::from(s)
}

/// Bytes of every regular file below `dir`.
fn dir_bytes(dir: &Path) -> std::io::Result<u64> {
    let mut total = 0;
    for e in fs::read_dir(dir)? {
        let e = e?;
        let ft = e.file_type()?;
        if ft.is_dir() {
            total += dir_bytes(&e.path())?;
        } else if ft.is_file() {
            total += e.metadata()?.len();
        }
    }
    Ok(total)
}

struct Ctx<'a> {
    bin: &'a Path,
    stop: &'a AtomicBool,
    progress: bool,
}

impl Ctx<'_> {
    /// Runs a `bootswarm` subcommand in the root namespace (no network) to completion.
    fn tool(
        &self,
        w: &Path,
        what: &str,
        args: impl FnOnce(&mut std::process::Command),
    ) -> Result<(), Error> {
        let log = w.join(format!("{what}.log"));
        let mut cmd = std::process::Command::new(self.bin);
        args(&mut cmd);
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(log_file(&log)?)
            .stderr(log_file(&log)?)
            .spawn()
            .map_err(|e| {
                Error::Failed(format!(
                    "cannot run {} {what} ({e}); check --bin",
                    self.bin.display()
                ))
            })?;
        loop {
            if let Some(st) = child.try_wait().ok().flatten() {
                if st.success() {
                    return Ok(());
                }
                return Err(Error::Failed(format!(
                    "bootswarm {what} failed ({st}): {}",
                    last_line(&log)
                )));
            }
            if self.stop.load(Ordering::SeqCst) {
                let _ = child.kill();
                let _ = child.wait();
                return Err(Error::Interrupted);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts `bootswarm ARGS` inside namespace `ns`, stdout read line by line.
    fn spawn(
        &self,
        ns: &str,
        name: &str,
        log: &Path,
        args: impl FnOnce(&mut std::process::Command),
    ) -> Result<Proc, Error> {
        let mut cmd = Lab::command(ns, self.bin);
        args(&mut cmd);
        if std::env::var_os("BOOTSWARM_LOG").is_none() {
            cmd.env("BOOTSWARM_LOG", "info");
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log_file(log)?)
            .spawn()
            .map_err(|e| {
                Error::Failed(format!(
                    "cannot start the {name} ({}) in namespace {ns} ({e})",
                    self.bin.display()
                ))
            })?;
        let (tx, rx) = channel();
        if let Some(out) = child.stdout.take() {
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines() {
                    let Ok(line) = line else { break };
                    if tx.send((Instant::now(), line)).is_err() {
                        break;
                    }
                }
            });
        }
        Ok(Proc {
            name: name.to_string(),
            child,
            lines: rx,
            log: log.to_path_buf(),
            exited: None,
        })
    }
}

fn log_file(path: &Path) -> Result<fs::File, Error> {
    fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| Error::Failed(format!("cannot create the log {} ({e})", path.display())))
}

/// The last non-empty line of a log file.
fn last_line(path: &Path) -> String {
    fs::read_to_string(path)
        .ok()
        .and_then(|s| {
            s.lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .map(|l| l.trim().to_string())
        })
        .unwrap_or_else(|| "no message".to_string())
}

/// A process we started; killed and reaped when dropped.
struct Proc {
    name: String,
    child: Child,
    lines: Receiver<(Instant, String)>,
    log: PathBuf,
    exited: Option<ExitStatus>,
}

impl Proc {
    /// Waits for a stdout line starting with `prefix` and returns the rest.
    fn wait_line(&self, prefix: &str, ctx: &Ctx<'_>) -> Result<String, Error> {
        let deadline = Instant::now() + START_TIMEOUT;
        while Instant::now() < deadline {
            check_stop(ctx.stop)?;
            match self.lines.recv_timeout(Duration::from_millis(50)) {
                Ok((_, line)) => {
                    if let Some(rest) = line.strip_prefix(prefix) {
                        return Ok(rest.trim().to_string());
                    }
                }
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        Err(Error::Failed(format!(
            "the {} did not start ({}); see {}",
            self.name,
            last_line(&self.log),
            self.log.display()
        )))
    }

    fn exited(&mut self) -> Option<ExitStatus> {
        if self.exited.is_none() {
            self.exited = self.child.try_wait().ok().flatten();
        }
        self.exited
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    Swarm(Discovery),
    HubOnly,
}

struct Env<'a> {
    lab: &'a Lab,
    ctx: &'a Ctx<'a>,
    hub_ns: String,
    hub_addr: SocketAddr,
    hub_url: String,
    trust: PathBuf,
    want: &'a sample::Tree,
    f: u64,
}

impl Env<'_> {
    fn hub_egress(&self) -> Result<u64, Error> {
        let body = lab::http_get(&self.hub_ns, self.hub_addr, "/v1/stats")
            .map_err(|e| Error::Failed(format!("cannot read the hub's /v1/stats: {e}")))?;
        let v: serde_json::Value = serde_json::from_str(&body)
            .map_err(|e| Error::Failed(format!("the hub's /v1/stats is not JSON ({e})")))?;
        v["egress_bytes"].as_u64().ok_or_else(|| {
            Error::Failed("the hub's /v1/stats has no egress_bytes number".to_string())
        })
    }

    /// Starts every node, waits until all booted (or `timeout`), reads the counters and
    /// checks the trees. Nodes are stopped before it returns.
    fn phase(&self, dir: &Path, mode: Mode, timeout: Duration) -> Result<PhaseResult, Error> {
        let n = self.lab.nodes();
        let ctx = self.ctx;
        let label = if mode == Mode::HubOnly {
            "hub-only"
        } else {
            "swarm"
        };
        let egress0 = self.hub_egress()?;
        let cpu0 = cpu_times();
        let mut procs: Vec<Proc> = Vec::with_capacity(n);
        let mut spawned = Vec::with_capacity(n);
        let mut t0 = None;
        for k in 0..n {
            let nd = dir.join(format!("n{k}"));
            fs::create_dir_all(&nd)
                .map_err(|e| Error::Failed(format!("cannot create {} ({e})", nd.display())))?;
            let ip = Lab::node_ip(k);
            let p = ctx.spawn(
                &self.lab.node_ns(k),
                &format!("node {k}"),
                &nd.join("log"),
                |c| {
                    c.arg("run")
                        .arg("--store")
                        .arg(nd.join("store"))
                        .arg("--into")
                        .arg(nd.join("root"))
                        .args(["--hub", &self.hub_url, "--channel", CHANNEL, "--trust"])
                        .arg(&self.trust)
                        .args(["--listen", &format!("/ip4/{ip}/tcp/{P2P_PORT}")])
                        .args(["--http", &format!("{ip}:{HTTP_PORT}")]);
                    match mode {
                        Mode::HubOnly => {
                            c.arg("--hub-only");
                        }
                        Mode::Swarm(d) => {
                            c.args(["--min-peers", &(n - 1).to_string()])
                                .args(["--peer-wait", "60s"]);
                            if d == Discovery::Mdns {
                                c.arg("--mdns");
                            } else {
                                for j in 0..k {
                                    c.arg("--peer")
                                        .arg(format!("/ip4/{}/tcp/{P2P_PORT}", Lab::node_ip(j)));
                                }
                            }
                        }
                    }
                },
            )?;
            spawned.push(Instant::now());
            t0.get_or_insert_with(Instant::now);
            // Static peers are dialled once at start (then every 5 s): wait until this node
            // listens before starting the ones that dial it.
            if mode == Mode::Swarm(Discovery::Static) {
                p.wait_line("listening", ctx)?;
            }
            procs.push(p);
        }
        let t0 = t0.unwrap_or_else(Instant::now);
        let spawn_s = t0.elapsed().as_secs_f64();
        let deadline = t0 + timeout;
        let mut booted: Vec<Option<f64>> = vec![None; n];
        let mut incomplete = None;
        let mut last_report = Instant::now();
        while booted.iter().any(Option::is_none) {
            check_stop(ctx.stop)?;
            for (k, p) in procs.iter_mut().enumerate() {
                while let Ok((at, line)) = p.lines.try_recv() {
                    if line.starts_with("booted") && booted[k].is_none() {
                        booted[k] = Some(at.duration_since(t0).as_secs_f64());
                    }
                }
                if booted[k].is_none()
                    && let Some(st) = p.exited()
                {
                    incomplete = Some(format!(
                        "node {k} exited ({st}) before booting: {}",
                        last_line(&p.log)
                    ));
                }
            }
            if incomplete.is_some() {
                break;
            }
            if Instant::now() > deadline {
                incomplete = Some(format!(
                    "{}/{n} nodes booted within {:.0} s",
                    booted.iter().flatten().count(),
                    timeout.as_secs_f64()
                ));
                break;
            }
            if ctx.progress && last_report.elapsed() >= Duration::from_secs(2) {
                last_report = Instant::now();
                let sent = self.hub_egress().unwrap_or(egress0).saturating_sub(egress0);
                eprintln!(
                    "testbed: {label} {:>6.1} s: {}/{n} booted, hub sent {:.3} × F",
                    t0.elapsed().as_secs_f64(),
                    booted.iter().flatten().count(),
                    sent as f64 / self.f.max(1) as f64
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let cpu_busy = match (cpu0, cpu_times()) {
            (Some((b0, t0)), Some((b1, t1))) if t1 > t0 => {
                Some((b1 - b0) as f64 / (t1 - t0) as f64)
            }
            _ => None,
        };
        let hub_egress_bytes = self.hub_egress()?.saturating_sub(egress0);
        if let Ok(stats) = lab::http_get(&self.hub_ns, self.hub_addr, "/v1/stats") {
            let _ = fs::write(dir.join("hub-stats.json"), stats);
        }
        let (mut from_peers, mut from_hub) = (0, 0);
        let mut held: Vec<Option<f64>> = vec![None; n];
        for k in 0..n {
            let addr = SocketAddr::from((Lab::node_ip(k), HTTP_PORT));
            let Ok(body) = lab::http_get(&self.lab.node_ns(k), addr, "/status") else {
                continue;
            };
            // Kept for diagnosis with --keep-workdir.
            let _ = fs::write(dir.join(format!("n{k}/status.json")), &body);
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&body) {
                from_peers += v["bytes_from_peers"].as_u64().unwrap_or(0);
                from_hub += v["bytes_from_hub"].as_u64().unwrap_or(0);
                held[k] = v["held_after_secs"]
                    .as_f64()
                    .map(|h| h + spawned[k].duration_since(t0).as_secs_f64());
            }
        }
        drop(procs);
        let mut tree_difference = None;
        for k in (0..n).filter(|&k| booted[k].is_some()) {
            check_stop(ctx.stop)?;
            // The daemon installs into TARGET/releases/<seq> behind TARGET/current; older
            // builds wrote straight into TARGET.
            let target = dir.join(format!("n{k}/root"));
            let current = target.join("current");
            let root = if fs::symlink_metadata(&current).is_ok_and(|m| m.file_type().is_symlink()) {
                current
            } else {
                target
            };
            let got = sample::digest(&root).map_err(|e| {
                Error::Failed(format!(
                    "cannot read node {k}'s tree {} ({e})",
                    root.display()
                ))
            })?;
            if let Some(d) = sample::difference(self.want, &got) {
                tree_difference = Some(format!("{label} run, node {k}: {d} in {}", root.display()));
                break;
            }
        }
        let all_booted_s = if incomplete.is_none() {
            booted.iter().flatten().copied().reduce(f64::max)
        } else {
            None
        };
        if ctx.progress {
            eprintln!(
                "testbed: {label} done: {}/{n} booted{}, hub sent {:.3} × F",
                booted.iter().flatten().count(),
                all_booted_s.map_or(String::new(), |s| format!(" in {s:.2} s")),
                hub_egress_bytes as f64 / self.f.max(1) as f64
            );
        }
        let all_held_s = if held.iter().all(Option::is_some) {
            held.iter().flatten().copied().reduce(f64::max)
        } else {
            None
        };
        Ok(PhaseResult {
            boot_times: booted,
            all_booted_s,
            all_held_s,
            cpu_busy,
            spawn_s,
            hub_egress_bytes,
            bytes_from_peers: from_peers,
            bytes_from_hub: from_hub,
            tree_difference,
            incomplete,
        })
    }
}

fn checks(sc: &Scenario, o: &Outcome) -> Vec<Check> {
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
        .find_map(|p| p.tree_difference.clone());
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
    if let Some(m) = x.time_vs_tmin_max {
        let v = o.time_vs_tmin();
        push(
            "time_vs_tmin",
            v.is_some_and(|v| v <= m),
            format!("{} <= {m}", fmt(v)),
        );
    }
    if let Some(m) = x.hub_egress_vs_f_max {
        let v = o.hub_egress_vs_f();
        push("hub_egress_vs_f", v <= m, format!("{v:.3} <= {m}"));
    }
    if let (Some(m), Some(_)) = (x.hub_only_speedup_min, &o.hub_only) {
        let v = o.speedup();
        push(
            "hub_only_speedup",
            v.is_some_and(|v| v >= m),
            format!("{} >= {m}", fmt(v)),
        );
    }
    if let Some(m) = x.sim_time_error_max {
        let v = o.sim_time_error();
        push(
            "sim_time_error",
            v.is_some_and(|v| v <= m),
            format!("{} <= {m}", fmt(v)),
        );
    }
    if let Some(m) = x.sim_hub_bytes_error_max {
        let v = o.sim_hub_bytes_error();
        push(
            "sim_hub_bytes_error",
            v.is_some_and(|v| v <= m),
            format!("{} <= {m}", fmt(v)),
        );
    }
    out
}
