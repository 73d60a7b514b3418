//! The install steps the follower asks for, each carried out in a task that answers it.

use super::*;
use crate::daemon::prewrite::Prewrite;
use crate::daemon::test_hooks::writes_ahead;

impl Driver {
    /// Carries out one install step in a task; its answer goes back to the follower.
    pub(super) fn install_step(&mut self, step: Action) {
        let Some(layout) = self.layout.clone() else {
            return;
        };
        let state = Arc::clone(&self.state);
        let direct = self.opts.once;
        match step {
            Action::Install { version, previous } => {
                self.upgrading = previous.map(|_| version.seq);
                let seq = version.seq;
                let ahead = self.prewrite.take().filter(|p| p.seq == seq);
                self.tasks.step(move |store| {
                    let streamed = ahead.map(Prewrite::finish).unwrap_or_default();
                    let written = if direct {
                        versions::install_direct(store, &version.root, &layout.target)
                            .map(|stats| (Vec::new(), Some(stats)))
                    } else {
                        versions::write_version(
                            store, &state, &layout, version, previous, &streamed,
                        )
                        .map(|w| (w.changed, w.stats))
                    };
                    match written {
                        Ok((changed, stats)) => (
                            follower::Input::Installed {
                                seq,
                                result: Ok(changed),
                            },
                            stats,
                        ),
                        Err(e) => (
                            follower::Input::Installed {
                                seq,
                                result: Err(e.to_string()),
                            },
                            None,
                        ),
                    }
                });
            }
            Action::Switch { seq } => {
                let upgrade = self.upgrading == Some(seq);
                self.tasks.step(move |_| {
                    let result = versions::switch(&layout.target, seq).map_err(|e| e.to_string());
                    if upgrade && result.is_ok() {
                        crash_point("after-switch");
                    }
                    (follower::Input::Switched { seq, result }, None)
                });
            }
            Action::RunHooks {
                seq,
                action,
                packages,
            } => {
                let hooks = self.opts.hooks.clone();
                self.hook_job = hooks
                    .on_change
                    .is_some()
                    .then(|| (action, packages.clone()));
                self.tasks.step(move |_| {
                    let result = hooks::run_hooks(&hooks, &layout.target, seq, action, &packages);
                    if action == follower::HookAction::Upgrade && result.is_ok() {
                        crash_point("after-hook");
                    }
                    (follower::Input::HooksRan { seq, result }, None)
                });
            }
            Action::HealthCheck { seq } => {
                let hooks = self.opts.hooks.clone();
                self.tasks.step(move |_| {
                    let result = hooks::health_check(&hooks, &layout.target, seq);
                    (follower::Input::HealthChecked { seq, result }, None)
                });
            }
            Action::Commit {
                version,
                collect_blocks,
            } => {
                self.tasks.step(move |store| {
                    let result = if direct {
                        versions::record_installed(&state, &layout, version)
                    } else {
                        versions::commit(store, &state, &layout, version, collect_blocks)
                    };
                    let result = result.map_err(|e| e.to_string());
                    (
                        follower::Input::Recorded {
                            seq: version.seq,
                            result,
                        },
                        None,
                    )
                });
            }
            Action::RecordFailure { failure, restore } => {
                tracing::warn!("{}", failure.reason);
                let seq = failure.version.seq;
                self.tasks.step(move |_| {
                    let result =
                        versions::record_failure(&state, &layout, failed(&failure), restore)
                            .map_err(|e| e.to_string());
                    (follower::Input::Recorded { seq, result }, None)
                });
            }
            _ => {}
        }
    }

    /// Starts writing the booting version's files into its staging directory once its
    /// manifests are all held, so the install overlaps the fetch (daemon layout only).
    pub(super) fn maybe_prewrite(&mut self) {
        let Some(root) = self.follower.status().booting else {
            return;
        };
        if self.prewrite_root == Some(root) || self.opts.once || !self.agent.progress().complete {
            return;
        }
        let Some(layout) = &self.layout else {
            return;
        };
        let Some(seq) = self
            .follower
            .current()
            .filter(|c| c.version.root == root)
            .map(|c| c.version.seq)
        else {
            return;
        };
        self.prewrite_root = Some(root);
        if !writes_ahead() || versions::on_disk(&layout.target, seq) {
            return;
        }
        self.prewrite = Some(Prewrite::start(
            Arc::clone(&self.tasks.store),
            self.stored.subscribe(),
            seq,
            root,
            versions::staging(&layout.target, seq),
        ));
    }

    // ----- swarm events -----
}
