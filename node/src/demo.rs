//! `bootswarm demo`: a farm on one machine. Deterministic sample packages are published to an
//! embedded hub on loopback whose egress is throttled like a WAN link, N `bootswarm boot`
//! processes boot them at once, and a table compares what happened with the hub-only bound
//! N·F/B.

pub mod sample;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::error::{Error, Result};
use crate::units::{format_size, parse_rate, parse_size};

/// Channel the demo publishes to.
const CHANNEL: &str = "demo";
/// Most nodes a demo runs (each is a process with its own store).
pub const MAX_NODES: usize = 64;
/// Smallest sample size (a few chunks per package).
pub const MIN_SIZE: u64 = 1 << 20;

/// Arguments of `bootswarm demo`.
#[derive(clap::Args, Debug, Clone)]
pub struct DemoArgs {
    /// Number of nodes booting at once (separate processes).
    #[arg(long, default_value_t = 4)]
    pub nodes: usize,
    /// Total size of the sample packages, e.g. 64MiB or 1GiB.
    #[arg(long, default_value = "256MiB")]
    pub size: String,
    /// Egress rate of the hub (its WAN link), e.g. 100mbit or 1gbit.
    #[arg(long, default_value = "100mbit")]
    pub hub_rate: String,
    /// Work directory (kept afterwards); default: a temporary directory removed at the end.
    #[arg(long, value_name = "DIR")]
    pub workdir: Option<PathBuf>,
}

/// How one node's boot went.
#[derive(Debug, Clone)]
pub struct NodeResult {
    /// 1-based node number.
    pub node: usize,
    /// Time from the common start to the end of the node's process.
    pub time: Duration,
    /// Body bytes the node received from the hub, from its boot report.
    pub hub_bytes: Option<u64>,
    /// `None` when the node booted and its tree equals the packages, else why not.
    pub failure: Option<String>,
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
        "publisher.key",
        "publisher.key.pub",
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
    let published = crate::publish::publish(
        &hub_dir,
        &packages,
        &crate::publish::PublishOptions {
            channel: CHANNEL.to_string(),
            keys: vec![signing],
            expires_in: 86_400,
            version: Some("demo".to_string()),
            now: crate::publish::unix_now(),
        },
    )?;
    let f = published.total_bytes;

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Error::new(format!("cannot start the async runtime ({e})")))?;
    let (results, egress, wall) = rt.block_on(async {
        let hub = crate::hub::server::start(hub_dir.clone(), "127.0.0.1:0", Some(rate)).await?;
        eprintln!(
            "hub on {} at {}/s; booting {} nodes at once",
            hub.url(),
            format_size(rate),
            args.nodes
        );
        let boots = boot_all(&exe, &hub, &trust, work, args.nodes, f).await;
        let egress = hub.stats().egress_bytes;
        hub.shutdown().await?;
        let (results, wall) = boots?;
        Ok::<_, Error>((results, egress, wall))
    })?;

    // Every tree must equal the published packages.
    let mut results = results;
    for r in &mut results {
        if r.failure.is_some() {
            continue;
        }
        let root = work.join(format!("nodes/{}/root", r.node));
        for pkg in &packages {
            let Some(name) = pkg.file_name() else {
                continue;
            };
            if let Err(diff) = sample::compare_trees(pkg, &root.join(name)) {
                r.failure = Some(format!("tree differs: {diff}"));
                break;
            }
        }
    }

    print_table(args, &results, f, published.blocks, rate, egress, wall);
    let failed: Vec<String> = results
        .iter()
        .filter(|r| r.failure.is_some())
        .map(|r| r.node.to_string())
        .collect();
    if failed.is_empty() {
        Ok(())
    } else {
        Err(Error::new(format!(
            "node(s) {} did not boot correctly (see the table); rerun with --workdir to keep their stores and targets",
            failed.join(", ")
        )))
    }
}

/// Spawns every node at once, shows hub egress while they run (on a terminal), and collects
/// each node's time and report.
async fn boot_all(
    exe: &Path,
    hub: &crate::hub::server::HubHandle,
    trust: &Path,
    work: &Path,
    nodes: usize,
    f: u64,
) -> Result<(Vec<NodeResult>, Duration)> {
    let url = hub.url();
    let mut children = Vec::with_capacity(nodes);
    for node in 1..=nodes {
        let dir = work.join(format!("nodes/{node}"));
        std::fs::create_dir_all(&dir).map_err(|e| {
            Error::new(format!(
                "cannot create the node directory {} ({e})",
                dir.display()
            ))
        })?;
        let mut cmd = tokio::process::Command::new(exe);
        cmd.arg("boot")
            .arg("--hub")
            .arg(&url)
            .arg("--channel")
            .arg(CHANNEL)
            .arg("--trust")
            .arg(trust)
            .arg("--store")
            .arg(dir.join("store"))
            .arg("--into")
            .arg(dir.join("root"))
            .arg("--no-progress")
            .arg("--json")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        children.push((node, cmd));
    }
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for (node, mut cmd) in children {
        let child = cmd.spawn().map_err(|e| {
            Error::new(format!(
                "cannot start node {node} ({} boot): {e}",
                exe.display()
            ))
        })?;
        tasks.spawn(async move {
            let out = child.wait_with_output().await;
            (node, start.elapsed(), out)
        });
    }

    let bar = if std::io::stderr().is_terminal() {
        let bar =
            ProgressBar::with_draw_target(Some(f * nodes as u64), ProgressDrawTarget::stderr());
        if let Ok(style) = ProgressStyle::with_template(
            "hub egress [{bar:40}] {bytes}/{total_bytes} (N·F) {binary_bytes_per_sec} {msg}",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        Some(bar)
    } else {
        None
    };
    let mut results = Vec::with_capacity(nodes);
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    while !tasks.is_empty() {
        tokio::select! {
            joined = tasks.join_next() => {
                let Some(joined) = joined else { break };
                let (node, time, out) = joined
                    .map_err(|e| Error::new(format!("waiting for a node failed ({e})")))?;
                results.push(node_result(node, time, out));
            }
            _ = tick.tick() => {}
        }
        if let Some(bar) = &bar {
            bar.set_position(hub.stats().egress_bytes);
            bar.set_message(format!("{}/{nodes} booted", results.len()));
        }
    }
    let wall = start.elapsed();
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    results.sort_by_key(|r| r.node);
    Ok((results, wall))
}

fn node_result(
    node: usize,
    time: Duration,
    out: std::io::Result<std::process::Output>,
) -> NodeResult {
    let mut r = NodeResult {
        node,
        time,
        hub_bytes: None,
        failure: None,
    };
    match out {
        Err(e) => r.failure = Some(format!("could not wait for the process ({e})")),
        Ok(out) if !out.status.success() => {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let line = stderr
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("no message")
                .trim()
                .to_string();
            r.failure = Some(format!("{} ({line})", out.status));
        }
        Ok(out) => {
            let report: Option<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
                .lines()
                .rev()
                .find_map(|l| serde_json::from_str(l).ok());
            r.hub_bytes = report.and_then(|v| v.get("hub_bytes").and_then(|b| b.as_u64()));
        }
    }
    r
}

fn print_table(
    args: &DemoArgs,
    results: &[NodeResult],
    f: u64,
    blocks: usize,
    rate: u64,
    egress: u64,
    wall: Duration,
) {
    let n = results.len() as u64;
    let b = rate as f64;
    let hub_only = (n * f) as f64 / b;
    let t_min = f as f64 / b;
    println!();
    println!(
        "bootswarm demo: {n} nodes boot {} packages, F = {} ({blocks} blocks), hub link B = {} ({}/s), fetching from the hub only",
        sample::PACKAGES,
        format_size(f),
        args.hub_rate,
        format_size(rate)
    );
    println!();
    println!("{:>5}  {:>9}  {:>12}  result", "node", "time", "from hub");
    for r in results {
        let bytes = r.hub_bytes.map_or_else(|| "-".to_string(), format_size);
        let result = r.failure.as_deref().unwrap_or("ok, tree identical");
        println!(
            "{:>5}  {:>7.1} s  {:>12}  {result}",
            r.node,
            r.time.as_secs_f64(),
            bytes
        );
    }
    println!();
    let ratio = if f == 0 {
        0.0
    } else {
        egress as f64 / f as f64
    };
    println!(
        "hub egress      {} = {ratio:.2} × F   (hub-only fetching costs N·F = {:.2} × F)",
        format_size(egress),
        n as f64
    );
    let vs = if hub_only > 0.0 {
        wall.as_secs_f64() / hub_only
    } else {
        0.0
    };
    println!(
        "total time      {:.1} s = {vs:.2} × N·F/B ({hub_only:.1} s)   (F/B = {t_min:.1} s is the floor with peer sharing)",
        wall.as_secs_f64()
    );
}
