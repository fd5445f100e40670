//! The persistent export queue (`downstream.queue.persistent`): every request a client was
//! told was accepted reaches the downstream, across `kill -9`, a graceful restart with the
//! downstream down, and at the size bound. The kill test runs the real binary; the fake
//! downstream runs in this process and outlives every leakwatch it serves.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::procs::Leakwatch;
use common::*;
use leakwatch::config::SyncMode;
use leakwatch::otlp::proto::otlp::collector::logs::v1::ExportLogsServiceRequest;
use leakwatch::otlp::proto::otlp::common::v1::{any_value, AnyValue};
use leakwatch::otlp::proto::otlp::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use leakwatch::otlp::proto::paths;
use prost::Message;
use tonic::Code;

/// A directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "leakwatch-persistence-{}-{}-{name}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&path);
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A logs request whose one record's body is `req-<id>`, padded to about `pad` bytes.
fn numbered(id: usize, pad: usize) -> Bytes {
    let request = ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(resource("persisted", "pod-1")),
            scope_logs: vec![ScopeLogs {
                scope: None,
                log_records: vec![LogRecord {
                    time_unix_nano: 1,
                    body: Some(AnyValue {
                        value: Some(any_value::Value::StringValue(format!("req-{id}"))),
                    }),
                    severity_text: "x".repeat(pad),
                    ..Default::default()
                }],
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    };
    Bytes::from(request.encode_to_vec())
}

/// The id a request built by [`numbered`] carries.
/// The ids of the requests an export carries (several when the exporter merged them).
fn ids_of(body: &Bytes) -> Vec<usize> {
    let Ok(request) = ExportLogsServiceRequest::decode(body.clone()) else {
        return Vec::new();
    };
    request
        .resource_logs
        .iter()
        .flat_map(|r| &r.scope_logs)
        .flat_map(|s| &s.log_records)
        .filter_map(|record| match record.body.as_ref()?.value.as_ref()? {
            any_value::Value::StringValue(s) => s.strip_prefix("req-")?.parse().ok(),
            _ => None,
        })
        .collect()
}

/// Counts, per id, the log requests the downstream received so far (non-blocking).
fn drain(downstream: &mut Downstream, seen: &mut BTreeMap<usize, usize>) {
    while let Ok(r) = downstream.rx.try_recv() {
        if r.path == paths::LOGS {
            for id in ids_of(&r.body) {
                *seen.entry(id).or_default() += 1;
            }
        }
    }
}

/// Polls the downstream until every id in `want` arrived at least once, or `timeout`.
async fn wait_for_ids(
    downstream: &mut Downstream,
    seen: &mut BTreeMap<usize, usize>,
    want: &HashSet<usize>,
    timeout: Duration,
) -> Vec<usize> {
    let deadline = Instant::now() + timeout;
    loop {
        drain(downstream, seen);
        let mut missing: Vec<usize> = want
            .iter()
            .filter(|id| !seen.contains_key(id))
            .copied()
            .collect();
        if missing.is_empty() || Instant::now() > deadline {
            missing.sort_unstable();
            return missing;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Most requests the exporter merges into one export in these runs (`downstream.batch`).
const BATCH: usize = 8;

fn persistent_yaml(dir: &TempDir, max_bytes: u64, sync: &str, grace: &str) -> String {
    format!(
        "downstream:\n  senders: 2\n  batch:\n    max_requests: {BATCH}\n  retry:\n    initial_interval: 20ms\n    max_interval: 100ms\n    max_elapsed_time: 10m\n  queue:\n    persistent:\n      dir: {}\n      max_bytes: {max_bytes}\n      sync: {sync}\nevents:\n  logs: false\n  derived_metrics: false\nshutdown:\n  grace_period: {grace}\n",
        dir.0.display()
    )
}

async fn start_binary(downstream: &Downstream, yaml: &str) -> Leakwatch {
    let endpoint = downstream.endpoint();
    let yaml = yaml.to_owned();
    tokio::task::spawn_blocking(move || Leakwatch::start(&endpoint, &yaml))
        .await
        .expect("start leakwatch")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_request_survives_kill_9() {
    const N: usize = 1500;
    const CLIENTS: usize = 8;
    const KILL_AFTER_OKS: usize = 500;
    const SENDERS: usize = 2;
    let dir = TempDir::new("kill9");
    let mut downstream = Downstream::start().await;
    // A slow downstream (40 ms per export: at most SENDERS × BATCH requests per 40 ms, about
    // half what the clients send): the queue fills while clients send, so the kill finds
    // requests queued, in flight, and delivered.
    *downstream.behaviour.lock().await = Behaviour::Delay(Duration::from_millis(40));
    let yaml = persistent_yaml(&dir, 256 << 20, "always", "5s");
    let mut lw = start_binary(&downstream, &yaml).await;
    let endpoint = lw.grpc_endpoint();

    let next = Arc::new(AtomicUsize::new(0));
    let acked = Arc::new(Mutex::new(HashSet::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut clients = tokio::task::JoinSet::new();
    for _ in 0..CLIENTS {
        let (next, acked, stop, endpoint) = (
            Arc::clone(&next),
            Arc::clone(&acked),
            Arc::clone(&stop),
            endpoint.clone(),
        );
        clients.spawn(async move {
            while !stop.load(Ordering::Acquire) {
                let id = next.fetch_add(1, Ordering::AcqRel);
                if id >= N {
                    return;
                }
                let sent = grpc_raw(&endpoint, paths::LOGS, numbered(id, 200), None, None).await;
                if sent.is_ok() {
                    acked.lock().expect("lock").insert(id);
                }
            }
        });
    }
    // Kill -9 in the middle of the load.
    let deadline = Instant::now() + Duration::from_secs(60);
    while acked.lock().expect("lock").len() < KILL_AFTER_OKS {
        assert!(Instant::now() < deadline, "clients too slow");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    lw.proc.kill();
    let load_secs = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Release);
    while clients.join_next().await.is_some() {}
    let acked: HashSet<usize> = acked.lock().expect("lock").clone();
    let mut seen = BTreeMap::new();
    drain(&mut downstream, &mut seen);
    let delivered_before = seen.len();
    let attempted = next.load(Ordering::Acquire).min(N);
    assert!(
        acked.len() > delivered_before,
        "the kill should find acknowledged requests not yet delivered ({} acked, {delivered_before} delivered)",
        acked.len()
    );

    // Restart on the same directory with a working downstream.
    *downstream.behaviour.lock().await = Behaviour::Accept;
    let lw2 = start_binary(&downstream, &yaml).await;
    let missing = wait_for_ids(&mut downstream, &mut seen, &acked, Duration::from_secs(60)).await;
    assert!(
        missing.is_empty(),
        "{} acknowledged requests lost after kill -9 (e.g. {:?})",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
    let (_, metrics) = lw2.admin_get("/metrics");
    let replayed = metrics
        .lines()
        .find_map(|l| l.strip_prefix("leakwatch_exporter_persistent_replayed_requests_total "))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .expect("replayed counter");

    // Clients retry what was not acknowledged; then every id is there.
    let all: HashSet<usize> = (0..N).collect();
    for id in 0..N {
        if !acked.contains(&id) {
            grpc_raw(
                &lw2.grpc_endpoint(),
                paths::LOGS,
                numbered(id, 200),
                None,
                None,
            )
            .await
            .expect("accepted after the restart");
        }
    }
    let missing = wait_for_ids(&mut downstream, &mut seen, &all, Duration::from_secs(60)).await;
    assert!(missing.is_empty(), "missing after retries: {missing:?}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    drain(&mut downstream, &mut seen);
    let received: usize = seen.values().sum();
    let duplicates = received - seen.len();
    let duplicated_ids = seen.values().filter(|n| **n > 1).count();
    println!(
        "kill -9 under load: {attempted} sent, {} acknowledged in {load_secs:.2} s ({:.0}/s), \
         {delivered_before} delivered before the kill, {replayed} replayed after the restart; \
         {received} received for {} ids: {duplicates} duplicates ({duplicated_ids} ids)",
        acked.len(),
        acked.len() as f64 / load_secs,
        seen.len()
    );
    // Duplicates come only from requests in flight at the kill: delivered but not yet
    // marked done (at most one export per sender, of up to BATCH merged requests), or
    // written but not acknowledged and then retried by their client (at most one per client).
    assert!(
        duplicates <= SENDERS * BATCH + CLIENTS,
        "{duplicates} duplicates: more than the requests in flight at the kill"
    );
    drop(lw2);
    downstream.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_stop_with_the_downstream_down_keeps_the_queue_for_the_next_start() {
    let dir = TempDir::new("sigterm");
    let mut downstream = Downstream::start().await;
    *downstream.behaviour.lock().await = Behaviour::Fail(Code::Unavailable);
    let yaml = persistent_yaml(&dir, 64 << 20, "batch", "500ms");
    let mut lw = start_binary(&downstream, &yaml).await;
    for id in 0..50 {
        grpc_raw(
            &lw.grpc_endpoint(),
            paths::LOGS,
            numbered(id, 10),
            None,
            None,
        )
        .await
        .expect("accepted");
    }
    let (status, within_grace) = tokio::task::spawn_blocking(move || {
        let r = lw.proc.terminate(Duration::from_secs(20));
        drop(lw);
        r
    })
    .await
    .expect("join");
    assert!(within_grace && status.success(), "exit: {status:?}");
    let mut seen = BTreeMap::new();
    drain(&mut downstream, &mut seen);
    assert!(seen.is_empty(), "the downstream was down: {seen:?}");

    *downstream.behaviour.lock().await = Behaviour::Accept;
    let lw2 = start_binary(&downstream, &yaml).await;
    let want: HashSet<usize> = (0..50).collect();
    let missing = wait_for_ids(&mut downstream, &mut seen, &want, Duration::from_secs(30)).await;
    assert!(
        missing.is_empty(),
        "lost across a graceful restart: {missing:?}"
    );
    // Every segment is deleted once its requests are delivered.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, metrics) = lw2.admin_get("/metrics");
        if metrics.contains("leakwatch_exporter_persistent_queue_bytes 0\n") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "queue files not reclaimed:\n{metrics}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(lw2);
    downstream.stop().await;
}

#[tokio::test]
async fn the_size_bound_refuses_with_unavailable_and_recovers() {
    let dir = TempDir::new("bound");
    let mut downstream = Downstream::start().await;
    *downstream.behaviour.lock().await = Behaviour::Fail(Code::Unavailable);
    let mut config = test_config(Some(downstream.endpoint()));
    config.downstream.retry.max_elapsed_time = Duration::from_secs(600);
    config.downstream.queue.persistent = Some(leakwatch::config::PersistentQueueConfig {
        dir: dir.0.clone(),
        max_bytes: 64 * 1024,
        sync: SyncMode::Always,
    });
    let lw = start(config).await;
    let mut accepted = HashSet::new();
    let mut refused = None;
    for id in 0..100 {
        match grpc_raw(
            &lw.grpc_endpoint(),
            paths::LOGS,
            numbered(id, 4000),
            None,
            None,
        )
        .await
        {
            Ok(_) => {
                accepted.insert(id);
            }
            Err(status) => {
                refused = Some(status);
                break;
            }
        }
    }
    let status = refused.expect("64 KiB of 4 KiB requests fills the bound");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(
        (10..=16).contains(&accepted.len()),
        "{} requests of ~4 KiB in 64 KiB",
        accepted.len()
    );
    // The downstream comes back: the queue drains, its segments go, room returns.
    *downstream.behaviour.lock().await = Behaviour::Accept;
    let mut seen = BTreeMap::new();
    let missing = wait_for_ids(
        &mut downstream,
        &mut seen,
        &accepted,
        Duration::from_secs(30),
    )
    .await;
    assert!(missing.is_empty(), "{missing:?}");
    // The sender marks a request done just after the downstream answered: retry briefly.
    let deadline = Instant::now() + Duration::from_secs(10);
    while let Err(status) = grpc_raw(
        &lw.grpc_endpoint(),
        paths::LOGS,
        numbered(1000, 4000),
        None,
        None,
    )
    .await
    {
        assert!(
            Instant::now() < deadline,
            "no room once delivered: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let report = lw.stop().await;
    assert_eq!(report.dropped_requests, 0);
    downstream.stop().await;
}

/// What one request costs with each sync mode, measured through the whole in-process
/// pipeline (gRPC in, write-ahead, gRPC out), with 16 concurrent clients.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_queue_costs_are_measured_and_everything_is_delivered() {
    const N: usize = 1000;
    const CLIENTS: usize = 16;
    let mut figures = Vec::new();
    for mode in [None, Some(SyncMode::Batch), Some(SyncMode::Always)] {
        let dir = TempDir::new("cost");
        let mut downstream = Downstream::start().await;
        let mut config = test_config(Some(downstream.endpoint()));
        config.downstream.queue.persistent =
            mode.map(|sync| leakwatch::config::PersistentQueueConfig {
                dir: dir.0.clone(),
                max_bytes: 256 << 20,
                sync,
            });
        let lw = start(config).await;
        let channel = tonic::transport::Endpoint::from_shared(lw.grpc_endpoint())
            .expect("endpoint")
            .connect()
            .await
            .expect("connect");
        let next = Arc::new(AtomicUsize::new(0));
        let started = Instant::now();
        let mut clients = tokio::task::JoinSet::new();
        for _ in 0..CLIENTS {
            let (next, channel) = (Arc::clone(&next), channel.clone());
            clients.spawn(async move {
                let mut latencies = Vec::new();
                loop {
                    let id = next.fetch_add(1, Ordering::AcqRel);
                    if id >= N {
                        return latencies;
                    }
                    let mut client = tonic::client::Grpc::new(channel.clone());
                    client.ready().await.expect("ready");
                    let t = Instant::now();
                    client
                        .unary(
                            tonic::Request::new(numbered(id, 500)),
                            http::uri::PathAndQuery::from_static(paths::LOGS),
                            Raw,
                        )
                        .await
                        .expect("accepted");
                    latencies.push(t.elapsed());
                }
            });
        }
        let mut latencies = Vec::new();
        while let Some(l) = clients.join_next().await {
            latencies.extend(l.expect("client"));
        }
        let secs = started.elapsed().as_secs_f64();
        latencies.sort_unstable();
        let mut seen = BTreeMap::new();
        let want: HashSet<usize> = (0..N).collect();
        let missing =
            wait_for_ids(&mut downstream, &mut seen, &want, Duration::from_secs(30)).await;
        assert!(missing.is_empty(), "{mode:?}: {} missing", missing.len());
        let name = match mode {
            None => "in-memory",
            Some(SyncMode::Batch) => "persistent, sync: batch",
            Some(SyncMode::Always) => "persistent, sync: always",
        };
        figures.push(format!(
            "{name}: {:.0} requests/s, latency p50 {:?} p99 {:?}",
            N as f64 / secs,
            latencies[latencies.len() / 2],
            latencies[latencies.len() * 99 / 100]
        ));
        lw.stop().await;
        downstream.stop().await;
    }
    println!("{} requests of ~0.6 KiB, {CLIENTS} concurrent clients:", N);
    for f in figures {
        println!("  {f}");
    }
}

/// Two leakwatch processes on one queue directory would interleave records and each replay the
/// other's requests: the second is refused at start with a clear error, and the directory is
/// free again once the first has stopped.
#[tokio::test]
async fn a_second_leakwatch_on_the_same_queue_directory_is_refused() {
    let dir = TempDir::new("lock");
    let downstream = Downstream::start().await;
    let mut config = test_config(Some(downstream.endpoint()));
    config.downstream.queue.persistent = Some(leakwatch::config::PersistentQueueConfig {
        dir: dir.0.clone(),
        max_bytes: 1 << 20,
        sync: SyncMode::Always,
    });
    let lw = start(config.clone()).await;
    // Once a request is accepted, the first one's exporter (and its queue) has started.
    grpc_raw(&lw.grpc_endpoint(), paths::LOGS, numbered(1, 0), None, None)
        .await
        .expect("the first instance runs");
    let second = leakwatch::server::Bound::bind(config.clone())
        .await
        .expect("its listeners bind (ports of its own)");
    let Err(err) = tokio::time::timeout(
        Duration::from_secs(10),
        second.run(tokio_util::sync::CancellationToken::new()),
    )
    .await
    .expect("refused at start, not run") else {
        panic!("a second instance on the same directory is refused");
    };
    let text = err.to_string();
    assert!(
        text.contains("in use by another process") && text.contains(&dir.0.display().to_string()),
        "{text}"
    );
    lw.stop().await;
    let again = start(config).await;
    again.stop().await;
    downstream.stop().await;
}
