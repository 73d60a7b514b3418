//! What the follower takes and gives: its settings, the facts the driver reports, the actions
//! it asks for, and what it reports.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::agent::{NodeId, Time};
use crate::block::Cid;
use crate::release::{GossipVerdict, HighWater, RefusalKind, TrustRoot};

/// Where a release came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// The hub's answer to a poll.
    Hub,
    /// Release gossip.
    Gossip,
    /// A peer answering "what is your release" when a link opens.
    Peer,
    /// The copy an earlier run saved.
    Disk,
    /// Handed over by an operator (`bootswarm announce`).
    Operator,
}

/// What happens to a release once its blocks are all held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstallMode {
    /// Nothing is installed: the node only caches and serves.
    None,
    /// Written straight into the target, once (`bootswarm boot`).
    Direct,
    /// Each version side by side, switched to atomically; on an upgrade the change hooks and
    /// the health check run, and a failure switches back.
    Versions {
        /// Whether a change hook is configured.
        hooks: bool,
        /// Whether a health check is configured.
        health_check: bool,
    },
}

/// The follower's settings.
#[derive(Debug, Clone)]
pub struct FollowerConfig {
    /// The channel followed.
    pub channel: String,
    /// Publisher keys and threshold.
    pub trust: TrustRoot,
    /// This node, as the farm's members know it (ranks who polls in each period).
    pub me: NodeId,
    /// Seed of the poll jitter.
    pub seed: u64,
    /// Period of hub polls: the farm polls about once per period; `None`: never.
    pub poll_interval: Option<Duration>,
    /// First wait after a failed poll; it doubles up to `poll_backoff_max`.
    pub poll_backoff: Duration,
    /// Longest wait after failed polls.
    pub poll_backoff_max: Duration,
    /// Peers to wait for before a boot starts.
    pub peers_needed: usize,
    /// Longest wait for them, from the follower's start.
    pub peer_wait: Duration,
    /// What happens once a release is held.
    pub install: InstallMode,
}

impl FollowerConfig {
    /// Settings for `channel` under `trust`: hourly polls, no peer gate, nothing installed.
    pub fn new(channel: impl Into<String>, trust: TrustRoot) -> Self {
        FollowerConfig {
            channel: channel.into(),
            trust,
            me: NodeId(0),
            seed: 0,
            poll_interval: Some(Duration::from_secs(3600)),
            poll_backoff: Duration::from_secs(1),
            poll_backoff_max: Duration::from_secs(30),
            peers_needed: 0,
            peer_wait: Duration::ZERO,
            install: InstallMode::None,
        }
    }
}

/// A release version: its seq and root.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version {
    /// Sequence number.
    pub seq: u64,
    /// Root flist.
    pub root: Cid,
}

/// An install or upgrade that did not complete, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The version that failed.
    pub version: Version,
    /// One sentence.
    pub reason: String,
    /// When, unix seconds.
    pub at: u64,
    /// Whether it was an upgrade rolled back (that release is not installed again), rather
    /// than an error (retried when the release is booted again).
    pub rolled_back: bool,
}

/// What an earlier run left on disk.
#[derive(Debug, Clone, Default)]
pub struct Restored {
    /// The durable high-water mark.
    pub high_water: Option<HighWater>,
    /// The signed release saved beside it (judged as [`Via::Disk`] at start).
    pub release: Option<Vec<u8>>,
    /// The version in use in the target.
    pub installed: Option<Version>,
    /// Whether that version's tree is still on disk (an upgrade can switch back to it).
    pub installed_on_disk: bool,
    /// The last upgrade rolled back.
    pub failed: Option<Failure>,
}

/// A fact the driver reports.
#[derive(Debug)]
pub enum Input {
    /// A release heard from gossip, a peer, an operator or the disk (hub answers come as
    /// [`Input::Polled`]); `ticket` comes back in the [`Output::Judged`] about it.
    Release {
        /// The signed release as received (at most `MAX_RELEASE_SIZE`).
        bytes: Vec<u8>,
        /// Where it came from.
        via: Via,
        /// Who published it, for gossip (the authenticated author, not the forwarder).
        author: Option<NodeId>,
        /// The driver's handle for the verdict (gossip message, operator reply).
        ticket: u64,
    },
    /// The hub's answer to [`Output::Poll`]: the channel's signed release, or why not.
    Polled(Result<Vec<u8>, String>),
    /// The save asked by [`Output::Save`] for `root` is durable.
    Saved {
        /// The root of the high-water mark saved.
        root: Cid,
    },
    /// The farm's members as the driver knows them (replaces the previous view).
    Members(Vec<NodeId>),
    /// A member joined.
    MemberUp(NodeId),
    /// A member left.
    MemberDown(NodeId),
    /// Every block of `root` is held and written to the store.
    Booted {
        /// The booted root.
        root: Cid,
    },
    /// The driver gave up booting `root` (e.g. it does not fit in the store's quota): the
    /// node stays on what it runs, and the release is not booted again until it is heard
    /// anew after a restart or a newer one comes.
    BootRefused {
        /// The root whose boot was given up.
        root: Cid,
        /// Why, in one sentence.
        reason: String,
    },
    /// The answer to [`Output::Install`]: the packages that changed against the previous
    /// version (empty without one), or why the tree could not be written.
    Installed {
        /// The version's seq.
        seq: u64,
        /// Changed package names, or one sentence.
        result: Result<Vec<String>, String>,
    },
    /// The answer to [`Output::Switch`].
    Switched {
        /// The seq now in use.
        seq: u64,
        /// Done, or one sentence.
        result: Result<(), String>,
    },
    /// The answer to [`Output::RunHooks`].
    HooksRan {
        /// The seq the hooks ran for.
        seq: u64,
        /// All passed, or the first failure in one sentence.
        result: Result<(), String>,
    },
    /// The answer to [`Output::HealthCheck`].
    HealthChecked {
        /// The seq checked.
        seq: u64,
        /// Healthy, or one sentence.
        result: Result<(), String>,
    },
    /// The answer to [`Output::Commit`] and [`Output::RecordFailure`].
    Recorded {
        /// The seq recorded.
        seq: u64,
        /// Durable, or one sentence.
        result: Result<(), String>,
    },
    /// The time from [`Follower::poll_timeout`] has come.
    Timeout,
}

/// The follower's verdict on a release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Valid and newer than anything accepted: adopted.
    New(u64),
    /// The release this node already follows.
    Current(u64),
    /// Valid but not for now (the release just before ours, a clock ahead, a stale hub):
    /// dropped without blame.
    Ignored {
        /// The refusal kind.
        kind: RefusalKind,
        /// One sentence.
        reason: String,
    },
    /// Invalid or an attack: dropped, and the sender is to blame.
    Rejected {
        /// The refusal kind.
        kind: RefusalKind,
        /// One sentence.
        reason: String,
    },
}

impl Verdict {
    /// The gossip acceptance that goes with the verdict.
    pub fn gossip(&self) -> GossipVerdict {
        match self {
            Verdict::New(_) | Verdict::Current(_) => GossipVerdict::Accept,
            Verdict::Ignored { .. } => GossipVerdict::Ignore,
            Verdict::Rejected { .. } => GossipVerdict::Reject,
        }
    }
}

/// Why change hooks run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookAction {
    /// The packages changed in an upgrade.
    Upgrade,
    /// The same packages, after switching back to the previous version.
    Rollback,
}

impl HookAction {
    /// `upgrade` or `rollback`.
    pub fn as_str(self) -> &'static str {
        match self {
            HookAction::Upgrade => "upgrade",
            HookAction::Rollback => "rollback",
        }
    }
}

/// An action the driver carries out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// The verdict on a release (gossip acceptance, the operator's answer, a log line).
    Judged {
        /// The ticket of the [`Input::Release`] (0 for hub answers).
        ticket: u64,
        /// Where the release came from.
        via: Via,
        /// The verdict.
        verdict: Verdict,
    },
    /// Gossip these release bytes to the farm.
    Publish {
        /// The signed release.
        bytes: Vec<u8>,
    },
    /// Make the high-water mark and the release durable; answer with [`Input::Saved`].
    Save {
        /// The new mark.
        high_water: HighWater,
        /// The signed release, for a restart while the hub is down.
        bytes: Vec<u8>,
    },
    /// Ask the hub for the channel's release; answer with [`Input::Polled`].
    Poll,
    /// Boot `root`: the agent fetches every block of it.
    Boot {
        /// The root flist.
        root: Cid,
    },
    /// Write the version's tree (`previous`: the version in use, to diff packages against);
    /// answer with [`Input::Installed`].
    Install {
        /// The version.
        version: Version,
        /// The version in use it upgrades, if any.
        previous: Option<Version>,
    },
    /// Point the target at `seq`; answer with [`Input::Switched`].
    Switch {
        /// The version to use.
        seq: u64,
    },
    /// Run the change hook once per package; answer with [`Input::HooksRan`].
    RunHooks {
        /// The version the hooks run for.
        seq: u64,
        /// Why.
        action: HookAction,
        /// The changed packages.
        packages: Vec<String>,
    },
    /// Run the health check; answer with [`Input::HealthChecked`].
    HealthCheck {
        /// The version in use.
        seq: u64,
    },
    /// Record `version` as installed, keep the newest versions and (when `collect_blocks`)
    /// remove blocks no kept version references; answer with [`Input::Recorded`].
    Commit {
        /// The version now installed.
        version: Version,
        /// No newer release is on its way in, so unreferenced blocks may go.
        collect_blocks: bool,
    },
    /// Record a rolled-back upgrade (not installed again), keep `restore` as installed and
    /// remove the failed version's tree; answer with [`Input::Recorded`].
    RecordFailure {
        /// What failed and why.
        failure: Failure,
        /// The version in use again.
        restore: Version,
    },
    /// The booted release is in use (installed and switched to, when installing).
    InUse {
        /// The version.
        version: Version,
    },
    /// Installing a booted release failed.
    InstallFailed {
        /// What failed and why.
        failure: Failure,
    },
}

/// The release the node follows now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurrentRelease {
    /// Its version.
    pub version: Version,
    /// Expiry, unix seconds.
    pub expires_at: u64,
    /// The signed bytes (what peers are told).
    pub bytes: Vec<u8>,
}

/// What `/status` reports about releases.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FollowerStatus {
    /// Whether the current release is in use.
    pub booted: bool,
    /// Since when.
    pub booted_at: Option<Time>,
    /// The root being booted.
    pub booting: Option<Cid>,
    /// The version in use in the target.
    pub installed: Option<Version>,
    /// The last failed install or rolled-back upgrade.
    pub failure: Option<Failure>,
    /// Releases accepted as new.
    pub accepted: u64,
    /// Releases refused, by kind.
    pub refusals: BTreeMap<RefusalKind, u64>,
    /// The last refusal, one sentence.
    pub last_refusal: Option<String>,
    /// Hub polls sent.
    pub polls: u64,
    /// Periods in which this node left the poll to the farm.
    pub polls_deferred: u64,
    /// Whether the last poll failed.
    pub hub_failing: bool,
}
