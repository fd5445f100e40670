//! The two leak-detection practices leakwatch is measured against, implemented faithfully in
//! event time on the same samples, and the side-by-side comparison the report prints.
//!
//! - [`DerivRules`]: the Prometheus alert rules most teams run. *Suspected*:
//!   `deriv(heap_used[6h]) > 1 MB/h` held `for: 2h`. *Confirmed*:
//!   `deriv(heap_used[24h]) > 512 KB/h and increase(gc_runs[1h]) > 1.5 * increase(gc_runs[1h]
//!   offset 6h)` held `for: 6h`. `deriv()` is a per-second least-squares slope, so the
//!   thresholds are converted to bytes per second (1 MB/h = 10⁶ / 3600 B/s), not compared with
//!   1048576 per second. Rules are evaluated every minute over the samples as scraped.
//! - [`PolyfitR2`]: the cron script. Every 5 minutes, resample the last 24 h at 5-minute steps,
//!   fit a least-squares line (`numpy.polyfit(x, y, 1)`) and flag a leak when the slope is
//!   positive and R² > 0.7; applied to heap used, resident memory, memory per request and GC
//!   frequency where present; a process is flagged if any signal is.
//!
//! Both produce [`Alerts`] (firing intervals in event time), as do leakwatch's events
//! ([`Alerts::from_events`]); [`Comparison`] turns them into recall, false alarms and detection
//! delay per method.

use std::sync::Arc;

use crate::scenario::{Scenario, TraceSample};
use leakwatch::detector::LeakEventKind;
use leakwatch::engine::{Engine, EngineConfig, EngineEvent, IngestError};
use leakwatch::ops::telemetry::Telemetry;

const NS: f64 = 1e9;
const HOUR_NS: u64 = 3_600_000_000_000;

/// A span of event time during which an alert fired; `to_ns` is `None` if it still fired at
/// the end of the trace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Firing {
    pub from_ns: u64,
    pub to_ns: Option<u64>,
}

impl Firing {
    /// Whether the alert fired at any time at or after `t_ns`; if so, the first such time.
    fn first_at_or_after(&self, t_ns: u64) -> Option<u64> {
        match self.to_ns {
            Some(to) if to <= t_ns => None,
            _ => Some(self.from_ns.max(t_ns)),
        }
    }
}

/// What a method raised on one trace: a warning level and an alarm level.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Alerts {
    /// Warning (leakwatch `memory.leak.suspected`, the `for: 2h` rule).
    pub suspected: Vec<Firing>,
    /// Alarm (leakwatch `memory.leak.confirmed`, the `for: 6h` rule, the script's flag).
    pub confirmed: Vec<Firing>,
}

impl Alerts {
    /// leakwatch's lifecycle events of the resource whose instance (`service.instance.id`, else
    /// `k8s.pod.name`) is `instance`: every scenario's [`Scenario::instance`], also for a
    /// container resource without `service.name`.
    pub fn from_events(events: &[EngineEvent], instance: &str) -> Alerts {
        let mut alerts = Alerts::default();
        let mut open_suspected: Option<u64> = None;
        let mut open_confirmed: Option<u64> = None;
        for e in events.iter().filter(|e| e.resource.instance == instance) {
            let t = e.event.t_ns;
            match e.event.kind {
                LeakEventKind::Suspected => {
                    open_suspected.get_or_insert(t);
                }
                LeakEventKind::Confirmed => {
                    open_suspected.get_or_insert(t);
                    open_confirmed.get_or_insert(t);
                }
                LeakEventKind::Resolved => {
                    for (open, out) in [
                        (&mut open_suspected, &mut alerts.suspected),
                        (&mut open_confirmed, &mut alerts.confirmed),
                    ] {
                        if let Some(from) = open.take() {
                            out.push(Firing {
                                from_ns: from,
                                to_ns: Some(t),
                            });
                        }
                    }
                }
            }
        }
        for (open, out) in [
            (open_suspected, &mut alerts.suspected),
            (open_confirmed, &mut alerts.confirmed),
        ] {
            if let Some(from) = open {
                out.push(Firing {
                    from_ns: from,
                    to_ns: None,
                });
            }
        }
        alerts
    }
}

/// Records the firing intervals of one alert rule evaluated at successive times.
#[derive(Debug, Default)]
struct RuleState {
    hold_ns: u64,
    active_since: Option<u64>,
    firing_since: Option<u64>,
    out: Vec<Firing>,
}

impl RuleState {
    fn new(hold_ns: u64) -> Self {
        RuleState {
            hold_ns,
            ..RuleState::default()
        }
    }

    /// Prometheus semantics: pending from the first true evaluation, firing once it has been
    /// true for `for`, inactive (and reset) at the first false evaluation.
    fn eval(&mut self, t_ns: u64, condition: bool) {
        if condition {
            let since = *self.active_since.get_or_insert(t_ns);
            if self.firing_since.is_none() && t_ns - since >= self.hold_ns {
                self.firing_since = Some(t_ns);
            }
        } else {
            self.active_since = None;
            if let Some(from) = self.firing_since.take() {
                self.out.push(Firing {
                    from_ns: from,
                    to_ns: Some(t_ns),
                });
            }
        }
    }

    fn finish(mut self) -> Vec<Firing> {
        if let Some(from) = self.firing_since.take() {
            self.out.push(Firing {
                from_ns: from,
                to_ns: None,
            });
        }
        self.out
    }
}

/// Prefix sums for least-squares slopes over any index range in O(1).
struct Regression {
    /// Sample times, ns.
    t: Vec<u64>,
    sx: Vec<f64>,
    sy: Vec<f64>,
    sxx: Vec<f64>,
    sxy: Vec<f64>,
}

impl Regression {
    fn new(points: &[(u64, f64)]) -> Self {
        let t0_ns = points.first().map_or(0, |p| p.0);
        let n = points.len();
        let mut r = Regression {
            t: Vec::with_capacity(n),
            sx: Vec::with_capacity(n + 1),
            sy: Vec::with_capacity(n + 1),
            sxx: Vec::with_capacity(n + 1),
            sxy: Vec::with_capacity(n + 1),
        };
        let (mut sx, mut sy, mut sxx, mut sxy) = (0.0, 0.0, 0.0, 0.0);
        r.sx.push(0.0);
        r.sy.push(0.0);
        r.sxx.push(0.0);
        r.sxy.push(0.0);
        for &(t, y) in points {
            let x = (t - t0_ns) as f64 / NS;
            sx += x;
            sy += y;
            sxx += x * x;
            sxy += x * y;
            r.t.push(t);
            r.sx.push(sx);
            r.sy.push(sy);
            r.sxx.push(sxx);
            r.sxy.push(sxy);
        }
        r
    }

    /// Indices of the samples in `(to - range, to]`.
    fn range(&self, to_ns: u64, range_ns: u64) -> (usize, usize) {
        let from = to_ns.saturating_sub(range_ns);
        let lo = self.t.partition_point(|&t| t <= from);
        let hi = self.t.partition_point(|&t| t <= to_ns);
        (lo, hi.max(lo))
    }

    /// PromQL `deriv(v[range])` at `to`: least-squares slope per second; `None` with fewer
    /// than two samples.
    fn deriv(&self, to_ns: u64, range_ns: u64) -> Option<f64> {
        let (lo, hi) = self.range(to_ns, range_ns);
        let n = (hi - lo) as f64;
        if hi - lo < 2 {
            return None;
        }
        let sx = self.sx[hi] - self.sx[lo];
        let sy = self.sy[hi] - self.sy[lo];
        let sxx = self.sxx[hi] - self.sxx[lo] - sx * sx / n;
        let sxy = self.sxy[hi] - self.sxy[lo] - sx * sy / n;
        (sxx > 0.0).then(|| sxy / sxx)
    }
}

/// A counter with resets undone (each reset adds the value before it), as PromQL sees it.
struct Counter {
    t: Vec<u64>,
    raw: Vec<f64>,
    corrected: Vec<f64>,
}

impl Counter {
    fn new(points: &[(u64, f64)]) -> Self {
        let mut offset = 0.0;
        let mut prev: Option<f64> = None;
        let mut c = Counter {
            t: Vec::with_capacity(points.len()),
            raw: Vec::with_capacity(points.len()),
            corrected: Vec::with_capacity(points.len()),
        };
        for &(t, v) in points {
            if let Some(p) = prev {
                if v < p {
                    offset += p;
                }
            }
            prev = Some(v);
            c.t.push(t);
            c.raw.push(v);
            c.corrected.push(v + offset);
        }
        c
    }

    /// PromQL `increase(v[range])` at `to` (Prometheus' `extrapolatedRate`); `None` with
    /// fewer than two samples in the range.
    fn increase(&self, to_ns: u64, range_ns: u64) -> Option<f64> {
        let from_ns = to_ns.saturating_sub(range_ns);
        let lo = self.t.partition_point(|&t| t <= from_ns);
        let hi = self.t.partition_point(|&t| t <= to_ns);
        if hi < lo + 2 {
            return None;
        }
        let (first, last) = (lo, hi - 1);
        let result = self.corrected[last] - self.corrected[first];
        let secs = |a: u64, b: u64| (b - a) as f64 / NS;
        let sampled = secs(self.t[first], self.t[last]);
        if sampled <= 0.0 {
            return None;
        }
        let mut to_start = secs(from_ns, self.t[first]);
        let to_end = secs(self.t[last], to_ns);
        let average = sampled / (last - first) as f64;
        if result > 0.0 && self.raw[first] >= 0.0 {
            // A counter does not extrapolate below zero.
            let to_zero = sampled * (self.raw[first] / result);
            to_start = to_start.min(to_zero);
        }
        let threshold = average * 1.1;
        let mut interval = sampled;
        interval += if to_start < threshold {
            to_start
        } else {
            average / 2.0
        };
        interval += if to_end < threshold {
            to_end
        } else {
            average / 2.0
        };
        Some(result * interval / sampled)
    }
}

/// The Prometheus alert rules practice, with its thresholds in the units `deriv()` returns.
#[derive(Clone, Debug, PartialEq)]
pub struct DerivRules {
    /// Rule evaluation interval, ns (Prometheus `evaluation_interval`).
    pub eval_interval_ns: u64,
    /// Suspected: `deriv(heap_used[6h])`.
    pub suspect_range_ns: u64,
    /// Suspected threshold, bytes per second (1 MB/h).
    pub suspect_bytes_per_s: f64,
    /// Suspected `for:`.
    pub suspect_for_ns: u64,
    /// Confirmed: `deriv(heap_used[24h])`.
    pub confirm_range_ns: u64,
    /// Confirmed threshold, bytes per second (512 KB/h).
    pub confirm_bytes_per_s: f64,
    /// GC runs in the last `gc_range` must exceed this factor times those `gc_offset` earlier.
    pub gc_ratio: f64,
    /// `increase(gc_runs[1h])`.
    pub gc_range_ns: u64,
    /// `offset 6h`.
    pub gc_offset_ns: u64,
    /// Confirmed `for:`.
    pub confirm_for_ns: u64,
}

impl Default for DerivRules {
    fn default() -> Self {
        DerivRules {
            eval_interval_ns: 60_000_000_000,
            suspect_range_ns: 6 * HOUR_NS,
            suspect_bytes_per_s: 1e6 / 3600.0,
            suspect_for_ns: 2 * HOUR_NS,
            confirm_range_ns: 24 * HOUR_NS,
            confirm_bytes_per_s: 512e3 / 3600.0,
            gc_ratio: 1.5,
            gc_range_ns: HOUR_NS,
            gc_offset_ns: 6 * HOUR_NS,
            confirm_for_ns: 6 * HOUR_NS,
        }
    }
}

/// Evaluation times: every `step` from the first sample (aligned to `step`) to the last.
fn eval_times(samples: &[TraceSample], step_ns: u64) -> impl Iterator<Item = u64> {
    let first = samples.first().map_or(0, |s| s.t_ns);
    let last = samples.last().map_or(0, |s| s.t_ns);
    let start = first.div_ceil(step_ns) * step_ns;
    let any = !samples.is_empty();
    (0..)
        .map(move |k| start + k * step_ns)
        .take_while(move |t| any && *t <= last)
}

impl DerivRules {
    /// Evaluates both rules on one process' samples.
    ///
    /// A process without a GC counter (Go's semantic-convention metrics have none) gets the
    /// confirmed rule without its GC clause: PromQL's `and` would never fire on an absent
    /// series, and a team without the metric would drop the clause, so this is the charitable
    /// reading.
    pub fn evaluate(&self, samples: &[TraceSample]) -> Alerts {
        let heap: Vec<(u64, f64)> = samples.iter().map(|s| (s.t_ns, s.heap_used)).collect();
        let heap = Regression::new(&heap);
        let gc: Vec<(u64, f64)> = samples
            .iter()
            .filter_map(|s| Some((s.t_ns, s.gc_count?)))
            .collect();
        let gc = (!gc.is_empty()).then(|| Counter::new(&gc));
        let mut suspected = RuleState::new(self.suspect_for_ns);
        let mut confirmed = RuleState::new(self.confirm_for_ns);
        for t in eval_times(samples, self.eval_interval_ns) {
            let s = heap
                .deriv(t, self.suspect_range_ns)
                .is_some_and(|d| d > self.suspect_bytes_per_s);
            suspected.eval(t, s);
            let growth = heap
                .deriv(t, self.confirm_range_ns)
                .is_some_and(|d| d > self.confirm_bytes_per_s);
            let gc_rising = match &gc {
                None => true,
                Some(gc) => {
                    let now = gc.increase(t, self.gc_range_ns);
                    let before = t
                        .checked_sub(self.gc_offset_ns)
                        .and_then(|b| gc.increase(b, self.gc_range_ns));
                    matches!((now, before), (Some(n), Some(b)) if n > self.gc_ratio * b)
                }
            };
            confirmed.eval(t, growth && gc_rising);
        }
        Alerts {
            suspected: suspected.finish(),
            confirmed: confirmed.finish(),
        }
    }
}

/// The cron-script practice: polyfit over the last 24 h at 5-minute resolution, R² > 0.7.
#[derive(Clone, Debug, PartialEq)]
pub struct PolyfitR2 {
    /// How often the script runs (and the resampling step), ns.
    pub step_ns: u64,
    /// How far back it looks, ns.
    pub window_ns: u64,
    /// Fewest non-empty 5-minute points for a fit. A script that fitted two points after a
    /// restart would flag every warm-up; 72 points (6 h, a quarter of the window) is the
    /// charitable minimum, and leakwatch itself waits for 4.5 h of data.
    pub min_points: usize,
    /// R² above which a positive slope is a leak.
    pub r_squared: f64,
}

impl Default for PolyfitR2 {
    fn default() -> Self {
        PolyfitR2 {
            step_ns: 300_000_000_000,
            window_ns: 24 * HOUR_NS,
            min_points: 72,
            r_squared: 0.7,
        }
    }
}

/// One 5-minute bin of a trace.
#[derive(Clone, Copy, Debug, Default)]
struct Bin {
    n: u32,
    heap: f64,
    rss: f64,
    rss_n: u32,
    secs: f64,
    requests: f64,
    has_requests: bool,
    gcs: f64,
    has_gcs: bool,
}

/// `(slope, R²)` of the least-squares line through `points`, as `numpy.polyfit(x, y, 1)` and
/// `1 - SSE/SST` give them.
pub fn polyfit(points: &[(f64, f64)]) -> Option<(f64, f64)> {
    let n = points.len() as f64;
    if points.len() < 2 {
        return None;
    }
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n;
    let (mut sxx, mut sxy, mut syy) = (0.0, 0.0, 0.0);
    for &(x, y) in points {
        sxx += (x - mx) * (x - mx);
        sxy += (x - mx) * (y - my);
        syy += (y - my) * (y - my);
    }
    if sxx <= 0.0 || syy <= 0.0 {
        return None;
    }
    let slope = sxy / sxx;
    let sse = syy - slope * sxy;
    Some((slope, 1.0 - sse / syy))
}

impl PolyfitR2 {
    /// Runs the script on one process' samples. Both alert levels are the script's one flag.
    pub fn evaluate(&self, samples: &[TraceSample]) -> Alerts {
        let Some(first) = samples.first() else {
            return Alerts::default();
        };
        let step = self.step_ns;
        let base = first.t_ns / step;
        let bin_of = |t: u64| (t / step - base) as usize;
        let nbins = samples.last().map_or(0, |s| bin_of(s.t_ns) + 1);
        let mut bins = vec![Bin::default(); nbins];
        let mut prev: Option<&TraceSample> = None;
        for s in samples {
            let b = &mut bins[bin_of(s.t_ns)];
            b.n += 1;
            b.heap += s.heap_used;
            if let Some(r) = s.rss {
                b.rss += r;
                b.rss_n += 1;
            }
            if let Some(p) = prev {
                // pandas `diff()` with resets taken as a restart from zero.
                let inc = |now: Option<f64>, before: Option<f64>| match (now, before) {
                    (Some(a), Some(b)) if a >= b => Some(a - b),
                    (Some(a), Some(_)) => Some(a),
                    _ => None,
                };
                b.secs += (s.t_ns - p.t_ns) as f64 / NS;
                if let Some(i) = inc(s.request_count, p.request_count) {
                    b.requests += i;
                    b.has_requests = true;
                }
                if let Some(i) = inc(s.gc_count, p.gc_count) {
                    b.gcs += i;
                    b.has_gcs = true;
                }
            }
            prev = Some(s);
        }
        let per_window = (self.window_ns / step) as usize;
        let mut state = RuleState::new(0);
        for end in 0..nbins {
            // The script runs at the end of each 5-minute bin and sees the last 24 h of bins.
            let t = (base + end as u64 + 1) * step;
            let from = (end + 1).saturating_sub(per_window);
            let window = &bins[from..=end];
            let x = |i: usize| (i as f64) * step as f64 / NS;
            let signal = |f: &dyn Fn(&Bin) -> Option<f64>| -> Vec<(f64, f64)> {
                window
                    .iter()
                    .enumerate()
                    .filter_map(|(i, b)| Some((x(i), f(b)?)))
                    .collect()
            };
            let signals: [Vec<(f64, f64)>; 4] = [
                signal(&|b| (b.n > 0).then(|| b.heap / f64::from(b.n))),
                signal(&|b| (b.rss_n > 0).then(|| b.rss / f64::from(b.rss_n))),
                signal(&|b| {
                    let rate = b.requests / b.secs;
                    (b.n > 0 && b.has_requests && b.secs > 0.0 && rate > 0.0)
                        .then(|| b.heap / f64::from(b.n) / rate)
                }),
                signal(&|b| (b.has_gcs && b.secs > 0.0).then(|| b.gcs / b.secs)),
            ];
            let flagged = signals.iter().any(|pts| {
                pts.len() >= self.min_points
                    && polyfit(pts).is_some_and(|(slope, r2)| slope > 0.0 && r2 > self.r_squared)
            });
            state.eval(t, flagged);
        }
        let flags = state.finish();
        Alerts {
            suspected: flags.clone(),
            confirmed: flags,
        }
    }
}

// ---- The comparison ----------------------------------------------------------------------

/// The methods compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Leakwatch,
    DerivRules,
    PolyfitR2,
}

impl Method {
    pub const ALL: [Method; 3] = [Method::Leakwatch, Method::DerivRules, Method::PolyfitR2];

    pub fn as_str(self) -> &'static str {
        match self {
            Method::Leakwatch => "leakwatch",
            Method::DerivRules => "deriv rules",
            Method::PolyfitR2 => "polyfit R²>0.7",
        }
    }
}

fn active(fires: &[Firing], t_ns: u64) -> bool {
    fires
        .iter()
        .any(|f| f.from_ns <= t_ns && f.to_ns.is_none_or(|to| t_ns < to))
}

/// What one method concluded on one trace.
///
/// A leak counts as *detected* at the first alarm at or after its onset at which the method
/// is **not** also alarming on the scenario's leak-free twin (the same trace, same noise, leak
/// removed). An alarm the method would have raised without the leak (the first morning's
/// traffic ramp, a warm-up) is not a detection of the leak, however well it happens to be
/// timed; without this, a method that flags every young process would score perfect recall
/// and minimal delay. The plain first alarm is kept as `raw_delay_hours`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Verdict {
    /// Trap: the alarm fired. Leak: the leak was detected (as above).
    pub alarm: bool,
    /// Hours from the leak's onset to its detection.
    pub delay_hours: Option<f64>,
    /// Hours from the onset to the first alarm at or after it, twin ignored.
    pub raw_delay_hours: Option<f64>,
    /// The alarm fired before the leak began (on the healthy part of the trace).
    pub alarm_before_onset: bool,
    /// The alarm fired on the leak-free twin.
    pub twin_alarm: bool,
    /// The warning level fired at some time.
    pub warning: bool,
}

impl Verdict {
    /// Judges a method's alerts on a scenario (and on its twin, for a leak).
    pub fn of(scenario: &Scenario, trace: &Alerts, twin: Option<&Alerts>) -> Verdict {
        let warning = !trace.suspected.is_empty();
        let Some(onset) = scenario.onset_ns() else {
            return Verdict {
                alarm: !trace.confirmed.is_empty(),
                delay_hours: None,
                raw_delay_hours: None,
                alarm_before_onset: false,
                twin_alarm: false,
                warning,
            };
        };
        let twin_fires: &[Firing] = twin.map_or(&[], |t| &t.confirmed);
        let hours = |t: u64| (t - onset) as f64 / HOUR_NS as f64;
        let raw = trace
            .confirmed
            .iter()
            .filter_map(|f| f.first_at_or_after(onset))
            .min();
        // Candidates: where an alarm on the trace begins, or one on the twin ends.
        let mut candidates: Vec<u64> = trace
            .confirmed
            .iter()
            .filter_map(|f| f.first_at_or_after(onset))
            .chain(
                twin_fires
                    .iter()
                    .filter_map(|f| f.to_ns.filter(|&t| t >= onset)),
            )
            .collect();
        candidates.sort_unstable();
        let detected = candidates
            .into_iter()
            .find(|&t| active(&trace.confirmed, t) && !active(twin_fires, t));
        Verdict {
            alarm: detected.is_some(),
            delay_hours: detected.map(hours),
            raw_delay_hours: raw.map(hours),
            alarm_before_onset: trace.confirmed.iter().any(|f| f.from_ns < onset),
            twin_alarm: !twin_fires.is_empty(),
            warning,
        }
    }
}

/// leakwatch's events on a scenario and, for a leak, on its leak-free twin.
#[derive(Clone, Debug)]
pub struct Run {
    pub scenario: Scenario,
    pub events: Vec<EngineEvent>,
    pub twin_events: Option<Vec<EngineEvent>>,
}

impl Run {
    /// Replays the scenario (and its twin) through fresh engines.
    pub fn replay(scenario: &Scenario, config: &EngineConfig) -> Result<Run, IngestError> {
        let replay = |sc: &Scenario| {
            let engine = Engine::new(config.clone(), Arc::new(Telemetry::new()));
            sc.replay(&engine)
        };
        let twin_events = match scenario.leak_free_twin() {
            Some(twin) => Some(replay(&twin)?),
            None => None,
        };
        Ok(Run {
            scenario: scenario.clone(),
            events: replay(scenario)?,
            twin_events,
        })
    }

    /// Replays every scenario on up to `threads` threads, in the suite's order.
    pub fn replay_all(
        scenarios: &[Scenario],
        config: &EngineConfig,
        threads: usize,
    ) -> Result<Vec<Run>, IngestError> {
        let threads = threads.clamp(1, scenarios.len().max(1));
        let next = std::sync::atomic::AtomicUsize::new(0);
        let mut results: Vec<(usize, Result<Run, IngestError>)> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads)
                .map(|_| {
                    s.spawn(|| {
                        let mut out = Vec::new();
                        loop {
                            let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            let Some(sc) = scenarios.get(i) else { break };
                            out.push((i, Run::replay(sc, config)));
                        }
                        out
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                .collect()
        });
        results.sort_by_key(|(i, _)| *i);
        results.into_iter().map(|(_, r)| r).collect()
    }
}

/// One scenario's verdicts, in [`Method::ALL`] order.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    pub scenario: &'static str,
    pub runtime: &'static str,
    pub is_leak: bool,
    pub verdicts: [Verdict; 3],
}

impl Row {
    /// Runs both baselines on the scenario's samples (and its twin's) and sets them beside
    /// leakwatch's.
    pub fn build(run: &Run, baselines: &Baselines) -> Row {
        let sc = &run.scenario;
        let twin = sc.leak_free_twin();
        let evaluate = |sc: &Scenario| {
            let samples = sc.samples();
            (
                baselines.deriv.evaluate(&samples),
                baselines.polyfit.evaluate(&samples),
            )
        };
        let (deriv, poly) = evaluate(sc);
        let twin_alerts = twin.as_ref().map(evaluate);
        let lw = Alerts::from_events(&run.events, &sc.instance());
        let lw_twin = run
            .twin_events
            .as_ref()
            .map(|e| Alerts::from_events(e, &sc.instance()));
        Row {
            scenario: sc.name,
            runtime: sc.runtime.as_str(),
            is_leak: sc.is_leak,
            verdicts: [
                Verdict::of(sc, &lw, lw_twin.as_ref()),
                Verdict::of(sc, &deriv, twin_alerts.as_ref().map(|t| &t.0)),
                Verdict::of(sc, &poly, twin_alerts.as_ref().map(|t| &t.1)),
            ],
        }
    }
}

/// The two practices, as configured for a comparison.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Baselines {
    pub deriv: DerivRules,
    pub polyfit: PolyfitR2,
}

/// A method's figures over the suite.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Totals {
    pub leaks: usize,
    /// Leaks detected (see [`Verdict`]).
    pub detected: usize,
    /// Leaks with any alarm at or after the onset.
    pub raw_detected: usize,
    pub traps: usize,
    /// Traps on which the alarm fired.
    pub false_alarms: usize,
    /// Leak-free twins on which the alarm fired.
    pub twin_alarms: usize,
    /// Traps on which the warning fired.
    pub trap_warnings: usize,
    /// Leaks on which the alarm fired before the onset.
    pub early_alarms: usize,
    /// Median detection delay over *all* leaks, a missed leak counting as infinitely late
    /// (`None` when half or more are missed). A median over each method's own detections would
    /// compare different subsets: a method that catches only fast leaks would look quick.
    pub median_delay_hours: Option<f64>,
    /// The same with raw delays (twins ignored).
    pub median_raw_delay_hours: Option<f64>,
    /// Median over the leaks this method detected (for information).
    pub median_delay_detected_hours: Option<f64>,
}

impl Totals {
    /// Detected leaks / leaks.
    pub fn recall(&self) -> f64 {
        if self.leaks == 0 {
            1.0
        } else {
            self.detected as f64 / self.leaks as f64
        }
    }
}

fn median(sorted: &[f64]) -> Option<f64> {
    let n = sorted.len();
    if n == 0 {
        return None;
    }
    let mid = if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    };
    mid.is_finite().then_some(mid)
}

fn censored_median(delays: impl Iterator<Item = Option<f64>>) -> Option<f64> {
    let mut all: Vec<f64> = delays.map(|d| d.unwrap_or(f64::INFINITY)).collect();
    all.sort_by(f64::total_cmp);
    median(&all)
}

/// The side-by-side comparison on a suite.
#[derive(Clone, Debug, PartialEq)]
pub struct Comparison {
    pub rows: Vec<Row>,
}

impl Comparison {
    /// Builds the comparison from leakwatch's runs (the baselines run here, as configured by
    /// default).
    pub fn from_runs(runs: &[Run]) -> Comparison {
        Comparison::from_runs_with(runs, &Baselines::default())
    }

    /// The same with the baselines configured otherwise (sensitivity analysis).
    pub fn from_runs_with(runs: &[Run], baselines: &Baselines) -> Comparison {
        Comparison {
            rows: runs.iter().map(|r| Row::build(r, baselines)).collect(),
        }
    }

    /// Figures of one method.
    pub fn totals(&self, method: Method) -> Totals {
        let i = Method::ALL.iter().position(|m| *m == method).unwrap_or(0);
        let leaks: Vec<&Verdict> = self
            .rows
            .iter()
            .filter(|r| r.is_leak)
            .map(|r| &r.verdicts[i])
            .collect();
        let traps: Vec<&Verdict> = self
            .rows
            .iter()
            .filter(|r| !r.is_leak)
            .map(|r| &r.verdicts[i])
            .collect();
        let mut detected: Vec<f64> = leaks.iter().filter_map(|v| v.delay_hours).collect();
        detected.sort_by(f64::total_cmp);
        Totals {
            leaks: leaks.len(),
            detected: detected.len(),
            raw_detected: leaks.iter().filter(|v| v.raw_delay_hours.is_some()).count(),
            traps: traps.len(),
            false_alarms: traps.iter().filter(|v| v.alarm).count(),
            twin_alarms: leaks.iter().filter(|v| v.twin_alarm).count(),
            trap_warnings: traps.iter().filter(|v| v.warning).count(),
            early_alarms: leaks.iter().filter(|v| v.alarm_before_onset).count(),
            median_delay_hours: censored_median(leaks.iter().map(|v| v.delay_hours)),
            median_raw_delay_hours: censored_median(leaks.iter().map(|v| v.raw_delay_hours)),
            median_delay_detected_hours: median(&detected),
        }
    }

    /// `Ok` if leakwatch is at least as good as each baseline on recall, false alarms and
    /// median delay, and strictly better on at least one of them; else what falls short.
    pub fn leakwatch_beats_both(&self) -> Result<(), Vec<String>> {
        let lw = self.totals(Method::Leakwatch);
        let delay = |t: &Totals| t.median_delay_hours.unwrap_or(f64::INFINITY);
        let mut problems = Vec::new();
        for m in [Method::DerivRules, Method::PolyfitR2] {
            let b = self.totals(m);
            let mut strict = false;
            let mut check = |ok: bool, better: bool, what: String| {
                if ok {
                    strict |= better;
                } else {
                    problems.push(what);
                }
            };
            check(
                lw.detected >= b.detected,
                lw.detected > b.detected,
                format!(
                    "recall: leakwatch {}/{} < {} {}/{}",
                    lw.detected,
                    lw.leaks,
                    m.as_str(),
                    b.detected,
                    b.leaks
                ),
            );
            check(
                lw.false_alarms <= b.false_alarms,
                lw.false_alarms < b.false_alarms,
                format!(
                    "false alarms: leakwatch {} > {} {}",
                    lw.false_alarms,
                    m.as_str(),
                    b.false_alarms
                ),
            );
            check(
                delay(&lw) <= delay(&b),
                delay(&lw) < delay(&b),
                format!(
                    "median delay: leakwatch {} h > {} {} h",
                    hours(lw.median_delay_hours),
                    m.as_str(),
                    hours(b.median_delay_hours)
                ),
            );
            if !strict {
                problems.push(format!(
                    "leakwatch is nowhere strictly better than {}",
                    m.as_str()
                ));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }

    /// The report: one line per scenario, then the totals.
    pub fn table(&self) -> String {
        use std::fmt::Write;
        const W: usize = 28;
        let mut out = String::new();
        let cell = |r: &Row, v: &Verdict| -> String {
            let mut s = match (r.is_leak, v.alarm, v.delay_hours) {
                (true, true, Some(d)) => format!("LEAK +{d:.1}h"),
                (true, _, _) => "missed".to_owned(),
                (false, true, _) => "FALSE ALARM".to_owned(),
                (false, false, _) if v.warning => "ok (warned)".to_owned(),
                (false, false, _) => "ok".to_owned(),
            };
            if r.is_leak && v.raw_delay_hours != v.delay_hours {
                if let Some(raw) = v.raw_delay_hours {
                    let _ = write!(s, " [raw +{raw:.1}]");
                }
            }
            if v.alarm_before_onset {
                s.push_str(" early");
            }
            s
        };
        let rule = "-".repeat(46 + 3 * (W + 3));
        let _ = writeln!(
            out,
            "{:<31} {:<7} {:<5} | {:<W$} | {:<W$} | {:<W$}",
            "scenario",
            "rt",
            "truth",
            Method::Leakwatch.as_str(),
            Method::DerivRules.as_str(),
            Method::PolyfitR2.as_str()
        );
        let _ = writeln!(out, "{rule}");
        for r in &self.rows {
            let _ = writeln!(
                out,
                "{:<31} {:<7} {:<5} | {:<W$} | {:<W$} | {:<W$}",
                r.scenario,
                r.runtime,
                if r.is_leak { "leak" } else { "trap" },
                cell(r, &r.verdicts[0]),
                cell(r, &r.verdicts[1]),
                cell(r, &r.verdicts[2]),
            );
        }
        let _ = writeln!(out, "{rule}");
        let totals = Method::ALL.map(|m| self.totals(m));
        let line = |out: &mut String, name: &str, f: &dyn Fn(&Totals) -> String| {
            let _ = writeln!(
                out,
                "{:<45} | {:<W$} | {:<W$} | {:<W$}",
                name,
                f(&totals[0]),
                f(&totals[1]),
                f(&totals[2])
            );
        };
        line(&mut out, "recall (leaks detected)", &|t| {
            format!("{}/{} = {:.0}%", t.detected, t.leaks, 100.0 * t.recall())
        });
        line(&mut out, "false alarms (traps alarmed)", &|t| {
            format!("{}/{}", t.false_alarms, t.traps)
        });
        line(&mut out, "median detection delay (h, all leaks)", &|t| {
            hours(t.median_delay_hours)
        });
        let _ = writeln!(out, "{rule}");
        line(&mut out, "  raw recall (any alarm after onset)", &|t| {
            format!("{}/{}", t.raw_detected, t.leaks)
        });
        line(&mut out, "  raw median delay (h, twins ignored)", &|t| {
            hours(t.median_raw_delay_hours)
        });
        line(&mut out, "  median over own detections (h)", &|t| {
            hours(t.median_delay_detected_hours)
        });
        line(&mut out, "  leak-free twins alarmed", &|t| {
            format!("{}/{}", t.twin_alarms, t.leaks)
        });
        line(&mut out, "  leaks alarmed before onset", &|t| {
            format!("{}/{}", t.early_alarms, t.leaks)
        });
        line(&mut out, "  traps warned (suspected level)", &|t| {
            format!("{}/{}", t.trap_warnings, t.traps)
        });
        let _ = writeln!(
            out,
            "\nleak: \"LEAK +d\" = detected d h after onset at the first alarm not also raised on the\n\
             leak-free twin (same trace and noise, leak removed); [raw +d] = first alarm after onset;\n\
             \"early\" = alarm before the onset. Alarm = leakwatch memory.leak.confirmed, the for: 6h\n\
             deriv rule, the polyfit flag; warning = memory.leak.suspected, the for: 2h rule.\n\
             Median delays count a missed leak as infinitely late."
        );
        out
    }
}

// ---- The headline figures: raw, per set ------------------------------------------------------

/// What one method did on one trace, read plainly (no leak-free twin): the headline figures.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RawVerdict {
    /// Leak: hours from the onset to the first warning at or after it.
    pub suspected_delay_hours: Option<f64>,
    /// Leak: hours from the onset to the first alarm at or after it.
    pub confirmed_delay_hours: Option<f64>,
    /// Trap: the alarm fired at some time. Leak: it fired before the onset.
    pub false_alarm: bool,
    /// Trap: the warning fired at some time.
    pub warning: bool,
    /// Leak: alarms that ended (resolved) after the onset while the leak still ran.
    pub false_resolutions: usize,
    /// Leak, leakwatch only: the forecast at the first confirmation after the onset
    /// (`time_to_limit_seconds`) and the true time until the process runs out of memory
    /// ([`Scenario::time_to_oom_s`]), seconds.
    pub forecast: Option<(f64, f64)>,
    /// Leak: a limit was knowable at the first confirmation ([`Scenario::limit_knowable_at`]).
    pub limit_knowable: bool,
    /// Leak that crashes out of memory in the trace: hours from the first confirmation to the
    /// first crash after the onset (negative when confirmed after it); `Some(None)` if never
    /// confirmed, `None` for a trace without a crash.
    pub oom_margin_hours: Option<Option<f64>>,
}

impl RawVerdict {
    /// Judges `alerts` on `sc`; `forecast_s` is the method's forecast at a time, if it makes
    /// any (leakwatch's event field; the practices make none).
    pub fn of(
        sc: &Scenario,
        alerts: &Alerts,
        forecast_s: &dyn Fn(u64) -> Option<f64>,
    ) -> RawVerdict {
        let warning = !alerts.suspected.is_empty();
        let Some(onset) = sc.onset_ns() else {
            return RawVerdict {
                suspected_delay_hours: None,
                confirmed_delay_hours: None,
                false_alarm: !alerts.confirmed.is_empty(),
                warning,
                false_resolutions: 0,
                forecast: None,
                limit_knowable: false,
                oom_margin_hours: None,
            };
        };
        let first = |fires: &[Firing]| {
            fires
                .iter()
                .filter_map(|f| f.first_at_or_after(onset))
                .min()
        };
        let hours = |t: u64| (t - onset) as f64 / HOUR_NS as f64;
        let confirmed = first(&alerts.confirmed);
        let false_resolutions = alerts
            .confirmed
            .iter()
            .filter_map(|f| f.to_ns)
            .filter(|&t| t >= onset && sc.leaking_at(t))
            .count();
        let forecast = confirmed.and_then(|t| Some((forecast_s(t)?, sc.time_to_oom_s(t)?)));
        let first_oom = sc.oom_times_ns().into_iter().find(|&t| t >= onset);
        let oom_margin_hours =
            first_oom.map(|oom| confirmed.map(|c| (oom as f64 - c as f64) / HOUR_NS as f64));
        RawVerdict {
            suspected_delay_hours: first(&alerts.suspected).map(hours),
            confirmed_delay_hours: confirmed.map(hours),
            false_alarm: alerts.confirmed.iter().any(|f| f.from_ns < onset),
            warning,
            false_resolutions,
            forecast,
            limit_knowable: confirmed.is_some_and(|t| sc.limit_knowable_at(t)),
            oom_margin_hours,
        }
    }
}

/// One scenario's raw verdicts, in [`Method::ALL`] order.
#[derive(Clone, Debug, PartialEq)]
pub struct RawRow {
    pub scenario: &'static str,
    pub runtime: &'static str,
    pub is_leak: bool,
    pub verdicts: [RawVerdict; 3],
}

/// A method's headline figures over one set.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Figures {
    pub leaks: usize,
    pub traps: usize,
    /// Leaks alarmed at or after their onset.
    pub recall: usize,
    /// Traps alarmed.
    pub false_alarms: usize,
    /// Leaks alarmed before their onset.
    pub early_alarms: usize,
    /// Traps warned.
    pub trap_warnings: usize,
    /// Median and p90 (nearest rank) of onset → warning and onset → alarm over all leaks, a
    /// miss counting as infinitely late (`None` = ∞).
    pub suspected_median: Option<f64>,
    pub suspected_p90: Option<f64>,
    pub confirmed_median: Option<f64>,
    pub confirmed_p90: Option<f64>,
    /// Leaks with at least one false resolution, and false resolutions in all.
    pub leaks_falsely_resolved: usize,
    pub false_resolutions: usize,
    /// Leaks confirmed with a knowable limit, and how many of those had a forecast.
    pub limit_knowable: usize,
    pub forecasts_given: usize,
    /// Median and largest |forecast − truth| / truth over the leaks with a forecast.
    pub forecast_error_median: Option<f64>,
    pub forecast_error_max: Option<f64>,
    /// Leaks that crash out of memory in the trace, those confirmed before their first
    /// crash, and the median margin (hours; a miss counts as −∞).
    pub oom_leaks: usize,
    pub confirmed_before_oom: usize,
    pub oom_margin_median: Option<f64>,
}

/// Nearest-rank percentile of `values` (∞ allowed; `None` if the result is infinite).
fn percentile(values: &[f64], p: f64) -> Option<f64> {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return None;
    }
    let rank = ((p * v.len() as f64).ceil() as usize).clamp(1, v.len());
    Some(v[rank - 1]).filter(|x| x.is_finite())
}

/// The raw figures of every method on one set of scenarios.
#[derive(Clone, Debug, PartialEq)]
pub struct SetReport {
    pub rows: Vec<RawRow>,
}

impl SetReport {
    /// Judges leakwatch's runs and the two practices (as configured) on the same traces.
    pub fn build(runs: &[Run], baselines: &Baselines) -> SetReport {
        let rows = runs
            .iter()
            .map(|run| {
                let sc = &run.scenario;
                let samples = sc.samples();
                let instance = sc.instance();
                let lw = Alerts::from_events(&run.events, &instance);
                let lw_forecast = |t: u64| {
                    run.events
                        .iter()
                        .find(|e| {
                            e.resource.instance == instance
                                && e.event.kind == LeakEventKind::Confirmed
                                && e.event.t_ns == t
                        })
                        .and_then(|e| e.event.time_to_limit_seconds)
                };
                let none = |_: u64| None;
                RawRow {
                    scenario: sc.name,
                    runtime: sc.runtime.as_str(),
                    is_leak: sc.is_leak,
                    verdicts: [
                        RawVerdict::of(sc, &lw, &lw_forecast),
                        RawVerdict::of(sc, &baselines.deriv.evaluate(&samples), &none),
                        RawVerdict::of(sc, &baselines.polyfit.evaluate(&samples), &none),
                    ],
                }
            })
            .collect();
        SetReport { rows }
    }

    /// Figures of one method.
    pub fn figures(&self, method: Method) -> Figures {
        let i = Method::ALL.iter().position(|m| *m == method).unwrap_or(0);
        let leaks: Vec<&RawVerdict> = self
            .rows
            .iter()
            .filter(|r| r.is_leak)
            .map(|r| &r.verdicts[i])
            .collect();
        let traps: Vec<&RawVerdict> = self
            .rows
            .iter()
            .filter(|r| !r.is_leak)
            .map(|r| &r.verdicts[i])
            .collect();
        let delays = |f: fn(&RawVerdict) -> Option<f64>| -> Vec<f64> {
            leaks
                .iter()
                .map(|v| f(v).unwrap_or(f64::INFINITY))
                .collect()
        };
        let suspected = delays(|v| v.suspected_delay_hours);
        let confirmed = delays(|v| v.confirmed_delay_hours);
        let errors: Vec<f64> = leaks
            .iter()
            .filter_map(|v| v.forecast)
            .map(|(forecast, truth)| (forecast - truth).abs() / truth.max(1.0))
            .collect();
        let margins: Vec<f64> = leaks
            .iter()
            .filter_map(|v| v.oom_margin_hours)
            .map(|m| m.unwrap_or(f64::NEG_INFINITY))
            .collect();
        Figures {
            leaks: leaks.len(),
            traps: traps.len(),
            recall: leaks
                .iter()
                .filter(|v| v.confirmed_delay_hours.is_some())
                .count(),
            false_alarms: traps.iter().filter(|v| v.false_alarm).count(),
            early_alarms: leaks.iter().filter(|v| v.false_alarm).count(),
            trap_warnings: traps.iter().filter(|v| v.warning).count(),
            suspected_median: percentile(&suspected, 0.5),
            suspected_p90: percentile(&suspected, 0.9),
            confirmed_median: percentile(&confirmed, 0.5),
            confirmed_p90: percentile(&confirmed, 0.9),
            leaks_falsely_resolved: leaks.iter().filter(|v| v.false_resolutions > 0).count(),
            false_resolutions: leaks.iter().map(|v| v.false_resolutions).sum(),
            limit_knowable: leaks.iter().filter(|v| v.limit_knowable).count(),
            forecasts_given: errors.len(),
            forecast_error_median: percentile(&errors, 0.5),
            forecast_error_max: errors
                .iter()
                .copied()
                .fold(None, |a: Option<f64>, e| Some(a.map_or(e, |a| a.max(e)))),
            oom_leaks: margins.len(),
            confirmed_before_oom: margins.iter().filter(|m| **m > 0.0).count(),
            oom_margin_median: percentile(&margins, 0.5).or_else(|| {
                // All or most missed: the median is −∞.
                (!margins.is_empty()).then_some(f64::NEG_INFINITY)
            }),
        }
    }
}

/// leak-report's exit gate over both sets: `Ok` when, in the tuning set **and** in the
/// holdout, leakwatch raises no alarm on a trap, none before a leak's onset, and confirms at
/// least as many leaks (raw recall) as each practice. Delays, forecasts and resolutions are
/// reported, not gated: issue 13's targets for them are the `#[ignore]`d tests of
/// `tests/scenarios.rs` until the detector meets them.
pub fn gate(sets: &[(&str, &SetReport)]) -> Result<(), Vec<String>> {
    let mut problems = Vec::new();
    for (name, set) in sets {
        let lw = set.figures(Method::Leakwatch);
        if lw.false_alarms > 0 {
            let which: Vec<&str> = set
                .rows
                .iter()
                .filter(|r| !r.is_leak && r.verdicts[0].false_alarm)
                .map(|r| r.scenario)
                .collect();
            problems.push(format!(
                "{name}: leakwatch alarmed on {}/{} traps: {}",
                lw.false_alarms,
                lw.traps,
                which.join(", ")
            ));
        }
        if lw.early_alarms > 0 {
            problems.push(format!(
                "{name}: leakwatch alarmed on {} leaks before their onset",
                lw.early_alarms
            ));
        }
        for m in [Method::DerivRules, Method::PolyfitR2] {
            let b = set.figures(m);
            if lw.recall < b.recall {
                problems.push(format!(
                    "{name}: recall: leakwatch {}/{} < {} {}/{}",
                    lw.recall,
                    lw.leaks,
                    m.as_str(),
                    b.recall,
                    b.leaks
                ));
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

fn opt_h(h: Option<f64>) -> String {
    match h {
        Some(h) if h.is_finite() => format!("{h:.1}"),
        Some(h) if h < 0.0 => "-∞".to_owned(),
        _ => "∞".to_owned(),
    }
}

/// The report's tables for named sets side by side: one line per scenario, then the
/// headline figures per method and set.
pub fn side_by_side(sets: &[(&str, &SetReport)]) -> String {
    use std::fmt::Write;
    const W: usize = 13;
    let mut out = String::new();
    let methods = ["leakwatch", "deriv", "polyfit"];
    let header = |out: &mut String, first: &str, fw: usize| {
        let mut line = format!("{first:<fw$}");
        let mut sub = format!("{:<fw$}", "");
        for (name, _) in sets {
            let _ = write!(line, " || {:<w$}", name, w = 3 * W + 6);
            sub.push_str(" ||");
            for (k, m) in methods.iter().enumerate() {
                let _ = write!(sub, "{}{m:<W$}", if k == 0 { " " } else { " | " });
            }
        }
        let _ = writeln!(out, "{line}");
        let _ = writeln!(out, "{sub}");
        let _ = writeln!(out, "{}", "-".repeat(sub.chars().count()));
    };
    // Per scenario.
    let fw = 46;
    header(&mut out, "scenario (leak: suspected/confirmed h)", fw);
    let Some((_, first)) = sets.first() else {
        return out;
    };
    for (i, row) in first.rows.iter().enumerate() {
        let mut line = format!(
            "{:<fw$}",
            format!(
                "{} {} {}",
                row.scenario,
                row.runtime,
                if row.is_leak { "leak" } else { "trap" }
            )
        );
        for (_, set) in sets {
            line.push_str(" ||");
            let Some(r) = set.rows.get(i) else { continue };
            for (k, v) in r.verdicts.iter().enumerate() {
                let cell = if r.is_leak {
                    let d = |h: Option<f64>| h.map_or("-".to_owned(), |h| format!("{h:.1}"));
                    let mut c = format!(
                        "{}/{}",
                        d(v.suspected_delay_hours),
                        d(v.confirmed_delay_hours)
                    );
                    if v.false_resolutions > 0 {
                        let _ = write!(c, " r{}", v.false_resolutions);
                    }
                    if v.false_alarm {
                        c.push_str(" E");
                    }
                    c
                } else if v.false_alarm {
                    "ALARM".to_owned()
                } else if v.warning {
                    "warned".to_owned()
                } else {
                    "ok".to_owned()
                };
                let _ = write!(line, "{}{cell:<W$}", if k == 0 { " " } else { " | " });
            }
        }
        let _ = writeln!(out, "{line}");
    }
    let _ = writeln!(
        out,
        "\nleak cells: hours from onset to the first warning / first alarm at or after it (- = never);\n\
         rN = N alarms resolved while the leak still ran; E = alarmed before the onset.\n\
         trap cells: ALARM = alarmed, warned = warning only. Alarm = leakwatch memory.leak.confirmed,\n\
         the for: 6h deriv rule, the polyfit flag; warning = memory.leak.suspected, the for: 2h rule\n\
         (polyfit has one level). Raw: no leak-free twin is consulted.\n"
    );
    // Figures.
    let fw = 44;
    header(&mut out, "figure (raw)", fw);
    let figures: Vec<[Figures; 3]> = sets
        .iter()
        .map(|(_, s)| Method::ALL.map(|m| s.figures(m)))
        .collect();
    let line = |out: &mut String, name: &str, f: &dyn Fn(&Figures, usize) -> String| {
        let mut l = format!("{name:<fw$}");
        for set in &figures {
            l.push_str(" ||");
            for (k, fig) in set.iter().enumerate() {
                let _ = write!(l, "{}{:<W$}", if k == 0 { " " } else { " | " }, f(fig, k));
            }
        }
        let _ = writeln!(out, "{l}");
    };
    line(&mut out, "recall (leaks confirmed after onset)", &|f, _| {
        format!("{}/{}", f.recall, f.leaks)
    });
    line(&mut out, "false alarms on traps", &|f, _| {
        format!("{}/{}", f.false_alarms, f.traps)
    });
    line(&mut out, "alarms before a leak's onset", &|f, _| {
        format!("{}/{}", f.early_alarms, f.leaks)
    });
    line(&mut out, "traps warned (suspected level)", &|f, _| {
        format!("{}/{}", f.trap_warnings, f.traps)
    });
    line(&mut out, "onset→suspected median / p90 (h)", &|f, _| {
        format!("{} / {}", opt_h(f.suspected_median), opt_h(f.suspected_p90))
    });
    line(&mut out, "onset→confirmed median / p90 (h)", &|f, _| {
        format!("{} / {}", opt_h(f.confirmed_median), opt_h(f.confirmed_p90))
    });
    line(
        &mut out,
        "false resolutions (leaks / alarms ended)",
        &|f, _| format!("{} / {}", f.leaks_falsely_resolved, f.false_resolutions),
    );
    line(
        &mut out,
        "forecasts at 1st confirmation / knowable",
        &|f, k| {
            if k == 0 {
                format!("{} / {}", f.forecasts_given, f.limit_knowable)
            } else {
                format!("none / {}", f.limit_knowable)
            }
        },
    );
    line(
        &mut out,
        "forecast |rel. error| median / max",
        &|f, _| match (f.forecast_error_median, f.forecast_error_max) {
            (Some(m), Some(x)) => format!("{:.0}% / {:.0}%", 100.0 * m, 100.0 * x),
            _ => "-".to_owned(),
        },
    );
    line(&mut out, "OOM leaks confirmed before 1st OOM", &|f, _| {
        format!("{}/{}", f.confirmed_before_oom, f.oom_leaks)
    });
    line(
        &mut out,
        "OOM margin at confirmation, median (h)",
        &|f, _| opt_h(f.oom_margin_median),
    );
    let _ = writeln!(
        out,
        "\nMedians and p90 (nearest rank) are over all leaks, a missed leak counting as infinitely late.\n\
         Forecast: leakwatch's time_to_limit_seconds at its first confirmation after the onset against\n\
         the time the simulated process really runs out of memory (its crash, or its live set reaching\n\
         the limit, extrapolated at the leak's rate past the trace's end); knowable = the runtime or the\n\
         Collector reports the limit, or the process crashed out of memory before. The practices make no\n\
         forecast. OOM margin: first crash after the onset minus first confirmation (negative = after\n\
         the crash; a miss counts as -∞)."
    );
    out
}

/// The twin-adjusted view (second table): per set, each method's recall and median delay
/// when an alarm the method also raises on the leak's leak-free twin does not count.
pub fn twin_adjusted(sets: &[(&str, &Comparison)]) -> String {
    use std::fmt::Write;
    const W: usize = 13;
    let mut out = String::new();
    let fw = 44;
    let mut head = format!("{:<fw$}", "figure (twin-adjusted)");
    for (name, _) in sets {
        let _ = write!(head, " || {name:<w$}", w = 3 * W + 6);
    }
    let _ = writeln!(out, "{head}");
    let mut sub = format!("{:<fw$}", "");
    for _ in sets {
        sub.push_str(" ||");
        for (k, m) in ["leakwatch", "deriv", "polyfit"].iter().enumerate() {
            let _ = write!(sub, "{}{m:<W$}", if k == 0 { " " } else { " | " });
        }
    }
    let _ = writeln!(out, "{sub}");
    let _ = writeln!(out, "{}", "-".repeat(sub.chars().count()));
    let totals: Vec<[Totals; 3]> = sets
        .iter()
        .map(|(_, c)| Method::ALL.map(|m| c.totals(m)))
        .collect();
    let line = |out: &mut String, name: &str, f: &dyn Fn(&Totals) -> String| {
        let mut l = format!("{name:<fw$}");
        for set in &totals {
            l.push_str(" ||");
            for (k, t) in set.iter().enumerate() {
                let _ = write!(l, "{}{:<W$}", if k == 0 { " " } else { " | " }, f(t));
            }
        }
        let _ = writeln!(out, "{l}");
    };
    line(&mut out, "recall (not also alarmed on the twin)", &|t| {
        format!("{}/{}", t.detected, t.leaks)
    });
    line(&mut out, "median delay (h, all leaks)", &|t| {
        opt_h(t.median_delay_hours.or(Some(f64::INFINITY)))
    });
    line(&mut out, "leak-free twins alarmed", &|t| {
        format!("{}/{}", t.twin_alarms, t.leaks)
    });
    let _ = writeln!(
        out,
        "\nA leak counts as detected at the first alarm after its onset that the method does not also\n\
         raise on the same trace with the leak removed (same noise)."
    );
    out
}

/// Hours for the table (`∞` when undefined).
fn hours(h: Option<f64>) -> String {
    h.map_or_else(|| "∞ (missed)".to_owned(), |h| format!("{h:.1}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(t_s: u64, heap: f64, gc: Option<f64>) -> TraceSample {
        TraceSample {
            t_ns: t_s * 1_000_000_000,
            process_start_ns: 0,
            heap_used: heap,
            heap_floor: None,
            rss: None,
            gc_count: gc,
            request_count: None,
        }
    }

    #[test]
    fn deriv_is_per_second() {
        // 1 MB/h exactly: deriv must return 1e6/3600 B/s.
        let pts: Vec<(u64, f64)> = (0..100u64)
            .map(|i| (i * 30_000_000_000, 1e6 * (i * 30) as f64 / 3600.0))
            .collect();
        let r = Regression::new(&pts);
        let d = r.deriv(99 * 30_000_000_000, 6 * HOUR_NS);
        assert!(d.is_some_and(|d| (d - 1e6 / 3600.0).abs() < 1e-9), "{d:?}");
    }

    #[test]
    fn deriv_window_is_left_open() {
        let pts: Vec<(u64, f64)> = (0..=10u64).map(|i| (i * NS as u64, i as f64)).collect();
        let r = Regression::new(&pts);
        assert_eq!(r.range(10 * NS as u64, 5 * NS as u64), (6, 11));
        assert_eq!(r.deriv(0, 5 * NS as u64), None);
    }

    #[test]
    fn increase_undoes_resets_and_extrapolates() {
        // 10 per minute, scraped every minute; reset to 0 halfway.
        let pts: Vec<(u64, f64)> = (0..=60u64)
            .map(|i| {
                let v = if i < 30 { i * 10 } else { (i - 30) * 10 };
                (i * 60 * NS as u64, v as f64)
            })
            .collect();
        let c = Counter::new(&pts);
        // (0, 60 min]: samples 1..=60, sampled 59 min, extrapolated by one minute to the start.
        // The reset loses the 10 runs before the zero reading: 580 seen over 59 min.
        let inc = c.increase(60 * 60 * NS as u64, HOUR_NS);
        let expected = 580.0 * 3600.0 / 3540.0;
        assert!(inc.is_some_and(|v| (v - expected).abs() < 1e-6), "{inc:?}");
    }

    #[test]
    fn rules_fire_after_their_hold() {
        // 2 MB/h from t = 0, sampled every 30 s for 10 h; GC runs flat.
        let samples: Vec<TraceSample> = (1..=1200u64)
            .map(|i| sample(i * 30, 2e6 * (i * 30) as f64 / 3600.0, Some(i as f64)))
            .collect();
        let alerts = DerivRules::default().evaluate(&samples);
        // The first minute evaluation with ≥ 2 samples is at 60 s; `for: 2h` fires at 2h + 60 s.
        assert_eq!(
            alerts.suspected,
            vec![Firing {
                from_ns: 7260 * NS as u64,
                to_ns: None
            }]
        );
        // GC frequency does not rise: no confirmation.
        assert!(alerts.confirmed.is_empty());
    }

    #[test]
    fn rule_state_resets_on_false() {
        let mut r = RuleState::new(10);
        r.eval(0, true);
        r.eval(5, false);
        r.eval(6, true);
        r.eval(15, true);
        r.eval(16, true);
        r.eval(20, false);
        assert_eq!(
            r.finish(),
            vec![Firing {
                from_ns: 16,
                to_ns: Some(20)
            }]
        );
    }

    #[test]
    fn polyfit_matches_numpy() {
        // numpy.polyfit([0,1,2,3], [1,3,2,5], 1) -> slope 1.1; R² = 6.05 / 8.75
        let fit = polyfit(&[(0.0, 1.0), (1.0, 3.0), (2.0, 2.0), (3.0, 5.0)]);
        let Some((slope, r2)) = fit else {
            panic!("no fit");
        };
        assert!((slope - 1.1).abs() < 1e-12);
        assert!((r2 - 6.05 / 8.75).abs() < 1e-12, "{r2}");
    }

    #[test]
    fn polyfit_script_needs_its_minimum_points() {
        let samples: Vec<TraceSample> = (1..=(8 * 120u64))
            .map(|i| sample(i * 30, 1e8 + 1e3 * i as f64, None))
            .collect();
        let alerts = PolyfitR2::default().evaluate(&samples);
        // A clean line is flagged only once 72 five-minute points (6 h) exist.
        let first = alerts.confirmed.first().map(|f| f.from_ns / NS as u64);
        assert_eq!(first, Some(6 * 3600));
    }

    #[test]
    fn censored_median_counts_misses_as_late() {
        assert_eq!(median(&[1.0, 2.0, f64::INFINITY]), Some(2.0));
        assert_eq!(median(&[1.0, f64::INFINITY, f64::INFINITY]), None);
        assert_eq!(median(&[1.0, 3.0]), Some(2.0));
    }

    #[test]
    fn percentile_is_nearest_rank_and_misses_are_infinite() {
        let v = [3.0, 1.0, 2.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0];
        assert_eq!(percentile(&v, 0.5), Some(5.0));
        assert_eq!(percentile(&v, 0.9), Some(9.0));
        let missed = [1.0, 2.0, f64::INFINITY];
        assert_eq!(percentile(&missed, 0.5), Some(2.0));
        assert_eq!(percentile(&missed, 0.9), None);
        assert_eq!(percentile(&[], 0.5), None);
    }

    #[test]
    fn raw_verdicts_count_delays_resolutions_and_false_alarms() {
        let Some(leak) = crate::scenario::by_name("dotnet-leak-onset-midtrace") else {
            panic!("missing scenario");
        };
        let Some(onset) = leak.onset_ns() else {
            panic!("a leak has an onset");
        };
        let h = |x: f64| onset + (x * HOUR_NS as f64) as u64;
        let alerts = Alerts {
            suspected: vec![Firing {
                from_ns: h(0.5),
                to_ns: None,
            }],
            confirmed: vec![
                Firing {
                    from_ns: h(1.0),
                    to_ns: Some(h(3.0)),
                },
                Firing {
                    from_ns: h(5.0),
                    to_ns: None,
                },
            ],
        };
        let v = RawVerdict::of(&leak, &alerts, &|_| None);
        assert_eq!(v.suspected_delay_hours, Some(0.5));
        assert_eq!(v.confirmed_delay_hours, Some(1.0));
        assert_eq!(v.false_resolutions, 1);
        assert!(!v.false_alarm && v.forecast.is_none() && v.oom_margin_hours.is_none());
        // An alarm before the onset is a false alarm on the healthy part of the trace.
        let early = Alerts {
            suspected: vec![],
            confirmed: vec![Firing {
                from_ns: onset - HOUR_NS,
                to_ns: Some(onset - 1),
            }],
        };
        let v = RawVerdict::of(&leak, &early, &|_| None);
        assert!(v.false_alarm && v.confirmed_delay_hours.is_none());
        let Some(trap) = crate::scenario::by_name("node-cache-warmup") else {
            panic!("missing scenario");
        };
        let v = RawVerdict::of(&trap, &early, &|_| None);
        assert!(v.false_alarm && !v.warning);
        assert!(!RawVerdict::of(&trap, &Alerts::default(), &|_| None).false_alarm);
    }

    #[test]
    fn oom_margin_and_forecast_use_the_simulated_crash() {
        let Some(sc) = crate::scenario::by_name("node-oom-cycle-7.7h") else {
            panic!("missing scenario");
        };
        let first_oom = sc.oom_times_ns()[0];
        let at = first_oom - 2 * HOUR_NS;
        let alerts = Alerts {
            suspected: vec![],
            confirmed: vec![Firing {
                from_ns: at,
                to_ns: None,
            }],
        };
        // A forecast of 3 h where the crash comes 2 h later: 50 % too long.
        let v = RawVerdict::of(&sc, &alerts, &|t| (t == at).then_some(3.0 * 3600.0));
        let Some(Some(margin)) = v.oom_margin_hours else {
            panic!("no margin: {v:?}");
        };
        assert!((margin - 2.0).abs() < 1e-9, "{margin}");
        let Some((forecast, truth)) = v.forecast else {
            panic!("no forecast: {v:?}");
        };
        assert!((forecast / truth - 1.5).abs() < 1e-6, "{forecast} {truth}");
        // Before the first crash Node's limit is not reported anywhere.
        assert!(!v.limit_knowable);
    }
}
