//! Sonde's query side: table schemas, the row builders that fill them, the
//! in-memory table store with its byte budget, the DataFusion table provider
//! over it, the read-only SQL facade, and the agent's own counters.
//!
//! Data flows one way: records → store → provider → engine. Nothing here
//! knows about eBPF or HTTP serving.

pub mod engine;
pub mod executor;
pub mod limits;
pub mod provider;
pub mod records;
pub mod row_filter;
pub mod schema;
pub mod stats;
pub mod store;

mod nesting;
mod read_only;
mod time_filter;

pub use engine::{QueryEngine, QueryError, QueryResult};
pub use executor::QueryExecutor;
pub use limits::QueryLimits;
pub use row_filter::{RowFilter, RowFilterError};
pub use stats::{Counter, CounterSnapshot, StatsRegistry};
pub use store::{StoreConfig, StoreError, TableSnapshot, TableStats, TableStore};
