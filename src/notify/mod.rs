//! The emit stage: turns leak-lifecycle transitions into what users see —
//! a structured log line, an OTLP log record sent downstream through the
//! export queue (the event contract below), and periodic derived metrics.
//!
//! Event contract (other tools rely on it): resource = the leaking app's
//! resource with all its attributes; `event_name` and attribute `event.name`
//! = `memory.leak.{suspected,confirmed,resolved}`; severity WARN / ERROR /
//! INFO; `time_unix_nano` = the event time of the decision; attributes
//! `leak.metric`, `leak.signals` (array), `leak.growth_bytes_per_hour`,
//! `leak.r_squared`, `leak.window_seconds`, and `leak.time_to_limit_seconds`
//! / `leak.limit_bytes` when known; the body is one human sentence.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use prost::Message;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::detector::{LeakEvent, LeakEventKind, LeakState};
use crate::engine::{Engine, EngineEvent, ResourceInfo};
use crate::exporter::ExportQueue;
use crate::ops::telemetry::Telemetry;
use crate::otlp::proto::otlp::collector::logs::v1::ExportLogsServiceRequest;
use crate::otlp::proto::otlp::collector::metrics::v1::ExportMetricsServiceRequest;
use crate::otlp::proto::otlp::common::v1::{
    any_value, AnyValue, ArrayValue, InstrumentationScope, KeyValue,
};
use crate::otlp::proto::otlp::logs::v1::{LogRecord, ResourceLogs, ScopeLogs, SeverityNumber};
use crate::otlp::proto::otlp::metrics::v1::{
    metric, number_data_point, Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics,
};
use crate::otlp::proto::otlp::resource::v1::Resource;
use crate::otlp::signal::Signal;

const SCOPE: &str = "leakwatch";

/// Where leak events go.
#[derive(Clone)]
pub struct EventSink {
    queue: Option<ExportQueue>,
    send_logs: bool,
    telemetry: Arc<Telemetry>,
}

impl EventSink {
    pub fn new(queue: Option<ExportQueue>, send_logs: bool, telemetry: Arc<Telemetry>) -> Self {
        EventSink {
            queue,
            send_logs,
            telemetry,
        }
    }

    /// Logs each event, counts it and sends it downstream as a log record.
    pub fn emit(&self, events: Vec<EngineEvent>) {
        if events.is_empty() {
            return;
        }
        for e in &events {
            let sentence = sentence(&e.resource, &e.event);
            let ev = &e.event;
            let fields = (
                ev.kind.event_name(),
                &e.resource.service_name,
                &e.resource.instance,
                &ev.metric,
            );
            match ev.kind {
                LeakEventKind::Confirmed => {
                    error!(event = fields.0, service = %fields.1, instance = %fields.2, metric = %fields.3, growth_bytes_per_hour = ev.growth_bytes_per_hour, r_squared = ev.r_squared, signals = ?ev.signals, "{sentence}")
                }
                LeakEventKind::Suspected => {
                    warn!(event = fields.0, service = %fields.1, instance = %fields.2, metric = %fields.3, growth_bytes_per_hour = ev.growth_bytes_per_hour, r_squared = ev.r_squared, signals = ?ev.signals, "{sentence}")
                }
                LeakEventKind::Resolved => {
                    info!(event = fields.0, service = %fields.1, instance = %fields.2, metric = %fields.3, "{sentence}")
                }
            }
            self.telemetry.leak_event(ev.kind as usize);
        }
        if !self.send_logs {
            return;
        }
        let Some(queue) = &self.queue else { return };
        let body = Bytes::from(log_request(&events, now_ns()).encode_to_vec());
        if let Err(e) = queue.try_enqueue(Signal::Logs, body) {
            // Not silent: counted as a dropped export and logged.
            self.telemetry
                .export(Signal::Logs, crate::ops::telemetry::ExportOutcome::Dropped);
            warn!(error = %e, events = events.len(), "Could not queue leak events for the downstream.");
        }
    }
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

fn kv(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

fn string(s: &str) -> any_value::Value {
    any_value::Value::StringValue(s.to_owned())
}

/// The OTLP log records of `events`, one `ResourceLogs` per event.
pub fn log_request(events: &[EngineEvent], observed_ns: u64) -> ExportLogsServiceRequest {
    let resource_logs = events
        .iter()
        .map(|e| ResourceLogs {
            resource: Some(Resource {
                attributes: e.resource.attributes.clone(),
                ..Default::default()
            }),
            scope_logs: vec![ScopeLogs {
                scope: Some(InstrumentationScope {
                    name: SCOPE.to_owned(),
                    version: env!("CARGO_PKG_VERSION").to_owned(),
                    ..Default::default()
                }),
                log_records: vec![log_record(&e.resource, &e.event, observed_ns)],
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        })
        .collect();
    ExportLogsServiceRequest { resource_logs }
}

fn log_record(resource: &ResourceInfo, ev: &LeakEvent, observed_ns: u64) -> LogRecord {
    let (severity, text) = match ev.kind {
        LeakEventKind::Suspected => (SeverityNumber::Warn, "WARN"),
        LeakEventKind::Confirmed => (SeverityNumber::Error, "ERROR"),
        LeakEventKind::Resolved => (SeverityNumber::Info, "INFO"),
    };
    let mut attributes = vec![
        kv("event.name", string(ev.kind.event_name())),
        kv("leak.metric", string(&ev.metric)),
        kv(
            "leak.signals",
            any_value::Value::ArrayValue(ArrayValue {
                values: ev
                    .signals
                    .iter()
                    .map(|s| AnyValue {
                        value: Some(string(s)),
                    })
                    .collect(),
            }),
        ),
        kv(
            "leak.growth_bytes_per_hour",
            any_value::Value::DoubleValue(ev.growth_bytes_per_hour),
        ),
        kv(
            "leak.r_squared",
            any_value::Value::DoubleValue(ev.r_squared),
        ),
        kv(
            "leak.window_seconds",
            any_value::Value::DoubleValue(ev.window_seconds),
        ),
    ];
    if let Some(ttl) = ev.time_to_limit_seconds {
        attributes.push(kv(
            "leak.time_to_limit_seconds",
            any_value::Value::DoubleValue(ttl),
        ));
    }
    if let Some(limit) = ev.limit_bytes {
        attributes.push(kv("leak.limit_bytes", any_value::Value::DoubleValue(limit)));
    }
    LogRecord {
        time_unix_nano: ev.t_ns,
        observed_time_unix_nano: observed_ns,
        severity_number: severity as i32,
        severity_text: text.to_owned(),
        body: Some(AnyValue {
            value: Some(string(&sentence(resource, ev))),
        }),
        attributes,
        event_name: ev.kind.event_name().to_owned(),
        ..Default::default()
    }
}

/// One human sentence, e.g. "heap floor of checkout-api (pod-7) grows
/// 2.1 MiB/h (R² 0.96 over 6 h); 512 MiB limit in about 14 h".
pub fn sentence(resource: &ResourceInfo, ev: &LeakEvent) -> String {
    let who = resource.display_name();
    match ev.kind {
        LeakEventKind::Resolved => format!("{} of {who} no longer grows: leak resolved", ev.metric),
        LeakEventKind::Suspected | LeakEventKind::Confirmed => {
            let verdict = if ev.kind == LeakEventKind::Confirmed {
                "leak confirmed"
            } else {
                "leak suspected"
            };
            let mut s = format!(
                "{} of {who} grows {}/h (R² {:.2} over {}); {verdict}",
                ev.metric,
                human_bytes(ev.growth_bytes_per_hour),
                ev.r_squared,
                human_duration(ev.window_seconds)
            );
            if let (Some(limit), Some(ttl)) = (ev.limit_bytes, ev.time_to_limit_seconds) {
                s.push_str(&format!(
                    "; {} limit in about {}",
                    human_bytes(limit),
                    human_duration(ttl)
                ));
            }
            s
        }
    }
}

/// Bytes in binary units with one decimal: `2.1 MiB`.
pub fn human_bytes(b: f64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b;
    let mut i = 0;
    while v.abs() >= 1024.0 && i + 1 < units.len() {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{v:.0} B")
    } else {
        format!("{v:.1} {}", units[i])
    }
}

/// Seconds as `45 s`, `12 min`, `6 h`, `2.5 d`.
pub fn human_duration(secs: f64) -> String {
    if secs < 120.0 {
        format!("{secs:.0} s")
    } else if secs < 7200.0 {
        format!("{:.0} min", secs / 60.0)
    } else if secs < 172_800.0 {
        let h = secs / 3600.0;
        if (h - h.round()).abs() < 0.05 {
            format!("{h:.0} h")
        } else {
            format!("{h:.1} h")
        }
    } else {
        format!("{:.1} d", secs / 86400.0)
    }
}

fn gauge(name: &str, unit: &str, description: &str, t_ns: u64, value: f64) -> Metric {
    Metric {
        name: name.to_owned(),
        description: description.to_owned(),
        unit: unit.to_owned(),
        data: Some(metric::Data::Gauge(Gauge {
            data_points: vec![NumberDataPoint {
                time_unix_nano: t_ns,
                value: Some(number_data_point::Value::AsDouble(value)),
                ..Default::default()
            }],
        })),
        ..Default::default()
    }
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
            ResourceMetrics {
                resource: Some(Resource {
                    attributes: view.resource.attributes.clone(),
                    ..Default::default()
                }),
                scope_metrics: vec![ScopeMetrics {
                    scope: Some(InstrumentationScope {
                        name: SCOPE.to_owned(),
                        version: env!("CARGO_PKG_VERSION").to_owned(),
                        ..Default::default()
                    }),
                    metrics,
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_units() {
        assert_eq!(human_bytes(2.1 * 1024.0 * 1024.0), "2.1 MiB");
        assert_eq!(human_bytes(512.0 * 1024.0 * 1024.0), "512.0 MiB");
        assert_eq!(human_bytes(10.0), "10 B");
        assert_eq!(human_duration(6.0 * 3600.0), "6 h");
        assert_eq!(human_duration(90.0), "90 s");
        assert_eq!(human_duration(14.0 * 3600.0 + 900.0), "14.2 h");
    }
}
