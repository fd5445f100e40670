//! deploy/kubernetes/: the manifests pass the Kubernetes API schemas offline (PyPI
//! `kubernetes-validate`, strict: unknown fields fail) for an older and the newest Kubernetes
//! it knows; the ConfigMap's leakwatch configuration passes `leakwatch check-config`; and the
//! pieces agree with each other (ports, probe paths, mounts, the state directory, the memory
//! budget against the configured bounds), so that one cannot change without the other.

#[path = "common/tools.rs"]
mod tools;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_yaml::Value;
use tools::{leakwatch, require, root, run_ok, Scratch};

const BIN: &str = env!("CARGO_BIN_EXE_leakwatch");
/// An older Kubernetes still in wide use, and the newest the pinned validator knows.
const KUBERNETES_VERSIONS: &[&str] = &["1.31.0", "1.37.0"];
/// What the memory budget in deployment.yaml assumes per tracked series (README's 547 B of RSS,
/// the chart and counter histories included) and for the process itself.
const BYTES_PER_SERIES: u64 = 547;
const PROCESS_BYTES: u64 = 25 << 20;

fn dir() -> PathBuf {
    root().join("deploy/kubernetes")
}

fn manifests() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir())
        .expect("read deploy/kubernetes")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

fn load(name: &str) -> Value {
    let text = std::fs::read_to_string(dir().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn validator(test: &str) -> Option<PathBuf> {
    let found = std::env::var_os("LEAKWATCH_TEST_KUBERNETES_VALIDATE")
        .map(PathBuf::from)
        .or_else(|| Some(root().join(".test-env/venv/bin/kubernetes-validate")))
        .filter(|p| p.is_file());
    require(
        test,
        "kubernetes-validate",
        found,
        "run scripts/setup-test-env.sh (installs scripts/requirements-test.txt into .test-env/venv)",
    )
}

fn validate(bin: &Path, version: &str, files: &[PathBuf]) -> std::process::Output {
    Command::new(bin)
        .args(["--strict", "--kubernetes-version", version])
        .args(files)
        .output()
        .expect("run kubernetes-validate")
}

#[test]
fn manifests_pass_the_kubernetes_schemas_strictly() {
    let Some(bin) = validator("manifests_pass_the_kubernetes_schemas_strictly") else {
        return;
    };
    let files = manifests();
    assert!(files.len() >= 6, "{files:?}");
    for version in KUBERNETES_VERSIONS {
        let out = validate(&bin, version, &files);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "Kubernetes {version}:\n{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        for f in &files {
            let name = f.file_name().and_then(|n| n.to_str()).expect("name");
            assert!(
                text.lines()
                    .any(|l| l.contains(name) && l.contains("passed")),
                "{name} not reported as passed for {version}:\n{text}"
            );
        }
    }

    // The strict mode is what catches a misspelt field: a manifest with one must fail.
    let scratch = Scratch::new("kubernetes-validate");
    let text = std::fs::read_to_string(dir().join("deployment.yaml")).expect("read");
    let bad = text.replacen("livenessProbe:", "livenesProbe:", 1);
    assert_ne!(bad, text);
    let file = scratch.0.join("deployment.yaml");
    std::fs::write(&file, bad).expect("write");
    let out = validate(&bin, KUBERNETES_VERSIONS[1], &[file]);
    assert!(
        !out.status.success(),
        "a misspelt field passed: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

fn get<'a>(v: &'a Value, path: &str) -> &'a Value {
    let mut node = v;
    for key in path.split('.') {
        node = match key.parse::<usize>() {
            Ok(i) => node.get(i),
            Err(_) => node.get(key),
        }
        .unwrap_or_else(|| panic!("no {path} (at {key}) in {v:?}"));
    }
    node
}

fn str_at<'a>(v: &'a Value, path: &str) -> &'a str {
    get(v, path)
        .as_str()
        .unwrap_or_else(|| panic!("{path} is not a string"))
}

fn u64_at(v: &Value, path: &str) -> u64 {
    get(v, path)
        .as_u64()
        .unwrap_or_else(|| panic!("{path} is not a number"))
}

/// A Kubernetes memory quantity in bytes (the binary suffixes these manifests use).
fn quantity(q: &str) -> u64 {
    for (suffix, mult) in [("Ki", 1u64 << 10), ("Mi", 1 << 20), ("Gi", 1 << 30)] {
        if let Some(n) = q.strip_suffix(suffix) {
            return n.parse::<u64>().expect("quantity") * mult;
        }
    }
    q.parse().expect("quantity")
}

fn port_of(addr: &str) -> u64 {
    addr.rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port")
}

#[test]
fn configmap_config_passes_check_config_and_matches_the_deployment() {
    let configmap = load("configmap.yaml");
    let deployment = load("deployment.yaml");
    let config_text = get(&configmap, "data")
        .get("leakwatch.yaml")
        .and_then(Value::as_str)
        .expect("data.\"leakwatch.yaml\" in configmap.yaml");
    let pod = get(&deployment, "spec.template.spec");
    let container = get(pod, "containers.0");
    let mounts = get(container, "volumeMounts")
        .as_sequence()
        .expect("volumeMounts");
    let mount = |volume: &str| -> &Value {
        mounts
            .iter()
            .find(|m| str_at(m, "name") == volume)
            .unwrap_or_else(|| panic!("no volumeMount {volume}"))
    };
    let volume = |name: &str| -> &Value {
        get(pod, "volumes")
            .as_sequence()
            .expect("volumes")
            .iter()
            .find(|v| str_at(v, "name") == name)
            .unwrap_or_else(|| panic!("no volume {name}"))
    };

    // The ConfigMap is what the container reads.
    let args: Vec<&str> = get(container, "args")
        .as_sequence()
        .expect("args")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let config_path = args
        .windows(2)
        .find(|w| w[0] == "--config")
        .map(|w| w[1])
        .expect("--config in args");
    let config_mount = mount("config");
    assert_eq!(str_at(config_mount, "mountPath"), config_path);
    assert_eq!(str_at(config_mount, "subPath"), "leakwatch.yaml");
    assert_eq!(
        str_at(volume("config"), "configMap.name"),
        str_at(&configmap, "metadata.name")
    );

    // check-config on the ConfigMap's text; the admin token file is the Secret's mount, here
    // a temporary file with a token.
    let token_dir = str_at(mount("admin-token"), "mountPath");
    let token_path = format!("{token_dir}/admin-token");
    assert!(config_text.contains(&token_path), "{config_text}");
    let scratch = Scratch::new("kubernetes-config");
    let token = scratch.0.join("admin-token");
    std::fs::write(&token, "0123456789abcdef\n").expect("write token");
    let file = scratch.0.join("leakwatch.yaml");
    std::fs::write(
        &file,
        config_text.replace(&token_path, token.to_str().expect("utf-8")),
    )
    .expect("write config");
    let effective = run_ok(
        leakwatch(Path::new(BIN))
            .arg("check-config")
            .arg("--config")
            .arg(&file),
    );
    let c: Value = serde_yaml::from_str(&effective).expect("check-config prints YAML");

    // Listeners: on the pod's address, on the container's ports, which the Services target.
    let ports: Vec<(&str, u64)> = get(container, "ports")
        .as_sequence()
        .expect("ports")
        .iter()
        .map(|p| (str_at(p, "name"), u64_at(p, "containerPort")))
        .collect();
    let port_named = |name: &str| {
        ports
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, p)| *p)
            .unwrap_or_else(|| panic!("no container port {name}"))
    };
    for (key, name) in [
        ("receivers.grpc.listen", "otlp-grpc"),
        ("receivers.http.listen", "otlp-http"),
        ("admin.listen", "admin"),
    ] {
        let addr = str_at(&c, key);
        assert!(addr.starts_with("0.0.0.0:"), "{key}: {addr}");
        assert_eq!(port_of(addr), port_named(name), "{key}");
    }
    let pod_labels = get(&deployment, "spec.template.metadata.labels");
    assert_eq!(get(&deployment, "spec.selector.matchLabels"), pod_labels);
    for (file, names) in [
        ("service.yaml", &["otlp-grpc", "otlp-http"][..]),
        ("service-admin.yaml", &["admin"][..]),
        ("service-headless.yaml", &["otlp-grpc"][..]),
    ] {
        let svc = load(file);
        assert_eq!(get(&svc, "spec.selector"), pod_labels, "{file}");
        let targets: Vec<&str> = get(&svc, "spec.ports")
            .as_sequence()
            .expect("ports")
            .iter()
            .map(|p| str_at(p, "targetPort"))
            .collect();
        assert_eq!(targets, names, "{file}");
        for p in get(&svc, "spec.ports").as_sequence().expect("ports") {
            assert_eq!(
                u64_at(p, "port"),
                port_named(str_at(p, "targetPort")),
                "{file}"
            );
        }
    }
    assert_eq!(
        get(
            &load("poddisruptionbudget.yaml"),
            "spec.selector.matchLabels"
        ),
        pod_labels
    );

    // Probes: liveness on /healthz, readiness on /readyz, both on the admin port.
    assert_eq!(str_at(container, "livenessProbe.httpGet.path"), "/healthz");
    assert_eq!(str_at(container, "readinessProbe.httpGet.path"), "/readyz");
    assert_eq!(str_at(container, "livenessProbe.httpGet.port"), "admin");
    assert_eq!(str_at(container, "readinessProbe.httpGet.port"), "admin");

    // The state (checkpoint, on-disk queue) lives on the state volume, the one writable place.
    let state = str_at(mount("state"), "mountPath");
    for key in ["checkpoint.path", "downstream.queue.persistent.dir"] {
        assert!(str_at(&c, key).starts_with(&format!("{state}/")), "{key}");
    }
    assert_eq!(
        get(container, "securityContext.readOnlyRootFilesystem").as_bool(),
        Some(true)
    );
    assert_eq!(
        get(pod, "securityContext.runAsNonRoot").as_bool(),
        Some(true)
    );
    let disk = quantity(str_at(volume("state"), "emptyDir.sizeLimit"));
    assert!(
        disk > u64_at(&c, "downstream.queue.persistent.max_bytes"),
        "the state volume must hold the on-disk queue"
    );

    // Memory: the request covers the configured bounds at the measured per-series cost, and
    // leakwatch's own limiter refuses requests before the container's limit is reached.
    let request = quantity(str_at(container, "resources.requests.memory"));
    let limit = quantity(str_at(container, "resources.limits.memory"));
    let budget = u64_at(&c, "series.max_series") * BYTES_PER_SERIES
        + u64_at(&c, "downstream.queue.max_bytes")
        + PROCESS_BYTES;
    assert!(
        request >= budget,
        "memory request {request} B < {budget} B (series × {BYTES_PER_SERIES} B + queue + process)"
    );
    let limiter = u64_at(&c, "receivers.memory_limiter.limit_bytes");
    assert!(
        budget < limiter && limiter < limit,
        "limiter {limiter} B must sit between the budget {budget} B and the limit {limit} B"
    );
}
