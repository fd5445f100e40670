//! The leak detector: pure, event-time math that turns runtime memory metrics into leak verdicts.
//!
//! # Why not `deriv(heap[6h]) > X`
//! Slope-and-R² on raw memory (PromQL `deriv`, `numpy.polyfit`) is what most teams run, and
//! published experience (Jindal et al.; Microsoft RESIN, OSDI 2022) says it drowns in false
//! alarms: a GC sawtooth, a cache warming up, the daily traffic wave, a one-off step, a nightly
//! batch job all have a positive slope over some window. What works is to fit the memory that
//! *survives* GC, to cut the history at restarts and step changes, to demand that growth persists
//! and keeps making new highs, and to weigh it against the time left until the limit. This module
//! does that in-stream, per series, in constant memory.
//!
//! # Layout
//! - [`stats`]: mergeable moments (Welford/Chan), least squares (a line, a parabola, a plane in
//!   load and time), lag-1 autocorrelation, the effective sample size and a Student-t quantile.
//! - [`window`]: a fixed ring of time buckets (per bucket: min, max, count) aligned to absolute
//!   event time, so every series of a process shares bucket boundaries.
//! - [`series`]: [`SeriesDetector`], the per-series state (352 bytes): validation of points,
//!   counters into rates, restart detection and segmentation.
//! - [`trend`]: the verdict on one series' floor over a window: significance with autocorrelation,
//!   effect size, change-point (step) test, saturation (warm-up) test, new highs, time to limit.
//! - [`resource`]: [`ResourceDetector`], which combines a process' series (heap, native and
//!   resident memory, GC, requests, limits, committed heap) and runs the ok → suspected →
//!   confirmed → resolved lifecycle.
//! - `scenarios` (tests only): synthetic traces of leaks and traps fed straight to the detector
//!   (the OTLP-level suite is `tests/scenarios.rs`).
//!
//! # Method, in one paragraph per decision
//! - **What is judged**: heap floors (bucket minima, after-GC usage; JMX's 0 before a pool's
//!   first collection is "unknown", not a floor) and, when the process reports its committed
//!   heap, resident minus committed memory (native memory). Resident memory itself follows the
//!   committed heap, i.e. the sawtooth's peaks, so it is primary only for processes without heap
//!   metrics (Python, native programs) and otherwise only supports the other signals.
//! - **Load**: with a request rate, each floor is regressed on load and time together
//!   (`floor ≈ a + b·rps + c·t`, see [`stats::PlaneFit`]) over the part of the long window its
//!   trend is judged on; growth counts only if `c`, the growth at constant load, is significant
//!   (residual autocorrelation discounted) and at least `min_growth_bytes_per_hour`.
//! - **Maturity**: without a load regression, a first-day segment confirms only once its long
//!   window spans `confirm_span_without_load` of a day (or the limit is less than a long window
//!   away); suspicion is not delayed.
//! - **Urgency is not evidence**: the forecast to a known limit beyond `max_time_to_limit` only
//!   keeps the short window from raising a suspicion; the long window confirms slow leaks on
//!   big heaps, with the forecast in the event.
//! - **Fast window** (speed scales with the strength of the evidence): memory gauges also keep
//!   a ring of [`window::BUCKETS`] buckets of `bucket / FAST_DIVISOR` (the newest 3 h with the
//!   default windows). Its floor is judged with the same gates as the other windows (see
//!   [`trend`]), plus three of its own. First, the growth must not bend down at all: any
//!   significant concavity, or a newer half growing significantly slower, vetoes it, because
//!   over 1–3 h a warm-up's bend is all there is to tell it from a leak. Second, the growth must
//!   be at least `fast_min_growth` of the floor per fast window, so only leaks large against
//!   their own heap take this route. Third, with a request rate, the floor's relative growth per
//!   hour must exceed the request rate's: memory that follows traffic grows at most as fast,
//!   relatively, as the traffic does, and at falling traffic any strong growth counts. This
//!   sidesteps the long window's load regression, in which a late leak at falling traffic is
//!   collinear with the load. For a heap in use (sawtooth), at least half of the fast buckets
//!   must show a collection: before an old generation's first collection, the minima ride the
//!   ramp. A leak that began inside the fast window is a bent line over all of it (flat, then
//!   rising), whose autocorrelated residuals fail the t-test; so the newest spans (6 to 22 fast
//!   buckets, about ×1.4 apart) are also judged on their own when the stretch before them is
//!   flat (not rising significantly, and growing at under half the span's slope: a warm-up's
//!   older part grows faster than its newer one). Several spans are several tests: each is held
//!   to the confidence divided among them (Bonferroni). The spans are fixed, not fitted
//!   change points, so the verdict does not hop with the noise from one fast bucket to the next.
//!   A process that reports requests must show a known load trend (two coarse buckets of rates)
//!   for its growth to outpace. Such evidence suspects after a sixth of the fast window. It
//!   confirms after the whole fast window (a process at least a short window old: bounded
//!   episodes like a batch job end sooner), or after a sixth of it when the forecast reaches a
//!   known limit within two fast windows. A younger process's growth is suspected this way only
//!   when it began after a flat stretch. Why not faster: a nightly batch job that accumulates
//!   hundreds of MB linearly for 3 h is, until it releases them, the same trace as a leak of that
//!   rate; confirming after 2 h would page on its first night.
//! - **A pod's limit**: a process whose resource names its pod (`k8s.pod.uid`, and its
//!   container) gets the memory limit another resource of the same pod and container reports
//!   (the Collector's k8s_cluster/kubeletstats receivers), joined by the engine
//!   (`ResourceDetector::set_container_limit`): trusted like a configured one.
//! - **Previous peak as a limit**: when a segment grew until its process restarted, the peak
//!   it reached is that series' limit for the forecast of the next segments (when no runtime,
//!   container or configured limit is known): an OOM-restart cycle is confirmed early in its
//!   second segment.
//! - **Resolution**: an incident stays open while a long window still grows by the minimum
//!   effect size, significant or not.
//! - **Restart cycles**: several series see the same restart; if any finds the finished segment
//!   saturating (a warm-up), no series counts it as a grown cycle.
//!
//! # Known limits
//! - With no history (the first day of a process) and no request counter, the rising half of a
//!   strong daily wave, or a warm-up slower than about half the short window, looks like a leak
//!   for a few hours and may be *suspected* before it bends; it is confirmed only if it still
//!   looks like one after `confirm_span_without_load` of a day. From the second day the new-high
//!   test sees yesterday's crest.
//! - On the first morning of a process with a request counter, load and time rise together and
//!   cannot be separated: growth is not evidence until traffic turns (after the daily peak),
//!   so a leak that starts with the process is confirmed some hours after the first peak.
//! - Memory that follows load with a hysteresis longer than a day (an allocator that never gives
//!   back a peak) is not modelled by the load regression; the autocorrelation discount of `c`
//!   is what keeps such a floor from counting as growth.
//! - A native leak in a process that reports heap metrics but no committed heap is seen only as
//!   supporting `rss`, never raised on its own.
//! - A step followed by growth inside the long window is seen by the short window only once the
//!   step has left it, and the long window's deceleration test may hold it back until then.
//!
//! # Time and scale
//! Time is always the data point's own timestamp, passed in; nothing here reads a clock, so the
//! same input yields the same events at any replay speed. Every time scale (bucket width, holds,
//! gap tolerance) derives from [`DetectorConfig`]; the windows may be hours (production) or
//! seconds (end-to-end tests). The long window is divided into [`window::BUCKETS`] buckets; the
//! short window uses the newest of them.

pub mod resource;
pub mod series;
pub mod stats;
pub mod trend;
pub mod window;

use std::time::Duration;

pub use resource::{
    LeadingTrend, LeakEvent, LeakEventKind, LeakState, LimitSource, Resolution, ResourceDetector,
    ResourceSummary,
};
pub use series::{RestartKind, SeriesDetector, SeriesSummary, TrendSummary};

/// Detector settings. Every knob has a default suited to hour-scale production traces; the
/// durations marked "derived" default to a fraction of the windows, so a configuration that only
/// sets the windows (e.g. to seconds in tests) stays consistent.
#[derive(Clone, Debug, serde::Deserialize, serde::Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DetectorConfig {
    /// Short trend window: fast leaks are suspected from a fit over this span.
    #[serde(with = "humantime_serde")]
    pub short_window: Duration,
    /// Long trend window: slow leaks are judged, and suspicions confirmed, over this span. It is
    /// divided into 32 buckets, which sets the time resolution of the whole detector.
    #[serde(with = "humantime_serde")]
    pub long_window: Duration,
    /// Fraction of the short window that a fit must span before it may count as evidence.
    pub min_coverage: f64,
    /// Fewest non-empty buckets in a fit.
    pub min_fit_points: u32,
    /// One-sided confidence for the slope t-test (e.g. 0.99).
    pub confidence: f64,
    /// Fewest effective samples (after discounting autocorrelation of residuals) for a fit to be
    /// significant at all.
    pub min_effective_samples: f64,
    /// Smallest growth of the memory floor worth reporting, in bytes per hour.
    pub min_growth_bytes_per_hour: f64,
    /// Smallest growth worth reporting, in percent per hour of the memory limit when one is known,
    /// else of the current floor.
    pub min_growth_percent_per_hour: f64,
    /// Urgency horizon: growth that would take longer than this to reach a known limit is not
    /// *suspected* from the short window alone (it is not urgent). It never vetoes the long
    /// window: a significant slow leak on a big heap is confirmed, with the forecast in the
    /// event. Derived default: 30 × `long_window`. Zero disables the gate.
    #[serde(with = "humantime_serde")]
    pub max_time_to_limit: Option<Duration>,
    /// Warm-up test: growth is "saturating" (a cache filling up, not a leak) when a parabola fits
    /// the window significantly better than a line, bending down, and its slope at the newest
    /// bucket is below this fraction of the line's slope.
    pub saturation_ratio: f64,
    /// Step test: if a single step (two flat levels) leaves at most this fraction of the straight
    /// line's squared residuals, the window is cut at the step and only the part after it is fit.
    pub step_sse_ratio: f64,
    /// A memory value below `(1 - restart_drop_fraction)` × the recent floor marks a restart.
    pub restart_drop_fraction: f64,
    /// Consecutive grow-then-restart cycles that confirm a leak.
    pub restart_cycles: u32,
    /// A segment whose peak reached this fraction of the limit before a restart counts as an
    /// out-of-memory restart even when it was too short to fit.
    pub oom_fraction: f64,
    /// A limit series is trusted only if it varies by at most this fraction over the long window
    /// (V8's per-space "limit" moves with usage and is not a limit).
    pub limit_max_variation: f64,
    /// Evidence must hold this long before a resource becomes suspected. Derived default:
    /// `short_window` / 3.
    #[serde(with = "humantime_serde")]
    pub suspect_hold: Option<Duration>,
    /// Long-window evidence must hold this long before a suspicion is confirmed (counted from
    /// when the evidence started, so it may overlap `suspect_hold`). Derived default:
    /// `short_window` / 2.
    #[serde(with = "humantime_serde")]
    pub confirm_hold: Option<Duration>,
    /// Absence of evidence (with enough data to judge) must hold this long before an incident is
    /// resolved. Derived default: `short_window` / 3.
    #[serde(with = "humantime_serde")]
    pub resolve_hold: Option<Duration>,
    /// Without a request rate to regress memory on load, a segment's long-window fit must span
    /// at least this fraction of `long_window` before it may confirm an incident (the first
    /// morning of a process looks like a leak until it has seen most of a day), unless the
    /// forecast reaches a known limit within one `long_window`. Suspicion is not delayed.
    pub confirm_span_without_load: f64,
    /// Hysteresis: once suspected, a trend keeps the incident open while its t-statistic and
    /// growth are above this fraction of the opening thresholds.
    pub hysteresis: f64,
    /// A point more than this far ahead of the last accepted one is refused unless the next point
    /// confirms the new timeline (protects against one bogus far-future timestamp). Derived
    /// default: `long_window`. Zero disables the check.
    #[serde(with = "humantime_serde")]
    pub max_forward_gap: Option<Duration>,
    /// Values (after unit scaling) above this are refused as implausible (e.g. Go reports an unset
    /// memory limit as `i64::MAX`).
    pub max_value: f64,
    /// The fast window: memory series also keep [`window::BUCKETS`] buckets of
    /// `bucket / FAST_DIVISOR` (the newest `long_window / 8`, 3 h by default), and a floor that
    /// grows there by at least `fast_min_growth` of itself, faster than the load, is suspected
    /// and confirmed without waiting for the short window. `false` turns it off.
    pub fast_window: bool,
    /// Effect size the fast window needs: the floor's growth over one fast window as a fraction
    /// of the floor (0.15: 5 %/h with the default 3 h fast window; 20 MiB/h on a 150 MiB heap is
    /// 13 %/h). Being relative to the window, it scales with the windows (seconds-scale tests
    /// need no other setting).
    pub fast_min_growth: f64,
}

/// Fast buckets per (long-window) bucket.
pub const FAST_DIVISOR: u64 = 8;

impl Default for DetectorConfig {
    fn default() -> Self {
        DetectorConfig {
            short_window: Duration::from_secs(6 * 3600),
            long_window: Duration::from_secs(24 * 3600),
            min_coverage: 0.75,
            min_fit_points: 6,
            confidence: 0.99,
            min_effective_samples: 3.0,
            min_growth_bytes_per_hour: 256.0 * 1024.0,
            min_growth_percent_per_hour: 0.02,
            max_time_to_limit: None,
            saturation_ratio: 0.5,
            step_sse_ratio: 0.5,
            restart_drop_fraction: 0.5,
            restart_cycles: 2,
            oom_fraction: 0.9,
            limit_max_variation: 0.1,
            suspect_hold: None,
            confirm_hold: None,
            resolve_hold: None,
            confirm_span_without_load: 0.8,
            hysteresis: 0.5,
            max_forward_gap: None,
            max_value: 9.007_199_254_740_992e15,
            fast_window: true,
            fast_min_growth: 0.09,
        }
    }
}

fn dur_ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl DetectorConfig {
    /// A configuration for tests and demos with windows in seconds: everything derived scales.
    pub fn with_windows(short: Duration, long: Duration) -> Self {
        DetectorConfig {
            short_window: short,
            long_window: long,
            ..DetectorConfig::default()
        }
    }

    /// Checks every field; the error lists each bad field with the reason.
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut errs = Vec::new();
        let mut check = |ok: bool, msg: String| {
            if !ok {
                errs.push(msg);
            }
        };
        let b = window::BUCKETS as f64;
        check(
            !self.short_window.is_zero(),
            "short_window: must be greater than zero".into(),
        );
        check(
            self.long_window >= self.short_window,
            "long_window: must be at least short_window".into(),
        );
        check(
            self.long_window.as_nanos() >= window::BUCKETS as u128,
            "long_window: too small to divide into buckets".into(),
        );
        let short_buckets = if self.long_window.is_zero() {
            0.0
        } else {
            b * self.short_window.as_secs_f64() / self.long_window.as_secs_f64()
        };
        check(
            short_buckets + 1e-9 >= f64::from(self.min_fit_points.max(3)),
            format!(
                "long_window: at most {:.2} × short_window (the short window must span min_fit_points of the {} buckets of the long window)",
                b / f64::from(self.min_fit_points.max(3)),
                window::BUCKETS
            ),
        );
        check(
            self.min_coverage > 0.0 && self.min_coverage <= 1.0,
            "min_coverage: must be in (0, 1]".into(),
        );
        check(
            (3..=window::BUCKETS as u32).contains(&self.min_fit_points),
            format!("min_fit_points: must be in 3..={}", window::BUCKETS),
        );
        check(
            self.confidence > 0.5 && self.confidence < 1.0,
            "confidence: must be in (0.5, 1)".into(),
        );
        check(
            self.min_effective_samples >= 3.0 && self.min_effective_samples.is_finite(),
            "min_effective_samples: must be at least 3".into(),
        );
        check(
            self.min_growth_bytes_per_hour >= 0.0 && self.min_growth_bytes_per_hour.is_finite(),
            "min_growth_bytes_per_hour: must be a non-negative number".into(),
        );
        check(
            self.min_growth_percent_per_hour >= 0.0 && self.min_growth_percent_per_hour.is_finite(),
            "min_growth_percent_per_hour: must be a non-negative number".into(),
        );
        check(
            self.saturation_ratio >= 0.0 && self.saturation_ratio < 1.0,
            "saturation_ratio: must be in [0, 1)".into(),
        );
        check(
            self.step_sse_ratio >= 0.0 && self.step_sse_ratio < 1.0,
            "step_sse_ratio: must be in [0, 1)".into(),
        );
        check(
            self.restart_drop_fraction > 0.0 && self.restart_drop_fraction < 1.0,
            "restart_drop_fraction: must be in (0, 1)".into(),
        );
        check(
            self.restart_cycles >= 1,
            "restart_cycles: must be at least 1".into(),
        );
        check(
            self.oom_fraction > 0.0 && self.oom_fraction <= 1.0,
            "oom_fraction: must be in (0, 1]".into(),
        );
        check(
            self.limit_max_variation >= 0.0 && self.limit_max_variation < 1.0,
            "limit_max_variation: must be in [0, 1)".into(),
        );
        check(
            self.confirm_span_without_load >= 0.0 && self.confirm_span_without_load <= 1.0,
            "confirm_span_without_load: must be in [0, 1]".into(),
        );
        check(
            self.hysteresis > 0.0 && self.hysteresis <= 1.0,
            "hysteresis: must be in (0, 1]".into(),
        );
        check(
            self.fast_min_growth > 0.0 && self.fast_min_growth.is_finite(),
            "fast_min_growth: must be a positive number".into(),
        );
        check(
            self.max_value > 0.0 && !self.max_value.is_nan(),
            "max_value: must be positive".into(),
        );
        for (name, d) in [
            ("suspect_hold", self.suspect_hold),
            ("confirm_hold", self.confirm_hold),
            ("resolve_hold", self.resolve_hold),
        ] {
            if let Some(d) = d {
                check(
                    d <= self.long_window * 4,
                    format!("{name}: must not exceed 4 × long_window"),
                );
            }
        }
        if errs.is_empty() {
            Ok(())
        } else {
            Err(errs)
        }
    }

    /// Width of one bucket in nanoseconds (`long_window` / [`window::BUCKETS`], at least 1).
    pub fn bucket_ns(&self) -> u64 {
        (dur_ns(self.long_window) / window::BUCKETS as u64).max(1)
    }

    /// Width of one bucket in seconds.
    pub fn bucket_secs(&self) -> f64 {
        self.bucket_ns() as f64 * 1e-9
    }

    /// Width of one fast bucket in nanoseconds (a bucket / [`FAST_DIVISOR`], at least 1).
    pub fn fast_bucket_ns(&self) -> u64 {
        (self.bucket_ns() / FAST_DIVISOR).max(1)
    }

    /// Width of one fast bucket in seconds.
    pub fn fast_bucket_secs(&self) -> f64 {
        self.fast_bucket_ns() as f64 * 1e-9
    }

    /// Span of the fast window in seconds (all its buckets).
    pub fn fast_window_secs(&self) -> f64 {
        self.fast_bucket_secs() * window::BUCKETS as f64
    }

    /// Number of buckets in the short window (at least 1, at most all).
    pub fn short_buckets(&self) -> usize {
        let n = (self.short_window.as_nanos() as f64 / self.bucket_ns() as f64).round();
        (n as usize).clamp(1, window::BUCKETS)
    }

    /// The effective suspect hold in nanoseconds.
    pub fn suspect_hold_ns(&self) -> u64 {
        dur_ns(self.suspect_hold.unwrap_or(self.short_window / 3))
    }

    /// The effective confirm hold in nanoseconds.
    pub fn confirm_hold_ns(&self) -> u64 {
        dur_ns(self.confirm_hold.unwrap_or(self.short_window / 2))
    }

    /// The effective resolve hold in nanoseconds.
    pub fn resolve_hold_ns(&self) -> u64 {
        dur_ns(self.resolve_hold.unwrap_or(self.short_window / 3))
    }

    /// The effective forward-gap tolerance in nanoseconds (0 = unlimited).
    pub fn max_forward_gap_ns(&self) -> u64 {
        dur_ns(self.max_forward_gap.unwrap_or(self.long_window))
    }

    /// The effective time-to-limit gate in seconds (`None` = disabled).
    pub fn max_time_to_limit_secs(&self) -> Option<f64> {
        let d = self.max_time_to_limit.unwrap_or(self.long_window * 30);
        if d.is_zero() {
            None
        } else {
            Some(d.as_secs_f64())
        }
    }
}

/// How a data point's value relates to time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Temporality {
    /// The value is the current level.
    Gauge,
    /// The value accumulates since `start_ns` (a counter, a histogram count, or a cumulative
    /// up-down counter).
    Cumulative,
    /// The value is the change over `[start_ns, t_ns]`.
    Delta,
}

/// One data point as the detector sees it.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    /// Event time (the point's `time_unix_nano`).
    pub t_ns: u64,
    /// Start time (`start_time_unix_nano`), 0 if unknown.
    pub start_ns: u64,
    /// Raw value in the metric's unit (scaled by the series' `Classified::scale`).
    pub value: f64,
    /// How the value relates to time.
    pub temporality: Temporality,
}

/// What `SeriesDetector::observe` did with a sample; every rejection is distinct so the caller
/// can count it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Observation {
    /// Accepted into the current segment.
    Accepted,
    /// NaN or ±infinity; refused.
    NonFinite,
    /// Older than the last accepted point; refused.
    OutOfOrder,
    /// Same timestamp as the last accepted point (zero interval); refused.
    Duplicate,
    /// Counter reset / restart detected; the sample starts a new segment.
    Reset,
    /// Accepted but produced no value yet (the first cumulative sample only primes the rate).
    Ignored,
    /// `t_ns == 0` (timestamp missing); refused.
    MissingTimestamp,
    /// A negative amount of memory or a negative count; refused.
    Negative,
    /// Larger than `DetectorConfig::max_value` after scaling; refused.
    OutOfRange,
    /// Further ahead of the last accepted point than `max_forward_gap`; refused unless the next
    /// point confirms the new timeline.
    TooFarAhead,
}

impl Observation {
    /// A stable snake_case label for metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Observation::Accepted => "accepted",
            Observation::NonFinite => "non_finite",
            Observation::OutOfOrder => "out_of_order",
            Observation::Duplicate => "duplicate",
            Observation::Reset => "reset",
            Observation::Ignored => "ignored",
            Observation::MissingTimestamp => "missing_timestamp",
            Observation::Negative => "negative",
            Observation::OutOfRange => "out_of_range",
            Observation::TooFarAhead => "too_far_ahead",
        }
    }

    /// Whether the sample changed the series' state (the caller should then call
    /// `ResourceDetector::on_series`).
    pub fn is_accepted(self) -> bool {
        matches!(
            self,
            Observation::Accepted | Observation::Reset | Observation::Ignored
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_config_is_valid() {
        assert_eq!(DetectorConfig::default().validate(), Ok(()));
        let s = DetectorConfig::with_windows(Duration::from_secs(60), Duration::from_secs(120));
        assert_eq!(s.validate(), Ok(()));
        assert_eq!(s.suspect_hold_ns(), 20_000_000_000);
    }

    #[test]
    fn validate_names_every_bad_field() {
        let cfg = DetectorConfig {
            short_window: Duration::from_secs(10),
            long_window: Duration::from_secs(5),
            confidence: 1.5,
            hysteresis: 0.0,
            confirm_span_without_load: 1.5,
            ..DetectorConfig::default()
        };
        let errs = cfg.validate().err().unwrap_or_default();
        for field in [
            "long_window",
            "confidence",
            "hysteresis",
            "confirm_span_without_load",
        ] {
            assert!(
                errs.iter().any(|e| e.starts_with(field)),
                "{field} missing in {errs:?}"
            );
        }
    }

    #[test]
    fn short_window_must_span_enough_buckets() {
        let cfg = DetectorConfig::with_windows(Duration::from_secs(60), Duration::from_secs(3600));
        let errs = cfg.validate().err().unwrap_or_default();
        assert!(errs.iter().any(|e| e.starts_with("long_window")));
    }

    #[test]
    fn bucket_geometry_derives_from_windows() {
        let cfg = DetectorConfig::default();
        assert_eq!(cfg.bucket_ns(), 45 * 60 * 1_000_000_000);
        assert_eq!(cfg.short_buckets(), 8);
        assert_eq!(cfg.suspect_hold_ns(), 2 * 3600 * 1_000_000_000);
        assert_eq!(cfg.confirm_hold_ns(), 3 * 3600 * 1_000_000_000);
        assert_eq!(cfg.max_time_to_limit_secs(), Some(30.0 * 86400.0));
    }
}

#[cfg(test)]
mod behaviour;
