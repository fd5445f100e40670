//! What `leakwatch analyze` prints: one verdict per process, as a table for people or as JSON
//! for machines, worded like the server's leak events ([`crate::notify`]).

use std::time::{Duration, UNIX_EPOCH};

use serde::Serialize;

use crate::detector::{LeakEvent, LeakEventKind, LeakState, ResourceSummary};
use crate::engine::ResourceInfo;
use crate::notify::{human_bytes, human_duration, sentence};

/// One process's verdict.
#[derive(Clone, Debug, Serialize)]
pub struct Verdict {
    /// `service (instance)`.
    pub process: String,
    pub service_name: String,
    pub instance: String,
    /// ok, suspected or confirmed, at the end of the history.
    pub verdict: LeakState,
    /// When the current state began (absent for ok processes that never had an incident).
    pub since: Option<String>,
    pub since_unix_nano: Option<u64>,
    /// The series whose growth leads.
    pub leading_metric: Option<String>,
    /// The signals that agree (`memory`, `native`, `gc_frequency`, …).
    pub signals: Vec<String>,
    /// What leaks (`v8js.heap.space.name=old_space`, `native`, …), when known.
    pub component: Option<String>,
    /// The runtime's next diagnostic step, when known.
    pub next_step: Option<String>,
    pub growth_bytes_per_hour: Option<f64>,
    pub r_squared: Option<f64>,
    pub time_to_limit_seconds: Option<f64>,
    pub limit_bytes: Option<f64>,
    /// The event sentence of the newest transition, when there is one.
    pub summary: Option<String>,
    /// Every transition, oldest first.
    pub events: Vec<EventRecord>,
}

/// One lifecycle transition.
#[derive(Clone, Debug, Serialize)]
pub struct EventRecord {
    /// `memory.leak.suspected`, `.confirmed` or `.resolved`.
    pub event: &'static str,
    #[serde(skip)]
    pub kind: Option<LeakEventKind>,
    pub time: String,
    pub time_unix_nano: u64,
    pub metric: String,
    pub signals: Vec<String>,
    pub component: Option<String>,
    pub next_step: Option<String>,
    pub growth_bytes_per_hour: f64,
    pub r_squared: f64,
    pub time_to_limit_seconds: Option<f64>,
    pub limit_bytes: Option<f64>,
    pub sentence: String,
}

impl EventRecord {
    pub fn from_event(resource: &ResourceInfo, ev: &LeakEvent) -> EventRecord {
        EventRecord {
            event: ev.kind.event_name(),
            kind: Some(ev.kind),
            time: rfc3339(ev.t_ns),
            time_unix_nano: ev.t_ns,
            metric: ev.metric.clone(),
            signals: ev.signals.iter().map(|s| (*s).to_owned()).collect(),
            component: ev.component.clone(),
            next_step: ev.next_step.map(str::to_owned),
            growth_bytes_per_hour: ev.growth_bytes_per_hour,
            r_squared: ev.r_squared,
            time_to_limit_seconds: ev.time_to_limit_seconds,
            limit_bytes: ev.limit_bytes,
            sentence: sentence(resource, ev),
        }
    }
}

impl Verdict {
    /// From a live resource's summary.
    pub fn from_summary(
        resource: &ResourceInfo,
        s: &ResourceSummary,
        events: Vec<EventRecord>,
    ) -> Verdict {
        let incident = s.state != LeakState::Ok;
        let since = (s.since_t_ns != 0).then_some(s.since_t_ns);
        Verdict {
            process: resource.display_name(),
            service_name: resource.service_name.clone(),
            instance: resource.instance.clone(),
            verdict: s.state,
            since: since.map(rfc3339),
            since_unix_nano: since,
            leading_metric: s.leading_metric.clone().filter(|_| incident),
            signals: s.signals.iter().map(|s| (*s).to_owned()).collect(),
            component: events
                .last()
                .filter(|_| incident)
                .and_then(|e| e.component.clone()),
            next_step: events
                .last()
                .filter(|_| incident)
                .and_then(|e| e.next_step.clone()),
            growth_bytes_per_hour: incident.then_some(s.growth_bytes_per_hour),
            r_squared: incident.then_some(s.r_squared),
            time_to_limit_seconds: s.time_to_limit_seconds.filter(|_| incident),
            limit_bytes: s.limit_bytes.filter(|_| incident),
            summary: events.last().map(|e| e.sentence.clone()),
            events,
        }
    }

    /// From the transitions of a resource the engine has since evicted.
    pub fn from_events(resource: &ResourceInfo, events: Vec<EventRecord>) -> Verdict {
        let last = events.last();
        let state = last.and_then(|e| e.kind).map_or(LeakState::Ok, state_after);
        let incident = state != LeakState::Ok;
        Verdict {
            process: resource.display_name(),
            service_name: resource.service_name.clone(),
            instance: resource.instance.clone(),
            verdict: state,
            since: last.map(|e| e.time.clone()),
            since_unix_nano: last.map(|e| e.time_unix_nano),
            leading_metric: last.filter(|_| incident).map(|e| e.metric.clone()),
            signals: last
                .filter(|_| incident)
                .map(|e| e.signals.clone())
                .unwrap_or_default(),
            component: last.filter(|_| incident).and_then(|e| e.component.clone()),
            next_step: last.filter(|_| incident).and_then(|e| e.next_step.clone()),
            growth_bytes_per_hour: last.filter(|_| incident).map(|e| e.growth_bytes_per_hour),
            r_squared: last.filter(|_| incident).map(|e| e.r_squared),
            time_to_limit_seconds: last
                .filter(|_| incident)
                .and_then(|e| e.time_to_limit_seconds),
            limit_bytes: last.filter(|_| incident).and_then(|e| e.limit_bytes),
            summary: last.map(|e| e.sentence.clone()),
            events,
        }
    }
}

/// The whole report.
#[derive(Debug, Serialize)]
pub struct Report {
    /// Where the history came from (a Prometheus URL or a file).
    pub source: String,
    pub start: Option<String>,
    pub end: Option<String>,
    pub processes: Vec<Verdict>,
    /// The exit code this report gives: 0 none, 1 suspected, 2 confirmed.
    pub exit_code: u8,
}

impl Report {
    pub fn new(source: String, window: Option<(u64, u64)>, mut processes: Vec<Verdict>) -> Report {
        processes.sort_by(|a, b| a.process.cmp(&b.process));
        let exit_code = processes
            .iter()
            .map(|p| match p.verdict {
                LeakState::Ok => 0,
                LeakState::Suspected => 1,
                LeakState::Confirmed => 2,
            })
            .max()
            .unwrap_or(0);
        Report {
            source,
            start: window.map(|(s, _)| rfc3339(s)),
            end: window.map(|(_, e)| rfc3339(e)),
            processes,
            exit_code,
        }
    }

    /// JSON, one document.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    /// A fixed-width table, one process per line, then a one-line tally.
    pub fn to_table(&self) -> String {
        let header = [
            "PROCESS",
            "VERDICT",
            "SINCE",
            "LEADING METRIC",
            "WHAT LEAKS",
            "GROWTH/H",
            "R²",
            "TIME TO LIMIT",
        ];
        let rows: Vec<[String; 8]> = self
            .processes
            .iter()
            .map(|p| {
                let dash = || "-".to_owned();
                [
                    p.process.clone(),
                    verdict_word(p.verdict).to_owned(),
                    p.since
                        .clone()
                        .filter(|_| p.verdict != LeakState::Ok)
                        .unwrap_or_else(dash),
                    p.leading_metric.clone().unwrap_or_else(dash),
                    match (&p.component, p.verdict) {
                        (_, LeakState::Ok) => dash(),
                        (Some(c), _) => c.clone(),
                        (None, _) if p.signals.is_empty() => dash(),
                        (None, _) => p.signals.join(", "),
                    },
                    p.growth_bytes_per_hour
                        .map(|g| format!("{}/h", human_bytes(g)))
                        .unwrap_or_else(dash),
                    p.r_squared.map(|r| format!("{r:.2}")).unwrap_or_else(dash),
                    p.time_to_limit_seconds
                        .map(human_duration)
                        .unwrap_or_else(dash),
                ]
            })
            .collect();
        let mut widths = header.map(|h| h.chars().count());
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let line = |cells: &[String]| {
            let mut s = String::new();
            for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
                if i + 1 == cells.len() {
                    s.push_str(cell);
                } else {
                    s.push_str(cell);
                    s.push_str(&" ".repeat(w - cell.chars().count() + 2));
                }
            }
            s.trim_end().to_owned() + "\n"
        };
        let mut out = line(&header.map(str::to_owned));
        for row in &rows {
            out.push_str(&line(row));
        }
        let count = |s: LeakState| self.processes.iter().filter(|p| p.verdict == s).count();
        out.push_str(&format!(
            "\n{} processes: {} confirmed, {} suspected, {} ok",
            self.processes.len(),
            count(LeakState::Confirmed),
            count(LeakState::Suspected),
            count(LeakState::Ok)
        ));
        if let (Some(s), Some(e)) = (&self.start, &self.end) {
            out.push_str(&format!(" ({s} to {e})"));
        }
        out.push('\n');
        out
    }
}

fn verdict_word(s: LeakState) -> &'static str {
    match s {
        LeakState::Ok => "ok",
        LeakState::Suspected => "suspected",
        LeakState::Confirmed => "confirmed",
    }
}

/// Unix nanoseconds as RFC 3339 in UTC, to the second.
pub fn rfc3339(t_ns: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_nanos(t_ns)).to_string()
}

/// The state a resource is left in by a transition.
pub fn state_after(kind: LeakEventKind) -> LeakState {
    match kind {
        LeakEventKind::Suspected => LeakState::Suspected,
        LeakEventKind::Confirmed => LeakState::Confirmed,
        LeakEventKind::Resolved => LeakState::Ok,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(name: &str, state: LeakState) -> Verdict {
        Verdict {
            process: name.into(),
            service_name: name.into(),
            instance: String::new(),
            verdict: state,
            since: Some(rfc3339(1_700_000_000_000_000_000)),
            since_unix_nano: Some(1_700_000_000_000_000_000),
            leading_metric: Some("v8js.memory.heap.used".into()),
            signals: vec!["memory".into(), "gc_frequency".into()],
            component: Some("v8js.heap.space.name=old_space".into()),
            next_step: None,
            growth_bytes_per_hour: Some(3.0 * 1024.0 * 1024.0),
            r_squared: Some(0.97),
            time_to_limit_seconds: None,
            limit_bytes: None,
            summary: None,
            events: vec![],
        }
    }

    #[test]
    fn the_exit_code_is_the_worst_verdict() {
        let r = |states: &[LeakState]| {
            Report::new(
                "x".into(),
                None,
                states.iter().map(|s| verdict("p", *s)).collect(),
            )
            .exit_code
        };
        assert_eq!(r(&[]), 0);
        assert_eq!(r(&[LeakState::Ok, LeakState::Ok]), 0);
        assert_eq!(r(&[LeakState::Ok, LeakState::Suspected]), 1);
        assert_eq!(r(&[LeakState::Confirmed, LeakState::Suspected]), 2);
    }

    #[test]
    fn the_table_has_one_line_per_process() {
        let report = Report::new(
            "x".into(),
            Some((1_700_000_000_000_000_000, 1_700_086_400_000_000_000)),
            vec![
                verdict("b", LeakState::Ok),
                verdict("a", LeakState::Confirmed),
            ],
        );
        let table = report.to_table();
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[0].starts_with("PROCESS"), "{table}");
        assert!(
            lines[1].starts_with("a  ") && lines[1].contains("confirmed"),
            "{table}"
        );
        assert!(
            lines[1].contains("3.0 MiB/h") && lines[1].contains("0.97"),
            "{table}"
        );
        assert!(
            lines[2].starts_with("b  ") && lines[2].contains(" ok "),
            "{table}"
        );
        assert!(table.contains("2 processes: 1 confirmed, 0 suspected, 1 ok (2023-11-14T22:13:20Z"));
        let json: serde_json::Value = serde_json::from_str(&report.to_json()).expect("json");
        assert_eq!(json["processes"][0]["verdict"], "confirmed");
        assert_eq!(json["exit_code"], 2);
    }
}
