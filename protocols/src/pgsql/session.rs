//! The connection state machine: startup and authentication, then requests
//! paired with responses in order (the server answers strictly in order,
//! also when a client pipelines).

use std::collections::VecDeque;
use std::fmt::Write;
use std::mem;
use std::ops::Range;

use super::message::{self, short_text, tag_rows};
use super::prepared::{Portals, Statement, Statements};
use super::split::statement_ranges;
use super::values::push_value;
use super::{
    CANCEL_REQUEST_CODE, GSSENC_REQUEST_CODE, PROTOCOL_3_0, PgConfig, PgMessage, PgTag,
    SSL_REQUEST_CODE,
};
use crate::cursor::Cursor;
use crate::mysql::redact::redact_sql;
use crate::text::truncate_on_char;

/// What an event is about: the request's message (or the statement's kind
/// for COPY), or what the server sent on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PgCommand {
    /// StartupMessage through authentication to the first ReadyForQuery
    /// (or the error that refused the login).
    Startup,
    SslRequest,
    GssEncRequest,
    /// A request to cancel another connection's query (no response).
    CancelRequest,
    /// One statement of a simple query.
    Query,
    /// Parse, Bind, Describe or Close: only when they fail (a successful
    /// one shows in the Execute it leads to).
    Parse,
    Bind,
    Describe,
    Close,
    /// One Execute of the extended protocol.
    Execute,
    /// A COPY statement (simple or extended) that read from the client,
    /// wrote to it, or both (replication).
    CopyIn,
    CopyOut,
    CopyBoth,
    FunctionCall,
    /// The client closed the session (no response).
    Terminate,
    /// A notice, notification or error the server sent outside any request.
    Notice,
    Notification,
    Error,
}

impl PgCommand {
    /// The name shown in `req_cmd`.
    pub fn name(self) -> &'static str {
        match self {
            PgCommand::Startup => "Startup",
            PgCommand::SslRequest => "SSLRequest",
            PgCommand::GssEncRequest => "GSSENCRequest",
            PgCommand::CancelRequest => "CancelRequest",
            PgCommand::Query => "Query",
            PgCommand::Parse => "Parse",
            PgCommand::Bind => "Bind",
            PgCommand::Describe => "Describe",
            PgCommand::Close => "Close",
            PgCommand::Execute => "Execute",
            PgCommand::CopyIn => "CopyIn",
            PgCommand::CopyOut => "CopyOut",
            PgCommand::CopyBoth => "CopyBoth",
            PgCommand::FunctionCall => "FunctionCall",
            PgCommand::Terminate => "Terminate",
            PgCommand::Notice => "Notice",
            PgCommand::Notification => "Notification",
            PgCommand::Error => "Error",
        }
    }
}

/// One exchange: a `pgsql_events` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgEvent {
    pub command: PgCommand,
    /// Statement text (for Execute with its bound parameters: `... -- params:
    /// [42, 'abc', NULL]`); for Startup the parameters (`user=.. database=..`);
    /// never a password. Ends in "..." when cut.
    pub req: String,
    /// The CommandComplete tag (`INSERT 0 1`), `SEVERITY: message` of an
    /// error, `OK (SCRAM-SHA-256)` of a login; notices follow after "; ".
    pub resp: String,
    /// SQLSTATE of the error (or of a notice sent on its own); `None` on
    /// success.
    pub sqlstate: Option<String>,
    /// Rows from the CommandComplete tag (or counted, for a suspended
    /// portal); `None` when the tag has no count.
    pub rows: Option<u64>,
    /// CopyData bytes of a COPY.
    pub copy_bytes: Option<u64>,
    pub req_ts: u64,
    pub resp_ts: u64,
}

/// Whether (and how) the connection's bytes turned into ciphertext.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encryption {
    None,
    /// TLS after an accepted SSLRequest (or direct TLS): libpq's plaintext
    /// is seen through the OpenSSL probes.
    Tls,
    /// GSSAPI encryption: not followed.
    Gss,
}

/// What the session dropped or could not pair. The caller adds the changes
/// to its own counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PgCounters {
    /// Requests dropped without their response (lost in a gap, answers
    /// lost, connection state unknown).
    pub unanswered: u64,
    /// Requests dropped because `max_pending` were waiting.
    pub pending_evicted: u64,
    /// Prepared statements forgotten because `max_statements` were kept.
    pub statements_evicted: u64,
    /// Portals forgotten because `max_portals` were kept.
    pub portals_evicted: u64,
    /// Binds and Executes naming a statement or portal not seen (prepared
    /// before the capture started, or evicted).
    pub unknown_statements: u64,
    /// Responses with no request waiting for them.
    pub unmatched_responses: u64,
    /// Simple queries whose statements the split did not match one to one
    /// with the server's completions (or with more than
    /// `max_query_statements`).
    pub split_mismatches: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Expecting startup-phase messages (or, mid-stream, anything).
    Startup,
    /// StartupMessage seen: authentication until ReadyForQuery or an error.
    Auth,
    Ready,
    /// The bytes are ciphertext.
    Encrypted,
}

#[derive(Debug)]
struct Login {
    req: String,
    method: String,
    ts: u64,
}

/// A simple query in progress: its text and statement ranges.
#[derive(Debug)]
struct QueryState {
    text: String,
    statements: Vec<Range<usize>>,
    /// Index of the statement the next completion answers.
    next: usize,
    /// An error ended it: the other statements were not run.
    failed: bool,
}

#[derive(Debug)]
enum OpKind {
    Query(QueryState),
    Parse,
    Bind,
    /// Describe of a statement (its name, to learn parameter types) or of a
    /// portal.
    Describe(Option<String>),
    Execute,
    Close,
    Sync,
    FunctionCall,
}

/// A request waiting for its response.
#[derive(Debug)]
struct Op {
    kind: OpKind,
    req: String,
    ts: u64,
    rows: u64,
    copy: Option<(PgCommand, u64)>,
    notices: String,
}

impl Op {
    fn new(kind: OpKind, req: String, ts: u64) -> Self {
        Self {
            kind,
            req,
            ts,
            rows: 0,
            copy: None,
            notices: String::new(),
        }
    }

    fn command(&self) -> PgCommand {
        if let Some((copy, _)) = self.copy {
            return copy;
        }
        match self.kind {
            OpKind::Query(_) => PgCommand::Query,
            OpKind::Parse => PgCommand::Parse,
            OpKind::Bind => PgCommand::Bind,
            OpKind::Describe(_) => PgCommand::Describe,
            OpKind::Execute | OpKind::Sync => PgCommand::Execute,
            OpKind::Close => PgCommand::Close,
            OpKind::FunctionCall => PgCommand::FunctionCall,
        }
    }

    /// Rows and COPY data belong to a statement being run.
    fn runs_statement(&self) -> bool {
        matches!(self.kind, OpKind::Query(_) | OpKind::Execute)
    }
}

/// Follows one PostgreSQL connection. Bounded: at most `max_pending`
/// requests wait, `max_statements` prepared statements and `max_portals`
/// portals are remembered, texts are cut to `max_text_len`.
#[derive(Debug)]
pub struct PgSession {
    config: PgConfig,
    phase: Phase,
    encryption: Encryption,
    /// An SSLRequest or GSSENCRequest waiting for its answer.
    encryption_request: Option<(PgCommand, u64)>,
    user: String,
    database: String,
    server_version: String,
    login: Option<Login>,
    pending: VecDeque<Op>,
    statements: Statements,
    portals: Portals,
    /// Time of the first extended-protocol message since the last Execute
    /// or Sync: where an Execute's exchange starts.
    segment_start: Option<u64>,
    /// After an error the server skips messages until Sync.
    skip_until_sync: bool,
    /// After a gap, responses are ignored until the next ReadyForQuery.
    awaiting_ready: bool,
    counters: PgCounters,
}

impl PgSession {
    pub fn new(config: PgConfig) -> Self {
        Self {
            statements: Statements::new(config.max_statements),
            portals: Portals::new(config.max_portals),
            config,
            phase: Phase::Startup,
            encryption: Encryption::None,
            encryption_request: None,
            user: String::new(),
            database: String::new(),
            server_version: String::new(),
            login: None,
            pending: VecDeque::new(),
            segment_start: None,
            skip_until_sync: false,
            awaiting_ready: false,
            counters: PgCounters::default(),
        }
    }

    /// The user of the StartupMessage ("" until seen).
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The database of the StartupMessage (the user's name when it named
    /// none; "" until seen).
    pub fn database(&self) -> &str {
        &self.database
    }

    /// `server_version` from the server's ParameterStatus ("" until seen).
    pub fn server_version(&self) -> &str {
        &self.server_version
    }

    /// Whether the connection switched to TLS or GSS encryption: nothing
    /// more can be parsed from its socket bytes.
    pub fn encryption(&self) -> Encryption {
        self.encryption
    }

    pub fn counters(&self) -> &PgCounters {
        &self.counters
    }

    /// Requests waiting for their response.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Prepared statements remembered (named ones and the unnamed one).
    pub fn statements(&self) -> usize {
        self.statements.len()
    }

    /// An estimate of the heap and inline bytes this session holds, for
    /// the caller's memory bound.
    pub fn state_bytes(&self) -> usize {
        let ops: usize = self
            .pending
            .iter()
            .map(|op| {
                let query = match &op.kind {
                    OpKind::Query(q) => q.text.len() + q.statements.len() * 16,
                    OpKind::Describe(Some(name)) => name.len(),
                    _ => 0,
                };
                mem::size_of::<Op>() + op.req.len() + op.notices.len() + query
            })
            .sum();
        mem::size_of::<Self>()
            + ops
            + self.statements.bytes()
            + self.portals.bytes()
            + self.user.len()
            + self.database.len()
            + self.server_version.len()
            + self
                .login
                .as_ref()
                .map_or(0, |l| l.req.len() + l.method.len())
    }

    /// Bytes of either direction were lost: requests in flight are dropped
    /// (and counted); prepared statements are kept. Responses are ignored
    /// until the next ReadyForQuery, so that nothing is paired across the
    /// hole.
    pub fn on_gap(&mut self) {
        self.drop_pending();
        self.segment_start = None;
        self.skip_until_sync = false;
        self.encryption_request = None;
        match self.phase {
            Phase::Auth => self.login = None,
            Phase::Ready | Phase::Startup => self.awaiting_ready = true,
            Phase::Encrypted => {}
        }
    }

    /// A message from the client, seen at `ts` (its first byte).
    pub fn on_frontend(&mut self, msg: &PgMessage, ts: u64) -> Option<PgEvent> {
        if self.phase == Phase::Encrypted {
            return None;
        }
        match msg.tag {
            PgTag::Untyped => self.untyped(msg, ts),
            PgTag::Encrypted => self.encrypted(Encryption::Tls, ts),
            PgTag::EncryptionAnswer(_) => None,
            PgTag::Typed(tag) => {
                if self.phase == Phase::Auth && tag == b'p' {
                    // Password, SASL and GSS responses: never looked at.
                    return None;
                }
                if self.phase != Phase::Auth {
                    self.phase = Phase::Ready;
                }
                self.frontend_typed(tag, msg, ts)
            }
        }
    }

    /// A message from the server, seen at `ts` (its last byte).
    pub fn on_backend(&mut self, msg: &PgMessage, ts: u64) -> Option<PgEvent> {
        if self.phase == Phase::Encrypted {
            return None;
        }
        match msg.tag {
            PgTag::EncryptionAnswer(answer) => {
                let encryption = match answer {
                    b'S' => Encryption::Tls,
                    b'G' => Encryption::Gss,
                    _ => Encryption::None,
                };
                self.encrypted(encryption, ts)
            }
            PgTag::Encrypted => self.encrypted(Encryption::Tls, ts),
            PgTag::Untyped => None,
            PgTag::Typed(tag) => match self.phase {
                Phase::Startup | Phase::Auth if self.startup_reply(tag) => self.auth(tag, msg, ts),
                _ => {
                    self.phase = Phase::Ready;
                    self.backend_typed(tag, msg, ts)
                }
            },
        }
    }

    // ---- Startup, encryption, authentication ----

    fn untyped(&mut self, msg: &PgMessage, ts: u64) -> Option<PgEvent> {
        let mut c = Cursor::new(&msg.body);
        let code = c.u32_be()?;
        match code {
            SSL_REQUEST_CODE => {
                self.encryption_request = Some((PgCommand::SslRequest, ts));
                None
            }
            GSSENC_REQUEST_CODE => {
                self.encryption_request = Some((PgCommand::GssEncRequest, ts));
                None
            }
            CANCEL_REQUEST_CODE => {
                // The secret key is not kept.
                let req = c.u32_be().map(|pid| format!("pid={pid}"));
                Some(self.one_sided(PgCommand::CancelRequest, req.unwrap_or_default(), ts))
            }
            _ if code >> 16 == PROTOCOL_3_0 >> 16 => {
                let params = message::startup_params(&msg.body);
                let mut req = String::new();
                for (key, value) in &params {
                    match key.as_str() {
                        "user" => self.user.clone_from(value),
                        "database" => self.database.clone_from(value),
                        _ => {}
                    }
                    if !req.is_empty() {
                        req.push(' ');
                    }
                    let _ = write!(req, "{key}={value}");
                }
                if self.database.is_empty() {
                    self.database.clone_from(&self.user);
                }
                self.cap(&mut req, false);
                self.login = Some(Login {
                    req,
                    method: String::new(),
                    ts,
                });
                self.phase = Phase::Auth;
                self.awaiting_ready = false;
                // An SSLRequest whose one-byte answer has not been decoded
                // yet was refused: the startup goes on in plaintext.
                self.encryption_request
                    .take()
                    .map(|(command, req_ts)| self.encryption_event(command, false, req_ts, ts))
            }
            _ => None,
        }
    }

    fn encrypted(&mut self, encryption: Encryption, ts: u64) -> Option<PgEvent> {
        let request = self.encryption_request.take();
        if encryption != Encryption::None {
            self.encryption = encryption;
            self.phase = Phase::Encrypted;
            self.drop_pending();
        }
        request.map(|(command, req_ts)| {
            self.encryption_event(command, encryption != Encryption::None, req_ts, ts)
        })
    }

    fn encryption_event(
        &self,
        command: PgCommand,
        accepted: bool,
        req_ts: u64,
        ts: u64,
    ) -> PgEvent {
        PgEvent {
            command,
            req: String::new(),
            resp: if accepted { "accepted" } else { "refused" }.to_string(),
            sqlstate: None,
            rows: None,
            copy_bytes: None,
            req_ts,
            resp_ts: ts,
        }
    }

    /// Messages a server sends between StartupMessage and ReadyForQuery.
    fn startup_reply(&self, tag: u8) -> bool {
        matches!(tag, b'R' | b'S' | b'K' | b'N' | b'v' | b'E' | b'Z')
            && (self.phase == Phase::Auth || tag == b'R')
    }

    fn auth(&mut self, tag: u8, msg: &PgMessage, ts: u64) -> Option<PgEvent> {
        self.phase = Phase::Auth;
        match tag {
            b'R' => {
                let mut c = Cursor::new(&msg.body);
                let method = match c.u32_be()? {
                    0 => return None,
                    2 => "KerberosV5".to_string(),
                    3 => "password".to_string(),
                    5 => "md5".to_string(),
                    7 => "GSS".to_string(),
                    9 => "SSPI".to_string(),
                    10 => {
                        let mut names = Vec::new();
                        while let Some(name) = c.nul_terminated().filter(|n| !n.is_empty()) {
                            names.push(short_text(name));
                        }
                        names.join(",")
                    }
                    _ => return None,
                };
                if let Some(login) = &mut self.login
                    && login.method.is_empty()
                {
                    login.method = method;
                }
                None
            }
            b'S' => {
                let mut c = Cursor::new(&msg.body);
                if c.nul_terminated() == Some(b"server_version") {
                    self.server_version = short_text(c.nul_terminated().unwrap_or_default());
                }
                None
            }
            b'E' => {
                let f = message::fields(&msg.body);
                let login = self.login.take();
                self.phase = Phase::Startup;
                let (req, req_ts) = login.map_or((String::new(), ts), |l| (l.req, l.ts));
                let mut resp = format!("{}: {}", f.severity, f.message);
                self.cap(&mut resp, !msg.is_whole());
                Some(PgEvent {
                    command: PgCommand::Startup,
                    req,
                    resp,
                    sqlstate: Some(f.sqlstate),
                    rows: None,
                    copy_bytes: None,
                    req_ts,
                    resp_ts: ts,
                })
            }
            b'Z' => {
                self.phase = Phase::Ready;
                let login = self.login.take()?;
                let method = if login.method.is_empty() {
                    "trust"
                } else {
                    &login.method
                };
                Some(PgEvent {
                    command: PgCommand::Startup,
                    resp: format!("OK ({method})"),
                    req: login.req,
                    sqlstate: None,
                    rows: None,
                    copy_bytes: None,
                    req_ts: login.ts,
                    resp_ts: ts,
                })
            }
            // BackendKeyData, notices, NegotiateProtocolVersion.
            _ => None,
        }
    }

    // ---- Requests ----

    fn frontend_typed(&mut self, tag: u8, msg: &PgMessage, ts: u64) -> Option<PgEvent> {
        let body = msg.body.as_slice();
        if self.skip_until_sync && !matches!(tag, b'S' | b'X' | b'd' | b'c' | b'f' | b'H') {
            // The server discards these until Sync.
            return None;
        }
        match tag {
            b'Q' => {
                let text = body.strip_suffix(b"\0").unwrap_or(body);
                let text = redact_sql(&String::from_utf8_lossy(text));
                let mut statements = statement_ranges(&text);
                let max = self.config.max_query_statements.max(1);
                if statements.len() > max {
                    self.counters.split_mismatches += 1;
                    let end = statements.last().map_or(text.len(), |r| r.end);
                    statements.truncate(max);
                    if let Some(last) = statements.last_mut() {
                        last.end = end;
                    }
                }
                // A simple query destroys the unnamed statement and portal.
                self.statements.remove(b"");
                self.portals.remove(b"");
                let query = QueryState {
                    text,
                    statements,
                    next: 0,
                    failed: false,
                };
                let mut op = Op::new(OpKind::Query(query), String::new(), ts);
                // A cut text ends its last statement with "...".
                if !msg.is_whole() {
                    op.req.push_str("...");
                }
                self.push(op);
            }
            b'P' => {
                let start = self.segment_start(ts);
                let parse = message::parse(body)?;
                let mut text = redact_sql(&String::from_utf8_lossy(parse.text));
                self.cap(&mut text, !parse.text_whole);
                let evicted = self.statements.insert(
                    parse.name,
                    Statement {
                        text: text.clone(),
                        types: parse.param_types,
                    },
                );
                self.counters.statements_evicted += evicted;
                self.push(Op::new(OpKind::Parse, text, start));
            }
            b'B' => {
                let start = self.segment_start(ts);
                let bind = message::bind(body)?;
                let req = self.render_bind(&bind, msg.is_whole());
                let evicted = self.portals.insert(bind.portal, req.clone());
                self.counters.portals_evicted += evicted;
                self.push(Op::new(OpKind::Bind, req, start));
            }
            b'D' => {
                let start = self.segment_start(ts);
                let (kind, name) = message::target(body)?;
                let (statement, req) = if kind == b'S' {
                    let text = self.statements.get(name).map(|s| s.text.clone());
                    (Some(short_text(name)), text.unwrap_or_default())
                } else {
                    (None, self.portals.get(name).cloned().unwrap_or_default())
                };
                self.push(Op::new(OpKind::Describe(statement), req, start));
            }
            b'E' => {
                let start = self.segment_start.take().unwrap_or(ts);
                let (portal, _max_rows) = message::execute(body)?;
                let req = match self.portals.get(portal) {
                    Some(req) => req.clone(),
                    None => {
                        self.counters.unknown_statements += 1;
                        format!("portal \"{}\" (not bound in capture)", short_text(portal))
                    }
                };
                self.push(Op::new(OpKind::Execute, req, start));
            }
            b'C' => {
                let start = self.segment_start(ts);
                let (kind, name) = message::target(body)?;
                if kind == b'S' {
                    self.statements.remove(name);
                } else {
                    self.portals.remove(name);
                }
                let req = format!(
                    "{} \"{}\"",
                    if kind == b'S' { "statement" } else { "portal" },
                    short_text(name)
                );
                self.push(Op::new(OpKind::Close, req, start));
            }
            b'S' => {
                self.segment_start = None;
                self.skip_until_sync = false;
                self.push(Op::new(OpKind::Sync, String::new(), ts));
            }
            b'F' => {
                let oid = Cursor::new(body).u32_be().unwrap_or(0);
                self.push(Op::new(OpKind::FunctionCall, format!("oid={oid}"), ts));
            }
            b'd' => {
                // CopyData from the client: the statement at the front is a
                // COPY FROM STDIN (or a CopyBoth stream).
                if let Some(op) = self.pending.front_mut().filter(|op| op.runs_statement()) {
                    let (_, bytes) = op.copy.get_or_insert((PgCommand::CopyIn, 0));
                    *bytes += u64::from(msg.len);
                }
            }
            b'X' => {
                self.drop_pending();
                return Some(self.one_sided(PgCommand::Terminate, String::new(), ts));
            }
            // Flush, CopyDone, CopyFail (the server answers with an error).
            _ => {}
        }
        None
    }

    /// The start of the current extended-protocol segment.
    fn segment_start(&mut self, ts: u64) -> u64 {
        *self.segment_start.get_or_insert(ts)
    }

    /// The statement's text and the bound values: `<text> -- params: [1,
    /// 'a', NULL]`.
    fn render_bind(&mut self, bind: &message::Bind<'_>, whole: bool) -> String {
        let statement = self.statements.get(bind.statement);
        let mut out = match statement {
            Some(s) => s.text.clone(),
            None => {
                self.counters.unknown_statements += 1;
                format!(
                    "statement \"{}\" (not prepared in capture)",
                    short_text(bind.statement)
                )
            }
        };
        if bind.count > 0 {
            out.push_str(" -- params: [");
            for (i, value) in bind.values.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                if out.len() > self.config.max_text_len {
                    break;
                }
                let oid = statement.and_then(|s| s.types.get(i).copied()).unwrap_or(0);
                push_value(&mut out, oid, bind.is_binary(i), *value);
            }
            if bind.values.len() < usize::from(bind.count) || !whole {
                if !bind.values.is_empty() {
                    out.push_str(", ");
                }
                out.push_str("...");
            }
            out.push(']');
        }
        self.cap(&mut out, false);
        out
    }

    fn push(&mut self, op: Op) {
        if self.pending.len() >= self.config.max_pending.max(1)
            && self.pending.pop_front().is_some()
        {
            self.counters.pending_evicted += 1;
        }
        self.pending.push_back(op);
    }

    /// Drops every waiting request, counting those that expected an answer
    /// the caller would have seen as an event.
    fn drop_pending(&mut self) {
        let dropped = self
            .pending
            .drain(..)
            .filter(|op| !matches!(op.kind, OpKind::Sync))
            .count();
        self.counters.unanswered += dropped as u64;
    }

    // ---- Responses ----

    fn backend_typed(&mut self, tag: u8, msg: &PgMessage, ts: u64) -> Option<PgEvent> {
        if self.awaiting_ready {
            if tag == b'Z' {
                self.awaiting_ready = false;
                // What was sent before the gap's effects were over: its
                // answers may be the ones just ignored.
                while let Some(op) = self.pending.pop_front() {
                    match op.kind {
                        OpKind::Sync | OpKind::Query(_) => {
                            self.counters.unanswered +=
                                u64::from(matches!(op.kind, OpKind::Query(_)));
                            break;
                        }
                        _ => self.counters.unanswered += 1,
                    }
                }
            }
            return None;
        }
        match tag {
            b'1' => drop(self.complete(|k| matches!(k, OpKind::Parse))),
            b'2' => drop(self.complete(|k| matches!(k, OpKind::Bind))),
            b'3' => drop(self.complete(|k| matches!(k, OpKind::Close))),
            b't' => {
                if let Some(Op {
                    kind: OpKind::Describe(Some(name)),
                    ..
                }) = self.pending.front()
                {
                    let mut c = Cursor::new(&msg.body);
                    let count = c.u16_be().unwrap_or(0);
                    let types: Vec<u32> = (0..count).map_while(|_| c.u32_be()).collect();
                    self.statements.learn_types(name.as_bytes(), types);
                }
            }
            b'T' | b'n' => {
                if matches!(
                    self.pending.front().map(|op| &op.kind),
                    Some(OpKind::Describe(_))
                ) {
                    self.pending.pop_front();
                }
            }
            b'D' => {
                if let Some(op) = self.pending.front_mut() {
                    op.rows += 1;
                }
            }
            b'G' | b'H' | b'W' => {
                let copy = match tag {
                    b'G' => PgCommand::CopyIn,
                    b'H' => PgCommand::CopyOut,
                    _ => PgCommand::CopyBoth,
                };
                if let Some(op) = self.pending.front_mut().filter(|op| op.runs_statement()) {
                    let bytes = op.copy.map_or(0, |(_, b)| b);
                    op.copy = Some((copy, bytes));
                }
            }
            b'd' => {
                if let Some(op) = self.pending.front_mut()
                    && let Some((_, bytes)) = &mut op.copy
                {
                    *bytes += u64::from(msg.len);
                }
            }
            b'C' | b'I' | b's' => {
                let tag_text = match tag {
                    b'C' => {
                        let text = msg.body.strip_suffix(b"\0").unwrap_or(&msg.body);
                        short_text(text)
                    }
                    b'I' => "EmptyQueryResponse".to_string(),
                    _ => "PortalSuspended".to_string(),
                };
                return self.statement_done(tag, tag_text, ts);
            }
            b'E' => return self.error(msg, ts),
            b'N' => {
                let f = message::fields(&msg.body);
                match self.pending.front_mut() {
                    Some(op) if !matches!(op.kind, OpKind::Sync) => {
                        if op.notices.len() < self.config.max_text_len {
                            let _ = write!(op.notices, "; {}: {}", f.severity, f.message);
                        }
                    }
                    _ => {
                        let mut resp = format!("{}: {}", f.severity, f.message);
                        self.cap(&mut resp, !msg.is_whole());
                        let mut ev = self.one_sided(PgCommand::Notice, String::new(), ts);
                        ev.resp = resp;
                        ev.sqlstate = Some(f.sqlstate);
                        return Some(ev);
                    }
                }
            }
            b'Z' => self.ready(),
            b'A' => {
                let mut c = Cursor::new(&msg.body);
                let _pid = c.u32_be();
                let channel = short_text(c.nul_terminated().unwrap_or_default());
                let mut payload =
                    String::from_utf8_lossy(c.nul_terminated().unwrap_or(c.rest())).into_owned();
                self.cap(&mut payload, !msg.is_whole());
                let mut ev = self.one_sided(PgCommand::Notification, channel, ts);
                ev.resp = payload;
                return Some(ev);
            }
            b'V' => {
                let op = self.complete(|k| matches!(k, OpKind::FunctionCall))?;
                let len = Cursor::new(&msg.body).u32_be().unwrap_or(u32::MAX);
                let resp = if len == u32::MAX {
                    "NULL".to_string()
                } else {
                    format!("{len} bytes")
                };
                return Some(self.event(op, resp, None, None, ts));
            }
            b'S' => {
                let mut c = Cursor::new(&msg.body);
                if c.nul_terminated() == Some(b"server_version") {
                    self.server_version = short_text(c.nul_terminated().unwrap_or_default());
                }
            }
            // BackendKeyData, NegotiateProtocolVersion, CopyDone, auth
            // requests outside the startup.
            _ => {}
        }
        None
    }

    /// Removes and returns the first waiting request that `fits`; those
    /// before it never got their answer.
    fn complete(&mut self, fits: impl Fn(&OpKind) -> bool) -> Option<Op> {
        let Some(at) = self.pending.iter().position(|op| fits(&op.kind)) else {
            self.counters.unmatched_responses += 1;
            return None;
        };
        for op in self.pending.drain(..at) {
            if !matches!(op.kind, OpKind::Sync) {
                self.counters.unanswered += 1;
            }
        }
        self.pending.pop_front()
    }

    /// CommandComplete, EmptyQueryResponse or PortalSuspended for the
    /// statement at the front.
    fn statement_done(&mut self, tag: u8, tag_text: String, ts: u64) -> Option<PgEvent> {
        let Some(at) = self.pending.iter().position(Op::runs_statement) else {
            self.counters.unmatched_responses += 1;
            return None;
        };
        for op in self.pending.drain(..at) {
            if !matches!(op.kind, OpKind::Sync) {
                self.counters.unanswered += 1;
            }
        }
        let rows = match tag {
            b'C' => tag_rows(&tag_text),
            b's' => self.pending.front().map(|op| op.rows),
            _ => None,
        };
        let op = self.pending.front_mut()?;
        let copy_bytes = op.copy.map(|(_, bytes)| bytes);
        let command = op.command();
        let mut resp = tag_text;
        if let Some(bytes) = copy_bytes {
            let _ = write!(resp, " ({bytes} bytes)");
        }
        match &mut op.kind {
            OpKind::Query(query) => {
                let req = match query.statements.get(query.next) {
                    Some(range) => {
                        let mut text = query
                            .text
                            .get(range.clone())
                            .unwrap_or_default()
                            .to_string();
                        if query.next + 1 == query.statements.len() {
                            text.push_str(&op.req);
                        }
                        text
                    }
                    None => {
                        // More completions than the split found (or an
                        // empty query's EmptyQueryResponse).
                        if !(tag == b'I' && query.statements.is_empty()) {
                            self.counters.split_mismatches += 1;
                        }
                        String::new()
                    }
                };
                query.next += 1;
                resp.push_str(&op.notices);
                let event = PgEvent {
                    command,
                    req,
                    resp,
                    sqlstate: None,
                    rows,
                    copy_bytes,
                    req_ts: op.ts,
                    resp_ts: ts,
                };
                // The next statement starts when this one is done.
                op.ts = ts;
                op.rows = 0;
                op.copy = None;
                op.notices.clear();
                let mut event = event;
                self.cap(&mut event.req, false);
                self.cap(&mut event.resp, false);
                Some(event)
            }
            _ => {
                let op = self.pending.pop_front()?;
                Some(self.event(op, resp, None, rows, ts))
            }
        }
    }

    fn error(&mut self, msg: &PgMessage, ts: u64) -> Option<PgEvent> {
        let f = message::fields(&msg.body);
        let mut resp = format!("{}: {}", f.severity, f.message);
        self.cap(&mut resp, !msg.is_whole());
        let sqlstate = Some(f.sqlstate);
        let Some(op) = self.pending.front_mut() else {
            let mut ev = self.one_sided(PgCommand::Error, String::new(), ts);
            ev.resp = resp;
            ev.sqlstate = sqlstate;
            return Some(ev);
        };
        let command = op.command();
        if let OpKind::Query(query) = &mut op.kind {
            // The rest of the query's statements are not run; the query ends
            // with ReadyForQuery.
            let req = query
                .statements
                .get(query.next)
                .and_then(|r| query.text.get(r.clone()))
                .unwrap_or_default()
                .to_string();
            query.failed = true;
            query.next = query.statements.len();
            let mut event = PgEvent {
                command,
                req,
                resp,
                sqlstate,
                rows: None,
                copy_bytes: op.copy.map(|(_, b)| b),
                req_ts: op.ts,
                resp_ts: ts,
            };
            event.resp.push_str(&op.notices);
            self.cap(&mut event.req, false);
            self.cap(&mut event.resp, false);
            return Some(event);
        }
        if matches!(op.kind, OpKind::Sync) {
            // An error at Sync (e.g. a failed COMMIT of an implicit
            // transaction): nothing waits for it but ReadyForQuery.
            let mut ev = self.one_sided(PgCommand::Error, String::new(), ts);
            ev.resp = resp;
            ev.sqlstate = sqlstate;
            return Some(ev);
        }
        let op = self.pending.pop_front()?;
        // The server skips everything up to the next Sync.
        while let Some(next) = self.pending.front() {
            if matches!(next.kind, OpKind::Sync) {
                break;
            }
            self.pending.pop_front();
        }
        self.skip_until_sync = self.pending.is_empty();
        Some(self.event(op, resp, sqlstate, None, ts))
    }

    /// ReadyForQuery ends a simple query or a Sync.
    fn ready(&mut self) {
        let Some(at) = self
            .pending
            .iter()
            .position(|op| matches!(op.kind, OpKind::Sync | OpKind::Query(_)))
        else {
            return;
        };
        for op in self.pending.drain(..at) {
            let _ = op;
            self.counters.unanswered += 1;
        }
        if let Some(Op {
            kind: OpKind::Query(query),
            ..
        }) = self.pending.pop_front()
            && !query.failed
            && query.next != query.statements.len()
        {
            self.counters.split_mismatches += 1;
        }
    }

    fn event(
        &self,
        op: Op,
        mut resp: String,
        sqlstate: Option<String>,
        rows: Option<u64>,
        ts: u64,
    ) -> PgEvent {
        resp.push_str(&op.notices);
        self.cap(&mut resp, false);
        PgEvent {
            command: op.command(),
            copy_bytes: op.copy.map(|(_, b)| b),
            req: op.req,
            resp,
            sqlstate,
            rows,
            req_ts: op.ts,
            resp_ts: ts,
        }
    }

    fn one_sided(&self, command: PgCommand, req: String, ts: u64) -> PgEvent {
        PgEvent {
            command,
            req,
            resp: String::new(),
            sqlstate: None,
            rows: None,
            copy_bytes: None,
            req_ts: ts,
            resp_ts: ts,
        }
    }

    /// Caps `text` to `max_text_len`, marking a cut with "...".
    fn cap(&self, text: &mut String, already_cut: bool) {
        let max = self.config.max_text_len;
        if text.len() > max {
            truncate_on_char(text, max.saturating_sub(3));
            text.push_str("...");
        } else if already_cut {
            text.push_str("...");
        }
    }
}
