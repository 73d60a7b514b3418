//! Swarm process tests: real `bootswarm run` processes on 127.0.0.1 (mDNS off), a throttled
//! hub process, and their /status and /metrics endpoints. Every process is killed on drop.

mod boot_common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use boot_common::*;

/// How long a test waits for every node to boot.
const BOOT_TIMEOUT: Duration = Duration::from_secs(120);

/// One `bootswarm run` process; its stdout lines arrive on a channel.
struct Node {
    child: Child,
    lines: mpsc::Receiver<String>,
    /// `<multiaddr>/p2p/<peer id>` from the `listening` line.
    addr: String,
    peer_id: String,
    /// host:port of /status and /metrics.
    http: String,
    root: PathBuf,
    booted: Option<f64>,
}

impl Node {
    fn start(base: &Path, name: &str, hub: &str, trust: &Path, extra: &[String]) -> Node {
        let dir = base.join(name);
        fs::create_dir_all(&dir).unwrap();
        let root = dir.join("root");
        let mut child = Command::new(bin())
            .args(["run", "--hub", hub, "--channel", CHANNEL])
            .arg("--trust")
            .arg(trust)
            .arg("--store")
            .arg(dir.join("store"))
            .arg("--into")
            .arg(&root)
            .args(["--listen", "/ip4/127.0.0.1/tcp/0", "--http", "127.0.0.1:0"])
            .args(extra)
            .env(
                "BOOTSWARM_LOG",
                std::env::var("SWARM_TEST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start node");
        let lines = stdout_lines(&mut child);
        let mut node = Node {
            child,
            lines,
            addr: String::new(),
            peer_id: String::new(),
            http: String::new(),
            root,
            booted: None,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while node.addr.is_empty() || node.http.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = node
                .lines
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("{name} printed no listening/http line"));
            node.take_line(&line);
        }
        node
    }

    fn take_line(&mut self, line: &str) {
        if let Some(addr) = line.strip_prefix("listening ") {
            self.addr = addr.trim().to_string();
            self.peer_id = self.addr.rsplit('/').next().unwrap().to_string();
        } else if let Some(url) = line.strip_prefix("http ") {
            self.http = url.trim().trim_start_matches("http://").to_string();
        } else if let Some(secs) = line.strip_prefix("booted ") {
            self.booted = secs.trim().parse().ok();
        }
    }

    fn status(&self) -> serde_json::Value {
        http_json(&self.http, "/status")
    }

    fn metrics(&self) -> String {
        http_get(&self.http, "/metrics")
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until every node has printed `booted`.
fn wait_booted(nodes: &mut [Node]) {
    let deadline = Instant::now() + BOOT_TIMEOUT;
    for (i, node) in nodes.iter_mut().enumerate() {
        while node.booted.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            match node.lines.recv_timeout(left) {
                Ok(line) => node.take_line(&line),
                Err(_) => panic!("node {i} did not boot in time; status: {}", node.status()),
            }
        }
    }
}

/// Packages for the swarm tests: the boot fixtures plus a bigger one, for more blocks.
fn packages(dir: &Path) -> Vec<PathBuf> {
    let mut pkgs = make_packages(dir);
    let gamma = dir.join("gamma");
    fs::create_dir_all(&gamma).unwrap();
    for i in 0..4 {
        fs::write(
            gamma.join(format!("blob{i}")),
            noise(100 + i, 4 * 1024 * 1024 + 77),
        )
        .unwrap();
    }
    pkgs.push(gamma);
    pkgs
}

/// F: bytes of every distinct block of the release (the hub holds exactly one release).
fn release_bytes(hub_dir: &Path) -> u64 {
    fs::read_dir(hub_dir.join("blocks"))
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum()
}

struct Farm {
    dir: tempfile::TempDir,
    packages: Vec<PathBuf>,
    hub_dir: PathBuf,
    trust: PathBuf,
}

fn farm() -> Farm {
    let dir = tempfile::tempdir().unwrap();
    let packages = packages(&dir.path().join("pkgs"));
    let (key, trust) = keygen(dir.path(), "publisher.key");
    let hub_dir = dir.path().join("hub");
    publish(&hub_dir, &key, CHANNEL, &packages);
    Farm {
        dir,
        packages,
        hub_dir,
        trust,
    }
}

/// `--peer` to every given node, and `--min-peers` for a farm of `total` nodes.
fn peer_args(earlier: &[Node], min_peers: usize) -> Vec<String> {
    let mut args = Vec::new();
    for n in earlier {
        args.push("--peer".to_string());
        args.push(n.addr.clone());
    }
    args.extend([
        "--min-peers".to_string(),
        min_peers.to_string(),
        "--peer-wait".into(),
        "20s".into(),
    ]);
    args
}

/// A counter's value for the given label text (0 when absent).
fn metric(metrics: &str, prefix: &str) -> u64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[test]
fn five_nodes_boot_at_once_and_the_hub_sends_each_block_about_once() {
    let farm = farm();
    let f = release_bytes(&farm.hub_dir);
    let hub = Hub::start_rated(&farm.hub_dir, Some("100mbit"));
    let nodes_dir = farm.dir.path().join("nodes");
    let mut nodes: Vec<Node> = Vec::new();
    for i in 0..5 {
        let extra = peer_args(&nodes, 4);
        nodes.push(Node::start(
            &nodes_dir,
            &format!("n{i}"),
            &hub.url,
            &farm.trust,
            &extra,
        ));
    }
    wait_booted(&mut nodes);
    let egress = hub.egress();
    let ratio = egress as f64 / f as f64;
    eprintln!("F = {f} bytes, hub egress = {egress} bytes = {ratio:.3} x F");
    for n in &nodes {
        let s = n.status();
        eprintln!(
            "{} booted after {:?} s: {} from the hub, {} from peers, {} served, {} peers",
            n.peer_id,
            n.booted,
            s["bytes_from_hub"],
            s["bytes_from_peers"],
            s["bytes_served"],
            s["peers"]
        );
        assert_eq!(s["booted"], true);
        assert_eq!(s["release"]["seq"], 1);
        assert_eq!(s["progress"]["have_bytes"], s["progress"]["total_bytes"]);
        assert_tree_matches(&n.root.join("current"), &farm.packages);
    }
    let served: u64 = nodes
        .iter()
        .map(|n| n.status()["bytes_served"].as_u64().unwrap())
        .sum();
    assert!(served > f, "peers served only {served} bytes");
    assert!(
        ratio <= 1.1,
        "hub egress {egress} is {ratio:.3} x F ({f}); expected at most 1.1 x F"
    );
}

#[test]
fn with_the_hub_stopped_new_nodes_boot_from_peers_alone() {
    let farm = farm();
    let mut hub = Hub::start_rated(&farm.hub_dir, Some("1gbit"));
    let nodes_dir = farm.dir.path().join("nodes");
    let mut first: Vec<Node> = Vec::new();
    for i in 0..2 {
        let extra = peer_args(&first, 1);
        first.push(Node::start(
            &nodes_dir,
            &format!("a{i}"),
            &hub.url,
            &farm.trust,
            &extra,
        ));
    }
    wait_booted(&mut first);
    hub.stop();

    let mut later: Vec<Node> = Vec::new();
    for i in 0..3 {
        let mut known: Vec<&Node> = first.iter().collect();
        known.extend(later.iter());
        let mut extra = Vec::new();
        for n in &known {
            extra.push("--peer".to_string());
            extra.push(n.addr.clone());
        }
        extra.extend([
            "--min-peers".into(),
            "2".into(),
            "--peer-wait".into(),
            "20s".into(),
        ]);
        later.push(Node::start(
            &nodes_dir,
            &format!("b{i}"),
            &hub.url,
            &farm.trust,
            &extra,
        ));
    }
    wait_booted(&mut later);
    // SIGTERM: a clean shutdown with exit status 0.
    let pid = later[0].child.id().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = later[0].child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "node ignored SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "exit after SIGTERM: {status}");
    // Restarted alone with the hub still down, it boots from its own store and saved release.
    let mut again = vec![Node::start(&nodes_dir, "b0", &hub.url, &farm.trust, &[])];
    wait_booted(&mut again);
    let s = again[0].status();
    assert_eq!(s["release"]["seq"], 1, "{s}");
    assert_eq!(s["bytes_from_hub"], 0, "{s}");
    assert_eq!(s["bytes_from_peers"], 0, "{s}");
    assert_tree_matches(&again[0].root.join("current"), &farm.packages);
    for n in &later[1..] {
        let s = n.status();
        assert_eq!(s["booted"], true);
        assert_eq!(s["bytes_from_hub"], 0, "{s}");
        assert!(s["bytes_from_peers"].as_u64().unwrap() > 0);
        assert_tree_matches(&n.root.join("current"), &farm.packages);
    }
}

#[test]
fn a_corrupt_peer_is_rejected_and_penalised_and_the_others_boot_anyway() {
    let farm = farm();
    let hub = Hub::start_rated(&farm.hub_dir, Some("200mbit"));
    let nodes_dir = farm.dir.path().join("nodes");
    // The corrupt node boots first, so it holds every block and is asked for them.
    let mut bad = vec![Node::start(
        &nodes_dir,
        "corrupt",
        &hub.url,
        &farm.trust,
        &["--test-corrupt-serving".to_string()],
    )];
    wait_booted(&mut bad);
    let bad_id = bad[0].peer_id.clone();

    let mut honest: Vec<Node> = Vec::new();
    for i in 0..3 {
        let mut extra = vec!["--peer".to_string(), bad[0].addr.clone()];
        for n in &honest {
            extra.push("--peer".to_string());
            extra.push(n.addr.clone());
        }
        extra.extend([
            "--min-peers".into(),
            "3".into(),
            "--peer-wait".into(),
            "20s".into(),
        ]);
        honest.push(Node::start(
            &nodes_dir,
            &format!("h{i}"),
            &hub.url,
            &farm.trust,
            &extra,
        ));
    }
    wait_booted(&mut honest);

    let mut rejected_from_bad = 0;
    let mut penalties_of_bad = 0;
    for n in &honest {
        assert_tree_matches(&n.root.join("current"), &farm.packages);
        let s = n.status();
        let failures = s["verification_failures"].as_object().unwrap();
        for (source, count) in failures {
            assert_eq!(
                source, &bad_id,
                "{} rejected {count} block(s) from {source}, which is honest",
                n.peer_id
            );
            rejected_from_bad += count.as_u64().unwrap();
        }
        let m = n.metrics();
        penalties_of_bad += metric(
            &m,
            &format!("bootswarm_peer_penalties_total{{peer=\"{bad_id}\"}}"),
        );
    }
    eprintln!("rejected from the corrupt node: {rejected_from_bad}, penalties: {penalties_of_bad}");
    assert!(rejected_from_bad > 0, "no node ever asked the corrupt node");
    assert!(penalties_of_bad > 0, "the corrupt node was never penalised");
    let banned_by = honest
        .iter()
        .filter(|n| {
            n.status()["banned"]
                .as_array()
                .is_some_and(|b| b.iter().any(|p| p == &serde_json::json!(bad_id)))
        })
        .count();
    assert!(banned_by > 0, "no honest node banned the corrupt node");
}

#[test]
fn one_shot_boot_through_the_swarm_exits_after_materialising() {
    let farm = farm();
    let mut hub = Hub::start_rated(&farm.hub_dir, Some("1gbit"));
    let nodes_dir = farm.dir.path().join("nodes");
    let mut seed = vec![Node::start(&nodes_dir, "seed", &hub.url, &farm.trust, &[])];
    wait_booted(&mut seed);
    hub.stop();
    // The hub is gone: the release and every block come from the seed.
    let dir = farm.dir.path().join("oneshot");
    fs::create_dir_all(&dir).unwrap();
    let into = dir.join("root");
    let out = run(&[
        "boot",
        "--hub",
        &hub.url,
        "--channel",
        CHANNEL,
        "--trust",
        farm.trust.to_str().unwrap(),
        "--store",
        dir.join("store").to_str().unwrap(),
        "--into",
        into.to_str().unwrap(),
        "--listen",
        "/ip4/127.0.0.1/tcp/0",
        "--peer",
        &seed[0].addr,
        "--json",
    ]);
    assert!(out.status.success(), "boot failed: {}", stderr_of(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: serde_json::Value = stdout
        .lines()
        .find_map(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| panic!("no JSON report in {stdout:?}"));
    assert_eq!(report["hub_bytes"], 0, "{report}");
    assert!(report["peer_bytes"].as_u64().unwrap() > 0, "{report}");
    assert_tree_matches(&into, &farm.packages);
}

#[test]
fn run_start_up_errors_are_one_sentence() {
    let dir = tempfile::tempdir().unwrap();
    let (_, trust) = keygen(dir.path(), "k");
    let trust = trust.to_str().unwrap().to_string();
    let store = dir.path().join("store").to_str().unwrap().to_string();
    let base = |extra: &[&str]| {
        let mut args = vec![
            "run",
            "--hub",
            "http://127.0.0.1:9",
            "--channel",
            CHANNEL,
            "--trust",
            &trust,
            "--store",
            &store,
        ];
        args.extend_from_slice(extra);
        run(&args)
    };
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port();

    assert_one_sentence(
        &base(&["--peer", "not-a-multiaddr"]),
        "not a valid multiaddr",
    );
    assert_one_sentence(
        &base(&["--listen", &format!("/ip4/127.0.0.1/tcp/{port}")]),
        "cannot listen on",
    );
    assert_one_sentence(
        &base(&[
            "--listen",
            "/ip4/127.0.0.1/tcp/0",
            "--http",
            &format!("127.0.0.1:{port}"),
        ]),
        "cannot listen on --http",
    );
    assert_one_sentence(&base(&["--http", "nowhere"]), "--http");
    assert_one_sentence(
        &base(&["--http", "0.0.0.0:0"]),
        "is not a loopback address and would open /status, /metrics and /v1/announce to the network; use 127.0.0.1:0 or add --http-public",
    );

    let bad_trust = dir.path().join("bad.trust");
    fs::write(&bad_trust, "ed25519 zz\n").unwrap();
    let out = run(&[
        "run",
        "--hub",
        "http://127.0.0.1:9",
        "--channel",
        CHANNEL,
        "--trust",
        bad_trust.to_str().unwrap(),
        "--store",
        &store,
    ]);
    assert_one_sentence(&out, "bad.trust");

    let file_store = dir.path().join("a-file");
    fs::write(&file_store, b"x").unwrap();
    let out = run(&[
        "run",
        "--hub",
        "http://127.0.0.1:9",
        "--channel",
        CHANNEL,
        "--trust",
        &trust,
        "--store",
        file_store.to_str().unwrap(),
    ]);
    assert_one_sentence(&out, "a-file");
    drop(busy);
}

#[test]
fn a_new_release_reaches_a_running_node_by_gossip() {
    let farm = farm();
    let hub = Hub::start_rated(&farm.hub_dir, Some("1gbit"));
    let nodes_dir = farm.dir.path().join("nodes");
    let poll = |every: &str| vec!["--poll-interval".to_string(), every.to_string()];
    let mut nodes = vec![Node::start(
        &nodes_dir,
        "poller",
        &hub.url,
        &farm.trust,
        &poll("1s"),
    )];
    let mut extra = peer_args(&nodes, 1);
    extra.extend(poll("1h"));
    nodes.push(Node::start(
        &nodes_dir,
        "listener",
        &hub.url,
        &farm.trust,
        &extra,
    ));
    wait_booted(&mut nodes);

    // Seq 2: one package changes. Only the poller asks the hub; the listener polls hourly.
    let gamma = farm.packages.iter().find(|p| p.ends_with("gamma")).unwrap();
    fs::write(gamma.join("new-file"), noise(999, 300_000)).unwrap();
    let key = farm.dir.path().join("publisher.key");
    publish(&farm.hub_dir, &key, CHANNEL, &farm.packages);

    let deadline = Instant::now() + BOOT_TIMEOUT;
    loop {
        let s = nodes[1].status();
        if s["release"]["seq"] == 2 && s["booted"] == true {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the listener never upgraded: {s}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_tree_matches(&nodes[1].root.join("current"), &farm.packages);
}

/// Waits until `check` holds, at most `limit`.
fn wait_for(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    check()
}

#[test]
fn a_host_without_the_swarm_key_cannot_connect_and_is_counted() {
    let farm = farm();
    let hub = Hub::start_rated(&farm.hub_dir, Some("1gbit"));
    let base = farm.dir.path();
    let (key, other_key) = (base.join("swarm.key"), base.join("other.key"));
    for k in [&key, &other_key] {
        let out = run(&["keygen", "--swarm-key", k.to_str().unwrap()]);
        assert!(out.status.success(), "{}", stderr_of(&out));
    }
    let with = |k: &Path, to: &Node| {
        vec![
            "--swarm-key".to_string(),
            k.to_str().unwrap().to_string(),
            "--peer".into(),
            to.addr.clone(),
        ]
    };
    let nodes_dir = base.join("nodes");
    let key_arg = ["--swarm-key".to_string(), key.to_str().unwrap().to_string()];
    let a = Node::start(&nodes_dir, "a", &hub.url, &farm.trust, &key_arg);
    let mut b_args = with(&key, &a);
    b_args.extend([
        "--min-peers".into(),
        "1".into(),
        "--peer-wait".into(),
        "20s".into(),
    ]);
    let b = Node::start(&nodes_dir, "b", &hub.url, &farm.trust, &b_args);
    let keyless = ["--peer".to_string(), a.addr.clone()];
    let c = Node::start(&nodes_dir, "c", &hub.url, &farm.trust, &keyless);
    let d = Node::start(
        &nodes_dir,
        "d",
        &hub.url,
        &farm.trust,
        &with(&other_key, &a),
    );

    let refused = |n: &Node| metric(&n.metrics(), "bootswarm_handshakes_refused_total");
    // c and d dial a at start and again every 5 s: each attempt is refused.
    assert!(
        wait_for(Duration::from_secs(30), || refused(&a) >= 2),
        "a counted {} refusals",
        refused(&a)
    );
    assert!(
        wait_for(Duration::from_secs(30), || a.status()["peers"] == 1
            && b.status()["peers"] == 1),
        "a and b, holding the key, connect: {} {}",
        a.status(),
        b.status()
    );
    for n in [&c, &d] {
        assert_eq!(n.status()["peers"], 0, "{}", n.status());
    }
    assert!(
        wait_for(Duration::from_secs(30), || refused(&d) >= 1),
        "d's key is not a's: {}",
        d.metrics()
    );
    assert_eq!(a.status()["peers"], 1, "still only b: {}", a.status());
    assert_eq!(b.status()["handshakes_refused"], 0, "{}", b.status());
}

/// A peer gossiping forged releases 20 times a second is graylisted by gossip scoring after
/// a couple of rejections: the honest node stops judging its messages, yet stays connected.
#[test]
fn a_flooder_of_forged_releases_is_graylisted() {
    let farm = farm();
    let hub = Hub::start_rated(&farm.hub_dir, Some("1gbit"));
    let nodes_dir = farm.dir.path().join("nodes");
    let a = Node::start(&nodes_dir, "a", &hub.url, &farm.trust, &[]);
    let flood = [
        "--peer".to_string(),
        a.addr.clone(),
        "--test-forge-flood".into(),
        "20".into(),
    ];
    let _flooder = Node::start(&nodes_dir, "f", &hub.url, &farm.trust, &flood);
    let refused = || metric(&a.metrics(), "bootswarm_releases_refused_total");
    assert!(
        wait_for(Duration::from_secs(30), || refused() >= 1),
        "no forged release reached a: {}",
        a.metrics()
    );
    // Messages already on their way when the score fell may still be judged; then none.
    std::thread::sleep(Duration::from_secs(2));
    let (before, since) = (refused(), Instant::now());
    std::thread::sleep(Duration::from_secs(5));
    let after = refused();
    let sent = 20.0 * since.elapsed().as_secs_f64();
    eprintln!("refused {before} then {after} while about {sent:.0} more were sent");
    assert!(
        before <= 10,
        "{before} forged releases judged before the graylist"
    );
    assert!(
        after - before <= 1,
        "{} more judged in {:.1} s",
        after - before,
        since.elapsed().as_secs_f64()
    );
    assert_eq!(a.status()["peers"], 1, "graylisted, not disconnected");
}

/// The `booted` seconds of the slowest node.
fn slowest(nodes: &[Node]) -> f64 {
    nodes
        .iter()
        .map(|n| n.booted.expect("booted"))
        .fold(0.0, f64::max)
}

/// Two healthy nodes, the second dialling the first and `others`; returns them booted.
fn two_healthy(farm: &Farm, hub: &str, dir: &Path, others: &[Node]) -> Vec<Node> {
    let mut healthy: Vec<Node> = Vec::new();
    for i in 0..2 {
        let mut peers: Vec<&Node> = others.iter().collect();
        peers.extend(healthy.iter());
        let mut extra: Vec<String> = peers
            .iter()
            .flat_map(|n| ["--peer".to_string(), n.addr.clone()])
            .collect();
        extra.extend([
            "--min-peers".into(),
            peers.len().to_string(),
            "--peer-wait".into(),
            "20s".into(),
        ]);
        healthy.push(Node::start(
            dir,
            &format!("ok{i}"),
            hub,
            &farm.trust,
            &extra,
        ));
    }
    wait_booted(&mut healthy);
    for n in &healthy {
        assert_tree_matches(&n.root.join("current"), &farm.packages);
    }
    healthy
}

/// Issue 10's bound: on 2 cores (release build) the healthy nodes took 4.92-5.57 s next to 8
/// broken members against 4.67-4.70 s alone (1.05-1.19 x in three runs) since failed hub
/// fetches go to the owners ranked next, owners backing off pass their due manifests on, and
/// owners that cannot reach the hub resign (1.24-1.35 x without passing on); 4-6 x before, 14 x before deposed owners' announcements stopped counting and a manifest's owner
/// was judged without a yardstick, and they had not booted after 120 s before the byzantine
/// rules. `scenarios/byzantine-10-hub-unreachable.toml` is the same farm in the simulator.
/// Run it with `cargo test --release -p bootswarm-node --test swarm -- --ignored`.
#[test]
#[ignore = "a wall-clock ratio on a shared machine; run with --ignored"]
fn healthy_nodes_boot_next_to_peers_whose_hub_route_is_broken() {
    let farm = farm();
    let hub = Hub::start_rated(&farm.hub_dir, Some("50mbit"));
    let alone = two_healthy(&farm, &hub.url, &farm.dir.path().join("alone"), &[]);
    let t_alone = slowest(&alone);
    drop(alone);

    // Eight members whose --hub goes nowhere: they learn the release by gossip, own blocks
    // they can never fetch, and relay what they get.
    let dir = farm.dir.path().join("broken");
    let mut broken: Vec<Node> = Vec::new();
    for i in 0..8 {
        let extra: Vec<String> = broken
            .first()
            .map(|n| vec!["--peer".to_string(), n.addr.clone()])
            .unwrap_or_default();
        broken.push(Node::start(
            &dir,
            &format!("b{i}"),
            "http://127.0.0.1:9",
            &farm.trust,
            &extra,
        ));
    }
    let healthy = two_healthy(&farm, &hub.url, &dir, &broken);
    let t_with = slowest(&healthy);
    let ratio = t_with / t_alone;
    eprintln!("alone {t_alone:.2} s, next to 8 broken members {t_with:.2} s = {ratio:.2} x");
    assert!(
        ratio <= 1.5,
        "healthy nodes took {t_with:.2} s next to broken members, {ratio:.2} x their {t_alone:.2} s alone"
    );
}

#[test]
fn a_withholding_peer_and_a_corrupt_peer_are_banned_and_the_honest_nodes_boot() {
    let farm = farm();
    let hub = Hub::start_rated(&farm.hub_dir, Some("200mbit"));
    let dir = farm.dir.path().join("nodes");
    let mut bad = vec![
        Node::start(
            &dir,
            "withhold",
            &hub.url,
            &farm.trust,
            &["--test-withhold".into()],
        ),
        Node::start(
            &dir,
            "corrupt",
            &hub.url,
            &farm.trust,
            &["--test-corrupt-serving".into()],
        ),
    ];
    wait_booted(&mut bad);
    let bad_ids: Vec<String> = bad.iter().map(|n| n.peer_id.clone()).collect();
    let mut honest: Vec<Node> = Vec::new();
    for i in 0..3 {
        let mut extra: Vec<String> = bad
            .iter()
            .chain(honest.iter())
            .flat_map(|n| ["--peer".to_string(), n.addr.clone()])
            .collect();
        extra.extend([
            "--min-peers".into(),
            (2 + i).to_string(),
            "--peer-wait".into(),
            "20s".into(),
        ]);
        honest.push(Node::start(
            &dir,
            &format!("h{i}"),
            &hub.url,
            &farm.trust,
            &extra,
        ));
    }
    wait_booted(&mut honest);
    let banned_by = |id: &str| {
        honest
            .iter()
            .filter(|n| {
                n.status()["banned"]
                    .as_array()
                    .is_some_and(|b| b.iter().any(|p| p == id))
            })
            .count()
    };
    for n in &honest {
        assert_tree_matches(&n.root.join("current"), &farm.packages);
        assert_eq!(banned_by(&n.peer_id), 0, "honest {} was banned", n.peer_id);
    }
    // Requests the withholder was asked for and outrun on are judged at their deadline, which
    // may come after a quick boot.
    for (id, what) in bad_ids.iter().zip(["withholding", "corrupt"]) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut by = banned_by(id);
        while by == 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(200));
            by = banned_by(id);
        }
        eprintln!("the {what} peer was banned by {by} of 3 honest nodes");
        assert!(by > 0, "no honest node banned the {what} peer {id}");
    }
}
