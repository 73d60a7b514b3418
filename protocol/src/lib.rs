//! The sans-IO core of bootswarm: content model, signed releases, block stores and the swarm
//! agent.
//!
//! Nothing here touches a clock, a socket, a file or a global random number generator: time,
//! seeds and I/O results are inputs, so the node and the simulator drive the same code.
#![warn(missing_docs)]

pub mod agent;
pub mod block;
pub mod chunker;
pub mod follower;
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzz;
pub mod manifest;
pub mod release;
pub mod store;
pub mod walk;

pub use block::{BlockError, Cid, CidError, Codec, Verified, check_cid, cid_of, parse_cid};
pub use chunker::Chunker;
pub use manifest::{ChildRef, ChunkRef, Entry, EntryKind, Flist, ManifestError};
pub use release::{
    Freshness, HighWater, Release, ReleaseError, Signature, SignedRelease, TrustRoot, check_release,
};
pub use store::{BlockStore, MemoryStore, StoreError};
