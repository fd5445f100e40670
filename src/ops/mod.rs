//! Plumbing below the stages: self-telemetry, the memory limiter, TLS and HTTP serving,
//! periodic tickers and the outbound HTTP client.

pub mod limiter;
pub mod net;
pub mod outbound;
pub mod periodic;
pub mod telemetry;
