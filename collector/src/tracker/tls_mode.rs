//! Which bytes of a TCP connection are its stream when TLS is involved: the
//! wire bytes, until a TLS handshake goes by (then they are ciphertext,
//! counted and not parsed), and the plaintext of the TLS library probes once
//! one sends some (then that is the stream, with positions of its own).

use std::sync::Arc;

use sonde_ebpf::events::{self, DataEventHeader};

use super::connection::{Connection, ProtocolState};
use crate::counters::CaptureCounters;
use crate::sessions::Dir;

/// What a connection's TLS library probes and wire bytes said so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TlsMode {
    /// No TLS seen: the wire bytes are the stream.
    None,
    /// A TLS handshake record went by on the wire: wire bytes are ciphertext
    /// (counted, not parsed) until a library probe sends plaintext, if ever.
    Ciphertext,
    /// A library probe sent plaintext: that is the stream; wire bytes are ignored.
    Plaintext,
}

/// Sorts a TCP data event by TLS: plaintext from a library probe switches the
/// connection to the plaintext stream (once); wire bytes of a TLS connection
/// are counted, not parsed. True if the event goes on to reassembly.
pub(super) fn admit(
    conn: &mut Connection,
    dir: Dir,
    header: &DataEventHeader,
    payload: &[u8],
    counters: &CaptureCounters,
) -> bool {
    if header.flags & events::DATA_TLS != 0 {
        if conn.tls != TlsMode::Plaintext {
            switch_to_plaintext(conn, counters);
        }
        counters.tls_plaintext_bytes.add(payload.len() as u64);
        return true;
    }
    let at_boundary = conn.dirs[dir.index()].buffer.is_empty()
        && conn.dirs[dir.index()]
            .reassembler
            .as_ref()
            .is_none_or(|r| r.next_position() == header.position);
    if conn.tls == TlsMode::None && at_boundary && is_tls_handshake_record(payload) {
        conn.tls = TlsMode::Ciphertext;
    }
    match conn.tls {
        TlsMode::None => true,
        TlsMode::Ciphertext => {
            // Wire bytes still count in conn_stats until plaintext takes over.
            conn.bytes[dir.index()] = conn.bytes[dir.index()].max(header.call_end);
            counters.tls_ciphertext_bytes.add(payload.len() as u64);
            false
        }
        TlsMode::Plaintext => {
            counters.tls_ciphertext_bytes.add(payload.len() as u64);
            false
        }
    }
}

/// From now on the connection's stream is the plaintext of its TLS library
/// calls (positions from 0): what was buffered from the wire is dropped, the
/// protocol is identified afresh, rows say `encrypted`, and conn_stats counts
/// plaintext bytes.
fn switch_to_plaintext(conn: &mut Connection, counters: &CaptureCounters) {
    counters.tls_connections.inc();
    for d in conn.dirs.iter_mut() {
        counters.tls_ciphertext_bytes.add(d.buffer.len() as u64);
        d.buffer.consume(d.buffer.len());
        d.reassembler = None;
    }
    // A plaintext prelude (e.g. MySQL's greeting before STARTTLS) was parsed
    // already; its session cannot continue on the new stream.
    conn.protocol = ProtocolState::Unknown;
    Arc::make_mut(&mut conn.fields).encrypted = true;
    conn.tls = TlsMode::Plaintext;
    conn.bytes = [0; 2];
}

/// The start of a TLS handshake record: content type 22, version 3.x (SSL 3.0
/// to TLS 1.3 record versions), a length within the record limit.
pub(super) fn is_tls_handshake_record(bytes: &[u8]) -> bool {
    match bytes {
        [0x16, 0x03, minor, hi, lo, ..] => {
            let len = u16::from_be_bytes([*hi, *lo]);
            *minor <= 0x04 && len > 0 && len <= 16_384 + 2_048
        }
        _ => false,
    }
}
