//! Redis rows as operations: the command, the query text with values
//! hidden, the error prefix of an error reply. Pushes are not exchanges.

use opentelemetry::KeyValue;
use sonde_query::records::{RedisArgs, RedisRow};

use super::super::query_text::redis_query_text;
use super::{Exchange, Operation, SeriesInputs, database};

impl Exchange for RedisRow {
    fn latency_ns(&self) -> i64 {
        self.latency
    }

    fn describe(&self, op: &mut Operation) -> Option<()> {
        describe(self, op)
    }

    /// The command (the operation's name) and an error reply (its prefix
    /// is the error type); none for a push, which is no exchange.
    fn series_inputs(&self) -> Option<SeriesInputs<'_>> {
        let RedisArgs::Command { .. } = &self.req_args else {
            return None;
        };
        Some(SeriesInputs::new(
            &self.conn,
            [
                Some(self.req_cmd.as_str()),
                self.resp_error.then_some(self.resp.as_str()),
                None,
                None,
            ],
            [0; 5],
        ))
    }
}

fn describe(row: &RedisRow, op: &mut Operation) -> Option<()> {
    let command = row.req_cmd.as_str();
    let RedisArgs::Command { args, .. } = &row.req_args else {
        // A push is not an exchange.
        return None;
    };
    database(op, "redis", command);
    op.attributes.push(KeyValue::new(
        "db.query.text",
        redis_query_text(command, args),
    ));
    if row.resp_error {
        let reply = row.resp.as_str();
        let prefix = reply.split(' ').next().unwrap_or("");
        let error = if !prefix.is_empty() && prefix.bytes().all(|b| b.is_ascii_uppercase()) {
            prefix
        } else {
            "ERR"
        };
        op.attributes
            .push(KeyValue::new("db.response.status_code", error.to_string()));
        op.error = Some(error.to_string());
    }
    Some(())
}
