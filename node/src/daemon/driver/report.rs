//! What the driver reports: the snapshot behind `/status`, `/metrics` and the farm page, the
//! refusals and hook runs it remembers, and this node's summary gossiped to the farm.

use super::super::farm::Summary;
use super::super::ledger::{self, HookRun, PeerFacts};
use super::*;

/// How `/status` names where a release came from.
pub(super) fn via_name(via: Via) -> &'static str {
    match via {
        Via::Hub => "hub",
        Via::Gossip => "gossip",
        Via::Peer => "peer",
        Via::Disk => "disk",
        Via::Operator => "operator",
    }
}

impl Driver {
    pub(super) fn peer_label(&self, peer: &PeerId) -> String {
        ledger::capped_label(&self.snap.bytes_by_peer, peer.to_string())
    }

    pub(super) fn source_label(&self, source: Source) -> String {
        match source {
            Source::Hub => "hub".to_string(),
            Source::Peer(node) => self.peers.label(node),
        }
    }

    /// Remembers a refused release for `/status`.
    pub(super) fn record_refusal(&mut self, via: &str, kind: RefusalKind, reason: &str) {
        ledger::record_refusal(
            &mut self.snap.recent_refusals,
            unix_now(),
            via,
            kind.as_str(),
            reason,
        );
    }

    /// Remembers the end of a hook run or health check the follower hears about.
    pub(super) fn record_hooks(&mut self, fact: &follower::Input) {
        let (seq, result, what, packages) = match fact {
            follower::Input::HooksRan { seq, result } => {
                let Some((action, packages)) = self.hook_job.take() else {
                    return;
                };
                (*seq, result, action.as_str().to_string(), packages)
            }
            follower::Input::HealthChecked { seq, result }
                if self.opts.hooks.health_check.is_some() =>
            {
                (*seq, result, "health-check".to_string(), Vec::new())
            }
            _ => return,
        };
        let outcome = if result.is_ok() { "ok" } else { "failed" };
        *self
            .snap
            .hook_runs
            .entry((what.clone(), outcome.to_string()))
            .or_insert(0) += 1;
        ledger::record_hook(
            &mut self.snap.recent_hooks,
            HookRun {
                at: unix_now(),
                seq,
                what,
                packages,
                ok: result.is_ok(),
                error: result.as_ref().err().cloned(),
            },
        );
    }

    /// A summary gossiped by another node of the farm: kept if well-formed and signed by its
    /// author, who is the only node it speaks for.
    pub(super) fn on_summary(
        &mut self,
        from: PeerId,
        id: gossipsub::MessageId,
        message: &gossipsub::Message,
    ) {
        let summary = Summary::decode(&message.data);
        let acceptance = match (&summary, message.source) {
            (Some(s), Some(author)) => {
                self.farm
                    .heard(author.to_string(), s.clone(), Instant::now());
                MessageAcceptance::Accept
            }
            _ => {
                tracing::debug!(%from, "malformed node summary");
                MessageAcceptance::Reject
            }
        };
        self.swarm
            .behaviour_mut()
            .gossipsub
            .report_message_validation_result(&id, &from, acceptance);
    }

    fn my_summary(&self) -> Summary {
        let s = &self.snap;
        let (seq, root) = s.release.clone().unwrap_or_default();
        Summary {
            seq,
            root,
            booted: s.booted,
            have_bytes: s.have_bytes,
            total_bytes: s.total_bytes,
            hub_bytes: s.release_bytes_from_hub,
            peer_bytes: s.bytes_from_peers,
            served_bytes: s.bytes_served,
        }
    }

    /// Gossips this node's summary when due and refreshes the farm view.
    fn gossip_summary(&mut self) {
        let now = Instant::now();
        let mine = self.my_summary();
        self.farm.expire(now);
        if self.farm.due(&mine, now) {
            let sent = self
                .swarm
                .behaviour_mut()
                .gossipsub
                .publish(self.summary_topic.clone(), mine.encode());
            match sent {
                Ok(_) => self.farm.sent(&mine, now),
                Err(e) => tracing::trace!("summary not gossiped yet: {e}"),
            }
        }
        self.snap.farm = self.farm.view(&self.snap.peer_id, &mine, now);
    }

    fn peer_table(&mut self) {
        let neighbours: std::collections::BTreeSet<NodeId> = self.agent.neighbours().collect();
        let connected: Vec<(String, bool)> = self
            .peers
            .connected_peers()
            .map(|(p, n)| (p.to_string(), neighbours.contains(&n)))
            .collect();
        let s = &mut self.snap;
        s.peer_rows = ledger::peer_rows(&PeerFacts {
            bytes_in: &s.bytes_by_peer,
            bytes_out: &s.bytes_to_peer,
            penalties: &s.penalties,
            rejected: &s.failures,
            banned: &s.banned,
            connected: &connected,
        });
    }

    pub(super) fn publish_snapshot(&mut self) {
        self.published = Some(Instant::now());
        let p = self.agent.progress();
        let s = &mut self.snap;
        s.have_blocks = p.have_blocks as u64;
        s.total_blocks = p.total_blocks as u64;
        s.have_bytes = p.have_bytes;
        s.total_bytes = p.total_bytes;
        s.peers = self.peers.count();
        s.handshakes_refused = self.refused.get();
        s.store = self.tasks.store.usage_now();
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
        self.peer_table();
        self.gossip_summary();
        *self
            .shared
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = self.snap.clone();
    }
}
