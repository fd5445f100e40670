//! `leakwatch rules` checked by the real `promtool` (Debian's `prometheus` package): the group
//! parses (`promtool check rules`), and over the derived metrics as Prometheus names them
//! after a collector's OTLP translation it fires the same alerts as the Alertmanager outlet —
//! names, process labels, static labels, annotations (`promtool test rules`). The names used
//! are those of what leakwatch actually emits.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use common::leak::{detector, lifecycle, trace};
use leakwatch::engine::{Engine, EngineConfig};
use leakwatch::notify::rules::{prometheus_name, GROWTH_RATE, LEAK_STATE, TIME_TO_LIMIT, TREND_R2};
use leakwatch::ops::telemetry::Telemetry;
use leakwatch::otlp::proto::otlp::metrics::v1::metric;

fn promtool() -> Option<PathBuf> {
    let p = std::env::var_os("LEAKWATCH_TEST_PROMTOOL")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/promtool"));
    if p.is_file() {
        return Some(p);
    }
    let msg = format!(
        "{} not found: run scripts/setup-test-env.sh (installs Debian's prometheus)",
        p.display()
    );
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{msg}");
    }
    eprintln!("SKIPPED: {msg}");
    None
}

struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Dir {
        let d = std::env::temp_dir().join(format!("leakwatch-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("temp dir");
        Dir(d)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `leakwatch rules -c <config>` written to `dir/rules.yml`.
fn rules(dir: &Path, config: &str) -> String {
    let cfg = dir.join("leakwatch.yaml");
    std::fs::write(&cfg, config).expect("config");
    let out = Command::new(env!("CARGO_BIN_EXE_leakwatch"))
        .arg("rules")
        .arg("-c")
        .arg(&cfg)
        .output()
        .expect("run leakwatch rules");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("utf-8");
    std::fs::write(dir.join("rules.yml"), &text).expect("write rules");
    text
}

fn run(promtool: &Path, dir: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(promtool)
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run promtool");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

const CONFIG: &str = "notify:\n  alertmanager:\n    labels: {cluster: eu-1}\n    runbook_url: https://runbooks.example/memory-leak\n";

/// Series as Prometheus holds them after an OpenTelemetry Collector (`job` =
/// service.namespace/service.name, `instance` = service.instance.id, the scope as
/// `otel_scope_name`), one sample a minute: checkout is suspected at 1m, confirmed at 3m,
/// resolved at 5m; catalog stays healthy.
const TESTS: &str = r#"rule_files: [rules.yml]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'leakwatch_leak_state_ratio{job="shop/checkout", instance="pod-1", otel_scope_name="leakwatch"}'
        values: '0 1 1 2 2 0'
      - series: 'leakwatch_memory_growth_rate_bytes_per_hour{job="shop/checkout", instance="pod-1", otel_scope_name="leakwatch"}'
        values: '0 2202009.6 2202009.6 2202009.6 2202009.6 0'
      - series: 'leakwatch_memory_trend_r2_ratio{job="shop/checkout", instance="pod-1", otel_scope_name="leakwatch"}'
        values: '0 0.96 0.96 0.97 0.97 0'
      - series: 'leakwatch_memory_time_to_limit_seconds{job="shop/checkout", instance="pod-1", otel_scope_name="leakwatch"}'
        values: '_ _ _ 50400 50400 _'
      - series: 'leakwatch_leak_state_ratio{job="catalog", instance="pod-2", otel_scope_name="leakwatch"}'
        values: '0 0 0 0 0 0'
      - series: 'leakwatch_memory_growth_rate_bytes_per_hour{job="catalog", instance="pod-2", otel_scope_name="leakwatch"}'
        values: '0 0 0 0 0 0'
    alert_rule_test:
      - eval_time: 0m
        alertname: MemoryLeakSuspected
        exp_alerts: []
      - eval_time: 1m
        alertname: MemoryLeakSuspected
        exp_alerts:
          - exp_labels: {severity: warning, cluster: eu-1, service_name: checkout, service_namespace: shop, service_instance_id: pod-1}
            exp_annotations:
              summary: 'Memory leak suspected in checkout: memory that survives GC is growing.'
              description: 'checkout (pod-1): memory that survives GC grows 2.1MiB/h (R² 0.96); leak suspected.'
              runbook_url: https://runbooks.example/memory-leak
      - eval_time: 1m
        alertname: MemoryLeakConfirmed
        exp_alerts: []
      - eval_time: 3m
        alertname: MemoryLeakSuspected
        exp_alerts:
          - exp_labels: {severity: warning, cluster: eu-1, service_name: checkout, service_namespace: shop, service_instance_id: pod-1}
            exp_annotations:
              summary: 'Memory leak suspected in checkout: memory that survives GC is growing.'
              description: 'checkout (pod-1): memory that survives GC grows 2.1MiB/h (R² 0.97); leak suspected; limit in about 14h 0m 0s.'
              runbook_url: https://runbooks.example/memory-leak
      - eval_time: 3m
        alertname: MemoryLeakConfirmed
        exp_alerts:
          - exp_labels: {severity: critical, cluster: eu-1, service_name: checkout, service_namespace: shop, service_instance_id: pod-1}
            exp_annotations:
              summary: 'Memory leak confirmed in checkout: memory that survives GC keeps growing.'
              description: 'checkout (pod-1): memory that survives GC grows 2.1MiB/h (R² 0.97); leak confirmed; limit in about 14h 0m 0s.'
              runbook_url: https://runbooks.example/memory-leak
      - eval_time: 5m
        alertname: MemoryLeakSuspected
        exp_alerts: []
      - eval_time: 5m
        alertname: MemoryLeakConfirmed
        exp_alerts: []
"#;

#[test]
fn promtool_accepts_the_rules_and_they_fire_like_the_alertmanager_outlet() {
    let Some(promtool) = promtool() else { return };
    let dir = Dir::new("rules");
    rules(&dir.0, CONFIG);
    let (ok, out) = run(&promtool, &dir.0, &["check", "rules", "rules.yml"]);
    assert!(ok && out.contains("SUCCESS: 2 rules found"), "{out}");

    std::fs::write(dir.0.join("tests.yml"), TESTS).expect("tests");
    let (ok, out) = run(&promtool, &dir.0, &["test", "rules", "tests.yml"]);
    assert!(ok, "promtool test rules failed:\n{out}");

    // The test has teeth: a wrong expectation fails.
    std::fs::write(
        dir.0.join("wrong.yml"),
        TESTS.replace("service_namespace: shop", "service_namespace: other"),
    )
    .expect("wrong");
    let (ok, _) = run(&promtool, &dir.0, &["test", "rules", "wrong.yml"]);
    assert!(!ok, "promtool should reject a wrong expectation");
}

#[test]
fn the_rules_read_the_names_leakwatch_actually_emits() {
    let engine = Engine::new(
        EngineConfig {
            detector: detector(),
            ..EngineConfig::default()
        },
        Arc::new(Telemetry::new()),
    );
    let (_, confirmed, _) = lifecycle();
    for step in 0..=confirmed {
        engine.ingest_metrics(trace(step, true)).expect("valid");
    }
    let derived = leakwatch::notify::derived_metrics(&engine);
    let emitted: BTreeSet<String> = derived
        .resource_metrics
        .iter()
        .flat_map(|r| &r.scope_metrics)
        .flat_map(|s| &s.metrics)
        .map(|m| {
            let gauge = matches!(m.data, Some(metric::Data::Gauge(_)));
            prometheus_name(&m.name, &m.unit, gauge, false)
        })
        .collect();
    for name in [LEAK_STATE, GROWTH_RATE, TREND_R2] {
        assert!(emitted.contains(name), "{name} not emitted: {emitted:?}");
    }
    assert!(emitted
        .iter()
        .all(|n| [LEAK_STATE, GROWTH_RATE, TREND_R2, TIME_TO_LIMIT].contains(&n.as_str())));
    let text = leakwatch::notify::rules::rule_group(None);
    for name in [LEAK_STATE, GROWTH_RATE, TREND_R2, TIME_TO_LIMIT] {
        assert!(text.contains(name), "{name} not in the rules");
    }
}
