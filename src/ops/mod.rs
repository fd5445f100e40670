//! Plumbing below the stages: self-telemetry, the memory limiter, HTTP serving, the TLS loader,
//! periodic tickers, the outbound HTTP client and slow-client deadlines.

pub mod limiter;
pub mod net;
pub mod outbound;
pub mod periodic;
pub mod slow;
pub mod telemetry;
pub mod tls;
