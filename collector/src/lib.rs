//! The Sonde node agent as a library. The rooms follow the data path:
//!
//! - `kernel`: loads and attaches the BPF programs, reads the ring buffer
//!   (the capture thread), attaches the TLS library uprobes.
//! - `tracker`: kernel records → connections: order, gaps, TLS mode,
//!   protocol identification, datagrams, conn_stats.
//! - `sessions`: a connection's ordered bytes → typed rows (one stream
//!   driver; HTTP, DNS, MySQL, Redis pairing).
//! - `export`: typed rows → OTLP spans and RED metrics.
//! - `agent`: wiring and lifetimes; `cli`: arguments, config file, the
//!   `sonde query` client.
//! - `coordinator`: `sonde coordinator`, one SQL view of every agent.
//!
//! `clock` and `counters` are shared by the capture side. See ARCHITECTURE.md.

pub mod agent;
pub mod cli;
pub mod clock;
pub mod coordinator;
pub mod counters;
pub mod export;
pub mod kernel;
pub mod sessions;
pub mod tracker;
