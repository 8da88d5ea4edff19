//! Command-line interface: the arguments of every subcommand (`args` here),
//! the TOML config file they can come from, and the HTTP client behind
//! `sonde query` and `sonde tables`.

pub mod config_file;
pub mod query_client;

use std::net::SocketAddr;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "sonde",
    version,
    about = "eBPF capture of HTTP traffic on this host, served as SQL"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the node agent: attach the probes, parse traffic, serve the API (needs root).
    Agent(Box<AgentArgs>),
    /// Serve one SQL view of every agent (HTTP API, dashboard, PostgreSQL).
    Coordinator(Box<CoordinatorArgs>),
    /// Run a SQL query against a running agent.
    Query(QueryArgs),
    /// List the tables of a running agent and their columns.
    Tables(ServerArgs),
}

#[derive(Debug, Args)]
pub struct AgentArgs {
    /// Address of the HTTP API (query, health, metrics).
    #[arg(long, env = "SONDE_LISTEN", default_value = "127.0.0.1:9700")]
    pub listen: SocketAddr,
    /// Address of the PostgreSQL wire protocol endpoint (psql, Grafana,
    /// drivers), or `off`.
    #[arg(long, env = "SONDE_PG_LISTEN", default_value = "127.0.0.1:9701", value_parser = parse_listen)]
    pub pg_listen: Listen,
    /// Address of the worker endpoint a coordinator runs queries over (gRPC),
    /// or `off`.
    #[arg(long, env = "SONDE_WORKER_LISTEN", default_value = "127.0.0.1:9702", value_parser = parse_listen)]
    pub worker_listen: Listen,
    #[command(flatten)]
    pub worker_tls: WorkerTlsArgs,
    /// Memory budget of the table store, in MiB; oldest rows are evicted beyond it.
    #[arg(long, env = "SONDE_STORE_BUDGET_MIB", default_value_t = 1024,
          value_parser = clap::value_parser!(u64).range(1..=1_048_576))]
    pub store_budget_mib: u64,
    /// Payload bytes copied per syscall; the rest is accounted by size only.
    #[arg(long, env = "SONDE_MAX_BYTES_PER_CALL", default_value_t = 32768,
          value_parser = clap::value_parser!(u32).range(0..=1_048_576))]
    pub max_bytes_per_call: u32,
    /// Size of the kernel ring buffer, in MiB (a power of two).
    #[arg(long, env = "SONDE_RING_BUFFER_MIB", default_value_t = 32, value_parser = parse_ring_mib)]
    pub ring_buffer_mib: u32,
    /// Unread ring-buffer bytes at which the kernel wakes the capture thread;
    /// below, it collects every 20 ms. 0 wakes it for any record (lowest
    /// latency, most context switches). At most a quarter of the ring is used.
    #[arg(long, env = "SONDE_RING_WAKEUP_BYTES", default_value_t = 1_048_576,
          value_parser = clap::value_parser!(u64).range(0..=(1 << 30)))]
    pub ring_wakeup_bytes: u64,
    /// Bytes of each request and response body kept in the tables.
    #[arg(long, env = "SONDE_BODY_PREFIX_BYTES", default_value_t = 1024,
          value_parser = clap::value_parser!(u64).range(0..=1_048_576))]
    pub body_prefix_bytes: u64,
    /// Another header whose value is redacted before storage (repeatable).
    #[arg(long = "redact-header", value_name = "NAME")]
    pub redact_headers: Vec<String>,
    /// Do not redact the default headers (Authorization, Cookie, Set-Cookie, API keys...).
    #[arg(long)]
    pub no_default_redaction: bool,
    /// Connections tracked at once; beyond, new connections are counted and not parsed.
    #[arg(long, env = "SONDE_MAX_CONNECTIONS", default_value_t = 65536,
          value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub max_connections: u64,
    /// Memory for connection state, in MiB: unparsed and out-of-order bytes
    /// and protocol state (requests waiting for answers, messages in
    /// progress) across all connections. Beyond it new bytes are dropped as
    /// gaps (counted in stream_buffer_dropped_bytes).
    #[arg(long, env = "SONDE_MAX_CONNECTION_STATE_MIB", default_value_t = 256,
          value_parser = clap::value_parser!(u64).range(1..=65_536))]
    pub max_connection_state_mib: u64,
    /// File holding the bearer token the API requires (needed to listen beyond loopback).
    #[arg(long, env = "SONDE_AUTH_TOKEN_FILE", value_name = "PATH")]
    pub auth_token_file: Option<std::path::PathBuf>,
    /// Kubernetes API server to read pod metadata from, instead of the
    /// in-cluster service account (for running outside a pod).
    #[arg(long, env = "SONDE_KUBERNETES_API", value_name = "URL")]
    pub kubernetes_api: Option<String>,
    /// Bearer token file for --kubernetes-api.
    #[arg(long, env = "SONDE_KUBERNETES_TOKEN_FILE", value_name = "PATH")]
    pub kubernetes_token_file: Option<std::path::PathBuf>,
    /// This node's name, in the `node` column of every table (the DaemonSet
    /// sets it from spec.nodeName); default: the host name.
    #[arg(long, env = "NODE_NAME")]
    pub node_name: Option<String>,
    /// The host's /proc, to read processes' cgroups (in a pod: /host/proc).
    #[arg(long, env = "SONDE_PROC_ROOT", default_value = "/proc")]
    pub proc_root: std::path::PathBuf,
    /// Log filter (e.g. info, debug, sonde=debug).
    #[arg(long, env = "SONDE_LOG", default_value = "info")]
    pub log: String,
    /// TOML file of settings named like these flags (`otlp-endpoint = "..."`);
    /// flags and environment variables take precedence over it.
    #[arg(long, env = "SONDE_CONFIG", value_name = "PATH")]
    pub config: Option<std::path::PathBuf>,
    #[command(flatten)]
    pub export: crate::export::ExportArgs,
}

/// A listening address, or none (`off`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listen {
    Off,
    On(SocketAddr),
}

impl Listen {
    pub fn addr(self) -> Option<SocketAddr> {
        match self {
            Listen::Off => None,
            Listen::On(addr) => Some(addr),
        }
    }
}

fn parse_listen(s: &str) -> Result<Listen, String> {
    if s.eq_ignore_ascii_case("off") {
        return Ok(Listen::Off);
    }
    s.parse()
        .map(Listen::On)
        .map_err(|e| format!("`{s}` is not an address (host:port) or `off`: {e}"))
}

/// TLS of the worker endpoints (agents serve it; coordinators and agents
/// call it). `https://` worker URLs turn it on, as for OTLP endpoints.
#[derive(Debug, Args)]
pub struct WorkerTlsArgs {
    /// PEM certificate chain the worker endpoint serves TLS with (with
    /// --worker-tls-key).
    #[arg(
        long,
        env = "SONDE_WORKER_TLS_CERT",
        value_name = "PATH",
        requires = "worker_tls_key"
    )]
    pub worker_tls_cert: Option<std::path::PathBuf>,
    /// PEM private key of --worker-tls-cert.
    #[arg(
        long,
        env = "SONDE_WORKER_TLS_KEY",
        value_name = "PATH",
        requires = "worker_tls_cert"
    )]
    pub worker_tls_key: Option<std::path::PathBuf>,
    /// PEM file of CA certificates trusted for https:// workers, besides the
    /// built-in Mozilla roots (a private CA, self-signed workers).
    #[arg(long, env = "SONDE_WORKER_CERTIFICATE", value_name = "PATH")]
    pub worker_certificate: Option<std::path::PathBuf>,
}

#[derive(Debug, Args)]
pub struct CoordinatorArgs {
    /// Address of the HTTP API and dashboard over every node.
    #[arg(long, env = "SONDE_LISTEN", default_value = "127.0.0.1:9700")]
    pub listen: SocketAddr,
    /// Address of the PostgreSQL wire protocol endpoint, or `off`.
    #[arg(long, env = "SONDE_PG_LISTEN", default_value = "127.0.0.1:9701", value_parser = parse_listen)]
    pub pg_listen: Listen,
    /// The agents' worker endpoints (http://host:9702, https://... for TLS),
    /// comma-separated.
    #[arg(
        long,
        env = "SONDE_PEERS",
        value_delimiter = ',',
        value_name = "URL",
        required_unless_present = "peers_from_kubernetes",
        conflicts_with = "peers_from_kubernetes"
    )]
    pub peers: Vec<String>,
    /// Find the agents from the endpoints of their headless Service
    /// (its port named `worker`), kept current.
    #[arg(
        long,
        env = "SONDE_PEERS_FROM_KUBERNETES",
        value_name = "NAMESPACE/SERVICE"
    )]
    pub peers_from_kubernetes: Option<String>,
    /// How long a node may take to answer before a query goes on without
    /// it (partial results) or fails naming it.
    #[arg(long, env = "SONDE_PEER_TIMEOUT_MS", default_value_t = 2000,
          value_parser = clap::value_parser!(u64).range(1..=600_000))]
    pub peer_timeout_ms: u64,
    /// File holding the bearer token: required by this coordinator's API (and
    /// as the PostgreSQL password), and sent to the agents.
    #[arg(long, env = "SONDE_AUTH_TOKEN_FILE", value_name = "PATH")]
    pub auth_token_file: Option<std::path::PathBuf>,
    #[arg(long, env = "SONDE_KUBERNETES_API", value_name = "URL")]
    /// Kubernetes API server, instead of the in-cluster service account.
    pub kubernetes_api: Option<String>,
    /// Bearer token file for --kubernetes-api.
    #[arg(long, env = "SONDE_KUBERNETES_TOKEN_FILE", value_name = "PATH")]
    pub kubernetes_token_file: Option<std::path::PathBuf>,
    #[command(flatten)]
    pub worker_tls: WorkerTlsArgs,
    /// Log filter (e.g. info, debug, sonde=debug).
    #[arg(long, env = "SONDE_LOG", default_value = "info")]
    pub log: String,
}

#[derive(Debug, Args)]
pub struct ServerArgs {
    /// URL of the agent's API.
    #[arg(long, env = "SONDE_SERVER", default_value = "http://127.0.0.1:9700")]
    pub server: String,
    /// Bearer token, when the agent requires one.
    #[arg(long, env = "SONDE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

#[derive(Debug, Args)]
pub struct QueryArgs {
    /// The SQL statement (read-only: SELECT, WITH, EXPLAIN, SHOW, DESCRIBE).
    pub sql: String,
    #[command(flatten)]
    pub server: ServerArgs,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,
    /// Over a coordinator: answer from the nodes that respond, naming the
    /// others on stderr, instead of failing.
    #[arg(long)]
    pub partial: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Table,
    Json,
    Csv,
}

fn parse_ring_mib(s: &str) -> Result<u32, String> {
    let mib: u32 = s
        .parse()
        .map_err(|_| format!("`{s}` is not a whole number of MiB"))?;
    if mib == 0 || mib > 1024 || !mib.is_power_of_two() {
        return Err(format!(
            "ring buffer size must be a power of two between 1 and 1024 MiB, got {mib}"
        ));
    }
    Ok(mib)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_flags_are_usage_errors() {
        let err = Cli::try_parse_from(["sonde", "agent", "--ring-buffer-mib", "3"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::ValueValidation);
        let err = Cli::try_parse_from(["sonde", "agent", "--listen", "nope"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::ValueValidation);
        let err = Cli::try_parse_from(["sonde", "query"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::MissingRequiredArgument);
    }

    #[test]
    fn defaults() {
        let cli = Cli::try_parse_from(["sonde", "agent"]).unwrap();
        let Command::Agent(args) = cli.command else {
            panic!("not agent")
        };
        assert_eq!(args.listen.to_string(), "127.0.0.1:9700");
        assert_eq!(args.store_budget_mib, 1024);
        assert_eq!(args.ring_buffer_mib, 32);
        assert_eq!(args.ring_wakeup_bytes, 1 << 20);
        assert_eq!(args.body_prefix_bytes, 1024);
        assert_eq!(
            args.pg_listen,
            Listen::On("127.0.0.1:9701".parse().unwrap())
        );
        assert_eq!(
            args.worker_listen,
            Listen::On("127.0.0.1:9702".parse().unwrap())
        );
        let cli = Cli::try_parse_from(["sonde", "agent", "--pg-listen", "off"]).unwrap();
        let Command::Agent(args) = cli.command else {
            panic!("not agent")
        };
        assert_eq!(args.pg_listen, Listen::Off);
    }

    #[test]
    fn a_coordinator_needs_its_peers() {
        let err = Cli::try_parse_from(["sonde", "coordinator"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::MissingRequiredArgument);
        let cli = Cli::try_parse_from([
            "sonde",
            "coordinator",
            "--peers",
            "http://a:9702,http://b:9702",
        ])
        .unwrap();
        let Command::Coordinator(args) = cli.command else {
            panic!("not coordinator")
        };
        assert_eq!(args.peers, ["http://a:9702", "http://b:9702"]);
        let err = Cli::try_parse_from([
            "sonde",
            "coordinator",
            "--peers",
            "http://a:9702",
            "--peers-from-kubernetes",
            "sonde/sonde-agents",
        ])
        .unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::ArgumentConflict);
    }
}
