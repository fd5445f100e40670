//! cargo-fuzz target `traces_logs_export`; the harness (and what it checks) is
//! `leakwatch_fuzz::traces_logs_export` in `fuzz/src/lib.rs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| leakwatch_fuzz::traces_logs_export(data));
