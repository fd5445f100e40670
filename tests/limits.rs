//! The memory limiter: above the soft limit new series are refused (reported
//! in `partial_success`) while existing series keep being tracked; above the
//! hard limit whole requests get retryable statuses.

mod common;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use leakwatch::config::MemoryLimiterConfig;
use leakwatch::otlp::proto::otlp::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use leakwatch::otlp::proto::paths;
use prost::Message;
use tonic::Code;
use tonic_types::StatusExt;

fn rss_request(pools: &[&str], t_ns: u64) -> ExportMetricsServiceRequest {
    let points = pools
        .iter()
        .map(|p| number_point(t_ns, 1e8, vec![kv("pool", p)]))
        .collect();
    request(
        resource("svc", "a"),
        vec![gauge_metric("process.memory.usage", "By", points)],
    )
}

async fn export(
    lw: &Running,
    req: &ExportMetricsServiceRequest,
) -> Result<ExportMetricsServiceResponse, tonic::Status> {
    grpc_raw(
        &lw.grpc_endpoint(),
        paths::METRICS,
        Bytes::from(req.encode_to_vec()),
        None,
        None,
    )
    .await
    .map(|b| ExportMetricsServiceResponse::decode(b).expect("response"))
}

/// Waits until the limiter reports `pressure` in the self-metrics.
async fn wait_pressure(lw: &Running, pressure: u64) {
    let want = format!("\nleakwatch_memory_limiter_pressure {pressure}\n");
    eventually(|| async {
        let (_, _, m) = http_request("GET", &lw.admin_url("/metrics"), &[], vec![]).await;
        String::from_utf8_lossy(&m).contains(&want).then_some(())
    })
    .await
}

/// Retries `f` until it returns `Some` (the sampler ticks every 10 ms).
async fn eventually<T, F: std::future::Future<Output = Option<T>>>(mut f: impl FnMut() -> F) -> T {
    for _ in 0..200 {
        if let Some(v) = f().await {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("condition not reached within 2 s");
}

#[tokio::test]
async fn soft_limit_refuses_new_series_hard_limit_refuses_requests() {
    let mut config = test_config(None);
    config.receivers.memory_limiter = Some(MemoryLimiterConfig {
        // Realistic sizes: each new series is charged ~2 KiB against the room
        // left under the soft limit until the next sample.
        limit_bytes: 1_000_000_000,
        soft_limit_percent: 80.0,
        check_interval: Duration::from_millis(10),
    });
    let memory = Arc::new(FakeMemory::default());
    memory.0.store(100_000_000, Ordering::Relaxed);
    let lw = start_with_probe(config, Arc::clone(&memory)).await;
    let t0 = now_ns();

    // Normal: two series are created.
    let r = export(&lw, &rss_request(&["a", "b"], t0))
        .await
        .expect("accepted");
    assert_eq!(r.partial_success, None);

    // Soft: the existing series keep working, the new one is refused.
    memory.0.store(850_000_000, Ordering::Relaxed);
    wait_pressure(&lw, 1).await;
    let r = export(&lw, &rss_request(&["a", "b", "c"], t0 + 10_000_000_000))
        .await
        .expect("accepted");
    let partial = r.partial_success.expect("partial success");
    assert_eq!(partial.rejected_data_points, 1);
    assert!(
        partial.error_message.contains("memory soft limit"),
        "{}",
        partial.error_message
    );
    let (_, _, body) = http_request(
        "GET",
        &lw.admin_url("/api/v1/series?service.name=svc"),
        &[],
        vec![],
    )
    .await;
    let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(v["count"], 2, "{v}");
    let seen: Vec<u64> = v["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["last_seen_unix_nano"].as_u64().expect("u64"))
        .collect();
    assert!(
        seen.iter().all(|&t| t == t0 + 10_000_000_000),
        "existing series were updated: {seen:?}"
    );

    // Hard: whole requests are refused, retryably, on both protocols.
    memory.0.store(5_000_000_000, Ordering::Relaxed);
    wait_pressure(&lw, 2).await;
    let status = export(&lw, &rss_request(&["a"], t0 + 20_000_000_000))
        .await
        .expect_err("refused");
    assert_eq!(status.code(), Code::Unavailable);
    assert!(
        status.get_details_retry_info().is_some(),
        "RetryInfo present"
    );
    let (code, headers, _) = http_request(
        "POST",
        &lw.http_url("/v1/metrics"),
        &[("content-type", "application/x-protobuf")],
        rss_request(&["a"], t0).encode_to_vec(),
    )
    .await;
    assert_eq!(code, 503);
    assert!(headers.contains_key("retry-after"));

    // Back to normal: new series are admitted again.
    memory.0.store(100_000_000, Ordering::Relaxed);
    wait_pressure(&lw, 0).await;
    let r = export(&lw, &rss_request(&["a", "b", "c"], t0 + 30_000_000_000))
        .await
        .expect("accepted");
    assert_eq!(r.partial_success, None);
    let (_, _, m) = http_request("GET", &lw.admin_url("/metrics"), &[], vec![]).await;
    let text = String::from_utf8_lossy(&m);
    assert!(
        text.contains("leakwatch_points_anomalies_total{kind=\"memory_limit\"} 1\n"),
        "{text}"
    );
    assert!(
        text.contains(
            "leakwatch_receiver_refused_requests_total{signal=\"metrics\",reason=\"memory_limit\"}"
        ),
        "{text}"
    );
    lw.stop().await;
}
