//! gRPC calls (HTTP/2 rows) as operations, by the RPC semantic conventions:
//! span name `package.Service/Method`; `rpc.system`, `rpc.service`,
//! `rpc.method`, `rpc.grpc.status_code` (the attributes every tracing
//! backend reads today), with the newer `rpc.system.name` and
//! `rpc.response.status_code` beside them; the duration in the current
//! conventions' `rpc.server.call.duration` / `rpc.client.call.duration`
//! histograms (seconds, like every other RED histogram of Sonde).
//!
//! Errors as the conventions say: a client span fails on any status but OK;
//! a server span only on the statuses that mean the server failed
//! (UNKNOWN, DEADLINE_EXCEEDED, UNIMPLEMENTED, INTERNAL, UNAVAILABLE,
//! DATA_LOSS), not on a status that answers a bad request (NOT_FOUND...).

use opentelemetry::KeyValue;
use sonde_query::records::HttpRow;

use super::super::trace_context::remote_parent;
use super::http::{authority, host_header};
use super::{Histogram, Operation, Role};

/// Describes `row` as a gRPC call if it is one (an HTTP/2 row with a gRPC
/// content type or status and a `/package.Service/Method` path); false
/// otherwise.
pub(super) fn describe(row: &HttpRow, op: &mut Operation) -> bool {
    let grpc_content = row
        .content_type
        .get(..16)
        .is_some_and(|p| p.eq_ignore_ascii_case("application/grpc"));
    if row.major_version != 2 || !(grpc_content || row.grpc_status.is_some()) {
        return false;
    }
    let Some((service, method)) = split_path(&row.req_path) else {
        return false;
    };
    op.parent = remote_parent(&row.req_headers);
    op.name = format!("{service}/{method}");
    let status = row.grpc_status;
    let status_name = status.map(status_name);
    let mut common = vec![
        KeyValue::new("rpc.system", "grpc"),
        KeyValue::new("rpc.service", service.to_string()),
        KeyValue::new("rpc.method", method.to_string()),
    ];
    if let Some(code) = status {
        common.push(KeyValue::new("rpc.grpc.status_code", code));
    }
    op.attributes.extend(common.iter().cloned());
    op.attributes.push(KeyValue::new("rpc.system.name", "grpc"));
    if let Some(name) = status_name {
        op.attributes
            .push(KeyValue::new("rpc.response.status_code", name));
    }
    op.attributes
        .push(KeyValue::new("network.protocol.name", "http"));
    op.attributes
        .push(KeyValue::new("network.protocol.version", "2"));
    let (host, host_port) = host_header(authority(row));
    let failed = match (op.role, status) {
        (_, None) | (_, Some(0)) => false,
        (Role::Server, Some(code)) => SERVER_ERRORS.contains(&code),
        (_, Some(_)) => true,
    };
    if failed {
        op.error = status_name.map(str::to_string);
    }
    op.addressed = true;
    let histogram = match op.role {
        Role::Server => {
            op.attributes.push(KeyValue::new(
                "server.address",
                host.unwrap_or(&row.conn.local_addr).to_string(),
            ));
            op.attributes.push(KeyValue::new(
                "server.port",
                host_port.unwrap_or(row.conn.local_port),
            ));
            op.attributes.push(KeyValue::new(
                "client.address",
                row.conn.remote_addr.clone(),
            ));
            op.attributes
                .push(KeyValue::new("client.port", row.conn.remote_port));
            Some(Histogram::RpcServer)
        }
        Role::Client | Role::Unknown => {
            let address = host.unwrap_or(&row.conn.remote_addr).to_string();
            let port = host_port.unwrap_or(row.conn.remote_port);
            op.attributes
                .push(KeyValue::new("server.address", address.clone()));
            op.attributes.push(KeyValue::new("server.port", port));
            common.push(KeyValue::new("server.address", address));
            common.push(KeyValue::new("server.port", port));
            (op.role == Role::Client).then_some(Histogram::RpcClient)
        }
    };
    op.metric = histogram.map(|h| (h, common));
    true
}

/// Statuses that make a server span an error.
const SERVER_ERRORS: [i64; 6] = [2, 4, 12, 13, 14, 15];

/// `("package.Service", "Method")` of `/package.Service/Method`.
fn split_path(path: &str) -> Option<(&str, &str)> {
    let (service, method) = path.strip_prefix('/')?.split_once('/')?;
    (!service.is_empty() && !method.is_empty() && !method.contains('/'))
        .then_some((service, method))
}

/// The name of a gRPC status code (grpc/doc/statuscodes.md).
fn status_name(code: i64) -> &'static str {
    match code {
        0 => "OK",
        1 => "CANCELLED",
        2 => "UNKNOWN",
        3 => "INVALID_ARGUMENT",
        4 => "DEADLINE_EXCEEDED",
        5 => "NOT_FOUND",
        6 => "ALREADY_EXISTS",
        7 => "PERMISSION_DENIED",
        8 => "RESOURCE_EXHAUSTED",
        9 => "FAILED_PRECONDITION",
        10 => "ABORTED",
        11 => "OUT_OF_RANGE",
        12 => "UNIMPLEMENTED",
        13 => "INTERNAL",
        14 => "UNAVAILABLE",
        15 => "DATA_LOSS",
        16 => "UNAUTHENTICATED",
        _ => "_OTHER",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_statuses() {
        assert_eq!(split_path("/demo.Echo/Unary"), Some(("demo.Echo", "Unary")));
        assert_eq!(split_path("/Echo/Unary"), Some(("Echo", "Unary")));
        assert_eq!(split_path("/a/b/c"), None);
        assert_eq!(split_path("/a/"), None);
        assert_eq!(split_path("a/b"), None);
        assert_eq!(status_name(5), "NOT_FOUND");
        assert_eq!(status_name(99), "_OTHER");
    }
}
