//! End to end with real components: the OpenTelemetry Python SDK exports
//! metrics, spans and log records to leakwatch (the real binary) over gRPC and
//! over HTTP; leakwatch forwards them to a real collector, rotel. Every item
//! the SDK sent must reach rotel.
//!
//! Needs `scripts/setup-test-env.sh` (run by `scripts/test.sh`); fails, never
//! skips, when the environment is missing.

mod common;

use std::time::Duration;

use common::apps::SendSignals;
use common::procs::{Leakwatch, TestEnv};
use common::rotel::{attr_str, Received, Rotel, Value};

const QUIET_CONFIG: &str = "events:\n  derived_metrics: false\n";

fn check_protocol(protocol: &'static str) {
    let env = TestEnv::setup();
    let mut rotel = Rotel::start(env);
    let lw = Leakwatch::start(&rotel.grpc_endpoint(), QUIET_CONFIG);
    let endpoint = if protocol == "grpc" {
        lw.grpc_endpoint()
    } else {
        lw.http_endpoint()
    };
    let mut sender = SendSignals::new(endpoint);
    sender.protocol = protocol;
    sender.rounds = 2;
    sender.series = 3;
    sender.spans = 4;
    sender.logs = 5;
    let (status, stdout) = sender.run(env);
    let summary: serde_json::Value = serde_json::from_str(stdout.trim()).expect("summary JSON");
    assert!(status.success(), "the SDK's exports failed: {summary}");
    let run_id = summary["run_id"].as_str().expect("run_id").to_owned();

    // What the SDK says it sent.
    let mut expected_points = Vec::new();
    for export in summary["metrics"]["exports"].as_array().expect("exports") {
        assert_eq!(export["result"], "SUCCESS");
        for (metric, points) in export["points"].as_object().expect("points") {
            for p in points.as_array().expect("array") {
                let index = p["attributes"]["series.index"]
                    .as_i64()
                    .expect("series.index");
                expected_points.push((metric.clone(), index, p["value"].clone()));
            }
        }
    }
    let span_names: Vec<String> = summary["spans"]["names"]
        .as_array()
        .expect("names")
        .iter()
        .map(|n| n.as_str().unwrap_or_default().to_owned())
        .collect();
    let log_bodies: Vec<String> = summary["logs"]["bodies"]
        .as_array()
        .expect("bodies")
        .iter()
        .map(|n| n.as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(span_names.len(), 4);
    assert_eq!(log_bodies.len(), 5);
    assert!(expected_points.len() >= 3 * 4 * 2, "{expected_points:?}");

    let mine =
        |attrs: &common::rotel::Attributes| attr_str(attrs, "test.run_id") == Some(run_id.as_str());
    let received = rotel.wait_for(
        "every point, span and log record",
        Duration::from_secs(30),
        |r: &Received| {
            r.points.iter().filter(|p| mine(&p.resource)).count() >= expected_points.len()
                && r.spans.iter().filter(|s| mine(&s.resource)).count() >= span_names.len()
                && r.logs.iter().filter(|l| mine(&l.resource)).count() >= log_bodies.len()
        },
    );

    for (metric, index, value) in &expected_points {
        let found = received.points.iter().any(|p| {
            mine(&p.resource)
                && &p.metric == metric
                && p.attributes.get("series.index") == Some(&Value::Int(*index))
                && match value {
                    serde_json::Value::Number(n) => p.value == n.as_f64(),
                    serde_json::Value::Object(h) => p.count == h["count"].as_u64(),
                    _ => false,
                }
        });
        assert!(
            found,
            "rotel did not receive {metric}{{series.index={index}}} = {value} over {protocol}"
        );
    }
    for name in &span_names {
        assert!(
            received
                .spans
                .iter()
                .any(|s| mine(&s.resource) && &s.name == name),
            "span {name} missing over {protocol}"
        );
    }
    for body in &log_bodies {
        assert!(
            received
                .logs
                .iter()
                .any(|l| mine(&l.resource) && &l.body == body),
            "log {body} missing over {protocol}"
        );
    }

    // leakwatch counted what it received under the right protocol.
    let (status, metrics) = lw.admin_get("/metrics");
    assert_eq!(status, 200);
    let label = if protocol == "grpc" {
        "grpc"
    } else {
        "http_protobuf"
    };
    let spans_line =
        format!("leakwatch_receiver_items_total{{signal=\"traces\",protocol=\"{label}\"}} 4\n");
    assert!(metrics.contains(&spans_line), "{metrics}");
    let logs_line =
        format!("leakwatch_receiver_items_total{{signal=\"logs\",protocol=\"{label}\"}} 5\n");
    assert!(metrics.contains(&logs_line), "{metrics}");
}

#[test]
fn python_sdk_over_grpc_reaches_rotel_through_leakwatch() {
    check_protocol("grpc");
}

#[test]
fn python_sdk_over_http_reaches_rotel_through_leakwatch() {
    check_protocol("http");
}

#[test]
fn sigterm_drains_and_exits_zero() {
    let env = TestEnv::setup();
    let mut rotel = Rotel::start(env);
    let mut lw = Leakwatch::start(&rotel.grpc_endpoint(), QUIET_CONFIG);
    let mut sender = SendSignals::new(lw.grpc_endpoint());
    sender.spans = 2;
    sender.logs = 2;
    let (status, _) = sender.run(env);
    assert!(status.success());
    let (code, graceful) = lw.proc.terminate(Duration::from_secs(15));
    assert!(graceful, "leakwatch did not stop within 15 s of SIGTERM");
    assert!(code.success(), "leakwatch exited with {code}");
    let stderr = lw.proc.stderr();
    assert!(stderr.contains("leakwatch stopped"), "{stderr}");
    rotel.wait_for("the spans", Duration::from_secs(5), |r| r.spans.len() >= 2);
}
