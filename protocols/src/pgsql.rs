//! PostgreSQL (frontend/backend protocol 3.x): an incremental message decoder
//! per direction and a pure connection state machine that pairs requests
//! with responses and turns them into events (rows).
//!
//! The caller runs one [`PgDecoder`] per direction (requests from the
//! client: `MessageKind::Request`, the server's replies: `Response`), with
//! the crate's common calling convention, and hands each message to
//! [`PgSession::on_frontend`] or [`PgSession::on_backend`] with the time it
//! was seen; those return a [`PgEvent`] when an exchange is complete.
//!
//! What the session follows: the startup (protocol 3.0, user and database
//! kept for the connection), SSLRequest and GSSENCRequest with the server's
//! one-byte answer (after `S` the stream is TLS: [`PgSession::encryption`]),
//! authentication (cleartext, MD5, SASL/SCRAM; the password messages are
//! never kept, not even by the decoder), simple queries (one event per
//! statement of a multi-statement query), the extended protocol (Parse,
//! Bind, Describe, Execute, Sync, Close, Flush; named and unnamed statements
//! and portals; pipelined batches: one event per Execute with the bound
//! parameters rendered), COPY in and out, CancelRequest, Terminate, notices
//! and notifications. State is bounded by [`PgConfig`]; what the caps drop is
//! counted in [`PgCounters`].

pub(crate) mod detect;
mod event;
mod frame;
mod message;
mod prepared;
mod session;
mod split;
mod values;

use std::fmt;

pub use event::{Encryption, PgCommand, PgCounters, PgEvent};
pub use frame::{PgDecoder, find_message_start};
pub use message::tag_rows;
pub use session::PgSession;
pub use split::split_statements;
pub use values::render_value;

/// Protocol version 3.0 in a StartupMessage.
pub const PROTOCOL_3_0: u32 = 196_608;
/// The code of an SSLRequest.
pub const SSL_REQUEST_CODE: u32 = 80_877_103;
/// The code of a GSSENCRequest.
pub const GSSENC_REQUEST_CODE: u32 = 80_877_104;
/// The code of a CancelRequest.
pub const CANCEL_REQUEST_CODE: u32 = 80_877_102;
/// Longest untyped (startup-phase) message a server accepts
/// (MAX_STARTUP_PACKET_LENGTH).
pub const MAX_STARTUP_LEN: u32 = 10_000;

/// Caps of the decoder and the session.
#[derive(Debug, Clone)]
pub struct PgConfig {
    /// How many bytes of each message body are kept (statement texts, bound
    /// parameters, error fields). DataRow and CopyData bodies and password
    /// messages are never kept. Default 16 KiB.
    pub max_kept_bytes: usize,
    /// Largest message length accepted (PostgreSQL's own limit is 1 GiB).
    /// Default 1 GiB.
    pub max_message_len: u32,
    /// Longest `req` / `resp` text of an event; longer ones end in "...".
    /// Default 4096.
    pub max_text_len: usize,
    /// Prepared statements remembered per connection (named ones; the
    /// unnamed one is always kept). Default 256.
    pub max_statements: usize,
    /// Named portals remembered per connection. Default 64.
    pub max_portals: usize,
    /// Requests waiting for their response (a pipelined batch counts one per
    /// Parse/Bind/Describe/Execute/Close/Sync). Default 1024.
    pub max_pending: usize,
    /// Statements of one simple query paired one by one; the rest are
    /// reported together. Default 256.
    pub max_query_statements: usize,
}

impl Default for PgConfig {
    fn default() -> Self {
        Self {
            max_kept_bytes: 16 * 1024,
            max_message_len: 1 << 30,
            max_text_len: 4096,
            max_statements: 256,
            max_portals: 64,
            max_pending: 1024,
            max_query_statements: 256,
        }
    }
}

/// Why bytes could not be decoded. After an error the decoder is idle; the
/// caller resyncs with [`find_message_start`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PgError {
    /// A type byte that starts no message of this direction.
    InvalidType,
    /// A length below the minimum, above `max_message_len`, or not the
    /// fixed length of its message type.
    InvalidLength,
}

impl fmt::Display for PgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PgError::InvalidType => "invalid PostgreSQL message type",
            PgError::InvalidLength => "invalid PostgreSQL message length",
        })
    }
}

impl std::error::Error for PgError {}

/// What kind of unit the decoder found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PgTag {
    /// A message with a type byte (`b'Q'`, `b'Z'`, ...).
    Typed(u8),
    /// A frontend message without a type byte (StartupMessage, SSLRequest,
    /// GSSENCRequest, CancelRequest): the body starts with its 4-byte code.
    Untyped,
    /// The server's one-byte answer to an SSLRequest or GSSENCRequest:
    /// `b'S'` (TLS follows), `b'G'` (GSS encryption follows) or `b'N'`.
    EncryptionAnswer(u8),
    /// The first bytes of a TLS record: the rest of this direction is
    /// ciphertext and is consumed without further messages.
    Encrypted,
}

/// One message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgMessage {
    pub tag: PgTag,
    /// Length of the body (what follows the type byte and the length).
    pub len: u32,
    /// The first bytes of the body (a true prefix: nothing after a gap is
    /// kept). Empty for DataRow, CopyData and password messages.
    pub body: Vec<u8>,
    /// Part of the body was lost in a capture gap.
    pub incomplete: bool,
}

impl PgMessage {
    /// A typed message with all of `body`.
    pub fn typed(tag: u8, body: &[u8]) -> Self {
        Self {
            tag: PgTag::Typed(tag),
            len: u32::try_from(body.len()).unwrap_or(u32::MAX),
            body: body.to_vec(),
            incomplete: false,
        }
    }

    /// The type byte of a typed message.
    pub fn type_byte(&self) -> Option<u8> {
        match self.tag {
            PgTag::Typed(t) => Some(t),
            _ => None,
        }
    }

    /// All of the body is in `body`.
    pub fn is_whole(&self) -> bool {
        !self.incomplete && self.body.len() as u64 == u64::from(self.len)
    }
}
