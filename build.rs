//! Compiles `proto/leakwatch/lean/v1/lean.proto`, the lean view of OTLP export
//! requests decoded on the hot path, with protox (a pure-Rust protobuf
//! compiler) so that no system `protoc` is needed on a fresh machine.
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "proto/leakwatch/lean/v1/lean.proto";
    println!("cargo:rerun-if-changed={proto}");
    let fds = protox::compile([proto], ["proto"])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    prost_build::Config::new()
        // `bytes` fields become `bytes::Bytes`: slices of the request buffer,
        // no copy per attribute.
        .bytes(["."])
        .out_dir(&out)
        .compile_fds(fds)?;
    Ok(())
}
