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
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use arrow::datatypes::{DataType, SchemaRef};
use arrow::record_batch::RecordBatch;
use datafusion::catalog::SchemaProvider;
use datafusion::common::ParamValues;
use datafusion::dataframe::DataFrame;
use datafusion::error::DataFusionError;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::execution::session_state::{SessionState, SessionStateBuilder};
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::{SQLOptions, SessionConfig};
use datafusion::sql::parser::{DFParserBuilder, Statement};
use datafusion::sql::sqlparser::ast::Statement as SqlStatement;
use datafusion::sql::sqlparser::parser::ParserError;
use futures::StreamExt;

use crate::catalog::{self, TableSource};
use crate::distributed::Cluster;
use crate::executor::{DEFAULT_QUERY_THREADS, QueryExecutor};
use crate::limits::QueryLimits;
use crate::store::TableStore;
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
    /// Nodes of the cluster did not answer (the message names them); the
    /// same query may succeed later, or with partial results allowed.
    #[error("{0}")]
    Unavailable(String),
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

    /// Whether the failure is nodes of the cluster not answering (HTTP 503).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, QueryError::Unavailable(_))
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
    /// What the caller must know about the answer: over a cluster with
    /// partial results allowed, the nodes that did not answer (their rows
    /// are missing).
    pub warnings: Vec<String>,
}

impl QueryResult {
    pub fn num_rows(&self) -> usize {
        self.batches.iter().map(RecordBatch::num_rows).sum()
    }
}

/// What a caller may ask of one query besides its SQL.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueryOptions {
    /// Over a cluster: answer from the nodes that respond, with a warning
    /// naming the others, rather than failing when one does not.
    pub partial_results: bool,
}

/// What a statement takes and returns, found by planning it without
/// running it (the PostgreSQL wire protocol's Describe).
#[derive(Debug, Clone)]
pub struct Described {
    /// The type of each parameter `$1`, `$2`, ... in order; `None` where
    /// the statement does not determine it.
    pub parameters: Vec<Option<DataType>>,
    /// The result's columns.
    pub schema: SchemaRef,
}

#[derive(Debug)]
pub struct QueryEngine {
    tables: TableSource,
    /// Functions, configuration and runtime shared by all queries; each
    /// query clones it and swaps in its own catalog.
    base: SessionState,
    /// `pg_catalog`, shared by all queries so its OIDs stay stable.
    pg_catalog: Arc<dyn SchemaProvider>,
    max_rows: usize,
    timeout: Duration,
    limits: QueryLimits,
    executor: QueryExecutor,
}

impl QueryEngine {
    /// An engine over every table of `store`, including tables registered
    /// after this call. `information_schema` and `pg_catalog` are enabled.
    /// Starts the engine's query threads (see [`QueryExecutor::new`]).
    pub fn new(store: Arc<TableStore>) -> Self {
        Self::over(TableSource::Local(store), DEFAULT_MEMORY_LIMIT_BYTES)
    }

    /// An engine over the tables of every node of `cluster` (the
    /// coordinator's): each query is planned here and its scans, filters
    /// and partial aggregates run on the nodes.
    pub fn cluster(cluster: Arc<Cluster>) -> Self {
        Self::over(TableSource::Cluster(cluster), DEFAULT_MEMORY_LIMIT_BYTES)
    }

    fn over(tables: TableSource, memory_limit: usize) -> Self {
        let (base, pg_catalog) = base_state(memory_limit, &tables);
        Self {
            tables,
            base,
            pg_catalog,
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

    pub fn max_rows(&self) -> usize {
        self.max_rows
    }

    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Bounds the memory of query execution (all queries together). A
    /// query that needs more fails with `Rejected`; nothing spills to disk.
    pub fn with_memory_limit(mut self, bytes: usize) -> Self {
        (self.base, self.pg_catalog) = base_state(bytes, &self.tables);
        self
    }

    /// The agent's store; `None` on the coordinator.
    pub fn store(&self) -> Option<&Arc<TableStore>> {
        match &self.tables {
            TableSource::Local(store) => Some(store),
            TableSource::Cluster(_) => None,
        }
    }

    /// The runtime (memory pool) every query of this engine shares; the
    /// agent's worker runs the cluster's query fragments with it too.
    pub fn runtime_env(&self) -> Arc<RuntimeEnv> {
        self.base.runtime_env().clone()
    }

    /// Runs one read-only statement on the query threads. Must be called
    /// within a Tokio runtime with the time driver enabled (for the time
    /// limit).
    pub async fn query(&self, sql: &str) -> Result<QueryResult, QueryError> {
        self.query_with(sql, QueryOptions::default()).await
    }

    /// [`query`](Self::query), with options.
    pub async fn query_with(
        &self,
        sql: &str,
        options: QueryOptions,
    ) -> Result<QueryResult, QueryError> {
        self.limits.check_text(sql).map_err(QueryError::Rejected)?;
        let job = self.job(options);
        let sql = sql.to_owned();
        self.run_timed(async move {
            let statement = job.parse(&sql)?;
            job.run(statement, None).await
        })
        .await
    }

    /// Runs a statement parsed elsewhere (by the PostgreSQL wire
    /// protocol's parser, which rewrites what clients send for DataFusion),
    /// with values for its parameters. Held to the same gate and limits as
    /// [`query`](Self::query); the caller bounds the text's length
    /// ([`QueryLimits::check_text`]) and the parser's recursion.
    pub async fn query_statement(
        &self,
        statement: SqlStatement,
        parameters: Option<ParamValues>,
        options: QueryOptions,
    ) -> Result<QueryResult, QueryError> {
        let job = self.job(options);
        self.run_timed(async move {
            job.run(Statement::Statement(Box::new(statement)), parameters)
                .await
        })
        .await
    }

    /// Plans `statement` without running it: its parameters and result
    /// columns.
    pub async fn describe(&self, statement: SqlStatement) -> Result<Described, QueryError> {
        let job = self.job(QueryOptions::default());
        self.run_timed(async move {
            let plan = job.plan(Statement::Statement(Box::new(statement))).await?.1;
            Ok(Described {
                parameters: parameter_types(&plan)?,
                schema: Arc::clone(plan.schema().inner()),
            })
        })
        .await
    }

    fn job(&self, options: QueryOptions) -> QueryJob {
        QueryJob {
            tables: self.tables.clone(),
            base: self.base.clone(),
            pg_catalog: Arc::clone(&self.pg_catalog),
            max_rows: self.max_rows,
            limits: self.limits,
            options,
        }
    }

    /// Runs `work` on the query threads under the time limit.
    async fn run_timed<F, T>(&self, work: F) -> Result<T, QueryError>
    where
        F: Future<Output = Result<T, QueryError>> + Send + 'static,
        T: Send + 'static,
    {
        match tokio::time::timeout(self.timeout, self.executor.run(work)).await {
            Ok(result) => result?,
            // Dropping the query's future cancels its task and DataFusion's.
            Err(_) => Err(QueryError::Rejected(format!(
                "query exceeded the time limit of {} s",
                self.timeout.as_secs_f64()
            ))),
        }
    }

    /// Runs a long-lived service (the agent's worker endpoint) on the
    /// query threads, so the query fragments it executes get their stack.
    pub fn spawn_service<F>(&self, service: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.executor.spawn(service)
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
    tables: TableSource,
    base: SessionState,
    pg_catalog: Arc<dyn SchemaProvider>,
    max_rows: usize,
    limits: QueryLimits,
    options: QueryOptions,
}

impl QueryJob {
    async fn run(
        self,
        statement: Statement,
        parameters: Option<ParamValues>,
    ) -> Result<QueryResult, QueryError> {
        let (state, plan) = self.plan(statement).await?;
        let plan = match parameters {
            Some(values) => plan.replace_params_with_values(&values)?,
            None => plan,
        };
        let (state, warnings) = match &self.tables {
            TableSource::Local(_) => (state, Vec::new()),
            TableSource::Cluster(cluster) => {
                let prepared = cluster.prepare(state, self.options).await?;
                (prepared.state, prepared.warnings)
            }
        };
        let result = async {
            let stream = match (&self.tables, &plan) {
                // DataFusion plans EXPLAIN's input with its own planner,
                // not the session's: show the plan the query would run.
                (TableSource::Cluster(_), LogicalPlan::Explain(explain)) => {
                    crate::distributed::explain(&state, explain).await?
                }
                _ => DataFrame::new(state, plan).execute_stream().await?,
            };
            collect_capped(stream, self.max_rows).await
        }
        .await;
        let result = match &self.tables {
            TableSource::Cluster(cluster) => match result {
                Err(err) => Err(cluster.explain_failure(err).await),
                ok => ok,
            },
            TableSource::Local(_) => result,
        };
        Ok(QueryResult {
            warnings,
            ..result?
        })
    }

    /// Checks a statement and plans it over a snapshot of the tables.
    async fn plan(&self, statement: Statement) -> Result<(SessionState, LogicalPlan), QueryError> {
        read_only::check(&statement).map_err(|kind| QueryError::read_only(&kind))?;
        nesting::check(&statement, self.limits.max_nesting_depth).map_err(|depth| {
            QueryError::Rejected(format!(
                "the statement nests at least {depth} levels deep (expressions, operator chains \
                 such as a + b + …, subqueries, set operations such as UNION, casts); \
                 at most {} levels are accepted",
                self.limits.max_nesting_depth
            ))
        })?;

        let state = self.session()?;
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
        Ok((state, plan))
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

    /// A session for one query whose default schema holds the tables (on
    /// an agent, a snapshot of them).
    fn session(&self) -> Result<SessionState, QueryError> {
        let catalogs =
            catalog::query_catalog(&self.base, self.tables.providers(), &self.pg_catalog)?;
        let mut state = SessionStateBuilder::new_from_existing(self.base.clone())
            .with_catalog_list(catalogs)
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

/// The parameter types of `plan` in order (`$1`, `$2`, ...).
fn parameter_types(plan: &LogicalPlan) -> Result<Vec<Option<DataType>>, QueryError> {
    let mut types: Vec<(usize, Option<DataType>)> = plan
        .get_parameter_types()?
        .into_iter()
        .map(|(id, ty)| {
            id.strip_prefix('$')
                .and_then(|n| n.parse::<usize>().ok())
                .filter(|n| *n > 0)
                .map(|n| (n, ty))
                .ok_or_else(|| {
                    QueryError::Sql(format!(
                        "parameter {id} is not numbered: use $1, $2, ... for parameters"
                    ))
                })
        })
        .collect::<Result<_, _>>()?;
    types.sort_by_key(|(n, _)| *n);
    // $1 .. $n with none missing; a gap (only $2 used) is a type left open.
    let count = types.last().map_or(0, |(n, _)| *n);
    let mut ordered = vec![None; count];
    for (n, ty) in types {
        ordered[n - 1] = ty;
    }
    Ok(ordered)
}

/// The state every query session starts from: default functions,
/// PostgreSQL's catalog functions, `information_schema`, no table factories
/// (so no `CREATE EXTERNAL TABLE` even if a check were bypassed), no URL
/// tables, bounded memory and no spilling to disk. Also returns the
/// `pg_catalog` schema over `tables`.
fn base_state(
    memory_limit: usize,
    tables: &TableSource,
) -> (SessionState, Arc<dyn SchemaProvider>) {
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
    let state = SessionStateBuilder::new()
        .with_config(config)
        .with_runtime_env(runtime)
        .with_default_features()
        .with_table_factories(HashMap::new())
        .build();
    match catalog::with_pg_catalog(state.clone(), tables.clone()) {
        Ok(with_catalog) => with_catalog,
        Err(err) => {
            // Only the catalog's built-in tables could fail to load (they
            // are compiled in): serve queries without it rather than none.
            tracing::error!(%err, "no pg_catalog: PostgreSQL clients' catalog queries will fail");
            let empty = datafusion::catalog::MemorySchemaProvider::new();
            (state, Arc::new(empty))
        }
    }
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
        warnings: Vec::new(),
    })
}
