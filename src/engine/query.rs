//! Read models: what the admin API, the page and the derived metrics see of the engine.
//!
//! The fleet listing is filtered, sorted and paginated here, server-side: a page of
//! [`ResourceQuery::limit`] processes costs one pass over the resources (a few comparisons
//! each, no series visited) and full views of that page only. Pages are keyset-paginated: the
//! cursor is the sort key of the last item returned, so a page boundary does not shift when
//! processes come or go between two requests. A process's detail, history and series read one
//! resource entry.

use std::cmp::Ordering;
use std::sync::Arc;

use serde::Serialize;

use super::history::{self, Mark, MarkKind};
use super::resource::ResourceInfo;
use super::table::ResourceKey;
use super::Engine;
use crate::catalog::Role;
use crate::detector::{LeakState, ResourceSummary, SeriesSummary};
use crate::otlp::proto::otlp::common::v1::any_value;

impl Engine {
    /// Snapshot of every tracked series, optionally only those of resources
    /// whose `service.name` equals `service`.
    pub fn series_views(&self, service: Option<&str>) -> Vec<SeriesView> {
        let mut views = Vec::new();
        for r in self.resources.iter() {
            let info = &r.info;
            if service.is_some_and(|s| s != info.service_name) {
                continue;
            }
            for (key, s) in r.series.iter() {
                let Some(t) = s.tracked.as_ref() else {
                    continue;
                };
                views.push(SeriesView {
                    key: format!("{key:016x}"),
                    resource_id: info.id(),
                    service_name: info.service_name.clone(),
                    instance: info.instance.clone(),
                    metric: t.name.metric.to_string(),
                    attributes: t.name.labels.to_string(),
                    last_seen_unix_nano: s.last_seen_ns,
                    trend: t.detector.summary(&self.cfg.detector),
                });
            }
        }
        views
    }

    /// Snapshot of every resource's assessment.
    pub fn resource_views(&self) -> Vec<ResourceView> {
        self.resources.iter().map(|r| self.view_of(&r)).collect()
    }

    fn view_of(&self, r: &super::ResourceEntry) -> ResourceView {
        ResourceView {
            id: r.info.id(),
            resource: Arc::clone(&r.info),
            state: r.detector.state(),
            latest_unix_nano: r.latest_ns,
            summary: r.detector.summary(&self.cfg.detector),
            incident_start_unix_nano: r.detector.incident_start_ns(),
        }
    }

    /// One page of the fleet: the resources matching `q`, in its order, after its cursor.
    pub fn resource_page(&self, q: &ResourceQuery) -> Page<ResourceView> {
        let needle = q.q.as_ref().map(|s| s.to_lowercase());
        let mut matching: Vec<(SortKey, ResourceKey)> = Vec::new();
        let mut total = 0;
        for r in self.resources.iter() {
            let info = &r.info;
            let state = r.detector.state();
            if !q.states.is_empty() && !q.states.contains(&state) {
                continue;
            }
            if q.service.as_ref().is_some_and(|s| *s != info.service_name) {
                continue;
            }
            if let Some(n) = &needle {
                let hit = [&info.service_name, &info.instance]
                    .iter()
                    .any(|f| f.to_lowercase().contains(n.as_str()))
                    || info.id().contains(n.as_str());
                if !hit {
                    continue;
                }
            }
            total += 1;
            let lead = r.detector.leading_trend().and_then(|l| l.assessment);
            let primary = match q.sort {
                Sort::Growth => -lead.map_or(0.0, |a| a.slope_per_hour()),
                Sort::TimeToLimit => lead
                    .and_then(|a| a.time_to_limit_secs)
                    .unwrap_or(f64::INFINITY),
                Sort::Name => 0.0,
            };
            let key = SortKey {
                primary,
                service: Arc::clone(info),
            };
            if q.after
                .as_ref()
                .is_some_and(|c| c.cmp_key(&key) != Ordering::Less)
            {
                continue;
            }
            matching.push((key, *r.key()));
        }
        let limit = q.limit.max(1);
        let more = matching.len() > limit;
        if more {
            matching.select_nth_unstable_by(limit - 1, |a, b| a.0.cmp(&b.0));
            matching.truncate(limit);
        }
        matching.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let next_cursor = more
            .then(|| matching.last().map(|(k, _)| Cursor::of(k).encode()))
            .flatten();
        let items = matching
            .iter()
            .filter_map(|(_, key)| self.resources.get(key).map(|r| self.view_of(&r)))
            .collect();
        Page {
            total,
            items,
            next_cursor,
        }
    }

    /// One process: who it is, its assessment, its series and its incidents.
    pub fn resource_detail(&self, key: ResourceKey) -> Option<ResourceDetail> {
        let r = self.resources.get(&key)?;
        let mut series: Vec<SeriesView> = r
            .series
            .iter()
            .filter_map(|(k, s)| {
                let t = s.tracked.as_ref()?;
                Some(SeriesView {
                    key: format!("{k:016x}"),
                    resource_id: r.info.id(),
                    service_name: r.info.service_name.clone(),
                    instance: r.info.instance.clone(),
                    metric: t.name.metric.to_string(),
                    attributes: t.name.labels.to_string(),
                    last_seen_unix_nano: s.last_seen_ns,
                    trend: t.detector.summary(&self.cfg.detector),
                })
            })
            .collect();
        series.sort_by(|a, b| (&a.metric, &a.attributes).cmp(&(&b.metric, &b.attributes)));
        let incidents = r
            .history
            .as_ref()
            .map(|h| {
                h.marks()
                    .into_iter()
                    .filter(|m| {
                        matches!(
                            m.kind,
                            MarkKind::Suspected | MarkKind::Confirmed | MarkKind::Resolved
                        )
                    })
                    .map(MarkView::from)
                    .collect()
            })
            .unwrap_or_default();
        Some(ResourceDetail {
            view: self.view_of(&r),
            attributes: r
                .info
                .attributes
                .iter()
                .map(|kv| (kv.key.clone(), any_text(kv.value.as_ref())))
                .collect(),
            chart_series: r.history.as_ref().map(|h| format!("{:016x}", h.series())),
            series,
            incidents,
        })
    }

    /// One process's chart: its history's buckets, the detector's floor and fitted trend of
    /// the same series, the limit and the forecast crossing.
    /// `service (instance)` of process `key`, for chart titles (no walk of its series).
    pub fn resource_name(&self, key: ResourceKey) -> Option<String> {
        self.resources.get(&key).map(|r| r.info.display_name())
    }

    pub fn resource_history(&self, key: ResourceKey) -> Option<HistoryView> {
        let r = self.resources.get(&key)?;
        let hist_ns = history::bucket_ns(&self.cfg.detector);
        let mut view = HistoryView {
            id: r.info.id(),
            state: r.detector.state(),
            bucket_seconds: hist_ns as f64 * 1e-9,
            series: None,
            buckets: Columns::default(),
            floor: FloorColumns::default(),
            trend: None,
            limit_bytes: None,
            forecast: None,
            marks: Vec::new(),
            counter_bucket_seconds: history::counter_bucket_ns(&self.cfg.detector) as f64 * 1e-9,
            counts: CounterColumns::default(),
            gc_per_minute: SignalColumns::default(),
            memory_per_request: SignalColumns::default(),
        };
        // Whether the process reports the series each signal comes from (its own series, at
        // most a few hundred).
        for (_, s) in r.series.iter() {
            match s.tracked.as_ref().map(|t| t.detector.role()) {
                Some(Role::RequestCount) => view.memory_per_request.reported = true,
                Some(Role::GcCount) => view.gc_per_minute.reported = true,
                _ => {}
            }
        }
        let counter_ns = history::counter_bucket_ns(&self.cfg.detector);
        if let Some(c) = r.counters.as_ref() {
            for b in c.buckets() {
                view.counts.t_unix_nano.push(b.idx * counter_ns);
                view.counts.requests.push(b.requests);
                view.counts.gcs.push(b.gcs);
            }
            view.gc_per_minute
                .fill(history::gc_per_minute(c, counter_ns), counter_ns);
        }
        let Some(h) = r.history.as_ref() else {
            return Some(view);
        };
        if let Some(c) = r.counters.as_ref() {
            view.memory_per_request.fill(
                history::memory_per_request(c, &h.buckets(), &h.marks(), counter_ns),
                counter_ns,
            );
        }
        for b in h.buckets() {
            view.buckets.t_unix_nano.push(b.idx * hist_ns);
            view.buckets.min.push(b.min);
            view.buckets.max.push(b.max);
            view.buckets.last.push(b.last);
        }
        view.marks = h.marks().into_iter().map(MarkView::from).collect();
        view.limit_bytes = h.limit();
        let det_ns = self.cfg.detector.bucket_ns();
        let mid = |idx: u64| idx * det_ns + det_ns / 2;
        let chart = r
            .series
            .iter()
            .find(|(k, _)| *k == h.series())
            .and_then(|(k, s)| Some((k, s.tracked.as_ref()?)));
        if let Some((k, t)) = chart {
            view.series = Some(ChartSeries {
                key: format!("{k:016x}"),
                metric: t.name.metric.to_string(),
                attributes: t.name.labels.to_string(),
            });
            let ring = t.detector.ring();
            let from = ring.oldest().max(t.detector.segment_start());
            for idx in from..ring.head() {
                if let Some(v) = ring.min(idx) {
                    view.floor.t_unix_nano.push(mid(idx));
                    view.floor.value.push(v);
                }
            }
        }
        let lead = r
            .detector
            .leading_trend()
            .filter(|l| l.key == h.series() && !l.derived);
        if let Some(a) = lead.and_then(|l| l.assessment) {
            let buckets = (a.span_secs / self.cfg.detector.bucket_secs()).round() as u64;
            if a.first_bucket > 0 && buckets >= 1 {
                let (t0, t1) = (mid(a.first_bucket), mid(a.first_bucket + buckets - 1));
                let dt = (t1 - t0) as f64 * 1e-9;
                view.trend = Some(TrendLine {
                    start_unix_nano: t0,
                    start_value: a.level - a.fit.slope * dt,
                    end_unix_nano: t1,
                    end_value: a.level,
                    slope_bytes_per_hour: a.slope_per_hour(),
                    window_seconds: a.span_secs,
                    r_squared: a.fit.r_squared,
                });
                if let (Some(limit), Some(ttl)) = (a.limit, a.time_to_limit_secs) {
                    view.limit_bytes = Some(limit);
                    view.forecast = Some(Forecast {
                        limit_bytes: limit,
                        time_to_limit_seconds: ttl,
                        crossing_unix_nano: t1.saturating_add((ttl * 1e9) as u64),
                    });
                }
            }
        }
        Some(view)
    }

    /// One page of series (of one service or one process when asked), ordered by service,
    /// instance, metric, attributes.
    pub fn series_page(&self, q: &SeriesQuery) -> Page<SeriesView> {
        let mut matching: Vec<(SeriesSortKey, ResourceKey, u64)> = Vec::new();
        let mut total = 0;
        for r in self.resources.iter() {
            let info = &r.info;
            if q.service.as_ref().is_some_and(|s| *s != info.service_name)
                || q.resource.is_some_and(|k| k != *r.key())
            {
                continue;
            }
            for (key, s) in r.series.iter() {
                let Some(t) = s.tracked.as_ref() else {
                    continue;
                };
                total += 1;
                let k = SeriesSortKey(
                    info.service_name.clone(),
                    info.instance.clone(),
                    t.name.metric.to_string(),
                    t.name.labels.to_string(),
                    key,
                );
                if q.after.as_ref().is_some_and(|c| *c >= k) {
                    continue;
                }
                matching.push((k, *r.key(), key));
            }
        }
        let limit = q.limit.max(1);
        let more = matching.len() > limit;
        if more {
            matching.select_nth_unstable_by(limit - 1, |a, b| a.0.cmp(&b.0));
            matching.truncate(limit);
        }
        matching.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let next_cursor = more
            .then(|| matching.last().map(|(k, _, _)| k.encode()))
            .flatten();
        let items = matching
            .into_iter()
            .filter_map(|(k, rk, sk)| {
                let r = self.resources.get(&rk)?;
                let (_, s) = r.series.iter().find(|(key, _)| *key == sk)?;
                let t = s.tracked.as_ref()?;
                Some(SeriesView {
                    key: format!("{sk:016x}"),
                    resource_id: r.info.id(),
                    service_name: k.0,
                    instance: k.1,
                    metric: k.2,
                    attributes: k.3,
                    last_seen_unix_nano: s.last_seen_ns,
                    trend: t.detector.summary(&self.cfg.detector),
                })
            })
            .collect();
        Page {
            total,
            items,
            next_cursor,
        }
    }
}

fn any_text(v: Option<&crate::otlp::proto::otlp::common::v1::AnyValue>) -> String {
    match v.and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

/// How the fleet is ordered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Sort {
    /// Fastest growing first.
    #[default]
    Growth,
    /// Soonest at its limit first (processes without a forecast last).
    TimeToLimit,
    /// By service, then instance.
    Name,
}

impl Sort {
    pub fn parse(s: &str) -> Option<Sort> {
        match s {
            "growth" => Some(Sort::Growth),
            "time_to_limit" => Some(Sort::TimeToLimit),
            "name" => Some(Sort::Name),
            _ => None,
        }
    }
}

/// What page of the fleet to list.
#[derive(Clone, Debug, Default)]
pub struct ResourceQuery {
    /// Only these states (all when empty).
    pub states: Vec<LeakState>,
    /// Only this `service.name`.
    pub service: Option<String>,
    /// Only processes whose service, instance or id contains this (case-insensitive).
    pub q: Option<String>,
    pub sort: Sort,
    /// Page size.
    pub limit: usize,
    /// Items after this cursor (from the previous page's `next_cursor`).
    pub after: Option<Cursor>,
}

/// What page of series to list.
#[derive(Clone, Debug, Default)]
pub struct SeriesQuery {
    pub service: Option<String>,
    pub resource: Option<ResourceKey>,
    pub limit: usize,
    pub after: Option<SeriesSortKey>,
}

/// A resource's place in the order: the sort's figure, then service, instance and key.
#[derive(Clone, Debug)]
struct SortKey {
    primary: f64,
    service: Arc<ResourceInfo>,
}

impl SortKey {
    fn parts(&self) -> (f64, &str, &str, u64) {
        (
            self.primary,
            &self.service.service_name,
            &self.service.instance,
            self.service.key,
        )
    }

    fn cmp(&self, other: &SortKey) -> Ordering {
        let (a, b) = (self.parts(), other.parts());
        a.0.total_cmp(&b.0)
            .then_with(|| a.1.cmp(b.1))
            .then_with(|| a.2.cmp(b.2))
            .then_with(|| a.3.cmp(&b.3))
    }
}

/// Where the previous page of resources ended (opaque to clients).
#[derive(Clone, Debug, PartialEq)]
pub struct Cursor {
    primary: f64,
    service: String,
    instance: String,
    key: u64,
}

impl Cursor {
    fn of(k: &SortKey) -> Cursor {
        let (primary, service, instance, key) = k.parts();
        Cursor {
            primary,
            service: service.to_owned(),
            instance: instance.to_owned(),
            key,
        }
    }

    fn cmp_key(&self, k: &SortKey) -> Ordering {
        let b = k.parts();
        self.primary
            .total_cmp(&b.0)
            .then_with(|| self.service.as_str().cmp(b.1))
            .then_with(|| self.instance.as_str().cmp(b.2))
            .then_with(|| self.key.cmp(&b.3))
    }

    /// As sent to clients: hex of a small JSON array.
    pub fn encode(&self) -> String {
        hex(&serde_json::to_vec(&(
            self.primary.to_bits(),
            &self.service,
            &self.instance,
            self.key,
        ))
        .unwrap_or_default())
    }

    /// Reads what [`Cursor::encode`] wrote; `None` for anything else.
    pub fn decode(s: &str) -> Option<Cursor> {
        let (bits, service, instance, key): (u64, String, String, u64) =
            serde_json::from_slice(&unhex(s)?).ok()?;
        Some(Cursor {
            primary: f64::from_bits(bits),
            service,
            instance,
            key,
        })
    }
}

/// A series' place in the order (service, instance, metric, attributes, key); its encoding
/// is the series listing's cursor.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct SeriesSortKey(String, String, String, String, u64);

impl SeriesSortKey {
    pub fn encode(&self) -> String {
        hex(&serde_json::to_vec(&(&self.0, &self.1, &self.2, &self.3, self.4)).unwrap_or_default())
    }

    pub fn decode(s: &str) -> Option<SeriesSortKey> {
        let (a, b, c, d, e) = serde_json::from_slice(&unhex(s)?).ok()?;
        Some(SeriesSortKey(a, b, c, d, e))
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || s.len() > 8192 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// One page of a listing.
#[derive(Debug, Serialize)]
pub struct Page<T> {
    /// Items matching the filters, on every page.
    pub total: usize,
    pub items: Vec<T>,
    /// Pass as `cursor=` for the next page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// One tracked series, as the admin API shows it.
#[derive(Debug, Serialize)]
pub struct SeriesView {
    pub key: String,
    /// The id of its process (see [`ResourceInfo::id`]).
    pub resource_id: String,
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
    /// Stable id (see [`ResourceInfo::id`]): `/api/v1/resources/{id}`.
    pub id: String,
    pub resource: Arc<ResourceInfo>,
    pub state: LeakState,
    pub latest_unix_nano: u64,
    pub summary: ResourceSummary,
    /// Event time the open incident began (was suspected); absent while there is none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub incident_start_unix_nano: Option<u64>,
}

/// One process in detail (`/api/v1/resources/{id}`).
#[derive(Debug, Serialize)]
pub struct ResourceDetail {
    #[serde(flatten)]
    pub view: ResourceView,
    /// Every resource attribute, as text.
    pub attributes: std::collections::BTreeMap<String, String>,
    /// Key of the series its chart shows.
    pub chart_series: Option<String>,
    pub series: Vec<SeriesView>,
    /// Suspected / confirmed / resolved transitions still marked on its chart, oldest first.
    pub incidents: Vec<MarkView>,
}

/// A mark on the chart.
#[derive(Debug, Serialize, PartialEq)]
pub struct MarkView {
    pub t_unix_nano: u64,
    pub kind: MarkKind,
}

impl From<Mark> for MarkView {
    fn from(m: Mark) -> Self {
        MarkView {
            t_unix_nano: m.t_ns,
            kind: m.kind,
        }
    }
}

/// The series a chart shows.
#[derive(Debug, Serialize)]
pub struct ChartSeries {
    pub key: String,
    pub metric: String,
    pub attributes: String,
}

/// Bucket columns (start times and values, bytes), oldest first; empty buckets left out.
#[derive(Debug, Default, Serialize)]
pub struct Columns {
    pub t_unix_nano: Vec<u64>,
    pub min: Vec<f64>,
    pub max: Vec<f64>,
    pub last: Vec<f64>,
}

/// The detector's floor (its bucket minima over the current segment), at bucket midpoints.
#[derive(Debug, Default, Serialize)]
pub struct FloorColumns {
    pub t_unix_nano: Vec<u64>,
    pub value: Vec<f64>,
}

/// The fitted trend line of the verdict, over its window.
#[derive(Debug, Serialize)]
pub struct TrendLine {
    pub start_unix_nano: u64,
    pub start_value: f64,
    pub end_unix_nano: u64,
    pub end_value: f64,
    pub slope_bytes_per_hour: f64,
    pub window_seconds: f64,
    pub r_squared: f64,
}

/// Where the trend meets the limit.
#[derive(Debug, Serialize)]
pub struct Forecast {
    pub limit_bytes: f64,
    pub time_to_limit_seconds: f64,
    pub crossing_unix_nano: u64,
}

/// A process's chart (`/api/v1/resources/{id}/history`).
#[derive(Debug, Serialize)]
pub struct HistoryView {
    pub id: String,
    pub state: LeakState,
    pub bucket_seconds: f64,
    /// The series charted (`None` before its first memory point).
    pub series: Option<ChartSeries>,
    pub buckets: Columns,
    pub floor: FloorColumns,
    /// The fitted trend of the verdict, when it is this series' (not a derived one's).
    pub trend: Option<TrendLine>,
    /// The limit: the forecast's, else the smallest reported.
    pub limit_bytes: Option<f64>,
    pub forecast: Option<Forecast>,
    pub marks: Vec<MarkView>,
    /// Width of the counter buckets (four of the memory chart's).
    pub counter_bucket_seconds: f64,
    /// Requests and garbage collections per counter bucket.
    pub counts: CounterColumns,
    /// Garbage collections per minute (see [`history::gc_per_minute`]).
    pub gc_per_minute: SignalColumns,
    /// Memory floor growth per request served, bytes (see [`history::memory_per_request`]).
    pub memory_per_request: SignalColumns,
}

/// Counts per counter bucket (start times), oldest first; `null` where no series of the kind
/// reported in that bucket, buckets where neither did left out.
#[derive(Debug, Default, Serialize)]
pub struct CounterColumns {
    pub t_unix_nano: Vec<u64>,
    pub requests: Vec<Option<f64>>,
    pub gcs: Vec<Option<f64>>,
}

/// One small chart's data: a value per counter bucket (start times), oldest first.
#[derive(Debug, Default, Serialize)]
pub struct SignalColumns {
    /// Whether the process reports a series this signal comes from (if not, there is nothing
    /// to draw, and the page says so).
    pub reported: bool,
    pub t_unix_nano: Vec<u64>,
    pub value: Vec<f64>,
}

impl SignalColumns {
    fn fill(&mut self, points: Vec<(u64, f64)>, bucket_ns: u64) {
        for (idx, v) in points {
            self.t_unix_nano.push(idx * bucket_ns);
            self.value.push(v);
        }
    }
}
