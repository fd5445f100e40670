//! `leakwatch-loadgen`: an OTLP metrics load generator, so that leakwatch and
//! the collectors it fronts can be measured under the same load.
//!
//! A [`Workload`] is a fleet: `series` runtime-metric series spread over
//! `resources` processes (Node.js-style: `process.memory.usage`,
//! `v8js.memory.heap.used`/`.limit` per heap space, `v8js.gc.duration` and
//! `http.server.request.duration` histograms — all metrics leakwatch's
//! catalog tracks, so detection really runs). Its export requests are encoded
//! once; sending one only copies the template and patches, in place, the
//! fixed-width fields that change from one pass to the next (timestamps,
//! values, histogram counts), so the generator stays far cheaper than the
//! server it loads. A pass over every series is a *cycle*; each cycle
//! advances event time by `interval`, so every series is a well-ordered
//! stream of points.
//!
//! [`run`] sends the workload over OTLP/gRPC (tonic's client and raw-bytes
//! codec, straight on hyper HTTP/2 connections), OTLP/HTTP
//! 1.1 or h2c (hyper) with `concurrency` workers, each with one request in
//! flight. Worker `w` owns requests `w, w + C, w + 2C, …` of a cycle, so no
//! two workers ever send points of the same series. Without a rate it is a
//! closed loop (as fast as the target answers); with one, each worker paces
//! its sends on an absolute schedule (open loop). Latency is measured from
//! the moment a request is handed to the client to the moment its response
//! is complete. The benchmarks build their inputs from the same [`Workload`]
//! (see `benches/fixtures`), so in-process and over-the-wire figures describe
//! the same payloads.
//!
//! [`run_sink`] is the other end: a blackhole OTLP/gRPC downstream that
//! accepts everything without decoding it, for measuring forwarding.

use std::collections::BTreeMap;
use std::future::{ready, Ready};
use std::net::SocketAddr;
use std::ops::Range;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures_util::future::BoxFuture;
use http::uri::PathAndQuery;
use http::{HeaderValue, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use prost::Message;
use serde::Serialize;
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;
use tonic::codec::CompressionEncoding;

use leakwatch::otlp::build;
use leakwatch::otlp::codec::RawCodec;
use leakwatch::otlp::proto::otlp::collector::metrics::v1::ExportMetricsServiceRequest;
use leakwatch::otlp::proto::otlp::common::v1::{InstrumentationScope, KeyValue};
use leakwatch::otlp::proto::otlp::metrics::v1::{
    metric, number_data_point, AggregationTemporality, Gauge, Histogram, HistogramDataPoint,
    Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics,
};
use leakwatch::otlp::proto::otlp::resource::v1::Resource;
use leakwatch::otlp::proto::{lean, paths};
use leakwatch::otlp::service::{raw_services, RawExport};
use leakwatch::otlp::signal::Signal;

/// Errors of the load generator.
#[derive(Debug, thiserror::Error)]
pub enum LoadgenError {
    #[error("invalid loadgen settings: {0}")]
    Config(String),
    #[error("connecting to {endpoint}: {message}")]
    Connect { endpoint: String, message: String },
    #[error("building the workload: {0}")]
    Workload(String),
    #[error("sink on {addr}: {message}")]
    Sink { addr: SocketAddr, message: String },
    #[error("starting the runtime: {0}")]
    Runtime(#[from] std::io::Error),
}

// ------------------------------------------------------------------ workload

/// The two request sizes every benchmark is run at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Size {
    /// What one SDK sends: ≈40 points of one resource per request.
    Sdk,
    /// What a collector's batch processor sends: ≈5,000 points over 100 resources.
    Collector,
}

impl Size {
    pub fn as_str(self) -> &'static str {
        match self {
            Size::Sdk => "sdk",
            Size::Collector => "collector",
        }
    }

    /// Series each process reports.
    pub fn series_per_resource(self) -> usize {
        match self {
            Size::Sdk => 40,
            Size::Collector => 50,
        }
    }

    /// Processes whose series share one request.
    pub fn resources_per_request(self) -> usize {
        match self {
            Size::Sdk => 1,
            Size::Collector => 100,
        }
    }

    /// The fleet of [`WorkloadConfig::sized`]: 100 processes.
    pub fn default_series(self) -> usize {
        100 * self.series_per_resource()
    }
}

/// The shape of a fleet and of its export requests.
#[derive(Clone, Debug, Serialize)]
pub struct WorkloadConfig {
    /// Processes (OTLP resources).
    pub resources: usize,
    /// Series in all, spread evenly over the resources.
    pub series: usize,
    /// Points per request (the last request of a cycle may hold fewer).
    pub points_per_request: usize,
    /// Event time between two points of a series (one cycle).
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// Event time of the first cycle, in ns since the epoch.
    pub start_unix_nano: u64,
    /// Buckets per histogram point (OTLP semantic conventions use 15 for
    /// `http.server.request.duration`).
    pub histogram_buckets: usize,
    /// Every cycle is a new fleet: each resource carries a [`FLOOD_ATTRIBUTE`]
    /// numbered by cycle and resource, so every point sent is the first point
    /// of a new series (a cardinality flood, e.g. for the memory limiter).
    pub distinct: bool,
}

/// The resource attribute that makes each cycle's fleet new in `distinct` mode.
pub const FLOOD_ATTRIBUTE: &str = "loadgen.flood.id";
/// Width of its value: zero-padded decimal digits, patched in place.
const FLOOD_ID_WIDTH: usize = 16;

impl WorkloadConfig {
    /// The named size with its default fleet: `sdk` is 100 processes × 40
    /// series, one process per request; `collector` is 100 processes × 50
    /// series, all in one request.
    pub fn sized(size: Size) -> Self {
        Self::fleet(size, size.default_series())
    }

    /// Requests shaped like `size`, from a fleet of `series` series: 40 (sdk)
    /// or 50 (collector) series per process, so `series / 40` or
    /// `series / 50` processes.
    pub fn fleet(size: Size, series: usize) -> Self {
        let per_resource = size.series_per_resource();
        WorkloadConfig {
            resources: (series / per_resource).max(1),
            series,
            points_per_request: per_resource * size.resources_per_request(),
            interval: Duration::from_secs(60),
            start_unix_nano: 1_700_000_000_000_000_000,
            histogram_buckets: 15,
            distinct: false,
        }
    }

    fn validate(&self) -> Result<(), String> {
        let mut bad = Vec::new();
        if self.resources == 0 {
            bad.push("resources must be > 0");
        }
        if self.series < self.resources {
            bad.push("series must be ≥ resources (every resource has at least one series)");
        }
        if self.points_per_request == 0 {
            bad.push("points per request must be > 0");
        }
        if self.interval.is_zero() {
            bad.push("interval must be > 0");
        }
        if self.start_unix_nano == 0 {
            bad.push("start time must be > 0");
        }
        if self.histogram_buckets > 64 {
            bad.push("histogram buckets must be ≤ 64");
        }
        if bad.is_empty() {
            Ok(())
        } else {
            Err(bad.join("; "))
        }
    }
}

/// How a patched value moves from cycle to cycle.
#[derive(Clone, Copy, Debug)]
enum Dynamics {
    /// A level (bytes): `base + slope × cycle` plus a small sawtooth.
    Level { base: i64, slope: i64, wobble: i64 },
    /// A cumulative histogram: count `base + step × cycle`.
    Count { base: u64, step: u64 },
}

impl Dynamics {
    fn level(self, cycle: u64, seed: u32) -> i64 {
        match self {
            Dynamics::Level {
                base,
                slope,
                wobble,
            } => {
                let phase = ((cycle + u64::from(seed)) % 8) as i64;
                base.saturating_add(slope.saturating_mul(cycle as i64))
                    .saturating_add(wobble * phase / 8)
            }
            Dynamics::Count { base, step } => {
                base.saturating_add(step.saturating_mul(cycle)) as i64
            }
        }
    }
}

/// Where one point's changing fields sit in an encoded request.
#[derive(Clone, Copy, Debug)]
struct Site {
    /// Offset of `time_unix_nano` (fixed64).
    time: u32,
    /// Offset of `as_int` (sfixed64) or of a histogram's `count` (fixed64).
    value: u32,
    /// Offset of a histogram's `sum` (double); `u32::MAX` for number points.
    sum: u32,
    seed: u32,
    dynamics: Dynamics,
}

/// One encoded export request and the sites to patch in it.
#[derive(Clone, Debug)]
pub struct Template {
    bytes: Vec<u8>,
    sites: Vec<Site>,
    /// `distinct` mode: (offset of the [`FLOOD_ATTRIBUTE`] value, resource index).
    ids: Vec<(u32, u32)>,
}

impl Template {
    /// Data points in the request.
    pub fn points(&self) -> u64 {
        self.sites.len() as u64
    }

    /// Encoded size in bytes.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The request of `cycle`, stamped `t_ns`: a copy of the template with
    /// its timestamps, values and counts patched in place.
    pub fn render(&self, cycle: u64, t_ns: u64) -> Bytes {
        self.render_in(cycle, t_ns, 0)
    }

    /// [`Template::render`], with each resource's [`FLOOD_ATTRIBUTE`] (in
    /// `distinct` mode) set to `cycle × resources + resource`.
    fn render_in(&self, cycle: u64, t_ns: u64, resources: u64) -> Bytes {
        let mut buf = self.bytes.clone();
        for &(at, r) in &self.ids {
            let id = cycle.saturating_mul(resources).saturating_add(u64::from(r));
            let digits = format!("{id:0width$}", width = FLOOD_ID_WIDTH);
            let at = at as usize;
            if let (Some(dst), true) = (
                buf.get_mut(at..at + FLOOD_ID_WIDTH),
                digits.len() == FLOOD_ID_WIDTH,
            ) {
                dst.copy_from_slice(digits.as_bytes());
            }
        }
        let time = t_ns.to_le_bytes();
        for site in &self.sites {
            put(&mut buf, site.time, time);
            let value = site.dynamics.level(cycle, site.seed);
            put(&mut buf, site.value, value.to_le_bytes());
            if site.sum != u32::MAX {
                put(&mut buf, site.sum, (value as f64 * 0.02).to_le_bytes());
            }
        }
        Bytes::from(buf)
    }
}

fn put(buf: &mut [u8], offset: u32, bytes: [u8; 8]) {
    let at = offset as usize;
    if let Some(dst) = buf.get_mut(at..at + 8) {
        dst.copy_from_slice(&bytes);
    }
}

/// A fleet's export requests for one cycle, encoded.
#[derive(Debug)]
pub struct Workload {
    cfg: WorkloadConfig,
    requests: Vec<Template>,
}

/// What series `k` of a resource is (the same layout in every resource).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    ProcessMemory,
    HeapUsed,
    HeapLimit,
    GcDuration,
    HttpDuration,
}

impl Kind {
    fn of(k: usize) -> Kind {
        match k {
            0 => Kind::ProcessMemory,
            1..=5 => Kind::HeapUsed,
            6..=10 => Kind::HeapLimit,
            11..=14 => Kind::GcDuration,
            _ => Kind::HttpDuration,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Kind::ProcessMemory => "process.memory.usage",
            Kind::HeapUsed => "v8js.memory.heap.used",
            Kind::HeapLimit => "v8js.memory.heap.limit",
            Kind::GcDuration => "v8js.gc.duration",
            Kind::HttpDuration => "http.server.request.duration",
        }
    }

    fn unit(self) -> &'static str {
        match self {
            Kind::ProcessMemory | Kind::HeapUsed | Kind::HeapLimit => "By",
            Kind::GcDuration | Kind::HttpDuration => "s",
        }
    }

    fn scope(self) -> &'static str {
        match self {
            Kind::HttpDuration => "@opentelemetry/instrumentation-http",
            _ => "@opentelemetry/instrumentation-runtime-node",
        }
    }

    fn is_histogram(self) -> bool {
        matches!(self, Kind::GcDuration | Kind::HttpDuration)
    }
}

const HEAP_SPACES: [&str; 5] = [
    "new_space",
    "old_space",
    "code_space",
    "large_object_space",
    "map_space",
];
const GC_TYPES: [&str; 4] = ["major", "minor", "incremental", "weakcb"];
const METHODS: [&str; 4] = ["GET", "POST", "PUT", "DELETE"];
const STATUSES: [i64; 4] = [200, 201, 404, 500];
const HTTP_BOUNDS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];
const MIB: i64 = 1024 * 1024;

fn text(key: &str, value: String) -> KeyValue {
    build::kv(key, &value)
}

fn resource_attributes(r: usize) -> Vec<KeyValue> {
    vec![
        text("service.name", format!("loadgen-service-{}", r % 10)),
        text("service.instance.id", format!("loadgen-instance-{r:06}")),
        text("host.name", format!("loadgen-host-{}", r / 10)),
        build::kv_int("process.pid", 1000 + r as i64),
        text("telemetry.sdk.language", "nodejs".to_owned()),
        text("telemetry.sdk.name", "opentelemetry".to_owned()),
        text("telemetry.sdk.version", "1.30.0".to_owned()),
    ]
}

/// Attributes and dynamics of series `k` of resource `r`. One resource in
/// ten leaks (its RSS and old space grow every cycle), so leak detection has
/// something to find.
fn series_of(r: usize, k: usize) -> (Vec<KeyValue>, Dynamics) {
    let leaking = r % 10 == 3;
    let spread = (r % 50) as i64;
    match Kind::of(k) {
        Kind::ProcessMemory => (
            Vec::new(),
            Dynamics::Level {
                base: (120 + spread) * MIB,
                slope: if leaking { 256 * 1024 } else { 0 },
                wobble: 4 * MIB,
            },
        ),
        Kind::HeapUsed => {
            let space = k - 1;
            let old = space == 1;
            (
                vec![text("v8js.heap.space.name", HEAP_SPACES[space].to_owned())],
                Dynamics::Level {
                    base: if old {
                        (60 + spread) * MIB
                    } else {
                        (8 + space as i64) * MIB
                    },
                    slope: if leaking && old { 200 * 1024 } else { 0 },
                    // The young generation's sawtooth, well above any restart drop.
                    wobble: if space == 0 { 3 * MIB } else { MIB / 4 },
                },
            )
        }
        Kind::HeapLimit => {
            let space = k - 6;
            (
                vec![text("v8js.heap.space.name", HEAP_SPACES[space].to_owned())],
                Dynamics::Level {
                    base: if space == 1 { 2048 * MIB } else { 16 * MIB },
                    slope: 0,
                    wobble: 0,
                },
            )
        }
        Kind::GcDuration => (
            vec![text("v8js.gc.type", GC_TYPES[k - 11].to_owned())],
            Dynamics::Count {
                base: 100 + k as u64,
                step: 1 + (k % 3) as u64,
            },
        ),
        Kind::HttpDuration => {
            let j = k - 15;
            (
                vec![
                    text("http.request.method", METHODS[j % 4].to_owned()),
                    build::kv_int("http.response.status_code", STATUSES[(j / 4) % 4]),
                    text("http.route", format!("/api/v1/resource{}", j / 16)),
                ],
                Dynamics::Count {
                    base: 1000 + (j % 97) as u64,
                    step: 5 + (j % 11) as u64,
                },
            )
        }
    }
}

fn histogram_bounds(buckets: usize) -> Vec<f64> {
    let bounds = buckets.saturating_sub(1);
    if bounds <= HTTP_BOUNDS.len() {
        HTTP_BOUNDS[..bounds].to_vec()
    } else {
        (0..bounds).map(|i| 0.001 * 1.5f64.powi(i as i32)).collect()
    }
}

impl Workload {
    /// Encodes every request of one cycle.
    pub fn build(cfg: &WorkloadConfig) -> Result<Workload, LoadgenError> {
        cfg.validate().map_err(LoadgenError::Config)?;
        let n = cfg.series;
        let per_request = cfg.points_per_request;
        let requests = (0..n.div_ceil(per_request))
            .map(|j| build_request(cfg, j * per_request..((j + 1) * per_request).min(n)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Workload {
            cfg: cfg.clone(),
            requests,
        })
    }

    pub fn config(&self) -> &WorkloadConfig {
        &self.cfg
    }

    /// The requests of one cycle, in order.
    pub fn requests(&self) -> &[Template] {
        &self.requests
    }

    /// Event time of `cycle`.
    pub fn time_of(&self, cycle: u64) -> u64 {
        let step = u64::try_from(self.cfg.interval.as_nanos()).unwrap_or(u64::MAX);
        self.cfg
            .start_unix_nano
            .saturating_add(step.saturating_mul(cycle))
    }

    /// Request `index` of `cycle`, ready to send.
    pub fn render(&self, index: usize, cycle: u64) -> Option<Bytes> {
        self.requests
            .get(index)
            .map(|t| self.render_template(t, cycle))
    }

    /// `template` (one of [`Workload::requests`]) for `cycle`.
    pub fn render_template(&self, template: &Template, cycle: u64) -> Bytes {
        template.render_in(cycle, self.time_of(cycle), self.cfg.resources as u64)
    }

    /// Mean points per request.
    pub fn mean_points(&self) -> f64 {
        self.cfg.series as f64 / self.requests.len().max(1) as f64
    }

    /// Mean encoded bytes per request.
    pub fn mean_bytes(&self) -> f64 {
        self.requests.iter().map(|t| t.len() as f64).sum::<f64>()
            / self.requests.len().max(1) as f64
    }
}

/// First series of resource `r`.
fn resource_start(cfg: &WorkloadConfig, r: usize) -> usize {
    ((r as u128 * cfg.series as u128) / cfg.resources as u128) as usize
}

/// The resource of series `s`: the last `r` with `resource_start(r) ≤ s`,
/// i.e. `⌈(s + 1)·R / N⌉ − 1`.
fn resource_of(cfg: &WorkloadConfig, s: usize) -> usize {
    let (n, r) = (cfg.series as u128, cfg.resources as u128);
    let of = ((s as u128 + 1) * r).div_ceil(n).saturating_sub(1);
    (of as usize).min(cfg.resources.saturating_sub(1))
}

fn build_request(cfg: &WorkloadConfig, series: Range<usize>) -> Result<Template, LoadgenError> {
    let start_ns = cfg.start_unix_nano;
    // Cumulative points start when the process started: an hour before.
    let process_start_ns = start_ns.saturating_sub(3_600_000_000_000);
    let bounds = histogram_bounds(cfg.histogram_buckets);
    let mut request = ExportMetricsServiceRequest::default();
    let mut dynamics = Vec::with_capacity(series.len());
    let mut r = resource_of(cfg, series.start);
    let mut current = None;
    let mut id_resources: Vec<u32> = Vec::new();
    for s in series {
        while r + 1 < cfg.resources && resource_start(cfg, r + 1) <= s {
            r += 1;
        }
        let k = s - resource_start(cfg, r);
        let kind = Kind::of(k);
        let (attributes, dyn_) = series_of(r, k);
        if current != Some(r) {
            current = Some(r);
            let mut attributes = resource_attributes(r);
            if cfg.distinct {
                attributes.push(text(FLOOD_ATTRIBUTE, FLOOD_PLACEHOLDER.to_owned()));
                id_resources.push(r as u32);
            }
            request.resource_metrics.push(ResourceMetrics {
                resource: Some(Resource {
                    attributes,
                    ..Default::default()
                }),
                scope_metrics: Vec::new(),
                schema_url: String::new(),
            });
        }
        let rm = request
            .resource_metrics
            .last_mut()
            .ok_or_else(|| LoadgenError::Workload("no resource".to_owned()))?;
        if rm
            .scope_metrics
            .last()
            .and_then(|sm| sm.scope.as_ref())
            .map(|s| s.name.as_str())
            != Some(kind.scope())
        {
            rm.scope_metrics.push(ScopeMetrics {
                scope: Some(InstrumentationScope {
                    name: kind.scope().to_owned(),
                    version: "0.12.0".to_owned(),
                    ..Default::default()
                }),
                metrics: Vec::new(),
                schema_url: String::new(),
            });
        }
        let sm = rm
            .scope_metrics
            .last_mut()
            .ok_or_else(|| LoadgenError::Workload("no scope".to_owned()))?;
        if sm.metrics.last().map(|m| m.name.as_str()) != Some(kind.name()) {
            let data = if kind.is_histogram() {
                metric::Data::Histogram(Histogram {
                    data_points: Vec::new(),
                    aggregation_temporality: AggregationTemporality::Cumulative as i32,
                })
            } else {
                metric::Data::Gauge(Gauge {
                    data_points: Vec::new(),
                })
            };
            sm.metrics.push(Metric {
                name: kind.name().to_owned(),
                description: String::new(),
                unit: kind.unit().to_owned(),
                metadata: Vec::new(),
                data: Some(data),
            });
        }
        let m = sm
            .metrics
            .last_mut()
            .ok_or_else(|| LoadgenError::Workload("no metric".to_owned()))?;
        // Placeholders are never zero: proto3 would leave zero fields out.
        let value = dyn_.level(0, 0).max(1);
        match m.data.as_mut() {
            Some(metric::Data::Gauge(g)) => g.data_points.push(NumberDataPoint {
                attributes,
                start_time_unix_nano: 0,
                time_unix_nano: start_ns,
                exemplars: Vec::new(),
                flags: 0,
                value: Some(number_data_point::Value::AsInt(value)),
            }),
            Some(metric::Data::Histogram(h)) => {
                let count = value as u64;
                let buckets = bounds.len() + 1;
                let mut bucket_counts = vec![count / buckets as u64; buckets];
                if let Some(first) = bucket_counts.first_mut() {
                    *first += count % buckets as u64;
                }
                h.data_points.push(HistogramDataPoint {
                    attributes,
                    start_time_unix_nano: process_start_ns,
                    time_unix_nano: start_ns,
                    count,
                    sum: Some(count as f64 * 0.02),
                    bucket_counts,
                    explicit_bounds: bounds.clone(),
                    exemplars: Vec::new(),
                    flags: 0,
                    min: None,
                    max: None,
                })
            }
            _ => return Err(LoadgenError::Workload("unexpected metric type".to_owned())),
        }
        dynamics.push(dyn_);
    }
    let bytes = request.encode_to_vec();
    let raw = wire::locate(&bytes)
        .ok_or_else(|| LoadgenError::Workload("cannot walk the encoded request".to_owned()))?;
    if raw.len() != dynamics.len() {
        return Err(LoadgenError::Workload(format!(
            "found {} points in the encoded request, built {}",
            raw.len(),
            dynamics.len()
        )));
    }
    let offset = |o: usize| {
        u32::try_from(o).map_err(|_| LoadgenError::Workload("request larger than 4 GiB".to_owned()))
    };
    let sites = raw
        .into_iter()
        .zip(dynamics)
        .enumerate()
        .map(|(i, (site, dynamics))| {
            Ok(Site {
                time: offset(site.time)?,
                value: offset(site.value)?,
                sum: site.sum.map(offset).transpose()?.unwrap_or(u32::MAX),
                seed: i as u32,
                dynamics,
            })
        })
        .collect::<Result<Vec<_>, LoadgenError>>()?;
    // The placeholder is a run of '#' that nothing else in a request contains.
    let found: Vec<usize> = bytes
        .windows(FLOOD_ID_WIDTH)
        .enumerate()
        .filter(|(_, w)| *w == FLOOD_PLACEHOLDER.as_bytes())
        .map(|(i, _)| i)
        .collect();
    if found.len() != id_resources.len() {
        return Err(LoadgenError::Workload(format!(
            "found {} flood ids in the encoded request, built {}",
            found.len(),
            id_resources.len()
        )));
    }
    let ids = found
        .into_iter()
        .zip(id_resources)
        .map(|(at, r)| Ok((offset(at)?, r)))
        .collect::<Result<Vec<_>, LoadgenError>>()?;
    Ok(Template { bytes, sites, ids })
}

const FLOOD_PLACEHOLDER: &str = "################";

/// A minimal protobuf reader that finds the patchable fields of the
/// requests built above (field numbers of `opentelemetry.proto.metrics.v1`).
mod wire {
    use std::ops::Range;

    pub struct RawSite {
        pub time: usize,
        pub value: usize,
        pub sum: Option<usize>,
    }

    struct Field {
        number: u64,
        wire: u8,
        payload: Range<usize>,
    }

    fn varint(buf: &[u8], pos: &mut usize) -> Option<u64> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = *buf.get(*pos)?;
            *pos += 1;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Some(value);
            }
        }
        None
    }

    /// The fields of the message in `buf[range]`.
    fn fields(buf: &[u8], range: Range<usize>) -> Option<Vec<Field>> {
        let mut out = Vec::new();
        let mut pos = range.start;
        while pos < range.end {
            let key = varint(buf, &mut pos)?;
            let wire = (key & 7) as u8;
            let start = match wire {
                0 => {
                    let s = pos;
                    varint(buf, &mut pos)?;
                    s
                }
                1 => {
                    pos += 8;
                    pos - 8
                }
                2 => {
                    let len = usize::try_from(varint(buf, &mut pos)?).ok()?;
                    pos += len;
                    pos - len
                }
                5 => {
                    pos += 4;
                    pos - 4
                }
                _ => return None,
            };
            if pos > range.end {
                return None;
            }
            out.push(Field {
                number: key >> 3,
                wire,
                payload: start..pos,
            });
        }
        Some(out)
    }

    fn children(buf: &[u8], range: Range<usize>, number: u64) -> Option<Vec<Range<usize>>> {
        Some(
            fields(buf, range)?
                .into_iter()
                .filter(|f| f.number == number && f.wire == 2)
                .map(|f| f.payload)
                .collect(),
        )
    }

    fn fixed(buf: &[u8], range: Range<usize>, number: u64) -> Option<Option<usize>> {
        Some(
            fields(buf, range)?
                .into_iter()
                .find(|f| f.number == number && f.wire == 1)
                .map(|f| f.payload.start),
        )
    }

    /// Patch sites of every data point, in encoding order.
    pub fn locate(buf: &[u8]) -> Option<Vec<RawSite>> {
        let mut sites = Vec::new();
        for rm in children(buf, 0..buf.len(), 1)? {
            for sm in children(buf, rm, 2)? {
                for m in children(buf, sm, 2)? {
                    for f in fields(buf, m)? {
                        let histogram = match (f.number, f.wire) {
                            (5, 2) | (7, 2) => false,
                            (9, 2) => true,
                            _ => continue,
                        };
                        for p in children(buf, f.payload, 1)? {
                            let time = fixed(buf, p.clone(), 3)??;
                            let site = if histogram {
                                RawSite {
                                    time,
                                    value: fixed(buf, p.clone(), 4)??,
                                    sum: fixed(buf, p, 5)?,
                                }
                            } else {
                                RawSite {
                                    time,
                                    value: fixed(buf, p, 6)??,
                                    sum: None,
                                }
                            };
                            sites.push(site);
                        }
                    }
                }
            }
        }
        Some(sites)
    }
}

// ------------------------------------------------------------------ latency

/// Log-linear histogram of durations in nanoseconds: 64 sub-buckets per
/// power of two, so every quantile is within 1.6 % of the true value.
#[derive(Clone, Debug)]
pub struct LatencyHistogram {
    counts: Vec<u64>,
    total: u64,
    max: u64,
    sum: u128,
}

const SUB_BITS: u32 = 6;
const SUB: usize = 1 << SUB_BITS;

impl Default for LatencyHistogram {
    fn default() -> Self {
        LatencyHistogram {
            counts: vec![0; (64 - SUB_BITS as usize + 1) * SUB],
            total: 0,
            max: 0,
            sum: 0,
        }
    }
}

impl LatencyHistogram {
    fn index(v: u64) -> usize {
        if v < SUB as u64 {
            return v as usize;
        }
        let shift = 63 - v.leading_zeros() - SUB_BITS;
        (shift as usize + 1) * SUB + ((v >> shift) as usize - SUB)
    }

    /// Largest value that falls in bucket `i`.
    fn upper(i: usize) -> u64 {
        if i < SUB {
            return i as u64;
        }
        let shift = (i / SUB - 1) as u32;
        let sub = (i % SUB) as u64;
        ((SUB as u64 + sub + 1) << shift) - 1
    }

    pub fn record(&mut self, d: Duration) {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        if let Some(c) = self.counts.get_mut(Self::index(ns)) {
            *c += 1;
        }
        self.total += 1;
        self.max = self.max.max(ns);
        self.sum += u128::from(ns);
    }

    pub fn merge(&mut self, other: &LatencyHistogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.total += other.total;
        self.max = self.max.max(other.max);
        self.sum += other.sum;
    }

    pub fn count(&self) -> u64 {
        self.total
    }

    /// The `q` quantile (0 ≤ q ≤ 1) in nanoseconds.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Self::upper(i).min(self.max);
            }
        }
        self.max
    }

    pub fn max(&self) -> u64 {
        self.max
    }

    pub fn mean(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.sum as f64 / self.total as f64
        }
    }
}

// ------------------------------------------------------------------ clients

/// How requests are sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    /// OTLP/gRPC.
    Grpc,
    /// OTLP/HTTP (protobuf) over HTTP/1.1.
    Http,
    /// OTLP/HTTP (protobuf) over cleartext HTTP/2.
    H2c,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Grpc => "grpc",
            Protocol::Http => "http",
            Protocol::H2c => "h2c",
        }
    }
}

/// Where to send.
#[derive(Clone, Debug)]
struct Target {
    protocol: Protocol,
    /// `http://host:port` (gRPC) or the full `/v1/metrics` URL (HTTP).
    uri: Uri,
    addr: String,
}

impl Target {
    fn parse(protocol: Protocol, endpoint: &str) -> Result<Target, LoadgenError> {
        let bad = |m: String| LoadgenError::Config(format!("endpoint {endpoint:?}: {m}"));
        let uri: Uri = endpoint.parse().map_err(|e| bad(format!("{e}")))?;
        if uri.scheme_str() != Some("http") {
            return Err(bad("only http:// endpoints are supported".to_owned()));
        }
        let authority = uri
            .authority()
            .ok_or_else(|| bad("no host:port".to_owned()))?
            .clone();
        let port = authority
            .port_u16()
            .ok_or_else(|| bad("no port".to_owned()))?;
        let addr = format!("{}:{port}", authority.host());
        let uri = match protocol {
            Protocol::Grpc => uri,
            Protocol::Http | Protocol::H2c => {
                let path = match uri.path() {
                    "" | "/" => "/v1/metrics",
                    p => p,
                };
                Uri::builder()
                    .scheme("http")
                    .authority(authority)
                    .path_and_query(path)
                    .build()
                    .map_err(|e| bad(format!("{e}")))?
            }
        };
        Ok(Target {
            protocol,
            uri,
            addr,
        })
    }
}

type Http1Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;
type Http2Sender = hyper::client::conn::http2::SendRequest<Full<Bytes>>;

/// One worker's client (the gRPC one boxed: it is the largest by far).
enum Client {
    Grpc(Box<tonic::client::Grpc<H2Service>>),
    Http1(Option<Http1Sender>),
    Http2(Http2Sender),
}

/// How one request ended: points the server refused in a partial success, or
/// an error label (gRPC code, HTTP status, timeout or transport).
type Outcome = Result<u64, String>;

async fn connect_tcp(target: &Target) -> Result<TokioIo<TcpStream>, LoadgenError> {
    let stream = TcpStream::connect(&target.addr)
        .await
        .map_err(|e| LoadgenError::Connect {
            endpoint: target.uri.to_string(),
            message: e.to_string(),
        })?;
    stream
        .set_nodelay(true)
        .map_err(|e| LoadgenError::Connect {
            endpoint: target.uri.to_string(),
            message: e.to_string(),
        })?;
    Ok(TokioIo::new(stream))
}

async fn connect_http1(target: &Target) -> Result<Http1Sender, LoadgenError> {
    let io = connect_tcp(target).await?;
    let (sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| LoadgenError::Connect {
            endpoint: target.uri.to_string(),
            message: e.to_string(),
        })?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

/// An HTTP/2 connection (h2c, or the transport of gRPC) with large flow-control windows.
async fn connect_http2<B>(
    target: &Target,
) -> Result<hyper::client::conn::http2::SendRequest<B>, LoadgenError>
where
    B: hyper::body::Body + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let io = connect_tcp(target).await?;
    let (sender, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .initial_stream_window_size(4 * 1024 * 1024)
        .initial_connection_window_size(16 * 1024 * 1024)
        .handshake(io)
        .await
        .map_err(|e| LoadgenError::Connect {
            endpoint: target.uri.to_string(),
            message: e.to_string(),
        })?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

/// A gRPC transport straight on one hyper HTTP/2 connection: unlike
/// tonic's `Channel` there is no buffer task between the caller and the
/// connection, so a request wakes one task fewer (the generator's CPU per
/// request is what it takes from the system under test).
#[derive(Clone)]
struct H2Service {
    sender: hyper::client::conn::http2::SendRequest<tonic::body::Body>,
    origin: Uri,
}

impl tower::Service<http::Request<tonic::body::Body>> for H2Service {
    type Response = http::Response<hyper::body::Incoming>;
    type Error = hyper::Error;
    type Future = BoxFuture<'static, Result<Self::Response, hyper::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), hyper::Error>> {
        self.sender.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<tonic::body::Body>) -> Self::Future {
        // tonic sets only the path; HTTP/2 needs the scheme and authority.
        let mut parts = self.origin.clone().into_parts();
        parts.path_and_query = request.uri().path_and_query().cloned();
        if let Ok(uri) = Uri::from_parts(parts) {
            *request.uri_mut() = uri;
        }
        Box::pin(self.sender.send_request(request))
    }
}

async fn connect_grpc(target: &Target) -> Result<H2Service, LoadgenError> {
    // gRPC is HTTP/2 with the same windows as h2c.
    Ok(H2Service {
        sender: connect_http2(target).await?,
        origin: target.uri.clone(),
    })
}

/// One client per worker; workers share `connections` connections where the
/// protocol multiplexes (gRPC, h2c), and each has its own with HTTP/1.1.
async fn connect(
    target: &Target,
    workers: usize,
    connections: usize,
) -> Result<Vec<Client>, LoadgenError> {
    let mut clients = Vec::with_capacity(workers);
    match target.protocol {
        Protocol::Grpc => {
            let mut channels = Vec::with_capacity(connections);
            for _ in 0..connections {
                channels.push(connect_grpc(target).await?);
            }
            for w in 0..workers {
                let channel = channels[w % channels.len()].clone();
                let client = tonic::client::Grpc::new(channel)
                    .accept_compressed(CompressionEncoding::Gzip)
                    .max_decoding_message_size(16 * 1024 * 1024)
                    .max_encoding_message_size(usize::MAX);
                clients.push(Client::Grpc(Box::new(client)));
            }
        }
        Protocol::Http => {
            for _ in 0..workers {
                clients.push(Client::Http1(Some(connect_http1(target).await?)));
            }
        }
        Protocol::H2c => {
            let mut senders = Vec::with_capacity(connections);
            for _ in 0..connections {
                senders.push(connect_http2(target).await?);
            }
            for w in 0..workers {
                clients.push(Client::Http2(senders[w % senders.len()].clone()));
            }
        }
    }
    Ok(clients)
}

/// Points refused in a response's partial success.
fn rejected_in(body: Bytes) -> u64 {
    lean::ExportResponse::decode(body)
        .ok()
        .and_then(|r| r.partial_success)
        .map(|p| u64::try_from(p.rejected).unwrap_or(0))
        .unwrap_or(0)
}

impl Client {
    async fn send(&mut self, target: &Target, body: Bytes) -> Outcome {
        match self {
            Client::Grpc(client) => {
                client
                    .ready()
                    .await
                    .map_err(|_| "grpc transport".to_owned())?;
                let response = client
                    .unary::<Bytes, Bytes, _>(
                        tonic::Request::new(body),
                        PathAndQuery::from_static(paths::METRICS),
                        RawCodec,
                    )
                    .await
                    .map_err(|s| format!("grpc {:?}", s.code()))?;
                Ok(rejected_in(response.into_inner()))
            }
            Client::Http1(slot) => {
                let sender = match slot {
                    Some(s) if !s.is_closed() => s,
                    _ => slot.insert(
                        connect_http1(target)
                            .await
                            .map_err(|_| "http connect".to_owned())?,
                    ),
                };
                sender
                    .ready()
                    .await
                    .map_err(|_| "http transport".to_owned())?;
                let request = http_request(target, body, false)?;
                let response = sender
                    .send_request(request)
                    .await
                    .map_err(|_| "http transport".to_owned());
                finish_http(response).await
            }
            Client::Http2(sender) => {
                sender
                    .ready()
                    .await
                    .map_err(|_| "h2c transport".to_owned())?;
                let request = http_request(target, body, true)?;
                let response = sender
                    .send_request(request)
                    .await
                    .map_err(|_| "h2c transport".to_owned());
                finish_http(response).await
            }
        }
    }
}

fn http_request(
    target: &Target,
    body: Bytes,
    absolute: bool,
) -> Result<http::Request<Full<Bytes>>, String> {
    let mut builder = http::Request::post(if absolute {
        target.uri.clone()
    } else {
        target
            .uri
            .path_and_query()
            .map(|p| Uri::from(p.clone()))
            .unwrap_or_else(|| Uri::from_static("/v1/metrics"))
    })
    .header(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-protobuf"),
    );
    if !absolute {
        if let Some(authority) = target.uri.authority() {
            builder = builder.header(http::header::HOST, authority.as_str());
        }
    }
    builder
        .body(Full::new(body))
        .map_err(|_| "http request".to_owned())
}

async fn finish_http(response: Result<http::Response<hyper::body::Incoming>, String>) -> Outcome {
    let response = response?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|_| "http transport".to_owned())?
        .to_bytes();
    if status.is_success() {
        Ok(rejected_in(body))
    } else {
        Err(format!("http {}", status.as_u16()))
    }
}

// ------------------------------------------------------------------ runner

/// Settings of one load run.
#[derive(Clone, Debug)]
pub struct LoadgenConfig {
    pub protocol: Protocol,
    /// `http://127.0.0.1:4317` (gRPC) or `http://127.0.0.1:4318` (HTTP; the
    /// path defaults to `/v1/metrics`).
    pub endpoint: String,
    pub size: Option<Size>,
    pub workload: WorkloadConfig,
    /// Workers, each with one request in flight.
    pub concurrency: usize,
    /// Connections shared by the workers (gRPC and h2c; HTTP/1.1 uses one
    /// per worker).
    pub connections: usize,
    /// Points per second (open loop); `None` sends as fast as possible.
    pub rate: Option<f64>,
    /// Measured time, after the warm-up.
    pub duration: Duration,
    /// Time sent but not measured, first.
    pub warmup: Duration,
    /// Stop after this many passes over every series (still bounded by
    /// warm-up + duration).
    pub cycles: Option<u64>,
    /// Per-request deadline.
    pub timeout: Duration,
}

impl LoadgenConfig {
    fn validate(&self) -> Result<(), LoadgenError> {
        let mut bad = Vec::new();
        if let Err(e) = self.workload.validate() {
            bad.push(e);
        }
        if self.concurrency == 0 {
            bad.push("concurrency must be > 0".to_owned());
        }
        if self.connections == 0 {
            bad.push("connections must be > 0".to_owned());
        }
        let requests = self
            .workload
            .series
            .div_ceil(self.workload.points_per_request.max(1));
        if self.concurrency > requests {
            bad.push(format!(
                "concurrency {} is more than the {requests} requests of a cycle (series / points per request): \
                 two workers would send points of the same series; add series or lower the concurrency",
                self.concurrency
            ));
        }
        if self.rate.is_some_and(|r| !(r.is_finite() && r > 0.0)) {
            bad.push("rate must be a positive number of points per second".to_owned());
        }
        if self.duration.is_zero() {
            bad.push("duration must be > 0".to_owned());
        }
        if self.timeout.is_zero() {
            bad.push("timeout must be > 0".to_owned());
        }
        if bad.is_empty() {
            Ok(())
        } else {
            Err(LoadgenError::Config(bad.join("; ")))
        }
    }
}

/// Latency figures, in milliseconds.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Latency {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
    pub mean: f64,
}

/// What a run measured (only requests started after the warm-up count).
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub protocol: Protocol,
    pub endpoint: String,
    pub size: Option<Size>,
    pub resources: usize,
    pub series: usize,
    pub points_per_request: f64,
    pub bytes_per_request: f64,
    pub concurrency: usize,
    pub connections: usize,
    /// The open-loop rate asked for, points/s (`None`: closed loop, max).
    pub target_points_per_sec: Option<f64>,
    /// Length of the measured window, seconds.
    pub seconds: f64,
    /// Requests answered successfully.
    pub requests: u64,
    /// Points in requests answered successfully.
    pub points: u64,
    pub requests_per_sec: f64,
    pub points_per_sec: f64,
    /// Points refused in partial-success responses.
    pub rejected_points: u64,
    /// Failed requests by error (gRPC code, HTTP status, timeout, transport).
    pub errors: BTreeMap<String, u64>,
    pub latency_ms: Latency,
    /// Fewest full cycles a worker completed (each series got at least this
    /// many points, counting the warm-up).
    pub cycles: u64,
    /// CPU time the generator itself used over the whole run, warm-up
    /// included (Linux only): on a shared machine, what it took from the
    /// system under test.
    pub client_cpu_seconds: Option<f64>,
}

impl Report {
    /// Failed requests in all.
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    /// The human-readable summary.
    pub fn text(&self) -> String {
        let mode = match self.target_points_per_sec {
            Some(r) => format!("open loop at {} points/s", thousands(r)),
            None => "closed loop (max rate)".to_owned(),
        };
        let errors = if self.errors.is_empty() {
            "none".to_owned()
        } else {
            self.errors
                .iter()
                .map(|(k, v)| format!("{k}: {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let l = &self.latency_ms;
        format!(
            "loadgen: {} {} — {} points/request ({:.0} bytes), {} series over {} resources, {} workers on {} connections, {mode}\n\
             \x20 measured  {:.1} s, {} cycles\n\
             \x20 requests  {} ({}/s)\n\
             \x20 points    {} ({}/s)\n\
             \x20 latency   p50 {:.3} ms  p90 {:.3} ms  p99 {:.3} ms  p99.9 {:.3} ms  max {:.3} ms  mean {:.3} ms\n\
             \x20 rejected  {} points\n\
             \x20 errors    {errors}\n\
             \x20 client    {}\n",
            self.protocol.as_str(),
            self.endpoint,
            self.points_per_request,
            self.bytes_per_request,
            self.series,
            self.resources,
            self.concurrency,
            self.connections,
            self.seconds,
            self.cycles,
            thousands(self.requests as f64),
            thousands(self.requests_per_sec),
            thousands(self.points as f64),
            thousands(self.points_per_sec),
            l.p50,
            l.p90,
            l.p99,
            l.p999,
            l.max,
            l.mean,
            self.rejected_points,
            match self.client_cpu_seconds {
                Some(cpu) => format!("{cpu:.2} CPU-seconds used by the generator itself"),
                None => "CPU use unknown".to_owned(),
            },
        )
    }
}

fn thousands(v: f64) -> String {
    let digits = format!("{:.0}", v.max(0.0));
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// What one worker saw.
#[derive(Default)]
struct WorkerStats {
    latency: LatencyHistogram,
    requests: u64,
    points: u64,
    rejected: u64,
    errors: BTreeMap<String, u64>,
    cycles: u64,
    last_done: Option<Instant>,
}

/// What every worker shares.
struct Plan {
    workload: Arc<Workload>,
    target: Target,
    workers: usize,
    /// Seconds per point for one worker (open loop).
    pace: Option<f64>,
    start: Instant,
    measure_from: Instant,
    deadline: Instant,
    cycles: Option<u64>,
    timeout: Duration,
}

async fn worker(w: usize, plan: Arc<Plan>, mut client: Client) -> WorkerStats {
    let mut stats = WorkerStats::default();
    let workload = &plan.workload;
    let mine: Vec<usize> = (w..workload.requests().len())
        .step_by(plan.workers)
        .collect();
    if mine.is_empty() {
        return stats;
    }
    let mut next = plan.pace.map(|per_point| {
        plan.start
            + Duration::from_secs_f64(
                per_point * workload.mean_points() * w as f64 / plan.workers as f64,
            )
    });
    let max_cycles = plan.cycles.unwrap_or(u64::MAX);
    let mut cycle = 0;
    'run: while cycle < max_cycles {
        for &j in &mine {
            let Some(template) = workload.requests().get(j) else {
                continue;
            };
            if let (Some(at), Some(per_point)) = (next.as_mut(), plan.pace) {
                tokio::time::sleep_until(*at).await;
                *at += Duration::from_secs_f64(per_point * template.points() as f64);
            }
            let sent = Instant::now();
            if sent >= plan.deadline {
                break 'run;
            }
            let body = workload.render_template(template, cycle);
            let outcome =
                match tokio::time::timeout(plan.timeout, client.send(&plan.target, body)).await {
                    Ok(o) => o,
                    Err(_) => Err("timeout".to_owned()),
                };
            let done = Instant::now();
            if sent < plan.measure_from {
                continue;
            }
            match outcome {
                Ok(rejected) => {
                    stats.requests += 1;
                    stats.points += template.points();
                    stats.rejected += rejected;
                    stats.latency.record(done - sent);
                }
                Err(label) => *stats.errors.entry(label).or_default() += 1,
            }
            stats.last_done = Some(done);
        }
        cycle += 1;
        stats.cycles = cycle;
    }
    stats
}

/// CPU time of this process so far: the sum over its threads of the first
/// field of `/proc/self/task/*/schedstat` (ns on CPU). `None` off Linux.
fn own_cpu_seconds() -> Option<f64> {
    let tasks = std::fs::read_dir("/proc/self/task").ok()?;
    let mut ns: u64 = 0;
    for task in tasks.flatten() {
        let text = std::fs::read_to_string(task.path().join("schedstat")).unwrap_or_default();
        ns += text
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
    }
    Some(ns as f64 / 1e9)
}

/// Runs the load described by `cfg` and reports what it measured.
pub async fn run(cfg: LoadgenConfig) -> Result<Report, LoadgenError> {
    cfg.validate()?;
    let target = Target::parse(cfg.protocol, &cfg.endpoint)?;
    let workload_cfg = cfg.workload.clone();
    let workload = tokio::task::spawn_blocking(move || Workload::build(&workload_cfg))
        .await
        .map_err(|e| LoadgenError::Workload(e.to_string()))??;
    let workload = Arc::new(workload);
    let clients = connect(&target, cfg.concurrency, cfg.connections).await?;
    let cpu_before = own_cpu_seconds();
    let start = Instant::now();
    let measure_from = start + cfg.warmup;
    let plan = Arc::new(Plan {
        workload: Arc::clone(&workload),
        target: target.clone(),
        workers: cfg.concurrency,
        pace: cfg.rate.map(|r| cfg.concurrency as f64 / r),
        start,
        measure_from,
        deadline: measure_from + cfg.duration,
        cycles: cfg.cycles,
        timeout: cfg.timeout,
    });
    let handles: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(w, client)| tokio::spawn(worker(w, Arc::clone(&plan), client)))
        .collect();
    let mut total = WorkerStats {
        cycles: u64::MAX,
        ..WorkerStats::default()
    };
    for handle in handles {
        let stats = handle
            .await
            .map_err(|e| LoadgenError::Workload(format!("worker failed: {e}")))?;
        total.latency.merge(&stats.latency);
        total.requests += stats.requests;
        total.points += stats.points;
        total.rejected += stats.rejected;
        for (k, v) in stats.errors {
            *total.errors.entry(k).or_default() += v;
        }
        total.cycles = total.cycles.min(stats.cycles);
        total.last_done = total.last_done.max(stats.last_done);
    }
    let end = total.last_done.unwrap_or(plan.deadline).max(measure_from);
    let seconds = (end - measure_from).as_secs_f64().max(1e-9);
    let ms = |ns: u64| ns as f64 / 1e6;
    let l = &total.latency;
    Ok(Report {
        protocol: cfg.protocol,
        endpoint: cfg.endpoint.clone(),
        size: cfg.size,
        resources: cfg.workload.resources,
        series: cfg.workload.series,
        points_per_request: workload.mean_points(),
        bytes_per_request: workload.mean_bytes(),
        concurrency: cfg.concurrency,
        connections: cfg.connections,
        target_points_per_sec: cfg.rate,
        seconds,
        requests: total.requests,
        points: total.points,
        requests_per_sec: total.requests as f64 / seconds,
        points_per_sec: total.points as f64 / seconds,
        rejected_points: total.rejected,
        errors: total.errors,
        latency_ms: Latency {
            p50: ms(l.quantile(0.50)),
            p90: ms(l.quantile(0.90)),
            p99: ms(l.quantile(0.99)),
            p999: ms(l.quantile(0.999)),
            max: ms(l.max()),
            mean: l.mean() / 1e6,
        },
        cycles: if total.cycles == u64::MAX {
            0
        } else {
            total.cycles
        },
        client_cpu_seconds: own_cpu_seconds()
            .zip(cpu_before)
            .map(|(after, before)| after - before),
    })
}

// ------------------------------------------------------------------ sink

/// What a sink received.
#[derive(Debug, Default, Serialize)]
pub struct SinkReport {
    /// Export RPCs received (leakwatch merges queued requests into one).
    pub requests: u64,
    /// `ResourceMetrics`/`ResourceSpans`/`ResourceLogs` in them (top level only, not decoded).
    pub resources: u64,
    pub bytes: u64,
}

#[derive(Default)]
struct SinkCounters {
    requests: AtomicU64,
    resources: AtomicU64,
    bytes: AtomicU64,
}

/// The sink's handler behind leakwatch's raw-bytes export service.
#[derive(Clone)]
struct Blackhole(Arc<SinkCounters>);

impl RawExport for Blackhole {
    type Future = Ready<Result<Bytes, tonic::Status>>;

    fn export(&self, _signal: Signal, body: Bytes) -> Self::Future {
        self.0.requests.fetch_add(1, Ordering::Relaxed);
        self.0.resources.fetch_add(
            leakwatch::otlp::view::top_level_entries(&body),
            Ordering::Relaxed,
        );
        self.0.bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
        // An empty message is a valid Export*ServiceResponse.
        ready(Ok(Bytes::new()))
    }
}

/// Serves a blackhole OTLP/gRPC downstream on `listener` until `stop`
/// resolves: every export is answered OK without being decoded.
pub async fn run_sink(
    listener: TcpListener,
    stop: impl std::future::Future<Output = ()> + Send,
) -> Result<SinkReport, LoadgenError> {
    let addr = listener.local_addr().map_err(|e| LoadgenError::Sink {
        addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        message: e.to_string(),
    })?;
    let counters = Arc::new(SinkCounters::default());
    let services = raw_services(Blackhole(Arc::clone(&counters)), 64 * 1024 * 1024);
    tonic::transport::Server::builder()
        .initial_stream_window_size(4 * 1024 * 1024)
        .initial_connection_window_size(16 * 1024 * 1024)
        .add_service(services.metrics)
        .add_service(services.traces)
        .add_service(services.logs)
        .serve_with_incoming_shutdown(
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
            stop,
        )
        .await
        .map_err(|e| LoadgenError::Sink {
            addr,
            message: e.to_string(),
        })?;
    Ok(SinkReport {
        requests: counters.requests.load(Ordering::Relaxed),
        resources: counters.resources.load(Ordering::Relaxed),
        bytes: counters.bytes.load(Ordering::Relaxed),
    })
}

// ------------------------------------------------------------------ command line

/// `leakwatch-loadgen`: send OTLP metrics at a target or maximal rate and
/// report throughput and latency, or (`--sink`) be a blackhole downstream.
#[derive(clap::Args, Debug, Clone)]
pub struct LoadgenArgs {
    /// Request shape: sdk (40 series per process, one process per request:
    /// 40 points) or collector (50 series per process, 100 processes per
    /// request: 5,000 points). --resources and --points-per-request override it.
    #[arg(long, value_enum, default_value = "sdk")]
    size: Size,
    /// grpc (OTLP/gRPC), http (OTLP/HTTP protobuf over HTTP/1.1) or h2c
    /// (OTLP/HTTP over cleartext HTTP/2).
    #[arg(long, value_enum, default_value = "grpc")]
    protocol: Protocol,
    /// Target [default: http://127.0.0.1:4317 for grpc, http://127.0.0.1:4318/v1/metrics otherwise].
    #[arg(long, value_name = "URL")]
    endpoint: Option<String>,
    /// Processes (OTLP resources) the series are spread over [default: series / 40 (sdk) or / 50 (collector)].
    #[arg(long, value_name = "R")]
    resources: Option<usize>,
    /// Distinct series in all [default: 4,000 (sdk) or 5,000 (collector)].
    #[arg(long, value_name = "N")]
    series: Option<usize>,
    /// Data points per request.
    #[arg(long, value_name = "P")]
    points_per_request: Option<usize>,
    /// Workers, each with one request in flight [default: 16, or the requests of a cycle if fewer].
    #[arg(long)]
    concurrency: Option<usize>,
    /// Connections the workers share (gRPC, h2c); HTTP/1.1 uses one per worker.
    #[arg(long, default_value_t = 2)]
    connections: usize,
    /// Target rate in data points per second (open loop); 0 = as fast as
    /// the target answers (closed loop).
    #[arg(long, default_value_t = 0.0, value_name = "POINTS_PER_SEC")]
    rate: f64,
    /// Measured time (after the warm-up).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Time sent first and not measured.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    warmup: Duration,
    /// Stop after this many passes over every series (0 = until the duration ends).
    #[arg(long, default_value_t = 0)]
    cycles: u64,
    /// Event time between two points of a series (OpenTelemetry SDKs export every 60 s by default).
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    interval: Duration,
    /// Event time of the first points, in seconds since the epoch [default: now].
    #[arg(long, value_name = "UNIX_SECONDS")]
    start_time: Option<u64>,
    /// Every point a new series: each cycle's processes get a new
    /// `loadgen.flood.id` resource attribute (a cardinality flood; with
    /// --cycles C, C × series distinct series in all). Refused points are
    /// counted from partial_success.rejected_data_points as always.
    #[arg(long)]
    distinct: bool,
    /// Buckets per histogram point.
    #[arg(long, default_value_t = 15)]
    histogram_buckets: usize,
    /// Per-request deadline.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    timeout: Duration,
    /// Runtime worker threads of the generator.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Print the report as one JSON object.
    #[arg(long)]
    json: bool,
    /// Instead of sending, serve a blackhole OTLP/gRPC downstream on ADDR
    /// (for measuring forwarding) until SIGINT/SIGTERM or --duration ends.
    #[arg(long, value_name = "ADDR")]
    sink: Option<SocketAddr>,
}

impl LoadgenArgs {
    /// The validated settings.
    pub fn config(&self) -> Result<LoadgenConfig, LoadgenError> {
        let mut workload =
            WorkloadConfig::fleet(self.size, self.series.unwrap_or(self.size.default_series()));
        workload.resources = self.resources.unwrap_or(workload.resources);
        workload.points_per_request = self
            .points_per_request
            .unwrap_or(workload.points_per_request);
        workload.interval = self.interval;
        workload.histogram_buckets = self.histogram_buckets;
        workload.distinct = self.distinct;
        workload.start_unix_nano = match self.start_time {
            Some(s) => s.saturating_mul(1_000_000_000),
            None => SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
                .unwrap_or(1),
        };
        let sized = self.resources.is_none() && self.points_per_request.is_none();
        let endpoint = self
            .endpoint
            .clone()
            .unwrap_or_else(|| match self.protocol {
                Protocol::Grpc => "http://127.0.0.1:4317".to_owned(),
                Protocol::Http | Protocol::H2c => "http://127.0.0.1:4318/v1/metrics".to_owned(),
            });
        let requests_per_cycle = workload.series.div_ceil(workload.points_per_request.max(1));
        let concurrency = self
            .concurrency
            .unwrap_or_else(|| requests_per_cycle.clamp(1, 16));
        let cfg = LoadgenConfig {
            protocol: self.protocol,
            endpoint,
            size: sized.then_some(self.size),
            workload,
            concurrency,
            connections: self.connections,
            rate: (self.rate != 0.0).then_some(self.rate),
            duration: self.duration,
            warmup: self.warmup,
            cycles: (self.cycles > 0).then_some(self.cycles),
            timeout: self.timeout,
        };
        cfg.validate()?;
        if self.threads == 0 {
            return Err(LoadgenError::Config("threads must be > 0".to_owned()));
        }
        Ok(cfg)
    }
}

/// Resolves on SIGINT or SIGTERM.
async fn terminated() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

/// The `leakwatch-loadgen` command. Exit status: 0 when every request
/// succeeded, 1 when some failed, 64 on bad settings, 2 when it could not
/// run at all.
pub fn main(args: LoadgenArgs) -> ExitCode {
    // One thread: a current-thread runtime, so no request ever wakes another
    // thread (cross-thread wake-ups cost the generator more than sending).
    let built = if args.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.threads)
            .enable_all()
            .build()
    };
    let runtime = match built {
        Ok(r) => r,
        Err(e) => {
            eprintln!("leakwatch-loadgen: {}", LoadgenError::Runtime(e));
            return ExitCode::from(2);
        }
    };
    if let Some(addr) = args.sink {
        let lifetime = args.warmup + args.duration;
        let result = runtime.block_on(async move {
            let listener = TcpListener::bind(addr)
                .await
                .map_err(|e| LoadgenError::Sink {
                    addr,
                    message: e.to_string(),
                })?;
            eprintln!("leakwatch-loadgen: sink listening on {addr}");
            run_sink(listener, async move {
                tokio::select! {
                    _ = terminated() => {}
                    _ = tokio::time::sleep(lifetime) => {}
                }
            })
            .await
        });
        return match result {
            Ok(report) => {
                if args.json {
                    println!("{}", serde_json::to_string(&report).unwrap_or_default());
                } else {
                    println!(
                        "sink: {} exports, {} resources, {} bytes",
                        report.requests, report.resources, report.bytes
                    );
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("leakwatch-loadgen: {e}");
                ExitCode::from(2)
            }
        };
    }
    let cfg = match args.config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("leakwatch-loadgen: {e}");
            return ExitCode::from(64);
        }
    };
    match runtime.block_on(run(cfg)) {
        Ok(report) => {
            if args.json {
                println!("{}", serde_json::to_string(&report).unwrap_or_default());
            } else {
                print!("{}", report.text());
            }
            if report.error_count() > 0 {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            eprintln!("leakwatch-loadgen: {e}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use leakwatch::otlp::proto::otlp::common::v1::any_value;
    use leakwatch::otlp::proto::otlp::metrics::v1::metric::Data;

    fn small(series: usize, resources: usize, per_request: usize) -> WorkloadConfig {
        WorkloadConfig {
            resources,
            series,
            points_per_request: per_request,
            interval: Duration::from_secs(10),
            start_unix_nano: 1_700_000_000_000_000_000,
            histogram_buckets: 15,
            distinct: false,
        }
    }

    fn decode(b: Bytes) -> ExportMetricsServiceRequest {
        ExportMetricsServiceRequest::decode(b).expect("valid request")
    }

    fn times(r: &ExportMetricsServiceRequest) -> Vec<u64> {
        let mut out = Vec::new();
        for m in r
            .resource_metrics
            .iter()
            .flat_map(|rm| &rm.scope_metrics)
            .flat_map(|sm| &sm.metrics)
        {
            match m.data.as_ref() {
                Some(Data::Gauge(g)) => out.extend(g.data_points.iter().map(|p| p.time_unix_nano)),
                Some(Data::Histogram(h)) => {
                    out.extend(h.data_points.iter().map(|p| p.time_unix_nano))
                }
                _ => panic!("unexpected data"),
            }
        }
        out
    }

    #[test]
    fn sdk_size_is_one_resource_of_forty_points_per_request() {
        let w = Workload::build(&WorkloadConfig::sized(Size::Sdk)).expect("builds");
        assert_eq!(w.requests().len(), 100);
        let r = decode(w.render(7, 0).expect("request"));
        assert_eq!(r.resource_metrics.len(), 1);
        assert_eq!(times(&r).len(), 40);
    }

    #[test]
    fn collector_size_is_five_thousand_points_over_a_hundred_resources() {
        let w = Workload::build(&WorkloadConfig::sized(Size::Collector)).expect("builds");
        assert_eq!(w.requests().len(), 1);
        let r = decode(w.render(0, 0).expect("request"));
        assert_eq!(r.resource_metrics.len(), 100);
        assert_eq!(times(&r).len(), 5_000);
    }

    #[test]
    fn distinct_mode_makes_every_cycle_a_new_fleet() {
        let mut cfg = small(60, 3, 40);
        cfg.distinct = true;
        let w = Workload::build(&cfg).expect("builds");
        let ids = |index: usize, cycle: u64| {
            let r = decode(w.render(index, cycle).expect("request"));
            r.resource_metrics
                .iter()
                .map(|rm| {
                    let attrs = &rm.resource.as_ref().expect("resource").attributes;
                    let kv = attrs
                        .iter()
                        .find(|kv| kv.key == FLOOD_ATTRIBUTE)
                        .expect("flood id");
                    match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                        Some(any_value::Value::StringValue(s)) => s.clone(),
                        other => panic!("unexpected {other:?}"),
                    }
                })
                .collect::<Vec<_>>()
        };
        let mut seen = std::collections::BTreeSet::new();
        for cycle in 0..4 {
            for index in 0..w.requests().len() {
                for id in ids(index, cycle) {
                    assert_eq!(id.len(), FLOOD_ID_WIDTH);
                    // A resource split over two requests keeps its id within a cycle.
                    seen.insert(id);
                }
            }
        }
        assert_eq!(seen.len(), 3 * 4);
        assert!(seen.contains("0000000000000011"));
        // Without distinct mode there is no flood id.
        let plain = Workload::build(&small(60, 3, 40)).expect("builds");
        let r = decode(plain.render(0, 0).expect("request"));
        assert!(r.resource_metrics.iter().all(|rm| rm
            .resource
            .as_ref()
            .is_some_and(|res| res.attributes.iter().all(|kv| kv.key != FLOOD_ATTRIBUTE))));
    }

    #[test]
    fn rendering_patches_every_timestamp_and_nothing_else_moves() {
        let w = Workload::build(&small(60, 2, 60)).expect("builds");
        let a = decode(w.render(0, 0).expect("request"));
        let b = decode(w.render(0, 3).expect("request"));
        assert!(times(&a).iter().all(|&t| t == w.time_of(0)));
        assert!(times(&b)
            .iter()
            .all(|&t| t == w.time_of(0) + 30_000_000_000));
        // Same series, same order: only timestamps and values differ.
        let names = |r: &ExportMetricsServiceRequest| {
            r.resource_metrics
                .iter()
                .flat_map(|rm| &rm.scope_metrics)
                .flat_map(|sm| &sm.metrics)
                .map(|m| m.name.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(names(&a), names(&b));
    }

    #[test]
    fn histogram_counts_grow_and_a_leaking_resource_grows() {
        let w = Workload::build(&small(200, 10, 200)).expect("builds");
        let count = |r: &ExportMetricsServiceRequest| match r.resource_metrics[0].scope_metrics[1]
            .metrics[0]
            .data
            .as_ref()
        {
            Some(Data::Histogram(h)) => h.data_points[0].count,
            _ => panic!("http histogram expected"),
        };
        let rss = |r: &ExportMetricsServiceRequest, res: usize| match r.resource_metrics[res]
            .scope_metrics[0]
            .metrics[0]
            .data
            .as_ref()
        {
            Some(Data::Gauge(g)) => match g.data_points[0].value {
                Some(number_data_point::Value::AsInt(v)) => v,
                _ => panic!("int value expected"),
            },
            _ => panic!("gauge expected"),
        };
        let c0 = decode(w.render(0, 0).expect("request"));
        let c80 = decode(w.render(0, 80).expect("request"));
        assert!(count(&c80) > count(&c0));
        assert!(rss(&c80, 3) > rss(&c0, 3) + 16 * MIB, "resource 3 leaks");
        assert!(
            (rss(&c80, 2) - rss(&c0, 2)).abs() <= 4 * MIB,
            "resource 2 does not"
        );
    }

    #[test]
    fn series_are_spread_evenly_and_requests_cover_each_once() {
        let cfg = small(1_003, 10, 37);
        let w = Workload::build(&cfg).expect("builds");
        let total: u64 = w.requests().iter().map(Template::points).sum();
        assert_eq!(total, 1_003);
        let per_resource: Vec<usize> = (0..10)
            .map(|r| resource_start(&cfg, r + 1).min(1_003) - resource_start(&cfg, r))
            .collect();
        assert!(
            per_resource.iter().all(|&n| n == 100 || n == 101),
            "{per_resource:?}"
        );
        for s in 0..1_003 {
            let r = resource_of(&cfg, s);
            assert!(
                resource_start(&cfg, r) <= s && (r == 9 || s < resource_start(&cfg, r + 1)),
                "series {s} → resource {r}"
            );
        }
    }

    #[test]
    fn the_catalog_tracks_every_generated_metric() {
        let catalog = leakwatch::catalog::Catalog::builtin();
        for k in 0..40 {
            let (attrs, _) = series_of(0, k);
            let pairs: Vec<(String, String)> = attrs
                .iter()
                .map(|kv| {
                    let v = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                        Some(any_value::Value::StringValue(s)) => s.clone(),
                        Some(any_value::Value::IntValue(i)) => i.to_string(),
                        _ => String::new(),
                    };
                    (kv.key.clone(), v)
                })
                .collect();
            let borrowed: Vec<(&str, &str)> = pairs
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let kind = Kind::of(k);
            assert!(
                catalog
                    .classify(kind.name(), kind.unit(), &borrowed)
                    .is_some(),
                "{} not tracked",
                kind.name()
            );
        }
    }

    #[test]
    fn histogram_quantiles_are_close() {
        let mut h = LatencyHistogram::default();
        for us in 1..=10_000u64 {
            h.record(Duration::from_micros(us));
        }
        let p99 = h.quantile(0.99) as f64 / 1e3;
        assert!((p99 - 9_900.0).abs() / 9_900.0 < 0.02, "{p99}");
        assert_eq!(h.max(), 10_000_000);
        assert_eq!(h.quantile(1.0), 10_000_000);
        assert_eq!(LatencyHistogram::default().quantile(0.5), 0);
    }

    #[test]
    fn too_much_concurrency_is_refused() {
        let cfg = LoadgenConfig {
            protocol: Protocol::Grpc,
            endpoint: "http://127.0.0.1:4317".to_owned(),
            size: None,
            workload: small(100, 1, 50),
            concurrency: 3,
            connections: 1,
            rate: None,
            duration: Duration::from_secs(1),
            warmup: Duration::ZERO,
            cycles: None,
            timeout: Duration::from_secs(1),
        };
        assert!(
            matches!(cfg.validate(), Err(LoadgenError::Config(m)) if m.contains("concurrency"))
        );
    }
}
