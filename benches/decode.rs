//! Decoding an export request: the lean view leakwatch decodes on the hot
//! path (attributes kept as raw bytes, unused fields skipped) against the
//! full `opentelemetry-proto` decode a collector does.

mod fixtures;

use std::time::Duration;

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use leakwatch::engine::count_points;
use leakwatch::proto::lean;
use leakwatch::proto::otlp::collector::metrics::v1::ExportMetricsServiceRequest;
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

criterion_group!(benches, decode);
criterion_main!(benches);
