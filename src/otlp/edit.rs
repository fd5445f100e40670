//! Re-encoding a request: the one rare path where leakwatch forwards something other than the
//! bytes it received.

use bytes::Bytes;
use prost::Message;

use super::count::metric_points;

/// Re-encodes a metrics request without the points at `ordinals` (sorted
/// ascending): the rare path taken when the series limit refused points, so
/// that what is forwarded is exactly what the client was told was accepted.
pub fn without_points(body: &[u8], ordinals: &[u32]) -> Result<Bytes, prost::DecodeError> {
    use super::proto::otlp::collector::metrics::v1::ExportMetricsServiceRequest;
    use super::proto::otlp::metrics::v1::metric::Data;
    let mut request = ExportMetricsServiceRequest::decode(body)?;
    let mut ordinal: u32 = 0;
    let mut refused = ordinals.iter().copied().peekable();
    let mut keep = |_: &()| {
        let o = ordinal;
        ordinal += 1;
        if refused.peek() == Some(&o) {
            refused.next();
            false
        } else {
            true
        }
    };
    for rm in &mut request.resource_metrics {
        for sm in &mut rm.scope_metrics {
            for m in &mut sm.metrics {
                match m.data.as_mut() {
                    None => {}
                    Some(Data::Gauge(g)) => g.data_points.retain(|_| keep(&())),
                    Some(Data::Sum(s)) => s.data_points.retain(|_| keep(&())),
                    Some(Data::Histogram(h)) => h.data_points.retain(|_| keep(&())),
                    Some(Data::ExponentialHistogram(h)) => h.data_points.retain(|_| keep(&())),
                    Some(Data::Summary(s)) => s.data_points.retain(|_| keep(&())),
                }
            }
            sm.metrics.retain(|m| metric_points(m) > 0);
        }
        rm.scope_metrics.retain(|sm| !sm.metrics.is_empty());
    }
    request
        .resource_metrics
        .retain(|rm| !rm.scope_metrics.is_empty());
    Ok(Bytes::from(request.encode_to_vec()))
}
