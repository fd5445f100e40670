//! The per-request pipeline, one path for every protocol: [`Ingress::export`]
//! takes the raw protobuf bytes of an `Export*ServiceRequest` from a front end
//! (`receiver::grpc`, `receiver::http`), decodes the checked view once,
//! reserves room in the export queue *before* accepting anything, runs
//! detection (`engine`), enqueues the original bytes (`exporter`) and hands
//! leak events to the notifier (`notify`), which never blocks. Each front end
//! has one function mapping [`ExportError`] to its status codes.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::auth::BearerToken;
use crate::engine::{Engine, IngestError};
use crate::exporter::{ExportQueue, QueueFull, SendError};
use crate::notify::Notifier;
use crate::ops::limiter::MemoryLimiter;
use crate::ops::telemetry::{RefusedReason, Telemetry};
use crate::otlp::signal::{Protocol, Signal};
use crate::otlp::view::MetricsRequest;

/// Why a request was refused as a whole.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("{0}")]
    Malformed(String),
    #[error("request of {size} bytes is larger than the limit of {limit} bytes")]
    TooLarge { size: usize, limit: usize },
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("leakwatch's export queue is full; retry later")]
    QueueFull(#[from] QueueFull),
    #[error("leakwatch is shutting down; retry later")]
    ShuttingDown,
    #[error("leakwatch is above its memory limit; retry later")]
    MemoryLimit,
    /// The persistent queue could not store the request (details are logged,
    /// not sent to the client).
    #[error("leakwatch cannot store the request durably; retry later")]
    Persistence,
    #[error("missing or invalid bearer token")]
    Unauthenticated,
    /// The client did not send its request within the read timeout.
    #[error("{0}")]
    Timeout(String),
}

impl ExportError {
    pub fn reason(&self) -> RefusedReason {
        match self {
            ExportError::Malformed(_) => RefusedReason::Malformed,
            ExportError::TooLarge { .. } => RefusedReason::TooLarge,
            ExportError::UnsupportedMediaType(_) => RefusedReason::UnsupportedMediaType,
            ExportError::QueueFull(_) => RefusedReason::QueueFull,
            ExportError::ShuttingDown => RefusedReason::ShuttingDown,
            ExportError::MemoryLimit => RefusedReason::MemoryLimit,
            ExportError::Persistence => RefusedReason::Persistence,
            ExportError::Unauthenticated => RefusedReason::Unauthenticated,
            ExportError::Timeout(_) => RefusedReason::Timeout,
        }
    }

    /// Whether the client should retry the same request later.
    pub fn retryable(&self) -> bool {
        matches!(
            self,
            ExportError::QueueFull(_) | ExportError::ShuttingDown | ExportError::MemoryLimit
        )
    }
}

/// A request accepted, maybe partially.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Accepted {
    /// Items refused (only data points, at the series limit).
    pub rejected: u64,
    /// Why, when `rejected > 0`.
    pub message: String,
}

/// State shared by both front ends.
pub struct Ingress {
    pub engine: Arc<Engine>,
    /// `None` when no downstream is configured: data is tracked and counted.
    pub queue: Option<ExportQueue>,
    pub events: Notifier,
    pub telemetry: Arc<Telemetry>,
    /// The bearer token clients must present, if any.
    pub token: Option<Arc<BearerToken>>,
    /// Largest decompressed body.
    pub max_decompressed_bytes: usize,
    /// What clients are told to wait before retrying.
    pub retry_after: Duration,
    /// Refuses requests while memory is above the hard limit.
    pub limiter: Arc<MemoryLimiter>,
}

impl Ingress {
    /// Checks an `Authorization` header value against the configured token.
    pub fn authorize(&self, header: Option<&[u8]>) -> Result<(), ExportError> {
        match &self.token {
            Some(token) if !token.admits(header) => Err(ExportError::Unauthenticated),
            _ => Ok(()),
        }
    }

    /// The protocol-independent export path. `body` is a protobuf
    /// `Export{Metrics,Trace,Logs}ServiceRequest`.
    pub fn export(
        &self,
        signal: Signal,
        protocol: Protocol,
        body: Bytes,
    ) -> Result<Accepted, ExportError> {
        if !self.limiter.admits_requests() {
            self.telemetry.received(signal, protocol, 0);
            return Err(self.refuse(signal, 0, ExportError::MemoryLimit));
        }
        match signal {
            Signal::Metrics => self.export_metrics(protocol, body),
            Signal::Traces | Signal::Logs => self.export_passthrough(signal, protocol, body),
        }
    }

    fn export_metrics(&self, protocol: Protocol, body: Bytes) -> Result<Accepted, ExportError> {
        let request = match MetricsRequest::decode(body.clone()) {
            Ok(r) => r,
            Err(e) => {
                self.telemetry.received(Signal::Metrics, protocol, 0);
                return Err(self.refuse(
                    Signal::Metrics,
                    0,
                    ExportError::Malformed(format!("invalid ExportMetricsServiceRequest: {e}")),
                ));
            }
        };
        let points = request.points();
        self.telemetry.received(Signal::Metrics, protocol, points);
        let slot = match &self.queue {
            Some(q) => Some(
                q.reserve(body.len())
                    .map_err(|e| self.refuse(Signal::Metrics, points, e.into()))?,
            ),
            None => None,
        };
        let outcome = match self.engine.ingest(&request) {
            Ok(o) => o,
            Err(e @ IngestError::InvalidMetricName { .. }) | Err(e @ IngestError::Decode(_)) => {
                return Err(self.refuse(
                    Signal::Metrics,
                    points,
                    ExportError::Malformed(e.to_string()),
                ));
            }
        };
        drop(request);
        let rejected = outcome.rejected.len() as u64;
        if let (Some(queue), Some(slot)) = (&self.queue, slot) {
            let forward = if rejected == 0 {
                body
            } else {
                // Forward exactly what the client was told was accepted. The
                // full decode is stricter than the lean one (e.g. nesting
                // depth); a request it refuses is refused as a whole.
                crate::otlp::edit::without_points(&body, &outcome.rejected).map_err(|e| {
                    self.refuse(
                        Signal::Metrics,
                        points,
                        ExportError::Malformed(format!("invalid ExportMetricsServiceRequest: {e}")),
                    )
                })?
            };
            if forward.is_empty() && rejected > 0 {
                // Nothing left to forward.
            } else if let Err(e) = queue.send(slot, Signal::Metrics, forward) {
                return Err(self.refuse(Signal::Metrics, points, send_error(e)));
            }
        }
        self.events.emit(outcome.events);
        Ok(if rejected == 0 {
            Accepted::default()
        } else {
            Accepted {
                rejected,
                message: if outcome.rejected_for_memory {
                    format!("{rejected} data points of new series refused: leakwatch is above its memory soft limit")
                } else {
                    format!(
                        "{rejected} data points refused: leakwatch tracks at most {} series (series.max_series)",
                        self.engine.config().max_series
                    )
                },
            }
        })
    }

    fn export_passthrough(
        &self,
        signal: Signal,
        protocol: Protocol,
        body: Bytes,
    ) -> Result<Accepted, ExportError> {
        let items = match crate::otlp::count::count_items(signal, body.clone()) {
            Ok(n) => n,
            Err(e) => {
                self.telemetry.received(signal, protocol, 0);
                return Err(self.refuse(
                    signal,
                    0,
                    ExportError::Malformed(format!(
                        "invalid Export{}ServiceRequest: {e}",
                        if signal == Signal::Traces {
                            "Trace"
                        } else {
                            "Logs"
                        }
                    )),
                ));
            }
        };
        self.telemetry.received(signal, protocol, items);
        if let Some(queue) = &self.queue {
            let slot = queue
                .reserve(body.len())
                .map_err(|e| self.refuse(signal, items, e.into()))?;
            queue
                .send(slot, signal, body)
                .map_err(|e| self.refuse(signal, items, send_error(e)))?;
        }
        Ok(Accepted::default())
    }

    /// Counts a refusal and hands the error back.
    pub fn refuse(&self, signal: Signal, items: u64, error: ExportError) -> ExportError {
        self.telemetry.refused(signal, error.reason(), items);
        tracing::debug!(signal = signal.as_str(), reason = error.reason().as_str(), error = %error, "Request refused.");
        error
    }
}

fn send_error(e: SendError) -> ExportError {
    match e {
        SendError::Closed(_) => ExportError::ShuttingDown,
        SendError::Persistent(e) => {
            tracing::error!(error = %e, "Persistent queue write failed; refusing requests (retryable).");
            ExportError::Persistence
        }
    }
}
