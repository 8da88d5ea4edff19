//! A DataFusion [`TableProvider`] over one store table.
//!
//! Like DataFusion's `MemTable`, it hands Arc'd record batches to a
//! [`MemorySourceConfig`] instead of implementing an `ExecutionPlan`. It
//! reads from a [`TableSnapshot`] fixed when the provider is created, so a
//! query planned against it sees one unchanging version of the table.

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::datasource::memory::{DataSourceExec, MemorySourceConfig};
use datafusion::error::Result;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown, TableType};
use datafusion::physical_plan::ExecutionPlan;

use crate::store::{TableSnapshot, TableStore};
use crate::time_filter::{TimeRange, time_filters_pushdown};

#[derive(Debug, Clone)]
pub struct StoreTableProvider {
    snapshot: TableSnapshot,
}

impl StoreTableProvider {
    /// A provider over `snapshot`.
    pub fn new(snapshot: TableSnapshot) -> Self {
        Self { snapshot }
    }

    /// A provider over the current contents of `table`; `None` if the
    /// store has no such table.
    pub fn from_store(store: &TableStore, table: &str) -> Option<Self> {
        store.table_snapshot(table).map(Self::new)
    }
}

#[async_trait]
impl TableProvider for StoreTableProvider {
    fn schema(&self) -> SchemaRef {
        self.snapshot.schema()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    /// `Inexact` for filters that bound `time_`: they prune batches, and
    /// DataFusion re-applies them to the rows of the batches kept.
    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        Ok(time_filters_pushdown(filters))
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let range = TimeRange::from_filters(filters);
        let batches = self.snapshot.scan(range.min, range.max);
        let partitions = partition(batches, state.config().target_partitions());
        let source = MemorySourceConfig::try_new(&partitions, self.schema(), projection.cloned())?
            .with_show_sizes(state.config_options().explain.show_sizes)
            .with_limit(limit);
        Ok(DataSourceExec::from_data_source(source))
    }
}

/// Splits batches into exactly `count` partitions of consecutive batches,
/// the last ones empty when there are fewer batches (a cluster scan's
/// partition count is fixed before the node knows its batches).
pub(crate) fn partition_exactly(batches: Vec<RecordBatch>, count: usize) -> Vec<Vec<RecordBatch>> {
    let count = count.max(1);
    let mut partitions = partition(batches, count);
    partitions.resize_with(count, Vec::new);
    partitions
}

/// Splits batches into at most `target` partitions of consecutive batches
/// (so each partition covers a contiguous stretch of time), for parallel
/// execution. Always returns at least one partition.
fn partition(batches: Vec<RecordBatch>, target: usize) -> Vec<Vec<RecordBatch>> {
    let count = target.clamp(1, batches.len().max(1));
    let chunk = batches.len().div_ceil(count).max(1);
    let mut partitions: Vec<Vec<RecordBatch>> = Vec::with_capacity(count);
    let mut batches = batches.into_iter().peekable();
    while batches.peek().is_some() {
        partitions.push(batches.by_ref().take(chunk).collect());
    }
    if partitions.is_empty() {
        partitions.push(Vec::new());
    }
    partitions
}

#[cfg(test)]
mod tests {
    use arrow::array::{AsArray, Int64Array, TimestampNanosecondArray};
    use arrow::datatypes::{DataType, Field, Int64Type, Schema};
    use datafusion::physical_plan::collect;
    use datafusion::prelude::SessionConfig;
    use datafusion::prelude::SessionContext;

    use super::*;
    use crate::schema::time_type;
    use crate::stats::StatsRegistry;
    use crate::store::StoreConfig;

    const SECOND: i64 = 1_000_000_000;

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("time_", time_type(), false),
            Field::new("v", DataType::Int64, false),
        ]))
    }

    fn batch(times: &[i64]) -> RecordBatch {
        RecordBatch::try_new(
            schema(),
            vec![
                Arc::new(TimestampNanosecondArray::from(times.to_vec()).with_timezone("UTC")),
                Arc::new(Int64Array::from(
                    times.iter().map(|t| t / SECOND).collect::<Vec<_>>(),
                )),
            ],
        )
        .unwrap()
    }

    /// Four batches covering seconds [0,9], [10,19], [20,29], [30,39].
    fn store() -> Arc<TableStore> {
        let store = TableStore::new(StoreConfig::default(), Arc::new(StatsRegistry::new()));
        store.register("t", schema()).unwrap();
        for start in [0, 10, 20, 30] {
            store
                .append("t", batch(&[start * SECOND, (start + 9) * SECOND]))
                .unwrap();
        }
        Arc::new(store)
    }

    /// Batches the plan's memory scan holds, and the query's `v` values.
    async fn run(sql: &str) -> (usize, Vec<i64>) {
        let ctx = SessionContext::new();
        let provider = StoreTableProvider::from_store(&store(), "t").unwrap();
        ctx.register_table("t", Arc::new(provider)).unwrap();
        let plan = ctx
            .sql(sql)
            .await
            .unwrap()
            .create_physical_plan()
            .await
            .unwrap();
        let scanned = memory_batches(&plan);
        let mut values: Vec<i64> = collect(plan, ctx.task_ctx())
            .await
            .unwrap()
            .iter()
            .flat_map(|b| b.column(0).as_primitive::<Int64Type>().values().to_vec())
            .collect();
        values.sort_unstable();
        (scanned, values)
    }

    fn memory_batches(plan: &Arc<dyn ExecutionPlan>) -> usize {
        if let Some(exec) = plan.downcast_ref::<DataSourceExec>()
            && let Some(memory) = exec.data_source().downcast_ref::<MemorySourceConfig>()
        {
            return memory.partitions().iter().map(Vec::len).sum();
        }
        plan.children().into_iter().map(memory_batches).sum()
    }

    #[tokio::test]
    async fn time_filters_prune_batches() {
        assert_eq!(
            run("SELECT v FROM t").await,
            (4, vec![0, 9, 10, 19, 20, 29, 30, 39])
        );
        assert_eq!(
            run("SELECT v FROM t WHERE time_ > to_timestamp_seconds(19)").await,
            (2, vec![20, 29, 30, 39])
        );
        assert_eq!(
            run("SELECT v FROM t WHERE time_ BETWEEN '1970-01-01T00:00:12Z' AND '1970-01-01T00:00:21Z'").await,
            (2, vec![19, 20])
        );
        assert_eq!(
            run("SELECT v FROM t WHERE time_ >= '1970-01-01T00:00:29Z' AND v < 35").await,
            (2, vec![29, 30])
        );
        // Not a time predicate: nothing pruned, rows still filtered.
        assert_eq!(run("SELECT v FROM t WHERE v = 10").await, (4, vec![10]));
        // now() is folded to a constant before pushdown.
        assert_eq!(
            run("SELECT v FROM t WHERE time_ > now() - interval '5 minutes'").await,
            (0, vec![])
        );
    }

    #[tokio::test]
    async fn projection_and_limit() {
        // One partition, so the scan limit is the row count.
        let ctx = SessionContext::new_with_config(SessionConfig::new().with_target_partitions(1));
        let provider = StoreTableProvider::from_store(&store(), "t").unwrap();
        let state = ctx.state();
        let plan = provider
            .scan(&state, Some(&vec![1]), &[], Some(3))
            .await
            .unwrap();
        assert_eq!(plan.schema().fields().len(), 1);
        assert_eq!(plan.schema().field(0).name(), "v");
        let rows: usize = collect(plan, ctx.task_ctx())
            .await
            .unwrap()
            .iter()
            .map(|b| b.num_rows())
            .sum();
        assert_eq!(rows, 3);
        assert!(StoreTableProvider::from_store(&store(), "missing").is_none());
    }

    #[test]
    fn partitions_are_contiguous_and_never_empty() {
        let b: Vec<RecordBatch> = (0..5).map(|i| batch(&[i])).collect();
        let sizes = |parts: Vec<Vec<RecordBatch>>| parts.iter().map(Vec::len).collect::<Vec<_>>();
        assert_eq!(sizes(partition(b.clone(), 2)), [3, 2]);
        assert_eq!(sizes(partition(b.clone(), 8)), [1, 1, 1, 1, 1]);
        assert_eq!(sizes(partition(b.clone(), 0)), [5]);
        assert_eq!(sizes(partition(Vec::new(), 4)), [0]);
        assert_eq!(sizes(partition_exactly(b.clone(), 2)), [3, 2]);
        assert_eq!(
            sizes(partition_exactly(b.clone(), 8)),
            [1, 1, 1, 1, 1, 0, 0, 0]
        );
        assert_eq!(sizes(partition_exactly(Vec::new(), 2)), [0, 0]);
        let first = partition(b, 2);
        assert_eq!(
            first[1][0]
                .column(0)
                .as_primitive::<arrow::datatypes::TimestampNanosecondType>()
                .value(0),
            3
        );
    }
}
