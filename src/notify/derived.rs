//! Derived metrics: every resource's leak state, growth rate, trend R² and
//! time to limit as OTLP gauges, sent downstream on a timer (not per event).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use prost::Message;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::SCOPE;
use crate::detector::LeakState;
use crate::engine::Engine;
use crate::exporter::ExportQueue;
use crate::otlp::build;
use crate::otlp::proto::otlp::collector::metrics::v1::ExportMetricsServiceRequest;
use crate::otlp::proto::otlp::metrics::v1::Metric;
use crate::otlp::signal::Signal;

fn gauge(name: &str, unit: &str, description: &str, t_ns: u64, value: f64) -> Metric {
    build::gauge(
        name,
        unit,
        description,
        vec![build::double_point(t_ns, value, Vec::new())],
    )
}

/// Derived metrics of every resource that has tracked series, stamped with
/// each resource's newest event time.
pub fn derived_metrics(engine: &Engine) -> ExportMetricsServiceRequest {
    let resource_metrics = engine
        .resource_views()
        .into_iter()
        .map(|view| {
            let s = &view.summary;
            let t = view.latest_unix_nano;
            let state = match view.state {
                LeakState::Ok => 0.0,
                LeakState::Suspected => 1.0,
                LeakState::Confirmed => 2.0,
            };
            let mut metrics = vec![gauge(
                "leakwatch.leak.state",
                "1",
                "Leak state: 0 ok, 1 suspected, 2 confirmed.",
                t,
                state,
            )];
            if s.leading_metric.is_some() {
                metrics.push(gauge(
                    "leakwatch.memory.growth_rate",
                    "By/h",
                    "Growth of the memory that survives GC.",
                    t,
                    s.growth_bytes_per_hour,
                ));
                metrics.push(gauge(
                    "leakwatch.memory.trend_r2",
                    "1",
                    "R² of the memory trend.",
                    t,
                    s.r_squared,
                ));
            }
            if let Some(ttl) = s.time_to_limit_seconds {
                metrics.push(gauge(
                    "leakwatch.memory.time_to_limit",
                    "s",
                    "Forecast time until the memory limit.",
                    t,
                    ttl,
                ));
            }
            build::resource_metrics(
                build::resource(view.resource.attributes.clone()),
                build::scope(SCOPE, env!("CARGO_PKG_VERSION")),
                metrics,
            )
        })
        .collect();
    ExportMetricsServiceRequest { resource_metrics }
}

/// Sends derived metrics downstream every `interval` until `shutdown`.
pub async fn run_derived_metrics(
    engine: Arc<Engine>,
    queue: ExportQueue,
    interval: Duration,
    shutdown: CancellationToken,
) {
    let mut ticks = crate::ops::periodic::Periodic::after_first_period(interval, shutdown);
    while ticks.tick().await {
        let request = derived_metrics(&engine);
        if request.resource_metrics.is_empty() {
            continue;
        }
        if let Err(e) = queue.try_enqueue(Signal::Metrics, Bytes::from(request.encode_to_vec())) {
            engine.telemetry().export(
                Signal::Metrics,
                crate::ops::telemetry::ExportOutcome::Dropped,
            );
            warn!(error = %e, "Could not queue derived metrics for the downstream.");
        }
    }
}
