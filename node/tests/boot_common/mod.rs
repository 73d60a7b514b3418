//! Helpers shared by the boot and demo process tests: packages, keys, a hub process, a
//! tree walk, the hub's stats and a child's stdout lines. Everything runs the real binary on 127.0.0.1.

#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

pub const CHANNEL: &str = "stable";

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_bootswarm")
}

pub fn run(args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run bootswarm")
}

pub fn stderr_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The command failed with exactly one line on stderr, `error: ...`, containing `needle`.
pub fn assert_one_sentence(out: &Output, needle: &str) {
    let err = stderr_of(out);
    assert!(!out.status.success(), "expected failure, stderr: {err}");
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected one line on stderr, got: {err}");
    assert!(lines[0].starts_with("error: "), "stderr: {err}");
    assert!(
        lines[0].contains(needle),
        "stderr should name {needle:?}: {err}"
    );
}

fn write_mode(path: &Path, bytes: &[u8], mode: u32) {
    fs::write(path, bytes).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

fn mkdir_mode(path: &Path, mode: u32) {
    fs::create_dir_all(path).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// Deterministic incompressible bytes.
pub fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Two packages with multi-chunk files, a shared file, modes, nested and empty directories,
/// relative, absolute and dangling symlinks and empty files.
pub fn make_packages(dir: &Path) -> Vec<PathBuf> {
    let alpha = dir.join("alpha");
    mkdir_mode(&alpha.join("bin"), 0o755);
    write_mode(
        &alpha.join("bin/tool"),
        &noise(1, 9 * 1024 * 1024 + 123),
        0o755,
    );
    std::os::unix::fs::symlink("tool", alpha.join("bin/tool-alias")).unwrap();
    mkdir_mode(&alpha.join("etc"), 0o750);
    write_mode(
        &alpha.join("etc/secret.conf"),
        b"password = hunter2\n",
        0o600,
    );
    write_mode(&alpha.join("etc/empty"), b"", 0o644);
    std::os::unix::fs::symlink("/etc/hostname", alpha.join("etc/hostname")).unwrap();
    std::os::unix::fs::symlink("../nowhere", alpha.join("etc/dangling")).unwrap();
    mkdir_mode(&alpha.join("var/lib/alpha"), 0o700);
    mkdir_mode(&alpha.join("share/doc/a/b/c"), 0o755);
    write_mode(&alpha.join("share/doc/a/b/c/deep.txt"), b"deep\n", 0o444);
    write_mode(
        &alpha.join("share/shared.bin"),
        &noise(7, 700 * 1024),
        0o644,
    );
    write_mode(&alpha.join("bin/setuid-ish"), &noise(3, 1), 0o4755);

    let beta = dir.join("beta");
    mkdir_mode(&beta.join("lib"), 0o755);
    write_mode(
        &beta.join("lib/libbeta.so.1"),
        &noise(2, 2 * 1024 * 1024 + 5),
        0o644,
    );
    std::os::unix::fs::symlink("libbeta.so.1", beta.join("lib/libbeta.so")).unwrap();
    // The same bytes as in alpha: stored and sent once.
    write_mode(&beta.join("shared.bin"), &noise(7, 700 * 1024), 0o640);
    mkdir_mode(&beta.join("empty-dir"), 0o755);
    vec![alpha, beta]
}

pub fn keygen(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let key = dir.join(name);
    let out = run(&["keygen", "--out", key.to_str().unwrap()]);
    assert!(out.status.success(), "keygen: {}", stderr_of(&out));
    let public = PathBuf::from(format!("{}.pub", key.display()));
    assert!(public.is_file(), "keygen wrote no {}", public.display());
    (key, public)
}

pub fn publish(hub_dir: &Path, key: &Path, channel: &str, packages: &[PathBuf]) {
    let mut args = vec![
        "publish".to_string(),
        "--hub-dir".into(),
        hub_dir.display().to_string(),
        "--channel".into(),
        channel.into(),
        "--key".into(),
        key.display().to_string(),
    ];
    args.extend(packages.iter().map(|p| p.display().to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run(&args);
    assert!(out.status.success(), "publish: {}", stderr_of(&out));
}

/// A `bootswarm hub serve` process on 127.0.0.1, killed on drop.
pub struct Hub {
    child: Child,
    pub url: String,
}

impl Hub {
    pub fn start(dir: &Path) -> Hub {
        Hub::start_rated(dir, None)
    }

    /// A hub whose egress is throttled to `rate` (e.g. "100mbit"), if given.
    pub fn start_rated(dir: &Path, rate: Option<&str>) -> Hub {
        let mut cmd = Command::new(bin());
        cmd.args(["hub", "serve", "--dir", dir.to_str().unwrap()])
            .args(["--listen", "127.0.0.1:0"]);
        if let Some(rate) = rate {
            cmd.args(["--rate", rate]);
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start hub");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap_or_else(|| panic!("hub printed no URL: {line:?}"))
            .trim_end_matches([',', '.', ')'])
            .to_string();
        Hub { child, url }
    }

    /// `egress_bytes` from the hub's /v1/stats.
    pub fn egress(&self) -> u64 {
        let addr = self.url.trim_start_matches("http://");
        let mut s = TcpStream::connect(addr).unwrap();
        write!(
            s,
            "GET /v1/stats HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut resp = String::new();
        s.read_to_string(&mut resp).unwrap();
        let body = resp.split("\r\n\r\n").nth(1).unwrap_or("");
        let v: serde_json::Value =
            serde_json::from_str(body.trim()).unwrap_or_else(|e| panic!("stats {resp:?}: {e}"));
        v["egress_bytes"].as_u64().unwrap()
    }
}

impl Hub {
    /// Stops the hub (as an outage would).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `bootswarm boot` with JSON output.
pub fn boot(hub: &str, channel: &str, trust: &Path, store: &Path, into: &Path) -> Output {
    run(&[
        "boot",
        "--hub",
        hub,
        "--channel",
        channel,
        "--trust",
        trust.to_str().unwrap(),
        "--store",
        store.to_str().unwrap(),
        "--into",
        into.to_str().unwrap(),
        "--no-progress",
        "--json",
    ])
}

pub fn report(out: &Output) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("report {stdout:?}: {e}"))
}

#[derive(Debug, PartialEq, Eq)]
pub enum Node {
    Dir { mode: u32 },
    File { mode: u32, bytes: Vec<u8> },
    Symlink { target: PathBuf },
}

/// Every entry below `root` (relative path -> kind, mode, content or link target).
pub fn walk(root: &Path) -> BTreeMap<PathBuf, Node> {
    let mut out = BTreeMap::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        for e in fs::read_dir(root.join(&rel)).unwrap() {
            let e = e.unwrap();
            let rel = rel.join(e.file_name());
            let path = root.join(&rel);
            let m = fs::symlink_metadata(&path).unwrap();
            let mode = m.permissions().mode() & 0o7777;
            let node = if m.file_type().is_symlink() {
                Node::Symlink {
                    target: fs::read_link(&path).unwrap(),
                }
            } else if m.is_dir() {
                stack.push(rel.clone());
                Node::Dir { mode }
            } else {
                Node::File {
                    mode,
                    bytes: fs::read(&path).unwrap(),
                }
            };
            out.insert(rel, node);
        }
    }
    out
}

/// `target/<package name>` equals each package, and target holds nothing else.
pub fn assert_tree_matches(target: &Path, packages: &[PathBuf]) {
    let mut names: Vec<_> = fs::read_dir(target)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    let mut expected: Vec<_> = packages
        .iter()
        .map(|p| p.file_name().unwrap().to_owned())
        .collect();
    expected.sort();
    assert_eq!(names, expected, "top level of {}", target.display());
    for p in packages {
        let got = walk(&target.join(p.file_name().unwrap()));
        let want = walk(p);
        assert_eq!(
            got.keys().collect::<Vec<_>>(),
            want.keys().collect::<Vec<_>>(),
            "paths of {}",
            p.display()
        );
        for (k, w) in &want {
            assert!(
                got[k] == *w,
                "{} differs from the published package",
                k.display()
            );
        }
    }
}

/// TARGET is absent or empty.
pub fn assert_untouched(target: &Path) {
    if target.exists() {
        let left: Vec<_> = fs::read_dir(target)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert!(left.is_empty(), "left in the target: {left:?}");
    }
}

/// A published release with a running hub.
pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub packages: Vec<PathBuf>,
    pub hub_dir: PathBuf,
    pub trust: PathBuf,
    pub hub: Hub,
}

impl Fixture {
    pub fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let packages = make_packages(&dir.path().join("pkgs"));
        let (key, trust) = keygen(dir.path(), "publisher.key");
        let hub_dir = dir.path().join("hub");
        publish(&hub_dir, &key, CHANNEL, &packages);
        let hub = Hub::start(&hub_dir);
        Fixture {
            dir,
            packages,
            hub_dir,
            trust,
            hub,
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn boot(&self, store: &str, into: &str) -> Output {
        boot(
            &self.hub.url,
            CHANNEL,
            &self.trust,
            &self.path(store),
            &self.path(into),
        )
    }

    /// Blocks in the hub directory: (cid, length), sorted by cid.
    pub fn blocks(&self) -> Vec<(String, u64)> {
        let mut v: Vec<_> = fs::read_dir(self.hub_dir.join("blocks"))
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.file_name().to_string_lossy().into_owned(),
                    e.metadata().unwrap().len(),
                )
            })
            .filter(|(n, _)| !n.starts_with('.'))
            .collect();
        v.sort();
        v
    }

    pub fn block_path(&self, cid: &str) -> PathBuf {
        self.hub_dir.join("blocks").join(cid)
    }
}

/// The child's stdout as a channel of lines, read by a thread of its own.
pub fn stdout_lines(child: &mut Child) -> std::sync::mpsc::Receiver<String> {
    let (tx, lines) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().expect("stdout is piped");
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    lines
}

/// A `bootswarm run` process, its stdout lines, and the addresses it printed; killed on drop.
pub struct Daemon {
    pub child: Child,
    pub lines: std::sync::mpsc::Receiver<String>,
    /// `<multiaddr>/p2p/<peer id>` from the `listening` line.
    pub addr: String,
    /// host:port from the `http` line.
    pub http: String,
    /// host:port from the `resp` line (empty without --resp).
    pub resp: String,
}

impl Daemon {
    /// Spawns `cmd` (a `bootswarm run` with `--http`) and waits for its `listening` and `http`
    /// lines (`resp` comes before `http` when asked for).
    pub fn spawn(cmd: &mut Command) -> Daemon {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start bootswarm run");
        let lines = stdout_lines(&mut child);
        let mut d = Daemon {
            child,
            lines,
            addr: String::new(),
            http: String::new(),
            resp: String::new(),
        };
        while d.addr.is_empty() || d.http.is_empty() {
            let line = d
                .lines
                .recv_timeout(std::time::Duration::from_secs(60))
                .expect("listening and http lines");
            if let Some(a) = line.strip_prefix("listening ") {
                d.addr = a.trim().into();
            } else if let Some(u) = line.strip_prefix("http ") {
                d.http = u.trim().trim_start_matches("http://").into();
            } else if let Some(r) = line.strip_prefix("resp ") {
                d.resp = r.trim().into();
            }
        }
        d
    }

    /// Waits for the `booted` line.
    pub fn wait_booted(&self) {
        loop {
            match self.lines.recv_timeout(std::time::Duration::from_secs(120)) {
                Ok(line) if line.starts_with("booted ") => return,
                Ok(_) => {}
                Err(_) => panic!("{} did not boot", self.addr),
            }
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The body of `GET path` from `addr` (host:port).
pub fn http_get(addr: &str, path: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    resp.split("\r\n\r\n").nth(1).unwrap_or("").to_string()
}

/// `GET path` from `addr` as JSON.
pub fn http_json(addr: &str, path: &str) -> serde_json::Value {
    let body = http_get(addr, path);
    serde_json::from_str(body.trim()).unwrap_or_else(|e| panic!("{path} {body:?}: {e}"))
}

/// The value of `series` (a name, with its labels if it has any) in `/metrics` text.
pub fn metric_value(metrics: &str, series: &str) -> u64 {
    let prefix = format!("{series} ");
    metrics
        .lines()
        .find(|l| l.starts_with(&prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {series} in /metrics"))
}
