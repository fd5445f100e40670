//! The export queue: bounded in requests and bytes. A receiver *reserves*
//! room ([`ExportQueue::reserve`]) before it accepts a request and enqueues
//! into it ([`ExportQueue::send`]), so nothing accepted is dropped for lack of
//! room; with a persistent queue, `send` writes the request ahead to disk
//! first.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;

use super::wal::{self, Wal, WalError};
use crate::otlp::signal::Signal;

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

pub(super) struct Usage {
    pub(super) requests: AtomicUsize,
    pub(super) bytes: AtomicUsize,
    pub(super) max_requests: usize,
    pub(super) max_bytes: usize,
}

/// Room reserved in the queue for one request; released when the request is
/// delivered, fails for good, or the slot is dropped unused.
pub struct Slot {
    pub(super) usage: Arc<Usage>,
    pub(super) bytes: usize,
    /// Room in the persistent queue, when there is one.
    pub(super) disk: Option<wal::Reservation>,
}

impl Slot {
    /// Counts an item the bounds did not admit (one read back from the persistent queue at
    /// start: it was admitted before the restart).
    pub(super) fn forced(usage: &Arc<Usage>, bytes: usize) -> Slot {
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

pub(super) struct Item {
    pub(super) signal: Signal,
    pub(super) body: Bytes,
    pub(super) _slot: Slot,
    /// The request's record in the persistent queue: completed when the request is done.
    pub(super) ticket: Option<wal::Ticket>,
}

impl Item {
    /// The request is done (delivered, refused for good, or out of retries): the
    /// persistent queue no longer needs it.
    pub(super) fn done(&mut self) {
        if let Some(t) = self.ticket.take() {
            t.complete();
        }
    }
}

/// The handle receivers use to enqueue requests.
#[derive(Clone)]
pub struct ExportQueue {
    pub(super) tx: async_channel::Sender<Item>,
    pub(super) usage: Arc<Usage>,
    pub(super) wal: Option<Arc<Wal>>,
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

/// Runs `f`, which blocks (an fsync), so that on a multi-threaded runtime the worker's
/// other tasks move to another thread meanwhile: requests keep arriving and being
/// appended, and the next fsync covers them all (group commit) instead of the runtime
/// stalling for every fsync. Elsewhere (a current-thread runtime, tests) it just runs `f`.
pub(super) fn outside_the_runtime<R>(f: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}
