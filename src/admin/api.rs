//! The fleet API: paginated, filtered and sorted processes and series, one process's detail,
//! its chart history and the chart itself (SVG, see [`super::chart`]).
//!
//! - `GET /api/v1/resources?state=&service.name=&q=&sort=growth|time_to_limit|name&limit=50&cursor=`
//! - `GET /api/v1/resources/{id}`, `/api/v1/resources/{id}/history`, `/api/v1/resources/{id}/chart.svg`,
//!   `/api/v1/resources/{id}/signals/{memory_per_request|gc_per_minute}.svg`
//! - `GET /api/v1/series?service.name=&resource=&limit=&cursor=`
//!
//! Listings answer `{total, count, items, next_cursor}`; a bad parameter is a 400 naming it,
//! an unknown id a 404.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

use super::AdminState;
use crate::detector::LeakState;
use crate::engine::{Cursor, Page, ResourceQuery, SeriesQuery, SeriesSortKey, Sort};

/// Page size when none is asked for.
pub const DEFAULT_LIMIT: usize = 50;
/// The largest page.
pub const MAX_LIMIT: usize = 500;

/// A listing page as sent: the page plus its item count.
#[derive(Serialize)]
struct Listed<T> {
    total: usize,
    count: usize,
    items: Vec<T>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_cursor: Option<String>,
}

fn listed<T: Serialize>(p: Page<T>) -> Response {
    Json(Listed {
        total: p.total,
        count: p.items.len(),
        items: p.items,
        next_cursor: p.next_cursor,
    })
    .into_response()
}

fn bad(param: &str, why: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(serde_json::json!({"error": format!("{param}: {why}")})),
    )
        .into_response()
}

fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(serde_json::json!({"error": "no such resource"})),
    )
        .into_response()
}

/// The page size asked for; `None` if it is out of range.
fn limit_of(q: &HashMap<String, String>) -> Option<usize> {
    match q.get("limit") {
        None => Some(DEFAULT_LIMIT),
        Some(s) => s
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n)),
    }
}

fn bad_limit() -> Response {
    bad("limit", &format!("must be 1..={MAX_LIMIT}"))
}

/// A resource id: 16 hex digits.
pub fn parse_id(id: &str) -> Option<u64> {
    (id.len() == 16)
        .then(|| u64::from_str_radix(id, 16).ok())
        .flatten()
}

fn parse_state(s: &str) -> Option<LeakState> {
    match s {
        "ok" => Some(LeakState::Ok),
        "suspected" => Some(LeakState::Suspected),
        "confirmed" => Some(LeakState::Confirmed),
        _ => None,
    }
}

fn nonempty(q: &HashMap<String, String>, k: &str) -> Option<String> {
    q.get(k).filter(|s| !s.is_empty()).cloned()
}

/// `GET /api/v1/resources`.
pub async fn resources(
    State(s): State<AdminState>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let Some(limit) = limit_of(&q) else {
        return bad_limit();
    };
    let mut states = Vec::new();
    for part in q.get("state").map_or("", String::as_str).split(',') {
        if part.is_empty() {
            continue;
        }
        match parse_state(part) {
            Some(st) => states.push(st),
            None => return bad("state", "ok, suspected or confirmed (comma-separated)"),
        }
    }
    let sort = match q.get("sort").filter(|s| !s.is_empty()) {
        None => Sort::Growth,
        Some(v) => match Sort::parse(v) {
            Some(sort) => sort,
            None => return bad("sort", "growth, time_to_limit or name"),
        },
    };
    let after = match nonempty(&q, "cursor") {
        None => None,
        Some(c) => match Cursor::decode(&c) {
            Some(c) => Some(c),
            None => return bad("cursor", "not a cursor this API returned"),
        },
    };
    let query = ResourceQuery {
        states,
        service: nonempty(&q, "service.name"),
        q: nonempty(&q, "q"),
        sort,
        limit,
        after,
    };
    // A walk of every resource (not their series): off the async workers.
    let engine = std::sync::Arc::clone(&s.engine);
    match tokio::task::spawn_blocking(move || engine.resource_page(&query)).await {
        Ok(page) => listed(page),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// `GET /api/v1/resources/{id}`.
pub async fn resource(State(s): State<AdminState>, Path(id): Path<String>) -> Response {
    match parse_id(&id).and_then(|k| s.engine.resource_detail(k)) {
        Some(d) => Json(d).into_response(),
        None => not_found(),
    }
}

/// `GET /api/v1/resources/{id}/history`.
pub async fn history(State(s): State<AdminState>, Path(id): Path<String>) -> Response {
    match parse_id(&id).and_then(|k| s.engine.resource_history(k)) {
        Some(h) => Json(h).into_response(),
        None => not_found(),
    }
}

/// `GET /api/v1/resources/{id}/chart.svg`: the memory chart, drawn from the history.
pub async fn chart(State(s): State<AdminState>, Path(id): Path<String>) -> Response {
    match parse_id(&id).and_then(|key| chart_inputs(&s, key)) {
        Some((h, name)) => svg(super::chart::render(&h, &name)),
        None => not_found(),
    }
}

/// `GET /api/v1/resources/{id}/signals/{name}.svg`: a small chart of one of the other signals
/// (`memory_per_request`, `gc_per_minute`), drawn from the history.
pub async fn signal_chart(
    State(s): State<AdminState>,
    Path((id, file)): Path<(String, String)>,
) -> Response {
    let signal = file
        .strip_suffix(".svg")
        .and_then(super::chart::Signal::parse);
    let inputs = parse_id(&id).and_then(|key| chart_inputs(&s, key));
    match (inputs, signal) {
        (Some((h, name)), Some(signal)) => svg(super::chart::render_signal(&h, signal, &name)),
        _ => not_found(),
    }
}

/// What a chart of process `key` is drawn from: its history and its name.
fn chart_inputs(s: &AdminState, key: u64) -> Option<(crate::engine::HistoryView, String)> {
    Some((
        s.engine.resource_history(key)?,
        s.engine.resource_name(key)?,
    ))
}

fn svg(body: String) -> Response {
    (
        [(header::CONTENT_TYPE, "image/svg+xml; charset=utf-8")],
        body,
    )
        .into_response()
}

/// `GET /api/v1/series`.
pub async fn series(
    State(s): State<AdminState>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let Some(limit) = limit_of(&q) else {
        return bad_limit();
    };
    let resource = match nonempty(&q, "resource") {
        None => None,
        Some(id) => match parse_id(&id) {
            Some(k) => Some(k),
            None => return bad("resource", "a resource id (16 hex digits)"),
        },
    };
    let after = match nonempty(&q, "cursor") {
        None => None,
        Some(c) => match SeriesSortKey::decode(&c) {
            Some(c) => Some(c),
            None => return bad("cursor", "not a cursor this API returned"),
        },
    };
    let query = SeriesQuery {
        service: nonempty(&q, "service.name"),
        resource,
        limit,
        after,
    };
    let engine = std::sync::Arc::clone(&s.engine);
    match tokio::task::spawn_blocking(move || engine.series_page(&query)).await {
        Ok(page) => listed(page),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}
