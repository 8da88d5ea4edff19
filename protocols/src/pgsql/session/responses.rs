//! Responses from the server, paired with the request at the front.

use std::fmt::Write;

use super::super::PgMessage;
use super::super::message::{self, short_text, tag_rows};
use super::{Op, OpKind, PgCommand, PgEvent, PgSession};
use crate::cursor::Cursor;

impl PgSession {
    pub(super) fn backend_typed(&mut self, tag: u8, msg: &PgMessage, ts: u64) -> Option<PgEvent> {
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
    pub(super) fn complete(&mut self, fits: impl Fn(&OpKind) -> bool) -> Option<Op> {
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
    pub(super) fn statement_done(&mut self, tag: u8, tag_text: String, ts: u64) -> Option<PgEvent> {
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
                        if query.cut && query.next + 1 == query.statements.len() {
                            text.push_str("...");
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

    pub(super) fn error(&mut self, msg: &PgMessage, ts: u64) -> Option<PgEvent> {
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
    pub(super) fn ready(&mut self) {
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
}
