//! OTLP/HTTP front end: `POST /v1/{metrics,traces,logs}` with
//! `application/x-protobuf` or `application/json` bodies (OTLP/JSON rules:
//! hex ids, 64-bit integers as strings), gzip or zstd `Content-Encoding`.
//!
//! Replies use the request's content type; errors carry a `google.rpc.Status`
//! body. Malformed → 400, too large → 413, unsupported type or encoding →
//! 415, missing token → 401, queue full or shutting down → 503 with
//! `Retry-After`.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use prost::Message;

use crate::otlp::proto::otlp::collector::{
    logs::v1 as logs, metrics::v1 as metrics, trace::v1 as trace,
};
use crate::otlp::signal::{Protocol, Signal};
use crate::pipeline::{Accepted, ExportError, Ingress};

/// `google.rpc.Status`, the body of OTLP/HTTP error responses.
#[derive(Clone, PartialEq, Message)]
pub struct RpcStatus {
    #[prost(int32, tag = "1")]
    pub code: i32,
    #[prost(string, tag = "2")]
    pub message: String,
}

/// Settings of the HTTP front end.
#[derive(Clone)]
pub struct HttpState {
    pub ingress: Arc<Ingress>,
    pub max_body_bytes: usize,
}

/// The OTLP/HTTP routes.
pub fn router(state: HttpState) -> Router {
    Router::new()
        .route(
            "/v1/metrics",
            post(|s: State<HttpState>, h: HeaderMap, b: Body| handle(s, h, b, Signal::Metrics)),
        )
        .route(
            "/v1/traces",
            post(|s: State<HttpState>, h: HeaderMap, b: Body| handle(s, h, b, Signal::Traces)),
        )
        .route(
            "/v1/logs",
            post(|s: State<HttpState>, h: HeaderMap, b: Body| handle(s, h, b, Signal::Logs)),
        )
        .with_state(state)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Format {
    Protobuf,
    Json,
}

fn format_of(headers: &HeaderMap) -> Result<Format, ExportError> {
    let raw = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let media = raw.split(';').next().unwrap_or("").trim();
    if media.eq_ignore_ascii_case("application/x-protobuf")
        || media.eq_ignore_ascii_case("application/protobuf")
    {
        Ok(Format::Protobuf)
    } else if media.eq_ignore_ascii_case("application/json") {
        Ok(Format::Json)
    } else {
        Err(ExportError::UnsupportedMediaType(format!(
            "unsupported Content-Type {raw:?}; use application/x-protobuf or application/json"
        )))
    }
}

async fn handle(
    State(state): State<HttpState>,
    headers: HeaderMap,
    body: Body,
    signal: Signal,
) -> Response {
    let ingress = &state.ingress;
    // Reply in the request's format; fall back to protobuf when it is unknown.
    let format = format_of(&headers);
    let reply_format = *format.as_ref().unwrap_or(&Format::Protobuf);
    let protocol = if reply_format == Format::Json {
        Protocol::HttpJson
    } else {
        Protocol::HttpProtobuf
    };
    let fail = |e: ExportError| {
        ingress.telemetry.received(signal, protocol, 0);
        let e = ingress.refuse(signal, 0, e);
        error_response(&e, ingress, reply_format)
    };
    if let Err(e) = ingress.authorize(headers.get(header::AUTHORIZATION).map(|v| v.as_bytes())) {
        return fail(e);
    }
    let format = match format {
        Ok(f) => f,
        Err(e) => return fail(e),
    };
    let raw = match Limited::new(body, state.max_body_bytes).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => {
            return if e
                .downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                fail(ExportError::TooLarge {
                    size: state.max_body_bytes + 1,
                    limit: state.max_body_bytes,
                })
            } else if crate::ops::slow::is_body_timeout(&*e) {
                fail(ExportError::Timeout(e.to_string()))
            } else {
                fail(ExportError::Malformed(format!("reading the body: {e}")))
            };
        }
    };
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok());
    let decoded = match super::decompress(encoding, raw, ingress.max_decompressed_bytes) {
        Ok(b) => b,
        Err(e) => return fail(e),
    };
    let protobuf = match format {
        Format::Protobuf => decoded,
        Format::Json => match json_to_protobuf(signal, &decoded) {
            Ok(b) => b,
            Err(e) => return fail(e),
        },
    };
    match ingress.export(signal, protocol, protobuf) {
        Ok(accepted) => success_response(signal, &accepted, format),
        Err(e) => error_response(&e, ingress, reply_format),
    }
}

/// Converts an OTLP/JSON request to protobuf bytes (the forwarded form).
pub fn json_to_protobuf(signal: Signal, body: &[u8]) -> Result<Bytes, ExportError> {
    super::json::to_protobuf(signal, body)
}

fn success_response(signal: Signal, accepted: &Accepted, format: Format) -> Response {
    let partial = accepted.rejected > 0;
    let body = match (signal, format) {
        (Signal::Metrics, _) => {
            let r = metrics::ExportMetricsServiceResponse {
                partial_success: partial.then(|| metrics::ExportMetricsPartialSuccess {
                    rejected_data_points: accepted.rejected as i64,
                    error_message: accepted.message.clone(),
                }),
            };
            encode(&r, format)
        }
        (Signal::Traces, _) => encode(
            &trace::ExportTraceServiceResponse {
                partial_success: None,
            },
            format,
        ),
        (Signal::Logs, _) => encode(
            &logs::ExportLogsServiceResponse {
                partial_success: None,
            },
            format,
        ),
    };
    with_type(StatusCode::OK, body, format)
}

fn encode<M: Message + serde::Serialize>(m: &M, format: Format) -> Vec<u8> {
    match format {
        Format::Protobuf => m.encode_to_vec(),
        Format::Json => serde_json::to_vec(m).unwrap_or_else(|_| b"{}".to_vec()),
    }
}

fn with_type(status: StatusCode, body: Vec<u8>, format: Format) -> Response {
    let ct = match format {
        Format::Protobuf => "application/x-protobuf",
        Format::Json => "application/json",
    };
    (
        status,
        [(header::CONTENT_TYPE, HeaderValue::from_static(ct))],
        body,
    )
        .into_response()
}

/// Maps an [`ExportError`] to its HTTP status and `google.rpc.Status` body.
fn error_response(error: &ExportError, ingress: &Ingress, format: Format) -> Response {
    let (status, code) = match error {
        ExportError::Malformed(_) => (StatusCode::BAD_REQUEST, 3),
        ExportError::TooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, 8),
        ExportError::UnsupportedMediaType(_) => (StatusCode::UNSUPPORTED_MEDIA_TYPE, 3),
        ExportError::Unauthenticated => (StatusCode::UNAUTHORIZED, 16),
        ExportError::Timeout(_) => (StatusCode::REQUEST_TIMEOUT, 4),
        ExportError::QueueFull(_)
        | ExportError::ShuttingDown
        | ExportError::MemoryLimit
        | ExportError::Persistence => (StatusCode::SERVICE_UNAVAILABLE, 14),
    };
    let rpc = RpcStatus {
        code,
        message: error.to_string(),
    };
    let body = match format {
        Format::Protobuf => rpc.encode_to_vec(),
        Format::Json => {
            serde_json::to_vec(&serde_json::json!({ "code": rpc.code, "message": rpc.message }))
                .unwrap_or_default()
        }
    };
    let mut response = with_type(status, body, format);
    if error.retryable() {
        let secs = ingress.retry_after.as_secs().max(1);
        if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
    }
    if matches!(error, ExportError::Unauthenticated) {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    response
}
