//! Series identification and lookup: hashing each point's identity from the
//! raw bytes of its resource, scope, metric name and attributes, then finding
//! its entry in the sharded series table.

mod fixtures;

use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use leakwatch::proto::lean;
use leakwatch::series::{self, Series, SeriesKey, SeriesTable};
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

/// The series key of every point, as the engine computes it.
fn identify(request: &lean::ExportMetricsRequest, out: &mut Vec<SeriesKey>) {
    out.clear();
    for rm in &request.resource_metrics {
        let resource = series::hash_attributes(
            rm.resource
                .as_ref()
                .map(|r| r.attributes.as_slice())
                .unwrap_or(&[])
                .iter()
                .map(|a| &a[..]),
        );
        for sm in &rm.scope_metrics {
            let scope =
                series::hash_name(sm.scope.as_ref().map(|s| s.name.as_ref()).unwrap_or(&[]));
            for metric in &sm.metrics {
                let name = series::hash_name(&metric.name);
                for attributes in point_attributes(metric) {
                    out.push(series::series_key(
                        resource,
                        scope,
                        name,
                        series::hash_attributes(attributes.iter().map(|a| &a[..])),
                    ));
                }
            }
        }
    }
}

fn blank() -> Series {
    Series {
        resource: 0,
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

        // A table holding a fleet's worth of series (100k), the request's among them.
        let table = SeriesTable::new(1_100_000);
        for k in 0..100_000u64 {
            let _ = table.with_series(
                k.wrapping_mul(0x9E37_79B9_7F4A_7C15),
                true,
                blank,
                |_, _| (),
            );
        }
        for &k in &keys {
            let _ = table.with_series(k, true, blank, |_, _| ());
        }
        group.bench_function(BenchmarkId::new("lookup", fixture.name()), |b| {
            let mut t = 1u64;
            b.iter(|| {
                t += 1;
                for &k in &keys {
                    let _ = table.with_series(k, true, blank, |s, _| {
                        s.last_seen_ns = s.last_seen_ns.max(t)
                    });
                }
            })
        });

        // Two threads on disjoint series of the same table: shard locks must
        // not serialise them.
        group.bench_function(BenchmarkId::new("lookup_2_threads", fixture.name()), |b| {
            let (left, right) = keys.split_at(keys.len() / 2);
            b.iter_custom(|iters| {
                let start = Instant::now();
                std::thread::scope(|s| {
                    for half in [left, right] {
                        let table = &table;
                        s.spawn(move || {
                            for t in 0..iters {
                                for &k in half {
                                    let _ = table.with_series(k, true, blank, |s, _| {
                                        s.last_seen_ns = s.last_seen_ns.max(t)
                                    });
                                }
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

criterion_group!(benches, bench);
criterion_main!(benches);
