//! Commands from request values (with secrets redacted) and the compact
//! rendering of replies.

use std::fmt::Write;

use super::{BulkString, RespValue};
use crate::REDACTED;
use crate::text::{lossy_capped, push_json_str, truncate_on_char};

/// Commands whose first argument is a subcommand, reported together
/// ("CLIENT SETNAME", "CONFIG GET", ...).
const CONTAINERS: &[&str] = &[
    "ACL", "CLIENT", "CLUSTER", "COMMAND", "CONFIG", "FUNCTION", "LATENCY", "MEMORY", "MODULE",
    "OBJECT", "PUBSUB", "SCRIPT", "SENTINEL", "SLOWLOG", "XGROUP", "XINFO",
];

/// Configuration parameters whose values are secrets (CONFIG SET,
/// SENTINEL SET / SENTINEL CONFIG SET, and CONFIG GET replies).
const SECRET_PARAMETERS: &[&str] = &[
    "requirepass",
    "masterauth",
    "auth-pass",
    "sentinel-pass",
    "tls-key-file-pass",
    "tls-client-key-file-pass",
];

/// A request: the command name and its arguments as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisCommand {
    /// Upper-case name; container commands with their subcommand
    /// ("CLIENT SETNAME", "CONFIG GET", "XINFO STREAM").
    pub cmd: String,
    /// Arguments after the (sub)command, lossy UTF-8, each cut to the
    /// decoder's `max_kept_bytes` (then ending in "..."); secrets are
    /// `<redacted>`.
    pub args: Vec<String>,
    /// Arguments on the wire beyond those in `args` (dropped by the
    /// decoder's `max_elements`).
    pub omitted_args: u64,
}

impl RedisCommand {
    /// The command in a request value: an array whose elements are strings
    /// or integers, the first a string. `None` for anything else.
    pub fn from_value(value: &RespValue) -> Option<Self> {
        let RespValue::Array(agg) = value else {
            return None;
        };
        let mut value = value.clone();
        redact_request(&mut value);
        let RespValue::Array(redacted) = &value else {
            return None;
        };
        let items = &redacted.items;
        let name = items.first()?.as_bytes()?;
        if name.is_empty() || name.len() > 64 {
            return None;
        }
        let mut cmd = String::from_utf8_lossy(name).to_ascii_uppercase();
        let mut skip = 1;
        if CONTAINERS.contains(&cmd.as_str())
            && let Some(sub) = items.get(1).and_then(RespValue::as_bytes)
            && is_word(sub)
        {
            cmd.push(' ');
            cmd.push_str(&String::from_utf8_lossy(sub).to_ascii_uppercase());
            skip = 2;
        }
        let args = items
            .iter()
            .skip(skip)
            .map(arg_text)
            .collect::<Option<Vec<_>>>()?;
        Some(Self {
            cmd,
            args,
            omitted_args: agg.len.saturating_sub(agg.items.len() as u64),
        })
    }

    /// The arguments as a JSON array of strings (for the `req_args` column),
    /// with a final `"... N more"` element when some were omitted.
    pub fn args_json(&self) -> String {
        let mut out = String::new();
        write_args_json(&self.args, self.omitted_args, &mut out);
        out
    }
}

/// A command's arguments as a JSON array of strings; `omitted` arguments
/// beyond those kept end it as `"... N more"`.
pub fn write_args_json(args: &[String], omitted: u64, out: &mut impl Write) {
    let _ = out.write_char('[');
    for (i, arg) in args.iter().enumerate() {
        if i > 0 {
            let _ = out.write_char(',');
        }
        push_json_str(out, arg);
    }
    if omitted > 0 {
        if !args.is_empty() {
            let _ = out.write_char(',');
        }
        push_json_str(out, &format!("... {omitted} more"));
    }
    let _ = out.write_char(']');
}

fn is_word(b: &[u8]) -> bool {
    !b.is_empty()
        && b.len() <= 32
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'|'))
}

fn arg_text(value: &RespValue) -> Option<String> {
    Some(match value {
        RespValue::BulkString(b) => bulk_text(b),
        RespValue::SimpleString(s) => s.clone(),
        RespValue::Integer(i) => i.to_string(),
        _ => return None,
    })
}

/// Lossy text of a bulk string; "..." marks a kept prefix of a longer one.
fn bulk_text(b: &BulkString) -> String {
    let mut s = String::from_utf8_lossy(&b.data).into_owned();
    if !b.is_whole() {
        s.push_str("...");
    }
    s
}

fn eq_word(value: Option<&RespValue>, word: &str) -> bool {
    value
        .and_then(RespValue::as_bytes)
        .is_some_and(|b| b.eq_ignore_ascii_case(word.as_bytes()))
}

fn is_secret_parameter(value: Option<&RespValue>) -> bool {
    SECRET_PARAMETERS.iter().any(|p| eq_word(value, p))
}

fn redact(value: &mut RespValue) {
    *value = RespValue::bulk(REDACTED.as_bytes());
}

/// Replaces the secrets of a request in place: AUTH passwords, HELLO ... AUTH
/// user pass, MIGRATE ... AUTH pass / AUTH2 user pass, CONFIG SET and
/// SENTINEL SET of password parameters, and password rules of ACL SETUSER.
/// Idempotent.
pub(crate) fn redact_request(value: &mut RespValue) {
    let RespValue::Array(agg) = value else {
        return;
    };
    let items = &mut agg.items;
    let Some(name) = items.first().and_then(RespValue::as_bytes) else {
        return;
    };
    let name = name.to_ascii_uppercase();
    match name.as_slice() {
        b"AUTH" => {
            // AUTH password | AUTH username password
            let first_secret = if items.len() >= 3 { 2 } else { 1 };
            items.iter_mut().skip(first_secret).for_each(redact);
        }
        b"HELLO" => {
            // HELLO [protover [AUTH username password] [SETNAME name]]
            let mut i = 1;
            while i < items.len() {
                if eq_word(items.get(i), "AUTH") {
                    if let Some(v) = items.get_mut(i + 2) {
                        redact(v);
                    }
                    i += 3;
                } else {
                    i += 1;
                }
            }
        }
        b"MIGRATE" => {
            // ... [AUTH password | AUTH2 username password] [KEYS key ...]
            let mut i = 1;
            while i < items.len() {
                if eq_word(items.get(i), "AUTH") {
                    if let Some(v) = items.get_mut(i + 1) {
                        redact(v);
                    }
                    i += 2;
                } else if eq_word(items.get(i), "AUTH2") {
                    if let Some(v) = items.get_mut(i + 2) {
                        redact(v);
                    }
                    i += 3;
                } else {
                    i += 1;
                }
            }
        }
        b"CONFIG" | b"SENTINEL" => {
            // CONFIG SET p v [p v ...], SENTINEL SET master p v [...],
            // SENTINEL CONFIG SET p v: redact the value after a secret name.
            for i in 1..items.len() {
                if is_secret_parameter(items.get(i))
                    && let Some(v) = items.get_mut(i + 1)
                {
                    redact(v);
                }
            }
        }
        b"ACL" if eq_word(items.get(1), "SETUSER") => {
            // Rules ">pass", "<pass" (clear text) and "#hash", "!hash".
            for item in items.iter_mut().skip(3) {
                if item
                    .as_bytes()
                    .and_then(<[u8]>::first)
                    .is_some_and(|c| matches!(c, b'>' | b'<' | b'#' | b'!'))
                {
                    redact(item);
                }
            }
        }
        _ => {}
    }
}

/// Replaces secret values in the reply to `CONFIG GET` (pairs of name and
/// value, as an array or a RESP3 map) and password hashes ("#<64 hex>") in
/// replies to `ACL LIST` / `ACL GETUSER`.
pub(crate) fn redact_reply(cmd: &str, reply: &mut RespValue) {
    match cmd {
        "CONFIG GET" => {
            if let RespValue::Array(agg) | RespValue::Map(agg) = reply {
                let items = &mut agg.items;
                for i in (0..items.len()).step_by(2) {
                    if is_secret_parameter(items.get(i))
                        && let Some(v) = items.get_mut(i + 1)
                    {
                        redact(v);
                    }
                }
            }
        }
        "ACL LIST" | "ACL GETUSER" => redact_hashes(reply, 0),
        _ => {}
    }
}

fn redact_hashes(value: &mut RespValue, depth: usize) {
    match value {
        RespValue::BulkString(b) if b.data.contains(&b'#') => {
            let text = String::from_utf8_lossy(&b.data);
            let redacted: Vec<String> = text
                .split(' ')
                .map(|word| match word.strip_prefix('#') {
                    Some(hash)
                        if hash.len() >= 32 && hash.bytes().all(|c| c.is_ascii_hexdigit()) =>
                    {
                        format!("#{REDACTED}")
                    }
                    _ => word.to_owned(),
                })
                .collect();
            *b = BulkString::new(redacted.join(" ").as_bytes());
        }
        RespValue::Array(agg) | RespValue::Map(agg) | RespValue::Set(agg) if depth < 4 => {
            for item in &mut agg.items {
                redact_hashes(item, depth + 1);
            }
        }
        _ => {}
    }
}

/// Compact text of a reply for the `resp` column, at most `max_len` bytes
/// (then ending in "..."). A top-level string is its text; aggregates look
/// like JSON (`["a",1,null]`, `{"k":"v"}`), with `...(+N)` where elements
/// were dropped by a cap; a null reply is `<NULL>`.
pub fn render(value: &RespValue, max_len: usize) -> String {
    let mut out = String::new();
    match value {
        RespValue::SimpleString(s) | RespValue::Error(s) => out.push_str(s),
        RespValue::BulkString(b) | RespValue::BlobError(b) => out.push_str(&bulk_text(b)),
        RespValue::Verbatim(b) => out.push_str(&verbatim_text(b)),
        RespValue::Null => out.push_str("<NULL>"),
        _ => write_nested(value, &mut out, max_len),
    }
    if out.len() > max_len {
        truncate_on_char(&mut out, max_len.saturating_sub(3));
        out.push_str("...");
    }
    out
}

fn verbatim_text(b: &BulkString) -> String {
    let text = BulkString {
        data: b.data.get(4..).unwrap_or_default().to_vec(),
        len: b.len.saturating_sub(4),
        incomplete: b.incomplete,
    };
    bulk_text(&text)
}

/// JSON-like rendering; stops early once `out` is longer than `budget`.
fn write_nested(value: &RespValue, out: &mut String, budget: usize) {
    if out.len() > budget {
        return;
    }
    match value {
        RespValue::SimpleString(s) | RespValue::Error(s) => push_json_str(out, s),
        RespValue::BulkString(b) | RespValue::BlobError(b) => {
            push_json_str(out, &lossy_capped(&b.data, budget));
            if !b.is_whole() {
                out.truncate(out.len() - 1);
                out.push_str("...\"");
            }
        }
        RespValue::Verbatim(b) => push_json_str(out, &verbatim_text(b)),
        RespValue::Integer(i) => {
            let _ = write!(out, "{i}");
        }
        RespValue::Double(s) | RespValue::BigNumber(s) => out.push_str(s),
        RespValue::Boolean(b) => {
            let _ = write!(out, "{b}");
        }
        RespValue::Null => out.push_str("null"),
        RespValue::Array(agg) | RespValue::Set(agg) | RespValue::Push(agg) => {
            out.push('[');
            for (i, item) in agg.items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_nested(item, out, budget);
                if out.len() > budget {
                    return;
                }
            }
            omitted(out, agg.len, agg.items.len());
            out.push(']');
        }
        RespValue::Map(agg) => {
            out.push('{');
            for (i, item) in agg.items.iter().enumerate() {
                if i > 0 {
                    out.push(if i % 2 == 1 { ':' } else { ',' });
                }
                write_nested(item, out, budget);
                if out.len() > budget {
                    return;
                }
            }
            omitted(out, agg.len, agg.items.len());
            out.push('}');
        }
    }
}

fn omitted(out: &mut String, len: u64, kept: usize) {
    let more = len.saturating_sub(kept as u64);
    if more > 0 {
        if kept > 0 {
            out.push(',');
        }
        let _ = write!(out, "...(+{more})");
    }
}
