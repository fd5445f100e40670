//! A real nginx (Debian's `nginx` 1.22) for the sharding tests: started as the test user with
//! its own prefix, config, pid file and temp paths in a temp dir, listening on loopback ports
//! only, in the foreground and without a master process; no system service is involved.
//! `scripts/setup-test-env.sh` installs it. Without the binary the tests skip with a message —
//! except under `CI=true`, where they fail.
//!
//! The config it runs is the shipped `deploy/nginx/leakwatch.conf`, its `${…}` placeholders
//! filled in (as `envsubst` would), included in a minimal `nginx.conf`.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use super::procs::{free_port, repo_root, wait_for_port, Proc, READY_TIMEOUT};

/// Where the binary is (`LEAKWATCH_TEST_NGINX` overrides).
pub fn binary() -> PathBuf {
    std::env::var_os("LEAKWATCH_TEST_NGINX")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/sbin/nginx"))
}

/// Whether the nginx tests can run: panics under `CI=true` when the binary is missing,
/// otherwise prints why they skip.
pub fn available(test: &str) -> bool {
    if binary().is_file() {
        return true;
    }
    let msg = format!(
        "{} not found: run scripts/setup-test-env.sh (installs Debian's nginx)",
        binary().display()
    );
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{test}: {msg}");
    }
    eprintln!("SKIPPED {test}: {msg}");
    false
}

/// The shipped config with its `${NAME}` placeholders replaced by `vars`; panics on a
/// placeholder left unfilled or a variable the file does not use.
pub fn render(template: &str, vars: &BTreeMap<&str, String>) -> String {
    let mut out = template.to_owned();
    for (name, value) in vars {
        let placeholder = format!("${{{name}}}");
        assert!(
            out.contains(&placeholder),
            "the template has no {placeholder}"
        );
        out = out.replace(&placeholder, value);
    }
    assert!(
        !out.contains("${"),
        "a placeholder is left unfilled:\n{out}"
    );
    out
}

/// The shipped file.
pub fn shipped_config() -> String {
    let path = repo_root().join("deploy/nginx/leakwatch.conf");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A running nginx; killed and its directory removed on drop.
pub struct Nginx {
    /// OTLP/gRPC listener.
    pub grpc_port: u16,
    /// OTLP/HTTP listener.
    pub http_port: u16,
    pub proc: Proc,
    dir: PathBuf,
}

impl Nginx {
    /// nginx balancing over `backends`, each `(grpc address, http address)` of one leakwatch,
    /// with the shipped config (two instances: `LW_0_*`, `LW_1_*`).
    pub fn start(backends: [(String, String); 2]) -> Nginx {
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let (grpc_port, http_port) = (free_port(), free_port());
        let dir = std::env::temp_dir().join(format!(
            "leakwatch-nginx-{}-{}",
            std::process::id(),
            N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("nginx dir");
        let [(g0, h0), (g1, h1)] = backends;
        let vars: BTreeMap<&str, String> = [
            ("LW_GRPC_LISTEN", format!("127.0.0.1:{grpc_port}")),
            ("LW_HTTP_LISTEN", format!("127.0.0.1:{http_port}")),
            ("LW_0_GRPC", g0),
            ("LW_0_HTTP", h0),
            ("LW_1_GRPC", g1),
            ("LW_1_HTTP", h1),
        ]
        .into();
        std::fs::write(dir.join("leakwatch.conf"), render(&shipped_config(), &vars))
            .expect("write leakwatch.conf");
        let d = dir.display();
        // Everything nginx writes stays in `dir`: pid, error log, temp paths.
        let main = format!(
            "pid {d}/nginx.pid;\nerror_log {d}/error.log warn;\nmaster_process off;\ndaemon off;\n\
             events {{ worker_connections 1024; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n  \
             fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n  \
             include {d}/leakwatch.conf;\n}}\n"
        );
        let conf = dir.join("nginx.conf");
        std::fs::write(&conf, main).expect("write nginx.conf");
        let test = Command::new(binary())
            .arg("-t")
            .arg("-p")
            .arg(&dir)
            .arg("-c")
            .arg(&conf)
            .arg("-e")
            .arg(dir.join("error.log"))
            .output()
            .expect("run nginx -t");
        assert!(
            test.status.success(),
            "nginx -t refused the shipped config: {}",
            String::from_utf8_lossy(&test.stderr)
        );
        let mut cmd = Command::new(binary());
        cmd.arg("-p")
            .arg(&dir)
            .arg("-c")
            .arg(&conf)
            .arg("-e")
            .arg(dir.join("error.log"));
        let mut proc = Proc::spawn("nginx", cmd);
        for port in [grpc_port, http_port] {
            wait_for_port(port, &mut proc, READY_TIMEOUT).unwrap_or_else(|e| panic!("{e}"));
        }
        Nginx {
            grpc_port,
            http_port,
            proc,
            dir,
        }
    }

    pub fn grpc_endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.grpc_port)
    }

    pub fn http_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.http_port)
    }

    /// nginx's error log so far (for failure messages).
    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        self.proc.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
