//! The real Alertmanager (Debian's `prometheus-alertmanager` 0.25, API v2) for the alerting
//! tests: started on a loopback port with its own config and storage in a temp dir,
//! clustering off. `scripts/setup-test-env.sh` installs it. Without the binary the tests
//! skip with a message — except under `CI=true`, where they fail.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use super::procs::{free_port, http_get, wait_for_port, Proc, READY_TIMEOUT};

/// Where the binary is (`LEAKWATCH_TEST_ALERTMANAGER` overrides).
pub fn binary() -> PathBuf {
    std::env::var_os("LEAKWATCH_TEST_ALERTMANAGER")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/prometheus-alertmanager"))
}

/// `amtool`, shipped in the same package.
pub fn amtool() -> PathBuf {
    binary().with_file_name("amtool")
}

/// Whether the alerting tests can run: panics under `CI=true` when the binary is missing,
/// otherwise prints why they skip.
pub fn available(test: &str) -> bool {
    if binary().is_file() {
        return true;
    }
    let msg = format!(
        "{} not found: run scripts/setup-test-env.sh (installs Debian's prometheus-alertmanager)",
        binary().display()
    );
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{test}: {msg}");
    }
    eprintln!("SKIPPED {test}: {msg}");
    false
}

/// The inhibit rule README's "Get paged" shows: the warning is muted while the critical
/// alert of the same process fires.
pub const INHIBIT_RULES: &str = r#"inhibit_rules:
  - source_matchers: [alertname="MemoryLeakConfirmed"]
    target_matchers: [alertname="MemoryLeakSuspected"]
    equal: [service_name, service_namespace, service_instance_id, k8s_namespace_name, k8s_pod_name, k8s_container_name]
"#;

/// A running Alertmanager; killed and its directory removed on drop.
pub struct Alertmanager {
    pub port: u16,
    pub proc: Proc,
    dir: PathBuf,
}

impl Alertmanager {
    pub fn start() -> Alertmanager {
        Alertmanager::start_on(free_port())
    }

    /// On `port` (a test may point leakwatch at it before it runs).
    pub fn start_on(port: u16) -> Alertmanager {
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "leakwatch-am-{}-{port}-{}",
            std::process::id(),
            N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        std::fs::create_dir_all(dir.join("data")).expect("alertmanager dir");
        let config = dir.join("alertmanager.yml");
        std::fs::write(
            &config,
            format!(
                "route:\n  receiver: blackhole\n  group_by: [alertname, service_name]\n  group_wait: 1s\nreceivers:\n  - name: blackhole\n{INHIBIT_RULES}"
            ),
        )
        .expect("alertmanager config");
        let mut cmd = Command::new(binary());
        cmd.arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .arg("--log.level=warn");
        let mut proc = Proc::spawn("alertmanager", cmd);
        wait_for_port(port, &mut proc, READY_TIMEOUT).unwrap_or_else(|e| panic!("{e}"));
        let deadline = Instant::now() + READY_TIMEOUT;
        while http_get(port, "/-/ready").0 != 200 {
            assert!(Instant::now() < deadline, "alertmanager never ready");
            std::thread::sleep(Duration::from_millis(50));
        }
        Alertmanager { port, proc, dir }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `GET /api/v2/alerts`: the alerts Alertmanager holds that have not ended.
    pub fn alerts(&self) -> Vec<serde_json::Value> {
        let (status, body) = http_get(self.port, "/api/v2/alerts");
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).expect("alerts json")
    }

    /// Names of the alerts not ended, sorted (duplicates kept).
    pub fn names(&self) -> Vec<String> {
        let mut n: Vec<String> = self
            .alerts()
            .iter()
            .filter_map(|a| a["labels"]["alertname"].as_str().map(str::to_owned))
            .collect();
        n.sort();
        n
    }

    /// Polls until `pred` holds on the alert names; panics with what it saw.
    pub async fn wait_for(&self, what: &str, timeout: Duration, pred: impl Fn(&[String]) -> bool) {
        let deadline = Instant::now() + timeout;
        loop {
            let names = self.names();
            if pred(&names) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "alertmanager: never saw {what} within {timeout:?}; it holds {names:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Stops it (SIGKILL), keeping nothing.
    pub fn stop(mut self) {
        self.proc.kill();
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        self.proc.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
