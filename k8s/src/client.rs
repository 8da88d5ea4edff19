//! A minimal Kubernetes API client: paged GET lists and line-delimited watch
//! streams, with a bearer token and the cluster's CA. Only what the resolver
//! needs; see the crate docs for why this is not `kube`.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use reqwest::header::{AUTHORIZATION, HeaderValue};
use serde::de::DeserializeOwned;

use crate::error::K8sError;
use crate::model::{List, Status, WatchEvent};

/// Projected service-account tokens are rotated by the kubelet (about
/// hourly); re-reading the file this often picks up a new one well before
/// the old one expires.
const TOKEN_REFRESH: Duration = Duration::from_secs(60);

/// How much of an error response's body is read for its message.
const MAX_ERROR_BODY_BYTES: usize = 16 * 1024;

/// Where the bearer token comes from.
#[derive(Debug)]
pub(crate) enum TokenSource {
    None,
    Static(String),
    /// The service account's token file, re-read every [`TOKEN_REFRESH`].
    File {
        path: PathBuf,
        cached: Mutex<Option<(String, Instant)>>,
    },
}

impl TokenSource {
    pub fn file(path: PathBuf) -> Self {
        Self::File {
            path,
            cached: Mutex::new(None),
        }
    }

    pub(crate) fn token(&self) -> Result<Option<String>, K8sError> {
        match self {
            Self::None => Ok(None),
            Self::Static(token) => Ok(Some(token.clone())),
            Self::File { path, cached } => {
                let mut cached = cached
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if let Some((token, read_at)) = cached.as_ref()
                    && read_at.elapsed() < TOKEN_REFRESH
                {
                    return Ok(Some(token.clone()));
                }
                match std::fs::read_to_string(path) {
                    Ok(token) => {
                        let token = token.trim().to_owned();
                        *cached = Some((token.clone(), Instant::now()));
                        Ok(Some(token))
                    }
                    // The kubelet swaps the file atomically, but a read can
                    // still fail transiently: keep using the last token.
                    Err(err) => match cached.as_ref() {
                        Some((token, _)) => {
                            tracing::warn!(path = %path.display(), error = %err, "cannot re-read the service account token; using the previous one");
                            Ok(Some(token.clone()))
                        }
                        None => Err(K8sError::ReadFile {
                            what: "service account token",
                            path: path.clone(),
                            source: err,
                        }),
                    },
                }
            }
        }
    }
}

#[derive(Debug)]
pub(crate) struct ApiClient {
    http: reqwest::Client,
    base: String,
    token: TokenSource,
}

impl ApiClient {
    /// `base_url` is `http(s)://host:port[/prefix]`. An `https` URL needs the
    /// CA (there are deliberately no built-in roots: the API server's
    /// certificate is signed by the cluster's own CA).
    pub fn new(
        base_url: &str,
        token: TokenSource,
        ca_pem: Option<&[u8]>,
        connect_timeout: Duration,
    ) -> Result<Self, K8sError> {
        let url = reqwest::Url::parse(base_url)
            .map_err(|err| K8sError::Config(format!("API server URL `{base_url}`: {err}")))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(K8sError::Config(format!(
                "API server URL `{base_url}` must be http(s)://host[:port]"
            )));
        }
        if url.scheme() == "https" && ca_pem.is_none() {
            return Err(K8sError::Config(format!(
                "API server URL `{base_url}` is https but no CA certificate was given"
            )));
        }
        let mut builder = reqwest::Client::builder()
            .connect_timeout(connect_timeout)
            // The API server is reached directly from inside the cluster; a
            // node's HTTP(S)_PROXY must not capture these requests.
            .no_proxy()
            .tls_built_in_root_certs(false)
            .user_agent(concat!("sonde-k8s/", env!("CARGO_PKG_VERSION")));
        if let Some(pem) = ca_pem {
            let certs = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|err| K8sError::Tls(err.to_string()))?;
            if certs.is_empty() {
                return Err(K8sError::Tls("no certificate in the PEM data".into()));
            }
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        let http = builder.build().map_err(K8sError::Client)?;
        Ok(Self {
            http,
            base: base_url.trim_end_matches('/').to_owned(),
            token,
        })
    }

    fn get(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<reqwest::RequestBuilder, K8sError> {
        let mut request = self.http.get(format!("{}{path}", self.base)).query(query);
        if let Some(token) = self.token.token()? {
            let mut value = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
                K8sError::Config("the bearer token is not a valid header value".into())
            })?;
            value.set_sensitive(true);
            request = request.header(AUTHORIZATION, value);
        }
        Ok(request)
    }

    /// One page of a list. The body is read with a cap so a huge page cannot
    /// take the agent's memory; the caller pages with `limit`/`continue`.
    pub async fn list_page<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
        max_bytes: usize,
        timeout: Duration,
    ) -> Result<List<T>, K8sError> {
        let url = self.display_url(path);
        let response = self
            .get(path, query)?
            .timeout(timeout)
            .send()
            .await
            .map_err(|source| K8sError::Http {
                url: url.clone(),
                source,
            })?;
        let response = check_status(response, &url).await?;
        let body = read_capped(response, max_bytes, "list response", &url).await?;
        serde_json::from_slice(&body).map_err(|source| K8sError::Decode {
            what: "list response",
            url,
            source,
        })
    }

    /// Opens a watch. No overall timeout here: the caller bounds the whole
    /// watch (the server ends it after `timeoutSeconds`).
    pub async fn watch(
        &self,
        path: &str,
        query: &[(&str, String)],
        max_event_bytes: usize,
    ) -> Result<WatchStream, K8sError> {
        let url = self.display_url(path);
        let response = self
            .get(path, query)?
            .send()
            .await
            .map_err(|source| K8sError::Http {
                url: url.clone(),
                source,
            })?;
        let response = check_status(response, &url).await?;
        Ok(WatchStream {
            response,
            buffer: Vec::new(),
            scanned: 0,
            url,
            max_event_bytes,
        })
    }

    fn display_url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

/// A watch response: one JSON event per line, possibly split across chunks.
pub(crate) struct WatchStream {
    response: reqwest::Response,
    buffer: Vec<u8>,
    /// Bytes of `buffer` already searched for a newline.
    scanned: usize,
    url: String,
    max_event_bytes: usize,
}

impl WatchStream {
    /// The next event, or `None` when the server ended the watch.
    pub async fn next_event(&mut self) -> Result<Option<WatchEvent>, K8sError> {
        loop {
            if let Some(offset) = self.buffer[self.scanned..].iter().position(|&b| b == b'\n') {
                let end = self.scanned + offset;
                let line: Vec<u8> = self.buffer.drain(..=end).collect();
                self.scanned = 0;
                match self.decode(&line)? {
                    Some(event) => return Ok(Some(event)),
                    None => continue, // blank line
                }
            }
            self.scanned = self.buffer.len();
            if self.buffer.len() > self.max_event_bytes {
                return Err(K8sError::TooLarge {
                    what: "watch event",
                    url: self.url.clone(),
                    limit: self.max_event_bytes,
                });
            }
            let chunk = self
                .response
                .chunk()
                .await
                .map_err(|source| K8sError::Http {
                    url: self.url.clone(),
                    source,
                })?;
            match chunk {
                Some(chunk) => self.buffer.extend_from_slice(&chunk),
                None => {
                    // A last event without its newline is still an event.
                    let rest = std::mem::take(&mut self.buffer);
                    self.scanned = 0;
                    return self.decode(&rest);
                }
            }
        }
    }

    fn decode(&self, line: &[u8]) -> Result<Option<WatchEvent>, K8sError> {
        if line.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        serde_json::from_slice(line)
            .map(Some)
            .map_err(|source| K8sError::Decode {
                what: "watch event",
                url: self.url.clone(),
                source,
            })
    }
}

async fn check_status(
    response: reqwest::Response,
    url: &str,
) -> Result<reqwest::Response, K8sError> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    if status == reqwest::StatusCode::GONE {
        return Err(K8sError::Gone {
            url: url.to_owned(),
        });
    }
    let body = read_capped_lossy(response, MAX_ERROR_BODY_BYTES).await;
    let message = serde_json::from_slice::<Status>(&body)
        .ok()
        .and_then(|s| s.message)
        .unwrap_or_else(|| String::from_utf8_lossy(&body).trim().to_owned());
    Err(K8sError::Status {
        url: url.to_owned(),
        status: status.as_u16(),
        message,
    })
}

async fn read_capped(
    mut response: reqwest::Response,
    max_bytes: usize,
    what: &'static str,
    url: &str,
) -> Result<Vec<u8>, K8sError> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|source| K8sError::Http {
        url: url.to_owned(),
        source,
    })? {
        if body.len().saturating_add(chunk.len()) > max_bytes {
            return Err(K8sError::TooLarge {
                what,
                url: url.to_owned(),
                limit: max_bytes,
            });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The start of an error body, for its message; read errors end it early.
async fn read_capped_lossy(mut response: reqwest::Response, max_bytes: usize) -> Vec<u8> {
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        let room = max_bytes.saturating_sub(body.len());
        body.extend_from_slice(chunk.get(..room).unwrap_or(&chunk));
        if body.len() >= max_bytes {
            break;
        }
    }
    body
}
