//! OTLP/gRPC front end: the three `Export` methods served with the raw-bytes
//! codec, so the request arrives as the original protobuf bytes.
//!
//! Status codes follow the OTLP specification: malformed → INVALID_ARGUMENT,
//! too large → RESOURCE_EXHAUSTED (tonic says OUT_OF_RANGE; remapped here),
//! queue full or shutting down → UNAVAILABLE with RetryInfo, bad token →
//! UNAUTHENTICATED; `partial_success` is set only when points were refused.

use std::future::{ready, Ready};
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use prost::Message;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::transport::server::TcpIncoming;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::config::GrpcReceiverConfig;
use crate::otlp::proto::otlp::collector::{
    logs::v1 as logs, metrics::v1 as metrics, trace::v1 as trace,
};
use crate::otlp::service::{raw_services, RawExport};
use crate::otlp::signal::{Protocol, Signal};
use crate::pipeline::{Accepted, ExportError, Ingress};

/// Errors starting the gRPC receiver.
#[derive(Debug, thiserror::Error)]
pub enum GrpcError {
    #[error("gRPC server: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// Maps an [`ExportError`] to its gRPC status.
pub fn status_of(error: &ExportError, ingress: &Ingress) -> Status {
    let message = error.to_string();
    match error {
        ExportError::Malformed(_) | ExportError::UnsupportedMediaType(_) => {
            Status::invalid_argument(message)
        }
        ExportError::TooLarge { .. } => Status::resource_exhausted(message),
        ExportError::Unauthenticated => Status::unauthenticated(message),
        ExportError::Timeout(_) => Status::deadline_exceeded(message),
        ExportError::QueueFull(_)
        | ExportError::ShuttingDown
        | ExportError::MemoryLimit
        | ExportError::Persistence => Status::with_error_details(
            Code::Unavailable,
            message,
            ErrorDetails::with_retry_info(Some(ingress.retry_after)),
        ),
    }
}

/// The response message for an accepted request.
fn response_of(signal: Signal, accepted: &Accepted) -> Bytes {
    let partial = accepted.rejected > 0;
    let encoded = match signal {
        Signal::Metrics => metrics::ExportMetricsServiceResponse {
            partial_success: partial.then(|| metrics::ExportMetricsPartialSuccess {
                rejected_data_points: accepted.rejected as i64,
                error_message: accepted.message.clone(),
            }),
        }
        .encode_to_vec(),
        Signal::Traces => trace::ExportTraceServiceResponse {
            partial_success: None,
        }
        .encode_to_vec(),
        Signal::Logs => logs::ExportLogsServiceResponse {
            partial_success: None,
        }
        .encode_to_vec(),
    };
    Bytes::from(encoded)
}

/// The receiver's handler behind the shared raw-bytes service: authenticate
/// on the headers, then the pipeline.
#[derive(Clone)]
struct Receive(Arc<Ingress>);

impl RawExport for Receive {
    type Future = Ready<Result<Bytes, Status>>;

    fn admit(&self, signal: Signal, headers: &http::HeaderMap) -> Result<(), Status> {
        // Authenticate on the headers, before a byte of the body is read,
        // decompressed or decoded.
        let ingress = &self.0;
        let auth = headers
            .get(http::header::AUTHORIZATION)
            .map(|v| v.as_bytes());
        ingress.authorize(auth).map_err(|e| {
            ingress.telemetry.received(signal, Protocol::Grpc, 0);
            status_of(&ingress.refuse(signal, 0, e), ingress)
        })
    }

    fn export(&self, signal: Signal, body: Bytes) -> Self::Future {
        let ingress = &self.0;
        ready(
            ingress
                .export(signal, Protocol::Grpc, body)
                .map(|accepted| response_of(signal, &accepted))
                .map_err(|e| status_of(&e, ingress)),
        )
    }

    fn respond(
        &self,
        signal: Signal,
        response: http::Response<tonic::body::Body>,
    ) -> http::Response<tonic::body::Body> {
        remap_too_large(response, &self.0, signal)
    }
}

/// tonic refuses an oversized message with OUT_OF_RANGE before our handler
/// runs; OTLP clients (and the collector) expect RESOURCE_EXHAUSTED.
fn remap_too_large(
    mut response: http::Response<tonic::body::Body>,
    ingress: &Ingress,
    signal: Signal,
) -> http::Response<tonic::body::Body> {
    let headers = response.headers_mut();
    let out_of_range = headers
        .get("grpc-status")
        .is_some_and(|v| v.as_bytes() == b"11");
    let resource_exhausted = headers
        .get("grpc-status")
        .is_some_and(|v| v.as_bytes() == b"8");
    if out_of_range {
        headers.insert("grpc-status", http::HeaderValue::from_static("8"));
    }
    if out_of_range || resource_exhausted {
        ingress.telemetry.received(signal, Protocol::Grpc, 0);
        ingress
            .telemetry
            .refused(signal, crate::ops::telemetry::RefusedReason::TooLarge, 0);
    }
    response
}

/// Serves OTLP/gRPC on `listener` until `shutdown` is cancelled; in-flight
/// requests finish first.
pub async fn serve(
    listener: TcpListener,
    ingress: Arc<Ingress>,
    cfg: &GrpcReceiverConfig,
    tls: Option<tonic::transport::ServerTlsConfig>,
    shutdown: CancellationToken,
) -> Result<(), GrpcError> {
    let max = cfg.max_message_bytes;
    let mut builder = tonic::transport::Server::builder()
        .max_frame_size(crate::ops::net::MAX_FRAME_BYTES)
        .max_concurrent_streams(cfg.max_concurrent_streams)
        // A request (body included) must arrive and be answered within this.
        .timeout(cfg.read_timeout);
    if let Some(tls) = tls {
        builder = builder.tls_config(tls)?;
    }
    let services = raw_services(Receive(ingress), max);
    let local: Option<SocketAddr> = listener.local_addr().ok();
    tracing::debug!(addr = ?local, "OTLP/gRPC serving.");
    builder
        .add_service(services.metrics)
        .add_service(services.traces)
        .add_service(services.logs)
        .serve_with_incoming_shutdown(
            {
                // A new connection must send its first bytes within the read timeout.
                let deadline = cfg.read_timeout;
                futures_util::StreamExt::map(
                    TcpIncoming::from(listener).with_nodelay(Some(true)),
                    move |s| s.map(|s| crate::ops::slow::FirstBytes::new(s, deadline)),
                )
            },
            shutdown.cancelled_owned(),
        )
        .await?;
    Ok(())
}
