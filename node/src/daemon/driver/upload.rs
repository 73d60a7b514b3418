//! Serving blocks to peers within `--upload-rate` and `--max-upload-peers`.

use std::collections::HashSet;

use super::*;
use crate::daemon::upload::Pacer;

/// Longest wait a response may face in the upload queue: beyond it, new requests are told
/// the node is busy (the requester asks another holder rather than wait and time out).
const MAX_BACKLOG: Duration = Duration::from_secs(2);

/// A response ready to go.
pub(super) struct Ready {
    id: ServeId,
    channel: ResponseChannel<Vec<u8>>,
    response: Vec<u8>,
}

/// Responses paced to `--upload-rate`, each peer in turn.
pub(super) type Uploads = Pacer<PeerId, Ready>;

impl Driver {
    /// Whether a block request from `peer` is turned away by the upload limits: the queue
    /// already holds [`MAX_BACKLOG`] at the rate and `peer` has a request of its own in it
    /// (a peer with none is always let in, so one that keeps the queue full cannot starve
    /// the others), or `--max-upload-peers` others are being served.
    pub(super) fn upload_refused(&mut self, peer: PeerId) -> bool {
        if self.uploads.is_none() && self.opts.upload.max_peers.is_none() {
            return false;
        }
        let served: HashSet<&PeerId> = self.serve_in.values().map(|(_, p)| p).collect();
        let waiting = served.contains(&peer);
        // Requests accepted but still being read from the store count at the size of the
        // blocks read lately.
        let reading = self.serves.len() as u64 * self.served_len;
        let backlogged = waiting
            && self
                .uploads
                .as_ref()
                .is_some_and(|u| u.backlog(reading) >= MAX_BACKLOG);
        let crowded = self
            .opts
            .upload
            .max_peers
            .is_some_and(|max| !waiting && served.len() >= max);
        if backlogged || crowded {
            self.snap.uploads_refused += 1;
        }
        backlogged || crowded
    }

    /// The store's answer to a block request: the response goes out now, or queues for
    /// the upload rate.
    pub(super) fn on_served(&mut self, id: ServeId, bytes: Option<Vec<u8>>) {
        let Some((channel, peer)) = self.serves.remove(&id) else {
            self.feed(Input::ServeDone { id });
            return;
        };
        let response = match bytes {
            Some(mut bytes) => {
                self.served_len = (self.served_len * 7 + bytes.len() as u64) / 8;
                if self.opts.test.corrupt_serving() && !bytes.is_empty() {
                    let mid = bytes.len() / 2;
                    bytes[mid] ^= 0x01;
                }
                let mut r = Vec::with_capacity(1 + bytes.len());
                r.push(STATUS_OK);
                r.extend_from_slice(&bytes);
                r
            }
            None => vec![STATUS_NOT_FOUND],
        };
        let ready = Ready {
            id,
            channel,
            response,
        };
        match &mut self.uploads {
            Some(uploads) => {
                let len = ready.response.len() as u64;
                uploads.push(peer, len, ready);
                self.release_uploads();
            }
            None => self.send_served(peer, ready),
        }
    }

    /// Sends every queued response the upload rate allows now.
    pub(super) fn release_uploads(&mut self) {
        let now = Instant::now();
        while let Some((peer, ready)) = self.uploads.as_mut().and_then(|u| u.pop(now)) {
            self.send_served(peer, ready);
        }
    }

    fn send_served(&mut self, peer: PeerId, ready: Ready) {
        let Ready {
            id,
            channel,
            response,
        } = ready;
        if response.first() == Some(&STATUS_OK) {
            let len = response.len() as u64 - 1;
            self.snap.bytes_served += len;
            super::super::ledger::add_bytes(&mut self.snap.bytes_to_peer, peer.to_string(), len);
            self.snap.blocks_served += 1;
        }
        if self
            .swarm
            .behaviour_mut()
            .blocks
            .send_response(channel, response)
            .is_err()
        {
            self.feed(Input::ServeDone { id });
        }
    }
}
