//! The seed's next step, end to end: the Node example app (official OpenTelemetry SDK, a real
//! leak) exports to leakwatch; once leakwatch confirms the leak it calls the app's
//! `/debug/heapdump` (the guide's endpoint, `v8.writeHeapSnapshot`) through the allow-listed
//! `notify.heap_dump` template — once — and the outcome shows in `/api/v1/leaks` and as a
//! `memory.leak.heap_dump` log record downstream. A real `.heapsnapshot` file exists after.

mod common;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use common::procs::{free_port, Proc, TestEnv, READY_TIMEOUT};
use common::*;
use leakwatch::config::notify::{HeapDumpMethod, HeapDumpRule};
use leakwatch::detector::DetectorConfig;
use leakwatch::otlp::proto::otlp::collector::logs::v1::ExportLogsServiceRequest;
use leakwatch::otlp::proto::otlp::common::v1::any_value;
use leakwatch::otlp::proto::paths;
use prost::Message;

const SERVICE: &str = "e2e-node-heapdump";

fn rule(service: &str, url: String) -> HeapDumpRule {
    HeapDumpRule {
        matches: BTreeMap::from([("service.name".to_owned(), service.to_owned())]),
        url,
        method: HeapDumpMethod::Get,
        timeout: Duration::from_secs(60),
        min_interval: Duration::from_secs(6 * 3600),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_confirmed_leak_in_the_node_app_gets_one_real_heap_snapshot() {
    let env = TestEnv::setup();
    // Kept after the test (under target/): the snapshot is the point of the exercise.
    let dumps = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("heapdumps");
    let _ = std::fs::remove_dir_all(&dumps);
    std::fs::create_dir_all(&dumps).expect("dump dir");
    let port = free_port();

    let mut downstream = Downstream::start().await;
    let mut c = test_config(Some(downstream.endpoint()));
    // Seconds-scale detection (as tests/e2e_apps.rs, halved): the app leaks ≈ 660 KB/s; the
    // default effect-size floor scaled by the window ratio only (24 h / 60 s = 1440).
    let mut d = DetectorConfig::with_windows(Duration::from_secs(30), Duration::from_secs(60));
    d.min_growth_bytes_per_hour = DetectorConfig::default().min_growth_bytes_per_hour * 1440.0;
    c.detector = d;
    c.notify.heap_dump = vec![
        // Another service's rule, to a port nothing listens on: never called.
        rule("other", "http://127.0.0.1:9/debug/heapdump".to_owned()),
        rule(
            SERVICE,
            format!("http://127.0.0.1:{port}/debug/heapdump?instance={{service.instance.id}}"),
        ),
    ];
    let lw = start(c).await;

    let mut cmd = Command::new(&env.node);
    cmd.arg("server.js")
        .current_dir(&env.node_example)
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", lw.grpc_endpoint())
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
        .env("OTEL_SERVICE_NAME", SERVICE)
        .env("OTEL_METRIC_EXPORT_INTERVAL", "1000")
        .env("LEAK", "1")
        .env("LOAD_RPS", "20")
        .env("DURATION_S", "300")
        .env("STATS_INTERVAL_MS", "5000")
        .env("PORT", port.to_string())
        .env("HEAPDUMP_DIR", &dumps);
    let mut app = Proc::spawn(SERVICE, cmd);
    app.wait_for_stdout("its listening line", READY_TIMEOUT, |o| {
        o.contains("\"listening\"")
    });

    // Wait for the incident to carry its heap dump.
    let started = Instant::now();
    let incident = loop {
        let (_, _, body) =
            http_request("GET", &lw.admin_url("/api/v1/leaks"), &[], Vec::new()).await;
        let leaks: serde_json::Value = serde_json::from_slice(&body).expect("leaks json");
        let found = leaks["items"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|i| i["resource"]["service_name"] == SERVICE && !i["heap_dump"].is_null())
            .cloned();
        if let Some(i) = found {
            break i;
        }
        assert!(
            started.elapsed() < Duration::from_secs(240),
            "no heap dump within 240 s; /api/v1/leaks: {leaks:#}\n--- app stdout:\n{}",
            app.stdout()
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    assert_eq!(incident["state"], "confirmed", "{incident:#}");
    let hd = &incident["heap_dump"];
    assert_eq!(hd["status"], 200, "{hd:#}");
    assert!(hd["error"].is_null(), "{hd:#}");
    assert_eq!(hd["method"], "GET");
    let url = hd["url"].as_str().expect("url");
    assert!(
        url.starts_with(&format!("http://127.0.0.1:{port}/debug/heapdump?instance=")),
        "{url}"
    );
    // The seed's answer, {file, size}, and the file is a real V8 heap snapshot.
    let answer: serde_json::Value =
        serde_json::from_str(hd["body"].as_str().expect("body")).expect("{file, size}");
    let file = std::path::PathBuf::from(answer["file"].as_str().expect("file"));
    assert!(file.starts_with(&dumps) && file.extension().is_some_and(|e| e == "heapsnapshot"));
    let size = std::fs::metadata(&file).expect("the snapshot exists").len();
    assert_eq!(Some(size), answer["size"].as_u64());
    assert!(
        size > 1_000_000,
        "a heap snapshot of a leaking app: {size} bytes"
    );
    let head = std::fs::read(&file).expect("read snapshot");
    let snapshot: serde_json::Value = serde_json::from_slice(&head).expect("snapshot is JSON");
    assert!(snapshot["snapshot"]["meta"]["node_fields"].is_array());

    // The follow-up log record downstream.
    let deadline = Instant::now() + Duration::from_secs(10);
    let record = 'found: loop {
        let r = downstream.next_on(paths::LOGS).await;
        let req = ExportLogsServiceRequest::decode(r.body).expect("logs");
        for rl in req.resource_logs {
            for sl in rl.scope_logs {
                for lr in sl.log_records {
                    if lr.event_name == "memory.leak.heap_dump" {
                        break 'found lr;
                    }
                }
            }
        }
        assert!(Instant::now() < deadline, "no memory.leak.heap_dump record");
    };
    let attr = |k: &str| {
        record
            .attributes
            .iter()
            .find(|kv| kv.key == k)
            .and_then(|kv| kv.value.as_ref()?.value.clone())
    };
    assert_eq!(
        attr("heap_dump.status"),
        Some(any_value::Value::IntValue(200))
    );
    assert_eq!(
        attr("heap_dump.url"),
        Some(any_value::Value::StringValue(url.to_owned()))
    );

    // Once per incident: a while later, still one snapshot and one call.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let snapshots = std::fs::read_dir(&dumps)
        .expect("dump dir")
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "heapsnapshot"))
        })
        .count();
    assert_eq!(snapshots, 1);
    let (_, _, metrics) = http_request("GET", &lw.admin_url("/metrics"), &[], Vec::new()).await;
    let metrics = String::from_utf8_lossy(&metrics);
    assert!(
        metrics.contains(
            "leakwatch_notify_requests_total{sink=\"heap_dump\",outcome=\"success\"} 1\n"
        ) && metrics
            .contains("leakwatch_notify_requests_total{sink=\"heap_dump\",outcome=\"error\"} 0\n"),
        "{metrics}"
    );

    app.kill();
    lw.stop().await;
    eprintln!("heap snapshot kept: {} ({size} bytes)", file.display());
}
