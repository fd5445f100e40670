//! Replays the committed fuzz corpus (`fuzz/corpus/<target>/*`) through the
//! same harnesses the cargo-fuzz targets run (`fuzz/src/lib.rs`), so CI checks
//! every input the fuzzer ever kept without needing a fuzzer.
//!
//! `write_seeds` (ignored) regenerates the hand-made seeds from real encoded
//! requests: `cargo test --test fuzz_corpus -- --ignored write_seeds`.

mod common;
#[allow(dead_code)]
#[path = "../fuzz/src/lib.rs"]
mod harness;

use std::io::Write;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use common::*;
use harness::detector_input::{header, record, Start, Time, Value};
use leakwatch::otlp::proto::otlp::collector::logs::v1::ExportLogsServiceRequest;
use leakwatch::otlp::proto::otlp::collector::metrics::v1::ExportMetricsServiceRequest;
use leakwatch::otlp::proto::otlp::collector::trace::v1::ExportTraceServiceRequest;
use leakwatch::otlp::proto::otlp::common::v1::{any_value, AnyValue, KeyValue, KeyValueList};
use leakwatch::otlp::proto::otlp::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use leakwatch::otlp::proto::otlp::metrics::v1::{
    metric, AggregationTemporality, Metric, NumberDataPoint, ResourceMetrics, Sum,
};
use leakwatch::otlp::proto::otlp::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;

/// The committed corpus must stay small (it lives in git).
const MAX_CORPUS_BYTES: u64 = 1024 * 1024;

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target)
}

#[test]
fn every_corpus_input_passes_its_harness() {
    let mut failures = Vec::new();
    let mut total_bytes = 0;
    let mut summary = Vec::new();
    for (target, harness) in harness::TARGETS {
        let dir = corpus_dir(target);
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("corpus of {target} missing ({}): {e}", dir.display()))
            .map(|entry| entry.expect("corpus entry").path())
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        assert!(
            !files.is_empty(),
            "corpus of {target} is empty ({})",
            dir.display()
        );
        for file in &files {
            let data = std::fs::read(file).expect("read corpus input");
            total_bytes += data.len() as u64;
            if let Err(panic) = catch_unwind(AssertUnwindSafe(|| harness(&data))) {
                let message = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_default();
                failures.push(format!("{}: {message}", file.display()));
            }
        }
        summary.push(format!("{target}: {}", files.len()));
    }
    println!("replayed {} ({total_bytes} bytes)", summary.join(", "));
    assert!(
        failures.is_empty(),
        "{} corpus inputs fail:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(
        total_bytes <= MAX_CORPUS_BYTES,
        "the committed corpus is {total_bytes} bytes; minimise it (scripts/fuzz.sh --minimize)"
    );
}

// ---------------------------------------------------------------- seeds

/// Event time of the seeds (fixed, so regenerating gives the same bytes).
const T0: u64 = 1_700_000_000_000_000_000;
const SEC: u64 = 1_000_000_000;

/// Checks that the committed seed is what the generator makes now; with
/// `LEAKWATCH_WRITE_SEEDS=1` it (re)writes it instead.
fn write(target: &str, name: &str, bytes: &[u8]) {
    let dir = corpus_dir(target);
    let path = dir.join(format!("seed-{name}"));
    if std::env::var_os("LEAKWATCH_WRITE_SEEDS").is_some() {
        std::fs::create_dir_all(&dir).expect("mkdir corpus");
        std::fs::write(&path, bytes).expect("write seed");
        return;
    }
    let committed = std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; regenerate with LEAKWATCH_WRITE_SEEDS=1 cargo test --test fuzz_corpus",
            path.display()
        )
    });
    assert!(
        committed == bytes,
        "{} is stale; regenerate with LEAKWATCH_WRITE_SEEDS=1 cargo test --test fuzz_corpus",
        path.display()
    );
}

fn with_selector(selector: u8, body: &[u8]) -> Vec<u8> {
    let mut v = vec![selector];
    v.extend_from_slice(body);
    v
}

fn heap_series(points: Vec<NumberDataPoint>) -> Metric {
    Metric {
        name: "v8js.memory.heap.used".into(),
        unit: "By".into(),
        data: Some(metric::Data::Sum(Sum {
            data_points: points,
            aggregation_temporality: AggregationTemporality::Cumulative as i32,
            is_monotonic: false,
        })),
        ..Default::default()
    }
}

/// A kvlist `depth` levels deep.
fn deep_value(depth: usize) -> AnyValue {
    let mut v = AnyValue {
        value: Some(any_value::Value::StringValue("bottom".into())),
    };
    for _ in 0..depth {
        v = AnyValue {
            value: Some(any_value::Value::KvlistValue(KeyValueList {
                values: vec![KeyValue {
                    key: "k".into(),
                    value: Some(v),
                    ..Default::default()
                }],
            })),
        };
    }
    v
}

fn spans(n: usize) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(resource("checkout", "pod-1")),
            scope_spans: vec![ScopeSpans {
                spans: (0..n)
                    .map(|i| Span {
                        trace_id: vec![1; 16],
                        span_id: vec![i as u8 + 1; 8],
                        name: format!("span-{i}"),
                        start_time_unix_nano: T0,
                        end_time_unix_nano: T0 + SEC,
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn logs(bodies: Vec<AnyValue>) -> ExportLogsServiceRequest {
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(resource("checkout", "pod-1")),
            scope_logs: vec![ScopeLogs {
                log_records: bodies
                    .into_iter()
                    .map(|b| LogRecord {
                        time_unix_nano: T0,
                        body: Some(b),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(data).expect("gzip");
    e.finish().expect("gzip")
}

fn metrics_seeds() -> Vec<(&'static str, Vec<u8>)> {
    let leak: Vec<NumberDataPoint> = (0..64)
        .map(|i| number_point(T0 + i * 5 * SEC, 5e7 + i as f64 * 1e6, vec![]))
        .collect();
    let leak = request(resource("leaky", "pod-1"), vec![heap_series(leak)]);

    let mut hostile = vec![
        number_point(T0, 1e8, vec![]),
        number_point(T0, 1e8, vec![]),       // duplicate
        number_point(T0 - SEC, 1e8, vec![]), // out of order
        number_point(T0 + SEC, f64::NAN, vec![]),
        number_point(T0 + 2 * SEC, f64::INFINITY, vec![]),
        number_point(T0 + 3 * SEC, f64::NEG_INFINITY, vec![]),
        number_point(T0 + 4 * SEC, -1e8, vec![]),
        number_point(T0 + 5 * SEC, 1e300, vec![]),
        number_point(0, 1e8, vec![]),
        number_point(u64::MAX, 1e8, vec![]),
        number_point(T0 + 6 * SEC, 0.0, vec![]),
    ];
    hostile.push(NumberDataPoint {
        flags: 1, // no recorded value
        ..number_point(T0 + 7 * SEC, 1e8, vec![])
    });
    let hostile = request(
        resource("hostile", "pod-1"),
        vec![gauge_metric("process.memory.usage", "By", hostile)],
    );

    let many = request(
        resource("many", "pod-1"),
        vec![gauge_metric(
            "process.memory.usage",
            "By",
            (0..12)
                .map(|i| number_point(T0, 1e8, vec![kv("pool", &format!("p{i}"))]))
                .collect(),
        )],
    );

    let empty_lists = ExportMetricsServiceRequest {
        resource_metrics: vec![
            ResourceMetrics::default(),
            ResourceMetrics {
                scope_metrics: vec![Default::default()],
                ..Default::default()
            },
            request(
                resource("empty", "x"),
                vec![
                    Metric {
                        name: "process.memory.usage".into(),
                        ..Default::default()
                    },
                    gauge_metric("process.memory.usage", "By", vec![]),
                ],
            )
            .resource_metrics
            .remove(0),
        ],
    };

    let mut deep_resource = resource("deep", "pod-1");
    deep_resource.attributes.push(KeyValue {
        key: "deep".into(),
        value: Some(deep_value(60)),
        ..Default::default()
    });
    let deep = request(
        deep_resource,
        vec![gauge_metric(
            "process.memory.usage",
            "By",
            vec![number_point(
                T0,
                1e8,
                vec![KeyValue {
                    key: "deep".into(),
                    value: Some(deep_value(120)),
                    ..Default::default()
                }],
            )],
        )],
    );

    // Invalid UTF-8 in a metric name: encode a marker and patch one byte.
    let marked = request(
        resource("bad-name", "pod-1"),
        vec![gauge_metric(
            "process.memory.usagX",
            "By",
            vec![number_point(T0, 1e8, vec![])],
        )],
    )
    .encode_to_vec();
    let at = marked
        .windows(20)
        .position(|w| w == b"process.memory.usagX")
        .expect("marker")
        + 19;
    let mut bad_name = marked;
    bad_name[at] = 0xff;

    vec![
        ("every_point_kind", every_point_kind(T0).encode_to_vec()),
        (
            "unknown_field",
            with_unknown_field(every_point_kind(T0).encode_to_vec()).to_vec(),
        ),
        ("leak", leak.encode_to_vec()),
        ("hostile_points", hostile.encode_to_vec()),
        ("series_limit", many.encode_to_vec()),
        ("empty", Vec::new()),
        ("empty_lists", empty_lists.encode_to_vec()),
        ("deep_attributes", deep.encode_to_vec()),
        ("invalid_utf8_name", bad_name),
    ]
}

fn detector_seeds() -> Vec<(&'static str, Vec<u8>)> {
    // A leaking heap with a stable limit and a steady GC counter.
    let mut leak = header(1, &[(0, 0), (4, 0), (5, 0)]);
    for i in 0..200u16 {
        record(
            &mut leak,
            0,
            0,
            Time::Quarters(1),
            Start::Zero,
            Value::KiB(50_000 + i32::from(i) * 64 + i32::from(i % 5) * 16),
        );
        if i % 4 == 0 {
            record(
                &mut leak,
                1,
                0,
                Time::Nanos(1),
                Start::Zero,
                Value::KiB(200_000),
            );
            record(
                &mut leak,
                2,
                1,
                Time::Nanos(1),
                Start::At(T0),
                Value::KiB(i32::from(i) * 2),
            );
        }
    }
    // A GC sawtooth that is not a leak, with a restart in the middle.
    let mut saw = header(2, &[(0, 1)]);
    for i in 0..300u16 {
        let v = if i == 150 {
            1_000
        } else {
            40_000 + i32::from(i % 10) * 2_000
        };
        record(
            &mut saw,
            0,
            0,
            Time::Quarters(1),
            Start::Zero,
            Value::KiB(v),
        );
    }
    // Grow-then-restart cycles of RSS and a resetting request counter.
    let mut cycles = header(17, &[(2, 0), (6, 0)]);
    for cycle in 0..4 {
        for i in 0..60u16 {
            record(
                &mut cycles,
                0,
                0,
                Time::Quarters(1),
                Start::Zero,
                Value::KiB(30_000 + i32::from(i) * 500),
            );
            record(
                &mut cycles,
                1,
                1,
                Time::Nanos(1),
                Start::At(T0 + cycle),
                Value::KiB(i32::from(i) * 10),
            );
        }
    }
    // Every guard: NaN, ±Inf, negative, huge, t = 0, far future, back in
    // time, duplicates, deltas, odd scales.
    let mut hostile = header(4, &[(0, 3), (7, 2), (6, 1), (3, 0)]);
    let values = [
        Value::Raw(f64::NAN),
        Value::Raw(f64::INFINITY),
        Value::Raw(f64::NEG_INFINITY),
        Value::Raw(-1.0),
        Value::Raw(1e300),
        Value::Raw(f64::MIN_POSITIVE),
        Value::Raw(0.0),
        Value::StepKiB(i16::MIN),
        Value::Scale(i8::MAX),
    ];
    let times = [
        Time::At(0),
        Time::At(u64::MAX),
        Time::Back(4),
        Time::Nanos(0),
        Time::Quarters(u16::MAX),
        Time::At(T0),
    ];
    for (i, v) in values.iter().enumerate() {
        for (j, t) in times.iter().enumerate() {
            record(
                &mut hostile,
                (i + j) as u8,
                (i * j) as u8,
                *t,
                if j % 2 == 0 {
                    Start::Same
                } else {
                    Start::TMinusOne
                },
                *v,
            );
        }
    }
    vec![
        ("leak_with_limit_and_gc", leak),
        ("sawtooth_with_restart", saw),
        ("restart_cycles", cycles),
        ("hostile", hostile),
    ]
}

/// The committed seeds are the generator's current output (so they keep
/// exercising what they were made for).
#[test]
fn committed_seeds_are_current() {
    let metrics = metrics_seeds();
    for (name, body) in &metrics {
        write("metrics_export", &format!("{name}.pb"), body);
    }

    let deep_log = logs(vec![deep_value(90)]);
    let passthrough = [
        ("spans.pb", with_selector(0, &spans(3).encode_to_vec())),
        (
            "logs.pb",
            with_selector(
                1,
                &logs(vec![AnyValue {
                    value: Some(any_value::Value::StringValue("hello".into())),
                }])
                .encode_to_vec(),
            ),
        ),
        ("empty_traces.pb", vec![0]),
        (
            "deep_log_body.pb",
            with_selector(1, &deep_log.encode_to_vec()),
        ),
    ];
    for (name, body) in &passthrough {
        write("traces_logs_export", name, body);
    }

    let json_metrics = serde_json::to_vec(&every_point_kind(T0)).expect("json");
    let json_leak =
        serde_json::to_vec(&ExportMetricsServiceRequest::decode(&metrics[2].1[..]).expect("leak"))
            .expect("json");
    let json_trace = br#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"checkout"}}]},"scopeSpans":[{"scope":{"name":"t"},"spans":[{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","name":"GET /","kind":2,"startTimeUnixNano":"1544712660000000000","endTimeUnixNano":"1544712661000000000","attributes":[{"key":"http.status_code","value":{"intValue":"200"}}]}]}]}]}"#;
    let json_logs = serde_json::to_vec(&logs(vec![deep_value(20)])).expect("json");
    let deep_json = format!(
        "{{\"resourceMetrics\":[{{\"resource\":{{\"attributes\":[{{\"key\":\"a\",\"value\":{}\"stringValue\":\"x\"{}}}]}}}}]}}",
        "{\"kvlistValue\":{\"values\":[{\"key\":\"k\",\"value\":".repeat(200),
        "}]}}".repeat(200)
    );
    for (name, body) in [
        ("metrics.json", with_selector(0, &json_metrics)),
        ("leak.json", with_selector(0, &json_leak)),
        ("trace.json", with_selector(1, json_trace)),
        ("logs_deep.json", with_selector(2, &json_logs)),
        ("too_deep.json", with_selector(0, deep_json.as_bytes())),
        ("empty_object.json", with_selector(0, b"{}")),
    ] {
        write("http_json", name, &body);
    }

    let pb = every_point_kind(T0).encode_to_vec();
    let mut two_members = gzip(&pb[..100]);
    two_members.extend(gzip(&pb[100..]));
    let zeros = vec![0u8; 256 * 1024];
    for (name, body) in [
        ("gzip.bin", [vec![0, 5], gzip(&pb)].concat()),
        (
            "zstd.bin",
            [vec![1, 5], zstd::encode_all(&pb[..], 3).expect("zstd")].concat(),
        ),
        ("gzip_two_members.bin", [vec![4, 5], two_members].concat()),
        ("gzip_bomb.bin", [vec![0, 4], gzip(&zeros)].concat()),
        (
            "zstd_bomb.bin",
            [vec![5, 4], zstd::encode_all(&zeros[..], 19).expect("zstd")].concat(),
        ),
        ("identity.bin", [vec![2, 3], pb.clone()].concat()),
        ("unsupported.bin", vec![6, 0, 1, 2, 3]),
    ] {
        write("decompress", name, &body);
    }

    for (name, body) in detector_seeds() {
        write("detector", &format!("{name}.bin"), &body);
    }
}
