//! The webhook outlet against a local receiver (the user's own: an axum server in the test):
//! every lifecycle event arrives once, as JSON with the OTLP event's fields and the configured
//! headers; a receiver that fails is retried with backoff; ingest never waits on it.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use common::leak::{detector, feed, lifecycle, t0, S, STEPS};
use common::*;
use leakwatch::config::notify::WebhookConfig;
use tokio::sync::mpsc;

struct Sink {
    tx: mpsc::UnboundedSender<(HeaderMap, serde_json::Value)>,
    /// Requests to refuse with 503 before accepting.
    fail_first: AtomicUsize,
    seen: AtomicUsize,
}

async fn receive(
    State(sink): State<Arc<Sink>>,
    headers: HeaderMap,
    Json(body): Json<serde_json::Value>,
) -> StatusCode {
    sink.seen.fetch_add(1, Ordering::SeqCst);
    if sink
        .fail_first
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
    {
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    let _ = sink.tx.send((headers, body));
    StatusCode::NO_CONTENT
}

async fn sink(
    fail_first: usize,
) -> (
    String,
    Arc<Sink>,
    mpsc::UnboundedReceiver<(HeaderMap, serde_json::Value)>,
) {
    let (tx, rx) = mpsc::unbounded_channel();
    let sink = Arc::new(Sink {
        tx,
        fail_first: AtomicUsize::new(fail_first),
        seen: AtomicUsize::new(0),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/hooks/leak", listener.local_addr().expect("addr"));
    let app = Router::new()
        .route("/hooks/leak", post(receive))
        .with_state(Arc::clone(&sink));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, sink, rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_lifecycle_event_reaches_the_webhook_once_as_the_otlp_fields() {
    let (suspected, confirmed, resolved) = lifecycle();
    // The receiver fails its first two requests: the first event gets there on the third try.
    let (url, sink, mut rx) = sink(2).await;
    let mut c = test_config(None);
    c.detector = detector();
    c.notify.webhook = WebhookConfig {
        url: Some(url),
        headers: [("authorization".to_owned(), "Bearer s3cret".into())].into(),
    };
    let lw = start(c).await;
    feed(&lw, 0..STEPS, true).await;

    let mut got = Vec::new();
    for _ in 0..3 {
        let (headers, body) = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("an event within 10 s")
            .expect("open");
        assert_eq!(headers["authorization"], "Bearer s3cret");
        assert_eq!(headers["content-type"], "application/json");
        got.push(body);
    }
    let names: Vec<&str> = got
        .iter()
        .map(|b| b["event_name"].as_str().expect("event_name"))
        .collect();
    assert_eq!(
        names,
        [
            "memory.leak.suspected",
            "memory.leak.confirmed",
            "memory.leak.resolved"
        ]
    );
    let steps: Vec<u64> = got
        .iter()
        .map(|b| (b["time_unix_nano"].as_u64().expect("time") - t0()) / S)
        .collect();
    assert_eq!(steps, [suspected, confirmed, resolved], "event times");
    let c = &got[1];
    assert_eq!(c["severity_text"], "ERROR");
    assert_eq!(c["resource"]["service.name"], "checkout");
    assert_eq!(c["resource"]["service.instance.id"], "pod-1");
    assert_eq!(c["resource"]["host.name"], "node-3");
    let a = &c["attributes"];
    assert_eq!(a["event.name"], "memory.leak.confirmed");
    assert_eq!(a["leak.metric"], "v8js.memory.heap.used");
    assert_eq!(a["leak.signals"], serde_json::json!(["memory"]));
    assert!(a["leak.growth_bytes_per_hour"].as_f64().expect("growth") > 1e9);
    assert!(a["leak.r_squared"].as_f64().expect("r2") > 0.9);
    assert!(a["leak.window_seconds"].as_f64().expect("window") > 30.0);
    assert!(a["leak.next_step"]
        .as_str()
        .is_some_and(|s| s.contains("heap snapshot")));
    assert!(
        c["body"]
            .as_str()
            .expect("body")
            .starts_with("v8js.memory.heap.used of checkout (pod-1) grows "),
        "{c:#}"
    );
    assert_eq!(got[0]["severity_text"], "WARN");
    assert_eq!(got[2]["severity_text"], "INFO");
    assert_eq!(got[2]["attributes"]["leak.resolution"], "flat");
    // One incident, one id on all three events.
    let ids: Vec<&str> = got
        .iter()
        .map(|b| {
            b["attributes"]["leak.incident_id"]
                .as_str()
                .expect("incident id")
        })
        .collect();
    assert_eq!(ids[0].len(), 16, "{ids:?}");
    assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");

    // Exactly once each: 2 refusals + 3 deliveries, nothing more.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(rx.try_recv().is_err(), "an event arrived twice");
    assert_eq!(sink.seen.load(Ordering::SeqCst), 5);
    let (_, _, metrics) = http_request("GET", &lw.admin_url("/metrics"), &[], Vec::new()).await;
    let metrics = String::from_utf8_lossy(&metrics);
    for line in [
        "leakwatch_notify_requests_total{sink=\"webhook\",outcome=\"success\"} 3",
        "leakwatch_notify_requests_total{sink=\"webhook\",outcome=\"error\"} 2",
        "leakwatch_notify_dropped_total{outlet=\"webhook\"} 0",
    ] {
        assert!(metrics.contains(line), "{line} missing:\n{metrics}");
    }
    lw.stop().await;
}
