//! Build steps:
//! 1. Compiles `proto/leakwatch/lean/v1/lean.proto`, the lean view of OTLP export requests
//!    decoded on the hot path, with protox (a pure-Rust protobuf compiler) so that no system
//!    `protoc` is needed on a fresh machine.
//! 2. Stamps the git commit into the binary (`leakwatch --version`) as `LEAKWATCH_GIT_COMMIT`:
//!    the build-time variable of that name when set (a build from a source tarball), else
//!    `git rev-parse HEAD` of the checkout, else `unknown` (no git, or not a checkout).
use std::path::{Path, PathBuf};
use std::process::Command;

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

    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=LEAKWATCH_GIT_COMMIT");
    let commit = match std::env::var("LEAKWATCH_GIT_COMMIT") {
        Ok(c) if !c.trim().is_empty() => c.trim().to_owned(),
        _ => git_commit().unwrap_or_else(|| "unknown".to_owned()),
    };
    println!("cargo:rustc-env=LEAKWATCH_GIT_COMMIT={commit}");
    Ok(())
}

/// `git rev-parse HEAD` (12 hex digits), and a rerun of this script when HEAD moves: the files
/// git keeps HEAD and the branch it names in (a worktree's HEAD lives in its own git dir, the
/// branch in the common one). Only files that exist are named: cargo reruns the script on
/// every build for a path that does not.
fn git_commit() -> Option<String> {
    let git = |args: &[&str]| -> Option<String> {
        let out = Command::new("git").args(args).output().ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
            .filter(|s| !s.is_empty())
    };
    // Only this checkout's own commit: not that of a repository the sources were unpacked in.
    let top = git(&["rev-parse", "--show-toplevel"])?;
    let here = std::env::var("CARGO_MANIFEST_DIR").ok()?;
    if std::fs::canonicalize(top).ok()? != std::fs::canonicalize(here).ok()? {
        return None;
    }
    let commit = git(&["rev-parse", "--short=12", "HEAD"])?;
    let mut watched = vec![git(&["rev-parse", "--git-path", "HEAD"])];
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        watched.push(git(&["rev-parse", "--git-path", &branch]));
    }
    watched.push(git(&["rev-parse", "--git-path", "packed-refs"]));
    for path in watched.into_iter().flatten() {
        if Path::new(&path).exists() {
            println!("cargo:rerun-if-changed={path}");
        }
    }
    Some(commit)
}
