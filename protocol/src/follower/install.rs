//! The install sequence of a booted release: write the tree, switch to it, run the change
//! hooks and the health check on an upgrade, switch back when either fails, and record the
//! outcome durably. One version at a time; a release booted meanwhile waits its turn.

use std::collections::{BTreeMap, VecDeque};

use super::{Failure, HookAction, InstallMode, Output, Restored, Version};
use crate::block::Cid;

/// What the follower learns from the installer.
#[derive(Debug)]
pub(super) enum Step {
    /// An action for the driver.
    Do(Output),
    /// A version is now the one installed.
    Installed(Version),
    /// An install failed or an upgrade was rolled back.
    Failed(Failure),
    /// A booted version is in use (or, after a rollback, was dealt with).
    InUse(Version),
}

/// What the installer needs to know about the follower at each step.
#[derive(Debug, Clone, Copy)]
pub(super) struct Ctx {
    /// Unix time now.
    pub(super) unix: u64,
    /// The root of the release followed now.
    pub(super) current: Option<Cid>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Stage {
    Writing,
    Switching,
    Hooks,
    Checking,
    Committing,
    SwitchingBack(String),
    RollbackHooks(String),
    RecordingFailure(Failure),
}

#[derive(Debug)]
struct Job {
    version: Version,
    /// The version this one upgrades, which a failure switches back to.
    previous: Option<Version>,
    changed: Vec<String>,
    stage: Stage,
}

/// The install sequence. Invariant: at most one job; every output it asks for is answered
/// by exactly one input about the job's version (answers about any other are stale and
/// ignored).
#[derive(Debug)]
pub(super) struct Installer {
    mode: InstallMode,
    installed: Option<Version>,
    /// `installed`'s tree is on disk, so an upgrade from it can switch back.
    can_roll_back: bool,
    /// The last upgrade rolled back: that version is not installed again.
    failed: Option<Version>,
    /// A booted root waiting for the job in progress.
    next: Option<Cid>,
    job: Option<Job>,
    steps: VecDeque<Step>,
}

impl Installer {
    pub(super) fn new(mode: InstallMode, restored: &Restored) -> Self {
        Installer {
            mode,
            installed: restored.installed,
            can_roll_back: restored.installed_on_disk,
            failed: restored
                .failed
                .as_ref()
                .filter(|f| f.rolled_back)
                .map(|f| f.version),
            next: None,
            job: None,
            steps: VecDeque::new(),
        }
    }

    /// Every block of `root` is held and stored.
    pub(super) fn booted(&mut self, root: Cid) {
        self.next = Some(root);
    }

    /// Starts the next job if none runs, and hands over what happened since the last call.
    pub(super) fn drain(&mut self, seqs: &BTreeMap<Cid, u64>) -> Vec<Step> {
        if self.job.is_none()
            && let Some(root) = self.next.take()
            && let Some(&seq) = seqs.get(&root)
        {
            self.start(Version { seq, root });
        }
        self.steps.drain(..).collect()
    }

    fn start(&mut self, version: Version) {
        match self.mode {
            InstallMode::None => self.steps.push_back(Step::InUse(version)),
            InstallMode::Direct => self.begin(version, None),
            InstallMode::Versions { .. } => {
                if self.failed == Some(version) {
                    // Rolled back before: it stays failed, and the node stays on what it runs.
                    self.steps.push_back(Step::InUse(version));
                    return;
                }
                let previous = self
                    .installed
                    .filter(|prev| *prev != version && self.can_roll_back);
                self.begin(version, previous);
            }
        }
    }

    fn begin(&mut self, version: Version, previous: Option<Version>) {
        self.job = Some(Job {
            version,
            previous,
            changed: Vec::new(),
            stage: Stage::Writing,
        });
        self.steps
            .push_back(Step::Do(Output::Install { version, previous }));
    }

    /// The job if `seq` is its version and it is at `stage`.
    fn job_at(&mut self, seq: u64, stage: impl Fn(&Stage) -> bool) -> Option<&mut Job> {
        self.job
            .as_mut()
            .filter(|j| j.version.seq == seq && stage(&j.stage))
    }

    pub(super) fn installed(&mut self, seq: u64, result: Result<Vec<String>, String>, ctx: &Ctx) {
        let direct = self.mode == InstallMode::Direct;
        let Some(job) = self.job_at(seq, |s| *s == Stage::Writing) else {
            return;
        };
        match result {
            Ok(changed) => {
                job.changed = changed;
                if direct {
                    self.commit(ctx);
                } else {
                    job.stage = Stage::Switching;
                    self.steps.push_back(Step::Do(Output::Switch { seq }));
                }
            }
            Err(e) => self.fail(e, ctx),
        }
    }

    pub(super) fn switched(&mut self, seq: u64, result: Result<(), String>, ctx: &Ctx) {
        let Some(job) = self.job.as_mut() else {
            return;
        };
        let back_to = job.previous.map(|p| p.seq);
        match (&job.stage, result) {
            (Stage::Switching, Ok(())) if job.version.seq == seq => self.after_switch(ctx),
            (Stage::SwitchingBack(reason), Ok(())) if back_to == Some(seq) => {
                let reason = reason.clone();
                self.rollback_hooks(reason, ctx);
            }
            (Stage::Switching, Err(e)) if job.version.seq == seq => self.fail(e, ctx),
            (Stage::SwitchingBack(_), Err(e)) if back_to == Some(seq) => self.fail(e, ctx),
            _ => {}
        }
    }

    pub(super) fn hooks_ran(&mut self, seq: u64, result: Result<(), String>, ctx: &Ctx) {
        let Some(job) = self.job.as_mut() else {
            return;
        };
        let back_to = job.previous.map(|p| p.seq);
        match &job.stage {
            Stage::Hooks if job.version.seq == seq => match result {
                Ok(()) => self.health_check(ctx),
                Err(e) => self.switch_back(e),
            },
            // The rollback's hooks are best effort: the failure is recorded either way.
            Stage::RollbackHooks(reason) if back_to == Some(seq) => {
                let reason = reason.clone();
                self.record_failure(reason, ctx);
            }
            _ => {}
        }
    }

    pub(super) fn checked(&mut self, seq: u64, result: Result<(), String>, ctx: &Ctx) {
        if self.job_at(seq, |s| *s == Stage::Checking).is_none() {
            return;
        }
        match result {
            Ok(()) => self.commit(ctx),
            Err(e) => self.switch_back(e),
        }
    }

    pub(super) fn recorded(&mut self, seq: u64, result: Result<(), String>, ctx: &Ctx) {
        let Some(job) = self.job.as_ref().filter(|j| j.version.seq == seq) else {
            return;
        };
        let (version, stage) = (job.version, job.stage.clone());
        match (stage, result) {
            (Stage::Committing, Ok(())) => {
                self.job = None;
                self.installed = Some(version);
                self.can_roll_back = self.mode != InstallMode::Direct;
                self.steps.push_back(Step::Installed(version));
                self.steps.push_back(Step::InUse(version));
            }
            (Stage::RecordingFailure(failure), Ok(())) => {
                self.job = None;
                self.failed = Some(version);
                self.steps.push_back(Step::Failed(failure));
                self.steps.push_back(Step::InUse(version));
            }
            (Stage::Committing | Stage::RecordingFailure(_), Err(e)) => self.fail(e, ctx),
            _ => {}
        }
    }

    fn after_switch(&mut self, ctx: &Ctx) {
        let InstallMode::Versions { hooks, .. } = self.mode else {
            return self.commit(ctx);
        };
        let Some(job) = self.job.as_mut() else {
            return;
        };
        if job.previous.is_none() {
            return self.commit(ctx);
        }
        if hooks && !job.changed.is_empty() {
            job.stage = Stage::Hooks;
            self.steps.push_back(Step::Do(Output::RunHooks {
                seq: job.version.seq,
                action: HookAction::Upgrade,
                packages: job.changed.clone(),
            }));
        } else {
            self.health_check(ctx);
        }
    }

    fn health_check(&mut self, ctx: &Ctx) {
        let check = matches!(
            self.mode,
            InstallMode::Versions {
                health_check: true,
                ..
            }
        );
        let Some(job) = self.job.as_mut() else {
            return;
        };
        if check && job.previous.is_some() {
            job.stage = Stage::Checking;
            let seq = job.version.seq;
            self.steps.push_back(Step::Do(Output::HealthCheck { seq }));
        } else {
            self.commit(ctx);
        }
    }

    fn commit(&mut self, ctx: &Ctx) {
        let Some(job) = self.job.as_mut() else {
            return;
        };
        job.stage = Stage::Committing;
        // Blocks may be collected only when no newer release is on its way in.
        let collect_blocks = ctx.current == Some(job.version.root);
        self.steps.push_back(Step::Do(Output::Commit {
            version: job.version,
            collect_blocks,
        }));
    }

    fn switch_back(&mut self, reason: String) {
        let Some(job) = self.job.as_mut() else {
            return;
        };
        let Some(prev) = job.previous else {
            return;
        };
        job.stage = Stage::SwitchingBack(reason);
        self.steps
            .push_back(Step::Do(Output::Switch { seq: prev.seq }));
    }

    fn rollback_hooks(&mut self, reason: String, ctx: &Ctx) {
        let hooks = matches!(self.mode, InstallMode::Versions { hooks: true, .. });
        let Some(job) = self.job.as_mut() else {
            return;
        };
        let Some(prev) = job.previous else {
            return;
        };
        if hooks && !job.changed.is_empty() {
            job.stage = Stage::RollbackHooks(reason);
            self.steps.push_back(Step::Do(Output::RunHooks {
                seq: prev.seq,
                action: HookAction::Rollback,
                packages: job.changed.clone(),
            }));
        } else {
            self.record_failure(reason, ctx);
        }
    }

    fn record_failure(&mut self, reason: String, ctx: &Ctx) {
        let Some(job) = self.job.as_mut() else {
            return;
        };
        let Some(prev) = job.previous else {
            return;
        };
        let seq = job.version.seq;
        let failure = Failure {
            version: job.version,
            reason: format!(
                "upgrade to seq {seq} was rolled back to seq {}: {reason}",
                prev.seq
            ),
            at: ctx.unix,
            rolled_back: true,
        };
        job.stage = Stage::RecordingFailure(failure.clone());
        self.steps.push_back(Step::Do(Output::RecordFailure {
            failure,
            restore: prev,
        }));
    }

    /// An error ended the job: the version is not in use; a later boot of it tries again.
    fn fail(&mut self, reason: String, ctx: &Ctx) {
        let Some(job) = self.job.take() else {
            return;
        };
        self.steps.push_back(Step::Failed(Failure {
            version: job.version,
            reason,
            at: ctx.unix,
            rolled_back: false,
        }));
    }
}
