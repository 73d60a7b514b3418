//! One test per rule of the follower, on a fake clock.

use std::time::Duration;

use ed25519_dalek::SigningKey;

use super::*;
use crate::block::{Codec, cid_of};
use crate::release::Release;

const UNIX: u64 = 1_700_000_000;
const SECOND: u64 = 1_000_000_000;

fn key(n: u8) -> SigningKey {
    SigningKey::from_bytes(&[n; 32])
}

fn root(n: u64) -> Cid {
    cid_of(Codec::DagCbor, &n.to_le_bytes())
}

fn signed(seq: u64, root_n: u64, channel: &str, expires: u64, signer: u8) -> Vec<u8> {
    SignedRelease::sign(
        Release {
            channel: channel.into(),
            seq,
            root: root(root_n),
            issued_at: UNIX - 10,
            expires_at: expires,
        },
        &[key(signer)],
    )
    .encode()
}

/// Release `seq` of channel `prod`, root `seq`, signed by the trusted key.
fn rel(seq: u64) -> Vec<u8> {
    signed(seq, seq, "prod", UNIX + 86_400, 1)
}

fn v(seq: u64) -> Version {
    Version {
        seq,
        root: root(seq),
    }
}

fn cfg() -> FollowerConfig {
    let trust = TrustRoot::new(vec![key(1).verifying_key()], 1).unwrap();
    FollowerConfig {
        poll_interval: Some(Duration::from_secs(100)),
        ..FollowerConfig::new("prod", trust)
    }
}

struct Harness {
    f: Follower,
    now: u64,
    out: Vec<Output>,
}

impl Harness {
    fn new(cfg: FollowerConfig, restored: Restored) -> Self {
        let mut h = Harness {
            f: Follower::new(cfg, restored, Time::ZERO, UNIX),
            now: 0,
            out: Vec::new(),
        };
        h.drain();
        h
    }

    /// A follower that has polled once (the hub answered with nothing new) and holds
    /// release 1 as its durable high-water mark, booted.
    fn following(cfg: FollowerConfig) -> Self {
        let restored = Restored {
            high_water: Some(HighWater {
                seq: 1,
                root: root(1),
            }),
            release: Some(rel(1)),
            ..Restored::default()
        };
        let mut h = Harness::new(cfg, restored);
        h.feed(Input::Polled(Ok(rel(1))));
        h.feed(Input::Booted { root: root(1) });
        h.take();
        h
    }

    fn drain(&mut self) {
        while let Some(o) = self.f.poll_output() {
            self.out.push(o);
        }
    }

    fn feed(&mut self, input: Input) {
        self.f
            .handle(Time::from_nanos(self.now), UNIX + self.now / SECOND, input);
        self.drain();
    }

    fn at(&mut self, secs: f64) {
        self.now = (secs * SECOND as f64) as u64;
        self.feed(Input::Timeout);
    }

    fn take(&mut self) -> Vec<Output> {
        std::mem::take(&mut self.out)
    }

    fn gossip(&mut self, bytes: Vec<u8>) -> Verdict {
        self.release(bytes, Via::Gossip)
    }

    fn release(&mut self, bytes: Vec<u8>, via: Via) -> Verdict {
        let from = self.out.len();
        self.feed(Input::Release {
            bytes,
            via,
            ticket: 7,
        });
        self.out[from..]
            .iter()
            .find_map(|o| match o {
                Output::Judged {
                    ticket, verdict, ..
                } => {
                    assert_eq!(*ticket, 7);
                    Some(verdict.clone())
                }
                _ => None,
            })
            .expect("every release is judged")
    }
}

fn kinds(out: &[Output]) -> Vec<&'static str> {
    out.iter()
        .map(|o| match o {
            Output::Judged { .. } => "judged",
            Output::Publish { .. } => "publish",
            Output::Save { .. } => "save",
            Output::Poll => "poll",
            Output::Boot { .. } => "boot",
            Output::Install { .. } => "install",
            Output::Switch { .. } => "switch",
            Output::RunHooks { .. } => "hooks",
            Output::HealthCheck { .. } => "check",
            Output::Commit { .. } => "commit",
            Output::RecordFailure { .. } => "record_failure",
            Output::InUse { .. } => "in_use",
            Output::InstallFailed { .. } => "install_failed",
        })
        .collect()
}

// ----- verdicts -----

#[test]
fn a_new_release_is_saved_before_it_is_booted() {
    let mut h = Harness::following(cfg());
    assert_eq!(h.gossip(rel(2)), Verdict::New(2));
    let out = h.take();
    assert_eq!(
        kinds(&out),
        ["judged", "save"],
        "gossip is not re-published"
    );
    assert!(matches!(&out[1], Output::Save { high_water, .. } if high_water.seq == 2));
    h.at(50.0);
    assert!(
        kinds(&h.take()).iter().all(|k| *k != "boot"),
        "not before saved"
    );
    h.feed(Input::Saved { root: root(2) });
    assert_eq!(h.take(), [Output::Boot { root: root(2) }]);
    assert_eq!(h.f.current().map(|c| c.version), Some(v(2)));
}

#[test]
fn a_newer_release_during_a_save_is_saved_next_and_only_it_boots() {
    let mut h = Harness::following(cfg());
    h.gossip(rel(2));
    h.gossip(rel(3));
    assert_eq!(
        kinds(&h.take()),
        ["judged", "save", "judged"],
        "one save at a time"
    );
    h.feed(Input::Saved { root: root(2) });
    let out = h.take();
    assert!(matches!(&out[..], [Output::Save { high_water, .. }] if high_water.seq == 3));
    h.feed(Input::Saved { root: root(3) });
    assert_eq!(h.take(), [Output::Boot { root: root(3) }]);
}

#[test]
fn the_current_release_is_accepted_again_without_a_save() {
    let mut h = Harness::following(cfg());
    assert_eq!(h.gossip(rel(1)), Verdict::Current(1));
    assert_eq!(kinds(&h.take()), ["judged"]);
    assert_eq!(h.f.status().accepted, 1);
}

#[test]
fn the_release_just_before_ours_is_ignored_not_blamed() {
    let mut h = Harness::following(cfg());
    h.gossip(rel(2));
    h.feed(Input::Saved { root: root(2) });
    let verdict = h.gossip(rel(1));
    assert!(matches!(
        verdict,
        Verdict::Ignored {
            kind: RefusalKind::Rollback,
            ..
        }
    ));
    assert_eq!(verdict.gossip(), GossipVerdict::Ignore);
}

#[test]
fn forged_foreign_expired_older_and_equivocating_releases_are_rejected_and_counted() {
    let mut h = Harness::following(cfg());
    h.gossip(rel(5));
    h.feed(Input::Saved { root: root(5) });
    let cases = [
        (
            signed(6, 6, "prod", UNIX + 86_400, 9),
            RefusalKind::UntrustedKey,
        ),
        (
            signed(6, 6, "other", UNIX + 86_400, 1),
            RefusalKind::WrongChannel,
        ),
        (signed(6, 6, "prod", UNIX - 1, 1), RefusalKind::Expired),
        (rel(2), RefusalKind::Rollback),
        (
            signed(5, 99, "prod", UNIX + 86_400, 1),
            RefusalKind::Equivocation,
        ),
        (b"not a release".to_vec(), RefusalKind::Undecodable),
    ];
    for (bytes, want) in cases {
        match h.gossip(bytes) {
            Verdict::Rejected { kind, .. } => assert_eq!(kind, want),
            other => panic!("{want:?}: {other:?}"),
        }
        h.take();
    }
    let s = h.f.status();
    assert_eq!(s.refusals.values().sum::<u64>(), 6);
    assert_eq!(s.refusals.get(&RefusalKind::Rollback), Some(&1));
    assert!(s.last_refusal.is_some());
    assert_eq!(
        h.f.current().map(|c| c.version),
        Some(v(5)),
        "nothing adopted"
    );
}

#[test]
fn stale_copies_from_the_hub_peers_and_disk_are_not_refusals() {
    let mut h = Harness::following(cfg());
    h.gossip(rel(3));
    h.feed(Input::Saved { root: root(3) });
    assert!(matches!(
        h.release(rel(1), Via::Peer),
        Verdict::Rejected { .. }
    ));
    h.at(200.0);
    assert_eq!(kinds(&h.take()).last(), Some(&"poll"));
    h.feed(Input::Polled(Ok(rel(2))));
    assert!(h.f.status().refusals.is_empty());
}

// ----- polls -----

#[test]
fn the_hub_is_polled_at_start_and_then_once_a_period_with_jitter() {
    let mut h = Harness::new(cfg(), Restored::default());
    assert_eq!(h.take(), [Output::Poll], "at once");
    assert_eq!(h.f.poll_timeout(), None, "one poll in flight");
    h.feed(Input::Polled(Ok(rel(1))));
    let next = h.f.poll_timeout().unwrap().as_secs_f64();
    assert!((80.0..=120.0).contains(&next), "{next}");
    h.at(next - 0.001);
    assert!(!kinds(&h.take()).contains(&"poll"));
    h.at(next);
    assert_eq!(kinds(&h.take()), ["poll"]);
    assert_eq!(h.f.status().polls, 2);
}

#[test]
fn a_new_release_from_the_hub_is_adopted_and_gossiped() {
    let mut h = Harness::new(cfg(), Restored::default());
    h.take();
    h.feed(Input::Polled(Ok(rel(1))));
    assert_eq!(kinds(&h.take()), ["judged", "publish", "save"]);
    h.feed(Input::Saved { root: root(1) });
    assert_eq!(h.take(), [Output::Boot { root: root(1) }]);
}

#[test]
fn a_poller_passes_on_the_current_release_so_the_others_skip_their_poll() {
    let mut h = Harness::following(cfg());
    h.at(130.0);
    assert_eq!(kinds(&h.take()), ["poll"]);
    h.feed(Input::Polled(Ok(rel(1))));
    assert_eq!(
        kinds(&h.take()),
        ["judged", "publish"],
        "current, passed on"
    );
}

#[test]
fn the_start_up_poll_passes_on_only_a_release_new_to_the_node() {
    let restored = Restored {
        high_water: Some(HighWater {
            seq: 1,
            root: root(1),
        }),
        release: Some(rel(1)),
        ..Restored::default()
    };
    let mut h = Harness::new(cfg(), restored.clone());
    h.take();
    h.feed(Input::Polled(Ok(rel(1))));
    assert_eq!(
        kinds(&h.take()),
        ["judged"],
        "every node of a farm powering up polls once; passing it on would flood the farm"
    );
    let mut h = Harness::new(cfg(), restored);
    h.take();
    h.feed(Input::Polled(Ok(rel(2))));
    assert_eq!(kinds(&h.take()), ["judged", "publish", "save"]);
}

#[test]
fn a_failed_poll_backs_off_exponentially_up_to_the_cap() {
    let mut h = Harness::new(cfg(), Restored::default());
    h.take();
    let mut waits = Vec::new();
    let mut t = 0.0;
    for _ in 0..7 {
        h.feed(Input::Polled(Err("hub down".into())));
        assert!(h.f.status().hub_failing);
        let next = h.f.poll_timeout().unwrap().as_secs_f64();
        waits.push(next - t);
        t = next;
        h.at(t);
        assert_eq!(kinds(&h.take()), ["poll"]);
    }
    assert_eq!(waits, [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]);
    h.feed(Input::Polled(Ok(rel(1))));
    assert!(!h.f.status().hub_failing);
    assert!(h.f.poll_timeout().unwrap().as_secs_f64() >= t + 80.0);
}

#[test]
fn an_undecodable_hub_answer_counts_as_a_failed_poll() {
    let mut h = Harness::new(cfg(), Restored::default());
    h.take();
    h.feed(Input::Polled(Ok(b"garbage".to_vec())));
    assert!(h.take().is_empty());
    assert_eq!(h.f.poll_timeout(), Some(Time::from_nanos(SECOND)));
}

#[test]
fn gossip_of_a_valid_release_puts_the_next_poll_off_a_period() {
    let mut h = Harness::following(cfg());
    let before = h.f.poll_timeout().unwrap();
    h.at(60.0);
    h.gossip(rel(1));
    let after = h.f.poll_timeout().unwrap().as_secs_f64();
    assert!((140.0..=180.0).contains(&after), "{before} -> {after}");
    assert_eq!(h.f.status().polls_deferred, 1);
    // A rejected release does not.
    h.gossip(signed(9, 9, "prod", UNIX + 86_400, 9));
    assert_eq!(h.f.poll_timeout().unwrap().as_secs_f64(), after);
}

#[test]
fn gossip_while_a_poll_is_in_flight_defers_nothing() {
    let mut h = Harness::following(cfg());
    h.at(130.0);
    h.take();
    h.gossip(rel(1));
    assert_eq!(h.f.status().polls_deferred, 0);
}

#[test]
fn an_operator_release_is_gossiped_even_when_current() {
    let mut h = Harness::following(cfg());
    assert_eq!(h.release(rel(1), Via::Operator), Verdict::Current(1));
    assert_eq!(kinds(&h.take()), ["judged", "publish"]);
    assert_eq!(h.f.status().polls_deferred, 1);
    assert_eq!(h.release(rel(2), Via::Operator), Verdict::New(2));
    assert_eq!(kinds(&h.take()), ["judged", "publish", "save"]);
}

#[test]
fn without_a_poll_interval_the_hub_is_never_polled() {
    let mut h = Harness::new(
        FollowerConfig {
            poll_interval: None,
            ..cfg()
        },
        Restored::default(),
    );
    assert!(h.take().is_empty());
    assert_eq!(h.f.poll_timeout(), None);
}

// ----- the boot gate -----

#[test]
fn a_saved_release_boots_at_start_without_a_new_save() {
    let restored = Restored {
        high_water: Some(HighWater {
            seq: 4,
            root: root(4),
        }),
        release: Some(rel(4)),
        ..Restored::default()
    };
    let h = Harness::new(cfg(), restored);
    assert_eq!(
        kinds(&h.out),
        ["judged", "publish", "poll", "boot"],
        "published for peers, polled for a newer one, booted"
    );
}

#[test]
fn the_boot_waits_for_the_expected_peers_or_the_peer_wait() {
    let gated = FollowerConfig {
        peers_needed: 2,
        peer_wait: Duration::from_secs(3),
        ..cfg()
    };
    let mut h = Harness::new(gated.clone(), Restored::default());
    h.take();
    h.feed(Input::Polled(Ok(rel(1))));
    h.feed(Input::Saved { root: root(1) });
    assert!(!kinds(&h.take()).contains(&"boot"));
    assert_eq!(h.f.poll_timeout(), Some(Time::from_nanos(3 * SECOND)));
    h.feed(Input::Peers(1));
    assert!(h.take().is_empty());
    h.feed(Input::Peers(2));
    assert_eq!(h.take(), [Output::Boot { root: root(1) }]);

    let mut h = Harness::new(gated, Restored::default());
    h.take();
    h.feed(Input::Polled(Ok(rel(1))));
    h.feed(Input::Saved { root: root(1) });
    h.take();
    h.at(3.0);
    assert_eq!(h.take(), [Output::Boot { root: root(1) }]);
}

// ----- installs -----

fn versions(hooks: bool, health_check: bool) -> FollowerConfig {
    FollowerConfig {
        install: InstallMode::Versions {
            hooks,
            health_check,
        },
        ..cfg()
    }
}

/// A follower running version 1 installed in the target, which has just booted version 2.
fn upgrading(cfg: FollowerConfig) -> Harness {
    let restored = Restored {
        high_water: Some(HighWater {
            seq: 1,
            root: root(1),
        }),
        release: Some(rel(1)),
        installed: Some(v(1)),
        installed_on_disk: true,
        failed: None,
    };
    let mut h = Harness::new(cfg, restored);
    h.feed(Input::Polled(Ok(rel(2))));
    h.feed(Input::Saved { root: root(2) });
    h.feed(Input::Booted { root: root(2) });
    h
}

#[test]
fn without_a_target_a_booted_release_is_in_use_at_once() {
    let mut h = Harness::new(cfg(), Restored::default());
    h.feed(Input::Polled(Ok(rel(1))));
    h.feed(Input::Saved { root: root(1) });
    h.take();
    h.at(2.0);
    h.feed(Input::Booted { root: root(1) });
    assert_eq!(h.take(), [Output::InUse { version: v(1) }]);
    assert!(h.f.status().booted);
    assert_eq!(h.f.status().booted_at, Some(Time::from_nanos(2 * SECOND)));
}

#[test]
fn a_direct_install_writes_then_records() {
    let mut h = Harness::new(
        FollowerConfig {
            install: InstallMode::Direct,
            ..cfg()
        },
        Restored::default(),
    );
    h.feed(Input::Polled(Ok(rel(1))));
    h.feed(Input::Saved { root: root(1) });
    h.feed(Input::Booted { root: root(1) });
    assert_eq!(
        h.take().last(),
        Some(&Output::Install {
            version: v(1),
            previous: None
        })
    );
    h.feed(Input::Installed {
        seq: 1,
        result: Ok(Vec::new()),
    });
    assert_eq!(
        h.take(),
        [Output::Commit {
            version: v(1),
            collect_blocks: true
        }]
    );
    h.feed(Input::Recorded {
        seq: 1,
        result: Ok(()),
    });
    assert_eq!(h.take(), [Output::InUse { version: v(1) }]);
    assert_eq!(h.f.status().installed, Some(v(1)));
}

#[test]
fn a_first_install_switches_without_hooks() {
    let mut h = Harness::new(versions(true, true), Restored::default());
    h.feed(Input::Polled(Ok(rel(1))));
    h.feed(Input::Saved { root: root(1) });
    h.feed(Input::Booted { root: root(1) });
    h.take();
    h.feed(Input::Installed {
        seq: 1,
        result: Ok(vec!["zos".into()]),
    });
    assert_eq!(h.take(), [Output::Switch { seq: 1 }]);
    h.feed(Input::Switched {
        seq: 1,
        result: Ok(()),
    });
    assert_eq!(kinds(&h.take()), ["commit"]);
}

#[test]
fn an_upgrade_switches_runs_hooks_then_the_health_check_then_commits() {
    let mut h = upgrading(versions(true, true));
    assert_eq!(
        h.take().last(),
        Some(&Output::Install {
            version: v(2),
            previous: Some(v(1))
        })
    );
    h.feed(Input::Installed {
        seq: 2,
        result: Ok(vec!["zos".into(), "net".into()]),
    });
    assert_eq!(h.take(), [Output::Switch { seq: 2 }]);
    h.feed(Input::Switched {
        seq: 2,
        result: Ok(()),
    });
    assert_eq!(
        h.take(),
        [Output::RunHooks {
            seq: 2,
            action: HookAction::Upgrade,
            packages: vec!["zos".into(), "net".into()]
        }]
    );
    h.feed(Input::HooksRan {
        seq: 2,
        result: Ok(()),
    });
    assert_eq!(h.take(), [Output::HealthCheck { seq: 2 }]);
    h.feed(Input::HealthChecked {
        seq: 2,
        result: Ok(()),
    });
    assert_eq!(
        h.take(),
        [Output::Commit {
            version: v(2),
            collect_blocks: true
        }]
    );
    h.feed(Input::Recorded {
        seq: 2,
        result: Ok(()),
    });
    assert_eq!(h.take(), [Output::InUse { version: v(2) }]);
    assert_eq!(h.f.status().installed, Some(v(2)));
}

#[test]
fn an_upgrade_without_changed_packages_or_hooks_skips_them() {
    let mut h = upgrading(versions(true, false));
    h.take();
    h.feed(Input::Installed {
        seq: 2,
        result: Ok(Vec::new()),
    });
    h.feed(Input::Switched {
        seq: 2,
        result: Ok(()),
    });
    assert_eq!(kinds(&h.take()), ["switch", "commit"]);
}

fn rolled_back_by(fail: impl FnOnce(&mut Harness)) -> Harness {
    let mut h = upgrading(versions(true, true));
    h.feed(Input::Installed {
        seq: 2,
        result: Ok(vec!["zos".into()]),
    });
    h.feed(Input::Switched {
        seq: 2,
        result: Ok(()),
    });
    h.take();
    fail(&mut h);
    assert_eq!(
        h.take(),
        [Output::Switch { seq: 1 }],
        "back to the old version"
    );
    h.feed(Input::Switched {
        seq: 1,
        result: Ok(()),
    });
    assert_eq!(
        h.take(),
        [Output::RunHooks {
            seq: 1,
            action: HookAction::Rollback,
            packages: vec!["zos".into()]
        }]
    );
    h.feed(Input::HooksRan {
        seq: 1,
        result: Err("even the rollback hook failed".into()),
    });
    let out = h.take();
    let Some(Output::RecordFailure { failure, restore }) = out.first() else {
        panic!("{out:?}");
    };
    assert_eq!(*restore, v(1));
    assert!(failure.rolled_back);
    assert!(
        failure
            .reason
            .starts_with("upgrade to seq 2 was rolled back to seq 1: "),
        "{}",
        failure.reason
    );
    h.feed(Input::Recorded {
        seq: 2,
        result: Ok(()),
    });
    assert_eq!(h.take(), [Output::InUse { version: v(2) }]);
    let s = h.f.status();
    assert_eq!(s.installed, Some(v(1)));
    assert!(s.failure.as_ref().is_some_and(|f| f.version == v(2)));
    h
}

#[test]
fn a_failing_hook_switches_back_and_records_the_failure() {
    rolled_back_by(|h| {
        h.feed(Input::HooksRan {
            seq: 2,
            result: Err("the on-change hook for package 'zos' failed".into()),
        });
    });
}

#[test]
fn a_failing_health_check_switches_back_and_records_the_failure() {
    let h = rolled_back_by(|h| {
        h.feed(Input::HooksRan {
            seq: 2,
            result: Ok(()),
        });
        assert_eq!(h.take(), [Output::HealthCheck { seq: 2 }]);
        h.feed(Input::HealthChecked {
            seq: 2,
            result: Err("the health check 'x' failed".into()),
        });
    });
    let reason = &h.f.status().failure.as_ref().unwrap().reason;
    assert!(reason.ends_with("the health check 'x' failed"), "{reason}");
}

#[test]
fn a_rolled_back_release_is_not_installed_again() {
    let restored = Restored {
        high_water: Some(HighWater {
            seq: 2,
            root: root(2),
        }),
        release: Some(rel(2)),
        installed: Some(v(1)),
        installed_on_disk: true,
        failed: Some(Failure {
            version: v(2),
            reason: "rolled back".into(),
            at: UNIX,
            rolled_back: true,
        }),
    };
    let mut h = Harness::new(versions(true, true), restored);
    h.take();
    h.feed(Input::Booted { root: root(2) });
    assert_eq!(h.take(), [Output::InUse { version: v(2) }]);
    assert_eq!(h.f.status().installed, Some(v(1)));
}

#[test]
fn an_install_error_is_reported_and_the_next_boot_retries() {
    let mut h = upgrading(versions(false, false));
    h.take();
    h.feed(Input::Installed {
        seq: 2,
        result: Err("no space left on device".into()),
    });
    let out = h.take();
    assert!(
        matches!(&out[..], [Output::InstallFailed { failure }] if !failure.rolled_back && failure.version == v(2)),
        "{out:?}"
    );
    assert!(!h.f.status().booted);
    h.feed(Input::Booted { root: root(2) });
    assert_eq!(kinds(&h.take()), ["install"]);
}

#[test]
fn a_switch_back_that_fails_is_an_install_error() {
    let mut h = upgrading(versions(false, true));
    h.feed(Input::Installed {
        seq: 2,
        result: Ok(Vec::new()),
    });
    h.feed(Input::Switched {
        seq: 2,
        result: Ok(()),
    });
    h.feed(Input::HealthChecked {
        seq: 2,
        result: Err("unhealthy".into()),
    });
    h.take();
    h.feed(Input::Switched {
        seq: 1,
        result: Err("cannot switch the symlink".into()),
    });
    assert_eq!(kinds(&h.take()), ["install_failed"]);
}

#[test]
fn blocks_are_not_collected_while_a_newer_release_comes_in() {
    let mut h = upgrading(versions(false, false));
    h.feed(Input::Installed {
        seq: 2,
        result: Ok(Vec::new()),
    });
    h.gossip(rel(3));
    h.take();
    h.feed(Input::Switched {
        seq: 2,
        result: Ok(()),
    });
    assert_eq!(
        h.take(),
        [Output::Commit {
            version: v(2),
            collect_blocks: false
        }]
    );
}

#[test]
fn a_release_booted_during_an_install_waits_its_turn_and_stale_answers_are_ignored() {
    let mut h = upgrading(versions(false, false));
    h.gossip(rel(3));
    h.feed(Input::Saved { root: root(3) });
    h.feed(Input::Booted { root: root(3) });
    assert!(!kinds(&h.take()).contains(&"install") || h.out.is_empty());
    h.feed(Input::Installed {
        seq: 3,
        result: Ok(Vec::new()),
    });
    assert!(h.take().is_empty(), "an answer for a job not started");
    h.feed(Input::Installed {
        seq: 2,
        result: Ok(Vec::new()),
    });
    h.feed(Input::Switched {
        seq: 2,
        result: Ok(()),
    });
    h.feed(Input::Recorded {
        seq: 2,
        result: Ok(()),
    });
    let out = h.take();
    assert_eq!(
        kinds(&out),
        ["switch", "commit", "install"],
        "v2 is not in use (v3 is booting), then v3 installs"
    );
    assert_eq!(
        out.last(),
        Some(&Output::Install {
            version: v(3),
            previous: Some(v(2))
        })
    );
}
