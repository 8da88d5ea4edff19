//! MySQL rows as operations: the SQL operation name, the sanitised
//! statement, the error code of an ERR.

use opentelemetry::KeyValue;
use sonde_protocols::mysql::MysqlStatus;
use sonde_query::records::MysqlRow;

use super::super::query_text::{sanitize_sql, sql_operation};
use super::{Exchange, Operation, SeriesInputs, database};

impl Exchange for MysqlRow {
    fn latency_ns(&self) -> i64 {
        self.latency
    }

    fn describe(&self, op: &mut Operation) -> Option<()> {
        describe(self, op);
        Some(())
    }

    /// The command and statement (the operation's name), and an ERR's body
    /// (its code is the error type).
    fn series_inputs(&self) -> Option<SeriesInputs<'_>> {
        let failed = self.resp_status == MysqlStatus::Err;
        Some(SeriesInputs::new(
            &self.conn,
            [
                Some(self.req_cmd.as_str()),
                Some(self.req_body.as_str()),
                failed.then_some(self.resp_body.as_str()),
                None,
            ],
            [0; 5],
        ))
    }
}

fn describe(row: &MysqlRow, op: &mut Operation) {
    let command = row.req_cmd.as_str();
    let text = row.req_body.as_str();
    let has_text = matches!(
        command,
        "COM_QUERY" | "COM_STMT_PREPARE" | "COM_STMT_EXECUTE"
    );
    let operation = if has_text { sql_operation(text) } else { None }
        .unwrap_or_else(|| command.trim_start_matches("COM_").to_string());
    database(op, "mysql", &operation);
    if has_text && !text.is_empty() {
        op.attributes
            .push(KeyValue::new("db.query.text", sanitize_sql(text)));
    }
    if row.resp_status == MysqlStatus::Err {
        let body = row.resp_body.as_str();
        let code: String = body.chars().take_while(char::is_ascii_digit).collect();
        if !code.is_empty() {
            op.attributes
                .push(KeyValue::new("db.response.status_code", code.clone()));
        }
        op.error = Some(if code.is_empty() {
            "ERR".to_string()
        } else {
            code
        });
    }
}
