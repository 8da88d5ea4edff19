//! Client commands: their names, the request text of each (statements
//! with bound parameters decoded, secrets redacted) and the prepared
//! statement cache.

use std::fmt::Write;

use super::super::MysqlPacket;
use super::super::binary::{ParamType, read_value};
use super::super::consts::*;
use super::super::redact::redact_sql;
use super::{MysqlPairing, short_text};
use crate::REDACTED;
use crate::cursor::Cursor;

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

#[derive(Debug)]
pub(super) struct Statement {
    pub(super) sql: String,
    pub(super) num_params: u16,
    /// Parameter types sent with the last execute that bound them.
    pub(super) types: Option<Vec<ParamType>>,
    /// Insertion order, for eviction.
    pub(super) seq: u64,
}

impl MysqlPairing {
    pub(super) fn request_body(&mut self, cmd: u8, pkt: &MysqlPacket) -> String {
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

    /// COM_QUERY text after the query attributes, if any.
    pub(super) fn query_text(&self, rest: &[u8]) -> String {
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
    pub(super) fn execute_body(&mut self, p: &[u8]) -> String {
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

    pub(super) fn remember(&mut self, id: u32, sql: &str, num_params: u16) {
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
}

/// Skips the query attributes block of a COM_QUERY (CLIENT_QUERY_ATTRIBUTES):
/// parameter count, parameter set count, then the parameters.
pub(super) fn skip_query_attributes(rest: &[u8]) -> Option<&[u8]> {
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
