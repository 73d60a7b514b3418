//! The netns testbed: a scenario run with real `bootswarm` processes in Linux network
//! namespaces, next to the simulator's prediction for the same scenario.
//!
//! One namespace per node, one for the hub and one holding the bridge; veth pairs; tbf on the
//! hub's link (and on NICs when the scenario asks). Nothing is created in the root
//! namespace, and every namespace, process and temporary file is removed again, also on
//! failure and on SIGINT/SIGTERM. Needs root and iproute2 (`ip`, `tc`).

mod compare;
mod lab;
mod ramdisk;
mod run;
mod sample;

pub use compare::{json, table};
pub use run::{Options, Outcome, PhaseResult, UpgradeMeasured, run};

use std::fmt;

/// Why a testbed run did not produce an outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// Something the testbed needs (root, `ip`, `tc`) is missing; nothing was attempted.
    Prerequisite(String),
    /// Stopped by SIGINT/SIGTERM.
    Interrupted,
    /// The run failed.
    Failed(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Prerequisite(m) | Error::Failed(m) => f.write_str(m),
            Error::Interrupted => {
                f.write_str("interrupted; every namespace and process it made has been removed")
            }
        }
    }
}

impl std::error::Error for Error {}

/// Checks that this process can run the testbed (root, `ip`, `tc`).
pub fn preflight() -> Result<(), Error> {
    lab::preflight()
}
