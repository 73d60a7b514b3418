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

/// A release built for one run, and optionally its next version.
#[derive(Debug, Clone)]
pub struct SimRelease {
    /// The root flist's CID.
    pub root: Cid,
    /// Every block: the root flist first, then the child flists, then the chunks; after
    /// them, the blocks the next version adds, if there is one.
    pub blocks: Vec<BlockInfo>,
    /// Number of manifests (the first blocks).
    pub manifests: usize,
    /// Blocks of the first version (`blocks[..v1_blocks]`).
    pub v1_blocks: usize,
    /// The next version, if the scenario publishes one.
    pub v2: Option<NextVersion>,
    index: HashMap<Cid, u32, BuildHasherDefault<DefaultHasher>>,
}

/// The release published during a run: some packages changed, the rest shared.
#[derive(Debug, Clone)]
pub struct NextVersion {
    /// Its root flist.
    pub root: Cid,
    /// Bytes of the blocks it adds (new chunks and new manifests): what an upgrade must move.
    pub new_bytes: u64,
    /// Every block of the new version, as indices into [`SimRelease::blocks`].
    pub blocks: Vec<u32>,
}

/// One package as built: its chunks and how they are cut into files.
struct Package {
    name: String,
    refs: Vec<ChunkRef>,
    cuts: Vec<usize>,
}

impl Package {
    fn flist(&self, version: &str) -> Result<(Cid, Vec<u8>), String> {
        let mut entries = vec![Entry {
            path: "bin".into(),
            kind: EntryKind::Dir,
            mode: 0o755,
            size: 0,
            chunks: Vec::new(),
            target: None,
        }];
        let mut start = 0;
        for (k, &end) in self.cuts.iter().enumerate() {
            let chunks = self.refs[start..end].to_vec();
            entries.push(Entry {
                path: format!("bin/{}-{k:02}", self.name),
                kind: EntryKind::File,
                mode: 0o755,
                size: chunks.iter().map(|c| c.len as u64).sum(),
                chunks,
                target: None,
            });
            start = end;
        }
        let mut flist = Flist {
            name: self.name.clone(),
            version: version.into(),
            entries,
            children: Vec::new(),
            routes: Vec::new(),
        };
        flist.normalise();
        flist
            .to_block()
            .map_err(|e| format!("package {}: {e}", self.name))
    }
}

fn chunk_cid(seed: u64, version: u64, package: u64, index: u64) -> Cid {
    let mut id = Vec::with_capacity(32);
    for w in [seed, package, index] {
        id.extend_from_slice(&w.to_le_bytes());
    }
    if version > 1 {
        id.extend_from_slice(&version.to_le_bytes());
    }
    cid_of(Codec::Raw, &id)
}

fn root_flist(version: &str, children: Vec<ChildRef>) -> Result<(Cid, Vec<u8>), String> {
    let root = Flist {
        name: "zos".into(),
        version: version.into(),
        entries: Vec::new(),
        children,
        routes: Vec::new(),
    };
    root.to_block().map_err(|e| format!("root flist: {e}"))
}

/// The packages of version 1: `size` bytes split evenly, each cut into chunks and files.
fn make_packages(seed: u64, packages: u32, size: u64) -> Vec<Package> {
    let mut rng = crate::rng::stream(seed, 0, purpose::RELEASE);
    let mut pkgs = Vec::new();
    for p in 0..packages as u64 {
        let budget = size / packages as u64 + u64::from(p < size % packages as u64);
        let sizes = chunk_sizes(&mut rng, budget);
        let refs: Vec<ChunkRef> = sizes
            .iter()
            .enumerate()
            .map(|(i, &len)| ChunkRef {
                cid: chunk_cid(seed, 1, p, i as u64),
                len: len as u32,
                key: None,
            })
            .collect();
        let files = (1 + rng.below(6) as usize).min(refs.len()).max(1);
        let mut cuts: Vec<usize> = (1..refs.len()).collect();
        rng.shuffle(&mut cuts);
        cuts.truncate(files - 1);
        cuts.push(refs.len());
        cuts.sort_unstable();
        pkgs.push(Package {
            name: format!("pkg{p:03}"),
            refs,
            cuts,
        });
    }
    pkgs
}

impl SimRelease {
    /// Builds a release of `packages` packages whose file content totals `size` bytes.
    pub fn build(seed: u64, packages: u32, size: u64) -> Result<SimRelease, String> {
        SimRelease::build_with_upgrade(seed, packages, size, None)
    }

    /// Builds a release and, with `upgrade = Some((changed, fraction))`, its next version in
    /// which `changed` packages (the last ones) carry new chunks worth about `fraction` of
    /// `size`; the other packages' flists are unchanged and shared.
    pub fn build_with_upgrade(
        seed: u64,
        packages: u32,
        size: u64,
        upgrade: Option<(u32, f64)>,
    ) -> Result<SimRelease, String> {
        let mut pkgs = make_packages(seed, packages, size);
        let mut blocks = vec![];
        let mut children = Vec::new();
        let mut child_blocks = Vec::new();
        for pkg in &pkgs {
            let (cid, bytes) = pkg.flist("sim")?;
            children.push(ChildRef {
                name: pkg.name.clone(),
                cid,
            });
            child_blocks.push(BlockInfo {
                cid,
                len: bytes.len() as u32,
                bytes: Some(bytes.into()),
            });
        }
        let (root_cid, root_bytes) = root_flist("sim", children.clone())?;
        blocks.push(BlockInfo {
            cid: root_cid,
            len: root_bytes.len() as u32,
            bytes: Some(root_bytes.into()),
        });
        let manifests = 1 + child_blocks.len();
        blocks.extend(child_blocks);
        for pkg in &pkgs {
            blocks.extend(pkg.refs.iter().map(|r| BlockInfo {
                cid: r.cid,
                len: r.len,
                bytes: None,
            }));
        }
        let v1_blocks = blocks.len();
        let mut index: HashMap<Cid, u32, BuildHasherDefault<DefaultHasher>> = blocks
            .iter()
            .enumerate()
            .map(|(i, b)| (b.cid, i as u32))
            .collect();
        let v2 = match upgrade {
            None => None,
            Some((changed, fraction)) => {
                let changed = changed.clamp(1, packages) as usize;
                let target = (size as f64 * fraction.clamp(0.0, 1.0)) as u64;
                let per_package = target / changed as u64;
                let mut children = children;
                let mut adds: Vec<BlockInfo> = Vec::new();
                for p in packages as usize - changed..packages as usize {
                    let pkg = &mut pkgs[p];
                    let mut replaced = 0u64;
                    for (i, r) in pkg.refs.iter_mut().enumerate() {
                        if replaced >= per_package.max(1) {
                            break;
                        }
                        r.cid = chunk_cid(seed, 2, p as u64, i as u64);
                        replaced += u64::from(r.len);
                        adds.push(BlockInfo {
                            cid: r.cid,
                            len: r.len,
                            bytes: None,
                        });
                    }
                    let (cid, bytes) = pkg.flist("sim2")?;
                    children[p].cid = cid;
                    adds.push(BlockInfo {
                        cid,
                        len: bytes.len() as u32,
                        bytes: Some(bytes.into()),
                    });
                }
                let (root, bytes) = root_flist("sim2", children.clone())?;
                adds.push(BlockInfo {
                    cid: root,
                    len: bytes.len() as u32,
                    bytes: Some(bytes.into()),
                });
                let new_bytes = adds.iter().map(|b| u64::from(b.len)).sum();
                for b in adds {
                    index.insert(b.cid, blocks.len() as u32);
                    blocks.push(b);
                }
                let mut v2_blocks: Vec<u32> = vec![index[&root]];
                v2_blocks.extend(children.iter().map(|c| index[&c.cid]));
                for pkg in &pkgs {
                    v2_blocks.extend(pkg.refs.iter().map(|r| index[&r.cid]));
                }
                Some(NextVersion {
                    root,
                    new_bytes,
                    blocks: v2_blocks,
                })
            }
        };
        Ok(SimRelease {
            root: root_cid,
            blocks,
            manifests,
            v1_blocks,
            v2,
            index,
        })
    }

    /// The index of a block by CID.
    pub fn index(&self, cid: &Cid) -> Option<u32> {
        self.index.get(cid).copied()
    }

    /// Release bytes F of the first version: every block, manifests included.
    pub fn total_bytes(&self) -> u64 {
        self.blocks[..self.v1_blocks]
            .iter()
            .map(|b| b.len as u64)
            .sum()
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
    fn next_version_shares_all_but_the_changed_packages() {
        let v1 = SimRelease::build(7, 20, 512 << 20).unwrap();
        let r = SimRelease::build_with_upgrade(7, 20, 512 << 20, Some((3, 0.05))).unwrap();
        assert_eq!(
            r.root, v1.root,
            "the first version does not depend on the upgrade"
        );
        assert_eq!(r.v1_blocks, v1.blocks.len());
        let v2 = r.v2.as_ref().unwrap();
        assert_ne!(v2.root, r.root);
        let root2 =
            Flist::decode(r.blocks[v2.blocks[0] as usize].bytes.as_deref().unwrap()).unwrap();
        let root1 = Flist::decode(r.blocks[0].bytes.as_deref().unwrap()).unwrap();
        let changed = root1
            .children
            .iter()
            .zip(&root2.children)
            .filter(|(a, b)| a.cid != b.cid)
            .count();
        assert_eq!(changed, 3);
        let fraction = v2.new_bytes as f64 / (512u64 << 20) as f64;
        assert!((0.05..0.07).contains(&fraction), "{fraction}");
        let added: u64 = r.blocks[r.v1_blocks..]
            .iter()
            .map(|b| u64::from(b.len))
            .sum();
        assert_eq!(added, v2.new_bytes);
        let shared = v2
            .blocks
            .iter()
            .filter(|&&b| (b as usize) < r.v1_blocks)
            .count();
        assert!(shared as f64 > 0.9 * v2.blocks.len() as f64);
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
