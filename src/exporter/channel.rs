//! The gRPC channel to the downstream collector: endpoint, connect timeout,
//! TLS (through the one loader, [`crate::ops::tls`]); connected lazily.

use std::time::Duration;

use tonic::transport::{Channel, Endpoint};

use super::ExporterError;
use crate::config::DownstreamConfig;

pub(super) fn build_channel(
    cfg: &DownstreamConfig,
    endpoint: &str,
) -> Result<Channel, ExporterError> {
    let mut ep = Endpoint::from_shared(endpoint.to_owned())
        .map_err(|source| ExporterError::Endpoint {
            endpoint: endpoint.to_owned(),
            source,
        })?
        .connect_timeout(Duration::from_secs(5))
        .tcp_nodelay(true);
    if let Some(tls) = &cfg.tls {
        let tls_cfg = crate::ops::tls::grpc_client_tls(tls)?;
        ep = ep
            .tls_config(tls_cfg)
            .map_err(|source| ExporterError::Endpoint {
                endpoint: endpoint.to_owned(),
                source,
            })?;
    }
    Ok(ep.connect_lazy())
}
