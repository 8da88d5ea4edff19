//! Table names and Arrow schemas. Names and column order follow Pixie's
//! socket-tracer tables so that queries written for Pixie carry over.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

pub const HTTP_EVENTS: &str = "http_events";
pub const DNS_EVENTS: &str = "dns_events";
pub const MYSQL_EVENTS: &str = "mysql_events";
pub const REDIS_EVENTS: &str = "redis_events";
pub const PGSQL_EVENTS: &str = "pgsql_events";
pub const CONN_STATS: &str = "conn_stats";
pub const CAPTURE_STATS: &str = "capture_stats";
pub const PROBE_STATUS: &str = "probe_status";

pub use crate::records::{
    conn_stats_schema, dns_events_schema, http_events_schema, mysql_events_schema,
    pgsql_events_schema, probe_status_schema, redis_events_schema,
};

/// Every table an agent serves, with its schema (what the coordinator
/// expects on every node).
pub fn all_tables() -> Vec<(&'static str, SchemaRef)> {
    vec![
        (HTTP_EVENTS, http_events_schema()),
        (DNS_EVENTS, dns_events_schema()),
        (MYSQL_EVENTS, mysql_events_schema()),
        (REDIS_EVENTS, redis_events_schema()),
        (PGSQL_EVENTS, pgsql_events_schema()),
        (CONN_STATS, conn_stats_schema()),
        (CAPTURE_STATS, capture_stats_schema()),
        (PROBE_STATUS, probe_status_schema()),
    ]
}

/// Name of the event-time column every table has; the store prunes on it.
pub const TIME_COLUMN: &str = "time_";

/// Type of `time_`: nanoseconds since the Unix epoch, UTC.
pub fn time_type() -> DataType {
    DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into()))
}

/// The columns every protocol table starts with, in order: `time_` (the
/// response's time, or the event's for one-sided rows) and the connection's
/// identity. DNS/MySQL/Redis tables reuse these.
pub fn common_fields() -> Vec<Field> {
    let string = crate::records::conn_string_type;
    vec![
        Field::new(TIME_COLUMN, time_type(), false),
        Field::new("upid", string(), false),
        Field::new("pid", DataType::UInt32, false),
        Field::new("comm", string(), false),
        Field::new("remote_addr", string(), false),
        Field::new("remote_port", DataType::Int64, false),
        Field::new("local_addr", string(), false),
        Field::new("local_port", DataType::Int64, false),
        Field::new("trace_role", string(), false),
        Field::new("encrypted", DataType::Boolean, false),
    ]
    .into_iter()
    .chain(
        K8S_COLUMNS
            .iter()
            .map(|name| Field::new(*name, string(), true)),
    )
    .collect()
}

/// Kubernetes columns after the connection's identity; null outside Kubernetes.
pub const K8S_COLUMNS: [&str; 7] = [
    "pod",
    "namespace",
    "container",
    "node",
    "service",
    "remote_pod",
    "remote_service",
];

/// `latency` is the last column of every protocol table (nanoseconds).
pub fn capture_stats_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new(TIME_COLUMN, time_type(), false),
        Field::new("name", DataType::Utf8, false),
        Field::new("value", DataType::Int64, false),
        node_field(),
    ]))
}

/// The last column of the agent's own tables (`capture_stats`,
/// `probe_status`): the node that counted or attached ([`crate::node`]).
pub fn node_field() -> Field {
    Field::new("node", DataType::Utf8, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(schema: &Schema) -> Vec<&str> {
        schema.fields().iter().map(|f| f.name().as_str()).collect()
    }

    #[test]
    fn http_events_columns_in_pixie_order() {
        let schema = http_events_schema();
        assert_eq!(
            names(&schema),
            [
                "time_",
                "upid",
                "pid",
                "comm",
                "remote_addr",
                "remote_port",
                "local_addr",
                "local_port",
                "trace_role",
                "encrypted",
                "pod",
                "namespace",
                "container",
                "node",
                "service",
                "remote_pod",
                "remote_service",
                "major_version",
                "minor_version",
                "content_type",
                "req_headers",
                "req_method",
                "req_path",
                "req_body",
                "req_body_size",
                "resp_headers",
                "resp_status",
                "resp_message",
                "resp_body",
                "resp_body_size",
                "grpc_status",
                "grpc_message",
                "latency",
            ]
        );
        // Only the Kubernetes columns (outside Kubernetes) and the gRPC ones
        // (other HTTP) may be null.
        assert!(schema.fields().iter().all(|f| f.is_nullable()
            == (K8S_COLUMNS.contains(&f.name().as_str()) || f.name().starts_with("grpc_"))));
        assert_eq!(schema.field(0).data_type(), &time_type());
        assert_eq!(schema.field(2).data_type(), &DataType::UInt32);
    }

    #[test]
    fn capture_stats_columns() {
        let schema = capture_stats_schema();
        assert_eq!(names(&schema), ["time_", "name", "value", "node"]);
        // Only the node may be null (rows built before it is known).
        assert!(
            schema
                .fields()
                .iter()
                .all(|f| f.is_nullable() == K8S_COLUMNS.contains(&f.name().as_str()))
        );
    }
}
