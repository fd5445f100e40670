//! Configuration: typed settings, parsed and validated once at start.
//!
//! Sources are layered `defaults < file < environment < flags`. Each layer is
//! a YAML tree merged over the one below; the merged tree is checked for
//! unknown keys (all of them reported, each by its path), deserialized one
//! section at a time (so a bad value in one section does not hide one in
//! another), and then validated semantically. Every problem is reported at
//! once; the binary exits with code 64 (EX_USAGE) when there is any.
//!
//! Every field's doc comment is its reference documentation (README's config
//! reference is written from them).

pub mod notify;
pub mod url_template;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_yaml::{Mapping, Value};

use crate::auth::BearerToken;
use crate::catalog::RuleConfig;
use crate::detector::DetectorConfig;
use crate::secret::Secret;

/// The whole configuration.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// OTLP receivers.
    pub receivers: ReceiversConfig,
    /// Admin listener (health, self-metrics, API, web page).
    pub admin: AdminConfig,
    /// Where received data and leak events are forwarded.
    pub downstream: DownstreamConfig,
    /// Series tracking bounds.
    pub series: SeriesConfig,
    /// Leak detection.
    pub detector: DetectorConfig,
    /// Extra runtime-catalog rules.
    pub catalog: CatalogConfig,
    /// Leak events and derived metrics.
    pub events: EventsConfig,
    /// Logging.
    pub log: LogConfig,
    /// Shutdown.
    pub shutdown: ShutdownConfig,
    /// leakwatch watching its own memory.
    pub self_monitoring: SelfMonitoringConfig,
    /// Periodic checkpoint of the detector state, restored at start (off when unset).
    pub checkpoint: Option<CheckpointConfig>,
    /// Alertmanager, webhook and heap-dump notifications.
    pub notify: crate::config::notify::NotifyConfig,
}

/// Where and how often the detector state is checkpointed.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointConfig {
    /// The checkpoint file. It is written as `<path>.tmp`, fsync'd and renamed over `path`,
    /// so a crash leaves either the previous or the new checkpoint, never a mix.
    pub path: PathBuf,
    /// How often (wall clock) the checkpoint is written; it is also written once at a
    /// graceful shutdown, after the receivers stopped.
    #[serde(default = "default_checkpoint_interval", with = "humantime_serde")]
    pub interval: Duration,
}

fn default_checkpoint_interval() -> Duration {
    Duration::from_secs(60)
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReceiversConfig {
    /// OTLP/gRPC receiver.
    pub grpc: GrpcReceiverConfig,
    /// OTLP/HTTP receiver.
    pub http: HttpReceiverConfig,
    /// Bearer-token authentication for both receivers (off when unset).
    pub auth: Option<AuthConfig>,
    /// Largest decompressed request accepted, in bytes (both receivers;
    /// guards against compression bombs).
    pub max_decompressed_bytes: usize,
    /// Memory ceiling for leakwatch itself (off when unset).
    pub memory_limiter: Option<MemoryLimiterConfig>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemoryLimiterConfig {
    /// The ceiling on leakwatch's resident memory, in bytes: above it whole
    /// requests are refused with a retryable status.
    pub limit_bytes: u64,
    /// Above this percentage of the limit, new series are refused (reported
    /// in `partial_success`) while existing series keep being tracked.
    #[serde(default = "default_soft_percent")]
    pub soft_limit_percent: f64,
    /// How often resident memory is sampled.
    #[serde(default = "default_check_interval", with = "humantime_serde")]
    pub check_interval: Duration,
}

fn default_soft_percent() -> f64 {
    80.0
}

fn default_check_interval() -> Duration {
    Duration::from_millis(500)
}

impl Default for ReceiversConfig {
    fn default() -> Self {
        ReceiversConfig {
            grpc: GrpcReceiverConfig::default(),
            http: HttpReceiverConfig::default(),
            auth: None,
            max_decompressed_bytes: 64 * 1024 * 1024,
            memory_limiter: None,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GrpcReceiverConfig {
    /// Serve OTLP/gRPC.
    pub enabled: bool,
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Largest gRPC message accepted, in bytes (compressed or not); larger
    /// ones get RESOURCE_EXHAUSTED.
    pub max_message_bytes: usize,
    /// TLS for this listener (plaintext when unset).
    pub tls: Option<ServerTlsConfig>,
    /// Most requests (HTTP/2 streams) one connection may have open at once
    /// (SETTINGS_MAX_CONCURRENT_STREAMS); a client wanting more waits.
    pub max_concurrent_streams: u32,
    /// Longest time a new connection may take to send its first bytes, and one
    /// request to arrive and be answered; slower ones are cut off (slow clients
    /// must not hold connections and memory).
    #[serde(with = "humantime_serde")]
    pub read_timeout: Duration,
}

impl Default for GrpcReceiverConfig {
    fn default() -> Self {
        GrpcReceiverConfig {
            enabled: true,
            listen: SocketAddr::from(([127, 0, 0, 1], 4317)),
            max_message_bytes: 4 * 1024 * 1024,
            tls: None,
            max_concurrent_streams: DEFAULT_MAX_CONCURRENT_STREAMS,
            read_timeout: DEFAULT_READ_TIMEOUT,
        }
    }
}

/// Streams per connection by default: the least RFC 9113 recommends a peer
/// allows; an SDK uses one, a collector as many as its exporter's consumers.
pub const DEFAULT_MAX_CONCURRENT_STREAMS: u32 = 100;

/// Header and body read timeouts by default: the OpenTelemetry Collector's
/// `read_header_timeout` (confighttp: 1 minute).
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpReceiverConfig {
    /// Serve OTLP/HTTP (protobuf and JSON).
    pub enabled: bool,
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Largest request body accepted, in bytes, as sent (possibly
    /// compressed); larger ones get 413.
    pub max_body_bytes: usize,
    /// TLS for this listener (plaintext when unset).
    pub tls: Option<ServerTlsConfig>,
    /// Longest time a client may take to send a request's headers (and the
    /// first bytes of a new connection); an idle HTTP/1.1 keep-alive connection
    /// is closed after it too.
    #[serde(with = "humantime_serde")]
    pub read_header_timeout: Duration,
    /// Longest time a client may take to send a request's body, once its
    /// headers arrived; slower ones get 408.
    #[serde(with = "humantime_serde")]
    pub read_body_timeout: Duration,
}

impl Default for HttpReceiverConfig {
    fn default() -> Self {
        HttpReceiverConfig {
            enabled: true,
            listen: SocketAddr::from(([127, 0, 0, 1], 4318)),
            max_body_bytes: 20 * 1024 * 1024,
            tls: None,
            read_header_timeout: DEFAULT_READ_TIMEOUT,
            read_body_timeout: DEFAULT_READ_TIMEOUT,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerTlsConfig {
    /// PEM certificate chain.
    pub cert_file: PathBuf,
    /// PEM private key.
    pub key_file: PathBuf,
    /// PEM CA bundle: when set, clients must present a certificate it signed (mTLS).
    #[serde(default)]
    pub client_ca_file: Option<PathBuf>,
}

/// Bearer-token authentication. Set exactly one of the two keys; an empty or
/// whitespace-only token is a configuration error (it would let everyone in).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// The bearer token clients must send (`Authorization: Bearer …`);
    /// surrounding whitespace trimmed. Printed as `<redacted>`.
    #[serde(default)]
    pub bearer_token: Option<Secret>,
    /// A file holding the token (surrounding whitespace trimmed); read at start.
    #[serde(default)]
    pub bearer_token_file: Option<PathBuf>,
}

impl AuthConfig {
    /// Reads the token this section names (see [`BearerToken::load`]); `key`
    /// is where the section sits, e.g. `receivers.auth`.
    pub fn bearer_token(&self, key: &str) -> Result<BearerToken, String> {
        BearerToken::load(
            self.bearer_token.as_ref(),
            self.bearer_token_file.as_deref(),
            key,
        )
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Serve the admin listener.
    pub enabled: bool,
    /// Address of `/healthz`, `/readyz`, `/metrics`, `/api/v1/*` and the web page.
    /// The API and the page show the resource attributes of every tracked process:
    /// keep it on loopback, or set `auth` (and `tls`) before binding it wider.
    pub listen: SocketAddr,
    /// Bearer-token authentication for `/metrics`, `/api/v1/*` (off when unset);
    /// `/healthz`, `/readyz` and the page's static HTML stay open.
    pub auth: Option<AuthConfig>,
    /// TLS for this listener (plaintext when unset).
    pub tls: Option<ServerTlsConfig>,
    /// Longest time a client may take to send a request's headers (and the first
    /// bytes of a new connection); idle keep-alive connections are closed after it.
    #[serde(with = "humantime_serde")]
    pub read_header_timeout: Duration,
    /// Longest time a client may take to send a request's body.
    #[serde(with = "humantime_serde")]
    pub read_body_timeout: Duration,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            enabled: true,
            listen: SocketAddr::from(([127, 0, 0, 1], 9464)),
            auth: None,
            tls: None,
            read_header_timeout: DEFAULT_READ_TIMEOUT,
            read_body_timeout: DEFAULT_READ_TIMEOUT,
        }
    }
}

/// Compression of forwarded requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    #[default]
    None,
    Gzip,
    Zstd,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DownstreamConfig {
    /// OTLP/gRPC endpoint of the next collector, e.g. `http://127.0.0.1:14317`
    /// (`https://` for TLS). Unset: data is accepted, tracked and counted, and
    /// nothing is forwarded.
    pub endpoint: Option<String>,
    /// Compression of forwarded requests: none, gzip or zstd.
    pub compression: Compression,
    /// Deadline of one export attempt.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Concurrent senders.
    pub senders: usize,
    /// Merging of queued requests into one export.
    pub batch: BatchConfig,
    /// The in-memory queue.
    pub queue: QueueConfig,
    /// Retries of failed exports.
    pub retry: RetryConfig,
    /// TLS to the downstream: required with an `https://` endpoint, refused with
    /// an `http://` one (it would not be used).
    pub tls: Option<ClientTlsConfig>,
}

impl Default for DownstreamConfig {
    fn default() -> Self {
        DownstreamConfig {
            endpoint: None,
            compression: Compression::None,
            timeout: Duration::from_secs(10),
            senders: 10,
            batch: BatchConfig::default(),
            queue: QueueConfig::default(),
            retry: RetryConfig::default(),
            tls: None,
        }
    }
}

/// How a sender merges queued requests into one export. A sender that takes a request from
/// the queue also takes the requests of the same signal queued right behind it, up to these
/// bounds, and sends them as one `Export*ServiceRequest` (the concatenation of their encodings:
/// the request is one `repeated` field, so nothing is decoded or re-encoded). When the queue
/// holds no more, it waits up to `linger` for more to arrive (one sender gathers at a time), like
/// a collector's batch processor with a very short timeout: below saturation this turns a
/// steady trickle of small SDK requests into a few exports. The client is answered when its
/// request is queued, so the linger delays delivery downstream, never the client.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BatchConfig {
    /// Most bytes of one merged export. A single request larger than this is sent alone.
    /// Keep it well under the downstream's receive limit (4 MiB by default in collectors).
    pub max_bytes: usize,
    /// Most requests merged into one export (1: no merging).
    pub max_requests: usize,
    /// Longest wait for more requests once the queue is empty (0: send what is there at once).
    #[serde(with = "humantime_serde")]
    pub linger: Duration,
}

/// The largest `downstream.batch.linger` accepted.
pub const MAX_BATCH_LINGER: Duration = Duration::from_secs(1);

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig {
            max_bytes: 1024 * 1024,
            max_requests: 512,
            linger: Duration::from_millis(5),
        }
    }
}

/// The largest `downstream.batch.max_bytes` accepted: 4 MiB, the default receive limit of
/// OTLP/gRPC collectors (grpc-go, tonic); a merged export above it would be refused.
pub const MAX_BATCH_BYTES: usize = 4 * 1024 * 1024;

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueueConfig {
    /// Most requests queued or in flight.
    pub max_requests: usize,
    /// Most bytes queued or in flight.
    pub max_bytes: usize,
    /// Write-ahead log on disk (off when unset): a request is written (and, with
    /// `sync: always`, fsync'd) before the client is acknowledged, and what was not
    /// delivered is sent again after a restart or a crash.
    pub persistent: Option<PersistentQueueConfig>,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            max_requests: 10_000,
            max_bytes: 256 * 1024 * 1024,
            persistent: None,
        }
    }
}

/// The on-disk write-ahead queue.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PersistentQueueConfig {
    /// Directory of the segment files (created if missing; one leakwatch per directory).
    pub dir: PathBuf,
    /// Most bytes the segment files may hold; beyond it requests are refused like a full
    /// queue (UNAVAILABLE / 503). A segment is deleted only once every request in it is
    /// done, so allow about twice `queue.max_bytes`.
    #[serde(default = "default_persistent_max_bytes")]
    pub max_bytes: u64,
    /// `always`: fsync before the client is acknowledged (survives a machine crash).
    /// `batch`: written before the acknowledgement, fsync'd every 100 ms (survives a
    /// crash of leakwatch; a machine crash may lose the last 100 ms).
    #[serde(default)]
    pub sync: SyncMode,
}

fn default_persistent_max_bytes() -> u64 {
    1024 * 1024 * 1024
}

/// When the write-ahead queue is fsync'd.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SyncMode {
    /// Before every acknowledgement (concurrent requests share one fsync).
    #[default]
    Always,
    /// Every 100 ms, in the background.
    Batch,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryConfig {
    /// Retry retryable failures at all.
    pub enabled: bool,
    /// First backoff.
    #[serde(with = "humantime_serde")]
    pub initial_interval: Duration,
    /// Longest backoff (a downstream's RetryInfo may ask for longer).
    #[serde(with = "humantime_serde")]
    pub max_interval: Duration,
    /// Give up on a request after this long.
    #[serde(with = "humantime_serde")]
    pub max_elapsed_time: Duration,
    /// Backoff growth factor.
    pub multiplier: f64,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            enabled: true,
            initial_interval: Duration::from_secs(1),
            max_interval: Duration::from_secs(30),
            max_elapsed_time: Duration::from_secs(300),
            multiplier: 1.5,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientTlsConfig {
    /// PEM CA bundle that signed the downstream's certificate. Required:
    /// leakwatch has no built-in trust roots.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate (mTLS).
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    /// PEM client key (mTLS).
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// Server name to verify, when it differs from the endpoint's host.
    #[serde(default)]
    pub server_name: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SeriesConfig {
    /// Most series tracked; beyond it points of new series are refused
    /// (reported in `partial_success`) and existing series keep working.
    pub max_series: usize,
    /// A series whose newest point is older than this, in event time, is evicted.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// Largest step one request may move the event-time clock forward (a point
    /// stamped far in the future cannot evict everything else).
    #[serde(with = "humantime_serde")]
    pub max_forward_jump: Duration,
    /// How often (wall clock) idle series are swept.
    #[serde(with = "humantime_serde")]
    pub sweep_interval: Duration,
}

impl Default for SeriesConfig {
    fn default() -> Self {
        SeriesConfig {
            max_series: 1_000_000,
            idle_timeout: Duration::from_secs(3600),
            max_forward_jump: Duration::from_secs(3600),
            sweep_interval: Duration::from_secs(30),
        }
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CatalogConfig {
    /// Extra rules (metric name + attribute match → role); they take
    /// precedence over the built-in catalog.
    pub rules: Vec<RuleConfig>,
    /// Memory limits per resource attribute match (`match: {service.name: checkout}`,
    /// `limit_bytes: 536870912`), used for the forecast when the process reports none.
    pub limits: Vec<crate::catalog::LimitConfig>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EventsConfig {
    /// Send leak events downstream as OTLP log records.
    pub logs: bool,
    /// Send derived metrics (`leakwatch.memory.growth_rate`, …) downstream.
    pub derived_metrics: bool,
    /// How often (wall clock) derived metrics are sent.
    #[serde(with = "humantime_serde")]
    pub derived_metrics_interval: Duration,
}

impl Default for EventsConfig {
    fn default() -> Self {
        EventsConfig {
            logs: true,
            derived_metrics: true,
            derived_metrics_interval: Duration::from_secs(60),
        }
    }
}

/// Log line format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// text or json.
    pub format: LogFormat,
    /// A `tracing` filter, e.g. `info` or `leakwatch=debug`.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: LogFormat::Text,
            level: "info".to_owned(),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ShutdownConfig {
    /// How long to drain the export queue after receivers stop.
    #[serde(with = "humantime_serde")]
    pub grace_period: Duration,
}

impl Default for ShutdownConfig {
    fn default() -> Self {
        ShutdownConfig {
            grace_period: Duration::from_secs(30),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SelfMonitoringConfig {
    /// Feed leakwatch's own resident memory (as `process.memory.usage` of
    /// `service.name=leakwatch`) to its own detector.
    pub enabled: bool,
    /// How often (wall clock) it is sampled.
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// Samples start this long after leakwatch starts: filling its tables,
    /// buffers and allocator arenas is growth, not a leak.
    #[serde(with = "humantime_serde")]
    pub warmup: Duration,
}

impl Default for SelfMonitoringConfig {
    fn default() -> Self {
        SelfMonitoringConfig {
            enabled: true,
            interval: Duration::from_secs(15),
            warmup: Duration::from_secs(300),
        }
    }
}

/// Read access to the environment, behind a trait so tests never call `set_var`.
pub trait Env {
    fn var(&self, key: &str) -> Option<String>;
}

/// The process environment.
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, key: &str) -> Option<String> {
        std::env::var(key).ok()
    }
}

impl Env for BTreeMap<String, String> {
    fn var(&self, key: &str) -> Option<String> {
        self.get(key).cloned()
    }
}

/// The settings that have a flag and an environment variable, with the path
/// of the key they set in the file.
pub const OVERRIDES: &[(&str, &str, &str)] = &[
    (
        "grpc-listen",
        "LEAKWATCH_GRPC_LISTEN",
        "receivers.grpc.listen",
    ),
    (
        "http-listen",
        "LEAKWATCH_HTTP_LISTEN",
        "receivers.http.listen",
    ),
    ("admin-listen", "LEAKWATCH_ADMIN_LISTEN", "admin.listen"),
    ("downstream", "LEAKWATCH_DOWNSTREAM", "downstream.endpoint"),
    (
        "batch-max-bytes",
        "LEAKWATCH_BATCH_MAX_BYTES",
        "downstream.batch.max_bytes",
    ),
    ("log-format", "LEAKWATCH_LOG_FORMAT", "log.format"),
    ("log-level", "LEAKWATCH_LOG_LEVEL", "log.level"),
    ("max-series", "LEAKWATCH_MAX_SERIES", "series.max_series"),
];

/// Every problem found in the configuration.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration:\n  - {}", .0.join("\n  - "))]
pub struct ConfigErrors(pub Vec<String>);

impl Config {
    /// Loads and validates the configuration from its layers. `flags` holds
    /// `(flag name, value)` pairs for the flags given on the command line.
    pub fn load(
        file: Option<&Path>,
        env: &dyn Env,
        flags: &[(&str, String)],
    ) -> Result<Config, ConfigErrors> {
        let mut errors = Vec::new();
        let mut tree = to_tree(&Config::default());
        let schema = tree.clone();
        if let Some(path) = file {
            match std::fs::read_to_string(path) {
                Ok(text) => match serde_yaml::from_str::<Value>(&text) {
                    Ok(Value::Null) => {}
                    Ok(value @ Value::Mapping(_)) => merge(&mut tree, value),
                    Ok(_) => errors.push(format!(
                        "{}: the top level must be a mapping",
                        path.display()
                    )),
                    Err(e) => errors.push(format!("{}: {e}", path.display())),
                },
                Err(e) => errors.push(format!("{}: {e}", path.display())),
            }
        }
        for (_, var, key) in OVERRIDES {
            if let Some(value) = env.var(var) {
                set_path(&mut tree, key, scalar(&value));
            }
        }
        for (flag, value) in flags {
            match OVERRIDES.iter().find(|(f, _, _)| f == flag) {
                Some((_, _, key)) => set_path(&mut tree, key, scalar(value)),
                None => errors.push(format!("--{flag}: not a known setting")),
            }
        }
        unknown_keys(&schema, &tree, "", &mut errors);
        if !errors.is_empty() {
            return Err(ConfigErrors(errors));
        }
        let config = from_tree(&tree, &mut errors);
        if let Some(config) = &config {
            config.validate(&mut errors);
        }
        match config {
            Some(config) if errors.is_empty() => Ok(config),
            _ => Err(ConfigErrors(errors)),
        }
    }

    fn validate(&self, errors: &mut Vec<String>) {
        let mut check = |ok: bool, msg: &str| {
            if !ok {
                errors.push(msg.to_owned());
            }
        };
        check(
            self.receivers.grpc.max_message_bytes > 0,
            "receivers.grpc.max_message_bytes: must be > 0",
        );
        check(
            self.receivers.http.max_body_bytes > 0,
            "receivers.http.max_body_bytes: must be > 0",
        );
        check(
            self.receivers.max_decompressed_bytes > 0,
            "receivers.max_decompressed_bytes: must be > 0",
        );
        check(
            self.downstream.senders > 0,
            "downstream.senders: must be > 0",
        );
        check(
            self.downstream.batch.max_bytes > 0 && self.downstream.batch.max_bytes <= MAX_BATCH_BYTES,
            "downstream.batch.max_bytes: must be in 1..=4194304 (4 MiB, collectors' default receive limit)",
        );
        check(
            self.downstream.batch.max_requests > 0,
            "downstream.batch.max_requests: must be > 0 (1 turns merging off)",
        );
        check(
            self.downstream.batch.linger <= MAX_BATCH_LINGER,
            "downstream.batch.linger: must be at most 1s (it delays delivery downstream)",
        );
        check(
            self.downstream.queue.max_requests > 0,
            "downstream.queue.max_requests: must be > 0",
        );
        check(
            self.downstream.queue.max_bytes > 0,
            "downstream.queue.max_bytes: must be > 0",
        );
        check(
            !self.downstream.timeout.is_zero(),
            "downstream.timeout: must be > 0",
        );
        check(
            self.downstream.retry.multiplier >= 1.0,
            "downstream.retry.multiplier: must be >= 1",
        );
        check(self.series.max_series > 0, "series.max_series: must be > 0");
        check(
            !self.series.idle_timeout.is_zero(),
            "series.idle_timeout: must be > 0",
        );
        check(
            !self.series.sweep_interval.is_zero(),
            "series.sweep_interval: must be > 0",
        );
        check(
            !self.self_monitoring.interval.is_zero(),
            "self_monitoring.interval: must be > 0",
        );
        check(
            !self.events.derived_metrics_interval.is_zero(),
            "events.derived_metrics_interval: must be > 0",
        );
        if let Some(endpoint) = &self.downstream.endpoint {
            let ok = endpoint.parse::<http::Uri>().ok().is_some_and(|u| {
                matches!(u.scheme_str(), Some("http" | "https")) && u.host().is_some()
            });
            check(
                ok,
                &format!("downstream.endpoint: {endpoint:?} is not an http:// or https:// URL"),
            );
        }
        if let Some(m) = &self.receivers.memory_limiter {
            check(
                m.limit_bytes > 0,
                "receivers.memory_limiter.limit_bytes: must be > 0",
            );
            check(
                m.soft_limit_percent > 0.0 && m.soft_limit_percent <= 100.0,
                "receivers.memory_limiter.soft_limit_percent: must be in (0, 100]",
            );
            check(
                !m.check_interval.is_zero(),
                "receivers.memory_limiter.check_interval: must be > 0",
            );
        }
        if let Some(p) = &self.downstream.queue.persistent {
            // Nothing is ever queued without a downstream: the directory would stay empty
            // while the operator believes data is kept safe.
            check(
                self.downstream.endpoint.is_some(),
                "downstream.queue.persistent: set but downstream.endpoint is not: nothing is forwarded, so nothing would be queued on disk (set an endpoint or remove the persistent queue)",
            );
            check(
                !p.dir.as_os_str().is_empty(),
                "downstream.queue.persistent.dir: must not be empty",
            );
            check(
                p.max_bytes >= 64 * 1024,
                "downstream.queue.persistent.max_bytes: must be at least 65536",
            );
        }
        if let Some(c) = &self.checkpoint {
            check(
                !c.path.as_os_str().is_empty(),
                "checkpoint.path: must not be empty",
            );
            check(!c.interval.is_zero(), "checkpoint.interval: must be > 0");
        }
        for (key, auth) in [
            ("receivers.auth", &self.receivers.auth),
            ("admin.auth", &self.admin.auth),
        ] {
            if let Some(Err(e)) = auth.as_ref().map(|a| a.bearer_token(key)) {
                errors.push(e);
            }
        }
        self.validate_downstream_tls(errors);
        for (key, d) in [
            (
                "receivers.grpc.read_timeout",
                self.receivers.grpc.read_timeout,
            ),
            (
                "receivers.http.read_header_timeout",
                self.receivers.http.read_header_timeout,
            ),
            (
                "receivers.http.read_body_timeout",
                self.receivers.http.read_body_timeout,
            ),
            ("admin.read_header_timeout", self.admin.read_header_timeout),
            ("admin.read_body_timeout", self.admin.read_body_timeout),
        ] {
            if d.is_zero() {
                errors.push(format!(
                    "{key}: must be > 0 (a slow client would hold its connection forever)"
                ));
            }
        }
        if self.receivers.grpc.max_concurrent_streams == 0 {
            errors.push("receivers.grpc.max_concurrent_streams: must be > 0".to_owned());
        }
        if self
            .log
            .level
            .parse::<tracing_subscriber::EnvFilter>()
            .is_err()
        {
            errors.push(format!(
                "log.level: {:?} is not a valid filter",
                self.log.level
            ));
        }
        self.notify.validate(errors);
        if let Err(detector_errors) = self.detector.validate() {
            errors.extend(
                detector_errors
                    .into_iter()
                    .map(|e| format!("detector: {e}")),
            );
        }
    }
}

impl Config {
    /// TLS to the downstream must match its endpoint's scheme: `http://` with
    /// `tls` would send plaintext, `https://` without it fails every export.
    fn validate_downstream_tls(&self, errors: &mut Vec<String>) {
        let d = &self.downstream;
        let scheme = d
            .endpoint
            .as_deref()
            .and_then(|e| e.parse::<http::Uri>().ok())
            .and_then(|u| u.scheme_str().map(str::to_ascii_lowercase));
        match (scheme.as_deref(), &d.tls) {
            (Some("http"), Some(_)) => errors.push(
                "downstream.tls: set, but downstream.endpoint is http:// and would be sent in plaintext: use an https:// endpoint (or remove downstream.tls)".to_owned(),
            ),
            (Some("https"), None) => errors.push(
                "downstream.endpoint: https:// needs downstream.tls with at least ca_file (the CA that signed the downstream's certificate)".to_owned(),
            ),
            (None, Some(_)) => errors.push(
                "downstream.tls: set, but downstream.endpoint is not: nothing is forwarded (set an https:// endpoint or remove downstream.tls)".to_owned(),
            ),
            _ => {}
        }
        if let Some(tls) = &d.tls {
            if tls.ca_file.is_none() {
                errors.push(
                    "downstream.tls.ca_file: required: leakwatch has no built-in trust roots, so no downstream certificate could be verified".to_owned(),
                );
            }
            if tls.cert_file.is_some() != tls.key_file.is_some() {
                errors.push(
                    "downstream.tls: set both cert_file and key_file (mTLS) or neither".to_owned(),
                );
            }
        }
    }
}

fn to_tree<T: Serialize>(value: &T) -> Value {
    serde_yaml::to_value(value).unwrap_or(Value::Null)
}

/// Parses an environment or flag value as a YAML scalar, so `100` is a number
/// and `true` a boolean, as they would be in the file.
fn scalar(text: &str) -> Value {
    match serde_yaml::from_str::<Value>(text) {
        Ok(v @ (Value::Bool(_) | Value::Number(_) | Value::String(_))) => v,
        _ => Value::String(text.to_owned()),
    }
}

fn merge(base: &mut Value, over: Value) {
    match (base, over) {
        (Value::Mapping(b), Value::Mapping(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(slot) => merge(slot, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (slot, v) => *slot = v,
    }
}

fn set_path(tree: &mut Value, path: &str, value: Value) {
    let mut node = tree;
    for part in path.split('.') {
        if !matches!(node, Value::Mapping(_)) {
            *node = Value::Mapping(Mapping::new());
        }
        let Value::Mapping(map) = node else { return };
        node = map
            .entry(Value::String(part.to_owned()))
            .or_insert(Value::Null);
    }
    *node = value;
}

/// Reports keys of `tree` that the defaults' tree (`schema`) does not have.
/// Sections that are `null` by default (optional blocks such as `tls`) and
/// free-form ones (lists, maps) are checked by their own deserialization.
fn unknown_keys(schema: &Value, tree: &Value, prefix: &str, errors: &mut Vec<String>) {
    let (Value::Mapping(s), Value::Mapping(t)) = (schema, tree) else {
        return;
    };
    for (k, v) in t {
        let name = match k {
            Value::String(s) => s.clone(),
            other => format!("{other:?}"),
        };
        let path = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}.{name}")
        };
        if crate::config::notify::FREE_FORM.contains(&path.as_str()) {
            continue;
        }
        match s.get(k) {
            None => errors.push(format!("{path}: unknown key")),
            Some(sub) => unknown_keys(sub, v, &path, errors),
        }
    }
}

/// Deserializes section by section so each bad section is reported.
fn from_tree(tree: &Value, errors: &mut Vec<String>) -> Option<Config> {
    let Value::Mapping(map) = tree else {
        errors.push("the configuration must be a mapping".to_owned());
        return None;
    };
    let before = errors.len();
    let mut config = Config::default();
    macro_rules! section {
        ($field:ident) => {
            if let Some(v) = map.get(stringify!($field)) {
                match serde_yaml::from_value(v.clone()) {
                    Ok(parsed) => config.$field = parsed,
                    Err(e) => errors.push(format!("{}: {e}", stringify!($field))),
                }
            }
        };
    }
    section!(receivers);
    section!(admin);
    section!(downstream);
    section!(series);
    section!(detector);
    section!(catalog);
    section!(events);
    section!(log);
    section!(shutdown);
    section!(self_monitoring);
    section!(checkpoint);
    section!(notify);
    (errors.len() == before).then_some(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn file(text: &str) -> tempfile_like::TempFile {
        tempfile_like::TempFile::new(text)
    }

    /// A tiny temp-file helper (std only).
    mod tempfile_like {
        use std::path::PathBuf;
        pub struct TempFile(pub PathBuf);
        impl TempFile {
            pub fn new(text: &str) -> Self {
                static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
                let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let path = std::env::temp_dir()
                    .join(format!("leakwatch-cfg-{}-{n}.yaml", std::process::id()));
                std::fs::write(&path, text).expect("write temp config");
                TempFile(path)
            }
        }
        impl Drop for TempFile {
            fn drop(&mut self) {
                let _ = std::fs::remove_file(&self.0);
            }
        }
    }

    #[test]
    fn defaults_are_valid() {
        let c = Config::load(None, &env(&[]), &[]).expect("defaults");
        assert_eq!(c.receivers.grpc.listen.to_string(), "127.0.0.1:4317");
        assert_eq!(c.receivers.http.listen.to_string(), "127.0.0.1:4318");
        assert_eq!(c.admin.listen.to_string(), "127.0.0.1:9464");
        assert!(c.downstream.endpoint.is_none());
    }

    #[test]
    fn precedence_is_defaults_file_env_flags() {
        let f = file("receivers:\n  grpc:\n    listen: 127.0.0.1:1111\n  http:\n    listen: 127.0.0.1:2222\nadmin:\n  listen: 127.0.0.1:3333\n");
        let e = env(&[
            ("LEAKWATCH_HTTP_LISTEN", "127.0.0.1:4444"),
            ("LEAKWATCH_ADMIN_LISTEN", "127.0.0.1:5555"),
        ]);
        let flags = [("admin-listen", "127.0.0.1:6666".to_owned())];
        let c = Config::load(Some(&f.0), &e, &flags).expect("valid");
        assert_eq!(c.receivers.grpc.listen.port(), 1111); // file
        assert_eq!(c.receivers.http.listen.port(), 4444); // env over file
        assert_eq!(c.admin.listen.port(), 6666); // flag over env
    }

    #[test]
    fn numbers_from_env_are_numbers() {
        let c = Config::load(None, &env(&[("LEAKWATCH_MAX_SERIES", "42")]), &[]).expect("valid");
        assert_eq!(c.series.max_series, 42);
    }

    #[test]
    fn reports_every_unknown_key_at_once() {
        let f = file("receivers:\n  grpcc: {}\n  http:\n    lisen: x\nbogus: 1\n");
        let err = Config::load(Some(&f.0), &env(&[]), &[]).expect_err("unknown keys");
        let text = err.to_string();
        assert!(text.contains("receivers.grpcc: unknown key"), "{text}");
        assert!(text.contains("receivers.http.lisen: unknown key"), "{text}");
        assert!(text.contains("bogus: unknown key"), "{text}");
    }

    #[test]
    fn reports_bad_values_in_several_sections() {
        let f = file("admin:\n  listen: not-an-address\nseries:\n  max_series: many\ndownstream:\n  endpoint: ftp://x\n");
        let err = Config::load(Some(&f.0), &env(&[]), &[]).expect_err("bad values");
        let text = err.to_string();
        assert!(text.contains("admin:"), "{text}");
        assert!(text.contains("series:"), "{text}");
    }

    #[test]
    fn semantic_errors_are_named() {
        let e = env(&[
            ("LEAKWATCH_DOWNSTREAM", "ftp://collector:4317"),
            ("LEAKWATCH_MAX_SERIES", "0"),
        ]);
        let err = Config::load(None, &e, &[]).expect_err("bad values");
        assert_eq!(err.0.len(), 2, "{err}");
        assert!(err.0.iter().any(|m| m.starts_with("downstream.endpoint")));
        assert!(err.0.iter().any(|m| m.starts_with("series.max_series")));
    }

    #[test]
    fn durations_are_human() {
        let f = file("shutdown:\n  grace_period: 2s\ndownstream:\n  endpoint: http://127.0.0.1:14317\n  retry:\n    initial_interval: 250ms\n");
        let c = Config::load(Some(&f.0), &env(&[]), &[]).expect("valid");
        assert_eq!(c.shutdown.grace_period, Duration::from_secs(2));
        assert_eq!(
            c.downstream.retry.initial_interval,
            Duration::from_millis(250)
        );
    }

    #[test]
    fn persistent_queue_and_checkpoint_are_off_by_default_and_parse() {
        let c = Config::load(None, &env(&[]), &[]).expect("defaults");
        assert!(c.downstream.queue.persistent.is_none());
        assert!(c.checkpoint.is_none());
        let f = file("downstream:\n  endpoint: http://127.0.0.1:14317\n  queue:\n    persistent:\n      dir: /var/lib/leakwatch/queue\n      sync: batch\ncheckpoint:\n  path: /var/lib/leakwatch/state.ckpt\n");
        let c = Config::load(Some(&f.0), &env(&[]), &[]).expect("valid");
        let p = c.downstream.queue.persistent.expect("persistent");
        assert_eq!(p.dir, PathBuf::from("/var/lib/leakwatch/queue"));
        assert_eq!((p.max_bytes, p.sync), (1 << 30, SyncMode::Batch));
        let k = c.checkpoint.expect("checkpoint");
        assert_eq!(k.interval, Duration::from_secs(60));
    }

    #[test]
    fn persistent_queue_and_checkpoint_errors_are_named() {
        let f =
            file("downstream:\n  queue:\n    persistent:\n      dir: /q\n      fsync: always\n");
        let err = Config::load(Some(&f.0), &env(&[]), &[]).expect_err("unknown key");
        assert!(err.to_string().contains("fsync"), "{err}");
        let f = file("downstream:\n  queue:\n    persistent:\n      dir: /q\n      max_bytes: 10\ncheckpoint:\n  path: /c\n  interval: 0s\n");
        let err = Config::load(Some(&f.0), &env(&[]), &[]).expect_err("bad values");
        assert!(
            err.0
                .iter()
                .any(|m| m.starts_with("downstream.queue.persistent.max_bytes")),
            "{err}"
        );
        assert!(
            err.0.iter().any(|m| m.starts_with("checkpoint.interval")),
            "{err}"
        );
        let f = file("checkpoint:\n  interval: 5s\n");
        let err = Config::load(Some(&f.0), &env(&[]), &[]).expect_err("path required");
        assert!(err.to_string().contains("checkpoint"), "{err}");
    }

    #[test]
    fn a_persistent_queue_without_a_downstream_is_an_error() {
        let f = file("downstream:\n  queue:\n    persistent:\n      dir: /q\n");
        let err = Config::load(Some(&f.0), &env(&[]), &[]).expect_err("no endpoint");
        assert!(
            err.0
                .iter()
                .any(|m| m.starts_with("downstream.queue.persistent: set but downstream.endpoint")),
            "{err}"
        );
        // The endpoint may come from any layer.
        let c = Config::load(
            Some(&f.0),
            &env(&[("LEAKWATCH_DOWNSTREAM", "http://127.0.0.1:14317")]),
            &[],
        )
        .expect("endpoint from the environment");
        assert!(c.downstream.queue.persistent.is_some());
    }

    #[test]
    fn batch_bounds_default_layer_and_validate() {
        let c = Config::load(None, &env(&[]), &[]).expect("defaults");
        assert_eq!(c.downstream.batch.max_bytes, 1024 * 1024);
        assert_eq!(c.downstream.batch.max_requests, 512);
        assert_eq!(c.downstream.batch.linger, Duration::from_millis(5));
        let f = file(
            "downstream:\n  batch:\n    max_bytes: 65536\n    max_requests: 8\n    linger: 0s\n",
        );
        let c = Config::load(Some(&f.0), &env(&[]), &[]).expect("file");
        assert_eq!(
            (
                c.downstream.batch.max_bytes,
                c.downstream.batch.max_requests
            ),
            (65536, 8)
        );
        let e = env(&[("LEAKWATCH_BATCH_MAX_BYTES", "131072")]);
        let c = Config::load(Some(&f.0), &e, &[]).expect("env over file");
        assert_eq!(c.downstream.batch.max_bytes, 131072);
        let c = Config::load(Some(&f.0), &e, &[("batch-max-bytes", "262144".to_owned())])
            .expect("flag over env");
        assert_eq!(c.downstream.batch.max_bytes, 262144);
        assert_eq!(c.downstream.batch.max_requests, 8, "file value kept");
        assert_eq!(c.downstream.batch.linger, Duration::ZERO);
        let f = file(
            "downstream:\n  batch:\n    max_bytes: 8388608\n    max_requests: 0\n    linger: 2s\n",
        );
        let err = Config::load(Some(&f.0), &env(&[]), &[]).expect_err("bad bounds");
        assert!(
            err.0
                .iter()
                .any(|m| m.starts_with("downstream.batch.max_bytes"))
                && err
                    .0
                    .iter()
                    .any(|m| m.starts_with("downstream.batch.max_requests"))
                && err
                    .0
                    .iter()
                    .any(|m| m.starts_with("downstream.batch.linger")),
            "{err}"
        );
    }
    #[test]
    fn empty_tokens_are_errors_named_by_key() {
        let f = file("receivers:\n  auth:\n    bearer_token: \"\"\nadmin:\n  auth:\n    bearer_token: \"   \"\n");
        let err = Config::load(Some(&f.0), &env(&[]), &[]).expect_err("empty tokens");
        assert!(
            err.0
                .iter()
                .any(|m| m.starts_with("receivers.auth.bearer_token: empty")),
            "{err}"
        );
        assert!(
            err.0
                .iter()
                .any(|m| m.starts_with("admin.auth.bearer_token: empty")),
            "{err}"
        );
        let token = file("  \n");
        let f = file(&format!(
            "receivers:\n  auth:\n    bearer_token_file: {}\n",
            token.0.display()
        ));
        let err = Config::load(Some(&f.0), &env(&[]), &[]).expect_err("empty token file");
        assert!(
            err.0
                .iter()
                .any(|m| m.starts_with("receivers.auth.bearer_token_file:") && m.contains("empty")),
            "{err}"
        );
        let f = file("receivers:\n  auth:\n    bearer_token: s3cret\n");
        let c = Config::load(Some(&f.0), &env(&[]), &[]).expect("a real token");
        let printed = serde_yaml::to_string(&c).expect("yaml") + &format!("{c:?}");
        assert!(!printed.contains("s3cret"), "{printed}");
    }

    #[test]
    fn downstream_tls_must_match_the_scheme() {
        let f =
            file("downstream:\n  endpoint: http://127.0.0.1:14317\n  tls:\n    ca_file: /ca.pem\n");
        let err = Config::load(Some(&f.0), &env(&[]), &[]).expect_err("plaintext with tls");
        assert!(
            err.0
                .iter()
                .any(|m| m.starts_with("downstream.tls:") && m.contains("https://")),
            "{err}"
        );
        let f = file("downstream:\n  endpoint: https://collector:14317\n");
        let err = Config::load(Some(&f.0), &env(&[]), &[]).expect_err("https without tls");
        assert!(
            err.0
                .iter()
                .any(|m| m.starts_with("downstream.endpoint: https://") && m.contains("ca_file")),
            "{err}"
        );
        let f = file(
            "downstream:\n  endpoint: https://collector:14317\n  tls:\n    cert_file: /c.pem\n",
        );
        let err = Config::load(Some(&f.0), &env(&[]), &[]).expect_err("no CA, half mTLS");
        assert!(
            err.0
                .iter()
                .any(|m| m.starts_with("downstream.tls.ca_file"))
                && err.0.iter().any(|m| m.contains("cert_file and key_file")),
            "{err}"
        );
        let f = file(
            "downstream:\n  endpoint: https://collector:14317\n  tls:\n    ca_file: /ca.pem\n",
        );
        Config::load(Some(&f.0), &env(&[]), &[]).expect("https with a CA");
    }

    #[test]
    fn slow_client_timeouts_default_and_validate() {
        let c = Config::load(None, &env(&[]), &[]).expect("defaults");
        assert_eq!(
            c.receivers.http.read_header_timeout,
            Duration::from_secs(60)
        );
        assert_eq!(c.receivers.http.read_body_timeout, Duration::from_secs(60));
        assert_eq!(c.receivers.grpc.read_timeout, Duration::from_secs(60));
        assert_eq!(c.receivers.grpc.max_concurrent_streams, 100);
        assert_eq!(c.admin.read_header_timeout, Duration::from_secs(60));
        assert!(c.admin.auth.is_none() && c.admin.tls.is_none());
        let f = file("receivers:\n  http:\n    read_header_timeout: 0s\n  grpc:\n    max_concurrent_streams: 0\nadmin:\n  read_body_timeout: 0s\n");
        let err = Config::load(Some(&f.0), &env(&[]), &[]).expect_err("zeros");
        for key in [
            "receivers.http.read_header_timeout",
            "receivers.grpc.max_concurrent_streams",
            "admin.read_body_timeout",
        ] {
            assert!(err.0.iter().any(|m| m.starts_with(key)), "{key}: {err}");
        }
    }
}
