//! The decoders: whatever the bytes, decoding returns, and what decodes is canonical.

use ed25519_dalek::VerifyingKey;

use super::fixtures::{self, UNIX};
use crate::agent::{Bitfield, Message};
use crate::block::{Codec, check_cid, cid_of, parse_cid, verify};
use crate::manifest::Flist;
use crate::release::{SignedRelease, TrustRoot, check_release};

/// A CID string: what parses prints back to itself as the same CID and passes `check_cid`.
pub fn cid_parse(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(cid) = parse_cid(text) else {
        return;
    };
    assert!(check_cid(&cid).is_ok(), "a parsed CID passes check_cid");
    assert_eq!(parse_cid(&cid.to_string()).ok(), Some(cid));
    let _ = verify(&cid, data);
}

/// A flist: what decodes re-encodes to the same bytes, and its CID verifies them.
pub fn flist_decode(data: &[u8]) {
    let Ok(flist) = Flist::decode(data) else {
        return;
    };
    assert_eq!(flist.encode().expect("a decoded flist encodes"), data);
    let (cid, bytes) = flist.to_block().expect("a decoded flist is a block");
    assert_eq!(bytes, data);
    assert_eq!(cid, cid_of(Codec::DagCbor, data));
    assert!(verify(&cid, data).is_ok());
}

/// A control message: what decodes re-encodes, at the length it says, to bytes that decode
/// and re-encode to themselves. (Not always to the input: a `Hello` bitfield with trailing
/// zero bytes decodes, and re-encodes without them.)
pub fn message_decode(data: &[u8]) {
    let Ok(msg) = Message::decode(data) else {
        return;
    };
    let bytes = msg.encode();
    assert_eq!(msg.encoded_len(), bytes.len());
    assert!(bytes.len() <= data.len());
    let again = Message::decode(&bytes).expect("an encoded message decodes");
    assert_eq!(again.encode(), bytes);
    if let (Message::Hello { bits: a, .. }, Message::Hello { bits: b, .. }) = (&msg, &again) {
        assert!(a.iter().eq(b.iter()), "the same bits");
    }
}

/// A signed release: what decodes re-encodes to the same bytes, and judging it under a trust
/// root returns (any verdict).
pub fn release_decode(data: &[u8]) {
    let Ok(release) = SignedRelease::decode(data) else {
        return;
    };
    assert_eq!(release.encode(), data);
    let keys: Vec<VerifyingKey> = [1, 2].map(|n| fixtures::key(n).verifying_key()).into();
    let trust = TrustRoot::new(keys, 1).expect("two distinct keys");
    let _ = check_release(&trust, "prod", UNIX, None, &release);
}

pub(super) fn cid_seeds() -> Vec<Vec<u8>> {
    let tree = fixtures::tree();
    let mut seeds: Vec<Vec<u8>> = tree.cids[..3]
        .iter()
        .map(|c| c.to_string().into_bytes())
        .collect();
    seeds.push(cid_of(Codec::Raw, b"").to_string().into_bytes());
    seeds
}

pub(super) fn flist_seeds() -> Vec<Vec<u8>> {
    fixtures::tree().flists.clone()
}

pub(super) fn message_seeds() -> Vec<Vec<u8>> {
    let mut bits = Bitfield::new();
    for i in [0, 3, 9, 700] {
        bits.set(i);
    }
    [
        Message::Hello {
            release: 7,
            bits: bits.clone(),
            fetching: Bitfield::new(),
            reply: true,
            rack: None,
        },
        Message::Hello {
            release: u64::MAX,
            bits: Bitfield::new(),
            fetching: bits,
            reply: false,
            rack: Some(crate::agent::Rack(u64::MAX)),
        },
        Message::Have {
            release: 7,
            blocks: vec![1, 2, 40_000],
        },
        Message::Fetching {
            release: 7,
            blocks: vec![5],
        },
        Message::Crossing {
            release: 7,
            blocks: vec![6, 9],
        },
        Message::Unfetched {
            release: 7,
            blocks: vec![2],
        },
        Message::Resign { release: 7 },
        Message::Bye,
    ]
    .iter()
    .map(Message::encode)
    .collect()
}

pub(super) fn release_seeds() -> Vec<Vec<u8>> {
    vec![
        fixtures::signed("prod", 1, 1, UNIX - 10, UNIX + 3600, &[1]),
        fixtures::signed("prod", 2, 2, UNIX - 10, UNIX + 3600, &[1, 2]),
        fixtures::signed("other", 3, 3, UNIX + 1000, UNIX + 2000, &[3]),
        fixtures::signed("prod", 4, 4, UNIX - 10, UNIX + 3600, &[]),
    ]
}
