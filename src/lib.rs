//! leakwatch: an OTLP endpoint that catches memory leaks in production before
//! the OOM killer does.
//!
//! Apps (or a collector) point their OTLP exporter at leakwatch. It forwards
//! everything it receives, unchanged, to the next collector, and on the way
//! keeps a small, bounded trend model per memory series, in event time, to
//! decide whether a process leaks memory.
//!
//! # Layout
//!
//! Data flows one way, one module per stage; a module imports only those below it:
//!
//! ```text
//! receiver::{grpc,http} ─► pipeline::Ingress ─► engine (table ─► detector) ─► notify ─► outlets
//!          │                      └──────────── original bytes ────────────► exporter ─► downstream
//! ```
//!
//! - [`otlp`]: protobuf types, signal kinds, the checked borrowed view, counting, re-encoding,
//!   codecs, the one raw-bytes gRPC export service and the one set of OTLP builders.
//! - [`catalog`]: which runtime metrics mean what (heap, RSS, GC, requests).
//! - [`detector`]: the pure numeric core: per-series trends, per-process lifecycle.
//! - [`ops`]: self-telemetry, memory limiter, the TLS loader, HTTP serving, slow-client
//!   deadlines, tickers, the outbound HTTP client.
//! - [`auth`], [`secret`], [`config`]: bearer tokens, redacted secrets, typed configuration.
//! - [`engine`]: feeds every point of a request to detection; resource identity, the series
//!   table, the snapshot format and the read models.
//! - [`exporter`]: the bounded queue (optionally written ahead to disk), the senders, the channel.
//! - [`notify`]: one fan-out of leak events to outlets (log line, OTLP log records), each off the
//!   request path; derived metrics.
//! - [`pipeline`]: the protocol-independent export path.
//! - [`receiver`]: OTLP/gRPC and OTLP/HTTP front ends.
//! - [`checkpoint`], [`selfwatch`], [`admin`]: saved detector state, self-monitoring, the admin
//!   listener.
//! - [`server`]: the composition root.
//! - [`analyze`]: `leakwatch analyze`, the same engine replayed over history from Prometheus or
//!   OTLP/JSON files (a composition root of its own, beside `server`).
//!
//! The root re-exports what embedding leakwatch needs; the modules stay public because the
//! benches, fuzz targets, tools and tests exercise one stage at a time. The development tools
//! (load generator, scenario traces, reference practices) live in the unpublished
//! `leakwatch-tools` crate (`tools/`), which the product never depends on.

pub mod admin;
pub mod analyze;
pub mod auth;
pub mod catalog;
pub mod checkpoint;
pub mod config;
pub mod detector;
pub mod engine;
pub mod exporter;
pub mod notify;
pub mod ops;
pub mod otlp;
pub mod pipeline;
pub mod receiver;
pub mod secret;
pub mod selfwatch;
pub mod server;

pub use config::Config;
pub use detector::{DetectorConfig, LeakEvent, LeakEventKind, LeakState};
pub use engine::{Engine, EngineConfig, EngineEvent};
pub use notify::{Notifier, Outlet};
pub use pipeline::Ingress;
pub use server::{Addresses, Bound, ServerError, ShutdownReport};
