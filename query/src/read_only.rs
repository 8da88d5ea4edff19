//! Decides from the parsed SQL whether a statement only reads. This is the
//! first of two gates; the engine also checks the logical plan with
//! DataFusion's `SQLOptions`, which catches whatever slips past here.

use datafusion::sql::parser::Statement as DfStatement;
use std::fmt::{self, Write as _};

use datafusion::sql::sqlparser::ast::{Cte, Query, SetExpr, Statement};

/// `Ok` for a read-only statement, else `Err` with the statement's kind
/// (e.g. "INSERT", "CREATE TABLE") for the error message.
pub(crate) fn check(statement: &DfStatement) -> Result<(), String> {
    match statement {
        DfStatement::Statement(statement) => check_sql(statement),
        // EXPLAIN ANALYZE runs its statement, so what it explains must read only too.
        DfStatement::Explain(explain) => check(&explain.statement),
        DfStatement::CreateExternalTable(_) => Err("CREATE EXTERNAL TABLE".to_owned()),
        DfStatement::CopyTo(_) => Err("COPY".to_owned()),
        DfStatement::Reset(_) => Err("RESET".to_owned()),
    }
}

fn check_sql(statement: &Statement) -> Result<(), String> {
    match statement {
        Statement::Query(query) => check_query(query),
        Statement::Explain { statement, .. } => check_sql(statement),
        // DESCRIBE t, SHOW TABLES, SHOW COLUMNS FROM t.
        Statement::ExplainTable { .. }
        | Statement::ShowTables { .. }
        | Statement::ShowColumns { .. } => Ok(()),
        other => Err(kind(other)),
    }
}

/// Walks the query's set operations and CTEs with a stack of its own: a
/// chain of thousands of `UNION ALL` must not recurse here (the nesting
/// limit is checked after this gate).
fn check_query(query: &Query) -> Result<(), String> {
    let mut pending = vec![query_parts(query)];
    let mut bodies = Vec::new();
    while let Some((ctes, body)) = pending.pop() {
        bodies.push(body);
        pending.extend(ctes.map(|cte| query_parts(&cte.query)));
        while let Some(expr) = bodies.pop() {
            match expr {
                // SELECT … INTO creates a table.
                SetExpr::Select(select) if select.into.is_some() => {
                    return Err("SELECT INTO".to_owned());
                }
                SetExpr::Select(_) | SetExpr::Values(_) | SetExpr::Table(_) => {}
                SetExpr::Query(query) => pending.push(query_parts(query)),
                SetExpr::SetOperation { left, right, .. } => {
                    bodies.push(left.as_ref());
                    bodies.push(right.as_ref());
                }
                SetExpr::Insert(statement)
                | SetExpr::Update(statement)
                | SetExpr::Delete(statement)
                | SetExpr::Merge(statement) => return Err(kind(statement)),
            }
        }
    }
    Ok(())
}

/// A query's CTEs and body.
fn query_parts(query: &Query) -> (impl Iterator<Item = &Cte>, &SetExpr) {
    let ctes = query.with.iter().flat_map(|with| &with.cte_tables);
    (ctes, query.body.as_ref())
}

/// Words that, after CREATE/DROP/ALTER/SHOW, still belong to the kind of
/// statement rather than to the object's name.
const KIND_WORDS: &[&str] = &[
    "OR",
    "REPLACE",
    "TEMPORARY",
    "TEMP",
    "EXTERNAL",
    "MATERIALIZED",
    "UNIQUE",
    "IF",
    "NOT",
    "EXISTS",
    "CREATE",
    "TABLE",
    "VIEW",
    "SCHEMA",
    "DATABASE",
    "CATALOG",
    "FUNCTION",
    "INDEX",
    "SEQUENCE",
    "TYPE",
    "ROLE",
    "USER",
];

/// The leading keywords of a statement as sqlparser prints it (keywords in
/// upper case): "INSERT", "CREATE TABLE", "DROP VIEW", "SET".
fn kind(statement: &Statement) -> String {
    let text = leading_text(statement);
    let mut words = text.split_whitespace();
    let Some(first) = words.next() else {
        return "an empty statement".to_owned();
    };
    let mut kind = vec![first];
    if matches!(first, "CREATE" | "DROP" | "ALTER" | "SHOW") {
        kind.extend(
            words
                .take_while(|word| KIND_WORDS.contains(word))
                .filter(|word| !matches!(*word, "IF" | "NOT" | "EXISTS")),
        );
    }
    kind.join(" ")
}

/// Enough of the printed statement to hold its kind words. Printing stops
/// there: the rest may be a deep tree, and printing it would recurse
/// through all of it.
fn leading_text(statement: &Statement) -> String {
    const KIND_TEXT_BYTES: usize = 128;
    let mut prefix = Prefix {
        text: String::new(),
        room: KIND_TEXT_BYTES,
    };
    // Fails on purpose once the prefix is full.
    let _ = write!(prefix, "{statement}");
    prefix.text
}

struct Prefix {
    text: String,
    room: usize,
}

impl fmt::Write for Prefix {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if s.len() > self.room {
            let mut end = self.room;
            while !s.is_char_boundary(end) {
                end -= 1;
            }
            self.text.push_str(&s[..end]);
            self.room = 0;
            return Err(fmt::Error);
        }
        self.text.push_str(s);
        self.room -= s.len();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use datafusion::sql::parser::DFParser;

    use super::*;

    fn verdict(sql: &str) -> Result<(), String> {
        let mut statements = DFParser::parse_sql(sql).unwrap();
        assert_eq!(statements.len(), 1, "{sql}");
        check(&statements.pop_front().unwrap())
    }

    #[test]
    fn reads_pass() {
        for sql in [
            "SELECT 1",
            "WITH a AS (SELECT 1) SELECT * FROM a",
            "VALUES (1), (2)",
            "SELECT 1 UNION ALL (SELECT 2)",
            "EXPLAIN SELECT 1",
            "EXPLAIN ANALYZE SELECT 1",
            "SHOW TABLES",
            "SHOW COLUMNS FROM http_events",
            "DESCRIBE http_events",
        ] {
            assert_eq!(verdict(sql), Ok(()), "{sql}");
        }
    }

    #[test]
    fn writes_are_named() {
        for (sql, kind) in [
            ("INSERT INTO t VALUES (1)", "INSERT"),
            ("UPDATE t SET a = 1", "UPDATE"),
            ("DELETE FROM t", "DELETE"),
            ("CREATE TABLE t (a INT)", "CREATE TABLE"),
            (
                "CREATE OR REPLACE VIEW v AS SELECT 1",
                "CREATE OR REPLACE VIEW",
            ),
            (
                "CREATE EXTERNAL TABLE t STORED AS CSV LOCATION '/tmp/x'",
                "CREATE EXTERNAL TABLE",
            ),
            ("DROP TABLE IF EXISTS t", "DROP TABLE"),
            ("COPY (SELECT 1) TO '/tmp/x.csv'", "COPY"),
            ("SET datafusion.execution.batch_size = 1", "SET"),
            ("RESET datafusion.execution.batch_size", "RESET"),
            ("SELECT 1 INTO t", "SELECT INTO"),
            ("EXPLAIN ANALYZE INSERT INTO t VALUES (1)", "INSERT"),
            ("PREPARE p AS SELECT 1", "PREPARE"),
            ("SHOW ALL", "SHOW"),
        ] {
            assert_eq!(verdict(sql), Err(kind.to_owned()), "{sql}");
        }
    }
}
