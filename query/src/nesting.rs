//! How deeply a parsed statement nests, checked before it is planned.
//!
//! sqlparser counts its own recursion, but it builds chains of
//! left-associative operators, set operations, casts and array types in
//! loops: `SELECT 1 UNION ALL SELECT 1 …` with 5 000 terms is a tree 5 000
//! levels deep that nothing in the parser refused. Everything after the
//! parser (DataFusion's planner, optimiser and physical planner, Display,
//! Drop) recurses over that depth, so it is bounded here, in one walk that
//! stops as soon as the limit is passed.
//!
//! The walk is sqlparser's visitor, which recurses too: each visited level
//! costs a few frames, and it never goes further than the limit plus the
//! levels of one node. Set operations and data types are not visited
//! separately by it, so their chains are measured without recursion where
//! the query or expression holding them is entered.

use std::ops::ControlFlow;

use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::{
    ArrayElemTypeDef, DataType, Expr, Query, SetExpr, Visit, Visitor,
};

/// `Err(depth)` when `statement` nests deeper than `max_depth`; `depth` is
/// where the walk stopped (at least `max_depth + 1`).
pub(crate) fn check(statement: &DfStatement, max_depth: usize) -> Result<(), usize> {
    let mut gauge = DepthGauge {
        max_depth,
        depth: 0,
        added: Vec::new(),
    };
    let flow = match statement {
        DfStatement::Statement(statement) => statement.visit(&mut gauge),
        DfStatement::Explain(explain) => return check(&explain.statement, max_depth),
        // Refused by the read-only gate before this runs.
        DfStatement::CreateExternalTable(_) | DfStatement::CopyTo(_) | DfStatement::Reset(_) => {
            ControlFlow::Continue(())
        }
    };
    match flow {
        ControlFlow::Continue(()) => Ok(()),
        ControlFlow::Break(depth) => Err(depth),
    }
}

struct DepthGauge {
    max_depth: usize,
    /// Levels of the node being visited.
    depth: usize,
    /// What each node on the current path added, to take it off on leaving.
    added: Vec<usize>,
}

impl DepthGauge {
    fn enter(&mut self, levels: usize) -> ControlFlow<usize> {
        self.depth = self.depth.saturating_add(levels);
        self.added.push(levels);
        if self.depth > self.max_depth {
            ControlFlow::Break(self.depth)
        } else {
            ControlFlow::Continue(())
        }
    }

    fn leave(&mut self) -> ControlFlow<usize> {
        let levels = self.added.pop().unwrap_or(0);
        self.depth = self.depth.saturating_sub(levels);
        ControlFlow::Continue(())
    }
}

impl Visitor for DepthGauge {
    type Break = usize;

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<usize> {
        self.enter(1 + set_operation_depth(&query.body))
    }

    fn post_visit_query(&mut self, _query: &Query) -> ControlFlow<usize> {
        self.leave()
    }

    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<usize> {
        let type_levels = match expr {
            Expr::Cast { data_type, .. } => type_depth(data_type),
            Expr::Convert {
                data_type: Some(data_type),
                ..
            } => type_depth(data_type),
            Expr::TypedString(typed) => type_depth(&typed.data_type),
            Expr::Struct { fields, .. } => fields
                .iter()
                .map(|field| type_depth(&field.field_type))
                .max()
                .unwrap_or(0),
            _ => 0,
        };
        self.enter(1 + type_levels)
    }

    fn post_visit_expr(&mut self, _expr: &Expr) -> ControlFlow<usize> {
        self.leave()
    }
}

/// Levels of set operations (`UNION`, `INTERSECT`, `EXCEPT`) and
/// parenthesised bodies above the deepest leaf of `body`, walked with a
/// stack of its own. Queries inside are measured when the visitor enters
/// them.
fn set_operation_depth(body: &SetExpr) -> usize {
    let mut deepest = 0;
    let mut pending = vec![(body, 0)];
    while let Some((expr, depth)) = pending.pop() {
        deepest = deepest.max(depth);
        if let SetExpr::SetOperation { left, right, .. } = expr {
            pending.push((left.as_ref(), depth + 1));
            pending.push((right.as_ref(), depth + 1));
        }
    }
    deepest
}

/// Levels of a data type (`INT[][]` is 2, `STRUCT<a INT[]>` is 2), walked
/// with a stack of its own.
fn type_depth(data_type: &DataType) -> usize {
    let mut deepest = 0;
    let mut pending = vec![(data_type, 0)];
    while let Some((data_type, depth)) = pending.pop() {
        deepest = deepest.max(depth);
        let inner = depth + 1;
        match data_type {
            DataType::Array(
                ArrayElemTypeDef::SquareBracket(element, _)
                | ArrayElemTypeDef::AngleBracket(element)
                | ArrayElemTypeDef::Parenthesis(element),
            )
            | DataType::Nullable(element)
            | DataType::LowCardinality(element) => pending.push((element.as_ref(), inner)),
            DataType::Map(key, value) => {
                pending.push((key.as_ref(), inner));
                pending.push((value.as_ref(), inner));
            }
            DataType::Struct(fields, _) | DataType::Tuple(fields) => {
                pending.extend(fields.iter().map(|field| (&field.field_type, inner)));
            }
            DataType::Union(fields) => {
                pending.extend(fields.iter().map(|field| (&field.field_type, inner)));
            }
            DataType::Nested(columns) | DataType::Table(Some(columns)) => {
                pending.extend(columns.iter().map(|column| (&column.data_type, inner)));
            }
            _ => {}
        }
    }
    deepest
}

#[cfg(test)]
mod tests {
    use datafusion::sql::parser::DFParserBuilder;

    use super::*;

    fn depth_check(sql: &str, max_depth: usize) -> Result<(), usize> {
        let mut statements = DFParserBuilder::new(sql)
            .build()
            .unwrap()
            .parse_statements()
            .unwrap();
        check(&statements.pop_front().unwrap(), max_depth)
    }

    /// The smallest limit a statement passes.
    fn depth_of(sql: &str) -> usize {
        (0..100).find(|&max| depth_check(sql, max).is_ok()).unwrap()
    }

    #[test]
    fn depths_of_shapes() {
        for (sql, depth) in [
            // Query, then the projection's expression.
            ("SELECT 1", 2),
            ("SELECT 1 + 1", 3),
            ("SELECT 1 + 1 + 1 + 1", 5),
            ("SELECT a FROM t WHERE a = 1 AND b = 2 AND c = 3", 5),
            ("SELECT 1 UNION ALL SELECT 1", 3),
            ("SELECT 1 UNION ALL SELECT 1 UNION ALL SELECT 1", 4),
            ("SELECT (SELECT 1)", 4),
            ("SELECT CAST(NULL AS INT)", 3),
            ("SELECT CAST(NULL AS INT[][][])", 6),
            ("SELECT 1::BIGINT::BIGINT", 4),
            ("EXPLAIN SELECT 1 + 1", 3),
            ("WITH a AS (SELECT 1 + 1) SELECT * FROM a", 4),
        ] {
            assert_eq!(depth_of(sql), depth, "{sql}");
        }
    }

    #[test]
    fn stops_past_the_limit() {
        let chain = vec!["SELECT 1"; 5_000].join(" UNION ALL ");
        assert_eq!(depth_check(&chain, 500), Err(5_000));
        let sum = format!("SELECT {}", vec!["1"; 5_000].join(" + "));
        assert_eq!(depth_check(&sum, 500), Err(501));
    }
}
