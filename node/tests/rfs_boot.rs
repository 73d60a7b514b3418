//! rfs content end to end: packages packed into rfs v2 flists by the tests, their blocks in a
//! real RESP server (`redis-server`, the 0-db stand-in, started and stopped here), imported
//! into a hub and booted with the RESP server as the only upstream.
//!
//! Without `redis-server` on PATH these tests skip with a message, unless
//! `BOOTSWARM_REDIS_REQUIRED=1` (CI), where a missing server fails them.

mod boot_common;

use std::collections::HashMap;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use boot_common::{
    Daemon, Hub, assert_tree_matches, assert_untouched, bin, boot, keygen, make_packages, noise,
    report, stderr_of, stdout_lines,
};
use bootswarm_node::rfs::pack::pack;
use bootswarm_node::rfs::resp;
use bootswarm_protocol::manifest::Route;

const CHANNEL: &str = "zos";

/// Sends one RESP command to `addr` on a new connection and returns the raw reply (a status
/// line, or a bulk string with its header).
fn resp_command(addr: &str, args: &[&[u8]]) -> std::io::Result<Vec<u8>> {
    let mut s = TcpStream::connect(addr)?;
    s.write_all(&resp::command(args))?;
    let mut r = BufReader::new(s);
    let mut line = Vec::new();
    r.read_until(b'\n', &mut line)?;
    if line.starts_with(b"$") {
        let n: i64 = String::from_utf8_lossy(&line[1..]).trim().parse().unwrap();
        if n >= 0 {
            let mut body = vec![0; n as usize + 2];
            r.read_exact(&mut body)?;
            line.extend_from_slice(&body);
        }
    }
    Ok(line)
}

/// A `redis-server` on a free port of 127.0.0.1, without persistence; killed on drop.
struct Redis {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Redis {
    /// Starts one, or `None` (after saying why) when `redis-server` is not installed and not
    /// required.
    fn start() -> Option<Redis> {
        let present = Command::new("redis-server")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        if !present {
            assert!(
                std::env::var("BOOTSWARM_REDIS_REQUIRED").as_deref() != Ok("1"),
                "redis-server is not installed but BOOTSWARM_REDIS_REQUIRED=1; apt-get install -y redis-server"
            );
            eprintln!("skipped: redis-server is not installed (apt-get install -y redis-server)");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start redis-server");
        let redis = Redis {
            child,
            port,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !redis.command(&[b"PING"]).is_ok_and(|r| r == b"+PONG\r\n") {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(redis)
    }

    /// Sends one command on a new connection and returns the raw reply (small replies only).
    fn command(&self, args: &[&[u8]]) -> std::io::Result<Vec<u8>> {
        resp_command(&format!("127.0.0.1:{}", self.port), args)
    }

    /// Writes `blocks` into database `db` (the `/namespace` of a zdb:// URL).
    fn put_all(&self, db: &str, blocks: &HashMap<[u8; 32], Vec<u8>>) {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        let mut cmds = resp::command(&[b"SELECT", db.as_bytes()]);
        for (id, stored) in blocks {
            cmds.extend(resp::command(&[b"SET", id, stored]));
        }
        s.write_all(&cmds).unwrap();
        let mut r = BufReader::new(s);
        for _ in 0..=blocks.len() {
            let mut line = String::new();
            r.read_line(&mut line).unwrap();
            assert_eq!(line, "+OK\r\n");
        }
    }

    fn set(&self, db: &str, id: &[u8; 32], stored: &[u8]) {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        let mut cmds = resp::command(&[b"SELECT", db.as_bytes()]);
        cmds.extend(resp::command(&[b"SET", id, stored]));
        s.write_all(&cmds).unwrap();
        let mut r = BufReader::new(s);
        for _ in 0..2 {
            let mut line = String::new();
            r.read_line(&mut line).unwrap();
            assert_eq!(line, "+OK\r\n");
        }
    }

    /// Bytes the server has sent to its clients (`INFO stats`).
    fn output_bytes(&self) -> u64 {
        let reply = self.command(&[b"INFO", b"stats"]).unwrap();
        String::from_utf8_lossy(&reply)
            .lines()
            .find_map(|l| l.strip_prefix("total_net_output_bytes:"))
            .and_then(|v| v.trim().parse().ok())
            .expect("INFO stats has total_net_output_bytes")
    }

    fn url(&self, db: &str) -> String {
        format!("zdb://127.0.0.1:{}/{db}", self.port)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Three packages (the boot fixtures and a bigger one), each packed into `<name>.fl` routed to
/// `route`; returns the packages, the `.fl` files and every stored block by id.
struct Packed {
    packages: Vec<PathBuf>,
    fls: Vec<PathBuf>,
    blocks: HashMap<[u8; 32], Vec<u8>>,
    /// Which file each block came from (first seen).
    stored_bytes: u64,
}

fn packed(dir: &Path, route: &str) -> Packed {
    let mut packages = make_packages(&dir.join("pkgs"));
    let gamma = dir.join("pkgs/gamma");
    fs::create_dir_all(gamma.join("data")).unwrap();
    for i in 0..3 {
        fs::write(
            gamma.join(format!("data/blob{i}")),
            noise(100 + i, 1024 * 1024 + 77),
        )
        .unwrap();
    }
    packages.push(gamma);
    let routes = [Route {
        start: 0,
        end: 255,
        url: route.to_string(),
    }];
    let mut blocks = HashMap::new();
    let mut fls = Vec::new();
    for p in &packages {
        let name = p.file_name().unwrap().to_str().unwrap();
        let fl = dir.join(format!("{name}.fl"));
        pack(p, &fl, &routes, Some("1"), &mut |id, stored| {
            blocks.insert(*id, stored.to_vec());
            Ok(())
        })
        .unwrap();
        fls.push(fl);
    }
    let stored_bytes = blocks.values().map(|b| b.len() as u64).sum();
    Packed {
        packages,
        fls,
        blocks,
        stored_bytes,
    }
}

fn import(hub_dir: &Path, key: &Path, fls: &[PathBuf], extra: &[&str]) -> std::process::Output {
    let mut cmd = Command::new(bin());
    cmd.args(["import", "--hub-dir"])
        .arg(hub_dir)
        .args(["--channel", CHANNEL, "--key"])
        .arg(key)
        .args(extra)
        .args(fls);
    cmd.output().unwrap()
}

#[test]
fn an_imported_rfs_release_boots_from_the_0db_byte_identical() {
    let Some(redis) = Redis::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    let p = packed(dir.path(), &redis.url("1"));
    redis.put_all("1", &p.blocks);
    let (key, trust) = keygen(dir.path(), "publisher.key");
    let hub_dir = dir.path().join("hub");
    let out = import(&hub_dir, &key, &p.fls, &["--verify"]);
    assert!(out.status.success(), "import: {}", stderr_of(&out));
    let hub = Hub::start(&hub_dir);
    let target = dir.path().join("target");
    let out = boot(
        &hub.url,
        CHANNEL,
        &trust,
        &dir.path().join("store"),
        &target,
    );
    assert!(out.status.success(), "boot: {}", stderr_of(&out));
    let r = report(&out);
    assert_tree_matches(&target, &p.packages);
    // Every rfs block once from the 0-db; only the release and the flists from the hub.
    assert_eq!(r["upstream_bytes"], p.stored_bytes);
    assert!(r["hub_bytes"].as_u64().unwrap() < 64 * 1024, "{r}");
    eprintln!(
        "{} blocks, {} stored bytes; boot report {r}",
        p.blocks.len(),
        p.stored_bytes
    );
}

#[test]
fn a_flipped_truncated_or_wrongly_keyed_block_is_refused_and_the_target_untouched() {
    let Some(redis) = Redis::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    let p = packed(dir.path(), &redis.url("2"));
    redis.put_all("2", &p.blocks);
    let (key, trust) = keygen(dir.path(), "publisher.key");
    let hub_dir = dir.path().join("hub");
    let out = import(&hub_dir, &key, &p.fls, &[]);
    assert!(out.status.success(), "import: {}", stderr_of(&out));
    let hub = Hub::start(&hub_dir);
    let (id, good) = p
        .blocks
        .iter()
        .next()
        .map(|(i, b)| (*i, b.clone()))
        .unwrap();

    let mut flipped = good.clone();
    flipped[good.len() / 2] ^= 1;
    for (n, bad) in [flipped, good[..good.len() - 1].to_vec()]
        .iter()
        .enumerate()
    {
        redis.set("2", &id, bad);
        let target = dir.path().join(format!("target-{n}"));
        let store = dir.path().join(format!("store-{n}"));
        let out = boot(&hub.url, CHANNEL, &trust, &store, &target);
        assert!(!out.status.success());
        let err = stderr_of(&out);
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(
            err.contains(&format!(
                "{} sent bytes that do not match it",
                redis.url("2")
            )),
            "{err}"
        );
        assert_untouched(&target);
    }
    redis.set("2", &id, &good);

    // A wrong key in one .fl: the blocks are good, the install refuses to decode one.
    let db = rusqlite::Connection::open(&p.fls[1]).unwrap();
    db.execute(
        "UPDATE block SET key = zeroblob(32) WHERE rowid = (SELECT MAX(rowid) FROM block)",
        [],
    )
    .unwrap();
    drop(db);
    let out = import(&hub_dir, &key, &p.fls, &[]);
    assert!(out.status.success(), "import: {}", stderr_of(&out));
    let target = dir.path().join("target-key");
    let out = boot(
        &hub.url,
        CHANNEL,
        &trust,
        &dir.path().join("store-key"),
        &target,
    );
    assert!(!out.status.success());
    let err = stderr_of(&out);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("cannot be installed: its key does not decrypt it"),
        "{err}"
    );
    assert_untouched(&target);
}

/// A `bootswarm run` node; killed on drop.
struct Node {
    child: Child,
    lines: mpsc::Receiver<String>,
    addr: String,
    root: PathBuf,
    booted: bool,
}

impl Node {
    fn start(dir: &Path, hub: &str, trust: &Path, extra: &[String]) -> Node {
        fs::create_dir_all(dir).unwrap();
        let root = dir.join("root");
        let mut child = Command::new(bin())
            .args(["run", "--hub", hub, "--channel", CHANNEL])
            .arg("--trust")
            .arg(trust)
            .arg("--store")
            .arg(dir.join("store"))
            .arg("--into")
            .arg(&root)
            .args(["--listen", "/ip4/127.0.0.1/tcp/0"])
            .args(extra)
            .env("BOOTSWARM_LOG", "warn")
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
            root,
            booted: false,
        };
        while node.addr.is_empty() {
            let line = node
                .lines
                .recv_timeout(Duration::from_secs(30))
                .expect("a listening line");
            node.take(&line);
        }
        node
    }

    fn take(&mut self, line: &str) {
        if let Some(addr) = line.strip_prefix("listening ") {
            self.addr = addr.trim().to_string();
        } else if line.starts_with("booted ") {
            self.booted = true;
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn five_nodes_at_once_fetch_each_rfs_block_from_the_0db_about_once() {
    let Some(redis) = Redis::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    // The routes name a database without the blocks: --upstream is the only store.
    let p = packed(dir.path(), &redis.url("9"));
    redis.put_all("3", &p.blocks);
    let (key, trust) = keygen(dir.path(), "publisher.key");
    let hub_dir = dir.path().join("hub");
    let out = import(&hub_dir, &key, &p.fls, &[]);
    assert!(out.status.success(), "import: {}", stderr_of(&out));
    let hub = Hub::start(&hub_dir);
    let before = redis.output_bytes();
    let mut nodes: Vec<Node> = Vec::new();
    for i in 0..5 {
        let mut extra = vec!["--upstream".to_string(), redis.url("3")];
        for n in &nodes {
            extra.extend(["--peer".to_string(), n.addr.clone()]);
        }
        extra.extend(["--min-peers", "4", "--peer-wait", "20s"].map(String::from));
        nodes.push(Node::start(
            &dir.path().join(format!("n{i}")),
            &hub.url,
            &trust,
            &extra,
        ));
    }
    let deadline = Instant::now() + Duration::from_secs(180);
    for (i, n) in nodes.iter_mut().enumerate() {
        while !n.booted {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = n
                .lines
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("node {i} did not boot in time"));
            n.take(&line);
        }
    }
    let upstream = redis.output_bytes() - before;
    let ratio = upstream as f64 / p.stored_bytes as f64;
    eprintln!(
        "stored bytes = {}, 0-db output = {upstream} bytes = {ratio:.3} x stored",
        p.stored_bytes
    );
    for n in &nodes {
        assert_tree_matches(&n.root.join("current"), &p.packages);
    }
    assert!(
        ratio <= 1.1,
        "the 0-db sent {upstream} bytes, {ratio:.3} x the release's {} stored bytes",
        p.stored_bytes
    );
}

#[test]
fn an_rfs_client_reads_the_release_and_upstream_blocks_from_the_local_endpoint() {
    let Some(redis) = Redis::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    let p = packed(dir.path(), &redis.url("9"));
    redis.put_all("3", &p.blocks);
    // A block no flist of the release names, in the 0-db only.
    let extra = noise(7, 4096);
    let extra_id = bootswarm_protocol::block::blake2b_256(&extra);
    redis.set("3", &extra_id, &extra);
    let (key, trust) = keygen(dir.path(), "publisher.key");
    let hub_dir = dir.path().join("hub");
    let out = import(&hub_dir, &key, &p.fls, &[]);
    assert!(out.status.success(), "import: {}", stderr_of(&out));
    let hub = Hub::start(&hub_dir);
    fs::create_dir_all(dir.path().join("node")).unwrap();
    let node = Daemon::spawn(
        Command::new(bin())
            .args(["run", "--hub", &hub.url, "--channel", CHANNEL, "--trust"])
            .arg(&trust)
            .arg("--store")
            .arg(dir.path().join("node/store"))
            .args(["--listen", "/ip4/127.0.0.1/tcp/0", "--http", "127.0.0.1:0"])
            .args(["--resp", "127.0.0.1:0", "--upstream", &redis.url("3")])
            .stderr(Stdio::inherit()),
    );
    node.wait_booted();
    let bulk = |bytes: &[u8]| {
        let mut b = format!("${}\r\n", bytes.len()).into_bytes();
        b.extend_from_slice(bytes);
        b.extend_from_slice(b"\r\n");
        b
    };
    let before = redis.output_bytes();
    for (id, stored) in &p.blocks {
        let reply = resp_command(&node.resp, &[b"SELECT", b"default"]).unwrap();
        assert_eq!(reply, b"+OK\r\n");
        let reply = resp_command(&node.resp, &[b"GET", id]).unwrap();
        assert!(
            reply == bulk(stored),
            "GET of a release block by its raw id"
        );
    }
    let during = redis.output_bytes() - before;
    assert!(
        during < 4096,
        "the release's blocks came from the node's store, not the 0-db ({during} bytes is one INFO reply)"
    );
    let reply = resp_command(&node.resp, &[b"GET", &extra_id]).unwrap();
    assert!(
        reply == bulk(&extra),
        "a block outside the release, from the upstream"
    );
    assert!(redis.output_bytes() - before >= during + extra.len() as u64);
    let nothing = bootswarm_protocol::block::blake2b_256(b"nowhere");
    assert_eq!(
        resp_command(&node.resp, &[b"GET", &nothing]).unwrap(),
        b"$-1\r\n"
    );
    assert_eq!(
        resp_command(&node.resp, &[b"EXISTS", &extra_id]).unwrap(),
        b":1\r\n"
    );
}
