//! The gRPC channels from a coordinator (or a worker, for shuffles) to the
//! workers: one per worker URL, reused by every query, carrying the
//! cluster's bearer token and speaking TLS to `https://` URLs.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use datafusion::error::{DataFusionError, Result};
use datafusion_distributed::grpc::{BoxCloneSyncChannel, create_worker_client};
use datafusion_distributed::{ChannelResolver, GetWorkerInfoRequest, WorkerChannel};
use tonic::codegen::http::{HeaderValue, header::AUTHORIZATION};
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint};
use url::Url;

/// How long connecting to a worker may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How a client reaches the cluster's workers.
#[derive(Debug, Clone, Default)]
pub struct ClusterClientConfig {
    /// Sent as `authorization: Bearer …` on every call.
    pub token: Option<String>,
    /// PEM CA certificates trusted for `https://` workers, besides the
    /// built-in Mozilla roots.
    pub ca_pem: Option<Vec<u8>>,
}

/// Channels to workers by URL.
#[derive(Clone)]
pub(crate) struct ClusterChannels {
    authorization: Option<HeaderValue>,
    tls: ClientTlsConfig,
    channels: Arc<Mutex<HashMap<Url, BoxCloneSyncChannel>>>,
}

impl std::fmt::Debug for ClusterChannels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterChannels")
            .field("token", &self.authorization.is_some())
            .finish_non_exhaustive()
    }
}

impl ClusterChannels {
    pub(crate) fn new(config: &ClusterClientConfig) -> Result<Self, String> {
        let authorization = config
            .token
            .as_deref()
            .map(|token| {
                let mut value = HeaderValue::from_str(&format!("Bearer {token}"))
                    .map_err(|_| "the token is not a valid header value".to_owned())?;
                value.set_sensitive(true);
                Ok::<_, String>(value)
            })
            .transpose()?;
        let mut tls = ClientTlsConfig::new().with_webpki_roots();
        if let Some(pem) = &config.ca_pem {
            tls = tls.ca_certificate(Certificate::from_pem(pem));
        }
        Ok(Self {
            authorization,
            tls,
            channels: Arc::new(Mutex::new(HashMap::new())),
        })
    }

    /// The channel to `url`, created on first use. Connecting is lazy: a
    /// worker that is down fails the first call, not this.
    fn channel(&self, url: &Url) -> Result<BoxCloneSyncChannel> {
        let mut channels = self.channels.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(channel) = channels.get(url) {
            return Ok(channel.clone());
        }
        let mut endpoint = Endpoint::from_shared(url.to_string())
            .map_err(|err| DataFusionError::Configuration(format!("worker URL {url}: {err}")))?
            .connect_timeout(CONNECT_TIMEOUT)
            // A worker that stops answering mid-query is noticed.
            .http2_keep_alive_interval(Duration::from_secs(10))
            .keep_alive_timeout(Duration::from_secs(10));
        if url.scheme() == "https" {
            endpoint = endpoint.tls_config(self.tls.clone()).map_err(|err| {
                DataFusionError::Configuration(format!("TLS to worker {url}: {err}"))
            })?;
        }
        let channel = endpoint.connect_lazy();
        let authorization = self.authorization.clone();
        let channel = tower::ServiceBuilder::new()
            .map_request(
                move |mut request: tonic::codegen::http::Request<tonic::body::Body>| {
                    if let Some(value) = &authorization {
                        request.headers_mut().insert(AUTHORIZATION, value.clone());
                    }
                    request
                },
            )
            .service(channel);
        let channel = BoxCloneSyncChannel::new(channel);
        channels.insert(url.clone(), channel.clone());
        Ok(channel)
    }

    /// Asks the worker at `url` who it is, within `timeout`: its version
    /// string (`sonde <version> node=<name>`), or why it did not answer.
    pub(crate) async fn probe(&self, url: &Url, timeout: Duration) -> Result<String, String> {
        let channel = self.channel(url).map_err(|err| err.to_string())?;
        let mut client = create_worker_client(channel);
        match tokio::time::timeout(timeout, client.get_worker_info(GetWorkerInfoRequest {})).await {
            Ok(Ok(info)) => Ok(info.version),
            Ok(Err(err)) => Err(first_line(&err.strip_backtrace())),
            Err(_) => Err(format!("no answer within {} s", timeout.as_secs_f64())),
        }
    }
}

fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or_default().to_owned()
}

#[async_trait]
impl ChannelResolver for ClusterChannels {
    async fn get_worker_client_for_url(&self, url: &Url) -> Result<Box<dyn WorkerChannel>> {
        Ok(create_worker_client(self.channel(url)?))
    }
}
