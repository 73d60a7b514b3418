//! The release follower: one sans-IO state machine per node that owns every decision about
//! the releases of the channel the node follows.
//!
//! It judges each release it hears (from the hub, by gossip, from a peer, from an operator or
//! from the disk) with the trust root and the durable high-water mark; asks the driver to save
//! a new mark and waits for that before anything of the release is booted; decides when this
//! node polls the hub (about one node per period for the whole farm; see the `poll` module);
//! gates the boot on the expected peers; and sequences install → switch → hooks → health check →
//! switch back. The driver (the node or the simulator) feeds [`Input`]s (facts) with the
//! current [`Time`] and unix time, drains [`Follower::poll_output`] (actions), and arms a
//! timer for [`Follower::poll_timeout`], exactly as for the [`Agent`](crate::agent::Agent).

mod install;
mod io;
mod poll;

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::agent::{NodeId, Time};
use crate::block::Cid;
use crate::release::{
    Freshness, GossipVerdict, HighWater, RefusalKind, ReleaseError, SignedRelease, check_claims,
    gossip_verdict,
};
use install::Installer;
pub use io::{
    CurrentRelease, Failure, FollowerConfig, FollowerStatus, HookAction, Input, InstallMode,
    Output, Restored, Verdict, Version, Via,
};
use poll::PollSchedule;
use sha2::{Digest, Sha256};

/// Accepted releases whose seq is remembered by root (a booted root may no longer be the
/// current release by the time it is installed).
const ROOTS_REMEMBERED: usize = 64;
/// Signature checks remembered by release digest: a release heard again (a re-gossip, a
/// replay, a flood of copies) costs a hash, not a signature check.
const SIGNATURES_REMEMBERED: usize = 32;

/// The release follower of one node. See the [module documentation](self).
#[derive(Debug)]
pub struct Follower {
    cfg: FollowerConfig,
    now: Time,
    unix: u64,
    started: Time,
    high_water: Option<HighWater>,
    current: Option<CurrentRelease>,
    /// A save is in flight.
    saving: bool,
    /// Durable and waiting for the peer gate.
    pending_boot: Option<Cid>,
    /// Recent signature checks: (digest of the release bytes, outcome).
    signatures: VecDeque<([u8; 32], Result<(), ReleaseError>)>,
    members: BTreeSet<NodeId>,
    poll: PollSchedule,
    installer: Installer,
    /// Seq of each root accepted by this run.
    root_seqs: BTreeMap<Cid, u64>,
    status: FollowerStatus,
    out: VecDeque<Output>,
}

impl Follower {
    /// A follower starting at `now` (unix time `unix`) from what an earlier run saved; the
    /// saved release, if any, is judged at once.
    pub fn new(cfg: FollowerConfig, restored: Restored, now: Time, unix: u64) -> Self {
        let poll = PollSchedule::new(&cfg, now, unix);
        let status = FollowerStatus {
            installed: restored.installed,
            failure: restored.failed.clone(),
            ..FollowerStatus::default()
        };
        let installer = Installer::new(cfg.install, &restored);
        let mut follower = Follower {
            cfg,
            now,
            unix,
            started: now,
            high_water: restored.high_water,
            current: None,
            saving: false,
            pending_boot: None,
            signatures: VecDeque::new(),
            members: BTreeSet::new(),
            poll,
            installer,
            root_seqs: BTreeMap::new(),
            status,
            out: VecDeque::new(),
        };
        if let Some(bytes) = restored.release {
            follower.on_release(bytes, Via::Disk, None, 0);
        }
        follower.progress();
        follower
    }

    /// Feeds one fact at `now` (unix time `unix`). Drain [`poll_output`](Self::poll_output)
    /// afterwards.
    pub fn handle(&mut self, now: Time, unix: u64, input: Input) {
        self.now = self.now.max(now);
        self.unix = unix;
        match input {
            Input::Release {
                bytes,
                via,
                author,
                ticket,
            } => self.on_release(bytes, via, author, ticket),
            Input::Polled(result) => self.on_polled(result),
            Input::Saved { root } => self.on_saved(root),
            Input::Members(list) => {
                self.members = list.into_iter().filter(|m| *m != self.cfg.me).collect();
            }
            Input::MemberUp(id) => {
                if id != self.cfg.me {
                    self.members.insert(id);
                }
            }
            Input::MemberDown(id) => {
                self.members.remove(&id);
            }
            Input::Booted { root } => {
                // A boot given up, or overtaken by a newer release, installs nothing.
                if self.status.booting == Some(root) {
                    self.installer.booted(root);
                }
            }
            Input::BootRefused { root, reason } => self.on_boot_refused(root, reason),
            Input::Installed { seq, result } => self.installer.installed(seq, result, &self.ctx()),
            Input::Switched { seq, result } => self.installer.switched(seq, result, &self.ctx()),
            Input::HooksRan { seq, result } => self.installer.hooks_ran(seq, result, &self.ctx()),
            Input::HealthChecked { seq, result } => {
                self.installer.checked(seq, result, &self.ctx());
            }
            Input::Recorded { seq, result } => self.installer.recorded(seq, result, &self.ctx()),
            Input::Timeout => {}
        }
        self.progress();
    }

    fn ctx(&self) -> install::Ctx {
        install::Ctx {
            unix: self.unix,
            current: self.current.as_ref().map(|c| c.version.root),
        }
    }

    /// The next action, if any.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// When the follower next needs [`Input::Timeout`].
    pub fn poll_timeout(&self) -> Option<Time> {
        let gate = self
            .pending_boot
            .filter(|_| !self.peers_ready())
            .map(|_| self.started + self.cfg.peer_wait);
        match (self.poll.due(), gate) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The release followed now.
    pub fn current(&self) -> Option<&CurrentRelease> {
        self.current.as_ref()
    }

    /// What `/status` reports.
    pub fn status(&self) -> &FollowerStatus {
        &self.status
    }

    /// The config it runs with.
    pub fn config(&self) -> &FollowerConfig {
        &self.cfg
    }

    /// Everything that can move after an input: a due poll, the boot gate, the next install
    /// step.
    fn progress(&mut self) {
        let (poll, left) = self
            .poll
            .tick(self.now, self.unix, &self.members, self.must_poll());
        if left {
            self.status.polls_deferred += 1;
        }
        if poll {
            self.status.polls += 1;
            self.out.push_back(Output::Poll);
        }
        self.maybe_boot();
        for step in self.installer.drain(&self.root_seqs) {
            self.on_install_step(step);
        }
    }

    fn on_install_step(&mut self, step: install::Step) {
        match step {
            install::Step::Do(out) => self.out.push_back(out),
            install::Step::Installed(version) => self.status.installed = Some(version),
            install::Step::Failed(failure) => {
                self.status.failure = Some(failure.clone());
                if !failure.rolled_back {
                    self.out.push_back(Output::InstallFailed { failure });
                }
            }
            install::Step::InUse(version) => {
                if self.status.booting != Some(version.root) {
                    return;
                }
                self.status.booted = true;
                self.status.booted_at = Some(self.now);
                self.out.push_back(Output::InUse { version });
            }
        }
    }

    fn on_boot_refused(&mut self, root: Cid, reason: String) {
        if self.status.booting != Some(root) {
            return;
        }
        self.status.booting = None;
        let Some(&seq) = self.root_seqs.get(&root) else {
            return;
        };
        let failure = Failure {
            version: Version { seq, root },
            reason,
            at: self.unix,
            rolled_back: false,
        };
        self.status.failure = Some(failure.clone());
        self.out.push_back(Output::InstallFailed { failure });
    }

    /// Whether this node polls whatever the farm does: its release is stale.
    fn must_poll(&self) -> bool {
        self.cfg.poll_interval.is_some() && self.stale()
    }

    /// Whether the release followed is stale: it expires within two poll periods (an hour
    /// without polls), or there is none.
    pub fn stale(&self) -> bool {
        let period = self.cfg.poll_interval.map_or(3600, |p| p.as_secs());
        self.current
            .as_ref()
            .is_none_or(|c| c.expires_at <= self.unix.saturating_add(2 * period))
    }

    /// Seconds until the release followed expires (negative once it has).
    pub fn expires_in(&self) -> Option<i64> {
        self.current.as_ref().map(|c| {
            let (e, u) = (i128::from(c.expires_at), i128::from(self.unix));
            i64::try_from(e - u).unwrap_or(i64::MAX)
        })
    }

    // ----- releases -----

    fn on_release(&mut self, bytes: Vec<u8>, via: Via, author: Option<NodeId>, ticket: u64) {
        let (verdict, adopted) = self.judge(&bytes);
        self.out.push_back(Output::Judged {
            ticket,
            via,
            verdict: verdict.clone(),
        });
        match (verdict, adopted) {
            (_, Some((signed, fresh))) => {
                if matches!(via, Via::Gossip | Via::Operator) {
                    // The farm (or an operator) passed a valid release on: the hub was asked.
                    self.poll.heard(self.now, author);
                }
                self.adopt(&signed, bytes, fresh, via, via == Via::Operator);
            }
            (Verdict::Ignored { kind, reason } | Verdict::Rejected { kind, reason }, None) => {
                self.count_refusal(kind, reason, via);
            }
            _ => {}
        }
    }

    fn on_polled(&mut self, result: Result<Vec<u8>, String>) {
        let decoded = result.and_then(|bytes| {
            SignedRelease::decode(&bytes)
                .map(|s| (s, bytes))
                .map_err(|e| e.to_string())
        });
        match decoded {
            Ok((signed, bytes)) => {
                let start_up = self.poll.succeeded(self.now);
                self.status.hub_failing = false;
                let outcome = self.check(&signed, &bytes);
                let verdict = match &outcome {
                    Ok(Freshness::New) => Verdict::New(signed.release.seq),
                    Ok(Freshness::Current) => Verdict::Current(signed.release.seq),
                    Err(e) => Verdict::Ignored {
                        kind: e.kind(),
                        reason: e.to_string(),
                    },
                };
                self.out.push_back(Output::Judged {
                    ticket: 0,
                    via: Via::Hub,
                    verdict: verdict.clone(),
                });
                match (outcome, verdict) {
                    (Ok(fresh), _) => self.adopt(&signed, bytes, fresh, Via::Hub, !start_up),
                    (Err(_), Verdict::Ignored { kind, reason }) => {
                        self.count_refusal(kind, reason, Via::Hub);
                    }
                    _ => {}
                }
            }
            Err(_) => {
                self.poll.failed(self.now);
                self.status.hub_failing = true;
            }
        }
    }

    #[allow(
        clippy::result_large_err,
        reason = "ReleaseError::Equivocation names both roots; errors are cold"
    )]
    /// `check_release`, with the signature check remembered for the exact bytes.
    fn check(&mut self, signed: &SignedRelease, bytes: &[u8]) -> Result<Freshness, ReleaseError> {
        let digest: [u8; 32] = Sha256::digest(bytes).into();
        let known = self
            .signatures
            .iter()
            .find(|(d, _)| *d == digest)
            .map(|(_, r)| r.clone());
        let signed_ok = known.unwrap_or_else(|| {
            let r = self.cfg.trust.verify(signed);
            if self.signatures.len() >= SIGNATURES_REMEMBERED {
                self.signatures.pop_front();
            }
            self.signatures.push_back((digest, r.clone()));
            r
        });
        signed_ok?;
        check_claims(
            &self.cfg.channel,
            self.unix,
            self.high_water.as_ref(),
            &signed.release,
        )
    }

    /// The verdict on release bytes from anywhere but the hub, and what to adopt.
    fn judge(&mut self, bytes: &[u8]) -> (Verdict, Option<(SignedRelease, Freshness)>) {
        let signed = match SignedRelease::decode(bytes) {
            Ok(s) => s,
            Err(e) => {
                let verdict = Verdict::Rejected {
                    kind: e.kind(),
                    reason: e.to_string(),
                };
                return (verdict, None);
            }
        };
        let outcome = self.check(&signed, bytes);
        let seq = signed.release.seq;
        match (gossip_verdict(&outcome, self.high_water.as_ref()), outcome) {
            (_, Ok(fresh)) => {
                let verdict = match fresh {
                    Freshness::New => Verdict::New(seq),
                    Freshness::Current => Verdict::Current(seq),
                };
                (verdict, Some((signed, fresh)))
            }
            // The release just before ours (an honest race with a poller) and a clock ahead
            // of ours are ignored; forged, other-channel, expired (replayed), older and
            // equivocating releases blame the sender.
            (GossipVerdict::Ignore, Err(e)) => (
                Verdict::Ignored {
                    kind: e.kind(),
                    reason: e.to_string(),
                },
                None,
            ),
            (_, Err(e)) => (
                Verdict::Rejected {
                    kind: e.kind(),
                    reason: e.to_string(),
                },
                None,
            ),
        }
    }

    /// Counts a refusal for `/status` (a stale copy from the hub, a peer that has not
    /// upgraded yet or the disk is no refusal worth reporting).
    fn count_refusal(&mut self, kind: RefusalKind, reason: String, via: Via) {
        if matches!(via, Via::Hub | Via::Peer | Via::Disk) && kind == RefusalKind::Rollback {
            return;
        }
        *self.status.refusals.entry(kind).or_insert(0) += 1;
        self.status.last_refusal = Some(reason);
    }

    /// Adopts a valid release. A new one is passed on to gossip unless it came from there; the
    /// current one only when `pass_on_current` (an operator's, or a periodic poll's answer:
    /// the farm then skips its polls; a node's start-up poll stands for nobody else's).
    fn adopt(
        &mut self,
        signed: &SignedRelease,
        bytes: Vec<u8>,
        fresh: Freshness,
        via: Via,
        pass_on_current: bool,
    ) {
        let r = &signed.release;
        let version = Version {
            seq: r.seq,
            root: r.root,
        };
        if self.current.as_ref().is_some_and(|c| c.version.seq > r.seq) {
            return;
        }
        let same = self.current.as_ref().is_some_and(|c| c.version == version);
        let pass_on = pass_on_current || (!same && via != Via::Gossip);
        if pass_on {
            self.out.push_back(Output::Publish {
                bytes: bytes.clone(),
            });
        }
        if same {
            return;
        }
        self.current = Some(CurrentRelease {
            version,
            expires_at: r.expires_at,
            bytes,
        });
        // Not booted until this root is.
        self.status.booted = false;
        self.status.booted_at = None;
        self.high_water = Some(HighWater {
            seq: r.seq,
            root: r.root,
        });
        self.status.accepted += 1;
        if self.root_seqs.len() >= ROOTS_REMEMBERED {
            self.root_seqs.clear();
        }
        self.root_seqs.insert(r.root, r.seq);
        match fresh {
            // Durable before anything is installed; the boot starts once it is saved.
            Freshness::New => self.save(),
            Freshness::Current => self.pending_boot = Some(r.root),
        }
    }

    fn save(&mut self) {
        let (Some(high_water), false) = (self.high_water.clone(), self.saving) else {
            return;
        };
        let Some(bytes) = self.current.as_ref().map(|c| c.bytes.clone()) else {
            return;
        };
        self.saving = true;
        self.out.push_back(Output::Save { high_water, bytes });
    }

    fn on_saved(&mut self, root: Cid) {
        self.saving = false;
        if self
            .current
            .as_ref()
            .is_some_and(|c| c.version.root == root)
        {
            self.pending_boot = Some(root);
        } else {
            // A newer release arrived meanwhile: save that one too.
            self.save();
        }
    }

    // ----- the boot gate -----

    fn peers_ready(&self) -> bool {
        let needed = self.cfg.peers_needed;
        needed == 0
            || self.members.len() >= needed
            || self.now.saturating_duration_since(self.started) >= self.cfg.peer_wait
    }

    /// Starts the boot once the release is durable and the expected peers are connected (or
    /// waited for long enough).
    fn maybe_boot(&mut self) {
        let Some(root) = self.pending_boot else {
            return;
        };
        if !self.peers_ready() {
            return;
        }
        self.pending_boot = None;
        if self.status.booting == Some(root) {
            return;
        }
        self.status.booting = Some(root);
        self.status.booted = false;
        self.out.push_back(Output::Boot { root });
    }
}

#[cfg(test)]
mod tests;
