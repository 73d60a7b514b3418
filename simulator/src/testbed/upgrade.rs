//! The upgrade after the swarm run: v2 published, announced to node 0, and measured until
//! every node runs it.

use super::Error;
use super::lab::{self, Lab};
use super::outcome::UpgradeMeasured;
use super::phase::{Env, HTTP_PORT, tree_difference};
use super::process::{Proc, check_stop, last_line};
use super::publish::{UpgradePlan, publish_v2};
use super::sample;
use std::fs;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

impl Env<'_> {
    /// With every node of the swarm run booted: writes v2, publishes it into the hub
    /// directory, announces it to node 0 and waits until every node runs it; then checks
    /// every node's `current` tree against v2. Returns the figures and v2's tree.
    pub(crate) fn upgrade_phase(
        &self,
        plan: &UpgradePlan,
        dir: &Path,
        procs: &mut [Proc],
    ) -> Result<(UpgradeMeasured, sample::Tree), Error> {
        let ctx = self.ctx;
        let n = self.lab.nodes();
        let v2 = publish_v2(ctx, plan)?;
        let (seq, changed_bytes) = (v2.seq, v2.changed_bytes);
        let egress0 = self.hub_egress()?;
        ctx.report(&format!(
            "upgrade: published seq {seq} ({changed_bytes} new bytes); announcing it to node 0"
        ));
        let node0 = SocketAddr::from((Lab::node_ip(0), HTTP_PORT));
        let t0 = Instant::now();
        ctx.tool_in(Some(&self.lab.node_ns(0)), &plan.work, "announce", |c| {
            c.args(["announce", "--node", &node0.to_string(), "--release"])
                .arg(&v2.release);
        })?;
        let timeout = plan.timeout.unwrap_or_else(|| {
            Duration::from_secs_f64(
                (20.0 * changed_bytes as f64 / plan.hub_link.max(1) as f64).max(120.0),
            )
        });
        let (times, incomplete) = self.wait_switched(procs, seq, t0, timeout)?;
        let hub_bytes = self.hub_egress()?.saturating_sub(egress0);
        self.save_statuses(dir, procs);
        let switched = (0..n).filter(|&k| times[k].is_some());
        let tree_difference = tree_difference(ctx, dir, switched, &v2.want, "upgrade")?;
        let all_upgraded_s = if incomplete.is_none() {
            times.iter().flatten().copied().reduce(f64::max)
        } else {
            None
        };
        let m = UpgradeMeasured {
            seq,
            changed_bytes,
            hub_bytes,
            times,
            all_upgraded_s,
            tree_difference,
            incomplete,
        };
        ctx.report(&format!(
            "upgrade done: {}/{n} switched{}, hub sent {:.3} × the new bytes",
            m.times.iter().flatten().count(),
            m.all_upgraded_s
                .map_or(String::new(), |s| format!(" in {s:.2} s")),
            m.hub_bytes_vs_changed()
        ));
        Ok((m, v2.want))
    }

    /// Polls every node's /status until each reports `seq` installed, one failed the upgrade
    /// or exited, or `timeout` after `t0`; returns when each switched (seconds after `t0`)
    /// and why the upgrade is incomplete, if it is.
    fn wait_switched(
        &self,
        procs: &mut [Proc],
        seq: u64,
        t0: Instant,
        timeout: Duration,
    ) -> Result<(Vec<Option<f64>>, Option<String>), Error> {
        let ctx = self.ctx;
        let n = self.lab.nodes();
        let mut times: Vec<Option<f64>> = vec![None; n];
        let mut incomplete = None;
        let mut last_report = Instant::now();
        while times.iter().any(Option::is_none) {
            check_stop(ctx.stop)?;
            for k in 0..n {
                if times[k].is_some() {
                    continue;
                }
                let addr = SocketAddr::from((Lab::node_ip(k), HTTP_PORT));
                if let Ok(body) = lab::http_get(&self.lab.node_ns(k), addr, "/status")
                    && let Ok(v) = serde_json::from_str::<serde_json::Value>(&body)
                {
                    if v["installed"]["seq"].as_u64() == Some(seq) {
                        times[k] = Some(t0.elapsed().as_secs_f64());
                    } else if v["upgrade_failure"]["seq"].as_u64() == Some(seq)
                        && let Some(why) = v["upgrade_failure"]["reason"].as_str()
                    {
                        incomplete = Some(format!("node {k} failed the upgrade: {why}"));
                    }
                }
                if times[k].is_none()
                    && let Some(st) = procs[k].exited()
                {
                    incomplete = Some(format!(
                        "node {k} exited ({st}) during the upgrade: {}",
                        last_line(&procs[k].log)
                    ));
                }
            }
            if incomplete.is_some() {
                break;
            }
            if t0.elapsed() > timeout {
                incomplete = Some(format!(
                    "{}/{n} nodes switched to seq {seq} within {:.0} s",
                    times.iter().flatten().count(),
                    timeout.as_secs_f64()
                ));
                break;
            }
            if ctx.progress && last_report.elapsed() >= Duration::from_secs(2) {
                last_report = Instant::now();
                eprintln!(
                    "testbed: upgrade {:>6.1} s: {}/{n} switched",
                    t0.elapsed().as_secs_f64(),
                    times.iter().flatten().count()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok((times, incomplete))
    }

    /// Drains every node's stdout so the pipe never fills, and keeps its /status as
    /// `nK/status-upgrade.json` for diagnosis.
    fn save_statuses(&self, dir: &Path, procs: &[Proc]) {
        for (k, p) in procs.iter().enumerate() {
            while p.lines.try_recv().is_ok() {}
            let addr = SocketAddr::from((Lab::node_ip(k), HTTP_PORT));
            if let Ok(body) = lab::http_get(&self.lab.node_ns(k), addr, "/status") {
                let _ = fs::write(dir.join(format!("n{k}/status-upgrade.json")), body);
            }
        }
    }
}
