//! Running more than one leakwatch (README, "Run more than one").
//!
//! - HA pair: two instances fed the same bytes — at different wall times, in different
//!   batchings, over different protocols — make the same decisions at the same event times, with
//!   the same `leak.incident_id` on every event of an incident; with a real Alertmanager (Debian's
//!   0.25) both post and it holds one alert per name. A replica restarted from its checkpoint
//!   goes on exactly as if it had never stopped; restarted without one it loses its windows.
//! - Sharding: a real nginx (Debian's 1.22) running the shipped `deploy/nginx/leakwatch.conf` in
//!   front of two instances, 200 processes exporting through it (half OTLP/gRPC, half OTLP/HTTP,
//!   each sending its `x-leakwatch-shard` header as `OTEL_EXPORTER_OTLP_HEADERS` would): every
//!   process is on exactly one instance with all its series, and the leak events are those one
//!   instance gives on the same replay; without the header the client address keeps a host's
//!   processes together.
//! - The Collector config in `deploy/collector/`: it parses and its exporter keys exist in the
//!   Collector's schema (`otlp`, `loadbalancing`).
//!
//! leakwatch runs in-process; leaks are generated in event time (one- and two-minute windows),
//! so the whole lifecycle of an incident takes well under a second to feed.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::leak::{detector, feed, lifecycle, t0, trace, S, STEPS};
use common::*;
use leakwatch::config::notify::AlertmanagerConfig;
use leakwatch::config::{CheckpointConfig, Config};
use leakwatch::otlp::proto::otlp::collector::logs::v1::ExportLogsServiceRequest;
use leakwatch::otlp::proto::otlp::common::v1::{any_value::Value, KeyValue};
use leakwatch::otlp::proto::paths;
use prost::Message;

// ---------------------------------------------------------------------------------- helpers

/// One leak event as the downstream received it: what two replicas must agree on.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Event {
    instance: String,
    t_ns: u64,
    name: String,
    incident_id: String,
    /// `leak.growth_bytes_per_hour` and `leak.r_squared`, exactly (`{:?}` round-trips an f64).
    growth: String,
    r_squared: String,
    resolution: Option<String>,
}

fn attr<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a Value> {
    attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref()?.value.as_ref())
}

fn text(attributes: &[KeyValue], key: &str) -> Option<String> {
    match attr(attributes, key)? {
        Value::StringValue(s) => Some(s.clone()),
        _ => None,
    }
}

fn double(attributes: &[KeyValue], key: &str) -> String {
    match attr(attributes, key) {
        Some(Value::DoubleValue(d)) => format!("{d:?}"),
        other => panic!("{key}: {other:?}"),
    }
}

/// The leak events among what a downstream received, in arrival order.
fn events_in(received: &[Received]) -> Vec<Event> {
    let mut out = Vec::new();
    for r in received.iter().filter(|r| r.path == paths::LOGS) {
        let req = ExportLogsServiceRequest::decode(r.body.clone()).expect("logs request");
        for rl in req.resource_logs {
            let res = rl.resource.expect("resource").attributes;
            for rec in rl.scope_logs.into_iter().flat_map(|s| s.log_records) {
                out.push(Event {
                    instance: text(&res, "service.instance.id").expect("instance"),
                    t_ns: rec.time_unix_nano,
                    name: rec.event_name.clone(),
                    incident_id: text(&rec.attributes, "leak.incident_id").expect("incident id"),
                    growth: double(&rec.attributes, "leak.growth_bytes_per_hour"),
                    r_squared: double(&rec.attributes, "leak.r_squared"),
                    resolution: text(&rec.attributes, "leak.resolution"),
                });
            }
        }
    }
    out
}

/// Stops leakwatch (a graceful stop delivers every queued event), then its downstream, and
/// returns the leak events the downstream received.
async fn stop_and_collect(lw: Running, downstream: Downstream) -> Vec<Event> {
    lw.stop().await;
    events_in(&downstream.stop_and_drain().await)
}

async fn admin_json(lw: &Running, path: &str) -> serde_json::Value {
    let (status, _, body) = http_request("GET", &lw.admin_url(path), &[], Vec::new()).await;
    assert_eq!(status, 200, "{path}: {body:?}");
    serde_json::from_slice(&body).expect("json")
}

/// `incident_id` of every open incident in `/api/v1/leaks`, by instance.
async fn open_incidents(lw: &Running) -> BTreeMap<String, String> {
    let leaks = admin_json(lw, "/api/v1/leaks").await;
    leaks["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| {
            (
                i["resource"]["instance"]
                    .as_str()
                    .expect("instance")
                    .to_owned(),
                i["incident_id"].as_str().expect("incident_id").to_owned(),
            )
        })
        .collect()
}

/// `requests` concatenated: one export request holding all of theirs (protobuf merges repeated
/// fields by concatenation), as a batching collector would send them.
fn merged(requests: &[Bytes]) -> Bytes {
    let mut out = Vec::with_capacity(requests.iter().map(Bytes::len).sum());
    for r in requests {
        out.extend_from_slice(r);
    }
    Bytes::from(out)
}

async fn post_grpc(endpoint: &str, body: Bytes) {
    grpc_raw(endpoint, paths::METRICS, body, None, None)
        .await
        .expect("accepted");
}

/// The leak trace's `steps`, `batch` steps per OTLP/gRPC request.
async fn feed_batched(lw: &Running, steps: std::ops::Range<u64>, batch: usize) {
    let requests: Vec<Bytes> = steps.map(|s| trace(s, true)).collect();
    for chunk in requests.chunks(batch) {
        post_grpc(&lw.grpc_endpoint(), merged(chunk)).await;
    }
}

async fn counter(lw: &Running, line: &str) -> u64 {
    let (_, _, body) = http_request("GET", &lw.admin_url("/metrics"), &[], Vec::new()).await;
    String::from_utf8_lossy(&body)
        .lines()
        .find_map(|l| l.strip_prefix(line)?.trim().parse().ok())
        .unwrap_or(0)
}

async fn wait_until<F: std::future::Future<Output = bool>>(
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> F,
) {
    let deadline = Instant::now() + timeout;
    while !check().await {
        assert!(
            Instant::now() < deadline,
            "never saw {what} within {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let path =
            std::env::temp_dir().join(format!("leakwatch-fleet-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("mkdir");
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn leak_config(downstream: &Downstream) -> Config {
    let mut c = test_config(Some(downstream.endpoint()));
    c.detector = detector();
    c
}

// ---------------------------------------------------------------------------------- HA pair

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ha_pair_fed_the_same_bytes_decides_the_same_at_the_same_event_times() {
    // A trace of the validation suite (tools/src/scenario.rs): a JVM leaking 2 MB/h for 48 h
    // at one export a minute, with the default (production) windows.
    let scenario = leakwatch_tools::scenario::by_name("jvm-leak-2mb-h").expect("scenario");
    let requests: Vec<Bytes> = scenario
        .requests()
        .map(|r| Bytes::from(r.encode_to_vec()))
        .collect();
    let instance = scenario.instance();

    // A: every export on its own, over OTLP/HTTP.
    let da = Downstream::start().await;
    let a = start(test_config(Some(da.endpoint()))).await;
    let url = a.http_url("/v1/metrics");
    for r in &requests {
        let (status, _, body) = http_request(
            "POST",
            &url,
            &[("content-type", "application/x-protobuf")],
            r.to_vec(),
        )
        .await;
        assert_eq!(status, 200, "{body:?}");
    }
    let leaks_a = open_incidents(&a).await;

    // B, started once A is done (other wall times): nine exports per request, over OTLP/gRPC.
    let db = Downstream::start().await;
    let b = start(test_config(Some(db.endpoint()))).await;
    for chunk in requests.chunks(9) {
        post_grpc(&b.grpc_endpoint(), merged(chunk)).await;
    }
    let leaks_b = open_incidents(&b).await;

    let ea = stop_and_collect(a, da).await;
    let eb = stop_and_collect(b, db).await;
    let names: Vec<&str> = ea.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(
        names,
        ["memory.leak.suspected", "memory.leak.confirmed"],
        "{ea:#?}"
    );
    // The same decisions, at the same event times, with the same figures and the same id.
    assert_eq!(ea, eb);
    assert!(ea.iter().all(|e| e.instance == instance));
    assert!(ea.iter().all(|e| e.incident_id == ea[0].incident_id));
    assert!(ea[1].t_ns > ea[0].t_ns);
    // And the id the admin API shows for the open incident is the events' id, in both.
    assert_eq!(
        leaks_a,
        BTreeMap::from([(instance, ea[0].incident_id.clone())])
    );
    assert_eq!(leaks_a, leaks_b);
}

fn alertmanager_config(downstream: &Downstream, am: &str, external_url: &str) -> Config {
    let mut c = leak_config(downstream);
    c.notify.alertmanager = AlertmanagerConfig {
        url: Some(am.to_owned()),
        resend_interval: Duration::from_secs(60),
        timeout: Duration::from_secs(2),
        // Each replica links to itself: instance-specific, and so never in a label.
        external_url: Some(external_url.to_owned()),
        labels: [("cluster".to_owned(), "eu-1".to_owned())].into(),
        runbook_url: None,
    };
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ha_pair_makes_one_alert_per_name_in_alertmanager_and_one_incident_id() {
    use common::alertmanager::{available, Alertmanager};
    if !available("an_ha_pair_makes_one_alert_per_name_in_alertmanager_and_one_incident_id") {
        return;
    }
    let (suspected, confirmed, _) = lifecycle();
    let am = Alertmanager::start();
    let (da, db) = (Downstream::start().await, Downstream::start().await);
    let a = start(alertmanager_config(
        &da,
        &am.url(),
        "http://leakwatch-a:9464",
    ))
    .await;
    let b = start(alertmanager_config(
        &db,
        &am.url(),
        "http://leakwatch-b:9464",
    ))
    .await;
    let success = "leakwatch_notify_requests_total{sink=\"alertmanager\",outcome=\"success\"} ";

    // Up to the confirmation: A one step per request, B four per request, after A.
    feed(&a, 0..confirmed + 1, true).await;
    feed_batched(&b, 0..confirmed + 1, 4).await;
    // Both have posted the warning and the critical alert (each counts its own POSTs) …
    for lw in [&a, &b] {
        wait_until("both alerts posted", Duration::from_secs(10), || async {
            counter(lw, success).await >= 2
        })
        .await;
    }
    // … and Alertmanager holds one alert per name: the pair's labels are identical.
    am.wait_for("both alerts", Duration::from_secs(10), |n| {
        n == ["MemoryLeakConfirmed", "MemoryLeakSuspected"]
    })
    .await;
    let alerts = am.alerts();
    assert_eq!(alerts.len(), 2, "{alerts:#?}");
    let ids_a = open_incidents(&a).await;
    assert_eq!(ids_a, open_incidents(&b).await);
    let id = ids_a["pod-1"].clone();
    for alert in &alerts {
        let labels: BTreeSet<&str> = alert["labels"]
            .as_object()
            .expect("labels")
            .keys()
            .map(String::as_str)
            .collect();
        // The process and the configured labels, nothing of either leakwatch.
        assert_eq!(
            labels,
            BTreeSet::from([
                "alertname",
                "cluster",
                "service_instance_id",
                "service_name",
                "service_namespace",
                "severity"
            ]),
            "{alert:#}"
        );
        assert_eq!(
            alert["annotations"]["incident_id"],
            id.as_str(),
            "{alert:#}"
        );
    }
    let warning = alerts
        .iter()
        .find(|a| a["labels"]["alertname"] == "MemoryLeakSuspected")
        .expect("warning");
    let starts = humantime::parse_rfc3339(warning["startsAt"].as_str().expect("startsAt"))
        .expect("rfc3339")
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after epoch")
        .as_nanos() as u64;
    // Starts at the event time of the suspicion (Alertmanager keeps milliseconds).
    assert_eq!(starts / 1_000_000, (t0() + suspected * S) / 1_000_000);

    // The rest: resolution from both ends them.
    feed(&a, confirmed + 1..STEPS, true).await;
    feed_batched(&b, confirmed + 1..STEPS, 4).await;
    am.wait_for("the alerts ended", Duration::from_secs(10), |n| {
        n.is_empty()
    })
    .await;

    let ea = stop_and_collect(a, da).await;
    let eb = stop_and_collect(b, db).await;
    let names: Vec<&str> = ea.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "memory.leak.suspected",
            "memory.leak.confirmed",
            "memory.leak.resolved"
        ]
    );
    assert_eq!(ea, eb);
    assert!(ea.iter().all(|e| e.incident_id == id), "{ea:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_restarted_from_its_checkpoint_goes_on_as_if_it_never_stopped() {
    let (suspected, confirmed, _) = lifecycle();
    // Stopped while the incident is suspected, not yet confirmed.
    let mid = (suspected + confirmed) / 2;
    assert!(suspected < mid && mid < confirmed);

    // The reference: never stopped.
    let dr = Downstream::start().await;
    let r = start(leak_config(&dr)).await;
    feed(&r, 0..STEPS, true).await;
    let reference = stop_and_collect(r, dr).await;
    assert_eq!(reference.len(), 3, "{reference:#?}");

    // With a checkpoint: stopped at `mid`, started again from the checkpoint.
    let dir = TempDir::new("ckpt");
    let with_checkpoint = |d: &Downstream| {
        let mut c = leak_config(d);
        c.checkpoint = Some(CheckpointConfig {
            path: dir.0.join("leakwatch.ckpt"),
            interval: Duration::from_secs(3600),
        });
        c
    };
    let d = Downstream::start().await;
    let first = start(with_checkpoint(&d)).await;
    feed(&first, 0..mid, true).await;
    first.stop().await; // writes the checkpoint
    let second = start(with_checkpoint(&d)).await;
    assert_eq!(
        counter(
            &second,
            "leakwatch_checkpoint_restores_total{outcome=\"restored\"} "
        )
        .await,
        1
    );
    feed(&second, mid..STEPS, true).await;
    let restored = stop_and_collect(second, d).await;
    assert_eq!(restored, reference, "the same events, the same incident id");

    // Without one (what a process moved to another instance lives through): the windows are
    // gone, so whatever it decides after the restart is another incident, at other times.
    let d = Downstream::start().await;
    let first = start(leak_config(&d)).await;
    feed(&first, 0..mid, true).await;
    first.stop().await;
    let second = start(leak_config(&d)).await;
    feed(&second, mid..STEPS, true).await;
    let lost = stop_and_collect(second, d).await;
    assert_eq!(lost[0], reference[0], "the suspicion before the restart");
    let after: Vec<&Event> = lost.iter().filter(|e| e.t_ns >= t0() + mid * S).collect();
    assert!(
        after
            .iter()
            .all(|e| e.incident_id != reference[0].incident_id),
        "{after:#?}"
    );
    assert_ne!(lost, reference);
}

// ---------------------------------------------------------------------------------- sharding

/// One simulated process of the sharded fleet.
#[derive(Clone)]
struct Process {
    instance: String,
    service: String,
    leaking: bool,
    grpc: bool,
}

impl Process {
    fn fleet(n: usize, leaking: &[usize]) -> Vec<Process> {
        (0..n)
            .map(|i| Process {
                instance: format!("proc-{i:03}"),
                service: format!("shop-{}", i % 8),
                leaking: leaking.contains(&i),
                grpc: i % 2 == 0,
            })
            .collect()
    }

    /// The steps it exports at: every second for a leaking process (the leak trace's shape),
    /// every 40 s for the others.
    fn steps(&self) -> Vec<u64> {
        if self.leaking {
            (0..STEPS).collect()
        } else {
            (0..STEPS).step_by(40).collect()
        }
    }

    /// Its export at `step`: the heap every time, resident memory every other export (so a
    /// balancer that spread one process's requests would split its series).
    fn request(&self, n: usize, step: u64) -> Bytes {
        use leakwatch::otlp::build;
        let t = t0() + step * S;
        let saw = (step % 10) as f64 * 2e6;
        let heap = if self.leaking {
            100e6 + 400e3 * step.min(240) as f64 + saw
        } else {
            80e6 + saw
        };
        let mut metrics = vec![gauge_metric(
            "v8js.memory.heap.used",
            "By",
            vec![number_point(t, heap, vec![])],
        )];
        if n % 2 == 1 {
            metrics.push(gauge_metric(
                "process.memory.usage",
                "By",
                vec![number_point(t, heap + 60e6, vec![])],
            ));
        }
        let resource = build::resource(vec![
            kv("service.name", &self.service),
            kv("service.instance.id", &self.instance),
            kv("host.name", "node-1"),
        ]);
        Bytes::from(request(resource, metrics).encode_to_vec())
    }
}

/// Where the processes export to: an OTLP/gRPC endpoint and an OTLP/HTTP base URL.
struct Target {
    grpc: String,
    http: String,
}

/// Exports every process's requests (in order per process, processes concurrently), each with
/// its `x-leakwatch-shard` header when `header` — what an SDK sends with
/// `OTEL_EXPORTER_OTLP_HEADERS=x-leakwatch-shard=<instance>`.
async fn export_fleet(fleet: &[Process], target: &Target, header: bool) {
    let client = leakwatch::ops::outbound::client(Duration::from_secs(10)).expect("client");
    let mut tasks = tokio::task::JoinSet::new();
    for chunk in fleet.chunks(fleet.len().div_ceil(8)) {
        let chunk = chunk.to_vec();
        let (grpc, http) = (target.grpc.clone(), format!("{}/v1/metrics", target.http));
        let client = client.clone();
        tasks.spawn(async move {
            for p in chunk {
                let shard = header.then(|| p.instance.clone());
                if p.grpc {
                    export_grpc(&p, &grpc, shard.as_deref()).await;
                } else {
                    for (n, step) in p.steps().into_iter().enumerate() {
                        let mut req = client
                            .post(&http)
                            .header("content-type", "application/x-protobuf")
                            .body(p.request(n, step));
                        if let Some(s) = &shard {
                            req = req.header("x-leakwatch-shard", s);
                        }
                        let resp = req.send().await.expect("OTLP/HTTP export");
                        assert_eq!(
                            resp.status(),
                            200,
                            "{}",
                            resp.text().await.unwrap_or_default()
                        );
                    }
                }
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.expect("exporter task");
    }
}

/// One process's exports over one gRPC channel, as an SDK's exporter keeps it.
async fn export_grpc(p: &Process, endpoint: &str, shard: Option<&str>) {
    let channel = tonic::transport::Endpoint::from_shared(endpoint.to_owned())
        .expect("endpoint")
        .connect()
        .await
        .expect("connect");
    let mut client = tonic::client::Grpc::new(channel);
    for (n, step) in p.steps().into_iter().enumerate() {
        client.ready().await.expect("ready");
        let mut request = tonic::Request::new(p.request(n, step));
        if let Some(s) = shard {
            request
                .metadata_mut()
                .insert("x-leakwatch-shard", s.parse().expect("header value"));
        }
        client
            .unary(
                request,
                http::uri::PathAndQuery::from_static(paths::METRICS),
                Raw,
            )
            .await
            .expect("OTLP/gRPC export");
    }
}

/// Every process `lw` tracks, by instance: its resource id and tracked memory series, read
/// page by page from `/api/v1/resources`.
async fn tracked(lw: &Running) -> BTreeMap<String, (String, u64)> {
    let mut out = BTreeMap::new();
    let mut cursor = String::new();
    loop {
        let page = admin_json(
            lw,
            &format!("/api/v1/resources?sort=name&limit=50&cursor={cursor}"),
        )
        .await;
        for item in page["items"].as_array().expect("items") {
            let instance = item["resource"]["instance"].as_str().expect("instance");
            let previous = out.insert(
                instance.to_owned(),
                (
                    item["id"].as_str().expect("id").to_owned(),
                    item["summary"]["tracked_series"].as_u64().expect("series"),
                ),
            );
            assert!(previous.is_none(), "{instance} listed twice");
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = c.to_owned(),
            None => break,
        }
    }
    out
}

fn target_of(lw: &Running) -> Target {
    Target {
        grpc: lw.grpc_endpoint(),
        http: lw.http_url(""),
    }
}

fn backend(lw: &Running) -> (String, String) {
    (
        lw.addrs.grpc.expect("grpc").to_string(),
        lw.addrs.http.expect("http").to_string(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_nginx_every_process_is_on_exactly_one_instance_and_leaks_are_found_as_by_one() {
    use common::nginx::{available, Nginx};
    if !available(
        "behind_nginx_every_process_is_on_exactly_one_instance_and_leaks_are_found_as_by_one",
    ) {
        return;
    }
    const PROCESSES: usize = 200;
    let leaking = [3, 57, 100, 150, 199];
    let fleet = Process::fleet(PROCESSES, &leaking);

    // The reference: one instance given the whole fleet directly.
    let ds = Downstream::start().await;
    let single = start(leak_config(&ds)).await;
    export_fleet(&fleet, &target_of(&single), false).await;
    let one = tracked(&single).await;
    assert_eq!(one.len(), PROCESSES);
    // Two memory series each (the heap, and resident memory every other export).
    assert!(one.values().all(|(_, series)| *series == 2), "{one:?}");
    let reference = stop_and_collect(single, ds).await;

    // The shard: two instances behind nginx with the shipped config.
    let (d0, d1) = (Downstream::start().await, Downstream::start().await);
    let lw0 = start(leak_config(&d0)).await;
    let lw1 = start(leak_config(&d1)).await;
    let nginx = Nginx::start([backend(&lw0), backend(&lw1)]);
    let through = Target {
        grpc: nginx.grpc_endpoint(),
        http: nginx.http_url(""),
    };
    export_fleet(&fleet, &through, true).await;
    let (on0, on1) = (tracked(&lw0).await, tracked(&lw1).await);

    // Every process on exactly one instance, with all its series (as many as one instance
    // tracks for it), and with the same id.
    for p in &fleet {
        let here = [on0.get(&p.instance), on1.get(&p.instance)];
        let owners: Vec<_> = here.iter().flatten().collect();
        assert_eq!(
            owners.len(),
            1,
            "{} is on {} instances\n{}",
            p.instance,
            owners.len(),
            nginx.error_log()
        );
        assert_eq!(*owners[0], &one[&p.instance], "{}", p.instance);
    }
    assert_eq!(on0.len() + on1.len(), PROCESSES);
    // Both instances got a share (consistent hashing of 200 keys over two servers).
    assert!(
        on0.len() >= 40 && on1.len() >= 40,
        "{} / {}",
        on0.len(),
        on1.len()
    );
    println!(
        "sharded 200 processes: {} on instance 0, {} on instance 1",
        on0.len(),
        on1.len()
    );

    drop(nginx);
    let mut sharded = stop_and_collect(lw0, d0).await;
    sharded.extend(stop_and_collect(lw1, d1).await);
    // The same leak events as one instance gives: all of every leaking process, nothing else.
    let mut expected = reference.clone();
    expected.sort();
    sharded.sort();
    assert_eq!(sharded, expected);
    let found: BTreeSet<&str> = reference.iter().map(|e| e.instance.as_str()).collect();
    let want: BTreeSet<String> = leaking.iter().map(|i| format!("proc-{i:03}")).collect();
    assert_eq!(
        found,
        want.iter().map(String::as_str).collect::<BTreeSet<_>>()
    );
    assert_eq!(reference.len(), 3 * leaking.len(), "{reference:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_header_nginx_keeps_one_hosts_processes_together_per_protocol() {
    use common::nginx::{available, Nginx};
    if !available("without_the_header_nginx_keeps_one_hosts_processes_together_per_protocol") {
        return;
    }
    let fleet = Process::fleet(20, &[]);
    let (d0, d1) = (Downstream::start().await, Downstream::start().await);
    let lw0 = start(leak_config(&d0)).await;
    let lw1 = start(leak_config(&d1)).await;
    let nginx = Nginx::start([backend(&lw0), backend(&lw1)]);
    let through = Target {
        grpc: nginx.grpc_endpoint(),
        http: nginx.http_url(""),
    };
    export_fleet(&fleet, &through, false).await;
    let (on0, on1) = (tracked(&lw0).await, tracked(&lw1).await);
    // Every process comes from 127.0.0.1: the fallback key ($remote_addr) puts all of the
    // host's processes that use one protocol on one instance (a host, or a collector, is one
    // shard per protocol: the gRPC and HTTP upstreams hash on rings of their own), and every
    // process on exactly one instance.
    let log = nginx.error_log();
    assert_eq!(on0.len() + on1.len(), 20, "{on0:?} {on1:?}; nginx:\n{log}");
    assert!(on0.keys().all(|k| !on1.contains_key(k)), "{on0:?} {on1:?}");
    for grpc in [true, false] {
        let mut protocol = fleet.iter().filter(|p| p.grpc == grpc).map(|p| &p.instance);
        let together =
            protocol.clone().all(|i| on0.contains_key(i)) || protocol.all(|i| on1.contains_key(i));
        assert!(
            together,
            "grpc={grpc}: split over instances: {on0:?} {on1:?}; nginx:\n{log}"
        );
    }
    drop(nginx);
    lw0.stop().await;
    lw1.stop().await;
    d0.stop().await;
    d1.stop().await;
}

/// The `test.run_id` of every resource in the metric exports a downstream received.
fn run_ids_in(received: &[Received]) -> Vec<String> {
    use leakwatch::otlp::proto::otlp::collector::metrics::v1::ExportMetricsServiceRequest;
    received
        .iter()
        .filter(|r| r.path == paths::METRICS)
        .flat_map(|r| {
            ExportMetricsServiceRequest::decode(r.body.clone())
                .expect("metrics request")
                .resource_metrics
        })
        .filter_map(|rm| text(&rm.resource?.attributes, "test.run_id"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unmodified_sdks_with_the_header_in_their_exporter_settings_stay_on_one_instance() {
    use common::nginx::{available, Nginx};
    use common::procs::{Proc, TestEnv};
    if !available("unmodified_sdks_with_the_header_in_their_exporter_settings_stay_on_one_instance")
    {
        return;
    }
    let env = TestEnv::locate();
    let (d0, d1) = (Downstream::start().await, Downstream::start().await);
    let lw0 = start(test_config(Some(d0.endpoint()))).await;
    let lw1 = start(test_config(Some(d1.endpoint()))).await;
    let nginx = Nginx::start([backend(&lw0), backend(&lw1)]);
    // Six OpenTelemetry Python SDK processes (tests/e2e/send_all_signals.py), three over
    // OTLP/gRPC and three over OTLP/HTTP, four exports each; the shard header comes only from
    // the standard environment variable the SDK's exporters read.
    let mut runs = Vec::new();
    for k in 0..6 {
        let (protocol, endpoint) = if k % 2 == 0 {
            ("grpc", nginx.grpc_endpoint())
        } else {
            ("http", nginx.http_url(""))
        };
        let run_id = format!("sdk-{k}-{}", std::process::id());
        let mut cmd = std::process::Command::new(&env.python);
        cmd.arg(env.e2e_dir.join("send_all_signals.py"))
            .args(["--endpoint", &endpoint, "--protocol", protocol])
            .args([
                "--series", "2", "--spans", "0", "--logs", "0", "--rounds", "3",
            ])
            .args(["--run-id", &run_id, "--timeout-s", "10"])
            .env(
                "OTEL_EXPORTER_OTLP_HEADERS",
                format!("x-leakwatch-shard={run_id}"),
            )
            .env(
                "OTEL_RESOURCE_ATTRIBUTES",
                format!("service.instance.id={run_id}"),
            );
        let status = tokio::task::spawn_blocking(move || {
            let mut proc = Proc::spawn("send_all_signals.py", cmd);
            let status = proc.wait(Duration::from_secs(120));
            (status, proc.stdout(), proc.stderr())
        })
        .await
        .expect("join");
        assert!(status.0.success(), "{}: {}\n{}", run_id, status.1, status.2);
        runs.push(run_id);
    }
    drop(nginx);
    lw0.stop().await;
    lw1.stop().await;
    let (on0, on1) = (
        run_ids_in(&d0.stop_and_drain().await),
        run_ids_in(&d1.stop_and_drain().await),
    );
    for run in &runs {
        let (n0, n1) = (
            on0.iter().filter(|r| *r == run).count(),
            on1.iter().filter(|r| *r == run).count(),
        );
        // Every export of the process (three rounds and the one at shutdown) on one instance.
        assert!(
            (n0 >= 4 && n1 == 0) || (n0 == 0 && n1 >= 4),
            "{run}: {n0} exports on instance 0, {n1} on instance 1"
        );
    }
}

// ---------------------------------------------------------------------------------- collector

/// A piece of the Collector's config schema: the keys a section may have.
#[derive(Clone, Copy)]
enum Schema {
    /// A value that is not a mapping (scalar or list).
    Leaf,
    /// Anything (free-form maps such as `headers`).
    Any,
    /// A mapping with these keys only.
    Keys(&'static [(&'static str, Schema)]),
}
use Schema::{Any, Keys, Leaf};

// The key lists, from the Collector's generated schemas (mdatagen writes them from the config.go
// structs' mapstructure tags):
// - open-telemetry/opentelemetry-collector at 934999fbab274d10cbf18704b4594a6fb2049887:
//   exporter/otlpexporter/config.schema.yaml (and config.go), config/configgrpc/config.schema.yaml
//   (client_config, keepalive_client_config), config/configtls/config.schema.yaml
//   (client_config, config, tpm_config), config/configauth/config.schema.yaml,
//   config/configretry/config.schema.yaml (back_off_config),
//   exporter/exporterhelper/internal/config.schema.yaml (timeout_config),
//   exporter/exporterhelper/internal/queuebatch/config.schema.yaml (config, batch_config,
//   partition_config);
// - open-telemetry/opentelemetry-collector-contrib at 97b5b3ee9154784207c05720c040543974ef00f7:
//   exporter/loadbalancingexporter/config.schema.yaml (Config, Protocol, ResolverSettings and
//   the resolvers), the routing keys from config.go's `*RoutingStr` constants.

const RETRY: Schema = Keys(&[
    ("enabled", Leaf),
    ("initial_interval", Leaf),
    ("max_elapsed_time", Leaf),
    ("max_interval", Leaf),
    ("multiplier", Leaf),
    ("randomization_factor", Leaf),
]);

const QUEUE: Schema = Keys(&[
    (
        "batch",
        Keys(&[
            ("flush_timeout", Leaf),
            ("max_size", Leaf),
            ("min_size", Leaf),
            ("partition", Keys(&[("metadata_keys", Leaf)])),
            ("sizer", Leaf),
        ]),
    ),
    ("block_on_overflow", Leaf),
    ("enabled", Leaf),
    ("num_consumers", Leaf),
    ("queue_size", Leaf),
    ("sizer", Leaf),
    ("storage", Leaf),
    ("wait_for_result", Leaf),
]);

const TLS_CLIENT: Schema = Keys(&[
    ("insecure", Leaf),
    ("insecure_skip_verify", Leaf),
    ("server_name_override", Leaf),
    ("ca_file", Leaf),
    ("ca_pem", Leaf),
    ("cert_file", Leaf),
    ("cert_pem", Leaf),
    ("cipher_suites", Leaf),
    ("curve_preferences", Leaf),
    ("include_system_ca_certs_pool", Leaf),
    ("key_file", Leaf),
    ("key_pem", Leaf),
    ("max_version", Leaf),
    ("min_version", Leaf),
    ("reload_interval", Leaf),
    (
        "tpm",
        Keys(&[
            ("auth", Leaf),
            ("enabled", Leaf),
            ("owner_auth", Leaf),
            ("path", Leaf),
        ]),
    ),
]);

/// The `otlp` exporter: timeout_config + configgrpc.client_config, `sending_queue`,
/// `retry_on_failure`.
const OTLP_KEYS: &[(&str, Schema)] = &[
    ("timeout", Leaf),
    ("sending_queue", QUEUE),
    ("retry_on_failure", RETRY),
    ("auth", Keys(&[("authenticator", Leaf)])),
    ("authority", Leaf),
    ("balancer_name", Leaf),
    ("compression", Leaf),
    ("endpoint", Leaf),
    ("headers", Any),
    (
        "keepalive",
        Keys(&[
            ("permit_without_stream", Leaf),
            ("time", Leaf),
            ("timeout", Leaf),
        ]),
    ),
    ("middlewares", Leaf),
    ("read_buffer_size", Leaf),
    ("tls", TLS_CLIENT),
    ("user_agent", Leaf),
    ("wait_for_ready", Leaf),
    ("write_buffer_size", Leaf),
];

/// The `loadbalancing` exporter.
const LOADBALANCING: Schema = Keys(&[
    ("timeout", Leaf),
    ("retry_on_failure", RETRY),
    ("sending_queue", QUEUE),
    ("protocol", Keys(&[("otlp", Keys(OTLP_KEYS))])),
    (
        "resolver",
        Keys(&[
            ("static", Keys(&[("hostnames", Leaf)])),
            (
                "dns",
                Keys(&[
                    ("hostname", Leaf),
                    ("interval", Leaf),
                    ("port", Leaf),
                    ("timeout", Leaf),
                ]),
            ),
            (
                "k8s",
                Keys(&[
                    ("ports", Leaf),
                    ("return_hostnames", Leaf),
                    ("service", Leaf),
                    ("timeout", Leaf),
                ]),
            ),
            (
                "aws_cloud_map",
                Keys(&[
                    ("health_status", Leaf),
                    ("interval", Leaf),
                    ("namespace", Leaf),
                    ("port", Leaf),
                    ("service_name", Leaf),
                    ("timeout", Leaf),
                ]),
            ),
        ]),
    ),
    ("routing_attributes", Leaf),
    ("routing_key", Leaf),
]);

/// The routing keys the exporter accepts (config.go: svc, traceID, metricName, resource,
/// streamID, attr `RoutingStr`).
const ROUTING_KEYS: [&str; 6] = [
    "service",
    "traceID",
    "metric",
    "resource",
    "streamID",
    "attributes",
];

fn check_keys(path: &str, value: &serde_yaml::Value, schema: Schema, errors: &mut Vec<String>) {
    match (schema, value) {
        (Any, _) => {}
        (Leaf, serde_yaml::Value::Mapping(_)) => {
            errors.push(format!("{path}: a mapping where the schema has a value"))
        }
        (Leaf, _) => {}
        (Keys(keys), serde_yaml::Value::Mapping(m)) => {
            for (k, v) in m {
                let k = k.as_str().unwrap_or("<not a string>");
                match keys.iter().find(|(name, _)| *name == k) {
                    Some((_, inner)) => check_keys(&format!("{path}.{k}"), v, *inner, errors),
                    None => errors.push(format!("{path}.{k}: not a key of the schema")),
                }
            }
        }
        (Keys(_), serde_yaml::Value::Null) => {} // an empty section: the defaults
        (Keys(_), other) => errors.push(format!("{path}: {other:?} where the schema has keys")),
    }
}

/// What the Collector would refuse in `config` (only what this checks: the `otlp` and
/// `loadbalancing` exporters' keys and routing key, the top-level sections, and that every
/// component a pipeline or `service.extensions` names is defined).
fn collector_config_errors(config: &str) -> Vec<String> {
    let doc: serde_yaml::Value = match serde_yaml::from_str(config) {
        Ok(d) => d,
        Err(e) => return vec![format!("not YAML: {e}")],
    };
    let mut errors = Vec::new();
    let Some(top) = doc.as_mapping() else {
        return vec!["not a mapping".into()];
    };
    for k in top.keys() {
        let k = k.as_str().unwrap_or("");
        if ![
            "receivers",
            "processors",
            "exporters",
            "connectors",
            "extensions",
            "service",
        ]
        .contains(&k)
        {
            errors.push(format!("{k}: not a top-level section"));
        }
    }
    let section = |name: &str| -> BTreeMap<String, serde_yaml::Value> {
        doc.get(name)
            .and_then(|v| v.as_mapping())
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.as_str().unwrap_or("").to_owned(), v.clone()))
                    .collect()
            })
            .unwrap_or_default()
    };
    let exporters = section("exporters");
    for (id, value) in &exporters {
        let kind = id.split('/').next().unwrap_or("");
        match kind {
            "otlp" => check_keys(
                &format!("exporters.{id}"),
                value,
                Keys(OTLP_KEYS),
                &mut errors,
            ),
            // `load_balancing` is the newer name, `loadbalancing` its kept alias.
            "loadbalancing" | "load_balancing" => {
                check_keys(
                    &format!("exporters.{id}"),
                    value,
                    LOADBALANCING,
                    &mut errors,
                );
                match value.get("routing_key").and_then(|v| v.as_str()) {
                    Some(k) if !ROUTING_KEYS.contains(&k) => errors.push(format!(
                        "exporters.{id}.routing_key: {k:?} is not one of {ROUTING_KEYS:?}"
                    )),
                    _ => {}
                }
                if value
                    .get("protocol")
                    .and_then(|p| p.get("otlp"))
                    .and_then(|o| o.get("endpoint"))
                    .is_some()
                {
                    errors.push(format!(
                        "exporters.{id}.protocol.otlp.endpoint: set by the resolver, not here"
                    ));
                }
            }
            _ => {}
        }
    }
    let defined = |kind: &str, id: &str| section(kind).contains_key(id);
    let service = doc.get("service");
    for ext in service
        .and_then(|s| s.get("extensions"))
        .and_then(|e| e.as_sequence())
        .into_iter()
        .flatten()
    {
        let ext = ext.as_str().unwrap_or("");
        if !defined("extensions", ext) {
            errors.push(format!("service.extensions: {ext} is not defined"));
        }
    }
    let pipelines = service
        .and_then(|s| s.get("pipelines"))
        .and_then(|p| p.as_mapping());
    if pipelines.is_none_or(|p| p.is_empty()) {
        errors.push("service.pipelines: none".into());
    }
    for (name, p) in pipelines.into_iter().flatten() {
        let name = name.as_str().unwrap_or("");
        let signal = name.split('/').next().unwrap_or("");
        if !["metrics", "logs", "traces", "profiles"].contains(&signal) {
            errors.push(format!("service.pipelines.{name}: not a signal"));
        }
        for kind in ["receivers", "processors", "exporters"] {
            for id in p
                .get(kind)
                .and_then(|l| l.as_sequence())
                .into_iter()
                .flatten()
            {
                let id = id.as_str().unwrap_or("");
                if !defined(kind, id) && !defined("connectors", id) {
                    errors.push(format!(
                        "service.pipelines.{name}.{kind}: {id} is not defined"
                    ));
                }
                // `resource` routes metrics and logs, not traces.
                let kind_of = id.split('/').next().unwrap_or("");
                if kind == "exporters"
                    && (kind_of == "loadbalancing" || kind_of == "load_balancing")
                    && signal == "traces"
                    && exporters[id].get("routing_key").and_then(|v| v.as_str()) == Some("resource")
                {
                    errors.push(format!(
                        "service.pipelines.{name}: routing_key resource does not route traces"
                    ));
                }
            }
        }
    }
    errors
}

fn shipped(name: &str) -> String {
    let path = common::procs::repo_root()
        .join("deploy/collector")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn shipped_collector_config() -> String {
    shipped("collector.yaml")
}

#[test]
fn the_collector_config_parses_and_its_exporter_keys_are_in_the_collectors_schema() {
    for name in ["collector.yaml", "ha-pair.yaml"] {
        let errors = collector_config_errors(&shipped(name));
        assert!(errors.is_empty(), "{name}: {errors:#?}");
    }
    let config = shipped_collector_config();
    // It shards metrics by resource (README: why) into leakwatch.
    let doc: serde_yaml::Value = serde_yaml::from_str(&config).expect("yaml");
    let lb = &doc["exporters"]["loadbalancing/leakwatch"];
    assert_eq!(lb["routing_key"].as_str(), Some("resource"));
    assert_eq!(
        doc["service"]["pipelines"]["metrics/to-leakwatch"]["exporters"][0].as_str(),
        Some("loadbalancing/leakwatch")
    );
    // The pair: every metric to both instances and to the backend.
    let pair: serde_yaml::Value = serde_yaml::from_str(&shipped("ha-pair.yaml")).expect("yaml");
    let to: Vec<&str> = pair["service"]["pipelines"]["metrics"]["exporters"]
        .as_sequence()
        .expect("exporters")
        .iter()
        .filter_map(|e| e.as_str())
        .collect();
    assert_eq!(to, ["otlp/backend", "otlp/leakwatch-a", "otlp/leakwatch-b"]);
}

#[test]
fn the_collector_config_check_refuses_a_misspelt_key() {
    let config = shipped_collector_config();
    for (right, wrong) in [
        ("    routing_key: resource", "    routing_keys: resource"),
        ("    routing_key: resource", "    routing_key: resources"),
        ("      max_interval: 30s", "      max_intervall: 30s"),
        ("    sending_queue:", "    sending_que:"),
        ("        compression: zstd", "        compresion: zstd"),
        ("          insecure: true", "          insecure_skip: true"),
        (
            "        hostname: leakwatch",
            "        host_name: leakwatch",
        ),
        (
            "      storage: file_storage/queue",
            "      storag: file_storage/queue",
        ),
        ("    compression: gzip", "    compressionn: gzip"),
        ("exporters: [otlp/backend]", "exporters: [otlp/backnd]"),
    ] {
        let at = config
            .find(right)
            .unwrap_or_else(|| panic!("{right:?} is not in the config"));
        let line = config[..at].rsplit('\n').next().unwrap_or("").to_owned() + right;
        assert!(
            !line.trim_start().starts_with('#'),
            "{right:?} is first in a comment"
        );
        let bad = config.replacen(right, wrong, 1);
        let errors = collector_config_errors(&bad);
        assert!(!errors.is_empty(), "{wrong:?} passed the check");
    }
    assert!(!collector_config_errors("exporters: [").is_empty());
}
