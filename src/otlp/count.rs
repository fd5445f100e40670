//! Counting the items of export requests: data points, spans and log records. One place, so
//! the receivers, the engine, the tools and the tests agree on what an item is.

use bytes::Bytes;
use prost::Message;

use super::proto::lean;
use super::proto::otlp::metrics::v1::{metric::Data, Metric};
use super::signal::Signal;

/// Data points in a request decoded by prost (the oracle the view is tested
/// against; the hot path reads [`MetricsRequest::points`](super::view::MetricsRequest::points)).
pub fn count_points(request: &lean::ExportMetricsRequest) -> u64 {
    request
        .resource_metrics
        .iter()
        .flat_map(|rm| &rm.scope_metrics)
        .flat_map(|sm| &sm.metrics)
        .map(|m| u64::from(lean_metric_points(m)))
        .sum()
}

pub fn lean_metric_points(metric: &lean::Metric) -> u32 {
    use lean::metric::Data;
    let n = match metric.data.as_ref() {
        None => 0,
        Some(Data::Gauge(g)) => g.data_points.len(),
        Some(Data::Sum(s)) => s.data_points.len(),
        Some(Data::Histogram(h)) => h.data_points.len(),
        Some(Data::ExponentialHistogram(h)) => h.data_points.len(),
        Some(Data::Summary(s)) => s.data_points.len(),
    };
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Data points of one metric of the full OTLP types.
pub fn metric_points(m: &Metric) -> usize {
    match m.data.as_ref() {
        None => 0,
        Some(Data::Gauge(g)) => g.data_points.len(),
        Some(Data::Sum(s)) => s.data_points.len(),
        Some(Data::Histogram(h)) => h.data_points.len(),
        Some(Data::ExponentialHistogram(h)) => h.data_points.len(),
        Some(Data::Summary(s)) => s.data_points.len(),
    }
}

/// Items (points, spans, log records) in an export request, via the lean types.
pub fn count_items(signal: Signal, body: Bytes) -> Result<u64, prost::DecodeError> {
    Ok(match signal {
        Signal::Traces => lean::ExportTraceRequest::decode(body)?
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .map(|s| s.spans.len() as u64)
            .sum(),
        Signal::Logs => lean::ExportLogsRequest::decode(body)?
            .resource_logs
            .iter()
            .flat_map(|r| &r.scope_logs)
            .map(|s| s.log_records.len() as u64)
            .sum(),
        // prost's lean decode, as the checked view (`MetricsRequest`) accepts exactly the same
        // requests (asserted on the fuzz corpus); the view itself counts on the hot path.
        Signal::Metrics => count_points(&lean::ExportMetricsRequest::decode(body)?),
    })
}
