//! Server responses to the command in flight: OK, ERR, result sets
//! (column definitions, rows, several results), prepare and field-list
//! answers.

use std::fmt::Write;

use super::super::MysqlPacket;
use super::super::consts::*;
use super::{MysqlExchange, MysqlPairing, MysqlStatus};
use crate::cursor::Cursor;

/// What the next server packet of the command in flight is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Expect {
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
pub(super) struct InFlight {
    pub(super) cmd: u8,
    pub(super) body: String,
    pub(super) ts: u64,
    pub(super) expect: Expect,
    /// Columns of the first result set.
    pub(super) columns: u64,
    pub(super) rows: u64,
    pub(super) result_sets: u32,
    pub(super) affected: Option<u64>,
    pub(super) ok_text: String,
    pub(super) prepared: Option<(u32, u16, u16)>,
}

impl MysqlPairing {
    pub(super) fn response_packet(&mut self, pkt: &MysqlPacket, ts: u64) -> Option<MysqlExchange> {
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

    pub(super) fn finish_prepare(&mut self, f: InFlight, ts: u64) -> MysqlExchange {
        let text = match f.prepared {
            Some((id, params, columns)) => {
                format!("stmt_id={id} params={params} columns={columns}")
            }
            None => String::new(),
        };
        self.finish(f, MysqlStatus::Ok, text, ts)
    }

    /// The last part of a response: result sets or OK.
    pub(super) fn finish_result(&mut self, f: InFlight, ts: u64) -> MysqlExchange {
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

    pub(super) fn ok_packet(&self, pkt: &MysqlPacket) -> Ok {
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

pub(super) struct Ok {
    pub(super) affected: u64,
    pub(super) status: u16,
    pub(super) text: String,
}

/// Status flags of an EOF packet (5 bytes) or of an OK packet with the 0xfe
/// header.
pub(super) fn terminator_status(pkt: &MysqlPacket) -> u16 {
    let mut c = Cursor::at(&pkt.payload, 1);
    if pkt.len < 7 {
        let _ = c.skip(2);
    } else {
        let _ = (c.lenenc(), c.lenenc());
    }
    c.u16_le().unwrap_or(0)
}
