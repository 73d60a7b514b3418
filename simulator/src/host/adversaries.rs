//! Adversaries: silent sybil attackers, attackers that claim every block and withhold it or
//! trickle it out, nodes whose hub route is broken, and gossip attacks that repeat (replays of
//! the first release, floods of forged ones).

use super::*;
use bootswarm_protocol::agent::release_tag;

/// Between two rounds of a claiming attacker's `Hello`s to every node (ns): nodes that dropped
/// it without banning it take it back.
const CLAIM_PERIOD: u64 = 5_000_000_000;

/// Gives the hosts of attacker and faulty-node faults their roles for the whole run, and the
/// sybil attackers their identities. Returns the host of every identity (the nodes' own ids
/// first, then the sybil identities).
pub(super) fn assign(sc: &Scenario, roles: &Roles, hosts: &mut [Host]) -> Vec<u32> {
    let mut identity_host: Vec<u32> = (0..sc.nodes).collect();
    for (f, nodes) in sc.faults.iter().zip(&roles.fault_nodes) {
        if !(f.kind.is_attacker() || f.kind.is_faulty_node()) {
            continue;
        }
        for &n in nodes {
            let h = &mut hosts[n as usize];
            h.adversary = true;
            match f.kind {
                FaultKind::Sybil { identities } => {
                    h.role = Role::Silent;
                    for _ in 1..identities {
                        h.extra_ids.push(identity_host.len() as u64);
                        identity_host.push(n);
                    }
                }
                FaultKind::Withhold => h.role = Role::Claim { trickle: false },
                FaultKind::Trickle { .. } => h.role = Role::Claim { trickle: true },
                _ => {}
            }
        }
    }
    identity_host
}

impl World<'_> {
    /// The member identities of host `n`: its own, then its sybil identities.
    pub(super) fn identities(&self, n: u32) -> Vec<NodeId> {
        std::iter::once(NodeId(n as u64))
            .chain(self.hosts[n as usize].extra_ids.iter().map(|&i| NodeId(i)))
            .collect()
    }

    /// An adversary fault starts or ends.
    pub(super) fn adversary_fault(&mut self, idx: usize, begin: bool) {
        let nodes = self.roles.fault_nodes[idx].clone();
        match self.sc.faults[idx].kind {
            FaultKind::Withhold | FaultKind::Trickle { .. } if begin => {
                if let FaultKind::Trickle { rate } = self.sc.faults[idx].kind {
                    for &n in &nodes {
                        let up = self.net.topology().up(n);
                        self.net.set_cap(up, rate.max(1));
                    }
                }
                for &n in &nodes {
                    self.hosts[n as usize].claiming = true;
                }
                self.repeat(idx);
            }
            FaultKind::Replay { .. } | FaultKind::ForgeFlood { .. } if begin => self.repeat(idx),
            FaultKind::HubUnreachable => {
                for &n in &nodes {
                    self.hosts[n as usize].hub_unreachable = begin;
                    if begin {
                        self.drop_connections(n, |s, _| s == HUB, FetchError::HubUnavailable);
                    }
                }
            }
            _ => {}
        }
    }

    /// A periodic fault acts (and comes back after its period, until it ends).
    pub(super) fn repeat(&mut self, idx: usize) {
        let f = &self.sc.faults[idx];
        if f.until.is_some_and(|u| self.now >= u) {
            return;
        }
        let nodes = self.roles.fault_nodes[idx].clone();
        let alive: Vec<u32> = nodes
            .into_iter()
            .filter(|&n| self.hosts[n as usize].alive)
            .collect();
        let period = match f.kind {
            FaultKind::Withhold | FaultKind::Trickle { .. } => {
                for &n in &alive {
                    self.claim_all(n);
                }
                CLAIM_PERIOD
            }
            FaultKind::Replay { period } => {
                // The release every node started with: current until a newer one is out.
                for &n in &alive {
                    self.attack(n, 0);
                }
                period
            }
            FaultKind::ForgeFlood { rate } => {
                if let Some(forged) = self.gossip.find(GossipKind::Attack(Injection::Forged)) {
                    for &n in &alive {
                        self.attack(n, forged);
                    }
                }
                ((1e9 / rate) as u64).max(1)
            }
            _ => return,
        };
        self.at(period, Ev::Repeat { idx });
    }

    /// What a claiming attacker says: it holds every block of the first release.
    fn claim(&self, reply: bool) -> Message {
        Message::Hello {
            release: release_tag(&self.rel.root),
            bits: self.claim_bits.clone(),
            fetching: Bitfield::new(),
            reply,
            rack: None,
        }
    }

    /// Attacker `n` claims every block to every node running bootswarm.
    fn claim_all(&mut self, n: u32) {
        for o in 0..self.sc.nodes {
            let host = &self.hosts[o as usize];
            if o != n && host.alive && host.role == Role::Node {
                let msg = self.claim(true);
                self.send(n, o, msg);
            }
        }
    }

    /// A control message reaches an attacker: a claiming one answers a `Hello` with its claim;
    /// anything else goes unanswered.
    pub(super) fn attacker_heard(&mut self, from: u32, to: u32, msg: Message) {
        let host = &self.hosts[to as usize];
        let asked = matches!(msg, Message::Hello { reply: true, .. });
        if host.claiming && asked && self.reachable(from, to) {
            let claim = self.claim(false);
            self.send(to, from, claim);
        }
    }

    /// A block request reaches an attacker: a silent one never answers, a withholding one
    /// answers nothing, `Busy` or `Other` (a third of the requests each), a trickling one
    /// serves the block at its upload rate.
    pub(super) fn attacker_request(&mut self, h: u32, g: u32, r: &Req) {
        let n = r.src;
        let role = self.hosts[n as usize].role;
        let error = match role {
            Role::Claim { trickle: true } => {
                self.reqs[h as usize].stage = Stage::OnFlow;
                let len = self.rel.blocks[r.block as usize].len as u64;
                let tag = (g as u64) << 32 | h as u64;
                self.net
                    .enqueue(SimTime(self.now), n, r.requester, Chunk { len, tag });
                return;
            }
            Role::Claim { trickle: false } => match mix(&[self.seed, h as u64, g as u64]) % 3 {
                0 => None,
                1 => Some(FetchError::Busy),
                _ => Some(FetchError::Other),
            },
            Role::Silent | Role::Node => None,
        };
        match error {
            None => self.reqs[h as usize].stage = Stage::Lost,
            Some(error) => {
                self.reqs[h as usize].stage = Stage::Returning;
                let d = self.ctl_delay(n, r.requester, SMALL_BYTES);
                self.at(d, Ev::Reply { h, g, error });
            }
        }
    }
}
