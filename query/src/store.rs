//! The in-memory table store: per table, a queue of immutable record
//! batches under a byte budget, evicted oldest first.
//!
//! Readers take snapshots: each table's queue sits behind an `Arc`, so a
//! snapshot is one `Arc` clone per table and stays valid (and unchanged)
//! however the store moves on. Writers copy the queue only while a
//! snapshot of it is alive (`Arc::make_mut`), which costs one `Arc` clone
//! per batch — batches themselves are never copied.
//!
//! Budget invariant: after every call, a table's bytes ≤ its budget. A
//! batch larger than the whole budget is therefore refused (and counted as
//! evicted) rather than stored; keeping it would make the bound a lie.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use arrow::array::{Array, ArrayData, AsArray};
use arrow::buffer::Buffer;
use arrow::compute;
use arrow::datatypes::{DataType, SchemaRef, TimeUnit, TimestampNanosecondType};
use arrow::record_batch::RecordBatch;

use crate::schema::TIME_COLUMN;
use crate::stats::{Counter, StatsRegistry};

/// Default total budget of all tables: 1 GiB.
pub const DEFAULT_BUDGET_BYTES: usize = 1 << 30;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("table {table} is already registered")]
    DuplicateTable { table: String },
    #[error("table {table} is not registered")]
    UnknownTable { table: String },
    #[error("table {table} has no `time_` column of type Timestamp(Nanosecond, _)")]
    MissingTimeColumn { table: String },
    #[error("batch does not match the schema of table {table}: {reason}")]
    SchemaMismatch { table: String, reason: String },
    #[error("invalid budget share {share} for table {table}: must be within [0, 1]")]
    InvalidShare { table: String, share: f64 },
    #[error("budget shares sum to {sum}, more than 1")]
    SharesExceedBudget { sum: f64 },
}

#[derive(Debug, Clone, PartialEq)]
pub struct StoreConfig {
    /// Total bytes for all tables (Arrow buffer memory).
    pub budget_bytes: usize,
    /// Fraction of `budget_bytes` reserved per named table; tables not
    /// listed split the remainder equally.
    pub shares: Vec<(String, f64)>,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            budget_bytes: DEFAULT_BUDGET_BYTES,
            shares: Vec::new(),
        }
    }
}

impl StoreConfig {
    /// Checks the shares; call this where the configuration is read, to
    /// report mistakes to the user. [`TableStore::new`] does not fail: it
    /// drops invalid shares and scales down shares that sum past 1.
    pub fn validate(&self) -> Result<(), StoreError> {
        for (table, share) in &self.shares {
            if !valid_share(*share) {
                return Err(StoreError::InvalidShare {
                    table: table.clone(),
                    share: *share,
                });
            }
        }
        let sum: f64 = self.shares.iter().map(|(_, share)| share).sum();
        if sum > 1.0 {
            return Err(StoreError::SharesExceedBudget { sum });
        }
        Ok(())
    }

    /// Shares usable by the store, per [`validate`](Self::validate)'s rules.
    fn sanitized_shares(&self) -> BTreeMap<String, f64> {
        let mut shares = BTreeMap::new();
        for (table, share) in &self.shares {
            if valid_share(*share) {
                shares.insert(table.clone(), *share);
            } else {
                tracing::warn!(table, share, "ignoring invalid table store budget share");
            }
        }
        let sum: f64 = shares.values().sum();
        if sum > 1.0 {
            tracing::warn!(
                sum,
                "table store budget shares sum past 1; scaling them down"
            );
            shares.values_mut().for_each(|share| *share /= sum);
        }
        shares
    }
}

fn valid_share(share: f64) -> bool {
    (0.0..=1.0).contains(&share)
}

/// Per-table figures for `/metrics` and `sonde tables`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableStats {
    pub name: String,
    pub rows: usize,
    pub bytes: usize,
    pub budget_bytes: usize,
    pub batches: usize,
    pub evicted_rows: u64,
    pub evicted_batches: u64,
}

/// A stored batch with the `time_` range it covers.
#[derive(Debug, Clone)]
struct Segment {
    batch: RecordBatch,
    min_ns: i64,
    max_ns: i64,
    bytes: usize,
}

impl Segment {
    fn overlaps(&self, min_ns: Option<i64>, max_ns: Option<i64>) -> bool {
        min_ns.is_none_or(|min| self.max_ns >= min) && max_ns.is_none_or(|max| self.min_ns <= max)
    }
}

/// A table's contents at one instant; unaffected by later appends and
/// evictions.
#[derive(Debug, Clone)]
pub struct TableSnapshot {
    name: String,
    schema: SchemaRef,
    segments: Arc<VecDeque<Segment>>,
}

impl TableSnapshot {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    pub fn num_batches(&self) -> usize {
        self.segments.len()
    }

    /// Batches whose `time_` range overlaps `[min_ns, max_ns]` (inclusive;
    /// `None` is unbounded), oldest first. Rows outside the range are not
    /// removed: pruning is per batch.
    pub fn scan(&self, min_ns: Option<i64>, max_ns: Option<i64>) -> Vec<RecordBatch> {
        self.segments
            .iter()
            .filter(|segment| segment.overlaps(min_ns, max_ns))
            .map(|segment| segment.batch.clone())
            .collect()
    }
}

#[derive(Debug)]
struct Table {
    schema: SchemaRef,
    time_index: usize,
    budget: usize,
    segments: Arc<VecDeque<Segment>>,
    rows: usize,
    bytes: usize,
    evicted_rows: Arc<Counter>,
    evicted_batches: Arc<Counter>,
}

impl Table {
    /// Pops the oldest batches until the table fits its budget.
    fn enforce_budget(&mut self) {
        if self.bytes <= self.budget {
            return;
        }
        let segments = Arc::make_mut(&mut self.segments);
        while self.bytes > self.budget {
            let Some(oldest) = segments.pop_front() else {
                break;
            };
            self.rows -= oldest.batch.num_rows();
            self.bytes -= oldest.bytes;
            self.evicted_rows.add(oldest.batch.num_rows() as u64);
            self.evicted_batches.inc();
        }
    }

    fn count_dropped(&self, batch: &RecordBatch) {
        self.evicted_rows.add(batch.num_rows() as u64);
        self.evicted_batches.inc();
    }
}

/// Batches per table under a byte budget. `Send + Sync`; share it as
/// `Arc<TableStore>`.
#[derive(Debug)]
pub struct TableStore {
    budget_bytes: usize,
    shares: BTreeMap<String, f64>,
    stats: Arc<StatsRegistry>,
    tables: RwLock<BTreeMap<String, Table>>,
}

impl TableStore {
    pub fn new(config: StoreConfig, stats: Arc<StatsRegistry>) -> Self {
        Self {
            budget_bytes: config.budget_bytes,
            shares: config.sanitized_shares(),
            stats,
            tables: RwLock::new(BTreeMap::new()),
        }
    }

    // A panic while holding the lock cannot leave a table half-updated in a
    // way that breaks readers (counters may be off by one batch), so a
    // poisoned lock is used as is rather than failing every later call.
    fn read(&self) -> RwLockReadGuard<'_, BTreeMap<String, Table>> {
        self.tables.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, BTreeMap<String, Table>> {
        self.tables.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers a table. Its budget is `budget_bytes * share`; tables
    /// without a share split what the shares leave, so registering one
    /// shrinks the others without a share (evicting at once if needed).
    pub fn register(&self, name: &str, schema: SchemaRef) -> Result<(), StoreError> {
        let time_index = schema
            .fields()
            .iter()
            .position(|field| {
                field.name() == TIME_COLUMN
                    && matches!(
                        field.data_type(),
                        DataType::Timestamp(TimeUnit::Nanosecond, _)
                    )
            })
            .ok_or_else(|| StoreError::MissingTimeColumn {
                table: name.to_owned(),
            })?;

        let mut tables = self.write();
        if tables.contains_key(name) {
            return Err(StoreError::DuplicateTable {
                table: name.to_owned(),
            });
        }
        let table = Table {
            schema,
            time_index,
            budget: 0,
            segments: Arc::default(),
            rows: 0,
            bytes: 0,
            evicted_rows: self.stats.counter(
                &format!("evicted_rows_{name}"),
                &format!("Rows of {name} dropped by the table store's byte budget"),
            ),
            evicted_batches: self.stats.counter(
                &format!("evicted_batches_{name}"),
                &format!("Batches of {name} dropped by the table store's byte budget"),
            ),
        };
        tables.insert(name.to_owned(), table);
        self.assign_budgets(&mut tables);
        if let Some(table) = tables.get(name)
            && table.budget == 0
        {
            tracing::warn!(
                table = name,
                "table has a zero byte budget; all its rows will be dropped"
            );
        }
        Ok(())
    }

    fn assign_budgets(&self, tables: &mut BTreeMap<String, Table>) {
        let listed: f64 = self.shares.values().sum();
        let unlisted = tables
            .keys()
            .filter(|name| !self.shares.contains_key(*name))
            .count();
        // Float → usize `as` saturates, and shares are within [0, 1].
        let total = self.budget_bytes as f64;
        let rest_each = if unlisted == 0 {
            0.0
        } else {
            total * (1.0 - listed).max(0.0) / unlisted as f64
        };
        for (name, table) in tables.iter_mut() {
            table.budget = match self.shares.get(name) {
                Some(share) => (total * share) as usize,
                None => rest_each as usize,
            };
            table.enforce_budget();
        }
    }

    /// Appends a batch, then evicts the table's oldest batches until it
    /// fits its budget. Empty batches are ignored. A batch bigger than the
    /// whole budget is dropped and counted as evicted.
    pub fn append(&self, table: &str, batch: RecordBatch) -> Result<(), StoreError> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let mut tables = self.write();
        let state = tables
            .get_mut(table)
            .ok_or_else(|| StoreError::UnknownTable {
                table: table.to_owned(),
            })?;
        let batch = conform(table, &state.schema, batch)?;

        let bytes = memory_bytes(&batch);
        if bytes > state.budget {
            tracing::debug!(
                table,
                bytes,
                budget = state.budget,
                "batch larger than table budget dropped"
            );
            state.count_dropped(&batch);
            return Ok(());
        }
        let times = batch
            .column(state.time_index)
            .as_primitive::<TimestampNanosecondType>();
        // All-null times cannot be pruned on; cover every range.
        let min_ns = compute::min(times).unwrap_or(i64::MIN);
        let max_ns = compute::max(times).unwrap_or(i64::MAX);

        state.rows += batch.num_rows();
        state.bytes += bytes;
        Arc::make_mut(&mut state.segments).push_back(Segment {
            batch,
            min_ns,
            max_ns,
            bytes,
        });
        state.enforce_budget();
        Ok(())
    }

    pub fn table_names(&self) -> Vec<String> {
        self.read().keys().cloned().collect()
    }

    pub fn schema(&self, table: &str) -> Option<SchemaRef> {
        self.read().get(table).map(|t| Arc::clone(&t.schema))
    }

    /// Batches of `table` overlapping `[min_ns, max_ns]` (inclusive, `None`
    /// unbounded), oldest first; empty for an unknown table.
    pub fn scan(&self, table: &str, min_ns: Option<i64>, max_ns: Option<i64>) -> Vec<RecordBatch> {
        self.table_snapshot(table)
            .map(|snapshot| snapshot.scan(min_ns, max_ns))
            .unwrap_or_default()
    }

    pub fn table_snapshot(&self, table: &str) -> Option<TableSnapshot> {
        self.read()
            .get(table)
            .map(|state| snapshot_of(table, state))
    }

    /// Every table at one instant (taken under one lock, so consistent
    /// across tables).
    pub fn snapshot(&self) -> Vec<TableSnapshot> {
        self.read()
            .iter()
            .map(|(name, state)| snapshot_of(name, state))
            .collect()
    }

    pub fn table_stats(&self) -> Vec<TableStats> {
        self.read()
            .iter()
            .map(|(name, state)| TableStats {
                name: name.clone(),
                rows: state.rows,
                bytes: state.bytes,
                budget_bytes: state.budget,
                batches: state.segments.len(),
                evicted_rows: state.evicted_rows.get(),
                evicted_batches: state.evicted_batches.get(),
            })
            .collect()
    }
}

fn snapshot_of(name: &str, state: &Table) -> TableSnapshot {
    TableSnapshot {
        name: name.to_owned(),
        schema: Arc::clone(&state.schema),
        segments: Arc::clone(&state.segments),
    }
}

/// The bytes a batch holds, each buffer counted once: the connection
/// columns of a protocol table share one keys buffer (`records/conn.rs`),
/// which `RecordBatch::get_array_memory_size` would count once per column.
/// Otherwise the same sum: every buffer's capacity and the arrays' own size.
fn memory_bytes(batch: &RecordBatch) -> usize {
    let mut seen = HashSet::new();
    batch
        .columns()
        .iter()
        .map(|column| data_bytes(&column.to_data(), &mut seen))
        .sum()
}

fn data_bytes(data: &ArrayData, seen: &mut HashSet<usize>) -> usize {
    let mut once = |buffer: &Buffer| {
        if seen.insert(buffer.data_ptr().as_ptr() as usize) {
            buffer.capacity()
        } else {
            0
        }
    };
    let mut bytes = std::mem::size_of_val(data);
    for buffer in data.buffers() {
        bytes += std::mem::size_of::<Buffer>() + once(buffer);
    }
    if let Some(nulls) = data.nulls() {
        bytes += once(nulls.buffer());
    }
    for child in data.child_data() {
        bytes += data_bytes(child, seen);
    }
    bytes
}

/// Checks `batch` against the table's schema (names, types, order, and —
/// through `RecordBatch::try_new` — nulls in non-nullable columns) and
/// rebinds it to the table's `SchemaRef`, so every stored batch carries
/// exactly the schema DataFusion is told about.
fn conform(table: &str, schema: &SchemaRef, batch: RecordBatch) -> Result<RecordBatch, StoreError> {
    let mismatch = |reason: String| StoreError::SchemaMismatch {
        table: table.to_owned(),
        reason,
    };
    let actual = batch.schema();
    if actual.fields().len() != schema.fields().len() {
        return Err(mismatch(format!(
            "{} columns, expected {}",
            actual.fields().len(),
            schema.fields().len()
        )));
    }
    for (expected, got) in schema.fields().iter().zip(actual.fields()) {
        if expected.name() != got.name() || expected.data_type() != got.data_type() {
            return Err(mismatch(format!(
                "column {} {} where {} {} was expected",
                got.name(),
                got.data_type(),
                expected.name(),
                expected.data_type()
            )));
        }
    }
    if actual == *schema {
        return Ok(batch);
    }
    RecordBatch::try_new(Arc::clone(schema), batch.columns().to_vec())
        .map_err(|e| mismatch(e.to_string()))
}

#[cfg(test)]
mod tests {
    use arrow::array::{Int64Array, TimestampNanosecondArray};
    use arrow::datatypes::{Field, Schema};

    use super::*;
    use crate::schema::time_type;

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new(TIME_COLUMN, time_type(), false),
            Field::new("v", DataType::Int64, false),
        ]))
    }

    /// A batch of the test schema with the given times; `v` = time.
    fn batch(times: &[i64]) -> RecordBatch {
        RecordBatch::try_new(
            schema(),
            vec![
                Arc::new(TimestampNanosecondArray::from(times.to_vec()).with_timezone("UTC")),
                Arc::new(Int64Array::from(times.to_vec())),
            ],
        )
        .unwrap()
    }

    fn first_values(batches: &[RecordBatch]) -> Vec<i64> {
        batches
            .iter()
            .map(|b| {
                b.column(1)
                    .as_primitive::<arrow::datatypes::Int64Type>()
                    .value(0)
            })
            .collect()
    }

    fn store(budget_bytes: usize, shares: Vec<(String, f64)>) -> (TableStore, Arc<StatsRegistry>) {
        let stats = Arc::new(StatsRegistry::new());
        (
            TableStore::new(
                StoreConfig {
                    budget_bytes,
                    shares,
                },
                Arc::clone(&stats),
            ),
            stats,
        )
    }

    fn counter(stats: &StatsRegistry, name: &str) -> u64 {
        stats
            .snapshot()
            .into_iter()
            .find(|c| c.name == name)
            .map(|c| c.value)
            .unwrap()
    }

    /// Two dictionary columns with one keys buffer (as the connection
    /// columns are built): the keys count once, as nothing else differs.
    #[test]
    fn a_buffer_shared_by_columns_is_counted_once() {
        use arrow::array::{ArrayRef, DictionaryArray, Int32Array, StringArray};
        let keys = Int32Array::from(vec![0, 1, 0, 0]);
        let column = |values: [&str; 2]| -> ArrayRef {
            Arc::new(DictionaryArray::new(
                keys.clone(),
                Arc::new(StringArray::from(values.to_vec())),
            ))
        };
        let batch = RecordBatch::try_from_iter([
            ("comm", column(["curl", "nginx"])),
            ("upid", column(["1:7", "2:7"])),
        ])
        .unwrap();
        let counted_twice: usize = batch
            .columns()
            .iter()
            .map(|c| c.to_data().get_array_memory_size())
            .sum();
        let keys_bytes = keys.values().inner().capacity();
        assert!(keys_bytes >= 16);
        assert_eq!(memory_bytes(&batch), counted_twice - keys_bytes);
    }

    #[test]
    fn evicts_oldest_whole_batches_and_counts() {
        let one = memory_bytes(&batch(&[1, 2, 3]));
        // Room for exactly two three-row batches.
        let (store, stats) = store(2 * one, vec![]);
        store.register("t", schema()).unwrap();
        for start in [10, 20, 30, 40] {
            store
                .append("t", batch(&[start, start + 1, start + 2]))
                .unwrap();
        }
        assert_eq!(first_values(&store.scan("t", None, None)), [30, 40]);
        assert_eq!(counter(&stats, "evicted_rows_t"), 6);
        assert_eq!(counter(&stats, "evicted_batches_t"), 2);
        assert_eq!(
            store.table_stats(),
            vec![TableStats {
                name: "t".into(),
                rows: 6,
                bytes: 2 * one,
                budget_bytes: 2 * one,
                batches: 2,
                evicted_rows: 6,
                evicted_batches: 2,
            }]
        );
    }

    #[test]
    fn batch_larger_than_budget_is_refused_and_counted() {
        let small = memory_bytes(&batch(&[1]));
        let (store, stats) = store(small, vec![]);
        store.register("t", schema()).unwrap();
        store.append("t", batch(&[1])).unwrap();
        let big: Vec<i64> = (0..1000).collect();
        store.append("t", batch(&big)).unwrap();
        assert_eq!(first_values(&store.scan("t", None, None)), [1]);
        assert_eq!(counter(&stats, "evicted_rows_t"), 1000);
        assert_eq!(counter(&stats, "evicted_batches_t"), 1);
    }

    #[test]
    fn scan_prunes_by_time_range_inclusive() {
        let (store, _) = store(DEFAULT_BUDGET_BYTES, vec![]);
        store.register("t", schema()).unwrap();
        store.append("t", batch(&[100, 199])).unwrap();
        store.append("t", batch(&[200, 299])).unwrap();
        store.append("t", batch(&[300, 399])).unwrap();
        assert_eq!(first_values(&store.scan("t", None, None)), [100, 200, 300]);
        assert_eq!(first_values(&store.scan("t", Some(250), None)), [200, 300]);
        assert_eq!(first_values(&store.scan("t", None, Some(199))), [100]);
        assert_eq!(
            first_values(&store.scan("t", Some(199), Some(200))),
            [100, 200]
        );
        assert_eq!(
            first_values(&store.scan("t", Some(400), None)),
            Vec::<i64>::new()
        );
        assert!(store.scan("missing", None, None).is_empty());
    }

    #[test]
    fn snapshot_is_unaffected_by_later_appends_and_evictions() {
        let one = memory_bytes(&batch(&[1]));
        let (store, _) = store(one, vec![]);
        store.register("t", schema()).unwrap();
        store.append("t", batch(&[1])).unwrap();
        let snapshot = store.table_snapshot("t").unwrap();
        store.append("t", batch(&[2])).unwrap();
        assert_eq!(first_values(&snapshot.scan(None, None)), [1]);
        assert_eq!(first_values(&store.scan("t", None, None)), [2]);
    }

    #[test]
    fn budgets_follow_shares_and_split_the_rest() {
        let (store, _) = store(1000, vec![("a".into(), 0.5)]);
        for name in ["a", "b", "c"] {
            store.register(name, schema()).unwrap();
        }
        let budgets: Vec<(String, usize)> = store
            .table_stats()
            .into_iter()
            .map(|t| (t.name, t.budget_bytes))
            .collect();
        assert_eq!(
            budgets,
            [("a".into(), 500), ("b".into(), 250), ("c".into(), 250)]
        );
    }

    #[test]
    fn invalid_shares_are_reported_and_sanitized() {
        let bad = StoreConfig {
            budget_bytes: 1000,
            shares: vec![("a".into(), f64::NAN)],
        };
        assert!(matches!(
            bad.validate(),
            Err(StoreError::InvalidShare { .. })
        ));
        let over = StoreConfig {
            budget_bytes: 1000,
            shares: vec![("a".into(), 0.75), ("b".into(), 0.75)],
        };
        assert!(
            matches!(over.validate(), Err(StoreError::SharesExceedBudget { sum }) if sum == 1.5)
        );
        assert!(StoreConfig::default().validate().is_ok());

        let (store, _) = store(1000, over.shares);
        store.register("a", schema()).unwrap();
        assert_eq!(store.table_stats()[0].budget_bytes, 500);
    }

    #[test]
    fn register_and_append_errors() {
        let (store, _) = store(DEFAULT_BUDGET_BYTES, vec![]);
        store.register("t", schema()).unwrap();
        assert!(matches!(
            store.register("t", schema()),
            Err(StoreError::DuplicateTable { .. })
        ));
        let no_time = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)]));
        assert!(matches!(
            store.register("u", no_time.clone()),
            Err(StoreError::MissingTimeColumn { .. })
        ));
        assert!(matches!(
            store.append("nope", batch(&[1])),
            Err(StoreError::UnknownTable { .. })
        ));

        let wrong =
            RecordBatch::try_new(no_time, vec![Arc::new(Int64Array::from(vec![1]))]).unwrap();
        let err = store.append("t", wrong).unwrap_err();
        assert_eq!(
            err.to_string(),
            "batch does not match the schema of table t: 1 columns, expected 2"
        );

        // Same types, nullable field declared: accepted and rebound to the table schema.
        let nullable = Arc::new(Schema::new(vec![
            Field::new(TIME_COLUMN, time_type(), true),
            Field::new("v", DataType::Int64, true),
        ]));
        let loose = RecordBatch::try_new(nullable, batch(&[5]).columns().to_vec()).unwrap();
        store.append("t", loose).unwrap();
        assert_eq!(store.scan("t", None, None)[0].schema(), schema());

        // Empty batches are no-ops.
        store.append("t", batch(&[])).unwrap();
        assert_eq!(store.table_stats()[0].batches, 1);
        assert_eq!(store.table_names(), ["t"]);
        assert_eq!(store.schema("t"), Some(schema()));
    }
}
