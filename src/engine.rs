//! The detection stage: identifies the series of every data point of an
//! export request and feeds the points of series the runtime catalog knows to
//! their detectors, in event time.
//!
//! `Engine::ingest_metrics` is the whole stage as one synchronous call on the
//! request's bytes; the gRPC and HTTP receivers, the benchmarks and the
//! scenario suite all go through it, so a trace replayed at 10,000× gives the
//! same answer as live traffic. It never blocks on I/O and holds each lock
//! (one resource entry, one series shard) only while it updates that state.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use dashmap::DashMap;
use prost::Message;
use serde::Serialize;

use crate::catalog::Catalog;
use crate::detector::{
    DetectorConfig, LeakEvent, LeakState, Observation, ResourceDetector, ResourceSummary, Sample,
    SeriesDetector, SeriesSummary, Temporality,
};
use crate::proto::lean;
use crate::proto::otlp::common::v1::{any_value, KeyValue};
use crate::series::{
    self, Prehashed, ResourceKey, Series, SeriesKey, SeriesLimitReached, SeriesTable, Tracked,
};
use crate::telemetry::{PointAnomaly, Telemetry};

/// OTLP's `DataPointFlags.FLAG_NO_RECORDED_VALUE`.
const FLAG_NO_RECORDED_VALUE: u32 = 1;
/// OTLP aggregation temporalities.
const TEMPORALITY_DELTA: i32 = 1;

/// Settings of the detection stage.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    pub max_series: usize,
    pub idle_timeout: Duration,
    pub max_forward_jump: Duration,
    pub detector: DetectorConfig,
    pub catalog: Catalog,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            max_series: 1_000_000,
            idle_timeout: Duration::from_secs(3600),
            max_forward_jump: Duration::from_secs(3600),
            detector: DetectorConfig::default(),
            catalog: Catalog::builtin(),
        }
    }
}

/// Why a request could not be ingested.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("the request is not a valid protobuf ExportMetricsServiceRequest: {0}")]
    Decode(#[from] prost::DecodeError),
    #[error("metric name is not valid UTF-8 (resource_metrics[{resource}].scope_metrics[{scope}].metrics[{metric}])")]
    InvalidMetricName {
        resource: usize,
        scope: usize,
        metric: usize,
    },
}

/// Who a resource (one process) is.
#[derive(Debug, Serialize)]
pub struct ResourceInfo {
    #[serde(skip)]
    pub key: ResourceKey,
    pub service_name: String,
    pub instance: String,
    #[serde(skip)]
    pub attributes: Vec<KeyValue>,
}

impl ResourceInfo {
    fn from_raw(key: ResourceKey, raw: &[Bytes]) -> Self {
        let attributes = series::decode_attributes_full(raw);
        let text = |k: &str| {
            attributes.iter().find(|kv| kv.key == k).and_then(|kv| {
                match kv.value.as_ref()?.value.as_ref()? {
                    any_value::Value::StringValue(s) => Some(s.clone()),
                    any_value::Value::IntValue(i) => Some(i.to_string()),
                    _ => None,
                }
            })
        };
        let service_name = text("service.name").unwrap_or_else(|| "unknown_service".to_owned());
        let instance = [
            "service.instance.id",
            "k8s.pod.name",
            "host.name",
            "process.pid",
        ]
        .iter()
        .find_map(|k| text(k))
        .unwrap_or_default();
        ResourceInfo {
            key,
            service_name,
            instance,
            attributes,
        }
    }

    /// `service (instance)` for messages.
    pub fn display_name(&self) -> String {
        if self.instance.is_empty() {
            self.service_name.clone()
        } else {
            format!("{} ({})", self.service_name, self.instance)
        }
    }
}

/// What the table holds for one resource.
pub struct ResourceEntry {
    pub info: Arc<ResourceInfo>,
    pub detector: ResourceDetector,
    /// Newest event time seen from this resource.
    pub latest_ns: u64,
}

/// A leak event with the resource it is about.
#[derive(Debug, Clone)]
pub struct EngineEvent {
    pub resource: Arc<ResourceInfo>,
    pub event: LeakEvent,
}

/// What ingesting one request did.
#[derive(Debug, Default)]
pub struct IngestOutcome {
    /// Data points in the request.
    pub points: u64,
    /// Points refused (series limit); their ordinals, in request order.
    pub rejected: Vec<u32>,
    /// Lifecycle transitions the request caused.
    pub events: Vec<EngineEvent>,
}

/// The detection stage's state: series, resources, catalog and settings.
pub struct Engine {
    cfg: EngineConfig,
    series: SeriesTable,
    resources: DashMap<ResourceKey, ResourceEntry, Prehashed>,
    names: DashMap<u64, Arc<str>, Prehashed>,
    /// Hashes of the metric names the catalog has rules for.
    known_metrics: HashSet<u64, Prehashed>,
    /// Newest event time seen, advanced at most `max_forward_jump` per request
    /// so that one point stamped far in the future cannot evict everything.
    watermark_ns: AtomicU64,
    telemetry: Arc<Telemetry>,
}

/// Counts of per-point outcomes, added to the telemetry once per request.
#[derive(Default)]
struct Tally {
    anomalies: [u64; PointAnomaly::ALL.len()],
    created: u64,
    max_t_ns: u64,
}

impl Tally {
    fn note(&mut self, anomaly: PointAnomaly) {
        self.anomalies[anomaly as usize] += 1;
    }
}

/// One data point reduced to what detection reads.
struct PointView<'a> {
    attributes: &'a [Bytes],
    start_ns: u64,
    t_ns: u64,
    value: f64,
    flags: u32,
}

impl Engine {
    pub fn new(cfg: EngineConfig, telemetry: Arc<Telemetry>) -> Self {
        Engine {
            series: SeriesTable::new(cfg.max_series),
            resources: DashMap::with_hasher(Prehashed::default()),
            names: DashMap::with_hasher(Prehashed::default()),
            known_metrics: cfg
                .catalog
                .metric_names()
                .map(|n| series::hash_name(n.as_bytes()))
                .collect(),
            watermark_ns: AtomicU64::new(0),
            cfg,
            telemetry,
        }
    }

    pub fn config(&self) -> &EngineConfig {
        &self.cfg
    }

    pub fn telemetry(&self) -> &Arc<Telemetry> {
        &self.telemetry
    }

    pub fn series_count(&self) -> usize {
        self.series.len()
    }

    pub fn resource_count(&self) -> usize {
        self.resources.len()
    }

    /// Newest event time seen (bounded as described on the field).
    pub fn watermark_ns(&self) -> u64 {
        self.watermark_ns.load(Ordering::Relaxed)
    }

    /// Decodes the lean view of an `ExportMetricsServiceRequest` and ingests it.
    pub fn ingest_metrics(&self, body: Bytes) -> Result<IngestOutcome, IngestError> {
        let request = lean::ExportMetricsRequest::decode(body)?;
        self.ingest(&request)
    }

    /// Ingests a decoded request.
    pub fn ingest(
        &self,
        request: &lean::ExportMetricsRequest,
    ) -> Result<IngestOutcome, IngestError> {
        // Check the whole request first so a bad one changes no state.
        validate(request)?;
        let mut outcome = IngestOutcome::default();
        let mut tally = Tally::default();
        let mut ordinal: u32 = 0;
        for rm in &request.resource_metrics {
            let raw_resource: &[Bytes] = rm
                .resource
                .as_ref()
                .map(|r| r.attributes.as_slice())
                .unwrap_or(&[]);
            let resource_key = series::hash_attributes(raw_resource);
            // The resource entry is created only once a metric the catalog
            // knows shows up, and locked only while its points are applied.
            let mut resource = None;
            for sm in &rm.scope_metrics {
                let scope_name: &[u8] = sm.scope.as_ref().map(|s| s.name.as_ref()).unwrap_or(&[]);
                let scope_hash = series::hash_name(scope_name);
                for metric in &sm.metrics {
                    let Ok(name) = std::str::from_utf8(&metric.name) else {
                        continue;
                    };
                    let n = point_count(metric);
                    outcome.points += n as u64;
                    let metric_hash = series::hash_name(&metric.name);
                    if n == 0 || !self.known_metrics.contains(&metric_hash) {
                        ordinal = ordinal.saturating_add(n);
                        continue;
                    }
                    let entry = match resource {
                        Some(ref mut entry) => entry,
                        None => resource.insert(self.resources.entry(resource_key).or_insert_with(
                            || ResourceEntry {
                                info: Arc::new(ResourceInfo::from_raw(resource_key, raw_resource)),
                                detector: ResourceDetector::new(),
                                latest_ns: 0,
                            },
                        )),
                    };
                    let unit = std::str::from_utf8(&metric.unit).unwrap_or("");
                    let ctx = MetricCtx {
                        name,
                        unit,
                        hash: metric_hash,
                        resource_key,
                        scope_hash,
                    };
                    let mut apply =
                        |p: PointView<'_>, temporality: Temporality, ordinal: u32| match self
                            .apply_point(
                                &ctx,
                                entry,
                                &p,
                                temporality,
                                &mut tally,
                                &mut outcome.events,
                            ) {
                            Ok(()) => {}
                            Err(SeriesLimitReached) => {
                                tally.note(PointAnomaly::SeriesLimit);
                                outcome.rejected.push(ordinal);
                            }
                        };
                    for_each_point(metric, &mut ordinal, &mut apply);
                }
            }
        }
        self.finish(&tally);
        Ok(outcome)
    }

    fn finish(&self, tally: &Tally) {
        for anomaly in PointAnomaly::ALL {
            self.telemetry
                .point_anomaly(anomaly, tally.anomalies[anomaly as usize]);
        }
        self.telemetry.series_created(tally.created);
        if tally.max_t_ns > 0 {
            let jump = self.cfg.max_forward_jump.as_nanos() as u64;
            let _ = self
                .watermark_ns
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |w| {
                    if tally.max_t_ns <= w {
                        None
                    } else if w == 0 {
                        Some(tally.max_t_ns)
                    } else {
                        Some(tally.max_t_ns.min(w.saturating_add(jump)))
                    }
                });
        }
    }

    fn apply_point(
        &self,
        ctx: &MetricCtx<'_>,
        resource: &mut ResourceEntry,
        p: &PointView<'_>,
        temporality: Temporality,
        tally: &mut Tally,
        events: &mut Vec<EngineEvent>,
    ) -> Result<(), SeriesLimitReached> {
        let key: SeriesKey = series::series_key(
            ctx.resource_key,
            ctx.scope_hash,
            ctx.hash,
            series::hash_attributes(p.attributes),
        );
        let create = || Series {
            resource: ctx.resource_key,
            last_seen_ns: 0,
            tracked: self.classify(ctx, p.attributes),
        };
        self.series.with_series(key, create, |series, new| {
            if new {
                tally.created += 1;
            }
            series.last_seen_ns = series.last_seen_ns.max(p.t_ns);
            let Some(tracked) = series.tracked.as_mut() else {
                return;
            };
            if p.flags & FLAG_NO_RECORDED_VALUE != 0 || !p.value.is_finite() {
                tally.note(PointAnomaly::NonFinite);
                return;
            }
            let sample = Sample {
                t_ns: p.t_ns,
                start_ns: p.start_ns,
                value: p.value,
                temporality,
            };
            let observation = tracked.detector.observe(&self.cfg.detector, sample);
            match observation {
                Observation::Accepted | Observation::Ignored => {}
                Observation::Reset => tally.note(PointAnomaly::Reset),
                Observation::NonFinite => tally.note(PointAnomaly::NonFinite),
                Observation::OutOfOrder => tally.note(PointAnomaly::OutOfOrder),
                Observation::Duplicate => tally.note(PointAnomaly::Duplicate),
                Observation::MissingTimestamp | Observation::Negative | Observation::OutOfRange => {
                    tally.note(PointAnomaly::Invalid)
                }
                Observation::TooFarAhead => tally.note(PointAnomaly::TooFarAhead),
            }
            if !observation.is_accepted() {
                return;
            }
            tally.max_t_ns = tally.max_t_ns.max(p.t_ns);
            resource.latest_ns = resource.latest_ns.max(p.t_ns);
            if let Some(event) = resource.detector.on_series(
                &self.cfg.detector,
                key,
                &tracked.metric,
                &tracked.detector,
                p.t_ns,
            ) {
                events.push(EngineEvent {
                    resource: Arc::clone(&resource.info),
                    event,
                });
            }
        })
    }

    /// Classifies a new series (once per series, so decoding here is fine).
    fn classify(&self, ctx: &MetricCtx<'_>, raw_attributes: &[Bytes]) -> Option<Box<Tracked>> {
        let pairs = series::decode_attributes_text(raw_attributes);
        let borrowed: Vec<(&str, &str)> = pairs
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let classified = self.cfg.catalog.classify(ctx.name, ctx.unit, &borrowed)?;
        let metric = self
            .names
            .entry(ctx.hash)
            .or_insert_with(|| Arc::from(ctx.name))
            .value()
            .clone();
        Some(Box::new(Tracked {
            metric,
            labels: series::labels_text(&pairs).into_boxed_str(),
            detector: SeriesDetector::new(classified),
        }))
    }

    /// Evicts series and resources idle for longer than the idle timeout in
    /// event time. Returns the number of series evicted.
    pub fn evict_idle(&self) -> usize {
        let watermark = self.watermark_ns();
        let idle = self.cfg.idle_timeout.as_nanos() as u64;
        if watermark <= idle {
            return 0;
        }
        let cutoff = watermark - idle;
        let evicted = self.series.evict_idle(cutoff);
        self.resources.retain(|_, r| r.latest_ns >= cutoff);
        self.telemetry.series_evicted(evicted as u64);
        evicted
    }

    /// Snapshot of every tracked series, optionally only those of resources
    /// whose `service.name` equals `service`.
    pub fn series_views(&self, service: Option<&str>) -> Vec<SeriesView> {
        let mut raw = Vec::new();
        self.series.for_each(|key, s| {
            if let Some(t) = s.tracked.as_ref() {
                raw.push((
                    key,
                    s.resource,
                    s.last_seen_ns,
                    t.metric.clone(),
                    t.labels.to_string(),
                    t.detector.summary(&self.cfg.detector),
                ));
            }
        });
        // Resources are looked up after the series shards are released:
        // the ingest path locks resource → series, never the other way.
        raw.into_iter()
            .filter_map(|(key, rk, last_seen_ns, metric, labels, trend)| {
                let info = self.resources.get(&rk).map(|r| Arc::clone(&r.info))?;
                if service.is_some_and(|s| s != info.service_name) {
                    return None;
                }
                Some(SeriesView {
                    key: format!("{key:016x}"),
                    service_name: info.service_name.clone(),
                    instance: info.instance.clone(),
                    metric: metric.to_string(),
                    attributes: labels,
                    last_seen_unix_nano: last_seen_ns,
                    trend,
                })
            })
            .collect()
    }

    /// Snapshot of every resource's assessment.
    pub fn resource_views(&self) -> Vec<ResourceView> {
        self.resources
            .iter()
            .map(|r| ResourceView {
                resource: Arc::clone(&r.info),
                state: r.detector.state(),
                latest_unix_nano: r.latest_ns,
                summary: r.detector.summary(&self.cfg.detector),
            })
            .collect()
    }
}

/// The per-metric part of a point's identity.
struct MetricCtx<'a> {
    name: &'a str,
    unit: &'a str,
    hash: u64,
    resource_key: ResourceKey,
    scope_hash: u64,
}

/// One tracked series, as the admin API shows it.
#[derive(Debug, Serialize)]
pub struct SeriesView {
    pub key: String,
    pub service_name: String,
    pub instance: String,
    pub metric: String,
    pub attributes: String,
    pub last_seen_unix_nano: u64,
    pub trend: SeriesSummary,
}

/// One resource's assessment, as the admin API and derived metrics show it.
#[derive(Debug, Serialize)]
pub struct ResourceView {
    pub resource: Arc<ResourceInfo>,
    pub state: LeakState,
    pub latest_unix_nano: u64,
    pub summary: ResourceSummary,
}

/// Checks what the lean decode cannot: metric names must be UTF-8.
fn validate(request: &lean::ExportMetricsRequest) -> Result<(), IngestError> {
    for (resource, rm) in request.resource_metrics.iter().enumerate() {
        for (scope, sm) in rm.scope_metrics.iter().enumerate() {
            for (metric, m) in sm.metrics.iter().enumerate() {
                if std::str::from_utf8(&m.name).is_err() {
                    return Err(IngestError::InvalidMetricName {
                        resource,
                        scope,
                        metric,
                    });
                }
            }
        }
    }
    Ok(())
}

/// Data points in a request.
pub fn count_points(request: &lean::ExportMetricsRequest) -> u64 {
    request
        .resource_metrics
        .iter()
        .flat_map(|rm| &rm.scope_metrics)
        .flat_map(|sm| &sm.metrics)
        .map(|m| u64::from(point_count(m)))
        .sum()
}

fn point_count(metric: &lean::Metric) -> u32 {
    use lean::metric::Data;
    let n = match metric.data.as_ref() {
        None => 0,
        Some(Data::Gauge(g)) => g.data_points.len(),
        Some(Data::Sum(s)) => s.data_points.len(),
        Some(Data::Histogram(h)) => h.data_points.len(),
        Some(Data::ExponentialHistogram(h)) => h.data_points.len(),
        Some(Data::Summary(s)) => s.data_points.len(),
    };
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Calls `f` with every point of `metric` reduced to a [`PointView`], its
/// temporality and its ordinal in the request.
fn for_each_point(
    metric: &lean::Metric,
    ordinal: &mut u32,
    f: &mut impl FnMut(PointView<'_>, Temporality, u32),
) {
    use lean::metric::Data;
    let temporality_of = |t: i32| {
        if t == TEMPORALITY_DELTA {
            Temporality::Delta
        } else {
            Temporality::Cumulative
        }
    };
    let mut next = || {
        let o = *ordinal;
        *ordinal = ordinal.saturating_add(1);
        o
    };
    match metric.data.as_ref() {
        None => {}
        Some(Data::Gauge(g)) => {
            for p in &g.data_points {
                f(number_view(p), Temporality::Gauge, next());
            }
        }
        Some(Data::Sum(s)) => {
            // A non-monotonic cumulative sum (an UpDownCounter such as heap
            // used) is a level, not a counter.
            let temporality = if !s.is_monotonic && s.aggregation_temporality != TEMPORALITY_DELTA {
                Temporality::Gauge
            } else {
                temporality_of(s.aggregation_temporality)
            };
            for p in &s.data_points {
                f(number_view(p), temporality, next());
            }
        }
        Some(Data::Histogram(h)) => {
            let temporality = temporality_of(h.aggregation_temporality);
            for p in &h.data_points {
                f(
                    count_view(
                        &p.attributes,
                        p.start_time_unix_nano,
                        p.time_unix_nano,
                        p.count,
                        p.flags,
                    ),
                    temporality,
                    next(),
                );
            }
        }
        Some(Data::ExponentialHistogram(h)) => {
            let temporality = temporality_of(h.aggregation_temporality);
            for p in &h.data_points {
                f(
                    count_view(
                        &p.attributes,
                        p.start_time_unix_nano,
                        p.time_unix_nano,
                        p.count,
                        p.flags,
                    ),
                    temporality,
                    next(),
                );
            }
        }
        Some(Data::Summary(s)) => {
            for p in &s.data_points {
                f(
                    count_view(
                        &p.attributes,
                        p.start_time_unix_nano,
                        p.time_unix_nano,
                        p.count,
                        p.flags,
                    ),
                    Temporality::Cumulative,
                    next(),
                );
            }
        }
    }
}

fn number_view(p: &lean::NumberDataPoint) -> PointView<'_> {
    use lean::number_data_point::Value;
    let value = match p.value {
        Some(Value::AsDouble(d)) => d,
        Some(Value::AsInt(i)) => i as f64,
        None => f64::NAN,
    };
    PointView {
        attributes: &p.attributes,
        start_ns: p.start_time_unix_nano,
        t_ns: p.time_unix_nano,
        value,
        flags: p.flags,
    }
}

fn count_view(
    attributes: &[Bytes],
    start_ns: u64,
    t_ns: u64,
    count: u64,
    flags: u32,
) -> PointView<'_> {
    PointView {
        attributes,
        start_ns,
        t_ns,
        value: count as f64,
        flags,
    }
}

/// Re-encodes a metrics request without the points at `ordinals` (sorted
/// ascending): the rare path taken when the series limit refused points, so
/// that what is forwarded is exactly what the client was told was accepted.
pub fn without_points(body: &[u8], ordinals: &[u32]) -> Result<Bytes, prost::DecodeError> {
    use crate::proto::otlp::collector::metrics::v1::ExportMetricsServiceRequest;
    use crate::proto::otlp::metrics::v1::metric::Data;
    let mut request = ExportMetricsServiceRequest::decode(body)?;
    let mut ordinal: u32 = 0;
    let mut refused = ordinals.iter().copied().peekable();
    let mut keep = |_: &()| {
        let o = ordinal;
        ordinal += 1;
        if refused.peek() == Some(&o) {
            refused.next();
            false
        } else {
            true
        }
    };
    for rm in &mut request.resource_metrics {
        for sm in &mut rm.scope_metrics {
            for m in &mut sm.metrics {
                match m.data.as_mut() {
                    None => {}
                    Some(Data::Gauge(g)) => g.data_points.retain(|_| keep(&())),
                    Some(Data::Sum(s)) => s.data_points.retain(|_| keep(&())),
                    Some(Data::Histogram(h)) => h.data_points.retain(|_| keep(&())),
                    Some(Data::ExponentialHistogram(h)) => h.data_points.retain(|_| keep(&())),
                    Some(Data::Summary(s)) => s.data_points.retain(|_| keep(&())),
                }
            }
            sm.metrics.retain(|m| point_total(m) > 0);
        }
        rm.scope_metrics.retain(|sm| !sm.metrics.is_empty());
    }
    request
        .resource_metrics
        .retain(|rm| !rm.scope_metrics.is_empty());
    Ok(Bytes::from(request.encode_to_vec()))
}

fn point_total(m: &crate::proto::otlp::metrics::v1::Metric) -> usize {
    use crate::proto::otlp::metrics::v1::metric::Data;
    match m.data.as_ref() {
        None => 0,
        Some(Data::Gauge(g)) => g.data_points.len(),
        Some(Data::Sum(s)) => s.data_points.len(),
        Some(Data::Histogram(h)) => h.data_points.len(),
        Some(Data::ExponentialHistogram(h)) => h.data_points.len(),
        Some(Data::Summary(s)) => s.data_points.len(),
    }
}
