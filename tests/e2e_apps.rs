//! Real instrumented apps end to end: the Node.js and Python example services
//! (official OpenTelemetry SDKs), one leaking and one healthy of each, export
//! to the leakwatch binary chained in front of a real collector (rotel).
//! Detection windows and holds are configured in seconds so the test takes a
//! few minutes.
//!
//! Asserted: each leaking app gets `memory.leak.suspected` then
//! `memory.leak.confirmed` (seen in rotel's output and in `/api/v1/leaks`),
//! each healthy app gets no leak event, and rotel received the apps' own
//! metrics.

mod common;

use std::time::{Duration, Instant};

use common::apps::{Example, ExampleApp};
use common::procs::{Leakwatch, TestEnv};
use common::rotel::{attr_str, Received, Rotel};

/// Seconds-scale detection: 60 s / 120 s windows (3.75 s buckets). The
/// effect-size floor is the default's (256 KiB/h over a 24 h long window)
/// scaled by the window ratio only (24 h / 120 s = 720): 184 MiB/h ≈ 52 KB/s.
/// It sits between the healthy Node heap's slow creep before a major GC
/// (≈ 20 KB/s) and the leak (≈ 660 KB/s).
const CONFIG: &str = "\
detector:
  short_window: 60s
  long_window: 120s
  min_growth_bytes_per_hour: 188743680
events:
  derived_metrics_interval: 2s
";

/// How long the apps run: long enough to confirm a leak with the windows above.
const RUN_SECONDS: u64 = 170;

fn service(example: Example, leak: bool) -> String {
    let lang = if example == Example::Node {
        "node"
    } else {
        "python"
    };
    format!("e2e-{lang}-{}", if leak { "leak" } else { "healthy" })
}

fn events_for<'a>(
    r: &'a Received,
    service: &'a str,
    name: &'a str,
) -> impl Iterator<Item = &'a common::rotel::LogRecord> {
    r.logs.iter().filter(move |l| {
        l.event_name == name && attr_str(&l.resource, "service.name") == Some(service)
    })
}

#[test]
fn leaking_apps_are_confirmed_and_healthy_apps_are_not() {
    let env = TestEnv::setup();
    let rotel = Rotel::start(env);
    let lw = Leakwatch::start(&rotel.grpc_endpoint(), CONFIG);

    let mut apps = Vec::new();
    for example in [Example::Node, Example::Python] {
        for leak in [true, false] {
            let mut app = ExampleApp::new(example, lw.grpc_endpoint(), leak);
            app.service_name = service(example, leak);
            app.duration_s = RUN_SECONDS + 30;
            // The Python app over OTLP/HTTP, the Node app over gRPC: both receivers.
            if example == Example::Python {
                app.endpoint = lw.http_endpoint();
                app.protocol = "http/protobuf";
            }
            apps.push(app.spawn(env));
        }
    }

    // Wait for both leaks to be confirmed (or the run to end).
    let started = Instant::now();
    let leaking = [service(Example::Node, true), service(Example::Python, true)];
    loop {
        let r = rotel.received();
        let done = leaking
            .iter()
            .all(|s| events_for(&r, s, "memory.leak.confirmed").next().is_some());
        if done && started.elapsed() > Duration::from_secs(RUN_SECONDS) {
            break;
        }
        if started.elapsed() > Duration::from_secs(RUN_SECONDS + 60) {
            break;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    let (status, leaks) = lw.admin_get("/api/v1/leaks");
    assert_eq!(status, 200);
    let leaks: serde_json::Value = serde_json::from_str(&leaks).expect("leaks JSON");
    let r = rotel.received();
    let report = |s: &str| {
        let events: Vec<String> = r
            .logs
            .iter()
            .filter(|l| {
                attr_str(&l.resource, "service.name") == Some(s)
                    && l.event_name.starts_with("memory.leak")
            })
            .map(|l| format!("{} @{} {}", l.event_name, l.time_unix_nano, l.body))
            .collect();
        format!("{s}: {events:#?}")
    };
    let all = format!(
        "{}\n{}\n{}\n{}\n/api/v1/leaks: {leaks}\n--- leakwatch stderr tail:\n{}",
        report(&service(Example::Node, true)),
        report(&service(Example::Node, false)),
        report(&service(Example::Python, true)),
        report(&service(Example::Python, false)),
        tail(&lw.proc.stderr(), 4000),
    );

    for s in &leaking {
        let suspected = events_for(&r, s, "memory.leak.suspected").next();
        let confirmed = events_for(&r, s, "memory.leak.confirmed").next();
        let (Some(suspected), Some(confirmed)) = (suspected, confirmed) else {
            panic!("{s} was not suspected and then confirmed:\n{all}");
        };
        assert!(
            suspected.time_unix_nano <= confirmed.time_unix_nano,
            "{all}"
        );
        assert_eq!(suspected.severity_text, "WARN");
        assert_eq!(confirmed.severity_text, "ERROR");
        assert_eq!(
            attr_str(&confirmed.attributes, "event.name"),
            Some("memory.leak.confirmed")
        );
        assert!(
            confirmed
                .attributes
                .contains_key("leak.growth_bytes_per_hour"),
            "{all}"
        );
        assert!(
            confirmed.body.contains(s.as_str()),
            "the body names the service: {}",
            confirmed.body
        );
        let open = leaks["items"]
            .as_array()
            .expect("items")
            .iter()
            .any(|i| i["resource"]["service_name"] == s.as_str() && i["state"] == "confirmed");
        assert!(open, "{s} is not confirmed in /api/v1/leaks:\n{all}");
    }
    for s in [
        service(Example::Node, false),
        service(Example::Python, false),
    ] {
        let any = r.logs.iter().any(|l| {
            attr_str(&l.resource, "service.name") == Some(s.as_str())
                && l.event_name.starts_with("memory.leak")
        });
        assert!(!any, "healthy {s} got a leak event:\n{all}");
    }

    // rotel received the apps' own metrics through leakwatch.
    for (example, metric) in [
        (Example::Node, "v8js.memory.heap.used"),
        (Example::Node, "http.server.request.duration"),
        (Example::Python, "process.memory.usage"),
        (Example::Python, "process.runtime.cpython.gc_count"),
    ] {
        for leak in [true, false] {
            let s = service(example, leak);
            let n = r
                .points
                .iter()
                .filter(|p| {
                    p.metric == metric && attr_str(&p.resource, "service.name") == Some(s.as_str())
                })
                .count();
            assert!(n >= 60, "rotel got only {n} points of {metric} from {s}");
        }
    }
    // And leakwatch's derived metrics for the leaking app.
    let state = r
        .points
        .iter()
        .filter(|p| {
            p.metric == "leakwatch.leak.state"
                && attr_str(&p.resource, "service.name") == Some(leaking[0].as_str())
        })
        .filter_map(|p| p.value)
        .fold(0.0, f64::max);
    assert_eq!(
        state, 2.0,
        "leakwatch.leak.state never reached 2 for {}",
        leaking[0]
    );
    drop(apps);
}

fn tail(s: &str, n: usize) -> &str {
    let start = s.len().saturating_sub(n);
    let mut i = start;
    while !s.is_char_boundary(i) {
        i += 1;
    }
    &s[i..]
}
