//! Plain row structs, as the capture side produces them, and the Arrow
//! builders that turn them into record batches for the store.

mod conn;
mod http;

pub use conn::{ConnColumnsBuilder, ConnFields, TraceRole};
pub use http::{HttpEventsBuilder, HttpRow, headers_to_json};
