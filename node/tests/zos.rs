//! Zero-OS integration: the restart recipe against a fake `zinit` that records its calls, the
//! zinit unit, and nodes configured by nothing but a kernel command line.

mod boot_common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use boot_common::{Hub, bin, keygen, make_packages, publish, stdout_lines};

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

/// The keys zinit 0.2 reads from a service file.
const ZINIT_KEYS: [&str; 9] = [
    "exec",
    "test",
    "oneshot",
    "after",
    "shutdown_timeout",
    "signal",
    "log",
    "env",
    "dir",
];

#[test]
fn the_zinit_unit_runs_the_daemon_after_the_network_and_tests_it_through_status() {
    use bootswarm_node::cli::{Cli, Command as Sub};
    use clap::Parser;
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../dist/zinit/bootswarm.yaml");
    let text = fs::read_to_string(&path).unwrap();
    let docs = yaml_rust2::YamlLoader::load_from_str(&text).unwrap();
    assert_eq!(docs.len(), 1);
    let unit = docs[0].as_hash().expect("a mapping");
    for key in unit.keys() {
        let key = key.as_str().expect("string keys");
        assert!(ZINIT_KEYS.contains(&key), "zinit does not read `{key}`");
    }
    let field = |k: &str| docs[0][k].as_str().unwrap_or_else(|| panic!("no {k}"));
    let after: Vec<&str> = docs[0]["after"]
        .as_vec()
        .expect("after: a list")
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert_eq!(after, ["internet"]);
    assert!(!docs[0]["oneshot"].as_bool().unwrap_or(false), "a service");

    let exec = shlex::split(field("exec")).unwrap();
    let Sub::Run(run) = Cli::try_parse_from(&exec).unwrap().command else {
        panic!("exec is not `bootswarm run`: {exec:?}");
    };
    assert!(
        run.hub.is_none() && run.store.is_none(),
        "no farm settings in the unit"
    );
    let http = run.http.expect("the test needs --http");
    let test = shlex::split(field("test")).unwrap();
    let Sub::Status(status) = Cli::try_parse_from(&test).unwrap().command else {
        panic!("test is not `bootswarm status`: {test:?}");
    };
    assert_eq!(
        status.node, http,
        "the test asks the address the daemon serves"
    );
}

/// `bootswarm run` with no farm flags: everything from the kernel command line in `cmdline`.
struct ZosNode {
    child: Child,
    lines: mpsc::Receiver<String>,
    addr: String,
    status: String,
}

impl ZosNode {
    fn start(dir: &Path, cmdline: &str) -> ZosNode {
        fs::create_dir_all(dir).unwrap();
        let file = dir.join("cmdline");
        fs::write(&file, cmdline).unwrap();
        fs::write(dir.join("empty.toml"), "").unwrap();
        let mut child = Command::new(bin())
            .args([
                "run",
                "--listen",
                "/ip4/127.0.0.1/tcp/0",
                "--http",
                "127.0.0.1:0",
            ])
            .env("BOOTSWARM_KERNEL_CMDLINE", &file)
            .env("BOOTSWARM_CONFIG", dir.join("empty.toml"))
            .env_remove("BOOTSWARM_HUB")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = stdout_lines(&mut child);
        let (mut addr, mut status) = (String::new(), String::new());
        while addr.is_empty() || status.is_empty() {
            let line = lines
                .recv_timeout(Duration::from_secs(60))
                .expect("listening and http lines");
            if let Some(a) = line.strip_prefix("listening ") {
                addr = a.trim().to_string();
            } else if let Some(u) = line.strip_prefix("http ") {
                status = u.trim().trim_start_matches("http://").to_string();
            }
        }
        ZosNode {
            child,
            lines,
            addr,
            status,
        }
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

    fn json(&self) -> serde_json::Value {
        let out = Command::new(bin())
            .args(["status", "--json", "--node", &self.status])
            .output()
            .unwrap();
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

impl Drop for ZosNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_until(limit: Duration, mut ok: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    ok()
}

#[test]
fn nodes_configured_by_the_kernel_command_line_alone_boot_and_keep_to_their_farm() {
    let tmp = tempfile::tempdir().unwrap();
    let packages = make_packages(&tmp.path().join("pkgs"));
    let (key, trust) = keygen(tmp.path(), "publisher.key");
    let hub_dir = tmp.path().join("hub");
    publish(&hub_dir, &key, "development-v3light", &packages);
    let hub = Hub::start(&hub_dir);
    let line = |name: &str, farm: u32, peer: Option<&str>| {
        let store: PathBuf = tmp.path().join(name).join("store");
        format!(
            "initrd=initramfs nomodeset version=v3light runmode=dev farmer_id={farm} \
             bootswarm.hub={} bootswarm.trust='{}' bootswarm.store='{}' {}",
            hub.url,
            trust.display(),
            store.display(),
            peer.map(|p| format!("bootswarm.peers={p}"))
                .unwrap_or_default()
        )
    };
    let a = ZosNode::start(&tmp.path().join("a"), &line("a", 42, None));
    let b = ZosNode::start(&tmp.path().join("b"), &line("b", 42, Some(&a.addr)));
    let c = ZosNode::start(&tmp.path().join("c"), &line("c", 43, Some(&a.addr)));
    for n in [&a, &b, &c] {
        n.wait_booted();
        assert_eq!(
            n.json()["release"]["channel"],
            "development-v3light",
            "{}",
            n.json()
        );
    }
    assert!(
        wait_until(Duration::from_secs(30), || a.json()["peers"] == 1
            && b.json()["peers"] == 1),
        "a and b, of farm 42, connect: {} {}",
        a.json(),
        b.json()
    );
    assert_eq!(
        c.json()["peers"],
        0,
        "farm 43 never joins farm 42: {}",
        c.json()
    );
    assert!(
        wait_until(Duration::from_secs(30), || a.json()["handshakes_refused"]
            .as_u64()
            .unwrap_or(0)
            > 0),
        "a refuses c's handshakes: {}",
        a.json()
    );
}

#[test]
fn bootswarm_off_keeps_the_node_out_of_the_swarm_until_stopped() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("cmdline");
    fs::write(&file, "runmode=prod bootswarm.off").unwrap();
    fs::write(tmp.path().join("empty.toml"), "").unwrap();
    let mut child = Command::new(bin())
        .arg("run")
        .env("BOOTSWARM_KERNEL_CMDLINE", &file)
        .env("BOOTSWARM_CONFIG", tmp.path().join("empty.toml"))
        .env("BOOTSWARM_HUB", "http://127.0.0.1:9")
        .env("BOOTSWARM_TRUST", tmp.path().join("trust"))
        .env("BOOTSWARM_STORE", tmp.path().join("store"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        child.try_wait().unwrap().is_none(),
        "zinit would restart an exited service"
    );
    child.kill().unwrap();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.matches("bootswarm.off").count(), 1, "{err}");
    assert!(out.stdout.is_empty(), "no listening line: {:?}", out.stdout);
    assert!(!tmp.path().join("store").exists(), "nothing created");
}

#[test]
fn a_node_without_a_hub_anywhere_says_every_way_to_give_one() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("cmdline");
    fs::write(&file, "runmode=prod farmer_id=1").unwrap();
    fs::write(tmp.path().join("empty.toml"), "").unwrap();
    let out = Command::new(bin())
        .arg("run")
        .env("BOOTSWARM_KERNEL_CMDLINE", &file)
        .env("BOOTSWARM_CONFIG", tmp.path().join("empty.toml"))
        .env_remove("BOOTSWARM_HUB")
        .env("BOOTSWARM_STORE", tmp.path().join("store"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "error: no hub is set; give --hub, BOOTSWARM_HUB, `hub = ...` in the config file or bootswarm.hub= on the kernel command line\n"
    );
}
