//! A tiny `bootswarm demo` run: every node boots through the swarm, the hub-only baseline is
//! measured, and the table is printed.

mod boot_common;

use boot_common::*;

#[test]
fn tiny_demo_boots_every_node_and_prints_the_table() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("work");
    let out = run(&[
        "demo",
        "--nodes",
        "2",
        "--size",
        "8MiB",
        "--hub-rate",
        "1gbit",
        "--baseline",
        "--workdir",
        work.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "demo failed: {}\n{stdout}",
        stderr_of(&out)
    );
    for needle in [
        "node",
        "time",
        "from hub",
        "from peers",
        "all booted",
        "T_min",
        "hub egress",
        "× F",
        "N·F/B",
        "hub-only",
    ] {
        assert!(stdout.contains(needle), "table lacks {needle:?}:\n{stdout}");
    }
    let ok_rows = stdout
        .lines()
        .filter(|l| l.contains("ok, tree identical"))
        .count();
    assert_eq!(ok_rows, 2, "{stdout}");
    // Through the swarm the hub sends each block about once; hub-only costs N·F = 2 × F.
    let egress_line = stdout
        .lines()
        .find(|l| l.starts_with("hub egress"))
        .unwrap_or_else(|| panic!("no hub egress line:\n{stdout}"));
    let ratio: f64 = egress_line
        .split(" = ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|r| r.parse().ok())
        .unwrap_or_else(|| panic!("cannot read the ratio in {egress_line:?}"));
    assert!(ratio <= 1.1, "hub egress {ratio} × F:\n{stdout}");
    let baseline = stdout.lines().find(|l| l.starts_with("hub-only")).unwrap();
    assert!(baseline.contains("hub egress 2.00 × F"), "{stdout}");
    // The kept work directory holds both nodes' trees.
    for node in ["1", "2"] {
        assert!(
            work.join("nodes")
                .join(node)
                .join("root/current/zinit/bin/zinit")
                .is_file()
        );
    }
}

/// `demo --rfs`: the farm boots rfs content from a local RESP store (skipped without
/// redis-server unless BOOTSWARM_REDIS_REQUIRED=1, where its absence is one sentence).
#[test]
fn tiny_rfs_demo_boots_from_a_local_resp_store() {
    let present = std::process::Command::new("redis-server")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("work");
    let out = run(&[
        "demo",
        "--rfs",
        "--nodes",
        "2",
        "--size",
        "4MiB",
        "--hub-rate",
        "1gbit",
        "--workdir",
        work.to_str().unwrap(),
    ]);
    if !present {
        assert_one_sentence(&out, "needs redis-server");
        assert!(
            std::env::var("BOOTSWARM_REDIS_REQUIRED").as_deref() != Ok("1"),
            "redis-server is not installed but BOOTSWARM_REDIS_REQUIRED=1"
        );
        eprintln!("skipped: redis-server is not installed");
        return;
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "demo failed: {}\n{stdout}",
        stderr_of(&out)
    );
    assert!(stdout.contains("from origin"), "{stdout}");
    let ok_rows = stdout
        .lines()
        .filter(|l| l.contains("ok, tree identical"))
        .count();
    assert_eq!(ok_rows, 2, "{stdout}");
    assert!(work.join("fl").read_dir().unwrap().count() > 0);
}
