#![no_main]
// See fuzz/src/lib.rs: the harness is shared with tests/it/hostile.rs.
libfuzzer_sys::fuzz_target!(|data: &[u8]| sfdiag_fuzz::tls13_decrypt(data));
