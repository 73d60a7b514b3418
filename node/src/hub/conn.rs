//! The hub's connections: at most [`Limits::max_connections`] open at once (more wait in the
//! listen backlog), a deadline for every request's headers (which also ends idle keep-alive
//! connections), and a deadline for a response that a client has stopped reading.

use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use hyper::Request;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;

/// What one client (one address) may hold and how long the hub waits for it.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Connections open at once; further clients wait in the listen backlog.
    pub max_connections: usize,
    /// Longest wait for a request's headers, from the connection's start or the end of the
    /// previous response (so also the idle keep-alive limit).
    pub header_timeout: Duration,
    /// Longest time a response may be blocked on a client that does not read.
    pub write_stall: Duration,
}

/// Default of `--max-connections`.
pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            header_timeout: Duration::from_secs(10),
            write_stall: Duration::from_secs(30),
        }
    }
}

/// The remote address of the connection a request came on (a request extension).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClientAddr(pub(crate) IpAddr);

/// Serves `router` on `listener` within `limits` until `shutdown` completes, then lets the
/// connections finish their requests.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let (stop, stopping) = watch::channel(());
    let mut open = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        while open.try_join_next().is_some() {}
        let permit = tokio::select! {
            permit = Arc::clone(&permits).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, or a connection reset before it was accepted.
                    tracing::warn!("the hub cannot accept a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        open.spawn(connection(
            stream,
            remote,
            router.clone(),
            limits,
            stopping.clone(),
            permit,
        ));
    }
    drop(listener);
    let _ = stop.send(());
    while open.join_next().await.is_some() {}
}

/// One connection, closed when its headers are late, when a response has been blocked for
/// `write_stall`, or after its request once the hub stops.
async fn connection(
    stream: TcpStream,
    remote: SocketAddr,
    router: Router,
    limits: Limits,
    mut stopping: watch::Receiver<()>,
    _permit: OwnedSemaphorePermit,
) {
    let _ = stream.set_nodelay(true);
    let blocked = Blocked::default();
    let io = TokioIo::new(Watched {
        inner: stream,
        blocked: blocked.clone(),
    });
    let client = ClientAddr(remote.ip());
    let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
        req.extensions_mut().insert(client);
        tower_service::Service::call(&mut router.clone(), req)
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    let conn = builder.serve_connection(io, service);
    tokio::pin!(conn);
    let mut check = tokio::time::interval((limits.write_stall / 4).max(Duration::from_millis(10)));
    let mut stopped = false;
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(%remote, "hub connection closed: {e}");
                }
                return;
            }
            _ = check.tick() => {
                if blocked.longer_than(limits.write_stall) {
                    tracing::debug!(%remote, "hub connection closed: the client stopped reading");
                    return;
                }
            }
            _ = stopping.changed(), if !stopped => {
                stopped = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

/// Since when writes to a connection have been blocked (0: they are not).
#[derive(Debug, Clone)]
struct Blocked {
    since: Arc<AtomicU64>,
    epoch: Instant,
}

impl Default for Blocked {
    fn default() -> Self {
        Blocked {
            since: Arc::new(AtomicU64::new(0)),
            epoch: Instant::now(),
        }
    }
}

impl Blocked {
    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos())
            .unwrap_or(u64::MAX)
            .max(1)
    }

    fn update(&self, wrote: bool) {
        if wrote {
            self.since.store(0, Ordering::Relaxed);
        } else if self.since.load(Ordering::Relaxed) == 0 {
            self.since.store(self.now(), Ordering::Relaxed);
        }
    }

    fn longer_than(&self, limit: Duration) -> bool {
        let since = self.since.load(Ordering::Relaxed);
        since != 0 && Duration::from_nanos(self.now().saturating_sub(since)) > limit
    }
}

/// A TCP stream that records when its writes are blocked.
#[derive(Debug)]
struct Watched {
    inner: TcpStream,
    blocked: Blocked,
}

impl Watched {
    fn record(&self, poll: Poll<io::Result<usize>>) -> Poll<io::Result<usize>> {
        match &poll {
            Poll::Pending => self.blocked.update(false),
            Poll::Ready(_) => self.blocked.update(true),
        }
        poll
    }
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.record(poll)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.record(poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Raises this process's soft limit of open files towards its hard limit so that
/// `connections` sockets (and the files they stream) fit; returns the connections that fit.
pub(crate) fn fit_open_files(connections: usize) -> usize {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    /// Descriptors kept for everything else: block files being streamed, the runtime.
    const SPARE: u64 = 256;
    let wanted = 2 * connections as u64 + SPARE;
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return connections;
    };
    let soft =
        if soft < wanted && setrlimit(Resource::RLIMIT_NOFILE, wanted.min(hard), hard).is_ok() {
            wanted.min(hard)
        } else {
            soft
        };
    let fit = usize::try_from(soft.saturating_sub(SPARE) / 2).unwrap_or(usize::MAX);
    if fit < connections {
        tracing::warn!(
            connections,
            fit,
            "the open-file limit is too low for --max-connections; serving fewer connections at once"
        );
    }
    fit.clamp(1, connections)
}
