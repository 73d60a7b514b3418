//! Running blocking work (sled, hashing, files) off the async workers.

use crate::error::{Error, Result};

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
