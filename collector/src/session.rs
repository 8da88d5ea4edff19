//! What every protocol parser of a connection looks like to the tracker.

use sonde_protocols::Protocol;
use sonde_query::records::ConnFields;

use crate::clock::Clock;
use crate::counters::CaptureCounters;
use crate::rows::RowBuilders;
use crate::window::Window;

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
    pub conn: &'a ConnFields,
    pub clock: &'a Clock,
    pub rows: &'a mut RowBuilders,
    pub counters: &'a CaptureCounters,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Keep parsing the connection with this session.
    Continue,
    /// Too many parse failures: the protocol guess was wrong.
    Abandon,
    /// The connection switched to something this session does not parse
    /// (HTTP upgrade, CONNECT tunnel).
    Upgraded,
}

/// One protocol's parsing state for one connection (both directions).
pub trait ProtocolSession: Send {
    /// Parses as much of `window` (bytes of `dir`) as possible.
    fn process(&mut self, dir: Dir, window: &mut Window, sink: &mut RowSink<'_>) -> Outcome;
    /// `len` bytes of `dir` were lost (`ts` when they passed, 0 if unknown);
    /// unparsed bytes in `window` are part of the message they interrupted.
    fn gap(&mut self, dir: Dir, len: u64, ts: u64, window: &mut Window, sink: &mut RowSink<'_>);
    /// The connection closed: complete what can be completed, count the rest.
    fn finish(&mut self, sink: &mut RowSink<'_>);
}

pub fn protocol_name(protocol: Option<Protocol>) -> &'static str {
    match protocol {
        Some(Protocol::Http) => "http",
        Some(Protocol::Dns) => "dns",
        Some(Protocol::Mysql) => "mysql",
        Some(Protocol::Redis) => "redis",
        None => "unknown",
    }
}
