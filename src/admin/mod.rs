//! The admin listener: health checks, self-metrics, the JSON API and a web
//! page that shows what leakwatch sees.
//!
//! - `GET /healthz`: the process is up.
//! - `GET /readyz`: receivers are serving (503 once shutdown began).
//! - `GET /metrics`: self-metrics in the Prometheus text format.
//! - `GET /api/v1/leaks`: open incidents (suspected or confirmed) as JSON.
//! - `GET /api/v1/resources?state=&service.name=&q=&sort=&limit=&cursor=`: one page of the
//!   tracked processes, filtered and sorted server-side; `/api/v1/resources/{id}`,
//!   `…/{id}/history`, `…/{id}/chart.svg`, `…/{id}/signals/{name}.svg`: one process, its
//!   chart data, its memory chart and the small charts of its other signals ([`api`]).
//! - `GET /api/v1/series?service.name=…&resource=…`: trend figures of tracked series, paginated.
//! - `GET /`, `GET /resources/{id}`: the web page (static HTML; it reads the API above).
//!
//! The API and the page show the resource attributes (service, instance, host,
//! …) of every tracked process and their memory trends; `/metrics` shows
//! leakwatch's own counters. With `admin.auth` set, `/metrics` and
//! `/api/v1/*` need the bearer token; `/healthz`, `/readyz` and the page's
//! HTML stay open for probes and browsers (open the page as `/#token=…`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

mod api;
mod chart;

use crate::auth::BearerToken;
use crate::detector::LeakState;
use crate::engine::{Engine, ResourceView};
use crate::exporter::ExportQueue;
use crate::notify::heap_dump::{HeapDumpRecord, HeapDumps};
use crate::ops::slow::Timeouts;
use crate::ops::telemetry::{own_rss_bytes, Gauges};

/// What the admin handlers read.
#[derive(Clone)]
pub struct AdminState {
    pub engine: Arc<Engine>,
    pub queue: Option<ExportQueue>,
    pub ready: Arc<AtomicBool>,
    /// The token `/metrics` and `/api/v1/*` need (open when `None`).
    pub token: Option<Arc<BearerToken>>,
    /// Heap-dump outcomes, shown with each incident.
    pub heap_dumps: Option<Arc<HeapDumps>>,
}

/// The admin routes.
pub fn router(state: AdminState) -> Router {
    let protected = Router::new()
        .route("/metrics", get(metrics))
        .route("/api/v1/leaks", get(leaks))
        .route("/api/v1/resources", get(api::resources))
        .route("/api/v1/resources/{id}", get(api::resource))
        .route("/api/v1/resources/{id}/history", get(api::history))
        .route("/api/v1/resources/{id}/chart.svg", get(api::chart))
        .route(
            "/api/v1/resources/{id}/signals/{file}",
            get(api::signal_chart),
        )
        .route("/api/v1/series", get(api::series))
        .route_layer(middleware::from_fn_with_state(state.clone(), authorize));
    Router::new()
        .route("/", get(page))
        .route("/resources/{id}", get(page))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .merge(protected)
        .with_state(state)
}

/// Lets a request through when no token is configured or it carries the token.
/// The admin listener, running.
pub struct Admin {
    task: tokio::task::JoinHandle<()>,
    stop: CancellationToken,
}

/// Serves the admin routes on `listener`. It has its own stop (not the
/// shutdown token): probes and scrapes are answered until the very end.
pub fn start(
    listener: TcpListener,
    state: AdminState,
    tls: Option<tokio_rustls::TlsAcceptor>,
    timeouts: Timeouts,
) -> Admin {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "Admin listener listening.");
    }
    let stop = CancellationToken::new();
    let task = tokio::spawn(crate::ops::net::serve_http(
        listener,
        router(state),
        tls,
        timeouts,
        stop.clone(),
        Duration::from_secs(1),
    ));
    Admin { task, stop }
}

impl Admin {
    /// Stops the listener; in-flight requests get a second.
    pub async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

async fn authorize(State(s): State<AdminState>, request: Request, next: Next) -> Response {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| v.as_bytes());
    match &s.token {
        Some(token) if !token.admits(presented) => (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            "missing or invalid bearer token\n",
        )
            .into_response(),
        _ => next.run(request).await,
    }
}

async fn readyz(State(s): State<AdminState>) -> Response {
    if s.ready.load(Ordering::Acquire) {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n").into_response()
    }
}

/// Gauges for the self-metrics, read now.
pub fn gauges(s: &AdminState) -> Gauges {
    let views = s.engine.resource_views();
    let count = |state: LeakState| views.iter().filter(|v| v.state == state).count() as u64;
    Gauges {
        queue_requests: s.queue.as_ref().map_or(0, |q| q.requests() as u64),
        queue_bytes: s.queue.as_ref().map_or(0, |q| q.bytes() as u64),
        queue_max_bytes: s.queue.as_ref().map_or(0, |q| q.max_bytes() as u64),
        series: s.engine.series_count() as u64,
        series_max: s.engine.config().max_series as u64,
        resources: views.len() as u64,
        incidents_suspected: count(LeakState::Suspected),
        incidents_confirmed: count(LeakState::Confirmed),
        rss_bytes: own_rss_bytes(),
        persistent_queue_bytes: s.queue.as_ref().and_then(|q| q.persistent_bytes()),
        memory_pressure: s.engine.limiter().pressure() as u64,
    }
}

async fn metrics(State(s): State<AdminState>) -> Response {
    let text = s.engine.telemetry().render(&gauges(&s));
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

#[derive(Serialize)]
struct Listing<T> {
    count: usize,
    items: Vec<T>,
}

fn listing<T>(items: Vec<T>) -> Json<Listing<T>> {
    Json(Listing {
        count: items.len(),
        items,
    })
}

/// An open incident: its id (the `leak.incident_id` of its events), the resource's assessment
/// and, once taken, its heap dump.
#[derive(Serialize)]
struct Incident {
    incident_id: Option<String>,
    #[serde(flatten)]
    view: ResourceView,
    #[serde(skip_serializing_if = "Option::is_none")]
    heap_dump: Option<HeapDumpRecord>,
}

async fn leaks(State(s): State<AdminState>) -> Json<Listing<Incident>> {
    let mut open: Vec<ResourceView> = s
        .engine
        .resource_views()
        .into_iter()
        .filter(|v| v.state != LeakState::Ok)
        .collect();
    open.sort_by(|a, b| {
        (b.state as u8)
            .cmp(&(a.state as u8))
            .then_with(|| a.resource.service_name.cmp(&b.resource.service_name))
    });
    listing(
        open.into_iter()
            .map(|view| Incident {
                incident_id: view
                    .incident_start_unix_nano
                    .map(|t| crate::notify::identity::incident_id(&view.resource, t)),
                heap_dump: s.heap_dumps.as_ref().and_then(|h| h.get(view.resource.key)),
                view,
            })
            .collect(),
    )
}

async fn page() -> Html<&'static str> {
    Html(include_str!("page.html"))
}
