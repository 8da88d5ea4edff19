//! Requests from the client: queued in order, waiting for their answers.

use std::sync::Arc;

use super::super::PgMessage;
use super::super::message::{self, short_text};
use super::super::prepared::Statement;
use super::super::split::statement_ranges;
use super::super::values::push_value;
use super::{Op, OpKind, PgCommand, PgEvent, PgSession, QueryState};
use crate::cursor::Cursor;
use crate::mysql::redact::redact_sql;

impl PgSession {
    pub(super) fn frontend_typed(&mut self, tag: u8, msg: &PgMessage, ts: u64) -> Option<PgEvent> {
        let body = msg.body.as_slice();
        if self.skip_until_sync && !matches!(tag, b'S' | b'X' | b'd' | b'c' | b'f' | b'H') {
            // The server discards these until Sync.
            return None;
        }
        match tag {
            b'Q' => {
                let text = body.strip_suffix(b"\0").unwrap_or(body);
                let text = redact(String::from_utf8_lossy(text).into_owned());
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
                    cut: !msg.is_whole(),
                };
                self.push(Op::new(OpKind::Query(query), Arc::from(""), ts));
            }
            b'P' => {
                let start = self.segment_start(ts);
                let parse = message::parse(body)?;
                let mut text = redact(String::from_utf8_lossy(parse.text).into_owned());
                self.cap(&mut text, !parse.text_whole);
                let text: Arc<str> = Arc::from(text);
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
                let req: Arc<str> = Arc::from(self.render_bind(&bind, msg.is_whole()));
                let evicted = self.portals.insert(bind.portal, req.clone());
                self.counters.portals_evicted += evicted;
                self.push(Op::new(OpKind::Bind, req, start));
            }
            b'D' => {
                let start = self.segment_start(ts);
                let (kind, name) = message::target(body)?;
                let (statement, req) = if kind == b'S' {
                    let text = self.statements.get(name).map(|s| s.text.clone());
                    (Some(short_text(name)), text)
                } else {
                    (None, self.portals.get(name).cloned())
                };
                let req = req.unwrap_or_else(|| Arc::from(""));
                self.push(Op::new(OpKind::Describe(statement), req, start));
            }
            b'E' => {
                let start = self.segment_start.take().unwrap_or(ts);
                let (portal, _max_rows) = message::execute(body)?;
                let req = match self.portals.get(portal) {
                    Some(req) => req.clone(),
                    None => {
                        self.counters.unknown_statements += 1;
                        Arc::from(format!(
                            "portal \"{}\" (not bound in capture)",
                            short_text(portal)
                        ))
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
                self.push(Op::new(OpKind::Close, Arc::from(req), start));
            }
            b'S' => {
                self.segment_start = None;
                self.skip_until_sync = false;
                self.push(Op::new(OpKind::Sync, Arc::from(""), ts));
            }
            b'F' => {
                let oid = Cursor::new(body).u32_be().unwrap_or(0);
                let req = Arc::from(format!("oid={oid}"));
                self.push(Op::new(OpKind::FunctionCall, req, ts));
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
    pub(super) fn segment_start(&mut self, ts: u64) -> u64 {
        *self.segment_start.get_or_insert(ts)
    }

    /// The statement's text and the bound values: `<text> -- params: [1,
    /// 'a', NULL]`.
    pub(super) fn render_bind(&mut self, bind: &message::Bind<'_>, whole: bool) -> String {
        let statement = self.statements.get(bind.statement);
        let mut out = match statement {
            Some(s) => s.text.to_string(),
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

    pub(super) fn push(&mut self, op: Op) {
        if self.pending.len() >= self.config.max_pending.max(1)
            && self.pending.pop_front().is_some()
        {
            self.counters.pending_evicted += 1;
        }
        self.pending.push_back(op);
    }

    /// Drops every waiting request, counting those that expected an answer
    /// the caller would have seen as an event.
    pub(super) fn drop_pending(&mut self) {
        let dropped = self
            .pending
            .drain(..)
            .filter(|op| !matches!(op.kind, OpKind::Sync))
            .count();
        self.counters.unanswered += dropped as u64;
    }
}

/// `text` with password literals redacted; most statements have none of
/// the keywords, and are passed through without a copy.
fn redact(text: String) -> String {
    let bytes = text.as_bytes();
    let suspicious = bytes.iter().enumerate().any(|(i, &b)| {
        let word: &[u8] = match b {
            b'p' | b'P' => b"password",
            b'i' | b'I' => b"identified",
            _ => return false,
        };
        bytes
            .get(i..i + word.len())
            .is_some_and(|w| w.eq_ignore_ascii_case(word))
    });
    if suspicious { redact_sql(&text) } else { text }
}
