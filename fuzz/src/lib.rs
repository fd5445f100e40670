//! Fuzz harnesses: one function per target, shared by the cargo-fuzz targets
//! (`fuzz/fuzz_targets/*.rs`) and the corpus replay test
//! (`tests/fuzz_corpus.rs`, which includes this file with `#[path]`), so CI
//! replays exactly what the fuzzer ran.
//!
//! Every harness takes arbitrary bytes, drives one of leakwatch's decode paths
//! (or the detector) the way the servers do, and panics when an invariant
//! breaks — a panic is a finding. Besides "no panic", each checks what must
//! hold for any input:
//!
//! - `metrics_export`: the lean view decodes everything the full OTLP types
//!   decode and counts the same points; the export path refuses only what is
//!   malformed; series-limit refusals remove exactly the refused points from
//!   what would be forwarded; summaries and leak events hold no NaN/∞.
//! - `traces_logs_export`: same decode agreement and item counts for spans
//!   and log records.
//! - `http_json`: whatever OTLP/JSON converts is valid protobuf that the
//!   export path accepts, with the same item count.
//! - `decompress`: output never exceeds the limit; raising the limit never
//!   changes an accepted output.
//! - `detector`: arbitrary sample sequences over several series of one
//!   process: guards classify NaN/0-time correctly, the lifecycle only moves
//!   ok → suspected → confirmed → ok, and summaries and events are finite.
//!
//! The harnesses depend only on `leakwatch` and crates it already depends on
//! (`bytes`, `prost`, `serde_json`), so the replay test needs nothing extra.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use leakwatch::catalog::{Catalog, Classified, Role};
use leakwatch::detector::{
    DetectorConfig, LeakEvent, LeakEventKind, LeakState, Observation, ResourceDetector,
    ResourceSummary, Sample, SeriesDetector, SeriesSummary, Temporality, TrendSummary,
};
use leakwatch::engine::{Engine, EngineConfig, EngineEvent};
use leakwatch::notify::{self, Notifier};
use leakwatch::ops::limiter::MemoryLimiter;
use leakwatch::ops::telemetry::Telemetry;
use leakwatch::otlp::proto::lean;
use leakwatch::otlp::proto::otlp::collector::logs::v1::ExportLogsServiceRequest;
use leakwatch::otlp::proto::otlp::collector::metrics::v1::ExportMetricsServiceRequest;
use leakwatch::otlp::proto::otlp::collector::trace::v1::ExportTraceServiceRequest;
use leakwatch::otlp::proto::otlp::metrics::v1::metric::Data;
use leakwatch::otlp::signal::{Protocol, Signal};
use leakwatch::pipeline::{ExportError, Ingress};
use leakwatch::receiver;
use prost::Message;

/// A fuzz target: its name (the corpus folder) and its harness.
pub type Target = (&'static str, fn(&[u8]));

/// Every target, in the order `scripts/fuzz.sh` runs them.
pub const TARGETS: [Target; 5] = [
    ("metrics_export", metrics_export),
    ("traces_logs_export", traces_logs_export),
    ("http_json", http_json),
    ("decompress", decompress),
    ("detector", detector),
];

/// Series limit of the fuzzed engine: small, so that refusals (and the
/// re-encoding of what is forwarded) are reached.
const MAX_SERIES: usize = 8;

fn engine_config() -> EngineConfig {
    EngineConfig {
        max_series: MAX_SERIES,
        idle_timeout: Duration::from_secs(600),
        max_forward_jump: Duration::from_secs(600),
        // Windows in seconds so that fuzzed timestamps a few seconds apart
        // fill buckets and reach the trend fits.
        detector: DetectorConfig::with_windows(Duration::from_secs(60), Duration::from_secs(120)),
        catalog: Catalog::builtin(),
    }
}

fn ingress() -> Ingress {
    let telemetry = Arc::new(Telemetry::new());
    Ingress {
        engine: Arc::new(Engine::new(engine_config(), Arc::clone(&telemetry))),
        queue: None,
        events: Notifier::counting(Arc::clone(&telemetry)),
        telemetry,
        token: None,
        max_decompressed_bytes: 1 << 20,
        retry_after: Duration::from_secs(1),
        limiter: Arc::new(MemoryLimiter::unlimited()),
    }
}

// ------------------------------------------------------------------ metrics

/// gRPC and HTTP protobuf metrics: `data` is the body of an
/// `ExportMetricsServiceRequest`, exactly as the receivers hand it on.
pub fn metrics_export(data: &[u8]) {
    check_metrics(Bytes::copy_from_slice(data), Protocol::Grpc);
}

fn full_points(request: &ExportMetricsServiceRequest) -> u64 {
    request
        .resource_metrics
        .iter()
        .flat_map(|rm| &rm.scope_metrics)
        .flat_map(|sm| &sm.metrics)
        .map(|m| match m.data.as_ref() {
            None => 0,
            Some(Data::Gauge(g)) => g.data_points.len() as u64,
            Some(Data::Sum(s)) => s.data_points.len() as u64,
            Some(Data::Histogram(h)) => h.data_points.len() as u64,
            Some(Data::ExponentialHistogram(h)) => h.data_points.len() as u64,
            Some(Data::Summary(s)) => s.data_points.len() as u64,
        })
        .sum()
}

fn check_metrics(body: Bytes, protocol: Protocol) {
    let lean = lean::ExportMetricsRequest::decode(body.clone());
    let full = ExportMetricsServiceRequest::decode(body.clone());
    // The hot path's borrowed view means what prost's lean decode means.
    let view = leakwatch::otlp::view::MetricsRequest::decode(body.clone());
    match (&lean, &view) {
        (Ok(lean), Ok(view)) => assert_eq!(
            view.points(),
            leakwatch::otlp::count::count_points(lean),
            "the view and prost count different points"
        ),
        (Err(_), Err(_)) => {}
        (Ok(_), Err(e)) => panic!("prost decodes it but the view refuses it: {e}"),
        (Err(e), Ok(_)) => panic!("the view accepts what prost refuses: {e}"),
    }
    if let Ok(full) = &full {
        let lean = lean.as_ref().unwrap_or_else(|e| {
            panic!("the full OTLP types decode it but the lean view fails: {e}")
        });
        assert_eq!(
            leakwatch::otlp::count::count_points(lean),
            full_points(full),
            "lean and full decodes count different points"
        );
    }

    // The export path, as both receivers call it.
    let ingress = ingress();
    let accepted = ingress.export(Signal::Metrics, protocol, body.clone());
    match (&lean, &accepted) {
        (Err(_), Ok(_)) => panic!("the lean view does not decode it, yet it was accepted"),
        (Ok(_), Err(ExportError::Malformed(message))) => assert!(
            full.is_err(),
            "a request the full OTLP types decode was refused as malformed: {message}"
        ),
        (_, Err(ExportError::Malformed(_))) | (_, Ok(_)) => {}
        (_, Err(other)) => panic!("unexpected refusal without a queue: {other:?}"),
    }

    // The same stage directly, for the refused ordinals.
    let engine = Engine::new(engine_config(), Arc::new(Telemetry::new()));
    let outcome = match engine.ingest_metrics(body.clone()) {
        Ok(o) => o,
        Err(_) => {
            assert!(
                accepted.is_err(),
                "the engine refuses what the export path accepted"
            );
            return;
        }
    };
    let lean = lean.unwrap_or_else(|e| panic!("ingested a request that does not decode: {e}"));
    assert_eq!(outcome.points, leakwatch::otlp::count::count_points(&lean));
    let accepted = accepted.unwrap_or_else(|e| panic!("engine accepts, export refuses: {e}"));
    assert_eq!(accepted.rejected, outcome.rejected.len() as u64);
    assert!(
        outcome.rejected.windows(2).all(|w| w[0] < w[1]),
        "refused ordinals are not strictly ascending: {:?}",
        outcome.rejected
    );
    assert!(outcome
        .rejected
        .last()
        .is_none_or(|&o| u64::from(o) < outcome.points));
    if !outcome.rejected.is_empty() {
        // What would be forwarded: exactly the accepted points.
        match leakwatch::otlp::edit::without_points(&body, &outcome.rejected) {
            Ok(forward) => {
                let kept = ExportMetricsServiceRequest::decode(forward)
                    .unwrap_or_else(|e| panic!("the re-encoded request does not decode: {e}"));
                assert_eq!(
                    full_points(&kept),
                    outcome.points - outcome.rejected.len() as u64,
                    "the forwarded request does not hold exactly the accepted points"
                );
            }
            Err(e) => assert!(
                full.is_err(),
                "without_points fails on a request the full types decode: {e}"
            ),
        }
    }
    check_events(&outcome.events);

    // Again: every point is now a duplicate, and nothing may change that
    // breaks the invariants.
    let again = engine
        .ingest_metrics(body)
        .unwrap_or_else(|e| panic!("a request ingested once is refused the second time: {e}"));
    check_events(&again.events);
    check_events(&engine.evict_idle().events);
    check_views(&engine);
    check_views(&ingress.engine);
}

fn check_events(events: &[EngineEvent]) {
    for e in events {
        check_event(&e.event);
    }
    if !events.is_empty() {
        let encoded = notify::log_request(events, 1).encode_to_vec();
        ExportLogsServiceRequest::decode(&encoded[..])
            .unwrap_or_else(|e| panic!("leak event log records do not decode: {e}"));
    }
}

fn check_views(engine: &Engine) {
    for s in engine.series_views(None) {
        check_series_summary(&s.trend);
    }
    for r in engine.resource_views() {
        check_resource_summary(&r.summary);
    }
    // The admin API serialises both.
    serde_json::to_vec(&engine.series_views(None))
        .unwrap_or_else(|e| panic!("series views do not serialise: {e}"));
    serde_json::to_vec(&engine.resource_views())
        .unwrap_or_else(|e| panic!("resource views do not serialise: {e}"));
}

// ------------------------------------------------------- traces and logs

/// gRPC and HTTP protobuf traces and logs: the first byte picks the signal,
/// the rest is the request body.
pub fn traces_logs_export(data: &[u8]) {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let signal = if selector & 1 == 0 {
        Signal::Traces
    } else {
        Signal::Logs
    };
    check_passthrough(signal, Bytes::copy_from_slice(body), Protocol::Grpc);
}

fn full_items(signal: Signal, body: Bytes) -> Result<u64, prost::DecodeError> {
    Ok(match signal {
        Signal::Traces => ExportTraceServiceRequest::decode(body)?
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .map(|s| s.spans.len() as u64)
            .sum(),
        Signal::Logs => ExportLogsServiceRequest::decode(body)?
            .resource_logs
            .iter()
            .flat_map(|r| &r.scope_logs)
            .map(|s| s.log_records.len() as u64)
            .sum(),
        Signal::Metrics => full_points(&ExportMetricsServiceRequest::decode(body)?),
    })
}

fn check_passthrough(signal: Signal, body: Bytes, protocol: Protocol) {
    let lean = leakwatch::otlp::count::count_items(signal, body.clone());
    if let Ok(full) = full_items(signal, body.clone()) {
        match &lean {
            Ok(n) => assert_eq!(*n, full, "lean and full decodes count different items"),
            Err(e) => panic!("the full OTLP types decode it but the lean view fails: {e}"),
        }
    }
    match (ingress().export(signal, protocol, body), lean) {
        (Ok(_), Ok(_)) | (Err(ExportError::Malformed(_)), Err(_)) => {}
        (Ok(_), Err(e)) => panic!("accepted a request that does not decode: {e}"),
        (Err(e), Ok(_)) => panic!("refused a request that decodes: {e}"),
        (Err(e), Err(_)) => panic!("a request that does not decode is refused as {e:?}"),
    }
}

// ----------------------------------------------------------------- OTLP/JSON

/// HTTP OTLP/JSON: the first byte picks the signal, the rest is the JSON
/// body. What converts is checked like a protobuf request.
pub fn http_json(data: &[u8]) {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let signal = Signal::ALL[usize::from(selector) % Signal::ALL.len()];
    match receiver::http::json_to_protobuf(signal, body) {
        Ok(protobuf) => {
            let items = full_items(signal, protobuf.clone()).unwrap_or_else(|e| {
                panic!("OTLP/JSON converted to protobuf that does not decode: {e}")
            });
            if signal == Signal::Metrics {
                check_json_points_kept(body, &protobuf);
                // Metric names come from JSON strings: always UTF-8, so the
                // whole request must be accepted.
                check_metrics(protobuf.clone(), Protocol::HttpJson);
            } else {
                check_passthrough(signal, protobuf.clone(), Protocol::HttpJson);
            }
            assert_eq!(
                leakwatch::otlp::count::count_items(signal, protobuf).ok(),
                Some(items)
            );
        }
        Err(ExportError::Malformed(_)) => {}
        Err(other) => panic!("OTLP/JSON refused as {other:?}"),
    }
}

/// A converted OTLP/JSON metrics request keeps every data point the JSON
/// holds, and every value: nothing is dropped silently (the serde derives
/// of `opentelemetry-proto` turn errors inside a flattened oneof into
/// `None`).
///
/// Its walk over the JSON tree repeats `receiver::json`'s on purpose: it is
/// the fuzz oracle, an independent count to hold the converter against, so
/// it must not share the converter's code.
fn check_json_points_kept(body: &[u8], protobuf: &Bytes) {
    use serde_json::Value;
    let Ok(tree) = serde_json::from_slice::<Value>(body) else {
        panic!("converted, yet not JSON");
    };
    let list = |v: &Value, key: &str| -> Vec<Value> {
        v.get(key)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let (mut points, mut valued) = (0u64, 0u64);
    for rm in list(&tree, "resourceMetrics") {
        for sm in list(&rm, "scopeMetrics") {
            for m in list(&sm, "metrics") {
                for kind in [
                    "gauge",
                    "sum",
                    "histogram",
                    "exponentialHistogram",
                    "summary",
                ] {
                    let Some(data) = m.get(kind).filter(|d| !d.is_null()) else {
                        continue;
                    };
                    for p in list(data, "dataPoints") {
                        points += 1;
                        let has = |k: &str| p.get(k).is_some_and(|v| !v.is_null());
                        if matches!(kind, "gauge" | "sum") && (has("asDouble") || has("asInt")) {
                            valued += 1;
                        }
                    }
                }
            }
        }
    }
    let request = ExportMetricsServiceRequest::decode(protobuf.clone())
        .unwrap_or_else(|e| panic!("converted protobuf does not decode: {e}"));
    let number_points = request
        .resource_metrics
        .iter()
        .flat_map(|rm| &rm.scope_metrics)
        .flat_map(|sm| &sm.metrics)
        .flat_map(|m| match m.data.as_ref() {
            Some(Data::Gauge(g)) => g.data_points.as_slice(),
            Some(Data::Sum(s)) => s.data_points.as_slice(),
            _ => &[],
        });
    let kept_values = number_points.filter(|p| p.value.is_some()).count() as u64;
    assert_eq!(
        (full_points(&request), kept_values),
        (points, valued),
        "OTLP/JSON (points, values) silently lost in the conversion"
    );
}

// ------------------------------------------------------------- decompression

const ENCODINGS: [Option<&str>; 8] = [
    Some("gzip"),
    Some("zstd"),
    Some("identity"),
    None,
    Some(" GZIP "),
    Some("Zstd"),
    Some("br"),
    Some(""),
];
const LIMITS: [usize; 6] = [0, 1, 100, 4096, 65536, 1 << 20];

/// `Content-Encoding` bodies (HTTP; gRPC's are tonic's): the first byte picks
/// the encoding, the second the decompressed-size limit, the rest is the body.
pub fn decompress(data: &[u8]) {
    let [enc, lim, body @ ..] = data else {
        return;
    };
    let encoding = ENCODINGS[usize::from(*enc) % ENCODINGS.len()];
    let limit = LIMITS[usize::from(*lim) % LIMITS.len()];
    let body = Bytes::copy_from_slice(body);
    let result = receiver::decompress(encoding, body.clone(), limit);
    let plain = matches!(encoding.map(str::trim), None | Some("") | Some("identity"));
    match &result {
        Ok(out) => {
            assert!(out.len() <= limit, "{} bytes out, limit {limit}", out.len());
            if plain {
                assert_eq!(*out, body, "identity changed the body");
            }
        }
        Err(ExportError::TooLarge { size, limit: l }) => {
            assert_eq!(*l, limit);
            assert!(*size > limit);
        }
        Err(ExportError::Malformed(_)) => assert!(!plain, "identity cannot be malformed"),
        Err(ExportError::UnsupportedMediaType(_)) => assert_eq!(encoding, Some("br")),
        Err(other) => panic!("decompression refused as {other:?}"),
    }
    if let Ok(out) = result {
        let bigger = receiver::decompress(encoding, body, limit.saturating_mul(4).max(1))
            .unwrap_or_else(|e| panic!("fits in {limit} bytes but not in 4×: {e}"));
        assert_eq!(out, bigger, "a larger limit changed the output");
    }
}

// ------------------------------------------------------------------ detector

/// Most samples one input feeds (bounds the time per input).
const MAX_SAMPLES: usize = 4096;
/// Event time of the first sample unless the input says otherwise.
const BASE_NS: u64 = 1_700_000_000_000_000_000;

const ROLES: [Role; 8] = [
    Role::HeapUsed,
    Role::HeapAfterGc,
    Role::Rss,
    Role::ContainerMemory,
    Role::MemoryLimit,
    Role::GcCount,
    Role::RequestCount,
    Role::Goroutines,
];
const SCALES: [f64; 4] = [1.0, 1024.0, 1e6, f64::NAN];

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn bytes<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.0.split_first_chunk::<N>()?;
        self.0 = rest;
        Some(*head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.bytes::<1>().map(|[b]| b)
    }
    fn u16(&mut self) -> Option<u16> {
        self.bytes().map(u16::from_le_bytes)
    }
    fn u64(&mut self) -> Option<u64> {
        self.bytes().map(u64::from_le_bytes)
    }
}

/// The detector configuration an input's first byte selects.
pub fn detector_config(selector: u8) -> DetectorConfig {
    let mut cfg = match selector & 3 {
        0 => DetectorConfig::default(),
        1 => DetectorConfig::with_windows(Duration::from_secs(60), Duration::from_secs(120)),
        2 => DetectorConfig::with_windows(Duration::from_secs(2), Duration::from_secs(4)),
        _ => DetectorConfig::with_windows(Duration::from_secs(3600), Duration::from_secs(7200)),
    };
    if selector & 4 != 0 {
        cfg.max_forward_gap = Some(Duration::ZERO);
    }
    if selector & 8 != 0 {
        cfg.max_time_to_limit = Some(Duration::ZERO);
    }
    if selector & 16 != 0 {
        cfg.restart_cycles = 1;
    }
    cfg
}

/// One series of the fuzzed process.
struct Fuzzed {
    detector: SeriesDetector,
    key: u64,
    name: &'static str,
    value: f64,
    start_ns: u64,
}

/// Encoding of detector inputs (for seeds; the inverse of [`detector`]).
pub mod detector_input {
    /// How a record moves time.
    #[derive(Clone, Copy)]
    pub enum Time {
        /// Forward by this many quarter buckets.
        Quarters(u16),
        /// Forward by this many nanoseconds.
        Nanos(u16),
        /// Backward by this many quarter buckets.
        Back(u16),
        /// To this absolute event time.
        At(u64),
    }
    /// How a record sets the value.
    #[derive(Clone, Copy)]
    pub enum Value {
        /// Exactly this value.
        Raw(f64),
        /// The series' previous value plus this many KiB.
        StepKiB(i16),
        /// The series' previous value times (1 + n / 256).
        Scale(i8),
        /// This many KiB.
        KiB(i32),
    }
    /// How a record sets the start time.
    #[derive(Clone, Copy)]
    pub enum Start {
        Zero,
        Same,
        TMinusOne,
        At(u64),
    }

    /// The header: config selector and the series' (role index, scale index).
    pub fn header(config: u8, series: &[(u8, u8)]) -> Vec<u8> {
        let mut out = vec![config, (series.len().clamp(1, 4) - 1) as u8];
        for (role, scale) in series {
            out.push(*role);
            out.push(*scale);
        }
        out
    }

    /// Appends one sample record.
    pub fn record(
        out: &mut Vec<u8>,
        series: u8,
        temporality: u8,
        time: Time,
        start: Start,
        value: Value,
    ) {
        let time_mode = match time {
            Time::Quarters(_) => 0,
            Time::Nanos(_) => 1,
            Time::Back(_) => 2,
            Time::At(_) => 3,
        };
        let start_mode = match start {
            Start::Zero => 0,
            Start::Same => 1,
            Start::TMinusOne => 2,
            Start::At(_) => 3,
        };
        out.push((series & 3) | (temporality & 3) << 2 | time_mode << 4 | start_mode << 6);
        match time {
            Time::Quarters(n) | Time::Nanos(n) | Time::Back(n) => {
                out.extend_from_slice(&n.to_le_bytes())
            }
            Time::At(t) => out.extend_from_slice(&t.to_le_bytes()),
        }
        if let Start::At(s) = start {
            out.extend_from_slice(&s.to_le_bytes());
        }
        match value {
            Value::Raw(v) => {
                out.push(0);
                out.extend_from_slice(&v.to_bits().to_le_bytes());
            }
            Value::StepKiB(n) => {
                out.push(1);
                out.extend_from_slice(&n.to_le_bytes());
            }
            Value::Scale(n) => {
                out.push(2);
                out.extend_from_slice(&n.to_le_bytes());
            }
            Value::KiB(n) => {
                out.push(3);
                out.extend_from_slice(&n.to_le_bytes());
            }
        }
    }
}

/// The detector: arbitrary sample sequences over up to four series of one
/// process (see [`detector_input`] for the encoding).
pub fn detector(data: &[u8]) {
    let mut r = Reader(data);
    let (Some(selector), Some(count)) = (r.u8(), r.u8()) else {
        return;
    };
    let cfg = detector_config(selector);
    let quarter = (cfg.bucket_ns() / 4).max(1);
    let mut series: Vec<Fuzzed> = Vec::new();
    for i in 0..=usize::from(count & 3) {
        let (Some(role), Some(scale)) = (r.u8(), r.u8()) else {
            return;
        };
        let role = ROLES[usize::from(role) % ROLES.len()];
        series.push(Fuzzed {
            detector: SeriesDetector::new(Classified {
                role,
                scale: SCALES[usize::from(scale) % SCALES.len()],
            }),
            key: 0x5eed_0000 + i as u64,
            name: role.as_str(),
            value: 0.0,
            start_ns: 0,
        });
    }
    let mut resource = ResourceDetector::new();
    let mut t_ns = BASE_NS;
    let mut accepted = 0u32;
    for _ in 0..MAX_SAMPLES {
        let Some(head) = r.u8() else { break };
        let idx = usize::from(head & 3) % series.len();
        let temporality = match (head >> 2) & 3 {
            1 => Temporality::Cumulative,
            2 => Temporality::Delta,
            _ => Temporality::Gauge,
        };
        t_ns = match (head >> 4) & 3 {
            0 => t_ns.saturating_add(u64::from(r.u16().unwrap_or(0)) * quarter),
            1 => t_ns.saturating_add(u64::from(r.u16().unwrap_or(0))),
            2 => t_ns.saturating_sub(u64::from(r.u16().unwrap_or(0)) * quarter),
            _ => r.u64().unwrap_or(0),
        };
        let s = &mut series[idx];
        s.start_ns = match head >> 6 {
            0 => 0,
            1 => s.start_ns,
            2 => t_ns.saturating_sub(1),
            _ => r.u64().unwrap_or(0),
        };
        let value = match r.u8().map(|m| m & 3) {
            Some(0) => r.u64().map_or(0.0, f64::from_bits),
            Some(1) => s.value + f64::from(r.bytes().map_or(0, i16::from_le_bytes)) * 1024.0,
            Some(2) => s.value * (1.0 + f64::from(r.bytes().map_or(0, i8::from_le_bytes)) / 256.0),
            Some(_) => f64::from(r.bytes().map_or(0, i32::from_le_bytes)) * 1024.0,
            None => break,
        };
        s.value = if value.is_finite() { value } else { s.value };
        let sample = Sample {
            t_ns,
            start_ns: s.start_ns,
            value,
            temporality,
        };
        let obs = s.detector.observe(&cfg, sample);
        if t_ns == 0 {
            assert_eq!(obs, Observation::MissingTimestamp);
        } else if !value.is_finite() {
            assert_eq!(obs, Observation::NonFinite);
        }
        if !obs.is_accepted() {
            continue;
        }
        assert_eq!(s.detector.last_t_ns(), t_ns, "accepted but not recorded");
        accepted += 1;
        if accepted.is_multiple_of(16) {
            // A summary runs both fits: checked every 16 samples and at the end.
            check_series_summary(&s.detector.summary(&cfg));
        }
        let before = resource.state();
        let event = resource.on_series(&cfg, s.key, s.name, "", &s.detector, t_ns);
        let after = resource.state();
        match &event {
            None => assert_eq!(before, after, "state changed without an event"),
            Some(e) => {
                check_event(e);
                check_series_summary(&s.detector.summary(&cfg));
                assert_eq!(e.t_ns, t_ns, "event not stamped with the sample's time");
                let expected = match e.kind {
                    LeakEventKind::Suspected => (LeakState::Ok, LeakState::Suspected),
                    LeakEventKind::Confirmed => (LeakState::Suspected, LeakState::Confirmed),
                    LeakEventKind::Resolved => {
                        assert_ne!(before, LeakState::Ok, "resolved while ok");
                        (before, LeakState::Ok)
                    }
                };
                assert_eq!((before, after), expected, "{:?} event", e.kind);
            }
        }
        check_resource_summary(&resource.summary(&cfg));
    }
    for s in &series {
        check_series_summary(&s.detector.summary(&cfg));
    }
}

// ---------------------------------------------------------------- invariants

fn finite(what: &str, v: f64) {
    assert!(v.is_finite(), "{what} is {v}");
}

fn check_trend(which: &str, t: &Option<TrendSummary>) {
    if let Some(t) = t {
        finite(&format!("{which}.slope_per_hour"), t.slope_per_hour);
        finite(&format!("{which}.r_squared"), t.r_squared);
        finite(&format!("{which}.n_eff"), t.n_eff);
        finite(&format!("{which}.span_seconds"), t.span_seconds);
    }
}

fn check_series_summary(s: &SeriesSummary) {
    finite("last_value", s.last_value);
    check_trend("short", &s.short);
    check_trend("long", &s.long);
}

fn check_resource_summary(s: &ResourceSummary) {
    finite("growth_bytes_per_hour", s.growth_bytes_per_hour);
    finite("r_squared", s.r_squared);
    finite("window_seconds", s.window_seconds);
    if let Some(t) = s.time_to_limit_seconds {
        assert!(!t.is_nan(), "time_to_limit_seconds is NaN");
    }
    if let Some(l) = s.limit_bytes {
        finite("limit_bytes", l);
    }
}

fn check_event(e: &LeakEvent) {
    finite("event growth_bytes_per_hour", e.growth_bytes_per_hour);
    finite("event r_squared", e.r_squared);
    finite("event window_seconds", e.window_seconds);
    if let Some(t) = e.time_to_limit_seconds {
        assert!(!t.is_nan(), "event time_to_limit_seconds is NaN");
    }
    if let Some(l) = e.limit_bytes {
        finite("event limit_bytes", l);
    }
}
