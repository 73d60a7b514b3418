//! A tiny `bootswarm demo` run: every node boots and the table is printed.

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
        "--workdir",
        work.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "demo failed: {}\n{stdout}",
        stderr_of(&out)
    );
    for needle in ["node", "time", "from hub", "hub egress", "× F", "N·F/B"] {
        assert!(stdout.contains(needle), "table lacks {needle:?}:\n{stdout}");
    }
    let ok_rows = stdout
        .lines()
        .filter(|l| l.contains("ok, tree identical"))
        .count();
    assert_eq!(ok_rows, 2, "{stdout}");
    // Hub-only: egress is N·F, i.e. 2.00 × F.
    assert!(stdout.contains("= 2.00 × F"), "{stdout}");
    // The kept work directory holds both nodes' trees.
    for node in ["1", "2"] {
        assert!(
            work.join("nodes")
                .join(node)
                .join("root/zinit/bin/zinit")
                .is_file()
        );
    }
}
