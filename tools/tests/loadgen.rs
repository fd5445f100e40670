//! `leakwatch-loadgen` end to end: a leakwatch server in-process on loopback
//! ports, forwarding to the load generator's blackhole sink, driven over
//! OTLP/gRPC, OTLP/HTTP 1.1 and h2c.

use std::time::Duration;

use leakwatch::config::Config;
use leakwatch::server::Bound;
use leakwatch_tools::loadgen::{self, LoadgenConfig, Protocol, Size, WorkloadConfig};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

struct Setup {
    grpc: String,
    http: String,
    stop: CancellationToken,
    sink: tokio::task::JoinHandle<Result<loadgen::SinkReport, loadgen::LoadgenError>>,
    server: tokio::task::JoinHandle<()>,
}

async fn setup() -> Setup {
    let stop = CancellationToken::new();
    let sink_stop = CancellationToken::new();
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind sink");
    let sink_addr = listener.local_addr().expect("addr");
    let sink = tokio::spawn(loadgen::run_sink(
        listener,
        sink_stop.clone().cancelled_owned(),
    ));
    let mut config = Config::default();
    config.receivers.grpc.listen = "127.0.0.1:0".parse().expect("addr");
    config.receivers.http.listen = "127.0.0.1:0".parse().expect("addr");
    config.admin.enabled = false;
    config.events.derived_metrics = false;
    config.downstream.endpoint = Some(format!("http://{sink_addr}"));
    let bound = Bound::bind(config).await.expect("bind leakwatch");
    let addrs = bound.addresses();
    let token = stop.clone();
    let server = tokio::spawn(async move {
        bound.run(token).await.expect("leakwatch runs");
        // The sink stops once leakwatch has drained its queue into it.
        sink_stop.cancel();
    });
    Setup {
        grpc: format!("http://{}", addrs.grpc.expect("grpc")),
        http: format!("http://{}/v1/metrics", addrs.http.expect("http")),
        stop,
        sink,
        server,
    }
}

fn config(protocol: Protocol, endpoint: &str) -> LoadgenConfig {
    LoadgenConfig {
        protocol,
        endpoint: endpoint.to_owned(),
        size: Some(Size::Sdk),
        workload: WorkloadConfig::fleet(Size::Sdk, 400),
        concurrency: 4,
        connections: 1,
        rate: None,
        duration: Duration::from_millis(500),
        warmup: Duration::ZERO,
        cycles: None,
        timeout: Duration::from_secs(10),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_protocol_is_accepted_and_forwarded() {
    let s = setup().await;
    let mut sent = 0;
    for (i, (protocol, endpoint)) in [
        (Protocol::Grpc, &s.grpc),
        (Protocol::Http, &s.http),
        (Protocol::H2c, &s.http),
    ]
    .into_iter()
    .enumerate()
    {
        // Each run starts 30 days of event time after the previous one, so
        // no series goes back in time across the three runs.
        let mut cfg = config(protocol, endpoint);
        cfg.workload.start_unix_nano += i as u64 * 30 * 86_400_000_000_000;
        let report = loadgen::run(cfg).await.expect("load runs");
        assert!(
            report.errors.is_empty(),
            "{protocol:?}: {:?}",
            report.errors
        );
        assert!(report.requests > 0, "{protocol:?} sent nothing");
        assert_eq!(report.points, report.requests * 40);
        assert_eq!(report.rejected_points, 0);
        assert!(report.latency_ms.p50 > 0.0 && report.latency_ms.p50 <= report.latency_ms.max);
        sent += report.requests;
    }
    s.stop.cancel();
    s.server.await.expect("server task");
    let sink = s.sink.await.expect("sink task").expect("sink runs");
    // One process per SDK-sized request; leakwatch may merge requests into
    // fewer exports, but every resource must arrive.
    assert!(
        sink.resources >= sent,
        "forwarded {} of {sent} requests' resources (in {} exports)",
        sink.resources,
        sink.requests
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cycles_bound_the_run_and_every_series_gets_each_point() {
    let s = setup().await;
    let mut cfg = config(Protocol::Grpc, &s.grpc);
    cfg.cycles = Some(3);
    cfg.duration = Duration::from_secs(30);
    let report = loadgen::run(cfg).await.expect("load runs");
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(report.cycles, 3);
    assert_eq!(report.points, 3 * 400);
    assert_eq!(report.requests, 3 * 10);
    s.stop.cancel();
    s.server.await.expect("server task");
    s.sink.await.expect("sink task").expect("sink runs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_loop_never_runs_ahead_of_its_schedule() {
    // Counts, not a wall-clock rate: a loaded machine may fall behind the
    // schedule (the rate figure belongs to scripts/bench.sh), but an open loop
    // can never send more than the schedule allows, and every answered
    // request must reach the downstream.
    let s = setup().await;
    let mut cfg = config(Protocol::Grpc, &s.grpc);
    cfg.rate = Some(4_000.0);
    cfg.duration = Duration::from_secs(1);
    let report = loadgen::run(cfg).await.expect("load runs");
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert!(report.requests > 0, "nothing sent");
    assert_eq!(
        report.points as f64,
        report.requests as f64 * report.points_per_request
    );
    // 4,000 points/s of 40-point requests: at most 100 per second of the window,
    // plus one in flight per worker. A closed loop sends thousands.
    let allowed = (4_000.0 * report.seconds / report.points_per_request).ceil() as u64
        + report.concurrency as u64;
    assert!(
        report.requests <= allowed,
        "{} requests in {:.2} s, the schedule allows {allowed}",
        report.requests,
        report.seconds
    );
    s.stop.cancel();
    s.server.await.expect("server task");
    let sink = s.sink.await.expect("sink task").expect("sink runs");
    assert!(
        sink.resources >= report.requests,
        "forwarded {} of {} requests' resources",
        sink.resources,
        report.requests
    );
}
