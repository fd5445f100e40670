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
//! Data flows one way, one module per stage:
//!
//! ```text
//! receiver::{grpc,http} ──► engine (series ─► detector) ──► events ──► exporter ──► downstream
//!          └───────────────── original bytes ───────────────────────────┘
//! ```
//!
//! - [`receiver`]: OTLP/gRPC and OTLP/HTTP front ends over one export path.
//! - [`view`]: the checked, borrowed (allocation-free) view of a metrics request.
//! - [`engine`]: feeds every point of that view to detection.
//! - [`series`]: series identity (hashes of raw bytes) and the bounded table.
//! - [`catalog`]: which runtime metrics mean what (heap, RSS, GC, requests).
//! - [`detector`]: the pure numeric core: per-series trends, per-process lifecycle.
//! - [`events`]: leak events as log lines, OTLP log records and derived metrics.
//! - [`exporter`]: the bounded queue (optionally written ahead to disk) and the senders.
//! - [`checkpoint`]: the detector state saved periodically and restored at start.
//! - [`admin`]: health, self-metrics, JSON API, web page.
//! - [`auth`], [`secret`]: bearer tokens and redacted secrets.
//! - [`config`], [`server`], [`net`], [`telemetry`], [`codec`], [`proto`], [`signal`]: plumbing.

pub mod admin;
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
