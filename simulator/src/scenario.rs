//! Scenario files (`scenarios/*.toml`): parsing and validation.
//!
//! Every error is one sentence naming the file and the key.
//!
//! Sections: `[meta]`, `[topology]`, `[release]`, `[[event]]`, `[[fault]]`, `[expect]`,
//! `[sim]`, `[agent]`, `[poll]`, `[host]` (see [`HostCpu`]) and `[testbed]`.

use serde::Deserialize;
use std::fmt;
use std::path::Path;

/// A scenario file that could not be used.
#[derive(Debug, Clone, PartialEq)]
pub struct ScenarioError {
    /// The file.
    pub file: String,
    /// What is wrong.
    pub msg: String,
}

impl fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "scenario {}: {}", self.file, self.msg)
    }
}

impl std::error::Error for ScenarioError {}

/// Which nodes an event or fault applies to.
#[derive(Debug, Clone, PartialEq)]
pub enum NodeSel {
    /// Every eligible node.
    All,
    /// This many nodes.
    Count(u32),
    /// Nodes `a..b` (half-open).
    Range(u32, u32),
    /// This fraction of the eligible nodes (rounded to nearest).
    Fraction(f64),
}

/// A workload event.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// When (ns).
    pub at: u64,
    /// What.
    pub kind: EventKind,
    /// Which nodes.
    pub nodes: NodeSel,
    /// Start times are spread uniformly over this window (ns).
    pub spread: u64,
}

/// Kinds of workload events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// Power on and boot the release.
    Boot,
    /// Power on already holding the release (a warm node).
    Seed,
}

/// A new release published during the run (`[[event]] kind = "publish"`).
#[derive(Debug, Clone, PartialEq)]
pub struct Publish {
    /// When (ns).
    pub at: u64,
    /// Packages that change.
    pub packages: u32,
    /// Share of the release's bytes that the new version adds.
    pub fraction: f64,
    /// Nodes the operator hands the release to (`bootswarm announce`); the rest hear it by
    /// gossip or by polling the hub.
    pub announce: NodeSel,
}

/// A bad release a peer injects into gossip (`[[fault]] kind = "inject"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Injection {
    /// Signed by a key the farm does not trust.
    Forged,
    /// An old release replayed after it expired.
    Replayed,
    /// A validly signed release with a lower seq than the farm's.
    Rollback,
    /// A validly signed release of another channel.
    OtherChannel,
}

/// A fault.
#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    /// When it starts (ns).
    pub at: u64,
    /// When it ends (ns), if ever.
    pub until: Option<u64>,
    /// Which nodes (ignored by `hub_outage`).
    pub nodes: NodeSel,
    /// What.
    pub kind: FaultKind,
}

/// Kinds of faults.
#[derive(Debug, Clone, PartialEq)]
pub enum FaultKind {
    /// The nodes crash; with `until` they restart then, keeping their stores.
    Crash,
    /// The hub is unreachable.
    HubOutage,
    /// The nodes serve blocks that do not verify.
    Corrupt,
    /// The nodes are cut off from the rest of the farm (not from the hub).
    Partition,
    /// The nodes' NICs run at `rate` bytes/s, or at their capacity divided by `factor`.
    SlowNic {
        /// Divisor of the capacity.
        factor: f64,
        /// Absolute rate (bytes/s), overrides `factor`.
        rate: Option<u64>,
    },
    /// Control messages from or to the nodes are lost with probability `p`.
    Loss {
        /// Loss probability.
        p: f64,
    },
    /// The nodes gossip a bad release.
    Inject(Injection),
}

/// Checks a run must pass. `None` means not checked.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Expect {
    /// Every honest booting node boots.
    pub all_booted: Option<bool>,
    /// Time to boot everyone over T_min.
    pub time_vs_tmin_max: Option<f64>,
    /// Hub egress over release bytes.
    pub hub_egress_vs_f_max: Option<f64>,
    /// Most hub bytes sent to honest nodes, as a multiple of the release size.
    pub honest_hub_egress_vs_f_max: Option<f64>,
    /// Hub egress in bytes.
    pub hub_egress_bytes_max: Option<u64>,
    /// Control bytes over data bytes.
    pub control_vs_data_max: Option<f64>,
    /// Corrupt blocks accepted (at most).
    pub corrupt_accepted: Option<u64>,
    /// Every honest booting node boots before this time (ns since the start).
    pub booted_before: Option<u64>,
    /// No node boots before this time (ns since the start).
    pub none_booted_before: Option<u64>,
    /// Every corrupt node is penalised by some honest node.
    pub each_corrupt_peer_penalised: Option<bool>,
    /// Every corrupt node is banned by some honest node.
    pub each_corrupt_peer_banned: Option<bool>,
    /// Every booting node that was stuck at the end of an outage reported why.
    pub stall_reported: Option<bool>,
    /// Swarm boot time over the hub-only boot time.
    pub time_vs_hub_only_max: Option<f64>,
    /// Every live honest node installs the published release.
    pub all_upgraded: Option<bool>,
    /// Time for 99 % of the nodes to hear of the published release (s).
    pub announce_p99_s_max: Option<f64>,
    /// Hub bytes during the upgrade over the bytes the new release adds.
    pub hub_upgrade_bytes_vs_changed_max: Option<f64>,
    /// Release polls of the hub per poll period, for the whole farm.
    pub hub_polls_per_period_max: Option<f64>,
    /// Installs of anything but the newest valid release (at most).
    pub bad_installs: Option<u64>,
    /// Every node that injects a bad release is penalised by some honest node.
    pub each_injector_penalised: Option<bool>,
}

/// A validated scenario.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    /// The file it came from.
    pub file: String,
    /// Name.
    pub name: String,
    /// Seeds run by default.
    pub seeds: Vec<u64>,
    /// Simulation stops here (ns); `None`: derived from the scenario.
    pub horizon: Option<u64>,
    /// Nodes.
    pub nodes: u32,
    /// NIC transmit rate (bytes/s).
    pub nic_up: u64,
    /// NIC receive rate (bytes/s).
    pub nic_down: u64,
    /// Hub egress (bytes/s).
    pub hub_link: u64,
    /// One-way LAN latency (ns).
    pub lan_latency: u64,
    /// One-way node–hub latency (ns).
    pub hub_latency: u64,
    /// Racks (0: flat).
    pub racks: u32,
    /// Rack uplink, each direction (bytes/s).
    pub rack_uplink: u64,
    /// Extra one-way latency between racks (ns).
    pub rack_latency: u64,
    /// Packages in the release.
    pub packages: u32,
    /// Bytes of file content in the release.
    pub size: u64,
    /// Workload.
    pub events: Vec<Event>,
    /// Faults.
    pub faults: Vec<Fault>,
    /// Checks.
    pub expect: Expect,
    /// Re-solves of the flow network are at least this far apart (ns).
    pub solve_quantum: u64,
    /// A release published during the run.
    pub publish: Option<Publish>,
    /// Period of each node's release poll of the hub (`[poll] interval`); `None`: no polling.
    pub poll_interval: Option<u64>,
    /// Agent settings: neighbours (0: default).
    pub agent_neighbours: usize,
    /// Agent settings: hub concurrency (0: default).
    pub agent_hub_concurrency: usize,
    /// The machine the nodes share (`[host]`); `None`: every node has a CPU of its own,
    /// which the simulator does not model.
    pub host: Option<HostCpu>,
    /// Settings of the netns testbed (`[testbed]`); the simulator ignores them.
    pub testbed: TestbedSettings,
}

/// `[host]`: the nodes share one machine's CPU (the netns testbed runs every node and the
/// hub on one host). Fit the costs with the `host fit` line of `bootswarm-sim testbed`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HostCpu {
    /// `cores`: CPU cores of the machine.
    pub cores: f64,
    /// `transfer_cpu_per_mib`: core-seconds per MiB a node receives, from a peer or the hub
    /// (sender, receiver and hub work together).
    pub transfer_cpu_per_mib: f64,
    /// `install_cpu_per_mib`: core-seconds per MiB of tree a node writes once it holds every
    /// block.
    pub install_cpu_per_mib: f64,
}

impl HostCpu {
    /// Fewest cores `[host]` accepts.
    pub const MIN_CORES: f64 = 0.01;
    /// Most cores `[host]` accepts.
    pub const MAX_CORES: f64 = 1024.0;
    /// Least core-seconds per MiB `[host]` accepts.
    pub const MIN_CPU_PER_MIB: f64 = 1e-6;
    /// Most core-seconds per MiB `[host]` accepts.
    pub const MAX_CPU_PER_MIB: f64 = 60.0;

    /// Bytes per second of transfers the machine sustains: cores / transfer cost per byte.
    pub fn capacity(&self) -> u64 {
        (self.cores * MIB / self.transfer_cpu_per_mib).round() as u64
    }

    /// Transfer-equivalent bytes of CPU work to install a tree of `tree` bytes.
    pub fn install_work(&self, tree: u64) -> u64 {
        ((tree as f64 * self.install_cpu_per_mib / self.transfer_cpu_per_mib).round() as u64).max(1)
    }
}

const MIB: f64 = 1_048_576.0;

/// How testbed nodes find each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Discovery {
    /// Node k dials nodes 0..k at fixed addresses (`--peer`).
    Static,
    /// libp2p mDNS on the testbed's bridge (`--mdns`).
    Mdns,
}

/// `[testbed]`: how `bootswarm-sim testbed` runs the scenario with real processes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TestbedSettings {
    /// Shape node NICs even at 1 Gbit/s and above (below that they are always shaped).
    pub shape_nics: bool,
    /// Peer discovery (default: static).
    pub discovery: Option<Discovery>,
    /// Longest wait for all nodes to boot in the swarm run (ns); default derived from T_min.
    pub timeout: Option<u64>,
    /// `[testbed.expect]`: checks on the measured figures.
    pub expect: TestbedExpect,
}

/// `[testbed.expect]`: checks a testbed run must pass. `None` means not checked.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TestbedExpect {
    /// Every node booted.
    pub all_booted: Option<bool>,
    /// Measured time to boot everyone over T_min.
    pub time_vs_tmin_max: Option<f64>,
    /// Measured hub egress over the release bytes F.
    pub hub_egress_vs_f_max: Option<f64>,
    /// Measured hub-only boot time over the measured swarm boot time.
    pub hub_only_speedup_min: Option<f64>,
    /// |simulated − measured| / measured boot time of everyone.
    pub sim_time_error_max: Option<f64>,
    /// |simulated − measured| / measured hub egress bytes.
    pub sim_hub_bytes_error_max: Option<f64>,
    /// Seconds from the announce of the published release until every node runs it.
    pub upgrade_s_max: Option<f64>,
    /// Hub bytes during the upgrade over the bytes the published release adds.
    pub hub_upgrade_bytes_vs_changed_max: Option<f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    meta: RawMeta,
    topology: RawTopology,
    release: RawRelease,
    #[serde(default)]
    event: Vec<RawEvent>,
    #[serde(default)]
    fault: Vec<RawFault>,
    #[serde(default)]
    expect: RawExpect,
    #[serde(default)]
    sim: RawSim,
    #[serde(default)]
    agent: RawAgent,
    #[serde(default)]
    testbed: RawTestbed,
    #[serde(default)]
    poll: RawPoll,
    host: Option<RawHost>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHost {
    cores: Option<f64>,
    transfer_cpu_per_mib: Option<f64>,
    install_cpu_per_mib: Option<f64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawPoll {
    interval: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawTestbed {
    #[serde(default)]
    shape_nics: bool,
    discovery: Option<String>,
    timeout: Option<String>,
    #[serde(default)]
    expect: RawTestbedExpect,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawTestbedExpect {
    all_booted: Option<bool>,
    time_vs_tmin_max: Option<f64>,
    hub_egress_vs_f_max: Option<f64>,
    hub_only_speedup_min: Option<f64>,
    sim_time_error_max: Option<f64>,
    sim_hub_bytes_error_max: Option<f64>,
    upgrade_s_max: Option<f64>,
    hub_upgrade_bytes_vs_changed_max: Option<f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMeta {
    name: String,
    #[serde(default)]
    description: Option<String>,
    seeds: Vec<u64>,
    horizon: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTopology {
    nodes: u32,
    nic: Option<String>,
    nic_up: Option<String>,
    nic_down: Option<String>,
    hub_link: String,
    lan_latency: Option<String>,
    hub_latency: Option<String>,
    racks: Option<u32>,
    rack_uplink: Option<String>,
    rack_latency: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRelease {
    packages: u32,
    size: String,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawNodes {
    Count(i64),
    Text(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEvent {
    at: String,
    kind: String,
    nodes: Option<RawNodes>,
    fraction: Option<f64>,
    spread: Option<String>,
    packages: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFault {
    at: String,
    kind: String,
    nodes: Option<RawNodes>,
    fraction: Option<f64>,
    until: Option<String>,
    factor: Option<f64>,
    rate: Option<String>,
    p: Option<f64>,
    release: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawExpect {
    all_booted: Option<bool>,
    time_vs_tmin_max: Option<f64>,
    hub_egress_vs_f_max: Option<f64>,
    honest_hub_egress_vs_f_max: Option<f64>,
    hub_egress_bytes_max: Option<RawNodes>,
    control_vs_data_max: Option<f64>,
    corrupt_accepted: Option<u64>,
    booted_before: Option<String>,
    none_booted_before: Option<String>,
    each_corrupt_peer_penalised: Option<bool>,
    each_corrupt_peer_banned: Option<bool>,
    stall_reported: Option<bool>,
    time_vs_hub_only_max: Option<f64>,
    all_upgraded: Option<bool>,
    announce_p99_s_max: Option<f64>,
    hub_upgrade_bytes_vs_changed_max: Option<f64>,
    hub_polls_per_period_max: Option<f64>,
    bad_installs: Option<u64>,
    each_injector_penalised: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawSim {
    solve_quantum: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawAgent {
    neighbours: Option<usize>,
    hub_concurrency: Option<usize>,
}

/// Parses a byte size: `512MiB`, `1.5GiB`, `100MB`, `4096` (bytes).
pub fn parse_size(s: &str) -> Option<u64> {
    let (num, unit) = split_unit(s)?;
    let mult: f64 = match unit {
        "" | "B" => 1.0,
        "KB" | "kB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        "TB" => 1e12,
        "KiB" => 1024.0,
        "MiB" => 1024.0 * 1024.0,
        "GiB" => 1024.0 * 1024.0 * 1024.0,
        "TiB" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    finite(num * mult)
}

/// Parses a rate into bytes per second: `10Gbit`, `100Mbit`, `1Gbps`, `125MB/s`, `1GiB/s`.
pub fn parse_rate(s: &str) -> Option<u64> {
    let s = s.trim();
    if let Some(bytes) = s.strip_suffix("/s") {
        return parse_size(bytes);
    }
    let (num, unit) = split_unit(s)?;
    let bits: f64 = match unit {
        "bit" | "bps" => 1.0,
        "kbit" | "Kbit" | "kbps" | "Kbps" => 1e3,
        "Mbit" | "Mbps" => 1e6,
        "Gbit" | "Gbps" => 1e9,
        "Tbit" | "Tbps" => 1e12,
        _ => return None,
    };
    finite(num * bits / 8.0)
}

/// Parses a duration into nanoseconds: `200us`, `20ms`, `60s`, `2m`, `1h`, `0`.
pub fn parse_duration(s: &str) -> Option<u64> {
    let (num, unit) = split_unit(s)?;
    let mult: f64 = match unit {
        "ns" => 1.0,
        "us" | "µs" => 1e3,
        "ms" => 1e6,
        "s" => 1e9,
        "m" | "min" => 60e9,
        "h" => 3600e9,
        "" if num == 0.0 => 0.0,
        _ => return None,
    };
    finite(num * mult)
}

fn split_unit(s: &str) -> Option<(f64, &str)> {
    let s = s.trim();
    let end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    if end == 0 {
        return None;
    }
    let num: f64 = s[..end].parse().ok()?;
    Some((num, s[end..].trim()))
}

fn finite(x: f64) -> Option<u64> {
    (0.0..1.8e19).contains(&x).then(|| x.round() as u64)
}

struct Ctx<'a> {
    file: &'a str,
}

impl Ctx<'_> {
    fn err(&self, msg: String) -> ScenarioError {
        ScenarioError {
            file: self.file.to_string(),
            msg,
        }
    }

    fn dur(&self, key: &str, v: &str) -> Result<u64, ScenarioError> {
        parse_duration(v).ok_or_else(|| {
            self.err(format!(
                "{key} = {v:?} is not a duration (write e.g. \"200us\", \"20ms\" or \"60s\")"
            ))
        })
    }

    fn rate(&self, key: &str, v: &str) -> Result<u64, ScenarioError> {
        match parse_rate(v) {
            Some(r) if r > 0 => Ok(r),
            _ => Err(self.err(format!(
                "{key} = {v:?} is not a positive rate (write e.g. \"10Gbit\" or \"125MB/s\")"
            ))),
        }
    }

    fn size(&self, key: &str, v: &str) -> Result<u64, ScenarioError> {
        parse_size(v).ok_or_else(|| {
            self.err(format!(
                "{key} = {v:?} is not a size (write e.g. \"512MiB\")"
            ))
        })
    }

    fn host(&self, h: &RawHost, racks: u32) -> Result<HostCpu, ScenarioError> {
        if racks > 0 {
            return Err(self.err(
                "[host] models nodes sharing one machine and cannot be combined with [topology] racks".into(),
            ));
        }
        let get = |key: &str, v: Option<f64>, lo: f64, hi: f64, unit: &str| {
            let v = v.ok_or_else(|| self.err(format!("[host] {key} is missing")))?;
            if v.is_finite() && v >= lo && v <= hi {
                Ok(v)
            } else {
                Err(self.err(format!(
                    "[host] {key} = {v} must be a number of {unit} from {lo} to {hi}"
                )))
            }
        };
        let per_mib = "core-seconds per MiB";
        Ok(HostCpu {
            cores: get(
                "cores",
                h.cores,
                HostCpu::MIN_CORES,
                HostCpu::MAX_CORES,
                "cores",
            )?,
            transfer_cpu_per_mib: get(
                "transfer_cpu_per_mib",
                h.transfer_cpu_per_mib,
                HostCpu::MIN_CPU_PER_MIB,
                HostCpu::MAX_CPU_PER_MIB,
                per_mib,
            )?,
            install_cpu_per_mib: get(
                "install_cpu_per_mib",
                h.install_cpu_per_mib,
                HostCpu::MIN_CPU_PER_MIB,
                HostCpu::MAX_CPU_PER_MIB,
                per_mib,
            )?,
        })
    }

    fn nodes(
        &self,
        key: &str,
        v: Option<&RawNodes>,
        fraction: Option<f64>,
        n: u32,
    ) -> Result<NodeSel, ScenarioError> {
        if let Some(f) = fraction {
            if v.is_some() {
                return Err(self.err(format!("{key} has both nodes and fraction; give one")));
            }
            if !(0.0..=1.0).contains(&f) {
                return Err(self.err(format!("{key}.fraction = {f} must be between 0 and 1")));
            }
            return Ok(NodeSel::Fraction(f));
        }
        let sel = match v {
            None => NodeSel::All,
            Some(RawNodes::Count(c)) => {
                if *c < 0 || *c > n as i64 {
                    return Err(self.err(format!("{key}.nodes = {c} must be between 0 and the {n} nodes of the topology")));
                }
                NodeSel::Count(*c as u32)
            }
            Some(RawNodes::Text(t)) => parse_nodes(t, n).ok_or_else(|| {
                self.err(format!(
                    "{key}.nodes = {t:?} is not \"all\", a count, or a range \"A..B\" / \"A..=B\" within the {n} nodes"
                ))
            })?,
        };
        Ok(sel)
    }
}

fn parse_nodes(t: &str, n: u32) -> Option<NodeSel> {
    let t = t.trim();
    if t == "all" {
        return Some(NodeSel::All);
    }
    if let Some(pct) = t.strip_suffix('%') {
        let p: f64 = pct.trim().parse().ok()?;
        return (0.0..=100.0)
            .contains(&p)
            .then_some(NodeSel::Fraction(p / 100.0));
    }
    if let Some((a, b)) = t.split_once("..") {
        let a: u32 = a.trim().parse().ok()?;
        let (b, inclusive) = match b.strip_prefix('=') {
            Some(b) => (b, true),
            None => (b, false),
        };
        let b: u32 = b.trim().parse().ok()?;
        let b = if inclusive { b.checked_add(1)? } else { b };
        return (a <= b && b <= n).then_some(NodeSel::Range(a, b));
    }
    let c: u32 = t.parse().ok()?;
    (c <= n).then_some(NodeSel::Count(c))
}

impl Scenario {
    /// Reads and validates a scenario file.
    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ScenarioError {
            file: file.clone(),
            msg: format!("cannot be read ({e})"),
        })?;
        Scenario::parse(&file, &text)
    }

    /// Parses and validates scenario text; `file` names it in errors.
    pub fn parse(file: &str, text: &str) -> Result<Scenario, ScenarioError> {
        let cx = Ctx { file };
        let raw: Raw = toml::from_str(text).map_err(|e| {
            let line = e
                .span()
                .map(|s| text[..s.start.min(text.len())].lines().count().max(1));
            let msg = e.message().trim().trim_end_matches('.').replace('\n', "; ");
            match line {
                Some(l) => cx.err(format!("line {l}: {msg}")),
                None => cx.err(msg),
            }
        })?;
        let t = &raw.topology;
        if t.nodes == 0 {
            return Err(cx.err("[topology] nodes must be at least 1".into()));
        }
        let n = t.nodes;
        let nic = t
            .nic
            .as_deref()
            .map(|v| cx.rate("[topology] nic", v))
            .transpose()?;
        let nic_up = match &t.nic_up {
            Some(v) => cx.rate("[topology] nic_up", v)?,
            None => nic.ok_or_else(|| {
                cx.err("[topology] nic is missing (write e.g. nic = \"10Gbit\")".into())
            })?,
        };
        let nic_down = match &t.nic_down {
            Some(v) => cx.rate("[topology] nic_down", v)?,
            None => nic.ok_or_else(|| {
                cx.err("[topology] nic is missing (write e.g. nic = \"10Gbit\")".into())
            })?,
        };
        let racks = t.racks.unwrap_or(0);
        if racks > n {
            return Err(cx.err(format!(
                "[topology] racks = {racks} is more than the {n} nodes"
            )));
        }
        let rack_uplink = match (&t.rack_uplink, racks) {
            (Some(v), _) => cx.rate("[topology] rack_uplink", v)?,
            (None, 0) => 0,
            (None, _) => {
                return Err(
                    cx.err("[topology] rack_uplink is missing although racks is set".into())
                );
            }
        };
        let release = &raw.release;
        if release.packages == 0 || release.packages > 4096 {
            return Err(cx.err(format!(
                "[release] packages = {} must be between 1 and 4096",
                release.packages
            )));
        }
        let size = cx.size("[release] size", &release.size)?;
        if size < release.packages as u64 {
            return Err(cx.err("[release] size must give every package at least one byte".into()));
        }
        if size > (1 << 40) {
            return Err(
                cx.err("[release] size is over 1 TiB, which the simulator does not support".into())
            );
        }
        if raw.meta.seeds.is_empty() {
            return Err(cx.err("[meta] seeds is empty; give at least one seed".into()));
        }
        let _ = &raw.meta.description;
        let mut events = Vec::new();
        let mut publish = None;
        for (i, e) in raw.event.iter().enumerate() {
            let key = format!("[[event]] #{}", i + 1);
            let kind = match e.kind.as_str() {
                "boot" => EventKind::Boot,
                "seed" => EventKind::Seed,
                "publish" => {
                    if publish.is_some() {
                        return Err(cx.err(format!(
                            "{key} is a second publish; the simulator models one upgrade per run"
                        )));
                    }
                    let packages = e.packages.unwrap_or(1);
                    if packages == 0 || packages > release.packages {
                        return Err(cx.err(format!(
                            "{key}.packages = {packages} must be between 1 and the release's {} packages",
                            release.packages
                        )));
                    }
                    let fraction = e.fraction.unwrap_or(0.05);
                    if !(fraction > 0.0 && fraction <= 1.0) {
                        return Err(cx.err(format!(
                            "{key}.fraction = {fraction} must be above 0 and at most 1"
                        )));
                    }
                    publish = Some(Publish {
                        at: cx.dur(&format!("{key}.at"), &e.at)?,
                        packages,
                        fraction,
                        announce: match &e.nodes {
                            None => NodeSel::Count(1),
                            Some(_) => cx.nodes(&key, e.nodes.as_ref(), None, n)?,
                        },
                    });
                    continue;
                }
                k => {
                    return Err(cx.err(format!(
                        "{key}.kind = {k:?} is not \"boot\", \"seed\" or \"publish\""
                    )));
                }
            };
            if e.packages.is_some() {
                return Err(cx.err(format!("{key}.packages only applies to kind = \"publish\"")));
            }
            events.push(Event {
                at: cx.dur(&format!("{key}.at"), &e.at)?,
                kind,
                nodes: cx.nodes(&key, e.nodes.as_ref(), e.fraction, n)?,
                spread: e
                    .spread
                    .as_deref()
                    .map(|v| cx.dur(&format!("{key}.spread"), v))
                    .transpose()?
                    .unwrap_or(0),
            });
        }
        if events.is_empty() {
            return Err(cx.err(
                "has no [[event]]; add e.g. { at = \"0s\", kind = \"boot\", nodes = \"all\" }"
                    .into(),
            ));
        }
        let mut faults = Vec::new();
        for (i, f) in raw.fault.iter().enumerate() {
            let key = format!("[[fault]] #{}", i + 1);
            let at = cx.dur(&format!("{key}.at"), &f.at)?;
            let until = f
                .until
                .as_deref()
                .map(|v| cx.dur(&format!("{key}.until"), v))
                .transpose()?;
            if until.is_some_and(|u| u < at) {
                return Err(cx.err(format!("{key}.until is before its at")));
            }
            let kind = match f.kind.as_str() {
                "crash" => FaultKind::Crash,
                "hub_outage" => FaultKind::HubOutage,
                "corrupt" => FaultKind::Corrupt,
                "partition" => FaultKind::Partition,
                "slow_nic" => {
                    let factor = f.factor.unwrap_or(10.0);
                    if !(factor >= 1.0 && factor.is_finite()) {
                        return Err(cx.err(format!("{key}.factor = {factor} must be at least 1")));
                    }
                    let rate = f
                        .rate
                        .as_deref()
                        .map(|v| cx.rate(&format!("{key}.rate"), v))
                        .transpose()?;
                    FaultKind::SlowNic { factor, rate }
                }
                "loss" => {
                    let p = f.p.ok_or_else(|| {
                        cx.err(format!("{key}.p is missing (the loss probability)"))
                    })?;
                    if !(0.0..=1.0).contains(&p) {
                        return Err(cx.err(format!("{key}.p = {p} must be between 0 and 1")));
                    }
                    FaultKind::Loss { p }
                }
                "inject" => FaultKind::Inject(match f.release.as_deref() {
                    Some("forged") => Injection::Forged,
                    Some("replayed") => Injection::Replayed,
                    Some("rollback") => Injection::Rollback,
                    Some("other_channel") => Injection::OtherChannel,
                    other => {
                        return Err(cx.err(format!(
                            "{key}.release = {other:?} is not one of forged, replayed, rollback, other_channel"
                        )));
                    }
                }),
                k => {
                    return Err(cx.err(format!(
                        "{key}.kind = {k:?} is not one of crash, hub_outage, corrupt, partition, slow_nic, loss, inject"
                    )));
                }
            };
            faults.push(Fault {
                at,
                until,
                nodes: cx.nodes(&key, f.nodes.as_ref(), f.fraction, n)?,
                kind,
            });
        }
        let x = &raw.expect;
        let hub_egress_bytes_max = match &x.hub_egress_bytes_max {
            None => None,
            Some(RawNodes::Count(c)) if *c >= 0 => Some(*c as u64),
            Some(RawNodes::Text(t)) => Some(cx.size("[expect] hub_egress_bytes_max", t)?),
            Some(RawNodes::Count(c)) => {
                return Err(cx.err(format!("[expect] hub_egress_bytes_max = {c} is negative")));
            }
        };
        let expect = Expect {
            all_booted: x.all_booted,
            time_vs_tmin_max: x.time_vs_tmin_max,
            hub_egress_vs_f_max: x.hub_egress_vs_f_max,
            honest_hub_egress_vs_f_max: x.honest_hub_egress_vs_f_max,
            hub_egress_bytes_max,
            control_vs_data_max: x.control_vs_data_max,
            corrupt_accepted: x.corrupt_accepted,
            booted_before: x
                .booted_before
                .as_deref()
                .map(|v| cx.dur("[expect] booted_before", v))
                .transpose()?,
            none_booted_before: x
                .none_booted_before
                .as_deref()
                .map(|v| cx.dur("[expect] none_booted_before", v))
                .transpose()?,
            each_corrupt_peer_penalised: x.each_corrupt_peer_penalised,
            each_corrupt_peer_banned: x.each_corrupt_peer_banned,
            stall_reported: x.stall_reported,
            time_vs_hub_only_max: x.time_vs_hub_only_max,
            all_upgraded: x.all_upgraded,
            announce_p99_s_max: x.announce_p99_s_max,
            hub_upgrade_bytes_vs_changed_max: x.hub_upgrade_bytes_vs_changed_max,
            hub_polls_per_period_max: x.hub_polls_per_period_max,
            bad_installs: x.bad_installs,
            each_injector_penalised: x.each_injector_penalised,
        };
        let tb = &raw.testbed;
        let discovery = match tb.discovery.as_deref() {
            None => None,
            Some("static") => Some(Discovery::Static),
            Some("mdns") => Some(Discovery::Mdns),
            Some(d) => {
                return Err(cx.err(format!(
                    "[testbed] discovery = {d:?} is not \"static\" or \"mdns\""
                )));
            }
        };
        let te = &tb.expect;
        for (key, v) in [
            ("time_vs_tmin_max", te.time_vs_tmin_max),
            ("hub_egress_vs_f_max", te.hub_egress_vs_f_max),
            ("hub_only_speedup_min", te.hub_only_speedup_min),
            ("sim_time_error_max", te.sim_time_error_max),
            ("sim_hub_bytes_error_max", te.sim_hub_bytes_error_max),
            ("upgrade_s_max", te.upgrade_s_max),
            (
                "hub_upgrade_bytes_vs_changed_max",
                te.hub_upgrade_bytes_vs_changed_max,
            ),
        ] {
            if v.is_some_and(|v| !(v.is_finite() && v >= 0.0)) {
                return Err(cx.err(format!(
                    "[testbed.expect] {key} must be a non-negative number"
                )));
            }
        }
        let testbed = TestbedSettings {
            shape_nics: tb.shape_nics,
            discovery,
            timeout: tb
                .timeout
                .as_deref()
                .map(|v| cx.dur("[testbed] timeout", v))
                .transpose()?,
            expect: TestbedExpect {
                all_booted: te.all_booted,
                time_vs_tmin_max: te.time_vs_tmin_max,
                hub_egress_vs_f_max: te.hub_egress_vs_f_max,
                hub_only_speedup_min: te.hub_only_speedup_min,
                sim_time_error_max: te.sim_time_error_max,
                sim_hub_bytes_error_max: te.sim_hub_bytes_error_max,
                upgrade_s_max: te.upgrade_s_max,
                hub_upgrade_bytes_vs_changed_max: te.hub_upgrade_bytes_vs_changed_max,
            },
        };
        Ok(Scenario {
            file: file.to_string(),
            name: raw.meta.name.clone(),
            seeds: raw.meta.seeds.clone(),
            horizon: raw
                .meta
                .horizon
                .as_deref()
                .map(|v| cx.dur("[meta] horizon", v))
                .transpose()?,
            nodes: n,
            nic_up,
            nic_down,
            hub_link: cx.rate("[topology] hub_link", &t.hub_link)?,
            lan_latency: t
                .lan_latency
                .as_deref()
                .map(|v| cx.dur("[topology] lan_latency", v))
                .transpose()?
                .unwrap_or(200_000),
            hub_latency: t
                .hub_latency
                .as_deref()
                .map(|v| cx.dur("[topology] hub_latency", v))
                .transpose()?
                .unwrap_or(20_000_000),
            racks,
            rack_uplink,
            rack_latency: t
                .rack_latency
                .as_deref()
                .map(|v| cx.dur("[topology] rack_latency", v))
                .transpose()?
                .unwrap_or(0),
            packages: release.packages,
            size,
            events,
            faults,
            expect,
            solve_quantum: raw
                .sim
                .solve_quantum
                .as_deref()
                .map(|v| cx.dur("[sim] solve_quantum", v))
                .transpose()?
                .unwrap_or(DEFAULT_SOLVE_QUANTUM),
            publish,
            poll_interval: raw
                .poll
                .interval
                .as_deref()
                .map(|v| cx.dur("[poll] interval", v))
                .transpose()?
                .filter(|&p| p > 0),
            agent_neighbours: raw.agent.neighbours.unwrap_or(0),
            agent_hub_concurrency: raw.agent.hub_concurrency.unwrap_or(0),
            host: raw.host.as_ref().map(|h| cx.host(h, racks)).transpose()?,
            testbed,
        })
    }
}

/// Default minimum spacing of flow re-solves.
pub const DEFAULT_SOLVE_QUANTUM: u64 = 200_000;

#[cfg(test)]
mod tests {
    use super::*;

    const OK: &str = r#"
[meta]
name = "t"
seeds = [1, 2]
[topology]
nodes = 10
nic = "10Gbit"
hub_link = "1Gbit"
lan_latency = "200us"
hub_latency = "20ms"
[release]
packages = 2
size = "8MiB"
[[event]]
at = "0s"
kind = "boot"
nodes = "all"
spread = "1s"
[[fault]]
at = "5s"
kind = "crash"
nodes = "0..=2"
until = "15s"
[expect]
all_booted = true
hub_egress_bytes_max = "9MiB"
"#;

    #[test]
    fn units() {
        assert_eq!(parse_size("512MiB"), Some(512 << 20));
        assert_eq!(parse_size("1.5GiB"), Some(3 << 29));
        assert_eq!(parse_size("100MB"), Some(100_000_000));
        assert_eq!(parse_size("12"), Some(12));
        assert_eq!(parse_size("x"), None);
        assert_eq!(parse_rate("10Gbit"), Some(1_250_000_000));
        assert_eq!(parse_rate("1Gbps"), Some(125_000_000));
        assert_eq!(parse_rate("125MB/s"), Some(125_000_000));
        assert_eq!(parse_rate("10Gb"), None);
        assert_eq!(parse_duration("200us"), Some(200_000));
        assert_eq!(parse_duration("20ms"), Some(20_000_000));
        assert_eq!(parse_duration("60s"), Some(60_000_000_000));
        assert_eq!(parse_duration("2m"), Some(120_000_000_000));
        assert_eq!(parse_duration("0"), Some(0));
        assert_eq!(parse_duration("5"), None);
    }

    #[test]
    fn parses_a_scenario() {
        let s = Scenario::parse("t.toml", OK).unwrap();
        assert_eq!(
            (s.nodes, s.nic_up, s.hub_link),
            (10, 1_250_000_000, 125_000_000)
        );
        assert_eq!(s.events[0].spread, 1_000_000_000);
        assert_eq!(s.faults[0].nodes, NodeSel::Range(0, 3));
        assert_eq!(s.faults[0].until, Some(15_000_000_000));
        assert_eq!(s.expect.hub_egress_bytes_max, Some(9 << 20));
    }

    #[test]
    fn parses_the_testbed_section() {
        let text = format!(
            "{OK}\n[testbed]\nshape_nics = true\ndiscovery = \"mdns\"\ntimeout = \"2m\"\n[testbed.expect]\nall_booted = true\nhub_egress_vs_f_max = 1.1\nupgrade_s_max = 30\n"
        );
        let s = Scenario::parse("t.toml", &text).unwrap();
        assert!(s.testbed.shape_nics);
        assert_eq!(s.testbed.discovery, Some(Discovery::Mdns));
        assert_eq!(s.testbed.timeout, Some(120_000_000_000));
        assert_eq!(s.testbed.expect.hub_egress_vs_f_max, Some(1.1));
        assert_eq!(s.testbed.expect.upgrade_s_max, Some(30.0));
        let bad = text.replace("\"mdns\"", "\"carrier-pigeon\"");
        let e = Scenario::parse("x.toml", &bad).unwrap_err().to_string();
        assert!(e.contains("[testbed] discovery"), "{e}");
        let bad = text.replace("1.1", "-1.0");
        let e = Scenario::parse("x.toml", &bad).unwrap_err().to_string();
        assert!(e.contains("[testbed.expect] hub_egress_vs_f_max"), "{e}");
        assert_eq!(
            Scenario::parse("t.toml", OK).unwrap().testbed,
            TestbedSettings::default()
        );
    }

    #[test]
    fn parses_publish_poll_and_injections() {
        let text = format!(
            "{OK}\n[poll]\ninterval = \"20s\"\n[[event]]\nat = \"10s\"\nkind = \"publish\"\npackages = 2\nfraction = 0.1\n\
             [[fault]]\nat = \"11s\"\nkind = \"inject\"\nnodes = 2\nrelease = \"rollback\"\n"
        )
        .replace("[expect]\nall_booted = true", "[expect]\nall_booted = true\nbad_installs = 0");
        let s = Scenario::parse("x.toml", &text).unwrap();
        let p = s.publish.unwrap();
        assert_eq!((p.at, p.packages, p.fraction), (10_000_000_000, 2, 0.1));
        assert_eq!(p.announce, NodeSel::Count(1));
        assert_eq!(s.poll_interval, Some(20_000_000_000));
        assert_eq!(s.faults[1].kind, FaultKind::Inject(Injection::Rollback));
        assert_eq!(s.expect.bad_installs, Some(0));
        assert_eq!(s.events.len(), 1, "publish is not a node event");
        let bad = text.replace("packages = 2\nfraction", "packages = 9\nfraction");
        let e = Scenario::parse("x.toml", &bad).unwrap_err().to_string();
        assert!(e.contains("[[event]] #2.packages"), "{e}");
        let bad = text.replace("release = \"rollback\"", "release = \"nice\"");
        let e = Scenario::parse("x.toml", &bad).unwrap_err().to_string();
        assert!(e.contains("[[fault]] #2.release"), "{e}");
    }

    #[test]
    fn parses_and_validates_the_host_section() {
        let host = "[host]\ncores = 2\ntransfer_cpu_per_mib = 0.012\ninstall_cpu_per_mib = 0.025\n";
        let s = Scenario::parse("t.toml", &format!("{OK}\n{host}")).unwrap();
        let h = s.host.unwrap();
        assert_eq!(
            (h.cores, h.transfer_cpu_per_mib, h.install_cpu_per_mib),
            (2.0, 0.012, 0.025)
        );
        // 2 cores at 0.012 core-s/MiB: 166.7 MiB/s; an install of 0.025 core-s/MiB weighs
        // 0.025/0.012 of a transfer.
        assert_eq!(h.capacity(), 174_762_667);
        assert_eq!(h.install_work(12 << 20), 26_214_400);
        assert_eq!(Scenario::parse("t.toml", OK).unwrap().host, None);
        for (from, to, key) in [
            ("cores = 2", "cores = 0", "[host] cores"),
            ("cores = 2", "cores = -1", "[host] cores"),
            ("cores = 2", "cores = 1e9", "[host] cores"),
            ("cores = 2", "cores = nan", "[host] cores"),
            ("cores = 2", "cores = inf", "[host] cores"),
            ("cores = 2\n", "", "[host] cores is missing"),
            ("0.012", "0", "[host] transfer_cpu_per_mib"),
            ("0.012", "-0.5", "[host] transfer_cpu_per_mib"),
            ("0.012", "1e-9", "[host] transfer_cpu_per_mib"),
            ("0.025", "1000.0", "[host] install_cpu_per_mib"),
            ("0.025", "nan", "[host] install_cpu_per_mib"),
            (
                "install_cpu_per_mib = 0.025",
                "install_cpu_per_mib = 0.025\nturbo = true",
                "turbo",
            ),
            ("0.025", "\"fast\"", "line"),
        ] {
            let text = format!("{OK}\n{}", host.replace(from, to));
            let e = Scenario::parse("x.toml", &text).unwrap_err().to_string();
            assert!(e.contains("x.toml") && e.contains(key), "{to}: {e}");
        }
        let racks = OK.replace(
            "nic = \"10Gbit\"",
            "nic = \"10Gbit\"\nracks = 2\nrack_uplink = \"10Gbit\"",
        );
        Scenario::parse("r.toml", &racks).unwrap();
        let e = Scenario::parse("r.toml", &format!("{racks}\n{host}"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("[host]") && e.contains("racks"), "{e}");
    }

    #[test]
    fn errors_name_file_and_key() {
        let bad = OK.replace("nic = \"10Gbit\"", "nic = \"10Gbt\"");
        let e = Scenario::parse("x.toml", &bad).unwrap_err().to_string();
        assert!(e.contains("x.toml") && e.contains("[topology] nic"), "{e}");
        let bad = OK.replace("kind = \"crash\"", "kind = \"meteor\"");
        let e = Scenario::parse("x.toml", &bad).unwrap_err().to_string();
        assert!(e.contains("[[fault]] #1.kind"), "{e}");
        let bad = OK.replace("nodes = \"0..=2\"", "nodes = \"0..99\"");
        assert!(
            Scenario::parse("x.toml", &bad)
                .unwrap_err()
                .to_string()
                .contains("[[fault]] #1.nodes")
        );
        let bad = OK.replace("[expect]", "[expect]\nbogus = 1");
        let e = Scenario::parse("x.toml", &bad).unwrap_err().to_string();
        assert!(e.contains("x.toml") && e.contains("bogus"), "{e}");
        let e = Scenario::parse("x.toml", "[meta\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 1"), "{e}");
        assert!(
            Scenario::load(Path::new("/nonexistent.toml"))
                .unwrap_err()
                .to_string()
                .contains("cannot be read")
        );
    }
}
