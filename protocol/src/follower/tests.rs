//! One test per rule of the follower, on a fake clock.

use std::time::Duration;

use ed25519_dalek::SigningKey;

use super::*;
use crate::block::{Codec, cid_of};
use crate::release::{Release, TrustRoot};

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

    /// Runs the clock from timeout to timeout until the follower polls; the time (s).
    fn next_poll(&mut self) -> f64 {
        for _ in 0..100 {
            let t = self.f.poll_timeout().expect("a poll is scheduled");
            self.now = t.as_nanos().max(self.now);
            self.feed(Input::Timeout);
            if self.out.contains(&Output::Poll) {
                return self.now as f64 / SECOND as f64;
            }
        }
        panic!("no poll");
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
            author: None,
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
    h.take();
    h.next_poll();
    assert_eq!(kinds(&h.take()).last(), Some(&"poll"));
    h.feed(Input::Polled(Ok(rel(2))));
    assert!(h.f.status().refusals.is_empty());
}

#[test]
fn a_release_heard_again_is_checked_against_the_mark_of_now() {
    let mut h = Harness::following(cfg());
    let forged = signed(7, 7, "prod", UNIX + 86_400, 9);
    for _ in 0..3 {
        assert!(matches!(
            h.gossip(forged.clone()),
            Verdict::Rejected {
                kind: RefusalKind::UntrustedKey,
                ..
            }
        ));
    }
    // The signature check is remembered for the bytes, the rest is not: the same bytes are
    // new once, then current.
    assert_eq!(h.gossip(rel(2)), Verdict::New(2));
    h.feed(Input::Saved { root: root(2) });
    assert_eq!(h.gossip(rel(2)), Verdict::Current(2));
}

#[test]
fn expiry_and_staleness_are_reported() {
    let h = Harness::following(cfg());
    assert_eq!(h.f.expires_in(), Some(86_400));
    assert!(!h.f.stale());
    let restored = Restored {
        high_water: Some(HighWater {
            seq: 1,
            root: root(1),
        }),
        release: Some(signed(1, 1, "prod", UNIX + 150, 1)),
        ..Restored::default()
    };
    let h = Harness::new(cfg(), restored);
    assert_eq!(h.f.expires_in(), Some(150));
    assert!(h.f.stale(), "expires within two 100 s periods");
    assert!(
        Harness::new(cfg(), Restored::default()).f.stale(),
        "no release"
    );
}

// ----- polls -----

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
    let due = h.next_poll();
    assert!((110.0..=150.0).contains(&due), "{due}");
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
    let next = h.next_poll();
    assert!(
        (110.0..=150.0).contains(&next),
        "the next slot's poll: {next}"
    );
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
fn an_operator_release_is_gossiped_even_when_current() {
    let mut h = Harness::following(cfg());
    assert_eq!(h.release(rel(1), Via::Operator), Verdict::Current(1));
    assert_eq!(kinds(&h.take()), ["judged", "publish"]);
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

/// Slot of the poll schedule at harness time `secs` (100 s periods).
fn slot(secs: u64) -> u64 {
    (UNIX + secs) / 100
}

/// Members that put `me` (NodeId 0) at `rank` in `slot`, plus two ranked below it.
fn ranked(rank: usize, slot: u64) -> Vec<NodeId> {
    let mine = poll::score(NodeId(0), slot);
    let above = (1..).map(NodeId).filter(|n| poll::score(*n, slot) > mine);
    let below = (1..).map(NodeId).filter(|n| poll::score(*n, slot) < mine);
    above.take(rank - 1).chain(below.take(2)).collect()
}

/// Two members that outrank `me` (NodeId 0) in every slot of the first `secs` seconds, and
/// two it outranks, so that it polls only when it must.
fn outranked_until(secs: u64) -> Vec<NodeId> {
    let slots: Vec<u64> = (0..=secs / 100).map(|i| slot(i * 100)).collect();
    let beats = |n: &NodeId, me: NodeId| {
        slots
            .iter()
            .all(|&k| poll::score(*n, k) > poll::score(me, k))
    };
    let above = (1..).map(NodeId).filter(|n| beats(n, NodeId(0)));
    let below = (1..).map(NodeId).filter(|n| !beats(n, NodeId(0)));
    above.take(2).chain(below.take(2)).collect()
}

/// A follower with `members`, running release 1 since its start-up poll at 0 s.
fn member_of(members: Vec<NodeId>) -> Harness {
    let mut h = Harness::following(cfg());
    h.feed(Input::Members(members));
    h.take();
    h
}

/// Gossip of the current release passed on by `author`.
fn passed_on(h: &mut Harness, author: NodeId) {
    h.feed(Input::Release {
        bytes: rel(1),
        via: Via::Gossip,
        author: Some(author),
        ticket: 1,
    });
}

/// The times (s) at which `h` polls until `until` s, the hub answering each at once, with
/// `between` run every 10 s.
fn polls_until(
    h: &mut Harness,
    until: u64,
    mut between: impl FnMut(&mut Harness, u64),
) -> Vec<f64> {
    let mut polls = Vec::new();
    let mut t = h.now / SECOND;
    while t < until {
        let next = h.f.poll_timeout().map_or(u64::MAX, |t| t.as_nanos());
        let tick = (t + 10) * SECOND;
        if next <= tick && next < until * SECOND {
            h.now = next.max(h.now);
            h.feed(Input::Timeout);
        } else {
            h.now = tick;
            t += 10;
            h.feed(Input::Timeout);
            between(h, t);
        }
        if h.take().contains(&Output::Poll) {
            polls.push(h.now as f64 / SECOND as f64);
            h.feed(Input::Polled(Ok(rel(1))));
            h.take();
        }
        t = h.now / SECOND;
    }
    polls
}

#[test]
fn a_lone_node_polls_once_a_period_after_its_start_up_poll() {
    let mut h = Harness::following(cfg());
    let polls = polls_until(&mut h, 500, |_, _| {});
    assert_eq!(
        polls.len(),
        4,
        "slots 1 to 4; slot 0 had the start-up poll: {polls:?}"
    );
    for (i, t) in polls.iter().enumerate() {
        let start = 100.0 * (i + 1) as f64;
        assert!((start + 10.0..=start + 50.0).contains(t), "{polls:?}");
    }
    assert_eq!(h.f.status().polls, 5);
}

#[test]
fn the_first_ranked_member_polls_whatever_the_farm_gossips() {
    let mut h = member_of(ranked(1, slot(100)));
    let replayer = NodeId(u64::MAX);
    let polls = polls_until(&mut h, 200, |h, _| passed_on(h, replayer));
    assert_eq!(polls.len(), 1, "{polls:?}");
    assert!((110.0..=150.0).contains(&polls[0]));
}

#[test]
fn the_second_ranked_member_polls_only_when_the_first_passed_nothing_on() {
    let members = ranked(2, slot(100));
    let first = members[0];
    let mut h = member_of(members.clone());
    let polls = polls_until(&mut h, 200, |h, t| {
        if t == 130 {
            passed_on(h, first);
        }
    });
    assert!(polls.is_empty(), "the first passed its poll on: {polls:?}");

    // A first that passes on more than once in the slot is replaying, not polling.
    let mut h = member_of(members.clone());
    let polls = polls_until(&mut h, 200, |h, t| {
        if t == 120 || t == 130 {
            passed_on(h, first);
        }
    });
    assert_eq!(polls.len(), 1, "{polls:?}");

    // A copy passed on by anyone else (a replay, a lower rank) covers nothing.
    let mut h = member_of(members.clone());
    let below = members[1];
    let polls = polls_until(&mut h, 200, |h, _| passed_on(h, below));
    assert_eq!(polls.len(), 1, "{polls:?}");
    assert!((155.0..=190.0).contains(&polls[0]), "{polls:?}");
}

#[test]
fn other_members_poll_only_when_the_farm_went_quiet() {
    let members = outranked_until(600);
    let mut h = member_of(members.clone());
    let polls = polls_until(&mut h, 600, |h, t| {
        if t % 100 == 30 {
            passed_on(h, members[0]);
        }
    });
    assert!(polls.is_empty(), "{polls:?}");
    assert!(h.f.status().polls_deferred >= 5);
    // With nothing passed on for two periods it polls on its own, once a period.
    let mut h = member_of(outranked_until(600));
    let polls = polls_until(&mut h, 600, |_, _| {});
    assert!(!polls.is_empty() && polls.len() <= 4, "{polls:?}");
    assert!(polls[0] >= 200.0, "{polls:?}");
}

#[test]
fn a_release_near_expiry_is_polled_for_whatever_the_rank() {
    let restored = Restored {
        high_water: Some(HighWater {
            seq: 1,
            root: root(1),
        }),
        release: Some(signed(1, 1, "prod", UNIX + 150, 1)),
        ..Restored::default()
    };
    let mut h = Harness::new(cfg(), restored);
    h.feed(Input::Members(outranked_until(200)));
    h.feed(Input::Polled(Ok(signed(1, 1, "prod", UNIX + 150, 1))));
    h.take();
    let polls = polls_until(&mut h, 100, |_, _| {});
    assert!(polls.is_empty(), "slot 0 had the start-up poll");
    let polls = polls_until(&mut h, 200, |_, _| {});
    assert_eq!(polls.len(), 1, "expires within two periods: {polls:?}");
}

#[test]
fn a_quiet_farm_member_whose_poll_fails_waits_for_the_next_period() {
    let mut h = member_of(outranked_until(500));
    let mut failures = 0;
    for _ in 0..400 {
        let Some(t) = h.f.poll_timeout() else { break };
        if t.as_nanos() >= 500 * SECOND {
            break;
        }
        h.now = t.as_nanos().max(h.now);
        h.feed(Input::Timeout);
        if h.take().contains(&Output::Poll) {
            failures += 1;
            h.feed(Input::Polled(Err("hub down".into())));
        }
    }
    assert!((1..=3).contains(&failures), "{failures} polls in 500 s");
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
    h.feed(Input::MemberUp(NodeId(7)));
    assert!(h.take().is_empty());
    h.feed(Input::MemberUp(NodeId(8)));
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

/// A follower running version 1 installed in the target.
fn on_v1(cfg: FollowerConfig) -> Harness {
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
    Harness::new(cfg, restored)
}

/// A follower running version 1 installed in the target, which has just booted version 2.
fn upgrading(cfg: FollowerConfig) -> Harness {
    let mut h = on_v1(cfg);
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

#[test]
fn a_refused_boot_is_a_failure_and_the_node_stays_on_its_version() {
    let mut h = on_v1(versions(false, false));
    h.feed(Input::Polled(Ok(rel(2))));
    h.feed(Input::Saved { root: root(2) });
    assert_eq!(h.take().last(), Some(&Output::Boot { root: root(2) }));
    let reason = "release seq 2 does not fit in the store".to_string();
    h.feed(Input::BootRefused {
        root: root(2),
        reason: reason.clone(),
    });
    let out = h.take();
    assert!(
        matches!(&out[..], [Output::InstallFailed { failure }]
            if failure.version == v(2) && failure.reason == reason && !failure.rolled_back),
        "{out:?}"
    );
    assert_eq!(h.f.status().booting, None);
    assert_eq!(
        h.f.status().failure.as_ref().map(|f| f.reason.as_str()),
        Some(reason.as_str())
    );
    // The agent goes back to the version in use: its boot installs nothing.
    h.feed(Input::Booted { root: root(1) });
    h.feed(Input::Booted { root: root(2) });
    assert_eq!(h.take(), []);
    // Heard again, the refused release is not booted again; a newer one is.
    h.gossip(rel(2));
    assert!(!kinds(&h.take()).contains(&"boot"));
    h.gossip(rel(3));
    h.feed(Input::Saved { root: root(3) });
    assert_eq!(h.take().last(), Some(&Output::Boot { root: root(3) }));
}
