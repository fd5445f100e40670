//! The names Prometheus really stores the catalog's metrics under, and the way back to OTLP.
//!
//! An OTLP metric reaches Prometheus through its OTLP receiver, a Collector's `prometheus` /
//! `prometheusremotewrite` exporter or an SDK's Prometheus exporter, each of which translates it:
//!
//! - dots (and any character outside `[a-zA-Z0-9_:]`) become underscores, runs of them one;
//! - a unit suffix is appended unless the name already holds it: `By` → `_bytes`,
//!   `s` → `_seconds`, `ms` → `_milliseconds`; annotations such as `{collection}` add nothing;
//! - a monotonic sum gets `_total`; a histogram becomes `_count`, `_sum` and `_bucket` series;
//! - with suffixes turned off (`add_metric_suffixes: false`, older exporters) only the
//!   character rule applies, which gives the guide's names
//!   (`process_runtime_nodejs_memory_heap_used`, `process_runtime_nodejs_gc_count_total`);
//! - Prometheus 3 may keep UTF-8 names as they are (`v8js.memory.heap.used`), with or without
//!   the suffixes.
//!
//! The resource becomes `job` (`service.namespace/service.name`, or `service.name`) and
//! `instance` (`service.instance.id`); its other attributes go to the `target_info` series.
//! leakwatch takes one process per (`job`, `instance`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::catalog::{Catalog, Role};

/// How a Prometheus series is turned back into OTLP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// A level (memory, goroutines): an OTLP gauge.
    Gauge,
    /// A cumulative count (a `_total` counter or a histogram's `_count`): a monotonic
    /// cumulative OTLP sum, which the engine reads like a histogram's count.
    Counter,
}

/// The OTLP metric a Prometheus name stands for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// The catalog's OTLP name.
    pub otlp: Arc<str>,
    pub shape: Shape,
    /// The OTLP unit the values are in (`By` for memory; the translation only ever adds
    /// `_bytes` to byte units, and an unsuffixed memory name is taken as bytes too).
    pub unit: &'static str,
}

/// Every Prometheus name of the catalog's metrics, and the attribute keys its rules test.
#[derive(Clone, Debug)]
pub struct NameMap {
    by_prom: BTreeMap<String, Target>,
    /// Translated label name → OTLP attribute key, for the keys the catalog's rules test and
    /// a few that name series well.
    attribute_keys: BTreeMap<String, String>,
}

/// Attribute keys that are not in any rule but name a series well in the report.
const DISPLAY_KEYS: &[&str] = &[
    "v8js.heap.space.name",
    "v8js.gc.type",
    "jvm.memory.pool.name",
    "jvm.gc.name",
    "go.memory.type",
    "cpython.gc.generation",
    "http.route",
    "http.request.method",
    "http.response.status_code",
];

impl NameMap {
    /// The names of every metric `catalog` has a role for.
    pub fn new(catalog: &Catalog) -> NameMap {
        let mut by_prom = BTreeMap::new();
        let mut attribute_keys = BTreeMap::new();
        for rule in catalog.rules() {
            for (key, _) in rule.attributes {
                attribute_keys.insert(sanitize(key), key.clone());
            }
            let Some(role) = rule.role else { continue };
            let shape = if role.is_counter() {
                Shape::Counter
            } else {
                Shape::Gauge
            };
            let target = Target {
                otlp: Arc::from(rule.metric),
                shape,
                unit: if role.is_memory() { "By" } else { "1" },
            };
            for name in prometheus_names(rule.metric, role) {
                // The first rule wins, as in the catalog.
                by_prom.entry(name).or_insert_with(|| target.clone());
            }
        }
        for key in DISPLAY_KEYS {
            attribute_keys.insert(sanitize(key), (*key).to_owned());
        }
        NameMap {
            by_prom,
            attribute_keys,
        }
    }

    /// Every Prometheus name looked for, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.by_prom.keys().map(String::as_str)
    }

    /// The OTLP metric behind a Prometheus name.
    pub fn lookup(&self, prom_name: &str) -> Option<&Target> {
        self.by_prom.get(prom_name)
    }

    /// A PromQL matcher for all of them: `__name__=~`…``. A raw (backtick) string, so the
    /// regex's escapes of UTF-8 names' dots need no second escaping.
    pub fn name_matcher(&self) -> String {
        let alternatives: Vec<String> = self.names().map(regex_escape).collect();
        format!("__name__=~`{}`", alternatives.join("|"))
    }

    /// The OTLP attribute key of a data-point label: the catalog's own key when the label is its
    /// translation (`jvm_memory_type` → `jvm.memory.type`), else the label as it is (a
    /// Prometheus 3 UTF-8 label already is the key).
    pub fn attribute_key(&self, label: &str) -> String {
        self.attribute_keys
            .get(label)
            .cloned()
            .unwrap_or_else(|| label.to_owned())
    }
}

/// The Prometheus names one OTLP metric of `role` may be stored under.
pub fn prometheus_names(otlp: &str, role: Role) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let bases = [sanitize(otlp), otlp.to_owned()];
    for base in &bases {
        let mut add = |suffixes: &[&str]| {
            let mut name = base.clone();
            for s in suffixes {
                if !name.ends_with(&format!("_{s}")) && !name.ends_with(&format!(".{s}")) {
                    name.push('_');
                    name.push_str(s);
                }
            }
            names.insert(name);
        };
        if role.is_memory() {
            add(&["bytes"]);
            add(&[]);
        } else if role.is_counter() && is_histogram(otlp) {
            // Only the count matters to the detector; `_sum` and `_bucket` are not fetched.
            add(&["seconds", "count"]);
            add(&["milliseconds", "count"]);
            add(&["count"]);
        } else if role.is_counter() {
            add(&["total"]);
            add(&[]);
        } else {
            add(&[]);
        }
    }
    names
}

/// Whether a counter-role metric of the catalog is a histogram (its count is the counter).
fn is_histogram(otlp: &str) -> bool {
    otlp.ends_with(".duration")
}

/// The series a histogram becomes in Prometheus (with suffixes), e.g. for tests and docs.
pub fn histogram_series(otlp: &str, unit_suffix: &str) -> [String; 3] {
    let base = format!("{}_{unit_suffix}", sanitize(otlp));
    ["count", "sum", "bucket"].map(|s| format!("{base}_{s}"))
}

/// Prometheus's legacy name rule: characters outside `[a-zA-Z0-9_:]` become `_`, and runs of
/// underscores collapse (as the OTLP translation's token join does).
pub fn sanitize(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        let c = if c.is_ascii_alphanumeric() || c == ':' {
            c
        } else {
            '_'
        };
        if c == '_' && out.ends_with('_') {
            continue;
        }
        out.push(c);
    }
    out
}

fn regex_escape(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for c in name.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The OTLP resource attributes of a process, from its `job` and `instance` labels and, when
/// there is one, its `target_info` series' other labels (translated back by turning
/// underscores into dots, which is right for the semantic conventions' resource keys and only
/// cosmetic otherwise: identity is (`job`, `instance`)).
pub fn resource_attributes(
    job: &str,
    instance: &str,
    target_info: Option<&BTreeMap<String, String>>,
) -> Vec<(String, String)> {
    let mut attrs = BTreeMap::new();
    match job.split_once('/') {
        Some((namespace, name)) => {
            attrs.insert("service.namespace".to_owned(), namespace.to_owned());
            attrs.insert("service.name".to_owned(), name.to_owned());
        }
        None => {
            attrs.insert("service.name".to_owned(), job.to_owned());
        }
    }
    if !instance.is_empty() {
        attrs.insert("service.instance.id".to_owned(), instance.to_owned());
    }
    for (label, value) in target_info.into_iter().flatten() {
        if matches!(label.as_str(), "__name__" | "job" | "instance") {
            continue;
        }
        let key = if label.contains('.') {
            label.clone()
        } else {
            label.replace('_', ".")
        };
        attrs.entry(key).or_insert_with(|| value.clone());
    }
    attrs.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map() -> NameMap {
        NameMap::new(&Catalog::builtin())
    }

    #[test]
    fn suffixed_unsuffixed_and_utf8_names_of_a_memory_gauge() {
        let names = prometheus_names("v8js.memory.heap.used", Role::HeapUsed);
        let expected = [
            "v8js.memory.heap.used",
            "v8js.memory.heap.used_bytes",
            "v8js_memory_heap_used",
            "v8js_memory_heap_used_bytes",
        ];
        assert_eq!(names, expected.iter().map(|s| s.to_string()).collect());
    }

    #[test]
    fn histograms_are_found_by_their_count() {
        let names = prometheus_names("v8js.gc.duration", Role::GcCount);
        assert!(names.contains("v8js_gc_duration_seconds_count"));
        assert!(names.contains("v8js_gc_duration_count"));
        assert!(names.contains("v8js.gc.duration_seconds_count"));
        assert!(!names.iter().any(|n| n.ends_with("_bucket")));
        assert_eq!(
            histogram_series("http.server.request.duration", "seconds"),
            [
                "http_server_request_duration_seconds_count",
                "http_server_request_duration_seconds_sum",
                "http_server_request_duration_seconds_bucket"
            ]
        );
    }

    #[test]
    fn monotonic_sums_get_total_once() {
        let names = prometheus_names("cpython.gc.collections", Role::GcCount);
        assert!(names.contains("cpython_gc_collections_total"));
        assert!(names.contains("cpython_gc_collections"));
        let names = prometheus_names("http_requests_total", Role::RequestCount);
        assert!(names.contains("http_requests_total"));
        assert!(!names.iter().any(|n| n.ends_with("_total_total")));
    }

    #[test]
    fn the_guides_names_are_known() {
        let m = map();
        for (prom, otlp, shape) in [
            (
                "process_runtime_nodejs_memory_heap_used",
                "process.runtime.nodejs.memory.heap.used",
                Shape::Gauge,
            ),
            (
                "process_runtime_nodejs_memory_rss",
                "process.runtime.nodejs.memory.rss",
                Shape::Gauge,
            ),
            (
                "process_runtime_nodejs_gc_count_total",
                "process.runtime.nodejs.gc.count",
                Shape::Counter,
            ),
            ("http_requests_total", "http_requests_total", Shape::Counter),
            (
                "process_runtime_cpython_memory_bytes",
                "process.runtime.cpython.memory",
                Shape::Gauge,
            ),
            (
                "http_server_request_duration_seconds_count",
                "http.server.request.duration",
                Shape::Counter,
            ),
        ] {
            let t = m.lookup(prom).unwrap_or_else(|| panic!("{prom} unknown"));
            assert_eq!((&*t.otlp, t.shape), (otlp, shape), "{prom}");
        }
        // Ignored metrics and metrics outside the catalog are not looked for.
        assert!(m.lookup("go_memory_gc_goal_bytes").is_none());
        assert!(m.lookup("process_memory_virtual_bytes").is_none());
    }

    #[test]
    fn labels_go_back_to_the_catalogs_attribute_keys() {
        let m = map();
        assert_eq!(m.attribute_key("jvm_memory_type"), "jvm.memory.type");
        assert_eq!(m.attribute_key("memory_type"), "memory.type");
        assert_eq!(
            m.attribute_key("v8js_heap_space_name"),
            "v8js.heap.space.name"
        );
        assert_eq!(m.attribute_key("memory.type"), "memory.type");
        assert_eq!(m.attribute_key("pool"), "pool");
    }

    #[test]
    fn the_name_matcher_escapes_utf8_names() {
        let matcher = map().name_matcher();
        assert!(matcher.starts_with("__name__=~`"));
        assert!(
            matcher.contains("|v8js\\.memory\\.heap\\.used|"),
            "{matcher}"
        );
        assert!(matcher.contains("|v8js_memory_heap_used_bytes"));
    }

    #[test]
    fn job_and_instance_become_the_resource() {
        let mut info = BTreeMap::new();
        info.insert("telemetry_sdk_language".to_owned(), "nodejs".to_owned());
        info.insert("job".to_owned(), "shop/checkout".to_owned());
        let attrs = resource_attributes("shop/checkout", "pod-7", Some(&info));
        let get = |k: &str| attrs.iter().find(|(a, _)| a == k).map(|(_, v)| v.as_str());
        assert_eq!(get("service.namespace"), Some("shop"));
        assert_eq!(get("service.name"), Some("checkout"));
        assert_eq!(get("service.instance.id"), Some("pod-7"));
        assert_eq!(get("telemetry.sdk.language"), Some("nodejs"));
        assert_eq!(get("job"), None);
        let attrs = resource_attributes("checkout", "", None);
        assert_eq!(
            attrs,
            vec![("service.name".to_owned(), "checkout".to_owned())]
        );
    }

    #[test]
    fn sanitize_collapses_runs() {
        assert_eq!(sanitize("a.b..c-d"), "a_b_c_d");
        assert_eq!(sanitize("http_requests_total"), "http_requests_total");
    }
}
