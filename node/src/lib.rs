//! The bootswarm node: block store, durable state, publisher, hub (server and client), boot
//! client and the `bootswarm` command line.

pub mod announce;
pub mod boot;
pub mod cli;
pub mod daemon;
pub mod demo;
pub mod error;
pub mod fsutil;
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzz;
pub mod hub;
pub mod import;
pub mod inspect;
pub mod keygen;
pub mod keys;
pub mod materialise;
mod progress;
pub mod publish;
pub mod rfs;
pub mod settings;
pub mod state;
pub mod status;
pub mod store;
pub mod swarmkey;
pub mod task;
pub mod tls;
pub mod units;
pub mod zos;
