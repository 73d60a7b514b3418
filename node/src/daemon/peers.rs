//! The libp2p side of peers: PeerId ↔ agent NodeId, who is connected or banned, static and
//! mDNS-discovered addresses to (re)dial, and the per-peer queue that keeps control messages
//! in order.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use bootswarm_protocol::agent::NodeId;
use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId, Swarm};
use sha2::{Digest, Sha256};

use super::behaviour::Behaviour;

/// Control messages queued for one peer; more are dropped (the agent re-sends its state when
/// it stalls).
const CONTROL_QUEUE: usize = 1024;
/// Peers remembered (id map, ban list) beyond those connected.
const MAX_KNOWN_PEERS: usize = 4096;
/// Most mDNS-discovered peers remembered for redialling.
const MAX_DISCOVERED: usize = 1024;
/// How often static and discovered peers that are not connected are dialled again.
const REDIAL_EVERY: Duration = Duration::from_secs(5);

/// The agent's id for a libp2p peer: the first 8 bytes of sha2-256 of the peer id.
pub(crate) fn node_id(peer: &PeerId) -> NodeId {
    let digest = Sha256::digest(peer.to_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest.as_slice()[..8]);
    NodeId(u64::from_be_bytes(first))
}

#[derive(Debug, Default)]
struct ControlQueue {
    queue: VecDeque<Vec<u8>>,
    in_flight: bool,
}

#[derive(Debug)]
struct StaticPeer {
    addr: Multiaddr,
    peer: Option<PeerId>,
}

/// The peers of the daemon. Invariant: `connected` and `nodes` agree for every connected
/// peer; a banned peer is never connected for long (its connections are closed at once).
#[derive(Debug)]
pub(crate) struct Peers {
    connected: HashMap<PeerId, NodeId>,
    nodes: HashMap<NodeId, PeerId>,
    banned: HashSet<PeerId>,
    statics: Vec<StaticPeer>,
    /// Peers mDNS announced, redialled like static peers until connected (mDNS reports a
    /// peer once, and a first dial can fail while both ends start).
    discovered: BTreeMap<PeerId, Multiaddr>,
    last_redial: Instant,
    control: HashMap<PeerId, ControlQueue>,
}

impl Peers {
    /// Peers to dial: the static `--peer` addresses.
    pub(crate) fn new(statics: &[Multiaddr], now: Instant) -> Self {
        Peers {
            connected: HashMap::new(),
            nodes: HashMap::new(),
            banned: HashSet::new(),
            statics: statics
                .iter()
                .map(|addr| StaticPeer {
                    addr: addr.clone(),
                    peer: addr.iter().find_map(|p| match p {
                        Protocol::P2p(id) => Some(id),
                        _ => None,
                    }),
                })
                .collect(),
            discovered: BTreeMap::new(),
            last_redial: now,
            control: HashMap::new(),
        }
    }

    /// Static peers configured.
    pub(crate) fn statics(&self) -> usize {
        self.statics.len()
    }

    /// Peers connected now.
    pub(crate) fn count(&self) -> usize {
        self.connected.len()
    }

    /// The node id of a connected peer.
    pub(crate) fn node(&self, peer: &PeerId) -> Option<NodeId> {
        self.connected.get(peer).copied()
    }

    /// The connected peer behind `node`.
    pub(crate) fn peer(&self, node: NodeId) -> Option<PeerId> {
        self.nodes
            .get(&node)
            .copied()
            .filter(|p| self.connected.contains_key(p))
    }

    /// A label for `node` in logs and metrics: its peer id when known.
    pub(crate) fn label(&self, node: NodeId) -> String {
        self.nodes
            .get(&node)
            .map_or_else(|| node.to_string(), PeerId::to_string)
    }

    pub(crate) fn is_banned(&self, peer: &PeerId) -> bool {
        self.banned.contains(peer)
    }

    /// A connection to `peer` is up (`dialed`: the address we dialled). Returns the node id
    /// when the peer is new and welcome; a banned peer's connection must be closed.
    pub(crate) fn connected(&mut self, peer: PeerId, dialed: Option<&Multiaddr>) -> Option<NodeId> {
        if let Some(address) = dialed {
            for s in &mut self.statics {
                if s.peer.is_none() && same_transport(&s.addr, address) {
                    s.peer = Some(peer);
                }
            }
        }
        if self.connected.contains_key(&peer) {
            return None;
        }
        let node = node_id(&peer);
        self.connected.insert(peer, node);
        if self.nodes.len() >= MAX_KNOWN_PEERS {
            // Forget peers that are gone; their late events are labelled by node id.
            let connected = &self.connected;
            self.nodes.retain(|_, p| connected.contains_key(p));
        }
        self.nodes.insert(node, peer);
        Some(node)
    }

    /// The last connection to `peer` closed.
    pub(crate) fn disconnected(&mut self, peer: &PeerId) -> Option<NodeId> {
        self.control.remove(peer);
        self.connected.remove(peer)
    }

    /// Bans the peer behind `node` (the agent decided); returns it to disconnect.
    pub(crate) fn ban(&mut self, node: NodeId) -> Option<PeerId> {
        let pid = *self.nodes.get(&node)?;
        if self.banned.len() >= MAX_KNOWN_PEERS {
            self.banned.clear();
        }
        self.banned.insert(pid);
        Some(pid)
    }

    /// mDNS found `peer` at `addr`: the address to dial, if it is worth dialling.
    pub(crate) fn discovered(&mut self, peer: PeerId, addr: Multiaddr) -> Option<Multiaddr> {
        if self.connected.contains_key(&peer) || self.banned.contains(&peer) {
            return None;
        }
        let addr = addr.with_p2p(peer).unwrap_or_else(|a| a);
        if self.discovered.len() < MAX_DISCOVERED {
            self.discovered.insert(peer, addr.clone());
        }
        Some(addr)
    }

    /// mDNS says `peer` is gone.
    pub(crate) fn expired(&mut self, peer: &PeerId) {
        self.discovered.remove(peer);
    }

    /// Dials static and discovered peers that are not connected, at most every
    /// [`REDIAL_EVERY`] (always when `now` is `None`).
    pub(crate) fn redial(&mut self, swarm: &mut Swarm<Behaviour>, now: Option<Instant>) {
        if let Some(now) = now {
            if now.duration_since(self.last_redial) < REDIAL_EVERY {
                return;
            }
            self.last_redial = now;
        }
        let absent = |p: &PeerId| !self.connected.contains_key(p) && !self.banned.contains(p);
        let statics = self
            .statics
            .iter()
            .filter(|s| s.peer.is_none_or(|p| absent(&p)))
            .map(|s| s.addr.clone());
        let discovered = self
            .discovered
            .iter()
            .filter(|(p, _)| absent(p))
            .map(|(_, a)| a.clone());
        let pending: Vec<Multiaddr> = statics.chain(discovered).collect();
        for addr in pending {
            if let Err(e) = swarm.dial(addr.clone()) {
                tracing::debug!(%addr, "cannot dial: {e}");
            }
        }
    }

    /// Queues a control message for `peer`; false if the peer is gone or its queue is full.
    pub(crate) fn queue_control(&mut self, peer: PeerId, bytes: Vec<u8>) -> bool {
        if !self.connected.contains_key(&peer) {
            return false;
        }
        let q = self.control.entry(peer).or_default();
        if q.queue.len() >= CONTROL_QUEUE {
            return false;
        }
        q.queue.push_back(bytes);
        true
    }

    /// The next control message to send to `peer`, once the previous one is answered, so
    /// that messages arrive in order.
    pub(crate) fn next_control(&mut self, peer: &PeerId) -> Option<Vec<u8>> {
        let q = self.control.get_mut(peer)?;
        if q.in_flight {
            return None;
        }
        let bytes = q.queue.pop_front()?;
        q.in_flight = true;
        Some(bytes)
    }

    /// The control message in flight to `peer` was answered (or failed).
    pub(crate) fn control_answered(&mut self, peer: &PeerId) {
        if let Some(q) = self.control.get_mut(peer) {
            q.in_flight = false;
        }
    }
}

/// Whether two addresses name the same transport endpoint (ignoring a `/p2p/` suffix).
fn same_transport(a: &Multiaddr, b: &Multiaddr) -> bool {
    let strip = |m: &Multiaddr| -> Multiaddr {
        m.iter()
            .filter(|p| !matches!(p, Protocol::P2p(_)))
            .collect()
    };
    strip(a) == strip(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_ids_are_stable_and_distinct() {
        let a = PeerId::random();
        let b = PeerId::random();
        assert_eq!(node_id(&a), node_id(&a));
        assert_ne!(node_id(&a), node_id(&b));
    }

    #[test]
    fn same_transport_ignores_the_peer_id() {
        let p = PeerId::random();
        let a: Multiaddr = "/ip4/127.0.0.1/tcp/4101".parse().unwrap();
        let b = a.clone().with_p2p(p).unwrap();
        assert!(same_transport(&a, &b));
        let c: Multiaddr = "/ip4/127.0.0.1/tcp/4102".parse().unwrap();
        assert!(!same_transport(&a, &c));
    }

    #[test]
    fn control_messages_go_one_at_a_time_in_order() {
        let mut peers = Peers::new(&[], Instant::now());
        let p = PeerId::random();
        assert!(!peers.queue_control(p, vec![1]), "not connected");
        assert_eq!(peers.connected(p, None), Some(node_id(&p)));
        assert_eq!(peers.connected(p, None), None, "a second connection");
        assert!(peers.queue_control(p, vec![1]));
        assert!(peers.queue_control(p, vec![2]));
        assert_eq!(peers.next_control(&p), Some(vec![1]));
        assert_eq!(peers.next_control(&p), None, "one in flight");
        peers.control_answered(&p);
        assert_eq!(peers.next_control(&p), Some(vec![2]));
        assert_eq!(peers.disconnected(&p), Some(node_id(&p)));
        assert_eq!(peers.peer(node_id(&p)), None);
    }
}
