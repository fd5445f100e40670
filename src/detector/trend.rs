//! The verdict on one series' trend over a window of buckets.
//!
//! Input: per-bucket minima of a memory series (its post-GC floor: a bucket that spans several GC
//! cycles contains at least one trough; for `HeapAfterGc` series every value is a floor), read
//! through a trailing lower envelope of 1-8 buckets chosen per fit (for buckets shorter than the
//! GC period), or per-bucket rates of a counter. A window "looks like a leak" only if every gate passes:
//!
//! 1. **Enough data**: at least `min_fit_points` buckets spanning `min_coverage` of the short
//!    window (an insufficient window is *unknown*, which neither raises nor clears an incident).
//! 2. **Change point**: if a single step (two flat levels, best split) explains the window
//!    much better than the line (`sse_step ≤ step_sse_ratio · sse_line`), the step is a one-off
//!    (deploy, config change, a cache being switched on) and only the points after it are fit; a
//!    step followed by flat memory is therefore not a leak, a step followed by growth still is.
//! 3. **Significance**: the slope's t statistic, with its variance inflated by the residuals'
//!    lag-1 autocorrelation (`n_eff`), exceeds the Student-t quantile at `confidence`. Daily
//!    waves and slow drifts leave correlated residuals and fail here, where R² would pass them.
//! 4. **Effect size**: growth ≥ `min_growth_bytes_per_hour` and ≥ `min_growth_percent_per_hour`
//!    of the limit (or of the current floor when no limit is known).
//! 5. **Not saturating**: a parabola fitted to the window is not significantly concave with an
//!    end slope below `saturation_ratio` × the line's slope, and the newer half of the window
//!    does not grow significantly slower than (and below `saturation_ratio` of) the older half. A cache warming up (or the crest
//!    of a wave) decelerates; a leak does not. (Significance again uses `n_eff`, so noise alone
//!    rarely calls a steady leak "saturating" and breaks its persistence.)
//! 6. **New high**: the newest quarter of the window reaches above every older floor of the
//!    segment, including history before the window. A floor that merely returns to yesterday's
//!    level (daily cycle, nightly batch) is not new growth.
//!
//! The forecast to a known limit is not a gate: a significant slow leak on a big heap is still
//! a leak, only not an urgent one. `within_horizon` says whether the limit is reached within
//! `max_time_to_limit`; the resource detector gates only the fast, short-window route to the
//! suspected level with it.
//!
//! `relaxed` is the hysteresis test that keeps an open incident open: slope positive with t and
//! growth above `hysteresis` × their thresholds. `persisting` says the floor still grows by at
//! least the minimum effect size, significant or not: a long window that still climbs keeps an
//! incident open even when autocorrelated residuals (a leak under a daily staircase) make the
//! t-test inconclusive.

use crate::detector::stats::{LineFit, Moments, QuadFit};
use crate::detector::window::{Points, Ring};
use crate::detector::DetectorConfig;

/// What to assess.
#[derive(Clone, Copy, Debug)]
pub struct TrendInput<'a> {
    /// The series' buckets.
    pub ring: &'a Ring,
    /// First bucket of the window.
    pub from: u64,
    /// One past the last bucket of the window (normally the head, which is still filling).
    pub to: u64,
    /// First bucket of the segment (older buckets are history for the new-high test).
    pub history_from: u64,
    /// Highest floor of the segment from before the ring (see `SeriesDetector::history_high`).
    pub history_high: Option<f64>,
    /// Whether the ring holds counter rates rather than gauge minima.
    pub counter: bool,
    /// The memory limit, if one is known.
    pub limit: Option<f64>,
    /// Width of the ring's buckets, seconds.
    pub bucket_secs: f64,
    /// Shortest span a fit must cover to count as evidence, seconds.
    pub min_span_secs: f64,
}

/// The outcome of assessing one window.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Assessment {
    /// The line fitted (x in seconds, so `slope` is per second).
    pub fit: LineFit,
    /// Seconds covered by the fitted buckets.
    pub span_secs: f64,
    /// Fitted value at the newest bucket.
    pub level: f64,
    /// Slope significantly positive.
    pub significant: bool,
    /// Growth above both minimum effect sizes.
    pub growth_ok: bool,
    /// Growth decelerating (warm-up).
    pub saturating: bool,
    /// The window was cut at a step change.
    pub step_cut: bool,
    /// The newest floor is above every older one in the segment.
    pub new_high: bool,
    /// The limit the forecast used.
    pub limit: Option<f64>,
    /// Seconds until the fitted floor reaches the limit.
    pub time_to_limit_secs: Option<f64>,
    /// No limit is known, or the forecast reaches it within `max_time_to_limit`.
    pub within_horizon: bool,
    /// Growth at or above both minimum effect sizes (significant or not).
    pub persisting: bool,
    /// All gates passed.
    pub leak: bool,
    /// The weaker test that keeps an open incident open.
    pub relaxed: bool,
    /// Span (in buckets) of the lower envelope the floor was read through.
    pub envelope_buckets: u32,
    /// Absolute index of the first bucket fitted (after a step cut, the first after the step).
    pub first_bucket: u64,
    /// A parabola fits significantly better than the line, bending down (whatever its end
    /// slope): the growth decelerates. The fast window calls such a fit no leak.
    #[serde(default)]
    pub concave: bool,
    /// A parabola fits significantly better than the line, bending up: the growth started
    /// inside the fit (a leak's onset, or a batch job's start).
    #[serde(default)]
    pub convex: bool,
    /// The fit covers only the newest part of the window, after a stretch of it that was flat
    /// (see [`flat_before`]): growth that did not start with the process.
    #[serde(default)]
    pub after_flat: bool,
    /// The newer half of the fit grows significantly slower than the older half (by any
    /// ratio): stricter than `saturating`, for the fast window.
    #[serde(default)]
    pub slowing: bool,
}

impl Assessment {
    /// Growth in value units per hour.
    pub fn slope_per_hour(&self) -> f64 {
        self.fit.slope * 3600.0
    }
}

fn value_at(input: &TrendInput<'_>, idx: u64) -> Option<f64> {
    if input.counter {
        input.ring.rate(idx)
    } else {
        input.ring.min(idx)
    }
}

/// Assesses a window; `None` if there is not enough data to judge.
pub fn assess(cfg: &DetectorConfig, input: &TrendInput<'_>) -> Option<Assessment> {
    let (pts, w) = floor_points(input)?;
    let span = span_secs(&pts, input.bucket_secs);
    if pts.len < cfg.min_fit_points as usize || span + 1e-9 < input.min_span_secs {
        return None;
    }
    judge(cfg, input, &pts, w)
}

/// Assesses a finished segment (before a restart): no coverage requirement, at least 3 buckets.
pub fn assess_segment(cfg: &DetectorConfig, input: &TrendInput<'_>) -> Option<Assessment> {
    let (pts, w) = floor_points(input)?;
    if pts.len < 3 {
        return None;
    }
    judge(cfg, input, &pts, w)
}

/// Whether the floor over `input`'s window is the flat stretch before a leak's onset, for growth
/// of `slope` (per second) after it: at least 3 buckets, not significantly rising, and growing at
/// less than half that slope. A cache warming up from a process start has no such stretch (its
/// older part grows faster than its newer one); a leak that began an hour into a steady process
/// has. Not rising significantly alone would be absence of evidence: too few effective samples
/// make any stretch "not significantly rising".
pub fn flat_before(cfg: &DetectorConfig, input: &TrendInput<'_>, slope: f64) -> bool {
    if input.counter {
        return false;
    }
    floor_points(input).is_some_and(|(pts, _)| {
        pts.len >= 3
            && LineFit::fit(pts.xs(), pts.ys()).is_some_and(|f| {
                f.slope < 0.5 * slope && !f.rising(cfg.confidence, cfg.min_effective_samples)
            })
    })
}

/// Envelope spans tried, in buckets.
const ENVELOPES: [u64; 6] = [1, 2, 3, 4, 6, 8];

/// The floor of bucket `idx` seen through a trailing envelope of `w` buckets: the lowest bucket
/// minimum among `idx - w + 1 ..= idx` (not before `lo`). `None` if bucket `idx` is empty.
fn floor_at(input: &TrendInput<'_>, idx: u64, w: u64, lo: u64) -> Option<f64> {
    input.ring.min(idx)?;
    let start = idx.saturating_sub(w - 1).max(lo);
    (start..=idx)
        .filter_map(|i| input.ring.min(i))
        .fold(None, |acc: Option<f64>, v| {
            Some(acc.map_or(v, |a| a.min(v)))
        })
}

/// The points to fit and the envelope span chosen.
///
/// A bucket's minimum is the post-GC floor only if the bucket spans a GC cycle. When buckets are
/// shorter than the GC period (second-scale windows, or a slow old-generation cycle), many
/// minima sit part-way up the sawtooth. A trailing minimum over `w` buckets (a lower envelope)
/// recovers the floor with the same slope, lagged by at most `w - 1` buckets. The span is chosen
/// per fit among [`ENVELOPES`] as the one with the smallest standard error of the slope (the
/// choice looks at noise, not at the slope itself, so it does not bias the test towards growth);
/// an envelope is only taken if it at least halves that error, since it also smooths away the
/// curvature that the saturation test looks for.
fn floor_points(input: &TrendInput<'_>) -> Option<(Points, u64)> {
    let bucket_secs = input.bucket_secs;
    if input.counter {
        let p = Points::collect(input.to, input.from, bucket_secs, |i| value_at(input, i));
        return Some((p, 1));
    }
    let lo = input.history_from.max(input.ring.oldest());
    let mut best: Option<(Points, u64, f64)> = None;
    let mut se_raw = f64::INFINITY;
    for w in ENVELOPES {
        let p = Points::collect(input.to, input.from, bucket_secs, |i| {
            floor_at(input, i, w, lo)
        });
        if w > 1 && (w as usize) * 2 > p.len {
            break;
        }
        let se = LineFit::fit(p.xs(), p.ys()).map_or(f64::INFINITY, |f| f.se);
        if w == 1 {
            se_raw = se;
        } else if se > 0.5 * se_raw {
            // An envelope must pay for its lag with a clearly cleaner floor.
            continue;
        }
        if best.as_ref().is_none_or(|(_, _, b)| se < *b) {
            best = Some((p, w, se));
        }
    }
    best.map(|(p, w, _)| (p, w))
}

fn span_secs(pts: &Points, bucket_secs: f64) -> f64 {
    if pts.len == 0 {
        return 0.0;
    }
    pts.x[pts.len - 1] - pts.x[0] + bucket_secs
}

fn mean(y: &[f64]) -> f64 {
    if y.is_empty() {
        0.0
    } else {
        y.iter().sum::<f64>() / y.len() as f64
    }
}

/// Position of the best single step, if a step explains the points much better than a line.
///
/// The step model is two flat levels split at `k` (each side at least two points). A line with
/// a level shift fits ramps with a bend just as well, and cutting a leak's onset or a warm-up's
/// bend as if it were a step loses exactly the context the other tests need.
fn step_split(cfg: &DetectorConfig, pts: &Points, line: &LineFit) -> Option<usize> {
    let y = pts.ys();
    let n = y.len();
    if n < 4 || line.sse <= 0.0 {
        return None;
    }
    let mut best: Option<(usize, f64)> = None;
    for k in 2..=n - 2 {
        let (mut l, mut r) = (Moments::default(), Moments::default());
        for (i, &v) in y.iter().enumerate() {
            if i < k {
                l.push(0.0, v);
            } else {
                r.push(0.0, v);
            }
        }
        let sse = l.syy + r.syy;
        if best.is_none_or(|(_, b)| sse < b) {
            best = Some((k, sse));
        }
    }
    let (k, sse) = best?;
    (sse <= cfg.step_sse_ratio * line.sse).then_some(k)
}

fn judge(cfg: &DetectorConfig, input: &TrendInput<'_>, all: &Points, w: u64) -> Option<Assessment> {
    let full = LineFit::fit(all.xs(), all.ys())?;
    let mut a = Assessment {
        envelope_buckets: w as u32,
        ..Assessment::default()
    };
    let mut pts = *all;
    let mut fit = full;
    if let Some(k) = step_split(cfg, all, &full) {
        a.step_cut = true;
        pts = all.tail(k);
        match LineFit::fit(pts.xs(), pts.ys()) {
            Some(f) => fit = f,
            None => {
                // Too little after the step to say anything but "a step".
                a.fit = full;
                a.span_secs = span_secs(all, input.bucket_secs);
                a.level = mean(&all.ys()[k..]);
                return Some(a);
            }
        }
    }
    a.fit = fit;
    a.first_bucket = pts.idx[0];
    a.span_secs = span_secs(&pts, input.bucket_secs);
    a.level = fit.end_value;
    a.significant = fit.rising(cfg.confidence, cfg.min_effective_samples);
    let slope_h = fit.slope * 3600.0;
    let n = pts.len;
    let y = pts.ys();

    // Saturation: significantly concave with the growth at the end well below the average, or
    // the newer half growing significantly slower than the older half.
    let parabola = QuadFit::fit(pts.xs(), y);
    a.convex = parabola.is_some_and(|q| q.convex(cfg.confidence, cfg.min_effective_samples));
    let quad = parabola.filter(|q| q.concave(cfg.confidence, cfg.min_effective_samples));
    a.concave = fit.slope > 0.0 && quad.is_some();
    a.saturating = fit.slope > 0.0
        && (quad.is_some_and(|q| q.end_slope < cfg.saturation_ratio * fit.slope)
            || decelerating(cfg, &pts, cfg.saturation_ratio));
    a.slowing = fit.slope > 0.0 && decelerating(cfg, &pts, 1.0);

    if input.counter {
        a.growth_ok = slope_h > 0.0;
        a.new_high = true;
        a.leak = a.significant && !a.saturating;
        a.relaxed = relaxed(cfg, &fit, true);
        return Some(a);
    }

    // Effect size against the limit when it is above the floor, else against the floor.
    a.limit = input.limit.filter(|l| *l > a.level && l.is_finite());
    let denom = a.limit.unwrap_or_else(|| a.level.max(mean(y))).max(1.0);
    let pct_h = slope_h / denom * 100.0;
    a.growth_ok =
        slope_h >= cfg.min_growth_bytes_per_hour && pct_h >= cfg.min_growth_percent_per_hour;

    // New high: the newest quarter against every older floor of the segment.
    let q = (n / 4).max(1);
    let recent_high = y[n - q..].iter().copied().fold(f64::MIN, f64::max);
    let recent_from = pts.idx[n - q];
    let older_from = input.history_from.max(input.ring.oldest());
    // History beyond the ring holds raw bucket minima; through an envelope the floor sits lower
    // by the average excess of the raw minima, so compare like with like.
    let excess = if w > 1 {
        let raw: f64 = pts.idx[..n]
            .iter()
            .filter_map(|&i| input.ring.min(i))
            .sum::<f64>();
        (raw - y.iter().sum::<f64>()) / n as f64
    } else {
        0.0
    };
    let mut older_max = input.history_high.map_or(f64::MIN, |h| h - excess.max(0.0));
    for idx in older_from..recent_from {
        if let Some(v) = floor_at(input, idx, w, older_from) {
            older_max = older_max.max(v);
        }
    }
    a.new_high = recent_high > older_max;

    a.time_to_limit_secs = a
        .limit
        .filter(|_| fit.slope > 0.0)
        .map(|l| (l - a.level) / fit.slope);
    a.within_horizon = match (a.time_to_limit_secs, cfg.max_time_to_limit_secs()) {
        (Some(ttl), Some(max)) => ttl <= max,
        _ => true,
    };
    a.persisting = fit.slope > 0.0 && a.growth_ok;
    a.leak = a.significant && a.growth_ok && !a.saturating && a.new_high;
    a.relaxed = relaxed(cfg, &fit, false)
        && !a.saturating
        && slope_h >= cfg.hysteresis * cfg.min_growth_bytes_per_hour
        && pct_h >= cfg.hysteresis * cfg.min_growth_percent_per_hour;
    Some(a)
}

/// Whether the newer half of the points grows significantly slower than the older half (and
/// below `saturation_ratio` of it).
fn decelerating(cfg: &DetectorConfig, pts: &Points, ratio: f64) -> bool {
    let n = pts.len;
    if n < 6 {
        return false;
    }
    let mid = (pts.x[0] + pts.x[n - 1]) / 2.0;
    let k = pts.xs().iter().position(|&x| x >= mid).unwrap_or(n);
    if k < 3 || n - k < 3 {
        return false;
    }
    let (Some(old), Some(new)) = (
        LineFit::fit(&pts.xs()[..k], &pts.ys()[..k]),
        LineFit::fit(&pts.xs()[k..], &pts.ys()[k..]),
    ) else {
        return false;
    };
    if old.slope <= 0.0 || new.slope >= ratio * old.slope {
        return false;
    }
    let df = old.n_eff + new.n_eff - 4.0;
    let se = (old.se * old.se + new.se * new.se).sqrt();
    let t_crit = crate::detector::stats::student_t_quantile(cfg.confidence, df);
    old.slope - new.slope >= t_crit * se
}

fn relaxed(cfg: &DetectorConfig, fit: &LineFit, _counter: bool) -> bool {
    let t_crit = fit.t_critical(cfg.confidence, cfg.min_effective_samples);
    fit.slope > 0.0 && t_crit.is_finite() && fit.t_stat >= cfg.hysteresis * t_crit
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn cfg() -> DetectorConfig {
        DetectorConfig::default()
    }

    /// A ring whose complete buckets 0..n have minima `f(i)`, with the head at n.
    fn ring_of(n: u64, f: impl Fn(u64) -> f64) -> Ring {
        let mut r = Ring::default();
        r.reset(0);
        for i in 0..n {
            r.advance(i);
            r.record_level(f(i) as f32);
        }
        r.advance(n);
        r
    }

    fn run(r: &Ring, from: u64, limit: Option<f64>) -> Option<Assessment> {
        let input = TrendInput {
            ring: r,
            from,
            to: r.head(),
            history_from: 0,
            history_high: None,
            counter: false,
            limit,
            bucket_secs: cfg().bucket_secs(),
            min_span_secs: cfg().min_coverage * cfg().short_window.as_secs_f64(),
        };
        assess(&cfg(), &input)
    }

    fn before(r: &Ring, to: u64) -> TrendInput<'_> {
        TrendInput {
            ring: r,
            from: 0,
            to,
            history_from: 0,
            history_high: None,
            counter: false,
            limit: None,
            bucket_secs: cfg().bucket_secs(),
            min_span_secs: 0.0,
        }
    }

    #[test]
    fn a_flat_stretch_before_growth_is_told_from_a_warm_up() {
        const MB: f64 = 1e6;
        let per_bucket = 10.0 * MB;
        let slope = per_bucket / cfg().bucket_secs();
        // Flat for 12 buckets, then rising: the 12 buckets are the flat stretch before it.
        let wiggle = |i: u64| if i.is_multiple_of(2) { MB } else { -MB };
        let leak = ring_of(20, |i| {
            200.0 * MB + wiggle(i) + i.saturating_sub(12) as f64 * per_bucket
        });
        assert!(flat_before(&cfg(), &before(&leak, 12), slope));
        // A warm-up from the start: its older part rises faster than the newer one.
        let warm_up = ring_of(20, |i| {
            200.0 * MB + 150.0 * MB * (1.0 - (-(i as f64) / 6.0).exp())
        });
        assert!(!flat_before(&cfg(), &before(&warm_up, 12), slope));
        // Two buckets say nothing, flat or not.
        assert!(!flat_before(&cfg(), &before(&leak, 2), slope));
        // Too few effective samples to be significant is not flat: a stretch growing at the
        // newer slope is no flat stretch, significant or not.
        let steady = ring_of(5, |i| {
            200.0 * MB + i as f64 * per_bucket + noise(i) * 8.0 * MB
        });
        assert!(!flat_before(&cfg(), &before(&steady, 4), slope));
    }

    /// Deterministic pseudo-noise in [-1, 1].
    fn noise(i: u64) -> f64 {
        let x = (i.wrapping_mul(2_654_435_761) % 1000) as f64;
        x / 500.0 - 1.0
    }

    const MB: f64 = 1e6;
    const BUCKET_H: f64 = 0.75;

    #[test]
    fn steady_leak_is_a_leak() {
        let r = ring_of(32, |i| {
            200.0 * MB + 10.0 * MB * BUCKET_H * i as f64 + noise(i) * MB
        });
        let a = run(&r, 0, None).unwrap_or_default();
        assert!(a.leak, "{a:?}");
        assert!((a.slope_per_hour() - 10.0 * MB).abs() < 0.3 * MB);
    }

    #[test]
    fn flat_floor_is_not_a_leak() {
        let r = ring_of(32, |i| 200.0 * MB + noise(i) * 2.0 * MB);
        let a = run(&r, 0, None).unwrap_or_default();
        assert!(!a.leak);
        assert!(!a.significant);
    }

    #[test]
    fn one_off_step_is_not_a_leak() {
        let r = ring_of(32, |i| {
            200.0 * MB + if i >= 12 { 50.0 * MB } else { 0.0 } + noise(i) * MB
        });
        let a = run(&r, 0, None).unwrap_or_default();
        assert!(a.step_cut, "{a:?}");
        assert!(!a.leak, "{a:?}");
    }

    #[test]
    fn step_then_growth_is_a_leak() {
        let r = ring_of(32, |i| {
            let step = if i >= 8 { 80.0 * MB } else { 0.0 };
            let grow = if i >= 8 {
                (i - 8) as f64 * 5.0 * MB
            } else {
                0.0
            };
            200.0 * MB + step + grow + noise(i) * MB
        });
        // The short window (after the step) sees the growth.
        let a = run(&r, 24, None).unwrap_or_default();
        assert!(a.leak, "{a:?}");
    }

    #[test]
    fn saturating_warm_up_is_not_a_leak() {
        // Cache fills with a time constant of 4 buckets (3 h).
        let r = ring_of(32, |i| {
            200.0 * MB + 150.0 * MB * (1.0 - (-(i as f64) / 4.0).exp()) + noise(i) * 0.5 * MB
        });
        let a = run(&r, 0, None).unwrap_or_default();
        assert!(!a.leak, "{a:?}");
    }

    #[test]
    fn returning_to_an_old_high_is_not_new_growth() {
        // Yesterday's floor was as high as today's: the short window rises, but no new high.
        let r = ring_of(32, |i| {
            let phase = i as f64 / 32.0 * std::f64::consts::TAU;
            200.0 * MB + 40.0 * MB * phase.cos() + noise(i) * 0.2 * MB
        });
        let a = run(&r, 24, None).unwrap_or_default();
        assert!(!a.new_high, "{a:?}");
        assert!(!a.leak);
    }

    #[test]
    fn distant_limit_is_judged_by_effect_size_and_horizon() {
        let r = ring_of(32, |i| 200.0 * MB + 0.6 * MB * BUCKET_H * i as f64);
        assert!(run(&r, 0, None).unwrap_or_default().leak);
        // 600 KB/h against 100 GB: centuries to the limit, and 0.0006 %/h.
        let far = run(&r, 0, Some(100e9)).unwrap_or_default();
        assert!(!far.leak);
        assert!(!far.within_horizon);
        let near = run(&r, 0, Some(512.0 * MB)).unwrap_or_default();
        assert!(near.leak, "{near:?}");
        let ttl = near.time_to_limit_secs.unwrap_or_default();
        let expected = (512.0 * MB - near.level) / (0.6 * MB) * 3600.0;
        assert!(
            (ttl - expected).abs() < 0.01 * expected,
            "{ttl} vs {expected}"
        );
    }

    #[test]
    fn too_little_data_is_unknown() {
        let r = ring_of(4, |i| 200.0 * MB + i as f64 * MB);
        assert_eq!(run(&r, 0, None), None);
        let c = DetectorConfig::with_windows(Duration::from_secs(60), Duration::from_secs(120));
        assert_eq!(c.short_buckets(), 16);
    }

    #[test]
    fn slow_leak_on_a_big_heap_is_a_leak_beyond_the_horizon() {
        // 1.5 MB/h on 760 MB under a 4 GB limit: about 90 days to the limit, but 0.037 %/h.
        let r = ring_of(32, |i| {
            760.0 * MB + 1.5 * MB * BUCKET_H * i as f64 + noise(i) * 0.3 * MB
        });
        let a = run(&r, 0, Some(4096.0 * MB)).unwrap_or_default();
        assert!(a.leak, "{a:?}");
        assert!(!a.within_horizon, "{a:?}");
        assert!(a.time_to_limit_secs.is_some_and(|t| t > 60.0 * 86400.0));
    }

    #[test]
    fn persisting_growth_ignores_significance() {
        // A staircase: a 4 MB step every 8 buckets (~0.67 MB/h), strongly autocorrelated.
        let r = ring_of(32, |i| 200.0 * MB + 4.0 * MB * (i / 8) as f64);
        let a = run(&r, 0, None).unwrap_or_default();
        assert!(a.persisting, "{a:?}");
        let flat = run(&ring_of(32, |i| 200.0 * MB + noise(i) * MB), 0, None).unwrap_or_default();
        assert!(!flat.persisting, "{flat:?}");
    }
}
