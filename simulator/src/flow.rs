//! Bulk data as flows: one flow per connection, chunks as milestones along it.
//!
//! A connection (`src` → `dst`, `src` a node or the hub) holds a FIFO of chunks. While the
//! FIFO is non-empty the connection is one flow in the max-min solver; the time at which the
//! head chunk finishes is plain arithmetic at the current rate, so a milestone needs no
//! re-solve. Adding or removing a flow, or changing a capacity, marks resources dirty; the
//! next [`FlowNet::solve`] re-solves only the connected components that contain them.

mod incremental;
pub mod maxmin;

use crate::time::{NANOS_PER_SEC, SimTime};
use crate::topology::{ResId, Topology};
use incremental::Incremental;
use std::collections::{BTreeMap, VecDeque};

/// Index of a connection's flow.
pub type FlowId = u32;

/// One chunk queued on a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chunk {
    /// Bytes.
    pub len: u64,
    /// The driver's handle for this transfer.
    pub tag: u64,
}

#[derive(Debug)]
struct Flow {
    src: u32,
    dst: u32,
    path: [ResId; 4],
    len: u8,
    pos: [u32; 4],
    active: bool,
    rate: u64,
    last: u64,
    /// Work left on the head chunk, in byte·ns/s (bytes × 1e9).
    head_left: u128,
    queue: VecDeque<Chunk>,
    generation: u32,
}

/// A finished chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Done {
    /// Sender (a node or [`crate::topology::HUB`]).
    pub src: u32,
    /// Receiver.
    pub dst: u32,
    /// The chunk.
    pub chunk: Chunk,
    /// The next milestone on this flow, if it still has chunks: `(generation, time)`.
    pub next: Option<(u32, SimTime)>,
}

/// What [`FlowNet::cancel`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cancelled {
    /// The chunk was not queued (already finished, or unknown).
    No,
    /// The chunk was waiting and is gone.
    Queued,
    /// The chunk was on the wire; `sent` bytes of it had moved.
    Head {
        /// Bytes already sent.
        sent: u64,
        /// The flow.
        flow: FlowId,
        /// The next milestone on the flow: `(generation, time)`.
        next: Option<(u32, SimTime)>,
    },
}

/// All connections and their flows.
#[derive(Debug)]
pub struct FlowNet {
    topo: Topology,
    caps: Vec<u64>,
    flows: Vec<Flow>,
    conns: BTreeMap<(u32, u32), FlowId>,
    by_node: Vec<Vec<FlowId>>,
    by_res: Vec<Vec<FlowId>>,
    dirty: Vec<ResId>,
    is_dirty: Vec<bool>,
    solver: Incremental,
    changed: Vec<(FlowId, u64)>,
    /// Number of component solves run.
    pub solves: u64,
}

impl FlowNet {
    /// An idle network over `topo`.
    pub fn new(topo: Topology) -> FlowNet {
        let nres = topo.resources();
        FlowNet {
            caps: topo.caps.clone(),
            by_node: vec![Vec::new(); topo.nodes as usize],
            topo,
            flows: Vec::new(),
            conns: BTreeMap::new(),
            by_res: vec![Vec::new(); nres],
            dirty: Vec::new(),
            is_dirty: vec![false; nres],
            solver: Incremental::new(nres),
            changed: Vec::new(),
            solves: 0,
        }
    }

    /// The topology.
    pub fn topology(&self) -> &Topology {
        &self.topo
    }

    /// Current capacity of a resource.
    pub fn cap(&self, r: ResId) -> u64 {
        self.caps[r as usize]
    }

    /// Changes a resource's capacity (a slow NIC, a degraded uplink).
    pub fn set_cap(&mut self, r: ResId, cap: u64) {
        if self.caps[r as usize] != cap {
            self.caps[r as usize] = cap;
            self.mark(r);
        }
    }

    /// True if a re-solve is pending.
    pub fn is_dirty(&self) -> bool {
        !self.dirty.is_empty()
    }

    /// Current rate of the connection `src → dst` (0 if idle).
    pub fn rate(&self, src: u32, dst: u32) -> u64 {
        self.conns
            .get(&(src, dst))
            .map_or(0, |&f| self.flows[f as usize].rate)
    }

    /// `(src, dst, rate)` of every active flow, in connection order.
    pub fn active_rates(&self) -> Vec<(u32, u32, u64)> {
        self.conns
            .values()
            .map(|&f| &self.flows[f as usize])
            .filter(|f| f.active)
            .map(|f| (f.src, f.dst, f.rate))
            .collect()
    }

    fn mark(&mut self, r: ResId) {
        if !self.is_dirty[r as usize] {
            self.is_dirty[r as usize] = true;
            self.dirty.push(r);
        }
    }

    fn flow_id(&mut self, src: u32, dst: u32) -> FlowId {
        if let Some(&f) = self.conns.get(&(src, dst)) {
            return f;
        }
        let (path, len) = self.topo.path(src, dst);
        let id = self.flows.len() as FlowId;
        self.flows.push(Flow {
            src,
            dst,
            path,
            len,
            pos: [0; 4],
            active: false,
            rate: 0,
            last: 0,
            head_left: 0,
            queue: VecDeque::new(),
            generation: 0,
        });
        self.solver.add_flow(path, len);
        self.conns.insert((src, dst), id);
        if (src as usize) < self.by_node.len() {
            self.by_node[src as usize].push(id);
        }
        self.by_node[dst as usize].push(id);
        id
    }

    fn activate(&mut self, id: FlowId, now: u64) {
        let f = &mut self.flows[id as usize];
        f.active = true;
        f.rate = 0;
        f.last = now;
        f.generation = f.generation.wrapping_add(1);
        let (path, len) = (f.path, f.len as usize);
        self.solver.reset_flow(id);
        for (k, &r) in path[..len].iter().enumerate() {
            let list = &mut self.by_res[r as usize];
            self.flows[id as usize].pos[k] = list.len() as u32;
            list.push(id);
            self.mark(r);
        }
    }

    fn deactivate(&mut self, id: FlowId) {
        let f = &mut self.flows[id as usize];
        f.active = false;
        f.rate = 0;
        f.generation = f.generation.wrapping_add(1);
        let (path, len, pos) = (f.path, f.len as usize, f.pos);
        self.solver.reset_flow(id);
        for k in 0..len {
            let r = path[k] as usize;
            let list = &mut self.by_res[r];
            let p = pos[k] as usize;
            list.swap_remove(p);
            if p < list.len() {
                let moved = list[p] as usize;
                let mf = &mut self.flows[moved];
                let j = mf.path[..mf.len as usize]
                    .iter()
                    .position(|&x| x as usize == r)
                    .unwrap_or(0);
                mf.pos[j] = p as u32;
            }
            self.mark(path[k]);
        }
    }

    /// Queues a chunk on `src → dst`. A newly active flow gets its rate at the next solve.
    pub fn enqueue(&mut self, now: SimTime, src: u32, dst: u32, chunk: Chunk) -> FlowId {
        let id = self.flow_id(src, dst);
        if !self.flows[id as usize].active {
            self.activate(id, now.0);
        }
        let f = &mut self.flows[id as usize];
        if f.queue.is_empty() {
            f.head_left = chunk.len as u128 * NANOS_PER_SEC as u128;
        }
        f.queue.push_back(chunk);
        id
    }

    /// Handles a milestone event; `None` if it is stale.
    pub fn milestone(&mut self, now: SimTime, id: FlowId, g0: u32) -> Option<Done> {
        let f = self.flows.get_mut(id as usize)?;
        if !f.active || f.generation != g0 || f.rate == 0 {
            return None;
        }
        let work = f.rate as u128 * now.0.saturating_sub(f.last) as u128;
        let carry = work.saturating_sub(f.head_left);
        let chunk = f.queue.pop_front()?;
        f.last = now.0;
        let (src, dst) = (f.src, f.dst);
        if let Some(next) = f.queue.front() {
            f.head_left = (next.len as u128 * NANOS_PER_SEC as u128).saturating_sub(carry);
            f.generation = f.generation.wrapping_add(1);
            let at = now.plus(ceil_div(f.head_left, f.rate));
            let g = f.generation;
            Some(Done {
                src,
                dst,
                chunk,
                next: Some((g, at)),
            })
        } else {
            self.deactivate(id);
            Some(Done {
                src,
                dst,
                chunk,
                next: None,
            })
        }
    }

    /// Drops every queued chunk of `src → dst` (a lost connection) and returns them.
    pub fn abort(&mut self, src: u32, dst: u32) -> Vec<Chunk> {
        let Some(&id) = self.conns.get(&(src, dst)) else {
            return Vec::new();
        };
        let f = &mut self.flows[id as usize];
        if !f.active {
            return Vec::new();
        }
        let out: Vec<Chunk> = f.queue.drain(..).collect();
        self.deactivate(id);
        out
    }

    /// Active connections that node `n` sends or receives on: `(src, dst)` pairs.
    pub fn connections_of(&self, n: u32) -> Vec<(u32, u32)> {
        self.by_node[n as usize]
            .iter()
            .map(|&f| &self.flows[f as usize])
            .filter(|f| f.active)
            .map(|f| (f.src, f.dst))
            .collect()
    }

    /// Removes a chunk (a cancelled request). A chunk on the wire (the head) stops where it
    /// is: the bytes already sent are reported and the next chunk starts.
    pub fn cancel(&mut self, now: SimTime, src: u32, dst: u32, tag: u64) -> Cancelled {
        let Some(&id) = self.conns.get(&(src, dst)) else {
            return Cancelled::No;
        };
        let f = &mut self.flows[id as usize];
        match f.queue.iter().position(|c| c.tag == tag) {
            None => Cancelled::No,
            Some(p) if p > 0 => {
                f.queue.remove(p);
                Cancelled::Queued
            }
            Some(_) => {
                let work = f.rate as u128 * now.0.saturating_sub(f.last) as u128;
                let left = f.head_left.saturating_sub(work);
                let Some(head) = f.queue.pop_front() else {
                    return Cancelled::No;
                };
                let sent = head
                    .len
                    .saturating_sub((left / NANOS_PER_SEC as u128) as u64);
                f.last = now.0;
                f.generation = f.generation.wrapping_add(1);
                let next = match f.queue.front() {
                    Some(n) => {
                        f.head_left = n.len as u128 * NANOS_PER_SEC as u128;
                        (f.rate > 0)
                            .then(|| (f.generation, now.plus(ceil_div(f.head_left, f.rate))))
                    }
                    None => {
                        self.deactivate(id);
                        None
                    }
                };
                Cancelled::Head {
                    sent,
                    flow: id,
                    next,
                }
            }
        }
    }

    /// Re-solves after the changes since the last solve (see [`incremental`]). Pushes
    /// `(flow, generation, time)` for every flow whose next milestone moved.
    pub fn solve(&mut self, now: SimTime, out: &mut Vec<(FlowId, u32, SimTime)>) {
        if self.dirty.is_empty() {
            return;
        }
        let mut dirty = std::mem::take(&mut self.dirty);
        for &r in &dirty {
            self.is_dirty[r as usize] = false;
        }
        self.solver
            .solve(&self.caps, &self.by_res, &dirty, &mut self.changed);
        dirty.clear();
        self.dirty = dirty;
        self.solves += 1;
        for &(fid, new) in &self.changed {
            let f = &mut self.flows[fid as usize];
            let work = f.rate as u128 * now.0.saturating_sub(f.last) as u128;
            f.head_left = f.head_left.saturating_sub(work);
            f.last = now.0;
            f.rate = new;
            f.generation = f.generation.wrapping_add(1);
            if new > 0 {
                out.push((fid, f.generation, now.plus(ceil_div(f.head_left, new))));
            }
        }
    }

    /// Marks every active flow dirty, so the next solve is a full one (the oracle).
    pub fn mark_all(&mut self) {
        for r in 0..self.by_res.len() {
            if !self.by_res[r].is_empty() {
                self.mark(r as ResId);
            }
        }
    }
}

fn ceil_div(work: u128, rate: u64) -> u64 {
    work.div_ceil(rate as u128).min(u64::MAX as u128) as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::HUB;

    fn run(net: &mut FlowNet, now: SimTime) -> Vec<(FlowId, u32, SimTime)> {
        let mut out = Vec::new();
        net.solve(now, &mut out);
        out
    }

    #[test]
    fn milestones_follow_rates() {
        // 2 nodes, 1000 B/s NICs, hub 500 B/s.
        let mut net = FlowNet::new(Topology::new(2, 1000, 0, 0, 500));
        net.enqueue(SimTime::ZERO, HUB, 0, Chunk { len: 500, tag: 1 });
        net.enqueue(SimTime::ZERO, HUB, 0, Chunk { len: 250, tag: 2 });
        let out = run(&mut net, SimTime::ZERO);
        assert_eq!(out.len(), 1);
        let (id, g, at) = out[0];
        assert_eq!(at, SimTime(1_000_000_000));
        let d = net.milestone(at, id, g).unwrap();
        assert_eq!(d.chunk.tag, 1);
        let (g2, at2) = d.next.unwrap();
        assert_eq!(at2, SimTime(1_500_000_000));
        // A second hub flow halves the rate half way through chunk 2.
        let t = SimTime(1_250_000_000);
        net.enqueue(t, HUB, 1, Chunk { len: 100, tag: 3 });
        let out = run(&mut net, t);
        assert!(net.milestone(at2, id, g2).is_none(), "stale milestone");
        let mine = out.iter().find(|o| o.0 == id).unwrap();
        assert_eq!(mine.2, SimTime(1_750_000_000));
        let d = net.milestone(mine.2, id, mine.1).unwrap();
        assert_eq!((d.chunk.tag, d.next), (2, None));
        assert!(net.is_dirty());
        assert_eq!(net.active_rates(), vec![(HUB, 1, 250)]);
        let out = run(&mut net, mine.2);
        assert_eq!(net.active_rates(), vec![(HUB, 1, 500)]);
        assert_eq!(out.len(), 1);
    }

    #[test]
    fn abort_and_cancel() {
        let mut net = FlowNet::new(Topology::new(2, 1000, 0, 0, 500));
        for tag in 0..3 {
            net.enqueue(SimTime::ZERO, 0, 1, Chunk { len: 10, tag });
        }
        assert_eq!(net.cancel(SimTime::ZERO, 0, 1, 2), Cancelled::Queued);
        assert_eq!(net.cancel(SimTime::ZERO, 0, 1, 7), Cancelled::No);
        assert_eq!(net.connections_of(1), vec![(0, 1)]);
        let left = net.abort(0, 1);
        assert_eq!(left.iter().map(|c| c.tag).collect::<Vec<_>>(), vec![0, 1]);
        assert!(net.connections_of(0).is_empty());
        run(&mut net, SimTime::ZERO);
        assert!(net.active_rates().is_empty());
    }

    #[test]
    fn cancelling_the_head_stops_it_midway() {
        let mut net = FlowNet::new(Topology::new(2, 1000, 0, 0, 500));
        net.enqueue(SimTime::ZERO, 0, 1, Chunk { len: 1000, tag: 1 });
        net.enqueue(SimTime::ZERO, 0, 1, Chunk { len: 500, tag: 2 });
        run(&mut net, SimTime::ZERO);
        let half = SimTime(500_000_000);
        match net.cancel(half, 0, 1, 1) {
            Cancelled::Head {
                sent,
                next: Some((_, at)),
                ..
            } => {
                assert_eq!(sent, 500);
                assert_eq!(at, SimTime(1_000_000_000));
            }
            other => panic!("{other:?}"),
        }
        match net.cancel(half, 0, 1, 2) {
            Cancelled::Head {
                sent: 0,
                next: None,
                ..
            } => {}
            other => panic!("{other:?}"),
        }
        assert!(net.connections_of(0).is_empty());
    }
}
