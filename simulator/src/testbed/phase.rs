//! One run of real nodes (the swarm run or the hub-only run): start them, wait until every
//! node booted, read their counters and check their trees.

use super::Error;
use super::cpu::CpuMeter;
use super::lab::{self, Lab};
use super::outcome::{PhaseResult, UpgradeMeasured};
use super::process::{Ctx, Proc, check_stop, last_line};
use super::publish::{CHANNEL, UpgradePlan};
use super::sample;
use bootswarm_sim::scenario::Discovery;
use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Port of every node's libp2p listener.
const P2P_PORT: u16 = 4101;
/// Port of every node's /status endpoint.
pub(crate) const HTTP_PORT: u16 = 9100;

/// Which run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Mode {
    /// The swarm, its nodes finding each other this way.
    Swarm(Discovery),
    /// Every node from the hub alone (`--hub-only`).
    HubOnly,
}

/// The lab and the hub the runs share, and what the nodes must install.
pub(crate) struct Env<'a> {
    pub(crate) lab: &'a Lab,
    pub(crate) ctx: &'a Ctx<'a>,
    pub(crate) hub_ns: String,
    pub(crate) hub_addr: SocketAddr,
    pub(crate) hub_url: String,
    pub(crate) trust: PathBuf,
    pub(crate) want: sample::Tree,
    pub(crate) f: u64,
    /// The upgrade to run after the swarm run has booted.
    pub(crate) upgrade: Option<UpgradePlan>,
    /// v2's tree, once the upgrade published it.
    pub(crate) v2_want: Option<sample::Tree>,
}

/// What the nodes' /status said at the end of a run.
struct Counters {
    /// Σ `bytes_from_peers`.
    from_peers: u64,
    /// Σ `bytes_from_hub`.
    from_hub: u64,
    /// Per node, seconds from the first node's start until it held every block.
    held: Vec<Option<f64>>,
}

impl Env<'_> {
    /// Bytes the hub has sent so far (its /v1/stats).
    pub(crate) fn hub_egress(&self) -> Result<u64, Error> {
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
    pub(crate) fn phase(
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
        // Busy jiffies through the run, to split the CPU between fetching and installing.
        let mut cpu = CpuMeter::start();
        let (mut procs, spawned, t0) = self.spawn_nodes(dir, mode)?;
        let spawn_s = t0.elapsed().as_secs_f64();
        let (booted, incomplete) =
            self.wait_booted(&mut procs, t0, timeout, label, egress0, &mut cpu)?;
        let cpu_busy = cpu.busy_share();
        let hub_egress_bytes = self.hub_egress()?.saturating_sub(egress0);
        if let Ok(stats) = lab::http_get(&self.hub_ns, self.hub_addr, "/v1/stats") {
            let _ = fs::write(dir.join("hub-stats.json"), stats);
        }
        let counters = self.read_status(dir, &spawned, t0);
        let booted_nodes = (0..n).filter(|&k| booted[k].is_some());
        let tree_difference =
            tree_difference(ctx, dir, booted_nodes, &self.want, &format!("{label} run"))?;
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
        ctx.report(&format!(
            "{label} done: {}/{n} booted{}, hub sent {:.3} × F",
            booted.iter().flatten().count(),
            all_booted_s.map_or(String::new(), |s| format!(" in {s:.2} s")),
            hub_egress_bytes as f64 / self.f.max(1) as f64
        ));
        let held = &counters.held;
        let all_held_s = if held.iter().all(Option::is_some) {
            held.iter().flatten().copied().reduce(f64::max)
        } else {
            None
        };
        let held_s = all_held_s.map(|h| all_booted_s.map_or(h, |b| h.min(b)));
        let result = PhaseResult {
            boot_times: booted,
            all_booted_s,
            all_held_s,
            cpu_busy,
            fetch_cpu_s: cpu.core_seconds(t0, None, held_s),
            install_cpu_s: cpu.core_seconds(t0, held_s, all_booted_s),
            spawn_s,
            hub_egress_bytes,
            bytes_from_peers: counters.from_peers,
            bytes_from_hub: counters.from_hub,
            tree_difference,
            incomplete,
        };
        Ok((result, upgrade))
    }

    /// Starts node 0, 1, ... in their namespaces; returns them, when each was started, and
    /// when the first was.
    fn spawn_nodes(
        &self,
        dir: &Path,
        mode: Mode,
    ) -> Result<(Vec<Proc>, Vec<Instant>, Instant), Error> {
        let n = self.lab.nodes();
        let ctx = self.ctx;
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
                        .args(["--http", &format!("{ip}:{HTTP_PORT}"), "--http-public"]);
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
        Ok((procs, spawned, t0))
    }

    /// Waits until every node printed `booted`, one exited, or `timeout` after `t0`; returns
    /// when each booted (seconds after `t0`) and why the run is incomplete, if it is.
    fn wait_booted(
        &self,
        procs: &mut [Proc],
        t0: Instant,
        timeout: Duration,
        label: &str,
        egress0: u64,
        cpu: &mut CpuMeter,
    ) -> Result<(Vec<Option<f64>>, Option<String>), Error> {
        let n = procs.len();
        let ctx = self.ctx;
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
            cpu.sample();
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
        Ok((booted, incomplete))
    }

    /// Reads every node's /status (kept as `nK/status.json` for diagnosis with
    /// --keep-workdir) and sums its counters.
    fn read_status(&self, dir: &Path, spawned: &[Instant], t0: Instant) -> Counters {
        let n = self.lab.nodes();
        let (mut from_peers, mut from_hub) = (0, 0);
        let mut held: Vec<Option<f64>> = vec![None; n];
        for k in 0..n {
            let addr = SocketAddr::from((Lab::node_ip(k), HTTP_PORT));
            let Ok(body) = lab::http_get(&self.lab.node_ns(k), addr, "/status") else {
                continue;
            };
            let _ = fs::write(dir.join(format!("n{k}/status.json")), &body);
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&body) {
                from_peers += v["bytes_from_peers"].as_u64().unwrap_or(0);
                from_hub += v["bytes_from_hub"].as_u64().unwrap_or(0);
                held[k] = v["held_after_secs"]
                    .as_f64()
                    .map(|h| h + spawned[k].duration_since(t0).as_secs_f64());
            }
        }
        Counters {
            from_peers,
            from_hub,
            held,
        }
    }
}

/// The first of `nodes` whose installed tree under `dir` differs from `want`, as
/// `"WHAT, node K: how in ROOT"`.
pub(crate) fn tree_difference(
    ctx: &Ctx<'_>,
    dir: &Path,
    nodes: impl Iterator<Item = usize>,
    want: &sample::Tree,
    what: &str,
) -> Result<Option<String>, Error> {
    for k in nodes {
        check_stop(ctx.stop)?;
        let root = installed_root(&dir.join(format!("n{k}/root")));
        let got = sample::digest(&root).map_err(|e| {
            Error::Failed(format!(
                "cannot read node {k}'s tree {} ({e})",
                root.display()
            ))
        })?;
        if let Some(d) = sample::difference(want, &got) {
            return Ok(Some(format!("{what}, node {k}: {d} in {}", root.display())));
        }
    }
    Ok(None)
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
