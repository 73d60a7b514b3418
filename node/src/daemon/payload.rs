//! The node's block payload: real bytes, plus the result of a verification already done off
//! the event loop, so the agent's check is a comparison instead of a hash.

use bootswarm_protocol::agent::Payload;
use bootswarm_protocol::block::{self, BlockError, Cid};

/// Bytes of one block and, when known, whether they hash to a given CID.
#[derive(Debug, Clone)]
pub(crate) struct Block {
    bytes: Vec<u8>,
    checked: Option<(Cid, bool)>,
}

impl Block {
    /// Hashes `bytes` against `cid` now (call it on a blocking thread).
    pub(crate) fn verified(cid: Cid, bytes: Vec<u8>) -> Block {
        let ok = block::verify(&cid, &bytes).is_ok();
        Block {
            bytes,
            checked: Some((cid, ok)),
        }
    }

    /// Bytes the store has already verified against `cid`.
    pub(crate) fn from_store(cid: Cid, bytes: Vec<u8>) -> Block {
        Block {
            bytes,
            checked: Some((cid, true)),
        }
    }

    /// The bytes.
    pub(crate) fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }
}

impl Payload for Block {
    fn len(&self) -> usize {
        self.bytes.len()
    }

    fn verify(&self, cid: &Cid) -> Result<(), BlockError> {
        match self.checked {
            Some((c, true)) if c == *cid => Ok(()),
            Some((c, false)) if c == *cid => Err(BlockError::Mismatch { cid: *cid }),
            // Checked against another CID (or not at all): hash now.
            _ => block::verify(cid, &self.bytes),
        }
    }

    fn bytes(&self) -> Option<&[u8]> {
        Some(&self.bytes)
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
        // A result for another CID is not reused.
        assert!(
            Block::verified(cid, b"hello".to_vec())
                .verify(&other)
                .is_err()
        );
        assert_eq!(Block::from_store(cid, b"hello".to_vec()).len(), 5);
    }
}
