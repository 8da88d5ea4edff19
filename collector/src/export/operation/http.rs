//! HTTP rows as operations: `GET /users/{id}`, the HTTP semantic
//! conventions' attributes, trace context from the request's headers. gRPC
//! calls (HTTP/2 rows with a gRPC content type or status) follow the RPC
//! conventions instead (`grpc.rs`).

use opentelemetry::KeyValue;
use sonde_query::records::{HttpRow, TraceRole};

use super::super::route::{request_path, route_template};
use super::super::trace_context::remote_parent;
use super::{Exchange, Histogram, Operation, Role, SeriesInputs, grpc};

const KNOWN_METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
];

impl Exchange for HttpRow {
    fn latency_ns(&self) -> i64 {
        self.latency
    }

    fn describe(&self, op: &mut Operation) -> Option<()> {
        if !grpc::describe(self, op) {
            describe(self, op);
        }
        Some(())
    }

    /// The connection (role, addresses, scheme, process), version, method,
    /// path (route, gRPC service and method), status, content type and
    /// gRPC status (gRPC or not), and the authority where a metric reads
    /// it: not on server rows (HTTP and gRPC server histograms have no
    /// `server.address`), which skip the header scan.
    fn series_inputs(&self) -> Option<SeriesInputs<'_>> {
        let authority = if self.conn.trace_role == TraceRole::Server {
            None
        } else {
            authority(self)
        };
        Some(SeriesInputs::new(
            &self.conn,
            [
                Some(self.req_method.as_str()),
                Some(self.req_path.as_str()),
                Some(self.content_type.as_str()),
                authority,
            ],
            [
                self.major_version,
                self.minor_version,
                self.resp_status,
                self.grpc_status.unwrap_or_default(),
                i64::from(self.grpc_status.is_some()),
            ],
        ))
    }
}

fn describe(row: &HttpRow, op: &mut Operation) {
    let raw_method = row.req_method.as_str();
    // `_OTHER` for unknown methods; a known one is static (no allocation).
    let method = KNOWN_METHODS
        .iter()
        .find(|&&m| m == raw_method)
        .copied()
        .unwrap_or("_OTHER");
    let path = request_path(row.req_path.as_str());
    let route = route_template(path);
    let status = row.resp_status;
    // "1.1", "1.0"; HTTP/2 is "2".
    let version = match (row.major_version, row.minor_version) {
        (1, 1) => "1.1",
        (1, 0) => "1.0",
        (2, _) => "2",
        _ => "",
    };
    let version = if version.is_empty() {
        KeyValue::new(
            "network.protocol.version",
            format!("{}.{}", row.major_version, row.minor_version),
        )
    } else {
        KeyValue::new("network.protocol.version", version)
    };
    let scheme = if row.conn.encrypted { "https" } else { "http" };
    // The authority names the server: the client histogram's series and
    // the spans need it, the server histogram does not. Left unread for a
    // server row without a span (the default with no OTLP endpoint): the
    // header text is in memory the capture thread wrote last.
    let (host, host_port) = if op.role != Role::Server || op.spans {
        host_header(authority(row))
    } else {
        (None, None)
    };
    let mut metric_attrs = Vec::with_capacity(7);
    metric_attrs.push(KeyValue::new("http.request.method", method));
    metric_attrs.push(KeyValue::new("url.scheme", scheme));
    metric_attrs.push(version.clone());
    if status > 0 {
        metric_attrs.push(KeyValue::new("http.response.status_code", status));
    }
    let (histogram, server) = match op.role {
        Role::Server => {
            metric_attrs.push(KeyValue::new("http.route", route.clone()));
            if status >= 500 {
                op.error = Some(status.to_string());
            }
            let address = host.unwrap_or(&row.conn.local_addr);
            let port = host_port.unwrap_or(row.conn.local_port);
            (Some(Histogram::HttpServer), (address, port))
        }
        Role::Client | Role::Unknown => {
            let address = host.unwrap_or(&row.conn.remote_addr);
            let port = host_port.unwrap_or(row.conn.remote_port);
            metric_attrs.push(KeyValue::new("server.address", address.to_string()));
            metric_attrs.push(KeyValue::new("server.port", port));
            if status >= 400 {
                op.error = Some(status.to_string());
            }
            (
                (op.role == Role::Client).then_some(Histogram::HttpClient),
                (address, port),
            )
        }
    };
    op.addressed = true;
    if op.spans {
        span_attributes(row, op, method, path, &route, version, server);
    }
    op.metric = histogram.map(|h| (h, metric_attrs));
}

/// What only a span carries: its name, the caller's trace context, the
/// attributes no histogram is split by.
fn span_attributes(
    row: &HttpRow,
    op: &mut Operation,
    method: &'static str,
    path: &str,
    route: &str,
    version: KeyValue,
    (server_address, server_port): (&str, i64),
) {
    let raw_method = row.req_method.as_str();
    let status = row.resp_status;
    op.parent = remote_parent(&row.req_headers);
    op.name = if method == "_OTHER" {
        "HTTP".to_string()
    } else {
        format!("{method} {route}")
    };
    let attrs = &mut op.attributes;
    attrs.push(KeyValue::new("http.request.method", method));
    if method != raw_method {
        attrs.push(KeyValue::new(
            "http.request.method_original",
            raw_method.to_string(),
        ));
    }
    attrs.push(KeyValue::new("url.path", path.to_string()));
    attrs.push(KeyValue::new(
        "url.scheme",
        if row.conn.encrypted { "https" } else { "http" },
    ));
    attrs.push(version);
    if status > 0 {
        attrs.push(KeyValue::new("http.response.status_code", status));
    }
    attrs.push(KeyValue::new("http.request.body.size", row.req_body_size));
    attrs.push(KeyValue::new("http.response.body.size", row.resp_body_size));
    if let Some(agent) = row.req_headers.get("user-agent") {
        attrs.push(KeyValue::new("user_agent.original", agent.to_string()));
    }
    match op.role {
        Role::Server => {
            attrs.push(KeyValue::new("http.route", route.to_string()));
            attrs.push(KeyValue::new("server.address", server_address.to_string()));
            attrs.push(KeyValue::new("server.port", server_port));
            attrs.push(KeyValue::new(
                "client.address",
                row.conn.remote_addr.clone(),
            ));
            attrs.push(KeyValue::new("client.port", row.conn.remote_port));
        }
        Role::Client | Role::Unknown => {
            attrs.push(KeyValue::new("url.template", route.to_string()));
            attrs.push(KeyValue::new("server.address", server_address.to_string()));
            attrs.push(KeyValue::new("server.port", server_port));
        }
    }
}

/// The request's authority: HTTP/2's `:authority` (kept first in the
/// headers), else the Host header. HTTP/1 has no pseudo-headers (a name
/// cannot hold a colon), so its rows skip a scan of every field for one.
pub(super) fn authority(row: &HttpRow) -> Option<&str> {
    let headers = &row.req_headers;
    let pseudo = if row.major_version >= 2 {
        headers.get(":authority")
    } else {
        None
    };
    pseudo.or_else(|| headers.get("host"))
}

/// `Host: name[:port]` split; bracketed IPv6 literals keep their address.
pub(super) fn host_header(value: Option<&str>) -> (Option<&str>, Option<i64>) {
    let Some(value) = value.map(str::trim).filter(|v| !v.is_empty()) else {
        return (None, None);
    };
    if let Some(rest) = value.strip_prefix('[') {
        let (addr, after) = rest.split_once(']').unwrap_or((rest, ""));
        let port = after.strip_prefix(':').and_then(|p| p.parse().ok());
        return (Some(addr), port);
    }
    match value.rsplit_once(':') {
        Some((name, port)) if !name.contains(':') => (Some(name), port.parse().ok()),
        _ => (Some(value), None),
    }
}
