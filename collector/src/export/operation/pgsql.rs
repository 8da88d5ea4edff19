//! PostgreSQL rows as operations: the SQL operation name, the sanitised
//! statement, the SQLSTATE of an error.

use opentelemetry::KeyValue;
use sonde_query::records::PgsqlRow;

use super::super::query_text::{sanitize_sql, sql_operation};
use super::{Exchange, Operation, database};

impl Exchange for PgsqlRow {
    fn latency_ns(&self) -> i64 {
        self.latency
    }

    fn describe(&self, op: &mut Operation) -> Option<()> {
        describe(self, op);
        Some(())
    }
}

fn describe(row: &PgsqlRow, op: &mut Operation) {
    let command = row.req_cmd.as_str();
    let has_text = matches!(command, "Query" | "Execute" | "Parse");
    // Execute's text ends with its bound parameters: never exported.
    let text = row
        .req
        .split_once(" -- params: ")
        .map_or(row.req.as_str(), |(statement, _)| statement);
    let operation =
        if has_text { sql_operation(text) } else { None }.unwrap_or_else(|| command.to_string());
    database(op, "postgresql", &operation);
    if !row.db_name.is_empty() {
        op.attributes
            .push(KeyValue::new("db.namespace", row.db_name.clone()));
    }
    if has_text && !text.is_empty() {
        op.attributes
            .push(KeyValue::new("db.query.text", sanitize_sql(text)));
    }
    if let Some(sqlstate) = &row.sqlstate {
        op.attributes
            .push(KeyValue::new("db.response.status_code", sqlstate.clone()));
        op.error = Some(sqlstate.clone());
    }
}
