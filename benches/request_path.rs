//! The whole request path in-process:
//! - `engine`: `Engine::ingest_metrics` on a request's bytes (lean decode,
//!   series identification, detector updates); `engine_40k_series`: the same
//!   at sdk size from a fleet of 40,000 series, whose state is cold in the caches;
//! - `ingress`: the receivers' protocol-independent `Ingress::export`
//!   (decode, count, detection, no downstream);
//! - `grpc`, `grpc_forward`: one OTLP/gRPC export at a time over loopback to
//!   a leakwatch server running in this process, without and with
//!   forwarding to a blackhole downstream (the load generator's sink).

mod fixtures;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::measurement::WallTime;
use criterion::{
    black_box, criterion_group, criterion_main, BatchSize, BenchmarkGroup, BenchmarkId, Criterion,
    Throughput,
};
use http::uri::PathAndQuery;
use leakwatch::config::Config;
use leakwatch::engine::{Engine, EngineConfig};
use leakwatch::notify::Notifier;
use leakwatch::ops::limiter::MemoryLimiter;
use leakwatch::ops::telemetry::Telemetry;
use leakwatch::otlp::codec::RawCodec;
use leakwatch::otlp::proto::paths;
use leakwatch::otlp::signal::{Protocol, Signal};
use leakwatch::pipeline::Ingress;
use leakwatch::server::Bound;
use leakwatch_tools::loadgen::Size;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use fixtures::{Fixture, SIZES};

fn engine() -> Arc<Engine> {
    Arc::new(Engine::new(
        EngineConfig::default(),
        Arc::new(Telemetry::new()),
    ))
}

/// `Engine::ingest_metrics` on the requests of `fixture`, every series created first.
fn bench_engine(group: &mut BenchmarkGroup<'_, WallTime>, id: &str, fixture: &Fixture) {
    let engine = engine();
    let mut cursor = fixture.cursor(0);
    cursor.one_cycle(|b| {
        engine.ingest_metrics(b).expect("ingests");
    });
    group.bench_function(BenchmarkId::new(id, fixture.name()), |b| {
        b.iter_batched(
            || cursor.next_request(),
            |body| black_box(engine.ingest_metrics(body).expect("ingests").points),
            BatchSize::SmallInput,
        )
    });
}

fn in_process(c: &mut Criterion) {
    let mut group = c.benchmark_group("request_path");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    for size in SIZES {
        let fixture = Fixture::new(size);
        group.throughput(Throughput::Elements(fixture.points()));

        bench_engine(&mut group, "engine", &fixture);
        // The same requests from the fleet of scripts/bench.sh's sdk load
        // (40,000 series of 1,000 processes): each request finds its
        // process's state cold, as in a real fleet.
        if size == Size::Sdk {
            bench_engine(
                &mut group,
                "engine_40k_series",
                &Fixture::fleet(size, 40_000),
            );
        }

        let telemetry = Arc::new(Telemetry::new());
        let ingress = Ingress {
            engine: Arc::new(Engine::new(EngineConfig::default(), Arc::clone(&telemetry))),
            queue: None,
            events: Notifier::counting(Arc::clone(&telemetry)),
            telemetry,
            token: None,
            max_decompressed_bytes: 64 << 20,
            retry_after: Duration::from_secs(1),
            limiter: Arc::new(MemoryLimiter::unlimited()),
        };
        let mut cursor = fixture.cursor(0);
        cursor.one_cycle(|b| {
            ingress
                .export(Signal::Metrics, Protocol::Grpc, b)
                .expect("accepted");
        });
        group.bench_function(BenchmarkId::new("ingress", fixture.name()), |b| {
            b.iter_batched(
                || cursor.next_request(),
                |body| {
                    black_box(
                        ingress
                            .export(Signal::Metrics, Protocol::Grpc, body)
                            .expect("accepted"),
                    )
                },
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

/// A leakwatch server (and optionally a sink behind it) on loopback ports.
struct Server {
    endpoint: String,
    stop: CancellationToken,
}

async fn start(forward: bool) -> Server {
    let stop = CancellationToken::new();
    let mut config = Config::default();
    config.receivers.grpc.listen = "127.0.0.1:0".parse().expect("addr");
    config.receivers.http.enabled = false;
    config.admin.enabled = false;
    config.events.derived_metrics = false;
    if forward {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind sink");
        config.downstream.endpoint =
            Some(format!("http://{}", listener.local_addr().expect("addr")));
        let token = stop.clone();
        tokio::spawn(leakwatch_tools::loadgen::run_sink(
            listener,
            token.cancelled_owned(),
        ));
    }
    let bound = Bound::bind(config).await.expect("bind leakwatch");
    let endpoint = format!("http://{}", bound.addresses().grpc.expect("grpc"));
    let token = stop.clone();
    tokio::spawn(async move { bound.run(token).await });
    Server { endpoint, stop }
}

async fn client(endpoint: &str) -> tonic::client::Grpc<tonic::transport::Channel> {
    let channel = tonic::transport::Endpoint::from_shared(endpoint.to_owned())
        .expect("endpoint")
        .tcp_nodelay(true)
        .connect()
        .await
        .expect("connect");
    tonic::client::Grpc::new(channel).max_encoding_message_size(usize::MAX)
}

async fn export(client: &mut tonic::client::Grpc<tonic::transport::Channel>, body: Bytes) {
    client.ready().await.expect("ready");
    client
        .unary::<Bytes, Bytes, _>(
            tonic::Request::new(body),
            PathAndQuery::from_static(paths::METRICS),
            RawCodec,
        )
        .await
        .expect("accepted");
}

fn over_grpc(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut group = c.benchmark_group("request_path");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .sample_size(30);
    for size in SIZES {
        let fixture = Fixture::new(size);
        group.throughput(Throughput::Elements(fixture.points()));
        for forward in [false, true] {
            let server = rt.block_on(start(forward));
            let mut client = rt.block_on(client(&server.endpoint));
            let mut cursor = fixture.cursor(0);
            rt.block_on(async {
                for _ in 0..fixture.requests_per_cycle() {
                    export(&mut client, cursor.next_request()).await;
                }
            });
            let name = if forward { "grpc_forward" } else { "grpc" };
            group.bench_function(BenchmarkId::new(name, fixture.name()), |b| {
                b.iter_custom(|iters| {
                    let bodies: Vec<Bytes> = (0..iters).map(|_| cursor.next_request()).collect();
                    rt.block_on(async {
                        let started = Instant::now();
                        for body in bodies {
                            export(&mut client, body).await;
                        }
                        started.elapsed()
                    })
                })
            });
            server.stop.cancel();
        }
    }
    group.finish();
}

criterion_group!(benches, in_process, over_grpc);
criterion_main!(benches);
