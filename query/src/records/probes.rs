//! `probe_status`: one row per probe target the agent tried to attach, with
//! the outcome, so what is (and is not) instrumented is queryable.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, StringArray, StringBuilder, TimestampNanosecondBuilder, UInt32Builder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;

use crate::schema::{TIME_COLUMN, node_field, time_type};

/// One attach attempt and its outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeStatusRow {
    /// Unix epoch nanoseconds of the attempt.
    pub time_ns: i64,
    /// `tracepoint` or `uprobe`.
    pub kind: String,
    /// What the probe is for: the program name, or the library (`openssl`).
    pub probe: String,
    /// The tracepoint (`syscalls/sys_enter_read`) or the file probed (its path
    /// as the process that mapped it sees it).
    pub target: String,
    /// The process the target was found in (0: found by the startup scan of
    /// system libraries, or not applicable).
    pub pid: u32,
    /// `attached`, `failed`, or `skipped` (not a library Sonde probes).
    pub status: String,
    /// The symbols attached, or why it failed or was skipped.
    pub detail: String,
}

/// The Arrow schema of `probe_status`.
pub fn probe_status_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new(TIME_COLUMN, time_type(), false),
        Field::new("kind", DataType::Utf8, false),
        Field::new("probe", DataType::Utf8, false),
        Field::new("target", DataType::Utf8, false),
        Field::new("pid", DataType::UInt32, false),
        Field::new("status", DataType::Utf8, false),
        Field::new("detail", DataType::Utf8, false),
        node_field(),
    ]))
}

/// A `probe_status` batch of `rows`, stamped with this process's node
/// ([`crate::node::local`]).
pub fn probe_status_batch(rows: &[ProbeStatusRow]) -> RecordBatch {
    let mut time = TimestampNanosecondBuilder::new().with_timezone("UTC");
    let mut pid = UInt32Builder::new();
    let mut text: [StringBuilder; 5] = Default::default();
    for row in rows {
        time.append_value(row.time_ns);
        pid.append_value(row.pid);
        let values = [&row.kind, &row.probe, &row.target, &row.status, &row.detail];
        for (builder, value) in text.iter_mut().zip(values) {
            builder.append_value(value);
        }
    }
    let [mut kind, mut probe, mut target, mut status, mut detail] = text;
    let columns: Vec<ArrayRef> = vec![
        Arc::new(time.finish()),
        Arc::new(kind.finish()),
        Arc::new(probe.finish()),
        Arc::new(target.finish()),
        Arc::new(pid.finish()),
        Arc::new(status.finish()),
        Arc::new(detail.finish()),
        Arc::new(StringArray::from(vec![crate::node::local(); rows.len()])),
    ];
    RecordBatch::try_new(probe_status_schema(), columns)
        .expect("probe_status columns match their schema")
}

#[cfg(test)]
mod tests {
    use arrow::array::AsArray;
    use arrow::datatypes::UInt32Type;

    use super::*;

    #[test]
    fn rows_land_in_schema_order() {
        let rows = vec![
            ProbeStatusRow {
                time_ns: 7,
                kind: "uprobe".into(),
                probe: "openssl".into(),
                target: "/usr/lib/x86_64-linux-gnu/libssl.so.3".into(),
                pid: 0,
                status: "attached".into(),
                detail: "SSL_write SSL_read".into(),
            },
            ProbeStatusRow {
                time_ns: 8,
                kind: "uprobe".into(),
                probe: "openssl".into(),
                target: "/opt/app".into(),
                pid: 42,
                status: "failed".into(),
                detail: "no such file".into(),
            },
        ];
        // The one name every test of this crate sets.
        crate::node::set_local("n1").unwrap();
        let batch = probe_status_batch(&rows);
        assert_eq!(batch.num_rows(), 2);
        assert_eq!(batch.column(7).as_string::<i32>().value(1), "n1");
        let names: Vec<&str> = batch
            .schema_ref()
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect();
        assert_eq!(
            names,
            [
                "time_", "kind", "probe", "target", "pid", "status", "detail", "node"
            ]
        );
        assert_eq!(batch.column(3).as_string::<i32>().value(1), "/opt/app");
        assert_eq!(batch.column(4).as_primitive::<UInt32Type>().value(1), 42);
        assert_eq!(batch.column(5).as_string::<i32>().value(0), "attached");
        assert_eq!(
            batch.column(6).as_string::<i32>().value(0),
            "SSL_write SSL_read"
        );
    }
}
