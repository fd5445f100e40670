//! OTLP/gRPC front end: the three `Export` methods served with the raw-bytes
//! codec, so the request arrives as the original protobuf bytes.
//!
//! Status codes follow the OTLP specification: malformed → INVALID_ARGUMENT,
//! too large → RESOURCE_EXHAUSTED (tonic says OUT_OF_RANGE; remapped here),
//! queue full or shutting down → UNAVAILABLE with RetryInfo, bad token →
//! UNAUTHENTICATED; `partial_success` is set only when points were refused.

use std::convert::Infallible;
use std::future::{ready, Ready};
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::future::BoxFuture;
use prost::Message;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::codec::{CompressionEncoding, EnabledCompressionEncodings};
use tonic::server::{NamedService, UnaryService};
use tonic::transport::server::TcpIncoming;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::config::GrpcReceiverConfig;
use crate::otlp::codec::RawCodec;
use crate::otlp::proto::otlp::collector::{
    logs::v1 as logs, metrics::v1 as metrics, trace::v1 as trace,
};
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

/// One OTLP export service; `S` is the signal's index.
#[derive(Clone)]
pub struct OtlpService<const S: u8> {
    ingress: Arc<Ingress>,
    max_message_bytes: usize,
}

const fn signal_of(s: u8) -> Signal {
    match s {
        0 => Signal::Metrics,
        1 => Signal::Traces,
        _ => Signal::Logs,
    }
}

impl NamedService for OtlpService<0> {
    const NAME: &'static str = "opentelemetry.proto.collector.metrics.v1.MetricsService";
}
impl NamedService for OtlpService<1> {
    const NAME: &'static str = "opentelemetry.proto.collector.trace.v1.TraceService";
}
impl NamedService for OtlpService<2> {
    const NAME: &'static str = "opentelemetry.proto.collector.logs.v1.LogsService";
}

struct Handler<const S: u8>(Arc<Ingress>);

impl<const S: u8> UnaryService<Bytes> for Handler<S> {
    type Response = Bytes;
    type Future = Ready<Result<tonic::Response<Bytes>, Status>>;

    fn call(&mut self, request: tonic::Request<Bytes>) -> Self::Future {
        let signal = signal_of(S);
        let ingress = &self.0;
        // Authenticated in `OtlpService::call`, before the body was read.
        let result = ingress
            .export(signal, Protocol::Grpc, request.into_inner())
            .map(|accepted| tonic::Response::new(response_of(signal, &accepted)))
            .map_err(|e| status_of(&e, ingress));
        ready(result)
    }
}

impl<const S: u8, B> tower::Service<http::Request<B>> for OtlpService<S>
where
    B: http_body::Body + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let signal = signal_of(S);
        if request.uri().path() != signal.grpc_path() {
            let response =
                Status::unimplemented(format!("unknown method {}", request.uri().path()))
                    .into_http();
            return Box::pin(async move { Ok(response) });
        }
        let ingress = Arc::clone(&self.ingress);
        // Authenticate on the headers, before a byte of the body is read,
        // decompressed or decoded.
        let auth = request
            .headers()
            .get(http::header::AUTHORIZATION)
            .map(|v| v.as_bytes());
        if let Err(e) = ingress.authorize(auth) {
            ingress.telemetry.received(signal, Protocol::Grpc, 0);
            let e = ingress.refuse(signal, 0, e);
            let response = status_of(&e, &ingress).into_http();
            return Box::pin(async move { Ok(response) });
        }
        let max = self.max_message_bytes;
        Box::pin(async move {
            let mut encodings = EnabledCompressionEncodings::default();
            encodings.enable(CompressionEncoding::Gzip);
            encodings.enable(CompressionEncoding::Zstd);
            let mut grpc = tonic::server::Grpc::new(RawCodec)
                .apply_compression_config(encodings, EnabledCompressionEncodings::default())
                .apply_max_message_size_config(Some(max), None);
            let response = grpc
                .unary(Handler::<S>(Arc::clone(&ingress)), request)
                .await;
            Ok(remap_too_large(response, &ingress, signal))
        })
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
    let local: Option<SocketAddr> = listener.local_addr().ok();
    tracing::debug!(addr = ?local, "OTLP/gRPC serving.");
    builder
        .add_service(OtlpService::<0> {
            ingress: Arc::clone(&ingress),
            max_message_bytes: max,
        })
        .add_service(OtlpService::<1> {
            ingress: Arc::clone(&ingress),
            max_message_bytes: max,
        })
        .add_service(OtlpService::<2> {
            ingress,
            max_message_bytes: max,
        })
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
