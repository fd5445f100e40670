//! The detection stage: identifies the series of every data point of an
//! export request and feeds the points of series the runtime catalog knows to
//! their detectors, in event time.
//!
//! `Engine::ingest_metrics` is the whole stage as one synchronous call on the
//! request's bytes, read through the borrowed [`crate::otlp::view`] (no allocation per point); the gRPC and HTTP receivers, the benchmarks and the
//! scenario suite all go through it, so a trace replayed at 10,000× gives the
//! same answer as live traffic. It never blocks on I/O and holds each lock
//! (one resource entry, with that resource's series) only while it applies
//! the resource's points.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use dashmap::DashMap;
use tokio_util::sync::CancellationToken;

pub mod history;
pub mod query;
mod resource;
mod snapshot;
pub mod table;

pub use query::{
    CounterColumns, Cursor, HistoryView, Page, ResourceDetail, ResourceQuery, ResourceView,
    SeriesQuery, SeriesSortKey, SeriesView, SignalColumns, Sort,
};
pub use resource::{PodRef, ResourceEntry, ResourceInfo};
pub use snapshot::{EngineSnapshot, ResourceSnapshot, RestoreError, RestoreReport, SeriesSnapshot};

use crate::catalog::Catalog;
use crate::detector::{
    DetectorConfig, LeakEvent, LeakEventKind, LeakState, Observation, ResourceDetector, Sample,
    SeriesDetector, Temporality,
};
use crate::ops::limiter::MemoryLimiter;
use crate::ops::telemetry::{PointAnomaly, Telemetry};
use crate::otlp::view::{Attrs, DataView, Kind, MetricsRequest, PointView};
use table::{
    Prehashed, ResourceKey, ResourceSeries, Series, SeriesKey, SeriesLimitReached, SeriesName,
    SeriesTable, Tracked,
};

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

impl EngineConfig {
    /// The engine settings of a configuration (the server and `analyze` build the same engine).
    pub fn from_config(config: &crate::config::Config) -> EngineConfig {
        EngineConfig {
            max_series: config.series.max_series,
            idle_timeout: config.series.idle_timeout,
            max_forward_jump: config.series.max_forward_jump,
            detector: config.detector.clone(),
            catalog: Catalog::with_rules(config.catalog.rules.clone())
                .with_limits(config.catalog.limits.clone()),
        }
    }
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

/// A leak event with the resource it is about.
#[derive(Debug, Clone)]
pub struct EngineEvent {
    pub resource: Arc<ResourceInfo>,
    pub event: LeakEvent,
}

/// What one sweep of idle series did.
#[derive(Debug, Default)]
pub struct Evicted {
    /// Series evicted.
    pub series: usize,
    /// Incidents of processes gone (`resolved` with `process_gone`).
    pub events: Vec<EngineEvent>,
}

/// What ingesting one request did.
#[derive(Debug, Default)]
pub struct IngestOutcome {
    /// Data points in the request.
    pub points: u64,
    /// Points refused (series limit or memory limiter); their ordinals, in
    /// request order.
    pub rejected: Vec<u32>,
    /// Whether any refusal was the memory limiter's (else the series limit's).
    pub rejected_for_memory: bool,
    /// Lifecycle transitions the request caused.
    pub events: Vec<EngineEvent>,
}

/// The detection stage's state: series, resources, catalog and settings.
pub struct Engine {
    cfg: EngineConfig,
    series: SeriesTable,
    resources: DashMap<ResourceKey, ResourceEntry, Prehashed>,
    /// Metric names, one shared copy each (the catalog bounds them).
    metric_names: DashMap<u64, Arc<str>, Prehashed>,
    /// Hashes of the metric names the catalog has rules for.
    known_metrics: HashSet<u64, Prehashed>,
    /// Newest event time seen, advanced at most `max_forward_jump` per request
    /// so that one point stamped far in the future cannot evict everything.
    watermark_ns: AtomicU64,
    telemetry: Arc<Telemetry>,
    limiter: Arc<MemoryLimiter>,
    /// Container memory limits by pod (`k8s.pod.uid`, hashed), offered by the resources that
    /// report them (the Collector's kubeletstats/k8s_cluster receivers) to the processes of the
    /// same pod and container (see [`Engine::join_pod_limit`]). Bounded: one entry per offering
    /// resource, at most [`MAX_CONTAINERS_PER_POD`] per pod, removed with the resource.
    pod_limits: DashMap<u64, Vec<PodLimit>, Prehashed>,
}

/// Most containers of one pod whose limits are kept for the join.
pub const MAX_CONTAINERS_PER_POD: usize = 16;

/// A container's memory limit, and the resource that reports it.
#[derive(Clone, Copy, Debug)]
struct PodLimit {
    container: u64,
    bytes: f64,
    from: ResourceKey,
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

impl Engine {
    pub fn new(cfg: EngineConfig, telemetry: Arc<Telemetry>) -> Self {
        Engine {
            series: SeriesTable::new(cfg.max_series),
            resources: DashMap::with_hasher(Prehashed::default()),
            metric_names: DashMap::with_hasher(Prehashed::default()),
            known_metrics: cfg
                .catalog
                .metric_names()
                .map(|n| table::hash_name(n.as_bytes()))
                .collect(),
            watermark_ns: AtomicU64::new(0),
            cfg,
            telemetry,
            limiter: Arc::new(MemoryLimiter::unlimited()),
            pod_limits: DashMap::with_hasher(Prehashed::default()),
        }
    }

    /// The memory limiter deciding whether new series may be created.
    pub fn limiter(&self) -> &MemoryLimiter {
        &self.limiter
    }

    /// Uses `limiter` to decide whether new series may be created.
    pub fn with_limiter(mut self, limiter: Arc<MemoryLimiter>) -> Self {
        self.limiter = limiter;
        self
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

    /// The interned names of the tracked series (for memory figures).
    pub fn series_names(&self) -> &table::Names {
        self.series.names()
    }

    /// Heap bytes of every resource's series table (entries and index, not
    /// the boxed states): for memory figures; walks every resource.
    pub fn series_table_bytes(&self) -> usize {
        self.resources.iter().map(|r| r.series.heap_bytes()).sum()
    }

    /// Resources holding a chart history (each one `size_of::<History>()` allocation): for
    /// memory figures; walks every resource.
    pub fn history_count(&self) -> usize {
        self.resources
            .iter()
            .filter(|r| r.history.is_some())
            .count()
    }

    /// Resources holding a counter history (each one `size_of::<Counters>()` allocation): for
    /// memory figures; walks every resource.
    pub fn counters_count(&self) -> usize {
        self.resources
            .iter()
            .filter(|r| r.counters.is_some())
            .count()
    }

    pub fn resource_count(&self) -> usize {
        self.resources.len()
    }

    /// Newest event time seen (bounded as described on the field).
    pub fn watermark_ns(&self) -> u64 {
        self.watermark_ns.load(Ordering::Relaxed)
    }

    /// Checks an `ExportMetricsServiceRequest` (the lean view) and ingests it.
    pub fn ingest_metrics(&self, body: Bytes) -> Result<IngestOutcome, IngestError> {
        let request = MetricsRequest::decode(body)?;
        self.ingest(&request)
    }

    /// Ingests leakwatch's own samples (self-monitoring). They are stamped
    /// with the wall clock, so they do not move the event-time watermark:
    /// otherwise a replayed or backfilled trace would look idle and be evicted.
    pub fn ingest_own(&self, body: Bytes) -> Result<IngestOutcome, IngestError> {
        let request = MetricsRequest::decode(body)?;
        self.ingest_inner(&request, false)
    }

    /// Ingests a checked request.
    pub fn ingest(&self, request: &MetricsRequest) -> Result<IngestOutcome, IngestError> {
        self.ingest_inner(request, true)
    }

    fn ingest_inner(
        &self,
        request: &MetricsRequest,
        advance_watermark: bool,
    ) -> Result<IngestOutcome, IngestError> {
        // Check the whole request first so a bad one changes no state.
        validate(request)?;
        let mut outcome = IngestOutcome::default();
        let mut tally = Tally::default();
        let mut ordinal: u32 = 0;
        for rm in request.resources() {
            let raw_resource = rm.attributes;
            let resource_key = table::hash_attributes(raw_resource.iter());
            // The resource entry is created only once a metric the catalog
            // knows shows up, and locked only while its points are applied.
            let mut resource = None;
            for sm in rm.scopes() {
                let scope_hash = table::hash_name(sm.name);
                for metric in sm.metrics() {
                    let Ok(name) = std::str::from_utf8(metric.name) else {
                        continue;
                    };
                    let n = metric.point_count();
                    outcome.points += n as u64;
                    let metric_hash = table::hash_name(metric.name);
                    if n == 0 || !self.known_metrics.contains(&metric_hash) {
                        ordinal = ordinal.saturating_add(n);
                        continue;
                    }
                    let entry = match resource {
                        Some(ref mut entry) => entry,
                        None => match self.resource_entry(resource_key, raw_resource) {
                            Ok(mut entry) => {
                                entry.series.warm();
                                self.join_pod_limit(&mut entry);
                                resource.insert(entry)
                            }
                            Err(limit) => {
                                // A new resource cannot be admitted: its points
                                // are refused like those of a new series.
                                let reason = match limit {
                                    SeriesLimitReached::Count => PointAnomaly::SeriesLimit,
                                    SeriesLimitReached::Memory => {
                                        outcome.rejected_for_memory = true;
                                        PointAnomaly::MemoryLimit
                                    }
                                };
                                for o in ordinal..ordinal.saturating_add(n) {
                                    tally.note(reason);
                                    outcome.rejected.push(o);
                                }
                                ordinal = ordinal.saturating_add(n);
                                continue;
                            }
                        },
                    };
                    let unit = std::str::from_utf8(metric.unit).unwrap_or("");
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
                            Err(reason) => {
                                if reason == SeriesLimitReached::Memory {
                                    outcome.rejected_for_memory = true;
                                    tally.note(PointAnomaly::MemoryLimit);
                                } else {
                                    tally.note(PointAnomaly::SeriesLimit);
                                }
                                outcome.rejected.push(ordinal);
                            }
                        };
                    if let Some(data) = metric.data {
                        for_each_point(data, &mut ordinal, &mut apply);
                    }
                }
            }
        }
        self.finish(&tally, advance_watermark);
        Ok(outcome)
    }

    /// The entry of resource `key`, created if the bounds allow a new one:
    /// a resource needs at least one series, so there are never more
    /// resources than `max_series`, and none are created above the memory
    /// limiter's soft limit. The error says which bound refused it (read
    /// once: the limiter's pressure moves concurrently).
    fn resource_entry(
        &self,
        key: ResourceKey,
        raw: Attrs<'_>,
    ) -> Result<dashmap::mapref::one::RefMut<'_, ResourceKey, ResourceEntry>, SeriesLimitReached>
    {
        if let Some(entry) = self.resources.get_mut(&key) {
            return Ok(entry);
        }
        if !self.limiter.admits_new_series() {
            return Err(SeriesLimitReached::Memory);
        }
        if self.resources.len() >= self.cfg.max_series {
            return Err(SeriesLimitReached::Count);
        }
        Ok(self.resources.entry(key).or_insert_with(|| {
            self.limiter
                .charge(crate::ops::limiter::RESOURCE_CHARGE_BYTES);
            let info = Arc::new(ResourceInfo::from_raw(key, raw));
            let mut detector = Box::<ResourceDetector>::default();
            self.apply_configured_limit(&info, &mut detector);
            ResourceEntry {
                info,
                detector,
                latest_ns: 0,
                series: ResourceSeries::default(),
                history: None,
                counters: None,
                joined_limit: 0.0,
            }
        }))
    }

    /// Offers the container limit `bytes` that resource `from` reports for its pod's
    /// container `pod` (see [`Engine::join_pod_limit`]).
    pub(crate) fn publish_pod_limit(&self, pod: PodRef, from: ResourceKey, bytes: f64) {
        let mut limits = self.pod_limits.entry(pod.uid).or_default();
        if let Some(l) = limits.iter_mut().find(|l| l.from == from) {
            l.container = pod.container;
            l.bytes = bytes;
        } else if limits.len() < MAX_CONTAINERS_PER_POD {
            limits.push(PodLimit {
                container: pod.container,
                bytes,
                from,
            });
        }
    }

    /// Withdraws what resource `key` offered its pod (it is evicted).
    fn withdraw_pod_limit(&self, pod: PodRef, key: ResourceKey) {
        self.pod_limits.remove_if_mut(&pod.uid, |_, limits| {
            limits.retain(|l| l.from != key);
            limits.is_empty()
        });
    }

    /// Gives a process the memory limit of the container it runs in when another resource
    /// reports it: an SDK process names its pod (`k8s.pod.uid`, from the k8sattributes processor
    /// or `OTEL_RESOURCE_ATTRIBUTES`) and usually its container, and the Collector's
    /// kubeletstats/k8s_cluster receivers send that container's limit on a resource of its
    /// own. The same container name joins; a process that names none joins only a pod with one
    /// container limit (a sidecar's limit is not its own). One map read per resource per
    /// request, and the detector is touched only when the joined value changes.
    fn join_pod_limit(&self, entry: &mut ResourceEntry) {
        let Some(pod) = entry.info.pod else {
            return;
        };
        let joined = self.pod_limits.get(&pod.uid).and_then(|limits| {
            let others = || limits.iter().filter(|l| l.from != entry.info.key);
            if pod.container != 0 {
                others()
                    .find(|l| l.container == pod.container)
                    .map(|l| l.bytes)
            } else {
                let mut it = others();
                match (it.next(), it.next()) {
                    (Some(only), None) => Some(only.bytes),
                    _ => None,
                }
            }
        });
        let joined = joined.unwrap_or(0.0);
        if joined != entry.joined_limit {
            entry.joined_limit = joined;
            entry.detector.set_container_limit(joined);
        }
    }

    /// The limit `catalog.limits` configures for this resource, if any (applied at creation
    /// and on restore, so a changed configuration applies to restored processes too).
    pub(crate) fn apply_configured_limit(
        &self,
        info: &ResourceInfo,
        detector: &mut ResourceDetector,
    ) {
        let limit = self.cfg.catalog.limit_for(|k| info.text(k));
        detector.set_configured_limit(limit.unwrap_or(0.0));
    }

    fn finish(&self, tally: &Tally, advance_watermark: bool) {
        for anomaly in PointAnomaly::ALL {
            self.telemetry
                .point_anomaly(anomaly, tally.anomalies[anomaly as usize]);
        }
        self.telemetry.series_created(tally.created);
        if advance_watermark && tally.max_t_ns > 0 {
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
        let key: SeriesKey = table::series_key(
            ctx.resource_key,
            ctx.scope_hash,
            ctx.hash,
            table::hash_attributes(p.attributes.iter()),
        );
        let create = || Series {
            last_seen_ns: 0,
            tracked: self.classify(ctx, p.attributes),
        };
        self.series.with_series(
            &mut resource.series,
            key,
            self.limiter.admits_new_series(),
            create,
            |series, new| {
                if new {
                    tally.created += 1;
                    self.limiter
                        .charge(crate::ops::limiter::SERIES_CHARGE_BYTES);
                }
                // A point's time keeps its series from eviction, but a stamp
                // beyond the watermark's reach (refused below) must not keep
                // it alive for ever.
                let horizon = match self.watermark_ns() {
                    0 => p.t_ns,
                    w => w.saturating_add(self.cfg.max_forward_jump.as_nanos() as u64),
                };
                series.last_seen_ns = series.last_seen_ns.max(p.t_ns.min(horizon));
                let Some(tracked) = series.tracked.as_mut() else {
                    return;
                };
                if p.flags & FLAG_NO_RECORDED_VALUE != 0 || !p.value.is_finite() {
                    tally.note(PointAnomaly::NonFinite);
                    return;
                }
                // The start of the interval a counter point's increment covers (read before
                // `observe` moves it).
                let prev_t_ns = tracked.detector.last_t_ns();
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
                    Observation::MissingTimestamp
                    | Observation::Negative
                    | Observation::OutOfRange => tally.note(PointAnomaly::Invalid),
                    Observation::TooFarAhead => tally.note(PointAnomaly::TooFarAhead),
                }
                if !observation.is_accepted() {
                    return;
                }
                // The first point of a series has nothing to be checked
                // against (a far-future stamp would pass), so only points
                // of known series move the event-time clock.
                if !new {
                    tally.max_t_ns = tally.max_t_ns.max(p.t_ns);
                }
                resource.latest_ns = resource.latest_ns.max(p.t_ns);
                if observation == Observation::Accepted {
                    // Delta points carry their own interval, as the detector reads them.
                    let from_ns = if temporality == Temporality::Delta
                        && p.start_ns != 0
                        && p.start_ns < p.t_ns
                    {
                        p.start_ns
                    } else {
                        prev_t_ns
                    };
                    Self::feed_counters(
                        &self.cfg.detector,
                        &self.limiter,
                        &mut resource.counters,
                        &tracked.detector,
                        from_ns,
                        p.t_ns,
                    );
                }
                Self::feed_history(
                    &self.cfg.detector,
                    &self.limiter,
                    &mut resource.history,
                    &resource.detector,
                    key,
                    &tracked.detector,
                    p.t_ns,
                );
                if let Some(event) = resource.detector.on_series(
                    &self.cfg.detector,
                    key,
                    &tracked.name.metric,
                    &tracked.name.labels,
                    &tracked.detector,
                    p.t_ns,
                ) {
                    Self::mark_event(&mut resource.history, &resource.detector, &event);
                    events.push(EngineEvent {
                        resource: Arc::clone(&resource.info),
                        event,
                    });
                }
                if let Some(pod) = resource.info.pod {
                    if tracked.detector.role() == crate::catalog::Role::MemoryLimit {
                        if let Some(limit) = resource.detector.own_container_limit() {
                            self.publish_pod_limit(pod, resource.info.key, limit);
                        }
                    }
                }
            },
        )
    }

    /// Feeds an accepted point to its resource's chart history (see [`history`]): the limit,
    /// or the value of the series the chart shows. Outside an incident a heap series takes the
    /// chart over from a resident one, and a clearly larger series of the same class from a
    /// smaller one; during one the chart follows the verdict's series (see `mark_event`). The
    /// history is allocated with the first memory point, if the memory limiter admits it.
    #[allow(clippy::too_many_arguments)] // disjoint borrows of the resource entry
    fn feed_history(
        cfg: &DetectorConfig,
        limiter: &MemoryLimiter,
        history: &mut Option<Box<history::History>>,
        detector: &crate::detector::ResourceDetector,
        key: SeriesKey,
        series: &SeriesDetector,
        t_ns: u64,
    ) {
        let role = series.role();
        if role == crate::catalog::Role::MemoryLimit {
            if let Some(h) = history.as_mut() {
                let value = series.last_value();
                // The smallest limit of the process is the one it meets first.
                if h.limit().is_none_or(|l| value <= l || h.limit_key() == key) {
                    h.record_limit(key, t_ns, value);
                }
            }
            return;
        }
        let Some(class) = history::ChartClass::of(role) else {
            return;
        };
        let value = series.last_value();
        let h = match history {
            Some(h) => h,
            None => {
                if !limiter.admits_new_series() {
                    return;
                }
                limiter.charge(crate::ops::limiter::HISTORY_CHARGE_BYTES);
                history.insert(history::History::new(key, class, series.restarts()))
            }
        };
        if h.series() != key {
            let follow = h.pending() == Some(key)
                || (detector.state() == LeakState::Ok && h.yields_to(class, value));
            if !follow {
                return;
            }
            h.switch_to(key, class, series.restarts(), t_ns);
        }
        h.record(history::bucket_ns(cfg), t_ns, value, series.restarts());
    }

    /// Feeds an accepted point of a request or collection counter to its resource's counter
    /// history: the increment the detector took from it (none at a reset or a first point),
    /// over the interval since the series' previous point. Allocated with the first
    /// increment, if the memory limiter admits it.
    fn feed_counters(
        cfg: &DetectorConfig,
        limiter: &MemoryLimiter,
        counters: &mut Option<Box<history::Counters>>,
        series: &SeriesDetector,
        from_ns: u64,
        t_ns: u64,
    ) {
        let Some(kind) = history::CounterKind::of(series.role()) else {
            return;
        };
        let c = match counters {
            Some(c) => c,
            None => {
                if !limiter.admits_new_series() {
                    return;
                }
                limiter.charge(crate::ops::limiter::COUNTERS_CHARGE_BYTES);
                counters.insert(history::Counters::new())
            }
        };
        c.record(
            history::counter_bucket_ns(cfg),
            kind,
            from_ns,
            t_ns,
            series.last_increment(),
        );
    }

    /// Marks a lifecycle transition on the resource's chart; a suspicion or confirmation moves
    /// the chart to the series leading it (from that series' next point).
    fn mark_event(
        history: &mut Option<Box<history::History>>,
        detector: &crate::detector::ResourceDetector,
        event: &LeakEvent,
    ) {
        let Some(h) = history.as_mut() else {
            return;
        };
        let kind = match event.kind {
            LeakEventKind::Suspected => history::MarkKind::Suspected,
            LeakEventKind::Confirmed => history::MarkKind::Confirmed,
            LeakEventKind::Resolved => history::MarkKind::Resolved,
        };
        h.mark(kind, event.t_ns);
        if event.kind != LeakEventKind::Resolved {
            // A derived native leader is keyed by the resident series it comes from.
            if let Some(lead) = detector.leading_trend() {
                h.follow(lead.key);
            }
        }
    }

    /// Classifies a new series (once per series, so decoding here is fine).
    fn classify(&self, ctx: &MetricCtx<'_>, raw_attributes: Attrs<'_>) -> Option<Box<Tracked>> {
        let pairs = table::decode_attributes_text(raw_attributes.iter());
        let borrowed: Vec<(&str, &str)> = pairs
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let classified = self.cfg.catalog.classify(ctx.name, ctx.unit, &borrowed)?;
        let metric = self
            .metric_names
            .entry(ctx.hash)
            .or_insert_with(|| Arc::from(ctx.name))
            .value()
            .clone();
        let name = self.series.names().intern(SeriesName {
            metric,
            labels: table::labels_text(&pairs).into_boxed_str(),
        });
        Some(Box::new(Tracked {
            name,
            resource: ctx.resource_key,
            detector: SeriesDetector::new(classified),
        }))
    }

    /// Evicts idle series every `every` until `shutdown` (the engine's own
    /// background task); the incidents of processes gone go to `on_events`.
    pub async fn run_sweeper(
        self: Arc<Self>,
        every: Duration,
        shutdown: CancellationToken,
        on_events: impl Fn(Vec<EngineEvent>) + Send + 'static,
    ) {
        let mut ticks = crate::ops::periodic::Periodic::new(every, shutdown);
        while ticks.tick().await {
            let evicted = self.evict_idle();
            if evicted.series > 0 {
                tracing::debug!(evicted = evicted.series, "Idle series evicted.");
            }
            on_events(evicted.events);
        }
    }

    /// Evicts series and resources idle for longer than the idle timeout in
    /// event time. Returns the number of series evicted.
    pub fn evict_idle(&self) -> Evicted {
        let watermark = self.watermark_ns();
        let idle = self.cfg.idle_timeout.as_nanos() as u64;
        let mut out = Evicted::default();
        if watermark <= idle {
            return out;
        }
        let cutoff = watermark - idle;
        self.resources.retain(|_, r| {
            if r.latest_ns >= cutoff {
                out.series += self.series.evict_idle(&mut r.series, cutoff);
                true
            } else {
                // An idle resource goes with all its series, and its open incident ends:
                // the process is gone once the idle timeout has passed in event time.
                out.series += self.series.release(&r.series);
                if let Some(pod) = r.info.pod {
                    self.withdraw_pod_limit(pod, r.info.key);
                }
                if let Some(event) = r.detector.gone(r.latest_ns.saturating_add(idle)) {
                    out.events.push(EngineEvent {
                        resource: Arc::clone(&r.info),
                        event,
                    });
                }
                false
            }
        });
        // After the resources' locks are released (see `table::Names`).
        self.series.names().release_unused();
        self.telemetry.series_evicted(out.series as u64);
        out
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

/// Checks what the lean decode cannot: metric names must be UTF-8.
fn validate(request: &MetricsRequest) -> Result<(), IngestError> {
    for (resource, rm) in request.resources().enumerate() {
        for (scope, sm) in rm.scopes().enumerate() {
            for (metric, m) in sm.metrics().enumerate() {
                if std::str::from_utf8(m.name).is_err() {
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

/// Calls `f` with every point of a metric's data, its temporality and its
/// ordinal in the request.
fn for_each_point(
    data: DataView<'_>,
    ordinal: &mut u32,
    f: &mut impl FnMut(PointView<'_>, Temporality, u32),
) {
    let temporality = match data.kind {
        Kind::Gauge => Temporality::Gauge,
        // A non-monotonic cumulative sum (an UpDownCounter such as heap
        // used) is a level, not a counter.
        Kind::Sum if !data.monotonic && data.temporality != TEMPORALITY_DELTA => Temporality::Gauge,
        Kind::Summary => Temporality::Cumulative,
        Kind::Sum | Kind::Histogram | Kind::ExponentialHistogram => {
            if data.temporality == TEMPORALITY_DELTA {
                Temporality::Delta
            } else {
                Temporality::Cumulative
            }
        }
    };
    for p in data.points() {
        let o = *ordinal;
        *ordinal = ordinal.saturating_add(1);
        f(p, temporality, o);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::otlp::proto::lean;
    use crate::otlp::proto::otlp::collector::metrics::v1::ExportMetricsServiceRequest;
    use crate::otlp::proto::otlp::common::v1::AnyValue;
    use crate::otlp::proto::otlp::common::v1::{any_value, KeyValue};
    use crate::otlp::proto::otlp::metrics::v1::{
        metric::Data, Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics,
    };
    use crate::otlp::proto::otlp::resource::v1::Resource;
    use prost::Message;

    fn rss_request(service: &str, t_ns: u64, value: f64) -> Bytes {
        let request = ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                resource: Some(Resource {
                    attributes: vec![KeyValue {
                        key: "service.name".into(),
                        value: Some(AnyValue { value: Some(any_value::Value::StringValue(service.into())) }),
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
                scope_metrics: vec![ScopeMetrics {
                    metrics: vec![Metric {
                        name: "process.memory.usage".into(),
                        unit: "By".into(),
                        data: Some(Data::Gauge(Gauge {
                            data_points: vec![NumberDataPoint {
                                time_unix_nano: t_ns,
                                value: Some(crate::otlp::proto::otlp::metrics::v1::number_data_point::Value::AsDouble(value)),
                                ..Default::default()
                            }],
                        })),
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        Bytes::from(request.encode_to_vec())
    }

    fn engine(max_series: usize) -> Engine {
        Engine::new(
            EngineConfig {
                max_series,
                ..EngineConfig::default()
            },
            Arc::new(Telemetry::new()),
        )
    }

    /// One request per process: 100 heap series (one per `v8js.heap.space.name`).
    fn fleet_request(instance: usize, t_ns: u64) -> Bytes {
        let text = |k: &str, v: String| KeyValue {
            key: k.into(),
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue(v)),
            }),
            ..Default::default()
        };
        let metrics = (0..100)
            .map(|j| Metric {
                name: "v8js.memory.heap.used".into(),
                unit: "By".into(),
                data: Some(Data::Gauge(Gauge {
                    data_points: vec![NumberDataPoint {
                        time_unix_nano: t_ns,
                        attributes: vec![text("v8js.heap.space.name", format!("space_{j}"))],
                        value: Some(
                            crate::otlp::proto::otlp::metrics::v1::number_data_point::Value::AsDouble(
                                1e7,
                            ),
                        ),
                        ..Default::default()
                    }],
                })),
                ..Default::default()
            })
            .collect();
        let request = ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                resource: Some(Resource {
                    attributes: vec![
                        text("service.name", "fleet".into()),
                        text("service.instance.id", format!("fleet-{instance}")),
                    ],
                    ..Default::default()
                }),
                scope_metrics: vec![ScopeMetrics {
                    metrics,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        Bytes::from(request.encode_to_vec())
    }

    #[test]
    fn series_of_a_fleet_share_their_names() {
        // 50 processes reporting the same 100 series each.
        let e = engine(10_000);
        for i in 0..50 {
            e.ingest_metrics(fleet_request(i, 1_000_000_000))
                .expect("ingest");
        }
        assert_eq!(e.series_count(), 5_000);
        let tracked = e.series_views(None).len();
        assert!(tracked > 4_000, "{tracked} tracked");
        // One name per series of a process, whatever the number of processes.
        let names = e.series_names().len();
        assert!(names <= 100, "{names} names for {tracked} series");
        // Evicting every series releases every name.
        e.watermark_ns.store(u64::MAX / 2, Ordering::Relaxed);
        assert_eq!(e.evict_idle().series, 5_000);
        assert!(e.series_names().is_empty());
    }

    #[test]
    fn resources_are_bounded_like_series() {
        let e = engine(2);
        for (i, service) in ["a", "b", "c"].iter().enumerate() {
            let outcome = e
                .ingest_metrics(rss_request(service, 1_000 + i as u64, 1e8))
                .expect("valid");
            assert_eq!(outcome.rejected.len(), usize::from(i == 2), "{service}");
        }
        assert_eq!((e.series_count(), e.resource_count()), (2, 2));
        // Existing resources keep working.
        assert!(e
            .ingest_metrics(rss_request("a", 5_000, 1e8))
            .expect("valid")
            .rejected
            .is_empty());
    }

    #[test]
    fn new_series_stop_when_the_memory_budget_is_spent() {
        let limiter = Arc::new(MemoryLimiter::new(1_000_000, 100_000));
        let e = engine(1000).with_limiter(Arc::clone(&limiter));
        // 36,000 bytes of room; each new process with its one series and its chart history is
        // charged 14 KiB, and what is admitted while some room is left may overdraw it.
        use crate::ops::limiter::{
            HISTORY_CHARGE_BYTES, RESOURCE_CHARGE_BYTES, SERIES_CHARGE_BYTES,
        };
        assert_eq!(
            RESOURCE_CHARGE_BYTES + SERIES_CHARGE_BYTES + HISTORY_CHARGE_BYTES,
            14_336
        );
        limiter.observe(64_000);
        let refused: Vec<bool> = ["a", "b", "c", "d", "e"]
            .iter()
            .map(|s| {
                let o = e.ingest_metrics(rss_request(s, 1_000, 1e8)).expect("valid");
                assert!(o.rejected.is_empty() || o.rejected_for_memory);
                !o.rejected.is_empty()
            })
            .collect();
        assert_eq!(refused, [false, false, false, true, true]);
        // Existing series go on; the next sample refills the budget.
        assert!(e
            .ingest_metrics(rss_request("a", 2_000, 1e8))
            .expect("valid")
            .rejected
            .is_empty());
        limiter.observe(90_000);
        assert!(e
            .ingest_metrics(rss_request("d", 3_000, 1e8))
            .expect("valid")
            .rejected
            .is_empty());
        assert_eq!(e.resource_count(), 4);
    }

    #[test]
    fn each_process_keeps_a_chart_history_evicted_with_it() {
        let e = engine(100);
        const S: u64 = 1_000_000_000;
        let bucket = history::bucket_ns(&e.cfg.detector);
        // Points two buckets apart: one bucket each.
        for i in 0..10u64 {
            e.ingest_metrics(rss_request("a", S + i * 2 * bucket, 1e8 + i as f64 * 1e6))
                .expect("valid");
        }
        let h = e
            .resources
            .iter()
            .next()
            .and_then(|r| r.history.as_ref().map(|h| h.buckets()))
            .expect("a history");
        assert_eq!(h.len(), 10);
        assert!((h[9].last - 1.09e8).abs() <= 1.09e8 / 32_000.0);
        e.watermark_ns.store(u64::MAX / 2, Ordering::Relaxed);
        e.evict_idle();
        assert_eq!(e.resource_count(), 0);
    }

    /// One request of process `service`: its heap at `t_ns`, and its request and collection
    /// counters (cumulative since `start_ns`).
    fn counters_request(service: &str, t_ns: u64, start_ns: u64, requests: f64, gcs: f64) -> Bytes {
        use crate::otlp::proto::otlp::metrics::v1::{
            number_data_point::Value, AggregationTemporality, Sum,
        };
        let sum = |name: &str, v: f64| Metric {
            name: name.into(),
            data: Some(Data::Sum(Sum {
                data_points: vec![NumberDataPoint {
                    start_time_unix_nano: start_ns,
                    time_unix_nano: t_ns,
                    value: Some(Value::AsDouble(v)),
                    ..Default::default()
                }],
                aggregation_temporality: AggregationTemporality::Cumulative as i32,
                is_monotonic: true,
            })),
            ..Default::default()
        };
        let mut req =
            ExportMetricsServiceRequest::decode(rss_request(service, t_ns, 1e8)).expect("decode");
        req.resource_metrics[0].scope_metrics[0].metrics.extend([
            sum("http.server.requests", requests),
            sum("process.runtime.nodejs.gc.count", gcs),
        ]);
        Bytes::from(req.encode_to_vec())
    }

    fn counts_of(e: &Engine) -> Vec<(u64, Option<f64>, Option<f64>)> {
        e.resources
            .iter()
            .next()
            .and_then(|r| {
                r.counters.as_ref().map(|c| {
                    c.buckets()
                        .iter()
                        .map(|b| (b.idx, b.requests, b.gcs))
                        .collect()
                })
            })
            .unwrap_or_default()
    }

    #[test]
    fn counters_are_kept_per_bucket_through_resets_and_evicted_with_the_process() {
        let limiter = Arc::new(MemoryLimiter::new(1 << 30, 1 << 29));
        let e = engine(100).with_limiter(Arc::clone(&limiter));
        const S: u64 = 1_000_000_000;
        let w = history::counter_bucket_ns(&e.cfg.detector); // 1,200 s
        let t0 = 1_000 * w;
        // 10 requests and 1 collection per second, reported every 100 s from t0 (the first
        // report only primes the counters).
        for i in 0..30u64 {
            let t = t0 + i * 100 * S;
            e.ingest_metrics(counters_request(
                "a",
                t,
                t0 - S,
                1_000.0 * i as f64,
                i as f64 * 100.0,
            ))
            .expect("valid");
        }
        let c = counts_of(&e);
        assert_eq!(
            c.iter().map(|b| b.0).collect::<Vec<_>>(),
            [1_000, 1_001, 1_002]
        );
        // Whole buckets: 1,200 s of 10 requests and 1 collection a second.
        assert_eq!(c[1].1, Some(12_000.0));
        assert_eq!(c[1].2, Some(1_200.0));
        // The first report (at t0) only primes the counters; the next ones cover from t0 on.
        assert_eq!(c[0].1, Some(12_000.0));
        assert_eq!(c[2].1, Some(5_000.0));
        // An out-of-order point is refused by the detector and counts nothing.
        e.ingest_metrics(counters_request("a", t0 + 50 * S, t0 - S, 500.0, 50.0))
            .expect("valid");
        assert_eq!(counts_of(&e), c);
        // The process restarts (new start time, counters from zero): the reset point adds
        // nothing, the next ones count from the new start.
        let t = t0 + 3_000 * S;
        let restart = t - 50 * S;
        e.ingest_metrics(counters_request("a", t, restart, 500.0, 50.0))
            .expect("valid");
        let after_reset = counts_of(&e);
        assert_eq!(
            after_reset.last(),
            Some(&(1_002, Some(5_000.0), Some(500.0)))
        );
        e.ingest_metrics(counters_request("a", t + 100 * S, restart, 1_500.0, 150.0))
            .expect("valid");
        assert_eq!(
            counts_of(&e).last(),
            Some(&(1_002, Some(6_000.0), Some(600.0)))
        );
        // A counter reset without a start time (the value goes down) adds nothing either.
        e.ingest_metrics(counters_request("a", t + 200 * S, 0, 10.0, 1.0))
            .expect("valid");
        assert_eq!(
            counts_of(&e).last(),
            Some(&(1_002, Some(6_000.0), Some(600.0)))
        );
        assert_eq!(e.counters_count(), 1);
        e.watermark_ns.store(u64::MAX / 2, Ordering::Relaxed);
        e.evict_idle();
        assert_eq!((e.resource_count(), e.counters_count()), (0, 0));
    }

    #[test]
    fn a_process_without_counters_has_no_counter_history() {
        let e = engine(100);
        const S: u64 = 1_000_000_000;
        for i in 1..5 {
            e.ingest_metrics(rss_request("a", i * S, 1e8))
                .expect("valid");
        }
        assert_eq!((e.history_count(), e.counters_count()), (1, 0));
    }

    #[test]
    fn no_new_resources_above_the_soft_memory_limit() {
        let limiter = Arc::new(MemoryLimiter::new(100, 50));
        let e = engine(10).with_limiter(Arc::clone(&limiter));
        assert!(e
            .ingest_metrics(rss_request("a", 1_000, 1e8))
            .expect("valid")
            .rejected
            .is_empty());
        limiter.observe(60);
        let outcome = e
            .ingest_metrics(rss_request("b", 2_000, 1e8))
            .expect("valid");
        assert_eq!(outcome.rejected, vec![0]);
        assert!(outcome.rejected_for_memory);
        assert!(e
            .ingest_metrics(rss_request("a", 3_000, 1e8))
            .expect("valid")
            .rejected
            .is_empty());
        assert_eq!(e.resource_count(), 1);
    }

    #[test]
    fn invalid_metric_name_changes_nothing() {
        let e = engine(10);
        let mut bad =
            lean::ExportMetricsRequest::decode(rss_request("a", 1_000, 1e8)).expect("decode");
        bad.resource_metrics[0].scope_metrics[0]
            .metrics
            .push(lean::Metric {
                name: Bytes::from_static(&[0xff, 0xfe]),
                ..Default::default()
            });
        assert!(matches!(
            e.ingest_metrics(Bytes::from(bad.encode_to_vec())),
            Err(IngestError::InvalidMetricName {
                resource: 0,
                scope: 0,
                metric: 1
            })
        ));
        assert_eq!(e.series_count(), 0);
    }

    #[test]
    fn watermark_moves_at_most_max_forward_jump() {
        let e = engine(10);
        const S: u64 = 1_000_000_000;
        // A series' first point does not move the clock: it cannot be checked.
        e.ingest_metrics(rss_request("a", S, 1e8)).expect("valid");
        assert_eq!(e.watermark_ns(), 0);
        e.ingest_metrics(rss_request("a", 2 * S, 1e8))
            .expect("valid");
        assert_eq!(e.watermark_ns(), 2 * S);
        // A two-hour gap moves the event-time clock by one hour only.
        e.ingest_metrics(rss_request("a", 2 * S + 7_200 * S, 1e8))
            .expect("valid");
        assert_eq!(e.watermark_ns(), 2 * S + 3_600 * S);
        // A new series stamped a year ahead does not move it at all.
        e.ingest_metrics(rss_request("b", 365 * 86_400 * S, 1e8))
            .expect("valid");
        assert_eq!(e.watermark_ns(), 2 * S + 3_600 * S);
    }

    /// One export of a pod: the SDK process (a leaking V8 old space) in container `app`, a
    /// second SDK process in container `sidecar`, and the Collector's resource for container
    /// `app` with its limit (`k8s.container.memory_limit`, k8s_cluster receiver).
    fn pod_request(t_ns: u64, heap: f64, limit: Option<f64>) -> Bytes {
        use crate::otlp::build::{double_point, gauge, kv, resource, resource_metrics, scope};
        const UID: &str = "0f6c2a3e-1111-4000-8000-000000000001";
        let sdk = |container: &str, instance: &str| {
            resource_metrics(
                resource(vec![
                    kv("service.name", "checkout"),
                    kv("service.instance.id", instance),
                    kv("k8s.pod.uid", UID),
                    kv("k8s.container.name", container),
                ]),
                scope("@opentelemetry/instrumentation-runtime-node", "0.36.0"),
                vec![gauge(
                    "v8js.memory.heap.used",
                    "By",
                    "",
                    vec![double_point(
                        t_ns,
                        heap,
                        vec![kv("v8js.heap.space.name", "old_space")],
                    )],
                )],
            )
        };
        let mut resource_metrics_ = vec![sdk("app", "app-1"), sdk("sidecar", "sidecar-1")];
        if let Some(limit) = limit {
            resource_metrics_.push(resource_metrics(
                resource(vec![
                    kv("k8s.pod.uid", UID),
                    kv("k8s.pod.name", "checkout-7d9f"),
                    kv("k8s.container.name", "app"),
                ]),
                scope("otelcol/k8sclusterreceiver", ""),
                vec![gauge(
                    "k8s.container.memory_limit",
                    "By",
                    "",
                    vec![double_point(t_ns, limit, vec![])],
                )],
            ));
        }
        Bytes::from(
            ExportMetricsServiceRequest {
                resource_metrics: resource_metrics_,
            }
            .encode_to_vec(),
        )
    }

    fn joined_limit(e: &Engine, instance: &str) -> f64 {
        e.resources
            .iter()
            .find(|r| r.info.instance == instance)
            .map_or(-1.0, |r| r.detector.container_limit())
    }

    #[test]
    fn a_process_joins_the_memory_limit_of_its_pods_container() {
        const S: u64 = 1_000_000_000;
        const LIMIT: f64 = 1024.0 * 1024.0 * 1024.0;
        let e = engine(100);
        let mut events = Vec::new();
        // 40 h at one export a minute: 200 MB of V8 old space growing 20 MB/h, with a GC
        // sawtooth of up to 30 MB on top; the Collector reports the container's limit.
        for i in 0..(40 * 60u64) {
            let t = 1_700_000_000 * S + i * 60 * S;
            let hours = i as f64 / 60.0;
            let heap = 200e6 + 20e6 * hours + 30e6 * ((i % 7) as f64 / 7.0);
            let outcome = e
                .ingest_metrics(pod_request(t, heap, Some(LIMIT)))
                .expect("valid");
            events.extend(outcome.events);
        }
        assert_eq!(joined_limit(&e, "app-1"), LIMIT);
        // The sidecar names another container: the app container's limit is not its own.
        assert_eq!(joined_limit(&e, "sidecar-1"), 0.0);
        let confirmed = |instance: &str| {
            events
                .iter()
                .find(|ev| {
                    ev.resource.instance == instance && ev.event.kind == LeakEventKind::Confirmed
                })
                .map(|ev| ev.event.clone())
                .unwrap_or_else(|| panic!("{instance}: no confirmed event in {events:#?}"))
        };
        let app = confirmed("app-1");
        assert_eq!(app.limit_bytes, Some(LIMIT));
        assert_eq!(
            app.limit_source,
            Some(crate::detector::LimitSource::Container)
        );
        let ttl = app.time_to_limit_seconds.expect("a forecast");
        // The floor (≈ 200 MB + 20 MB/h) meets 1 GiB after ≈ 43.7 h of growth.
        let floor_at = |t_ns: u64| 200e6 + 20e6 * ((t_ns - 1_700_000_000 * S) as f64 / 3.6e12);
        let expected = (LIMIT - floor_at(app.t_ns)) / 20e6 * 3600.0;
        assert!(
            (ttl - expected).abs() < 0.25 * expected,
            "forecast {ttl} s, expected ≈ {expected} s"
        );
        let sidecar = confirmed("sidecar-1");
        assert_eq!((sidecar.limit_bytes, sidecar.limit_source), (None, None));
        // The container resource is gone (the Collector stopped sending it): once it is
        // evicted, the process no longer has its limit.
        let t_end = 1_700_000_000 * S + 40 * 3600 * S;
        for i in 0..130u64 {
            e.ingest_metrics(pod_request(t_end + i * 60 * S, 1e9, None))
                .expect("valid");
        }
        e.evict_idle();
        assert!(e.pod_limits.is_empty());
        e.ingest_metrics(pod_request(t_end + 131 * 60 * S, 1e9, None))
            .expect("valid");
        assert_eq!(joined_limit(&e, "app-1"), 0.0);
    }

    #[test]
    fn a_process_without_a_container_name_joins_a_pod_with_one_limit() {
        const S: u64 = 1_000_000_000;
        let e = engine(100);
        let mut limits = vec![(
            PodRef {
                uid: 7,
                container: 11,
            },
            1,
            5e8,
        )];
        for (pod, from, bytes) in &limits {
            e.publish_pod_limit(*pod, *from, *bytes);
        }
        let mut entry = ResourceEntry {
            info: Arc::new(ResourceInfo::from_attributes(
                2,
                vec![crate::otlp::build::kv("service.name", "x")],
            )),
            detector: Box::default(),
            latest_ns: S,
            series: ResourceSeries::default(),
            history: None,
            counters: None,
            joined_limit: 0.0,
        };
        // No pod attribute: nothing to join.
        e.join_pod_limit(&mut entry);
        assert_eq!(entry.joined_limit, 0.0);
        let mut info = ResourceInfo::from_attributes(2, Vec::new());
        info.pod = Some(PodRef {
            uid: 7,
            container: 0,
        });
        entry.info = Arc::new(info);
        e.join_pod_limit(&mut entry);
        assert_eq!(entry.detector.container_limit(), 5e8);
        // A second container's limit makes it ambiguous: no limit rather than a wrong one.
        limits.push((
            PodRef {
                uid: 7,
                container: 12,
            },
            3,
            2e8,
        ));
        e.publish_pod_limit(limits[1].0, limits[1].1, limits[1].2);
        e.join_pod_limit(&mut entry);
        assert_eq!(entry.detector.container_limit(), 0.0);
        // A new value from the same resource replaces its old one; withdrawing both empties
        // the pod.
        e.publish_pod_limit(limits[1].0, limits[1].1, 3e8);
        assert_eq!(e.pod_limits.get(&7).map(|l| l.len()), Some(2));
        e.withdraw_pod_limit(limits[0].0, 1);
        e.join_pod_limit(&mut entry);
        assert_eq!(entry.detector.container_limit(), 3e8);
        e.withdraw_pod_limit(limits[1].0, 3);
        assert!(e.pod_limits.is_empty());
    }

    #[test]
    fn a_refused_far_future_point_does_not_keep_its_series_alive() {
        let e = engine(10);
        const S: u64 = 1_000_000_000;
        const H: u64 = 3_600 * S;
        e.ingest_metrics(rss_request("a", S, 1e8)).expect("valid");
        e.ingest_metrics(rss_request("a", 2 * S, 1e8))
            .expect("valid");
        // Refused (too far ahead), yet it used to set the series' last-seen
        // time a year ahead, so the series was never evicted.
        e.ingest_metrics(rss_request("a", 365 * 86_400 * S, 1e8))
            .expect("valid");
        // Another process keeps the clock moving, an hour at a time.
        for h in 1..=4 {
            e.ingest_metrics(rss_request("b", h * H, 1e8))
                .expect("valid");
            e.ingest_metrics(rss_request("b", h * H + S, 1e8))
                .expect("valid");
        }
        assert_eq!(e.series_count(), 2);
        // The idle timeout is one hour: "a" was last really seen at 2 s.
        assert_eq!(e.evict_idle().series, 1);
        assert_eq!(e.series_count(), 1);
    }
}
