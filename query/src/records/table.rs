//! `protocol_table!`: one column list per protocol table generates its row
//! struct, its Arrow schema and its builder, so the three cannot drift apart.

use arrow::record_batch::RecordBatch;

use super::ConnFields;

/// What every generated table builder offers, so code that handles rows of
/// any table (the capture side's row buffers) is written once.
pub trait TableBuilder: Default {
    /// The typed row this table is built from.
    type Row: TableRow;
    /// The table's name.
    const TABLE: &'static str;
    fn append(&mut self, row: &Self::Row);
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    fn approx_bytes(&self) -> usize;
    fn finish(&mut self) -> RecordBatch;
}

/// What every generated row offers: its time and its connection.
pub trait TableRow {
    /// Unix epoch nanoseconds.
    fn time_ns(&self) -> i64;
    /// The connection's fields, shared by all its rows.
    fn conn(&self) -> &std::sync::Arc<ConnFields>;
}

/// Declares a protocol table: `table "name", row Row, builder Builder,
/// schema schema_fn { column: Type, ... }`. Every table starts with the
/// common columns (`time_`, the connection's fields); each listed field is
/// one more column, whose Arrow type and rendering come from its
/// [`ColumnValue`](super::column::ColumnValue) implementation.
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
            /// The connection's fields, shared by all its rows.
            pub conn: std::sync::Arc<$crate::records::ConnFields>,
            $($(#[$field_doc])* pub $field: $ty,)*
        }

        impl $crate::records::TableRow for $row {
            fn time_ns(&self) -> i64 {
                self.time_ns
            }
            fn conn(&self) -> &std::sync::Arc<$crate::records::ConnFields> {
                &self.conn
            }
        }

        #[doc = concat!("The Arrow schema of `", $table, "`.")]
        pub fn $schema_fn() -> arrow::datatypes::SchemaRef {
            use $crate::records::column::ColumnValue;
            let mut fields = $crate::schema::common_fields();
            $(fields.push(arrow::datatypes::Field::new(
                stringify!($field),
                <$ty as ColumnValue>::data_type(),
                <$ty as ColumnValue>::NULLABLE,
            ));)*
            std::sync::Arc::new(arrow::datatypes::Schema::new(fields))
        }

        #[doc = concat!("Accumulates rows into `", $table, "` record batches.")]
        #[derive(Debug)]
        pub struct $builder {
            conn: $crate::records::ConnColumnsBuilder,
            $($field: <$ty as $crate::records::column::ColumnValue>::Builder,)*
            // Named apart from any column (`pgsql_events` has a `rows` column).
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
                    conn: $crate::records::ConnColumnsBuilder::new(),
                    $($field: Default::default(),)*
                    pending_rows: 0,
                    pending_bytes: 0,
                }
            }

            pub fn append(&mut self, row: &$row) {
                use $crate::records::column::ColumnValue;
                self.pending_bytes += self.conn.append(row.time_ns, &row.conn);
                $(self.pending_bytes += row.$field.append_to(&mut self.$field);)*
                self.pending_rows += 1;
            }

            /// Rows appended since the last [`finish`](Self::finish).
            pub fn len(&self) -> usize {
                self.pending_rows
            }

            pub fn is_empty(&self) -> bool {
                self.pending_rows == 0
            }

            /// Approximate size of the pending rows' data (values, offsets),
            /// not of the builders' allocated capacity.
            pub fn approx_bytes(&self) -> usize {
                self.pending_bytes
            }

            /// Returns the pending rows as a batch and resets the builder.
            pub fn finish(&mut self) -> arrow::record_batch::RecordBatch {
                use $crate::records::FinishKeepingRoom;
                let mut columns: Vec<arrow::array::ArrayRef> = self.conn.finish();
                $(columns.push(self.$field.finish_keeping_room());)*
                self.pending_rows = 0;
                self.pending_bytes = 0;
                arrow::record_batch::RecordBatch::try_new($schema_fn(), columns)
                    .expect(concat!($table, " columns are built from the same list as its schema"))
            }
        }

        impl $crate::records::TableBuilder for $builder {
            type Row = $row;
            const TABLE: &'static str = $table;
            fn append(&mut self, row: &$row) {
                $builder::append(self, row);
            }
            fn len(&self) -> usize {
                $builder::len(self)
            }
            fn approx_bytes(&self) -> usize {
                $builder::approx_bytes(self)
            }
            fn finish(&mut self) -> arrow::record_batch::RecordBatch {
                $builder::finish(self)
            }
        }
    };
}

pub(crate) use protocol_table;
