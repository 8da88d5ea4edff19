//! PostgreSQL rows as operations: the SQL operation name, the sanitised
//! statement, the SQLSTATE of an error.

use opentelemetry::KeyValue;
use sonde_query::records::PgsqlRow;

use super::super::query_text::{sanitize_sql, sql_operation};
use super::{Exchange, Operation, SeriesInputs, database};

impl Exchange for PgsqlRow {
    fn latency_ns(&self) -> i64 {
        self.latency
    }

    fn describe(&self, op: &mut Operation) -> Option<()> {
        describe(self, op);
        Some(())
    }

    /// The command and the statement without its bound parameters (the
    /// operation's name), and the SQLSTATE (the error type).
    fn series_inputs(&self) -> Option<SeriesInputs<'_>> {
        Some(SeriesInputs::new(
            &self.conn,
            [
                Some(self.req_cmd.as_str()),
                Some(statement(&self.req)),
                self.sqlstate.as_deref(),
                None,
            ],
            [0; 5],
        ))
    }
}

/// The statement of a request: Execute's text ends with its bound
/// parameters, which are never exported.
fn statement(req: &str) -> &str {
    req.split_once(" -- params: ")
        .map_or(req, |(statement, _)| statement)
}

fn describe(row: &PgsqlRow, op: &mut Operation) {
    let command = row.req_cmd.as_str();
    let has_text = matches!(command, "Query" | "Execute" | "Parse");
    let text = statement(&row.req);
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
