//! Bandwidth resources and paths: node NICs (up and down), rack uplinks (up and down), hub
//! egress, and the shared host CPU of co-located nodes.

/// Index of a bandwidth resource.
pub type ResId = u32;

/// The hub, as a flow source.
pub const HUB: u32 = u32::MAX;

/// A node's install job, as a flow source: it crosses only the host CPU.
pub const INSTALL: u32 = u32::MAX - 2;

/// The static shape of the network.
#[derive(Debug, Clone)]
pub struct Topology {
    /// Number of nodes.
    pub nodes: u32,
    /// Number of racks (0: one flat LAN).
    pub racks: u32,
    /// Initial capacities in bytes per second, indexed by [`ResId`].
    pub caps: Vec<u64>,
    /// One-way latency between two nodes in the same rack (ns).
    pub lan_latency: u64,
    /// Extra one-way latency between racks (ns).
    pub rack_latency: u64,
    /// One-way latency between a node and the hub (ns).
    pub hub_latency: u64,
    /// The host CPU every transfer into a node crosses, when the nodes share one machine.
    pub cpu: Option<ResId>,
}

impl Topology {
    /// A topology with uniform NICs.
    pub fn new(nodes: u32, nic: u64, racks: u32, rack_uplink: u64, hub_link: u64) -> Topology {
        let mut caps = Vec::with_capacity(2 * nodes as usize + 2 * racks as usize + 1);
        for _ in 0..nodes {
            caps.push(nic);
            caps.push(nic);
        }
        for _ in 0..racks {
            caps.push(rack_uplink);
            caps.push(rack_uplink);
        }
        caps.push(hub_link);
        Topology {
            nodes,
            racks,
            caps,
            lan_latency: 0,
            rack_latency: 0,
            hub_latency: 0,
            cpu: None,
        }
    }

    /// Adds the shared host CPU, `cap` bytes of transfers per second. Not with racks: a
    /// cross-rack path would need five resources.
    pub fn with_host_cpu(mut self, cap: u64) -> Topology {
        debug_assert_eq!(self.racks, 0);
        self.cpu = Some(self.caps.len() as ResId);
        self.caps.push(cap);
        self
    }

    /// Transmit side of node `n`'s NIC.
    pub fn up(&self, n: u32) -> ResId {
        2 * n
    }

    /// Receive side of node `n`'s NIC.
    pub fn down(&self, n: u32) -> ResId {
        2 * n + 1
    }

    /// The rack of node `n` (racks are contiguous blocks of nodes).
    pub fn rack(&self, n: u32) -> Option<u32> {
        (self.racks > 0).then(|| (n as u64 * self.racks as u64 / self.nodes.max(1) as u64) as u32)
    }

    /// Uplink (towards the core) of rack `k`.
    pub fn rack_up(&self, k: u32) -> ResId {
        2 * self.nodes + 2 * k
    }

    /// Downlink (from the core) of rack `k`.
    pub fn rack_down(&self, k: u32) -> ResId {
        2 * self.nodes + 2 * k + 1
    }

    /// The hub's egress.
    pub fn hub(&self) -> ResId {
        2 * self.nodes + 2 * self.racks
    }

    /// Total number of resources.
    pub fn resources(&self) -> usize {
        self.caps.len()
    }

    /// The resources a flow from `src` (a node, [`HUB`] or [`INSTALL`]) to node `dst` crosses.
    pub fn path(&self, src: u32, dst: u32) -> ([ResId; 4], u8) {
        let mut p = [0; 4];
        let mut n = 0;
        let mut add = |r: ResId| {
            p[n] = r;
            n += 1;
        };
        if src == INSTALL {
            add(self.cpu.unwrap_or(self.down(dst)));
            return (p, 1);
        }
        let rd = self.rack(dst);
        if src == HUB {
            add(self.hub());
            if let Some(k) = rd {
                add(self.rack_down(k));
            }
        } else {
            add(self.up(src));
            if let (Some(a), Some(b)) = (self.rack(src), rd)
                && a != b
            {
                add(self.rack_up(a));
                add(self.rack_down(b));
            }
        }
        add(self.down(dst));
        if let Some(c) = self.cpu {
            add(c);
        }
        (p, n as u8)
    }

    /// One-way latency between two nodes.
    pub fn latency(&self, a: u32, b: u32) -> u64 {
        if self.rack(a) == self.rack(b) {
            self.lan_latency
        } else {
            self.lan_latency + self.rack_latency
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        let t = Topology::new(4, 10, 2, 20, 5);
        assert_eq!(t.resources(), 4 * 2 + 2 * 2 + 1);
        assert_eq!(t.rack(0), Some(0));
        assert_eq!(t.rack(3), Some(1));
        let (p, n) = t.path(0, 1);
        assert_eq!(&p[..n as usize], &[t.up(0), t.down(1)]);
        let (p, n) = t.path(0, 3);
        assert_eq!(
            &p[..n as usize],
            &[t.up(0), t.rack_up(0), t.rack_down(1), t.down(3)]
        );
        let (p, n) = t.path(HUB, 2);
        assert_eq!(&p[..n as usize], &[t.hub(), t.rack_down(1), t.down(2)]);
        let flat = Topology::new(3, 10, 0, 0, 5);
        let (p, n) = flat.path(HUB, 2);
        assert_eq!(&p[..n as usize], &[flat.hub(), flat.down(2)]);
    }

    #[test]
    fn host_cpu_is_on_every_path_into_a_node() {
        let t = Topology::new(3, 10, 0, 0, 5).with_host_cpu(7);
        let cpu = t.cpu.unwrap();
        assert_eq!((cpu, t.resources(), t.caps[cpu as usize]), (7, 8, 7));
        let (p, n) = t.path(0, 1);
        assert_eq!(&p[..n as usize], &[t.up(0), t.down(1), cpu]);
        let (p, n) = t.path(HUB, 2);
        assert_eq!(&p[..n as usize], &[t.hub(), t.down(2), cpu]);
        let (p, n) = t.path(INSTALL, 2);
        assert_eq!(&p[..n as usize], &[cpu]);
    }
}
