//! The block plan of one release: every block a node needs, in an order all nodes agree on.
//!
//! Index 0 is the root flist. Manifests are discovered level by level (the root's children,
//! then theirs), each level in its parents' order (the release's [`Walk`], each flist once),
//! and each level's chunks are appended after it, deduplicated by CID. Because the order depends only on the manifests, block indices
//! mean the same thing on every node, which keeps HAVE messages and bitfields small.

use std::collections::{BTreeMap, btree_map};

use super::bitfield::{Bitfield, MAX_BLOCKS};
use crate::block::{self, Cid};
use crate::manifest::{ChunkRef, Flist, MAX_MANIFEST_SIZE, stored_cap};
use crate::walk::{Walk, WalkError};

/// Where a block stands on this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    /// Waiting for the store to say whether it holds the block.
    Lookup,
    /// Not held (requests may be in flight).
    Missing,
    /// Held and verified.
    Held,
}

/// One block of the plan.
#[derive(Debug, Clone)]
pub(crate) struct Block {
    pub(crate) cid: Cid,
    /// The exact length for chunks; the cap for manifests and rfs blocks until held, then
    /// their length.
    pub(crate) len: u32,
    /// `len` is a cap: a manifest, or an rfs block (whose flist gives its plaintext length).
    pub(crate) capped: bool,
    /// The chunk length the flists give (the plaintext length of an rfs block); 0 for
    /// manifests.
    pub(crate) listed: u32,
    pub(crate) manifest: bool,
    /// Boot priority: 0 for manifests, then 1 + the package's position in the root.
    pub(crate) tier: u32,
    /// Rendezvous key from the CID's digest.
    pub(crate) key: u64,
    pub(crate) state: State,
}

impl Block {
    /// Whether a payload of `len` bytes may be this block: its exact length, or within its
    /// cap.
    pub(crate) fn fits(&self, len: usize) -> bool {
        if self.capped {
            len <= self.len as usize
        } else {
            len == self.len as usize
        }
    }
}

/// Why a plan cannot be built from the manifests.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// A manifest verified against its CID but is not a valid flist.
    #[error(
        "flist {cid} is signed into the release but is not a valid flist ({reason}); republish the release"
    )]
    BadManifest {
        /// The manifest's CID.
        cid: Cid,
        /// What is wrong.
        reason: String,
    },
    /// Two manifests give one chunk different lengths.
    #[error("chunk {cid} is listed with two different lengths; republish the release")]
    InconsistentChunk {
        /// The chunk's CID.
        cid: Cid,
    },
    /// The release has more blocks than a plan may hold.
    #[error("the release has more than {MAX_BLOCKS} blocks, which bootswarm does not support")]
    TooManyBlocks,
    /// The flist tree is too deep, too wide or names a child badly.
    #[error(transparent)]
    Tree(#[from] WalkError),
}

#[derive(Debug)]
pub(crate) struct Plan {
    pub(crate) root: Cid,
    pub(crate) tag: u64,
    pub(crate) blocks: Vec<Block>,
    /// The blocks by [`index_key`] of their CID (a CID is ~100 bytes; each node of a large
    /// farm's simulation keeps one plan).
    by_key: BTreeMap<u64, u32>,
    /// The blocks whose key another block took first, by CID: flists may list made-up
    /// digests that share one, and a lookup stays O(log n) whatever they list.
    by_cid: BTreeMap<Cid, u32>,
    /// The flist tree, read as manifests arrive.
    walk: Walk,
    /// The tier each manifest's entries get, by block index.
    entry_tiers: BTreeMap<u32, u32>,
    /// Every manifest is known and every chunk is in `blocks`.
    pub(crate) complete: bool,
    /// Blocks in boot-priority order.
    pub(crate) order: Vec<u32>,
    pub(crate) held: Bitfield,
    pub(crate) held_count: u32,
    /// Blocks still waiting for the store's answer.
    pub(crate) lookups: u32,
    /// Blocks the store did not have: what this boot must fetch.
    pub(crate) to_fetch: u32,
    /// Their bytes (caps for manifests).
    pub(crate) to_fetch_bytes: u64,
    pub(crate) held_bytes: u64,
}

/// A short identifier of a release for control messages: the first 8 bytes of the root's digest.
pub fn release_tag(root: &Cid) -> u64 {
    le_u64(&block::digest(root).unwrap_or([0; 32])[..8])
}

/// Up to the first 8 of `bytes` as a little-endian word (zero-padded).
fn le_u64(bytes: &[u8]) -> u64 {
    let mut word = [0; 8];
    let n = bytes.len().min(8);
    word[..n].copy_from_slice(&bytes[..n]);
    u64::from_le_bytes(word)
}

/// Eight bytes of a CID's digest, whatever its length (see `Plan::by_cid` for CIDs that
/// share them).
fn index_key(cid: &Cid) -> u64 {
    le_u64(cid.hash().digest())
}

pub(super) fn block_key(cid: &Cid) -> u64 {
    le_u64(&block::digest(cid).unwrap_or([0; 32])[8..16])
}

impl Plan {
    pub(crate) fn new(root: Cid) -> Self {
        let mut plan = Plan {
            root,
            tag: release_tag(&root),
            blocks: Vec::new(),
            by_key: BTreeMap::new(),
            by_cid: BTreeMap::new(),
            walk: Walk::distinct(root),
            entry_tiers: BTreeMap::from([(0, 1)]),
            complete: false,
            order: Vec::new(),
            held: Bitfield::new(),
            held_count: 0,
            lookups: 0,
            to_fetch: 0,
            to_fetch_bytes: 0,
            held_bytes: 0,
        };
        plan.push_manifest(root, 0);
        plan.order.push(0);
        plan
    }

    pub(crate) fn index(&self, cid: &Cid) -> Option<u32> {
        match self.by_key.get(&index_key(cid)) {
            Some(&idx) if self.blocks[idx as usize].cid == *cid => Some(idx),
            Some(_) => self.by_cid.get(cid).copied(),
            None => None,
        }
    }

    pub(crate) fn is_booted(&self) -> bool {
        self.complete && self.held_count as usize == self.blocks.len()
    }

    pub(crate) fn total_bytes(&self) -> u64 {
        self.blocks.iter().map(|b| u64::from(b.len)).sum()
    }

    fn push_manifest(&mut self, cid: Cid, tier: u32) -> u32 {
        self.push(cid, MAX_MANIFEST_SIZE as u32, true, None, tier)
    }

    /// A chunk: its exact length, or the stored cap of an rfs block (one with a key).
    fn push_chunk(&mut self, chunk: &ChunkRef, tier: u32) -> u32 {
        match chunk.key {
            Some(_) => self.push(
                chunk.cid,
                stored_cap(chunk.len),
                true,
                Some(chunk.len),
                tier,
            ),
            None => self.push(chunk.cid, chunk.len, false, Some(chunk.len), tier),
        }
    }

    /// `listed`: the chunk length the flists give; `None` for a manifest.
    fn push(&mut self, cid: Cid, len: u32, capped: bool, listed: Option<u32>, tier: u32) -> u32 {
        let idx = self.blocks.len() as u32;
        self.blocks.push(Block {
            cid,
            len,
            capped,
            listed: listed.unwrap_or(0),
            manifest: listed.is_none(),
            tier,
            key: block_key(&cid),
            state: State::Lookup,
        });
        self.lookups += 1;
        if let btree_map::Entry::Vacant(e) = self.by_key.entry(index_key(&cid)) {
            e.insert(idx);
        } else {
            self.by_cid.insert(cid, idx);
        }
        idx
    }

    /// Marks a block held; returns false if it already was.
    pub(crate) fn mark_held(&mut self, idx: u32, len: u64) -> bool {
        let b = &mut self.blocks[idx as usize];
        if b.state == State::Held {
            return false;
        }
        b.state = State::Held;
        if b.capped {
            b.len = len as u32;
        }
        self.held.set(idx);
        self.held_count += 1;
        self.held_bytes += len;
        true
    }

    /// Records a verified manifest. Returns the indices of the blocks it added to the plan
    /// (the next level's manifests and this level's chunks), in plan order.
    pub(crate) fn add_manifest(&mut self, idx: u32, bytes: &[u8]) -> Result<Vec<u32>, PlanError> {
        let cid = self.blocks[idx as usize].cid;
        let flist = Flist::decode(bytes).map_err(|e| PlanError::BadManifest {
            cid,
            reason: e.to_string(),
        })?;
        if !self.walk.add(cid, flist) || !self.walk.level_complete() {
            return Ok(Vec::new());
        }
        let level = self.walk.advance()?;
        let first_new = self.blocks.len() as u32;
        for placed in &level {
            let Some(m) = self.index(&placed.cid) else {
                continue;
            };
            let tier = self.entry_tiers.get(&m).copied().unwrap_or(1);
            for (pos, child) in placed.flist.children.iter().enumerate() {
                if self.index(&child.cid).is_some() {
                    continue;
                }
                let child_tier = if m == 0 { 1 + pos as u32 } else { tier };
                let c = self.push_manifest(child.cid, 0);
                self.entry_tiers.insert(c, child_tier);
            }
            for entry in &placed.flist.entries {
                for chunk in &entry.chunks {
                    match self.index(&chunk.cid) {
                        Some(existing) => {
                            if self.blocks[existing as usize].listed != chunk.len {
                                return Err(PlanError::InconsistentChunk { cid: chunk.cid });
                            }
                        }
                        None => {
                            self.push_chunk(chunk, tier);
                        }
                    }
                }
            }
            if self.blocks.len() > MAX_BLOCKS as usize {
                return Err(PlanError::TooManyBlocks);
            }
        }
        self.complete = self.walk.is_done();
        if self.complete {
            self.blocks.shrink_to_fit();
        }
        self.order = (0..self.blocks.len() as u32).collect();
        let blocks = &self.blocks;
        self.order.sort_by_key(|&i| (blocks[i as usize].tier, i));
        Ok((first_new..self.blocks.len() as u32).collect())
    }
}

/// A complete plan for tests: the root flist (index 0, held) and `chunks` missing chunks of
/// 4 bytes (indices 1..), all of tier 1.
#[cfg(test)]
pub(crate) fn test_plan(chunks: u32) -> Plan {
    use crate::block::{Codec, cid_of};
    use crate::manifest::{ChunkRef, Entry, EntryKind};
    let refs: Vec<ChunkRef> = (0..chunks)
        .map(|c| ChunkRef {
            cid: cid_of(Codec::Raw, &c.to_le_bytes()),
            len: 4,
            key: None,
        })
        .collect();
    let flist = Flist {
        name: "test".into(),
        version: "1".into(),
        entries: vec![Entry {
            path: "f".into(),
            kind: EntryKind::File,
            mode: 0o644,
            size: 4 * u64::from(chunks),
            chunks: refs,
            target: None,
        }],
        children: vec![],
        routes: Vec::new(),
    };
    let (root, bytes) = flist.to_block().expect("a small flist encodes");
    let mut plan = Plan::new(root);
    plan.mark_held(0, bytes.len() as u64);
    plan.add_manifest(0, &bytes).expect("the flist is valid");
    for b in &mut plan.blocks {
        if b.state == State::Lookup {
            b.state = State::Missing;
        }
    }
    plan.lookups = 0;
    plan
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::agent::{Agent, AgentConfig, Event, HubMode, Input, Output, Time};
    use crate::block::{blake2b_256, rfs_block_cid};
    use crate::manifest::{BlockKey, Entry, EntryKind};

    /// An rfs block of `plain` plaintext bytes whose stored form is `stored` bytes long.
    fn rfs_chunk(seed: u8, plain: u32, stored: usize) -> (ChunkRef, Vec<u8>) {
        let bytes = vec![seed; stored];
        let chunk = ChunkRef {
            cid: rfs_block_cid(blake2b_256(&bytes)),
            len: plain,
            key: Some(BlockKey([seed; 32])),
        };
        (chunk, bytes)
    }

    fn flist(chunks: Vec<ChunkRef>) -> Flist {
        Flist {
            name: "rfs".into(),
            version: String::new(),
            entries: vec![Entry {
                path: "f".into(),
                kind: EntryKind::File,
                mode: 0o644,
                size: chunks.iter().map(|c| u64::from(c.len)).sum(),
                chunks,
                target: None,
            }],
            children: vec![],
            routes: vec![],
        }
    }

    #[test]
    fn an_rfs_block_is_planned_at_its_stored_cap_and_held_at_its_length() {
        let (a, a_bytes) = rfs_chunk(1, 1000, 700);
        let (root, bytes) = flist(vec![a]).to_block().unwrap();
        let mut plan = Plan::new(root);
        plan.mark_held(0, bytes.len() as u64);
        plan.add_manifest(0, &bytes).unwrap();
        let b = &plan.blocks[1];
        assert_eq!(
            (b.len, b.listed, b.capped, b.manifest),
            (stored_cap(1000), 1000, true, false)
        );
        plan.mark_held(1, a_bytes.len() as u64);
        assert_eq!(plan.blocks[1].len, 700);
        assert_eq!(plan.total_bytes(), bytes.len() as u64 + 700);
    }

    #[test]
    fn chunks_whose_digests_share_the_index_key_are_told_apart() {
        let digest = |tail: u8| {
            let mut d = [7; 32];
            d[8..].fill(tail);
            d
        };
        let chunk = |tail, len| ChunkRef {
            cid: crate::block::sha256_cid(crate::block::Codec::Raw, digest(tail)),
            len,
            key: None,
        };
        let (a, b) = (chunk(1, 10), chunk(2, 20));
        assert_eq!(index_key(&a.cid), index_key(&b.cid));
        let (root, bytes) = flist(vec![a, b, a]).to_block().unwrap();
        let mut plan = Plan::new(root);
        plan.mark_held(0, bytes.len() as u64);
        assert_eq!(plan.add_manifest(0, &bytes).unwrap(), [1, 2]);
        assert_eq!((plan.index(&a.cid), plan.index(&b.cid)), (Some(1), Some(2)));
        assert_eq!(plan.blocks[2].len, 20);
        let absent = crate::block::sha256_cid(crate::block::Codec::Raw, digest(3));
        assert_eq!(plan.index(&absent), None);
    }

    #[test]
    fn one_rfs_block_listed_with_two_lengths_is_inconsistent() {
        let (a, _) = rfs_chunk(1, 1000, 700);
        let mut b = a;
        b.len = 999;
        let child = |c: ChunkRef| flist(vec![c]).to_block().unwrap();
        let ((ca, ba), (cb, bb)) = (child(a), child(b));
        let root = Flist {
            children: vec![
                crate::manifest::ChildRef {
                    name: "a".into(),
                    cid: ca,
                },
                crate::manifest::ChildRef {
                    name: "b".into(),
                    cid: cb,
                },
            ],
            ..flist(vec![])
        };
        let root = Flist {
            entries: vec![],
            ..root
        };
        let (r, rb) = root.to_block().unwrap();
        let mut plan = Plan::new(r);
        plan.mark_held(0, rb.len() as u64);
        plan.add_manifest(0, &rb).unwrap();
        plan.mark_held(1, ba.len() as u64);
        plan.add_manifest(1, &ba).unwrap();
        plan.mark_held(2, bb.len() as u64);
        assert_eq!(
            plan.add_manifest(2, &bb),
            Err(PlanError::InconsistentChunk { cid: a.cid })
        );
    }

    /// Boots one hub-only agent, the hub answering from `blocks`; returns the events and the
    /// CIDs stored.
    fn boot_alone(root: Cid, blocks: &BTreeMap<Cid, Vec<u8>>) -> (Vec<Event>, Vec<Cid>) {
        let mut agent = Agent::<Vec<u8>>::new(AgentConfig {
            hub: HubMode::Only,
            ..AgentConfig::default()
        });
        let now = Time::ZERO;
        agent.handle(now, Input::Members(vec![]));
        agent.handle(now, Input::Boot { root });
        let (mut events, mut stored) = (Vec::new(), Vec::new());
        for _ in 0..100 {
            let mut inputs = Vec::new();
            while let Some(out) = agent.poll_output() {
                match out {
                    Output::Lookup { cid } => inputs.push(Input::Local { cid, block: None }),
                    Output::Fetch { req, cid, .. } => inputs.push(Input::Block {
                        req,
                        payload: blocks[&cid].clone(),
                    }),
                    Output::Store { cid, .. } => stored.push(cid),
                    Output::Event(e) => events.push(e),
                    _ => {}
                }
            }
            if inputs.is_empty() {
                break;
            }
            for i in inputs {
                agent.handle(now, i);
            }
        }
        (events, stored)
    }

    #[test]
    fn an_rfs_block_within_its_cap_is_accepted_and_one_beyond_it_refused() {
        let (a, a_bytes) = rfs_chunk(1, 1000, 700);
        let (root, bytes) = flist(vec![a]).to_block().unwrap();
        let blocks = BTreeMap::from([(root, bytes.clone()), (a.cid, a_bytes)]);
        let (events, stored) = boot_alone(root, &blocks);
        assert_eq!(stored, vec![root, a.cid]);
        assert!(events.iter().any(|e| matches!(e, Event::Booted { .. })));

        // Stored bytes longer than snappy and GCM allow for 10 plaintext bytes.
        let (big, big_bytes) = rfs_chunk(2, 10, stored_cap(10) as usize + 1);
        let (root, bytes) = flist(vec![big]).to_block().unwrap();
        let blocks = BTreeMap::from([(root, bytes), (big.cid, big_bytes)]);
        let (events, stored) = boot_alone(root, &blocks);
        assert_eq!(stored, vec![root]);
        assert!(
            events
                .iter()
                .any(|e| matches!(e, Event::Rejected { cid, .. } if *cid == big.cid))
        );
    }
}
