//! Work the event loop hands off: hashing, the store, the hub and the install steps run in
//! bounded tasks that report back over one bounded channel as [`TaskMsg`]s.

use std::sync::{Arc, Mutex, PoisonError};

use bootswarm_protocol::agent::{FetchError, RequestId, ServeId};
use bootswarm_protocol::block::{Cid, is_rfs_block};
use bootswarm_protocol::follower::{self, Input as Fact};
use bootswarm_protocol::manifest::{MAX_RFS_CHUNK, stored_cap};
use bootswarm_protocol::release::HighWater;
use bootswarm_protocol::store::{BlockStore, StoreError};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::AbortHandle;

use super::payload::Block;
use crate::error::Error;
use crate::hub::client::HubClient;
use crate::materialise::MaterialiseStats;
use crate::rfs::upstream::{UpstreamError, Upstreams};
use crate::state::NodeState;
use crate::store::SledStore;
use crate::task::{blocking, blocking_value};

/// Store reads and writes running at once.
pub(crate) const DISK_TASKS: usize = 8;
/// Capacity of the channel tasks report on (tasks in flight are bounded well below it).
pub(crate) const TASK_CHANNEL: usize = 1024;

/// What a finished task reports to the loop.
#[derive(Debug)]
pub(crate) enum TaskMsg {
    Fetched {
        req: RequestId,
        payload: Block,
    },
    FetchFailed {
        req: RequestId,
        error: FetchError,
    },
    Local {
        cid: Cid,
        block: Option<Block>,
    },
    Served {
        id: ServeId,
        bytes: Option<Vec<u8>>,
    },
    Stored {
        cid: Cid,
        result: std::result::Result<(), StoreError>,
    },
    /// A fact for the release follower (a poll answer, an install step done), and what an
    /// install step wrote.
    Follower(Fact, Option<MaterialiseStats>),
    /// The high-water mark could not be saved: the daemon cannot go on safely.
    SaveFailed(Error),
}

/// Spawns tasks with what they share: the store, the report channel, the disk permits.
#[derive(Debug, Clone)]
pub(crate) struct Tasks {
    pub(crate) store: Arc<SledStore>,
    tx: mpsc::Sender<TaskMsg>,
    disk: Arc<Semaphore>,
    /// Stores of the rfs blocks, which learn their routes from the flists seen.
    pub(crate) upstreams: Arc<Upstreams>,
}

impl Tasks {
    pub(crate) fn new(
        store: Arc<SledStore>,
        tx: mpsc::Sender<TaskMsg>,
        upstreams: Arc<Upstreams>,
    ) -> Self {
        Tasks {
            store,
            tx,
            disk: Arc::new(Semaphore::new(DISK_TASKS)),
            upstreams,
        }
    }

    /// Runs `f` on the blocking pool (holding a disk permit) and reports its message.
    fn disk<F>(&self, f: F)
    where
        F: FnOnce(&SledStore) -> TaskMsg + Send + 'static,
    {
        let (store, tx, disk) = (Arc::clone(&self.store), self.tx.clone(), self.disk.clone());
        tokio::spawn(async move {
            let _permit = disk.acquire_owned().await;
            if let Some(msg) = blocking_value(move || f(&store)).await {
                let _ = tx.send(msg).await;
            }
        });
    }

    /// Runs an install step on the blocking pool; its answer goes to the follower.
    pub(crate) fn step<F>(&self, f: F)
    where
        F: FnOnce(&SledStore) -> (Fact, Option<MaterialiseStats>) + Send + 'static,
    {
        self.disk(move |store| {
            let (fact, wrote) = f(store);
            TaskMsg::Follower(fact, wrote)
        });
    }

    /// Hashes a block that arrived from a peer, off the event loop.
    pub(crate) fn verify(&self, req: RequestId, cid: Cid, bytes: Vec<u8>) {
        let (tx, upstreams) = (self.tx.clone(), Arc::clone(&self.upstreams));
        tokio::spawn(async move {
            let msg = match blocking_value(move || checked(&upstreams, cid, bytes)).await {
                Some(payload) => TaskMsg::Fetched { req, payload },
                None => TaskMsg::FetchFailed {
                    req,
                    error: FetchError::Other,
                },
            };
            let _ = tx.send(msg).await;
        });
    }

    /// Fetches a block from the origin and hashes it; the handle aborts it. The origin of an
    /// rfs block is its upstream store, of any other block the hub.
    pub(crate) fn fetch_hub(
        &self,
        hub: &HubClient,
        req: RequestId,
        cid: Cid,
        len: u32,
    ) -> AbortHandle {
        let (hub, tx, upstreams) = (hub.clone(), self.tx.clone(), Arc::clone(&self.upstreams));
        tokio::spawn(async move {
            let msg = if is_rfs_block(&cid) {
                fetch_upstream(&upstreams, req, cid, len).await
            } else {
                match hub.block_or_missing(&cid, len as usize).await {
                    Ok(None) => {
                        tracing::debug!(%cid, "the hub does not have the block");
                        TaskMsg::FetchFailed {
                            req,
                            error: FetchError::NotFound,
                        }
                    }
                    Ok(Some(bytes)) => {
                        match blocking_value(move || checked(&upstreams, cid, bytes)).await {
                            Some(payload) => TaskMsg::Fetched { req, payload },
                            None => TaskMsg::FetchFailed {
                                req,
                                error: FetchError::Other,
                            },
                        }
                    }
                    Err(e) => {
                        tracing::debug!("hub fetch failed: {e}");
                        TaskMsg::FetchFailed {
                            req,
                            error: FetchError::HubUnavailable,
                        }
                    }
                }
            };
            let _ = tx.send(msg).await;
        })
        .abort_handle()
    }

    /// Answers a serve with bytes already in memory.
    pub(crate) fn served(&self, id: ServeId, bytes: Vec<u8>) {
        let tx = self.tx.clone();
        tokio::spawn(async move {
            let _ = tx
                .send(TaskMsg::Served {
                    id,
                    bytes: Some(bytes),
                })
                .await;
        });
    }

    /// Reads a block to serve (the store re-verifies it unless this process hashed it
    /// recently).
    pub(crate) fn serve(&self, id: ServeId, cid: Cid) {
        self.disk(move |store| TaskMsg::Served {
            id,
            bytes: store.get_for_peer(&cid).ok().flatten(),
        });
    }

    /// Looks a block up in the store for the agent.
    pub(crate) fn lookup(&self, cid: Cid) {
        let upstreams = Arc::clone(&self.upstreams);
        self.disk(move |store| {
            let block = match store.get(&cid) {
                Ok(b) => b.map(|bytes| {
                    upstreams.learn_block(&cid, &bytes);
                    Block::from_store(cid, bytes)
                }),
                Err(e) => {
                    tracing::warn!("{e}");
                    None
                }
            };
            TaskMsg::Local { cid, block }
        });
    }

    /// Writes a verified block to the store.
    pub(crate) fn store(&self, cid: Cid, block: Arc<Block>) {
        self.disk(move |store| {
            let result = match &*block {
                Block::Verified(v) if v.cid() == &cid => store.put_verified(v),
                other => store.put(&cid, other.as_bytes()),
            };
            TaskMsg::Stored { cid, result }
        });
    }

    /// Asks the hub for the channel's release.
    pub(crate) fn poll(&self, hub: &HubClient, channel: &str) {
        let (hub, tx, channel) = (hub.clone(), self.tx.clone(), channel.to_string());
        tokio::spawn(async move {
            let result = hub
                .release(&channel)
                .await
                .map(|(_, bytes)| bytes)
                .map_err(|e| e.to_string());
            let _ = tx.send(TaskMsg::Follower(Fact::Polled(result), None)).await;
        });
    }

    /// Saves the high-water mark in `state.json` and the signed release beside it;
    /// `after_save` runs once both are durable.
    pub(crate) fn save(
        &self,
        state: &Arc<Mutex<NodeState>>,
        store_dir: &std::path::Path,
        channel: &str,
        (high_water, bytes): (HighWater, Vec<u8>),
        after_save: fn(&NodeState),
    ) {
        let (state, dir, channel, tx) = (
            Arc::clone(state),
            store_dir.to_path_buf(),
            channel.to_string(),
            self.tx.clone(),
        );
        let root = high_water.root;
        tokio::spawn(async move {
            let result = blocking(move || {
                let mut st = state.lock().unwrap_or_else(PoisonError::into_inner);
                st.high_water.insert(channel.clone(), high_water);
                st.save(&dir)?;
                // The signed release too, so that a restart can boot while the hub is down.
                let path = release_path(&dir, &channel);
                crate::fsutil::write_atomic(&path, &bytes, Some(0o644)).map_err(|e| {
                    Error::new(format!(
                        "cannot save the release to {} ({e}); check free space on the store's disk",
                        path.display()
                    ))
                })?;
                after_save(&st);
                Ok(())
            })
            .await;
            let msg = match result {
                Ok(()) => TaskMsg::Follower(Fact::Saved { root }, None),
                Err(e) => TaskMsg::SaveFailed(e),
            };
            let _ = tx.send(msg).await;
        });
    }
}

/// Where the accepted signed release of `channel` is kept.
pub(crate) fn release_path(store_dir: &std::path::Path, channel: &str) -> std::path::PathBuf {
    store_dir.join(format!("release-{channel}.cbor"))
}

/// The follower's version from the node's state.
pub(crate) fn version(seq: u64, root: &str) -> Option<follower::Version> {
    bootswarm_protocol::block::parse_cid(root)
        .ok()
        .map(|root| follower::Version { seq, root })
}

/// Hashes `bytes` against `cid` (call it on a blocking thread); a good flist teaches the
/// upstreams its routes.
fn checked(upstreams: &Upstreams, cid: Cid, bytes: Vec<u8>) -> Block {
    let block = Block::verified(cid, bytes);
    if let Block::Verified(v) = &block {
        upstreams.learn_block(&cid, v.bytes());
    }
    block
}

/// Fetches rfs block `cid` (at most `cap` bytes: the agent plans it at its stored cap) from
/// its upstream stores, verified.
async fn fetch_upstream(upstreams: &Upstreams, req: RequestId, cid: Cid, cap: u32) -> TaskMsg {
    let cap = cap.min(stored_cap(MAX_RFS_CHUNK)) as usize;
    match upstreams.fetch(&cid, cap).await {
        Ok((block, from)) => {
            tracing::debug!(%cid, %from, "rfs block from upstream");
            TaskMsg::Fetched {
                req,
                payload: Block::Verified(block),
            }
        }
        Err(e) => {
            tracing::warn!("{e}");
            let error = match e {
                UpstreamError::Failed { mismatch: true, .. } => FetchError::Other,
                _ => FetchError::HubUnavailable,
            };
            TaskMsg::FetchFailed { req, error }
        }
    }
}
