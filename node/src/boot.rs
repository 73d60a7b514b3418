//! `bootswarm boot`: fetch a channel's signed release from the hub and materialise it.
//!
//! Two phases, so that a tampered hub leaves the target untouched:
//! 1. [`fetch`]: the release is checked against the trust root and the durable high-water
//!    mark (which is saved before anything is installed), then the root flist, the child
//!    flists and every chunk are fetched into the store, which verifies each block. Blocks the
//!    store already holds are not fetched again (resume).
//! 2. [`materialise`]: only when every block is in the store, the tree is written into the
//!    target (each file to a temporary name, fsynced, renamed; modes, directories and
//!    symlinks kept; nothing outside the target).
//!
//! [`boot`] is a library function so that the swarm daemon can reuse it; [`run`] is the thin
//! command-line handler.

pub mod fetch;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bootswarm_protocol::block::{Codec, cid_of};
use bootswarm_protocol::release::{Freshness, HighWater, TrustRoot, check_release};
use bootswarm_protocol::store::BlockStore;

use crate::error::{Error, Result};
use crate::hub::client::HubClient;
use crate::state::{Installed, NodeState};
use crate::store::SledStore;
use crate::task::blocking;
use crate::units::format_size;

pub use crate::materialise::{MaterialiseStats, Tree, TreeEntry};
use crate::progress::Progress;
pub use fetch::FetchStats;

/// Default number of blocks fetched from the hub at once.
pub const DEFAULT_CONCURRENCY: usize = 8;
/// Upper bound for `--concurrency` (each in-flight block may hold up to 4 MiB).
pub const MAX_CONCURRENCY: usize = 64;

/// Arguments of `bootswarm boot`.
#[derive(clap::Args, Debug, Clone)]
pub struct BootArgs {
    /// Base URL of the hub, e.g. http://127.0.0.1:8080.
    #[arg(long, value_name = "URL")]
    pub hub: String,
    /// Release channel to boot.
    #[arg(long, value_name = "NAME")]
    pub channel: String,
    /// Trust file: `ed25519 <hex>` lines (a publisher's FILE.pub) and an optional `threshold N`.
    #[arg(long, value_name = "FILE")]
    pub trust: PathBuf,
    /// Store directory (blocks and durable state); created if missing, its parent must exist.
    #[arg(long, value_name = "DIR")]
    pub store: PathBuf,
    /// Directory the release is materialised into, directly (no releases/<seq> or current
    /// link: that layout is `bootswarm run`'s); created if missing, its parent must exist.
    #[arg(long, value_name = "TARGET")]
    pub into: PathBuf,
    /// Blocks fetched from the hub at once (1 to 64).
    #[arg(long, default_value_t = DEFAULT_CONCURRENCY)]
    pub concurrency: usize,
    /// Never draw a progress bar (it is drawn only when stderr is a terminal anyway).
    #[arg(long)]
    pub no_progress: bool,
    /// Print the boot report as one JSON object on stdout instead of a sentence.
    #[arg(long)]
    pub json: bool,
    /// Swarm options: with --peer, --mdns or --listen the boot fetches from peers first,
    /// through the same driver as `bootswarm run`, and exits once the tree is in place.
    #[command(flatten)]
    pub swarm: crate::daemon::SwarmArgs,
    /// Fetch everything from the hub, never from peers (the default without swarm options).
    #[arg(long)]
    pub hub_only: bool,
}

/// What [`boot`] needs.
#[derive(Debug, Clone)]
pub struct BootOptions {
    /// Base URL of the hub.
    pub hub_url: String,
    /// Release channel.
    pub channel: String,
    /// Publisher keys and threshold a release must satisfy.
    pub trust: TrustRoot,
    /// Store directory: blocks (sled) and `state.json`.
    pub store_dir: PathBuf,
    /// Directory the release is materialised into.
    pub target: PathBuf,
    /// Blocks fetched from the hub at once.
    pub concurrency: usize,
    /// Draw a progress bar on stderr (only if stderr is a terminal).
    pub progress: bool,
    /// Roots for https://.
    pub tls: crate::tls::Tls,
    /// Where rfs blocks are fetched (`--upstream`, else their flists' routes).
    pub upstreams: Arc<crate::rfs::upstream::Upstreams>,
}

/// What a boot did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootReport {
    /// Channel booted.
    pub channel: String,
    /// Sequence number of the installed release.
    pub seq: u64,
    /// CID of the signed release block.
    pub release_cid: String,
    /// CID of the root flist.
    pub root: String,
    /// Body bytes received from the hub (release, flists and chunks).
    pub hub_bytes: u64,
    /// Stored bytes of the rfs blocks received from their upstream stores.
    pub upstream_bytes: u64,
    /// Blocks fetched from the hub.
    pub blocks_fetched: u64,
    /// Blocks the store already held.
    pub blocks_reused: u64,
    /// Bytes of the blocks the store already held.
    pub bytes_reused: u64,
    /// Files, directories and symlinks written, and the bytes of the files.
    pub tree: MaterialiseStats,
    /// Wall time of the whole boot.
    pub elapsed: Duration,
}

impl BootReport {
    /// The report as a JSON object (stable field names; `elapsed_secs` is a float).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "channel": self.channel,
            "seq": self.seq,
            "release": self.release_cid,
            "root": self.root,
            "hub_bytes": self.hub_bytes,
            "upstream_bytes": self.upstream_bytes,
            "blocks_fetched": self.blocks_fetched,
            "blocks_reused": self.blocks_reused,
            "bytes_reused": self.bytes_reused,
            "files": self.tree.files,
            "dirs": self.tree.dirs,
            "symlinks": self.tree.symlinks,
            "tree_bytes": self.tree.bytes,
            "elapsed_secs": self.elapsed.as_secs_f64(),
        })
    }
}

/// Boots `opts.channel` into `opts.target` using the sled store in `opts.store_dir`.
pub async fn boot(opts: BootOptions) -> Result<BootReport> {
    check_paths(&opts)?;
    let dir = opts.store_dir.clone();
    let store = blocking(move || SledStore::open(&dir)).await?;
    let store = Arc::new(store);
    let report = boot_with_store(&opts, Arc::clone(&store)).await?;
    let flush = Arc::clone(&store);
    blocking(move || flush.flush()).await?;
    Ok(report)
}

/// Boots with a store the caller already opened (the daemon keeps one open). Durable state
/// (high-water marks, what is installed) lives in `opts.store_dir/state.json`.
pub async fn boot_with_store<S>(opts: &BootOptions, store: Arc<S>) -> Result<BootReport>
where
    S: BlockStore + Send + Sync + 'static,
{
    let started = Instant::now();
    if opts.concurrency == 0 || opts.concurrency > MAX_CONCURRENCY {
        return Err(Error::new(format!(
            "--concurrency {} is out of range; give 1 to {MAX_CONCURRENCY}",
            opts.concurrency
        )));
    }
    let client = HubClient::with_tls(&opts.hub_url, &opts.tls)?;

    // The release: signatures, channel, expiry, then the high-water mark.
    let (signed, release_bytes) = client.release(&opts.channel).await?;
    let release_cid = cid_of(Codec::DagCbor, &release_bytes);
    let state_dir = opts.store_dir.clone();
    let mut state = blocking(move || NodeState::load(&state_dir)).await?;
    let now = crate::task::unix_now();
    let freshness = check_release(
        &opts.trust,
        &opts.channel,
        now,
        state.high_water.get(&opts.channel),
        &signed,
    )
    .map_err(|e| {
        Error::new(format!(
            "release {release_cid} of channel '{}' from {} was refused: {}",
            opts.channel,
            client.url(),
            lower_first(&e.to_string())
        ))
    })?;
    let release = signed.release;
    if freshness == Freshness::New {
        // Durable before anything is installed: a rollback is refused even after a crash.
        state.high_water.insert(
            opts.channel.clone(),
            HighWater {
                seq: release.seq,
                root: release.root,
            },
        );
        let (dir, st) = (opts.store_dir.clone(), state.clone());
        blocking(move || st.save(&dir)).await?;
    }

    // Phase 1: every block into the store.
    let progress = Progress::new(opts.progress && std::io::stderr().is_terminal());
    let fetched = fetch::fetch_release(
        &client,
        &opts.upstreams,
        &store,
        &release.root,
        opts.concurrency,
        &progress,
    )
    .await;
    let (tree, mut stats) = match fetched {
        Ok(x) => x,
        Err(e) => {
            progress.abandon();
            return Err(e);
        }
    };
    stats.hub_bytes += release_bytes.len() as u64;

    // Phase 2: the tree.
    progress.materialising(tree.file_bytes());
    let (st, target) = (Arc::clone(&store), opts.target.clone());
    let prog = progress.clone();
    let written =
        blocking(move || crate::materialise::materialise(&*st, &tree, &target, &|n| prog.inc(n)))
            .await;
    let written = match written {
        Ok(w) => w,
        Err(e) => {
            progress.abandon();
            return Err(e);
        }
    };
    progress.finish();

    state.installed = Some(Installed {
        channel: opts.channel.clone(),
        seq: release.seq,
        root: release.root.to_string(),
        target: opts.target.clone(),
    });
    let dir = opts.store_dir.clone();
    blocking(move || state.save(&dir)).await?;

    Ok(BootReport {
        channel: opts.channel.clone(),
        seq: release.seq,
        release_cid: release_cid.to_string(),
        root: release.root.to_string(),
        hub_bytes: stats.hub_bytes,
        upstream_bytes: stats.upstream_bytes,
        blocks_fetched: stats.blocks_fetched,
        blocks_reused: stats.blocks_reused,
        bytes_reused: stats.bytes_reused,
        tree: written,
        elapsed: started.elapsed(),
    })
}

/// Runs `bootswarm boot` (builds its own tokio runtime).
pub fn run(args: BootArgs) -> Result<()> {
    if args.swarm.requested() && !args.hub_only {
        return run_swarm(&args);
    }
    let trust = crate::keys::read_trust(&args.trust)?;
    let tls = crate::tls::Tls::load(args.swarm.ca.as_deref())?;
    let opts = BootOptions {
        hub_url: args.hub.clone(),
        channel: args.channel.clone(),
        trust,
        store_dir: args.store.clone(),
        target: args.into.clone(),
        concurrency: args.concurrency,
        progress: !args.no_progress,
        tls: tls.clone(),
        upstreams: Arc::new(crate::rfs::upstream::Upstreams::new(
            &args.swarm.upstreams,
            &tls,
        )?),
    };
    let rt = crate::task::runtime(crate::task::Runtime::Server)?;
    let report = rt.block_on(boot(opts))?;
    if args.json {
        println!("{}", report.to_json());
    } else {
        println!(
            "booted channel '{}' seq {} into {}: {} files, {} dirs, {} symlinks, {}; {} blocks ({}) from the hub, {} blocks ({}) reused from the store, in {:.1} s",
            report.channel,
            report.seq,
            args.into.display(),
            report.tree.files,
            report.tree.dirs,
            report.tree.symlinks,
            format_size(report.tree.bytes),
            report.blocks_fetched,
            format_size(report.hub_bytes),
            report.blocks_reused,
            format_size(report.bytes_reused),
            report.elapsed.as_secs_f64(),
        );
    }
    Ok(())
}

/// `bootswarm boot` with swarm options: the daemon's driver in one-shot mode.
fn run_swarm(args: &BootArgs) -> Result<()> {
    let report = crate::daemon::boot_once(crate::daemon::OnceArgs {
        hub: &args.hub,
        channel: &args.channel,
        trust: &args.trust,
        store: &args.store,
        into: &args.into,
        swarm: &args.swarm,
    })?;
    let tree = report.tree.unwrap_or_default();
    let secs = report.booted_after.map_or(0.0, |d| d.as_secs_f64());
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "channel": args.channel,
                "seq": report.seq,
                "root": report.root.map(|r| r.to_string()),
                "hub_bytes": report.bytes_from_hub,
                "peer_bytes": report.bytes_from_peers,
                "files": tree.files,
                "dirs": tree.dirs,
                "symlinks": tree.symlinks,
                "tree_bytes": tree.bytes,
                "elapsed_secs": secs,
            })
        );
    } else {
        println!(
            "booted channel '{}' seq {} into {}: {} files, {} dirs, {} symlinks, {}; {} from the hub, {} from peers, in {secs:.1} s",
            args.channel,
            report.seq,
            args.into.display(),
            tree.files,
            tree.dirs,
            tree.symlinks,
            format_size(tree.bytes),
            format_size(report.bytes_from_hub),
            format_size(report.bytes_from_peers),
        );
    }
    Ok(())
}

/// Refuses unusable --store / --into paths before anything is fetched.
fn check_paths(opts: &BootOptions) -> Result<()> {
    crate::fsutil::check_store_and_target(&opts.store_dir, Some(&opts.target))
}

/// "Foo bar." -> "foo bar" so that a nested message reads as part of one sentence.
fn lower_first(s: &str) -> String {
    let s = s.trim().trim_end_matches('.');
    let mut chars = s.chars();
    match (chars.next(), chars.next()) {
        // Only a capitalised ordinary word ("Block", not "CID" or "Ed25519").
        (Some(c), Some(d)) if c.is_uppercase() && d.is_lowercase() => {
            c.to_lowercase().chain(s.chars().skip(1)).collect()
        }
        _ => s.to_string(),
    }
}
