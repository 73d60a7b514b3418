//! Phase 1 of a boot: every block of a release into the store, verified, with bounded
//! concurrency. Blocks the store already holds are not fetched again.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bootswarm_protocol::block::{Cid, Codec, check_cid, is_rfs_block};
use bootswarm_protocol::manifest::{Flist, MAX_MANIFEST_SIZE, MAX_RFS_CHUNK, stored_cap};
use bootswarm_protocol::store::{BlockStore, StoreError};
use bootswarm_protocol::walk::{Placed, Walk};
use futures_util::{StreamExt, TryStreamExt, stream};

use crate::error::{Error, Result};
use crate::hub::client::HubClient;
use crate::materialise::{Tree, plan};
use crate::progress::Progress;
use crate::rfs::upstream::Upstreams;
use crate::task::blocking;

/// Traffic of a fetch phase.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FetchStats {
    /// Body bytes received from the hub.
    pub hub_bytes: u64,
    /// Stored bytes of the rfs blocks received from upstream stores.
    pub upstream_bytes: u64,
    /// Blocks fetched from the hub.
    pub blocks_fetched: u64,
    /// Blocks the store already held.
    pub blocks_reused: u64,
    /// Bytes of the blocks the store already held.
    pub bytes_reused: u64,
}

#[derive(Default)]
struct Counters {
    hub_bytes: AtomicU64,
    upstream_bytes: AtomicU64,
    fetched: AtomicU64,
    reused: AtomicU64,
    bytes_reused: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> FetchStats {
        FetchStats {
            hub_bytes: self.hub_bytes.load(Ordering::Relaxed),
            upstream_bytes: self.upstream_bytes.load(Ordering::Relaxed),
            blocks_fetched: self.fetched.load(Ordering::Relaxed),
            blocks_reused: self.reused.load(Ordering::Relaxed),
            bytes_reused: self.bytes_reused.load(Ordering::Relaxed),
        }
    }
}

/// Fetches the flist tree under `root` and every chunk it references into `store`, and
/// returns the combined, checked [`Tree`]. Nothing is written outside the store.
pub(crate) async fn fetch_release<S>(
    client: &HubClient,
    upstreams: &Upstreams,
    store: &Arc<S>,
    root: &Cid,
    concurrency: usize,
    progress: &Progress,
) -> Result<(Tree, FetchStats)>
where
    S: BlockStore + Send + Sync + 'static,
{
    let counters = Arc::new(Counters::default());
    let flists = fetch_flists(client, store, root, concurrency, &counters).await?;
    for placed in &flists {
        upstreams.learn(&placed.flist);
    }
    let tree = blocking(move || plan(&flists)).await?;
    let from = Origin { client, upstreams };
    fetch_chunks(from, store, &tree, concurrency, progress, &counters).await?;
    Ok((tree, counters.snapshot()))
}

/// Fetches the root flist and, level by level, its children (the release's [`Walk`], which
/// bounds depth and count), each verified by the store and decoded.
async fn fetch_flists<S>(
    client: &HubClient,
    store: &Arc<S>,
    root: &Cid,
    concurrency: usize,
    counters: &Arc<Counters>,
) -> Result<Vec<Placed>>
where
    S: BlockStore + Send + Sync + 'static,
{
    if check_cid(root) != Ok(Codec::DagCbor) {
        return Err(Error::new(format!(
            "the release's root {root} is not a dag-cbor sha2-256 CID; the publisher made an invalid release"
        )));
    }
    let mut walk = Walk::new(*root);
    let mut out = Vec::new();
    while !walk.is_done() {
        // Same CID twice (two identical packages) is fetched once.
        let decoded: HashMap<Cid, Flist> = stream::iter(walk.wanted())
            .map(|cid| {
                let (store, counters) = (Arc::clone(store), Arc::clone(counters));
                async move {
                    let flist = fetch_flist(client, store, cid, &counters).await?;
                    Ok::<_, Error>((cid, flist))
                }
            })
            .buffer_unordered(concurrency)
            .try_collect()
            .await?;
        for (cid, flist) in decoded {
            walk.add(cid, flist);
        }
        out.extend(walk.advance()?);
    }
    Ok(out)
}

/// One flist: from the store when it holds a good copy, else from the hub (capped at
/// [`MAX_MANIFEST_SIZE`]) into the store; then decoded.
async fn fetch_flist<S>(
    client: &HubClient,
    store: Arc<S>,
    cid: Cid,
    counters: &Counters,
) -> Result<Flist>
where
    S: BlockStore + Send + Sync + 'static,
{
    let st = Arc::clone(&store);
    let held = blocking(move || match st.get(&cid) {
        Ok(b) => Ok(b),
        // A corrupted copy was dropped by the store: fetch it again.
        Err(StoreError::Corrupted { .. }) => Ok(None),
        Err(e) => Err(store_error(&cid, &e)),
    })
    .await?;
    let bytes = match held {
        Some(bytes) => {
            counters.reused.fetch_add(1, Ordering::Relaxed);
            counters
                .bytes_reused
                .fetch_add(bytes.len() as u64, Ordering::Relaxed);
            bytes
        }
        None => {
            let bytes = client.block(&cid, MAX_MANIFEST_SIZE).await?;
            counters
                .hub_bytes
                .fetch_add(bytes.len() as u64, Ordering::Relaxed);
            counters.fetched.fetch_add(1, Ordering::Relaxed);
            let st = Arc::clone(&store);
            blocking(move || {
                st.put(&cid, &bytes).map_err(|e| store_error(&cid, &e))?;
                Ok(bytes)
            })
            .await?
        }
    };
    blocking(move || {
        Flist::decode(&bytes).map_err(|e| {
            Error::new(format!(
                "flist {cid} is not a valid flist ({}); the publisher made an invalid release, nothing was installed",
                e.to_string().trim_end_matches('.')
            ))
        })
    })
    .await
}

/// Every chunk of `tree` not yet in the store, from the hub, verified by the store.
async fn fetch_chunks<S>(
    from: Origin<'_>,
    store: &Arc<S>,
    tree: &Tree,
    concurrency: usize,
    progress: &Progress,
    counters: &Arc<Counters>,
) -> Result<()>
where
    S: BlockStore + Send + Sync + 'static,
{
    // Every chunk the store holds is read back and verified first; one that fails has been
    // dropped by the store and is fetched again, so the target is only touched once every
    // block is present and good.
    let chunks = tree.chunks().to_vec();
    let st = Arc::clone(store);
    let held = blocking(move || verify_stored(&*st, &chunks)).await?;
    counters.reused.fetch_add(held.present, Ordering::Relaxed);
    counters
        .bytes_reused
        .fetch_add(held.present_bytes, Ordering::Relaxed);
    let missing = held.missing;

    let total: u64 = missing.iter().map(|(_, len)| u64::from(*len)).sum();
    progress.fetching(total, missing.len());
    stream::iter(missing)
        .map(|(cid, len)| {
            let (store, counters) = (Arc::clone(store), Arc::clone(counters));
            async move {
                if is_rfs_block(&cid) {
                    let bytes = from.upstream(&cid, len).await?;
                    counters
                        .upstream_bytes
                        .fetch_add(bytes.len() as u64, Ordering::Relaxed);
                    blocking(move || store.put(&cid, &bytes).map_err(|e| store_error(&cid, &e)))
                        .await?;
                    counters.fetched.fetch_add(1, Ordering::Relaxed);
                    progress.inc(u64::from(len));
                    return Ok(());
                }
                let bytes = from.client.block(&cid, len as usize).await?;
                counters
                    .hub_bytes
                    .fetch_add(bytes.len() as u64, Ordering::Relaxed);
                if bytes.len() != len as usize {
                    return Err(Error::new(format!(
                        "block {cid} from the hub is {} bytes but its manifest says {len}; the hub is serving corrupt data, nothing was installed",
                        bytes.len()
                    )));
                }
                // Hashing up to 4 MiB: off the async workers.
                blocking(move || store.put(&cid, &bytes).map_err(|e| store_error(&cid, &e)))
                    .await?;
                counters.fetched.fetch_add(1, Ordering::Relaxed);
                progress.inc(u64::from(len));
                Ok(())
            }
        })
        .buffer_unordered(concurrency)
        .try_collect::<()>()
        .await
}

/// What [`verify_stored`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoredChunks {
    /// Chunks the store holds, read back and verified.
    pub present: u64,
    /// Their bytes.
    pub present_bytes: u64,
    /// Chunks to fetch: absent, or found corrupted (and dropped by the store), in order.
    pub missing: Vec<(Cid, u32)>,
    /// How many of `missing` were found corrupted.
    pub dropped: u64,
}

/// Reads and verifies every chunk of `chunks` held by `store` (blocking: hashes everything).
/// A corrupted chunk is dropped by the store and listed as missing, so that after fetching
/// the missing ones every chunk is present and verified.
pub fn verify_stored<S: BlockStore + ?Sized>(
    store: &S,
    chunks: &[(Cid, u32)],
) -> Result<StoredChunks> {
    let mut out = StoredChunks::default();
    for &(cid, len) in chunks {
        match store.get(&cid) {
            Ok(Some(_)) => {
                out.present += 1;
                out.present_bytes += u64::from(len);
            }
            Ok(None) => out.missing.push((cid, len)),
            Err(StoreError::Corrupted { .. }) => {
                out.dropped += 1;
                out.missing.push((cid, len));
            }
            Err(e) => return Err(store_error(&cid, &e)),
        }
    }
    if out.dropped > 0 {
        tracing::warn!(
            dropped = out.dropped,
            "stored chunks failed verification and will be fetched again"
        );
    }
    Ok(out)
}

/// A store error as one sentence; a block that fails verification came from the hub.
fn store_error(cid: &Cid, e: &StoreError) -> Error {
    match e {
        StoreError::Verify(_) => Error::new(format!(
            "block {cid} from the hub does not match its CID; the hub is serving corrupt data, nothing was installed"
        )),
        other => Error::new(format!(
            "the store failed on block {cid} ({}); check the --store directory",
            other.to_string().trim_end_matches('.')
        )),
    }
}

/// Where a hub-only boot fetches chunks: rfs blocks from their upstream stores, the rest
/// from the hub.
#[derive(Debug, Clone, Copy)]
struct Origin<'a> {
    client: &'a HubClient,
    upstreams: &'a Upstreams,
}

impl Origin<'_> {
    /// Rfs block `cid` of `len` plaintext bytes, verified against its CID.
    async fn upstream(&self, cid: &Cid, len: u32) -> Result<Vec<u8>> {
        let cap = stored_cap(len.min(MAX_RFS_CHUNK)) as usize;
        match self.upstreams.fetch(cid, cap).await {
            Ok((block, _)) => Ok(block.into_bytes()),
            Err(e) => Err(Error::new(format!(
                "{}; nothing was installed",
                e.to_string().trim_end_matches('.')
            ))),
        }
    }
}
