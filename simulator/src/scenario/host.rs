//! `[host]`: the nodes share one machine's CPU.

use super::{Ctx, Scenario, ScenarioError};
use serde::Deserialize;

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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHost {
    cores: Option<f64>,
    transfer_cpu_per_mib: Option<f64>,
    install_cpu_per_mib: Option<f64>,
}

/// Fills `host`; needs `racks`.
pub(super) fn parse(
    cx: &Ctx<'_>,
    h: Option<&RawHost>,
    sc: &mut Scenario,
) -> Result<(), ScenarioError> {
    sc.host = h.map(|h| host(cx, h, sc.racks)).transpose()?;
    Ok(())
}

fn host(cx: &Ctx<'_>, h: &RawHost, racks: u32) -> Result<HostCpu, ScenarioError> {
    if racks > 0 {
        return Err(cx.err(
            "[host] models nodes sharing one machine and cannot be combined with [topology] racks"
                .into(),
        ));
    }
    let get = |key: &str, v: Option<f64>, lo: f64, hi: f64, unit: &str| {
        let v = v.ok_or_else(|| cx.err(format!("[host] {key} is missing")))?;
        if v.is_finite() && v >= lo && v <= hi {
            Ok(v)
        } else {
            Err(cx.err(format!(
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::tests::OK;

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
}
