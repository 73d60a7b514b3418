#![no_main]
use bootswarm_protocol::block::{parse_cid, verify};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(cid) = parse_cid(text) {
            let _ = verify(&cid, data);
        }
    }
});
