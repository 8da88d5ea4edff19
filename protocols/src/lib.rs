//! Pure, incremental protocol parsers for Sonde.
//!
//! Everything here works on byte slices handed in by the caller: no I/O, no
//! async runtime, no allocation proportional to message bodies. Every parser
//! treats its input as hostile (it comes from arbitrary processes on the node)
//! and reports malformed data as an error value, never as a panic.
//!
//! Stream decoders ([`http::HttpDecoder`], [`http2::Http2Decoder`],
//! [`redis::RespDecoder`], [`mysql::MysqlPacketDecoder`],
//! [`dns::DnsTcpDecoder`]) share one calling
//! convention: the caller hands in the bytes not consumed so far, drops the
//! `consumed` prefix of a `Progress` and calls again until `NeedMore`; lost
//! bytes are reported with `skip_gap`, after an error or a lost message the
//! caller calls `reset` and resyncs with the module's `find_message_start`.
//! Pairing of requests and responses (and protocol state such as a MySQL
//! handshake) lives in pure pairing types next to each decoder, driven by
//! caller-supplied opaque `u64` timestamps.

mod common;
mod cursor;
pub mod detect;
pub mod dns;
mod headers;
pub mod held;
pub mod http;
pub mod http2;
pub mod mysql;
pub mod pgsql;
mod redaction;
pub mod redis;
mod text;

pub(crate) use common::Verdict;
pub use common::{Decoded, Detection, GapOutcome, MessageKind, Protocol, REDACTED};
pub use detect::{detect, detect_datagram, detect_with_hint};
pub use headers::Headers;
pub use redaction::RedactedNames;
