#![no_main]
use bootswarm_protocol::release::SignedRelease;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(release) = SignedRelease::decode(data) {
        assert_eq!(release.encode(), data);
    }
});
