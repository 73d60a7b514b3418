//! Process tests of `bootswarm import`: rfs v2 flists written by the tests (with their blocks in
//! a `dir://` store) published as a signed release.

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use bootswarm_node::hub;
use bootswarm_node::rfs::pack::{dir_sink, pack};
use bootswarm_protocol::block::is_rfs_block;
use bootswarm_protocol::manifest::{EntryKind, Flist, Route};
use bootswarm_protocol::release::SignedRelease;

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
    tmp: tempfile::TempDir,
    hub: PathBuf,
    key: PathBuf,
    store: PathBuf,
    fls: Vec<PathBuf>,
}

/// Three packages packed into `.fl` files whose route is a two-level `dir://` store.
fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let key = t.join("publisher.key");
    ok(&["keygen", "--out", s(&key)]);
    let store = t.join("store");
    let route = Route {
        start: 0,
        end: 255,
        url: format!("dir://{}", store.display()),
    };
    let mut fls = Vec::new();
    for (n, name) in ["zos-base", "zos-net", "zos-tools"].iter().enumerate() {
        let src = t.join("src").join(name);
        fs::create_dir_all(src.join("bin")).unwrap();
        fs::create_dir_all(src.join("empty")).unwrap();
        fs::write(src.join("bin/tool"), noise(600 * 1024 + n * 999, n as u64)).unwrap();
        fs::set_permissions(src.join("bin/tool"), fs::Permissions::from_mode(0o755)).unwrap();
        fs::write(src.join("conf"), format!("package {name}\n")).unwrap();
        symlink("bin/tool", src.join("link")).unwrap();
        let fl = t.join(format!("{name}.fl"));
        pack(
            &src,
            &fl,
            std::slice::from_ref(&route),
            Some("1.0"),
            &mut dir_sink(&store, false),
        )
        .unwrap();
        fls.push(fl);
    }
    Fixture {
        hub: t.join("hub"),
        tmp,
        key,
        store,
        fls,
    }
}

fn import(f: &Fixture, extra: &[&str]) -> Output {
    let mut args = vec!["import", "--hub-dir", s(&f.hub), "--channel", "zos"];
    args.extend(["--key", s(&f.key)]);
    args.extend(extra);
    args.extend(f.fls.iter().map(|p| s(p)));
    bootswarm(&args)
}

fn latest(hub_dir: &Path) -> SignedRelease {
    SignedRelease::decode(&fs::read(hub::latest_path(hub_dir, "zos")).unwrap()).unwrap()
}

fn flist(hub_dir: &Path, cid: &bootswarm_protocol::block::Cid) -> Flist {
    Flist::decode(&fs::read(hub::block_path(hub_dir, cid)).unwrap()).unwrap()
}

#[test]
fn import_publishes_one_package_per_fl_with_its_routes_and_keys() {
    let f = fixture();
    let out = import(&f, &["--verify"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("imported channel 'zos' seq 1"), "{stdout}");
    assert!(stdout.contains("9 rfs blocks"), "{stdout}");
    let release = latest(&f.hub);
    let root = flist(&f.hub, &release.release.root);
    let names: Vec<_> = root.children.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["zos-base", "zos-net", "zos-tools"]);
    for child in &root.children {
        let pkg = flist(&f.hub, &child.cid);
        assert_eq!(pkg.routes.len(), 1);
        assert_eq!(pkg.routes[0].url, format!("dir://{}", f.store.display()));
        let tool = pkg.entries.iter().find(|e| e.path == "bin/tool").unwrap();
        assert_eq!(
            (tool.kind, tool.mode, tool.chunks.len()),
            (EntryKind::File, 0o755, 2)
        );
        assert!(
            tool.chunks
                .iter()
                .all(|c| is_rfs_block(&c.cid) && c.key.is_some())
        );
        let link = pkg.entries.iter().find(|e| e.path == "link").unwrap();
        assert_eq!(link.target.as_deref(), Some("bin/tool"));
        assert!(
            pkg.entries
                .iter()
                .any(|e| e.path == "empty" && e.kind == EntryKind::Dir)
        );
        // No rfs block is copied into the hub.
        for c in &tool.chunks {
            assert!(!hub::block_path(&f.hub, &c.cid).exists());
        }
    }

    // Without --verify nothing is fetched: the import works with the store gone.
    let moved = f.tmp.path().join("store-away");
    fs::rename(&f.store, &moved).unwrap();
    let out = import(&f, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(latest(&f.hub).release.seq, 2);
    let out = import(&f, &["--verify"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("fails --verify") && err.contains("does not have it"),
        "{err}"
    );
    assert_eq!(latest(&f.hub).release.seq, 2);
    fs::rename(&moved, &f.store).unwrap();
}

#[test]
fn verify_refuses_a_flipped_byte_naming_the_flist_and_the_block() {
    let f = fixture();
    // Flip one byte of one stored block.
    let sub = fs::read_dir(&f.store)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let block = fs::read_dir(&sub).unwrap().next().unwrap().unwrap().path();
    let mut bytes = fs::read(&block).unwrap();
    bytes[7] ^= 0x20;
    fs::write(&block, &bytes).unwrap();
    let out = import(&f, &["--verify"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains(".fl fails --verify"), "{err}");
    assert!(err.contains("sent bytes that do not match it"), "{err}");
    assert!(!hub::latest_path(&f.hub, "zos").exists());
}

#[test]
fn verify_refuses_a_wrong_key_naming_the_file_and_the_block() {
    let f = fixture();
    let db = rusqlite::Connection::open(&f.fls[1]).unwrap();
    db.execute(
        "UPDATE block SET key = zeroblob(32) WHERE rowid = (SELECT MIN(rowid) FROM block)",
        [],
    )
    .unwrap();
    drop(db);
    let out = import(&f, &["--verify"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("zos-net.fl fails --verify"), "{err}");
    assert!(err.contains("does not decrypt"), "{err}");
    assert!(
        err.contains("of 'bin/tool'") || err.contains("of 'conf'"),
        "{err}"
    );
    assert!(!hub::latest_path(&f.hub, "zos").exists());
}

#[test]
fn bad_flists_are_one_sentence() {
    let f = fixture();
    let junk = f.tmp.path().join("junk.fl");
    fs::write(&junk, b"not sqlite at all").unwrap();
    let out = bootswarm(&[
        "import",
        "--hub-dir",
        s(&f.hub),
        "--channel",
        "zos",
        "--key",
        s(&f.key),
        s(&junk),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("junk.fl is not a usable rfs flist"), "{err}");
    let dup = bootswarm(&[
        "import",
        "--hub-dir",
        s(&f.hub),
        "--channel",
        "zos",
        "--key",
        s(&f.key),
        s(&f.fls[0]),
        s(&f.fls[0]),
    ]);
    assert!(!dup.status.success());
    assert!(String::from_utf8_lossy(&dup.stderr).contains("two flists are named 'zos-base'"));
}
