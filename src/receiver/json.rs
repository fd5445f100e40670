//! OTLP/JSON to protobuf.
//!
//! The serde derives of `opentelemetry-proto` read most of OTLP/JSON (hex
//! ids, camelCase, 64-bit integers as strings) but are lenient where the
//! proto3 JSON mapping is not: a double sent as a string (`"NaN"`,
//! `"Infinity"`, `"-Infinity"`, or a numeric string) in a data point's
//! `asDouble` oneof is silently dropped, and a malformed integer string can
//! become 0. This module checks and normalises the JSON tree first, so that a
//! request is either converted faithfully or refused as malformed — never
//! forwarded without its values.

use bytes::Bytes;
use prost::Message;
use serde_json::{Map, Value};

use crate::otlp::proto::otlp::collector::{
    logs::v1 as logs, metrics::v1 as metrics, trace::v1 as trace,
};
use crate::otlp::signal::Signal;
use crate::pipeline::ExportError;

/// Fields that hold a 64-bit unsigned integer (a JSON number or a decimal string).
const U64_FIELDS: &[&str] = &[
    "timeUnixNano",
    "startTimeUnixNano",
    "endTimeUnixNano",
    "observedTimeUnixNano",
    "count",
    "zeroCount",
];
/// Fields that hold a 64-bit signed integer.
const I64_FIELDS: &[&str] = &["asInt", "intValue"];

/// A non-finite `asDouble` of a number data point, restored after decoding
/// (a JSON number cannot hold it): resource, scope, metric, point, value.
type Patch = (usize, usize, usize, usize, f64);

/// Converts an OTLP/JSON export request to protobuf bytes.
pub fn to_protobuf(signal: Signal, body: &[u8]) -> Result<Bytes, ExportError> {
    let bad = |e: String| {
        ExportError::Malformed(format!(
            "invalid OTLP/JSON {} request: {e}",
            signal.as_str()
        ))
    };
    let mut tree: Value = serde_json::from_slice(body).map_err(|e| bad(e.to_string()))?;
    let mut patches = Vec::new();
    let mut expected = Counts::default();
    if signal == Signal::Metrics {
        expected = json_points(&tree);
        take_special_doubles(&mut tree, &mut patches).map_err(bad)?;
    }
    check_integers(&tree, "").map_err(bad)?;
    let encoded = match signal {
        Signal::Metrics => {
            let mut request: metrics::ExportMetricsServiceRequest =
                serde_json::from_value(tree).map_err(|e| bad(e.to_string()))?;
            apply(&mut request, &patches).map_err(bad)?;
            // The serde derives turn an error inside a flattened oneof into
            // `None`: refuse rather than forward a request missing points.
            let decoded = decoded_points(&request);
            if decoded != expected {
                return Err(bad(format!(
                    "{} of {} data points ({} of {} values, {} of {} exemplars with a value) could not be read; check the types of their fields",
                    expected.points.saturating_sub(decoded.points),
                    expected.points,
                    expected.valued.saturating_sub(decoded.valued),
                    expected.valued,
                    expected.exemplars_valued.saturating_sub(decoded.exemplars_valued),
                    expected.exemplars_valued,
                )));
            }
            request.encode_to_vec()
        }
        Signal::Traces => serde_json::from_value::<trace::ExportTraceServiceRequest>(tree)
            .map_err(|e| bad(e.to_string()))?
            .encode_to_vec(),
        Signal::Logs => serde_json::from_value::<logs::ExportLogsServiceRequest>(tree)
            .map_err(|e| bad(e.to_string()))?
            .encode_to_vec(),
    };
    Ok(Bytes::from(encoded))
}

/// What the serde derives may silently lose: a type error inside a flattened
/// oneof (a point's or an exemplar's value) becomes `None`, and one inside a
/// point can drop it. Counted on the JSON tree and on the decoded request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Counts {
    points: u64,
    /// Number points with a value.
    valued: u64,
    /// Exemplars with a value.
    exemplars_valued: u64,
}

/// [`Counts`] as the JSON tree holds them.
fn json_points(tree: &Value) -> Counts {
    let list = |v: &Value, key: &str| {
        v.get(key)
            .and_then(Value::as_array)
            .map(|a| a.as_slice())
            .unwrap_or(&[])
            .to_vec()
    };
    let has = |v: &Value, k: &str| v.get(k).is_some_and(|v| !v.is_null());
    let mut counts = Counts::default();
    for rm in list(tree, "resourceMetrics") {
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
                        counts.points += 1;
                        if matches!(kind, "gauge" | "sum")
                            && (has(&p, "asDouble") || has(&p, "asInt"))
                        {
                            counts.valued += 1;
                        }
                        for e in list(&p, "exemplars") {
                            if has(&e, "asDouble") || has(&e, "asInt") {
                                counts.exemplars_valued += 1;
                            }
                        }
                    }
                }
            }
        }
    }
    counts
}

/// The same counts on the decoded request (non-finite `asDouble`s patched).
fn decoded_points(request: &metrics::ExportMetricsServiceRequest) -> Counts {
    use crate::otlp::proto::otlp::metrics::v1::metric::Data;
    use crate::otlp::proto::otlp::metrics::v1::Exemplar;
    let valued = |e: &[Exemplar]| e.iter().filter(|e| e.value.is_some()).count() as u64;
    let mut counts = Counts::default();
    for m in request
        .resource_metrics
        .iter()
        .flat_map(|rm| &rm.scope_metrics)
        .flat_map(|sm| &sm.metrics)
    {
        let (n, v, e) = match m.data.as_ref() {
            None => (0, 0, 0),
            Some(Data::Gauge(g)) => (
                g.data_points.len(),
                g.data_points.iter().filter(|p| p.value.is_some()).count(),
                g.data_points.iter().map(|p| valued(&p.exemplars)).sum(),
            ),
            Some(Data::Sum(x)) => (
                x.data_points.len(),
                x.data_points.iter().filter(|p| p.value.is_some()).count(),
                x.data_points.iter().map(|p| valued(&p.exemplars)).sum(),
            ),
            Some(Data::Histogram(h)) => (
                h.data_points.len(),
                0,
                h.data_points.iter().map(|p| valued(&p.exemplars)).sum(),
            ),
            Some(Data::ExponentialHistogram(h)) => (
                h.data_points.len(),
                0,
                h.data_points.iter().map(|p| valued(&p.exemplars)).sum(),
            ),
            Some(Data::Summary(x)) => (x.data_points.len(), 0, 0),
        };
        counts.points += n as u64;
        counts.valued += v as u64;
        counts.exemplars_valued += e;
    }
    counts
}

/// proto3 JSON's spellings of a double.
fn parse_double(s: &str) -> Option<f64> {
    match s {
        "NaN" => Some(f64::NAN),
        "Infinity" => Some(f64::INFINITY),
        "-Infinity" => Some(f64::NEG_INFINITY),
        other => other.trim().parse::<f64>().ok().filter(|v| v.is_finite()),
    }
}

fn array<'a>(obj: &'a mut Value, key: &str) -> impl Iterator<Item = (usize, &'a mut Value)> {
    obj.get_mut(key)
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
        .enumerate()
}

/// Rewrites string `asDouble`s of gauge and sum points: finite ones become
/// numbers, non-finite ones are removed and recorded as patches.
fn take_special_doubles(tree: &mut Value, patches: &mut Vec<Patch>) -> Result<(), String> {
    for (r, rm) in array(tree, "resourceMetrics") {
        for (s, sm) in array(rm, "scopeMetrics") {
            for (m, metric) in array(sm, "metrics") {
                for kind in ["gauge", "sum"] {
                    let Some(data) = metric.get_mut(kind) else {
                        continue;
                    };
                    for (p, point) in array(data, "dataPoints") {
                        let Some(obj) = point.as_object_mut() else {
                            continue;
                        };
                        let Some(Value::String(text)) = obj.get("asDouble") else {
                            continue;
                        };
                        let value = parse_double(text).ok_or_else(|| {
                            format!("resourceMetrics[{r}].scopeMetrics[{s}].metrics[{m}].{kind}.dataPoints[{p}].asDouble: {text:?} is not a double")
                        })?;
                        if value.is_finite() {
                            let number = serde_json::Number::from_f64(value)
                                .ok_or("unrepresentable double")?;
                            obj.insert("asDouble".to_owned(), Value::Number(number));
                        } else {
                            obj.remove("asDouble");
                            patches.push((r, s, m, p, value));
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

/// Refuses integer fields that are neither integers nor decimal strings.
fn check_integers(value: &Value, path: &str) -> Result<(), String> {
    match value {
        Value::Object(map) => check_object(map, path),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .try_for_each(|(i, v)| check_integers(v, &format!("{path}[{i}]"))),
        _ => Ok(()),
    }
}

fn check_object(map: &Map<String, Value>, path: &str) -> Result<(), String> {
    for (key, v) in map {
        let here = if path.is_empty() {
            key.clone()
        } else {
            format!("{path}.{key}")
        };
        let ok = if U64_FIELDS.contains(&key.as_str()) {
            match v {
                Value::String(s) => s.parse::<u64>().is_ok(),
                Value::Number(n) => n.is_u64(),
                _ => false,
            }
        } else if I64_FIELDS.contains(&key.as_str()) {
            match v {
                Value::String(s) => s.parse::<i64>().is_ok(),
                Value::Number(n) => n.is_i64(),
                _ => false,
            }
        } else {
            true
        };
        if !ok {
            return Err(format!("{here}: {v} is not an integer"));
        }
        check_integers(v, &here)?;
    }
    Ok(())
}

fn apply(
    request: &mut metrics::ExportMetricsServiceRequest,
    patches: &[Patch],
) -> Result<(), String> {
    use crate::otlp::proto::otlp::metrics::v1::{metric::Data, number_data_point::Value as V};
    for &(r, s, m, p, value) in patches {
        let point = request
            .resource_metrics
            .get_mut(r)
            .and_then(|rm| rm.scope_metrics.get_mut(s))
            .and_then(|sm| sm.metrics.get_mut(m))
            .and_then(|metric| match metric.data.as_mut() {
                Some(Data::Gauge(g)) => g.data_points.get_mut(p),
                Some(Data::Sum(sum)) => sum.data_points.get_mut(p),
                _ => None,
            })
            .ok_or("a data point vanished while decoding")?;
        point.value = Some(V::AsDouble(value));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::otlp::proto::otlp::metrics::v1::{
        exemplar::Value as ExemplarValue, metric::Data, number_data_point::Value as V,
    };

    fn metrics_json(points: &str) -> Vec<u8> {
        format!(r#"{{"resourceMetrics":[{{"scopeMetrics":[{{"metrics":[{{"name":"m","gauge":{{"dataPoints":[{points}]}}}}]}}]}}]}}"#).into_bytes()
    }

    fn values(body: &[u8]) -> Result<Vec<Option<V>>, ExportError> {
        let bytes = to_protobuf(Signal::Metrics, body)?;
        let request = metrics::ExportMetricsServiceRequest::decode(bytes).expect("protobuf");
        let Some(Data::Gauge(g)) = &request.resource_metrics[0].scope_metrics[0].metrics[0].data
        else {
            panic!("gauge")
        };
        Ok(g.data_points.iter().map(|p| p.value).collect())
    }

    #[test]
    fn doubles_as_strings_survive() {
        let v = values(&metrics_json(r#"{"asDouble":"NaN"},{"asDouble":"-Infinity"},{"asDouble":"2.5"},{"asDouble":3},{"asInt":"-7"}"#)).expect("valid");
        assert!(matches!(v[0], Some(V::AsDouble(x)) if x.is_nan()));
        assert_eq!(v[1], Some(V::AsDouble(f64::NEG_INFINITY)));
        assert_eq!(v[2], Some(V::AsDouble(2.5)));
        assert_eq!(v[3], Some(V::AsDouble(3.0)));
        assert_eq!(v[4], Some(V::AsInt(-7)));
    }

    #[test]
    fn a_type_error_inside_a_point_is_refused_not_dropped() {
        for bad in [
            r#"{"asDouble":1.5,"flags":"x"}"#,
            r#"{"asDouble":true}"#,
            r#"{"asDouble":1,"exemplars":[0]}"#,
            // Used to be forwarded without the exemplar's value.
            r#"{"asDouble":1,"exemplars":[{"asDouble":true,"timeUnixNano":"1"}]}"#,
            r#"{"asDouble":1,"exemplars":[{"asInt":"x"}]}"#,
        ] {
            assert!(
                matches!(values(&metrics_json(bad)), Err(ExportError::Malformed(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn exemplars_keep_their_values() {
        let body = metrics_json(
            r#"{"asDouble":1,"exemplars":[{"asDouble":2.5,"timeUnixNano":"1"},{"asInt":"3"}]}"#,
        );
        let bytes = to_protobuf(Signal::Metrics, &body).expect("valid");
        let request = metrics::ExportMetricsServiceRequest::decode(bytes).expect("protobuf");
        let Some(Data::Gauge(g)) = &request.resource_metrics[0].scope_metrics[0].metrics[0].data
        else {
            panic!("gauge")
        };
        let values: Vec<_> = g.data_points[0].exemplars.iter().map(|e| e.value).collect();
        assert_eq!(
            values,
            vec![
                Some(ExemplarValue::AsDouble(2.5)),
                Some(ExemplarValue::AsInt(3))
            ]
        );
    }

    #[test]
    fn malformed_numbers_are_refused() {
        for bad in [
            r#"{"asDouble":"twelve"}"#,
            r#"{"asInt":"x"}"#,
            r#"{"asDouble":1,"timeUnixNano":"soon"}"#,
            r#"{"asDouble":1,"timeUnixNano":-5}"#,
        ] {
            assert!(
                matches!(values(&metrics_json(bad)), Err(ExportError::Malformed(_))),
                "{bad}"
            );
        }
    }
}
