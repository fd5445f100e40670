//! TLS (rustls) on both receivers and on the exporter, and mutual TLS.
//! Certificates are made per run with rcgen.

mod common;

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use common::*;
use leakwatch::config::{ClientTlsConfig, ServerTlsConfig};
use leakwatch::otlp::proto::otlp::collector::logs::v1::ExportLogsServiceRequest;
use leakwatch::otlp::proto::paths;
use prost::Message;
use rcgen::{
    BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

struct Pki {
    dir: PathBuf,
    ca_pem: String,
    server_cert: PathBuf,
    server_key: PathBuf,
    client_cert_pem: String,
    client_key_pem: String,
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn pki() -> Pki {
    let dir =
        std::env::temp_dir().join(format!("leakwatch-tls-{}-{}", std::process::id(), now_ns()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_key = KeyPair::generate().expect("key");
    let ca_cert = ca_params.self_signed(&ca_key).expect("ca");
    let issuer = Issuer::new(ca_params, ca_key);

    let mut server = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
        .expect("params");
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server_key = KeyPair::generate().expect("key");
    let server_cert = server.signed_by(&server_key, &issuer).expect("server cert");

    let mut client = CertificateParams::new(vec!["client".to_owned()]).expect("params");
    client.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let client_key = KeyPair::generate().expect("key");
    let client_cert = client.signed_by(&client_key, &issuer).expect("client cert");

    let write = |name: &str, text: String| {
        let p = dir.join(name);
        std::fs::write(&p, text).expect("write pem");
        p
    };
    write("ca.pem", ca_cert.pem());
    Pki {
        ca_pem: ca_cert.pem(),
        server_cert: write("server.pem", server_cert.pem()),
        server_key: write("server.key", server_key.serialize_pem()),
        client_cert_pem: client_cert.pem(),
        client_key_pem: client_key.serialize_pem(),
        dir,
    }
}

fn logs_body() -> Bytes {
    Bytes::from(
        ExportLogsServiceRequest {
            resource_logs: vec![],
        }
        .encode_to_vec(),
    )
}

async fn grpc_tls(port: u16, pki: &Pki, with_client_cert: bool) -> Result<Bytes, String> {
    let mut tls = tonic::transport::ClientTlsConfig::new()
        .ca_certificate(tonic::transport::Certificate::from_pem(&pki.ca_pem))
        .domain_name("localhost");
    if with_client_cert {
        tls = tls.identity(tonic::transport::Identity::from_pem(
            &pki.client_cert_pem,
            &pki.client_key_pem,
        ));
    }
    let channel = tonic::transport::Endpoint::from_shared(format!("https://127.0.0.1:{port}"))
        .map_err(|e| e.to_string())?
        .tls_config(tls)
        .map_err(|e| e.to_string())?
        .connect()
        .await
        .map_err(|e| format!("connect: {e:?}"))?;
    let mut client = tonic::client::Grpc::new(channel);
    client.ready().await.map_err(|e| e.to_string())?;
    client
        .unary(
            tonic::Request::new(logs_body()),
            http::uri::PathAndQuery::from_static(paths::LOGS),
            Raw,
        )
        .await
        .map(|r| r.into_inner())
        .map_err(|s| format!("{s:?}"))
}

async fn https_post(port: u16, pki: &Pki, with_client_cert: bool) -> Result<u16, String> {
    use http_body_util::{BodyExt, Full};
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut pki.ca_pem.as_bytes()) {
        roots
            .add(cert.map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots);
    let config = if with_client_cert {
        let certs = rustls_pemfile::certs(&mut pki.client_cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| e.to_string())?;
        let key = rustls_pemfile::private_key(&mut pki.client_key_pem.as_bytes())
            .map_err(|e| e.to_string())?
            .ok_or("no key")?;
        builder
            .with_client_auth_cert(certs, key)
            .map_err(|e| e.to_string())?
    } else {
        builder.with_no_client_auth()
    };
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| e.to_string())?;
    let name = rustls::pki_types::ServerName::try_from("localhost").map_err(|e| e.to_string())?;
    let tls = connector
        .connect(name, tcp)
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
            .await
            .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let req = http::Request::post("/v1/logs")
        .header("host", "localhost")
        .header("content-type", "application/x-protobuf")
        .body(Full::new(logs_body()))
        .map_err(|e| e.to_string())?;
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| format!("request: {e}"))?;
    let status = resp.status().as_u16();
    let _ = resp.into_body().collect().await;
    Ok(status)
}

fn tls_config(pki: &Pki, mutual: bool) -> leakwatch::config::Config {
    let mut config = test_config(None);
    let server = ServerTlsConfig {
        cert_file: pki.server_cert.clone(),
        key_file: pki.server_key.clone(),
        client_ca_file: mutual.then(|| pki.dir.join("ca.pem")),
    };
    config.receivers.grpc.tls = Some(server.clone());
    config.receivers.http.tls = Some(server);
    config
}

#[tokio::test]
async fn receivers_serve_tls() {
    let pki = pki();
    let lw = start(tls_config(&pki, false)).await;
    let grpc = lw.addrs.grpc.expect("grpc").port();
    let http = lw.addrs.http.expect("http").port();
    grpc_tls(grpc, &pki, false).await.expect("gRPC over TLS");
    assert_eq!(https_post(http, &pki, false).await.expect("HTTPS"), 200);
    // Plaintext is not served on a TLS port.
    assert!(
        grpc_raw(&lw.grpc_endpoint(), paths::LOGS, logs_body(), None, None)
            .await
            .is_err()
    );
    lw.stop().await;
}

#[tokio::test]
async fn mutual_tls_requires_a_client_certificate() {
    let pki = pki();
    let lw = start(tls_config(&pki, true)).await;
    let grpc = lw.addrs.grpc.expect("grpc").port();
    let http = lw.addrs.http.expect("http").port();
    grpc_tls(grpc, &pki, true)
        .await
        .expect("gRPC with a client certificate");
    assert!(
        grpc_tls(grpc, &pki, false).await.is_err(),
        "gRPC without a client certificate must fail"
    );
    assert_eq!(
        https_post(http, &pki, true)
            .await
            .expect("HTTPS with a client certificate"),
        200
    );
    assert!(
        https_post(http, &pki, false).await.is_err(),
        "HTTPS without a client certificate must fail"
    );
    lw.stop().await;
}

#[tokio::test]
async fn exporter_speaks_tls_to_the_downstream() {
    let pki = pki();
    let mut downstream = Downstream::start_tls(&pki.server_cert, &pki.server_key).await;
    let mut config = test_config(Some(format!(
        "https://127.0.0.1:{}",
        downstream.addr.port()
    )));
    config.downstream.tls = Some(ClientTlsConfig {
        ca_file: Some(pki.dir.join("ca.pem")),
        cert_file: None,
        key_file: None,
        server_name: Some("localhost".to_owned()),
    });
    let lw = start(config).await;
    let body = Bytes::from(
        ExportLogsServiceRequest {
            resource_logs: vec![Default::default()],
        }
        .encode_to_vec(),
    );
    grpc_raw(&lw.grpc_endpoint(), paths::LOGS, body.clone(), None, None)
        .await
        .expect("accepted");
    assert_eq!(downstream.next_on(paths::LOGS).await.body, body);
    lw.stop().await;
    downstream.stop().await;
}
