//! Read models: what the admin API, the page and the derived metrics see of the engine.

use std::sync::Arc;

use serde::Serialize;

use super::resource::ResourceInfo;
use super::Engine;
use crate::detector::{LeakState, ResourceSummary, SeriesSummary};

impl Engine {
    /// Snapshot of every tracked series, optionally only those of resources
    /// whose `service.name` equals `service`.
    pub fn series_views(&self, service: Option<&str>) -> Vec<SeriesView> {
        let mut views = Vec::new();
        for r in self.resources.iter() {
            let info = &r.info;
            if service.is_some_and(|s| s != info.service_name) {
                continue;
            }
            for (key, s) in r.series.iter() {
                let Some(t) = s.tracked.as_ref() else {
                    continue;
                };
                views.push(SeriesView {
                    key: format!("{key:016x}"),
                    service_name: info.service_name.clone(),
                    instance: info.instance.clone(),
                    metric: t.name.metric.to_string(),
                    attributes: t.name.labels.to_string(),
                    last_seen_unix_nano: s.last_seen_ns,
                    trend: t.detector.summary(&self.cfg.detector),
                });
            }
        }
        views
    }

    /// Snapshot of every resource's assessment.
    pub fn resource_views(&self) -> Vec<ResourceView> {
        self.resources
            .iter()
            .map(|r| ResourceView {
                resource: Arc::clone(&r.info),
                state: r.detector.state(),
                latest_unix_nano: r.latest_ns,
                summary: r.detector.summary(&self.cfg.detector),
            })
            .collect()
    }
}

/// One tracked series, as the admin API shows it.
#[derive(Debug, Serialize)]
pub struct SeriesView {
    pub key: String,
    pub service_name: String,
    pub instance: String,
    pub metric: String,
    pub attributes: String,
    pub last_seen_unix_nano: u64,
    pub trend: SeriesSummary,
}

/// One resource's assessment, as the admin API and derived metrics show it.
#[derive(Debug, Serialize)]
pub struct ResourceView {
    pub resource: Arc<ResourceInfo>,
    pub state: LeakState,
    pub latest_unix_nano: u64,
    pub summary: ResourceSummary,
}
