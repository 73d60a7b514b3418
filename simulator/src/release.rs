//! The synthetic release: real flist manifests (DAG-CBOR bytes and CIDs) over synthetic chunks.
//!
//! Chunk CIDs are `cid_of(Raw, seed || package || index)`; nobody holds their bytes. The
//! simulator moves [`SimPayload::Synthetic`] payloads (a length and a corrupt flag) for chunks
//! and real bytes for manifests.

use crate::rng::{Rng, purpose};
use bootswarm_protocol::agent::Payload;
use bootswarm_protocol::block::{self, BlockError, Cid, Codec, MAX_BLOCK_SIZE, cid_of};
use bootswarm_protocol::manifest::{ChildRef, ChunkRef, Entry, EntryKind, Flist};
use std::collections::HashMap;
use std::collections::hash_map::DefaultHasher;
use std::hash::BuildHasherDefault;
use std::sync::Arc;

/// Smallest synthetic chunk.
pub const MIN_CHUNK: u64 = 256 * 1024;
/// Largest synthetic chunk.
pub const MAX_CHUNK: u64 = MAX_BLOCK_SIZE as u64;

/// A block's data as the simulator moves it.
#[derive(Debug, Clone)]
pub enum SimPayload {
    /// A chunk: only its length and whether the sender corrupted it.
    Synthetic {
        /// Bytes.
        len: u32,
        /// Fails verification.
        corrupt: bool,
    },
    /// A manifest: real bytes.
    Bytes(Arc<[u8]>),
}

impl SimPayload {
    /// Whether this payload would fail verification against its own CID.
    pub fn is_corrupt(&self, cid: &Cid) -> bool {
        self.verify(cid).is_err()
    }
}

impl Payload for SimPayload {
    fn len(&self) -> usize {
        match self {
            SimPayload::Synthetic { len, .. } => *len as usize,
            SimPayload::Bytes(b) => b.len(),
        }
    }

    fn verify(&self, cid: &Cid) -> Result<(), BlockError> {
        match self {
            SimPayload::Synthetic { corrupt: true, .. } => Err(BlockError::Mismatch { cid: *cid }),
            SimPayload::Synthetic { len, .. } if *len as usize > MAX_BLOCK_SIZE => {
                Err(BlockError::TooLarge {
                    cid: *cid,
                    len: *len as usize,
                })
            }
            SimPayload::Synthetic { .. } => Ok(()),
            SimPayload::Bytes(b) => block::verify(cid, b),
        }
    }

    fn bytes(&self) -> Option<&[u8]> {
        match self {
            SimPayload::Synthetic { .. } => None,
            SimPayload::Bytes(b) => Some(b),
        }
    }
}

/// One block of the release.
#[derive(Debug, Clone)]
pub struct BlockInfo {
    /// Its CID.
    pub cid: Cid,
    /// Its length.
    pub len: u32,
    /// The bytes, for manifests.
    pub bytes: Option<Arc<[u8]>>,
}

impl BlockInfo {
    /// The payload an honest (or a corrupt) server sends.
    pub fn payload(&self, corrupt: bool) -> SimPayload {
        match &self.bytes {
            None => SimPayload::Synthetic {
                len: self.len,
                corrupt,
            },
            Some(b) if corrupt => {
                let mut v = b.to_vec();
                if let Some(x) = v.last_mut() {
                    *x ^= 0xFF;
                } else {
                    v.push(0);
                }
                SimPayload::Bytes(v.into())
            }
            Some(b) => SimPayload::Bytes(b.clone()),
        }
    }
}

/// A release built for one run.
#[derive(Debug, Clone)]
pub struct SimRelease {
    /// The root flist's CID.
    pub root: Cid,
    /// Every block: the root flist first, then the child flists, then the chunks.
    pub blocks: Vec<BlockInfo>,
    /// Number of manifests (the first blocks).
    pub manifests: usize,
    index: HashMap<Cid, u32, BuildHasherDefault<DefaultHasher>>,
}

impl SimRelease {
    /// Builds a release of `packages` packages whose file content totals `size` bytes.
    pub fn build(seed: u64, packages: u32, size: u64) -> Result<SimRelease, String> {
        let mut rng = Rng::stream(seed, 0, purpose::RELEASE);
        let mut children = Vec::new();
        let mut child_blocks = Vec::new();
        let mut chunk_blocks = Vec::new();
        for p in 0..packages as u64 {
            let budget = size / packages as u64 + u64::from(p < size % packages as u64);
            let sizes = chunk_sizes(&mut rng, budget);
            let mut refs = Vec::with_capacity(sizes.len());
            for (i, &len) in sizes.iter().enumerate() {
                let mut id = Vec::with_capacity(24);
                id.extend_from_slice(&seed.to_le_bytes());
                id.extend_from_slice(&p.to_le_bytes());
                id.extend_from_slice(&(i as u64).to_le_bytes());
                let cid = cid_of(Codec::Raw, &id);
                refs.push(ChunkRef {
                    cid,
                    len: len as u32,
                });
                chunk_blocks.push(BlockInfo {
                    cid,
                    len: len as u32,
                    bytes: None,
                });
            }
            let name = format!("pkg{p:03}");
            let files = (1 + rng.below(6) as usize).min(refs.len()).max(1);
            let mut cuts: Vec<usize> = (1..refs.len()).collect();
            rng.shuffle(&mut cuts);
            cuts.truncate(files - 1);
            cuts.push(refs.len());
            cuts.sort_unstable();
            let mut entries = vec![Entry {
                path: "bin".into(),
                kind: EntryKind::Dir,
                mode: 0o755,
                size: 0,
                chunks: Vec::new(),
                target: None,
            }];
            let mut start = 0;
            for (k, &end) in cuts.iter().enumerate() {
                let chunks = refs[start..end].to_vec();
                entries.push(Entry {
                    path: format!("bin/{name}-{k:02}"),
                    kind: EntryKind::File,
                    mode: 0o755,
                    size: chunks.iter().map(|c| c.len as u64).sum(),
                    chunks,
                    target: None,
                });
                start = end;
            }
            let mut flist = Flist {
                name: name.clone(),
                version: "sim".into(),
                entries,
                children: Vec::new(),
            };
            flist.normalise();
            let (cid, bytes) = flist
                .to_block()
                .map_err(|e| format!("package {name}: {e}"))?;
            children.push(ChildRef { name, cid });
            child_blocks.push(BlockInfo {
                cid,
                len: bytes.len() as u32,
                bytes: Some(bytes.into()),
            });
        }
        let mut root = Flist {
            name: "zos".into(),
            version: "sim".into(),
            entries: Vec::new(),
            children,
        };
        root.normalise();
        let (root_cid, root_bytes) = root.to_block().map_err(|e| format!("root flist: {e}"))?;
        let mut blocks = vec![BlockInfo {
            cid: root_cid,
            len: root_bytes.len() as u32,
            bytes: Some(root_bytes.into()),
        }];
        let manifests = 1 + child_blocks.len();
        blocks.extend(child_blocks);
        blocks.extend(chunk_blocks);
        let index = blocks
            .iter()
            .enumerate()
            .map(|(i, b)| (b.cid, i as u32))
            .collect();
        Ok(SimRelease {
            root: root_cid,
            blocks,
            manifests,
            index,
        })
    }

    /// The index of a block by CID.
    pub fn index(&self, cid: &Cid) -> Option<u32> {
        self.index.get(cid).copied()
    }

    /// Release bytes F: every block, manifests included.
    pub fn total_bytes(&self) -> u64 {
        self.blocks.iter().map(|b| b.len as u64).sum()
    }
}

/// Chunk sizes for one package: between [`MIN_CHUNK`] and [`MAX_CHUNK`], about 1 MiB on
/// average, summing to `budget` exactly.
fn chunk_sizes(rng: &mut Rng, budget: u64) -> Vec<u64> {
    let mut out = Vec::new();
    let mut left = budget;
    while left > MAX_CHUNK {
        // 90 %: 256 KiB..1.4 MiB; 10 %: 1.5..4 MiB (mean ≈ 1 MiB).
        let s = if rng.below(10) < 9 {
            rng.range(MIN_CHUNK, 1434 * 1024)
        } else {
            rng.range(1536 * 1024, MAX_CHUNK)
        };
        let s = s.min(left);
        out.push(s);
        left -= s;
    }
    if left > 0 {
        match out.last_mut() {
            Some(prev) if left < MIN_CHUNK && *prev + left <= MAX_CHUNK => *prev += left,
            Some(prev) if left < MIN_CHUNK => {
                let both = *prev + left;
                *prev = both / 2;
                out.push(both - both / 2);
            }
            _ => out.push(left),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_has_real_manifests_and_exact_size() {
        let r = SimRelease::build(7, 20, 512 << 20).unwrap();
        assert_eq!(r.manifests, 21);
        let chunk_bytes: u64 = r.blocks[r.manifests..].iter().map(|b| b.len as u64).sum();
        assert_eq!(chunk_bytes, 512 << 20);
        let chunks = r.blocks.len() - r.manifests;
        assert!((400..650).contains(&chunks), "{chunks} chunks");
        for b in &r.blocks[r.manifests..] {
            assert!((MIN_CHUNK..=MAX_CHUNK).contains(&(b.len as u64)));
        }
        let root = Flist::decode(r.blocks[0].bytes.as_deref().unwrap()).unwrap();
        assert_eq!(root.children.len(), 20);
        for b in &r.blocks[..r.manifests] {
            b.payload(false).verify(&b.cid).unwrap();
            assert!(b.payload(true).verify(&b.cid).is_err());
        }
        let c = &r.blocks[30];
        assert!(c.payload(false).verify(&c.cid).is_ok());
        assert!(c.payload(true).is_corrupt(&c.cid));
        assert_eq!(r.index(&c.cid), Some(30));
        // Deterministic.
        assert_eq!(SimRelease::build(7, 20, 512 << 20).unwrap().root, r.root);
        assert_ne!(SimRelease::build(8, 20, 512 << 20).unwrap().root, r.root);
    }

    #[test]
    fn tiny_releases() {
        for size in [1u64, 100, 300 << 10, 5 << 20] {
            let r = SimRelease::build(1, 1, size).unwrap();
            let total: u64 = r.blocks[r.manifests..].iter().map(|b| b.len as u64).sum();
            assert_eq!(total, size);
        }
    }
}
