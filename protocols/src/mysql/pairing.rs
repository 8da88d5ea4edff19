//! The connection state machine. Its phases live apart: `handshake`
//! (greeting, login, auth rounds), `command` (what the client asks) and
//! `response` (what the server answers to the command in flight).

mod command;
mod handshake;
mod response;

use std::collections::HashMap;

use super::consts::*;
use super::{MysqlConfig, MysqlPacket};
use crate::cursor::Cursor;
use crate::text::truncate_on_char;

use command::Statement;
pub use command::command_name;
use handshake::{Login, is_handshake_response};
use response::{Expect, InFlight};

/// Outcome of a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MysqlStatus {
    /// OK packet (or EOF, or a COM_STATISTICS string).
    Ok,
    /// ERR packet.
    Err,
    /// One or more result sets.
    ResultSet,
    /// The command has no response (COM_QUIT, COM_STMT_CLOSE,
    /// COM_STMT_SEND_LONG_DATA, COM_BINLOG_DUMP).
    None,
}

/// A command and its response: one `mysql_events` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MysqlExchange {
    /// COM_* code; [`COM_CONNECT`] (0x0b) for the handshake.
    pub req_cmd: u8,
    pub req_cmd_name: &'static str,
    /// Query text; for COM_STMT_EXECUTE the statement's text and its
    /// parameters ("SELECT ... WHERE id = ? -- params: [42, 'abc']"); for
    /// the handshake "user=.. db=.. plugin=.." (never the auth response).
    /// Ends in "..." when cut.
    pub req_body: String,
    pub resp_status: MysqlStatus,
    /// "affected_rows=3", "1062: Duplicate entry ...", "columns=2 rows=10".
    pub resp_body: String,
    pub error_code: Option<u16>,
    pub affected_rows: Option<u64>,
    pub rows: Option<u64>,
    pub req_ts: u64,
    pub resp_ts: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Started mid-connection: waiting for a greeting or a command.
    Unknown,
    /// Greeting seen: waiting for the handshake response.
    Greeted,
    /// Handshake response seen: auth rounds until OK or ERR.
    Auth,
    Command,
    /// TLS requested: the rest of the connection is opaque.
    Tls,
    /// Compression negotiated: not followed.
    Compressed,
    /// A binlog stream: not followed.
    Replication,
}

/// Follows one MySQL connection. Bounded: one command in flight, at most
/// `max_statements` prepared statements, texts cut to `max_body_len`.
#[derive(Debug)]
pub struct MysqlPairing {
    config: MysqlConfig,
    phase: Phase,
    server_caps: Option<u32>,
    /// Capabilities in effect (client's and server's), once known.
    caps: Option<u32>,
    server_version: String,
    login: Option<Login>,
    inflight: Option<InFlight>,
    statements: HashMap<u32, Statement>,
    next_seq: u64,
    unanswered: u64,
}

impl MysqlPairing {
    pub fn new(config: MysqlConfig) -> Self {
        Self {
            config,
            phase: Phase::Unknown,
            server_caps: None,
            caps: None,
            server_version: String::new(),
            login: None,
            inflight: None,
            statements: HashMap::new(),
            next_seq: 0,
            unanswered: 0,
        }
    }

    /// Server version from the greeting ("" until seen).
    pub fn server_version(&self) -> &str {
        &self.server_version
    }

    /// Nothing more can be parsed on this connection (TLS, compression or a
    /// replication stream); the caller may stop feeding it.
    pub fn is_opaque(&self) -> bool {
        matches!(
            self.phase,
            Phase::Tls | Phase::Compressed | Phase::Replication
        )
    }

    /// Commands whose response was never seen complete (replaced by the next
    /// command, or lost in a gap).
    pub fn unanswered(&self) -> u64 {
        self.unanswered
    }

    /// Prepared statements remembered.
    pub fn statements(&self) -> usize {
        self.statements.len()
    }

    /// An upper bound of the bytes this pairing keeps: each remembered
    /// statement and the command in flight hold at most `max_body_len` of
    /// text (O(1): read for every captured record).
    pub fn held_bytes(&self) -> usize {
        let per_text = self.config.max_body_len + 64;
        let statements = self.statements.len() * (std::mem::size_of::<Statement>() + per_text);
        let inflight = usize::from(self.inflight.is_some()) * per_text;
        std::mem::size_of::<Self>() + statements + inflight + self.server_version.capacity()
    }

    /// Bytes of either direction were lost: the command in flight (and a
    /// handshake in progress) is dropped; prepared statements are kept.
    pub fn on_gap(&mut self) {
        if self.inflight.take().is_some() {
            self.unanswered += 1;
        }
        self.login = None;
        if !self.is_opaque() {
            self.phase = Phase::Unknown;
        }
    }

    /// A packet from the client, seen at `ts`.
    pub fn on_client_packet(&mut self, pkt: &MysqlPacket, ts: u64) -> Option<MysqlExchange> {
        match self.phase {
            Phase::Tls | Phase::Compressed | Phase::Replication | Phase::Auth => return None,
            Phase::Greeted => {
                self.handshake_response(pkt, ts);
                return None;
            }
            // Sequence 2: after an SSLRequest, the first packet of the TLS
            // plaintext stream (the greeting was on the wire, before TLS).
            Phase::Unknown if matches!(pkt.seq, 1 | 2) && is_handshake_response(pkt) => {
                self.handshake_response(pkt, ts);
                return None;
            }
            Phase::Unknown | Phase::Command => {}
        }
        // Packets with a non-zero sequence continue an exchange (LOCAL
        // INFILE data, COM_CHANGE_USER auth data): never looked at.
        if pkt.seq != 0 {
            return None;
        }
        let cmd = pkt.first()?;
        if self.phase == Phase::Unknown && command_name(cmd) == "COM_UNKNOWN" {
            return None;
        }
        self.phase = Phase::Command;
        if self.inflight.take().is_some() {
            self.unanswered += 1;
        }
        let body = self.request_body(cmd, pkt);
        match cmd {
            COM_QUIT
            | COM_STMT_CLOSE
            | COM_STMT_SEND_LONG_DATA
            | COM_BINLOG_DUMP
            | COM_BINLOG_DUMP_GTID => {
                if matches!(cmd, COM_BINLOG_DUMP | COM_BINLOG_DUMP_GTID) {
                    self.phase = Phase::Replication;
                }
                if cmd == COM_STMT_CLOSE
                    && let Some(id) = Cursor::at(&pkt.payload, 1).u32_le()
                {
                    self.statements.remove(&id);
                }
                Some(MysqlExchange {
                    req_cmd: cmd,
                    req_cmd_name: command_name(cmd),
                    req_body: body,
                    resp_status: MysqlStatus::None,
                    resp_body: String::new(),
                    error_code: None,
                    affected_rows: None,
                    rows: None,
                    req_ts: ts,
                    resp_ts: ts,
                })
            }
            _ => {
                let expect = match cmd {
                    COM_CHANGE_USER => Expect::ChangeUser,
                    COM_FIELD_LIST => Expect::FieldList,
                    _ => Expect::First,
                };
                self.inflight = Some(InFlight {
                    cmd,
                    body,
                    ts,
                    expect,
                    columns: 0,
                    rows: 0,
                    result_sets: 0,
                    affected: None,
                    ok_text: String::new(),
                    prepared: None,
                });
                None
            }
        }
    }

    /// A packet from the server, seen at `ts`.
    pub fn on_server_packet(&mut self, pkt: &MysqlPacket, ts: u64) -> Option<MysqlExchange> {
        if self.is_opaque() {
            return None;
        }
        // Responses to commands start at sequence 1: a sequence-0 packet
        // from the server is a greeting (or a greeting-time error).
        if pkt.seq == 0
            && self.inflight.is_none()
            && matches!(self.phase, Phase::Unknown | Phase::Greeted | Phase::Command)
        {
            match pkt.first() {
                Some(10) => {
                    self.greeting(pkt);
                    return None;
                }
                // A greeting-time error (too many connections, host not
                // allowed); in the command phase a sequence-0 ERR is an
                // unsolicited notice (e.g. idle timeout), not a login.
                Some(0xff) if self.phase != Phase::Command => {
                    self.phase = Phase::Unknown;
                    return Some(self.connect_exchange(None, MysqlStatus::Err, pkt, ts));
                }
                _ => {}
            }
        }
        match self.phase {
            Phase::Auth => self.auth_packet(pkt, ts),
            Phase::Command => self.response_packet(pkt, ts),
            _ => None,
        }
    }

    /// Caps `text` to `max_body_len`, marking a cut with "...".
    fn cap(&self, text: &mut String, already_cut: bool) {
        let max = self.config.max_body_len;
        if text.len() > max {
            truncate_on_char(text, max.saturating_sub(3));
            text.push_str("...");
        } else if already_cut {
            text.push_str("...");
        }
    }

    fn finish(&self, f: InFlight, status: MysqlStatus, mut text: String, ts: u64) -> MysqlExchange {
        self.cap(&mut text, false);
        MysqlExchange {
            req_cmd: f.cmd,
            req_cmd_name: command_name(f.cmd),
            req_body: f.body,
            resp_status: status,
            resp_body: text,
            error_code: None,
            affected_rows: (status == MysqlStatus::Ok && f.cmd != COM_STMT_PREPARE)
                .then_some(f.affected)
                .flatten(),
            rows: None,
            req_ts: f.ts,
            resp_ts: ts,
        }
    }

    /// Code and "code: message" of an ERR packet.
    fn error(&self, pkt: &MysqlPacket) -> (u16, String) {
        let mut c = Cursor::at(&pkt.payload, 1);
        let code = c.u16_le().unwrap_or(0);
        if c.peek() == Some(b'#') {
            let _ = c.skip(6);
        }
        let message = String::from_utf8_lossy(c.rest());
        let mut text = format!("{code}: {message}");
        self.cap(&mut text, !pkt.is_whole());
        (code, text)
    }
}

fn short_text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes.get(..128).unwrap_or(bytes)).into_owned()
}
