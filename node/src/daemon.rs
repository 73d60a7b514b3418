//! `bootswarm run`: the swarm daemon.
//!
//! libp2p (TCP + Noise + Yamux) on tokio, with static peers and optional mDNS, gossiped and
//! validated releases, and length-capped request-response protocols for blocks, control
//! messages and releases. The sans-IO [`Agent`](bootswarm_protocol::agent::Agent) makes every
//! decision; the [`driver`] only moves bytes, timers and disk I/O. The release is fetched from
//! the hub (or, when the hub is down, from peers), checked against the trust root and the
//! durable high-water mark, booted by the agent and materialised into the target; the daemon
//! then keeps serving its peers. A local HTTP endpoint serves the farm page (`/`), `/status`
//! and `/metrics`.
//!
//! Machine-readable lines on stdout: `listening <multiaddr>/p2p/<peer id>`, `http <url>` and
//! `booted <seconds since start>`.

mod behaviour;
mod blocks;
mod codec;
mod driver;
mod farm;
mod hooks;
mod http;
mod ledger;
mod payload;
mod peers;
mod prewrite;
mod rack;
mod status;
mod tasks;
mod test_hooks;
mod upload;
mod versions;

pub use test_hooks::TestHooks;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bootswarm_protocol::agent::Rack;
use bootswarm_protocol::block::Cid;
use bootswarm_protocol::release::TrustRoot;
use libp2p::pnet::PreSharedKey;
use libp2p::{Multiaddr, identity};

use crate::error::{Error, Result};
use crate::materialise::MaterialiseStats;
use crate::units::parse_duration;

/// Default address the daemon listens on for peers.
pub const DEFAULT_LISTEN: &str = "/ip4/0.0.0.0/tcp/0";

/// Swarm options shared by `bootswarm run` and `bootswarm boot`.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct SwarmArgs {
    /// Address to listen on for peers, e.g. /ip4/0.0.0.0/tcp/4101 [run default: /ip4/0.0.0.0/tcp/0].
    #[arg(long, value_name = "MULTIADDR")]
    pub listen: Option<String>,
    /// A peer to dial, e.g. /ip4/10.0.0.2/tcp/4101/p2p/12D3KooW...; repeatable.
    #[arg(long = "peer", value_name = "MULTIADDR")]
    pub peers: Vec<String>,
    /// Discover peers on the LAN with mDNS (sends multicast; off by default).
    #[arg(long)]
    pub mdns: bool,
    /// Peers to wait for before the boot starts (waits at most --peer-wait).
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub min_peers: usize,
    /// Longest wait for --min-peers and the --peer addresses before booting anyway.
    #[arg(long, default_value = "3s", value_name = "DURATION")]
    pub peer_wait: String,
    /// The farm's swarm key (kubo `swarm.key` format, made by `bootswarm keygen --swarm-key`):
    /// only hosts holding the same key can connect to this node.
    #[arg(long, env = "BOOTSWARM_SWARM_KEY", value_name = "FILE")]
    pub swarm_key: Option<PathBuf>,
    /// The farm this node belongs to (Zero-OS: the kernel's farmer_id): nodes of different
    /// farms never join each other's swarm, with or without a swarm key.
    #[arg(long, env = "BOOTSWARM_FARM", value_name = "ID")]
    pub farm: Option<String>,
    /// The rack (or other domain behind one uplink) this node is in, the same label on every
    /// node of it: neighbours and holders in the rack come first, and each block crosses the
    /// rack's uplink about once.
    #[arg(long, env = "BOOTSWARM_RACK", value_name = "NAME")]
    pub rack: Option<String>,
    /// Without --rack: this node's rack is its IPv4 (or IPv6) subnet of this prefix length,
    /// the one it reaches the hub from, e.g. 26 where each rack has a /26; give the same on
    /// every node.
    #[arg(long, env = "BOOTSWARM_RACK_SUBNET", value_name = "BITS")]
    pub rack_subnet: Option<u8>,
    /// Fetch an owned chunk from the hub only once it is among the first SIZE bytes, in boot
    /// order, of the chunks no neighbour holds (e.g. 128MiB), so the hub's link serves a few
    /// chunks at a time and the swarm spreads them while it sends the next: for farms whose
    /// NICs are no faster than the hub link. Give the same on every node.
    #[arg(long, env = "BOOTSWARM_HUB_WINDOW", value_name = "SIZE")]
    pub hub_window: Option<String>,
    /// Store of rfs blocks no peer has, instead of the routes of their flists:
    /// zdb://host[:port][/namespace], http(s)://base or dir://path; repeatable.
    #[arg(long = "upstream", value_name = "URL")]
    pub upstreams: Vec<String>,
    /// PEM file of CA certificates trusted for https:// (hub, stores) besides the platform's.
    #[arg(long, value_name = "FILE")]
    pub ca: Option<PathBuf>,
}

impl SwarmArgs {
    /// Whether any swarm option was given (so `bootswarm boot` should use the swarm).
    pub fn requested(&self) -> bool {
        self.listen.is_some() || !self.peers.is_empty() || self.mdns
    }
}

/// Arguments of `bootswarm run`.
#[derive(clap::Args, Debug, Clone)]
pub struct RunArgs {
    /// Config file (TOML, the same keys as these flags) [default: /etc/bootswarm/config.toml
    /// when it exists]. Precedence: flag, environment, config file, kernel command line.
    #[arg(long, env = "BOOTSWARM_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Read the kernel command line from FILE instead of /proc/cmdline.
    #[arg(
        long,
        env = "BOOTSWARM_KERNEL_CMDLINE",
        value_name = "FILE",
        hide = true
    )]
    pub kernel_cmdline: Option<PathBuf>,
    /// Store directory (blocks and durable state); created if missing [default: the cache
    /// disk's /var/cache/bootswarm when mounted, else /run/bootswarm/store in memory].
    #[arg(long, env = "BOOTSWARM_STORE", value_name = "DIR")]
    pub store: Option<PathBuf>,
    /// Base URL of the hub, e.g. http://127.0.0.1:8080.
    #[arg(long, env = "BOOTSWARM_HUB", value_name = "URL")]
    pub hub: Option<String>,
    /// Release channel to follow [kernel: runmode=prod → production, dev → development, ...].
    #[arg(long, env = "BOOTSWARM_CHANNEL", value_name = "NAME")]
    pub channel: Option<String>,
    /// Trust file: `ed25519 <hex>` lines and an optional `threshold N`.
    #[arg(long, env = "BOOTSWARM_TRUST", value_name = "FILE")]
    pub trust: Option<PathBuf>,
    /// Directory releases are installed into: each version in TARGET/releases/<seq>/, the one
    /// in use named by the symlink TARGET/current (none: only cache and serve).
    #[arg(long, value_name = "TARGET")]
    pub into: Option<PathBuf>,
    /// Command run (with sh -c) once per package that changed in an upgrade, and again after a
    /// rollback; `{package}` becomes the shell-quoted package name, e.g. 'zinit restart
    /// {package}'; env: BOOTSWARM_PACKAGE, BOOTSWARM_SEQ, BOOTSWARM_ACTION (upgrade|rollback),
    /// BOOTSWARM_CURRENT. Not run on the first install.
    #[arg(long, value_name = "COMMAND")]
    pub on_change: Option<String>,
    /// Command run (with sh -c) after the change hooks of an upgrade; a non-zero exit or a
    /// timeout rolls the upgrade back. Not run on the first install.
    #[arg(long, value_name = "COMMAND")]
    pub health_check: Option<String>,
    /// Longest time one hook or health check may run; then it and every process it started
    /// are killed and it counts as failed.
    #[arg(long, default_value = "60s", value_name = "DURATION")]
    pub hook_timeout: String,
    /// Versions kept in TARGET/releases (with their blocks in the store); older ones are removed.
    #[arg(long, default_value_t = 2, value_name = "K")]
    pub keep: usize,
    /// Most block bytes the store holds, e.g. 20GiB: blocks of the versions kept and of the
    /// release being fetched stay, others are evicted least recently used first, and a release
    /// that cannot fit is refused [default: no limit].
    #[arg(long, env = "BOOTSWARM_STORE_QUOTA", value_name = "SIZE")]
    pub store_quota: Option<String>,
    /// Most the node uploads to peers in total, e.g. 200mbit; shared fairly among the peers
    /// it serves [default: no limit].
    #[arg(long, env = "BOOTSWARM_UPLOAD_RATE", value_name = "RATE")]
    pub upload_rate: Option<String>,
    /// Most peers served at once; others are told the node is busy and ask another holder.
    #[arg(long, env = "BOOTSWARM_MAX_UPLOAD_PEERS", value_name = "N")]
    pub max_upload_peers: Option<usize>,
    /// Swarm options.
    #[command(flatten)]
    pub swarm: SwarmArgs,
    /// Local address for GET /status, /metrics and POST /v1/announce, e.g. 127.0.0.1:9100.
    #[arg(long, value_name = "ADDR")]
    pub http: Option<String>,
    /// Allow --http on an address other than loopback: /status, /metrics and /v1/announce
    /// are then open to the network.
    #[arg(long, requires = "http")]
    pub http_public: bool,
    /// Local address for the RESP block endpoint (what rfs's zdb store and 0-fs speak), e.g.
    /// 127.0.0.1:9900; the same blocks are under --http at /{hex} and /api/v1/block/{hex}.
    #[arg(long, value_name = "ADDR")]
    pub resp: Option<String>,
    /// Allow --resp on an address other than loopback (the farm's blocks to anyone who asks).
    #[arg(long, requires = "resp")]
    pub resp_public: bool,
    /// Fetch every block from the hub and none from peers (the baseline).
    #[arg(long)]
    pub hub_only: bool,
    /// File holding the node's libp2p identity (created if missing); default: a new one per start.
    #[arg(long, value_name = "FILE")]
    pub key: Option<PathBuf>,
    /// How often the farm asks the hub for a newer release: one node per period (a different
    /// one each period), every node when its release nears expiry.
    /// [default: 1h]
    #[arg(long, value_name = "DURATION")]
    pub poll_interval: Option<String>,
    /// Test-only behaviour (only with the `test-hooks` feature).
    #[command(flatten)]
    pub test: TestHooks,
}

/// Everything the driver needs, checked.
#[derive(Debug, Clone)]
pub struct DaemonOptions {
    /// Base URL of the hub.
    pub hub_url: String,
    /// Channel followed.
    pub channel: String,
    /// Publisher keys and threshold.
    pub trust: TrustRoot,
    /// Store directory (sled and `state.json`).
    pub store_dir: PathBuf,
    /// Where releases are materialised, if anywhere.
    pub target: Option<PathBuf>,
    /// Addresses to listen on.
    pub listen: Vec<Multiaddr>,
    /// Static peers.
    pub peers: Vec<Multiaddr>,
    /// mDNS discovery.
    pub mdns: bool,
    /// The farm's pre-shared key, if the farm is a private network.
    pub swarm_key: Option<PreSharedKey>,
    /// Local HTTP endpoint.
    pub http: Option<SocketAddr>,
    /// Local RESP block endpoint.
    pub resp: Option<SocketAddr>,
    /// Hub-only baseline.
    pub hub_only: bool,
    /// libp2p identity.
    pub identity: identity::Keypair,
    /// Test-only behaviour.
    pub test: TestHooks,
    /// Peers to wait for before booting.
    pub min_peers: usize,
    /// Longest wait for them.
    pub peer_wait: Duration,
    /// Period of release polls.
    pub poll_interval: Duration,
    /// Exit once the release is installed (`bootswarm boot`, direct layout).
    pub once: bool,
    /// Restart hooks and health check run on upgrades.
    pub(crate) hooks: hooks::Hooks,
    /// Versions kept on disk.
    pub keep: usize,
    /// Most block bytes in the store.
    pub store_quota: Option<u64>,
    /// Upload limits towards peers.
    pub upload: UploadLimits,
    /// Roots for https://.
    pub tls: crate::tls::Tls,
    /// Where rfs blocks no peer has are fetched.
    pub upstreams: std::sync::Arc<crate::rfs::upstream::Upstreams>,
    /// The rack this node is in, if told.
    pub rack: Option<Rack>,
    /// The hub window in bytes (`--hub-window`; none: every owned chunk at once).
    pub hub_window: Option<u64>,
}

/// How much the node uploads to its peers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UploadLimits {
    /// Bytes per second in total.
    pub rate: Option<u64>,
    /// Peers served at once.
    pub max_peers: Option<usize>,
}

/// What a daemon run did.
#[derive(Debug, Clone, Default)]
pub struct DaemonReport {
    /// Seq of the release accepted last (0 if none).
    pub seq: u64,
    /// Its root.
    pub root: Option<Cid>,
    /// Time from start to booted.
    pub booted_after: Option<Duration>,
    /// Block bytes received from the hub.
    pub bytes_from_hub: u64,
    /// Block bytes received from peers.
    pub bytes_from_peers: u64,
    /// What was written into the target.
    pub tree: Option<MaterialiseStats>,
}

fn parse_addr(flag: &str, s: &str) -> Result<Multiaddr> {
    s.parse().map_err(|e| {
        Error::new(format!(
            "{flag} '{s}' is not a valid multiaddr ({e}); write it like /ip4/10.0.0.2/tcp/4101"
        ))
    })
}

fn parse_wait(flag: &str, s: &str) -> Result<Duration> {
    parse_duration(s)
        .map(Duration::from_secs)
        .map_err(|e| Error::new(format!("{flag}: {e}")))
}

/// The libp2p identity in `path` (64 hex characters), created if the file does not exist.
pub fn load_or_create_identity(path: &Path) -> Result<identity::Keypair> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let bytes = crate::keys::from_hex32(text.trim()).ok_or_else(|| {
                Error::new(format!(
                    "identity file {} does not hold 64 hex characters; delete it to create a new identity",
                    path.display()
                ))
            })?;
            identity::Keypair::ed25519_from_bytes(bytes).map_err(|e| {
                Error::new(format!(
                    "identity file {} holds an unusable key ({e}); delete it to create a new identity",
                    path.display()
                ))
            })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut secret = [0u8; 32];
            getrandom::fill(&mut secret)
                .map_err(|e| Error::new(format!("cannot get randomness for an identity ({e})")))?;
            let line = format!("{}\n", crate::keys::to_hex(&secret));
            crate::fsutil::write_new_atomic(path, line.as_bytes(), Some(0o600)).map_err(|e| {
                Error::new(format!(
                    "cannot write the identity file {} ({e}); check --key and its directory",
                    path.display()
                ))
            })?;
            identity::Keypair::ed25519_from_bytes(secret)
                .map_err(|e| Error::new(format!("cannot create an identity ({e})")))
        }
        Err(e) => Err(Error::new(format!(
            "cannot read the identity file {} ({e}); check --key",
            path.display()
        ))),
    }
}

/// The swarm options, checked.
#[derive(Debug)]
struct Swarm {
    listen: Vec<Multiaddr>,
    peers: Vec<Multiaddr>,
    peer_wait: Duration,
    swarm_key: Option<PreSharedKey>,
    tls: crate::tls::Tls,
    upstreams: std::sync::Arc<crate::rfs::upstream::Upstreams>,
    rack: Option<Rack>,
    hub_window: Option<u64>,
}

/// Checks the swarm options.
fn swarm_options(swarm: &SwarmArgs, hub: &str) -> Result<Swarm> {
    let listen = parse_addr(
        "--listen",
        swarm.listen.as_deref().unwrap_or(DEFAULT_LISTEN),
    )?;
    let peers = swarm
        .peers
        .iter()
        .map(|p| parse_addr("--peer", p))
        .collect::<Result<Vec<_>>>()?;
    let tls = crate::tls::Tls::load(swarm.ca.as_deref())?;
    let upstreams = std::sync::Arc::new(crate::rfs::upstream::Upstreams::new(
        &swarm.upstreams,
        &tls,
    )?);
    Ok(Swarm {
        tls,
        upstreams,
        listen: vec![listen],
        peers,
        peer_wait: parse_wait("--peer-wait", &swarm.peer_wait)?,
        swarm_key: crate::swarmkey::farm_key(swarm.swarm_key.as_deref(), swarm.farm.as_deref())?,
        rack: match (&swarm.rack, swarm.rack_subnet) {
            (Some(label), _) => rack::label(label)?,
            (None, Some(bits)) => Some(rack::from_subnet(hub, bits)?),
            (None, None) => None,
        },
        hub_window: swarm
            .hub_window
            .as_deref()
            .map(|w| match crate::units::parse_size(w) {
                Ok(0) => Err(Error::new(format!(
                    "--hub-window '{w}' would never fetch a chunk from the hub; give a size such as 128MiB, or leave it out"
                ))),
                Ok(n) => Ok(n),
                Err(e) => Err(flag_error("--hub-window", &e)),
            })
            .transpose()?,
    })
}

impl DaemonOptions {
    /// Checks `bootswarm run` arguments; every problem is one sentence.
    pub fn from_run_args(args: &RunArgs) -> Result<DaemonOptions> {
        let unset = crate::settings::unset;
        let store = args.store.as_deref().ok_or_else(|| unset("store"))?;
        let hub = args.hub.as_deref().ok_or_else(|| unset("hub"))?;
        let channel = args.channel.as_deref().ok_or_else(|| unset("channel"))?;
        let trust = args.trust.as_deref().ok_or_else(|| unset("trust"))?;
        crate::fsutil::check_store_and_target(store, args.into.as_deref())?;
        let swarm = swarm_options(&args.swarm, hub)?;
        let trust = crate::keys::read_trust(trust)?;
        crate::hub::client::HubClient::with_tls(hub, &swarm.tls)?;
        let http = args
            .http
            .as_deref()
            .map(|h| http_address(h, args.http_public))
            .transpose()?;
        let resp = args
            .resp
            .as_deref()
            .map(|r| resp_address(r, args.resp_public))
            .transpose()?;
        let identity = match &args.key {
            Some(path) => load_or_create_identity(path)?,
            None => identity::Keypair::generate_ed25519(),
        };
        Ok(DaemonOptions {
            hub_url: hub.to_string(),
            channel: channel.to_string(),
            trust,
            store_dir: store.to_path_buf(),
            target: args.into.clone(),
            listen: swarm.listen,
            peers: swarm.peers,
            mdns: args.swarm.mdns,
            swarm_key: swarm.swarm_key,
            http,
            hub_only: args.hub_only,
            resp,
            identity,
            test: args.test.clone(),
            min_peers: args.swarm.min_peers,
            peer_wait: swarm.peer_wait,
            poll_interval: parse_wait(
                "--poll-interval",
                args.poll_interval.as_deref().unwrap_or("1h"),
            )?
            .max(Duration::from_secs(1)),
            once: false,
            hooks: hooks::Hooks {
                on_change: args.on_change.clone(),
                health_check: args.health_check.clone(),
                timeout: parse_wait("--hook-timeout", &args.hook_timeout)?
                    .max(Duration::from_secs(1)),
            },
            keep: if args.keep == 0 {
                return Err(Error::new(
                    "--keep 0 would remove the version in use; give at least 1",
                ));
            } else {
                args.keep
            },
            store_quota: args
                .store_quota
                .as_deref()
                .map(|q| crate::units::parse_size(q).map_err(|e| flag_error("--store-quota", &e)))
                .transpose()?,
            upload: upload_limits(args)?,
            tls: swarm.tls,
            upstreams: swarm.upstreams,
            rack: swarm.rack,
            hub_window: swarm.hub_window,
        })
    }
}

fn flag_error(flag: &str, e: &Error) -> Error {
    Error::new(format!("{flag}: {e}"))
}

/// The `--upload-rate` and `--max-upload-peers` limits.
fn upload_limits(args: &RunArgs) -> Result<UploadLimits> {
    let rate = args
        .upload_rate
        .as_deref()
        .map(|r| crate::units::parse_rate(r).map_err(|e| flag_error("--upload-rate", &e)))
        .transpose()?;
    if args.max_upload_peers == Some(0) {
        return Err(Error::new(
            "--max-upload-peers 0 would serve no peer; give at least 1 or leave it out",
        ));
    }
    Ok(UploadLimits {
        rate,
        max_peers: args.max_upload_peers,
    })
}

/// A local endpoint's address (`flag`, e.g. `--http`), refused off loopback unless its
/// `-public` flag says so; `opens` says what the network would then reach.
fn local_address(flag: &str, value: &str, public: bool, opens: &str) -> Result<SocketAddr> {
    let addr = value.parse::<SocketAddr>().map_err(|_| {
        Error::new(format!(
            "{flag} '{value}' is not an address; give one like 127.0.0.1:9100"
        ))
    })?;
    if !addr.ip().is_loopback() && !public {
        return Err(Error::new(format!(
            "{flag} {addr} is not a loopback address and would {opens}; use 127.0.0.1:{} or add {flag}-public",
            addr.port()
        )));
    }
    Ok(addr)
}

/// The `--http` address.
fn http_address(h: &str, public: bool) -> Result<SocketAddr> {
    local_address(
        "--http",
        h,
        public,
        "open /status, /metrics and /v1/announce to the network",
    )
}

/// The `--resp` address.
fn resp_address(r: &str, public: bool) -> Result<SocketAddr> {
    local_address(
        "--resp",
        r,
        public,
        "serve the farm's blocks to the network",
    )
}

/// The innermost cause of a transport error, in words ("address already in use").
fn transport_cause(e: &dyn std::error::Error) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    let text = cur.to_string();
    let text = match text.find(" (os error") {
        Some(i) => text[..i].to_string(),
        None => text,
    };
    text.to_lowercase()
}

/// Listens on a local endpoint's address (given by `flag`), returning the bound address.
async fn bind_local(flag: &str, addr: SocketAddr) -> Result<(tokio::net::TcpListener, SocketAddr)> {
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        Error::new(format!(
            "cannot listen on {flag} {addr} ({}); choose another address or port",
            transport_cause(&e)
        ))
    })?;
    let local = listener.local_addr().unwrap_or(addr);
    Ok((listener, local))
}

/// Runs the daemon until SIGTERM / ctrl-c, or (with `opts.once`) until the release is
/// installed.
pub async fn run_daemon(opts: DaemonOptions) -> Result<DaemonReport> {
    let shared: status::Shared = Arc::new(Mutex::new(status::Snapshot::default()));
    let http_addr = opts.http;
    let opts_resp = opts.resp;
    let driver = driver::Driver::start(opts, Arc::clone(&shared)).await?;
    let announcer = driver.announcer();
    let local_blocks = driver.local_blocks(Arc::clone(&shared));
    tracing::info!(peer = %driver.peer_id(), "swarm started");
    let resp_task = match opts_resp {
        Some(addr) => {
            let (listener, local) = bind_local("--resp", addr).await?;
            println!("resp {local}");
            Some(tokio::spawn(blocks::resp::serve(
                listener,
                local_blocks.clone(),
            )))
        }
        None => None,
    };

    let (stop_http, http_stopped) = tokio::sync::oneshot::channel::<()>();
    let http_task = match http_addr {
        Some(addr) => {
            let (listener, local) = bind_local("--http", addr).await?;
            println!("http http://{local}");
            let app =
                http::router(Arc::clone(&shared), announcer).merge(blocks::router(local_blocks));
            Some(tokio::spawn(async move {
                let _ = axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = http_stopped.await;
                    })
                    .await;
            }))
        }
        None => None,
    };

    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let signals = tokio::spawn(async move {
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            () = term => {}
        }
        let _ = stop.send(());
    });

    let report = driver.run(stopped).await;
    signals.abort();
    let _ = stop_http.send(());
    if let Some(task) = resp_task {
        task.abort();
    }
    if let Some(task) = http_task {
        let _ = task.await;
    }
    report
}

/// Runs `bootswarm run`.
pub fn run(args: RunArgs) -> Result<()> {
    let opts = DaemonOptions::from_run_args(&args)?;
    crate::task::runtime(crate::task::Runtime::Server)?
        .block_on(run_daemon(opts))
        .map(|_| ())
}

/// What a one-shot boot through the swarm needs.
#[derive(Debug, Clone, Copy)]
pub struct OnceArgs<'a> {
    /// Base URL of the hub.
    pub hub: &'a str,
    /// Channel to boot.
    pub channel: &'a str,
    /// Trust file.
    pub trust: &'a Path,
    /// Store directory.
    pub store: &'a Path,
    /// Where the release is written (directly).
    pub into: &'a Path,
    /// Swarm options.
    pub swarm: &'a SwarmArgs,
}

/// `bootswarm boot` through the swarm: the same driver, exiting once the release is
/// materialised. Returns the report for the caller to print.
pub fn boot_once(args: OnceArgs<'_>) -> Result<DaemonReport> {
    crate::fsutil::check_store_and_target(args.store, Some(args.into))?;
    let swarm = swarm_options(args.swarm, args.hub)?;
    let trust = crate::keys::read_trust(args.trust)?;
    crate::hub::client::HubClient::with_tls(args.hub, &swarm.tls)?;
    let opts = DaemonOptions {
        hub_url: args.hub.to_string(),
        channel: args.channel.to_string(),
        trust,
        store_dir: args.store.to_path_buf(),
        target: Some(args.into.to_path_buf()),
        listen: swarm.listen,
        peers: swarm.peers,
        mdns: args.swarm.mdns,
        swarm_key: swarm.swarm_key,
        http: None,
        hub_only: false,
        resp: None,
        identity: identity::Keypair::generate_ed25519(),
        test: TestHooks::default(),
        min_peers: args.swarm.min_peers,
        peer_wait: swarm.peer_wait,
        poll_interval: Duration::from_secs(300),
        once: true,
        hooks: hooks::Hooks::default(),
        keep: 1,
        store_quota: None,
        upload: UploadLimits::default(),
        tls: swarm.tls,
        upstreams: swarm.upstreams,
        rack: swarm.rack,
        hub_window: swarm.hub_window,
    };
    crate::task::runtime(crate::task::Runtime::Server)?.block_on(run_daemon(opts))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_file_is_created_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("id");
        let a = load_or_create_identity(&path).unwrap();
        let b = load_or_create_identity(&path).unwrap();
        assert_eq!(a.public().to_peer_id(), b.public().to_peer_id());
        std::fs::write(&path, "not hex\n").unwrap();
        let err = load_or_create_identity(&path).unwrap_err().to_string();
        assert!(err.contains("64 hex characters"), "{err}");
    }

    #[test]
    fn http_off_loopback_needs_http_public() {
        assert!(http_address("127.0.0.1:9100", false).is_ok());
        assert!(http_address("[::1]:9100", false).is_ok());
        let err = http_address("0.0.0.0:9100", false).unwrap_err().to_string();
        assert_eq!(
            err,
            "--http 0.0.0.0:9100 is not a loopback address and would open /status, /metrics and /v1/announce to the network; use 127.0.0.1:9100 or add --http-public"
        );
        assert!(http_address("10.1.2.3:80", false).is_err());
        assert!(http_address("0.0.0.0:9100", true).is_ok());
    }

    #[test]
    fn bad_swarm_options_are_one_sentence() {
        let args = SwarmArgs {
            peers: vec!["/ip4/1.2.3.4/tcp/x".into()],
            peer_wait: "3s".into(),
            ..SwarmArgs::default()
        };
        let err = swarm_options(&args, "http://127.0.0.1:1")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("--peer '/ip4/1.2.3.4/tcp/x' is not a valid multiaddr"),
            "{err}"
        );
        let args = SwarmArgs {
            peer_wait: "soon".into(),
            ..SwarmArgs::default()
        };
        assert!(
            swarm_options(&args, "http://127.0.0.1:1")
                .unwrap_err()
                .to_string()
                .starts_with("--peer-wait")
        );
        assert!(
            SwarmArgs {
                mdns: true,
                ..SwarmArgs::default()
            }
            .requested()
        );
        assert!(!SwarmArgs::default().requested());
        let window = |w: &str| {
            swarm_options(
                &SwarmArgs {
                    peer_wait: "3s".into(),
                    hub_window: Some(w.into()),
                    ..SwarmArgs::default()
                },
                "http://127.0.0.1:1",
            )
            .map(|s| s.hub_window)
        };
        assert_eq!(window("128MiB").ok(), Some(Some(128 << 20)));
        for bad in ["0", "wide"] {
            let err = window(bad).unwrap_err().to_string();
            assert!(err.starts_with("--hub-window"), "{err}");
        }
    }
}
