//! Hostile input against a running leakwatch (in-process, loopback): NaN and
//! ±Inf, negative and huge values, timestamps 0 and far in the future, out of
//! order and duplicate points, empty requests, 10,000 levels of nested
//! AnyValue, compression bombs, invalid UTF-8, garbage bytes, OTLP/JSON that
//! the proto3 JSON mapping allows (or forbids).
//!
//! Each test checks the status the client gets, that anomalies are counted in
//! `/metrics`, that whatever was accepted reaches the downstream byte for
//! byte, and that the server keeps serving afterwards.

mod common;

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use leakwatch::engine::{Engine, EngineConfig};
use leakwatch::ops::telemetry::Telemetry;
use leakwatch::otlp::proto::otlp::collector::logs::v1::ExportLogsServiceRequest;
use leakwatch::otlp::proto::otlp::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use leakwatch::otlp::proto::otlp::collector::trace::v1::ExportTraceServiceRequest;
use leakwatch::otlp::proto::otlp::metrics::v1::{
    number_data_point, Metric, ResourceMetrics, ScopeMetrics,
};
use leakwatch::otlp::proto::paths;
use prost::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::codec::CompressionEncoding;
use tonic::Code;

const SEC: u64 = 1_000_000_000;

// ------------------------------------------------------------------ helpers

async fn metrics_text(lw: &Running) -> String {
    let (status, _, body) = http_request("GET", &lw.admin_url("/metrics"), &[], vec![]).await;
    assert_eq!(status, 200);
    String::from_utf8(body.to_vec()).expect("metrics are UTF-8")
}

/// The value of one sample line, e.g. `leakwatch_points_anomalies_total{kind="duplicate"}`.
fn sample(text: &str, series: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("{series} missing from /metrics:\n{text}"))
        .trim()
        .parse::<f64>()
        .unwrap_or_else(|e| panic!("{series}: {e}")) as u64
}

fn anomalies(text: &str, kind: &str) -> u64 {
    sample(
        text,
        &format!("leakwatch_points_anomalies_total{{kind=\"{kind}\"}}"),
    )
}

fn refused(text: &str, signal: &str, reason: &str) -> u64 {
    sample(
        text,
        &format!(
            "leakwatch_receiver_refused_requests_total{{signal=\"{signal}\",reason=\"{reason}\"}}"
        ),
    )
}

async fn grpc(lw: &Running, path: &'static str, body: Bytes) -> Result<Bytes, tonic::Status> {
    grpc_raw(&lw.grpc_endpoint(), path, body, None, None).await
}

async fn post(lw: &Running, path: &str, content_type: &str, body: Vec<u8>) -> (u16, Bytes) {
    let (status, _, body) = http_request(
        "POST",
        &lw.http_url(path),
        &[("content-type", content_type)],
        body,
    )
    .await;
    (status, body)
}

fn memory_points(points: Vec<leakwatch::otlp::proto::otlp::metrics::v1::NumberDataPoint>) -> Bytes {
    Bytes::from(
        request(
            resource("hostile", "pod-1"),
            vec![gauge_metric("process.memory.usage", "By", points)],
        )
        .encode_to_vec(),
    )
}

/// A good request after the hostile ones: accepted over gRPC and HTTP and
/// forwarded byte for byte (the server is alive and its pipeline intact).
/// It holds only metrics the catalog does not track, so a test that sets the
/// series bound to 0 still gets it forwarded whole.
async fn still_serving(lw: &Running, downstream: &mut Downstream) {
    let catalog = leakwatch::catalog::Catalog::builtin();
    let mut request = every_point_kind(now_ns());
    for rm in &mut request.resource_metrics {
        for sm in &mut rm.scope_metrics {
            sm.metrics
                .retain(|m| !catalog.metric_names().any(|n| n == m.name));
        }
    }
    let body = Bytes::from(request.encode_to_vec());
    grpc(lw, paths::METRICS, body.clone())
        .await
        .expect("a good gRPC request after hostile input");
    assert_eq!(downstream.next_on(paths::METRICS).await.body, body);
    let (status, _) = post(lw, "/v1/metrics", "application/x-protobuf", body.to_vec()).await;
    assert_eq!(status, 200);
    assert_eq!(downstream.next_on(paths::METRICS).await.body, body);
}

/// An `AnyValue` nested `depth` levels deep (`{kvlist: [{k: …}]}`), encoded
/// by hand: building (and dropping) it as prost structs would recurse
/// 10,000 deep in the test itself. Built back to front in O(depth).
fn deep_any_value(depth: usize) -> Vec<u8> {
    // Reversed: the innermost value first, then each level's header.
    let mut rev: Vec<u8> = b"\x0a\x06bottom".iter().rev().copied().collect();
    let mut header = Vec::new();
    for _ in 0..depth {
        let inner = rev.len();
        // KeyValue { key: "k" (1), value: inner (2) }
        let kv = 4 + varint_len(inner) + inner;
        // KeyValueList { values (1): kv }
        let kvl = 1 + varint_len(kv) + kv;
        header.clear();
        header.push(0x32); // AnyValue.kvlist_value (6)
        varint(kvl, &mut header);
        header.push(0x0a);
        varint(kv, &mut header);
        header.extend_from_slice(&[0x0a, 0x01, b'k', 0x12]);
        varint(inner, &mut header);
        rev.extend(header.iter().rev());
    }
    rev.reverse();
    rev
}

fn varint_len(mut v: usize) -> usize {
    let mut n = 1;
    while v >= 0x80 {
        v >>= 7;
        n += 1;
    }
    n
}

/// A length-delimited protobuf field.
fn field(number: u32, bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + 8);
    varint(((number << 3) | 2) as usize, &mut out);
    varint(bytes.len(), &mut out);
    out.extend_from_slice(bytes);
    out
}

fn varint(mut v: usize, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// `KeyValue { key, value: <raw AnyValue> }`.
fn raw_attribute(key: &str, any_value: &[u8]) -> Vec<u8> {
    [field(1, key.as_bytes()), field(2, any_value)].concat()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(data).expect("gzip");
    e.finish().expect("gzip")
}

// -------------------------------------------------------------------- values

#[tokio::test]
async fn nan_inf_negative_and_huge_values_are_counted_not_used_and_forwarded() {
    let mut downstream = Downstream::start().await;
    let lw = start(test_config(Some(downstream.endpoint()))).await;
    let t = now_ns();
    let int_point = |t_ns, v: i64| leakwatch::otlp::proto::otlp::metrics::v1::NumberDataPoint {
        time_unix_nano: t_ns,
        value: Some(number_data_point::Value::AsInt(v)),
        ..Default::default()
    };
    let body = memory_points(vec![
        number_point(t, 1e8, vec![]),
        number_point(t + SEC, f64::NAN, vec![]),
        number_point(t + 2 * SEC, f64::INFINITY, vec![]),
        number_point(t + 3 * SEC, f64::NEG_INFINITY, vec![]),
        number_point(t + 4 * SEC, -5e7, vec![]),
        number_point(t + 5 * SEC, 1e300, vec![]),
        int_point(t + 6 * SEC, i64::MAX),
        int_point(t + 7 * SEC, i64::MIN),
        leakwatch::otlp::proto::otlp::metrics::v1::NumberDataPoint {
            flags: 1, // FLAG_NO_RECORDED_VALUE
            ..number_point(t + 8 * SEC, 1e8, vec![])
        },
        number_point(t + 9 * SEC, 1.2e8, vec![]),
        number_point(t + 10 * SEC, f64::MIN_POSITIVE, vec![kv("k", "tiny")]),
        number_point(t + 11 * SEC, -0.0, vec![kv("k", "negative-zero")]),
    ]);
    let reply = grpc(&lw, paths::METRICS, body.clone())
        .await
        .expect("bad values do not fail the request");
    assert_eq!(
        ExportMetricsServiceResponse::decode(reply)
            .expect("response")
            .partial_success,
        None
    );
    assert_eq!(downstream.next_on(paths::METRICS).await.body, body);
    let text = metrics_text(&lw).await;
    // NaN, +Inf, -Inf and "no recorded value".
    assert_eq!(anomalies(&text, "non_finite"), 4, "{text}");
    // Negative, 1e300, i64::MAX (beyond detector.max_value), i64::MIN.
    assert_eq!(anomalies(&text, "invalid"), 4, "{text}");
    assert_eq!(
        sample(
            &text,
            "leakwatch_receiver_items_total{signal=\"metrics\",protocol=\"grpc\"}"
        ),
        12
    );
    // The good points were used: the series shows the last accepted value.
    let (_, _, series) = http_request(
        "GET",
        &lw.admin_url("/api/v1/series?service.name=hostile"),
        &[],
        vec![],
    )
    .await;
    let v: serde_json::Value = serde_json::from_slice(&series).expect("json");
    let values: Vec<f64> = v["items"]
        .as_array()
        .unwrap_or_else(|| panic!("series list in {v}"))
        .iter()
        .filter_map(|s| s["trend"]["last_value"].as_f64())
        .collect();
    assert!(values.contains(&1.2e8), "{v}");
    assert!(values.iter().all(|x| x.is_finite()), "{v}");
    still_serving(&lw, &mut downstream).await;
    lw.stop().await;
    downstream.stop().await;
}

// ---------------------------------------------------------------- timestamps

#[tokio::test]
async fn zero_and_far_future_timestamps_are_refused_per_point_and_forwarded() {
    let mut downstream = Downstream::start().await;
    let lw = start(test_config(Some(downstream.endpoint()))).await;
    let t = now_ns();
    let year = 365 * 24 * 3600 * SEC;
    let body = memory_points(vec![
        number_point(0, 1e8, vec![kv("case", "zero")]),
        number_point(t, 1e8, vec![kv("case", "jump")]),
        number_point(t + 100 * year, 1e8, vec![kv("case", "jump")]),
        number_point(t + SEC, 1.1e8, vec![kv("case", "jump")]),
    ]);
    grpc(&lw, paths::METRICS, body.clone())
        .await
        .expect("odd timestamps do not fail the request");
    assert_eq!(downstream.next_on(paths::METRICS).await.body, body);
    let text = metrics_text(&lw).await;
    assert_eq!(anomalies(&text, "invalid"), 1, "t = 0: {text}");
    assert_eq!(anomalies(&text, "too_far_ahead"), 1, "{text}");
    // The bogus jump did not drag the series into the future: the next
    // ordinary point was accepted, not taken as out of order.
    assert_eq!(anomalies(&text, "out_of_order"), 0, "{text}");
    still_serving(&lw, &mut downstream).await;
    lw.stop().await;
    downstream.stop().await;
}

/// One point stamped far in the future must not move event time so far that
/// every other series looks idle and is evicted (`series.max_forward_jump`).
#[test]
fn a_far_future_first_point_does_not_evict_every_other_series() {
    let engine = Engine::new(EngineConfig::default(), Arc::new(Telemetry::new()));
    let t = now_ns();
    let year = 365 * 24 * 3600 * SEC;
    let far = Bytes::from(
        request(
            resource("bogus", "clock"),
            vec![gauge_metric(
                "process.memory.usage",
                "By",
                vec![number_point(t + 100 * year, 1e8, vec![])],
            )],
        )
        .encode_to_vec(),
    );
    let normal = memory_points(vec![number_point(t, 1e8, vec![])]);
    engine.ingest_metrics(far).expect("far");
    engine.ingest_metrics(normal.clone()).expect("normal");
    assert_eq!(engine.series_count(), 2);
    let evicted = engine.evict_idle().series;
    assert_eq!(
        (evicted, engine.series_count()),
        (0, 2),
        "one far-future point moved event time to {} ({} years ahead) and evicted the other series",
        engine.watermark_ns(),
        engine.watermark_ns().saturating_sub(t) / year
    );
}

#[tokio::test]
async fn out_of_order_and_duplicate_points_are_counted_and_forwarded() {
    let mut downstream = Downstream::start().await;
    let lw = start(test_config(Some(downstream.endpoint()))).await;
    let t = now_ns();
    let first = memory_points(vec![
        number_point(t + 10 * SEC, 1e8, vec![]),
        number_point(t + 10 * SEC, 1e8, vec![]),
        number_point(t + 5 * SEC, 1e8, vec![]),
    ]);
    let second = memory_points(vec![
        number_point(t + 3 * SEC, 1e8, vec![]),
        number_point(t + 10 * SEC, 1e8, vec![]),
        number_point(t + 11 * SEC, 1e8, vec![]),
    ]);
    for body in [&first, &second] {
        grpc(&lw, paths::METRICS, body.clone())
            .await
            .expect("accepted");
        assert_eq!(downstream.next_on(paths::METRICS).await.body, *body);
    }
    let text = metrics_text(&lw).await;
    assert_eq!(anomalies(&text, "duplicate"), 2, "{text}");
    assert_eq!(anomalies(&text, "out_of_order"), 2, "{text}");
    still_serving(&lw, &mut downstream).await;
    lw.stop().await;
    downstream.stop().await;
}

// ----------------------------------------------------------- empty requests

#[tokio::test]
async fn empty_requests_and_empty_lists_are_accepted_and_forwarded() {
    let mut downstream = Downstream::start().await;
    let lw = start(test_config(Some(downstream.endpoint()))).await;
    for path in [paths::METRICS, paths::TRACES, paths::LOGS] {
        let reply = grpc(&lw, path, Bytes::new())
            .await
            .unwrap_or_else(|e| panic!("empty {path}: {e:?}"));
        assert!(reply.is_empty(), "no partial_success for an empty request");
        assert_eq!(downstream.next_on(path).await.body, Bytes::new());
    }
    for (path, grpc_path) in [
        ("/v1/metrics", paths::METRICS),
        ("/v1/traces", paths::TRACES),
        ("/v1/logs", paths::LOGS),
    ] {
        let (status, _) = post(&lw, path, "application/x-protobuf", Vec::new()).await;
        assert_eq!(status, 200, "empty protobuf {path}");
        assert_eq!(downstream.next_on(grpc_path).await.body, Bytes::new());
        let (status, body) = post(&lw, path, "application/json", b"{}".to_vec()).await;
        assert_eq!(
            status,
            200,
            "{{}} on {path}: {}",
            String::from_utf8_lossy(&body)
        );
        assert_eq!(downstream.next_on(grpc_path).await.body, Bytes::new());
    }
    // Empty resource, scope and metric lists, a metric without data and a
    // gauge without points.
    let empties = ExportMetricsServiceRequest {
        resource_metrics: vec![
            ResourceMetrics::default(),
            ResourceMetrics {
                resource: Some(resource("empty", "x")),
                scope_metrics: vec![
                    ScopeMetrics::default(),
                    ScopeMetrics {
                        metrics: vec![
                            Metric {
                                name: "process.memory.usage".into(),
                                ..Default::default()
                            },
                            gauge_metric("process.memory.usage", "By", vec![]),
                        ],
                        ..Default::default()
                    },
                ],
                ..Default::default()
            },
        ],
    };
    let body = Bytes::from(empties.encode_to_vec());
    grpc(&lw, paths::METRICS, body.clone())
        .await
        .expect("empty lists");
    assert_eq!(downstream.next_on(paths::METRICS).await.body, body);
    let empty_traces = Bytes::from(
        ExportTraceServiceRequest {
            resource_spans: vec![Default::default()],
        }
        .encode_to_vec(),
    );
    grpc(&lw, paths::TRACES, empty_traces.clone())
        .await
        .expect("empty resource_spans");
    assert_eq!(downstream.next_on(paths::TRACES).await.body, empty_traces);
    let empty_logs = Bytes::from(
        ExportLogsServiceRequest {
            resource_logs: vec![Default::default()],
        }
        .encode_to_vec(),
    );
    grpc(&lw, paths::LOGS, empty_logs.clone())
        .await
        .expect("empty resource_logs");
    assert_eq!(downstream.next_on(paths::LOGS).await.body, empty_logs);

    let text = metrics_text(&lw).await;
    assert_eq!(
        sample(
            &text,
            "leakwatch_receiver_items_total{signal=\"metrics\",protocol=\"grpc\"}"
        ),
        0
    );
    assert_eq!(
        sample(
            &text,
            "leakwatch_receiver_requests_total{signal=\"metrics\",protocol=\"grpc\"}"
        ),
        2
    );
    assert_eq!(sample(&text, "leakwatch_series"), 0, "{text}");
    still_serving(&lw, &mut downstream).await;
    lw.stop().await;
    downstream.stop().await;
}

// ----------------------------------------------------------- deep nesting

const DEPTH: usize = 10_000;

/// A metrics request whose resource and data point both carry an attribute
/// nested `DEPTH` levels deep.
fn deep_metrics_request() -> Bytes {
    let deep = raw_attribute("deep", &deep_any_value(DEPTH));
    let plain = request(
        resource("deep", "pod-1"),
        vec![gauge_metric(
            "process.memory.usage",
            "By",
            vec![number_point(now_ns(), 1e8, vec![])],
        )],
    );
    let rm = &plain.resource_metrics[0];
    let resource = [
        rm.resource.as_ref().expect("resource").encode_to_vec(),
        field(1, &deep),
    ]
    .concat();
    // Append the deep attribute to the point too (NumberDataPoint.attributes = 7).
    let mut scope = rm.scope_metrics[0].clone();
    let point_attr = field(7, &deep);
    let metric = scope.metrics.remove(0);
    let leakwatch::otlp::proto::otlp::metrics::v1::metric::Data::Gauge(g) =
        metric.data.as_ref().expect("data")
    else {
        panic!("gauge")
    };
    let point = [g.data_points[0].encode_to_vec(), point_attr].concat();
    let gauge = field(1, &point);
    let metric_bytes = [
        field(1, metric.name.as_bytes()),
        field(3, metric.unit.as_bytes()),
        field(5, &gauge),
    ]
    .concat();
    let scope_bytes = [scope.encode_to_vec(), field(2, &metric_bytes)].concat();
    let rm_bytes = [field(1, &resource), field(2, &scope_bytes)].concat();
    Bytes::from(field(1, &rm_bytes))
}

#[tokio::test]
async fn ten_thousand_levels_of_nested_anyvalue_do_not_overflow_the_stack() {
    let mut downstream = Downstream::start().await;
    let lw = start(test_config(Some(downstream.endpoint()))).await;

    // Metrics over gRPC and HTTP protobuf: the lean decode keeps attributes
    // as raw bytes (no recursion); the full decode of a new resource's
    // attributes stops at prost's recursion limit and skips that attribute.
    let metrics = deep_metrics_request();
    assert!(metrics.len() > 50_000, "{} bytes", metrics.len());
    grpc(&lw, paths::METRICS, metrics.clone())
        .await
        .expect("deep metrics over gRPC");
    assert_eq!(downstream.next_on(paths::METRICS).await.body, metrics);
    let (status, body) = post(
        &lw,
        "/v1/metrics",
        "application/x-protobuf",
        metrics.to_vec(),
    )
    .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(downstream.next_on(paths::METRICS).await.body, metrics);
    // The resource is still tracked (the undecodable attribute skipped).
    let (_, _, resources) =
        http_request("GET", &lw.admin_url("/api/v1/resources"), &[], vec![]).await;
    assert!(
        String::from_utf8_lossy(&resources).contains("\"deep\""),
        "{}",
        String::from_utf8_lossy(&resources)
    );

    // Traces and logs: a span attribute and a log body nested as deep.
    let span = [
        field(1, &[1; 16]),
        field(2, &[2; 8]),
        field(5, b"deep-span"),
        field(9, &raw_attribute("deep", &deep_any_value(DEPTH))),
    ]
    .concat();
    let traces = Bytes::from(field(1, &field(2, &field(2, &span))));
    grpc(&lw, paths::TRACES, traces.clone())
        .await
        .expect("deep span over gRPC");
    assert_eq!(downstream.next_on(paths::TRACES).await.body, traces);
    let log = field(5, &deep_any_value(DEPTH)); // LogRecord.body
    let logs = Bytes::from(field(1, &field(2, &field(2, &log))));
    let (status, _) = post(&lw, "/v1/logs", "application/x-protobuf", logs.to_vec()).await;
    assert_eq!(status, 200);
    assert_eq!(downstream.next_on(paths::LOGS).await.body, logs);

    // OTLP/JSON: serde_json's recursion limit refuses it with 400.
    let json = format!(
        "{{\"resourceLogs\":[{{\"scopeLogs\":[{{\"logRecords\":[{{\"body\":{}\"stringValue\":\"x\"{}}}]}}]}}]}}",
        "{\"kvlistValue\":{\"values\":[{\"key\":\"k\",\"value\":".repeat(DEPTH),
        "}]}}".repeat(DEPTH)
    );
    let (status, body) = post(&lw, "/v1/logs", "application/json", json.into_bytes()).await;
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
    assert!(
        String::from_utf8_lossy(&body).contains("recursion limit"),
        "{}",
        String::from_utf8_lossy(&body)
    );
    let text = metrics_text(&lw).await;
    assert_eq!(refused(&text, "logs", "malformed"), 1, "{text}");
    still_serving(&lw, &mut downstream).await;
    lw.stop().await;
    downstream.stop().await;
}

/// At the series limit the accepted points are re-encoded (full OTLP decode)
/// to forward exactly what was accepted; prost's recursion limit fails that
/// decode. Whatever the answer, it must be consistent: a partial success, or
/// a refusal that is counted like every other refusal.
#[tokio::test]
async fn deep_nesting_at_the_series_limit_gets_a_consistent_answer() {
    let mut downstream = Downstream::start().await;
    let mut config = test_config(Some(downstream.endpoint()));
    config.series.max_series = 0;
    let lw = start(config).await;
    let reply = grpc(&lw, paths::METRICS, deep_metrics_request()).await;
    let text = metrics_text(&lw).await;
    match reply {
        Ok(reply) => {
            let partial = ExportMetricsServiceResponse::decode(reply)
                .expect("response")
                .partial_success
                .expect("the point of a new series beyond the limit is refused");
            assert_eq!(partial.rejected_data_points, 1);
        }
        Err(status) => {
            assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
            assert!(
                status.message().len() < 4096,
                "a {}-byte error message",
                status.message().len()
            );
            assert_eq!(
                refused(&text, "metrics", "malformed"),
                1,
                "refused as malformed but not counted: {text}"
            );
        }
    }
    still_serving(&lw, &mut downstream).await;
    lw.stop().await;
    downstream.stop().await;
}

/// OTLP/JSON follows the proto3 JSON mapping: a double may be a number or
/// the strings "NaN", "Infinity", "-Infinity" (or a numeric string), and a
/// malformed field is a malformed request (400). Neither may turn into a
/// point silently forwarded without its value, or a metric without its data.
#[tokio::test]
async fn otlp_json_is_converted_faithfully_or_refused() {
    let mut downstream = Downstream::start().await;
    let lw = start(test_config(Some(downstream.endpoint()))).await;
    let t = now_ns();
    let json = |points: &str| {
        format!(
            r#"{{"resourceMetrics":[{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"json"}}}}]}},"scopeMetrics":[{{"metrics":[{{"name":"process.memory.usage","unit":"By","gauge":{{"dataPoints":[{points}]}}}}]}}]}}]}}"#
        )
        .into_bytes()
    };
    let good = json(&format!(
        r#"{{"asDouble":"NaN","timeUnixNano":"{t}"}},{{"asDouble":"Infinity","timeUnixNano":"{}"}},{{"asDouble":"1.5e8","timeUnixNano":"{}"}}"#,
        t + SEC,
        t + 2 * SEC
    ));
    let (status, body) = post(&lw, "/v1/metrics", "application/json", good).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let forwarded =
        ExportMetricsServiceRequest::decode(downstream.next_on(paths::METRICS).await.body)
            .expect("forwarded protobuf");
    let Some(leakwatch::otlp::proto::otlp::metrics::v1::metric::Data::Gauge(g)) =
        &forwarded.resource_metrics[0].scope_metrics[0].metrics[0].data
    else {
        panic!("the gauge was dropped: {forwarded:?}")
    };
    let values: Vec<String> = g
        .data_points
        .iter()
        .map(|p| format!("{:?}", p.value))
        .collect();
    assert_eq!(
        values,
        [
            "Some(AsDouble(NaN))",
            "Some(AsDouble(inf))",
            "Some(AsDouble(150000000.0))"
        ],
        "values lost between OTLP/JSON and the forwarded protobuf"
    );

    for bad in [
        r#"{"asDouble":1.5,"timeUnixNano":"not a number"}"#,
        r#"{"asDouble":1.5,"timeUnixNano":"1","attributes":[{"key":"k","value":{"intValue":"x"}}]}"#,
        r#"{"asDouble":"twelve","timeUnixNano":"1"}"#,
        // A type error anywhere inside a data point must not drop the
        // metric's data (serde's flattened oneofs turn errors into None).
        r#"{"asDouble":1.5,"timeUnixNano":"1","exemplars":[0]}"#,
        r#"{"asDouble":1.5,"timeUnixNano":"1","flags":"x"}"#,
        r#"{"asDouble":1.5,"timeUnixNano":"1","attributes":[{"key":"k","value":{"boolValue":"yes"}}]}"#,
        r#"{"asDouble":true,"timeUnixNano":"1"}"#,
    ] {
        let (status, body) = post(&lw, "/v1/metrics", "application/json", json(bad)).await;
        assert_eq!(
            status,
            400,
            "{bad} was accepted: {}",
            String::from_utf8_lossy(&body)
        );
    }
    still_serving(&lw, &mut downstream).await;
    lw.stop().await;
    downstream.stop().await;
}

// --------------------------------------------------------- compression bombs

#[tokio::test]
async fn gzip_and_zstd_bombs_are_refused_without_inflating_them() {
    let mut downstream = Downstream::start().await;
    let mut config = test_config(Some(downstream.endpoint()));
    config.receivers.max_decompressed_bytes = 1 << 20;
    config.receivers.grpc.max_message_bytes = 1 << 20;
    let lw = start(config).await;
    // 16 MiB of zeros: ~16 KiB gzipped, well under 1 KiB as zstd; 16× the limit.
    let zeros = vec![0u8; 16 << 20];
    let gz = gzip(&zeros);
    let zs = zstd::encode_all(&zeros[..], 3).expect("zstd");
    drop(zeros);
    assert!(
        gz.len() < 64 << 10 && zs.len() < 16 << 10,
        "{} {}",
        gz.len(),
        zs.len()
    );
    for (encoding, body) in [("gzip", &gz), ("zstd", &zs)] {
        let (status, _, reply) = http_request(
            "POST",
            &lw.http_url("/v1/metrics"),
            &[
                ("content-type", "application/x-protobuf"),
                ("content-encoding", encoding),
            ],
            body.clone(),
        )
        .await;
        assert_eq!(status, 413, "{encoding} bomb");
        let rpc = leakwatch::receiver::http::RpcStatus::decode(reply).expect("status body");
        assert_eq!(rpc.code, 8, "{}", rpc.message);
    }
    // Corrupt and unknown encodings.
    let (status, _, _) = http_request(
        "POST",
        &lw.http_url("/v1/metrics"),
        &[
            ("content-type", "application/x-protobuf"),
            ("content-encoding", "gzip"),
        ],
        b"\x1f\x8b\x08\x00garbage".to_vec(),
    )
    .await;
    assert_eq!(status, 400);
    let (status, _, _) = http_request(
        "POST",
        &lw.http_url("/v1/metrics"),
        &[
            ("content-type", "application/x-protobuf"),
            ("content-encoding", "br"),
        ],
        b"x".to_vec(),
    )
    .await;
    assert_eq!(status, 415);

    // gRPC: a zstd-compressed message that inflates past max_message_bytes.
    let mut big = ExportLogsServiceRequest::default();
    big.resource_logs.push(Default::default());
    let mut body = big.encode_to_vec();
    body.extend(field(99, &vec![0u8; 8 << 20]));
    let err = grpc_raw(
        &lw.grpc_endpoint(),
        paths::LOGS,
        Bytes::from(body),
        Some(CompressionEncoding::Zstd),
        None,
    )
    .await
    .expect_err("zstd bomb over gRPC");
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");

    let text = metrics_text(&lw).await;
    assert_eq!(refused(&text, "metrics", "too_large"), 2, "{text}");
    assert_eq!(refused(&text, "logs", "too_large"), 1, "{text}");
    assert_eq!(refused(&text, "metrics", "malformed"), 1, "{text}");
    assert_eq!(
        refused(&text, "metrics", "unsupported_media_type"),
        1,
        "{text}"
    );
    still_serving(&lw, &mut downstream).await;
    lw.stop().await;
    downstream.stop().await;
}

// ------------------------------------------------------ invalid UTF-8, garbage

/// A metrics request whose metric name has an invalid UTF-8 byte.
fn invalid_utf8_name() -> Bytes {
    let mut body = memory_points(vec![number_point(now_ns(), 1e8, vec![])]).to_vec();
    let at = body
        .windows(20)
        .position(|w| w == b"process.memory.usage")
        .expect("name")
        + 7;
    body[at] = 0xff;
    Bytes::from(body)
}

#[tokio::test]
async fn invalid_utf8_metric_names_are_refused_and_not_forwarded() {
    let mut downstream = Downstream::start().await;
    let lw = start(test_config(Some(downstream.endpoint()))).await;
    let bad = invalid_utf8_name();
    let err = grpc(&lw, paths::METRICS, bad.clone())
        .await
        .expect_err("invalid UTF-8 name");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("UTF-8"), "{}", err.message());
    let (status, body) = post(&lw, "/v1/metrics", "application/x-protobuf", bad.to_vec()).await;
    assert_eq!(status, 400);
    let rpc = leakwatch::receiver::http::RpcStatus::decode(body).expect("status body");
    assert!(rpc.message.contains("UTF-8"), "{}", rpc.message);
    let text = metrics_text(&lw).await;
    assert_eq!(refused(&text, "metrics", "malformed"), 2, "{text}");
    assert_eq!(
        sample(&text, "leakwatch_series"),
        0,
        "no state from a refused request"
    );
    // Nothing of it was forwarded: the next thing downstream is the good request.
    still_serving(&lw, &mut downstream).await;
    assert!(downstream.rx.try_recv().is_err());

    // Invalid UTF-8 elsewhere (an attribute value) is not leakwatch's to
    // judge: accepted and forwarded unchanged.
    let mut odd =
        memory_points(vec![number_point(now_ns(), 1e8, vec![kv("pool", "QQQQ")])]).to_vec();
    let at = odd.windows(4).position(|w| w == b"QQQQ").expect("marker");
    odd[at] = 0xc3; // a lone UTF-8 lead byte
    let odd = Bytes::from(odd);
    grpc(&lw, paths::METRICS, odd.clone())
        .await
        .expect("odd attribute");
    assert_eq!(downstream.next_on(paths::METRICS).await.body, odd);
    lw.stop().await;
    downstream.stop().await;
}

#[tokio::test]
async fn garbage_bytes_are_refused_and_the_server_keeps_serving() {
    let mut downstream = Downstream::start().await;
    let lw = start(test_config(Some(downstream.endpoint()))).await;
    let garbage: Vec<Bytes> = vec![
        Bytes::from_static(&[0xff; 64]),
        Bytes::from_static(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
        Bytes::from_static(&[0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f]), // length past the end
        Bytes::from_static(&[0x08]),                               // truncated varint field
    ];
    for path in [paths::METRICS, paths::TRACES, paths::LOGS] {
        for g in &garbage {
            let err = grpc(&lw, path, g.clone())
                .await
                .expect_err("garbage refused");
            assert_eq!(err.code(), Code::InvalidArgument, "{path} {g:?}: {err:?}");
        }
    }
    for path in ["/v1/metrics", "/v1/traces", "/v1/logs"] {
        let (status, _) = post(&lw, path, "application/x-protobuf", garbage[0].to_vec()).await;
        assert_eq!(status, 400, "{path} protobuf garbage");
        let (status, _) = post(&lw, path, "application/json", b"\xff\xfe{not json".to_vec()).await;
        assert_eq!(status, 400, "{path} JSON garbage");
        let (status, _) = post(
            &lw,
            path,
            "application/json",
            br#"{"resourceMetrics":5,"resourceSpans":5,"resourceLogs":5}"#.to_vec(),
        )
        .await;
        assert_eq!(status, 400, "{path} JSON of the wrong shape");
    }
    // Raw garbage on the sockets: not HTTP/2 on the gRPC port, not HTTP on
    // the HTTP port. Each connection is closed; the listeners live on.
    for addr in [lw.addrs.grpc, lw.addrs.http].into_iter().flatten() {
        let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let junk: Vec<u8> = (0..16 * 1024u32).map(|i| (i * 7919 % 251) as u8).collect();
        let _ = s.write_all(&junk).await;
        let mut sink = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut sink)).await;
        assert!(read.is_ok(), "{addr}: connection not closed within 10 s");
    }
    let text = metrics_text(&lw).await;
    for signal in ["metrics", "traces", "logs"] {
        assert_eq!(
            refused(&text, signal, "malformed"),
            4 + 3,
            "{signal}: {text}"
        );
    }
    still_serving(&lw, &mut downstream).await;
    assert!(
        downstream.rx.try_recv().is_err(),
        "nothing refused was forwarded"
    );
    lw.stop().await;
    downstream.stop().await;
}
