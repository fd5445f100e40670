//! Delivery to the downstream: a full queue answers retryably and loses nothing accepted, shutdown drains, permanent errors are not retried, partial success is counted.

use super::*;

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
