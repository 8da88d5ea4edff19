//! One tracked connection: its identity columns, both directions' stream
//! state, its protocol state, its byte counts.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use sonde_ebpf::events::{self, ConnId, OpenEvent};
use sonde_protocols::Protocol;
use sonde_query::records::{ConnFields, TraceRole};

use super::reassembly::Reassembler;
use super::tls_mode::TlsMode;
use crate::sessions::dns::DnsDatagrams;
use crate::sessions::{ProtocolSession, StreamBuffer};

pub(super) enum ProtocolState {
    /// Not identified yet: bytes are buffered (a little) and offered to `detect`.
    Unknown,
    Session(Box<dyn ProtocolSession>),
    /// Not parsed (e.g. after an HTTP upgrade): bytes are only counted.
    Opaque,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Transport {
    Tcp,
    Udp,
}

impl Transport {
    pub(super) fn name(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Udp => "udp",
        }
    }
}

/// One direction: bytes put in order, then held until parsed.
#[derive(Default)]
pub(super) struct DirState {
    pub reassembler: Option<Reassembler>,
    pub buffer: StreamBuffer,
}

pub(super) struct Connection {
    /// Shared by every row of the connection (copied on write when the
    /// role or TLS state changes).
    pub fields: Arc<ConnFields>,
    pub transport: Transport,
    pub dirs: [DirState; 2],
    pub protocol: ProtocolState,
    /// The protocol last identified (kept after an upgrade, for conn_stats).
    pub last_protocol: Option<Protocol>,
    pub opened_ns: u64,
    pub last_seen_ns: u64,
    /// Bytes moved each way (the highest stream position seen).
    pub bytes: [u64; 2],
    /// DNS state of a UDP socket (created with its first DNS datagram).
    pub datagrams: Option<Box<DnsDatagrams>>,
    /// `bytes` at the last conn_stats row, and when it was written.
    pub reported_bytes: [u64; 2],
    pub reported_ns: u64,
    pub tls: TlsMode,
    /// Bytes no parser recognised, before any protocol was identified.
    pub unknown_bytes: u64,
    /// The kernel was asked to stop copying this connection (it is Opaque).
    pub copy_stopped: bool,
}

impl Connection {
    pub(super) fn new(fields: ConnFields, transport: Transport, now_ns: u64) -> Self {
        Self {
            fields: Arc::new(fields),
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
            unknown_bytes: 0,
            copy_stopped: false,
        }
    }

    /// Bytes this connection keeps beyond its fixed size: unparsed bytes,
    /// bytes waiting for order, and the protocol's state (requests waiting
    /// for answers, messages in progress): all of it counts toward the
    /// tracker's global bound.
    pub(super) fn buffered(&self) -> usize {
        let streams: usize = self
            .dirs
            .iter()
            .map(|d| {
                d.buffer.held_bytes() + d.reassembler.as_ref().map_or(0, Reassembler::held_bytes)
            })
            .sum();
        let session = match &self.protocol {
            ProtocolState::Session(session) => session.held_bytes(),
            ProtocolState::Unknown | ProtocolState::Opaque => 0,
        };
        let datagrams = self.datagrams.as_ref().map_or(0, |d| d.held_bytes());
        streams + session + datagrams
    }
}

pub(super) fn ip_from(family: u16, raw: &[u8; 16]) -> IpAddr {
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

/// The identity columns of a connection whose open event was seen.
pub(super) fn fields_from_open(open: &OpenEvent) -> ConnFields {
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

/// The identity columns of a connection whose open event was lost: no
/// addresses; the process name from /proc (while the process lives).
pub(super) fn fields_without_open(id: &ConnId, comm: String) -> ConnFields {
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
