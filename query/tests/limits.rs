//! Statements built to recurse deeply fail as queries, each with a message
//! naming the limit, and the engine keeps answering. Before the limits and
//! the query threads, `SELECT 1 UNION ALL …` with 5 000 terms overflowed the
//! stack and aborted the process.
//!
//! The test thread's own stack is the default 2 MiB: nothing deep may be
//! parsed, planned or dropped here, only on the engine's threads.

use std::sync::Arc;

use sonde_query::limits::{
    DEFAULT_MAX_NESTING_DEPTH, DEFAULT_MAX_SQL_BYTES, DEFAULT_PARSER_RECURSION_LIMIT,
};
use sonde_query::schema::{HTTP_EVENTS, http_events_schema};
use sonde_query::{QueryEngine, QueryError, StatsRegistry, StoreConfig, TableStore};

fn engine() -> QueryEngine {
    let stats = Arc::new(StatsRegistry::new());
    let store = Arc::new(TableStore::new(StoreConfig::default(), stats));
    store.register(HTTP_EVENTS, http_events_schema()).unwrap();
    QueryEngine::new(store)
}

fn repeat_join(term: &str, separator: &str, count: usize) -> String {
    vec![term; count].join(separator)
}

fn union_chain(terms: usize) -> String {
    repeat_join("SELECT 1", " UNION ALL ", terms)
}

fn nested(open: &str, middle: &str, close: &str, levels: usize) -> String {
    format!("{}{middle}{}", open.repeat(levels), close.repeat(levels))
}

/// The engine still answers a plain query with the right value.
async fn still_answers(engine: &QueryEngine) {
    let result = engine.query("SELECT 40 + 2 AS answer").await.unwrap();
    assert_eq!(result.num_rows(), 1);
    let value = result.batches[0]
        .column(0)
        .as_any()
        .downcast_ref::<arrow::array::Int64Array>()
        .unwrap()
        .value(0);
    assert_eq!(value, 42);
}

async fn rejected(engine: &QueryEngine, sql: &str) -> String {
    match engine.query(sql).await {
        Err(QueryError::Rejected(message)) => message,
        other => panic!(
            "expected a rejection for {}…: {other:?}",
            &sql[..sql.len().min(60)]
        ),
    }
}

fn too_deep() -> String {
    format!("at most {DEFAULT_MAX_NESTING_DEPTH} levels are accepted")
}

fn parser_too_deep() -> String {
    format!(
        "the statement nests more than {DEFAULT_PARSER_RECURSION_LIMIT} levels deep in \
         parentheses, subqueries, NOT, CASE or function calls; at most \
         {DEFAULT_PARSER_RECURSION_LIMIT} are accepted"
    )
}

fn too_long(len: usize) -> String {
    format!("the SQL text is {len} bytes long; at most {DEFAULT_MAX_SQL_BYTES} bytes are accepted")
}

#[tokio::test]
async fn long_union_chains_are_refused() {
    let engine = engine();
    let message = rejected(&engine, &union_chain(5_000)).await;
    assert_eq!(
        message,
        format!(
            "the statement nests at least 5000 levels deep (expressions, operator chains such \
             as a + b + …, subqueries, set operations such as UNION, casts); {}",
            too_deep()
        )
    );
    still_answers(&engine).await;

    let sql = union_chain(50_000);
    assert_eq!(rejected(&engine, &sql).await, too_long(sql.len()));
    still_answers(&engine).await;

    // Under the limit, a chain still runs: 400 terms give 400 rows.
    let result = engine.query(&union_chain(400)).await.unwrap();
    assert_eq!(result.num_rows(), 400);
}

#[tokio::test]
async fn loops_of_the_parser_are_bounded_by_nesting() {
    let engine = engine();
    for sql in [
        // Left-associative operator chains, built without recursion.
        format!("SELECT {}", repeat_join("1", " + ", 20_000)),
        format!(
            "SELECT * FROM http_events WHERE {}",
            repeat_join("pid = 1", " AND ", 5_000)
        ),
        format!("SELECT 1{}", "::BIGINT".repeat(20_000)),
        format!("SELECT CAST(NULL AS INT{})", "[]".repeat(50_000)),
        format!("SELECT 'a'{}", " || 'a'".repeat(20_000)),
    ] {
        let message = rejected(&engine, &sql).await;
        assert!(message.ends_with(&too_deep()), "{message}");
        still_answers(&engine).await;
    }
}

#[tokio::test]
async fn recursion_of_the_parser_is_bounded() {
    let engine = engine();
    for sql in [
        format!("SELECT {}", nested("(", "1", ")", 5_000)),
        format!("SELECT {}true", "NOT ".repeat(5_000)),
        format!(
            "SELECT {}",
            nested("CASE WHEN true THEN ", "1", " END", 2_000)
        ),
        format!("SELECT {}", nested("(SELECT ", "1", ")", 2_000)),
        format!(
            "SELECT * FROM {}",
            nested("(SELECT * FROM ", "http_events", ")", 2_000)
        ),
        format!("SELECT {}", nested("abs(", "1", ")", 5_000)),
        format!("SELECT {}", nested("- ", "1", "", 20_000)),
    ] {
        assert_eq!(rejected(&engine, &sql).await, parser_too_deep());
        still_answers(&engine).await;
    }
}

#[tokio::test]
async fn long_texts_are_refused() {
    let engine = engine();
    let in_list = (0..100_000)
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    for sql in [
        format!("SELECT 1 IN ({in_list})"),
        format!("SELECT '{}'", "x".repeat(DEFAULT_MAX_SQL_BYTES)),
    ] {
        assert_eq!(rejected(&engine, &sql).await, too_long(sql.len()));
        still_answers(&engine).await;
    }
}

/// Just under each limit, the shapes still run and give exact answers.
#[tokio::test]
async fn shapes_within_the_limits_run() {
    let engine = engine();
    let in_list = (0..10_000)
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let long_string = "x".repeat(DEFAULT_MAX_SQL_BYTES - 100);
    for (sql, expected) in [
        (format!("SELECT 9999 IN ({in_list})"), "true".to_owned()),
        (format!("SELECT 10000 IN ({in_list})"), "false".to_owned()),
        (
            format!("SELECT {}", repeat_join("1", " + ", 400)),
            "400".to_owned(),
        ),
        (
            format!("SELECT {}", nested("(", "1", ")", 30)),
            "1".to_owned(),
        ),
        (
            format!("SELECT {}", nested("(SELECT ", "7", ")", 8)),
            "7".to_owned(),
        ),
        (
            format!("SELECT length('{long_string}')"),
            long_string.len().to_string(),
        ),
    ] {
        let result = engine.query(&sql).await.unwrap();
        let column = arrow::compute::cast(
            result.batches[0].column(0),
            &arrow::datatypes::DataType::Utf8,
        )
        .unwrap();
        let value = column
            .as_any()
            .downcast_ref::<arrow::array::StringArray>()
            .unwrap()
            .value(0)
            .to_owned();
        assert_eq!(value, expected, "{}", &sql[..sql.len().min(60)]);
    }
}

/// The same protection applies to statements the read-only gate refuses:
/// printing a deep INSERT for the error message must not recurse through it.
#[tokio::test]
async fn deep_writes_are_refused_by_name() {
    let engine = engine();
    let sql = format!("INSERT INTO t {}", union_chain(10_000));
    assert_eq!(
        rejected(&engine, &sql).await,
        "only read-only statements are allowed: SELECT, WITH, EXPLAIN, SHOW, DESCRIBE; got INSERT"
    );
    let sql = format!(
        "CREATE TABLE t AS SELECT {}",
        repeat_join("1", " + ", 50_000)
    );
    assert_eq!(
        rejected(&engine, &sql).await,
        "only read-only statements are allowed: SELECT, WITH, EXPLAIN, SHOW, DESCRIBE; got CREATE TABLE"
    );
    still_answers(&engine).await;
}
