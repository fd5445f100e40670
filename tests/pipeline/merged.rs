//! Merged exports: queued requests of one signal leave as one export within the batch bounds, never mixing signals; one refused for good is sent again request by request.

use super::*;

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
