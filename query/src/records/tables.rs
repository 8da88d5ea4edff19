//! Row structs, Arrow builders and schemas of the DNS, MySQL, Redis,
//! PostgreSQL and connection tables, generated from one column list each so that a row's
//! fields, its builder and its schema cannot drift apart.

use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanBuilder, Int64Builder, StringBuilder};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;

use super::conn::{ConnColumnsBuilder, ConnFields};
use crate::schema::common_fields;

/// A value type a protocol table column can hold after the common columns.
trait ColumnValue {
    type Builder: Default;
    const DATA_TYPE: DataType;
    /// Whether the column may hold nulls (`Option` values).
    const NULLABLE: bool = false;
    fn append_to(&self, builder: &mut Self::Builder);
    /// Length of the value for the approximate-bytes accounting.
    fn value_bytes(&self) -> usize;
}

impl ColumnValue for String {
    type Builder = StringBuilder;
    const DATA_TYPE: DataType = DataType::Utf8;
    fn append_to(&self, builder: &mut StringBuilder) {
        builder.append_value(self);
    }
    fn value_bytes(&self) -> usize {
        self.len() + 4
    }
}

impl ColumnValue for i64 {
    type Builder = Int64Builder;
    const DATA_TYPE: DataType = DataType::Int64;
    fn append_to(&self, builder: &mut Int64Builder) {
        builder.append_value(*self);
    }
    fn value_bytes(&self) -> usize {
        8
    }
}

impl ColumnValue for Option<String> {
    type Builder = StringBuilder;
    const DATA_TYPE: DataType = DataType::Utf8;
    const NULLABLE: bool = true;
    fn append_to(&self, builder: &mut StringBuilder) {
        builder.append_option(self.as_deref());
    }
    fn value_bytes(&self) -> usize {
        self.as_ref().map_or(0, String::len) + 4
    }
}

impl ColumnValue for Option<i64> {
    type Builder = Int64Builder;
    const DATA_TYPE: DataType = DataType::Int64;
    const NULLABLE: bool = true;
    fn append_to(&self, builder: &mut Int64Builder) {
        builder.append_option(*self);
    }
    fn value_bytes(&self) -> usize {
        8
    }
}

impl ColumnValue for bool {
    type Builder = BooleanBuilder;
    const DATA_TYPE: DataType = DataType::Boolean;
    fn append_to(&self, builder: &mut BooleanBuilder) {
        builder.append_value(*self);
    }
    fn value_bytes(&self) -> usize {
        1
    }
}

macro_rules! protocol_table {
    (
        $(#[$doc:meta])*
        table $table:literal, row $row:ident, builder $builder:ident, schema $schema_fn:ident {
            $($(#[$field_doc:meta])* $field:ident : $ty:ty),* $(,)?
        }
    ) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq)]
        pub struct $row {
            /// Unix epoch nanoseconds (response time, or the event's for one-sided rows).
            pub time_ns: i64,
            pub conn: ConnFields,
            $($(#[$field_doc])* pub $field: $ty,)*
        }

        #[doc = concat!("The Arrow schema of `", $table, "`.")]
        pub fn $schema_fn() -> SchemaRef {
            let mut fields = common_fields();
            $(fields.push(Field::new(
                stringify!($field),
                <$ty as ColumnValue>::DATA_TYPE,
                <$ty as ColumnValue>::NULLABLE,
            ));)*
            Arc::new(Schema::new(fields))
        }

        #[doc = concat!("Accumulates rows into `", $table, "` record batches.")]
        #[derive(Debug)]
        pub struct $builder {
            conn: ConnColumnsBuilder,
            $($field: <$ty as ColumnValue>::Builder,)*
            // Named apart from any column (a table has a `rows` column).
            pending_rows: usize,
            pending_bytes: usize,
        }

        impl Default for $builder {
            fn default() -> Self {
                Self::new()
            }
        }

        impl $builder {
            pub fn new() -> Self {
                Self {
                    conn: ConnColumnsBuilder::new(),
                    $($field: Default::default(),)*
                    pending_rows: 0,
                    pending_bytes: 0,
                }
            }

            pub fn append(&mut self, row: &$row) {
                self.pending_bytes += self.conn.append(row.time_ns, &row.conn);
                $(
                    row.$field.append_to(&mut self.$field);
                    self.pending_bytes += row.$field.value_bytes();
                )*
                self.pending_rows += 1;
            }

            pub fn len(&self) -> usize {
                self.pending_rows
            }

            pub fn is_empty(&self) -> bool {
                self.pending_rows == 0
            }

            /// Approximate size of the pending rows' data.
            pub fn approx_bytes(&self) -> usize {
                self.pending_bytes
            }

            /// Returns the pending rows as a batch and resets the builder.
            pub fn finish(&mut self) -> RecordBatch {
                let mut columns: Vec<ArrayRef> = self.conn.finish();
                $(columns.push(Arc::new(self.$field.finish()));)*
                self.pending_rows = 0;
                self.pending_bytes = 0;
                RecordBatch::try_new($schema_fn(), columns)
                    .expect(concat!($table, " columns are built from the same list as its schema"))
            }
        }
    };
}

protocol_table! {
    /// One DNS query paired with its response (JSON columns as in Pixie's dns_events).
    table "dns_events", row DnsRow, builder DnsEventsBuilder, schema dns_events_schema {
        /// Query header: txid, flags, counts.
        req_header: String,
        /// `{"queries":[{"name","type"}]}`
        req_body: String,
        resp_header: String,
        /// `{"answers":[{"name","type","ttl","data"}]}`
        resp_body: String,
        /// Nanoseconds from the query to the response.
        latency: i64,
    }
}

protocol_table! {
    /// One MySQL command and its response.
    table "mysql_events", row MysqlRow, builder MysqlEventsBuilder, schema mysql_events_schema {
        /// Command name, e.g. `COM_QUERY`, `COM_STMT_EXECUTE`.
        req_cmd: String,
        /// Statement text (with bound parameters for executes).
        req_body: String,
        /// `OK`, `ERR`, `RESULTSET` or `NONE` (commands without a response).
        resp_status: String,
        /// Affected rows, error code and message, or result-set size.
        resp_body: String,
        /// Nanoseconds from the command to the end of its response.
        latency: i64,
    }
}

protocol_table! {
    /// One Redis command and its reply, or a server push (`req_cmd` = `PUSH`).
    table "redis_events", row RedisRow, builder RedisEventsBuilder, schema redis_events_schema {
        /// Command, upper case; two-word commands joined (`CLIENT SETNAME`).
        req_cmd: String,
        /// Arguments as a JSON array of strings (secrets redacted).
        req_args: String,
        /// The reply, rendered compactly.
        resp: String,
        /// True when the reply is an error (`-ERR ...`, a blob error).
        resp_error: bool,
        /// Nanoseconds from the command to its reply (0 for pushes).
        latency: i64,
    }
}

protocol_table! {
    /// One PostgreSQL exchange: a statement of a simple query, an Execute
    /// of the extended protocol (with its bound parameters), a login, a
    /// COPY, or what the server sent on its own (notices, notifications).
    table "pgsql_events", row PgsqlRow, builder PgsqlEventsBuilder, schema pgsql_events_schema {
        /// `Query`, `Execute`, `Parse`/`Bind`/`Describe`/`Close` (when they
        /// fail), `CopyIn`, `CopyOut`, `Startup`, `SSLRequest`,
        /// `CancelRequest`, `Terminate`, `Notice`, `Notification`, `Error`.
        req_cmd: String,
        /// Statement text; for `Execute` with its parameters
        /// (`... -- params: [42, 'abc']`); for `Startup` the login's
        /// parameters. Passwords are never shown.
        req: String,
        /// CommandComplete tag (`INSERT 0 1`), `SEVERITY: message` of an
        /// error, `OK (SCRAM-SHA-256)` of a login; COPY adds its byte count.
        resp: String,
        /// SQLSTATE of an error; null on success.
        sqlstate: Option<String>,
        /// Rows affected or returned (from the tag); null when it has none.
        rows: Option<i64>,
        /// User and database of the connection's StartupMessage ("" when
        /// the capture began after it).
        db_user: String,
        db_name: String,
        /// Nanoseconds from the request to the end of its response.
        latency: i64,
    }
}

protocol_table! {
    /// A connection's traffic: one row when it closes (or its process exits),
    /// and one every reporting interval while it stays open.
    table "conn_stats", row ConnStatsRow, builder ConnStatsBuilder, schema conn_stats_schema {
        /// `tcp` or `udp`.
        transport: String,
        /// `http`, `dns`, `mysql`, `redis`, or `unknown`.
        protocol: String,
        /// Unix ns when the agent first saw the connection.
        conn_open_ns: i64,
        /// Unix ns of the close, 0 while open.
        conn_close_ns: i64,
        /// Cumulative bytes the traced process sent / received on it.
        bytes_sent: i64,
        bytes_recv: i64,
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::Int64Type;

    use super::*;
    use crate::records::TraceRole;

    fn conn() -> ConnFields {
        ConnFields {
            upid: "7:100".into(),
            pid: 7,
            comm: "redis-cli".into(),
            remote_addr: "127.0.0.1".into(),
            remote_port: 6379,
            local_addr: "127.0.0.1".into(),
            local_port: 50000,
            trace_role: TraceRole::Client,
            encrypted: false,
            k8s: Default::default(),
        }
    }

    #[test]
    fn builder_columns_match_the_schema() {
        let mut builder = RedisEventsBuilder::new();
        builder.append(&RedisRow {
            time_ns: 5,
            conn: conn(),
            req_cmd: "SET".into(),
            req_args: "[\"k\",\"v\"]".into(),
            resp: "OK".into(),
            resp_error: false,
            latency: 1234,
        });
        assert_eq!(builder.len(), 1);
        assert!(builder.approx_bytes() > 0);
        let batch = builder.finish();
        assert!(builder.is_empty());
        assert_eq!(batch.schema(), redis_events_schema());
        assert_eq!(
            batch
                .column_by_name("req_cmd")
                .unwrap()
                .as_string::<i32>()
                .value(0),
            "SET"
        );
        assert_eq!(
            batch
                .column_by_name("latency")
                .unwrap()
                .as_primitive::<Int64Type>()
                .value(0),
            1234
        );
        let names: Vec<String> = mysql_events_schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        assert_eq!(
            names[17..],
            ["req_cmd", "req_body", "resp_status", "resp_body", "latency"].map(String::from)
        );
        let names: Vec<String> = dns_events_schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        assert_eq!(
            names[17..],
            [
                "req_header",
                "req_body",
                "resp_header",
                "resp_body",
                "latency"
            ]
            .map(String::from)
        );
        assert_eq!(
            conn_stats_schema().fields().last().unwrap().name(),
            "bytes_recv"
        );
    }

    #[test]
    fn pgsql_events_has_nullable_sqlstate_and_rows() {
        let schema = pgsql_events_schema();
        let tail: Vec<(&str, bool)> = schema.fields()[17..]
            .iter()
            .map(|f| (f.name().as_str(), f.is_nullable()))
            .collect();
        assert_eq!(
            tail,
            [
                ("req_cmd", false),
                ("req", false),
                ("resp", false),
                ("sqlstate", true),
                ("rows", true),
                ("db_user", false),
                ("db_name", false),
                ("latency", false),
            ]
        );
        let mut builder = PgsqlEventsBuilder::new();
        for (sqlstate, rows) in [(None, Some(3)), (Some("42P01".to_string()), None)] {
            builder.append(&PgsqlRow {
                time_ns: 1,
                conn: conn(),
                req_cmd: "Query".into(),
                req: "SELECT 1".into(),
                resp: "SELECT 1".into(),
                sqlstate,
                rows,
                db_user: "u".into(),
                db_name: "d".into(),
                latency: 5,
            });
        }
        let batch = builder.finish();
        assert_eq!(batch.schema(), schema);
        let sqlstate = batch.column_by_name("sqlstate").unwrap().as_string::<i32>();
        assert!(sqlstate.is_null(0));
        assert_eq!(sqlstate.value(1), "42P01");
        let rows = batch
            .column_by_name("rows")
            .unwrap()
            .as_primitive::<Int64Type>();
        assert_eq!((rows.value(0), rows.is_null(1)), (3, true));
    }
}
