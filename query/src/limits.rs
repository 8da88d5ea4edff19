//! The bounds every query is held to before anything recurses over it.
//!
//! A hostile or generated statement must fail as a query, never take the
//! agent down. Three bounds, checked in this order, keep every recursion
//! over a query (sqlparser's, DataFusion's planner and optimiser, Display,
//! Drop, result encoding) far inside the stack of the query threads
//! ([`crate::executor`]):
//! 1. the SQL text's length, which bounds the size of everything built
//!    from it;
//! 2. sqlparser's recursion limit, for what it parses recursively
//!    (parentheses, subqueries, `NOT`, `CASE`, function arguments);
//! 3. the nesting depth of the parsed statement ([`crate::nesting`]), for
//!    what sqlparser builds in loops and so does not count: chains of
//!    left-associative operators (`a + b + …`, `x AND y AND …`), set
//!    operations (`SELECT … UNION ALL SELECT …`), casts (`x::INT::INT`),
//!    array types (`INT[][]…`).
//!
//! Every query endpoint (HTTP, PostgreSQL wire) goes through
//! [`crate::QueryEngine`], which applies them; a violation is a
//! [`crate::QueryError::Rejected`] naming the limit.

/// Longest SQL text accepted, in bytes.
pub const DEFAULT_MAX_SQL_BYTES: usize = 256 << 10;

/// Deepest nesting of expressions, queries and set operations accepted.
pub const DEFAULT_MAX_NESTING_DEPTH: usize = 500;

/// How deep sqlparser may recurse (DataFusion's own default).
pub const DEFAULT_PARSER_RECURSION_LIMIT: usize = 50;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueryLimits {
    pub max_sql_bytes: usize,
    pub max_nesting_depth: usize,
    pub parser_recursion_limit: usize,
}

impl Default for QueryLimits {
    fn default() -> Self {
        Self {
            max_sql_bytes: DEFAULT_MAX_SQL_BYTES,
            max_nesting_depth: DEFAULT_MAX_NESTING_DEPTH,
            parser_recursion_limit: DEFAULT_PARSER_RECURSION_LIMIT,
        }
    }
}

impl QueryLimits {
    /// The first bound, checked before the text goes anywhere.
    pub fn check_text(&self, sql: &str) -> Result<(), String> {
        if sql.len() > self.max_sql_bytes {
            return Err(format!(
                "the SQL text is {} bytes long; at most {} bytes are accepted",
                sql.len(),
                self.max_sql_bytes
            ));
        }
        Ok(())
    }
}
