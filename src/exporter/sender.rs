//! The senders: each takes a request from the queue together with the
//! requests of the same signal queued behind it (a merged export), sends them
//! downstream over OTLP/gRPC and retries what the OTLP specification calls
//! retryable, with exponential backoff and the downstream's RetryInfo.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::uri::PathAndQuery;
use prost::Message;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tonic::codec::CompressionEncoding;
use tonic::transport::Channel;
use tonic::{Code, Status};
use tonic_types::StatusExt;
use tracing::{debug, warn};

use super::queue::Item;
use crate::config::{BatchConfig, Compression};
use crate::ops::telemetry::{ExportOutcome, Telemetry};
use crate::otlp::codec::ConcatCodec;
use crate::otlp::proto::lean;
use crate::otlp::signal::Signal;

pub(super) struct Sender {
    pub(super) client: tonic::client::Grpc<Channel>,
    pub(super) batch: BatchConfig,
    /// One permit: the sender holding it is the one taking requests from the queue (and
    /// lingering for more), so requests arriving meanwhile join its batch instead of being
    /// spread one by one over idle senders. Sending happens without it.
    pub(super) gather_turn: Arc<Semaphore>,
    pub(super) compression: Compression,
    pub(super) timeout: Duration,
    pub(super) retry: crate::config::RetryConfig,
    pub(super) telemetry: Arc<Telemetry>,
    pub(super) hard_stop: CancellationToken,
}

/// Queued requests of one signal, sent downstream as one export.
pub(super) struct Batch {
    pub(super) signal: Signal,
    pub(super) items: Vec<Item>,
    pub(super) bytes: usize,
}

impl Batch {
    pub(super) fn new(first: Item) -> Batch {
        Batch {
            signal: first.signal,
            bytes: first.body.len(),
            items: vec![first],
        }
    }

    pub(super) fn requests(&self) -> u64 {
        self.items.len() as u64
    }

    /// The export's message: the requests' encodings, in queue order, to be concatenated.
    pub(super) fn parts(&self) -> Vec<Bytes> {
        self.items.iter().map(|i| i.body.clone()).collect()
    }

    /// Every request of the batch is done (the persistent queue no longer needs them).
    pub(super) fn done(&mut self) {
        for item in &mut self.items {
            item.done();
        }
    }

    /// Requests lost if the batch is abandoned now: those a persistent queue does not keep.
    pub(super) fn unkept(&self) -> u64 {
        self.items.iter().filter(|i| i.ticket.is_none()).count() as u64
    }
}

/// How one delivery attempt ended.
pub(super) enum Attempt {
    Delivered,
    Retry(Option<Duration>, Status),
    Permanent(Status),
}

/// How delivering a batch ended, retries included.
pub(super) enum Final {
    Delivered,
    Permanent(Status),
    /// Out of retries (or retries disabled).
    Exhausted(Status),
    /// The hard stop at the end of the shutdown grace period.
    Stopped,
}

impl Sender {
    pub(super) async fn run(mut self, rx: async_channel::Receiver<Item>) {
        // A request of another signal, or one that did not fit, met while gathering: the
        // first of the next batch.
        let mut next: Option<Item> = None;
        loop {
            let batch = match next.take() {
                // A request met while gathering the previous batch: it must not wait for the
                // turn, which an idle sender holds while it waits for work (that wait could
                // last until the next request arrives). It lingers only if the turn is free.
                Some(first) => {
                    let turn = self.gather_turn.try_acquire().ok();
                    self.gather(first, &rx, &mut next, turn.is_some()).await
                }
                None => {
                    let _turn = tokio::select! {
                        biased;
                        _ = self.hard_stop.cancelled() => break,
                        turn = self.gather_turn.acquire() => match turn {
                            Ok(turn) => turn,
                            Err(_) => break, // never closed
                        },
                    };
                    let first = tokio::select! {
                        biased;
                        _ = self.hard_stop.cancelled() => break,
                        item = rx.recv() => match item {
                            Ok(item) => item,
                            Err(_) => return, // closed and drained
                        },
                    };
                    self.gather(first, &rx, &mut next, true).await
                }
            };
            self.deliver(batch).await;
        }
        if let Some(item) = next.take() {
            if item.ticket.is_none() {
                self.telemetry.export(item.signal, ExportOutcome::Dropped);
            }
        }
        // Hard stop: count what is left (a persistent queue keeps it for the next start).
        while let Ok(item) = rx.try_recv() {
            if item.ticket.is_none() {
                self.telemetry.export(item.signal, ExportOutcome::Dropped);
            }
        }
    }

    /// Adds to `first` the requests of its signal queued behind it, within the batch bounds,
    /// waiting (if `linger`) up to the configured linger from now for more when the queue is
    /// empty. The first request that does not belong goes to `next`.
    pub(super) async fn gather(
        &self,
        first: Item,
        rx: &async_channel::Receiver<Item>,
        next: &mut Option<Item>,
        linger: bool,
    ) -> Batch {
        let linger = if linger {
            self.batch.linger
        } else {
            Duration::ZERO
        };
        let deadline = Instant::now() + linger;
        let mut batch = Batch::new(first);
        while batch.items.len() < self.batch.max_requests {
            let item = match rx.try_recv() {
                Ok(item) => item,
                Err(_) if linger.is_zero() => break,
                Err(_) => tokio::select! {
                    biased;
                    _ = self.hard_stop.cancelled() => break,
                    item = tokio::time::timeout_at(deadline, rx.recv()) => match item {
                        Ok(Ok(item)) => item,
                        // Lingered long enough, or the queue is closed and empty.
                        Ok(Err(_)) | Err(_) => break,
                    },
                },
            };
            if item.signal != batch.signal || batch.bytes + item.body.len() > self.batch.max_bytes {
                *next = Some(item);
                break;
            }
            batch.bytes += item.body.len();
            batch.items.push(item);
        }
        batch
    }

    pub(super) async fn deliver(&mut self, batch: Batch) {
        let outcome = self.send(&batch).await;
        match outcome {
            Final::Permanent(status) if batch.items.len() > 1 => {
                // The merge is not at fault (it is what the requests would be, one after the
                // other), but one request the downstream refuses must not take the others
                // down with it: send them again one by one, as they came.
                warn!(signal = batch.signal.as_str(), requests = batch.items.len(), code = ?status.code(), message = status.message(), "Downstream refused a merged export permanently; sending its requests one by one.");
                for item in batch.items {
                    let single = Batch::new(item);
                    let outcome = self.send(&single).await;
                    self.settle(single, outcome);
                }
            }
            outcome => self.settle(batch, outcome),
        }
    }

    /// Marks the batch's requests done and counts them, by how their delivery ended.
    pub(super) fn settle(&self, mut batch: Batch, outcome: Final) {
        let (signal, n) = (batch.signal, batch.requests());
        match outcome {
            Final::Delivered => {
                batch.done();
                self.telemetry.export_n(signal, ExportOutcome::Delivered, n);
                self.telemetry.exported_batch(signal, batch.bytes as u64);
            }
            Final::Permanent(status) => {
                warn!(signal = signal.as_str(), requests = n, code = ?status.code(), message = status.message(), "Downstream refused the request permanently; dropping it.");
                batch.done();
                self.telemetry
                    .export_n(signal, ExportOutcome::FailedPermanent, n);
            }
            Final::Exhausted(status) => {
                warn!(signal = signal.as_str(), requests = n, code = ?status.code(), message = status.message(), "Retries exhausted; dropping the request.");
                batch.done();
                self.telemetry.export_n(signal, ExportOutcome::Dropped, n);
            }
            Final::Stopped => {
                self.telemetry
                    .export_n(signal, ExportOutcome::Dropped, batch.unkept());
            }
        }
    }

    /// Sends the batch as one export, retrying with backoff until it is delivered, refused
    /// for good, out of retries, or the hard stop.
    pub(super) async fn send(&mut self, batch: &Batch) -> Final {
        let started = Instant::now();
        let mut backoff = self.retry.initial_interval;
        let hard_stop = self.hard_stop.clone();
        loop {
            let attempt = tokio::select! {
                biased;
                _ = hard_stop.cancelled() => return Final::Stopped,
                a = self.attempt(batch.signal, batch.requests(), batch.parts()) => a,
            };
            match attempt {
                Attempt::Delivered => return Final::Delivered,
                Attempt::Permanent(status) => return Final::Permanent(status),
                Attempt::Retry(hint, status) => {
                    let delay = hint
                        .unwrap_or_else(|| jittered(backoff))
                        .min(self.retry.max_interval.max(hint.unwrap_or_default()));
                    if !self.retry.enabled
                        || started.elapsed() + delay > self.retry.max_elapsed_time
                    {
                        return Final::Exhausted(status);
                    }
                    debug!(signal = batch.signal.as_str(), requests = batch.items.len(), code = ?status.code(), delay_ms = delay.as_millis() as u64, "Retrying export.");
                    self.telemetry
                        .export_n(batch.signal, ExportOutcome::Retried, batch.requests());
                    tokio::select! {
                        biased;
                        _ = hard_stop.cancelled() => return Final::Stopped,
                        _ = tokio::time::sleep(delay) => {}
                    }
                    backoff = (backoff.mul_f64(self.retry.multiplier)).min(self.retry.max_interval);
                }
            }
        }
    }

    pub(super) async fn attempt(
        &mut self,
        signal: Signal,
        requests: u64,
        parts: Vec<Bytes>,
    ) -> Attempt {
        let mut client = self.client.clone();
        client = match self.compression {
            Compression::None => client,
            Compression::Gzip => client.send_compressed(CompressionEncoding::Gzip),
            Compression::Zstd => client.send_compressed(CompressionEncoding::Zstd),
        };
        client = client
            .accept_compressed(CompressionEncoding::Gzip)
            .accept_compressed(CompressionEncoding::Zstd);
        let call = async {
            client
                .ready()
                .await
                .map_err(|e| Status::unavailable(format!("downstream not ready: {e}")))?;
            let mut request = tonic::Request::new(parts);
            request.set_timeout(self.timeout);
            client
                .unary::<Vec<Bytes>, Bytes, _>(
                    request,
                    PathAndQuery::from_static(signal.grpc_path()),
                    ConcatCodec,
                )
                .await
        };
        let result = match tokio::time::timeout(self.timeout, call).await {
            Ok(r) => r,
            Err(_) => Err(Status::deadline_exceeded("export timed out")),
        };
        match result {
            Ok(response) => {
                if let Ok(decoded) = lean::ExportResponse::decode(response.into_inner()) {
                    if let Some(ps) = decoded
                        .partial_success
                        .filter(|p| p.rejected > 0 || !p.error_message.is_empty())
                    {
                        warn!(signal = signal.as_str(), requests, rejected = ps.rejected, message = %ps.error_message, "Downstream accepted the export partially.");
                        self.telemetry
                            .downstream_rejected(signal, ps.rejected.max(0) as u64);
                    }
                }
                Attempt::Delivered
            }
            Err(status) => classify(status),
        }
    }
}

/// Sorts a failed export by the OTLP specification's retry rules. A failure of the
/// transport itself (no status from the downstream) is retryable whatever code tonic gave it.
pub(super) fn classify(status: Status) -> Attempt {
    if from_transport(&status) {
        return Attempt::Retry(None, status);
    }
    let hint = status.get_details_retry_info().and_then(|r| r.retry_delay);
    match status.code() {
        Code::Cancelled
        | Code::DeadlineExceeded
        | Code::Aborted
        | Code::OutOfRange
        | Code::Unavailable
        | Code::DataLoss => Attempt::Retry(hint, status),
        // Retryable only when the server says when to come back.
        Code::ResourceExhausted if hint.is_some() => Attempt::Retry(hint, status),
        _ => Attempt::Permanent(status),
    }
}

/// Whether tonic made `status` up from a connection failure (reset, closed, GOAWAY, an
/// HTTP/2 or I/O error) rather than receiving it from the downstream: statuses the downstream
/// sends carry no error source, those tonic derives from a transport error keep it. The
/// request may or may not have been processed; OTLP is at-least-once, so it is sent again.
pub(super) fn from_transport(status: &Status) -> bool {
    let mut source = std::error::Error::source(status);
    while let Some(e) = source {
        if e.is::<hyper::Error>() || e.is::<std::io::Error>() || e.is::<tonic::transport::Error>() {
            return true;
        }
        source = e.source();
    }
    false
}

/// ±20 % jitter so that senders that failed together do not retry together.
pub(super) fn jittered(d: Duration) -> Duration {
    d.mul_f64(0.8 + 0.4 * fastrand::f64())
}
