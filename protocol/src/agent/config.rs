//! The agent's settings.

use std::time::Duration;

use super::{NodeId, Rack};

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
    /// Uploads at once to one peer (an honest requester asks at most `peer_pipeline` of one
    /// peer); more requests from it are refused as busy.
    pub max_serves_per_peer: usize,
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
    /// A neighbour this node picked that has not answered its `Hello` within this is dropped,
    /// penalised, and no longer counted as an owner.
    pub greet_timeout: Duration,
    /// An owner is late with a block once a hub fetch no smaller than it, started after the
    /// block was due, completed this long ago (time for the block to reach a neighbour).
    pub duty_grace: Duration,
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
    /// The most a block asked only of holders not relied on waits before another holder (and
    /// its owner, the hub) is asked: twice the slowest recent peer delivery, capped here. A
    /// holder not relied on that is outrun after this long takes a miss.
    pub second_holder_after: Duration,
    /// This node's rack, if known: neighbours are picked mostly in it, holders in it are asked
    /// first, and chunks cross its uplink about once (see the racks part).
    pub rack: Option<Rack>,
    /// How much longer each member of a rack, by rank, waits for a holder in the rack before it
    /// fetches a chunk that only other racks hold.
    pub rack_step: Duration,
    /// Neighbours this node picks outside its rack (when it knows its rack), so blocks still
    /// flow between racks.
    pub cross_rack_neighbours: usize,
    /// The farm's hub window: an owner fetches a chunk from the hub only once it is among the
    /// first this many bytes, in boot order, of the chunks nobody is seen to hold (see the
    /// window part); `u64::MAX` fetches every owned chunk at once.
    pub hub_window: u64,
    /// Faults after which a peer is banned: corrupt blocks, plus requests it failed (timed
    /// out, refused, or answered only busy for 3 × `stall_timeout`) since it last delivered
    /// one.
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
            max_serves_per_peer: 4,
            neighbours: 8,
            max_neighbours: 32,
            stall_timeout: Duration::from_secs(2),
            escalate_after: Duration::from_secs(10),
            join_window: Duration::from_secs(5),
            join_grace: Duration::from_secs(4),
            hello_grace: Duration::from_millis(50),
            greet_timeout: Duration::from_secs(2),
            duty_grace: Duration::from_secs(1),
            peer_timeout: Duration::from_secs(3),
            peer_min_rate: 1 << 20,
            hub_timeout: Duration::from_secs(30),
            hub_min_rate: 4 << 10,
            idle_timeout: Duration::from_secs(5),
            hub_backoff: Duration::from_secs(1),
            hub_backoff_max: Duration::from_secs(8),
            busy_backoff: Duration::from_millis(20),
            endgame_blocks: 8,
            second_holder_after: Duration::from_secs(1),
            ban_after: 3,
            hub_window: u64::MAX,
            rack: None,
            rack_step: Duration::from_millis(100),
            cross_rack_neighbours: 2,
        }
    }
}
