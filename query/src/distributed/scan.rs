//! Reading a table on every node.
//!
//! On the coordinator, a table is a [`ClusterTable`] whose scan is a
//! [`ClusterScanExec`] plan node describing the scan (which columns, which
//! `time_` range, how many rows at most) without running it. The planner (see [`super::planning`]) replaces it
//! with one variant per node, each naming the node that must run it, and
//! sends each node its variant. There the [`ScanCodec`] turns the variant
//! into a scan of a snapshot of that node's own store — the same memory
//! scan a local query runs — so rows never leave the node they were
//! captured on except as results.

use std::fmt;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::datasource::memory::{DataSourceExec, MemorySourceConfig};
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown, TableType};
use datafusion::physical_expr::{EquivalenceProperties, Partitioning, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};
use datafusion_proto::physical_plan::{PhysicalExtensionCodec, PhysicalProtoConverterExtension};
use serde::{Deserialize, Serialize};

use crate::provider::partition_exactly;
use crate::store::TableStore;
use crate::time_filter::{TimeRange, time_filters_pushdown};

/// Partitions each node's scan is split into (the agents' query threads).
pub(crate) const SCAN_PARTITIONS: usize = crate::executor::DEFAULT_QUERY_THREADS;

/// A table as the coordinator sees it: the same schema on every node.
#[derive(Debug, Clone)]
pub(crate) struct ClusterTable {
    name: String,
    schema: SchemaRef,
}

impl ClusterTable {
    pub(crate) fn new(name: &str, schema: SchemaRef) -> Self {
        Self {
            name: name.to_owned(),
            schema,
        }
    }
}

#[async_trait]
impl TableProvider for ClusterTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    /// As on an agent: `time_` bounds prune batches on each node, and are
    /// applied again to the rows.
    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        Ok(time_filters_pushdown(filters))
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let range = TimeRange::from_filters(filters);
        let request = ScanRequest {
            table: self.name.clone(),
            projection: projection.cloned(),
            min_ns: range.min,
            max_ns: range.max,
            limit,
            target: ScanTarget::Unassigned,
        };
        Ok(Arc::new(ClusterScanExec::try_new(request, &self.schema)?))
    }
}

/// Which node runs a scan variant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum ScanTarget {
    /// Planned, not yet split over the nodes: cannot run.
    Unassigned,
    /// The node's own rows.
    Node { name: String, url: String },
    /// No rows: a task beyond the nodes (see `planning`).
    Empty,
}

/// What a node needs to scan its part of a table; the payload of the codec.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ScanRequest {
    table: String,
    projection: Option<Vec<usize>>,
    min_ns: Option<i64>,
    max_ns: Option<i64>,
    limit: Option<usize>,
    pub(crate) target: ScanTarget,
}

/// The coordinator's plan node for a table scan on the nodes: the planner
/// turns it into one scan per node; run as is (a query shape the planner
/// cannot split), it refuses with an error instead of reading anything.
#[derive(Debug, Clone)]
pub(crate) struct ClusterScanExec {
    request: ScanRequest,
    properties: Arc<PlanProperties>,
}

impl ClusterScanExec {
    /// `table_schema` is the whole table's; the exec's is its projection.
    fn try_new(request: ScanRequest, table_schema: &SchemaRef) -> Result<Self> {
        let schema = match &request.projection {
            Some(columns) => Arc::new(table_schema.project(columns)?),
            None => Arc::clone(table_schema),
        };
        let properties = PlanProperties::new(
            EquivalenceProperties::new(schema),
            Partitioning::UnknownPartitioning(SCAN_PARTITIONS),
            EmissionType::Incremental,
            Boundedness::Bounded,
        );
        Ok(Self {
            request,
            properties: Arc::new(properties),
        })
    }

    pub(crate) fn request(&self) -> &ScanRequest {
        &self.request
    }

    /// The same scan, run by `target`.
    pub(crate) fn for_target(&self, target: ScanTarget) -> Self {
        Self {
            request: ScanRequest {
                target,
                ..self.request.clone()
            },
            properties: Arc::clone(&self.properties),
        }
    }
}

impl DisplayAs for ClusterScanExec {
    fn fmt_as(&self, _format: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let request = &self.request;
        write!(f, "ClusterScanExec: table={}", request.table)?;
        match &request.target {
            ScanTarget::Unassigned => {}
            ScanTarget::Node { name, .. } => write!(f, ", node={name}")?,
            ScanTarget::Empty => write!(f, ", node=none")?,
        }
        if request.min_ns.is_some() || request.max_ns.is_some() {
            write!(f, ", time_ns={:?}..={:?}", request.min_ns, request.max_ns)?;
        }
        if let Some(limit) = request.limit {
            write!(f, ", limit={limit}")?;
        }
        Ok(())
    }
}

impl ExecutionPlan for ClusterScanExec {
    fn name(&self) -> &str {
        "ClusterScanExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        Vec::new()
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        _children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(self)
    }

    /// Never runs where it was planned: the node it is sent to decodes it
    /// into a scan of its own store ([`ScanCodec`]).
    fn execute(
        &self,
        _partition: usize,
        _context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        Err(DataFusionError::Internal(format!(
            "the scan of {} was not sent to the nodes; this query shape cannot run over the cluster",
            self.request.table
        )))
    }
}

/// Encodes scans on the coordinator; on an agent (with its store),
/// decodes them into scans of the local store.
#[derive(Debug, Clone, Default)]
pub(crate) struct ScanCodec {
    store: Option<Arc<TableStore>>,
}

impl ScanCodec {
    /// The coordinator's: encodes only.
    pub(crate) fn coordinator() -> Self {
        Self { store: None }
    }

    /// An agent's: decodes into scans of `store`.
    pub(crate) fn worker(store: Arc<TableStore>) -> Self {
        Self { store: Some(store) }
    }
}

impl PhysicalExtensionCodec for ScanCodec {
    fn try_decode(
        &self,
        buf: &[u8],
        inputs: &[Arc<dyn ExecutionPlan>],
        _ctx: &TaskContext,
        _proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let Some(store) = &self.store else {
            return Err(DataFusionError::Internal(
                "a table scan can only be decoded on an agent".to_owned(),
            ));
        };
        if !inputs.is_empty() {
            return Err(DataFusionError::Internal(format!(
                "a table scan has no inputs, got {}",
                inputs.len()
            )));
        }
        let request: ScanRequest = serde_json::from_slice(buf).map_err(|err| {
            DataFusionError::Internal(format!("cannot decode a table scan: {err}"))
        })?;
        local_scan(store, &request)
    }

    fn try_encode(
        &self,
        node: Arc<dyn ExecutionPlan>,
        buf: &mut Vec<u8>,
        _proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> Result<()> {
        let Some(scan) = node.downcast_ref::<ClusterScanExec>() else {
            return Err(DataFusionError::Internal(format!(
                "cannot encode {}: only table scans have a codec",
                node.name()
            )));
        };
        if scan.request.target == ScanTarget::Unassigned {
            return Err(DataFusionError::Internal(format!(
                "the scan of {} was not assigned to a node",
                scan.request.table
            )));
        }
        serde_json::to_writer(buf, &scan.request)
            .map_err(|err| DataFusionError::Internal(format!("cannot encode a table scan: {err}")))
    }
}

/// The agent's side: a memory scan of a snapshot of its own table, taken
/// now (once per query fragment), in [`SCAN_PARTITIONS`] partitions of
/// consecutive batches.
fn local_scan(store: &TableStore, request: &ScanRequest) -> Result<Arc<dyn ExecutionPlan>> {
    let Some(snapshot) = store.table_snapshot(&request.table) else {
        return Err(DataFusionError::Plan(format!(
            "this node has no table {}",
            request.table
        )));
    };
    let batches = match request.target {
        ScanTarget::Node { .. } => snapshot.scan(request.min_ns, request.max_ns),
        ScanTarget::Empty => Vec::new(),
        ScanTarget::Unassigned => {
            return Err(DataFusionError::Internal(format!(
                "the scan of {} was not assigned to a node",
                request.table
            )));
        }
    };
    let partitions = partition_exactly(batches, SCAN_PARTITIONS);
    let source =
        MemorySourceConfig::try_new(&partitions, snapshot.schema(), request.projection.clone())?
            .with_limit(request.limit);
    Ok(DataSourceExec::from_data_source(source))
}

#[cfg(test)]
mod tests {
    use arrow::array::{Int64Array, RecordBatch, TimestampNanosecondArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use datafusion::physical_plan::ExecutionPlanProperties;
    use datafusion::physical_plan::collect;
    use datafusion::prelude::SessionContext;
    use datafusion_proto::physical_plan::DefaultPhysicalProtoConverter;

    use super::*;
    use crate::schema::time_type;
    use crate::stats::StatsRegistry;
    use crate::store::StoreConfig;

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("time_", time_type(), false),
            Field::new("v", DataType::Int64, false),
        ]))
    }

    fn store() -> Arc<TableStore> {
        let store = TableStore::new(StoreConfig::default(), Arc::new(StatsRegistry::new()));
        store.register("t", schema()).unwrap();
        for t in [10, 20, 30] {
            let batch = RecordBatch::try_new(
                schema(),
                vec![
                    Arc::new(TimestampNanosecondArray::from(vec![t]).with_timezone("UTC")),
                    Arc::new(Int64Array::from(vec![t])),
                ],
            )
            .unwrap();
            store.append("t", batch).unwrap();
        }
        Arc::new(store)
    }

    /// Encodes `scan` as the coordinator does and decodes it as a node
    /// does; returns the node's `v` values.
    async fn round_trip(scan: &ClusterScanExec) -> Result<Vec<i64>> {
        let converter = DefaultPhysicalProtoConverter {};
        let mut buf = Vec::new();
        ScanCodec::coordinator().try_encode(Arc::new(scan.clone()), &mut buf, &converter)?;
        let ctx = SessionContext::new();
        let plan = ScanCodec::worker(store()).try_decode(&buf, &[], &ctx.task_ctx(), &converter)?;
        assert_eq!(
            plan.output_partitioning().partition_count(),
            SCAN_PARTITIONS
        );
        let mut values: Vec<i64> = collect(plan, ctx.task_ctx())
            .await?
            .iter()
            .flat_map(|b| {
                let column = b.column(b.num_columns() - 1);
                column
                    .as_any()
                    .downcast_ref::<Int64Array>()
                    .unwrap()
                    .values()
                    .to_vec()
            })
            .collect();
        values.sort_unstable();
        Ok(values)
    }

    fn planned(min_ns: Option<i64>, projection: Option<Vec<usize>>) -> ClusterScanExec {
        let request = ScanRequest {
            table: "t".into(),
            projection,
            min_ns,
            max_ns: None,
            limit: None,
            target: ScanTarget::Unassigned,
        };
        ClusterScanExec::try_new(request, &schema()).unwrap()
    }

    #[tokio::test]
    async fn a_node_scans_its_own_rows_pruned_and_projected() {
        let node = ScanTarget::Node {
            name: "n1".into(),
            url: "http://127.0.0.1:1".into(),
        };
        let all = planned(None, None).for_target(node.clone());
        assert_eq!(round_trip(&all).await.unwrap(), [10, 20, 30]);
        // Pruning is per batch: the batch at 20 and 30 overlap [15, ∞).
        let recent = planned(Some(15), Some(vec![1])).for_target(node);
        assert_eq!(recent.schema().fields().len(), 1);
        assert_eq!(round_trip(&recent).await.unwrap(), [20, 30]);
        let empty = planned(None, None).for_target(ScanTarget::Empty);
        assert_eq!(round_trip(&empty).await.unwrap(), Vec::<i64>::new());
    }

    #[tokio::test]
    async fn an_unassigned_scan_never_runs() {
        let scan = planned(None, None);
        let err = round_trip(&scan).await.unwrap_err();
        assert!(err.to_string().contains("not assigned"), "{err}");
        let ctx = SessionContext::new();
        assert!(scan.execute(0, ctx.task_ctx()).is_err());
        let mut request = scan.request().clone();
        request.table = "missing".into();
        request.target = ScanTarget::Empty;
        let err = local_scan(&store(), &request).unwrap_err();
        assert!(err.to_string().contains("no table missing"), "{err}");
    }
}
