//! A checked, borrowed view of an `ExportMetricsServiceRequest`: the lean
//! decode of the hot path, without allocating.
//!
//! prost decodes into owned structs: a `Vec` per repeated field and a `Bytes`
//! handle (an atomic reference count taken and dropped) per attribute of every
//! data point. On an SDK-sized request that was most of the cost of decoding,
//! though detection only needs to *look* at each field once. So
//! [`MetricsRequest::decode`] walks the wire format in place, with prost's own
//! key and varint decoding, checks everything prost's decode of the lean
//! schema (`proto/leakwatch/lean/v1/lean.proto`) would check and counts the
//! data points; the engine then iterates the same bytes, with no further
//! checks and no allocation.
//!
//! The view means exactly what prost's decode means: a request prost refuses
//! is refused, and one it accepts is seen the same way (the fuzz corpus test
//! compares the two on every input). Encodings that rely on protobuf's merge
//! rules — a non-repeated message field sent twice, two `data` fields in one
//! metric — or that carry groups are legal but odd; such a request is decoded
//! by prost and re-encoded once into the canonical form, which is then walked.

use bytes::Bytes;
use prost::encoding::{decode_varint, WireType};
use prost::{DecodeError, Message};

use crate::otlp::proto::lean;

/// A metrics export request whose encoding was checked, with its point count.
#[derive(Clone, Debug)]
pub struct MetricsRequest {
    buf: Bytes,
    points: u64,
}

impl MetricsRequest {
    /// Checks `body` as prost's lean decode would and counts its data points.
    pub fn decode(body: Bytes) -> Result<Self, DecodeError> {
        if let Ok(points) = check_request(&body) {
            return Ok(MetricsRequest { buf: body, points });
        }
        // Invalid, or only prost's merge rules say what it means: prost gives
        // the error, or the meaning in its (canonical) encoding.
        let decoded = lean::ExportMetricsRequest::decode(body)?;
        let canonical = Bytes::from(decoded.encode_to_vec());
        let points = check_request(&canonical).unwrap_or_else(|Fallback| {
            // Cannot happen: prost's encoding of the lean schema is canonical.
            debug_assert!(false, "prost's encoding is not canonical");
            crate::engine::count_points(&decoded)
        });
        Ok(MetricsRequest {
            buf: canonical,
            points,
        })
    }

    /// Data points in the request.
    pub fn points(&self) -> u64 {
        self.points
    }

    /// The `ResourceMetrics` of the request, in order.
    pub fn resources(&self) -> impl Iterator<Item = ResourceMetricsView<'_>> {
        len_fields(&self.buf, 1).map(ResourceMetricsView::new)
    }
}

/// The entries of field 1 (`resource_metrics`, `resource_spans`,
/// `resource_logs`) at the top level of an export request, without looking
/// inside them; stops at the first malformed field.
pub fn top_level_entries(buf: &[u8]) -> u64 {
    len_fields(buf, 1).count() as u64
}

/// One `ResourceMetrics`.
#[derive(Clone, Copy, Debug)]
pub struct ResourceMetricsView<'a> {
    /// The resource's attributes (raw `KeyValue` encodings).
    pub attributes: Attrs<'a>,
    body: &'a [u8],
}

impl<'a> ResourceMetricsView<'a> {
    fn new(body: &'a [u8]) -> Self {
        let resource = last_len_field(body, 1).unwrap_or(&[]);
        ResourceMetricsView {
            attributes: Attrs {
                msg: resource,
                field: 1,
            },
            body,
        }
    }

    /// Its `ScopeMetrics`, in order.
    pub fn scopes(&self) -> impl Iterator<Item = ScopeMetricsView<'a>> {
        len_fields(self.body, 2).map(|body| ScopeMetricsView {
            name: last_len_field(body, 1)
                .and_then(|scope| last_len_field(scope, 1))
                .unwrap_or(&[]),
            body,
        })
    }
}

/// One `ScopeMetrics`.
#[derive(Clone, Copy, Debug)]
pub struct ScopeMetricsView<'a> {
    /// The instrumentation scope's name (raw bytes).
    pub name: &'a [u8],
    body: &'a [u8],
}

impl<'a> ScopeMetricsView<'a> {
    /// Its metrics, in order.
    pub fn metrics(&self) -> impl Iterator<Item = MetricView<'a>> {
        len_fields(self.body, 2).map(MetricView::new)
    }
}

/// The kinds of `Metric.data`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Gauge,
    Sum,
    Histogram,
    ExponentialHistogram,
    Summary,
}

impl Kind {
    fn of_field(tag: u32) -> Option<Kind> {
        Some(match tag {
            5 => Kind::Gauge,
            7 => Kind::Sum,
            9 => Kind::Histogram,
            10 => Kind::ExponentialHistogram,
            11 => Kind::Summary,
            _ => return None,
        })
    }

    /// Field numbers of a data point's attributes and flags.
    fn point_fields(self) -> PointFields {
        match self {
            Kind::Gauge | Kind::Sum => PointFields {
                attributes: 7,
                flags: 8,
            },
            Kind::Histogram => PointFields {
                attributes: 9,
                flags: 10,
            },
            Kind::ExponentialHistogram => PointFields {
                attributes: 1,
                flags: 10,
            },
            Kind::Summary => PointFields {
                attributes: 7,
                flags: 8,
            },
        }
    }
}

#[derive(Clone, Copy)]
struct PointFields {
    attributes: u32,
    flags: u32,
}

/// One `Metric`.
#[derive(Clone, Copy, Debug)]
pub struct MetricView<'a> {
    /// The metric's name (raw bytes; the engine checks it is UTF-8).
    pub name: &'a [u8],
    /// Its unit (raw bytes).
    pub unit: &'a [u8],
    /// Its data, if any.
    pub data: Option<DataView<'a>>,
}

impl<'a> MetricView<'a> {
    fn new(body: &'a [u8]) -> Self {
        let mut view = MetricView {
            name: &[],
            unit: &[],
            data: None,
        };
        for (tag, value) in fields_ok(body) {
            let Value::Len(bytes) = value else { continue };
            match tag {
                1 => view.name = bytes,
                3 => view.unit = bytes,
                _ => {
                    if let Some(kind) = Kind::of_field(tag) {
                        view.data = Some(DataView::new(kind, bytes));
                    }
                }
            }
        }
        view
    }

    /// Data points of the metric.
    pub fn point_count(&self) -> u32 {
        self.data.map_or(0, |d| d.point_count())
    }
}

/// The `data` of a metric: its kind, temporality and points.
#[derive(Clone, Copy, Debug)]
pub struct DataView<'a> {
    /// Which kind of data.
    pub kind: Kind,
    /// `aggregation_temporality` (0 for gauges and summaries).
    pub temporality: i32,
    /// `is_monotonic` (sums only).
    pub monotonic: bool,
    points: u32,
    body: &'a [u8],
}

impl<'a> DataView<'a> {
    fn new(kind: Kind, body: &'a [u8]) -> Self {
        let mut view = DataView {
            kind,
            temporality: 0,
            monotonic: false,
            points: 0,
            body,
        };
        let has_temporality = matches!(
            kind,
            Kind::Sum | Kind::Histogram | Kind::ExponentialHistogram
        );
        for (tag, value) in fields_ok(body) {
            match (tag, value) {
                (1, Value::Len(_)) => view.points = view.points.saturating_add(1),
                (2, Value::Varint(v)) if has_temporality => view.temporality = v as i32,
                (3, Value::Varint(v)) if kind == Kind::Sum => view.monotonic = v != 0,
                _ => {}
            }
        }
        view
    }

    /// Number of data points.
    pub fn point_count(&self) -> u32 {
        self.points
    }

    /// The data points, in order.
    pub fn points(&self) -> impl Iterator<Item = PointView<'a>> {
        let kind = self.kind;
        len_fields(self.body, 1).map(move |p| PointView::new(kind, p))
    }
}

/// What detection reads of a data point: for number points their value, for
/// histograms and summaries their count.
#[derive(Clone, Copy, Debug)]
pub struct PointView<'a> {
    pub attributes: Attrs<'a>,
    pub start_ns: u64,
    pub t_ns: u64,
    pub value: f64,
    pub flags: u32,
}

impl<'a> PointView<'a> {
    fn new(kind: Kind, body: &'a [u8]) -> Self {
        let fields = kind.point_fields();
        let number = matches!(kind, Kind::Gauge | Kind::Sum);
        let mut view = PointView {
            attributes: Attrs::EMPTY,
            start_ns: 0,
            t_ns: 0,
            // A number point without a value decodes as NaN; a count defaults to 0.
            value: if number { f64::NAN } else { 0.0 },
            flags: 0,
        };
        // The span from the first attribute to the end of the last one: it
        // starts and ends on field boundaries, so walking it later finds the
        // same attributes (encoders write them next to each other, so it
        // usually holds nothing else).
        let (mut first, mut end) = (usize::MAX, 0);
        let mut rest = body;
        while !rest.is_empty() {
            let start = body.len() - rest.len();
            let Ok((tag, value)) = read_field(&mut rest) else {
                break;
            };
            match (tag, value) {
                (tag, Value::Len(_)) if tag == fields.attributes => {
                    first = first.min(start);
                    end = body.len() - rest.len();
                }
                (2, Value::Fixed64(v)) => view.start_ns = v,
                (3, Value::Fixed64(v)) => view.t_ns = v,
                (4, Value::Fixed64(v)) if number => view.value = f64::from_bits(v),
                (6, Value::Fixed64(v)) if number => view.value = v as i64 as f64,
                (4, Value::Fixed64(v)) => view.value = v as f64,
                (tag, Value::Varint(v)) if tag == fields.flags => view.flags = v as u32,
                _ => {}
            }
        }
        if first < end {
            view.attributes = Attrs {
                msg: &body[first..end],
                field: fields.attributes,
            };
        }
        view
    }
}

/// The raw `KeyValue` encodings of a repeated attributes field, borrowed.
#[derive(Clone, Copy, Debug)]
pub struct Attrs<'a> {
    msg: &'a [u8],
    field: u32,
}

impl<'a> Attrs<'a> {
    /// No attributes.
    pub const EMPTY: Attrs<'static> = Attrs { msg: &[], field: 1 };

    /// Each attribute's raw encoding.
    pub fn iter(self) -> impl Iterator<Item = &'a [u8]> {
        len_fields(self.msg, self.field)
    }
}

// ---------------------------------------------------------------- the walk

/// A field's value. Groups never reach here (see [`Fallback`]).
#[derive(Clone, Copy)]
enum Value<'a> {
    Varint(u64),
    Fixed64(u64),
    Fixed32,
    Len(&'a [u8]),
}

impl Value<'_> {
    fn wire_type(&self) -> WireType {
        match self {
            Value::Varint(_) => WireType::Varint,
            Value::Fixed64(_) => WireType::SixtyFourBit,
            Value::Fixed32 => WireType::ThirtyTwoBit,
            Value::Len(_) => WireType::LengthDelimited,
        }
    }
}

/// Why the walk left the request to prost: it is invalid (prost says why), or
/// valid but only protobuf's merge rules say what it means, or it has groups.
#[derive(Debug)]
struct Fallback;

impl From<DecodeError> for Fallback {
    fn from(_: DecodeError) -> Self {
        Fallback
    }
}

/// Reads one field at the start of `buf`, with the checks of prost's
/// `decode_key` and `skip_field` (anything they would refuse, and groups, is
/// left to prost). Keys and lengths are almost always one byte: that case is
/// read inline, the rest by prost's `decode_varint`.
#[inline(always)]
fn read_field<'a>(buf: &mut &'a [u8]) -> Result<(u32, Value<'a>), Fallback> {
    let key = varint(buf)?;
    if key > u64::from(u32::MAX) || key < 8 {
        // Too large, or tag 0.
        return Err(Fallback);
    }
    let tag = (key >> 3) as u32;
    let value = match key & 7 {
        0 => Value::Varint(varint(buf)?),
        1 => {
            let bytes = take(buf, 8)?;
            let mut word = [0u8; 8];
            word.copy_from_slice(bytes);
            Value::Fixed64(u64::from_le_bytes(word))
        }
        2 => {
            let len = usize::try_from(varint(buf)?).map_err(|_| Fallback)?;
            Value::Len(take(buf, len)?)
        }
        5 => {
            take(buf, 4)?;
            Value::Fixed32
        }
        // Groups (3, 4) and the invalid wire types 6 and 7.
        _ => return Err(Fallback),
    };
    Ok((tag, value))
}

#[inline(always)]
fn varint(buf: &mut &[u8]) -> Result<u64, Fallback> {
    match buf.split_first() {
        Some((&byte, rest)) if byte < 0x80 => {
            *buf = rest;
            Ok(u64::from(byte))
        }
        _ => Ok(decode_varint(buf)?),
    }
}

#[inline(always)]
fn take<'a>(buf: &mut &'a [u8], n: usize) -> Result<&'a [u8], Fallback> {
    if n > buf.len() {
        return Err(Fallback);
    }
    let (head, rest) = buf.split_at(n);
    *buf = rest;
    Ok(head)
}

/// The fields of a message, for a checking walk.
#[inline]
fn fields(mut buf: &[u8]) -> impl Iterator<Item = Result<(u32, Value<'_>), Fallback>> {
    std::iter::from_fn(move || (!buf.is_empty()).then(|| read_field(&mut buf)))
}

/// The fields of a message already checked.
#[inline]
fn fields_ok(buf: &[u8]) -> impl Iterator<Item = (u32, Value<'_>)> {
    fields(buf).map_while(Result::ok)
}

/// The values of length-delimited field `tag` of a checked message.
#[inline]
fn len_fields(buf: &[u8], tag: u32) -> impl Iterator<Item = &[u8]> {
    fields_ok(buf).filter_map(move |(t, v)| match v {
        Value::Len(bytes) if t == tag => Some(bytes),
        _ => None,
    })
}

fn last_len_field(buf: &[u8], tag: u32) -> Option<&[u8]> {
    len_fields(buf, tag).last()
}

/// A known field must have its declared wire type (prost's `check_wire_type`).
#[inline(always)]
fn expect(value: Value<'_>, wire_type: WireType) -> Result<Value<'_>, Fallback> {
    if value.wire_type() == wire_type {
        Ok(value)
    } else {
        Err(Fallback)
    }
}

#[inline(always)]
fn expect_len(value: Value<'_>) -> Result<&[u8], Fallback> {
    match value {
        Value::Len(bytes) => Ok(bytes),
        _ => Err(Fallback),
    }
}

/// Checks a whole request; returns its point count.
fn check_request(buf: &[u8]) -> Result<u64, Fallback> {
    let mut points = 0u64;
    for field in fields(buf) {
        let (tag, value) = field?;
        if tag == 1 {
            points += check_resource_metrics(expect_len(value)?)?;
        }
    }
    Ok(points)
}

fn check_resource_metrics(buf: &[u8]) -> Result<u64, Fallback> {
    let mut points = 0u64;
    let mut resources = 0;
    for field in fields(buf) {
        let (tag, value) = field?;
        match tag {
            1 => {
                resources += 1;
                // Resource: repeated bytes attributes = 1.
                check_message(expect_len(value)?, &[(1, WireType::LengthDelimited)])?;
            }
            2 => points += check_scope_metrics(expect_len(value)?)?,
            _ => {}
        }
    }
    if resources > 1 {
        return Err(Fallback);
    }
    Ok(points)
}

fn check_scope_metrics(buf: &[u8]) -> Result<u64, Fallback> {
    let mut points = 0u64;
    let mut scopes = 0;
    for field in fields(buf) {
        let (tag, value) = field?;
        match tag {
            1 => {
                scopes += 1;
                // InstrumentationScope: bytes name = 1.
                check_message(expect_len(value)?, &[(1, WireType::LengthDelimited)])?;
            }
            2 => points += u64::from(check_metric(expect_len(value)?)?),
            _ => {}
        }
    }
    if scopes > 1 {
        return Err(Fallback);
    }
    Ok(points)
}

fn check_metric(buf: &[u8]) -> Result<u32, Fallback> {
    let mut points = 0;
    let mut data = 0;
    for field in fields(buf) {
        let (tag, value) = field?;
        match tag {
            1 | 3 => {
                expect_len(value)?;
            }
            _ => {
                if let Some(kind) = Kind::of_field(tag) {
                    data += 1;
                    points = check_data(kind, expect_len(value)?)?;
                }
            }
        }
    }
    if data > 1 {
        // Two `data` fields: the same kind merges, another replaces.
        return Err(Fallback);
    }
    Ok(points)
}

fn check_data(kind: Kind, buf: &[u8]) -> Result<u32, Fallback> {
    let mut points = 0u32;
    let has_temporality = matches!(
        kind,
        Kind::Sum | Kind::Histogram | Kind::ExponentialHistogram
    );
    for field in fields(buf) {
        let (tag, value) = field?;
        match tag {
            1 => {
                check_point(kind, expect_len(value)?)?;
                points = points.saturating_add(1);
            }
            2 if has_temporality => {
                expect(value, WireType::Varint)?;
            }
            3 if kind == Kind::Sum => {
                expect(value, WireType::Varint)?;
            }
            _ => {}
        }
    }
    Ok(points)
}

fn check_point(kind: Kind, buf: &[u8]) -> Result<(), Fallback> {
    const I64: WireType = WireType::SixtyFourBit;
    let f = kind.point_fields();
    let attributes = (f.attributes, WireType::LengthDelimited);
    let flags = (f.flags, WireType::Varint);
    match kind {
        // start, time, as_double, as_int
        Kind::Gauge | Kind::Sum => check_message(
            buf,
            &[attributes, flags, (2, I64), (3, I64), (4, I64), (6, I64)],
        ),
        // start, time, count, sum
        _ => check_message(
            buf,
            &[attributes, flags, (2, I64), (3, I64), (4, I64), (5, I64)],
        ),
    }
}

/// Checks a message whose known fields are all scalars or bytes.
fn check_message(buf: &[u8], known: &[(u32, WireType)]) -> Result<(), Fallback> {
    for field in fields(buf) {
        let (tag, value) = field?;
        if let Some(&(_, wire_type)) = known.iter().find(|(t, _)| *t == tag) {
            expect(value, wire_type)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::otlp::proto::otlp::collector::metrics::v1::ExportMetricsServiceRequest;
    use crate::otlp::proto::otlp::common::v1::{
        any_value, AnyValue, InstrumentationScope, KeyValue,
    };
    use crate::otlp::proto::otlp::metrics::v1::{
        metric::Data, number_data_point, AggregationTemporality, Gauge, Histogram,
        HistogramDataPoint, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum,
    };
    use crate::otlp::proto::otlp::resource::v1::Resource;

    fn kv(k: &str, v: &str) -> KeyValue {
        KeyValue {
            key: k.into(),
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue(v.into())),
            }),
            ..Default::default()
        }
    }

    fn number(t: u64, v: number_data_point::Value, attrs: Vec<KeyValue>) -> NumberDataPoint {
        NumberDataPoint {
            attributes: attrs,
            start_time_unix_nano: 7,
            time_unix_nano: t,
            value: Some(v),
            flags: 0,
            ..Default::default()
        }
    }

    fn sample() -> ExportMetricsServiceRequest {
        ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                resource: Some(Resource {
                    attributes: vec![kv("service.name", "a"), kv("host.name", "h")],
                    ..Default::default()
                }),
                scope_metrics: vec![ScopeMetrics {
                    scope: Some(InstrumentationScope {
                        name: "scope".into(),
                        ..Default::default()
                    }),
                    metrics: vec![
                        Metric {
                            name: "heap".into(),
                            unit: "By".into(),
                            data: Some(Data::Sum(Sum {
                                data_points: vec![
                                    number(
                                        10,
                                        number_data_point::Value::AsInt(5),
                                        vec![kv("space", "old")],
                                    ),
                                    number(11, number_data_point::Value::AsDouble(2.5), vec![]),
                                ],
                                aggregation_temporality: AggregationTemporality::Cumulative as i32,
                                is_monotonic: false,
                            })),
                            ..Default::default()
                        },
                        Metric {
                            name: "gc".into(),
                            data: Some(Data::Histogram(Histogram {
                                data_points: vec![HistogramDataPoint {
                                    time_unix_nano: 12,
                                    count: 3,
                                    flags: 1,
                                    ..Default::default()
                                }],
                                aggregation_temporality: AggregationTemporality::Delta as i32,
                            })),
                            ..Default::default()
                        },
                        Metric {
                            name: "empty".into(),
                            data: Some(Data::Gauge(Gauge::default())),
                            ..Default::default()
                        },
                    ],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    #[test]
    fn reads_what_prost_reads() {
        let req = MetricsRequest::decode(Bytes::from(sample().encode_to_vec())).expect("valid");
        assert_eq!(req.points(), 3);
        let resources: Vec<_> = req.resources().collect();
        assert_eq!(resources.len(), 1);
        assert_eq!(resources[0].attributes.iter().count(), 2);
        let scopes: Vec<_> = resources[0].scopes().collect();
        assert_eq!(scopes[0].name, b"scope");
        let metrics: Vec<_> = scopes[0].metrics().collect();
        assert_eq!(metrics.len(), 3);
        assert_eq!(metrics[0].name, b"heap");
        assert_eq!(metrics[0].unit, b"By");
        let sum = metrics[0].data.expect("data");
        assert_eq!(
            (sum.kind, sum.temporality, sum.monotonic),
            (Kind::Sum, 2, false)
        );
        let points: Vec<_> = sum.points().collect();
        assert_eq!(points[0].value, 5.0);
        assert_eq!(points[0].attributes.iter().count(), 1);
        assert_eq!((points[0].start_ns, points[0].t_ns), (7, 10));
        assert_eq!(points[1].value, 2.5);
        assert_eq!(points[1].attributes.iter().count(), 0);
        let hist = metrics[1].data.expect("data");
        assert_eq!((hist.kind, hist.temporality), (Kind::Histogram, 1));
        let p: Vec<_> = hist.points().collect();
        assert_eq!((p[0].value, p[0].flags, p[0].t_ns), (3.0, 1, 12));
        assert_eq!(metrics[2].point_count(), 0);
    }

    #[test]
    fn number_point_without_value_is_nan() {
        let mut r = sample();
        if let Some(Data::Sum(s)) = &mut r.resource_metrics[0].scope_metrics[0].metrics[0].data {
            s.data_points[0].value = None;
        }
        let req = MetricsRequest::decode(Bytes::from(r.encode_to_vec())).expect("valid");
        let rm = req.resources().next().expect("resource");
        let m = rm
            .scopes()
            .next()
            .expect("scope")
            .metrics()
            .next()
            .expect("metric");
        assert!(m
            .data
            .expect("data")
            .points()
            .next()
            .expect("point")
            .value
            .is_nan());
    }

    #[test]
    fn refuses_what_prost_refuses() {
        let good = sample().encode_to_vec();
        // Truncated anywhere inside: both refuse, or both accept.
        for cut in 0..good.len() {
            let body = Bytes::copy_from_slice(&good[..cut]);
            let ours = MetricsRequest::decode(body.clone())
                .map(|r| r.points())
                .ok();
            let prost = lean::ExportMetricsRequest::decode(body)
                .ok()
                .map(|r| crate::engine::count_points(&r));
            assert_eq!(ours, prost, "cut at {cut}");
        }
        // Field 1 with the wrong wire type.
        assert!(MetricsRequest::decode(Bytes::from_static(&[0x08, 0x01])).is_err());
        // Tag 0.
        assert!(MetricsRequest::decode(Bytes::from_static(&[0x02, 0x00])).is_err());
        // An end-group with no start.
        assert!(MetricsRequest::decode(Bytes::from_static(&[0x0c])).is_err());
    }

    #[test]
    fn merge_rules_go_through_prost() {
        // The same request twice in one body is, by protobuf's rules, one
        // request with the resources of both: canonical, no fallback needed.
        let one = sample().encode_to_vec();
        let twice = [one.clone(), one.clone()].concat();
        let req = MetricsRequest::decode(Bytes::from(twice)).expect("valid");
        assert_eq!(req.points(), 6);
        // A metric with two `data` fields of the same kind merges their points.
        let mut metric = Vec::new();
        prost::encoding::bytes::encode(1, &b"m".to_vec(), &mut metric);
        let gauge = Gauge {
            data_points: vec![number(1, number_data_point::Value::AsDouble(1.0), vec![])],
        };
        prost::encoding::message::encode(5, &gauge, &mut metric);
        prost::encoding::message::encode(5, &gauge, &mut metric);
        let mut scope = Vec::new();
        prost::encoding::bytes::encode(2, &metric, &mut scope);
        let mut rm = Vec::new();
        prost::encoding::bytes::encode(2, &scope, &mut rm);
        let mut body = Vec::new();
        prost::encoding::bytes::encode(1, &rm, &mut body);
        let req = MetricsRequest::decode(Bytes::from(body.clone())).expect("valid");
        let prost_points = crate::engine::count_points(
            &lean::ExportMetricsRequest::decode(&body[..]).expect("valid"),
        );
        assert_eq!(prost_points, 2);
        assert_eq!(req.points(), 2);
    }

    #[test]
    fn groups_in_unknown_fields_are_skipped_like_prost() {
        let mut body = sample().encode_to_vec();
        // Field 9, a group holding a varint field, then its end.
        body.extend_from_slice(&[(9 << 3) | 3, 0x08, 0x01, (9 << 3) | 4]);
        let req = MetricsRequest::decode(Bytes::from(body)).expect("valid");
        assert_eq!(req.points(), 3);
    }
}
