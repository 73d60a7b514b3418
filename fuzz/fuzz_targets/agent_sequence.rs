#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| bootswarm_protocol::fuzz::agent_sequence(data));
