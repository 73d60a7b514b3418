//! The service files shipped in `dist/`: every unit's command line is one the binary accepts,
//! the sandboxing is there, and `systemd-analyze verify` accepts the units where it is
//! installed (`BOOTSWARM_SYSTEMD_REQUIRED=1` makes its absence a failure).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use clap::Parser;

fn dist(sub: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../dist")
        .join(sub)
}

/// `[section] key=value` lines of a unit, repeated keys kept in order.
fn parse_unit(text: &str) -> BTreeMap<String, Vec<(String, String)>> {
    let mut out: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    let mut section = String::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(s) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = s.to_string();
            continue;
        }
        let (k, v) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("not key=value: {line}"));
        out.entry(section.clone())
            .or_default()
            .push((k.trim().to_string(), v.trim().to_string()));
    }
    out
}

fn units() -> Vec<PathBuf> {
    let mut units: Vec<PathBuf> = std::fs::read_dir(dist("systemd"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "service"))
        .collect();
    units.sort();
    assert!(!units.is_empty());
    units
}

#[test]
fn systemd_units_are_sandboxed_and_run_commands_the_binary_accepts() {
    for unit in units() {
        let text = std::fs::read_to_string(&unit).unwrap();
        let u = parse_unit(&text);
        let service = &u["Service"];
        let get = |k: &str| {
            service
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.as_str())
        };
        for (key, want) in [
            ("DynamicUser", "yes"),
            ("ProtectSystem", "strict"),
            ("NoNewPrivileges", "yes"),
            ("StateDirectory", "bootswarm"),
            ("ProtectHome", "yes"),
            ("PrivateTmp", "yes"),
        ] {
            assert_eq!(get(key), Some(want), "{}: {key}", unit.display());
        }
        let exec = get("ExecStart").expect("ExecStart");
        let words: Vec<String> = exec
            .split_whitespace()
            .map(|w| {
                w.replace("${STATE_DIRECTORY}", "/var/lib/bootswarm")
                    .replace("${CREDENTIALS_DIRECTORY}", "/run/credentials/x")
            })
            .collect();
        assert_eq!(words[0], "/usr/local/bin/bootswarm", "{}", unit.display());
        if let Err(e) = bootswarm_node::cli::Cli::try_parse_from(&words) {
            panic!(
                "{}: ExecStart is not a valid command line: {e}",
                unit.display()
            );
        }
        assert!(u["Install"].iter().any(|(k, _)| k == "WantedBy"));
    }
}

#[test]
fn systemd_analyze_verifies_the_units() {
    let have = Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !have {
        assert!(
            std::env::var_os("BOOTSWARM_SYSTEMD_REQUIRED").is_none_or(|v| v != "1"),
            "BOOTSWARM_SYSTEMD_REQUIRED=1 but systemd-analyze is not installed"
        );
        eprintln!("skipped: systemd-analyze is not installed");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    for unit in units() {
        // verify checks that the command exists: point it at the binary under test.
        let text = std::fs::read_to_string(&unit)
            .unwrap()
            .replace("/usr/local/bin/bootswarm", env!("CARGO_BIN_EXE_bootswarm"));
        let copy = tmp.path().join(unit.file_name().unwrap());
        std::fs::write(&copy, text).unwrap();
        let out = Command::new("systemd-analyze")
            .args(["verify", "--man=no"])
            .arg(&copy)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && err.trim().is_empty(),
            "systemd-analyze verify {}: {err}",
            unit.display()
        );
    }
}
