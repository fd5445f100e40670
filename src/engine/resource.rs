//! Resource identity: who a process is (its OTLP resource attributes, service name and
//! instance) and what the engine keeps for it.

use std::sync::Arc;

use serde::Serialize;

use super::history::{Counters, History};
use super::table::{self, ResourceKey, ResourceSeries};
use crate::detector::ResourceDetector;
use crate::otlp::proto::otlp::common::v1::{any_value, KeyValue};
use crate::otlp::view::Attrs;

/// Who a resource (one process) is.
#[derive(Debug, Serialize)]
pub struct ResourceInfo {
    #[serde(skip)]
    pub key: ResourceKey,
    pub service_name: String,
    pub instance: String,
    #[serde(skip)]
    pub attributes: Vec<KeyValue>,
    /// The Kubernetes container this resource runs in or describes, when its attributes say.
    #[serde(skip)]
    pub pod: Option<PodRef>,
}

/// A Kubernetes container named by resource attributes: `k8s.pod.uid` and, when present,
/// `k8s.container.name` (hashed). An SDK process and the Collector's kubeletstats/k8s_cluster
/// resource of its container share both, which is how a process learns its container's limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PodRef {
    pub uid: u64,
    /// 0 when the resource does not name its container.
    pub container: u64,
}

impl ResourceInfo {
    pub(super) fn from_raw(key: ResourceKey, raw: Attrs<'_>) -> Self {
        Self::from_attributes(key, table::decode_attributes_full(raw.iter()))
    }

    pub(super) fn from_attributes(key: ResourceKey, attributes: Vec<KeyValue>) -> Self {
        let text = |k: &str| {
            attributes.iter().find(|kv| kv.key == k).and_then(|kv| {
                match kv.value.as_ref()?.value.as_ref()? {
                    any_value::Value::StringValue(s) => Some(s.clone()),
                    any_value::Value::IntValue(i) => Some(i.to_string()),
                    _ => None,
                }
            })
        };
        let service_name = text("service.name").unwrap_or_else(|| "unknown_service".to_owned());
        let instance = [
            "service.instance.id",
            "k8s.pod.name",
            "host.name",
            "process.pid",
        ]
        .iter()
        .find_map(|k| text(k))
        .unwrap_or_default();
        let pod = text("k8s.pod.uid")
            .filter(|uid| !uid.is_empty())
            .map(|uid| PodRef {
                uid: table::hash_name(uid.as_bytes()),
                container: text("k8s.container.name").map_or(0, |c| table::hash_name(c.as_bytes())),
            });
        ResourceInfo {
            key,
            service_name,
            instance,
            attributes,
            pod,
        }
    }

    /// A resource attribute's value as text (strings and integers).
    pub fn text(&self, key: &str) -> Option<String> {
        self.attributes
            .iter()
            .find(|kv| kv.key == key)
            .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
                any_value::Value::StringValue(s) => Some(s.clone()),
                any_value::Value::IntValue(i) => Some(i.to_string()),
                _ => None,
            })
    }

    /// `service (instance)` for messages.
    pub fn display_name(&self) -> String {
        if self.instance.is_empty() {
            self.service_name.clone()
        } else {
            format!("{} ({})", self.service_name, self.instance)
        }
    }
}

/// What the table holds for one resource.
pub struct ResourceEntry {
    pub info: Arc<ResourceInfo>,
    /// Boxed: the detector is 808 bytes and the table's slots are sized for the largest entry
    /// and multiplied by hashbrown's slack (1.1–2.3× free slots), so inline it cost a process
    /// ≈ 1.3–1.9 KB of slots; boxed it costs its 896-byte jemalloc size class plus 8 bytes per
    /// slot (README, Performance: memory per series).
    pub detector: Box<ResourceDetector>,
    /// Newest event time seen from this resource.
    pub latest_ns: u64,
    /// Its series (bounded in all by the engine's [`SeriesTable`](super::table::SeriesTable)).
    pub series: ResourceSeries,
    /// The chart's history (see [`super::history`]); allocated with the first memory point.
    pub history: Option<Box<History>>,
    /// Its requests and collections per bucket (see [`super::history::Counters`]); allocated
    /// with the first counter increment.
    pub counters: Option<Box<Counters>>,
    /// The container limit last joined to the detector from another resource (0: none), so a
    /// request looks the pod up without touching the detector when nothing changed.
    pub joined_limit: f64,
}

impl ResourceInfo {
    /// The resource's stable id in the admin API: its key (a hash of its attributes, so the
    /// same process keeps its id across restarts of leakwatch) as 16 hex digits.
    pub fn id(&self) -> String {
        format!("{:016x}", self.key)
    }
}
