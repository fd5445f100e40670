//! `leakwatch rules`: a Prometheus rule group for users who alert from their
//! TSDB instead of through the Alertmanager outlet. It reads the derived
//! metrics ([`super::derived`]) as they arrive in Prometheus through a
//! collector (OTLP → Prometheus translation with unit suffixes: a gauge of
//! unit `1` gets `_ratio`, `By/h` becomes `_bytes_per_hour`, `s` `_seconds`;
//! `service.namespace`/`service.name` become `job`, `service.instance.id`
//! `instance`) and makes the same alerts as the outlet: the same names,
//! the same process labels, the same annotation keys.

use std::collections::BTreeMap;

use serde::Serialize;

use super::alertmanager::{CONFIRMED, SUSPECTED};
use crate::config::notify::AlertmanagerConfig;

/// An OTLP metric's name in Prometheus, as the collector's Prometheus exporters and
/// Prometheus' own OTLP receiver translate it (with unit suffixes, the default): `.` → `_`,
/// the unit appended (`By` → `bytes`, `s` → `seconds`, `h` → `hour`, `a/b` → `a_per_b`),
/// `_ratio` for a gauge of unit `1`, `_total` for a monotonic sum.
pub fn prometheus_name(name: &str, unit: &str, gauge: bool, monotonic: bool) -> String {
    fn unit_word(u: &str) -> &str {
        match u {
            "By" => "bytes",
            "KiBy" => "kibibytes",
            "MiBy" => "mebibytes",
            "s" => "seconds",
            "ms" => "milliseconds",
            "h" => "hour",
            "min" => "minute",
            "d" => "day",
            "%" => "percent",
            other => other,
        }
    }
    let mut tokens: Vec<String> = name
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect();
    let unit = unit.trim();
    if !unit.is_empty() && unit != "1" && !unit.contains('{') {
        let (main, per) = match unit.split_once('/') {
            Some((m, p)) => (m, Some(p)),
            None => (unit, None),
        };
        if !main.is_empty() {
            let w = unit_word(main).to_owned();
            if !tokens.contains(&w) {
                tokens.push(w);
            }
        }
        if let Some(p) = per.filter(|p| !p.is_empty()) {
            let w = unit_word(p);
            tokens.push("per".to_owned());
            tokens.push(w.to_owned());
        }
    }
    if unit == "1" && gauge {
        tokens.retain(|t| t != "ratio");
        tokens.push("ratio".to_owned());
    }
    if monotonic {
        tokens.retain(|t| t != "total");
        tokens.push("total".to_owned());
    }
    tokens.join("_")
}

/// The derived metrics' Prometheus names (see [`super::derived`] for names and units).
pub const LEAK_STATE: &str = "leakwatch_leak_state_ratio";
pub const GROWTH_RATE: &str = "leakwatch_memory_growth_rate_bytes_per_hour";
pub const TREND_R2: &str = "leakwatch_memory_trend_r2_ratio";
pub const TIME_TO_LIMIT: &str = "leakwatch_memory_time_to_limit_seconds";

/// The process labels of the Alertmanager outlet ([`super::identity`]).
const BY: &str = "service_name, service_namespace, service_instance_id, k8s_namespace_name, k8s_pod_name, k8s_container_name";

#[derive(Serialize)]
struct RuleFile {
    groups: Vec<Group>,
}

#[derive(Serialize)]
struct Group {
    name: String,
    rules: Vec<Rule>,
}

#[derive(Serialize)]
struct Rule {
    alert: String,
    expr: String,
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
}

/// The growth rate of every process whose leak state is at least `state`, labelled like the
/// outlet's alerts: `job` split back into `service_namespace` / `service_name`, `instance` as
/// `service_instance_id`, everything else dropped.
fn expr(state: u8) -> String {
    format!(
        "max by ({BY}) (\n  label_replace(label_replace(label_replace(\n    {GROWTH_RATE}\n      and on (job, instance) {LEAK_STATE} >= {state},\n    \"service_name\", \"$2\", \"job\", \"(?:(.+)/)?(.+)\"),\n    \"service_namespace\", \"$1\", \"job\", \"(?:(.+)/)?(.+)\"),\n    \"service_instance_id\", \"$1\", \"instance\", \"(.+)\")\n)\n"
    )
}

fn description(verdict: &str) -> String {
    // `query` reads the trend's R² and the forecast of the same process, when present.
    const TEMPLATE: &str = concat!(
        "{{ $labels.service_name }} ({{ $labels.service_instance_id }}): memory that survives GC grows ",
        "{{ $value | humanize1024 }}B/h",
        "{{ with query (printf \"@R2@{instance=%q}\" $labels.service_instance_id) }}",
        "{{ with . | first }} (R² {{ .Value | printf \"%.2f\" }}){{ end }}{{ end }}",
        "; @VERDICT@",
        "{{ with query (printf \"@TTL@{instance=%q}\" $labels.service_instance_id) }}",
        "{{ with . | first }}; limit in about {{ .Value | humanizeDuration }}{{ end }}{{ end }}",
        "."
    );
    TEMPLATE
        .replace("@R2@", TREND_R2)
        .replace("@TTL@", TIME_TO_LIMIT)
        .replace("@VERDICT@", verdict)
}

/// The rule group as YAML; `am` supplies the static labels and runbook URL, as for the outlet.
pub fn rule_group(am: Option<&AlertmanagerConfig>) -> String {
    let rule = |name: &str, severity: &str, state: u8, summary: &str, verdict: &str| {
        let mut labels = am.map(|a| a.labels.clone()).unwrap_or_default();
        labels.insert("severity".to_owned(), severity.to_owned());
        let mut annotations = BTreeMap::new();
        annotations.insert("summary".to_owned(), summary.to_owned());
        annotations.insert("description".to_owned(), description(verdict));
        if let Some(r) = am.and_then(|a| a.runbook_url.clone()) {
            annotations.insert("runbook_url".to_owned(), r);
        }
        Rule {
            alert: name.to_owned(),
            expr: expr(state),
            labels,
            annotations,
        }
    };
    let file = RuleFile {
        groups: vec![Group {
            name: "leakwatch-memory-leaks".to_owned(),
            rules: vec![
                rule(
                    SUSPECTED,
                    "warning",
                    1,
                    &super::alertmanager::summary(SUSPECTED, "{{ $labels.service_name }}"),
                    "leak suspected",
                ),
                rule(
                    CONFIRMED,
                    "critical",
                    2,
                    &super::alertmanager::summary(CONFIRMED, "{{ $labels.service_name }}"),
                    "leak confirmed",
                ),
            ],
        }],
    };
    let yaml = serde_yaml::to_string(&file).unwrap_or_default();
    format!(
        "# Prometheus rules over leakwatch's derived metrics (generated by `leakwatch rules`).\n# The same alerts as notify.alertmanager: use one or the other.\n{yaml}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_translated_with_unit_suffixes() {
        assert_eq!(
            prometheus_name("leakwatch.leak.state", "1", true, false),
            LEAK_STATE
        );
        assert_eq!(
            prometheus_name("leakwatch.memory.growth_rate", "By/h", true, false),
            GROWTH_RATE
        );
        assert_eq!(
            prometheus_name("leakwatch.memory.trend_r2", "1", true, false),
            TREND_R2
        );
        assert_eq!(
            prometheus_name("leakwatch.memory.time_to_limit", "s", true, false),
            TIME_TO_LIMIT
        );
        assert_eq!(
            prometheus_name("process.runtime.nodejs.gc.count", "1", false, true),
            "process_runtime_nodejs_gc_count_total"
        );
        assert_eq!(
            prometheus_name("v8js.memory.heap.used", "By", true, false),
            "v8js_memory_heap_used_bytes"
        );
    }

    #[test]
    fn the_group_carries_the_static_labels_and_runbook() {
        let am = AlertmanagerConfig {
            labels: [("cluster".to_owned(), "eu-1".to_owned())].into(),
            runbook_url: Some("https://runbooks/leak".to_owned()),
            ..AlertmanagerConfig::default()
        };
        let y = rule_group(Some(&am));
        assert!(y.contains("cluster: eu-1"), "{y}");
        assert!(y.contains("runbook_url: https://runbooks/leak"), "{y}");
        assert!(y.contains("alert: MemoryLeakSuspected"));
        assert!(y.contains("alert: MemoryLeakConfirmed"));
        assert!(!rule_group(None).contains("runbook_url"));
    }
}
