//! Read access to one row of a table batch by column name. Batches come
//! from the agent's own builders, but a missing or differently typed column
//! reads as empty/zero rather than panicking.

use arrow::array::{Array, AsArray};
use arrow::datatypes::{Int64Type, TimestampNanosecondType, UInt32Type};
use arrow::record_batch::RecordBatch;

pub struct RowView<'a> {
    batch: &'a RecordBatch,
    row: usize,
}

impl<'a> RowView<'a> {
    pub fn new(batch: &'a RecordBatch, row: usize) -> Self {
        Self { batch, row }
    }

    fn column(&self, name: &str) -> Option<&'a dyn Array> {
        let column = self.batch.column_by_name(name)?;
        (self.row < column.len() && column.is_valid(self.row)).then_some(column.as_ref())
    }

    /// A Utf8 value; None when null or absent.
    pub fn opt_str(&self, name: &str) -> Option<&'a str> {
        Some(self.column(name)?.as_string_opt::<i32>()?.value(self.row))
    }

    pub fn str(&self, name: &str) -> &'a str {
        self.opt_str(name).unwrap_or("")
    }

    pub fn i64(&self, name: &str) -> i64 {
        self.column(name)
            .and_then(|c| c.as_primitive_opt::<Int64Type>())
            .map_or(0, |a| a.value(self.row))
    }

    pub fn u32(&self, name: &str) -> u32 {
        self.column(name)
            .and_then(|c| c.as_primitive_opt::<UInt32Type>())
            .map_or(0, |a| a.value(self.row))
    }

    pub fn bool(&self, name: &str) -> bool {
        self.column(name)
            .and_then(|c| c.as_boolean_opt())
            .is_some_and(|a| a.value(self.row))
    }

    /// `time_` in Unix nanoseconds.
    pub fn time_ns(&self) -> i64 {
        self.column(sonde_query::schema::TIME_COLUMN)
            .and_then(|c| c.as_primitive_opt::<TimestampNanosecondType>())
            .map_or(0, |a| a.value(self.row))
    }
}
