//! cargo-fuzz target `metrics_export`; the harness (and what it checks) is
//! `leakwatch_fuzz::metrics_export` in `fuzz/src/lib.rs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| leakwatch_fuzz::metrics_export(data));
