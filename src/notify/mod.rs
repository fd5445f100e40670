//! The notify stage: hands leak-lifecycle transitions to every outlet — a
//! structured log line ([`log_line`]), OTLP log records sent downstream
//! through the export queue ([`otlp_logs`], the event contract below) — and
//! sends periodic derived metrics ([`derived`]).
//!
//! One fan-out: [`Notifier::emit`] runs on the request path and never waits.
//! It counts the events and offers the batch to each outlet's own bounded
//! backlog; a full backlog drops that batch for that outlet only, counted in
//! `leakwatch_notify_dropped_total{outlet}` and logged. Each outlet runs on
//! its own task, so a slow one (an HTTP call) delays nobody else. A new
//! outlet is one file implementing [`Outlet`].
//!
//! Event contract (other tools rely on it): resource = the leaking app's
//! resource with all its attributes; `event_name` and attribute `event.name`
//! = `memory.leak.{suspected,confirmed,resolved}`; severity WARN / ERROR /
//! INFO; `time_unix_nano` = the event time of the decision; attributes
//! `leak.metric`, `leak.signals` (array), `leak.growth_bytes_per_hour`,
//! `leak.r_squared`, `leak.window_seconds`, and `leak.time_to_limit_seconds`
//! / `leak.limit_bytes` when known; the body is one human sentence.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::engine::EngineEvent;
use crate::ops::telemetry::{OutletKind, Telemetry};

pub mod derived;
pub mod log_line;
pub mod otlp_logs;
pub mod words;

pub use derived::{derived_metrics, run_derived_metrics};
pub use otlp_logs::log_request;
pub use words::{human_bytes, human_duration, sentence};

/// The instrumentation scope of everything leakwatch emits.
const SCOPE: &str = "leakwatch";

/// Batches each outlet can hold before it drops new ones.
pub const BACKLOG: usize = 1024;

/// One request's (or one sweep's) leak events, shared by every outlet.
pub type Batch = Arc<[EngineEvent]>;

/// Somewhere leak events go. Runs on its own task, never on the request path,
/// so `deliver` may take its time (retries included); batches wait in its
/// bounded backlog meanwhile.
pub trait Outlet: Send + 'static {
    fn kind(&self) -> OutletKind;
    fn deliver<'a>(&'a mut self, batch: &'a Batch) -> BoxFuture<'a, ()>;
}

struct Feed {
    kind: OutletKind,
    tx: mpsc::Sender<Batch>,
}

/// The request path's handle on the notifier: cheap to clone, never blocks.
#[derive(Clone)]
pub struct Notifier {
    feeds: Arc<[Feed]>,
    telemetry: Arc<Telemetry>,
}

/// The outlets' tasks, owned by the notify stage.
pub struct Outlets {
    tasks: JoinSet<()>,
    stop: CancellationToken,
}

impl Notifier {
    /// A notifier without outlets: events are counted, nothing else (benches, fuzzing).
    pub fn counting(telemetry: Arc<Telemetry>) -> Notifier {
        Notifier {
            feeds: Arc::from(Vec::new()),
            telemetry,
        }
    }

    /// Starts one task per outlet, each reading its own backlog of `backlog` batches.
    pub fn start(
        outlets: Vec<Box<dyn Outlet>>,
        backlog: usize,
        telemetry: Arc<Telemetry>,
    ) -> (Notifier, Outlets) {
        let stop = CancellationToken::new();
        let mut tasks = JoinSet::new();
        let feeds: Vec<Feed> = outlets
            .into_iter()
            .map(|outlet| {
                let (tx, rx) = mpsc::channel(backlog.max(1));
                let kind = outlet.kind();
                tasks.spawn(run(outlet, rx, stop.clone()));
                Feed { kind, tx }
            })
            .collect();
        (
            Notifier {
                feeds: Arc::from(feeds),
                telemetry,
            },
            Outlets { tasks, stop },
        )
    }

    /// Counts `events` and offers them to every outlet without waiting.
    pub fn emit(&self, events: Vec<EngineEvent>) {
        if events.is_empty() {
            return;
        }
        for e in &events {
            self.telemetry.leak_event(e.event.kind as usize);
        }
        let batch: Batch = Arc::from(events);
        for feed in self.feeds.iter() {
            if let Err(e) = feed.tx.try_send(Arc::clone(&batch)) {
                self.telemetry.notify_dropped(feed.kind);
                let why = match e {
                    mpsc::error::TrySendError::Full(_) => "its backlog is full",
                    mpsc::error::TrySendError::Closed(_) => "it has stopped",
                };
                warn!(
                    outlet = feed.kind.as_str(),
                    events = batch.len(),
                    "Leak events dropped for this outlet: {why}."
                );
            }
        }
    }
}

impl Outlets {
    /// Lets every outlet deliver what its backlog holds, for at most `grace`;
    /// then stops them. Call after the receivers have stopped.
    pub async fn drain(mut self, grace: Duration) {
        self.stop.cancel();
        let all = async { while self.tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(grace, all).await.is_err() {
            warn!("Notification outlets did not finish within the grace period.");
            self.tasks.abort_all();
        }
    }
}

async fn run(mut outlet: Box<dyn Outlet>, mut rx: mpsc::Receiver<Batch>, stop: CancellationToken) {
    loop {
        tokio::select! {
            biased;
            batch = rx.recv() => match batch {
                Some(batch) => outlet.deliver(&batch).await,
                None => return,
            },
            _ = stop.cancelled() => break,
        }
    }
    // Stopping: what is already in the backlog is still delivered.
    rx.close();
    while let Some(batch) = rx.recv().await {
        outlet.deliver(&batch).await;
    }
}
