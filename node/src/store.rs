//! The node's block store: sled, verify on put, re-verify on get.
//!
//! The store is a cache. Nothing security-critical trusts it: every block is verified against
//! its CID when stored and again when read, and a block that no longer verifies is dropped.

use std::path::Path;

use bootswarm_protocol::block::{self, BlockError, Cid};
use bootswarm_protocol::store::{BlockStore, StoreError};

use crate::error::{Error, Result};

/// sled's page cache, kept small: many nodes may run on one machine.
const CACHE_CAPACITY: u64 = 16 * 1024 * 1024;

/// A sled-backed [`BlockStore`].
#[derive(Debug, Clone)]
pub struct SledStore {
    db: sled::Db,
}

fn backend(e: sled::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

impl SledStore {
    /// Opens (or creates) the store in `dir`.
    pub fn open(dir: &Path) -> Result<SledStore> {
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(CACHE_CAPACITY)
            .open()
            .map_err(|e| {
                Error::new(format!(
                    "cannot open the block store at {} ({e}); check the path and its permissions, \
                     make sure no other bootswarm process uses it, or delete it to start with an empty cache",
                    dir.display()
                ))
            })?;
        Ok(SledStore { db })
    }

    /// Number of blocks stored.
    pub fn len(&self) -> usize {
        self.db.len()
    }

    /// Whether the store holds no block.
    pub fn is_empty(&self) -> bool {
        self.db.is_empty()
    }

    /// Writes everything to disk.
    pub fn flush(&self) -> Result<()> {
        self.db.flush().map(|_| ()).map_err(|e| {
            Error::new(format!(
                "cannot flush the block store to disk ({e}); check free space on the store's disk"
            ))
        })
    }
}

impl BlockStore for SledStore {
    fn put(&self, cid: &Cid, bytes: &[u8]) -> std::result::Result<(), StoreError> {
        block::verify(cid, bytes)?;
        let key = cid.to_bytes();
        if self.db.contains_key(&key).map_err(backend)? {
            return Ok(());
        }
        self.db.insert(key, bytes).map_err(backend)?;
        Ok(())
    }

    fn get(&self, cid: &Cid) -> std::result::Result<Option<Vec<u8>>, StoreError> {
        let key = cid.to_bytes();
        let Some(bytes) = self.db.get(&key).map_err(backend)? else {
            return Ok(None);
        };
        match block::verify(cid, &bytes) {
            Ok(()) => Ok(Some(bytes.to_vec())),
            Err(e @ BlockError::Cid { .. }) => Err(e.into()),
            Err(_) => {
                tracing::warn!(%cid, "stored block failed verification; dropping it");
                self.db.remove(&key).map_err(backend)?;
                Err(StoreError::Corrupted { cid: *cid })
            }
        }
    }

    fn contains(&self, cid: &Cid) -> std::result::Result<bool, StoreError> {
        self.db.contains_key(cid.to_bytes()).map_err(backend)
    }

    fn remove(&self, cid: &Cid) -> std::result::Result<(), StoreError> {
        self.db.remove(cid.to_bytes()).map_err(backend)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bootswarm_protocol::block::{Codec, cid_of};

    #[test]
    fn put_get_round_trip_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let cid = cid_of(Codec::Raw, b"hello");
        {
            let store = SledStore::open(dir.path()).unwrap();
            assert_eq!(store.get(&cid).unwrap(), None);
            store.put(&cid, b"hello").unwrap();
            store.put(&cid, b"hello").unwrap();
            assert_eq!(store.len(), 1);
            store.flush().unwrap();
        }
        let store = SledStore::open(dir.path()).unwrap();
        assert!(store.contains(&cid).unwrap());
        assert_eq!(store.get(&cid).unwrap().as_deref(), Some(&b"hello"[..]));
        store.remove(&cid).unwrap();
        assert!(!store.contains(&cid).unwrap());
    }

    #[test]
    fn put_refuses_bytes_that_do_not_match() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        let cid = cid_of(Codec::Raw, b"hello");
        assert!(matches!(
            store.put(&cid, b"hellO"),
            Err(StoreError::Verify(BlockError::Mismatch { .. }))
        ));
        assert!(store.is_empty());
    }

    #[test]
    fn corrupted_entry_is_dropped_and_reported() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        let cid = cid_of(Codec::Raw, b"hello");
        store.put(&cid, b"hello").unwrap();
        store.db.insert(cid.to_bytes(), &b"jello"[..]).unwrap();
        assert!(matches!(
            store.get(&cid),
            Err(StoreError::Corrupted { cid: c }) if c == cid
        ));
        assert!(!store.contains(&cid).unwrap(), "corrupted entry removed");
        assert_eq!(store.get(&cid).unwrap(), None);
    }

    #[test]
    fn open_on_a_file_is_one_sentence() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("not-a-dir");
        std::fs::write(&file, b"x").unwrap();
        let err = SledStore::open(&file).unwrap_err().to_string();
        assert!(err.contains("cannot open the block store at"), "{err}");
        assert!(err.contains("not-a-dir"), "{err}");
    }
}
