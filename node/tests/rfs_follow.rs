//! `bootswarm import --from-hub URL --taglink USER/NAME` against a stub 0-hub serving the
//! `/api/flist/...` JSON and the `.fl` files: a new taglink target is one new release, an
//! md5-only change none.

use std::collections::HashMap;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

use bootswarm_node::hub;
use bootswarm_node::rfs::pack::{dir_sink, pack};
use bootswarm_protocol::manifest::{Flist, Route};
use bootswarm_protocol::release::SignedRelease;

type Routes = Arc<Mutex<HashMap<String, Vec<u8>>>>;

/// A stub 0-hub: GET of a known path answers its body, anything else 404.
fn stub_hub(routes: Routes) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut line = String::new();
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            if reader.read_line(&mut line).is_err() {
                continue;
            }
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).is_err() || h == "\r\n" || h.is_empty() {
                    break;
                }
            }
            let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
            let body = routes.lock().unwrap().get(&path).cloned();
            let (status, body) = match body {
                Some(b) => ("200 OK", b),
                None => ("404 Not Found", b"{}".to_vec()),
            };
            let _ = write!(
                conn,
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = conn.write_all(&body);
        }
    });
    url
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Packs a one-file package into `.fl` bytes.
fn fl_bytes(dir: &Path, name: &str, content: &[u8], store: &Path) -> Vec<u8> {
    let src = dir.join("src").join(name);
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("file"), content).unwrap();
    let fl = dir.join(format!("{name}.fl"));
    let route = Route {
        start: 0,
        end: 255,
        url: format!("dir://{}", store.display()),
    };
    pack(&src, &fl, &[route], None, &mut dir_sink(store, false)).unwrap();
    fs::read(fl).unwrap()
}

fn light(target: &str, md5: &str) -> Vec<u8> {
    format!(
        r#"{{"name":"zos:prod.flist","type":"taglink","updated":1,"md5":"{md5}","target":"{target}"}}"#
    )
    .into_bytes()
}

fn tag(entries: &[&str], version: &str) -> Vec<u8> {
    let list: Vec<String> = entries
        .iter()
        .map(|n| {
            format!(
                r#"{{"name":"{n}.fl","type":"symlink","updated":1,"target":"tf-autobuilder/{n}-{version}.fl"}}"#
            )
        })
        .collect();
    format!("[{}]", list.join(",")).into_bytes()
}

fn follow(hub_url: &str, hub_dir: &Path, key: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bootswarm"))
        .args([
            "import",
            "--hub-dir",
            s(hub_dir),
            "--channel",
            "zos",
            "--key",
            s(key),
        ])
        .args(["--from-hub", hub_url, "--taglink", "tf-zos/zos:prod.flist"])
        .output()
        .unwrap()
}

fn seq(hub_dir: &Path) -> u64 {
    SignedRelease::decode(&fs::read(hub::latest_path(hub_dir, "zos")).unwrap())
        .unwrap()
        .release
        .seq
}

#[test]
fn a_new_taglink_target_is_one_release_and_an_md5_change_none() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let key = t.join("publisher.key");
    let out = Command::new(env!("CARGO_BIN_EXE_bootswarm"))
        .args(["keygen", "--out", s(&key)])
        .output()
        .unwrap();
    assert!(out.status.success());
    let store = t.join("store");
    let routes: Routes = Arc::default();
    let url = stub_hub(Arc::clone(&routes));
    {
        let mut r = routes.lock().unwrap();
        r.insert(
            "/api/flist/tf-zos/zos:prod.flist/light".into(),
            light("tf-autobuilder/tags/v1", "aaa"),
        );
        r.insert(
            "/api/flist/tf-autobuilder/tags/v1".into(),
            tag(&["zos-base", "zos-net"], "1"),
        );
        for n in ["zos-base", "zos-net"] {
            let bytes = fl_bytes(&t.join("v1"), n, format!("{n} 1").as_bytes(), &store);
            r.insert(format!("/tf-autobuilder/{n}-1.fl"), bytes);
        }
    }
    let hub_dir = t.join("hub");
    let ok = |out: &Output| {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let first = ok(&follow(&url, &hub_dir, &key));
    assert!(first.contains("imported channel 'zos' seq 1"), "{first}");
    let release =
        SignedRelease::decode(&fs::read(hub::latest_path(&hub_dir, "zos")).unwrap()).unwrap();
    let root = Flist::decode(&fs::read(hub::block_path(&hub_dir, &release.release.root)).unwrap())
        .unwrap();
    let names: Vec<_> = root.children.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["zos-base", "zos-net"]);
    assert_eq!(root.version, "tf-autobuilder/tags/v1");

    // Same target: nothing new, even with another md5.
    assert!(ok(&follow(&url, &hub_dir, &key)).contains("unchanged"));
    routes.lock().unwrap().insert(
        "/api/flist/tf-zos/zos:prod.flist/light".into(),
        light("tf-autobuilder/tags/v1", "bbb"),
    );
    assert!(ok(&follow(&url, &hub_dir, &key)).contains("unchanged"));
    assert_eq!(seq(&hub_dir), 1);

    // A new target: exactly one new release, with the new tag's packages.
    {
        let mut r = routes.lock().unwrap();
        r.insert(
            "/api/flist/tf-zos/zos:prod.flist/light".into(),
            light("tf-autobuilder/tags/v2", "ccc"),
        );
        r.insert(
            "/api/flist/tf-autobuilder/tags/v2".into(),
            tag(&["zos-base", "zos-net", "zos-extra"], "2"),
        );
        for n in ["zos-base", "zos-net", "zos-extra"] {
            let bytes = fl_bytes(&t.join("v2"), n, format!("{n} 2").as_bytes(), &store);
            r.insert(format!("/tf-autobuilder/{n}-2.fl"), bytes);
        }
    }
    assert!(ok(&follow(&url, &hub_dir, &key)).contains("seq 2"));
    assert!(ok(&follow(&url, &hub_dir, &key)).contains("unchanged"));
    assert_eq!(seq(&hub_dir), 2);

    // A taglink that is not one, and a missing tag: one sentence, no release.
    routes.lock().unwrap().insert(
        "/api/flist/tf-zos/zos:prod.flist/light".into(),
        br#"{"name":"x","type":"regular","updated":1,"md5":"m"}"#.to_vec(),
    );
    let out = follow(&url, &hub_dir, &key);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("not a taglink"), "{err}");
    routes.lock().unwrap().insert(
        "/api/flist/tf-zos/zos:prod.flist/light".into(),
        light("tf-autobuilder/tags/v9", "ddd"),
    );
    let out = follow(&url, &hub_dir, &key);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("HTTP 404"));
    assert_eq!(seq(&hub_dir), 2);
}
