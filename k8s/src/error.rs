//! The crate's one error enum.

use std::path::PathBuf;

/// What can go wrong while setting up the resolver or talking to the API server.
///
/// Setup errors (`Config`, `ReadFile`, `NoNodeName`, `Tls`, `Client`) come out
/// of [`crate::MetadataResolver::from_environment`] and
/// [`crate::MetadataResolver::connect`]. The others are met by the watch loop,
/// which logs them, counts them in [`crate::ResolverStats::api_errors`] and
/// retries with backoff; they are public so the loop's log lines and tests can
/// name them.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum K8sError {
    /// The API server address or another setting is unusable.
    #[error("invalid Kubernetes client setting: {0}")]
    Config(String),
    /// A service-account file could not be read.
    #[error("cannot read the {what} at {}: {source}", path.display())]
    ReadFile {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    /// Running in a cluster, but the name of this node is unknown.
    #[error(
        "running in Kubernetes but the node name is unknown: set NODE_NAME from the downward API \
         (fieldRef spec.nodeName)"
    )]
    NoNodeName,
    /// The CA certificate is not usable PEM.
    #[error("invalid CA certificate: {0}")]
    Tls(String),
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client: {0}")]
    Client(#[source] reqwest::Error),
    /// The request did not complete (connection refused, reset, timeout...).
    #[error("request to {url} failed: {source}")]
    Http {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    /// The API server answered with an error status (or an ERROR watch event).
    #[error("{url} answered {status}: {message}")]
    Status {
        url: String,
        status: u16,
        message: String,
    },
    /// The resource version we hold is too old (HTTP 410 Gone): the cache
    /// must be re-listed.
    #[error("resource version expired (410 Gone) at {url}")]
    Gone { url: String },
    /// A response was not the JSON we expect.
    #[error("cannot decode {what} from {url}: {source}")]
    Decode {
        what: &'static str,
        url: String,
        #[source]
        source: serde_json::Error,
    },
    /// A well-formed response that breaks the API's contract (a list
    /// without a resource version).
    #[error("unexpected response from {url}: {message}")]
    Protocol { url: String, message: String },
    /// A response or a watch event exceeds its size cap.
    #[error("{what} from {url} is larger than {limit} bytes")]
    TooLarge {
        what: &'static str,
        url: String,
        limit: usize,
    },
}
