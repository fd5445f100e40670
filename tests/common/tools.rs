//! The external tools the packaging and deployment tests need (tests/package.rs,
//! tests/deploy.rs): found on PATH or in `.test-env/` (scripts/setup-test-env.sh installs them).
//! A missing tool fails the test under `CI=true`; elsewhere the test prints why it skips.
//! Included with `#[path = "common/tools.rs"] mod tools;`.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// The repository root.
pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Whether this run is CI (`CI=true`), where nothing may be skipped.
pub fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// `name` on PATH.
pub fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// The tool at `found`, or: a panic under CI, else a SKIPPED line and `None`.
pub fn require(test: &str, what: &str, found: Option<PathBuf>, hint: &str) -> Option<PathBuf> {
    if found.is_some() {
        return found;
    }
    let msg = format!("{what} not found: {hint}");
    if ci() {
        panic!("{test}: {msg}");
    }
    eprintln!("SKIPPED {test}: {msg}");
    None
}

/// A scratch directory under the system temp dir, removed on drop.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(tag: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("leakwatch-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create scratch dir");
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `cmd`, panics with its output unless it exits 0; returns stdout.
pub fn run_ok(cmd: &mut std::process::Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `leakwatch` at `bin`, without the caller's `LEAKWATCH_*` variables (they would override the
/// configuration under test).
pub fn leakwatch(bin: &Path) -> std::process::Command {
    let mut cmd = std::process::Command::new(bin);
    for (k, _) in std::env::vars() {
        if k.starts_with("LEAKWATCH_") {
            cmd.env_remove(k);
        }
    }
    cmd
}
