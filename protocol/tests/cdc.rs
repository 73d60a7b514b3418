//! Content-defined chunking: an insertion keeps most chunks, and sizes stay in bounds.

use bootswarm_protocol::chunker::{Chunker, MAX_CHUNK, MIN_CHUNK};
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;

const MIB: usize = 1024 * 1024;

/// Deterministic pseudo-random bytes (splitmix64).
fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        out.extend_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
    out.truncate(len);
    out
}

fn digests(data: &[u8]) -> Vec<[u8; 32]> {
    Chunker::default()
        .split(data)
        .map(|c| Sha256::digest(c).into())
        .collect()
}

fn assert_bounds(data: &[u8]) {
    let chunks: Vec<&[u8]> = Chunker::default().split(data).collect();
    assert_eq!(chunks.iter().map(|c| c.len()).sum::<usize>(), data.len());
    let (last, body) = chunks.split_last().expect("non-empty input");
    assert!((1..=MAX_CHUNK).contains(&last.len()));
    for c in body {
        assert!(
            (MIN_CHUNK..=MAX_CHUNK).contains(&c.len()),
            "chunk of {} bytes",
            c.len()
        );
    }
}

#[test]
fn insertion_in_the_middle_keeps_most_chunks() {
    let old = pseudo_random(64 * MIB, 42);
    let insert = pseudo_random(MIB, 43);
    let mid = old.len() / 2 + 12_345;
    let mut new = Vec::with_capacity(old.len() + insert.len());
    new.extend_from_slice(&old[..mid]);
    new.extend_from_slice(&insert);
    new.extend_from_slice(&old[mid..]);

    let old_set: BTreeSet<[u8; 32]> = digests(&old).into_iter().collect();
    let new_digests = digests(&new);
    let shared = new_digests.iter().filter(|d| old_set.contains(*d)).count();
    let ratio = shared as f64 / new_digests.len() as f64;
    eprintln!(
        "{shared}/{} chunks of the new file are shared ({:.1} %), old file has {} chunks",
        new_digests.len(),
        ratio * 100.0,
        old_set.len()
    );
    assert!(
        ratio >= 0.90,
        "only {:.1} % of chunks shared",
        ratio * 100.0
    );

    assert_bounds(&old);
    assert_bounds(&new);
}

#[test]
fn chunk_sizes_stay_in_bounds() {
    for (len, seed) in [(1, 1), (MIN_CHUNK, 2), (MIN_CHUNK + 1, 3), (9 * MIB + 7, 4)] {
        assert_bounds(&pseudo_random(len, seed));
    }
    // Low-entropy data never cuts by content: every chunk is the maximum.
    let zeros = vec![0u8; 3 * MAX_CHUNK + 1];
    let sizes: Vec<usize> = Chunker::default().split(&zeros).map(<[u8]>::len).collect();
    assert_eq!(sizes, vec![MAX_CHUNK, MAX_CHUNK, MAX_CHUNK, 1]);
}

#[test]
fn streaming_cut_matches_split() {
    let data = pseudo_random(20 * MIB, 5);
    let chunker = Chunker::default();
    let expected: Vec<usize> = chunker.split(&data).map(<[u8]>::len).collect();
    // Feed the chunker in 300 KiB pieces as a reader would.
    let mut got = Vec::new();
    let mut start = 0;
    let mut end = 0;
    while start < data.len() {
        let eof = end == data.len();
        let n = chunker.cut(&data[start..end], eof);
        if n == 0 {
            end = (end + 300 * 1024).min(data.len());
            continue;
        }
        got.push(n);
        start += n;
    }
    assert_eq!(got, expected);
}
