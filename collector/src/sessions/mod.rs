//! Protocol sessions: from a connection's ordered bytes to typed rows.
//!
//! The tracker hands each direction's unparsed bytes ([`StreamBuffer`]) to
//! the connection's [`ProtocolSession`]. Stream protocols share one session
//! shape, [`StreamSession`], which runs one decoder per direction (resync
//! after errors and gaps, timestamps of each message's first and last byte)
//! and hands every decoded message to its protocol's pairing; the pairing
//! (`http`, `http2`, `dns`, `mysql`, `redis`) turns exchanges into typed
//! rows pushed to [`RowBuilders`]. DNS over UDP has no stream:
//! `dns::DnsDatagrams`. A session may hand its connection over to another
//! ([`Outcome::Upgraded`] with a [`Handover`]: HTTP/1.1 → h2c).
//!
//! Nothing here knows about the kernel, connections' lifetimes or export.

pub mod dns;
pub mod http;
pub mod http2;
pub mod mysql;
pub mod pgsql;
pub mod redis;
pub mod rows;
pub mod stream_buffer;
pub mod stream_session;

use std::sync::Arc;

use sonde_protocols::http2::Http2Config;
use sonde_protocols::{Detection, MessageKind, Protocol};
use sonde_query::records::ConnFields;

use crate::clock::Clock;
use crate::counters::CaptureCounters;

pub use rows::{Exchanges, FlushedTable, RowBuilders};
pub use stream_buffer::StreamBuffer;
pub use stream_session::{StreamProtocol, StreamSession};

/// A direction of a connection, from the traced process's point of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    Egress = 0,
    Ingress = 1,
}

impl Dir {
    pub fn index(self) -> usize {
        self as usize
    }

    pub fn other(self) -> Dir {
        match self {
            Dir::Egress => Dir::Ingress,
            Dir::Ingress => Dir::Egress,
        }
    }
}

/// Where parsed rows go, with what they need to be stamped.
pub struct RowSink<'a> {
    pub conn: &'a Arc<ConnFields>,
    pub clock: &'a Clock,
    pub rows: &'a mut RowBuilders,
    pub counters: &'a CaptureCounters,
}

pub enum Outcome {
    /// Keep parsing the connection with this session.
    Continue,
    /// Too many parse failures: the protocol guess was wrong.
    Abandon,
    /// The connection switched to something this session does not parse:
    /// a protocol Sonde parses too (`Upgrade: h2c`), whose session takes the
    /// bytes not consumed yet, or (None) something it does not (a WebSocket
    /// or other upgrade, a CONNECT tunnel, MySQL TLS or compression).
    Upgraded(Option<Handover>),
}

/// The session that parses a connection after a protocol switch.
pub struct Handover {
    pub protocol: Protocol,
    pub session: Box<dyn ProtocolSession>,
}

/// One protocol's parsing state for one connection (both directions).
pub trait ProtocolSession: Send {
    /// Bytes of session state (pending requests, messages in progress) this
    /// session keeps: counted toward the tracker's global memory bound.
    fn held_bytes(&self) -> usize;
    /// Parses as much of `buffer` (bytes of `dir`) as possible.
    fn process(&mut self, dir: Dir, buffer: &mut StreamBuffer, sink: &mut RowSink<'_>) -> Outcome;
    /// `len` bytes of `dir` were lost (`ts` when they passed, 0 if unknown);
    /// unparsed bytes in `buffer` are part of the message they interrupted.
    fn gap(
        &mut self,
        dir: Dir,
        len: u64,
        ts: u64,
        buffer: &mut StreamBuffer,
        sink: &mut RowSink<'_>,
    );
    /// The connection closed: complete what can be completed, count the rest.
    fn finish(&mut self, sink: &mut RowSink<'_>);
}

/// Settings of the stream sessions.
#[derive(Debug, Clone, Default)]
pub struct SessionConfig {
    pub http: sonde_protocols::http::HttpConfig,
}

/// The direction that carries requests, given what was detected on `dir`.
pub fn request_dir(detection: Detection, dir: Dir) -> Dir {
    match detection.kind {
        MessageKind::Request => dir,
        MessageKind::Response => dir.other(),
    }
}

/// A session for the protocol detected on `dir`, if Sonde parses it on streams.
pub fn new_stream_session(
    detection: Detection,
    dir: Dir,
    config: &SessionConfig,
) -> Option<Box<dyn ProtocolSession>> {
    let requests = request_dir(detection, dir);
    Some(match detection.protocol {
        Protocol::Http => Box::new(StreamSession::new(
            requests,
            http::HttpStream::new(config.http.clone(), requests),
        )),
        Protocol::Http2 => Box::new(StreamSession::new(
            requests,
            http2::Http2Frames::new(Http2Config::from_http(&config.http)),
        )),
        Protocol::Redis => Box::new(StreamSession::new(requests, redis::RedisStream::default())),
        Protocol::Mysql => Box::new(StreamSession::new(requests, mysql::MysqlStream::default())),
        Protocol::Dns => Box::new(StreamSession::new(requests, dns::DnsTcpStream::default())),
        Protocol::Pgsql => Box::new(StreamSession::new(requests, pgsql::PgsqlStream::default())),
    })
}

/// The name `conn_stats.protocol` shows.
pub fn protocol_name(protocol: Option<Protocol>) -> &'static str {
    match protocol {
        Some(Protocol::Http) => "http",
        Some(Protocol::Http2) => "http2",
        Some(Protocol::Dns) => "dns",
        Some(Protocol::Mysql) => "mysql",
        Some(Protocol::Redis) => "redis",
        Some(Protocol::Pgsql) => "pgsql",
        None => "unknown",
    }
}
