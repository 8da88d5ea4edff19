//! Bounded maps of prepared statements and portals by name. The unnamed
//! statement and portal (name "") have a slot of their own and are never
//! evicted; named ones are evicted oldest first beyond the cap.

use std::collections::HashMap;
use std::mem;
use std::sync::Arc;

/// A prepared statement: its text (redacted, cut) and parameter types.
#[derive(Debug, Clone)]
pub(crate) struct Statement {
    pub text: Arc<str>,
    /// Parameter type OIDs from Parse (0: left to the server), completed by
    /// a ParameterDescription.
    pub types: Vec<u32>,
}

impl Statement {
    fn bytes(&self) -> usize {
        mem::size_of::<Self>() + self.text.len() + self.types.len() * 4
    }
}

/// Named values with insertion order, capped.
#[derive(Debug)]
struct Named<T> {
    unnamed: Option<T>,
    named: HashMap<Vec<u8>, (T, u64)>,
    max: usize,
    seq: u64,
}

impl<T> Named<T> {
    fn new(max: usize) -> Self {
        Self {
            unnamed: None,
            named: HashMap::new(),
            max: max.max(1),
            seq: 0,
        }
    }

    fn len(&self) -> usize {
        self.named.len() + usize::from(self.unnamed.is_some())
    }

    fn get(&self, name: &[u8]) -> Option<&T> {
        if name.is_empty() {
            self.unnamed.as_ref()
        } else {
            self.named.get(name).map(|(v, _)| v)
        }
    }

    fn get_mut(&mut self, name: &[u8]) -> Option<&mut T> {
        if name.is_empty() {
            self.unnamed.as_mut()
        } else {
            self.named.get_mut(name).map(|(v, _)| v)
        }
    }

    /// Inserts (replacing a value of the same name); returns how many
    /// others were evicted to make room.
    fn insert(&mut self, name: &[u8], value: T) -> u64 {
        if name.is_empty() {
            self.unnamed = Some(value);
            return 0;
        }
        let mut evicted = 0;
        if !self.named.contains_key(name) && self.named.len() >= self.max {
            let oldest = self
                .named
                .iter()
                .min_by_key(|(_, (_, seq))| *seq)
                .map(|(k, _)| k.clone());
            if let Some(oldest) = oldest {
                self.named.remove(&oldest);
                evicted = 1;
            }
        }
        self.seq += 1;
        self.named.insert(name.to_vec(), (value, self.seq));
        evicted
    }

    fn remove(&mut self, name: &[u8]) {
        if name.is_empty() {
            self.unnamed = None;
        } else {
            self.named.remove(name);
        }
    }

    fn bytes(&self, value_bytes: impl Fn(&T) -> usize) -> usize {
        self.unnamed.as_ref().map_or(0, &value_bytes)
            + self
                .named
                .iter()
                .map(|(k, (v, _))| k.len() + 16 + value_bytes(v))
                .sum::<usize>()
    }
}

/// Prepared statements of one connection.
#[derive(Debug)]
pub(crate) struct Statements(Named<Statement>);

impl Statements {
    pub fn new(max: usize) -> Self {
        Self(Named::new(max))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn get(&self, name: &[u8]) -> Option<&Statement> {
        self.0.get(name)
    }

    pub fn insert(&mut self, name: &[u8], statement: Statement) -> u64 {
        self.0.insert(name, statement)
    }

    pub fn remove(&mut self, name: &[u8]) {
        self.0.remove(name);
    }

    /// Parameter types from a ParameterDescription fill the ones Parse left
    /// to the server (0).
    pub fn learn_types(&mut self, name: &[u8], types: Vec<u32>) {
        if let Some(statement) = self.0.get_mut(name) {
            for (i, t) in types.into_iter().enumerate() {
                match statement.types.get_mut(i) {
                    Some(known @ 0) => *known = t,
                    Some(_) => {}
                    None => statement.types.push(t),
                }
            }
        }
    }

    pub fn bytes(&self) -> usize {
        self.0.bytes(Statement::bytes)
    }
}

/// Portals of one connection: the rendered statement and parameters each
/// Execute of it shows.
#[derive(Debug)]
pub(crate) struct Portals(Named<Arc<str>>);

impl Portals {
    pub fn new(max: usize) -> Self {
        Self(Named::new(max))
    }

    pub fn get(&self, name: &[u8]) -> Option<&Arc<str>> {
        self.0.get(name)
    }

    pub fn insert(&mut self, name: &[u8], req: Arc<str>) -> u64 {
        self.0.insert(name, req)
    }

    pub fn remove(&mut self, name: &[u8]) {
        self.0.remove(name);
    }

    pub fn bytes(&self) -> usize {
        self.0.bytes(|s| mem::size_of::<Arc<str>>() + 16 + s.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stmt(text: &str) -> Statement {
        Statement {
            text: Arc::from(text),
            types: vec![0, 23],
        }
    }

    #[test]
    fn named_statements_are_capped_oldest_first() {
        let mut s = Statements::new(2);
        assert_eq!(s.insert(b"", stmt("u")), 0);
        assert_eq!(s.insert(b"a", stmt("A")), 0);
        assert_eq!(s.insert(b"b", stmt("B")), 0);
        assert_eq!(s.insert(b"b", stmt("B2")), 0);
        assert_eq!(s.insert(b"c", stmt("C")), 1);
        assert!(s.get(b"a").is_none());
        assert_eq!(&*s.get(b"b").unwrap().text, "B2");
        assert_eq!(&*s.get(b"").unwrap().text, "u");
        assert_eq!(s.len(), 3);
        s.learn_types(b"c", vec![25, 20, 16]);
        assert_eq!(s.get(b"c").unwrap().types, [25, 23, 16]);
        s.remove(b"c");
        assert_eq!(s.len(), 2);
        assert!(s.bytes() > 0);
    }
}
