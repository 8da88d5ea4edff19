//! A SQL predicate over one table's rows, evaluated batch by batch: the edge
//! filter that decides which rows leave the node (e.g. as spans), written
//! like a WHERE clause (`latency > 100000000 OR resp_status >= 500`).

use std::sync::Arc;

use arrow::array::{Array, AsArray, BooleanArray};
use arrow::compute::{filter_record_batch, prep_null_mask_filter};
use arrow::datatypes::{DataType, SchemaRef};
use arrow::record_batch::RecordBatch;
use datafusion::common::DFSchema;
use datafusion::logical_expr::ExprSchemable;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::prelude::SessionContext;

#[derive(Debug, thiserror::Error)]
pub enum RowFilterError {
    /// The predicate does not parse, names an unknown column, or is not boolean.
    #[error("invalid filter `{predicate}` for {table}: {reason}")]
    Invalid {
        table: String,
        predicate: String,
        reason: String,
    },
    /// Evaluating a valid predicate failed on a batch (e.g. a cast overflow).
    #[error("filter `{predicate}` failed: {reason}")]
    Evaluation { predicate: String, reason: String },
}

/// A compiled predicate for batches of one schema.
#[derive(Debug, Clone)]
pub struct RowFilter {
    predicate: String,
    expr: Arc<dyn PhysicalExpr>,
}

impl RowFilter {
    /// Parses and plans `predicate` against `schema` once; errors name the
    /// table so a bad flag is reported clearly at startup.
    pub fn compile(
        table: &str,
        schema: SchemaRef,
        predicate: &str,
    ) -> Result<Self, RowFilterError> {
        let invalid = |reason: String| RowFilterError::Invalid {
            table: table.to_string(),
            predicate: predicate.to_string(),
            reason,
        };
        let df_schema = DFSchema::try_from(schema).map_err(|e| invalid(e.to_string()))?;
        let context = SessionContext::new();
        let expr = context
            .parse_sql_expr(predicate, &df_schema)
            .map_err(|e| invalid(e.strip_backtrace()))?;
        let data_type = expr
            .get_type(&df_schema)
            .map_err(|e| invalid(e.strip_backtrace()))?;
        if data_type != DataType::Boolean {
            return Err(invalid(format!(
                "the predicate is {data_type}, not boolean"
            )));
        }
        let expr = context
            .create_physical_expr(expr, &df_schema)
            .map_err(|e| invalid(e.strip_backtrace()))?;
        Ok(Self {
            predicate: predicate.to_string(),
            expr,
        })
    }

    pub fn predicate(&self) -> &str {
        &self.predicate
    }

    /// The rows for which the predicate is true (null counts as false).
    pub fn apply(&self, batch: &RecordBatch) -> Result<RecordBatch, RowFilterError> {
        let mask = self.matches(batch)?;
        filter_record_batch(batch, &mask).map_err(|e| self.failed(e.to_string()))
    }

    /// One value per row of `batch`: whether the predicate holds (a null
    /// result is false). Never null itself.
    pub fn matches(&self, batch: &RecordBatch) -> Result<BooleanArray, RowFilterError> {
        let mask = self
            .expr
            .evaluate(batch)
            .and_then(|value| value.into_array(batch.num_rows()))
            .map_err(|e| self.failed(e.strip_backtrace()))?;
        let Some(mask) = mask.as_boolean_opt() else {
            return Err(self.failed(format!("evaluated to {}", mask.data_type())));
        };
        // prep_null_mask_filter needs a null buffer to fold.
        Ok(if mask.null_count() > 0 {
            prep_null_mask_filter(mask)
        } else {
            mask.clone()
        })
    }

    fn failed(&self, reason: String) -> RowFilterError {
        RowFilterError::Evaluation {
            predicate: self.predicate.clone(),
            reason,
        }
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{Field, Schema};

    use super::*;

    fn batch() -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("req_path", DataType::Utf8, false),
            Field::new("resp_status", DataType::Int64, false),
            Field::new("latency", DataType::Int64, true),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(vec!["/a", "/b", "/c", "/d"])),
                Arc::new(Int64Array::from(vec![200, 503, 200, 404])),
                Arc::new(Int64Array::from(vec![Some(5), Some(1), Some(900), None])),
            ],
        )
        .unwrap()
    }

    #[test]
    fn keeps_matching_rows() {
        let batch = batch();
        let filter = RowFilter::compile(
            "http_events",
            batch.schema(),
            "latency > 100 OR resp_status >= 500",
        )
        .unwrap();
        let kept = filter.apply(&batch).unwrap();
        let paths: Vec<&str> = kept.column(0).as_string::<i32>().iter().flatten().collect();
        assert_eq!(paths, ["/b", "/c"]);
    }

    #[test]
    fn null_is_false() {
        let batch = batch();
        let filter = RowFilter::compile("t", batch.schema(), "latency < 10").unwrap();
        assert_eq!(filter.apply(&batch).unwrap().num_rows(), 2);
        let mask = filter.matches(&batch).unwrap();
        assert_eq!(mask.null_count(), 0);
        assert_eq!(
            mask.iter().flatten().collect::<Vec<_>>(),
            [true, true, false, false]
        );
        let filter = RowFilter::compile(
            "t",
            batch.schema(),
            "req_path LIKE '/%' AND resp_status <> 200",
        )
        .unwrap();
        assert_eq!(filter.apply(&batch).unwrap().num_rows(), 2);
    }

    #[test]
    fn bad_predicates_are_clear_errors() {
        let schema = batch().schema();
        let err = RowFilter::compile("dns_events", schema.clone(), "nope > 1").unwrap_err();
        assert!(err.to_string().contains("dns_events"), "{err}");
        assert!(err.to_string().contains("nope"), "{err}");
        let err = RowFilter::compile("t", schema.clone(), "latency + 1").unwrap_err();
        assert!(err.to_string().contains("not boolean"), "{err}");
        let err = RowFilter::compile("t", schema, "latency >").unwrap_err();
        assert!(matches!(err, RowFilterError::Invalid { .. }), "{err}");
    }
}
