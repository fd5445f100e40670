//! Series identification and lookup: hashing each point's identity from the
//! raw bytes of its resource, scope, metric name and attributes, then finding
//! its entry among its resource's series (the resource's entry locked once per
//! resource of the request, as the engine does).
//!
//! Also prints the deterministic part of the memory per series (`series/memory`):
//! the bytes each tracked series holds by construction (its boxed state, its
//! share of its resource's table, its share of the interned names) for the fleet that
//! `scripts/bench.sh --only memory` measures by RSS, 100 series per process, and the bytes
//! of each process's chart history (`engine::history`), with `series/history_record`, the
//! cost of feeding it one point.

mod fixtures;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use dashmap::DashMap;
use leakwatch::engine::table::{
    self, Prehashed, ResourceKey, ResourceSeries, Series, SeriesKey, SeriesTable, Tracked,
};
use leakwatch::engine::{Engine, EngineConfig};
use leakwatch::ops::telemetry::Telemetry;
use leakwatch::otlp::proto::lean;
use leakwatch_tools::loadgen::{Size, Workload, WorkloadConfig};
use prost::Message;

use fixtures::{Fixture, SIZES};

/// The attributes of every point of a metric.
fn point_attributes(metric: &lean::Metric) -> Vec<&[Bytes]> {
    use lean::metric::Data;
    match metric.data.as_ref() {
        Some(Data::Gauge(g)) => g
            .data_points
            .iter()
            .map(|p| p.attributes.as_slice())
            .collect(),
        Some(Data::Sum(s)) => s
            .data_points
            .iter()
            .map(|p| p.attributes.as_slice())
            .collect(),
        Some(Data::Histogram(h)) => h
            .data_points
            .iter()
            .map(|p| p.attributes.as_slice())
            .collect(),
        Some(Data::ExponentialHistogram(h)) => h
            .data_points
            .iter()
            .map(|p| p.attributes.as_slice())
            .collect(),
        Some(Data::Summary(s)) => s
            .data_points
            .iter()
            .map(|p| p.attributes.as_slice())
            .collect(),
        None => Vec::new(),
    }
}

/// The resource and series key of every point, as the engine computes them.
fn identify(request: &lean::ExportMetricsRequest, out: &mut Vec<(ResourceKey, SeriesKey)>) {
    out.clear();
    for rm in &request.resource_metrics {
        let resource = table::hash_attributes(
            rm.resource
                .as_ref()
                .map(|r| r.attributes.as_slice())
                .unwrap_or(&[])
                .iter()
                .map(|a| &a[..]),
        );
        for sm in &rm.scope_metrics {
            let scope = table::hash_name(sm.scope.as_ref().map(|s| s.name.as_ref()).unwrap_or(&[]));
            for metric in &sm.metrics {
                let name = table::hash_name(&metric.name);
                for attributes in point_attributes(metric) {
                    out.push((
                        resource,
                        table::series_key(
                            resource,
                            scope,
                            name,
                            table::hash_attributes(attributes.iter().map(|a| &a[..])),
                        ),
                    ));
                }
            }
        }
    }
}

fn blank() -> Series {
    Series {
        last_seen_ns: 0,
        tracked: None,
    }
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("series");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    for size in SIZES {
        let fixture = Fixture::new(size);
        let request = lean::ExportMetricsRequest::decode(fixture.request(0, 0)).expect("valid");
        let mut keys = Vec::new();
        identify(&request, &mut keys);
        group.throughput(Throughput::Elements(fixture.points()));

        group.bench_function(BenchmarkId::new("identify", fixture.name()), |b| {
            let mut out = Vec::with_capacity(keys.len());
            b.iter(|| {
                identify(black_box(&request), &mut out);
                black_box(out.len())
            })
        });

        // A fleet's worth of series (100k over 1,000 resources), the request's among them.
        let table = SeriesTable::new(1_100_000);
        let resources: DashMap<ResourceKey, ResourceSeries, Prehashed> = DashMap::default();
        for k in 0..100_000u64 {
            let mut r = resources.entry(k % 1_000).or_default();
            let _ = table.with_series(
                &mut r,
                k.wrapping_mul(0x9E37_79B9_7F4A_7C15),
                true,
                blank,
                |_, _| (),
            );
        }
        // The request's points grouped by resource, in order (as they come).
        let mut groups: Vec<(ResourceKey, Vec<SeriesKey>)> = Vec::new();
        for &(r, k) in &keys {
            match groups.last_mut() {
                Some((last, ks)) if *last == r => ks.push(k),
                _ => groups.push((r, vec![k])),
            }
        }
        let lookup = |groups: &[(ResourceKey, Vec<SeriesKey>)], t: u64| {
            for (r, ks) in groups {
                let mut series = resources.entry(*r).or_default();
                for &k in ks {
                    let _ = table.with_series(&mut series, k, true, blank, |s, _| {
                        s.last_seen_ns = s.last_seen_ns.max(t)
                    });
                }
            }
        };
        lookup(&groups, 0);
        group.bench_function(BenchmarkId::new("lookup", fixture.name()), |b| {
            let mut t = 1u64;
            b.iter(|| {
                t += 1;
                lookup(&groups, t);
            })
        });

        // Two threads on disjoint resources of the same table: locks must
        // not serialise them.
        group.bench_function(BenchmarkId::new("lookup_2_threads", fixture.name()), |b| {
            let (left, right) = groups.split_at(groups.len() / 2);
            b.iter_custom(|iters| {
                let start = Instant::now();
                std::thread::scope(|s| {
                    for half in [left, right] {
                        let lookup = &lookup;
                        s.spawn(move || {
                            for t in 0..iters {
                                lookup(half, t);
                            }
                        });
                    }
                });
                start.elapsed()
            })
        });
    }
    group.finish();
}

/// The chunk glibc malloc serves for `size` bytes: the request plus an 8-byte
/// header, rounded up to 16, at least 32.
fn glibc_chunk(size: usize) -> usize {
    ((size + 8 + 15) & !15).max(32)
}

/// jemalloc's size class for `size` bytes (small classes, up to 14 KiB): four
/// classes per doubling above 64 bytes.
fn jemalloc_class(size: usize) -> usize {
    if size <= 16 {
        return size.next_power_of_two().max(8);
    }
    if size <= 64 {
        return size.div_ceil(16) * 16;
    }
    // The power of two below `size`: e.g. 256 for 257..=512, whose classes are 320..=512.
    let group = 1usize << (usize::BITS - 1 - (size - 1).leading_zeros());
    let step = group / 4;
    size.div_ceil(step) * step
}

/// Bytes per tracked series that do not depend on the allocator's history.
fn memory(_c: &mut Criterion) {
    let series = 100_000;
    let mut cfg = WorkloadConfig::fleet(Size::Collector, series);
    cfg.resources = series / 100;
    let workload = Workload::build(&cfg).expect("the workload builds");
    let engine = Engine::new(
        EngineConfig {
            max_series: 2 * series,
            ..EngineConfig::default()
        },
        Arc::new(Telemetry::new()),
    );
    // Two cycles: the second moves the event-time clock (the idle sweep needs it).
    for cycle in 0..2 {
        for i in 0..workload.requests().len() {
            let body = workload.render(i, cycle).expect("request");
            engine.ingest_metrics(body).expect("ingest");
        }
    }
    let tracked = engine.series_views(None).len();
    let names = engine.series_names();
    let boxed = std::mem::size_of::<Tracked>();
    let slot = std::mem::size_of::<(SeriesKey, Series)>();
    // Each resource's series are a table of their own: hashbrown's slack is per resource.
    let per_resource = series / cfg.resources;
    let names_per_series = names.heap_bytes() as f64 / tracked.max(1) as f64;
    println!(
        "series/memory: {} series ({tracked} tracked) of {} processes",
        engine.series_count(),
        cfg.resources
    );
    // Each resource's series are a table of their own (a dense Vec of slots and
    // a hash index of positions): measured as they grew, and after the idle
    // sweep (every 30 s) gave back the Vec's growth slack.
    let grown = engine.series_table_bytes() as f64 / tracked.max(1) as f64;
    engine.evict_idle();
    let table_per_series = engine.series_table_bytes() as f64 / tracked.max(1) as f64;
    println!(
        "series/memory: per tracked series: boxed state {boxed} B (glibc chunk {}, jemalloc class {}), \
         table {table_per_series:.1} B in its resource's table ({slot} B slot, 4 B index position \
         and control byte, with slack; {grown:.1} B before the idle sweep trimmed the slack; \
         {per_resource} series per resource), \
         interned names {names_per_series:.1} B ({} names, {} B)",
        glibc_chunk(boxed),
        jemalloc_class(boxed),
        names.len(),
        names.heap_bytes(),
    );
    let history = std::mem::size_of::<leakwatch::engine::history::History>();
    println!(
        "series/memory: per process: chart history {history} B (glibc chunk {}, jemalloc class {}), \
         {} of {} processes hold one; {:.1} B per tracked series at {per_resource} series per process",
        glibc_chunk(history),
        jemalloc_class(history),
        engine.history_count(),
        engine.resource_count(),
        jemalloc_class(history) as f64 * engine.history_count() as f64 / tracked.max(1) as f64,
    );
    let counters = std::mem::size_of::<leakwatch::engine::history::Counters>();
    println!(
        "series/memory: per process: counter history {counters} B (glibc chunk {}, jemalloc class {}), \
         {} of {} processes hold one; {:.1} B per tracked series at {per_resource} series per process",
        glibc_chunk(counters),
        jemalloc_class(counters),
        engine.counters_count(),
        engine.resource_count(),
        jemalloc_class(counters) as f64 * engine.counters_count() as f64 / tracked.max(1) as f64,
    );
    println!(
        "series/memory: by construction {:.0} B (glibc) / {:.0} B (jemalloc) per tracked series; \
         RSS adds the processes' state and the allocator's overhead (scripts/bench.sh --only memory)",
        glibc_chunk(boxed) as f64 + table_per_series + names_per_series,
        jemalloc_class(boxed) as f64 + table_per_series + names_per_series,
    );
}

/// Feeding a chart history one point (what every accepted memory point of a process's
/// charted series costs on the ingest path).
fn history(c: &mut Criterion) {
    use leakwatch::engine::history::{ChartClass, History};
    let mut group = c.benchmark_group("series/history_record");
    group.throughput(Throughput::Elements(1));
    let mut h = History::new(1, ChartClass::Heap, 0);
    let mut t: u64 = 1_700_000_000_000_000_000;
    let mut v = 100e6;
    group.bench_function("point", |b| {
        b.iter(|| {
            // 15 s between points, 300 s buckets: most points land in the head bucket.
            t += 15_000_000_000;
            v += 1_000.0;
            h.record(300_000_000_000, black_box(t), black_box(v), 0);
        })
    });
    group.finish();
}

criterion_group!(benches, memory, bench, history);
criterion_main!(benches);
