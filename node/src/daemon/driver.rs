//! The event loop: moves bytes, timers and disk I/O for the two sans-IO state machines, which
//! make every decision: the [`Agent`] (blocks: what to fetch from whom, what to serve) and
//! the [`Follower`] (releases: which to adopt, when to poll, boot, install, switch back).
//!
//! Peers become agent members while connected; control messages, block requests and releases
//! travel over length-capped request-response protocols; releases are also gossiped, each one
//! judged by the follower before it is forwarded.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bootswarm_protocol::agent::{
    Agent, AgentConfig, Event, FetchError, HubMode, Input, Message, NodeId, Output, RequestId,
    ServeId, Source, Time,
};
use bootswarm_protocol::block::{Cid, check_cid};
use bootswarm_protocol::follower::{
    self, Follower, FollowerConfig, InstallMode, Output as Action, Restored, Verdict, Via,
};
use bootswarm_protocol::release::RefusalKind;
use bootswarm_protocol::store::StoreError;
use libp2p::futures::StreamExt;
use libp2p::gossipsub::{self, IdentTopic, MessageAcceptance};
use libp2p::request_response::{self, OutboundRequestId, ResponseChannel};
use libp2p::swarm::SwarmEvent;
use libp2p::{PeerId, Swarm, identify, mdns};
use tokio::sync::{mpsc, oneshot};
use tokio::task::AbortHandle;

use super::behaviour::{
    Behaviour, BehaviourEvent, Refused, SwarmSetup, build_swarm, rack_of, release_topic,
};
use super::codec::{STATUS_BUSY, STATUS_NOT_FOUND, STATUS_OK, STATUS_OTHER};
use super::farm::{Farm, summary_topic};
use super::hooks;
use super::payload::Block;
use super::peers::{Peers, node_id};
use super::status::{AnnounceReply, AnnounceRequest, Shared, Snapshot, bump};
use super::tasks::{TASK_CHANNEL, TaskMsg, Tasks, release_path, version};
use super::test_hooks::crash_point;
use super::versions::{self, Layout};
use super::{DaemonOptions, DaemonReport};
use crate::error::{Error, Result};
use crate::hub::client::HubClient;
use crate::materialise::MaterialiseStats;
use crate::state::{FailedUpgrade, NodeState};
use crate::store::SledStore;
use crate::task::{blocking, unix_now};
use setup::{failed, follower_config, random_seed, restored};

/// Lookups running at once (the rest wait in a queue bounded by the release's block count).
const LOOKUPS_IN_FLIGHT: usize = 8;
/// First and longest wait between failed release polls of the hub.
const POLL_BACKOFF: Duration = Duration::from_secs(1);
const POLL_BACKOFF_MAX: Duration = Duration::from_secs(30);
/// Hub fetches per node at once. The hub link is shared by the whole farm, so a few per node
/// fill it; more only make every block (and its HAVE) arrive later. Measured on 4 nodes × 64 MiB
/// at 100 Mbit/s: all blocks held after 1.1 × T_min with 2, 1.8 × T_min with the default 8.
const HUB_CONCURRENCY: usize = 2;
/// Housekeeping tick: snapshot for HTTP, redials.
const TICK: Duration = Duration::from_millis(200);
/// Least time between two snapshots for HTTP while events flow. Building one names every
/// peer and copies the counters: done after every event it took a tenth of a node's CPU in
/// a boot (the times in it are stamped when things happen, not when it is built).
const PUBLISH_EVERY: Duration = Duration::from_millis(100);
/// Capacity of the queue of announced releases.
const ANNOUNCE_QUEUE: usize = 16;

mod install;
mod misbehave;
mod quota;
mod report;
mod setup;
mod swarm;
mod upload;

/// How a fetch in flight can be abandoned.
enum FetchHandle {
    Peer,
    Hub(AbortHandle),
}

/// Who waits for the follower's verdict on a release.
enum Ticket {
    Gossip {
        id: gossipsub::MessageId,
        from: PeerId,
    },
    Operator(oneshot::Sender<AnnounceReply>),
    Peer(PeerId),
}

/// At most one log line a second for a repeated event; the lines left out are counted.
#[derive(Debug, Default)]
struct LogLimit {
    last: Option<Instant>,
    suppressed: u64,
}

impl LogLimit {
    /// Whether to log now; if so, how many lines were left out since the last one.
    fn allow(&mut self, now: Instant) -> Option<u64> {
        if self
            .last
            .is_some_and(|t| now.duration_since(t) < Duration::from_secs(1))
        {
            self.suppressed += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.suppressed))
    }
}

/// The daemon's state around the agent and the follower.
pub(crate) struct Driver {
    opts: DaemonOptions,
    swarm: Swarm<Behaviour>,
    agent: Agent<Block>,
    follower: Follower,
    tasks: Tasks,
    hub: HubClient,
    topic: IdentTopic,
    /// Where node summaries are gossiped, and those heard.
    summary_topic: IdentTopic,
    farm: Farm,
    /// The change hooks running: why, and for which packages.
    hook_job: Option<(follower::HookAction, Vec<String>)>,
    epoch: Instant,
    rx: mpsc::Receiver<TaskMsg>,
    inputs: VecDeque<Input<Block>>,
    peers: Peers,
    // Fetches and serves.
    fetches: HashMap<RequestId, FetchHandle>,
    block_out: HashMap<OutboundRequestId, (RequestId, Cid)>,
    serves: HashMap<ServeId, (ResponseChannel<Vec<u8>>, PeerId)>,
    /// Requests being answered, and by whom they were asked.
    serve_in: HashMap<request_response::InboundRequestId, (ServeId, PeerId)>,
    /// Responses waiting for `--upload-rate`.
    uploads: Option<upload::Uploads>,
    /// Length of the blocks served lately (a moving average).
    served_len: u64,
    next_serve: u64,
    lookups: VecDeque<Cid>,
    lookups_in_flight: usize,
    /// Verified blocks being written to the store, served from memory meanwhile (a peer asks
    /// for a block the moment our HAVE reaches it).
    unstored: HashMap<Cid, Arc<Block>>,
    /// A root the agent holds every block of, reported to the follower once they are stored.
    held: Option<Cid>,
    /// The root whose size was checked against the store quota.
    quota_checked: Option<Cid>,
    /// The version whose files are being written ahead of its install.
    prewrite: Option<super::prewrite::Prewrite>,
    /// The last root considered for writing ahead.
    prewrite_root: Option<Cid>,
    /// Bumped each time a block is stored (the local block endpoint waits on it).
    stored: tokio::sync::watch::Sender<u64>,
    // Releases and installs.
    state: Arc<Mutex<NodeState>>,
    layout: Option<Layout>,
    /// The version whose upgrade is being installed (for the crash points).
    upgrading: Option<u64>,
    tickets: HashMap<u64, Ticket>,
    next_ticket: u64,
    wrong_topic: u64,
    wrote: Option<MaterialiseStats>,
    hub_down_logged: bool,
    /// Refused releases are logged at most once a second.
    refusal_log: LogLimit,
    /// Block requests a withholding test peer never answers (bounded).
    withheld: VecDeque<ResponseChannel<Vec<u8>>>,
    /// When a replaying test peer last re-gossiped its release.
    replayed: Instant,
    /// When a flooding test peer last gossiped forged releases.
    flooded: Instant,
    /// Operator announcements (`POST /v1/announce`).
    announce_tx: mpsc::Sender<AnnounceRequest>,
    announce_rx: mpsc::Receiver<AnnounceRequest>,
    // Reporting.
    /// Connections the swarm key refused.
    refused: Refused,
    snap: Snapshot,
    /// When `snap` last went to the HTTP readers.
    published: Option<Instant>,
    shared: Shared,
    exit: Option<Result<()>>,
}

impl Driver {
    /// Opens the store, builds the swarm and starts listening and dialling. Every failure is
    /// one sentence.
    pub(crate) async fn start(opts: DaemonOptions, shared: Shared) -> Result<Driver> {
        let hub = HubClient::with_tls(&opts.hub_url, &opts.tls)?;
        let dir = opts.store_dir.clone();
        let quota = opts.store_quota;
        let store = blocking(move || SledStore::open_with_quota(&dir, quota)).await?;
        let dir = opts.store_dir.clone();
        let state = blocking(move || NodeState::load(&dir)).await?;

        let (mut swarm, refused) = build_swarm(SwarmSetup {
            key: opts.identity.clone(),
            mdns: opts.mdns,
            swarm_key: opts.swarm_key,
            channel: opts.channel.clone(),
            rack: opts.rack,
        })?;
        for addr in &opts.listen {
            swarm.listen_on(addr.clone()).map_err(|e| {
                Error::new(format!(
                    "cannot listen on {addr} ({}); choose another --listen address or port",
                    super::transport_cause(&e)
                ))
            })?;
        }
        let topic = release_topic(&opts.channel);
        let summary_topic = summary_topic(&opts.channel);
        for t in [&topic, &summary_topic] {
            swarm
                .behaviour_mut()
                .gossipsub
                .subscribe(t)
                .map_err(|e| Error::new(format!("cannot subscribe to gossip ({e})")))?;
        }

        let epoch = Instant::now();
        let peers = Peers::new(&opts.peers, epoch);
        let agent = Agent::new(AgentConfig {
            id: node_id(swarm.local_peer_id()),
            seed: random_seed()?,
            hub: if opts.hub_only {
                HubMode::Only
            } else {
                HubMode::Fallback
            },
            hub_concurrency: HUB_CONCURRENCY,
            rack: opts.rack,
            hub_window: opts.hub_window.unwrap_or(u64::MAX),
            ..AgentConfig::default()
        });
        let layout = opts.target.clone().map(|target| Layout {
            target,
            store_dir: opts.store_dir.clone(),
            channel: opts.channel.clone(),
            keep: opts.keep,
        });
        let path = release_path(&opts.store_dir, &opts.channel);
        let saved = blocking(move || {
            Ok(
                crate::fsutil::read_capped(&path, bootswarm_protocol::release::MAX_RELEASE_SIZE)
                    .ok(),
            )
        })
        .await?;
        let follower = Follower::new(
            follower_config(&opts, peers.statics(), node_id(swarm.local_peer_id()))?,
            restored(&state, &opts, saved),
            Time::ZERO,
            unix_now(),
        );
        let (tx, rx) = mpsc::channel(TASK_CHANNEL);
        let (announce_tx, announce_rx) = mpsc::channel(ANNOUNCE_QUEUE);
        let snap = Snapshot {
            peer_id: swarm.local_peer_id().to_string(),
            channel: opts.channel.clone(),
            hub_only: opts.hub_only,
            ..Snapshot::default()
        };
        let mut driver = Driver {
            swarm,
            agent,
            follower,
            tasks: Tasks::new(Arc::new(store), tx, Arc::clone(&opts.upstreams)),
            hub,
            topic,
            summary_topic,
            farm: Farm::default(),
            hook_job: None,
            epoch,
            rx,
            inputs: VecDeque::new(),
            peers,
            fetches: HashMap::new(),
            block_out: HashMap::new(),
            serves: HashMap::new(),
            serve_in: HashMap::new(),
            published: None,
            uploads: opts
                .upload
                .rate
                .map(|r| upload::Uploads::new(r, Instant::now())),
            served_len: bootswarm_protocol::block::MAX_BLOCK_SIZE as u64,
            next_serve: 0,
            lookups: VecDeque::new(),
            lookups_in_flight: 0,
            unstored: HashMap::new(),
            stored: tokio::sync::watch::Sender::new(0),
            held: None,
            quota_checked: None,
            prewrite: None,
            prewrite_root: None,
            state: Arc::new(Mutex::new(state)),
            layout,
            upgrading: None,
            tickets: HashMap::new(),
            next_ticket: 1,
            wrong_topic: 0,
            wrote: None,
            hub_down_logged: false,
            withheld: VecDeque::new(),
            refusal_log: LogLimit::default(),
            replayed: epoch,
            flooded: epoch,
            announce_tx,
            announce_rx,
            refused,
            snap,
            shared,
            exit: None,
            opts,
        };
        if let Some(layout) = driver.layout.clone() {
            let (store, state) = (Arc::clone(&driver.tasks.store), Arc::clone(&driver.state));
            blocking(move || {
                versions::pin_kept(&store, &state, &layout);
                Ok(())
            })
            .await?;
        }
        driver.peers.redial(&mut driver.swarm, None);
        driver.drain_follower();
        Ok(driver)
    }

    /// Where operators hand releases to this node.
    pub(crate) fn announcer(&self) -> mpsc::Sender<AnnounceRequest> {
        self.announce_tx.clone()
    }

    /// The local block endpoint's view of this node's blocks.
    pub(crate) fn local_blocks(&self, shared: Shared) -> super::blocks::LocalBlocks {
        super::blocks::LocalBlocks::new(
            Arc::clone(&self.tasks.store),
            self.hub.clone(),
            Arc::clone(&self.tasks.upstreams),
            shared,
            self.stored.subscribe(),
        )
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
            let deadline = [self.agent.poll_timeout(), self.follower.poll_timeout()]
                .into_iter()
                .flatten()
                .min()
                .map(|t| self.epoch + Duration::from_nanos(t.as_nanos()));
            let sleep = async move {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d.into()).await,
                    None => std::future::pending().await,
                }
            };
            let upload_at = self.uploads.as_ref().and_then(upload::Uploads::next_at);
            let upload = async move {
                match upload_at {
                    Some(d) => tokio::time::sleep_until(d.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                event = self.swarm.select_next_some() => self.on_swarm_event(event),
                Some(msg) = self.rx.recv() => self.on_task(msg),
                Some(req) = self.announce_rx.recv() => self.on_announce(req),
                () = sleep => {
                    self.feed(Input::Timeout);
                    self.tell(follower::Input::Timeout);
                }
                _ = tick.tick() => {}
                // The responses now allowed leave in the housekeeping above.
                () = upload => {}
                _ = &mut shutdown => {
                    tracing::info!("shutting down");
                    self.exit = Some(Ok(()));
                }
            }
        }
        self.publish_snapshot();
        let store = Arc::clone(&self.tasks.store);
        let flushed = blocking(move || store.flush()).await;
        let outcome = self.exit.take().unwrap_or(Ok(()));
        outcome?;
        flushed?;
        let current = self.follower.current().map(|c| c.version);
        Ok(DaemonReport {
            seq: current.map_or(0, |v| v.seq),
            root: current.map(|v| v.root),
            booted_after: self.snap.booted_after.map(Duration::from_secs_f64),
            bytes_from_hub: self.snap.bytes_from_hub,
            bytes_from_peers: self.snap.bytes_from_peers,
            tree: self.wrote,
        })
    }

    fn now(&self) -> Time {
        Time::from_nanos(u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX))
    }

    /// Feeds one input to the agent and carries out everything it asks for.
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

    /// Tells the follower a fact and carries out everything it asks for.
    fn tell(&mut self, fact: follower::Input) {
        let now = self.now();
        self.follower.handle(now, unix_now(), fact);
        self.drain_follower();
    }

    fn drain_follower(&mut self) {
        while let Some(action) = self.follower.poll_output() {
            self.on_action(action);
        }
    }

    fn housekeeping(&mut self) {
        self.peers.redial(&mut self.swarm, Some(Instant::now()));
        self.replay();
        self.forge_flood();
        self.report_held();
        self.check_quota();
        self.maybe_prewrite();
        self.pump_lookups();
        self.release_uploads();
        if self
            .published
            .is_none_or(|at| at.elapsed() >= PUBLISH_EVERY)
        {
            self.publish_snapshot();
        }
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
                Source::Hub => {
                    tracing::debug!(%cid, len, "fetch from the hub");
                    let handle = self.tasks.fetch_hub(&self.hub, req, cid, len);
                    self.fetches.insert(req, FetchHandle::Hub(handle));
                }
            },
            Output::Cancel { req } => {
                if let Some(FetchHandle::Hub(h)) = self.fetches.remove(&req) {
                    h.abort();
                }
            }
            Output::Serve { id, cid } => match self.unstored.get(&cid) {
                Some(block) => self.tasks.served(id, block.as_bytes().to_vec()),
                None => self.tasks.serve(id, cid),
            },
            Output::Refuse { id, error } => {
                let code = match error {
                    FetchError::Busy => STATUS_BUSY,
                    FetchError::NotFound => STATUS_NOT_FOUND,
                    _ => STATUS_OTHER,
                };
                if let Some((ch, _)) = self.serves.remove(&id) {
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
                self.tasks.store(cid, block);
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
                self.snap.held_after = Some(self.epoch.elapsed().as_secs_f64());
                self.held = Some(root);
            }
            Event::Rejected { from, cid } => {
                let source = self.source_label(from);
                tracing::warn!(%cid, %source, "a block failed verification and was thrown away");
                bump(&mut self.snap.failures, source);
            }
            Event::PeerPenalised { peer, faults } => {
                let label = self.peers.label(peer);
                tracing::info!(peer = %label, faults, "peer penalised");
                bump(&mut self.snap.penalties, label);
            }
            Event::PeerBanned { peer } => {
                let label = self.peers.label(peer);
                tracing::warn!(peer = %label, "peer banned after repeated faults");
                if !self.snap.banned.contains(&label) {
                    self.snap.banned.push(label);
                }
                if let Some(pid) = self.peers.ban(peer) {
                    let _ = self.swarm.disconnect_peer_id(pid);
                }
            }
            Event::Resigned => tracing::warn!(
                hub = %self.opts.hub_url,
                "this node cannot reach the hub while its neighbours can, so it leaves its share \
                 of the release to them; check --hub and this node's route to the hub"
            ),
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

    /// Tells the follower about a booted root once every verified block has been written.
    fn report_held(&mut self) {
        if !self.unstored.is_empty() {
            return;
        }
        if let Some(root) = self.held.take() {
            self.tell(follower::Input::Booted { root });
        }
    }

    fn send_control(&mut self, to: NodeId, msg: &Message) {
        let Some(peer) = self.peers.peer(to) else {
            return;
        };
        let bytes = match msg {
            Message::Hello {
                release,
                fetching,
                reply,
                rack,
                ..
            } if self.opts.test.withhold() => {
                // Claims every block of the release.
                let mut bits = bootswarm_protocol::agent::Bitfield::new();
                for b in 0..self.agent.progress().total_blocks as u32 {
                    bits.set(b);
                }
                let hello = Message::Hello {
                    release: *release,
                    bits,
                    fetching: fetching.clone(),
                    reply: *reply,
                    rack: *rack,
                };
                hello.encode()
            }
            _ => msg.encode(),
        };
        if !self.peers.queue_control(peer, bytes) {
            tracing::debug!(%peer, "control queue full; message dropped");
            return;
        }
        self.pump_control(peer);
    }

    fn pump_control(&mut self, peer: PeerId) {
        if let Some(bytes) = self.peers.next_control(&peer) {
            self.swarm
                .behaviour_mut()
                .control
                .send_request(&peer, bytes);
        }
    }

    fn fetch_from_peer(&mut self, req: RequestId, node: NodeId, cid: Cid) {
        tracing::debug!(%cid, %node, "fetch from a peer");
        let Some(peer) = self.peers.peer(node) else {
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
        self.block_out.insert(out, (req, cid));
        self.fetches.insert(req, FetchHandle::Peer);
    }

    fn pump_lookups(&mut self) {
        while self.lookups_in_flight < LOOKUPS_IN_FLIGHT {
            let Some(cid) = self.lookups.pop_front() else {
                return;
            };
            self.lookups_in_flight += 1;
            self.tasks.lookup(cid);
        }
    }

    // ----- task results -----

    fn on_task(&mut self, msg: TaskMsg) {
        match msg {
            TaskMsg::Fetched { req, payload } => {
                if let Some(handle) = self.fetches.remove(&req) {
                    if matches!(handle, FetchHandle::Hub(_)) {
                        let n = bootswarm_protocol::agent::Payload::len(&payload) as u64;
                        self.snap.bytes_from_hub += n;
                        self.snap.release_bytes_from_hub += n;
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
                match result {
                    Ok(()) => self.stored.send_modify(|n| *n += 1),
                    Err(e) => self.on_store_failed(cid, &e),
                }
                self.report_held();
            }
            TaskMsg::Follower(fact, wrote) => {
                if let Some(stats) = wrote {
                    self.wrote = Some(stats);
                    self.snap.last_install = Some(stats);
                }
                if let follower::Input::Polled(result) = &fact {
                    self.log_poll(result);
                }
                self.record_hooks(&fact);
                self.tell(fact);
            }
            TaskMsg::SaveFailed(e) => self.exit = Some(Err(e)),
        }
    }

    fn log_poll(&mut self, result: &std::result::Result<Vec<u8>, String>) {
        match result {
            Ok(_) => self.hub_down_logged = false,
            Err(e) if self.hub_down_logged => tracing::debug!("release poll failed: {e}"),
            Err(e) => {
                tracing::warn!(
                    "{e}; retrying with back-off and listening for the release on gossip"
                );
                self.hub_down_logged = true;
            }
        }
    }

    // ----- the follower's actions -----

    fn on_action(&mut self, action: Action) {
        match action {
            Action::Judged {
                ticket,
                via,
                verdict,
            } => self.on_judged(ticket, via, &verdict),
            Action::Publish { bytes } => {
                if let Err(e) = self
                    .swarm
                    .behaviour_mut()
                    .gossipsub
                    .publish(self.topic.clone(), bytes)
                {
                    tracing::debug!("release not gossiped: {e}");
                }
            }
            Action::Save { high_water, bytes } => {
                tracing::info!(seq = high_water.seq, root = %high_water.root, "release accepted");
                self.tasks.save(
                    &self.state,
                    &self.opts.store_dir,
                    &self.opts.channel,
                    (high_water, bytes),
                    |st| {
                        if st.installed.is_some() {
                            crash_point("after-hwm");
                        }
                    },
                );
            }
            Action::Poll => self.tasks.poll(&self.hub, &self.opts.channel),
            Action::Boot { root } => {
                tracing::info!(%root, peers = self.peers.count(), "boot started");
                self.snap.held_after = None;
                self.snap.release_bytes_from_hub = 0;
                self.begin_boot(root);
            }
            Action::InUse { version } => {
                let secs = self.epoch.elapsed().as_secs_f64();
                tracing::info!(seq = version.seq, root = %version.root, "release in use");
                // Whoever reads the line may ask /status next: it says booted first.
                self.publish_snapshot();
                println!("booted {secs:.3}");
                if self.opts.once {
                    self.exit = Some(Ok(()));
                }
            }
            Action::InstallFailed { failure } => {
                let v = failure.version;
                tracing::error!("installing release {} failed: {}", v.root, failure.reason);
                if self.opts.once {
                    self.exit = Some(Err(Error::new(failure.reason)));
                }
            }
            step => self.install_step(step),
        }
    }

    fn on_judged(&mut self, ticket: u64, via: Via, verdict: &Verdict) {
        match verdict {
            Verdict::New(_) | Verdict::Current(_) => {}
            Verdict::Ignored { reason, .. } => tracing::debug!(?via, "release ignored: {reason}"),
            Verdict::Rejected { kind, reason } => {
                self.record_refusal(report::via_name(via), *kind, reason);
                // A flood of bad releases costs at most about one log line per second.
                if let Some(more) = self.refusal_log.allow(Instant::now()) {
                    if *kind == RefusalKind::Equivocation {
                        tracing::warn!(
                            "a trusted publisher signed two roots for one seq: {reason}"
                        );
                    }
                    tracing::warn!(?via, suppressed = more, "release refused: {reason}");
                }
            }
        }
        match self.tickets.remove(&ticket) {
            Some(Ticket::Gossip { id, from }) => {
                let acceptance = match verdict.gossip() {
                    bootswarm_protocol::release::GossipVerdict::Accept => MessageAcceptance::Accept,
                    bootswarm_protocol::release::GossipVerdict::Ignore => MessageAcceptance::Ignore,
                    bootswarm_protocol::release::GossipVerdict::Reject => MessageAcceptance::Reject,
                };
                self.swarm
                    .behaviour_mut()
                    .gossipsub
                    .report_message_validation_result(&id, &from, acceptance);
            }
            Some(Ticket::Operator(reply)) => {
                let answer = match verdict {
                    Verdict::New(seq) => AnnounceReply::Accepted(*seq),
                    Verdict::Current(seq) => AnnounceReply::Current(*seq),
                    Verdict::Ignored { kind, reason } | Verdict::Rejected { kind, reason } => {
                        AnnounceReply::Refused(*kind, reason.clone())
                    }
                };
                let _ = reply.send(answer);
            }
            Some(Ticket::Peer(peer)) => tracing::debug!(%peer, "release from a peer judged"),
            None => {}
        }
    }

    /// Gives the follower a release, remembering who waits for the verdict.
    fn judge(&mut self, bytes: Vec<u8>, via: Via, author: Option<PeerId>, ticket: Ticket) {
        let id = self.next_ticket;
        self.next_ticket += 1;
        self.tickets.insert(id, ticket);
        self.tell(follower::Input::Release {
            bytes,
            via,
            author: author.map(|p| node_id(&p)),
            ticket: id,
        });
        // The verdict came in the same call; anything left over is stale.
        self.tickets.remove(&id);
    }

    /// An operator handed over a release: the follower judges it and the verdict is the
    /// answer.
    fn on_announce(&mut self, req: AnnounceRequest) {
        self.judge(req.bytes, Via::Operator, None, Ticket::Operator(req.reply));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_of_log_lines_is_one_a_second() {
        let mut log = LogLimit::default();
        let t0 = Instant::now();
        assert_eq!(log.allow(t0), Some(0));
        let logged = (1..1000)
            .filter(|i| log.allow(t0 + Duration::from_millis(*i)).is_some())
            .count();
        assert_eq!(logged, 0);
        assert_eq!(log.allow(t0 + Duration::from_millis(1001)), Some(999));
    }
}
