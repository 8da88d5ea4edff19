//! OpenTelemetry export: spans for every captured exchange and RED metrics
//! (duration histograms), sent over OTLP (gRPC or HTTP/protobuf) and shown
//! on `/metrics`. Rows reach it from the capture thread through a bounded
//! tap; nothing here can slow capture down.

pub mod client_tls;
pub mod config;
pub mod operation;
pub mod pipeline;
pub mod query_text;
pub mod red;
pub mod route;
pub mod spans;
pub mod trace_context;

use std::collections::HashMap;
use std::sync::Arc;

use sonde_query::row_filter::RowFilter;
use sonde_query::schema::{
    DNS_EVENTS, HTTP_EVENTS, MYSQL_EVENTS, REDIS_EVENTS, dns_events_schema, http_events_schema,
    mysql_events_schema, redis_events_schema,
};
use sonde_query::stats::StatsRegistry;

pub use config::ExportArgs;
pub use pipeline::{Pipeline, ReturnedRows, RowTap};

use operation::ServiceNaming;
use pipeline::{PipelineConfig, TableFilters};
use spans::ResourceDefaults;

/// Distinct service resources the RED metrics keep (beyond: counted, not
/// recorded). With the per-histogram series cap this bounds their memory.
const MAX_METRIC_SERVICES: usize = 256;

/// The tables whose rows are exchanges (spans and RED metrics).
pub const EXPORTED_TABLES: [&str; 4] = [HTTP_EVENTS, DNS_EVENTS, MYSQL_EVENTS, REDIS_EVENTS];

fn table_schema(table: &str) -> Option<arrow::datatypes::SchemaRef> {
    Some(match table {
        HTTP_EVENTS => http_events_schema(),
        DNS_EVENTS => dns_events_schema(),
        MYSQL_EVENTS => mysql_events_schema(),
        REDIS_EVENTS => redis_events_schema(),
        _ => return None,
    })
}

/// Compiles `[TABLE:]PREDICATE` flags. A predicate without a table applies
/// to every exported table and must be valid for each of them.
pub fn compile_filters(flags: &[String]) -> anyhow::Result<TableFilters> {
    let mut filters: TableFilters = HashMap::new();
    for flag in flags {
        let (table, predicate) = config::split_filter(flag, &EXPORTED_TABLES);
        let tables: Vec<&'static str> = match table {
            Some(t) => EXPORTED_TABLES
                .iter()
                .copied()
                .filter(|x| *x == t)
                .collect(),
            None => EXPORTED_TABLES.to_vec(),
        };
        for table in tables {
            let schema = table_schema(table).expect("exported tables have schemas");
            let filter = RowFilter::compile(table, schema, predicate).map_err(|err| {
                if flag_has_no_table(flag) {
                    anyhow::anyhow!("{err} (a filter without `TABLE:` applies to every table)")
                } else {
                    anyhow::anyhow!("{err}")
                }
            })?;
            filters.entry(table).or_default().push(filter);
        }
    }
    Ok(filters)
}

fn flag_has_no_table(flag: &str) -> bool {
    config::split_filter(flag, &EXPORTED_TABLES).0.is_none()
}

/// host.name: the Kubernetes node when known, else the kernel's host name.
fn host_name(node_name: Option<&str>) -> String {
    if let Some(node) = node_name.filter(|n| !n.is_empty()) {
        return node.to_string();
    }
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown".to_string())
}

/// Starts the export pipeline from the agent's flags (RED metrics always;
/// spans and OTLP metrics when an endpoint is set).
pub fn start(
    args: &ExportArgs,
    node_name: Option<&str>,
    stats: &Arc<StatsRegistry>,
) -> anyhow::Result<Pipeline> {
    let config = PipelineConfig {
        naming: ServiceNaming {
            by_comm: args.service_names.clone(),
        },
        defaults: ResourceDefaults {
            host_name: host_name(node_name),
            extra: args.otel_resource_attributes.clone(),
        },
        traces_filters: compile_filters(&args.traces_filters)?,
        metrics_filters: compile_filters(&args.metrics_filters)?,
        max_services: MAX_METRIC_SERVICES,
    };
    Pipeline::start(args, config, stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_compile_per_table() {
        let filters = compile_filters(&[
            "http_events: resp_status >= 500".to_string(),
            "latency > 1000".to_string(),
        ])
        .unwrap();
        assert_eq!(filters[HTTP_EVENTS].len(), 2);
        assert_eq!(filters[DNS_EVENTS].len(), 1);
        assert_eq!(filters[REDIS_EVENTS][0].predicate(), "latency > 1000");
        let err = compile_filters(&["resp_status >= 500".to_string()]).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("dns_events") && text.contains("every table"),
            "{text}"
        );
    }
}
