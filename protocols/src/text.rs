//! Small text helpers shared by the parsers: lossy, length-capped strings and
//! a JSON string escaper (the crate has no serde).

use std::fmt::Write;

/// Lossy UTF-8 of `bytes`, at most `max` bytes of output (cut on a char
/// boundary).
pub(crate) fn lossy_capped(bytes: &[u8], max: usize) -> String {
    let mut s = String::from_utf8_lossy(bytes.get(..max).unwrap_or(bytes)).into_owned();
    truncate_on_char(&mut s, max);
    s
}

/// Truncates `s` to at most `max` bytes on a char boundary.
pub(crate) fn truncate_on_char(s: &mut String, max: usize) {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
}

/// Appends `s` as a JSON string literal (with quotes). Writing into a
/// `String` or an Arrow string builder cannot fail, so errors are ignored.
pub(crate) fn push_json_str(out: &mut impl Write, s: &str) {
    let _ = out.write_char('"');
    for c in s.chars() {
        let _ = match c {
            '"' => out.write_str("\\\""),
            '\\' => out.write_str("\\\\"),
            '\n' => out.write_str("\\n"),
            '\r' => out.write_str("\\r"),
            '\t' => out.write_str("\\t"),
            c if u32::from(c) < 0x20 || c == '\u{7f}' => write!(out, "\\u{:04x}", u32::from(c)),
            c => out.write_char(c),
        };
    }
    let _ = out.write_char('"');
}

/// Lowercase hex of `bytes`, at most `max_bytes` of them, with "..." when cut.
pub(crate) fn hex_capped(bytes: &[u8], max_bytes: usize) -> String {
    let mut out = String::with_capacity(bytes.len().min(max_bytes) * 2 + 3);
    for b in bytes.iter().take(max_bytes) {
        let _ = write!(out, "{b:02x}");
    }
    if bytes.len() > max_bytes {
        out.push_str("...");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helpers() {
        let mut s = String::new();
        push_json_str(&mut s, "a\"b\\c\n\u{1}é");
        assert_eq!(s, r#""a\"b\\c\n\u0001é""#);
        assert_eq!(lossy_capped("héllo".as_bytes(), 2), "h");
        assert_eq!(lossy_capped(b"ab\xffc", 10), "ab\u{fffd}c");
        assert_eq!(hex_capped(&[1, 0xab, 3], 2), "01ab...");
    }
}
