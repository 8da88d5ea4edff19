//! Everything that talks to the kernel: loading and attaching the BPF
//! programs (`loader`), the capture thread that reads their ring buffer
//! (`ring_reader`), the `probe_status` rows of what attached, the seeding of
//! syscalls already in flight at start (`seed`), and the TLS library uprobes
//! (`tls`).

pub mod features;
pub mod loader;
pub mod probe_status;
pub mod ring_reader;
pub mod seed;
pub mod tls;
