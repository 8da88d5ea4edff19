//! The connection state machine: startup and authentication, then requests
//! paired with responses in order (the server answers strictly in order,
//! also when a client pipelines).

use std::collections::VecDeque;
use std::mem;
use std::ops::Range;
use std::sync::Arc;

use super::event::{Encryption, PgCommand, PgCounters, PgEvent};
use super::prepared::{Portals, Statements};
use super::{PgConfig, PgMessage, PgTag};
use crate::text::truncate_on_char;

mod requests;
mod responses;
mod startup;

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
    /// The text was cut (by the kept-bytes cap or a gap): its last
    /// statement ends in "...".
    cut: bool,
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
    /// Shared with the statement or portal it names.
    req: Arc<str>,
    ts: u64,
    rows: u64,
    copy: Option<(PgCommand, u64)>,
    notices: String,
}

impl Op {
    fn new(kind: OpKind, req: Arc<str>, ts: u64) -> Self {
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
        let mut req = op.req.to_string();
        self.cap(&mut req, false);
        PgEvent {
            command: op.command(),
            copy_bytes: op.copy.map(|(_, b)| b),
            req,
            resp,
            sqlstate,
            rows,
            req_ts: op.ts,
            resp_ts: ts,
        }
    }

    fn one_sided(&self, command: PgCommand, mut req: String, ts: u64) -> PgEvent {
        self.cap(&mut req, false);
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

#[cfg(test)]
mod tests {
    /// The agent moves sessions between threads.
    #[test]
    fn session_is_send() {
        fn send<T: Send>() {}
        send::<super::PgSession>();
        send::<super::super::PgDecoder>();
    }
}
