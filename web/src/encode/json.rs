//! `{"columns":[{"name","type"}],"rows":[[...]],"truncated":bool}`, written
//! straight from the Arrow arrays (no intermediate JSON values), plus
//! `"warnings":["..."]` when the answer has any (nodes of the cluster that
//! did not answer, with partial results allowed).
//!
//! Cells: integers and floats as numbers (NaN and infinities as null),
//! strings, booleans, null; timestamps as RFC 3339 in UTC with nanoseconds
//! (a timestamp without time zone is taken to be UTC); anything else as
//! Arrow's display string.

use arrow::array::{
    Array, ArrowPrimitiveType, AsArray, BooleanArray, LargeStringArray, StringArray,
    StringViewArray,
};
use arrow::datatypes::{
    ArrowTimestampType, DataType, Float16Type, Float32Type, Float64Type, Int8Type, Int16Type,
    Int32Type, Int64Type, TimeUnit, TimestampMicrosecondType, TimestampMillisecondType,
    TimestampNanosecondType, TimestampSecondType, UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use arrow::temporal_conversions::as_datetime;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use serde::Serialize;
use serde::ser::{SerializeSeq, SerializeStruct, Serializer};
use sonde_query::QueryResult;

use super::EncodeError;

const RFC3339_NANOS: &str = "%Y-%m-%dT%H:%M:%S%.9fZ";

pub(super) fn encode(result: &QueryResult) -> Result<Vec<u8>, EncodeError> {
    let options = FormatOptions::default();
    let batches = result
        .batches
        .iter()
        .map(|batch| BatchEncoder::try_new(batch, &options))
        .collect::<Result<Vec<_>, ArrowError>>()
        .map_err(|source| EncodeError::Arrow {
            format: "JSON",
            source,
        })?;
    let columns = result
        .schema
        .fields()
        .iter()
        .map(|field| Column {
            name: field.name(),
            data_type: field.data_type().to_string(),
        })
        .collect();
    let body = Body {
        columns,
        rows: Rows(&batches),
        truncated: result.truncated,
        warnings: &result.warnings,
    };
    Ok(serde_json::to_vec(&body)?)
}

#[derive(Serialize)]
struct Column<'a> {
    name: &'a str,
    #[serde(rename = "type")]
    data_type: String,
}

struct Body<'e, 'a> {
    columns: Vec<Column<'a>>,
    rows: Rows<'e, 'a>,
    truncated: bool,
    warnings: &'a [String],
}

impl Serialize for Body<'_, '_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let fields = if self.warnings.is_empty() { 3 } else { 4 };
        let mut body = serializer.serialize_struct("Body", fields)?;
        body.serialize_field("columns", &self.columns)?;
        body.serialize_field("rows", &self.rows)?;
        body.serialize_field("truncated", &self.truncated)?;
        if !self.warnings.is_empty() {
            body.serialize_field("warnings", &self.warnings)?;
        }
        body.end()
    }
}

struct Rows<'e, 'a>(&'e [BatchEncoder<'a>]);

impl Serialize for Rows<'_, '_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let total = self.0.iter().map(|batch| batch.rows).sum();
        let mut rows = serializer.serialize_seq(Some(total))?;
        for batch in self.0 {
            for row in 0..batch.rows {
                rows.serialize_element(&Row {
                    columns: &batch.columns,
                    row,
                })?;
            }
        }
        rows.end()
    }
}

struct Row<'e, 'a> {
    columns: &'e [ColumnEncoder<'a>],
    row: usize,
}

impl Serialize for Row<'_, '_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut cells = serializer.serialize_seq(Some(self.columns.len()))?;
        for column in self.columns {
            cells.serialize_element(&Cell {
                column,
                row: self.row,
            })?;
        }
        cells.end()
    }
}

struct BatchEncoder<'a> {
    rows: usize,
    columns: Vec<ColumnEncoder<'a>>,
}

impl<'a> BatchEncoder<'a> {
    fn try_new(batch: &'a RecordBatch, options: &FormatOptions<'a>) -> Result<Self, ArrowError> {
        let columns = batch
            .columns()
            .iter()
            .map(|array| ColumnEncoder::try_new(array.as_ref(), options))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            rows: batch.num_rows(),
            columns,
        })
    }
}

/// How one column's cells are written. Accessors are plain functions over
/// `&dyn Array`, chosen once per column from its type.
struct ColumnEncoder<'a> {
    array: &'a dyn Array,
    kind: Kind<'a>,
}

enum Kind<'a> {
    Null,
    Bool(&'a BooleanArray),
    Signed(fn(&dyn Array, usize) -> i64),
    Unsigned(fn(&dyn Array, usize) -> u64),
    Float(fn(&dyn Array, usize) -> f64),
    Utf8(&'a StringArray),
    LargeUtf8(&'a LargeStringArray),
    Utf8View(&'a StringViewArray),
    /// RFC 3339 text, or the raw value when outside chrono's range.
    Timestamp(fn(&dyn Array, usize) -> Result<String, i64>),
    Display(ArrayFormatter<'a>),
}

impl<'a> ColumnEncoder<'a> {
    fn try_new(array: &'a dyn Array, options: &FormatOptions<'a>) -> Result<Self, ArrowError> {
        let kind = match array.data_type() {
            DataType::Null => Kind::Null,
            DataType::Boolean => Kind::Bool(array.as_boolean()),
            DataType::Int8 => Kind::Signed(signed::<Int8Type>),
            DataType::Int16 => Kind::Signed(signed::<Int16Type>),
            DataType::Int32 => Kind::Signed(signed::<Int32Type>),
            DataType::Int64 => Kind::Signed(signed::<Int64Type>),
            DataType::UInt8 => Kind::Unsigned(unsigned::<UInt8Type>),
            DataType::UInt16 => Kind::Unsigned(unsigned::<UInt16Type>),
            DataType::UInt32 => Kind::Unsigned(unsigned::<UInt32Type>),
            DataType::UInt64 => Kind::Unsigned(unsigned::<UInt64Type>),
            DataType::Float16 => Kind::Float(float::<Float16Type>),
            DataType::Float32 => Kind::Float(float::<Float32Type>),
            DataType::Float64 => Kind::Float(float::<Float64Type>),
            DataType::Utf8 => Kind::Utf8(array.as_string::<i32>()),
            DataType::LargeUtf8 => Kind::LargeUtf8(array.as_string::<i64>()),
            DataType::Utf8View => Kind::Utf8View(array.as_string_view()),
            DataType::Timestamp(TimeUnit::Second, _) => {
                Kind::Timestamp(timestamp::<TimestampSecondType>)
            }
            DataType::Timestamp(TimeUnit::Millisecond, _) => {
                Kind::Timestamp(timestamp::<TimestampMillisecondType>)
            }
            DataType::Timestamp(TimeUnit::Microsecond, _) => {
                Kind::Timestamp(timestamp::<TimestampMicrosecondType>)
            }
            DataType::Timestamp(TimeUnit::Nanosecond, _) => {
                Kind::Timestamp(timestamp::<TimestampNanosecondType>)
            }
            _ => Kind::Display(ArrayFormatter::try_new(array, options)?),
        };
        Ok(Self { array, kind })
    }
}

fn signed<T: ArrowPrimitiveType>(array: &dyn Array, row: usize) -> i64
where
    T::Native: Into<i64>,
{
    array.as_primitive::<T>().value(row).into()
}

fn unsigned<T: ArrowPrimitiveType>(array: &dyn Array, row: usize) -> u64
where
    T::Native: Into<u64>,
{
    array.as_primitive::<T>().value(row).into()
}

fn float<T: ArrowPrimitiveType>(array: &dyn Array, row: usize) -> f64
where
    T::Native: Into<f64>,
{
    array.as_primitive::<T>().value(row).into()
}

fn timestamp<T: ArrowTimestampType>(array: &dyn Array, row: usize) -> Result<String, i64> {
    let value = array.as_primitive::<T>().value(row);
    // The stored value is the UTC instant whatever the column's time zone.
    match as_datetime::<T>(value) {
        Some(datetime) => Ok(datetime.format(RFC3339_NANOS).to_string()),
        None => Err(value),
    }
}

struct Cell<'e, 'a> {
    column: &'e ColumnEncoder<'a>,
    row: usize,
}

impl Serialize for Cell<'_, '_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let Cell { column, row } = *self;
        if column.array.is_null(row) {
            return serializer.serialize_none();
        }
        let array = column.array;
        match &column.kind {
            Kind::Null => serializer.serialize_none(),
            Kind::Bool(values) => serializer.serialize_bool(values.value(row)),
            Kind::Signed(value) => serializer.serialize_i64(value(array, row)),
            Kind::Unsigned(value) => serializer.serialize_u64(value(array, row)),
            Kind::Float(value) => match value(array, row) {
                v if v.is_finite() => serializer.serialize_f64(v),
                _ => serializer.serialize_none(),
            },
            Kind::Utf8(values) => serializer.serialize_str(values.value(row)),
            Kind::LargeUtf8(values) => serializer.serialize_str(values.value(row)),
            Kind::Utf8View(values) => serializer.serialize_str(values.value(row)),
            Kind::Timestamp(value) => match value(array, row) {
                Ok(text) => serializer.serialize_str(&text),
                Err(raw) => serializer.serialize_i64(raw),
            },
            Kind::Display(formatter) => serializer.collect_str(&formatter.value(row)),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{
        ArrayRef, Date32Array, Float64Array, Int8Array, ListArray, NullArray,
        TimestampNanosecondArray, TimestampSecondArray, UInt64Array,
    };
    use arrow::datatypes::{Field, Schema};
    use serde_json::{Value, json};

    use super::*;

    fn encode_columns(columns: Vec<(&str, ArrayRef)>, truncated: bool) -> Value {
        let batch = RecordBatch::try_from_iter(columns).unwrap();
        let result = QueryResult {
            schema: batch.schema(),
            batches: vec![batch],
            truncated,
            warnings: Vec::new(),
        };
        serde_json::from_slice(&encode(&result).unwrap()).unwrap()
    }

    #[test]
    fn cells_by_type() {
        let list =
            ListArray::from_iter_primitive::<Int64Type, _, _>([Some(vec![Some(1), Some(2)]), None]);
        let body = encode_columns(
            vec![
                ("i8", Arc::new(Int8Array::from(vec![Some(-3), None]))),
                ("u64", Arc::new(UInt64Array::from(vec![u64::MAX, 0]))),
                ("f", Arc::new(Float64Array::from(vec![1.5, f64::NAN]))),
                (
                    "ts",
                    Arc::new(
                        TimestampNanosecondArray::from(vec![1_795_296_600_123_456_789, -1])
                            .with_timezone("UTC"),
                    ),
                ),
                (
                    "ts_s",
                    Arc::new(TimestampSecondArray::from(vec![0, i64::MAX])),
                ),
                ("d", Arc::new(Date32Array::from(vec![0, 1]))),
                ("l", Arc::new(list)),
                ("n", Arc::new(NullArray::new(2))),
            ],
            true,
        );
        assert_eq!(
            body,
            json!({
                "columns": [
                    {"name": "i8", "type": "Int8"},
                    {"name": "u64", "type": "UInt64"},
                    {"name": "f", "type": "Float64"},
                    {"name": "ts", "type": "Timestamp(ns, \"UTC\")"},
                    {"name": "ts_s", "type": "Timestamp(s)"},
                    {"name": "d", "type": "Date32"},
                    {"name": "l", "type": "List(Int64)"},
                    {"name": "n", "type": "Null"},
                ],
                "rows": [
                    [-3, u64::MAX, 1.5, "2026-11-21T21:30:00.123456789Z", "1970-01-01T00:00:00.000000000Z",
                     "1970-01-01", "[1, 2]", null],
                    [null, 0, null, "1969-12-31T23:59:59.999999999Z", i64::MAX, "1970-01-02", null, null],
                ],
                "truncated": true,
            })
        );
    }

    #[test]
    fn empty_result_keeps_columns() {
        let schema = Arc::new(Schema::new(vec![Field::new("a", DataType::Utf8, true)]));
        let result = QueryResult {
            schema,
            batches: vec![],
            truncated: false,
            warnings: vec!["partial results: n2 did not answer".to_owned()],
        };
        let body: Value = serde_json::from_slice(&encode(&result).unwrap()).unwrap();
        assert_eq!(
            body,
            json!({"columns": [{"name": "a", "type": "Utf8"}], "rows": [], "truncated": false,
                   "warnings": ["partial results: n2 did not answer"]})
        );
    }
}
