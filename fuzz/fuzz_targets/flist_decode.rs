#![no_main]
use bootswarm_protocol::manifest::Flist;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(flist) = Flist::decode(data) {
        // Anything accepted is canonical: it re-encodes to the same bytes.
        assert_eq!(flist.encode().expect("a decoded flist encodes"), data);
    }
});
