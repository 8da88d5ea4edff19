//! Where the coordinator's list of agents comes from: `--peers` (fixed) or
//! `--peers-from-kubernetes NAMESPACE/SERVICE` (the agents' headless
//! Service, polled).

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use sonde_k8s::ServiceEndpoints;
use sonde_query::distributed::{Peer, PeerSource, StaticPeers};
use url::Url;

use crate::cli::CoordinatorArgs;

/// Name of the Service port the agents' worker endpoint is published on.
pub const WORKER_PORT_NAME: &str = "worker";

/// How often the Service's endpoints are listed again.
const KUBERNETES_REFRESH: Duration = Duration::from_secs(5);

/// The agents, as the flags say. Starts the polling of Kubernetes.
pub async fn from_args(args: &CoordinatorArgs) -> anyhow::Result<Box<dyn PeerSource>> {
    if let Some(service) = &args.peers_from_kubernetes {
        let (namespace, name) = service
            .split_once('/')
            .filter(|(ns, name)| !ns.is_empty() && !name.is_empty() && !name.contains('/'))
            .with_context(|| {
                format!("--peers-from-kubernetes {service}: expected NAMESPACE/SERVICE")
            })?;
        let endpoints = match &args.kubernetes_api {
            Some(url) => {
                let token =
                    crate::agent::kubernetes_token(args.kubernetes_token_file.as_deref())?;
                ServiceEndpoints::connect(url, token, None, namespace, name, WORKER_PORT_NAME)?
            }
            None => ServiceEndpoints::from_environment(namespace, name, WORKER_PORT_NAME)?
                .context("--peers-from-kubernetes needs to run in a Kubernetes pod (or --kubernetes-api)")?,
        };
        let endpoints = Arc::new(endpoints);
        // A first list before serving, so the first queries see the nodes.
        if let Err(err) = endpoints.refresh().await {
            tracing::warn!(%err, "listing the agents' endpoints failed; retrying");
        }
        endpoints.spawn(KUBERNETES_REFRESH);
        let scheme = if args.worker_tls.worker_certificate.is_some() {
            "https"
        } else {
            "http"
        };
        return Ok(Box::new(KubernetesPeers { endpoints, scheme }));
    }
    let peers = args
        .peers
        .iter()
        .map(|url| parse_peer(url))
        .collect::<anyhow::Result<Vec<_>>>()?;
    if peers.is_empty() {
        bail!("--peers lists no agent");
    }
    Ok(Box::new(StaticPeers(peers)))
}

/// A worker URL: `http://host:port` or `https://host:port`.
fn parse_peer(text: &str) -> anyhow::Result<Peer> {
    let url = Url::parse(text.trim()).with_context(|| format!("--peers: `{text}` is not a URL"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        bail!("--peers: `{text}` must be http://host:port or https://host:port");
    }
    Ok(Peer { url, name: None })
}

/// The ready endpoints of the agents' Service.
#[derive(Debug)]
struct KubernetesPeers {
    endpoints: Arc<ServiceEndpoints>,
    scheme: &'static str,
}

impl PeerSource for KubernetesPeers {
    fn peers(&self) -> Result<Vec<Peer>, String> {
        self.endpoints
            .current()?
            .into_iter()
            .map(|endpoint| {
                let host = if endpoint.address.contains(':') {
                    format!("[{}]", endpoint.address)
                } else {
                    endpoint.address.clone()
                };
                let url = format!("{}://{host}:{}", self.scheme, endpoint.port);
                Url::parse(&url)
                    .map(|url| Peer {
                        url,
                        name: endpoint.node,
                    })
                    .map_err(|err| format!("bad endpoint {url}: {err}"))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_are_worker_urls() {
        assert_eq!(
            parse_peer("http://127.0.0.1:9702").unwrap().url.as_str(),
            "http://127.0.0.1:9702/"
        );
        assert!(parse_peer("https://agent-1.sonde:9702").is_ok());
        assert!(parse_peer("127.0.0.1:9702").is_err());
        assert!(parse_peer("ftp://h:1").is_err());
    }
}
