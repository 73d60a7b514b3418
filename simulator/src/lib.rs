//! bootswarm-sim: a deterministic flow-level network simulator that drives the real
//! bootswarm agent (see DESIGN.md, "The simulator").

pub mod faults;
pub mod flow;
pub mod gossip;
pub mod host;
pub mod queue;
pub mod release;
pub mod report;
pub mod rng;
pub mod run;
pub mod scenario;
pub mod time;
pub mod topology;
pub mod trace;
