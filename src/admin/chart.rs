//! The memory chart of one process, rendered as SVG on the server from its history
//! ([`HistoryView`]): the min/max band of the history's buckets and their last values, the
//! detector's floor, the fitted trend over its window, the limit, the forecast from the end of
//! the trend to where it meets the limit, and the restarts and incident transitions marked.
//!
//! Server-rendered (no charting library in the binary, no script needed to see it): one
//! function from the API's own read model, so the chart cannot disagree with the numbers
//! beside it, and the tests read its geometry. Every drawn series carries its data
//! (`data-n`, `data-t*`, `data-v*`) and each kind of line its own dash pattern and a text
//! label in the legend, so no meaning rests on colour alone; the page puts a table of the
//! same data beside it. The other signals (memory per request, GC frequency) are small charts
//! of the same kind ([`render_signal`]).

use std::fmt::Write;

use crate::engine::history::MarkKind;
use crate::engine::HistoryView;

const W: f64 = 960.0;
const H: f64 = 340.0;
const ML: f64 = 80.0;
const MR: f64 = 20.0;
const MT: f64 = 36.0;
const MB: f64 = 40.0;
/// How far past the data the axis may extend to show the limit crossing (× the data's span).
const MAX_FORECAST_SPAN: f64 = 3.0;

/// Maps event time and bytes to the plot.
struct Scale {
    t0: f64,
    t1: f64,
    vmax: f64,
}

impl Scale {
    fn x(&self, t_ns: f64) -> f64 {
        ML + (t_ns - self.t0) / (self.t1 - self.t0).max(1.0) * (W - ML - MR)
    }
    fn y(&self, v: f64) -> f64 {
        MT + (H - MT - MB) * (1.0 - v / self.vmax.max(1.0))
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Bytes for people: 1.5 MiB.
pub fn bytes(b: f64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b;
    let mut i = 0;
    while v.abs() >= 1024.0 && i < units.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{v:.0} {}", units[i])
    } else {
        format!("{v:.1} {}", units[i])
    }
}

/// `HH:MM:SS` UTC of an event time.
fn clock(t_ns: f64) -> String {
    let s = (t_ns / 1e9).max(0.0) as u64 % 86_400;
    format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

fn mark_label(k: MarkKind) -> (&'static str, &'static str) {
    match k {
        MarkKind::Restart => ("R", "restart"),
        MarkKind::Suspected => ("S", "leak suspected"),
        MarkKind::Confirmed => ("C", "leak confirmed"),
        MarkKind::Resolved => ("OK", "leak resolved"),
        MarkKind::SeriesChanged => ("*", "chart moved to another series"),
        MarkKind::LimitChanged => ("L", "limit changed"),
    }
}

fn mark_name(k: MarkKind) -> &'static str {
    match k {
        MarkKind::Restart => "restart",
        MarkKind::Suspected => "suspected",
        MarkKind::Confirmed => "confirmed",
        MarkKind::Resolved => "resolved",
        MarkKind::SeriesChanged => "series_changed",
        MarkKind::LimitChanged => "limit_changed",
    }
}

/// The chart of `h` for the process called `name`, as a standalone SVG document.
pub fn render(h: &HistoryView, name: &str) -> String {
    let mut out = String::with_capacity(16 * 1024);
    let metric = h
        .series
        .as_ref()
        .map(|s| {
            if s.attributes.is_empty() {
                s.metric.clone()
            } else {
                format!("{} {{{}}}", s.metric, s.attributes)
            }
        })
        .unwrap_or_default();
    let _ = write!(
        out,
        r##"<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {W} {H}" width="{W}" height="{H}" role="img" aria-labelledby="chart-title chart-desc" font-family="system-ui, sans-serif" font-size="12">"##
    );
    let _ = write!(
        out,
        r#"<title id="chart-title">Memory of {} ({})</title>"#,
        esc(name),
        esc(&metric)
    );
    let b = &h.buckets;
    if b.t_unix_nano.is_empty() {
        let _ = write!(
            out,
            r#"<desc id="chart-desc">No memory data yet.</desc><text x="{}" y="{}" text-anchor="middle">No memory data yet.</text></svg>"#,
            W / 2.0,
            H / 2.0
        );
        return out;
    }
    let width_ns = h.bucket_seconds * 1e9;
    // Time: the buckets (each to its end), the floor and the trend.
    let mut t0 = b.t_unix_nano[0] as f64;
    let mut t1 = *b.t_unix_nano.last().unwrap_or(&0) as f64 + width_ns;
    let mut vmax = b.max.iter().copied().fold(0.0, f64::max);
    for (&t, &v) in h.floor.t_unix_nano.iter().zip(&h.floor.value) {
        t0 = t0.min(t as f64);
        t1 = t1.max(t as f64);
        vmax = vmax.max(v);
    }
    if let Some(tr) = &h.trend {
        t0 = t0.min(tr.start_unix_nano as f64);
        t1 = t1.max(tr.end_unix_nano as f64);
        vmax = vmax.max(tr.start_value).max(tr.end_value);
    }
    let data_span = (t1 - t0).max(width_ns);
    let data_max = vmax;
    // The forecast widens the axis to its crossing, up to a bound.
    let mut forecast_end = None;
    if let (Some(f), Some(tr)) = (&h.forecast, &h.trend) {
        let cross = f.crossing_unix_nano as f64;
        let edge = t0 + (1.0 + MAX_FORECAST_SPAN) * data_span;
        if cross <= edge {
            t1 = t1.max(cross);
            forecast_end = Some((f.crossing_unix_nano, f.limit_bytes, false));
        } else {
            t1 = edge;
            let slope_ns = tr.slope_bytes_per_hour / 3600e9;
            let v = tr.end_value + slope_ns * (edge - tr.end_unix_nano as f64);
            forecast_end = Some((edge as u64, v, true));
        }
    }
    // The limit is drawn when the forecast reaches it or it is not far above the data.
    let show_limit = h
        .limit_bytes
        .filter(|l| h.forecast.is_some() || *l <= 3.0 * data_max.max(1.0));
    if let Some(l) = show_limit {
        vmax = vmax.max(l);
    }
    let sc = Scale {
        t0,
        t1,
        vmax: vmax * 1.08,
    };

    let mut desc = format!(
        "{} buckets of {:.1} s from {} to {} UTC; last {}.",
        b.t_unix_nano.len(),
        h.bucket_seconds,
        clock(b.t_unix_nano[0] as f64),
        clock(*b.t_unix_nano.last().unwrap_or(&0) as f64),
        bytes(*b.last.last().unwrap_or(&0.0))
    );
    if let Some(tr) = &h.trend {
        let _ = write!(
            desc,
            " Trend {}/h over {:.0} s (R² {:.2}).",
            bytes(tr.slope_bytes_per_hour),
            tr.window_seconds,
            tr.r_squared
        );
    }
    if let Some(f) = &h.forecast {
        let _ = write!(
            desc,
            " Reaches the {} limit at {} UTC.",
            bytes(f.limit_bytes),
            clock(f.crossing_unix_nano as f64)
        );
    }
    let _ = write!(out, r#"<desc id="chart-desc">{}</desc>"#, esc(&desc));

    // Axes and grid.
    let _ = write!(out, r##"<g class="axes" stroke="#c9ced6" fill="#4a5260">"##);
    for i in 0..=4 {
        let v = sc.vmax * f64::from(i) / 4.0;
        let y = sc.y(v);
        let _ = write!(
            out,
            r#"<line x1="{ML}" x2="{}" y1="{y:.1}" y2="{y:.1}"/><text x="{}" y="{:.1}" text-anchor="end" stroke="none">{}</text>"#,
            W - MR,
            ML - 6.0,
            y + 4.0,
            bytes(v)
        );
    }
    for i in 0..=5 {
        let t = t0 + (t1 - t0) * f64::from(i) / 5.0;
        let x = sc.x(t);
        let _ = write!(
            out,
            r#"<text x="{x:.1}" y="{}" text-anchor="{}" stroke="none">{}</text>"#,
            H - MB + 16.0,
            match i {
                0 => "start",
                5 => "end",
                _ => "middle",
            },
            clock(t)
        );
    }
    let _ = write!(
        out,
        r#"<text x="{}" y="{}" text-anchor="end" stroke="none">event time (UTC)</text></g>"#,
        W - MR,
        H - 6.0
    );

    // The band: max forward, min back.
    let mut band = String::new();
    for (i, (&t, &v)) in b.t_unix_nano.iter().zip(&b.max).enumerate() {
        let _ = write!(
            band,
            "{}{:.1},{:.1}",
            if i == 0 { "M" } else { " L" },
            sc.x(t as f64 + width_ns / 2.0),
            sc.y(v)
        );
    }
    for (&t, &v) in b.t_unix_nano.iter().zip(&b.min).rev() {
        let _ = write!(
            band,
            " L{:.1},{:.1}",
            sc.x(t as f64 + width_ns / 2.0),
            sc.y(v)
        );
    }
    let _ = write!(
        out,
        r##"<path class="band" data-n="{}" d="{band} Z" fill="#9db7e0" fill-opacity="0.45" stroke="none"/>"##,
        b.t_unix_nano.len()
    );
    let last: Vec<String> = b
        .t_unix_nano
        .iter()
        .zip(&b.last)
        .map(|(&t, &v)| format!("{:.1},{:.1}", sc.x(t as f64 + width_ns / 2.0), sc.y(v)))
        .collect();
    let _ = write!(
        out,
        r##"<polyline class="last" data-n="{}" points="{}" fill="none" stroke="#3465a4" stroke-width="1"/>"##,
        last.len(),
        last.join(" ")
    );
    let floor: Vec<String> = h
        .floor
        .t_unix_nano
        .iter()
        .zip(&h.floor.value)
        .map(|(&t, &v)| format!("{:.1},{:.1}", sc.x(t as f64), sc.y(v)))
        .collect();
    let _ = write!(
        out,
        r##"<polyline class="floor" data-n="{}" points="{}" fill="none" stroke="#1d2430" stroke-width="1.5" stroke-dasharray="1 3" stroke-linecap="round"/>"##,
        floor.len(),
        floor.join(" ")
    );
    if let Some(l) = show_limit {
        let y = sc.y(l);
        let _ = write!(
            out,
            r##"<g class="limit-label"><line class="limit" data-v="{l}" x1="{ML}" x2="{}" y1="{y:.1}" y2="{y:.1}" stroke="#a01818" stroke-width="1.5" stroke-dasharray="8 3 2 3"/><text x="{}" y="{:.1}" text-anchor="end" fill="#a01818">limit {}</text></g>"##,
            W - MR,
            W - MR - 4.0,
            y - 5.0,
            bytes(l)
        );
    }
    if let Some(tr) = &h.trend {
        let _ = write!(
            out,
            r##"<line class="trend" data-t0="{}" data-v0="{}" data-t1="{}" data-v1="{}" x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#8a5a00" stroke-width="3"/>"##,
            tr.start_unix_nano,
            tr.start_value,
            tr.end_unix_nano,
            tr.end_value,
            sc.x(tr.start_unix_nano as f64),
            sc.y(tr.start_value),
            sc.x(tr.end_unix_nano as f64),
            sc.y(tr.end_value)
        );
        if let Some((t, v, off)) = forecast_end {
            let _ = write!(
                out,
                r##"<line class="forecast" data-t0="{}" data-v0="{}" data-t1="{}" data-v1="{}" data-offchart="{off}" x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#8a5a00" stroke-width="2" stroke-dasharray="6 4"/>"##,
                tr.end_unix_nano,
                tr.end_value,
                t,
                v,
                sc.x(tr.end_unix_nano as f64),
                sc.y(tr.end_value),
                sc.x(t as f64),
                sc.y(v)
            );
        }
    }
    for m in &h.marks {
        let t = m.t_unix_nano as f64;
        if t < t0 || t > t1 {
            continue;
        }
        let (letter, what) = mark_label(m.kind);
        let x = sc.x(t);
        let _ = write!(
            out,
            r##"<g class="mark" data-kind="{}" data-t="{}"><title>{what} at {} UTC</title><line x1="{x:.1}" x2="{x:.1}" y1="{MT}" y2="{}" stroke="#4a5260" stroke-dasharray="2 2"/><text x="{x:.1}" y="{}" text-anchor="middle" fill="#1d2430">{letter}</text></g>"##,
            mark_name(m.kind),
            m.t_unix_nano,
            clock(t),
            H - MB,
            MT - 4.0
        );
    }
    // Legend: each line's pattern with its name.
    let legend = [
        ("band", "min–max per bucket", "", 8.0),
        ("last", "last value", "", 1.0),
        ("floor", "floor (detector)", "1 3", 1.5),
        ("trend", "fitted trend", "", 3.0),
        ("forecast", "forecast", "6 4", 2.0),
        ("limit", "limit", "8 3 2 3", 1.5),
    ];
    let _ = write!(out, r#"<g class="legend">"#);
    let mut x = ML;
    for (class, label, dash, width) in legend {
        let _ = write!(
            out,
            r##"<line x1="{x}" x2="{}" y1="12" y2="12" class="swatch-{class}" stroke="#4a5260" stroke-width="{width}" stroke-dasharray="{dash}"/><text x="{}" y="16">{label}</text>"##,
            x + 22.0,
            x + 26.0
        );
        x += 30.0 + 7.0 * label.chars().count() as f64;
    }
    let _ = write!(out, "</g></svg>");
    out
}

/// The small charts beside the memory chart: the other signals of a process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    /// Memory floor growth per request served (bytes).
    MemoryPerRequest,
    /// Garbage collections per minute.
    GcPerMinute,
}

impl Signal {
    /// The signal named `name` in `/api/v1/resources/{id}/signals/{name}.svg`.
    pub fn parse(name: &str) -> Option<Signal> {
        match name {
            "memory_per_request" => Some(Signal::MemoryPerRequest),
            "gc_per_minute" => Some(Signal::GcPerMinute),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Signal::MemoryPerRequest => "memory_per_request",
            Signal::GcPerMinute => "gc_per_minute",
        }
    }

    fn value_text(self, v: f64) -> String {
        match self {
            Signal::MemoryPerRequest => format!("{}/request", bytes(v)),
            Signal::GcPerMinute => format!("{v:.1}/min"),
        }
    }
}

const SW: f64 = 460.0;
const SH: f64 = 170.0;
const SML: f64 = 78.0;
const SMR: f64 = 12.0;
const SMT: f64 = 14.0;
const SMB: f64 = 30.0;

/// The small chart of `signal` from `h` for the process called `name`, as a standalone SVG
/// document: one line of the signal's values per counter bucket (at bucket midpoints) over a
/// zero line, with the same `data-*` attributes as the memory chart. Says in words when the
/// process reports no series for it, or nothing yet.
pub fn render_signal(h: &HistoryView, signal: Signal, name: &str) -> String {
    let (col, title, what, missing) = match signal {
        Signal::MemoryPerRequest => (
            &h.memory_per_request,
            "Memory growth per request",
            "Memory floor growth per request served: how much the lowest memory of each bucket \
             rose over the last hour's buckets (three counter buckets), divided by the requests \
             served in them. Steady above zero when requests leave memory behind; near zero \
             when memory is flat whatever the load; below zero when memory was freed.",
            "This process reports no request count (such as http.server.request.duration), so \
             memory per request is not known.",
        ),
        Signal::GcPerMinute => (
            &h.gc_per_minute,
            "Garbage collections per minute",
            "Garbage collections per minute, per bucket: all collectors and generations \
             together, over the time the bucket covers.",
            "This process reports no garbage-collection count (such as jvm.gc.duration), so \
             GC frequency is not known.",
        ),
    };
    let id = signal.name();
    let mut out = String::with_capacity(4 * 1024);
    let _ = write!(
        out,
        r##"<svg xmlns="http://www.w3.org/2000/svg" class="signal-chart" data-signal="{id}" viewBox="0 0 {SW} {SH}" width="{SW}" height="{SH}" role="img" aria-labelledby="{id}-title {id}-desc" font-family="system-ui, sans-serif" font-size="11">"##
    );
    let _ = write!(
        out,
        r#"<title id="{id}-title">{title} of {}</title>"#,
        esc(name)
    );
    let n = col.value.len();
    if !col.reported || n == 0 {
        let words = if col.reported {
            "No complete bucket yet: the chart starts once the counts cover a bucket."
        } else {
            missing
        };
        let _ = write!(
            out,
            r#"<desc id="{id}-desc">{words}</desc><text class="no-data" x="{}" y="{}" text-anchor="middle">{}</text></svg>"#,
            SW / 2.0,
            SH / 2.0,
            if col.reported {
                "No complete bucket yet."
            } else {
                "Not reported by this process."
            }
        );
        return out;
    }
    let width_ns = h.counter_bucket_seconds * 1e9;
    let ts: Vec<f64> = col
        .t_unix_nano
        .iter()
        .map(|&t| t as f64 + width_ns / 2.0)
        .collect();
    let (t0, t1) = (ts[0] - width_ns / 2.0, ts[n - 1] + width_ns / 2.0);
    let highest = col.value.iter().copied().fold(f64::MIN, f64::max);
    let lowest = col.value.iter().copied().fold(f64::MAX, f64::min);
    // The axis always holds zero: above it growth, below it memory freed.
    let (vmax, vmin) = (highest.max(0.0), lowest.min(0.0));
    let (lo, hi) = if vmax > vmin {
        (vmin * 1.08, vmax * 1.08)
    } else {
        (0.0, 1.0)
    };
    let x = |t: f64| SML + (t - t0) / (t1 - t0).max(1.0) * (SW - SML - SMR);
    let y = |v: f64| SMT + (SH - SMT - SMB) * (hi - v) / (hi - lo);
    let last = col.value[n - 1];
    let desc = format!(
        "{what} {n} buckets of {:.1} s from {} to {} UTC; last {}, highest {}, lowest {}.",
        h.counter_bucket_seconds,
        clock(col.t_unix_nano[0] as f64),
        clock(col.t_unix_nano[n - 1] as f64),
        signal.value_text(last),
        signal.value_text(highest),
        signal.value_text(lowest),
    );
    let _ = write!(out, r#"<desc id="{id}-desc">{}</desc>"#, esc(&desc));
    let _ = write!(out, r##"<g class="axes" stroke="#c9ced6" fill="#4a5260">"##);
    // Zero solid, the extremes dashed.
    let mut grid = vec![(0.0, "")];
    if vmax > 0.0 {
        grid.push((vmax, "2 3"));
    }
    if vmin < 0.0 {
        grid.push((vmin, "2 3"));
    }
    for (v, dash) in grid {
        let yy = y(v);
        let _ = write!(
            out,
            r#"<line x1="{SML}" x2="{}" y1="{yy:.1}" y2="{yy:.1}" stroke-dasharray="{dash}"/><text x="{}" y="{:.1}" text-anchor="end" stroke="none">{}</text>"#,
            SW - SMR,
            SML - 4.0,
            yy + 4.0,
            esc(&signal.value_text(v))
        );
    }
    for (i, anchor) in [(0, "start"), (1, "end")] {
        let t = if i == 0 { t0 } else { t1 };
        let _ = write!(
            out,
            r#"<text x="{:.1}" y="{}" text-anchor="{anchor}" stroke="none">{}</text>"#,
            x(t),
            SH - SMB + 14.0,
            clock(t)
        );
    }
    let _ = write!(
        out,
        r#"<text x="{}" y="{}" text-anchor="middle" stroke="none">event time (UTC)</text></g>"#,
        (SML + SW - SMR) / 2.0,
        SH - 4.0
    );
    let points: Vec<String> = ts
        .iter()
        .zip(&col.value)
        .map(|(&t, &v)| format!("{:.1},{:.1}", x(t), y(v)))
        .collect();
    // One point alone is a dot: a line needs two.
    let _ = write!(
        out,
        r##"<polyline class="signal" data-n="{n}" data-t0="{}" data-t1="{}" data-v0="{}" data-v1="{}" points="{}" fill="none" stroke="#3465a4" stroke-width="1.5"/>"##,
        col.t_unix_nano[0],
        col.t_unix_nano[n - 1],
        col.value[0],
        last,
        points.join(" ")
    );
    if n == 1 {
        let _ = write!(
            out,
            r##"<circle cx="{:.1}" cy="{:.1}" r="2.5" fill="#3465a4"/>"##,
            x(ts[0]),
            y(last)
        );
    }
    let _ = write!(out, "</svg>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detector::LeakState;
    use crate::engine::query::{Columns, FloorColumns, Forecast, MarkView, TrendLine};
    use crate::engine::{CounterColumns, SignalColumns};

    const S: u64 = 1_000_000_000;

    fn attr(svg: &str, class: &str, name: &str) -> f64 {
        let at = svg
            .find(&format!(r#"class="{class}""#))
            .unwrap_or_else(|| panic!("no {class} in {svg}"));
        let rest = &svg[at..];
        let from = rest.find(&format!(r#" {name}=""#)).expect("attribute") + name.len() + 3;
        let len = rest[from..].find('"').expect("end");
        rest[from..from + len].parse().expect("a number")
    }

    fn view(crossing_s: u64) -> HistoryView {
        HistoryView {
            id: "00000000000000aa".into(),
            state: LeakState::Confirmed,
            bucket_seconds: 10.0,
            series: None,
            buckets: Columns {
                t_unix_nano: (0..20).map(|i| 1000 * S + i * 10 * S).collect(),
                min: (0..20).map(|i| 100e6 + i as f64 * 1e6).collect(),
                max: (0..20).map(|i| 110e6 + i as f64 * 1e6).collect(),
                last: (0..20).map(|i| 105e6 + i as f64 * 1e6).collect(),
            },
            floor: FloorColumns::default(),
            trend: Some(TrendLine {
                start_unix_nano: 1000 * S,
                start_value: 100e6,
                end_unix_nano: 1190 * S,
                end_value: 119e6,
                slope_bytes_per_hour: 1e6 / 10.0 * 3600.0,
                window_seconds: 190.0,
                r_squared: 1.0,
            }),
            limit_bytes: Some(200e6),
            forecast: Some(Forecast {
                limit_bytes: 200e6,
                time_to_limit_seconds: crossing_s as f64 - 1190.0,
                crossing_unix_nano: crossing_s * S,
            }),
            marks: vec![MarkView {
                t_unix_nano: 1100 * S,
                kind: MarkKind::Suspected,
            }],
            counter_bucket_seconds: 40.0,
            counts: CounterColumns::default(),
            gc_per_minute: SignalColumns {
                reported: true,
                t_unix_nano: (0..5).map(|i| 1000 * S + i * 40 * S).collect(),
                value: vec![6.0, 7.5, 6.0, 9.0, 12.0],
            },
            memory_per_request: SignalColumns {
                reported: false,
                ..SignalColumns::default()
            },
        }
    }

    #[test]
    fn the_forecast_meets_the_limit_line_at_the_crossing() {
        let svg = render(&view(1500), "checkout (pod-1)");
        assert_eq!(attr(&svg, "band", "data-n"), 20.0);
        assert_eq!(attr(&svg, "last", "data-n"), 20.0);
        assert_eq!(attr(&svg, "forecast", "data-t1"), (1500 * S) as f64);
        assert_eq!(attr(&svg, "forecast", "y2"), attr(&svg, "limit", "y1"));
        // The crossing is the right edge of the axis.
        assert_eq!(attr(&svg, "forecast", "x2"), W - MR);
        assert_eq!(attr(&svg, "forecast", "x1"), attr(&svg, "trend", "x2"));
        assert!(svg.contains(r#"data-kind="suspected""#));
    }

    #[test]
    fn a_far_crossing_is_cut_at_the_edge_and_said_so() {
        let svg = render(&view(100_000), "checkout");
        assert!(svg.contains(r#"data-offchart="true""#));
        assert!(attr(&svg, "forecast", "y2") > attr(&svg, "limit", "y1"));
        assert!(svg.contains("Reaches the 190.7 MiB limit at"));
    }

    #[test]
    fn names_are_escaped_and_no_data_is_said() {
        let mut v = view(2000);
        v.buckets = Columns::default();
        let svg = render(&v, "<script>");
        assert!(svg.contains("&lt;script&gt;") && !svg.contains("<script>"));
        assert!(svg.contains("No memory data yet."));
    }

    #[test]
    fn a_small_chart_carries_its_data_and_says_what_it_shows() {
        let v = view(1500);
        let svg = render_signal(&v, Signal::GcPerMinute, "checkout");
        assert_eq!(attr(&svg, "signal", "data-n"), 5.0);
        assert_eq!(attr(&svg, "signal", "data-t0"), (1000 * S) as f64);
        assert_eq!(attr(&svg, "signal", "data-t1"), (1160 * S) as f64);
        assert_eq!(attr(&svg, "signal", "data-v0"), 6.0);
        assert_eq!(attr(&svg, "signal", "data-v1"), 12.0);
        assert!(svg.contains(
            "<title id=\"gc_per_minute-title\">Garbage collections per minute of checkout</title>"
        ));
        assert!(svg.contains("last 12.0/min, highest 12.0/min, lowest 6.0/min."));
        // Higher values are higher on the chart (smaller y).
        let ys: Vec<f64> = {
            let at = svg.find(r#" points=""#).expect("points") + 9;
            let pts = &svg[at..at + svg[at..].find('"').expect("end")];
            pts.split(' ')
                .map(|p| p.split(',').nth(1).and_then(|y| y.parse().ok()).expect("y"))
                .collect()
        };
        assert_eq!(ys.len(), 5);
        assert!(ys[4] < ys[0] && ys[0] == ys[2]);
    }

    #[test]
    fn a_signal_not_reported_is_said_in_words() {
        let mut v = view(1500);
        let svg = render_signal(&v, Signal::MemoryPerRequest, "<x>");
        assert!(svg.contains("Not reported by this process."));
        assert!(svg.contains("reports no request count"));
        assert!(!svg.contains("class=\"signal\""));
        assert!(svg.contains("&lt;x&gt;"));
        v.gc_per_minute.value.clear();
        v.gc_per_minute.t_unix_nano.clear();
        let svg = render_signal(&v, Signal::GcPerMinute, "x");
        assert!(svg.contains("No complete bucket yet."));
        // Negative growth (memory freed) is drawn below the zero line.
        v.memory_per_request = SignalColumns {
            reported: true,
            t_unix_nano: vec![1000 * S, 1040 * S],
            value: vec![-2048.0, 4096.0],
        };
        let svg = render_signal(&v, Signal::MemoryPerRequest, "x");
        assert!(
            svg.contains("last 4.0 KiB/request, highest 4.0 KiB/request, lowest -2.0 KiB/request.")
        );
        assert_eq!(Signal::parse("gc_per_minute"), Some(Signal::GcPerMinute));
        assert_eq!(Signal::parse("rss"), None);
    }
}
