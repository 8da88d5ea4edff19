//! The ready endpoints of one Service, kept current: how the coordinator
//! finds the agents (their headless Service, one endpoint per node).
//!
//! Polled (a list every few seconds), not watched: the coordinator asks
//! for the list once per query, a few seconds of staleness only delays a
//! new node, and a node that went away is found out by the query itself.

use std::path::Path;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use serde::Deserialize;

use crate::client::{ApiClient, TokenSource};
use crate::error::K8sError;
use crate::resolver::SERVICE_ACCOUNT_DIR;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const LIST_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest list response read (EndpointSlices of one Service).
const MAX_LIST_BYTES: usize = 8 << 20;

/// One ready endpoint of the Service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceEndpoint {
    /// The pod's address (an IP).
    pub address: String,
    pub port: u16,
    /// The node the pod runs on.
    pub node: Option<String>,
}

/// A Service's ready endpoints on a named port.
#[derive(Debug)]
pub struct ServiceEndpoints {
    client: ApiClient,
    namespace: String,
    service: String,
    port_name: String,
    current: RwLock<Result<Vec<ServiceEndpoint>, String>>,
}

impl ServiceEndpoints {
    /// In a pod, with the service account (see
    /// [`crate::MetadataResolver::from_environment`]); `Ok(None)` outside
    /// a cluster.
    pub fn from_environment(
        namespace: &str,
        service: &str,
        port_name: &str,
    ) -> Result<Option<Self>, K8sError> {
        let env = |name: &str| {
            std::env::var(name)
                .ok()
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let (Some(host), Some(port)) = (
            env("KUBERNETES_SERVICE_HOST"),
            env("KUBERNETES_SERVICE_PORT"),
        ) else {
            return Ok(None);
        };
        let dir = Path::new(SERVICE_ACCOUNT_DIR);
        let ca_path = dir.join("ca.crt");
        let ca = std::fs::read(&ca_path).map_err(|source| K8sError::ReadFile {
            what: "service account CA certificate",
            path: ca_path,
            source,
        })?;
        let host = if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]")
        } else {
            host
        };
        let client = ApiClient::new(
            &format!("https://{host}:{port}"),
            TokenSource::file(dir.join("token")),
            Some(&ca),
            CONNECT_TIMEOUT,
        )?;
        Ok(Some(Self::with_client(
            client, namespace, service, port_name,
        )))
    }

    /// An explicit API server (`http://` accepted; `https://` needs `ca_pem`).
    pub fn connect(
        api_base_url: &str,
        token: Option<String>,
        ca_pem: Option<&[u8]>,
        namespace: &str,
        service: &str,
        port_name: &str,
    ) -> Result<Self, K8sError> {
        let token = token.map_or(TokenSource::None, TokenSource::Static);
        let client = ApiClient::new(api_base_url, token, ca_pem, CONNECT_TIMEOUT)?;
        Ok(Self::with_client(client, namespace, service, port_name))
    }

    fn with_client(client: ApiClient, namespace: &str, service: &str, port_name: &str) -> Self {
        Self {
            client,
            namespace: namespace.to_owned(),
            service: service.to_owned(),
            port_name: port_name.to_owned(),
            current: RwLock::new(Err(format!(
                "the endpoints of service {namespace}/{service} were not listed yet"
            ))),
        }
    }

    /// Lists the Service's EndpointSlices now.
    pub async fn refresh(&self) -> Result<(), K8sError> {
        let path = format!(
            "/apis/discovery.k8s.io/v1/namespaces/{}/endpointslices",
            self.namespace
        );
        let query = [(
            "labelSelector",
            format!("kubernetes.io/service-name={}", self.service),
        )];
        let listed = self
            .client
            .list_page::<Slice>(&path, &query, MAX_LIST_BYTES, LIST_TIMEOUT)
            .await;
        let mut current = self.current.write().unwrap_or_else(PoisonError::into_inner);
        match listed {
            Ok(list) => {
                *current = Ok(ready_endpoints(
                    &list.items.unwrap_or_default(),
                    &self.port_name,
                ));
                Ok(())
            }
            Err(err) => {
                // Keep the last good list: the API server being briefly
                // away must not empty the cluster.
                if current.is_err() {
                    *current = Err(format!(
                        "cannot list the endpoints of service {}/{}: {err}",
                        self.namespace, self.service
                    ));
                }
                Err(err)
            }
        }
    }

    /// Refreshes every `every` on the current runtime until aborted.
    pub fn spawn(self: &Arc<Self>, every: Duration) -> tokio::task::JoinHandle<()> {
        let this = Arc::clone(self);
        tokio::spawn(async move {
            loop {
                if let Err(err) = this.refresh().await {
                    tracing::warn!(%err, "listing the agents' endpoints failed");
                }
                tokio::time::sleep(every).await;
            }
        })
    }

    /// The ready endpoints at the last successful list.
    pub fn current(&self) -> Result<Vec<ServiceEndpoint>, String> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

#[derive(Debug, Default, Deserialize)]
struct Slice {
    endpoints: Option<Vec<SliceEndpoint>>,
    ports: Option<Vec<SlicePort>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SliceEndpoint {
    addresses: Option<Vec<String>>,
    conditions: Option<Conditions>,
    node_name: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct Conditions {
    ready: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
struct SlicePort {
    name: Option<String>,
    port: Option<u16>,
}

/// Endpoints not known to be unready, on the port named `port_name`, one
/// per pod (its first address), sorted by address.
fn ready_endpoints(slices: &[Slice], port_name: &str) -> Vec<ServiceEndpoint> {
    let mut endpoints: Vec<ServiceEndpoint> = slices
        .iter()
        .filter_map(|slice| {
            let port = slice
                .ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref() == Some(port_name))?
                .port?;
            Some(
                slice
                    .endpoints
                    .iter()
                    .flatten()
                    .filter_map(move |endpoint| {
                        if endpoint.conditions.as_ref().and_then(|c| c.ready) == Some(false) {
                            return None;
                        }
                        let address = endpoint.addresses.as_ref()?.first()?.clone();
                        Some(ServiceEndpoint {
                            address,
                            port,
                            node: endpoint.node_name.clone(),
                        })
                    }),
            )
        })
        .flatten()
        .collect();
    endpoints.sort_by(|a, b| a.address.cmp(&b.address));
    endpoints.dedup();
    endpoints
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_endpoints_on_the_named_port() {
        let list: crate::model::List<Slice> = serde_json::from_str(
            r#"{"items": [
                {"ports": [{"name": "api", "port": 9700}, {"name": "worker", "port": 9702}],
                 "endpoints": [
                    {"addresses": ["10.0.1.7"], "conditions": {"ready": true}, "nodeName": "n2"},
                    {"addresses": ["10.0.0.5"], "nodeName": "n1"},
                    {"addresses": ["10.0.2.9"], "conditions": {"ready": false}, "nodeName": "n3"}
                 ]},
                {"ports": [{"name": "api", "port": 9700}],
                 "endpoints": [{"addresses": ["10.0.3.1"], "nodeName": "n4"}]}
            ]}"#,
        )
        .unwrap();
        let endpoints = ready_endpoints(&list.items.unwrap(), "worker");
        assert_eq!(
            endpoints,
            [
                ServiceEndpoint {
                    address: "10.0.0.5".into(),
                    port: 9702,
                    node: Some("n1".into())
                },
                ServiceEndpoint {
                    address: "10.0.1.7".into(),
                    port: 9702,
                    node: Some("n2".into())
                },
            ]
        );
    }
}
