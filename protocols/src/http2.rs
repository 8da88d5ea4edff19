//! HTTP/2 (RFC 9113) with HPACK (RFC 7541) and gRPC: an incremental frame
//! decoder per direction and a pure per-connection session that turns frames
//! into one [`Http2Stream`] event per completed stream.
//!
//! The caller runs one [`Http2Decoder`] per direction with the crate's common
//! convention (`decode` → `Decoded<Frame>`, `skip_gap`, `reset`, `is_idle`,
//! [`find_message_start`] to resync) and hands every frame, with the sender
//! (`MessageKind::Request` = the client) and the capture times of its first
//! and last byte, to [`Http2Session::on_frame`]. The session owns the two
//! HPACK decoders (one per sending side), because a side's header table
//! size is set by the SETTINGS the *other* side sends.
//!
//! Bodies are never buffered: a DATA frame hands out only its first
//! [`Http2Config::data_frame_prefix_bytes`] and its exact length, and the
//! decoder absorbs lost bytes inside any frame's payload (the kernel copies
//! frame heads, not bodies) without losing the framing. Only a loss that
//! covers a frame header costs a resync; the decoder then reports a
//! [`Frame::Discontinuity`] so the session knows that header blocks of that
//! direction may have been lost.
//!
//! A session that joins a connection mid-way ([`Http2Session::mid_stream`],
//! or after a discontinuity) cannot know the dynamic table the peers built
//! before: it keeps decoding, emits what it can, counts the fields it cannot
//! decode ([`Http2Counters::hpack_unknown_fields`]) and never guesses.

mod decoder;
pub(crate) mod detect;
mod frame;
mod grpc;
mod hpack;
mod session;

use std::fmt;

pub use decoder::{Http2Decoder, find_message_start};
pub use detect::{frame_sender, header_block_sender};
pub use frame::{DataFrame, Frame, HeaderBlock, Setting};
pub use grpc::{GrpcCall, GrpcMessages};
pub use session::{
    Http2Counters, Http2Message, Http2Session, Http2Stream, PeerSettings, StreamEnd,
};

use crate::RedactedNames;
use crate::http::HttpConfig;

/// The client connection preface (RFC 9113 section 3.4).
pub const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Largest frame payload the protocol can express (2^24 - 1).
pub const MAX_FRAME_SIZE_LIMIT: u32 = (1 << 24) - 1;

/// Initial SETTINGS_MAX_FRAME_SIZE and SETTINGS_HEADER_TABLE_SIZE.
pub const DEFAULT_MAX_FRAME_SIZE: u32 = 16_384;
pub const DEFAULT_HEADER_TABLE_SIZE: u32 = 4_096;

/// Caps and policies of the decoder and the session.
#[derive(Debug, Clone)]
pub struct Http2Config {
    /// Longest header block (HEADERS or PUSH_PROMISE with its CONTINUATION
    /// frames) kept for HPACK decoding. A longer block is decoded as far as
    /// it was kept and counted ([`Http2Counters::header_blocks_too_large`]);
    /// the header table of its direction is then no longer known. Default
    /// 64 KiB.
    pub max_header_block_bytes: usize,
    /// Regular header fields kept per header block (more are counted and
    /// dropped). Default 64, as HTTP/1's `max_headers`.
    pub max_headers: usize,
    /// Bytes handed out from the start of each DATA frame: the source of the
    /// body prefix and of gRPC message prefixes. Default 4 KiB.
    pub data_frame_prefix_bytes: usize,
    /// Bytes of each body kept per stream and direction. Default 1024.
    pub body_prefix_bytes: usize,
    /// Header names (compared case-insensitively) whose values are replaced
    /// by `<redacted>`. Default: HTTP/1's list.
    pub redacted_headers: RedactedNames,
    /// Streams followed at once per connection; beyond, the least recently
    /// active is dropped ([`Http2Counters::streams_evicted`]). Default 256.
    pub max_streams: usize,
    /// Largest dynamic table mirrored per direction (RFC 7541 size: name +
    /// value + 32 per entry). A peer using a larger one is followed as far
    /// as this goes; older entries become unknown. Default 64 KiB.
    pub max_table_size: usize,
}

impl Default for Http2Config {
    fn default() -> Self {
        Self::from_http(&HttpConfig::default())
    }
}

impl Http2Config {
    /// The HTTP/2 caps with HTTP/1's redaction list, body prefix and header
    /// count, so both versions store the same kind of rows.
    pub fn from_http(http: &HttpConfig) -> Self {
        Self {
            max_header_block_bytes: 64 * 1024,
            max_headers: http.max_headers,
            data_frame_prefix_bytes: 4 * 1024,
            body_prefix_bytes: http.body_prefix_bytes,
            redacted_headers: http.redacted_headers.clone(),
            max_streams: 256,
            max_table_size: 64 * 1024,
        }
    }
}

/// Why bytes could not be decoded as HTTP/2 frames. Each is a connection
/// error for a real peer, so for an observer it means the bytes are not (or
/// no longer) in step with the frames: the caller resets the decoder and
/// resyncs with [`find_message_start`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Http2Error {
    /// A frame longer than the decoder's maximum frame size.
    FrameTooLarge,
    /// A frame whose length, stream id or padding breaks its type's rules.
    InvalidFrame,
    /// A CONTINUATION frame without an open header block, or another frame
    /// where a CONTINUATION must follow.
    UnexpectedContinuation,
}

impl fmt::Display for Http2Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Http2Error::FrameTooLarge => "HTTP/2 frame larger than the maximum frame size",
            Http2Error::InvalidFrame => "malformed HTTP/2 frame",
            Http2Error::UnexpectedContinuation => "HTTP/2 header block interrupted",
        })
    }
}

impl std::error::Error for Http2Error {}
