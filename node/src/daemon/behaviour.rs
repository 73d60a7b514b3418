//! The libp2p side of the daemon: transport, behaviours and their limits.

mod iplimit;
mod score;
mod transport;

use std::time::Duration;

use bootswarm_protocol::agent::Rack;
use libp2p::gossipsub::{IdentTopic, TopicHash};
use libp2p::pnet::PreSharedKey;
use libp2p::swarm::NetworkBehaviour;
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::{
    Swarm, SwarmBuilder, connection_limits, gossipsub, identify, identity, mdns, request_response,
};
use sha2::{Digest, Sha256};

pub(crate) use transport::Refused;

use super::codec::{
    BLOCK_PROTOCOL, BlockCodec, CONTROL_PROTOCOL, ControlCodec, RELEASE_PROTOCOL, ReleaseCodec,
};
use crate::error::{Error, Result};

/// Connections to one peer (two when both sides dial at once).
const MAX_PER_PEER: u32 = 2;
/// Connections to one remote IP address (loopback exempt): a few identities' worth.
const MAX_PER_IP: u32 = 8;
/// Established connections in total.
const MAX_ESTABLISHED: u32 = 256;
/// Connections being set up at once, each way.
const MAX_PENDING: u32 = 64;
/// Largest gossip message: one signed release plus framing.
pub(crate) const MAX_GOSSIP_SIZE: usize = bootswarm_protocol::release::MAX_RELEASE_SIZE + 4096;
/// Streams at once on one connection, per request-response protocol.
const MAX_STREAMS: usize = 64;

/// Every behaviour of a bootswarm node.
#[derive(NetworkBehaviour)]
pub(crate) struct Behaviour {
    pub(crate) limits: connection_limits::Behaviour,
    pub(crate) ip_limit: iplimit::IpLimit,
    pub(crate) identify: identify::Behaviour,
    pub(crate) mdns: Toggle<mdns::tokio::Behaviour>,
    pub(crate) gossipsub: gossipsub::Behaviour,
    pub(crate) blocks: request_response::Behaviour<BlockCodec>,
    pub(crate) control: request_response::Behaviour<ControlCodec>,
    pub(crate) release: request_response::Behaviour<ReleaseCodec>,
}

impl std::fmt::Debug for Behaviour {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Behaviour")
    }
}

/// One id per publication (author, seqno and content): a release a poller passes on again is
/// a new message, so the nodes that hear it count it as this period's poll, while copies of
/// one publication are still dropped by the duplicate cache, which stops loops.
fn message_id(msg: &gossipsub::Message) -> gossipsub::MessageId {
    let mut h = Sha256::new();
    h.update(msg.source.map(|p| p.to_bytes()).unwrap_or_default());
    h.update(msg.sequence_number.unwrap_or(0).to_be_bytes());
    h.update(&msg.data);
    gossipsub::MessageId::from(&h.finalize().as_slice()[..20])
}

/// The gossip topic of a channel's releases.
pub(crate) fn release_topic(channel: &str) -> IdentTopic {
    IdentTopic::new(format!("bootswarm/release/{channel}"))
}

/// What identify says of this node: the version and, if it has one, its rack (a claim peers
/// feed to their agents like a `Hello`'s).
fn agent_version(rack: Option<Rack>) -> String {
    let version = concat!("bootswarm/", env!("CARGO_PKG_VERSION"));
    match rack {
        Some(r) => format!("{version} rack={:016x}", r.0),
        None => version.to_string(),
    }
}

/// The rack a peer's identify `agent_version` names, if any.
pub(crate) fn rack_of(agent_version: &str) -> Option<Rack> {
    let (_, hex) = agent_version.split_once(" rack=")?;
    let hex = hex.split(' ').next()?;
    if hex.len() != 16 {
        return None;
    }
    u64::from_str_radix(hex, 16).ok().map(Rack)
}

fn make_behaviour(
    key: &identity::Keypair,
    enable_mdns: bool,
    topic: TopicHash,
    rack: Option<Rack>,
) -> Result<Behaviour> {
    let peer_id = key.public().to_peer_id();
    let limits = connection_limits::ConnectionLimits::default()
        .with_max_established_per_peer(Some(MAX_PER_PEER))
        .with_max_established(Some(MAX_ESTABLISHED))
        .with_max_pending_incoming(Some(MAX_PENDING))
        .with_max_pending_outgoing(Some(MAX_PENDING));
    let mdns = if enable_mdns {
        let cfg = mdns::Config {
            query_interval: Duration::from_secs(5),
            ..Default::default()
        };
        Some(mdns::tokio::Behaviour::new(cfg, peer_id).map_err(|e| {
            Error::new(format!(
                "cannot start mDNS discovery ({e}); run without --mdns and give --peer addresses"
            ))
        })?)
    } else {
        None
    };
    let gs_cfg = gossipsub::ConfigBuilder::default()
        .heartbeat_interval(Duration::from_secs(1))
        .validation_mode(gossipsub::ValidationMode::Strict)
        .validate_messages()
        .message_id_fn(message_id)
        .max_transmit_size(MAX_GOSSIP_SIZE)
        .duplicate_cache_time(Duration::from_secs(120))
        .max_ihave_messages_heartbeat(16)
        .build()
        .map_err(|e| Error::new(format!("cannot configure gossip ({e})")))?;
    let mut gossipsub =
        gossipsub::Behaviour::new(gossipsub::MessageAuthenticity::Signed(key.clone()), gs_cfg)
            .map_err(|e| Error::new(format!("cannot start gossip ({e})")))?;
    gossipsub
        .with_peer_score(score::params(topic), score::thresholds())
        .map_err(|e| Error::new(format!("cannot configure gossip scoring ({e})")))?;
    let rr_cfg = |timeout| {
        request_response::Config::default()
            .with_request_timeout(timeout)
            .with_max_concurrent_streams(MAX_STREAMS)
    };
    let full = || request_response::ProtocolSupport::Full;
    Ok(Behaviour {
        limits: connection_limits::Behaviour::new(limits),
        ip_limit: iplimit::IpLimit::new(MAX_PER_IP),
        identify: identify::Behaviour::new(
            identify::Config::new("/bootswarm/id/1".into(), key.public())
                .with_agent_version(agent_version(rack)),
        ),
        mdns: Toggle::from(mdns),
        gossipsub,
        blocks: request_response::Behaviour::new(
            [(BLOCK_PROTOCOL, full())],
            rr_cfg(Duration::from_secs(30)),
        ),
        control: request_response::Behaviour::new(
            [(CONTROL_PROTOCOL, full())],
            rr_cfg(Duration::from_secs(10)),
        ),
        release: request_response::Behaviour::new(
            [(RELEASE_PROTOCOL, full())],
            rr_cfg(Duration::from_secs(10)),
        ),
    })
}

/// What the swarm is built from.
#[derive(Debug, Clone)]
pub(crate) struct SwarmSetup {
    /// The node's identity.
    pub(crate) key: identity::Keypair,
    /// Discover peers with mDNS.
    pub(crate) mdns: bool,
    /// The farm's pre-shared key: only hosts holding it can connect.
    pub(crate) swarm_key: Option<PreSharedKey>,
    /// The channel whose release topic is scored.
    pub(crate) channel: String,
    /// The node's rack, told to peers in identify.
    pub(crate) rack: Option<Rack>,
}

/// A TCP + Noise + Yamux swarm (inside a private network with a swarm key) on tokio with
/// every behaviour, and the counter of connections the swarm key refused.
pub(crate) fn build_swarm(setup: SwarmSetup) -> Result<(Swarm<Behaviour>, Refused)> {
    let refused = Refused::default();
    let transport = transport::build(&setup.key, setup.swarm_key, &refused)?;
    let topic = release_topic(&setup.channel).hash();
    let mut setup_err = None;
    let swarm = SwarmBuilder::with_existing_identity(setup.key)
        .with_tokio()
        .with_other_transport(|_| transport)
        .map_err(|e| Error::new(format!("cannot set up the TCP transport ({e})")))?
        .with_behaviour(
            |key| match make_behaviour(key, setup.mdns, topic, setup.rack) {
                Ok(b) => Ok(b),
                Err(e) => {
                    let msg = e.to_string();
                    setup_err = Some(e);
                    Err(msg.into())
                }
            },
        )
        .map_err(|e| {
            setup_err
                .take()
                .unwrap_or_else(|| Error::new(e.to_string()))
        })?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
        .build();
    Ok((swarm, refused))
}

#[cfg(test)]
mod tests {
    use libp2p::futures::StreamExt;
    use libp2p::gossipsub::MessageAcceptance;
    use libp2p::swarm::SwarmEvent;

    use super::*;

    #[test]
    fn the_rack_rides_in_identify_and_anything_else_is_no_rack() {
        let rack = Rack::from_label("row3");
        assert_eq!(rack_of(&agent_version(rack)), rack);
        assert_eq!(rack_of(&agent_version(None)), None);
        for other in [
            "",
            "x rack=",
            "x rack=zz",
            "x rack=0123456789abcdef0",
            "rack=00",
        ] {
            assert_eq!(rack_of(other), None, "{other:?}");
        }
    }

    fn swarm() -> Swarm<Behaviour> {
        let (mut swarm, _) = build_swarm(SwarmSetup {
            key: identity::Keypair::generate_ed25519(),
            mdns: false,
            swarm_key: None,
            channel: "prod".into(),
            rack: None,
        })
        .unwrap();
        swarm
            .behaviour_mut()
            .gossipsub
            .subscribe(&release_topic("prod"))
            .unwrap();
        swarm
            .listen_on("/ip4/127.0.0.1/tcp/0".parse().unwrap())
            .unwrap();
        swarm
    }

    /// A peer whose release gossip is rejected twice is graylisted by the receiver.
    #[tokio::test]
    async fn a_sender_of_rejected_releases_is_graylisted() {
        let (mut a, mut b) = (swarm(), swarm());
        let a_id = *a.local_peer_id();
        let topic = release_topic("prod");
        let graylist = score::thresholds().graylist_threshold;
        let mut rejected = 0;
        let mut sent = 0u32;
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while rejected < 2 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "rejected {rejected}"
            );
            tokio::select! {
                e = a.select_next_some() => {
                    if let SwarmEvent::NewListenAddr { address, .. } = e {
                        b.dial(address).unwrap();
                    }
                }
                e = b.select_next_some() => {
                    if let SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(
                        gossipsub::Event::Message { propagation_source, message_id, .. },
                    )) = e
                    {
                        b.behaviour_mut().gossipsub.report_message_validation_result(
                            &message_id,
                            &propagation_source,
                            MessageAcceptance::Reject,
                        );
                        rejected += 1;
                    }
                }
                _ = tick.tick() => {
                    let forged = format!("not a release {sent}").into_bytes();
                    if a.behaviour_mut().gossipsub.publish(topic.clone(), forged).is_ok() {
                        sent += 1;
                    }
                }
            }
        }
        let score = b.behaviour().gossipsub.peer_score(&a_id).unwrap();
        assert!(score < graylist, "score {score}, graylist below {graylist}");
    }
}
