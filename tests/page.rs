//! The fleet API and the page: paginated, filtered and sorted processes and series, one
//! process's detail and chart history, auth, and the page itself driven in a real headless
//! chromium (Debian's `chromium`; `scripts/setup-test-env.sh` installs it). Traces are
//! replayed in event time with seconds-scale detector windows.

mod common;

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

use common::*;
use leakwatch::config::{AuthConfig, Config};
use leakwatch::detector::DetectorConfig;
use leakwatch::otlp::proto::otlp::collector::metrics::v1::ExportMetricsServiceRequest;
use prost::Message;
use serde_json::Value;

const S: u64 = 1_000_000_000;
/// 2023-11-14T22:13:20Z: realistic event times.
const T0: u64 = 1_700_000_000 * S;
const MB: f64 = 1e6;

fn config() -> Config {
    let mut c = test_config(None);
    c.detector = DetectorConfig::with_windows(Duration::from_secs(60), Duration::from_secs(120));
    c
}

/// A Go process's heap and limit at `step` seconds: the heap floor grows `slope` bytes/s from
/// `base` under a small sawtooth.
fn go_process(
    service: &str,
    instance: &str,
    step: u64,
    base: f64,
    slope: f64,
    limit: f64,
) -> ExportMetricsServiceRequest {
    let t = T0 + step * S;
    let saw = (step % 5) as f64 * 1e6;
    request(
        resource(service, instance),
        vec![
            gauge_metric(
                "go.memory.used",
                "By",
                vec![number_point(t, base + slope * step as f64 + saw, vec![])],
            ),
            gauge_metric(
                "go.memory.limit",
                "By",
                vec![number_point(t, limit, vec![])],
            ),
        ],
    )
}

/// Requests served per second and collections per second by the browser test's leak.
const RPS: f64 = 50.0;
const GCS: f64 = 3.0;

/// [`go_process`] with its request and collection counters (cumulative since `T0`).
fn go_process_counting(p: (&str, &str, f64, f64, f64), step: u64) -> ExportMetricsServiceRequest {
    let mut req = go_process(p.0, p.1, step, p.2, p.3, p.4);
    let t = T0 + step * S;
    req.resource_metrics[0].scope_metrics[0].metrics.extend([
        counter("http.server.requests", T0, t, RPS * step as f64),
        counter("process.runtime.go.gc.count", T0, t, GCS * step as f64),
    ]);
    req
}

async fn send(lw: &Running, req: ExportMetricsServiceRequest) {
    let (status, _, body) = http_request(
        "POST",
        &lw.http_url("/v1/metrics"),
        &[("content-type", "application/x-protobuf")],
        req.encode_to_vec(),
    )
    .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
}

async fn get_json(lw: &Running, path: &str) -> (u16, Value) {
    let (status, _, body) = http_request("GET", &lw.admin_url(path), &[], vec![]).await;
    let v = serde_json::from_slice(&body).unwrap_or(Value::Null);
    (status, v)
}

async fn ok_json(lw: &Running, path: &str) -> Value {
    let (status, v) = get_json(lw, path).await;
    assert_eq!(status, 200, "{path}: {v}");
    v
}

/// Replays `steps` seconds of several processes at once, one request per second.
async fn replay(lw: &Running, steps: std::ops::Range<u64>, procs: &[(&str, &str, f64, f64, f64)]) {
    for step in steps {
        let mut all = ExportMetricsServiceRequest::default();
        for (service, instance, base, slope, limit) in procs {
            all.resource_metrics.extend(
                go_process(service, instance, step, *base, *slope, *limit).resource_metrics,
            );
        }
        send(lw, all).await;
    }
}

/// Seven processes of three services, growing at different rates (one not at all).
const FLEET: [(&str, &str, f64, f64, f64); 7] = [
    ("checkout", "pod-1", 100.0 * MB, 400e3, 2e9),
    ("checkout", "pod-2", 100.0 * MB, 200e3, 2e9),
    ("checkout", "pod-3", 100.0 * MB, 0.0, 2e9),
    ("billing", "pod-1", 200.0 * MB, 300e3, 2e9),
    ("billing", "pod-2", 200.0 * MB, 100e3, 2e9),
    ("search", "pod-1", 50.0 * MB, 50e3, 2e9),
    ("search", "pod-2", 50.0 * MB, 0.0, 2e9),
];

fn ids(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|v| v["id"].as_str().expect("id").to_owned())
        .collect()
}

/// Every page of `path` (which has no cursor yet), following `next_cursor`.
async fn all_pages(lw: &Running, path: &str) -> Vec<Value> {
    let mut pages = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let url = match &cursor {
            Some(c) => format!("{path}&cursor={c}"),
            None => path.to_owned(),
        };
        let page = ok_json(lw, &url).await;
        cursor = page["next_cursor"].as_str().map(str::to_owned);
        pages.push(page);
        if cursor.is_none() || pages.len() > 100 {
            break;
        }
    }
    pages
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resources_are_paginated_filtered_and_sorted_server_side() {
    let lw = start(config()).await;
    replay(&lw, 0..150, &FLEET).await;

    let first = ok_json(&lw, "/api/v1/resources").await;
    assert_eq!(first["total"], 7);
    assert_eq!(first["count"], 7);
    assert!(first.get("next_cursor").is_none());
    // Sorted by growth, fastest first, by default.
    let growth: Vec<f64> = first["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|v| {
            v["summary"]["growth_bytes_per_hour"]
                .as_f64()
                .expect("growth")
        })
        .collect();
    assert!(growth.windows(2).all(|w| w[0] >= w[1]), "{growth:?}");
    assert!(growth[0] > growth[6], "the replay grows: {growth:?}");
    assert_eq!(
        first["items"][0]["resource"]["service_name"], "checkout",
        "400 KB/s is the fastest"
    );

    // Pages of 3 walk every process once, in the same order as one page of 50.
    let pages = all_pages(&lw, "/api/v1/resources?limit=3").await;
    assert_eq!(pages.len(), 3);
    assert_eq!(
        pages
            .iter()
            .map(|p| p["count"].as_u64().unwrap_or(0))
            .collect::<Vec<_>>(),
        [3, 3, 1]
    );
    assert!(pages.iter().all(|p| p["total"] == 7));
    let paged: Vec<String> = pages.iter().flat_map(ids).collect();
    assert_eq!(paged, ids(&first));
    assert_eq!(paged.iter().collect::<HashSet<_>>().len(), 7);

    // By name: service, then instance; also paginated.
    let by_name: Vec<Value> = all_pages(&lw, "/api/v1/resources?sort=name&limit=2").await;
    let names: Vec<(String, String)> = by_name
        .iter()
        .flat_map(|p| p["items"].as_array().cloned().unwrap_or_default())
        .map(|v| {
            (
                v["resource"]["service_name"]
                    .as_str()
                    .unwrap_or("")
                    .to_owned(),
                v["resource"]["instance"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);
    assert_eq!(names.len(), 7);

    // A process arriving between two pages does not shift the next one: the cursor is the
    // last item's sort key, not an offset.
    let page1 = ok_json(&lw, "/api/v1/resources?sort=name&limit=3").await;
    let cursor = page1["next_cursor"]
        .as_str()
        .expect("more pages")
        .to_owned();
    replay(
        &lw,
        150..151,
        &[("aaa-first", "pod-0", 10.0 * MB, 0.0, 2e9)],
    )
    .await;
    let page2 = ok_json(
        &lw,
        &format!("/api/v1/resources?sort=name&limit=3&cursor={cursor}"),
    )
    .await;
    let expected: Vec<String> = by_name
        .iter()
        .flat_map(|p| p["items"].as_array().cloned().unwrap_or_default())
        .skip(3)
        .take(3)
        .map(|v| v["id"].as_str().unwrap_or("").to_owned())
        .collect();
    assert_eq!(ids(&page2), expected);
    assert_eq!(page2["total"], 8);

    // Filters.
    let billing = ok_json(&lw, "/api/v1/resources?service.name=billing").await;
    assert_eq!(billing["total"], 2);
    assert!(billing["items"]
        .as_array()
        .expect("items")
        .iter()
        .all(|v| v["resource"]["service_name"] == "billing"));
    let q = ok_json(&lw, "/api/v1/resources?q=POD-2").await;
    assert_eq!(q["total"], 3);
    let by_id = ok_json(&lw, &format!("/api/v1/resources?q={}", ids(&first)[0])).await;
    assert_eq!(ids(&by_id), [ids(&first)[0].clone()]);
    let ok = ok_json(&lw, "/api/v1/resources?state=ok").await;
    let open = ok_json(&lw, "/api/v1/resources?state=suspected,confirmed").await;
    assert_eq!(
        ok["total"].as_u64().unwrap_or(0) + open["total"].as_u64().unwrap_or(0),
        8
    );
    let leaks = ok_json(&lw, "/api/v1/leaks").await;
    assert_eq!(open["total"], leaks["count"]);

    // By time to limit: forecasts first, soonest first.
    let ttl = ok_json(&lw, "/api/v1/resources?sort=time_to_limit").await;
    let t: Vec<Option<f64>> = ttl["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|v| v["summary"]["time_to_limit_seconds"].as_f64())
        .collect();
    let known: Vec<f64> = t.iter().map_while(|x| *x).collect();
    assert!(known.windows(2).all(|w| w[0] <= w[1]), "{t:?}");
    assert!(t[known.len()..].iter().all(Option::is_none), "{t:?}");

    // Ids are stable: the same on every call, and they open the process.
    let again = ok_json(&lw, "/api/v1/resources").await;
    let newcomer = ok_json(&lw, "/api/v1/resources?service.name=aaa-first").await;
    let newcomer = ids(&newcomer);
    assert_eq!(newcomer.len(), 1);
    let unchanged: Vec<String> = ids(&again)
        .into_iter()
        .filter(|i| *i != newcomer[0])
        .collect();
    assert_eq!(unchanged, ids(&first));
    let detail = ok_json(&lw, &format!("/api/v1/resources/{}", ids(&first)[0])).await;
    assert_eq!(detail["id"], first["items"][0]["id"]);
    // Its small charts: the two signals by name, anything else is not found.
    for (name, status) in [
        ("gc_per_minute.svg", 200),
        ("memory_per_request.svg", 200),
        ("rss.svg", 404),
        ("gc_per_minute", 404),
    ] {
        let path = format!("/api/v1/resources/{}/signals/{name}", ids(&first)[0]);
        let (got, headers, body) = http_request("GET", &lw.admin_url(&path), &[], vec![]).await;
        assert_eq!(got, status, "{path}");
        if status == 200 {
            assert!(
                headers
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|v| v.starts_with("image/svg+xml")),
                "{headers:?}"
            );
            // The fleet sends no request or GC counts: said in words.
            assert!(String::from_utf8_lossy(&body).contains("Not reported by this process."));
        }
    }

    // Bad parameters are named.
    for (path, param) in [
        ("/api/v1/resources?sort=size", "sort"),
        ("/api/v1/resources?limit=0", "limit"),
        ("/api/v1/resources?limit=100000", "limit"),
        ("/api/v1/resources?state=leaking", "state"),
        ("/api/v1/resources?cursor=zz", "cursor"),
        ("/api/v1/series?cursor=00", "cursor"),
        ("/api/v1/series?resource=abc", "resource"),
    ] {
        let (status, v) = get_json(&lw, path).await;
        assert_eq!(status, 400, "{path}");
        assert!(
            v["error"].as_str().unwrap_or("").starts_with(param),
            "{path}: {v}"
        );
    }
    for path in [
        "/api/v1/resources/0123456789abcdef",
        "/api/v1/resources/nothex/history",
        "/api/v1/resources/0123456789abcdef/chart.svg",
        "/api/v1/resources/0123456789abcdef/signals/gc_per_minute.svg",
    ] {
        assert_eq!(get_json(&lw, path).await.0, 404, "{path}");
    }
    lw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn series_are_paginated_like_resources() {
    let lw = start(config()).await;
    replay(&lw, 0..3, &FLEET).await;
    // Two series (heap, limit) per process.
    let pages = all_pages(&lw, "/api/v1/series?limit=4").await;
    assert!(pages.iter().all(|p| p["total"] == 14));
    let items: Vec<Value> = pages
        .iter()
        .flat_map(|p| p["items"].as_array().cloned().unwrap_or_default())
        .collect();
    assert_eq!(items.len(), 14);
    assert_eq!(pages.len(), 4);
    let keys: HashSet<&str> = items.iter().filter_map(|v| v["key"].as_str()).collect();
    assert_eq!(keys.len(), 14);
    let order: Vec<(String, String, String)> = items
        .iter()
        .map(|v| {
            (
                v["service_name"].as_str().unwrap_or("").to_owned(),
                v["instance"].as_str().unwrap_or("").to_owned(),
                v["metric"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    let mut sorted = order.clone();
    sorted.sort();
    assert_eq!(order, sorted);
    let search = ok_json(&lw, "/api/v1/series?service.name=search").await;
    assert_eq!(search["total"], 4);
    let one = items[0]["resource_id"].as_str().expect("resource id");
    let of_one = ok_json(&lw, &format!("/api/v1/series?resource={one}")).await;
    assert_eq!(of_one["total"], 2);
    assert!(of_one["items"]
        .as_array()
        .expect("items")
        .iter()
        .all(|v| v["resource_id"] == one));
    lw.stop().await;
}

/// The leak of the browser test: a Go heap growing 400 KB/s from 100 MB towards a 300 MB
/// limit, beside a healthy process at 80 MB.
const LEAK: (&str, &str, f64, f64, f64) = ("checkout", "pod-7", 100.0 * MB, 400e3, 300.0 * MB);
const HEALTHY: (&str, &str, f64, f64, f64) = ("catalog", "pod-2", 80.0 * MB, 0.0, 300.0 * MB);
/// Longer than the history's ring (240 s with these windows): its oldest points have left it.
const LEAK_STEPS: u64 = 420;
/// Within the ring, so the chart shows the incident's marks too.
const PAGE_STEPS: u64 = 235;

/// Distinct history buckets the replay's points of `0..steps` fall in, within the ring's
/// span ending at the newest.
fn expected_buckets(steps: u64, bucket_ns: u64, ring: u64) -> usize {
    let idx: Vec<u64> = (0..steps).map(|s| (T0 + s * S) / bucket_ns).collect();
    let head = *idx.last().expect("points");
    idx.iter()
        .filter(|&&i| head - i < ring)
        .collect::<HashSet<_>>()
        .len()
}

async fn leak_id(lw: &Running) -> String {
    leak_id_of(lw, "checkout").await
}

/// The id of the one open incident, which must be `service`'s.
async fn leak_id_of(lw: &Running, service: &str) -> String {
    let leaks = ok_json(lw, "/api/v1/leaks").await;
    let items = leaks["items"].as_array().cloned().unwrap_or_default();
    assert_eq!(items.len(), 1, "{leaks}");
    assert_eq!(items[0]["resource"]["service_name"], service);
    items[0]["id"].as_str().expect("id").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_has_its_detail_and_its_chart_history() {
    let lw = start(config()).await;
    replay(&lw, 0..LEAK_STEPS, &[LEAK, HEALTHY]).await;
    let id = leak_id(&lw).await;
    // `/api/v1/leaks` keeps its shape (plus the id).
    let leaks = ok_json(&lw, "/api/v1/leaks").await;
    for k in ["resource", "state", "latest_unix_nano", "summary"] {
        assert!(leaks["items"][0].get(k).is_some(), "{k}");
    }

    let d = ok_json(&lw, &format!("/api/v1/resources/{id}")).await;
    assert_eq!(d["attributes"]["service.instance.id"], "pod-7");
    assert_eq!(d["series"].as_array().map(Vec::len), Some(2));
    let kinds: Vec<&str> = d["incidents"]
        .as_array()
        .expect("incidents")
        .iter()
        .filter_map(|i| i["kind"].as_str())
        .collect();
    assert_eq!(kinds, ["suspected", "confirmed"]);
    assert_eq!(d["state"], "confirmed");

    let h = ok_json(&lw, &format!("/api/v1/resources/{id}/history")).await;
    assert_eq!(h["series"]["metric"], "go.memory.used");
    assert_eq!(h["series"]["key"], d["chart_series"]);
    let bucket_ns = (h["bucket_seconds"].as_f64().expect("width") * 1e9).round() as u64;
    let n = h["buckets"]["t_unix_nano"].as_array().map_or(0, Vec::len);
    assert_eq!(
        n,
        expected_buckets(
            LEAK_STEPS,
            bucket_ns,
            leakwatch::engine::history::HISTORY_BUCKETS as u64
        )
    );
    for col in ["min", "max", "last"] {
        assert_eq!(h["buckets"][col].as_array().map_or(0, Vec::len), n, "{col}");
    }
    // The newest bucket holds the newest point (exact to the history's quantum).
    let last_step = LEAK_STEPS - 1;
    let newest = LEAK.2 + LEAK.3 * last_step as f64 + (last_step % 5) as f64 * 1e6;
    let got = h["buckets"]["last"][n - 1].as_f64().expect("last");
    assert!(
        (got - newest).abs() <= newest / 32_000.0,
        "{got} vs {newest}"
    );
    let marks: Vec<&str> = h["marks"]
        .as_array()
        .expect("marks")
        .iter()
        .filter_map(|m| m["kind"].as_str())
        .collect();
    assert!(marks.contains(&"confirmed"), "{marks:?}");

    // The trend, the limit and the forecast agree with the summary.
    let trend = &h["trend"];
    let slope = trend["slope_bytes_per_hour"].as_f64().expect("slope");
    assert!((slope / 3600.0 - LEAK.3).abs() < 0.2 * LEAK.3, "{slope}");
    assert_eq!(h["limit_bytes"].as_f64(), Some(LEAK.4));
    let f = &h["forecast"];
    let ttl = f["time_to_limit_seconds"].as_f64().expect("ttl");
    assert_eq!(d["summary"]["time_to_limit_seconds"].as_f64(), Some(ttl));
    let end = trend["end_unix_nano"].as_u64().expect("end");
    let crossing = f["crossing_unix_nano"].as_u64().expect("crossing");
    assert!((crossing as f64 - (end as f64 + ttl * 1e9)).abs() < 1e3);
    // The line from the trend's end at its slope reaches the limit at the crossing.
    let end_value = trend["end_value"].as_f64().expect("end value");
    let at_crossing = end_value + slope / 3600.0 * (crossing - end) as f64 * 1e-9;
    assert!((at_crossing - LEAK.4).abs() < 1e3, "{at_crossing}");

    // The healthy process: a history, no incident, no forecast.
    let all = ok_json(&lw, "/api/v1/resources?service.name=catalog").await;
    let healthy = ids(&all)[0].clone();
    let hh = ok_json(&lw, &format!("/api/v1/resources/{healthy}/history")).await;
    assert_eq!(hh["state"], "ok");
    assert!(hh["forecast"].is_null());
    assert_eq!(
        hh["buckets"]["t_unix_nano"].as_array().map_or(0, Vec::len),
        n
    );
    lw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chart_follows_the_series_that_leaks() {
    let lw = start(config()).await;
    // A Node.js process: a large flat old space and a smaller, leaking large-object space.
    for step in 0..300u64 {
        let t = T0 + step * S;
        let saw = (step % 5) as f64 * 1e6;
        let space = |name: &str, v: f64| number_point(t, v, vec![kv("v8js.heap.space.name", name)]);
        send(
            &lw,
            request(
                resource("orders", "pod-3"),
                vec![gauge_metric(
                    "v8js.memory.heap.used",
                    "By",
                    vec![
                        space("old_space", 200.0 * MB + saw),
                        space("large_object_space", 20.0 * MB + 400e3 * step as f64 + saw),
                    ],
                )],
            ),
        )
        .await;
    }
    let id = leak_id_of(&lw, "orders").await;
    let d = ok_json(&lw, &format!("/api/v1/resources/{id}")).await;
    let key_of = |space: &str| {
        d["series"]
            .as_array()
            .expect("series")
            .iter()
            .find(|s| s["attributes"].as_str().is_some_and(|a| a.contains(space)))
            .and_then(|s| s["key"].as_str())
            .expect("the series")
            .to_owned()
    };
    assert_eq!(
        d["chart_series"].as_str(),
        Some(key_of("large_object_space").as_str())
    );
    let h = ok_json(&lw, &format!("/api/v1/resources/{id}/history")).await;
    let marks: Vec<(&str, u64)> = h["marks"]
        .as_array()
        .expect("marks")
        .iter()
        .map(|m| {
            (
                m["kind"].as_str().unwrap_or(""),
                m["t_unix_nano"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    let suspected = marks
        .iter()
        .find(|m| m.0 == "suspected")
        .expect("suspected")
        .1;
    let switched = marks
        .iter()
        .find(|m| m.0 == "series_changed")
        .expect("switched")
        .1;
    assert!(switched >= suspected, "{marks:?}");
    // Only the leaking series' values since the switch: below the flat 200 MB space.
    let first = h["buckets"]["t_unix_nano"][0].as_u64().expect("buckets");
    assert!(first >= switched - (h["bucket_seconds"].as_f64().unwrap_or(0.0) * 1e9) as u64);
    assert!(h["buckets"]["max"]
        .as_array()
        .expect("max")
        .iter()
        .all(|v| v.as_f64().is_some_and(|v| v < 200.0 * MB)));
    assert!(h["trend"].is_object(), "the verdict's trend is drawn: {h}");
    lw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_needs_the_admin_token_and_the_page_stays_open() {
    let mut c = config();
    c.admin.auth = Some(AuthConfig {
        bearer_token: Some("s3cret".into()),
        bearer_token_file: None,
    });
    let lw = start(c).await;
    replay(&lw, 0..2, &[HEALTHY]).await;
    let id = "0123456789abcdef";
    for path in [
        "/api/v1/resources".to_owned(),
        format!("/api/v1/resources/{id}"),
        format!("/api/v1/resources/{id}/history"),
        format!("/api/v1/resources/{id}/chart.svg"),
        format!("/api/v1/resources/{id}/signals/gc_per_minute.svg"),
        "/api/v1/series".to_owned(),
    ] {
        let (status, _, _) = http_request("GET", &lw.admin_url(&path), &[], vec![]).await;
        assert_eq!(status, 401, "{path}");
    }
    let (status, _, body) = http_request(
        "GET",
        &lw.admin_url("/api/v1/resources"),
        &[("authorization", "Bearer s3cret")],
        vec![],
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_slice::<Value>(&body).expect("json")["total"],
        1
    );
    for path in ["/", &format!("/resources/{id}")] {
        let (status, _, body) = http_request("GET", &lw.admin_url(path), &[], vec![]).await;
        assert_eq!(status, 200, "{path}");
        assert!(String::from_utf8_lossy(&body).contains("<main id=\"app\">"));
    }
    lw.stop().await;
}

// ---------------------------------------------------------------------------------------
// The page in a real browser.

/// Debian's chromium, or `None` (then the test is skipped, unless `CI=true`: then it fails).
fn chromium() -> Option<PathBuf> {
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        for dir in std::env::var("PATH").unwrap_or_default().split(':') {
            let p = PathBuf::from(dir).join(name);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!(
            "chromium is not installed: run scripts/setup-test-env.sh (apt-get install chromium)"
        );
    }
    eprintln!("SKIPPED: chromium not found on PATH; `bash scripts/setup-test-env.sh` installs it");
    None
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// Where the screenshots go: `target/page-test/`.
fn artefacts() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/page-test");
    std::fs::create_dir_all(&dir).expect("artefact dir");
    dir
}

/// Runs headless chromium on `url` with `args` (after the page's scripts ran for up to 10 s of
/// virtual time) and returns its stdout.
async fn headless(browser: &PathBuf, url: &str, args: &[&str]) -> String {
    let profile = std::env::temp_dir().join(format!("leakwatch-page-test-{}", std::process::id()));
    let mut cmd = std::process::Command::new(browser);
    cmd.args([
        "--headless",
        "--disable-gpu",
        "--no-first-run",
        "--disable-extensions",
        "--disable-dev-shm-usage",
        "--virtual-time-budget=10000",
        "--window-size=1280,1500",
    ])
    .arg(format!("--user-data-dir={}", profile.display()))
    .args(args)
    .arg(url)
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped());
    if is_root() {
        cmd.arg("--no-sandbox");
    }
    let child = cmd.spawn().expect("chromium starts");
    let pid = child.id();
    let waiting = tokio::task::spawn_blocking(move || child.wait_with_output());
    let out = match tokio::time::timeout(Duration::from_secs(120), waiting).await {
        Ok(out) => out.expect("join").expect("chromium ran"),
        Err(_) => {
            // Ours, by its id.
            let _ = std::process::Command::new("kill")
                .arg(pid.to_string())
                .status();
            panic!("chromium did not finish within 2 minutes");
        }
    };
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The part of `html` from `start` to the next `end`.
fn section<'a>(html: &'a str, start: &str, end: &str) -> &'a str {
    let from = html
        .find(start)
        .unwrap_or_else(|| panic!("no {start} in the page"));
    let rest = &html[from..];
    &rest[..rest
        .find(end)
        .unwrap_or_else(|| panic!("no {end} after {start}"))]
}

/// The values of one of the history's signals.
fn values(signal: &Value) -> Vec<f64> {
    signal["value"]
        .as_array()
        .expect("values")
        .iter()
        .filter_map(Value::as_f64)
        .collect()
}

/// The value of attribute `name` of the first element with class `class` in `html`.
fn attr_of(html: &str, class: &str, name: &str) -> String {
    let at = html
        .find(&format!(r#"class="{class}""#))
        .unwrap_or_else(|| panic!("no element of class {class}"));
    let tag_start = html[..at].rfind('<').expect("tag");
    let tag_end = at + html[at..].find('>').expect("tag end");
    let tag = &html[tag_start..tag_end];
    let from = tag
        .find(&format!(r#" {name}=""#))
        .unwrap_or_else(|| panic!("no {name} on {tag}"))
        + name.len()
        + 3;
    let len = tag[from..].find('"').expect("end");
    tag[from..from + len].to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_shows_the_incident_and_the_chart_in_headless_chromium() {
    let Some(browser) = chromium() else {
        return;
    };
    let lw = start(config()).await;
    // The leak reports its requests and collections too.
    for step in 0..PAGE_STEPS {
        let mut all = go_process_counting(LEAK, step);
        let (s, i, base, slope, limit) = HEALTHY;
        all.resource_metrics
            .extend(go_process(s, i, step, base, slope, limit).resource_metrics);
        send(&lw, all).await;
    }
    let id = leak_id(&lw).await;
    let h = ok_json(&lw, &format!("/api/v1/resources/{id}/history")).await;
    let n = h["buckets"]["t_unix_nano"].as_array().map_or(0, Vec::len);
    let bucket_ns = (h["bucket_seconds"].as_f64().expect("width") * 1e9).round() as u64;
    assert_eq!(
        n,
        expected_buckets(
            PAGE_STEPS,
            bucket_ns,
            leakwatch::engine::history::HISTORY_BUCKETS as u64
        )
    );
    let crossing = h["forecast"]["crossing_unix_nano"]
        .as_u64()
        .expect("a forecast");

    // The fleet: the incident row links to the process.
    let fleet = headless(&browser, &lw.admin_url("/"), &["--dump-dom"]).await;
    let incidents = &fleet[fleet
        .find(r#"<table id="incidents">"#)
        .expect("incidents table")..];
    let incidents = &incidents[..incidents.find("</table>").expect("end of table")];
    assert!(
        incidents.contains(&format!(r#"<tr data-id="{id}">"#)),
        "{incidents}"
    );
    assert!(incidents.contains(&format!(r#"href="/resources/{id}""#)));
    assert!(incidents.contains("confirmed"));
    let fleet_table = &fleet[fleet.find(r#"<table id="fleet">"#).expect("fleet table")..];
    let fleet_table = &fleet_table[..fleet_table.find("</table>").expect("end of table")];
    assert_eq!(fleet_table.matches("<tr data-id=").count(), 2);
    // Fastest growing first.
    assert!(fleet_table.find(&id) < fleet_table.find("catalog"));

    // The process: its chart holds the expected points, and the forecast meets the limit at
    // the time the API says.
    let url = lw.admin_url(&format!("/resources/{id}"));
    let dom = headless(&browser, &url, &["--dump-dom"]).await;
    assert_eq!(attr_of(&dom, "band", "data-n"), n.to_string());
    assert_eq!(attr_of(&dom, "last", "data-n"), n.to_string());
    assert!(dom.contains(&format!(r#"data-buckets="{n}""#)));
    let table = &dom[dom
        .find(r#"<details id="chart-table">"#)
        .expect("table alternative")..];
    let table = &table[..table.find("</details>").expect("end")];
    assert_eq!(
        table.matches("<tr>").count(),
        n + 1,
        "a row per bucket and the header"
    );
    assert_eq!(attr_of(&dom, "forecast", "data-t1"), crossing.to_string());
    assert_eq!(
        attr_of(&dom, "forecast", "data-v1").parse::<f64>().ok(),
        Some(LEAK.4)
    );
    assert_eq!(
        attr_of(&dom, "forecast", "y2"),
        attr_of(&dom, "limit", "y1")
    );
    assert_eq!(attr_of(&dom, "forecast", "data-offchart"), "false");
    assert_eq!(
        attr_of(&dom, "forecast", "x1"),
        attr_of(&dom, "trend", "x2")
    );
    // The numbers beside the chart say the same time (JavaScript's numbers hold it to 2^-53).
    let shown: f64 = attr_of(&dom, "crossing", "data-unix-nano")
        .parse()
        .expect("a time");
    assert!(
        (shown - crossing as f64).abs() < 1e3,
        "{shown} vs {crossing}"
    );
    assert!(dom.contains(r#"data-kind="confirmed""#));
    assert!(dom.contains("<h1>checkout"));

    // The other signals as small charts, each with as many points as the API has values and
    // a table of the same numbers.
    let w_ns = (h["counter_bucket_seconds"].as_f64().expect("width") * 1e9).round() as u64;
    let gc = values(&h["gc_per_minute"]);
    let mpr = values(&h["memory_per_request"]);
    // Every counter bucket the replay's intervals (T0, T0 + last step] cover for at least a
    // quarter of its width (the first and the newest are partly covered).
    let end = T0 + (PAGE_STEPS - 1) * S;
    let covered = (T0 / w_ns..=end / w_ns)
        .filter(|&i| end.min((i + 1) * w_ns) - T0.max(i * w_ns) >= w_ns / 4)
        .count();
    assert_eq!(gc.len(), covered, "{}", h["gc_per_minute"]);
    // 3 collections a second are 180 a minute, in every bucket.
    assert!(gc.iter().all(|v| (v - GCS * 60.0).abs() < 1e-3), "{gc:?}");
    // 400 KB/s at 50 requests/s: 8 KB per request. The bucket floors of a 5-s sawtooth
    // over 5-s windows swing around it; their median holds it.
    assert!(mpr.len() > covered / 2, "{} of {covered}", mpr.len());
    let mut sorted = mpr.clone();
    sorted.sort_by(f64::total_cmp);
    let median = sorted[sorted.len() / 2];
    assert!(
        (median - LEAK.3 / RPS).abs() < 0.25 * LEAK.3 / RPS,
        "median {median} B/request: {mpr:?}"
    );
    for (key, api) in [("gc_per_minute", &gc), ("memory_per_request", &mpr)] {
        let fig = section(&dom, &format!(r#"<figure id="{key}""#), "</figure>");
        assert_eq!(
            attr_of(fig, "signal", "data-n"),
            api.len().to_string(),
            "{key}"
        );
        let v1: f64 = attr_of(fig, "signal", "data-v1").parse().expect("a number");
        let last = api.last().copied().unwrap_or(f64::NAN);
        assert!(
            (v1 - last).abs() <= 1e-9 * last.abs().max(1.0),
            "{key}: {v1} vs {last}"
        );
        assert!(
            fig.contains(&format!(r#"<title id="{key}-title">"#)),
            "{key}"
        );
        assert!(fig.contains(&format!(r#"<desc id="{key}-desc">"#)), "{key}");
        let table = section(
            &dom,
            &format!(r#"<details id="{key}-table">"#),
            "</details>",
        );
        let shown: Vec<f64> = table
            .split(r#"data-value=""#)
            .skip(1)
            .map(|v| v[..v.find('"').expect("end")].parse().expect("a number"))
            .collect();
        assert_eq!(shown.len(), api.len(), "{key}");
        for (a, b) in shown.iter().zip(api.iter()) {
            assert!(
                (a - b).abs() <= 1e-9 * b.abs().max(1.0),
                "{key}: {a} vs {b}"
            );
        }
    }
    assert!(dom.contains(r#"<h2 id="signals-heading">Other signals</h2>"#));
    assert!(dom.contains(r#"<h3 id="gc_per_minute-heading">GC frequency</h3>"#));

    // A process reporting neither says so in words, not with an empty chart.
    let all = ok_json(&lw, "/api/v1/resources?service.name=catalog").await;
    let healthy = ids(&all)[0].clone();
    let hdom = headless(
        &browser,
        &lw.admin_url(&format!("/resources/{healthy}")),
        &["--dump-dom"],
    )
    .await;
    for key in ["gc_per_minute", "memory_per_request"] {
        assert!(
            hdom.contains(&format!(r#"<p class="none" id="{key}-none">Not reported"#)),
            "{key}"
        );
        let fig = section(&hdom, &format!(r#"<figure id="{key}""#), "</figure>");
        assert!(
            fig.contains("Not reported by this process.") && !fig.contains(r#"class="signal""#)
        );
    }

    let shot = artefacts().join("resource.png");
    let _ = std::fs::remove_file(&shot);
    headless(
        &browser,
        &url,
        &[&format!("--screenshot={}", shot.display())],
    )
    .await;
    let png = std::fs::read(&shot).expect("a screenshot");
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    eprintln!("screenshot: {}", shot.display());
    lw.stop().await;
}
