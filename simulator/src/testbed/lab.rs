//! Network namespaces, links and shaping, removed again when the [`Lab`] is dropped.
//!
//! Layout (nothing is created in the root namespace):
//!
//! ```text
//! bsw<pid>-br   bridge br0; one veth end per host: vhub, vn0, vn1, ...
//! bsw<pid>-hub  eth0 10.77.0.1/16
//! bsw<pid>-nK   eth0 10.77.(1 + K/200).(1 + K%200)/16
//! ```
//!
//! Each veth pair is created in the bridge namespace with its peer end placed straight into
//! the host's namespace. Shaping is tbf on egress: the hub's eth0 (the hub link), and for
//! shaped NICs the node's eth0 (upload) and its bridge-side end (download).

use super::Error;
use std::fs::File;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Most nodes a lab holds.
pub(crate) const MAX_NODES: usize = 1000;
/// Prefix of every namespace name; the creator's pid and a dash follow.
const PREFIX: &str = "bsw";

/// The namespaces of one run. Dropping it kills every process inside them and deletes them.
#[derive(Debug)]
pub(crate) struct Lab {
    prefix: String,
    /// Namespaces created so far, in creation order.
    created: Vec<String>,
    nodes: usize,
}

/// Rates to shape, in bytes per second; `None`: unshaped.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Shaping {
    /// The hub's egress.
    pub(crate) hub: u64,
    /// Node upload (node-side egress).
    pub(crate) node_up: Option<u64>,
    /// Node download (bridge-side egress).
    pub(crate) node_down: Option<u64>,
}

impl Lab {
    /// Builds the bridge, the hub's and `nodes` node namespaces, links and shaping.
    pub(crate) fn build(nodes: usize, shaping: Shaping) -> Result<Lab, Error> {
        if nodes == 0 || nodes > MAX_NODES {
            return Err(Error::Failed(format!(
                "the testbed runs 1 to {MAX_NODES} nodes, not {nodes}; lower [topology] nodes"
            )));
        }
        let mut lab = Lab {
            prefix: format!("{PREFIX}{}-", std::process::id()),
            created: Vec::new(),
            nodes,
        };
        let br = lab.bridge_ns();
        lab.add_ns(&br)?;
        ip(&["-n", &br, "link", "add", "br0", "type", "bridge"])?;
        ip(&["-n", &br, "link", "set", "br0", "up"])?;
        no_bridge_netfilter(&br)?;
        let hub = lab.hub_ns();
        lab.add_ns(&hub)?;
        lab.attach(&hub, "vhub", Lab::hub_ip())?;
        tbf(&hub, "eth0", shaping.hub)?;
        for k in 0..nodes {
            let ns = lab.node_ns(k);
            lab.add_ns(&ns)?;
            let end = format!("vn{k}");
            lab.attach(&ns, &end, Lab::node_ip(k))?;
            if let Some(up) = shaping.node_up {
                tbf(&ns, "eth0", up)?;
            }
            if let Some(down) = shaping.node_down {
                tbf(&br, &end, down)?;
            }
        }
        Ok(lab)
    }

    fn add_ns(&mut self, name: &str) -> Result<(), Error> {
        ip(&["netns", "add", name])?;
        self.created.push(name.to_string());
        ip(&["-n", name, "link", "set", "lo", "up"])
    }

    /// A veth pair from the bridge (`end`) to `eth0` in `ns`, with `addr`/16, both up.
    fn attach(&self, ns: &str, end: &str, addr: Ipv4Addr) -> Result<(), Error> {
        let br = self.bridge_ns();
        ip(&[
            "-n", &br, "link", "add", end, "type", "veth", "peer", "name", "eth0", "netns", ns,
        ])?;
        ip(&["-n", &br, "link", "set", end, "master", "br0"])?;
        ip(&["-n", &br, "link", "set", end, "up"])?;
        ip(&[
            "-n",
            ns,
            "addr",
            "add",
            &format!("{addr}/16"),
            "dev",
            "eth0",
        ])?;
        ip(&["-n", ns, "link", "set", "eth0", "up"])
    }

    fn bridge_ns(&self) -> String {
        format!("{}br", self.prefix)
    }

    /// The hub's namespace.
    pub(crate) fn hub_ns(&self) -> String {
        format!("{}hub", self.prefix)
    }

    /// Node `k`'s namespace.
    pub(crate) fn node_ns(&self, k: usize) -> String {
        format!("{}n{k}", self.prefix)
    }

    /// The hub's address.
    pub(crate) fn hub_ip() -> Ipv4Addr {
        Ipv4Addr::new(10, 77, 0, 1)
    }

    /// Node `k`'s address.
    pub(crate) fn node_ip(k: usize) -> Ipv4Addr {
        Ipv4Addr::new(10, 77, 1 + (k / 200) as u8, 1 + (k % 200) as u8)
    }

    /// Nodes in the lab.
    pub(crate) fn nodes(&self) -> usize {
        self.nodes
    }

    /// `program` run inside `ns` (through `ip netns exec`, which execs it in place, so the
    /// child's pid is the program's).
    pub(crate) fn command(ns: &str, program: &Path) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns]).arg(program);
        cmd
    }

    /// Kills the processes in every namespace of this lab (they must be gone before the
    /// namespaces can be deleted).
    pub(crate) fn kill_all(&self) {
        for ns in &self.created {
            kill_processes(ns);
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.kill_all();
        for ns in self.created.iter().rev() {
            if let Err(e) = ip(&["netns", "del", ns]) {
                eprintln!("warning: {e}");
            }
        }
    }
}

/// Runs `ip ARGS`; a failure is one sentence with ip's own message.
fn ip(args: &[&str]) -> Result<(), Error> {
    run("ip", args)
}

/// Runs `tool ARGS`; a failure is one sentence with the tool's own message.
pub(super) fn run(tool: &str, args: &[&str]) -> Result<(), Error> {
    let package = match tool {
        "ip" | "tc" => "iproute2",
        _ => "util-linux",
    };
    let out = Command::new(tool)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Error::Failed(format!("cannot run {tool} ({e}); install {package}")))?;
    if out.status.success() {
        return Ok(());
    }
    let msg = String::from_utf8_lossy(&out.stderr);
    Err(Error::Failed(format!(
        "`{tool} {}` failed: {}",
        args.join(" "),
        msg.trim().lines().next().unwrap_or("no message")
    )))
}

/// Bridged frames skip iptables in `ns`, as on a real switch. With the host's br_netfilter
/// module loaded they would otherwise cross netfilter twice per hop, costing the co-located
/// nodes CPU that a farm's nodes do not spend. The switches are per namespace (Linux >= 5.3).
fn no_bridge_netfilter(ns: &str) -> Result<(), Error> {
    let dir = Path::new("/proc/sys/net/bridge");
    if !dir.exists() {
        return Ok(()); // br_netfilter is not loaded: bridged frames never see iptables.
    }
    for key in [
        "bridge-nf-call-iptables",
        "bridge-nf-call-ip6tables",
        "bridge-nf-call-arptables",
    ] {
        run(
            "ip",
            &[
                "netns",
                "exec",
                ns,
                "sh",
                "-c",
                &format!("echo 0 > {}", dir.join(key).display()),
            ],
        )?;
    }
    Ok(())
}

/// tbf on the egress of `dev` in `ns` at `rate` bytes/s. The bucket holds at least 10 ms of
/// the rate (tc-tbf wants rate/HZ) and a 64 KiB GSO packet; the queue at most 50 ms.
fn tbf(ns: &str, dev: &str, rate: u64) -> Result<(), Error> {
    let burst = (rate / 100).max(64 << 10);
    run(
        "tc",
        &[
            "-n",
            ns,
            "qdisc",
            "replace",
            "dev",
            dev,
            "root",
            "tbf",
            "rate",
            &format!("{}bit", rate.saturating_mul(8)),
            "burst",
            &burst.to_string(),
            "latency",
            "50ms",
        ],
    )
}

/// Pids of the processes in namespace `ns`.
fn pids_in(ns: &str) -> Vec<i32> {
    Command::new("ip")
        .args(["netns", "pids", ns])
        .stderr(Stdio::null())
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// SIGKILLs every process in `ns` and waits (up to 5 s) until none is left.
fn kill_processes(ns: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let pids = pids_in(ns);
        if pids.is_empty() || Instant::now() > deadline {
            return;
        }
        for p in pids {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(p),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Deletes namespaces left by earlier runs whose process is gone; returns their names.
pub(crate) fn remove_stale() -> Vec<String> {
    let Ok(out) = Command::new("ip")
        .args(["netns", "list"])
        .stderr(Stdio::null())
        .output()
    else {
        return Vec::new();
    };
    let me = std::process::id();
    let mut removed = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Some(name) = line.split_whitespace().next() else {
            continue;
        };
        let Some(pid) = name
            .strip_prefix(PREFIX)
            .and_then(|r| r.split_once('-'))
            .and_then(|(pid, _)| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == me || Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        kill_processes(name);
        if ip(&["netns", "del", name]).is_ok() {
            removed.push(name.to_string());
        }
    }
    removed
}

/// Checks that we are root and have `ip` and `tc`; the error names what is missing.
pub(crate) fn preflight() -> Result<(), Error> {
    let mut missing = Vec::new();
    for tool in ["ip", "tc"] {
        let ok = Command::new(tool)
            .arg("-V")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            missing.push(format!("`{tool}` (iproute2)"));
        }
    }
    if !nix::unistd::geteuid().is_root() {
        missing.push("root privileges (network namespaces need CAP_SYS_ADMIN)".into());
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(Error::Prerequisite(format!(
            "the testbed needs {}, which this run does not have",
            missing.join(" and ")
        )))
    }
}

/// `GET path` on `addr` from inside namespace `ns`, returning the body of a 200 answer.
///
/// A short-lived thread enters the namespace (setns affects only the calling thread), so
/// the socket lives there; the rest of the process stays in the root namespace.
pub(crate) fn http_get(ns: &str, addr: SocketAddr, path: &str) -> Result<String, String> {
    let ns_path = format!("/run/netns/{ns}");
    let path = path.to_string();
    let worker = std::thread::spawn(move || -> Result<String, String> {
        let f = File::open(&ns_path).map_err(|e| format!("cannot open {ns_path} ({e})"))?;
        nix::sched::setns(&f, nix::sched::CloneFlags::CLONE_NEWNET)
            .map_err(|e| format!("cannot enter {ns_path} ({e})"))?;
        let timeout = Duration::from_secs(5);
        let mut s = TcpStream::connect_timeout(&addr, timeout)
            .map_err(|e| format!("cannot connect to {addr} ({e})"))?;
        s.set_read_timeout(Some(timeout)).ok();
        s.set_write_timeout(Some(timeout)).ok();
        write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")
            .map_err(|e| format!("cannot send to {addr} ({e})"))?;
        let mut raw = Vec::new();
        s.take(4 << 20)
            .read_to_end(&mut raw)
            .map_err(|e| format!("cannot read from {addr} ({e})"))?;
        let text = String::from_utf8_lossy(&raw);
        let (head, body) = text
            .split_once("\r\n\r\n")
            .ok_or_else(|| format!("{addr}{path} sent no complete HTTP answer"))?;
        let status = head.lines().next().unwrap_or("");
        if status.split_whitespace().nth(1) != Some("200") {
            return Err(format!("{addr}{path} answered {status:?}"));
        }
        Ok(body.to_string())
    });
    worker
        .join()
        .map_err(|_| format!("the HTTP helper thread for {addr} failed"))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_distinct_and_inside_10_77() {
        let mut seen = std::collections::BTreeSet::new();
        seen.insert(Lab::hub_ip());
        for k in 0..MAX_NODES {
            let a = Lab::node_ip(k);
            assert_eq!(&a.octets()[..2], &[10, 77]);
            assert!(a.octets()[3] != 0 && a.octets()[3] != 255);
            assert!(seen.insert(a), "{a} twice");
        }
    }
}
