//! `leakwatch analyze`: the server's detector run over history that already exists — in
//! Prometheus or in OTLP/JSON files — with one verdict per process and an exit code for cron
//! and CI gates.
//!
//! ```text
//! prometheus (discover → target_info → query_range chunks) ─┐
//! file (OTLP/JSON lines) ───────────────────────────────────┴─► replay (fresh Engine) ─► report
//! ```
//!
//! - [`names`]: the Prometheus names of the catalog's metrics, and the way back to OTLP.
//! - [`prometheus`]: the HTTP API client (chunks, parallelism, retries, errors).
//! - [`file`]: the Collector file exporter's JSON lines.
//! - [`replay`]: samples → export requests → a fresh engine, in event time.
//! - [`report`]: table and JSON.
//!
//! Exit codes: 0 no leak, 1 a leak suspected, 2 a leak confirmed; 64 usage, 65 malformed input
//! file, 66 nothing matched (or no such file), 69 Prometheus unreachable or refusing the
//! credentials, 70 internal error.

pub mod file;
pub mod names;
pub mod prometheus;
pub mod replay;
pub mod report;

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::stream::{self, StreamExt as _};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

use names::NameMap;
use prometheus::{ProcessKey, PromError, Prometheus, Query};
use replay::{Replay, Settings};
use report::Report;

/// EX_USAGE: bad flags or configuration.
pub const EXIT_USAGE: u8 = 64;
/// EX_DATAERR: the input file is malformed.
pub const EXIT_DATAERR: u8 = 65;
/// EX_NOINPUT: nothing matched, or the file cannot be opened.
pub const EXIT_NOINPUT: u8 = 66;
/// EX_UNAVAILABLE: Prometheus unreachable, refusing the credentials, or failing.
pub const EXIT_UNAVAILABLE: u8 = 69;
/// EX_SOFTWARE: a bug.
pub const EXIT_SOFTWARE: u8 = 70;

/// Processes fetched at the same time.
const PARALLEL_PROCESSES: usize = 4;
/// Timeout of one Prometheus request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// Output format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    #[default]
    Table,
    Json,
}

/// Run the detector over history already in Prometheus (or in OTLP/JSON files) and print a
/// verdict per process. Exit code: 0 no leak, 1 suspected, 2 confirmed.
#[derive(clap::Args, Debug, Clone)]
#[command(
    group(clap::ArgGroup::new("source").required(true).args(["prometheus", "file"])),
    after_help = "Exit codes: 0 no leak, 1 a leak suspected, 2 a leak confirmed; 64 usage, \
                  65 malformed input file, 66 nothing matched (or no such file), \
                  69 Prometheus unreachable or refusing the credentials, 70 internal error."
)]
pub struct AnalyzeArgs {
    /// Prometheus base URL, e.g. http://prometheus:9090.
    #[arg(long, value_name = "URL")]
    pub prometheus: Option<String>,
    /// OTLP/JSON lines, as the Collector's file exporter writes them.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["since", "start", "end", "step", "selector", "header"])]
    pub file: Option<PathBuf>,
    /// How far back from now [default: 48h].
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration, conflicts_with_all = ["start", "end"])]
    pub since: Option<Duration>,
    /// Start of the window (RFC 3339), with --end.
    #[arg(long, value_name = "RFC3339", requires = "end", value_parser = parse_time)]
    pub start: Option<SystemTime>,
    /// End of the window (RFC 3339), with --start.
    #[arg(long, value_name = "RFC3339", requires = "start", value_parser = parse_time)]
    pub end: Option<SystemTime>,
    /// Resolution of the samples pulled (query_range step).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration, default_value = "15s")]
    pub step: Duration,
    /// Label matchers every series must also match, e.g. '{job="checkout"}'.
    #[arg(long, value_name = "SELECTOR")]
    pub selector: Option<String>,
    /// The server's YAML configuration (detector, catalog, series settings) [env: LEAKWATCH_CONFIG].
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Extra HTTP header for Prometheus, 'Name: value' (repeatable).
    #[arg(long = "header", value_name = "NAME: VALUE")]
    pub header: Vec<String>,
}

fn parse_time(s: &str) -> Result<SystemTime, String> {
    humantime::parse_rfc3339_weak(s.trim_end_matches('Z'))
        .or_else(|_| humantime::parse_rfc3339(s))
        .map_err(|e| format!("not an RFC 3339 time ({e}), e.g. 2026-12-01T00:00:00Z"))
}

/// Why an analysis stopped, with its exit code.
#[derive(Debug, thiserror::Error)]
pub enum AnalyzeError {
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Config(#[from] crate::config::ConfigErrors),
    #[error(transparent)]
    File(#[from] file::FileError),
    #[error(transparent)]
    Prometheus(#[from] PromError),
    #[error("{0}")]
    NothingInFile(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl AnalyzeError {
    pub fn exit_code(&self) -> u8 {
        match self {
            AnalyzeError::Usage(_) | AnalyzeError::Config(_) => EXIT_USAGE,
            AnalyzeError::File(file::FileError::Malformed { .. }) => EXIT_DATAERR,
            AnalyzeError::File(file::FileError::Open { .. }) | AnalyzeError::NothingInFile(_) => {
                EXIT_NOINPUT
            }
            AnalyzeError::Prometheus(PromError::NothingMatched { .. }) => EXIT_NOINPUT,
            AnalyzeError::Prometheus(PromError::BadQuery { .. }) => EXIT_USAGE,
            AnalyzeError::Prometheus(_) => EXIT_UNAVAILABLE,
            AnalyzeError::Internal(_) => EXIT_SOFTWARE,
        }
    }
}

/// Runs the command: prints the report on stdout, errors on stderr; returns the exit code.
pub fn main(args: AnalyzeArgs) -> u8 {
    match run(&args) {
        Ok(report) => {
            match args.format {
                Format::Table => print!("{}", report.to_table()),
                Format::Json => println!("{}", report.to_json()),
            }
            report.exit_code
        }
        Err(e) => {
            eprintln!("leakwatch analyze: {e}");
            e.exit_code()
        }
    }
}

/// Runs the analysis and returns the report.
pub fn run(args: &AnalyzeArgs) -> Result<Report, AnalyzeError> {
    let config = args
        .config
        .clone()
        .or_else(|| std::env::var_os("LEAKWATCH_CONFIG").map(PathBuf::from));
    let settings = Settings::load(config.as_deref())?;
    if let Some(path) = &args.file {
        return run_file(path, &settings);
    }
    let url = args
        .prometheus
        .clone()
        .ok_or_else(|| AnalyzeError::Usage("--prometheus URL or --file FILE is required".into()))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| AnalyzeError::Internal(format!("starting the runtime: {e}")))?;
    runtime.block_on(run_prometheus(url, args, settings))
}

fn run_file(path: &std::path::Path, settings: &Settings) -> Result<Report, AnalyzeError> {
    let requests = file::read_requests(path)?;
    let mut replay = Replay::new(settings);
    let bar = progress(requests.len() as u64, "replaying");
    for (i, body) in requests.into_iter().enumerate() {
        replay.ingest(body).map_err(|e| {
            // The JSON decoder's output is always a valid request: a bug if not.
            AnalyzeError::Internal(format!("request {} of the file: {e}", i + 1))
        })?;
        bar.inc(1);
    }
    bar.finish_and_clear();
    let verdicts = replay.finish();
    if verdicts.is_empty() {
        return Err(AnalyzeError::NothingInFile(format!(
            "{} has no metric the runtime catalog knows (looked for: {})",
            path.display(),
            settings
                .engine
                .catalog
                .metric_names()
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    Ok(Report::new(path.display().to_string(), None, verdicts))
}

/// The window `[start, end]` in unix milliseconds.
fn window(args: &AnalyzeArgs) -> Result<(i64, i64), AnalyzeError> {
    let ms = |t: SystemTime| {
        t.duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .map_err(|_| AnalyzeError::Usage("times before 1970 are not supported".into()))
    };
    let (start, end) = match (args.start, args.end) {
        (Some(s), Some(e)) => (ms(s)?, ms(e)?),
        _ => {
            let now = ms(SystemTime::now())?;
            let since = args.since.unwrap_or(Duration::from_secs(48 * 3600));
            (now - since.as_millis() as i64, now)
        }
    };
    if end <= start {
        return Err(AnalyzeError::Usage("--end must be after --start".into()));
    }
    Ok((start, end))
}

fn headers(raw: &[String]) -> Result<HeaderMap, AnalyzeError> {
    let mut map = HeaderMap::new();
    for h in raw {
        let bad = |why: &str| AnalyzeError::Usage(format!("--header {h:?}: {why}"));
        let (name, value) = h
            .split_once(':')
            .ok_or_else(|| bad("expected 'Name: value'"))?;
        let name = HeaderName::from_bytes(name.trim().as_bytes())
            .map_err(|_| bad("invalid header name"))?;
        let mut value =
            HeaderValue::from_str(value.trim()).map_err(|_| bad("invalid header value"))?;
        value.set_sensitive(true);
        map.append(name, value);
    }
    Ok(map)
}

/// The user's selector as matchers without braces.
fn selector(raw: Option<&str>) -> Result<String, AnalyzeError> {
    let Some(raw) = raw.map(str::trim).filter(|s| !s.is_empty()) else {
        return Ok(String::new());
    };
    match raw.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
        Some(inner) => Ok(inner.trim().trim_end_matches(',').to_owned()),
        None => Err(AnalyzeError::Usage(format!(
            "--selector {raw:?}: give label matchers only, in braces, e.g. '{{job=\"checkout\"}}' \
             (leakwatch picks the metric names itself)"
        ))),
    }
}

async fn run_prometheus(
    url: String,
    args: &AnalyzeArgs,
    settings: Settings,
) -> Result<Report, AnalyzeError> {
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(AnalyzeError::Usage(format!(
            "--prometheus {url:?}: expected an http:// or https:// URL"
        )));
    }
    let (start_ms, end_ms) = window(args)?;
    if args.step.is_zero() {
        return Err(AnalyzeError::Usage("--step must be > 0".into()));
    }
    let names = Arc::new(NameMap::new(&settings.engine.catalog));
    let prom = Arc::new(Prometheus::new(Query {
        url: url.clone(),
        headers: headers(&args.header)?,
        names,
        selector: selector(args.selector.as_deref())?,
        start_ms,
        end_ms,
        step_ms: args.step.as_millis() as i64,
        timeout: REQUEST_TIMEOUT,
    })?);
    let processes = prom.discover().await?;
    let target_info = Arc::new(prom.target_info().await);
    let chunks = prom.chunks();
    let bar = progress((processes.len() * chunks.len()) as u64, "querying");
    let settings = Arc::new(settings);
    let keys: Vec<ProcessKey> = processes.into_keys().collect();
    // Fetch a few processes at a time; replay each on the blocking pool as soon as it is in,
    // so memory holds only the processes in flight.
    let mut fetched = stream::iter(keys)
        .map(|key| {
            let prom = Arc::clone(&prom);
            let chunks = chunks.clone();
            let bar = bar.clone();
            async move {
                let mut parts = Vec::with_capacity(chunks.len());
                for c in chunks {
                    parts.push(prom.fetch_chunk(&key, c).await?);
                    bar.inc(1);
                }
                Ok::<_, PromError>((key, parts))
            }
        })
        .buffer_unordered(PARALLEL_PROCESSES);
    let mut replays = Vec::new();
    while let Some(result) = fetched.next().await {
        let (key, parts) = result?;
        let process = prom.assemble(&key, target_info.get(&key), parts);
        let settings = Arc::clone(&settings);
        replays.push(tokio::task::spawn_blocking(move || {
            let mut replay = Replay::new(&settings);
            replay.process(&process).map(|()| replay.finish())
        }));
    }
    bar.finish_and_clear();
    let mut verdicts = Vec::new();
    for handle in replays {
        let result = handle
            .await
            .map_err(|e| AnalyzeError::Internal(format!("a replay panicked: {e}")))?;
        verdicts.extend(result.map_err(|e| AnalyzeError::Internal(e.to_string()))?);
    }
    let ns = |ms: i64| ms as u64 * 1_000_000;
    Ok(Report::new(url, Some((ns(start_ms), ns(end_ms))), verdicts))
}

/// A progress bar on stderr when it is a terminal; a hidden one otherwise (piped, CI, cron).
fn progress(len: u64, what: &'static str) -> indicatif::ProgressBar {
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(len),
        indicatif::ProgressDrawTarget::stderr(),
    );
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} ({eta})")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what);
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_are_matchers_in_braces() {
        assert_eq!(selector(None).expect("none"), "");
        assert_eq!(
            selector(Some(r#" {job="checkout", env=~"prod.*"} "#)).expect("ok"),
            r#"job="checkout", env=~"prod.*""#
        );
        assert!(matches!(
            selector(Some(r#"up{job="x"}"#)),
            Err(AnalyzeError::Usage(_))
        ));
    }

    #[test]
    fn headers_parse_and_bad_ones_are_usage_errors() {
        let h = headers(&[
            "Authorization: Bearer abc".into(),
            "X-Scope-OrgID:t1".into(),
        ])
        .expect("valid");
        assert_eq!(h.get("authorization").map(|v| v.is_sensitive()), Some(true));
        assert_eq!(
            h.get("x-scope-orgid").and_then(|v| v.to_str().ok()),
            Some("t1")
        );
        let e = headers(&["no colon".into()]).expect_err("invalid");
        assert_eq!(e.exit_code(), EXIT_USAGE);
    }

    #[test]
    fn times_parse_as_rfc3339() {
        let t = parse_time("2026-12-01T00:00:00Z").expect("utc");
        assert_eq!(
            t.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).ok(),
            Some(1_796_083_200)
        );
        assert!(parse_time("yesterday").is_err());
    }
}
