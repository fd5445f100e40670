//! The binary's command line: bad configuration exits 64 naming every
//! problem; `check-config` prints the effective configuration with the
//! precedence defaults < file < environment < flags.

use std::process::Command;

fn leakwatch() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_leakwatch"));
    for (k, _) in std::env::vars() {
        if k.starts_with("LEAKWATCH_") {
            cmd.env_remove(k);
        }
    }
    cmd
}

#[test]
fn bad_configuration_exits_64_and_names_every_problem() {
    let dir = std::env::temp_dir().join(format!("leakwatch-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("bad.yaml");
    std::fs::write(&file, "receivers:\n  grpcc: {}\nbogus: 1\n").expect("write");
    let out = leakwatch()
        .arg("--config")
        .arg(&file)
        .output()
        .expect("run");
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(out.status.code(), Some(64), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("receivers.grpcc: unknown key") && err.contains("bogus: unknown key"),
        "{err}"
    );

    let out = leakwatch()
        .args(["--max-series", "0", "--downstream", "ftp://x"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("series.max_series") && err.contains("downstream.endpoint"),
        "{err}"
    );
}

#[test]
fn check_config_applies_env_then_flags() {
    let out = leakwatch()
        .args(["check-config", "--admin-listen", "127.0.0.1:7777"])
        .env("LEAKWATCH_ADMIN_LISTEN", "127.0.0.1:6666")
        .env("LEAKWATCH_HTTP_LISTEN", "127.0.0.1:5555")
        .output()
        .expect("run");
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("listen: 127.0.0.1:7777"),
        "flag over env: {text}"
    );
    assert!(
        text.contains("listen: 127.0.0.1:5555"),
        "env over default: {text}"
    );
    assert!(text.contains("listen: 127.0.0.1:4317"), "default: {text}");
}

#[test]
fn check_config_redacts_the_bearer_tokens() {
    let dir = std::env::temp_dir().join(format!("leakwatch-cli-secret-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("auth.yaml");
    std::fs::write(
        &file,
        "receivers:\n  auth:\n    bearer_token: rcv-s3cret\nadmin:\n  auth:\n    bearer_token: adm-s3cret\n",
    )
    .expect("write");
    let out = leakwatch()
        .args(["check-config", "--config"])
        .arg(&file)
        .output()
        .expect("run");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains("s3cret"), "a token was printed: {text}");
    assert_eq!(
        text.matches("bearer_token: <redacted>").count(),
        2,
        "{text}"
    );
}

#[test]
fn empty_tokens_and_tls_mistakes_exit_64_with_the_key() {
    let dir = std::env::temp_dir().join(format!("leakwatch-cli-empty-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let token = dir.join("token");
    std::fs::write(&token, " \n").expect("write");
    let file = dir.join("bad.yaml");
    std::fs::write(
        &file,
        format!(
            "receivers:\n  auth:\n    bearer_token_file: {}\nadmin:\n  auth:\n    bearer_token: \"\"\ndownstream:\n  endpoint: https://collector:4317\n",
            token.display()
        ),
    )
    .expect("write");
    let out = leakwatch()
        .arg("--config")
        .arg(&file)
        .output()
        .expect("run");
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(out.status.code(), Some(64), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("receivers.auth.bearer_token_file")
            && err.contains("admin.auth.bearer_token")
            && err.contains("downstream.endpoint: https:// needs downstream.tls"),
        "{err}"
    );
}
