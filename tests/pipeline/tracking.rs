//! What tracking adds on the way: the series limit (partial success), bearer tokens, running without a downstream, leakwatch watching its own memory.

use super::*;

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
