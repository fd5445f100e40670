//! History from Prometheus's HTTP API: finds the processes that have catalog series
//! (`/api/v1/series`), reads their resource attributes (`target_info`), then pulls each
//! process's series with `/api/v1/query_range` in chunks of at most 10,000 steps (Prometheus
//! refuses more than 11,000 points per series in one query), several processes at a time.
//!
//! Requests are POSTed forms (the name matcher is long), carry the user's `--header`s, and are
//! retried with backoff on connection errors, timeouts, 429 and 5xx. Errors say what to fix:
//! the server is unreachable, it refused the credentials, it refused the query, or the selector
//! matched none of the names looked for.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::HeaderMap;
use serde::Deserialize;

use super::names::NameMap;
use super::replay::{Process, SeriesData};

/// Most steps in one `query_range` (Prometheus's limit is 11,000 points per series).
pub const MAX_STEPS_PER_QUERY: u64 = 10_000;
/// Attempts per request (the first and the retries).
const ATTEMPTS: u32 = 4;
/// Labels that are identity or bookkeeping, not data-point attributes.
const NOT_ATTRIBUTES: &[&str] = &[
    "__name__",
    "job",
    "instance",
    "otel_scope_name",
    "otel_scope_version",
    "otel.scope.name",
    "otel.scope.version",
];

/// Why Prometheus could not be read.
#[derive(Debug, thiserror::Error)]
pub enum PromError {
    #[error("cannot reach Prometheus at {url}: {detail}")]
    Unreachable { url: String, detail: String },
    #[error("Prometheus at {url} refused the credentials (HTTP {status}); pass them with --header 'Authorization: Bearer …'")]
    Auth { url: String, status: u16 },
    #[error("Prometheus refused the query ({detail}); check --selector")]
    BadQuery { detail: String },
    #[error("Prometheus at {url} failed: HTTP {status}: {detail}")]
    Server {
        url: String,
        status: u16,
        detail: String,
    },
    #[error("Prometheus at {url} answered something that is not its API: {detail}")]
    Protocol { url: String, detail: String },
    #[error("no series matched {selector} between {start} and {end}; looked for these metric names:\n  {}", names.join("\n  "))]
    NothingMatched {
        selector: String,
        start: String,
        end: String,
        names: Vec<String>,
    },
}

/// One series of a `query_range` answer: its labels and `(unix ms, value)` samples.
pub type RawSeries = (BTreeMap<String, String>, Vec<(i64, f64)>);

/// A series' OTLP identity: metric, scope, attributes.
type SeriesId = (String, String, Vec<(String, String)>);

/// One process: its `job` and `instance` labels.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProcessKey {
    pub job: String,
    pub instance: String,
}

/// A Prometheus server and what to read from it.
pub struct Prometheus {
    client: reqwest::Client,
    /// Base URL without a trailing slash.
    base: String,
    headers: HeaderMap,
    names: Arc<NameMap>,
    /// The user's matchers, inside the braces (may be empty).
    selector: String,
    pub start_ms: i64,
    pub end_ms: i64,
    pub step_ms: i64,
}

#[derive(Deserialize)]
struct Envelope<T> {
    status: String,
    data: Option<T>,
    #[serde(rename = "errorType")]
    error_type: Option<String>,
    error: Option<String>,
}

#[derive(Deserialize)]
struct Matrix {
    #[serde(rename = "resultType")]
    result_type: String,
    result: Vec<MatrixSeries>,
}

#[derive(Deserialize)]
struct MatrixSeries {
    metric: BTreeMap<String, String>,
    values: Vec<(f64, String)>,
}

/// What [`Prometheus::new`] needs.
pub struct Query {
    pub url: String,
    pub headers: HeaderMap,
    pub names: Arc<NameMap>,
    pub selector: String,
    pub start_ms: i64,
    pub end_ms: i64,
    pub step_ms: i64,
    pub timeout: Duration,
}

impl Prometheus {
    pub fn new(q: Query) -> Result<Prometheus, PromError> {
        let client =
            crate::ops::outbound::client(q.timeout).map_err(|e| PromError::Unreachable {
                url: q.url.clone(),
                detail: e.to_string(),
            })?;
        Ok(Prometheus {
            client,
            base: q.url.trim_end_matches('/').to_owned(),
            headers: q.headers,
            names: q.names,
            selector: q.selector,
            start_ms: q.start_ms,
            end_ms: q.end_ms,
            step_ms: q.step_ms.max(1),
        })
    }

    /// `{name matcher, extra…, user matchers}`.
    fn selector_with(&self, extra: &[String]) -> String {
        let mut parts = vec![self.names.name_matcher()];
        parts.extend(extra.iter().cloned());
        if !self.selector.trim().is_empty() {
            parts.push(self.selector.clone());
        }
        format!("{{{}}}", parts.join(", "))
    }

    fn seconds(ms: i64) -> String {
        format!("{}.{:03}", ms.div_euclid(1000), ms.rem_euclid(1000))
    }

    /// POSTs a form to an API path and decodes the envelope's data, with retries.
    async fn call<T: for<'de> Deserialize<'de>>(
        &self,
        path: &str,
        form: &[(&str, String)],
    ) -> Result<T, PromError> {
        let url = format!("{}{path}", self.base);
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.once(&url, form).await {
                Ok(data) => return Ok(data),
                Err((e, true)) if attempt < ATTEMPTS => {
                    tracing::debug!(error = %e, attempt, "Retrying a Prometheus request.");
                    backoff(attempt).await;
                }
                Err((e, _)) => return Err(e),
            }
        }
    }

    /// One attempt; the error says whether a retry may help.
    async fn once<T: for<'de> Deserialize<'de>>(
        &self,
        url: &str,
        form: &[(&str, String)],
    ) -> Result<T, (PromError, bool)> {
        let unreachable = |e: &reqwest::Error| PromError::Unreachable {
            url: self.base.clone(),
            detail: error_chain(e),
        };
        let resp = self
            .client
            .post(url)
            .headers(self.headers.clone())
            .form(form)
            .send()
            .await
            .map_err(|e| (unreachable(&e), true))?;
        let status = resp.status();
        if status == 401 || status == 403 {
            return Err((
                PromError::Auth {
                    url: self.base.clone(),
                    status: status.as_u16(),
                },
                false,
            ));
        }
        let body = resp.bytes().await.map_err(|e| (unreachable(&e), true))?;
        let retryable = status.is_server_error() || status == 429;
        let envelope: Envelope<T> = match serde_json::from_slice(&body) {
            Ok(env) => env,
            Err(_) if retryable => {
                return Err((
                    PromError::Server {
                        url: url.to_owned(),
                        status: status.as_u16(),
                        detail: snippet(&body),
                    },
                    true,
                ))
            }
            Err(e) => {
                return Err((
                    PromError::Protocol {
                        url: url.to_owned(),
                        detail: format!("HTTP {status}: {e}: {}", snippet(&body)),
                    },
                    false,
                ))
            }
        };
        if status.is_success() && envelope.status == "success" {
            return envelope.data.ok_or_else(|| {
                (
                    PromError::Protocol {
                        url: url.to_owned(),
                        detail: "a success without data".to_owned(),
                    },
                    false,
                )
            });
        }
        if status == 400 || status == 422 {
            return Err((
                PromError::BadQuery {
                    detail: format!(
                        "{}: {}",
                        envelope.error_type.unwrap_or_default(),
                        envelope.error.unwrap_or_default()
                    ),
                },
                false,
            ));
        }
        Err((
            PromError::Server {
                url: url.to_owned(),
                status: status.as_u16(),
                detail: envelope.error.unwrap_or_else(|| snippet(&body)),
            },
            retryable,
        ))
    }

    /// Every process with at least one catalog series in the window, and the names it has.
    pub async fn discover(&self) -> Result<BTreeMap<ProcessKey, BTreeSet<String>>, PromError> {
        let form = [
            ("match[]", self.selector_with(&[])),
            ("start", Self::seconds(self.start_ms)),
            ("end", Self::seconds(self.end_ms)),
        ];
        let series: Vec<BTreeMap<String, String>> = self.call("/api/v1/series", &form).await?;
        let mut processes: BTreeMap<ProcessKey, BTreeSet<String>> = BTreeMap::new();
        for labels in series {
            let key = ProcessKey {
                job: labels.get("job").cloned().unwrap_or_default(),
                instance: labels.get("instance").cloned().unwrap_or_default(),
            };
            let name = labels.get("__name__").cloned().unwrap_or_default();
            processes.entry(key).or_default().insert(name);
        }
        if processes.is_empty() {
            return Err(PromError::NothingMatched {
                selector: if self.selector.trim().is_empty() {
                    "{}".to_owned()
                } else {
                    format!("{{{}}}", self.selector)
                },
                start: super::report::rfc3339(self.start_ms as u64 * 1_000_000),
                end: super::report::rfc3339(self.end_ms as u64 * 1_000_000),
                names: self.names.names().map(str::to_owned).collect(),
            });
        }
        Ok(processes)
    }

    /// The labels of each process's `target_info` (its other resource attributes); empty when
    /// Prometheus has none or refuses the lookup (they only add attributes).
    pub async fn target_info(&self) -> BTreeMap<ProcessKey, BTreeMap<String, String>> {
        let form = [
            ("match[]", "target_info".to_owned()),
            ("start", Self::seconds(self.start_ms)),
            ("end", Self::seconds(self.end_ms)),
        ];
        let series: Vec<BTreeMap<String, String>> = match self.call("/api/v1/series", &form).await {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(error = %e, "No target_info.");
                return BTreeMap::new();
            }
        };
        series
            .into_iter()
            .map(|labels| {
                let key = ProcessKey {
                    job: labels.get("job").cloned().unwrap_or_default(),
                    instance: labels.get("instance").cloned().unwrap_or_default(),
                };
                (key, labels)
            })
            .collect()
    }

    /// The window split into `query_range` calls: `(start_ms, end_ms)` of each, inclusive.
    pub fn chunks(&self) -> Vec<(i64, i64)> {
        chunks(self.start_ms, self.end_ms, self.step_ms)
    }

    /// One process's series over one chunk.
    pub async fn fetch_chunk(
        &self,
        key: &ProcessKey,
        (start_ms, end_ms): (i64, i64),
    ) -> Result<Vec<RawSeries>, PromError> {
        let query = self.selector_with(&[
            format!("job=\"{}\"", escape(&key.job)),
            format!("instance=\"{}\"", escape(&key.instance)),
        ]);
        let form = [
            ("query", query),
            ("start", Self::seconds(start_ms)),
            ("end", Self::seconds(end_ms)),
            ("step", Self::seconds(self.step_ms)),
        ];
        let matrix: Matrix = self.call("/api/v1/query_range", &form).await?;
        if matrix.result_type != "matrix" {
            return Err(PromError::Protocol {
                url: self.base.clone(),
                detail: format!("query_range gave a {}", matrix.result_type),
            });
        }
        Ok(matrix
            .result
            .into_iter()
            .map(|s| {
                let samples = s
                    .values
                    .into_iter()
                    .filter_map(|(t, v)| Some(((t * 1000.0).round() as i64, parse_value(&v)?)))
                    .collect();
                (s.metric, samples)
            })
            .collect())
    }

    /// Turns the chunks of one process into its history.
    pub fn assemble(
        &self,
        key: &ProcessKey,
        target_info: Option<&BTreeMap<String, String>>,
        chunks: Vec<Vec<RawSeries>>,
    ) -> Process {
        assemble(&self.names, key, target_info, chunks)
    }
}

/// See [`Prometheus::assemble`]: series are merged across chunks by their labels; two
/// Prometheus names of the same OTLP series (say both the suffixed and the unsuffixed name)
/// keep the first name's samples only.
pub fn assemble(
    names: &NameMap,
    key: &ProcessKey,
    target_info: Option<&BTreeMap<String, String>>,
    chunks: Vec<Vec<RawSeries>>,
) -> Process {
    // OTLP identity → (Prometheus name, series).
    let mut series: BTreeMap<SeriesId, (String, SeriesData)> = BTreeMap::new();
    for chunk in chunks {
        for (labels, samples) in chunk {
            let Some(name) = labels.get("__name__") else {
                continue;
            };
            let Some(target) = names.lookup(name) else {
                continue;
            };
            let scope = labels
                .get("otel_scope_name")
                .or_else(|| labels.get("otel.scope.name"))
                .cloned()
                .unwrap_or_default();
            let attributes: Vec<(String, String)> = labels
                .iter()
                .filter(|(k, _)| !NOT_ATTRIBUTES.contains(&k.as_str()))
                .map(|(k, v)| (names.attribute_key(k), v.clone()))
                .collect();
            let id = (target.otlp.to_string(), scope.clone(), attributes.clone());
            let entry = series.entry(id).or_insert_with(|| {
                (
                    name.clone(),
                    SeriesData {
                        target: target.clone(),
                        scope,
                        attributes,
                        samples: Vec::new(),
                    },
                )
            });
            if entry.0 == *name {
                entry.1.samples.extend(samples);
            }
        }
    }
    let mut series: Vec<SeriesData> = series.into_values().map(|(_, s)| s).collect();
    for s in &mut series {
        s.samples.sort_by_key(|(t, _)| *t);
        s.samples.dedup_by_key(|(t, _)| *t);
    }
    Process {
        job: key.job.clone(),
        instance: key.instance.clone(),
        resource: super::names::resource_attributes(&key.job, &key.instance, target_info),
        series,
    }
}

/// `[start, end]` at `step` as inclusive sub-ranges of at most [`MAX_STEPS_PER_QUERY`] points,
/// on the same step grid, not overlapping.
pub fn chunks(start_ms: i64, end_ms: i64, step_ms: i64) -> Vec<(i64, i64)> {
    let step = step_ms.max(1);
    if end_ms < start_ms {
        return Vec::new();
    }
    let points = (end_ms - start_ms) / step + 1;
    let per = MAX_STEPS_PER_QUERY as i64;
    (0..(points + per - 1) / per)
        .map(|c| {
            let first = c * per;
            let last = ((c + 1) * per).min(points) - 1;
            (start_ms + first * step, start_ms + last * step)
        })
        .collect()
}

/// A Prometheus sample value (`"1.5"`, `"NaN"`, `"+Inf"`); `None` for non-finite ones (stale
/// markers and the like carry no level).
fn parse_value(v: &str) -> Option<f64> {
    v.parse::<f64>().ok().filter(|x| x.is_finite())
}

/// A PromQL double-quoted string's escapes.
fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"")
}

fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    match text.char_indices().nth(200) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_owned(),
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        source = inner.source();
    }
    s
}

async fn backoff(attempt: u32) {
    tokio::time::sleep(Duration::from_millis(200 * 2u64.pow(attempt.min(6)))).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Catalog;

    #[test]
    fn chunks_stay_under_the_point_limit_and_do_not_overlap() {
        // 48 h at 15 s: 11,521 points, two queries.
        let c = chunks(0, 48 * 3_600_000, 15_000);
        assert_eq!(c, vec![(0, 149_985_000), (150_000_000, 172_800_000)]);
        for (s, e) in &c {
            assert!((e - s) / 15_000 < 11_000);
        }
        assert_eq!(chunks(0, 0, 15_000), vec![(0, 0)]);
        assert!(chunks(10, 0, 15_000).is_empty());
    }

    #[test]
    fn values_and_escapes() {
        assert_eq!(parse_value("1.5"), Some(1.5));
        assert_eq!(parse_value("NaN"), None);
        assert_eq!(parse_value("+Inf"), None);
        assert_eq!(escape(r#"a"b\c"#), r#"a\"b\\c"#);
        assert_eq!(Prometheus::seconds(1_700_000_000_123), "1700000000.123");
    }

    #[test]
    fn chunks_merge_and_name_variants_do_not_double() {
        let names = NameMap::new(&Catalog::builtin());
        let labels = |name: &str, space: &str| {
            let mut m = BTreeMap::new();
            m.insert("__name__".to_owned(), name.to_owned());
            m.insert("job".to_owned(), "shop/cart".to_owned());
            m.insert("instance".to_owned(), "i-1".to_owned());
            m.insert("v8js_heap_space_name".to_owned(), space.to_owned());
            m
        };
        let key = ProcessKey {
            job: "shop/cart".into(),
            instance: "i-1".into(),
        };
        let p = assemble(
            &names,
            &key,
            None,
            vec![
                vec![
                    (
                        labels("v8js_memory_heap_used_bytes", "old_space"),
                        vec![(2, 2.0), (1, 1.0)],
                    ),
                    (labels("v8js_memory_heap_used", "old_space"), vec![(1, 9.0)]),
                ],
                vec![(
                    labels("v8js_memory_heap_used_bytes", "old_space"),
                    vec![(3, 3.0)],
                )],
                vec![(labels("not_in_catalog", "x"), vec![(3, 3.0)])],
            ],
        );
        assert_eq!(p.series.len(), 1);
        let s = &p.series[0];
        assert_eq!(&*s.target.otlp, "v8js.memory.heap.used");
        assert_eq!(
            s.attributes,
            vec![("v8js.heap.space.name".to_owned(), "old_space".to_owned())]
        );
        assert_eq!(s.samples, vec![(1, 1.0), (2, 2.0), (3, 3.0)]);
        assert!(p
            .resource
            .contains(&("service.namespace".to_owned(), "shop".to_owned())));
    }
}
