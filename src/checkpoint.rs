//! Detector checkpoints: the detection state written to a file every `checkpoint.interval`
//! and at a graceful shutdown, and read back at start, so that a deploy does not throw away a
//! day of trend history.
//!
//! # Format
//! ```text
//! magic "LWCHKPT\0" | version u32 | flags u32 | body length u64 | crc32 of the body u32 | body
//! ```
//! (little-endian). The body is an [`EngineSnapshot`] in CBOR (`ciborium`), zstd-compressed
//! (flag bit 0). CBOR because the detector state holds non-finite floats (a perfect fit's t
//! statistic is +∞, an empty history high is −∞) that JSON cannot carry, and because it is
//! self-describing (a checkpoint can be inspected with any CBOR tool); zstd because its field
//! names repeat for every series and compress to almost nothing. [`VERSION`] changes whenever
//! the serialized detector state changes shape; a file of another version (or with flags
//! this build does not know) is skipped, not guessed at.
//!
//! # Atomicity
//! Written to `<path>.tmp`, fsync'd, renamed over `path`, and the directory fsync'd: a crash
//! at any point leaves the previous checkpoint or the new one, whole.
//!
//! # Failure
//! A missing file is a first start. A file that cannot be read, is truncated, fails its
//! checksum, has another version, or was written with other detector windows is logged with
//! the reason, counted (`leakwatch_checkpoint_restores_total{outcome}`), and leakwatch starts
//! empty: a checkpoint is an optimisation, never a reason not to start.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::engine::{Engine, EngineSnapshot, RestoreError, RestoreReport};
use crate::ops::telemetry::CheckpointRestore;

/// First bytes of every checkpoint file.
pub const MAGIC: [u8; 8] = *b"LWCHKPT\0";
/// The format version this build writes and reads. 3: the series detector state lost
/// `restart_t_ns` and `last_inc_secs` and gained `restarted`, and bucket counts are packed
/// 2 bits each (see `detector::series`, `detector::window`).
pub const VERSION: u32 = 3;
/// Bytes before the body.
pub const HEADER_BYTES: usize = 28;
/// Flag: the body is zstd-compressed.
const FLAG_ZSTD: u32 = 1;

/// Why a checkpoint could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("writing {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("not a leakwatch checkpoint (bad magic)")]
    NotACheckpoint,
    #[error("format version {found} (flags {flags:#x}); this leakwatch reads version {VERSION}")]
    Version { found: u32, flags: u32 },
    #[error("truncated: {have} bytes, the header announces {want}")]
    Truncated { have: u64, want: u64 },
    #[error("checksum mismatch")]
    Checksum,
    #[error("cannot decode the body: {0}")]
    Decode(String),
    #[error("cannot encode the state: {0}")]
    Encode(String),
    #[error(transparent)]
    Incompatible(#[from] RestoreError),
}

impl CheckpointError {
    /// How a restore that failed this way is counted.
    pub fn outcome(&self) -> CheckpointRestore {
        match self {
            CheckpointError::Read { .. } | CheckpointError::Write { .. } => {
                CheckpointRestore::Unreadable
            }
            CheckpointError::Version { .. } => CheckpointRestore::Version,
            CheckpointError::Incompatible(_) => CheckpointRestore::Incompatible,
            CheckpointError::NotACheckpoint
            | CheckpointError::Truncated { .. }
            | CheckpointError::Checksum
            | CheckpointError::Decode(_)
            | CheckpointError::Encode(_) => CheckpointRestore::Corrupt,
        }
    }
}

/// Encodes a snapshot as a whole checkpoint file (header and body).
pub fn encode(snapshot: &EngineSnapshot) -> Result<Vec<u8>, CheckpointError> {
    let mut out = Vec::with_capacity(HEADER_BYTES + 512 * snapshot.series.len() + 4096);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&FLAG_ZSTD.to_le_bytes());
    out.extend_from_slice(&[0u8; 12]); // length and checksum, filled in below
    let mut zstd = zstd::stream::Encoder::new(&mut out, 3)
        .map_err(|e| CheckpointError::Encode(e.to_string()))?;
    ciborium::into_writer(snapshot, &mut zstd)
        .map_err(|e| CheckpointError::Encode(e.to_string()))?;
    zstd.finish()
        .map_err(|e| CheckpointError::Encode(e.to_string()))?;
    let body_len = (out.len() - HEADER_BYTES) as u64;
    let crc = crc32fast::hash(&out[HEADER_BYTES..]);
    out[16..24].copy_from_slice(&body_len.to_le_bytes());
    out[24..28].copy_from_slice(&crc.to_le_bytes());
    Ok(out)
}

/// Decodes a whole checkpoint file; every way it can be wrong is an error, never a panic.
pub fn decode(data: &[u8]) -> Result<EngineSnapshot, CheckpointError> {
    if data.len() < MAGIC.len() || data[..MAGIC.len()] != MAGIC {
        return Err(CheckpointError::NotACheckpoint);
    }
    if data.len() < HEADER_BYTES {
        return Err(CheckpointError::Truncated {
            have: data.len() as u64,
            want: HEADER_BYTES as u64,
        });
    }
    let u32_at = |at: usize| {
        let mut b = [0u8; 4];
        b.copy_from_slice(&data[at..at + 4]);
        u32::from_le_bytes(b)
    };
    let (version, flags) = (u32_at(8), u32_at(12));
    if version != VERSION || flags & !FLAG_ZSTD != 0 {
        return Err(CheckpointError::Version {
            found: version,
            flags,
        });
    }
    let mut len = [0u8; 8];
    len.copy_from_slice(&data[16..24]);
    let body_len = u64::from_le_bytes(len);
    let have = (data.len() - HEADER_BYTES) as u64;
    if have != body_len {
        return Err(CheckpointError::Truncated {
            have: data.len() as u64,
            want: body_len.saturating_add(HEADER_BYTES as u64),
        });
    }
    let body = &data[HEADER_BYTES..];
    if crc32fast::hash(body) != u32_at(24) {
        return Err(CheckpointError::Checksum);
    }
    let decoded = if flags & FLAG_ZSTD != 0 {
        let zstd =
            zstd::stream::Decoder::new(body).map_err(|e| CheckpointError::Decode(e.to_string()))?;
        ciborium::from_reader(std::io::BufReader::new(zstd))
    } else {
        ciborium::from_reader(body)
    };
    decoded.map_err(|e| CheckpointError::Decode(e.to_string()))
}

/// Reads the checkpoint at `path`; `Ok(None)` when there is none.
pub fn read(path: &Path) -> Result<Option<EngineSnapshot>, CheckpointError> {
    match fs::read(path) {
        Ok(data) => decode(&data).map(Some),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(CheckpointError::Read {
            path: path.to_owned(),
            source,
        }),
    }
}

/// Writes `snapshot` to `path` atomically (temporary file, fsync, rename, fsync of the
/// directory). Returns the bytes written.
pub fn write(path: &Path, snapshot: &EngineSnapshot) -> Result<u64, CheckpointError> {
    let data = encode(snapshot)?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let err = |p: &Path| {
        let p = p.to_owned();
        move |source| CheckpointError::Write { path: p, source }
    };
    let mut file = File::create(&tmp).map_err(err(&tmp))?;
    file.write_all(&data).map_err(err(&tmp))?;
    file.sync_all().map_err(err(&tmp))?;
    drop(file);
    fs::rename(&tmp, path).map_err(err(path))?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(err(dir))?;
    Ok(data.len() as u64)
}

/// Writes and restores one engine's checkpoint, logging and counting each outcome.
pub struct Checkpointer {
    path: PathBuf,
    engine: Arc<Engine>,
    /// One write at a time (the periodic one and the one at shutdown share `<path>.tmp`).
    writing: Mutex<()>,
}

impl Checkpointer {
    pub fn new(path: PathBuf, engine: Arc<Engine>) -> Self {
        Checkpointer {
            path,
            engine,
            writing: Mutex::new(()),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Loads the checkpoint into the engine (blocking). Never fails: a bad checkpoint is
    /// logged with the reason and counted, and the engine stays empty.
    pub fn restore(&self) -> Result<RestoreReport, CheckpointError> {
        let telemetry = Arc::clone(self.engine.telemetry());
        let started = Instant::now();
        let result = read(&self.path).and_then(|snapshot| match snapshot {
            None => Ok(None),
            Some(s) => self.engine.restore(s).map(Some).map_err(Into::into),
        });
        match result {
            Ok(Some(report)) => {
                telemetry.checkpoint_restore(CheckpointRestore::Restored);
                info!(
                    path = %self.path.display(),
                    series = report.series,
                    resources = report.resources,
                    series_refused = report.series_refused,
                    watermark_unix_nano = self.engine.watermark_ns(),
                    millis = started.elapsed().as_millis() as u64,
                    "Detector state restored from the checkpoint."
                );
                Ok(report)
            }
            Ok(None) => {
                telemetry.checkpoint_restore(CheckpointRestore::Missing);
                info!(path = %self.path.display(), "No checkpoint yet; starting empty.");
                Ok(RestoreReport::default())
            }
            Err(e) => {
                telemetry.checkpoint_restore(e.outcome());
                warn!(path = %self.path.display(), outcome = e.outcome().as_str(), reason = %e, "Checkpoint skipped; starting empty.");
                Err(e)
            }
        }
    }

    /// Writes a checkpoint now (blocking); logs and counts the outcome.
    pub fn write_now(&self) -> Result<u64, CheckpointError> {
        let _one_at_a_time = self.writing.lock().unwrap_or_else(|e| e.into_inner());
        let started = Instant::now();
        let snapshot = self.engine.snapshot();
        let result = write(&self.path, &snapshot);
        let telemetry = self.engine.telemetry();
        match &result {
            Ok(bytes) => {
                telemetry.checkpoint_written(true);
                tracing::debug!(
                    path = %self.path.display(),
                    bytes,
                    series = snapshot.series.len(),
                    millis = started.elapsed().as_millis() as u64,
                    "Checkpoint written."
                );
            }
            Err(e) => {
                telemetry.checkpoint_written(false);
                warn!(path = %self.path.display(), error = %e, "Checkpoint not written.");
            }
        }
        result
    }

    /// [`Checkpointer::write_now`] on a blocking thread.
    pub async fn write(self: &Arc<Self>) -> Result<u64, CheckpointError> {
        let this = Arc::clone(self);
        match tokio::task::spawn_blocking(move || this.write_now()).await {
            Ok(r) => r,
            Err(e) => Err(CheckpointError::Encode(format!(
                "checkpoint task failed: {e}"
            ))),
        }
    }
}

/// Writes a checkpoint every `every` until `token` is cancelled (the final one, after the
/// receivers stop, is the server's).
pub async fn run(checkpointer: Arc<Checkpointer>, every: Duration, token: CancellationToken) {
    let mut ticks = crate::ops::periodic::Periodic::after_first_period(every, token);
    while ticks.tick().await {
        // Logged and counted inside.
        let _ = checkpointer.write().await;
    }
}
