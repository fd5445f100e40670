//! The persistent export queue: an append-only write-ahead log of the requests the export
//! queue accepted, so that what a client was told was accepted survives a restart or a crash.
//!
//! # Files
//! The log is a directory of *segments*, `<first seq, 20 digits>.wal`, each a run of records:
//!
//! ```text
//! magic u32 "LWQ1" | len u32 | crc32 u32 | signal u8 | seq u64 | len bytes: the request as received
//! ```
//!
//! (little-endian; the CRC-32 covers `len`, `signal`, `seq` and the bytes). Records are appended
//! to the newest segment until it holds `segment_bytes`; then it is fsync'd, sealed and a new one
//! is started. Next to a segment, `<id>.ack` lists the sequence numbers already done (delivered,
//! refused for good, or out of retries), 12 bytes each (`seq u64 | crc32 u32`). Acks are written
//! without fsync: losing one only means the request is sent again after a restart. A sealed
//! segment whose records are all done is deleted with its ack file.
//!
//! # Guarantees
//! - A request is appended (and with [`SyncMode::Always`] fsync'd) *before* `append` returns,
//!   i.e. before the client hears OK. Concurrent appends share one fsync (group commit): the
//!   first waiter syncs everything written so far, the others find their record already durable.
//! - At start, every record of every segment that is not in its ack file is handed back for
//!   delivery. A record delivered but not yet acked when the process died is sent again: at
//!   least once, as OTLP allows.
//! - A torn tail (a crash in the middle of a write) fails the length or CRC check: the segment is
//!   truncated at the last whole record and the start goes on.
//! - A failed write or fsync poisons the log: every later append fails (clients are told to
//!   retry) until a restart re-reads the files, because after a failed fsync Linux may have
//!   dropped the dirty pages and nothing written since can be trusted to be on disk.
//!
//! # One process per directory
//! `open` takes an exclusive lock on `<dir>/lock` (`File::try_lock`: `flock` on Linux) and holds it
//! until `close` (the end of the graceful shutdown) or the log is dropped; a second leakwatch on the same directory fails to start instead of
//! interleaving records with the first and replaying its requests. The lock is released by the
//! kernel when the process dies, so a crash never leaves a stale lock behind.
//!
//! Only `std::fs`; blocking calls are made by the callers' threads (see `ExportQueue::send`).

use std::collections::{BTreeMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use tracing::{debug, error, info, warn};

use crate::config::{PersistentQueueConfig, SyncMode};
use crate::otlp::signal::Signal;

/// "LWQ1" read as a little-endian u32.
const MAGIC: u32 = u32::from_le_bytes(*b"LWQ1");
/// Bytes before a record's payload.
pub const HEADER_BYTES: u64 = 21;
/// Bytes of one ack entry.
const ACK_BYTES: usize = 12;
const SEGMENT_EXT: &str = "wal";
const ACK_EXT: &str = "ack";
/// The lock file that keeps a second process out of the directory.
const LOCK_FILE: &str = "lock";

/// Errors of the write-ahead queue.
#[derive(Debug, thiserror::Error)]
pub enum WalError {
    #[error("persistent queue: {what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("persistent queue: disabled after an earlier write or fsync failure ({0}); restart leakwatch")]
    Poisoned(String),
    #[error("persistent queue: {} is in use by another process (it holds the lock on {}); give each leakwatch its own downstream.queue.persistent.dir", .dir.display(), .lock.display())]
    Locked { dir: PathBuf, lock: PathBuf },
}

/// Settings of a [`Wal`].
#[derive(Debug, Clone)]
pub struct WalOptions {
    pub dir: PathBuf,
    /// Bound on the bytes of all segment files.
    pub max_bytes: u64,
    pub sync: SyncMode,
    /// A segment is sealed once it holds this many bytes.
    pub segment_bytes: u64,
}

impl WalOptions {
    /// Segments of 1/16 of the bound (64 KiB to 64 MiB): small enough that a segment kept
    /// for one slow request wastes little of the bound, large enough that rotation is rare.
    pub fn from_config(cfg: &PersistentQueueConfig) -> Self {
        WalOptions {
            dir: cfg.dir.clone(),
            max_bytes: cfg.max_bytes,
            sync: cfg.sync,
            segment_bytes: (cfg.max_bytes / 16).clamp(64 * 1024, 64 * 1024 * 1024),
        }
    }
}

/// What opening the log found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Segment files found.
    pub segments: usize,
    /// Records found (whole, with a valid checksum).
    pub records: u64,
    /// Of those, records already done (in an ack file).
    pub acked: u64,
    /// Records handed back for delivery.
    pub replayed: u64,
    /// Bytes cut off torn or corrupt segment tails.
    pub truncated_bytes: u64,
    /// Segments whose tail was cut.
    pub truncated_segments: usize,
}

/// A request read back at start, to be delivered again.
pub struct Recovered {
    pub signal: Signal,
    pub body: Bytes,
    pub ticket: Ticket,
}

/// A record in the log; [`Ticket::complete`] marks it done. Dropping a ticket without
/// completing it leaves the record to be delivered again after a restart.
pub struct Ticket {
    wal: Arc<Wal>,
    segment: u64,
    seq: u64,
}

impl Ticket {
    /// The record was delivered, refused for good, or ran out of retries.
    pub fn complete(self) {
        self.wal.complete(self.segment, self.seq);
    }

    pub fn seq(&self) -> u64 {
        self.seq
    }
}

/// Room reserved in the log for one record; released on drop unless consumed by an append.
pub struct Reservation {
    wal: Arc<Wal>,
    bytes: u64,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.bytes > 0 {
            self.wal.disk_bytes.fetch_sub(self.bytes, Ordering::AcqRel);
            self.wal.pending.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

struct Segment {
    /// Records not yet done.
    pending: u64,
    /// Bytes of the segment file.
    bytes: u64,
    sealed: bool,
    /// The ack file, opened at the first ack.
    ack: Option<File>,
}

struct Active {
    id: u64,
    file: Arc<File>,
    len: u64,
}

struct Inner {
    active: Option<Active>,
    segments: BTreeMap<u64, Segment>,
    next_seq: u64,
    /// Highest sequence number written.
    written_seq: u64,
    buf: Vec<u8>,
}

/// The write-ahead log. Cheap to share (`Arc`).
pub struct Wal {
    opts: WalOptions,
    inner: Mutex<Inner>,
    /// Highest sequence number known to be on disk; held while fsyncing (group commit).
    durable: Mutex<u64>,
    /// Bytes of segment files plus reservations.
    disk_bytes: AtomicU64,
    /// Records appended and not done, plus reservations.
    pending: AtomicU64,
    poisoned: AtomicBool,
    poison_reason: Mutex<String>,
    /// `<dir>/lock`, locked exclusively until [`Wal::close`] (or the log is dropped).
    lock: Mutex<Option<File>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock cannot leave the log inconsistent on disk (the files
    // are the truth and are re-read at start); keep going with the in-memory state.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn io_err<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> WalError + 'a {
    move |source| WalError::Io {
        what,
        path: path.to_owned(),
        source,
    }
}

fn crc_of(parts: &[&[u8]]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    for p in parts {
        h.update(p);
    }
    h.finalize()
}

/// Encodes a record's header for `body` into `out`.
fn encode_header(out: &mut Vec<u8>, signal: Signal, seq: u64, body: &[u8]) {
    let len = (body.len() as u32).to_le_bytes();
    let sig = [signal.index() as u8];
    let seq_b = seq.to_le_bytes();
    let crc = crc_of(&[&len, &sig, &seq_b, body]);
    out.extend_from_slice(&MAGIC.to_le_bytes());
    out.extend_from_slice(&len);
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(&sig);
    out.extend_from_slice(&seq_b);
}

/// One record parsed from the front of `buf`: (signal, seq, payload, bytes used).
fn parse_record(buf: &[u8]) -> Result<(Signal, u64, &[u8], usize), &'static str> {
    let h = HEADER_BYTES as usize;
    if buf.len() < h {
        return Err("incomplete record header");
    }
    let word = |at: usize| u32::from_le_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]]);
    if word(0) != MAGIC {
        return Err("bad record magic");
    }
    let len = word(4) as usize;
    if len > buf.len() - h {
        return Err("incomplete record");
    }
    let body = &buf[h..h + len];
    if crc_of(&[&buf[4..8], &buf[12..h], body]) != word(8) {
        return Err("record checksum mismatch");
    }
    let signal = *Signal::ALL
        .get(usize::from(buf[12]))
        .ok_or("unknown signal in record")?;
    let mut seq = [0u8; 8];
    seq.copy_from_slice(&buf[13..21]);
    Ok((signal, u64::from_le_bytes(seq), body, h + len))
}

fn ack_entry(seq: u64) -> [u8; ACK_BYTES] {
    let s = seq.to_le_bytes();
    let crc = crc_of(&[&s]).to_le_bytes();
    let mut e = [0u8; ACK_BYTES];
    e[..8].copy_from_slice(&s);
    e[8..].copy_from_slice(&crc);
    e
}

/// Sequence numbers in an ack file; entries that fail their check (a torn last write) are
/// ignored, which only means their record is sent again.
fn read_acks(path: &Path) -> HashSet<u64> {
    let Ok(data) = fs::read(path) else {
        return HashSet::new();
    };
    data.chunks_exact(ACK_BYTES)
        .filter_map(|c| {
            let mut s = [0u8; 8];
            s.copy_from_slice(&c[..8]);
            let mut k = [0u8; 4];
            k.copy_from_slice(&c[8..]);
            (crc_of(&[&s]) == u32::from_le_bytes(k)).then(|| u64::from_le_bytes(s))
        })
        .collect()
}

fn segment_id(path: &Path, ext: &str) -> Option<u64> {
    (path.extension()? == ext)
        .then(|| path.file_stem()?.to_str()?.parse().ok())
        .flatten()
}

fn sync_dir(dir: &Path) -> Result<(), WalError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("syncing directory", dir))
}

impl Wal {
    fn segment_path(&self, id: u64, ext: &str) -> PathBuf {
        self.opts.dir.join(format!("{id:020}.{ext}"))
    }

    /// Opens (creating) the log in `opts.dir` and reads back every record not yet done.
    pub fn open(opts: WalOptions) -> Result<(Arc<Wal>, Vec<Recovered>, RecoveryReport), WalError> {
        let dir = opts.dir.clone();
        fs::create_dir_all(&dir).map_err(io_err("creating directory", &dir))?;
        let lock_path = dir.join(LOCK_FILE);
        let lock_file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io_err("opening", &lock_path))?;
        match lock_file.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                return Err(WalError::Locked {
                    dir: dir.clone(),
                    lock: lock_path,
                })
            }
            Err(fs::TryLockError::Error(e)) => return Err(io_err("locking", &lock_path)(e)),
        }
        let mut wal_ids = Vec::new();
        let mut ack_ids = Vec::new();
        for entry in fs::read_dir(&dir).map_err(io_err("listing", &dir))? {
            let path = entry.map_err(io_err("listing", &dir))?.path();
            if let Some(id) = segment_id(&path, SEGMENT_EXT) {
                wal_ids.push(id);
            } else if let Some(id) = segment_id(&path, ACK_EXT) {
                ack_ids.push(id);
            }
        }
        wal_ids.sort_unstable();
        let wal = Arc::new(Wal {
            inner: Mutex::new(Inner {
                active: None,
                segments: BTreeMap::new(),
                next_seq: 1,
                written_seq: 0,
                buf: Vec::new(),
            }),
            durable: Mutex::new(0),
            disk_bytes: AtomicU64::new(0),
            pending: AtomicU64::new(0),
            poisoned: AtomicBool::new(false),
            poison_reason: Mutex::new(String::new()),
            lock: Mutex::new(Some(lock_file)),
            opts,
        });
        // Ack files whose segment is gone (a crash between the two deletions).
        for id in ack_ids
            .iter()
            .filter(|id| wal_ids.binary_search(id).is_err())
        {
            let _ = fs::remove_file(wal.segment_path(*id, ACK_EXT));
        }
        let mut report = RecoveryReport {
            segments: wal_ids.len(),
            ..RecoveryReport::default()
        };
        let mut recovered = Vec::new();
        let mut next_seq = 1;
        let mut segments = BTreeMap::new();
        for id in wal_ids {
            let path = wal.segment_path(id, SEGMENT_EXT);
            let data = fs::read(&path).map_err(io_err("reading", &path))?;
            let acked = read_acks(&wal.segment_path(id, ACK_EXT));
            let mut at = 0;
            let mut pending = 0;
            while at < data.len() {
                match parse_record(&data[at..]) {
                    Ok((signal, seq, body, used)) => {
                        at += used;
                        report.records += 1;
                        next_seq = next_seq.max(seq + 1);
                        if acked.contains(&seq) {
                            report.acked += 1;
                            continue;
                        }
                        pending += 1;
                        recovered.push(Recovered {
                            signal,
                            body: Bytes::copy_from_slice(body),
                            ticket: Ticket {
                                wal: Arc::clone(&wal),
                                segment: id,
                                seq,
                            },
                        });
                    }
                    Err(reason) => {
                        let cut = (data.len() - at) as u64;
                        warn!(segment = %path.display(), offset = at, bytes = cut, reason, "Persistent queue: torn or corrupt segment tail; truncating it.");
                        report.truncated_bytes += cut;
                        report.truncated_segments += 1;
                        let truncated = OpenOptions::new()
                            .write(true)
                            .open(&path)
                            .and_then(|f| f.set_len(at as u64).and_then(|()| f.sync_all()));
                        if let Err(e) = truncated {
                            warn!(segment = %path.display(), error = %e, "Persistent queue: cannot truncate the segment; its valid records are still used.");
                        }
                        break;
                    }
                }
            }
            segments.insert(
                id,
                Segment {
                    pending,
                    bytes: at as u64,
                    sealed: true,
                    ack: None,
                },
            );
        }
        report.replayed = recovered.len() as u64;
        {
            let mut inner = lock(&wal.inner);
            inner.next_seq = next_seq;
            inner.written_seq = next_seq - 1;
            inner.segments = segments;
            let done: Vec<u64> = inner
                .segments
                .iter()
                .filter(|(_, s)| s.pending == 0)
                .map(|(id, _)| *id)
                .collect();
            for id in done {
                wal.delete_segment(&mut inner, id);
            }
            let bytes: u64 = inner.segments.values().map(|s| s.bytes).sum();
            wal.disk_bytes.store(bytes, Ordering::Release);
            wal.pending.store(report.replayed, Ordering::Release);
        }
        *lock(&wal.durable) = next_seq - 1;
        if report.segments > 0 {
            info!(
                dir = %dir.display(),
                segments = report.segments,
                records = report.records,
                acked = report.acked,
                replayed = report.replayed,
                truncated_bytes = report.truncated_bytes,
                "Persistent queue opened."
            );
        }
        Ok((wal, recovered, report))
    }

    /// Bytes the segment files hold, plus reservations.
    pub fn disk_bytes(&self) -> u64 {
        self.disk_bytes.load(Ordering::Relaxed)
    }

    /// Records appended and not yet done, plus reservations.
    pub fn pending(&self) -> u64 {
        self.pending.load(Ordering::Relaxed)
    }

    pub fn max_bytes(&self) -> u64 {
        self.opts.max_bytes
    }

    /// Whether [`Wal::append`] waits for an fsync (`sync: always`).
    pub fn syncs_on_append(&self) -> bool {
        self.opts.sync == SyncMode::Always
    }

    /// Reserves room for a record of `body_len` bytes, or `None` if the bound is reached.
    /// One record larger than the whole bound is let in when nothing else is pending, so a
    /// big request can never be stuck forever.
    pub fn reserve(self: &Arc<Self>, body_len: usize) -> Option<Reservation> {
        let need = HEADER_BYTES + body_len as u64;
        for attempt in 0..2 {
            let fits = self
                .disk_bytes
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |b| {
                    (b + need <= self.opts.max_bytes).then_some(b + need)
                })
                .is_ok();
            if fits {
                self.pending.fetch_add(1, Ordering::AcqRel);
                return Some(Reservation {
                    wal: Arc::clone(self),
                    bytes: need,
                });
            }
            if attempt == 0 && self.pending() == 0 {
                // Everything is done, but the active segment still holds the bytes of
                // delivered records: seal it (which deletes it) and try again.
                let mut inner = lock(&self.inner);
                self.seal_active(&mut inner);
            } else {
                break;
            }
        }
        let mut inner = lock(&self.inner);
        if self.pending() == 0 && inner.segments.is_empty() {
            drop(inner.active.take());
            self.pending.fetch_add(1, Ordering::AcqRel);
            self.disk_bytes.fetch_add(need, Ordering::AcqRel);
            return Some(Reservation {
                wal: Arc::clone(self),
                bytes: need,
            });
        }
        None
    }

    fn poison(&self, reason: &str) {
        if !self.poisoned.swap(true, Ordering::AcqRel) {
            error!(dir = %self.opts.dir.display(), reason, "Persistent queue failed; refusing requests until restart.");
            *lock(&self.poison_reason) = reason.to_owned();
        }
    }

    fn check_poison(&self) -> Result<(), WalError> {
        if self.poisoned.load(Ordering::Acquire) {
            return Err(WalError::Poisoned(lock(&self.poison_reason).clone()));
        }
        Ok(())
    }

    /// Seals the active segment (deleting it if every record in it is done).
    fn seal_active(&self, inner: &mut Inner) {
        let Some(active) = inner.active.take() else {
            return;
        };
        let done = match inner.segments.get_mut(&active.id) {
            Some(seg) => {
                seg.sealed = true;
                seg.pending == 0
            }
            None => false,
        };
        if done {
            self.delete_segment(inner, active.id);
        }
    }

    fn delete_segment(&self, inner: &mut Inner, id: u64) {
        if let Some(seg) = inner.segments.remove(&id) {
            drop(seg.ack);
            let wal_path = self.segment_path(id, SEGMENT_EXT);
            // The segment first: an ack file without its segment is cleaned up at start.
            if let Err(e) = fs::remove_file(&wal_path) {
                if e.kind() != io::ErrorKind::NotFound {
                    warn!(segment = %wal_path.display(), error = %e, "Persistent queue: cannot delete a finished segment.");
                }
            }
            let _ = fs::remove_file(self.segment_path(id, ACK_EXT));
            self.disk_bytes.fetch_sub(seg.bytes, Ordering::AcqRel);
            debug!(
                segment = id,
                bytes = seg.bytes,
                "Persistent queue segment deleted."
            );
        }
    }

    /// Starts a new segment whose first record will be `first_seq`.
    fn start_segment(&self, inner: &mut Inner, first_seq: u64) -> Result<(), WalError> {
        if let Some(old) = inner.active.as_ref() {
            // Everything in the old segment must be durable before writes go elsewhere:
            // later fsyncs (per request or the batch flusher's) only cover the new file.
            let path = self.segment_path(old.id, SEGMENT_EXT);
            old.file.sync_data().map_err(io_err("syncing", &path))?;
        }
        self.seal_active(inner);
        let path = self.segment_path(first_seq, SEGMENT_EXT);
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io_err("creating", &path))?;
        sync_dir(&self.opts.dir)?;
        inner.segments.insert(
            first_seq,
            Segment {
                pending: 0,
                bytes: 0,
                sealed: false,
                ack: None,
            },
        );
        inner.active = Some(Active {
            id: first_seq,
            file: Arc::new(file),
            len: 0,
        });
        Ok(())
    }

    /// Appends a record into room reserved before; returns once it is written (and, with
    /// `sync: always`, on disk).
    pub fn append(
        self: &Arc<Self>,
        mut reservation: Reservation,
        signal: Signal,
        body: &[u8],
    ) -> Result<Ticket, WalError> {
        self.check_poison()?;
        let need = HEADER_BYTES + body.len() as u64;
        let (segment, seq) = {
            let mut inner = lock(&self.inner);
            let seq = inner.next_seq;
            let rotate = match inner.active.as_ref() {
                None => true,
                Some(a) => a.len > 0 && a.len + need > self.opts.segment_bytes,
            };
            if rotate {
                if let Err(e) = self.start_segment(&mut inner, seq) {
                    self.poison(&e.to_string());
                    return Err(e);
                }
            }
            let mut buf = std::mem::take(&mut inner.buf);
            buf.clear();
            encode_header(&mut buf, signal, seq, body);
            buf.extend_from_slice(body);
            let Some(active) = inner.active.as_mut() else {
                return Err(WalError::Poisoned("no active segment".to_owned()));
            };
            let id = active.id;
            let written = (&*active.file).write_all(&buf);
            if buf.capacity() <= 1024 * 1024 {
                inner.buf = buf;
            }
            if let Err(e) = written {
                let e = io_err("writing", &self.segment_path(id, SEGMENT_EXT))(e);
                self.poison(&e.to_string());
                return Err(e);
            }
            if let Some(active) = inner.active.as_mut() {
                active.len += need;
            }
            inner.next_seq += 1;
            inner.written_seq = seq;
            if let Some(seg) = inner.segments.get_mut(&id) {
                seg.pending += 1;
                seg.bytes += need;
            }
            (id, seq)
        };
        // The reservation becomes the record: its bytes stay counted, now as file bytes.
        let reserved = std::mem::take(&mut reservation.bytes);
        if need != reserved {
            self.disk_bytes.fetch_add(need, Ordering::AcqRel);
            self.disk_bytes.fetch_sub(reserved, Ordering::AcqRel);
        }
        let ticket = Ticket {
            wal: Arc::clone(self),
            segment,
            seq,
        };
        if self.opts.sync == SyncMode::Always {
            self.sync_through(seq)?;
        }
        Ok(ticket)
    }

    /// Makes every record up to `seq` durable; concurrent callers share one fsync.
    fn sync_through(&self, seq: u64) -> Result<(), WalError> {
        let mut durable = lock(&self.durable);
        if *durable >= seq {
            return Ok(());
        }
        self.check_poison()?;
        let (file, id, upto) = {
            let inner = lock(&self.inner);
            match inner.active.as_ref() {
                Some(a) => (Arc::clone(&a.file), a.id, inner.written_seq),
                // Sealed since: sealing synced it.
                None => return Ok(()),
            }
        };
        if let Err(e) = file.sync_data() {
            let e = io_err("syncing", &self.segment_path(id, SEGMENT_EXT))(e);
            self.poison(&e.to_string());
            return Err(e);
        }
        *durable = upto;
        Ok(())
    }

    /// Syncs everything written so far (the `batch` mode's periodic flush, and shutdown).
    pub fn flush(&self) -> Result<(), WalError> {
        let upto = lock(&self.inner).written_seq;
        self.sync_through(upto)
    }

    /// Marks a record done; deletes its segment when it was the last one pending there.
    fn complete(&self, segment: u64, seq: u64) {
        let mut inner = lock(&self.inner);
        let ack_path = self.segment_path(segment, ACK_EXT);
        let Some(seg) = inner.segments.get_mut(&segment) else {
            return;
        };
        seg.pending = seg.pending.saturating_sub(1);
        self.pending.fetch_sub(1, Ordering::AcqRel);
        let done = seg.sealed && seg.pending == 0;
        if !done {
            if seg.ack.is_none() {
                seg.ack = OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&ack_path)
                    .map_err(|e| debug!(path = %ack_path.display(), error = %e, "Cannot open an ack file; the request may be sent again after a restart."))
                    .ok();
            }
            if let Some(f) = seg.ack.as_mut() {
                if let Err(e) = f.write_all(&ack_entry(seq)) {
                    debug!(path = %ack_path.display(), error = %e, "Cannot write an ack; the request may be sent again after a restart.");
                }
            }
            return;
        }
        self.delete_segment(&mut inner, segment);
    }

    /// At shutdown: syncs, seals the active segment (deleting it if it is done) and reports
    /// how many records are left for the next start.
    pub fn close(&self) -> u64 {
        if let Err(e) = self.flush() {
            warn!(error = %e, "Persistent queue: final fsync failed.");
        }
        let mut inner = lock(&self.inner);
        self.seal_active(&mut inner);
        let left = inner.segments.values().map(|s| s.pending).sum();
        // Closing the lock file releases the lock: the directory is free for the next start.
        lock(&self.lock).take();
        left
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct TempDir(PathBuf);
    impl TempDir {
        fn new(name: &str) -> TempDir {
            static N: AtomicU64 = AtomicU64::new(0);
            let n = N.fetch_add(1, Ordering::Relaxed);
            let p = std::env::temp_dir()
                .join(format!("leakwatch-wal-{}-{name}-{n}", std::process::id()));
            let _ = fs::remove_dir_all(&p);
            TempDir(p)
        }
    }
    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn opts(dir: &TempDir, max_bytes: u64, segment_bytes: u64) -> WalOptions {
        WalOptions {
            dir: dir.0.clone(),
            max_bytes,
            sync: SyncMode::Always,
            segment_bytes,
        }
    }

    fn put(wal: &Arc<Wal>, body: &[u8]) -> Ticket {
        let r = wal.reserve(body.len()).expect("room");
        wal.append(r, Signal::Logs, body).expect("append")
    }

    fn files(dir: &TempDir, ext: &str) -> Vec<u64> {
        let mut ids: Vec<u64> = fs::read_dir(&dir.0)
            .expect("dir")
            .filter_map(|e| segment_id(&e.expect("entry").path(), ext))
            .collect();
        ids.sort_unstable();
        ids
    }

    fn bodies(recovered: &[Recovered]) -> Vec<Vec<u8>> {
        recovered.iter().map(|r| r.body.to_vec()).collect()
    }

    #[test]
    fn a_second_open_of_the_same_directory_is_refused_until_close() {
        let dir = TempDir::new("lock");
        let (wal, _, _) = Wal::open(opts(&dir, 1 << 20, 1 << 16)).expect("open");
        let err = Wal::open(opts(&dir, 1 << 20, 1 << 16))
            .err()
            .expect("the directory is locked");
        assert!(matches!(err, WalError::Locked { .. }), "{err}");
        assert!(
            err.to_string().contains("in use by another process"),
            "{err}"
        );
        wal.close();
        let (again, _, _) = Wal::open(opts(&dir, 1 << 20, 1 << 16)).expect("free after close");
        drop(again);
        drop(wal);
        Wal::open(opts(&dir, 1 << 20, 1 << 16)).expect("free after drop");
    }

    #[test]
    fn records_survive_a_reopen_until_completed() {
        let dir = TempDir::new("reopen");
        {
            let (wal, rec, _) = Wal::open(opts(&dir, 1 << 20, 1 << 16)).expect("open");
            assert!(rec.is_empty());
            let a = put(&wal, b"first");
            let _b = put(&wal, b"second");
            a.complete();
            // Dropped without completing `_b`, as a crash would.
        }
        let (_wal, rec, report) = Wal::open(opts(&dir, 1 << 20, 1 << 16)).expect("reopen");
        assert_eq!(bodies(&rec), vec![b"second".to_vec()]);
        assert_eq!(rec[0].signal, Signal::Logs);
        assert_eq!((report.records, report.acked, report.replayed), (2, 1, 1));
    }

    #[test]
    fn torn_tail_is_truncated_and_earlier_records_kept() {
        let dir = TempDir::new("torn");
        {
            let (wal, _, _) = Wal::open(opts(&dir, 1 << 20, 1 << 16)).expect("open");
            put(&wal, b"whole record");
            put(&wal, b"this one will be torn");
        }
        let seg = dir
            .0
            .join(format!("{:020}.wal", files(&dir, SEGMENT_EXT)[0]));
        let len = fs::metadata(&seg).expect("meta").len();
        // Cut the second record in the middle of its payload, then add garbage.
        let f = OpenOptions::new().write(true).open(&seg).expect("open");
        f.set_len(len - 5).expect("truncate");
        drop(f);
        let (wal, rec, report) = Wal::open(opts(&dir, 1 << 20, 1 << 16)).expect("reopen");
        assert_eq!(bodies(&rec), vec![b"whole record".to_vec()]);
        assert_eq!(report.truncated_segments, 1);
        assert_eq!(
            fs::metadata(&seg).expect("meta").len(),
            HEADER_BYTES + 12,
            "the torn tail is cut off"
        );
        // The log keeps working after the cut.
        drop(rec);
        put(&wal, b"after");
        drop(wal);
        let (_w, rec, report) = Wal::open(opts(&dir, 1 << 20, 1 << 16)).expect("third open");
        assert_eq!(
            bodies(&rec),
            vec![b"whole record".to_vec(), b"after".to_vec()]
        );
        assert_eq!(report.truncated_segments, 0);
    }

    #[test]
    fn garbage_and_flipped_bits_are_detected_never_a_panic() {
        let dir = TempDir::new("garbage");
        {
            let (wal, _, _) = Wal::open(opts(&dir, 1 << 20, 1 << 16)).expect("open");
            put(&wal, b"good");
            put(&wal, b"flipped");
        }
        let seg = dir
            .0
            .join(format!("{:020}.wal", files(&dir, SEGMENT_EXT)[0]));
        let mut data = fs::read(&seg).expect("read");
        let last = data.len() - 1;
        data[last] ^= 0x40; // a bit flip in the second payload
        data.extend_from_slice(&[0xff; 40]); // and garbage after it
        fs::write(&seg, &data).expect("write");
        let (wal, rec, report) = Wal::open(opts(&dir, 1 << 20, 1 << 16)).expect("reopen");
        assert_eq!(bodies(&rec), vec![b"good".to_vec()]);
        assert_eq!(report.truncated_bytes, HEADER_BYTES + 7 + 40);
        drop((wal, rec)); // the directory's lock goes with the last reference
                          // A file of pure garbage (e.g. a half-created segment) is handled the same way.
        fs::write(dir.0.join(format!("{:020}.wal", 999_999)), [7u8; 3]).expect("write");
        fs::write(dir.0.join("not-a-segment.txt"), b"x").expect("write");
        let (_wal, rec, _) = Wal::open(opts(&dir, 1 << 20, 1 << 16)).expect("reopen");
        assert_eq!(bodies(&rec), vec![b"good".to_vec()]);
    }

    #[test]
    fn segments_rotate_and_are_deleted_once_done() {
        let dir = TempDir::new("rotate");
        let (wal, _, _) = Wal::open(opts(&dir, 1 << 20, 100)).expect("open");
        let body = [1u8; 40]; // 61 bytes with the header: one record per segment of 100
        let tickets: Vec<Ticket> = (0..4).map(|_| put(&wal, &body)).collect();
        assert_eq!(files(&dir, SEGMENT_EXT), vec![1, 2, 3, 4]);
        assert_eq!(wal.disk_bytes(), 4 * 61);
        let mut tickets = tickets.into_iter();
        let t1 = tickets.next().expect("t1");
        let t2 = tickets.next().expect("t2");
        let t3 = tickets.next().expect("t3");
        let t4 = tickets.next().expect("t4");
        t2.complete();
        assert_eq!(files(&dir, SEGMENT_EXT), vec![1, 3, 4], "sealed and done");
        t4.complete();
        assert_eq!(
            files(&dir, SEGMENT_EXT),
            vec![1, 3, 4],
            "the active segment stays"
        );
        assert_eq!(files(&dir, ACK_EXT), vec![4]);
        t1.complete();
        t3.complete();
        assert_eq!(files(&dir, SEGMENT_EXT), vec![4]);
        assert_eq!(wal.pending(), 0);
        assert_eq!(wal.close(), 0);
        assert!(files(&dir, SEGMENT_EXT).is_empty(), "closed and done");
        assert!(files(&dir, ACK_EXT).is_empty());
        assert_eq!(wal.disk_bytes(), 0);
    }

    #[test]
    fn several_records_share_a_segment_and_partial_acks_replay_the_rest() {
        let dir = TempDir::new("partial");
        {
            let (wal, _, _) = Wal::open(opts(&dir, 1 << 20, 1 << 16)).expect("open");
            let ts: Vec<Ticket> = (0..10u8).map(|i| put(&wal, &[i; 8])).collect();
            for t in ts.into_iter().step_by(2) {
                t.complete();
            }
            assert_eq!(files(&dir, SEGMENT_EXT).len(), 1);
        }
        let (_wal, rec, report) = Wal::open(opts(&dir, 1 << 20, 1 << 16)).expect("reopen");
        assert_eq!(
            bodies(&rec),
            (0..10u8)
                .filter(|i| i % 2 == 1)
                .map(|i| vec![i; 8])
                .collect::<Vec<_>>()
        );
        assert_eq!(report.acked, 5);
    }

    #[test]
    fn sequence_numbers_continue_after_a_reopen() {
        let dir = TempDir::new("seq");
        {
            let (wal, _, _) = Wal::open(opts(&dir, 1 << 20, 1 << 16)).expect("open");
            assert_eq!(put(&wal, b"a").seq(), 1);
            assert_eq!(put(&wal, b"b").seq(), 2);
        }
        let (wal, rec, _) = Wal::open(opts(&dir, 1 << 20, 1 << 16)).expect("reopen");
        assert_eq!(rec.len(), 2);
        assert_eq!(put(&wal, b"c").seq(), 3);
    }

    #[test]
    fn size_bound_refuses_then_frees_room() {
        let dir = TempDir::new("bound");
        let (wal, _, _) = Wal::open(opts(&dir, 300, 1000)).expect("open");
        let body = [0u8; 79]; // 100 bytes a record
        let t: Vec<Ticket> = (0..3).map(|_| put(&wal, &body)).collect();
        assert!(wal.reserve(body.len()).is_none(), "bound reached");
        let r = wal.reserve(0);
        assert!(r.is_none(), "even a header does not fit");
        // Reservations count too, and are released when dropped unused.
        for t in t {
            t.complete();
        }
        let r = wal
            .reserve(body.len())
            .expect("room once everything is done");
        assert_eq!(wal.disk_bytes(), 100, "the done segment was reclaimed");
        drop(r);
        assert_eq!((wal.disk_bytes(), wal.pending()), (0, 0));
    }

    #[test]
    fn one_oversized_record_fits_an_empty_log() {
        let dir = TempDir::new("oversized");
        let (wal, _, _) = Wal::open(opts(&dir, 100, 1000)).expect("open");
        let big = vec![9u8; 500];
        let t = put(&wal, &big);
        assert!(wal.reserve(1).is_none(), "nothing else while it is pending");
        t.complete();
        assert_eq!(wal.close(), 0);
    }

    #[test]
    fn ack_file_with_a_torn_entry_only_replays_more() {
        let dir = TempDir::new("acks");
        {
            let (wal, _, _) = Wal::open(opts(&dir, 1 << 20, 1 << 16)).expect("open");
            put(&wal, b"one").complete();
            put(&wal, b"two").complete();
            put(&wal, b"three");
        }
        let ack = dir
            .0
            .join(format!("{:020}.ack", files(&dir, SEGMENT_EXT)[0]));
        let mut data = fs::read(&ack).expect("ack");
        data.truncate(ACK_BYTES + 5); // the second ack torn
        fs::write(&ack, &data).expect("write");
        let (_wal, rec, _) = Wal::open(opts(&dir, 1 << 20, 1 << 16)).expect("reopen");
        assert_eq!(bodies(&rec), vec![b"two".to_vec(), b"three".to_vec()]);
    }

    #[test]
    fn concurrent_appends_are_all_durable_and_distinct() {
        let dir = TempDir::new("concurrent");
        let (wal, _, _) = Wal::open(opts(&dir, 64 << 20, 1 << 16)).expect("open");
        std::thread::scope(|s| {
            for t in 0..4u8 {
                let wal = Arc::clone(&wal);
                s.spawn(move || {
                    for i in 0..50u8 {
                        put(&wal, &[t, i]);
                    }
                });
            }
        });
        drop(wal);
        let (_wal, rec, _) = Wal::open(opts(&dir, 64 << 20, 1 << 16)).expect("reopen");
        let distinct: HashSet<Vec<u8>> = bodies(&rec).into_iter().collect();
        assert_eq!((rec.len(), distinct.len()), (200, 200));
    }
}
