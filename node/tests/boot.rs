//! `bootswarm boot` against a real hub process: round trip, resume, tampered blocks.

mod boot_common;

use std::fs;

use boot_common::*;

#[test]
fn boot_reproduces_the_published_tree() {
    let fx = Fixture::new();
    let out = fx.boot("store", "target");
    assert!(out.status.success(), "boot: {}", stderr_of(&out));
    assert_tree_matches(&fx.path("target"), &fx.packages);
    let r = report(&out);
    assert_eq!(r["seq"], 1);
    assert_eq!(r["blocks_reused"], 0);
    assert!(r["blocks_fetched"].as_u64().unwrap() >= 5, "{r}");
    // No temporary file is left beside the installed ones.
    for (path, _) in walk(&fx.path("target")) {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            !name.contains(".tmp-"),
            "temp file left: {}",
            path.display()
        );
    }
}

#[test]
fn second_boot_with_the_same_store_fetches_only_the_release() {
    let fx = Fixture::new();
    let first = fx.boot("store", "t1");
    assert!(first.status.success(), "boot: {}", stderr_of(&first));
    let release_len = fs::metadata(fx.hub_dir.join(format!("channels/{CHANNEL}/latest")))
        .unwrap()
        .len();

    let before = fx.hub.egress();
    let second = fx.boot("store", "t2");
    assert!(second.status.success(), "boot: {}", stderr_of(&second));
    let after = fx.hub.egress();
    assert_eq!(after - before, release_len, "hub egress of the second boot");
    let r = report(&second);
    assert_eq!(r["blocks_fetched"], 0, "{r}");
    assert_eq!(r["hub_bytes"].as_u64(), Some(release_len), "{r}");
    assert_tree_matches(&fx.path("t2"), &fx.packages);

    // Booting over an existing tree replaces it in place.
    let third = fx.boot("store", "t1");
    assert!(third.status.success(), "boot: {}", stderr_of(&third));
    assert_tree_matches(&fx.path("t1"), &fx.packages);
}

/// Boots with a fresh store after `tamper` edited the hub's copy of one block; the boot
/// must fail naming the block and leave the target empty or absent.
fn assert_tamper_refused(fx: &Fixture, case: &str, cid: &str, tamper: impl FnOnce(&mut Vec<u8>)) {
    let path = fx.block_path(cid);
    let original = fs::read(&path).unwrap();
    let mut bytes = original.clone();
    tamper(&mut bytes);
    fs::write(&path, &bytes).unwrap();
    let out = fx.boot(&format!("store-{case}"), &format!("target-{case}"));
    fs::write(&path, &original).unwrap();
    assert_one_sentence(&out, cid);
    assert_untouched(&fx.path(&format!("target-{case}")));
}

/// The smallest raw chunk of the release (a file chunk).
fn a_chunk(fx: &Fixture) -> String {
    fx.blocks()
        .into_iter()
        .filter(|(cid, _)| cid.starts_with("bafkrei"))
        .min_by_key(|(_, len)| *len)
        .expect("a raw chunk")
        .0
}

#[test]
fn flipped_byte_in_a_chunk_is_refused() {
    let fx = Fixture::new();
    let cid = a_chunk(&fx);
    assert_tamper_refused(&fx, "flip", &cid, |b| {
        let mid = b.len() / 2;
        b[mid] ^= 0x01;
    });
}

#[test]
fn truncated_chunk_is_refused() {
    let fx = Fixture::new();
    let cid = a_chunk(&fx);
    assert_tamper_refused(&fx, "truncate", &cid, |b| b.truncate(b.len() / 2));
}

#[test]
fn another_blocks_bytes_under_a_cid_are_refused() {
    let fx = Fixture::new();
    let blocks = fx.blocks();
    let cid = a_chunk(&fx);
    // Same length (a hash mismatch) when possible, else the largest other block (over the cap).
    let len = blocks.iter().find(|(c, _)| *c == cid).unwrap().1;
    let other = blocks
        .iter()
        .filter(|(c, _)| *c != cid && c.starts_with("bafkrei"))
        .max_by_key(|(_, l)| *l)
        .unwrap()
        .0
        .clone();
    let other_bytes = fs::read(fx.block_path(&other)).unwrap();
    assert!(other_bytes.len() as u64 > len);
    assert_tamper_refused(&fx, "swap-larger", &cid, |b| *b = other_bytes.clone());
    // A smaller block's bytes (a length and hash mismatch).
    let small = b"not the block you asked for".to_vec();
    assert_tamper_refused(&fx, "swap-smaller", &cid, |b| *b = small);
}

#[test]
fn tampered_flist_is_refused() {
    let fx = Fixture::new();
    let flist = fx
        .blocks()
        .into_iter()
        .find(|(cid, _)| cid.starts_with("bafyrei"))
        .expect("a dag-cbor flist")
        .0;
    assert_tamper_refused(&fx, "flist", &flist, |b| {
        let last = b.len() - 1;
        b[last] ^= 0x80;
    });
}

#[test]
fn boot_resumes_from_the_store_after_a_refused_block() {
    let fx = Fixture::new();
    let cid = a_chunk(&fx);
    let path = fx.block_path(&cid);
    let original = fs::read(&path).unwrap();
    fs::write(&path, b"garbage").unwrap();
    let failed = fx.boot("store", "target");
    assert_one_sentence(&failed, &cid);
    assert_untouched(&fx.path("target"));

    fs::write(&path, &original).unwrap();
    let out = fx.boot("store", "target");
    assert!(out.status.success(), "boot: {}", stderr_of(&out));
    let r = report(&out);
    // At least the root and the two package flists were kept from the failed attempt.
    assert!(r["blocks_reused"].as_u64().unwrap() >= 3, "{r}");
    assert_tree_matches(&fx.path("target"), &fx.packages);
}
