//! The log-line outlet: one structured line per leak event on leakwatch's
//! own log (ERROR for confirmed, WARN for suspected, INFO for resolved).

use futures_util::future::BoxFuture;
use tracing::{error, info, warn};

use super::identity::incident_id;
use super::words::sentence;
use super::{Batch, Outlet};
use crate::detector::LeakEventKind;
use crate::ops::telemetry::OutletKind;

/// Writes each leak event as a structured log line.
pub struct LogLine;

impl Outlet for LogLine {
    fn kind(&self) -> OutletKind {
        OutletKind::Log
    }

    fn deliver<'a>(&'a mut self, batch: &'a Batch) -> BoxFuture<'a, ()> {
        for e in batch.iter() {
            let sentence = sentence(&e.resource, &e.event);
            let ev = &e.event;
            let incident = incident_id(&e.resource, ev.incident_start_ns);
            let fields = (
                ev.kind.event_name(),
                &e.resource.service_name,
                &e.resource.instance,
                &ev.metric,
            );
            match ev.kind {
                LeakEventKind::Confirmed => {
                    error!(event = fields.0, incident_id = %incident, service = %fields.1, instance = %fields.2, metric = %fields.3, growth_bytes_per_hour = ev.growth_bytes_per_hour, r_squared = ev.r_squared, signals = ?ev.signals, "{sentence}")
                }
                LeakEventKind::Suspected => {
                    warn!(event = fields.0, incident_id = %incident, service = %fields.1, instance = %fields.2, metric = %fields.3, growth_bytes_per_hour = ev.growth_bytes_per_hour, r_squared = ev.r_squared, signals = ?ev.signals, "{sentence}")
                }
                LeakEventKind::Resolved => {
                    info!(event = fields.0, incident_id = %incident, service = %fields.1, instance = %fields.2, metric = %fields.3, "{sentence}")
                }
            }
        }
        Box::pin(std::future::ready(()))
    }
}
