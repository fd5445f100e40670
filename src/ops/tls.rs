//! The one TLS loader: reads the PEM files the configuration names, checks
//! they hold what they should, and builds what each listener or client needs
//! (a rustls acceptor for the HTTP and admin listeners, tonic's TLS configs
//! for the gRPC receiver and the downstream channel), all with one error type.

use std::path::Path;
use std::sync::Arc;

use tokio_rustls::TlsAcceptor;

use crate::config::{ClientTlsConfig, ServerTlsConfig};

/// Errors loading TLS material.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: no PEM {what} found")]
    Empty { path: String, what: &'static str },
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("client CA: {0}")]
    Verifier(String),
}

fn read_pem(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.display().to_string(),
        source,
    })
}

/// A PEM file that holds at least one certificate.
fn certificate_pem(path: &Path) -> Result<Vec<u8>, TlsError> {
    let pem = read_pem(path)?;
    let found = rustls_pemfile::certs(&mut &pem[..]).any(|c| c.is_ok());
    match found {
        true => Ok(pem),
        false => Err(TlsError::Empty {
            path: path.display().to_string(),
            what: "certificate",
        }),
    }
}

/// A PEM file that holds a private key.
fn key_pem(path: &Path) -> Result<Vec<u8>, TlsError> {
    let pem = read_pem(path)?;
    let found = matches!(rustls_pemfile::private_key(&mut &pem[..]), Ok(Some(_)));
    match found {
        true => Ok(pem),
        _ => Err(TlsError::Empty {
            path: path.display().to_string(),
            what: "private key",
        }),
    }
}

/// TLS for the OTLP/gRPC receiver (tonic), optionally requiring client
/// certificates signed by `client_ca_file`.
pub fn grpc_server_tls(
    cfg: &ServerTlsConfig,
) -> Result<tonic::transport::ServerTlsConfig, TlsError> {
    let mut tls =
        tonic::transport::ServerTlsConfig::new().identity(tonic::transport::Identity::from_pem(
            certificate_pem(&cfg.cert_file)?,
            key_pem(&cfg.key_file)?,
        ));
    if let Some(ca) = &cfg.client_ca_file {
        tls = tls.client_ca_root(tonic::transport::Certificate::from_pem(certificate_pem(
            ca,
        )?));
    }
    Ok(tls)
}

/// TLS for the downstream gRPC channel (tonic): the CA to trust, an optional
/// client certificate, the name to verify.
pub fn grpc_client_tls(
    cfg: &ClientTlsConfig,
) -> Result<tonic::transport::ClientTlsConfig, TlsError> {
    let mut tls = tonic::transport::ClientTlsConfig::new();
    if let Some(ca) = &cfg.ca_file {
        tls = tls.ca_certificate(tonic::transport::Certificate::from_pem(certificate_pem(
            ca,
        )?));
    }
    if let (Some(cert), Some(key)) = (&cfg.cert_file, &cfg.key_file) {
        tls = tls.identity(tonic::transport::Identity::from_pem(
            certificate_pem(cert)?,
            key_pem(key)?,
        ));
    }
    if let Some(name) = &cfg.server_name {
        tls = tls.domain_name(name.clone());
    }
    Ok(tls)
}

/// Builds a rustls acceptor from PEM files (optionally requiring client
/// certificates signed by `client_ca_file`).
pub fn tls_acceptor(cfg: &ServerTlsConfig) -> Result<TlsAcceptor, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cert_pem = read_pem(&cfg.cert_file)?;
    let certs: Vec<_> = rustls_pemfile::certs(&mut &cert_pem[..])
        .filter_map(Result::ok)
        .collect();
    if certs.is_empty() {
        return Err(TlsError::Empty {
            path: cfg.cert_file.display().to_string(),
            what: "certificate",
        });
    }
    let key_pem = read_pem(&cfg.key_file)?;
    let key = rustls_pemfile::private_key(&mut &key_pem[..])
        .ok()
        .flatten()
        .ok_or_else(|| TlsError::Empty {
            path: cfg.key_file.display().to_string(),
            what: "private key",
        })?;
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()?;
    let builder = match &cfg.client_ca_file {
        Some(ca) => {
            let ca_pem = read_pem(ca)?;
            let mut roots = rustls::RootCertStore::empty();
            for cert in rustls_pemfile::certs(&mut &ca_pem[..]).filter_map(Result::ok) {
                roots.add(cert)?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .map_err(|e| TlsError::Verifier(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}
