//! Synthetic memory traces in event time, for the validation suite and the comparison report:
//! real leaks and the production patterns that fool naive leak rules, generated as the OTLP
//! export requests a runtime's OpenTelemetry instrumentation would send.
//!
//! # The model
//! Each [`Scenario`] simulates one process (one resource) at its export interval. Between two
//! exports the simulation advances analytically, so no GC cycle is lost between samples:
//!
//! - **Traffic**: requests per second with a daily wave (24 h period, peak at a fixed UTC hour),
//!   an optional trend (a launch ramp) and autocorrelated noise.
//! - **Live set** (what survives a full GC): baseline, a short start-up warm-up (JIT, pools), an
//!   optional cache warm-up (saturating), memory proportional to recent load (sessions with a
//!   TTL), one-off steps, a nightly batch job (grows during the job, released at its end), the
//!   leak, and an autocorrelated wander of about 1 %.
//! - **Garbage**: allocation proportional to load fills the young generation (minor GCs); a
//!   fraction is promoted to the old generation, which is collected (major GC) when it reaches a
//!   trigger: a factor of the live set (V8, Go's `GOGC`, .NET) or a fixed occupancy of the heap
//!   (G1's IHOP), capped by the heap limit. Heap used is therefore a sawtooth whose floor is the
//!   live set; as a leak eats the headroom under a limit, major GCs come faster.
//! - **Resident memory**: native baseline plus committed heap, which follows the sawtooth's peaks
//!   at once and gives memory back slowly (pymalloc arenas hardly at all).
//! - **Restarts** (out-of-memory crashes or scheduled in-place deploys): the process is gone for
//!   a few seconds, then memory starts from the baseline again and every cumulative series
//!   restarts from zero with a new `start_time_unix_nano`. `service.instance.id` is stable (a
//!   StatefulSet pod, a VM or a systemd unit restarted in place).
//!
//! Everything is deterministic: a scenario's seed drives a small splitmix64 generator, and time
//! is the trace's own (it starts at [`EPOCH_S`] plus the scenario's start hour), never a clock.
//!
//! # Metric names
//! Each runtime emits what its OpenTelemetry instrumentation emits (semantic conventions):
//! Node.js `v8js.memory.heap.used` per `v8js.heap.space.name`, `v8js.memory.heap.limit`,
//! `v8js.gc.duration`; JVM `jvm.memory.used`, `jvm.memory.used_after_last_gc`,
//! `jvm.memory.limit` per `jvm.memory.pool.name`, `jvm.gc.duration`; Go `go.memory.used` per
//! `go.memory.type`, `go.memory.limit`, `go.goroutine.count`; .NET
//! `dotnet.gc.last_collection.heap.size` per `dotnet.gc.heap.generation`,
//! `dotnet.gc.last_collection.memory.committed_size`, `dotnet.process.memory.working_set`,
//! `dotnet.gc.collections`; Python
//! `process.runtime.cpython.memory`, `cpython.gc.collections`; Python as the seed guide
//! instruments it `process.runtime.python.memory` (`memory.type` = `current_allocated` /
//! `peak_allocated`), `process.runtime.python.gc` and `process.runtime.python.objects` per
//! `object.type` (the leaked bytes are objects of one type, [`LeakObject`]); plus
//! `process.memory.usage` where the SDK's process detector reports it, and
//! `http.server.request.duration` everywhere an SDK runs. A container without an SDK
//! ([`Runtime::Container`]) is seen through the Collector only: kubeletstats'
//! `container.memory.usage` (resident memory + page cache, [`PageCache`]),
//! `container.memory.working_set`, `container.memory.rss`, `container.memory.available`, and
//! k8s_cluster's `k8s.container.memory_limit`, on a resource named by `k8s.*` attributes.
//!
//! An SDK that prefers delta temporality ([`Temporality::Delta`]) sends the increments of its
//! counters and histograms; the [`TraceSample`]s the practices read stay cumulative (what
//! Prometheus holds once a Collector's `deltatocumulative` processor has run).
//!
//! # Two sets
//! [`suite`] is the tuning suite; [`holdout`] redraws every parameter of every scenario by a
//! documented rule and is never used for tuning. Each scenario also knows its ground truth
//! beyond the exports: when its leak runs ([`Scenario::leaking_at`]), when it crashes out of
//! memory ([`Scenario::oom_times_ns`]) and how long it really has until it does
//! ([`Scenario::time_to_oom_s`]), for the report's false resolutions, OOM margins and
//! forecast error.

use std::f64::consts::PI;

use bytes::Bytes;
use prost::Message;

use leakwatch::engine::{Engine, EngineEvent, IngestError};
use leakwatch::otlp::proto::otlp::collector::metrics::v1::ExportMetricsServiceRequest;
use leakwatch::otlp::proto::otlp::common::v1::{InstrumentationScope, KeyValue};
use leakwatch::otlp::proto::otlp::metrics::v1::{
    number_data_point, HistogramDataPoint, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics,
};
use leakwatch::otlp::proto::otlp::resource::v1::Resource;

/// Start of every trace's day 0: 2025-03-03T00:00:00Z, a Monday.
pub const EPOCH_S: u64 = 1_740_960_000;

/// One (decimal) megabyte: the unit the first suite's rates are stated in.
pub const MB: f64 = 1e6;

/// One mebibyte: the unit issue 13's rates and limits are stated in.
pub const MIB: f64 = 1_048_576.0;

const KB: f64 = 1e3;
const NS: f64 = 1e9;
const HOUR: f64 = 3600.0;
const DAY: f64 = 86_400.0;

/// Which runtime's instrumentation a trace imitates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Runtime {
    /// Node.js (`@opentelemetry/instrumentation-runtime-node`).
    Node,
    /// A JVM with G1 (OpenTelemetry Java agent runtime telemetry).
    Jvm,
    /// Go (`go.opentelemetry.io/contrib/instrumentation/runtime`).
    Go,
    /// .NET 9 (`System.Runtime` meter).
    DotNet,
    /// CPython (`opentelemetry-instrumentation-system-metrics`).
    Python,
    /// CPython instrumented exactly as the seed guide shows: three observable gauges over
    /// tracemalloc and `gc` (`process.runtime.python.memory` current/peak allocated,
    /// `process.runtime.python.gc`, `process.runtime.python.objects`), no RSS.
    PythonGuide,
    /// A container without runtime metrics, seen only through the Collector's kubeletstats
    /// receiver (`container.memory.usage`, `.working_set`, `.rss`, `.available`) and the
    /// k8s_cluster receiver's `k8s.container.memory_limit`; no SDK, so no request metrics.
    Container,
}

impl Runtime {
    /// A short name for tables.
    pub fn as_str(self) -> &'static str {
        match self {
            Runtime::Node => "node",
            Runtime::Jvm => "jvm",
            Runtime::Go => "go",
            Runtime::DotNet => "dotnet",
            Runtime::Python => "python",
            Runtime::PythonGuide => "pyguide",
            Runtime::Container => "k8s",
        }
    }

    /// `telemetry.sdk.language`, when an SDK reports.
    fn language(self) -> Option<&'static str> {
        Some(match self {
            Runtime::Node => "nodejs",
            Runtime::Jvm => "java",
            Runtime::Go => "go",
            Runtime::DotNet => "dotnet",
            Runtime::Python | Runtime::PythonGuide => "python",
            Runtime::Container => return None,
        })
    }

    fn runtime_scope(self) -> &'static str {
        match self {
            Runtime::Node => "@opentelemetry/instrumentation-runtime-node",
            Runtime::Jvm => "io.opentelemetry.runtime-telemetry-java17",
            Runtime::Go => "go.opentelemetry.io/contrib/instrumentation/runtime",
            Runtime::DotNet => "System.Runtime",
            Runtime::Python => "opentelemetry.instrumentation.system_metrics",
            // The guide's `metrics.get_meter("python-runtime")`.
            Runtime::PythonGuide => "python-runtime",
            Runtime::Container => "otelcol/kubeletstatsreceiver",
        }
    }

    fn http_scope(self) -> &'static str {
        match self {
            Runtime::Node => "@opentelemetry/instrumentation-http",
            Runtime::Jvm => "io.opentelemetry.tomcat-10.0",
            Runtime::Go => "go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp",
            Runtime::DotNet => "Microsoft.AspNetCore.Hosting",
            Runtime::Python | Runtime::PythonGuide | Runtime::Container => {
                "opentelemetry.instrumentation.flask"
            }
        }
    }
}

/// How the SDK exports monotonic counters and histograms (its temporality preference).
///
/// With `Delta` (`OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE=delta`) every monotonic
/// sum and histogram carries the increase since the previous export, with the previous
/// export's time as `start_time_unix_nano` (the process start for its first export);
/// up-down counters and gauges stay cumulative, as the SDKs do.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Temporality {
    #[default]
    Cumulative,
    Delta,
}

/// Page cache charged to a container's cgroup: files the process writes (logs, spools) stay
/// cached. `active_bytes` is the recently used part (in the working set); the rest, growing
/// `bytes_per_hour` from the container's start, is inactive file cache, which
/// `container.memory.usage` includes and the working set (usage − inactive file) does not.
/// The kernel reclaims it under pressure: it never exceeds 90 % of the limit less resident
/// memory.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PageCache {
    pub bytes_per_hour: f64,
    pub active_bytes: f64,
}

/// The object type whose live count carries a Python leak in the seed guide's
/// `process.runtime.python.objects` gauge, and the bytes each object holds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LeakObject {
    pub type_name: &'static str,
    pub bytes_each: f64,
}

/// How the live set leaks.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Leak {
    /// No leak.
    None,
    /// A constant number of bytes per hour (a growing map, a listener list).
    Linear { bytes_per_hour: f64 },
    /// A number of bytes per request served (a per-request entry never removed).
    PerRequest { bytes_per_request: f64 },
    /// Goroutines that never exit, each holding its stack and some heap.
    Goroutines { per_hour: f64, bytes_each: f64 },
    /// Native memory outside the managed heap (a C++ addon, off-heap buffers): resident memory
    /// grows, the heap does not.
    Native { bytes_per_hour: f64 },
}

/// A saturating warm-up: `bytes × (1 - exp(-age / tau))` after each process start.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Warmup {
    pub bytes: f64,
    pub tau_hours: f64,
}

/// A one-off, permanent change of the live set at a time of the trace.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Step {
    pub at_hours: f64,
    pub bytes: f64,
}

/// A nightly job that accumulates `bytes` of live data over `hours`, then releases it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Batch {
    pub start_hour_utc: f64,
    pub hours: f64,
    pub bytes: f64,
}

/// When the process restarts.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Restarts {
    /// Never.
    None,
    /// Crashes when the live set reaches `fraction` of the limit; back after `down_s`.
    OnOom { fraction: f64, down_s: f64 },
    /// Restarted in place every day at these UTC hours (deploys); back after `down_s`.
    Daily {
        hours_utc: &'static [f64],
        down_s: f64,
    },
}

/// When the old generation is collected.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum GcTrigger {
    /// At `factor` × live set (at least `min_headroom` above it); the factor grows by
    /// `per_alloc_mb_s` per MB/s of allocation (V8 sizes the heap by allocation throughput).
    Factor {
        factor: f64,
        min_headroom: f64,
        per_alloc_mb_s: f64,
    },
    /// At a fixed `fraction` of the heap limit (G1's initiating heap occupancy).
    Occupancy { fraction: f64 },
}

/// The parameters of one simulated process.
#[derive(Clone, Debug, PartialEq)]
pub struct Model {
    /// Live set at steady state, bytes.
    pub base_live: f64,
    /// The leak, if any.
    pub leak: Leak,
    /// Hours after the trace start at which the leak begins.
    pub onset_hours: f64,
    /// A cache filling up after each start.
    pub cache: Option<Warmup>,
    /// A one-off change of the live set.
    pub step: Option<Step>,
    /// A nightly batch job.
    pub batch: Option<Batch>,
    /// Live bytes per request/s of recent load (sessions with a 30-minute TTL).
    pub session_bytes_per_rps: f64,
    /// Mean requests per second.
    pub rps: f64,
    /// Relative amplitude of the daily traffic wave.
    pub wave: f64,
    /// UTC hour of the daily peak.
    pub peak_hour_utc: f64,
    /// Relative traffic growth per day (a launch ramp).
    pub traffic_growth_per_day: f64,
    /// Bytes allocated per request.
    pub alloc_per_request: f64,
    /// Bytes allocated per second with no traffic.
    pub alloc_idle: f64,
    /// Young generation size (0 = a single generation, as in Go).
    pub young_bytes: f64,
    /// Fraction of allocation promoted to the old generation as (future) garbage.
    pub promote_fraction: f64,
    /// Old-generation collection trigger.
    pub trigger: GcTrigger,
    /// Heap limit (JVM `-Xmx`, Node `--max-old-space-size`, Go `GOMEMLIMIT`), bytes.
    pub limit: Option<f64>,
    /// Whether the runtime reports the limit (Node's flag is not reported as such).
    pub limit_reported: bool,
    /// The process runs in a Kubernetes container whose memory limit is `limit`: the SDK's
    /// resource names its pod and container (`k8s.pod.uid`, `k8s.container.name`, as the
    /// Collector's k8sattributes processor sets them) and every export also carries the
    /// container's own resource with the k8s_cluster receiver's `k8s.container.memory_limit`,
    /// as a Collector in front of leakwatch would send it.
    pub pod_limit: bool,
    /// Restart behaviour.
    pub restarts: Restarts,
    /// Relative standard deviation of the live set's autocorrelated wander.
    pub noise: f64,
    /// Resident memory outside the managed heap, bytes.
    pub native_bytes: f64,
    /// Time constant, hours, with which committed memory is given back to the OS.
    pub release_hours: f64,
    /// The SDK's temporality preference for counters and histograms.
    pub temporality: Temporality,
    /// Page cache charged to the container (kubeletstats metrics only).
    pub page_cache: Option<PageCache>,
    /// Which Python object type the leaked bytes are made of (the guide's object counts).
    pub leak_object: Option<LeakObject>,
}

impl Model {
    /// Typical values for a service on `runtime`; scenarios change what they are about.
    pub fn typical(runtime: Runtime) -> Model {
        let base = Model {
            base_live: 150.0 * MB,
            leak: Leak::None,
            onset_hours: 0.0,
            cache: None,
            step: None,
            batch: None,
            session_bytes_per_rps: 0.0,
            rps: 40.0,
            wave: 0.4,
            peak_hour_utc: 15.0,
            traffic_growth_per_day: 0.0,
            alloc_per_request: 150.0 * KB,
            alloc_idle: 0.5 * MB,
            young_bytes: 16.0 * MB,
            promote_fraction: 0.03,
            trigger: GcTrigger::Factor {
                factor: 1.5,
                min_headroom: 24.0 * MB,
                per_alloc_mb_s: 0.0,
            },
            limit: Some(4096.0 * MB),
            limit_reported: false,
            pod_limit: false,
            restarts: Restarts::None,
            noise: 0.01,
            native_bytes: 60.0 * MB,
            release_hours: 0.2,
            temporality: Temporality::Cumulative,
            page_cache: None,
            leak_object: None,
        };
        match runtime {
            Runtime::Node => base,
            Runtime::Jvm => Model {
                base_live: 500.0 * MB,
                rps: 150.0,
                alloc_per_request: 120.0 * KB,
                alloc_idle: 1.0 * MB,
                young_bytes: 400.0 * MB,
                promote_fraction: 0.02,
                trigger: GcTrigger::Occupancy { fraction: 0.45 },
                limit: Some(2048.0 * MB),
                limit_reported: true,
                native_bytes: 180.0 * MB,
                release_hours: 12.0,
                ..base
            },
            Runtime::Go => Model {
                base_live: 120.0 * MB,
                rps: 80.0,
                alloc_per_request: 40.0 * KB,
                alloc_idle: 0.3 * MB,
                young_bytes: 0.0,
                promote_fraction: 1.0,
                trigger: GcTrigger::Factor {
                    factor: 2.0,
                    min_headroom: 4.0 * MB,
                    per_alloc_mb_s: 0.0,
                },
                limit: None,
                limit_reported: true,
                native_bytes: 20.0 * MB,
                ..base
            },
            Runtime::DotNet => Model {
                base_live: 300.0 * MB,
                rps: 100.0,
                alloc_per_request: 100.0 * KB,
                alloc_idle: 0.5 * MB,
                young_bytes: 64.0 * MB,
                promote_fraction: 0.03,
                trigger: GcTrigger::Factor {
                    factor: 1.6,
                    min_headroom: 32.0 * MB,
                    per_alloc_mb_s: 0.0,
                },
                limit: None,
                native_bytes: 90.0 * MB,
                release_hours: 0.5,
                ..base
            },
            Runtime::Python | Runtime::PythonGuide => Model {
                base_live: 180.0 * MB,
                rps: 20.0,
                alloc_per_request: 30.0 * KB,
                alloc_idle: 0.1 * MB,
                young_bytes: 1.0 * MB,
                promote_fraction: 0.002,
                trigger: GcTrigger::Factor {
                    factor: 1.02,
                    min_headroom: 2.0 * MB,
                    per_alloc_mb_s: 0.0,
                },
                limit: None,
                native_bytes: 40.0 * MB,
                release_hours: 8.0,
                leak_object: (runtime == Runtime::PythonGuide).then_some(LeakObject {
                    type_name: "dict",
                    bytes_each: 1024.0,
                }),
                ..base
            },
            // Whatever runs inside; only its resident memory and page cache are seen.
            Runtime::Container => Model {
                base_live: 220.0 * MB,
                limit: Some(1024.0 * MIB),
                limit_reported: true,
                native_bytes: 50.0 * MB,
                page_cache: Some(PageCache {
                    bytes_per_hour: 0.0,
                    active_bytes: 24.0 * MIB,
                }),
                ..base
            },
        }
    }
}

/// One synthetic trace: a process, how long it is watched, and whether it leaks.
#[derive(Clone, Debug, PartialEq)]
pub struct Scenario {
    /// Unique name, also the trace's `service.name`.
    pub name: &'static str,
    /// Whose metric names the trace carries.
    pub runtime: Runtime,
    /// Whether the process leaks (the ground truth).
    pub is_leak: bool,
    /// One line on what the trace is.
    pub summary: &'static str,
    /// Length of the trace.
    pub hours: f64,
    /// Export interval, seconds.
    pub interval_s: u64,
    /// UTC hour of day at which the trace (and the first process) starts, on day 0.
    pub start_hour_utc: u32,
    /// Seed of the trace's noise.
    pub seed: u64,
    /// The simulated process.
    pub model: Model,
}

/// One export as the baselines read it: the values a dashboard would chart, without OTLP.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TraceSample {
    /// Event time (the export's `time_unix_nano`).
    pub t_ns: u64,
    /// Start of the current process (the cumulative series' `start_time_unix_nano`).
    pub process_start_ns: u64,
    /// Managed heap in use, summed over spaces/pools/generations (Python: resident memory).
    pub heap_used: f64,
    /// Heap after the last collection, when the runtime reports it (JVM, .NET).
    pub heap_floor: Option<f64>,
    /// Resident memory, when reported.
    pub rss: Option<f64>,
    /// Garbage collections since the process started, when reported.
    pub gc_count: Option<f64>,
    /// Requests served since the process started.
    pub request_count: Option<f64>,
}

/// One export: the request the process sends and the same values as a [`TraceSample`].
#[derive(Clone, Debug, PartialEq)]
pub struct Tick {
    pub sample: TraceSample,
    pub request: ExportMetricsServiceRequest,
}

impl Scenario {
    /// Event time of the trace's start (nanoseconds since the Unix epoch).
    pub fn start_ns(&self) -> u64 {
        (EPOCH_S + u64::from(self.start_hour_utc) * 3600) * 1_000_000_000
    }

    /// Event time of the trace's end.
    pub fn end_ns(&self) -> u64 {
        self.start_ns() + (self.hours * HOUR * NS) as u64
    }

    /// Event time at which the leak begins (`None` for traps).
    pub fn onset_ns(&self) -> Option<u64> {
        self.is_leak
            .then(|| self.start_ns() + (self.model.onset_hours * HOUR * NS) as u64)
    }

    /// The same trace with the leak removed (same seed, so the same noise), for a leak; used
    /// to tell detections of the leak from alarms the trace would raise anyway.
    pub fn leak_free_twin(&self) -> Option<Scenario> {
        self.is_leak.then(|| Scenario {
            is_leak: false,
            model: Model {
                leak: Leak::None,
                ..self.model.clone()
            },
            ..self.clone()
        })
    }

    /// Whether the leak runs at `t_ns` (the ground truth for false resolutions). Every leak
    /// of the model runs from its onset to the trace's end, through restarts: each new
    /// process leaks again.
    pub fn leaking_at(&self, t_ns: u64) -> bool {
        self.onset_ns().is_some_and(|onset| t_ns >= onset)
    }

    /// Event times of the process' out-of-memory crashes within the trace.
    pub fn oom_times_ns(&self) -> Vec<u64> {
        self.truth().ooms
    }

    /// The memory limit the process runs out of, when the model has one and something can
    /// know it at `at_ns`: the runtime or the Collector reports it (`limit_reported`), or the
    /// process already crashed out of memory before (the peak before the crash).
    pub fn limit_knowable_at(&self, at_ns: u64) -> bool {
        self.model.limit.is_some()
            && (self.model.limit_reported
                || self.model.pod_limit
                || self.oom_times_ns().first().is_some_and(|&t| t < at_ns))
    }

    /// The true time, seconds, from `at_ns` until the process runs out of memory: its live
    /// set reaches the crash point (`OnOom`'s fraction of the limit, else the limit itself).
    /// The trace's own crashes answer when one follows `at_ns`; otherwise the live set of the
    /// trace's last hour is extrapolated at the leak's rate over the last 6 h of the last
    /// process. `None` without a limit, or when the live set does not grow.
    pub fn time_to_oom_s(&self, at_ns: u64) -> Option<f64> {
        let limit = self.model.limit?;
        let truth = self.truth();
        if let Some(&t) = truth.ooms.iter().find(|&&t| t >= at_ns) {
            return Some((t - at_ns) as f64 / NS);
        }
        let fraction = match self.model.restarts {
            Restarts::OnOom { fraction, .. } => fraction,
            _ => 1.0,
        };
        let crash_at = fraction * limit;
        if let Some(p) = truth.live.iter().find(|p| p.0 >= at_ns && p.1 >= crash_at) {
            return Some((p.0 - at_ns) as f64 / NS);
        }
        let last = truth.live.last()?;
        let recent: Vec<&(u64, f64, f64, u64)> = truth
            .live
            .iter()
            .filter(|p| p.3 == last.3 && p.0 + 6 * 3_600_000_000_000 >= last.0)
            .collect();
        let first = recent.first()?;
        let span_h = (last.0 - first.0) as f64 / NS / HOUR;
        let rate = (last.2 - first.2) / span_h;
        if !(rate > 0.0 && span_h > 0.5) {
            return None;
        }
        let hour: Vec<f64> = recent
            .iter()
            .filter(|p| p.0 + 3_600_000_000_000 >= last.0)
            .map(|p| p.1)
            .collect();
        let live_end = hour.iter().sum::<f64>() / hour.len() as f64;
        let end_s = (last.0.max(at_ns) - at_ns) as f64 / NS;
        Some(end_s + (crash_at - live_end).max(0.0) / rate * HOUR)
    }

    /// The simulation's ground truth over the trace (no OTLP built).
    fn truth(&self) -> Truth {
        let mut sim = Sim::new(self);
        let last = (self.hours * HOUR / self.interval_s as f64).floor() as u64;
        let mut live = Vec::new();
        for k in 1..=last {
            if let Some(s) = sim.step(self, k) {
                live.push((s.t_ns, s.live, s.heap_leaked, s.start_ns));
            }
        }
        let start = self.start_ns();
        Truth {
            ooms: sim.ooms.iter().map(|t| start + (t * NS) as u64).collect(),
            live,
        }
    }

    /// `service.instance.id` of the trace's process.
    pub fn instance(&self) -> String {
        format!("{}-0", self.name)
    }

    /// The trace, one [`Tick`] per export, in event-time order.
    pub fn trace(&self) -> Trace<'_> {
        Trace {
            scenario: self,
            sim: Sim::new(self),
            next_tick: 1,
            last_tick: (self.hours * HOUR / self.interval_s as f64).floor() as u64,
            prev: None,
        }
    }

    /// The export requests, in event-time order.
    pub fn requests(&self) -> impl Iterator<Item = ExportMetricsServiceRequest> + '_ {
        self.trace().map(|t| t.request)
    }

    /// The baseline view of every export.
    pub fn samples(&self) -> Vec<TraceSample> {
        self.trace().map(|t| t.sample).collect()
    }

    /// Feeds every export, encoded, through `engine` (the receivers' path) and returns the
    /// leak events in the order they happened.
    pub fn replay(&self, engine: &Engine) -> Result<Vec<EngineEvent>, IngestError> {
        let mut events = Vec::new();
        for request in self.requests() {
            let outcome = engine.ingest_metrics(Bytes::from(request.encode_to_vec()))?;
            events.extend(outcome.events);
        }
        Ok(events)
    }
}

/// What the simulation knows and the exports do not say.
struct Truth {
    /// Out-of-memory crashes (event time).
    ooms: Vec<u64>,
    /// `(t_ns, live set, bytes leaked in this process, process start)` at every export.
    live: Vec<(u64, f64, f64, u64)>,
}

/// Iterator over a scenario's exports.
pub struct Trace<'a> {
    scenario: &'a Scenario,
    sim: Sim,
    next_tick: u64,
    last_tick: u64,
    /// The previous export as cumulative values, and its process' start (for delta).
    prev: Option<(u64, ExportMetricsServiceRequest)>,
}

impl Iterator for Trace<'_> {
    type Item = Tick;

    fn next(&mut self) -> Option<Tick> {
        while self.next_tick <= self.last_tick {
            let k = self.next_tick;
            self.next_tick += 1;
            if let Some(state) = self.sim.step(self.scenario, k) {
                let mut request = request_of(self.scenario, &state);
                if self.scenario.model.temporality == Temporality::Delta {
                    let cumulative = request.clone();
                    let prev = self
                        .prev
                        .as_ref()
                        .filter(|(start, _)| *start == state.start_ns)
                        .map(|(_, r)| r);
                    to_delta(&mut request, prev);
                    self.prev = Some((state.start_ns, cumulative));
                }
                return Some(Tick {
                    sample: sample_of(self.scenario, &state),
                    request,
                });
            }
        }
        None
    }
}

/// Turns an export's cumulative monotonic sums and histograms into deltas since `prev` (the
/// same process' previous export, as cumulative values; `None` for the first export of a
/// process, whose delta is its cumulative value since the start). A point's
/// `start_time_unix_nano` becomes the previous export's time.
fn to_delta(request: &mut ExportMetricsServiceRequest, prev: Option<&ExportMetricsServiceRequest>) {
    use leakwatch::otlp::proto::otlp::metrics::v1::{metric::Data, AggregationTemporality};
    let find = |name: &str| -> Option<&Metric> {
        prev?
            .resource_metrics
            .iter()
            .flat_map(|rm| &rm.scope_metrics)
            .flat_map(|sm| &sm.metrics)
            .find(|m| m.name == name)
    };
    let delta = AggregationTemporality::Delta as i32;
    for metric in request
        .resource_metrics
        .iter_mut()
        .flat_map(|rm| &mut rm.scope_metrics)
        .flat_map(|sm| &mut sm.metrics)
    {
        let before = find(&metric.name).and_then(|m| m.data.clone());
        match metric.data.as_mut() {
            Some(Data::Sum(sum)) if sum.is_monotonic => {
                sum.aggregation_temporality = delta;
                let old = match before {
                    Some(Data::Sum(s)) => s.data_points,
                    _ => Vec::new(),
                };
                for p in &mut sum.data_points {
                    let Some(o) = old.iter().find(|o| o.attributes == p.attributes) else {
                        continue;
                    };
                    if let (
                        Some(number_data_point::Value::AsInt(now)),
                        Some(number_data_point::Value::AsInt(then)),
                    ) = (&mut p.value, &o.value)
                    {
                        *now -= *then;
                    }
                    p.start_time_unix_nano = o.time_unix_nano;
                }
            }
            Some(Data::Histogram(h)) => {
                h.aggregation_temporality = delta;
                let old = match before {
                    Some(Data::Histogram(h)) => h.data_points,
                    _ => Vec::new(),
                };
                for p in &mut h.data_points {
                    let Some(o) = old.iter().find(|o| o.attributes == p.attributes) else {
                        continue;
                    };
                    p.count -= o.count;
                    p.sum = Some(p.sum.unwrap_or(0.0) - o.sum.unwrap_or(0.0));
                    for (b, ob) in p.bucket_counts.iter_mut().zip(&o.bucket_counts) {
                        *b -= ob;
                    }
                    p.start_time_unix_nano = o.time_unix_nano;
                }
            }
            _ => {}
        }
    }
}

/// splitmix64: tiny, fast and good enough for noise.
#[derive(Clone, Debug)]
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Standard normal (Box-Muller).
    fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.uniform();
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (2.0 * PI * u2).cos()
    }
}

/// An AR(1) process with unit variance and time constant `tau_s`.
#[derive(Clone, Debug, Default)]
struct Wander(f64);

impl Wander {
    fn advance(&mut self, rng: &mut Rng, dt: f64, tau_s: f64) -> f64 {
        let rho = (-dt / tau_s).exp();
        self.0 = rho * self.0 + (1.0 - rho * rho).sqrt() * rng.normal();
        self.0
    }
}

/// Latency histogram bounds (seconds) and the share of requests in each bucket.
const LATENCY_BOUNDS: [f64; 8] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0];
const LATENCY_SHARE: [f64; 9] = [0.10, 0.20, 0.25, 0.20, 0.12, 0.08, 0.03, 0.015, 0.005];
const GC_BOUNDS: [f64; 4] = [0.01, 0.1, 1.0, 10.0];

/// State of the current process (reset at every restart).
#[derive(Clone, Debug, Default)]
struct Process {
    start_s: f64,
    leaked: f64,
    sessions: f64,
    young: f64,
    old_garbage: f64,
    /// Live set after the latest major GC (`None` before the first).
    after_gc: Option<f64>,
    minors: f64,
    majors: f64,
    requests: f64,
    request_buckets: [u64; 9],
    committed: f64,
    /// tracemalloc's peak: the largest traced heap since the process started.
    traced_peak: f64,
}

/// What one export reports (internal).
#[derive(Clone, Debug)]
struct State {
    t_ns: u64,
    start_ns: u64,
    live: f64,
    young: f64,
    old_used: f64,
    headroom: f64,
    after_gc: Option<f64>,
    minors: f64,
    majors: f64,
    requests: f64,
    request_buckets: [u64; 9],
    rss: f64,
    committed: f64,
    goroutines: f64,
    noise: f64,
    traced_peak: f64,
    /// The part of the leak in the managed heap (0 for a native leak).
    heap_leaked: f64,
    /// Page cache in the container's working set, and the inactive rest.
    cache_active: f64,
    cache_inactive: f64,
}

#[derive(Clone, Debug)]
struct Sim {
    rng: Rng,
    last_s: f64,
    /// Process down until this time (trace seconds), after a crash or a deploy.
    down_until: Option<f64>,
    next_deploy: Option<f64>,
    proc: Process,
    live_wander: Wander,
    traffic_wander: Wander,
    /// Out-of-memory crashes so far (trace seconds).
    ooms: Vec<f64>,
}

impl Sim {
    /// The part of what leaked that lives in the managed heap (all of it but a native leak).
    fn heap_leaked(&self, m: &Model) -> f64 {
        match m.leak {
            Leak::Native { .. } => 0.0,
            _ => self.proc.leaked,
        }
    }

    fn new(sc: &Scenario) -> Sim {
        let mut sim = Sim {
            rng: Rng(sc.seed ^ 0x005E_ED0F_1EA4),
            last_s: 0.0,
            down_until: None,
            next_deploy: None,
            proc: Process::default(),
            live_wander: Wander::default(),
            traffic_wander: Wander::default(),
            ooms: Vec::new(),
        };
        sim.next_deploy = sim.deploy_after(sc, 0.0);
        sim
    }

    /// The first scheduled deploy strictly after `t` (trace seconds).
    fn deploy_after(&self, sc: &Scenario, t: f64) -> Option<f64> {
        let Restarts::Daily { hours_utc, .. } = sc.model.restarts else {
            return None;
        };
        let offset = f64::from(sc.start_hour_utc) * HOUR;
        let day0 = ((t + offset) / DAY).floor();
        (0..3)
            .flat_map(|d| {
                hours_utc
                    .iter()
                    .map(move |h| (day0 + f64::from(d)) * DAY + h * HOUR - offset)
            })
            .filter(|&s| s > t)
            .fold(None, |acc: Option<f64>, s| {
                Some(acc.map_or(s, |a| a.min(s)))
            })
    }

    fn restart(&mut self, start_s: f64) {
        self.proc = Process {
            start_s,
            ..Process::default()
        };
        self.last_s = start_s;
    }

    /// Advances to export `k`; `None` while the process is down.
    fn step(&mut self, sc: &Scenario, k: u64) -> Option<State> {
        let m = &sc.model;
        let t = (k * sc.interval_s) as f64 + 0.05 + 0.4 * self.rng.uniform();
        if let Some(until) = self.down_until {
            if t < until {
                return None;
            }
            self.down_until = None;
            self.restart(until);
        }
        if let (Some(deploy), Restarts::Daily { down_s, .. }) = (self.next_deploy, m.restarts) {
            if t >= deploy {
                self.next_deploy = self.deploy_after(sc, deploy);
                self.down_until = Some(deploy + down_s);
                if t < deploy + down_s {
                    return None;
                }
                self.down_until = None;
                self.restart(deploy + down_s);
            }
        }
        let dt = (t - self.last_s).max(1e-3);
        let age = t - self.proc.start_s;
        let wall_hour = ((f64::from(sc.start_hour_utc) * HOUR + t) / HOUR) % 24.0;

        // Traffic.
        let tw = self.traffic_wander.advance(&mut self.rng, dt, 600.0);
        let rps = (m.rps
            * (1.0 + m.traffic_growth_per_day * t / DAY)
            * (1.0 + m.wave * (2.0 * PI * (wall_hour - m.peak_hour_utc) / 24.0).cos())
            * (1.0 + 0.05 * tw))
            .max(0.0);
        let mean_requests = rps * dt;
        let requests = (mean_requests + mean_requests.sqrt() * self.rng.normal()).max(0.0);
        self.proc.requests += requests;
        let mut left = requests.round() as u64;
        for (i, share) in LATENCY_SHARE.iter().enumerate() {
            let n = if i + 1 == LATENCY_SHARE.len() {
                left
            } else {
                ((requests * share).round() as u64).min(left)
            };
            self.proc.request_buckets[i] += n;
            left -= n;
        }

        // The leak accrues only after its onset, within the current process.
        let onset = m.onset_hours * HOUR;
        let from = self.last_s.max(onset).max(self.proc.start_s);
        let leaking = if t > from { (t - from) / dt } else { 0.0 };
        self.proc.leaked += match m.leak {
            Leak::None => 0.0,
            Leak::Linear { bytes_per_hour } | Leak::Native { bytes_per_hour } => {
                bytes_per_hour / HOUR * dt * leaking
            }
            Leak::PerRequest { bytes_per_request } => bytes_per_request * requests * leaking,
            Leak::Goroutines {
                per_hour,
                bytes_each,
            } => per_hour * bytes_each / HOUR * dt * leaking,
        };

        // Live set.
        let decay = |tau_s: f64| 1.0 - (-dt / tau_s).exp();
        self.proc.sessions += (m.session_bytes_per_rps * rps - self.proc.sessions) * decay(1800.0);
        let warm = |w: Option<Warmup>| {
            w.map_or(0.0, |w| {
                w.bytes * (1.0 - (-age / (w.tau_hours * HOUR)).exp())
            })
        };
        let step = m
            .step
            .filter(|s| t >= s.at_hours * HOUR)
            .map_or(0.0, |s| s.bytes);
        let (batch, batch_alloc) = m.batch.map_or((0.0, 0.0), |b| {
            let into = (wall_hour - b.start_hour_utc).rem_euclid(24.0);
            if into < b.hours {
                // Only the part of the job this process has seen.
                let seen = (into * HOUR).min(age) / (b.hours * HOUR);
                (b.bytes * seen, 4.0 * b.bytes / (b.hours * HOUR))
            } else {
                (0.0, 0.0)
            }
        });
        let noise = self.live_wander.advance(&mut self.rng, dt, 1200.0) * m.noise;
        let live = (m.base_live * (1.0 + 0.05 * (1.0 - (-age / 900.0).exp()))
            + warm(m.cache)
            + step
            + batch
            + self.proc.sessions
            + self.heap_leaked(m)
            + noise * m.base_live)
            .max(0.5 * m.base_live);

        if let (Restarts::OnOom { fraction, down_s }, Some(limit)) = (m.restarts, m.limit) {
            if live >= fraction * limit {
                // Out of memory: this export never happens.
                self.ooms.push(t);
                self.down_until = Some(t + down_s);
                self.last_s = t;
                return None;
            }
        }

        // Garbage: young generation, promotion, old-generation collections.
        let alloc_rate = m.alloc_per_request * rps + m.alloc_idle + batch_alloc;
        let alloc = alloc_rate * dt;
        let mut young_peak = 0.0;
        let promoted = if m.young_bytes > 0.0 {
            let fill = self.proc.young + alloc;
            let n = (fill / m.young_bytes).floor();
            self.proc.minors += n;
            self.proc.young = fill - n * m.young_bytes;
            young_peak = if n > 0.0 {
                m.young_bytes
            } else {
                self.proc.young
            };
            alloc * m.promote_fraction
        } else {
            alloc
        };
        let mut trigger = match m.trigger {
            GcTrigger::Factor {
                factor,
                min_headroom,
                per_alloc_mb_s,
            } => {
                let f = (factor + per_alloc_mb_s * alloc_rate / MB).min(4.0);
                (live * f).max(live + min_headroom)
            }
            GcTrigger::Occupancy { fraction } => {
                (fraction * m.limit.unwrap_or(4.0 * live)).max(live * 1.1)
            }
        };
        if let Some(limit) = m.limit {
            trigger = trigger.min(limit - m.young_bytes);
        }
        // Near the limit the headroom vanishes and the collector thrashes.
        let headroom = (trigger - live).max(0.002 * live).max(1.0);
        self.proc.old_garbage += promoted;
        let majors = (self.proc.old_garbage / headroom).floor();
        self.proc.majors += majors;
        self.proc.old_garbage -= majors * headroom;
        if majors > 0.0 {
            self.proc.after_gc = Some(live * (1.0 + 0.002 * self.rng.normal()));
        }
        let old_used = live + self.proc.old_garbage;

        // Committed memory follows the peaks at once and is given back slowly.
        let heap_now = old_used + self.proc.young;
        self.proc.traced_peak = self.proc.traced_peak.max(heap_now);
        let old_peak = if majors > 0.0 {
            live + headroom
        } else {
            old_used
        };
        let peak = (old_peak + young_peak).max(heap_now);
        let released =
            self.proc.committed - (self.proc.committed - heap_now) * decay(m.release_hours * HOUR);
        self.proc.committed = peak.max(released).max(heap_now);
        let rss = m.native_bytes
            + (self.proc.leaked - self.heap_leaked(m))
            + self.proc.committed
            + 0.002 * m.base_live * self.rng.normal();
        let (cache_active, cache_inactive) = m.page_cache.map_or((0.0, 0.0), |p| {
            let room = m.limit.map_or(f64::MAX, |l| (0.9 * l - rss).max(0.0));
            let active = p.active_bytes.min(room);
            let inactive = (p.bytes_per_hour * age / HOUR).min(room - active);
            (active, inactive)
        });

        let goroutines = 150.0
            + rps * 0.05 * (1.0 + 0.1 * self.rng.normal()).max(0.0)
            + match m.leak {
                Leak::Goroutines { bytes_each, .. } => self.proc.leaked / bytes_each,
                _ => 0.0,
            };

        self.last_s = t;
        let start = sc.start_ns();
        Some(State {
            t_ns: start + (t * NS) as u64,
            start_ns: start + (self.proc.start_s * NS) as u64,
            live,
            young: self.proc.young,
            old_used,
            headroom,
            after_gc: self.proc.after_gc,
            minors: self.proc.minors,
            majors: self.proc.majors,
            requests: self.proc.requests,
            request_buckets: self.proc.request_buckets,
            rss,
            committed: self.proc.committed,
            traced_peak: self.proc.traced_peak,
            goroutines,
            noise,
            heap_leaked: self.heap_leaked(m),
            cache_active,
            cache_inactive,
        })
    }
}

/// Bytes used per V8 heap space.
fn node_spaces(s: &State) -> [(&'static str, f64); 4] {
    [
        ("new_space", s.young + 1.5 * MB),
        ("old_space", s.old_used - 0.08 * s.live),
        ("code_space", 6.0 * MB + 0.02 * s.live),
        ("large_object_space", 0.06 * s.live),
    ]
}

fn jvm_pools(s: &State, m: &Model) -> [(&'static str, f64, f64); 3] {
    let survivor = 0.04 * m.young_bytes * (1.0 + 0.3 * s.noise.abs().min(1.0));
    [
        ("G1 Eden Space", s.young, 0.0),
        ("G1 Survivor Space", survivor, survivor),
        ("G1 Old Gen", s.old_used, s.after_gc.unwrap_or(0.0)),
    ]
}

fn dotnet_generations(s: &State, m: &Model) -> [(&'static str, f64); 5] {
    [
        ("gen0", (s.young * 0.1).max(0.5 * MB)),
        ("gen1", 0.05 * m.young_bytes),
        ("gen2", s.old_used - 0.12 * s.live),
        ("loh", 0.12 * s.live),
        ("poh", 0.3 * MB),
    ]
}

fn go_memory(s: &State) -> (f64, f64) {
    let stack = s.goroutines * 8.0 * KB;
    // Freed spans are returned to the OS gradually by the scavenger.
    let retained = 0.6 * (s.headroom - (s.old_used - s.live)).max(0.0);
    (stack, 12.0 * MB + s.old_used + retained)
}

fn sample_of(sc: &Scenario, s: &State) -> TraceSample {
    let m = &sc.model;
    let (heap_used, heap_floor, rss, gc_count) = match sc.runtime {
        Runtime::Node => (
            node_spaces(s).iter().map(|(_, v)| v).sum(),
            None,
            Some(s.rss),
            Some(s.minors + s.majors),
        ),
        Runtime::Jvm => {
            let pools = jvm_pools(s, m);
            let floor = s
                .after_gc
                .map(|_| pools.iter().map(|(_, _, after)| after).sum());
            (
                pools.iter().map(|(_, used, _)| used).sum(),
                floor,
                None,
                Some(s.minors + s.majors),
            )
        }
        Runtime::Go => {
            let (stack, other) = go_memory(s);
            (stack + other, None, None, None)
        }
        Runtime::DotNet => {
            let gens = dotnet_generations(s, m);
            let floor = gens[2..].iter().map(|(_, v)| v).sum();
            (
                gens.iter().map(|(_, v)| v).sum(),
                Some(floor),
                Some(s.rss),
                Some(s.minors + (s.minors / 10.0).floor() + s.majors),
            )
        }
        Runtime::Python => (
            s.rss,
            None,
            Some(s.rss),
            Some(s.minors + (s.minors / 10.0).floor() + (s.minors / 100.0).floor()),
        ),
        Runtime::PythonGuide => (
            s.old_used + s.young,
            None,
            None,
            Some(s.minors + (s.minors / 10.0).floor() + (s.minors / 100.0).floor()),
        ),
        // What Kubernetes dashboards chart and `kubectl top` shows: the working set.
        Runtime::Container => (s.rss + s.cache_active, None, Some(s.rss), None),
    };
    TraceSample {
        t_ns: s.t_ns,
        process_start_ns: s.start_ns,
        heap_used,
        heap_floor,
        rss,
        gc_count,
        request_count: (sc.runtime != Runtime::Container).then(|| s.requests.floor()),
    }
}

// ---- OTLP builders -----------------------------------------------------------------------

use leakwatch::otlp::build::{kv, kv_int};

/// Points of one metric share the export's times.
#[derive(Clone, Copy)]
struct At {
    start_ns: u64,
    t_ns: u64,
}

impl At {
    fn int(self, attributes: Vec<KeyValue>, value: f64) -> NumberDataPoint {
        NumberDataPoint {
            attributes,
            start_time_unix_nano: self.start_ns,
            time_unix_nano: self.t_ns,
            value: Some(number_data_point::Value::AsInt(value.round() as i64)),
            ..NumberDataPoint::default()
        }
    }

    fn histogram(
        self,
        attributes: Vec<KeyValue>,
        count: u64,
        sum: f64,
        bounds: &[f64],
        buckets: Vec<u64>,
    ) -> HistogramDataPoint {
        HistogramDataPoint {
            attributes,
            start_time_unix_nano: self.start_ns,
            time_unix_nano: self.t_ns,
            count,
            sum: Some(sum),
            bucket_counts: buckets,
            explicit_bounds: bounds.to_vec(),
            ..HistogramDataPoint::default()
        }
    }

    /// A GC-duration histogram point whose collections all take about `seconds`.
    fn gc(self, attributes: Vec<KeyValue>, count: f64, seconds: f64) -> HistogramDataPoint {
        let count = count as u64;
        let mut buckets = vec![0; GC_BOUNDS.len() + 1];
        let i = GC_BOUNDS
            .iter()
            .position(|b| seconds <= *b)
            .unwrap_or(GC_BOUNDS.len());
        buckets[i] = count;
        self.histogram(
            attributes,
            count,
            count as f64 * seconds,
            &GC_BOUNDS,
            buckets,
        )
    }
}

use leakwatch::otlp::build::sum as sum_metric;

/// An UpDownCounter (non-monotonic cumulative sum): the semantic conventions' memory type.
fn updown(name: &str, unit: &str, points: Vec<NumberDataPoint>) -> Metric {
    sum_metric(name, unit, false, points)
}

fn counter(name: &str, unit: &str, points: Vec<NumberDataPoint>) -> Metric {
    sum_metric(name, unit, true, points)
}

use leakwatch::otlp::build::histogram;

fn runtime_metrics(sc: &Scenario, s: &State, at: At) -> Vec<Metric> {
    let m = &sc.model;
    match sc.runtime {
        Runtime::Node => {
            let spaces = node_spaces(s);
            let space = |n: &str| vec![kv("v8js.heap.space.name", n)];
            // V8 reports each space's current (committed) size as its "limit"; together they
            // are the committed heap that resident memory follows.
            let others: f64 = spaces
                .iter()
                .filter(|(n, _)| *n != "old_space" && *n != "new_space")
                .map(|(_, v)| v)
                .sum();
            let sizes = spaces.map(|(n, v)| {
                let size = match n {
                    "new_space" => 2.0 * m.young_bytes,
                    "old_space" => v.max(s.committed - m.young_bytes - others),
                    _ => v,
                };
                at.int(space(n), size)
            });
            vec![
                updown(
                    "v8js.memory.heap.used",
                    "By",
                    spaces.iter().map(|(n, v)| at.int(space(n), *v)).collect(),
                ),
                updown("v8js.memory.heap.limit", "By", sizes.to_vec()),
                histogram(
                    "v8js.gc.duration",
                    "s",
                    vec![
                        at.gc(vec![kv("v8js.gc.type", "minor")], s.minors, 0.002),
                        at.gc(vec![kv("v8js.gc.type", "major")], s.majors, 0.06),
                    ],
                ),
                updown("process.memory.usage", "By", vec![at.int(vec![], s.rss)]),
            ]
        }
        Runtime::Jvm => {
            let pools = jvm_pools(s, m);
            let heap = |pool: &str| {
                vec![
                    kv("jvm.memory.type", "heap"),
                    kv("jvm.memory.pool.name", pool),
                ]
            };
            let non_heap = |pool: &str| {
                vec![
                    kv("jvm.memory.type", "non_heap"),
                    kv("jvm.memory.pool.name", pool),
                ]
            };
            let mut used: Vec<NumberDataPoint> =
                pools.iter().map(|(p, u, _)| at.int(heap(p), *u)).collect();
            used.push(at.int(non_heap("Metaspace"), 95.0 * MB));
            used.push(at.int(non_heap("CodeHeap 'non-profiled nmethods'"), 28.0 * MB));
            let mut metrics = vec![
                updown("jvm.memory.used", "By", used),
                updown(
                    "jvm.memory.used_after_last_gc",
                    "By",
                    pools.iter().map(|(p, _, a)| at.int(heap(p), *a)).collect(),
                ),
                histogram(
                    "jvm.gc.duration",
                    "s",
                    vec![
                        at.gc(
                            vec![
                                kv("jvm.gc.name", "G1 Young Generation"),
                                kv("jvm.gc.action", "end of minor GC"),
                            ],
                            s.minors,
                            0.015,
                        ),
                        at.gc(
                            vec![
                                kv("jvm.gc.name", "G1 Old Generation"),
                                kv("jvm.gc.action", "end of major GC"),
                            ],
                            s.majors,
                            0.2,
                        ),
                    ],
                ),
            ];
            if let (Some(limit), true) = (m.limit, m.limit_reported) {
                // G1 reports a maximum only for the old generation (-Xmx).
                metrics.push(updown(
                    "jvm.memory.limit",
                    "By",
                    vec![at.int(heap("G1 Old Gen"), limit)],
                ));
            }
            metrics
        }
        Runtime::Go => {
            let (stack, other) = go_memory(s);
            // An unset GOMEMLIMIT is reported as math.MaxInt64.
            let limit = m.limit.unwrap_or(i64::MAX as f64);
            vec![
                updown(
                    "go.memory.used",
                    "By",
                    vec![
                        at.int(vec![kv("go.memory.type", "stack")], stack),
                        at.int(vec![kv("go.memory.type", "other")], other),
                    ],
                ),
                updown("go.memory.limit", "By", vec![at.int(vec![], limit)]),
                updown(
                    "go.memory.gc.goal",
                    "By",
                    vec![at.int(vec![], s.live + s.headroom)],
                ),
                updown(
                    "go.goroutine.count",
                    "{goroutine}",
                    vec![at.int(vec![], s.goroutines)],
                ),
            ]
        }
        Runtime::DotNet => {
            let generation = |g: &str| vec![kv("dotnet.gc.heap.generation", g)];
            let collections = [
                ("gen0", s.minors),
                ("gen1", (s.minors / 10.0).floor()),
                ("gen2", s.majors),
            ];
            vec![
                updown(
                    "dotnet.gc.last_collection.heap.size",
                    "By",
                    dotnet_generations(s, m)
                        .iter()
                        .map(|(g, v)| at.int(generation(g), *v))
                        .collect(),
                ),
                updown(
                    "dotnet.gc.last_collection.memory.committed_size",
                    "By",
                    vec![at.int(vec![], s.committed)],
                ),
                updown(
                    "dotnet.process.memory.working_set",
                    "By",
                    vec![at.int(vec![], s.rss)],
                ),
                counter(
                    "dotnet.gc.collections",
                    "{collection}",
                    collections
                        .iter()
                        .map(|(g, n)| at.int(generation(g), *n))
                        .collect(),
                ),
            ]
        }
        Runtime::PythonGuide => {
            let gauge = |name: &str, unit: &str, points| {
                leakwatch::otlp::build::gauge(name, unit, "", points)
            };
            let mem = |t: &str| vec![kv("memory.type", t)];
            let current = s.old_used + s.young;
            let gc =
                |g: i64, stat: &str| vec![kv("gc.generation", &g.to_string()), kv("gc.stat", stat)];
            let collections = [
                s.minors,
                (s.minors / 10.0).floor(),
                (s.minors / 100.0).floor(),
            ];
            let mut gc_points = Vec::new();
            for (g, n) in collections.iter().enumerate() {
                let g = g as i64;
                gc_points.push(at.int(gc(g, "collections"), *n));
                gc_points.push(at.int(gc(g, "collected_objects"), (*n * 350.0).floor()));
                gc_points.push(at.int(gc(g, "uncollectable_objects"), 0.0));
            }
            let objects: Vec<NumberDataPoint> = python_objects(s, m)
                .into_iter()
                .map(|(t, n)| at.int(vec![kv("object.type", t)], n))
                .collect();
            vec![
                gauge(
                    "process.runtime.python.memory",
                    "By",
                    vec![
                        at.int(mem("current_allocated"), current),
                        at.int(mem("peak_allocated"), s.traced_peak),
                    ],
                ),
                gauge("process.runtime.python.gc", "", gc_points),
                gauge("process.runtime.python.objects", "", objects),
            ]
        }
        Runtime::Container => {
            let working_set = s.rss + s.cache_active;
            let usage = working_set + s.cache_inactive;
            let gauge = |name: &str, value: f64| {
                leakwatch::otlp::build::gauge(name, "By", "", vec![at.int(vec![], value)])
            };
            let mut metrics = vec![
                gauge("container.memory.usage", usage),
                gauge("container.memory.working_set", working_set),
                gauge("container.memory.rss", s.rss),
            ];
            if let (Some(limit), true) = (m.limit, m.limit_reported) {
                metrics.push(gauge("container.memory.available", limit - working_set));
                metrics.push(gauge("k8s.container.memory_limit", limit));
            }
            metrics
        }
        Runtime::Python => {
            let mem = |t: &str| vec![kv("memory.type", t)];
            let vms = 3.0 * s.rss + 400.0 * MB;
            let generation = |g: i64| vec![kv_int("cpython.gc.generation", g)];
            vec![
                updown(
                    "process.runtime.cpython.memory",
                    "By",
                    vec![at.int(mem("rss"), s.rss), at.int(mem("vms"), vms)],
                ),
                updown("process.memory.usage", "By", vec![at.int(vec![], s.rss)]),
                updown("process.memory.virtual", "By", vec![at.int(vec![], vms)]),
                counter(
                    "cpython.gc.collections",
                    "{collection}",
                    vec![
                        at.int(generation(0), s.minors),
                        at.int(generation(1), (s.minors / 10.0).floor()),
                        at.int(generation(2), (s.minors / 100.0).floor()),
                    ],
                ),
            ]
        }
    }
}

/// Live objects per type (`gc.get_objects()` counted by type, the guide's gauge): every type
/// follows the live set without the leak (sessions, caches), functions stay put, and the
/// leaked bytes are objects of the model's [`LeakObject`] type, so that one type's count grows
/// with the floor.
fn python_objects(s: &State, m: &Model) -> Vec<(&'static str, f64)> {
    let scale = (s.live - s.heap_leaked) / m.base_live;
    let mut counts: Vec<(&'static str, f64)> = vec![
        ("dict", 20_000.0 * scale),
        ("list", 12_000.0 * scale),
        ("function", 9_000.0),
        ("tuple", 7_000.0 * scale),
    ];
    if let Some(lo) = m.leak_object {
        let leaked = s.heap_leaked / lo.bytes_each;
        match counts.iter_mut().find(|(t, _)| *t == lo.type_name) {
            Some((_, n)) => *n += leaked,
            None => counts.push((lo.type_name, leaked)),
        }
    }
    counts.into_iter().map(|(t, n)| (t, n.floor())).collect()
}

fn request_of(sc: &Scenario, s: &State) -> ExportMetricsServiceRequest {
    let at = At {
        start_ns: s.start_ns,
        t_ns: s.t_ns,
    };
    let count: u64 = s.request_buckets.iter().sum();
    let http = histogram(
        "http.server.request.duration",
        "s",
        vec![at.histogram(
            vec![
                kv("http.request.method", "GET"),
                kv("http.route", "/api/items/{id}"),
                kv_int("http.response.status_code", 200),
            ],
            count,
            count as f64 * 0.045,
            &LATENCY_BOUNDS,
            s.request_buckets.to_vec(),
        )],
    );
    let instance = sc.instance();
    let pod_uid = format!("{:08x}-0000-4000-8000-{:012x}", sc.seed, sc.seed);
    let attributes = match sc.runtime.language() {
        Some(language) => {
            let mut a = vec![
                kv("service.name", sc.name),
                kv("service.instance.id", &instance),
                kv("k8s.pod.name", &instance),
                kv("telemetry.sdk.language", language),
            ];
            if sc.model.pod_limit {
                a.push(kv("k8s.pod.uid", &pod_uid));
                a.push(kv("k8s.container.name", sc.name));
            }
            a
        }
        // The Collector's receivers name the container, not a service.
        None => vec![
            kv("k8s.namespace.name", "default"),
            kv("k8s.pod.name", &instance),
            kv("k8s.pod.uid", &pod_uid),
            kv("k8s.container.name", sc.name),
            kv("k8s.node.name", "node-1"),
        ],
    };
    let resource = Resource {
        attributes,
        ..Resource::default()
    };
    let scope = |name: &str, metrics: Vec<Metric>| ScopeMetrics {
        scope: Some(InstrumentationScope {
            name: name.to_owned(),
            ..InstrumentationScope::default()
        }),
        metrics,
        ..ScopeMetrics::default()
    };
    // The Collector's k8s_cluster receiver: the container's limit on a resource of its own.
    let container = match (sc.model.pod_limit, sc.model.limit) {
        (true, Some(limit)) => Some(ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![
                    kv("k8s.namespace.name", "default"),
                    kv("k8s.pod.name", &instance),
                    kv("k8s.pod.uid", &pod_uid),
                    kv("k8s.container.name", sc.name),
                ],
                ..Resource::default()
            }),
            scope_metrics: vec![scope(
                "otelcol/k8sclusterreceiver",
                vec![leakwatch::otlp::build::gauge(
                    "k8s.container.memory_limit",
                    "By",
                    "",
                    vec![at.int(vec![], limit)],
                )],
            )],
            ..ResourceMetrics::default()
        }),
        _ => None,
    };
    ExportMetricsServiceRequest {
        resource_metrics: std::iter::once(ResourceMetrics {
            resource: Some(resource),
            scope_metrics: if sc.runtime == Runtime::Container {
                vec![scope(
                    sc.runtime.runtime_scope(),
                    runtime_metrics(sc, s, at),
                )]
            } else {
                vec![
                    scope(sc.runtime.runtime_scope(), runtime_metrics(sc, s, at)),
                    scope(sc.runtime.http_scope(), vec![http]),
                ]
            },
            ..ResourceMetrics::default()
        })
        .chain(container)
        .collect(),
    }
}

// ---- The suite ---------------------------------------------------------------------------

/// Every scenario of the validation suite: leaks first, then traps.
pub fn suite() -> Vec<Scenario> {
    let node = Model::typical(Runtime::Node);
    let jvm = Model::typical(Runtime::Jvm);
    let go = Model::typical(Runtime::Go);
    let dotnet = Model::typical(Runtime::DotNet);
    let python = Model::typical(Runtime::Python);
    let pyguide = Model::typical(Runtime::PythonGuide);
    let container = Model::typical(Runtime::Container);
    let linear = |mb_per_hour: f64| Leak::Linear {
        bytes_per_hour: mb_per_hour * MB,
    };
    let mib_h = |mib_per_hour: f64| Leak::Linear {
        bytes_per_hour: mib_per_hour * MIB,
    };
    // Issue 13's fast leaks: a few hundred MiB of heap under a 40 MiB sawtooth.
    let node_fast = Model {
        base_live: 280.0 * MIB,
        trigger: GcTrigger::Factor {
            factor: 1.0,
            min_headroom: 40.0 * MIB,
            per_alloc_mb_s: 0.0,
        },
        limit: Some(2048.0 * MIB),
        restarts: Restarts::OnOom {
            fraction: 0.95,
            down_s: 20.0,
        },
        ..node.clone()
    };
    vec![
        // ---- Leaks -------------------------------------------------------------------------
        Scenario {
            name: "node-leak-8mb-h",
            runtime: Runtime::Node,
            is_leak: true,
            summary: "8 MB/h from start on a 150 MB live set",
            hours: 36.0,
            interval_s: 30,
            start_hour_utc: 8,
            seed: 1,
            model: Model {
                leak: linear(8.0),
                ..node.clone()
            },
        },
        Scenario {
            name: "jvm-leak-2mb-h",
            runtime: Runtime::Jvm,
            is_leak: true,
            summary: "2 MB/h on a 500 MB live set, 2 GB heap",
            hours: 48.0,
            interval_s: 60,
            start_hour_utc: 6,
            seed: 2,
            model: Model {
                leak: linear(2.0),
                ..jvm.clone()
            },
        },
        Scenario {
            name: "go-leak-600kb-h",
            runtime: Runtime::Go,
            is_leak: true,
            summary: "600 KB/h on a 200 MB heap (GOGC=100, no GOMEMLIMIT)",
            hours: 72.0,
            interval_s: 60,
            start_hour_utc: 0,
            seed: 3,
            model: Model {
                base_live: 100.0 * MB,
                leak: linear(0.6),
                ..go.clone()
            },
        },
        Scenario {
            name: "node-leak-600kb-h",
            runtime: Runtime::Node,
            is_leak: true,
            summary: "600 KB/h on a 200 MB heap",
            hours: 72.0,
            interval_s: 30,
            start_hour_utc: 12,
            seed: 4,
            model: Model {
                leak: linear(0.6),
                wave: 0.5,
                rps: 25.0,
                ..node.clone()
            },
        },
        Scenario {
            name: "jvm-leak-under-large-sawtooth",
            runtime: Runtime::Jvm,
            is_leak: true,
            summary: "1.5 MB/h under a 1.1 GB old-gen sawtooth (4 GB heap, mixed GC every ~75 min)",
            hours: 72.0,
            interval_s: 60,
            start_hour_utc: 4,
            seed: 5,
            model: Model {
                base_live: 700.0 * MB,
                leak: linear(1.5),
                rps: 200.0,
                alloc_per_request: 150.0 * KB,
                young_bytes: 600.0 * MB,
                promote_fraction: 0.008,
                limit: Some(4096.0 * MB),
                wave: 0.5,
                ..jvm.clone()
            },
        },
        Scenario {
            name: "dotnet-leak-onset-midtrace",
            runtime: Runtime::DotNet,
            is_leak: true,
            summary: "healthy for 26 h, then 3 MB/h (a feature flag turned on)",
            hours: 60.0,
            interval_s: 30,
            start_hour_utc: 0,
            seed: 6,
            model: Model {
                leak: linear(3.0),
                onset_hours: 26.0,
                wave: 0.5,
                ..dotnet.clone()
            },
        },
        Scenario {
            name: "jvm-oom-restart-cycles",
            runtime: Runtime::Jvm,
            is_leak: true,
            summary: "40 MB/h into a 1 GB heap: OutOfMemoryError and restart every ~15 h",
            hours: 72.0,
            interval_s: 60,
            start_hour_utc: 2,
            seed: 7,
            model: Model {
                base_live: 300.0 * MB,
                leak: linear(40.0),
                young_bytes: 150.0 * MB,
                limit: Some(1024.0 * MB),
                restarts: Restarts::OnOom {
                    fraction: 0.92,
                    down_s: 45.0,
                },
                ..jvm.clone()
            },
        },
        Scenario {
            name: "node-oom-restart-cycles",
            runtime: Runtime::Node,
            is_leak: true,
            summary: "90 MB/h into --max-old-space-size=512: crash and restart every ~4 h",
            hours: 48.0,
            interval_s: 30,
            start_hour_utc: 10,
            seed: 8,
            model: Model {
                base_live: 140.0 * MB,
                leak: linear(90.0),
                limit: Some(512.0 * MB),
                restarts: Restarts::OnOom {
                    fraction: 0.95,
                    down_s: 20.0,
                },
                ..node.clone()
            },
        },
        Scenario {
            name: "node-native-leak-10mb-h",
            runtime: Runtime::Node,
            is_leak: true,
            summary: "10 MB/h of resident memory outside the V8 heap (an addon), heap flat",
            hours: 36.0,
            interval_s: 30,
            start_hour_utc: 8,
            seed: 22,
            model: Model {
                leak: Leak::Native {
                    bytes_per_hour: 10.0 * MB,
                },
                ..node.clone()
            },
        },
        Scenario {
            name: "node-traffic-proportional-leak",
            runtime: Runtime::Node,
            is_leak: true,
            summary: "15 bytes per request under a strong daily wave (~6.5 MB/h on average)",
            hours: 48.0,
            interval_s: 30,
            start_hour_utc: 0,
            seed: 9,
            model: Model {
                leak: Leak::PerRequest {
                    bytes_per_request: 15.0,
                },
                rps: 120.0,
                wave: 0.6,
                ..node.clone()
            },
        },
        Scenario {
            name: "python-rss-leak",
            runtime: Runtime::Python,
            is_leak: true,
            summary: "4 MB/h of resident memory (a C extension) under a daily wave",
            hours: 48.0,
            interval_s: 60,
            start_hour_utc: 7,
            seed: 10,
            model: Model {
                leak: linear(4.0),
                wave: 0.5,
                session_bytes_per_rps: 1.5 * MB,
                ..python.clone()
            },
        },
        Scenario {
            name: "pyguide-leak-4mb-h",
            runtime: Runtime::PythonGuide,
            is_leak: true,
            summary: "instrumented as the guide: tracemalloc's live set grows 4 MB/h (a dict cache)",
            hours: 36.0,
            interval_s: 15,
            start_hour_utc: 6,
            seed: 23,
            model: Model {
                leak: linear(4.0),
                wave: 0.4,
                ..pyguide.clone()
            },
        },
        Scenario {
            name: "go-goroutine-leak",
            runtime: Runtime::Go,
            is_leak: true,
            summary: "400 stuck goroutines/h (~5.6 MB/h), GOMEMLIMIT=900MiB",
            hours: 48.0,
            interval_s: 30,
            start_hour_utc: 9,
            seed: 11,
            model: Model {
                base_live: 250.0 * MB,
                leak: Leak::Goroutines {
                    per_hour: 400.0,
                    bytes_each: 14.0 * KB,
                },
                limit: Some(900.0 * 1.048_576 * MB),
                ..go.clone()
            },
        },
        // ---- Leaks added by issue 13 -----------------------------------------------------------
        Scenario {
            name: "node-fast-leak-20mib-h",
            runtime: Runtime::Node,
            is_leak: true,
            summary: "20 MiB/h from +4 h under a 40 MiB sawtooth, 280 MiB live set, 2 GiB heap (OOM in ~85 h)",
            hours: 36.0,
            interval_s: 30,
            start_hour_utc: 8,
            seed: 25,
            model: Model {
                leak: mib_h(20.0),
                onset_hours: 4.0,
                ..node_fast.clone()
            },
        },
        Scenario {
            name: "node-fast-leak-50mib-h",
            runtime: Runtime::Node,
            is_leak: true,
            summary: "50 MiB/h from +4 h under a 40 MiB sawtooth, 280 MiB live set, 2 GiB heap (OOM in ~34 h)",
            hours: 36.0,
            interval_s: 30,
            start_hour_utc: 11,
            seed: 26,
            model: Model {
                leak: mib_h(50.0),
                onset_hours: 4.0,
                ..node_fast.clone()
            },
        },
        Scenario {
            name: "node-oom-cycle-7.7h",
            runtime: Runtime::Node,
            is_leak: true,
            summary: "50 MiB/h into --max-old-space-size=576: heap OOM and restart every ~7.7 h",
            hours: 36.0,
            interval_s: 30,
            start_hour_utc: 7,
            seed: 27,
            model: Model {
                base_live: 150.0 * MIB,
                leak: mib_h(50.0),
                limit: Some(576.0 * MIB),
                restarts: Restarts::OnOom {
                    fraction: 0.95,
                    down_s: 20.0,
                },
                ..node.clone()
            },
        },
        Scenario {
            name: "pyguide-tracemalloc-4mib-h-48h",
            runtime: Runtime::PythonGuide,
            is_leak: true,
            summary: "instrumented as the guide: tracemalloc's live set grows 4 MiB/h for 48 h under a daily wave",
            hours: 48.0,
            interval_s: 15,
            start_hour_utc: 10,
            seed: 28,
            model: Model {
                leak: mib_h(4.0),
                wave: 0.5,
                session_bytes_per_rps: 1.5 * MB,
                ..pyguide.clone()
            },
        },
        Scenario {
            name: "pyguide-dict-objects-leak",
            runtime: Runtime::PythonGuide,
            is_leak: true,
            summary: "instrumented as the guide: 3 MiB/h of 640-byte dicts from +6 h; only object.type=dict grows",
            hours: 36.0,
            interval_s: 30,
            start_hour_utc: 14,
            seed: 29,
            model: Model {
                leak: mib_h(3.0),
                onset_hours: 6.0,
                leak_object: Some(LeakObject {
                    type_name: "dict",
                    bytes_each: 640.0,
                }),
                ..pyguide.clone()
            },
        },
        Scenario {
            name: "node-pod-limit-leak",
            runtime: Runtime::Node,
            is_leak: true,
            summary: "12 MiB/h from +3 h in a 768 MiB container: only the Collector reports the limit, on the container's resource (pod uid join)",
            hours: 36.0,
            interval_s: 30,
            start_hour_utc: 9,
            seed: 32,
            model: Model {
                leak: mib_h(12.0),
                onset_hours: 3.0,
                limit: Some(768.0 * MIB),
                pod_limit: true,
                ..node.clone()
            },
        },
        // ---- Traps ---------------------------------------------------------------------------
        Scenario {
            name: "jvm-healthy-large-sawtooth",
            runtime: Runtime::Jvm,
            is_leak: false,
            summary: "flat 800 MB live set under a 1 GB old-gen sawtooth (4 GB heap)",
            hours: 48.0,
            interval_s: 60,
            start_hour_utc: 5,
            seed: 12,
            model: Model {
                base_live: 800.0 * MB,
                rps: 200.0,
                alloc_per_request: 150.0 * KB,
                young_bytes: 600.0 * MB,
                promote_fraction: 0.008,
                limit: Some(4096.0 * MB),
                wave: 0.5,
                ..jvm.clone()
            },
        },
        Scenario {
            name: "node-cache-warmup",
            runtime: Runtime::Node,
            is_leak: false,
            summary: "an LRU cache fills 160 MB after the start (time constant 3 h)",
            hours: 48.0,
            interval_s: 30,
            start_hour_utc: 9,
            seed: 13,
            model: Model {
                cache: Some(Warmup {
                    bytes: 160.0 * MB,
                    tau_hours: 3.0,
                }),
                ..node.clone()
            },
        },
        Scenario {
            name: "go-daily-traffic-wave",
            runtime: Runtime::Go,
            is_leak: false,
            summary: "sessions proportional to a ±60 % daily wave (64-256 MB)",
            hours: 72.0,
            interval_s: 60,
            start_hour_utc: 0,
            seed: 14,
            model: Model {
                base_live: 80.0 * MB,
                rps: 200.0,
                wave: 0.6,
                session_bytes_per_rps: 0.8 * MB,
                ..go.clone()
            },
        },
        Scenario {
            name: "dotnet-one-off-step",
            runtime: Runtime::DotNet,
            is_leak: false,
            summary: "+150 MB at hour 20 (a config reload enlarges a buffer pool), flat after",
            hours: 48.0,
            interval_s: 30,
            start_hour_utc: 3,
            seed: 15,
            model: Model {
                step: Some(Step {
                    at_hours: 20.0,
                    bytes: 150.0 * MB,
                }),
                ..dotnet.clone()
            },
        },
        Scenario {
            name: "jvm-periodic-deploys",
            runtime: Runtime::Jvm,
            is_leak: false,
            summary: "restarted in place at 10:00 and 16:00 UTC, 200 MB cache warms up after each",
            hours: 72.0,
            interval_s: 60,
            start_hour_utc: 0,
            seed: 16,
            model: Model {
                base_live: 400.0 * MB,
                cache: Some(Warmup {
                    bytes: 200.0 * MB,
                    tau_hours: 2.0,
                }),
                restarts: Restarts::Daily {
                    hours_utc: &[10.0, 16.0],
                    down_s: 30.0,
                },
                ..jvm.clone()
            },
        },
        Scenario {
            name: "dotnet-nightly-batch",
            runtime: Runtime::DotNet,
            is_leak: false,
            summary: "a 01:00 UTC job accumulates 400 MB over 3 h, released at its end",
            hours: 72.0,
            interval_s: 60,
            start_hour_utc: 12,
            seed: 17,
            model: Model {
                batch: Some(Batch {
                    start_hour_utc: 1.0,
                    hours: 3.0,
                    bytes: 400.0 * MB,
                }),
                ..dotnet.clone()
            },
        },
        Scenario {
            name: "node-rising-peaks-flat-floor",
            runtime: Runtime::Node,
            is_leak: false,
            summary:
                "traffic ramps ×2.5 over 2 days: V8 lets the sawtooth's peaks rise, floor flat",
            hours: 48.0,
            interval_s: 30,
            start_hour_utc: 6,
            seed: 18,
            model: Model {
                traffic_growth_per_day: 0.75,
                trigger: GcTrigger::Factor {
                    factor: 1.3,
                    min_headroom: 16.0 * MB,
                    per_alloc_mb_s: 0.08,
                },
                ..node.clone()
            },
        },
        Scenario {
            name: "python-daily-wave",
            runtime: Runtime::Python,
            is_leak: false,
            summary:
                "started at 03:00 UTC; request buffers follow a ±70 % wave, pymalloc keeps RSS",
            hours: 48.0,
            interval_s: 60,
            start_hour_utc: 3,
            seed: 19,
            model: Model {
                rps: 30.0,
                wave: 0.7,
                session_bytes_per_rps: 3.0 * MB,
                ..python.clone()
            },
        },
        Scenario {
            name: "pyguide-daily-wave",
            runtime: Runtime::PythonGuide,
            is_leak: false,
            summary: "instrumented as the guide: request buffers follow a ±60 % wave; peak_allocated only rises",
            hours: 48.0,
            interval_s: 15,
            start_hour_utc: 5,
            seed: 24,
            model: Model {
                rps: 30.0,
                wave: 0.6,
                session_bytes_per_rps: 2.0 * MB,
                ..pyguide.clone()
            },
        },
        // ---- Traps added by issue 13 -----------------------------------------------------------
        Scenario {
            name: "container-page-cache-12mib-h",
            runtime: Runtime::Container,
            is_leak: false,
            summary: "kubeletstats only: usage +12 MiB/h of page cache (written files), working set and RSS flat, 1 GiB limit",
            hours: 36.0,
            interval_s: 30,
            start_hour_utc: 6,
            seed: 30,
            model: Model {
                page_cache: Some(PageCache {
                    bytes_per_hour: 12.0 * MIB,
                    active_bytes: 24.0 * MIB,
                }),
                ..container.clone()
            },
        },
        Scenario {
            name: "python-delta-daily-wave",
            runtime: Runtime::Python,
            is_leak: false,
            summary: "delta temporality (request histogram, GC counters); request buffers follow a ±65 % wave",
            hours: 48.0,
            interval_s: 60,
            start_hour_utc: 9,
            seed: 31,
            model: Model {
                rps: 30.0,
                wave: 0.65,
                session_bytes_per_rps: 3.0 * MB,
                temporality: Temporality::Delta,
                ..python.clone()
            },
        },
    ]
}

/// The scenario called `name`.
pub fn by_name(name: &str) -> Option<Scenario> {
    suite().into_iter().find(|s| s.name == name)
}

/// Seed of [`holdout`]'s parameter draws. Fixed once, before the holdout was first run; never
/// to be changed to make a figure come out better (a new draw is a new holdout, and the old
/// figures must then be reported beside the new).
pub const HOLDOUT_SEED: u64 = 0x04E1_D0A7_2026_1202;

/// The holdout set: one scenario per [`suite`] scenario, of the same class (same name,
/// runtime, ground truth, kind of leak or trap, restart behaviour), with a different noise
/// seed and every numeric parameter redrawn. It exists to catch constants tuned to the suite:
/// it is never looked at while tuning the detector; `leak-report` prints it beside the suite.
///
/// # The rule
/// Each scenario's draws come from a splitmix64 seeded with [`HOLDOUT_SEED`] xor the FNV-1a
/// hash of its name, so adding a scenario does not change the others. `×U(a, b)` multiplies
/// the tuning value by a uniform draw in `[a, b)`:
///
/// | parameter | holdout value |
/// | --- | --- |
/// | noise seed | a fresh 64-bit draw |
/// | start hour (UTC) | uniform in 0..24 |
/// | export interval | uniform among 15, 30 and 60 s other than the tuning one |
/// | trace length | ×U(1.0, 1.25), whole hours |
/// | leak onset (when not at the start) | ×U(0.7, 1.3) |
/// | leak rate (bytes/h, bytes/request, goroutines/h) | ×U(0.7, 1.4) |
/// | live set, young generation, GC headroom | ×U(0.75, 1.35), ×U(0.8, 1.25), ×U(0.8, 1.25) |
/// | heap/container limit | ×U(0.85, 1.2) |
/// | requests/s, traffic growth | ×U(0.7, 1.4), ×U(0.8, 1.2) |
/// | daily wave amplitude | ×U(0.8, 1.2), at most 0.8; its peak hour ±3 h |
/// | sessions, cache, step, batch bytes | ×U(0.75, 1.3) each |
/// | cache time constant, step time, batch length | ×U(0.7, 1.4), ×U(0.8, 1.2), ×U(0.8, 1.2) |
/// | batch start hour | ±1 h |
/// | deploy hours | one of four pairs of daytime hours |
/// | live-set wander | ×U(0.8, 1.25) |
/// | page cache growth, its active part | ×U(0.7, 1.4), ×U(0.75, 1.3) |
///
/// The one-line `summary` still states the tuning values.
pub fn holdout() -> Vec<Scenario> {
    suite().into_iter().map(|sc| perturbed(&sc)).collect()
}

fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xCBF2_9CE4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01B3)
    })
}

fn perturbed(sc: &Scenario) -> Scenario {
    let mut rng = Rng(HOLDOUT_SEED ^ fnv1a(sc.name));
    let mut u = |lo: f64, hi: f64| lo + (hi - lo) * rng.uniform();
    let mut m = sc.model.clone();
    let seed = {
        let mut r = Rng(HOLDOUT_SEED ^ fnv1a(sc.name) ^ 0x5EED);
        r.next_u64()
    };
    let start_hour_utc = (u(0.0, 24.0).floor() as u32).min(23);
    let intervals: Vec<u64> = [15, 30, 60]
        .into_iter()
        .filter(|i| *i != sc.interval_s)
        .collect();
    let interval_s =
        intervals[((u(0.0, 1.0) * intervals.len() as f64) as usize).min(intervals.len() - 1)];
    let hours = (sc.hours * u(1.0, 1.25)).round();
    if m.onset_hours > 0.0 {
        m.onset_hours *= u(0.7, 1.3);
    }
    let rate = u(0.7, 1.4);
    m.leak = match m.leak {
        Leak::None => Leak::None,
        Leak::Linear { bytes_per_hour } => Leak::Linear {
            bytes_per_hour: bytes_per_hour * rate,
        },
        Leak::Native { bytes_per_hour } => Leak::Native {
            bytes_per_hour: bytes_per_hour * rate,
        },
        Leak::PerRequest { bytes_per_request } => Leak::PerRequest {
            bytes_per_request: bytes_per_request * rate,
        },
        Leak::Goroutines {
            per_hour,
            bytes_each,
        } => Leak::Goroutines {
            per_hour: per_hour * rate,
            bytes_each,
        },
    };
    m.base_live *= u(0.75, 1.35);
    m.young_bytes *= u(0.8, 1.25);
    let headroom = u(0.8, 1.25);
    if let GcTrigger::Factor { min_headroom, .. } = &mut m.trigger {
        *min_headroom *= headroom;
    }
    m.limit = m.limit.map(|l| l * u(0.85, 1.2));
    m.rps *= u(0.7, 1.4);
    m.traffic_growth_per_day *= u(0.8, 1.2);
    m.wave = (m.wave * u(0.8, 1.2)).min(0.8);
    m.peak_hour_utc = (m.peak_hour_utc + u(-3.0, 3.0)).rem_euclid(24.0);
    m.session_bytes_per_rps *= u(0.75, 1.3);
    if let Some(c) = &mut m.cache {
        c.bytes *= u(0.75, 1.3);
        c.tau_hours *= u(0.7, 1.4);
    }
    if let Some(st) = &mut m.step {
        st.bytes *= u(0.75, 1.3);
        st.at_hours *= u(0.8, 1.2);
    }
    if let Some(b) = &mut m.batch {
        b.bytes *= u(0.75, 1.3);
        b.hours *= u(0.8, 1.2);
        b.start_hour_utc = (b.start_hour_utc + u(-1.0, 1.0)).rem_euclid(24.0);
    }
    if let Restarts::Daily { down_s, .. } = m.restarts {
        const PAIRS: [&[f64]; 4] = [&[9.0, 15.0], &[11.0, 17.0], &[8.5, 14.0], &[10.5, 18.0]];
        let pick = ((u(0.0, 1.0) * 4.0) as usize).min(3);
        m.restarts = Restarts::Daily {
            hours_utc: PAIRS[pick],
            down_s,
        };
    }
    m.noise *= u(0.8, 1.25);
    if let Some(p) = &mut m.page_cache {
        p.bytes_per_hour *= u(0.7, 1.4);
        p.active_bytes *= u(0.75, 1.3);
    }
    Scenario {
        hours,
        interval_s,
        start_hour_utc,
        seed,
        model: m,
        ..sc.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_onsets_inside() {
        let suite = suite();
        for (i, a) in suite.iter().enumerate() {
            assert!(
                suite[i + 1..].iter().all(|b| b.name != a.name),
                "{}",
                a.name
            );
            if let Some(onset) = a.onset_ns() {
                assert!(onset < a.end_ns());
            }
        }
        assert!(suite.iter().any(|s| s.is_leak) && suite.iter().any(|s| !s.is_leak));
    }

    #[test]
    fn traces_are_deterministic() {
        let Some(sc) = by_name("node-cache-warmup") else {
            panic!("missing scenario");
        };
        let a: Vec<_> = sc.trace().take(200).collect();
        let b: Vec<_> = sc.trace().take(200).collect();
        assert_eq!(a, b);
    }

    #[test]
    fn time_moves_forward_at_the_export_interval() {
        for sc in suite() {
            let samples = sc.samples();
            let expected = (sc.hours * HOUR / sc.interval_s as f64) as usize;
            assert!(samples.len() + 400 >= expected, "{}", sc.name);
            for w in samples.windows(2) {
                assert!(w[1].t_ns > w[0].t_ns, "{}", sc.name);
            }
        }
    }

    #[test]
    fn linear_leak_grows_the_floor_at_its_rate() {
        let Some(sc) = by_name("jvm-leak-2mb-h") else {
            panic!("missing scenario");
        };
        let floors: Vec<(f64, f64)> = sc
            .samples()
            .iter()
            .filter_map(|s| Some((s.t_ns as f64 / NS / HOUR, s.heap_floor?)))
            .collect();
        let early = floors.iter().filter(|(t, _)| t - floors[0].0 < 12.0);
        let late = floors.iter().filter(|(t, _)| t - floors[0].0 > 36.0);
        let mean = |it: &mut dyn Iterator<Item = &(f64, f64)>| {
            let v: Vec<f64> = it.map(|(_, f)| *f).collect();
            v.iter().sum::<f64>() / v.len() as f64
        };
        let growth = mean(&mut late.into_iter()) - mean(&mut early.into_iter());
        // About 36 h apart at 2 MB/h, give or take the wander.
        assert!((55.0 * MB..90.0 * MB).contains(&growth), "{growth}");
    }

    #[test]
    fn restarts_reset_counters_with_a_new_start_time() {
        let Some(sc) = by_name("jvm-oom-restart-cycles") else {
            panic!("missing scenario");
        };
        let samples = sc.samples();
        let starts: std::collections::BTreeSet<u64> =
            samples.iter().map(|s| s.process_start_ns).collect();
        assert!(starts.len() >= 4, "{} processes", starts.len());
        for w in samples.windows(2) {
            if w[1].process_start_ns != w[0].process_start_ns {
                assert!(w[1].gc_count < w[0].gc_count);
                assert!(w[1].request_count < w[0].request_count);
                assert!(w[1].heap_used < w[0].heap_used);
            }
        }
    }

    #[test]
    fn deploys_happen_at_their_hours() {
        let Some(sc) = by_name("jvm-periodic-deploys") else {
            panic!("missing scenario");
        };
        let samples = sc.samples();
        let restarts: Vec<f64> = samples
            .windows(2)
            .filter(|w| w[1].process_start_ns != w[0].process_start_ns)
            .map(|w| ((w[1].process_start_ns / 1_000_000_000 - EPOCH_S) as f64 / HOUR) % 24.0)
            .collect();
        assert_eq!(restarts.len(), 6, "{restarts:?}");
        assert!(restarts
            .iter()
            .all(|h| (h - 10.0).abs() < 0.1 || (h - 16.0).abs() < 0.1));
    }

    #[test]
    fn requests_carry_the_runtime_names() {
        let names = |n: &str| -> Vec<String> {
            let Some(sc) = by_name(n) else {
                panic!("missing scenario");
            };
            let Some(tick) = sc.trace().next() else {
                panic!("empty trace");
            };
            tick.request.resource_metrics[0]
                .scope_metrics
                .iter()
                .flat_map(|s| s.metrics.iter().map(|m| m.name.clone()))
                .collect()
        };
        assert!(names("node-leak-8mb-h").contains(&"v8js.memory.heap.used".to_owned()));
        assert!(names("jvm-leak-2mb-h").contains(&"jvm.memory.used_after_last_gc".to_owned()));
        assert!(names("go-leak-600kb-h").contains(&"go.goroutine.count".to_owned()));
        assert!(names("dotnet-one-off-step").contains(&"dotnet.gc.collections".to_owned()));
        assert!(names("python-rss-leak").contains(&"process.runtime.cpython.memory".to_owned()));
    }

    #[test]
    fn sawtooth_spans_the_garbage_headroom() {
        let Some(sc) = by_name("jvm-healthy-large-sawtooth") else {
            panic!("missing scenario");
        };
        let heap: Vec<f64> = sc.samples().iter().skip(600).map(|s| s.heap_used).collect();
        let lo = heap.iter().copied().fold(f64::MAX, f64::min);
        let hi = heap.iter().copied().fold(f64::MIN, f64::max);
        assert!(hi - lo > 800.0 * MB, "{lo} {hi}");
    }

    fn metric<'a>(request: &'a ExportMetricsServiceRequest, name: &str) -> Option<&'a Metric> {
        request
            .resource_metrics
            .iter()
            .flat_map(|rm| &rm.scope_metrics)
            .flat_map(|sm| &sm.metrics)
            .find(|m| m.name == name)
    }

    fn ints(m: &Metric) -> Vec<(Vec<KeyValue>, i64, u64, u64)> {
        use leakwatch::otlp::proto::otlp::metrics::v1::metric::Data;
        let points = match m.data.as_ref() {
            Some(Data::Sum(s)) => &s.data_points,
            Some(Data::Gauge(g)) => &g.data_points,
            _ => return Vec::new(),
        };
        points
            .iter()
            .map(|p| {
                let v = match p.value {
                    Some(number_data_point::Value::AsInt(v)) => v,
                    _ => 0,
                };
                (
                    p.attributes.clone(),
                    v,
                    p.start_time_unix_nano,
                    p.time_unix_nano,
                )
            })
            .collect()
    }

    fn scenario(name: &str) -> Scenario {
        by_name(name).unwrap_or_else(|| panic!("missing scenario {name}"))
    }

    #[test]
    fn delta_temporality_sends_increments_that_add_up_to_the_cumulative() {
        use leakwatch::otlp::proto::otlp::metrics::v1::{metric::Data, AggregationTemporality};
        let sc = scenario("python-delta-daily-wave");
        let cumulative = Scenario {
            model: Model {
                temporality: Temporality::Cumulative,
                ..sc.model.clone()
            },
            ..sc.clone()
        };
        let delta: Vec<Tick> = sc.trace().take(500).collect();
        let cum: Vec<Tick> = cumulative.trace().take(500).collect();
        let (mut gc_sum, mut req_sum) = (0i64, 0u64);
        let mut prev_t: Option<u64> = None;
        for (d, c) in delta.iter().zip(&cum) {
            // Same process, same values: the samples do not change.
            assert_eq!(d.sample, c.sample);
            let Some(gc) = metric(&d.request, "cpython.gc.collections") else {
                panic!("no gc counter");
            };
            let Some(Data::Sum(sum)) = gc.data.as_ref() else {
                panic!("gc counter is not a sum");
            };
            assert_eq!(
                sum.aggregation_temporality,
                AggregationTemporality::Delta as i32
            );
            let points = ints(gc);
            gc_sum += points[0].1;
            // Each delta starts where the previous export ended.
            if let Some(t) = prev_t {
                assert_eq!(points[0].2, t);
            }
            prev_t = Some(points[0].3);
            let Some(Data::Histogram(h)) =
                metric(&d.request, "http.server.request.duration").and_then(|m| m.data.as_ref())
            else {
                panic!("no request histogram");
            };
            assert_eq!(
                h.aggregation_temporality,
                AggregationTemporality::Delta as i32
            );
            let p = &h.data_points[0];
            assert_eq!(p.bucket_counts.iter().sum::<u64>(), p.count);
            req_sum += p.count;
            // Up-down counters stay cumulative, as the SDKs keep them.
            let Some(Data::Sum(mem)) =
                metric(&d.request, "process.memory.usage").and_then(|m| m.data.as_ref())
            else {
                panic!("no memory usage");
            };
            assert_eq!(
                mem.aggregation_temporality,
                AggregationTemporality::Cumulative as i32
            );
        }
        let last = &cum[cum.len() - 1].request;
        let Some(gc) = metric(last, "cpython.gc.collections") else {
            panic!("no gc counter");
        };
        assert_eq!(gc_sum, ints(gc)[0].1);
        let Some(Data::Histogram(h)) =
            metric(last, "http.server.request.duration").and_then(|m| m.data.as_ref())
        else {
            panic!("no request histogram");
        };
        assert_eq!(req_sum, h.data_points[0].count);
        assert!(req_sum > 0 && gc_sum > 0);
    }

    #[test]
    fn page_cache_grows_usage_not_the_working_set() {
        let sc = scenario("container-page-cache-12mib-h");
        let ticks: Vec<Tick> = sc.trace().collect();
        let at = |tick: &Tick, name: &str| -> f64 {
            let Some(m) = metric(&tick.request, name) else {
                panic!("no {name}");
            };
            ints(m)[0].1 as f64
        };
        let hours = |a: &Tick, b: &Tick| (b.sample.t_ns - a.sample.t_ns) as f64 / NS / HOUR;
        // Compare hour 4 with the last hour (the process' own warm-up is over by then).
        let (a, b) = (&ticks[480], &ticks[ticks.len() - 1]);
        let cache =
            |t: &Tick| at(t, "container.memory.usage") - at(t, "container.memory.working_set");
        let cache_rate = (cache(b) - cache(a)) / hours(a, b) / MIB;
        assert!((11.5..12.5).contains(&cache_rate), "{cache_rate} MiB/h");
        let ws_rate = (at(b, "container.memory.working_set")
            - at(a, "container.memory.working_set"))
            / hours(a, b)
            / MIB;
        assert!(ws_rate.abs() < 1.0, "working set {ws_rate} MiB/h");
        let limit = at(b, "k8s.container.memory_limit");
        assert_eq!(limit, 1024.0 * MIB);
        assert_eq!(
            at(b, "container.memory.available"),
            limit - at(b, "container.memory.working_set")
        );
        // No SDK: no service name, no request metrics.
        let rm = &b.request.resource_metrics[0];
        let keys: Vec<&str> = rm
            .resource
            .iter()
            .flat_map(|r| &r.attributes)
            .map(|kv| kv.key.as_str())
            .collect();
        assert!(keys.contains(&"k8s.container.name") && !keys.contains(&"service.name"));
        assert!(metric(&b.request, "http.server.request.duration").is_none());
        assert_eq!(b.sample.request_count, None);
    }

    #[test]
    fn object_counts_grow_only_for_the_leaking_type() {
        let sc = scenario("pyguide-dict-objects-leak");
        let ticks: Vec<Tick> = sc.trace().collect();
        let counts = |t: &Tick| -> Vec<(String, f64)> {
            let Some(m) = metric(&t.request, "process.runtime.python.objects") else {
                panic!("no object counts");
            };
            ints(m)
                .into_iter()
                .map(|(attrs, v, _, _)| {
                    let name = match attrs[0].value.as_ref().and_then(|v| v.value.as_ref()) {
                        Some(
                            leakwatch::otlp::proto::otlp::common::v1::any_value::Value::StringValue(
                                s,
                            ),
                        ) => s.clone(),
                        _ => String::new(),
                    };
                    (name, v as f64)
                })
                .collect()
        };
        // Just before the onset, at +6 h, and at the end.
        let onset = ticks
            .iter()
            .position(|t| t.sample.t_ns >= sc.onset_ns().unwrap_or(0))
            .unwrap_or(0);
        let (a, b) = (counts(&ticks[onset]), counts(&ticks[ticks.len() - 1]));
        let leaked_h =
            (ticks[ticks.len() - 1].sample.t_ns - ticks[onset].sample.t_ns) as f64 / NS / HOUR;
        for ((name, before), (_, after)) in a.iter().zip(&b) {
            if name == "dict" {
                let expected = 3.0 * MIB * leaked_h / 640.0;
                let grown = after - before;
                assert!(
                    (0.8 * expected..1.2 * expected).contains(&grown),
                    "dict +{grown}, expected about {expected}"
                );
            } else {
                assert!(
                    (after - before).abs() < 0.15 * before.max(1.0),
                    "{name}: {before} -> {after}"
                );
            }
        }
    }

    #[test]
    fn oom_cycle_lasts_about_7_7_hours() {
        let sc = scenario("node-oom-cycle-7.7h");
        let ooms = sc.oom_times_ns();
        assert!(ooms.len() >= 4, "{} OOMs", ooms.len());
        let first_h = (ooms[0] - sc.start_ns()) as f64 / NS / HOUR;
        assert!((7.2..8.2).contains(&first_h), "first OOM at +{first_h} h");
        for w in ooms.windows(2) {
            let h = (w[1] - w[0]) as f64 / NS / HOUR;
            assert!((7.2..8.2).contains(&h), "cycle {h} h");
        }
        // The truth for forecasts: from the start, the time to the first crash.
        let ttl = sc.time_to_oom_s(sc.start_ns()).unwrap_or(0.0) / HOUR;
        assert!((ttl - first_h).abs() < 1e-6, "{ttl}");
        assert!(!sc.limit_knowable_at(ooms[0]));
        assert!(sc.limit_knowable_at(ooms[0] + 1));
        // Fast leaks without a crash in the trace: extrapolated at the leak's rate.
        let fast = scenario("node-fast-leak-20mib-h");
        assert!(fast.oom_times_ns().is_empty());
        let ttl = fast
            .time_to_oom_s(fast.start_ns() + 12 * 3_600_000_000_000)
            .unwrap_or(0.0)
            / HOUR;
        // (0.95 × 2048 MiB − about 300 MiB) / 20 MiB/h − 8 h of the leak already run.
        assert!((70.0..90.0).contains(&ttl), "{ttl} h");
        assert_eq!(scenario("node-cache-warmup").time_to_oom_s(0), None);
    }

    #[test]
    fn holdout_keeps_the_classes_and_changes_every_draw() {
        let tuning = suite();
        let holdout = holdout();
        assert_eq!(tuning.len(), holdout.len());
        for (t, h) in tuning.iter().zip(&holdout) {
            assert_eq!(
                (t.name, t.runtime, t.is_leak),
                (h.name, h.runtime, h.is_leak)
            );
            assert_ne!(t.seed, h.seed, "{}", t.name);
            assert_ne!(t.interval_s, h.interval_s, "{}", t.name);
            assert_ne!(t.model.base_live, h.model.base_live, "{}", t.name);
            assert_eq!(
                std::mem::discriminant(&t.model.leak),
                std::mem::discriminant(&h.model.leak),
                "{}",
                t.name
            );
            assert_eq!(
                std::mem::discriminant(&t.model.restarts),
                std::mem::discriminant(&h.model.restarts),
                "{}",
                t.name
            );
            if t.is_leak {
                assert_ne!(t.model.leak, h.model.leak, "{}", t.name);
                assert!(h.onset_ns().is_some_and(|o| o < h.end_ns()), "{}", t.name);
            }
            // An OOM-cycle scenario still cycles.
            if t.oom_times_ns().len() >= 2 {
                assert!(
                    h.oom_times_ns().len() >= 2,
                    "{}: {:?}",
                    t.name,
                    h.oom_times_ns()
                );
            }
        }
        assert_eq!(holdout, super::holdout(), "the holdout is deterministic");
    }
}
