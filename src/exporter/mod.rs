//! The forward stage: a bounded in-memory queue and a pool of senders that
//! deliver every accepted request to the downstream collector over OTLP/gRPC.
//!
//! The queue is bounded in requests and in bytes. A receiver *reserves* room
//! before it accepts a request; when there is none the client is told to
//! retry (UNAVAILABLE with RetryInfo / HTTP 503 with Retry-After), so nothing
//! accepted is dropped for lack of room. Senders retry the retryable gRPC
//! codes of the OTLP specification with exponential backoff, honouring the
//! downstream's RetryInfo; permanent failures and retries that ran out are
//! logged and counted. On shutdown the queue is closed and drained within the
//! grace period; whatever is still queued then is counted as dropped.
//!
//! **Merged exports.** A sender that takes a request from the queue also takes the
//! requests of the same signal already queued behind it (up to `downstream.batch`:
//! bytes and count) and sends them as one export: the concatenation of their
//! encodings, which is the encoding of the merged `Export*ServiceRequest` (one
//! `repeated` field), so nothing is decoded or re-encoded and the data is unchanged.
//! It never waits for more: an idle sender sends what it finds at once. The requests of
//! a merged export are done together — delivered, retried and counted as a group — except
//! that a merged export the downstream refuses for good is sent again one request at a
//! time, so that one request the downstream cannot take does not take its neighbours
//! down with it. A request of another signal met while gathering is the sender's next
//! export.
//!
//! **Transport failures are retried.** An export that fails without a gRPC status from
//! the downstream (the connection was reset or closed, a GOAWAY, an HTTP/2 or I/O error)
//! may never have reached it; tonic reports those as INTERNAL or UNKNOWN, which the OTLP
//! table would make permanent, so they are retried like UNAVAILABLE. A request counts as
//! delivered only once the downstream's OK response has been received.
//!
//! With `downstream.queue.persistent` set, the queue is also written ahead to
//! disk ([`wal`]): `send` returns only once the request is in the log (fsync'd
//! with `sync: always`), a request is marked done there when it is delivered
//! or fails for good, and at start whatever is not done is queued again before
//! anything else. What is still queued at the end of the grace period is then
//! kept for the next start rather than dropped.

pub mod wal;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::uri::PathAndQuery;
use prost::Message;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tonic::codec::CompressionEncoding;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};
use tonic_types::StatusExt;
use tracing::{debug, info, warn};

use crate::config::{BatchConfig, Compression, DownstreamConfig, SyncMode};
use crate::ops::telemetry::{ExportOutcome, Telemetry};
use crate::otlp::codec::ConcatCodec;
use crate::otlp::proto::lean;
use crate::otlp::signal::Signal;
use wal::{Wal, WalError, WalOptions};

/// Errors building the exporter.
#[derive(Debug, thiserror::Error)]
pub enum ExporterError {
    #[error("invalid downstream endpoint {endpoint:?}: {source}")]
    Endpoint {
        endpoint: String,
        #[source]
        source: tonic::transport::Error,
    },
    #[error("downstream TLS: {0}")]
    Tls(String),
    #[error(transparent)]
    Persistent(#[from] WalError),
}

/// The queue is full (in requests or bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the export queue is full ({requests} requests, {bytes} bytes queued)")]
pub struct QueueFull {
    pub requests: usize,
    pub bytes: usize,
}

/// The queue has been closed for shutdown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("leakwatch is shutting down")]
pub struct QueueClosed;

/// Why [`ExportQueue::send`] failed; either way the client should retry.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error(transparent)]
    Closed(#[from] QueueClosed),
    /// The persistent queue could not write the request.
    #[error(transparent)]
    Persistent(#[from] WalError),
}

struct Usage {
    requests: AtomicUsize,
    bytes: AtomicUsize,
    max_requests: usize,
    max_bytes: usize,
}

/// Room reserved in the queue for one request; released when the request is
/// delivered, fails for good, or the slot is dropped unused.
pub struct Slot {
    usage: Arc<Usage>,
    bytes: usize,
    /// Room in the persistent queue, when there is one.
    disk: Option<wal::Reservation>,
}

impl Slot {
    /// Counts an item the bounds did not admit (one read back from the persistent queue at
    /// start: it was admitted before the restart).
    fn forced(usage: &Arc<Usage>, bytes: usize) -> Slot {
        usage.requests.fetch_add(1, Ordering::AcqRel);
        usage.bytes.fetch_add(bytes, Ordering::AcqRel);
        Slot {
            usage: Arc::clone(usage),
            bytes,
            disk: None,
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.usage.requests.fetch_sub(1, Ordering::AcqRel);
        self.usage.bytes.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

struct Item {
    signal: Signal,
    body: Bytes,
    _slot: Slot,
    /// The request's record in the persistent queue: completed when the request is done.
    ticket: Option<wal::Ticket>,
}

impl Item {
    /// The request is done (delivered, refused for good, or out of retries): the
    /// persistent queue no longer needs it.
    fn done(&mut self) {
        if let Some(t) = self.ticket.take() {
            t.complete();
        }
    }
}

/// The handle receivers use to enqueue requests.
#[derive(Clone)]
pub struct ExportQueue {
    tx: async_channel::Sender<Item>,
    usage: Arc<Usage>,
    wal: Option<Arc<Wal>>,
}

impl ExportQueue {
    /// Reserves room for a request of `bytes` bytes.
    pub fn reserve(&self, bytes: usize) -> Result<Slot, QueueFull> {
        let u = &self.usage;
        let full = || QueueFull {
            requests: u.requests.load(Ordering::Relaxed),
            bytes: u.bytes.load(Ordering::Relaxed),
        };
        u.requests
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < u.max_requests).then_some(n + 1)
            })
            .map_err(|_| full())?;
        let fits = u
            .bytes
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |b| {
                // One request larger than the whole bound is still let in when
                // the queue is empty, so a big request can never be stuck forever.
                (b == 0 || b + bytes <= u.max_bytes).then_some(b + bytes)
            });
        if fits.is_err() {
            u.requests.fetch_sub(1, Ordering::AcqRel);
            return Err(full());
        }
        let mut slot = Slot {
            usage: Arc::clone(&self.usage),
            bytes,
            disk: None,
        };
        if let Some(wal) = &self.wal {
            // Dropping `slot` gives the memory reservation back.
            slot.disk = Some(wal.reserve(bytes).ok_or_else(full)?);
        }
        Ok(slot)
    }

    /// Enqueues a request into room reserved before. With a persistent queue this writes
    /// the request to the log first and, with `sync: always`, waits for its fsync (shared
    /// with concurrent requests): it blocks the calling thread for that long, so that the
    /// client is acknowledged only once the request is on disk.
    pub fn send(&self, mut slot: Slot, signal: Signal, body: Bytes) -> Result<(), SendError> {
        if self.tx.is_closed() {
            return Err(QueueClosed.into());
        }
        let ticket = match &self.wal {
            None => None,
            Some(wal) => {
                let reservation = match slot.disk.take() {
                    Some(r) => r,
                    None => wal.reserve(body.len()).ok_or(QueueClosed)?,
                };
                let append = || wal.append(reservation, signal, &body);
                Some(if wal.syncs_on_append() {
                    outside_the_runtime(append)?
                } else {
                    append()?
                })
            }
        };
        // Should the queue close right now, the request is in the log and is sent after the
        // restart; the client, told to retry, may send it again: at least once.
        self.tx
            .try_send(Item {
                signal,
                body,
                _slot: slot,
                ticket,
            })
            .map_err(|_| QueueClosed.into())
    }

    /// Reserves and enqueues in one step (for leakwatch's own events).
    pub fn try_enqueue(&self, signal: Signal, body: Bytes) -> Result<(), EnqueueError> {
        let slot = self.reserve(body.len())?;
        self.send(slot, signal, body).map_err(|e| match e {
            SendError::Closed(c) => EnqueueError::Closed(c),
            SendError::Persistent(w) => EnqueueError::Persistent(w),
        })?;
        Ok(())
    }

    /// Bytes of the persistent queue's files (with reservations), when there is one.
    pub fn persistent_bytes(&self) -> Option<u64> {
        self.wal.as_ref().map(|w| w.disk_bytes())
    }

    /// Requests queued or in flight.
    pub fn requests(&self) -> usize {
        self.usage.requests.load(Ordering::Relaxed)
    }

    /// Bytes queued or in flight.
    pub fn bytes(&self) -> usize {
        self.usage.bytes.load(Ordering::Relaxed)
    }

    pub fn max_bytes(&self) -> usize {
        self.usage.max_bytes
    }
}

/// Why [`ExportQueue::try_enqueue`] failed.
#[derive(Debug, thiserror::Error)]
pub enum EnqueueError {
    #[error(transparent)]
    Full(#[from] QueueFull),
    #[error(transparent)]
    Closed(#[from] QueueClosed),
    #[error(transparent)]
    Persistent(#[from] WalError),
}

/// The running exporter: its queue handle and its senders.
pub struct Exporter {
    queue: ExportQueue,
    senders: JoinSet<()>,
    hard_stop: CancellationToken,
    /// The `sync: batch` flusher.
    flusher: Option<tokio::task::JoinHandle<()>>,
}

impl Exporter {
    /// Builds the channel to the downstream (connecting lazily) and starts
    /// `cfg.senders` sender tasks. With a persistent queue, opens it (blocking, std fs)
    /// and queues what it holds before anything else.
    pub fn start(
        cfg: &DownstreamConfig,
        endpoint: &str,
        telemetry: Arc<Telemetry>,
    ) -> Result<Self, ExporterError> {
        let channel = build_channel(cfg, endpoint)?;
        let (wal, recovered) = match &cfg.queue.persistent {
            Some(p) => {
                let (wal, recovered, report) = Wal::open(WalOptions::from_config(p))?;
                telemetry.persistent_queue_recovered(report.replayed, report.truncated_bytes);
                (Some(wal), recovered)
            }
            None => (None, Vec::new()),
        };
        // Room for what the log gives back: it was admitted before the restart, under the
        // same bounds unless they were lowered since.
        let (tx, rx) = async_channel::bounded(cfg.queue.max_requests.max(1) + recovered.len());
        let usage = Arc::new(Usage {
            requests: AtomicUsize::new(0),
            bytes: AtomicUsize::new(0),
            max_requests: cfg.queue.max_requests.max(1),
            max_bytes: cfg.queue.max_bytes.max(1),
        });
        if !recovered.is_empty() {
            info!(
                requests = recovered.len(),
                "Sending again what the persistent queue holds from before the restart."
            );
        }
        for r in recovered {
            let slot = Slot::forced(&usage, r.body.len());
            // Cannot fail: the channel has room for every recovered item and is open.
            let _ = tx.try_send(Item {
                signal: r.signal,
                body: r.body,
                _slot: slot,
                ticket: Some(r.ticket),
            });
        }
        let flusher = match (&wal, cfg.queue.persistent.as_ref().map(|p| p.sync)) {
            (Some(wal), Some(SyncMode::Batch)) => Some(tokio::spawn(run_flusher(Arc::clone(wal)))),
            _ => None,
        };
        let hard_stop = CancellationToken::new();
        let gather_turn = Arc::new(Semaphore::new(1));
        let mut senders = JoinSet::new();
        for _ in 0..cfg.senders.max(1) {
            let sender = Sender {
                client: tonic::client::Grpc::new(channel.clone()),
                batch: cfg.batch.clone(),
                gather_turn: Arc::clone(&gather_turn),
                compression: cfg.compression,
                timeout: cfg.timeout,
                retry: cfg.retry.clone(),
                telemetry: Arc::clone(&telemetry),
                hard_stop: hard_stop.clone(),
            };
            senders.spawn(sender.run(rx.clone()));
        }
        info!(
            endpoint,
            senders = cfg.senders.max(1),
            batch_max_bytes = cfg.batch.max_bytes,
            batch_max_requests = cfg.batch.max_requests,
            "Exporter started."
        );
        Ok(Exporter {
            queue: ExportQueue { tx, usage, wal },
            senders,
            hard_stop,
            flusher,
        })
    }

    pub fn queue(&self) -> ExportQueue {
        self.queue.clone()
    }

    /// Closes the queue and delivers what it holds within `grace`; what is
    /// left after that is counted as dropped, or, with a persistent queue, kept
    /// there for the next start. Returns the requests dropped.
    pub async fn shutdown(mut self, grace: Duration) -> usize {
        self.queue.tx.close();
        let drained = tokio::time::timeout(grace, async {
            while self.senders.join_next().await.is_some() {}
        })
        .await;
        let mut dropped = 0;
        if drained.is_err() {
            let left = self.queue.requests();
            if self.queue.wal.is_some() {
                warn!(
                    left,
                    grace_seconds = grace.as_secs_f64(),
                    "Grace period over; undelivered requests stay in the persistent queue."
                );
            } else {
                warn!(
                    left,
                    grace_seconds = grace.as_secs_f64(),
                    "Grace period over; dropping undelivered requests."
                );
                dropped = left;
            }
            self.hard_stop.cancel();
            while self.senders.join_next().await.is_some() {}
        } else {
            info!("Export queue drained.");
        }
        if let Some(f) = self.flusher.take() {
            f.abort();
        }
        if let Some(wal) = self.queue.wal.clone() {
            let kept = tokio::task::spawn_blocking(move || wal.close())
                .await
                .unwrap_or(0);
            if kept > 0 {
                info!(
                    requests = kept,
                    "Requests kept in the persistent queue for the next start."
                );
            }
        }
        dropped
    }
}

/// Runs `f`, which blocks (an fsync), so that on a multi-threaded runtime the worker's
/// other tasks move to another thread meanwhile: requests keep arriving and being
/// appended, and the next fsync covers them all (group commit) instead of the runtime
/// stalling for every fsync. Elsewhere (a current-thread runtime, tests) it just runs `f`.
fn outside_the_runtime<R>(f: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

/// `sync: batch`: fsyncs the persistent queue every 100 ms.
async fn run_flusher(wal: Arc<Wal>) {
    let mut ticker = tokio::time::interval(Duration::from_millis(100));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let wal = Arc::clone(&wal);
        match tokio::task::spawn_blocking(move || wal.flush()).await {
            Ok(Ok(())) => {}
            // Logged by the log itself when it fails; stop flushing a poisoned log.
            Ok(Err(_)) | Err(_) => return,
        }
    }
}

fn build_channel(cfg: &DownstreamConfig, endpoint: &str) -> Result<Channel, ExporterError> {
    let mut ep = Endpoint::from_shared(endpoint.to_owned())
        .map_err(|source| ExporterError::Endpoint {
            endpoint: endpoint.to_owned(),
            source,
        })?
        .connect_timeout(Duration::from_secs(5))
        .tcp_nodelay(true);
    if let Some(tls) = &cfg.tls {
        let mut tls_cfg = tonic::transport::ClientTlsConfig::new();
        if let Some(ca) = &tls.ca_file {
            let pem = std::fs::read(ca)
                .map_err(|e| ExporterError::Tls(format!("reading {}: {e}", ca.display())))?;
            tls_cfg = tls_cfg.ca_certificate(tonic::transport::Certificate::from_pem(pem));
        }
        if let (Some(cert), Some(key)) = (&tls.cert_file, &tls.key_file) {
            let cert = std::fs::read(cert)
                .map_err(|e| ExporterError::Tls(format!("reading {}: {e}", cert.display())))?;
            let key = std::fs::read(key)
                .map_err(|e| ExporterError::Tls(format!("reading {}: {e}", key.display())))?;
            tls_cfg = tls_cfg.identity(tonic::transport::Identity::from_pem(cert, key));
        }
        if let Some(name) = &tls.server_name {
            tls_cfg = tls_cfg.domain_name(name.clone());
        }
        ep = ep
            .tls_config(tls_cfg)
            .map_err(|source| ExporterError::Endpoint {
                endpoint: endpoint.to_owned(),
                source,
            })?;
    }
    Ok(ep.connect_lazy())
}

struct Sender {
    client: tonic::client::Grpc<Channel>,
    batch: BatchConfig,
    /// One permit: the sender holding it is the one taking requests from the queue (and
    /// lingering for more), so requests arriving meanwhile join its batch instead of being
    /// spread one by one over idle senders. Sending happens without it.
    gather_turn: Arc<Semaphore>,
    compression: Compression,
    timeout: Duration,
    retry: crate::config::RetryConfig,
    telemetry: Arc<Telemetry>,
    hard_stop: CancellationToken,
}

/// Queued requests of one signal, sent downstream as one export.
struct Batch {
    signal: Signal,
    items: Vec<Item>,
    bytes: usize,
}

impl Batch {
    fn new(first: Item) -> Batch {
        Batch {
            signal: first.signal,
            bytes: first.body.len(),
            items: vec![first],
        }
    }

    fn requests(&self) -> u64 {
        self.items.len() as u64
    }

    /// The export's message: the requests' encodings, in queue order, to be concatenated.
    fn parts(&self) -> Vec<Bytes> {
        self.items.iter().map(|i| i.body.clone()).collect()
    }

    /// Every request of the batch is done (the persistent queue no longer needs them).
    fn done(&mut self) {
        for item in &mut self.items {
            item.done();
        }
    }

    /// Requests lost if the batch is abandoned now: those a persistent queue does not keep.
    fn unkept(&self) -> u64 {
        self.items.iter().filter(|i| i.ticket.is_none()).count() as u64
    }
}

/// How one delivery attempt ended.
enum Attempt {
    Delivered,
    Retry(Option<Duration>, Status),
    Permanent(Status),
}

/// How delivering a batch ended, retries included.
enum Final {
    Delivered,
    Permanent(Status),
    /// Out of retries (or retries disabled).
    Exhausted(Status),
    /// The hard stop at the end of the shutdown grace period.
    Stopped,
}

impl Sender {
    async fn run(mut self, rx: async_channel::Receiver<Item>) {
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
    async fn gather(
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

    async fn deliver(&mut self, batch: Batch) {
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
    fn settle(&self, mut batch: Batch, outcome: Final) {
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
    async fn send(&mut self, batch: &Batch) -> Final {
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

    async fn attempt(&mut self, signal: Signal, requests: u64, parts: Vec<Bytes>) -> Attempt {
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
fn classify(status: Status) -> Attempt {
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
fn from_transport(status: &Status) -> bool {
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
fn jittered(d: Duration) -> Duration {
    d.mul_f64(0.8 + 0.4 * fastrand::f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue(
        max_requests: usize,
        max_bytes: usize,
    ) -> (ExportQueue, async_channel::Receiver<Item>) {
        let (tx, rx) = async_channel::bounded(max_requests);
        let usage = Arc::new(Usage {
            requests: AtomicUsize::new(0),
            bytes: AtomicUsize::new(0),
            max_requests,
            max_bytes,
        });
        (
            ExportQueue {
                tx,
                usage,
                wal: None,
            },
            rx,
        )
    }

    #[test]
    fn reserve_respects_byte_bound_and_releases_on_drop() {
        let (q, _rx) = queue(10, 100);
        let a = q.reserve(60).expect("room");
        assert!(q.reserve(60).is_err());
        drop(a);
        assert_eq!(q.bytes(), 0);
        assert!(q.reserve(60).is_ok());
    }

    #[test]
    fn reserve_respects_request_bound() {
        let (q, _rx) = queue(1, 1000);
        let _a = q.reserve(1).expect("room");
        assert_eq!(q.reserve(1).err().map(|e| e.requests), Some(1));
    }

    #[test]
    fn an_oversized_request_fits_an_empty_queue() {
        let (q, _rx) = queue(4, 10);
        assert!(q.reserve(50).is_ok());
    }

    #[test]
    fn slot_is_held_until_the_item_is_gone() {
        let (q, rx) = queue(4, 100);
        let slot = q.reserve(10).expect("room");
        q.send(slot, Signal::Logs, Bytes::from_static(b"0123456789"))
            .expect("open");
        assert_eq!(q.requests(), 1);
        let item = rx.try_recv().expect("queued");
        assert_eq!(q.requests(), 1);
        drop(item);
        assert_eq!((q.requests(), q.bytes()), (0, 0));
    }

    fn sender(batch: BatchConfig) -> Sender {
        let channel = Endpoint::from_static("http://127.0.0.1:1").connect_lazy();
        Sender {
            client: tonic::client::Grpc::new(channel),
            batch,
            gather_turn: Arc::new(Semaphore::new(1)),
            compression: Compression::None,
            timeout: Duration::from_secs(1),
            retry: crate::config::RetryConfig::default(),
            telemetry: Arc::new(Telemetry::new()),
            hard_stop: CancellationToken::new(),
        }
    }

    fn enqueue(q: &ExportQueue, signal: Signal, body: &'static [u8]) {
        let slot = q.reserve(body.len()).expect("room");
        q.send(slot, signal, Bytes::from_static(body))
            .expect("open");
    }

    #[tokio::test]
    async fn gathering_takes_what_is_queued_of_one_signal_within_the_bounds() {
        let (q, rx) = queue(100, 1 << 20);
        for body in [b"a1" as &[u8], b"a2", b"a3", b"a4"] {
            enqueue(&q, Signal::Logs, body);
        }
        enqueue(&q, Signal::Traces, b"t1");
        enqueue(&q, Signal::Logs, b"a5");
        let s = sender(BatchConfig {
            max_bytes: 1 << 20,
            max_requests: 3,
            linger: Duration::ZERO,
        });
        let mut next = None;
        {
            let first = rx.try_recv().expect("queued");
            // The count bound.
            let b = s.gather(first, &rx, &mut next, true).await;
            assert_eq!(b.parts(), vec![&b"a1"[..], b"a2", b"a3"]);
            assert_eq!((b.signal, b.bytes, b.requests()), (Signal::Logs, 6, 3));
            assert!(next.is_none());
            // Another signal ends the batch and starts the next one.
            let first = rx.try_recv().expect("queued");
            let b = s.gather(first, &rx, &mut next, true).await;
            assert_eq!(b.parts(), vec![&b"a4"[..]]);
            let b = s
                .gather(
                    next.take().expect("the traces request"),
                    &rx,
                    &mut next,
                    true,
                )
                .await;
            assert_eq!(b.signal, Signal::Traces);
            assert_eq!(b.parts(), vec![&b"t1"[..]]);
            let b = s
                .gather(
                    next.take().expect("the last logs request"),
                    &rx,
                    &mut next,
                    true,
                )
                .await;
            assert_eq!(b.parts(), vec![&b"a5"[..]]);
            assert!(next.is_none() && rx.is_empty());
        }
        // The byte bound: 2 + 2 fit in 5, the third does not.
        for body in [b"b1" as &[u8], b"b2", b"b3"] {
            enqueue(&q, Signal::Metrics, body);
        }
        let s = sender(BatchConfig {
            max_bytes: 5,
            max_requests: 100,
            linger: Duration::ZERO,
        });
        let b = s
            .gather(rx.try_recv().expect("queued"), &rx, &mut next, true)
            .await;
        assert_eq!(b.parts(), vec![&b"b1"[..], b"b2"]);
        assert_eq!(
            next.as_ref().map(|i| i.body.clone()),
            Some(Bytes::from_static(b"b3"))
        );
        // The queue's room is held until the batch and the carried request are gone.
        assert_eq!(q.requests(), 3);
        drop((b, next));
        assert_eq!((q.requests(), q.bytes()), (0, 0));
    }

    #[tokio::test(start_paused = true)]
    async fn gathering_lingers_for_requests_that_arrive_soon_after() {
        let (q, rx) = queue(100, 1 << 20);
        let s = sender(BatchConfig {
            max_bytes: 1 << 20,
            max_requests: 100,
            linger: Duration::from_millis(5),
        });
        enqueue(&q, Signal::Metrics, b"m1");
        let producer = {
            let q = q.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(2)).await;
                enqueue(&q, Signal::Metrics, b"m2");
                // After the linger: the next batch.
                tokio::time::sleep(Duration::from_millis(10)).await;
                enqueue(&q, Signal::Metrics, b"m3");
            })
        };
        let mut next = None;
        let started = Instant::now();
        let b = s
            .gather(rx.try_recv().expect("queued"), &rx, &mut next, true)
            .await;
        assert_eq!(b.parts(), vec![&b"m1"[..], b"m2"]);
        assert_eq!(started.elapsed(), Duration::from_millis(5));
        producer.await.expect("producer");
        let b = s
            .gather(rx.try_recv().expect("queued"), &rx, &mut next, true)
            .await;
        assert_eq!(b.parts(), vec![&b"m3"[..]]);
    }

    #[test]
    fn transport_failures_are_retried_whatever_code_tonic_gave_them() {
        // What tonic makes of a reset connection: UNKNOWN, with the I/O error as its source.
        let reset = Status::from_error(Box::new(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "connection reset by peer",
        )));
        assert_eq!(reset.code(), Code::Unknown);
        assert!(matches!(classify(reset), Attempt::Retry(None, _)));
        // The same codes sent by the downstream itself stay permanent.
        assert!(matches!(
            classify(Status::unknown("x")),
            Attempt::Permanent(_)
        ));
        assert!(matches!(
            classify(Status::internal("x")),
            Attempt::Permanent(_)
        ));
    }

    #[test]
    fn retry_rules_follow_the_otlp_spec() {
        assert!(matches!(
            classify(Status::unavailable("x")),
            Attempt::Retry(None, _)
        ));
        assert!(matches!(
            classify(Status::deadline_exceeded("x")),
            Attempt::Retry(..)
        ));
        assert!(matches!(
            classify(Status::invalid_argument("x")),
            Attempt::Permanent(_)
        ));
        assert!(matches!(
            classify(Status::internal("x")),
            Attempt::Permanent(_)
        ));
        assert!(matches!(
            classify(Status::resource_exhausted("x")),
            Attempt::Permanent(_)
        ));
        let with_hint = Status::with_error_details(
            Code::ResourceExhausted,
            "slow down",
            tonic_types::ErrorDetails::with_retry_info(Some(Duration::from_secs(2))),
        );
        assert!(
            matches!(classify(with_hint), Attempt::Retry(Some(d), _) if d == Duration::from_secs(2))
        );
    }
}
