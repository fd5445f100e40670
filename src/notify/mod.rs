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
//! `leak.incident_id` (the same on every event of one incident and in every
//! leakwatch fed the same data: [`identity::incident_id`]), `leak.metric`, `leak.signals` (array), `leak.growth_bytes_per_hour`,
//! `leak.r_squared`, `leak.window_seconds`, and `leak.time_to_limit_seconds`
//! / `leak.limit_bytes` when known, `leak.component` (what leaks) and `leak.next_step` when
//! known, `leak.resolution` (`flat` / `process_gone`) on resolved
//! events; the body is one human sentence.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::engine::EngineEvent;
use crate::ops::telemetry::{OutletKind, Telemetry};

pub mod alertmanager;
pub mod derived;
pub mod heap_dump;
pub mod identity;
pub mod log_line;
pub mod otlp_logs;
pub mod rules;
pub mod webhook;
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
    /// When the outlet wants to run without a batch (a resend, a retry): its
    /// own timer, on its own task. `None`: only batches wake it.
    fn wake_at(&self) -> Option<tokio::time::Instant> {
        None
    }
    /// Runs at [`Outlet::wake_at`].
    fn wake(&mut self) -> BoxFuture<'_, ()> {
        Box::pin(std::future::ready(()))
    }
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
        let wake_at = outlet.wake_at();
        let timer = async move {
            match wake_at {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            // A due timer first: a steady stream of batches must not starve resends.
            _ = timer => outlet.wake().await,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detector::{LeakEvent, LeakEventKind};
    use crate::engine::ResourceInfo;
    use tokio::sync::{mpsc::UnboundedSender, Semaphore};

    fn events(n: usize) -> Vec<EngineEvent> {
        let resource = Arc::new(ResourceInfo {
            key: 7,
            service_name: "checkout".into(),
            instance: "pod-1".into(),
            attributes: Vec::new(),
            pod: None,
        });
        (0..n)
            .map(|i| EngineEvent {
                resource: Arc::clone(&resource),
                event: LeakEvent {
                    kind: LeakEventKind::Suspected,
                    t_ns: i as u64,
                    incident_start_ns: i as u64,
                    metric: "v8js.memory.heap.used".into(),
                    signals: vec!["memory"],
                    growth_bytes_per_hour: 1e6,
                    r_squared: 0.9,
                    window_seconds: 3600.0,
                    time_to_limit_seconds: None,
                    limit_bytes: None,
                    resolution: None,
                    limit_source: None,
                    component: None,
                    next_step: None,
                },
            })
            .collect()
    }

    /// Records the first event time of every batch; waits for a permit first
    /// when it has a gate, and says when it has started a delivery.
    struct Probe {
        kind: OutletKind,
        seen: UnboundedSender<u64>,
        gate: Option<Arc<Semaphore>>,
    }

    impl Outlet for Probe {
        fn kind(&self) -> OutletKind {
            self.kind
        }
        fn deliver<'a>(&'a mut self, batch: &'a Batch) -> BoxFuture<'a, ()> {
            Box::pin(async move {
                let _ = self.seen.send(batch[0].event.t_ns);
                if let Some(gate) = &self.gate {
                    gate.acquire().await.expect("gate").forget();
                }
            })
        }
    }

    fn probe(
        kind: OutletKind,
        gate: Option<Arc<Semaphore>>,
    ) -> (Box<dyn Outlet>, mpsc::UnboundedReceiver<u64>) {
        let (seen, rx) = mpsc::unbounded_channel();
        (Box::new(Probe { kind, seen, gate }), rx)
    }

    fn batch_at(t: u64) -> Vec<EngineEvent> {
        let mut e = events(1);
        e[0].event.t_ns = t;
        e
    }

    #[tokio::test]
    async fn a_stuck_outlet_delays_nobody_and_drops_only_its_own_batches() {
        let telemetry = Arc::new(Telemetry::new());
        let gate = Arc::new(Semaphore::new(0));
        let (stuck, mut stuck_seen) = probe(OutletKind::OtlpLogs, Some(Arc::clone(&gate)));
        let (fine, mut fine_seen) = probe(OutletKind::Log, None);
        let (notifier, outlets) = Notifier::start(vec![stuck, fine], 2, Arc::clone(&telemetry));

        notifier.emit(batch_at(0));
        // The stuck outlet holds batch 0 in `deliver`; its backlog has room for two more.
        assert_eq!(stuck_seen.recv().await, Some(0));
        assert_eq!(fine_seen.recv().await, Some(0));
        for t in 1..=5 {
            notifier.emit(batch_at(t)); // returns at once although one outlet is stuck
            assert_eq!(
                fine_seen.recv().await,
                Some(t),
                "the other outlet gets every batch"
            );
        }
        assert_eq!(telemetry.notify_dropped_batches(OutletKind::OtlpLogs), 3);
        assert_eq!(telemetry.notify_dropped_batches(OutletKind::Log), 0);
        assert!(telemetry
            .render(&crate::ops::telemetry::Gauges::default())
            .contains("leakwatch_notify_dropped_total{outlet=\"otlp_logs\"} 3"));

        // Unstuck, it delivers what its backlog held, in order, and nothing else.
        gate.add_permits(10);
        outlets.drain(Duration::from_secs(5)).await;
        let mut rest = Vec::new();
        while let Ok(t) = stuck_seen.try_recv() {
            rest.push(t);
        }
        assert_eq!(rest, vec![1, 2]);
    }

    #[tokio::test]
    async fn draining_delivers_the_whole_backlog_and_counts_every_event() {
        let telemetry = Arc::new(Telemetry::new());
        let (outlet, mut seen) = probe(OutletKind::Log, None);
        let (notifier, outlets) = Notifier::start(vec![outlet], 64, Arc::clone(&telemetry));
        for t in 0..50 {
            notifier.emit(batch_at(t));
        }
        notifier.emit(Vec::new()); // nothing to say: nothing is sent
        outlets.drain(Duration::from_secs(5)).await;
        let mut got = Vec::new();
        while let Ok(t) = seen.try_recv() {
            got.push(t);
        }
        assert_eq!(got, (0..50).collect::<Vec<_>>());
        assert!(telemetry
            .render(&crate::ops::telemetry::Gauges::default())
            .contains("leakwatch_leak_events_total{kind=\"suspected\"} 50"));
    }

    #[tokio::test]
    async fn a_stuck_outlet_is_cut_off_at_the_grace_period() {
        let telemetry = Arc::new(Telemetry::new());
        let (stuck, mut seen) = probe(OutletKind::Log, Some(Arc::new(Semaphore::new(0))));
        let (notifier, outlets) = Notifier::start(vec![stuck], 4, telemetry);
        notifier.emit(events(1));
        assert_eq!(seen.recv().await, Some(0));
        let started = std::time::Instant::now();
        outlets.drain(Duration::from_millis(200)).await;
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
