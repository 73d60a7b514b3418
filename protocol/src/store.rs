//! Block stores: verified put, re-verified get.

use crate::block::{BlockError, Cid, Verified, verify};
use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The bytes do not verify against the CID.
    #[error("block was not stored: {0}")]
    Verify(#[from] BlockError),
    /// A stored block no longer verifies; it has been removed.
    #[error(
        "stored block {cid} was corrupted on disk and has been dropped; it will be fetched again"
    )]
    Corrupted {
        /// The corrupted block.
        cid: Cid,
    },
    /// The storage backend failed.
    #[error("block store failed: {0}; check the disk and the store directory")]
    Backend(String),
    /// The block does not fit in the store's quota even with every unpinned block evicted.
    #[error("{0}")]
    Full(Box<NoRoom>),
}

/// A block that does not fit in the store's quota.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "block {cid} ({len} bytes) does not fit in the store quota of {limit} bytes, of which {pinned} bytes are pinned by the releases kept and the one being fetched; raise the quota"
)]
pub struct NoRoom {
    /// The block.
    pub cid: Cid,
    /// Its length.
    pub len: u64,
    /// The quota in bytes.
    pub limit: u64,
    /// Bytes pinned.
    pub pinned: u64,
}

/// A content-addressed block store.
pub trait BlockStore {
    /// Verifies `bytes` against `cid`, then stores them. Storing an existing block is a no-op.
    fn put(&self, cid: &Cid, bytes: &[u8]) -> Result<(), StoreError>;
    /// Stores a block already verified, without hashing it again.
    fn put_verified(&self, block: &Verified) -> Result<(), StoreError> {
        self.put(block.cid(), block.bytes())
    }
    /// The block's bytes, re-verified. A stored block that no longer verifies is removed
    /// and reported as [`StoreError::Corrupted`].
    fn get(&self, cid: &Cid) -> Result<Option<Vec<u8>>, StoreError>;
    /// The block's bytes as stored, for a caller that hashes them itself (an install verifies
    /// every byte it writes): a store may skip its own check here, so that the bytes are
    /// read and hashed once. Defaults to [`BlockStore::get`].
    fn get_unverified(&self, cid: &Cid) -> Result<Option<Vec<u8>>, StoreError> {
        self.get(cid)
    }
    /// Whether the block is stored (without re-verifying it).
    fn contains(&self, cid: &Cid) -> Result<bool, StoreError>;
    /// Removes the block; removing a missing block is a no-op.
    fn remove(&self, cid: &Cid) -> Result<(), StoreError>;
}

/// An in-memory [`BlockStore`].
#[derive(Debug, Default)]
pub struct MemoryStore(Mutex<BTreeMap<Cid, Vec<u8>>>);

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn map(&self) -> MutexGuard<'_, BTreeMap<Cid, Vec<u8>>> {
        // The map is consistent after any panic: each operation is a single map call.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Number of stored blocks.
    pub fn len(&self) -> usize {
        self.map().len()
    }

    /// Whether the store is empty.
    pub fn is_empty(&self) -> bool {
        self.map().is_empty()
    }

    /// Total bytes stored.
    pub fn total_bytes(&self) -> u64 {
        self.map().values().map(|v| v.len() as u64).sum()
    }

    /// The stored CIDs, in order.
    pub fn cids(&self) -> Vec<Cid> {
        self.map().keys().copied().collect()
    }

    /// Flips a bit of a stored block, for tests of corruption handling. Returns whether the
    /// block was present (and not empty).
    pub fn corrupt_for_test(&self, cid: &Cid) -> bool {
        match self.map().get_mut(cid).and_then(|b| b.first_mut()) {
            Some(byte) => {
                *byte ^= 1;
                true
            }
            None => false,
        }
    }
}

impl BlockStore for MemoryStore {
    fn put(&self, cid: &Cid, bytes: &[u8]) -> Result<(), StoreError> {
        verify(cid, bytes)?;
        self.map().entry(*cid).or_insert_with(|| bytes.to_vec());
        Ok(())
    }

    fn put_verified(&self, block: &Verified) -> Result<(), StoreError> {
        self.map()
            .entry(*block.cid())
            .or_insert_with(|| block.bytes().to_vec());
        Ok(())
    }

    fn get(&self, cid: &Cid) -> Result<Option<Vec<u8>>, StoreError> {
        let mut map = self.map();
        let Some(bytes) = map.get(cid) else {
            return Ok(None);
        };
        if verify(cid, bytes).is_err() {
            map.remove(cid);
            return Err(StoreError::Corrupted { cid: *cid });
        }
        Ok(Some(bytes.clone()))
    }

    fn get_unverified(&self, cid: &Cid) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.map().get(cid).cloned())
    }

    fn contains(&self, cid: &Cid) -> Result<bool, StoreError> {
        Ok(self.map().contains_key(cid))
    }

    fn remove(&self, cid: &Cid) -> Result<(), StoreError> {
        self.map().remove(cid);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::{Codec, cid_of};

    #[test]
    fn put_get_contains_remove() {
        let s = MemoryStore::new();
        let c = cid_of(Codec::Raw, b"data");
        assert_eq!(s.get(&c).unwrap(), None);
        s.put(&c, b"data").unwrap();
        s.put(&c, b"data").unwrap();
        assert_eq!(s.len(), 1);
        assert_eq!(s.total_bytes(), 4);
        assert!(s.contains(&c).unwrap());
        assert_eq!(s.get(&c).unwrap().as_deref(), Some(&b"data"[..]));
        s.remove(&c).unwrap();
        s.remove(&c).unwrap();
        assert!(!s.contains(&c).unwrap());
        assert!(s.is_empty());
    }

    #[test]
    fn put_rejects_mismatch() {
        let s = MemoryStore::new();
        let c = cid_of(Codec::Raw, b"data");
        assert!(matches!(
            s.put(&c, b"other"),
            Err(StoreError::Verify(BlockError::Mismatch { .. }))
        ));
        assert!(s.is_empty());
    }

    #[test]
    fn corrupted_block_is_dropped_on_get() {
        let s = MemoryStore::new();
        let c = cid_of(Codec::Raw, b"data");
        s.put(&c, b"data").unwrap();
        assert!(s.corrupt_for_test(&c));
        let err = s.get(&c).unwrap_err();
        assert!(matches!(err, StoreError::Corrupted { cid } if cid == c));
        assert!(err.to_string().contains(&c.to_string()));
        assert!(!s.contains(&c).unwrap());
        assert!(!s.corrupt_for_test(&c));
    }
}
