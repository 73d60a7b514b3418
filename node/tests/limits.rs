//! The limits an operator sets on a node that shares its server with paying workloads:
//! `--store-quota` through upgrades (the store sampled on disk while they run) and
//! `--upload-rate` while peers fetch from the node. Real processes on 127.0.0.1.

mod boot_common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use boot_common::*;

const WAIT: Duration = Duration::from_secs(120);

/// Three packages; `alpha` and `beta` (1.5 MB each) never change, `gamma` (2 MB) changes in
/// every version, and from `all_change` on every package does.
fn packages(dir: &Path, version: u64, all_change: u64) -> Vec<PathBuf> {
    let sizes = [
        ("alpha", 1_500_000),
        ("beta", 1_500_000),
        ("gamma", 2_000_000),
    ];
    sizes
        .iter()
        .enumerate()
        .map(|(i, (name, len))| {
            let p = dir.join(name);
            fs::create_dir_all(p.join("bin")).unwrap();
            let seed = if *name == "gamma" || version >= all_change {
                1000 * version + i as u64
            } else {
                i as u64
            };
            fs::write(p.join("bin/daemon"), noise(seed, *len)).unwrap();
            p
        })
        .collect()
}

fn hub_bytes(hub_dir: &Path) -> u64 {
    fs::read_dir(hub_dir.join("blocks"))
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum()
}

/// Sum of the block files under `store/blocks` (files may vanish while it reads).
fn store_bytes(store: &Path) -> u64 {
    let Ok(buckets) = fs::read_dir(store.join("blocks")) else {
        return 0;
    };
    buckets
        .flatten()
        .filter_map(|b| fs::read_dir(b.path()).ok())
        .flat_map(|files| files.flatten())
        .filter_map(|f| f.metadata().ok())
        .map(|m| m.len())
        .sum()
}

/// Samples the store's size every 10 ms until dropped; the largest seen.
struct Sampler {
    stop: Arc<AtomicBool>,
    peak: Arc<AtomicU64>,
    samples: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Sampler {
    fn start(store: PathBuf) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let peak = Arc::new(AtomicU64::new(0));
        let samples = Arc::new(AtomicU64::new(0));
        let (s, p, n) = (stop.clone(), peak.clone(), samples.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                p.fetch_max(store_bytes(&store), Ordering::Relaxed);
                n.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        Sampler {
            stop,
            peak,
            samples,
            thread: Some(thread),
        }
    }

    fn peak(&self) -> u64 {
        self.peak.load(Ordering::Relaxed)
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn node_cmd(hub: &str, trust: &Path, dir: &Path) -> Command {
    fs::create_dir_all(dir).unwrap();
    let mut cmd = Command::new(bin());
    cmd.args(["run", "--hub", hub, "--channel", CHANNEL])
        .arg("--trust")
        .arg(trust)
        .arg("--store")
        .arg(dir.join("store"))
        .args(["--listen", "/ip4/127.0.0.1/tcp/0", "--http", "127.0.0.1:0"])
        .args(["--poll-interval", "1h"])
        .env("BOOTSWARM_LOG", "warn");
    cmd
}

fn wait_installed(node: &Daemon, seq: u64) -> serde_json::Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let s = http_json(&node.http, "/status");
        if s["installed"]["seq"] == seq && s["booted"] == true {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "seq {seq} was never installed: {s}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn announce(node: &Daemon, hub_dir: &Path, seq: u64) {
    let release = hub_dir.join(format!("channels/{CHANNEL}/{seq}.release"));
    let out = run(&[
        "announce",
        "--node",
        &node.http,
        "--release",
        release.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "announce: {}", stderr_of(&out));
}

/// A seed node started with `limits` that boots from the hub, then (with the hub gone) `n`
/// nodes that know only the seed, each told of release 1 once all are up.
fn seed_and_fetchers(
    dir: &Path,
    hub_dir: &Path,
    trust: &Path,
    limits: &[&str],
    n: usize,
) -> (Daemon, Vec<Daemon>) {
    let mut hub = Hub::start(hub_dir);
    let seed = Daemon::spawn(node_cmd(&hub.url, trust, &dir.join("seed")).args(limits));
    seed.wait_booted();
    hub.stop();
    let fetchers: Vec<Daemon> = (0..n)
        .map(|i| {
            Daemon::spawn(
                node_cmd(&hub.url, trust, &dir.join(format!("f{i}"))).args(["--peer", &seed.addr]),
            )
        })
        .collect();
    for f in &fetchers {
        announce(f, hub_dir, 1);
    }
    (seed, fetchers)
}

#[test]
fn a_store_quota_of_one_and_a_half_releases_holds_through_upgrades() {
    let dir = tempfile::tempdir().unwrap();
    let (key, trust) = keygen(dir.path(), "publisher.key");
    let hub_dir = dir.path().join("hub");
    let version = |v: u64| packages(&dir.path().join(format!("v{v}")), v, 6);
    publish(&hub_dir, &key, CHANNEL, &version(1));
    let release = hub_bytes(&hub_dir);
    let quota = release * 3 / 2;
    let hub = Hub::start(&hub_dir);
    let node_dir = dir.path().join("node");
    let store = node_dir.join("store");
    let sampler = Sampler::start(store.clone());
    let node = Daemon::spawn(
        node_cmd(&hub.url, &trust, &node_dir)
            .arg("--into")
            .arg(node_dir.join("root"))
            .args(["--store-quota", &quota.to_string()]),
    );
    wait_installed(&node, 1);

    // Three upgrades, then a fourth that must still boot.
    for v in 2..=5 {
        publish(&hub_dir, &key, CHANNEL, &version(v));
        announce(&node, &hub_dir, v);
        wait_installed(&node, v);
        let releases = node_dir.join("root/releases");
        assert_tree_matches(&releases.join(v.to_string()), &version(v));
        assert_tree_matches(&releases.join((v - 1).to_string()), &version(v - 1));
    }
    let m = http_get(&node.http, "/metrics");
    let evicted = metric_value(&m, "bootswarm_store_evictions_total");
    assert_eq!(metric_value(&m, "bootswarm_store_quota_bytes"), quota);
    assert!(
        evicted > 0,
        "each upgrade needs the oldest version's blocks evicted"
    );

    // The quota node's store holds all of seq 5: a new node whose hub is unreachable boots
    // it from there alone.
    let peer_dir = dir.path().join("peer");
    let peer = Daemon::spawn(
        node_cmd("http://127.0.0.1:9", &trust, &peer_dir)
            .arg("--into")
            .arg(peer_dir.join("root"))
            .args(["--peer", &node.addr]),
    );
    announce(&peer, &hub_dir, 5);
    wait_installed(&peer, 5);
    assert_tree_matches(&peer_dir.join("root/current"), &version(5));
    drop(peer);

    // Seq 6 changes every package: beside the pinned seq 5 it cannot fit, so it is refused
    // in one sentence naming the sizes, and the node stays on seq 5.
    publish(&hub_dir, &key, CHANNEL, &version(6));
    announce(&node, &hub_dir, 6);
    let deadline = Instant::now() + WAIT;
    let failure = loop {
        let s = http_json(&node.http, "/status");
        if let Some(reason) = s["upgrade_failure"]["reason"].as_str() {
            break reason.to_string();
        }
        assert!(Instant::now() < deadline, "seq 6 was not refused: {s}");
        std::thread::sleep(Duration::from_millis(100));
    };
    println!("seq 6: {failure}");
    assert!(failure.starts_with("release seq 6 ("), "{failure}");
    assert!(failure.contains("--store-quota"), "{failure}");
    assert!(
        !failure.trim_end_matches('.').contains(". "),
        "one sentence: {failure}"
    );
    let s = http_json(&node.http, "/status");
    assert_eq!(s["installed"]["seq"], 5, "{s}");
    assert_tree_matches(&node_dir.join("root/current"), &version(5));

    let peak = sampler.peak();
    let samples = sampler.samples.load(Ordering::Relaxed);
    drop(sampler);
    println!(
        "release {release} bytes, quota {quota}; store peak {peak} bytes over {samples} samples; {evicted} blocks evicted"
    );
    assert!(samples > 20, "only {samples} samples");
    assert!(
        peak <= quota,
        "the store reached {peak} bytes, quota {quota}"
    );
}

#[test]
fn an_upload_rate_caps_what_a_node_serves_to_its_peers() {
    const RATE_BITS: u64 = 20_000_000;
    const WINDOW: Duration = Duration::from_secs(30);
    let dir = tempfile::tempdir().unwrap();
    let (key, trust) = keygen(dir.path(), "publisher.key");
    let hub_dir = dir.path().join("hub");
    let pkgs: Vec<PathBuf> = (0..4)
        .map(|i| {
            let p = dir.path().join(format!("pkg/p{i}"));
            fs::create_dir_all(&p).unwrap();
            fs::write(p.join("data"), noise(70 + i, 10 << 20)).unwrap();
            p
        })
        .collect();
    publish(&hub_dir, &key, CHANNEL, &pkgs);
    let (seed, fetchers) = seed_and_fetchers(
        dir.path(),
        &hub_dir,
        &trust,
        &["--upload-rate", "20mbit"],
        3,
    );
    let served = || {
        metric_value(
            &http_get(&seed.http, "/metrics"),
            "bootswarm_bytes_served_total",
        )
    };
    let deadline = Instant::now() + WAIT;
    while served() == 0 {
        assert!(Instant::now() < deadline, "nobody fetched from the seed");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_secs(2));
    let (b0, t0) = (served(), Instant::now());
    std::thread::sleep(WINDOW);
    let (b1, t1) = (served(), Instant::now());
    let still_fetching = fetchers
        .iter()
        .filter(|f| http_json(&f.http, "/status")["booted"] != true)
        .count();
    let rate = (b1 - b0) as f64 * 8.0 / (t1 - t0).as_secs_f64();
    let ratio = rate / RATE_BITS as f64;
    let m = http_get(&seed.http, "/metrics");
    println!(
        "served {} bytes in {:.1} s = {:.2} Mbit/s ({ratio:.3} of the cap); {} requests turned away busy; {still_fetching} of 3 fetchers still fetching",
        b1 - b0,
        (t1 - t0).as_secs_f64(),
        rate / 1e6,
        metric_value(&m, "bootswarm_uploads_refused_total"),
    );
    assert!(
        still_fetching > 0,
        "the fetchers were done before the window ended: demand did not last"
    );
    assert!((0.9..=1.1).contains(&ratio), "{ratio:.3} of the cap");
}

#[test]
fn max_upload_peers_turns_further_peers_away_and_they_still_boot() {
    let dir = tempfile::tempdir().unwrap();
    let (key, trust) = keygen(dir.path(), "publisher.key");
    let hub_dir = dir.path().join("hub");
    let pkg = dir.path().join("pkg/data");
    fs::create_dir_all(&pkg).unwrap();
    fs::write(pkg.join("blob"), noise(90, 12 << 20)).unwrap();
    publish(&hub_dir, &key, CHANNEL, &[pkg]);
    // Both fetchers are told of the release at once: 12 MiB at 80 Mbit/s takes 1.25 s
    // each, so they overlap. The one turned away knows no other holder (the hub is down): it
    // rotates the seed out after a stall period of `Busy` answers and picks it again 10 s
    // later. At 40 Mbit/s one CI run in many on a loaded 2-core machine did not boot the
    // second fetcher in time; the cause was not found (a `Busy` streak is reset by the
    // rotation, so it did not ban the seed).
    let (seed, fetchers) = seed_and_fetchers(
        dir.path(),
        &hub_dir,
        &trust,
        &["--max-upload-peers", "1", "--upload-rate", "80mbit"],
        2,
    );
    for f in &fetchers {
        f.wait_booted();
    }
    let status = http_json(&seed.http, "/status");
    let refused = status["uploads_refused"].as_u64().unwrap();
    println!(
        "{refused} requests turned away; bytes to each peer: {}",
        status["bytes_to_peer"]
    );
    assert!(refused > 0, "one peer at a time: the other was turned away");
    assert_eq!(status["bytes_to_peer"].as_object().unwrap().len(), 2);
}
