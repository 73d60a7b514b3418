//! The swarm's events: connections, gossip, mDNS, and the block, control and release
//! request-response protocols.

use super::*;

impl Driver {
    pub(super) fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::NewListenAddr { address, .. } => {
                println!("listening {address}/p2p/{}", self.swarm.local_peer_id());
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                connection_id,
                endpoint,
                num_established,
                ..
            } => {
                if self.peers.is_banned(&peer_id) {
                    self.swarm.close_connection(connection_id);
                    return;
                }
                let dialed = match &endpoint {
                    libp2p::core::ConnectedPoint::Dialer { address, .. } => Some(address),
                    libp2p::core::ConnectedPoint::Listener { .. } => None,
                };
                let node = self.peers.connected(peer_id, dialed);
                if let (Some(node), 1) = (node, num_established.get()) {
                    self.on_connected(peer_id, node);
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established: 0,
                ..
            } => {
                if let Some(node) = self.peers.disconnected(&peer_id) {
                    tracing::debug!(%peer_id, "peer disconnected");
                    self.feed(Input::MemberDown(node));
                    self.tell(follower::Input::MemberDown(node));
                }
            }
            SwarmEvent::OutgoingConnectionError { peer_id, error, .. } => {
                tracing::debug!(?peer_id, "dial failed: {error}");
            }
            SwarmEvent::ListenerError { error, .. } => {
                tracing::warn!("listener error: {error}");
            }
            SwarmEvent::Behaviour(event) => self.on_behaviour_event(event),
            _ => {}
        }
    }

    fn on_connected(&mut self, peer: PeerId, node: NodeId) {
        tracing::debug!(%peer, %node, "peer connected");
        // Ask for its release: a node that starts while the hub is down learns it this way.
        let channel = self.opts.channel.as_bytes().to_vec();
        self.swarm
            .behaviour_mut()
            .release
            .send_request(&peer, channel);
        self.feed(Input::MemberUp(node));
        // The nodes of a storm should start together: the gate is checked at once.
        self.tell(follower::Input::MemberUp(node));
    }

    fn on_behaviour_event(&mut self, event: BehaviourEvent) {
        match event {
            BehaviourEvent::Blocks(e) => self.on_block_event(e),
            BehaviourEvent::Control(e) => self.on_control_event(e),
            BehaviourEvent::Release(e) => self.on_release_event(e),
            BehaviourEvent::Gossipsub(gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            }) => {
                if message.topic == self.summary_topic.hash() {
                    self.on_summary(propagation_source, message_id, &message);
                    return;
                }
                if message.topic != self.topic.hash() {
                    self.wrong_topic += 1;
                    self.record_refusal(
                        "gossip",
                        RefusalKind::WrongTopic,
                        "release gossip on a topic this node does not follow",
                    );
                    tracing::warn!(from = %propagation_source, "release gossip on a topic this node does not follow");
                    self.swarm
                        .behaviour_mut()
                        .gossipsub
                        .report_message_validation_result(
                            &message_id,
                            &propagation_source,
                            MessageAcceptance::Reject,
                        );
                    return;
                }
                let ticket = Ticket::Gossip {
                    id: message_id,
                    from: propagation_source,
                };
                self.judge(message.data, Via::Gossip, message.source, ticket);
            }
            BehaviourEvent::Mdns(mdns::Event::Discovered(found)) => {
                for (peer, addr) in found {
                    if let Some(addr) = self.peers.discovered(peer, addr, Instant::now())
                        && let Err(e) = self.swarm.dial(addr)
                    {
                        tracing::debug!(%peer, "cannot dial a discovered peer: {e}");
                    }
                }
            }
            BehaviourEvent::Mdns(mdns::Event::Expired(gone)) => {
                for (peer, _) in gone {
                    self.peers.expired(&peer);
                }
            }
            BehaviourEvent::Identify(identify::Event::Received { peer_id, info, .. }) => {
                if let Some(node) = self.peers.node(&peer_id) {
                    let rack = rack_of(&info.agent_version);
                    self.feed(Input::Racks(vec![(node, rack)]));
                }
            }
            _ => {}
        }
    }

    fn on_block_event(&mut self, event: request_response::Event<Vec<u8>, Vec<u8>>) {
        use request_response::{Event as E, Message as M};
        match event {
            E::Message {
                peer,
                message:
                    M::Request {
                        request_id,
                        request,
                        channel,
                    },
                ..
            } => self.on_block_request(peer, request_id, &request, channel),
            E::Message {
                peer,
                message:
                    M::Response {
                        request_id,
                        response,
                    },
                ..
            } => self.on_block_response(peer, request_id, response),
            E::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                if let Some((req, _)) = self.block_out.remove(&request_id) {
                    tracing::debug!(%peer, "block request failed: {error}");
                    if self.fetches.remove(&req).is_some() {
                        self.feed(Input::FetchFailed {
                            req,
                            error: FetchError::Disconnected,
                        });
                    }
                }
            }
            E::InboundFailure { request_id, .. } | E::ResponseSent { request_id, .. } => {
                if let Some((id, _)) = self.serve_in.remove(&request_id) {
                    self.serves.remove(&id);
                    self.feed(Input::ServeDone { id });
                }
            }
        }
    }

    fn on_block_request(
        &mut self,
        peer: PeerId,
        request_id: request_response::InboundRequestId,
        request: &[u8],
        channel: ResponseChannel<Vec<u8>>,
    ) {
        if self.opts.test.withhold() {
            if self.withheld.len() >= 256 {
                self.withheld.pop_front();
            }
            self.withheld.push_back(channel);
            return;
        }
        let (Some(node), Ok(cid)) = (self.peers.node(&peer), Cid::try_from(request)) else {
            let _ = self
                .swarm
                .behaviour_mut()
                .blocks
                .send_response(channel, vec![STATUS_OTHER]);
            return;
        };
        if self.upload_refused(peer) {
            let _ = self
                .swarm
                .behaviour_mut()
                .blocks
                .send_response(channel, vec![STATUS_BUSY]);
            return;
        }
        if check_cid(&cid).is_err() {
            let _ = self
                .swarm
                .behaviour_mut()
                .blocks
                .send_response(channel, vec![STATUS_NOT_FOUND]);
            return;
        }
        let id = ServeId(self.next_serve);
        self.next_serve += 1;
        self.serves.insert(id, (channel, peer));
        self.serve_in.insert(request_id, (id, peer));
        self.feed(Input::BlockRequest {
            from: node,
            id,
            cid,
        });
    }

    fn on_block_response(
        &mut self,
        peer: PeerId,
        request_id: OutboundRequestId,
        response: Vec<u8>,
    ) {
        let Some((req, cid)) = self.block_out.remove(&request_id) else {
            return;
        };
        let error = match response.first() {
            Some(&STATUS_OK) => None,
            Some(&STATUS_BUSY) => Some(FetchError::Busy),
            Some(&STATUS_NOT_FOUND) => Some(FetchError::NotFound),
            _ => Some(FetchError::Other),
        };
        if !self.fetches.contains_key(&req) {
            return;
        }
        if let Some(error) = error {
            self.fetches.remove(&req);
            self.feed(Input::FetchFailed { req, error });
            return;
        }
        let n = response.len() as u64 - 1;
        self.snap.bytes_from_peers += n;
        let label = self.peer_label(&peer);
        *self.snap.bytes_by_peer.entry(label).or_insert(0) += n;
        let mut bytes = response;
        bytes.remove(0);
        self.tasks.verify(req, cid, bytes);
    }

    fn on_control_event(&mut self, event: request_response::Event<Vec<u8>, Vec<u8>>) {
        use request_response::{Event as E, Message as M};
        match event {
            E::Message {
                peer,
                message: M::Request {
                    request, channel, ..
                },
                ..
            } => {
                let _ = self
                    .swarm
                    .behaviour_mut()
                    .control
                    .send_response(channel, Vec::new());
                let Some(from) = self.peers.node(&peer) else {
                    return;
                };
                match Message::decode(&request) {
                    Ok(msg) => self.feed(Input::Message { from, msg }),
                    Err(e) => tracing::debug!(%peer, "bad control message: {e}"),
                }
            }
            E::Message {
                peer,
                message: M::Response { .. },
                ..
            }
            | E::OutboundFailure { peer, .. } => {
                self.peers.control_answered(&peer);
                self.pump_control(peer);
            }
            _ => {}
        }
    }

    fn on_release_event(&mut self, event: request_response::Event<Vec<u8>, Vec<u8>>) {
        use request_response::{Event as E, Message as M};
        match event {
            E::Message {
                message: M::Request {
                    request, channel, ..
                },
                ..
            } => {
                let answer = match self.follower.current() {
                    Some(c) if request == self.opts.channel.as_bytes() => c.bytes.clone(),
                    _ => Vec::new(),
                };
                let _ = self
                    .swarm
                    .behaviour_mut()
                    .release
                    .send_response(channel, answer);
            }
            E::Message {
                peer,
                message: M::Response { response, .. },
                ..
            } if !response.is_empty() => {
                self.judge(response, Via::Peer, None, Ticket::Peer(peer));
            }
            _ => {}
        }
    }
}
