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
}
