//! Gossipsub peer scoring for the release topic: a peer whose messages the follower rejects
//! (forged, wrongly signed, equivocating) loses score fast and is graylisted, so its gossip is
//! no longer processed, until the penalty decays.
//!
//! Release gossip is rare (one message per release), so the delivery-rate penalties meant for
//! busy topics (P3, P3b) are off: they would punish every honest mesh peer. IP colocation
//! (P6) is off too: [`super::iplimit`] bounds connections per address, and the demo and the
//! tests run whole farms on one loopback address.

use std::time::Duration;

use libp2p::gossipsub::{
    PeerScoreParams, PeerScoreThresholds, TopicHash, TopicScoreParams, score_parameter_decay,
};

/// Score of one rejected message (P4 counts rejections squared): one puts the sender below
/// the gossip threshold, two below the graylist threshold.
pub(crate) const INVALID_MESSAGE_WEIGHT: f64 = -50.0;
/// Most a peer can earn on the topic by staying in the mesh and delivering first.
const TOPIC_SCORE_CAP: f64 = 10.0;
/// How long a rejection takes to decay to nothing.
const FORGET_AFTER: Duration = Duration::from_secs(600);

/// Score thresholds: the libp2p defaults (gossip −10, publish −50, graylist −80), with a small
/// opportunistic-graft threshold under the topic cap.
pub(crate) fn thresholds() -> PeerScoreThresholds {
    PeerScoreThresholds {
        opportunistic_graft_threshold: 1.0,
        ..PeerScoreThresholds::default()
    }
}

/// Score parameters with the release topic's.
pub(crate) fn params(topic: TopicHash) -> PeerScoreParams {
    let release = TopicScoreParams {
        topic_weight: 1.0,
        time_in_mesh_weight: 0.01,
        time_in_mesh_quantum: Duration::from_secs(1),
        time_in_mesh_cap: 600.0,
        first_message_deliveries_weight: 1.0,
        first_message_deliveries_decay: score_parameter_decay(Duration::from_secs(3600)),
        first_message_deliveries_cap: 4.0,
        mesh_message_deliveries_weight: 0.0,
        mesh_failure_penalty_weight: 0.0,
        invalid_message_deliveries_weight: INVALID_MESSAGE_WEIGHT,
        invalid_message_deliveries_decay: score_parameter_decay(FORGET_AFTER),
        ..TopicScoreParams::default()
    };
    let mut params = PeerScoreParams {
        topic_score_cap: TOPIC_SCORE_CAP,
        ip_colocation_factor_weight: 0.0,
        ..PeerScoreParams::default()
    };
    params.topics.insert(topic, release);
    params
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_parameters_are_valid_and_two_rejections_graylist() {
        let topic = libp2p::gossipsub::IdentTopic::new("t").hash();
        params(topic).validate().unwrap();
        thresholds().validate().unwrap();
        // The best a peer can be (at the cap) after one and two rejected messages.
        let after = |n: f64| TOPIC_SCORE_CAP + INVALID_MESSAGE_WEIGHT * n * n;
        let t = thresholds();
        assert!(after(1.0) < t.gossip_threshold);
        assert!(after(1.0) > t.graylist_threshold);
        assert!(after(2.0) < t.graylist_threshold);
    }
}
