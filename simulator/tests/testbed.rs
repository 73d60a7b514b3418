//! The netns testbed with real `bootswarm` processes: `scenarios/lan-8.toml` and
//! `lan-8-upgrade.toml` (a gossiped upgrade) must meet their `[testbed.expect]`, and an
//! interrupted run must leave no namespace, process, tmpfs or work directory behind.
//!
//! Needs root and iproute2. Without them the tests print why and pass as skipped, unless
//! `BOOTSWARM_TESTBED_REQUIRED=1` is set (then they fail). The node binary is
//! `$BOOTSWARM_BIN`, else `bootswarm` next to this test's profile directory (built with
//! `cargo build -p bootswarm-node --bin bootswarm` when missing).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The testbed runs one at a time: two at once would share the CPU and distort timings.
static SERIAL: Mutex<()> = Mutex::new(());

const SIM: &str = env!("CARGO_BIN_EXE_bootswarm-sim");

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The reason to skip, if this machine cannot run the testbed.
fn skip_reason() -> Option<String> {
    let out = Command::new(SIM)
        .args(["testbed", "--help"])
        .output()
        .expect("bootswarm-sim runs");
    assert!(out.status.success(), "bootswarm-sim testbed --help failed");
    let root = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false);
    let tool = |t: &str| {
        Command::new(t)
            .arg("-V")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    let reason = if !root {
        Some("not running as root".to_string())
    } else if !tool("ip") || !tool("tc") {
        Some("iproute2 (ip, tc) is not installed".to_string())
    } else {
        None
    };
    if let Some(r) = &reason
        && std::env::var_os("BOOTSWARM_TESTBED_REQUIRED").is_some_and(|v| v == "1")
    {
        panic!("BOOTSWARM_TESTBED_REQUIRED=1 but the testbed cannot run: {r}");
    }
    reason
}

/// The node binary: `$BOOTSWARM_BIN`, else `<profile dir>/bootswarm`, built if missing.
fn node_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("BOOTSWARM_BIN") {
        return PathBuf::from(p);
    }
    // This test runs as target/<profile>/deps/testbed-<hash>.
    let exe = std::env::current_exe().expect("test executable path");
    let profile = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps layout");
    let bin = profile.join("bootswarm");
    if !bin.is_file() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.current_dir(workspace())
            .args(["build", "-p", "bootswarm-node", "--bin", "bootswarm"]);
        if profile.file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        let st = cmd.status().expect("cargo runs");
        assert!(st.success(), "cannot build the bootswarm binary");
    }
    assert!(bin.is_file(), "{} is missing", bin.display());
    bin
}

/// Namespaces whose name starts with `prefix`.
fn namespaces(prefix: &str) -> Vec<String> {
    let out = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip runs");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(prefix))
        .map(str::to_string)
        .collect()
}

fn workdirs(pid: u32) -> Vec<PathBuf> {
    let prefix = format!("bootswarm-testbed-{pid}-");
    std::fs::read_dir(std::env::temp_dir())
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default()
}

/// tmpfs mounts a run with this pid left (its work directory is one).
fn mounts(pid: u32) -> Vec<String> {
    let prefix = format!("bootswarm-testbed-{pid}-");
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| m.contains(&prefix))
        .map(str::to_string)
        .collect()
}

/// Runs `bootswarm-sim testbed scenarios/NAME.toml --json EXTRA...` with the node binary,
/// checks that it left nothing behind, and returns the last JSON line, parsed, with the line.
/// Fails if the testbed's own checks failed.
fn run_testbed(name: &str, extra: &[&str]) -> (serde_json::Value, String) {
    let bin = node_binary();
    let scenario = workspace().join(format!("scenarios/{name}.toml"));
    let started = Instant::now();
    let child = Command::new(SIM)
        .arg("testbed")
        .arg(&scenario)
        .arg("--bin")
        .arg(&bin)
        .arg("--json")
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("bootswarm-sim starts");
    let pid = child.id();
    let out = child.wait_with_output().expect("bootswarm-sim finishes");
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    println!("{stdout}");
    println!("wall time {:.1} s", started.elapsed().as_secs_f64());
    assert!(
        namespaces(&format!("bsw{pid}-")).is_empty(),
        "the testbed left namespaces behind"
    );
    assert!(mounts(pid).is_empty(), "the testbed left its tmpfs mounted");
    assert!(
        workdirs(pid).is_empty(),
        "the testbed left its work directory"
    );
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("no JSON from the testbed (exit {:?})", out.status))
        .to_string();
    let v: serde_json::Value = serde_json::from_str(&line).expect("valid JSON");
    assert!(
        v["testbed_passed"] == true && out.status.success(),
        "{name} failed its testbed checks: {}",
        v["testbed_checks"]
    );
    (v, line)
}

#[test]
fn lan_8_meets_its_testbed_expectations() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(why) = skip_reason() {
        eprintln!("skipped: {why}");
        return;
    }
    let (v, line) = run_testbed("lan-8", &[]);
    for key in [
        "measured_all_booted_s",
        "measured_time_vs_tmin",
        "measured_hub_egress_vs_f",
        "measured_hub_only_s",
        "simulated_all_booted_s",
        "simulated_hub_egress_bytes",
        "all_booted_s",
        "hub_egress_vs_f",
    ] {
        assert!(v.get(key).is_some(), "JSON lacks {key}: {line}");
    }
    let f = |k: &str| v[k].as_f64().unwrap_or(f64::NAN);
    assert!(f("measured_hub_egress_vs_f") <= 1.1, "{line}");
    assert!(f("measured_time_vs_tmin") <= 2.0, "{line}");
    assert!(
        f("measured_hub_only_s") > f("measured_all_booted_s"),
        "{line}"
    );
}

#[test]
fn lan_8_upgrade_switches_every_node_by_gossip() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(why) = skip_reason() {
        eprintln!("skipped: {why}");
        return;
    }
    let (v, line) = run_testbed("lan-8-upgrade", &["--no-baseline"]);
    let f = |k: &str| v[k].as_f64().unwrap_or(f64::NAN);
    assert_eq!(
        v["measured_upgrade_incomplete"],
        serde_json::Value::Null,
        "{line}"
    );
    assert!(f("measured_hub_upgrade_bytes_vs_changed") <= 1.05, "{line}");
}

#[test]
fn an_interrupted_run_removes_everything_it_made() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(why) = skip_reason() {
        eprintln!("skipped: {why}");
        return;
    }
    let bin = node_binary();
    // A namespace left by a run that died: its pid no longer exists.
    let dead = {
        let mut c = Command::new("true").spawn().expect("true runs");
        let pid = c.id();
        c.wait().expect("true exits");
        pid
    };
    let stale = format!("bsw{dead}-n0");
    let st = Command::new("ip")
        .args(["netns", "add", &stale])
        .status()
        .expect("ip runs");
    assert!(st.success());
    let scenario = workspace().join("scenarios/lan-8.toml");
    let child = Command::new(SIM)
        .arg("testbed")
        .arg(&scenario)
        .arg("--bin")
        .arg(&bin)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("bootswarm-sim starts");
    let pid = child.id();
    let prefix = format!("bsw{pid}-");
    // Interrupt once the node namespaces exist and the nodes are running.
    let deadline = Instant::now() + Duration::from_secs(60);
    while namespaces(&prefix).len() < 10 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_secs(2));
    let built = namespaces(&prefix).len();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .expect("signal sent");
    let out = child.wait_with_output().expect("bootswarm-sim exits");
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{stderr}");
    assert_eq!(built, 10, "the lab was not built (hub, bridge and 8 nodes)");
    assert_eq!(out.status.code(), Some(130), "exit status after SIGINT");
    assert!(stderr.contains("interrupted"), "{stderr}");
    assert!(namespaces(&prefix).is_empty(), "namespaces left behind");
    assert!(workdirs(pid).is_empty(), "work directory left behind");
    assert!(mounts(pid).is_empty(), "tmpfs left mounted");
    assert!(
        namespaces(&stale).is_empty(),
        "the stale namespace {stale} was not removed"
    );
    // No bootswarm process of this run is left (they ran in the removed namespaces).
    let leftover = Command::new("pgrep")
        .args(["-f", &format!("bootswarm-testbed-{pid}-")])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    assert!(leftover.is_empty(), "processes left: {leftover}");
}
