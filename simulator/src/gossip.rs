//! Releases on gossip: real signed releases under a real trust root, and a gossipsub-like
//! mesh with a duplicate cache. What a node does with a release it hears is the release
//! follower's decision, the same code the node runs.

use crate::release::SimRelease;
use crate::rng::{Rng, mix, splitmix64};
use crate::scenario::Injection;
use bootswarm_protocol::block::{Cid, Codec, cid_of};
use bootswarm_protocol::release::{Release, SignedRelease, TrustRoot};
use ed25519_dalek::SigningKey;
use std::collections::BTreeSet;

/// The channel every simulated node follows.
pub const CHANNEL: &str = "sim";
/// Unix time of simulated time zero (release expiry is checked against it).
pub const EPOCH_UNIX: u64 = 1_700_000_000;
/// Mesh links each node opens (the mesh is undirected, so degrees average twice this).
pub const MESH_PICKS: usize = 3;
/// Time to check a release's signature before forwarding it (ns).
pub const VALIDATE_NANOS: u64 = 100_000;
/// Sequence number of the first release; the published one is the next.
pub const FIRST_SEQ: u64 = 10;
const DAY: u64 = 86_400;

/// What a gossiped release is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The release every node starts with.
    First,
    /// The release published during the run.
    Published,
    /// A bad release injected by a peer.
    Attack(Injection),
}

/// A release as it travels.
#[derive(Debug, Clone)]
pub struct Announcement {
    /// What it is.
    pub kind: Kind,
    /// The signed release.
    pub signed: SignedRelease,
    /// Its encoding, as it travels.
    pub bytes: Vec<u8>,
}

/// The gossip layer of a run.
#[derive(Debug)]
pub struct Gossip {
    trust: TrustRoot,
    /// Index 0: the first release; 1: the published one (if any); then injections.
    pub announcements: Vec<Announcement>,
    /// Each node's mesh peers.
    pub mesh: Vec<Vec<u32>>,
    /// The floods each node has seen (gossipsub's duplicate cache).
    seen: Vec<BTreeSet<u32>>,
    /// Who published each flood (gossipsub's signed author), by flood number.
    authors: Vec<u32>,
}

fn key(seed: u64, which: u64) -> SigningKey {
    let mut s = mix(&[seed, which, 0x006b_6579]);
    let mut bytes = [0u8; 32];
    for chunk in bytes.chunks_mut(8) {
        chunk.copy_from_slice(&splitmix64(&mut s).to_le_bytes());
    }
    SigningKey::from_bytes(&bytes)
}

fn announcement(kind: Kind, release: Release, key: &SigningKey) -> Announcement {
    let signed = SignedRelease::sign(release, std::slice::from_ref(key));
    let bytes = signed.encode();
    Announcement {
        kind,
        signed,
        bytes,
    }
}

impl Gossip {
    /// The gossip layer for `nodes` nodes following `rel` (and its next version, if any), with
    /// one announcement per injection.
    pub fn new(seed: u64, nodes: u32, rel: &SimRelease, injections: &[Injection]) -> Gossip {
        let publisher = key(seed, 1);
        let attacker = key(seed, 2);
        let trust = TrustRoot::new(vec![publisher.verifying_key()], 1)
            .unwrap_or_else(|e| unreachable!("one fresh key is a valid trust root: {e}"));
        let release = |channel: &str, seq: u64, root: Cid, issued: u64, expires: u64| Release {
            channel: channel.into(),
            seq,
            root,
            issued_at: issued,
            expires_at: expires,
        };
        let (now, later) = (EPOCH_UNIX - 60, EPOCH_UNIX + 30 * DAY);
        let mut announcements = vec![announcement(
            Kind::First,
            release(CHANNEL, FIRST_SEQ, rel.root, now, later),
            &publisher,
        )];
        if let Some(v2) = &rel.v2 {
            announcements.push(announcement(
                Kind::Published,
                release(CHANNEL, FIRST_SEQ + 1, v2.root, now, later),
                &publisher,
            ));
        }
        for &inj in injections {
            let fake = cid_of(Codec::DagCbor, format!("{inj:?}").as_bytes());
            let (r, k) = match inj {
                Injection::Forged => (release(CHANNEL, FIRST_SEQ + 5, fake, now, later), &attacker),
                Injection::Replayed => (
                    release(CHANNEL, FIRST_SEQ - 1, fake, now - 40 * DAY, now - 10 * DAY),
                    &publisher,
                ),
                Injection::Rollback => (
                    release(CHANNEL, FIRST_SEQ - 5, fake, now, later),
                    &publisher,
                ),
                Injection::OtherChannel => (
                    release("other", FIRST_SEQ + 5, fake, now, later),
                    &publisher,
                ),
            };
            announcements.push(announcement(Kind::Attack(inj), r, k));
        }
        let mut rng = Rng::new(mix(&[seed, 0x6d65_7368]));
        let mut mesh = vec![Vec::new(); nodes as usize];
        for a in 0..nodes {
            for _ in 0..MESH_PICKS.min(nodes.saturating_sub(1) as usize) {
                let mut b = rng.below(u64::from(nodes)) as u32;
                if b == a {
                    b = (b + 1) % nodes;
                }
                if !mesh[a as usize].contains(&b) {
                    mesh[a as usize].push(b);
                    mesh[b as usize].push(a);
                }
            }
        }
        for m in &mut mesh {
            m.sort_unstable();
            m.dedup();
        }
        Gossip {
            trust,
            announcements,
            mesh,
            seen: vec![BTreeSet::new(); nodes as usize],
            authors: Vec::new(),
        }
    }

    /// A new flood: one publication by `author` travelling the mesh.
    pub fn new_flood(&mut self, author: u32) -> u32 {
        self.authors.push(author);
        self.authors.len() as u32
    }

    /// Who published `flood`.
    pub fn author(&self, flood: u32) -> Option<u32> {
        self.authors.get((flood as usize).checked_sub(1)?).copied()
    }

    /// Records that `node` saw `flood`; false if it had already (gossipsub's duplicate cache).
    pub fn first_sight(&mut self, node: u32, flood: u32) -> bool {
        self.seen[node as usize].insert(flood)
    }

    /// A restarted node forgets what it saw.
    pub fn restart(&mut self, node: u32) {
        self.seen[node as usize].clear();
    }

    /// The publishers' keys every node trusts.
    pub fn trust(&self) -> &TrustRoot {
        &self.trust
    }

    /// The announcement these bytes encode, if any.
    pub fn index_of(&self, bytes: &[u8]) -> Option<usize> {
        self.announcements.iter().position(|a| a.bytes == bytes)
    }

    /// The announcement of a kind.
    pub fn find(&self, kind: Kind) -> Option<usize> {
        self.announcements.iter().position(|a| a.kind == kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bootswarm_protocol::agent::Time;
    use bootswarm_protocol::follower::{
        Follower, FollowerConfig, Input, Output, Restored, Verdict, Via,
    };
    use bootswarm_protocol::release::HighWater;

    #[test]
    fn honest_releases_pass_and_every_injection_is_rejected_by_the_follower() {
        let rel = SimRelease::build_with_upgrade(3, 4, 8 << 20, Some((1, 0.1))).unwrap();
        let inj = [
            Injection::Forged,
            Injection::Replayed,
            Injection::Rollback,
            Injection::OtherChannel,
        ];
        let mut g = Gossip::new(3, 10, &rel, &inj);
        let first = &g.announcements[0];
        let restored = Restored {
            high_water: Some(HighWater {
                seq: first.signed.release.seq,
                root: first.signed.release.root,
            }),
            release: Some(first.bytes.clone()),
            ..Restored::default()
        };
        let cfg = FollowerConfig {
            poll_interval: None,
            ..FollowerConfig::new(CHANNEL, g.trust().clone())
        };
        let mut f = Follower::new(cfg, restored, Time::ZERO, EPOCH_UNIX);
        while f.poll_output().is_some() {}
        let judge = |f: &mut Follower, idx: usize| {
            f.handle(
                Time::ZERO,
                EPOCH_UNIX,
                Input::Release {
                    bytes: g.announcements[idx].bytes.clone(),
                    via: Via::Gossip,
                    author: None,
                    ticket: 0,
                },
            );
            std::iter::from_fn(|| f.poll_output())
                .find_map(|o| match o {
                    Output::Judged { verdict, .. } => Some(verdict),
                    _ => None,
                })
                .unwrap()
        };
        assert_eq!(judge(&mut f, 0), Verdict::Current(FIRST_SEQ));
        for i in 2..6 {
            assert!(
                matches!(judge(&mut f, i), Verdict::Rejected { .. }),
                "{:?}",
                g.announcements[i].kind
            );
        }
        assert_eq!(judge(&mut f, 1), Verdict::New(FIRST_SEQ + 1), "published");
        assert_eq!(g.index_of(&g.announcements[1].bytes.clone()), Some(1));
        assert!(g.mesh.iter().all(|m| !m.is_empty()));
        assert!(g.first_sight(1, 7) && !g.first_sight(1, 7));
        let flood = g.new_flood(4);
        assert_eq!(g.author(flood), Some(4));
        assert_eq!(g.author(flood + 1), None);
        g.restart(1);
        assert!(g.first_sight(1, 7));
    }
}
