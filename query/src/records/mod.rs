//! Plain row structs, as the capture side produces them, and the Arrow
//! builders that turn them into record batches for the store.

mod conn;
mod http;
mod probes;
mod tables;

pub use conn::{ConnColumnsBuilder, ConnFields, K8sFields, TraceRole};
pub use http::{HttpEventsBuilder, HttpRow, headers_to_json};
pub use probes::{ProbeStatusRow, probe_status_batch, probe_status_schema};
pub use tables::{
    ConnStatsBuilder, ConnStatsRow, DnsEventsBuilder, DnsRow, MysqlEventsBuilder, MysqlRow,
    PgsqlEventsBuilder, PgsqlRow, RedisEventsBuilder, RedisRow, conn_stats_schema,
    dns_events_schema, mysql_events_schema, pgsql_events_schema, redis_events_schema,
};
