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

mod channel;
mod queue;
mod sender;
pub mod wal;

pub use queue::{EnqueueError, ExportQueue, QueueClosed, QueueFull, SendError, Slot};

use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::{DownstreamConfig, SyncMode};
use crate::ops::telemetry::Telemetry;
use channel::build_channel;
use queue::{Item, Usage};
use sender::Sender;
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
    Tls(#[from] crate::ops::tls::TlsError),
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

#[cfg(test)]
mod tests {
    use super::sender::*;
    use super::*;
    use crate::config::{BatchConfig, Compression};
    use crate::otlp::signal::Signal;
    use bytes::Bytes;
    use tokio::time::Instant;
    use tonic::transport::Endpoint;
    use tonic::{Code, Status};
    use tonic_types::StatusExt;

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
