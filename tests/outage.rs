//! Downstream outage under steady load: the downstream goes away for a while
//! and comes back. Every request leakwatch acknowledged must arrive; while the
//! queue is full, clients get retryable refusals (never a silent drop).
//!
//! The outage lasts `LEAKWATCH_OUTAGE_SECONDS` (default 3 s; the 60 s
//! run is `LEAKWATCH_OUTAGE_SECONDS=60 cargo test --release --test outage -- --nocapture`).

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use leakwatch::otlp::proto::otlp::collector::logs::v1::ExportLogsServiceRequest;
use leakwatch::otlp::proto::otlp::common::v1::{any_value, AnyValue};
use leakwatch::otlp::proto::otlp::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use leakwatch::otlp::proto::paths;
use prost::Message;
use tokio::sync::Mutex;

fn numbered(id: u64) -> Bytes {
    let record = LogRecord {
        time_unix_nano: id + 1,
        body: Some(AnyValue {
            value: Some(any_value::Value::StringValue(format!("req-{id}"))),
        }),
        ..Default::default()
    };
    let req = ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(resource("outage", "1")),
            scope_logs: vec![ScopeLogs {
                log_records: vec![record],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    Bytes::from(req.encode_to_vec())
}

fn id_of(body: &Bytes) -> Vec<u64> {
    let req = ExportLogsServiceRequest::decode(body.clone()).expect("logs request");
    req.resource_logs
        .iter()
        .flat_map(|r| &r.scope_logs)
        .flat_map(|s| &s.log_records)
        .map(|l| l.time_unix_nano - 1)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_accepted_request_arrives_after_a_downstream_outage() {
    let outage = Duration::from_secs(
        std::env::var("LEAKWATCH_OUTAGE_SECONDS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(3),
    );
    let downstream = Downstream::start().await;
    let addr = downstream.addr;
    let mut config = test_config(Some(downstream.endpoint()));
    // A small queue, so the outage fills it and refusals are exercised.
    config.downstream.queue.max_requests = 200;
    config.downstream.retry.max_elapsed_time = outage * 10 + Duration::from_secs(60);
    let lw = start(config).await;
    let endpoint = lw.grpc_endpoint();

    // Steady load: 4 clients, each a request every 5 ms.
    let next_id = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(Mutex::new(Vec::new()));
    let refused = Arc::new(AtomicU64::new(0));
    let mut clients = Vec::new();
    for _ in 0..4 {
        let (endpoint, next_id, stop, acked, refused) = (
            endpoint.clone(),
            next_id.clone(),
            stop.clone(),
            acked.clone(),
            refused.clone(),
        );
        clients.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let id = next_id.fetch_add(1, Ordering::Relaxed);
                match grpc_raw(&endpoint, paths::LOGS, numbered(id), None, None).await {
                    Ok(_) => acked.lock().await.push(id),
                    Err(s) => {
                        assert_eq!(
                            s.code(),
                            tonic::Code::Unavailable,
                            "only retryable refusals: {s:?}"
                        );
                        refused.fetch_add(1, Ordering::Relaxed);
                    }
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }));
    }

    // Collect deliveries in the background, across the downstream's restart.
    let mut delivered: BTreeMap<u64, u32> = BTreeMap::new();
    let mut downstream = downstream;
    let record = |r: Received, delivered: &mut BTreeMap<u64, u32>| {
        if r.path == paths::LOGS {
            for id in id_of(&r.body) {
                *delivered.entry(id).or_default() += 1;
            }
        }
    };
    let drain = |d: &mut Downstream, delivered: &mut BTreeMap<u64, u32>| {
        while let Ok(r) = d.rx.try_recv() {
            record(r, delivered);
        }
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    drain(&mut downstream, &mut delivered);
    for r in downstream.stop_and_drain().await {
        record(r, &mut delivered);
    }
    let down_at = Instant::now();
    tokio::time::sleep(outage).await;
    // On a starved machine the clients may not have filled the queue yet: keep the downstream
    // down until they have been refused at least once (the refusal path is under test too).
    let longest = down_at + outage + Duration::from_secs(60);
    while refused.load(Ordering::Relaxed) == 0 && Instant::now() < longest {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut downstream =
        Downstream::start_on(tokio::net::TcpListener::bind(addr).await.expect("rebind")).await;
    let down_for = down_at.elapsed();
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.expect("client");
    }
    let acked = acked.lock().await.clone();
    let deadline = Instant::now() + Duration::from_secs(60) + outage;
    loop {
        drain(&mut downstream, &mut delivered);
        if acked.iter().all(|id| delivered.contains_key(id)) || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let lost: Vec<_> = acked
        .iter()
        .filter(|id| !delivered.contains_key(id))
        .collect();
    let duplicated = delivered.values().filter(|&&n| n > 1).count();
    let sent = next_id.load(Ordering::Relaxed);
    println!(
        "outage {:.1} s: sent {sent}, accepted {}, refused (retryable) {}, delivered {}, lost {}, duplicated {duplicated}",
        down_for.as_secs_f64(),
        acked.len(),
        refused.load(Ordering::Relaxed),
        delivered.len(),
        lost.len()
    );
    assert!(lost.is_empty(), "accepted but never delivered: {lost:?}");
    assert!(
        refused.load(Ordering::Relaxed) > 0,
        "the outage should have filled the queue"
    );
    assert!(
        acked.len() > 200,
        "load kept being accepted around the outage"
    );
    lw.stop().await;
    downstream.stop().await;
}

/// The downstream's connection dies in the middle of an export (the process is killed, a
/// proxy resets it): no gRPC status comes back, and tonic reports the failure as INTERNAL or
/// UNKNOWN. The request may never have been processed, so it must be retried, not dropped as
/// refused for good.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_cut_off_by_a_dying_connection_is_retried() {
    use tokio::io::AsyncReadExt;
    // A "downstream" that reads the start of whatever arrives, then drops the connection.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let mut config = test_config(Some(format!("http://{addr}")));
    config.downstream.senders = 1;
    config.downstream.retry.initial_interval = Duration::from_millis(300);
    config.downstream.retry.max_interval = Duration::from_millis(300);
    let lw = start(config).await;
    let body = numbered(7);
    grpc_raw(&lw.grpc_endpoint(), paths::LOGS, body.clone(), None, None)
        .await
        .expect("accepted");
    // Read until the request's own bytes have arrived (headers and body), then cut.
    let (mut socket, _) = tokio::time::timeout(Duration::from_secs(10), listener.accept())
        .await
        .expect("the exporter connects")
        .expect("accept");
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !seen.windows(body.len()).any(|w| w == &body[..]) {
        let n = tokio::time::timeout(Duration::from_secs(10), socket.read(&mut buf))
            .await
            .expect("the request arrives")
            .expect("read");
        assert!(n > 0, "the exporter closed first");
        seen.extend_from_slice(&buf[..n]);
    }
    drop(socket);
    drop(listener);
    // The real downstream comes up on the same address: the request must reach it.
    let mut downstream =
        Downstream::start_on(tokio::net::TcpListener::bind(addr).await.expect("rebind")).await;
    let got = downstream.next_on(paths::LOGS).await;
    assert_eq!(id_of(&got.body), vec![7]);
    let (_, _, m) = http_request("GET", &lw.admin_url("/metrics"), &[], vec![]).await;
    let text = String::from_utf8_lossy(&m);
    assert!(
        text.contains(
            "leakwatch_exporter_requests_total{signal=\"logs\",outcome=\"failed_permanent\"} 0\n"
        ),
        "{text}"
    );
    let report = lw.stop().await;
    assert_eq!(report.dropped_requests, 0);
    downstream.stop().await;
}
