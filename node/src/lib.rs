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
pub mod inspect;
pub mod keygen;
pub mod keys;
pub mod materialise;
pub mod publish;
pub mod state;
pub mod status;
pub mod store;
pub mod swarmkey;
pub mod task;
pub mod units;
pub mod zos;
