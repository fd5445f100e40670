//! In-process integration tests of the whole pipeline: receive (gRPC and
//! HTTP) → track → forward, against a fake downstream collector. One suite
//! per file; the helpers they share are here.

#[path = "../common/mod.rs"]
mod common;

mod delivery;
mod grpc;
mod http;
mod merged;
mod tracking;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use leakwatch::otlp::proto::otlp::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use leakwatch::otlp::proto::otlp::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use leakwatch::otlp::proto::otlp::collector::trace::v1::ExportTraceServiceRequest;
use leakwatch::otlp::proto::otlp::common::v1::InstrumentationScope;
use leakwatch::otlp::proto::otlp::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use leakwatch::otlp::proto::otlp::trace::v1::{ResourceSpans, ScopeSpans, Span};
use leakwatch::otlp::proto::paths;
use prost::Message;
use tonic::codec::CompressionEncoding;
use tonic::Code;
use tonic_types::StatusExt;

fn spans(n: usize) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(resource("checkout", "pod-1")),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "t".into(),
                    ..Default::default()
                }),
                spans: (0..n)
                    .map(|i| Span {
                        trace_id: vec![1; 16],
                        span_id: vec![i as u8 + 1; 8],
                        name: format!("span-{i}"),
                        start_time_unix_nano: 1,
                        end_time_unix_nano: 2,
                        ..Default::default()
                    })
                    .collect(),
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

fn logs(n: usize) -> ExportLogsServiceRequest {
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(resource("checkout", "pod-1")),
            scope_logs: vec![ScopeLogs {
                scope: None,
                log_records: (0..n)
                    .map(|i| LogRecord {
                        time_unix_nano: 5,
                        body: Some(leakwatch::otlp::proto::otlp::common::v1::AnyValue {
                            value: Some(
                                leakwatch::otlp::proto::otlp::common::v1::any_value::Value::StringValue(
                                    format!("log {i}"),
                                ),
                            ),
                        }),
                        ..Default::default()
                    })
                    .collect(),
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A logs request of one record whose time is `id + 1` and whose body is `text`.
fn log_request(id: u64, text: &str) -> Bytes {
    let record = LogRecord {
        time_unix_nano: id + 1,
        body: Some(leakwatch::otlp::proto::otlp::common::v1::AnyValue {
            value: Some(
                leakwatch::otlp::proto::otlp::common::v1::any_value::Value::StringValue(
                    text.to_owned(),
                ),
            ),
        }),
        ..Default::default()
    };
    Bytes::from(
        ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                resource: Some(resource("batch", "1")),
                scope_logs: vec![ScopeLogs {
                    log_records: vec![record],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
        .encode_to_vec(),
    )
}

fn log_ids(body: &[u8]) -> Vec<u64> {
    ExportLogsServiceRequest::decode(body)
        .expect("a logs request")
        .resource_logs
        .iter()
        .flat_map(|r| &r.scope_logs)
        .flat_map(|s| &s.log_records)
        .map(|l| l.time_unix_nano - 1)
        .collect()
}

fn concat(parts: &[Bytes]) -> Vec<u8> {
    parts.iter().flat_map(|b| b.iter().copied()).collect()
}

/// The self-metrics, once they contain `needle` (within 5 s; the last scrape otherwise).
async fn metrics_with(lw: &Running, needle: &str) -> String {
    let mut text = String::new();
    for _ in 0..100 {
        let (_, _, m) = http_request("GET", &lw.admin_url("/metrics"), &[], vec![]).await;
        text = String::from_utf8_lossy(&m).into_owned();
        if text.contains(needle) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    text
}

/// One sender and a downstream that refuses (retryably) until `accept` is called: requests
/// sent meanwhile wait in the queue behind the one the sender holds.
async fn held_back(batch: Option<(usize, usize)>) -> (Downstream, Running) {
    let downstream = Downstream::start().await;
    *downstream.behaviour.lock().await = Behaviour::Fail(Code::Unavailable);
    let mut config = test_config(Some(downstream.endpoint()));
    config.downstream.senders = 1;
    if let Some((max_bytes, max_requests)) = batch {
        config.downstream.batch.max_bytes = max_bytes;
        config.downstream.batch.max_requests = max_requests;
    }
    let lw = start(config).await;
    (downstream, lw)
}

/// Exports on `path` until they hold `n` requests' worth of log records.
async fn exports_holding(downstream: &mut Downstream, path: &str, n: usize) -> Vec<Bytes> {
    let mut exports = Vec::new();
    let mut records = 0;
    while records < n {
        let r = downstream.next_on(path).await;
        records += log_ids(&r.body).len();
        exports.push(r.body);
    }
    exports
}
