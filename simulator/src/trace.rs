//! The trace hash: a running digest of every dispatched event (time, node, kind, payload identity).

/// Kinds of dispatched events, as hashed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// A node's timer fired.
    Wake = 1,
    /// A control message arrived.
    Message = 2,
    /// A block request reached its server.
    Request = 3,
    /// A fetch failed at the requester.
    Failed = 4,
    /// A block's data reached the requester.
    Block = 5,
    /// A cancellation reached the server.
    Cancel = 6,
    /// A chunk finished on a flow.
    Milestone = 7,
    /// Nodes started.
    Start = 8,
    /// A fault began or ended.
    Fault = 9,
    /// An upload finished at the server.
    ServeDone = 10,
    /// The flow network was re-solved.
    Solve = 11,
    /// A gossiped release reached a node.
    Gossip = 12,
}

/// A running 64-bit digest.
#[derive(Debug, Clone, Default)]
pub struct Trace {
    h: u64,
    events: u64,
}

impl Trace {
    /// An empty trace.
    pub fn new() -> Trace {
        Trace {
            h: 0x243F_6A88_85A3_08D3,
            events: 0,
        }
    }

    /// Records one dispatched event.
    pub fn record(&mut self, time: u64, node: u32, kind: Kind, digest: u64) {
        self.events += 1;
        for w in [time, (node as u64) << 8 | kind as u64, digest] {
            self.h = (self.h.rotate_left(23) ^ w).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    /// Events recorded.
    pub fn events(&self) -> u64 {
        self.events
    }

    /// The digest as 16 hex digits.
    pub fn hex(&self) -> String {
        let mut z = self.h ^ self.events;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        format!("{:016x}", z ^ (z >> 31))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_matters() {
        let mut a = Trace::new();
        a.record(1, 2, Kind::Wake, 3);
        a.record(4, 5, Kind::Block, 6);
        let mut b = Trace::new();
        b.record(4, 5, Kind::Block, 6);
        b.record(1, 2, Kind::Wake, 3);
        assert_ne!(a.hex(), b.hex());
        let mut c = Trace::new();
        c.record(1, 2, Kind::Wake, 3);
        c.record(4, 5, Kind::Block, 6);
        assert_eq!(a.hex(), c.hex());
        assert_eq!(a.events(), 2);
    }
}
