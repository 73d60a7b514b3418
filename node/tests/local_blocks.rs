//! The local block endpoint, driven by unmodified clients: `redis-cli` (a 0-db client, as
//! rfs's zdb store and 0-fs are) and `curl` (rfs's http and server stores). The bytes must
//! match the ids; a block outside the release comes from the hub; a corrupt peer's copies
//! never reach a client.
//!
//! `redis-cli` and `curl` come from Debian's packages (`.ci/run` installs them); without them
//! the test says so and passes, unless `BOOTSWARM_REDIS_REQUIRED=1`.

mod boot_common;

use std::fs;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use boot_common::{CHANNEL, Hub, bin, keygen, make_packages, publish, stdout_lines};
use sha2::{Digest, Sha256};

/// A `bootswarm run` with the block endpoint on HTTP and RESP.
struct Node {
    child: Child,
    lines: mpsc::Receiver<String>,
    addr: String,
    http: String,
    resp: String,
}

impl Node {
    fn start(dir: &Path, hub: &str, trust: &Path, extra: &[&str]) -> Node {
        fs::create_dir_all(dir).unwrap();
        let mut child = Command::new(bin())
            .args(["run", "--hub", hub, "--channel", CHANNEL, "--trust"])
            .arg(trust)
            .arg("--store")
            .arg(dir.join("store"))
            .args(["--listen", "/ip4/127.0.0.1/tcp/0", "--http", "127.0.0.1:0"])
            .args(["--resp", "127.0.0.1:0"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let lines = stdout_lines(&mut child);
        let mut node = Node {
            child,
            lines,
            addr: String::new(),
            http: String::new(),
            resp: String::new(),
        };
        while node.addr.is_empty() || node.http.is_empty() || node.resp.is_empty() {
            let line = node
                .lines
                .recv_timeout(Duration::from_secs(60))
                .expect("listening, resp and http lines");
            if let Some(a) = line.strip_prefix("listening ") {
                node.addr = a.trim().into();
            } else if let Some(u) = line.strip_prefix("http ") {
                node.http = u.trim().trim_start_matches("http://").into();
            } else if let Some(r) = line.strip_prefix("resp ") {
                node.resp = r.trim().into();
            }
        }
        node
    }

    fn wait_booted(&self) {
        loop {
            match self.lines.recv_timeout(Duration::from_secs(120)) {
                Ok(line) if line.starts_with("booted ") => return,
                Ok(_) => {}
                Err(_) => panic!("{} did not boot", self.addr),
            }
        }
    }

    /// `redis-cli GET <hex>`, the reply's bytes (redis-cli adds a newline).
    fn redis_get_hex(&self, hex: &str) -> Vec<u8> {
        let (host, port) = self.resp.rsplit_once(':').unwrap();
        let out = Command::new("redis-cli")
            .args(["-h", host, "-p", port, "GET", hex])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        out.stdout
    }

    /// `redis-cli -x GET` with the 32 raw id bytes on stdin, as rfs sends them.
    fn redis_get_raw(&self, id: &[u8]) -> Vec<u8> {
        let (host, port) = self.resp.rsplit_once(':').unwrap();
        let mut child = Command::new("redis-cli")
            .args(["-h", host, "-p", port, "-x", "GET"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child.stdin.take().unwrap().write_all(id).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{out:?}");
        out.stdout
    }

    fn curl(&self, path: &str) -> (u16, Vec<u8>) {
        let out = Command::new("curl")
            .args(["-s", "-o", "-", "-w", "\n%{http_code}"])
            .arg(format!("http://{}{path}", self.http))
            .output()
            .unwrap();
        let mut body = out.stdout;
        let split = body.iter().rposition(|b| *b == b'\n').unwrap();
        let code = String::from_utf8_lossy(&body[split + 1..]).parse().unwrap();
        body.truncate(split);
        (code, body)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn tools_present() -> bool {
    let present = ["redis-cli", "curl"].iter().all(|t| {
        Command::new(t)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    });
    if !present {
        assert!(
            std::env::var_os("BOOTSWARM_REDIS_REQUIRED").is_none(),
            "BOOTSWARM_REDIS_REQUIRED is set but redis-cli or curl is missing; install redis-tools and curl"
        );
        eprintln!("skipped: redis-cli or curl is not installed (apt-get install redis-tools curl)");
    }
    present
}

/// The release's blocks on the hub: (sha256 hex of the bytes, bytes).
fn hub_blocks(hub_dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = fs::read_dir(hub_dir.join("blocks"))
        .unwrap()
        .map(|e| {
            let bytes = fs::read(e.unwrap().path()).unwrap();
            (hex(&Sha256::digest(&bytes)), bytes)
        })
        .collect();
    out.sort();
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn rfs_clients_get_verified_blocks_from_the_local_endpoint() {
    if !tools_present() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let packages = make_packages(&tmp.path().join("pkgs"));
    let (key, trust) = keygen(tmp.path(), "publisher.key");
    let hub_dir = tmp.path().join("hub");
    publish(&hub_dir, &key, CHANNEL, &packages);
    let blocks = hub_blocks(&hub_dir);
    assert!(blocks.len() >= 3);
    let hub = Hub::start(&hub_dir);

    // A peer that corrupts everything it serves, booted first; the node boots next to it.
    let corrupt = Node::start(
        &tmp.path().join("corrupt"),
        &hub.url,
        &trust,
        &["--test-corrupt-serving"],
    );
    corrupt.wait_booted();
    let node = Node::start(
        &tmp.path().join("node"),
        &hub.url,
        &trust,
        &[
            "--peer",
            &corrupt.addr,
            "--min-peers",
            "1",
            "--peer-wait",
            "20s",
        ],
    );
    node.wait_booted();

    for (hex_id, bytes) in &blocks {
        let got = node.redis_get_hex(hex_id);
        assert!(got[..got.len() - 1] == bytes[..], "redis-cli GET {hex_id}");
        let (code, body) = node.curl(&format!("/{}/{hex_id}", &hex_id[..2]));
        assert!(code == 200 && body == *bytes, "curl /xx/{hex_id}: {code}");
    }
    let (hex_id, bytes) = &blocks[0];
    let raw: Vec<u8> = (0..32)
        .map(|i| u8::from_str_radix(&hex_id[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    let got = node.redis_get_raw(&raw);
    assert_eq!(&got[..got.len() - 1], &bytes[..], "GET with the raw id");
    assert_eq!(node.curl(&format!("/{hex_id}")).1, *bytes);
    assert_eq!(node.curl(&format!("/api/v1/block/{hex_id}")).1, *bytes);

    // A block outside the release: no peer holds it, the hub does.
    let extra = b"a block the release does not name".to_vec();
    let extra_hex = hex(&Sha256::digest(&extra));
    let cid = bootswarm_protocol::block::cid_of(bootswarm_protocol::block::Codec::Raw, &extra);
    fs::write(hub_dir.join("blocks").join(cid.to_string()), &extra).unwrap();
    let (code, body) = node.curl(&format!("/api/v1/block/{extra_hex}"));
    assert_eq!((code, body), (200, extra.clone()), "from the hub");
    let held = node.redis_get_hex(&extra_hex);
    assert_eq!(&held[..held.len() - 1], &extra[..], "then held");

    // Nothing anywhere: a miss, as rfs expects it; a bad id is a client error.
    let nothing = hex(&Sha256::digest(b"nowhere"));
    assert_eq!(
        node.redis_get_hex(&nothing),
        b"\n",
        "redis-cli prints an empty line for nil"
    );
    assert_eq!(node.curl(&format!("/api/v1/block/{nothing}")).0, 404);
    assert_eq!(node.curl("/api/v1/block/xyz").0, 400);

    // The corrupt peer's copies were refused, never stored: the node blamed it.
    let status = node.curl("/status").1;
    let status: serde_json::Value = serde_json::from_slice(&status).unwrap();
    let blamed = status["failures"]
        .as_object()
        .map(|m| m.values().filter_map(|v| v.as_u64()).sum::<u64>())
        .unwrap_or(0);
    assert!(
        blamed > 0
            || status["penalties"]
                .as_object()
                .is_some_and(|m| !m.is_empty()),
        "the corrupt peer was caught: {status}"
    );
}
