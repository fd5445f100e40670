//! The webhook outlet: every lifecycle event POSTed as one JSON object with
//! the fields of the OTLP event (see the contract in [`crate::notify`]),
//! retried with backoff a bounded number of times, then dropped and counted.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use serde_json::{json, Map, Value};
use tracing::{info, warn};

use super::identity::incident_id;
use super::words::sentence;
use super::{Batch, Outlet};
use crate::detector::LeakEventKind;
use crate::engine::EngineEvent;
use crate::ops::telemetry::{NotifyOutcome, OutletKind, Telemetry};
use crate::otlp::proto::otlp::common::v1::{any_value, AnyValue};
use crate::secret::Secret;

/// Attempts per event before it is dropped.
const ATTEMPTS: u32 = 4;
const FIRST_RETRY_DELAY: Duration = Duration::from_millis(200);

/// POSTs lifecycle events to a URL.
pub struct Webhook {
    client: reqwest::Client,
    url: String,
    headers: http::HeaderMap,
    telemetry: Arc<Telemetry>,
    failing: bool,
}

impl Webhook {
    /// `headers` were checked by the configuration; invalid ones are skipped.
    pub fn new(
        url: &str,
        headers: &BTreeMap<String, Secret>,
        client: reqwest::Client,
        telemetry: Arc<Telemetry>,
    ) -> Self {
        let headers = headers
            .iter()
            .filter_map(|(k, v)| {
                Some((
                    http::HeaderName::try_from(k.as_str()).ok()?,
                    http::HeaderValue::try_from(v.expose()).ok()?,
                ))
            })
            .collect();
        Webhook {
            client,
            url: url.to_owned(),
            headers,
            telemetry,
            failing: false,
        }
    }

    async fn post(&mut self, body: &Value) {
        let mut delay = FIRST_RETRY_DELAY;
        for attempt in 1..=ATTEMPTS {
            let result = self
                .client
                .post(&self.url)
                .headers(self.headers.clone())
                .json(body)
                .send()
                .await;
            let (outcome, why) = match result {
                Ok(r) => (
                    NotifyOutcome::of_status(r.status().as_u16()),
                    format!("HTTP {}", r.status()),
                ),
                Err(e) => (NotifyOutcome::Error, e.to_string()),
            };
            self.telemetry.notify_request(OutletKind::Webhook, outcome);
            match outcome {
                NotifyOutcome::Success => {
                    if self.failing {
                        self.failing = false;
                        info!(url = %self.url, "Webhook reachable again.");
                    }
                    return;
                }
                _ if !self.failing => {
                    self.failing = true;
                    warn!(url = %self.url, error = %why, "Webhook did not take a leak event; retrying with backoff while it fails (logged once).");
                }
                _ => {}
            }
            if outcome == NotifyOutcome::Rejected || attempt == ATTEMPTS {
                self.telemetry.notify_dropped(OutletKind::Webhook);
                return;
            }
            tokio::time::sleep(delay).await;
            delay *= 2;
        }
    }
}

impl Outlet for Webhook {
    fn kind(&self) -> OutletKind {
        OutletKind::Webhook
    }

    fn deliver<'a>(&'a mut self, batch: &'a Batch) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            for e in batch.iter() {
                self.post(&event_json(e)).await;
            }
        })
    }
}

fn any_json(v: &AnyValue) -> Value {
    match v.value.as_ref() {
        Some(any_value::Value::StringValue(s)) => json!(s),
        Some(any_value::Value::BoolValue(b)) => json!(b),
        Some(any_value::Value::IntValue(i)) => json!(i),
        Some(any_value::Value::DoubleValue(d)) => json!(d),
        Some(any_value::Value::ArrayValue(a)) => {
            Value::Array(a.values.iter().map(any_json).collect())
        }
        Some(any_value::Value::KvlistValue(l)) => Value::Object(
            l.values
                .iter()
                .map(|kv| {
                    (
                        kv.key.clone(),
                        kv.value.as_ref().map_or(Value::Null, any_json),
                    )
                })
                .collect(),
        ),
        Some(any_value::Value::BytesValue(b)) => {
            json!(b.iter().map(|x| format!("{x:02x}")).collect::<String>())
        }
        _ => Value::Null,
    }
}

/// One event as the webhook's JSON: `event.name`, `severity_text`, `time_unix_nano`,
/// `resource` (every attribute), `attributes` (the `leak.*` fields) and `body`.
pub fn event_json(e: &EngineEvent) -> Value {
    let ev = &e.event;
    let severity = match ev.kind {
        LeakEventKind::Suspected => "WARN",
        LeakEventKind::Confirmed => "ERROR",
        LeakEventKind::Resolved => "INFO",
    };
    let resource: Map<String, Value> = e
        .resource
        .attributes
        .iter()
        .map(|kv| {
            (
                kv.key.clone(),
                kv.value.as_ref().map_or(Value::Null, any_json),
            )
        })
        .collect();
    let mut attributes = Map::new();
    attributes.insert("event.name".into(), json!(ev.kind.event_name()));
    attributes.insert(
        "leak.incident_id".into(),
        json!(incident_id(&e.resource, ev.incident_start_ns)),
    );
    attributes.insert("leak.metric".into(), json!(ev.metric));
    attributes.insert("leak.signals".into(), json!(ev.signals));
    attributes.insert(
        "leak.growth_bytes_per_hour".into(),
        json!(ev.growth_bytes_per_hour),
    );
    attributes.insert("leak.r_squared".into(), json!(ev.r_squared));
    attributes.insert("leak.window_seconds".into(), json!(ev.window_seconds));
    if let Some(t) = ev.time_to_limit_seconds {
        attributes.insert("leak.time_to_limit_seconds".into(), json!(t));
    }
    if let Some(l) = ev.limit_bytes {
        attributes.insert("leak.limit_bytes".into(), json!(l));
    }
    if let Some(source) = ev.limit_source {
        attributes.insert("leak.limit_source".into(), json!(source.as_str()));
    }
    if let Some(c) = &ev.component {
        attributes.insert("leak.component".into(), json!(c));
    }
    if let Some(step) = ev.next_step {
        attributes.insert("leak.next_step".into(), json!(step));
    }
    if let Some(r) = ev.resolution {
        attributes.insert("leak.resolution".into(), json!(r.as_str()));
    }
    json!({
        "event_name": ev.kind.event_name(),
        "severity_text": severity,
        "time_unix_nano": ev.t_ns,
        "resource": resource,
        "attributes": attributes,
        "body": sentence(&e.resource, ev),
    })
}
