//! The async runtime, blocking work off its workers, and the wall clock.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::{Error, Result};

/// How a command uses the runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runtime {
    /// One thread: clients that wait on one thing at a time.
    Client,
    /// Two workers: the daemon, the hub and the demo, which serve while they fetch.
    Server,
}

/// Builds the tokio runtime for `kind`.
pub fn runtime(kind: Runtime) -> Result<tokio::runtime::Runtime> {
    let mut builder = match kind {
        Runtime::Client => tokio::runtime::Builder::new_current_thread(),
        Runtime::Server => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(2);
            b
        }
    };
    builder
        .enable_all()
        .build()
        .map_err(|e| Error::new(format!("cannot start the async runtime ({e})")))
}

/// Runs `f` on tokio's blocking pool and returns its result.
pub async fn blocking<T, F>(f: F) -> Result<T>
where
    F: FnOnce() -> Result<T> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::new(format!("a background task failed unexpectedly ({e})")))?
}

/// Runs an infallible `f` on tokio's blocking pool; `None` if the task panicked or was
/// cancelled.
pub async fn blocking_value<T, F>(f: F) -> Option<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f).await.ok()
}

/// The wall clock in unix seconds (0 if it is set before 1970).
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
