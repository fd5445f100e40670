//! Serving HTTP (the OTLP/HTTP receiver and the admin listener) on a bound
//! listener, with optional TLS and graceful shutdown.

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

use crate::ops::slow::{DeadlineBody, FirstBytes, Timeouts};

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
