//! A leak generated in event time, the same in every run: `checkout` (pod-1), a Node.js heap
//! floor growing 400 KB/s for four minutes then flat, beside a healthy `catalog`; with one-
//! and two-minute windows the whole incident takes well under a second to feed.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use leakwatch::detector::{DetectorConfig, LeakEventKind};
use leakwatch::engine::{Engine, EngineConfig};
use leakwatch::ops::telemetry::Telemetry;
use leakwatch::otlp::proto::otlp::collector::metrics::v1::ExportMetricsServiceRequest;
use prost::Message;

use super::{gauge_metric, http_request, kv, now_ns, number_point, request, resource, Running};

pub const S: u64 = 1_000_000_000;
pub const STEPS: u64 = 480;

pub fn detector() -> DetectorConfig {
    DetectorConfig::with_windows(Duration::from_secs(60), Duration::from_secs(120))
}

/// Event time of step 0: ten minutes ago, so the whole trace lies in the past.
pub fn t0() -> u64 {
    static T0: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *T0.get_or_init(|| (now_ns() / S - 600) * S)
}

/// Second `step`: `checkout` (pod-1) leaks for four minutes then levels off; `catalog` is healthy.
pub fn trace(step: u64, with_checkout: bool) -> Bytes {
    let t = t0() + step * S;
    let saw = (step % 10) as f64 * 2e6;
    let floor = 100e6 + 400e3 * step.min(240) as f64;
    let mut both = ExportMetricsServiceRequest::default();
    if with_checkout {
        let mut r = resource("checkout", "pod-1");
        r.attributes.push(kv("service.namespace", "shop"));
        r.attributes.push(kv("host.name", "node-3"));
        both.resource_metrics.extend(
            request(
                r,
                vec![
                    gauge_metric(
                        "v8js.memory.heap.used",
                        "By",
                        vec![number_point(t, floor + saw, vec![])],
                    ),
                    gauge_metric(
                        "v8js.memory.heap.limit",
                        "By",
                        vec![number_point(t, 1.5e9, vec![])],
                    ),
                ],
            )
            .resource_metrics,
        );
    }
    both.resource_metrics.extend(
        request(
            resource("catalog", "pod-2"),
            vec![gauge_metric(
                "v8js.memory.heap.used",
                "By",
                vec![number_point(t, 80e6 + saw, vec![])],
            )],
        )
        .resource_metrics,
    );
    Bytes::from(both.encode_to_vec())
}

/// The steps after which `checkout` is suspected, confirmed and resolved (event time makes
/// this the same in every run and in every leakwatch).
pub fn lifecycle() -> (u64, u64, u64) {
    let engine = Engine::new(
        EngineConfig {
            detector: detector(),
            ..EngineConfig::default()
        },
        Arc::new(Telemetry::new()),
    );
    let mut at = BTreeMap::new();
    for step in 0..STEPS {
        let out = engine.ingest_metrics(trace(step, true)).expect("valid");
        for e in out.events {
            assert_eq!(e.resource.service_name, "checkout");
            at.entry(e.event.kind as u8).or_insert(step);
        }
    }
    let get = |k: LeakEventKind| {
        *at.get(&(k as u8))
            .expect("the trace has the whole lifecycle")
    };
    (
        get(LeakEventKind::Suspected),
        get(LeakEventKind::Confirmed),
        get(LeakEventKind::Resolved),
    )
}

/// Feeds `steps` over OTLP/HTTP; returns the slowest request.
pub async fn feed(lw: &Running, steps: std::ops::Range<u64>, with_checkout: bool) -> Duration {
    let url = lw.http_url("/v1/metrics");
    let mut slowest = Duration::ZERO;
    for step in steps {
        let started = Instant::now();
        let (status, _, body) = http_request(
            "POST",
            &url,
            &[("content-type", "application/x-protobuf")],
            trace(step, with_checkout).to_vec(),
        )
        .await;
        assert_eq!(status, 200, "{body:?}");
        slowest = slowest.max(started.elapsed());
    }
    slowest
}
