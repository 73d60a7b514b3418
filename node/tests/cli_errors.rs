//! Bad input to `keygen`, `publish`, `hub serve` and `inspect`: one sentence on stderr, a
//! non-zero exit, nothing half-written.

use std::fs;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::process::{Command, Output};

fn bootswarm(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bootswarm"))
        .args(args)
        .output()
        .expect("run bootswarm")
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Asserts a failure whose stderr is one `error: ...` line mentioning every `needle`.
fn fails(args: &[&str], needles: &[&str]) -> String {
    let out = bootswarm(args);
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    assert!(!out.status.success(), "bootswarm {args:?} succeeded");
    assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    for needle in needles {
        assert!(stderr.contains(needle), "{stderr:?} lacks {needle:?}");
    }
    stderr
}

fn keygen(dir: &Path) -> std::path::PathBuf {
    let key = dir.join("k");
    assert!(bootswarm(&["keygen", "--out", s(&key)]).status.success());
    key
}

fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<_> = walk(dir);
    names.sort();
    names
}

fn walk(dir: &Path) -> Vec<String> {
    let Ok(rd) = fs::read_dir(dir) else {
        return Vec::new();
    };
    rd.flat_map(|e| {
        let p = e.unwrap().path();
        let mut v = vec![p.display().to_string()];
        if p.is_dir() {
            v.extend(walk(&p));
        }
        v
    })
    .collect()
}

#[test]
fn keygen_writes_a_private_secret_and_a_pub_file() {
    let tmp = tempfile::tempdir().unwrap();
    let key = keygen(tmp.path());
    let mode = fs::metadata(&key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let secret = fs::read_to_string(&key).unwrap();
    assert_eq!(secret.trim().len(), 64);
    let public = fs::read_to_string(tmp.path().join("k.pub")).unwrap();
    assert!(
        public.starts_with("ed25519 ") && public.trim().len() == 8 + 64,
        "{public}"
    );
}

#[test]
fn keygen_refuses_to_overwrite_a_key() {
    let tmp = tempfile::tempdir().unwrap();
    let key = keygen(tmp.path());
    let before = fs::read(&key).unwrap();
    fails(&["keygen", "--out", s(&key)], &[s(&key), "already exists"]);
    assert_eq!(fs::read(&key).unwrap(), before);
}

#[test]
fn keygen_into_a_missing_directory_leaves_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let key = tmp.path().join("nope").join("k");
    fails(&["keygen", "--out", s(&key)], &[s(&key)]);
    assert!(entries(tmp.path()).is_empty());
}

#[test]
fn publish_missing_package_dir_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let key = keygen(tmp.path());
    let hub = tmp.path().join("hub");
    let missing = tmp.path().join("no-such-package");
    fails(
        &[
            "publish",
            "--hub-dir",
            s(&hub),
            "--channel",
            "c",
            "--key",
            s(&key),
            s(&missing),
        ],
        &[s(&missing), "does not exist"],
    );
    assert!(!hub.exists(), "no hub directory created");
}

#[test]
fn publish_with_an_unreadable_or_wrong_key_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let key = keygen(tmp.path());
    let pkg = tmp.path().join("pkg");
    fs::create_dir(&pkg).unwrap();
    fs::write(pkg.join("f"), b"x").unwrap();
    let hub = tmp.path().join("hub");
    let missing = tmp.path().join("missing.key");
    fails(
        &[
            "publish",
            "--hub-dir",
            s(&hub),
            "--channel",
            "c",
            "--key",
            s(&missing),
            s(&pkg),
        ],
        &[s(&missing), "keygen"],
    );
    let public = tmp.path().join("k.pub");
    fails(
        &[
            "publish",
            "--hub-dir",
            s(&hub),
            "--channel",
            "c",
            "--key",
            s(&public),
            s(&pkg),
        ],
        &[s(&public), "secret key"],
    );
    fails(
        &[
            "publish",
            "--hub-dir",
            s(&hub),
            "--channel",
            "c",
            "--key",
            s(&key),
            "--key",
            s(&key),
            s(&pkg),
        ],
        &["given twice", "--key once"],
    );
    assert!(!hub.exists());
}

#[test]
fn publish_refuses_special_files_and_bad_channels() {
    let tmp = tempfile::tempdir().unwrap();
    let key = keygen(tmp.path());
    let pkg = tmp.path().join("pkg");
    fs::create_dir_all(pkg.join("run")).unwrap();
    fs::write(pkg.join("a"), b"x").unwrap();
    let sock = pkg.join("run/daemon.sock");
    let _listener = UnixListener::bind(&sock).unwrap();
    let hub = tmp.path().join("hub");
    fails(
        &[
            "publish",
            "--hub-dir",
            s(&hub),
            "--channel",
            "c",
            "--key",
            s(&key),
            s(&pkg),
        ],
        &[s(&sock), "socket"],
    );
    assert!(!hub.exists());
    fs::remove_file(&sock).unwrap();
    fails(
        &[
            "publish",
            "--hub-dir",
            s(&hub),
            "--channel",
            "../up",
            "--key",
            s(&key),
            s(&pkg),
        ],
        &["../up", "channel name"],
    );
    assert!(!hub.exists());
}

#[test]
fn hub_serve_on_a_missing_dir_or_a_busy_port() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("no-hub");
    fails(
        &[
            "hub",
            "serve",
            "--dir",
            s(&missing),
            "--listen",
            "127.0.0.1:0",
        ],
        &[s(&missing), "does not exist"],
    );
    let busy = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap().to_string();
    fails(
        &["hub", "serve", "--dir", s(tmp.path()), "--listen", &addr],
        &[&addr, "already in use"],
    );
    fails(
        &[
            "hub",
            "serve",
            "--dir",
            s(tmp.path()),
            "--listen",
            "127.0.0.1:0",
            "--rate",
            "fast",
        ],
        &["'fast'", "rate"],
    );
}

#[test]
fn inspect_unknown_channel_bad_cid_and_missing_block() {
    let tmp = tempfile::tempdir().unwrap();
    let key = keygen(tmp.path());
    let pkg = tmp.path().join("pkg");
    fs::create_dir(&pkg).unwrap();
    fs::write(pkg.join("f"), b"x").unwrap();
    let hub = tmp.path().join("hub");
    let out = bootswarm(&[
        "publish",
        "--hub-dir",
        s(&hub),
        "--channel",
        "c",
        "--key",
        s(&key),
        s(&pkg),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    fails(
        &["inspect", "--hub-dir", s(&hub), "--channel", "other"],
        &["no channel 'other'"],
    );
    fails(
        &["inspect", "--hub-dir", s(&hub), "bafynotacid"],
        &["bafynotacid"],
    );
    let absent = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku";
    fails(
        &["inspect", "--hub-dir", s(&hub), absent],
        &[absent, "no block"],
    );
    fails(&["inspect", "--channel", "c"], &["--hub"]);
    let out = bootswarm(&["inspect", "--hub-dir", s(&hub), "--channel", "c"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("channel     c") && text.contains("seq         1"),
        "{text}"
    );
}
