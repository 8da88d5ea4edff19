//! Sonde's query side: table schemas, the row builders that fill them, the
//! in-memory table store with its byte budget, the DataFusion table provider
//! over it, the read-only SQL facade, the agent's own counters, the
//! PostgreSQL wire protocol (`pgwire`) and the cluster's query planning
//! (`distributed`).
//!
//! Data flows one way: records → store → provider → engine. Nothing here
//! knows about eBPF or HTTP serving.

pub mod catalog;
pub mod distributed;
pub mod engine;
pub mod executor;
pub mod limits;
pub mod node;
pub mod pgwire;
pub mod provider;
pub mod records;
pub mod row_filter;
pub mod schema;
pub mod stats;
pub mod store;

mod nesting;
mod read_only;
mod time_filter;

pub use engine::{Described, QueryEngine, QueryError, QueryOptions, QueryResult};
pub use executor::QueryExecutor;
pub use limits::QueryLimits;
pub use row_filter::{RowFilter, RowFilterError};
pub use stats::{Counter, CounterSnapshot, StatsRegistry};
pub use store::{StoreConfig, StoreError, TableSnapshot, TableStats, TableStore};
