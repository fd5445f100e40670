//! Prints the comparison of leakwatch with the two common practices (Prometheus `deriv` rules,
//! polyfit + R² > 0.7, both exactly as practised: `leakwatch_tools::practice`) on two sets of
//! synthetic traces side by side: the tuning suite (`scenario::suite`) and the holdout
//! (`scenario::holdout`: the same generators, other seeds and parameters, never used for
//! tuning). First one line per scenario, then the raw headline figures per method and set
//! (recall, false alarms on traps, median and p90 delay from onset to suspected and to
//! confirmed, false resolutions, forecast error at the first confirmation, OOM margin), then
//! the twin-adjusted view, then the gate.
//!
//! Usage: `leak-report [--holdout] [--events] [--trace] [SCENARIO...]`: naming scenarios limits
//! the report to them; `--events` also prints leakwatch's events (and those on each leak's
//! leak-free twin); `--trace` prints each selected trace hour by hour (what the samples look
//! like and what leakwatch's per-series fits say), to see why a verdict came out as it did;
//! `--holdout` makes `--events` and `--trace` read the holdout's traces instead of the suite's.
//!
//! # Exit status
//! - 0: the gate holds ([`practice::gate`]): in the tuning set **and** in the holdout,
//!   leakwatch raises no alarm (`memory.leak.confirmed`) on any trap nor before any leak's
//!   onset, and confirms at least as many leaks as each practice. Delays, false resolutions,
//!   forecast error and OOM margins are printed, not gated: issue 13's targets for them are
//!   recorded as `#[ignore]`d tests in `tools/tests/scenarios.rs` until the detector meets them
//!   (a gate the current detector cannot pass would only teach people to ignore the status).
//! - 1: the gate fails (what falls short is printed).
//! - 2: a trace could not be replayed (an ingest error).
//! - 64: usage: no scenario has a name given.
//!
//! `--trace` always exits 0.

use std::process::ExitCode;
use std::sync::Arc;

use bytes::Bytes;
use prost::Message;

use leakwatch::engine::{Engine, EngineConfig};
use leakwatch::ops::telemetry::Telemetry;
use leakwatch_tools::practice::{self, Baselines, Comparison, Method, PolyfitR2, Run, SetReport};
use leakwatch_tools::scenario::{self, Scenario, MB};

/// Prints `sc` hour by hour: sample ranges, then each memory series' short/long fit.
fn trace(sc: &Scenario) {
    let engine = Engine::new(EngineConfig::default(), Arc::new(Telemetry::new()));
    let start = sc.start_ns();
    let hour_of = |t: u64| ((t - start) / 3_600_000_000_000) as usize;
    println!(
        "{} ({}, leak: {}): {}",
        sc.name,
        sc.runtime.as_str(),
        sc.is_leak,
        sc.summary
    );
    println!("  h  heap min..max MB   rss min MB  gc/h     req/s | series: short (MB/h sig leak) long (MB/h sig leak)");
    let mut hour = 0;
    let mut bucket: Vec<scenario::TraceSample> = Vec::new();
    let fmt = |t: Option<leakwatch::detector::TrendSummary>| {
        t.map_or("-".to_owned(), |t| {
            format!(
                "{:+.2}{}{}",
                t.slope_per_hour / MB,
                if t.significant { "s" } else { "" },
                if t.leak { "L" } else { "" }
            )
        })
    };
    let flush = |hour: usize, bucket: &[scenario::TraceSample], engine: &Engine| {
        let (Some(first), Some(last)) = (bucket.first(), bucket.last()) else {
            return;
        };
        let heap_lo = bucket.iter().map(|s| s.heap_used).fold(f64::MAX, f64::min);
        let heap_hi = bucket.iter().map(|s| s.heap_used).fold(f64::MIN, f64::max);
        let rss = bucket.iter().filter_map(|s| s.rss).fold(f64::MAX, f64::min);
        let secs = (last.t_ns - first.t_ns) as f64 / 1e9;
        let rate = |f: fn(&scenario::TraceSample) -> Option<f64>| match (f(first), f(last)) {
            (Some(a), Some(b)) if b >= a && secs > 0.0 => format!("{:8.1}", (b - a) / secs),
            _ => "       -".to_owned(),
        };
        let mut views = engine.series_views(None);
        views.sort_by(|a, b| (&a.metric, &a.attributes).cmp(&(&b.metric, &b.attributes)));
        let series: Vec<String> = views
            .iter()
            .filter(|v| v.trend.role.is_memory() && v.trend.role.as_str() != "memory_limit")
            .filter(|v| v.trend.short.is_some() || v.trend.long.is_some() || v.trend.fast.is_some())
            .filter(|v| {
                let big = |t: Option<leakwatch::detector::TrendSummary>| {
                    t.is_some_and(|t| t.significant || t.slope_per_hour.abs() > 0.1 * MB)
                };
                big(v.trend.short) || big(v.trend.long) || big(v.trend.fast)
            })
            .map(|v| {
                let label = v.attributes.rsplit('=').next().unwrap_or("");
                format!(
                    "{}{}{} {} {} f{}",
                    v.metric.rsplit('.').next().unwrap_or(""),
                    if label.is_empty() { "" } else { ":" },
                    label.chars().take(12).collect::<String>(),
                    fmt(v.trend.short),
                    fmt(v.trend.long),
                    fmt(v.trend.fast)
                )
            })
            .collect();
        let state = engine
            .resource_views()
            .first()
            .map_or("-".to_owned(), |r| format!("{:?}", r.state));
        println!(
            "{hour:3} {:7.1}..{:7.1} {:9} {} {} | {state} {}",
            heap_lo / MB,
            heap_hi / MB,
            if rss < f64::MAX {
                format!("{:9.1}", rss / MB)
            } else {
                "        -".to_owned()
            },
            rate(|s| s.gc_count.map(|g| g * 3600.0)),
            rate(|s| s.request_count),
            series.join(" | ")
        );
    };
    for tick in sc.trace() {
        let h = hour_of(tick.sample.t_ns);
        if h != hour {
            flush(hour, &bucket, &engine);
            bucket.clear();
            hour = h;
        }
        bucket.push(tick.sample);
        match engine.ingest_metrics(Bytes::from(tick.request.encode_to_vec())) {
            Ok(outcome) => {
                for e in outcome.events {
                    println!(
                        "    event +{:.2}h {} {} signals={:?}",
                        (e.event.t_ns - start) as f64 / 3.6e12,
                        e.event.kind.event_name(),
                        e.event.metric,
                        e.event.signals
                    );
                }
            }
            Err(e) => println!("    ingest error: {e}"),
        }
    }
    flush(hour, &bucket, &engine);
}

/// How the polyfit script's raw figures move with the one knob the script's description leaves
/// open: how much history it needs before it fits at all (tuning set).
fn sensitivity(runs: &[Run]) -> String {
    use std::fmt::Write;
    let mut out = String::from(
        "\nSensitivity (tuning set): the polyfit script's minimum history (points of 5 min; default 72 = 6 h)\n",
    );
    for min_points in [12, 36, 72, 144, 288] {
        let baselines = Baselines {
            polyfit: PolyfitR2 {
                min_points,
                ..PolyfitR2::default()
            },
            ..Baselines::default()
        };
        let f = SetReport::build(runs, &baselines).figures(Method::PolyfitR2);
        let h = |h: Option<f64>| h.map_or("inf".to_owned(), |d| format!("{d:.1}"));
        let _ = writeln!(
            out,
            "  {:>3} points ({:>4.1} h): polyfit recall {}/{}, false alarms {}/{}, onset→flag median {} h, p90 {} h",
            min_points,
            min_points as f64 / 12.0,
            f.recall,
            f.leaks,
            f.false_alarms,
            f.traps,
            h(f.confirmed_median),
            h(f.confirmed_p90),
        );
    }
    out
}

fn print_events(runs: &[Run]) {
    let twins = runs.iter().filter_map(|r| {
        let name = format!("{} (leak-free twin)", r.scenario.name);
        Some((name, &r.scenario, r.twin_events.as_ref()?))
    });
    let traces = runs
        .iter()
        .map(|r| (r.scenario.name.to_owned(), &r.scenario, &r.events));
    for (name, sc, events) in traces.chain(twins) {
        let onset = sc
            .onset_ns()
            .map(|t| format!(", onset +{:.1}h", (t - sc.start_ns()) as f64 / 3.6e12));
        println!("{name}{}:", onset.unwrap_or_default());
        for e in events {
            let h = (e.event.t_ns - sc.start_ns()) as f64 / 3.6e12;
            let ttl = e
                .event
                .time_to_limit_seconds
                .map_or(String::new(), |s| format!(" limit in {:.1} h", s / 3600.0));
            println!(
                "  +{h:6.2}h {:<10} {:<40} {:>10.0} B/h  R²={:.2} signals={:?} component={:?}{ttl}",
                e.event.kind.event_name(),
                e.event.metric,
                e.event.growth_bytes_per_hour,
                e.event.r_squared,
                e.event.signals,
                e.event.component
            );
        }
    }
    println!();
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let show_events = args.iter().any(|a| a == "--events");
    let show_trace = args.iter().any(|a| a == "--trace");
    let holdout_only = args.iter().any(|a| a == "--holdout");
    let names: Vec<&String> = args.iter().filter(|a| !a.starts_with("--")).collect();
    let select = |set: Vec<Scenario>| -> Vec<Scenario> {
        set.into_iter()
            .filter(|s| names.is_empty() || names.iter().any(|n| *n == s.name))
            .collect()
    };
    let tuning = select(scenario::suite());
    let holdout = select(scenario::holdout());
    if tuning.is_empty() {
        eprintln!("No scenario matches {names:?}.");
        return ExitCode::from(64);
    }
    if show_trace {
        for sc in if holdout_only { &holdout } else { &tuning } {
            trace(sc);
        }
        return ExitCode::SUCCESS;
    }
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let replay = |set: &[Scenario]| Run::replay_all(set, &EngineConfig::default(), threads);
    let (tuning_runs, holdout_runs) = match (replay(&tuning), replay(&holdout)) {
        (Ok(t), Ok(h)) => (t, h),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("Replay failed: {e}");
            return ExitCode::from(2);
        }
    };
    if show_events {
        print_events(if holdout_only {
            &holdout_runs
        } else {
            &tuning_runs
        });
    }
    let t = SetReport::build(&tuning_runs, &Baselines::default());
    let h = SetReport::build(&holdout_runs, &Baselines::default());
    let sets = [("tuning", &t), ("holdout", &h)];
    print!("{}", practice::side_by_side(&sets));
    println!();
    let tc = Comparison::from_runs(&tuning_runs);
    let hc = Comparison::from_runs(&holdout_runs);
    print!(
        "{}",
        practice::twin_adjusted(&[("tuning", &tc), ("holdout", &hc)])
    );
    let verdict = practice::gate(&sets);
    match &verdict {
        Ok(()) => println!(
            "\nGate holds: in both sets no trap alarmed, no leak alarmed before its onset, recall ≥ both practices."
        ),
        Err(problems) => {
            println!("\nGate FAILS:");
            for p in problems {
                println!("  - {p}");
            }
        }
    }
    if names.is_empty() {
        print!("{}", sensitivity(&tuning_runs));
    }
    if verdict.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
