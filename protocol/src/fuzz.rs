//! The bodies of the fuzz targets in `fuzz/`, and a deterministic input generator so that
//! `cargo test` runs the same bodies on stable Rust.
//!
//! `fuzz/fuzz_targets/<name>.rs` is `fuzz_target!(|data: &[u8]| <name>(data))`. The tests run
//! each body over its [`seeds`] (real encodings), the committed corpus in
//! `fuzz/corpus/<name>/` and a fixed number of inputs [`exercise`] derives from both. A body
//! panics when an invariant breaks, never because an input is merely invalid.
//!
//! Compiled for this crate's tests and with the `fuzzing` feature only.

mod agent_sequence;
mod decoders;
mod fixtures;
mod follower_inputs;
mod generate;
mod reader;

pub use agent_sequence::agent_sequence;
pub use decoders::{cid_parse, flist_decode, message_decode, release_decode};
pub use follower_inputs::follower_inputs;
pub use generate::{exercise, mutate};
pub use reader::Reader;

/// A fuzz target of this crate: its name (the `fuzz/corpus/` directory), its body and the
/// seeds it starts from.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    /// The target's name.
    pub name: &'static str,
    /// The body.
    pub body: fn(&[u8]),
    /// Real encodings to start from.
    pub seeds: fn() -> Vec<Vec<u8>>,
}

/// Every fuzz target of this crate.
pub const TARGETS: &[Target] = &[
    Target {
        name: "cid_parse",
        body: cid_parse,
        seeds: decoders::cid_seeds,
    },
    Target {
        name: "flist_decode",
        body: flist_decode,
        seeds: decoders::flist_seeds,
    },
    Target {
        name: "message_decode",
        body: message_decode,
        seeds: decoders::message_seeds,
    },
    Target {
        name: "release_decode",
        body: release_decode,
        seeds: decoders::release_seeds,
    },
    Target {
        name: "agent_sequence",
        body: agent_sequence,
        seeds: agent_sequence::seeds,
    },
    Target {
        name: "follower_inputs",
        body: follower_inputs,
        seeds: follower_inputs::seeds,
    },
];

/// The seeds of the target called `name` (none for an unknown name).
pub fn seeds(name: &str) -> Vec<Vec<u8>> {
    TARGETS
        .iter()
        .find(|t| t.name == name)
        .map_or_else(Vec::new, |t| (t.seeds)())
}

#[cfg(test)]
mod tests;
