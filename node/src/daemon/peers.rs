//! The libp2p side of peers: PeerId ↔ agent NodeId, who is connected or banned, static and
//! mDNS-discovered addresses to (re)dial, and the per-peer queue that keeps control messages
//! in order.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use bootswarm_protocol::agent::NodeId;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
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
/// Most addresses remembered for one discovered peer (an advert cannot replace them).
const MAX_ADDRS_PER_PEER: usize = 4;
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

/// A peer mDNS announced: the addresses first heard for it and when it was last dialled.
#[derive(Debug)]
struct Discovered {
    addrs: Vec<Multiaddr>,
    dialled: Instant,
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
    discovered: BTreeMap<PeerId, Discovered>,
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

    /// mDNS found `peer` at `addr`: the address to dial, if it is worth dialling now. An
    /// advert never replaces an address already known for the peer (a static one, or one
    /// heard first), adds at most [`MAX_ADDRS_PER_PEER`], and triggers at most one dial per
    /// peer every [`REDIAL_EVERY`], however often it is repeated.
    pub(crate) fn discovered(
        &mut self,
        peer: PeerId,
        addr: Multiaddr,
        now: Instant,
    ) -> Option<Multiaddr> {
        if self.connected.contains_key(&peer)
            || self.banned.contains(&peer)
            || self.statics.iter().any(|s| s.peer == Some(peer))
        {
            return None;
        }
        let addr = addr.with_p2p(peer).unwrap_or_else(|a| a);
        let room = self.discovered.len() < MAX_DISCOVERED;
        match self.discovered.get_mut(&peer) {
            Some(known) => {
                if known.addrs.len() < MAX_ADDRS_PER_PEER && !known.addrs.contains(&addr) {
                    known.addrs.push(addr.clone());
                }
                if now.duration_since(known.dialled) < REDIAL_EVERY {
                    return None;
                }
                known.dialled = now;
                Some(addr)
            }
            None if room => {
                self.discovered.insert(
                    peer,
                    Discovered {
                        addrs: vec![addr.clone()],
                        dialled: now,
                    },
                );
                Some(addr)
            }
            None => None,
        }
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
            .map(|s| DialOpts::from(s.addr.clone()));
        let discovered = self
            .discovered
            .iter_mut()
            .filter(|(p, _)| absent(p))
            .map(|(p, d)| {
                d.dialled = now.unwrap_or(d.dialled);
                DialOpts::peer_id(*p)
                    .addresses(d.addrs.clone())
                    .condition(PeerCondition::DisconnectedAndNotDialing)
                    .build()
            });
        let pending: Vec<DialOpts> = statics.chain(discovered).collect();
        for opts in pending {
            if let Err(e) = swarm.dial(opts) {
                tracing::debug!("cannot dial a peer: {e}");
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
    fn mdns_adverts_neither_replace_known_addresses_nor_redial_at_will() {
        let t0 = Instant::now();
        let stat = PeerId::random();
        let static_addr: Multiaddr = "/ip4/10.0.0.2/tcp/4101".parse().unwrap();
        let mut peers = Peers::new(&[static_addr.clone().with_p2p(stat).unwrap()], t0);
        let evil: Multiaddr = "/ip4/10.6.6.6/tcp/1".parse().unwrap();
        assert_eq!(
            peers.discovered(stat, evil.clone(), t0),
            None,
            "a static peer"
        );
        assert_eq!(peers.statics[0].addr, static_addr.with_p2p(stat).unwrap());

        let p = PeerId::random();
        let first: Multiaddr = "/ip4/10.0.0.3/tcp/4101".parse().unwrap();
        let dialled = peers.discovered(p, first.clone(), t0).unwrap();
        assert_eq!(dialled, first.clone().with_p2p(p).unwrap());
        // A flood of adverts: no dial before REDIAL_EVERY, the first address kept, a few more
        // remembered.
        for i in 0..100u16 {
            let other: Multiaddr = format!("/ip4/10.6.6.6/tcp/{i}").parse().unwrap();
            let now = t0 + Duration::from_millis(u64::from(i));
            assert_eq!(peers.discovered(p, other, now), None);
        }
        let known = &peers.discovered[&p].addrs;
        assert_eq!(known.len(), MAX_ADDRS_PER_PEER);
        assert_eq!(known[0], first.with_p2p(p).unwrap());
        assert!(
            peers
                .discovered(p, evil.clone(), t0 + REDIAL_EVERY)
                .is_some()
        );
        assert!(peers.discovered(p, evil, t0 + REDIAL_EVERY).is_none());

        // Connected or banned peers are not dialled; the map is bounded.
        assert_eq!(peers.connected(p, None), Some(node_id(&p)));
        let addr: Multiaddr = "/ip4/10.0.0.4/tcp/1".parse().unwrap();
        assert_eq!(
            peers.discovered(p, addr.clone(), t0 + 2 * REDIAL_EVERY),
            None
        );
        for _ in 0..MAX_DISCOVERED {
            peers.discovered(PeerId::random(), addr.clone(), t0);
        }
        assert_eq!(peers.discovered.len(), MAX_DISCOVERED);
        assert_eq!(peers.discovered(PeerId::random(), addr, t0), None, "full");
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
