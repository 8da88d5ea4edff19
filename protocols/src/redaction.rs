//! Header names whose values never leave a decoder: replaced by
//! [`REDACTED`](crate::REDACTED) in every row and export.

/// Header names compared case-insensitively against every field of every
/// HTTP message. A field is turned away by a mask of the names' lengths, or
/// by a key of its length and first and last bytes, before any name is
/// compared (in profiles, comparing name by name was about a fifth of
/// parsing a head: common fields share lengths with the default names).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RedactedNames {
    /// Lowercase.
    names: Vec<String>,
    /// [`key`] of each name, in the same order.
    keys: Vec<u32>,
    /// Bit `n` set: some name is `n` bytes long (bit 63: 63 or more).
    lengths: u64,
}

fn length_bit(len: usize) -> u64 {
    1u64 << len.min(63)
}

/// Length (saturated), first and last byte of a name, ASCII lowercase.
fn key(name: &[u8]) -> u32 {
    let len = u32::try_from(name.len()).unwrap_or(u32::MAX).min(0xffff);
    let first = name.first().map_or(0, u8::to_ascii_lowercase);
    let last = name.last().map_or(0, u8::to_ascii_lowercase);
    (len << 16) | (u32::from(first) << 8) | u32::from(last)
}

impl RedactedNames {
    /// Adds a name (stored lowercase).
    pub fn push(&mut self, name: &str) {
        self.lengths |= length_bit(name.len());
        self.keys.push(key(name.as_bytes()));
        self.names.push(name.to_ascii_lowercase());
    }

    pub fn clear(&mut self) {
        self.names.clear();
        self.keys.clear();
        self.lengths = 0;
    }

    /// Whether `name` is one of the names, ignoring ASCII case.
    #[inline]
    pub fn contains(&self, name: &[u8]) -> bool {
        if self.lengths & length_bit(name.len()) == 0 {
            return false;
        }
        let key = key(name);
        self.keys
            .iter()
            .zip(&self.names)
            .any(|(&k, redacted)| k == key && redacted.as_bytes().eq_ignore_ascii_case(name))
    }

    /// The names in the order they were added, lowercase.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.names.iter().map(String::as_str)
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

impl<S: AsRef<str>> Extend<S> for RedactedNames {
    fn extend<I: IntoIterator<Item = S>>(&mut self, names: I) {
        for name in names {
            self.push(name.as_ref());
        }
    }
}

impl<S: AsRef<str>> FromIterator<S> for RedactedNames {
    fn from_iter<I: IntoIterator<Item = S>>(names: I) -> Self {
        let mut set = Self::default();
        set.extend(names);
        set
    }
}

#[cfg(test)]
mod tests {
    use super::RedactedNames;

    #[test]
    fn matches_names_ignoring_case_only() {
        let names: RedactedNames = ["Authorization", "x-api-key"].into_iter().collect();
        assert_eq!(
            names.iter().collect::<Vec<_>>(),
            ["authorization", "x-api-key"]
        );
        assert!(names.contains(b"authorization"));
        assert!(names.contains(b"AUTHORIZATION"));
        assert!(names.contains(b"X-Api-Key"));
        // Same length as a name, different bytes; then also the same first
        // and last bytes.
        assert!(!names.contains(b"x-api-kex"));
        assert!(!names.contains(b"x-apI-Yey"));
        assert!(!names.contains(b"authorizatio"));
        assert!(!names.contains(b""));
        assert!(!names.contains(b"host"));
    }

    #[test]
    fn long_names_share_the_last_length_bit() {
        let long = "x".repeat(70);
        let names: RedactedNames = [long.as_str()].into_iter().collect();
        assert!(names.contains(long.as_bytes()));
        assert!(!names.contains("x".repeat(64).as_bytes()));
        assert!(!names.contains("x".repeat(71).as_bytes()));
    }

    #[test]
    fn cleared_matches_nothing() {
        let mut names: RedactedNames = ["cookie"].into_iter().collect();
        names.clear();
        assert!(names.is_empty());
        assert!(!names.contains(b"cookie"));
        names.extend(["Set-Cookie"]);
        assert!(names.contains(b"set-cookie"));
        assert!(!names.contains(b"cookie"));
    }
}
