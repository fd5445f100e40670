//! The `leakwatch` binary: parse → validate → bind → serve → wait.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use leakwatch::config::{Config, LogFormat, ProcessEnv};
use tokio_util::sync::CancellationToken;

/// jemalloc rather than glibc malloc: glibc grows per-thread arenas under
/// concurrent load and keeps their pages (RSS stepped 10 → 17 MiB in a
/// 30-minute soak with no leak), while jemalloc returns unused pages by decay
/// and reports its live bytes exactly, which self-monitoring reads.
#[cfg(feature = "jemalloc")]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's count of bytes allocated by the program and not yet freed.
#[cfg(feature = "jemalloc")]
struct JemallocHeap;

#[cfg(feature = "jemalloc")]
impl leakwatch::selfwatch::HeapProbe for JemallocHeap {
    fn allocated_bytes(&self) -> Option<u64> {
        // jemalloc's statistics are a snapshot refreshed by advancing the epoch.
        tikv_jemalloc_ctl::epoch::advance().ok()?;
        tikv_jemalloc_ctl::stats::allocated::read()
            .ok()
            .map(|b| b as u64)
    }
}

/// `leakwatch --version`: the crate version and the git commit it was built from (build.rs;
/// `unknown` when built outside a git checkout).
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("LEAKWATCH_GIT_COMMIT"),
    ")"
);

/// Catches memory leaks in production before the OOM killer does: an OTLP
/// endpoint that forwards everything and watches memory trends in the stream.
#[derive(Parser, Debug)]
#[command(name = "leakwatch", version = VERSION, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the server (the default).
    Serve(ServeArgs),
    /// Validate the configuration and print it, with defaults filled in, as YAML.
    CheckConfig(ServeArgs),
    /// Print a Prometheus rule group over the derived metrics (the Alertmanager outlet's
    /// alerts, for alerting from a TSDB); static labels and runbook from notify.alertmanager.
    Rules(ServeArgs),
    /// Run the detector over history in Prometheus or OTLP/JSON files; one verdict per process.
    /// Exit code 0 no leak, 1 suspected, 2 confirmed.
    Analyze(leakwatch::analyze::AnalyzeArgs),
}

/// Settings for `serve`. Each flag also has an environment variable; the
/// precedence is defaults < file < environment < flags.
#[derive(Args, Debug, Default, Clone)]
struct ServeArgs {
    /// YAML configuration file [env: LEAKWATCH_CONFIG].
    #[arg(long, short = 'c', value_name = "FILE")]
    config: Option<PathBuf>,
    /// OTLP/gRPC listen address [env: LEAKWATCH_GRPC_LISTEN] [default: 127.0.0.1:4317].
    #[arg(long, value_name = "ADDR")]
    grpc_listen: Option<String>,
    /// OTLP/HTTP listen address [env: LEAKWATCH_HTTP_LISTEN] [default: 127.0.0.1:4318].
    #[arg(long, value_name = "ADDR")]
    http_listen: Option<String>,
    /// Admin listen address [env: LEAKWATCH_ADMIN_LISTEN] [default: 127.0.0.1:9464].
    #[arg(long, value_name = "ADDR")]
    admin_listen: Option<String>,
    /// Downstream OTLP/gRPC endpoint, e.g. http://127.0.0.1:14317 [env: LEAKWATCH_DOWNSTREAM].
    #[arg(long, value_name = "URL")]
    downstream: Option<String>,
    /// Most bytes of one merged downstream export [env: LEAKWATCH_BATCH_MAX_BYTES] [default: 1048576].
    #[arg(long, value_name = "BYTES")]
    batch_max_bytes: Option<String>,
    /// Log format: text or json [env: LEAKWATCH_LOG_FORMAT].
    #[arg(long, value_name = "FORMAT")]
    log_format: Option<String>,
    /// Log filter, e.g. info or leakwatch=debug [env: LEAKWATCH_LOG_LEVEL].
    #[arg(long, value_name = "FILTER")]
    log_level: Option<String>,
    /// Most series tracked [env: LEAKWATCH_MAX_SERIES].
    #[arg(long, value_name = "N")]
    max_series: Option<String>,
}

impl ServeArgs {
    fn flags(&self) -> Vec<(&'static str, String)> {
        let pairs = [
            ("grpc-listen", &self.grpc_listen),
            ("http-listen", &self.http_listen),
            ("admin-listen", &self.admin_listen),
            ("downstream", &self.downstream),
            ("batch-max-bytes", &self.batch_max_bytes),
            ("log-format", &self.log_format),
            ("log-level", &self.log_level),
            ("max-series", &self.max_series),
        ];
        pairs
            .into_iter()
            .filter_map(|(k, v)| v.clone().map(|v| (k, v)))
            .collect()
    }

    fn load(&self) -> Result<Config, leakwatch::config::ConfigErrors> {
        let file = self
            .config
            .clone()
            .or_else(|| std::env::var_os("LEAKWATCH_CONFIG").map(PathBuf::from));
        Config::load(file.as_deref(), &ProcessEnv, &self.flags())
    }
}

/// EX_USAGE from sysexits.h: the command line or the configuration is wrong. Not clap's
/// default 2, which `analyze` uses for "leak confirmed".
const EXIT_CONFIG: u8 = 64;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(EXIT_CONFIG)
            } else {
                // --help, --version
                ExitCode::SUCCESS
            };
        }
    };
    let (check_only, args) = match cli.command {
        Some(Command::Serve(a)) => (false, a),
        Some(Command::CheckConfig(a)) => (true, a),
        Some(Command::Rules(a)) => return print_rules(&a),
        Some(Command::Analyze(a)) => return ExitCode::from(leakwatch::analyze::main(a)),
        None => (false, cli.serve),
    };
    let config = match args.load() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("leakwatch: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    if check_only {
        match serde_yaml::to_string(&config) {
            Ok(text) => {
                print!("{text}");
                return ExitCode::SUCCESS;
            }
            Err(e) => {
                eprintln!("leakwatch: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    init_logging(&config);
    match run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "leakwatch failed.");
            eprintln!("leakwatch: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `leakwatch rules`.
fn print_rules(args: &ServeArgs) -> ExitCode {
    match args.load() {
        Ok(c) => {
            print!(
                "{}",
                leakwatch::notify::rules::rule_group(Some(&c.notify.alertmanager))
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("leakwatch: {e}");
            ExitCode::from(EXIT_CONFIG)
        }
    }
}

fn init_logging(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log.level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match config.log.format {
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Text => builder.init(),
    }
}

#[tokio::main]
async fn run(config: Config) -> anyhow::Result<()> {
    let bound = leakwatch::server::Bound::bind(config)
        .await
        .context("starting leakwatch")?;
    #[cfg(feature = "jemalloc")]
    let bound = {
        // jemalloc returns freed pages after a decay time, but only while it
        // is called: an idle process would keep, say, the old copy of a table
        // that grew. Its background thread purges on its own (measured: RSS
        // per series at 1M series 713 → 554 bytes once settled).
        if let Err(e) = tikv_jemalloc_ctl::background_thread::write(true) {
            tracing::warn!(error = %e, "jemalloc's background purging is unavailable.");
        }
        bound.with_heap_probe(std::sync::Arc::new(JemallocHeap))
    };
    let shutdown = CancellationToken::new();
    tokio::spawn(wait_for_signal(shutdown.clone()));
    bound.run(shutdown).await.context("running leakwatch")?;
    Ok(())
}

/// Cancels `token` on SIGINT or SIGTERM.
async fn wait_for_signal(token: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "Cannot listen for SIGTERM.");
                    let _ = ctrl_c.await;
                    token.cancel();
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => tracing::info!("SIGINT received."),
            _ = term.recv() => tracing::info!("SIGTERM received."),
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    token.cancel();
}
