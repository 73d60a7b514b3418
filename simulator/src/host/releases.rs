//! Releases: the hub's, the operator's announcement, gossip on the mesh, and polls.

use super::*;

impl World<'_> {
    /// The root a node boots when it (re)starts: its durable high-water mark's.
    pub(super) fn current_root(&self, n: u32) -> Cid {
        let installed = self.stats.upgraded_at[n as usize].is_some();
        match &self.rel.v2 {
            Some(v2) if installed => v2.root,
            _ => self.rel.root,
        }
    }

    pub(super) fn publish(&mut self) {
        let (Some(p), Some(g)) = (&self.sc.publish, self.gossip.as_ref()) else {
            return;
        };
        let Some(idx) = g
            .announcements
            .iter()
            .position(|a| a.kind == GossipKind::Published)
        else {
            return;
        };
        self.hub_latest = idx;
        self.stats.hub_egress_at_publish = self.stats.hub_egress;
        let alive: Vec<u32> = (0..self.sc.nodes)
            .filter(|&n| self.hosts[n as usize].alive)
            .collect();
        self.pending_upgrades = Some(alive.len());
        for n in select(&p.announce, &alive, None) {
            self.originate(n, idx);
        }
    }

    pub(super) fn poll(&mut self, node: u32) {
        let Some(period) = self.sc.poll_interval else {
            return;
        };
        let jitter = self.poll_rng.below(period / 10 + 1);
        self.at(period - period / 20 + jitter, Ev::Poll { node });
        let host = &self.hosts[node as usize];
        let Some(g) = self.gossip.as_ref() else {
            return;
        };
        if !host.alive {
            return;
        }
        let fresh = g
            .last_heard(node)
            .is_some_and(|t| self.now.saturating_sub(t) < period);
        if fresh {
            self.stats.polls_skipped += 1;
            return;
        }
        self.stats.hub_polls += 1;
        self.stats.control_bytes += crate::host::REQUEST_BYTES;
        if self.hub_up {
            self.originate(node, self.hub_latest);
        }
    }

    /// `node` starts a flood of announcement `idx` (it published, polled, or attacks).
    pub(super) fn originate(&mut self, node: u32, idx: usize) {
        let Some(g) = self.gossip.as_mut() else {
            return;
        };
        let flood = g.new_flood();
        g.first_sight(node, flood);
        let honest = !matches!(g.announcements[idx].kind, GossipKind::Attack(_));
        if honest {
            let (verdict, new) = g.judge(node, idx, self.now);
            if verdict != GossipVerdict::Accept {
                return;
            }
            if new {
                self.adopt(node, idx);
            }
        }
        self.forward(node, node, flood, idx);
    }

    pub(super) fn forward(&mut self, node: u32, from: u32, flood: u32, idx: usize) {
        let Some(g) = self.gossip.as_ref() else {
            return;
        };
        let bytes = g.announcements[idx].bytes + FRAME_BYTES;
        let peers: Vec<u32> = g.mesh[node as usize]
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

    pub(super) fn hear(&mut self, from: u32, to: u32, flood: u32, idx: usize) {
        if !self.hosts[to as usize].alive {
            return;
        }
        let now = self.now;
        let Some(g) = self.gossip.as_mut() else {
            return;
        };
        if !g.first_sight(to, flood) {
            return;
        }
        self.trace.record(now, to, Kind::Gossip, idx as u64);
        let (verdict, new) = g.judge(to, idx, now);
        match verdict {
            GossipVerdict::Accept => {
                if new {
                    self.adopt(to, idx);
                }
                self.forward(to, from, flood, idx);
            }
            GossipVerdict::Ignore => {}
            GossipVerdict::Reject => self.stats.gossip_penalised[from as usize] = true,
        }
    }

    /// A node accepted a release newer than its own: it installs it.
    pub(super) fn adopt(&mut self, node: u32, idx: usize) {
        let Some(g) = self.gossip.as_ref() else {
            return;
        };
        let a = &g.announcements[idx];
        let root = a.signed.release.root;
        match a.kind {
            GossipKind::Published => {
                self.stats.heard_at[node as usize].get_or_insert(self.now);
                self.input(node, Input::Boot { root });
            }
            GossipKind::First => {}
            GossipKind::Attack(_) => self.stats.bad_installs += 1,
        }
    }
}
