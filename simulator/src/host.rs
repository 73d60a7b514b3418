//! The world: drives one real [`Agent`] per node over the simulated network.
//!
//! Control messages get latency plus serialisation on the sender's NIC (FIFO per sender, so
//! per-link order is kept). Blocks move on connection flows ([`FlowNet`]); a block request is
//! a control message to the server, whose agent answers `Serve` (the chunk joins the
//! connection's FIFO) or `Refuse`. Faults act on hosts, connections and the hub.
//!
//! With `[host]`, every transfer into a node also crosses the shared host CPU, and a booting
//! node that holds every block runs an install job on that CPU before it counts as booted.

use crate::faults::{Roles, select};
use crate::flow::{Cancelled, Chunk, FlowNet};
use crate::gossip::{Gossip, Kind as GossipKind, VALIDATE_NANOS};
use crate::queue::EventQueue;
use crate::release::{SimPayload, SimRelease};
use crate::rng::{Rng, mix, purpose};
use crate::scenario::{EventKind, FaultKind, Injection, RackLabels, Scenario};
use crate::time::{SimTime, transfer_nanos};
use crate::topology::{HUB, INSTALL, Topology};
use crate::trace::{Kind, Trace};
use bootswarm_protocol::agent::{
    Agent, AgentConfig, Bitfield, Event, FetchError, HubMode, Input, Message, NodeId, Output, Rack,
    RequestId, ServeId, Source, Time,
};
use bootswarm_protocol::block::Cid;
use bootswarm_protocol::follower::{self, Follower, Restored, Verdict};
use std::collections::BTreeMap;

mod adversaries;
mod lifecycle;
mod releases;
mod requests;

/// Bytes charged for a block request (CID, ids, framing).
pub const REQUEST_BYTES: u64 = 64;
/// Bytes charged for a refusal or a cancellation.
pub const SMALL_BYTES: u64 = 16;
/// Framing bytes added to each control message.
pub const FRAME_BYTES: u64 = 8;
/// Events at one instant after which the run is declared a livelock.
const LIVELOCK: u64 = 5_000_000;
/// The chunk tag of an install job (no request handle has it).
const INSTALL_TAG: u64 = u64::MAX;

#[derive(Debug)]
enum Ev {
    Wake {
        node: u32,
        generation: u32,
    },
    Msg {
        from: u32,
        to: u32,
        epoch: u32,
        msg: Message,
    },
    ReqArrive {
        h: u32,
        g: u32,
    },
    Reply {
        h: u32,
        g: u32,
        error: FetchError,
    },
    Deliver {
        h: u32,
        g: u32,
    },
    CancelArrive {
        h: u32,
        g: u32,
    },
    ServeDone {
        node: u32,
        epoch: u32,
        id: ServeId,
    },
    Milestone {
        flow: u32,
        generation: u32,
    },
    Start {
        batch: usize,
    },
    FaultStart {
        idx: usize,
    },
    FaultEnd {
        idx: usize,
    },
    /// The scenario's new release appears on the hub and is announced to some nodes.
    Publish,
    /// A node's release follower asked to be woken.
    FollowerWake {
        node: u32,
        generation: u32,
    },
    /// The hub's answer to a node's release poll reaches it.
    PollAnswer {
        node: u32,
        epoch: u32,
        ok: bool,
    },
    /// A gossiped release reaches a node.
    Gossip {
        from: u32,
        to: u32,
        flood: u32,
        idx: usize,
    },
    /// A fault that acts periodically acts again.
    Repeat {
        idx: usize,
    },
}

/// Members and the racks they say they are in, as a driver tells its agent.
type RackClaims = Vec<(NodeId, Option<Rack>)>;

/// What runs on a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// bootswarm: the agent and the follower.
    Node,
    /// A silent attacker: it never answers (its sybil identities neither).
    Silent,
    /// An attacker that claims every block and withholds it, or trickles it out.
    Claim { trickle: bool },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    ToServer,
    AtServer,
    OnFlow,
    Returning,
    Lost,
}

#[derive(Debug, Clone)]
struct Req {
    g: u32,
    live: bool,
    requester: u32,
    rid: RequestId,
    src: u32,
    block: u32,
    ep_req: u32,
    ep_srv: u32,
    stage: Stage,
    cancelled: bool,
    corrupt: bool,
}

#[derive(Debug)]
struct Host {
    /// Boxed: the agent is over a kilobyte, and the fields below are read for every message.
    agent: Option<Box<Agent<SimPayload>>>,
    alive: bool,
    epoch: u32,
    incarnation: u64,
    started: Option<EventKind>,
    held: Vec<u64>,
    timer: Option<u64>,
    timer_gen: u32,
    reqs: BTreeMap<u64, (u32, u32)>,
    ctl_busy: u64,
    loss_rng: Rng,
    group: u32,
    corrupt: bool,
    loss: f64,
    installing: bool,
    /// The node's release follower (while it runs).
    follower: Option<Follower>,
    ftimer: Option<u64>,
    ftimer_gen: u32,
    /// What survives a crash: the high-water mark, the saved release, the installed version.
    durable: Restored,
    /// The version whose tree the install job is writing.
    install_seq: Option<u64>,
    /// This incarnation has polled the hub (its first poll is the start-up poll).
    polled: bool,
    /// The follower is being started: it has no gossip links yet.
    starting: bool,
    role: Role,
    /// Not honest: an attacker, or a node with a fault of an adversary kind.
    adversary: bool,
    /// Its hub fetches and polls fail (`hub_unreachable`).
    hub_unreachable: bool,
    /// A claiming attacker whose fault has started.
    claiming: bool,
    /// Member identities beyond its own (a sybil attacker's), as node ids.
    extra_ids: Vec<u64>,
}

/// Per-run results of the world.
#[derive(Debug, Clone, Default)]
pub struct WorldStats {
    /// First boot per node (ns): the agent's `Booted`, or with `[host]` the end of the
    /// install job that follows it.
    pub booted_at: Vec<Option<u64>>,
    /// First time each node held every block, the agent's first `Booted` (ns).
    pub held_at: Vec<Option<u64>>,
    /// First `Stalled` time per node (ns).
    pub first_stall: Vec<Option<u64>>,
    /// Stall reasons and how often each was reported.
    pub stall_reasons: BTreeMap<String, u64>,
    /// `Failed` events and their messages.
    pub failures: BTreeMap<String, u64>,
    /// Bytes the hub sent.
    pub hub_egress: u64,
    /// Bytes the hub sent to nodes that serve corrupt data (banned nodes fall back to the hub)
    /// and to adversaries.
    pub hub_egress_to_corrupt: u64,
    /// Bytes moved on flows (peers and hub).
    pub data_bytes: u64,
    /// Bytes of the blocks nodes came to hold that they did not hold before (what they needed).
    pub needed_bytes: u64,
    /// Bytes that entered a rack from outside it (another rack or the hub); 0 when flat.
    pub inter_rack_bytes: u64,
    /// Control bytes (messages, requests, refusals, cancellations).
    pub control_bytes: u64,
    /// Corrupt blocks the agents stored.
    pub corrupt_accepted: u64,
    /// Blocks the agents rejected.
    pub corrupt_rejected: u64,
    /// Identities banned by at least one node (indexed by node id; sybil identities follow
    /// the nodes).
    pub banned: Vec<bool>,
    /// Identities penalised by at least one node.
    pub penalised: Vec<bool>,
    /// The host of each identity: a node's own id is its index; sybil identities follow.
    pub identity_host: Vec<u32>,
    /// Ban events.
    pub ban_events: u64,
    /// `(time, cumulative hub bytes)` at every hub chunk completion.
    pub hub_samples: Vec<(u64, u64)>,
    /// Trace hash.
    pub trace_hash: String,
    /// Events dispatched.
    pub events: u64,
    /// Flow re-solves.
    pub solves: u64,
    /// Simulated end time (ns).
    pub end: u64,
    /// Time each node first heard of the published release (ns).
    pub heard_at: Vec<Option<u64>>,
    /// Time each node booted the published release (ns).
    pub upgraded_at: Vec<Option<u64>>,
    /// Hub bytes sent before the release was published.
    pub hub_egress_at_publish: u64,
    /// Periodic release polls of the hub by the whole farm (answered or failed).
    pub hub_polls: u64,
    /// Start-up polls: each node's first, when it starts.
    pub hub_startup_polls: u64,
    /// Releases accepted and installed that were neither the first nor the published one.
    pub bad_installs: u64,
    /// Nodes whose gossip some node rejected (penalised).
    pub gossip_penalised: Vec<bool>,
    /// Nodes that resigned their ownership (their hub fetches failed while others' did not).
    pub resigned: Vec<bool>,
    /// Nodes whose own hub route failed a block fetch (`hub_unreachable`): what their peers
    /// can learn of it.
    pub route_failed: Vec<bool>,
    /// Why the run stopped early, if it did not finish.
    pub aborted: Option<String>,
}

/// One simulation run of a scenario in one hub mode.
#[derive(Debug)]
pub struct World<'a> {
    sc: &'a Scenario,
    rel: &'a SimRelease,
    roles: &'a Roles,
    mode: HubMode,
    seed: u64,
    net: FlowNet,
    q: EventQueue<Ev>,
    now: u64,
    hosts: Vec<Host>,
    reqs: Vec<Req>,
    free: Vec<u32>,
    hub_up: bool,
    batches: Vec<Vec<(u32, EventKind)>>,
    last_solve: Option<u64>,
    flow_out: Vec<(u32, u32, SimTime)>,
    trace: Trace,
    stats: WorldStats,
    pending_boots: usize,
    pending_starts: usize,
    gossip: Gossip,
    /// Announcement the hub serves for the channel (0: the first release; 1: the published).
    hub_latest: usize,
    /// The published release has not been installed everywhere yet.
    pending_upgrades: Option<usize>,
    /// The verdict of the follower that judged a release last.
    verdict: Option<Verdict>,
    /// What withholding and trickling attackers claim: every block of the first release.
    claim_bits: Bitfield,
}

/// The queue channel of a flow's next milestone (each push follows a generation bump).
fn milestone_chan(flow: u32) -> u32 {
    flow.saturating_mul(2)
}

/// The queue channel of a node's timer (each push follows a `timer_gen` bump).
fn timer_chan(node: u32) -> u32 {
    node.saturating_mul(2).saturating_add(1)
}

fn sid(h: u32, g: u32) -> ServeId {
    ServeId((g as u64) << 32 | h as u64)
}

impl<'a> World<'a> {
    /// A world for `sc` with `roles` resolved for `seed`.
    pub fn new(
        sc: &'a Scenario,
        rel: &'a SimRelease,
        roles: &'a Roles,
        seed: u64,
        mode: HubMode,
    ) -> World<'a> {
        let mut topo = Topology::new(sc.nodes, sc.nic_up, sc.racks, sc.rack_uplink, sc.hub_link);
        for n in 0..sc.nodes {
            let r = topo.down(n) as usize;
            topo.caps[r] = sc.nic_down;
        }
        topo.lan_latency = sc.lan_latency;
        topo.rack_latency = sc.rack_latency;
        topo.hub_latency = sc.hub_latency;
        if let Some(h) = &sc.host {
            topo = topo.with_host_cpu(h.capacity());
        }
        let n = sc.nodes as usize;
        let words = rel.blocks.len().div_ceil(64);
        let hosts = (0..sc.nodes)
            .map(|i| Host {
                agent: None,
                alive: false,
                epoch: 0,
                incarnation: 0,
                started: None,
                held: vec![0; words],
                timer: None,
                timer_gen: 0,
                reqs: BTreeMap::new(),
                ctl_busy: 0,
                loss_rng: crate::rng::stream(seed, i as u64, purpose::LOSS),
                group: 0,
                corrupt: false,
                loss: 0.0,
                installing: false,
                follower: None,
                ftimer: None,
                ftimer_gen: 0,
                durable: Restored::default(),
                install_seq: None,
                polled: false,
                starting: false,
                role: Role::Node,
                adversary: false,
                hub_unreachable: false,
                claiming: false,
                extra_ids: Vec::new(),
            })
            .collect::<Vec<_>>();
        let mut hosts = hosts;
        let identity_host = adversaries::assign(sc, roles, &mut hosts);
        let mut q = EventQueue::new();
        let mut batches: Vec<Vec<(u32, EventKind)>> = Vec::new();
        let mut last: Option<u64> = None;
        for &(node, at, kind) in &roles.starts {
            if last != Some(at) {
                batches.push(Vec::new());
                q.push(
                    SimTime(at),
                    Ev::Start {
                        batch: batches.len() - 1,
                    },
                );
                last = Some(at);
            }
            if let Some(b) = batches.last_mut() {
                b.push((node, kind));
            }
        }
        for (idx, f) in sc.faults.iter().enumerate() {
            q.push(SimTime(f.at), Ev::FaultStart { idx });
            if let Some(u) = f.until {
                q.push(SimTime(u), Ev::FaultEnd { idx });
            }
        }
        let injections: Vec<Injection> = sc
            .faults
            .iter()
            .filter_map(|f| match f.kind {
                FaultKind::Inject(i) => Some(i),
                FaultKind::ForgeFlood { .. } => Some(Injection::Forged),
                _ => None,
            })
            .collect();
        let gossip = Gossip::new(seed, sc.nodes, rel, &injections);
        if let Some(p) = &sc.publish {
            q.push(SimTime(p.at), Ev::Publish);
        }
        let stats = WorldStats {
            heard_at: vec![None; n],
            upgraded_at: vec![None; n],
            gossip_penalised: vec![false; n],
            resigned: vec![false; n],
            route_failed: vec![false; n],
            booted_at: vec![None; n],
            held_at: vec![None; n],
            first_stall: vec![None; n],
            banned: vec![false; identity_host.len()],
            penalised: vec![false; identity_host.len()],
            identity_host,
            ..WorldStats::default()
        };
        let pending_boots = (0..n)
            .filter(|&i| roles.booting[i] && !hosts[i].adversary)
            .count();
        let mut claim_bits = Bitfield::new();
        for b in 0..rel.v1_blocks as u32 {
            claim_bits.set(b);
        }
        World {
            sc,
            rel,
            roles,
            mode,
            seed,
            net: FlowNet::new(topo),
            q,
            now: 0,
            hosts,
            reqs: Vec::new(),
            free: Vec::new(),
            hub_up: true,
            pending_starts: roles.starts.len(),
            batches,
            last_solve: None,
            flow_out: Vec::new(),
            trace: Trace::new(),
            stats,
            pending_boots,
            gossip,
            hub_latest: 0,
            pending_upgrades: sc.publish.as_ref().map(|_| usize::MAX),
            verdict: None,
            claim_bits,
        }
    }

    /// Runs until every honest booting node has booted, nothing is left to happen, or `horizon`.
    pub fn run(mut self, horizon: u64) -> WorldStats {
        let quantum = self.sc.solve_quantum;
        let mut same_instant = 0u64;
        loop {
            let upgrading = self.pending_upgrades.is_some_and(|p| p > 0);
            if self.pending_boots == 0
                && self.pending_starts == 0
                && !upgrading
                && self.sc.poll_interval.is_none()
            {
                break;
            }
            let next = self.q.peek_time().map(|t| t.0);
            if self.net.is_dirty() {
                let at = self
                    .last_solve
                    .map_or(self.now, |l| (l + quantum).max(self.now));
                if next.is_none_or(|t| t > at) {
                    if at > horizon {
                        break;
                    }
                    self.now = at;
                    self.solve();
                    continue;
                }
            }
            let Some((t, ev)) = self.q.pop() else { break };
            if t.0 > horizon {
                break;
            }
            if t.0 == self.now {
                same_instant += 1;
                if same_instant > LIVELOCK {
                    self.stats.aborted = Some(format!(
                        "more than {LIVELOCK} events at {} without time advancing (a livelock)",
                        SimTime(self.now)
                    ));
                    break;
                }
            } else {
                same_instant = 0;
            }
            self.now = t.0;
            self.dispatch(ev);
        }
        self.stats.trace_hash = self.trace.hex();
        self.stats.events = self.trace.events();
        self.stats.solves = self.net.solves;
        self.stats.end = self.now;
        self.stats
    }

    fn solve(&mut self) {
        self.last_solve = Some(self.now);
        let mut out = std::mem::take(&mut self.flow_out);
        out.clear();
        self.net.solve(SimTime(self.now), &mut out);
        self.trace
            .record(self.now, u32::MAX, Kind::Solve, out.len() as u64);
        for &(flow, generation, at) in &out {
            self.q
                .push_on(at, milestone_chan(flow), Ev::Milestone { flow, generation });
        }
        self.flow_out = out;
    }

    fn at(&mut self, delay: u64, ev: Ev) {
        self.q.push(SimTime(self.now.saturating_add(delay)), ev);
    }

    fn holds(&self, n: u32, b: u32) -> bool {
        self.hosts[n as usize].held[b as usize / 64] >> (b % 64) & 1 == 1
    }

    fn hold(&mut self, n: u32, b: u32) {
        if !self.holds(n, b) {
            self.stats.needed_bytes += self.rel.blocks[b as usize].len as u64;
        }
        self.hosts[n as usize].held[b as usize / 64] |= 1 << (b % 64);
    }

    fn reachable(&self, a: u32, b: u32) -> bool {
        let (ha, hb) = (&self.hosts[a as usize], &self.hosts[b as usize]);
        hb.alive && ha.group == hb.group
    }

    fn ctl_delay(&mut self, from: u32, to: u32, bytes: u64) -> u64 {
        let up = self.net.cap(self.net.topology().up(from));
        let host = &mut self.hosts[from as usize];
        let depart = host.ctl_busy.max(self.now) + transfer_nanos(bytes, up);
        host.ctl_busy = depart;
        self.stats.control_bytes += bytes;
        depart - self.now + self.net.topology().latency(from, to)
    }

    fn lost(&mut self, from: u32, to: u32) -> bool {
        let p = self.hosts[from as usize]
            .loss
            .max(self.hosts[to as usize].loss);
        p > 0.0 && self.hosts[from as usize].loss_rng.chance(p)
    }

    // ----- dispatch -----

    fn dispatch(&mut self, ev: Ev) {
        match ev {
            Ev::Wake { node, generation } => {
                let host = &self.hosts[node as usize];
                if host.alive && host.timer_gen == generation {
                    self.trace
                        .record(self.now, node, Kind::Wake, generation as u64);
                    self.hosts[node as usize].timer = None;
                    self.input(node, Input::Timeout);
                }
            }
            Ev::Msg {
                from,
                to,
                epoch,
                msg,
            } => {
                if self.hosts[to as usize].role != Role::Node {
                    self.attacker_heard(from, to, msg);
                } else if self.hosts[to as usize].epoch == epoch && self.reachable(from, to) {
                    self.trace.record(
                        self.now,
                        to,
                        Kind::Message,
                        (from as u64) << 32 | msg.encoded_len() as u64,
                    );
                    self.input(
                        to,
                        Input::Message {
                            from: NodeId(from as u64),
                            msg,
                        },
                    );
                }
            }
            Ev::ReqArrive { h, g } => self.req_arrive(h, g),
            ev @ (Ev::Reply { .. } | Ev::Deliver { .. } | Ev::CancelArrive { .. }) => {
                self.dispatch_request(ev);
            }
            Ev::ServeDone { node, epoch, id } => {
                if self.hosts[node as usize].epoch == epoch && self.hosts[node as usize].alive {
                    self.trace.record(self.now, node, Kind::ServeDone, id.0);
                    self.input(node, Input::ServeDone { id });
                }
            }
            Ev::Milestone { flow, generation } => self.milestone(flow, generation),
            Ev::Start { batch } => self.start_batch(batch),
            Ev::FaultStart { idx } => self.fault(idx, true),
            Ev::FaultEnd { idx } => self.fault(idx, false),
            Ev::Publish => self.publish(),
            Ev::FollowerWake { node, generation } => {
                let host = &self.hosts[node as usize];
                if host.alive && host.ftimer_gen == generation {
                    self.hosts[node as usize].ftimer = None;
                    self.tell(node, follower::Input::Timeout);
                }
            }
            Ev::PollAnswer { node, epoch, ok } => self.poll_answer(node, epoch, ok),
            Ev::Gossip {
                from,
                to,
                flood,
                idx,
            } => self.hear(from, to, flood, idx),
            Ev::Repeat { idx } => self.repeat(idx),
        }
    }

    fn count_data(&mut self, src: u32, dst: u32, bytes: u64) {
        self.stats.data_bytes += bytes;
        let topo = self.net.topology();
        if topo.racks > 0 && (src == HUB || topo.rack(src) != topo.rack(dst)) {
            self.stats.inter_rack_bytes += bytes;
        }
        if src == HUB {
            self.stats.hub_egress += bytes;
            if self
                .hosts
                .get(dst as usize)
                .is_some_and(|h| h.corrupt || h.adversary)
            {
                self.stats.hub_egress_to_corrupt += bytes;
            }
            self.stats
                .hub_samples
                .push((self.now, self.stats.hub_egress));
        }
    }

    fn serve_done(&mut self, node: u32, epoch: u32, id: ServeId) {
        self.at(0, Ev::ServeDone { node, epoch, id });
    }

    // ----- agents -----

    fn input(&mut self, n: u32, input: Input<SimPayload>) {
        let now = Time::from_nanos(self.now);
        let Some(agent) = self.hosts[n as usize].agent.as_mut() else {
            return;
        };
        agent.handle(now, input);
        self.drain(n);
    }

    fn drain(&mut self, n: u32) {
        loop {
            let Some(agent) = self.hosts[n as usize].agent.as_mut() else {
                return;
            };
            let Some(out) = agent.poll_output() else {
                break;
            };
            self.output(n, out);
        }
        let t = self.hosts[n as usize]
            .agent
            .as_ref()
            .and_then(|a| a.poll_timeout())
            .map(|t| t.as_nanos());
        let host = &mut self.hosts[n as usize];
        if t != host.timer {
            host.timer = t;
            host.timer_gen = host.timer_gen.wrapping_add(1);
            if let Some(t) = t {
                let generation = host.timer_gen;
                self.q.push_on(
                    SimTime(t.max(self.now)),
                    timer_chan(n),
                    Ev::Wake {
                        node: n,
                        generation,
                    },
                );
            }
        }
    }

    fn event(&mut self, n: u32, e: Event) {
        let i = n as usize;
        match e {
            Event::Booted { root, .. } => {
                if self.stats.booted_at[i].is_none() {
                    self.stats.held_at[i].get_or_insert(self.now);
                }
                // The simulated store writes at once: the follower hears of it now.
                self.tell(n, follower::Input::Booted { root });
            }
            Event::Rejected { .. } => self.stats.corrupt_rejected += 1,
            Event::PeerPenalised { peer, .. } => {
                if let Some(p) = self.stats.penalised.get_mut(peer.0 as usize) {
                    *p = true;
                }
            }
            Event::PeerBanned { peer } => {
                self.stats.ban_events += 1;
                if let Some(p) = self.stats.banned.get_mut(peer.0 as usize) {
                    *p = true;
                }
            }
            Event::Resigned => self.stats.resigned[i] = true,
            Event::Stalled { reason, .. } => {
                self.stats.first_stall[i].get_or_insert(self.now);
                *self
                    .stats
                    .stall_reasons
                    .entry(reason.to_string())
                    .or_default() += 1;
            }
            Event::Failed { error } => {
                *self.stats.failures.entry(error.to_string()).or_default() += 1;
            }
        }
    }

    fn booted(&mut self, i: usize) {
        if self.stats.booted_at[i].is_none() {
            self.stats.booted_at[i] = Some(self.now);
            if self.roles.booting[i] && !self.hosts[i].corrupt && !self.hosts[i].adversary {
                self.pending_boots = self.pending_boots.saturating_sub(1);
            }
        }
    }

    fn agent_config(&self, n: u32) -> AgentConfig {
        let h = &self.hosts[n as usize];
        let mut cfg = AgentConfig {
            id: NodeId(n as u64),
            seed: mix(&[self.seed, n as u64, purpose::AGENT, h.incarnation]),
            hub: self.mode,
            ..AgentConfig::default()
        };
        if self.sc.agent_neighbours > 0 {
            cfg.neighbours = self.sc.agent_neighbours;
        }
        if self.sc.agent_hub_concurrency > 0 {
            cfg.hub_concurrency = self.sc.agent_hub_concurrency;
        }
        if let Some(w) = self.sc.agent_hub_window {
            cfg.hub_window = w;
        }
        cfg.rack = self.rack_label(n);
        cfg
    }

    /// The rack node `n` is configured with: its topology rack when the scenario shows the
    /// labels; none for attackers, which say nothing of where they are.
    fn rack_label(&self, n: u32) -> Option<Rack> {
        if self.sc.rack_labels != RackLabels::Shown || self.hosts[n as usize].role != Role::Node {
            return None;
        }
        let k = self.net.topology().rack(n)?;
        Rack::from_label(&format!("rack-{k}"))
    }

    /// What node `o`'s driver tells its agent of the racks of `n`'s identities (nothing when
    /// the nodes are not told their racks).
    fn rack_claims(&self, nodes: impl Iterator<Item = u32>) -> Option<RackClaims> {
        if self.sc.rack_labels != RackLabels::Shown || self.sc.racks == 0 {
            return None;
        }
        let claims = nodes
            .flat_map(|n| {
                let rack = self.rack_label(n);
                self.identities(n).into_iter().map(move |id| (id, rack))
            })
            .collect();
        Some(claims)
    }

    fn peers_mode(&self) -> bool {
        self.mode != HubMode::Only
    }
}
