//! Wiring: binds the listeners, builds the stages, runs them until the
//! shutdown token is cancelled, then stops in order — receivers first (they
//! finish in-flight requests), then the export queue drains within the grace
//! period, then the admin listener.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::admin::{self, AdminState};
use crate::auth::BearerToken;
use crate::catalog::Catalog;
use crate::config::Config;
use crate::engine::{Engine, EngineConfig};
use crate::exporter::{Exporter, ExporterError};
use crate::notify::{self, EventSink};
use crate::ops::limiter::{MemoryLimiter, MemoryProbe, ProcessRss};
use crate::ops::slow::Timeouts;
use crate::ops::telemetry::Telemetry;
use crate::receiver::{self, Ingress};

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
    #[error("HTTP TLS: {0}")]
    Tls(#[from] crate::ops::net::TlsError),
    #[error("admin TLS: {0}")]
    AdminTls(#[source] crate::ops::net::TlsError),
    #[error(transparent)]
    Grpc(#[from] receiver::grpc::GrpcError),
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

fn bearer_token(
    auth: Option<&crate::config::AuthConfig>,
    key: &str,
) -> Result<Option<Arc<BearerToken>>, ServerError> {
    auth.map(|a| BearerToken::from_config(a, key).map(Arc::new))
        .transpose()
        .map_err(ServerError::Auth)
}

async fn bind(what: &'static str, addr: SocketAddr) -> Result<TcpListener, ServerError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServerError::Bind { what, addr, source })
}

impl Bound {
    /// Binds every enabled listener.
    pub async fn bind(config: Config) -> Result<Bound, ServerError> {
        let grpc = match config.receivers.grpc.enabled {
            true => Some(bind("OTLP/gRPC", config.receivers.grpc.listen).await?),
            false => None,
        };
        let http = match config.receivers.http.enabled {
            true => Some(bind("OTLP/HTTP", config.receivers.http.listen).await?),
            false => None,
        };
        let admin = match config.admin.enabled {
            true => Some(bind("admin", config.admin.listen).await?),
            false => None,
        };
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
        let addrs = self.addresses();
        let Bound {
            config,
            grpc,
            http,
            admin,
            probe,
            heap,
        } = self;
        let telemetry = Arc::new(Telemetry::new());
        let limiter = Arc::new(match &config.receivers.memory_limiter {
            Some(m) => MemoryLimiter::new(
                m.limit_bytes,
                (m.limit_bytes as f64 * m.soft_limit_percent / 100.0) as u64,
            ),
            None => MemoryLimiter::unlimited(),
        });
        let engine = Arc::new(
            Engine::new(
                EngineConfig {
                    max_series: config.series.max_series,
                    idle_timeout: config.series.idle_timeout,
                    max_forward_jump: config.series.max_forward_jump,
                    detector: config.detector.clone(),
                    catalog: Catalog::with_rules(config.catalog.rules.clone()),
                },
                Arc::clone(&telemetry),
            )
            .with_limiter(Arc::clone(&limiter)),
        );
        // The detector state from the last checkpoint, before anything is received.
        let checkpointer = config.checkpoint.as_ref().map(|c| {
            Arc::new(crate::checkpoint::Checkpointer::new(
                c.path.clone(),
                Arc::clone(&engine),
            ))
        });
        if let Some(c) = &checkpointer {
            let c = Arc::clone(c);
            // Logged and counted inside; a bad checkpoint leaves the engine empty.
            let _ = tokio::task::spawn_blocking(move || c.restore()).await;
        }
        let exporter = match &config.downstream.endpoint {
            Some(endpoint) => Some(Exporter::start(
                &config.downstream,
                endpoint,
                Arc::clone(&telemetry),
            )?),
            None => {
                info!("No downstream configured: data is tracked and counted, not forwarded.");
                None
            }
        };
        let queue = exporter.as_ref().map(Exporter::queue);
        // Checked again here (Config::load did) for configurations built in code:
        // an empty token must never mean "no authentication".
        let token = bearer_token(config.receivers.auth.as_ref(), "receivers.auth")?;
        let admin_token = bearer_token(config.admin.auth.as_ref(), "admin.auth")?;
        let admin_tls = config
            .admin
            .tls
            .as_ref()
            .map(crate::ops::net::tls_acceptor)
            .transpose()
            .map_err(ServerError::AdminTls)?;
        let ingress = Arc::new(Ingress {
            engine: Arc::clone(&engine),
            queue: queue.clone(),
            events: EventSink::new(queue.clone(), config.events.logs, Arc::clone(&telemetry)),
            telemetry: Arc::clone(&telemetry),
            token,
            max_decompressed_bytes: config.receivers.max_decompressed_bytes,
            retry_after: Duration::from_secs(1),
            limiter: Arc::clone(&limiter),
        });
        let grace = config.shutdown.grace_period;
        let ready = Arc::new(AtomicBool::new(false));

        // Receivers.
        let mut receivers = JoinSet::new();
        if let Some(listener) = grpc {
            let ingress = Arc::clone(&ingress);
            let cfg = config.receivers.grpc.clone();
            let token = shutdown.clone();
            receivers.spawn(async move {
                if let Err(e) = receiver::grpc::serve(listener, ingress, &cfg, token).await {
                    tracing::error!(error = %e, "OTLP/gRPC receiver failed.");
                }
            });
            if let Some(addr) = addrs.grpc {
                info!(%addr, "OTLP/gRPC receiver listening.");
            }
        }
        if let Some(listener) = http {
            let tls = config
                .receivers
                .http
                .tls
                .as_ref()
                .map(crate::ops::net::tls_acceptor)
                .transpose()?;
            let router = receiver::http::router(receiver::http::HttpState {
                ingress: Arc::clone(&ingress),
                max_body_bytes: config.receivers.http.max_body_bytes,
            });
            receivers.spawn(crate::ops::net::serve_http(
                listener,
                router,
                tls,
                Timeouts {
                    header: config.receivers.http.read_header_timeout,
                    body: config.receivers.http.read_body_timeout,
                },
                shutdown.clone(),
                grace,
            ));
            if let Some(addr) = addrs.http {
                info!(%addr, "OTLP/HTTP receiver listening.");
            }
        }

        // Admin listener: up until the very end.
        let admin_stop = CancellationToken::new();
        let mut admin_task = None;
        if let Some(listener) = admin {
            let router = admin::router(AdminState {
                engine: Arc::clone(&engine),
                queue: queue.clone(),
                ready: Arc::clone(&ready),
                token: admin_token,
            });
            admin_task = Some(tokio::spawn(crate::ops::net::serve_http(
                listener,
                router,
                admin_tls,
                Timeouts {
                    header: config.admin.read_header_timeout,
                    body: config.admin.read_body_timeout,
                },
                admin_stop.clone(),
                Duration::from_secs(1),
            )));
            if let Some(addr) = addrs.admin {
                info!(%addr, "Admin listener listening.");
            }
        }

        // Background tasks.
        let mut background = JoinSet::new();
        {
            let engine = Arc::clone(&engine);
            let every = config.series.sweep_interval;
            let token = shutdown.clone();
            background.spawn(async move {
                let mut ticks = crate::ops::periodic::Periodic::new(every, token);
                while ticks.tick().await {
                    let evicted = engine.evict_idle();
                    if evicted > 0 {
                        tracing::debug!(evicted, "Idle series evicted.");
                    }
                }
            });
        }
        if config.self_monitoring.enabled {
            background.spawn(crate::selfwatch::run(
                Arc::clone(&engine),
                ingress.events.clone(),
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

        ready.store(true, Ordering::Release);
        info!(version = env!("CARGO_PKG_VERSION"), "leakwatch is running.");
        shutdown.cancelled().await;

        info!("Shutting down: receivers stop accepting.");
        ready.store(false, Ordering::Release);
        if tokio::time::timeout(grace, async {
            while receivers.join_next().await.is_some() {}
        })
        .await
        .is_err()
        {
            warn!("Receivers did not stop within the grace period.");
            receivers.abort_all();
        }
        background.abort_all();
        if let Some(c) = &checkpointer {
            // Nothing is ingested any more: this is the state the next start resumes from.
            // Logged and counted inside.
            let _ = c.write().await;
        }
        let dropped_requests = match exporter {
            Some(e) => e.shutdown(grace).await,
            None => 0,
        };
        admin_stop.cancel();
        if let Some(t) = admin_task {
            let _ = t.await;
        }
        info!(dropped_requests, "leakwatch stopped.");
        Ok(ShutdownReport { dropped_requests })
    }
}
