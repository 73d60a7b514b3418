//! Signed releases, the trust root and the acceptance rules.
#![allow(
    clippy::result_large_err,
    reason = "ReleaseError::Equivocation names both roots (two inline CIDs); errors are cold"
)]

use crate::block::{Cid, Codec, check_cid, cid_of};
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// Largest encoded signed release.
pub const MAX_RELEASE_SIZE: usize = 64 * 1024;
/// Prefix of the signed bytes, so a release signature cannot be replayed elsewhere.
pub const SIGNING_DOMAIN: &[u8] = b"bootswarm/release/v1\0";
/// Longest channel name; channels match `[a-z0-9._-]+`.
pub const MAX_CHANNEL_LEN: usize = 64;
/// Most signatures on one release.
pub const MAX_SIGNATURES: usize = 16;
/// How far in the future `issued_at` may be, in seconds, to allow for clock skew.
pub const MAX_CLOCK_SKEW: u64 = 300;

/// What a publisher signs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Release {
    /// Channel name, e.g. `prod`.
    pub channel: String,
    /// Sequence number, strictly increasing per channel.
    pub seq: u64,
    /// DAG-CBOR CID of the root flist.
    pub root: Cid,
    /// Issue time, unix seconds.
    pub issued_at: u64,
    /// Expiry time, unix seconds.
    pub expires_at: u64,
}

/// One publisher signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signature {
    /// Ed25519 public key of the signer.
    #[serde(with = "serde_bytes")]
    pub key: [u8; 32],
    /// Ed25519 signature over [`Release::signing_bytes`].
    #[serde(with = "serde_bytes")]
    pub sig: [u8; 64],
}

/// A release with its signatures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedRelease {
    /// The signed content.
    pub release: Release,
    /// Signatures, at most [`MAX_SIGNATURES`].
    pub signatures: Vec<Signature>,
}

/// The highest release a node has accepted on its channel, stored durably.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HighWater {
    /// Its sequence number.
    pub seq: u64,
    /// Its root flist.
    pub root: Cid,
}

/// How an acceptable release relates to the high-water mark.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// Newer than the high-water mark (or there is none).
    New,
    /// The same sequence number and root as the high-water mark.
    Current,
}

/// What a node does with a release it heard by gossip (libp2p gossipsub's message acceptance).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GossipVerdict {
    /// Valid and new or current: adopt it and forward it. Forwarding a current release is
    /// what lets one hub poll stand for the whole farm.
    Accept,
    /// Harmless but not useful (the release just before ours, or a clock ahead of ours):
    /// drop it without blaming the sender.
    Ignore,
    /// Invalid, or an attack (forged, other channel, expired replay, older rollback,
    /// equivocation): drop it and penalise the sender.
    Reject,
}

/// Maps the outcome of [`check_release`] on a gossiped release to a [`GossipVerdict`].
/// `high_water` is the mark the release was checked against.
pub fn gossip_verdict(
    outcome: &Result<Freshness, ReleaseError>,
    high_water: Option<&HighWater>,
) -> GossipVerdict {
    match outcome {
        Ok(_) => GossipVerdict::Accept,
        Err(ReleaseError::Rollback { seq, .. })
            if high_water.is_some_and(|hw| seq.saturating_add(1) == hw.seq) =>
        {
            GossipVerdict::Ignore
        }
        Err(ReleaseError::NotYetValid { .. }) => GossipVerdict::Ignore,
        Err(_) => GossipVerdict::Reject,
    }
}

/// Why a release was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReleaseError {
    /// The encoding is larger than [`MAX_RELEASE_SIZE`].
    #[error("release is {len} bytes, over the {MAX_RELEASE_SIZE}-byte limit; it was refused")]
    TooLarge {
        /// Encoded length.
        len: usize,
    },
    /// The bytes are not a well-formed signed release.
    #[error("release could not be decoded ({0}); the message is corrupt or not a release")]
    Decode(String),
    /// The channel name is not `[a-z0-9._-]{1,64}`.
    #[error(
        "release channel {channel:?} is not a valid channel name (1 to 64 of a-z 0-9 . _ -); fix the publisher"
    )]
    BadChannelName {
        /// The channel name.
        channel: String,
    },
    /// No signature comes from a trusted key.
    #[error("release has no signature from a trusted publisher key; check the node's trust root")]
    NoTrustedSignature,
    /// A trusted key's signature does not verify.
    #[error(
        "release signature by trusted key {key} does not verify; the release was tampered with or mis-signed"
    )]
    BadSignature {
        /// Hex of the public key.
        key: String,
    },
    /// Too few distinct trusted keys signed.
    #[error(
        "release has {valid} valid signature(s) from distinct trusted keys but {threshold} are required; collect more publisher signatures"
    )]
    ThresholdNotMet {
        /// Distinct trusted keys whose signature verified.
        valid: usize,
        /// Required count.
        threshold: usize,
    },
    /// The release is for another channel.
    #[error("release is for channel {got:?} but this node follows {expected:?}; it was ignored")]
    WrongChannel {
        /// The node's channel.
        expected: String,
        /// The release's channel.
        got: String,
    },
    /// The release has expired.
    #[error(
        "release expired at {expires_at} (now {now}); the publisher must issue a fresh one, or check the node clock"
    )]
    Expired {
        /// Expiry, unix seconds.
        expires_at: u64,
        /// Current time, unix seconds.
        now: u64,
    },
    /// The release is issued too far in the future.
    #[error("release is issued at {issued_at}, in the future (now {now}); check the node clock")]
    NotYetValid {
        /// Issue time, unix seconds.
        issued_at: u64,
        /// Current time, unix seconds.
        now: u64,
    },
    /// The sequence number is below the high-water mark.
    #[error(
        "release seq {seq} is older than the accepted seq {high_water}; a rollback was refused"
    )]
    Rollback {
        /// The release's seq.
        seq: u64,
        /// The high-water seq.
        high_water: u64,
    },
    /// Same sequence number as the high-water mark but a different root.
    #[error(
        "release seq {seq} names root {root} but root {trusted_root} was already accepted at that seq; the publisher equivocated and must be investigated"
    )]
    Equivocation {
        /// The seq.
        seq: u64,
        /// The root in this release.
        root: Cid,
        /// The root accepted earlier.
        trusted_root: Cid,
    },
    /// The trust root configuration is invalid.
    #[error("trust root is invalid: {0}; fix the node configuration")]
    BadTrustRoot(String),
}

/// The kind of a refused release: a short, stable label for `/status` and `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RefusalKind {
    /// [`ReleaseError::TooLarge`].
    TooLarge,
    /// [`ReleaseError::Decode`].
    Undecodable,
    /// [`ReleaseError::BadChannelName`].
    BadChannelName,
    /// [`ReleaseError::NoTrustedSignature`].
    UntrustedKey,
    /// [`ReleaseError::BadSignature`].
    BadSignature,
    /// [`ReleaseError::ThresholdNotMet`].
    ThresholdNotMet,
    /// [`ReleaseError::WrongChannel`].
    WrongChannel,
    /// [`ReleaseError::Expired`].
    Expired,
    /// [`ReleaseError::NotYetValid`].
    NotYetValid,
    /// [`ReleaseError::Rollback`].
    Rollback,
    /// [`ReleaseError::Equivocation`].
    Equivocation,
    /// [`ReleaseError::BadTrustRoot`].
    BadTrustRoot,
    /// Gossip on a topic the node does not follow (no [`ReleaseError`]: the transport's).
    WrongTopic,
}

impl RefusalKind {
    /// The label, e.g. `bad_signature`.
    pub fn as_str(self) -> &'static str {
        match self {
            RefusalKind::TooLarge => "too_large",
            RefusalKind::Undecodable => "undecodable",
            RefusalKind::BadChannelName => "bad_channel_name",
            RefusalKind::UntrustedKey => "untrusted_key",
            RefusalKind::BadSignature => "bad_signature",
            RefusalKind::ThresholdNotMet => "threshold_not_met",
            RefusalKind::WrongChannel => "wrong_channel",
            RefusalKind::Expired => "expired",
            RefusalKind::NotYetValid => "not_yet_valid",
            RefusalKind::Rollback => "rollback",
            RefusalKind::Equivocation => "equivocation",
            RefusalKind::BadTrustRoot => "bad_trust_root",
            RefusalKind::WrongTopic => "wrong_topic",
        }
    }
}

impl std::fmt::Display for RefusalKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl ReleaseError {
    /// What kind of refusal this is.
    pub fn kind(&self) -> RefusalKind {
        match self {
            ReleaseError::TooLarge { .. } => RefusalKind::TooLarge,
            ReleaseError::Decode(_) => RefusalKind::Undecodable,
            ReleaseError::BadChannelName { .. } => RefusalKind::BadChannelName,
            ReleaseError::NoTrustedSignature => RefusalKind::UntrustedKey,
            ReleaseError::BadSignature { .. } => RefusalKind::BadSignature,
            ReleaseError::ThresholdNotMet { .. } => RefusalKind::ThresholdNotMet,
            ReleaseError::WrongChannel { .. } => RefusalKind::WrongChannel,
            ReleaseError::Expired { .. } => RefusalKind::Expired,
            ReleaseError::NotYetValid { .. } => RefusalKind::NotYetValid,
            ReleaseError::Rollback { .. } => RefusalKind::Rollback,
            ReleaseError::Equivocation { .. } => RefusalKind::Equivocation,
            ReleaseError::BadTrustRoot(_) => RefusalKind::BadTrustRoot,
        }
    }
}

/// Lowercase hex of `bytes`.
pub fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    s
}

/// Whether `channel` matches `[a-z0-9._-]{1,64}`.
pub fn is_valid_channel(channel: &str) -> bool {
    !channel.is_empty()
        && channel.len() <= MAX_CHANNEL_LEN
        && channel
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
}

fn dagcbor<T: Serialize>(value: &T) -> Vec<u8> {
    serde_ipld_dagcbor::to_vec(value).expect("release types always encode to DAG-CBOR")
}

impl Release {
    /// The bytes that are signed: [`SIGNING_DOMAIN`] followed by the DAG-CBOR encoding.
    pub fn signing_bytes(&self) -> Vec<u8> {
        let mut bytes = SIGNING_DOMAIN.to_vec();
        bytes.extend_from_slice(&dagcbor(self));
        bytes
    }
}

impl SignedRelease {
    /// Signs `release` with each key.
    pub fn sign(release: Release, keys: &[SigningKey]) -> Self {
        let msg = release.signing_bytes();
        let signatures = keys
            .iter()
            .map(|k| Signature {
                key: k.verifying_key().to_bytes(),
                sig: k.sign(&msg).to_bytes(),
            })
            .collect();
        SignedRelease {
            release,
            signatures,
        }
    }

    /// Deterministic DAG-CBOR encoding.
    pub fn encode(&self) -> Vec<u8> {
        dagcbor(self)
    }

    /// Decodes and checks the form (size, canonical encoding, channel, root CID, signature
    /// count); signatures are checked by [`TrustRoot::verify`].
    pub fn decode(bytes: &[u8]) -> Result<Self, ReleaseError> {
        if bytes.len() > MAX_RELEASE_SIZE {
            return Err(ReleaseError::TooLarge { len: bytes.len() });
        }
        let signed: SignedRelease = serde_ipld_dagcbor::from_slice(bytes)
            .map_err(|e| ReleaseError::Decode(e.to_string()))?;
        if signed.encode() != bytes {
            return Err(ReleaseError::Decode(
                "the bytes are not canonical DAG-CBOR".into(),
            ));
        }
        if !is_valid_channel(&signed.release.channel) {
            let mut channel = signed.release.channel;
            if channel.len() > MAX_CHANNEL_LEN {
                let mut end = MAX_CHANNEL_LEN;
                while !channel.is_char_boundary(end) {
                    end -= 1;
                }
                channel.truncate(end);
                channel.push('…');
            }
            return Err(ReleaseError::BadChannelName { channel });
        }
        let root = signed.release.root;
        match check_cid(&root) {
            Ok(Codec::DagCbor) => {}
            Ok(codec) => {
                return Err(ReleaseError::Decode(format!(
                    "root {root} is a {codec} CID, not a dag-cbor flist"
                )));
            }
            Err(e) => return Err(ReleaseError::Decode(format!("root {root}: {e}"))),
        }
        if signed.signatures.len() > MAX_SIGNATURES {
            return Err(ReleaseError::Decode(format!(
                "{} signatures, more than {MAX_SIGNATURES}",
                signed.signatures.len()
            )));
        }
        // One signature per key: a key signing twice would only cost verifications.
        let mut keys = BTreeSet::new();
        if let Some(dup) = signed.signatures.iter().find(|s| !keys.insert(s.key)) {
            return Err(ReleaseError::Decode(format!(
                "key {} signs it more than once",
                to_hex(&dup.key)
            )));
        }
        Ok(signed)
    }

    /// The DAG-CBOR CID and bytes of [`SignedRelease::encode`].
    pub fn to_block(&self) -> (Cid, Vec<u8>) {
        let bytes = self.encode();
        (cid_of(Codec::DagCbor, &bytes), bytes)
    }
}

/// The publisher keys a node accepts and how many must sign.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustRoot {
    keys: Vec<VerifyingKey>,
    threshold: usize,
}

impl TrustRoot {
    /// A trust root; duplicate keys count once, weak keys are refused, and
    /// `threshold` must be in `1..=distinct keys`.
    pub fn new(keys: Vec<VerifyingKey>, threshold: usize) -> Result<Self, ReleaseError> {
        let mut seen = BTreeSet::new();
        let mut distinct = Vec::with_capacity(keys.len());
        for key in keys {
            if key.is_weak() {
                return Err(ReleaseError::BadTrustRoot(format!(
                    "key {} is a weak (small-order) key",
                    to_hex(key.as_bytes())
                )));
            }
            if seen.insert(key.to_bytes()) {
                distinct.push(key);
            }
        }
        if threshold == 0 || threshold > distinct.len() {
            return Err(ReleaseError::BadTrustRoot(format!(
                "threshold {threshold} is not between 1 and the {} distinct key(s)",
                distinct.len()
            )));
        }
        Ok(TrustRoot {
            keys: distinct,
            threshold,
        })
    }

    /// The distinct trusted keys.
    pub fn keys(&self) -> &[VerifyingKey] {
        &self.keys
    }

    /// How many distinct trusted keys must sign.
    pub fn threshold(&self) -> usize {
        self.threshold
    }

    /// Checks signatures only: untrusted keys are ignored, each trusted key counts once,
    /// and any trusted key's signature that fails `verify_strict` refuses the release.
    pub fn verify(&self, signed: &SignedRelease) -> Result<(), ReleaseError> {
        let msg = signed.release.signing_bytes();
        let mut trusted_seen = false;
        let mut valid = BTreeSet::new();
        for s in &signed.signatures {
            let Some(key) = self.keys.iter().find(|k| k.as_bytes() == &s.key) else {
                continue;
            };
            trusted_seen = true;
            let sig = ed25519_dalek::Signature::from_bytes(&s.sig);
            if key.verify_strict(&msg, &sig).is_err() {
                return Err(ReleaseError::BadSignature {
                    key: to_hex(&s.key),
                });
            }
            valid.insert(s.key);
        }
        if !trusted_seen {
            return Err(ReleaseError::NoTrustedSignature);
        }
        if valid.len() < self.threshold {
            return Err(ReleaseError::ThresholdNotMet {
                valid: valid.len(),
                threshold: self.threshold,
            });
        }
        Ok(())
    }
}

/// All acceptance rules, in order: signatures and threshold, channel, expiry
/// (`now_unix >= expires_at`, or `issued_at` more than [`MAX_CLOCK_SKEW`] ahead), then
/// `seq` against the high-water mark.
pub fn check_release(
    trust: &TrustRoot,
    channel: &str,
    now_unix: u64,
    high_water: Option<&HighWater>,
    signed: &SignedRelease,
) -> Result<Freshness, ReleaseError> {
    trust.verify(signed)?;
    check_claims(channel, now_unix, high_water, &signed.release)
}

/// The rules of [`check_release`] after the signatures: channel, expiry, then `seq` against
/// the high-water mark.
pub fn check_claims(
    channel: &str,
    now_unix: u64,
    high_water: Option<&HighWater>,
    r: &Release,
) -> Result<Freshness, ReleaseError> {
    if r.channel != channel {
        return Err(ReleaseError::WrongChannel {
            expected: channel.to_owned(),
            got: r.channel.clone(),
        });
    }
    if now_unix >= r.expires_at {
        return Err(ReleaseError::Expired {
            expires_at: r.expires_at,
            now: now_unix,
        });
    }
    if r.issued_at > now_unix.saturating_add(MAX_CLOCK_SKEW) {
        return Err(ReleaseError::NotYetValid {
            issued_at: r.issued_at,
            now: now_unix,
        });
    }
    let Some(hw) = high_water else {
        return Ok(Freshness::New);
    };
    match r.seq.cmp(&hw.seq) {
        std::cmp::Ordering::Less => Err(ReleaseError::Rollback {
            seq: r.seq,
            high_water: hw.seq,
        }),
        std::cmp::Ordering::Equal if r.root != hw.root => Err(ReleaseError::Equivocation {
            seq: r.seq,
            root: r.root,
            trusted_root: hw.root,
        }),
        std::cmp::Ordering::Equal => Ok(Freshness::Current),
        std::cmp::Ordering::Greater => Ok(Freshness::New),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_700_000_000;

    fn key(n: u8) -> SigningKey {
        SigningKey::from_bytes(&[n; 32])
    }

    fn root(n: u8) -> Cid {
        cid_of(Codec::DagCbor, &[n])
    }

    fn release(seq: u64) -> Release {
        Release {
            channel: "prod".into(),
            seq,
            root: root(1),
            issued_at: NOW - 10,
            expires_at: NOW + 3600,
        }
    }

    fn trust(threshold: usize) -> TrustRoot {
        TrustRoot::new(
            vec![key(1).verifying_key(), key(2).verifying_key()],
            threshold,
        )
        .unwrap()
    }

    fn check(signed: &SignedRelease, hw: Option<&HighWater>) -> Result<Freshness, ReleaseError> {
        check_release(&trust(1), "prod", NOW, hw, signed)
    }

    #[test]
    fn valid_release_is_new() {
        let s = SignedRelease::sign(release(5), &[key(1)]);
        assert_eq!(check(&s, None), Ok(Freshness::New));
    }

    #[test]
    fn wrong_key_has_no_trusted_signature() {
        let s = SignedRelease::sign(release(5), &[key(9)]);
        assert_eq!(check(&s, None), Err(ReleaseError::NoTrustedSignature));
        let unsigned = SignedRelease::sign(release(5), &[]);
        assert_eq!(
            check(&unsigned, None),
            Err(ReleaseError::NoTrustedSignature)
        );
    }

    #[test]
    fn a_key_signing_twice_is_refused_at_decode() {
        let s = SignedRelease::sign(release(5), &[key(1), key(1)]);
        let err = SignedRelease::decode(&s.encode()).unwrap_err();
        assert!(
            matches!(&err, ReleaseError::Decode(why) if why.contains("more than once")),
            "{err}"
        );
        // Checked without decoding, the duplicate still counts once.
        assert_eq!(
            check_release(&trust(2), "prod", NOW, None, &s),
            Err(ReleaseError::ThresholdNotMet {
                valid: 1,
                threshold: 2
            })
        );
        let s = SignedRelease::sign(release(5), &[key(1), key(9), key(2)]);
        assert_eq!(
            check_release(&trust(2), "prod", NOW, None, &s),
            Ok(Freshness::New)
        );
    }

    #[test]
    fn tampered_signature_is_bad() {
        let mut s = SignedRelease::sign(release(5), &[key(1)]);
        s.signatures[0].sig[10] ^= 1;
        assert_eq!(
            check(&s, None),
            Err(ReleaseError::BadSignature {
                key: to_hex(key(1).verifying_key().as_bytes())
            })
        );
        let mut s = SignedRelease::sign(release(5), &[key(1)]);
        s.release.seq = 6;
        assert!(matches!(
            check(&s, None),
            Err(ReleaseError::BadSignature { .. })
        ));
    }

    #[test]
    fn signature_is_domain_separated() {
        let r = release(5);
        let bare = key(1).sign(&dagcbor(&r)).to_bytes();
        let s = SignedRelease {
            release: r,
            signatures: vec![Signature {
                key: key(1).verifying_key().to_bytes(),
                sig: bare,
            }],
        };
        assert!(matches!(
            check(&s, None),
            Err(ReleaseError::BadSignature { .. })
        ));
    }

    #[test]
    fn expired_is_refused() {
        let mut r = release(5);
        r.expires_at = NOW;
        let s = SignedRelease::sign(r, &[key(1)]);
        assert_eq!(
            check(&s, None),
            Err(ReleaseError::Expired {
                expires_at: NOW,
                now: NOW
            })
        );
    }

    #[test]
    fn not_yet_valid_is_refused() {
        let mut r = release(5);
        r.issued_at = NOW + MAX_CLOCK_SKEW + 1;
        let s = SignedRelease::sign(r, &[key(1)]);
        assert_eq!(
            check(&s, None),
            Err(ReleaseError::NotYetValid {
                issued_at: NOW + MAX_CLOCK_SKEW + 1,
                now: NOW
            })
        );
        let mut r = release(5);
        r.issued_at = NOW + MAX_CLOCK_SKEW;
        assert_eq!(
            check(&SignedRelease::sign(r, &[key(1)]), None),
            Ok(Freshness::New)
        );
    }

    #[test]
    fn other_channel_is_refused() {
        let s = SignedRelease::sign(release(5), &[key(1)]);
        assert_eq!(
            check_release(&trust(1), "beta", NOW, None, &s),
            Err(ReleaseError::WrongChannel {
                expected: "beta".into(),
                got: "prod".into()
            })
        );
    }

    #[test]
    fn rollback_is_refused() {
        let s = SignedRelease::sign(release(4), &[key(1)]);
        let hw = HighWater {
            seq: 5,
            root: root(1),
        };
        assert_eq!(
            check(&s, Some(&hw)),
            Err(ReleaseError::Rollback {
                seq: 4,
                high_water: 5
            })
        );
    }

    #[test]
    fn equivocation_is_refused() {
        let s = SignedRelease::sign(release(5), &[key(1)]);
        let hw = HighWater {
            seq: 5,
            root: root(2),
        };
        assert_eq!(
            check(&s, Some(&hw)),
            Err(ReleaseError::Equivocation {
                seq: 5,
                root: root(1),
                trusted_root: root(2)
            })
        );
    }

    #[test]
    fn same_seq_and_root_is_current() {
        let s = SignedRelease::sign(release(5), &[key(1)]);
        let hw = HighWater {
            seq: 5,
            root: root(1),
        };
        assert_eq!(check(&s, Some(&hw)), Ok(Freshness::Current));
    }

    #[test]
    fn higher_seq_is_new() {
        let s = SignedRelease::sign(release(6), &[key(1)]);
        let hw = HighWater {
            seq: 5,
            root: root(2),
        };
        assert_eq!(check(&s, Some(&hw)), Ok(Freshness::New));
    }

    #[test]
    fn signatures_are_checked_before_other_rules() {
        let mut r = release(1);
        r.channel = "beta".into();
        r.expires_at = 0;
        let s = SignedRelease::sign(r, &[key(9)]);
        let hw = HighWater {
            seq: 5,
            root: root(1),
        };
        assert_eq!(check(&s, Some(&hw)), Err(ReleaseError::NoTrustedSignature));
    }

    #[test]
    fn trust_root_rules() {
        let k1 = key(1).verifying_key();
        let t = TrustRoot::new(vec![k1, k1], 1).unwrap();
        assert_eq!(t.keys(), &[k1]);
        assert_eq!(t.threshold(), 1);
        assert!(matches!(
            TrustRoot::new(vec![k1, k1], 2),
            Err(ReleaseError::BadTrustRoot(_))
        ));
        assert!(matches!(
            TrustRoot::new(vec![k1], 0),
            Err(ReleaseError::BadTrustRoot(_))
        ));
        assert!(matches!(
            TrustRoot::new(vec![], 1),
            Err(ReleaseError::BadTrustRoot(_))
        ));
        // The identity point is a small-order (weak) key.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let weak = VerifyingKey::from_bytes(&identity).unwrap();
        assert!(matches!(
            TrustRoot::new(vec![weak], 1),
            Err(ReleaseError::BadTrustRoot(_))
        ));
    }

    #[test]
    fn encode_decode_round_trip() {
        let s = SignedRelease::sign(release(5), &[key(1), key(2)]);
        let bytes = s.encode();
        assert_eq!(SignedRelease::decode(&bytes), Ok(s.clone()));
        let (cid, block) = s.to_block();
        assert_eq!(block, bytes);
        assert_eq!(crate::block::verify(&cid, &block), Ok(()));
    }

    #[test]
    fn decode_rejects_oversize() {
        assert_eq!(
            SignedRelease::decode(&vec![0; MAX_RELEASE_SIZE + 1]),
            Err(ReleaseError::TooLarge {
                len: MAX_RELEASE_SIZE + 1
            })
        );
    }

    #[test]
    fn decode_rejects_garbage_trailing_and_non_canonical() {
        assert!(matches!(
            SignedRelease::decode(b"\xff"),
            Err(ReleaseError::Decode(_))
        ));
        let mut bytes = SignedRelease::sign(release(5), &[key(1)]).encode();
        bytes.push(0);
        assert!(matches!(
            SignedRelease::decode(&bytes),
            Err(ReleaseError::Decode(_))
        ));
        let mut bytes = SignedRelease::sign(release(5), &[key(1)]).encode();
        assert_eq!(bytes[0], 0xa2);
        bytes[0] = 0xa3;
        bytes.push(0x6b);
        bytes.extend_from_slice(b"zzzzzzzzzzz");
        bytes.push(0x00);
        assert_eq!(
            SignedRelease::decode(&bytes),
            Err(ReleaseError::Decode(
                "the bytes are not canonical DAG-CBOR".into()
            ))
        );
    }

    #[test]
    fn decode_rejects_bad_channel() {
        for bad in ["", "Prod", "a/b", &"a".repeat(MAX_CHANNEL_LEN + 1)] {
            let mut r = release(5);
            r.channel = bad.into();
            let bytes = SignedRelease::sign(r, &[]).encode();
            assert!(
                matches!(
                    SignedRelease::decode(&bytes),
                    Err(ReleaseError::BadChannelName { .. })
                ),
                "{bad:?}"
            );
        }
        assert!(is_valid_channel("prod-1.2_x"));
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let mut bytes = vec![0xa1, 0x61, b'x'];
        bytes.extend(std::iter::repeat_n(0x81, 60_000));
        bytes.push(0x00);
        assert!(matches!(
            SignedRelease::decode(&bytes),
            Err(ReleaseError::Decode(_))
        ));
    }

    #[test]
    fn decode_rejects_raw_root() {
        let mut r = release(5);
        r.root = cid_of(Codec::Raw, b"x");
        let bytes = SignedRelease::sign(r, &[]).encode();
        assert!(matches!(
            SignedRelease::decode(&bytes),
            Err(ReleaseError::Decode(_))
        ));
    }

    #[test]
    fn decode_rejects_too_many_signatures() {
        let keys: Vec<SigningKey> = (1..=17).map(key).collect();
        let bytes = SignedRelease::sign(release(5), &keys).encode();
        assert!(matches!(
            SignedRelease::decode(&bytes),
            Err(ReleaseError::Decode(_))
        ));
        let bytes = SignedRelease::sign(release(5), &keys[..16]).encode();
        assert!(SignedRelease::decode(&bytes).is_ok());
    }

    #[test]
    fn decode_rejects_short_key() {
        let s = SignedRelease::sign(release(5), &[key(1)]);
        let bytes = s.encode();
        // Replace the 32-byte key header (0x58 0x20) with a 31-byte one and drop a byte.
        let pos = bytes.windows(2).position(|w| w == [0x58, 0x20]).unwrap();
        let mut short = bytes[..pos].to_vec();
        short.extend_from_slice(&[0x58, 0x1f]);
        short.extend_from_slice(&bytes[pos + 3..]);
        assert!(matches!(
            SignedRelease::decode(&short),
            Err(ReleaseError::Decode(_))
        ));
    }

    #[test]
    fn hex_is_lowercase() {
        assert_eq!(to_hex(&[0x00, 0xab, 0xff]), "00abff");
    }

    #[test]
    fn high_water_round_trips() {
        let hw = HighWater {
            seq: 7,
            root: root(3),
        };
        let bytes = serde_ipld_dagcbor::to_vec(&hw).unwrap();
        let back: HighWater = serde_ipld_dagcbor::from_slice(&bytes).unwrap();
        assert_eq!(back, hw);
    }

    #[test]
    fn gossip_verdicts_penalise_attacks_but_not_races() {
        let hw = HighWater {
            seq: 5,
            root: root(1),
        };
        let v = |o: Result<Freshness, ReleaseError>| gossip_verdict(&o, Some(&hw));
        assert_eq!(v(Ok(Freshness::New)), GossipVerdict::Accept);
        assert_eq!(v(Ok(Freshness::Current)), GossipVerdict::Accept);
        let rollback = |seq| ReleaseError::Rollback { seq, high_water: 5 };
        assert_eq!(v(Err(rollback(4))), GossipVerdict::Ignore);
        assert_eq!(v(Err(rollback(2))), GossipVerdict::Reject);
        assert_eq!(
            v(Err(ReleaseError::NoTrustedSignature)),
            GossipVerdict::Reject
        );
        assert_eq!(
            v(Err(ReleaseError::Expired {
                expires_at: 1,
                now: 2
            })),
            GossipVerdict::Reject
        );
        assert_eq!(
            v(Err(ReleaseError::NotYetValid {
                issued_at: 9,
                now: 2
            })),
            GossipVerdict::Ignore
        );
    }
}
