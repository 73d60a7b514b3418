//! The serving part: the uploads to peers in progress, at most `max_serves` at once.

use std::collections::BTreeSet;

use super::ServeId;

#[derive(Debug)]
pub(super) struct Serves {
    max: usize,
    active: BTreeSet<ServeId>,
}

impl Serves {
    pub(super) fn new(max: usize) -> Self {
        Serves {
            max,
            active: BTreeSet::new(),
        }
    }

    /// Takes an upload slot for `id`; false when every slot is taken.
    pub(super) fn start(&mut self, id: ServeId) -> bool {
        if self.active.len() >= self.max {
            return false;
        }
        self.active.insert(id);
        true
    }

    /// The upload `id` finished or was aborted.
    pub(super) fn done(&mut self, id: ServeId) {
        self.active.remove(&id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_capped_and_freed() {
        let mut serves = Serves::new(2);
        assert!(serves.start(ServeId(1)));
        assert!(serves.start(ServeId(2)));
        assert!(!serves.start(ServeId(3)));
        serves.done(ServeId(1));
        serves.done(ServeId(9));
        assert!(serves.start(ServeId(3)));
        assert!(!serves.start(ServeId(4)));
    }
}
