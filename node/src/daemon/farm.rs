//! The farm-wide view: every node gossips a small summary of itself (release, booted, bytes
//! from the hub) on its channel's summary topic, and keeps the latest summary of each node it
//! hears, so any node's farm page can say how many nodes booted, on which release, and how
//! many hub bytes the farm spent against the release's size.
//!
//! Bounded: a summary is at most [`MAX_SUMMARY_SIZE`] bytes and carries only its author's own
//! facts (the author is gossipsub's signed source, so a node cannot speak for another); a
//! node keeps at most [`MAX_FARM_NODES`] summaries and forgets one not refreshed for three
//! periods; the period grows with the farm so that the whole farm publishes about
//! [`FARM_RATE`] summaries a second, plus one when a node's release or boot state changes.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use libp2p::gossipsub::IdentTopic;
use serde::{Deserialize, Serialize};

/// Largest summary accepted, in bytes.
pub(crate) const MAX_SUMMARY_SIZE: usize = 512;
/// Most nodes remembered; past it the one heard longest ago is forgotten.
pub(crate) const MAX_FARM_NODES: usize = 4096;
/// Nodes listed one by one in `/status` (the rest are only counted).
pub(crate) const MAX_LISTED: usize = 64;
/// Summaries the whole farm publishes per second, about.
const FARM_RATE: f64 = 5.0;
/// Shortest and longest period between a node's summaries.
const MIN_PERIOD: Duration = Duration::from_secs(10);
const MAX_PERIOD: Duration = Duration::from_secs(600);
/// Shortest gap between two summaries of one node (a change is published after it).
const MIN_GAP: Duration = Duration::from_secs(2);
/// Longest release root accepted (a CID in text is about 60 characters).
const MAX_ROOT: usize = 128;

/// The gossip topic of a channel's node summaries.
pub(crate) fn summary_topic(channel: &str) -> IdentTopic {
    IdentTopic::new(format!("bootswarm/summary/1/{channel}"))
}

/// What one node says about itself.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Summary {
    /// The seq of its release (0: none yet).
    pub(crate) seq: u64,
    /// Its release's root CID ("" before one).
    pub(crate) root: String,
    /// Booted (and installed, with a target).
    pub(crate) booted: bool,
    pub(crate) have_bytes: u64,
    /// The release's size as far as known (F once every manifest is held).
    pub(crate) total_bytes: u64,
    /// Bytes it fetched from the hub for this release.
    pub(crate) hub_bytes: u64,
    /// Bytes it received from peers since it started.
    pub(crate) peer_bytes: u64,
    /// Bytes it served to peers since it started.
    pub(crate) served_bytes: u64,
}

impl Summary {
    /// The wire form (JSON).
    pub(crate) fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Decodes a summary, refusing anything oversized or malformed.
    pub(crate) fn decode(bytes: &[u8]) -> Option<Summary> {
        if bytes.len() > MAX_SUMMARY_SIZE {
            return None;
        }
        let s: Summary = serde_json::from_slice(bytes).ok()?;
        (s.root.len() <= MAX_ROOT).then_some(s)
    }
}

/// One node of the farm as listed in `/status`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub(crate) struct FarmNode {
    pub(crate) peer_id: String,
    /// This node itself.
    pub(crate) me: bool,
    /// Seconds since its summary was heard.
    pub(crate) age_secs: u64,
    #[serde(flatten)]
    pub(crate) summary: Summary,
}

/// What the farm's nodes report, as `/status` shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub(crate) struct FarmView {
    /// Nodes heard from (this one included).
    pub(crate) nodes: u64,
    /// The newest release seq any node reports.
    pub(crate) newest_seq: u64,
    /// Nodes booted on that release.
    pub(crate) booted: u64,
    /// Nodes per release seq.
    pub(crate) releases: BTreeMap<u64, u64>,
    /// Hub bytes the nodes on the newest release spent on it.
    pub(crate) hub_bytes: u64,
    /// F: the newest release's size, as its booted nodes report it.
    pub(crate) release_bytes: u64,
    /// Seconds between a node's summaries at this farm size.
    pub(crate) period_secs: u64,
    /// The first [`MAX_LISTED`] nodes: this one, then by peer id.
    pub(crate) list: Vec<FarmNode>,
}

struct Heard {
    summary: Summary,
    at: Instant,
}

/// The summaries heard, and when this node last published its own.
#[derive(Default)]
pub(crate) struct Farm {
    nodes: BTreeMap<String, Heard>,
    published: Option<(Instant, Summary)>,
}

impl Farm {
    /// The period between one node's summaries for a farm of the size heard so far.
    pub(crate) fn period(&self) -> Duration {
        let secs = (self.nodes.len() + 1) as f64 / FARM_RATE;
        Duration::from_secs_f64(secs).clamp(MIN_PERIOD, MAX_PERIOD)
    }

    /// A summary gossiped by `author`.
    pub(crate) fn heard(&mut self, author: String, summary: Summary, now: Instant) {
        if !self.nodes.contains_key(&author)
            && self.nodes.len() >= MAX_FARM_NODES
            && let Some(oldest) = self
                .nodes
                .iter()
                .min_by_key(|(_, h)| h.at)
                .map(|(k, _)| k.clone())
        {
            self.nodes.remove(&oldest);
        }
        self.nodes.insert(author, Heard { summary, at: now });
    }

    /// Forgets nodes not heard for three periods.
    pub(crate) fn expire(&mut self, now: Instant) {
        let keep = self.period() * 3;
        self.nodes
            .retain(|_, h| now.saturating_duration_since(h.at) <= keep);
    }

    /// Whether to publish `mine` now: once a period, and after a change of release or boot
    /// state (at most one per [`MIN_GAP`]).
    pub(crate) fn due(&self, mine: &Summary, now: Instant) -> bool {
        match &self.published {
            None => true,
            Some((at, last)) => {
                let since = now.saturating_duration_since(*at);
                let changed =
                    (last.seq, &last.root, last.booted) != (mine.seq, &mine.root, mine.booted);
                since >= self.period() || (changed && since >= MIN_GAP)
            }
        }
    }

    /// `mine` was published at `now`.
    pub(crate) fn sent(&mut self, mine: &Summary, now: Instant) {
        self.published = Some((now, mine.clone()));
    }

    /// The farm as this node (`me`, saying `mine`) sees it.
    pub(crate) fn view(&self, me: &str, mine: &Summary, now: Instant) -> FarmView {
        let all = || {
            std::iter::once((me, mine, 0)).chain(
                self.nodes
                    .iter()
                    .filter(|(id, _)| id.as_str() != me)
                    .map(|(id, h)| {
                        let age = now.saturating_duration_since(h.at).as_secs();
                        (id.as_str(), &h.summary, age)
                    }),
            )
        };
        let mut v = FarmView {
            period_secs: self.period().as_secs(),
            ..FarmView::default()
        };
        for (_, s, _) in all() {
            v.nodes += 1;
            v.newest_seq = v.newest_seq.max(s.seq);
            if s.seq > 0 {
                *v.releases.entry(s.seq).or_insert(0) += 1;
            }
        }
        for (_, s, _) in all().filter(|(_, s, _)| s.seq == v.newest_seq && s.seq > 0) {
            v.hub_bytes = v.hub_bytes.saturating_add(s.hub_bytes);
            if s.booted {
                v.booted += 1;
                v.release_bytes = v.release_bytes.max(s.total_bytes);
            }
        }
        v.list = all()
            .take(MAX_LISTED)
            .map(|(id, s, age)| FarmNode {
                peer_id: id.to_string(),
                me: id == me,
                age_secs: age,
                summary: s.clone(),
            })
            .collect();
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(seq: u64, booted: bool, hub: u64) -> Summary {
        Summary {
            seq,
            root: format!("bafy{seq}"),
            booted,
            have_bytes: 100,
            total_bytes: 100,
            hub_bytes: hub,
            ..Summary::default()
        }
    }

    #[test]
    fn decoding_refuses_oversized_and_malformed_summaries() {
        let s = summary(3, true, 40);
        assert_eq!(Summary::decode(&s.encode()), Some(s));
        assert_eq!(Summary::decode(b"{\"seq\":1}"), None);
        assert_eq!(Summary::decode(b"not json"), None);
        assert_eq!(Summary::decode(&vec![b' '; MAX_SUMMARY_SIZE + 1]), None);
        let mut long = summary(1, false, 0);
        long.root = "x".repeat(MAX_ROOT + 1);
        assert_eq!(Summary::decode(&long.encode()), None);
    }

    #[test]
    fn the_view_counts_booted_nodes_on_the_newest_release_and_their_hub_bytes() {
        let t0 = Instant::now();
        let mut farm = Farm::default();
        farm.heard("b".into(), summary(2, true, 30), t0);
        farm.heard("c".into(), summary(2, false, 10), t0);
        farm.heard("d".into(), summary(1, true, 99), t0);
        farm.heard("me".into(), summary(9, true, 0), t0);
        let v = farm.view("me", &summary(2, true, 60), t0);
        assert_eq!(v.nodes, 4);
        assert_eq!(v.newest_seq, 2);
        assert_eq!(v.booted, 2);
        assert_eq!(v.releases, BTreeMap::from([(1, 1), (2, 3)]));
        assert_eq!(v.hub_bytes, 100);
        assert_eq!(v.release_bytes, 100);
        assert!(v.list[0].me);
        assert_eq!(v.list.len(), 4);
        farm.heard("e".into(), summary(2, true, u64::MAX), t0);
        let v = farm.view("me", &summary(2, true, 60), t0);
        assert_eq!(
            v.hub_bytes,
            u64::MAX,
            "a peer's figures cannot overflow the sum"
        );
    }

    #[test]
    fn the_table_is_bounded_and_forgets_silent_nodes() {
        let t0 = Instant::now();
        let mut farm = Farm::default();
        for i in 0..MAX_FARM_NODES + 10 {
            let at = t0 + Duration::from_millis(i as u64);
            farm.heard(format!("n{i:05}"), summary(1, true, 1), at);
        }
        assert_eq!(farm.nodes.len(), MAX_FARM_NODES);
        assert!(!farm.nodes.contains_key("n00000"));
        let v = farm.view("me", &Summary::default(), t0);
        assert_eq!(v.list.len(), MAX_LISTED);
        let late = t0 + farm.period() * 3 + Duration::from_secs(60);
        farm.heard("fresh".into(), summary(1, true, 1), late);
        farm.expire(late);
        assert_eq!(farm.nodes.len(), 1);
    }

    #[test]
    fn a_node_publishes_once_a_period_and_after_a_change() {
        let t0 = Instant::now();
        let mut farm = Farm::default();
        let s = summary(1, false, 0);
        assert!(farm.due(&s, t0));
        assert!(farm.due(&s, t0 + Duration::from_secs(1)), "not sent yet");
        farm.sent(&s, t0);
        assert!(!farm.due(&s, t0 + Duration::from_secs(1)));
        let booted = summary(1, true, 0);
        assert!(!farm.due(&booted, t0 + Duration::from_secs(1)));
        assert!(farm.due(&booted, t0 + MIN_GAP));
        farm.sent(&booted, t0 + MIN_GAP);
        assert!(!farm.due(&booted, t0 + MIN_GAP + Duration::from_secs(1)));
        assert!(farm.due(&booted, t0 + MIN_GAP + MIN_PERIOD));
    }

    #[test]
    fn the_period_grows_with_the_farm() {
        let mut farm = Farm::default();
        assert_eq!(farm.period(), MIN_PERIOD);
        let t0 = Instant::now();
        for i in 0..1000 {
            farm.heard(format!("n{i}"), Summary::default(), t0);
        }
        assert_eq!(farm.period().as_secs(), 200);
    }
}
