//! The local block endpoint, for the rfs and 0-fs clients already on a Zero-OS node: blocks
//! by their hash's hex over HTTP (`GET /{xx}/{hex}`, `GET /{hex}`, `GET|HEAD
//! /api/v1/block/{hex}`, the layouts rfs's http and server stores read) and over RESP
//! ([`resp`], what a 0-db store speaks).
//!
//! Every block answered is one the store verified against its CID. A block not held yet is
//! waited for while the release is being booted (the agent fetches it from peers first and
//! its origin second); once the release is booted a missing block is not one any peer
//! holds, so it comes from its origin directly (an rfs block's upstream store, any other
//! block's hub), verified and stored before it is answered.

pub(crate) mod resp;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bootswarm_protocol::block::{self, Cid, MAX_BLOCK_SIZE};
use bootswarm_protocol::store::BlockStore;
use tokio::sync::{Semaphore, watch};

use super::status::Shared;
use crate::hub::client::HubClient;
use crate::rfs::upstream::Upstreams;
use crate::store::SledStore;

/// Longest a request waits for a block the boot has not fetched yet.
const WAIT_FOR_BOOT: Duration = Duration::from_secs(60);
/// Requests for blocks not held, at once; more are answered "busy".
const MAX_MISSES: usize = 64;

/// Why a block could not be answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Miss {
    /// The id is not 32 bytes (or 64 hex characters).
    BadId,
    /// Neither the store, the boot nor the block's origin has it.
    NotFound,
    /// Too many requests for missing blocks at once.
    Busy,
}

/// What the endpoint reads from: the store, the boot's progress and the hub.
#[derive(Clone)]
pub(crate) struct LocalBlocks {
    store: Arc<SledStore>,
    hub: HubClient,
    upstreams: Arc<Upstreams>,
    shared: Shared,
    /// Bumped each time a block is stored.
    stored: watch::Receiver<u64>,
    misses: Arc<Semaphore>,
}

/// The CIDs a raw 32-byte block id may name: an rfs block (its blake2b-256 id, what rfs
/// clients ask for), then a chunk or an flist by sha2-256.
pub(crate) fn candidates(id: &[u8]) -> Result<Vec<Cid>, Miss> {
    let digest: [u8; 32] = id.try_into().map_err(|_| Miss::BadId)?;
    let mut cids = vec![block::rfs_block_cid(digest)];
    cids.extend(
        [block::Codec::Raw, block::Codec::DagCbor]
            .into_iter()
            .map(|codec| block::sha256_cid(codec, digest)),
    );
    Ok(cids)
}

/// A block id in hex (64 characters) as bytes.
pub(crate) fn from_hex(hex: &str) -> Result<Vec<u8>, Miss> {
    crate::keys::from_hex32(hex)
        .map(|d| d.to_vec())
        .ok_or(Miss::BadId)
}

impl LocalBlocks {
    pub(crate) fn new(
        store: Arc<SledStore>,
        hub: HubClient,
        upstreams: Arc<Upstreams>,
        shared: Shared,
        stored: watch::Receiver<u64>,
    ) -> Self {
        LocalBlocks {
            store,
            hub,
            upstreams,
            shared,
            stored,
            misses: Arc::new(Semaphore::new(MAX_MISSES)),
        }
    }

    /// The verified bytes of the block with raw id `id`.
    pub(crate) async fn get(&self, id: &[u8]) -> Result<Vec<u8>, Miss> {
        let cids = candidates(id)?;
        if let Some(bytes) = self.held(&cids).await {
            return Ok(bytes);
        }
        let _permit = self
            .misses
            .clone()
            .try_acquire_owned()
            .map_err(|_| Miss::Busy)?;
        let mut stored = self.stored.clone();
        let waited = tokio::time::timeout(WAIT_FOR_BOOT, async {
            while !self.booted() {
                if stored.changed().await.is_err() {
                    return None;
                }
                if let Some(bytes) = self.held(&cids).await {
                    return Some(bytes);
                }
            }
            None
        })
        .await;
        if let Ok(Some(bytes)) = waited {
            return Ok(bytes);
        }
        if let Some(bytes) = self.held(&cids).await {
            return Ok(bytes);
        }
        self.fetch_from_origin(&cids).await.ok_or(Miss::NotFound)
    }

    /// Whether the block with raw id `id` is held (without fetching it).
    pub(crate) async fn exists(&self, id: &[u8]) -> Result<bool, Miss> {
        let cids = candidates(id)?;
        let store = Arc::clone(&self.store);
        Ok(tokio::task::spawn_blocking(move || {
            cids.iter().any(|c| store.contains(c).unwrap_or(false))
        })
        .await
        .unwrap_or(false))
    }

    fn booted(&self) -> bool {
        self.shared
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .booted
    }

    /// The first of `cids` the store holds and still verifies.
    async fn held(&self, cids: &[Cid]) -> Option<Vec<u8>> {
        let store = Arc::clone(&self.store);
        let cids = cids.to_vec();
        tokio::task::spawn_blocking(move || cids.iter().find_map(|c| store.get(c).ok().flatten()))
            .await
            .ok()
            .flatten()
    }

    /// Fetches a block from its origin (an rfs block's upstream store, any other block's
    /// hub), verifies it against its CID and stores it.
    async fn fetch_from_origin(&self, cids: &[Cid]) -> Option<Vec<u8>> {
        for cid in cids {
            let verified = if block::is_rfs_block(cid) {
                match self.upstreams.fetch(cid, MAX_BLOCK_SIZE).await {
                    Ok((v, _)) => v,
                    Err(_) => continue,
                }
            } else {
                let Ok(bytes) = self.hub.block(cid, MAX_BLOCK_SIZE).await else {
                    continue;
                };
                match block::Verified::check(*cid, bytes) {
                    Ok(v) => v,
                    Err(refused) => {
                        tracing::warn!(%cid, "the hub sent a block that does not match its CID: {}", refused.error);
                        continue;
                    }
                }
            };
            let store = Arc::clone(&self.store);
            return tokio::task::spawn_blocking(move || {
                if let Err(e) = store.put_verified(&verified) {
                    tracing::warn!("{e}");
                }
                verified.into_bytes()
            })
            .await
            .ok();
        }
        None
    }
}

/// The HTTP routes, to merge into the `--http` router.
pub(crate) fn router(blocks: LocalBlocks) -> Router {
    Router::new()
        .route("/api/v1/block/{hex}", get(by_hex).head(head_by_hex))
        .route("/{xx}/{hex}", get(by_prefixed_hex))
        .route("/{hex}", get(by_hex))
        .with_state(blocks)
}

async fn by_hex(State(blocks): State<LocalBlocks>, Path(hex): Path<String>) -> Response {
    answer(&blocks, &hex).await
}

async fn by_prefixed_hex(
    State(blocks): State<LocalBlocks>,
    Path((xx, hex)): Path<(String, String)>,
) -> Response {
    if !hex.starts_with(&xx) || xx.len() != 2 {
        return (StatusCode::NOT_FOUND, "no such block\n").into_response();
    }
    answer(&blocks, &hex).await
}

async fn head_by_hex(State(blocks): State<LocalBlocks>, Path(hex): Path<String>) -> Response {
    match from_hex(&hex) {
        Ok(id) => match blocks.exists(&id).await {
            Ok(true) => StatusCode::OK.into_response(),
            _ => StatusCode::NOT_FOUND.into_response(),
        },
        Err(_) => StatusCode::BAD_REQUEST.into_response(),
    }
}

async fn answer(blocks: &LocalBlocks, hex: &str) -> Response {
    let id = match from_hex(&hex.to_ascii_lowercase()) {
        Ok(id) => id,
        Err(_) => {
            return (
                StatusCode::BAD_REQUEST,
                format!("'{hex}' is not a block id; give its 64 hex characters\n"),
            )
                .into_response();
        }
    };
    match blocks.get(&id).await {
        Ok(bytes) => ([(header::CONTENT_TYPE, "application/octet-stream")], bytes).into_response(),
        Err(Miss::Busy) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "too many missing blocks are being fetched; retry\n",
        )
            .into_response(),
        Err(_) => (
            StatusCode::NOT_FOUND,
            format!("block {hex} is held by no peer and not on the hub\n"),
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_raw_id_names_the_sha2_block_with_that_digest() {
        let cid = block::cid_of(block::Codec::Raw, b"hello");
        let digest = block::digest(&cid).unwrap();
        let all = candidates(&digest).unwrap();
        assert_eq!(all[0], block::rfs_block_cid(digest));
        assert_eq!(all[1], cid);
        assert_eq!(all[2], block::cid_of(block::Codec::DagCbor, b"hello"));
        assert_eq!(candidates(&digest[..31]), Err(Miss::BadId));
        let hex = crate::keys::to_hex(&digest);
        assert_eq!(from_hex(&hex).unwrap(), digest.to_vec());
        assert_eq!(from_hex("zz"), Err(Miss::BadId));
    }
}
