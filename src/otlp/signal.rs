//! The three OTLP signals and the two receiver protocols, as small `Copy`
//! enums used to index self-metrics and route forwarded requests.

use serde::Serialize;

/// An OTLP signal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Signal {
    Metrics,
    Traces,
    Logs,
}

impl Signal {
    pub const ALL: [Signal; 3] = [Signal::Metrics, Signal::Traces, Signal::Logs];

    pub fn as_str(self) -> &'static str {
        match self {
            Signal::Metrics => "metrics",
            Signal::Traces => "traces",
            Signal::Logs => "logs",
        }
    }

    /// The gRPC method that exports this signal.
    pub fn grpc_path(self) -> &'static str {
        match self {
            Signal::Metrics => crate::otlp::proto::paths::METRICS,
            Signal::Traces => crate::otlp::proto::paths::TRACES,
            Signal::Logs => crate::otlp::proto::paths::LOGS,
        }
    }

    /// What one item of this signal is called in OTLP responses and metrics.
    pub fn item(self) -> &'static str {
        match self {
            Signal::Metrics => "data_points",
            Signal::Traces => "spans",
            Signal::Logs => "log_records",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

/// The protocol a request arrived on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Protocol {
    Grpc,
    HttpProtobuf,
    HttpJson,
}

impl Protocol {
    pub const ALL: [Protocol; 3] = [Protocol::Grpc, Protocol::HttpProtobuf, Protocol::HttpJson];

    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Grpc => "grpc",
            Protocol::HttpProtobuf => "http_protobuf",
            Protocol::HttpJson => "http_json",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}
