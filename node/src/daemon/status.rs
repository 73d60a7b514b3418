//! What the daemon reports and what operators hand it: the snapshot shared between the event
//! loop and the HTTP endpoint, and announced releases.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

use bootswarm_protocol::release::RefusalKind;
use tokio::sync::oneshot;

use super::farm::FarmView;
use super::ledger::{HookRun, PeerRow, Refusal};
use crate::state::FailedUpgrade;

/// Most peers given their own label in /metrics; the rest are summed as "other".
pub(crate) const MAX_PEER_LABELS: usize = 256;

/// What the daemon reports, refreshed by the event loop.
#[derive(Debug, Clone, Default)]
pub(crate) struct Snapshot {
    /// This node's libp2p peer id.
    pub(crate) peer_id: String,
    /// The channel followed.
    pub(crate) channel: String,
    /// Seq and root of the release being booted or booted.
    pub(crate) release: Option<(u64, String)>,
    /// Seconds until that release expires (negative once it has).
    pub(crate) expires_in: Option<i64>,
    /// The release expires within two poll periods (or there is none): every node polls.
    pub(crate) stale: bool,
    /// Whether the release is booted (and installed, when there is a target).
    pub(crate) booted: bool,
    /// Seconds from start to booted (and installed, when there is a target).
    pub(crate) booted_after: Option<f64>,
    /// Seconds from start until every block was held and verified.
    pub(crate) held_after: Option<f64>,
    pub(crate) have_blocks: u64,
    pub(crate) total_blocks: u64,
    pub(crate) have_bytes: u64,
    pub(crate) total_bytes: u64,
    /// Connected peers.
    pub(crate) peers: usize,
    /// Connections refused because the other end lacks the swarm key.
    pub(crate) handshakes_refused: u64,
    /// Bytes received from each peer (verified or not), by peer id.
    pub(crate) bytes_by_peer: BTreeMap<String, u64>,
    pub(crate) bytes_from_peers: u64,
    pub(crate) bytes_from_hub: u64,
    pub(crate) bytes_served: u64,
    /// Block requests turned away busy by `--upload-rate` or `--max-upload-peers`.
    pub(crate) uploads_refused: u64,
    /// How full the store is.
    pub(crate) store: crate::store::StoreUsage,
    /// What the last install wrote (files written ahead of it among them).
    pub(crate) last_install: Option<crate::materialise::MaterialiseStats>,
    /// Bytes served to each peer, by peer id (capped like `bytes_by_peer`).
    pub(crate) bytes_to_peer: BTreeMap<String, u64>,
    /// Hub bytes since the current release's boot started.
    pub(crate) release_bytes_from_hub: u64,
    pub(crate) blocks_served: u64,
    pub(crate) blocks_verified: u64,
    /// Verification failures by source ("hub" or a peer id).
    pub(crate) failures: BTreeMap<String, u64>,
    /// Penalties given to each peer (corrupt data, timeouts).
    pub(crate) penalties: BTreeMap<String, u64>,
    /// Banned peers.
    pub(crate) banned: Vec<String>,
    pub(crate) hub_only: bool,
    /// Seq and root `TARGET/current` points at (daemon layout).
    pub(crate) installed: Option<(u64, String)>,
    /// The last upgrade rolled back, and why.
    pub(crate) upgrade_failure: Option<FailedUpgrade>,
    /// Releases accepted as new.
    pub(crate) releases_accepted: u64,
    /// Releases refused, by kind (`bad_signature`, `rollback`, ...).
    pub(crate) refusals: BTreeMap<String, u64>,
    /// The last refusal, one sentence.
    pub(crate) last_refusal: Option<String>,
    /// Release polls sent to the hub.
    pub(crate) hub_polls: u64,
    /// Polls put off because the release arrived by gossip (or an announce).
    pub(crate) polls_deferred: u64,
    /// The busiest peers with their state.
    pub(crate) peer_rows: Vec<PeerRow>,
    /// The last refusals, the newest last.
    pub(crate) recent_refusals: VecDeque<Refusal>,
    /// The last hook runs and health checks, the newest last.
    pub(crate) recent_hooks: VecDeque<HookRun>,
    /// Hook runs and health checks by (what, `ok` or `failed`).
    pub(crate) hook_runs: BTreeMap<(String, String), u64>,
    /// What the farm's nodes report.
    pub(crate) farm: FarmView,
}

/// The snapshot shared between the event loop and the HTTP server.
pub(crate) type Shared = Arc<Mutex<Snapshot>>;

/// Adds one to a labelled counter, folding labels past the cap into "other".
pub(crate) fn bump(map: &mut BTreeMap<String, u64>, label: String) {
    let label = if map.len() >= MAX_PEER_LABELS && !map.contains_key(&label) {
        "other".to_string()
    } else {
        label
    };
    *map.entry(label).or_insert(0) += 1;
}

/// A signed release handed to the node over HTTP (`POST /v1/announce`).
#[derive(Debug)]
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
    Refused(RefusalKind, String),
}
