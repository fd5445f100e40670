//! Protobuf types: the lean view decoded on the hot path, and the full OTLP
//! types (from `opentelemetry-proto`) used where a whole message is needed
//! (OTLP/JSON, responses, leak events, tests).

/// The lean, wire-compatible view of OTLP export requests
/// (`proto/leakwatch/lean/v1/lean.proto`).
#[allow(clippy::all, missing_docs)]
pub mod lean {
    include!(concat!(env!("OUT_DIR"), "/leakwatch.lean.v1.rs"));
}

pub use opentelemetry_proto::tonic as otlp;

/// gRPC method paths of the three OTLP export services.
pub mod paths {
    pub const METRICS: &str = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export";
    pub const TRACES: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";
    pub const LOGS: &str = "/opentelemetry.proto.collector.logs.v1.LogsService/Export";
}
