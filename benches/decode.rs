//! Decoding an export request: the checked, borrowed view leakwatch reads on
//! the hot path (`view`: no allocation, attributes as raw bytes, unused fields
//! skipped), prost's decode of the same lean schema (`lean`: one `Vec` per
//! repeated field and one refcounted `Bytes` per attribute, per point; the
//! engine's decode before the view), and the full `opentelemetry-proto`
//! decode a collector does (`full`).
//!
//! `identify/*` measures decoding *and* identifying every point's series, the
//! way the engine does it (`view`) and the way it did (`lean`).

mod fixtures;

use std::time::Duration;

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use leakwatch::engine::count_points;
use leakwatch::engine::table;
use leakwatch::otlp::proto::lean;
use leakwatch::otlp::proto::otlp::collector::metrics::v1::ExportMetricsServiceRequest;
use leakwatch::otlp::view::MetricsRequest;
use prost::Message;

use fixtures::{Fixture, SIZES};

fn decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    for size in SIZES {
        let fixture = Fixture::new(size);
        let body = fixture.request(0, 1);
        group.throughput(Throughput::Elements(fixture.points()));
        group.bench_with_input(
            BenchmarkId::new("view", fixture.name()),
            &body,
            |b, body| {
                b.iter(|| {
                    black_box(
                        MetricsRequest::decode(body.clone())
                            .expect("valid")
                            .points(),
                    )
                })
            },
        );
        group.bench_with_input(
            BenchmarkId::new("lean", fixture.name()),
            &body,
            |b, body| {
                b.iter(|| {
                    let request = lean::ExportMetricsRequest::decode(body.clone()).expect("valid");
                    black_box(count_points(&request))
                })
            },
        );
        group.bench_with_input(
            BenchmarkId::new("full", fixture.name()),
            &body,
            |b, body| {
                b.iter(|| black_box(ExportMetricsServiceRequest::decode(&body[..]).expect("valid")))
            },
        );
    }
    group.finish();
}

/// The series key of every point, from the lean view (the engine's way).
fn identify_lean(body: &bytes::Bytes, out: &mut Vec<u64>) {
    use lean::metric::Data;
    out.clear();
    let request = lean::ExportMetricsRequest::decode(body.clone()).expect("valid");
    for rm in &request.resource_metrics {
        let attributes = rm.resource.as_ref().map(|r| r.attributes.as_slice());
        let resource = table::hash_attributes(attributes.unwrap_or(&[]).iter().map(|a| &a[..]));
        for sm in &rm.scope_metrics {
            let scope = table::hash_name(sm.scope.as_ref().map(|s| s.name.as_ref()).unwrap_or(&[]));
            for m in &sm.metrics {
                let name = table::hash_name(&m.name);
                let key = |a: &[bytes::Bytes]| {
                    let attributes = table::hash_attributes(a.iter().map(|a| &a[..]));
                    table::series_key(resource, scope, name, attributes)
                };
                match m.data.as_ref() {
                    Some(Data::Gauge(g)) => {
                        out.extend(g.data_points.iter().map(|p| key(&p.attributes)))
                    }
                    Some(Data::Sum(g)) => {
                        out.extend(g.data_points.iter().map(|p| key(&p.attributes)))
                    }
                    Some(Data::Histogram(h)) => {
                        out.extend(h.data_points.iter().map(|p| key(&p.attributes)))
                    }
                    _ => {}
                }
            }
        }
    }
}

/// The series key of every point, from the view (the engine's way).
fn identify_view(body: &bytes::Bytes, out: &mut Vec<u64>) {
    out.clear();
    let request = MetricsRequest::decode(body.clone()).expect("valid");
    for rm in request.resources() {
        let resource = table::hash_attributes(rm.attributes.iter());
        for sm in rm.scopes() {
            let scope = table::hash_name(sm.name);
            for m in sm.metrics() {
                let name = table::hash_name(m.name);
                let Some(data) = m.data else { continue };
                out.extend(data.points().map(|p| {
                    let attributes = table::hash_attributes(p.attributes.iter());
                    table::series_key(resource, scope, name, attributes)
                }));
            }
        }
    }
}

fn identify(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode/identify");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    for size in SIZES {
        let fixture = Fixture::new(size);
        let body = fixture.request(0, 1);
        group.throughput(Throughput::Elements(fixture.points()));
        let (mut lean_keys, mut view_keys) = (Vec::new(), Vec::new());
        identify_lean(&body, &mut lean_keys);
        identify_view(&body, &mut view_keys);
        assert_eq!(lean_keys, view_keys, "both ways see the same series");
        group.bench_function(BenchmarkId::new("lean", fixture.name()), |b| {
            b.iter(|| {
                identify_lean(black_box(&body), &mut lean_keys);
                lean_keys.len()
            })
        });
        group.bench_function(BenchmarkId::new("view", fixture.name()), |b| {
            b.iter(|| {
                identify_view(black_box(&body), &mut view_keys);
                view_keys.len()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, decode, identify);
criterion_main!(benches);
