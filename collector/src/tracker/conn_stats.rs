//! `conn_stats` rows: every connection's bytes each way, when it closes and
//! periodically while it carries traffic — also when no parser knows it.

use std::sync::Arc;

use sonde_query::records::ConnStatsRow;

use super::Context;
use super::connection::Connection;
use crate::sessions::{Dir, protocol_name};

/// A conn_stats row for the connection; `closed_ns` is set when it closed.
pub(super) fn report(conn: &mut Connection, closed_ns: Option<u64>, ctx: &mut Context) {
    let clock = &ctx.clock;
    let to_i64 = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    let row = ConnStatsRow {
        time_ns: clock.to_unix_ns(closed_ns.unwrap_or(conn.last_seen_ns)),
        conn: Arc::clone(&conn.fields),
        transport: conn.transport.name(),
        protocol: protocol_name(conn.last_protocol),
        conn_open_ns: clock.to_unix_ns(conn.opened_ns),
        conn_close_ns: closed_ns.map_or(0, |ts| clock.to_unix_ns(ts)),
        bytes_sent: to_i64(conn.bytes[Dir::Egress.index()]),
        bytes_recv: to_i64(conn.bytes[Dir::Ingress.index()]),
    };
    ctx.rows.conn_stats.push(row);
    conn.reported_bytes = conn.bytes;
}
