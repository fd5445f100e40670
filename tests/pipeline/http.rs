//! OTLP/HTTP: protobuf and JSON forwarded as protobuf, compressed bodies, error statuses with a status body, large DATA frames.

use super::*;

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
