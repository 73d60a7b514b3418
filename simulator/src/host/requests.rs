//! Block requests: from the requester's agent to the server's (or the hub), onto a flow, and
//! back; cancellations and refusals.

use super::*;

impl World<'_> {
    pub(super) fn new_req(&mut self, r: Req) -> (u32, u32) {
        match self.free.pop() {
            Some(h) => {
                let g = self.reqs[h as usize].g.wrapping_add(1);
                self.reqs[h as usize] = Req { g, live: true, ..r };
                (h, g)
            }
            None => {
                self.reqs.push(Req {
                    g: 0,
                    live: true,
                    ..r
                });
                ((self.reqs.len() - 1) as u32, 0)
            }
        }
    }

    pub(super) fn req(&self, h: u32, g: u32) -> Option<&Req> {
        self.reqs.get(h as usize).filter(|r| r.live && r.g == g)
    }

    pub(super) fn free_req(&mut self, h: u32) {
        let r = &mut self.reqs[h as usize];
        if r.live {
            r.live = false;
            let (n, rid, ep) = (r.requester, r.rid, r.ep_req);
            let host = &mut self.hosts[n as usize];
            if host.epoch == ep && host.reqs.get(&rid.0) == Some(&(h, self.reqs[h as usize].g)) {
                host.reqs.remove(&rid.0);
            }
            self.free.push(h);
        }
    }

    /// The requester is still the incarnation that asked and still wants the answer.
    pub(super) fn requester_wants(&self, r: &Req) -> bool {
        let host = &self.hosts[r.requester as usize];
        host.alive && host.epoch == r.ep_req && !r.cancelled
    }

    pub(super) fn req_arrive(&mut self, h: u32, g: u32) {
        let Some(r) = self.req(h, g).cloned() else {
            return;
        };
        self.trace.record(
            self.now,
            r.src,
            Kind::Request,
            r.block as u64 | (r.requester as u64) << 32,
        );
        if !self.requester_wants(&r) {
            self.free_req(h);
            return;
        }
        if r.src == HUB {
            if self.hub_up && !self.hosts[r.requester as usize].hub_unreachable {
                self.reqs[h as usize].stage = Stage::OnFlow;
                let len = self.rel.blocks[r.block as usize].len as u64;
                self.net.enqueue(
                    SimTime(self.now),
                    HUB,
                    r.requester,
                    Chunk {
                        len,
                        tag: (g as u64) << 32 | h as u64,
                    },
                );
            } else {
                self.stats.route_failed[r.requester as usize] |= self.hub_up;
                self.reqs[h as usize].stage = Stage::Returning;
                self.at(
                    self.sc.hub_latency,
                    Ev::Reply {
                        h,
                        g,
                        error: FetchError::HubUnavailable,
                    },
                );
            }
            return;
        }
        let srv = &self.hosts[r.src as usize];
        if !srv.alive || srv.epoch != r.ep_srv || !self.reachable(r.requester, r.src) {
            self.reqs[h as usize].stage = Stage::Returning;
            let d = self.net.topology().latency(r.src, r.requester);
            self.at(
                d,
                Ev::Reply {
                    h,
                    g,
                    error: FetchError::Disconnected,
                },
            );
            return;
        }
        if self.hosts[r.src as usize].role != Role::Node {
            self.attacker_request(h, g, &r);
            return;
        }
        self.reqs[h as usize].stage = Stage::AtServer;
        let cid = self.rel.blocks[r.block as usize].cid;
        self.input(
            r.src,
            Input::BlockRequest {
                from: NodeId(r.requester as u64),
                id: sid(h, g),
                cid,
            },
        );
    }

    pub(super) fn output(&mut self, n: u32, out: Output<SimPayload>) {
        match out {
            Output::Send { to, msg } => {
                let to = to.0 as u32;
                if to >= self.sc.nodes || to == n {
                    return;
                }
                self.send(n, to, msg);
            }
            Output::Fetch { req, from, cid, .. } => self.fetch(n, req, from, cid),
            Output::Cancel { req } => {
                let Some((h, g)) = self.hosts[n as usize].reqs.remove(&req.0) else {
                    return;
                };
                let Some(r) = self.reqs.get_mut(h as usize).filter(|r| r.live && r.g == g) else {
                    return;
                };
                r.cancelled = true;
                let (stage, src) = (r.stage, r.src);
                if stage == Stage::Lost {
                    self.free_req(h);
                    return;
                }
                if stage == Stage::OnFlow {
                    let d = if src == HUB {
                        self.stats.control_bytes += SMALL_BYTES;
                        self.sc.hub_latency
                    } else {
                        self.ctl_delay(n, src, SMALL_BYTES)
                    };
                    self.at(d, Ev::CancelArrive { h, g });
                }
            }
            Output::Serve { id, cid } => self.serve(n, id, cid),
            Output::Refuse { id, error } => {
                let (h, g) = (id.0 as u32, (id.0 >> 32) as u32);
                let Some(r) = self.req(h, g).cloned() else {
                    return;
                };
                if r.src != n || r.stage != Stage::AtServer {
                    return;
                }
                self.reqs[h as usize].stage = Stage::Returning;
                let d = self.ctl_delay(n, r.requester, SMALL_BYTES);
                self.at(d, Ev::Reply { h, g, error });
            }
            Output::Lookup { cid } => {
                let block = self
                    .rel
                    .index(&cid)
                    .filter(|&b| self.holds(n, b))
                    .map(|b| self.rel.blocks[b as usize].payload(false));
                let now = Time::from_nanos(self.now);
                if let Some(a) = self.hosts[n as usize].agent.as_mut() {
                    a.handle(now, Input::Local { cid, block });
                }
            }
            Output::Store { cid, payload } => {
                if payload.is_corrupt(&cid) {
                    self.stats.corrupt_accepted += 1;
                } else if let Some(b) = self.rel.index(&cid) {
                    self.hold(n, b);
                }
            }
            Output::Event(e) => self.event(n, e),
        }
    }

    /// Sends a control message from host `n` to host `to`.
    pub(super) fn send(&mut self, n: u32, to: u32, msg: Message) {
        let bytes = msg.encoded_len() as u64 + FRAME_BYTES;
        let d = self.ctl_delay(n, to, bytes);
        if self.lost(n, to) || !self.reachable(n, to) {
            return;
        }
        let epoch = self.hosts[to as usize].epoch;
        self.at(
            d,
            Ev::Msg {
                from: n,
                to,
                epoch,
                msg,
            },
        );
    }

    /// The server's agent agreed to serve: the chunk joins the connection's flow.
    fn serve(&mut self, n: u32, id: ServeId, cid: Cid) {
        let (h, g) = (id.0 as u32, (id.0 >> 32) as u32);
        let Some(r) = self.req(h, g).cloned() else {
            self.serve_done(n, self.hosts[n as usize].epoch, id);
            return;
        };
        if r.src != n || r.stage != Stage::AtServer {
            return;
        }
        let b = self
            .rel
            .index(&cid)
            .filter(|&b| b == r.block && self.holds(n, b));
        if b.is_none() || !self.requester_wants(&r) || !self.reachable(n, r.requester) {
            self.serve_done(n, r.ep_srv, id);
            self.reqs[h as usize].stage = Stage::Returning;
            let d = self.ctl_delay(n, r.requester, SMALL_BYTES);
            self.at(
                d,
                Ev::Reply {
                    h,
                    g,
                    error: FetchError::NotFound,
                },
            );
            return;
        }
        let corrupt = self.hosts[n as usize].corrupt;
        let rr = &mut self.reqs[h as usize];
        rr.stage = Stage::OnFlow;
        rr.corrupt = corrupt;
        let len = self.rel.blocks[r.block as usize].len as u64;
        self.net.enqueue(
            SimTime(self.now),
            n,
            r.requester,
            Chunk {
                len,
                tag: (g as u64) << 32 | h as u64,
            },
        );
    }

    pub(super) fn fetch(&mut self, n: u32, rid: RequestId, from: Source, cid: Cid) {
        let (src, ep_srv) = match from {
            Source::Hub => (HUB, 0),
            Source::Peer(p) if (p.0 as u32) < self.sc.nodes && p.0 as u32 != n => {
                (p.0 as u32, self.hosts[p.0 as usize].epoch)
            }
            Source::Peer(_) => (u32::MAX - 1, 0),
        };
        let block = self.rel.index(&cid);
        let r = Req {
            g: 0,
            live: true,
            requester: n,
            rid,
            src,
            block: block.unwrap_or(0),
            ep_req: self.hosts[n as usize].epoch,
            ep_srv,
            stage: Stage::ToServer,
            cancelled: false,
            corrupt: false,
        };
        let (h, g) = self.new_req(r);
        self.hosts[n as usize].reqs.insert(rid.0, (h, g));
        if block.is_none() || src == u32::MAX - 1 {
            self.reqs[h as usize].stage = Stage::Returning;
            self.at(
                0,
                Ev::Reply {
                    h,
                    g,
                    error: FetchError::NotFound,
                },
            );
            return;
        }
        if src == HUB {
            self.stats.control_bytes += REQUEST_BYTES;
            if self.hub_up && !self.hosts[n as usize].hub_unreachable {
                self.at(self.sc.hub_latency, Ev::ReqArrive { h, g });
            } else {
                self.stats.route_failed[n as usize] |= self.hub_up;
                self.reqs[h as usize].stage = Stage::Returning;
                self.at(
                    2 * self.sc.hub_latency,
                    Ev::Reply {
                        h,
                        g,
                        error: FetchError::HubUnavailable,
                    },
                );
            }
            return;
        }
        let d = self.ctl_delay(n, src, REQUEST_BYTES);
        if self.lost(n, src) {
            // The request vanishes; the requester's deadline notices and cancels it.
            self.reqs[h as usize].stage = Stage::Lost;
            return;
        }
        self.at(d, Ev::ReqArrive { h, g });
    }

    /// The events of a block request on its way back.
    pub(super) fn dispatch_request(&mut self, ev: Ev) {
        match ev {
            Ev::Reply { h, g, error } => {
                let Some(r) = self.req(h, g).cloned() else {
                    return;
                };
                self.free_req(h);
                if self.requester_wants(&r) {
                    self.trace
                        .record(self.now, r.requester, Kind::Failed, r.block as u64);
                    self.input(r.requester, Input::FetchFailed { req: r.rid, error });
                }
            }
            Ev::Deliver { h, g } => {
                let Some(r) = self.req(h, g).cloned() else {
                    return;
                };
                self.free_req(h);
                if self.requester_wants(&r) {
                    self.trace.record(
                        self.now,
                        r.requester,
                        Kind::Block,
                        r.block as u64 | (r.corrupt as u64) << 40,
                    );
                    let payload = self.rel.blocks[r.block as usize].payload(r.corrupt);
                    self.input(
                        r.requester,
                        Input::Block {
                            req: r.rid,
                            payload,
                        },
                    );
                }
            }
            Ev::CancelArrive { h, g } => {
                let Some(r) = self.req(h, g).cloned() else {
                    return;
                };
                if r.stage != Stage::OnFlow {
                    return;
                }
                let tag = (g as u64) << 32 | h as u64;
                match self.net.cancel(SimTime(self.now), r.src, r.requester, tag) {
                    Cancelled::No => return,
                    Cancelled::Queued => {}
                    Cancelled::Head { sent, flow, next } => {
                        self.count_data(r.src, r.requester, sent);
                        if let Some((generation, at)) = next {
                            let ev = Ev::Milestone { flow, generation };
                            self.q.push_on(at, milestone_chan(flow), ev);
                        }
                    }
                }
                self.trace
                    .record(self.now, r.src, Kind::Cancel, r.block as u64);
                self.free_req(h);
                if r.src != HUB {
                    self.serve_done(r.src, r.ep_srv, sid(h, g));
                }
            }
            _ => {}
        }
    }

    /// A flow reached a chunk boundary: the chunk is delivered, or an install job ended.
    pub(super) fn milestone(&mut self, flow: u32, generation: u32) {
        let Some(done) = self.net.milestone(SimTime(self.now), flow, generation) else {
            return;
        };
        self.trace
            .record(self.now, done.dst, Kind::Milestone, done.chunk.tag);
        if let Some((g2, at)) = done.next {
            self.q.push_on(
                at,
                milestone_chan(flow),
                Ev::Milestone {
                    flow,
                    generation: g2,
                },
            );
        }
        if done.src == INSTALL {
            self.installed(done.dst);
            return;
        }
        let (h, g) = (done.chunk.tag as u32, (done.chunk.tag >> 32) as u32);
        self.count_data(done.src, done.dst, done.chunk.len);
        let latency = if done.src == HUB {
            self.sc.hub_latency
        } else {
            self.net.topology().latency(done.src, done.dst)
        };
        if let Some(r) = self.reqs.get_mut(h as usize).filter(|r| r.live && r.g == g) {
            r.stage = Stage::Returning;
            let (src, ep) = (r.src, r.ep_srv);
            if src != HUB {
                self.serve_done(src, ep, sid(h, g));
            }
            self.at(latency, Ev::Deliver { h, g });
        }
    }
}
