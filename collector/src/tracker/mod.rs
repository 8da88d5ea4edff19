//! Connection tracking: kernel records in, typed rows out.
//!
//! Each connection (pid, process start, fd, generation) has two directions,
//! each with a reassembler (order, gaps) and a buffer of unparsed bytes, and
//! one protocol state. This module dispatches the kernel's records to the
//! connection table; the rooms beside it do one job each: `reassembly`
//! (order by stream position), `tls_mode` (which bytes are the stream),
//! `identify` (which protocol), `feed` (pieces to the protocol session),
//! `datagrams` (UDP), `conn_stats` (per-connection byte rows), `connection`
//! (its state and identity columns), `k8s_fields` (pod columns).

mod conn_stats;
mod connection;
mod datagrams;
mod feed;
mod identify;
pub mod k8s_fields;
mod process_names;
pub mod reassembly;
mod tls_mode;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::sync::Arc;

use sonde_ebpf::events::{self, CloseEvent, ConnId, DataEventHeader, Event, OpenEvent};
use sonde_query::records::ConnFields;

use crate::clock::Clock;
use crate::counters::CaptureCounters;
use crate::sessions::{Dir, Exchanges, FlushedTable, RowBuilders, RowSink, SessionConfig};
use connection::{Connection, ProtocolState, Transport};
use feed::{feed, record_push_stats};
use k8s_fields::K8sEnricher;
use process_names::ProcessNames;
use reassembly::{Chunk, Pieces, Reassembler};

/// Open connections with new traffic get a conn_stats row this often.
const CONN_STATS_INTERVAL_NS: u64 = 10_000_000_000;

#[derive(Debug, Clone)]
pub struct TrackerConfig {
    pub sessions: SessionConfig,
    pub max_connections: usize,
    /// Out-of-order bytes held per direction before the missing range is declared lost.
    pub max_held_bytes_per_direction: usize,
    /// All buffered bytes (unparsed + held) across connections; beyond, new data is dropped as a gap.
    pub max_buffered_bytes: usize,
    /// How long missing bytes are waited for before they become a gap.
    pub reorder_wait_ns: u64,
    /// Connections idle this long are dropped if their process is gone.
    pub idle_check_ns: u64,
    /// Open connections with new traffic get a conn_stats row this often.
    pub conn_stats_interval_ns: u64,
    /// Keep the typed exchange rows of each flush for the exporter.
    pub keep_exchanges: bool,
    /// This node's name, for the `node` column of every row.
    pub node_name: Option<String>,
}

impl Default for TrackerConfig {
    fn default() -> Self {
        Self {
            sessions: SessionConfig::default(),
            max_connections: 65_536,
            max_held_bytes_per_direction: 1 << 20,
            max_buffered_bytes: 256 << 20,
            reorder_wait_ns: 500_000_000,
            idle_check_ns: 60_000_000_000,
            conn_stats_interval_ns: CONN_STATS_INTERVAL_NS,
            keep_exchanges: false,
            node_name: None,
        }
    }
}

/// What every connection needs from the tracker while it parses: kept
/// apart from the connection table so both can be borrowed at once.
struct Context {
    config: TrackerConfig,
    counters: CaptureCounters,
    clock: Clock,
    rows: RowBuilders,
    /// Opaque connections the kernel should stop copying (see `take_stop_copying`).
    stop_copying: Vec<ConnId>,
}

impl Context {
    fn sink<'a>(&'a mut self, conn: &'a Arc<ConnFields>) -> RowSink<'a> {
        RowSink {
            conn,
            clock: &self.clock,
            rows: &mut self.rows,
            counters: &self.counters,
        }
    }
}

pub struct Tracker {
    ctx: Context,
    conns: BTreeMap<ConnId, Connection>,
    buffered_bytes: usize,
    /// Kubernetes metadata, when running in (or pointed at) a cluster.
    k8s: Option<K8sEnricher>,
    /// Names of processes whose connections' open events were lost.
    names: ProcessNames,
}

impl Tracker {
    pub fn new(config: TrackerConfig, counters: CaptureCounters) -> Self {
        let rows = if config.keep_exchanges {
            RowBuilders::keeping_exchanges()
        } else {
            RowBuilders::default()
        };
        Self {
            ctx: Context {
                config,
                counters,
                clock: Clock::sample(),
                rows,
                stop_copying: Vec::new(),
            },
            conns: BTreeMap::new(),
            buffered_bytes: 0,
            k8s: None,
            names: ProcessNames::default(),
        }
    }

    pub fn with_kubernetes(mut self, enricher: K8sEnricher) -> Self {
        self.k8s = Some(enricher);
        self
    }

    pub fn counters(&self) -> &CaptureCounters {
        &self.ctx.counters
    }

    #[cfg(test)]
    pub fn connection_count(&self) -> usize {
        self.conns.len()
    }

    /// Decodes and handles one ring-buffer record. Returns the (tgid, fd) keys of
    /// kernel connection-map entries to delete (after a process exit).
    pub fn handle_record(&mut self, record: &[u8]) -> Vec<(u32, i32)> {
        let counters = &self.ctx.counters;
        match Event::decode(record) {
            Ok(Event::Open(open)) => {
                counters.events_open.inc();
                self.on_open(&open);
            }
            Ok(Event::Data { header, payload }) => {
                counters.events_data.inc();
                // Every later position sum (reassembly, stream buffers) is
                // bounded by call_end, so one check here keeps them exact.
                let end = header.position.checked_add(payload.len() as u64);
                if end.is_none_or(|end| end > header.call_end) {
                    counters.events_malformed.inc();
                    return Vec::new();
                }
                counters.bytes_captured.add(payload.len() as u64);
                self.on_data(&header, payload);
            }
            Ok(Event::Close(close)) => {
                counters.events_close.inc();
                self.on_close(&close);
            }
            Ok(Event::ProcExit(header)) => {
                counters.events_proc_exit.inc();
                return self.on_process_exit(header.conn.tgid);
            }
            Err(err) => {
                counters.events_malformed.inc();
                tracing::debug!(%err, "malformed ring buffer record");
            }
        }
        Vec::new()
    }

    /// Bytes of connection state held now (see `TrackerConfig::max_buffered_bytes`).
    pub fn buffered_bytes(&self) -> usize {
        self.buffered_bytes
    }

    /// Connections found opaque since the last call: the kernel need not copy
    /// their bytes any more (sizes still come, so positions stay exact).
    pub fn take_stop_copying(&mut self) -> Vec<ConnId> {
        std::mem::take(&mut self.ctx.stop_copying)
    }

    fn on_open(&mut self, open: &OpenEvent) {
        let id = open.hdr.conn;
        // A new generation on the same fd replaces whatever was there.
        if let Some(previous) = self.find_same_fd(&id) {
            self.finish_connection(&previous);
        }
        if !admit_connection(self.conns.len(), &self.ctx) {
            return;
        }
        let mut fields = connection::fields_from_open(open);
        if let Some(k8s) = self.k8s.as_mut() {
            fields.k8s = k8s.fields(id.tgid, id.proc_start_ns, &fields.remote_addr);
        }
        if fields.k8s.node.is_none() {
            // Every row says where it was captured (one query can span nodes).
            fields.k8s.node.clone_from(&self.ctx.config.node_name);
        }
        let transport = if open.sock_type == events::SOCK_DGRAM {
            Transport::Udp
        } else {
            Transport::Tcp
        };
        self.conns.insert(
            id,
            Connection::new(fields, transport, open.hdr.timestamp_ns),
        );
    }

    fn find_same_fd(&self, id: &ConnId) -> Option<ConnId> {
        let low = ConnId {
            tgid: id.tgid,
            fd: id.fd,
            proc_start_ns: 0,
            generation: 0,
        };
        let high = ConnId {
            tgid: id.tgid,
            fd: id.fd,
            proc_start_ns: u64::MAX,
            generation: u64::MAX,
        };
        self.conns
            .range(low..=high)
            .map(|(k, _)| *k)
            .find(|k| k != id)
    }

    fn on_data(&mut self, header: &DataEventHeader, payload: &[u8]) {
        let id = header.hdr.conn;
        let over_budget = self.buffered_bytes > self.ctx.config.max_buffered_bytes;
        let dir = if header.direction == events::DIR_EGRESS {
            Dir::Egress
        } else {
            Dir::Ingress
        };
        // One map lookup for a known connection (every record but a few).
        let tracked = self.conns.len();
        let conn = match self.conns.entry(id) {
            Entry::Occupied(known) => known.into_mut(),
            Entry::Vacant(unknown) => {
                // The open event was lost (ring buffer full): track with what we know.
                self.ctx.counters.events_unknown_conn.inc();
                if !admit_connection(tracked, &self.ctx) {
                    return;
                }
                let mut fields = connection::fields_without_open(&id, self.names.comm(&id));
                fields.k8s.node.clone_from(&self.ctx.config.node_name);
                unknown.insert(Connection::new(
                    fields,
                    Transport::Tcp,
                    header.hdr.timestamp_ns,
                ))
            }
        };
        let ctx = &mut self.ctx;
        let before = conn.buffered();
        conn.last_seen_ns = header.hdr.timestamp_ns;
        if conn.transport == Transport::Udp
            || tls_mode::admit(conn, dir, header, payload, &ctx.counters)
        {
            conn.bytes[dir.index()] = conn.bytes[dir.index()].max(header.call_end);
            let bytes = if over_budget {
                // Dropped as if never copied: the reassembler turns it into a gap.
                ctx.counters
                    .stream_buffer_dropped_bytes
                    .add(payload.len() as u64);
                &[][..]
            } else {
                payload
            };
            if conn.transport == Transport::Udp {
                // Datagrams are messages of their own: no stream to reassemble.
                datagrams::on_datagram(conn, dir, header, bytes, ctx);
            } else {
                let chunk = Chunk {
                    position: header.position,
                    ts: header.hdr.timestamp_ns,
                    bytes,
                    call_end: header.call_end,
                    last: header.flags & events::DATA_LAST != 0 || over_budget,
                };
                let max_held = ctx.config.max_held_bytes_per_direction;
                let mut pieces = Pieces::new();
                let stats = conn.dirs[dir.index()]
                    .reassembler
                    .get_or_insert_with(|| Reassembler::new(max_held))
                    .push(chunk, &mut pieces);
                record_push_stats(&ctx.counters, stats);
                feed(conn, dir, pieces, ctx);
            }
        }
        // No parser wants this connection's wire bytes any more: opaque, or
        // TLS ciphertext (its plaintext, if any, comes from the library
        // probes, which the kernel goes on copying).
        let unwanted =
            matches!(conn.protocol, ProtocolState::Opaque) || conn.tls != tls_mode::TlsMode::None;
        if unwanted && !conn.copy_stopped {
            conn.copy_stopped = true;
            ctx.stop_copying.push(id);
        }
        let after = conn.buffered();
        self.buffered_bytes = (self.buffered_bytes + after).saturating_sub(before);
    }

    fn on_close(&mut self, close: &CloseEvent) {
        let id = close.hdr.conn;
        if self.conns.contains_key(&id) {
            self.finish_connection(&id);
        } else {
            self.ctx.counters.events_unknown_conn.inc();
        }
    }

    fn on_process_exit(&mut self, tgid: u32) -> Vec<(u32, i32)> {
        let low = ConnId {
            tgid,
            fd: i32::MIN,
            proc_start_ns: 0,
            generation: 0,
        };
        let high = ConnId {
            tgid,
            fd: i32::MAX,
            proc_start_ns: u64::MAX,
            generation: u64::MAX,
        };
        let ids: Vec<ConnId> = self.conns.range(low..=high).map(|(k, _)| *k).collect();
        ids.iter()
            .map(|id| {
                self.finish_connection(id);
                (id.tgid, id.fd)
            })
            .collect()
    }

    /// Parses what is left, completes close-delimited messages, forgets the connection.
    fn finish_connection(&mut self, id: &ConnId) {
        let Some(mut conn) = self.conns.remove(id) else {
            return;
        };
        self.buffered_bytes = self.buffered_bytes.saturating_sub(conn.buffered());
        let ctx = &mut self.ctx;
        // Whatever was waiting for missing bytes will not get them now.
        for dir in [Dir::Egress, Dir::Ingress] {
            let mut pieces = Pieces::new();
            if let Some(r) = conn.dirs[dir.index()].reassembler.as_mut() {
                record_push_stats(&ctx.counters, r.expire(u64::MAX, 0, &mut pieces));
            }
            feed(&mut conn, dir, pieces, ctx);
        }
        if let ProtocolState::Session(session) = &mut conn.protocol {
            session.finish(&mut ctx.sink(&conn.fields));
        }
        if let Some(datagrams) = &conn.datagrams {
            ctx.counters.dns_unanswered.add(datagrams.pending() as u64);
        }
        let closed = conn.last_seen_ns;
        conn_stats::report(&mut conn, Some(closed), ctx);
    }

    /// Periodic work: resample the clock, time out missing bytes, drop connections
    /// of processes that are gone. `process_alive` is injected for testing.
    pub fn tick(&mut self, now_ns: u64, process_alive: impl Fn(u32) -> bool) -> Vec<(u32, i32)> {
        self.ctx.clock = Clock::sample();
        self.ctx
            .counters
            .connection_state_bytes
            .set(self.buffered_bytes as u64);
        let mut dead = Vec::new();
        let ctx = &mut self.ctx;
        for (id, conn) in self.conns.iter_mut() {
            let idle = now_ns.saturating_sub(conn.last_seen_ns);
            if idle >= ctx.config.idle_check_ns && !process_alive(id.tgid) {
                dead.push(*id);
                continue;
            }
            let before = conn.buffered();
            for dir in [Dir::Egress, Dir::Ingress] {
                let mut pieces = Pieces::new();
                if let Some(r) = conn.dirs[dir.index()].reassembler.as_mut() {
                    let stats = r.expire(now_ns, ctx.config.reorder_wait_ns, &mut pieces);
                    record_push_stats(&ctx.counters, stats);
                }
                if !pieces.is_empty() {
                    feed(conn, dir, pieces, ctx);
                }
            }
            if let Some(datagrams) = conn.datagrams.as_mut() {
                ctx.counters
                    .dns_unanswered
                    .add(datagrams.expire(now_ns) as u64);
            }
            let after = conn.buffered();
            self.buffered_bytes = (self.buffered_bytes + after).saturating_sub(before);
            let due = now_ns.saturating_sub(conn.reported_ns) >= ctx.config.conn_stats_interval_ns;
            if due && conn.bytes != conn.reported_bytes {
                conn_stats::report(conn, None, ctx);
                conn.reported_ns = now_ns;
            }
        }
        dead.iter()
            .map(|id| {
                self.ctx.counters.conns_expired.inc();
                self.finish_connection(id);
                (id.tgid, id.fd)
            })
            .collect()
    }

    /// Rows parsed since the last call, one entry per table that has some.
    pub fn take_batches(&mut self) -> Vec<FlushedTable> {
        self.ctx.rows.take()
    }

    /// Typed rows the exporter has read, back to be freed and reused.
    pub fn recycle(&mut self, exchanges: Exchanges) {
        self.ctx.rows.recycle(exchanges);
    }

    pub fn pending_rows(&self) -> usize {
        self.ctx.rows.pending_rows()
    }

    /// Finishes every connection (agent shutdown).
    pub fn finish_all(&mut self) {
        let ids: Vec<ConnId> = self.conns.keys().copied().collect();
        for id in ids {
            self.finish_connection(&id);
        }
    }
}

/// Room for one more connection beside `tracked`? (Counted when there is none.)
fn admit_connection(tracked: usize, ctx: &Context) -> bool {
    let counters = &ctx.counters;
    if tracked >= ctx.config.max_connections {
        counters.conns_table_full.inc();
        return false;
    }
    counters.conns_tracked.inc();
    true
}
