//! The serving part: the uploads to peers in progress, at most `max_serves` at once and at
//! most `per_peer` to one peer, so that no peer (one asking many blocks and reading them
//! slowly, say) can take the slots of the others. An honest requester never asks one peer
//! for more than its pipeline at once.

use std::collections::BTreeMap;

use super::{NodeId, ServeId};

#[derive(Debug)]
pub(super) struct Serves {
    max: usize,
    per_peer: u32,
    active: BTreeMap<ServeId, NodeId>,
    by_peer: BTreeMap<NodeId, u32>,
}

impl Serves {
    pub(super) fn new(max: usize, per_peer: usize) -> Self {
        Serves {
            max,
            per_peer: per_peer.max(1) as u32,
            active: BTreeMap::new(),
            by_peer: BTreeMap::new(),
        }
    }

    /// Takes an upload slot for `id` from `peer`; false when every slot, or the peer's share
    /// of them, is taken.
    pub(super) fn start(&mut self, id: ServeId, peer: NodeId) -> bool {
        let mine = self.by_peer.get(&peer).copied().unwrap_or(0);
        if self.active.len() >= self.max || mine >= self.per_peer {
            return false;
        }
        if self.active.insert(id, peer).is_none() {
            *self.by_peer.entry(peer).or_insert(0) += 1;
        }
        true
    }

    /// The upload `id` finished or was aborted.
    pub(super) fn done(&mut self, id: ServeId) {
        let Some(peer) = self.active.remove(&id) else {
            return;
        };
        if let Some(n) = self.by_peer.get_mut(&peer) {
            *n -= 1;
            if *n == 0 {
                self.by_peer.remove(&peer);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: NodeId = NodeId(1);
    const B: NodeId = NodeId(2);

    #[test]
    fn slots_are_capped_and_freed() {
        let mut serves = Serves::new(2, 4);
        assert!(serves.start(ServeId(1), A));
        assert!(serves.start(ServeId(2), B));
        assert!(!serves.start(ServeId(3), A));
        serves.done(ServeId(1));
        serves.done(ServeId(9));
        assert!(serves.start(ServeId(3), A));
        assert!(!serves.start(ServeId(4), B));
    }

    #[test]
    fn one_peer_cannot_take_every_slot() {
        let mut serves = Serves::new(32, 4);
        let greedy = (0..64).filter(|&i| serves.start(ServeId(i), A)).count();
        assert_eq!(greedy, 4);
        assert!(serves.start(ServeId(100), B), "another peer is served");
        serves.done(ServeId(0));
        assert!(serves.start(ServeId(64), A), "a freed slot of A's share");
    }
}
