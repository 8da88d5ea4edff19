//! The read-only SQL facade over the table store.
//!
//! Every query gets its own DataFusion session whose catalog holds a
//! snapshot of the store taken when the query starts, so all of a query's
//! table scans see the same data however long planning and execution take.
//! Writes are refused twice: by inspecting the parsed statement (for a
//! clear message) and by DataFusion's `SQLOptions` on the plan.
//!
//! This is the one entry of every query endpoint (HTTP, PostgreSQL wire):
//! here each query is held to the [`QueryLimits`] and runs, from parsing
//! to its last batch, on the large-stack threads of the [`QueryExecutor`].

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use datafusion::catalog::{
    CatalogProvider, CatalogProviderList, MemoryCatalogProvider, MemoryCatalogProviderList,
    MemorySchemaProvider, SchemaProvider,
};
use datafusion::dataframe::DataFrame;
use datafusion::error::DataFusionError;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::execution::session_state::{SessionState, SessionStateBuilder};
use datafusion::prelude::{SQLOptions, SessionConfig};
use datafusion::sql::parser::{DFParserBuilder, Statement};
use datafusion::sql::sqlparser::parser::ParserError;
use futures::StreamExt;

use crate::executor::{DEFAULT_QUERY_THREADS, QueryExecutor};
use crate::limits::QueryLimits;
use crate::provider::StoreTableProvider;
use crate::store::{TableSnapshot, TableStore};
use crate::{nesting, read_only};

/// Rows returned at most per query unless changed with `with_max_rows`.
pub const DEFAULT_MAX_ROWS: usize = 100_000;
/// Wall-clock limit per query unless changed with `with_timeout`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Memory all running queries may use together for sorts, joins and
/// aggregations (the stored batches themselves are not counted).
pub const DEFAULT_MEMORY_LIMIT_BYTES: usize = 512 << 20;

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The statement is not allowed (writes, several statements) or the
    /// query exceeded a limit.
    #[error("{0}")]
    Rejected(String),
    /// The SQL is wrong: syntax, unknown table or column, type error.
    #[error("{0}")]
    Sql(String),
    /// A failure that is not the query's fault.
    #[error("{0}")]
    Internal(String),
}

impl QueryError {
    /// Whether the client should fix its query (HTTP 400) rather than the
    /// server being at fault (HTTP 500).
    pub fn is_user_error(&self) -> bool {
        matches!(self, QueryError::Rejected(_) | QueryError::Sql(_))
    }

    fn read_only(kind: &str) -> Self {
        QueryError::Rejected(format!(
            "only read-only statements are allowed: SELECT, WITH, EXPLAIN, SHOW, DESCRIBE; got {kind}"
        ))
    }
}

impl From<DataFusionError> for QueryError {
    fn from(err: DataFusionError) -> Self {
        let message = err.strip_backtrace();
        match err.find_root() {
            DataFusionError::Internal(_)
            | DataFusionError::IoError(_)
            | DataFusionError::ExecutionJoin(_)
            | DataFusionError::External(_)
            | DataFusionError::Substrait(_)
            | DataFusionError::Ffi(_) => QueryError::Internal(message),
            DataFusionError::ResourcesExhausted(_) => QueryError::Rejected(message),
            _ => QueryError::Sql(message),
        }
    }
}

#[derive(Debug, Clone)]
pub struct QueryResult {
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
    /// True when rows were cut off at the engine's row cap.
    pub truncated: bool,
}

impl QueryResult {
    pub fn num_rows(&self) -> usize {
        self.batches.iter().map(RecordBatch::num_rows).sum()
    }
}

#[derive(Debug)]
pub struct QueryEngine {
    store: Arc<TableStore>,
    /// Functions, configuration and runtime shared by all queries; each
    /// query clones it and swaps in its own catalog.
    base: SessionState,
    max_rows: usize,
    timeout: Duration,
    limits: QueryLimits,
    executor: QueryExecutor,
}

impl QueryEngine {
    /// An engine over every table of `store`, including tables registered
    /// after this call. `information_schema` is enabled. Starts the
    /// engine's query threads (see [`QueryExecutor::new`]).
    pub fn new(store: Arc<TableStore>) -> Self {
        Self {
            store,
            base: base_state(DEFAULT_MEMORY_LIMIT_BYTES),
            max_rows: DEFAULT_MAX_ROWS,
            timeout: DEFAULT_TIMEOUT,
            limits: QueryLimits::default(),
            executor: QueryExecutor::new(DEFAULT_QUERY_THREADS),
        }
    }

    /// Replaces the bounds on SQL text length, parser recursion and
    /// statement nesting.
    pub fn with_limits(mut self, limits: QueryLimits) -> Self {
        self.limits = limits;
        self
    }

    pub fn limits(&self) -> &QueryLimits {
        &self.limits
    }

    /// Caps the rows a query returns; extra rows are dropped and the
    /// result is marked truncated.
    pub fn with_max_rows(mut self, max_rows: usize) -> Self {
        self.max_rows = max_rows;
        self
    }

    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Bounds the memory of query execution (all queries together). A
    /// query that needs more fails with `Rejected`; nothing spills to disk.
    pub fn with_memory_limit(mut self, bytes: usize) -> Self {
        self.base = base_state(bytes);
        self
    }

    pub fn store(&self) -> &Arc<TableStore> {
        &self.store
    }

    /// Runs one read-only statement on the query threads. Must be called
    /// within a Tokio runtime with the time driver enabled (for the time
    /// limit).
    pub async fn query(&self, sql: &str) -> Result<QueryResult, QueryError> {
        self.limits.check_text(sql).map_err(QueryError::Rejected)?;
        let job = QueryJob {
            store: Arc::clone(&self.store),
            base: self.base.clone(),
            max_rows: self.max_rows,
            limits: self.limits,
        };
        let sql = sql.to_owned();
        match tokio::time::timeout(self.timeout, self.executor.run(job.run(sql))).await {
            Ok(result) => result?,
            // Dropping the query's future cancels its task and DataFusion's.
            Err(_) => Err(QueryError::Rejected(format!(
                "query exceeded the time limit of {} s",
                self.timeout.as_secs_f64()
            ))),
        }
    }

    /// Runs CPU-bound work on a result (encoding it) on the query threads,
    /// whose stack is as large as the one the query ran on.
    pub async fn run_blocking<F, T>(&self, work: F) -> Result<T, QueryError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.executor.run_blocking(work).await
    }
}

/// What one query needs, owned, so it can move to the query threads.
struct QueryJob {
    store: Arc<TableStore>,
    base: SessionState,
    max_rows: usize,
    limits: QueryLimits,
}

impl QueryJob {
    async fn run(self, sql: String) -> Result<QueryResult, QueryError> {
        let statement = self.parse(&sql)?;
        read_only::check(&statement).map_err(|kind| QueryError::read_only(&kind))?;
        nesting::check(&statement, self.limits.max_nesting_depth).map_err(|depth| {
            QueryError::Rejected(format!(
                "the statement nests at least {depth} levels deep (expressions, operator chains \
                 such as a + b + …, subqueries, set operations such as UNION, casts); \
                 at most {} levels are accepted",
                self.limits.max_nesting_depth
            ))
        })?;

        let state = self.session(self.store.snapshot())?;
        let plan = state.statement_to_plan(statement).await?;
        SQLOptions::new()
            .with_allow_ddl(false)
            .with_allow_dml(false)
            .with_allow_statements(false)
            .verify_plan(&plan)
            .map_err(|err| match err.find_root() {
                DataFusionError::Plan(reason) => QueryError::read_only(reason),
                _ => QueryError::from(err),
            })?;

        let stream = DataFrame::new(state, plan).execute_stream().await?;
        collect_capped(stream, self.max_rows).await
    }

    /// Exactly one statement, else `Rejected`; syntax errors are `Sql`,
    /// unless they come from the parser's recursion limit.
    fn parse(&self, sql: &str) -> Result<Statement, QueryError> {
        let limit = self.limits.parser_recursion_limit;
        let too_deep = || {
            QueryError::Rejected(format!(
                "the statement nests more than {limit} levels deep in parentheses, \
                 subqueries, NOT, CASE or function calls; at most {limit} are accepted"
            ))
        };
        let mut statements = match parse_with_limit(sql, limit) {
            Ok(statements) => statements,
            Err(err) if is_recursion_limit(&err) => return Err(too_deep()),
            // sqlparser sometimes backtracks past its limit and reports a
            // syntax error further on (`NOT NOT …`, nested `CASE`). With a
            // higher limit, a genuine syntax error stays the same; one the
            // limit caused moves or disappears. Only failed parses pay.
            Err(err) => match parse_with_limit(sql, limit.saturating_mul(4)) {
                Err(again) if again.strip_backtrace() == err.strip_backtrace() => {
                    return Err(QueryError::from(err));
                }
                _ => return Err(too_deep()),
            },
        };
        match (statements.pop_front(), statements.len()) {
            (Some(statement), 0) => Ok(statement),
            (None, _) => Err(QueryError::Rejected("no SQL statement given".to_owned())),
            (Some(_), rest) => Err(QueryError::Rejected(format!(
                "exactly one statement is allowed per query, got {}",
                rest + 1
            ))),
        }
    }

    /// A session for one query whose default schema holds `tables`.
    fn session(&self, tables: Vec<TableSnapshot>) -> Result<SessionState, QueryError> {
        let options = self.base.config().options();
        let schema = MemorySchemaProvider::new();
        for table in tables {
            let name = table.name().to_owned();
            schema.register_table(name, Arc::new(StoreTableProvider::new(table)))?;
        }
        let catalog = MemoryCatalogProvider::new();
        catalog.register_schema(&options.catalog.default_schema, Arc::new(schema))?;
        let catalogs = MemoryCatalogProviderList::new();
        catalogs.register_catalog(options.catalog.default_catalog.clone(), Arc::new(catalog));

        let mut state = SessionStateBuilder::new_from_existing(self.base.clone())
            .with_catalog_list(Arc::new(catalogs))
            .build();
        // Fixes now() for the whole query.
        state.mark_start_execution();
        Ok(state)
    }
}

fn parse_with_limit(sql: &str, limit: usize) -> Result<VecDeque<Statement>, DataFusionError> {
    DFParserBuilder::new(sql)
        .with_recursion_limit(limit)
        .build()?
        .parse_statements()
}

fn is_recursion_limit(err: &DataFusionError) -> bool {
    matches!(err, DataFusionError::SQL(parser_error, _)
        if matches!(**parser_error, ParserError::RecursionLimitExceeded))
}

/// The state every query session starts from: default functions,
/// `information_schema`, no table factories (so no `CREATE EXTERNAL
/// TABLE` even if a check were bypassed), no URL tables, bounded memory and
/// no spilling to disk.
fn base_state(memory_limit: usize) -> SessionState {
    let config = SessionConfig::new().with_information_schema(true);
    let runtime = RuntimeEnvBuilder::new()
        .with_memory_limit(memory_limit, 1.0)
        .with_disk_manager_builder(
            DiskManagerBuilder::default().with_mode(DiskManagerMode::Disabled),
        )
        .build_arc()
        .unwrap_or_else(|err| {
            // Not reachable with these settings (no directory is created);
            // run unbounded rather than refuse all queries.
            tracing::error!(%err, "query runtime without memory limit");
            Arc::new(RuntimeEnv::default())
        });
    SessionStateBuilder::new()
        .with_config(config)
        .with_runtime_env(runtime)
        .with_default_features()
        .with_table_factories(HashMap::new())
        .build()
}

/// Reads the stream until `max_rows` rows; reading one row more marks the
/// result truncated and stops the query.
async fn collect_capped(
    mut stream: SendableRecordBatchStream,
    max_rows: usize,
) -> Result<QueryResult, QueryError> {
    let schema = stream.schema();
    let mut batches = Vec::new();
    let mut rows = 0;
    let mut truncated = false;
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        let room = max_rows - rows;
        if batch.num_rows() > room {
            if room > 0 {
                batches.push(batch.slice(0, room));
            }
            truncated = true;
            break;
        }
        rows += batch.num_rows();
        if batch.num_rows() > 0 {
            batches.push(batch);
        }
    }
    Ok(QueryResult {
        schema,
        batches,
        truncated,
    })
}
