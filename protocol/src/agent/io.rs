//! What goes into the agent and what comes out of it.

use std::fmt;

use super::{Message, NodeId, PlanError, Rack, RequestId, ServeId, Source};
use crate::block::Cid;

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
    /// The racks members said they are in (`None`: no rack), as the driver learned them.
    Racks(Vec<(NodeId, Option<Rack>)>),
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
    /// The time from [`Agent::poll_timeout`](super::Agent::poll_timeout) has come.
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
    /// This node's hub fetches fail while the hub serves its neighbours: it left its share of
    /// the release to the owners ranked next.
    Resigned,
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
    /// Requests peers failed (timed out, refused, or answered only busy for 3 stall periods).
    pub misses: u64,
    /// Owners deposed for not delivering in time.
    pub owners_deposed: u64,
    /// Neighbours dropped for not answering a `Hello`.
    pub silent_dropped: u64,
    /// Owners that resigned (`Message::Resign`) for the current release.
    pub resignations: u64,
    /// This node resigned its ownership for the current release: its hub fetches failed while
    /// the hub served others.
    pub resigned: bool,
}
