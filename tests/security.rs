//! Failing closed (issue #18): authentication before any decompression,
//! the admin listener's token, empty tokens refused, and slow clients
//! (slowloris) cut off while a normal client is still served.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use leakwatch::config::AuthConfig;
use leakwatch::otlp::proto::paths;
use prost::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tonic::codec::CompressionEncoding;
use tonic::Code;

fn token(t: &str) -> Option<AuthConfig> {
    Some(AuthConfig {
        bearer_token: Some(t.into()),
        bearer_token_file: None,
    })
}

fn good_request() -> Bytes {
    Bytes::from(
        request(
            resource("sec", "pod-1"),
            vec![gauge_metric(
                "process.memory.usage",
                "By",
                vec![number_point(now_ns(), 1e6, vec![])],
            )],
        )
        .encode_to_vec(),
    )
}

#[tokio::test]
async fn grpc_checks_the_token_before_decompressing() {
    let mut config = test_config(None);
    config.receivers.auth = token("s3cret");
    config.receivers.grpc.max_message_bytes = 1024;
    let lw = start(config).await;
    // 64 KiB once decompressed: above the message limit. Without a token it must be
    // refused as unauthenticated, not inflated (RESOURCE_EXHAUSTED would mean it was).
    let big = Bytes::from(vec![0u8; 64 * 1024]);
    let err = grpc_raw(
        &lw.grpc_endpoint(),
        paths::METRICS,
        big.clone(),
        Some(CompressionEncoding::Gzip),
        None,
    )
    .await
    .expect_err("no token");
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");
    let err = grpc_raw(
        &lw.grpc_endpoint(),
        paths::METRICS,
        big,
        Some(CompressionEncoding::Gzip),
        Some("wrong"),
    )
    .await
    .expect_err("bad token");
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");
    // With the token, the same path works (and a good request is accepted).
    grpc_raw(
        &lw.grpc_endpoint(),
        paths::METRICS,
        good_request(),
        Some(CompressionEncoding::Gzip),
        Some("s3cret"),
    )
    .await
    .expect("accepted with the token");
    lw.stop().await;
}

#[tokio::test]
async fn http_checks_the_token_before_reading_the_body() {
    let mut config = test_config(None);
    config.receivers.auth = token("s3cret");
    let lw = start(config).await;
    let (status, headers, _) = http_request(
        "POST",
        &lw.http_url("/v1/metrics"),
        &[
            ("content-type", "application/x-protobuf"),
            ("content-encoding", "gzip"),
        ],
        b"not gzip at all".to_vec(),
    )
    .await;
    assert_eq!(status, 401);
    assert_eq!(
        headers.get("www-authenticate").map(|v| v.as_bytes()),
        Some(&b"Bearer"[..])
    );
    lw.stop().await;
}

#[tokio::test]
async fn the_admin_api_needs_its_token_and_probes_stay_open() {
    let mut config = test_config(None);
    config.admin.auth = token("adm1n");
    let lw = start(config).await;
    for path in ["/healthz", "/readyz", "/"] {
        let (status, _, _) = http_request("GET", &lw.admin_url(path), &[], vec![]).await;
        assert_eq!(status, 200, "{path} stays open");
    }
    for path in [
        "/metrics",
        "/api/v1/leaks",
        "/api/v1/resources",
        "/api/v1/series",
    ] {
        let (status, _, _) = http_request("GET", &lw.admin_url(path), &[], vec![]).await;
        assert_eq!(status, 401, "{path} without a token");
        let (status, _, _) = http_request(
            "GET",
            &lw.admin_url(path),
            &[("authorization", "Bearer wrong")],
            vec![],
        )
        .await;
        assert_eq!(status, 401, "{path} with a wrong token");
        let (status, _, body) = http_request(
            "GET",
            &lw.admin_url(path),
            &[("authorization", "Bearer adm1n")],
            vec![],
        )
        .await;
        assert_eq!(status, 200, "{path} with the token");
        assert!(!body.is_empty());
    }
    lw.stop().await;
}

#[tokio::test]
async fn an_empty_token_in_a_config_built_in_code_refuses_to_start() {
    for (receivers, admin) in [(token(""), None), (None, token("  \n"))] {
        let mut config = test_config(None);
        config.receivers.auth = receivers;
        config.admin.auth = admin;
        let bound = leakwatch::server::Bound::bind(config).await.expect("bind");
        let err = bound
            .run(tokio_util::sync::CancellationToken::new())
            .await
            .expect_err("an empty token must not mean no authentication");
        assert!(err.to_string().contains("empty"), "{err}");
    }
}

/// Open file descriptors of this process (client and server sockets both live here).
fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0)
}

/// How a slow client misbehaves.
#[derive(Clone, Copy, Debug)]
enum Slow {
    /// Connects and sends nothing.
    Silent,
    /// Sends a request line and trickles header bytes.
    Headers,
    /// Sends complete headers announcing a body, then trickles the body.
    Body,
}

/// Runs one slow client until the server ends the connection; returns true
/// when it did within `limit`.
async fn slow_client(addr: std::net::SocketAddr, how: Slow, limit: Duration) -> bool {
    let Ok(mut s) = TcpStream::connect(addr).await else {
        return false;
    };
    let opening: &[u8] = match how {
        Slow::Silent => b"",
        Slow::Headers => b"POST /v1/metrics HTTP/1.1\r\nhost: x\r\nx-slow: ",
        Slow::Body => b"POST /v1/metrics HTTP/1.1\r\nhost: x\r\ncontent-type: application/x-protobuf\r\ncontent-length: 100000\r\n\r\n",
    };
    if s.write_all(opening).await.is_err() {
        return true;
    }
    let deadline = tokio::time::Instant::now() + limit;
    let mut buf = [0u8; 1024];
    loop {
        tokio::select! {
            r = s.read(&mut buf) => {
                // EOF, a reset, or the server's answer (408): the server ended it.
                let _ = r;
                return true;
            }
            _ = tokio::time::sleep(Duration::from_millis(200)) => {
                if !matches!(how, Slow::Silent) && s.write_all(b"a").await.is_err() {
                    return true;
                }
            }
            _ = tokio::time::sleep_until(deadline) => return false,
        }
    }
}

#[tokio::test]
async fn slow_clients_are_cut_off_and_a_normal_client_is_still_served() {
    const PER_KIND: usize = 60;
    let (mut downstream, mut config) = {
        let d = Downstream::start().await;
        let c = test_config(Some(d.endpoint()));
        (d, c)
    };
    let timeout = Duration::from_secs(1);
    config.receivers.http.read_header_timeout = timeout;
    config.receivers.http.read_body_timeout = timeout;
    config.receivers.grpc.read_timeout = timeout;
    config.admin.read_header_timeout = timeout;
    config.admin.read_body_timeout = timeout;
    let lw = start(config).await;
    let baseline = open_fds();
    let http = lw.addrs.http.expect("http");
    let grpc = lw.addrs.grpc.expect("grpc");
    let admin = lw.addrs.admin.expect("admin");
    // Far longer than the 1 s timeouts: a connection still open then was never cut off.
    let limit = Duration::from_secs(20);
    let mut slow = tokio::task::JoinSet::new();
    for i in 0..PER_KIND {
        for how in [Slow::Silent, Slow::Headers, Slow::Body] {
            slow.spawn(slow_client(http, how, limit));
        }
        if i % 4 == 0 {
            slow.spawn(slow_client(grpc, Slow::Silent, limit));
            slow.spawn(slow_client(admin, Slow::Headers, limit));
        }
    }
    let total = slow.len();
    // While they hold their connections, a normal client is served on both protocols.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let during = open_fds();
    let first = good_request();
    let (status, _, _) = http_request(
        "POST",
        &lw.http_url("/v1/metrics"),
        &[("content-type", "application/x-protobuf")],
        first.to_vec(),
    )
    .await;
    assert_eq!(status, 200, "normal HTTP client served during the attack");
    let second = good_request();
    grpc_raw(
        &lw.grpc_endpoint(),
        paths::METRICS,
        second.clone(),
        None,
        None,
    )
    .await
    .expect("normal gRPC client served during the attack");
    let mut forwarded = vec![downstream.next().await.body, downstream.next().await.body];
    forwarded.sort();
    let mut sent = vec![first, second];
    sent.sort();
    assert_eq!(forwarded, sent, "both normal requests forwarded");

    let mut cut_off = 0;
    while let Some(done) = slow.join_next().await {
        cut_off += usize::from(done.expect("join"));
    }
    assert_eq!(
        cut_off, total,
        "every slow connection was ended by the server"
    );
    // Each slow connection held 2 descriptors here (client and server side) while
    // open; once they were cut off, what leakwatch holds is back near where it was.
    assert!(
        during >= baseline + total,
        "{during} fds during, {baseline} before"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    let after = open_fds();
    assert!(
        after <= baseline + 16,
        "{after} fds after the slow clients were cut off, {baseline} before"
    );
    let (status, _, text) = http_request("GET", &lw.admin_url("/metrics"), &[], vec![]).await;
    assert_eq!(status, 200);
    let text = String::from_utf8_lossy(&text);
    let timeouts: u64 = text
        .lines()
        .filter(|l| {
            l.starts_with("leakwatch_receiver_refused_requests_total{")
                && l.contains("reason=\"timeout\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    assert_eq!(
        timeouts, PER_KIND as u64,
        "each slow body is counted as a timeout"
    );
    lw.stop().await;
}
