//! cargo-fuzz target `detector`; the harness (and what it checks) is
//! `leakwatch_fuzz::detector` in `fuzz/src/lib.rs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| leakwatch_fuzz::detector(data));
