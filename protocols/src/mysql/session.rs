//! The connection state machine: handshake, commands and their responses.

use std::collections::HashMap;
use std::fmt::Write;

use super::binary::{ParamType, read_value};
use super::consts::*;
use super::redact::redact_sql;
use super::{MysqlConfig, MysqlPacket};
use crate::REDACTED;
use crate::cursor::Cursor;
use crate::text::truncate_on_char;

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

/// Name of a command code ("COM_QUERY"), "COM_UNKNOWN" for others.
pub fn command_name(cmd: u8) -> &'static str {
    match cmd {
        COM_SLEEP => "COM_SLEEP",
        COM_QUIT => "COM_QUIT",
        COM_INIT_DB => "COM_INIT_DB",
        COM_QUERY => "COM_QUERY",
        COM_FIELD_LIST => "COM_FIELD_LIST",
        COM_CREATE_DB => "COM_CREATE_DB",
        COM_DROP_DB => "COM_DROP_DB",
        COM_REFRESH => "COM_REFRESH",
        COM_SHUTDOWN => "COM_SHUTDOWN",
        COM_STATISTICS => "COM_STATISTICS",
        COM_PROCESS_INFO => "COM_PROCESS_INFO",
        COM_CONNECT => "COM_CONNECT",
        COM_PROCESS_KILL => "COM_PROCESS_KILL",
        COM_DEBUG => "COM_DEBUG",
        COM_PING => "COM_PING",
        COM_TIME => "COM_TIME",
        COM_DELAYED_INSERT => "COM_DELAYED_INSERT",
        COM_CHANGE_USER => "COM_CHANGE_USER",
        COM_BINLOG_DUMP => "COM_BINLOG_DUMP",
        COM_TABLE_DUMP => "COM_TABLE_DUMP",
        COM_CONNECT_OUT => "COM_CONNECT_OUT",
        COM_REGISTER_SLAVE => "COM_REGISTER_SLAVE",
        COM_STMT_PREPARE => "COM_STMT_PREPARE",
        COM_STMT_EXECUTE => "COM_STMT_EXECUTE",
        COM_STMT_SEND_LONG_DATA => "COM_STMT_SEND_LONG_DATA",
        COM_STMT_CLOSE => "COM_STMT_CLOSE",
        COM_STMT_RESET => "COM_STMT_RESET",
        COM_SET_OPTION => "COM_SET_OPTION",
        COM_STMT_FETCH => "COM_STMT_FETCH",
        COM_DAEMON => "COM_DAEMON",
        COM_BINLOG_DUMP_GTID => "COM_BINLOG_DUMP_GTID",
        COM_RESET_CONNECTION => "COM_RESET_CONNECTION",
        _ => "COM_UNKNOWN",
    }
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

#[derive(Debug)]
struct Statement {
    sql: String,
    num_params: u16,
    /// Parameter types sent with the last execute that bound them.
    types: Option<Vec<ParamType>>,
    /// Insertion order, for eviction.
    seq: u64,
}

/// What the next server packet of the command in flight is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// The first packet of a response (or of the next result).
    First,
    /// Column definitions still to come.
    Columns {
        remaining: u64,
    },
    /// After the column definitions: a classic EOF, a row, or the
    /// terminator of an empty result (deprecate-EOF).
    AfterColumns,
    Rows,
    /// COM_STMT_PREPARE: parameter then column definitions (EOF packets
    /// between blocks are skipped); `eof` when a final EOF must be awaited.
    PrepareDefs {
        remaining: u64,
        then: u64,
        eof: bool,
    },
    /// COM_FIELD_LIST: column definitions until EOF.
    FieldList,
    /// COM_CHANGE_USER: auth rounds until OK or ERR.
    ChangeUser,
}

#[derive(Debug)]
struct InFlight {
    cmd: u8,
    body: String,
    ts: u64,
    expect: Expect,
    /// Columns of the first result set.
    columns: u64,
    rows: u64,
    result_sets: u32,
    affected: Option<u64>,
    ok_text: String,
    prepared: Option<(u32, u16, u16)>,
}

#[derive(Debug)]
struct Login {
    user: String,
    db: String,
    plugin: String,
    with_password: bool,
    ts: u64,
}

/// Follows one MySQL connection. Bounded: one command in flight, at most
/// `max_statements` prepared statements, texts cut to `max_body_len`.
#[derive(Debug)]
pub struct MysqlSession {
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

impl MysqlSession {
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

    fn greeting(&mut self, pkt: &MysqlPacket) {
        let mut c = Cursor::at(&pkt.payload, 1);
        let version = c.nul_terminated().unwrap_or_default();
        self.server_version =
            String::from_utf8_lossy(version.get(..64).unwrap_or(version)).into_owned();
        let lo = c.skip(4 + 8 + 1).and_then(|()| c.u16_le()).unwrap_or(0);
        let hi = c.skip(1 + 2).and_then(|()| c.u16_le()).unwrap_or(0);
        self.server_caps = Some(u32::from(lo) | u32::from(hi) << 16);
        self.caps = None;
        self.login = None;
        self.inflight = None;
        self.phase = Phase::Greeted;
    }

    /// HandshakeResponse41 (or 320): keeps user, database and plugin; the
    /// auth response is skipped, never stored.
    fn handshake_response(&mut self, pkt: &MysqlPacket, ts: u64) {
        let p = &pkt.payload;
        let mut c = Cursor::new(p);
        let Some(client_caps) = c.u32_le() else {
            return;
        };
        let caps = client_caps & self.server_caps.unwrap_or(u32::MAX);
        self.caps = Some(caps);
        if client_caps & CLIENT_SSL != 0 && pkt.len <= 32 {
            self.phase = Phase::Tls;
            return;
        }
        let mut login = Login {
            user: String::new(),
            db: String::new(),
            plugin: String::new(),
            with_password: false,
            ts,
        };
        if client_caps & CLIENT_PROTOCOL_41 != 0 {
            let _ = c.skip(4 + 1 + 23);
        } else {
            // HandshakeResponse320: 2-byte capabilities, 3-byte max packet.
            c = Cursor::at(p, 5);
        }
        login.user = short_text(c.nul_terminated().unwrap_or_default());
        let auth = if caps & CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA != 0 {
            c.lenenc_bytes()
        } else if caps & CLIENT_SECURE_CONNECTION != 0 {
            c.u8().and_then(|n| c.take(usize::from(n)))
        } else {
            c.nul_terminated()
        };
        login.with_password = auth.is_some_and(|a| !a.is_empty());
        if caps & CLIENT_CONNECT_WITH_DB != 0 {
            login.db = short_text(c.nul_terminated().unwrap_or_default());
        }
        if caps & CLIENT_PLUGIN_AUTH != 0 {
            login.plugin = short_text(c.nul_terminated().unwrap_or_default());
        }
        self.login = Some(login);
        self.phase = Phase::Auth;
    }

    fn auth_packet(&mut self, pkt: &MysqlPacket, ts: u64) -> Option<MysqlExchange> {
        match pkt.first()? {
            0x00 => {
                let compressed = self
                    .caps
                    .is_some_and(|c| c & (CLIENT_COMPRESS | CLIENT_ZSTD_COMPRESSION) != 0);
                self.phase = if compressed {
                    Phase::Compressed
                } else {
                    Phase::Command
                };
                let login = self.login.take();
                Some(self.connect_exchange(login, MysqlStatus::Ok, pkt, ts))
            }
            0xff => {
                self.phase = Phase::Command;
                let login = self.login.take();
                Some(self.connect_exchange(login, MysqlStatus::Err, pkt, ts))
            }
            0xfe => {
                // Auth switch request: the plugin the server wants.
                let name = Cursor::at(&pkt.payload, 1)
                    .nul_terminated()
                    .unwrap_or_default();
                if let Some(login) = &mut self.login {
                    login.plugin = short_text(name);
                }
                None
            }
            // 0x01: more data (caching_sha2_password fast auth result, RSA
            // key). Client packets of these rounds are never looked at.
            _ => None,
        }
    }

    fn connect_exchange(
        &self,
        login: Option<Login>,
        status: MysqlStatus,
        pkt: &MysqlPacket,
        ts: u64,
    ) -> MysqlExchange {
        let mut body = String::new();
        let mut req_ts = ts;
        if let Some(login) = login {
            let _ = write!(body, "user={}", login.user);
            if !login.db.is_empty() {
                let _ = write!(body, " db={}", login.db);
            }
            if !login.plugin.is_empty() {
                let _ = write!(body, " plugin={}", login.plugin);
            }
            if login.with_password {
                let _ = write!(body, " auth={REDACTED}");
            }
            req_ts = login.ts;
        }
        let (resp_body, error_code) = match status {
            MysqlStatus::Err => {
                let (code, text) = self.error(pkt);
                (text, Some(code))
            }
            _ => (String::new(), None),
        };
        MysqlExchange {
            req_cmd: COM_CONNECT,
            req_cmd_name: command_name(COM_CONNECT),
            req_body: body,
            resp_status: status,
            resp_body,
            error_code,
            affected_rows: None,
            rows: None,
            req_ts,
            resp_ts: ts,
        }
    }

    fn request_body(&mut self, cmd: u8, pkt: &MysqlPacket) -> String {
        let p = &pkt.payload;
        let rest = p.get(1..).unwrap_or_default();
        let mut c = Cursor::at(p, 1);
        let mut body = match cmd {
            COM_QUERY => redact_sql(&self.query_text(rest)),
            COM_STMT_PREPARE => redact_sql(&String::from_utf8_lossy(rest)),
            COM_INIT_DB => String::from_utf8_lossy(rest).into_owned(),
            COM_STMT_EXECUTE => self.execute_body(p),
            COM_STMT_CLOSE | COM_STMT_RESET => match c.u32_le() {
                Some(id) => match self.statements.get(&id) {
                    Some(stmt) => stmt.sql.clone(),
                    None => format!("stmt_id={id}"),
                },
                None => String::new(),
            },
            COM_STMT_SEND_LONG_DATA => match (c.u32_le(), c.u16_le()) {
                (Some(id), Some(param)) => format!("stmt_id={id} param={param}"),
                _ => String::new(),
            },
            COM_STMT_FETCH => match (c.u32_le(), c.u32_le()) {
                (Some(id), Some(rows)) => format!("stmt_id={id} rows={rows}"),
                _ => String::new(),
            },
            COM_FIELD_LIST => short_text(c.nul_terminated().unwrap_or(rest)),
            COM_PROCESS_KILL => c.u32_le().map(|id| format!("id={id}")).unwrap_or_default(),
            COM_SET_OPTION => c
                .u16_le()
                .map(|o| format!("option={o}"))
                .unwrap_or_default(),
            COM_CHANGE_USER => {
                let user = short_text(c.nul_terminated().unwrap_or_default());
                let secure = self
                    .caps
                    .is_none_or(|caps| caps & CLIENT_SECURE_CONNECTION != 0);
                let auth = if secure {
                    c.u8().and_then(|n| c.take(usize::from(n)))
                } else {
                    c.nul_terminated()
                };
                let db = short_text(c.nul_terminated().unwrap_or_default());
                let mut body = format!("user={user}");
                if !db.is_empty() {
                    let _ = write!(body, " db={db}");
                }
                if auth.is_some_and(|a| !a.is_empty()) {
                    let _ = write!(body, " auth={REDACTED}");
                }
                body
            }
            _ => String::new(),
        };
        let cut = matches!(cmd, COM_QUERY | COM_STMT_PREPARE | COM_INIT_DB) && !pkt.is_whole();
        self.cap(&mut body, cut);
        body
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

    /// COM_QUERY text after the query attributes, if any.
    fn query_text(&self, rest: &[u8]) -> String {
        let attributes = match self.caps {
            Some(caps) => caps & CLIENT_QUERY_ATTRIBUTES != 0,
            // Unknown: an empty attribute block (0 parameters, 1 set)
            // cannot be the start of a statement.
            None => rest.starts_with(&[0, 1]),
        };
        let text = if attributes {
            skip_query_attributes(rest).unwrap_or(rest)
        } else {
            rest
        };
        String::from_utf8_lossy(text).into_owned()
    }

    /// The statement's text and its parameters, decoded from the binary
    /// protocol: `<sql> -- params: [1, 'a', NULL]`.
    fn execute_body(&mut self, p: &[u8]) -> String {
        let mut c = Cursor::at(p, 1);
        let (Some(id), Some(flags), Some(_iterations)) = (c.u32_le(), c.u8(), c.u32_le()) else {
            return String::new();
        };
        let max = self.config.max_body_len;
        let attributes = match self.caps {
            Some(caps) => caps & CLIENT_QUERY_ATTRIBUTES != 0,
            None => flags & PARAMETER_COUNT_AVAILABLE != 0,
        };
        let Some(stmt) = self.statements.get_mut(&id) else {
            return format!("stmt_id={id} (not prepared in capture)");
        };
        let mut out = stmt.sql.clone();
        let mut count = u64::from(stmt.num_params);
        if attributes && flags & PARAMETER_COUNT_AVAILABLE != 0 {
            match c.lenenc() {
                Some(n) => count = n,
                None => return out,
            }
        }
        if count == 0 {
            return out;
        }
        out.push_str(" -- params: [");
        let Some(count) = usize::try_from(count).ok().filter(|&n| n <= 4096) else {
            out.push_str("...]");
            return out;
        };
        let Some(bitmap) = c.take(count.div_ceil(8)) else {
            out.push_str("...]");
            return out;
        };
        let types = match c.u8() {
            Some(1) => {
                let mut types = Vec::with_capacity(count.min(64));
                for _ in 0..count {
                    let (Some(code), Some(flag)) = (c.u8(), c.u8()) else {
                        out.push_str("...]");
                        return out;
                    };
                    if attributes && c.lenenc_bytes().is_none() {
                        out.push_str("...]");
                        return out;
                    }
                    types.push(ParamType {
                        code,
                        unsigned: flag & 0x80 != 0,
                    });
                }
                let own = usize::from(stmt.num_params).min(types.len());
                stmt.types = Some(types.get(..own).unwrap_or_default().to_vec());
                types
            }
            Some(_) => match &stmt.types {
                Some(types) => types.clone(),
                None => {
                    out.push_str("types unknown]");
                    return out;
                }
            },
            None => {
                out.push_str("...]");
                return out;
            }
        };
        for i in 0..count {
            if i > 0 {
                out.push_str(", ");
            }
            if out.len() > max {
                break;
            }
            let null = bitmap.get(i / 8).is_some_and(|b| b >> (i % 8) & 1 != 0);
            if null {
                out.push_str("NULL");
                continue;
            }
            match types.get(i).and_then(|&ty| read_value(&mut c, ty)) {
                Some(value) => out.push_str(&value),
                None => {
                    out.push_str("...");
                    break;
                }
            }
        }
        out.push(']');
        out
    }

    fn response_packet(&mut self, pkt: &MysqlPacket, ts: u64) -> Option<MysqlExchange> {
        let mut f = self.inflight.take()?;
        let first = pkt.first();
        // 0xfe starts an EOF or an OK-as-terminator; a row starting with it
        // (an 8-byte length) is at least 16 MiB.
        let terminator = first == Some(0xfe) && pkt.len < 0xff_ffff;
        if first == Some(0xff) && f.expect != Expect::ChangeUser {
            let (code, text) = self.error(pkt);
            let mut ex = self.finish(f, MysqlStatus::Err, text, ts);
            ex.error_code = Some(code);
            return Some(ex);
        }
        match f.expect {
            Expect::ChangeUser => match first {
                Some(0x00) => return Some(self.finish(f, MysqlStatus::Ok, String::new(), ts)),
                Some(0xff) => {
                    let (code, text) = self.error(pkt);
                    let mut ex = self.finish(f, MysqlStatus::Err, text, ts);
                    ex.error_code = Some(code);
                    return Some(ex);
                }
                _ => {}
            },
            Expect::First if f.cmd == COM_STATISTICS => {
                let text = String::from_utf8_lossy(&pkt.payload).into_owned();
                return Some(self.finish(f, MysqlStatus::Ok, text, ts));
            }
            Expect::First => match first {
                Some(0x00) if f.cmd == COM_STMT_PREPARE => {
                    let mut c = Cursor::at(&pkt.payload, 1);
                    let (Some(id), Some(columns), Some(params)) =
                        (c.u32_le(), c.u16_le(), c.u16_le())
                    else {
                        return Some(self.finish(f, MysqlStatus::Ok, String::new(), ts));
                    };
                    self.remember(id, &f.body, params);
                    f.prepared = Some((id, params, columns));
                    let eof = self.caps.is_some_and(|c| c & CLIENT_DEPRECATE_EOF == 0);
                    match (u64::from(params), u64::from(columns)) {
                        (0, 0) => return Some(self.finish_prepare(f, ts)),
                        (0, n) | (n, 0) => {
                            f.expect = Expect::PrepareDefs {
                                remaining: n,
                                then: 0,
                                eof,
                            }
                        }
                        (p, n) => {
                            f.expect = Expect::PrepareDefs {
                                remaining: p,
                                then: n,
                                eof,
                            }
                        }
                    }
                }
                Some(0x00) => {
                    let ok = self.ok_packet(pkt);
                    f.affected = Some(f.affected.unwrap_or(0).saturating_add(ok.affected));
                    f.ok_text = ok.text;
                    if ok.status & SERVER_MORE_RESULTS_EXISTS == 0 {
                        return Some(self.finish_result(f, ts));
                    }
                }
                Some(0xfe) if terminator => {
                    return Some(self.finish(f, MysqlStatus::Ok, String::new(), ts));
                }
                // LOCAL INFILE request: the client sends the file, then the
                // server's OK or ERR completes the exchange.
                Some(0xfb) => {}
                _ => match Cursor::new(&pkt.payload).lenenc() {
                    Some(n) if n > 0 => {
                        f.result_sets += 1;
                        if f.result_sets == 1 {
                            f.columns = n;
                        }
                        f.expect = Expect::Columns { remaining: n };
                    }
                    _ => return Some(self.finish(f, MysqlStatus::Ok, String::new(), ts)),
                },
            },
            Expect::Columns { remaining } => {
                f.expect = match remaining {
                    0 | 1 => Expect::AfterColumns,
                    n => Expect::Columns { remaining: n - 1 },
                };
            }
            Expect::AfterColumns if terminator && pkt.len < 7 => {
                // Classic EOF after the definitions; with a cursor open the
                // rows come with COM_STMT_FETCH.
                let status = terminator_status(pkt);
                if status & SERVER_STATUS_CURSOR_EXISTS != 0 {
                    return Some(self.finish_result(f, ts));
                }
                f.expect = Expect::Rows;
            }
            Expect::AfterColumns | Expect::Rows if terminator => {
                if terminator_status(pkt) & SERVER_MORE_RESULTS_EXISTS == 0 {
                    return Some(self.finish_result(f, ts));
                }
                f.expect = Expect::First;
            }
            Expect::AfterColumns | Expect::Rows => {
                f.rows += 1;
                f.expect = Expect::Rows;
            }
            Expect::PrepareDefs {
                remaining,
                then,
                eof,
            } => {
                if terminator && pkt.len < 9 {
                    // EOF closing a block of definitions.
                    if remaining == 0 && then == 0 {
                        return Some(self.finish_prepare(f, ts));
                    }
                } else if remaining > 1 {
                    f.expect = Expect::PrepareDefs {
                        remaining: remaining - 1,
                        then,
                        eof,
                    };
                } else if then > 0 {
                    f.expect = Expect::PrepareDefs {
                        remaining: then,
                        then: 0,
                        eof,
                    };
                } else if eof && remaining == 1 {
                    f.expect = Expect::PrepareDefs {
                        remaining: 0,
                        then: 0,
                        eof,
                    };
                } else {
                    return Some(self.finish_prepare(f, ts));
                }
            }
            Expect::FieldList => {
                if terminator {
                    let text = format!("columns={}", f.columns);
                    return Some(self.finish(f, MysqlStatus::Ok, text, ts));
                }
                f.columns += 1;
            }
        }
        self.inflight = Some(f);
        None
    }

    fn remember(&mut self, id: u32, sql: &str, num_params: u16) {
        if !self.statements.contains_key(&id)
            && self.statements.len() >= self.config.max_statements.max(1)
            && let Some(oldest) = self
                .statements
                .iter()
                .min_by_key(|(_, s)| s.seq)
                .map(|(&k, _)| k)
        {
            self.statements.remove(&oldest);
        }
        self.next_seq += 1;
        self.statements.insert(
            id,
            Statement {
                sql: sql.to_owned(),
                num_params,
                types: None,
                seq: self.next_seq,
            },
        );
    }

    fn finish_prepare(&mut self, f: InFlight, ts: u64) -> MysqlExchange {
        let text = match f.prepared {
            Some((id, params, columns)) => {
                format!("stmt_id={id} params={params} columns={columns}")
            }
            None => String::new(),
        };
        self.finish(f, MysqlStatus::Ok, text, ts)
    }

    /// The last part of a response: result sets or OK.
    fn finish_result(&mut self, f: InFlight, ts: u64) -> MysqlExchange {
        if f.result_sets == 0 {
            let mut text = format!("affected_rows={}", f.affected.unwrap_or(0));
            if !f.ok_text.is_empty() {
                text.push(' ');
                text.push_str(&f.ok_text);
            }
            let affected = f.affected;
            let mut ex = self.finish(f, MysqlStatus::Ok, text, ts);
            ex.affected_rows = affected;
            return ex;
        }
        let mut text = format!("columns={} rows={}", f.columns, f.rows);
        if f.result_sets > 1 {
            let _ = write!(text, " results={}", f.result_sets);
        }
        let rows = f.rows;
        let mut ex = self.finish(f, MysqlStatus::ResultSet, text, ts);
        ex.rows = Some(rows);
        ex
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

    fn ok_packet(&self, pkt: &MysqlPacket) -> Ok {
        let mut c = Cursor::at(&pkt.payload, 1);
        let affected = c.lenenc().unwrap_or(0);
        let insert_id = c.lenenc().unwrap_or(0);
        let status = c.u16_le().unwrap_or(0);
        let warnings = c.u16_le().unwrap_or(0);
        let rest = c.rest();
        // With CLIENT_SESSION_TRACK the info is length-prefixed. When the
        // capabilities were not seen (capture started mid-connection), or a
        // client's flags were misread, a first byte that is exactly the length
        // of the rest is taken as that prefix (text never starts that way).
        let exact_prefix = rest
            .first()
            .is_some_and(|&b| usize::from(b) + 1 == rest.len());
        let session_track = match self.caps {
            Some(caps) => caps & CLIENT_SESSION_TRACK != 0 || exact_prefix,
            None => exact_prefix || rest.first().is_some_and(|&b| b < 0x20),
        };
        let info = if session_track {
            c.lenenc_bytes().unwrap_or_default()
        } else {
            rest
        };
        let mut text = String::new();
        if insert_id != 0 {
            let _ = write!(text, "last_insert_id={insert_id}");
        }
        if warnings != 0 {
            let _ = write!(
                text,
                "{}warnings={warnings}",
                if text.is_empty() { "" } else { " " }
            );
        }
        if !info.is_empty() {
            let _ = write!(
                text,
                "{}info={}",
                if text.is_empty() { "" } else { " " },
                String::from_utf8_lossy(info.get(..256).unwrap_or(info))
            );
        }
        Ok {
            affected,
            status,
            text,
        }
    }
}

struct Ok {
    affected: u64,
    status: u16,
    text: String,
}

/// Status flags of an EOF packet (5 bytes) or of an OK packet with the 0xfe
/// header.
fn terminator_status(pkt: &MysqlPacket) -> u16 {
    let mut c = Cursor::at(&pkt.payload, 1);
    if pkt.len < 7 {
        let _ = c.skip(2);
    } else {
        let _ = (c.lenenc(), c.lenenc());
    }
    c.u16_le().unwrap_or(0)
}

/// Skips the query attributes block of a COM_QUERY (CLIENT_QUERY_ATTRIBUTES):
/// parameter count, parameter set count, then the parameters.
fn skip_query_attributes(rest: &[u8]) -> Option<&[u8]> {
    let mut c = Cursor::new(rest);
    let count = usize::try_from(c.lenenc()?).ok()?;
    // The parameter set count is always 1: anything else means the block
    // is not there after all.
    if c.lenenc()? != 1 {
        return None;
    }
    if count > 0 {
        let bitmap = c.take(count.div_ceil(8))?;
        if c.u8()? == 1 {
            let mut types = Vec::new();
            for _ in 0..count.min(4096) {
                let (code, flag) = (c.u8()?, c.u8()?);
                c.lenenc_bytes()?;
                types.push(ParamType {
                    code,
                    unsigned: flag & 0x80 != 0,
                });
            }
            for (i, ty) in types.into_iter().enumerate() {
                let null = bitmap.get(i / 8).is_some_and(|b| b >> (i % 8) & 1 != 0);
                if !null {
                    read_value(&mut c, ty)?;
                }
            }
        }
    }
    Some(c.rest())
}

fn is_handshake_response(pkt: &MysqlPacket) -> bool {
    let mut c = Cursor::new(&pkt.payload);
    c.u32_le()
        .is_some_and(|caps| caps & CLIENT_PROTOCOL_41 != 0)
        && c.skip(5).is_some()
        // MariaDB clients put extended capabilities in the last 4 filler bytes.
        && c.take(19)
            .is_some_and(|filler| filler.iter().all(|&b| b == 0))
}

fn short_text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes.get(..128).unwrap_or(bytes)).into_owned()
}
