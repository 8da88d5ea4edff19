//! Redis: an incremental RESP2/RESP3 decoder, commands with secrets
//! redacted, compact rendering of replies, and a pure pairing that pairs
//! requests with replies (pipelining, pub/sub, RESP3 pushes, MONITOR).
//!
//! The caller runs one [`RespDecoder`] per direction and feeds it the
//! unconsumed bytes of that direction, like the HTTP decoder. Pipelined
//! requests arrive as several values in one read: the caller loops `decode`
//! until `NeedMore`. Request values go to [`RedisPairing::on_request`],
//! reply values to [`RedisPairing::on_reply`], which hands out
//! [`RedisEvent`]s (rows).

mod command;
pub(crate) mod detect;
mod pairing;
mod resp;

use std::fmt;

pub use command::{RedisCommand, render, write_args_json};
pub use detect::find_message_start;
pub use pairing::{RedisEvent, RedisPairing};
pub use resp::RespDecoder;

/// Caps of the decoder. Every cap bounds memory; values are still parsed to
/// their end (so the stream stays in sync), only less of them is kept.
#[derive(Debug, Clone)]
pub struct RespConfig {
    /// Longest accepted line (type byte, length, simple string or error,
    /// inline command). The caller holds at most this many bytes of an
    /// incomplete line. Default 64 KiB (Redis' own inline limit).
    pub max_line_bytes: usize,
    /// How many bytes of each bulk string (or blob error, verbatim string)
    /// are kept. Default 512.
    pub max_kept_bytes: usize,
    /// Deepest nesting of aggregates accepted. Default 16.
    pub max_depth: usize,
    /// Most elements kept per aggregate; the rest are parsed and dropped.
    /// Default 64.
    pub max_elements: usize,
    /// Most values kept in one top-level value, all levels together.
    /// Default 1024.
    pub max_total_elements: usize,
    /// Largest accepted declared bulk length (Redis' proto-max-bulk-len
    /// default is 512 MiB). Default 4 GiB.
    pub max_bulk_len: u64,
    /// Largest accepted declared aggregate length. Default 2^32.
    pub max_aggregate_len: u64,
}

impl Default for RespConfig {
    fn default() -> Self {
        Self {
            max_line_bytes: 64 * 1024,
            max_kept_bytes: 512,
            max_depth: 16,
            max_elements: 64,
            max_total_elements: 1024,
            max_bulk_len: 4 << 30,
            max_aggregate_len: 1 << 32,
        }
    }
}

/// Why bytes could not be decoded. After an error the decoder is idle; the
/// caller resyncs with [`find_message_start`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RespError {
    /// A byte that starts no RESP type (or, in a request, no inline command).
    InvalidType,
    /// A length that is not a number, negative (other than -1) or over a cap.
    InvalidLength,
    /// An integer, double, big number or boolean that does not parse.
    InvalidNumber,
    /// A line without CRLF within `max_line_bytes`.
    LineTooLong,
    /// Aggregates nested deeper than `max_depth`.
    TooDeep,
    /// A line ended in a bare LF, or a bulk payload is not followed by CRLF.
    InvalidTerminator,
    /// A RESP3 streamed-string part or end marker where none may be.
    UnexpectedStreamPart,
}

impl fmt::Display for RespError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RespError::InvalidType => "invalid RESP type byte",
            RespError::InvalidLength => "invalid RESP length",
            RespError::InvalidNumber => "invalid RESP number",
            RespError::LineTooLong => "RESP line too long",
            RespError::TooDeep => "RESP aggregates nested too deep",
            RespError::InvalidTerminator => "missing CRLF in RESP",
            RespError::UnexpectedStreamPart => "unexpected RESP3 stream part",
        })
    }
}

impl std::error::Error for RespError {}

/// A bulk string (also the payload of blob errors and verbatim strings).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BulkString {
    /// The first `max_kept_bytes` bytes (fewer if a gap hit the payload
    /// before: a true prefix, never spliced across a hole).
    pub data: Vec<u8>,
    /// Declared length (for a streamed string, the sum of its parts).
    pub len: u64,
    /// Part of the payload was lost in a capture gap.
    pub incomplete: bool,
}

impl BulkString {
    pub fn new(data: &[u8]) -> Self {
        Self {
            data: data.to_vec(),
            len: data.len() as u64,
            incomplete: false,
        }
    }

    /// All of the payload is in `data`.
    pub fn is_whole(&self) -> bool {
        !self.incomplete && self.data.len() as u64 == self.len
    }
}

/// An array, map, set, push or attribute.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Aggregate {
    /// The first elements (`max_elements` at most). A map's elements
    /// alternate key, value.
    pub items: Vec<RespValue>,
    /// Number of elements on the wire (2 per map entry); more than
    /// `items.len()` when some were dropped by a cap.
    pub len: u64,
}

impl Aggregate {
    pub fn new(items: Vec<RespValue>) -> Self {
        Self {
            len: items.len() as u64,
            items,
        }
    }
}

/// One RESP2 or RESP3 value. RESP3 attributes (`|`) are parsed and dropped:
/// they annotate the value that follows them, which is what is returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RespValue {
    /// `+`
    SimpleString(String),
    /// `-`
    Error(String),
    /// `:`
    Integer(i64),
    /// `$` (non-null)
    BulkString(BulkString),
    /// `$-1`, `*-1` (RESP2) and `_` (RESP3)
    Null,
    /// `*`
    Array(Aggregate),
    /// `,` as sent (e.g. "3.14", "inf")
    Double(String),
    /// `#`
    Boolean(bool),
    /// `!`
    BlobError(BulkString),
    /// `=`; `data` starts with the three-letter format and ':' ("txt:...").
    Verbatim(BulkString),
    /// `(` as sent
    BigNumber(String),
    /// `%`
    Map(Aggregate),
    /// `~`
    Set(Aggregate),
    /// `>`
    Push(Aggregate),
}

impl RespValue {
    /// Shorthand for a bulk string holding `data`.
    pub fn bulk(data: &[u8]) -> Self {
        RespValue::BulkString(BulkString::new(data))
    }

    /// An array of bulk strings, as clients send commands.
    pub fn command(args: &[&[u8]]) -> Self {
        RespValue::Array(Aggregate::new(args.iter().map(|a| Self::bulk(a)).collect()))
    }

    /// Elements of an array, set or push.
    pub fn elements(&self) -> Option<&[RespValue]> {
        match self {
            RespValue::Array(a) | RespValue::Set(a) | RespValue::Push(a) => Some(&a.items),
            _ => None,
        }
    }

    /// Bytes of a string-like value (simple, bulk, verbatim without format).
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            RespValue::SimpleString(s) => Some(s.as_bytes()),
            RespValue::BulkString(b) => Some(&b.data),
            RespValue::Verbatim(b) => Some(b.data.get(4..).unwrap_or_default()),
            _ => None,
        }
    }

    /// True for `-` and `!` errors.
    pub fn is_error(&self) -> bool {
        matches!(self, RespValue::Error(_) | RespValue::BlobError(_))
    }
}
