//! The hub's HTTP server.
//!
//! - `GET /v1/blocks/{cid}`: the block's bytes (`application/octet-stream`), streamed from
//!   its file;
//! - `GET /v1/channels/{name}`: the channel's latest signed release (`application/cbor`);
//! - `GET /v1/stats`: [`HubStats`] as JSON.
//!
//! Anything else, an unknown block or an unknown channel is a 404 with `{"error": "..."}`.
//! Every body goes through the optional egress limit, shared fairly among clients
//! ([`FairShare`]); connections are capped and timed out ([`Limits`]).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Extension, Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bootswarm_protocol::block::parse_cid;
use bytes::BytesMut;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::conn::{ClientAddr, Limits};
use super::fair::{FairShare, SLICE};
use crate::error::{Error, Result};

/// Counters of a running hub.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HubStats {
    /// Body bytes of blocks and releases sent.
    pub egress_bytes: u64,
    /// Requests received.
    pub requests: u64,
    /// Block responses started.
    pub blocks_served: u64,
    /// Release requests (`GET /v1/channels/{name}`) received: the farm's release polls.
    #[serde(default)]
    pub release_requests: u64,
}

#[derive(Debug)]
struct Shared {
    dir: PathBuf,
    egress: Option<FairShare>,
    egress_bytes: AtomicU64,
    requests: AtomicU64,
    blocks_served: AtomicU64,
    release_requests: AtomicU64,
}

impl Shared {
    fn new(dir: PathBuf, rate: Option<u64>) -> Arc<Self> {
        Arc::new(Shared {
            dir,
            egress: rate.map(FairShare::new),
            egress_bytes: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            blocks_served: AtomicU64::new(0),
            release_requests: AtomicU64::new(0),
        })
    }

    fn stats(&self) -> HubStats {
        HubStats {
            egress_bytes: self.egress_bytes.load(Ordering::Relaxed),
            requests: self.requests.load(Ordering::Relaxed),
            blocks_served: self.blocks_served.load(Ordering::Relaxed),
            release_requests: self.release_requests.load(Ordering::Relaxed),
        }
    }
}

/// Binds a listener on `addr` (`host:port`), with a clear error if that is impossible.
pub async fn bind(addr: &str) -> Result<TcpListener> {
    TcpListener::bind(addr).await.map_err(|e| {
        if e.kind() == io::ErrorKind::AddrInUse {
            Error::new(format!(
                "cannot listen on {addr}: the address is already in use; choose another --listen port or stop the process using it"
            ))
        } else {
            Error::new(format!(
                "cannot listen on {addr} ({e}); give --listen as HOST:PORT, e.g. 0.0.0.0:8080"
            ))
        }
    })
}

/// Serves the hub directory `dir` on `listener` forever, limiting egress to `rate` bytes per
/// second if given.
pub async fn serve(dir: PathBuf, listener: TcpListener, rate: Option<u64>) -> Result<()> {
    serve_until(
        dir,
        listener,
        rate,
        Limits::default(),
        std::future::pending(),
    )
    .await
}

/// Like [`serve`] within `limits`, stopping gracefully when `shutdown` completes.
pub async fn serve_until(
    dir: PathBuf,
    listener: TcpListener,
    rate: Option<u64>,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    run(Shared::new(dir, rate), listener, limits, shutdown).await
}

async fn run(
    shared: Arc<Shared>,
    listener: TcpListener,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let limits = Limits {
        max_connections: super::conn::fit_open_files(limits.max_connections),
        ..limits
    };
    super::conn::serve(listener, router(shared), limits, shutdown).await;
    Ok(())
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/v1/blocks/{cid}", get(get_block))
        .route("/v1/channels/{name}", get(get_channel))
        .route("/v1/stats", get(get_stats))
        .fallback(not_found)
        .with_state(shared)
}

/// An embedded hub running on the current tokio runtime.
#[derive(Debug)]
pub struct HubHandle {
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<()>>,
}

/// Starts an embedded hub serving `dir` on `addr` (e.g. `127.0.0.1:0`).
pub async fn start(dir: PathBuf, addr: &str, rate: Option<u64>) -> Result<HubHandle> {
    start_with(dir, addr, rate, Limits::default()).await
}

/// Like [`start`], within `limits`.
pub async fn start_with(
    dir: PathBuf,
    addr: &str,
    rate: Option<u64>,
    limits: Limits,
) -> Result<HubHandle> {
    super::check_hub_dir(&dir)?;
    let listener = bind(addr).await?;
    let addr = listener
        .local_addr()
        .map_err(|e| Error::new(format!("cannot read the hub's listening address ({e})")))?;
    let shared = Shared::new(dir, rate);
    let (tx, rx) = oneshot::channel();
    let task = tokio::spawn(run(shared.clone(), listener, limits, async {
        let _ = rx.await;
    }));
    Ok(HubHandle {
        addr,
        shared,
        shutdown: Some(tx),
        task,
    })
}

impl HubHandle {
    /// The address the hub listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The hub's base URL, e.g. `http://127.0.0.1:41234`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Current counters.
    pub fn stats(&self) -> HubStats {
        self.shared.stats()
    }

    /// Stops accepting requests, finishes the ones in flight and waits for the server to end.
    pub async fn shutdown(mut self) -> Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        match (&mut self.task).await {
            Ok(result) => result,
            Err(e) => Err(Error::new(format!("the hub server task failed ({e})"))),
        }
    }
}

fn json_error(status: StatusCode, message: String) -> Response {
    (status, axum::Json(serde_json::json!({ "error": message }))).into_response()
}

async fn not_found(State(shared): State<Arc<Shared>>) -> Response {
    shared.requests.fetch_add(1, Ordering::Relaxed);
    json_error(
        StatusCode::NOT_FOUND,
        "no such endpoint; the hub serves /v1/blocks/{cid}, /v1/channels/{name} and /v1/stats"
            .into(),
    )
}

async fn get_stats(State(shared): State<Arc<Shared>>) -> Response {
    shared.requests.fetch_add(1, Ordering::Relaxed);
    axum::Json(shared.stats()).into_response()
}

fn bad_path(e: &PathRejection) -> Response {
    json_error(StatusCode::BAD_REQUEST, format!("bad request path: {e}"))
}

async fn get_block(
    State(shared): State<Arc<Shared>>,
    Extension(client): Extension<ClientAddr>,
    cid: std::result::Result<Path<String>, PathRejection>,
) -> Response {
    shared.requests.fetch_add(1, Ordering::Relaxed);
    let Path(cid) = match cid {
        Ok(cid) => cid,
        Err(e) => return bad_path(&e),
    };
    let cid = match parse_cid(&cid) {
        Ok(cid) => cid,
        Err(e) => {
            return json_error(
                StatusCode::BAD_REQUEST,
                format!("'{}' is not a block CID: {e}", cid.escape_debug()),
            );
        }
    };
    let path = super::block_path(&shared.dir, &cid);
    match open(&path).await {
        Ok(Some((file, len))) => {
            shared.blocks_served.fetch_add(1, Ordering::Relaxed);
            stream_file(shared, client, file, len, "application/octet-stream")
        }
        Ok(None) => json_error(StatusCode::NOT_FOUND, format!("the hub has no block {cid}")),
        Err(e) => {
            tracing::error!(path = %path.display(), "cannot read block file: {e}");
            json_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("the hub cannot read block {cid}"),
            )
        }
    }
}

async fn get_channel(
    State(shared): State<Arc<Shared>>,
    Extension(client): Extension<ClientAddr>,
    name: std::result::Result<Path<String>, PathRejection>,
) -> Response {
    shared.requests.fetch_add(1, Ordering::Relaxed);
    shared.release_requests.fetch_add(1, Ordering::Relaxed);
    let Path(name) = match name {
        Ok(name) => name,
        Err(e) => return bad_path(&e),
    };
    if let Err(e) = super::check_channel_name(&name) {
        return json_error(StatusCode::BAD_REQUEST, e.to_string());
    }
    let path = super::latest_path(&shared.dir, &name);
    match open(&path).await {
        Ok(Some((file, len))) => stream_file(shared, client, file, len, "application/cbor"),
        Ok(None) => json_error(
            StatusCode::NOT_FOUND,
            format!("the hub has no channel '{name}'"),
        ),
        Err(e) => {
            tracing::error!(path = %path.display(), "cannot read release file: {e}");
            json_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("the hub cannot read the release of channel '{name}'"),
            )
        }
    }
}

async fn open(path: &std::path::Path) -> io::Result<Option<(tokio::fs::File, u64)>> {
    let file = match tokio::fs::File::open(path).await {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let meta = file.metadata().await?;
    if !meta.is_file() {
        return Ok(None);
    }
    Ok(Some((file, meta.len())))
}

/// Streams `len` bytes of `file` in slices, each granted by the egress limit and counted.
fn stream_file(
    shared: Arc<Shared>,
    client: ClientAddr,
    file: tokio::fs::File,
    len: u64,
    content_type: &str,
) -> Response {
    let reader = file.take(len);
    let stream = futures_util::stream::try_unfold(
        (reader, shared),
        move |(mut reader, shared)| async move {
            let mut buf = BytesMut::with_capacity(SLICE);
            let n = reader.read_buf(&mut buf).await?;
            if n == 0 {
                return Ok::<_, io::Error>(None);
            }
            if let Some(egress) = &shared.egress {
                egress.take(client.0, n as u64).await;
            }
            shared.egress_bytes.fetch_add(n as u64, Ordering::Relaxed);
            Ok(Some((buf.freeze(), (reader, shared))))
        },
    );
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, content_type)
        .header(header::CONTENT_LENGTH, len)
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}
