//! Decoding an export request: the lean view leakwatch decodes on the hot
//! path (attributes kept as raw bytes, unused fields skipped) against the
//! full `opentelemetry-proto` decode a collector does.
//!
//! `identify/*` measures decoding *and* identifying every point's series:
//! `lean` is what the engine does today (prost lean decode: one `Vec<Bytes>`
//! and one refcounted `Bytes` per attribute, per point, then hashing);
//! `borrowed` is the same work done by walking the borrowed request bytes
//! with no allocation at all — the cost the hot path could have (not used
//! by leakwatch yet; see docs/PERFORMANCE.md).

mod fixtures;

use std::time::Duration;

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use leakwatch::engine::count_points;
use leakwatch::proto::lean;
use leakwatch::proto::otlp::collector::metrics::v1::ExportMetricsServiceRequest;
use leakwatch::series;
use prost::Message;
use xxhash_rust::xxh3::xxh3_64;

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

/// The series key of every point, from the lean view (the engine's way).
fn identify_lean(body: &bytes::Bytes, out: &mut Vec<u64>) {
    use lean::metric::Data;
    out.clear();
    let request = lean::ExportMetricsRequest::decode(body.clone()).expect("valid");
    for rm in &request.resource_metrics {
        let attributes = rm.resource.as_ref().map(|r| r.attributes.as_slice());
        let resource = series::hash_attributes(attributes.unwrap_or(&[]));
        for sm in &rm.scope_metrics {
            let scope =
                series::hash_name(sm.scope.as_ref().map(|s| s.name.as_ref()).unwrap_or(&[]));
            for m in &sm.metrics {
                let name = series::hash_name(&m.name);
                let key = |a: &[bytes::Bytes]| {
                    series::series_key(resource, scope, name, series::hash_attributes(a))
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

/// A protobuf field of a borrowed message.
enum Field<'a> {
    Scalar,
    Fixed64(u64),
    Bytes(&'a [u8]),
}

fn varint(buf: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = buf.split_first()?;
        *buf = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

fn take<'a>(buf: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    let (head, tail) = buf.split_at_checked(n)?;
    *buf = tail;
    Some(head)
}

/// The fields of the message in `buf`, without allocating.
fn fields(mut buf: &[u8]) -> impl Iterator<Item = (u64, Field<'_>)> {
    std::iter::from_fn(move || {
        if buf.is_empty() {
            return None;
        }
        let key = varint(&mut buf)?;
        let field = match key & 7 {
            0 => {
                varint(&mut buf)?;
                Field::Scalar
            }
            1 => Field::Fixed64(u64::from_le_bytes(take(&mut buf, 8)?.try_into().ok()?)),
            2 => {
                let n = usize::try_from(varint(&mut buf)?).ok()?;
                Field::Bytes(take(&mut buf, n)?)
            }
            5 => {
                take(&mut buf, 4)?;
                Field::Scalar
            }
            _ => return None,
        };
        Some((key >> 3, field))
    })
}

fn submessages(buf: &[u8], number: u64) -> impl Iterator<Item = &[u8]> {
    fields(buf).filter_map(move |(n, f)| match f {
        Field::Bytes(b) if n == number => Some(b),
        _ => None,
    })
}

/// Order-independent hash of raw attributes (as `series::hash_attributes`, minus its final mix).
fn hash_raw<'a>(attributes: impl Iterator<Item = &'a [u8]>) -> u64 {
    let (mut sum, mut n) = (0u64, 0u64);
    for a in attributes {
        sum = sum.wrapping_add(xxh3_64(a));
        n += 1;
    }
    sum ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// The series key, time and value of every point, walking the borrowed bytes.
fn identify_borrowed(body: &[u8], out: &mut Vec<(u64, u64, u64)>) {
    out.clear();
    for rm in submessages(body, 1) {
        let resource = submessages(rm, 1)
            .map(|r| hash_raw(submessages(r, 1)))
            .last()
            .unwrap_or(0);
        for sm in submessages(rm, 2) {
            let scope = submessages(sm, 1)
                .flat_map(|s| submessages(s, 1))
                .last()
                .unwrap_or(&[]);
            let scope = series::hash_name(scope);
            for m in submessages(sm, 2) {
                let mut name = series::hash_name(&[]);
                for (n, f) in fields(m) {
                    let attributes_field = match (n, &f) {
                        (1, Field::Bytes(b)) => {
                            name = series::hash_name(b);
                            continue;
                        }
                        (5 | 7, _) => 7,
                        (9, _) => 9,
                        _ => continue,
                    };
                    let Field::Bytes(data) = f else { continue };
                    for p in submessages(data, 1) {
                        let attributes = hash_raw(submessages(p, attributes_field));
                        let (mut t, mut value) = (0, 0);
                        for (n, f) in fields(p) {
                            match (n, f) {
                                (3, Field::Fixed64(v)) => t = v,
                                (4 | 6, Field::Fixed64(v)) => value = v,
                                _ => {}
                            }
                        }
                        out.push((
                            series::series_key(resource, scope, name, attributes),
                            t,
                            value,
                        ));
                    }
                }
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
        let (mut lean_keys, mut walked) = (Vec::new(), Vec::new());
        identify_lean(&body, &mut lean_keys);
        identify_borrowed(&body, &mut walked);
        assert_eq!(lean_keys.len(), walked.len(), "both ways see every point");
        group.bench_function(BenchmarkId::new("lean", fixture.name()), |b| {
            b.iter(|| {
                identify_lean(black_box(&body), &mut lean_keys);
                lean_keys.len()
            })
        });
        group.bench_function(BenchmarkId::new("borrowed", fixture.name()), |b| {
            b.iter(|| {
                identify_borrowed(black_box(&body), &mut walked);
                walked.len()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, decode, identify);
criterion_main!(benches);
