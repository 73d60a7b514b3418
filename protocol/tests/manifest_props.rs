//! Property tests: decoding never panics, valid values round-trip.

use bootswarm_protocol::block::{Codec, blake2b_256, cid_of, rfs_block_cid};
use bootswarm_protocol::manifest::{
    BlockKey, ChildRef, ChunkRef, Entry, EntryKind, Flist, MAX_RFS_CHUNK, Route,
};
use bootswarm_protocol::release::{Release, SignedRelease};
use ed25519_dalek::SigningKey;
use proptest::prelude::*;

fn component() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9_][a-zA-Z0-9._-]{0,11}".prop_filter("not . or ..", |c| c != "." && c != "..")
}

fn package_name() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9][a-zA-Z0-9._+-]{0,11}"
}

fn rel_path() -> impl Strategy<Value = String> {
    prop::collection::vec(component(), 1..4).prop_map(|c| c.join("/"))
}

fn chunk_ref() -> impl Strategy<Value = ChunkRef> {
    let sha = (any::<u64>(), 1u32..=4 * 1024 * 1024).prop_map(|(seed, len)| ChunkRef {
        cid: cid_of(Codec::Raw, &seed.to_le_bytes()),
        len,
        key: None,
    });
    let rfs =
        (any::<u64>(), 1u32..=MAX_RFS_CHUNK, any::<[u8; 32]>()).prop_map(|(seed, len, key)| {
            ChunkRef {
                cid: rfs_block_cid(blake2b_256(&seed.to_le_bytes())),
                len,
                key: Some(BlockKey(key)),
            }
        });
    prop_oneof![sha, rfs]
}

fn route() -> impl Strategy<Value = Route> {
    (any::<u8>(), any::<u8>(), "[a-z]{1,5}://[!-~]{0,30}").prop_map(|(a, b, url)| Route {
        start: a.min(b),
        end: a.max(b),
        url,
    })
}

fn entry() -> impl Strategy<Value = Entry> {
    let file = (
        rel_path(),
        0u32..=0o7777,
        prop::collection::vec(chunk_ref(), 0..4),
    )
        .prop_map(|(path, mode, chunks)| Entry {
            path,
            kind: EntryKind::File,
            mode,
            size: chunks.iter().map(|c| u64::from(c.len)).sum(),
            chunks,
            target: None,
        });
    let dir = (rel_path(), 0u32..=0o7777).prop_map(|(path, mode)| Entry {
        path,
        kind: EntryKind::Dir,
        mode,
        size: 0,
        chunks: vec![],
        target: None,
    });
    let link = (rel_path(), "[^\0]{1,40}").prop_map(|(path, target)| Entry {
        path,
        kind: EntryKind::Symlink,
        mode: 0o777,
        size: 0,
        chunks: vec![],
        target: Some(target),
    });
    prop_oneof![file, dir, link]
}

/// Sorted, deduplicated entries with nothing below a file or symlink.
fn valid_entries(mut entries: Vec<Entry>) -> Vec<Entry> {
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    entries.dedup_by(|a, b| a.path == b.path);
    let leaves: std::collections::BTreeSet<String> = entries
        .iter()
        .filter(|e| e.kind != EntryKind::Dir)
        .map(|e| e.path.clone())
        .collect();
    entries.retain(|e| {
        !e.path
            .match_indices('/')
            .any(|(i, _)| leaves.contains(&e.path[..i]))
    });
    entries
}

fn flist() -> impl Strategy<Value = Flist> {
    (
        component(),
        "[^\0]{0,20}",
        prop::collection::vec(entry(), 0..20),
        prop::collection::btree_map(package_name(), any::<u64>(), 0..5),
        prop::collection::vec(route(), 0..3),
    )
        .prop_map(|(name, version, entries, children, routes)| Flist {
            name,
            version,
            entries: valid_entries(entries),
            children: children
                .into_iter()
                .map(|(name, seed)| ChildRef {
                    name,
                    cid: cid_of(Codec::DagCbor, &seed.to_le_bytes()),
                })
                .collect(),
            routes,
        })
}

fn signed_release() -> impl Strategy<Value = SignedRelease> {
    (
        "[a-z0-9._-]{1,64}",
        any::<u64>(),
        any::<u64>(),
        any::<u64>(),
        any::<u64>(),
        prop::collection::vec(any::<[u8; 32]>(), 0..5),
    )
        .prop_map(|(channel, seq, root, issued_at, expires_at, seeds)| {
            let keys: Vec<SigningKey> = seeds.iter().map(SigningKey::from_bytes).collect();
            let release = Release {
                channel,
                seq,
                root: cid_of(Codec::DagCbor, &root.to_le_bytes()),
                issued_at,
                expires_at,
            };
            SignedRelease::sign(release, &keys)
        })
}

fn mutate(mut bytes: Vec<u8>, edits: &[(usize, u8, u8)]) -> Vec<u8> {
    for &(pos, value, op) in edits {
        if bytes.is_empty() {
            bytes.push(value);
            continue;
        }
        let pos = pos % bytes.len();
        match op % 4 {
            0 => bytes[pos] = value,
            1 => bytes[pos] ^= 1 << (value % 8),
            2 => bytes.insert(pos, value),
            _ => {
                bytes.remove(pos);
            }
        }
    }
    bytes
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn flist_decode_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        let _ = Flist::decode(&bytes);
    }

    #[test]
    fn flist_round_trips(f in flist()) {
        f.validate().unwrap();
        let bytes = f.encode().unwrap();
        prop_assert_eq!(Flist::decode(&bytes).unwrap(), f);
    }

    #[test]
    fn flist_mutations_never_panic(
        f in flist(),
        edits in prop::collection::vec((any::<usize>(), any::<u8>(), any::<u8>()), 1..8),
    ) {
        let bytes = mutate(f.encode().unwrap(), &edits);
        if let Ok(decoded) = Flist::decode(&bytes) {
            // Whatever is accepted is canonical and valid.
            prop_assert_eq!(decoded.encode().unwrap(), bytes);
        }
    }

    #[test]
    fn release_decode_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        let _ = SignedRelease::decode(&bytes);
    }

    #[test]
    fn release_round_trips(s in signed_release()) {
        let bytes = s.encode();
        prop_assert_eq!(SignedRelease::decode(&bytes).unwrap(), s);
    }

    #[test]
    fn release_mutations_never_panic(
        s in signed_release(),
        edits in prop::collection::vec((any::<usize>(), any::<u8>(), any::<u8>()), 1..8),
    ) {
        let bytes = mutate(s.encode(), &edits);
        if let Ok(decoded) = SignedRelease::decode(&bytes) {
            prop_assert_eq!(decoded.encode(), bytes);
        }
    }
}
