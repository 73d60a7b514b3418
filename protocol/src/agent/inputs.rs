//! What the agent does with each input: the handlers route it to the parts, in an order that
//! every node follows (outputs and random draws depend on it).

use super::{
    Agent, Bitfield, Cid, Event, FetchError, HubMode, Message, NodeId, Output, Payload, Plan, Rack,
    RequestId, ServeId, Source, State, TimerKind,
};

/// Stall periods of `Busy`-only answers after which a neighbour takes a fault: a server at
/// its upload limit keeps a peer waiting for a while, one withholding blocks forever.
const BUSY_FAULT_STALLS: u32 = 3;

impl<P: Payload> Agent<P> {
    pub(super) fn on_boot(&mut self, root: Cid) {
        if self.plan.as_ref().is_some_and(|p| p.root == root) {
            return;
        }
        for req in self.requests.ids() {
            self.cancel(req);
        }
        self.requests.restart();
        self.timers.clear(TimerKind::RackGate);
        self.racks.restart();
        self.neighbours.restart();
        self.duty.restart();
        self.window.restart();
        let plan = Plan::new(root);
        self.plan = Some(plan);
        self.owners
            .start_boot(self.neighbours.members_shared(), self.now, &mut self.timers);
        self.booted = false;
        self.hub.restart();
        let grace =
            (!self.neighbours.members().is_empty()).then(|| self.now + self.cfg.hello_grace);
        self.timers.set(TimerKind::HelloGrace, grace);
        self.touch_progress();
        self.timers
            .arm(TimerKind::StallTick, self.now + self.cfg.stall_timeout);
        self.rank_blocks(0..1);
        self.out.push_back(Output::Lookup { cid: root });
        self.hello_all();
        self.ensure_neighbours();
    }

    pub(super) fn on_members(&mut self, list: Vec<NodeId>) {
        let gone = self.neighbours.set_members(list);
        if !self.neighbours.members().is_empty() {
            self.owners.saw_member(self.now);
        }
        self.owners.keep_members(self.neighbours.members());
        for id in gone {
            self.racks.forget(id);
            self.drop_neighbour(id, false);
        }
        self.rerank_all();
        self.ensure_neighbours();
    }

    pub(super) fn on_member_up(&mut self, id: NodeId) {
        if !self.neighbours.add_member(id) {
            return;
        }
        self.owners.saw_member(self.now);
        self.ensure_neighbours();
    }

    pub(super) fn on_racks(&mut self, claims: Vec<(NodeId, Option<Rack>)>) {
        for (id, rack) in claims {
            self.racks.claim(id, rack);
        }
    }

    pub(super) fn on_member_down(&mut self, id: NodeId) {
        self.racks.forget(id);
        self.neighbours.remove_member(id);
        self.forget_owner(id);
        self.drop_neighbour(id, false);
        self.ensure_neighbours();
    }

    pub(super) fn on_message(&mut self, from: NodeId, msg: Message) {
        if self.neighbours.is_banned(from) || from == self.cfg.id || self.cfg.hub == HubMode::Only {
            return;
        }
        self.duty
            .answered(from, self.now, matches!(msg, Message::Pong));
        match msg {
            Message::Hello {
                release,
                bits,
                fetching,
                reply,
                rack,
            } => {
                self.racks.claim(from, rack);
                if !self.neighbours.accept(from, self.now) {
                    self.out.push_back(Output::Send {
                        to: from,
                        msg: Message::Bye,
                    });
                    return;
                }
                if self.plan.as_ref().map(|p| p.tag) == Some(release) {
                    let changes = self.neighbours.add_bits(from, &bits);
                    self.apply(changes);
                    if self.racks.is_local(from) {
                        let mut found = self.requests.deferred();
                        found.retain(|&i| bits.get(i));
                        self.undefer(found);
                    }
                    let changes =
                        self.neighbours
                            .add_fetching(from, fetching.iter(), self.now, false);
                    self.apply(changes);
                }
                if let Some(rtt) = self.neighbours.mark_greeted(from, self.now) {
                    self.duty.round_trip(rtt);
                    self.rearm_pings();
                }
                if reply {
                    let hello = self.hello(false);
                    self.out.push_back(Output::Send {
                        to: from,
                        msg: hello,
                    });
                }
                if self.neighbours.all_outbound_greeted()
                    && self.timers.is_armed(TimerKind::HelloGrace)
                {
                    self.end_grace();
                }
            }
            Message::Have { release, blocks } => {
                if self.plan.as_ref().map(|p| p.tag) != Some(release) {
                    return;
                }
                let mut fetched = Vec::new();
                let local: Vec<u32> = if self.racks.is_local(from) {
                    let deferred = |i: &u32| self.requests.is_deferred(*i);
                    blocks.iter().copied().filter(deferred).collect()
                } else {
                    Vec::new()
                };
                // Once the plan is complete every manifest is held.
                let manifests: Vec<u32> = match self.plan.as_ref() {
                    Some(p) if !p.complete => blocks
                        .iter()
                        .copied()
                        .filter(|&i| p.blocks.get(i as usize).is_some_and(|b| b.manifest))
                        .collect(),
                    _ => Vec::new(),
                };
                let changes = self.neighbours.have(from, blocks, &mut fetched);
                for &(idx, _) in &fetched {
                    self.duty.fetched_instead(idx, from);
                }
                self.apply(changes);
                self.undefer(local);
                self.ask_new_holder(from, manifests);
                for (idx, start) in fetched {
                    self.duty.fetched_by(from, self.now);
                    self.hub_served(start);
                    // A manifest's length is known once held.
                    let block = self.plan.as_ref().and_then(|p| p.blocks.get(idx as usize));
                    if let Some(b) = block.filter(|b| !b.manifest || b.state == State::Held) {
                        self.hub_sample(start, b.len);
                    }
                }
            }
            Message::Fetching { release, blocks } => {
                if self.plan.as_ref().map(|p| p.tag) == Some(release) {
                    if self.racks.is_local(from) && !self.neighbours.is_deposed(from) {
                        self.heard_crossing(from, &blocks);
                    }
                    let changes =
                        self.neighbours
                            .add_fetching(from, blocks.into_iter(), self.now, true);
                    self.apply(changes);
                }
            }
            Message::Crossing { release, blocks } => {
                if self.plan.as_ref().map(|p| p.tag) == Some(release) && self.racks.is_local(from) {
                    self.heard_crossing(from, &blocks);
                }
            }
            Message::Unfetched { release, blocks } => {
                let Some(plan) = self.plan.as_ref().filter(|p| p.tag == release) else {
                    return;
                };
                let passed = self.owners.pass(plan, &blocks, from, self.now);
                let changes = self.neighbours.fetches_failed(from, &blocks);
                self.apply(changes);
                if passed.is_empty() {
                    return;
                }
                // A node backing off from the hub cannot try them now: it passes them on.
                if self.timers.is_armed(TimerKind::HubRetry) {
                    for idx in passed {
                        self.forward_pass(idx);
                    }
                } else {
                    self.hub.wake();
                }
            }
            Message::Resign { release } => {
                let owner = self.owners.owners().binary_search(&from).is_ok();
                if owner && self.plan.as_ref().map(|p| p.tag) == Some(release) {
                    self.stats.resignations += 1;
                    self.unseat(&[from], false);
                }
            }
            Message::Bye => {
                self.neighbours.said_bye(from, self.now);
                self.drop_neighbour(from, false);
                self.ensure_neighbours();
            }
            Message::Ping => self.out.push_back(Output::Send {
                to: from,
                msg: Message::Pong,
            }),
            Message::Pong => self.rearm_pings(),
        }
    }

    /// A round trip was measured: the pings out may have less time now.
    fn rearm_pings(&mut self) {
        let timeout = self.duty.ping_timeout(self.cfg.greet_timeout);
        let (mute, next) = self.duty.silent(self.now, timeout);
        let due = if mute.is_empty() {
            next
        } else {
            Some(self.now)
        };
        if let Some(t) = due {
            self.timers.arm_earliest(TimerKind::Greet, t);
        }
    }

    pub(super) fn on_block_request(&mut self, from: NodeId, id: ServeId, cid: Cid) {
        let held = self
            .plan
            .as_ref()
            .and_then(|p| {
                p.index(&cid)
                    .map(|i| p.blocks[i as usize].state == State::Held)
            })
            .unwrap_or(false);
        let refuse = |error| Output::Refuse { id, error };
        if !held || self.neighbours.is_banned(from) {
            self.out.push_back(refuse(FetchError::NotFound));
        } else if !self.serves.start(id, from) {
            self.out.push_back(refuse(FetchError::Busy));
        } else {
            self.stats.serves += 1;
            self.out.push_back(Output::Serve { id, cid });
        }
    }

    pub(super) fn on_block(&mut self, req: RequestId, payload: P) {
        let Some(r) = self.finish_request(req) else {
            self.probation_answered(req, Ok(&payload));
            return;
        };
        let Some(b) = self.plan.as_ref().map(|p| &p.blocks[r.idx as usize]) else {
            return;
        };
        let (cid, state, manifest) = (b.cid, b.state, b.manifest);
        if state == State::Held {
            self.stats.duplicate_blocks += 1;
            return;
        }
        let len_ok = b.fits(payload.len());
        let bytes_ok = !manifest || payload.bytes().is_some();
        if !len_ok || !bytes_ok || payload.verify(&cid).is_err() {
            self.reject(r.idx, r.source, cid);
            return;
        }
        let len = payload.len() as u64;
        let top = self.duty.top(r.idx);
        match r.source {
            Source::Hub => {
                self.stats.bytes_from_hub += len;
                self.duty.fetched_instead(r.idx, self.cfg.id);
                let took = self.now.saturating_duration_since(r.started);
                self.hub.delivered(self.now, took);
                self.hub_sample(r.started, len as u32);
            }
            Source::Peer(p) => {
                self.stats.bytes_from_peers += len;
                let changes = self.neighbours.delivered(p);
                self.apply(changes);
                let took = self.now.saturating_duration_since(r.started);
                self.requests.delivered(p, took);
                // A manifest this node failed to fetch from the hub reached it from a peer:
                // someone fetched it since, so the hub is likely back (chunks circulate among
                // peers whatever the hub does); a back-off ends as when a neighbour's hub
                // fetch completes.
                if manifest && self.hub.failed_on(r.idx) {
                    self.hub.works(self.now, &mut self.timers);
                }
            }
        }
        self.outrun(r.idx, top);
        let manifest_bytes = if manifest {
            payload.bytes().map(<[u8]>::to_vec)
        } else {
            None
        };
        self.out.push_back(Output::Store { cid, payload });
        self.touch_progress();
        self.held(r.idx, len, manifest_bytes.as_deref());
    }

    /// Block `idx` arrived: its other requests are cancelled. A holder not relied on that had
    /// it for `second_holder_after` or longer was outrun by the one asked after it: that is
    /// a miss (a peer that claims blocks and never serves them is banned even when every
    /// block it was asked for came from elsewhere), and the watched owner that ranked it first
    /// (`top`, taken before a hub delivery drops it), outrun so on its own block, is deposed
    /// (see `Agent::owner_failed`). One asked
    /// more recently is put on probation (see `Requests::probation`): it is judged when it
    /// answers or runs out.
    fn outrun(&mut self, idx: u32, top: Option<NodeId>) {
        for other in self.requests.for_block(idx) {
            let Some(r) = self.finish_request(other) else {
                continue;
            };
            if let Source::Peer(p) = r.source
                && !self.neighbours.is_relied(p)
            {
                let waited = self.now.saturating_duration_since(r.started);
                if waited < self.cfg.second_holder_after {
                    self.requests.probation(other, &r, &mut self.timers);
                    continue;
                }
                self.missed(p, r.started);
                self.owner_failed(p, top);
            }
            self.out.push_back(Output::Cancel { req: other });
        }
    }

    /// A request on probation answered: a block that verifies ends it (served late, the
    /// holder earns no trust), a corrupt one is a fault, and a refusal other than `Busy` is a
    /// miss.
    fn probation_answered(&mut self, req: RequestId, answer: Result<&P, FetchError>) {
        let Some(p) = self.requests.end_probation(req, &mut self.timers) else {
            return;
        };
        match answer {
            Ok(payload) => {
                let Some(b) = self
                    .plan
                    .as_ref()
                    .and_then(|plan| plan.blocks.get(p.idx as usize))
                else {
                    return;
                };
                let cid = b.cid;
                if b.fits(payload.len()) && payload.verify(&cid).is_ok() {
                    self.stats.duplicate_blocks += 1;
                } else {
                    self.reject(p.idx, Source::Peer(p.peer), cid);
                }
            }
            Err(FetchError::Busy | FetchError::Disconnected) => {}
            Err(_) => {
                self.missed_as(p.peer, p.started, true);
            }
        }
    }

    /// Requests on probation that ran out: each is a miss of its holder.
    pub(super) fn on_probation_expired(&mut self) {
        for (req, p) in self.requests.probation_expired(self.now, &mut self.timers) {
            self.stats.timeouts += 1;
            self.out.push_back(Output::Cancel { req });
            self.missed_as(p.peer, p.started, true);
        }
    }

    pub(super) fn on_progress(&mut self, req: RequestId) {
        if self.requests.progress(req, self.now, &mut self.timers) == Some(Source::Hub) {
            self.hub.bytes_arrived(self.now);
        }
    }

    pub(super) fn on_fetch_failed(&mut self, req: RequestId, error: FetchError) {
        let Some(r) = self.finish_request(req) else {
            self.probation_answered(req, Err(error));
            return;
        };
        match r.source {
            Source::Hub => {
                if error == FetchError::HubUnavailable {
                    self.hub.unreachable(self.now);
                }
                self.hub_failed(r.idx);
            }
            Source::Peer(p) => match error {
                FetchError::Busy => {
                    debug_assert!(self.neighbours.contains(p), "requests go to neighbours");
                    let until = self.now + self.cfg.busy_backoff;
                    let streak = self.requests.busy(p, self.now, until, &mut self.timers);
                    if streak >= self.cfg.stall_timeout * BUSY_FAULT_STALLS {
                        self.missed(p, r.started);
                    }
                    if streak >= self.cfg.stall_timeout {
                        self.unproductive(p);
                    }
                }
                FetchError::NotFound => {
                    let change = self.neighbours.not_found(p, r.idx);
                    self.apply(change);
                    self.missed(p, r.started);
                    self.owner_failed(p, self.duty.top(r.idx));
                }
                FetchError::Disconnected => {
                    let change = self.neighbours.exclude(r.idx, p);
                    self.apply(change);
                }
                FetchError::HubUnavailable | FetchError::Other => {
                    let change = self.neighbours.exclude(r.idx, p);
                    self.apply(change);
                    self.missed(p, r.started);
                    self.owner_failed(p, self.duty.top(r.idx));
                }
            },
        }
    }

    /// A neighbour answered only `Busy` for a stall period: it makes room for another (it is
    /// not picked again for a while). `Busy` is a server's honest back-pressure (upload limits
    /// answer it to every peer beyond their share), so only a streak of
    /// [`BUSY_FAULT_STALLS`] stall periods is a fault as well.
    fn unproductive(&mut self, peer: NodeId) {
        if self.neighbours.is_banned(peer) {
            return;
        }
        self.neighbours.said_bye(peer, self.now);
        self.drop_neighbour(peer, true);
        self.ensure_neighbours();
    }

    pub(super) fn on_local(&mut self, cid: Cid, block: Option<P>) {
        let Some(plan) = self.plan.as_mut() else {
            return;
        };
        let Some(idx) = plan.index(&cid) else {
            return;
        };
        let b = &mut plan.blocks[idx as usize];
        if b.state != State::Lookup {
            return;
        }
        b.state = State::Missing;
        let (manifest, len) = (b.manifest, u64::from(b.len));
        plan.lookups -= 1;
        match block {
            Some(p) if !manifest || p.bytes().is_some() => {
                let bytes = if manifest {
                    p.bytes().map(<[u8]>::to_vec)
                } else {
                    None
                };
                self.held(idx, p.len() as u64, bytes.as_deref());
            }
            _ => {
                plan.to_fetch += 1;
                plan.to_fetch_bytes += len;
                self.ready_insert(idx);
                self.hub.wake();
            }
        }
    }

    fn held(&mut self, idx: u32, len: u64, manifest: Option<&[u8]>) {
        self.undefer([idx]);
        self.ready_remove(idx);
        let Some(plan) = self.plan.as_mut() else {
            return;
        };
        if !plan.mark_held(idx, len) {
            return;
        }
        let added = manifest.map(|bytes| plan.add_manifest(idx, bytes));
        let changes = self.neighbours.clear_exclusions(idx);
        self.apply(changes);
        self.duty.appeared(idx, self.now);
        self.window.seen(idx);
        self.neighbours.queue_have(idx);
        match added {
            Some(Ok(new)) => {
                if let Some(plan) = self.plan.as_ref().filter(|p| p.complete) {
                    self.neighbours.bound(plan.blocks.len() as u32);
                }
                if let (Some(&first), Some(&last)) = (new.first(), new.last()) {
                    self.rank_blocks(first..last + 1);
                    if let Some(plan) = self.plan.as_ref() {
                        for i in first..=last {
                            self.out.push_back(Output::Lookup {
                                cid: plan.blocks[i as usize].cid,
                            });
                        }
                    }
                }
            }
            Some(Err(error)) => {
                self.out.push_back(Output::Event(Event::Failed { error }));
                self.timers.clear(TimerKind::StallTick);
            }
            None => {}
        }
        if !self.booted && self.plan.as_ref().is_some_and(Plan::is_booted) {
            self.booted = true;
            self.timers.clear(TimerKind::StallTick);
            if let Some(p) = self.plan.as_ref() {
                self.out.push_back(Output::Event(Event::Booted {
                    root: p.root,
                    blocks: p.blocks.len(),
                    bytes: p.held_bytes,
                }));
            }
        }
    }

    fn reject(&mut self, idx: u32, source: Source, cid: Cid) {
        self.stats.blocks_rejected += 1;
        self.out
            .push_back(Output::Event(Event::Rejected { from: source, cid }));
        match source {
            Source::Hub => self.hub_failed(idx),
            Source::Peer(p) => {
                let manifest = self
                    .plan
                    .as_ref()
                    .is_some_and(|plan| plan.blocks[idx as usize].manifest);
                if manifest && self.duty.top(idx) == Some(p) {
                    self.requests.owner_corrupt(idx);
                    self.hub.wake();
                }
                let change = self.neighbours.exclude(idx, p);
                self.apply(change);
                let (faults, changes) = self.neighbours.add_fault(p);
                self.apply(changes);
                self.doubt_requests_to(p);
                self.out
                    .push_back(Output::Event(Event::PeerPenalised { peer: p, faults }));
                if faults >= self.cfg.ban_after {
                    self.ban(p);
                } else {
                    // An honest peer verifies every block before it holds it: one that sent a
                    // corrupt block is no longer trusted to deliver the blocks it owns.
                    self.forget_owner(p);
                    let changes = self.neighbours.drop_fetching(p);
                    self.apply(changes);
                }
            }
        }
    }

    pub(super) fn ban(&mut self, peer: NodeId) {
        if !self.neighbours.ban(peer) {
            return;
        }
        self.forget_owner(peer);
        self.racks.forget(peer);
        self.drop_neighbour(peer, true);
        self.out
            .push_back(Output::Event(Event::PeerBanned { peer }));
        self.ensure_neighbours();
    }

    fn hello(&self, reply: bool) -> Message {
        match &self.plan {
            Some(p) => Message::Hello {
                release: p.tag,
                bits: p.held.clone(),
                fetching: self.requests.hub_fetching(),
                reply,
                rack: self.cfg.rack,
            },
            None => Message::Hello {
                release: 0,
                bits: Bitfield::new(),
                fetching: Bitfield::new(),
                reply,
                rack: self.cfg.rack,
            },
        }
    }

    /// Sends a `Hello` asking for their holdings to every neighbour.
    pub(super) fn hello_all(&mut self) {
        let hello = self.hello(true);
        for id in self.neighbours.ids() {
            self.out.push_back(Output::Send {
                to: id,
                msg: hello.clone(),
            });
        }
    }

    pub(super) fn ensure_neighbours(&mut self) {
        if self.cfg.hub == HubMode::Only {
            return;
        }
        let cross = self.cfg.cross_rack_neighbours;
        let picked = self
            .neighbours
            .pick_more(&mut self.rng, self.now, &self.racks, cross);
        if picked.is_empty() {
            return;
        }
        self.timers
            .arm_earliest(TimerKind::Greet, self.now + self.cfg.greet_timeout);
        let hello = self.hello(true);
        for to in picked {
            self.out.push_back(Output::Send {
                to,
                msg: hello.clone(),
            });
        }
    }

    pub(super) fn drop_neighbour(&mut self, id: NodeId, bye: bool) {
        let Some(changes) = self.neighbours.remove(id) else {
            return;
        };
        if bye {
            self.out.push_back(Output::Send {
                to: id,
                msg: Message::Bye,
            });
        }
        self.apply(changes);
        for req in self.requests.to_peer(id) {
            self.cancel(req);
        }
        self.requests.forget_peer(id);
    }
}
