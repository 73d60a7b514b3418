//! Orchestration: sample, publish, hub, the swarm run, the hub-only run, the simulation.

use super::Error;
use super::lab::{self, Lab, Shaping};
use super::ramdisk::{self, RamDisk};
use super::sample;
use crate::run::{Check, Options as SimOptions, SeedResult, run_seed, t_min};
use crate::scenario::{Discovery, HostCpu, Scenario};
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
/// Ticks per second of /proc/stat (USER_HZ, 100 on every Linux ABI).
const USER_HZ: f64 = 100.0;
/// Bytes in a MiB.
const MIB: f64 = 1_048_576.0;

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
    /// Put the work directory on the disk instead of a tmpfs of its own.
    pub on_disk: bool,
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
    /// Busy core-seconds of the machine from the start until every node held every block.
    pub fetch_cpu_s: Option<f64>,
    /// Busy core-seconds from then until every node booted (writing the trees).
    pub install_cpu_s: Option<f64>,
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

/// What the upgrade after the swarm run measured (scenarios with a publish event).
#[derive(Debug, Clone, Default)]
pub struct UpgradeMeasured {
    /// The published release's seq.
    pub seq: u64,
    /// Bytes of the block files the v2 publish added to the hub directory.
    pub changed_bytes: u64,
    /// Bytes the hub sent from the announce until every node switched.
    pub hub_bytes: u64,
    /// Seconds from the announce until each node reported the new seq installed.
    pub times: Vec<Option<f64>>,
    /// Seconds until the last node switched, if all did.
    pub all_upgraded_s: Option<f64>,
    /// The first node whose `current` tree differs from v2, and how; `None`: all identical.
    pub tree_difference: Option<String>,
    /// Why the upgrade ended without every node switched.
    pub incomplete: Option<String>,
}

impl UpgradeMeasured {
    /// Hub bytes over the bytes v2 adds.
    pub fn hub_bytes_vs_changed(&self) -> f64 {
        self.hub_bytes as f64 / self.changed_bytes.max(1) as f64
    }
}

/// Everything measured and simulated for a scenario.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Scenario name.
    pub scenario: String,
    /// The scenario file.
    pub scenario_file: String,
    /// The scenario's `[host]`.
    pub host: Option<HostCpu>,
    /// Nodes.
    pub nodes: usize,
    /// Bytes of file content each node installs.
    pub tree_bytes: u64,
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
    /// The upgrade after the swarm run, when the scenario publishes.
    pub upgrade: Option<UpgradeMeasured>,
    /// The hub-only run, unless skipped (of v2 when the scenario publishes).
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

    /// Busy core-seconds of the fetch phase per MiB the nodes received (the swarm run).
    pub fn transfer_cpu_per_mib(&self) -> Option<f64> {
        let received = (self.swarm.bytes_from_peers + self.swarm.bytes_from_hub) as f64 / MIB;
        self.swarm
            .fetch_cpu_s
            .filter(|_| received > 0.0)
            .map(|c| c / received)
    }

    /// Busy core-seconds of the install phase per MiB of tree the nodes wrote.
    pub fn install_cpu_per_mib(&self) -> Option<f64> {
        let written = self.installed_mib();
        self.swarm
            .install_cpu_s
            .filter(|_| written > 0.0)
            .map(|c| c / written)
    }

    /// MiB of tree the swarm run's nodes wrote: nodes × tree size.
    pub fn installed_mib(&self) -> f64 {
        self.nodes as f64 * self.tree_bytes as f64 / MIB
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
    // Declared after `work`, so it is unmounted before the directory is removed.
    let mut ram = match opts.on_disk {
        true => None,
        false => Some(RamDisk::mount(
            work.path(),
            workdir_bytes(sc.nodes, sc.size),
        )?),
    };
    if let Some(r) = ram.as_mut().filter(|_| opts.keep_workdir) {
        r.keep();
        eprintln!(
            "the kept work directory {} is a tmpfs: `umount` it to free its memory",
            work.path().display()
        );
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
    let mut env = Env {
        lab: &lab,
        ctx: &ctx,
        hub_ns: lab.hub_ns(),
        hub_addr,
        hub_url,
        trust: lab_trust(&key),
        want,
        f,
        upgrade: sc.publish.as_ref().map(|p| UpgradePlan {
            work: w.clone(),
            pkgs: pkgs.clone(),
            key: key.clone(),
            hub_dir: hub_dir.clone(),
            packages: p.packages,
            fraction: p.fraction,
            size: sc.size,
            hub_link: sc.hub_link,
            timeout: sc.testbed.timeout.map(Duration::from_nanos),
        }),
        v2_want: None,
    };

    let swarm_timeout = sc.testbed.timeout.map_or_else(
        || Duration::from_secs_f64((10.0 * t_min_s).max(120.0)),
        Duration::from_nanos,
    );
    progress(&format!(
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
        progress(&format!(
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

/// Busy jiffies at `at`, interpolated between `(time, busy)` samples sorted by time.
fn busy_at(samples: &[(Instant, u64)], at: Instant) -> Option<f64> {
    let k = samples.partition_point(|s| s.0 <= at);
    let (t0, b0) = *samples.get(k.checked_sub(1)?)?;
    let Some(&(t1, b1)) = samples.get(k) else {
        return (at == t0).then_some(b0 as f64);
    };
    let span = t1.duration_since(t0).as_secs_f64();
    let f = if span > 0.0 {
        at.duration_since(t0).as_secs_f64() / span
    } else {
        1.0
    };
    Some(b0 as f64 + f * b1.saturating_sub(b0) as f64)
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
/// Upper bound of what a run writes into its work directory: per node its store and two trees
/// side by side during an upgrade (swarm and hub-only runs use the nodes' space one after the
/// other); the two versions of the sample packages and the hub's blocks; room for logs and
/// indexes.
fn workdir_bytes(nodes: u32, release: u64) -> u64 {
    (3 * u64::from(nodes) + 4)
        .saturating_mul(release)
        .saturating_add(256 << 20)
}

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
        if pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        if ramdisk::is_mounted(&e.path()) {
            ramdisk::unmount(&e.path());
        }
        if fs::remove_dir_all(e.path()).is_ok() {
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
        self.tool_in(None, w, what, args)
    }

    /// Runs a `bootswarm` subcommand to completion, inside namespace `ns` if given; its
    /// output goes to `W/WHAT.log`.
    fn tool_in(
        &self,
        ns: Option<&str>,
        w: &Path,
        what: &str,
        args: impl FnOnce(&mut std::process::Command),
    ) -> Result<(), Error> {
        let log = w.join(format!("{what}.log"));
        let mut cmd = match ns {
            Some(ns) => Lab::command(ns, self.bin),
            None => std::process::Command::new(self.bin),
        };
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
    want: sample::Tree,
    f: u64,
    /// The upgrade to run after the swarm run has booted.
    upgrade: Option<UpgradePlan>,
    /// v2's tree, once the upgrade published it.
    v2_want: Option<sample::Tree>,
}

/// How to make, publish and announce v2.
struct UpgradePlan {
    work: PathBuf,
    pkgs: Vec<PathBuf>,
    key: PathBuf,
    hub_dir: PathBuf,
    packages: u32,
    fraction: f64,
    size: u64,
    hub_link: u64,
    timeout: Option<Duration>,
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
    fn phase(
        &mut self,
        dir: &Path,
        mode: Mode,
        timeout: Duration,
    ) -> Result<(PhaseResult, Option<UpgradeMeasured>), Error> {
        let n = self.lab.nodes();
        let ctx = self.ctx;
        let label = if mode == Mode::HubOnly {
            "hub-only"
        } else {
            "swarm"
        };
        let egress0 = self.hub_egress()?;
        let cpu0 = cpu_times();
        // Busy jiffies through the run, to split the CPU between fetching and installing.
        let mut busy: Vec<(Instant, u64)> = cpu0.iter().map(|c| (Instant::now(), c.0)).collect();
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
            if let Some((b, _)) = cpu_times() {
                busy.push((Instant::now(), b));
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
        let mut tree_difference = None;
        for k in (0..n).filter(|&k| booted[k].is_some()) {
            check_stop(ctx.stop)?;
            let root = installed_root(&dir.join(format!("n{k}/root")));
            let got = sample::digest(&root).map_err(|e| {
                Error::Failed(format!(
                    "cannot read node {k}'s tree {} ({e})",
                    root.display()
                ))
            })?;
            if let Some(d) = sample::difference(&self.want, &got) {
                tree_difference = Some(format!("{label} run, node {k}: {d} in {}", root.display()));
                break;
            }
        }
        let upgrade = match (&self.upgrade, mode, &incomplete) {
            (Some(plan), Mode::Swarm(_), None) => {
                let (m, v2) = self.upgrade_phase(plan, dir, &mut procs)?;
                self.v2_want = Some(v2);
                Some(m)
            }
            _ => None,
        };
        drop(procs);
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
        let cpu_s = |a: Option<f64>, b: Option<f64>| -> Option<f64> {
            let at = |s: f64| {
                let d = Duration::try_from_secs_f64(s.max(0.0)).ok()?;
                busy_at(&busy, t0.checked_add(d)?)
            };
            let from = match a {
                Some(a) => at(a)?,
                None => busy.first()?.1 as f64,
            };
            Some((at(b?)? - from).max(0.0) / USER_HZ)
        };
        let held_s = all_held_s.map(|h| all_booted_s.map_or(h, |b| h.min(b)));
        let result = PhaseResult {
            boot_times: booted,
            all_booted_s,
            all_held_s,
            cpu_busy,
            fetch_cpu_s: cpu_s(None, held_s),
            install_cpu_s: cpu_s(held_s, all_booted_s),
            spawn_s,
            hub_egress_bytes,
            bytes_from_peers: from_peers,
            bytes_from_hub: from_hub,
            tree_difference,
            incomplete,
        };
        Ok((result, upgrade))
    }

    /// With every node of the swarm run booted: writes v2, publishes it into the hub
    /// directory, announces it to node 0 and waits until every node runs it; then checks
    /// every node's `current` tree against v2. Returns the figures and v2's tree.
    fn upgrade_phase(
        &self,
        plan: &UpgradePlan,
        dir: &Path,
        procs: &mut [Proc],
    ) -> Result<(UpgradeMeasured, sample::Tree), Error> {
        let ctx = self.ctx;
        let n = self.lab.nodes();
        let progress = |msg: &str| {
            if ctx.progress {
                eprintln!("testbed: {msg}");
            }
        };
        progress(&format!(
            "upgrade: changing {} packages ({:.1} % of the bytes)",
            plan.packages,
            plan.fraction * 100.0
        ));
        let v2_dir = plan.work.join("pkgs-v2");
        let pkgs = sample::upgrade(&v2_dir, &plan.pkgs, plan.packages, plan.fraction, plan.size)
            .map_err(|e| {
                Error::Failed(format!(
                    "cannot write version 2 of the sample in {} ({e})",
                    v2_dir.display()
                ))
            })?;
        let want = sample::digest(&v2_dir).map_err(|e| {
            Error::Failed(format!("cannot read back version 2 of the sample ({e})"))
        })?;
        check_stop(ctx.stop)?;
        let blocks = plan.hub_dir.join("blocks");
        let read_blocks = || {
            block_files(&blocks).map_err(|e| {
                Error::Failed(format!(
                    "cannot list the hub's blocks in {} ({e})",
                    blocks.display()
                ))
            })
        };
        let before = read_blocks()?;
        ctx.tool(&plan.work, "publish-v2", |c| {
            c.args(["publish", "--channel", CHANNEL, "--hub-dir"])
                .arg(&plan.hub_dir)
                .arg("--key")
                .arg(&plan.key)
                .args(&pkgs);
        })?;
        let changed_bytes: u64 = read_blocks()?
            .into_iter()
            .filter(|(name, _)| !before.contains_key(name))
            .map(|(_, len)| len)
            .sum();
        let channel = plan.hub_dir.join("channels").join(CHANNEL);
        let (seq, release) = latest_release(&channel).ok_or_else(|| {
            Error::Failed(format!(
                "bootswarm publish wrote no <seq>.release in {}",
                channel.display()
            ))
        })?;
        let egress0 = self.hub_egress()?;
        progress(&format!(
            "upgrade: published seq {seq} ({changed_bytes} new bytes); announcing it to node 0"
        ));
        let node0 = SocketAddr::from((Lab::node_ip(0), HTTP_PORT));
        let t0 = Instant::now();
        ctx.tool_in(Some(&self.lab.node_ns(0)), &plan.work, "announce", |c| {
            c.args(["announce", "--node", &node0.to_string(), "--release"])
                .arg(&release);
        })?;
        let timeout = plan.timeout.unwrap_or_else(|| {
            Duration::from_secs_f64(
                (20.0 * changed_bytes as f64 / plan.hub_link.max(1) as f64).max(120.0),
            )
        });
        let mut times: Vec<Option<f64>> = vec![None; n];
        let mut incomplete = None;
        let mut last_report = Instant::now();
        while times.iter().any(Option::is_none) {
            check_stop(ctx.stop)?;
            for k in 0..n {
                if times[k].is_some() {
                    continue;
                }
                let addr = SocketAddr::from((Lab::node_ip(k), HTTP_PORT));
                if let Ok(body) = lab::http_get(&self.lab.node_ns(k), addr, "/status")
                    && let Ok(v) = serde_json::from_str::<serde_json::Value>(&body)
                {
                    if v["installed"]["seq"].as_u64() == Some(seq) {
                        times[k] = Some(t0.elapsed().as_secs_f64());
                    } else if v["upgrade_failure"]["seq"].as_u64() == Some(seq)
                        && let Some(why) = v["upgrade_failure"]["reason"].as_str()
                    {
                        incomplete = Some(format!("node {k} failed the upgrade: {why}"));
                    }
                }
                if times[k].is_none()
                    && let Some(st) = procs[k].exited()
                {
                    incomplete = Some(format!(
                        "node {k} exited ({st}) during the upgrade: {}",
                        last_line(&procs[k].log)
                    ));
                }
            }
            if incomplete.is_some() {
                break;
            }
            if t0.elapsed() > timeout {
                incomplete = Some(format!(
                    "{}/{n} nodes switched to seq {seq} within {:.0} s",
                    times.iter().flatten().count(),
                    timeout.as_secs_f64()
                ));
                break;
            }
            if ctx.progress && last_report.elapsed() >= Duration::from_secs(2) {
                last_report = Instant::now();
                eprintln!(
                    "testbed: upgrade {:>6.1} s: {}/{n} switched",
                    t0.elapsed().as_secs_f64(),
                    times.iter().flatten().count()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let hub_bytes = self.hub_egress()?.saturating_sub(egress0);
        for (k, p) in procs.iter().enumerate() {
            // Drain stdout so the pipe never fills; kept statuses help diagnosis.
            while p.lines.try_recv().is_ok() {}
            let addr = SocketAddr::from((Lab::node_ip(k), HTTP_PORT));
            if let Ok(body) = lab::http_get(&self.lab.node_ns(k), addr, "/status") {
                let _ = fs::write(dir.join(format!("n{k}/status-upgrade.json")), body);
            }
        }
        let mut tree_difference = None;
        for k in (0..n).filter(|&k| times[k].is_some()) {
            check_stop(ctx.stop)?;
            let root = installed_root(&dir.join(format!("n{k}/root")));
            let got = sample::digest(&root).map_err(|e| {
                Error::Failed(format!(
                    "cannot read node {k}'s tree {} ({e})",
                    root.display()
                ))
            })?;
            if let Some(d) = sample::difference(&want, &got) {
                tree_difference = Some(format!("upgrade, node {k}: {d} in {}", root.display()));
                break;
            }
        }
        let all_upgraded_s = if incomplete.is_none() {
            times.iter().flatten().copied().reduce(f64::max)
        } else {
            None
        };
        let m = UpgradeMeasured {
            seq,
            changed_bytes,
            hub_bytes,
            times,
            all_upgraded_s,
            tree_difference,
            incomplete,
        };
        progress(&format!(
            "upgrade done: {}/{n} switched{}, hub sent {:.3} × the new bytes",
            m.times.iter().flatten().count(),
            m.all_upgraded_s
                .map_or(String::new(), |s| format!(" in {s:.2} s")),
            m.hub_bytes_vs_changed()
        ));
        Ok((m, want))
    }
}

/// The tree a node runs: the daemon installs into TARGET/releases/<seq> behind
/// TARGET/current; older builds wrote straight into TARGET.
fn installed_root(target: &Path) -> PathBuf {
    let current = target.join("current");
    if fs::symlink_metadata(&current).is_ok_and(|m| m.file_type().is_symlink()) {
        current
    } else {
        target.to_path_buf()
    }
}

/// Every regular file below `dir` by path, with its length.
fn block_files(dir: &Path) -> std::io::Result<std::collections::BTreeMap<PathBuf, u64>> {
    let mut out = std::collections::BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d)? {
            let e = e?;
            let ft = e.file_type()?;
            if ft.is_dir() {
                stack.push(e.path());
            } else if ft.is_file() {
                out.insert(e.path(), e.metadata()?.len());
            }
        }
    }
    Ok(out)
}

/// The highest `<seq>.release` in a channel directory.
fn latest_release(channel: &Path) -> Option<(u64, PathBuf)> {
    fs::read_dir(channel)
        .ok()?
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let seq = name.strip_suffix(".release")?.parse::<u64>().ok()?;
            Some((seq, e.path()))
        })
        .max_by_key(|(seq, _)| *seq)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_jiffies_are_interpolated_between_samples() {
        let t = Instant::now();
        let ms = |m: u64| t + Duration::from_millis(m);
        let samples = [(ms(0), 100), (ms(100), 110), (ms(300), 150)];
        assert_eq!(busy_at(&samples, ms(0)), Some(100.0));
        assert_eq!(busy_at(&samples, ms(50)), Some(105.0));
        assert_eq!(busy_at(&samples, ms(200)), Some(130.0));
        assert_eq!(busy_at(&samples, ms(300)), Some(150.0));
        assert_eq!(busy_at(&samples, ms(301)), None, "after the last sample");
        assert_eq!(
            busy_at(&samples[1..], ms(50)),
            None,
            "before the first sample"
        );
        assert_eq!(busy_at(&[], ms(0)), None);
    }
}
