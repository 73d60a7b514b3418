//! What a testbed run measured, and the simulator's run beside it.

use bootswarm_sim::run::{Check, SeedResult};
use bootswarm_sim::scenario::{Discovery, HostCpu};
use std::path::PathBuf;

/// Bytes in a MiB.
const MIB: f64 = 1_048_576.0;

/// What one run of real processes measured.
#[derive(Debug, Clone, Default)]
pub(crate) struct PhaseResult {
    /// Seconds from the first node's start until each node printed `booted` (`None`: never).
    pub(crate) boot_times: Vec<Option<f64>>,
    /// Seconds until the last node booted, if all did.
    pub(crate) all_booted_s: Option<f64>,
    /// Seconds from the first node's start until the last node held every block (from
    /// /status `held_after_secs`): the boot without writing the tree out.
    pub(crate) all_held_s: Option<f64>,
    /// Average share of all CPUs busy (user + system) from the start until all booted; above
    /// ~0.7 the emulation is CPU-bound and times are stretched.
    pub(crate) cpu_busy: Option<f64>,
    /// Busy core-seconds of the machine from the start until every node held every block.
    pub(crate) fetch_cpu_s: Option<f64>,
    /// Busy core-seconds from then until every node booted (writing the trees).
    pub(crate) install_cpu_s: Option<f64>,
    /// Seconds spent starting the nodes (static discovery starts them one by one).
    pub(crate) spawn_s: f64,
    /// Bytes the hub sent during the run.
    pub(crate) hub_egress_bytes: u64,
    /// Σ over nodes of `bytes_from_peers` (from /status).
    pub(crate) bytes_from_peers: u64,
    /// Σ over nodes of `bytes_from_hub` (from /status).
    pub(crate) bytes_from_hub: u64,
    /// The first node whose tree differs from the sample, and how; `None`: all identical.
    pub(crate) tree_difference: Option<String>,
    /// Why the run ended without every node booted.
    pub(crate) incomplete: Option<String>,
}

/// What the upgrade after the swarm run measured (scenarios with a publish event).
#[derive(Debug, Clone, Default)]
pub(crate) struct UpgradeMeasured {
    /// The published release's seq.
    pub(crate) seq: u64,
    /// Bytes of the block files the v2 publish added to the hub directory.
    pub(crate) changed_bytes: u64,
    /// Bytes the hub sent from the announce until every node switched.
    pub(crate) hub_bytes: u64,
    /// Seconds from the announce until each node reported the new seq installed.
    pub(crate) times: Vec<Option<f64>>,
    /// Seconds until the last node switched, if all did.
    pub(crate) all_upgraded_s: Option<f64>,
    /// The first node whose `current` tree differs from v2, and how; `None`: all identical.
    pub(crate) tree_difference: Option<String>,
    /// Why the upgrade ended without every node switched.
    pub(crate) incomplete: Option<String>,
}

impl UpgradeMeasured {
    /// Hub bytes over the bytes v2 adds.
    pub(crate) fn hub_bytes_vs_changed(&self) -> f64 {
        self.hub_bytes as f64 / self.changed_bytes.max(1) as f64
    }
}

/// Everything measured and simulated for a scenario.
#[derive(Debug, Clone)]
pub(crate) struct Outcome {
    /// Scenario name.
    pub(crate) scenario: String,
    /// The scenario file.
    pub(crate) scenario_file: String,
    /// The scenario's `[host]`.
    pub(crate) host: Option<HostCpu>,
    /// Nodes.
    pub(crate) nodes: usize,
    /// Bytes of file content each node installs.
    pub(crate) tree_bytes: u64,
    /// F of the published release: bytes of all its blocks.
    pub(crate) release_bytes: u64,
    /// T_min for the published release on the scenario's links.
    pub(crate) t_min_s: f64,
    /// Discovery used.
    pub(crate) discovery: Discovery,
    /// Whether node NICs were shaped.
    pub(crate) shaped_nics: bool,
    /// The swarm run.
    pub(crate) swarm: PhaseResult,
    /// The upgrade after the swarm run, when the scenario publishes.
    pub(crate) upgrade: Option<UpgradeMeasured>,
    /// The hub-only run, unless skipped (of v2 when the scenario publishes).
    pub(crate) hub_only: Option<PhaseResult>,
    /// The simulator's run of the same scenario on its first seed.
    pub(crate) sim: SeedResult,
    /// The `[testbed.expect]` checks, plus the tree check.
    pub(crate) checks: Vec<Check>,
    /// The kept work directory.
    pub(crate) workdir: Option<PathBuf>,
}

impl Outcome {
    /// Whether every check held.
    pub(crate) fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.pass)
    }

    /// Measured all-booted time over T_min.
    pub(crate) fn time_vs_tmin(&self) -> Option<f64> {
        self.swarm.all_booted_s.map(|a| a / self.t_min_s)
    }

    /// Measured hub egress over F.
    pub(crate) fn hub_egress_vs_f(&self) -> f64 {
        self.swarm.hub_egress_bytes as f64 / self.release_bytes.max(1) as f64
    }

    /// Measured hub-only time over measured swarm time.
    pub(crate) fn speedup(&self) -> Option<f64> {
        match (
            self.hub_only.as_ref()?.all_booted_s,
            self.swarm.all_booted_s,
        ) {
            (Some(h), Some(s)) if s > 0.0 => Some(h / s),
            _ => None,
        }
    }

    /// |simulated − measured| / measured all-booted time.
    pub(crate) fn sim_time_error(&self) -> Option<f64> {
        match (self.sim.all_booted_s, self.swarm.all_booted_s) {
            (Some(s), Some(m)) if m > 0.0 => Some((s - m).abs() / m),
            _ => None,
        }
    }

    /// Busy core-seconds of the fetch phase per MiB the nodes received (the swarm run).
    pub(crate) fn transfer_cpu_per_mib(&self) -> Option<f64> {
        let received = (self.swarm.bytes_from_peers + self.swarm.bytes_from_hub) as f64 / MIB;
        self.swarm
            .fetch_cpu_s
            .filter(|_| received > 0.0)
            .map(|c| c / received)
    }

    /// Busy core-seconds of the install phase per MiB of tree the nodes wrote.
    pub(crate) fn install_cpu_per_mib(&self) -> Option<f64> {
        let written = self.installed_mib();
        self.swarm
            .install_cpu_s
            .filter(|_| written > 0.0)
            .map(|c| c / written)
    }

    /// MiB of tree the swarm run's nodes wrote: nodes × tree size.
    pub(crate) fn installed_mib(&self) -> f64 {
        self.nodes as f64 * self.tree_bytes as f64 / MIB
    }

    /// |simulated − measured| / measured hub egress bytes.
    pub(crate) fn sim_hub_bytes_error(&self) -> Option<f64> {
        let m = self.swarm.hub_egress_bytes;
        (m > 0).then(|| (self.sim.hub_egress_bytes as f64 - m as f64).abs() / m as f64)
    }
}
