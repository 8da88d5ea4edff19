//! Redaction of passwords written as literals in SQL text: `CREATE USER ..
//! IDENTIFIED BY 'pw'`, `ALTER USER .. IDENTIFIED WITH plugin BY 'pw'`,
//! `SET PASSWORD = 'pw'`, `CHANGE REPLICATION SOURCE TO SOURCE_PASSWORD =
//! 'pw'`, `PASSWORD('pw')`.

use crate::REDACTED;

/// How far after a keyword the password literal may start.
const REACH: usize = 96;

/// `text` with the string literal that follows each `PASSWORD` keyword (and
/// the `BY` of each `IDENTIFIED .. BY`) replaced by `'<redacted>'`.
pub(crate) fn redact_sql(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        // Keywords inside literals and quoted names do not count.
        if let Some(&q @ (b'\'' | b'"' | b'`')) = bytes.get(i) {
            i = closing(bytes, i, q) + 1;
            continue;
        }
        let start = match keyword_at(bytes, i) {
            // SET PASSWORD FOR 'u'@'h' = '..': the literal after the '='.
            Some(Keyword::Password(len)) => match find_word(bytes, i + len, b"FOR") {
                Some(at)
                    if bytes
                        .get(i + len..at)
                        .is_some_and(|gap| gap.iter().all(u8::is_ascii_whitespace)) =>
                {
                    find_equals(bytes, at + 3).map(|eq| eq + 1)
                }
                _ => Some(i + len),
            },
            Some(Keyword::Identified(len)) => find_word(bytes, i + len, b"BY").map(|by| by + 2),
            None => None,
        };
        let Some(from) = start else {
            i += 1;
            continue;
        };
        match literal_after(bytes, from) {
            Some((open, close)) => {
                out.push_str(text.get(copied..open).unwrap_or_default());
                let quote = char::from(bytes.get(open).copied().unwrap_or(b'\''));
                out.push(quote);
                out.push_str(REDACTED);
                out.push(quote);
                copied = close + 1;
                i = close + 1;
            }
            None => i = from.max(i + 1),
        }
    }
    out.push_str(text.get(copied..).unwrap_or_default());
    out
}

enum Keyword {
    Password(usize),
    Identified(usize),
}

/// A keyword starting at `i` on a word boundary ("PASSWORD" also as the end
/// of a word such as SOURCE_PASSWORD).
fn keyword_at(bytes: &[u8], i: usize) -> Option<Keyword> {
    let rest = bytes.get(i..)?;
    let ends_word = |len: usize| {
        bytes
            .get(i + len)
            .is_none_or(|b| !b.is_ascii_alphanumeric() && *b != b'_')
    };
    if rest.len() >= 8 && rest.get(..8)?.eq_ignore_ascii_case(b"PASSWORD") && ends_word(8) {
        return Some(Keyword::Password(8));
    }
    let starts_word = i == 0
        || bytes
            .get(i - 1)
            .is_some_and(|b| !b.is_ascii_alphanumeric() && *b != b'_');
    if starts_word
        && rest.len() >= 10
        && rest.get(..10)?.eq_ignore_ascii_case(b"IDENTIFIED")
        && ends_word(10)
    {
        return Some(Keyword::Identified(10));
    }
    None
}

/// The position of the word `word` (case-insensitive, whole word) within
/// `REACH` bytes after `from`.
fn find_word(bytes: &[u8], from: usize, word: &[u8]) -> Option<usize> {
    let end = from.saturating_add(REACH).min(bytes.len());
    (from..end).find(|&at| {
        bytes
            .get(at..at + word.len())
            .is_some_and(|w| w.eq_ignore_ascii_case(word))
            && at
                .checked_sub(1)
                .and_then(|p| bytes.get(p))
                .is_some_and(|b| !b.is_ascii_alphanumeric())
            && bytes
                .get(at + word.len())
                .is_none_or(|b| !b.is_ascii_alphanumeric())
    })
}

/// The first '=' within `REACH` bytes after `from`, outside quotes.
fn find_equals(bytes: &[u8], from: usize) -> Option<usize> {
    let end = from.saturating_add(REACH).min(bytes.len());
    let mut quote = None;
    (from..end).find(|&at| {
        let b = bytes.get(at).copied().unwrap_or(0);
        match quote {
            Some(q) if b == q => quote = None,
            Some(_) => {}
            None if matches!(b, b'\'' | b'"' | b'`') => quote = Some(b),
            None => return b == b'=',
        }
        false
    })
}

/// The first quoted literal ('..' or "..") within `REACH` bytes after
/// `from`, skipping only spaces, '=', '(' and the word PASSWORD: its opening
/// and closing quote positions (the closing one may be the end of the text
/// when it was cut).
fn literal_after(bytes: &[u8], from: usize) -> Option<(usize, usize)> {
    let end = from.saturating_add(REACH).min(bytes.len());
    let mut at = from;
    while at < end {
        match bytes.get(at)? {
            b' ' | b'\t' | b'\r' | b'\n' | b'=' | b'(' => at += 1,
            b'\'' | b'"' => break,
            _ if bytes
                .get(at..at + 8)
                .is_some_and(|w| w.eq_ignore_ascii_case(b"PASSWORD")) =>
            {
                at += 8
            }
            _ => return None,
        }
    }
    let quote = *bytes.get(at)?;
    if quote != b'\'' && quote != b'"' {
        return None;
    }
    Some((at, closing(bytes, at, quote)))
}

/// The position of the quote closing the one at `at` (backslash escapes and
/// doubled quotes skipped), or the last position when the text was cut.
fn closing(bytes: &[u8], at: usize, quote: u8) -> usize {
    let mut j = at + 1;
    while let Some(&b) = bytes.get(j) {
        match b {
            b'\\' => j += 2,
            b if b == quote && bytes.get(j + 1) == Some(&quote) => j += 2,
            b if b == quote => return j,
            _ => j += 1,
        }
    }
    bytes.len().saturating_sub(1).max(at)
}

#[cfg(test)]
mod tests {
    use super::redact_sql;

    #[test]
    fn password_literals() {
        let cases = [
            (
                "CREATE USER 'u'@'%' IDENTIFIED BY 'pw1'",
                "CREATE USER 'u'@'%' IDENTIFIED BY '<redacted>'",
            ),
            (
                "alter user u identified with caching_sha2_password by \"p'w\"",
                "alter user u identified with caching_sha2_password by \"<redacted>\"",
            ),
            (
                "ALTER USER u IDENTIFIED WITH 'mysql_native_password' BY 'x''y' REQUIRE SSL",
                "ALTER USER u IDENTIFIED WITH 'mysql_native_password' BY '<redacted>' REQUIRE SSL",
            ),
            (
                "SET PASSWORD FOR u = 'a\\'b'",
                "SET PASSWORD FOR u = '<redacted>'",
            ),
            (
                "SET PASSWORD = PASSWORD('old')",
                "SET PASSWORD = PASSWORD('<redacted>')",
            ),
            (
                "SET PASSWORD FOR 'u'@'%' = 'pw'",
                "SET PASSWORD FOR 'u'@'%' = '<redacted>'",
            ),
            (
                "CHANGE REPLICATION SOURCE TO SOURCE_USER='r', SOURCE_PASSWORD='secret'",
                "CHANGE REPLICATION SOURCE TO SOURCE_USER='r', SOURCE_PASSWORD='<redacted>'",
            ),
            (
                "GRANT ALL ON *.* TO u IDENTIFIED BY PASSWORD '*ABC'",
                "GRANT ALL ON *.* TO u IDENTIFIED BY PASSWORD '<redacted>'",
            ),
            (
                "CREATE USER u IDENTIFIED BY 'cut",
                "CREATE USER u IDENTIFIED BY '<redacted>'",
            ),
            (
                "SELECT password, 'x' FROM users",
                "SELECT password, 'x' FROM users",
            ),
            ("SELECT 'password' AS p", "SELECT 'password' AS p"),
            (
                "ALTER USER u IDENTIFIED BY RANDOM PASSWORD",
                "ALTER USER u IDENTIFIED BY RANDOM PASSWORD",
            ),
            ("héllo PASSWORD='ü'", "héllo PASSWORD='<redacted>'"),
        ];
        for (input, want) in cases {
            assert_eq!(redact_sql(input), want, "{input}");
        }
    }
}
