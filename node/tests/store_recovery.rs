//! A block that goes bad in the node's store between two boots is found before the target is
//! touched, dropped, and fetched again from the hub (only that block).

mod boot_common;

use std::fs;

use boot_common::*;
use bootswarm_node::store::SledStore;
use bootswarm_protocol::block::parse_cid;
use bootswarm_protocol::store::BlockStore;

#[test]
fn corrupted_stored_chunk_is_fetched_again_before_the_target_is_touched() {
    let fx = Fixture::new();
    let first = fx.boot("store", "target");
    assert!(first.status.success(), "boot: {}", stderr_of(&first));
    let total = report(&first)["blocks_fetched"].as_u64().unwrap();

    // Flip one byte of the largest raw chunk's file in the store.
    let (cid, len) = fx
        .blocks()
        .into_iter()
        .filter(|(cid, _)| cid.starts_with("bafkrei"))
        .max_by_key(|(_, len)| *len)
        .expect("a raw chunk");
    let cid = parse_cid(&cid).unwrap();
    {
        let store = SledStore::open(&fx.path("store")).unwrap();
        assert!(store.contains(&cid).unwrap());
        let path = store.block_path(&cid);
        let mut bytes = fs::read(&path).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0x01;
        fs::write(&path, &bytes).unwrap();
    }
    let release_len = fs::metadata(fx.hub_dir.join(format!("channels/{CHANNEL}/latest")))
        .unwrap()
        .len();

    let before = fx.hub.egress();
    let second = fx.boot("store", "target");
    assert!(second.status.success(), "boot: {}", stderr_of(&second));
    let after = fx.hub.egress();
    assert_eq!(
        after - before,
        release_len + len,
        "the second boot fetches the release and exactly the corrupted chunk"
    );
    let r = report(&second);
    assert_eq!(r["blocks_fetched"], 1, "{r}");
    assert_eq!(r["blocks_reused"].as_u64(), Some(total - 1), "{r}");
    assert_tree_matches(&fx.path("target"), &fx.packages);
    for (path, _) in walk(&fx.path("target")) {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            !name.starts_with(".bootswarm-tmp."),
            "temp file left: {}",
            path.display()
        );
    }

    // The store holds a good copy again.
    let store = SledStore::open(&fx.path("store")).unwrap();
    assert_eq!(store.get(&cid).unwrap().map(|b| b.len() as u64), Some(len));
}
