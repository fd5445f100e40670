//! OTLP/gRPC: every point kind forwarded byte for byte, traces and logs passed through, compression, and the status of malformed, oversized and bomb requests.

use super::*;

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
