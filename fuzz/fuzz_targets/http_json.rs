//! cargo-fuzz target `http_json`; the harness (and what it checks) is
//! `leakwatch_fuzz::http_json` in `fuzz/src/lib.rs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| leakwatch_fuzz::http_json(data));
