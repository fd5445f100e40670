//! The snapshot format: the detection state as a checkpoint holds it, taken from and loaded
//! into an [`Engine`].

use std::sync::atomic::Ordering;
use std::sync::Arc;

use prost::Message;
use serde::{Deserialize, Serialize};

use super::history::{Counters, CountersSnapshot, History, HistorySnapshot};
use super::resource::{ResourceEntry, ResourceInfo};
use super::table::{self, ResourceKey, ResourceSeries, Series, SeriesKey, SeriesName, Tracked};
use super::Engine;
use crate::detector::{ResourceDetector, SeriesDetector};

impl Engine {
    /// A copy of the detection state (every tracked series and every resource, with their
    /// detector state, and the event-time watermark) for a checkpoint. Taken one shard at a
    /// time while ingestion goes on, so a request being ingested meanwhile may be in some of
    /// its series and not in others: the next points repair that, as after any gap.
    pub fn snapshot(&self) -> EngineSnapshot {
        let mut series = Vec::with_capacity(self.series.len());
        let mut resources = Vec::with_capacity(self.resources.len());
        for r in self.resources.iter() {
            resources.push(ResourceSnapshot {
                key: *r.key(),
                attributes: r
                    .info
                    .attributes
                    .iter()
                    .map(|kv| kv.encode_to_vec())
                    .collect(),
                latest_ns: r.latest_ns,
                detector: ResourceDetector::clone(&r.detector),
                history: r.history.as_ref().map(|h| h.snapshot()),
                counters: r.counters.as_ref().map(|c| c.snapshot()),
            });
            for (key, s) in r.series.iter() {
                if let Some(t) = s.tracked.as_ref() {
                    series.push(SeriesSnapshot {
                        key,
                        resource: t.resource,
                        metric: t.name.metric.to_string(),
                        labels: t.name.labels.to_string(),
                        last_seen_ns: s.last_seen_ns,
                        detector: t.detector.clone(),
                    });
                }
            }
        }
        EngineSnapshot {
            bucket_ns: self.cfg.detector.bucket_ns(),
            watermark_ns: self.watermark_ns(),
            resources,
            series,
        }
    }

    /// Loads a snapshot into this engine (meant for a fresh one, before it serves).
    /// Refused as a whole if it was taken with another bucket width (other detector windows):
    /// its buckets would mean other spans of time. Series beyond `max_series` are left out.
    pub fn restore(&self, snapshot: EngineSnapshot) -> Result<RestoreReport, RestoreError> {
        let bucket_ns = self.cfg.detector.bucket_ns();
        if snapshot.bucket_ns != bucket_ns {
            return Err(RestoreError::BucketWidth {
                found: snapshot.bucket_ns,
                expected: bucket_ns,
            });
        }
        let mut report = RestoreReport::default();
        for r in snapshot.resources {
            let info = Arc::new(ResourceInfo::from_attributes(
                r.key,
                table::decode_attributes_full(r.attributes.iter().map(|a| &a[..])),
            ));
            let mut detector = Box::new(r.detector);
            self.apply_configured_limit(&info, &mut detector);
            // A container resource's limit is offered to its pod's processes again at once, so
            // they keep their joined limit (restored with their detectors) without a gap.
            if let (Some(pod), Some(limit)) = (info.pod, detector.own_container_limit()) {
                self.publish_pod_limit(pod, r.key, limit);
            }
            let joined_limit = detector.container_limit();
            let replaced = self.resources.insert(
                r.key,
                ResourceEntry {
                    info,
                    detector,
                    latest_ns: r.latest_ns,
                    series: ResourceSeries::default(),
                    // A checkpoint from before the history (or with a malformed one) restores
                    // the rest; the chart starts again from the next point.
                    history: r.history.and_then(History::restore),
                    // Likewise for the counter history (checkpoints before it lack it).
                    counters: r.counters.and_then(Counters::restore),
                    joined_limit,
                },
            );
            if let Some(old) = replaced {
                self.series.release(&old.series);
            }
            report.resources += 1;
        }
        for s in snapshot.series {
            let metric = self
                .metric_names
                .entry(table::hash_name(s.metric.as_bytes()))
                .or_insert_with(|| Arc::from(s.metric.as_str()))
                .value()
                .clone();
            let restored = Series {
                last_seen_ns: s.last_seen_ns,
                tracked: Some(Box::new(Tracked {
                    name: self.series.names().intern(SeriesName {
                        metric,
                        labels: s.labels.into_boxed_str(),
                    }),
                    resource: s.resource,
                    detector: s.detector,
                })),
            };
            // A series lives in its resource's entry: one the snapshot lacks is left out.
            let outcome = self
                .resources
                .get_mut(&s.resource)
                .map(|mut r| self.series.restore(&mut r.series, s.key, restored));
            match outcome {
                Some(Ok(())) => report.series += 1,
                Some(Err(_)) | None => report.series_refused += 1,
            }
        }
        // The names of series refused at the bound.
        self.series.names().release_unused();
        self.watermark_ns
            .fetch_max(snapshot.watermark_ns, Ordering::AcqRel);
        Ok(report)
    }
}

/// The detection state as a checkpoint holds it (see [`Engine::snapshot`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EngineSnapshot {
    /// Width of a detector bucket when taken; state of another width means nothing.
    pub bucket_ns: u64,
    /// The event-time watermark.
    pub watermark_ns: u64,
    pub resources: Vec<ResourceSnapshot>,
    pub series: Vec<SeriesSnapshot>,
}

/// One resource in a snapshot.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ResourceSnapshot {
    pub key: ResourceKey,
    /// Its attributes, each an encoded OTLP `KeyValue`.
    pub attributes: Vec<Vec<u8>>,
    pub latest_ns: u64,
    pub detector: ResourceDetector,
    /// The chart's history; absent in checkpoints written before it existed, which still load.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history: Option<HistorySnapshot>,
    /// The counter history (requests and collections per bucket); absent in checkpoints
    /// written before it existed, which still load.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counters: Option<CountersSnapshot>,
}

/// One tracked series in a snapshot.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SeriesSnapshot {
    pub key: SeriesKey,
    pub resource: ResourceKey,
    pub metric: String,
    /// The data point attributes as `k=v,...`.
    pub labels: String,
    pub last_seen_ns: u64,
    pub detector: SeriesDetector,
}

/// What [`Engine::restore`] loaded.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RestoreReport {
    pub resources: usize,
    pub series: usize,
    /// Series left out because the table was full (`series.max_series`).
    pub series_refused: usize,
}

/// Why a snapshot cannot be loaded.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error("taken with detector buckets of {found} ns, this configuration uses {expected} ns (detector.long_window changed)")]
    BucketWidth { found: u64, expected: u64 },
}
