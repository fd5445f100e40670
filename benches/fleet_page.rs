//! The load check of the admin page (issue 15): 10,000 processes × 30 series tracked, then
//! the requests the page makes on each refresh, through the admin router (handler and JSON
//! encoding, no socket): the fleet view's first page of `/api/v1/resources` and
//! `/api/v1/leaks`, and the process view's detail, history and chart. Prints latency and
//! size of each (targets: the first page < 50 ms and < 100 KB), and the same first page for
//! a fleet of 10,000 processes × 3 series: equal figures show that the page's periodic work
//! walks the processes, never all their series (`GET /api/v1/series` without a filter, which
//! does, is printed beside it).
//!
//! `cargo bench --bench fleet_page` (a measurement, not a test: it asserts nothing). Under
//! `cargo test --all-targets` (no `--bench` argument) it runs once on a fleet of 200, so it
//! stays working without costing the test suite minutes.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use http_body_util::BodyExt;
use leakwatch::admin::{router, AdminState};
use leakwatch::engine::{Engine, EngineConfig};
use leakwatch::ops::telemetry::Telemetry;
use leakwatch_tools::loadgen::{Size, Workload, WorkloadConfig};
use tower::ServiceExt;

/// Processes, and one-minute cycles of the processes with a full history (48 h and a bit):
/// the measurement's, or the smoke test's under `cargo test`.
fn sizes(measure: bool) -> (usize, u64, usize) {
    if measure {
        (10_000, 2_900, 21)
    } else {
        (200, 10, 1)
    }
}

fn fleet(processes: usize, full_cycles: u64, series_per_process: usize) -> Arc<Engine> {
    let series = processes * series_per_process;
    let mut cfg = WorkloadConfig::fleet(Size::Collector, series);
    cfg.resources = processes;
    let workload = Workload::build(&cfg).expect("the workload builds");
    let engine = Engine::new(
        EngineConfig {
            max_series: 2 * series,
            ..EngineConfig::default()
        },
        Arc::new(Telemetry::new()),
    );
    for cycle in 0..3 {
        for i in 0..workload.requests().len() {
            let body = workload.render(i, cycle).expect("request");
            engine.ingest_metrics(body).expect("ingest");
        }
    }
    // The processes of the first request go on for 48 h of event time (a point a minute), so
    // their chart histories are full.
    for cycle in 3..full_cycles {
        let body = workload.render(0, cycle).expect("request");
        engine.ingest_metrics(body).expect("ingest");
    }
    Arc::new(engine)
}

/// Median and slowest latency (of `runs`) and body size of `GET path`.
async fn measure(state: &AdminState, path: &str, runs: usize) -> (f64, f64, usize, u16) {
    let mut times = Vec::with_capacity(runs);
    let mut size = 0;
    let mut status = 0;
    for _ in 0..runs {
        let request = http::Request::get(path)
            .body(Body::empty())
            .expect("request");
        let started = Instant::now();
        let response = router(state.clone())
            .oneshot(request)
            .await
            .expect("response");
        status = response.status().as_u16();
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        times.push(started.elapsed().as_secs_f64() * 1e3);
        size = body.len();
    }
    times.sort_by(f64::total_cmp);
    (times[runs / 2], times[runs - 1], size, status)
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test` does not.
    let (processes, full_cycles, runs) = sizes(std::env::args().any(|a| a == "--bench"));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        for per_process in [30, 3] {
            let started = Instant::now();
            let engine = fleet(processes, full_cycles, per_process);
            let tracked = engine.series_views(None).len();
            println!(
                "fleet_page: {} processes, {} series ({tracked} tracked), {} chart histories; built in {:.1} s",
                engine.resource_count(),
                engine.series_count(),
                engine.history_count(),
                started.elapsed().as_secs_f64()
            );
            let state = AdminState {
                engine: Arc::clone(&engine),
                queue: None,
                ready: Arc::new(AtomicBool::new(true)),
                token: None,
                heap_dumps: None,
            };
            // A process with a full chart history (one that ran for 48 h).
            let id = engine
                .resource_views()
                .into_iter()
                .max_by_key(|v| v.latest_unix_nano)
                .map(|v| v.id)
                .unwrap_or_default();
            let mut paths = vec![
                "/api/v1/resources".to_owned(),
                "/api/v1/resources?sort=time_to_limit&limit=50".to_owned(),
                "/api/v1/leaks".to_owned(),
                format!("/api/v1/resources/{id}"),
                format!("/api/v1/resources/{id}/history"),
                format!("/api/v1/resources/{id}/chart.svg"),
            ];
            if per_process == 30 {
                paths.push("/api/v1/series?limit=50".to_owned());
            }
            for path in paths {
                let (ms, max, bytes, status) = measure(&state, &path, runs).await;
                println!(
                    "fleet_page: {per_process:>2} series/process  GET {path:<48} {status} median {ms:7.2} ms (max {max:7.2})  {:7.1} KB",
                    bytes as f64 / 1e3
                );
            }
        }
    });
}
