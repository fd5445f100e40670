//! leakwatch's development and evaluation tools. Nothing here ships: the product crate
//! (`leakwatch`) never depends on this one.
//!
//! - [`loadgen`]: the OTLP load generator and blackhole sink behind `leakwatch-loadgen`,
//!   `scripts/bench.sh`, `soak.sh` and `flood.sh`.
//! - [`scenario`]: synthetic runtime-metric traces (leaks and traps) in event time: the tuning
//!   suite and an independent holdout set.
//! - [`practice`]: the practices leakwatch replaces, as the seed guide runs them (PromQL
//!   `deriv` rules, numpy polyfit + R²), replayed on the same traces for `leak-report`.

pub mod loadgen;
pub mod practice;
pub mod scenario;
