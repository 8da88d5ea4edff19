//! Derives a `time_` range from the filters DataFusion pushes into a scan,
//! so the store can skip whole batches.
//!
//! Only conjunctions of comparisons between `time_` and a timestamp
//! constant are understood; anything else leaves the range unbounded.
//! Pruning may keep a batch that has no matching row, never drop one that
//! has; DataFusion still applies the filters to the rows, because the
//! provider reports them as `Inexact`.

use arrow::datatypes::{DataType, TimeUnit};
use datafusion::common::ScalarValue;
use datafusion::logical_expr::{Between, BinaryExpr, Expr, Operator, TableProviderFilterPushDown};

use crate::schema::TIME_COLUMN;

/// Inclusive bounds on `time_`, epoch nanoseconds; `None` is unbounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct TimeRange {
    pub(crate) min: Option<i64>,
    pub(crate) max: Option<i64>,
}

impl TimeRange {
    /// The range implied by all of `filters` holding at once.
    pub(crate) fn from_filters(filters: &[Expr]) -> Self {
        filters
            .iter()
            .filter_map(bounds)
            .fold(Self::default(), Self::intersect)
    }

    fn intersect(self, other: Self) -> Self {
        Self {
            min: max_of(self.min, other.min),
            max: min_of(self.max, other.max),
        }
    }
}

/// How a table that prunes on `time_` takes filters: `Inexact` for those
/// that bound `time_` (they prune batches; DataFusion re-applies them to the
/// rows kept), `Unsupported` for the rest. The same on an agent's store and
/// on the coordinator's cluster-wide tables.
pub(crate) fn time_filters_pushdown(filters: &[&Expr]) -> Vec<TableProviderFilterPushDown> {
    filters
        .iter()
        .map(|filter| {
            if constrains_time(filter) {
                TableProviderFilterPushDown::Inexact
            } else {
                TableProviderFilterPushDown::Unsupported
            }
        })
        .collect()
}

/// Whether `filter` bounds `time_`, i.e. whether it can prune batches.
pub(crate) fn constrains_time(filter: &Expr) -> bool {
    bounds(filter).is_some()
}

fn max_of(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

fn min_of(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The range `expr` restricts `time_` to, or `None` when it says nothing
/// usable about `time_`.
fn bounds(expr: &Expr) -> Option<TimeRange> {
    match expr {
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::And,
            right,
        }) => match (bounds(left), bounds(right)) {
            (Some(l), Some(r)) => Some(l.intersect(r)),
            (l, r) => l.or(r),
        },
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
            if is_time_column(left) {
                comparison(*op, timestamp_ns(right)?)
            } else if is_time_column(right) {
                comparison(op.swap()?, timestamp_ns(left)?)
            } else {
                None
            }
        }
        Expr::Between(Between {
            expr,
            negated: false,
            low,
            high,
        }) if is_time_column(expr) => {
            let range = TimeRange {
                min: timestamp_ns(low),
                max: timestamp_ns(high),
            };
            (range != TimeRange::default()).then_some(range)
        }
        _ => None,
    }
}

/// `time_ <op> value` as a range.
fn comparison(op: Operator, value: i64) -> Option<TimeRange> {
    match op {
        Operator::Eq => Some(TimeRange {
            min: Some(value),
            max: Some(value),
        }),
        // Times are whole nanoseconds, so `> v` is `>= v + 1`.
        Operator::Gt => Some(TimeRange {
            min: Some(value.checked_add(1)?),
            max: None,
        }),
        Operator::GtEq => Some(TimeRange {
            min: Some(value),
            max: None,
        }),
        Operator::Lt => Some(TimeRange {
            min: None,
            max: Some(value.checked_sub(1)?),
        }),
        Operator::LtEq => Some(TimeRange {
            min: None,
            max: Some(value),
        }),
        _ => None,
    }
}

/// `time_`, possibly cast to another nanosecond timestamp type (a time
/// zone change keeps the stored instant, so the values stay comparable).
fn is_time_column(expr: &Expr) -> bool {
    match expr {
        Expr::Column(column) => column.name == TIME_COLUMN,
        Expr::Cast(cast) => {
            matches!(
                cast.field.data_type(),
                DataType::Timestamp(TimeUnit::Nanosecond, _)
            ) && is_time_column(&cast.expr)
        }
        _ => false,
    }
}

/// A constant timestamp as epoch nanoseconds. Casts of constants are
/// evaluated here because filters may reach the provider before the
/// optimizer folded them.
fn timestamp_ns(expr: &Expr) -> Option<i64> {
    match expr {
        Expr::Literal(value, _) => scalar_ns(value),
        Expr::Cast(cast) => cast_literal_ns(&cast.expr, cast.field.data_type()),
        Expr::TryCast(cast) => cast_literal_ns(&cast.expr, cast.field.data_type()),
        _ => None,
    }
}

fn cast_literal_ns(expr: &Expr, to: &DataType) -> Option<i64> {
    let Expr::Literal(value, _) = expr else {
        return None;
    };
    scalar_ns(&value.cast_to(to).ok()?)
}

fn scalar_ns(value: &ScalarValue) -> Option<i64> {
    match value {
        ScalarValue::TimestampNanosecond(Some(v), _) => Some(*v),
        ScalarValue::TimestampMicrosecond(Some(v), _) => v.checked_mul(1_000),
        ScalarValue::TimestampMillisecond(Some(v), _) => v.checked_mul(1_000_000),
        ScalarValue::TimestampSecond(Some(v), _) => v.checked_mul(1_000_000_000),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::logical_expr::{cast, col, lit};

    use super::*;

    fn ts(ns: i64) -> Expr {
        lit(ScalarValue::TimestampNanosecond(
            Some(ns),
            Some(Arc::from("UTC")),
        ))
    }

    fn range(min: Option<i64>, max: Option<i64>) -> TimeRange {
        TimeRange { min, max }
    }

    #[test]
    fn comparisons_in_both_orientations() {
        assert_eq!(bounds(&col("time_").gt(ts(5))), Some(range(Some(6), None)));
        assert_eq!(
            bounds(&col("time_").gt_eq(ts(5))),
            Some(range(Some(5), None))
        );
        assert_eq!(bounds(&col("time_").lt(ts(5))), Some(range(None, Some(4))));
        assert_eq!(
            bounds(&col("time_").lt_eq(ts(5))),
            Some(range(None, Some(5)))
        );
        assert_eq!(
            bounds(&col("time_").eq(ts(5))),
            Some(range(Some(5), Some(5)))
        );
        assert_eq!(bounds(&ts(5).lt(col("time_"))), Some(range(Some(6), None)));
        assert_eq!(bounds(&col("time_").gt(ts(i64::MAX))), None);
        assert_eq!(bounds(&col("time_").not_eq(ts(5))), None);
        assert_eq!(bounds(&col("latency").gt(ts(5))), None);
        assert_eq!(bounds(&col("time_").gt(col("time_"))), None);
    }

    #[test]
    fn units_casts_between_and_conjunctions() {
        let seconds = lit(ScalarValue::TimestampSecond(Some(2), None));
        assert_eq!(
            bounds(&col("time_").gt_eq(seconds)),
            Some(range(Some(2_000_000_000), None))
        );
        let string_cast = cast(
            lit("1970-01-01T00:00:01Z"),
            DataType::Timestamp(TimeUnit::Nanosecond, None),
        );
        assert_eq!(
            bounds(&col("time_").lt(string_cast)),
            Some(range(None, Some(999_999_999)))
        );
        assert_eq!(
            bounds(&col("time_").between(ts(3), ts(9))),
            Some(range(Some(3), Some(9)))
        );
        assert_eq!(bounds(&col("time_").not_between(ts(3), ts(9))), None);
        let both = col("time_")
            .gt(ts(3))
            .and(col("latency").gt(lit(1)))
            .and(col("time_").lt(ts(9)));
        assert_eq!(bounds(&both), Some(range(Some(4), Some(8))));
        assert_eq!(
            bounds(&col("time_").gt(ts(3)).or(col("time_").lt(ts(1)))),
            None
        );
        let overflow = lit(ScalarValue::TimestampSecond(Some(i64::MAX), None));
        assert_eq!(bounds(&col("time_").gt(overflow)), None);
    }

    #[test]
    fn filters_intersect() {
        let filters = [
            col("time_").gt(ts(3)),
            col("time_").gt(ts(5)),
            col("time_").lt(ts(9)),
            col("pid").eq(lit(1)),
        ];
        assert_eq!(TimeRange::from_filters(&filters), range(Some(6), Some(8)));
        assert_eq!(TimeRange::from_filters(&[]), TimeRange::default());
        assert!(constrains_time(&filters[0]));
        assert!(!constrains_time(&filters[3]));
    }
}
