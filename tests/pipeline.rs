//! In-process integration tests of the whole pipeline: receive (gRPC and
//! HTTP) → track → forward, against a fake downstream collector.

mod common;

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

#[tokio::test]
async fn grpc_forwards_every_point_kind_byte_for_byte() {
    let mut downstream = Downstream::start().await;
    let lw = start(test_config(Some(downstream.endpoint()))).await;
    let body = with_unknown_field(every_point_kind(now_ns()).encode_to_vec());
    let reply = grpc_raw(
        &lw.grpc_endpoint(),
        paths::METRICS,
        body.clone(),
        None,
        None,
    )
    .await
    .expect("export ok");
    let reply = ExportMetricsServiceResponse::decode(reply).expect("response");
    assert_eq!(
        reply.partial_success, None,
        "full success leaves partial_success unset"
    );
    let got = downstream.next_on(paths::METRICS).await;
    assert_eq!(got.body, body, "forwarded bytes differ from received bytes");
    let (_, _, metrics) = http_request("GET", &lw.admin_url("/metrics"), &[], vec![]).await;
    let text = String::from_utf8_lossy(&metrics);
    assert!(
        text.contains("leakwatch_receiver_items_total{signal=\"metrics\",protocol=\"grpc\"} 9\n"),
        "{text}"
    );
    assert!(
        text.contains("leakwatch_points_anomalies_total{kind=\"non_finite\"} 1\n"),
        "{text}"
    );
    lw.stop().await;
    downstream.stop().await;
}

#[tokio::test]
async fn grpc_passes_traces_and_logs_through_unchanged() {
    let mut downstream = Downstream::start().await;
    let lw = start(test_config(Some(downstream.endpoint()))).await;
    let t = with_unknown_field(spans(3).encode_to_vec());
    let l = with_unknown_field(logs(2).encode_to_vec());
    grpc_raw(&lw.grpc_endpoint(), paths::TRACES, t.clone(), None, None)
        .await
        .expect("traces ok");
    assert_eq!(downstream.next_on(paths::TRACES).await.body, t);
    let reply = grpc_raw(&lw.grpc_endpoint(), paths::LOGS, l.clone(), None, None)
        .await
        .expect("logs ok");
    assert_eq!(
        ExportLogsServiceResponse::decode(reply)
            .expect("response")
            .partial_success,
        None
    );
    assert_eq!(downstream.next_on(paths::LOGS).await.body, l);
    lw.stop().await;
    downstream.stop().await;
}

#[tokio::test]
async fn grpc_accepts_gzip_and_zstd() {
    let mut downstream = Downstream::start().await;
    let lw = start(test_config(Some(downstream.endpoint()))).await;
    for c in [CompressionEncoding::Gzip, CompressionEncoding::Zstd] {
        let body = Bytes::from(every_point_kind(now_ns()).encode_to_vec());
        grpc_raw(
            &lw.grpc_endpoint(),
            paths::METRICS,
            body.clone(),
            Some(c),
            None,
        )
        .await
        .expect("compressed export ok");
        assert_eq!(downstream.next_on(paths::METRICS).await.body, body, "{c:?}");
    }
    lw.stop().await;
    downstream.stop().await;
}

#[tokio::test]
async fn grpc_malformed_is_invalid_argument() {
    let lw = start(test_config(None)).await;
    let err = grpc_raw(
        &lw.grpc_endpoint(),
        paths::METRICS,
        Bytes::from_static(&[0x0a, 0xff, 0xff]),
        None,
        None,
    )
    .await
    .expect_err("malformed");
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(
        err.message()
            .contains("invalid ExportMetricsServiceRequest"),
        "{}",
        err.message()
    );
    lw.stop().await;
}

#[tokio::test]
async fn grpc_oversize_is_resource_exhausted() {
    let mut config = test_config(None);
    config.receivers.grpc.max_message_bytes = 1024;
    let lw = start(config).await;
    let big = Bytes::from(logs(200).encode_to_vec());
    assert!(big.len() > 1024);
    let err = grpc_raw(&lw.grpc_endpoint(), paths::LOGS, big, None, None)
        .await
        .expect_err("too large");
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    lw.stop().await;
}

#[tokio::test]
async fn grpc_compression_bomb_is_resource_exhausted() {
    let mut config = test_config(None);
    config.receivers.grpc.max_message_bytes = 64 * 1024;
    let lw = start(config).await;
    // 1 MiB of zeros in one log body: compresses to ~1 KiB, inflates past the limit.
    let mut req = logs(1);
    req.resource_logs[0].scope_logs[0].log_records[0].body =
        Some(leakwatch::otlp::proto::otlp::common::v1::AnyValue {
            value: Some(
                leakwatch::otlp::proto::otlp::common::v1::any_value::Value::StringValue(
                    "0".repeat(1 << 20),
                ),
            ),
        });
    let err = grpc_raw(
        &lw.grpc_endpoint(),
        paths::LOGS,
        Bytes::from(req.encode_to_vec()),
        Some(CompressionEncoding::Gzip),
        None,
    )
    .await
    .expect_err("bomb");
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    lw.stop().await;
}

#[tokio::test]
async fn http_protobuf_and_json_are_forwarded_as_protobuf() {
    let mut downstream = Downstream::start().await;
    let lw = start(test_config(Some(downstream.endpoint()))).await;
    let req = every_point_kind(now_ns());
    let pb = req.encode_to_vec();
    let (status, headers, body) = http_request(
        "POST",
        &lw.http_url("/v1/metrics"),
        &[("content-type", "application/x-protobuf")],
        pb.clone(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "application/x-protobuf");
    assert_eq!(
        ExportMetricsServiceResponse::decode(body)
            .expect("pb response")
            .partial_success,
        None
    );
    assert_eq!(
        downstream.next_on(paths::METRICS).await.body,
        Bytes::from(pb),
        "protobuf forwarded unchanged"
    );

    // OTLP/JSON: hex ids, int64 as strings, charset parameter.
    let json = r#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"checkout"}}]},
      "scopeSpans":[{"scope":{"name":"t"},"spans":[{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174",
      "name":"GET /","kind":2,"startTimeUnixNano":"1544712660000000000","endTimeUnixNano":"1544712661000000000",
      "attributes":[{"key":"http.status_code","value":{"intValue":"200"}}]}]}]}]}"#;
    let (status, headers, body) = http_request(
        "POST",
        &lw.http_url("/v1/traces"),
        &[("content-type", "application/json; charset=utf-8")],
        json.as_bytes().to_vec(),
    )
    .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(headers["content-type"], "application/json");
    let forwarded = ExportTraceServiceRequest::decode(downstream.next_on(paths::TRACES).await.body)
        .expect("protobuf downstream");
    let span = &forwarded.resource_spans[0].scope_spans[0].spans[0];
    assert_eq!(hex(&span.trace_id), "5b8efff798038103d269b633813fc60c");
    assert_eq!(hex(&span.span_id), "eee19b7ec3c1b174");
    assert_eq!(span.start_time_unix_nano, 1_544_712_660_000_000_000);
    lw.stop().await;
    downstream.stop().await;
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[tokio::test]
async fn http_gzip_and_zstd_bodies() {
    use std::io::Write;
    let mut downstream = Downstream::start().await;
    let lw = start(test_config(Some(downstream.endpoint()))).await;
    let pb = logs(3).encode_to_vec();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&pb).expect("gzip");
    let gz = gz.finish().expect("gzip");
    let zs = zstd::encode_all(&pb[..], 3).expect("zstd");
    for (enc, body) in [("gzip", gz), ("zstd", zs)] {
        let (status, _, _) = http_request(
            "POST",
            &lw.http_url("/v1/logs"),
            &[
                ("content-type", "application/x-protobuf"),
                ("content-encoding", enc),
            ],
            body,
        )
        .await;
        assert_eq!(status, 200, "{enc}");
        assert_eq!(
            downstream.next_on(paths::LOGS).await.body,
            Bytes::from(pb.clone()),
            "{enc}"
        );
    }
    lw.stop().await;
    downstream.stop().await;
}

#[tokio::test]
async fn http_errors_have_the_right_status_and_a_status_body() {
    let mut config = test_config(None);
    config.receivers.http.max_body_bytes = 2048;
    let lw = start(config).await;
    let url = lw.http_url("/v1/metrics");
    // Malformed protobuf → 400 with a google.rpc.Status saying what is wrong.
    let (status, _, body) = http_request(
        "POST",
        &url,
        &[("content-type", "application/x-protobuf")],
        vec![0x0a, 0xff],
    )
    .await;
    assert_eq!(status, 400);
    let rpc = leakwatch::receiver::http::RpcStatus::decode(body).expect("status body");
    assert_eq!(rpc.code, 3);
    assert!(
        rpc.message.contains("invalid ExportMetricsServiceRequest"),
        "{}",
        rpc.message
    );
    // Malformed JSON → 400, JSON body.
    let (status, headers, body) = http_request(
        "POST",
        &url,
        &[("content-type", "application/json")],
        b"{\"resourceMetrics\": 5}".to_vec(),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(headers["content-type"], "application/json");
    assert!(String::from_utf8_lossy(&body).contains("invalid OTLP/JSON"));
    // Too large → 413.
    let (status, _, _) = http_request(
        "POST",
        &url,
        &[("content-type", "application/x-protobuf")],
        vec![0; 4096],
    )
    .await;
    assert_eq!(status, 413);
    // Unknown content type → 415.
    let (status, _, _) = http_request(
        "POST",
        &url,
        &[("content-type", "text/plain")],
        b"hi".to_vec(),
    )
    .await;
    assert_eq!(status, 415);
    lw.stop().await;
}

#[tokio::test]
async fn queue_full_gives_retryable_statuses_and_nothing_accepted_is_lost() {
    // A downstream that is down: exports retry and hold their queue slot.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let mut config = test_config(Some(format!("http://{addr}")));
    config.downstream.queue.max_requests = 2;
    config.downstream.retry.max_elapsed_time = Duration::from_secs(120);
    let lw = start(config).await;
    let body = Bytes::from(logs(1).encode_to_vec());
    for _ in 0..2 {
        grpc_raw(&lw.grpc_endpoint(), paths::LOGS, body.clone(), None, None)
            .await
            .expect("room for two");
    }
    let err = grpc_raw(&lw.grpc_endpoint(), paths::LOGS, body.clone(), None, None)
        .await
        .expect_err("queue full");
    assert_eq!(err.code(), Code::Unavailable);
    let retry = err.get_details_retry_info().expect("RetryInfo present");
    assert!(retry.retry_delay.is_some());
    let (status, headers, _) = http_request(
        "POST",
        &lw.http_url("/v1/logs"),
        &[("content-type", "application/x-protobuf")],
        body.to_vec(),
    )
    .await;
    assert_eq!(status, 503);
    assert!(headers.contains_key("retry-after"));

    // The downstream comes up: the two accepted requests arrive.
    let mut downstream =
        Downstream::start_on(tokio::net::TcpListener::bind(addr).await.expect("rebind")).await;
    assert_eq!(
        downstream.bytes_on(paths::LOGS, 2 * body.len()).await,
        body.repeat(2)
    );
    let report = lw.stop().await;
    assert_eq!(report.dropped_requests, 0);
    downstream.stop().await;
}

#[tokio::test]
async fn shutdown_drains_the_queue() {
    let mut downstream = Downstream::start().await;
    *downstream.behaviour.lock().await = Behaviour::Fail(Code::Unavailable);
    let lw = start(test_config(Some(downstream.endpoint()))).await;
    let body = Bytes::from(spans(2).encode_to_vec());
    for _ in 0..5 {
        grpc_raw(&lw.grpc_endpoint(), paths::TRACES, body.clone(), None, None)
            .await
            .expect("accepted");
    }
    let behaviour = downstream.behaviour.clone();
    let stopping = tokio::spawn(lw.stop());
    tokio::time::sleep(Duration::from_millis(300)).await;
    *behaviour.lock().await = Behaviour::Accept;
    let report = stopping.await.expect("join");
    assert_eq!(report.dropped_requests, 0);
    assert_eq!(
        downstream.bytes_on(paths::TRACES, 5 * body.len()).await,
        body.repeat(5)
    );
    downstream.stop().await;
}

#[tokio::test]
async fn permanent_downstream_errors_are_not_retried() {
    let mut downstream = Downstream::start().await;
    *downstream.behaviour.lock().await = Behaviour::Fail(Code::InvalidArgument);
    let lw = start(test_config(Some(downstream.endpoint()))).await;
    grpc_raw(
        &lw.grpc_endpoint(),
        paths::LOGS,
        Bytes::from(logs(1).encode_to_vec()),
        None,
        None,
    )
    .await
    .expect("accepted");
    // Poll the self-metrics until the failure is counted.
    let mut text = String::new();
    for _ in 0..100 {
        let (_, _, m) = http_request("GET", &lw.admin_url("/metrics"), &[], vec![]).await;
        text = String::from_utf8_lossy(&m).into_owned();
        if text.contains(
            "leakwatch_exporter_requests_total{signal=\"logs\",outcome=\"failed_permanent\"} 1",
        ) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        text.contains(
            "leakwatch_exporter_requests_total{signal=\"logs\",outcome=\"failed_permanent\"} 1"
        ),
        "{text}"
    );
    assert!(
        text.contains("leakwatch_exporter_requests_total{signal=\"logs\",outcome=\"retried\"} 0"),
        "{text}"
    );
    assert!(
        downstream.rx.try_recv().is_err(),
        "a failed request is not delivered"
    );
    lw.stop().await;
    downstream.stop().await;
}

#[tokio::test]
async fn series_limit_refuses_new_series_with_partial_success() {
    let mut downstream = Downstream::start().await;
    let mut config = test_config(Some(downstream.endpoint()));
    config.series.max_series = 2;
    let lw = start(config).await;
    let t = now_ns();
    let pts = |names: &[&str]| {
        names
            .iter()
            .map(|n| number_point(t, 1e8, vec![kv("pool", n)]))
            .collect::<Vec<_>>()
    };
    // process.memory.usage is in the catalog: each attribute set is a series.
    let first = request(
        resource("svc", "a"),
        vec![gauge_metric("process.memory.usage", "By", pts(&["a", "b"]))],
    );
    let reply = grpc_raw(
        &lw.grpc_endpoint(),
        paths::METRICS,
        Bytes::from(first.encode_to_vec()),
        None,
        None,
    )
    .await
    .expect("ok");
    assert_eq!(
        ExportMetricsServiceResponse::decode(reply)
            .expect("resp")
            .partial_success,
        None
    );
    downstream.next_on(paths::METRICS).await;
    // Two known series and one new one (plus an untracked metric): one point refused.
    let mut second = request(
        resource("svc", "a"),
        vec![gauge_metric(
            "process.memory.usage",
            "By",
            pts(&["a", "c", "b"]),
        )],
    );
    second.resource_metrics[0].scope_metrics[0]
        .metrics
        .push(gauge_metric(
            "unrelated.metric",
            "",
            vec![number_point(t, 1.0, vec![])],
        ));
    let reply = grpc_raw(
        &lw.grpc_endpoint(),
        paths::METRICS,
        Bytes::from(second.encode_to_vec()),
        None,
        None,
    )
    .await
    .expect("ok");
    let partial = ExportMetricsServiceResponse::decode(reply)
        .expect("resp")
        .partial_success
        .expect("partial success set");
    assert_eq!(partial.rejected_data_points, 1);
    assert!(
        partial.error_message.contains("max_series"),
        "{}",
        partial.error_message
    );
    // What is forwarded is what was accepted: series "c" is not in it.
    let forwarded =
        ExportMetricsServiceRequest::decode(downstream.next_on(paths::METRICS).await.body)
            .expect("decode");
    let metrics = &forwarded.resource_metrics[0].scope_metrics[0].metrics;
    assert_eq!(metrics.len(), 2);
    let Some(leakwatch::otlp::proto::otlp::metrics::v1::metric::Data::Gauge(g)) = &metrics[0].data
    else {
        panic!("gauge")
    };
    let pools: Vec<_> = g
        .data_points
        .iter()
        .map(|p| format!("{:?}", p.attributes[0].value))
        .collect();
    assert_eq!(pools.len(), 2);
    assert!(pools.iter().all(|p| !p.contains("\"c\"")), "{pools:?}");
    lw.stop().await;
    downstream.stop().await;
}

#[tokio::test]
async fn bearer_token_is_required_when_configured() {
    let mut config = test_config(None);
    config.receivers.auth = Some(leakwatch::config::AuthConfig {
        bearer_token: Some("s3cret".into()),
        bearer_token_file: None,
    });
    let lw = start(config).await;
    let body = Bytes::from(logs(1).encode_to_vec());
    let err = grpc_raw(&lw.grpc_endpoint(), paths::LOGS, body.clone(), None, None)
        .await
        .expect_err("no token");
    assert_eq!(err.code(), Code::Unauthenticated);
    let err = grpc_raw(
        &lw.grpc_endpoint(),
        paths::LOGS,
        body.clone(),
        None,
        Some("wrong"),
    )
    .await
    .expect_err("bad token");
    assert_eq!(err.code(), Code::Unauthenticated);
    grpc_raw(
        &lw.grpc_endpoint(),
        paths::LOGS,
        body.clone(),
        None,
        Some("s3cret"),
    )
    .await
    .expect("good token");
    let (status, _, _) = http_request(
        "POST",
        &lw.http_url("/v1/logs"),
        &[("content-type", "application/x-protobuf")],
        body.to_vec(),
    )
    .await;
    assert_eq!(status, 401);
    let (status, _, _) = http_request(
        "POST",
        &lw.http_url("/v1/logs"),
        &[
            ("content-type", "application/x-protobuf"),
            ("authorization", "Bearer s3cret"),
        ],
        body.to_vec(),
    )
    .await;
    assert_eq!(status, 200);
    lw.stop().await;
}

#[tokio::test]
async fn no_downstream_accepts_and_counts() {
    let lw = start(test_config(None)).await;
    let body = Bytes::from(every_point_kind(now_ns()).encode_to_vec());
    grpc_raw(&lw.grpc_endpoint(), paths::METRICS, body, None, None)
        .await
        .expect("accepted");
    let (status, _, _) = http_request("GET", &lw.admin_url("/healthz"), &[], vec![]).await;
    assert_eq!(status, 200);
    let (status, _, _) = http_request("GET", &lw.admin_url("/readyz"), &[], vec![]).await;
    assert_eq!(status, 200);
    let (_, _, m) = http_request("GET", &lw.admin_url("/metrics"), &[], vec![]).await;
    let text = String::from_utf8_lossy(&m);
    assert!(
        text.contains("leakwatch_receiver_items_total{signal=\"metrics\",protocol=\"grpc\"} 9\n"),
        "{text}"
    );
    // process.memory.usage (3 series), v8js.memory.heap.used (1) and
    // http.server.request.duration (1) are tracked; the other metrics are not.
    assert!(text.contains("\nleakwatch_series 5\n"), "{text}");
    let (status, _, series) = http_request(
        "GET",
        &lw.admin_url("/api/v1/series?service.name=checkout"),
        &[],
        vec![],
    )
    .await;
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_slice(&series).expect("json");
    assert_eq!(v["count"], 5, "{v}");
    lw.stop().await;
}

#[tokio::test]
async fn leakwatch_watches_its_own_memory() {
    let mut config = test_config(None);
    config.self_monitoring.enabled = true;
    config.self_monitoring.interval = Duration::from_millis(20);
    config.self_monitoring.warmup = Duration::ZERO;
    let lw = start(config).await;
    let mut seen = serde_json::Value::Null;
    for _ in 0..100 {
        let (_, _, body) = http_request(
            "GET",
            &lw.admin_url("/api/v1/series?service.name=leakwatch"),
            &[],
            vec![],
        )
        .await;
        seen = serde_json::from_slice(&body).expect("json");
        if seen["count"] == 1
            && seen["items"][0]["trend"]["last_value"]
                .as_f64()
                .unwrap_or(0.0)
                > 0.0
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(seen["count"], 1, "{seen}");
    assert_eq!(seen["items"][0]["metric"], "process.memory.usage", "{seen}");
    assert!(
        seen["items"][0]["trend"]["last_value"]
            .as_f64()
            .unwrap_or(0.0)
            > 1e6,
        "an RSS in bytes: {seen}"
    );
    lw.stop().await;
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

#[tokio::test]
async fn queued_requests_reach_the_downstream_as_one_merged_export() {
    let (mut downstream, lw) = held_back(None).await;
    let sent: Vec<Bytes> = (0..6)
        .map(|i| log_request(i, &format!("req-{i}")))
        .collect();
    for body in &sent {
        grpc_raw(&lw.grpc_endpoint(), paths::LOGS, body.clone(), None, None)
            .await
            .expect("accepted");
    }
    tokio::time::sleep(Duration::from_millis(150)).await;
    *downstream.behaviour.lock().await = Behaviour::Accept;
    let exports = exports_holding(&mut downstream, paths::LOGS, sent.len()).await;
    // The sender held the first request (or the first two, had the second been queued when
    // it looked) while the downstream refused; the rest were queued behind it: one export.
    assert!(exports.len() <= 2, "{} exports", exports.len());
    assert!(log_ids(exports.last().expect("one")).len() >= 4);
    // The data is unchanged: the exports' bytes, in order, are the requests' bytes in order…
    assert_eq!(concat(&exports), concat(&sent));
    // …and a merged export decodes as the union of the requests it carries.
    let union = |bodies: &[Bytes]| ExportLogsServiceRequest {
        resource_logs: bodies
            .iter()
            .flat_map(|b| {
                ExportLogsServiceRequest::decode(b.clone())
                    .expect("logs")
                    .resource_logs
            })
            .collect(),
    };
    assert_eq!(union(&exports), union(&sent));
    let merged = ExportLogsServiceRequest::decode(exports.last().expect("one").clone())
        .expect("a merged export is one valid request");
    assert_eq!(
        merged,
        union(&sent[sent.len() - merged.resource_logs.len()..])
    );
    // Requests are counted as requests, exports as exports.
    let text = metrics_with(
        &lw,
        "leakwatch_exporter_requests_total{signal=\"logs\",outcome=\"delivered\"} 6\n",
    )
    .await;
    assert!(
        text.contains(
            "leakwatch_exporter_requests_total{signal=\"logs\",outcome=\"delivered\"} 6\n"
        ),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "leakwatch_exporter_exports_total{{signal=\"logs\"}} {}\n",
            exports.len()
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "leakwatch_exporter_sent_bytes_total{{signal=\"logs\"}} {}\n",
            concat(&sent).len()
        )),
        "{text}"
    );
    let report = lw.stop().await;
    assert_eq!(report.dropped_requests, 0);
    downstream.stop().await;
}

#[tokio::test]
async fn requests_sent_within_the_linger_leave_as_one_export() {
    let mut downstream = Downstream::start().await;
    let mut config = test_config(Some(downstream.endpoint()));
    config.downstream.batch.linger = Duration::from_secs(1);
    let lw = start(config).await;
    let bodies: Vec<Bytes> = (1..=3)
        .map(|n| Bytes::from(logs(n).encode_to_vec()))
        .collect();
    for body in &bodies {
        grpc_raw(&lw.grpc_endpoint(), paths::LOGS, body.clone(), None, None)
            .await
            .expect("accepted");
    }
    // One after the other, each answered before the next was sent: the first
    // gathered the two others while it lingered.
    assert_eq!(
        downstream.next_on(paths::LOGS).await.body.to_vec(),
        concat(&bodies)
    );
    let report = lw.stop().await;
    assert_eq!(report.dropped_requests, 0);
    downstream.stop().await;
}

#[tokio::test]
async fn merged_exports_respect_the_batch_bounds() {
    let one = log_request(0, "req-0").len();
    // (max_bytes, max_requests) → most requests in one export.
    for (bounds, most) in [((1 << 20, 2), 2), ((3 * one, 512), 3), ((1 << 20, 1), 1)] {
        let (mut downstream, lw) = held_back(Some(bounds)).await;
        let sent: Vec<Bytes> = (0..7)
            .map(|i| log_request(i, &format!("req-{i}")))
            .collect();
        for body in &sent {
            grpc_raw(&lw.grpc_endpoint(), paths::LOGS, body.clone(), None, None)
                .await
                .expect("accepted");
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
        *downstream.behaviour.lock().await = Behaviour::Accept;
        let exports = exports_holding(&mut downstream, paths::LOGS, sent.len()).await;
        assert_eq!(concat(&exports), concat(&sent), "{bounds:?}");
        assert!(
            exports.iter().all(|e| log_ids(e).len() <= most),
            "{bounds:?}: {:?}",
            exports.iter().map(|e| log_ids(e)).collect::<Vec<_>>()
        );
        if most > 1 {
            assert!(
                exports.iter().any(|e| log_ids(e).len() == most),
                "{bounds:?}: merged up to the bound"
            );
        }
        lw.stop().await;
        downstream.stop().await;
    }
}

#[tokio::test]
async fn merged_exports_never_mix_signals() {
    let (mut downstream, lw) = held_back(None).await;
    let logs_sent: Vec<Bytes> = (0..4)
        .map(|i| log_request(i, &format!("log-{i}")))
        .collect();
    let traces_sent: Vec<Bytes> = (1..4)
        .map(|n| Bytes::from(spans(n).encode_to_vec()))
        .collect();
    // Interleaved: logs, logs, traces, logs, traces, logs, traces.
    let order = [(0, 0), (0, 1), (1, 0), (0, 2), (1, 1), (0, 3), (1, 2)];
    for (signal, i) in order {
        let (path, body) = if signal == 0 {
            (paths::LOGS, logs_sent[i].clone())
        } else {
            (paths::TRACES, traces_sent[i].clone())
        };
        grpc_raw(&lw.grpc_endpoint(), path, body, None, None)
            .await
            .expect("accepted");
    }
    tokio::time::sleep(Duration::from_millis(150)).await;
    *downstream.behaviour.lock().await = Behaviour::Accept;
    let (mut logs_got, mut traces_got) = (Vec::new(), Vec::new());
    while concat(&logs_got).len() < concat(&logs_sent).len()
        || concat(&traces_got).len() < concat(&traces_sent).len()
    {
        let r = downstream.next().await;
        if r.path == paths::LOGS {
            logs_got.push(r.body);
        } else if r.path == paths::TRACES {
            traces_got.push(r.body);
        }
    }
    // Each signal's exports carry exactly its own requests, in order.
    assert_eq!(concat(&logs_got), concat(&logs_sent));
    assert_eq!(concat(&traces_got), concat(&traces_sent));
    lw.stop().await;
    downstream.stop().await;
}

#[tokio::test]
async fn a_merged_export_refused_for_good_is_sent_again_request_by_request() {
    let (mut downstream, lw) = held_back(None).await;
    let sent = [
        log_request(0, "req-0"),
        log_request(1, "poison"),
        log_request(2, "req-2"),
        log_request(3, "req-3"),
    ];
    for body in &sent {
        grpc_raw(&lw.grpc_endpoint(), paths::LOGS, body.clone(), None, None)
            .await
            .expect("accepted");
    }
    tokio::time::sleep(Duration::from_millis(150)).await;
    fn poisoned(body: &[u8]) -> bool {
        body.windows(6).any(|w| w == b"poison")
    }
    *downstream.behaviour.lock().await = Behaviour::FailWhen(poisoned, Code::InvalidArgument);
    let exports = exports_holding(&mut downstream, paths::LOGS, 3).await;
    let ids: Vec<u64> = exports.iter().flat_map(|e| log_ids(e)).collect();
    assert_eq!(ids, vec![0, 2, 3], "only the refused request is lost");
    let text = metrics_with(
        &lw,
        "leakwatch_exporter_requests_total{signal=\"logs\",outcome=\"failed_permanent\"} 1\n",
    )
    .await;
    assert!(
        text.contains(
            "leakwatch_exporter_requests_total{signal=\"logs\",outcome=\"failed_permanent\"} 1\n"
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "leakwatch_exporter_requests_total{signal=\"logs\",outcome=\"delivered\"} 3\n"
        ),
        "{text}"
    );
    lw.stop().await;
    downstream.stop().await;
}

#[tokio::test]
async fn a_downstream_partial_success_is_counted() {
    let (mut downstream, lw) = held_back(None).await;
    for i in 0..3 {
        grpc_raw(
            &lw.grpc_endpoint(),
            paths::LOGS,
            log_request(i, "x"),
            None,
            None,
        )
        .await
        .expect("accepted");
    }
    tokio::time::sleep(Duration::from_millis(150)).await;
    *downstream.behaviour.lock().await = Behaviour::PartialSuccess(2);
    let exports = exports_holding(&mut downstream, paths::LOGS, 3).await;
    let needle = format!(
        "leakwatch_exporter_downstream_rejected_items_total{{signal=\"logs\"}} {}\n",
        2 * exports.len()
    );
    let text = metrics_with(&lw, &needle).await;
    assert!(text.contains(&needle), "{text}");
    // Accepted partially is still delivered: nothing is sent again.
    assert!(
        text.contains(
            "leakwatch_exporter_requests_total{signal=\"logs\",outcome=\"delivered\"} 3\n"
        ),
        "{text}"
    );
    lw.stop().await;
    downstream.stop().await;
}

/// The receivers (gRPC, and OTLP/HTTP over HTTP/2) tell clients (HTTP/2 SETTINGS_MAX_FRAME_SIZE)
/// they may send DATA frames of up to 1 MiB, so a collector's batch of a few MB arrives in a few
/// frames, reads and wake-ups instead of one per 16 KiB; and a request of several such frames is
/// accepted.
#[tokio::test]
async fn the_receivers_take_data_frames_of_up_to_1_mib() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let lw = start(test_config(None)).await;
    for addr in [lw.addrs.grpc, lw.addrs.http] {
        let mut tcp = tokio::net::TcpStream::connect(addr.expect("listening"))
            .await
            .expect("connect");
        // Client preface (HTTP/2 with prior knowledge), then an empty SETTINGS frame.
        tcp.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
            .await
            .expect("preface");
        // The server's first frame is its SETTINGS: 9-byte header, then (id, value) entries.
        let mut header = [0u8; 9];
        tcp.read_exact(&mut header).await.expect("frame header");
        assert_eq!(header[3], 0x4, "first frame is SETTINGS: {header:?}");
        let len = u32::from_be_bytes([0, header[0], header[1], header[2]]) as usize;
        let mut payload = vec![0u8; len];
        tcp.read_exact(&mut payload)
            .await
            .expect("settings payload");
        let max_frame = payload
            .chunks_exact(6)
            .find(|e| u16::from_be_bytes([e[0], e[1]]) == 0x5)
            .map(|e| u32::from_be_bytes([e[2], e[3], e[4], e[5]]));
        assert_eq!(
            max_frame,
            Some(1 << 20),
            "SETTINGS_MAX_FRAME_SIZE of {addr:?}"
        );
    }

    // tonic's client takes the server at its word: a 3 MB request goes in 1 MiB frames.
    let points = (0..90_000)
        .map(|i| number_point(now_ns(), 1e8, vec![kv("i", &i.to_string())]))
        .collect();
    let req = request(
        resource("svc", "big"),
        vec![gauge_metric("app.unknown.gauge", "1", points)],
    );
    let body = Bytes::from(prost::Message::encode_to_vec(&req));
    assert!(body.len() > 2 << 20, "request of {} bytes", body.len());
    grpc_raw(&lw.grpc_endpoint(), paths::METRICS, body, None, None)
        .await
        .expect("accepted");
    lw.stop().await;
}
