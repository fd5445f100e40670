//! leakwatch watches its own memory: a leak detector that leaks is a joke.
//!
//! Every `interval` (wall clock) leakwatch samples its own resident set size
//! and feeds it, as an OTLP `process.memory.usage` data point of a resource
//! named `service.name=leakwatch`, through its own detection stage — the same
//! `Engine::ingest_metrics` path apps go through. Its verdict shows on
//! `/api/v1/leaks` like any other process, and its leak events go downstream.
//! The point is stamped with the current time: for leakwatch's own process,
//! the wall clock *is* the event time. These samples do not move the engine's
//! event-time watermark (see `Engine::ingest_own`), so replaying an old trace
//! into a running leakwatch is not mistaken for idleness.
//!
//! When the binary's allocator can say how many bytes are live (the `jemalloc`
//! feature: a [`HeapProbe`] installed by `main.rs` with
//! `server::Bound::with_heap_probe`), that figure goes along as
//! [`HEAP_METRIC`], which the catalog classifies as `heap_used`. It then is
//! the primary memory signal and RSS only a supporting one, exactly as for a
//! JVM or Node.js process: resident memory also moves with the allocator's
//! page retention and fragmentation (the failed 30-minute soak: glibc arenas
//! stepped RSS 10 → 17 MiB while nothing leaked), while live heap bytes move
//! only when memory is actually held. Without a probe, RSS alone is judged.
//! The price, as for any process reporting a heap but no committed heap: a
//! leak outside the allocator (thread stacks, mappings) shows only as the
//! supporting `rss` signal and raises no incident on its own.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use prost::Message;
use tokio_util::sync::CancellationToken;

use crate::engine::Engine;
use crate::notify::Notifier;
use crate::otlp::build;
use crate::otlp::proto::otlp::collector::metrics::v1::ExportMetricsServiceRequest;

/// The metric carrying the allocator's live heap bytes (catalog role `heap_used`).
pub const HEAP_METRIC: &str = "leakwatch.memory.heap.allocated";

/// Reads the bytes the process's allocator holds live (allocated and not yet
/// freed). Implemented by the binary for its global allocator; the library
/// does not assume which allocator it runs under.
pub trait HeapProbe: Send + Sync + 'static {
    fn allocated_bytes(&self) -> Option<u64>;
}

/// The self-monitoring request for one sample: resident set size and, when
/// known, the allocator's live heap bytes.
pub fn request(
    rss_bytes: u64,
    heap_bytes: Option<u64>,
    t_ns: u64,
    instance: &str,
) -> ExportMetricsServiceRequest {
    let gauge = |name: &str, description: &str, bytes: u64| {
        let bytes = i64::try_from(bytes).unwrap_or(i64::MAX);
        build::gauge(
            name,
            "By",
            description,
            vec![build::int_point(t_ns, bytes, Vec::new())],
        )
    };
    let mut metrics = vec![gauge(
        "process.memory.usage",
        "leakwatch's own resident set size.",
        rss_bytes,
    )];
    if let Some(heap) = heap_bytes {
        metrics.push(gauge(
            HEAP_METRIC,
            "Bytes leakwatch's allocator holds live (allocated, not freed).",
            heap,
        ));
    }
    build::metrics_request(
        build::resource(vec![
            build::kv("service.name", "leakwatch"),
            build::kv("service.instance.id", instance),
            build::kv("service.version", env!("CARGO_PKG_VERSION")),
        ]),
        build::scope("leakwatch.self", ""),
        metrics,
    )
}

/// Feeds leakwatch's own RSS (and live heap, given a `heap` probe) to its
/// detector every `interval` until `shutdown`.
pub async fn run(
    engine: Arc<Engine>,
    events: Notifier,
    heap: Option<Arc<dyn HeapProbe>>,
    interval: Duration,
    warmup: Duration,
    shutdown: CancellationToken,
) {
    let instance = format!("{}@{}", std::process::id(), hostname());
    let started = tokio::time::Instant::now();
    let mut ticks = crate::ops::periodic::Periodic::new(interval, shutdown);
    while ticks.tick().await {
        if started.elapsed() < warmup {
            continue;
        }
        let Some(rss) = crate::ops::telemetry::own_rss_bytes() else {
            continue;
        };
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        let heap_bytes = heap.as_ref().and_then(|p| p.allocated_bytes());
        let body = Bytes::from(request(rss, heap_bytes, now, &instance).encode_to_vec());
        match engine.ingest_own(body) {
            Ok(outcome) => events.emit(outcome.events),
            Err(e) => tracing::debug!(error = %e, "Self-monitoring sample not ingested."),
        }
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::EngineConfig;
    use crate::ops::telemetry::Telemetry;

    #[test]
    fn own_samples_create_one_tracked_series() {
        let engine = Engine::new(EngineConfig::default(), Arc::new(Telemetry::new()));
        for i in 0..3u64 {
            let body = Bytes::from(
                request(
                    100_000_000,
                    None,
                    1_000_000_000_000 + i * 15_000_000_000,
                    "1@host",
                )
                .encode_to_vec(),
            );
            assert!(engine
                .ingest_metrics(body)
                .expect("valid")
                .rejected
                .is_empty());
        }
        assert_eq!(engine.series_count(), 1);
        let views = engine.series_views(Some("leakwatch"));
        assert_eq!(views.len(), 1);
        assert_eq!(views[0].metric, "process.memory.usage");
    }

    #[test]
    fn own_samples_do_not_move_the_watermark() {
        let engine = Engine::new(EngineConfig::default(), Arc::new(Telemetry::new()));
        let body =
            Bytes::from(request(100_000_000, None, 5_000_000_000_000, "1@host").encode_to_vec());
        engine.ingest_own(body).expect("valid");
        assert_eq!(engine.watermark_ns(), 0);
        assert_eq!(engine.series_count(), 1);
    }

    /// A run like `scripts/soak.sh`'s (windows 10/20 min, a sample every 5 s)
    /// for an hour: RSS in MiB and, optionally, live heap in MiB at minute `m`.
    /// Returns every lifecycle event leakwatch raised about itself.
    fn self_run(
        rss_mib: impl Fn(f64) -> f64,
        heap_mib: Option<&dyn Fn(f64) -> f64>,
    ) -> Vec<crate::detector::LeakEvent> {
        use crate::detector::DetectorConfig;
        let config = EngineConfig {
            detector: DetectorConfig::with_windows(
                Duration::from_secs(600),
                Duration::from_secs(1200),
            ),
            ..EngineConfig::default()
        };
        let engine = Engine::new(config, Arc::new(Telemetry::new()));
        let t0 = 1_800_000_000_000_000_000u64;
        let mut rng = fastrand::Rng::with_seed(7);
        let mut events = Vec::new();
        for k in 0..720u64 {
            let minute = (k * 5) as f64 / 60.0;
            // In-flight requests: the live heap and RSS wobble by up to 1.5 MiB.
            let busy = rng.f64() * 1.5;
            let mib = |v: f64| (v * 1024.0 * 1024.0) as u64;
            let body = request(
                mib(rss_mib(minute) + busy),
                heap_mib.map(|h| mib(h(minute) + busy)),
                t0 + k * 5_000_000_000,
                "1@host",
            );
            let outcome = engine
                .ingest_own(Bytes::from(body.encode_to_vec()))
                .expect("valid");
            events.extend(outcome.events.into_iter().map(|e| e.event));
        }
        events
    }

    /// RSS 10.2 → 17.2 MiB in five steps, as in the failed soak (glibc arenas
    /// growing while other processes built).
    fn fragmented_rss(minute: f64) -> f64 {
        10.2 + 1.4 * (minute / 9.0).floor().min(5.0)
    }

    #[test]
    fn rss_steps_alone_are_flagged_as_a_leak() {
        // The control for the next test: judged on RSS alone, the steps look like a leak.
        let events = self_run(fragmented_rss, None);
        assert!(
            events
                .iter()
                .any(|e| e.kind == crate::detector::LeakEventKind::Suspected),
            "{events:?}"
        );
    }

    #[test]
    fn rss_steps_with_a_flat_live_heap_are_not_a_leak() {
        let flat = |_: f64| 6.0;
        let events = self_run(fragmented_rss, Some(&flat));
        assert!(events.is_empty(), "{events:?}");
    }

    #[test]
    fn a_growing_live_heap_is_a_leak() {
        // 6 MiB/h of live heap, RSS following it on top of its own steps.
        let growing = |m: f64| 6.0 + 0.1 * m;
        let rss = |m: f64| fragmented_rss(m) + 0.1 * m;
        let events = self_run(rss, Some(&growing));
        let first = events.first().expect("a leak event");
        assert_eq!(first.kind, crate::detector::LeakEventKind::Suspected);
        assert_eq!(first.metric, HEAP_METRIC, "{events:?}");
        assert!(first.signals.contains(&"memory"), "{events:?}");
    }

    #[test]
    fn the_heap_metric_is_classified_as_heap_used() {
        let c = crate::catalog::Catalog::builtin();
        let got = c.classify(HEAP_METRIC, "By", &[]).expect("classified");
        assert_eq!(got.role, crate::catalog::Role::HeapUsed);
    }
}
