//! Releases: every node runs the node's release follower, which judges what the hub, the
//! operator and the gossip mesh bring, polls the hub, and sequences boot and install; this
//! module carries out what it asks (the mesh, the hub's answers, instant disk steps, the
//! `[host]` install job).

use std::time::Duration;

use bootswarm_protocol::follower::{FollowerConfig, InstallMode, Output as Action, Via};
use bootswarm_protocol::release::{GossipVerdict, HighWater};

use super::*;
use crate::gossip::{CHANNEL, EPOCH_UNIX};

impl World<'_> {
    /// Unix time at simulated time `now`.
    fn unix(&self) -> u64 {
        EPOCH_UNIX + self.now / 1_000_000_000
    }

    /// Every node starts knowing the first release, as if it had been saved by an earlier run
    /// (storms begin with the farm told what to boot); seeded nodes also run it.
    pub(super) fn durable_at_start(&self, seeded: bool) -> Restored {
        let first = &self.gossip.announcements[0];
        let r = &first.signed.release;
        let version = follower::Version {
            seq: r.seq,
            root: r.root,
        };
        Restored {
            high_water: Some(HighWater {
                seq: r.seq,
                root: r.root,
            }),
            release: Some(first.bytes.clone()),
            installed: seeded.then_some(version),
            installed_on_disk: seeded,
            failed: None,
        }
    }

    /// Starts node `n`'s follower from its durable state. What it would gossip while starting
    /// goes nowhere: a process that just started has no gossip links yet.
    pub(super) fn start_follower(&mut self, n: u32, members: Option<Vec<NodeId>>) {
        let h = &self.hosts[n as usize];
        if h.role != Role::Node {
            return;
        }
        let cfg = FollowerConfig {
            me: NodeId(n as u64),
            seed: mix(&[self.seed, n as u64, purpose::FOLLOWER, h.incarnation]),
            poll_interval: self.sc.poll_interval.map(Duration::from_nanos),
            install: InstallMode::Versions {
                hooks: false,
                health_check: false,
            },
            ..FollowerConfig::new(CHANNEL, self.gossip.trust().clone())
        };
        let follower = Follower::new(
            cfg,
            h.durable.clone(),
            Time::from_nanos(self.now),
            self.unix(),
        );
        let host = &mut self.hosts[n as usize];
        host.follower = Some(follower);
        host.polled = false;
        host.starting = true;
        if let Some(members) = members {
            let (now, unix) = (Time::from_nanos(self.now), self.unix());
            if let Some(f) = self.hosts[n as usize].follower.as_mut() {
                f.handle(now, unix, follower::Input::Members(members));
            }
        }
        self.drain_follower(n);
        self.hosts[n as usize].starting = false;
    }

    /// Whether followers need the farm's members: only to rank who polls the hub.
    pub(super) fn followers_rank(&self) -> bool {
        self.sc.poll_interval.is_some()
    }

    /// Tells node `n`'s follower a fact and carries out what it asks.
    pub(super) fn tell(&mut self, n: u32, fact: follower::Input) {
        let (now, unix) = (Time::from_nanos(self.now), self.unix());
        let Some(f) = self.hosts[n as usize].follower.as_mut() else {
            return;
        };
        f.handle(now, unix, fact);
        self.drain_follower(n);
    }

    fn drain_follower(&mut self, n: u32) {
        loop {
            let Some(f) = self.hosts[n as usize].follower.as_mut() else {
                return;
            };
            let Some(action) = f.poll_output() else {
                break;
            };
            self.action(n, action);
        }
        let t = self.hosts[n as usize]
            .follower
            .as_ref()
            .and_then(Follower::poll_timeout)
            .map(Time::as_nanos);
        let host = &mut self.hosts[n as usize];
        if t != host.ftimer {
            host.ftimer = t;
            host.ftimer_gen = host.ftimer_gen.wrapping_add(1);
            if let Some(t) = t {
                let generation = host.ftimer_gen;
                self.q.push(
                    SimTime(t.max(self.now)),
                    Ev::FollowerWake {
                        node: n,
                        generation,
                    },
                );
            }
        }
    }

    fn action(&mut self, n: u32, action: Action) {
        let i = n as usize;
        match action {
            Action::Judged { verdict, .. } => self.verdict = Some(verdict),
            Action::Publish { bytes } => {
                if !self.hosts[i].starting
                    && let Some(idx) = self.gossip.index_of(&bytes)
                {
                    self.flood(n, idx);
                }
            }
            Action::Save { high_water, bytes } => {
                self.adopted(n, high_water.root);
                let d = &mut self.hosts[i].durable;
                d.high_water = Some(high_water.clone());
                d.release = Some(bytes);
                self.tell(
                    n,
                    follower::Input::Saved {
                        root: high_water.root,
                    },
                );
            }
            Action::Poll => self.poll(n),
            Action::Boot { root } => self.input(n, Input::Boot { root }),
            Action::Install { version, previous } => {
                let first_boot = self.stats.booted_at[i].is_none() && self.roles.booting[i];
                match self.sc.host {
                    Some(h) if first_boot && previous.is_none() && !self.hosts[i].installing => {
                        let host = &mut self.hosts[i];
                        host.installing = true;
                        host.install_seq = Some(version.seq);
                        let chunk = Chunk {
                            len: h.install_work(self.sc.size),
                            tag: INSTALL_TAG,
                        };
                        self.net.enqueue(SimTime(self.now), INSTALL, n, chunk);
                    }
                    _ => self.tell(
                        n,
                        follower::Input::Installed {
                            seq: version.seq,
                            result: Ok(Vec::new()),
                        },
                    ),
                }
            }
            Action::Switch { seq } => {
                self.tell(
                    n,
                    follower::Input::Switched {
                        seq,
                        result: Ok(()),
                    },
                );
            }
            Action::RunHooks { seq, .. } => {
                self.tell(
                    n,
                    follower::Input::HooksRan {
                        seq,
                        result: Ok(()),
                    },
                );
            }
            Action::HealthCheck { seq } => {
                let fact = follower::Input::HealthChecked {
                    seq,
                    result: Ok(()),
                };
                self.tell(n, fact);
            }
            Action::Commit { version, .. } => {
                let d = &mut self.hosts[i].durable;
                d.installed = Some(version);
                d.installed_on_disk = true;
                let fact = follower::Input::Recorded {
                    seq: version.seq,
                    result: Ok(()),
                };
                self.tell(n, fact);
            }
            Action::RecordFailure { failure, restore } => {
                let seq = failure.version.seq;
                let d = &mut self.hosts[i].durable;
                d.installed = Some(restore);
                d.failed = Some(failure);
                self.tell(
                    n,
                    follower::Input::Recorded {
                        seq,
                        result: Ok(()),
                    },
                );
            }
            Action::InUse { version } => self.in_use(n, version.root),
            Action::InstallFailed { failure } => {
                *self.stats.failures.entry(failure.reason).or_default() += 1;
            }
        }
    }

    /// The `[host]` install job of node `n` finished writing its tree.
    pub(super) fn installed(&mut self, n: u32) {
        let host = &mut self.hosts[n as usize];
        host.installing = false;
        if let Some(seq) = host.install_seq.take() {
            let fact = follower::Input::Installed {
                seq,
                result: Ok(Vec::new()),
            };
            self.tell(n, fact);
        }
    }

    /// Node `n` accepted a release newer than its own (it saves it, then boots it).
    fn adopted(&mut self, n: u32, root: Cid) {
        let Some(idx) = self
            .gossip
            .announcements
            .iter()
            .position(|a| a.signed.release.root == root)
        else {
            return;
        };
        match self.gossip.announcements[idx].kind {
            GossipKind::Published => {
                self.stats.heard_at[n as usize].get_or_insert(self.now);
            }
            GossipKind::First => {}
            GossipKind::Attack(_) => self.stats.bad_installs += 1,
        }
    }

    /// A booted release is in use on node `n`.
    fn in_use(&mut self, n: u32, root: Cid) {
        let i = n as usize;
        if self.rel.v2.as_ref().is_some_and(|v2| v2.root == root)
            && self.stats.upgraded_at[i].is_none()
        {
            self.stats.upgraded_at[i] = Some(self.now);
            if let Some(p) = self.pending_upgrades.as_mut() {
                *p = p.saturating_sub(1);
            }
        }
        self.booted(i);
    }

    /// The operator hands the published release to some nodes (`bootswarm announce`).
    pub(super) fn publish(&mut self) {
        let Some(p) = &self.sc.publish else {
            return;
        };
        let Some(idx) = self.gossip.find(GossipKind::Published) else {
            return;
        };
        self.hub_latest = idx;
        self.stats.hub_egress_at_publish = self.stats.hub_egress;
        let alive: Vec<u32> = (0..self.sc.nodes)
            .filter(|&n| self.hosts[n as usize].alive)
            .collect();
        self.pending_upgrades = Some(alive.len());
        for n in select(&p.announce, &alive, None) {
            let bytes = self.gossip.announcements[idx].bytes.clone();
            self.tell(
                n,
                follower::Input::Release {
                    bytes,
                    via: Via::Operator,
                    author: None,
                    ticket: 0,
                },
            );
        }
    }

    /// Node `n` polls the hub; the answer comes back after a round trip.
    fn poll(&mut self, n: u32) {
        let host = &mut self.hosts[n as usize];
        if std::mem::replace(&mut host.polled, true) {
            self.stats.hub_polls += 1;
        } else {
            self.stats.hub_startup_polls += 1;
        }
        self.stats.control_bytes += REQUEST_BYTES;
        let epoch = self.hosts[n as usize].epoch;
        let ok = self.hub_up && !self.hosts[n as usize].hub_unreachable;
        self.at(
            2 * self.sc.hub_latency,
            Ev::PollAnswer { node: n, epoch, ok },
        );
    }

    pub(super) fn poll_answer(&mut self, n: u32, epoch: u32, ok: bool) {
        let host = &self.hosts[n as usize];
        if !host.alive || host.epoch != epoch {
            return;
        }
        let answer = if ok && self.hub_up {
            let a = &self.gossip.announcements[self.hub_latest];
            self.stats.control_bytes += a.bytes.len() as u64;
            Ok(a.bytes.clone())
        } else {
            Err("the hub is unreachable".to_string())
        };
        self.tell(n, follower::Input::Polled(answer));
    }

    /// `node` starts a new flood of announcement `idx` (its follower passed a release on).
    fn flood(&mut self, node: u32, idx: usize) {
        let flood = self.gossip.new_flood(node);
        self.gossip.first_sight(node, flood);
        self.forward(node, node, flood, idx);
    }

    /// An attacker floods announcement `idx` without judging it.
    pub(super) fn attack(&mut self, node: u32, idx: usize) {
        self.flood(node, idx);
    }

    fn forward(&mut self, node: u32, from: u32, flood: u32, idx: usize) {
        let bytes = self.gossip.announcements[idx].bytes.len() as u64 + FRAME_BYTES;
        let peers: Vec<u32> = self.gossip.mesh[node as usize]
            .iter()
            .copied()
            .filter(|&m| m != from)
            .collect();
        for to in peers {
            if !self.reachable(node, to) {
                continue;
            }
            let delay = self.ctl_delay(node, to, bytes) + VALIDATE_NANOS;
            self.at(
                delay,
                Ev::Gossip {
                    from: node,
                    to,
                    flood,
                    idx,
                },
            );
        }
    }

    /// A gossiped release reaches `to`: its follower judges it; accepted releases travel on,
    /// rejected ones blame the sender.
    pub(super) fn hear(&mut self, from: u32, to: u32, flood: u32, idx: usize) {
        if !self.hosts[to as usize].alive || !self.gossip.first_sight(to, flood) {
            return;
        }
        self.trace.record(self.now, to, Kind::Gossip, idx as u64);
        self.verdict = None;
        let bytes = self.gossip.announcements[idx].bytes.clone();
        let author = self.gossip.author(flood).map(|a| NodeId(a as u64));
        self.tell(
            to,
            follower::Input::Release {
                bytes,
                via: Via::Gossip,
                author,
                ticket: 0,
            },
        );
        match self.verdict.take().map(|v| v.gossip()) {
            Some(GossipVerdict::Accept) => self.forward(to, from, flood, idx),
            Some(GossipVerdict::Reject) => self.stats.gossip_penalised[from as usize] = true,
            Some(GossipVerdict::Ignore) | None => {}
        }
    }
}
