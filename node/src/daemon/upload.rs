//! `--upload-rate`: a token bucket over the bytes served to peers, releasing the responses
//! ready to go one peer at a time in turn, so a peer with many requests waits its turn
//! behind a peer with one.
//!
//! The bucket holds at most [`BURST`] of credit and may go into debt by one response: a
//! response leaves when the credit is not negative and takes its length off it. Over any
//! span the bytes released are at most the rate times the span plus the burst and one block.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

/// Most credit saved while idle.
const BURST: Duration = Duration::from_millis(100);

/// Responses ready to go, paced to a rate and taken from each peer in turn.
#[derive(Debug)]
pub(crate) struct Pacer<K, T> {
    /// Bytes per second.
    rate: u64,
    /// Credit in bytes (negative: debt).
    credit: f64,
    at: Instant,
    queues: BTreeMap<K, VecDeque<(u64, T)>>,
    /// Peers with responses waiting, the next to go first.
    turn: VecDeque<K>,
    queued: u64,
}

impl<K: Ord + Clone, T> Pacer<K, T> {
    /// A pacer at `rate` bytes per second (at least 1), starting with a full burst.
    pub(crate) fn new(rate: u64, now: Instant) -> Self {
        let rate = rate.max(1);
        Pacer {
            rate,
            credit: Self::burst_of(rate),
            at: now,
            queues: BTreeMap::new(),
            turn: VecDeque::new(),
            queued: 0,
        }
    }

    fn burst_of(rate: u64) -> f64 {
        rate as f64 * BURST.as_secs_f64()
    }

    fn refill(&mut self, now: Instant) {
        let dt = now.saturating_duration_since(self.at).as_secs_f64();
        self.at = self.at.max(now);
        self.credit = (self.credit + dt * self.rate as f64).min(Self::burst_of(self.rate));
    }

    /// Queues a response of `len` bytes for `peer`.
    pub(crate) fn push(&mut self, peer: K, len: u64, item: T) {
        let queue = self.queues.entry(peer.clone()).or_default();
        if queue.is_empty() {
            self.turn.push_back(peer);
        }
        queue.push_back((len, item));
        self.queued += len;
    }

    /// The next response allowed to leave now, if any.
    pub(crate) fn pop(&mut self, now: Instant) -> Option<(K, T)> {
        self.refill(now);
        if self.credit < 0.0 {
            return None;
        }
        let peer = self.turn.pop_front()?;
        let queue = self.queues.get_mut(&peer)?;
        let (len, item) = queue.pop_front()?;
        if queue.is_empty() {
            self.queues.remove(&peer);
        } else {
            self.turn.push_back(peer.clone());
        }
        self.queued -= len;
        self.credit -= len as f64;
        Some((peer, item))
    }

    /// When the next queued response may leave (none when nothing waits).
    pub(crate) fn next_at(&self) -> Option<Instant> {
        if self.turn.is_empty() {
            return None;
        }
        if self.credit >= 0.0 {
            return Some(self.at);
        }
        Some(self.at + Duration::from_secs_f64(-self.credit / self.rate as f64))
    }

    /// How long the responses queued, and `more` bytes on their way to the queue, take to
    /// leave at the rate.
    pub(crate) fn backlog(&self, more: u64) -> Duration {
        Duration::from_secs_f64((self.queued + more) as f64 / self.rate as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    /// Releases everything queued from `start`, jumping from one allowed time to the next;
    /// the peer and time of each release.
    fn drain(p: &mut Pacer<u8, u32>, start: Instant) -> Vec<(u8, Duration)> {
        let mut out = Vec::new();
        let mut now = start;
        while let Some(at) = p.next_at() {
            now = now.max(at);
            while let Some((peer, _)) = p.pop(now) {
                out.push((peer, now - start));
            }
        }
        out
    }

    #[test]
    fn bytes_leave_at_the_rate() {
        let t0 = Instant::now();
        let rate = 2_500_000; // 20 Mbit/s
        let mut p = Pacer::new(rate, t0);
        for i in 0..100 {
            p.push(1u8, MIB, i);
        }
        let out = drain(&mut p, t0);
        assert_eq!(out.len(), 100);
        let last = out.last().unwrap().1.as_secs_f64();
        // 100 MiB at 2.5 MB/s: the last block leaves once the 99 before it are paid for.
        let paid = (99 * MIB) as f64 - rate as f64 * BURST.as_secs_f64();
        let expected = paid / rate as f64;
        assert!((last - expected).abs() < 0.01, "{last} vs {expected}");
    }

    #[test]
    fn peers_take_turns_whatever_they_queued() {
        let t0 = Instant::now();
        let mut p = Pacer::new(MIB, t0);
        for i in 0..6 {
            p.push(1u8, MIB, i);
        }
        p.push(2u8, MIB, 100);
        p.push(3u8, MIB, 200);
        let order: Vec<u8> = drain(&mut p, t0).into_iter().map(|(k, _)| k).collect();
        assert_eq!(order, [1, 2, 3, 1, 1, 1, 1, 1]);
    }

    #[test]
    fn idle_credit_is_capped_at_the_burst() {
        let t0 = Instant::now();
        let mut p = Pacer::new(MIB, t0);
        let later = t0 + Duration::from_secs(60);
        for i in 0..3 {
            p.push(1u8, MIB / 4, i);
        }
        // A minute idle buys a tenth of a second's worth, not a minute's: one response
        // leaves (into debt), the next waits.
        assert!(p.pop(later).is_some());
        assert!(p.pop(later).is_none());
        let wait = p.next_at().unwrap() - later;
        assert!(wait > Duration::from_millis(100), "{wait:?}");
        assert!(p.backlog(0) > Duration::from_millis(400));
        assert!(p.backlog(MIB) > Duration::from_millis(1400));
    }
}
