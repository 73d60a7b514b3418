//! Arbitrary input sequences for one agent, answered the way a driver would (or not at all),
//! with the agent's invariants checked after every input.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::Reader;
use super::fixtures::{self, Tree};
use crate::agent::{
    Agent, AgentConfig, Bitfield, Event, FetchError, HubMode, Input, MAX_BLOCKS, MAX_MESSAGE_SIZE,
    Message, NodeId, Output, Rack, RequestId, ServeId, Source, Time, release_tag,
};
use crate::block::{Cid, Codec, check_cid, cid_of, verify};

const ME: NodeId = NodeId(0);
/// The nodes a sequence names: this one (which the agent must ignore) and five peers.
const NODES: [NodeId; 6] = [ME, NodeId(1), NodeId(2), NodeId(3), NodeId(4), NodeId(5)];
/// Inputs per sequence at most.
const MAX_STEPS: usize = 300;
/// Inputs one "drive" step feeds at most.
const DRIVE_INPUTS: usize = 24;

/// What each step of a sequence does, by the value of its first byte modulo [`OPS`].
mod op {
    pub(super) const MEMBERS: u8 = 0;
    pub(super) const MEMBER_UP: u8 = 1;
    pub(super) const MEMBER_DOWN: u8 = 2;
    pub(super) const MESSAGE: u8 = 3;
    pub(super) const BLOCK_REQUEST: u8 = 4;
    pub(super) const SERVE_DONE: u8 = 5;
    pub(super) const BLOCK: u8 = 6;
    pub(super) const FETCH_PROGRESS: u8 = 7;
    pub(super) const FETCH_FAILED: u8 = 8;
    pub(super) const LOCAL: u8 = 9;
    pub(super) const TIMEOUT: u8 = 10;
    pub(super) const ADVANCE: u8 = 11;
    pub(super) const BOOT: u8 = 12;
    /// Answers every lookup from the store and every fetch with the right bytes.
    pub(super) const DRIVE: u8 = 13;
    /// Racks for some nodes (rack 0 is the agent's own when it has one).
    pub(super) const RACKS: u8 = 14;
    pub(super) const OPS: u8 = 15;
}

/// Runs one agent through the sequence the bytes describe: a config, the blocks the store
/// already holds, then steps (members, messages, block requests, answers to its fetches and
/// lookups, right or corrupt, timeouts, time moving forward, boots). After every input: the
/// agent's [`check_invariants`](Agent::check_invariants), and its outputs against what the
/// driver knows (a stored block verifies, a block that verifies is not rejected, nothing is
/// fetched from or served to a banned peer, a serve is of a held block within the upload
/// slots, a cancel is of a fetch in flight, messages round-trip).
pub fn agent_sequence(data: &[u8]) {
    let mut r = Reader::new(data);
    let mut driver = Driver::new(&mut r);
    let mut steps = 0;
    while !r.is_empty() && steps < MAX_STEPS {
        steps += driver.step(&mut r);
    }
}

/// What the input being fed lets the checks expect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Context {
    Request { id: ServeId, from: NodeId },
    Block { verifies: bool },
    Other,
}

#[derive(Debug)]
struct Driver {
    tree: &'static Tree,
    agent: Agent<Vec<u8>>,
    hub: HubMode,
    max_serves: usize,
    now: Time,
    /// What a lookup finds.
    store: BTreeSet<Cid>,
    lookups: Vec<Cid>,
    fetches: BTreeMap<RequestId, Cid>,
    serves: BTreeMap<ServeId, NodeId>,
    next_serve: u64,
    banned: BTreeSet<NodeId>,
    /// The root booted last, and the blocks of it the agent holds.
    root: Option<Cid>,
    held: BTreeSet<Cid>,
}

impl Driver {
    fn new(r: &mut Reader<'_>) -> Self {
        let flags = r.u8();
        let limits = r.u8();
        let cfg = AgentConfig {
            id: ME,
            seed: u64::from(r.u16()),
            hub: [
                HubMode::Fallback,
                HubMode::Fallback,
                HubMode::Only,
                HubMode::Off,
            ][usize::from(flags & 3)],
            hub_concurrency: 1 + usize::from(flags >> 2 & 1),
            peer_pipeline: 1 + usize::from(flags >> 3 & 1),
            max_peer_downloads: 2 + usize::from(flags >> 4 & 3),
            max_serves: 1 + usize::from(flags >> 6 & 1),
            neighbours: 2 + usize::from(flags >> 7),
            max_neighbours: 3,
            ban_after: 1 + u32::from(limits % 3),
            rack: (limits & 0x80 != 0).then_some(Rack(0)),
            ..AgentConfig::default()
        };
        let tree = fixtures::tree();
        let warm = r.u16();
        let store = tree
            .cids
            .iter()
            .enumerate()
            .filter(|(i, _)| warm >> (i % 16) & 1 == 1)
            .map(|(_, c)| *c)
            .collect();
        Driver {
            tree,
            hub: cfg.hub,
            max_serves: cfg.max_serves,
            agent: Agent::new(cfg),
            now: Time::ZERO,
            store,
            lookups: Vec::new(),
            fetches: BTreeMap::new(),
            serves: BTreeMap::new(),
            next_serve: 0,
            banned: BTreeSet::new(),
            root: None,
            held: BTreeSet::new(),
        }
    }

    /// One step; returns the inputs it fed.
    fn step(&mut self, r: &mut Reader<'_>) -> usize {
        let input = match r.u8() % op::OPS {
            op::MEMBERS => {
                let mask = r.u8();
                let list = NODES
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| mask >> i & 1 == 1)
                    .map(|(_, n)| *n)
                    .collect();
                Input::Members(list)
            }
            op::MEMBER_UP => Input::MemberUp(node(r)),
            op::RACKS => {
                let mask = r.u8();
                let claims = NODES
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| mask >> i & 1 == 1)
                    .map(|(_, &n)| (n, r.bool().then(|| Rack(r.below(3) as u64))))
                    .collect();
                Input::Racks(claims)
            }
            op::MEMBER_DOWN => Input::MemberDown(node(r)),
            op::MESSAGE => {
                let from = node(r);
                let Some(msg) = self.message(r) else {
                    return 0;
                };
                Input::Message { from, msg }
            }
            op::BLOCK_REQUEST => {
                let from = node(r);
                let id = ServeId(self.next_serve);
                self.next_serve += 1;
                let cid = self.cid(r);
                self.feed(
                    Input::BlockRequest { from, id, cid },
                    Context::Request { id, from },
                );
                return 1;
            }
            op::SERVE_DONE => {
                let id = match pick_key(&self.serves, r) {
                    Some(id) => id,
                    None => ServeId(u64::from(r.u8())),
                };
                self.serves.remove(&id);
                Input::ServeDone { id }
            }
            op::BLOCK => {
                let Some(req) = pick_key(&self.fetches, r) else {
                    return 0;
                };
                let cid = self.fetches[&req];
                let payload = self.payload(cid, r);
                let verifies = verify(&cid, &payload).is_ok();
                self.fetches.remove(&req);
                self.feed(Input::Block { req, payload }, Context::Block { verifies });
                return 1;
            }
            op::FETCH_PROGRESS => {
                let req = pick_key(&self.fetches, r).unwrap_or(RequestId(u64::from(r.u8())));
                Input::FetchProgress { req }
            }
            op::FETCH_FAILED => {
                let req = pick_key(&self.fetches, r).unwrap_or(RequestId(u64::from(r.u8())));
                self.fetches.remove(&req);
                let error = [
                    FetchError::Busy,
                    FetchError::NotFound,
                    FetchError::HubUnavailable,
                    FetchError::Disconnected,
                    FetchError::Other,
                ][r.below(5)];
                Input::FetchFailed { req, error }
            }
            op::LOCAL => {
                if self.lookups.is_empty() {
                    return 0;
                }
                let cid = self.lookups.remove(r.below(self.lookups.len()));
                let found = self.store.contains(&cid) && !r.bool();
                self.local(cid, found)
            }
            op::TIMEOUT => {
                if let Some(t) = self.agent.poll_timeout() {
                    self.now = self.now.max(t);
                }
                Input::Timeout
            }
            op::ADVANCE => {
                self.now = self.now + Duration::from_millis(u64::from(r.u16()));
                Input::Timeout
            }
            op::BOOT => {
                let root = match r.below(4) {
                    0 => self.cid(r),
                    _ => self.tree.root,
                };
                if self.root != Some(root) {
                    self.held.clear();
                    self.root = Some(root);
                }
                Input::Boot { root }
            }
            _ => return self.drive(),
        };
        self.feed(input, Context::Other);
        1
    }

    /// Answers the lookups and fetches the agent asked for, the way a healthy node would.
    fn drive(&mut self) -> usize {
        let mut fed = 0;
        while fed < DRIVE_INPUTS {
            if let Some(cid) = self.lookups.pop() {
                let found = self.store.contains(&cid);
                let input = self.local(cid, found);
                self.feed(input, Context::Other);
            } else if let Some((req, cid)) = self.fetches.pop_first() {
                let Some(bytes) = self.tree.blocks.get(&cid) else {
                    let error = FetchError::NotFound;
                    self.feed(Input::FetchFailed { req, error }, Context::Other);
                    fed += 1;
                    continue;
                };
                let payload = bytes.clone();
                let input = Input::Block { req, payload };
                self.feed(input, Context::Block { verifies: true });
            } else {
                break;
            }
            fed += 1;
        }
        fed
    }

    fn local(&mut self, cid: Cid, found: bool) -> Input<Vec<u8>> {
        let block = self.tree.blocks.get(&cid).filter(|_| found).cloned();
        if block.is_some() {
            self.held.insert(cid);
        }
        Input::Local { cid, block }
    }

    /// A block of the tree, or a CID of nothing.
    fn cid(&self, r: &mut Reader<'_>) -> Cid {
        let tree = &self.tree.cids;
        let i = r.below(tree.len() + 1);
        tree.get(i)
            .copied()
            .unwrap_or_else(|| cid_of(Codec::Raw, &[r.u8()]))
    }

    /// The bytes of `cid`, whole or damaged.
    fn payload(&self, cid: Cid, r: &mut Reader<'_>) -> Vec<u8> {
        let right = self.tree.blocks.get(&cid).cloned().unwrap_or_default();
        match r.u8() % 8 {
            0..=3 => right,
            4 => {
                let mut bytes = right;
                let i = r.below(bytes.len());
                if let Some(b) = bytes.get_mut(i) {
                    *b ^= 1 << r.below(8);
                }
                bytes
            }
            5 => right[..r.below(right.len())].to_vec(),
            6 => {
                let other = self.tree.cids[r.below(self.tree.cids.len())];
                self.tree.blocks[&other].clone()
            }
            _ => {
                let n = r.below(64);
                r.bytes(n).to_vec()
            }
        }
    }

    fn message(&self, r: &mut Reader<'_>) -> Option<Message> {
        let release = match (r.below(4), self.root) {
            (0, _) | (_, None) => r.u64(),
            (_, Some(root)) => release_tag(&root),
        };
        Some(match r.below(5) {
            0 => Message::Hello {
                release,
                bits: bits(r),
                fetching: bits(r),
                reply: r.bool(),
                rack: r.bool().then(|| Rack(r.below(3) as u64)),
            },
            1 => Message::Have {
                release,
                blocks: indices(r),
            },
            2 => Message::Fetching {
                release,
                blocks: indices(r),
            },
            3 if r.bool() => Message::Crossing {
                release,
                blocks: indices(r),
            },
            3 if r.bool() => Message::Resign { release },
            3 if r.bool() => Message::Unfetched {
                release,
                blocks: indices(r),
            },
            3 => Message::Bye,
            _ => {
                let n = r.below(64);
                return Message::decode(r.bytes(n)).ok();
            }
        })
    }

    fn feed(&mut self, input: Input<Vec<u8>>, context: Context) {
        self.agent.handle(self.now, input);
        while let Some(out) = self.agent.poll_output() {
            self.check(out, context);
        }
        self.agent.check_invariants();
        let p = self.agent.progress();
        assert!(p.have_blocks <= p.total_blocks && p.have_bytes <= p.total_bytes);
        assert!(self.serves.len() <= self.max_serves);
        if self.agent.is_booted() && self.root == Some(self.tree.root) {
            assert_eq!(self.held.len(), self.tree.cids.len(), "booted holds all");
        }
    }

    fn check(&mut self, out: Output<Vec<u8>>, context: Context) {
        match out {
            Output::Send { to, msg } => {
                assert_ne!(to, ME, "a message to itself");
                assert!(msg.encoded_len() <= MAX_MESSAGE_SIZE);
                assert_eq!(Message::decode(&msg.encode()).as_ref(), Ok(&msg));
            }
            Output::Fetch {
                req,
                from,
                cid,
                len,
            } => {
                match from {
                    Source::Peer(p) => {
                        assert!(!self.banned.contains(&p), "fetch {req:?} from banned {p}");
                        assert!(p != ME && self.hub != HubMode::Only, "fetch from {p}");
                    }
                    Source::Hub => assert_ne!(self.hub, HubMode::Off, "a hub fetch"),
                }
                if let Some(bytes) = self.tree.blocks.get(&cid) {
                    let exact = check_cid(&cid) == Ok(Codec::Raw) && self.root != Some(cid);
                    let fits = if exact {
                        bytes.len() == len as usize
                    } else {
                        bytes.len() <= len as usize
                    };
                    assert!(fits, "fetch of {cid} for {len} bytes");
                }
                assert!(self.fetches.insert(req, cid).is_none(), "{req:?} again");
            }
            Output::Cancel { req } => {
                let known = self.fetches.remove(&req).is_some();
                assert!(known, "cancel of {req:?}, which is not in flight");
            }
            Output::Serve { id, cid } => {
                let Context::Request { id: asked, from } = context else {
                    panic!("serve {id:?} unasked");
                };
                assert_eq!(id, asked);
                assert!(!self.banned.contains(&from), "serve to banned {from}");
                assert!(self.held.contains(&cid), "serve of {cid}, not held");
                self.serves.insert(id, from);
                assert!(
                    self.serves.len() <= self.max_serves,
                    "over the upload slots"
                );
            }
            Output::Refuse { id, .. } => {
                assert!(matches!(context, Context::Request { id: asked, .. } if asked == id));
            }
            Output::Lookup { cid } => self.lookups.push(cid),
            Output::Store { cid, payload } => {
                assert!(
                    verify(&cid, &payload).is_ok(),
                    "Store of {cid} whose payload does not verify"
                );
                self.store.insert(cid);
                self.held.insert(cid);
            }
            Output::Event(event) => self.check_event(event, context),
        }
    }

    fn check_event(&mut self, event: Event, context: Context) {
        match event {
            Event::Rejected { from, cid } => assert!(
                matches!(context, Context::Block { verifies: false }),
                "{cid} from {from:?} rejected though it verifies"
            ),
            Event::PeerBanned { peer } => {
                assert!(self.agent.is_banned(peer));
                self.banned.insert(peer);
            }
            Event::Booted { root, blocks, .. } => {
                assert_eq!(Some(root), self.root);
                if root == self.tree.root {
                    assert_eq!(blocks, self.tree.cids.len());
                }
            }
            Event::Resigned => assert!(self.agent.stats().resigned),
            Event::PeerPenalised { .. } | Event::Stalled { .. } | Event::Failed { .. } => {}
        }
    }
}

fn node(r: &mut Reader<'_>) -> NodeId {
    NODES[r.below(NODES.len())]
}

fn pick_key<K: Copy + Ord, V>(map: &BTreeMap<K, V>, r: &mut Reader<'_>) -> Option<K> {
    let i = r.below(map.len());
    map.keys().nth(i).copied()
}

fn bits(r: &mut Reader<'_>) -> Bitfield {
    let mask = r.u16();
    let mut bits = Bitfield::new();
    for i in (0..16).filter(|i| mask >> i & 1 == 1) {
        bits.set(i);
    }
    if mask == u16::MAX {
        bits.set(r.u32() % MAX_BLOCKS);
    }
    bits
}

fn indices(r: &mut Reader<'_>) -> Vec<u32> {
    (0..r.below(5))
        .map(|_| match r.u8() {
            u8::MAX => r.u32(),
            v => u32::from(v % 20),
        })
        .collect()
}

/// Sequences that boot the fixture tree with peers around: cold, warm, with corrupt blocks,
/// serving peers.
pub(super) fn seeds() -> Vec<Vec<u8>> {
    use op::*;
    let config = |flags: u8, ban: u8, warm: u16| {
        let [w0, w1] = warm.to_le_bytes();
        vec![flags, 7, 0, ban, w0, w1]
    };
    let mut seeds = Vec::new();
    // Alone, cold: boot from the hub.
    let mut s = config(0, 2, 0);
    s.extend([BOOT, 1]);
    s.extend([DRIVE; 6]);
    seeds.push(s);
    // Warm, with peers: hellos, a block request, time passing.
    let mut s = config(0b0101_0100, 0, 0x00ff);
    s.extend([MEMBERS, 0b1110, BOOT, 1, DRIVE]);
    s.extend([MESSAGE, 1, 1, 0, 0xff, 0x01, 0, 0, 1]);
    s.extend([
        BLOCK_REQUEST,
        2,
        0,
        DRIVE,
        ADVANCE,
        0x10,
        0x27,
        TIMEOUT,
        DRIVE,
    ]);
    seeds.push(s);
    // Peers that announce everything, then send corrupt blocks until banned.
    let mut s = config(0b1000_0000, 0, 0);
    s.extend([MEMBERS, 0b0110, BOOT, 2, LOCAL, 0, 1, DRIVE]);
    for from in [1, 2] {
        s.extend([MESSAGE, from, 1, 0, 0xff, 0x01, 0, 0, 1]);
    }
    for _ in 0..6 {
        s.extend([BLOCK, 0, 4, 0, 0, BLOCK, 0, 7, 3, 1, 2, 3]);
    }
    s.extend([
        TIMEOUT,
        FETCH_FAILED,
        0,
        2,
        ADVANCE,
        0xff,
        0xff,
        DRIVE,
        DRIVE,
    ]);
    seeds.push(s);
    // Hub down, members leaving, serving until the slots are full.
    let mut s = config(0b0100_0001, 1, 0x0003);
    s.extend([MEMBERS, 0b11_1111, BOOT, 1]);
    s.extend([
        FETCH_FAILED,
        0,
        2,
        TIMEOUT,
        FETCH_FAILED,
        0,
        2,
        ADVANCE,
        0,
        0x40,
    ]);
    s.extend([MEMBER_DOWN, 1, MEMBER_UP, 4, DRIVE]);
    s.extend([
        BLOCK_REQUEST,
        3,
        0,
        BLOCK_REQUEST,
        4,
        0,
        SERVE_DONE,
        0,
        FETCH_PROGRESS,
        0,
    ]);
    s.extend([MESSAGE, 3, 1, 3, BOOT, 0, 5, DRIVE, DRIVE]);
    seeds.push(s);
    seeds
}
