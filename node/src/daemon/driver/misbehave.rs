//! What a misbehaving test peer does (the `test-hooks` flags; nothing without them).

use super::*;

impl Driver {
    /// A replaying test peer gossips its current release again every period.
    pub(super) fn replay(&mut self) {
        let Some(period) = self.opts.test.replay() else {
            return;
        };
        if self.replayed.elapsed() < period {
            return;
        }
        self.replayed = Instant::now();
        if let Some(bytes) = self.follower.current().map(|c| c.bytes.clone()) {
            let _ = self
                .swarm
                .behaviour_mut()
                .gossipsub
                .publish(self.topic.clone(), bytes);
        }
    }

    /// A flooding test peer gossips forged releases at its rate: the current release with
    /// its last (signature) byte flipped, or junk before it has one.
    pub(super) fn forge_flood(&mut self) {
        let Some(rate) = self.opts.test.forge_flood() else {
            return;
        };
        let due = self.flooded.elapsed().as_secs_f64() * f64::from(rate);
        if due < 1.0 {
            return;
        }
        self.flooded = Instant::now();
        for _ in 0..(due as u32).min(16) {
            let mut bytes = self
                .follower
                .current()
                .map_or_else(|| b"forged release".to_vec(), |c| c.bytes.clone());
            if let Some(last) = bytes.last_mut() {
                *last ^= 1;
            }
            let _ = self
                .swarm
                .behaviour_mut()
                .gossipsub
                .publish(self.topic.clone(), bytes);
        }
    }
}
