//! Builders for the OTLP messages leakwatch writes itself: attributes,
//! metrics and points, requests. One set, used by the notifier (log records,
//! derived metrics), self-monitoring, the development tools and the tests.

use crate::otlp::proto::otlp::collector::metrics::v1::ExportMetricsServiceRequest;
use crate::otlp::proto::otlp::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use crate::otlp::proto::otlp::metrics::v1::{
    metric, number_data_point, AggregationTemporality, Gauge, Histogram, HistogramDataPoint,
    Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum,
};
use crate::otlp::proto::otlp::resource::v1::Resource;

/// An attribute with any value.
pub fn kv_value(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

/// A string attribute.
pub fn kv(key: &str, value: &str) -> KeyValue {
    kv_value(key, string(value))
}

/// An integer attribute.
pub fn kv_int(key: &str, value: i64) -> KeyValue {
    kv_value(key, any_value::Value::IntValue(value))
}

/// A double attribute.
pub fn kv_double(key: &str, value: f64) -> KeyValue {
    kv_value(key, any_value::Value::DoubleValue(value))
}

/// A string value.
pub fn string(s: &str) -> any_value::Value {
    any_value::Value::StringValue(s.to_owned())
}

/// A resource with these attributes.
pub fn resource(attributes: Vec<KeyValue>) -> Resource {
    Resource {
        attributes,
        ..Default::default()
    }
}

/// A scope by name and version.
pub fn scope(name: &str, version: &str) -> InstrumentationScope {
    InstrumentationScope {
        name: name.to_owned(),
        version: version.to_owned(),
        ..Default::default()
    }
}

/// A point with a double value.
pub fn double_point(t_ns: u64, value: f64, attributes: Vec<KeyValue>) -> NumberDataPoint {
    NumberDataPoint {
        attributes,
        time_unix_nano: t_ns,
        value: Some(number_data_point::Value::AsDouble(value)),
        ..Default::default()
    }
}

/// A point with an integer value.
pub fn int_point(t_ns: u64, value: i64, attributes: Vec<KeyValue>) -> NumberDataPoint {
    NumberDataPoint {
        attributes,
        time_unix_nano: t_ns,
        value: Some(number_data_point::Value::AsInt(value)),
        ..Default::default()
    }
}

/// A gauge.
pub fn gauge(name: &str, unit: &str, description: &str, points: Vec<NumberDataPoint>) -> Metric {
    Metric {
        name: name.to_owned(),
        description: description.to_owned(),
        unit: unit.to_owned(),
        data: Some(metric::Data::Gauge(Gauge {
            data_points: points,
        })),
        ..Default::default()
    }
}

/// A cumulative sum: a counter when `monotonic`, else an up-down counter.
pub fn sum(name: &str, unit: &str, monotonic: bool, points: Vec<NumberDataPoint>) -> Metric {
    Metric {
        name: name.to_owned(),
        unit: unit.to_owned(),
        data: Some(metric::Data::Sum(Sum {
            data_points: points,
            aggregation_temporality: AggregationTemporality::Cumulative as i32,
            is_monotonic: monotonic,
        })),
        ..Default::default()
    }
}

/// A cumulative histogram.
pub fn histogram(name: &str, unit: &str, points: Vec<HistogramDataPoint>) -> Metric {
    Metric {
        name: name.to_owned(),
        unit: unit.to_owned(),
        data: Some(metric::Data::Histogram(Histogram {
            data_points: points,
            aggregation_temporality: AggregationTemporality::Cumulative as i32,
        })),
        ..Default::default()
    }
}

/// The metrics of one resource under one scope.
pub fn resource_metrics(
    resource: Resource,
    scope: InstrumentationScope,
    metrics: Vec<Metric>,
) -> ResourceMetrics {
    ResourceMetrics {
        resource: Some(resource),
        scope_metrics: vec![ScopeMetrics {
            scope: Some(scope),
            metrics,
            schema_url: String::new(),
        }],
        schema_url: String::new(),
    }
}

/// A request holding the metrics of one resource under one scope.
pub fn metrics_request(
    resource: Resource,
    scope: InstrumentationScope,
    metrics: Vec<Metric>,
) -> ExportMetricsServiceRequest {
    ExportMetricsServiceRequest {
        resource_metrics: vec![resource_metrics(resource, scope, metrics)],
    }
}
