//! Measures the block store's memory and disk footprint: puts N blocks of SIZE bytes, reads
//! them all back, and prints peak/current RSS (from /proc/self/status) and bytes on disk.
//!
//! `cargo run --release -p bootswarm-node --example store_rss -- [store|sled-VARIANT] [N] [SIZE]`
//! where VARIANT is one of default, lowspace, small-cache, nocompress, segment, all.

use std::path::Path;

use bootswarm_node::store::SledStore;
use bootswarm_protocol::block::{Codec, cid_of};
use bootswarm_protocol::store::BlockStore;

fn status(field: &str) -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn report(stage: &str, dir: &Path) {
    println!(
        "{stage:>10}: VmHWM {:>6} MiB  VmRSS {:>6} MiB  disk {:>6} MiB",
        status("VmHWM:") / 1024,
        status("VmRSS:") / 1024,
        du(dir) / (1024 * 1024)
    );
}

fn du(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0;
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            match e.metadata() {
                Ok(m) if m.is_dir() => total += du(&e.path()),
                Ok(m) => total += m.blocks() * 512,
                Err(_) => {}
            }
        }
    }
    total
}

fn block(i: usize, size: usize) -> Vec<u8> {
    let mut v = vec![0u8; size];
    let mut x = (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    for b in v.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    v
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let kind = args.get(1).map_or("store", String::as_str).to_string();
    let n: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(256);
    let size: usize = args
        .get(3)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1024 * 1024);
    let tmp = std::env::temp_dir().join(format!("store_rss-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    println!("{kind}: {n} x {size} bytes");
    report("start", &tmp);
    if kind == "store" {
        let store = SledStore::open(&tmp).expect("open");
        let mut cids = Vec::new();
        for i in 0..n {
            let b = block(i, size);
            let cid = cid_of(Codec::Raw, &b);
            store.put(&cid, &b).expect("put");
            cids.push(cid);
        }
        report("put", &tmp);
        store.flush().expect("flush");
        report("flush", &tmp);
        drop(store);
        let store = SledStore::open(&tmp).expect("reopen");
        for cid in &cids {
            assert!(store.get(cid).expect("get").is_some());
        }
        report("get", &tmp);
    } else {
        let variant = kind.trim_start_matches("sled-");
        let db = sled_config(&tmp, variant).open().expect("open");
        for i in 0..n {
            let b = block(i, size);
            let cid = cid_of(Codec::Raw, &b);
            db.insert(cid.to_bytes(), b).expect("insert");
        }
        report("put", &tmp);
        db.flush().expect("flush");
        report("flush", &tmp);
        drop(db);
        let db = sled_config(&tmp, variant).open().expect("reopen");
        let mut total = 0usize;
        for kv in db.iter() {
            total += kv.expect("iter").1.len();
        }
        assert_eq!(total, n * size);
        report("get", &tmp);
    }
    let _ = std::fs::remove_dir_all(&tmp);
}

fn sled_config(dir: &Path, variant: &str) -> sled::Config {
    let cfg = sled::Config::new().path(dir);
    match variant {
        "default" => cfg.cache_capacity(16 << 20),
        "lowspace" => cfg.cache_capacity(16 << 20).mode(sled::Mode::LowSpace),
        "small-cache" => cfg.cache_capacity(1 << 20),
        "nocompress" => cfg.cache_capacity(16 << 20).use_compression(false),
        "segment" => cfg.cache_capacity(16 << 20).segment_size(1 << 20),
        "flush" => cfg.cache_capacity(16 << 20).flush_every_ms(Some(50)),
        "all" => cfg
            .cache_capacity(1 << 20)
            .mode(sled::Mode::LowSpace)
            .segment_size(1 << 20)
            .flush_every_ms(Some(50)),
        other => panic!("unknown variant {other}"),
    }
}
