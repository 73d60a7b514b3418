//! Scenario files (`scenarios/*.toml`): parsing and validation.
//!
//! Every error is one sentence naming the file and the key.
//!
//! Sections: `[meta]`, `[topology]`, `[release]`, `[[event]]`, `[[fault]]`, `[expect]`,
//! `[sim]`, `[agent]`, `[poll]`, `[host]` (see [`HostCpu`]) and `[testbed]`. Each has a
//! module of its own that reads its keys and fills its fields of [`Scenario`].

mod agent;
mod event;
mod expect;
mod fault;
mod host;
mod meta;
mod nodes;
mod poll;
mod release;
mod sim;
mod testbed;
mod topology;
mod units;

pub use event::{Event, EventKind, Publish};
pub use expect::Expect;
pub use fault::{Fault, FaultKind, Injection};
pub use host::HostCpu;
pub use nodes::NodeSel;
pub use sim::DEFAULT_SOLVE_QUANTUM;
pub use testbed::{Discovery, TestbedExpect, TestbedSettings};
pub use topology::RackLabels;
pub use units::{parse_duration, parse_rate, parse_size};

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

/// A validated scenario. (`Scenario::default()` is only the blank that parsing fills.)
#[derive(Debug, Clone, Default, PartialEq)]
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
    /// Whether each node is told its rack; where an agent is configured
    /// (`World::agent_config`), its rack is `topology.rack(n)` unless hidden.
    pub rack_labels: RackLabels,
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
    /// Agent settings: the hub window in bytes (`u64::MAX`: none; `None`: default).
    pub agent_hub_window: Option<u64>,
    /// The machine the nodes share (`[host]`); `None`: every node has a CPU of its own,
    /// which the simulator does not model.
    pub host: Option<HostCpu>,
    /// Settings of the netns testbed (`[testbed]`); the simulator ignores them.
    pub testbed: TestbedSettings,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    meta: meta::RawMeta,
    topology: topology::RawTopology,
    release: release::RawRelease,
    #[serde(default)]
    event: Vec<event::RawEvent>,
    #[serde(default)]
    fault: Vec<fault::RawFault>,
    #[serde(default)]
    expect: expect::RawExpect,
    #[serde(default)]
    sim: sim::RawSim,
    #[serde(default)]
    agent: agent::RawAgent,
    #[serde(default)]
    testbed: testbed::RawTestbed,
    #[serde(default)]
    poll: poll::RawPoll,
    host: Option<host::RawHost>,
}

/// Names the file in every error, and reads values of the kinds a scenario holds.
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
        // Each section fills its fields; one that reads another's (nodes, packages, racks)
        // comes after it.
        let mut sc = Scenario {
            file: file.to_string(),
            ..Scenario::default()
        };
        topology::parse(&cx, &raw.topology, &mut sc)?;
        release::parse(&cx, &raw.release, &mut sc)?;
        meta::parse(&cx, &raw.meta, &mut sc)?;
        event::parse(&cx, &raw.event, &mut sc)?;
        fault::parse(&cx, &raw.fault, &mut sc)?;
        expect::parse(&cx, &raw.expect, &mut sc)?;
        testbed::parse(&cx, &raw.testbed, &mut sc)?;
        sim::parse(&cx, &raw.sim, &mut sc)?;
        poll::parse(&cx, &raw.poll, &mut sc)?;
        agent::parse(&raw.agent, &mut sc);
        host::parse(&cx, raw.host.as_ref(), &mut sc)?;
        Ok(sc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A valid scenario the section tests edit.
    pub(super) const OK: &str = r#"
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
    fn parses_adversaries() {
        let faults = r#"
[[fault]]
at = "0s"
kind = "sybil"
nodes = 2
identities = 5
[[fault]]
at = "1s"
kind = "trickle"
nodes = 1
rate = "64KiB/s"
[[fault]]
at = "0s"
kind = "replay"
nodes = 1
period = "10s"
[[fault]]
at = "0s"
kind = "forge_flood"
nodes = 1
per_second = 5
[[fault]]
at = "0s"
kind = "hub_unreachable"
fraction = 0.1
until = "30s"
[[fault]]
at = "0s"
kind = "withhold"
nodes = 1
"#;
        let s = Scenario::parse("a.toml", &format!("{OK}{faults}")).unwrap();
        let kinds: Vec<&FaultKind> = s.faults.iter().map(|f| &f.kind).collect();
        assert_eq!(
            kinds[1..],
            [
                &FaultKind::Sybil { identities: 5 },
                &FaultKind::Trickle { rate: 64 << 10 },
                &FaultKind::Replay {
                    period: 10_000_000_000
                },
                &FaultKind::ForgeFlood { rate: 5.0 },
                &FaultKind::HubUnreachable,
                &FaultKind::Withhold,
            ]
        );
        assert!(kinds[1].is_attacker() && !kinds[1].is_faulty_node());
        assert!(kinds[5].is_faulty_node() && !kinds[5].is_attacker());
        for (bad, key) in [
            ("identities = 5", "identities = 0"),
            ("period = \"10s\"", "period = \"0s\""),
            ("per_second = 5", "per_second = -1.0"),
            (
                "kind = \"withhold\"\nnodes = 1",
                "kind = \"withhold\"\nnodes = 1\nuntil = \"9s\"",
            ),
        ] {
            let text = format!("{OK}{}", faults.replace(bad, key));
            assert!(Scenario::parse("a.toml", &text).is_err(), "{key}");
        }
        // Adversaries are distinct nodes.
        let roles = crate::faults::resolve(&s, 1);
        let mut all: Vec<u32> = roles.fault_nodes[1..].concat();
        let n = all.len();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), n);
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
