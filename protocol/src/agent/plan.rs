//! The block plan of one release: every block a node needs, in an order all nodes agree on.
//!
//! Index 0 is the root flist. Manifests are discovered level by level (the root's children,
//! then theirs), each level in its parents' order (the release's [`Walk`], each flist once),
//! and each level's chunks are appended after it, deduplicated by CID. Because the order depends only on the manifests, block indices
//! mean the same thing on every node, which keeps HAVE messages and bitfields small.

use std::collections::BTreeMap;

use super::bitfield::{Bitfield, MAX_BLOCKS};
use crate::block::{self, Cid};
use crate::manifest::{Flist, MAX_MANIFEST_SIZE};
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
    /// The exact length for chunks; the cap for manifests.
    pub(crate) len: u32,
    pub(crate) manifest: bool,
    /// Boot priority: 0 for manifests, then 1 + the package's position in the root.
    pub(crate) tier: u32,
    /// Rendezvous key from the CID's digest.
    pub(crate) key: u64,
    pub(crate) state: State,
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
    pub(crate) held_bytes: u64,
}

/// A short identifier of a release for control messages: the first 8 bytes of the root's digest.
pub fn release_tag(root: &Cid) -> u64 {
    let d = block::digest(root).unwrap_or([0; 32]);
    u64::from_le_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]])
}

fn block_key(cid: &Cid) -> u64 {
    let d = block::digest(cid).unwrap_or([0; 32]);
    u64::from_le_bytes([d[8], d[9], d[10], d[11], d[12], d[13], d[14], d[15]])
}

impl Plan {
    pub(crate) fn new(root: Cid) -> Self {
        let mut plan = Plan {
            root,
            tag: release_tag(&root),
            blocks: Vec::new(),
            by_cid: BTreeMap::new(),
            walk: Walk::distinct(root),
            entry_tiers: BTreeMap::from([(0, 1)]),
            complete: false,
            order: Vec::new(),
            held: Bitfield::new(),
            held_count: 0,
            lookups: 0,
            to_fetch: 0,
            held_bytes: 0,
        };
        plan.push(root, MAX_MANIFEST_SIZE as u32, true, 0);
        plan.order.push(0);
        plan
    }

    pub(crate) fn index(&self, cid: &Cid) -> Option<u32> {
        self.by_cid.get(cid).copied()
    }

    pub(crate) fn is_booted(&self) -> bool {
        self.complete && self.held_count as usize == self.blocks.len()
    }

    pub(crate) fn total_bytes(&self) -> u64 {
        self.blocks.iter().map(|b| u64::from(b.len)).sum()
    }

    fn push(&mut self, cid: Cid, len: u32, manifest: bool, tier: u32) -> u32 {
        let idx = self.blocks.len() as u32;
        self.blocks.push(Block {
            cid,
            len,
            manifest,
            tier,
            key: block_key(&cid),
            state: State::Lookup,
        });
        self.lookups += 1;
        self.by_cid.insert(cid, idx);
        idx
    }

    /// Marks a block held; returns false if it already was.
    pub(crate) fn mark_held(&mut self, idx: u32, len: u64) -> bool {
        let b = &mut self.blocks[idx as usize];
        if b.state == State::Held {
            return false;
        }
        b.state = State::Held;
        if b.manifest {
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
            let Some(&m) = self.by_cid.get(&placed.cid) else {
                continue;
            };
            let tier = self.entry_tiers.get(&m).copied().unwrap_or(1);
            for (pos, child) in placed.flist.children.iter().enumerate() {
                if self.by_cid.contains_key(&child.cid) {
                    continue;
                }
                let child_tier = if m == 0 { 1 + pos as u32 } else { tier };
                let c = self.push(child.cid, MAX_MANIFEST_SIZE as u32, true, 0);
                self.entry_tiers.insert(c, child_tier);
            }
            for entry in &placed.flist.entries {
                for chunk in &entry.chunks {
                    match self.by_cid.get(&chunk.cid) {
                        Some(&existing) => {
                            if self.blocks[existing as usize].len != chunk.len {
                                return Err(PlanError::InconsistentChunk { cid: chunk.cid });
                            }
                        }
                        None => {
                            self.push(chunk.cid, chunk.len, false, tier);
                        }
                    }
                }
            }
            if self.blocks.len() > MAX_BLOCKS as usize {
                return Err(PlanError::TooManyBlocks);
            }
        }
        self.complete = self.walk.is_done();
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
