//! The header fields of one message in two allocations, however many fields
//! it has: the text of every name and value back to back, and where each
//! ends. HTTP/1 heads and HTTP/2 header blocks decode into it, rows keep it,
//! and the JSON column and the exporter read it in place (no string per
//! field to allocate on the capture thread and free on the export one).

use std::fmt;
use std::mem;

use crate::held::HeapSize;

/// Header fields in the order they were sent; names as sent.
#[derive(Default, PartialEq, Eq)]
pub struct Headers {
    text: String,
    /// Per field: where its name ends and where its value ends in `text`.
    /// Its name starts where the previous field's value ends.
    ends: Vec<(usize, usize)>,
}

impl Clone for Headers {
    fn clone(&self) -> Self {
        Self {
            text: self.text.clone(),
            ends: self.ends.clone(),
        }
    }

    /// Reuses this list's buffers (a derived `Clone` would allocate new ones).
    fn clone_from(&mut self, source: &Self) {
        self.text.clone_from(&source.text);
        self.ends.clone_from(&source.ends);
    }
}

impl Headers {
    pub fn new() -> Self {
        Self::default()
    }

    /// Room for `fields` fields of `text_bytes` bytes of names and values.
    pub fn with_capacity(fields: usize, text_bytes: usize) -> Self {
        Self {
            text: String::with_capacity(text_bytes),
            ends: Vec::with_capacity(fields),
        }
    }

    pub fn push(&mut self, name: &str, value: &str) {
        self.text.push_str(name);
        let name_end = self.text.len();
        self.text.push_str(value);
        self.ends.push((name_end, self.text.len()));
    }

    /// Adds a field of raw bytes, as lossy UTF-8 (each invalid sequence
    /// becomes U+FFFD, as `String::from_utf8_lossy` does).
    pub fn push_lossy(&mut self, name: &[u8], value: &[u8]) {
        self.push_text_lossy(name);
        let name_end = self.text.len();
        self.push_text_lossy(value);
        self.ends.push((name_end, self.text.len()));
    }

    /// Adds a field whose name is already text (an HTTP/1 token) and whose
    /// value is raw bytes, as lossy UTF-8: one validation, not two.
    pub fn push_value_lossy(&mut self, name: &str, value: &[u8]) {
        self.text.push_str(name);
        let name_end = self.text.len();
        self.push_text_lossy(value);
        self.ends.push((name_end, self.text.len()));
    }

    /// Adds the fields of `other` after these.
    pub fn append(&mut self, other: &Headers) {
        self.text.reserve(other.text.len());
        self.ends.reserve(other.len());
        for (name, value) in other {
            self.push(name, value);
        }
    }

    fn push_text_lossy(&mut self, bytes: &[u8]) {
        // Nearly every field is valid UTF-8 (mostly ASCII): one validation
        // pass, then a copy; the chunk walk only for the rest.
        if let Ok(text) = std::str::from_utf8(bytes) {
            self.text.push_str(text);
            return;
        }
        for chunk in bytes.utf8_chunks() {
            self.text.push_str(chunk.valid());
            if !chunk.invalid().is_empty() {
                self.text.push(char::REPLACEMENT_CHARACTER);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The fields, in order.
    #[inline]
    pub fn iter(&self) -> Iter<'_> {
        Iter {
            text: &self.text,
            ends: self.ends.iter(),
            start: 0,
        }
    }

    /// The value of the first field named `name` (ASCII case-insensitive).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// Field `index` as (name, value).
    pub fn field(&self, index: usize) -> Option<(&str, &str)> {
        let &ends = self.ends.get(index)?;
        let start = match index.checked_sub(1) {
            Some(before) => self.ends.get(before).map_or(0, |&(_, end)| end),
            None => 0,
        };
        Some(field_text(&self.text, start, ends))
    }

    /// Bytes of names and values together.
    pub fn text_len(&self) -> usize {
        self.text.len()
    }

    /// Every name and value back to back, in order (one scan over all of
    /// them costs less than one per field).
    pub fn text(&self) -> &str {
        &self.text
    }
}

/// The name and value of the field that starts at `start` and whose name
/// and value end at `ends`.
#[inline]
fn field_text(text: &str, start: usize, (name_end, value_end): (usize, usize)) -> (&str, &str) {
    (
        text.get(start..name_end).unwrap_or_default(),
        text.get(name_end..value_end).unwrap_or_default(),
    )
}

/// The fields of [`Headers`], in order.
#[derive(Debug, Clone)]
pub struct Iter<'a> {
    text: &'a str,
    ends: std::slice::Iter<'a, (usize, usize)>,
    /// Where the next field's name starts.
    start: usize,
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a str, &'a str);

    // Inline across crates: the JSON column and the exporter walk every
    // row's fields.
    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        let &ends = self.ends.next()?;
        let start = mem::replace(&mut self.start, ends.1);
        Some(field_text(self.text, start, ends))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.ends.size_hint()
    }
}

impl ExactSizeIterator for Iter<'_> {}

impl<'a> IntoIterator for &'a Headers {
    type Item = (&'a str, &'a str);
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

impl<N: AsRef<str>, V: AsRef<str>> FromIterator<(N, V)> for Headers {
    fn from_iter<I: IntoIterator<Item = (N, V)>>(fields: I) -> Self {
        let mut headers = Headers::new();
        for (name, value) in fields {
            headers.push(name.as_ref(), value.as_ref());
        }
        headers
    }
}

impl fmt::Debug for Headers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl HeapSize for Headers {
    fn heap_size(&self) -> usize {
        mem::size_of::<Self>()
            + self.text.capacity()
            + self.ends.capacity() * mem::size_of::<(usize, usize)>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_come_back_in_order() {
        let mut h = Headers::new();
        h.push("Host", "a");
        h.push("", "");
        h.push("X-Empty", "");
        h.push("Content-Type", "text/plain");
        let fields: Vec<_> = h.iter().collect();
        assert_eq!(
            fields,
            [
                ("Host", "a"),
                ("", ""),
                ("X-Empty", ""),
                ("Content-Type", "text/plain")
            ]
        );
        assert_eq!(h.len(), 4);
        assert_eq!(h.iter().len(), 4);
        assert_eq!(h.get("content-TYPE"), Some("text/plain"));
        assert_eq!(h.get("missing"), None);
        assert_eq!(h.field(4), None);
    }

    #[test]
    fn appended_fields_follow() {
        let mut a: Headers = [("a", "1")].into_iter().collect();
        let b: Headers = [("b", "2"), ("c", "")].into_iter().collect();
        a.append(&b);
        a.append(&Headers::new());
        assert_eq!(
            a.iter().collect::<Vec<_>>(),
            [("a", "1"), ("b", "2"), ("c", "")]
        );
    }

    #[test]
    fn first_of_repeated_names_wins() {
        let h: Headers = [("a", "1"), ("A", "2")].into_iter().collect();
        assert_eq!(h.get("a"), Some("1"));
    }

    #[test]
    fn values_are_lossy_utf8_like_std() {
        for raw in [
            &b"plain"[..],
            b"caf\xc3\xa9",
            b"bad \xff\xfe end",
            b"\xe2\x82",
            b"\xf0\x9f\x98\x80x\xc3",
        ] {
            let mut h = Headers::new();
            h.push_lossy(b"n\xff", raw);
            h.push_value_lossy("v", raw);
            assert_eq!(h.field(0).map(|f| f.0), Some("n\u{FFFD}"));
            let lossy = String::from_utf8_lossy(raw);
            assert_eq!(h.field(0).map(|f| f.1), Some(&*lossy));
            assert_eq!(h.field(1), Some(("v", &*lossy)));
        }
    }
}
