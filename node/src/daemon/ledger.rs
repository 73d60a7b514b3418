//! Who served what and what happened lately, for `/status` and the farm page: bytes in and out
//! by peer, the peer table, the last refusals and the last hook runs. Everything is bounded.

use std::collections::{BTreeMap, VecDeque};

use serde::Serialize;

use super::status::MAX_PEER_LABELS;

/// Peers listed in `/status` (the busiest first); the rest are only in the per-peer totals.
pub(crate) const MAX_PEER_ROWS: usize = 32;
/// Refusals and hook runs kept, the newest last.
pub(crate) const RECENT: usize = 16;
/// Longest reason or hook output kept, in bytes.
const MAX_DETAIL: usize = 300;

/// One line of the peer table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub(crate) struct PeerRow {
    /// The peer id ("other" sums the peers past the label cap).
    pub(crate) peer_id: String,
    /// Connected now.
    pub(crate) connected: bool,
    /// One of the agent's neighbours (it exchanges announcements with us).
    pub(crate) neighbour: bool,
    /// Banned for repeated faults.
    pub(crate) banned: bool,
    /// Why it was banned or penalised, one phrase.
    pub(crate) why: Option<String>,
    /// Block bytes received from it.
    pub(crate) bytes_in: u64,
    /// Block bytes served to it.
    pub(crate) bytes_out: u64,
    /// Penalties given to it.
    pub(crate) penalties: u64,
    /// Blocks from it that failed verification.
    pub(crate) rejected: u64,
}

/// A release this node refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Refusal {
    /// Unix seconds.
    pub(crate) at: u64,
    /// Where it came from (gossip, hub, peer, operator).
    pub(crate) via: String,
    /// The refusal kind (`bad_signature`, `rollback`, ...).
    pub(crate) kind: String,
    /// One sentence.
    pub(crate) reason: String,
}

/// One run of the change hooks or the health check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct HookRun {
    /// Unix seconds when it ended.
    pub(crate) at: u64,
    /// The release seq it ran for.
    pub(crate) seq: u64,
    /// `upgrade`, `rollback` (the change hooks) or `health-check`.
    pub(crate) what: String,
    /// The packages the change hooks ran for.
    pub(crate) packages: Vec<String>,
    pub(crate) ok: bool,
    /// The failure, one sentence.
    pub(crate) error: Option<String>,
}

/// A string cut to at most `MAX_DETAIL` bytes on a character boundary.
fn clip(s: &str) -> String {
    if s.len() <= MAX_DETAIL {
        return s.to_string();
    }
    let mut end = MAX_DETAIL;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// Pushes onto a ring of at most `RECENT` entries.
fn push_recent<T>(ring: &mut VecDeque<T>, item: T) {
    if ring.len() >= RECENT {
        ring.pop_front();
    }
    ring.push_back(item);
}

/// The label a peer is counted under: its id, or "other" past the cap.
pub(crate) fn capped_label(map: &BTreeMap<String, u64>, peer: String) -> String {
    if map.len() >= MAX_PEER_LABELS && !map.contains_key(&peer) {
        "other".to_string()
    } else {
        peer
    }
}

/// Adds `n` to the peer's entry, folding peers past the cap into "other".
pub(crate) fn add_bytes(map: &mut BTreeMap<String, u64>, peer: String, n: u64) {
    let label = capped_label(map, peer);
    *map.entry(label).or_insert(0) += n;
}

/// Records a refusal.
pub(crate) fn record_refusal(
    ring: &mut VecDeque<Refusal>,
    at: u64,
    via: &str,
    kind: &str,
    reason: &str,
) {
    push_recent(
        ring,
        Refusal {
            at,
            via: via.to_string(),
            kind: kind.to_string(),
            reason: clip(reason),
        },
    );
}

/// Records a hook run.
pub(crate) fn record_hook(ring: &mut VecDeque<HookRun>, mut run: HookRun) {
    run.error = run.error.as_deref().map(clip);
    run.packages.truncate(RECENT);
    push_recent(ring, run);
}

/// What the peer table is built from.
pub(crate) struct PeerFacts<'a> {
    pub(crate) bytes_in: &'a BTreeMap<String, u64>,
    pub(crate) bytes_out: &'a BTreeMap<String, u64>,
    pub(crate) penalties: &'a BTreeMap<String, u64>,
    pub(crate) rejected: &'a BTreeMap<String, u64>,
    pub(crate) banned: &'a [String],
    /// Connected peers, each with whether it is a neighbour.
    pub(crate) connected: &'a [(String, bool)],
}

/// The peer table: every peer any fact names, the busiest (bytes in + out) first, then
/// connected ones, at most [`MAX_PEER_ROWS`].
pub(crate) fn peer_rows(f: &PeerFacts<'_>) -> Vec<PeerRow> {
    let mut rows: BTreeMap<String, PeerRow> = BTreeMap::new();
    for (id, n) in f.bytes_in {
        row(&mut rows, id).bytes_in = *n;
    }
    for (id, n) in f.bytes_out {
        row(&mut rows, id).bytes_out = *n;
    }
    for (id, n) in f.penalties {
        row(&mut rows, id).penalties = *n;
    }
    for (id, n) in f.rejected.iter().filter(|(id, _)| *id != "hub") {
        row(&mut rows, id).rejected = *n;
    }
    for (id, neighbour) in f.connected {
        let r = row(&mut rows, id);
        r.connected = true;
        r.neighbour = *neighbour;
    }
    for id in f.banned {
        row(&mut rows, id).banned = true;
    }
    let mut rows: Vec<PeerRow> = rows.into_values().collect();
    for r in &mut rows {
        r.why = why(r);
    }
    let key = |r: &PeerRow| {
        (
            r.bytes_in.saturating_add(r.bytes_out),
            r.connected,
            r.banned,
        )
    };
    rows.sort_by_key(|r| std::cmp::Reverse(key(r)));
    rows.truncate(MAX_PEER_ROWS);
    rows
}

fn row<'a>(rows: &'a mut BTreeMap<String, PeerRow>, id: &str) -> &'a mut PeerRow {
    rows.entry(id.to_string()).or_insert_with(|| PeerRow {
        peer_id: id.to_string(),
        ..PeerRow::default()
    })
}

fn why(r: &PeerRow) -> Option<String> {
    if r.penalties == 0 && r.rejected == 0 {
        return r.banned.then(|| "banned".to_string());
    }
    let what = format!(
        "{} corrupt block(s), {} penalt{}",
        r.rejected,
        r.penalties,
        if r.penalties == 1 { "y" } else { "ies" }
    );
    Some(if r.banned {
        format!("banned after {what}")
    } else {
        what
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rings_keep_the_newest_and_clip_long_text() {
        let mut ring = VecDeque::new();
        for i in 0..40 {
            record_refusal(&mut ring, i, "gossip", "rollback", &"x".repeat(1000));
        }
        assert_eq!(ring.len(), RECENT);
        assert_eq!(ring.front().map(|r| r.at), Some(40 - RECENT as u64));
        assert!(ring.iter().all(|r| r.reason.len() <= MAX_DETAIL + 3));
    }

    #[test]
    fn the_peer_table_is_bounded_and_busiest_first() {
        let mut bytes_in = BTreeMap::new();
        for i in 0..100u64 {
            add_bytes(&mut bytes_in, format!("p{i:03}"), i);
        }
        let penalties = BTreeMap::from([("p001".to_string(), 3)]);
        let rejected = BTreeMap::from([("p001".to_string(), 1), ("hub".to_string(), 1)]);
        let banned = vec!["p001".to_string()];
        let connected = vec![("p099".to_string(), true), ("zz".to_string(), false)];
        let empty = BTreeMap::new();
        let rows = peer_rows(&PeerFacts {
            bytes_in: &bytes_in,
            bytes_out: &empty,
            penalties: &penalties,
            rejected: &rejected,
            banned: &banned,
            connected: &connected,
        });
        assert_eq!(rows.len(), MAX_PEER_ROWS);
        assert_eq!(rows[0].peer_id, "p099");
        assert!(rows[0].connected && rows[0].neighbour);
        assert!(rows.iter().all(|r| r.peer_id != "hub"));
        let mut full = BTreeMap::new();
        for i in 0..(MAX_PEER_LABELS as u64 + 10) {
            add_bytes(&mut full, format!("q{i}"), 1);
        }
        assert_eq!(full.len(), MAX_PEER_LABELS + 1);
        assert_eq!(full["other"], 10);
    }

    #[test]
    fn a_banned_peer_says_why() {
        let r = PeerRow {
            banned: true,
            rejected: 3,
            penalties: 3,
            ..PeerRow::default()
        };
        assert_eq!(
            why(&r).as_deref(),
            Some("banned after 3 corrupt block(s), 3 penalties")
        );
    }
}
