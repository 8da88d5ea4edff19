//! Values of the binary protocol (COM_STMT_EXECUTE parameters), rendered as
//! SQL-ish literals.

use std::fmt::Write;

use crate::cursor::Cursor;
use crate::text::hex_capped;

pub const TYPE_DECIMAL: u8 = 0x00;
pub const TYPE_TINY: u8 = 0x01;
pub const TYPE_SHORT: u8 = 0x02;
pub const TYPE_LONG: u8 = 0x03;
pub const TYPE_FLOAT: u8 = 0x04;
pub const TYPE_DOUBLE: u8 = 0x05;
pub const TYPE_NULL: u8 = 0x06;
pub const TYPE_TIMESTAMP: u8 = 0x07;
pub const TYPE_LONGLONG: u8 = 0x08;
pub const TYPE_INT24: u8 = 0x09;
pub const TYPE_DATE: u8 = 0x0a;
pub const TYPE_TIME: u8 = 0x0b;
pub const TYPE_DATETIME: u8 = 0x0c;
pub const TYPE_YEAR: u8 = 0x0d;
pub const TYPE_NEWDECIMAL: u8 = 0xf6;

/// Longest string literal rendered (longer ends in "...").
const MAX_LITERAL: usize = 64;

/// A parameter type: the type byte and the unsigned flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParamType {
    pub code: u8,
    pub unsigned: bool,
}

/// Reads and renders one non-NULL value of `ty`; `None` when the input ends
/// or the type is unknown.
pub fn read_value(c: &mut Cursor<'_>, ty: ParamType) -> Option<String> {
    let u = ty.unsigned;
    Some(match ty.code {
        TYPE_NULL => "NULL".to_owned(),
        TYPE_TINY => {
            let v = c.u8()?;
            if u {
                v.to_string()
            } else {
                (v as i8).to_string()
            }
        }
        TYPE_SHORT | TYPE_YEAR => {
            let v = c.u16_le()?;
            if u {
                v.to_string()
            } else {
                (v as i16).to_string()
            }
        }
        TYPE_LONG | TYPE_INT24 => {
            let v = c.u32_le()?;
            if u {
                v.to_string()
            } else {
                (v as i32).to_string()
            }
        }
        TYPE_LONGLONG => {
            let v = c.u64_le()?;
            if u {
                v.to_string()
            } else {
                (v as i64).to_string()
            }
        }
        TYPE_FLOAT => f32::from_le_bytes(c.array()?).to_string(),
        TYPE_DOUBLE => f64::from_le_bytes(c.array()?).to_string(),
        TYPE_DATE | TYPE_DATETIME | TYPE_TIMESTAMP => {
            let len = usize::from(c.u8()?);
            let mut d = Cursor::new(c.take(len)?);
            let (year, month, day) = match len {
                0 => (0, 0, 0),
                _ => (d.u16_le()?, d.u8()?, d.u8()?),
            };
            let mut out = format!("'{year:04}-{month:02}-{day:02}");
            if ty.code != TYPE_DATE || len > 4 {
                let (h, m, s) = if len >= 7 {
                    (d.u8()?, d.u8()?, d.u8()?)
                } else {
                    (0, 0, 0)
                };
                let _ = write!(out, " {h:02}:{m:02}:{s:02}");
                if len >= 11 {
                    let _ = write!(out, ".{:06}", d.u32_le()?);
                }
            }
            out.push('\'');
            out
        }
        TYPE_TIME => {
            let len = usize::from(c.u8()?);
            let mut d = Cursor::new(c.take(len)?);
            if len == 0 {
                return Some("'00:00:00'".to_owned());
            }
            let negative = d.u8()? != 0;
            let days = d.u32_le()?;
            let (h, m, s) = (d.u8()?, d.u8()?, d.u8()?);
            let hours = u64::from(days) * 24 + u64::from(h);
            let sign = if negative { "-" } else { "" };
            let mut out = format!("'{sign}{hours:02}:{m:02}:{s:02}");
            if len >= 12 {
                let _ = write!(out, ".{:06}", d.u32_le()?);
            }
            out.push('\'');
            out
        }
        TYPE_DECIMAL | TYPE_NEWDECIMAL => {
            let text = c.lenenc_bytes()?;
            if text
                .iter()
                .all(|b| b.is_ascii_digit() || matches!(b, b'-' | b'+' | b'.' | b'e' | b'E'))
            {
                String::from_utf8_lossy(text).into_owned()
            } else {
                literal(text)
            }
        }
        // VARCHAR, BIT, JSON, ENUM, SET, blobs, VAR_STRING, STRING, GEOMETRY
        0x0f | 0x10 | 0xf5 | 0xf7..=0xff => literal(c.lenenc_bytes()?),
        _ => return None,
    })
}

/// A quoted string literal for printable UTF-8, else `0x` hex.
fn literal(bytes: &[u8]) -> String {
    let cut = bytes.get(..MAX_LITERAL).unwrap_or(bytes);
    let more = if bytes.len() > MAX_LITERAL { "..." } else { "" };
    match std::str::from_utf8(bytes) {
        Ok(text)
            if !text
                .chars()
                .any(|ch| ch.is_control() && !matches!(ch, '\n' | '\t' | '\r')) =>
        {
            let mut out = String::from("'");
            let text = String::from_utf8_lossy(cut);
            for ch in text.chars() {
                match ch {
                    '\'' => out.push_str("\\'"),
                    '\\' => out.push_str("\\\\"),
                    '\n' => out.push_str("\\n"),
                    '\r' => out.push_str("\\r"),
                    '\t' => out.push_str("\\t"),
                    ch => out.push(ch),
                }
            }
            out.push_str(more);
            out.push('\'');
            out
        }
        _ => format!("0x{}", hex_capped(bytes, MAX_LITERAL / 2)),
    }
}
