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

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use prost::Message;
use tokio_util::sync::CancellationToken;

use crate::engine::Engine;
use crate::events::EventSink;
use crate::proto::otlp::collector::metrics::v1::ExportMetricsServiceRequest;
use crate::proto::otlp::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use crate::proto::otlp::metrics::v1::{
    metric, number_data_point, Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics,
};
use crate::proto::otlp::resource::v1::Resource;

/// The self-monitoring request for one RSS sample.
pub fn request(rss_bytes: u64, t_ns: u64, instance: &str) -> ExportMetricsServiceRequest {
    let kv = |k: &str, v: any_value::Value| KeyValue {
        key: k.to_owned(),
        value: Some(AnyValue { value: Some(v) }),
        ..Default::default()
    };
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![
                    kv(
                        "service.name",
                        any_value::Value::StringValue("leakwatch".to_owned()),
                    ),
                    kv(
                        "service.instance.id",
                        any_value::Value::StringValue(instance.to_owned()),
                    ),
                    kv(
                        "service.version",
                        any_value::Value::StringValue(env!("CARGO_PKG_VERSION").to_owned()),
                    ),
                ],
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                scope: Some(InstrumentationScope {
                    name: "leakwatch.self".to_owned(),
                    ..Default::default()
                }),
                metrics: vec![Metric {
                    name: "process.memory.usage".to_owned(),
                    unit: "By".to_owned(),
                    description: "leakwatch's own resident set size.".to_owned(),
                    data: Some(metric::Data::Gauge(Gauge {
                        data_points: vec![NumberDataPoint {
                            time_unix_nano: t_ns,
                            value: Some(number_data_point::Value::AsInt(
                                i64::try_from(rss_bytes).unwrap_or(i64::MAX),
                            )),
                            ..Default::default()
                        }],
                    })),
                    ..Default::default()
                }],
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

/// Feeds leakwatch's own RSS to its detector every `interval` until `shutdown`.
pub async fn run(
    engine: Arc<Engine>,
    events: EventSink,
    interval: Duration,
    warmup: Duration,
    shutdown: CancellationToken,
) {
    let instance = format!("{}@{}", std::process::id(), hostname());
    let started = tokio::time::Instant::now();
    let mut ticks = crate::periodic::Periodic::new(interval, shutdown);
    while ticks.tick().await {
        if started.elapsed() < warmup {
            continue;
        }
        let Some(rss) = crate::telemetry::own_rss_bytes() else {
            continue;
        };
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        let body = Bytes::from(request(rss, now, &instance).encode_to_vec());
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
    use crate::telemetry::Telemetry;

    #[test]
    fn own_samples_create_one_tracked_series() {
        let engine = Engine::new(EngineConfig::default(), Arc::new(Telemetry::new()));
        for i in 0..3u64 {
            let body = Bytes::from(
                request(
                    100_000_000,
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
        let body = Bytes::from(request(100_000_000, 5_000_000_000_000, "1@host").encode_to_vec());
        engine.ingest_own(body).expect("valid");
        assert_eq!(engine.watermark_ns(), 0);
        assert_eq!(engine.series_count(), 1);
    }
}
