//! What the driver reports: the snapshot behind `/status` and `/metrics`.

use super::*;

impl Driver {
    pub(super) fn peer_label(&self, peer: &PeerId) -> String {
        let label = peer.to_string();
        if self.snap.bytes_by_peer.len() >= super::super::status::MAX_PEER_LABELS
            && !self.snap.bytes_by_peer.contains_key(&label)
        {
            "other".to_string()
        } else {
            label
        }
    }

    pub(super) fn source_label(&self, source: Source) -> String {
        match source {
            Source::Hub => "hub".to_string(),
            Source::Peer(node) => self.peers.label(node),
        }
    }

    pub(super) fn publish_snapshot(&mut self) {
        let p = self.agent.progress();
        let s = &mut self.snap;
        s.have_blocks = p.have_blocks as u64;
        s.total_blocks = p.total_blocks as u64;
        s.have_bytes = p.have_bytes;
        s.total_bytes = p.total_bytes;
        s.peers = self.peers.count();
        s.handshakes_refused = self.refused.get();
        let f = self.follower.status();
        s.release = self
            .follower
            .current()
            .map(|c| (c.version.seq, c.version.root.to_string()));
        s.expires_in = self.follower.expires_in();
        s.stale = self.follower.stale();
        s.booted = f.booted;
        s.booted_after = f.booted_at.map(Time::as_secs_f64);
        s.installed = f.installed.map(|v| (v.seq, v.root.to_string()));
        s.upgrade_failure = f.failure.as_ref().map(failed);
        s.releases_accepted = f.accepted;
        s.refusals = f
            .refusals
            .iter()
            .map(|(k, n)| (k.as_str().to_string(), *n))
            .collect();
        if self.wrong_topic > 0 {
            s.refusals.insert(
                RefusalKind::WrongTopic.as_str().to_string(),
                self.wrong_topic,
            );
        }
        s.last_refusal.clone_from(&f.last_refusal);
        s.hub_polls = f.polls;
        s.polls_deferred = f.polls_deferred;
        *self
            .shared
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = s.clone();
    }
}
