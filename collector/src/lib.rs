//! The Sonde node agent as a library: capture, connection tracking, protocol
//! sessions and the agent's wiring. The `sonde` binary (main.rs) is its CLI;
//! benchmarks drive the pipeline (`conntrack::Tracker`) directly.

pub mod agent;
pub mod auth;
pub mod capture;
pub mod cli;
pub mod client;
pub mod clock;
pub mod config_file;
pub mod conntrack;
pub mod counters;
pub mod dns_session;
pub mod export;
pub mod http_session;
pub mod k8s_meta;
pub mod kernel_features;
pub mod mysql_session;
pub mod probes;
pub mod reassembly;
pub mod redis_session;
pub mod rows;
pub mod session;
pub mod stream_driver;
pub mod tls;
pub mod window;
