//! The Alertmanager outlet: open incidents become the seed's two alerts,
//! `MemoryLeakSuspected` (warning, while suspected or confirmed) and
//! `MemoryLeakConfirmed` (critical, while confirmed), POSTed to
//! `<url>/api/v2/alerts`.
//!
//! The outlet keeps its own bounded map of open incidents, built from the
//! event stream and reconciled with the engine's state at start (a restored
//! checkpoint) and before every resend (a batch its full backlog dropped). Every
//! change is sent at once; every open alert is re-sent each
//! `resend_interval` and valid for four of them (as Prometheus does), so
//! Alertmanager resolves it by itself if leakwatch goes away. An incident's
//! alerts end (`endsAt`) at resolution — including the engine's resolution of
//! a process gone (no data for `series.idle_timeout`, `leak.resolution =
//! process_gone`). A failed request is retried
//! with backoff by re-sending the whole map — so nothing is lost while
//! Alertmanager is down, and nothing queues up but the map itself; during
//! the backoff, batches only update the map. One WARN per failure burst.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::future::BoxFuture;
use serde::Serialize;
use tokio::time::Instant;
use tracing::{info, warn};

use super::identity::{incident_id, page_url, process_labels};
use super::words::{human_duration, sentence};
use super::{Batch, Outlet};
use crate::config::notify::AlertmanagerConfig;
use crate::detector::{LeakEvent, LeakEventKind, LeakState};
use crate::engine::table::ResourceKey;
use crate::engine::{Engine, ResourceInfo, ResourceView};
use crate::ops::telemetry::{NotifyOutcome, OutletKind, Telemetry};

/// Open incidents the outlet keeps at most; beyond, new ones are not alerted (logged).
pub const MAX_INCIDENTS: usize = 10_000;
/// Alerts per POST.
const MAX_ALERTS_PER_REQUEST: usize = 500;
/// First retry delay; it doubles up to [`MAX_RETRY_DELAY`] (and never beyond the resend interval).
const FIRST_RETRY_DELAY: Duration = Duration::from_millis(250);
const MAX_RETRY_DELAY: Duration = Duration::from_secs(30);

pub const SUSPECTED: &str = "MemoryLeakSuspected";
pub const CONFIRMED: &str = "MemoryLeakConfirmed";

/// One alert in Alertmanager's API v2 (`postableAlert`).
#[derive(Debug, Serialize, PartialEq)]
pub struct Alert {
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    #[serde(rename = "startsAt")]
    pub starts_at: String,
    #[serde(rename = "endsAt")]
    pub ends_at: String,
    #[serde(rename = "generatorURL", skip_serializing_if = "Option::is_none")]
    pub generator_url: Option<String>,
}

/// What the outlet remembers of one process's incident.
#[derive(Debug, Clone)]
struct Incident {
    resource: Arc<ResourceInfo>,
    /// Event time the incident opened (start of the warning, and of its `incident_id`).
    suspected_ns: u64,
    /// Event time it was confirmed (start of the critical alert).
    confirmed_ns: Option<u64>,
    /// The latest evidence (suspected or confirmed event).
    evidence: LeakEvent,
    /// When it ended (resolution, or the process gone); sent once, then forgotten.
    ended_ns: Option<u64>,
}

/// The settings the alerts are made from (shared by the outlet and [`alerts_of`]).
#[derive(Debug, Clone)]
pub struct AlertShape {
    pub external_url: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub runbook_url: Option<String>,
    /// How long a firing alert is valid without a resend.
    pub valid_for: Duration,
}

/// Sends alerts to Alertmanager.
pub struct Alertmanager {
    client: reqwest::Client,
    endpoint: String,
    resend_interval: Duration,
    shape: AlertShape,
    telemetry: Arc<Telemetry>,
    engine: Option<Arc<Engine>>,
    incidents: HashMap<ResourceKey, Incident>,
    next_resend: Instant,
    retry: Option<(Instant, Duration)>,
    failing: bool,
    rejecting: bool,
    full_warned: bool,
}

impl Alertmanager {
    /// An outlet posting to `url`'s `/api/v2/alerts`; with `engine`, it starts from the
    /// engine's open incidents (a restored checkpoint).
    pub fn new(
        url: &str,
        cfg: &AlertmanagerConfig,
        client: reqwest::Client,
        telemetry: Arc<Telemetry>,
        engine: Option<Arc<Engine>>,
    ) -> Self {
        let mut outlet = Alertmanager {
            client,
            endpoint: format!("{}/api/v2/alerts", url.trim_end_matches('/')),
            resend_interval: cfg.resend_interval,
            shape: AlertShape {
                external_url: cfg.external_url.clone(),
                labels: cfg.labels.clone(),
                runbook_url: cfg.runbook_url.clone(),
                valid_for: cfg.resend_interval * 4,
            },
            telemetry,
            engine,
            incidents: HashMap::new(),
            next_resend: Instant::now() + cfg.resend_interval,
            retry: None,
            failing: false,
            rejecting: false,
            full_warned: false,
        };
        outlet.reconcile();
        if !outlet.incidents.is_empty() {
            // Restored incidents are announced at once.
            outlet.retry = Some((Instant::now(), FIRST_RETRY_DELAY));
        }
        outlet
    }

    /// Brings the map in line with the engine: incidents the engine holds open but the map
    /// lacks are added (at start: a restored checkpoint; later: a batch this outlet's full
    /// backlog dropped), and open incidents of processes the engine holds as ok, or no longer
    /// tracks, end. So a lost batch costs at most one resend interval, never a stuck alert.
    fn reconcile(&mut self) {
        let Some(engine) = self.engine.clone() else {
            return;
        };
        let views: HashMap<ResourceKey, ResourceView> = engine
            .resource_views()
            .into_iter()
            .map(|v| (v.resource.key, v))
            .collect();
        let now = unix_ns(SystemTime::now());
        for (key, i) in self.incidents.iter_mut() {
            if i.ended_ns.is_some() {
                continue;
            }
            match views.get(key) {
                None => i.ended_ns = Some(now),
                Some(v) if v.state == LeakState::Ok => {
                    i.ended_ns = Some(v.summary.since_t_ns.max(i.suspected_ns))
                }
                Some(v) => {
                    if v.state == LeakState::Confirmed && i.confirmed_ns.is_none() {
                        i.confirmed_ns = Some(v.summary.since_t_ns);
                    }
                }
            }
        }
        for (key, view) in &views {
            if view.state == LeakState::Ok
                || self.incidents.contains_key(key)
                || self.incidents.len() >= MAX_INCIDENTS
            {
                continue;
            }
            let s = &view.summary;
            let evidence = LeakEvent {
                kind: match view.state {
                    LeakState::Confirmed => LeakEventKind::Confirmed,
                    _ => LeakEventKind::Suspected,
                },
                t_ns: s.since_t_ns,
                incident_start_ns: view.incident_start_unix_nano.unwrap_or(s.since_t_ns),
                metric: s.leading_metric.clone().unwrap_or_default(),
                signals: s.signals.clone(),
                growth_bytes_per_hour: s.growth_bytes_per_hour,
                r_squared: s.r_squared,
                window_seconds: s.window_seconds,
                time_to_limit_seconds: s.time_to_limit_seconds,
                limit_bytes: s.limit_bytes,
                limit_source: None,
                resolution: None,
                // The summary does not keep them; the next event brings them.
                component: None,
                next_step: s
                    .leading_metric
                    .as_deref()
                    .and_then(|m| crate::detector::resource::next_step(m, false)),
            };
            self.incidents.insert(
                *key,
                Incident {
                    resource: Arc::clone(&view.resource),
                    suspected_ns: view.incident_start_unix_nano.unwrap_or(s.since_t_ns),
                    confirmed_ns: (view.state == LeakState::Confirmed).then_some(s.since_t_ns),
                    evidence,
                    ended_ns: None,
                },
            );
        }
    }

    /// Applies one event to the map; returns the key it changed.
    fn apply(&mut self, resource: &Arc<ResourceInfo>, ev: &LeakEvent) -> Option<ResourceKey> {
        let key = resource.key;
        if self.incidents.is_empty() {
            self.next_resend = Instant::now() + self.resend_interval;
        }
        match ev.kind {
            LeakEventKind::Suspected | LeakEventKind::Confirmed => {
                let confirmed = ev.kind == LeakEventKind::Confirmed;
                match self.incidents.get_mut(&key) {
                    Some(i) if i.ended_ns.is_none() => {
                        if confirmed && i.confirmed_ns.is_none() {
                            i.confirmed_ns = Some(ev.t_ns);
                        }
                        i.evidence = ev.clone();
                    }
                    _ => {
                        if !self.incidents.contains_key(&key)
                            && self.incidents.len() >= MAX_INCIDENTS
                        {
                            if !self.full_warned {
                                self.full_warned = true;
                                warn!(
                                    max = MAX_INCIDENTS,
                                    service = %resource.service_name,
                                    "Alertmanager outlet holds its maximum of open incidents: new ones are not alerted."
                                );
                            }
                            return None;
                        }
                        self.incidents.insert(
                            key,
                            Incident {
                                resource: Arc::clone(resource),
                                // An incident first seen confirmed (its suspected batch lost)
                                // still starts when it was suspected.
                                suspected_ns: ev.incident_start_ns,
                                confirmed_ns: confirmed.then_some(ev.t_ns),
                                evidence: ev.clone(),
                                ended_ns: None,
                            },
                        );
                    }
                }
            }
            LeakEventKind::Resolved => {
                let i = self.incidents.get_mut(&key)?;
                i.ended_ns.get_or_insert(ev.t_ns);
            }
        }
        Some(key)
    }

    /// Sends the alerts of `keys` (all incidents when `None`). Ended incidents that were
    /// delivered (or refused for good) are forgotten. Returns false when it should be retried.
    async fn send(&mut self, keys: Option<&[ResourceKey]>) -> bool {
        let now = SystemTime::now();
        let chosen: Vec<ResourceKey> = match keys {
            Some(k) => k.to_vec(),
            None => self.incidents.keys().copied().collect(),
        };
        let alerts: Vec<Alert> = chosen
            .iter()
            .filter_map(|k| self.incidents.get(k))
            .flat_map(|i| incident_alerts(i, &self.shape, now))
            .collect();
        for chunk in alerts.chunks(MAX_ALERTS_PER_REQUEST) {
            let outcome = match self.client.post(&self.endpoint).json(chunk).send().await {
                Ok(r) => {
                    let outcome = NotifyOutcome::of_status(r.status().as_u16());
                    if outcome != NotifyOutcome::Success {
                        let status = r.status();
                        let body = r.text().await.unwrap_or_default();
                        self.failed(outcome, &format!("HTTP {status}: {}", first_line(&body)));
                    } else {
                        self.rejecting = false;
                    }
                    outcome
                }
                Err(e) => {
                    self.failed(NotifyOutcome::Error, &error_chain(&e));
                    NotifyOutcome::Error
                }
            };
            self.telemetry
                .notify_request(OutletKind::Alertmanager, outcome);
            if outcome == NotifyOutcome::Error {
                return false;
            }
        }
        if self.failing {
            self.failing = false;
            info!(
                url = %self.endpoint,
                alerts = alerts.len(),
                "Alertmanager reachable again: open alerts re-sent."
            );
        }
        for k in chosen {
            if self.incidents.get(&k).is_some_and(|i| i.ended_ns.is_some()) {
                self.incidents.remove(&k);
            }
        }
        true
    }

    /// One WARN per burst of failures (retried), one per burst of refusals (not retried).
    fn failed(&mut self, outcome: NotifyOutcome, why: &str) {
        if outcome == NotifyOutcome::Rejected {
            if !self.rejecting {
                self.rejecting = true;
                warn!(url = %self.endpoint, error = why, "Alertmanager refused the alerts (not retried; logged once until it takes them).");
            }
        } else if !self.failing {
            self.failing = true;
            warn!(url = %self.endpoint, error = why, "Alertmanager did not take the alerts; retrying with backoff while it fails (logged once).");
        }
    }

    fn schedule_retry(&mut self) {
        let delay = match self.retry {
            Some((_, d)) => (d * 2).min(MAX_RETRY_DELAY).min(self.resend_interval),
            None => FIRST_RETRY_DELAY.min(self.resend_interval),
        };
        self.retry = Some((Instant::now() + delay, delay));
    }

    /// Number of incidents held (open, or ended and not yet delivered).
    pub fn held(&self) -> usize {
        self.incidents.len()
    }
}

impl Outlet for Alertmanager {
    fn kind(&self) -> OutletKind {
        OutletKind::Alertmanager
    }

    fn deliver<'a>(&'a mut self, batch: &'a Batch) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let mut changed: Vec<ResourceKey> = batch
                .iter()
                .filter_map(|e| self.apply(&e.resource, &e.event))
                .collect();
            changed.sort_unstable();
            changed.dedup();
            // While retrying, the retry sends the whole map, this batch included.
            if changed.is_empty() || self.retry.is_some() {
                return;
            }
            if !self.send(Some(&changed)).await {
                self.schedule_retry();
            }
        })
    }

    fn wake_at(&self) -> Option<Instant> {
        match self.retry {
            Some((at, _)) => Some(at),
            // Without an engine to reconcile with, nothing to do until a batch comes.
            None if self.incidents.is_empty() && self.engine.is_none() => None,
            None => Some(self.next_resend),
        }
    }

    fn wake(&mut self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            if self.retry.is_none() {
                // A resend: first catch up with the engine.
                self.reconcile();
            }
            if self.send(None).await {
                self.retry = None;
                self.next_resend = Instant::now() + self.resend_interval;
            } else {
                self.schedule_retry();
            }
        })
    }
}

fn unix_ns(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

fn rfc3339(ns: u64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_nanos(ns)).to_string()
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or("").chars().take(200).collect()
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        source = inner.source();
    }
    s
}

/// The alerts of one incident at wall time `now`: the warning always, the critical once
/// confirmed. Start times are event times (never after `now`, which Alertmanager would refuse
/// together with the whole request); a firing alert is valid for `valid_for`.
fn incident_alerts(i: &Incident, shape: &AlertShape, now: SystemTime) -> Vec<Alert> {
    let now_ns = unix_ns(now);
    let firing_until = unix_ns(now + shape.valid_for);
    let mut out = Vec::with_capacity(2);
    let mut one = |name: &str, severity: &str, start_ns: u64| {
        let start = start_ns.min(now_ns);
        let end = match i.ended_ns {
            Some(t) => t.clamp(start, now_ns),
            None => firing_until,
        };
        out.push(alert(i, shape, name, severity, start, end));
    };
    one(SUSPECTED, "warning", i.suspected_ns);
    if let Some(c) = i.confirmed_ns {
        one(CONFIRMED, "critical", c);
    }
    out
}

fn alert(
    i: &Incident,
    shape: &AlertShape,
    name: &str,
    severity: &str,
    start_ns: u64,
    end_ns: u64,
) -> Alert {
    let mut labels = shape.labels.clone();
    labels.extend(process_labels(&i.resource));
    labels.insert("alertname".to_owned(), name.to_owned());
    labels.insert("severity".to_owned(), severity.to_owned());
    let mut annotations = BTreeMap::new();
    annotations.insert(
        "summary".to_owned(),
        summary(name, &i.resource.service_name),
    );
    annotations.insert(
        "description".to_owned(),
        description(&i.resource, &i.evidence),
    );
    if let Some(r) = &shape.runbook_url {
        annotations.insert("runbook_url".to_owned(), r.clone());
    }
    // An annotation, not a label: the labels (the alert's identity in Alertmanager) stay the
    // process's, so the alerts of an HA pair deduplicate even when one replica lost the start
    // of the incident (a restart without checkpoint) and dates it otherwise.
    annotations.insert(
        "incident_id".to_owned(),
        incident_id(&i.resource, i.suspected_ns),
    );
    Alert {
        labels,
        annotations,
        starts_at: rfc3339(start_ns),
        ends_at: rfc3339(end_ns),
        generator_url: shape
            .external_url
            .as_deref()
            .map(|u| page_url(u, &i.resource)),
    }
}

/// One sentence, the same for every alert of a name and service (how alerts are grouped).
pub fn summary(alertname: &str, service: &str) -> String {
    if alertname == CONFIRMED {
        format!("Memory leak confirmed in {service}: memory that survives GC keeps growing.")
    } else {
        format!("Memory leak suspected in {service}: memory that survives GC is growing.")
    }
}

/// Growth, R², window, what leaks (metric and agreeing signals) and time to limit.
pub fn description(resource: &ResourceInfo, ev: &LeakEvent) -> String {
    let mut d = sentence(resource, ev);
    if !ev.signals.is_empty() {
        d.push_str(&format!(". Signals: {}", ev.signals.join(", ")));
    }
    if ev.limit_bytes.is_none() {
        if let Some(ttl) = ev.time_to_limit_seconds {
            d.push_str(&format!(". Limit in about {}", human_duration(ttl)));
        }
    }
    d.push('.');
    if let Some(step) = ev.next_step {
        d.push_str(&format!(" Next: {step}"));
        if !step.ends_with('.') {
            d.push('.');
        }
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::identity::tests::resource;

    fn event(kind: LeakEventKind, t_s: u64) -> LeakEvent {
        LeakEvent {
            kind,
            t_ns: t_s * 1_000_000_000,
            incident_start_ns: 1_000 * 1_000_000_000,
            metric: "v8js.memory.heap.used".into(),
            signals: vec!["memory", "gc_frequency"],
            growth_bytes_per_hour: 2.1 * 1024.0 * 1024.0,
            r_squared: 0.96,
            window_seconds: 6.0 * 3600.0,
            time_to_limit_seconds: Some(14.0 * 3600.0),
            limit_bytes: Some(512.0 * 1024.0 * 1024.0),
            limit_source: None,
            resolution: None,
            component: None,
            next_step: None,
        }
    }

    fn shape() -> AlertShape {
        AlertShape {
            external_url: Some("http://lw:8080".into()),
            labels: [("cluster".to_owned(), "eu-1".to_owned())].into(),
            runbook_url: Some("https://runbooks/leak".into()),
            valid_for: Duration::from_secs(240),
        }
    }

    fn incident(confirmed: Option<u64>, ended: Option<u64>) -> Incident {
        Incident {
            resource: Arc::new(resource(&[
                ("service.name", "checkout"),
                ("service.instance.id", "pod-1"),
                ("host.name", "node-3"),
            ])),
            suspected_ns: 1_000 * 1_000_000_000,
            confirmed_ns: confirmed.map(|s| s * 1_000_000_000),
            evidence: event(LeakEventKind::Confirmed, 2_000),
            ended_ns: ended.map(|s| s * 1_000_000_000),
        }
    }

    #[test]
    fn a_suspected_incident_is_one_warning_with_the_process_labels() {
        let now = UNIX_EPOCH + Duration::from_secs(10_000);
        let a = incident_alerts(&incident(None, None), &shape(), now);
        assert_eq!(a.len(), 1);
        let labels: Vec<_> = a[0]
            .labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        assert_eq!(
            labels,
            [
                "alertname=MemoryLeakSuspected",
                "cluster=eu-1",
                "service_instance_id=pod-1",
                "service_name=checkout",
                "severity=warning"
            ]
        );
        assert_eq!(a[0].starts_at, "1970-01-01T00:16:40.000Z");
        // Valid for four resend intervals past now.
        assert_eq!(a[0].ends_at, "1970-01-01T02:50:40.000Z");
        assert_eq!(
            a[0].generator_url.as_deref(),
            Some("http://lw:8080/resources/0000000000000001")
        );
        assert_eq!(a[0].annotations["runbook_url"], "https://runbooks/leak");
        let i = incident(None, None);
        assert_eq!(
            a[0].annotations["incident_id"],
            incident_id(&i.resource, 1_000 * 1_000_000_000)
        );
        assert!(!a[0].labels.contains_key("incident_id"));
        assert_eq!(
            a[0].annotations["description"],
            "v8js.memory.heap.used of checkout (pod-1) grows 2.1 MiB/h (R² 0.96 over 6 h); leak confirmed; 512.0 MiB limit in about 14 h. Signals: memory, gc_frequency."
        );
    }

    #[test]
    fn a_confirmed_incident_adds_the_critical_alert_and_both_end_together() {
        let now = UNIX_EPOCH + Duration::from_secs(10_000);
        let a = incident_alerts(&incident(Some(2_000), Some(3_000)), &shape(), now);
        assert_eq!(a.len(), 2);
        assert_eq!(a[1].labels["alertname"], "MemoryLeakConfirmed");
        assert_eq!(a[1].labels["severity"], "critical");
        assert_eq!(a[1].starts_at, "1970-01-01T00:33:20.000Z");
        for x in &a {
            assert_eq!(x.ends_at, "1970-01-01T00:50:00.000Z");
        }
        assert_ne!(a[0].annotations["summary"], a[1].annotations["summary"]);
    }

    #[test]
    fn times_after_now_are_clamped_so_alertmanager_never_refuses_the_request() {
        let now = UNIX_EPOCH + Duration::from_secs(500);
        let a = incident_alerts(&incident(Some(2_000), Some(3_000)), &shape(), now);
        for x in &a {
            assert_eq!(x.starts_at, "1970-01-01T00:08:20.000Z");
            assert_eq!(x.ends_at, x.starts_at);
        }
    }

    #[tokio::test]
    async fn the_map_is_bounded_and_resolution_ends_both_alerts() {
        let telemetry = Arc::new(Telemetry::new());
        let client = crate::ops::outbound::client(Duration::from_secs(1)).expect("client");
        let mut am = Alertmanager::new(
            "http://127.0.0.1:9",
            &AlertmanagerConfig::default(),
            client,
            telemetry,
            None,
        );
        for k in 0..(MAX_INCIDENTS as u64 + 5) {
            let mut r = resource(&[("service.name", "s")]);
            r.key = k;
            am.apply(&Arc::new(r), &event(LeakEventKind::Suspected, 1));
        }
        assert_eq!(am.held(), MAX_INCIDENTS);
        let mut r = resource(&[("service.name", "s")]);
        r.key = 3;
        let r = Arc::new(r);
        am.apply(&r, &event(LeakEventKind::Confirmed, 2));
        am.apply(&r, &event(LeakEventKind::Resolved, 3));
        let i = &am.incidents[&3];
        assert_eq!(i.confirmed_ns, Some(2_000_000_000));
        assert_eq!(i.ended_ns, Some(3_000_000_000));
        // First seen confirmed (its suspected event lost): it still starts at the incident's start.
        let mut late = resource(&[("service.name", "late")]);
        late.key = u64::MAX;
        am.incidents.clear();
        am.apply(&Arc::new(late), &event(LeakEventKind::Confirmed, 2_000));
        assert_eq!(am.incidents[&u64::MAX].suspected_ns, 1_000 * 1_000_000_000);
        assert_eq!(
            am.incidents[&u64::MAX].confirmed_ns,
            Some(2_000 * 1_000_000_000)
        );
    }

    /// A Node.js heap floor growing 400 KB/s for four minutes then flat (second `step`).
    fn leaking(step: u64) -> bytes::Bytes {
        use crate::otlp::build::{double_point, gauge, kv, metrics_request, resource, scope};
        use prost::Message;
        let t = 1_700_000_000_000_000_000 + step * 1_000_000_000;
        let floor = 100e6 + 400e3 * step.min(240) as f64 + (step % 10) as f64 * 2e6;
        let r = resource(vec![
            kv("service.name", "checkout"),
            kv("service.instance.id", "pod-1"),
        ]);
        let m = gauge(
            "v8js.memory.heap.used",
            "By",
            "",
            vec![double_point(t, floor, vec![])],
        );
        bytes::Bytes::from(metrics_request(r, scope("test", ""), vec![m]).encode_to_vec())
    }

    #[tokio::test]
    async fn batches_it_never_saw_are_caught_up_from_the_engine() {
        let telemetry = Arc::new(Telemetry::new());
        let engine = Arc::new(Engine::new(
            crate::engine::EngineConfig {
                detector: crate::detector::DetectorConfig::with_windows(
                    Duration::from_secs(60),
                    Duration::from_secs(120),
                ),
                ..Default::default()
            },
            Arc::clone(&telemetry),
        ));
        let client = crate::ops::outbound::client(Duration::from_secs(1)).expect("client");
        let mut am = Alertmanager::new(
            "http://127.0.0.1:9",
            &AlertmanagerConfig::default(),
            client,
            telemetry,
            Some(Arc::clone(&engine)),
        );
        assert_eq!(am.held(), 0);
        // Every batch lost (as if the backlog were full): only the engine knows.
        let mut step = 0;
        let mut kinds = Vec::new();
        while !kinds.contains(&LeakEventKind::Confirmed) {
            let out = engine.ingest_metrics(leaking(step)).expect("valid");
            kinds.extend(out.events.iter().map(|e| e.event.kind));
            step += 1;
            assert!(step < 480, "the trace confirms a leak");
        }
        am.reconcile();
        let i = am.incidents.values().next().expect("caught up");
        assert!(i.confirmed_ns.is_some() && i.ended_ns.is_none());
        assert_eq!(incident_alerts(i, &am.shape, SystemTime::now()).len(), 2);
        while !kinds.contains(&LeakEventKind::Resolved) {
            let out = engine.ingest_metrics(leaking(step)).expect("valid");
            kinds.extend(out.events.iter().map(|e| e.event.kind));
            step += 1;
            assert!(step < 960, "the trace resolves");
        }
        am.reconcile();
        let i = am.incidents.values().next().expect("still held until sent");
        assert!(
            i.ended_ns.is_some(),
            "ended: the engine holds the process as ok"
        );
    }
}
