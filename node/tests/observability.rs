//! What an operator sees: the farm page in a real browser (headless Chromium) against a farm of
//! real `bootswarm run` processes on 127.0.0.1, the `/metrics` contract of `docs/metrics.md`,
//! and the Grafana dashboard in `dist/grafana/`.
//!
//! The browser test skips with one message when Chromium is not installed, unless
//! `BOOTSWARM_BROWSER_REQUIRED=1` (CI), where a missing browser fails it.

mod boot_common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use boot_common::*;

/// Ceiling for every wait (a loaded 2-core machine is slow, never wrong).
const CEILING: Duration = Duration::from_secs(180);
/// Nodes in the test farm.
const NODES: usize = 3;

fn repo_file(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

/// POSTs `body` and returns the status line and the body.
fn http_post(addr: &str, path: &str, body: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    s.write_all(body).unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    resp
}

/// One `bootswarm run` process, killed on drop.
struct Node {
    child: Child,
    lines: mpsc::Receiver<String>,
    addr: String,
    peer_id: String,
    http: String,
    booted: bool,
}

impl Node {
    fn start(dir: &Path, hub: &str, trust: &Path, earlier: &[Node]) -> Node {
        fs::create_dir_all(dir).unwrap();
        let mut cmd = Command::new(bin());
        cmd.args(["run", "--hub", hub, "--channel", CHANNEL])
            .arg("--trust")
            .arg(trust)
            .arg("--store")
            .arg(dir.join("store"))
            .arg("--into")
            .arg(dir.join("root"))
            .args(["--listen", "/ip4/127.0.0.1/tcp/0", "--http", "127.0.0.1:0"])
            .args([
                "--min-peers",
                &(NODES - 1).to_string(),
                "--peer-wait",
                "30s",
            ])
            .env("BOOTSWARM_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for n in earlier {
            cmd.args(["--peer", &n.addr]);
        }
        let mut child = cmd.spawn().expect("start node");
        let lines = stdout_lines(&mut child);
        let mut node = Node {
            child,
            lines,
            addr: String::new(),
            peer_id: String::new(),
            http: String::new(),
            booted: false,
        };
        let deadline = Instant::now() + CEILING;
        while node.addr.is_empty() || node.http.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = node
                .lines
                .recv_timeout(left)
                .expect("the node printed its listening and http lines");
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
        } else if line.starts_with("booted ") {
            self.booted = true;
        }
    }

    fn status(&self) -> serde_json::Value {
        let body = http_get(&self.http, "/status");
        serde_json::from_str(body.trim()).unwrap_or_else(|e| panic!("/status {body:?}: {e}"))
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A booted farm: a hub, `NODES` nodes that found each other, every one booted and every
/// one's farm view counting all of them booted.
struct Farm {
    _dir: tempfile::TempDir,
    _hub: Hub,
    nodes: Vec<Node>,
}

fn booted_farm() -> Farm {
    let dir = tempfile::tempdir().unwrap();
    let packages = make_packages(&dir.path().join("pkgs"));
    let (key, trust) = keygen(dir.path(), "publisher.key");
    let hub_dir = dir.path().join("hub");
    publish(&hub_dir, &key, CHANNEL, &packages);
    let hub = Hub::start_rated(&hub_dir, Some("200mbit"));
    let mut nodes: Vec<Node> = Vec::new();
    for i in 0..NODES {
        let node = Node::start(&dir.path().join(format!("n{i}")), &hub.url, &trust, &nodes);
        nodes.push(node);
    }
    let deadline = Instant::now() + CEILING;
    for (i, node) in nodes.iter_mut().enumerate() {
        while !node.booted {
            let left = deadline.saturating_duration_since(Instant::now());
            match node.lines.recv_timeout(left) {
                Ok(line) => node.take_line(&line),
                Err(_) => panic!("node {i} did not boot; status: {}", node.status()),
            }
        }
    }
    let everyone = |n: &Node| {
        let farm = &n.status()["farm"];
        farm["nodes"] == NODES && farm["booted"] == NODES
    };
    while !nodes.iter().all(everyone) {
        assert!(
            Instant::now() < deadline,
            "the farm views never counted {NODES} booted nodes: {}",
            nodes[0].status()["farm"]
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    Farm {
        _dir: dir,
        _hub: hub,
        nodes,
    }
}

// ----- the metrics contract -----

/// One documented series: type and labels.
#[derive(Debug, PartialEq, Eq)]
struct Series {
    kind: String,
    labels: BTreeSet<String>,
}

/// The table of `docs/metrics.md`.
fn documented() -> BTreeMap<String, Series> {
    let text = fs::read_to_string(repo_file("docs/metrics.md")).expect("docs/metrics.md");
    let mut out = BTreeMap::new();
    for line in text.lines().filter(|l| l.starts_with("| `bootswarm_")) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let name = cells[1].trim_matches('`').to_string();
        let labels = cells[3]
            .split(',')
            .map(|l| l.trim().trim_matches('`').to_string())
            .filter(|l| !l.is_empty() && l != "—")
            .collect();
        let series = Series {
            kind: cells[2].to_string(),
            labels,
        };
        assert!(
            out.insert(name.clone(), series).is_none(),
            "{name} is documented twice"
        );
    }
    assert!(
        out.len() >= 10,
        "docs/metrics.md lists only {} series",
        out.len()
    );
    out
}

/// The families of a `/metrics` text: type, and every label name any sample carries.
fn exported(text: &str) -> BTreeMap<String, Series> {
    let mut out: BTreeMap<String, Series> = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest
                .split_once(' ')
                .expect("a TYPE line has a name and a type");
            out.insert(
                name.to_string(),
                Series {
                    kind: kind.to_string(),
                    labels: BTreeSet::new(),
                },
            );
        } else if !line.starts_with('#') && !line.is_empty() {
            let name_end = line.find(['{', ' ']).expect("a sample has a value");
            let family = out
                .get_mut(&line[..name_end])
                .unwrap_or_else(|| panic!("sample without a TYPE line: {line}"));
            if let Some(body) = line[name_end..].strip_prefix('{') {
                let body = &body[..body.rfind('}').expect("closed labels")];
                for pair in body.split("\",") {
                    let key = pair.split_once('=').expect("label=value").0;
                    family
                        .labels
                        .insert(key.trim_start_matches(',').to_string());
                }
            }
            let value = line.rsplit(' ').next().unwrap();
            assert!(value.parse::<f64>().is_ok(), "not a number: {line}");
        }
    }
    out
}

/// Names and types exported equal the documented ones, both ways, and no sample carries an
/// undocumented label. (The unit test in `daemon/http.rs` fills every label in and checks the
/// label sets are equal.)
fn check_contract(metrics: &str) {
    let doc = documented();
    let got = exported(metrics);
    let doc_names: BTreeSet<&String> = doc.keys().collect();
    let got_names: BTreeSet<&String> = got.keys().collect();
    let undocumented: Vec<_> = got_names.difference(&doc_names).collect();
    let missing: Vec<_> = doc_names.difference(&got_names).collect();
    assert!(
        undocumented.is_empty() && missing.is_empty(),
        "exported but not in docs/metrics.md: {undocumented:?}; documented but not exported: {missing:?}"
    );
    for (name, series) in &got {
        let d = &doc[name];
        assert_eq!(series.kind, d.kind, "{name}: exported type vs documented");
        assert!(
            series.labels.is_subset(&d.labels),
            "{name}: labels {:?} exported, {:?} documented",
            series.labels,
            d.labels
        );
    }
}

#[test]
fn the_grafana_dashboard_uses_only_documented_series() {
    let doc = documented();
    let text = fs::read_to_string(repo_file("dist/grafana/bootswarm.json")).expect("the dashboard");
    let json: serde_json::Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    let mut queries = Vec::new();
    collect_queries(&json, &mut queries);
    assert!(queries.len() >= 10, "only {} queries", queries.len());
    let mut used = BTreeSet::new();
    for q in &queries {
        let names = metric_names(q);
        assert!(!names.is_empty(), "a query without a bootswarm series: {q}");
        for name in names {
            assert!(
                doc.contains_key(&name),
                "{name} (in `{q}`) is not in docs/metrics.md"
            );
            used.insert(name);
        }
    }
    eprintln!(
        "the dashboard uses {} of {} documented series",
        used.len(),
        doc.len()
    );
}

/// Every `expr` and templating `query` string of a dashboard.
fn collect_queries(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("expr" | "query", serde_json::Value::String(s)) if s != "prometheus" => {
                        out.push(s.clone());
                    }
                    _ => collect_queries(v, out),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|i| collect_queries(i, out)),
        _ => {}
    }
}

/// The `bootswarm_*` identifiers of a PromQL expression.
fn metric_names(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = expr;
    while let Some(i) = rest.find("bootswarm_") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        names.push(tail[..end].to_string());
        rest = &tail[end..];
    }
    names
}

// ----- the browser -----

/// A line on stderr that the test harness does not capture (it captures only the print
/// macros), so a skip or the screenshot's path shows in every run's log.
fn say(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// Debian's Chromium, if installed.
fn chromium() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    ["chromium", "chromium-browser"].iter().find_map(|name| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    })
}

/// Runs headless Chromium on `url` with `args`; returns its stdout.
fn browse(browser: &Path, profile: &Path, url: &str, args: &[&str]) -> String {
    let mut child = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--hide-scrollbars",
            "--virtual-time-budget=15000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromium");
    let mut out = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + CEILING;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "chromium {args:?} exited with {status}");
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium {args:?} did not finish in {CEILING:?}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    reader.join().unwrap()
}

/// The text inside the element with `id` (the first text node after its opening tag).
fn element<'a>(dom: &'a str, id: &str) -> &'a str {
    let at = dom
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no #{id} in the page"));
    let open = &dom[at..];
    let start = open.find('>').unwrap() + 1;
    let end = open[start..].find('<').unwrap();
    &open[start..start + end]
}

/// The value of `attr` on the element with `id`.
fn attribute<'a>(dom: &'a str, id: &str, attr: &str) -> &'a str {
    let at = dom.find(&format!("id=\"{id}\"")).unwrap();
    let tag = &dom[dom[..at].rfind('<').unwrap()..];
    let tag = &tag[..tag.find('>').unwrap()];
    let key = format!("{attr}=\"");
    let start = tag
        .find(&key)
        .unwrap_or_else(|| panic!("#{id} has no {attr}: {tag}"))
        + key.len();
    &tag[start..start + tag[start..].find('"').unwrap()]
}

#[test]
fn the_farm_page_shows_the_farm_in_a_browser_and_metrics_match_their_documentation() {
    let required = std::env::var("BOOTSWARM_BROWSER_REQUIRED").is_ok_and(|v| v == "1");
    let browser = chromium();
    if browser.is_none() && required {
        panic!(
            "BOOTSWARM_BROWSER_REQUIRED=1 but chromium is not installed (apt-get install chromium)"
        );
    }
    let farm = booted_farm();
    let node = &farm.nodes[0];
    check_contract(&http_get(&node.http, "/metrics"));

    let page = http_get(&node.http, "/");
    assert!(page.contains("<html") && page.contains("fetch(\"status\""));
    for external in [
        "src=\"http",
        "href=\"http",
        "src=\"//",
        "href=\"//",
        "@import",
    ] {
        assert!(
            !page.contains(external),
            "the page loads an external asset: {external}"
        );
    }

    let Some(browser) = browser else {
        say(
            "SKIPPED the farm page's browser checks: chromium is not installed \
             (apt-get install chromium; BOOTSWARM_BROWSER_REQUIRED=1 makes this a failure)",
        );
        return;
    };
    // An operator hands over something that is not a release: the page lists the refusal.
    let answer = http_post(&node.http, "/v1/announce", b"not a signed release");
    assert!(answer.starts_with("HTTP/1.1 422"), "{answer}");
    // The snapshot behind /status is refreshed after the answer: wait for it.
    let deadline = Instant::now() + CEILING;
    let status = loop {
        let status = node.status();
        if status["recent_refusals"][0].is_object() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the refusal is not in /status: {status}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(status["recent_refusals"][0]["via"], "operator", "{status}");
    let kind = status["recent_refusals"][0]["kind"]
        .as_str()
        .unwrap()
        .to_string();
    let url = format!("http://{}/", node.http);
    let profile = tempfile::tempdir().unwrap();
    let dom = browse(&browser, profile.path(), &url, &["--dump-dom"]);
    assert!(
        dom.contains("data-loaded=\"1\""),
        "the page never read /status:\n{dom}"
    );
    assert_eq!(attribute(&dom, "release-seq", "data-seq"), "1");
    assert_eq!(element(&dom, "release-seq"), "seq 1");
    assert!(
        element(&dom, "state").starts_with("booted"),
        "{}",
        element(&dom, "state")
    );
    assert_eq!(
        element(&dom, "farm-booted"),
        format!("{NODES} of {NODES} booted on seq 1")
    );
    for other in &farm.nodes[1..] {
        assert!(
            dom.contains(&format!("class=\"peer\" data-peer=\"{}\"", other.peer_id)),
            "peer {} is not listed",
            other.peer_id
        );
    }
    let hub_bytes = status["bytes_from_hub"].as_u64().unwrap();
    assert_eq!(
        attribute(&dom, "bytes-hub", "data-bytes"),
        hub_bytes.to_string()
    );
    let f = status["progress"]["total_bytes"].as_u64().unwrap();
    assert_eq!(
        attribute(&dom, "farm-hub", "data-release-bytes"),
        f.to_string()
    );
    let farm_hub: u64 = attribute(&dom, "farm-hub", "data-hub-bytes")
        .parse()
        .unwrap();
    assert!(
        farm_hub >= f,
        "the farm took {farm_hub} hub bytes for F = {f}"
    );
    assert!(element(&dom, "farm-hub").contains("× F"));
    let store: u64 = attribute(&dom, "store", "data-bytes").parse().unwrap();
    assert!(store > 0, "the store's size is shown");
    assert!(
        element(&dom, "store").ends_with("(no quota)"),
        "{}",
        element(&dom, "store")
    );
    let refusals = &dom[dom.find("id=\"refusals\"").unwrap()..];
    assert!(
        refusals.contains(&format!(">{kind}<")) && refusals.contains(">operator<"),
        "the refusal is not listed"
    );

    let shot = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("farm-page.png");
    let _ = fs::remove_file(&shot);
    browse(
        &browser,
        profile.path(),
        &url,
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1280,1500",
        ],
    );
    let png = fs::read(&shot).expect("chromium wrote the screenshot");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "{} bytes",
        png.len()
    );
    say(&format!("farm page screenshot: {}", shot.display()));
}
