//! The node's block payload: real bytes, plus the result of a verification already done off
//! the event loop, so the agent's check is a comparison instead of a hash.

use bootswarm_protocol::agent::Payload;
use bootswarm_protocol::block::{self, BlockError, Cid, Verified};

/// Bytes of one block and what is known about them.
#[derive(Debug, Clone)]
pub(crate) enum Block {
    /// Hashed against their CID and found to match.
    Verified(Verified),
    /// Hashed against `cid` and found not to match.
    Mismatch { cid: Cid, bytes: Vec<u8> },
    /// Read from the store, which verifies what it returns.
    Stored { cid: Cid, bytes: Vec<u8> },
}

impl Block {
    /// Hashes `bytes` against `cid` now (call it on a blocking thread).
    pub(crate) fn verified(cid: Cid, bytes: Vec<u8>) -> Block {
        match Verified::check(cid, bytes) {
            Ok(v) => Block::Verified(v),
            Err(refused) => Block::Mismatch {
                cid,
                bytes: refused.bytes,
            },
        }
    }

    /// Bytes the store has already verified against `cid`.
    pub(crate) fn from_store(cid: Cid, bytes: Vec<u8>) -> Block {
        Block::Stored { cid, bytes }
    }

    /// The bytes.
    pub(crate) fn as_bytes(&self) -> &[u8] {
        match self {
            Block::Verified(v) => v.bytes(),
            Block::Mismatch { bytes, .. } | Block::Stored { bytes, .. } => bytes,
        }
    }
}

impl Payload for Block {
    fn len(&self) -> usize {
        self.as_bytes().len()
    }

    fn verify(&self, cid: &Cid) -> Result<(), BlockError> {
        match self {
            Block::Verified(v) if v.cid() == cid => Ok(()),
            Block::Stored { cid: c, .. } if c == cid => Ok(()),
            Block::Mismatch { cid: c, .. } if c == cid => Err(BlockError::Mismatch { cid: *cid }),
            // Checked against another CID: hash now.
            _ => block::verify(cid, self.as_bytes()),
        }
    }

    fn bytes(&self) -> Option<&[u8]> {
        Some(self.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bootswarm_protocol::block::{Codec, cid_of};

    #[test]
    fn carries_the_verification_result() {
        let cid = cid_of(Codec::Raw, b"hello");
        let other = cid_of(Codec::Raw, b"other");
        assert!(Block::verified(cid, b"hello".to_vec()).verify(&cid).is_ok());
        let bad = Block::verified(cid, b"hellO".to_vec());
        assert!(matches!(bad.verify(&cid), Err(BlockError::Mismatch { .. })));
        assert!(!matches!(bad, Block::Verified(_)));
        // A result for another CID is not reused.
        assert!(
            Block::verified(cid, b"hello".to_vec())
                .verify(&other)
                .is_err()
        );
        assert_eq!(Block::from_store(cid, b"hello".to_vec()).len(), 5);
        assert!(matches!(
            Block::verified(cid, b"hello".to_vec()),
            Block::Verified(_)
        ));
    }
}
