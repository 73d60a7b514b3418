//! The node's block store: one file per block, indexed by sled; verify on put, re-verify on get
//! (unless this process hashed the block within the last [`TRUSTED_FOR`]).
//!
//! Layout of the store directory:
//! - `index/`: a sled tree from each block's CID to its length. sled 0.34 keeps what it is
//!   given resident whatever its cache capacity (256 × 1 MiB values peak at ~450 MiB RSS), so
//!   it holds no block bytes.
//! - `blocks/<xx>/<cid>`: the block's bytes, `xx` being the first digest byte in hex.
//!
//! A block file is written atomically (temp, rename) before its index entry, so a crash in
//! between leaves an orphan file that is invisible and removed on the next open (or replaced
//! by the next put). It is not fsynced: the store is a cache, every block is verified against
//! its CID when stored and again when read, and a block that no longer verifies (or whose
//! file has gone, or was left empty by a power loss) is dropped, reported as
//! [`StoreError::Corrupted`] and fetched again. Syncing every block cost more than the
//! network on a farm booting at once; `flush` syncs the index when the node needs it durable.
//!
//! With a quota (`--store-quota`) the block bytes never exceed it: a block that would not fit
//! first evicts the least recently used blocks that are not pinned ([`quota`]), and is refused
//! with [`StoreError::Full`] when even that is not enough. The index and `state.json` are not
//! counted (a few MiB).
//!
//! A block this process has hashed (before storing it, or on a read) is read back without
//! hashing for [`TRUSTED_FOR`]: a node serves a block to peers moments after receiving it,
//! and those reads come from the page cache, where a re-hash finds nothing new but costs as
//! much CPU as the transfer. Rot on the disk is found on the first read after that window,
//! and peers verify every block they receive anyway. An install does not rely on that
//! window: it reads with [`BlockStore::get_unverified`] and hashes every byte it writes.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bootswarm_protocol::block::{self, BlockError, Cid, MAX_BLOCK_SIZE, Verified};
use bootswarm_protocol::store::{BlockStore, NoRoom, StoreError};

use crate::error::{Error, Result};
use crate::fsutil;

mod quota;

use quota::Usage;

/// sled's cache for the index (CID -> length only), kept small: many nodes share one machine.
const CACHE_CAPACITY: u64 = 4 * 1024 * 1024;
/// The index's directory inside the store directory.
const INDEX_DIR: &str = "index";
/// The block files' directory inside the store directory.
const BLOCKS_DIR: &str = "blocks";
/// How long after this process hashed a block its reads skip the hash.
pub const TRUSTED_FOR: Duration = Duration::from_secs(600);

/// The node's [`BlockStore`]: block files under `blocks/`, a sled index under `index/`.
#[derive(Debug, Clone)]
pub struct SledStore {
    index: sled::Db,
    blocks: PathBuf,
    /// Blocks this process hashed, and when; only blocks in the index (at most one entry each).
    hashed: Arc<Mutex<HashMap<Cid, Instant>>>,
    /// [`TRUSTED_FOR`] (shorter in tests).
    trusted_for: Duration,
    /// Sizes, use order and pins, against the quota.
    usage: Arc<Mutex<Usage>>,
}

/// How full the store is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreUsage {
    /// Bytes of the blocks held.
    pub bytes: u64,
    /// The quota, if any.
    pub limit: Option<u64>,
    /// Bytes that may not be evicted (the releases kept and the one being fetched).
    pub pinned: u64,
    /// Blocks evicted to make room since the store was opened.
    pub evicted: u64,
}

fn backend(e: sled::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

fn io_backend(what: &str, path: &Path, e: &io::Error) -> StoreError {
    StoreError::Backend(format!("cannot {what} {} ({e})", path.display()))
}

impl SledStore {
    /// Opens (or creates) the store in `dir`, removing block files the index does not know
    /// (an interrupted put) and index entries whose file is missing or has the wrong size.
    pub fn open(dir: &Path) -> Result<SledStore> {
        SledStore::open_with_quota(dir, None)
    }

    /// Opens the store with a quota on its block bytes (see the module's notes). A store
    /// already over it stays as it is until blocks are stored.
    pub fn open_with_quota(dir: &Path, quota: Option<u64>) -> Result<SledStore> {
        let fail = |e: &dyn std::fmt::Display| {
            Error::new(format!(
                "cannot open the block store at {} ({e}); check the path and its permissions, \
                 make sure no other bootswarm process uses it, or delete it to start with an empty cache",
                dir.display()
            ))
        };
        fs::create_dir_all(dir).map_err(|e| fail(&e))?;
        let blocks = dir.join(BLOCKS_DIR);
        fs::create_dir_all(&blocks).map_err(|e| fail(&e))?;
        let index = sled::Config::new()
            .path(dir.join(INDEX_DIR))
            .cache_capacity(CACHE_CAPACITY)
            .open()
            .map_err(|e| fail(&e))?;
        let store = SledStore {
            index,
            blocks,
            hashed: Arc::default(),
            trusted_for: TRUSTED_FOR,
            usage: Arc::new(Mutex::new(Usage::new(quota))),
        };
        store.reconcile().map_err(|e| fail(&e))?;
        store.account();
        Ok(store)
    }

    /// Loads every block's length into the accounting, none pinned.
    fn account(&self) {
        let mut usage = self.usage();
        for (key, value) in self.index.iter().flatten() {
            if let (Ok(cid), Some(len)) = (Cid::try_from(key.as_ref()), stored_len(&value)) {
                usage.insert(cid, len);
            }
        }
        usage.begin_boot();
        if let Some(limit) = usage.limit().filter(|l| usage.bytes() > *l) {
            tracing::warn!(
                held = usage.bytes(),
                limit,
                "the block store holds more than its quota; blocks not pinned are evicted as new ones arrive"
            );
        }
    }

    fn usage(&self) -> std::sync::MutexGuard<'_, Usage> {
        // Every method leaves the accounting consistent before it can panic.
        self.usage.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// How full the store is.
    pub fn usage_now(&self) -> StoreUsage {
        let usage = self.usage();
        StoreUsage {
            bytes: usage.bytes(),
            limit: usage.limit(),
            pinned: usage.pinned(),
            evicted: usage.evicted(),
        }
    }

    /// Pins the blocks of the releases the node keeps (replacing the set pinned before).
    pub fn pin_kept(&self, blocks: HashSet<Cid>) {
        self.usage().pin_kept(blocks);
    }

    /// A boot begins: the blocks it uses are pinned from now on, and those the boot before
    /// used are not any more (unless kept).
    pub fn begin_boot(&self) {
        self.usage().begin_boot();
    }

    /// Number of blocks stored.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Whether the store holds no block.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Writes the index to disk (block files are durable as soon as they are put).
    pub fn flush(&self) -> Result<()> {
        self.index.flush().map(|_| ()).map_err(|e| {
            Error::new(format!(
                "cannot flush the block store to disk ({e}); check free space on the store's disk"
            ))
        })
    }

    /// Every block the index lists (entries that do not parse as a CID are skipped).
    pub fn cids(&self) -> Vec<Cid> {
        self.index
            .iter()
            .keys()
            .filter_map(|k| k.ok().and_then(|k| Cid::try_from(k.as_ref()).ok()))
            .collect()
    }

    /// The file that holds (or would hold) the block `cid`; for tools and tests.
    pub fn block_path(&self, cid: &Cid) -> PathBuf {
        let first = cid.hash().digest().first().copied().unwrap_or(0);
        self.blocks
            .join(format!("{first:02x}"))
            .join(cid.to_string())
    }

    /// Drops index entries without a matching file, then files without an index entry.
    fn reconcile(&self) -> io::Result<()> {
        let mut dropped = 0usize;
        for item in self.index.iter() {
            let (key, value) = item.map_err(io::Error::other)?;
            let Ok(cid) = Cid::try_from(key.as_ref()) else {
                self.index.remove(&key).map_err(io::Error::other)?;
                dropped += 1;
                continue;
            };
            let want = stored_len(&value);
            let have = fs::metadata(self.block_path(&cid)).ok().map(|m| m.len());
            if want.is_none() || have != want {
                self.index.remove(&key).map_err(io::Error::other)?;
                dropped += 1;
            }
        }
        let mut removed = 0usize;
        for bucket in fs::read_dir(&self.blocks)? {
            let bucket = bucket?;
            if !bucket.file_type()?.is_dir() {
                continue;
            }
            for file in fs::read_dir(bucket.path())? {
                let file = file?;
                let path = file.path();
                let name = file.file_name();
                let known = name
                    .to_str()
                    .and_then(|n| block::parse_cid(n).ok())
                    .filter(|cid| self.block_path(cid) == path)
                    .map(|cid| self.index.contains_key(cid.to_bytes()))
                    .transpose()
                    .map_err(io::Error::other)?
                    .unwrap_or(false);
                if !known && file.file_type()?.is_file() {
                    fs::remove_file(&path)?;
                    removed += 1;
                }
            }
        }
        if dropped + removed > 0 {
            tracing::info!(
                dropped,
                removed,
                "block store: dropped index entries without a good file, removed orphan files"
            );
        }
        Ok(())
    }

    /// Writes a block file atomically (not durably), replacing any orphan at its path.
    fn write_block(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        let bucket = fsutil::parent_dir(path);
        match fs::create_dir(bucket) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        fsutil::write_replace(path, bytes, Some(0o644))
    }

    fn hashed(&self) -> std::sync::MutexGuard<'_, HashMap<Cid, Instant>> {
        // Each use is a single map call, so the map is consistent after any panic.
        self.hashed.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn mark_hashed(&self, cid: &Cid) {
        self.hashed().insert(*cid, Instant::now());
    }

    fn recently_hashed(&self, cid: &Cid) -> bool {
        self.hashed()
            .get(cid)
            .is_some_and(|t| t.elapsed() < self.trusted_for)
    }

    /// Stores bytes already checked against `cid`, within the quota.
    fn store_checked(&self, cid: &Cid, bytes: &[u8]) -> std::result::Result<(), StoreError> {
        let key = cid.to_bytes();
        if self.index.contains_key(&key).map_err(backend)? {
            self.usage().touch(cid, true);
            return Ok(());
        }
        let len = u32::try_from(bytes.len()).map_err(|_| {
            StoreError::Backend(format!("block {cid} is too large for the store's index"))
        })?;
        self.admit(cid, u64::from(len))?;
        let path = self.block_path(cid);
        let written = self
            .write_block(&path, bytes)
            .map_err(|e| io_backend("write the block file", &path, &e))
            .and_then(|()| {
                self.index
                    .insert(key, &len.to_le_bytes()[..])
                    .map(|_| ())
                    .map_err(backend)
            });
        if let Err(e) = written {
            self.usage().remove(cid);
            return Err(e);
        }
        self.mark_hashed(cid);
        Ok(())
    }

    /// Counts a new block against the quota, evicting what must go first: under the lock, so
    /// the files on disk never add up to more than the quota.
    fn admit(&self, cid: &Cid, len: u64) -> std::result::Result<(), StoreError> {
        let mut usage = self.usage();
        let victims = usage.make_room(len).map_err(|full| {
            StoreError::Full(Box::new(NoRoom {
                cid: *cid,
                len,
                limit: full.limit,
                pinned: full.pinned,
            }))
        })?;
        usage.insert(*cid, len);
        for victim in &victims {
            if let Err(e) = self.discard(victim) {
                tracing::warn!(cid = %victim, "cannot evict a block: {e}");
            }
        }
        if !victims.is_empty() {
            tracing::debug!(
                evicted = victims.len(),
                "blocks evicted to stay within the quota"
            );
        }
        Ok(())
    }

    /// Removes a block's index entry, then its file (the accounting is the caller's).
    fn discard(&self, cid: &Cid) -> std::result::Result<(), StoreError> {
        // Index first: a crash in between leaves an orphan file, removed on the next open.
        self.index.remove(cid.to_bytes()).map_err(backend)?;
        self.hashed().remove(cid);
        let path = self.block_path(cid);
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_backend("remove the block file", &path, &e)),
        }
    }

    /// A block read for `by`, verified (unless hashed here lately).
    fn read(&self, cid: &Cid, by: Use) -> std::result::Result<Option<Vec<u8>>, StoreError> {
        let Some(bytes) = self.read_raw(cid, by)? else {
            return Ok(None);
        };
        if self.recently_hashed(cid) {
            return Ok(Some(bytes));
        }
        match block::verify(cid, &bytes) {
            Ok(()) => {
                self.mark_hashed(cid);
                Ok(Some(bytes))
            }
            Err(e @ BlockError::Cid { .. }) => Err(e.into()),
            Err(_) => Err(self.drop_corrupted(cid, "its bytes no longer match its CID")),
        }
    }

    /// A block for a peer's request: verified like [`BlockStore::get`], but what a peer asks
    /// for is not pinned as the boot's (a peer could otherwise pin old blocks and have a
    /// release refused for want of room).
    pub fn get_for_peer(&self, cid: &Cid) -> std::result::Result<Option<Vec<u8>>, StoreError> {
        self.read(cid, Use::Peer)
    }

    /// A block's bytes as stored, its use recorded for `by`.
    fn read_raw(&self, cid: &Cid, by: Use) -> std::result::Result<Option<Vec<u8>>, StoreError> {
        if self.index.get(cid.to_bytes()).map_err(backend)?.is_none() {
            return Ok(None);
        }
        self.usage().touch(cid, by == Use::Boot);
        let path = self.block_path(cid);
        match fsutil::read_capped(&path, MAX_BLOCK_SIZE) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                Err(self.drop_corrupted(cid, "its file is missing"))
            }
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                Err(self.drop_corrupted(cid, "its file is too large"))
            }
            Err(e) => Err(io_backend("read the block file", &path, &e)),
        }
    }

    /// Removes a block that no longer verifies and returns the error to report.
    fn drop_corrupted(&self, cid: &Cid, why: &str) -> StoreError {
        tracing::warn!(%cid, why, "stored block failed verification; dropping it");
        match self.remove(cid) {
            Ok(()) => StoreError::Corrupted { cid: *cid },
            Err(e) => e,
        }
    }
}

/// Who reads a block: the node itself (its boot, its install), or a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Use {
    Boot,
    Peer,
}

/// The length recorded in an index entry.
fn stored_len(value: &[u8]) -> Option<u64> {
    let b: [u8; 4] = value.try_into().ok()?;
    Some(u64::from(u32::from_le_bytes(b)))
}

impl BlockStore for SledStore {
    fn put(&self, cid: &Cid, bytes: &[u8]) -> std::result::Result<(), StoreError> {
        block::verify(cid, bytes)?;
        self.store_checked(cid, bytes)
    }

    fn put_verified(&self, block: &Verified) -> std::result::Result<(), StoreError> {
        self.store_checked(block.cid(), block.bytes())
    }

    fn get(&self, cid: &Cid) -> std::result::Result<Option<Vec<u8>>, StoreError> {
        self.read(cid, Use::Boot)
    }

    fn get_unverified(&self, cid: &Cid) -> std::result::Result<Option<Vec<u8>>, StoreError> {
        self.read_raw(cid, Use::Boot)
    }

    fn contains(&self, cid: &Cid) -> std::result::Result<bool, StoreError> {
        self.index.contains_key(cid.to_bytes()).map_err(backend)
    }

    fn remove(&self, cid: &Cid) -> std::result::Result<(), StoreError> {
        self.usage().remove(cid);
        self.discard(cid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bootswarm_protocol::block::{Codec, cid_of};

    fn big(seed: u8) -> Vec<u8> {
        (0..1024 * 1024u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8 ^ seed)
            .collect()
    }

    /// A store that hashes every read, as after [`TRUSTED_FOR`].
    fn untrusting(dir: &Path) -> SledStore {
        let mut store = SledStore::open(dir).unwrap();
        store.trusted_for = Duration::ZERO;
        store
    }

    #[test]
    fn rot_shows_on_the_first_read_after_the_trust_window_or_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let cid = cid_of(Codec::Raw, b"hello");
        let store = SledStore::open(dir.path()).unwrap();
        store
            .put_verified(&Verified::check(cid, b"hello".to_vec()).unwrap())
            .unwrap();
        fs::write(store.block_path(&cid), b"jello").unwrap();
        // Hashed moments ago: read without hashing (a real read would hit the page cache).
        assert_eq!(store.get(&cid).unwrap().as_deref(), Some(&b"jello"[..]));
        drop(store);
        let store = SledStore::open(dir.path()).unwrap();
        assert!(matches!(
            store.get(&cid),
            Err(StoreError::Corrupted { cid: c }) if c == cid
        ));
    }

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
        assert!(!store.block_path(&cid).exists());
        store.remove(&cid).unwrap();
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
        assert!(!store.block_path(&cid).exists());
    }

    #[test]
    fn corrupted_entry_is_dropped_and_reported() {
        let dir = tempfile::tempdir().unwrap();
        let store = untrusting(dir.path());
        let cid = cid_of(Codec::Raw, b"hello");
        store.put(&cid, b"hello").unwrap();
        fs::write(store.block_path(&cid), b"jello").unwrap();
        assert!(matches!(
            store.get(&cid),
            Err(StoreError::Corrupted { cid: c }) if c == cid
        ));
        assert!(!store.contains(&cid).unwrap(), "corrupted entry removed");
        assert_eq!(store.get(&cid).unwrap(), None);
    }

    #[test]
    fn corrupted_chunk_file_is_dropped_and_reported() {
        let dir = tempfile::tempdir().unwrap();
        let store = untrusting(dir.path());
        let (a, b) = (big(1), big(2));
        let (ca, cb) = (cid_of(Codec::Raw, &a), cid_of(Codec::Raw, &b));
        store.put(&ca, &a).unwrap();
        store.put(&cb, &b).unwrap();
        let path = store.block_path(&ca);
        let mut bytes = fs::read(&path).unwrap();
        bytes[512 * 1024] ^= 0x40;
        fs::write(&path, &bytes).unwrap();

        let err = store.get(&ca).unwrap_err();
        assert!(matches!(err, StoreError::Corrupted { cid } if cid == ca));
        assert!(err.to_string().contains(&ca.to_string()), "{err}");
        assert!(!store.contains(&ca).unwrap());
        assert!(!path.exists(), "the corrupted file is removed");
        assert_eq!(store.get(&cb).unwrap().as_deref(), Some(&b[..]));
        // It can be stored again.
        store.put(&ca, &a).unwrap();
        assert_eq!(store.get(&ca).unwrap().as_deref(), Some(&a[..]));
    }

    #[test]
    fn missing_or_oversized_chunk_file_is_reported_as_corrupted() {
        let dir = tempfile::tempdir().unwrap();
        let store = untrusting(dir.path());
        let a = big(3);
        let ca = cid_of(Codec::Raw, &a);
        store.put(&ca, &a).unwrap();
        fs::remove_file(store.block_path(&ca)).unwrap();
        assert!(matches!(store.get(&ca), Err(StoreError::Corrupted { .. })));
        assert!(!store.contains(&ca).unwrap());

        store.put(&ca, &a).unwrap();
        fs::write(store.block_path(&ca), vec![0u8; MAX_BLOCK_SIZE + 1]).unwrap();
        assert!(matches!(store.get(&ca), Err(StoreError::Corrupted { .. })));
        assert!(!store.contains(&ca).unwrap());
    }

    #[test]
    fn crash_between_file_and_index_leaves_no_visible_block() {
        let dir = tempfile::tempdir().unwrap();
        let a = big(4);
        let ca = cid_of(Codec::Raw, &a);
        let (orphan, temp) = {
            let store = SledStore::open(dir.path()).unwrap();
            // The file was written but the index entry never was (or the file is half
            // written under a temp name).
            let orphan = store.block_path(&ca);
            fs::create_dir_all(orphan.parent().unwrap()).unwrap();
            fs::write(&orphan, &a[..1000]).unwrap();
            let temp = fsutil::temp_path_for(&orphan);
            fs::write(&temp, &a[..10]).unwrap();
            assert!(!store.contains(&ca).unwrap());
            assert_eq!(store.get(&ca).unwrap(), None);
            // A put replaces the orphan.
            let other = big(5);
            let co = cid_of(Codec::Raw, &other);
            fs::create_dir_all(store.block_path(&co).parent().unwrap()).unwrap();
            fs::write(store.block_path(&co), b"half").unwrap();
            store.put(&co, &other).unwrap();
            assert_eq!(store.get(&co).unwrap().as_deref(), Some(&other[..]));
            store.flush().unwrap();
            (orphan, temp)
        };
        let store = SledStore::open(dir.path()).unwrap();
        assert!(!orphan.exists(), "orphan file removed on open");
        assert!(!temp.exists(), "temp file removed on open");
        assert_eq!(store.len(), 1);
        assert_eq!(store.get(&ca).unwrap(), None);
    }

    #[test]
    fn index_entry_without_its_file_is_dropped_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let a = big(6);
        let ca = cid_of(Codec::Raw, &a);
        {
            let store = SledStore::open(dir.path()).unwrap();
            store.put(&ca, &a).unwrap();
            store.flush().unwrap();
            fs::remove_file(store.block_path(&ca)).unwrap();
        }
        let store = SledStore::open(dir.path()).unwrap();
        assert!(!store.contains(&ca).unwrap());
        assert!(store.is_empty());
    }

    fn bytes_on_disk(store: &SledStore) -> u64 {
        fs::read_dir(&store.blocks)
            .unwrap()
            .flat_map(|b| fs::read_dir(b.unwrap().path()).unwrap())
            .map(|f| f.unwrap().metadata().unwrap().len())
            .sum()
    }

    #[test]
    fn a_quota_evicts_unpinned_blocks_and_refuses_what_cannot_fit() {
        let dir = tempfile::tempdir().unwrap();
        let blocks: Vec<Vec<u8>> = (10..16).map(big).collect();
        let cids: Vec<Cid> = blocks.iter().map(|b| cid_of(Codec::Raw, b)).collect();
        let store = SledStore::open_with_quota(dir.path(), Some(3 << 20)).unwrap();
        for (c, b) in cids.iter().zip(&blocks).take(3) {
            store.put(c, b).unwrap();
        }
        // A new boot: block 0 is kept, block 2 is read by it; block 1 is the one free to go.
        store.pin_kept(HashSet::from([cids[0]]));
        store.begin_boot();
        store.get(&cids[2]).unwrap();
        store.put(&cids[3], &blocks[3]).unwrap();
        assert!(
            !store.contains(&cids[1]).unwrap(),
            "the unpinned block went"
        );
        assert!(!store.block_path(&cids[1]).exists());
        assert!(bytes_on_disk(&store) <= 3 << 20);
        let err = store.put(&cids[4], &blocks[4]).unwrap_err();
        assert!(
            matches!(&err, StoreError::Full(f) if f.cid == cids[4]),
            "{err}"
        );
        assert!(err.to_string().contains(&cids[4].to_string()), "{err}");
        assert!(!store.block_path(&cids[4]).exists());
        assert_eq!(
            store.usage_now(),
            StoreUsage {
                bytes: 3 << 20,
                limit: Some(3 << 20),
                pinned: 3 << 20,
                evicted: 1,
            }
        );
        // Reopened, the accounting is rebuilt from the index and nothing is pinned.
        drop(store);
        let store = SledStore::open_with_quota(dir.path(), Some(3 << 20)).unwrap();
        assert_eq!(store.usage_now().bytes, 3 << 20);
        store.put(&cids[5], &blocks[5]).unwrap();
        assert_eq!(store.len(), 3);
        assert!(bytes_on_disk(&store) <= 3 << 20);
    }

    #[test]
    fn what_a_peer_reads_is_not_pinned_as_the_boot_s() {
        let dir = tempfile::tempdir().unwrap();
        let blocks: Vec<Vec<u8>> = (20..23).map(big).collect();
        let cids: Vec<Cid> = blocks.iter().map(|b| cid_of(Codec::Raw, b)).collect();
        let store = SledStore::open_with_quota(dir.path(), Some(2 << 20)).unwrap();
        store.put(&cids[0], &blocks[0]).unwrap();
        store.put(&cids[1], &blocks[1]).unwrap();
        store.begin_boot();
        // A peer asks for block 0 during the boot; the boot itself reads block 1.
        assert!(store.get_for_peer(&cids[0]).unwrap().is_some());
        store.get(&cids[1]).unwrap();
        assert_eq!(store.usage_now().pinned, 1 << 20);
        store.put(&cids[2], &blocks[2]).unwrap();
        assert!(
            !store.contains(&cids[0]).unwrap(),
            "the peer's block made room"
        );
        assert!(store.contains(&cids[1]).unwrap());
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
