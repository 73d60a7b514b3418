#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| bootswarm_node::fuzz::state_file(data));
