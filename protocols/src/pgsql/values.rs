//! Rendering of bound parameter values (Bind) as SQL-like literals: numbers
//! and booleans bare, text quoted, binary values of common types decoded
//! (bool, int2/4/8, oid, float4/8, numeric, text types, bytea, uuid, date,
//! time, timestamp(tz), json(b)); anything else as hex.

use std::fmt::Write;

use crate::cursor::Cursor;
use crate::text::{hex_capped, truncate_on_char};

/// Type OIDs (pg_type.oid) the renderer knows.
pub mod oid {
    pub const BOOL: u32 = 16;
    pub const BYTEA: u32 = 17;
    pub const CHAR: u32 = 18;
    pub const NAME: u32 = 19;
    pub const INT8: u32 = 20;
    pub const INT2: u32 = 21;
    pub const INT4: u32 = 23;
    pub const TEXT: u32 = 25;
    pub const OID: u32 = 26;
    pub const JSON: u32 = 114;
    pub const XML: u32 = 142;
    pub const FLOAT4: u32 = 700;
    pub const FLOAT8: u32 = 701;
    pub const UNKNOWN: u32 = 705;
    pub const BPCHAR: u32 = 1042;
    pub const VARCHAR: u32 = 1043;
    pub const DATE: u32 = 1082;
    pub const TIME: u32 = 1083;
    pub const TIMESTAMP: u32 = 1114;
    pub const TIMESTAMPTZ: u32 = 1184;
    pub const NUMERIC: u32 = 1700;
    pub const UUID: u32 = 2950;
    pub const JSONB: u32 = 3802;
}

/// Longest rendering of one text value (in bytes, before quoting).
const MAX_TEXT: usize = 256;
/// Bytes of a binary value shown as hex.
const MAX_HEX: usize = 64;
/// Days from 0000-03-01 to 1970-01-01 (civil-from-days), and from
/// 1970-01-01 to 2000-01-01 (PostgreSQL's epoch).
const DAYS_TO_UNIX_EPOCH: i64 = 719_468;
const PG_EPOCH_DAYS: i64 = 10_957;
const USECS_PER_DAY: i64 = 86_400_000_000;

/// `value` of type `type_oid` (0 when the client left it to the server) in
/// text or binary format, rendered as a literal: `42`, `true`, `'text'`
/// (quotes doubled), `'\x0102'` (bytea), `'2024-05-01 12:00:00'`, `NULL`.
pub fn render_value(type_oid: u32, binary: bool, value: Option<&[u8]>) -> String {
    let mut out = String::new();
    push_value(&mut out, type_oid, binary, value);
    out
}

/// [`render_value`] appended to `out`.
pub(crate) fn push_value(out: &mut String, type_oid: u32, binary: bool, value: Option<&[u8]>) {
    let Some(value) = value else {
        out.push_str("NULL");
        return;
    };
    if binary {
        if !push_binary(out, type_oid, value) {
            push_hex(out, value);
        }
        return;
    }
    match type_oid {
        oid::INT2 | oid::INT4 | oid::INT8 | oid::OID | oid::FLOAT4 | oid::FLOAT8 | oid::NUMERIC
            if looks_numeric(value) =>
        {
            out.push_str(&String::from_utf8_lossy(value));
        }
        oid::BOOL if value == b"t" || value == b"true" => out.push_str("true"),
        oid::BOOL if value == b"f" || value == b"false" => out.push_str("false"),
        _ => push_quoted(out, value),
    }
}

fn looks_numeric(value: &[u8]) -> bool {
    !value.is_empty()
        && value.len() <= 64
        && (value
            .iter()
            .all(|b| b.is_ascii_digit() || matches!(b, b'-' | b'+' | b'.' | b'e' | b'E'))
            || matches!(value, b"NaN" | b"Infinity" | b"-Infinity"))
}

/// A quoted literal of (lossy UTF-8) `bytes`, cut at `MAX_TEXT` bytes.
pub(crate) fn push_quoted(out: &mut String, bytes: &[u8]) {
    let mut text = String::from_utf8_lossy(bytes.get(..MAX_TEXT + 4).unwrap_or(bytes)).into_owned();
    let cut = text.len() > MAX_TEXT;
    truncate_on_char(&mut text, MAX_TEXT);
    out.push('\'');
    for c in text.chars() {
        if c == '\'' {
            out.push('\'');
        }
        out.push(c);
    }
    if cut {
        out.push_str("...");
    }
    out.push('\'');
}

fn push_hex(out: &mut String, bytes: &[u8]) {
    out.push_str("'\\x");
    out.push_str(&hex_capped(bytes, MAX_HEX));
    out.push('\'');
}

/// Decodes a binary value of a known type; false when the type is unknown
/// or the bytes do not fit it.
fn push_binary(out: &mut String, type_oid: u32, value: &[u8]) -> bool {
    let mut c = Cursor::new(value);
    let exact = |c: &Cursor<'_>| c.is_empty();
    match type_oid {
        oid::BOOL => match value {
            [0] => out.push_str("false"),
            [1] => out.push_str("true"),
            _ => return false,
        },
        oid::INT2 => match c.u16_be() {
            Some(v) if exact(&c) => {
                let _ = write!(out, "{}", v as i16);
            }
            _ => return false,
        },
        oid::INT4 => match c.u32_be() {
            Some(v) if exact(&c) => {
                let _ = write!(out, "{}", v as i32);
            }
            _ => return false,
        },
        oid::OID => match c.u32_be() {
            Some(v) if exact(&c) => {
                let _ = write!(out, "{v}");
            }
            _ => return false,
        },
        oid::INT8 => match u64_be(&mut c) {
            Some(v) if exact(&c) => {
                let _ = write!(out, "{}", v as i64);
            }
            _ => return false,
        },
        oid::FLOAT4 => match c.u32_be() {
            Some(v) if exact(&c) => push_float(out, f64::from(f32::from_bits(v))),
            _ => return false,
        },
        oid::FLOAT8 => match u64_be(&mut c) {
            Some(v) if exact(&c) => push_float(out, f64::from_bits(v)),
            _ => return false,
        },
        oid::NUMERIC => return push_numeric(out, value),
        oid::TEXT
        | oid::VARCHAR
        | oid::BPCHAR
        | oid::NAME
        | oid::CHAR
        | oid::UNKNOWN
        | oid::JSON
        | oid::XML => push_quoted(out, value),
        oid::JSONB => match value.split_first() {
            Some((1, json)) => push_quoted(out, json),
            _ => return false,
        },
        oid::BYTEA => push_hex(out, value),
        oid::UUID => {
            let Ok(b) = <[u8; 16]>::try_from(value) else {
                return false;
            };
            out.push('\'');
            for (i, byte) in b.iter().enumerate() {
                if matches!(i, 4 | 6 | 8 | 10) {
                    out.push('-');
                }
                let _ = write!(out, "{byte:02x}");
            }
            out.push('\'');
        }
        oid::DATE => match c.u32_be() {
            Some(v) if exact(&c) => match v as i32 {
                i32::MAX => out.push_str("'infinity'"),
                i32::MIN => out.push_str("'-infinity'"),
                days => {
                    out.push('\'');
                    push_date(out, i64::from(days));
                    out.push('\'');
                }
            },
            _ => return false,
        },
        oid::TIME => match u64_be(&mut c) {
            Some(v) if exact(&c) && (0..=USECS_PER_DAY).contains(&(v as i64)) => {
                out.push('\'');
                push_time(out, v as i64);
                out.push('\'');
            }
            _ => return false,
        },
        oid::TIMESTAMP | oid::TIMESTAMPTZ => match u64_be(&mut c) {
            Some(v) if exact(&c) => match v as i64 {
                i64::MAX => out.push_str("'infinity'"),
                i64::MIN => out.push_str("'-infinity'"),
                usecs => {
                    let days = usecs.div_euclid(USECS_PER_DAY);
                    out.push('\'');
                    push_date(out, days);
                    out.push(' ');
                    push_time(out, usecs.rem_euclid(USECS_PER_DAY));
                    if type_oid == oid::TIMESTAMPTZ {
                        out.push_str("+00");
                    }
                    out.push('\'');
                }
            },
            _ => return false,
        },
        _ => return false,
    }
    true
}

fn u64_be(c: &mut Cursor<'_>) -> Option<u64> {
    c.array().map(u64::from_be_bytes)
}

fn push_float(out: &mut String, v: f64) {
    if v.is_nan() {
        out.push_str("'NaN'");
    } else if v.is_infinite() {
        out.push_str(if v > 0.0 { "'Infinity'" } else { "'-Infinity'" });
    } else {
        let _ = write!(out, "{v}");
    }
}

/// `days` since 2000-01-01 as YYYY-MM-DD (proleptic Gregorian; years
/// before 1 as PostgreSQL writes them, "0044-03-15 BC").
fn push_date(out: &mut String, days: i64) {
    let z = days + PG_EPOCH_DAYS + DAYS_TO_UNIX_EPOCH;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    if year > 0 {
        let _ = write!(out, "{year:04}-{month:02}-{day:02}");
    } else {
        let _ = write!(out, "{:04}-{month:02}-{day:02} BC", 1 - year);
    }
}

/// Microseconds since midnight as HH:MM:SS[.ffffff] (trailing zeros of the
/// fraction dropped, as PostgreSQL writes it).
fn push_time(out: &mut String, usecs: i64) {
    let secs = usecs / 1_000_000;
    let frac = usecs % 1_000_000;
    let _ = write!(
        out,
        "{:02}:{:02}:{:02}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    );
    if frac != 0 {
        let mut digits = format!("{frac:06}");
        while digits.ends_with('0') {
            digits.pop();
        }
        out.push('.');
        out.push_str(&digits);
    }
}

/// NUMERIC's binary form: digit count, weight (of the first base-10000
/// digit), sign, display scale, then the digits.
fn push_numeric(out: &mut String, value: &[u8]) -> bool {
    let mut c = Cursor::new(value);
    let (Some(ndigits), Some(weight), Some(sign), Some(dscale)) =
        (c.u16_be(), c.u16_be(), c.u16_be(), c.u16_be())
    else {
        return false;
    };
    let (ndigits, weight, dscale) = (ndigits as i16, weight as i16, dscale as i16);
    if !(0..=1000).contains(&ndigits) || !(0..=1000).contains(&dscale) {
        return false;
    }
    let mut digits = Vec::with_capacity(ndigits as usize);
    for _ in 0..ndigits {
        match c.u16_be() {
            Some(d) if d < 10_000 => digits.push(d),
            _ => return false,
        }
    }
    if !c.is_empty() {
        return false;
    }
    match sign {
        0x0000 | 0x4000 => {}
        0xc000 => {
            out.push_str("'NaN'");
            return true;
        }
        0xd000 => {
            out.push_str("'Infinity'");
            return true;
        }
        0xf000 => {
            out.push_str("'-Infinity'");
            return true;
        }
        _ => return false,
    }
    let digit = |k: i32| -> u16 {
        usize::try_from(k)
            .ok()
            .and_then(|k| digits.get(k).copied())
            .unwrap_or(0)
    };
    if sign == 0x4000 {
        out.push('-');
    }
    let weight = i32::from(weight);
    if weight < 0 {
        out.push('0');
    } else {
        for k in 0..=weight.min(1000) {
            let _ = if k == 0 {
                write!(out, "{}", digit(k))
            } else {
                write!(out, "{:04}", digit(k))
            };
        }
    }
    if dscale > 0 {
        let scale = dscale as usize;
        let mut frac = String::with_capacity(scale + 4);
        let mut k = weight + 1;
        while frac.len() < scale {
            let _ = write!(frac, "{:04}", digit(k));
            k += 1;
        }
        frac.truncate(scale);
        out.push('.');
        out.push_str(&frac);
    }
    true
}

#[cfg(test)]
mod tests {
    use super::oid::*;
    use super::render_value;

    fn bin(type_oid: u32, bytes: &[u8]) -> String {
        render_value(type_oid, true, Some(bytes))
    }

    fn numeric(ndigits: i16, weight: i16, sign: u16, dscale: i16, digits: &[u16]) -> Vec<u8> {
        let mut v = Vec::new();
        for x in [ndigits as u16, weight as u16, sign, dscale as u16] {
            v.extend_from_slice(&x.to_be_bytes());
        }
        for d in digits {
            v.extend_from_slice(&d.to_be_bytes());
        }
        v
    }

    #[test]
    fn text_format() {
        assert_eq!(render_value(0, false, None), "NULL");
        assert_eq!(render_value(INT4, false, Some(b"-42")), "-42");
        assert_eq!(render_value(INT4, false, Some(b"4x")), "'4x'");
        assert_eq!(render_value(0, false, Some(b"42")), "'42'");
        assert_eq!(render_value(TEXT, false, Some(b"it's")), "'it''s'");
        assert_eq!(render_value(BOOL, false, Some(b"t")), "true");
        assert_eq!(render_value(FLOAT8, false, Some(b"NaN")), "NaN");
        let long = "x".repeat(300);
        let got = render_value(TEXT, false, Some(long.as_bytes()));
        assert_eq!(got.len(), 256 + 5);
        assert!(got.ends_with("...'"));
    }

    #[test]
    fn binary_integers_and_floats() {
        assert_eq!(bin(BOOL, &[1]), "true");
        assert_eq!(bin(BOOL, &[0]), "false");
        assert_eq!(bin(BOOL, &[2]), "'\\x02'");
        assert_eq!(bin(INT2, &(-7i16).to_be_bytes()), "-7");
        assert_eq!(bin(INT4, &(-100_000i32).to_be_bytes()), "-100000");
        assert_eq!(bin(INT8, &i64::MIN.to_be_bytes()), "-9223372036854775808");
        assert_eq!(bin(OID, &u32::MAX.to_be_bytes()), "4294967295");
        assert_eq!(bin(INT4, &[0, 1]), "'\\x0001'");
        assert_eq!(bin(FLOAT4, &1.5f32.to_be_bytes()), "1.5");
        assert_eq!(bin(FLOAT8, &(-0.25f64).to_be_bytes()), "-0.25");
        assert_eq!(bin(FLOAT8, &f64::NAN.to_be_bytes()), "'NaN'");
        assert_eq!(bin(FLOAT8, &f64::NEG_INFINITY.to_be_bytes()), "'-Infinity'");
    }

    #[test]
    fn binary_numeric() {
        // 12345.678 = digits [1, 2345, 6780], weight 1, dscale 3.
        assert_eq!(
            bin(NUMERIC, &numeric(3, 1, 0, 3, &[1, 2345, 6780])),
            "12345.678"
        );
        // -0.0001 = digits [1], weight -1, dscale 4.
        assert_eq!(bin(NUMERIC, &numeric(1, -1, 0x4000, 4, &[1])), "-0.0001");
        // 0.00000005 = [5], weight -2, dscale 8.
        assert_eq!(bin(NUMERIC, &numeric(1, -2, 0, 8, &[5])), "0.00000005");
        // 10000000 = [1000] at weight 1 (trailing zero groups omitted).
        assert_eq!(bin(NUMERIC, &numeric(1, 1, 0, 0, &[1000])), "10000000");
        assert_eq!(bin(NUMERIC, &numeric(0, 0, 0, 2, &[])), "0.00");
        assert_eq!(bin(NUMERIC, &numeric(0, 0, 0xc000, 0, &[])), "'NaN'");
        assert_eq!(bin(NUMERIC, &numeric(0, 0, 0xd000, 0, &[])), "'Infinity'");
        // A digit over 9999 or bytes left over: hex.
        assert!(bin(NUMERIC, &numeric(1, 0, 0, 0, &[10_000])).starts_with("'\\x"));
        assert!(bin(NUMERIC, &[0, 1]).starts_with("'\\x"));
    }

    #[test]
    fn binary_text_bytes_uuid_json() {
        assert_eq!(bin(TEXT, b"caf\xc3\xa9"), "'café'");
        assert_eq!(bin(VARCHAR, b"a'b"), "'a''b'");
        assert_eq!(bin(NAME, b"pg_class"), "'pg_class'");
        assert_eq!(bin(BYTEA, &[0xde, 0xad, 0xbe, 0xef]), "'\\xdeadbeef'");
        assert_eq!(bin(BYTEA, &[7; 70]).len(), 3 + 128 + 3 + 1);
        assert_eq!(
            bin(
                UUID,
                &[
                    0x55, 0x0e, 0x84, 0x00, 0xe2, 0x9b, 0x41, 0xd4, 0xa7, 0x16, 0x44, 0x66, 0x55,
                    0x44, 0x00, 0x00
                ]
            ),
            "'550e8400-e29b-41d4-a716-446655440000'"
        );
        assert_eq!(bin(JSON, br#"{"a":1}"#), r#"'{"a":1}'"#);
        assert_eq!(bin(JSONB, b"\x01{\"a\": 1}"), r#"'{"a": 1}'"#);
        assert!(bin(JSONB, b"\x02{}").starts_with("'\\x"));
        assert_eq!(bin(0, &[1, 2]), "'\\x0102'");
        assert_eq!(bin(1007, &[0, 0, 0, 1]), "'\\x00000001'");
    }

    #[test]
    fn binary_dates_and_times() {
        assert_eq!(bin(DATE, &0i32.to_be_bytes()), "'2000-01-01'");
        assert_eq!(bin(DATE, &(-1i32).to_be_bytes()), "'1999-12-31'");
        // 2024-02-29: 8825 days after 2000-01-01.
        assert_eq!(bin(DATE, &8825i32.to_be_bytes()), "'2024-02-29'");
        // Encodings as PostgreSQL 15's numeric_send and date_send give them:
        // SELECT date_send('0044-03-15 BC') is \xfff49d7b.
        assert_eq!(bin(DATE, &(-746_117i32).to_be_bytes()), "'0044-03-15 BC'");
        assert_eq!(bin(DATE, &i32::MAX.to_be_bytes()), "'infinity'");
        let us = (8825i64 * 86_400 + 13 * 3600 + 5 * 60 + 9) * 1_000_000 + 250_000;
        assert_eq!(
            bin(TIMESTAMP, &us.to_be_bytes()),
            "'2024-02-29 13:05:09.25'"
        );
        assert_eq!(
            bin(TIMESTAMPTZ, &(-1i64).to_be_bytes()),
            "'1999-12-31 23:59:59.999999+00'"
        );
        assert_eq!(bin(TIMESTAMP, &i64::MIN.to_be_bytes()), "'-infinity'");
        assert_eq!(
            bin(TIME, &(3_600_000_000i64 + 1).to_be_bytes()),
            "'01:00:00.000001'"
        );
        assert!(bin(TIME, &(-1i64).to_be_bytes()).starts_with("'\\x"));
    }
}
