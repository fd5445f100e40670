//! Per-series state: validates points, turns counters into rates, detects restarts, and keeps
//! the bucket ring the trend fits read.
//!
//! A series is cut into *segments* at restarts, because memory after a restart starts from
//! scratch and a fit across the cut measures the restart, not the leak. A restart is any of:
//! the point's start time changed (cumulative points), a cumulative value went down (counter
//! reset), or a memory value fell below `(1 - restart_drop_fraction)` × the recent floor (a GC
//! never takes memory below its own floor; a new process does). The previous segment's bounds are
//! kept so the resource detector can judge whether it *grew until it died* (an OOM cycle).
//!
//! Guards, each reported as a distinct [`Observation`]: NaN/±∞, missing timestamp (`t = 0`),
//! negative and implausibly large values, out-of-order and duplicate timestamps (a zero interval
//! would divide a counter increment by zero), and far-future jumps (one bogus timestamp must not
//! drag the series into the future and make every later point "out of order": a jump is only
//! accepted once a second point confirms the new timeline).
//!
//! The new-high test needs to see further back than the ring (a daily wave's crest returns to
//! yesterday's level, which is just outside a 24 h ring): the highest floor of the buckets
//! leaving the ring is kept per long-window epoch, for two epochs.
//!
//! Size: the ring (272 bytes), a few scalars and the pointer to the fast ring, 360 bytes,
//! asserted in the tests: with the 8-byte pointer to the series' names and its 8-byte resource
//! key, a tracked series' boxed state is 376 bytes (`crate::engine::table::TRACKED_MAX_BYTES`: jemalloc's 384-byte size class). Of what only the point being observed needs, whether it began a segment is a
//! flag, not a timestamp, and the seconds its counter increment covers are only in the ring.

use crate::catalog::{Classified, Role};
use crate::detector::trend::{self, Assessment, TrendInput};
use crate::detector::window::{Ring, BUCKETS};
use crate::detector::{DetectorConfig, Observation, Sample, Temporality};

/// The newest spans of the fast window judged on their own when the whole window is no leak
/// (see [`SeriesDetector::assess_fast`]), in fast buckets: from a sixth of the window (the
/// fewest points a fit takes, `min_fit_points`' default) to two thirds of it, about ×1.4 apart.
const FAST_SPANS: [u64; 5] = [6, 8, 11, 16, 22];

/// How the latest restart was detected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RestartKind {
    /// No restart yet.
    #[default]
    None,
    /// The point's start time changed.
    StartTime,
    /// A cumulative value decreased.
    CounterReset,
    /// A memory value dropped far below the floor.
    Drop,
}

/// Per-series detector state (360 bytes; memory gauges also box a 272-byte fast ring). Serializable for checkpoints.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct SeriesDetector {
    ring: Ring,
    /// Last accepted event time (0 = none yet).
    last_t_ns: u64,
    /// Start time of the last accepted point (0 = unknown).
    start_ns: u64,
    /// A refused far-future timestamp, waiting for confirmation (0 = none).
    pending_jump_ns: u64,
    /// First bucket of the current segment.
    seg_start: u64,
    /// First bucket of the previous segment (valid when `restarts > 0`).
    prev_seg_start: u64,
    /// Last raw (scaled) value: the level for gauges, the running total for counters.
    last_raw: f64,
    /// Increment of a counter added by the latest point (0 for gauges or when none).
    last_inc: f32,
    /// Highest floor of the buckets that left the ring, per long-window epoch (two epochs), so
    /// the new-high test sees further back than the ring (yesterday's peak of a daily wave).
    old_high: [f32; 2],
    old_epoch: [u32; 2],
    scale: f32,
    restarts: u16,
    role: Role,
    restart_kind: RestartKind,
    /// Whether `last_raw` holds a value (a counter is primed).
    primed: bool,
    /// Whether the latest point began a new segment (a restart). Only the point being observed
    /// needs to know (the resource detector, right after `observe`), so a flag is enough where
    /// an event time would cost 8 bytes.
    restarted: bool,
    /// The fast ring (memory gauges only, else `None`): the current segment's newest
    /// [`BUCKETS`] buckets of `bucket / FAST_DIVISOR`, read by the fast window.
    #[serde(default)]
    fast: Option<Box<Ring>>,
}

/// Whether series of `role` keep a fast ring: the memory gauges a leak is judged on, and the
/// counts (goroutines, objects per type) that name what leaks, so a leak confirmed by the fast
/// window can name its component too.
fn has_fast_ring(role: Role) -> bool {
    matches!(
        role,
        Role::HeapUsed
            | Role::HeapAfterGc
            | Role::Rss
            | Role::ContainerMemory
            | Role::Goroutines
            | Role::ObjectCount
    )
}

/// Trend over one window, for summaries.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct TrendSummary {
    /// Slope in value units per hour (bytes/h for memory, (1/s)/h for rates).
    pub slope_per_hour: f64,
    /// Coefficient of determination of the fit.
    pub r_squared: f64,
    /// Buckets in the fit.
    pub n: usize,
    /// Effective sample size after autocorrelation.
    pub n_eff: f64,
    /// Slope significantly positive at the configured confidence.
    pub significant: bool,
    /// Whether the window looks like a leak (all gates passed).
    pub leak: bool,
    /// Seconds spanned by the fit.
    pub span_seconds: f64,
}

/// Snapshot of a series for the admin API.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct SeriesSummary {
    /// The series' role.
    pub role: Role,
    /// Last value (bytes for memory, the running total for counters).
    pub last_value: f64,
    /// Last accepted event time.
    pub last_t_ns: u64,
    /// Trend over the short window (`None` before there is enough data).
    pub short: Option<TrendSummary>,
    /// Trend over the long window.
    pub long: Option<TrendSummary>,
    /// Trend over the fast window (memory gauges only).
    pub fast: Option<TrendSummary>,
    /// Restarts seen.
    pub restarts: u32,
    /// How the latest restart was detected.
    pub last_restart: RestartKind,
}

impl SeriesDetector {
    /// A fresh series of the given classification.
    pub fn new(classified: Classified) -> Self {
        let scale = if classified.scale.is_finite() && classified.scale > 0.0 {
            classified.scale as f32
        } else {
            1.0
        };
        SeriesDetector {
            ring: Ring::default(),
            last_t_ns: 0,
            start_ns: 0,
            pending_jump_ns: 0,
            seg_start: 0,
            prev_seg_start: 0,
            last_raw: 0.0,
            last_inc: 0.0,
            old_high: [f32::NEG_INFINITY; 2],
            old_epoch: [0; 2],
            scale,
            restarts: 0,
            role: classified.role,
            restart_kind: RestartKind::None,
            primed: false,
            restarted: false,
            fast: has_fast_ring(classified.role).then(Box::default),
        }
    }

    /// Reads the fields the next point's `observe` reads first (the head
    /// bucket, the last timestamp, the scale), so they can be loaded ahead of
    /// time; see `ResourceSeries::warm`. The value means nothing.
    pub fn touch(&self) -> f64 {
        f64::from(self.ring.touch() + self.scale) + self.last_t_ns as f64
    }

    /// The series' role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// Feeds one point (in event time).
    pub fn observe(&mut self, cfg: &DetectorConfig, sample: Sample) -> Observation {
        self.last_inc = 0.0;
        self.restarted = false;
        if sample.t_ns == 0 {
            return Observation::MissingTimestamp;
        }
        if !sample.value.is_finite() {
            return Observation::NonFinite;
        }
        let v = sample.value * f64::from(self.scale);
        if !v.is_finite() || v.abs() > cfg.max_value {
            return Observation::OutOfRange;
        }
        let level_delta = !self.role.is_counter() && sample.temporality == Temporality::Delta;
        if v < 0.0 && !level_delta {
            return Observation::Negative;
        }
        let bucket_ns = cfg.bucket_ns();
        let idx = sample.t_ns / bucket_ns;
        let fast_idx = sample.t_ns / cfg.fast_bucket_ns();
        let first = self.last_t_ns == 0;
        if !first {
            if sample.t_ns < self.last_t_ns {
                return Observation::OutOfOrder;
            }
            if sample.t_ns == self.last_t_ns {
                return Observation::Duplicate;
            }
            let gap = cfg.max_forward_gap_ns();
            if gap > 0 && sample.t_ns - self.last_t_ns > gap {
                let confirmed = self.pending_jump_ns != 0
                    && sample.t_ns > self.pending_jump_ns
                    && sample.t_ns - self.pending_jump_ns <= gap;
                if !confirmed {
                    self.pending_jump_ns = sample.t_ns;
                    return Observation::TooFarAhead;
                }
                // A new timeline: nothing from the old one is comparable any more.
                self.pending_jump_ns = 0;
                self.old_high = [f32::NEG_INFINITY; 2];
                self.ring.reset(idx);
                if let Some(f) = &mut self.fast {
                    f.reset(fast_idx);
                }
                self.seg_start = idx;
                self.primed = false;
                self.last_t_ns = 0;
                return self.observe(cfg, sample);
            }
        }
        self.pending_jump_ns = 0;
        if first {
            self.ring.reset(idx);
            self.seg_start = idx;
        } else {
            self.advance(idx);
        }
        if let Some(f) = &mut self.fast {
            if first {
                f.reset(fast_idx);
            } else {
                f.advance(fast_idx);
            }
        }
        let start_changed = sample.temporality != Temporality::Delta
            && sample.start_ns != 0
            && self.start_ns != 0
            && sample.start_ns != self.start_ns;
        let obs = if self.role.is_counter() {
            self.observe_counter(sample, v, start_changed, first)
        } else {
            self.observe_level(cfg, v, start_changed, level_delta)
        };
        if obs == Observation::Negative {
            return obs;
        }
        self.last_t_ns = sample.t_ns;
        if sample.temporality != Temporality::Delta {
            self.start_ns = sample.start_ns;
        }
        obs
    }

    fn observe_counter(
        &mut self,
        sample: Sample,
        v: f64,
        start_changed: bool,
        first: bool,
    ) -> Observation {
        match sample.temporality {
            Temporality::Delta => {
                let from = if sample.start_ns != 0 && sample.start_ns < sample.t_ns {
                    Some(sample.start_ns)
                } else if !first {
                    Some(self.last_t_ns)
                } else {
                    None
                };
                self.primed = true;
                self.last_raw += v;
                match from {
                    Some(from) => {
                        let secs = (sample.t_ns - from) as f64 * 1e-9;
                        self.add_increment(v, secs);
                        Observation::Accepted
                    }
                    None => Observation::Ignored,
                }
            }
            Temporality::Cumulative | Temporality::Gauge => {
                if !self.primed || first {
                    self.primed = true;
                    self.last_raw = v;
                    return Observation::Ignored;
                }
                if start_changed || v < self.last_raw {
                    self.last_raw = v;
                    self.begin_segment(if start_changed {
                        RestartKind::StartTime
                    } else {
                        RestartKind::CounterReset
                    });
                    return Observation::Reset;
                }
                let inc = v - self.last_raw;
                self.last_raw = v;
                let secs = (sample.t_ns - self.last_t_ns) as f64 * 1e-9;
                self.add_increment(inc, secs);
                Observation::Accepted
            }
        }
    }

    fn add_increment(&mut self, inc: f64, secs: f64) {
        self.last_inc = inc as f32;
        self.ring.record_increment(inc as f32, secs as f32);
    }

    fn observe_level(
        &mut self,
        cfg: &DetectorConfig,
        v: f64,
        start_changed: bool,
        level_delta: bool,
    ) -> Observation {
        let level = if level_delta {
            let l = if self.primed { self.last_raw + v } else { v };
            if l < 0.0 {
                return Observation::Negative;
            }
            l
        } else {
            v
        };
        // JMX reports a pool's after-GC usage as 0 until the pool's first collection (tens of
        // minutes after every start): that is "unknown", not a floor, and fitting it would make
        // the first day after each start look like steep growth.
        if self.role == Role::HeapAfterGc && level == 0.0 {
            if start_changed {
                self.begin_segment(RestartKind::StartTime);
                return Observation::Reset;
            }
            return Observation::Ignored;
        }
        let mut obs = Observation::Accepted;
        if self.primed {
            let dropped = self
                .recent_floor()
                .is_some_and(|floor| level < floor * (1.0 - cfg.restart_drop_fraction));
            if start_changed || dropped {
                let kind = if start_changed {
                    RestartKind::StartTime
                } else {
                    RestartKind::Drop
                };
                self.begin_segment(kind);
                obs = Observation::Reset;
            }
        }
        self.primed = true;
        self.last_raw = level;
        self.ring.record_level(level as f32);
        if let Some(f) = &mut self.fast {
            f.record_level(level as f32);
        }
        obs
    }

    /// The floor the drop test compares with: the lower of the newest complete bucket's minimum
    /// and the head bucket's minimum, within the current segment.
    fn recent_floor(&self) -> Option<f64> {
        let head = self.ring.head();
        let cur = self.ring.min(head);
        let prev = if head > self.seg_start {
            self.ring.min(head - 1)
        } else {
            None
        };
        match (cur, prev) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Moves the ring forward, remembering the floors of buckets that fall out of it.
    fn advance(&mut self, idx: u64) {
        let head = self.ring.head();
        if idx > head && !self.role.is_counter() {
            if let Some(last) = idx.checked_sub(BUCKETS as u64) {
                let first = self.ring.oldest().max(self.seg_start);
                for i in first..=last.min(head) {
                    if let Some(v) = self.ring.min(i) {
                        self.remember_high(i, v as f32);
                    }
                }
            }
        }
        self.ring.advance(idx);
    }

    fn remember_high(&mut self, idx: u64, v: f32) {
        let epoch = (idx / BUCKETS as u64) as u32;
        let slot = (epoch % 2) as usize;
        if self.old_epoch[slot] != epoch || self.old_high[slot] == f32::NEG_INFINITY {
            self.old_epoch[slot] = epoch;
            self.old_high[slot] = v;
        } else {
            self.old_high[slot] = self.old_high[slot].max(v);
        }
    }

    /// Highest floor of this segment among buckets that already left the ring (up to about three
    /// long windows back).
    pub fn history_high(&self) -> Option<f64> {
        let now_epoch = self.ring.head() / BUCKETS as u64;
        (0..2)
            .filter(|&s| {
                self.old_high[s].is_finite() && u64::from(self.old_epoch[s]) + 3 >= now_epoch
            })
            .map(|s| f64::from(self.old_high[s]))
            .fold(None, |acc: Option<f64>, v| {
                Some(acc.map_or(v, |a| a.max(v)))
            })
    }

    fn begin_segment(&mut self, kind: RestartKind) {
        self.old_high = [f32::NEG_INFINITY; 2];
        self.prev_seg_start = self.seg_start;
        self.seg_start = self.ring.head();
        // The head bucket may hold points of the old process; they belong to the old segment.
        self.ring.clear_head();
        // The fast window sees the current segment only.
        if let Some(f) = &mut self.fast {
            let head = f.head();
            f.reset(head);
        }
        self.restarts = self.restarts.saturating_add(1);
        self.restarted = true;
        self.restart_kind = kind;
    }

    /// Summary for the admin API: the floor's trend over both windows (no limit applied).
    pub fn summary(&self, cfg: &DetectorConfig) -> SeriesSummary {
        let to_summary = |a: Option<Assessment>| {
            a.map(|a| TrendSummary {
                slope_per_hour: a.fit.slope * 3600.0,
                r_squared: a.fit.r_squared,
                n: a.fit.n,
                n_eff: a.fit.n_eff,
                significant: a.significant,
                leak: a.leak,
                span_seconds: a.span_secs,
            })
        };
        SeriesSummary {
            role: self.role,
            last_value: self.last_raw,
            last_t_ns: self.last_t_ns,
            short: to_summary(self.assess(cfg, cfg.short_buckets(), None)),
            long: to_summary(self.assess(cfg, BUCKETS, None)),
            fast: to_summary(self.assess_fast(cfg, None)),
            restarts: u32::from(self.restarts),
            last_restart: self.restart_kind,
        }
    }

    /// Judges the current segment's trend over the newest `window` complete buckets.
    pub fn assess(
        &self,
        cfg: &DetectorConfig,
        window: usize,
        limit: Option<f64>,
    ) -> Option<Assessment> {
        let head = self.ring.head();
        let from = head.saturating_sub(window as u64).max(self.seg_start);
        let input = TrendInput {
            ring: &self.ring,
            from,
            to: head,
            history_from: self.seg_start,
            history_high: self.history_high(),
            counter: self.role.is_counter(),
            limit,
            bucket_secs: cfg.bucket_secs(),
            min_span_secs: cfg.min_coverage * cfg.short_window.as_secs_f64(),
        };
        trend::assess(cfg, &input)
    }

    /// Judges the current segment's floor over the fast window (memory gauges only): its
    /// complete fast buckets, with the new-high test reaching back through the segment's
    /// (coarse) buckets older than the window.
    pub fn assess_fast(&self, cfg: &DetectorConfig, limit: Option<f64>) -> Option<Assessment> {
        let fast = self.fast.as_deref()?;
        let head = fast.head();
        let from = head.saturating_sub(BUCKETS as u64).max(fast.oldest());
        // Coarse buckets wholly before the fast window.
        let before = from * cfg.fast_bucket_ns() / cfg.bucket_ns();
        let mut high = self.history_high();
        for i in self.ring.oldest().max(self.seg_start)..before.min(self.ring.head()) {
            if let Some(v) = self.ring.min(i) {
                high = Some(high.map_or(v, |h: f64| h.max(v)));
            }
        }
        let input = TrendInput {
            ring: fast,
            from,
            to: head,
            history_from: from,
            history_high: high,
            counter: false,
            limit,
            bucket_secs: cfg.fast_bucket_secs(),
            min_span_secs: cfg.fast_window_secs() / 3.0,
        };
        // A count's growth is not in bytes: the memory effect sizes do not apply to it.
        let counts = matches!(self.role(), Role::Goroutines | Role::ObjectCount);
        let grows = |a: &Assessment| {
            if counts {
                a.significant && !a.saturating && a.new_high
            } else {
                a.leak
            }
        };
        let whole = trend::assess(cfg, &input);
        if whole.is_some_and(|a| grows(&a)) {
            return whole;
        }
        // Growth that began inside the window bends a line fitted over all of it (flat, then
        // rising), and its autocorrelated residuals fail the t-test. The newest spans are judged
        // on their own, shortest first, each when the stretch before it inside the window was
        // flat: the same spans at every fast bucket, so the verdict does not hop with the noise.
        // Several spans are several tests: each is held to `confidence` divided among them
        // (Bonferroni), so the newest spans do not raise the rate of suspicions on noise.
        let strict = DetectorConfig {
            confidence: 1.0 - (1.0 - cfg.confidence) / FAST_SPANS.len() as f64,
            ..cfg.clone()
        };
        let cfg = &strict;
        for n in FAST_SPANS {
            let start = head.saturating_sub(n);
            if start <= from + 2 {
                break;
            }
            let span = TrendInput {
                from: start,
                min_span_secs: cfg.fast_window_secs() / 6.0,
                ..input
            };
            let before = TrendInput { to: start, ..input };
            if let Some(mut a) = trend::assess(cfg, &span).filter(grows) {
                if trend::flat_before(cfg, &before, a.fit.slope) {
                    a.after_flat = true;
                    return Some(a);
                }
            }
        }
        whole
    }

    /// Whether the fast buckets from `from` on show the collections of a sawtooth: a heap in
    /// use (not an after-GC floor) has a floor in a bucket only if a collection happened in it,
    /// seen as a minimum well below the previous bucket's maximum. At least half of the
    /// adjacent pairs must show one. Before an old generation's first collection, or with a GC
    /// cycle longer than a fast bucket, the minima ride the sawtooth's ramp and are no floor.
    pub fn fast_sees_collections(&self, from: u64) -> bool {
        let Some(fast) = self.fast.as_deref() else {
            return false;
        };
        let (mut pairs, mut drops) = (0u32, 0u32);
        for i in from.max(fast.oldest()) + 1..fast.head() {
            if let (Some(lo), Some(prev_lo), Some(prev_hi)) =
                (fast.min(i), fast.min(i - 1), fast.max(i - 1))
            {
                pairs += 1;
                if lo < prev_hi - 0.5 * (prev_hi - prev_lo) && prev_hi > prev_lo {
                    drops += 1;
                }
            }
        }
        pairs > 0 && 2 * drops >= pairs
    }

    /// Absolute index of the newest fast bucket (`None` for series without a fast ring).
    pub fn fast_head(&self) -> Option<u64> {
        self.fast.as_deref().map(Ring::head)
    }

    /// Judges the previous segment (the one ended by the latest restart), if the ring still
    /// holds it, and returns it with the peak it reached.
    pub fn assess_previous_segment(
        &self,
        cfg: &DetectorConfig,
        limit: Option<f64>,
    ) -> (Option<Assessment>, Option<f64>) {
        if self.restarts == 0 || self.seg_start <= self.prev_seg_start {
            return (None, None);
        }
        let from = self.prev_seg_start.max(self.ring.oldest());
        let mut peak: Option<f64> = None;
        for idx in from..self.seg_start {
            if let Some(m) = self.ring.max(idx) {
                peak = Some(peak.map_or(m, |p: f64| p.max(m)));
            }
        }
        let input = TrendInput {
            ring: &self.ring,
            from,
            // Assess as if `seg_start` were the head: the buckets of the old segment are complete.
            to: self.seg_start,
            history_from: from,
            history_high: None,
            counter: self.role.is_counter(),
            limit,
            bucket_secs: cfg.bucket_secs(),
            min_span_secs: 0.0,
        };
        (trend::assess_segment(cfg, &input), peak)
    }

    /// The bucket ring (read-only).
    pub fn ring(&self) -> &Ring {
        &self.ring
    }

    /// Absolute index of the newest bucket.
    pub fn head_bucket(&self) -> u64 {
        self.ring.head()
    }

    /// First bucket of the current segment.
    pub fn segment_start(&self) -> u64 {
        self.seg_start
    }

    /// Start time of the last accepted point (0 = unknown).
    pub fn start_ns(&self) -> u64 {
        self.start_ns
    }

    /// Last accepted event time.
    pub fn last_t_ns(&self) -> u64 {
        self.last_t_ns
    }

    /// Last value (bytes for memory roles; running total for counters).
    pub fn last_value(&self) -> f64 {
        self.last_raw
    }

    /// Increment added by the latest accepted counter point (the seconds it covers went into
    /// the ring: [`Ring::rate`]).
    pub fn last_increment(&self) -> f64 {
        f64::from(self.last_inc)
    }

    /// Restarts seen so far.
    pub fn restarts(&self) -> u32 {
        u32::from(self.restarts)
    }

    /// Whether the latest observed point began a new segment (a restart was detected on it).
    pub fn restarted_at_latest_point(&self) -> bool {
        self.restarted
    }

    /// How the latest restart was detected.
    pub fn last_restart_kind(&self) -> RestartKind {
        self.restart_kind
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const S: u64 = 1_000_000_000;

    fn gauge(role: Role) -> SeriesDetector {
        SeriesDetector::new(Classified { role, scale: 1.0 })
    }

    fn pt(t_s: u64, value: f64) -> Sample {
        Sample {
            t_ns: t_s * S,
            start_ns: 0,
            value,
            temporality: Temporality::Gauge,
        }
    }

    fn cum(t_s: u64, start_s: u64, value: f64) -> Sample {
        Sample {
            t_ns: t_s * S,
            start_ns: start_s * S,
            value,
            temporality: Temporality::Cumulative,
        }
    }

    fn cfg() -> DetectorConfig {
        DetectorConfig::with_windows(Duration::from_secs(60), Duration::from_secs(120))
    }

    #[test]
    fn state_fits_in_360_bytes() {
        // 360 + the name pointer + the resource key = `crate::engine::table::TRACKED_MAX_BYTES`.
        let size = std::mem::size_of::<SeriesDetector>();
        assert!(size <= 360, "SeriesDetector is {size} bytes");
    }

    #[test]
    fn first_gauge_sample_is_accepted() {
        let mut s = gauge(Role::HeapUsed);
        assert_eq!(s.observe(&cfg(), pt(100, 5.0)), Observation::Accepted);
        assert_eq!(s.last_value(), 5.0);
        assert_eq!(s.last_t_ns(), 100 * S);
    }

    #[test]
    fn non_finite_values_are_refused() {
        let mut s = gauge(Role::HeapUsed);
        let c = cfg();
        assert_eq!(s.observe(&c, pt(1, f64::NAN)), Observation::NonFinite);
        assert_eq!(s.observe(&c, pt(1, f64::INFINITY)), Observation::NonFinite);
        assert_eq!(
            s.observe(&c, pt(1, f64::NEG_INFINITY)),
            Observation::NonFinite
        );
        assert_eq!(s.last_t_ns(), 0);
    }

    #[test]
    fn zero_timestamp_is_refused() {
        let mut s = gauge(Role::HeapUsed);
        assert_eq!(s.observe(&cfg(), pt(0, 1.0)), Observation::MissingTimestamp);
    }

    #[test]
    fn negative_and_huge_values_are_refused() {
        let mut s = gauge(Role::Rss);
        let c = cfg();
        assert_eq!(s.observe(&c, pt(1, -1.0)), Observation::Negative);
        assert_eq!(s.observe(&c, pt(1, 9.3e18)), Observation::OutOfRange);
        assert_eq!(s.observe(&c, pt(1, 1e9)), Observation::Accepted);
    }

    #[test]
    fn out_of_order_and_duplicates_are_refused() {
        let mut s = gauge(Role::HeapUsed);
        let c = cfg();
        assert_eq!(s.observe(&c, pt(10, 1.0)), Observation::Accepted);
        assert_eq!(s.observe(&c, pt(10, 2.0)), Observation::Duplicate);
        assert_eq!(s.observe(&c, pt(9, 2.0)), Observation::OutOfOrder);
        assert_eq!(s.last_value(), 1.0);
    }

    #[test]
    fn first_cumulative_sample_primes_the_rate() {
        let mut s = gauge(Role::GcCount);
        let c = cfg();
        assert_eq!(s.observe(&c, cum(10, 1, 100.0)), Observation::Ignored);
        assert_eq!(s.last_increment(), 0.0);
        assert_eq!(s.observe(&c, cum(12, 1, 104.0)), Observation::Accepted);
        assert_eq!(s.last_increment(), 4.0);
        // 4 over 2 s, alone in its bucket.
        assert_eq!(s.ring().rate(s.head_bucket()), Some(2.0));
    }

    #[test]
    fn counter_decrease_is_a_reset() {
        let mut s = gauge(Role::RequestCount);
        let c = cfg();
        s.observe(&c, cum(10, 1, 100.0));
        s.observe(&c, cum(12, 1, 110.0));
        assert_eq!(s.observe(&c, cum(14, 1, 3.0)), Observation::Reset);
        assert_eq!(s.restarts(), 1);
        assert_eq!(s.last_restart_kind(), RestartKind::CounterReset);
        assert_eq!(s.observe(&c, cum(16, 1, 5.0)), Observation::Accepted);
        assert_eq!(s.last_increment(), 2.0);
        assert_eq!(s.ring().rate(s.head_bucket()), Some(1.0));
    }

    #[test]
    fn start_time_change_is_a_reset() {
        let mut s = gauge(Role::GcCount);
        let c = cfg();
        s.observe(&c, cum(10, 1, 100.0));
        assert_eq!(s.observe(&c, cum(12, 11, 150.0)), Observation::Reset);
        assert_eq!(s.last_restart_kind(), RestartKind::StartTime);
        assert!(s.restarted_at_latest_point());
        assert_eq!(s.observe(&c, cum(14, 11, 160.0)), Observation::Accepted);
        assert!(!s.restarted_at_latest_point());
    }

    #[test]
    fn memory_drop_below_floor_is_a_restart_but_gc_is_not() {
        let mut s = gauge(Role::HeapUsed);
        let c = cfg();
        // A 30 % sawtooth: each GC drops to the floor, never far below it.
        let mut t = 1;
        for cycle in 0..5 {
            for k in 0..5 {
                let v = 100e6 + f64::from(k) * 10e6 + f64::from(cycle) * 1e5;
                assert_eq!(s.observe(&c, pt(t, v)), Observation::Accepted);
                t += 1;
            }
        }
        assert_eq!(s.restarts(), 0);
        assert_eq!(s.observe(&c, pt(t, 30e6)), Observation::Reset);
        assert_eq!(s.last_restart_kind(), RestartKind::Drop);
        assert_eq!(s.segment_start(), s.head_bucket());
    }

    #[test]
    fn zero_after_gc_is_unknown_not_a_floor() {
        let mut s = gauge(Role::HeapAfterGc);
        let c = cfg();
        assert_eq!(s.observe(&c, pt(1, 0.0)), Observation::Ignored);
        assert_eq!(s.observe(&c, pt(2, 0.0)), Observation::Ignored);
        assert_eq!(s.ring().count(s.head_bucket()), 0);
        assert_eq!(s.observe(&c, pt(3, 300e6)), Observation::Accepted);
        assert_eq!(s.ring().min(s.head_bucket()), Some(300e6));
        // After a restart the pool reads 0 again: a new segment, but no 0 in the floor.
        let restarted = cum(10, 9, 0.0);
        s.observe(&c, cum(5, 1, 310e6));
        assert_eq!(s.observe(&c, restarted), Observation::Reset);
        assert_eq!(s.restarts(), 1);
        assert_eq!(s.ring().count(s.head_bucket()), 0);
        // Heap in use may well be 0 (an empty space): only after-GC zeros are skipped.
        let mut u = gauge(Role::HeapUsed);
        assert_eq!(u.observe(&c, pt(1, 0.0)), Observation::Accepted);
    }

    #[test]
    fn delta_counter_uses_start_time() {
        let mut s = gauge(Role::GcCount);
        let d = Sample {
            t_ns: 20 * S,
            start_ns: 15 * S,
            value: 10.0,
            temporality: Temporality::Delta,
        };
        assert_eq!(s.observe(&cfg(), d), Observation::Accepted);
        assert_eq!(s.last_increment(), 10.0);
        assert_eq!(s.ring().rate(s.head_bucket()), Some(2.0));
    }

    #[test]
    fn far_future_jump_needs_confirmation() {
        let mut s = gauge(Role::HeapUsed);
        let c = cfg(); // max_forward_gap defaults to long_window = 120 s
        assert_eq!(s.observe(&c, pt(100, 1.0)), Observation::Accepted);
        assert_eq!(s.observe(&c, pt(10_000_000, 2.0)), Observation::TooFarAhead);
        // The old timeline continues undisturbed.
        assert_eq!(s.observe(&c, pt(102, 3.0)), Observation::Accepted);
        assert_eq!(s.last_t_ns(), 102 * S);
        // Two consistent points on a new timeline are accepted (after a real outage).
        assert_eq!(s.observe(&c, pt(1_000, 4.0)), Observation::TooFarAhead);
        assert_eq!(s.observe(&c, pt(1_002, 5.0)), Observation::Accepted);
        assert_eq!(s.last_t_ns(), 1_002 * S);
    }

    #[test]
    fn unit_scale_applies() {
        let mut s = SeriesDetector::new(Classified {
            role: Role::Rss,
            scale: 1024.0,
        });
        s.observe(&cfg(), pt(1, 2.0));
        assert_eq!(s.last_value(), 2048.0);
    }
}
