//! History from a file: OTLP/JSON lines as the Collector's `file` exporter writes them (one
//! `ExportMetricsServiceRequest` per line; lines of other signals are skipped), read with the
//! receivers' own JSON decoder ([`crate::receiver::json`]) so a file is judged exactly as the
//! same exports sent over OTLP/HTTP would be.
//!
//! The Collector writes exports in the order it received them, which is not quite event time
//! across processes (batching, retries): requests are sorted by their earliest point, stably,
//! before the replay.

use std::io::BufRead;
use std::path::Path;

use bytes::Bytes;
use prost::Message;

use crate::otlp::proto::otlp::collector::metrics::v1::ExportMetricsServiceRequest;
use crate::otlp::proto::otlp::metrics::v1::metric::Data;
use crate::otlp::signal::Signal;

/// Why a file cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("cannot read {path}: {source}")]
    Open {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}:{line}: {message}")]
    Malformed {
        path: String,
        line: usize,
        message: String,
    },
}

/// The metric requests of a file, protobuf-encoded, in event-time order.
pub fn read_requests(path: &Path) -> Result<Vec<Bytes>, FileError> {
    let shown = path.display().to_string();
    let open = |source| FileError::Open {
        path: shown.clone(),
        source,
    };
    let file = std::fs::File::open(path).map_err(open)?;
    let reader = std::io::BufReader::new(file);
    let mut requests: Vec<(u64, Bytes)> = Vec::new();
    for (i, line) in reader.lines().enumerate() {
        let line = line.map_err(open)?;
        let trimmed = line.trim();
        if trimmed.is_empty() {
            continue;
        }
        let malformed = |message: String| FileError::Malformed {
            path: shown.clone(),
            line: i + 1,
            message,
        };
        let value: serde_json::Value = serde_json::from_str(trimmed)
            .map_err(|e| malformed(format!("not a JSON document: {e}")))?;
        if value.get("resourceMetrics").is_none() {
            if ["resourceSpans", "resourceLogs", "resourceProfiles"]
                .iter()
                .any(|k| value.get(k).is_some())
            {
                continue;
            }
            return Err(malformed(
                "not an OTLP/JSON export request (no resourceMetrics, resourceSpans or resourceLogs)"
                    .to_owned(),
            ));
        }
        let body = crate::receiver::json::to_protobuf(Signal::Metrics, trimmed.as_bytes())
            .map_err(|e| malformed(e.to_string()))?;
        requests.push((earliest_point_ns(&body), body));
    }
    requests.sort_by_key(|(t, _)| *t);
    Ok(requests.into_iter().map(|(_, b)| b).collect())
}

/// The earliest point time of a request (0 when it has none).
fn earliest_point_ns(body: &Bytes) -> u64 {
    let Ok(request) = ExportMetricsServiceRequest::decode(body.clone()) else {
        return 0;
    };
    let mut earliest = u64::MAX;
    for rm in &request.resource_metrics {
        for sm in &rm.scope_metrics {
            for m in &sm.metrics {
                let times: Vec<u64> = match &m.data {
                    Some(Data::Gauge(g)) => {
                        g.data_points.iter().map(|p| p.time_unix_nano).collect()
                    }
                    Some(Data::Sum(s)) => s.data_points.iter().map(|p| p.time_unix_nano).collect(),
                    Some(Data::Histogram(h)) => {
                        h.data_points.iter().map(|p| p.time_unix_nano).collect()
                    }
                    Some(Data::ExponentialHistogram(h)) => {
                        h.data_points.iter().map(|p| p.time_unix_nano).collect()
                    }
                    Some(Data::Summary(s)) => {
                        s.data_points.iter().map(|p| p.time_unix_nano).collect()
                    }
                    None => Vec::new(),
                };
                for t in times.into_iter().filter(|&t| t != 0) {
                    earliest = earliest.min(t);
                }
            }
        }
    }
    if earliest == u64::MAX {
        0
    } else {
        earliest
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(name: &str, text: &str) -> std::path::PathBuf {
        let path = std::env::temp_dir().join(format!(
            "leakwatch-analyze-file-{}-{name}",
            std::process::id()
        ));
        std::fs::write(&path, text).expect("write");
        path
    }

    fn line(t_ns: u64, value: f64) -> String {
        format!(
            r#"{{"resourceMetrics":[{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"a"}}}}]}},"scopeMetrics":[{{"metrics":[{{"name":"process.memory.usage","unit":"By","gauge":{{"dataPoints":[{{"timeUnixNano":"{t_ns}","asDouble":{value}}}]}}}}]}}]}}]}}"#
        )
    }

    #[test]
    fn lines_are_sorted_by_event_time_and_other_signals_skipped() {
        let text = format!(
            "{}\n{{\"resourceSpans\":[]}}\n\n{}\n",
            line(2_000, 2.0),
            line(1_000, 1.0)
        );
        let path = write("sorted", &text);
        let requests = read_requests(&path).expect("read");
        let _ = std::fs::remove_file(&path);
        assert_eq!(requests.len(), 2);
        assert_eq!(earliest_point_ns(&requests[0]), 1_000);
        assert_eq!(earliest_point_ns(&requests[1]), 2_000);
    }

    #[test]
    fn a_malformed_line_names_its_number() {
        let text = format!("{}\n{{\"resourceMetrics\": 3}}\n", line(1, 1.0));
        let path = write("bad", &text);
        let err = read_requests(&path).expect_err("malformed");
        let _ = std::fs::remove_file(&path);
        assert!(matches!(err, FileError::Malformed { line: 2, .. }), "{err}");
        let path = write("garbage", "not json\n");
        let err = read_requests(&path).expect_err("malformed");
        let _ = std::fs::remove_file(&path);
        assert!(
            err.to_string()
                .ends_with(":1: not a JSON document: expected ident at line 1 column 2"),
            "{err}"
        );
    }
}
