//! Reading the fields of message bodies (a kept prefix: every read may find
//! the body short and says so with `None`).

use crate::cursor::Cursor;

/// Longest name (statement, portal, parameter, user, database) kept.
pub(crate) const MAX_NAME: usize = 128;

/// Lossy UTF-8 of a name, cut at `MAX_NAME` bytes.
pub(crate) fn short_text(bytes: &[u8]) -> String {
    crate::text::lossy_capped(bytes, MAX_NAME)
}

/// A StartupMessage's parameters, in order.
pub(crate) fn startup_params(body: &[u8]) -> Vec<(String, String)> {
    let mut c = Cursor::at(body, 4);
    let mut out = Vec::new();
    while let Some(key) = c.nul_terminated() {
        if key.is_empty() || out.len() >= 32 {
            break;
        }
        let Some(value) = c.nul_terminated() else {
            break;
        };
        out.push((short_text(key), short_text(value)));
    }
    out
}

/// Parse: statement name, text, parameter type OIDs.
pub(crate) struct Parse<'a> {
    pub name: &'a [u8],
    pub text: &'a [u8],
    /// Whether the text ended with its NUL inside the kept body.
    pub text_whole: bool,
    pub param_types: Vec<u32>,
}

pub(crate) fn parse(body: &[u8]) -> Option<Parse<'_>> {
    let mut c = Cursor::new(body);
    let name = c.nul_terminated()?;
    let (text, text_whole) = match c.nul_terminated() {
        Some(text) => (text, true),
        None => (c.rest(), false),
    };
    let mut param_types = Vec::new();
    if text_whole && let Some(n) = c.u16_be() {
        for _ in 0..n.min(4096) {
            match c.u32_be() {
                Some(t) => param_types.push(t),
                None => break,
            }
        }
    }
    Some(Parse {
        name,
        text,
        text_whole,
        param_types,
    })
}

/// Bind: portal, statement, parameter formats and values, as far as kept.
pub(crate) struct Bind<'a> {
    pub portal: &'a [u8],
    pub statement: &'a [u8],
    /// Format codes: none (all text), one (for all), or one per parameter.
    pub formats: Vec<u16>,
    /// Parameter count declared.
    pub count: u16,
    /// Values read before the kept body ended (`None` is SQL NULL).
    pub values: Vec<Option<&'a [u8]>>,
}

impl Bind<'_> {
    /// Whether parameter `i` is in binary format.
    pub fn is_binary(&self, i: usize) -> bool {
        match self.formats.as_slice() {
            [] => false,
            [one] => *one == 1,
            many => many.get(i) == Some(&1),
        }
    }
}

pub(crate) fn bind(body: &[u8]) -> Option<Bind<'_>> {
    let mut c = Cursor::new(body);
    let portal = c.nul_terminated()?;
    let statement = c.nul_terminated()?;
    let mut bind = Bind {
        portal,
        statement,
        formats: Vec::new(),
        count: 0,
        values: Vec::new(),
    };
    let Some(nformats) = c.u16_be() else {
        return Some(bind);
    };
    for _ in 0..nformats {
        match c.u16_be() {
            Some(f) => bind.formats.push(f),
            None => return Some(bind),
        }
    }
    let Some(count) = c.u16_be() else {
        return Some(bind);
    };
    bind.count = count;
    for _ in 0..count {
        let Some(len) = c.u32_be() else {
            break;
        };
        if len == u32::MAX {
            bind.values.push(None);
            continue;
        }
        match c.take(len as usize) {
            Some(v) => bind.values.push(Some(v)),
            None => break,
        }
    }
    Some(bind)
}

/// Describe or Close: 'S' (statement) or 'P' (portal), and the name.
pub(crate) fn target(body: &[u8]) -> Option<(u8, &[u8])> {
    let mut c = Cursor::new(body);
    let kind = c.u8()?;
    Some((kind, c.nul_terminated()?))
}

/// Execute: portal and row limit (0: all).
pub(crate) fn execute(body: &[u8]) -> Option<(&[u8], u32)> {
    let mut c = Cursor::new(body);
    let portal = c.nul_terminated()?;
    Some((portal, c.u32_be().unwrap_or(0)))
}

/// The fields of an ErrorResponse or NoticeResponse that events show.
#[derive(Debug, Default)]
pub(crate) struct Fields {
    /// Non-localized severity ('V') when sent, else the localized one ('S').
    pub severity: String,
    pub sqlstate: String,
    pub message: String,
}

pub(crate) fn fields(body: &[u8]) -> Fields {
    let mut c = Cursor::new(body);
    let mut out = Fields::default();
    let mut localized = String::new();
    while let Some(code) = c.u8() {
        if code == 0 {
            break;
        }
        let value = match c.nul_terminated() {
            Some(v) => v,
            // Cut by the kept-bytes cap: take what is there.
            None => c.rest(),
        };
        match code {
            b'S' => localized = short_text(value),
            b'V' => out.severity = short_text(value),
            b'C' => out.sqlstate = short_text(value),
            b'M' => out.message = String::from_utf8_lossy(value).into_owned(),
            _ => {}
        }
    }
    if out.severity.is_empty() {
        out.severity = localized;
    }
    out
}

/// Rows affected or returned from a CommandComplete tag: the last number
/// of INSERT (after the OID), UPDATE, DELETE, MERGE, SELECT, MOVE, FETCH
/// and COPY tags; `None` for tags without a count.
pub fn tag_rows(tag: &str) -> Option<u64> {
    let mut words = tag.split(' ');
    let command = words.next()?;
    if !matches!(
        command,
        "INSERT" | "UPDATE" | "DELETE" | "MERGE" | "SELECT" | "MOVE" | "FETCH" | "COPY"
    ) {
        return None;
    }
    // "CREATE TABLE AS" reports "SELECT n"; "SELECT" alone (old servers) has
    // none.
    words.next_back()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags() {
        assert_eq!(tag_rows("INSERT 0 5"), Some(5));
        assert_eq!(tag_rows("SELECT 12"), Some(12));
        assert_eq!(tag_rows("UPDATE 0"), Some(0));
        assert_eq!(tag_rows("COPY 3"), Some(3));
        assert_eq!(tag_rows("CREATE TABLE"), None);
        assert_eq!(tag_rows("SELECT"), None);
        assert_eq!(tag_rows(""), None);
    }

    #[test]
    fn bodies() {
        let p = parse(b"s1\0SELECT $1\0\0\x01\0\0\0\x17").unwrap();
        assert_eq!(
            (p.name, p.text, p.text_whole),
            (&b"s1"[..], &b"SELECT $1"[..], true)
        );
        assert_eq!(p.param_types, [23]);
        let p = parse(b"\0SELECT 1 + ").unwrap();
        assert_eq!((p.text, p.text_whole), (&b"SELECT 1 + "[..], false));
        let b = bind(b"\0s1\0\0\x01\0\x01\0\x02\0\0\0\x02hi\xff\xff\xff\xff\0\0").unwrap();
        assert_eq!(b.statement, b"s1");
        assert_eq!(b.formats, [1]);
        assert_eq!(b.values, [Some(&b"hi"[..]), None]);
        assert!(b.is_binary(1));
        let f = fields(b"SERROR\0VERROR\0C42P01\0Mrelation \"x\" does not exist\0P15\0\0");
        assert_eq!(
            (f.severity.as_str(), f.sqlstate.as_str(), f.message.as_str()),
            ("ERROR", "42P01", "relation \"x\" does not exist")
        );
        assert_eq!(target(b"Sname\0"), Some((b'S', &b"name"[..])));
        assert_eq!(execute(b"p\0\0\0\0\x05"), Some((&b"p"[..], 5)));
        assert_eq!(
            startup_params(b"\0\x03\0\0user\0bob\0database\0db\0\0"),
            [
                ("user".into(), "bob".into()),
                ("database".into(), "db".into())
            ]
        );
    }
}
