//! Typed row structs, as the capture side produces them, and the Arrow
//! builders that turn them into record batches for the store. The same
//! typed rows go on to the exporter, so nothing is read back from Arrow.

mod builder_room;
pub mod column;
mod conn;
mod probes;
mod table;
mod tables;

pub use builder_room::FinishKeepingRoom;
pub use column::{ColumnValue, RedisArgs, headers_to_json};
pub use conn::{ConnColumnsBuilder, ConnFields, K8sFields, TraceRole, conn_string_type};
pub use probes::{ProbeStatusRow, probe_status_batch, probe_status_schema};
pub use table::{TableBuilder, TableRow};
pub use tables::{
    ConnStatsBuilder, ConnStatsRow, DnsEventsBuilder, DnsRow, HttpEventsBuilder, HttpRow,
    MysqlEventsBuilder, MysqlRow, PgsqlEventsBuilder, PgsqlRow, RedisEventsBuilder, RedisRow,
    conn_stats_schema, dns_events_schema, http_events_schema, mysql_events_schema,
    pgsql_events_schema, redis_events_schema,
};
