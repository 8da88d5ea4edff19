//! Startup-phase messages, the one-byte encryption answers and
//! authentication up to the first ReadyForQuery.

use std::fmt::Write;

use super::super::message::{self, short_text};
use super::super::{
    CANCEL_REQUEST_CODE, GSSENC_REQUEST_CODE, PROTOCOL_3_0, PgMessage, SSL_REQUEST_CODE,
};
use super::{Encryption, Login, PgCommand, PgEvent, PgSession, Phase};
use crate::cursor::Cursor;

impl PgSession {
    pub(super) fn untyped(&mut self, msg: &PgMessage, ts: u64) -> Option<PgEvent> {
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

    pub(super) fn encrypted(&mut self, encryption: Encryption, ts: u64) -> Option<PgEvent> {
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

    pub(super) fn encryption_event(
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
    pub(super) fn startup_reply(&self, tag: u8) -> bool {
        matches!(tag, b'R' | b'S' | b'K' | b'N' | b'v' | b'E' | b'Z')
            && (self.phase == Phase::Auth || tag == b'R')
    }

    pub(super) fn auth(&mut self, tag: u8, msg: &PgMessage, ts: u64) -> Option<PgEvent> {
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
}
