//! The installable leakwatch: `--version` names the commit; the packaged configuration is the
//! built-in defaults, commented, plus the package's own settings (it cannot drift from what the
//! binary prints); the Debian package built by cargo-deb installs, runs (`--version`,
//! `check-config` on the installed file), carries a unit `systemd-analyze` accepts, and purges
//! without a trace.
//!
//! The package test builds the .deb with `cargo deb --no-build` around the binary this test run
//! already built (no second, release build in CI: what is tested is the package's layout,
//! maintainer scripts, unit and conffile; `cargo deb` alone builds the release package). As root
//! it installs it with `dpkg -i` and purges it after; otherwise it unpacks it with `dpkg-deb -x`
//! into a temporary root and says so. Under `CI=true` a missing tool, or not being root, fails.

#[path = "common/tools.rs"]
mod tools;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use tools::{leakwatch, require, root, run_ok, Scratch};

const BIN: &str = env!("CARGO_BIN_EXE_leakwatch");
const PACKAGED_CONFIG: &str = "packaging/leakwatch.yaml";
const UNIT: &str = "packaging/leakwatch.service";
/// The last line of the packaged configuration's hand-written part; the commented defaults follow.
const DEFAULTS_MARKER: &str = "#   LEAKWATCH_BLESS=1 cargo test --test package";
/// What the package sets on top of the defaults (the rest of the file is commented out).
const PACKAGE_SETTINGS: &str =
    "checkpoint:\n  path: /var/lib/leakwatch/checkpoint\n  interval: 1m\n";

/// The commit `leakwatch --version` must name: what build.rs found.
fn expected_commit() -> String {
    if let Ok(c) = std::env::var("LEAKWATCH_GIT_COMMIT") {
        if !c.trim().is_empty() {
            return c.trim().to_owned();
        }
    }
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .current_dir(root())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    let own_checkout = git(&["rev-parse", "--show-toplevel"])
        .and_then(|top| std::fs::canonicalize(top).ok())
        .is_some_and(|top| std::fs::canonicalize(root()).is_ok_and(|r| r == top));
    match git(&["rev-parse", "--short=12", "HEAD"]) {
        Some(c) if own_checkout => c,
        _ => "unknown".to_owned(),
    }
}

#[test]
fn version_names_the_git_commit() {
    let out = run_ok(leakwatch(Path::new(BIN)).arg("--version"));
    let want = format!(
        "leakwatch {} (commit {})\n",
        env!("CARGO_PKG_VERSION"),
        expected_commit()
    );
    assert_eq!(out, want);
}

fn defaults() -> String {
    run_ok(leakwatch(Path::new(BIN)).arg("check-config"))
}

/// `check-config` output, commented out line by line.
fn commented(yaml: &str) -> String {
    yaml.lines()
        .map(|l| {
            if l.is_empty() {
                "#\n".to_owned()
            } else {
                format!("# {l}\n")
            }
        })
        .collect()
}

#[test]
fn packaged_config_is_the_binarys_defaults_commented() {
    let path = root().join(PACKAGED_CONFIG);
    let text = std::fs::read_to_string(&path).expect("read packaging/leakwatch.yaml");
    let head_len = text
        .find(DEFAULTS_MARKER)
        .map(|i| i + DEFAULTS_MARKER.len() + 1)
        .unwrap_or_else(|| panic!("{PACKAGED_CONFIG}: marker line {DEFAULTS_MARKER:?} missing"));
    let want = format!("{}{}", &text[..head_len], commented(&defaults()));
    if text != want {
        if std::env::var("LEAKWATCH_BLESS").is_ok_and(|v| v == "1") {
            std::fs::write(&path, &want).expect("write packaging/leakwatch.yaml");
            eprintln!("{PACKAGED_CONFIG}: rewrote the defaults block");
        } else {
            let first = text
                .lines()
                .zip(want.lines())
                .position(|(a, b)| a != b)
                .map_or_else(|| "at its end".to_owned(), |i| format!("at line {}", i + 1));
            panic!(
                "{PACKAGED_CONFIG} no longer lists the defaults `leakwatch check-config` prints \
                 (first difference {first}); regenerate it: LEAKWATCH_BLESS=1 cargo test --test package"
            );
        }
    }

    // Active, it is the defaults plus the package's settings, nothing else.
    let effective = run_ok(
        leakwatch(Path::new(BIN))
            .arg("check-config")
            .arg("--config")
            .arg(&path),
    );
    let defaults = defaults();
    assert!(defaults.contains("\ncheckpoint: null\n"), "{defaults}");
    assert_eq!(
        effective,
        defaults.replace("\ncheckpoint: null\n", &format!("\n{PACKAGE_SETTINGS}")),
        "{PACKAGED_CONFIG}'s active settings"
    );

    // Its forwarding example, uncommented, is valid and queues in the state directory.
    let example: String = text[..head_len]
        .split("\n\n")
        .find(|block| block.lines().any(|l| l == "#downstream:"))
        .expect("the commented forwarding example")
        .lines()
        .filter_map(|l| l.strip_prefix('#'))
        .filter(|l| !l.starts_with(' ') || l.starts_with("  "))
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(example.starts_with("downstream:\n"), "{example}");
    let scratch = Scratch::new("package-config");
    let file = scratch.0.join("forwarding.yaml");
    std::fs::write(&file, format!("{PACKAGE_SETTINGS}{example}")).expect("write");
    let out = run_ok(
        leakwatch(Path::new(BIN))
            .arg("check-config")
            .arg("--config")
            .arg(&file),
    );
    assert!(
        out.contains("endpoint: http://127.0.0.1:14317")
            && out.contains("dir: /var/lib/leakwatch/queue"),
        "{out}"
    );
}

#[test]
fn unit_keeps_its_hardening() {
    // What README's Install section promises; systemd-analyze checks the syntax below.
    let unit = std::fs::read_to_string(root().join(UNIT)).expect("read the unit");
    for line in [
        "User=leakwatch",
        "ExecStart=/usr/bin/leakwatch serve --config /etc/leakwatch/leakwatch.yaml",
        "Restart=on-failure",
        "StateDirectory=leakwatch",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "CapabilityBoundingSet=",
        "PrivateTmp=yes",
    ] {
        assert!(unit.lines().any(|l| l == line), "{UNIT}: no line {line:?}");
    }
}

fn cargo_deb(test: &str) -> Option<PathBuf> {
    let found = std::env::var_os("LEAKWATCH_TEST_CARGO_DEB")
        .map(PathBuf::from)
        .or_else(|| Some(root().join(".test-env/cargo/bin/cargo-deb")))
        .filter(|p| p.is_file())
        .or_else(|| tools::on_path("cargo-deb"));
    require(
        test,
        "cargo-deb",
        found,
        "run scripts/setup-test-env.sh (cargo install cargo-deb into .test-env/cargo)",
    )
}

/// Runs a dpkg command, waiting (up to 2 minutes) while another dpkg or apt holds the lock.
fn dpkg(args: &[&str]) -> std::process::Output {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let out = Command::new("dpkg")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .output()
            .expect("run dpkg");
        let err = String::from_utf8_lossy(&out.stderr);
        if out.status.success() || !err.contains("lock") || Instant::now() > deadline {
            return out;
        }
        std::thread::sleep(Duration::from_secs(2));
    }
}

fn assert_ok(what: &str, out: &std::process::Output) {
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn package_status() -> String {
    Command::new("dpkg-query")
        .args(["-W", "-f", "${Status}", "leakwatch"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

fn user_exists(name: &str) -> bool {
    Command::new("getent")
        .args(["passwd", name])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Purges the package (and the user the install created) if the test ends early.
struct Installed {
    created_user: bool,
    purged: bool,
}

impl Installed {
    fn remove_user(&self) {
        if self.created_user {
            // Debian leaves system users on purge; the test machine gets its state back.
            let _ = Command::new("userdel").arg("leakwatch").output();
            let _ = Command::new("groupdel").arg("leakwatch").output();
        }
    }
}

impl Drop for Installed {
    fn drop(&mut self) {
        if !self.purged {
            let _ = dpkg(&["--purge", "leakwatch"]);
        }
        self.remove_user();
    }
}

/// `systemd-analyze verify` exits 0 on unknown keys and bad values (it only warns): the test
/// wants it silent, then asks `systemd-analyze security` for an exposure of at most 2.0.
fn verify_unit(analyze: &Path, unit: &Path) {
    let out = Command::new(analyze)
        .args(["verify", "--man=no"])
        .arg(unit)
        .output()
        .expect("run systemd-analyze verify");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && err.trim().is_empty(),
        "systemd-analyze verify {}: {}\n{err}",
        unit.display(),
        out.status
    );
    let out = Command::new(analyze)
        .args(["security", "--offline=yes", "--threshold=20", "--no-pager"])
        .arg(unit)
        .output()
        .expect("run systemd-analyze security");
    let text = String::from_utf8_lossy(&out.stdout);
    let level = text
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or("no exposure line")
        .to_owned();
    eprintln!("systemd-analyze security: {level}");
    assert!(
        out.status.success(),
        "exposure above 2.0: {level}\n{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn deb_package_installs_runs_and_purges() {
    const TEST: &str = "deb_package_installs_runs_and_purges";
    let Some(cargo_deb) = cargo_deb(TEST) else {
        return;
    };
    let hint = "Debian's dpkg (dpkg-deb, dpkg-query)";
    let Some(_) = require(TEST, "dpkg-deb", tools::on_path("dpkg-deb"), hint) else {
        return;
    };
    let Some(analyze) = require(
        TEST,
        "systemd-analyze",
        tools::on_path("systemd-analyze"),
        "Debian's systemd package (apt-get install systemd)",
    ) else {
        return;
    };

    // cargo deb --no-build, with this run's binary where cargo-deb looks for the release one.
    let scratch = Scratch::new("package-deb");
    let target = scratch.0.join("target");
    std::fs::create_dir_all(target.join("release")).expect("mkdir");
    std::fs::copy(BIN, target.join("release/leakwatch")).expect("copy the binary");
    let out_dir = scratch.0.join("out");
    let started = Instant::now();
    run_ok(
        Command::new(&cargo_deb)
            .args(["deb", "--no-build", "--fast", "--quiet", "--output"])
            .arg(&out_dir)
            .env("CARGO_TARGET_DIR", &target)
            .current_dir(root()),
    );
    eprintln!(
        "cargo deb --no-build: {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let version = format!("{}-1", env!("CARGO_PKG_VERSION"));
    let deb = std::fs::read_dir(&out_dir)
        .expect("read the output dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.extension().is_some_and(|e| e == "deb")
                && p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("leakwatch_"))
        })
        .expect("leakwatch_*.deb in the output dir (beside leakwatch-dbgsym_*.deb)");
    let field = |name: &str| run_ok(Command::new("dpkg-deb").arg("-f").arg(&deb).arg(name));
    assert_eq!(field("Package").trim(), "leakwatch");
    assert_eq!(field("Version").trim(), version);
    let listing = run_ok(Command::new("dpkg-deb").arg("-c").arg(&deb));
    for path in [
        "./usr/bin/leakwatch",
        "./etc/leakwatch/leakwatch.yaml",
        "./usr/lib/systemd/system/leakwatch.service",
        "./usr/lib/sysusers.d/leakwatch.conf",
    ] {
        assert!(
            listing.lines().any(|l| l.ends_with(&format!(" {path}"))),
            "{path} not in the package:\n{listing}"
        );
    }
    let control = scratch.0.join("control");
    run_ok(Command::new("dpkg-deb").arg("-e").arg(&deb).arg(&control));
    let conffiles = std::fs::read_to_string(control.join("conffiles")).expect("conffiles");
    assert_eq!(conffiles.trim(), "/etc/leakwatch/leakwatch.yaml");
    let postinst = std::fs::read_to_string(control.join("postinst")).expect("postinst");
    assert!(
        postinst.contains("systemd-sysusers") && postinst.contains("deb-systemd-helper enable"),
        "{postinst}"
    );

    let root_user = run_ok(Command::new("id").arg("-u")).trim() == "0";
    let status = package_status();
    // LEAKWATCH_TEST_PACKAGE_UNPACK=1 takes the non-root path as root (to test that path).
    let unpack_only = std::env::var("LEAKWATCH_TEST_PACKAGE_UNPACK").is_ok_and(|v| v == "1");
    let installable = root_user && !status.contains("installed") && !unpack_only;
    if !installable {
        let why = if unpack_only {
            "LEAKWATCH_TEST_PACKAGE_UNPACK=1".to_owned()
        } else if root_user {
            format!("a leakwatch package is already installed ({status}); it is left alone")
        } else {
            "not root".to_owned()
        };
        assert!(
            !tools::ci(),
            "{TEST}: CI=true needs dpkg -i, but {why} (run the tests as root on a machine without leakwatch installed)"
        );
        eprintln!(
            "{TEST}: {why}: unpacking with dpkg-deb -x into a temporary root instead of dpkg -i"
        );
        unpacked(&scratch.0, &deb, &analyze);
        return;
    }

    let mut guard = Installed {
        created_user: !user_exists("leakwatch"),
        purged: false,
    };
    assert_ok("dpkg -i", &dpkg(&["-i", deb.to_str().expect("utf-8 path")]));
    assert!(
        package_status().contains("ok installed"),
        "{}",
        package_status()
    );

    let installed = Path::new("/usr/bin/leakwatch");
    let version_line = run_ok(leakwatch(installed).arg("--version"));
    assert_eq!(
        version_line,
        run_ok(leakwatch(Path::new(BIN)).arg("--version"))
    );
    let effective = run_ok(
        leakwatch(installed)
            .arg("check-config")
            .arg("--config")
            .arg("/etc/leakwatch/leakwatch.yaml"),
    );
    assert!(
        effective.contains("path: /var/lib/leakwatch/checkpoint"),
        "{effective}"
    );
    // The service's user exists (sysusers.d, applied by the postinst) and can read the config.
    let passwd = run_ok(Command::new("getent").args(["passwd", "leakwatch"]));
    assert!(
        passwd.contains(":/var/lib/leakwatch:") && passwd.trim_end().ends_with("nologin"),
        "{passwd}"
    );
    if tools::on_path("runuser").is_some() {
        run_ok(
            leakwatch(Path::new("runuser"))
                .args([
                    "-u",
                    "leakwatch",
                    "--",
                    "/usr/bin/leakwatch",
                    "check-config",
                    "--config",
                ])
                .arg("/etc/leakwatch/leakwatch.yaml"),
        );
    }
    let conffiles =
        run_ok(Command::new("dpkg-query").args(["-W", "-f", "${Conffiles}", "leakwatch"]));
    assert!(
        conffiles.contains("/etc/leakwatch/leakwatch.yaml"),
        "{conffiles}"
    );
    assert_eq!(
        std::fs::read_to_string("/etc/leakwatch/leakwatch.yaml").expect("read installed config"),
        std::fs::read_to_string(root().join(PACKAGED_CONFIG)).expect("read packaged config")
    );
    verify_unit(
        &analyze,
        Path::new("/usr/lib/systemd/system/leakwatch.service"),
    );
    if Path::new("/run/systemd/system").is_dir() {
        // systemd runs here: the postinst enabled and started the service.
        assert_readyz("127.0.0.1:9464");
    } else {
        eprintln!("{TEST}: systemd is not running here: the service was enabled, not started");
    }

    // Purge: everything goes, the state directory too.
    std::fs::create_dir_all("/var/lib/leakwatch/queue").expect("mkdir state");
    std::fs::write("/var/lib/leakwatch/checkpoint", b"state").expect("write state");
    assert_ok("dpkg --purge", &dpkg(&["--purge", "leakwatch"]));
    guard.purged = true;
    assert!(
        !package_status().contains("installed"),
        "{}",
        package_status()
    );
    for path in [
        "/usr/bin/leakwatch",
        "/etc/leakwatch",
        "/usr/lib/systemd/system/leakwatch.service",
        "/usr/lib/sysusers.d/leakwatch.conf",
        "/var/lib/leakwatch",
        "/etc/systemd/system/multi-user.target.wants/leakwatch.service",
    ] {
        assert!(!Path::new(path).exists(), "{path} left after purge");
    }
    guard.remove_user();
    guard.created_user = false;
}

/// The non-root path: the package's files, unpacked, run and verified in place.
fn unpacked(scratch: &Path, deb: &Path, analyze: &Path) {
    let tree = scratch.join("root");
    run_ok(Command::new("dpkg-deb").arg("-x").arg(deb).arg(&tree));
    let bin = tree.join("usr/bin/leakwatch");
    assert_eq!(
        run_ok(leakwatch(&bin).arg("--version")),
        run_ok(leakwatch(Path::new(BIN)).arg("--version"))
    );
    let effective = run_ok(
        leakwatch(&bin)
            .arg("check-config")
            .arg("--config")
            .arg(tree.join("etc/leakwatch/leakwatch.yaml")),
    );
    assert!(
        effective.contains("path: /var/lib/leakwatch/checkpoint"),
        "{effective}"
    );
    // systemd-analyze checks that ExecStart's binary exists: point it at the unpacked one.
    let unit = std::fs::read_to_string(tree.join("usr/lib/systemd/system/leakwatch.service"))
        .expect("read the unit");
    let moved = unit.replace(
        "ExecStart=/usr/bin/leakwatch ",
        &format!("ExecStart={} ", bin.display()),
    );
    assert_ne!(unit, moved, "the unit's ExecStart changed");
    let dir = scratch.join("unit");
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(dir.join("leakwatch.service"), moved).expect("write");
    verify_unit(analyze, &dir.join("leakwatch.service"));
}

/// Polls GET /readyz on `addr` for up to 30 s; panics unless it answers 200.
fn assert_readyz(addr: &str) {
    use std::io::{Read, Write};
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = String::new();
    while Instant::now() < deadline {
        if let Ok(mut s) = std::net::TcpStream::connect(addr) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let _ = s
                .write_all(b"GET /readyz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
            let mut resp = String::new();
            let _ = s.read_to_string(&mut resp);
            if resp.starts_with("HTTP/1.1 200") {
                return;
            }
            last = resp;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    panic!("the installed service never answered 200 on http://{addr}/readyz: {last}");
}
