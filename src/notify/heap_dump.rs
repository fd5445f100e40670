//! The heap-dump outlet: the seed's next step once a leak is confirmed. On
//! `confirmed`, the first `notify.heap_dump` rule whose `match` fits the
//! resource is called once — at most once per process per `min_interval` —
//! and the outcome (status, the response body's first KiB) is kept for the
//! incident API and sent downstream as a `memory.leak.heap_dump` log record.
//!
//! Only the configured URLs are called. A template substitutes resource
//! attributes, percent-encoded, in the path and query; the scheme, port and
//! host are the template's own, except a host that is exactly one
//! placeholder (`http://{host.name}:3000/…`), whose value must then be a
//! plain host name or IPv4 address (no `@`, `/`, `:`, …), so no value can
//! turn the URL into one for another host.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures_util::future::BoxFuture;
use percent_encoding::utf8_percent_encode;
use prost::Message;
use serde::Serialize;
use tokio::time::Instant;
use tracing::{info, warn};

use super::identity::{attribute, COMPONENT};
use super::{Batch, Outlet, SCOPE};
use crate::config::notify::{HeapDumpMethod, HeapDumpRule};
use crate::detector::LeakEventKind;
use crate::engine::table::ResourceKey;
use crate::engine::ResourceInfo;
use crate::exporter::ExportQueue;
use crate::ops::telemetry::{ExportOutcome, NotifyOutcome, OutletKind, Telemetry};
use crate::otlp::build::{kv_value as kv, string};
use crate::otlp::proto::otlp::collector::logs::v1::ExportLogsServiceRequest;
use crate::otlp::proto::otlp::common::v1::{any_value, AnyValue, InstrumentationScope};
use crate::otlp::proto::otlp::logs::v1::{LogRecord, ResourceLogs, ScopeLogs, SeverityNumber};
use crate::otlp::proto::otlp::resource::v1::Resource;
use crate::otlp::signal::Signal;

/// Bytes of the response body kept.
pub const BODY_KEPT: usize = 1024;
/// Processes remembered (outcomes and last-dump times).
const MAX_REMEMBERED: usize = 10_000;

pub use crate::config::url_template::UrlTemplate;
use crate::config::url_template::{plain_host, Piece};

impl UrlTemplate {
    /// The URL for `resource`, or why there is none.
    pub fn render(&self, resource: &ResourceInfo) -> Result<String, String> {
        let value = |name: &str| {
            attribute(resource, name).ok_or_else(|| format!("the resource has no attribute {name}"))
        };
        let host = match &self.host {
            Piece::Text(h) => h.clone(),
            Piece::Attribute(a) => {
                let h = value(a)?;
                if !plain_host(&h) {
                    return Err(format!("{a} = {h:?} is not a plain host name"));
                }
                h
            }
        };
        let mut url = format!("{}://{host}{}", self.scheme, self.port);
        for p in &self.rest {
            match p {
                Piece::Text(t) => url.push_str(t),
                Piece::Attribute(a) => url.extend(utf8_percent_encode(&value(a)?, COMPONENT)),
            }
        }
        Ok(url)
    }
}

/// The outcome of one heap-dump call, as the incident API shows it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct HeapDumpRecord {
    /// Wall time of the call.
    pub time_unix_nano: u64,
    pub url: String,
    pub method: &'static str,
    /// HTTP status, when there was a response.
    pub status: Option<u16>,
    /// The response body's first KiB (lossy UTF-8).
    pub body: String,
    /// Why there is no 2xx response.
    pub error: Option<String>,
}

/// The latest heap-dump outcome of every process (bounded), shared with the admin API.
#[derive(Default)]
pub struct HeapDumps(Mutex<HashMap<ResourceKey, HeapDumpRecord>>);

impl HeapDumps {
    pub fn get(&self, key: ResourceKey) -> Option<HeapDumpRecord> {
        self.0.lock().ok()?.get(&key).cloned()
    }

    fn put(&self, key: ResourceKey, record: HeapDumpRecord) {
        if let Ok(mut m) = self.0.lock() {
            if m.len() >= MAX_REMEMBERED && !m.contains_key(&key) {
                if let Some(oldest) = m
                    .iter()
                    .min_by_key(|(_, r)| r.time_unix_nano)
                    .map(|(k, _)| *k)
                {
                    m.remove(&oldest);
                }
            }
            m.insert(key, record);
        }
    }
}

struct Rule {
    matches: BTreeMap<String, String>,
    template: UrlTemplate,
    method: HeapDumpMethod,
    min_interval: Duration,
    client: reqwest::Client,
}

/// Calls heap-dump endpoints on confirmation.
pub struct HeapDump {
    rules: Vec<Rule>,
    last: HashMap<ResourceKey, Instant>,
    records: Arc<HeapDumps>,
    queue: Option<ExportQueue>,
    telemetry: Arc<Telemetry>,
}

impl HeapDump {
    /// Rules whose template does not parse are skipped (the configuration refuses them).
    pub fn new(
        rules: &[HeapDumpRule],
        records: Arc<HeapDumps>,
        queue: Option<ExportQueue>,
        telemetry: Arc<Telemetry>,
    ) -> Result<Self, crate::ops::outbound::ClientError> {
        let mut out = Vec::new();
        for r in rules {
            let Ok(template) = UrlTemplate::parse(&r.url) else {
                continue;
            };
            out.push(Rule {
                matches: r.matches.clone(),
                template,
                method: r.method,
                min_interval: r.min_interval,
                client: crate::ops::outbound::client(r.timeout)?,
            });
        }
        Ok(HeapDump {
            rules: out,
            last: HashMap::new(),
            records,
            queue,
            telemetry,
        })
    }

    async fn dump(&mut self, resource: &ResourceInfo) {
        let Some(rule) = self.rules.iter().find(|r| {
            r.matches
                .iter()
                .all(|(k, v)| attribute(resource, k).as_deref() == Some(v.as_str()))
        }) else {
            return;
        };
        let now = Instant::now();
        if self
            .last
            .get(&resource.key)
            .is_some_and(|t| now.duration_since(*t) < rule.min_interval)
        {
            info!(service = %resource.service_name, instance = %resource.instance, "Heap dump skipped: one was taken within min_interval.");
            return;
        }
        if self.last.len() >= MAX_REMEMBERED {
            let longest = self
                .rules
                .iter()
                .map(|r| r.min_interval)
                .max()
                .unwrap_or_default();
            self.last.retain(|_, t| now.duration_since(*t) < longest);
        }
        self.last.insert(resource.key, now);
        let method = match rule.method {
            HeapDumpMethod::Get => "GET",
            HeapDumpMethod::Post => "POST",
        };
        let mut record = HeapDumpRecord {
            time_unix_nano: unix_ns(),
            url: String::new(),
            method,
            status: None,
            body: String::new(),
            error: None,
        };
        match rule.template.render(resource) {
            Err(e) => record.error = Some(e),
            Ok(url) => {
                record.url = url.clone();
                let request = match rule.method {
                    HeapDumpMethod::Get => rule.client.get(&url),
                    HeapDumpMethod::Post => rule.client.post(&url),
                };
                match request.send().await {
                    Err(e) => record.error = Some(e.to_string()),
                    Ok(mut response) => {
                        record.status = Some(response.status().as_u16());
                        let mut kept = Vec::new();
                        while kept.len() < BODY_KEPT {
                            match response.chunk().await {
                                Ok(Some(c)) => kept.extend_from_slice(&c),
                                Ok(None) => break,
                                Err(e) => {
                                    record.error = Some(e.to_string());
                                    break;
                                }
                            }
                        }
                        kept.truncate(BODY_KEPT);
                        record.body = String::from_utf8_lossy(&kept).into_owned();
                        if !response.status().is_success() && record.error.is_none() {
                            record.error = Some(format!("HTTP {}", response.status()));
                        }
                    }
                }
            }
        }
        let outcome = match record.status {
            Some(s) => NotifyOutcome::of_status(s),
            None => NotifyOutcome::Error,
        };
        if !record.url.is_empty() {
            // A request was made (a template that cannot be filled in makes none).
            self.telemetry.notify_request(OutletKind::HeapDump, outcome);
        }
        match &record.error {
            None => {
                info!(service = %resource.service_name, instance = %resource.instance, url = %record.url, status = record.status, "Heap dump taken.")
            }
            Some(e) => {
                warn!(service = %resource.service_name, instance = %resource.instance, url = %record.url, error = %e, "Heap dump failed.")
            }
        }
        if let Some(queue) = &self.queue {
            let body = Bytes::from(heap_dump_log(resource, &record).encode_to_vec());
            if queue.try_enqueue(Signal::Logs, body).is_err() {
                self.telemetry.export(Signal::Logs, ExportOutcome::Dropped);
            }
        }
        self.records.put(resource.key, record);
    }
}

impl Outlet for HeapDump {
    fn kind(&self) -> OutletKind {
        OutletKind::HeapDump
    }

    fn deliver<'a>(&'a mut self, batch: &'a Batch) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            for e in batch.iter() {
                if e.event.kind == LeakEventKind::Confirmed {
                    self.dump(&e.resource).await;
                }
            }
        })
    }
}

fn unix_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// The follow-up log record `memory.leak.heap_dump` of one call.
pub fn heap_dump_log(resource: &ResourceInfo, r: &HeapDumpRecord) -> ExportLogsServiceRequest {
    let mut attributes = vec![
        kv("event.name", string("memory.leak.heap_dump")),
        kv("heap_dump.url", string(&r.url)),
        kv("heap_dump.method", string(r.method)),
        kv("heap_dump.response", string(&r.body)),
    ];
    if let Some(s) = r.status {
        attributes.push(kv("heap_dump.status", any_value::Value::IntValue(s.into())));
    }
    if let Some(e) = &r.error {
        attributes.push(kv("heap_dump.error", string(e)));
    }
    let (severity, text, body) = match &r.error {
        None => (
            SeverityNumber::Info,
            "INFO",
            format!("heap dump of {} taken: {}", resource.display_name(), r.body),
        ),
        Some(e) => (
            SeverityNumber::Warn,
            "WARN",
            format!("heap dump of {} failed: {e}", resource.display_name()),
        ),
    };
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes: resource.attributes.clone(),
                ..Default::default()
            }),
            scope_logs: vec![ScopeLogs {
                scope: Some(InstrumentationScope {
                    name: SCOPE.to_owned(),
                    version: env!("CARGO_PKG_VERSION").to_owned(),
                    ..Default::default()
                }),
                log_records: vec![LogRecord {
                    time_unix_nano: r.time_unix_nano,
                    observed_time_unix_nano: r.time_unix_nano,
                    severity_number: severity as i32,
                    severity_text: text.to_owned(),
                    body: Some(AnyValue {
                        value: Some(string(&body)),
                    }),
                    attributes,
                    event_name: "memory.leak.heap_dump".to_owned(),
                    ..Default::default()
                }],
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::identity::tests::resource;

    #[test]
    fn attributes_are_substituted_percent_encoded() {
        let t = UrlTemplate::parse("http://{host.name}:3000/debug/heapdump?svc={service.name}")
            .expect("valid");
        let r = resource(&[
            ("service.name", "a b&c=d/../x"),
            ("host.name", "node-7.local"),
        ]);
        assert_eq!(
            t.render(&r).expect("url"),
            "http://node-7.local:3000/debug/heapdump?svc=a%20b%26c%3Dd%2F..%2Fx"
        );
    }

    #[test]
    fn a_value_cannot_change_the_host() {
        let t = UrlTemplate::parse("http://127.0.0.1:3000/{service.name}").expect("valid");
        let r = resource(&[("service.name", "@evil.example/x"), ("host.name", "h")]);
        assert_eq!(
            t.render(&r).expect("url"),
            "http://127.0.0.1:3000/%40evil.example%2Fx"
        );
        let t = UrlTemplate::parse("http://{host.name}:3000/x").expect("valid");
        for bad in [
            "evil.example@127.0.0.1",
            "a/b",
            "a:80",
            "",
            "-x",
            "[::1]",
            "a b",
        ] {
            let r = resource(&[("service.name", "s"), ("host.name", bad)]);
            assert!(t.render(&r).is_err(), "{bad:?} should be refused");
        }
        let missing = resource(&[("service.name", "s")]);
        assert!(t
            .render(&missing)
            .expect_err("no host.name")
            .contains("host.name"));
    }

    #[test]
    fn templates_that_could_name_another_host_are_refused() {
        for bad in [
            "http://{host.name}.evil.example/x",
            "http://evil{x}/",
            "http://{user}@127.0.0.1/",
            "http://127.0.0.1:{port}/",
            "ftp://127.0.0.1/",
            "{scheme}://127.0.0.1/",
            "http://127.0.0.1/{oops",
            "http:///x",
        ] {
            assert!(UrlTemplate::parse(bad).is_err(), "{bad} should be refused");
        }
        assert!(UrlTemplate::parse("https://dumps.internal/x/{service.name}").is_ok());
    }

    fn confirmed(key: u64, attrs: &[(&str, &str)]) -> crate::engine::EngineEvent {
        let mut r = resource(attrs);
        r.key = key;
        crate::engine::EngineEvent {
            resource: Arc::new(r),
            event: crate::detector::LeakEvent {
                kind: LeakEventKind::Confirmed,
                t_ns: 1,
                incident_start_ns: 1,
                metric: "v8js.memory.heap.used".into(),
                signals: vec!["memory"],
                growth_bytes_per_hour: 1e9,
                r_squared: 0.9,
                window_seconds: 60.0,
                time_to_limit_seconds: None,
                limit_bytes: None,
                limit_source: None,
                resolution: None,
                component: None,
                next_step: None,
            },
        }
    }

    #[tokio::test]
    async fn one_call_per_process_within_min_interval_and_only_for_matching_rules() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let hits = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&hits);
        let app = axum::Router::new().route(
            "/debug/heapdump",
            axum::routing::get(move || {
                let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
                async move { format!("{{\"file\":\"/tmp/{n}.heapsnapshot\",\"size\":{n}}}") }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, app).await });
        let rule = |service: &str, url: String| HeapDumpRule {
            matches: [("service.name".to_owned(), service.to_owned())].into(),
            url,
            method: HeapDumpMethod::Get,
            timeout: Duration::from_secs(5),
            min_interval: Duration::from_secs(3600),
        };
        let records = Arc::new(HeapDumps::default());
        let telemetry = Arc::new(Telemetry::new());
        let mut outlet = HeapDump::new(
            &[
                rule(
                    "checkout",
                    format!("http://{addr}/debug/heapdump?i={{service.instance.id}}"),
                ),
                rule(
                    "billing",
                    format!("http://{addr}/debug/heapdump?h={{host.name}}"),
                ),
            ],
            Arc::clone(&records),
            None,
            Arc::clone(&telemetry),
        )
        .expect("outlet");
        let pod1 = [
            ("service.name", "checkout"),
            ("service.instance.id", "pod 1"),
        ];
        let batch = |e: Vec<crate::engine::EngineEvent>| -> Batch { Arc::from(e) };
        outlet.deliver(&batch(vec![confirmed(1, &pod1)])).await;
        // Confirmed again (a new incident of the same process) within min_interval: no call.
        outlet.deliver(&batch(vec![confirmed(1, &pod1)])).await;
        // Another process: a call. A service no rule matches: none.
        outlet
            .deliver(&batch(vec![
                confirmed(
                    2,
                    &[
                        ("service.name", "checkout"),
                        ("service.instance.id", "pod-2"),
                    ],
                ),
                confirmed(3, &[("service.name", "catalog")]),
            ]))
            .await;
        // A rule whose attribute the resource lacks: recorded as an error, nothing called.
        outlet
            .deliver(&batch(vec![confirmed(4, &[("service.name", "billing")])]))
            .await;
        assert_eq!(hits.load(Ordering::SeqCst), 2);
        let r1 = records.get(1).expect("recorded");
        assert_eq!(r1.status, Some(200));
        assert_eq!(r1.url, format!("http://{addr}/debug/heapdump?i=pod%201"));
        assert_eq!(r1.body, r#"{"file":"/tmp/1.heapsnapshot","size":1}"#);
        assert!(records.get(3).is_none());
        let r4 = records.get(4).expect("recorded");
        assert!(
            r4.status.is_none() && r4.error.as_deref().is_some_and(|e| e.contains("host.name"))
        );
        assert_eq!(
            telemetry.notify_requests(OutletKind::HeapDump, NotifyOutcome::Success),
            2
        );
        assert_eq!(
            telemetry.notify_requests(OutletKind::HeapDump, NotifyOutcome::Error),
            0
        );
    }
}
