//! What the store holds against `--store-quota`: each block's length and last use, which blocks
//! are pinned, and which to evict (least recently used first) so that a new block fits.
//!
//! Two sets are pinned: the blocks of the releases the node keeps (set by the daemon after
//! each install) and the blocks used since the current boot began (the release being fetched:
//! every block of its plan is looked up or stored during the boot). Everything else, blocks
//! of older releases and blocks no release references any more, may be evicted.

use std::collections::{BTreeMap, HashMap, HashSet};

use bootswarm_protocol::block::Cid;

/// Why a block cannot be stored: even with every unpinned block evicted it would not fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OverQuota {
    /// The quota.
    pub(crate) limit: u64,
    /// Bytes pinned now.
    pub(crate) pinned: u64,
}

/// One block's accounting.
#[derive(Debug, Clone, Copy)]
struct Entry {
    len: u64,
    /// The tick of its last use (its key in the LRU order).
    used: u64,
}

/// The store's accounting: sizes, use order, pins.
#[derive(Debug, Default)]
pub(crate) struct Usage {
    limit: Option<u64>,
    bytes: u64,
    tick: u64,
    blocks: HashMap<Cid, Entry>,
    /// Last-use tick -> block, oldest first.
    order: BTreeMap<u64, Cid>,
    /// Blocks of the releases kept.
    kept: HashSet<Cid>,
    /// Blocks used since the current boot began.
    booting: HashSet<Cid>,
    /// Bytes of the blocks held that are in `kept` or `booting`.
    pinned: u64,
    evicted: u64,
}

impl Usage {
    /// Accounting with an optional quota in bytes.
    pub(crate) fn new(limit: Option<u64>) -> Self {
        Usage {
            limit,
            ..Usage::default()
        }
    }

    /// The quota, if any.
    pub(crate) fn limit(&self) -> Option<u64> {
        self.limit
    }

    /// Bytes of the blocks held.
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Blocks evicted so far to make room.
    pub(crate) fn evicted(&self) -> u64 {
        self.evicted
    }

    fn pinned_at(&self, cid: &Cid) -> bool {
        self.kept.contains(cid) || self.booting.contains(cid)
    }

    /// Bytes of the blocks held that may not be evicted.
    pub(crate) fn pinned(&self) -> u64 {
        self.pinned
    }

    fn recount_pinned(&mut self) {
        self.pinned = self
            .blocks
            .iter()
            .filter(|(cid, _)| self.pinned_at(cid))
            .map(|(_, e)| e.len)
            .sum();
    }

    /// Marks a held block as used by the current boot.
    fn pin_booting(&mut self, cid: Cid, len: u64) {
        if !self.pinned_at(&cid) {
            self.pinned += len;
        }
        self.booting.insert(cid);
    }

    /// Records a block held (at open, or once stored) as used now; a block already known is
    /// only touched.
    pub(crate) fn insert(&mut self, cid: Cid, len: u64) {
        if self.blocks.contains_key(&cid) {
            self.touch(&cid, true);
            return;
        }
        self.tick += 1;
        self.blocks.insert(
            cid,
            Entry {
                len,
                used: self.tick,
            },
        );
        self.order.insert(self.tick, cid);
        self.bytes += len;
        self.pin_booting(cid, len);
    }

    /// Records a use of a held block (a read, a lookup); `by_boot`: the current boot uses it,
    /// so it is pinned.
    pub(crate) fn touch(&mut self, cid: &Cid, by_boot: bool) {
        let Some(entry) = self.blocks.get_mut(cid) else {
            return;
        };
        self.tick += 1;
        self.order.remove(&entry.used);
        entry.used = self.tick;
        let len = entry.len;
        self.order.insert(self.tick, *cid);
        if by_boot {
            self.pin_booting(*cid, len);
        }
    }

    /// Forgets a block removed from the store.
    pub(crate) fn remove(&mut self, cid: &Cid) {
        if let Some(entry) = self.blocks.remove(cid) {
            self.order.remove(&entry.used);
            self.bytes -= entry.len;
            if self.pinned_at(cid) {
                self.pinned -= entry.len;
            }
        }
        self.booting.remove(cid);
    }

    /// Makes room for a new block of `len` bytes: the blocks to evict (already forgotten
    /// here; the caller removes them), oldest use first, or why it cannot fit.
    pub(crate) fn make_room(&mut self, len: u64) -> Result<Vec<Cid>, OverQuota> {
        let Some(limit) = self.limit else {
            return Ok(Vec::new());
        };
        if self.bytes.saturating_add(len) <= limit {
            return Ok(Vec::new());
        }
        let mut victims = Vec::new();
        let mut freed = 0u64;
        for cid in self.order.values() {
            if self.bytes - freed + len <= limit {
                break;
            }
            if self.pinned_at(cid) {
                continue;
            }
            freed += self.blocks.get(cid).map_or(0, |e| e.len);
            victims.push(*cid);
        }
        if self.bytes - freed + len > limit {
            return Err(OverQuota {
                limit,
                pinned: self.pinned,
            });
        }
        for cid in &victims {
            self.remove(cid);
        }
        self.evicted += victims.len() as u64;
        Ok(victims)
    }

    /// Replaces the blocks pinned as the releases kept.
    pub(crate) fn pin_kept(&mut self, blocks: HashSet<Cid>) {
        self.kept = blocks;
        self.recount_pinned();
    }

    /// A boot begins: blocks used from now on are pinned as its release's, and those used
    /// by the boot before are not any more (unless kept).
    pub(crate) fn begin_boot(&mut self) {
        self.booting.clear();
        self.recount_pinned();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bootswarm_protocol::block::{Codec, cid_of};

    fn cid(n: u32) -> Cid {
        cid_of(Codec::Raw, &n.to_le_bytes())
    }

    fn store(usage: &mut Usage, n: u32, len: u64) -> Result<Vec<Cid>, OverQuota> {
        let victims = usage.make_room(len)?;
        usage.insert(cid(n), len);
        let counted = usage.pinned;
        usage.recount_pinned();
        assert_eq!(counted, usage.pinned, "pinned bytes kept up to date");
        Ok(victims)
    }

    #[test]
    fn without_a_quota_nothing_is_evicted() {
        let mut u = Usage::new(None);
        for n in 0..100 {
            assert_eq!(store(&mut u, n, 1 << 20), Ok(vec![]));
        }
        assert_eq!(u.bytes(), 100 << 20);
    }

    #[test]
    fn the_least_recently_used_unpinned_blocks_go_first() {
        let mut u = Usage::new(Some(400));
        for n in 0..4 {
            store(&mut u, n, 100).unwrap();
        }
        u.begin_boot();
        // Block 0 read again: now the most recently used.
        u.touch(&cid(0), true);
        // 1 and 2 are the oldest; one of them is enough for a 100-byte block.
        assert_eq!(store(&mut u, 4, 100), Ok(vec![cid(1)]));
        assert_eq!(store(&mut u, 5, 150), Ok(vec![cid(2), cid(3)]));
        assert_eq!(u.bytes(), 350);
        assert_eq!(u.evicted(), 3);
    }

    #[test]
    fn kept_and_booting_blocks_are_never_evicted() {
        let mut u = Usage::new(Some(300));
        for n in 0..3 {
            store(&mut u, n, 100).unwrap();
        }
        u.pin_kept(HashSet::from([cid(0)]));
        u.begin_boot();
        // 0 kept, 3 and 4 used by this boot: only 1 and 2 may go.
        assert_eq!(store(&mut u, 3, 100), Ok(vec![cid(1)]));
        assert_eq!(store(&mut u, 4, 100), Ok(vec![cid(2)]));
        assert_eq!(
            store(&mut u, 5, 100),
            Err(OverQuota {
                limit: 300,
                pinned: 300
            })
        );
        assert_eq!(u.bytes(), 300, "a refused block changes nothing");
    }

    #[test]
    fn a_refusal_evicts_nothing() {
        let mut u = Usage::new(Some(250));
        store(&mut u, 0, 100).unwrap();
        u.begin_boot();
        store(&mut u, 1, 100).unwrap();
        // 0 could go, but 200 bytes would still not fit beside the pinned 1.
        assert_eq!(
            store(&mut u, 2, 200),
            Err(OverQuota {
                limit: 250,
                pinned: 100
            })
        );
        assert_eq!(u.bytes(), 200);
        assert_eq!(u.evicted(), 0);
    }

    #[test]
    fn a_new_boot_releases_the_pins_of_the_one_before() {
        let mut u = Usage::new(Some(200));
        store(&mut u, 0, 100).unwrap();
        store(&mut u, 1, 100).unwrap();
        assert!(store(&mut u, 2, 100).is_err());
        u.begin_boot();
        u.touch(&cid(1), true);
        assert_eq!(store(&mut u, 2, 100), Ok(vec![cid(0)]));
        u.remove(&cid(1));
        assert_eq!(u.bytes(), 100);
        assert_eq!(u.pinned(), 100);
    }
}
