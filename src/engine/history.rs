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
}
