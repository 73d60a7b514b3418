//! The event loop: moves bytes, timers and disk I/O for the agent, which makes every decision.
//!
//! Peers become agent members while connected; control messages, block requests and releases
//! travel over length-capped request-response protocols; releases are also gossiped, each one
//! validated here before it is forwarded. Hashing, sled and the hub run in bounded tasks that
//! report back over one bounded channel.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bootswarm_protocol::agent::{
    Agent, AgentConfig, Event, FetchError, HubMode, Input, Message, NodeId, Output, RequestId,
    ServeId, Source, Time,
};
use bootswarm_protocol::block::{Cid, check_cid};
use bootswarm_protocol::release::{
    Freshness, GossipVerdict, HighWater, ReleaseError, SignedRelease, check_release, gossip_verdict,
};
use bootswarm_protocol::store::{BlockStore, StoreError};
use libp2p::futures::StreamExt;
use libp2p::gossipsub::{self, IdentTopic, MessageAcceptance};
use libp2p::multiaddr::Protocol;
use libp2p::request_response::{self, OutboundRequestId, ResponseChannel};
use libp2p::swarm::{ConnectionId, SwarmEvent};
use libp2p::{Multiaddr, PeerId, Swarm, mdns};
use sha2::{Digest, Sha256};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::task::AbortHandle;

use super::behaviour::{Behaviour, BehaviourEvent, build_swarm};
use super::codec::{STATUS_BUSY, STATUS_NOT_FOUND, STATUS_OK, STATUS_OTHER};
use super::http::{MAX_PEER_LABELS, Shared, Snapshot};
use super::payload::Block;
use super::upgrade::{self, Outcome};
use super::{DaemonOptions, DaemonReport, install};
use crate::boot::materialise::MaterialiseStats;
use crate::error::{Error, Result};
use crate::hub::client::HubClient;
use crate::state::{FailedUpgrade, Installed, NodeState};
use crate::store::SledStore;
use crate::task::blocking;

/// Store reads and writes running at once.
const DISK_TASKS: usize = 8;
/// Lookups running at once (the rest wait in a queue bounded by the release's block count).
const LOOKUPS_IN_FLIGHT: usize = 8;
/// Capacity of the channel tasks report on (tasks in flight are bounded well below it).
const TASK_CHANNEL: usize = 1024;
/// Control messages queued for one peer; more are dropped (the agent re-sends its state when
/// it stalls).
const CONTROL_QUEUE: usize = 1024;
/// First and longest wait between failed release polls of the hub.
const POLL_BACKOFF: Duration = Duration::from_secs(1);
const POLL_BACKOFF_MAX: Duration = Duration::from_secs(30);
/// How often static peers that are not connected are dialled again.
const REDIAL_EVERY: Duration = Duration::from_secs(5);
/// Hub fetches per node at once. The hub link is shared by the whole farm, so a few per node
/// fill it; more only make every block (and its HAVE) arrive later. Measured on 4 nodes × 64 MiB
/// at 100 Mbit/s: all blocks held after 1.1 × T_min with 2, 1.8 × T_min with the default 8.
const HUB_CONCURRENCY: usize = 2;
/// Peers remembered (id map, ban list) beyond those connected.
const MAX_KNOWN_PEERS: usize = 4096;
/// Most mDNS-discovered peers remembered for redialling.
const MAX_DISCOVERED: usize = 1024;
/// Housekeeping tick: snapshot for HTTP, polls, redials, the boot gate.
const TICK: Duration = Duration::from_millis(200);

/// The agent's id for a libp2p peer: the first 8 bytes of sha2-256 of the peer id.
pub(crate) fn node_id(peer: &PeerId) -> NodeId {
    let digest = Sha256::digest(peer.to_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest.as_slice()[..8]);
    NodeId(u64::from_be_bytes(first))
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// What a finished task reports to the loop.
enum TaskMsg {
    Fetched {
        req: RequestId,
        payload: Block,
    },
    FetchFailed {
        req: RequestId,
        error: FetchError,
    },
    Local {
        cid: Cid,
        block: Option<Block>,
    },
    Served {
        id: ServeId,
        bytes: Option<Vec<u8>>,
    },
    Stored {
        cid: Cid,
        result: std::result::Result<(), StoreError>,
    },
    HubRelease(Result<(SignedRelease, Vec<u8>)>),
    Saved {
        root: Cid,
        result: Result<()>,
    },
    Installed {
        root: Cid,
        result: Result<InstallDone>,
    },
}

/// What an install task did: the one-shot direct layout, or a daemon version switch.
enum InstallDone {
    Direct(MaterialiseStats),
    Version(u64, Outcome),
}

/// A signed release handed to the node over HTTP (`POST /v1/announce`).
pub(crate) struct AnnounceRequest {
    /// The release bytes (already capped at `MAX_RELEASE_SIZE`).
    pub(crate) bytes: Vec<u8>,
    /// Where the verdict goes.
    pub(crate) reply: oneshot::Sender<AnnounceReply>,
}

/// The node's answer to an announced release.
#[derive(Debug, Clone)]
pub(crate) enum AnnounceReply {
    /// Newer than anything accepted: saved, gossiped, and being installed.
    Accepted(u64),
    /// The release this node already follows: gossiped again.
    Current(u64),
    /// Refused: the refusal kind and one sentence.
    Refused(&'static str, String),
}

/// Capacity of the queue of announced releases.
const ANNOUNCE_QUEUE: usize = 16;

/// How a fetch in flight can be abandoned.
enum FetchHandle {
    Peer,
    Hub(AbortHandle),
}

/// Where a release came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Via {
    Hub,
    Gossip,
    Peer,
    /// The copy saved in the store directory by an earlier run.
    Disk,
    /// Handed over by an operator (`bootswarm announce`).
    Announce,
}

/// What to do with a release received from the network.
enum Verdict {
    Adopt(Box<SignedRelease>, Freshness),
    /// Valid but not for now: the refusal kind and why.
    Ignore(&'static str, String),
    /// Invalid: the refusal kind and why.
    Reject(&'static str, String),
}

/// A short label for each refusal, used in /status and /metrics.
fn refusal_kind(e: &ReleaseError) -> &'static str {
    match e {
        ReleaseError::TooLarge { .. } => "too_large",
        ReleaseError::Decode(_) => "undecodable",
        ReleaseError::BadChannelName { .. } => "bad_channel_name",
        ReleaseError::NoTrustedSignature => "untrusted_key",
        ReleaseError::BadSignature { .. } => "bad_signature",
        ReleaseError::ThresholdNotMet { .. } => "threshold_not_met",
        ReleaseError::WrongChannel { .. } => "wrong_channel",
        ReleaseError::Expired { .. } => "expired",
        ReleaseError::NotYetValid { .. } => "not_yet_valid",
        ReleaseError::Rollback { .. } => "rollback",
        ReleaseError::Equivocation { .. } => "equivocation",
        ReleaseError::BadTrustRoot(_) => "bad_trust_root",
    }
}

#[derive(Debug, Clone)]
struct Current {
    seq: u64,
    root: Cid,
    bytes: Vec<u8>,
}

#[derive(Debug, Default)]
struct ControlQueue {
    queue: VecDeque<Vec<u8>>,
    in_flight: bool,
}

struct StaticPeer {
    addr: Multiaddr,
    peer: Option<PeerId>,
}

/// The daemon's state around the agent.
pub(crate) struct Driver {
    opts: DaemonOptions,
    swarm: Swarm<Behaviour>,
    agent: Agent<Block>,
    store: Arc<SledStore>,
    hub: HubClient,
    topic: IdentTopic,
    started: Instant,
    epoch: Instant,
    tx: mpsc::Sender<TaskMsg>,
    rx: mpsc::Receiver<TaskMsg>,
    disk: Arc<Semaphore>,
    inputs: VecDeque<Input<Block>>,
    // Peers.
    connected: HashMap<PeerId, NodeId>,
    nodes: HashMap<NodeId, PeerId>,
    banned: HashSet<PeerId>,
    statics: Vec<StaticPeer>,
    /// Peers mDNS announced, redialled like static peers until connected (mDNS reports a
    /// peer once, and a first dial can fail while both ends start).
    discovered: BTreeMap<PeerId, Multiaddr>,
    last_redial: Instant,
    control: HashMap<PeerId, ControlQueue>,
    // Fetches and serves.
    fetches: HashMap<RequestId, FetchHandle>,
    block_out: HashMap<OutboundRequestId, (RequestId, Cid, PeerId)>,
    serves: HashMap<ServeId, ResponseChannel<Vec<u8>>>,
    serve_in: HashMap<request_response::InboundRequestId, ServeId>,
    next_serve: u64,
    lookups: VecDeque<Cid>,
    lookups_in_flight: usize,
    /// Verified blocks being written to the store, served from memory meanwhile (a peer asks
    /// for a block the moment our HAVE reaches it).
    unstored: HashMap<Cid, Arc<Block>>,
    // Releases.
    state: Arc<Mutex<NodeState>>,
    high_water: Option<HighWater>,
    current: Option<Current>,
    saving: bool,
    pending_boot: Option<Cid>,
    booting: Option<Cid>,
    poll_at: Instant,
    poll_backoff: Duration,
    polling: bool,
    hub_down_logged: bool,
    // Install.
    installing: bool,
    /// Booted release waiting to be installed (once its blocks are all written).
    install_next: Option<Cid>,
    installed: Option<(Cid, Option<MaterialiseStats>)>,
    /// Seq of each release root accepted by this run (a booted root may no longer be current
    /// when its install starts).
    root_seqs: HashMap<Cid, u64>,
    /// Operator announcements (`POST /v1/announce`).
    announce_tx: mpsc::Sender<AnnounceRequest>,
    announce_rx: mpsc::Receiver<AnnounceRequest>,
    // Reporting.
    snap: Snapshot,
    shared: Shared,
    exit: Option<Result<()>>,
}

impl Driver {
    /// Opens the store, builds the swarm and starts listening and dialling. Every failure is
    /// one sentence.
    pub(crate) async fn start(opts: DaemonOptions, shared: Shared) -> Result<Driver> {
        let hub = HubClient::new(&opts.hub_url)?;
        let dir = opts.store_dir.clone();
        let store = blocking(move || SledStore::open(&dir)).await?;
        let dir = opts.store_dir.clone();
        let state = blocking(move || NodeState::load(&dir)).await?;
        let high_water = state.high_water.get(&opts.channel).cloned();

        let mut swarm = build_swarm(opts.identity.clone(), opts.mdns)?;
        for addr in &opts.listen {
            swarm.listen_on(addr.clone()).map_err(|e| {
                Error::new(format!(
                    "cannot listen on {addr} ({}); choose another --listen address or port",
                    super::transport_cause(&e)
                ))
            })?;
        }
        let topic = IdentTopic::new(format!("bootswarm/release/{}", opts.channel));
        swarm
            .behaviour_mut()
            .gossipsub
            .subscribe(&topic)
            .map_err(|e| Error::new(format!("cannot subscribe to release gossip ({e})")))?;
        let statics = opts
            .peers
            .iter()
            .map(|addr| StaticPeer {
                addr: addr.clone(),
                peer: addr.iter().find_map(|p| match p {
                    Protocol::P2p(id) => Some(id),
                    _ => None,
                }),
            })
            .collect();

        let me = node_id(swarm.local_peer_id());
        let mut seed = [0u8; 8];
        getrandom::fill(&mut seed)
            .map_err(|e| Error::new(format!("cannot get randomness for the agent ({e})")))?;
        let agent = Agent::new(AgentConfig {
            id: me,
            seed: u64::from_le_bytes(seed),
            hub: if opts.hub_only {
                HubMode::Only
            } else {
                HubMode::Fallback
            },
            hub_concurrency: HUB_CONCURRENCY,
            ..AgentConfig::default()
        });
        let (tx, rx) = mpsc::channel(TASK_CHANNEL);
        let (announce_tx, announce_rx) = mpsc::channel(ANNOUNCE_QUEUE);
        let now = Instant::now();
        let snap = Snapshot {
            peer_id: swarm.local_peer_id().to_string(),
            channel: opts.channel.clone(),
            hub_only: opts.hub_only,
            installed: state
                .installed
                .as_ref()
                .filter(|i| i.channel == opts.channel)
                .map(|i| (i.seq, i.root.clone())),
            upgrade_failure: state.failed.clone(),
            ..Snapshot::default()
        };
        let mut driver = Driver {
            swarm,
            agent,
            store: Arc::new(store),
            hub,
            topic,
            started: now,
            epoch: now,
            tx,
            rx,
            disk: Arc::new(Semaphore::new(DISK_TASKS)),
            inputs: VecDeque::new(),
            connected: HashMap::new(),
            nodes: HashMap::new(),
            banned: HashSet::new(),
            statics,
            discovered: BTreeMap::new(),
            last_redial: now,
            control: HashMap::new(),
            fetches: HashMap::new(),
            block_out: HashMap::new(),
            serves: HashMap::new(),
            serve_in: HashMap::new(),
            next_serve: 0,
            lookups: VecDeque::new(),
            lookups_in_flight: 0,
            unstored: HashMap::new(),
            state: Arc::new(Mutex::new(state)),
            high_water,
            current: None,
            saving: false,
            pending_boot: None,
            booting: None,
            poll_at: now,
            poll_backoff: POLL_BACKOFF,
            polling: false,
            hub_down_logged: false,
            installing: false,
            install_next: None,
            installed: None,
            root_seqs: HashMap::new(),
            announce_tx,
            announce_rx,
            snap,
            shared,
            exit: None,
            opts,
        };
        driver.dial_statics();
        driver.load_saved_release().await;
        Ok(driver)
    }

    /// Adopts the release saved by an earlier run, if it is still acceptable.
    async fn load_saved_release(&mut self) {
        let path = release_path(&self.opts.store_dir, &self.opts.channel);
        let read = tokio::task::spawn_blocking(move || {
            crate::fsutil::read_capped(&path, bootswarm_protocol::release::MAX_RELEASE_SIZE)
        })
        .await;
        let Ok(Ok(bytes)) = read else {
            return;
        };
        let verdict = self.judge(&bytes);
        let me = self.peer_id();
        self.apply_verdict(verdict, bytes, Via::Disk, &me);
    }

    /// Where operators hand releases to this node.
    pub(crate) fn announcer(&self) -> mpsc::Sender<AnnounceRequest> {
        self.announce_tx.clone()
    }

    /// This node's peer id.
    pub(crate) fn peer_id(&self) -> PeerId {
        *self.swarm.local_peer_id()
    }

    /// Runs until `shutdown` fires or, in one-shot mode, the release is installed.
    pub(crate) async fn run(mut self, mut shutdown: oneshot::Receiver<()>) -> Result<DaemonReport> {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            self.housekeeping();
            if self.exit.is_some() {
                break;
            }
            let deadline = self
                .agent
                .poll_timeout()
                .map(|t| self.epoch + Duration::from_nanos(t.as_nanos()));
            let sleep = async move {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                event = self.swarm.select_next_some() => self.on_swarm_event(event),
                Some(msg) = self.rx.recv() => self.on_task(msg),
                Some(req) = self.announce_rx.recv() => self.on_announce(req),
                () = sleep => self.feed(Input::Timeout),
                _ = tick.tick() => {}
                _ = &mut shutdown => {
                    tracing::info!("shutting down");
                    self.exit = Some(Ok(()));
                }
            }
        }
        self.publish_snapshot();
        let store = Arc::clone(&self.store);
        let flushed = blocking(move || store.flush()).await;
        let outcome = self.exit.take().unwrap_or(Ok(()));
        outcome?;
        flushed?;
        let (seq, root) = self
            .current
            .as_ref()
            .map_or((0, None), |c| (c.seq, Some(c.root)));
        Ok(DaemonReport {
            seq,
            root,
            booted_after: self.snap.booted_after.map(Duration::from_secs_f64),
            bytes_from_hub: self.snap.bytes_from_hub,
            bytes_from_peers: self.snap.bytes_from_peers,
            tree: self.installed.and_then(|(_, s)| s),
        })
    }

    fn now(&self) -> Time {
        Time::from_nanos(u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX))
    }

    /// Feeds one input and carries out everything the agent asks for.
    fn feed(&mut self, input: Input<Block>) {
        self.inputs.push_back(input);
        while let Some(input) = self.inputs.pop_front() {
            let now = self.now();
            self.agent.handle(now, input);
            while let Some(out) = self.agent.poll_output() {
                self.on_output(out);
            }
        }
    }

    fn housekeeping(&mut self) {
        let now = Instant::now();
        if !self.polling && now >= self.poll_at {
            self.poll_hub();
        }
        if now.duration_since(self.last_redial) >= REDIAL_EVERY {
            self.last_redial = now;
            self.dial_statics();
        }
        self.maybe_boot();
        self.maybe_install();
        self.pump_lookups();
        self.publish_snapshot();
    }

    // ----- agent outputs -----

    fn on_output(&mut self, out: Output<Block>) {
        match out {
            Output::Send { to, msg } => self.send_control(to, &msg),
            Output::Fetch {
                req,
                from,
                cid,
                len,
            } => match from {
                Source::Peer(node) => self.fetch_from_peer(req, node, cid),
                Source::Hub => self.fetch_from_hub(req, cid, len),
            },
            Output::Cancel { req } => {
                if let Some(FetchHandle::Hub(h)) = self.fetches.remove(&req) {
                    h.abort();
                }
            }
            Output::Serve { id, cid } => self.serve(id, cid),
            Output::Refuse { id, error } => {
                let code = match error {
                    FetchError::Busy => STATUS_BUSY,
                    FetchError::NotFound => STATUS_NOT_FOUND,
                    _ => STATUS_OTHER,
                };
                if let Some(ch) = self.serves.remove(&id) {
                    let _ = self
                        .swarm
                        .behaviour_mut()
                        .blocks
                        .send_response(ch, vec![code]);
                }
            }
            Output::Lookup { cid } => self.lookups.push_back(cid),
            Output::Store { cid, payload } => {
                self.snap.blocks_verified += 1;
                let block = Arc::new(payload);
                self.unstored.insert(cid, Arc::clone(&block));
                let (store, tx, disk) =
                    (Arc::clone(&self.store), self.tx.clone(), self.disk.clone());
                tokio::spawn(async move {
                    let _permit = disk.acquire_owned().await;
                    let result = tokio::task::spawn_blocking(move || match &*block {
                        Block::Verified(v) if v.cid() == &cid => store.put_verified(v),
                        other => store.put(&cid, other.as_bytes()),
                    })
                    .await
                    .unwrap_or_else(|e| Err(StoreError::Backend(e.to_string())));
                    let _ = tx.send(TaskMsg::Stored { cid, result }).await;
                });
            }
            Output::Event(event) => self.on_agent_event(event),
        }
    }

    fn on_agent_event(&mut self, event: Event) {
        match event {
            Event::Booted {
                root,
                blocks,
                bytes,
            } => {
                tracing::info!(%root, blocks, bytes, "release booted");
                self.snap.held_after = Some(self.started.elapsed().as_secs_f64());
                self.on_booted(root);
            }
            Event::Rejected { from, cid } => {
                let source = self.source_label(from);
                tracing::warn!(%cid, %source, "a block failed verification and was thrown away");
                bump(&mut self.snap.failures, source);
            }
            Event::PeerPenalised { peer, faults } => {
                let label = self.node_label(peer);
                tracing::info!(peer = %label, faults, "peer penalised");
                bump(&mut self.snap.penalties, label);
            }
            Event::PeerBanned { peer } => {
                let label = self.node_label(peer);
                tracing::warn!(peer = %label, "peer banned after repeated faults");
                if !self.snap.banned.contains(&label) {
                    self.snap.banned.push(label);
                }
                if let Some(&pid) = self.nodes.get(&peer) {
                    if self.banned.len() >= MAX_KNOWN_PEERS {
                        self.banned.clear();
                    }
                    self.banned.insert(pid);
                    let _ = self.swarm.disconnect_peer_id(pid);
                }
            }
            Event::Stalled { reason, missing } => {
                tracing::info!(missing, "boot stalled: {reason}");
            }
            Event::Failed { error } => {
                let msg = format!("the release cannot be booted: {error}");
                tracing::error!("{msg}");
                if self.opts.once {
                    self.exit = Some(Err(Error::new(msg)));
                }
            }
        }
    }

    fn send_control(&mut self, to: NodeId, msg: &Message) {
        let Some(&peer) = self.nodes.get(&to) else {
            return;
        };
        if !self.connected.contains_key(&peer) {
            return;
        }
        let q = self.control.entry(peer).or_default();
        if q.queue.len() >= CONTROL_QUEUE {
            tracing::debug!(%peer, "control queue full; message dropped");
            return;
        }
        q.queue.push_back(msg.encode());
        self.pump_control(peer);
    }

    /// Sends the next queued control message to `peer` once the previous one is answered,
    /// so that messages arrive in order.
    fn pump_control(&mut self, peer: PeerId) {
        let Some(q) = self.control.get_mut(&peer) else {
            return;
        };
        if q.in_flight {
            return;
        }
        if let Some(bytes) = q.queue.pop_front() {
            q.in_flight = true;
            self.swarm
                .behaviour_mut()
                .control
                .send_request(&peer, bytes);
        }
    }

    fn fetch_from_peer(&mut self, req: RequestId, node: NodeId, cid: Cid) {
        tracing::debug!(%cid, %node, "fetch from a peer");
        let peer = self
            .nodes
            .get(&node)
            .copied()
            .filter(|p| self.connected.contains_key(p));
        let Some(peer) = peer else {
            self.inputs.push_back(Input::FetchFailed {
                req,
                error: FetchError::Disconnected,
            });
            return;
        };
        let out = self
            .swarm
            .behaviour_mut()
            .blocks
            .send_request(&peer, cid.to_bytes());
        self.block_out.insert(out, (req, cid, peer));
        self.fetches.insert(req, FetchHandle::Peer);
    }

    fn fetch_from_hub(&mut self, req: RequestId, cid: Cid, len: u32) {
        tracing::debug!(%cid, len, "fetch from the hub");
        let (hub, tx) = (self.hub.clone(), self.tx.clone());
        let task = tokio::spawn(async move {
            let msg = match hub.block(&cid, len as usize).await {
                Ok(bytes) => {
                    match tokio::task::spawn_blocking(move || Block::verified(cid, bytes)).await {
                        Ok(payload) => TaskMsg::Fetched { req, payload },
                        Err(_) => TaskMsg::FetchFailed {
                            req,
                            error: FetchError::Other,
                        },
                    }
                }
                Err(e) => {
                    tracing::debug!("hub fetch failed: {e}");
                    TaskMsg::FetchFailed {
                        req,
                        error: FetchError::HubUnavailable,
                    }
                }
            };
            let _ = tx.send(msg).await;
        });
        self.fetches
            .insert(req, FetchHandle::Hub(task.abort_handle()));
    }

    fn serve(&mut self, id: ServeId, cid: Cid) {
        let (store, tx, disk) = (Arc::clone(&self.store), self.tx.clone(), self.disk.clone());
        if let Some(bytes) = self.unstored.get(&cid).map(|b| b.as_bytes().to_vec()) {
            tokio::spawn(async move {
                let _ = tx
                    .send(TaskMsg::Served {
                        id,
                        bytes: Some(bytes),
                    })
                    .await;
            });
            return;
        }
        tokio::spawn(async move {
            let _permit = disk.acquire_owned().await;
            // The store re-verifies the block before it is served.
            let bytes = tokio::task::spawn_blocking(move || store.get(&cid).ok().flatten())
                .await
                .ok()
                .flatten();
            let _ = tx.send(TaskMsg::Served { id, bytes }).await;
        });
    }

    fn pump_lookups(&mut self) {
        while self.lookups_in_flight < LOOKUPS_IN_FLIGHT {
            let Some(cid) = self.lookups.pop_front() else {
                return;
            };
            self.lookups_in_flight += 1;
            let (store, tx, disk) = (Arc::clone(&self.store), self.tx.clone(), self.disk.clone());
            tokio::spawn(async move {
                let _permit = disk.acquire_owned().await;
                let block = tokio::task::spawn_blocking(move || match store.get(&cid) {
                    Ok(b) => b.map(|bytes| Block::from_store(cid, bytes)),
                    Err(e) => {
                        tracing::warn!("{e}");
                        None
                    }
                })
                .await
                .ok()
                .flatten();
                let _ = tx.send(TaskMsg::Local { cid, block }).await;
            });
        }
    }

    // ----- task results -----

    fn on_task(&mut self, msg: TaskMsg) {
        match msg {
            TaskMsg::Fetched { req, payload } => {
                if let Some(handle) = self.fetches.remove(&req) {
                    if matches!(handle, FetchHandle::Hub(_)) {
                        self.snap.bytes_from_hub += payload.len_u64();
                    }
                    self.feed(Input::Block { req, payload });
                }
            }
            TaskMsg::FetchFailed { req, error } => {
                if self.fetches.remove(&req).is_some() {
                    self.feed(Input::FetchFailed { req, error });
                }
            }
            TaskMsg::Local { cid, block } => {
                self.lookups_in_flight -= 1;
                self.feed(Input::Local { cid, block });
            }
            TaskMsg::Served { id, bytes } => self.on_served(id, bytes),
            TaskMsg::Stored { cid, result } => {
                self.unstored.remove(&cid);
                if let Err(e) = result {
                    tracing::warn!(%cid, "storing a verified block failed: {e}");
                }
            }
            TaskMsg::HubRelease(result) => self.on_hub_release(result),
            TaskMsg::Saved { root, result } => {
                self.saving = false;
                match result {
                    Ok(()) => {
                        if self.current.as_ref().is_some_and(|c| c.root == root) {
                            self.pending_boot = Some(root);
                            self.maybe_boot();
                        } else {
                            // A newer release arrived meanwhile: save that one too.
                            self.save_high_water();
                        }
                    }
                    Err(e) => self.exit = Some(Err(e)),
                }
            }
            TaskMsg::Installed { root, result } => self.on_installed(root, result),
        }
    }

    fn on_served(&mut self, id: ServeId, bytes: Option<Vec<u8>>) {
        let Some(ch) = self.serves.remove(&id) else {
            self.feed(Input::ServeDone { id });
            return;
        };
        let response = match bytes {
            Some(mut bytes) => {
                if self.opts.corrupt_serving && !bytes.is_empty() {
                    let mid = bytes.len() / 2;
                    bytes[mid] ^= 0x01;
                }
                self.snap.bytes_served += bytes.len() as u64;
                self.snap.blocks_served += 1;
                let mut r = Vec::with_capacity(1 + bytes.len());
                r.push(STATUS_OK);
                r.extend_from_slice(&bytes);
                r
            }
            None => vec![STATUS_NOT_FOUND],
        };
        if self
            .swarm
            .behaviour_mut()
            .blocks
            .send_response(ch, response)
            .is_err()
        {
            self.feed(Input::ServeDone { id });
        }
    }

    // ----- swarm events -----

    fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::NewListenAddr { address, .. } => {
                println!("listening {address}/p2p/{}", self.swarm.local_peer_id());
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                connection_id,
                endpoint,
                num_established,
                ..
            } => self.on_connected(peer_id, connection_id, &endpoint, num_established.get()),
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established: 0,
                ..
            } => self.on_disconnected(peer_id),
            SwarmEvent::OutgoingConnectionError { peer_id, error, .. } => {
                tracing::debug!(?peer_id, "dial failed: {error}");
            }
            SwarmEvent::ListenerError { error, .. } => {
                tracing::warn!("listener error: {error}");
            }
            SwarmEvent::Behaviour(event) => self.on_behaviour_event(event),
            _ => {}
        }
    }

    fn on_connected(
        &mut self,
        peer: PeerId,
        connection: ConnectionId,
        endpoint: &libp2p::core::ConnectedPoint,
        established: u32,
    ) {
        if self.banned.contains(&peer) {
            self.swarm.close_connection(connection);
            return;
        }
        if let libp2p::core::ConnectedPoint::Dialer { address, .. } = endpoint {
            for s in &mut self.statics {
                if s.peer.is_none() && same_transport(&s.addr, address) {
                    s.peer = Some(peer);
                }
            }
        }
        if established != 1 || self.connected.contains_key(&peer) {
            return;
        }
        let node = node_id(&peer);
        tracing::debug!(%peer, %node, "peer connected");
        self.connected.insert(peer, node);
        if self.nodes.len() >= MAX_KNOWN_PEERS {
            // Forget peers that are gone; their late events are labelled by node id.
            let connected = &self.connected;
            self.nodes.retain(|_, p| connected.contains_key(p));
        }
        self.nodes.insert(node, peer);
        // Ask for its release: a node that starts while the hub is down learns it this way.
        let channel = self.opts.channel.as_bytes().to_vec();
        self.swarm
            .behaviour_mut()
            .release
            .send_request(&peer, channel);
        self.feed(Input::MemberUp(node));
        // The nodes of a storm should start together: do not wait for the next tick.
        self.maybe_boot();
    }

    fn on_disconnected(&mut self, peer: PeerId) {
        self.control.remove(&peer);
        if let Some(node) = self.connected.remove(&peer) {
            tracing::debug!(%peer, "peer disconnected");
            self.feed(Input::MemberDown(node));
        }
    }

    fn on_behaviour_event(&mut self, event: BehaviourEvent) {
        match event {
            BehaviourEvent::Blocks(e) => self.on_block_event(e),
            BehaviourEvent::Control(e) => self.on_control_event(e),
            BehaviourEvent::Release(e) => self.on_release_event(e),
            BehaviourEvent::Gossipsub(gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            }) => {
                let verdict = if message.topic == self.topic.hash() {
                    self.judge(&message.data)
                } else {
                    Verdict::Reject(
                        "wrong_topic",
                        "release gossip on a topic this node does not follow".into(),
                    )
                };
                // New or current (a poller passing on this period's release): forward.
                let acceptance = match &verdict {
                    Verdict::Adopt(..) => MessageAcceptance::Accept,
                    Verdict::Ignore(..) => MessageAcceptance::Ignore,
                    Verdict::Reject(..) => MessageAcceptance::Reject,
                };
                self.swarm
                    .behaviour_mut()
                    .gossipsub
                    .report_message_validation_result(&message_id, &propagation_source, acceptance);
                self.apply_verdict(verdict, message.data, Via::Gossip, &propagation_source);
            }
            BehaviourEvent::Mdns(mdns::Event::Discovered(found)) => {
                for (peer, addr) in found {
                    if self.connected.contains_key(&peer) || self.banned.contains(&peer) {
                        continue;
                    }
                    let addr = addr.with_p2p(peer).unwrap_or_else(|a| a);
                    if self.discovered.len() < MAX_DISCOVERED {
                        self.discovered.insert(peer, addr.clone());
                    }
                    if let Err(e) = self.swarm.dial(addr) {
                        tracing::debug!(%peer, "cannot dial a discovered peer: {e}");
                    }
                }
            }
            BehaviourEvent::Mdns(mdns::Event::Expired(gone)) => {
                for (peer, _) in gone {
                    self.discovered.remove(&peer);
                }
            }
            _ => {}
        }
    }

    fn on_block_event(&mut self, event: request_response::Event<Vec<u8>, Vec<u8>>) {
        use request_response::{Event as E, Message as M};
        match event {
            E::Message {
                peer,
                message:
                    M::Request {
                        request_id,
                        request,
                        channel,
                    },
                ..
            } => {
                let (Some(&node), Ok(cid)) =
                    (self.connected.get(&peer), Cid::try_from(request.as_slice()))
                else {
                    let _ = self
                        .swarm
                        .behaviour_mut()
                        .blocks
                        .send_response(channel, vec![STATUS_OTHER]);
                    return;
                };
                if check_cid(&cid).is_err() {
                    let _ = self
                        .swarm
                        .behaviour_mut()
                        .blocks
                        .send_response(channel, vec![STATUS_NOT_FOUND]);
                    return;
                }
                let id = ServeId(self.next_serve);
                self.next_serve += 1;
                self.serves.insert(id, channel);
                self.serve_in.insert(request_id, id);
                self.feed(Input::BlockRequest {
                    from: node,
                    id,
                    cid,
                });
            }
            E::Message {
                peer,
                message:
                    M::Response {
                        request_id,
                        response,
                    },
                ..
            } => {
                let Some((req, cid, _)) = self.block_out.remove(&request_id) else {
                    return;
                };
                let error = match response.first() {
                    Some(&STATUS_OK) => None,
                    Some(&STATUS_BUSY) => Some(FetchError::Busy),
                    Some(&STATUS_NOT_FOUND) => Some(FetchError::NotFound),
                    _ => Some(FetchError::Other),
                };
                if !self.fetches.contains_key(&req) {
                    return;
                }
                if let Some(error) = error {
                    self.fetches.remove(&req);
                    self.feed(Input::FetchFailed { req, error });
                    return;
                }
                let n = response.len() as u64 - 1;
                self.snap.bytes_from_peers += n;
                let label = self.peer_label(&peer);
                *self.snap.bytes_by_peer.entry(label).or_insert(0) += n;
                let tx = self.tx.clone();
                tokio::spawn(async move {
                    let msg = match tokio::task::spawn_blocking(move || {
                        let mut bytes = response;
                        bytes.remove(0);
                        Block::verified(cid, bytes)
                    })
                    .await
                    {
                        Ok(payload) => TaskMsg::Fetched { req, payload },
                        Err(_) => TaskMsg::FetchFailed {
                            req,
                            error: FetchError::Other,
                        },
                    };
                    let _ = tx.send(msg).await;
                });
            }
            E::OutboundFailure {
                request_id, error, ..
            } => {
                if let Some((req, _, peer)) = self.block_out.remove(&request_id) {
                    tracing::debug!(%peer, "block request failed: {error}");
                    if self.fetches.remove(&req).is_some() {
                        self.feed(Input::FetchFailed {
                            req,
                            error: FetchError::Disconnected,
                        });
                    }
                }
            }
            E::InboundFailure { request_id, .. } | E::ResponseSent { request_id, .. } => {
                if let Some(id) = self.serve_in.remove(&request_id) {
                    self.serves.remove(&id);
                    self.feed(Input::ServeDone { id });
                }
            }
        }
    }

    fn on_control_event(&mut self, event: request_response::Event<Vec<u8>, Vec<u8>>) {
        use request_response::{Event as E, Message as M};
        match event {
            E::Message {
                peer,
                message: M::Request {
                    request, channel, ..
                },
                ..
            } => {
                let _ = self
                    .swarm
                    .behaviour_mut()
                    .control
                    .send_response(channel, Vec::new());
                let Some(&from) = self.connected.get(&peer) else {
                    return;
                };
                match Message::decode(&request) {
                    Ok(msg) => self.feed(Input::Message { from, msg }),
                    Err(e) => tracing::debug!(%peer, "bad control message: {e}"),
                }
            }
            E::Message {
                peer,
                message: M::Response { .. },
                ..
            }
            | E::OutboundFailure { peer, .. } => {
                if let Some(q) = self.control.get_mut(&peer) {
                    q.in_flight = false;
                }
                self.pump_control(peer);
            }
            _ => {}
        }
    }

    fn on_release_event(&mut self, event: request_response::Event<Vec<u8>, Vec<u8>>) {
        use request_response::{Event as E, Message as M};
        match event {
            E::Message {
                message: M::Request {
                    request, channel, ..
                },
                ..
            } => {
                let answer = match &self.current {
                    Some(c) if request == self.opts.channel.as_bytes() => c.bytes.clone(),
                    _ => Vec::new(),
                };
                let _ = self
                    .swarm
                    .behaviour_mut()
                    .release
                    .send_response(channel, answer);
            }
            E::Message {
                peer,
                message: M::Response { response, .. },
                ..
            } => {
                if response.is_empty() {
                    return;
                }
                let verdict = self.judge(&response);
                self.apply_verdict(verdict, response, Via::Peer, &peer);
            }
            _ => {}
        }
    }

    // ----- releases -----

    fn poll_hub(&mut self) {
        self.polling = true;
        self.snap.hub_polls += 1;
        let (hub, tx, channel) = (self.hub.clone(), self.tx.clone(), self.opts.channel.clone());
        tokio::spawn(async move {
            let result = hub.release(&channel).await;
            let _ = tx.send(TaskMsg::HubRelease(result)).await;
        });
    }

    fn on_hub_release(&mut self, result: Result<(SignedRelease, Vec<u8>)>) {
        self.polling = false;
        match result {
            Ok((signed, bytes)) => {
                self.poll_backoff = POLL_BACKOFF;
                self.hub_down_logged = false;
                self.poll_at = self.next_poll();
                let verdict = match self.check(&signed) {
                    Ok(fresh) => Verdict::Adopt(Box::new(signed), fresh),
                    Err(e) => Verdict::Ignore(refusal_kind(&e), e.to_string()),
                };
                let me = self.peer_id();
                self.apply_verdict(verdict, bytes, Via::Hub, &me);
            }
            Err(e) => {
                if self.hub_down_logged {
                    tracing::debug!("release poll failed: {e}");
                } else {
                    tracing::warn!(
                        "{e}; retrying with back-off and listening for the release on gossip"
                    );
                    self.hub_down_logged = true;
                }
                self.poll_at = Instant::now() + self.poll_backoff;
                self.poll_backoff = (self.poll_backoff * 2).min(POLL_BACKOFF_MAX);
            }
        }
    }

    /// The next poll: one period from now, with ±20 % jitter so a farm's polls spread out.
    fn next_poll(&self) -> Instant {
        let jitter = 0.8 + 0.4 * (rand_u64() % 1000) as f64 / 1000.0;
        Instant::now() + self.opts.poll_interval.mul_f64(jitter)
    }

    fn check(&self, signed: &SignedRelease) -> std::result::Result<Freshness, Box<ReleaseError>> {
        check_release(
            &self.opts.trust,
            &self.opts.channel,
            unix_now(),
            self.high_water.as_ref(),
            signed,
        )
        .map_err(Box::new)
    }

    /// Decides about release bytes from a peer or from gossip.
    fn judge(&self, bytes: &[u8]) -> Verdict {
        let signed = match SignedRelease::decode(bytes) {
            Ok(s) => s,
            Err(e) => return Verdict::Reject(refusal_kind(&e), e.to_string()),
        };
        let outcome = self.check(&signed).map_err(|e| *e);
        match (gossip_verdict(&outcome, self.high_water.as_ref()), outcome) {
            (_, Ok(fresh)) => Verdict::Adopt(Box::new(signed), fresh),
            (verdict, Err(e)) => {
                let kind = refusal_kind(&e);
                if matches!(e, ReleaseError::Equivocation { .. }) {
                    tracing::warn!("a trusted publisher signed two roots for one seq: {e}");
                }
                // The same rules as the simulator: the release just before ours (an honest
                // race) and a clock ahead of ours are ignored; forged, other-channel, expired
                // (replayed) and older releases penalise the sender.
                match verdict {
                    GossipVerdict::Ignore => Verdict::Ignore(kind, e.to_string()),
                    _ => Verdict::Reject(kind, e.to_string()),
                }
            }
        }
    }

    fn apply_verdict(&mut self, verdict: Verdict, bytes: Vec<u8>, via: Via, from: &PeerId) {
        match verdict {
            Verdict::Adopt(signed, fresh) => self.adopt(&signed, bytes, fresh, via),
            Verdict::Ignore(kind, why) => {
                tracing::debug!(?via, %from, "release ignored: {why}");
                self.count_refusal(kind, why, via);
            }
            Verdict::Reject(kind, why) => {
                tracing::warn!(?via, %from, "release refused: {why}");
                self.count_refusal(kind, why, via);
            }
        }
    }

    /// Counts a refused release for /status and /metrics (a stale copy from the hub or from
    /// a peer that has not upgraded yet is no refusal worth reporting).
    fn count_refusal(&mut self, kind: &'static str, why: String, via: Via) {
        if matches!(via, Via::Hub | Via::Peer | Via::Disk) && kind == "rollback" {
            return;
        }
        *self.snap.refusals.entry(kind.to_string()).or_insert(0) += 1;
        self.snap.last_refusal = Some(why);
    }

    /// An operator handed over a release: judge it, act on it, answer.
    fn on_announce(&mut self, req: AnnounceRequest) {
        let verdict = self.judge(&req.bytes);
        let reply = match &verdict {
            Verdict::Adopt(s, Freshness::New) => AnnounceReply::Accepted(s.release.seq),
            Verdict::Adopt(s, Freshness::Current) => AnnounceReply::Current(s.release.seq),
            Verdict::Ignore(kind, why) | Verdict::Reject(kind, why) => {
                AnnounceReply::Refused(kind, why.clone())
            }
        };
        let me = self.peer_id();
        self.apply_verdict(verdict, req.bytes, Via::Announce, &me);
        let _ = req.reply.send(reply);
    }

    fn adopt(&mut self, signed: &SignedRelease, bytes: Vec<u8>, fresh: Freshness, via: Via) {
        let r = &signed.release;
        if self.current.as_ref().is_some_and(|c| c.seq > r.seq) {
            return;
        }
        let same = self
            .current
            .as_ref()
            .is_some_and(|c| c.seq == r.seq && c.root == r.root);
        // Keep the farm's hub polls near one per period: a release heard from the swarm (or
        // an operator) counts as this period's poll, and a node that did poll passes the
        // release on, so the others skip theirs.
        if matches!(via, Via::Gossip | Via::Announce) && !self.polling {
            self.snap.polls_deferred += 1;
            self.poll_at = self.next_poll();
        }
        let pass_on = matches!(via, Via::Hub | Via::Announce) || (!same && via != Via::Gossip);
        if pass_on
            && let Err(e) = self
                .swarm
                .behaviour_mut()
                .gossipsub
                .publish(self.topic.clone(), bytes.clone())
        {
            tracing::debug!("release not gossiped: {e}");
        }
        if same {
            return;
        }
        tracing::info!(seq = r.seq, root = %r.root, ?via, "release accepted");
        self.current = Some(Current {
            seq: r.seq,
            root: r.root,
            bytes: bytes.clone(),
        });
        self.snap.release = Some((r.seq, r.root.to_string()));
        // /status reports the current release: not booted until this root is.
        self.snap.booted = false;
        self.snap.booted_after = None;
        self.snap.held_after = None;
        self.high_water = Some(HighWater {
            seq: r.seq,
            root: r.root,
        });
        self.snap.releases_accepted += 1;
        if self.root_seqs.len() >= 64 {
            self.root_seqs.clear();
        }
        self.root_seqs.insert(r.root, r.seq);
        match fresh {
            // Durable before anything is installed; the boot starts once it is saved.
            Freshness::New => self.save_high_water(),
            Freshness::Current => self.pending_boot = Some(r.root),
        }
    }

    fn save_high_water(&mut self) {
        let (Some(hw), false) = (self.high_water.clone(), self.saving) else {
            return;
        };
        self.saving = true;
        let root = hw.root;
        let bytes = self.current.as_ref().map(|c| c.bytes.clone());
        let (state, dir, channel, tx) = (
            Arc::clone(&self.state),
            self.opts.store_dir.clone(),
            self.opts.channel.clone(),
            self.tx.clone(),
        );
        tokio::spawn(async move {
            let result = blocking(move || {
                let mut st = state.lock().unwrap_or_else(PoisonError::into_inner);
                st.high_water.insert(channel.clone(), hw);
                st.save(&dir)?;
                let upgrading = st.installed.is_some();
                // The signed release too, so that a restart can boot while the hub is down.
                if let Some(bytes) = bytes {
                    let path = release_path(&dir, &channel);
                    crate::fsutil::write_atomic(&path, &bytes, Some(0o644)).map_err(|e| {
                        Error::new(format!(
                            "cannot save the release to {} ({e}); check free space on the store's disk",
                            path.display()
                        ))
                    })?;
                }
                if upgrading {
                    upgrade::crash_point("after-hwm");
                }
                Ok(())
            })
            .await;
            let _ = tx.send(TaskMsg::Saved { root, result }).await;
        });
    }

    /// Starts the boot once the release is durable and the expected peers are connected (or
    /// waited for long enough).
    fn maybe_boot(&mut self) {
        let Some(root) = self.pending_boot else {
            return;
        };
        let needed = self.opts.min_peers.max(self.statics.len());
        let ready = needed == 0
            || self.connected.len() >= needed
            || self.started.elapsed() >= self.opts.peer_wait;
        if !ready {
            return;
        }
        self.pending_boot = None;
        if self.booting == Some(root) {
            return;
        }
        tracing::info!(%root, peers = self.connected.len(), "boot started");
        self.booting = Some(root);
        self.snap.booted = false;
        self.feed(Input::Boot { root });
    }

    // ----- install -----

    fn on_booted(&mut self, root: Cid) {
        self.install_next = Some(root);
        self.maybe_install();
    }

    /// Installs the booted release once every verified block has been written to the store.
    fn maybe_install(&mut self) {
        if self.installing || !self.unstored.is_empty() {
            return;
        }
        let Some(root) = self.install_next.take() else {
            return;
        };
        match self.opts.target.clone() {
            None => self.report_booted(root),
            Some(target) => self.start_install(root, target),
        }
    }

    fn start_install(&mut self, root: Cid, target: PathBuf) {
        self.installing = true;
        let (store, state, dir, tx) = (
            Arc::clone(&self.store),
            Arc::clone(&self.state),
            self.opts.store_dir.clone(),
            self.tx.clone(),
        );
        let channel = self.opts.channel.clone();
        let Some(seq) = self.root_seqs.get(&root).copied() else {
            tracing::warn!(%root, "a booted root has no known release; not installed");
            self.installing = false;
            return;
        };
        // Blocks may be collected only when no newer release is on its way in.
        let gc_blocks = self.current.as_ref().is_some_and(|c| c.root == root);
        let layout = upgrade::Layout {
            target: target.clone(),
            store_dir: dir.clone(),
            channel: channel.clone(),
            keep: self.opts.keep,
            hooks: self.opts.hooks.clone(),
        };
        let once = self.opts.once;
        tokio::spawn(async move {
            let result = blocking(move || {
                if !once {
                    return upgrade::install_version(&store, &state, &layout, seq, root, gc_blocks)
                        .map(|o| InstallDone::Version(seq, o));
                }
                // `bootswarm boot`: the direct layout, straight into the target.
                let stats = install::install(&*store, &root, &target)?;
                let mut st = state.lock().unwrap_or_else(PoisonError::into_inner);
                st.installed = Some(Installed {
                    channel,
                    seq,
                    root: root.to_string(),
                    target,
                });
                st.save(&dir)?;
                Ok(InstallDone::Direct(stats))
            })
            .await;
            let _ = tx.send(TaskMsg::Installed { root, result }).await;
        });
    }

    fn on_installed(&mut self, root: Cid, result: Result<InstallDone>) {
        self.installing = false;
        match result {
            Ok(InstallDone::Direct(stats)) => {
                self.installed = Some((root, Some(stats)));
                self.report_booted(root);
            }
            Ok(InstallDone::Version(seq, Outcome::Installed { stats, changed })) => {
                tracing::info!(seq, %root, ?changed, "release installed and switched to");
                self.installed = Some((root, stats));
                self.snap.installed = Some((seq, root.to_string()));
                self.report_booted(root);
            }
            Ok(InstallDone::Version(_, Outcome::RolledBack(failed) | Outcome::Skipped(failed))) => {
                tracing::warn!("{}", failed.reason);
                self.snap.upgrade_failure = Some(failed);
                self.report_booted(root);
            }
            Err(e) => {
                tracing::error!("installing release {root} failed: {e}");
                if let Some(&seq) = self.root_seqs.get(&root) {
                    self.snap.upgrade_failure = Some(FailedUpgrade {
                        seq,
                        root: root.to_string(),
                        reason: e.to_string(),
                        at: unix_now(),
                    });
                }
                if self.opts.once {
                    self.exit = Some(Err(e));
                }
            }
        }
    }

    fn report_booted(&mut self, root: Cid) {
        if self.booting != Some(root) {
            return;
        }
        let secs = self.started.elapsed().as_secs_f64();
        self.snap.booted = true;
        self.snap.booted_after = Some(secs);
        println!("booted {secs:.3}");
        if self.opts.once {
            self.exit = Some(Ok(()));
        }
    }

    // ----- peers and reporting -----

    fn dial_statics(&mut self) {
        for i in 0..self.statics.len() {
            let (addr, peer) = (self.statics[i].addr.clone(), self.statics[i].peer);
            if peer.is_some_and(|p| self.connected.contains_key(&p) || self.banned.contains(&p)) {
                continue;
            }
            if let Err(e) = self.swarm.dial(addr.clone()) {
                tracing::debug!(%addr, "cannot dial: {e}");
            }
        }
        let pending: Vec<Multiaddr> = self
            .discovered
            .iter()
            .filter(|(p, _)| !self.connected.contains_key(*p) && !self.banned.contains(*p))
            .map(|(_, a)| a.clone())
            .collect();
        for addr in pending {
            if let Err(e) = self.swarm.dial(addr.clone()) {
                tracing::debug!(%addr, "cannot dial a discovered peer: {e}");
            }
        }
    }

    fn peer_label(&self, peer: &PeerId) -> String {
        let label = peer.to_string();
        if self.snap.bytes_by_peer.len() >= MAX_PEER_LABELS
            && !self.snap.bytes_by_peer.contains_key(&label)
        {
            "other".to_string()
        } else {
            label
        }
    }

    fn node_label(&self, node: NodeId) -> String {
        self.nodes
            .get(&node)
            .map_or_else(|| node.to_string(), PeerId::to_string)
    }

    fn source_label(&self, source: Source) -> String {
        match source {
            Source::Hub => "hub".to_string(),
            Source::Peer(node) => self.node_label(node),
        }
    }

    fn publish_snapshot(&mut self) {
        let p = self.agent.progress();
        self.snap.have_blocks = p.have_blocks as u64;
        self.snap.total_blocks = p.total_blocks as u64;
        self.snap.have_bytes = p.have_bytes;
        self.snap.total_bytes = p.total_bytes;
        self.snap.peers = self.connected.len();
        *self.shared.lock().unwrap_or_else(PoisonError::into_inner) = self.snap.clone();
    }
}

/// Where the accepted signed release of `channel` is kept.
fn release_path(store_dir: &std::path::Path, channel: &str) -> PathBuf {
    store_dir.join(format!("release-{channel}.cbor"))
}

/// Adds one to a labelled counter, folding labels past the cap into "other".
fn bump(map: &mut std::collections::BTreeMap<String, u64>, label: String) {
    let label = if map.len() >= MAX_PEER_LABELS && !map.contains_key(&label) {
        "other".to_string()
    } else {
        label
    };
    *map.entry(label).or_insert(0) += 1;
}

/// Whether two addresses name the same transport endpoint (ignoring a `/p2p/` suffix).
fn same_transport(a: &Multiaddr, b: &Multiaddr) -> bool {
    let strip = |m: &Multiaddr| -> Multiaddr {
        m.iter()
            .filter(|p| !matches!(p, Protocol::P2p(_)))
            .collect()
    };
    strip(a) == strip(b)
}

fn rand_u64() -> u64 {
    let mut b = [0u8; 8];
    let _ = getrandom::fill(&mut b);
    u64::from_le_bytes(b)
}

trait LenU64 {
    fn len_u64(&self) -> u64;
}

impl LenU64 for Block {
    fn len_u64(&self) -> u64 {
        bootswarm_protocol::agent::Payload::len(self) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_ids_are_stable_and_distinct() {
        let a = PeerId::random();
        let b = PeerId::random();
        assert_eq!(node_id(&a), node_id(&a));
        assert_ne!(node_id(&a), node_id(&b));
    }

    #[test]
    fn same_transport_ignores_the_peer_id() {
        let p = PeerId::random();
        let a: Multiaddr = "/ip4/127.0.0.1/tcp/4101".parse().unwrap();
        let b = a.clone().with_p2p(p).unwrap();
        assert!(same_transport(&a, &b));
        let c: Multiaddr = "/ip4/127.0.0.1/tcp/4102".parse().unwrap();
        assert!(!same_transport(&a, &c));
    }
}
