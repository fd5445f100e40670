//! The words of a leak event: one human sentence, and bytes and durations
//! in the units people read (`2.1 MiB`, `14 h`).

use crate::detector::{LeakEvent, LeakEventKind, Resolution};
use crate::engine::ResourceInfo;

/// One human sentence, e.g. "heap floor of checkout-api (pod-7) grows
/// 2.1 MiB/h (R² 0.96 over 6 h); 512 MiB limit in about 14 h".
pub fn sentence(resource: &ResourceInfo, ev: &LeakEvent) -> String {
    let who = resource.display_name();
    // What leaks, as a Prometheus-style selector: `v8js.memory.heap.used{v8js.heap.space.name=old_space}`.
    let what = match ev.component.as_deref() {
        Some("native") => format!("native memory ({})", ev.metric),
        Some(c) => format!("{}{{{c}}}", ev.metric),
        None => ev.metric.clone(),
    };
    match ev.kind {
        LeakEventKind::Resolved if ev.resolution == Some(Resolution::ProcessGone) => format!(
            "{who} stopped reporting for longer than the idle timeout: incident on {what} closed (process gone)"
        ),
        LeakEventKind::Resolved => format!("{what} of {who} no longer grows: leak resolved"),
        LeakEventKind::Suspected | LeakEventKind::Confirmed => {
            let verdict = if ev.kind == LeakEventKind::Confirmed {
                "leak confirmed"
            } else {
                "leak suspected"
            };
            let mut s = format!(
                "{what} of {who} grows {}/h (R² {:.2} over {}); {verdict}",
                human_bytes(ev.growth_bytes_per_hour),
                ev.r_squared,
                human_duration(ev.window_seconds)
            );
            if let (Some(limit), Some(ttl)) = (ev.limit_bytes, ev.time_to_limit_seconds) {
                s.push_str(&format!(
                    "; {} limit in about {}",
                    human_bytes(limit),
                    human_duration(ttl)
                ));
            }
            s
        }
    }
}

/// Bytes in binary units with one decimal: `2.1 MiB`.
pub fn human_bytes(b: f64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b;
    let mut i = 0;
    while v.abs() >= 1024.0 && i + 1 < units.len() {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{v:.0} B")
    } else {
        format!("{v:.1} {}", units[i])
    }
}

/// Seconds as `45 s`, `12 min`, `6 h`, `2.5 d`.
pub fn human_duration(secs: f64) -> String {
    if secs < 120.0 {
        format!("{secs:.0} s")
    } else if secs < 7200.0 {
        format!("{:.0} min", secs / 60.0)
    } else if secs < 172_800.0 {
        let h = secs / 3600.0;
        if (h - h.round()).abs() < 0.05 {
            format!("{h:.0} h")
        } else {
            format!("{h:.1} h")
        }
    } else {
        format!("{:.1} d", secs / 86400.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_units() {
        assert_eq!(human_bytes(2.1 * 1024.0 * 1024.0), "2.1 MiB");
        assert_eq!(human_bytes(512.0 * 1024.0 * 1024.0), "512.0 MiB");
        assert_eq!(human_bytes(10.0), "10 B");
        assert_eq!(human_duration(6.0 * 3600.0), "6 h");
        assert_eq!(human_duration(90.0), "90 s");
        assert_eq!(human_duration(14.0 * 3600.0 + 900.0), "14.2 h");
    }
}
