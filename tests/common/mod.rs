//! Shared helpers for the integration tests: start leakwatch in-process on
//! 127.0.0.1:0, a fake downstream collector that pushes every request's raw
//! bytes into a channel, and request builders.
#![allow(dead_code)]

pub mod alertmanager;
pub mod apps;
pub mod leak;
pub mod nginx;
pub mod procs;
pub mod rotel;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use leakwatch::config::Config;
use leakwatch::otlp::build;
use leakwatch::otlp::proto::otlp::collector::metrics::v1::ExportMetricsServiceRequest;
use leakwatch::otlp::proto::otlp::metrics::v1::{
    exponential_histogram_data_point::Buckets, metric, number_data_point,
    summary_data_point::ValueAtQuantile, AggregationTemporality, ExponentialHistogram,
    ExponentialHistogramDataPoint, Histogram, HistogramDataPoint, Metric, NumberDataPoint, Sum,
    Summary, SummaryDataPoint,
};
use leakwatch::otlp::proto::otlp::resource::v1::Resource;
use leakwatch::otlp::service::{raw_services, RawExport};
use leakwatch::otlp::signal::Signal;
use leakwatch::server::{Addresses, Bound, ShutdownReport};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, Mutex};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::Status;

/// The raw-bytes codec, for tests' own gRPC clients.
pub use leakwatch::otlp::codec::RawCodec as Raw;

/// One request the fake downstream received: its gRPC path and raw bytes.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub body: Bytes,
}

/// What the fake downstream answers.
#[derive(Clone)]
pub enum Behaviour {
    Accept,
    Fail(tonic::Code),
    /// Accept after this long (a slow downstream).
    Delay(Duration),
    /// Fail with the code the requests whose bytes the predicate picks; accept the others.
    FailWhen(fn(&[u8]) -> bool, tonic::Code),
    /// Accept, answering with a `partial_success` of this many rejected items.
    PartialSuccess(i64),
}

/// A fake downstream collector: every export request's raw bytes go into a channel.
pub struct Downstream {
    pub addr: SocketAddr,
    pub rx: mpsc::UnboundedReceiver<Received>,
    pub behaviour: Arc<Mutex<Behaviour>>,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

/// The fake downstream's handler behind leakwatch's raw-bytes export service.
#[derive(Clone)]
struct Sink {
    tx: mpsc::UnboundedSender<Received>,
    behaviour: Arc<Mutex<Behaviour>>,
}

impl RawExport for Sink {
    type Future =
        std::pin::Pin<Box<dyn std::future::Future<Output = Result<Bytes, Status>> + Send>>;

    fn export(&self, signal: Signal, body: Bytes) -> Self::Future {
        let sink = self.clone();
        let path = signal.grpc_path().to_owned();
        Box::pin(async move {
            match sink.behaviour.lock().await.clone() {
                Behaviour::Accept => {
                    let _ = sink.tx.send(Received { path, body });
                    Ok(Bytes::new())
                }
                Behaviour::Fail(code) => Err(Status::new(code, "fake downstream told to fail")),
                Behaviour::PartialSuccess(rejected) => {
                    let _ = sink.tx.send(Received { path, body });
                    // Field 1 of every Export*ServiceResponse: partial_success {rejected = 1,
                    // error_message = 2}.
                    let reply = leakwatch::otlp::proto::otlp::collector::logs::v1::ExportLogsServiceResponse {
                        partial_success: Some(
                            leakwatch::otlp::proto::otlp::collector::logs::v1::ExportLogsPartialSuccess {
                                rejected_log_records: rejected,
                                error_message: "fake downstream rejected some".into(),
                            },
                        ),
                    };
                    Ok(Bytes::from(prost::Message::encode_to_vec(&reply)))
                }
                Behaviour::FailWhen(pick, code) => {
                    if pick(&body) {
                        return Err(Status::new(code, "fake downstream told to fail this one"));
                    }
                    let _ = sink.tx.send(Received { path, body });
                    Ok(Bytes::new())
                }
                Behaviour::Delay(d) => {
                    tokio::time::sleep(d).await;
                    let _ = sink.tx.send(Received { path, body });
                    Ok(Bytes::new())
                }
            }
        })
    }
}

impl Downstream {
    pub async fn start() -> Downstream {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind downstream");
        Self::start_on(listener).await
    }

    /// A downstream serving TLS with the given PEM certificate and key.
    pub async fn start_tls(cert: &std::path::Path, key: &std::path::Path) -> Downstream {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind downstream");
        let identity = tonic::transport::Identity::from_pem(
            std::fs::read(cert).expect("cert"),
            std::fs::read(key).expect("key"),
        );
        let tls = tonic::transport::ServerTlsConfig::new().identity(identity);
        Self::serve(listener, Some(tls)).await
    }

    pub async fn start_on(listener: TcpListener) -> Downstream {
        Self::serve(listener, None).await
    }

    async fn serve(
        listener: TcpListener,
        tls: Option<tonic::transport::ServerTlsConfig>,
    ) -> Downstream {
        let addr = listener.local_addr().expect("addr");
        let (tx, rx) = mpsc::unbounded_channel();
        let behaviour = Arc::new(Mutex::new(Behaviour::Accept));
        let sink = Sink {
            tx,
            behaviour: Arc::clone(&behaviour),
        };
        let stop = CancellationToken::new();
        let token = stop.clone();
        let task = tokio::spawn(async move {
            let mut builder = tonic::transport::Server::builder();
            if let Some(tls) = tls {
                builder = builder.tls_config(tls).expect("downstream tls");
            }
            let services = raw_services(sink, 64 * 1024 * 1024);
            builder
                .add_service(services.metrics)
                .add_service(services.traces)
                .add_service(services.logs)
                .serve_with_incoming_shutdown(
                    tonic::transport::server::TcpIncoming::from(listener),
                    token.cancelled_owned(),
                )
                .await
                .expect("downstream serve");
        });
        Downstream {
            addr,
            rx,
            behaviour,
            stop,
            task,
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The next request received, within 10 s.
    pub async fn next(&mut self) -> Received {
        tokio::time::timeout(Duration::from_secs(10), self.rx.recv())
            .await
            .expect("downstream received nothing within 10 s")
            .expect("downstream channel open")
    }

    /// The next request on `path`, skipping others (e.g. leak events).
    pub async fn next_on(&mut self, path: &str) -> Received {
        loop {
            let r = self.next().await;
            if r.path == path {
                return r;
            }
        }
    }

    /// The bodies received on `path`, concatenated, until they hold `len` bytes: what
    /// several requests became, whether leakwatch sent them one by one or merged some
    /// into one export (their encodings concatenated).
    pub async fn bytes_on(&mut self, path: &str, len: usize) -> Vec<u8> {
        let mut got = Vec::new();
        while got.len() < len {
            got.extend_from_slice(&self.next_on(path).await.body);
        }
        got
    }

    pub async fn stop(self) {
        self.stop_and_drain().await;
    }

    /// Stops the server and returns what it received that was not read yet
    /// (requests can land between the last read and the stop). Nothing more can
    /// land after: tonic's graceful stop returns only once every connection has
    /// closed, a connection closes only once its streams are done, and the
    /// handler puts a request in the channel before it answers OK.
    pub async fn stop_and_drain(mut self) -> Vec<Received> {
        self.stop.cancel();
        let _ = self.task.await;
        let mut rest = Vec::new();
        while let Ok(r) = self.rx.try_recv() {
            rest.push(r);
        }
        rest
    }
}

/// A leakwatch server running in-process.
pub struct Running {
    pub addrs: Addresses,
    pub shutdown: CancellationToken,
    pub task: JoinHandle<ShutdownReport>,
}

impl Running {
    pub fn grpc_endpoint(&self) -> String {
        format!("http://{}", self.addrs.grpc.expect("grpc enabled"))
    }
    pub fn http_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addrs.http.expect("http enabled"))
    }
    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addrs.admin.expect("admin enabled"))
    }
    pub async fn stop(self) -> ShutdownReport {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .expect("stopped within 30 s")
            .expect("join")
    }
}

/// A config listening on ephemeral loopback ports.
pub fn test_config(downstream: Option<String>) -> Config {
    let mut c = Config::default();
    c.receivers.grpc.listen = "127.0.0.1:0".parse().expect("addr");
    c.receivers.http.listen = "127.0.0.1:0".parse().expect("addr");
    c.admin.listen = "127.0.0.1:0".parse().expect("addr");
    c.downstream.endpoint = downstream;
    c.downstream.retry.initial_interval = Duration::from_millis(50);
    c.downstream.retry.max_interval = Duration::from_millis(200);
    // Requests sent one after the other leave one by one (merging only what is queued at
    // once), so tests can match exports to requests; the linger has tests of its own.
    c.downstream.batch.linger = Duration::ZERO;
    c.shutdown.grace_period = Duration::from_secs(10);
    c.events.derived_metrics = false;
    c.self_monitoring.enabled = false;
    c
}

pub async fn start(config: Config) -> Running {
    start_bound(Bound::bind(config).await.expect("bind leakwatch")).await
}

/// A memory probe the test sets by hand.
#[derive(Default)]
pub struct FakeMemory(pub std::sync::atomic::AtomicU64);

impl leakwatch::ops::limiter::MemoryProbe for FakeMemory {
    fn used_bytes(&self) -> Option<u64> {
        Some(self.0.load(std::sync::atomic::Ordering::Relaxed))
    }
}

/// Starts leakwatch with its memory limiter reading `probe`.
pub async fn start_with_probe(config: Config, probe: Arc<FakeMemory>) -> Running {
    start_bound(
        Bound::bind(config)
            .await
            .expect("bind leakwatch")
            .with_memory_probe(probe),
    )
    .await
}

async fn start_bound(bound: Bound) -> Running {
    let addrs = bound.addresses();
    let shutdown = CancellationToken::new();
    let token = shutdown.clone();
    let task = tokio::spawn(async move { bound.run(token).await.expect("run") });
    Running {
        addrs,
        shutdown,
        task,
    }
}

/// A raw gRPC unary call (bytes in, bytes out).
pub async fn grpc_raw(
    endpoint: &str,
    path: &'static str,
    body: Bytes,
    compression: Option<tonic::codec::CompressionEncoding>,
    token: Option<&str>,
) -> Result<Bytes, Status> {
    let channel = tonic::transport::Endpoint::from_shared(endpoint.to_owned())
        .expect("endpoint")
        .connect()
        .await
        .map_err(|e| Status::unavailable(e.to_string()))?;
    let mut client = tonic::client::Grpc::new(channel)
        .max_decoding_message_size(64 << 20)
        .max_encoding_message_size(64 << 20);
    if let Some(c) = compression {
        client = client.send_compressed(c);
    }
    client
        .ready()
        .await
        .map_err(|e| Status::unavailable(e.to_string()))?;
    let mut request = tonic::Request::new(body);
    if let Some(t) = token {
        request.metadata_mut().insert(
            "authorization",
            format!("Bearer {t}").parse().expect("header"),
        );
    }
    client
        .unary(request, http::uri::PathAndQuery::from_static(path), Raw)
        .await
        .map(|r| r.into_inner())
}

pub use leakwatch::otlp::build::{double_point as number_point, kv};

/// A cumulative, monotonic counter since `start_ns` with one point.
pub fn counter(name: &str, start_ns: u64, t_ns: u64, value: f64) -> Metric {
    build::sum(
        name,
        "",
        true,
        vec![NumberDataPoint {
            start_time_unix_nano: start_ns,
            ..number_point(t_ns, value, vec![])
        }],
    )
}

pub fn resource(service: &str, instance: &str) -> Resource {
    build::resource(vec![
        kv("service.name", service),
        kv("service.instance.id", instance),
    ])
}

pub fn gauge_metric(name: &str, unit: &str, points: Vec<NumberDataPoint>) -> Metric {
    build::gauge(name, unit, "", points)
}

pub fn request(resource: Resource, metrics: Vec<Metric>) -> ExportMetricsServiceRequest {
    build::metrics_request(resource, build::scope("test", ""), metrics)
}

/// One metric of every point kind (int and double values, one NaN), 9
/// points in all, 5 of them in series the catalog tracks.
pub fn every_point_kind(t_ns: u64) -> ExportMetricsServiceRequest {
    let start = t_ns - 60_000_000_000;
    let int_point = NumberDataPoint {
        attributes: vec![kv("k", "int")],
        start_time_unix_nano: start,
        time_unix_nano: t_ns,
        value: Some(number_data_point::Value::AsInt(42)),
        ..Default::default()
    };
    let metrics = vec![
        gauge_metric(
            "process.memory.usage",
            "By",
            vec![
                number_point(t_ns, 1.5e8, vec![]),
                int_point.clone(),
                number_point(t_ns, f64::NAN, vec![kv("k", "nan")]),
            ],
        ),
        Metric {
            name: "requests".to_owned(),
            data: Some(metric::Data::Sum(Sum {
                data_points: vec![int_point.clone()],
                aggregation_temporality: AggregationTemporality::Cumulative as i32,
                is_monotonic: true,
            })),
            ..Default::default()
        },
        Metric {
            name: "delta.requests".to_owned(),
            data: Some(metric::Data::Sum(Sum {
                data_points: vec![number_point(t_ns, 3.0, vec![])],
                aggregation_temporality: AggregationTemporality::Delta as i32,
                is_monotonic: true,
            })),
            ..Default::default()
        },
        Metric {
            name: "v8js.memory.heap.used".to_owned(),
            unit: "By".to_owned(),
            data: Some(metric::Data::Sum(Sum {
                data_points: vec![number_point(
                    t_ns,
                    2.0e7,
                    vec![kv("v8js.heap.space.name", "old_space")],
                )],
                aggregation_temporality: AggregationTemporality::Cumulative as i32,
                is_monotonic: false,
            })),
            ..Default::default()
        },
        Metric {
            name: "http.server.request.duration".to_owned(),
            unit: "s".to_owned(),
            data: Some(metric::Data::Histogram(Histogram {
                data_points: vec![HistogramDataPoint {
                    start_time_unix_nano: start,
                    time_unix_nano: t_ns,
                    count: 10,
                    sum: Some(1.5),
                    bucket_counts: vec![4, 6],
                    explicit_bounds: vec![0.1],
                    ..Default::default()
                }],
                aggregation_temporality: AggregationTemporality::Cumulative as i32,
            })),
            ..Default::default()
        },
        Metric {
            name: "exp.latency".to_owned(),
            data: Some(metric::Data::ExponentialHistogram(ExponentialHistogram {
                data_points: vec![ExponentialHistogramDataPoint {
                    start_time_unix_nano: start,
                    time_unix_nano: t_ns,
                    count: 5,
                    sum: Some(2.0),
                    scale: 1,
                    positive: Some(Buckets {
                        offset: 0,
                        bucket_counts: vec![2, 3],
                    }),
                    ..Default::default()
                }],
                aggregation_temporality: AggregationTemporality::Delta as i32,
            })),
            ..Default::default()
        },
        Metric {
            name: "legacy.summary".to_owned(),
            data: Some(metric::Data::Summary(Summary {
                data_points: vec![SummaryDataPoint {
                    start_time_unix_nano: start,
                    time_unix_nano: t_ns,
                    count: 7,
                    sum: 3.5,
                    quantile_values: vec![ValueAtQuantile {
                        quantile: 0.5,
                        value: 0.4,
                    }],
                    ..Default::default()
                }],
            })),
            ..Default::default()
        },
    ];
    request(resource("checkout", "pod-1"), metrics)
}

/// Appends an unknown field (number 99, a string) to an encoded message: a
/// proxy that decodes and re-encodes with the schema would drop it.
pub fn with_unknown_field(mut encoded: Vec<u8>) -> Bytes {
    // tag = (99 << 3) | 2 as a varint, then length 3, then "lw!".
    let tag = (99u32 << 3) | 2;
    let mut v = tag;
    while v >= 0x80 {
        encoded.push((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    encoded.push(v as u8);
    encoded.push(3);
    encoded.extend_from_slice(b"lw!");
    Bytes::from(encoded)
}

/// Seconds since the epoch now, in ns (for realistic timestamps).
pub fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_nanos() as u64
}

/// A plain HTTP/1.1 client request with hyper (no extra crates).
pub async fn http_request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> (u16, http::HeaderMap, Bytes) {
    use http_body_util::{BodyExt, Full};
    let uri: http::Uri = url.parse().expect("url");
    let host = uri.authority().expect("authority").to_string();
    let stream = tokio::net::TcpStream::connect(&host)
        .await
        .expect("connect");
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .expect("handshake");
    tokio::spawn(conn);
    let mut req = http::Request::builder()
        .method(method)
        .uri(uri.path_and_query().map(|p| p.as_str()).unwrap_or("/"))
        .header("host", host);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let response = sender
        .send_request(req.body(Full::new(Bytes::from(body))).expect("request"))
        .await
        .expect("send");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (status, headers, body)
}
