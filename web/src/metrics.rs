//! `/metrics`: the agent's counters plus table store gauges, in the
//! Prometheus text exposition format.

use std::fmt::Write as _;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use sonde_query::TableStats;

use crate::AppState;

pub(crate) const CONTENT_TYPE: &str = "text/plain; version=0.0.4";

pub(crate) async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let mut text = state.stats.render_prometheus();
    if let Some(store) = state.engine.store() {
        render_store_gauges(&mut text, &store.table_stats());
    }
    for source in &state.extra_metrics {
        source.render_prometheus(&mut text);
    }
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], text)
}

type Gauge = (&'static str, &'static str, fn(&TableStats) -> usize);

const GAUGES: &[Gauge] = &[
    ("sonde_table_rows", "Rows held in the table store", |t| {
        t.rows
    }),
    ("sonde_table_bytes", "Bytes held in the table store", |t| {
        t.bytes
    }),
    (
        "sonde_table_budget_bytes",
        "Byte budget of the table",
        |t| t.budget_bytes,
    ),
    (
        "sonde_table_batches",
        "Record batches held in the table store",
        |t| t.batches,
    ),
];

fn render_store_gauges(out: &mut String, tables: &[TableStats]) {
    for (name, help, value) in GAUGES {
        // Writing to a String cannot fail.
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} gauge");
        for table in tables {
            let _ = writeln!(
                out,
                "{name}{{table=\"{}\"}} {}",
                escape_label(&table.name),
                value(table)
            );
        }
    }
}

/// Label value escaping required by the exposition format.
fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gauges_per_table() {
        let mut out = String::new();
        let table = TableStats {
            name: "a\"b".into(),
            rows: 3,
            bytes: 100,
            budget_bytes: 1000,
            batches: 1,
            evicted_rows: 0,
            evicted_batches: 0,
        };
        render_store_gauges(&mut out, &[table]);
        assert_eq!(
            out,
            "# HELP sonde_table_rows Rows held in the table store\n\
             # TYPE sonde_table_rows gauge\n\
             sonde_table_rows{table=\"a\\\"b\"} 3\n\
             # HELP sonde_table_bytes Bytes held in the table store\n\
             # TYPE sonde_table_bytes gauge\n\
             sonde_table_bytes{table=\"a\\\"b\"} 100\n\
             # HELP sonde_table_budget_bytes Byte budget of the table\n\
             # TYPE sonde_table_budget_bytes gauge\n\
             sonde_table_budget_bytes{table=\"a\\\"b\"} 1000\n\
             # HELP sonde_table_batches Record batches held in the table store\n\
             # TYPE sonde_table_batches gauge\n\
             sonde_table_batches{table=\"a\\\"b\"} 1\n"
        );
    }
}
