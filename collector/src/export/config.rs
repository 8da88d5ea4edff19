//! Export settings: flags, which fall back to the standard OpenTelemetry
//! environment variables (OTEL_EXPORTER_OTLP_*), which fall back to the
//! config file (see `crate::config_file`).

use std::time::Duration;

use clap::{Args, ValueEnum};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OtlpProtocol {
    #[value(name = "grpc")]
    Grpc,
    #[value(name = "http/protobuf")]
    HttpProtobuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Signal {
    Traces,
    Metrics,
}

#[derive(Debug, Clone, Args)]
pub struct ExportArgs {
    /// OTLP endpoint for spans and metrics (e.g. http://otel-collector:4317 for
    /// gRPC, http://tempo:4318 for HTTP; /v1/traces and /v1/metrics are
    /// appended for HTTP). Unset: nothing is exported, RED metrics stay on /metrics.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT", value_name = "URL")]
    pub otlp_endpoint: Option<String>,
    /// Endpoint for spans only, used as is (overrides --otlp-endpoint).
    #[arg(long, env = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", value_name = "URL")]
    pub otlp_traces_endpoint: Option<String>,
    /// Endpoint for metrics only, used as is (overrides --otlp-endpoint).
    #[arg(long, env = "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", value_name = "URL")]
    pub otlp_metrics_endpoint: Option<String>,
    /// OTLP transport.
    #[arg(
        long,
        env = "OTEL_EXPORTER_OTLP_PROTOCOL",
        value_enum,
        default_value = "http/protobuf"
    )]
    pub otlp_protocol: OtlpProtocol,
    /// Header sent with every export request, KEY=VALUE (repeatable; the
    /// environment variable takes a comma-separated list, values URL-encoded).
    #[arg(long = "otlp-header", env = "OTEL_EXPORTER_OTLP_HEADERS", value_name = "KEY=VALUE",
          value_delimiter = ',', value_parser = parse_header, hide_env_values = true)]
    pub otlp_headers: Vec<(String, String)>,
    /// PEM file of CA certificates trusted for https:// endpoints, besides
    /// the built-in Mozilla roots (a private CA, a self-signed collector).
    #[arg(long, env = "OTEL_EXPORTER_OTLP_CERTIFICATE", value_name = "PATH")]
    pub otlp_certificate: Option<std::path::PathBuf>,
    /// Deadline of one export request, in milliseconds.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_TIMEOUT", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(1..=600_000))]
    pub otlp_timeout_ms: u64,
    /// Which signals to export (comma-separated).
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "traces,metrics"
    )]
    pub otlp_signals: Vec<Signal>,
    /// Interval between metric exports, in milliseconds.
    #[arg(long, env = "OTEL_METRIC_EXPORT_INTERVAL", default_value_t = 60_000,
          value_parser = clap::value_parser!(u64).range(100..=3_600_000))]
    pub otlp_metrics_interval_ms: u64,
    /// Spans held for export at most (about 1.5 KiB each); beyond, the
    /// oldest are dropped (counted).
    #[arg(long, default_value_t = 16_384,
          value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub otlp_max_queued_spans: u64,
    /// Only rows matching this SQL predicate become spans: `[TABLE:]PREDICATE`
    /// (repeatable; without a table it applies to every protocol table).
    #[arg(long = "traces-filter", value_name = "[TABLE:]PREDICATE")]
    pub traces_filters: Vec<String>,
    /// Only rows matching this SQL predicate count in the RED metrics (same form).
    #[arg(long = "metrics-filter", value_name = "[TABLE:]PREDICATE")]
    pub metrics_filters: Vec<String>,
    /// service.name for a process name, COMM=SERVICE (repeatable). Unmapped
    /// processes use their Kubernetes service, else their process name.
    #[arg(long = "service-name", value_name = "COMM=SERVICE", value_parser = parse_key_value)]
    pub service_names: Vec<(String, String)>,
    /// service.name of the agent's own telemetry.
    #[arg(long, env = "OTEL_SERVICE_NAME", default_value = "sonde")]
    pub otel_service_name: String,
    /// Attributes added to every exported resource, KEY=VALUE,... (e.g.
    /// deployment.environment.name=prod,k8s.cluster.name=eu1).
    #[arg(long, env = "OTEL_RESOURCE_ATTRIBUTES", value_name = "KEY=VALUE",
          value_delimiter = ',', value_parser = parse_header)]
    pub otel_resource_attributes: Vec<(String, String)>,
}

impl ExportArgs {
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.otlp_timeout_ms)
    }

    pub fn metrics_interval(&self) -> Duration {
        Duration::from_millis(self.otlp_metrics_interval_ms)
    }

    pub fn exports(&self, signal: Signal) -> bool {
        self.otlp_signals.contains(&signal) && self.endpoint_for(signal).is_some()
    }

    /// The URL a signal goes to: its own endpoint as is, else the shared
    /// endpoint (with `/v1/traces` or `/v1/metrics` appended for HTTP, as the
    /// specification says).
    pub fn endpoint_for(&self, signal: Signal) -> Option<String> {
        let (own, path) = match signal {
            Signal::Traces => (&self.otlp_traces_endpoint, "v1/traces"),
            Signal::Metrics => (&self.otlp_metrics_endpoint, "v1/metrics"),
        };
        if let Some(own) = own.as_ref().filter(|e| !e.is_empty()) {
            return Some(own.clone());
        }
        let shared = self.otlp_endpoint.as_ref().filter(|e| !e.is_empty())?;
        Some(match self.otlp_protocol {
            OtlpProtocol::Grpc => shared.clone(),
            OtlpProtocol::HttpProtobuf => {
                format!("{}/{path}", shared.trim_end_matches('/'))
            }
        })
    }
}

/// `KEY=VALUE`, with the value percent-decoded (OTEL_EXPORTER_OTLP_HEADERS
/// and OTEL_RESOURCE_ATTRIBUTES use the W3C Baggage encoding).
fn parse_header(s: &str) -> Result<(String, String), String> {
    let (key, value) = parse_key_value(s)?;
    Ok((key, percent_decode(&value)))
}

fn parse_key_value(s: &str) -> Result<(String, String), String> {
    let (key, value) = s
        .split_once('=')
        .ok_or_else(|| format!("`{s}` is not KEY=VALUE"))?;
    let key = key.trim();
    if key.is_empty() {
        return Err(format!("`{s}` has an empty key"));
    }
    Ok((key.to_string(), value.trim().to_string()))
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b, hex) {
            (b'%', Some(decoded)) => {
                out.push(decoded);
                i += 3;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A `[TABLE:]PREDICATE` flag split into its table (None: every table) and
/// predicate. A prefix that is not a protocol table is part of the predicate.
pub fn split_filter<'a>(flag: &'a str, tables: &[&str]) -> (Option<&'a str>, &'a str) {
    if let Some((table, predicate)) = flag.split_once(':') {
        let table = table.trim();
        if tables.contains(&table) {
            return (Some(table), predicate.trim());
        }
    }
    (None, flag.trim())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Wrapper {
        #[command(flatten)]
        export: ExportArgs,
    }

    fn parse(args: &[&str]) -> ExportArgs {
        Wrapper::try_parse_from(std::iter::once("t").chain(args.iter().copied()))
            .unwrap()
            .export
    }

    #[test]
    fn endpoints_per_signal_and_protocol() {
        let args = parse(&["--otlp-endpoint", "http://c:4318/"]);
        assert_eq!(args.otlp_protocol, OtlpProtocol::HttpProtobuf);
        assert_eq!(
            args.endpoint_for(Signal::Traces).as_deref(),
            Some("http://c:4318/v1/traces")
        );
        assert_eq!(
            args.endpoint_for(Signal::Metrics).as_deref(),
            Some("http://c:4318/v1/metrics")
        );
        let args = parse(&[
            "--otlp-endpoint",
            "http://c:4317",
            "--otlp-protocol",
            "grpc",
            "--otlp-metrics-endpoint",
            "http://m:9/x",
            "--otlp-signals",
            "traces",
        ]);
        assert_eq!(
            args.endpoint_for(Signal::Traces).as_deref(),
            Some("http://c:4317")
        );
        assert_eq!(
            args.endpoint_for(Signal::Metrics).as_deref(),
            Some("http://m:9/x")
        );
        assert!(args.exports(Signal::Traces));
        assert!(!args.exports(Signal::Metrics));
        assert!(!parse(&[]).exports(Signal::Traces));
    }

    #[test]
    fn headers_and_attributes() {
        let args = parse(&[
            "--otlp-header",
            "x-scope-orgid=tenant%201,authorization=Basic abc",
            "--otel-resource-attributes",
            "deployment.environment.name=prod",
        ]);
        assert_eq!(
            args.otlp_headers,
            [
                ("x-scope-orgid".to_string(), "tenant 1".to_string()),
                ("authorization".to_string(), "Basic abc".to_string())
            ]
        );
        assert_eq!(
            args.otel_resource_attributes,
            [(
                "deployment.environment.name".to_string(),
                "prod".to_string()
            )]
        );
        assert!(Wrapper::try_parse_from(["t", "--otlp-header", "novalue"]).is_err());
        assert!(Wrapper::try_parse_from(["t", "--otlp-protocol", "http/json"]).is_err());
    }

    #[test]
    fn filters_split_on_known_tables() {
        let tables = ["http_events", "dns_events"];
        assert_eq!(
            split_filter("http_events: resp_status >= 500", &tables),
            (Some("http_events"), "resp_status >= 500")
        );
        assert_eq!(split_filter("latency > 5", &tables), (None, "latency > 5"));
        assert_eq!(
            split_filter("req_path = 'a:b'", &tables),
            (None, "req_path = 'a:b'")
        );
        assert_eq!(percent_decode("a%2Cb%zz%"), "a,b%zz%");
    }
}
