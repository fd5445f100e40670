//! The one outbound HTTP client builder: Alertmanager, webhooks, heap-dump endpoints and
//! `leakwatch analyze`'s Prometheus queries all go through a client made here, so TLS (rustls
//! with the ring provider, the platform's roots) and timeouts are set in one place.

use std::sync::Arc;
use std::time::Duration;

/// Errors building the client.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("building the HTTP client: {0}")]
    Build(#[from] reqwest::Error),
    #[error("TLS roots: {0}")]
    Tls(String),
}

/// An HTTP/1.1 + HTTP/2 client with a whole-request `timeout`, rustls for `https://`.
pub fn client(timeout: Duration) -> Result<reqwest::Client, ClientError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    use rustls_platform_verifier::BuilderVerifierExt;
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ClientError::Tls(e.to_string()))?
        .with_platform_verifier()
        .map_err(|e| ClientError::Tls(e.to_string()))?
        .with_no_client_auth();
    Ok(reqwest::Client::builder()
        .user_agent(concat!("leakwatch/", env!("CARGO_PKG_VERSION")))
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .tls_backend_preconfigured(tls)
        .build()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_builds_with_the_ring_provider() {
        assert!(client(Duration::from_secs(1)).is_ok());
    }
}
