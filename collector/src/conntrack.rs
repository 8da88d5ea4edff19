//! Connection tracking: kernel events in, parsed rows out.
//!
//! Each connection (pid, process start, fd, generation) has two directions, each
//! with a reassembler (order, gaps) and a window of unparsed bytes, and one
//! protocol state. The protocol is inferred from the bytes and revised when the
//! parser keeps failing.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use sonde_ebpf::events::{self, CloseEvent, ConnId, DataEventHeader, Event, OpenEvent};
use sonde_protocols::http::HttpConfig;
use sonde_protocols::{Detection, MessageKind, Protocol, detect_datagram, detect_with_hint};
use sonde_query::records::{ConnFields, ConnStatsRow, TraceRole};

use crate::clock::Clock;
use crate::counters::CaptureCounters;
use crate::dns_session::{DnsDatagrams, DnsStreamSession, Peer};
use crate::http_session::HttpSession;
use crate::k8s_meta::K8sEnricher;
use crate::mysql_session::MysqlStreamSession;
use crate::reassembly::{Chunk, Piece, PushStats, Reassembler};
use crate::redis_session::RedisStreamSession;
use crate::rows::RowBuilders;
use crate::session::{Dir, Outcome, ProtocolSession, RowSink, protocol_name};
use crate::window::Window;

/// Without a match, this many buffered bytes mean "not a protocol we parse".
const DETECT_GIVE_UP_BYTES: usize = 256;
/// Open connections with new traffic get a conn_stats row this often.
const CONN_STATS_INTERVAL_NS: u64 = 10_000_000_000;

#[derive(Debug, Clone)]
pub struct TrackerConfig {
    pub http: HttpConfig,
    pub max_connections: usize,
    /// Out-of-order bytes held per direction before the missing range is declared lost.
    pub max_held_bytes_per_direction: usize,
    /// All buffered bytes (windows + held) across connections; beyond, new data is dropped as a gap.
    pub max_buffered_bytes: usize,
    /// How long missing bytes are waited for before they become a gap.
    pub reorder_wait_ns: u64,
    /// Connections idle this long are dropped if their process is gone.
    pub idle_check_ns: u64,
    /// Open connections with new traffic get a conn_stats row this often.
    pub conn_stats_interval_ns: u64,
}

impl Default for TrackerConfig {
    fn default() -> Self {
        Self {
            http: HttpConfig::default(),
            max_connections: 65_536,
            max_held_bytes_per_direction: 1 << 20,
            max_buffered_bytes: 256 << 20,
            reorder_wait_ns: 500_000_000,
            idle_check_ns: 60_000_000_000,
            conn_stats_interval_ns: CONN_STATS_INTERVAL_NS,
        }
    }
}

enum ProtocolState {
    /// Not identified yet: bytes are buffered (a little) and offered to `detect`.
    Unknown,
    Session(Box<dyn ProtocolSession>),
    /// Not parsed (e.g. after an HTTP upgrade): bytes are only counted.
    Opaque,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transport {
    Tcp,
    Udp,
}

/// What a connection's TLS library probes and wire bytes said so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TlsMode {
    /// No TLS seen: the wire bytes are the stream.
    None,
    /// A TLS handshake record went by on the wire: wire bytes are ciphertext
    /// (counted, not parsed) until a library probe sends plaintext, if ever.
    Ciphertext,
    /// A library probe sent plaintext: that is the stream; wire bytes are ignored.
    Plaintext,
}

#[derive(Default)]
struct DirState {
    reassembler: Option<Reassembler>,
    window: Window,
}

struct Connection {
    fields: ConnFields,
    transport: Transport,
    dirs: [DirState; 2],
    protocol: ProtocolState,
    /// The protocol last identified (kept after an upgrade, for conn_stats).
    last_protocol: Option<Protocol>,
    opened_ns: u64,
    last_seen_ns: u64,
    /// Bytes moved each way (the highest stream position seen).
    bytes: [u64; 2],
    /// DNS state of a UDP socket (created with its first DNS datagram).
    datagrams: Option<Box<DnsDatagrams>>,
    /// `bytes` at the last conn_stats row, and when it was written.
    reported_bytes: [u64; 2],
    reported_ns: u64,
    tls: TlsMode,
}

impl Connection {
    fn buffered(&self) -> usize {
        self.dirs
            .iter()
            .map(|d| d.window.len() + d.reassembler.as_ref().map_or(0, Reassembler::held_bytes))
            .sum()
    }
}

/// Everything a connection needs from the tracker while it parses.
struct Shared<'a> {
    config: &'a TrackerConfig,
    counters: &'a CaptureCounters,
    clock: &'a Clock,
    rows: &'a mut RowBuilders,
}

impl Shared<'_> {
    fn sink<'b>(&'b mut self, conn: &'b ConnFields) -> RowSink<'b> {
        RowSink {
            conn,
            clock: self.clock,
            rows: self.rows,
            counters: self.counters,
        }
    }
}

pub struct Tracker {
    config: TrackerConfig,
    counters: CaptureCounters,
    clock: Clock,
    conns: BTreeMap<ConnId, Connection>,
    rows: RowBuilders,
    buffered_bytes: usize,
    /// Kubernetes metadata, when running in (or pointed at) a cluster.
    k8s: Option<K8sEnricher>,
}

impl Tracker {
    pub fn new(config: TrackerConfig, counters: CaptureCounters) -> Self {
        Self {
            config,
            counters,
            clock: Clock::sample(),
            conns: BTreeMap::new(),
            rows: RowBuilders::default(),
            buffered_bytes: 0,
            k8s: None,
        }
    }

    pub fn with_kubernetes(mut self, enricher: K8sEnricher) -> Self {
        self.k8s = Some(enricher);
        self
    }

    pub fn counters(&self) -> &CaptureCounters {
        &self.counters
    }

    #[cfg(test)]
    pub fn connection_count(&self) -> usize {
        self.conns.len()
    }

    /// Decodes and handles one ring-buffer record. Returns the (tgid, fd) keys of
    /// kernel connection-map entries to delete (after a process exit).
    pub fn handle_record(&mut self, record: &[u8]) -> Vec<(u32, i32)> {
        match Event::decode(record) {
            Ok(Event::Open(open)) => {
                self.counters.events_open.inc();
                self.on_open(&open);
            }
            Ok(Event::Data { header, payload }) => {
                self.counters.events_data.inc();
                self.counters.bytes_captured.add(payload.len() as u64);
                self.on_data(&header, payload);
            }
            Ok(Event::Close(close)) => {
                self.counters.events_close.inc();
                self.on_close(&close);
            }
            Ok(Event::ProcExit(header)) => {
                self.counters.events_proc_exit.inc();
                return self.on_process_exit(header.conn.tgid);
            }
            Err(err) => {
                self.counters.events_malformed.inc();
                tracing::debug!(%err, "malformed ring buffer record");
            }
        }
        Vec::new()
    }

    fn on_open(&mut self, open: &OpenEvent) {
        let id = open.hdr.conn;
        // A new generation on the same fd replaces whatever was there.
        if let Some(previous) = self.find_same_fd(&id) {
            self.finish_connection(&previous);
        }
        if self.conns.len() >= self.config.max_connections {
            self.counters.conns_table_full.inc();
            return;
        }
        self.counters.conns_tracked.inc();
        let mut fields = conn_fields_from_open(open);
        if let Some(k8s) = self.k8s.as_mut() {
            fields.k8s = k8s.fields(id.tgid, id.proc_start_ns, &fields.remote_addr);
        }
        let transport = if open.sock_type == events::SOCK_DGRAM {
            Transport::Udp
        } else {
            Transport::Tcp
        };
        self.conns
            .insert(id, new_connection(fields, transport, open.hdr.timestamp_ns));
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
        if !self.conns.contains_key(&id) {
            // The open event was lost (ring buffer full): track with what we know.
            self.counters.events_unknown_conn.inc();
            if self.conns.len() >= self.config.max_connections {
                self.counters.conns_table_full.inc();
                return;
            }
            self.counters.conns_tracked.inc();
            let fields = conn_fields_unknown(&id);
            self.conns.insert(
                id,
                new_connection(fields, Transport::Tcp, header.hdr.timestamp_ns),
            );
        }
        let over_budget = self.buffered_bytes > self.config.max_buffered_bytes;
        let dir = if header.direction == events::DIR_EGRESS {
            Dir::Egress
        } else {
            Dir::Ingress
        };
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        let before = conn.buffered();
        conn.last_seen_ns = header.hdr.timestamp_ns;
        if conn.transport == Transport::Tcp
            && !tls_filter(conn, dir, header, payload, &self.counters)
        {
            let after = conn.buffered();
            self.buffered_bytes = (self.buffered_bytes + after).saturating_sub(before);
            return;
        }
        conn.bytes[dir.index()] = conn.bytes[dir.index()].max(header.call_end);
        let mut shared = Shared {
            config: &self.config,
            counters: &self.counters,
            clock: &self.clock,
            rows: &mut self.rows,
        };
        let bytes = if over_budget {
            // Dropped as if never copied: the reassembler turns it into a gap.
            shared
                .counters
                .stream_buffer_dropped_bytes
                .add(payload.len() as u64);
            &[][..]
        } else {
            payload
        };
        if conn.transport == Transport::Udp {
            // Datagrams are messages of their own: no stream to reassemble.
            on_datagram(conn, dir, header, bytes, &mut shared);
            return;
        }
        let chunk = Chunk {
            position: header.position,
            ts: header.hdr.timestamp_ns,
            bytes,
            call_end: header.call_end,
            last: header.flags & events::DATA_LAST != 0 || over_budget,
        };
        let max_held = shared.config.max_held_bytes_per_direction;
        let mut pieces = Vec::new();
        let stats = conn.dirs[dir.index()]
            .reassembler
            .get_or_insert_with(|| Reassembler::new(max_held))
            .push(chunk, &mut pieces);
        record_push_stats(shared.counters, stats);
        feed(conn, dir, pieces, &mut shared);
        let after = conn.buffered();
        self.buffered_bytes = (self.buffered_bytes + after).saturating_sub(before);
    }

    fn on_close(&mut self, close: &CloseEvent) {
        let id = close.hdr.conn;
        if self.conns.contains_key(&id) {
            self.finish_connection(&id);
        } else {
            self.counters.events_unknown_conn.inc();
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
        let mut shared = Shared {
            config: &self.config,
            counters: &self.counters,
            clock: &self.clock,
            rows: &mut self.rows,
        };
        // Whatever was waiting for missing bytes will not get them now.
        for dir in [Dir::Egress, Dir::Ingress] {
            let mut pieces = Vec::new();
            if let Some(r) = conn.dirs[dir.index()].reassembler.as_mut() {
                record_push_stats(shared.counters, r.expire(u64::MAX, 0, &mut pieces));
            }
            feed(&mut conn, dir, pieces, &mut shared);
        }
        let Connection {
            fields, protocol, ..
        } = &mut conn;
        if let ProtocolState::Session(session) = protocol {
            session.finish(&mut shared.sink(fields));
        }
        if let Some(datagrams) = &conn.datagrams {
            shared
                .counters
                .dns_unanswered
                .add(datagrams.pending() as u64);
        }
        let closed = conn.last_seen_ns;
        report_conn_stats(&mut conn, Some(closed), &mut shared);
    }

    /// Periodic work: resample the clock, time out missing bytes, drop connections
    /// of processes that are gone. `process_alive` is injected for testing.
    pub fn tick(&mut self, now_ns: u64, process_alive: impl Fn(u32) -> bool) -> Vec<(u32, i32)> {
        self.clock = Clock::sample();
        let ids: Vec<ConnId> = self.conns.keys().copied().collect();
        let mut dead = Vec::new();
        for id in ids {
            let Some(conn) = self.conns.get_mut(&id) else {
                continue;
            };
            let idle = now_ns.saturating_sub(conn.last_seen_ns);
            if idle >= self.config.idle_check_ns && !process_alive(id.tgid) {
                dead.push(id);
                continue;
            }
            let before = conn.buffered();
            let mut shared = Shared {
                config: &self.config,
                counters: &self.counters,
                clock: &self.clock,
                rows: &mut self.rows,
            };
            for dir in [Dir::Egress, Dir::Ingress] {
                let mut pieces = Vec::new();
                if let Some(r) = conn.dirs[dir.index()].reassembler.as_mut() {
                    let stats = r.expire(now_ns, shared.config.reorder_wait_ns, &mut pieces);
                    record_push_stats(shared.counters, stats);
                }
                if !pieces.is_empty() {
                    feed(conn, dir, pieces, &mut shared);
                }
            }
            let after = conn.buffered();
            self.buffered_bytes = (self.buffered_bytes + after).saturating_sub(before);
            if let Some(datagrams) = conn.datagrams.as_mut() {
                shared
                    .counters
                    .dns_unanswered
                    .add(datagrams.expire(now_ns) as u64);
            }
            let due =
                now_ns.saturating_sub(conn.reported_ns) >= shared.config.conn_stats_interval_ns;
            if due && conn.bytes != conn.reported_bytes {
                report_conn_stats(conn, None, &mut shared);
                conn.reported_ns = now_ns;
            }
        }
        dead.iter()
            .map(|id| {
                self.counters.conns_expired.inc();
                self.finish_connection(id);
                (id.tgid, id.fd)
            })
            .collect()
    }

    /// Rows parsed since the last call, one batch per table that has some.
    pub fn take_batches(&mut self) -> Vec<(&'static str, arrow::record_batch::RecordBatch)> {
        self.rows.take_batches()
    }

    pub fn pending_rows(&self) -> usize {
        self.rows.pending_rows()
    }

    /// Finishes every connection (agent shutdown).
    pub fn finish_all(&mut self) {
        let ids: Vec<ConnId> = self.conns.keys().copied().collect();
        for id in ids {
            self.finish_connection(&id);
        }
    }
}

fn new_connection(fields: ConnFields, transport: Transport, now_ns: u64) -> Connection {
    Connection {
        fields,
        transport,
        dirs: [DirState::default(), DirState::default()],
        protocol: ProtocolState::Unknown,
        last_protocol: None,
        datagrams: None,
        opened_ns: now_ns,
        last_seen_ns: now_ns,
        bytes: [0; 2],
        reported_bytes: [0; 2],
        reported_ns: now_ns,
        tls: TlsMode::None,
    }
}

/// A conn_stats row for the connection; `closed_ns` is set when it closed.
fn report_conn_stats(conn: &mut Connection, closed_ns: Option<u64>, shared: &mut Shared<'_>) {
    let clock = shared.clock;
    let to_i64 = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    let row = ConnStatsRow {
        time_ns: clock.to_unix_ns(closed_ns.unwrap_or(conn.last_seen_ns)),
        conn: conn.fields.clone(),
        transport: match conn.transport {
            Transport::Tcp => "tcp".into(),
            Transport::Udp => "udp".into(),
        },
        protocol: protocol_name(conn.last_protocol).into(),
        conn_open_ns: clock.to_unix_ns(conn.opened_ns),
        conn_close_ns: closed_ns.map_or(0, |ts| clock.to_unix_ns(ts)),
        bytes_sent: to_i64(conn.bytes[Dir::Egress.index()]),
        bytes_recv: to_i64(conn.bytes[Dir::Ingress.index()]),
    };
    shared.rows.conn_stats.append(&row);
    conn.reported_bytes = conn.bytes;
}

/// One UDP datagram: a whole message with its own peer. DNS is parsed per
/// datagram; anything else is counted as unknown bytes.
fn on_datagram(
    conn: &mut Connection,
    dir: Dir,
    header: &DataEventHeader,
    payload: &[u8],
    shared: &mut Shared<'_>,
) {
    let is_dns = detect_datagram(payload).is_some_and(|d| d.protocol == Protocol::Dns);
    let peer = if header.peer.family == 0 {
        Peer {
            addr: conn.fields.remote_addr.clone(),
            port: conn.fields.remote_port,
        }
    } else {
        Peer {
            addr: ip_from(header.peer.family, &header.peer.addr).to_string(),
            port: i64::from(header.peer.port),
        }
    };
    let parsed = is_dns && {
        let datagrams = conn.datagrams.get_or_insert_with(Box::default);
        let mut sink = shared.sink(&conn.fields);
        datagrams.on_datagram(dir, peer, payload, header.hdr.timestamp_ns, &mut sink)
    };
    if parsed {
        conn.last_protocol = Some(Protocol::Dns);
    } else {
        shared
            .counters
            .protocol_unknown_bytes
            .add(payload.len() as u64);
    }
}

/// Sorts a TCP data event by TLS: plaintext from a library probe switches the
/// connection to the plaintext stream (once); wire bytes of a TLS connection
/// are counted, not parsed. True if the event goes on to reassembly.
fn tls_filter(
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
    let at_boundary = conn.dirs[dir.index()].window.is_empty()
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
        counters.tls_ciphertext_bytes.add(d.window.len() as u64);
        d.window.consume(d.window.len());
        d.reassembler = None;
    }
    // A plaintext prelude (e.g. MySQL's greeting before STARTTLS) was parsed
    // already; its session cannot continue on the new stream.
    conn.protocol = ProtocolState::Unknown;
    conn.fields.encrypted = true;
    conn.tls = TlsMode::Plaintext;
    conn.bytes = [0; 2];
}

/// The start of a TLS handshake record: content type 22, version 3.x (SSL 3.0
/// to TLS 1.3 record versions), a length within the record limit.
fn is_tls_handshake_record(bytes: &[u8]) -> bool {
    match bytes {
        [0x16, 0x03, minor, hi, lo, ..] => {
            let len = u16::from_be_bytes([*hi, *lo]);
            *minor <= 0x04 && len > 0 && len <= 16_384 + 2_048
        }
        _ => false,
    }
}

fn record_push_stats(counters: &CaptureCounters, stats: PushStats) {
    if stats.duplicate_bytes > 0 {
        counters.stream_duplicate_bytes.add(stats.duplicate_bytes);
    }
}

/// Hands reassembled pieces of one direction to the protocol layer.
fn feed(conn: &mut Connection, dir: Dir, pieces: Vec<Piece<'_>>, shared: &mut Shared<'_>) {
    for piece in pieces {
        match piece {
            Piece::Data { ts, bytes } => conn.dirs[dir.index()].window.append(ts, &bytes),
            Piece::Gap { len, ts } => {
                shared.counters.stream_gaps.inc();
                shared.counters.stream_gap_bytes.add(len);
                parse(conn, dir, shared);
                apply_gap(conn, dir, len, ts, shared);
            }
        }
    }
    parse(conn, dir, shared);
}

fn apply_gap(conn: &mut Connection, dir: Dir, len: u64, ts: u64, shared: &mut Shared<'_>) {
    let Connection {
        fields,
        dirs,
        protocol,
        ..
    } = conn;
    let window = &mut dirs[dir.index()].window;
    match protocol {
        ProtocolState::Session(session) => {
            session.gap(dir, len, ts, window, &mut shared.sink(fields))
        }
        ProtocolState::Unknown | ProtocolState::Opaque => window.clear_and_skip(len),
    }
}

/// Runs the protocol layer over the window of `dir` (identifying the protocol first if needed).
fn parse(conn: &mut Connection, dir: Dir, shared: &mut Shared<'_>) {
    if matches!(conn.protocol, ProtocolState::Unknown) && !identify(conn, dir, shared) {
        return;
    }
    let Connection {
        fields,
        dirs,
        protocol,
        ..
    } = conn;
    match protocol {
        ProtocolState::Unknown => {}
        ProtocolState::Opaque => {
            let window = &mut dirs[dir.index()].window;
            shared
                .counters
                .protocol_unknown_bytes
                .add(window.len() as u64);
            window.consume(window.len());
        }
        ProtocolState::Session(session) => {
            let mut sink = shared.sink(fields);
            let window = &mut dirs[dir.index()].window;
            match session.process(dir, window, &mut sink) {
                Outcome::Continue => {}
                Outcome::Abandon => {
                    // The guess was wrong: forget it and look again at the next bytes.
                    sink.counters.protocol_revisions.inc();
                    session.finish(&mut sink);
                    for d in dirs.iter_mut() {
                        d.window.consume(d.window.len());
                    }
                    *protocol = ProtocolState::Unknown;
                }
                Outcome::Upgraded => {
                    for d in dirs.iter_mut() {
                        shared
                            .counters
                            .protocol_unknown_bytes
                            .add(d.window.len() as u64);
                        d.window.consume(d.window.len());
                    }
                    *protocol = ProtocolState::Opaque;
                }
            }
        }
    }
}

/// Tries to identify the protocol from the window of `dir`; true once identified.
fn identify(conn: &mut Connection, dir: Dir, shared: &mut Shared<'_>) -> bool {
    let window = &mut conn.dirs[dir.index()].window;
    let detection = detect_with_hint(window.bytes(), port_hint(&conn.fields));
    let session = detection.and_then(|d| new_session(d, dir, shared.config));
    let (Some(detection), Some(session)) = (detection, session) else {
        // Another protocol (not parsed), or no evidence after enough bytes:
        // count and drop, and look again at the next bytes.
        if detection.is_some() || window.len() >= DETECT_GIVE_UP_BYTES {
            shared
                .counters
                .protocol_unknown_bytes
                .add(window.len() as u64);
            window.consume(window.len());
        }
        return false;
    };
    // The protocol says who is who: the side that sends requests is the client.
    conn.fields.trace_role = if request_dir(detection, dir) == Dir::Egress {
        TraceRole::Client
    } else {
        TraceRole::Server
    };
    conn.protocol = ProtocolState::Session(session);
    conn.last_protocol = Some(detection.protocol);
    // The other direction may have bytes waiting from before the protocol was known.
    if !conn.dirs[dir.other().index()].window.is_empty() {
        parse(conn, dir.other(), shared);
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
            _ => None,
        })
}

/// The direction that carries requests, given what was detected on `dir`.
fn request_dir(detection: Detection, dir: Dir) -> Dir {
    match detection.kind {
        MessageKind::Request => dir,
        MessageKind::Response => dir.other(),
    }
}

/// A parser for the detected protocol, if Sonde parses it on streams.
fn new_session(
    detection: Detection,
    dir: Dir,
    config: &TrackerConfig,
) -> Option<Box<dyn ProtocolSession>> {
    let requests = request_dir(detection, dir);
    match detection.protocol {
        Protocol::Http => Some(Box::new(HttpSession::new(requests, &config.http))),
        Protocol::Redis => Some(Box::new(RedisStreamSession::new(requests))),
        Protocol::Mysql => Some(Box::new(MysqlStreamSession::new(requests))),
        Protocol::Dns => Some(Box::new(DnsStreamSession::new(requests))),
    }
}

fn ip_from(family: u16, raw: &[u8; 16]) -> IpAddr {
    if family == events::AF_INET {
        IpAddr::V4(Ipv4Addr::new(raw[0], raw[1], raw[2], raw[3]))
    } else {
        Ipv6Addr::from(*raw).to_canonical()
    }
}

fn upid(id: &ConnId) -> String {
    // Same unit as /proc/PID/stat's starttime (clock ticks since boot).
    // SAFETY: sysconf has no preconditions.
    let ticks_per_sec = u64::try_from(unsafe { libc::sysconf(libc::_SC_CLK_TCK) })
        .unwrap_or(100)
        .max(1);
    format!(
        "{}:{}",
        id.tgid,
        id.proc_start_ns / (1_000_000_000 / ticks_per_sec)
    )
}

fn conn_fields_from_open(open: &OpenEvent) -> ConnFields {
    let id = open.hdr.conn;
    ConnFields {
        upid: upid(&id),
        pid: id.tgid,
        comm: events::comm_str(&open.comm),
        remote_addr: ip_from(open.family, &open.remote_addr).to_string(),
        remote_port: i64::from(open.remote_port),
        local_addr: ip_from(open.family, &open.local_addr).to_string(),
        local_port: i64::from(open.local_port),
        trace_role: match open.role {
            events::ROLE_CLIENT => TraceRole::Client,
            events::ROLE_SERVER => TraceRole::Server,
            _ => TraceRole::Unknown,
        },
        encrypted: false,
        k8s: Default::default(),
    }
}

fn conn_fields_unknown(id: &ConnId) -> ConnFields {
    let comm = std::fs::read_to_string(format!("/proc/{}/comm", id.tgid))
        .map(|s| s.trim_end().to_string())
        .unwrap_or_default();
    ConnFields {
        upid: upid(id),
        pid: id.tgid,
        comm,
        remote_addr: String::new(),
        remote_port: 0,
        local_addr: String::new(),
        local_port: 0,
        trace_role: TraceRole::Unknown,
        encrypted: false,
        k8s: Default::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use arrow::array::AsArray;
    use arrow::datatypes::Int64Type;
    use sonde_ebpf::events::build;
    use sonde_query::stats::StatsRegistry;

    const TGID: u32 = 4242;

    fn conn(fd: i32, generation: u64) -> ConnId {
        ConnId {
            tgid: TGID,
            fd,
            proc_start_ns: 1_000_000_000,
            generation,
        }
    }

    fn open(id: ConnId, role: u16) -> Vec<u8> {
        build::open_ipv4(
            id,
            1,
            role,
            "nginx",
            ([127, 0, 0, 1], 8080),
            ([10, 1, 2, 3], 40000),
        )
    }

    /// A data event carrying `bytes` at `position`; the call spans to `call_end`.
    fn data(id: ConnId, dir: u8, ts: u64, position: u64, bytes: &[u8], call_end: u64) -> Vec<u8> {
        build::data(id, dir, ts, position, bytes, call_end)
    }

    fn close(id: ConnId) -> Vec<u8> {
        build::close(id, 999, 0, 0)
    }

    fn tracker() -> (Tracker, Arc<StatsRegistry>) {
        let stats = Arc::new(StatsRegistry::new());
        let tracker = Tracker::new(TrackerConfig::default(), CaptureCounters::register(&stats));
        (tracker, stats)
    }

    fn counter(stats: &StatsRegistry, name: &str) -> u64 {
        stats
            .snapshot()
            .into_iter()
            .find(|c| c.name == name)
            .map_or(0, |c| c.value)
    }

    /// The pending rows of `table` (taking every pending batch): a text and
    /// an integer accessor by column name and row.
    struct Taken {
        batch: Option<arrow::record_batch::RecordBatch>,
    }

    impl Taken {
        fn of(tracker: &mut Tracker, table: &str) -> Taken {
            let batch = tracker
                .take_batches()
                .into_iter()
                .find(|(name, _)| *name == table)
                .map(|(_, b)| b);
            Taken { batch }
        }
        fn len(&self) -> usize {
            self.batch.as_ref().map_or(0, |b| b.num_rows())
        }
        fn text(&self, column: &str, row: usize) -> String {
            let batch = self.batch.as_ref().unwrap();
            batch
                .column_by_name(column)
                .unwrap()
                .as_string::<i32>()
                .value(row)
                .to_string()
        }
        fn boolean(&self, column: &str, row: usize) -> bool {
            let batch = self.batch.as_ref().unwrap();
            batch
                .column_by_name(column)
                .unwrap()
                .as_boolean()
                .value(row)
        }
        fn int(&self, column: &str, row: usize) -> i64 {
            let batch = self.batch.as_ref().unwrap();
            batch
                .column_by_name(column)
                .unwrap()
                .as_primitive::<Int64Type>()
                .value(row)
        }
    }

    /// (role, method, path, status, req_body_size, resp_body_size, latency) per row.
    fn rows(tracker: &mut Tracker) -> Vec<(String, String, String, i64, i64, i64, i64)> {
        let t = Taken::of(tracker, "http_events");
        (0..t.len())
            .map(|i| {
                (
                    t.text("trace_role", i),
                    t.text("req_method", i),
                    t.text("req_path", i),
                    t.int("resp_status", i),
                    t.int("req_body_size", i),
                    t.int("resp_body_size", i),
                    t.int("latency", i),
                )
            })
            .collect()
    }

    const IN: u8 = events::DIR_INGRESS;
    const OUT: u8 = events::DIR_EGRESS;
    const REQ: &[u8] = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n";
    const RESP: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

    fn row(
        role: &str,
        method: &str,
        path: &str,
        status: i64,
        req: i64,
        resp: i64,
        latency: i64,
    ) -> (String, String, String, i64, i64, i64, i64) {
        (
            role.into(),
            method.into(),
            path.into(),
            status,
            req,
            resp,
            latency,
        )
    }

    #[test]
    fn server_request_and_response_make_one_row() {
        let (mut t, stats) = tracker();
        let id = conn(5, 1);
        t.handle_record(&open(id, events::ROLE_SERVER));
        t.handle_record(&data(id, IN, 1_000, 0, REQ, REQ.len() as u64));
        t.handle_record(&data(id, OUT, 4_000, 0, RESP, RESP.len() as u64));
        assert_eq!(
            rows(&mut t),
            vec![row("server", "GET", "/a", 200, 0, 2, 3_000)]
        );
        assert_eq!(counter(&stats, "http_rows"), 1);
        let batch_fields = t.conns.get(&id).map(|c| c.fields.clone()).unwrap();
        assert_eq!(batch_fields.local_addr, "127.0.0.1");
        assert_eq!(batch_fields.remote_addr, "10.1.2.3");
        assert_eq!(batch_fields.comm, "nginx");
        assert_eq!(batch_fields.upid, "4242:100");
    }

    #[test]
    fn unknown_role_is_inferred_from_the_request_direction() {
        let (mut t, _) = tracker();
        let id = conn(6, 2);
        t.handle_record(&open(id, events::ROLE_UNKNOWN));
        t.handle_record(&data(id, OUT, 10, 0, REQ, REQ.len() as u64));
        t.handle_record(&data(id, IN, 50, 0, RESP, RESP.len() as u64));
        assert_eq!(
            rows(&mut t),
            vec![row("client", "GET", "/a", 200, 0, 2, 40)]
        );
    }

    #[test]
    fn split_and_reordered_chunks_parse_the_same() {
        let (mut t, stats) = tracker();
        let id = conn(7, 3);
        t.handle_record(&open(id, events::ROLE_SERVER));
        let (a, b) = REQ.split_at(7);
        // The second half arrives first (another CPU won the race to the ring buffer).
        t.handle_record(&data(id, IN, 20, 7, b, REQ.len() as u64));
        t.handle_record(&data(id, IN, 10, 0, a, 7));
        for (i, byte) in RESP.iter().enumerate() {
            t.handle_record(&data(
                id,
                OUT,
                100 + i as u64,
                i as u64,
                &[*byte],
                i as u64 + 1,
            ));
        }
        let got = rows(&mut t);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].3, 200);
        assert_eq!(counter(&stats, "stream_gaps"), 0);
    }

    #[test]
    fn gap_inside_a_body_of_known_length_is_skipped() {
        let (mut t, stats) = tracker();
        let id = conn(8, 4);
        t.handle_record(&open(id, events::ROLE_SERVER));
        let head = b"POST /up HTTP/1.1\r\nContent-Length: 100000\r\n\r\n";
        let mut first = head.to_vec();
        first.extend_from_slice(&[b'x'; 1000]);
        // The call moved head + 100000 bytes but only `first` was copied.
        let call_end = (head.len() + 100_000) as u64;
        t.handle_record(&data(id, IN, 10, 0, &first, call_end));
        t.handle_record(&data(id, OUT, 90, 0, RESP, RESP.len() as u64));
        assert_eq!(
            rows(&mut t),
            vec![row("server", "POST", "/up", 200, 100_000, 2, 80)]
        );
        assert_eq!(counter(&stats, "stream_gaps"), 1);
        assert_eq!(counter(&stats, "stream_gap_bytes"), 99_000);
        assert_eq!(counter(&stats, "http_messages_lost"), 0);
    }

    #[test]
    fn gap_in_a_head_loses_one_message_and_resyncs() {
        let (mut t, stats) = tracker();
        let id = conn(9, 5);
        t.handle_record(&open(id, events::ROLE_SERVER));
        // First request's head is cut short by a gap (10 bytes copied of 28).
        t.handle_record(&data(id, IN, 10, 0, &REQ[..10], REQ.len() as u64));
        t.handle_record(&data(id, OUT, 20, 0, RESP, RESP.len() as u64));
        let second = b"GET /b HTTP/1.1\r\n\r\n";
        let pos = REQ.len() as u64;
        t.handle_record(&data(id, IN, 30, pos, second, pos + second.len() as u64));
        let pos = RESP.len() as u64;
        t.handle_record(&data(id, OUT, 45, pos, RESP, pos + RESP.len() as u64));
        assert_eq!(
            rows(&mut t),
            vec![row("server", "GET", "/b", 200, 0, 2, 15)]
        );
        assert_eq!(counter(&stats, "http_messages_lost"), 1);
        assert_eq!(counter(&stats, "http_unmatched_responses"), 1);
    }

    #[test]
    fn unknown_protocols_are_counted_not_parsed() {
        let (mut t, stats) = tracker();
        let id = conn(10, 6);
        t.handle_record(&open(id, events::ROLE_CLIENT));
        let junk = [0x16u8; 300];
        t.handle_record(&data(id, OUT, 10, 0, &junk, 300));
        assert!(rows(&mut t).is_empty());
        assert_eq!(counter(&stats, "protocol_unknown_bytes"), 300);
        // A later HTTP request on the same connection is still recognised.
        t.handle_record(&data(id, OUT, 20, 300, REQ, 300 + REQ.len() as u64));
        t.handle_record(&data(id, IN, 30, 0, RESP, RESP.len() as u64));
        assert_eq!(rows(&mut t).len(), 1);
    }

    #[test]
    fn close_completes_a_close_delimited_response() {
        let (mut t, stats) = tracker();
        let id = conn(11, 7);
        t.handle_record(&open(id, events::ROLE_CLIENT));
        let req = b"GET /old HTTP/1.0\r\n\r\n";
        t.handle_record(&data(id, OUT, 10, 0, req, req.len() as u64));
        let resp = b"HTTP/1.0 200 OK\r\n\r\nbody until close";
        t.handle_record(&data(id, IN, 70, 0, resp, resp.len() as u64));
        assert!(rows(&mut t).is_empty(), "not complete before close");
        t.handle_record(&close(id));
        assert_eq!(
            rows(&mut t),
            vec![row("client", "GET", "/old", 200, 0, 16, 60)]
        );
        assert_eq!(t.connection_count(), 0);
        assert_eq!(counter(&stats, "http_unmatched_requests"), 0);
    }

    #[test]
    fn process_exit_finishes_its_connections_only() {
        let (mut t, stats) = tracker();
        let mine = conn(12, 8);
        let other = ConnId {
            tgid: TGID + 1,
            ..conn(12, 9)
        };
        t.handle_record(&open(mine, events::ROLE_CLIENT));
        t.handle_record(&open(other, events::ROLE_CLIENT));
        t.handle_record(&data(mine, OUT, 10, 0, REQ, REQ.len() as u64));
        let exit = build::proc_exit(mine.tgid, 50);
        assert_eq!(t.handle_record(&exit), vec![(TGID, 12)]);
        assert_eq!(t.connection_count(), 1);
        assert_eq!(counter(&stats, "http_unmatched_requests"), 1);
    }

    #[test]
    fn fd_reuse_starts_a_new_connection() {
        let (mut t, _) = tracker();
        let first = conn(13, 10);
        let second = conn(13, 11);
        t.handle_record(&open(first, events::ROLE_SERVER));
        t.handle_record(&data(first, IN, 10, 0, REQ, REQ.len() as u64));
        t.handle_record(&open(second, events::ROLE_SERVER));
        // The response on the new connection must not pair with the old request.
        t.handle_record(&data(second, OUT, 20, 0, RESP, RESP.len() as u64));
        assert!(rows(&mut t).is_empty());
        assert_eq!(t.connection_count(), 1);
    }

    #[test]
    fn conn_stats_rows_at_close_and_periodically() {
        let (mut t, _) = tracker();
        let id = conn(15, 13);
        t.handle_record(&open(id, events::ROLE_SERVER));
        t.handle_record(&data(id, IN, 10, 0, REQ, REQ.len() as u64));
        t.handle_record(&data(id, OUT, 20, 0, RESP, RESP.len() as u64));
        let _ = t.take_batches();
        // Open with new traffic: a row once the interval has passed.
        t.tick(5_000_000_000, |_| true);
        assert!(
            t.take_batches()
                .iter()
                .all(|(name, _)| *name != "conn_stats")
        );
        t.tick(11_000_000_000, |_| true);
        let stats = conn_stats(&mut t);
        assert_eq!(stats, vec![("http".to_string(), 28, 40, 0)]);
        // No new traffic: no new periodic row; the close gives the final one.
        t.tick(30_000_000_000, |_| true);
        assert!(conn_stats(&mut t).is_empty());
        t.handle_record(&close(id));
        let stats = conn_stats(&mut t);
        assert_eq!(stats.len(), 1);
        assert_eq!((stats[0].1, stats[0].2), (28, 40));
        assert!(stats[0].3 > 0, "closed rows carry the close time");
    }

    /// (protocol, bytes_recv, bytes_sent, conn_close_ns) of pending conn_stats rows.
    fn conn_stats(tracker: &mut Tracker) -> Vec<(String, i64, i64, i64)> {
        let t = Taken::of(tracker, "conn_stats");
        (0..t.len())
            .map(|i| {
                (
                    t.text("protocol", i),
                    t.int("bytes_recv", i),
                    t.int("bytes_sent", i),
                    t.int("conn_close_ns", i),
                )
            })
            .collect()
    }

    #[test]
    fn malformed_records_are_counted() {
        let (mut t, stats) = tracker();
        t.handle_record(&[1, 2, 3]);
        assert_eq!(counter(&stats, "events_malformed"), 1);
    }

    #[test]
    fn waiting_for_lost_bytes_times_out_into_a_gap() {
        let (mut t, stats) = tracker();
        let id = conn(14, 12);
        t.handle_record(&open(id, events::ROLE_SERVER));
        // Bytes 0..50 were lost in the ring buffer; the next request starts at 50.
        t.handle_record(&data(id, IN, 10, 50, REQ, 50 + REQ.len() as u64));
        t.handle_record(&data(id, OUT, 20, 0, RESP, RESP.len() as u64));
        assert!(rows(&mut t).is_empty());
        t.tick(10 + 600_000_000, |_| true);
        assert_eq!(counter(&stats, "stream_gaps"), 1);
        // The request was parsed after the gap; the early response had no request.
        assert_eq!(counter(&stats, "http_unmatched_responses"), 1);
        let pos = RESP.len() as u64;
        t.handle_record(&data(
            id,
            OUT,
            700_000_000,
            pos,
            RESP,
            pos + RESP.len() as u64,
        ));
        assert_eq!(rows(&mut t).len(), 1);
        let _ = t.tick(u64::MAX, |_| false);
        assert_eq!(
            t.connection_count(),
            0,
            "idle connection of a dead process is dropped"
        );
    }

    /// A TLS 1.3 ClientHello's first bytes, and an application-data record.
    const CLIENT_HELLO: &[u8] = &[
        0x16, 0x03, 0x01, 0x00, 0x20, 0x01, 0x00, 0x00, 0x1c, 0x03, 0x03, 0xaa, 0xbb,
    ];
    const SERVER_HELLO: &[u8] = &[0x16, 0x03, 0x03, 0x00, 0x10, 0x02, 0x00, 0x00, 0x0c];
    const APP_RECORD: &[u8] = &[0x17, 0x03, 0x03, 0x00, 0x05, 1, 2, 3, 4, 5];

    fn tls_data(id: ConnId, dir: u8, ts: u64, position: u64, bytes: &[u8]) -> Vec<u8> {
        build::tls_data(id, dir, ts, position, bytes, position + bytes.len() as u64)
    }

    #[test]
    fn tls_plaintext_replaces_the_ciphertext_stream() {
        let (mut t, stats) = tracker();
        let id = conn(20, 20);
        t.handle_record(&open(id, events::ROLE_CLIENT));
        // The handshake on the wire (outside SSL_read/SSL_write).
        t.handle_record(&data(
            id,
            OUT,
            1,
            0,
            CLIENT_HELLO,
            CLIENT_HELLO.len() as u64,
        ));
        t.handle_record(&data(id, IN, 2, 0, SERVER_HELLO, SERVER_HELLO.len() as u64));
        // Then plaintext from the library probes, in its own positions.
        t.handle_record(&tls_data(id, OUT, 100, 0, REQ));
        // Wire bytes after the switch (e.g. a close_notify alert) are ignored.
        let pos = CLIENT_HELLO.len() as u64;
        t.handle_record(&data(
            id,
            OUT,
            150,
            pos,
            APP_RECORD,
            pos + APP_RECORD.len() as u64,
        ));
        t.handle_record(&tls_data(id, IN, 400, 0, RESP));
        let taken = Taken::of(&mut t, "http_events");
        assert_eq!(taken.len(), 1);
        assert_eq!(taken.text("req_method", 0), "GET");
        assert_eq!(taken.text("req_path", 0), "/a");
        assert_eq!(taken.int("resp_status", 0), 200);
        assert_eq!(taken.text("trace_role", 0), "client");
        assert!(taken.boolean("encrypted", 0));
        assert_eq!(taken.int("latency", 0), 300);
        assert_eq!(counter(&stats, "tls_connections"), 1);
        assert_eq!(
            counter(&stats, "tls_ciphertext_bytes"),
            (CLIENT_HELLO.len() + SERVER_HELLO.len() + APP_RECORD.len()) as u64
        );
        assert_eq!(
            counter(&stats, "tls_plaintext_bytes"),
            (REQ.len() + RESP.len()) as u64
        );
        assert_eq!(counter(&stats, "protocol_unknown_bytes"), 0);
        assert_eq!(counter(&stats, "http_parse_failures"), 0);
        assert_eq!(counter(&stats, "stream_gaps"), 0);
        // conn_stats counts the plaintext bytes of an encrypted connection.
        t.handle_record(&close(id));
        let conn_rows = Taken::of(&mut t, "conn_stats");
        assert_eq!(conn_rows.len(), 1);
        assert_eq!(conn_rows.int("bytes_sent", 0), REQ.len() as i64);
        assert_eq!(conn_rows.int("bytes_recv", 0), RESP.len() as i64);
        assert!(conn_rows.boolean("encrypted", 0));
    }

    #[test]
    fn tls_without_a_library_probe_is_counted_not_parsed() {
        let (mut t, stats) = tracker();
        let id = conn(21, 21);
        t.handle_record(&open(id, events::ROLE_SERVER));
        t.handle_record(&data(id, IN, 1, 0, CLIENT_HELLO, CLIENT_HELLO.len() as u64));
        let mut pos = CLIENT_HELLO.len() as u64;
        for i in 0..3 {
            t.handle_record(&data(
                id,
                IN,
                10 + i,
                pos,
                APP_RECORD,
                pos + APP_RECORD.len() as u64,
            ));
            pos += APP_RECORD.len() as u64;
        }
        assert_eq!(rows(&mut t), vec![]);
        assert_eq!(
            counter(&stats, "tls_ciphertext_bytes"),
            (CLIENT_HELLO.len() + 3 * APP_RECORD.len()) as u64
        );
        assert_eq!(counter(&stats, "protocol_unknown_bytes"), 0);
        assert_eq!(counter(&stats, "tls_connections"), 0);
    }

    #[test]
    fn plaintext_prelude_then_tls_starts_a_fresh_session() {
        let (mut t, stats) = tracker();
        let id = conn(22, 22);
        t.handle_record(&open(id, events::ROLE_SERVER));
        // A plaintext request and response, then a TLS handshake (STARTTLS-like).
        t.handle_record(&data(id, IN, 1, 0, REQ, REQ.len() as u64));
        t.handle_record(&data(id, OUT, 2, 0, RESP, RESP.len() as u64));
        let pos = REQ.len() as u64;
        t.handle_record(&data(
            id,
            IN,
            3,
            pos,
            CLIENT_HELLO,
            pos + CLIENT_HELLO.len() as u64,
        ));
        let second = b"GET /secret HTTP/1.1\r\n\r\n";
        t.handle_record(&tls_data(id, IN, 10, 0, second));
        t.handle_record(&tls_data(id, OUT, 30, 0, RESP));
        let taken = Taken::of(&mut t, "http_events");
        assert_eq!(taken.len(), 2);
        assert_eq!(
            (taken.text("req_path", 0), taken.boolean("encrypted", 0)),
            ("/a".to_string(), false)
        );
        assert_eq!(
            (taken.text("req_path", 1), taken.boolean("encrypted", 1)),
            ("/secret".to_string(), true)
        );
        assert_eq!(taken.int("latency", 1), 20);
        assert_eq!(counter(&stats, "http_parse_failures"), 0);
        assert_eq!(counter(&stats, "protocol_unknown_bytes"), 0);
    }

    #[test]
    fn tls_handshake_records_are_recognised() {
        assert!(is_tls_handshake_record(CLIENT_HELLO));
        assert!(is_tls_handshake_record(SERVER_HELLO));
        assert!(!is_tls_handshake_record(APP_RECORD));
        assert!(!is_tls_handshake_record(&CLIENT_HELLO[..4]));
        assert!(!is_tls_handshake_record(REQ));
        assert!(!is_tls_handshake_record(&[0x16, 0x03, 0x05, 0x00, 0x10]));
        assert!(!is_tls_handshake_record(&[0x16, 0x03, 0x01, 0x00, 0x00]));
        assert!(!is_tls_handshake_record(&[0x16, 0x03, 0x01, 0x48, 0x01]));
        assert!(!is_tls_handshake_record(&[]));
    }
}
