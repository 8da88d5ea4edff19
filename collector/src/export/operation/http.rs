//! HTTP rows as operations: `GET /users/{id}`, the HTTP semantic
//! conventions' attributes, trace context from the request's headers. gRPC
//! calls (HTTP/2 rows with a gRPC content type or status) follow the RPC
//! conventions instead (`grpc.rs`).

use opentelemetry::KeyValue;
use sonde_protocols::http::header_value;
use sonde_query::records::HttpRow;

use super::super::route::route_template;
use super::super::trace_context::remote_parent;
use super::{Exchange, Histogram, Operation, Role, grpc};

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
}

fn describe(row: &HttpRow, op: &mut Operation) {
    let header = |name: &str| header_value(&row.req_headers, name);
    op.parent = remote_parent(&row.req_headers);
    let raw_method = row.req_method.as_str();
    let method = if KNOWN_METHODS.contains(&raw_method) {
        raw_method
    } else {
        "_OTHER"
    };
    let target = row.req_path.as_str();
    let path = target.split(['?', '#']).next().unwrap_or(target);
    let route = route_template(target);
    let status = row.resp_status;
    // "1.1", "1.0"; HTTP/2 is "2".
    let version = if row.major_version >= 2 {
        row.major_version.to_string()
    } else {
        format!("{}.{}", row.major_version, row.minor_version)
    };
    let scheme = if row.conn.encrypted { "https" } else { "http" };
    op.name = if method == "_OTHER" {
        "HTTP".to_string()
    } else {
        format!("{method} {route}")
    };
    let attrs = &mut op.attributes;
    attrs.push(KeyValue::new("http.request.method", method.to_string()));
    if method != raw_method {
        attrs.push(KeyValue::new(
            "http.request.method_original",
            raw_method.to_string(),
        ));
    }
    attrs.push(KeyValue::new("url.path", path.to_string()));
    attrs.push(KeyValue::new("url.scheme", scheme));
    attrs.push(KeyValue::new("network.protocol.version", version.clone()));
    if status > 0 {
        attrs.push(KeyValue::new("http.response.status_code", status));
    }
    attrs.push(KeyValue::new("http.request.body.size", row.req_body_size));
    attrs.push(KeyValue::new("http.response.body.size", row.resp_body_size));
    if let Some(agent) = header("user-agent") {
        attrs.push(KeyValue::new("user_agent.original", agent.to_string()));
    }
    let (host, host_port) = host_header(authority(row));
    let mut metric_attrs = vec![
        KeyValue::new("http.request.method", method.to_string()),
        KeyValue::new("url.scheme", scheme),
        KeyValue::new("network.protocol.version", version),
    ];
    if status > 0 {
        metric_attrs.push(KeyValue::new("http.response.status_code", status));
    }
    let histogram = match op.role {
        Role::Server => {
            attrs.push(KeyValue::new("http.route", route.clone()));
            metric_attrs.push(KeyValue::new("http.route", route));
            let port = host_port.unwrap_or(row.conn.local_port);
            attrs.push(KeyValue::new(
                "server.address",
                host.unwrap_or(&row.conn.local_addr).to_string(),
            ));
            attrs.push(KeyValue::new("server.port", port));
            attrs.push(KeyValue::new(
                "client.address",
                row.conn.remote_addr.clone(),
            ));
            attrs.push(KeyValue::new("client.port", row.conn.remote_port));
            if status >= 500 {
                op.error = Some(status.to_string());
            }
            Some(Histogram::HttpServer)
        }
        Role::Client | Role::Unknown => {
            attrs.push(KeyValue::new("url.template", route));
            let address = host.unwrap_or(&row.conn.remote_addr).to_string();
            let port = host_port.unwrap_or(row.conn.remote_port);
            attrs.push(KeyValue::new("server.address", address.clone()));
            attrs.push(KeyValue::new("server.port", port));
            metric_attrs.push(KeyValue::new("server.address", address));
            metric_attrs.push(KeyValue::new("server.port", port));
            if status >= 400 {
                op.error = Some(status.to_string());
            }
            (op.role == Role::Client).then_some(Histogram::HttpClient)
        }
    };
    op.metric = histogram.map(|h| (h, metric_attrs));
}

/// The request's authority: HTTP/2's `:authority` (kept first in the
/// headers), else the Host header.
pub(super) fn authority(row: &HttpRow) -> Option<&str> {
    header_value(&row.req_headers, ":authority").or_else(|| header_value(&row.req_headers, "host"))
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
