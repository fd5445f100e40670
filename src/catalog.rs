//! Which metrics carry which memory signal: maps an OTLP metric (name, unit, attributes) to a
//! [`Role`] the detector understands, plus the factor that turns its unit into bytes.
//!
//! Classification runs once per new series, not per point, so it is a plain ordered rule list:
//! the first rule whose metric name matches and whose attribute constraints all hold wins. User
//! rules ([`Catalog::with_rules`]) come before the built-in ones, so they can override them.
//! Built-in rules may also *ignore* a metric (e.g. `process.runtime.cpython.memory` with
//! `memory.type=vms`): virtual size says nothing about leaks and must not fall through to a
//! broader rule.
//!
//! Choices worth knowing:
//! - `v8js.memory.heap.used` is per heap space; each space is its own series and the detector
//!   judges each on its own (leaks show in `old_space`; summing spaces would only add the noise of
//!   the young spaces).
//! - `v8js.memory.heap.limit` is, despite its name, each V8 space's current *size* (what the
//!   Node.js instrumentation reads from `v8.getHeapSpaceStatistics().space_size`): memory the
//!   heap has committed, which moves with usage. It is [`Role::HeapCommitted`], like
//!   `process.runtime.nodejs.memory.heap.total`, .NET's
//!   `dotnet.gc.last_collection.memory.committed_size` and the JVM's `jvm.memory.committed`
//!   (heap pools). Resident memory follows the committed heap (a smoothed sawtooth peak, not a
//!   floor), so the resource detector judges resident minus committed memory (native memory)
//!   when a process reports both. `v8js.heap.space.*` sizes are never limits.
//! - `go.memory.gc.goal` follows usage with slack; it is neither usage nor limit and is not
//!   classified.
//! - Histograms (`*.gc.duration`, `http.server.request.duration`) are classified by their count:
//!   the caller feeds the histogram's count as a cumulative or delta counter.

use std::collections::BTreeMap;

/// What a series means to the detector.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Managed heap in use (includes garbage not yet collected: a sawtooth).
    HeapUsed,
    /// Heap in use right after a collection: the floor that survives GC.
    HeapAfterGc,
    /// Resident set size of the process.
    Rss,
    /// Memory charged to the container without its page cache (working set).
    ContainerMemory,
    /// Memory charged to the container *including* page cache (`container.memory.usage`): it
    /// rises with files written and read, so it is judged only when the process reports nothing
    /// better (working set, RSS, heap).
    ContainerUsage,
    /// A hard memory limit (heap max, container limit).
    MemoryLimit,
    /// Heap memory committed by the runtime (follows the sawtooth's peaks; summed over spaces
    /// or pools it is what resident memory holds for the heap).
    HeapCommitted,
    /// Number of garbage collections (a counter; becomes a rate).
    GcCount,
    /// Number of requests served (a counter; becomes a rate).
    RequestCount,
    /// Number of goroutines / threads (a gauge).
    Goroutines,
    /// Live objects of one type (a gauge per `object.type`, the seed guide's
    /// `process.runtime.python.objects`): names what grows, never a leak signal by itself.
    ObjectCount,
}

impl Role {
    /// The snake_case name, as used in config files and events.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::HeapUsed => "heap_used",
            Role::HeapAfterGc => "heap_after_gc",
            Role::Rss => "rss",
            Role::ContainerMemory => "container_memory",
            Role::ContainerUsage => "container_usage",
            Role::MemoryLimit => "memory_limit",
            Role::HeapCommitted => "heap_committed",
            Role::GcCount => "gc_count",
            Role::RequestCount => "request_count",
            Role::Goroutines => "goroutines",
            Role::ObjectCount => "object_count",
        }
    }

    /// Whether the series is a count whose rate (per second) is the signal.
    pub fn is_counter(self) -> bool {
        matches!(self, Role::GcCount | Role::RequestCount)
    }

    /// Whether the series is an amount of memory in bytes.
    pub fn is_memory(self) -> bool {
        matches!(
            self,
            Role::HeapUsed
                | Role::HeapAfterGc
                | Role::Rss
                | Role::ContainerMemory
                | Role::ContainerUsage
                | Role::MemoryLimit
                | Role::HeapCommitted
        )
    }
}

/// The result of classifying a series.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Classified {
    /// What the series means.
    pub role: Role,
    /// Multiply a raw value by this to get bytes (memory roles) or 1 (counts).
    pub scale: f64,
}

/// A user-supplied classification rule.
#[derive(Clone, Debug, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// Exact metric name.
    pub metric: String,
    /// Role given to matching series.
    pub role: Role,
    /// Attribute constraints; all must match exactly.
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
}

/// One rule: metric name, attribute constraints, and the role (`None` = deliberately ignored).
#[derive(Clone, Debug)]
struct Rule {
    metric: String,
    attributes: Vec<(String, String)>,
    role: Option<Role>,
}

impl Rule {
    fn matches(&self, metric_name: &str, attrs: &[(&str, &str)]) -> bool {
        self.metric == metric_name
            && self
                .attributes
                .iter()
                .all(|(k, v)| attrs.iter().any(|(ak, av)| ak == k && av == v))
    }
}

/// An ordered list of classification rules.
#[derive(Clone, Debug)]
pub struct Catalog {
    rules: Vec<Rule>,
    limits: Vec<LimitConfig>,
}

/// A memory limit configured for the processes whose resource attributes all match
/// (`catalog.limits`), for forecasts where no runtime or container limit is reported.
#[derive(Clone, Debug, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct LimitConfig {
    /// Resource attributes; all must match exactly.
    #[serde(rename = "match")]
    pub matches: BTreeMap<String, String>,
    /// The limit, in bytes.
    pub limit_bytes: u64,
}

/// (metric, [(attribute, value)], role) — `None` role means "ignore".
type BuiltinRule = (
    &'static str,
    &'static [(&'static str, &'static str)],
    Option<Role>,
);

const BUILTIN: &[BuiltinRule] = &[
    // Node.js (semantic conventions, @opentelemetry/instrumentation-runtime-node).
    ("v8js.memory.heap.used", &[], Some(Role::HeapUsed)),
    ("v8js.memory.heap.limit", &[], Some(Role::HeapCommitted)),
    // The same space size under the name newer conventions give it.
    (
        "v8js.memory.heap.space.size",
        &[],
        Some(Role::HeapCommitted),
    ),
    ("v8js.gc.duration", &[], Some(Role::GcCount)),
    // Node.js (older runtime-metrics names).
    (
        "process.runtime.nodejs.memory.heap.used",
        &[],
        Some(Role::HeapUsed),
    ),
    (
        "process.runtime.nodejs.memory.heap.total",
        &[],
        Some(Role::HeapCommitted),
    ),
    ("process.runtime.nodejs.memory.rss", &[], Some(Role::Rss)),
    ("process.runtime.nodejs.gc.count", &[], Some(Role::GcCount)),
    // JVM (semantic conventions).
    (
        "jvm.memory.used",
        &[("jvm.memory.type", "heap")],
        Some(Role::HeapUsed),
    ),
    (
        "jvm.memory.used_after_last_gc",
        &[("jvm.memory.type", "heap")],
        Some(Role::HeapAfterGc),
    ),
    (
        "jvm.memory.limit",
        &[("jvm.memory.type", "heap")],
        Some(Role::MemoryLimit),
    ),
    (
        "jvm.memory.committed",
        &[("jvm.memory.type", "heap")],
        Some(Role::HeapCommitted),
    ),
    ("jvm.gc.duration", &[], Some(Role::GcCount)),
    // JVM (older runtime-metrics names).
    (
        "process.runtime.jvm.memory.usage",
        &[("type", "heap")],
        Some(Role::HeapUsed),
    ),
    (
        "process.runtime.jvm.memory.usage_after_last_gc",
        &[("type", "heap")],
        Some(Role::HeapAfterGc),
    ),
    (
        "process.runtime.jvm.memory.limit",
        &[("type", "heap")],
        Some(Role::MemoryLimit),
    ),
    ("process.runtime.jvm.gc.duration", &[], Some(Role::GcCount)),
    // Go (semantic conventions).
    ("go.memory.used", &[], Some(Role::HeapUsed)),
    ("go.memory.limit", &[], Some(Role::MemoryLimit)),
    ("go.memory.gc.goal", &[], None),
    ("go.goroutine.count", &[], Some(Role::Goroutines)),
    // Go (older runtime-metrics names).
    (
        "process.runtime.go.mem.heap_alloc",
        &[],
        Some(Role::HeapUsed),
    ),
    ("process.runtime.go.gc.count", &[], Some(Role::GcCount)),
    ("process.runtime.go.goroutines", &[], Some(Role::Goroutines)),
    // .NET (semantic conventions): gen2, LOH and POH survive collections; gen0/gen1 are churn.
    (
        "dotnet.gc.last_collection.heap.size",
        &[("dotnet.gc.heap.generation", "gen2")],
        Some(Role::HeapAfterGc),
    ),
    (
        "dotnet.gc.last_collection.heap.size",
        &[("dotnet.gc.heap.generation", "loh")],
        Some(Role::HeapAfterGc),
    ),
    (
        "dotnet.gc.last_collection.heap.size",
        &[("dotnet.gc.heap.generation", "poh")],
        Some(Role::HeapAfterGc),
    ),
    // .NET 9's runtime itself emits the attribute without the `dotnet.` prefix
    // (System.Runtime meter, .NET 9.0): accept both spellings.
    (
        "dotnet.gc.last_collection.heap.size",
        &[("gc.heap.generation", "gen2")],
        Some(Role::HeapAfterGc),
    ),
    (
        "dotnet.gc.last_collection.heap.size",
        &[("gc.heap.generation", "loh")],
        Some(Role::HeapAfterGc),
    ),
    (
        "dotnet.gc.last_collection.heap.size",
        &[("gc.heap.generation", "poh")],
        Some(Role::HeapAfterGc),
    ),
    (
        "dotnet.gc.last_collection.memory.committed_size",
        &[],
        Some(Role::HeapCommitted),
    ),
    ("dotnet.process.memory.working_set", &[], Some(Role::Rss)),
    ("dotnet.gc.collections", &[], Some(Role::GcCount)),
    // Python: the guide's own instrumentation (observable gauges over tracemalloc and `gc`,
    // ../shared/seed guide, "Python Runtime Metrics"): `current_allocated` is the live traced
    // heap; `peak_allocated` is a running maximum, never a leak signal; `gc.stat=collections`
    // counts collections per generation (a cumulative count reported as a gauge).
    (
        "process.runtime.python.memory",
        &[("memory.type", "current_allocated")],
        Some(Role::HeapUsed),
    ),
    (
        "process.runtime.python.memory",
        &[("memory.type", "peak_allocated")],
        None,
    ),
    (
        "process.runtime.python.gc",
        &[("gc.stat", "collections")],
        Some(Role::GcCount),
    ),
    ("process.runtime.python.gc", &[], None),
    // The guide's live object counts per `object.type` (gc.get_objects by type): what leaks.
    (
        "process.runtime.python.objects",
        &[],
        Some(Role::ObjectCount),
    ),
    // Python (opentelemetry-instrumentation-system-metrics' runtime names).
    (
        "process.runtime.python.memory",
        &[("memory.type", "rss")],
        Some(Role::Rss),
    ),
    (
        "process.runtime.python.memory",
        &[("memory.type", "vms")],
        None,
    ),
    (
        "process.runtime.python.memory",
        &[("memory.type", "current")],
        Some(Role::HeapUsed),
    ),
    (
        "process.runtime.python.memory",
        &[("memory.type", "heap")],
        Some(Role::HeapUsed),
    ),
    (
        "process.runtime.cpython.memory",
        &[("type", "rss")],
        Some(Role::Rss),
    ),
    ("process.runtime.cpython.memory", &[("type", "vms")], None),
    (
        "process.runtime.cpython.memory",
        &[("memory.type", "rss")],
        Some(Role::Rss),
    ),
    (
        "process.runtime.cpython.memory",
        &[("memory.type", "vms")],
        None,
    ),
    (
        "process.runtime.cpython.memory",
        &[("memory.type", "current")],
        Some(Role::HeapUsed),
    ),
    (
        "process.runtime.cpython.memory",
        &[("memory.type", "heap")],
        Some(Role::HeapUsed),
    ),
    ("cpython.gc.collections", &[], Some(Role::GcCount)),
    ("process.runtime.cpython.gc_count", &[], Some(Role::GcCount)),
    // leakwatch's own allocator (self-monitoring, `selfwatch::HEAP_METRIC`): live bytes, no GC.
    ("leakwatch.memory.heap.allocated", &[], Some(Role::HeapUsed)),
    // Any runtime / platform.
    ("process.memory.usage", &[], Some(Role::Rss)),
    (
        "container.memory.working_set",
        &[],
        Some(Role::ContainerMemory),
    ),
    // kubeletstats receiver: `usage` includes page cache (see `Role::ContainerUsage`); `rss` is
    // anonymous memory; `available` is limit minus working set, neither usage nor limit.
    ("container.memory.usage", &[], Some(Role::ContainerUsage)),
    ("container.memory.rss", &[], Some(Role::Rss)),
    ("container.memory.available", &[], None),
    (
        "k8s.pod.memory.working_set",
        &[],
        Some(Role::ContainerMemory),
    ),
    // Container limits: the Collector's k8s_cluster receiver (`memory_limit`, with an
    // underscore), older conventions (`memory.limit`), current conventions (`.limit.desired`,
    // the spec, and `.limit.current`, what is in force).
    ("k8s.container.memory_limit", &[], Some(Role::MemoryLimit)),
    ("k8s.container.memory.limit", &[], Some(Role::MemoryLimit)),
    (
        "k8s.container.memory.limit.current",
        &[],
        Some(Role::MemoryLimit),
    ),
    (
        "k8s.container.memory.limit.desired",
        &[],
        Some(Role::MemoryLimit),
    ),
    // Requests (histogram counts or counters).
    (
        "http.server.request.duration",
        &[],
        Some(Role::RequestCount),
    ),
    ("http.server.duration", &[], Some(Role::RequestCount)),
    ("http.server.requests", &[], Some(Role::RequestCount)),
    ("http.server.request.count", &[], Some(Role::RequestCount)),
    ("http_requests_total", &[], Some(Role::RequestCount)),
    ("http_server_requests_total", &[], Some(Role::RequestCount)),
    ("rpc.server.duration", &[], Some(Role::RequestCount)),
];

impl Default for Catalog {
    fn default() -> Self {
        Catalog::builtin()
    }
}

impl Catalog {
    /// The built-in rules for Node.js, JVM, Go, .NET, Python and platform metrics.
    pub fn builtin() -> Catalog {
        let rules = BUILTIN
            .iter()
            .map(|(metric, attrs, role)| Rule {
                metric: (*metric).to_owned(),
                attributes: attrs
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
                role: *role,
            })
            .collect();
        Catalog {
            rules,
            limits: Vec::new(),
        }
    }

    /// The built-in rules with `extra` placed before them (so they take precedence).
    pub fn with_rules(extra: Vec<RuleConfig>) -> Catalog {
        let mut rules: Vec<Rule> = extra
            .into_iter()
            .map(|r| Rule {
                metric: r.metric,
                attributes: r.attributes.into_iter().collect(),
                role: Some(r.role),
            })
            .collect();
        rules.extend(Catalog::builtin().rules);
        Catalog {
            rules,
            limits: Vec::new(),
        }
    }

    /// The same catalog with limits configured per resource attribute match.
    pub fn with_limits(mut self, limits: Vec<LimitConfig>) -> Catalog {
        self.limits = limits;
        self
    }

    /// The configured limit of a resource, `attr` giving its attributes' values: the first
    /// entry whose attributes all match.
    pub fn limit_for(&self, attr: impl Fn(&str) -> Option<String>) -> Option<f64> {
        self.limits
            .iter()
            .find(|l| {
                l.matches
                    .iter()
                    .all(|(k, v)| attr(k).is_some_and(|a| &a == v))
            })
            .map(|l| l.limit_bytes as f64)
    }

    /// Called once when a new series is first seen (not per point). `attrs` are the data
    /// point's attributes with values stringified.
    pub fn classify(
        &self,
        metric_name: &str,
        unit: &str,
        attrs: &[(&str, &str)],
    ) -> Option<Classified> {
        let rule = self.rules.iter().find(|r| r.matches(metric_name, attrs))?;
        let role = rule.role?;
        let scale = if role.is_memory() {
            unit_scale(unit)?
        } else {
            1.0
        };
        Some(Classified { role, scale })
    }
}

impl Catalog {
    /// Every metric name some rule matches (the engine indexes them so that
    /// points of other metrics are skipped with one hash lookup).
    pub fn metric_names(&self) -> impl Iterator<Item = &str> {
        self.rules.iter().map(|r| r.metric.as_str())
    }

    /// Every rule, in order: metric name, attribute constraints and role (`None` = ignored).
    /// `leakwatch analyze` derives from them the names Prometheus stores these metrics under.
    pub fn rules(&self) -> impl Iterator<Item = RuleView<'_>> {
        self.rules.iter().map(|r| RuleView {
            metric: &r.metric,
            attributes: &r.attributes,
            role: r.role,
        })
    }
}

/// One classification rule, read-only.
#[derive(Clone, Copy, Debug)]
pub struct RuleView<'a> {
    /// Exact OTLP metric name.
    pub metric: &'a str,
    /// Attribute constraints (all must match).
    pub attributes: &'a [(String, String)],
    /// Role given, `None` when the rule deliberately ignores the metric.
    pub role: Option<Role>,
}

/// Bytes per unit for UCUM-style byte units; `None` for a unit that is not an amount of memory
/// (a memory metric in, say, seconds is misconfigured and better ignored than misread).
pub fn unit_scale(unit: &str) -> Option<f64> {
    // Annotations like "{bytes}" carry no scale; an empty unit is taken as bytes.
    let u = unit.trim();
    let scale = match u {
        "" | "By" | "B" | "byte" | "bytes" | "{byte}" | "{bytes}" | "1" => 1.0,
        "kBy" | "KBy" | "kB" | "KB" => 1e3,
        "MBy" | "MB" => 1e6,
        "GBy" | "GB" => 1e9,
        "KiBy" | "KiB" => 1024.0,
        "MiBy" | "MiB" => 1024.0 * 1024.0,
        "GiBy" | "GiB" => 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    Some(scale)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn role(c: &Catalog, name: &str, attrs: &[(&str, &str)]) -> Option<Role> {
        c.classify(name, "By", attrs).map(|c| c.role)
    }

    #[test]
    fn node_heap_spaces_are_heap_used() {
        let c = Catalog::builtin();
        assert_eq!(
            role(
                &c,
                "v8js.memory.heap.used",
                &[("v8js.heap.space.name", "old_space")]
            ),
            Some(Role::HeapUsed)
        );
        // Each space's current size: committed heap, not a limit.
        assert_eq!(
            role(&c, "v8js.memory.heap.limit", &[]),
            Some(Role::HeapCommitted)
        );
        assert_eq!(
            role(&c, "v8js.memory.heap.space.size", &[]),
            Some(Role::HeapCommitted)
        );
        assert_eq!(role(&c, "v8js.heap.space.available_size", &[]), None);
        assert_eq!(
            role(&c, "process.runtime.nodejs.memory.heap.total", &[]),
            Some(Role::HeapCommitted)
        );
        assert_eq!(
            role(&c, "dotnet.gc.last_collection.memory.committed_size", &[]),
            Some(Role::HeapCommitted)
        );
    }

    #[test]
    fn jvm_requires_heap_type() {
        let c = Catalog::builtin();
        assert_eq!(
            role(&c, "jvm.memory.used", &[("jvm.memory.type", "heap")]),
            Some(Role::HeapUsed)
        );
        assert_eq!(
            role(&c, "jvm.memory.used", &[("jvm.memory.type", "non_heap")]),
            None
        );
        assert_eq!(
            role(
                &c,
                "jvm.memory.used_after_last_gc",
                &[("jvm.memory.type", "heap")]
            ),
            Some(Role::HeapAfterGc)
        );
        assert_eq!(role(&c, "jvm.gc.duration", &[]), Some(Role::GcCount));
    }

    #[test]
    fn dotnet_generations() {
        let c = Catalog::builtin();
        let name = "dotnet.gc.last_collection.heap.size";
        assert_eq!(
            role(&c, name, &[("dotnet.gc.heap.generation", "gen2")]),
            Some(Role::HeapAfterGc)
        );
        assert_eq!(
            role(&c, name, &[("dotnet.gc.heap.generation", "gen0")]),
            None
        );
    }

    #[test]
    fn python_memory_types() {
        let c = Catalog::builtin();
        let name = "process.runtime.cpython.memory";
        assert_eq!(role(&c, name, &[("type", "rss")]), Some(Role::Rss));
        assert_eq!(role(&c, name, &[("type", "vms")]), None);
    }

    #[test]
    fn user_rules_take_precedence() {
        let mut attributes = BTreeMap::new();
        attributes.insert("jvm.memory.type".to_owned(), "heap".to_owned());
        let c = Catalog::with_rules(vec![RuleConfig {
            metric: "jvm.memory.used".to_owned(),
            role: Role::Rss,
            attributes,
        }]);
        assert_eq!(
            role(&c, "jvm.memory.used", &[("jvm.memory.type", "heap")]),
            Some(Role::Rss)
        );
        assert_eq!(
            role(&Catalog::with_rules(vec![]), "go.memory.used", &[]),
            Some(Role::HeapUsed)
        );
    }

    #[test]
    fn units_scale_to_bytes() {
        let c = Catalog::builtin();
        let k = c.classify("go.memory.used", "KiBy", &[]);
        assert_eq!(k.map(|k| k.scale), Some(1024.0));
        let m = c.classify("process.memory.usage", "MB", &[]);
        assert_eq!(m.map(|k| k.scale), Some(1e6));
        assert_eq!(c.classify("process.memory.usage", "s", &[]), None);
        let g = c.classify("jvm.gc.duration", "s", &[]);
        assert_eq!(
            g,
            Some(Classified {
                role: Role::GcCount,
                scale: 1.0
            })
        );
    }

    #[test]
    fn requests_are_counted() {
        let c = Catalog::builtin();
        assert_eq!(
            c.classify("http.server.request.duration", "s", &[("http.route", "/")])
                .map(|k| k.role),
            Some(Role::RequestCount)
        );
        assert_eq!(
            role(&c, "http_requests_total", &[]),
            Some(Role::RequestCount)
        );
    }

    #[test]
    fn the_seed_guides_python_gauges() {
        let c = Catalog::builtin();
        let py = "process.runtime.python.memory";
        assert_eq!(
            role(&c, py, &[("memory.type", "current_allocated")]),
            Some(Role::HeapUsed)
        );
        // A running maximum: never a leak signal, and it must not fall through to another rule.
        assert_eq!(role(&c, py, &[("memory.type", "peak_allocated")]), None);
        let gc = "process.runtime.python.gc";
        for generation in ["0", "1", "2"] {
            assert_eq!(
                role(
                    &c,
                    gc,
                    &[("gc.generation", generation), ("gc.stat", "collections")]
                ),
                Some(Role::GcCount)
            );
            for stat in ["collected_objects", "uncollectable_objects"] {
                assert_eq!(
                    role(&c, gc, &[("gc.generation", generation), ("gc.stat", stat)]),
                    None
                );
            }
        }
    }

    #[test]
    fn container_names_real_exporters_use() {
        let c = Catalog::builtin();
        for limit in [
            "k8s.container.memory_limit",
            "k8s.container.memory.limit",
            "k8s.container.memory.limit.current",
            "k8s.container.memory.limit.desired",
        ] {
            assert_eq!(role(&c, limit, &[]), Some(Role::MemoryLimit), "{limit}");
        }
        assert_eq!(role(&c, "container.memory.rss", &[]), Some(Role::Rss));
        assert_eq!(
            role(&c, "container.memory.working_set", &[]),
            Some(Role::ContainerMemory)
        );
        // Page cache included: judged only when nothing better is reported.
        assert_eq!(
            role(&c, "container.memory.usage", &[]),
            Some(Role::ContainerUsage)
        );
        assert_eq!(role(&c, "container.memory.available", &[]), None);
    }

    #[test]
    fn dotnet_9_generation_attribute_without_prefix() {
        let c = Catalog::builtin();
        let name = "dotnet.gc.last_collection.heap.size";
        for generation in ["gen2", "loh", "poh"] {
            assert_eq!(
                role(&c, name, &[("gc.heap.generation", generation)]),
                Some(Role::HeapAfterGc)
            );
            assert_eq!(
                role(&c, name, &[("dotnet.gc.heap.generation", generation)]),
                Some(Role::HeapAfterGc)
            );
        }
        assert_eq!(role(&c, name, &[("gc.heap.generation", "gen0")]), None);
    }
}
