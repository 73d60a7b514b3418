//! The swarm agent: one sans-IO state machine per node that decides what to fetch, from whom,
//! and what to serve.
//!
//! The driver (the libp2p node or the simulator) feeds it [`Input`]s with the current [`Time`],
//! then drains [`Agent::poll_output`] until it returns `None`, and arms a timer for
//! [`Agent::poll_timeout`]. No decision about the swarm is made outside this module.
//!
//! Scheduling, in short (see ARCHITECTURE.md):
//! - every node of the cohort derives the same block plan from the release's manifests;
//! - the owner of a block (highest rendezvous hash among live members) is the only node that
//!   fetches it from the hub, so each block crosses the WAN once;
//! - a node announces each block to a bounded set of neighbours the moment it verifies (HAVE),
//!   and its whole holdings when a link opens (Hello);
//! - blocks are requested from neighbours by boot tier, rarest first, random among equals,
//!   from the least-loaded holder, with per-peer pipelining and an endgame for the last few;
//! - when nothing progresses for a stall period, the next-ranked owners and then anyone fetch
//!   what has no holder from the hub; hub errors back off with jitter;
//! - a block that fails verification blames the peer that sent it; repeated faults ban it.

mod bitfield;
mod hub;
mod message;
mod neighbours;
mod owners;
mod plan;
mod requests;
mod rng;
mod time;
mod timers;

use std::collections::{BTreeSet, VecDeque};
use std::fmt;
use std::time::Duration;

pub use bitfield::{Bitfield, MAX_BLOCKS};
pub use message::{MAX_HAVE_BLOCKS, MAX_MESSAGE_SIZE, Message, MessageError};
pub use plan::{PlanError, release_tag};
pub use rng::{Rng, mix64};
pub use time::Time;

use crate::block::{BlockError, Cid};
use hub::Hub;
use neighbours::{Change, Neighbours};
use owners::{Owners, Supply};
use plan::{Plan, State};
use requests::{Request, Requests};
use timers::{TimerKind, Timers};

/// A node of the swarm, as the agent knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId(pub u64);

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "node {:016x}", self.0)
    }
}

/// The agent's identifier for one of its fetches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RequestId(pub u64);

/// The driver's identifier for one block request from a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServeId(pub u64);

/// Where a block comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Source {
    /// A peer of the swarm.
    Peer(NodeId),
    /// The hub (the origin).
    Hub,
}

/// A block's bytes as the driver holds them. The node passes real bytes; the simulator passes
/// a synthetic payload for chunks. Whether a block is accepted is decided by the agent.
pub trait Payload: fmt::Debug {
    /// The payload's length in bytes.
    fn len(&self) -> usize;
    /// Whether the payload is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Checks the payload against `cid`.
    fn verify(&self, cid: &Cid) -> Result<(), BlockError>;
    /// The bytes, if the payload has real ones (manifests always must).
    fn bytes(&self) -> Option<&[u8]>;
}

impl Payload for Vec<u8> {
    fn len(&self) -> usize {
        Vec::len(self)
    }

    fn verify(&self, cid: &Cid) -> Result<(), BlockError> {
        crate::block::verify(cid, self)
    }

    fn bytes(&self) -> Option<&[u8]> {
        Some(self)
    }
}

/// How the agent uses the hub.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HubMode {
    /// Peers first; the hub for blocks this node owns and as the fallback.
    Fallback,
    /// Every block from the hub, no peers: the baseline bootswarm is measured against.
    Only,
    /// Never the hub: peers alone.
    Off,
}

/// The agent's settings. `Default` gives values tuned for a LAN farm.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// This node.
    pub id: NodeId,
    /// Seed of every random choice the agent makes.
    pub seed: u64,
    /// How the hub is used.
    pub hub: HubMode,
    /// Fetches from the hub in flight at once.
    pub hub_concurrency: usize,
    /// Requests in flight to one peer.
    pub peer_pipeline: usize,
    /// Requests in flight to peers in total.
    pub max_peer_downloads: usize,
    /// Uploads at once; more requests are refused as busy.
    pub max_serves: usize,
    /// Neighbours this node picks.
    pub neighbours: usize,
    /// Neighbours in total, including those that picked this node.
    pub max_neighbours: usize,
    /// Time without progress after which neighbours are asked again for their holdings and
    /// a stall is reported.
    pub stall_timeout: Duration,
    /// A node whose first cohort member arrived less than this before its boot, and whose
    /// neighbours already hold chunks it lacks, has joined a swarm under way.
    pub join_window: Duration,
    /// How long a node that joined a swarm under way leaves the chunks it ranks first to the
    /// nodes already there (which counted owners without it and may be fetching them).
    pub join_grace: Duration,
    /// Time without progress after which the hub fallback widens to the next-ranked owners.
    /// The agent stretches it to 4 × its slowest hub fetch of the last `escalate_after`, so
    /// a WAN-bound hub (where one block may take seconds) does not look like a dead owner.
    pub escalate_after: Duration,
    /// How long a node waits for its neighbours' holdings before fetching owned blocks.
    pub hello_grace: Duration,
    /// Fixed part of a peer request's deadline.
    pub peer_timeout: Duration,
    /// Throughput below which a peer request times out (bytes per second).
    pub peer_min_rate: u64,
    /// Fixed part of a hub request's deadline.
    pub hub_timeout: Duration,
    /// Throughput below which a hub request times out (bytes per second).
    pub hub_min_rate: u64,
    /// Time without any data on a request after which it is dropped (needs progress reports).
    pub idle_timeout: Duration,
    /// First hub back-off after an error.
    pub hub_backoff: Duration,
    /// Longest hub back-off.
    pub hub_backoff_max: Duration,
    /// How long a busy peer is left alone.
    pub busy_backoff: Duration,
    /// Remaining blocks at or below which requests are duplicated (endgame).
    pub endgame_blocks: usize,
    /// Verification failures after which a peer is banned.
    pub ban_after: u32,
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            id: NodeId(0),
            seed: 0,
            hub: HubMode::Fallback,
            hub_concurrency: 8,
            peer_pipeline: 4,
            max_peer_downloads: 32,
            max_serves: 32,
            neighbours: 8,
            max_neighbours: 32,
            stall_timeout: Duration::from_secs(2),
            escalate_after: Duration::from_secs(10),
            join_window: Duration::from_secs(5),
            join_grace: Duration::from_secs(4),
            hello_grace: Duration::from_millis(50),
            peer_timeout: Duration::from_secs(3),
            peer_min_rate: 1 << 20,
            hub_timeout: Duration::from_secs(30),
            hub_min_rate: 4 << 10,
            idle_timeout: Duration::from_secs(5),
            hub_backoff: Duration::from_secs(1),
            hub_backoff_max: Duration::from_secs(8),
            busy_backoff: Duration::from_millis(20),
            endgame_blocks: 8,
            ban_after: 3,
        }
    }
}

/// Something that happened to the agent.
#[derive(Debug)]
pub enum Input<P> {
    /// Boot (or switch to) the release whose root flist is `root`; the caller has already
    /// accepted the signed release.
    Boot {
        /// The release's root flist.
        root: Cid,
    },
    /// The whole cohort as the driver knows it (replaces the previous view).
    Members(Vec<NodeId>),
    /// A node joined the cohort.
    MemberUp(NodeId),
    /// A node left the cohort (crashed, disconnected, partitioned away).
    MemberDown(NodeId),
    /// A control message from a peer.
    Message {
        /// The sender.
        from: NodeId,
        /// The message.
        msg: Message,
    },
    /// A peer asks for a block.
    BlockRequest {
        /// The asking peer.
        from: NodeId,
        /// The driver's id for the request.
        id: ServeId,
        /// The block.
        cid: Cid,
    },
    /// An upload started by [`Output::Serve`] has finished or was aborted.
    ServeDone {
        /// The request it answered.
        id: ServeId,
    },
    /// The data of a fetch arrived.
    Block {
        /// The fetch.
        req: RequestId,
        /// The data.
        payload: P,
    },
    /// Some bytes of a fetch arrived (optional; feeds the idle timeout).
    FetchProgress {
        /// The fetch.
        req: RequestId,
    },
    /// A fetch failed.
    FetchFailed {
        /// The fetch.
        req: RequestId,
        /// Why.
        error: FetchError,
    },
    /// The store's answer to [`Output::Lookup`].
    Local {
        /// The block looked up.
        cid: Cid,
        /// The stored copy, if any (the store verified it when it was put).
        block: Option<P>,
    },
    /// The time from [`Agent::poll_timeout`] has come.
    Timeout,
}

/// Why a fetch failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FetchError {
    /// The server is at its upload limit.
    Busy,
    /// The server does not have the block.
    NotFound,
    /// The hub could not be reached or answered with an error.
    HubUnavailable,
    /// The connection to the peer was lost.
    Disconnected,
    /// Any other failure.
    Other,
}

/// Something the driver must do.
#[derive(Debug)]
pub enum Output<P> {
    /// Send a control message.
    Send {
        /// The peer.
        to: NodeId,
        /// The message.
        msg: Message,
    },
    /// Fetch a block; answer with [`Input::Block`] or [`Input::FetchFailed`].
    Fetch {
        /// The agent's id for this fetch.
        req: RequestId,
        /// From whom.
        from: Source,
        /// The block.
        cid: Cid,
        /// Its length (exact for chunks, a cap for manifests).
        len: u32,
    },
    /// Abandon a fetch; any later answer to it is ignored.
    Cancel {
        /// The fetch.
        req: RequestId,
    },
    /// Answer a peer's request with the stored copy of `cid`, then report [`Input::ServeDone`].
    Serve {
        /// The request.
        id: ServeId,
        /// The block.
        cid: Cid,
    },
    /// Answer a peer's request with an error.
    Refuse {
        /// The request.
        id: ServeId,
        /// Why.
        error: FetchError,
    },
    /// Ask the store for a block; answer with [`Input::Local`].
    Lookup {
        /// The block.
        cid: Cid,
    },
    /// Persist a verified block.
    Store {
        /// The block.
        cid: Cid,
        /// Its verified data.
        payload: P,
    },
    /// Tell the operator or the harness.
    Event(Event),
}

/// Something worth reporting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Every block of the release is held and verified.
    Booted {
        /// The release's root.
        root: Cid,
        /// Blocks in the release.
        blocks: usize,
        /// Bytes in the release.
        bytes: u64,
    },
    /// A block failed verification and was thrown away.
    Rejected {
        /// Who sent it.
        from: Source,
        /// The block.
        cid: Cid,
    },
    /// A peer misbehaved (corrupt data or a request that ran out of time).
    PeerPenalised {
        /// The peer.
        peer: NodeId,
        /// Its verification failures so far.
        faults: u32,
    },
    /// A peer is banned: no more requests to it or from it.
    PeerBanned {
        /// The peer.
        peer: NodeId,
    },
    /// Nothing progressed for a stall period.
    Stalled {
        /// Why.
        reason: StallReason,
        /// Blocks still missing.
        missing: usize,
    },
    /// The release cannot be booted.
    Failed {
        /// Why.
        error: PlanError,
    },
}

/// Why a boot is not progressing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StallReason {
    /// The hub fails and no peer holds the missing blocks.
    HubUnavailable,
    /// The hub is not used and no peer holds the missing blocks.
    NoHolder,
    /// Waiting for the owners of the missing blocks to fetch them.
    WaitingForOwners,
}

impl fmt::Display for StallReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StallReason::HubUnavailable => {
                "the hub is unreachable and no peer holds the missing blocks; retrying with back-off"
            }
            StallReason::NoHolder => "no peer holds the missing blocks and the hub is not used",
            StallReason::WaitingForOwners => {
                "waiting for the owners of the missing blocks to fetch them from the hub"
            }
        })
    }
}

/// How far the boot is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    /// Blocks held.
    pub have_blocks: usize,
    /// Blocks known so far (all of them once every manifest is held).
    pub total_blocks: usize,
    /// Bytes held.
    pub have_bytes: u64,
    /// Bytes known so far.
    pub total_bytes: u64,
    /// Whether every manifest is known (so the totals are final).
    pub complete: bool,
}

/// Counters of what the agent did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AgentStats {
    /// Verified bytes received from peers.
    pub bytes_from_peers: u64,
    /// Verified bytes received from the hub.
    pub bytes_from_hub: u64,
    /// Blocks that failed verification.
    pub blocks_rejected: u64,
    /// Verified blocks that arrived after another copy (endgame duplicates).
    pub duplicate_blocks: u64,
    /// Fetches that ran out of time.
    pub timeouts: u64,
    /// Uploads started.
    pub serves: u64,
}

/// The swarm agent of one node. See the [module documentation](self).
#[derive(Debug)]
pub struct Agent<P> {
    cfg: AgentConfig,
    rng: Rng,
    now: Time,
    plan: Option<Plan>,
    owners: Owners,
    neighbours: Neighbours,
    requests: Requests,
    serving: BTreeSet<ServeId>,
    hub: Hub,
    timers: Timers,
    booted: bool,
    stats: AgentStats,
    out: VecDeque<Output<P>>,
}

impl<P: Payload> Agent<P> {
    /// A new agent with no release and no peers.
    pub fn new(cfg: AgentConfig) -> Self {
        Agent {
            rng: Rng::new(mix64(cfg.seed ^ mix64(cfg.id.0))),
            hub: Hub::new(&cfg),
            owners: Owners::new(&cfg),
            neighbours: Neighbours::new(&cfg),
            requests: Requests::new(&cfg),
            cfg,
            now: Time::ZERO,
            plan: None,
            serving: BTreeSet::new(),
            timers: Timers::default(),
            booted: false,
            stats: AgentStats::default(),
            out: VecDeque::new(),
        }
    }

    /// Feeds one input. Drain [`poll_output`](Self::poll_output) afterwards.
    pub fn handle(&mut self, now: Time, input: Input<P>) {
        self.now = self.now.max(now);
        match input {
            Input::Boot { root } => self.on_boot(root),
            Input::Members(list) => self.on_members(list),
            Input::MemberUp(id) => self.on_member_up(id),
            Input::MemberDown(id) => self.on_member_down(id),
            Input::Message { from, msg } => self.on_message(from, msg),
            Input::BlockRequest { from, id, cid } => self.on_block_request(from, id, cid),
            Input::ServeDone { id } => {
                self.serving.remove(&id);
            }
            Input::Block { req, payload } => self.on_block(req, payload),
            Input::FetchProgress { req } => self.on_progress(req),
            Input::FetchFailed { req, error } => self.on_fetch_failed(req, error),
            Input::Local { cid, block } => self.on_local(cid, block),
            Input::Timeout => {}
        }
        self.on_timers();
        self.decide_joiner();
        self.schedule();
    }

    /// The next thing to do, if any.
    pub fn poll_output(&mut self) -> Option<Output<P>> {
        self.out.pop_front()
    }

    /// When the agent next needs [`Input::Timeout`].
    pub fn poll_timeout(&self) -> Option<Time> {
        self.timers.next()
    }

    /// Whether every block of the current release is held.
    pub fn is_booted(&self) -> bool {
        self.booted
    }

    /// How far the current boot is.
    pub fn progress(&self) -> Progress {
        match &self.plan {
            None => Progress::default(),
            Some(p) => Progress {
                have_blocks: p.held_count as usize,
                total_blocks: p.blocks.len(),
                have_bytes: p.held_bytes,
                total_bytes: p.total_bytes(),
                complete: p.complete,
            },
        }
    }

    /// What the agent has done so far.
    pub fn stats(&self) -> AgentStats {
        self.stats
    }

    /// The current neighbours.
    pub fn neighbours(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.neighbours.ids()
    }

    /// Whether `peer` is banned.
    pub fn is_banned(&self, peer: NodeId) -> bool {
        self.neighbours.is_banned(peer)
    }

    // ----- inputs -----

    fn on_boot(&mut self, root: Cid) {
        if self.plan.as_ref().is_some_and(|p| p.root == root) {
            return;
        }
        for req in self.requests.ids() {
            self.cancel(req);
        }
        self.requests.restart();
        self.neighbours.restart();
        let plan = Plan::new(root);
        self.plan = Some(plan);
        self.owners
            .start_boot(self.neighbours.members(), self.now, &mut self.timers);
        self.booted = false;
        self.hub.restart();
        let grace =
            (!self.neighbours.members().is_empty()).then(|| self.now + self.cfg.hello_grace);
        self.timers.set(TimerKind::HelloGrace, grace);
        self.touch_progress();
        self.timers
            .arm(TimerKind::StallTick, self.now + self.cfg.stall_timeout);
        self.rank_blocks(0..1);
        self.out.push_back(Output::Lookup { cid: root });
        self.hello_all();
        self.ensure_neighbours();
    }

    fn on_members(&mut self, list: Vec<NodeId>) {
        let gone = self.neighbours.set_members(list);
        if !self.neighbours.members().is_empty() {
            self.owners.saw_member(self.now);
        }
        self.owners.keep_members(self.neighbours.members());
        for id in gone {
            self.drop_neighbour(id, false);
        }
        self.rerank_all();
        self.ensure_neighbours();
    }

    fn on_member_up(&mut self, id: NodeId) {
        if !self.neighbours.add_member(id) {
            return;
        }
        self.owners.saw_member(self.now);
        self.ensure_neighbours();
    }

    fn on_member_down(&mut self, id: NodeId) {
        self.neighbours.remove_member(id);
        self.forget_owner(id);
        self.drop_neighbour(id, false);
        self.ensure_neighbours();
    }

    fn on_message(&mut self, from: NodeId, msg: Message) {
        if self.neighbours.is_banned(from) || from == self.cfg.id || self.cfg.hub == HubMode::Only {
            return;
        }
        match msg {
            Message::Hello {
                release,
                bits,
                fetching,
                reply,
            } => {
                if !self.neighbours.accept(from) {
                    self.out.push_back(Output::Send {
                        to: from,
                        msg: Message::Bye,
                    });
                    return;
                }
                if self.plan.as_ref().map(|p| p.tag) == Some(release) {
                    let changes = self.neighbours.add_bits(from, &bits);
                    self.apply(changes);
                    let changes = self.neighbours.add_fetching(from, fetching.iter());
                    self.apply(changes);
                }
                self.neighbours.mark_greeted(from);
                if reply {
                    let hello = self.hello(false);
                    self.out.push_back(Output::Send {
                        to: from,
                        msg: hello,
                    });
                }
                if self.neighbours.all_outbound_greeted()
                    && self.timers.is_armed(TimerKind::HelloGrace)
                {
                    self.end_grace();
                }
            }
            Message::Have { release, blocks } => {
                if self.plan.as_ref().map(|p| p.tag) != Some(release) {
                    return;
                }
                let changes = self.neighbours.have(from, blocks);
                self.apply(changes);
            }
            Message::Fetching { release, blocks } => {
                if self.plan.as_ref().map(|p| p.tag) == Some(release) {
                    let changes = self.neighbours.add_fetching(from, blocks.into_iter());
                    self.apply(changes);
                }
            }
            Message::Bye => {
                self.neighbours.said_bye(from, self.now);
                self.drop_neighbour(from, false);
                self.ensure_neighbours();
            }
        }
    }

    fn on_block_request(&mut self, from: NodeId, id: ServeId, cid: Cid) {
        let held = self
            .plan
            .as_ref()
            .and_then(|p| {
                p.index(&cid)
                    .map(|i| p.blocks[i as usize].state == State::Held)
            })
            .unwrap_or(false);
        let refuse = |error| Output::Refuse { id, error };
        if !held || self.neighbours.is_banned(from) {
            self.out.push_back(refuse(FetchError::NotFound));
        } else if self.serving.len() >= self.cfg.max_serves {
            self.out.push_back(refuse(FetchError::Busy));
        } else {
            self.serving.insert(id);
            self.stats.serves += 1;
            self.out.push_back(Output::Serve { id, cid });
        }
    }

    fn on_block(&mut self, req: RequestId, payload: P) {
        let Some(r) = self.finish_request(req) else {
            return;
        };
        let Some(b) = self.plan.as_ref().map(|p| &p.blocks[r.idx as usize]) else {
            return;
        };
        let (cid, state, manifest, expected) = (b.cid, b.state, b.manifest, b.len as usize);
        if state == State::Held {
            self.stats.duplicate_blocks += 1;
            return;
        }
        let len_ok = if manifest {
            payload.len() <= expected
        } else {
            payload.len() == expected
        };
        let bytes_ok = !manifest || payload.bytes().is_some();
        if !len_ok || !bytes_ok || payload.verify(&cid).is_err() {
            self.reject(r.idx, r.source, cid);
            return;
        }
        let len = payload.len() as u64;
        match r.source {
            Source::Hub => {
                self.stats.bytes_from_hub += len;
                let took = self.now.saturating_duration_since(r.started);
                self.hub.delivered(self.now, took);
            }
            Source::Peer(_) => self.stats.bytes_from_peers += len,
        }
        for other in self.requests.for_block(r.idx) {
            self.cancel(other);
        }
        let manifest_bytes = if manifest {
            payload.bytes().map(<[u8]>::to_vec)
        } else {
            None
        };
        self.out.push_back(Output::Store { cid, payload });
        self.touch_progress();
        self.held(r.idx, len, manifest_bytes.as_deref());
    }

    fn on_progress(&mut self, req: RequestId) {
        if self.requests.progress(req, self.now, &mut self.timers) == Some(Source::Hub) {
            self.hub.bytes_arrived(self.now);
        }
    }

    fn on_fetch_failed(&mut self, req: RequestId, error: FetchError) {
        let Some(r) = self.finish_request(req) else {
            return;
        };
        match r.source {
            Source::Hub => self.hub_failed(),
            Source::Peer(p) => match error {
                FetchError::Busy => {
                    debug_assert!(self.neighbours.contains(p), "requests go to neighbours");
                    let until = self.now + self.cfg.busy_backoff;
                    self.requests.busy(p, until, &mut self.timers);
                }
                FetchError::NotFound => {
                    let change = self.neighbours.not_found(p, r.idx);
                    self.apply(change);
                }
                _ => self.neighbours.exclude(r.idx, p),
            },
        }
    }

    fn on_local(&mut self, cid: Cid, block: Option<P>) {
        let Some(plan) = self.plan.as_mut() else {
            return;
        };
        let Some(idx) = plan.index(&cid) else {
            return;
        };
        let b = &mut plan.blocks[idx as usize];
        if b.state != State::Lookup {
            return;
        }
        b.state = State::Missing;
        let manifest = b.manifest;
        plan.lookups -= 1;
        match block {
            Some(p) if !manifest || p.bytes().is_some() => {
                let bytes = if manifest {
                    p.bytes().map(<[u8]>::to_vec)
                } else {
                    None
                };
                self.held(idx, p.len() as u64, bytes.as_deref());
            }
            _ => {
                plan.to_fetch += 1;
                self.ready_insert(idx);
                self.hub.wake();
            }
        }
    }

    // ----- timers -----

    fn on_timers(&mut self) {
        let mut last = None;
        while let Some(kind) = self.timers.take_due(last, self.now) {
            last = Some(kind);
            self.fire(kind);
        }
        let now = self.now;
        self.neighbours.expire_byes(now);
    }

    fn fire(&mut self, kind: TimerKind) {
        match kind {
            TimerKind::Deadline => self.on_deadlines(),
            TimerKind::HubRetry | TimerKind::JoinerGrace => self.hub.wake(),
            TimerKind::BusyWake => self.requests.wake_peers(),
            TimerKind::HelloGrace => self.end_grace(),
            TimerKind::StallTick => self.on_stall_tick(),
            TimerKind::Escalate => self.on_escalate(),
        }
    }

    /// Times out the requests whose deadline has passed.
    fn on_deadlines(&mut self) {
        while let Some((req, r)) = self.requests.pop_expired(self.now, &mut self.timers) {
            self.released(&r);
            self.stats.timeouts += 1;
            self.out.push_back(Output::Cancel { req });
            match r.source {
                Source::Hub => self.hub_failed(),
                Source::Peer(p) => {
                    self.neighbours.exclude(r.idx, p);
                    let faults = self.neighbours.faults(p);
                    self.out
                        .push_back(Output::Event(Event::PeerPenalised { peer: p, faults }));
                }
            }
        }
    }

    fn on_stall_tick(&mut self) {
        let active = !self.booted && self.plan.is_some();
        let Some(reason) = self.hub.stall_tick(self.now, active, &mut self.timers) else {
            return;
        };
        self.hello_all();
        let missing = self
            .plan
            .as_ref()
            .map_or(0, |p| p.blocks.len() - p.held_count as usize);
        self.out
            .push_back(Output::Event(Event::Stalled { reason, missing }));
    }

    // ----- scheduling -----

    fn schedule(&mut self) {
        self.flush_announcements();
        if self.booted || self.plan.is_none() {
            return;
        }
        if self.cfg.hub != HubMode::Only {
            self.schedule_peers();
        }
        self.schedule_hub();
        self.endgame();
    }

    fn schedule_peers(&mut self) {
        let Some(candidates) = self.requests.peer_candidates() else {
            return;
        };
        for idx in candidates {
            if !self.requests.peer_room() {
                break;
            }
            if let Some(peer) = self.pick_holder(idx, None) {
                self.start_fetch(idx, Source::Peer(peer));
            }
        }
    }

    fn schedule_hub(&mut self) {
        if !self.hub.take_wake(&self.timers) {
            return;
        }
        let room = self.requests.hub_room();
        let Some(plan) = self.plan.as_ref() else {
            return;
        };
        if room == 0 {
            return;
        }
        let idle = |idx: u32| {
            plan.blocks[idx as usize].state == State::Missing && self.requests.inflight(idx) == 0
        };
        let picks = if self.hub.takes_anything() {
            self.hub.scan_any(plan, room, idle)
        } else {
            let supply = |idx: u32| Supply {
                holders: self.neighbours.holders_of(idx),
                fetchers: self.neighbours.fetchers_of(idx),
                idle: idle(idx),
            };
            self.owners
                .hub_picks(plan, self.hub.level(), room, &self.timers, supply)
        };
        for idx in picks {
            self.start_fetch(idx, Source::Hub);
        }
    }

    /// Duplicates requests for the last blocks (and for manifests, which block everything
    /// after them) to a second holder when nothing else can be scheduled.
    fn endgame(&mut self) {
        let Some(plan) = self.plan.as_ref() else {
            return;
        };
        let remaining = plan.blocks.len() - plan.held_count as usize;
        // The last few blocks of what this boot fetches, not of the release: an upgrade that
        // fetches 30 blocks duplicates 2 of them, not 8.
        let last_few = self
            .cfg
            .endgame_blocks
            .min((plan.to_fetch as usize / 16).max(2));
        let in_endgame = !plan.complete || remaining <= last_few;
        if self.cfg.hub == HubMode::Only
            || self.cfg.endgame_blocks == 0
            || remaining == 0
            || !in_endgame
            || !self.requests.ready_is_empty()
            || !self.requests.peer_room()
        {
            return;
        }
        for (idx, busy_with) in self.requests.single_sourced() {
            if !self.requests.peer_room() {
                break;
            }
            if let Some(peer) = self.pick_holder(idx, Some(busy_with)) {
                self.start_fetch(idx, Source::Peer(peer));
            }
        }
    }

    fn pick_holder(&self, idx: u32, not: Option<NodeId>) -> Option<NodeId> {
        self.requests
            .pick_holder(idx, self.neighbours.holders(idx), not, self.now)
    }

    fn start_fetch(&mut self, idx: u32, source: Source) {
        let Some(plan) = self.plan.as_ref() else {
            return;
        };
        let b = &plan.blocks[idx as usize];
        let (cid, len) = (b.cid, b.len);
        let holders = self.neighbours.holders_of(idx);
        let req = self
            .requests
            .start(plan, holders, idx, source, self.now, &mut self.timers);
        if source == Source::Hub && self.cfg.hub == HubMode::Fallback {
            self.neighbours.queue_fetching(idx);
        }
        self.out.push_back(Output::Fetch {
            req,
            from: source,
            cid,
            len,
        });
    }

    /// Removes a request and releases what it held; the block becomes schedulable again.
    fn finish_request(&mut self, req: RequestId) -> Option<Request> {
        let r = self.requests.finish(req, &mut self.timers)?;
        self.released(&r);
        Some(r)
    }

    /// A finished request's block may go back to the ready set and to the hub.
    fn released(&mut self, r: &Request) {
        if r.source == Source::Hub {
            self.hub.wake();
        }
        let missing = self
            .plan
            .as_ref()
            .is_some_and(|p| p.blocks[r.idx as usize].state == State::Missing);
        if missing && self.requests.inflight(r.idx) == 0 {
            self.ready_insert(r.idx);
            self.hub.wake();
        }
    }

    fn cancel(&mut self, req: RequestId) {
        if self.finish_request(req).is_some() {
            self.out.push_back(Output::Cancel { req });
        }
    }

    /// Sends the blocks verified (`Have`) and the hub fetches started (`Fetching`) during
    /// this `handle` call.
    fn flush_announcements(&mut self) {
        let tag = self.plan.as_ref().map(|p| p.tag);
        let lookups_pending = self.plan.as_ref().is_some_and(|p| p.lookups > 0);
        self.neighbours
            .announce(tag, lookups_pending, &mut self.out);
    }

    // ----- state helpers -----

    fn held(&mut self, idx: u32, len: u64, manifest: Option<&[u8]>) {
        self.ready_remove(idx);
        let Some(plan) = self.plan.as_mut() else {
            return;
        };
        if !plan.mark_held(idx, len) {
            return;
        }
        let added = manifest.map(|bytes| plan.add_manifest(idx, bytes));
        self.neighbours.clear_exclusions(idx);
        self.neighbours.queue_have(idx);
        match added {
            Some(Ok(new)) => {
                if let (Some(&first), Some(&last)) = (new.first(), new.last()) {
                    self.rank_blocks(first..last + 1);
                    if let Some(plan) = self.plan.as_ref() {
                        for i in first..=last {
                            self.out.push_back(Output::Lookup {
                                cid: plan.blocks[i as usize].cid,
                            });
                        }
                    }
                }
            }
            Some(Err(error)) => {
                self.out.push_back(Output::Event(Event::Failed { error }));
                self.timers.clear(TimerKind::StallTick);
            }
            None => {}
        }
        if !self.booted && self.plan.as_ref().is_some_and(Plan::is_booted) {
            self.booted = true;
            self.timers.clear(TimerKind::StallTick);
            if let Some(p) = self.plan.as_ref() {
                self.out.push_back(Output::Event(Event::Booted {
                    root: p.root,
                    blocks: p.blocks.len(),
                    bytes: p.held_bytes,
                }));
            }
        }
    }

    fn reject(&mut self, idx: u32, source: Source, cid: Cid) {
        self.stats.blocks_rejected += 1;
        self.out
            .push_back(Output::Event(Event::Rejected { from: source, cid }));
        match source {
            Source::Hub => self.hub_failed(),
            Source::Peer(p) => {
                self.neighbours.exclude(idx, p);
                let faults = self.neighbours.add_fault(p);
                self.out
                    .push_back(Output::Event(Event::PeerPenalised { peer: p, faults }));
                if faults >= self.cfg.ban_after {
                    self.ban(p);
                }
            }
        }
    }

    fn ban(&mut self, peer: NodeId) {
        if !self.neighbours.ban(peer) {
            return;
        }
        self.forget_owner(peer);
        self.drop_neighbour(peer, true);
        self.out
            .push_back(Output::Event(Event::PeerBanned { peer }));
        self.ensure_neighbours();
    }

    fn hub_failed(&mut self) {
        self.hub.failed(self.now, &mut self.rng, &mut self.timers);
    }

    /// The neighbours have answered (or had their time): if they already hold blocks of the
    /// release, this node joined a swarm under way and leaves hub fetching to the owners.
    fn end_grace(&mut self) {
        self.timers.clear(TimerKind::HelloGrace);
        self.hub.wake();
    }

    /// Whether this node joined a swarm under way (see [`Owners::decide_joiner`]).
    fn decide_joiner(&mut self) {
        let Some(plan) = self.plan.as_ref() else {
            return;
        };
        let holdings = self.neighbours.holdings();
        if self
            .owners
            .decide_joiner(plan, self.now, holdings, &mut self.timers)
        {
            self.hub.wake();
        }
    }

    fn touch_progress(&mut self) {
        self.hub.progressed(self.now, &mut self.timers);
    }

    fn on_escalate(&mut self) {
        let active = !self.booted && self.plan.is_some();
        self.hub.escalate(self.now, active, &mut self.timers);
    }

    fn hello(&self, reply: bool) -> Message {
        match &self.plan {
            Some(p) => Message::Hello {
                release: p.tag,
                bits: p.held.clone(),
                fetching: self.requests.hub_fetching(),
                reply,
            },
            None => Message::Hello {
                release: 0,
                bits: Bitfield::new(),
                fetching: Bitfield::new(),
                reply,
            },
        }
    }

    /// Sends a `Hello` asking for their holdings to every neighbour.
    fn hello_all(&mut self) {
        let hello = self.hello(true);
        for id in self.neighbours.ids() {
            self.out.push_back(Output::Send {
                to: id,
                msg: hello.clone(),
            });
        }
    }

    fn ensure_neighbours(&mut self) {
        if self.cfg.hub == HubMode::Only {
            return;
        }
        let picked = self.neighbours.pick_more(&mut self.rng);
        if picked.is_empty() {
            return;
        }
        let hello = self.hello(true);
        for to in picked {
            self.out.push_back(Output::Send {
                to,
                msg: hello.clone(),
            });
        }
    }

    fn drop_neighbour(&mut self, id: NodeId, bye: bool) {
        let Some(changes) = self.neighbours.remove(id) else {
            return;
        };
        if bye {
            self.out.push_back(Output::Send {
                to: id,
                msg: Message::Bye,
            });
        }
        self.apply(changes);
        for req in self.requests.to_peer(id) {
            self.cancel(req);
        }
        self.requests.forget_peer(id);
    }

    /// Updates what depends on how many neighbours hold or fetch a block.
    fn apply(&mut self, changes: impl IntoIterator<Item = Change>) {
        for change in changes {
            match change {
                Change::Holders { idx, before, after } => self.holders_changed(idx, before, after),
                Change::Fetchers { after, .. } => {
                    if after == 0 {
                        self.hub.wake();
                    }
                }
            }
        }
    }

    /// A missing block that gains its first holder is progress; one that loses its last may
    /// have to come from the hub; either way its place in the ready set moves.
    fn holders_changed(&mut self, idx: u32, before: u32, after: u32) {
        if let Some(plan) = self.plan.as_ref() {
            self.requests.ready_remove(plan, before, idx);
        }
        let missing = self
            .plan
            .as_ref()
            .and_then(|p| p.blocks.get(idx as usize))
            .is_some_and(|b| b.state == State::Missing);
        if missing {
            if before == 0 && after > 0 {
                self.touch_progress();
            }
            if after == 0 {
                self.hub.wake();
            }
        }
        self.ready_insert(idx);
    }

    fn ready_remove(&mut self, idx: u32) {
        if let Some(plan) = self.plan.as_ref() {
            self.requests
                .ready_remove(plan, self.neighbours.holders_of(idx), idx);
        }
    }

    fn ready_insert(&mut self, idx: u32) {
        if let Some(plan) = self.plan.as_ref() {
            self.requests
                .ready_insert(plan, self.neighbours.holders_of(idx), idx);
        }
    }

    /// Ranks the blocks in `range` of the plan.
    fn rank_blocks(&mut self, range: std::ops::Range<u32>) {
        if let Some(plan) = self.plan.as_ref() {
            self.owners.rank(plan, range);
            self.hub.wake();
        }
    }

    fn rerank_all(&mut self) {
        let n = self.plan.as_ref().map_or(0, |p| p.blocks.len() as u32);
        self.rank_blocks(0..n);
    }

    fn forget_owner(&mut self, id: NodeId) {
        if self.owners.forget(id, self.plan.as_ref()) {
            self.hub.wake();
        }
    }
}

#[cfg(test)]
mod tests;
