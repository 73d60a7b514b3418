//! Zero-OS integration: the restart recipe against a fake `zinit` that records its calls.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_bootswarm")
}

/// A `zinit` that appends each call to `log` and succeeds.
fn fake_zinit(dir: &Path, log: &Path) -> std::path::PathBuf {
    let path = dir.join("zinit");
    fs::write(
        &path,
        format!("#!/bin/sh\necho \"$*\" >> '{}'\n", log.display()),
    )
    .unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    path
}

#[test]
fn a_changed_package_s_services_restart_like_the_zero_os_upgrader_does() {
    let tmp = tempfile::tempdir().unwrap();
    let current = tmp.path().join("current");
    let services = current.join("zos/etc/zinit");
    fs::create_dir_all(&services).unwrap();
    for name in ["noded", "contd", "identityd", "redis"] {
        fs::write(
            services.join(format!("{name}.yaml")),
            format!("exec: {name}\n"),
        )
        .unwrap();
    }
    fs::write(services.join("README"), "not a service").unwrap();
    let zinit_dir = tmp.path().join("etc-zinit");
    fs::create_dir_all(&zinit_dir).unwrap();
    let log = tmp.path().join("calls");
    let zinit = fake_zinit(tmp.path(), &log);
    let out = Command::new(bin())
        .args(["zinit-restart", "zos", "--zinit-dir"])
        .arg(&zinit_dir)
        .arg("--zinit")
        .arg(&zinit)
        .env("BOOTSWARM_CURRENT", &current)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let calls = fs::read_to_string(&log).unwrap();
    let calls: Vec<&str> = calls.lines().collect();
    assert_eq!(
        calls,
        [
            "stop contd",
            "forget contd",
            "monitor contd",
            "start contd",
            "stop noded",
            "forget noded",
            "monitor noded",
            "start noded"
        ]
    );
    assert_eq!(
        fs::read_to_string(zinit_dir.join("noded.yaml")).unwrap(),
        "exec: noded\n",
        "the new service file is in place before monitor"
    );
    assert!(!zinit_dir.join("identityd.yaml").exists());
    assert!(!zinit_dir.join("redis.yaml").exists());

    // A package without services restarts nothing; a bad name is one sentence.
    let out = Command::new(bin())
        .args(["zinit-restart", "../x", "--zinit"])
        .arg(&zinit)
        .env("BOOTSWARM_CURRENT", &current)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a package name"));
}
