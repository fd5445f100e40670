//! Serving HTTP (the OTLP/HTTP receiver and the admin listener) on a bound
//! listener, with optional TLS and graceful shutdown.

use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use hyper::body::Incoming;

use crate::config::ServerTlsConfig;
use crate::ops::slow::{DeadlineBody, FirstBytes, Timeouts};

/// Errors building a TLS acceptor.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: no PEM {what} found")]
    Empty { path: String, what: &'static str },
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("client CA: {0}")]
    Verifier(String),
}

fn read_pem(path: &std::path::Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.display().to_string(),
        source,
    })
}

/// Builds a rustls acceptor from PEM files (optionally requiring client
/// certificates signed by `client_ca_file`).
pub fn tls_acceptor(cfg: &ServerTlsConfig) -> Result<TlsAcceptor, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cert_pem = read_pem(&cfg.cert_file)?;
    let certs: Vec<_> = rustls_pemfile::certs(&mut &cert_pem[..])
        .filter_map(Result::ok)
        .collect();
    if certs.is_empty() {
        return Err(TlsError::Empty {
            path: cfg.cert_file.display().to_string(),
            what: "certificate",
        });
    }
    let key_pem = read_pem(&cfg.key_file)?;
    let key = rustls_pemfile::private_key(&mut &key_pem[..])
        .ok()
        .flatten()
        .ok_or_else(|| TlsError::Empty {
            path: cfg.key_file.display().to_string(),
            what: "private key",
        })?;
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()?;
    let builder = match &cfg.client_ca_file {
        Some(ca) => {
            let ca_pem = read_pem(ca)?;
            let mut roots = rustls::RootCertStore::empty();
            for cert in rustls_pemfile::certs(&mut &ca_pem[..]).filter_map(Result::ok) {
                roots.add(cert)?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .map_err(|e| TlsError::Verifier(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// The largest HTTP/2 DATA frame the receivers accept (SETTINGS_MAX_FRAME_SIZE; HTTP/2's
/// default is 16 KiB). With 1 MiB a collector's batch of a few MB arrives in a few frames, reads
/// and wake-ups instead of one per 16 KiB (+10 % throughput at collector size in
/// `scripts/bench.sh`). Clients that ignore it send 16 KiB frames as before.
pub const MAX_FRAME_BYTES: u32 = 1 << 20;

/// Serves `router` on `listener` until `shutdown` is cancelled, then lets
/// open connections finish their requests for at most `drain`. Slow clients
/// are cut off by `timeouts` (see [`crate::ops::slow`]).
pub async fn serve_http(
    listener: TcpListener,
    router: axum::Router,
    tls: Option<TlsAcceptor>,
    timeouts: Timeouts,
    shutdown: CancellationToken,
    drain: Duration,
) {
    let graceful = GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http2().max_frame_size(MAX_FRAME_BYTES);
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(timeouts.header);
    // Every request's body has a deadline counted from its headers.
    let router = tower::ServiceExt::map_request(router, move |r: http::Request<Incoming>| {
        r.map(|body| DeadlineBody::new(body, timeouts.body))
    });
    loop {
        let (stream, peer) = tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    debug!(error = %e, "Accept failed.");
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(router.clone());
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let tls = tls.clone();
        tokio::spawn(async move {
            let result = match tls {
                Some(acceptor) => {
                    match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream))
                        .await
                    {
                        Ok(Ok(stream)) => {
                            let stream = FirstBytes::new(stream, timeouts.header);
                            let conn = builder
                                .serve_connection_with_upgrades(TokioIo::new(stream), service);
                            watcher.watch(conn.into_owned()).await
                        }
                        Ok(Err(e)) => {
                            debug!(%peer, error = %e, "TLS handshake failed.");
                            return;
                        }
                        Err(_) => return,
                    }
                }
                None => {
                    let stream = FirstBytes::new(stream, timeouts.header);
                    let conn =
                        builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
                    watcher.watch(conn.into_owned()).await
                }
            };
            if let Err(e) = result {
                debug!(%peer, error = %e, "Connection ended with an error.");
            }
        });
    }
    drop(listener);
    let _ = tokio::time::timeout(drain, graceful.shutdown()).await;
}
