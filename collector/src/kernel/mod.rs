//! Everything that talks to the kernel: loading and attaching the BPF
//! programs (`loader`), the capture thread that reads their ring buffer
//! (`ring_reader`), the `probe_status` rows of what attached, and the TLS
//! library uprobes (`tls`).

pub mod features;
pub mod loader;
pub mod probe_status;
pub mod ring_reader;
pub mod tls;
