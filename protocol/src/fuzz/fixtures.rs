//! Real encodings the targets start from: a small release whose manifests are real flists,
//! and signed releases.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use ed25519_dalek::SigningKey;

use crate::block::{Cid, Codec, cid_of};
use crate::manifest::{ChildRef, ChunkRef, Entry, EntryKind, Flist};
use crate::release::{Release, SignedRelease};

/// Unix time the fixtures are signed around.
pub(super) const UNIX: u64 = 1_700_000_000;

/// A release tree: the root flist, its blocks (manifests and chunks) by CID, in plan order
/// of discovery.
#[derive(Debug)]
pub(super) struct Tree {
    pub(super) root: Cid,
    pub(super) blocks: BTreeMap<Cid, Vec<u8>>,
    /// Every CID, root first.
    pub(super) cids: Vec<Cid>,
    /// The flists, encoded.
    pub(super) flists: Vec<Vec<u8>>,
}

/// Three packages (one with a nested child flist, two sharing a chunk) of small chunks.
pub(super) fn tree() -> &'static Tree {
    static TREE: OnceLock<Tree> = OnceLock::new();
    TREE.get_or_init(build_tree)
}

fn chunk(blocks: &mut BTreeMap<Cid, Vec<u8>>, seed: u8, len: usize) -> ChunkRef {
    let bytes: Vec<u8> = (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ seed)
        .collect();
    let cid = cid_of(Codec::Raw, &bytes);
    blocks.insert(cid, bytes);
    ChunkRef {
        cid,
        len: len as u32,
    }
}

fn file(path: &str, chunks: Vec<ChunkRef>) -> Entry {
    Entry {
        path: path.into(),
        kind: EntryKind::File,
        mode: 0o644,
        size: chunks.iter().map(|c| u64::from(c.len)).sum(),
        chunks,
        target: None,
    }
}

fn flist(name: &str, entries: Vec<Entry>, children: Vec<ChildRef>) -> Flist {
    Flist {
        name: name.into(),
        version: "1.0".into(),
        entries,
        children,
    }
}

fn build_tree() -> Tree {
    let mut blocks = BTreeMap::new();
    let mut flists = Vec::new();
    let mut add = |blocks: &mut BTreeMap<Cid, Vec<u8>>, f: Flist| {
        let (cid, bytes) = f.to_block().expect("the fixture flists are valid");
        flists.push(bytes.clone());
        blocks.insert(cid, bytes);
        ChildRef { name: f.name, cid }
    };
    let shared = chunk(&mut blocks, 0xaa, 120);
    let (a1, a2) = (chunk(&mut blocks, 1, 200), chunk(&mut blocks, 2, 64));
    let kernel = flist(
        "kernel",
        vec![file("boot/vmlinuz", vec![a1, a2, shared])],
        vec![],
    );
    let firmware = flist(
        "firmware",
        vec![file("lib/fw.bin", vec![chunk(&mut blocks, 3, 90)])],
        vec![],
    );
    let firmware = add(&mut blocks, firmware);
    let tools = flist(
        "tools",
        vec![
            Entry {
                path: "bin".into(),
                kind: EntryKind::Dir,
                mode: 0o755,
                size: 0,
                chunks: vec![],
                target: None,
            },
            file("bin/tool", vec![shared, chunk(&mut blocks, 4, 150)]),
            Entry {
                path: "bin/tool2".into(),
                kind: EntryKind::Symlink,
                mode: 0o777,
                size: 0,
                chunks: vec![],
                target: Some("tool".into()),
            },
        ],
        vec![firmware],
    );
    let children = vec![add(&mut blocks, kernel), add(&mut blocks, tools)];
    let root = add(&mut blocks, flist("zos", vec![], children));
    let mut cids: Vec<Cid> = blocks.keys().copied().filter(|c| *c != root.cid).collect();
    cids.insert(0, root.cid);
    Tree {
        root: root.cid,
        blocks,
        cids,
        flists,
    }
}

/// The signing key numbered `n`.
pub(super) fn key(n: u8) -> SigningKey {
    SigningKey::from_bytes(&[n; 32])
}

/// A flist root numbered `n` (not a real tree: the follower never reads it).
pub(super) fn root(n: u64) -> Cid {
    cid_of(Codec::DagCbor, &n.to_le_bytes())
}

/// Release `seq` of `channel` with root `root(root_n)`, signed by the keys numbered `signers`.
pub(super) fn signed(
    channel: &str,
    seq: u64,
    root_n: u64,
    issued_at: u64,
    expires_at: u64,
    signers: &[u8],
) -> Vec<u8> {
    let keys: Vec<SigningKey> = signers.iter().map(|&n| key(n)).collect();
    let release = Release {
        channel: channel.into(),
        seq,
        root: root(root_n),
        issued_at,
        expires_at,
    };
    SignedRelease::sign(release, &keys).encode()
}
