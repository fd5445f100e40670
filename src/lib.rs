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
//! receiver::{grpc,http,json} ──► engine (table ─► detector) ──► notify ──► exporter ──► downstream
//!          └──────────────────── original bytes ──────────────────────────────┘
//! ```
//!
//! - [`otlp`]: protobuf types, signal kinds, the checked borrowed view, counting, re-encoding, codecs.
//! - [`catalog`]: which runtime metrics mean what (heap, RSS, GC, requests).
//! - [`detector`]: the pure numeric core: per-series trends, per-process lifecycle.
//! - [`ops`]: self-telemetry, memory limiter, TLS/HTTP serving, slow-client deadlines, tickers,
//!   the outbound HTTP client.
//! - [`auth`], [`secret`]: bearer tokens and redacted secrets.
//! - [`engine`]: feeds every point of a request to detection; resource identity, the series
//!   table, the snapshot format and the read models.
//! - [`exporter`]: the bounded queue (optionally written ahead to disk) and the senders.
//! - [`notify`]: leak events as log lines, OTLP log records and derived metrics.
//! - [`receiver`]: OTLP/gRPC and OTLP/HTTP front ends over one export path.
//! - [`checkpoint`], [`selfwatch`], [`admin`]: saved detector state, self-monitoring, the admin
//!   listener.
//! - [`config`], [`server`]: typed configuration; the composition root.
//! - [`analyze`]: `leakwatch analyze`, the same engine replayed over history from Prometheus or
//!   OTLP/JSON files (a composition root of its own, beside `server`).
//!
//! The development tools (load generator, scenario traces, reference practices) live in the
//! unpublished `leakwatch-tools` crate (`tools/`), which the product never depends on.

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
pub mod receiver;
pub mod secret;
pub mod selfwatch;
pub mod server;
