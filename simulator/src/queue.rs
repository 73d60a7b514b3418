//! The event queue: a binary heap keyed by `(time, seq)`, payloads in a slab.
//!
//! `seq` grows monotonically, so events at the same time run in insertion order. An entry is
//! one `u128`, `time << 64 | seq << 32 | index`, compared in one go; `seq` is 32 bits, and
//! when it runs out the pending entries are renumbered in order.
//! Cancellation is lazy: payloads carry generations and stale ones are ignored when popped.
//! An event on a *channel* (a flow's next milestone, a node's timer) replaces the one pending
//! on that channel, which the caller has made stale: it lives in an indexed heap, one entry
//! per channel, so re-solves and re-armed timers do not pile up stale entries.

use crate::time::SimTime;
use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// A deterministic time-ordered queue of `T`.
#[derive(Debug)]
pub struct EventQueue<T> {
    heap: BinaryHeap<Reverse<u128>>,
    slab: Vec<Option<T>>,
    free: Vec<u32>,
    seq: u32,
    seq_limit: u32,
    chans: Channels,
    chan_ev: Vec<Option<T>>,
}

impl<T> Default for EventQueue<T> {
    fn default() -> Self {
        EventQueue {
            heap: BinaryHeap::new(),
            slab: Vec::new(),
            free: Vec::new(),
            seq: 0,
            seq_limit: u32::MAX,
            chans: Channels::default(),
            chan_ev: Vec::new(),
        }
    }
}

const NO_POS: u32 = u32::MAX;

fn entry(time: u64, seq: u32, index: u32) -> u128 {
    (time as u128) << 64 | (seq as u128) << 32 | index as u128
}

fn time_of(e: u128) -> u64 {
    (e >> 64) as u64
}

fn index_of(e: u128) -> u32 {
    e as u32
}

/// An indexed binary min-heap of entries whose index is a channel, one entry per channel.
#[derive(Debug, Default)]
struct Channels {
    heap: Vec<u128>,
    pos: Vec<u32>,
}

impl Channels {
    fn set(&mut self, entry: u128) {
        let c = index_of(entry) as usize;
        if c >= self.pos.len() {
            self.pos.resize(c + 1, NO_POS);
        }
        let i = match self.pos[c] {
            NO_POS => {
                self.heap.push(entry);
                self.heap.len() - 1
            }
            i => {
                self.heap[i as usize] = entry;
                i as usize
            }
        };
        self.pos[c] = i as u32;
        let i = self.up(i);
        self.down(i);
    }

    fn peek(&self) -> Option<u128> {
        self.heap.first().copied()
    }

    fn pop(&mut self) -> Option<u128> {
        let last = self.heap.pop()?;
        let top = match self.heap.first_mut() {
            Some(first) => std::mem::replace(first, last),
            None => last,
        };
        self.pos[index_of(top) as usize] = NO_POS;
        if !self.heap.is_empty() {
            self.pos[index_of(last) as usize] = 0;
            self.down(0);
        }
        Some(top)
    }

    fn up(&mut self, mut i: usize) -> usize {
        while i > 0 {
            let p = (i - 1) / 2;
            if self.heap[p] <= self.heap[i] {
                break;
            }
            self.swap(i, p);
            i = p;
        }
        i
    }

    fn down(&mut self, mut i: usize) {
        let n = self.heap.len();
        loop {
            let l = 2 * i + 1;
            if l >= n {
                break;
            }
            let c = if l + 1 < n && self.heap[l + 1] < self.heap[l] {
                l + 1
            } else {
                l
            };
            if self.heap[i] <= self.heap[c] {
                break;
            }
            self.swap(i, c);
            i = c;
        }
    }

    fn swap(&mut self, a: usize, b: usize) {
        self.heap.swap(a, b);
        self.pos[index_of(self.heap[a]) as usize] = a as u32;
        self.pos[index_of(self.heap[b]) as usize] = b as u32;
    }
}

impl<T> EventQueue<T> {
    /// An empty queue.
    pub fn new() -> Self {
        Self::default()
    }

    /// Schedules `ev` at `at`.
    pub fn push(&mut self, at: SimTime, ev: T) {
        let slot = match self.free.pop() {
            Some(s) => {
                self.slab[s as usize] = Some(ev);
                s
            }
            None => {
                self.slab.push(Some(ev));
                (self.slab.len() - 1) as u32
            }
        };
        let seq = self.next_seq();
        self.heap.push(Reverse(entry(at.0, seq, slot)));
    }

    fn next_seq(&mut self) -> u32 {
        if self.seq >= self.seq_limit {
            self.renumber();
        }
        self.seq += 1;
        self.seq - 1
    }

    /// Gives the pending entries the sequence numbers `0..` in their order.
    fn renumber(&mut self) {
        let mut all: Vec<(u128, bool)> = self.heap.drain().map(|Reverse(e)| (e, false)).collect();
        all.extend(self.chans.heap.drain(..).map(|e| (e, true)));
        self.chans.pos.iter_mut().for_each(|p| *p = NO_POS);
        all.sort_unstable();
        for (seq, &(e, chan)) in all.iter().enumerate() {
            let e = entry(time_of(e), seq as u32, index_of(e));
            if chan {
                self.chans.set(e);
            } else {
                self.heap.push(Reverse(e));
            }
        }
        self.seq = all.len() as u32;
    }

    /// Schedules `ev` at `at` on channel `chan`, replacing the event pending there.
    pub fn push_on(&mut self, at: SimTime, chan: u32, ev: T) {
        let c = chan as usize;
        if c >= self.chan_ev.len() {
            self.chan_ev.resize_with(c + 1, || None);
        }
        self.chan_ev[c] = Some(ev);
        let seq = self.next_seq();
        self.chans.set(entry(at.0, seq, chan));
    }

    /// True if the earliest event is on a channel.
    fn chan_first(&self) -> bool {
        match (self.heap.peek(), self.chans.peek()) {
            (Some(Reverse(e)), Some(c)) => c < *e,
            (None, Some(_)) => true,
            _ => false,
        }
    }

    /// The time of the earliest event.
    pub fn peek_time(&self) -> Option<SimTime> {
        let a = self.heap.peek().map(|Reverse(e)| *e);
        let e = match (a, self.chans.peek()) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => a.or(b)?,
        };
        Some(SimTime(time_of(e)))
    }

    /// Removes and returns the earliest event.
    pub fn pop(&mut self) -> Option<(SimTime, T)> {
        if self.chan_first() {
            let e = self.chans.pop()?;
            let ev = self.chan_ev[index_of(e) as usize].take()?;
            return Some((SimTime(time_of(e)), ev));
        }
        let Reverse(e) = self.heap.pop()?;
        let slot = index_of(e);
        let ev = self.slab[slot as usize].take()?;
        self.free.push(slot);
        Some((SimTime(time_of(e)), ev))
    }

    /// Number of pending events.
    pub fn len(&self) -> usize {
        self.heap.len() + self.chans.heap.len()
    }

    /// True when nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_by_time_then_insertion() {
        let mut q = EventQueue::new();
        q.push(SimTime(5), "c");
        q.push(SimTime(1), "a");
        q.push(SimTime(5), "d");
        q.push(SimTime(1), "b");
        let order: Vec<_> = std::iter::from_fn(|| q.pop()).map(|(_, e)| e).collect();
        assert_eq!(order, ["a", "b", "c", "d"]);
        assert!(q.is_empty());
    }

    #[test]
    fn a_channel_holds_its_latest_event() {
        let mut q = EventQueue::new();
        q.push_on(SimTime(5), 0, "stale");
        q.push(SimTime(3), "a");
        q.push_on(SimTime(3), 1, "b");
        q.push_on(SimTime(7), 0, "d");
        q.push(SimTime(6), "c");
        q.push_on(SimTime(1), 2, "stale too");
        q.push_on(SimTime(3), 2, "b2");
        assert_eq!(q.len(), 5);
        let order: Vec<_> = std::iter::from_fn(|| q.pop()).collect();
        let want = [(3, "a"), (3, "b"), (3, "b2"), (6, "c"), (7, "d")];
        assert_eq!(order, want.map(|(t, e)| (SimTime(t), e)));
        q.push_on(SimTime(9), 0, "again");
        assert_eq!(q.pop(), Some((SimTime(9), "again")));
        assert!(q.is_empty());
    }

    #[test]
    fn channels_match_a_plain_queue() {
        for limit in [u32::MAX, 7, 40] {
            against_a_sorted_list(limit);
        }
    }

    /// Random pushes with superseding, against a sorted list of the live events; `limit`
    /// forces renumbering.
    fn against_a_sorted_list(limit: u32) {
        let mut rng = crate::rng::stream(3, 0, 0);
        let mut q = EventQueue::new();
        q.seq_limit = limit;
        let mut live: Vec<(u64, u64, u32)> = Vec::new();
        let (mut now, mut seq) = (0u64, 0u64);
        for _ in 0..5000 {
            let what = rng.below(4);
            if what == 0 {
                let at = now + rng.below(50);
                live.push((at, seq, 1000));
                q.push(SimTime(at), 1000);
                seq += 1;
            } else if what > 1 {
                let at = now + rng.below(50);
                let chan = rng.below(20) as u32;
                live.retain(|e| e.2 != chan);
                live.push((at, seq, chan));
                q.push_on(SimTime(at), chan, chan);
                seq += 1;
            } else if let Some((t, c)) = q.pop() {
                live.sort_unstable();
                let want = live.remove(0);
                assert_eq!((t.0, c), (want.0, want.2));
                now = t.0;
            }
        }
    }

    #[test]
    fn reuses_slots() {
        let mut q = EventQueue::new();
        for i in 0..10u64 {
            q.push(SimTime(i), i);
            assert_eq!(q.pop(), Some((SimTime(i), i)));
        }
        assert_eq!(q.slab.len(), 1);
    }
}
