//! The parts of a flist that carry rfs content: the key of a chunk that is an rfs block, and
//! the flist's routes (the stores its rfs blocks live in, by the first byte of their id).
//!
//! An rfs block is stored compressed (snappy) and encrypted (AES-256-GCM): its CID is the
//! blake2b-256 of the stored bytes, its key the blake2b-256 of the plaintext, and the chunk's
//! `len` is the plaintext length, so that a file's chunk lengths still add up to its size. The
//! stored length is not in the flist; [`stored_cap`] bounds it.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::ChunkRef;
use crate::block::{Codec, MAX_BLOCK_SIZE, check_cid, is_rfs_block};

/// Largest plaintext of one rfs block (rfs cuts files into 512 KiB blocks).
pub const MAX_RFS_CHUNK: u32 = 2 * 1024 * 1024;
/// Most routes one flist may carry.
pub const MAX_ROUTES: usize = 64;
/// Longest route URL, in bytes (rfs's schema allows 2048).
pub const MAX_ROUTE_URL_LEN: usize = 2048;
/// Bytes AES-256-GCM adds to a block (its tag).
pub const GCM_TAG_LEN: u32 = 16;

/// The key of an rfs block: the blake2b-256 of its plaintext, which is also its AES-256-GCM
/// key (the nonce is the key's first 12 bytes). Encoded as a 32-byte CBOR byte string.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BlockKey(pub [u8; 32]);

impl fmt::Debug for BlockKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in &self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl Serialize for BlockKey {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for BlockKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        serde_bytes::ByteArray::<32>::deserialize(d).map(|a| BlockKey(a.into_array()))
    }
}

/// Where the rfs blocks of a flist may be fetched: every route whose range holds the first
/// byte of a block's id names a store that should have it (rfs's `route` table).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Route {
    /// First byte of the range (inclusive).
    pub start: u8,
    /// Last byte of the range (inclusive).
    pub end: u8,
    /// Store URL, e.g. `zdb://hub.grid.tf:9900` or `dir:///var/cache/blocks`.
    pub url: String,
}

impl Route {
    /// Whether the route covers a block whose id starts with `first`.
    pub fn covers(&self, first: u8) -> bool {
        (self.start..=self.end).contains(&first)
    }
}

/// The most bytes an rfs block of `plain_len` plaintext bytes can take once stored: snappy's
/// worst case (`32 + n + n / 6`) plus the GCM tag. Saturates; callers keep `plain_len` within
/// [`MAX_RFS_CHUNK`].
pub const fn stored_cap(plain_len: u32) -> u32 {
    32u32
        .saturating_add(plain_len)
        .saturating_add(plain_len / 6)
        .saturating_add(GCM_TAG_LEN)
}

/// The chunk rules: a sha2-256 chunk has no key and at most [`MAX_BLOCK_SIZE`] bytes; an rfs
/// block (blake2b-256) has a key and at most [`MAX_RFS_CHUNK`] bytes of plaintext.
pub(super) fn check_chunk(chunk: &ChunkRef) -> Result<(), &'static str> {
    if check_cid(&chunk.cid) != Ok(Codec::Raw) {
        return Err("a chunk CID is not a raw CIDv1 (sha2-256, or blake2b-256 for an rfs block)");
    }
    if is_rfs_block(&chunk.cid) {
        if chunk.key.is_none() {
            return Err("an rfs block (blake2b-256 CID) has no key");
        }
        if chunk.len == 0 || chunk.len > MAX_RFS_CHUNK {
            return Err("an rfs block's chunk length is 0 or above 2 MiB");
        }
    } else {
        if chunk.key.is_some() {
            return Err("a sha2-256 chunk has an rfs key");
        }
        if chunk.len == 0 || chunk.len as usize > MAX_BLOCK_SIZE {
            return Err("a chunk length is 0 or above the block size limit");
        }
    }
    Ok(())
}

/// The route rules; on failure, the offending URL (or count) and why.
pub(super) fn check_routes(routes: &[Route]) -> Result<(), (String, &'static str)> {
    if routes.len() > MAX_ROUTES {
        return Err((format!("{} routes", routes.len()), "more than 64 routes"));
    }
    for r in routes {
        let bad = |reason| Err((super::shown(&r.url), reason));
        if r.start > r.end {
            return bad("its range starts after it ends");
        }
        if r.url.is_empty() || r.url.len() > MAX_ROUTE_URL_LEN {
            return bad("its URL is empty or longer than 2048 bytes");
        }
        if !r.url.bytes().all(|b| b.is_ascii_graphic()) {
            return bad("its URL has a space, a control or a non-ASCII character");
        }
        if !r.url.contains("://") {
            return bad("its URL has no scheme");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::{blake2b_256, cid_of, rfs_block_cid};
    use crate::manifest::{ChildRef, Entry, EntryKind, Flist, ManifestError};

    fn rfs_chunk(len: u32, key: Option<BlockKey>) -> ChunkRef {
        ChunkRef {
            cid: rfs_block_cid(blake2b_256(b"stored")),
            len,
            key,
        }
    }

    #[test]
    fn chunk_rules() {
        let key = Some(BlockKey([1; 32]));
        assert_eq!(check_chunk(&rfs_chunk(512 * 1024, key)), Ok(()));
        assert_eq!(
            check_chunk(&rfs_chunk(512 * 1024, None)),
            Err("an rfs block (blake2b-256 CID) has no key")
        );
        assert!(check_chunk(&rfs_chunk(0, key)).is_err());
        assert!(check_chunk(&rfs_chunk(MAX_RFS_CHUNK + 1, key)).is_err());
        let sha = ChunkRef {
            cid: cid_of(Codec::Raw, b"x"),
            len: 1,
            key,
        };
        assert_eq!(check_chunk(&sha), Err("a sha2-256 chunk has an rfs key"));
    }

    #[test]
    fn the_cap_covers_snappy_and_the_tag() {
        assert_eq!(stored_cap(0), 48);
        assert_eq!(stored_cap(600), 32 + 600 + 100 + 16);
        assert!(stored_cap(MAX_RFS_CHUNK) as usize <= MAX_BLOCK_SIZE);
        assert_eq!(stored_cap(u32::MAX), u32::MAX);
    }

    #[test]
    fn route_rules() {
        let route = |start, end, url: &str| Route {
            start,
            end,
            url: url.into(),
        };
        assert_eq!(
            check_routes(&[route(0, 255, "zdb://hub.grid.tf:9900")]),
            Ok(())
        );
        assert!(route(0, 127, "x://").covers(127) && !route(0, 127, "x://").covers(128));
        for (r, reason) in [
            (route(9, 8, "zdb://h"), "its range starts after it ends"),
            (
                route(0, 1, ""),
                "its URL is empty or longer than 2048 bytes",
            ),
            (
                route(0, 1, "zdb://a b"),
                "its URL has a space, a control or a non-ASCII character",
            ),
            (route(0, 1, "hub.grid.tf"), "its URL has no scheme"),
        ] {
            assert_eq!(check_routes(&[r]).unwrap_err().1, reason);
        }
        let many = vec![route(0, 255, "dir:///x"); MAX_ROUTES + 1];
        assert!(check_routes(&many).is_err());
    }

    fn entry(path: &str, kind: EntryKind, chunks: Vec<ChunkRef>) -> Entry {
        let size = chunks.iter().map(|c| u64::from(c.len)).sum();
        Entry {
            path: path.into(),
            kind,
            mode: if kind == EntryKind::Symlink {
                0o777
            } else {
                0o644
            },
            size,
            chunks,
            target: (kind == EntryKind::Symlink).then(|| "zinit".into()),
        }
    }

    fn legacy() -> Flist {
        let c = |d: &[u8]| ChunkRef {
            cid: cid_of(Codec::Raw, d),
            len: d.len() as u32,
            key: None,
        };
        let mut bin = entry("bin", EntryKind::Dir, vec![]);
        bin.mode = 0o755;
        Flist {
            name: "zos".into(),
            version: "3.14.1".into(),
            entries: vec![
                bin,
                entry("bin/zinit", EntryKind::File, vec![c(b"hello"), c(b"world")]),
                entry("bin/zinit-link", EntryKind::Symlink, vec![]),
            ],
            children: vec![ChildRef {
                name: "corex".into(),
                cid: cid_of(Codec::DagCbor, b"child"),
            }],
            routes: Vec::new(),
        }
    }

    #[test]
    fn flists_without_rfs_fields_encode_as_before() {
        // The CID this flist had before chunks could carry keys and flists routes.
        let (cid, bytes) = legacy().to_block().unwrap();
        assert_eq!(
            cid.to_string(),
            "bafyreieqm2z4akzuagc42ljaqyvuk6gyo6uch6ev5qurjg4rpeniduq3vq"
        );
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.contains("routes") && !text.contains("key"));
    }

    #[test]
    fn rfs_flists_round_trip_and_explicit_empties_are_not_canonical() {
        let mut f = legacy();
        f.entries.push(entry(
            "lib/big",
            EntryKind::File,
            vec![
                rfs_chunk(512 * 1024, Some(BlockKey([9; 32]))),
                rfs_chunk(3, Some(BlockKey([8; 32]))),
            ],
        ));
        f.entries.insert(2, entry("lib", EntryKind::Dir, vec![]));
        f.normalise();
        f.routes = vec![Route {
            start: 0,
            end: 255,
            url: "zdb://hub.grid.tf:9900".into(),
        }];
        let bytes = f.encode().unwrap();
        assert_eq!(Flist::decode(&bytes).unwrap(), f);

        // {"routes": []} and {"key": null} decode to valid flists but are other bytes.
        let route = Route {
            start: 0,
            end: 255,
            url: "dir:///x".into(),
        };
        let empty_routes = explicit(vec![], vec![]);
        assert_eq!(
            Flist::decode(&empty_routes),
            Err(ManifestError::NotCanonical)
        );
        let null_key = explicit(vec![route.clone()], vec![cid_of(Codec::Raw, b"x")]);
        assert_eq!(Flist::decode(&null_key), Err(ManifestError::NotCanonical));
        // The same with the fields left out is canonical.
        let mut f = legacy();
        f.entries = vec![entry("f", EntryKind::File, vec![])];
        f.entries[0].chunks = vec![ChunkRef {
            cid: cid_of(Codec::Raw, b"x"),
            len: 1,
            key: None,
        }];
        f.entries[0].size = 1;
        f.routes = vec![route];
        assert!(Flist::decode(&f.encode().unwrap()).is_ok());
    }

    /// A flist encoded with `routes` and every chunk's `key` always present (one file `f`
    /// with a 1-byte chunk per CID given).
    fn explicit(routes: Vec<Route>, chunks: Vec<crate::block::Cid>) -> Vec<u8> {
        #[derive(Serialize)]
        struct Chunk {
            cid: crate::block::Cid,
            len: u32,
            key: Option<BlockKey>,
        }
        #[derive(Serialize)]
        struct File {
            path: String,
            kind: EntryKind,
            mode: u32,
            size: u64,
            chunks: Vec<Chunk>,
            target: Option<String>,
        }
        #[derive(Serialize)]
        struct Explicit {
            name: String,
            version: String,
            entries: Vec<File>,
            children: Vec<ChildRef>,
            routes: Vec<Route>,
        }
        let file = File {
            path: "f".into(),
            kind: EntryKind::File,
            mode: 0o644,
            size: chunks.len() as u64,
            chunks: chunks
                .into_iter()
                .map(|cid| Chunk {
                    cid,
                    len: 1,
                    key: None,
                })
                .collect(),
            target: None,
        };
        serde_ipld_dagcbor::to_vec(&Explicit {
            name: "zos".into(),
            version: String::new(),
            entries: vec![file],
            children: vec![],
            routes,
        })
        .unwrap()
    }

    #[test]
    fn flist_validation_applies_the_rfs_rules() {
        let mut f = legacy();
        f.entries = vec![entry("f", EntryKind::File, vec![rfs_chunk(4, None)])];
        assert!(matches!(
            f.validate(),
            Err(ManifestError::BadEntry { reason, .. }) if reason.contains("has no key")
        ));
        let mut f = legacy();
        f.routes = vec![Route {
            start: 1,
            end: 0,
            url: "dir:///x".into(),
        }];
        assert!(matches!(f.validate(), Err(ManifestError::BadRoute { .. })));
    }

    #[test]
    fn keys_encode_as_32_byte_strings_and_refuse_other_lengths() {
        let bytes = serde_ipld_dagcbor::to_vec(&BlockKey([0xab; 32])).unwrap();
        assert_eq!(&bytes[..2], &[0x58, 32]);
        let back: BlockKey = serde_ipld_dagcbor::from_slice(&bytes).unwrap();
        assert_eq!(back, BlockKey([0xab; 32]));
        let short = serde_ipld_dagcbor::to_vec(&serde_bytes::ByteBuf::from(vec![1u8; 31])).unwrap();
        assert!(serde_ipld_dagcbor::from_slice::<BlockKey>(&short).is_err());
        assert_eq!(format!("{:?}", BlockKey([0x0f; 32])), "0f".repeat(32));
    }
}
