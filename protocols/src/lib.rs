//! Pure, incremental protocol parsers for Sonde.
//!
//! Everything here works on byte slices handed in by the caller: no I/O, no
//! async runtime, no allocation proportional to message bodies. Every parser
//! treats its input as hostile (it comes from arbitrary processes on the node)
//! and reports malformed data as an error value, never as a panic.
//!
//! Stream decoders ([`http::HttpDecoder`], [`redis::RespDecoder`],
//! [`mysql::MysqlPacketDecoder`], [`dns::DnsTcpDecoder`]) share one calling
//! convention: the caller hands in the bytes not consumed so far, drops the
//! `consumed` prefix of a `Progress` and calls again until `NeedMore`; lost
//! bytes are reported with `skip_gap`, after an error or a lost message the
//! caller calls `reset` and resyncs with the module's `find_message_start`.
//! Pairing of requests and responses (and protocol state such as a MySQL
//! handshake) lives in pure session types next to each decoder, driven by
//! caller-supplied opaque `u64` timestamps.

mod cursor;
pub mod detect;
pub mod dns;
pub mod http;
pub mod mysql;
pub mod redis;
mod text;

pub use detect::{Detection, MessageKind, Protocol, detect, detect_datagram, detect_with_hint};

/// Outcome of one `decode` call of the DNS, MySQL and Redis stream decoders
/// (the HTTP decoder has its own, same-shaped [`http::Decoded`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded<T> {
    /// Nothing consumed; more bytes are needed.
    NeedMore,
    /// `consumed` bytes of the input belong to the current message; `message`
    /// is Some when it completed. `consumed` is 0 only when a message
    /// completed by a gap is handed out.
    Progress { consumed: usize, message: Option<T> },
}

/// Outcome of a decoder's `skip_gap`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GapOutcome {
    /// The lost bytes were payload of the message in progress, which goes on.
    Absorbed,
    /// A message (or the start of one) was lost; the decoder is idle and the
    /// caller must resync.
    MessageLost,
}

/// Value that replaces secrets (passwords, auth responses) in every output.
pub const REDACTED: &str = "<redacted>";
