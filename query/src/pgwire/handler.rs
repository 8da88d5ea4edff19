//! The simple and extended query protocols over [`QueryEngine`].

use std::fmt::Debug;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use arrow_pg::datatypes::df::deserialize_parameters_with_server_types;
use arrow_pg::datatypes::{arrow_schema_to_pg_fields, encode_recordbatch, into_pg_type};
use async_trait::async_trait;
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::Statement;
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::{Parser, ParserError};
use datafusion_pg_catalog::sql::PostgresCompatibilityParser;
use futures::{Sink, SinkExt};
use pgwire::api::auth::StartupHandler;
use pgwire::api::portal::{Format, Portal};
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::results::{DataRowEncoder, FieldFormat, FieldInfo, QueryResponse, Response, Tag};
use pgwire::api::stmt::QueryParser;
use pgwire::api::store::PortalStore;
use pgwire::api::{ClientInfo, ClientPortalStore, PgWireServerHandlers, Type};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::PgWireBackendMessage;
use pgwire::messages::data::DataRow;
use pgwire::types::format::FormatOptions;

use super::auth::{Authenticator, Startup};
use super::session::{self, SessionCommand};
use crate::engine::{Described, QueryEngine, QueryError, QueryOptions, QueryResult};
use crate::limits::QueryLimits;
use crate::nesting;

/// The handlers of one connection.
pub(crate) struct ConnectionHandlers {
    service: Arc<PgService>,
    startup: Arc<Startup>,
}

impl ConnectionHandlers {
    pub(crate) fn new(service: Arc<PgService>, authenticator: Option<Authenticator>) -> Self {
        Self {
            service,
            startup: Arc::new(Startup::new(authenticator.as_ref())),
        }
    }
}

impl PgWireServerHandlers for ConnectionHandlers {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        Arc::clone(&self.service)
    }

    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        Arc::clone(&self.service)
    }

    fn startup_handler(&self) -> Arc<impl StartupHandler> {
        Arc::clone(&self.startup)
    }
}

/// A statement parsed and checked at the extended protocol's Parse.
#[derive(Debug, Clone)]
pub(crate) enum Prepared {
    Session(SessionCommand),
    Query {
        statement: Box<Statement>,
        described: Described,
    },
}

/// Answers every connection's statements with the engine.
pub(crate) struct PgService {
    engine: Arc<QueryEngine>,
    parser: Arc<PostgresCompatibilityParser>,
}

impl PgService {
    pub(crate) fn new(engine: Arc<QueryEngine>) -> Self {
        Self {
            engine,
            parser: Arc::new(PostgresCompatibilityParser::new()),
        }
    }

    /// Parses `sql` into statements rewritten for DataFusion, within the
    /// engine's limits, on the query threads (parsing and rewriting
    /// recurse as deep as the statement nests).
    async fn parse(&self, sql: &str) -> PgWireResult<Vec<Statement>> {
        let limits = *self.engine.limits();
        limits
            .check_text(sql)
            .map_err(|message| error(&QueryError::Rejected(message)))?;
        let parser = Arc::clone(&self.parser);
        let sql = sql.to_owned();
        self.engine
            .run_blocking(move || parse_checked(&parser, &sql, &limits))
            .await
            .and_then(|parsed| parsed)
            .map_err(|err| error(&err))
    }

    async fn run(
        &self,
        statement: Statement,
        parameters: Option<datafusion::common::ParamValues>,
        options: QueryOptions,
    ) -> Result<QueryResult, QueryError> {
        self.engine
            .query_statement(statement, parameters, options)
            .await
    }

    /// The rows of `result` in the wire format of `format`, encoded on the
    /// query threads.
    async fn encode(
        &self,
        result: QueryResult,
        format: &Format,
        options: Arc<FormatOptions>,
    ) -> PgWireResult<QueryResponse> {
        let fields = Arc::new(arrow_schema_to_pg_fields(
            &result.schema,
            format,
            Some(options),
        )?);
        let encoder_fields = Arc::clone(&fields);
        let batches = result.batches;
        let rows = self
            .engine
            .run_blocking(move || encode_rows(encoder_fields, batches))
            .await
            .map_err(|err| error(&err))?;
        Ok(QueryResponse::new(fields, futures::stream::iter(rows)))
    }
}

fn encode_rows(
    fields: Arc<Vec<FieldInfo>>,
    batches: Vec<RecordBatch>,
) -> Vec<PgWireResult<DataRow>> {
    batches
        .into_iter()
        .flat_map(|batch| encode_recordbatch(Arc::clone(&fields), batch))
        .collect()
}

/// Parses with the engine's bounds first (sqlparser's recursion limit, then
/// the nesting depth), then with the rewriting parser.
fn parse_checked(
    parser: &PostgresCompatibilityParser,
    sql: &str,
    limits: &QueryLimits,
) -> Result<Vec<Statement>, QueryError> {
    let checked = Parser::new(&PostgreSqlDialect {})
        .with_recursion_limit(limits.parser_recursion_limit)
        .try_with_sql(sql)
        .and_then(|mut parser| parser.parse_statements());
    let statements = match checked {
        Ok(statements) => statements,
        Err(ParserError::RecursionLimitExceeded) => {
            return Err(QueryError::Rejected(format!(
                "the statement nests more than {} levels deep; at most {} are accepted",
                limits.parser_recursion_limit, limits.parser_recursion_limit
            )));
        }
        Err(err) => return Err(QueryError::Sql(err.to_string())),
    };
    for statement in statements {
        let statement = DfStatement::Statement(Box::new(statement));
        nesting::check(&statement, limits.max_nesting_depth).map_err(|depth| {
            QueryError::Rejected(format!(
                "the statement nests at least {depth} levels deep; at most {} levels are accepted",
                limits.max_nesting_depth
            ))
        })?;
    }
    parser
        .parse(sql)
        .map_err(|err| QueryError::Sql(err.to_string()))
}

/// A query error as PostgreSQL reports it: SQLSTATE by kind.
fn error(err: &QueryError) -> PgWireError {
    let message = err.to_string();
    let code = match err {
        QueryError::Rejected(m) if m.starts_with("only read-only statements") => "25006",
        QueryError::Rejected(_) => "54000",
        QueryError::Sql(_) => "42000",
        QueryError::Unavailable(_) => "57P03",
        QueryError::Internal(_) => "XX000",
    };
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "ERROR".to_owned(),
        code.to_owned(),
        message,
    )))
}

fn options_of<C: ClientInfo>(client: &C) -> QueryOptions {
    QueryOptions {
        partial_results: client
            .metadata()
            .get(session::PARTIAL_RESULTS)
            .is_some_and(|value| session::is_on(value)),
    }
}

/// Sends the result's warnings (missing nodes, truncation) as notices.
async fn send_notices<C>(client: &mut C, result: &QueryResult, max_rows: usize) -> PgWireResult<()>
where
    C: Sink<PgWireBackendMessage> + Unpin + Send,
    C::Error: Debug,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
{
    let mut notices = result.warnings.clone();
    if result.truncated {
        notices.push(format!(
            "the result was cut off at {max_rows} rows (the server's row cap)"
        ));
    }
    for notice in notices {
        let info = ErrorInfo::new("WARNING".to_owned(), "01000".to_owned(), notice);
        client
            .feed(PgWireBackendMessage::NoticeResponse(info.into()))
            .await?;
    }
    Ok(())
}

/// Answers a session statement.
fn session_response<C: ClientInfo>(
    client: &mut C,
    command: SessionCommand,
) -> PgWireResult<Response> {
    Ok(match command {
        SessionCommand::Set { name, value } => {
            match value {
                Some(value) => client.metadata_mut().insert(name, value),
                None => client.metadata_mut().remove(&name),
            };
            Response::Execution(Tag::new("SET"))
        }
        SessionCommand::Show { name } => {
            let value = client
                .metadata()
                .get(&name)
                .cloned()
                .or_else(|| session::default_setting(&name).map(str::to_owned))
                .ok_or_else(|| {
                    PgWireError::UserError(Box::new(ErrorInfo::new(
                        "ERROR".to_owned(),
                        "42704".to_owned(),
                        format!("unrecognized configuration parameter \"{name}\""),
                    )))
                })?;
            let fields = Arc::new(vec![show_field(&name)]);
            let mut encoder = DataRowEncoder::new(Arc::clone(&fields));
            encoder.encode_field(&Some(value))?;
            let row = encoder.take_row();
            Response::Query(QueryResponse::new(fields, futures::stream::iter([Ok(row)])))
        }
        SessionCommand::Begin => Response::TransactionStart(Tag::new("BEGIN")),
        SessionCommand::Commit => Response::TransactionEnd(Tag::new("COMMIT")),
        SessionCommand::Rollback => Response::TransactionEnd(Tag::new("ROLLBACK")),
        SessionCommand::Ignore(tag) => Response::Execution(Tag::new(tag)),
    })
}

fn show_field(name: &str) -> FieldInfo {
    FieldInfo::new(name.to_owned(), None, None, Type::TEXT, FieldFormat::Text)
}

#[async_trait]
impl SimpleQueryHandler for PgService {
    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let statements = self.parse(query).await?;
        if statements.is_empty() {
            return Ok(vec![Response::EmptyQuery]);
        }
        let mut responses = Vec::with_capacity(statements.len());
        for statement in statements {
            let response = match SessionCommand::of(&statement) {
                Some(command) => session_response(client, command),
                None => match self.run(statement, None, options_of(client)).await {
                    Ok(result) => {
                        send_notices(client, &result, self.engine.max_rows()).await?;
                        let options =
                            Arc::new(FormatOptions::from_client_metadata(client.metadata()));
                        self.encode(result, &Format::UnifiedText, options)
                            .await
                            .map(Response::Query)
                    }
                    Err(err) => Err(error(&err)),
                },
            };
            match response {
                Ok(response) => responses.push(response),
                // PostgreSQL stops at the first failing statement.
                Err(PgWireError::UserError(info)) => {
                    responses.push(Response::Error(info));
                    break;
                }
                Err(err) => return Err(err),
            }
        }
        Ok(responses)
    }
}

#[async_trait]
impl QueryParser for PgService {
    type Statement = Prepared;

    async fn parse_sql<C>(
        &self,
        _client: &C,
        sql: &str,
        _types: &[Option<Type>],
    ) -> PgWireResult<Option<Prepared>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        let mut statements = self.parse(sql).await?;
        if statements.len() > 1 {
            return Err(PgWireError::UserError(Box::new(ErrorInfo::new(
                "ERROR".to_owned(),
                "42601".to_owned(),
                "cannot insert multiple commands into a prepared statement".to_owned(),
            ))));
        }
        let Some(statement) = statements.pop() else {
            return Ok(None);
        };
        if let Some(command) = SessionCommand::of(&statement) {
            return Ok(Some(Prepared::Session(command)));
        }
        let described = self
            .engine
            .describe(statement.clone())
            .await
            .map_err(|err| error(&err))?;
        Ok(Some(Prepared::Query {
            statement: Box::new(statement),
            described,
        }))
    }

    fn get_parameter_types(&self, statement: &Prepared) -> PgWireResult<Vec<Type>> {
        match statement {
            Prepared::Session(_) => Ok(Vec::new()),
            Prepared::Query { described, .. } => described
                .parameters
                .iter()
                .map(|ty| match ty {
                    Some(ty) => into_pg_type(ty),
                    None => Ok(Type::UNKNOWN),
                })
                .collect(),
        }
    }

    fn get_result_schema(
        &self,
        statement: &Prepared,
        format: Option<&Format>,
    ) -> PgWireResult<Vec<FieldInfo>> {
        match statement {
            Prepared::Session(SessionCommand::Show { name }) => Ok(vec![show_field(name)]),
            Prepared::Session(_) => Ok(Vec::new()),
            Prepared::Query { described, .. } => {
                result_fields(&described.schema, format.unwrap_or(&Format::UnifiedText))
            }
        }
    }
}

fn result_fields(schema: &SchemaRef, format: &Format) -> PgWireResult<Vec<FieldInfo>> {
    arrow_schema_to_pg_fields(schema, format, None)
}

#[async_trait]
impl ExtendedQueryHandler for PgService {
    type Statement = Prepared;
    type QueryParser = PgService;

    fn query_parser(&self) -> Arc<Self::QueryParser> {
        Arc::new(PgService {
            engine: Arc::clone(&self.engine),
            parser: Arc::clone(&self.parser),
        })
    }

    async fn do_query<C>(
        &self,
        client: &mut C,
        portal: &Portal<Prepared>,
        _max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let (statement, described) = match &portal.statement.statement {
            Prepared::Session(command) => return session_response(client, command.clone()),
            Prepared::Query {
                statement,
                described,
            } => (statement, described),
        };
        let inferred: Vec<_> = described.parameters.iter().map(Option::as_ref).collect();
        let parameters = deserialize_parameters_with_server_types(portal, &inferred, &[])?;
        let result = self
            .run(
                statement.as_ref().clone(),
                Some(parameters),
                options_of(client),
            )
            .await
            .map_err(|err| error(&err))?;
        send_notices(client, &result, self.engine.max_rows()).await?;
        let options = Arc::new(FormatOptions::from_client_metadata(client.metadata()));
        let response = self
            .encode(result, &portal.result_column_format, options)
            .await?;
        Ok(Response::Query(response))
    }
}
