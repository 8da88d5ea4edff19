//! Hands a direction's reassembled pieces to its protocol session: bytes go
//! into the stream buffer and are parsed, gaps are announced at their place
//! in the stream; a session that gives up or hands over is replaced.

use super::Context;
use super::connection::{Connection, ProtocolState};
use super::identify::identify;
use super::reassembly::{Piece, Pieces, PushStats};
use crate::counters::CaptureCounters;
use crate::sessions::{Dir, Outcome};

pub(super) fn record_push_stats(counters: &CaptureCounters, stats: PushStats) {
    if stats.duplicate_bytes > 0 {
        counters.stream_duplicate_bytes.add(stats.duplicate_bytes);
    }
}

/// Hands reassembled pieces of one direction to the protocol layer.
pub(super) fn feed(conn: &mut Connection, dir: Dir, pieces: Pieces<'_>, ctx: &mut Context) {
    for piece in pieces {
        match piece {
            Piece::Data { ts, bytes } => conn.dirs[dir.index()].buffer.append(ts, &bytes),
            Piece::Gap { len, ts } => {
                // An opaque connection's bytes are not copied on purpose
                // (kernel_uncopied_bytes): not a loss.
                if !matches!(conn.protocol, ProtocolState::Opaque) {
                    ctx.counters.stream_gaps.inc();
                    ctx.counters.stream_gap_bytes.add(len);
                }
                parse(conn, dir, ctx);
                apply_gap(conn, dir, len, ts, ctx);
            }
        }
    }
    parse(conn, dir, ctx);
}

fn apply_gap(conn: &mut Connection, dir: Dir, len: u64, ts: u64, ctx: &mut Context) {
    let Connection {
        fields,
        dirs,
        protocol,
        ..
    } = conn;
    let buffer = &mut dirs[dir.index()].buffer;
    match protocol {
        ProtocolState::Session(session) => session.gap(dir, len, ts, buffer, &mut ctx.sink(fields)),
        ProtocolState::Unknown | ProtocolState::Opaque => buffer.clear_and_skip(len),
    }
}

/// Runs the protocol layer over the buffer of `dir` (identifying the
/// protocol first if needed).
pub(super) fn parse(conn: &mut Connection, dir: Dir, ctx: &mut Context) {
    if matches!(conn.protocol, ProtocolState::Unknown) && !identify(conn, dir, ctx) {
        return;
    }
    let outcome = match &mut conn.protocol {
        ProtocolState::Unknown => return,
        ProtocolState::Opaque => {
            let buffer = &mut conn.dirs[dir.index()].buffer;
            ctx.counters.protocol_unknown_bytes.add(buffer.len() as u64);
            buffer.consume(buffer.len());
            return;
        }
        ProtocolState::Session(session) => {
            let buffer = &mut conn.dirs[dir.index()].buffer;
            session.process(dir, buffer, &mut ctx.sink(&conn.fields))
        }
    };
    match outcome {
        Outcome::Continue => {}
        Outcome::Abandon => {
            // The guess was wrong: forget it and look again at the next bytes.
            ctx.counters.protocol_revisions.inc();
            if let ProtocolState::Session(session) = &mut conn.protocol {
                session.finish(&mut ctx.sink(&conn.fields));
            }
            for d in conn.dirs.iter_mut() {
                d.buffer.consume(d.buffer.len());
            }
            conn.protocol = ProtocolState::Unknown;
        }
        Outcome::Upgraded(None) => {
            for d in conn.dirs.iter_mut() {
                ctx.counters
                    .protocol_unknown_bytes
                    .add(d.buffer.len() as u64);
                d.buffer.consume(d.buffer.len());
            }
            conn.protocol = ProtocolState::Opaque;
            ctx.counters.conns_opaque.inc();
        }
        Outcome::Upgraded(Some(handover)) => {
            // The bytes after the switch (in the same reads as the switch,
            // in either direction) belong to the new protocol.
            conn.protocol = ProtocolState::Session(handover.session);
            conn.last_protocol = Some(handover.protocol);
            parse(conn, dir, ctx);
            parse(conn, dir.other(), ctx);
        }
    }
}
