//! Detector update: what every point of a tracked series costs once it is
//! identified — `SeriesDetector::observe` plus the resource detector's
//! `on_series`, in event time advancing one interval per pass.

mod fixtures;

use std::time::Duration;

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use leakwatch::catalog::Catalog;
use leakwatch::detector::{DetectorConfig, ResourceDetector, Sample, SeriesDetector, Temporality};
use leakwatch::engine::table;
use leakwatch::otlp::proto::lean;
use prost::Message;

use fixtures::{Fixture, SIZES};

/// One tracked series of the request with its detector.
struct Tracked {
    resource: usize,
    key: u64,
    metric: String,
    detector: SeriesDetector,
    value: f64,
    start_ns: u64,
    temporality: Temporality,
}

/// Every point of `request` the catalog tracks, classified as the engine does.
fn tracked(request: &lean::ExportMetricsRequest, catalog: &Catalog) -> Vec<Tracked> {
    use lean::metric::Data;
    use lean::number_data_point::Value;
    let mut out = Vec::new();
    for (resource, rm) in request.resource_metrics.iter().enumerate() {
        for sm in &rm.scope_metrics {
            for metric in &sm.metrics {
                let name = String::from_utf8_lossy(&metric.name).into_owned();
                let unit = String::from_utf8_lossy(&metric.unit).into_owned();
                let points: Vec<(&[bytes::Bytes], f64, u64, Temporality)> =
                    match metric.data.as_ref() {
                        Some(Data::Gauge(g)) => g
                            .data_points
                            .iter()
                            .map(|p| {
                                let v = match p.value {
                                    Some(Value::AsInt(i)) => i as f64,
                                    Some(Value::AsDouble(d)) => d,
                                    None => f64::NAN,
                                };
                                (
                                    p.attributes.as_slice(),
                                    v,
                                    p.start_time_unix_nano,
                                    Temporality::Gauge,
                                )
                            })
                            .collect(),
                        Some(Data::Histogram(h)) => h
                            .data_points
                            .iter()
                            .map(|p| {
                                (
                                    p.attributes.as_slice(),
                                    p.count as f64,
                                    p.start_time_unix_nano,
                                    Temporality::Cumulative,
                                )
                            })
                            .collect(),
                        _ => Vec::new(),
                    };
                for (attributes, value, start_ns, temporality) in points {
                    let pairs = table::decode_attributes_text(attributes.iter().map(|a| &a[..]));
                    let borrowed: Vec<(&str, &str)> = pairs
                        .iter()
                        .map(|(k, v)| (k.as_str(), v.as_str()))
                        .collect();
                    let Some(classified) = catalog.classify(&name, &unit, &borrowed) else {
                        continue;
                    };
                    out.push(Tracked {
                        resource,
                        key: table::hash_attributes(attributes.iter().map(|a| &a[..]))
                            ^ out.len() as u64,
                        metric: name.clone(),
                        detector: SeriesDetector::new(classified),
                        value,
                        start_ns,
                        temporality,
                    });
                }
            }
        }
    }
    out
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("detector");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    let cfg = DetectorConfig::default();
    let catalog = Catalog::builtin();
    for size in SIZES {
        let fixture = Fixture::new(size);
        let request = lean::ExportMetricsRequest::decode(fixture.request(0, 0)).expect("valid");
        let mut series = tracked(&request, &catalog);
        assert_eq!(
            series.len() as u64,
            fixture.points(),
            "every fixture point is tracked"
        );
        let mut resources: Vec<ResourceDetector> = (0..request.resource_metrics.len())
            .map(|_| ResourceDetector::new())
            .collect();
        let interval = fixture.workload.config().interval.as_nanos() as u64;
        let mut t = fixture.workload.time_of(0);
        group.throughput(Throughput::Elements(series.len() as u64));
        group.bench_function(BenchmarkId::new("update", fixture.name()), |b| {
            b.iter(|| {
                t += interval;
                let mut events = 0usize;
                for s in series.iter_mut() {
                    // Counters grow so that rates are computed, levels wobble.
                    s.value += if s.temporality == Temporality::Cumulative {
                        7.0
                    } else {
                        ((t / interval) % 5) as f64 * 1024.0 - 2048.0
                    };
                    let sample = Sample {
                        t_ns: t,
                        start_ns: s.start_ns,
                        value: s.value.max(0.0),
                        temporality: s.temporality,
                    };
                    if s.detector.observe(&cfg, sample).is_accepted() {
                        if let Some(resource) = resources.get_mut(s.resource) {
                            events += usize::from(
                                resource
                                    .on_series(&cfg, s.key, &s.metric, "", &s.detector, t)
                                    .is_some(),
                            );
                        }
                    }
                }
                black_box(events)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
