//! cargo-fuzz target `decompress`; the harness (and what it checks) is
//! `leakwatch_fuzz::decompress` in `fuzz/src/lib.rs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| leakwatch_fuzz::decompress(data));
