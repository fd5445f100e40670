//! History back through the detector: samples become OTLP `ExportMetricsServiceRequest`s in
//! event-time order (one per scrape timestamp) and go through a fresh [`Engine`] built from the
//! same configuration as the server's, exactly as live exports would; then each process's
//! verdict is read off the engine and its events.
//!
//! Idle series are swept every `series.sweep_interval` of event time, as the server sweeps them
//! every `sweep_interval` of wall time, so a process that stopped reporting loses its state the
//! same way; its verdict is then the last transition it had.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use prost::Message;

use super::names::{Shape, Target};
use super::report::{EventRecord, Verdict};
use crate::config::{Config, ConfigErrors, ProcessEnv};
use crate::engine::{Engine, EngineConfig, EngineEvent, IngestError, ResourceInfo};
use crate::ops::telemetry::Telemetry;
use crate::otlp::proto::otlp::collector::metrics::v1::ExportMetricsServiceRequest;
use crate::otlp::proto::otlp::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use crate::otlp::proto::otlp::metrics::v1::{
    metric, number_data_point, AggregationTemporality, Gauge, Metric, NumberDataPoint,
    ResourceMetrics, ScopeMetrics, Sum,
};
use crate::otlp::proto::otlp::resource::v1::Resource;

/// One process's history, as fetched.
#[derive(Clone, Debug, Default)]
pub struct Process {
    /// Prometheus `job` (or, from a file, the service name).
    pub job: String,
    pub instance: String,
    /// OTLP resource attributes.
    pub resource: Vec<(String, String)>,
    pub series: Vec<SeriesData>,
}

/// One series' samples.
#[derive(Clone, Debug)]
pub struct SeriesData {
    pub target: Target,
    /// Instrumentation scope (`otel_scope_name`), empty when unknown.
    pub scope: String,
    /// Data-point attributes (OTLP keys).
    pub attributes: Vec<(String, String)>,
    /// `(unix milliseconds, value)`, in time order.
    pub samples: Vec<(i64, f64)>,
}

/// What the replay needs from the server's configuration.
#[derive(Clone, Debug)]
pub struct Settings {
    pub engine: EngineConfig,
    /// Event time between two sweeps of idle series.
    pub sweep_interval: Duration,
}

impl Settings {
    /// The server's settings, from `file` and the `LEAKWATCH_*` environment as `serve` reads them
    /// (defaults when there is no file).
    pub fn load(file: Option<&Path>) -> Result<Settings, ConfigErrors> {
        let config = Config::load(file, &ProcessEnv, &[])?;
        Ok(Settings::from_config(&config))
    }

    /// The engine the server builds from `config` (as `server::Bound::run` does).
    pub fn from_config(config: &Config) -> Settings {
        Settings {
            engine: EngineConfig::from_config(config),
            sweep_interval: config.series.sweep_interval,
        }
    }
}

/// A fresh engine and what its events said.
pub struct Replay {
    engine: Engine,
    sweep_ns: u64,
    last_sweep_ns: u64,
    /// Per resource key: who it is and its transitions.
    history: BTreeMap<u64, (Arc<ResourceInfo>, Vec<EventRecord>)>,
    /// Requests ingested.
    pub requests: u64,
}

impl Replay {
    pub fn new(settings: &Settings) -> Replay {
        Replay {
            engine: Engine::new(settings.engine.clone(), Arc::new(Telemetry::new())),
            sweep_ns: u64::try_from(settings.sweep_interval.as_nanos())
                .unwrap_or(u64::MAX)
                .max(1),
            last_sweep_ns: 0,
            history: BTreeMap::new(),
            requests: 0,
        }
    }

    /// Ingests one encoded request, as a receiver would.
    pub fn ingest(&mut self, body: Bytes) -> Result<(), IngestError> {
        let outcome = self.engine.ingest_metrics(body)?;
        self.requests += 1;
        self.note(outcome.events);
        let watermark = self.engine.watermark_ns();
        if self.last_sweep_ns == 0 {
            self.last_sweep_ns = watermark;
        } else if watermark >= self.last_sweep_ns.saturating_add(self.sweep_ns) {
            // Incidents of processes gone end here, as they would in the server.
            let gone = self.engine.evict_idle().events;
            self.note(gone);
            self.last_sweep_ns = watermark;
        }
        Ok(())
    }

    /// Replays a whole process: one request per distinct sample time, in time order.
    pub fn process(&mut self, p: &Process) -> Result<(), IngestError> {
        for request in requests(p) {
            self.ingest(Bytes::from(request.encode_to_vec()))?;
        }
        Ok(())
    }

    fn note(&mut self, events: Vec<EngineEvent>) {
        for e in events {
            let record = EventRecord::from_event(&e.resource, &e.event);
            self.history
                .entry(e.resource.key)
                .or_insert_with(|| (Arc::clone(&e.resource), Vec::new()))
                .1
                .push(record);
        }
    }

    /// Every process the engine saw a catalog metric of, with its verdict: its state at the end
    /// of the history, or, once evicted, the state its last transition left it in.
    pub fn finish(self) -> Vec<Verdict> {
        let mut out: BTreeMap<u64, Verdict> = BTreeMap::new();
        for view in self.engine.resource_views() {
            let events = self
                .history
                .get(&view.resource.key)
                .map(|(_, e)| e.clone())
                .unwrap_or_default();
            out.insert(
                view.resource.key,
                Verdict::from_summary(&view.resource, &view.summary, events),
            );
        }
        for (key, (resource, events)) in self.history {
            if out.contains_key(&key) {
                continue;
            }
            out.insert(key, Verdict::from_events(&resource, events));
        }
        let mut verdicts: Vec<Verdict> = out.into_values().collect();
        verdicts.sort_by(|a, b| a.process.cmp(&b.process));
        verdicts
    }
}

/// The requests a process's history becomes, in time order: each carries every series' sample
/// at one timestamp (one export of every metric, as an SDK's periodic reader sends them).
pub fn requests(p: &Process) -> impl Iterator<Item = ExportMetricsServiceRequest> + '_ {
    let resource = Resource {
        attributes: p.resource.iter().map(|(k, v)| text(k, v)).collect(),
        ..Default::default()
    };
    let mut scopes: Vec<&str> = p.series.iter().map(|s| s.scope.as_str()).collect();
    scopes.sort_unstable();
    scopes.dedup();
    let attributes: Vec<Vec<KeyValue>> = p
        .series
        .iter()
        .map(|s| s.attributes.iter().map(|(k, v)| text(k, v)).collect())
        .collect();
    let mut cursor = vec![0usize; p.series.len()];
    std::iter::from_fn(move || {
        // The earliest sample not yet sent, across all series.
        let t = p
            .series
            .iter()
            .zip(&cursor)
            .filter_map(|(s, &c)| s.samples.get(c).map(|&(t, _)| t))
            .min()?;
        let t_ns = u64::try_from(t).unwrap_or(0).saturating_mul(1_000_000);
        let mut by_scope: Vec<Vec<Metric>> = vec![Vec::new(); scopes.len()];
        for (i, s) in p.series.iter().enumerate() {
            let Some(&(st, value)) = s.samples.get(cursor[i]) else {
                continue;
            };
            if st != t {
                continue;
            }
            cursor[i] += 1;
            let point = NumberDataPoint {
                attributes: attributes[i].clone(),
                time_unix_nano: t_ns,
                value: Some(number_data_point::Value::AsDouble(value)),
                ..Default::default()
            };
            let data = match s.target.shape {
                Shape::Gauge => metric::Data::Gauge(Gauge {
                    data_points: vec![point],
                }),
                Shape::Counter => metric::Data::Sum(Sum {
                    data_points: vec![point],
                    aggregation_temporality: AggregationTemporality::Cumulative as i32,
                    is_monotonic: true,
                }),
            };
            let scope = scopes.binary_search(&s.scope.as_str()).unwrap_or(0);
            by_scope[scope].push(Metric {
                name: s.target.otlp.to_string(),
                unit: s.target.unit.to_owned(),
                data: Some(data),
                ..Default::default()
            });
        }
        let scope_metrics = scopes
            .iter()
            .zip(by_scope)
            .filter(|(_, m)| !m.is_empty())
            .map(|(name, metrics)| ScopeMetrics {
                scope: Some(InstrumentationScope {
                    name: (*name).to_owned(),
                    ..Default::default()
                }),
                metrics,
                ..Default::default()
            })
            .collect();
        Some(ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                resource: Some(resource.clone()),
                scope_metrics,
                ..Default::default()
            }],
        })
    })
}

fn text(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.to_owned())),
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detector::LeakState;

    fn series(name: &str, shape: Shape, samples: Vec<(i64, f64)>) -> SeriesData {
        SeriesData {
            target: Target {
                otlp: Arc::from(name),
                shape,
                unit: "By",
            },
            scope: String::new(),
            attributes: vec![],
            samples,
        }
    }

    #[test]
    fn one_request_per_timestamp_in_time_order() {
        let p = Process {
            job: "a".into(),
            instance: "1".into(),
            resource: vec![("service.name".into(), "a".into())],
            series: vec![
                series(
                    "process.memory.usage",
                    Shape::Gauge,
                    vec![(1_000, 1.0), (3_000, 3.0)],
                ),
                series(
                    "v8js.gc.duration",
                    Shape::Counter,
                    vec![(1_000, 5.0), (2_000, 6.0), (3_000, 7.0)],
                ),
            ],
        };
        let reqs: Vec<_> = requests(&p).collect();
        let shape: Vec<(u64, usize)> = reqs
            .iter()
            .map(|r| {
                let metrics = &r.resource_metrics[0].scope_metrics[0].metrics;
                let t = match metrics[0].data.as_ref() {
                    Some(metric::Data::Gauge(g)) => g.data_points[0].time_unix_nano,
                    Some(metric::Data::Sum(s)) => s.data_points[0].time_unix_nano,
                    _ => 0,
                };
                (t / 1_000_000, metrics.len())
            })
            .collect();
        assert_eq!(shape, vec![(1_000, 2), (2_000, 1), (3_000, 2)]);
    }

    #[test]
    fn a_steady_leak_replayed_is_confirmed() {
        // 40 h of a floor growing 4 MiB/h under a sawtooth, every 60 s.
        let mut mem = Vec::new();
        let mut gc = Vec::new();
        for i in 0..(40 * 60) {
            let t = 1_700_000_000_000 + i * 60_000;
            let hours = i as f64 / 60.0;
            let saw = (i % 7) as f64 * 3e6;
            mem.push((t, 200e6 + hours * 4.0 * 1_048_576.0 + saw));
            gc.push((t, i as f64 * 3.0));
        }
        let p = Process {
            job: "leaky".into(),
            instance: "x".into(),
            resource: vec![
                ("service.name".into(), "leaky".into()),
                ("service.instance.id".into(), "x".into()),
            ],
            series: vec![
                series("process.memory.usage", Shape::Gauge, mem),
                series("v8js.gc.duration", Shape::Counter, gc),
            ],
        };
        let mut replay = Replay::new(&Settings::from_config(&Config::default()));
        replay.process(&p).expect("replay");
        let verdicts = replay.finish();
        assert_eq!(verdicts.len(), 1);
        assert_eq!(
            verdicts[0].verdict,
            LeakState::Confirmed,
            "{:?}",
            verdicts[0]
        );
        assert!(verdicts[0].events.len() >= 2);
    }
}
