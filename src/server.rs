//! The composition root: binds the listeners, then starts the stages in the
//! order data needs them and stops them in reverse.
//!
//! Start: saved detector state → exporter (downstream) → notifier outlets →
//! pipeline → admin → background tasks → receivers. Stop: receivers finish
//! their in-flight requests → background tasks end → a last checkpoint →
//! outlets deliver their backlog → the export queue drains within the grace
//! period → admin. Each stage spawns and owns its own tasks.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::admin::{self, AdminState};
use crate::auth::BearerToken;
use crate::checkpoint::Checkpointer;
use crate::config::Config;
use crate::engine::{Engine, EngineConfig};
use crate::exporter::{ExportQueue, Exporter, ExporterError};
use crate::notify::{self, Notifier, Outlet, Outlets};
use crate::ops::limiter::{MemoryLimiter, MemoryProbe, ProcessRss};
use crate::ops::slow::Timeouts;
use crate::ops::telemetry::Telemetry;
use crate::pipeline::Ingress;
use crate::receiver;

/// Errors starting or running the server.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("binding the {what} listener on {addr}: {source}")]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Exporter(#[from] ExporterError),
    /// A bearer token that cannot be read or is empty (the message names the key).
    #[error("{0}")]
    Auth(String),
    #[error("receiver TLS: {0}")]
    Tls(#[from] crate::ops::tls::TlsError),
    #[error("admin TLS: {0}")]
    AdminTls(#[source] crate::ops::tls::TlsError),
    #[error(transparent)]
    Grpc(#[from] receiver::grpc::GrpcError),
    #[error("notify: {0}")]
    Outbound(#[from] crate::ops::outbound::ClientError),
}

/// Listeners bound and ready to serve.
pub struct Bound {
    config: Config,
    grpc: Option<TcpListener>,
    http: Option<TcpListener>,
    admin: Option<TcpListener>,
    probe: Arc<dyn MemoryProbe>,
    heap: Option<Arc<dyn crate::selfwatch::HeapProbe>>,
}

/// The addresses actually bound (useful with port 0).
#[derive(Debug, Clone, Copy)]
pub struct Addresses {
    pub grpc: Option<SocketAddr>,
    pub http: Option<SocketAddr>,
    pub admin: Option<SocketAddr>,
}

/// What happened at shutdown.
#[derive(Debug, Default, Clone, Copy)]
pub struct ShutdownReport {
    /// Requests still queued when the grace period ended.
    pub dropped_requests: usize,
}

async fn bind(what: &'static str, addr: SocketAddr) -> Result<TcpListener, ServerError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServerError::Bind { what, addr, source })
}

async fn bind_if(
    enabled: bool,
    what: &'static str,
    addr: SocketAddr,
) -> Result<Option<TcpListener>, ServerError> {
    Ok(match enabled {
        true => Some(bind(what, addr).await?),
        false => None,
    })
}

impl Bound {
    /// Binds every enabled listener.
    pub async fn bind(config: Config) -> Result<Bound, ServerError> {
        let r = &config.receivers;
        let grpc = bind_if(r.grpc.enabled, "OTLP/gRPC", r.grpc.listen).await?;
        let http = bind_if(r.http.enabled, "OTLP/HTTP", r.http.listen).await?;
        let admin = bind_if(config.admin.enabled, "admin", config.admin.listen).await?;
        Ok(Bound {
            config,
            grpc,
            http,
            admin,
            probe: Arc::new(ProcessRss),
            heap: None,
        })
    }

    /// Replaces what the memory limiter measures (this process's RSS by
    /// default); tests use it to drive the limiter's states.
    pub fn with_memory_probe(mut self, probe: Arc<dyn MemoryProbe>) -> Self {
        self.probe = probe;
        self
    }

    /// Lets self-monitoring read the allocator's live heap bytes (the binary
    /// installs one for its global allocator); without it, only RSS is fed.
    pub fn with_heap_probe(mut self, heap: Arc<dyn crate::selfwatch::HeapProbe>) -> Self {
        self.heap = Some(heap);
        self
    }

    pub fn addresses(&self) -> Addresses {
        let addr = |l: &Option<TcpListener>| l.as_ref().and_then(|l| l.local_addr().ok());
        Addresses {
            grpc: addr(&self.grpc),
            http: addr(&self.http),
            admin: addr(&self.admin),
        }
    }

    /// Runs until `shutdown` is cancelled, then stops gracefully.
    pub async fn run(self, shutdown: CancellationToken) -> Result<ShutdownReport, ServerError> {
        let Bound {
            config,
            grpc,
            http,
            admin,
            probe,
            heap,
        } = self;
        // Everything that can refuse the configuration, before any task starts.
        let secrets = Secrets::load(&config)?;
        let grace = config.shutdown.grace_period;
        let telemetry = Arc::new(Telemetry::new());
        let limiter = Arc::new(memory_limiter(&config));
        let engine = Arc::new(
            Engine::new(EngineConfig::from_config(&config), Arc::clone(&telemetry))
                .with_limiter(Arc::clone(&limiter)),
        );

        // 1. The detector state from the last checkpoint, before anything is received.
        let checkpointer = restore(&config, &engine).await;
        // 2. The downstream.
        let exporter = start_exporter(&config, &telemetry)?;
        let queue = exporter.as_ref().map(Exporter::queue);
        // 3. The notifier's outlets.
        let heap_dumps = Arc::new(notify::heap_dump::HeapDumps::default());
        let (notifier, outlets) =
            start_outlets(&config, queue.clone(), &telemetry, &engine, &heap_dumps)?;
        // 4. The per-request pipeline.
        let ingress = Arc::new(Ingress {
            engine: Arc::clone(&engine),
            queue: queue.clone(),
            events: notifier.clone(),
            telemetry: Arc::clone(&telemetry),
            token: secrets.receivers_token,
            max_decompressed_bytes: config.receivers.max_decompressed_bytes,
            retry_after: Duration::from_secs(1),
            limiter: Arc::clone(&limiter),
        });
        // 5. Admin: up until the very end.
        let ready = Arc::new(AtomicBool::new(false));
        let admin = admin.map(|listener| {
            admin::start(
                listener,
                AdminState {
                    engine: Arc::clone(&engine),
                    queue: queue.clone(),
                    ready: Arc::clone(&ready),
                    token: secrets.admin_token,
                    heap_dumps: Some(heap_dumps),
                },
                secrets.admin_tls,
                Timeouts {
                    header: config.admin.read_header_timeout,
                    body: config.admin.read_body_timeout,
                },
            )
        });
        // 6. Background tasks, each owned by its stage.
        let mut background = JoinSet::new();
        {
            let notifier = notifier.clone();
            background.spawn(Arc::clone(&engine).run_sweeper(
                config.series.sweep_interval,
                shutdown.clone(),
                move |events| notifier.emit(events),
            ));
        }
        if config.self_monitoring.enabled {
            background.spawn(crate::selfwatch::run(
                Arc::clone(&engine),
                notifier,
                heap,
                config.self_monitoring.interval,
                config.self_monitoring.warmup,
                shutdown.clone(),
            ));
        }
        if let Some(m) = &config.receivers.memory_limiter {
            if let Some(used) = probe.used_bytes() {
                limiter.observe(used);
            }
            background.spawn(crate::ops::limiter::run_sampler(
                Arc::clone(&limiter),
                probe,
                m.check_interval,
                shutdown.clone(),
            ));
        }
        if let (Some(c), Some(cfg)) = (&checkpointer, &config.checkpoint) {
            background.spawn(crate::checkpoint::run(
                Arc::clone(c),
                cfg.interval,
                shutdown.clone(),
            ));
        }
        if let (Some(q), true) = (&queue, config.events.derived_metrics) {
            background.spawn(notify::run_derived_metrics(
                Arc::clone(&engine),
                q.clone(),
                config.events.derived_metrics_interval,
                shutdown.clone(),
            ));
        }
        // 7. The receivers.
        let receivers = receiver::start(
            grpc,
            http,
            secrets.receivers_tls,
            &ingress,
            &config.receivers,
            grace,
            &shutdown,
        );

        ready.store(true, Ordering::Release);
        info!(version = env!("CARGO_PKG_VERSION"), "leakwatch is running.");
        shutdown.cancelled().await;

        // In reverse.
        info!("Shutting down: receivers stop accepting.");
        ready.store(false, Ordering::Release);
        receivers.stopped(grace).await;
        background.abort_all();
        if let Some(c) = &checkpointer {
            // Nothing is ingested any more: this is the state the next start resumes from.
            // Logged and counted inside.
            let _ = c.write().await;
        }
        outlets.drain(grace).await;
        let dropped_requests = match exporter {
            Some(e) => e.shutdown(grace).await,
            None => 0,
        };
        if let Some(admin) = admin {
            admin.stop().await;
        }
        info!(dropped_requests, "leakwatch stopped.");
        Ok(ShutdownReport { dropped_requests })
    }
}

/// Tokens and TLS material, read and checked before anything starts.
struct Secrets {
    receivers_token: Option<Arc<BearerToken>>,
    admin_token: Option<Arc<BearerToken>>,
    receivers_tls: receiver::Tls,
    admin_tls: Option<tokio_rustls::TlsAcceptor>,
}

impl Secrets {
    fn load(config: &Config) -> Result<Secrets, ServerError> {
        // Checked again here (Config::load did) for configurations built in code:
        // an empty token must never mean "no authentication".
        let token = |auth: Option<&crate::config::AuthConfig>, key: &str| {
            auth.map(|a| a.bearer_token(key).map(Arc::new))
                .transpose()
                .map_err(ServerError::Auth)
        };
        Ok(Secrets {
            receivers_token: token(config.receivers.auth.as_ref(), "receivers.auth")?,
            admin_token: token(config.admin.auth.as_ref(), "admin.auth")?,
            receivers_tls: receiver::Tls {
                grpc: match (&config.receivers.grpc.tls, config.receivers.grpc.enabled) {
                    (Some(tls), true) => Some(crate::ops::tls::grpc_server_tls(tls)?),
                    _ => None,
                },
                http: match (&config.receivers.http.tls, config.receivers.http.enabled) {
                    (Some(tls), true) => Some(crate::ops::tls::tls_acceptor(tls)?),
                    _ => None,
                },
            },
            admin_tls: config
                .admin
                .tls
                .as_ref()
                .map(crate::ops::tls::tls_acceptor)
                .transpose()
                .map_err(ServerError::AdminTls)?,
        })
    }
}

fn memory_limiter(config: &Config) -> MemoryLimiter {
    match &config.receivers.memory_limiter {
        Some(m) => MemoryLimiter::new(
            m.limit_bytes,
            (m.limit_bytes as f64 * m.soft_limit_percent / 100.0) as u64,
        ),
        None => MemoryLimiter::unlimited(),
    }
}

/// Restores the last checkpoint, if checkpoints are configured.
async fn restore(config: &Config, engine: &Arc<Engine>) -> Option<Arc<Checkpointer>> {
    let c = Arc::new(Checkpointer::new(
        config.checkpoint.as_ref()?.path.clone(),
        Arc::clone(engine),
    ));
    let restoring = Arc::clone(&c);
    // Logged and counted inside; a bad checkpoint leaves the engine empty.
    let _ = tokio::task::spawn_blocking(move || restoring.restore()).await;
    Some(c)
}

fn start_exporter(
    config: &Config,
    telemetry: &Arc<Telemetry>,
) -> Result<Option<Exporter>, ServerError> {
    match &config.downstream.endpoint {
        Some(endpoint) => Ok(Some(Exporter::start(
            &config.downstream,
            endpoint,
            Arc::clone(telemetry),
        )?)),
        None => {
            info!("No downstream configured: data is tracked and counted, not forwarded.");
            Ok(None)
        }
    }
}

fn start_outlets(
    config: &Config,
    queue: Option<ExportQueue>,
    telemetry: &Arc<Telemetry>,
    engine: &Arc<Engine>,
    heap_dumps: &Arc<notify::heap_dump::HeapDumps>,
) -> Result<(Notifier, Outlets), ServerError> {
    let mut outlets: Vec<Box<dyn Outlet>> = vec![Box::new(notify::log_line::LogLine)];
    if let (Some(queue), true) = (queue.clone(), config.events.logs) {
        outlets.push(Box::new(notify::otlp_logs::OtlpLogs::new(
            queue,
            Arc::clone(telemetry),
        )));
    }
    let n = &config.notify;
    let am = &n.alertmanager;
    if let Some(url) = &am.url {
        info!(%url, "Alerts go to Alertmanager.");
        outlets.push(Box::new(notify::alertmanager::Alertmanager::new(
            url,
            am,
            crate::ops::outbound::client(am.timeout)?,
            Arc::clone(telemetry),
            Some(Arc::clone(engine)),
        )));
    }
    let w = &n.webhook;
    if let Some(url) = &w.url {
        info!(%url, "Leak events go to a webhook.");
        outlets.push(Box::new(notify::webhook::Webhook::new(
            url,
            &w.headers,
            crate::ops::outbound::client(Duration::from_secs(10))?,
            Arc::clone(telemetry),
        )));
    }
    if !n.heap_dump.is_empty() {
        outlets.push(Box::new(notify::heap_dump::HeapDump::new(
            &n.heap_dump,
            Arc::clone(heap_dumps),
            queue.filter(|_| config.events.logs),
            Arc::clone(telemetry),
        )?));
    }
    Ok(Notifier::start(
        outlets,
        notify::BACKLOG,
        Arc::clone(telemetry),
    ))
}
