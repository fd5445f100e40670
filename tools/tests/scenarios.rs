//! The validation suite: synthetic leaks and traps (`leakwatch_tools::scenario`) replayed in event
//! time through `Engine::ingest_metrics`, the path both receivers take, and the comparison
//! with the two common practices (`leakwatch_tools::practice`).
//!
//! Every scenario has its own test, so a failure names the trace. Leaks must be confirmed
//! after their onset, never before it, and stay open while the leak goes on; traps must never
//! be confirmed. Replays are cached: each trace goes through a fresh engine once per process.
//!
//! The holdout set (`scenario::holdout`, never used for tuning) is replayed too, for the gate
//! that `leak-report` exits with and for issue 13's targets. Targets the current detector does
//! not meet yet are `#[ignore]`d tests named `issue13_*` with the reason; run them with
//! `cargo test -p leakwatch-tools --test scenarios -- --ignored` and un-ignore each once it
//! passes.

use std::collections::BTreeSet;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use leakwatch::detector::{LeakEventKind, LimitSource};
use leakwatch::engine::{Engine, EngineConfig, EngineEvent};
use leakwatch::ops::telemetry::{PointAnomaly, Telemetry};
use leakwatch::otlp::proto::otlp::collector::metrics::v1::ExportMetricsServiceRequest;
use leakwatch_tools::practice::{self, Baselines, Method, Run, SetReport};
use leakwatch_tools::scenario::{self, Scenario};
use prost::Message;

fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Every scenario (and each leak's leak-free twin) replayed once through a fresh engine.
fn runs() -> &'static [Run] {
    static RUNS: OnceLock<Vec<Run>> = OnceLock::new();
    RUNS.get_or_init(|| {
        Run::replay_all(&scenario::suite(), &EngineConfig::default(), threads())
            .expect("every scenario replays")
    })
}

/// The holdout set, replayed the same way.
fn holdout_runs() -> &'static [Run] {
    static RUNS: OnceLock<Vec<Run>> = OnceLock::new();
    RUNS.get_or_init(|| {
        Run::replay_all(&scenario::holdout(), &EngineConfig::default(), threads())
            .expect("every holdout scenario replays")
    })
}

fn run(name: &str) -> &'static Run {
    runs()
        .iter()
        .find(|r| r.scenario.name == name)
        .unwrap_or_else(|| panic!("no scenario {name}"))
}

fn hours_into(sc: &Scenario, t_ns: u64) -> f64 {
    (t_ns as f64 - sc.start_ns() as f64) / 3.6e12
}

/// The events as lines for failure messages.
fn describe(sc: &Scenario, events: &[EngineEvent]) -> String {
    if events.is_empty() {
        return " (no events)".to_owned();
    }
    events
        .iter()
        .map(|e| {
            format!(
                "\n    +{:.2}h {} {} {:.0} B/h signals={:?}",
                hours_into(sc, e.event.t_ns),
                e.event.kind.event_name(),
                e.event.metric,
                e.event.growth_bytes_per_hour,
                e.event.signals
            )
        })
        .collect()
}

fn check_leak(name: &str) {
    let run = run(name);
    let sc = &run.scenario;
    assert!(sc.is_leak, "{name} is not a leak scenario");
    let onset = sc.onset_ns().expect("a leak has an onset");
    let events = &run.events;
    let of = |kind: LeakEventKind| events.iter().filter(move |e| e.event.kind == kind);
    let early: Vec<_> = of(LeakEventKind::Confirmed)
        .filter(|e| e.event.t_ns < onset)
        .collect();
    assert!(
        early.is_empty(),
        "{name}: confirmed before the leak began (at +{:.1}h, onset +{:.1}h):{}",
        hours_into(sc, early[0].event.t_ns),
        hours_into(sc, onset),
        describe(sc, events)
    );
    let confirmed = of(LeakEventKind::Confirmed).find(|e| e.event.t_ns >= onset);
    let Some(confirmed) = confirmed else {
        panic!(
            "{name}: leak ({}) never confirmed after its onset at +{:.1}h:{}",
            sc.summary,
            hours_into(sc, onset),
            describe(sc, events)
        );
    };
    let resolved = of(LeakEventKind::Resolved).find(|e| e.event.t_ns > confirmed.event.t_ns);
    assert!(
        resolved.is_none(),
        "{name}: incident resolved while the leak goes on:{}",
        describe(sc, events)
    );
}

fn check_trap(name: &str) {
    let run = run(name);
    let sc = &run.scenario;
    assert!(!sc.is_leak, "{name} is a leak scenario");
    assert!(
        !run.events
            .iter()
            .any(|e| e.event.kind == LeakEventKind::Confirmed),
        "{name}: trap ({}) confirmed as a leak:{}",
        sc.summary,
        describe(sc, &run.events)
    );
}

macro_rules! scenario_tests {
    (leaks: [$($leak:ident => $lname:literal,)*] traps: [$($trap:ident => $tname:literal,)*]) => {
        $(
            #[test]
            fn $leak() {
                check_leak($lname);
            }
        )*
        $(
            #[test]
            fn $trap() {
                check_trap($tname);
            }
        )*

        /// Every scenario of the suite has its test above.
        #[test]
        fn every_scenario_has_a_test() {
            let tested: BTreeSet<&str> = [$($lname,)* $($tname,)*].into_iter().collect();
            let suite: BTreeSet<&str> = scenario::suite().iter().map(|s| s.name).collect();
            assert_eq!(tested, suite);
        }
    };
}

scenario_tests! {
    leaks: [
    leak_node_8mb_per_hour => "node-leak-8mb-h",
    leak_jvm_2mb_per_hour => "jvm-leak-2mb-h",
    leak_go_600kb_per_hour_on_200mb_heap => "go-leak-600kb-h",
    leak_node_600kb_per_hour_on_200mb_heap => "node-leak-600kb-h",
    leak_jvm_under_large_sawtooth => "jvm-leak-under-large-sawtooth",
    leak_dotnet_onset_mid_trace => "dotnet-leak-onset-midtrace",
    leak_jvm_oom_restart_cycles => "jvm-oom-restart-cycles",
    leak_node_oom_restart_cycles => "node-oom-restart-cycles",
    leak_node_native_outside_the_heap => "node-native-leak-10mb-h",
    leak_node_traffic_proportional => "node-traffic-proportional-leak",
    leak_python_rss => "python-rss-leak",
    leak_go_goroutines => "go-goroutine-leak",
    leak_python_as_the_guide_instruments_it => "pyguide-leak-4mb-h",
    leak_node_fast_20mib_per_hour => "node-fast-leak-20mib-h",
    leak_node_fast_50mib_per_hour => "node-fast-leak-50mib-h",
    leak_node_oom_cycle_of_7_7_hours => "node-oom-cycle-7.7h",
    leak_python_tracemalloc_for_48_hours_is_never_resolved => "pyguide-tracemalloc-4mib-h-48h",
    leak_python_dict_objects => "pyguide-dict-objects-leak",
    leak_node_in_a_pod_whose_limit_only_the_collector_reports => "node-pod-limit-leak",
    ]
    traps: [
    trap_jvm_healthy_large_sawtooth => "jvm-healthy-large-sawtooth",
    trap_node_cache_warmup => "node-cache-warmup",
    trap_go_daily_traffic_wave => "go-daily-traffic-wave",
    trap_dotnet_one_off_step => "dotnet-one-off-step",
    trap_jvm_periodic_deploys => "jvm-periodic-deploys",
    trap_dotnet_nightly_batch => "dotnet-nightly-batch",
    trap_node_rising_peaks_flat_floor => "node-rising-peaks-flat-floor",
    trap_python_daily_wave => "python-daily-wave",
    trap_python_as_the_guide_instruments_it_daily_wave => "pyguide-daily-wave",
    trap_container_page_cache => "container-page-cache-12mib-h",
    trap_python_delta_temporality_daily_wave => "python-delta-daily-wave",
    ]
}

/// The warning level too stays quiet on every trap.
#[test]
fn trap_suspicions_end_resolved_within_the_trace() {
    // The fast window suspects strong growth after 30 min (a young process's after 1.5 h): a
    // batch job or a warm-up may be *suspected* (a warning, never a page), but every such
    // suspicion must end with `resolved` once the growth stops, and none is confirmed.
    let open: Vec<String> = runs()
        .iter()
        .filter(|r| !r.scenario.is_leak)
        .filter_map(|r| {
            let last = r.events.last()?;
            (last.event.kind != LeakEventKind::Resolved).then(|| {
                format!(
                    "{} ({:?} at +{:.1}h on {} {:?})",
                    r.scenario.name,
                    last.event.kind,
                    hours_into(&r.scenario, last.event.t_ns),
                    last.event.metric,
                    last.event.signals
                )
            })
        })
        .collect();
    let traps = runs().iter().filter(|r| !r.scenario.is_leak).count();
    assert!(
        open.is_empty(),
        "{}/{traps} traps end the trace with an open incident: {open:#?}",
        open.len()
    );
}

/// A leak scenario without its leak is a healthy process: it must not be confirmed either.
#[test]
fn leak_free_twins_are_never_confirmed() {
    let alarmed: Vec<String> = runs()
        .iter()
        .filter_map(|r| {
            let twin = r.twin_events.as_ref()?;
            let e = twin
                .iter()
                .find(|e| e.event.kind == LeakEventKind::Confirmed)?;
            Some(format!(
                "{} without its leak: confirmed at +{:.1}h on {} ({:.0} B/h, signals {:?})",
                r.scenario.name,
                hours_into(&r.scenario, e.event.t_ns),
                e.event.metric,
                e.event.growth_bytes_per_hour,
                e.event.signals
            ))
        })
        .collect();
    assert!(alarmed.is_empty(), "healthy twins confirmed: {alarmed:#?}");
}

/// Event time only: the same trace through a fresh engine gives exactly the same events, so a
/// replay at 10,000× says what live traffic would have said.
#[test]
fn replay_is_deterministic() {
    for run in runs() {
        let engine = Engine::new(EngineConfig::default(), Arc::new(Telemetry::new()));
        let again = run.scenario.replay(&engine).expect("replays");
        let key = |events: &[EngineEvent]| -> Vec<_> {
            events
                .iter()
                .map(|e| {
                    (
                        e.resource.service_name.clone(),
                        e.resource.instance.clone(),
                        e.event.clone(),
                    )
                })
                .collect()
        };
        assert_eq!(
            key(&again),
            key(&run.events),
            "{}: a second replay differs",
            run.scenario.name
        );
    }
}

/// splitmix64, for the shuffle.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) % n as u64) as usize
    }
}

fn time_of(request: &ExportMetricsServiceRequest) -> u64 {
    use leakwatch::otlp::proto::otlp::metrics::v1::metric::Data;
    request
        .resource_metrics
        .iter()
        .flat_map(|rm| &rm.scope_metrics)
        .flat_map(|sm| &sm.metrics)
        .filter_map(|m| match m.data.as_ref()? {
            Data::Sum(s) => s.data_points.first().map(|p| p.time_unix_nano),
            Data::Gauge(g) => g.data_points.first().map(|p| p.time_unix_nano),
            Data::Histogram(h) => h.data_points.first().map(|p| p.time_unix_nano),
            _ => None,
        })
        .next()
        .unwrap_or(0)
}

/// All processes through one engine, their requests interleaved by event time and then
/// shuffled within windows of 16 (a few tens of seconds: several collectors, retries): the
/// same traces are confirmed as leaks.
#[test]
fn shuffled_interleaved_requests_give_the_same_verdicts() {
    const WINDOW: usize = 16;
    let suite = scenario::suite();
    let engine = Engine::new(EngineConfig::default(), Arc::new(Telemetry::new()));
    let mut traces: Vec<_> = suite.iter().map(|s| s.requests().peekable()).collect();
    let mut rng = Rng(0x5107_FF1E);
    let mut window: Vec<ExportMetricsServiceRequest> = Vec::with_capacity(WINDOW);
    let mut events: Vec<EngineEvent> = Vec::new();
    let mut ingest = |batch: &mut Vec<ExportMetricsServiceRequest>, rng: &mut Rng| {
        // Fisher-Yates.
        for i in (1..batch.len()).rev() {
            batch.swap(i, rng.below(i + 1));
        }
        for request in batch.drain(..) {
            let outcome = engine
                .ingest_metrics(Bytes::from(request.encode_to_vec()))
                .expect("ingests");
            events.extend(outcome.events);
        }
    };
    loop {
        let next = traces
            .iter_mut()
            .enumerate()
            .filter_map(|(i, t)| Some((time_of(t.peek()?), i)))
            .min();
        let Some((_, i)) = next else { break };
        if let Some(request) = traces[i].next() {
            window.push(request);
        }
        if window.len() == WINDOW {
            ingest(&mut window, &mut rng);
        }
    }
    ingest(&mut window, &mut rng);
    // Some windows held two exports of the same process: their points arrived out of order.
    let reordered = engine.telemetry().point_anomalies(PointAnomaly::OutOfOrder);
    assert!(
        reordered > 0,
        "the shuffle never reordered a process' own exports"
    );

    let confirmed = |events: &[EngineEvent], sc: &Scenario| {
        let onset = sc.onset_ns().unwrap_or(0);
        events.iter().any(|e| {
            e.resource.instance == sc.instance()
                && e.event.kind == LeakEventKind::Confirmed
                && e.event.t_ns >= onset
        })
    };
    let mut differ = Vec::new();
    for sc in &suite {
        let alone = confirmed(&run(sc.name).events, sc);
        let mixed = confirmed(&events, sc);
        if alone != mixed {
            differ.push(format!("{}: alone {alone}, shuffled {mixed}", sc.name));
        }
    }
    assert!(differ.is_empty(), "verdicts differ: {differ:#?}");
}

/// leak-report's gate (its exit status): in the tuning set and in the holdout, no trap is
/// alarmed, no leak is alarmed before its onset, and leakwatch confirms at least as many leaks
/// as each practice. `cargo run --release -p leakwatch-tools --bin leak-report` prints the same
/// tables.
#[test]
fn gate_holds_on_tuning_and_holdout() {
    let tuning = SetReport::build(runs(), &Baselines::default());
    let holdout = SetReport::build(holdout_runs(), &Baselines::default());
    let sets = [("tuning", &tuning), ("holdout", &holdout)];
    let table = practice::side_by_side(&sets);
    println!("{table}");
    if let Err(problems) = practice::gate(&sets) {
        panic!("the gate fails: {problems:#?}\n{table}");
    }
}

/// Both sets' leaks with the issue's named fast-leak class.
fn in_both_sets(name: &str) -> [&'static Run; 2] {
    let holdout = holdout_runs()
        .iter()
        .find(|r| r.scenario.name == name)
        .unwrap_or_else(|| panic!("no holdout scenario {name}"));
    [run(name), holdout]
}

fn first_after(run: &Run, kind: LeakEventKind, onset: u64) -> Option<f64> {
    run.events
        .iter()
        .find(|e| e.event.kind == kind && e.event.t_ns >= onset)
        .map(|e| (e.event.t_ns - onset) as f64 / 3.6e12)
}

/// Issue 13: a leak of tens of MiB/h on a heap of a few hundred MiB is suspected within ~1 h
/// and confirmed within ~2 h of its onset, in both sets.
#[test]
#[ignore = "issue 13: fast-confirm target not met (tuning: 20 MiB/h suspected +3.8 h, confirmed +9.0 h; 50 MiB/h +0.9 h, +3.4 h; confirming within 2 h would page on the nightly batch, tools/SCENARIO_FINDINGS.md F13)"]
fn issue13_fast_leaks_suspected_within_1h_and_confirmed_within_2h() {
    let mut late = Vec::new();
    for name in ["node-fast-leak-20mib-h", "node-fast-leak-50mib-h"] {
        for (set, run) in ["tuning", "holdout"].iter().zip(in_both_sets(name)) {
            let onset = run.scenario.onset_ns().expect("a leak");
            let suspected = first_after(run, LeakEventKind::Suspected, onset).or(first_after(
                run,
                LeakEventKind::Confirmed,
                onset,
            ));
            let confirmed = first_after(run, LeakEventKind::Confirmed, onset);
            if !(suspected.is_some_and(|h| h <= 1.0) && confirmed.is_some_and(|h| h <= 2.0)) {
                late.push(format!(
                    "{name} ({set}): suspected +{suspected:?} h, confirmed +{confirmed:?} h"
                ));
            }
        }
    }
    assert!(late.is_empty(), "too slow: {late:#?}");
}

/// Issue 13: a leak whose process crashes out of memory is confirmed with at least half of
/// the time from its onset to the first crash left (the 7.7 h OOM cycle: by ~3.5 h), in both
/// sets.
#[test]
#[ignore = "issue 13: half the time to the OOM left not met (tuning node-oom-cycle-7.7h: confirmed +7.3 h, first OOM +7.7 h)"]
fn issue13_oom_leaks_confirmed_with_half_the_time_to_the_crash_left() {
    let mut late = Vec::new();
    for (set, runs) in [("tuning", runs()), ("holdout", holdout_runs())] {
        for run in runs {
            let sc = &run.scenario;
            let Some(onset) = sc.onset_ns() else { continue };
            let Some(oom) = sc.oom_times_ns().into_iter().find(|&t| t >= onset) else {
                continue;
            };
            let by = (oom - onset) as f64 / 3.6e12 / 2.0;
            let confirmed = first_after(run, LeakEventKind::Confirmed, onset);
            if !confirmed.is_some_and(|h| h <= by) {
                late.push(format!(
                    "{} ({set}): confirmed +{confirmed:?} h, needed by +{by:.1} h",
                    sc.name
                ));
            }
        }
    }
    assert!(late.is_empty(), "too late: {late:#?}");
}

/// Issue 13: an OOM-restart cycle is one incident: confirmed once, never resolved while the
/// new processes keep leaking (four crashes in the trace).
#[test]
fn issue13_oom_cycle_is_one_incident_through_every_restart() {
    for (set, run) in ["tuning", "holdout"]
        .iter()
        .zip(in_both_sets("node-oom-cycle-7.7h"))
    {
        let sc = &run.scenario;
        assert!(sc.oom_times_ns().len() >= 2, "{set}: the trace must cycle");
        let count = |kind| run.events.iter().filter(|e| e.event.kind == kind).count();
        assert_eq!(
            (
                count(LeakEventKind::Confirmed),
                count(LeakEventKind::Resolved)
            ),
            (1, 0),
            "{set}: one incident, never resolved:{}",
            describe(sc, &run.events)
        );
    }
}

/// Issue 13: a Python leak carried by one object type names it (the seed's
/// `process.runtime.python.objects`: the type whose count grows with the floor).
#[test]
fn issue13_dict_object_leak_names_its_type() {
    for (set, run) in ["tuning", "holdout"]
        .iter()
        .zip(in_both_sets("pyguide-dict-objects-leak"))
    {
        let confirmed = run
            .events
            .iter()
            .find(|e| e.event.kind == LeakEventKind::Confirmed)
            .unwrap_or_else(|| panic!("{set}: not confirmed"));
        assert_eq!(
            confirmed.event.component.as_deref(),
            Some("object.type=dict"),
            "{set}: {:?}",
            confirmed.event
        );
    }
}

/// Issue 13: an SDK process that names its pod gets the memory limit the Collector reports on
/// its container's own resource, and forecasts the time to it.
#[test]
fn issue13_pod_limit_is_joined_to_the_sdk_process() {
    for (set, run) in ["tuning", "holdout"]
        .iter()
        .zip(in_both_sets("node-pod-limit-leak"))
    {
        let limit = run.scenario.model.limit.expect("the scenario has a limit");
        let confirmed = run
            .events
            .iter()
            .find(|e| e.event.kind == LeakEventKind::Confirmed)
            .unwrap_or_else(|| panic!("{set}: not confirmed"));
        let e = &confirmed.event;
        assert_eq!(
            confirmed.resource.service_name, run.scenario.name,
            "{set}: the SDK process, not the container's resource: {e:?}"
        );
        assert_eq!(e.limit_source, Some(LimitSource::Container), "{set}: {e:?}");
        assert!(
            e.limit_bytes.is_some_and(|l| (l - limit).abs() < 1.0),
            "{set}: limit {limit}: {e:?}"
        );
        let truth = run
            .scenario
            .time_to_oom_s(e.t_ns)
            .expect("the live set grows towards the limit");
        let forecast = e.time_to_limit_seconds.expect("a forecast");
        assert!(
            (forecast - truth).abs() <= 0.5 * truth,
            "{set}: forecast {forecast} s, truth {truth} s"
        );
    }
}

/// Issue 13: the forecast at the first confirmation is within 25 % of the true time to the
/// crash (median over the leaks with a forecast), in both sets. Passing since the pod-limit
/// class joined the suite (6 forecasts a set; holdout median 31 % → 14 %): the holdout's JVM
/// and Go forecasts are still 31–52 % off (README, How detection works).
#[test]
fn issue13_forecast_error_median_within_25_percent() {
    for (set, runs) in [("tuning", runs()), ("holdout", holdout_runs())] {
        let f = SetReport::build(runs, &Baselines::default()).figures(Method::Leakwatch);
        assert!(
            f.forecast_error_median.is_some_and(|e| e <= 0.25),
            "{set}: median forecast error {:?} over {} forecasts",
            f.forecast_error_median,
            f.forecasts_given
        );
    }
}

/// Each confirmation says what leaks (the leading series' attributes, or native memory) and the
/// runtime's next diagnostic step.
#[test]
fn confirmations_say_what_leaks_and_what_to_do_next() {
    let confirmed = |name: &str| {
        run(name)
            .events
            .iter()
            .find(|e| e.event.kind == LeakEventKind::Confirmed)
            .unwrap_or_else(|| panic!("{name} is not confirmed"))
            .event
            .clone()
    };
    let node = confirmed("node-leak-8mb-h");
    assert_eq!(
        node.component.as_deref(),
        Some("v8js.heap.space.name=old_space"),
        "{node:?}"
    );
    assert!(node.next_step.is_some_and(|s| s.contains("heap snapshot")));
    let jvm = confirmed("jvm-leak-2mb-h");
    assert!(
        jvm.component
            .as_deref()
            .is_some_and(|c| c.contains("jvm.memory.pool.name=G1 Old Gen")),
        "{jvm:?}"
    );
    assert!(jvm.next_step.is_some_and(|s| s.contains("GC.heap_dump")));
    let native = confirmed("node-native-leak-10mb-h");
    assert_eq!(native.component.as_deref(), Some("native"), "{native:?}");
    assert!(native
        .next_step
        .is_some_and(|s| s.contains("native memory")));
}
