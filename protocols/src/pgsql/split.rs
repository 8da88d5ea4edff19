//! Splitting a simple query into its statements the way the server's lexer
//! sees them: `;` separates statements except inside string literals
//! ('..', E'..' with backslash escapes), quoted identifiers ("..."), dollar
//! quotes ($tag$..$tag$) and comments (-- and nested /* */).
//!
//! Not handled: `BEGIN ATOMIC ... END` bodies of SQL-standard functions
//! (their inner `;` split the statement; the session then pairs fewer
//! completions than statements, which is counted, not mispaired, because
//! the server's ReadyForQuery ends the query).

use std::ops::Range;

/// The statements of `text`, trimmed; statements of only whitespace and
/// comments are left out (the server skips them too).
pub fn split_statements(text: &str) -> Vec<&str> {
    statement_ranges(text)
        .into_iter()
        .filter_map(|r| text.get(r))
        .collect()
}

/// [`split_statements`] as byte ranges of `text` (on char boundaries).
pub(crate) fn statement_ranges(text: &str) -> Vec<Range<usize>> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut start = 0;
    let mut has_token = false;
    let mut i = 0;
    let push = |from: usize, to: usize, has_token: bool, out: &mut Vec<Range<usize>>| {
        if !has_token {
            return;
        }
        let Some(piece) = text.get(from..to) else {
            return;
        };
        let lead = piece.len() - piece.trim_start().len();
        let trimmed = piece.trim().len();
        out.push(from + lead..from + lead + trimmed);
    };
    while let Some(&b) = bytes.get(i) {
        match b {
            b';' => {
                push(start, i, has_token, &mut out);
                start = i + 1;
                has_token = false;
                i += 1;
            }
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                i = bytes
                    .get(i..)
                    .and_then(|r| r.iter().position(|&c| c == b'\n'))
                    .map_or(bytes.len(), |p| i + p + 1);
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => i = block_comment_end(bytes, i),
            b'\'' => {
                has_token = true;
                let escapes = i > 0
                    && matches!(bytes.get(i - 1), Some(b'e' | b'E'))
                    && !bytes
                        .get(i.wrapping_sub(2))
                        .is_some_and(|&c| is_ident_char(c));
                i = quoted_end(bytes, i, b'\'', escapes);
            }
            b'"' => {
                has_token = true;
                i = quoted_end(bytes, i, b'"', false);
            }
            b'$' if !(i > 0 && bytes.get(i - 1).is_some_and(|&c| is_ident_char(c))) => {
                has_token = true;
                i = match dollar_tag(bytes, i) {
                    Some(tag) => dollar_end(bytes, i + tag.len(), tag),
                    None => i + 1,
                };
            }
            b if b.is_ascii_whitespace() => i += 1,
            _ => {
                has_token = true;
                i += 1;
            }
        }
    }
    push(start, bytes.len(), has_token, &mut out);
    out
}

fn is_ident_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80
}

/// The position after the `*/` closing the comment opened at `i` (comments
/// nest), or the end.
fn block_comment_end(bytes: &[u8], mut i: usize) -> usize {
    let mut depth = 0usize;
    while i < bytes.len() {
        match (bytes.get(i), bytes.get(i + 1)) {
            (Some(b'/'), Some(b'*')) => {
                depth += 1;
                i += 2;
            }
            (Some(b'*'), Some(b'/')) => {
                depth -= 1;
                i += 2;
                if depth == 0 {
                    return i;
                }
            }
            _ => i += 1,
        }
    }
    bytes.len()
}

/// The position after the quote closing the one at `i` (a doubled quote is
/// part of the text; with `escapes` a backslash escapes the next byte), or
/// the end.
fn quoted_end(bytes: &[u8], i: usize, quote: u8, escapes: bool) -> usize {
    let mut j = i + 1;
    while let Some(&b) = bytes.get(j) {
        if escapes && b == b'\\' {
            j += 2;
        } else if b == quote {
            if bytes.get(j + 1) == Some(&quote) {
                j += 2;
            } else {
                return j + 1;
            }
        } else {
            j += 1;
        }
    }
    bytes.len()
}

/// The dollar-quote opening tag at `i` (`$$` or `$name$`), if any.
fn dollar_tag(bytes: &[u8], i: usize) -> Option<&[u8]> {
    let rest = bytes.get(i + 1..)?;
    let first = *rest.first()?;
    if first == b'$' {
        return bytes.get(i..i + 2);
    }
    if !(first.is_ascii_alphabetic() || first == b'_' || first >= 0x80) {
        return None;
    }
    let len = rest
        .iter()
        .position(|&c| !(c.is_ascii_alphanumeric() || c == b'_' || c >= 0x80))?;
    (rest.get(len) == Some(&b'$')).then(|| bytes.get(i..i + len + 2))?
}

/// The position after the closing `tag`, searching from `from`, or the end.
fn dollar_end(bytes: &[u8], from: usize, tag: &[u8]) -> usize {
    let rest = bytes.get(from..).unwrap_or_default();
    rest.windows(tag.len())
        .position(|w| w == tag)
        .map_or(bytes.len(), |p| from + p + tag.len())
}

#[cfg(test)]
mod tests {
    use super::split_statements;

    #[test]
    fn splits_on_semicolons_outside_quotes_and_comments() {
        let cases: &[(&str, &[&str])] = &[
            ("SELECT 1", &["SELECT 1"]),
            ("SELECT 1; SELECT 2;", &["SELECT 1", "SELECT 2"]),
            (" ;; SELECT 1 ;\n ", &["SELECT 1"]),
            ("", &[]),
            ("-- only a comment", &[]),
            ("/* a; b */ ;", &[]),
            (
                "SELECT 'a;b', \"c;d\"; SELECT 2",
                &["SELECT 'a;b', \"c;d\"", "SELECT 2"],
            ),
            ("SELECT 'it''s; ok'; X", &["SELECT 'it''s; ok'", "X"]),
            ("SELECT E'\\'; still'; Y", &["SELECT E'\\'; still'", "Y"]),
            // Without E, a backslash is an ordinary character.
            ("SELECT '\\'; Y", &["SELECT '\\'", "Y"]),
            (
                "DO $$ BEGIN PERFORM 1; END $$; SELECT 3",
                &["DO $$ BEGIN PERFORM 1; END $$", "SELECT 3"],
            ),
            (
                "SELECT $fn$ ; $x$ ; $fn$; Z",
                &["SELECT $fn$ ; $x$ ; $fn$", "Z"],
            ),
            (
                "SELECT $1; SELECT a$b; Z",
                &["SELECT $1", "SELECT a$b", "Z"],
            ),
            (
                "SELECT 1 -- x; y\n; SELECT /* /* ; */ ; */ 2",
                &["SELECT 1 -- x; y", "SELECT /* /* ; */ ; */ 2"],
            ),
            ("SELECT 'unterminated; x", &["SELECT 'unterminated; x"]),
        ];
        for (text, want) in cases {
            assert_eq!(split_statements(text), *want, "{text:?}");
        }
    }
}
