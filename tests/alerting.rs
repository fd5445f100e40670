//! Alerts in the real Alertmanager (Debian's `prometheus-alertmanager` 0.25, API v2): a leak
//! fires `MemoryLeakSuspected`, then `MemoryLeakConfirmed` (the warning inhibited by the rule
//! README shows), open alerts are re-sent, resolution and an evicted process end them, two
//! replicas fed the same data make one alert per name, and an Alertmanager that is down (or
//! hangs) loses nothing, slows nothing and leaves nothing stuck once it is back.
//!
//! leakwatch runs in-process; the leak is generated in event time (a Node.js heap floor
//! growing 400 KB/s for four minutes, then flat) with one- and two-minute windows, so a whole
//! incident takes well under a second to feed.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::alertmanager::{available, Alertmanager};
use common::leak::{detector, feed, lifecycle, t0, S};
use common::*;
use leakwatch::config::notify::AlertmanagerConfig;
use leakwatch::config::Config;

fn config(am: &str, resend: Duration) -> Config {
    let mut c = test_config(None);
    c.detector = detector();
    c.notify.alertmanager = AlertmanagerConfig {
        url: Some(am.to_owned()),
        resend_interval: resend,
        timeout: Duration::from_secs(2),
        external_url: Some("http://leakwatch.example:8080".to_owned()),
        labels: [("cluster".to_owned(), "eu-1".to_owned())].into(),
        runbook_url: Some("https://runbooks.example/memory-leak".to_owned()),
    };
    c
}

async fn counter(lw: &Running, outcome: &str) -> u64 {
    let (_, _, body) = http_request("GET", &lw.admin_url("/metrics"), &[], Vec::new()).await;
    let line =
        format!("leakwatch_notify_requests_total{{sink=\"alertmanager\",outcome=\"{outcome}\"}} ");
    String::from_utf8_lossy(&body)
        .lines()
        .find_map(|l| l.strip_prefix(&line)?.parse().ok())
        .expect("counter rendered")
}

fn by_name<'a>(alerts: &'a [serde_json::Value], name: &str) -> &'a serde_json::Value {
    alerts
        .iter()
        .find(|a| a["labels"]["alertname"] == name)
        .unwrap_or_else(|| panic!("no {name} in {alerts:#?}"))
}

fn rfc3339_ns(v: &serde_json::Value) -> u64 {
    humantime::parse_rfc3339(v.as_str().expect("time"))
        .expect("rfc3339")
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after epoch")
        .as_nanos() as u64
}

const SECOND: Duration = Duration::from_secs(1);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leak_fires_the_warning_then_the_critical_and_resolution_ends_both() {
    if !available("a_leak_fires_the_warning_then_the_critical_and_resolution_ends_both") {
        return;
    }
    let (suspected, confirmed, resolved) = lifecycle();
    let am = Alertmanager::start();
    // A resend interval far longer than the test: what ends the alerts is leakwatch's endsAt.
    let lw = start(config(&am.url(), Duration::from_secs(60))).await;

    feed(&lw, 0..suspected + 1, true).await;
    am.wait_for("the warning", 10 * SECOND, |n| n == ["MemoryLeakSuspected"])
        .await;
    let alerts = am.alerts();
    let warning = by_name(&alerts, "MemoryLeakSuspected");
    let labels: BTreeMap<String, String> =
        serde_json::from_value(warning["labels"].clone()).expect("labels");
    assert_eq!(
        labels,
        [
            ("alertname", "MemoryLeakSuspected"),
            ("cluster", "eu-1"),
            ("service_instance_id", "pod-1"),
            ("service_name", "checkout"),
            ("service_namespace", "shop"),
            ("severity", "warning"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect(),
        "the process's identity and nothing else (no host.name, nothing about leakwatch)"
    );
    let a = &warning["annotations"];
    assert_eq!(
        a["summary"],
        "Memory leak suspected in checkout: memory that survives GC is growing."
    );
    let description = a["description"].as_str().expect("description");
    assert!(
        description.starts_with("v8js.memory.heap.used of checkout (pod-1) grows ")
            && description.contains("/h (R² ")
            && description.contains(" over ")
            && description.contains(
                "leak suspected. Signals: memory. Next: Node.js: write two heap snapshots"
            ),
        "{description}"
    );
    assert_eq!(a["runbook_url"], "https://runbooks.example/memory-leak");
    // generatorURL: the process view of leakwatch's page.
    let (_, _, leaks) = http_request("GET", &lw.admin_url("/api/v1/leaks"), &[], Vec::new()).await;
    let leaks: serde_json::Value = serde_json::from_slice(&leaks).expect("leaks");
    let id = leaks["items"][0]["id"].as_str().expect("id");
    assert_eq!(
        warning["generatorURL"],
        format!("http://leakwatch.example:8080/resources/{id}")
    );
    let (status, _, _) = http_request(
        "GET",
        &lw.admin_url(&format!("/resources/{id}")),
        &[],
        Vec::new(),
    )
    .await;
    assert_eq!(status, 200, "the page the alert links to");
    // startsAt is the event time of the suspicion.
    let starts = rfc3339_ns(&warning["startsAt"]);
    assert!(
        starts.abs_diff(t0() + suspected * S) <= 2 * S,
        "startsAt {} vs step {suspected}",
        warning["startsAt"]
    );
    // Valid for four resend intervals: it does not depend on Alertmanager's resolve_timeout.
    let ends = rfc3339_ns(&warning["endsAt"]);
    assert!(ends > now_ns() + 200 * S, "endsAt {}", warning["endsAt"]);

    feed(&lw, suspected + 1..confirmed + 1, true).await;
    am.wait_for("both alerts", 10 * SECOND, |n| {
        n == ["MemoryLeakConfirmed", "MemoryLeakSuspected"]
    })
    .await;
    let alerts = am.alerts();
    let critical = by_name(&alerts, "MemoryLeakConfirmed");
    assert_eq!(critical["labels"]["severity"], "critical");
    assert_eq!(
        critical["annotations"]["summary"],
        "Memory leak confirmed in checkout: memory that survives GC keeps growing."
    );
    assert_eq!(critical["status"]["state"], "active");
    let description = critical["annotations"]["description"]
        .as_str()
        .expect("text");
    assert!(
        description.contains("leak confirmed. Signals: memory. Next: "),
        "{description}"
    );
    // README's inhibit rule mutes the warning while the critical fires.
    let deadline = Instant::now() + 5 * SECOND;
    loop {
        let alerts = am.alerts();
        let warning = by_name(&alerts, "MemoryLeakSuspected");
        if warning["status"]["state"] == "suppressed" {
            assert_eq!(
                warning["status"]["inhibitedBy"].as_array().map(Vec::len),
                Some(1)
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "warning not inhibited: {warning:#}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    feed(&lw, confirmed + 1..resolved + 1, true).await;
    am.wait_for("both alerts ended", 10 * SECOND, |n| n.is_empty())
        .await;
    assert_eq!(counter(&lw, "error").await, 0);
    assert!(counter(&lw, "success").await >= 3);
    lw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_alerts_are_resent_every_resend_interval() {
    if !available("open_alerts_are_resent_every_resend_interval") {
        return;
    }
    let (_, confirmed, _) = lifecycle();
    let am = Alertmanager::start();
    // Valid for 4 s: without resends Alertmanager would end them after that.
    let lw = start(config(&am.url(), SECOND)).await;
    feed(&lw, 0..confirmed + 1, true).await;
    am.wait_for("both alerts", 10 * SECOND, |n| n.len() == 2)
        .await;
    let updated = |alerts: &[serde_json::Value]| {
        rfc3339_ns(&by_name(alerts, "MemoryLeakConfirmed")["updatedAt"])
    };
    let first = updated(&am.alerts());
    let sent = counter(&lw, "success").await;
    tokio::time::sleep(9 * SECOND).await;
    let alerts = am.alerts();
    assert_eq!(
        alerts.len(),
        2,
        "still open after twice their validity: {alerts:#?}"
    );
    assert!(
        updated(&alerts) >= first + 5 * S,
        "re-sent: updatedAt moved on"
    );
    let resent = counter(&lw, "success").await - sent;
    assert!(
        (6..=12).contains(&resent),
        "about one resend a second, got {resent}"
    );
    lw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_fed_the_same_data_make_one_alert_per_name() {
    if !available("two_replicas_fed_the_same_data_make_one_alert_per_name") {
        return;
    }
    let (_, confirmed, resolved) = lifecycle();
    let am = Alertmanager::start();
    let a = start(config(&am.url(), Duration::from_secs(60))).await;
    let b = start(config(&am.url(), Duration::from_secs(60))).await;
    feed(&a, 0..confirmed + 1, true).await;
    feed(&b, 0..confirmed + 1, true).await;
    am.wait_for("both alerts", 10 * SECOND, |n| n.len() >= 2)
        .await;
    // Both replicas have sent (each counts its own requests) …
    for lw in [&a, &b] {
        assert!(counter(lw, "success").await >= 2);
    }
    // … and Alertmanager holds one alert per name.
    assert_eq!(am.names(), ["MemoryLeakConfirmed", "MemoryLeakSuspected"]);
    // The resolution from either ends them.
    feed(&a, confirmed + 1..resolved + 1, true).await;
    am.wait_for("both alerts ended", 10 * SECOND, |n| n.is_empty())
        .await;
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alertmanager_that_hangs_or_is_down_loses_nothing_and_slows_nothing() {
    if !available("an_alertmanager_that_hangs_or_is_down_loses_nothing_and_slows_nothing") {
        return;
    }
    let (suspected, confirmed, resolved) = lifecycle();
    // First a port that accepts connections and never answers (timeout 2 s) …
    let hang = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = hang.local_addr().expect("addr").port();
    let held = std::thread::spawn(move || {
        let mut conns = Vec::new();
        hang.set_nonblocking(true).expect("nonblocking");
        let until = Instant::now() + Duration::from_secs(3);
        while Instant::now() < until {
            if let Ok((c, _)) = hang.accept() {
                conns.push(c);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        conns.len()
    });
    let lw = start(config(&format!("http://127.0.0.1:{port}"), SECOND)).await;
    let slowest = feed(&lw, 0..confirmed + 1, true).await;
    assert!(
        slowest < Duration::from_millis(500),
        "ingest waited on Alertmanager: {slowest:?}"
    );
    assert!(
        tokio::task::spawn_blocking(move || held.join().expect("hang thread"))
            .await
            .expect("join")
            >= 1,
        "leakwatch tried to send"
    );
    // … then nothing on the port at all (connection refused), for a few retries.
    tokio::time::sleep(2 * SECOND).await;
    let errors = counter(&lw, "error").await;
    assert!(errors >= 2, "retried: {errors} errors");
    assert_eq!(counter(&lw, "success").await, 0);

    // Alertmanager comes up on that port: what happened meanwhile arrives.
    let am = Alertmanager::start_on(port);
    am.wait_for("both alerts after the outage", 10 * SECOND, |n| {
        n == ["MemoryLeakConfirmed", "MemoryLeakSuspected"]
    })
    .await;
    let alerts = am.alerts();
    let starts = rfc3339_ns(&by_name(&alerts, "MemoryLeakSuspected")["startsAt"]);
    assert!(
        starts.abs_diff(t0() + suspected * S) <= 2 * S,
        "the warning keeps the time the leak was suspected"
    );
    // Nothing stuck: the resolution goes through at once.
    feed(&lw, confirmed + 1..resolved + 1, true).await;
    am.wait_for("both alerts ended", 3 * SECOND, |n| n.is_empty())
        .await;
    assert!(counter(&lw, "success").await >= 2);
    lw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_alerts_of_a_process_that_is_gone_end() {
    if !available("the_alerts_of_a_process_that_is_gone_end") {
        return;
    }
    let (_, confirmed, _) = lifecycle();
    let am = Alertmanager::start();
    let mut c = config(&am.url(), SECOND);
    c.series.idle_timeout = Duration::from_secs(60);
    c.series.sweep_interval = Duration::from_millis(200);
    let lw = start(c).await;
    feed(&lw, 0..confirmed + 1, true).await;
    am.wait_for("both alerts", 10 * SECOND, |n| n.len() == 2)
        .await;
    // checkout stops reporting while it is still confirmed; catalog goes on, so event time
    // moves past checkout's idle timeout and the engine evicts it.
    feed(&lw, confirmed + 1..confirmed + 100, false).await;
    am.wait_for("both alerts ended", 10 * SECOND, |n| n.is_empty())
        .await;
    // And they stay ended (they are not re-sent).
    tokio::time::sleep(5 * SECOND).await;
    assert!(am.names().is_empty(), "{:?}", am.names());
    lw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_logs_one_warning_per_failure_burst() {
    if !available("the_binary_logs_one_warning_per_failure_burst") {
        return;
    }
    let (_, confirmed, _) = lifecycle();
    let downstream = Downstream::start().await;
    let port = common::procs::free_port();
    let yaml = format!(
        "detector:\n  short_window: 60s\n  long_window: 120s\nself_monitoring:\n  enabled: false\nnotify:\n  alertmanager:\n    url: http://127.0.0.1:{port}\n    resend_interval: 1s\n    timeout: 2s\n"
    );
    let mut lw = common::procs::Leakwatch::start(&downstream.endpoint(), &yaml);
    let url = lw.http_endpoint() + "/v1/metrics";
    for step in 0..confirmed + 1 {
        let (status, _, _) = http_request(
            "POST",
            &url,
            &[("content-type", "application/x-protobuf")],
            common::leak::trace(step, true).to_vec(),
        )
        .await;
        assert_eq!(status, 200);
    }
    let warnings = |lw: &common::procs::Leakwatch| {
        lw.proc
            .stderr()
            .lines()
            .filter(|l| l.contains("Alertmanager did not take the alerts"))
            .count()
    };
    // Nothing listens: a burst of failed retries (about one a second), one WARN.
    let deadline = Instant::now() + 10 * SECOND;
    while metric(&lw, "error") < 5 {
        assert!(
            Instant::now() < deadline,
            "no retries: {}",
            lw.proc.stderr()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(warnings(&lw), 1, "{}", lw.proc.stderr());
    // Back: one INFO; then down again: a second burst, a second WARN.
    let am = Alertmanager::start_on(port);
    am.wait_for("both alerts", 10 * SECOND, |n| n.len() == 2)
        .await;
    lw.proc
        .wait_for_stderr("the recovery line", 10 * SECOND, |e| {
            e.contains("Alertmanager reachable again")
        });
    am.stop();
    let errors = metric(&lw, "error");
    let deadline = Instant::now() + 10 * SECOND;
    while metric(&lw, "error") < errors + 3 {
        assert!(
            Instant::now() < deadline,
            "no retries after the second outage"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(warnings(&lw), 2, "{}", lw.proc.stderr());
    lw.proc.terminate(Duration::from_secs(10));
}

fn metric(lw: &common::procs::Leakwatch, outcome: &str) -> u64 {
    let (_, body) = lw.admin_get("/metrics");
    let line =
        format!("leakwatch_notify_requests_total{{sink=\"alertmanager\",outcome=\"{outcome}\"}} ");
    body.lines()
        .find_map(|l| l.strip_prefix(&line)?.parse().ok())
        .expect("counter rendered")
}
