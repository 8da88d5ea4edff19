//! Pure, incremental protocol parsers for Sonde.
//!
//! Everything here works on byte slices handed in by the caller: no I/O, no
//! async runtime, no allocation proportional to message bodies. Every parser
//! treats its input as hostile (it comes from arbitrary processes on the node)
//! and reports malformed data as an error value, never as a panic.

pub mod detect;
pub mod http;

pub use detect::{Detection, MessageKind, Protocol, detect};
