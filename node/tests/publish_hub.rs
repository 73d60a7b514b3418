//! Process tests of `bootswarm publish` and `bootswarm hub serve`.

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use bootswarm_node::keys;
use bootswarm_protocol::block::{Codec, cid_of, parse_cid, verify};
use bootswarm_protocol::manifest::{EntryKind, Flist};
use bootswarm_protocol::release::{ReleaseError, SignedRelease};

fn bootswarm(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bootswarm"))
        .args(args)
        .output()
        .expect("run bootswarm")
}

fn ok(args: &[&str]) -> String {
    let out = bootswarm(args);
    assert!(
        out.status.success(),
        "bootswarm {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Deterministic incompressible bytes.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

struct Fixture {
    _tmp: tempfile::TempDir,
    hub: PathBuf,
    key: PathBuf,
    alpha: PathBuf,
    beta: PathBuf,
}

fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let key = tmp.path().join("publisher.key");
    ok(&["keygen", "--out", s(&key)]);
    let alpha = tmp.path().join("alpha");
    fs::create_dir_all(alpha.join("bin")).unwrap();
    fs::create_dir_all(alpha.join("empty")).unwrap();
    fs::write(alpha.join("bin/tool"), b"#!/bin/sh\necho hi\n").unwrap();
    fs::set_permissions(alpha.join("bin/tool"), fs::Permissions::from_mode(0o755)).unwrap();
    fs::write(alpha.join("data"), noise(3 << 20, 1)).unwrap();
    fs::set_permissions(alpha.join("data"), fs::Permissions::from_mode(0o644)).unwrap();
    symlink("bin/tool", alpha.join("link")).unwrap();
    let beta = tmp.path().join("beta");
    fs::create_dir_all(&beta).unwrap();
    fs::write(beta.join("small"), b"beta").unwrap();
    fs::write(beta.join("empty-file"), b"").unwrap();
    Fixture {
        hub: tmp.path().join("hub"),
        _tmp: tmp,
        key,
        alpha,
        beta,
    }
}

fn publish(f: &Fixture) -> String {
    ok(&[
        "publish",
        "--hub-dir",
        s(&f.hub),
        "--channel",
        "zos-test",
        "--key",
        s(&f.key),
        s(&f.alpha),
        s(&f.beta),
    ])
}

fn latest(hub: &Path) -> SignedRelease {
    SignedRelease::decode(&fs::read(hub.join("channels/zos-test/latest")).unwrap()).unwrap()
}

fn read_flist(hub: &Path, cid: &bootswarm_protocol::block::Cid) -> Flist {
    let bytes = fs::read(hub.join("blocks").join(cid.to_string())).unwrap();
    verify(cid, &bytes).unwrap();
    Flist::decode(&bytes).unwrap()
}

/// Block file name -> (inode, mtime in ns).
fn block_files(hub: &Path) -> BTreeMap<String, (u64, i64)> {
    fs::read_dir(hub.join("blocks"))
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let m = e.metadata().unwrap();
            (
                e.file_name().into_string().unwrap(),
                (m.ino(), m.mtime() * 1_000_000_000 + m.mtime_nsec()),
            )
        })
        .collect()
}

#[test]
fn republish_writes_no_new_blocks_and_bumps_seq() {
    let f = fixture();
    let first = publish(&f);
    assert!(first.contains("seq 1"), "{first}");
    assert_eq!(latest(&f.hub).release.seq, 1);
    let before = block_files(&f.hub);
    assert!(before.len() >= 5, "chunks and flists written: {before:?}");

    let second = publish(&f);
    assert!(second.contains("seq 2"), "{second}");
    assert!(second.contains("(0 new blocks"), "{second}");
    let release = latest(&f.hub);
    assert_eq!(release.release.seq, 2);
    assert_eq!(before, block_files(&f.hub), "no block file was rewritten");
    assert!(f.hub.join("channels/zos-test/1.release").is_file());
    assert!(f.hub.join("channels/zos-test/2.release").is_file());
}

#[test]
fn published_dag_is_complete_and_every_block_verifies() {
    let f = fixture();
    publish(&f);
    let release = latest(&f.hub);
    let root = read_flist(&f.hub, &release.release.root);
    assert_eq!(root.name, "zos-test");
    let names: Vec<_> = root.children.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["alpha", "beta"]);
    let mut file_bytes = 0;
    for child in &root.children {
        let flist = read_flist(&f.hub, &child.cid);
        for entry in flist.entries.iter().filter(|e| e.kind == EntryKind::File) {
            let mut content = Vec::new();
            for chunk in &entry.chunks {
                let bytes = fs::read(f.hub.join("blocks").join(chunk.cid.to_string())).unwrap();
                verify(&chunk.cid, &bytes).unwrap();
                assert_eq!(bytes.len(), chunk.len as usize);
                content.extend_from_slice(&bytes);
            }
            let original = fs::read(
                if child.name == "alpha" {
                    &f.alpha
                } else {
                    &f.beta
                }
                .join(&entry.path),
            )
            .unwrap();
            assert_eq!(content, original, "{}", entry.path);
            file_bytes += content.len();
        }
    }
    assert_eq!(file_bytes, (3 << 20) + 4 + 18);
    let data = read_flist(&f.hub, &root.children[0].cid)
        .entries
        .into_iter()
        .find(|e| e.path == "data")
        .unwrap();
    assert!(
        data.chunks.len() >= 2,
        "3 MiB of noise is cut into several chunks"
    );
}

#[test]
fn release_verifies_with_the_public_key_only() {
    let f = fixture();
    publish(&f);
    let release = latest(&f.hub);
    let trust = keys::read_trust(&keys::pub_path(&f.key)).unwrap();
    trust.verify(&release).unwrap();

    let other = f.hub.parent().unwrap().join("other.key");
    ok(&["keygen", "--out", s(&other)]);
    let wrong = keys::read_trust(&keys::pub_path(&other)).unwrap();
    assert!(matches!(
        wrong.verify(&release),
        Err(ReleaseError::NoTrustedSignature)
    ));

    let text = ok(&[
        "inspect",
        "--hub-dir",
        s(&f.hub),
        "--channel",
        "zos-test",
        "--trust",
        s(&keys::pub_path(&f.key)),
    ]);
    assert!(text.contains("signatures  valid"), "{text}");
    let out = bootswarm(&[
        "inspect",
        "--hub-dir",
        s(&f.hub),
        "--channel",
        "zos-test",
        "--trust",
        s(&keys::pub_path(&other)),
    ]);
    assert!(!out.status.success());
}

#[test]
fn flist_keeps_symlinks_modes_and_empty_dirs() {
    let f = fixture();
    publish(&f);
    let root = read_flist(&f.hub, &latest(&f.hub).release.root);
    let alpha = read_flist(&f.hub, &root.children[0].cid);
    let entry = |p: &str| alpha.entries.iter().find(|e| e.path == p).unwrap();
    assert_eq!(entry("link").kind, EntryKind::Symlink);
    assert_eq!(entry("link").target.as_deref(), Some("bin/tool"));
    assert_eq!(entry("bin/tool").kind, EntryKind::File);
    assert_eq!(entry("bin/tool").mode, 0o755);
    assert_eq!(entry("data").mode, 0o644);
    assert_eq!(entry("bin").kind, EntryKind::Dir);
    assert_eq!(entry("empty").kind, EntryKind::Dir);

    let json = ok(&[
        "inspect",
        "--hub-dir",
        s(&f.hub),
        "--json",
        &root.children[0].cid.to_string(),
    ]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["type"], "flist");
    assert_eq!(v["name"], "alpha");
    let link = v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["path"] == "link")
        .unwrap();
    assert_eq!(link["kind"], "symlink");
    assert_eq!(link["target"], "bin/tool");
}

/// A `bootswarm hub serve` process, killed on drop.
struct Hub {
    child: Child,
    addr: String,
}

impl Drop for Hub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(dir: &Path, extra: &[&str]) -> Hub {
    let mut child = Command::new(env!("CARGO_BIN_EXE_bootswarm"))
        .args(["hub", "serve", "--dir", s(dir), "--listen", "127.0.0.1:0"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_owned();
    Hub { child, addr }
}

/// A minimal HTTP/1.1 GET: (status, content type, body).
fn get(addr: &str, path: &str) -> (u16, String, Vec<u8>) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let content_type = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-type:")
                .map(|v| v.trim().to_owned())
        })
        .unwrap_or_default();
    (status, content_type, raw[split + 4..].to_vec())
}

#[test]
fn hub_serves_blocks_channels_stats_and_json_404s() {
    let f = fixture();
    publish(&f);
    let hub = serve(&f.hub, &[]);
    let root = latest(&f.hub).release.root;

    let (status, ctype, body) = get(&hub.addr, "/v1/channels/zos-test");
    assert_eq!(status, 200);
    assert_eq!(ctype, "application/cbor");
    assert_eq!(
        body,
        fs::read(f.hub.join("channels/zos-test/latest")).unwrap()
    );
    let mut sent = body.len() as u64;

    let (status, ctype, body) = get(&hub.addr, &format!("/v1/blocks/{root}"));
    assert_eq!(status, 200);
    assert_eq!(ctype, "application/octet-stream");
    verify(&root, &body).unwrap();
    sent += body.len() as u64;

    let data = read_flist(&f.hub, &read_flist(&f.hub, &root).children[0].cid)
        .entries
        .into_iter()
        .find(|e| e.path == "data")
        .unwrap();
    let big = data.chunks[0].cid;
    let (status, _, body) = get(&hub.addr, &format!("/v1/blocks/{big}"));
    assert_eq!(status, 200);
    verify(&big, &body).unwrap();
    sent += body.len() as u64;

    let missing = cid_of(Codec::Raw, b"not on the hub");
    for (path, what) in [
        (format!("/v1/blocks/{missing}"), missing.to_string()),
        ("/v1/channels/nope".to_owned(), "nope".to_owned()),
        ("/v1/elsewhere".to_owned(), "no such endpoint".to_owned()),
    ] {
        let (status, ctype, body) = get(&hub.addr, &path);
        assert_eq!(status, 404, "{path}");
        assert_eq!(ctype, "application/json", "{path}");
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert!(v["error"].as_str().unwrap().contains(&what), "{path}: {v}");
    }
    let (status, _, body) = get(&hub.addr, "/v1/blocks/not-a-cid");
    assert_eq!(status, 400);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert!(v["error"].as_str().unwrap().contains("not-a-cid"), "{v}");
    let (status, ctype, _) = get(&hub.addr, "/v1/channels/%FF");
    assert_eq!((status, ctype.as_str()), (400, "application/json"));

    let (status, ctype, body) = get(&hub.addr, "/v1/stats");
    assert_eq!(status, 200);
    assert_eq!(ctype, "application/json");
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["egress_bytes"].as_u64(), Some(sent), "{v}");
    assert_eq!(v["blocks_served"].as_u64(), Some(2), "{v}");
    assert_eq!(v["requests"].as_u64(), Some(9), "{v}");

    let url = format!("http://{}", hub.addr);
    let json = ok(&["inspect", "--hub", &url, "--channel", "zos-test", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["type"], "release");
    assert_eq!(v["seq"], 1);
    assert_eq!(v["root"], root.to_string());
    let text = ok(&["inspect", "--hub", &url, &big.to_string()]);
    assert!(
        text.contains(&format!("size        {} bytes", data.chunks[0].len)),
        "{text}"
    );
}

#[test]
fn hub_rate_limit_shapes_the_send_rate() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("hub");
    fs::create_dir_all(dir.join("blocks")).unwrap();
    let data = noise(4 << 20, 7);
    let cid = cid_of(Codec::Raw, &data);
    fs::write(dir.join("blocks").join(cid.to_string()), &data).unwrap();
    assert_eq!(parse_cid(&cid.to_string()).unwrap(), cid);

    let hub = serve(&dir, &["--rate", "16mbit"]);
    let started = Instant::now();
    let (status, _, body) = get(&hub.addr, &format!("/v1/blocks/{cid}"));
    let elapsed = started.elapsed();
    assert_eq!(status, 200);
    assert_eq!(body, data);
    // 4 MiB at 16 Mbit/s is about 2.1 s; only a generous lower bound is checked.
    assert!(
        elapsed >= Duration::from_millis(1500),
        "4 MiB at 16mbit took only {elapsed:?}"
    );
}
