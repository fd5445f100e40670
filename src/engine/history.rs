//! A bounded, downsampled memory history per process, for the admin page's chart.
//!
//! The detector keeps 32 buckets per series, enough to judge a trend and too coarse to show
//! one. Each resource also keeps, for the one series its chart shows (the series carrying its
//! verdict, see [`ChartClass`]), a ring of [`HISTORY_BUCKETS`] event-time buckets over twice
//! the long window (5-minute buckets over 48 h with the defaults; fractions of a second with
//! the seconds-scale windows of the end-to-end tests): min, max and last value per bucket, and
//! a few marks (restarts, incident transitions, the chart switching series, the limit
//! changing). It is fed after the detector accepted a point, so it sees exactly what the
//! detector sees.
//!
//! # Cost
//! Values are stored as `u16` multiples of a power-of-two quantum chosen from the values seen
//! (32,767–65,534 steps of the largest value so far, i.e. 1/32,000 or better: 16 KiB at
//! 512 MiB), so a bucket costs 6 bytes and the whole history one allocation of 3,776 bytes
//! (jemalloc's 4 KiB size class), made once, when the resource's first memory point is
//! accepted and the memory limiter admits it, and charged to the limiter
//! ([`crate::ops::limiter::HISTORY_CHARGE_BYTES`]). Recording a point touches one bucket and
//! allocates nothing; when a value outgrows the quantum every stored value is halved once
//! (at most a few times in a process's life).

use serde::{Deserialize, Serialize};

use super::table::SeriesKey;
use crate::catalog::Role;
use crate::detector::DetectorConfig;

/// Buckets in a history: 48 h of 5-minute buckets with the default 1-day long window.
pub const HISTORY_BUCKETS: usize = 576;
/// Marks kept (the newest).
pub const HISTORY_MARKS: usize = 16;

/// A bucket value meaning "no data".
const EMPTY: u16 = u16::MAX;
/// The largest stored value.
const TOP: u16 = u16::MAX - 1;

/// Width of a history bucket: twice the long window over [`HISTORY_BUCKETS`].
pub fn bucket_ns(cfg: &DetectorConfig) -> u64 {
    let long = u64::try_from(cfg.long_window.as_nanos()).unwrap_or(u64::MAX);
    (long.saturating_mul(2) / HISTORY_BUCKETS as u64).max(1)
}

/// How strongly a series claims the chart: heap over resident memory (the detector judges the
/// heap first and resident memory only without one).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChartClass {
    Resident = 1,
    Heap = 2,
}

impl ChartClass {
    /// The class of a series of `role`; `None` for series a chart never shows.
    pub fn of(role: Role) -> Option<ChartClass> {
        match role {
            Role::HeapUsed | Role::HeapAfterGc => Some(ChartClass::Heap),
            Role::Rss | Role::ContainerMemory => Some(ChartClass::Resident),
            _ => None,
        }
    }
}

/// What a mark on the chart says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MarkKind {
    /// The chart's series restarted (a new segment).
    Restart,
    Suspected,
    Confirmed,
    Resolved,
    /// The chart now shows another series (the buckets before it were cleared).
    SeriesChanged,
    /// The memory limit changed.
    LimitChanged,
}

/// One mark: what happened, when (event time).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mark {
    pub t_ns: u64,
    pub kind: MarkKind,
}

/// One resource's history (boxed in its entry; see the module doc).
#[derive(Clone, Debug, PartialEq)]
pub struct History {
    series: SeriesKey,
    class: ChartClass,
    /// Stored values are multiples of `2^unit_exp`.
    unit_exp: u8,
    /// Absolute index of the newest bucket (`t_ns / bucket_ns`).
    head: u64,
    /// Last value recorded (unquantized), to compare candidates for the chart.
    last_value: f64,
    /// Restarts of the chart's series seen so far.
    seen_restarts: u32,
    /// The series leading the verdict, which the chart moves to with its next point (0 = none).
    pending: SeriesKey,
    /// The memory limit (NaN when none is known) and the series reporting it.
    limit: f64,
    limit_key: SeriesKey,
    /// Marks, a ring; `marks_total` counts every mark ever added.
    marks: [Mark; HISTORY_MARKS],
    marks_total: u32,
    min: [u16; HISTORY_BUCKETS],
    max: [u16; HISTORY_BUCKETS],
    last: [u16; HISTORY_BUCKETS],
}

/// One bucket as read back.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct BucketView {
    /// Absolute bucket index (start time = `idx × bucket_ns`).
    pub idx: u64,
    pub min: f64,
    pub max: f64,
    pub last: f64,
}

fn slot(idx: u64) -> usize {
    (idx % HISTORY_BUCKETS as u64) as usize
}

impl History {
    /// A history for `series`, empty (boxed: it is 3,776 bytes).
    pub fn new(series: SeriesKey, class: ChartClass, restarts: u32) -> Box<History> {
        Box::new(History {
            series,
            class,
            unit_exp: 0,
            head: 0,
            last_value: f64::NAN,
            seen_restarts: restarts,
            pending: 0,
            limit: f64::NAN,
            limit_key: 0,
            marks: [Mark {
                t_ns: 0,
                kind: MarkKind::Restart,
            }; HISTORY_MARKS],
            marks_total: 0,
            min: [EMPTY; HISTORY_BUCKETS],
            max: [EMPTY; HISTORY_BUCKETS],
            last: [EMPTY; HISTORY_BUCKETS],
        })
    }

    /// The series the chart shows.
    pub fn series(&self) -> SeriesKey {
        self.series
    }

    pub fn class(&self) -> ChartClass {
        self.class
    }

    /// Whether a point of another series with `class` and `value` should take the chart over
    /// (outside an incident): a stronger class, or the same class and clearly larger (the
    /// largest heap space is where a heap leak shows; 1.5× keeps two similar series from
    /// trading places).
    pub fn yields_to(&self, class: ChartClass, value: f64) -> bool {
        class > self.class
            || (class == self.class && (self.last_value.is_nan() || value > 1.5 * self.last_value))
    }

    /// Moves the chart to `series` with that series' next point (the verdict's series).
    pub fn follow(&mut self, series: SeriesKey) {
        self.pending = if series == self.series { 0 } else { series };
    }

    /// The series the chart will move to, if any.
    pub fn pending(&self) -> Option<SeriesKey> {
        (self.pending != 0).then_some(self.pending)
    }

    /// Shows `series` from now on: the buckets of the previous one are cleared (one chart never
    /// mixes two series) and the switch is marked.
    pub fn switch_to(&mut self, series: SeriesKey, class: ChartClass, restarts: u32, t_ns: u64) {
        if series == self.series {
            return;
        }
        self.pending = 0;
        self.series = series;
        self.class = class;
        self.seen_restarts = restarts;
        self.last_value = f64::NAN;
        self.min.fill(EMPTY);
        self.max.fill(EMPTY);
        self.last.fill(EMPTY);
        self.mark(MarkKind::SeriesChanged, t_ns);
    }

    fn unit(&self) -> f64 {
        (2.0f64).powi(i32::from(self.unit_exp))
    }

    /// Halves every stored value (doubles the quantum).
    fn coarsen(&mut self) {
        self.unit_exp = self.unit_exp.saturating_add(1);
        for col in [&mut self.min, &mut self.max, &mut self.last] {
            for v in col.iter_mut() {
                if *v != EMPTY {
                    *v = v.div_ceil(2);
                }
            }
        }
    }

    fn quantize(&mut self, value: f64) -> u16 {
        let mut q = (value / self.unit()).round();
        while q > f64::from(TOP) && self.unit_exp < 200 {
            self.coarsen();
            q = (value / self.unit()).round();
        }
        q.clamp(0.0, f64::from(TOP)) as u16
    }

    /// Records an accepted point of the chart's series (`value` in bytes, non-negative and
    /// finite as the detector accepts them) and marks a restart if its detector counted one.
    pub fn record(&mut self, bucket_ns: u64, t_ns: u64, value: f64, restarts: u32) {
        if restarts > self.seen_restarts {
            self.seen_restarts = restarts;
            self.mark(MarkKind::Restart, t_ns);
        }
        let idx = t_ns / bucket_ns.max(1);
        if self.last_value.is_nan() && self.is_empty() {
            self.head = idx;
        } else if idx > self.head {
            // Clear the buckets skipped (at most the whole ring).
            let from = self.head.max(idx.saturating_sub(HISTORY_BUCKETS as u64)) + 1;
            for i in from..=idx {
                let s = slot(i);
                self.min[s] = EMPTY;
                self.max[s] = EMPTY;
                self.last[s] = EMPTY;
            }
            self.head = idx;
        } else if self.head - idx >= HISTORY_BUCKETS as u64 {
            return; // older than the ring
        }
        let q = self.quantize(value);
        let s = slot(idx);
        if self.min[s] == EMPTY {
            self.min[s] = q;
            self.max[s] = q;
        } else {
            self.min[s] = self.min[s].min(q);
            self.max[s] = self.max[s].max(q);
        }
        self.last[s] = q;
        self.last_value = value;
    }

    fn is_empty(&self) -> bool {
        self.min.iter().all(|&v| v == EMPTY)
    }

    /// Records the memory limit reported by series `key`; a change is marked.
    pub fn record_limit(&mut self, key: SeriesKey, t_ns: u64, value: f64) {
        if !(value.is_finite() && value > 0.0) {
            return;
        }
        self.limit_key = key;
        if self.limit.is_finite() && (value - self.limit).abs() > 0.01 * self.limit {
            self.mark(MarkKind::LimitChanged, t_ns);
        }
        self.limit = value;
    }

    /// The series the limit comes from (0 before one).
    pub fn limit_key(&self) -> SeriesKey {
        self.limit_key
    }

    /// The memory limit, when one is known.
    pub fn limit(&self) -> Option<f64> {
        self.limit.is_finite().then_some(self.limit)
    }

    /// Adds a mark (the oldest goes once [`HISTORY_MARKS`] are held).
    pub fn mark(&mut self, kind: MarkKind, t_ns: u64) {
        self.marks[self.marks_total as usize % HISTORY_MARKS] = Mark { t_ns, kind };
        self.marks_total = self.marks_total.wrapping_add(1);
    }

    /// The marks held, oldest first.
    pub fn marks(&self) -> Vec<Mark> {
        let n = (self.marks_total as usize).min(HISTORY_MARKS);
        let start = self.marks_total as usize - n;
        (start..self.marks_total as usize)
            .map(|i| self.marks[i % HISTORY_MARKS])
            .collect()
    }

    /// The non-empty buckets, oldest first.
    pub fn buckets(&self) -> Vec<BucketView> {
        let unit = self.unit();
        let oldest = self.head.saturating_sub(HISTORY_BUCKETS as u64 - 1);
        (oldest..=self.head)
            .filter_map(|idx| {
                let s = slot(idx);
                (self.min[s] != EMPTY).then(|| BucketView {
                    idx,
                    min: f64::from(self.min[s]) * unit,
                    max: f64::from(self.max[s]) * unit,
                    last: f64::from(self.last[s]) * unit,
                })
            })
            .collect()
    }

    /// A copy for a checkpoint.
    pub fn snapshot(&self) -> HistorySnapshot {
        HistorySnapshot {
            series: self.series,
            class: self.class,
            unit_exp: self.unit_exp,
            head: self.head,
            last_value: self.last_value,
            seen_restarts: self.seen_restarts,
            limit: self.limit,
            limit_key: self.limit_key,
            marks: self.marks(),
            min: self.min.to_vec(),
            max: self.max.to_vec(),
            last: self.last.to_vec(),
        }
    }

    /// Loads a checkpoint's copy; `None` if it is malformed (columns of another length).
    pub fn restore(s: HistorySnapshot) -> Option<Box<History>> {
        if [s.min.len(), s.max.len(), s.last.len()] != [HISTORY_BUCKETS; 3] {
            return None;
        }
        let mut h = History::new(s.series, s.class, s.seen_restarts);
        h.unit_exp = s.unit_exp;
        h.head = s.head;
        h.last_value = s.last_value;
        h.limit = s.limit;
        h.limit_key = s.limit_key;
        h.min.copy_from_slice(&s.min);
        h.max.copy_from_slice(&s.max);
        h.last.copy_from_slice(&s.last);
        for m in s.marks.into_iter().rev().take(HISTORY_MARKS).rev() {
            h.mark(m.kind, m.t_ns);
        }
        Some(h)
    }
}

/// A [`History`] as a checkpoint holds it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct HistorySnapshot {
    pub series: SeriesKey,
    pub class: ChartClass,
    pub unit_exp: u8,
    pub head: u64,
    pub last_value: f64,
    pub seen_restarts: u32,
    pub limit: f64,
    pub limit_key: SeriesKey,
    pub marks: Vec<Mark>,
    pub min: Vec<u16>,
    pub max: Vec<u16>,
    pub last: Vec<u16>,
}

/// Buckets of a process's counter history: a quarter of the memory history's, over the same
/// span (20-minute buckets over 48 h with the defaults). The small charts are a few hundred
/// pixels wide, and a bucket should span more than one export interval so that its count is a
/// rate, not a sample of when the points happened to arrive.
pub const COUNTER_BUCKETS: usize = HISTORY_BUCKETS / 4;

/// Width of a counter-history bucket: four memory-history buckets, so that each counter bucket
/// covers exactly four of the memory chart's.
pub fn counter_bucket_ns(cfg: &DetectorConfig) -> u64 {
    bucket_ns(cfg).saturating_mul((HISTORY_BUCKETS / COUNTER_BUCKETS) as u64)
}

/// Which count a counter series adds to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CounterKind {
    /// Requests served (`http.server.request.duration`'s count and the like).
    Requests,
    /// Garbage collections (all generations and collectors together).
    Gcs,
}

impl CounterKind {
    /// The count a series of `role` adds to; `None` for the others.
    pub fn of(role: Role) -> Option<CounterKind> {
        match role {
            Role::RequestCount => Some(CounterKind::Requests),
            Role::GcCount => Some(CounterKind::Gcs),
            _ => None,
        }
    }
}

/// A process's requests and garbage collections per bucket, in event time: the sum of the
/// increments of all its series of each kind (every route's requests, every generation's
/// collections), each increment spread over the buckets its interval covers, so that a
/// bucket's count is what happened during its span whatever the export interval. Counter
/// resets never reach it: the detector gives a reset point no increment. Boxed in the resource
/// entry, allocated with the first increment; `f32` counts are exact up to 2^24 per bucket
/// and fractional where an interval is split. 1,176 bytes (jemalloc's 1,280-byte class).
#[derive(Clone, Debug, PartialEq)]
pub struct Counters {
    /// Absolute index of the newest bucket (`t_ns / counter_bucket_ns`).
    head: u64,
    /// End of the newest interval recorded (0 = nothing recorded yet).
    latest_ns: u64,
    /// Start of the first interval recorded: the bucket holding it is covered only from there.
    first_ns: u64,
    /// Per bucket, NaN where no series of the kind reported.
    requests: [f32; COUNTER_BUCKETS],
    gcs: [f32; COUNTER_BUCKETS],
}

/// One counter bucket as read back: `None` where no series of that kind reported.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct CounterBucketView {
    /// Absolute bucket index (start time = `idx × counter_bucket_ns`).
    pub idx: u64,
    pub requests: Option<f64>,
    pub gcs: Option<f64>,
}

fn counter_slot(idx: u64) -> usize {
    (idx % COUNTER_BUCKETS as u64) as usize
}

impl Counters {
    /// An empty counter history (boxed: it is 1,176 bytes).
    pub fn new() -> Box<Counters> {
        Box::new(Counters {
            head: 0,
            latest_ns: 0,
            first_ns: 0,
            requests: [f32::NAN; COUNTER_BUCKETS],
            gcs: [f32::NAN; COUNTER_BUCKETS],
        })
    }

    /// End of the newest interval recorded (0 before the first).
    pub fn latest_ns(&self) -> u64 {
        self.latest_ns
    }

    /// Records `inc` events of `kind` that happened over `(from_ns, to_ns]` (the interval since
    /// the series' previous point, or a delta point's own start): each bucket the interval
    /// covers gets its share. Touches at most [`COUNTER_BUCKETS`] buckets (one or two when
    /// the export interval is shorter than a bucket) and allocates nothing. Parts older than
    /// the ring are dropped; a negative, NaN or infinite increment is ignored.
    pub fn record(
        &mut self,
        bucket_ns: u64,
        kind: CounterKind,
        from_ns: u64,
        to_ns: u64,
        inc: f64,
    ) {
        if !(inc.is_finite() && inc >= 0.0) || to_ns == 0 {
            return;
        }
        let w = bucket_ns.max(1);
        let idx = to_ns / w;
        if self.latest_ns == 0 {
            self.head = idx;
            self.first_ns = from_ns.min(to_ns);
        } else if idx > self.head {
            // Clear the buckets skipped (at most the whole ring).
            let from = self.head.max(idx.saturating_sub(COUNTER_BUCKETS as u64)) + 1;
            for i in from..=idx {
                let s = counter_slot(i);
                self.requests[s] = f32::NAN;
                self.gcs[s] = f32::NAN;
            }
            self.head = idx;
        } else if self.head - idx >= COUNTER_BUCKETS as u64 {
            return; // older than the ring
        }
        self.latest_ns = self.latest_ns.max(to_ns);
        let col = match kind {
            CounterKind::Requests => &mut self.requests,
            CounterKind::Gcs => &mut self.gcs,
        };
        let mut add = |i: u64, v: f64| {
            let s = counter_slot(i);
            col[s] = if col[s].is_nan() {
                v as f32
            } else {
                (f64::from(col[s]) + v) as f32
            };
        };
        let from_ns = from_ns.min(to_ns);
        let first = from_ns / w;
        if first == idx {
            add(idx, inc);
            return;
        }
        let oldest = self.head.saturating_sub(COUNTER_BUCKETS as u64 - 1);
        let span = (to_ns - from_ns) as f64;
        for i in first.max(oldest)..=idx {
            let lo = from_ns.max(i.saturating_mul(w));
            let hi = to_ns.min(i.saturating_add(1).saturating_mul(w));
            add(i, inc * hi.saturating_sub(lo) as f64 / span);
        }
    }

    /// The buckets where either kind reported, oldest first.
    pub fn buckets(&self) -> Vec<CounterBucketView> {
        if self.latest_ns == 0 {
            return Vec::new();
        }
        let oldest = self.head.saturating_sub(COUNTER_BUCKETS as u64 - 1);
        let read = |v: f32| (!v.is_nan()).then_some(f64::from(v));
        (oldest..=self.head)
            .filter_map(|idx| {
                let s = counter_slot(idx);
                let (requests, gcs) = (read(self.requests[s]), read(self.gcs[s]));
                (requests.is_some() || gcs.is_some()).then_some(CounterBucketView {
                    idx,
                    requests,
                    gcs,
                })
            })
            .collect()
    }

    /// A copy for a checkpoint.
    pub fn snapshot(&self) -> CountersSnapshot {
        CountersSnapshot {
            head: self.head,
            latest_ns: self.latest_ns,
            first_ns: self.first_ns,
            requests: self.requests.to_vec(),
            gcs: self.gcs.to_vec(),
        }
    }

    /// Loads a checkpoint's copy; `None` if it is malformed (columns of another length).
    pub fn restore(s: CountersSnapshot) -> Option<Box<Counters>> {
        if [s.requests.len(), s.gcs.len()] != [COUNTER_BUCKETS; 2] {
            return None;
        }
        let mut c = Counters::new();
        c.head = s.head;
        c.latest_ns = s.latest_ns;
        c.first_ns = s.first_ns;
        c.requests.copy_from_slice(&s.requests);
        c.gcs.copy_from_slice(&s.gcs);
        Some(c)
    }
}

/// Counter buckets the memory-per-request signal looks back over: 1 h with the default
/// 20-minute buckets (5 s with the end-to-end tests' windows). One bucket's floor is too
/// noisy a difference when collections are minutes apart; three give a steadier figure that
/// still moves within the hour.
pub const PER_REQUEST_BUCKETS: u64 = 3;

/// How much of a counter bucket its events cover: the whole width, except for the newest
/// (still filling: up to the newest interval's end) and the first ever (from the first
/// interval's start). `None` below a quarter of the width: a rate over so little would swing.
fn covered_ns(c: &Counters, idx: u64, w: u64) -> Option<u64> {
    let start = idx.saturating_mul(w).max(c.first_ns);
    let end = if idx == c.head {
        c.latest_ns
    } else {
        idx.saturating_add(1).saturating_mul(w)
    };
    let span = end.saturating_sub(start).min(w);
    (span >= w / 4 && span > 0).then_some(span)
}

/// Garbage collections per minute, per counter bucket (index, rate), oldest first: the
/// bucket's collections over the time it covers. Buckets without a collection series' report
/// are left out.
pub fn gc_per_minute(c: &Counters, bucket_ns: u64) -> Vec<(u64, f64)> {
    let w = bucket_ns.max(1);
    c.buckets()
        .iter()
        .filter_map(|b| {
            let g = b.gcs?;
            let span = covered_ns(c, b.idx, w)?;
            Some((b.idx, g * 60e9 / span as f64))
        })
        .collect()
}

/// Memory growth per request, per counter bucket (index, bytes per request), oldest first:
/// how much the memory floor (the lowest value the chart's series reached in a bucket) rose
/// over the last [`PER_REQUEST_BUCKETS`] buckets, divided by the requests served in them.
/// Steady and positive when each request leaves memory behind; around zero when memory is
/// flat whatever the load; negative when memory was freed. Left out where a bucket of the
/// window has no request report or no requests, and across a restart or a change of the
/// charted series (the floors are not comparable there). `memory` are the memory history's
/// buckets (of width `bucket_ns / 4`), `marks` its marks.
pub fn memory_per_request(
    c: &Counters,
    memory: &[BucketView],
    marks: &[Mark],
    bucket_ns: u64,
) -> Vec<(u64, f64)> {
    let w = bucket_ns.max(1);
    let per = (HISTORY_BUCKETS / COUNTER_BUCKETS) as u64;
    let counts = c.buckets();
    let Some(first) = counts.first().map(|b| b.idx) else {
        return Vec::new();
    };
    // Floors and requests by counter bucket, over the counter ring (bounded: 144 each).
    let mut floor = [f64::NAN; COUNTER_BUCKETS];
    let mut requests = [f64::NAN; COUNTER_BUCKETS];
    let at = |idx: u64| (idx - first) as usize;
    let end = first + COUNTER_BUCKETS as u64;
    for b in memory {
        let idx = b.idx / per;
        if (first..end).contains(&idx) {
            let f = &mut floor[at(idx)];
            *f = if f.is_nan() { b.min } else { f.min(b.min) };
        }
    }
    for b in &counts {
        if let Some(r) = b.requests {
            requests[at(b.idx)] = r;
        }
    }
    let breaks: Vec<u64> = marks
        .iter()
        .filter(|m| matches!(m.kind, MarkKind::Restart | MarkKind::SeriesChanged))
        .map(|m| m.t_ns / w)
        .collect();
    let mut out = Vec::new();
    for b in &counts {
        let idx = b.idx;
        if idx < first + PER_REQUEST_BUCKETS || covered_ns(c, idx, w).is_none() {
            continue;
        }
        let from = idx - PER_REQUEST_BUCKETS;
        let (f0, f1) = (floor[at(from)], floor[at(idx)]);
        let served: f64 = (from + 1..=idx).map(|i| requests[at(i)]).sum();
        // NaN (a bucket unreported) fails this too.
        if !(f0.is_finite() && f1.is_finite() && served > 0.0) {
            continue;
        }
        if breaks.iter().any(|&m| m > from && m <= idx) {
            continue;
        }
        out.push((idx, (f1 - f0) / served));
    }
    out
}

/// A [`Counters`] as a checkpoint holds it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CountersSnapshot {
    pub head: u64,
    pub latest_ns: u64,
    pub first_ns: u64,
    pub requests: Vec<f32>,
    pub gcs: Vec<f32>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const B: u64 = 1_000;

    #[test]
    fn buckets_hold_min_max_last() {
        let mut h = History::new(7, ChartClass::Heap, 0);
        for (t, v) in [(0, 10.0), (10, 5.0), (20, 8.0), (B, 100.0)] {
            h.record(B, t, v, 0);
        }
        let b = h.buckets();
        assert_eq!(b.len(), 2);
        assert_eq!(
            (b[0].idx, b[0].min, b[0].max, b[0].last),
            (0, 5.0, 10.0, 8.0)
        );
        assert_eq!(
            (b[1].idx, b[1].min, b[1].max, b[1].last),
            (1, 100.0, 100.0, 100.0)
        );
    }

    #[test]
    fn the_ring_keeps_the_newest_buckets() {
        let mut h = History::new(7, ChartClass::Heap, 0);
        let n = HISTORY_BUCKETS as u64 + 10;
        for i in 0..n {
            h.record(B, i * B, i as f64, 0);
        }
        let b = h.buckets();
        assert_eq!(b.len(), HISTORY_BUCKETS);
        assert_eq!(b[0].idx, 10);
        assert_eq!(b.last().map(|b| b.idx), Some(n - 1));
        // A gap clears what it skips; a point older than the ring is ignored.
        h.record(B, (n + 5) * B, 1.0, 0);
        h.record(B, 0, 1.0, 0);
        let b = h.buckets();
        assert_eq!(b.len(), HISTORY_BUCKETS - 6 + 1);
        assert_eq!(b.last().map(|b| b.idx), Some(n + 5));
    }

    #[test]
    fn values_keep_their_precision_as_they_grow() {
        let mut h = History::new(7, ChartClass::Heap, 0);
        let values = [1_000.0, 1e6, 3e8, 5.4e9, 1.2e13];
        for (i, v) in values.iter().enumerate() {
            h.record(B, i as u64 * B, *v, 0);
        }
        let b = h.buckets();
        // The newest value is exact to 1/16,000; older ones to the quantum they were coarsened to.
        let newest = b[4].last;
        assert!((newest - 1.2e13).abs() <= 1.2e13 / 16_000.0, "{newest}");
        assert!((b[3].last - 5.4e9).abs() <= 1.2e13 / 16_000.0);
        assert!(b.iter().all(|b| b.min <= b.max));
    }

    #[test]
    fn restarts_incidents_and_switches_are_marked() {
        let mut h = History::new(7, ChartClass::Resident, 0);
        h.record(B, 0, 10.0, 0);
        h.record(B, B, 1.0, 1);
        h.mark(MarkKind::Suspected, 2 * B);
        assert!(h.yields_to(ChartClass::Heap, 1.0));
        assert!(!h.yields_to(ChartClass::Resident, 1.4));
        assert!(h.yields_to(ChartClass::Resident, 1.6));
        h.switch_to(8, ChartClass::Heap, 0, 3 * B);
        assert!(h.buckets().is_empty());
        let kinds: Vec<MarkKind> = h.marks().iter().map(|m| m.kind).collect();
        assert_eq!(
            kinds,
            [
                MarkKind::Restart,
                MarkKind::Suspected,
                MarkKind::SeriesChanged
            ]
        );
        for i in 0..40 {
            h.mark(MarkKind::Restart, i);
        }
        assert_eq!(h.marks().len(), HISTORY_MARKS);
        assert_eq!(h.marks().last().map(|m| m.t_ns), Some(39));
    }

    #[test]
    fn a_snapshot_restores_the_same_history() {
        let mut h = History::new(7, ChartClass::Heap, 0);
        for i in 0..100 {
            h.record(B, i * 3 * B / 2, 1e6 + i as f64 * 1e5, 0);
        }
        h.record_limit(9, 5, 4e8);
        h.mark(MarkKind::Confirmed, 77);
        let back = History::restore(h.snapshot()).expect("restores");
        assert_eq!(*back, *h);
        let mut bad = h.snapshot();
        bad.min.pop();
        assert!(History::restore(bad).is_none());
    }

    #[test]
    fn bucket_width_follows_the_long_window() {
        let day = DetectorConfig::default();
        assert_eq!(bucket_ns(&day), 300 * 1_000_000_000);
        let e2e = DetectorConfig::with_windows(Duration::from_secs(60), Duration::from_secs(120));
        let span = bucket_ns(&e2e) * HISTORY_BUCKETS as u64;
        assert!(
            240 * 1_000_000_000 - span < HISTORY_BUCKETS as u64,
            "{span}"
        );
    }

    #[test]
    fn a_history_is_one_small_allocation() {
        // The figure README states; within jemalloc's 4 KiB size class.
        assert_eq!(std::mem::size_of::<History>(), 3_776);
    }

    fn counts(c: &Counters) -> Vec<(u64, Option<f64>, Option<f64>)> {
        c.buckets()
            .iter()
            .map(|b| (b.idx, b.requests, b.gcs))
            .collect()
    }

    #[test]
    fn counters_sum_increments_per_bucket() {
        let mut c = Counters::new();
        // Two routes' requests and one collector's collections, intervals within one bucket.
        c.record(B, CounterKind::Requests, 100, 400, 30.0);
        c.record(B, CounterKind::Requests, 100, 400, 12.0);
        c.record(B, CounterKind::Gcs, 100, 400, 2.0);
        c.record(B, CounterKind::Requests, 400, 900, 8.0);
        c.record(B, CounterKind::Requests, 1_100, 1_500, 5.0);
        assert_eq!(
            counts(&c),
            [(0, Some(50.0), Some(2.0)), (1, Some(5.0), None)]
        );
        assert_eq!(c.latest_ns(), 1_500);
    }

    #[test]
    fn an_interval_across_buckets_is_shared_by_time() {
        let mut c = Counters::new();
        // 40 requests over 2.5 buckets: 4 per tenth of a bucket.
        c.record(B, CounterKind::Requests, 500, 3_000, 100.0);
        assert_eq!(
            counts(&c),
            [
                (0, Some(20.0), None),
                (1, Some(40.0), None),
                (2, Some(40.0), None),
                (3, Some(0.0), None)
            ]
        );
        // A delta point without an interval counts in its own bucket.
        c.record(B, CounterKind::Gcs, 3_200, 3_200, 1.0);
        assert_eq!(c.buckets()[3].gcs, Some(1.0));
    }

    #[test]
    fn counters_keep_the_newest_ring_and_ignore_what_is_older() {
        let mut c = Counters::new();
        let n = COUNTER_BUCKETS as u64 + 10;
        for i in 1..=n {
            c.record(B, CounterKind::Gcs, i * B - 500, i * B - 1, 1.0);
        }
        let b = c.buckets();
        assert_eq!(b.len(), COUNTER_BUCKETS);
        assert_eq!(b[0].idx, n - COUNTER_BUCKETS as u64);
        // A point older than the ring (out of order, from another series) changes nothing; a
        // late one inside the ring adds to its bucket; a gap clears the buckets it skips.
        let before = counts(&c);
        c.record(B, CounterKind::Gcs, 0, 10, 1.0);
        assert_eq!(counts(&c), before);
        c.record(B, CounterKind::Gcs, (n - 3) * B, (n - 3) * B + 10, 1.0);
        assert_eq!(c.buckets()[COUNTER_BUCKETS - 3].gcs, Some(2.0));
        c.record(B, CounterKind::Gcs, (n + 4) * B, (n + 4) * B + 10, 1.0);
        let b = c.buckets();
        assert_eq!(b.len(), COUNTER_BUCKETS - 5 + 1);
        assert_eq!(b.last().map(|b| (b.idx, b.gcs)), Some((n + 4, Some(1.0))));
        // Nonsense increments are ignored.
        c.record(B, CounterKind::Gcs, (n + 4) * B, (n + 4) * B + 20, f64::NAN);
        c.record(B, CounterKind::Gcs, (n + 4) * B, (n + 4) * B + 20, -3.0);
        assert_eq!(c.buckets().last().and_then(|b| b.gcs), Some(1.0));
    }

    #[test]
    fn a_counter_snapshot_restores_the_same_counts() {
        let mut c = Counters::new();
        for i in 1..200u64 {
            c.record(B, CounterKind::Requests, i * 700, (i + 1) * 700, i as f64);
            c.record(B, CounterKind::Gcs, i * 700, (i + 1) * 700, 0.5);
        }
        let back = Counters::restore(c.snapshot()).expect("restores");
        // NaN != NaN: compare what they read back.
        assert_eq!(back.buckets(), c.buckets());
        assert_eq!(back.latest_ns(), c.latest_ns());
        let mut bad = c.snapshot();
        bad.gcs.pop();
        assert!(Counters::restore(bad).is_none());
    }

    #[test]
    fn a_counter_history_is_one_small_allocation() {
        // The figure README states: jemalloc's 1,280-byte size class.
        assert_eq!(std::mem::size_of::<Counters>(), 1_176);
        let e2e = DetectorConfig::with_windows(Duration::from_secs(60), Duration::from_secs(120));
        assert_eq!(counter_bucket_ns(&e2e), 4 * bucket_ns(&e2e));
        assert_eq!(
            counter_bucket_ns(&DetectorConfig::default()),
            1_200 * 1_000_000_000
        );
    }

    #[test]
    fn gc_frequency_is_collections_per_minute_of_the_time_covered() {
        const W: u64 = 60 * 1_000_000_000; // one-minute counter buckets
        let mut c = Counters::new();
        // 6 collections per minute, reported every 15 s, for 3 minutes and 30 s.
        for i in 1..=14u64 {
            c.record(W, CounterKind::Gcs, (i - 1) * W / 4, i * W / 4, 1.5);
        }
        let rates = gc_per_minute(&c, W);
        // Three whole minutes, and the newest half minute (at its own rate, not half of it).
        assert_eq!(rates, [(0, 6.0), (1, 6.0), (2, 6.0), (3, 6.0)]);
        // A newest bucket covered for less than a quarter is left out.
        c.record(W, CounterKind::Gcs, 14 * W / 4, 4 * W + W / 10, 1.0);
        assert_eq!(gc_per_minute(&c, W).len(), 4);
        // The first bucket counts from the first report on, not from its start.
        let mut late = Counters::new();
        late.record(W, CounterKind::Gcs, W / 2, W, 3.0);
        late.record(W, CounterKind::Gcs, W, 2 * W, 6.0);
        late.record(W, CounterKind::Gcs, 2 * W, 2 * W + W / 10, 0.6);
        assert_eq!(gc_per_minute(&late, W), [(0, 6.0), (1, 6.0)]);
    }

    #[test]
    fn memory_per_request_is_floor_growth_over_requests_served() {
        const W: u64 = 4 * B; // counter buckets of four memory buckets
        let mut c = Counters::new();
        let mut h = History::new(7, ChartClass::Heap, 0);
        // 100 requests per counter bucket; the floor rises 10,000 B per counter bucket (a
        // sawtooth of 5,000 B above it): 100 B per request.
        for i in 0..40u64 {
            c.record(W, CounterKind::Requests, i * B, (i + 1) * B, 25.0);
            let floor = 1e6 + 2_500.0 * i as f64;
            h.record(B, i * B + 1, floor + 5_000.0, 0);
            h.record(B, i * B + 2, floor, 0);
        }
        let m = memory_per_request(&c, &h.buckets(), &h.marks(), W);
        // Counter buckets 0..=9 (the newest, 10, has just begun and covers nothing yet); the
        // first three have no window behind them.
        assert_eq!(m.len(), 10 - PER_REQUEST_BUCKETS as usize);
        assert!(m.iter().all(|&(_, v)| (v - 100.0).abs() < 1.0), "{m:?}");
        // A restart inside the window leaves the buckets it separates out.
        h.record(B, 41 * B, 1e6, 1);
        c.record(W, CounterKind::Requests, 40 * B, 42 * B, 50.0);
        let after = memory_per_request(&c, &h.buckets(), &h.marks(), W);
        assert_eq!(after.last().map(|p| p.0), Some(9));
        // Without request series there is nothing to divide by.
        let mut gcs_only = Counters::new();
        gcs_only.record(W, CounterKind::Gcs, 0, 40 * B, 4.0);
        assert!(memory_per_request(&gcs_only, &h.buckets(), &[], W).is_empty());
    }
}
