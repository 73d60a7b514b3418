//! Blocks: bytes named by a CIDv1 with a sha2-256 multihash, or, for the stored blocks of rfs
//! flists (raw codec only), a blake2b-256 one.

use blake2::Blake2b;
use blake2::digest::consts::U32;
use sha2::{Digest, Sha256};
use std::fmt;

pub use cid::Cid;

/// Multicodec of raw file chunks.
pub const RAW: u64 = 0x55;
/// Multicodec of DAG-CBOR blocks (manifests, releases).
pub const DAG_CBOR: u64 = 0x71;
/// Multihash code of sha2-256, the hash of every block bootswarm makes.
pub const SHA2_256: u64 = 0x12;
/// Multihash code of blake2b-256: the id of an rfs block (its stored, compressed and encrypted
/// bytes). Accepted with the raw codec only.
pub const BLAKE2B_256: u64 = 0xb220;
/// Largest block accepted or produced.
pub const MAX_BLOCK_SIZE: usize = 4 * 1024 * 1024;
/// Longest CID string `parse_cid` looks at.
pub const MAX_CID_STRING_LEN: usize = 256;

const DIGEST_LEN: usize = 32;

/// The codecs a block may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Codec {
    /// Raw bytes (file chunks).
    Raw,
    /// DAG-CBOR (manifests, releases).
    DagCbor,
}

impl Codec {
    /// The multicodec code.
    pub const fn code(self) -> u64 {
        match self {
            Codec::Raw => RAW,
            Codec::DagCbor => DAG_CBOR,
        }
    }

    /// The codec for a multicodec code, if accepted.
    pub const fn from_code(code: u64) -> Option<Self> {
        match code {
            RAW => Some(Codec::Raw),
            DAG_CBOR => Some(Codec::DagCbor),
            _ => None,
        }
    }
}

impl fmt::Display for Codec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Codec::Raw => "raw",
            Codec::DagCbor => "dag-cbor",
        })
    }
}

/// Why a CID is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CidError {
    /// The text is not a CID.
    #[error("{0} is not a valid CID; pass a CIDv1 string such as bafkrei…")]
    Parse(String),
    /// CIDv0 (or another version) was given.
    #[error("the CID is not version 1; re-encode it as a CIDv1")]
    NotV1,
    /// The codec is neither raw nor dag-cbor.
    #[error(
        "the CID has codec {0:#x}, but only raw (0x55) and dag-cbor (0x71) blocks are accepted"
    )]
    UnsupportedCodec(u64),
    /// The hash function is neither sha2-256 nor blake2b-256.
    #[error(
        "the CID uses hash function {0:#x}, but only sha2-256 (0x12) and, for raw rfs blocks, blake2b-256 (0xb220) are accepted"
    )]
    UnsupportedHash(u64),
    /// The digest is not 32 bytes long.
    #[error("the CID carries a {0}-byte digest instead of 32 bytes; the CID is malformed")]
    BadDigestLength(usize),
    /// A blake2b-256 CID with a codec other than raw.
    #[error(
        "the CID is a blake2b-256 CID with codec {0:#x}, but blake2b-256 names raw rfs blocks only"
    )]
    Blake2bNotRaw(u64),
}

/// Why a block was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlockError {
    /// The CID itself is not acceptable.
    #[error("block {cid} is refused because its CID is unacceptable: {source}")]
    Cid {
        /// The offending CID.
        cid: Cid,
        /// What is wrong with it.
        source: CidError,
    },
    /// The block is larger than [`MAX_BLOCK_SIZE`].
    #[error("block {cid} is {len} bytes, over the {MAX_BLOCK_SIZE}-byte limit; it was refused")]
    TooLarge {
        /// The block's CID.
        cid: Cid,
        /// Its length.
        len: usize,
    },
    /// The bytes do not hash to the CID.
    #[error(
        "block {cid} does not match its CID (the bytes hash to something else); fetch it again from another peer"
    )]
    Mismatch {
        /// The expected CID.
        cid: Cid,
    },
}

fn sha256(bytes: &[u8]) -> [u8; DIGEST_LEN] {
    Sha256::digest(bytes).into()
}

/// BLAKE2b with a 32-byte digest (the parameter block says 32: not a truncated BLAKE2b-512),
/// the hash rfs names its blocks and keys with.
pub fn blake2b_256(bytes: &[u8]) -> [u8; DIGEST_LEN] {
    <Blake2b<U32> as blake2::Digest>::digest(bytes).into()
}

/// The CIDv1 (sha2-256) of `bytes` with the given codec.
pub fn cid_of(codec: Codec, bytes: &[u8]) -> Cid {
    sha256_cid(codec, sha256(bytes))
}

/// The CIDv1 with the given codec and sha2-256 `digest`.
pub fn sha256_cid(codec: Codec, digest: [u8; DIGEST_LEN]) -> Cid {
    let mh = multihash::Multihash::<64>::wrap(SHA2_256, &digest)
        .expect("a 32-byte digest always fits a 64-byte multihash");
    Cid::new_v1(codec.code(), mh)
}

/// The raw CID of an rfs block: its id (the blake2b-256 of its stored bytes) as the digest.
pub fn rfs_block_cid(id: [u8; DIGEST_LEN]) -> Cid {
    let mh = multihash::Multihash::<64>::wrap(BLAKE2B_256, &id)
        .expect("a 32-byte digest always fits a 64-byte multihash");
    Cid::new_v1(RAW, mh)
}

/// Checks that `cid` is a CIDv1 with an accepted codec and a 32-byte digest of an accepted
/// hash: sha2-256 with either codec, blake2b-256 with raw only.
pub fn check_cid(cid: &Cid) -> Result<Codec, CidError> {
    if cid.version() != cid::Version::V1 {
        return Err(CidError::NotV1);
    }
    let codec = Codec::from_code(cid.codec()).ok_or(CidError::UnsupportedCodec(cid.codec()))?;
    let hash = cid.hash();
    match hash.code() {
        SHA2_256 => {}
        BLAKE2B_256 if codec == Codec::Raw => {}
        BLAKE2B_256 => return Err(CidError::Blake2bNotRaw(cid.codec())),
        other => return Err(CidError::UnsupportedHash(other)),
    }
    if hash.digest().len() != DIGEST_LEN {
        return Err(CidError::BadDigestLength(hash.digest().len()));
    }
    Ok(codec)
}

/// Whether `cid` names an rfs block (a blake2b-256 raw CID). Says nothing about validity.
pub fn is_rfs_block(cid: &Cid) -> bool {
    cid.hash().code() == BLAKE2B_256
}

/// Parses and checks a CID string.
pub fn parse_cid(s: &str) -> Result<Cid, CidError> {
    if s.len() > MAX_CID_STRING_LEN {
        return Err(CidError::Parse(format!("a {}-character string", s.len())));
    }
    let cid = Cid::try_from(s).map_err(|e| CidError::Parse(format!("{s:?} ({e})")))?;
    check_cid(&cid)?;
    Ok(cid)
}

/// Checks that `bytes` are the block named by `cid`.
pub fn verify(cid: &Cid, bytes: &[u8]) -> Result<(), BlockError> {
    check_cid(cid).map_err(|source| BlockError::Cid { cid: *cid, source })?;
    if bytes.len() > MAX_BLOCK_SIZE {
        return Err(BlockError::TooLarge {
            cid: *cid,
            len: bytes.len(),
        });
    }
    let digest = if is_rfs_block(cid) {
        blake2b_256(bytes)
    } else {
        sha256(bytes)
    };
    if cid.hash().digest() != digest {
        return Err(BlockError::Mismatch { cid: *cid });
    }
    Ok(())
}

/// A block's bytes proven to match its CID: [`Verified::check`] is the only way to make one,
/// so code holding one (a store, a materialiser) need not hash the bytes again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    cid: Cid,
    bytes: Vec<u8>,
}

impl Verified {
    /// Hashes `bytes` against `cid`; on failure the bytes come back with the reason.
    pub fn check(cid: Cid, bytes: Vec<u8>) -> Result<Verified, Box<Refused>> {
        match verify(&cid, &bytes) {
            Ok(()) => Ok(Verified { cid, bytes }),
            Err(error) => Err(Box::new(Refused { error, bytes })),
        }
    }

    /// The CID the bytes match.
    pub fn cid(&self) -> &Cid {
        &self.cid
    }

    /// The bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The bytes, giving up the proof.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }
}

/// Bytes that failed [`Verified::check`], and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// Why the bytes are not the block.
    pub error: BlockError,
    /// The bytes, given back.
    pub bytes: Vec<u8>,
}

/// The 32-byte digest inside `cid` if its hash is an accepted one (sha2-256 or blake2b-256).
pub fn digest(cid: &Cid) -> Option<[u8; 32]> {
    if !matches!(cid.hash().code(), SHA2_256 | BLAKE2B_256) {
        return None;
    }
    cid.hash().digest().try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verified_is_only_made_from_matching_bytes() {
        let c = cid_of(Codec::Raw, b"hello");
        let v = Verified::check(c, b"hello".to_vec()).unwrap();
        assert_eq!((v.cid(), v.bytes()), (&c, &b"hello"[..]));
        let refused = Verified::check(c, b"hellO".to_vec()).unwrap_err();
        assert_eq!(refused.error, BlockError::Mismatch { cid: c });
        assert_eq!(refused.bytes, b"hellO");
    }

    #[test]
    fn cid_of_is_v1_sha256_with_codec() {
        let c = cid_of(Codec::Raw, b"hello");
        assert_eq!(check_cid(&c), Ok(Codec::Raw));
        assert_eq!(c.codec(), RAW);
        assert_eq!(
            c.to_string(),
            "bafkreibm6jg3ux5qumhcn2b3flc3tyu6dmlb4xa7u5bf44yegnrjhc4yeq"
        );
        let d = cid_of(Codec::DagCbor, b"hello");
        assert_eq!(check_cid(&d), Ok(Codec::DagCbor));
        assert_ne!(c, d);
    }

    #[test]
    fn verify_accepts_matching_bytes() {
        let c = cid_of(Codec::Raw, b"abc");
        assert_eq!(verify(&c, b"abc"), Ok(()));
    }

    #[test]
    fn verify_rejects_mismatch() {
        let c = cid_of(Codec::Raw, b"abc");
        assert_eq!(verify(&c, b"abd"), Err(BlockError::Mismatch { cid: c }));
        assert!(
            verify(&c, b"abd")
                .unwrap_err()
                .to_string()
                .contains(&c.to_string())
        );
    }

    #[test]
    fn verify_rejects_oversize_before_hashing() {
        let big = vec![0u8; MAX_BLOCK_SIZE + 1];
        let c = cid_of(Codec::Raw, &big);
        assert_eq!(
            verify(&c, &big),
            Err(BlockError::TooLarge {
                cid: c,
                len: MAX_BLOCK_SIZE + 1
            })
        );
        let max = vec![0u8; MAX_BLOCK_SIZE];
        assert_eq!(verify(&cid_of(Codec::Raw, &max), &max), Ok(()));
    }

    #[test]
    fn other_hash_is_rejected() {
        let mh = multihash::Multihash::<64>::wrap(0x13, &[0u8; 64]).unwrap();
        let c = Cid::new_v1(RAW, mh);
        assert_eq!(check_cid(&c), Err(CidError::UnsupportedHash(0x13)));
        assert!(matches!(
            verify(&c, b""),
            Err(BlockError::Cid {
                source: CidError::UnsupportedHash(0x13),
                ..
            })
        ));
        assert_eq!(digest(&c), None);
    }

    #[test]
    fn other_codec_is_rejected() {
        let c = Cid::new_v1(0x70, *cid_of(Codec::Raw, b"x").hash());
        assert_eq!(check_cid(&c), Err(CidError::UnsupportedCodec(0x70)));
    }

    #[test]
    fn short_digest_is_rejected() {
        let mh = multihash::Multihash::<64>::wrap(SHA2_256, &[1u8; 20]).unwrap();
        let c = Cid::new_v1(RAW, mh);
        assert_eq!(check_cid(&c), Err(CidError::BadDigestLength(20)));
        assert_eq!(digest(&c), None);
    }

    #[test]
    fn cidv0_is_rejected() {
        let v0 = parse_cid("QmdfTbBqBPQ7VNxZEYEj14VmRuZBkqFbiwReogJgS1zR1n");
        assert_eq!(v0, Err(CidError::NotV1));
    }

    #[test]
    fn parse_round_trips_and_rejects_garbage() {
        let c = cid_of(Codec::DagCbor, b"m");
        assert_eq!(parse_cid(&c.to_string()), Ok(c));
        assert!(matches!(parse_cid("not a cid"), Err(CidError::Parse(_))));
        assert!(matches!(parse_cid(""), Err(CidError::Parse(_))));
        let long = "b".repeat(MAX_CID_STRING_LEN + 1);
        assert!(matches!(parse_cid(&long), Err(CidError::Parse(_))));
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn blake2b_256_is_the_32_byte_parameterised_hash() {
        // hashlib.blake2b(b"abc", digest_size=32): not the first half of BLAKE2b-512.
        assert_eq!(
            hex(&blake2b_256(b"abc")),
            "bddd813c634239723171ef3fee98579b94964e3bb1cb3e427262c8c068d52319"
        );
    }

    #[test]
    fn rfs_blocks_are_raw_blake2b_cids() {
        let c = rfs_block_cid(blake2b_256(b"stored"));
        assert_eq!(check_cid(&c), Ok(Codec::Raw));
        assert!(is_rfs_block(&c) && !is_rfs_block(&cid_of(Codec::Raw, b"stored")));
        assert_eq!(c.hash().code(), BLAKE2B_256);
        assert_eq!(digest(&c), Some(blake2b_256(b"stored")));
        assert_eq!(verify(&c, b"stored"), Ok(()));
        assert_eq!(verify(&c, b"stoRed"), Err(BlockError::Mismatch { cid: c }));
        let v = Verified::check(c, b"stored".to_vec()).unwrap();
        assert_eq!(v.cid(), &c);
        assert!(Verified::check(c, b"other".to_vec()).is_err());
        // The sha2-256 of the same bytes is not accepted under a blake2b CID.
        let wrong = rfs_block_cid(sha256(b"stored"));
        assert!(verify(&wrong, b"stored").is_err());
        assert_eq!(parse_cid(&c.to_string()), Ok(c));
    }

    #[test]
    fn blake2b_is_refused_for_dag_cbor_and_short_digests() {
        let mh = multihash::Multihash::<64>::wrap(BLAKE2B_256, &[7u8; 32]).unwrap();
        let dag = Cid::new_v1(DAG_CBOR, mh);
        assert_eq!(check_cid(&dag), Err(CidError::Blake2bNotRaw(DAG_CBOR)));
        assert!(matches!(
            verify(&dag, b""),
            Err(BlockError::Cid {
                source: CidError::Blake2bNotRaw(_),
                ..
            })
        ));
        let short = multihash::Multihash::<64>::wrap(BLAKE2B_256, &[7u8; 20]).unwrap();
        let c = Cid::new_v1(RAW, short);
        assert_eq!(check_cid(&c), Err(CidError::BadDigestLength(20)));
        assert_eq!(digest(&c), None);
    }

    #[test]
    fn digest_is_the_sha256() {
        let c = cid_of(Codec::Raw, b"abc");
        let expected: [u8; 32] = Sha256::digest(b"abc").into();
        assert_eq!(digest(&c), Some(expected));
    }
}
