#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| bootswarm_protocol::fuzz::follower_inputs(data));
