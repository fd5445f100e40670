//! The receive stage: OTLP/gRPC ([`grpc`]) and OTLP/HTTP ([`http`]) front
//! ends. Each turns a request into the raw protobuf bytes of an
//! `Export*ServiceRequest` — authenticating first, then decompressing
//! ([`decompress`]) and converting OTLP/JSON ([`json`]) — and hands them to
//! the pipeline ([`crate::pipeline::Ingress::export`]).

pub mod decompress;
pub mod grpc;
pub mod http;
pub mod json;

pub use decompress::decompress;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::ReceiversConfig;
use crate::ops::slow::Timeouts;
use crate::pipeline::Ingress;

/// The front ends' TLS, loaded before anything starts.
#[derive(Default)]
pub struct Tls {
    pub grpc: Option<tonic::transport::ServerTlsConfig>,
    pub http: Option<tokio_rustls::TlsAcceptor>,
}

/// The running front ends.
pub struct Receivers {
    tasks: JoinSet<()>,
}

/// Starts a front end on each bound listener; both stop accepting when
/// `shutdown` is cancelled and then finish their in-flight requests.
pub fn start(
    grpc: Option<TcpListener>,
    http: Option<TcpListener>,
    tls: Tls,
    ingress: &Arc<Ingress>,
    cfg: &ReceiversConfig,
    grace: Duration,
    shutdown: &CancellationToken,
) -> Receivers {
    let mut tasks = JoinSet::new();
    if let Some(listener) = grpc {
        let addr = listener.local_addr().ok();
        let ingress = Arc::clone(ingress);
        let grpc_cfg = cfg.grpc.clone();
        let token = shutdown.clone();
        tasks.spawn(async move {
            if let Err(e) = grpc::serve(listener, ingress, &grpc_cfg, tls.grpc, token).await {
                tracing::error!(error = %e, "OTLP/gRPC receiver failed.");
            }
        });
        listening("OTLP/gRPC receiver", addr);
    }
    if let Some(listener) = http {
        let addr = listener.local_addr().ok();
        let router = http::router(http::HttpState {
            ingress: Arc::clone(ingress),
            max_body_bytes: cfg.http.max_body_bytes,
        });
        tasks.spawn(crate::ops::net::serve_http(
            listener,
            router,
            tls.http,
            Timeouts {
                header: cfg.http.read_header_timeout,
                body: cfg.http.read_body_timeout,
            },
            shutdown.clone(),
            grace,
        ));
        listening("OTLP/HTTP receiver", addr);
    }
    Receivers { tasks }
}

fn listening(what: &str, addr: Option<SocketAddr>) {
    if let Some(addr) = addr {
        info!(%addr, "{what} listening.");
    }
}

impl Receivers {
    /// Waits for the front ends to finish their in-flight requests (the
    /// shutdown token must already be cancelled), at most `grace`.
    pub async fn stopped(mut self, grace: Duration) {
        let all = async { while self.tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(grace, all).await.is_err() {
            warn!("Receivers did not stop within the grace period.");
            self.tasks.abort_all();
        }
    }
}
