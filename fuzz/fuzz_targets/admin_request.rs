#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cart_fuzz::harness::admin_request(data));
