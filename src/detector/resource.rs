//! Per-process state: combines the signals of a resource's series and owns the incident
//! lifecycle `ok → suspected → confirmed → resolved (→ ok)`.
//!
//! # Signals
//! - **memory**: the heap floor (`HeapUsed` minima or `HeapAfterGc`) of any heap series
//!   (V8 space, JVM pool, …; each judged on its own, since a leak concentrates in one of them).
//! - **native**: resident (or container) memory minus the committed heap, when the process
//!   reports both. Resident memory holds the *committed* heap, which follows the sawtooth's
//!   peaks (the GC trigger) and is handed back slowly, so its per-bucket minimum is a smoothed
//!   peak, not a floor: it rises with allocation rate and GC spacing while the live set is
//!   flat. What is left after subtracting the committed heap is native memory, which has a
//!   floor (native leaks, buffers outside the heap).
//! - **rss**: resident / container memory on its own. It is a primary signal only for a process
//!   that reports neither heap series nor committed heap (Python, native programs); otherwise it
//!   only supports the other signals (listed when it agrees, never raising an incident).
//! - **restart_cycle**: a segment that grew until the process restarted. A grow-to-the-limit-
//!   then-restart cycle is the strongest evidence there is, not a cure: restarts hide leaks from
//!   window fits, so each finished segment is judged on its own (growth significant and not
//!   saturating, or a peak within `oom_fraction` of the limit). A memory *drop* counts as a
//!   restart only if the process' counters also reset (when it has any): a major GC can also
//!   halve the heap.
//! - supporting, listed when they agree but never raising an incident alone:
//!   **memory_per_request** (floor / request rate rising), **gc_frequency** (GC runs per second
//!   rising), **gc_efficiency** (fraction reclaimed per bucket, `(max - min) / max`, falling).
//!
//! Load: when the process reports a request rate, each memory floor is regressed on load and
//! time together over the long window of its segment, `floor ≈ a + b·rps + c·t`, and its growth
//! counts as evidence only if `c` (growth at constant load) is significantly positive (plain OLS
//! t) and at least `min_growth_bytes_per_hour`. Memory that follows load (sessions, buffers
//! under a daily wave) gets `c ≈ 0`; a leak during a traffic ramp, and a leak proportional to
//! traffic (cumulative requests grow with time), keep `c > 0`. While load and time are too
//! collinear to separate (the first morning of a process), `c` is not significant and growth is
//! not evidence yet.
//!
//! # Lifecycle (event time only)
//! - ok → suspected: some primary signal has been leak-like (short or long window) for
//!   `suspect_hold`.
//! - suspected → confirmed: the long window (or `restart_cycles` grown cycles) has been
//!   leak-like for `confirm_hold`, or any evidence has held for 2 × `confirm_hold` (a recent
//!   onset, whose long-window fit is still dominated by the flat history before it). Without a
//!   load regression to tell a morning ramp from a leak, a young segment confirms only once its
//!   long window spans `confirm_span_without_load` of the long window (most of a day), unless
//!   the forecast reaches a known limit within one long window.
//! - suspected/confirmed → resolved: no primary signal passes even the relaxed (hysteresis)
//!   test, and no long window still grows by the minimum effect size (significant or not),
//!   with enough data to judge, for `resolve_hold`. Too little data (e.g. just after a restart)
//!   never resolves an incident.
//!
//! Series are evaluated when their newest bucket completes, so the lifecycle advances at bucket
//! boundaries; the same points in the same order always give the same events.

use crate::catalog::{Classified, Role};
use crate::detector::series::{RestartKind, SeriesDetector};
use crate::detector::stats::{LineFit, PlaneFit};
use crate::detector::trend::Assessment;
use crate::detector::window::{Points, Ring, BUCKETS};
use crate::detector::{DetectorConfig, Sample, Temporality};

/// Memory series tracked per resource (further series are counted and ignored).
pub const MAX_MEMORY_SERIES: usize = 16;
/// Limit series tracked per resource.
pub const MAX_LIMIT_SERIES: usize = 8;
/// Committed-heap series tracked per resource (V8 reports one per space).
pub const MAX_COMMITTED_SERIES: usize = 8;
/// Native-memory series (resident minus committed heap) derived per resource.
pub const MAX_NATIVE_SERIES: usize = 4;

/// Incident state of a resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeakState {
    /// No incident.
    #[default]
    Ok,
    /// Growth seen, not yet confirmed.
    Suspected,
    /// Growth confirmed over the long window or by restart cycles.
    Confirmed,
}

/// A lifecycle transition.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum LeakEventKind {
    /// ok → suspected.
    Suspected,
    /// suspected → confirmed.
    Confirmed,
    /// suspected/confirmed → ok.
    Resolved,
}

impl LeakEventKind {
    /// The event name exported downstream.
    pub fn event_name(self) -> &'static str {
        match self {
            LeakEventKind::Suspected => "memory.leak.suspected",
            LeakEventKind::Confirmed => "memory.leak.confirmed",
            LeakEventKind::Resolved => "memory.leak.resolved",
        }
    }
}

/// A lifecycle transition with the evidence behind it.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct LeakEvent {
    /// Which transition.
    pub kind: LeakEventKind,
    /// Event time of the transition.
    pub t_ns: u64,
    /// Event time the incident began (its `suspected` event): the same on every event of one
    /// incident, and in every leakwatch fed the same data (the incident id derives from it).
    pub incident_start_ns: u64,
    /// Metric name of the leading series.
    pub metric: String,
    /// Signals that agree (`memory`, `native`, `rss`, `memory_per_request`, `gc_frequency`,
    /// `gc_efficiency`, `restart_cycle`).
    pub signals: Vec<&'static str>,
    /// Growth of the leading series' floor.
    pub growth_bytes_per_hour: f64,
    /// R² of the leading fit.
    pub r_squared: f64,
    /// Span of the leading fit.
    pub window_seconds: f64,
    /// Forecast until the limit, when one is known.
    pub time_to_limit_seconds: Option<f64>,
    /// The limit used for the forecast.
    pub limit_bytes: Option<f64>,
    /// Why an incident ended (`resolved` events only).
    pub resolution: Option<Resolution>,
    /// Where `limit_bytes` comes from.
    pub limit_source: Option<LimitSource>,
    /// What leaks: the leading series' data point attributes, e.g.
    /// `v8js.heap.space.name=old_space`, or `native` for resident minus committed heap.
    pub component: Option<String>,
    /// The runtime's next diagnostic step, when the runtime is known from the metric.
    pub next_step: Option<&'static str>,
}

/// The next diagnostic step for a leak led by `metric` (or by native memory).
pub fn next_step(metric: &str, native: bool) -> Option<&'static str> {
    let any = |prefixes: &[&str]| prefixes.iter().any(|p| metric.starts_with(p));
    Some(if native {
        "native memory outside the managed heap: profile allocations (heaptrack, jemalloc's heap profiling); in Node.js check addons and Buffers (process.memoryUsage().external)"
    } else if any(&["v8js.", "process.runtime.nodejs."]) {
        "Node.js: write two heap snapshots some time apart (v8.writeHeapSnapshot, the guide's /debug/heapdump) and compare them in Chrome DevTools"
    } else if any(&["jvm.", "process.runtime.jvm."]) {
        "JVM: jcmd <pid> GC.heap_dump twice and compare the dominators (e.g. Eclipse MAT)"
    } else if any(&["go.", "process.runtime.go."]) {
        "Go: capture /debug/pprof/heap twice and diff them: go tool pprof -base heap1.pb.gz heap2.pb.gz"
    } else if any(&["dotnet."]) {
        ".NET: dotnet-gcdump collect -p <pid> twice and compare the dumps"
    } else if any(&[
        "process.runtime.python.",
        "process.runtime.cpython.",
        "cpython.",
    ]) {
        "Python: tracemalloc.take_snapshot() twice and snapshot2.compare_to(snapshot1, 'lineno')"
    } else {
        return None;
    })
}

/// Why an incident ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Resolution {
    /// The floor stopped growing for the resolve hold.
    Flat,
    /// The process stopped reporting for longer than the idle timeout (event time).
    ProcessGone,
}

impl Resolution {
    /// The value of the event's `leak.resolution` attribute.
    pub fn as_str(self) -> &'static str {
        match self {
            Resolution::Flat => "flat",
            Resolution::ProcessGone => "process_gone",
        }
    }
}

/// Snapshot of a resource for the admin API.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct ResourceSummary {
    /// Incident state.
    pub state: LeakState,
    /// Event time of the last transition (0 = never).
    pub since_t_ns: u64,
    /// Signals currently agreeing.
    pub signals: Vec<&'static str>,
    /// Growth of the leading series' floor.
    pub growth_bytes_per_hour: f64,
    /// R² of the leading fit.
    pub r_squared: f64,
    /// Span of the leading fit.
    pub window_seconds: f64,
    /// Forecast until the limit.
    pub time_to_limit_seconds: Option<f64>,
    /// The limit used.
    pub limit_bytes: Option<f64>,
    /// Metric name of the leading series.
    pub leading_metric: Option<String>,
    /// Memory series tracked.
    pub tracked_series: usize,
    /// Memory series ignored because the resource already tracks the maximum.
    pub dropped_series: u64,
}

/// The series leading a resource's verdict (see [`ResourceDetector::leading_trend`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LeadingTrend {
    /// Key of the leading series.
    pub key: u64,
    /// The leader is resident minus committed memory derived from series `key`.
    pub derived: bool,
    /// The assessment that best describes it now (`None` before there is enough data).
    pub assessment: Option<Assessment>,
}

/// Where a memory entry's values come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
enum Source {
    /// A heap series (`HeapUsed`, `HeapAfterGc`).
    Heap,
    /// A resident / container memory series as reported.
    Resident,
    /// Resident memory minus the committed heap (derived by this detector).
    Native,
    /// Container memory including page cache: judged only when nothing better is reported.
    Usage,
}

/// An assessment a [`MemoryEntry`] holds, boxed: `None` costs the entry 8 bytes instead of the
/// 152 of an inline `Option<Assessment>`. A process's memory entries are created with the
/// process and hold no assessment until their series has enough buckets for a fit (and the
/// cycle assessment only after a grown restart cycle), so three inline slots made an entry
/// 544 bytes, most of it empty; boxed, it is 112 (152 with the fast window's state), and an assessment costs its 160-byte box
/// only while there is one. Serialized exactly like `Option<Assessment>` (serde treats a
/// `Box` as its contents and the wrapper is transparent), so checkpoints are unchanged; reads
/// copy the assessment out, as reads of the inline `Option` did.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
struct Held(Option<Box<Assessment>>);

impl Held {
    fn get(&self) -> Option<Assessment> {
        self.0.as_deref().copied()
    }

    fn is_some(&self) -> bool {
        self.0.is_some()
    }

    /// Stores `a`, reusing the box already held (an entry is re-evaluated once per bucket).
    fn set(&mut self, a: Option<Assessment>) {
        match (a, &mut self.0) {
            (Some(a), Some(held)) => **held = a,
            (a, slot) => *slot = a.map(Box::new),
        }
    }
}

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
struct MemoryEntry {
    key: u64,
    source: Source,
    metric: String,
    /// The series' data point attributes (`k=v,…`): which part of the heap it is.
    #[serde(default)]
    component: Box<str>,
    last_eval_head: Option<u64>,
    seen_restarts: u32,
    short: Held,
    long: Held,
    /// Whether this entry may raise, confirm and hold an incident (see `refresh_primary`).
    primary: bool,
    /// The floor's growth is explained by load: a load regression was possible and growth at
    /// constant load is not significant.
    load_explained: bool,
    /// A load regression was possible over the long window.
    load_fitted: bool,
    /// The long window spans enough of the long window to confirm without a load regression,
    /// or the forecast reaches the limit within one long window.
    mature: bool,
    mpr_rising: bool,
    gc_eff_falling: bool,
    grown_cycles: u32,
    /// Assessment of the last finished segment that grew (for restart-cycle events).
    cycle: Held,
    /// A memory-drop restart awaiting a counter reset: (event time, segment grew, out of
    /// memory).
    pending_cycle: Option<(u64, bool, bool)>,
    /// Event time of the restart whose grown (not out-of-memory) cycle was counted last, so a
    /// warm-up verdict on the same restart by another series can take it back (0 = none).
    cycle_ns: u64,
    /// The floor over the fast window, and the fast bucket it was judged at.
    #[serde(default)]
    fast: Held,
    /// (0 = not yet judged.)
    #[serde(default)]
    fast_head: u64,
    /// The fast window is leak-like: strong growth, not outpaced by the load (see `judge_fast`).
    #[serde(default)]
    fast_leak: bool,
    /// The series' segment is younger than the short window (a process that just started:
    /// where warm-ups live), and its growth is not urgent: it may be suspected (when it began
    /// after a flat stretch) but not confirmed by the fast window.
    #[serde(default)]
    fast_young: bool,
    /// The fast window's forecast reaches a known limit within two fast windows.
    #[serde(default)]
    fast_urgent: bool,
    /// The peak the series reached before its last grow-then-restart cycle (see
    /// [`LimitSource::PreviousPeak`]).
    /// (0 = none; `f32` like the rings' values.)
    #[serde(default)]
    peak_limit: f32,
}

impl MemoryEntry {
    fn new(key: u64, source: Source, metric: String, component: &str, restarts: u32) -> Self {
        MemoryEntry {
            key,
            source,
            component: component.into(),
            metric,
            last_eval_head: None,
            seen_restarts: restarts,
            short: Held::default(),
            long: Held::default(),
            primary: true,
            load_explained: false,
            load_fitted: false,
            mature: false,
            mpr_rising: false,
            gc_eff_falling: false,
            grown_cycles: 0,
            cycle: Held::default(),
            pending_cycle: None,
            cycle_ns: 0,
            fast: Held::default(),
            fast_head: 0,
            fast_leak: false,
            fast_young: false,
            fast_urgent: false,
            peak_limit: 0.0,
        }
    }

    /// The short window is leak-like, the forecast (if any) is within the horizon, and the
    /// long window does not show the growth saturating (the tail of a slow warm-up still rises
    /// over six hours; over a day it visibly bends).
    fn leak_short(&self) -> bool {
        !self.load_explained
            && self.short.get().is_some_and(|a| a.leak && a.within_horizon)
            && !self.long.get().is_some_and(|a| a.saturating)
    }
    fn leak_long(&self) -> bool {
        !self.load_explained && self.long.get().is_some_and(|a| a.leak)
    }
    fn leak_fast(&self) -> bool {
        // Not `load_explained`: over a long window whose older part is flat, a late leak at
        // falling traffic is collinear with the load; the fast window has its own load test.
        self.fast_leak && !self.long.get().is_some_and(|a| a.saturating)
    }
    /// The short and long windows' evidence (the fast window's has its own holds, see
    /// `step_lifecycle`: its shortest spans may flicker on noise for a bucket, which must not
    /// bridge a gap in this evidence).
    fn evidence(&self) -> bool {
        self.primary && (self.leak_short() || self.leak_long() || self.grown_cycles >= 1)
    }
    /// Keeps an open incident open: the relaxed (hysteresis) test on either window, a long
    /// window that still grows by the minimum effect size, or a grown restart cycle.
    fn relaxed(&self) -> bool {
        self.primary
            && (self.short.get().is_some_and(|a| a.relaxed)
                || self.long.get().is_some_and(|a| a.relaxed || a.persisting)
                || self.leak_fast()
                || (!self.short.is_some() && self.fast.get().is_some_and(|a| a.relaxed))
                || self.grown_cycles >= 1)
    }
    /// What leaks, for events: the series' attributes, or `native` for a derived native series.
    fn component(&self) -> Option<String> {
        match self.source {
            Source::Native => Some("native".to_owned()),
            _ => (!self.component.is_empty()).then(|| self.component.to_string()),
        }
    }
    fn judgeable(&self) -> bool {
        self.primary && (self.short.is_some() || self.long.is_some())
    }
    /// The assessment that best describes this series now.
    fn best(&self) -> Option<Assessment> {
        if self.leak_long() {
            self.long.get()
        } else if self.leak_short() {
            self.short.get()
        } else if self.leak_fast() {
            self.fast.get()
        } else if self.grown_cycles >= 1 && self.cycle.is_some() {
            self.cycle.get()
        } else {
            self.long.get().or(self.short.get())
        }
    }
}

#[derive(Clone, Copy, Debug, serde::Serialize, serde::Deserialize)]
struct LimitEntry {
    key: u64,
    value: f64,
    stable: bool,
    #[serde(default)]
    source: LimitSource,
}

/// Where a memory limit comes from (`leak.limit_source`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitSource {
    /// The runtime's own limit (`jvm.memory.limit`, `go.memory.limit`, …).
    #[default]
    Runtime,
    /// The container's limit (`k8s.container.memory_limit`, …).
    Container,
    /// A limit configured for the resource (`catalog.limits`).
    Configured,
    /// The peak this series reached before the process last died while growing (an
    /// out-of-memory restart): the limit it will hit again.
    PreviousPeak,
}

impl LimitSource {
    pub fn as_str(self) -> &'static str {
        match self {
            LimitSource::Runtime => "runtime",
            LimitSource::Container => "container",
            LimitSource::Configured => "configured",
            LimitSource::PreviousPeak => "previous_peak",
        }
    }
}

/// The key of the configured limit's entry (no series has it: series keys are hashes).
const CONFIGURED_LIMIT_KEY: u64 = 0;
/// The key of the container limit joined from another resource (series keys are hashes; a
/// collision with this one is as unlikely as with 0).
const JOINED_LIMIT_KEY: u64 = 1;

/// Summed counter increments of all series of one role, per bucket.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
struct Aggregate {
    ring: Ring,
    /// First bucket seen (partial, excluded from rates); `None` before any data.
    first: Option<u64>,
}

impl Aggregate {
    fn add(&mut self, idx: u64, inc: f64) {
        match self.first {
            None => {
                self.ring.reset(idx);
                self.first = Some(idx);
            }
            Some(_) => self.ring.advance(idx),
        }
        if idx == self.ring.head() {
            self.ring.record_increment(inc as f32, 0.0);
        }
    }

    /// Rate (per second) of a complete bucket.
    fn rate(&self, idx: u64, bucket_secs: f64) -> Option<f64> {
        let first = self.first?;
        (idx > first && idx < self.ring.head() && self.ring.holds(idx))
            .then(|| self.ring.increments(idx) / bucket_secs)
    }
}

/// The latest value of a committed-heap series.
#[derive(Clone, Copy, Debug, serde::Serialize, serde::Deserialize)]
struct CommittedEntry {
    key: u64,
    value: f64,
    t_ns: u64,
}

/// Resident minus committed memory of one resident series, tracked like any series.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
struct NativeSeries {
    /// Key of the resident series it derives from.
    key: u64,
    detector: SeriesDetector,
}

/// Per-resource detector state. Serializable for checkpoints.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct ResourceDetector {
    memory: Vec<MemoryEntry>,
    limits: Vec<LimitEntry>,
    committed: Vec<CommittedEntry>,
    native: Vec<NativeSeries>,
    requests: Aggregate,
    gcs: Aggregate,
    has_counters: bool,
    last_counter_restart_ns: u64,
    /// Event time of the latest restart at which some series found the finished segment
    /// saturating (a warm-up), 0 = none.
    saturated_restart_ns: u64,
    gc_rising: bool,
    state: LeakState,
    since_ns: u64,
    evidence_since: Option<u64>,
    confirm_since: Option<u64>,
    clear_since: Option<u64>,
    /// Since when the fast window has shown a leak (see `judge_fast`).
    #[serde(default)]
    fast_since: Option<u64>,
    /// Signals and leading metric of the open (or last) incident, for the resolved event.
    #[serde(with = "signal_names")]
    incident_signals: Vec<&'static str>,
    incident_metric: String,
    /// What leaks in the open (or last) incident: its leading series' attributes, and whether
    /// it is native memory.
    #[serde(default)]
    incident_component: Option<String>,
    #[serde(default)]
    incident_native: bool,
    /// Event time the open (or last) incident was suspected; 0 before the first.
    #[serde(default)]
    incident_start_ns: u64,
    dropped_series: u64,
    /// Counts of things the process holds (goroutines, live objects per type): candidates for
    /// `leak.component`.
    #[serde(default)]
    components: Vec<ComponentEntry>,
}

/// Most count series a process keeps as `leak.component` candidates.
const MAX_COMPONENTS: usize = 16;

/// A count series (goroutines, objects of one type) and how fast it grows.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
struct ComponentEntry {
    key: u64,
    /// What it names: its attributes (`object.type=dict`), or the metric without attributes.
    name: Box<str>,
    last_head: u64,
    /// Relative growth per hour of the count when its trend is leak-like, else 0.
    growth: f32,
}

/// Appends `x`, growing `v` by exactly one element. The per-process lists are short (at most
/// [`MAX_MEMORY_SERIES`], [`MAX_LIMIT_SERIES`], …) and filled once, when a process's series are
/// first seen, so `Vec`'s doubling would leave each list with room it never uses (a process
/// with 6 memory series held 8 entries, 5 limits 8): the few extra reallocations cost less than
/// the idle capacity of every process.
fn push_exact<T>(v: &mut Vec<T>, x: T) {
    v.reserve_exact(1);
    v.push(x);
}

fn fit_points(p: &Points) -> Option<LineFit> {
    LineFit::fit(p.xs(), p.ys())
}

impl ResourceDetector {
    /// A resource with no series yet.
    pub fn new() -> Self {
        ResourceDetector::default()
    }

    /// Current incident state.
    pub fn state(&self) -> LeakState {
        self.state
    }

    /// Event time the open incident was suspected (`None` while there is none). A checkpoint
    /// written before this was kept has 0: a suspected incident then began at its last
    /// transition; a confirmed one is dated by its confirmation.
    pub fn incident_start_ns(&self) -> Option<u64> {
        let start = match self.incident_start_ns {
            0 => self.since_ns,
            t => t,
        };
        (self.state != LeakState::Ok).then_some(start)
    }

    /// Called right after `series.observe(..)` accepted a point (Accepted, Reset or Ignored) of
    /// a series of this resource. Returns a lifecycle transition if one happened at `t_ns`.
    pub fn on_series(
        &mut self,
        cfg: &DetectorConfig,
        series_key: u64,
        metric_name: &str,
        labels: &str,
        series: &SeriesDetector,
        t_ns: u64,
    ) -> Option<LeakEvent> {
        let bucket_ns = cfg.bucket_ns();
        match series.role() {
            Role::GcCount | Role::RequestCount => {
                self.has_counters = true;
                if series.restarted_at_latest_point() {
                    self.on_counter_restart(t_ns, bucket_ns);
                }
                let inc = series.last_increment();
                if inc > 0.0 {
                    let agg = if series.role() == Role::GcCount {
                        &mut self.gcs
                    } else {
                        &mut self.requests
                    };
                    agg.add(t_ns / bucket_ns, inc);
                }
            }
            Role::MemoryLimit => {
                let source =
                    if metric_name.starts_with("k8s.") || metric_name.starts_with("container.") {
                        LimitSource::Container
                    } else {
                        LimitSource::Runtime
                    };
                self.on_limit(cfg, series_key, source, series)
            }
            Role::HeapCommitted => self.on_committed(series_key, series, t_ns),
            Role::Goroutines | Role::ObjectCount => {
                self.on_component(cfg, series_key, metric_name, labels, series)
            }
            Role::HeapUsed | Role::HeapAfterGc => {
                self.on_memory(
                    cfg,
                    series_key,
                    (Source::Heap, metric_name, labels),
                    series,
                    t_ns,
                );
            }
            Role::Rss | Role::ContainerMemory => {
                self.on_memory(
                    cfg,
                    series_key,
                    (Source::Resident, metric_name, labels),
                    series,
                    t_ns,
                );
                self.on_native(cfg, series_key, metric_name, labels, series, t_ns);
            }
            Role::ContainerUsage => {
                self.on_memory(
                    cfg,
                    series_key,
                    (Source::Usage, metric_name, labels),
                    series,
                    t_ns,
                );
            }
        }
        self.refresh_primary();
        self.expire_pending(t_ns, bucket_ns);
        self.step_lifecycle(cfg, t_ns)
    }

    /// Re-judges a count series once per bucket: growing counts name what leaks.
    fn on_component(
        &mut self,
        cfg: &DetectorConfig,
        key: u64,
        metric: &str,
        labels: &str,
        series: &SeriesDetector,
    ) {
        let pos = match self.components.iter().position(|c| c.key == key) {
            Some(p) => p,
            None if self.components.len() < MAX_COMPONENTS => {
                let name = if labels.is_empty() { metric } else { labels };
                push_exact(
                    &mut self.components,
                    ComponentEntry {
                        key,
                        name: name.into(),
                        last_head: 0,
                        growth: 0.0,
                    },
                );
                self.components.len() - 1
            }
            None => return,
        };
        let head = series.head_bucket();
        if self.components[pos].last_head == head {
            return;
        }
        // A count's growth is not in bytes: the memory effect sizes do not apply, the rest of a
        // leak's gates do.
        let grows = |a: &Assessment| a.significant && !a.saturating && a.new_high;
        let a = series
            .assess(cfg, BUCKETS, None)
            .filter(grows)
            .or_else(|| series.assess(cfg, cfg.short_buckets(), None).filter(grows))
            .or_else(|| series.assess_fast(cfg, None).filter(grows));
        let c = &mut self.components[pos];
        c.last_head = head;
        c.growth = a.map_or(0.0, |a| (a.slope_per_hour() / a.level.max(1.0)) as f32);
    }

    /// The count growing fastest (relatively), if any grows like a leak.
    fn growing_component(&self) -> Option<String> {
        self.components
            .iter()
            .filter(|c| c.growth > 0.0)
            .max_by(|a, b| a.growth.total_cmp(&b.growth))
            .map(|c| c.name.to_string())
    }

    fn on_counter_restart(&mut self, t_ns: u64, bucket_ns: u64) {
        self.last_counter_restart_ns = self.last_counter_restart_ns.max(t_ns);
        let tol = 2 * bucket_ns;
        for e in &mut self.memory {
            if let Some((tp, grew, oom)) = e.pending_cycle {
                if tp.abs_diff(t_ns) <= tol {
                    e.pending_cycle = None;
                    apply_cycle(e, grew, oom, tp);
                }
            }
        }
    }

    fn expire_pending(&mut self, t_ns: u64, bucket_ns: u64) {
        let tol = 2 * bucket_ns;
        for e in &mut self.memory {
            if e.pending_cycle.is_some_and(|(tp, _, _)| t_ns > tp + tol) {
                // No counter reset came: the drop was a collection, not a restart.
                e.pending_cycle = None;
            }
        }
    }

    /// A limit configured for this resource (`catalog.limits`), trusted as it is; 0 removes it.
    pub fn set_configured_limit(&mut self, bytes: f64) {
        self.set_external_limit(CONFIGURED_LIMIT_KEY, bytes, LimitSource::Configured);
    }

    /// The memory limit of the container this process runs in, joined from another resource
    /// (the Collector's kubeletstats/k8s_cluster resource of the same `k8s.pod.uid` and
    /// container): trusted as it is, like a configured one; 0 removes it.
    pub fn set_container_limit(&mut self, bytes: f64) {
        self.set_external_limit(JOINED_LIMIT_KEY, bytes, LimitSource::Container);
    }

    /// The container limit joined from another resource (0 if none): see
    /// [`Self::set_container_limit`].
    pub fn container_limit(&self) -> f64 {
        self.limits
            .iter()
            .find(|l| l.key == JOINED_LIMIT_KEY)
            .map_or(0.0, |l| l.value)
    }

    /// The smallest trusted limit of this resource's own container-limit series, if any (what
    /// a container resource offers the processes of its pod).
    pub fn own_container_limit(&self) -> Option<f64> {
        self.limits
            .iter()
            .filter(|l| l.stable && l.source == LimitSource::Container && l.key != JOINED_LIMIT_KEY)
            .map(|l| l.value)
            .reduce(f64::min)
    }

    /// A limit that comes from outside this process's own series: not bounded by
    /// [`MAX_LIMIT_SERIES`] (there are two such keys at most).
    fn set_external_limit(&mut self, key: u64, bytes: f64, source: LimitSource) {
        self.limits.retain(|l| l.key != key);
        if bytes > 0.0 && bytes.is_finite() {
            self.limits.push(LimitEntry {
                key,
                value: bytes,
                stable: true,
                source,
            });
        }
    }

    fn on_limit(
        &mut self,
        cfg: &DetectorConfig,
        key: u64,
        source: LimitSource,
        series: &SeriesDetector,
    ) {
        let value = series.last_value();
        let ring = series.ring();
        let (mut lo, mut hi) = (value, value);
        for idx in ring.oldest()..=ring.head() {
            if let (Some(a), Some(b)) = (ring.min(idx), ring.max(idx)) {
                lo = lo.min(a);
                hi = hi.max(b);
            }
        }
        let stable = value > 0.0 && (hi - lo) <= cfg.limit_max_variation * hi;
        if let Some(l) = self.limits.iter_mut().find(|l| l.key == key) {
            l.value = value;
            l.stable = stable;
        } else if self.limits.len() < MAX_LIMIT_SERIES {
            push_exact(
                &mut self.limits,
                LimitEntry {
                    key,
                    value,
                    stable,
                    source,
                },
            );
        }
    }

    fn on_committed(&mut self, key: u64, series: &SeriesDetector, t_ns: u64) {
        let value = series.last_value();
        if let Some(c) = self.committed.iter_mut().find(|c| c.key == key) {
            c.value = value;
            c.t_ns = t_ns;
        } else if self.committed.len() < MAX_COMMITTED_SERIES {
            push_exact(&mut self.committed, CommittedEntry { key, value, t_ns });
        }
    }

    /// The committed heap at `t_ns`: the sum of the committed series reported within the last
    /// two buckets (`None` if there are none).
    fn committed_at(&self, t_ns: u64, bucket_ns: u64) -> Option<f64> {
        let fresh = self
            .committed
            .iter()
            .filter(|c| c.t_ns.saturating_add(2 * bucket_ns) >= t_ns && c.t_ns <= t_ns);
        fresh.fold(None, |acc: Option<f64>, c| {
            Some(acc.unwrap_or(0.0) + c.value)
        })
    }

    /// Feeds resident minus committed memory into the native series derived from the resident
    /// series `key`, and evaluates it like any memory series.
    fn on_native(
        &mut self,
        cfg: &DetectorConfig,
        key: u64,
        metric: &str,
        labels: &str,
        rss: &SeriesDetector,
        t_ns: u64,
    ) {
        if rss.last_t_ns() != t_ns {
            return;
        }
        let Some(committed) = self.committed_at(t_ns, cfg.bucket_ns()) else {
            return;
        };
        let pos = match self.native.iter().position(|n| n.key == key) {
            Some(p) => p,
            None if self.native.len() < MAX_NATIVE_SERIES => {
                push_exact(
                    &mut self.native,
                    NativeSeries {
                        key,
                        detector: SeriesDetector::new(Classified {
                            role: Role::Rss,
                            scale: 1.0,
                        }),
                    },
                );
                self.native.len() - 1
            }
            None => return,
        };
        let sample = Sample {
            t_ns,
            start_ns: rss.start_ns(),
            value: rss.last_value() - committed,
            temporality: Temporality::Gauge,
        };
        if !self.native[pos].detector.observe(cfg, sample).is_accepted() {
            return;
        }
        // The native series lives in `self.native`; lend it out while `self` is updated.
        let native = std::mem::take(&mut self.native);
        self.on_memory(
            cfg,
            key,
            (Source::Native, metric, labels),
            &native[pos].detector,
            t_ns,
        );
        self.native = native;
    }

    /// Resident memory is primary only when the process reports neither heap series nor a
    /// committed heap to derive native memory from; container usage (page cache included) only
    /// when nothing else is reported at all.
    fn refresh_primary(&mut self) {
        let has = |sources: &[Source]| self.memory.iter().any(|e| sources.contains(&e.source));
        let heap_or_native = has(&[Source::Heap, Source::Native]);
        let resident = has(&[Source::Resident]);
        for e in &mut self.memory {
            e.primary = match e.source {
                Source::Heap | Source::Native => true,
                Source::Resident => !heap_or_native,
                Source::Usage => !heap_or_native && !resident,
            };
        }
    }

    /// Where the trusted limit of this value comes from.
    fn limit_source(&self, value: f64) -> Option<LimitSource> {
        self.limits
            .iter()
            .find(|l| l.stable && l.value == value)
            .map(|l| l.source)
    }

    /// The limit entry `pos`'s forecast uses at `level`: the smallest trusted limit above it,
    /// else the peak before the entry's last out-of-memory cycle.
    fn limit_for(&self, pos: usize, level: f64) -> Option<f64> {
        self.limit_above(level)
            .or(Some(f64::from(self.memory[pos].peak_limit)).filter(|p| *p > level && *p > 0.0))
    }

    /// The smallest trusted limit above `level`.
    fn limit_above(&self, level: f64) -> Option<f64> {
        self.limits
            .iter()
            .filter(|l| l.stable && l.value > level)
            .map(|l| l.value)
            .fold(None, |acc: Option<f64>, v| {
                Some(acc.map_or(v, |a| a.min(v)))
            })
    }

    fn on_memory(
        &mut self,
        cfg: &DetectorConfig,
        key: u64,
        (source, metric, labels): (Source, &str, &str),
        series: &SeriesDetector,
        t_ns: u64,
    ) {
        let pos = match self
            .memory
            .iter()
            .position(|e| e.key == key && e.source == source)
        {
            Some(p) => p,
            None if self.memory.len() < MAX_MEMORY_SERIES => {
                push_exact(
                    &mut self.memory,
                    MemoryEntry::new(key, source, metric.to_owned(), labels, series.restarts()),
                );
                self.memory.len() - 1
            }
            None => {
                self.dropped_series += 1;
                return;
            }
        };
        if series.restarts() > self.memory[pos].seen_restarts {
            self.memory[pos].seen_restarts = series.restarts();
            self.on_memory_restart(cfg, pos, series, t_ns);
        }
        let head = series.head_bucket();
        if self.memory[pos].last_eval_head != Some(head) {
            self.memory[pos].last_eval_head = Some(head);
            self.evaluate(cfg, pos, series);
        }
        let fast_head = series.fast_head();
        if let Some(fast_head) =
            fast_head.filter(|h| cfg.fast_window && *h != self.memory[pos].fast_head)
        {
            self.memory[pos].fast_head = fast_head;
            self.judge_fast(cfg, pos, series);
        }
    }

    /// The fast window's verdict on entry `pos`: the floor's fit over the fast buckets is a leak
    /// (significant, new highs, not saturating, not a step), grows by at least
    /// `fast_min_growth` of itself over the window, and outpaces the load: with a request rate, the
    /// floor's relative growth per hour must exceed the request rate's over the same span (memory
    /// that only follows traffic can at most grow as fast, relatively, as the traffic does; at
    /// steady or falling traffic any strong growth counts).
    fn judge_fast(&mut self, cfg: &DetectorConfig, pos: usize, series: &SeriesDetector) {
        let limit = self.limit_for(pos, series.last_value());
        let fast = series.assess_fast(cfg, limit);
        let floors = series.role() != Role::HeapUsed
            || fast.is_some_and(|a| series.fast_sees_collections(a.first_bucket));
        let strong = fast.filter(|a| {
            floors
                && a.leak
                && !a.concave
                && !a.slowing
                && a.level > 0.0
                && a.fit.slope * cfg.fast_window_secs() >= cfg.fast_min_growth * a.level
        });
        // A process that reports its requests must show its growth outpacing them: not
        // knowing the load's trend yet (a young process, two coarse buckets of rates not yet
        // complete) is no evidence.
        let reports_load = self.requests.first.is_some();
        let outpaces_load = strong.is_some_and(|a| {
            match self.load_growth(cfg, a.first_bucket, series.fast_head().unwrap_or(0)) {
                Some(l) => a.slope_per_hour() / a.level > l.max(0.0),
                None => !reports_load,
            }
        });
        let age_buckets = series.head_bucket().saturating_sub(series.segment_start());
        let young = (age_buckets as usize) < cfg.short_buckets();
        // A process younger than the short window: its growth counts only when the forecast
        // reaches a known limit within two fast windows (a cache warming up after a start looks
        // like a leak until it bends).
        let urgent = strong.is_some_and(|a| {
            a.time_to_limit_secs
                .is_some_and(|t| t <= 2.0 * cfg.fast_window_secs())
        });
        let e = &mut self.memory[pos];
        e.fast.set(fast);
        // A process younger than the short window: its growth counts when the forecast reaches
        // a known limit within two fast windows, or, for a suspicion only, when it began after
        // a flat stretch (it did not start with the process). A cache warming up after a start
        // looks like a leak until it bends, and bounded warm-ups (after every deploy) may take
        // longer than the fast window to bend.
        let after_flat = strong.is_some_and(|a| a.after_flat);
        e.fast_leak = strong.is_some() && outpaces_load && (!young || urgent || after_flat);
        e.fast_young = young && !urgent;
        e.fast_urgent = urgent;
    }

    /// Relative growth per hour of the request rate over the fast buckets `from..to` (read from
    /// the coarse buckets they overlap): `None` without request rates in at least two of them.
    fn load_growth(&self, cfg: &DetectorConfig, from_fast: u64, to_fast: u64) -> Option<f64> {
        let bucket_secs = cfg.bucket_secs();
        let per = crate::detector::FAST_DIVISOR;
        // Request rates live in the coarse buckets: a span shorter than two of them (the fast
        // window's newest spans) is measured against the load of the two before its end, not
        // waved through for want of a rate to compare. The two are the last the request counter
        // has completed: an export's memory points may come before its request counts, which
        // then have not yet opened the bucket the memory has.
        let to = (to_fast / per).min(self.requests.ring.head());
        let from = (from_fast / per).min(to.saturating_sub(2));
        let rates =
            || (from..to).filter_map(|i| self.requests.rate(i, bucket_secs).map(|r| (i, r)));
        let ((i0, r0), (i1, r1)) = (rates().next()?, rates().next_back()?);
        if i1 == i0 {
            return None;
        }
        let (sum, n) = rates().fold((0.0, 0.0), |(s, n), (_, r)| (s + r, n + 1.0));
        let mean = sum / n;
        if mean <= 0.0 {
            return None;
        }
        let hours = (i1 - i0) as f64 * bucket_secs / 3600.0;
        Some((r1 - r0) / mean / hours)
    }

    fn on_memory_restart(
        &mut self,
        cfg: &DetectorConfig,
        pos: usize,
        series: &SeriesDetector,
        t_ns: u64,
    ) {
        let bucket_ns = cfg.bucket_ns();
        let any_limit = self.limit_above(0.0);
        let (prev, peak) = series.assess_previous_segment(cfg, any_limit);
        let oom = peak.is_some_and(|p| {
            self.limits
                .iter()
                .any(|l| l.stable && p >= cfg.oom_fraction * l.value)
        });
        let tol = 2 * bucket_ns;
        // Several series see the same restart (a pool's usage and its after-GC usage). If any
        // of them found the finished segment saturating, it was a warm-up: the others' weaker
        // view (fewer points, a later start) does not count it as a grown cycle, whichever
        // series reports first.
        if prev.is_some_and(|a| a.saturating) {
            self.saturated_restart_ns = t_ns;
            for e in &mut self.memory {
                if e.cycle_ns != 0 && e.cycle_ns.abs_diff(t_ns) <= tol {
                    // A warm-up ends a streak of grown cycles, as any segment that did not grow.
                    apply_cycle(e, false, false, t_ns);
                }
                if let Some((tp, true, false)) = e.pending_cycle {
                    if tp.abs_diff(t_ns) <= tol {
                        e.pending_cycle = Some((tp, false, false));
                    }
                }
            }
        }
        let warm_up =
            self.saturated_restart_ns != 0 && self.saturated_restart_ns.abs_diff(t_ns) <= tol;
        let grew = oom
            || (!warm_up && prev.is_some_and(|a| a.significant && a.growth_ok && !a.saturating));
        let corroborated = series.last_restart_kind() != RestartKind::Drop
            || !self.has_counters
            || self.last_counter_restart_ns.abs_diff(t_ns) <= tol;
        let e = &mut self.memory[pos];
        // A process that grew until it died will die there again.
        if grew && !warm_up && corroborated {
            if let Some(p) = peak.filter(|p| *p > 0.0) {
                e.peak_limit = p as f32;
            }
        }
        // A new segment starts from scratch.
        e.short.set(None);
        e.long.set(None);
        e.fast.set(None);
        e.fast_leak = false;
        if grew {
            e.cycle.set(prev);
        }
        if corroborated {
            apply_cycle(e, grew, oom, t_ns);
        } else {
            e.pending_cycle = Some((t_ns, grew, oom));
        }
    }

    fn evaluate(&mut self, cfg: &DetectorConfig, pos: usize, series: &SeriesDetector) {
        let level = series.last_value();
        let limit = self.limit_for(pos, level);
        let short = series.assess(cfg, cfg.short_buckets(), limit);
        let long = series.assess(cfg, BUCKETS, limit);
        let bucket_secs = cfg.bucket_secs();
        let ring = series.ring();
        let head = ring.head();
        // Supporting signals over the long window of the current segment.
        let from = head
            .saturating_sub(BUCKETS as u64)
            .max(series.segment_start());
        // Load against time over the part of the long window its trend is judged on (after a
        // step cut, a step is not growth over time either).
        let load_from = long.map_or(from, |a| a.first_bucket.max(from));
        let load = self.load_fit(ring, head, load_from, bucket_secs);
        let grows_at_constant_load = |p: &PlaneFit| {
            p.rising(cfg.confidence, cfg.min_effective_samples)
                && p.c * 3600.0 >= cfg.min_growth_bytes_per_hour
        };
        let load_explained = load.is_some_and(|p| !p.constant_load && !grows_at_constant_load(&p));
        let mpr = Points::collect(head, from, bucket_secs, |i| {
            let m = ring.min(i)?;
            let r = self.requests.rate(i, bucket_secs)?;
            (r > 0.0).then(|| m / r)
        });
        let mpr_rising =
            fit_points(&mpr).is_some_and(|f| f.rising(cfg.confidence, cfg.min_effective_samples));
        let gc_eff_falling = series.role() == Role::HeapUsed && {
            let eff = Points::collect(head, from, bucket_secs, |i| {
                let lo = ring.min(i)?;
                let hi = ring.max(i)?;
                (hi > 0.0 && ring.count(i) >= 2).then(|| (hi - lo) / hi)
            });
            fit_points(&eff).is_some_and(|f| f.falling(cfg.confidence, cfg.min_effective_samples))
        };
        let gc = Points::collect(head, from, bucket_secs, |i| self.gcs.rate(i, bucket_secs));
        self.gc_rising =
            fit_points(&gc).is_some_and(|f| f.rising(cfg.confidence, cfg.min_effective_samples));
        let long_secs = cfg.long_window.as_secs_f64();
        let spans_enough =
            long.is_some_and(|a| a.span_secs + 1e-9 >= cfg.confirm_span_without_load * long_secs);
        let urgent = [short, long]
            .iter()
            .flatten()
            .any(|a| a.time_to_limit_secs.is_some_and(|t| t <= long_secs));

        let e = &mut self.memory[pos];
        e.short.set(short);
        e.long.set(long);
        e.mpr_rising = mpr_rising;
        e.load_explained = load_explained;
        e.load_fitted = load.is_some();
        e.mature = e.load_fitted || spans_enough || urgent;
        e.gc_eff_falling = gc_eff_falling;
        // A segment that has run long enough to judge and shows no growth ends a restart cycle.
        if long.is_some_and(|a| !a.relaxed && !a.leak) && e.pending_cycle.is_none() {
            e.grown_cycles = 0;
        }
    }

    /// Regresses the per-bucket floor on the request rate and time over `from..head`; `None`
    /// without request rates, with too few buckets, or when load and time cannot be separated.
    fn load_fit(&self, ring: &Ring, head: u64, from: u64, bucket_secs: f64) -> Option<PlaneFit> {
        let (mut x, mut r, mut y) = ([0.0; BUCKETS], [0.0; BUCKETS], [0.0; BUCKETS]);
        let mut n = 0;
        for i in from.max(ring.oldest())..head {
            if let (Some(m), Some(rate)) = (ring.min(i), self.requests.rate(i, bucket_secs)) {
                if n < BUCKETS {
                    x[n] = -((head - i) as f64) * bucket_secs;
                    r[n] = rate;
                    y[n] = m;
                    n += 1;
                }
            }
        }
        PlaneFit::fit(&x[..n], &r[..n], &y[..n])
    }

    fn signals(&self) -> Vec<&'static str> {
        let mut s = Vec::new();
        let ev = |source: Source| {
            self.memory
                .iter()
                .any(|e| e.source == source && (e.leak_short() || e.leak_long() || e.leak_fast()))
        };
        if ev(Source::Heap) {
            s.push("memory");
        }
        if ev(Source::Native) {
            s.push("native");
        }
        let usage_judged = self.memory.iter().any(|e| {
            e.source == Source::Usage
                && e.primary
                && (e.leak_short() || e.leak_long() || e.leak_fast())
        });
        if ev(Source::Resident) || usage_judged {
            s.push("rss");
        }
        if self.memory.iter().any(|e| e.mpr_rising) {
            s.push("memory_per_request");
        }
        if self.gc_rising {
            s.push("gc_frequency");
        }
        if self.memory.iter().any(|e| e.gc_eff_falling) {
            s.push("gc_efficiency");
        }
        if self.memory.iter().any(|e| e.grown_cycles >= 1) {
            s.push("restart_cycle");
        }
        s
    }

    /// The series that leads the incident: the fastest leak-like primary one, else the one
    /// with the most grown restart cycles, else the fastest growing one.
    fn leading(&self) -> Option<&MemoryEntry> {
        let primary = || self.memory.iter().filter(|e| e.primary);
        fastest(primary().filter(|e| e.leak_short() || e.leak_long() || e.leak_fast()))
            .or_else(|| {
                primary()
                    .filter(|e| e.grown_cycles >= 1)
                    .max_by_key(|e| e.grown_cycles)
            })
            .or_else(|| fastest(primary()))
    }

    fn step_lifecycle(&mut self, cfg: &DetectorConfig, t_ns: u64) -> Option<LeakEvent> {
        let evidence = self.memory.iter().any(MemoryEntry::evidence);
        let mature_evidence = self.memory.iter().any(|e| e.evidence() && e.mature);
        let confirm = self
            .memory
            .iter()
            .any(|e| e.primary && (e.leak_long() || e.grown_cycles >= cfg.restart_cycles));
        // Holds count from when the evidence began; maturity gates the confirmation itself.
        let mature_confirm = self.memory.iter().any(|e| {
            e.primary && ((e.leak_long() && e.mature) || e.grown_cycles >= cfg.restart_cycles)
        });
        let stay = self.memory.iter().any(MemoryEntry::relaxed);
        let judgeable = self.memory.iter().any(MemoryEntry::judgeable);
        // The fast window suspects once its evidence has held a sixth of the fast window, and
        // confirms a process that has run for at least the short window once it has held the
        // whole fast window (a batch job or a one-off import ends sooner; a leak goes on), and
        // at any age once the forecast reaches a known limit within two fast windows (with most
        // of the time to the limit left; see `judge_fast` for young processes).
        let fast_window_ns = (cfg.fast_window_secs() * 1e9) as u64;
        let eligible = |e: &&MemoryEntry| e.primary && e.leak_fast();
        let fast = self.memory.iter().any(|e| eligible(&e));
        let fast_sustained = self.memory.iter().filter(eligible).any(|e| !e.fast_young);
        let fast_urgent = self.memory.iter().filter(eligible).any(|e| e.fast_urgent);
        self.fast_since = if fast {
            self.fast_since.or(Some(t_ns))
        } else {
            None
        };
        self.evidence_since = if evidence {
            self.evidence_since.or(Some(t_ns))
        } else {
            None
        };
        self.confirm_since = if confirm {
            self.confirm_since.or(Some(t_ns))
        } else {
            None
        };
        let held =
            |since: Option<u64>, hold: u64| since.is_some_and(|s| t_ns - s.min(t_ns) >= hold);
        let kind = match self.state {
            LeakState::Ok => (held(self.evidence_since, cfg.suspect_hold_ns())
                || held(self.fast_since, fast_window_ns / 6))
            .then_some(LeakEventKind::Suspected),
            LeakState::Suspected | LeakState::Confirmed => {
                // Long-window evidence confirms after `confirm_hold`; short-window evidence alone
                // (a leak that started less than a long window ago, whose long fit is still
                // dominated by the flat history) after twice that.
                if self.state == LeakState::Suspected
                    && ((mature_confirm && held(self.confirm_since, cfg.confirm_hold_ns()))
                        || (mature_evidence
                            && held(self.evidence_since, 2 * cfg.confirm_hold_ns()))
                        || (fast_sustained && held(self.fast_since, fast_window_ns))
                        || (fast_urgent && held(self.fast_since, fast_window_ns / 6)))
                {
                    Some(LeakEventKind::Confirmed)
                } else if !stay && judgeable {
                    self.clear_since = self.clear_since.or(Some(t_ns));
                    held(self.clear_since, cfg.resolve_hold_ns()).then_some(LeakEventKind::Resolved)
                } else {
                    self.clear_since = None;
                    None
                }
            }
        }?;
        self.since_ns = t_ns;
        self.clear_since = None;
        match kind {
            LeakEventKind::Suspected => self.state = LeakState::Suspected,
            LeakEventKind::Confirmed => self.state = LeakState::Confirmed,
            LeakEventKind::Resolved => {
                self.state = LeakState::Ok;
                self.evidence_since = None;
                self.confirm_since = None;
                self.fast_since = None;
            }
        }
        Some(self.event(kind, t_ns))
    }

    fn event(&mut self, kind: LeakEventKind, t_ns: u64) -> LeakEvent {
        let lead = self.leading();
        let best = lead.and_then(MemoryEntry::best);
        let metric = lead.map(|e| e.metric.clone()).unwrap_or_default();
        let component = lead.and_then(MemoryEntry::component);
        let native = lead.is_some_and(|e| e.source == Source::Native);
        let lead_peak = lead.map(|e| f64::from(e.peak_limit)).filter(|p| *p > 0.0);
        let (growth, r_squared, window, ttl, limit) = (
            best.map_or(0.0, |a| a.slope_per_hour()),
            best.map_or(0.0, |a| a.fit.r_squared),
            best.map_or(0.0, |a| a.span_secs),
            best.and_then(|a| a.time_to_limit_secs),
            best.and_then(|a| a.limit),
        );
        if kind == LeakEventKind::Suspected || self.incident_start_ns == 0 {
            self.incident_start_ns = t_ns;
        }
        if kind != LeakEventKind::Resolved {
            self.incident_signals = self.signals();
            self.incident_metric = metric.clone();
            // A heap that grows with a count of objects of one type (or of goroutines) leaks
            // those: name them rather than the heap.
            self.incident_component = if native {
                component
            } else {
                self.growing_component().or(component)
            };
            self.incident_native = native;
        }
        let (signals, metric) = if kind == LeakEventKind::Resolved {
            (self.incident_signals.clone(), self.incident_metric.clone())
        } else {
            (self.incident_signals.clone(), metric)
        };
        let next_step = next_step(&metric, self.incident_native);
        LeakEvent {
            kind,
            t_ns,
            incident_start_ns: self.incident_start_ns,
            metric,
            signals,
            growth_bytes_per_hour: growth,
            r_squared,
            window_seconds: window,
            time_to_limit_seconds: ttl,
            limit_bytes: limit,
            resolution: (kind == LeakEventKind::Resolved).then_some(Resolution::Flat),
            limit_source: limit.and_then(|v| {
                self.limit_source(v)
                    .or_else(|| (lead_peak == Some(v)).then_some(LimitSource::PreviousPeak))
            }),
            component: self.incident_component.clone(),
            next_step,
        }
    }

    /// The process stopped reporting for good (its resource is evicted after the idle timeout,
    /// in event time): an open incident ends at `t_ns` with `process_gone`.
    pub fn gone(&mut self, t_ns: u64) -> Option<LeakEvent> {
        if self.state == LeakState::Ok {
            return None;
        }
        let mut event = self.event(LeakEventKind::Resolved, t_ns);
        event.resolution = Some(Resolution::ProcessGone);
        self.state = LeakState::Ok;
        self.since_ns = t_ns;
        self.evidence_since = None;
        self.confirm_since = None;
        self.clear_since = None;
        Some(event)
    }

    /// The series leading the verdict now and the assessment that describes it (read-only: the
    /// admin API's chart and sorting read it; nothing here changes). `derived` is set when the
    /// leader is resident minus committed memory, derived from the resident series `key`.
    pub fn leading_trend(&self) -> Option<LeadingTrend> {
        let lead = self.leading()?;
        Some(LeadingTrend {
            key: lead.key,
            derived: lead.source == Source::Native,
            assessment: lead.best(),
        })
    }

    /// Snapshot for the admin API.
    pub fn summary(&self, _cfg: &DetectorConfig) -> ResourceSummary {
        let lead = self.leading();
        let best = lead.and_then(MemoryEntry::best);
        ResourceSummary {
            state: self.state,
            since_t_ns: self.since_ns,
            signals: self.signals(),
            growth_bytes_per_hour: best.map_or(0.0, |a| a.slope_per_hour()),
            r_squared: best.map_or(0.0, |a| a.fit.r_squared),
            window_seconds: best.map_or(0.0, |a| a.span_secs),
            time_to_limit_seconds: best.and_then(|a| a.time_to_limit_secs),
            limit_bytes: best.and_then(|a| a.limit),
            leading_metric: lead.map(|e| e.metric.clone()),
            tracked_series: self.memory.len(),
            dropped_series: self.dropped_series,
        }
    }
}

fn fastest<'a>(it: impl Iterator<Item = &'a MemoryEntry>) -> Option<&'a MemoryEntry> {
    let slope = |e: &MemoryEntry| e.best().map_or(f64::MIN, |a| a.fit.slope);
    it.fold(None, |acc: Option<&'a MemoryEntry>, e| match acc {
        Some(a) if slope(a) >= slope(e) => Some(a),
        _ => Some(e),
    })
}

fn apply_cycle(e: &mut MemoryEntry, grew: bool, oom: bool, t_ns: u64) {
    if grew {
        e.grown_cycles = e.grown_cycles.saturating_add(1);
        e.cycle_ns = if oom { 0 } else { t_ns };
    } else {
        e.grown_cycles = 0;
        e.cycle_ns = 0;
    }
}

/// Every signal name [`ResourceDetector`] reports (see `signals`).
pub const SIGNAL_NAMES: [&str; 7] = [
    "memory",
    "native",
    "rss",
    "memory_per_request",
    "gc_frequency",
    "gc_efficiency",
    "restart_cycle",
];

/// Serde for `Vec<&'static str>` signal lists: written as strings, read back as the static
/// names of [`SIGNAL_NAMES`] (an unknown name is an error, so a checkpoint from a version with
/// other signals is refused rather than half-restored).
mod signal_names {
    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(v: &[&'static str], s: S) -> Result<S::Ok, S::Error> {
        v.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<&'static str>, D::Error> {
        let names = Vec::<String>::deserialize(d)?;
        names
            .iter()
            .map(|n| {
                super::SIGNAL_NAMES
                    .iter()
                    .copied()
                    .find(|s| s == n)
                    .ok_or_else(|| D::Error::custom(format!("unknown signal name {n:?}")))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn held_assessments_encode_as_inline_options() {
        // Checkpoints keep their format: a boxed assessment is written as the inline one was.
        let a = Assessment {
            span_secs: 3600.0,
            level: 1e8,
            leak: true,
            first_bucket: 7,
            ..Assessment::default()
        };
        for inline in [None, Some(a)] {
            let mut held = Held::default();
            held.set(inline);
            let (mut x, mut y) = (Vec::new(), Vec::new());
            ciborium::into_writer(&inline, &mut x).expect("encodes");
            ciborium::into_writer(&held, &mut y).expect("encodes");
            assert_eq!(x, y);
            let back: Held = ciborium::from_reader(&x[..]).expect("decodes");
            assert_eq!(back.get(), inline);
        }
        // Holding no assessment costs an entry 8 bytes per slot, not 152.
        assert_eq!(std::mem::size_of::<MemoryEntry>(), 152);
    }

    const S: u64 = 1_000_000_000;
    const MB: f64 = 1e6;
    /// 2024-01-01T00:00:00Z.
    const T0: u64 = 1_704_067_200 * S;

    fn series(role: Role) -> SeriesDetector {
        SeriesDetector::new(Classified { role, scale: 1.0 })
    }

    /// 36 h at 60 s: a flat heap floor, a committed heap whose peaks rise by `committed_mb_h`,
    /// and RSS = native + committed, with native growing by `native_mb_h`.
    fn run(committed_mb_h: f64, native_mb_h: f64, report_committed: bool) -> Vec<LeakEvent> {
        run_detector(committed_mb_h, native_mb_h, report_committed).0
    }

    fn run_detector(
        committed_mb_h: f64,
        native_mb_h: f64,
        report_committed: bool,
    ) -> (Vec<LeakEvent>, ResourceDetector) {
        let cfg = DetectorConfig::default();
        let mut res = ResourceDetector::new();
        let mut heap = series(Role::HeapUsed);
        let mut committed = series(Role::HeapCommitted);
        let mut rss = series(Role::Rss);
        let mut events = Vec::new();
        for k in 1..=36 * 60u64 {
            let t_ns = T0 + k * 60 * S;
            let h = (k * 60) as f64 / 3600.0;
            let saw = (k % 10) as f64 * 5.0 * MB;
            let wiggle = if k % 2 == 0 { 0.2 * MB } else { -0.2 * MB };
            let c = 260.0 * MB + committed_mb_h * MB * h + wiggle;
            let points: [(&mut SeriesDetector, u64, f64, bool); 3] = [
                (&mut heap, 1, 200.0 * MB + saw + wiggle, true),
                (&mut committed, 2, c, report_committed),
                (&mut rss, 3, c + 60.0 * MB + native_mb_h * MB * h, true),
            ];
            for (s, key, value, report) in points {
                if !report {
                    continue;
                }
                let sample = Sample {
                    t_ns,
                    start_ns: T0,
                    value,
                    temporality: Temporality::Gauge,
                };
                if s.observe(&cfg, sample).is_accepted() {
                    events.extend(res.on_series(&cfg, key, "m", "", s, t_ns));
                }
            }
        }
        (events, res)
    }

    /// A heap (sawtooth of 10 collections an hour... every 6 min) whose floor is flat until
    /// `onset_h`, then grows by `mb_h`, sampled every 30 s for `hours`; plus object counts per
    /// type, `dict` growing with the leak. Returns the events with their hour.
    fn fast_run(hours: u64, onset_h: f64, mb_h: f64, limit: Option<f64>) -> Vec<(f64, LeakEvent)> {
        fast_run_with(true, hours, onset_h, mb_h, limit)
    }

    fn fast_run_with(
        fast_window: bool,
        hours: u64,
        onset_h: f64,
        mb_h: f64,
        limit: Option<f64>,
    ) -> Vec<(f64, LeakEvent)> {
        let cfg = DetectorConfig {
            fast_window,
            ..DetectorConfig::default()
        };
        let mut res = ResourceDetector::new();
        let mut heap = series(Role::HeapUsed);
        let mut lim = series(Role::MemoryLimit);
        let mut dicts = series(Role::ObjectCount);
        let mut lists = series(Role::ObjectCount);
        let mut events = Vec::new();
        for k in 1..=hours * 120 {
            let t_ns = T0 + k * 30 * S;
            let h = (k * 30) as f64 / 3600.0;
            let leaked = (h - onset_h).max(0.0) * mb_h * MB;
            let saw = (k % 12) as f64 * 3.0 * MB;
            let wiggle = if k % 2 == 0 { 0.3 * MB } else { -0.3 * MB };
            let mut feed = |s: &mut SeriesDetector, key: u64, labels: &str, value: f64| {
                let sample = Sample {
                    t_ns,
                    start_ns: T0,
                    value,
                    temporality: Temporality::Gauge,
                };
                if s.observe(&cfg, sample).is_accepted() {
                    if let Some(e) = res.on_series(&cfg, key, "m", labels, s, t_ns) {
                        events.push((h, e));
                    }
                }
            };
            feed(&mut heap, 1, "", 200.0 * MB + leaked + saw + wiggle);
            if let Some(l) = limit {
                feed(&mut lim, 2, "", l);
            }
            feed(
                &mut dicts,
                3,
                "object.type=dict",
                50_000.0 + leaked / 200.0 + wiggle / 1e4,
            );
            feed(&mut lists, 4, "object.type=list", 20_000.0 + wiggle / 1e4);
        }
        events
    }

    fn first(events: &[(f64, LeakEvent)], kind: LeakEventKind) -> Option<f64> {
        events.iter().find(|(_, e)| e.kind == kind).map(|(h, _)| *h)
    }

    #[test]
    fn a_strong_leak_in_a_running_process_is_confirmed_by_the_fast_window() {
        // 30 MB/h (15 %/h of the floor) from hour 10 of a process: suspected within 3 h and
        // confirmed within 6 h of the onset, by the fast window (the short window needs 4.5 h
        // of coverage, then its holds: it confirms 7 h or more after an onset).
        let ev = fast_run(20, 10.0, 30.0, None);
        let suspected = first(&ev, LeakEventKind::Suspected).expect("suspected");
        let confirmed = first(&ev, LeakEventKind::Confirmed).expect("confirmed");
        assert!(
            (10.0..13.0).contains(&suspected),
            "suspected at {suspected} h"
        );
        assert!(
            (12.0..16.0).contains(&confirmed),
            "confirmed at {confirmed} h"
        );
        // Without the fast window the same trace is confirmed later.
        let slow = fast_run_with(false, 20, 10.0, 30.0, None);
        let slow_confirmed = first(&slow, LeakEventKind::Confirmed).unwrap_or(f64::INFINITY);
        assert!(
            confirmed + 1.0 < slow_confirmed,
            "{confirmed} h vs {slow_confirmed} h"
        );
        let c = ev
            .iter()
            .find(|(_, e)| e.kind == LeakEventKind::Confirmed)
            .expect("a confirmation");
        // What leaks: the object type whose count grows with the floor.
        assert_eq!(
            c.1.component.as_deref(),
            Some("object.type=dict"),
            "confirmed at {} h: {:?}",
            c.0,
            c.1
        );
    }

    #[test]
    fn a_strong_leak_in_a_steady_process_is_suspected_within_an_hour_of_its_onset() {
        // 30 MB/h (15 %/h of the floor) from hour 10: the fast window judges its newest spans on
        // their own once the stretch before them is flat, so the leak is suspected within an
        // hour of its onset; it is confirmed once that evidence has held a whole fast window.
        let ev = fast_run(16, 10.0, 30.0, None);
        let suspected = first(&ev, LeakEventKind::Suspected).expect("suspected");
        let confirmed = first(&ev, LeakEventKind::Confirmed).expect("confirmed");
        assert!(
            (10.0..=11.0).contains(&suspected),
            "suspected at {suspected} h: {ev:?}"
        );
        assert!(
            confirmed >= suspected + 2.5 && confirmed <= 10.0 + 4.0,
            "confirmed at {confirmed} h: {ev:?}"
        );
    }

    #[test]
    fn a_young_process_s_growth_after_a_flat_stretch_is_suspected_not_confirmed() {
        // The process is 2 h old when it starts to leak: growth that did not start with it is
        // no warm-up's, so it is suspected at once; younger than the short window (6 h), it is
        // not confirmed by the fast window (bounded episodes after a deploy live there).
        let ev = fast_run(6, 2.0, 30.0, None);
        let suspected = first(&ev, LeakEventKind::Suspected).expect("suspected");
        assert!(suspected <= 3.0, "suspected at {suspected} h: {ev:?}");
        assert_eq!(first(&ev, LeakEventKind::Confirmed), None, "{ev:?}");
    }

    #[test]
    fn a_young_process_takes_the_fast_window_only_towards_a_known_limit() {
        // The same growth from the process' start: a warm-up looks the same until it bends, so
        // without a known limit the fast window stays out of it (the short window, which needs
        // 4.5 h of coverage, may suspect it later).
        let ev = fast_run(5, 0.0, 30.0, None);
        assert_eq!(first(&ev, LeakEventKind::Confirmed), None, "{ev:?}");
        assert!(
            first(&ev, LeakEventKind::Suspected).is_none_or(|h| h >= 4.5),
            "{ev:?}"
        );
        // With a limit the forecast reaches within two fast windows it is urgent: confirmed.
        let ev = fast_run(5, 0.0, 30.0, Some(330.0 * MB));
        let confirmed = first(&ev, LeakEventKind::Confirmed).expect("confirmed");
        assert!(confirmed < 2.5, "confirmed at {confirmed} h");
    }

    #[test]
    fn a_slow_leak_does_not_take_the_fast_window() {
        // 4 MB/h on 200 MB is 2 %/h: below the fast window's effect size. The short window
        // (6 h) may suspect it, never the fast one (3 h).
        let ev = fast_run(9, 1.0, 4.0, None);
        assert!(
            ev.iter().all(|(_, e)| e.window_seconds > 3.0 * 3600.0),
            "{ev:?}"
        );
    }

    #[test]
    fn the_peak_before_an_out_of_memory_restart_is_the_next_cycles_limit() {
        // 60 MB/h from 150 MB; the process dies at 450 MB (every 5 h) and restarts with a new
        // start time. The first cycle has no limit to forecast; the second has the first's peak.
        let cfg = DetectorConfig::default();
        let mut res = ResourceDetector::new();
        let mut heap = series(Role::HeapUsed);
        let (mut start, mut born_h) = (T0, 0.0);
        let mut events = Vec::new();
        for k in 1..=14 * 120u64 {
            let t_ns = T0 + k * 30 * S;
            let h = (k * 30) as f64 / 3600.0;
            let mut live = 150.0 * MB + (h - born_h) * 60.0 * MB;
            if live >= 450.0 * MB {
                (start, born_h) = (t_ns, h);
                live = 150.0 * MB;
            }
            let saw = (k % 12) as f64 * 3.0 * MB;
            let sample = Sample {
                t_ns,
                start_ns: start,
                value: live + saw,
                temporality: Temporality::Gauge,
            };
            if heap.observe(&cfg, sample).is_accepted() {
                if let Some(e) = res.on_series(&cfg, 1, "m", "", &heap, t_ns) {
                    events.push((h, e));
                }
            }
        }
        let (h, c) = events
            .iter()
            .find(|(_, e)| e.kind == LeakEventKind::Confirmed)
            .expect("confirmed");
        assert!(*h < 7.5, "confirmed at {h} h: {events:?}");
        assert_eq!(c.limit_source, Some(LimitSource::PreviousPeak), "{c:?}");
        assert!(
            c.limit_bytes
                .is_some_and(|l| l > 440.0 * MB && l < 490.0 * MB),
            "{c:?}"
        );
        assert!(
            !events
                .iter()
                .any(|(_, e)| e.kind == LeakEventKind::Resolved),
            "{events:?}"
        );
    }

    #[test]
    fn resident_memory_following_committed_heap_is_not_a_leak() {
        let events = run(3.0, 0.0, true);
        assert!(events.is_empty(), "{events:?}");
    }

    #[test]
    fn resident_memory_is_only_supporting_next_to_a_heap_series() {
        // No committed heap to subtract: RSS still grows 3 MB/h, but the heap floor is flat.
        let events = run(3.0, 0.0, false);
        assert!(events.is_empty(), "{events:?}");
    }

    #[test]
    fn native_growth_is_confirmed() {
        let events = run(3.0, 4.0, true);
        let confirmed = events.iter().find(|e| e.kind == LeakEventKind::Confirmed);
        assert!(
            confirmed.is_some_and(|e| e.signals.contains(&"native")),
            "{events:?}"
        );
    }

    #[test]
    fn every_event_of_an_incident_carries_its_start() {
        let (mut events, mut res) = run_detector(3.0, 4.0, true);
        let kinds: Vec<_> = events.iter().map(|e| e.kind).collect();
        assert_eq!(
            kinds,
            [LeakEventKind::Suspected, LeakEventKind::Confirmed],
            "{events:?}"
        );
        let start = events[0].t_ns;
        assert_eq!(res.incident_start_ns(), Some(start));
        // A checkpoint keeps it: the restored detector ends the incident with the same start.
        let mut bytes = Vec::new();
        ciborium::into_writer(&res, &mut bytes).expect("encodes");
        let mut restored: ResourceDetector = ciborium::from_reader(&bytes[..]).expect("decodes");
        assert_eq!(restored.incident_start_ns(), Some(start));
        let last = events[1].t_ns;
        events.extend(restored.gone(last + 60 * S));
        assert!(
            events.iter().all(|e| e.incident_start_ns == start),
            "{events:?}"
        );
        assert!(events[1].t_ns > start);
        assert_eq!(restored.incident_start_ns(), None);
        // The original, ended the same way, agrees.
        assert_eq!(
            res.gone(last + 60 * S).map(|e| e.incident_start_ns),
            Some(start)
        );
    }
}
