//! rfs content: the v2 flists (`.fl`, sqlite) of the Zero-OS hub and their blocks, carried by
//! bootswarm as they are. An imported `.fl` becomes a bootswarm flist whose chunks are the rfs
//! blocks themselves (blake2b-256 CIDs of the stored bytes, each with its key); peers move and
//! verify the stored bytes, the install decodes them, and a node that cannot get a block from
//! its peers fetches it from the store its flist's routes name (or from `--upstream`).
//!
//! - [`block`]: one block, stored bytes ↔ plaintext (the install's decode step);
//! - [`flist`]: reading a `.fl` into a bootswarm flist; [`pack`]: writing one (demo, tests);
//! - [`store`]: the rfs stores (`zdb://`, `http(s)://`, `dir://`); [`resp`]: the RESP wire
//!   format of 0-db; [`upstream`]: which store to ask for which block.

pub mod block;
pub mod flist;
pub mod pack;
pub mod resp;
pub mod store;
pub mod upstream;

/// Lowercase hex of a block id (how every store names it).
pub fn hex(id: &[u8; 32]) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}
