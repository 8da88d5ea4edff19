//! The connection's start: the server greeting, the client's handshake
//! response (credentials dropped, never stored) and the auth rounds.

use std::fmt::Write;

use super::super::MysqlPacket;
use super::super::consts::*;
use super::{MysqlExchange, MysqlPairing, MysqlStatus, Phase, command_name, short_text};
use crate::REDACTED;
use crate::cursor::Cursor;

#[derive(Debug)]
pub(super) struct Login {
    pub(super) user: String,
    pub(super) db: String,
    pub(super) plugin: String,
    pub(super) with_password: bool,
    pub(super) ts: u64,
}

impl MysqlPairing {
    pub(super) fn greeting(&mut self, pkt: &MysqlPacket) {
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
    pub(super) fn handshake_response(&mut self, pkt: &MysqlPacket, ts: u64) {
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

    pub(super) fn auth_packet(&mut self, pkt: &MysqlPacket, ts: u64) -> Option<MysqlExchange> {
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

    pub(super) fn connect_exchange(
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
}

pub(super) fn is_handshake_response(pkt: &MysqlPacket) -> bool {
    let mut c = Cursor::new(&pkt.payload);
    c.u32_le()
        .is_some_and(|caps| caps & CLIENT_PROTOCOL_41 != 0)
        && c.skip(5).is_some()
        // MariaDB clients put extended capabilities in the last 4 filler bytes.
        && c.take(19)
            .is_some_and(|filler| filler.iter().all(|&b| b == 0))
}
