//! `leakwatch-loadgen`: send OTLP metrics at a target or maximal rate and report throughput
//! and latency, or (`--sink`) be a blackhole downstream. See `leakwatch_tools::loadgen`.

use std::process::ExitCode;

use clap::Parser;
use leakwatch_tools::loadgen::{self, LoadgenArgs};

/// The load generator of leakwatch's benchmarks, soaks and floods.
#[derive(Parser, Debug)]
#[command(name = "leakwatch-loadgen", version)]
struct Cli {
    #[command(flatten)]
    args: LoadgenArgs,
}

fn main() -> ExitCode {
    loadgen::main(Cli::parse().args)
}
