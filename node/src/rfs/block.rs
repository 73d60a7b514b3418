//! One rfs block (rfs `src/store/bs.rs`): `key = blake2b-256(plain)`, `stored =
//! AES-256-GCM(key, nonce = key[..12], snappy_raw(plain))` (ciphertext then the 16-byte tag, no
//! associated data), `id = blake2b-256(stored)`. The id names the block (its CID's digest), the
//! key is in the flist.

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use bootswarm_protocol::block::{Cid, blake2b_256, is_rfs_block};
use bootswarm_protocol::manifest::{BlockKey, ChunkRef, EntryKind, MAX_RFS_CHUNK};
use bootswarm_protocol::store::BlockStore;

use crate::error::{Error, Result};
use crate::materialise::Tree;

/// A block as rfs stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    /// blake2b-256 of `stored`: the block's name in every store.
    pub id: [u8; 32],
    /// blake2b-256 of the plaintext: the AES key.
    pub key: BlockKey,
    /// Compressed, then encrypted bytes.
    pub stored: Vec<u8>,
}

/// Why stored bytes are not the plaintext their key promises.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// AES-GCM refused the tag: a wrong key, or bytes changed.
    #[error("its key does not decrypt it (the AES-GCM tag does not match)")]
    Tag,
    /// The decrypted bytes are not snappy.
    #[error("it does not decompress ({0})")]
    Snappy(String),
    /// The plaintext length differs from the flist's.
    #[error("its plaintext is {got} bytes, not the {want} its flist gives")]
    Length {
        /// Length the snappy header announces.
        got: usize,
        /// Length the flist gives.
        want: u32,
    },
    /// The plaintext does not hash to the key.
    #[error("its plaintext does not hash to its key")]
    Key,
}

/// Compresses, encrypts and names `plain`, as rfs does.
pub fn encode(plain: &[u8]) -> Encoded {
    let key = blake2b_256(plain);
    let compressed = snap::raw::Encoder::new()
        .compress_vec(plain)
        .expect("snappy compresses any input below 4 GiB");
    let stored = cipher(&key)
        .encrypt(Nonce::from_slice(&key[..12]), compressed.as_slice())
        .expect("AES-GCM encrypts any input below 64 GiB");
    Encoded {
        id: blake2b_256(&stored),
        key: BlockKey(key),
        stored,
    }
}

fn cipher(key: &[u8; 32]) -> Aes256Gcm {
    Aes256Gcm::new(key.into())
}

/// The plaintext of `stored` (decrypted with `key`, decompressed), checked to be `len` bytes
/// that hash to `key`. The decompressed length is read from the snappy header before anything
/// is allocated for it.
pub fn decode(
    key: &BlockKey,
    stored: &[u8],
    len: u32,
) -> std::result::Result<Vec<u8>, DecodeError> {
    decode_within(key, stored, Some(len))
}

/// The plaintext of `stored` of whatever length its snappy header announces, up to
/// [`MAX_RFS_CHUNK`] (an import's `--verify`, which learns the lengths).
pub fn decode_any(key: &BlockKey, stored: &[u8]) -> std::result::Result<Vec<u8>, DecodeError> {
    decode_within(key, stored, None)
}

fn decode_within(
    key: &BlockKey,
    stored: &[u8],
    want: Option<u32>,
) -> std::result::Result<Vec<u8>, DecodeError> {
    let compressed = cipher(&key.0)
        .decrypt(Nonce::from_slice(&key.0[..12]), stored)
        .map_err(|_| DecodeError::Tag)?;
    let announced =
        snap::raw::decompress_len(&compressed).map_err(|e| DecodeError::Snappy(e.to_string()))?;
    let len = want.unwrap_or_else(|| {
        u32::try_from(announced)
            .unwrap_or(u32::MAX)
            .min(MAX_RFS_CHUNK)
    });
    if announced != len as usize {
        return Err(DecodeError::Length {
            got: announced,
            want: len,
        });
    }
    let mut plain = vec![0u8; announced];
    let n = snap::raw::Decoder::new()
        .decompress(&compressed, &mut plain)
        .map_err(|e| DecodeError::Snappy(e.to_string()))?;
    if n != plain.len() {
        return Err(DecodeError::Length { got: n, want: len });
    }
    if blake2b_256(&plain) != key.0 {
        return Err(DecodeError::Key);
    }
    Ok(plain)
}

/// The install's per-chunk step: the bytes a chunk contributes to file `rel`. A sha2-256
/// chunk is its bytes (of the listed length); an rfs block is decoded with its key.
pub fn decode_chunk(rel: &str, chunk: &ChunkRef, stored: Vec<u8>) -> Result<Vec<u8>> {
    match &chunk.key {
        None => {
            if stored.len() != chunk.len as usize {
                return Err(Error::new(format!(
                    "block {} of '{}' is {} bytes but its flist says {}; the publisher made an invalid release",
                    chunk.cid,
                    rel.escape_debug(),
                    stored.len(),
                    chunk.len
                )));
            }
            Ok(stored)
        }
        Some(key) => decode(key, &stored, chunk.len).map_err(|e| {
            Error::new(format!(
                "rfs block {} of '{}' cannot be installed: {e}; the flist the release was imported from is wrong, re-import it",
                chunk.cid,
                rel.escape_debug()
            ))
        }),
    }
}

/// Decodes every rfs block of `tree` from `store` once, before an install touches its target,
/// so that a wrong key leaves the target as it was. Returns the blocks checked.
pub fn check_tree<S: BlockStore + ?Sized>(store: &S, tree: &Tree) -> Result<usize> {
    let mut seen = std::collections::HashSet::new();
    for e in &tree.entries {
        if e.entry.kind != EntryKind::File {
            continue;
        }
        for chunk in e.entry.chunks.iter().filter(|c| is_rfs_block(&c.cid)) {
            if !seen.insert((chunk.cid, chunk.key)) {
                continue;
            }
            let stored = read(store, &chunk.cid, &e.path)?;
            decode_chunk(&e.path, chunk, stored)?;
        }
    }
    Ok(seen.len())
}

fn read<S: BlockStore + ?Sized>(store: &S, cid: &Cid, rel: &str) -> Result<Vec<u8>> {
    store
        .get(cid)
        .map_err(|e| {
            Error::new(format!(
                "block {cid} of '{}' could not be read from the store ({}); run the boot again",
                rel.escape_debug(),
                e.to_string().trim_end_matches('.')
            ))
        })?
        .ok_or_else(|| {
            Error::new(format!(
                "block {cid} of '{}' vanished from the store; run the boot again",
                rel.escape_debug()
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    /// Computed with Python's hashlib.blake2b(digest_size=32) and cryptography's AESGCM, the
    /// snappy literal written by hand: plaintext → key → stored → id.
    #[test]
    fn known_answer_block() {
        let plain = b"bootswarm + rfs!";
        let e = encode(plain);
        assert_eq!(
            hex(&e.key.0),
            "1d98049352ae1c529a862473e1a5ef81e3f2e3ab742157dce9ae868c84bd836d"
        );
        assert_eq!(
            hex(&e.stored),
            "3bd2c0e9d746263731f45b7b3750a8b5a7685c5e242bc8f6856863202f21bab3fc37"
        );
        assert_eq!(
            hex(&e.id),
            "f730f033318ec751ea4f48b0b38721cf68978c45221cbffcd5efc6544ff44594"
        );
        assert_eq!(decode(&e.key, &e.stored, 16).unwrap(), plain);
    }

    /// A snappy stream with a back-reference (literal "abcd", then copy 8 at offset 4), made
    /// outside snap's encoder.
    #[test]
    fn known_answer_block_with_a_copy() {
        let key = BlockKey(
            unhex("0cf92b44dade6ebee8fe8573b48842d6f7ae0055006f6467cd4a1aad9083953c")
                .try_into()
                .unwrap(),
        );
        let stored = unhex("434ec8905fe60751236b17de3cf152c4dcdf49e53329a1ea");
        assert_eq!(
            hex(&blake2b_256(&stored)),
            "4d67c47a4e581fb003183b37389a97d488c4e81fceea76a947360c8c0a33d83b"
        );
        assert_eq!(decode(&key, &stored, 12).unwrap(), b"abcdabcdabcd");
    }

    #[test]
    fn every_fault_is_its_own_error() {
        let plain: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let e = encode(&plain);
        assert_eq!(decode(&e.key, &e.stored, 100_000).unwrap(), plain);
        let mut flipped = e.stored.clone();
        flipped[10] ^= 1;
        assert_eq!(decode(&e.key, &flipped, 100_000), Err(DecodeError::Tag));
        let mut wrong = e.key;
        wrong.0[0] ^= 1;
        assert_eq!(decode(&wrong, &e.stored, 100_000), Err(DecodeError::Tag));
        assert_eq!(
            decode(&e.key, &e.stored[..e.stored.len() - 1], 100_000),
            Err(DecodeError::Tag)
        );
        assert!(matches!(
            decode(&e.key, &e.stored, 99_999),
            Err(DecodeError::Length { got: 100_000, .. })
        ));
        // A block encrypted under a key that is not its plaintext's hash.
        let other = encode(b"other");
        let cipher = cipher(&other.key.0);
        let compressed = snap::raw::Encoder::new().compress_vec(&plain).unwrap();
        let stored = cipher
            .encrypt(Nonce::from_slice(&other.key.0[..12]), compressed.as_slice())
            .unwrap();
        assert_eq!(decode(&other.key, &stored, 100_000), Err(DecodeError::Key));
        // Decrypts, but is not snappy.
        let stored = cipher
            .encrypt(
                Nonce::from_slice(&other.key.0[..12]),
                &[0xff, 0xff, 0xff][..],
            )
            .unwrap();
        assert!(matches!(
            decode(&other.key, &stored, 1),
            Err(DecodeError::Snappy(_))
        ));
    }

    #[test]
    fn decode_chunk_names_the_file_and_the_block() {
        let e = encode(b"hello");
        let chunk = ChunkRef {
            cid: bootswarm_protocol::block::rfs_block_cid(e.id),
            len: 5,
            key: Some(BlockKey([0; 32])),
        };
        let err = decode_chunk("bin/x", &chunk, e.stored)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("bin/x") && err.contains(&chunk.cid.to_string()),
            "{err}"
        );
        assert!(err.contains("does not decrypt"), "{err}");
    }

    mod install {
        use std::collections::HashMap;
        use std::fs;
        use std::os::unix::fs::PermissionsExt;
        use std::path::Path;

        use bootswarm_protocol::block::{Codec, cid_of, rfs_block_cid};
        use bootswarm_protocol::store::{BlockStore, MemoryStore};
        use bootswarm_protocol::walk::Placed as PlacedFlist;

        use crate::materialise::{materialise, plan};
        use crate::rfs::flist::{RFS_BLOCK_SIZE, read};
        use crate::rfs::pack::pack;

        /// Packs a tree with a two-block executable, an empty file, a symlink and an empty
        /// read-only directory; returns its flist with every block in `store`.
        fn packed(dir: &Path, store: &MemoryStore) -> bootswarm_protocol::manifest::Flist {
            let src = dir.join("src");
            fs::create_dir_all(src.join("bin")).unwrap();
            fs::create_dir_all(src.join("empty")).unwrap();
            let big: Vec<u8> = (0..RFS_BLOCK_SIZE as usize + 1000)
                .map(|i| (i * 13 % 251) as u8)
                .collect();
            fs::write(src.join("bin/tool"), &big).unwrap();
            fs::set_permissions(src.join("bin/tool"), fs::Permissions::from_mode(0o755)).unwrap();
            fs::write(src.join("etc-file"), b"").unwrap();
            std::os::unix::fs::symlink("bin/tool", src.join("link")).unwrap();
            fs::set_permissions(src.join("empty"), fs::Permissions::from_mode(0o500)).unwrap();
            let fl = dir.join("p.fl");
            pack(&src, &fl, &[], None, &mut |id, b| {
                store.put(&rfs_block_cid(*id), b).unwrap();
                Ok(())
            })
            .unwrap();
            fs::set_permissions(src.join("empty"), fs::Permissions::from_mode(0o755)).unwrap();
            read(&fl)
                .unwrap()
                .to_flist("p", "1", &HashMap::new())
                .unwrap()
        }

        fn tree(flist: bootswarm_protocol::manifest::Flist) -> crate::materialise::Tree {
            plan(&[PlacedFlist {
                cid: cid_of(Codec::DagCbor, b"p"),
                prefix: String::new(),
                flist,
            }])
            .unwrap()
        }

        #[test]
        fn an_rfs_tree_installs_byte_identical() {
            let dir = tempfile::tempdir().unwrap();
            let store = MemoryStore::new();
            let flist = packed(dir.path(), &store);
            let target = dir.path().join("target");
            let stats = materialise(&store, &tree(flist), &target, &|_| {}).unwrap();
            assert_eq!((stats.files, stats.symlinks), (2, 1));
            let src = dir.path().join("src");
            assert_eq!(
                fs::read(target.join("bin/tool")).unwrap(),
                fs::read(src.join("bin/tool")).unwrap()
            );
            assert_eq!(fs::read(target.join("etc-file")).unwrap(), b"");
            let mode = |p: &Path| fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777;
            assert_eq!(mode(&target.join("bin/tool")), 0o755);
            assert_eq!(mode(&target.join("empty")), 0o500);
            assert_eq!(
                fs::read_link(target.join("link")).unwrap(),
                Path::new("bin/tool")
            );
            assert_eq!(fs::read_dir(target.join("empty")).unwrap().count(), 0);
            fs::set_permissions(target.join("empty"), fs::Permissions::from_mode(0o755)).unwrap();
        }

        #[test]
        fn a_wrong_key_or_length_is_one_sentence_and_the_target_is_untouched() {
            let dir = tempfile::tempdir().unwrap();
            let store = MemoryStore::new();
            let good = packed(dir.path(), &store);
            let tool = good
                .entries
                .iter()
                .position(|e| e.path == "bin/tool")
                .unwrap();
            let target = dir.path().join("target");

            let mut wrong_key = good.clone();
            let chunk = &mut wrong_key.entries[tool].chunks[1];
            chunk.key.as_mut().unwrap().0[5] ^= 1;
            let cid = chunk.cid;
            let err = materialise(&store, &tree(wrong_key), &target, &|_| {})
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("'bin/tool'") && err.contains(&cid.to_string()),
                "{err}"
            );
            assert!(err.contains("does not decrypt"), "{err}");
            assert_eq!(err.matches(". ").count(), 0, "one sentence: {err}");
            assert!(!target.exists());

            let mut wrong_len = good.clone();
            wrong_len.entries[tool].chunks[1].len -= 1;
            wrong_len.entries[tool].size -= 1;
            let err = materialise(&store, &tree(wrong_len), &target, &|_| {})
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("plaintext is 1000 bytes, not the 999"),
                "{err}"
            );
            assert!(!target.exists());
        }
    }
}
