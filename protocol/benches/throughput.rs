//! Single-thread throughput of chunking, hashing and verifying.
#![allow(clippy::disallowed_methods)]

use bootswarm_protocol::block::{Cid, Codec, cid_of, verify};
use bootswarm_protocol::chunker::Chunker;
use std::hint::black_box;
use std::time::Instant;

const MIB: usize = 1024 * 1024;
const SIZE: usize = 256 * MIB;

fn pseudo_random(len: usize) -> Vec<u8> {
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Best of three runs, in MB/s (10^6 bytes per second).
fn measure(mut f: impl FnMut() -> usize) -> f64 {
    let mut best = f64::MAX;
    for _ in 0..3 {
        let start = Instant::now();
        black_box(f());
        best = best.min(start.elapsed().as_secs_f64());
    }
    SIZE as f64 / best / 1e6
}

fn main() {
    let data = pseudo_random(SIZE);
    let chunker = Chunker::default();

    let chunk = measure(|| chunker.split(black_box(&data)).count());
    let chunk_hash = measure(|| {
        chunker.split(black_box(&data)).fold(0, |n, c| {
            black_box(cid_of(Codec::Raw, c));
            n + 1
        })
    });
    let blocks: Vec<(Cid, &[u8])> = data
        .chunks(MIB)
        .map(|b| (cid_of(Codec::Raw, b), b))
        .collect();
    let verified = measure(|| {
        blocks
            .iter()
            .filter(|(cid, b)| verify(cid, black_box(b)).is_ok())
            .count()
    });
    let chunks = chunker.split(&data).count();

    println!("throughput on {} MiB, single thread, best of 3", SIZE / MIB);
    println!("| operation          |     MB/s |");
    println!("|--------------------|---------:|");
    println!("| chunk              | {chunk:8.0} |");
    println!("| chunk + cid_of     | {chunk_hash:8.0} |");
    println!("| verify 1 MiB block | {verified:8.0} |");
    println!(
        "{chunks} chunks, average {:.2} MiB",
        SIZE as f64 / chunks as f64 / MIB as f64
    );
}
