//! `bootswarm demo`: a farm on one machine. Deterministic sample packages are published to an
//! embedded hub on loopback whose egress is throttled like a WAN link; N `bootswarm run`
//! processes on 127.0.0.1 (mDNS off) form one swarm through `--peer` addresses and boot at
//! once; a live view polls each node's /status, and a table compares the result with
//! T_min = F/B and, with `--baseline`, with the same farm fetching from the hub only.

mod rfs;
pub mod sample;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::mpsc;

use crate::error::{Error, Result};
use crate::hub::server::HubHandle;
use crate::units::{format_size, parse_rate, parse_size};

/// Channel the demo publishes to.
const CHANNEL: &str = "demo";
/// Most nodes a demo runs (each is a process with its own store).
pub const MAX_NODES: usize = 64;
/// Smallest sample size (a few chunks per package).
pub const MIN_SIZE: u64 = 1 << 20;
/// How often the live view polls the nodes.
const POLL: Duration = Duration::from_millis(500);
/// Longest wait for a node's `listening` and `http` lines.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Arguments of `bootswarm demo`.
#[derive(clap::Args, Debug, Clone)]
pub struct DemoArgs {
    /// Number of nodes booting at once (separate `bootswarm run` processes).
    #[arg(long, default_value_t = 4)]
    pub nodes: usize,
    /// Total size of the sample packages, e.g. 64MiB or 1GiB.
    #[arg(long, default_value = "256MiB")]
    pub size: String,
    /// Egress rate of the hub (its WAN link), e.g. 100mbit or 1gbit.
    #[arg(long, default_value = "100mbit")]
    pub hub_rate: String,
    /// Also run the same farm fetching from the hub only, and compare.
    #[arg(long)]
    pub baseline: bool,
    /// Boot rfs content: the packages as rfs flists whose blocks a local RESP store
    /// (redis-server, the 0-db stand-in) serves as their upstream.
    #[arg(long)]
    pub rfs: bool,
    /// Work directory (kept afterwards); default: a temporary directory removed at the end.
    #[arg(long, value_name = "DIR")]
    pub workdir: Option<PathBuf>,
}

/// How one node's boot went.
#[derive(Debug, Clone, Default)]
pub struct NodeResult {
    /// 1-based node number.
    pub node: usize,
    /// Time from the farm's start to the node's `booted` line.
    pub time: Option<Duration>,
    /// Block bytes the node received from the hub.
    pub hub_bytes: u64,
    /// Block bytes the node received from peers.
    pub peer_bytes: u64,
    /// `None` when the node booted and its tree equals the packages, else why not.
    pub failure: Option<String>,
}

/// One farm run: every node, the time until the last one booted, and the hub's egress.
#[derive(Debug, Clone)]
struct FarmRun {
    nodes: Vec<NodeResult>,
    /// Until every node held every block (before writing its tree).
    all_held: Option<Duration>,
    all_booted: Duration,
    egress: u64,
}

/// Runs `bootswarm demo` (builds its own tokio runtime).
pub fn run(args: DemoArgs) -> Result<()> {
    if args.nodes == 0 || args.nodes > MAX_NODES {
        return Err(Error::new(format!(
            "--nodes {} is out of range; give 1 to {MAX_NODES}",
            args.nodes
        )));
    }
    let size = parse_size(&args.size)?;
    if size < MIN_SIZE {
        return Err(Error::new(format!(
            "--size {} is too small; give at least 1MiB",
            args.size
        )));
    }
    let rate = parse_rate(&args.hub_rate)?;
    if args.rfs {
        rfs::check_available()?;
    }
    let (work, temporary) = match &args.workdir {
        Some(dir) => {
            std::fs::create_dir_all(dir).map_err(|e| {
                Error::new(format!(
                    "cannot create the work directory {} ({e}); check --workdir",
                    dir.display()
                ))
            })?;
            (dir.clone(), false)
        }
        None => (temp_workdir()?, true),
    };
    let result = run_in(&args, &work, size, rate);
    if temporary {
        let _ = std::fs::remove_dir_all(&work);
    }
    result
}

fn temp_workdir() -> Result<PathBuf> {
    let mut rnd = [0u8; 6];
    getrandom::fill(&mut rnd)
        .map_err(|e| Error::new(format!("cannot get randomness for a temp directory ({e})")))?;
    let name: String = rnd.iter().map(|b| format!("{b:02x}")).collect();
    let dir = std::env::temp_dir().join(format!("bootswarm-demo-{name}"));
    std::fs::create_dir(&dir).map_err(|e| {
        Error::new(format!(
            "cannot create a temporary work directory {} ({e}); pass --workdir",
            dir.display()
        ))
    })?;
    Ok(dir)
}

fn run_in(args: &DemoArgs, work: &Path, size: u64, rate: u64) -> Result<()> {
    // A fresh run in the work directory.
    for sub in [
        "packages",
        "hub",
        "nodes",
        "baseline",
        "publisher.key",
        "publisher.key.pub",
        "fl",
        "resp",
    ] {
        let p = work.join(sub);
        let _ = std::fs::remove_dir_all(&p);
        let _ = std::fs::remove_file(&p);
    }
    let exe = std::env::current_exe().map_err(|e| {
        Error::new(format!(
            "cannot find the bootswarm executable to start the nodes ({e})"
        ))
    })?;
    eprintln!(
        "generating {} sample packages ({}) in {}",
        sample::PACKAGES,
        format_size(size),
        work.display()
    );
    let packages = sample::generate(&work.join("packages"), size)?;

    let key = work.join("publisher.key");
    crate::keys::write_keypair(&key)?;
    let trust = crate::keys::pub_path(&key);
    let signing = crate::keys::read_signing_key(&key)?;
    let hub_dir = work.join("hub");
    let options = crate::publish::PublishOptions {
        channel: CHANNEL.to_string(),
        keys: vec![signing],
        expires_in: 86_400,
        version: Some("demo".to_string()),
        now: crate::task::unix_now(),
    };
    let rt = crate::task::runtime(crate::task::Runtime::Server)?;
    // F and the block count; with --rfs the store serving the blocks, kept until the end.
    let (f, blocks, _store) = if args.rfs {
        let r = rt.block_on(rfs::release(work, &hub_dir, &packages, options))?;
        eprintln!(
            "rfs: {} blocks ({}) in the local RESP store {}, the only upstream of the nodes",
            r.blocks,
            format_size(r.stored_bytes),
            r.store.url()
        );
        let f = r.published.total_bytes + r.stored_bytes;
        (f, r.published.blocks + r.blocks, Some(r.store))
    } else {
        let published = crate::publish::publish(&hub_dir, &packages, &options)?;
        (published.total_bytes, published.blocks, None)
    };

    let farm = Farm {
        exe: &exe,
        trust: &trust,
        nodes: args.nodes,
        f,
        rate,
    };
    let (swarm, baseline) = rt.block_on(async {
        let hub = crate::hub::server::start(hub_dir.clone(), "127.0.0.1:0", Some(rate)).await?;
        eprintln!(
            "hub on {} at {}/s; starting {} nodes that boot at once",
            hub.url(),
            format_size(rate),
            args.nodes
        );
        let swarm = farm.run(&hub, &work.join("nodes"), false).await;
        let baseline = match (&swarm, args.baseline) {
            (Ok(_), true) => {
                eprintln!("baseline: the same farm, every node fetching from the hub only");
                Some(farm.run(&hub, &work.join("baseline"), true).await)
            }
            _ => None,
        };
        hub.shutdown().await?;
        Ok::<_, Error>((swarm?, baseline.transpose()?))
    })?;

    let mut swarm = swarm;
    check_trees(&mut swarm.nodes, &work.join("nodes"), &packages);
    let mut baseline = baseline;
    if let Some(b) = &mut baseline {
        check_trees(&mut b.nodes, &work.join("baseline"), &packages);
    }

    print_table(args, &swarm, baseline.as_ref(), f, blocks, rate);
    let failed: Vec<String> = swarm
        .nodes
        .iter()
        .chain(baseline.iter().flat_map(|b| b.nodes.iter()))
        .filter(|r| r.failure.is_some())
        .map(|r| r.node.to_string())
        .collect();
    if failed.is_empty() {
        Ok(())
    } else {
        Err(Error::new(format!(
            "node(s) {} did not boot correctly (see the table); rerun with --workdir to keep their stores, targets and logs",
            failed.join(", ")
        )))
    }
}

/// Every booted node's tree must equal the published packages.
fn check_trees(results: &mut [NodeResult], dir: &Path, packages: &[PathBuf]) {
    for r in results {
        if r.failure.is_some() {
            continue;
        }
        // The daemon's layout: the version in use is TARGET/current.
        let root = dir.join(format!("{}/root/current", r.node));
        for pkg in packages {
            let Some(name) = pkg.file_name() else {
                continue;
            };
            if let Err(diff) = sample::compare_trees(pkg, &root.join(name)) {
                r.failure = Some(format!("tree differs: {diff}"));
                break;
            }
        }
    }
}

/// A running `bootswarm run` process.
struct NodeProc {
    node: usize,
    child: tokio::process::Child,
    lines: mpsc::Receiver<String>,
    addr: String,
    status_url: String,
    spawned: Instant,
    booted: Option<Duration>,
    last: Option<serde_json::Value>,
    log: PathBuf,
}

/// What every node of a farm shares.
struct Farm<'a> {
    exe: &'a Path,
    trust: &'a Path,
    nodes: usize,
    f: u64,
    rate: u64,
}

impl Farm<'_> {
    /// Starts the nodes one after the other, each given the addresses of every earlier node
    /// and told to wait for all the others, so they form one swarm and boot at once; then
    /// follows them until every one has booted (or failed).
    async fn run(&self, hub: &HubHandle, dir: &Path, hub_only: bool) -> Result<FarmRun> {
        let egress_before = hub.stats().egress_bytes;
        let mut procs: Vec<NodeProc> = Vec::with_capacity(self.nodes);
        for node in 1..=self.nodes {
            let peers: Vec<String> = procs.iter().map(|p| p.addr.clone()).collect();
            procs.push(self.start(hub, dir, node, &peers, hub_only).await?);
        }
        // The boot starts when the last node has joined.
        let start = Instant::now();
        let http = crate::tls::client_builder()
            .no_proxy()
            .timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| Error::new(format!("cannot set up an HTTP client ({e})")))?;
        let view = LiveView::new(self.nodes, self.f);
        // Generous: ten times the hub-only time, plus a minute.
        let limit =
            Duration::from_secs_f64(10.0 * (self.nodes as u64 * self.f) as f64 / self.rate as f64)
                + Duration::from_secs(60);
        let mut tick = tokio::time::interval(POLL);
        loop {
            tick.tick().await;
            for p in &mut procs {
                while let Ok(line) = p.lines.try_recv() {
                    // `booted <seconds since the node started>`: exact, unlike the poll.
                    if let Some(secs) = line.strip_prefix("booted ")
                        && p.booted.is_none()
                    {
                        let at = secs
                            .trim()
                            .parse::<f64>()
                            .ok()
                            .filter(|s| s.is_finite() && *s >= 0.0)
                            .map_or_else(Instant::now, |s| p.spawned + Duration::from_secs_f64(s));
                        p.booted = Some(at.saturating_duration_since(start));
                    }
                }
                if let Ok(resp) = http.get(&p.status_url).send().await
                    && let Ok(body) = resp.bytes().await
                    && let Ok(v) = serde_json::from_slice::<serde_json::Value>(&body)
                {
                    p.last = Some(v);
                }
            }
            view.update(
                &procs,
                start.elapsed(),
                hub.stats().egress_bytes - egress_before,
            );
            let exited = procs
                .iter_mut()
                .any(|p| p.booted.is_none() && matches!(p.child.try_wait(), Ok(Some(_))));
            if procs.iter().all(|p| p.booted.is_some()) || exited || start.elapsed() > limit {
                break;
            }
        }
        view.finish();
        let all_booted = start.elapsed();
        let egress = hub.stats().egress_bytes - egress_before;
        let held: Vec<Option<Duration>> = procs
            .iter()
            .map(|p| {
                let secs = p.last.as_ref()?["held_after_secs"].as_f64()?;
                let at = p.spawned + Duration::from_secs_f64(secs.max(0.0));
                Some(at.saturating_duration_since(start))
            })
            .collect();
        let all_held = held
            .iter()
            .copied()
            .collect::<Option<Vec<_>>>()
            .and_then(|v| v.into_iter().max());
        let mut nodes = Vec::with_capacity(procs.len());
        for mut p in procs {
            let mut r = NodeResult {
                node: p.node,
                time: p.booted,
                ..NodeResult::default()
            };
            if let Some(s) = &p.last {
                r.hub_bytes = s["bytes_from_hub"].as_u64().unwrap_or(0);
                r.peer_bytes = s["bytes_from_peers"].as_u64().unwrap_or(0);
            }
            if p.booted.is_none() {
                r.failure = Some(match p.child.try_wait() {
                    Ok(Some(status)) => format!("{status} ({})", last_line(&p.log)),
                    _ => "did not boot in time".to_string(),
                });
            }
            let _ = p.child.kill().await;
            nodes.push(r);
        }
        let all_booted = nodes
            .iter()
            .filter_map(|r| r.time)
            .max()
            .unwrap_or(all_booted);
        Ok(FarmRun {
            nodes,
            all_held,
            all_booted,
            egress,
        })
    }

    async fn start(
        &self,
        hub: &HubHandle,
        dir: &Path,
        node: usize,
        peers: &[String],
        hub_only: bool,
    ) -> Result<NodeProc> {
        let nd = dir.join(node.to_string());
        std::fs::create_dir_all(&nd).map_err(|e| {
            Error::new(format!(
                "cannot create the node directory {} ({e})",
                nd.display()
            ))
        })?;
        let log = nd.join("log");
        let stderr = std::fs::File::create(&log).map_err(|e| {
            Error::new(format!(
                "cannot create the node log {} ({e})",
                log.display()
            ))
        })?;
        let mut cmd = tokio::process::Command::new(self.exe);
        cmd.arg("run")
            .arg("--hub")
            .arg(hub.url())
            .arg("--channel")
            .arg(CHANNEL)
            .arg("--trust")
            .arg(self.trust)
            .arg("--store")
            .arg(nd.join("store"))
            .arg("--into")
            .arg(nd.join("root"))
            .args(["--listen", "/ip4/127.0.0.1/tcp/0", "--http", "127.0.0.1:0"])
            .args([
                "--min-peers",
                &(self.nodes - 1).to_string(),
                "--peer-wait",
                "60s",
            ]);
        for p in peers {
            cmd.arg("--peer").arg(p);
        }
        if hub_only {
            cmd.arg("--hub-only");
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr))
            .kill_on_drop(true);
        let spawned = Instant::now();
        let mut child = cmd.spawn().map_err(|e| {
            Error::new(format!(
                "cannot start node {node} ({} run): {e}",
                self.exe.display()
            ))
        })?;
        let (tx, mut lines) = mpsc::channel(64);
        if let Some(out) = child.stdout.take() {
            tokio::spawn(async move {
                let mut reader = BufReader::new(out).lines();
                while let Ok(Some(line)) = reader.next_line().await {
                    if tx.send(line).await.is_err() {
                        break;
                    }
                }
            });
        }
        let (mut addr, mut status_url) = (None, None);
        let deadline = tokio::time::Instant::now() + START_TIMEOUT;
        while addr.is_none() || status_url.is_none() {
            match tokio::time::timeout_at(deadline, lines.recv()).await {
                Ok(Some(line)) => {
                    if let Some(a) = line.strip_prefix("listening ") {
                        addr.get_or_insert_with(|| a.trim().to_string());
                    } else if let Some(u) = line.strip_prefix("http ") {
                        status_url = Some(format!("{}/status", u.trim()));
                    }
                }
                _ => {
                    let _ = child.kill().await;
                    return Err(Error::new(format!(
                        "node {node} did not start ({}); see {}",
                        last_line(&log),
                        log.display()
                    )));
                }
            }
        }
        Ok(NodeProc {
            node,
            child,
            lines,
            addr: addr.unwrap_or_default(),
            status_url: status_url.unwrap_or_default(),
            spawned,
            booted: None,
            last: None,
            log,
        })
    }
}

/// The last non-empty line of a log file.
fn last_line(path: &Path) -> String {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| {
            s.lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .map(|l| l.trim().to_string())
        })
        .unwrap_or_else(|| "no message".to_string())
}

/// Per-node progress bars on a terminal; a line every few seconds otherwise.
struct LiveView {
    bars: Option<(MultiProgress, Vec<ProgressBar>, ProgressBar)>,
    f: u64,
    last_line: std::cell::Cell<Option<Instant>>,
}

impl LiveView {
    fn new(nodes: usize, f: u64) -> LiveView {
        let bars = std::io::stderr().is_terminal().then(|| {
            let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
            let style = ProgressStyle::with_template(
                "{prefix:>8} [{bar:40}] {bytes:>10}/{total_bytes:<10} {msg}",
            )
            .map(|s| s.progress_chars("=> "))
            .unwrap_or_else(|_| ProgressStyle::default_bar());
            let bars = (1..=nodes)
                .map(|n| {
                    let bar = multi.add(ProgressBar::new(f));
                    bar.set_style(style.clone());
                    bar.set_prefix(format!("node {n}"));
                    bar
                })
                .collect();
            let hub = multi.add(ProgressBar::new(f * nodes as u64));
            hub.set_style(style);
            hub.set_prefix("hub out");
            (multi, bars, hub)
        });
        LiveView {
            bars,
            f,
            last_line: std::cell::Cell::new(None),
        }
    }

    fn update(&self, procs: &[NodeProc], elapsed: Duration, egress: u64) {
        let booted = procs.iter().filter(|p| p.booted.is_some()).count();
        match &self.bars {
            Some((_, bars, hub)) => {
                for (p, bar) in procs.iter().zip(bars) {
                    if let Some(s) = &p.last {
                        let total = s["progress"]["total_bytes"].as_u64().unwrap_or(0);
                        bar.set_length(total.max(self.f));
                        bar.set_position(s["progress"]["have_bytes"].as_u64().unwrap_or(0));
                        bar.set_message(format!(
                            "peers {} hub {} from peers {}{}",
                            s["peers"],
                            format_size(s["bytes_from_hub"].as_u64().unwrap_or(0)),
                            format_size(s["bytes_from_peers"].as_u64().unwrap_or(0)),
                            if p.booted.is_some() { "  booted" } else { "" }
                        ));
                    }
                }
                hub.set_position(egress);
                hub.set_message(format!("{booted}/{} booted", procs.len()));
            }
            None => {
                let due = self
                    .last_line
                    .get()
                    .is_none_or(|t| t.elapsed() >= Duration::from_secs(5));
                if due {
                    self.last_line.set(Some(Instant::now()));
                    let have: u64 = procs
                        .iter()
                        .filter_map(|p| p.last.as_ref())
                        .map(|s| s["progress"]["have_bytes"].as_u64().unwrap_or(0))
                        .sum();
                    eprintln!(
                        "{:>6.1} s  {booted}/{} booted, {} of {} held, hub egress {}",
                        elapsed.as_secs_f64(),
                        procs.len(),
                        format_size(have),
                        format_size(self.f * procs.len() as u64),
                        format_size(egress)
                    );
                }
            }
        }
    }

    fn finish(&self) {
        if let Some((multi, bars, hub)) = &self.bars {
            for b in bars {
                b.finish_and_clear();
            }
            hub.finish_and_clear();
            let _ = multi.clear();
        }
    }
}

fn print_table(
    args: &DemoArgs,
    swarm: &FarmRun,
    baseline: Option<&FarmRun>,
    f: u64,
    blocks: usize,
    rate: u64,
) {
    let n = swarm.nodes.len() as u64;
    let b = rate as f64;
    let t_min = f as f64 / b;
    let hub_only_bound = (n * f) as f64 / b;
    let times_f = |bytes: u64| if f == 0 { 0.0 } else { bytes as f64 / f as f64 };
    let times_t = |d: Duration| {
        if t_min > 0.0 {
            d.as_secs_f64() / t_min
        } else {
            0.0
        }
    };
    println!();
    println!(
        "bootswarm demo: {n} nodes boot {} packages, F = {} ({blocks} blocks), hub link B = {} ({}/s)",
        sample::PACKAGES,
        format_size(f),
        args.hub_rate,
        format_size(rate)
    );
    println!();
    println!(
        "{:>5}  {:>9}  {:>12}  {:>12}  result",
        "node",
        "time",
        // With --rfs a node's origin for the blocks is the RESP store, the hub's for the flists.
        if args.rfs { "from origin" } else { "from hub" },
        "from peers"
    );
    for r in &swarm.nodes {
        let time = r
            .time
            .map_or_else(|| "-".to_string(), |t| format!("{:.1} s", t.as_secs_f64()));
        let result = r.failure.as_deref().unwrap_or("ok, tree identical");
        println!(
            "{:>5}  {time:>9}  {:>12}  {:>12}  {result}",
            r.node,
            format_size(r.hub_bytes),
            format_size(r.peer_bytes)
        );
    }
    println!();
    println!(
        "all booted      {:.1} s = {:.2} × T_min   (T_min = F/B = {t_min:.1} s; hub-only bound N·F/B = {hub_only_bound:.1} s)",
        swarm.all_booted.as_secs_f64(),
        times_t(swarm.all_booted)
    );
    if let Some(held) = swarm.all_held {
        println!(
            "all blocks held {:.1} s = {:.2} × T_min   (the rest is writing the trees)",
            held.as_secs_f64(),
            times_t(held)
        );
    }
    println!(
        "hub egress      {} = {:.2} × F   (hub-only fetching costs N·F = {:.2} × F)",
        format_size(swarm.egress),
        times_f(swarm.egress),
        n as f64
    );
    match baseline {
        Some(base) => {
            let failed = base.nodes.iter().filter(|r| r.failure.is_some()).count();
            println!(
                "hub-only        {:.1} s = {:.2} × T_min, hub egress {:.2} × F{}   (swarm is {:.1}× faster)",
                base.all_booted.as_secs_f64(),
                times_t(base.all_booted),
                times_f(base.egress),
                if failed > 0 {
                    format!(", {failed} node(s) failed")
                } else {
                    String::new()
                },
                base.all_booted.as_secs_f64() / swarm.all_booted.as_secs_f64().max(1e-9)
            );
        }
        None => println!("hub-only        not measured (add --baseline)"),
    }
}
