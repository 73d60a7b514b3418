//! The event queue: a binary heap keyed by `(time, seq)`, payloads in a slab.
//!
//! `seq` grows monotonically, so events at the same time run in insertion order.
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
    heap: BinaryHeap<Reverse<(u64, u64, u32)>>,
    slab: Vec<Option<T>>,
    free: Vec<u32>,
    seq: u64,
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
            chans: Channels::default(),
            chan_ev: Vec::new(),
        }
    }
}

const NO_POS: u32 = u32::MAX;

/// An indexed binary min-heap of `(time, seq, channel)`, at most one entry per channel.
#[derive(Debug, Default)]
struct Channels {
    heap: Vec<(u64, u64, u32)>,
    pos: Vec<u32>,
}

impl Channels {
    fn set(&mut self, entry: (u64, u64, u32)) {
        let c = entry.2 as usize;
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

    fn peek(&self) -> Option<&(u64, u64, u32)> {
        self.heap.first()
    }

    fn pop(&mut self) -> Option<(u64, u64, u32)> {
        let last = self.heap.pop()?;
        let top = match self.heap.first_mut() {
            Some(first) => std::mem::replace(first, last),
            None => last,
        };
        self.pos[top.2 as usize] = NO_POS;
        if !self.heap.is_empty() {
            self.pos[last.2 as usize] = 0;
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
        self.pos[self.heap[a].2 as usize] = a as u32;
        self.pos[self.heap[b].2 as usize] = b as u32;
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
        self.heap.push(Reverse((at.0, self.seq, slot)));
        self.seq += 1;
    }

    /// Schedules `ev` at `at` on channel `chan`, replacing the event pending there.
    pub fn push_on(&mut self, at: SimTime, chan: u32, ev: T) {
        let c = chan as usize;
        if c >= self.chan_ev.len() {
            self.chan_ev.resize_with(c + 1, || None);
        }
        self.chan_ev[c] = Some(ev);
        self.chans.set((at.0, self.seq, chan));
        self.seq += 1;
    }

    /// True if the earliest event is on a channel.
    fn chan_first(&self) -> bool {
        match (self.heap.peek(), self.chans.peek()) {
            (Some(Reverse((t, s, _))), Some((ct, cs, _))) => (ct, cs) < (t, s),
            (None, Some(_)) => true,
            _ => false,
        }
    }

    /// The time of the earliest event.
    pub fn peek_time(&self) -> Option<SimTime> {
        let a = self.heap.peek().map(|Reverse((t, _, _))| *t);
        let b = self.chans.peek().map(|e| e.0);
        match (a, b) {
            (Some(a), Some(b)) => Some(SimTime(a.min(b))),
            (a, b) => a.or(b).map(SimTime),
        }
    }

    /// Removes and returns the earliest event.
    pub fn pop(&mut self) -> Option<(SimTime, T)> {
        if self.chan_first() {
            let (t, _, c) = self.chans.pop()?;
            let ev = self.chan_ev[c as usize].take()?;
            return Some((SimTime(t), ev));
        }
        let Reverse((t, _, slot)) = self.heap.pop()?;
        let ev = self.slab[slot as usize].take()?;
        self.free.push(slot);
        Some((SimTime(t), ev))
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
        // Random pushes with superseding, against a sorted list of the live events.
        let mut rng = crate::rng::stream(3, 0, 0);
        let mut q = EventQueue::new();
        let mut live: Vec<(u64, u64, u32)> = Vec::new();
        let (mut now, mut seq) = (0u64, 0u64);
        for _ in 0..5000 {
            if rng.below(3) > 0 {
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
