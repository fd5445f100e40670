//! End-to-end behaviour of the detector on synthetic traces (test-only): a process with a heap
//! series (GC sawtooth), a GC counter and a request counter, fed point by point in event time.

use crate::catalog::{Classified, Role};
use crate::detector::{
    DetectorConfig, LeakEvent, LeakEventKind, ResourceDetector, Sample, SeriesDetector, Temporality,
};
use std::time::Duration;

const S: u64 = 1_000_000_000;
const MB: f64 = 1e6;
const H: f64 = 3600.0;
/// 2024-01-01T00:00:00Z: realistic epoch timestamps.
const T0: u64 = 1_704_067_200 * S;

/// Deterministic uniform noise in [-1, 1).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((self.0 >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
    }
}

/// What the synthetic process does at time `t` (seconds since start).
struct Trace {
    hours: f64,
    step_secs: f64,
    /// Post-GC floor in bytes.
    floor: Box<dyn Fn(f64) -> f64>,
    /// Sawtooth amplitude as a fraction of the floor.
    saw: Box<dyn Fn(f64) -> f64>,
    /// GC period in seconds.
    gc_period: f64,
    /// Requests per second.
    rps: Box<dyn Fn(f64) -> f64>,
    /// Restart times (seconds).
    restarts: Vec<f64>,
    /// Heap limit reported, if any.
    limit: Option<f64>,
    /// Floor noise (bytes, uniform ±).
    noise: f64,
    /// Report the heap as `HeapAfterGc` instead of `HeapUsed`.
    after_gc: bool,
    /// Whether the process reports request and GC counters.
    counters: bool,
    seed: u64,
}

impl Trace {
    fn new(hours: f64, floor: impl Fn(f64) -> f64 + 'static) -> Trace {
        Trace {
            hours,
            step_secs: 30.0,
            floor: Box::new(floor),
            saw: Box::new(|_| 0.3),
            gc_period: 300.0,
            rps: Box::new(|_| 100.0),
            restarts: Vec::new(),
            limit: None,
            noise: 1.0 * MB,
            after_gc: false,
            counters: true,
            seed: 7,
        }
    }
}

struct Run {
    events: Vec<LeakEvent>,
}

impl Run {
    fn first(&self, kind: LeakEventKind) -> Option<f64> {
        self.events
            .iter()
            .find(|e| e.kind == kind)
            .map(|e| (e.t_ns - T0) as f64 / 1e9 / H)
    }
    fn count(&self, kind: LeakEventKind) -> usize {
        self.events.iter().filter(|e| e.kind == kind).count()
    }
}

fn simulate(cfg: &DetectorConfig, tr: &Trace) -> Run {
    let mut rng = Lcg(tr.seed);
    let heap_role = if tr.after_gc {
        Role::HeapAfterGc
    } else {
        Role::HeapUsed
    };
    let mut heap = SeriesDetector::new(Classified {
        role: heap_role,
        scale: 1.0,
    });
    let mut gc = SeriesDetector::new(Classified {
        role: Role::GcCount,
        scale: 1.0,
    });
    let mut req = SeriesDetector::new(Classified {
        role: Role::RequestCount,
        scale: 1.0,
    });
    let mut lim = SeriesDetector::new(Classified {
        role: Role::MemoryLimit,
        scale: 1.0,
    });
    let mut res = ResourceDetector::new();
    let mut events = Vec::new();
    let (mut gc_total, mut req_total) = (0.0, 0.0);
    let mut start = T0;
    let mut next_restart = 0;
    let steps = (tr.hours * H / tr.step_secs) as u64;
    let phase = rng.next().abs() * tr.gc_period;
    let (mut cycle, mut cycle_noise) = (-1.0, 0.0);
    for k in 1..=steps {
        let t = k as f64 * tr.step_secs;
        let t_ns = T0 + (t * 1e9) as u64;
        if next_restart < tr.restarts.len() && t >= tr.restarts[next_restart] {
            next_restart += 1;
            start = t_ns - 1;
            gc_total = 0.0;
            req_total = 0.0;
        }
        let cycle_no = ((t + phase) / tr.gc_period).floor();
        if cycle_no != cycle {
            cycle = cycle_no;
            cycle_noise = rng.next() * tr.noise;
        }
        let floor = (tr.floor)(t) + cycle_noise + rng.next() * tr.noise * 0.1;
        let frac = ((t + phase) / tr.gc_period).fract();
        let value = if tr.after_gc {
            floor
        } else {
            floor * (1.0 + (tr.saw)(t) * frac)
        };
        gc_total += tr.step_secs / tr.gc_period;
        req_total += (tr.rps)(t) * tr.step_secs;
        let mut feed = |s: &mut SeriesDetector, key: u64, name: &str, v: f64, temp| {
            let obs = s.observe(
                cfg,
                Sample {
                    t_ns,
                    start_ns: start,
                    value: v,
                    temporality: temp,
                },
            );
            if obs.is_accepted() {
                if let Some(e) = res.on_series(cfg, key, name, "", s, t_ns) {
                    events.push(e);
                }
            }
        };
        feed(&mut heap, 1, "heap", value, Temporality::Gauge);
        if tr.counters {
            feed(&mut gc, 2, "gc", gc_total.floor(), Temporality::Cumulative);
            feed(
                &mut req,
                3,
                "req",
                req_total.floor(),
                Temporality::Cumulative,
            );
        }
        if let Some(l) = tr.limit {
            feed(&mut lim, 4, "limit", l, Temporality::Gauge);
        }
    }
    let run = Run { events };
    if std::env::var("LW_SCEN").is_ok() {
        eprintln!("EVENTS {}", describe(&run));
    }
    run
}

fn hour_cfg() -> DetectorConfig {
    DetectorConfig::default()
}

fn describe(r: &Run) -> String {
    r.events
        .iter()
        .map(|e| {
            format!(
                "{:?}@{:.1}h {:?} {:.0}KB/h",
                e.kind,
                (e.t_ns - T0) as f64 / 1e9 / H,
                e.signals,
                e.growth_bytes_per_hour / 1e3
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn assert_quiet(name: &str, r: &Run) {
    assert_eq!(
        r.count(LeakEventKind::Suspected),
        0,
        "{name}: {}",
        describe(r)
    );
}

#[test]
fn slow_leak_under_sawtooth_is_confirmed_within_36h() {
    let tr = Trace::new(48.0, |t| 200.0 * MB + 0.6 * MB * t / H);
    let r = simulate(&hour_cfg(), &tr);
    let c = r.first(LeakEventKind::Confirmed);
    assert!(c.is_some_and(|h| h <= 36.0), "{}", describe(&r));
}

#[test]
fn fast_leak_is_confirmed_within_8h() {
    let tr = Trace::new(24.0, |t| 200.0 * MB + 10.0 * MB * t / H);
    let r = simulate(&hour_cfg(), &tr);
    let c = r.first(LeakEventKind::Confirmed);
    assert!(c.is_some_and(|h| h <= 8.0), "{}", describe(&r));
}

#[test]
fn flat_sawtooth_is_quiet() {
    let tr = Trace::new(72.0, |_| 200.0 * MB);
    assert_quiet("flat", &simulate(&hour_cfg(), &tr));
}

#[test]
fn cache_warm_up_is_quiet() {
    let tr = Trace::new(72.0, |t| {
        200.0 * MB + 150.0 * MB * (1.0 - (-t / (2.0 * H)).exp())
    });
    assert_quiet("warm-up", &simulate(&hour_cfg(), &tr));
}

#[test]
fn one_off_step_is_quiet() {
    let tr = Trace::new(72.0, |t| {
        200.0 * MB + if t > 10.0 * H { 60.0 * MB } else { 0.0 }
    });
    assert_quiet("step", &simulate(&hour_cfg(), &tr));
}

#[test]
fn daily_traffic_wave_is_quiet() {
    let wave = |t: f64| (t / (24.0 * H) * std::f64::consts::TAU).sin();
    let mut tr = Trace::new(96.0, move |t| 200.0 * MB + 30.0 * MB * wave(t));
    tr.rps = Box::new(move |t| 100.0 + 60.0 * wave(t));
    assert_quiet("daily", &simulate(&hour_cfg(), &tr));
}

#[test]
fn nightly_batch_is_quiet() {
    let tr = Trace::new(96.0, |t| {
        let hour_of_day = (t / H) % 24.0;
        200.0 * MB
            + if (2.0..4.0).contains(&hour_of_day) {
                80.0 * MB
            } else {
                0.0
            }
    });
    assert_quiet("batch", &simulate(&hour_cfg(), &tr));
}

#[test]
fn rising_peaks_over_flat_floor_are_quiet() {
    let mut tr = Trace::new(72.0, |_| 200.0 * MB);
    tr.saw = Box::new(|t| 0.1 + 0.5 * t / (72.0 * H));
    assert_quiet("peaks", &simulate(&hour_cfg(), &tr));
}

#[test]
fn periodic_deploys_are_quiet() {
    let mut tr = Trace::new(96.0, |t| {
        let since = t % (12.0 * H);
        150.0 * MB + 60.0 * MB * (1.0 - (-since / H).exp())
    });
    tr.restarts = (1..8).map(|k| k as f64 * 12.0 * H).collect();
    assert_quiet("deploys", &simulate(&hour_cfg(), &tr));
}

#[test]
fn oom_restart_cycles_are_confirmed() {
    // 20 MB/h from 150 MB to a 512 MB limit: an OOM every ~18 h.
    let cycle = 18.0 * H;
    let mut tr = Trace::new(96.0, move |t| 150.0 * MB + 20.0 * MB * (t % cycle) / H);
    tr.restarts = (1..6).map(|k| k as f64 * cycle).collect();
    tr.limit = Some(512.0 * MB);
    tr.saw = Box::new(|_| 0.05);
    let r = simulate(&hour_cfg(), &tr);
    assert!(
        r.first(LeakEventKind::Confirmed).is_some(),
        "{}",
        describe(&r)
    );
    assert_eq!(r.count(LeakEventKind::Resolved), 0, "{}", describe(&r));
}

#[test]
fn onset_mid_trace_is_confirmed() {
    let tr = Trace::new(60.0, |t| {
        200.0 * MB
            + if t > 24.0 * H {
                3.0 * MB * (t - 24.0 * H) / H
            } else {
                0.0
            }
    });
    let r = simulate(&hour_cfg(), &tr);
    let c = r.first(LeakEventKind::Confirmed);
    assert!(c.is_some_and(|h| h > 24.0 && h <= 40.0), "{}", describe(&r));
}

#[test]
fn traffic_proportional_leak_is_confirmed() {
    let wave = |t: f64| (t / (24.0 * H) * std::f64::consts::TAU).sin();
    // 100 bytes leaked per request; ~100 req/s on average → ~36 MB/h.
    let cum = move |t: f64| {
        let w = 24.0 * H / std::f64::consts::TAU;
        100.0 * t + 60.0 * w * (1.0 - (t / w).cos())
    };
    let mut tr = Trace::new(48.0, move |t| 200.0 * MB + 100.0 * cum(t) * 0.05);
    tr.rps = Box::new(move |t| 100.0 + 60.0 * wave(t));
    let r = simulate(&hour_cfg(), &tr);
    assert!(
        r.first(LeakEventKind::Confirmed).is_some(),
        "{}",
        describe(&r)
    );
}

#[test]
fn fixed_leak_resolves() {
    let tr = Trace::new(72.0, |t| 200.0 * MB + 10.0 * MB * (t.min(12.0 * H)) / H);
    let r = simulate(&hour_cfg(), &tr);
    assert!(
        r.first(LeakEventKind::Confirmed).is_some(),
        "{}",
        describe(&r)
    );
    assert!(
        r.first(LeakEventKind::Resolved).is_some(),
        "{}",
        describe(&r)
    );
}

#[test]
fn seconds_scale_config_detects_fast_leak() {
    let cfg = DetectorConfig::with_windows(Duration::from_secs(60), Duration::from_secs(120));
    let mut tr = Trace::new(10.0 / 60.0, |t| 100.0 * MB + 1.0 * MB * t);
    tr.step_secs = 2.0;
    tr.gc_period = 10.0;
    let r = simulate(&cfg, &tr);
    let c = r.first(LeakEventKind::Confirmed).map(|h| h * H);
    // Within a few windows (60 s each).
    assert!(c.is_some_and(|s| s <= 240.0), "{}", describe(&r));
}

#[test]
fn seconds_scale_flat_is_quiet() {
    let cfg = DetectorConfig::with_windows(Duration::from_secs(60), Duration::from_secs(120));
    let mut tr = Trace::new(20.0 / 60.0, |_| 100.0 * MB);
    tr.step_secs = 2.0;
    tr.gc_period = 10.0;
    assert_quiet("seconds flat", &simulate(&cfg, &tr));
}

#[test]
fn heap_after_gc_leak_is_confirmed() {
    let mut tr = Trace::new(24.0, |t| 200.0 * MB + 5.0 * MB * t / H);
    tr.after_gc = true;
    let r = simulate(&hour_cfg(), &tr);
    assert!(
        r.first(LeakEventKind::Confirmed).is_some_and(|h| h <= 12.0),
        "{}",
        describe(&r)
    );
}

#[test]
fn replay_is_deterministic() {
    let tr = Trace::new(24.0, |t| 200.0 * MB + 10.0 * MB * t / H);
    let a = simulate(&hour_cfg(), &tr);
    let b = simulate(&hour_cfg(), &tr);
    assert!(!a.events.is_empty());
    assert_eq!(a.events, b.events);
}

#[test]
fn short_oom_cycles_are_a_restart_cycle_leak() {
    // 90 MB/h from 150 MB to a 512 MB limit: an OOM kill every 4 h, too short for a window fit.
    let cycle = 4.0 * H;
    let mut tr = Trace::new(48.0, move |t| 150.0 * MB + 90.0 * MB * (t % cycle) / H);
    tr.restarts = (1..12).map(|k| k as f64 * cycle).collect();
    tr.limit = Some(512.0 * MB);
    tr.saw = Box::new(|_| 0.05);
    let r = simulate(&hour_cfg(), &tr);
    let confirmed = r.events.iter().find(|e| e.kind == LeakEventKind::Confirmed);
    assert!(
        confirmed
            .is_some_and(|e| e.signals.contains(&"restart_cycle") && e.growth_bytes_per_hour > 0.0),
        "{}",
        describe(&r)
    );
    assert_eq!(r.count(LeakEventKind::Resolved), 0, "{}", describe(&r));
}

/// A container without runtime metrics: `container.memory.working_set` flat around 300 MB and
/// `container.memory.usage` = working set + page cache, the cache growing 12 MiB/h from files
/// written (kubeletstats' two series). With `working_set` false only `usage` is reported.
fn page_cache_container(with_working_set: bool) -> Run {
    let cfg = hour_cfg();
    let mut rng = Lcg(11);
    let mut ws = SeriesDetector::new(Classified {
        role: Role::ContainerMemory,
        scale: 1.0,
    });
    let mut usage = SeriesDetector::new(Classified {
        role: Role::ContainerUsage,
        scale: 1.0,
    });
    let mut res = ResourceDetector::new();
    let mut events = Vec::new();
    let step = 30.0;
    for k in 1..=((36.0 * H / step) as u64) {
        let t = k as f64 * step;
        let t_ns = T0 + (t * 1e9) as u64;
        let working_set = 300.0 * MB + rng.next() * 4.0 * MB;
        let cache = 12.0 * 1024.0 * 1024.0 * t / H;
        let mut feed = |s: &mut SeriesDetector, key: u64, name: &str, v: f64| {
            let sample = Sample {
                t_ns,
                start_ns: T0,
                value: v,
                temporality: Temporality::Gauge,
            };
            if s.observe(&cfg, sample).is_accepted() {
                if let Some(e) = res.on_series(&cfg, key, name, "", s, t_ns) {
                    events.push(e);
                }
            }
        };
        if with_working_set {
            feed(&mut ws, 1, "container.memory.working_set", working_set);
        }
        feed(&mut usage, 2, "container.memory.usage", working_set + cache);
    }
    Run { events }
}

#[test]
fn page_cache_is_not_a_leak_when_the_working_set_is_reported() {
    assert_quiet("page cache", &page_cache_container(true));
}

#[test]
fn container_usage_is_judged_when_it_is_all_there_is() {
    // The same usage series alone grows like a leak and is judged as one: what keeps the test
    // above quiet is the better series, not a blind spot.
    let r = page_cache_container(false);
    assert!(
        r.first(LeakEventKind::Confirmed).is_some(),
        "usage alone: {}",
        describe(&r)
    );
}
