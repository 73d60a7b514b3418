//! The racks part: which members share this node's rack, and when a chunk held only in other
//! racks may be fetched across the rack's uplink.
//!
//! The nodes of a rack share one top-of-rack uplink, usually oversubscribed, so each block
//! should cross it about once. A node that knows its rack picks most of its neighbours in it
//! (and `cross_rack_neighbours` outside it), asks holders in it first, and fetches a chunk
//! that only other racks hold only when its turn comes: the member of the rack that ranks
//! first for the chunk (rendezvous over the members that said they are in this rack) at once,
//! the next `rack_step` later, and so on up to [`RANK_CAP`]. The others wait for a holder in
//! the rack to appear, which is usually the first one's copy.
//!
//! A turn is a guess made before anyone knows how long a crossing takes; on a busy uplink
//! the turns run out before the first copy lands. So a member that starts fetching a chunk
//! across (or from the hub) says so, and the rack relays it once: a member that heard of a
//! crossing waits for that copy a crossing's time (`wait`, from this node's own deliveries)
//! past its turn, but at most [`CROSSING_ROUNDS`] × `wait` after it first heard of one.
//!
//! A member's rack is its claim (the driver's configuration, or its `Hello`). A false claim
//! orders picks and delays a crossing by at most (`RANK_CAP` − 1) × `rack_step`; it cannot
//! keep a block from a node for longer.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use super::owners::score;
use super::{AgentConfig, NodeId, Time, mix64};

/// Ranks in a rack are counted up to here: the last waits `(RANK_CAP - 1) × rack_step`.
const RANK_CAP: u32 = 8;
/// Members of this node's rack remembered; claims beyond it are ignored.
const LOCAL_CAP: usize = 4096;
/// Crossings heard make a chunk wait at most this many crossing times after the first.
const CROSSING_ROUNDS: u32 = 3;

/// A rack (or any failure and bandwidth domain sharing one uplink): a stable hash of its label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Rack(pub u64);

impl Rack {
    /// The rack named `label` (every node must hash a label the same way); `None` for an empty
    /// label.
    pub fn from_label(label: &str) -> Option<Rack> {
        if label.is_empty() {
            return None;
        }
        // FNV-1a, then mixed: stable across versions and platforms.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for &b in label.as_bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        Some(Rack(mix64(h)))
    }
}

impl fmt::Display for Rack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "rack {:016x}", self.0)
    }
}

#[derive(Debug)]
pub(super) struct Racks {
    me: NodeId,
    mine: Option<Rack>,
    step: Duration,
    /// Nodes that said they are in this node's rack (at most [`LOCAL_CAP`]), sorted: asked
    /// for every holder and neighbour, and changed only by claims.
    local: Vec<NodeId>,
    /// Per chunk that only other racks held when this node first wanted it: when it may cross.
    cross_at: BTreeMap<u32, Time>,
    /// Per chunk a member of the rack is bringing across: when this node first heard of it,
    /// and until when it waits for that copy.
    crossing: BTreeMap<u32, (Time, Time)>,
}

impl Racks {
    pub(super) fn new(cfg: &AgentConfig) -> Self {
        Racks {
            me: cfg.id,
            mine: cfg.rack,
            step: cfg.rack_step,
            local: Vec::new(),
            cross_at: BTreeMap::new(),
            crossing: BTreeMap::new(),
        }
    }

    /// Whether this node knows its rack (otherwise every peer counts as remote and nothing
    /// waits).
    pub(super) fn placed(&self) -> bool {
        self.mine.is_some()
    }

    /// `id` says it is in `rack` (`None`: it does not say).
    pub(super) fn claim(&mut self, id: NodeId, rack: Option<Rack>) {
        if id == self.me {
            return;
        }
        match self.local.binary_search(&id) {
            Err(at) if self.mine.is_some() && rack == self.mine && self.local.len() < LOCAL_CAP => {
                self.local.insert(at, id);
            }
            Ok(at) if rack != self.mine => {
                self.local.remove(at);
            }
            _ => {}
        }
    }

    /// `id` left or was banned.
    pub(super) fn forget(&mut self, id: NodeId) {
        if let Ok(at) = self.local.binary_search(&id) {
            self.local.remove(at);
        }
    }

    /// Whether `id` said it is in this node's rack.
    pub(super) fn is_local(&self, id: NodeId) -> bool {
        self.mine.is_some() && self.local.binary_search(&id).is_ok()
    }

    /// The nodes that said they are in this node's rack, sorted.
    pub(super) fn local(&self) -> &[NodeId] {
        &self.local
    }

    /// A new release: every chunk waits its turn again.
    pub(super) fn restart(&mut self) {
        self.cross_at.clear();
        self.crossing.clear();
    }

    /// Block `idx` is being fetched across the uplink by a member of this rack (this node:
    /// `wait` zero): it waits for that copy until `now + wait`, and no later than
    /// [`CROSSING_ROUNDS`] × `wait` after the first crossing heard. True if no crossing of it
    /// was known (the news is worth passing on).
    pub(super) fn crossing(&mut self, idx: u32, now: Time, wait: Duration) -> bool {
        if self.mine.is_none() {
            return false;
        }
        match self.crossing.get_mut(&idx) {
            Some((first, until)) => {
                *until = (*until).max((now + wait).min(*first + wait * CROSSING_ROUNDS));
                false
            }
            None => {
                self.crossing.insert(idx, (now, now + wait));
                true
            }
        }
    }

    /// Until when block `idx` waits for a copy a member of the rack is bringing across.
    pub(super) fn crossing_until(&self, idx: u32) -> Option<Time> {
        self.crossing.get(&idx).map(|&(_, until)| until)
    }

    /// When block `idx` (rendezvous `key`) may be fetched from another rack: now for the
    /// member of this rack ranked first among `members` (sorted), one `rack_step` later per
    /// rank below. Fixed the first time it is asked.
    pub(super) fn cross_at(&mut self, idx: u32, key: u64, members: &[NodeId], now: Time) -> Time {
        if self.mine.is_none() {
            return now;
        }
        if let Some(&at) = self.cross_at.get(&idx) {
            return at;
        }
        let mine = score(self.me, key);
        let mut rank = 1;
        for &m in &self.local {
            if members.binary_search(&m).is_ok() && score(m, key) > mine {
                rank += 1;
                if rank == RANK_CAP {
                    break;
                }
            }
        }
        let at = now + self.step * (rank - 1);
        self.cross_at.insert(idx, at);
        at
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn racks(id: u64, rack: Option<&str>) -> Racks {
        let cfg = AgentConfig {
            id: NodeId(id),
            rack: rack.and_then(Rack::from_label),
            ..AgentConfig::default()
        };
        Racks::new(&cfg)
    }

    #[test]
    fn labels_hash_stably_and_empty_is_none() {
        assert_eq!(Rack::from_label("r1"), Rack::from_label("r1"));
        assert_ne!(Rack::from_label("r1"), Rack::from_label("r2"));
        assert_eq!(Rack::from_label(""), None);
    }

    #[test]
    fn only_claims_of_this_rack_are_local_and_a_node_without_a_rack_has_none() {
        let mut r = racks(1, Some("a"));
        r.claim(NodeId(2), Rack::from_label("a"));
        r.claim(NodeId(3), Rack::from_label("b"));
        r.claim(NodeId(1), Rack::from_label("a"));
        assert!(r.is_local(NodeId(2)) && !r.is_local(NodeId(3)) && !r.is_local(NodeId(1)));
        r.claim(NodeId(2), None);
        assert!(!r.is_local(NodeId(2)), "a claim can be withdrawn");
        let mut flat = racks(1, None);
        flat.claim(NodeId(2), None);
        assert!(!flat.placed() && !flat.is_local(NodeId(2)));
        assert_eq!(flat.cross_at(0, 7, &[NodeId(2)], Time::ZERO), Time::ZERO);
    }

    #[test]
    fn each_block_crosses_first_at_one_member_of_the_rack_and_the_rest_wait_their_rank() {
        let members: Vec<NodeId> = (1..=12).map(NodeId).collect();
        let label = Some("a");
        let step = AgentConfig::default().rack_step;
        for key in 0..50u64 {
            let mut waits: Vec<Duration> = members
                .iter()
                .map(|&me| {
                    let mut r = racks(me.0, label);
                    for &m in &members {
                        r.claim(m, label.and_then(Rack::from_label));
                    }
                    let at = r.cross_at(0, key, &members, Time::ZERO);
                    assert_eq!(r.cross_at(0, key, &[], Time::MAX), at, "fixed once asked");
                    at.saturating_duration_since(Time::ZERO)
                })
                .collect();
            waits.sort();
            assert_eq!(waits[0], Duration::ZERO, "key {key}");
            assert_eq!(waits[1], step, "key {key}: one member first");
            assert_eq!(*waits.last().unwrap(), step * (RANK_CAP - 1), "capped");
        }
        // A member that left no longer outranks anyone.
        let mut r = racks(5, label);
        r.claim(NodeId(6), Rack::from_label("a"));
        let at = r.cross_at(1, 3, &[], Time::ZERO);
        assert_eq!(at, Time::ZERO);
    }

    #[test]
    fn a_crossing_heard_holds_the_chunk_back_for_a_bounded_time_and_is_passed_on_once() {
        let s = |n: u64| Time::ZERO + Duration::from_secs(n);
        let wait = Duration::from_secs(2);
        let mut r = racks(1, Some("a"));
        assert!(r.crossing(4, s(10), wait), "news worth passing on");
        assert_eq!(r.crossing_until(4), Some(s(12)));
        assert!(!r.crossing(4, s(11), wait), "passed on once");
        assert_eq!(r.crossing_until(4), Some(s(13)));
        // Repeated news (a liar's too) holds it back at most CROSSING_ROUNDS waits.
        for n in 12..40 {
            r.crossing(4, s(n), wait);
        }
        assert_eq!(r.crossing_until(4), Some(s(10) + wait * CROSSING_ROUNDS));
        r.restart();
        assert_eq!(r.crossing_until(4), None);
        let mut flat = racks(1, None);
        assert!(!flat.crossing(4, s(10), wait));
        assert_eq!(flat.crossing_until(4), None);
    }
}
