//! Arbitrary inputs for one release follower, with its rules checked against every output.

use std::collections::BTreeSet;
use std::sync::OnceLock;
use std::time::Duration;

use super::Reader;
use super::fixtures::{self, UNIX};
use crate::agent::{NodeId, Time};
use crate::block::Cid;
use crate::follower::{
    Failure, Follower, FollowerConfig, HookAction, Input, InstallMode, Output, Restored, Verdict,
    Version, Via,
};
use crate::release::{HighWater, SignedRelease, TrustRoot};

const ME: NodeId = NodeId(0);
const NODES: [NodeId; 5] = [ME, NodeId(1), NodeId(2), NodeId(3), NodeId(4)];
/// Inputs per sequence at most.
const MAX_STEPS: usize = 200;
const SECOND: u64 = 1_000_000_000;

/// What each step does, by its first byte modulo [`OPS`](op::OPS).
mod op {
    pub(super) const RELEASE: u8 = 0;
    pub(super) const POLLED: u8 = 1;
    pub(super) const SAVED: u8 = 2;
    pub(super) const MEMBERS: u8 = 3;
    pub(super) const MEMBER_UP: u8 = 4;
    pub(super) const MEMBER_DOWN: u8 = 5;
    pub(super) const BOOTED: u8 = 6;
    pub(super) const INSTALLED: u8 = 7;
    pub(super) const SWITCHED: u8 = 8;
    pub(super) const HOOKS_RAN: u8 = 9;
    pub(super) const HEALTH_CHECKED: u8 = 10;
    pub(super) const RECORDED: u8 = 11;
    pub(super) const TIMEOUT: u8 = 12;
    pub(super) const ADVANCE: u8 = 13;
    pub(super) const CLOCK_STEP: u8 = 14;
    /// Answers the save, the poll, the boots and the install step in flight, all well.
    pub(super) const DRIVE: u8 = 15;
    pub(super) const OPS: u8 = 16;
}

/// Signed releases of channel `prod` under keys 1 and 2 (seq, root, signers vary; some are
/// expired, not yet valid, equivocating, of another channel or signed by key 3 alone).
fn variants() -> &'static [Vec<u8>] {
    static VARIANTS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    VARIANTS.get_or_init(|| {
        let (issued, expires) = (UNIX - 10, UNIX + 86_400);
        let s = fixtures::signed;
        vec![
            s("prod", 1, 1, issued, expires, &[1]),
            s("prod", 2, 2, issued, expires, &[1]),
            s("prod", 2, 2, issued, expires, &[1, 2]),
            s("prod", 2, 9, issued, expires, &[1]),
            s("prod", 3, 3, issued, expires, &[1, 2]),
            s("prod", 4, 4, issued, expires, &[2]),
            s("prod", 5, 5, issued, expires, &[3]),
            s("prod", 5, 5, issued, UNIX + 50, &[1]),
            s("prod", 6, 6, UNIX + 100_000, expires, &[1]),
            s("other", 7, 7, issued, expires, &[1]),
            s("prod", 8, 8, issued, UNIX + 400, &[1, 2]),
        ]
    })
}

fn decoded(bytes: &[u8]) -> SignedRelease {
    SignedRelease::decode(bytes).expect("the variants decode")
}

/// Runs one follower through the inputs the bytes describe: a config and what an earlier run
/// saved, then releases (signed variants, damaged or random bytes) from every source, poll
/// answers, saves, member changes, boots, install step answers with any seq and result,
/// timeouts, time moving forward and the wall clock stepping. Checked against every output:
/// nothing is booted before its high-water mark is durable or before the peer gate opens; at
/// most one save and one poll in flight, marks only rise; every release is judged once;
/// only valid releases are published or saved; at most one install job, whose every step
/// answers the last and concerns its version (answers about others change nothing).
pub fn follower_inputs(data: &[u8]) {
    let mut r = Reader::new(data);
    let mut driver = Driver::new(&mut r);
    let mut steps = 0;
    while !r.is_empty() && steps < MAX_STEPS {
        driver.step(&mut r);
        steps += 1;
    }
}

/// The install step the follower waits for: its kind and seq.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ask {
    Install,
    Switch,
    Hooks,
    Check,
    Record,
}

/// What the input being fed lets the checks expect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Context {
    /// A release to judge once, with this ticket and source.
    Judge {
        ticket: u64,
        via: Via,
    },
    /// An install step answer; whether it is the one the follower waits for.
    Answer {
        awaited: bool,
    },
    Other,
}

#[derive(Debug)]
struct Driver {
    f: Follower,
    trust: TrustRoot,
    peers_needed: usize,
    peer_wait: Duration,
    polls: bool,
    mode: InstallMode,
    now: Time,
    /// Wall-clock offset from `UNIX + now`, seconds.
    skew: i64,
    members: BTreeSet<NodeId>,
    saving: Option<HighWater>,
    polling: bool,
    /// Roots whose high-water mark is durable, and the highest seq saved.
    durable: BTreeSet<Cid>,
    high_seq: Option<u64>,
    boots: BTreeSet<Cid>,
    booted: BTreeSet<Cid>,
    /// The install job (version, the version it upgrades) and the step it waits for.
    job: Option<(Version, Option<Version>)>,
    awaiting: Option<(Ask, u64)>,
    next_ticket: u64,
}

impl Driver {
    fn new(r: &mut Reader<'_>) -> Self {
        let flags = r.u8();
        let keys = [1, 2].map(|n| fixtures::key(n).verifying_key()).into();
        let trust = TrustRoot::new(keys, 1 + usize::from(flags & 1)).expect("two keys");
        let install = [
            InstallMode::None,
            InstallMode::Direct,
            InstallMode::Versions {
                hooks: false,
                health_check: false,
            },
            InstallMode::Versions {
                hooks: true,
                health_check: true,
            },
            InstallMode::Versions {
                hooks: true,
                health_check: false,
            },
            InstallMode::Versions {
                hooks: false,
                health_check: true,
            },
        ][usize::from(flags >> 5) % 6];
        let poll_interval = [100, 100, 1, 0][usize::from(flags >> 1 & 3)];
        let cfg = FollowerConfig {
            me: ME,
            seed: u64::from(r.u16()),
            poll_interval: (poll_interval > 0).then(|| Duration::from_secs(poll_interval)),
            peers_needed: usize::from(flags >> 3 & 3),
            peer_wait: Duration::from_secs(u64::from(r.u8())),
            install,
            ..FollowerConfig::new("prod", trust.clone())
        };
        let restored = restored(r);
        let high_seq = restored.high_water.as_ref().map(|hw| hw.seq);
        let durable = restored.high_water.iter().map(|hw| hw.root).collect();
        let judge_disk = restored.release.is_some();
        let mut d = Driver {
            trust,
            peers_needed: cfg.peers_needed,
            peer_wait: cfg.peer_wait,
            polls: cfg.poll_interval.is_some(),
            mode: install,
            now: Time::ZERO,
            skew: 0,
            members: BTreeSet::new(),
            saving: None,
            polling: false,
            durable,
            high_seq,
            boots: BTreeSet::new(),
            booted: BTreeSet::new(),
            job: None,
            awaiting: None,
            next_ticket: 1,
            f: Follower::new(cfg, restored, Time::ZERO, UNIX),
        };
        let context = if judge_disk {
            Context::Judge {
                ticket: 0,
                via: Via::Disk,
            }
        } else {
            Context::Other
        };
        d.drain(context);
        d
    }

    fn unix(&self) -> u64 {
        let secs = (self.now.as_nanos() / SECOND) as i64;
        (UNIX as i64 + secs + self.skew).max(0) as u64
    }

    fn step(&mut self, r: &mut Reader<'_>) {
        let step = r.u8() % op::OPS;
        let input = match step {
            op::RELEASE => {
                let ticket = self.next_ticket;
                self.next_ticket += 1;
                let via = [Via::Gossip, Via::Peer, Via::Disk, Via::Operator][r.below(4)];
                let author = r.bool().then(|| NODES[r.below(NODES.len())]);
                let bytes = release_bytes(r);
                let input = Input::Release {
                    bytes,
                    via,
                    author,
                    ticket,
                };
                return self.feed(input, Context::Judge { ticket, via });
            }
            op::POLLED => {
                if !self.polling {
                    return;
                }
                self.polling = false;
                let answer = match r.below(4) {
                    0 => Err("the hub is down".to_owned()),
                    _ => Ok(release_bytes(r)),
                };
                return self.polled(answer);
            }
            op::SAVED => {
                let Some(hw) = self.saving.take() else {
                    return;
                };
                self.durable.insert(hw.root);
                Input::Saved { root: hw.root }
            }
            op::MEMBERS => {
                let mask = r.u8();
                let list: Vec<NodeId> = NODES
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| mask >> i & 1 == 1)
                    .map(|(_, n)| *n)
                    .collect();
                self.members = list.iter().copied().filter(|n| *n != ME).collect();
                Input::Members(list)
            }
            op::MEMBER_UP => {
                let id = NODES[r.below(NODES.len())];
                if id != ME {
                    self.members.insert(id);
                }
                Input::MemberUp(id)
            }
            op::MEMBER_DOWN => {
                let id = NODES[r.below(NODES.len())];
                self.members.remove(&id);
                Input::MemberDown(id)
            }
            op::BOOTED => {
                let boots: Vec<Cid> = self.boots.iter().copied().collect();
                let Some(&root) = r.pick(&boots) else {
                    return;
                };
                self.booted.insert(root);
                Input::Booted { root }
            }
            op::INSTALLED..=op::RECORDED => return self.answer(step, r),
            op::TIMEOUT => {
                if let Some(t) = self.f.poll_timeout() {
                    self.now = self.now.max(t);
                }
                Input::Timeout
            }
            op::ADVANCE => {
                self.now = self.now + Duration::from_millis(10 * u64::from(r.u16()));
                Input::Timeout
            }
            op::CLOCK_STEP => {
                self.skew += 10 * i64::from(r.u8() as i8);
                Input::Timeout
            }
            _ => return self.drive(r),
        };
        self.feed(input, Context::Other);
    }

    /// An answer to an install step: of the kind and seq awaited, or any other.
    fn answer(&mut self, op: u8, r: &mut Reader<'_>) {
        let kind = match op {
            op::INSTALLED => Ask::Install,
            op::SWITCHED => Ask::Switch,
            op::HOOKS_RAN => Ask::Hooks,
            op::HEALTH_CHECKED => Ask::Check,
            _ => Ask::Record,
        };
        let seq = match self.awaiting {
            Some((_, seq)) if r.below(4) != 0 => seq,
            _ => u64::from(r.u8() % 10),
        };
        let ok = r.below(4) != 0;
        self.answer_with(kind, seq, ok);
    }

    fn answer_with(&mut self, kind: Ask, seq: u64, ok: bool) {
        let err = || "the step failed".to_owned();
        let result = if ok { Ok(()) } else { Err(err()) };
        let input = match kind {
            Ask::Install => Input::Installed {
                seq,
                result: if ok {
                    Ok(vec!["kernel".into()])
                } else {
                    Err(err())
                },
            },
            Ask::Switch => Input::Switched { seq, result },
            Ask::Hooks => Input::HooksRan { seq, result },
            Ask::Check => Input::HealthChecked { seq, result },
            Ask::Record => Input::Recorded { seq, result },
        };
        let awaited = self.awaiting == Some((kind, seq));
        if awaited {
            self.awaiting = None;
        }
        self.feed(input, Context::Answer { awaited });
    }

    fn polled(&mut self, answer: Result<Vec<u8>, String>) {
        let judged = answer
            .as_ref()
            .is_ok_and(|bytes| SignedRelease::decode(bytes).is_ok());
        let context = if judged {
            Context::Judge {
                ticket: 0,
                via: Via::Hub,
            }
        } else {
            Context::Other
        };
        self.feed(Input::Polled(answer), context);
    }

    /// Everything in flight answered, and answered well (the hub with the variant the next
    /// byte names).
    fn drive(&mut self, r: &mut Reader<'_>) {
        let variant = variants()[r.below(variants().len())].clone();
        if let Some(hw) = self.saving.take() {
            self.durable.insert(hw.root);
            self.feed(Input::Saved { root: hw.root }, Context::Other);
        }
        if self.polling {
            self.polling = false;
            self.polled(Ok(variant));
        }
        for root in self
            .boots
            .difference(&self.booted.clone())
            .copied()
            .collect::<Vec<_>>()
        {
            self.booted.insert(root);
            self.feed(Input::Booted { root }, Context::Other);
        }
        if let Some((kind, seq)) = self.awaiting {
            self.answer_with(kind, seq, true);
        }
    }

    fn feed(&mut self, input: Input, context: Context) {
        let unix = self.unix();
        self.f.handle(self.now, unix, input);
        self.drain(context);
    }

    fn drain(&mut self, context: Context) {
        let mut judged = 0;
        let mut started = false;
        while let Some(out) = self.f.poll_output() {
            match out {
                Output::Judged {
                    ticket,
                    via,
                    verdict,
                } => {
                    judged += 1;
                    assert_eq!(context, Context::Judge { ticket, via }, "{verdict:?}");
                    if let Verdict::New(seq) | Verdict::Current(seq) = verdict {
                        assert!(self.f.current().is_some_and(|c| c.version.seq >= seq));
                    }
                }
                Output::Publish { bytes } => self.check_valid(&bytes),
                Output::Save { high_water, bytes } => {
                    assert!(self.saving.is_none(), "a second save in flight");
                    assert!(
                        self.high_seq.is_none_or(|s| high_water.seq > s),
                        "mark falls"
                    );
                    self.check_valid(&bytes);
                    let r = decoded(&bytes).release;
                    assert_eq!((r.seq, r.root), (high_water.seq, high_water.root));
                    self.high_seq = Some(high_water.seq);
                    self.saving = Some(high_water);
                }
                Output::Poll => {
                    assert!(self.polls && !self.polling, "a second poll in flight");
                    self.polling = true;
                }
                Output::Boot { root } => {
                    assert!(
                        self.durable.contains(&root),
                        "{root} booted before it is durable"
                    );
                    let waited = self.now.saturating_duration_since(Time::ZERO);
                    assert!(
                        self.members.len() >= self.peers_needed || waited >= self.peer_wait,
                        "booted before the peer gate opened"
                    );
                    self.boots.insert(root);
                }
                Output::Install { version, previous } => {
                    assert!(
                        self.awaiting.is_none(),
                        "an install while a step is in flight"
                    );
                    let free = self.job.is_none() || context == Context::Answer { awaited: true };
                    assert!(free, "a second install job");
                    assert_ne!(self.mode, InstallMode::None);
                    assert!(self.booted.contains(&version.root), "install before booted");
                    assert!(self.durable.contains(&version.root));
                    assert_ne!(previous, Some(version));
                    self.job = Some((version, previous));
                    self.awaiting = Some((Ask::Install, version.seq));
                    started = true;
                }
                Output::InUse { version } => {
                    assert!(self.booted.contains(&version.root), "in use before booted");
                }
                Output::InstallFailed { failure } => assert!(!failure.rolled_back),
                step => self.check_step(step, context),
            }
        }
        let expected = usize::from(matches!(context, Context::Judge { .. }));
        assert_eq!(judged, expected, "every release is judged once");
        if context == (Context::Answer { awaited: true }) && self.awaiting.is_none() && !started {
            // The awaited answer ended the job.
            self.job = None;
        }
        if self.f.status().booted {
            assert!(self.f.status().booting.is_some());
        }
    }

    /// A step of the install job in flight, asked in answer to the step before.
    fn check_step(&mut self, step: Output, context: Context) {
        assert_eq!(
            context,
            Context::Answer { awaited: true },
            "{step:?} unprompted"
        );
        assert!(
            self.awaiting.is_none(),
            "{step:?} while a step is in flight"
        );
        let (version, previous) = self.job.expect("a step without a job");
        let prev_seq = previous.map(|p| p.seq);
        let ask = match step {
            Output::Switch { seq } => {
                assert!(seq == version.seq || Some(seq) == prev_seq);
                (Ask::Switch, seq)
            }
            Output::RunHooks {
                seq,
                action,
                packages,
            } => {
                assert!(!packages.is_empty());
                match action {
                    HookAction::Upgrade => assert_eq!(seq, version.seq),
                    HookAction::Rollback => assert_eq!(Some(seq), prev_seq),
                }
                (Ask::Hooks, seq)
            }
            Output::HealthCheck { seq } => {
                assert_eq!(seq, version.seq);
                (Ask::Check, seq)
            }
            Output::Commit { version: v, .. } => {
                assert_eq!(v, version);
                (Ask::Record, v.seq)
            }
            Output::RecordFailure { failure, restore } => {
                assert_eq!((failure.version, Some(restore)), (version, previous));
                assert!(failure.rolled_back);
                (Ask::Record, version.seq)
            }
            other => panic!("{other:?} is no install step"),
        };
        self.awaiting = Some(ask);
    }

    /// A release the follower passes on or saves is signed by the trust root, for its channel.
    fn check_valid(&self, bytes: &[u8]) {
        let signed = SignedRelease::decode(bytes).expect("passed on releases decode");
        assert!(
            self.trust.verify(&signed).is_ok(),
            "an unsigned release passed on"
        );
        assert_eq!(signed.release.channel, "prod");
    }
}

fn release_bytes(r: &mut Reader<'_>) -> Vec<u8> {
    let all = variants();
    match r.below(16) {
        i if i < all.len() => all[i].clone(),
        11 | 12 => {
            let mut bytes = all[r.below(all.len())].clone();
            let i = r.below(256) * bytes.len() / 256;
            if let Some(b) = bytes.get_mut(i) {
                *b ^= 1 << r.below(8);
            }
            bytes
        }
        13 => {
            let n = r.below(64);
            r.bytes(n).to_vec()
        }
        _ => all[r.below(all.len())].clone(),
    }
}

fn restored(r: &mut Reader<'_>) -> Restored {
    let flags = r.u8();
    let all = variants();
    let variant = |r: &mut Reader<'_>| decoded(&all[r.below(all.len())]).release;
    let high_water = (flags & 1 == 1).then(|| {
        let v = variant(r);
        HighWater {
            seq: v.seq,
            root: v.root,
        }
    });
    let release = (flags & 2 == 2).then(|| all[r.below(all.len())].clone());
    let installed = (flags & 4 == 4).then(|| {
        let v = variant(r);
        Version {
            seq: v.seq,
            root: v.root,
        }
    });
    let failed = (flags & 16 == 16).then(|| {
        let v = variant(r);
        Failure {
            version: Version {
                seq: v.seq,
                root: v.root,
            },
            reason: "an earlier upgrade failed".into(),
            at: UNIX,
            rolled_back: flags & 32 == 32,
        }
    });
    Restored {
        high_water,
        release,
        installed,
        installed_on_disk: flags & 8 == 8,
        failed,
    }
}

/// Sequences through a first boot and an upgrade in each install mode (the upgrade's health
/// check fails), with gossip, polls and steps answered late; and one with a peer gate, a
/// forged and an expired release, a failing hub and the clock stepping.
pub(super) fn seeds() -> Vec<Vec<u8>> {
    use op::*;
    let mut seeds = Vec::new();
    for mode in 0..6u8 {
        // Threshold 1, polls every 100 s, no peer gate; release 1 saved and installed.
        let mut s = vec![mode << 5, 3, 0, 0, 0b1111, 0, 0, 0];
        s.extend([DRIVE, 0, DRIVE, 0, DRIVE, 0]);
        // Release 3 by gossip: saved, booted, installed, switched, hooks run.
        s.extend([RELEASE, 0, 0, 4, DRIVE, 0, DRIVE, 0, DRIVE, 0]);
        // The health check fails: switched back, rollback hooks, failure recorded.
        s.extend([HEALTH_CHECKED, 1, 0, DRIVE, 0, DRIVE, 0, DRIVE, 0]);
        // Release 4 by the operator, time passing, polls answered.
        s.extend([RELEASE, 3, 1, 2, 5, DRIVE, 0, DRIVE, 0, DRIVE, 0]);
        s.extend([
            ADVANCE, 0xff, 0xff, TIMEOUT, DRIVE, 10, ADVANCE, 0xff, 0xff, DRIVE, 7,
        ]);
        seeds.push(s);
    }
    let mut s = vec![0b0111_1001, 9, 0, 30, 0];
    s.extend([
        POLLED, 0, TIMEOUT, POLLED, 1, 4, RELEASE, 0, 0, 6, RELEASE, 1, 1, 2, 7,
    ]);
    s.extend([
        MEMBERS, 0b1110, SAVED, DRIVE, 0, CLOCK_STEP, 0x7f, RELEASE, 0, 0, 8,
    ]);
    s.extend([
        MEMBER_DOWN,
        1,
        ADVANCE,
        0,
        0x10,
        DRIVE,
        0,
        RELEASE,
        0,
        0,
        9,
        DRIVE,
        0,
    ]);
    s.extend([INSTALLED, 1, 1, SWITCHED, 0, 3, 1, RECORDED, 1, 1, DRIVE, 0]);
    seeds.push(s);
    seeds
}
