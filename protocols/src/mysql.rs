//! MySQL: packet framing, an incremental packet decoder per direction and a
//! pure connection state machine that turns packets into exchanges (rows).
//!
//! The caller runs one [`MysqlPacketDecoder`] per direction, like the HTTP
//! decoder, and hands each packet to [`MysqlPairing::on_client_packet`] or
//! [`MysqlPairing::on_server_packet`] with the time it was seen; those
//! return a [`MysqlExchange`] when a command's response is complete (at once
//! for commands without a response). The pairing follows the handshake
//! (greeting, handshake response, auth switch and more-data rounds until
//! OK/ERR) and never keeps the auth response; it knows prepared statements
//! (bounded map of statement id to SQL text and parameter types) and decodes
//! COM_STMT_EXECUTE parameters from the binary protocol.
//!
//! Not followed: TLS (after an SSL request the pairing stops), compressed
//! protocol (stops), replication streams (stops after COM_BINLOG_DUMP).

mod binary;
mod consts;
pub(crate) mod detect;
mod packet;
mod pairing;
pub(crate) mod redact;

use std::fmt;

pub use consts::*;
pub use packet::{MysqlPacketDecoder, find_message_start};
pub use pairing::{MysqlExchange, MysqlPairing, MysqlStatus, command_name};

/// Caps of the decoder and the pairing.
#[derive(Debug, Clone)]
pub struct MysqlConfig {
    /// How many bytes of each logical payload are kept. Default 16 KiB.
    pub max_kept_bytes: usize,
    /// Largest logical payload accepted (MySQL's max_allowed_packet can be
    /// at most 1 GiB). Default 1 GiB.
    pub max_packet_len: u64,
    /// Longest `req_body` / `resp_body` text. Default 4096.
    pub max_body_len: usize,
    /// Prepared statements remembered per connection. Default 256.
    pub max_statements: usize,
}

impl Default for MysqlConfig {
    fn default() -> Self {
        Self {
            max_kept_bytes: 16 * 1024,
            max_packet_len: 1 << 30,
            max_body_len: 4096,
            max_statements: 256,
        }
    }
}

/// Why bytes could not be decoded. After an error the decoder is idle; the
/// caller resyncs with [`find_message_start`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MysqlError {
    /// A logical payload larger than `max_packet_len`.
    TooLarge,
}

impl fmt::Display for MysqlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MysqlError::TooLarge => "MySQL packet too large",
        })
    }
}

impl std::error::Error for MysqlError {}

/// One logical packet: physical packets of 0xffffff bytes continue in the
/// next one and are joined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MysqlPacket {
    /// Sequence id of the first physical packet.
    pub seq: u8,
    /// The first `max_kept_bytes` of the payload (a true prefix: nothing
    /// after a gap is kept).
    pub payload: Vec<u8>,
    /// Length of the whole logical payload.
    pub len: u64,
    /// Part of the payload was lost in a capture gap.
    pub incomplete: bool,
}

impl MysqlPacket {
    pub fn new(seq: u8, payload: &[u8]) -> Self {
        Self {
            seq,
            payload: payload.to_vec(),
            len: payload.len() as u64,
            incomplete: false,
        }
    }

    /// All of the payload is in `payload`.
    pub fn is_whole(&self) -> bool {
        !self.incomplete && self.payload.len() as u64 == self.len
    }

    /// First payload byte (the command, or a response's header byte).
    pub fn first(&self) -> Option<u8> {
        self.payload.first().copied()
    }
}
