//! leakwatch's own metrics, rendered in the Prometheus text format on the
//! admin listener's `/metrics`.
//!
//! Counters are plain atomics in fixed arrays indexed by small enums: the hot
//! path does one relaxed `fetch_add` per request (never per point) and takes
//! no lock. Gauges (queue depth, series tracked, RSS) are read when scraped.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::otlp::signal::{Protocol, Signal};

/// Why a whole request was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefusedReason {
    Malformed,
    TooLarge,
    UnsupportedMediaType,
    QueueFull,
    MemoryLimit,
    Unauthenticated,
    ShuttingDown,
    Persistence,
    Timeout,
}

impl RefusedReason {
    pub const ALL: [RefusedReason; 9] = [
        RefusedReason::Malformed,
        RefusedReason::TooLarge,
        RefusedReason::UnsupportedMediaType,
        RefusedReason::QueueFull,
        RefusedReason::MemoryLimit,
        RefusedReason::Unauthenticated,
        RefusedReason::ShuttingDown,
        RefusedReason::Persistence,
        RefusedReason::Timeout,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RefusedReason::Malformed => "malformed",
            RefusedReason::TooLarge => "too_large",
            RefusedReason::UnsupportedMediaType => "unsupported_media_type",
            RefusedReason::QueueFull => "queue_full",
            RefusedReason::MemoryLimit => "memory_limit",
            RefusedReason::Unauthenticated => "unauthenticated",
            RefusedReason::ShuttingDown => "shutting_down",
            RefusedReason::Persistence => "persistence",
            RefusedReason::Timeout => "timeout",
        }
    }
}

/// What happened to individual data points that were accepted but not used
/// as-is by detection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PointAnomaly {
    /// NaN or ±Inf value (or a point flagged "no recorded value").
    NonFinite,
    /// Older than the newest point of its series.
    OutOfOrder,
    /// Same timestamp as the newest point of its series.
    Duplicate,
    /// Counter reset or process restart.
    Reset,
    /// Refused because the series table is full (reported to the client).
    SeriesLimit,
    /// Missing timestamp, negative amount, or a value out of range.
    Invalid,
    /// Too far ahead of its series' previous point (a clock jump).
    TooFarAhead,
    /// Refused because memory is above the limiter's soft limit (reported to the client).
    MemoryLimit,
}

impl PointAnomaly {
    pub const ALL: [PointAnomaly; 8] = [
        PointAnomaly::NonFinite,
        PointAnomaly::OutOfOrder,
        PointAnomaly::Duplicate,
        PointAnomaly::Reset,
        PointAnomaly::SeriesLimit,
        PointAnomaly::Invalid,
        PointAnomaly::TooFarAhead,
        PointAnomaly::MemoryLimit,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PointAnomaly::NonFinite => "non_finite",
            PointAnomaly::OutOfOrder => "out_of_order",
            PointAnomaly::Duplicate => "duplicate",
            PointAnomaly::Reset => "reset",
            PointAnomaly::SeriesLimit => "series_limit",
            PointAnomaly::Invalid => "invalid",
            PointAnomaly::TooFarAhead => "too_far_ahead",
            PointAnomaly::MemoryLimit => "memory_limit",
        }
    }
}

/// How a forwarded request ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportOutcome {
    Delivered,
    Retried,
    /// The downstream refused it with a non-retryable status.
    FailedPermanent,
    /// Retries ran out (max elapsed time) or shutdown's grace period ended.
    Dropped,
}

impl ExportOutcome {
    pub const ALL: [ExportOutcome; 4] = [
        ExportOutcome::Delivered,
        ExportOutcome::Retried,
        ExportOutcome::FailedPermanent,
        ExportOutcome::Dropped,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ExportOutcome::Delivered => "delivered",
            ExportOutcome::Retried => "retried",
            ExportOutcome::FailedPermanent => "failed_permanent",
            ExportOutcome::Dropped => "dropped",
        }
    }
}

/// How restoring the detector checkpoint at start ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckpointRestore {
    Restored,
    /// No checkpoint file yet (a first start).
    Missing,
    /// Not a checkpoint, truncated, or a checksum mismatch.
    Corrupt,
    /// Written by another format version.
    Version,
    /// Written with other detector windows (bucket width).
    Incompatible,
    /// The file exists but cannot be read.
    Unreadable,
}

impl CheckpointRestore {
    pub const ALL: [CheckpointRestore; 6] = [
        CheckpointRestore::Restored,
        CheckpointRestore::Missing,
        CheckpointRestore::Corrupt,
        CheckpointRestore::Version,
        CheckpointRestore::Incompatible,
        CheckpointRestore::Unreadable,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CheckpointRestore::Restored => "restored",
            CheckpointRestore::Missing => "missing",
            CheckpointRestore::Corrupt => "corrupt",
            CheckpointRestore::Version => "version",
            CheckpointRestore::Incompatible => "incompatible",
            CheckpointRestore::Unreadable => "unreadable",
        }
    }
}

const NS: usize = 3; // signals
const NP: usize = 3; // protocols
const NR: usize = RefusedReason::ALL.len();
const NA: usize = PointAnomaly::ALL.len();
const NE: usize = ExportOutcome::ALL.len();

type Counter = AtomicU64;

fn add(c: &Counter, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

/// The notifier's outlets, each fed from its own bounded backlog.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutletKind {
    /// The structured log line on stderr.
    Log,
    /// OTLP log records sent downstream through the export queue.
    OtlpLogs,
    /// Alerts POSTed to Alertmanager.
    Alertmanager,
    /// Lifecycle events POSTed to a webhook.
    Webhook,
    /// Heap-dump endpoints called on confirmation.
    HeapDump,
}

impl OutletKind {
    pub const ALL: [OutletKind; 5] = [
        OutletKind::Log,
        OutletKind::OtlpLogs,
        OutletKind::Alertmanager,
        OutletKind::Webhook,
        OutletKind::HeapDump,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OutletKind::Log => "log",
            OutletKind::OtlpLogs => "otlp_logs",
            OutletKind::Alertmanager => "alertmanager",
            OutletKind::Webhook => "webhook",
            OutletKind::HeapDump => "heap_dump",
        }
    }
}

/// How one outbound notification request ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotifyOutcome {
    /// 2xx.
    Success,
    /// Not reached, timed out or 5xx / 429: retried.
    Error,
    /// Another 4xx: the receiver refuses it for good; not retried.
    Rejected,
}

impl NotifyOutcome {
    pub const ALL: [NotifyOutcome; 3] = [
        NotifyOutcome::Success,
        NotifyOutcome::Error,
        NotifyOutcome::Rejected,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            NotifyOutcome::Success => "success",
            NotifyOutcome::Error => "error",
            NotifyOutcome::Rejected => "rejected",
        }
    }

    /// The outcome of an HTTP response status.
    pub fn of_status(status: u16) -> NotifyOutcome {
        match status {
            200..=299 => NotifyOutcome::Success,
            429 | 500..=599 => NotifyOutcome::Error,
            _ => NotifyOutcome::Rejected,
        }
    }
}

/// The outlets that make outbound HTTP requests (the `sink` label).
const NOTIFY_SINKS: [OutletKind; 3] = [
    OutletKind::Alertmanager,
    OutletKind::Webhook,
    OutletKind::HeapDump,
];

/// All of leakwatch's counters.
#[derive(Default)]
pub struct Telemetry {
    requests: [[Counter; NP]; NS],
    items: [[Counter; NP]; NS],
    refused_requests: [[Counter; NR]; NS],
    refused_items: [[Counter; NR]; NS],
    point_anomalies: [Counter; NA],
    exports: [[Counter; NE]; NS],
    exported_bytes: [Counter; NS],
    exported_batches: [Counter; NS],
    downstream_rejected: [Counter; NS],
    series_created: Counter,
    series_evicted: Counter,
    leak_events: [Counter; 3],
    notify_dropped: [Counter; OutletKind::ALL.len()],
    notify_requests: [[Counter; NotifyOutcome::ALL.len()]; OutletKind::ALL.len()],
    persistent_replayed: Counter,
    persistent_truncated_bytes: Counter,
    checkpoint_writes: [Counter; 2],
    checkpoint_restores: [Counter; CheckpointRestore::ALL.len()],
}

/// Gauges read at scrape time.
#[derive(Debug, Default, Clone, Copy)]
pub struct Gauges {
    pub queue_requests: u64,
    pub queue_bytes: u64,
    pub queue_max_bytes: u64,
    pub series: u64,
    pub series_max: u64,
    pub resources: u64,
    pub incidents_suspected: u64,
    pub incidents_confirmed: u64,
    pub rss_bytes: Option<u64>,
    /// Bytes of the persistent export queue's files, when there is one.
    pub persistent_queue_bytes: Option<u64>,
    /// 0 normal, 1 above the soft limit, 2 above the hard limit.
    pub memory_pressure: u64,
}

impl Telemetry {
    pub fn new() -> Self {
        Self::default()
    }

    /// A request of `items` items arrived (counted before any check).
    pub fn received(&self, signal: Signal, protocol: Protocol, items: u64) {
        add(&self.requests[signal.index()][protocol.index()], 1);
        add(&self.items[signal.index()][protocol.index()], items);
    }

    /// A whole request was refused; `items` is its item count when known.
    pub fn refused(&self, signal: Signal, reason: RefusedReason, items: u64) {
        add(&self.refused_requests[signal.index()][reason as usize], 1);
        add(&self.refused_items[signal.index()][reason as usize], items);
    }

    pub fn point_anomaly(&self, anomaly: PointAnomaly, n: u64) {
        if n > 0 {
            add(&self.point_anomalies[anomaly as usize], n);
        }
    }

    pub fn point_anomalies(&self, anomaly: PointAnomaly) -> u64 {
        self.point_anomalies[anomaly as usize].load(Ordering::Relaxed)
    }

    pub fn export(&self, signal: Signal, outcome: ExportOutcome) {
        self.export_n(signal, outcome, 1);
    }

    /// `n` forwarded requests (of one merged export) ended with `outcome`.
    pub fn export_n(&self, signal: Signal, outcome: ExportOutcome, n: u64) {
        add(&self.exports[signal.index()][outcome as usize], n);
    }

    /// One export (one or more merged requests, `bytes` in all) was delivered.
    pub fn exported_batch(&self, signal: Signal, bytes: u64) {
        add(&self.exported_batches[signal.index()], 1);
        self.exported_bytes(signal, bytes);
    }

    pub fn exported_batches(&self, signal: Signal) -> u64 {
        self.exported_batches[signal.index()].load(Ordering::Relaxed)
    }

    /// Items the downstream reported rejected in an export's `partial_success`.
    pub fn downstream_rejected(&self, signal: Signal, items: u64) {
        add(&self.downstream_rejected[signal.index()], items);
    }

    pub fn downstream_rejected_items(&self, signal: Signal) -> u64 {
        self.downstream_rejected[signal.index()].load(Ordering::Relaxed)
    }

    pub fn exports(&self, signal: Signal, outcome: ExportOutcome) -> u64 {
        self.exports[signal.index()][outcome as usize].load(Ordering::Relaxed)
    }

    pub fn exported_bytes(&self, signal: Signal, n: u64) {
        add(&self.exported_bytes[signal.index()], n);
    }

    pub fn series_created(&self, n: u64) {
        if n > 0 {
            add(&self.series_created, n);
        }
    }

    pub fn series_evicted(&self, n: u64) {
        add(&self.series_evicted, n);
    }

    /// `kind`: 0 suspected, 1 confirmed, 2 resolved.
    /// A batch of leak events an outlet could not take: its backlog was full.
    pub fn notify_dropped(&self, outlet: OutletKind) {
        add(&self.notify_dropped[outlet as usize], 1);
    }

    /// One outbound request of a notification outlet.
    pub fn notify_request(&self, sink: OutletKind, outcome: NotifyOutcome) {
        add(&self.notify_requests[sink as usize][outcome as usize], 1);
    }

    pub fn notify_requests(&self, sink: OutletKind, outcome: NotifyOutcome) -> u64 {
        self.notify_requests[sink as usize][outcome as usize].load(Ordering::Relaxed)
    }

    pub fn notify_dropped_batches(&self, outlet: OutletKind) -> u64 {
        self.notify_dropped[outlet as usize].load(Ordering::Relaxed)
    }

    pub fn leak_event(&self, kind: usize) {
        if let Some(c) = self.leak_events.get(kind) {
            add(c, 1);
        }
    }

    /// The persistent queue was opened: `replayed` requests queued again, `truncated_bytes`
    /// cut off torn segment tails.
    pub fn persistent_queue_recovered(&self, replayed: u64, truncated_bytes: u64) {
        add(&self.persistent_replayed, replayed);
        add(&self.persistent_truncated_bytes, truncated_bytes);
    }

    pub fn persistent_replayed(&self) -> u64 {
        self.persistent_replayed.load(Ordering::Relaxed)
    }

    /// A checkpoint write finished (`ok`) or failed.
    pub fn checkpoint_written(&self, ok: bool) {
        add(&self.checkpoint_writes[usize::from(!ok)], 1);
    }

    pub fn checkpoint_writes(&self, ok: bool) -> u64 {
        self.checkpoint_writes[usize::from(!ok)].load(Ordering::Relaxed)
    }

    pub fn checkpoint_restore(&self, outcome: CheckpointRestore) {
        add(&self.checkpoint_restores[outcome as usize], 1);
    }

    pub fn checkpoint_restores(&self, outcome: CheckpointRestore) -> u64 {
        self.checkpoint_restores[outcome as usize].load(Ordering::Relaxed)
    }

    pub fn requests(&self, signal: Signal, protocol: Protocol) -> u64 {
        self.requests[signal.index()][protocol.index()].load(Ordering::Relaxed)
    }

    pub fn items(&self, signal: Signal, protocol: Protocol) -> u64 {
        self.items[signal.index()][protocol.index()].load(Ordering::Relaxed)
    }

    pub fn refused_requests(&self, signal: Signal, reason: RefusedReason) -> u64 {
        self.refused_requests[signal.index()][reason as usize].load(Ordering::Relaxed)
    }

    /// Renders everything in the Prometheus text exposition format.
    pub fn render(&self, gauges: &Gauges) -> String {
        let mut out = String::with_capacity(8 * 1024);
        let load = |c: &Counter| c.load(Ordering::Relaxed);

        header(
            &mut out,
            "leakwatch_receiver_requests_total",
            "counter",
            "Export requests received, by signal and protocol.",
        );
        for s in Signal::ALL {
            for p in Protocol::ALL {
                sample2(
                    &mut out,
                    "leakwatch_receiver_requests_total",
                    "signal",
                    s.as_str(),
                    "protocol",
                    p.as_str(),
                    load(&self.requests[s.index()][p.index()]),
                );
            }
        }
        header(
            &mut out,
            "leakwatch_receiver_items_total",
            "counter",
            "Items (data points, spans, log records) received, by signal and protocol.",
        );
        for s in Signal::ALL {
            for p in Protocol::ALL {
                sample2(
                    &mut out,
                    "leakwatch_receiver_items_total",
                    "signal",
                    s.as_str(),
                    "protocol",
                    p.as_str(),
                    load(&self.items[s.index()][p.index()]),
                );
            }
        }
        header(
            &mut out,
            "leakwatch_receiver_refused_requests_total",
            "counter",
            "Export requests refused as a whole, by signal and reason.",
        );
        for s in Signal::ALL {
            for r in RefusedReason::ALL {
                sample2(
                    &mut out,
                    "leakwatch_receiver_refused_requests_total",
                    "signal",
                    s.as_str(),
                    "reason",
                    r.as_str(),
                    load(&self.refused_requests[s.index()][r as usize]),
                );
            }
        }
        header(
            &mut out,
            "leakwatch_receiver_refused_items_total",
            "counter",
            "Items in refused requests, by signal and reason.",
        );
        for s in Signal::ALL {
            for r in RefusedReason::ALL {
                sample2(
                    &mut out,
                    "leakwatch_receiver_refused_items_total",
                    "signal",
                    s.as_str(),
                    "reason",
                    r.as_str(),
                    load(&self.refused_items[s.index()][r as usize]),
                );
            }
        }
        header(&mut out, "leakwatch_points_anomalies_total", "counter", "Data points of tracked series that were not used as-is: non-finite, out of order, duplicate, counter reset, refused at the series limit or the memory limiter's soft limit, invalid (no timestamp, negative, out of range), too far ahead.");
        for a in PointAnomaly::ALL {
            sample1(
                &mut out,
                "leakwatch_points_anomalies_total",
                "kind",
                a.as_str(),
                load(&self.point_anomalies[a as usize]),
            );
        }
        header(
            &mut out,
            "leakwatch_exporter_requests_total",
            "counter",
            "Forwarded requests (as received; several may share one export) by signal and outcome (retried counts each retry of each request).",
        );
        for s in Signal::ALL {
            for e in ExportOutcome::ALL {
                sample2(
                    &mut out,
                    "leakwatch_exporter_requests_total",
                    "signal",
                    s.as_str(),
                    "outcome",
                    e.as_str(),
                    load(&self.exports[s.index()][e as usize]),
                );
            }
        }
        header(
            &mut out,
            "leakwatch_exporter_sent_bytes_total",
            "counter",
            "Bytes delivered downstream, by signal.",
        );
        for s in Signal::ALL {
            sample1(
                &mut out,
                "leakwatch_exporter_sent_bytes_total",
                "signal",
                s.as_str(),
                load(&self.exported_bytes[s.index()]),
            );
        }
        header(
            &mut out,
            "leakwatch_exporter_exports_total",
            "counter",
            "Exports delivered downstream, by signal; each carries one or more merged requests.",
        );
        for s in Signal::ALL {
            sample1(
                &mut out,
                "leakwatch_exporter_exports_total",
                "signal",
                s.as_str(),
                load(&self.exported_batches[s.index()]),
            );
        }
        header(
            &mut out,
            "leakwatch_exporter_downstream_rejected_items_total",
            "counter",
            "Items the downstream accepted an export without (partial_success.rejected_*), by signal.",
        );
        for s in Signal::ALL {
            sample1(
                &mut out,
                "leakwatch_exporter_downstream_rejected_items_total",
                "signal",
                s.as_str(),
                load(&self.downstream_rejected[s.index()]),
            );
        }
        gauge(
            &mut out,
            "leakwatch_exporter_queue_requests",
            "Requests waiting in or being sent from the export queue.",
            gauges.queue_requests,
        );
        gauge(
            &mut out,
            "leakwatch_exporter_queue_bytes",
            "Bytes held by the export queue.",
            gauges.queue_bytes,
        );
        gauge(
            &mut out,
            "leakwatch_exporter_queue_capacity_bytes",
            "The export queue's byte bound.",
            gauges.queue_max_bytes,
        );
        if let Some(bytes) = gauges.persistent_queue_bytes {
            gauge(
                &mut out,
                "leakwatch_exporter_persistent_queue_bytes",
                "Bytes of the persistent export queue's segment files.",
                bytes,
            );
        }
        header(
            &mut out,
            "leakwatch_exporter_persistent_replayed_requests_total",
            "counter",
            "Requests read back from the persistent export queue at start and sent again.",
        );
        let _ = writeln!(
            out,
            "leakwatch_exporter_persistent_replayed_requests_total {}",
            load(&self.persistent_replayed)
        );
        header(
            &mut out,
            "leakwatch_exporter_persistent_truncated_bytes_total",
            "counter",
            "Bytes cut off torn or corrupt tails of persistent queue segments at start.",
        );
        let _ = writeln!(
            out,
            "leakwatch_exporter_persistent_truncated_bytes_total {}",
            load(&self.persistent_truncated_bytes)
        );
        header(
            &mut out,
            "leakwatch_checkpoint_writes_total",
            "counter",
            "Detector checkpoints written, by outcome.",
        );
        for (i, outcome) in ["ok", "failed"].iter().enumerate() {
            sample1(
                &mut out,
                "leakwatch_checkpoint_writes_total",
                "outcome",
                outcome,
                load(&self.checkpoint_writes[i]),
            );
        }
        header(
            &mut out,
            "leakwatch_checkpoint_restores_total",
            "counter",
            "Detector checkpoint restores at start, by outcome (corrupt, version, incompatible and unreadable start empty).",
        );
        for o in CheckpointRestore::ALL {
            sample1(
                &mut out,
                "leakwatch_checkpoint_restores_total",
                "outcome",
                o.as_str(),
                load(&self.checkpoint_restores[o as usize]),
            );
        }
        gauge(
            &mut out,
            "leakwatch_series",
            "Series tracked.",
            gauges.series,
        );
        gauge(
            &mut out,
            "leakwatch_series_limit",
            "The bound on series tracked.",
            gauges.series_max,
        );
        gauge(
            &mut out,
            "leakwatch_resources",
            "Resources (processes) tracked.",
            gauges.resources,
        );
        header(
            &mut out,
            "leakwatch_series_created_total",
            "counter",
            "Series created.",
        );
        let _ = writeln!(
            out,
            "leakwatch_series_created_total {}",
            load(&self.series_created)
        );
        header(
            &mut out,
            "leakwatch_series_evicted_total",
            "counter",
            "Series evicted after being idle (event time).",
        );
        let _ = writeln!(
            out,
            "leakwatch_series_evicted_total {}",
            load(&self.series_evicted)
        );
        header(
            &mut out,
            "leakwatch_leak_events_total",
            "counter",
            "Leak events emitted, by kind.",
        );
        for (i, kind) in ["suspected", "confirmed", "resolved"].iter().enumerate() {
            sample1(
                &mut out,
                "leakwatch_leak_events_total",
                "kind",
                kind,
                load(&self.leak_events[i]),
            );
        }
        header(
            &mut out,
            "leakwatch_notify_dropped_total",
            "counter",
            "Batches of leak events an outlet dropped because its backlog was full.",
        );
        for o in OutletKind::ALL {
            sample1(
                &mut out,
                "leakwatch_notify_dropped_total",
                "outlet",
                o.as_str(),
                load(&self.notify_dropped[o as usize]),
            );
        }
        header(
            &mut out,
            "leakwatch_notify_requests_total",
            "counter",
            "Outbound notification requests (Alertmanager, webhook, heap dumps) by outcome.",
        );
        for sink in NOTIFY_SINKS {
            for outcome in NotifyOutcome::ALL {
                sample2(
                    &mut out,
                    "leakwatch_notify_requests_total",
                    "sink",
                    sink.as_str(),
                    "outcome",
                    outcome.as_str(),
                    load(&self.notify_requests[sink as usize][outcome as usize]),
                );
            }
        }
        header(
            &mut out,
            "leakwatch_incidents",
            "gauge",
            "Open leak incidents by state.",
        );
        sample1(
            &mut out,
            "leakwatch_incidents",
            "state",
            "suspected",
            gauges.incidents_suspected,
        );
        sample1(
            &mut out,
            "leakwatch_incidents",
            "state",
            "confirmed",
            gauges.incidents_confirmed,
        );
        gauge(&mut out, "leakwatch_memory_limiter_pressure", "Memory limiter state: 0 normal, 1 above the soft limit (no new series), 2 above the limit (requests refused).", gauges.memory_pressure);
        if let Some(rss) = gauges.rss_bytes {
            gauge(
                &mut out,
                "leakwatch_process_resident_memory_bytes",
                "leakwatch's own resident set size.",
                rss,
            );
        }
        out
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn sample1(out: &mut String, name: &str, k: &str, v: &str, value: u64) {
    let _ = writeln!(out, "{name}{{{k}=\"{v}\"}} {value}");
}

#[allow(clippy::too_many_arguments)]
fn sample2(out: &mut String, name: &str, k1: &str, v1: &str, k2: &str, v2: &str, value: u64) {
    let _ = writeln!(out, "{name}{{{k1}=\"{v1}\",{k2}=\"{v2}\"}} {value}");
}

fn gauge(out: &mut String, name: &str, help: &str, value: u64) {
    header(out, name, "gauge", help);
    let _ = writeln!(out, "{name} {value}");
}

/// This process's resident set size, from `/proc/self/statm` (Linux).
pub fn own_rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let resident_pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(resident_pages * 4096)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_with_labels() {
        let t = Telemetry::new();
        t.received(Signal::Metrics, Protocol::Grpc, 40);
        t.refused(Signal::Logs, RefusedReason::QueueFull, 3);
        let text = t.render(&Gauges::default());
        assert!(text
            .contains("leakwatch_receiver_items_total{signal=\"metrics\",protocol=\"grpc\"} 40\n"));
        assert!(text.contains(
            "leakwatch_receiver_refused_requests_total{signal=\"logs\",reason=\"queue_full\"} 1\n"
        ));
        assert!(text.contains("# TYPE leakwatch_series gauge\n"));
    }
}
