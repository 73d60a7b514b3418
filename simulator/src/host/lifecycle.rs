//! Nodes starting, crashing and restarting, and the scenario's faults.

use super::*;

impl World<'_> {
    pub(super) fn start_batch(&mut self, batch: usize) {
        let nodes = std::mem::take(&mut self.batches[batch]);
        self.trace
            .record(self.now, u32::MAX, Kind::Start, nodes.len() as u64);
        self.pending_starts = self.pending_starts.saturating_sub(nodes.len());
        let mut fresh = Vec::new();
        for &(n, kind) in &nodes {
            if self.hosts[n as usize].started.is_none() {
                self.hosts[n as usize].durable = self.durable_at_start(kind == EventKind::Seed);
            }
            let host = &mut self.hosts[n as usize];
            host.started = Some(kind);
            if kind == EventKind::Seed {
                for b in 0..self.rel.v1_blocks {
                    host.held[b / 64] |= 1 << (b % 64);
                }
            }
            if !host.alive {
                fresh.push(n);
            }
        }
        self.bring_up(&fresh);
    }

    /// Starts agents on `nodes` (power-on or restart) and tells the cohort.
    pub(super) fn bring_up(&mut self, nodes: &[u32]) {
        let old: Vec<u32> = (0..self.sc.nodes)
            .filter(|&x| self.hosts[x as usize].alive)
            .collect();
        for &n in nodes {
            let cfg = self.agent_config(n);
            let host = &mut self.hosts[n as usize];
            host.alive = true;
            host.agent = (host.role == Role::Node).then(|| Box::new(Agent::new(cfg)));
            host.timer = None;
            host.timer_gen = host.timer_gen.wrapping_add(1);
        }
        let (agents, followers) = (self.peers_mode(), self.followers_rank());
        // Agents' inputs change no host's liveness or group: one member list per group.
        let mut by_group: BTreeMap<u32, Vec<NodeId>> = BTreeMap::new();
        let mut racks_by_group: BTreeMap<u32, Option<RackClaims>> = BTreeMap::new();
        for &n in nodes {
            let g = self.hosts[n as usize].group;
            let in_group =
                |s: &Self, x: u32| s.hosts[x as usize].alive && s.hosts[x as usize].group == g;
            let members = (agents || followers).then(|| {
                by_group
                    .entry(g)
                    .or_insert_with(|| {
                        (0..self.sc.nodes)
                            .filter(|&x| in_group(self, x))
                            .flat_map(|x| self.identities(x))
                            .collect()
                    })
                    .clone()
            });
            if let (true, Some(m)) = (agents, &members) {
                let racks = racks_by_group.entry(g).or_insert_with(|| {
                    self.rack_claims((0..self.sc.nodes).filter(|&x| in_group(self, x)))
                });
                if let Some(claims) = racks {
                    let claims = claims.clone();
                    self.input(n, Input::Racks(claims));
                }
                self.input(n, Input::Members(m.clone()));
            }
            // The follower boots the release it saved (or the first one).
            self.start_follower(n, members.filter(|_| followers));
        }
        for &o in &old {
            for &n in nodes {
                if self.hosts[o as usize].group == self.hosts[n as usize].group {
                    self.member(o, n, true);
                }
            }
        }
    }

    /// Tells node `o` (its agent, and its follower when it ranks pollers) that `n` joined or
    /// left.
    fn member(&mut self, o: u32, n: u32, up: bool) {
        if up
            && self.peers_mode()
            && let Some(claims) = self.rack_claims(std::iter::once(n))
        {
            self.input(o, Input::Racks(claims));
        }
        for id in self.identities(n) {
            if self.peers_mode() {
                self.input(
                    o,
                    if up {
                        Input::MemberUp(id)
                    } else {
                        Input::MemberDown(id)
                    },
                );
            }
            if self.followers_rank() {
                let fact = if up {
                    follower::Input::MemberUp(id)
                } else {
                    follower::Input::MemberDown(id)
                };
                self.tell(o, fact);
            }
        }
    }

    pub(super) fn crash(&mut self, c: u32) {
        if !self.hosts[c as usize].alive {
            return;
        }
        self.gossip.restart(c);
        let host = &mut self.hosts[c as usize];
        host.alive = false;
        host.agent = None;
        host.follower = None;
        host.ftimer = None;
        host.ftimer_gen = host.ftimer_gen.wrapping_add(1);
        host.install_seq = None;
        host.epoch = host.epoch.wrapping_add(1);
        host.incarnation += 1;
        host.timer = None;
        host.timer_gen = host.timer_gen.wrapping_add(1);
        host.reqs.clear();
        host.installing = false;
        self.net.abort(INSTALL, c);
        self.drop_connections(c, |_, _| true, FetchError::Disconnected);
        // Requests the crashed node was answering fail at their requesters.
        for h in 0..self.reqs.len() as u32 {
            let r = &self.reqs[h as usize];
            if r.live && r.src == c && r.stage == Stage::AtServer {
                let g = r.g;
                self.reqs[h as usize].stage = Stage::Returning;
                self.at(
                    0,
                    Ev::Reply {
                        h,
                        g,
                        error: FetchError::Disconnected,
                    },
                );
            }
        }
        for o in 0..self.sc.nodes {
            if self.hosts[o as usize].alive
                && self.hosts[o as usize].group == self.hosts[c as usize].group
            {
                self.member(o, c, false);
            }
        }
    }

    /// Aborts node `n`'s connections for which `which(src, dst)` holds.
    pub(super) fn drop_connections(
        &mut self,
        n: u32,
        which: impl Fn(u32, u32) -> bool,
        error: FetchError,
    ) {
        for (src, dst) in self.net.connections_of(n) {
            if src == INSTALL || !which(src, dst) {
                continue;
            }
            for chunk in self.net.abort(src, dst) {
                let (h, g) = (chunk.tag as u32, (chunk.tag >> 32) as u32);
                let Some(r) = self.req(h, g).cloned() else {
                    continue;
                };
                if src != HUB {
                    self.serve_done(src, r.ep_srv, sid(h, g));
                }
                self.reqs[h as usize].stage = Stage::Returning;
                self.at(0, Ev::Reply { h, g, error });
            }
        }
    }

    pub(super) fn fault(&mut self, idx: usize, begin: bool) {
        let f = &self.sc.faults[idx];
        self.trace
            .record(self.now, idx as u32, Kind::Fault, begin as u64);
        let nodes = self.roles.fault_nodes[idx].clone();
        match (&f.kind, begin) {
            (FaultKind::Inject(inj), true) => {
                if let Some(idx) = self.gossip.find(GossipKind::Attack(*inj)) {
                    for &n in &nodes {
                        if self.hosts[n as usize].alive {
                            self.attack(n, idx);
                        }
                    }
                }
            }
            (FaultKind::Inject(_), false) => {}
            (FaultKind::Crash, true) => {
                for &n in &nodes {
                    self.crash(n);
                }
            }
            (FaultKind::Crash, false) => {
                let up: Vec<u32> = nodes
                    .iter()
                    .copied()
                    .filter(|&n| {
                        !self.hosts[n as usize].alive && self.hosts[n as usize].started.is_some()
                    })
                    .collect();
                self.bring_up(&up);
            }
            (FaultKind::HubOutage, true) => {
                self.hub_up = false;
                for n in 0..self.sc.nodes {
                    self.drop_connections(n, |s, _| s == HUB, FetchError::HubUnavailable);
                }
            }
            (FaultKind::HubOutage, false) => self.hub_up = true,
            (FaultKind::Corrupt, on) => {
                for &n in &nodes {
                    self.hosts[n as usize].corrupt = on;
                }
            }
            (FaultKind::Partition, on) => self.partition(&nodes, on),
            (FaultKind::SlowNic { factor, rate }, on) => {
                let topo = self.net.topology().clone();
                for &n in &nodes {
                    for r in [topo.up(n), topo.down(n)] {
                        let base = topo.caps[r as usize];
                        let cap = if on {
                            rate.unwrap_or((base as f64 / factor) as u64).max(1)
                        } else {
                            base
                        };
                        self.net.set_cap(r, cap);
                    }
                }
            }
            (
                FaultKind::Sybil { .. }
                | FaultKind::Withhold
                | FaultKind::Trickle { .. }
                | FaultKind::Replay { .. }
                | FaultKind::ForgeFlood { .. }
                | FaultKind::HubUnreachable,
                on,
            ) => self.adversary_fault(idx, on),
            (FaultKind::Loss { p }, on) => {
                let all = f.nodes == crate::scenario::NodeSel::All;
                for n in 0..self.sc.nodes {
                    if all || nodes.binary_search(&n).is_ok() {
                        self.hosts[n as usize].loss = if on { *p } else { 0.0 };
                    }
                }
            }
        }
    }

    pub(super) fn partition(&mut self, side: &[u32], on: bool) {
        let g = if on { 1 } else { 0 };
        let mut inside = vec![false; self.sc.nodes as usize];
        for &n in side {
            inside[n as usize] = true;
        }
        let before: Vec<u32> = self.hosts.iter().map(|h| h.group).collect();
        for &n in side {
            self.hosts[n as usize].group = g;
        }
        if on {
            for &n in side {
                let ins = inside.clone();
                self.drop_connections(
                    n,
                    move |s, d| s != HUB && ins[s as usize] != ins[d as usize],
                    FetchError::Disconnected,
                );
            }
        }
        if !self.peers_mode() && !self.followers_rank() {
            return;
        }
        let alive: Vec<u32> = (0..self.sc.nodes)
            .filter(|&x| self.hosts[x as usize].alive)
            .collect();
        for &a in &alive {
            for &b in &alive {
                if a == b || inside[a as usize] == inside[b as usize] {
                    continue;
                }
                let was = before[a as usize] == before[b as usize];
                let is = self.hosts[a as usize].group == self.hosts[b as usize].group;
                if was != is {
                    self.member(a, b, is);
                }
            }
        }
    }
}
