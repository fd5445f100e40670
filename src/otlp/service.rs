//! The one OTLP/gRPC export service that moves requests as raw bytes
//! ([`RawCodec`]): the receiver, the load generator's blackhole downstream
//! and the tests' fake downstream are each a [`RawExport`] handler behind it.
//!
//! It answers unknown methods with UNIMPLEMENTED, lets the handler refuse on
//! the headers before a byte of the body is read ([`RawExport::admit`]),
//! accepts gzip and zstd, bounds the decoded message, and gives the handler
//! the last look at the HTTP response.

use std::convert::Infallible;
use std::future::Future;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::future::{BoxFuture, MapOk};
use futures_util::TryFutureExt;
use tonic::codec::{CompressionEncoding, EnabledCompressionEncodings};
use tonic::server::{NamedService, UnaryService};
use tonic::Status;

use crate::otlp::codec::RawCodec;
use crate::otlp::signal::Signal;

/// What one export service does with a request.
pub trait RawExport: Clone + Send + Sync + 'static {
    /// The answer: an encoded `Export*ServiceResponse` (empty bytes are a valid one).
    type Future: Future<Output = Result<Bytes, Status>> + Send + 'static;

    /// Called on the headers, before the body is read: an error is answered at once.
    fn admit(&self, _signal: Signal, _headers: &http::HeaderMap) -> Result<(), Status> {
        Ok(())
    }

    /// Handles one request's raw protobuf bytes.
    fn export(&self, signal: Signal, body: Bytes) -> Self::Future;

    /// The last look at the HTTP response (e.g. to remap a status tonic chose).
    fn respond(
        &self,
        _signal: Signal,
        response: http::Response<tonic::body::Body>,
    ) -> http::Response<tonic::body::Body> {
        response
    }
}

/// One OTLP export service; `S` is the signal's index (0 metrics, 1 traces, 2 logs).
#[derive(Clone)]
pub struct RawService<H, const S: u8> {
    handler: H,
    max_message_bytes: usize,
}

/// The three export services over one handler.
pub struct RawServices<H> {
    pub metrics: RawService<H, 0>,
    pub traces: RawService<H, 1>,
    pub logs: RawService<H, 2>,
}

/// The metrics, trace and logs services of `handler`, each refusing decoded
/// messages larger than `max_message_bytes`.
pub fn raw_services<H: RawExport>(handler: H, max_message_bytes: usize) -> RawServices<H> {
    RawServices {
        metrics: RawService {
            handler: handler.clone(),
            max_message_bytes,
        },
        traces: RawService {
            handler: handler.clone(),
            max_message_bytes,
        },
        logs: RawService {
            handler,
            max_message_bytes,
        },
    }
}

const fn signal_of(s: u8) -> Signal {
    match s {
        0 => Signal::Metrics,
        1 => Signal::Traces,
        _ => Signal::Logs,
    }
}

impl<H> NamedService for RawService<H, 0> {
    const NAME: &'static str = "opentelemetry.proto.collector.metrics.v1.MetricsService";
}
impl<H> NamedService for RawService<H, 1> {
    const NAME: &'static str = "opentelemetry.proto.collector.trace.v1.TraceService";
}
impl<H> NamedService for RawService<H, 2> {
    const NAME: &'static str = "opentelemetry.proto.collector.logs.v1.LogsService";
}

struct Unary<H> {
    handler: H,
    signal: Signal,
}

impl<H: RawExport> UnaryService<Bytes> for Unary<H> {
    type Response = Bytes;
    type Future = MapOk<H::Future, fn(Bytes) -> tonic::Response<Bytes>>;

    fn call(&mut self, request: tonic::Request<Bytes>) -> Self::Future {
        self.handler
            .export(self.signal, request.into_inner())
            .map_ok(tonic::Response::new as fn(Bytes) -> tonic::Response<Bytes>)
    }
}

impl<H: RawExport, const S: u8, B> tower::Service<http::Request<B>> for RawService<H, S>
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
        if let Err(status) = self.handler.admit(signal, request.headers()) {
            let response = self.handler.respond(signal, status.into_http());
            return Box::pin(async move { Ok(response) });
        }
        let handler = self.handler.clone();
        let max = self.max_message_bytes;
        Box::pin(async move {
            let mut accept = EnabledCompressionEncodings::default();
            accept.enable(CompressionEncoding::Gzip);
            accept.enable(CompressionEncoding::Zstd);
            let mut grpc = tonic::server::Grpc::new(RawCodec)
                .apply_compression_config(accept, EnabledCompressionEncodings::default())
                .apply_max_message_size_config(Some(max), None);
            let unary = Unary {
                handler: handler.clone(),
                signal,
            };
            let response = grpc.unary(unary, request).await;
            Ok(handler.respond(signal, response))
        })
    }
}
