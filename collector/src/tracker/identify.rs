//! Protocol identification of a stream from its first bytes (revisable: a
//! session that keeps failing is dropped and the next bytes are looked at
//! afresh). A well-known port only breaks ties between weak evidence.

use std::sync::Arc;

use sonde_protocols::{Protocol, detect_with_hint};
use sonde_query::records::{ConnFields, TraceRole};

use super::Context;
use super::connection::{Connection, ProtocolState};
use super::feed::parse;
use crate::sessions::{Dir, new_stream_session, request_dir};

/// Without a match, this many buffered bytes mean "not a protocol we parse".
const DETECT_GIVE_UP_BYTES: usize = 256;
/// A connection that has never shown a protocol we parse in this many bytes
/// is opaque: the kernel stops copying it (its sizes still arrive, so
/// conn_stats stays exact). Large enough for a few request/response rounds
/// of a stream joined mid-way to resynchronise first.
pub(super) const OPAQUE_AFTER_UNKNOWN_BYTES: u64 = 256 << 10;

/// Tries to identify the protocol from the buffer of `dir`; true once identified.
pub(super) fn identify(conn: &mut Connection, dir: Dir, ctx: &mut Context) -> bool {
    let buffer = &mut conn.dirs[dir.index()].buffer;
    let detection = detect_with_hint(buffer.bytes(), port_hint(&conn.fields));
    let session = detection.and_then(|d| new_stream_session(d, dir, &ctx.config.sessions));
    let (Some(detection), Some(session)) = (detection, session) else {
        // Another protocol (not parsed), or no evidence after enough bytes:
        // count and drop, and look again at the next bytes.
        if detection.is_some() || buffer.len() >= DETECT_GIVE_UP_BYTES {
            ctx.counters.protocol_unknown_bytes.add(buffer.len() as u64);
            conn.unknown_bytes += buffer.len() as u64;
            buffer.consume(buffer.len());
            if conn.last_protocol.is_none() && conn.unknown_bytes >= OPAQUE_AFTER_UNKNOWN_BYTES {
                ctx.counters.conns_opaque.inc();
                conn.protocol = ProtocolState::Opaque;
            }
        }
        return false;
    };
    // The protocol says who is who: the side that sends requests is the client.
    let role = if request_dir(detection, dir) == Dir::Egress {
        TraceRole::Client
    } else {
        TraceRole::Server
    };
    if conn.fields.trace_role != role {
        Arc::make_mut(&mut conn.fields).trace_role = role;
    }
    conn.protocol = ProtocolState::Session(session);
    conn.last_protocol = Some(detection.protocol);
    // The other direction may have bytes waiting from before the protocol was known.
    if !conn.dirs[dir.other().index()].buffer.is_empty() {
        parse(conn, dir.other(), ctx);
    }
    true
}

/// The protocol a well-known port suggests. Only a tie-breaker for weak
/// evidence: the bytes decide.
fn port_hint(fields: &ConnFields) -> Option<Protocol> {
    [fields.remote_port, fields.local_port]
        .into_iter()
        .find_map(|port| match port {
            80 | 8080 | 8000 => Some(Protocol::Http),
            53 => Some(Protocol::Dns),
            3306 => Some(Protocol::Mysql),
            6379 => Some(Protocol::Redis),
            5432 => Some(Protocol::Pgsql),
            _ => None,
        })
}
