//! The OTLP-logs outlet: each batch of leak events becomes one
//! `ExportLogsServiceRequest` (one `ResourceLogs` per event, in the event
//! contract of [`crate::notify`]) sent downstream through the export queue.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures_util::future::BoxFuture;
use prost::Message;
use tracing::warn;

use super::identity::incident_id;
use super::words::sentence;
use super::{Batch, Outlet, SCOPE};
use crate::detector::{LeakEvent, LeakEventKind};
use crate::engine::{EngineEvent, ResourceInfo};
use crate::exporter::ExportQueue;
use crate::ops::telemetry::{ExportOutcome, OutletKind, Telemetry};
use crate::otlp::build::{kv_double, kv_value, resource, scope, string};
use crate::otlp::proto::otlp::collector::logs::v1::ExportLogsServiceRequest;
use crate::otlp::proto::otlp::common::v1::{any_value, AnyValue, ArrayValue};
use crate::otlp::proto::otlp::logs::v1::{LogRecord, ResourceLogs, ScopeLogs, SeverityNumber};
use crate::otlp::signal::Signal;

/// Sends leak events downstream as OTLP log records.
pub struct OtlpLogs {
    queue: ExportQueue,
    telemetry: Arc<Telemetry>,
}

impl OtlpLogs {
    pub fn new(queue: ExportQueue, telemetry: Arc<Telemetry>) -> Self {
        OtlpLogs { queue, telemetry }
    }
}

impl Outlet for OtlpLogs {
    fn kind(&self) -> OutletKind {
        OutletKind::OtlpLogs
    }

    fn deliver<'a>(&'a mut self, batch: &'a Batch) -> BoxFuture<'a, ()> {
        let body = Bytes::from(log_request(batch, now_ns()).encode_to_vec());
        if let Err(e) = self.queue.try_enqueue(Signal::Logs, body) {
            // Not silent: counted as a dropped export and logged.
            self.telemetry.export(Signal::Logs, ExportOutcome::Dropped);
            warn!(error = %e, events = batch.len(), "Could not queue leak events for the downstream.");
        }
        Box::pin(std::future::ready(()))
    }
}

/// Wall clock, for `observed_time_unix_nano` only.
fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// The OTLP log records of `events`, one `ResourceLogs` per event.
pub fn log_request(events: &[EngineEvent], observed_ns: u64) -> ExportLogsServiceRequest {
    let resource_logs = events
        .iter()
        .map(|e| ResourceLogs {
            resource: Some(resource(e.resource.attributes.clone())),
            scope_logs: vec![ScopeLogs {
                scope: Some(scope(SCOPE, env!("CARGO_PKG_VERSION"))),
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
        kv_value("event.name", string(ev.kind.event_name())),
        kv_value(
            "leak.incident_id",
            string(&incident_id(resource, ev.incident_start_ns)),
        ),
        kv_value("leak.metric", string(&ev.metric)),
        kv_value(
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
        kv_double("leak.growth_bytes_per_hour", ev.growth_bytes_per_hour),
        kv_double("leak.r_squared", ev.r_squared),
        kv_double("leak.window_seconds", ev.window_seconds),
    ];
    if let Some(ttl) = ev.time_to_limit_seconds {
        attributes.push(kv_double("leak.time_to_limit_seconds", ttl));
    }
    if let Some(source) = ev.limit_source {
        attributes.push(kv_value("leak.limit_source", string(source.as_str())));
    }
    if let Some(component) = &ev.component {
        attributes.push(kv_value("leak.component", string(component)));
    }
    if let Some(step) = ev.next_step {
        attributes.push(kv_value("leak.next_step", string(step)));
    }
    if let Some(resolution) = ev.resolution {
        attributes.push(kv_value("leak.resolution", string(resolution.as_str())));
    }
    if let Some(limit) = ev.limit_bytes {
        attributes.push(kv_double("leak.limit_bytes", limit));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detector::Resolution;

    fn event(kind: LeakEventKind, resolution: Option<Resolution>) -> EngineEvent {
        EngineEvent {
            resource: Arc::new(ResourceInfo {
                key: 1,
                service_name: "checkout".into(),
                instance: "pod-1".into(),
                attributes: vec![crate::otlp::build::kv("service.name", "checkout")],
                pod: None,
            }),
            event: LeakEvent {
                kind,
                t_ns: 42,
                incident_start_ns: 40,
                metric: "v8js.memory.heap.used".into(),
                signals: vec!["memory"],
                growth_bytes_per_hour: 2e6,
                r_squared: 0.9,
                window_seconds: 3600.0,
                time_to_limit_seconds: None,
                limit_bytes: None,
                resolution,
                limit_source: None,
                component: Some("v8js.heap.space.name=old_space".into()),
                next_step: crate::detector::resource::next_step("v8js.memory.heap.used", false),
            },
        }
    }

    fn resolution_of(e: &EngineEvent) -> Option<String> {
        let request = log_request(std::slice::from_ref(e), 1);
        let record = &request.resource_logs[0].scope_logs[0].log_records[0];
        record
            .attributes
            .iter()
            .find(|a| a.key == "leak.resolution")
            .and_then(|a| match a.value.as_ref()?.value.as_ref()? {
                any_value::Value::StringValue(s) => Some(s.clone()),
                _ => None,
            })
    }

    fn attribute(e: &EngineEvent, key: &str) -> Option<String> {
        let request = log_request(std::slice::from_ref(e), 1);
        let record = &request.resource_logs[0].scope_logs[0].log_records[0];
        record
            .attributes
            .iter()
            .find(|a| a.key == key)
            .and_then(|a| match a.value.as_ref()?.value.as_ref()? {
                any_value::Value::StringValue(s) => Some(s.clone()),
                _ => None,
            })
    }

    #[test]
    fn events_say_what_leaks_and_what_to_do_next() {
        let e = event(LeakEventKind::Confirmed, None);
        assert_eq!(
            attribute(&e, "leak.component").as_deref(),
            Some("v8js.heap.space.name=old_space")
        );
        assert!(attribute(&e, "leak.next_step").is_some_and(|s| s.contains("heap snapshot")));
        let body = sentence(&e.resource, &e.event);
        assert!(
            body.starts_with("v8js.memory.heap.used{v8js.heap.space.name=old_space} of checkout"),
            "{body}"
        );
    }

    #[test]
    fn every_event_of_an_incident_has_its_id() {
        let ids: Vec<_> = [
            event(LeakEventKind::Suspected, None),
            event(LeakEventKind::Confirmed, None),
            event(LeakEventKind::Resolved, Some(Resolution::Flat)),
        ]
        .iter()
        .map(|e| attribute(e, "leak.incident_id").expect("has an id"))
        .collect();
        assert_eq!(
            ids[0],
            incident_id(&event(LeakEventKind::Suspected, None).resource, 40)
        );
        assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
        let mut next = event(LeakEventKind::Suspected, None);
        next.event.incident_start_ns = 41;
        assert_ne!(attribute(&next, "leak.incident_id").as_ref(), Some(&ids[0]));
    }

    #[test]
    fn resolved_events_say_why() {
        let gone = event(LeakEventKind::Resolved, Some(Resolution::ProcessGone));
        assert_eq!(resolution_of(&gone).as_deref(), Some("process_gone"));
        assert!(sentence(&gone.resource, &gone.event).contains("process gone"));
        let flat = event(LeakEventKind::Resolved, Some(Resolution::Flat));
        assert_eq!(resolution_of(&flat).as_deref(), Some("flat"));
        assert!(sentence(&flat.resource, &flat.event).contains("no longer grows"));
        assert_eq!(resolution_of(&event(LeakEventKind::Suspected, None)), None);
    }
}
