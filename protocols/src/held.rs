//! What parser state weighs: the messages a pairing holds while they wait
//! for their answer count toward the agent's global memory bound, so they
//! must say how many bytes they keep. Kept exact at O(1) per change, as
//! it is read for every captured record.

use compact_str::CompactString;
use std::collections::VecDeque;
use std::mem::size_of;

/// Bytes a value keeps on the heap and inline (an estimate that never
/// undercounts what the value's own fields hold).
pub trait HeapSize {
    fn heap_size(&self) -> usize;
}

impl HeapSize for String {
    fn heap_size(&self) -> usize {
        size_of::<String>() + self.capacity()
    }
}

impl HeapSize for Vec<u8> {
    fn heap_size(&self) -> usize {
        size_of::<Vec<u8>>() + self.capacity()
    }
}

impl HeapSize for Vec<String> {
    fn heap_size(&self) -> usize {
        size_of::<Vec<String>>()
            + (self.capacity() - self.len()) * size_of::<String>()
            + self.iter().map(HeapSize::heap_size).sum::<usize>()
    }
}

/// Bytes a compact string keeps on the heap: none while it is inline.
pub fn heap_bytes(text: &CompactString) -> usize {
    if text.is_heap_allocated() {
        text.capacity()
    } else {
        0
    }
}

/// A FIFO that knows the bytes of what it holds: each item is weighed once,
/// when it goes in.
#[derive(Debug)]
pub struct SizedQueue<T> {
    items: VecDeque<(T, usize)>,
    bytes: usize,
}

impl<T> Default for SizedQueue<T> {
    fn default() -> Self {
        Self {
            items: VecDeque::new(),
            bytes: 0,
        }
    }
}

impl<T: HeapSize> SizedQueue<T> {
    pub fn push_back(&mut self, item: T) {
        let size = item.heap_size();
        self.bytes += size;
        self.items.push_back((item, size));
    }

    pub fn pop_front(&mut self) -> Option<T> {
        let (item, size) = self.items.pop_front()?;
        self.bytes -= size;
        Some(item)
    }

    pub fn front(&self) -> Option<&T> {
        self.items.front().map(|(item, _)| item)
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn clear(&mut self) {
        self.items.clear();
        self.bytes = 0;
    }

    /// What the items weigh, plus the queue's own slots.
    pub fn bytes(&self) -> usize {
        self.bytes + self.items.capacity() * size_of::<(T, usize)>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_queue_weighs_what_it_holds() {
        let mut q = SizedQueue::default();
        assert_eq!(q.bytes(), 0);
        q.push_back("a".repeat(1000));
        q.push_back("b".repeat(10));
        let slots = q.items.capacity() * size_of::<(String, usize)>();
        assert_eq!(q.bytes(), slots + 2 * size_of::<String>() + 1010);
        assert_eq!(q.pop_front().as_deref().map(str::len), Some(1000));
        assert_eq!(q.bytes(), slots + size_of::<String>() + 10);
        q.clear();
        assert_eq!(q.bytes(), slots);
        assert!(q.is_empty());
    }
}
