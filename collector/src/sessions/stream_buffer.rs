//! A stream direction's bytes not parsed yet (the unparsed tail the
//! decoder waits on), with the capture timestamp of every byte (kept per
//! delivered piece, not per byte).

use std::collections::VecDeque;

#[derive(Debug, Default)]
pub struct StreamBuffer {
    bytes: Vec<u8>,
    /// (stream offset where a piece starts, its timestamp), oldest first.
    stamps: VecDeque<(u64, u64)>,
    /// Stream offset of `bytes[0]`.
    start: u64,
}

impl StreamBuffer {
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    pub fn append(&mut self, ts: u64, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        let offset = self.start + self.bytes.len() as u64;
        if self.stamps.back().is_none_or(|&(_, last_ts)| last_ts != ts) {
            self.stamps.push_back((offset, ts));
        }
        self.bytes.extend_from_slice(data);
    }

    /// Timestamp of the byte at `index` within the window (0 if empty).
    pub fn ts_at(&self, index: usize) -> u64 {
        let offset = self.start + index as u64;
        let after = self.stamps.partition_point(|&(start, _)| start <= offset);
        after
            .checked_sub(1)
            .and_then(|i| self.stamps.get(i))
            .map(|&(_, ts)| ts)
            .unwrap_or(0)
    }

    /// Drops the first `n` bytes (they were parsed).
    pub fn consume(&mut self, n: usize) {
        let n = n.min(self.bytes.len());
        self.bytes.drain(..n);
        self.start += n as u64;
        // Keep the stamp covering the new first byte.
        while self.stamps.len() > 1
            && self
                .stamps
                .get(1)
                .is_some_and(|&(start, _)| start <= self.start)
        {
            self.stamps.pop_front();
        }
        if self.bytes.is_empty() {
            self.stamps.clear();
            // Give memory back after a large message.
            if self.bytes.capacity() > 64 * 1024 {
                self.bytes = Vec::new();
            }
        }
    }

    /// Drops everything buffered and skips `gap` lost bytes.
    pub fn clear_and_skip(&mut self, gap: u64) {
        let len = self.bytes.len();
        self.consume(len);
        self.start += gap;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_follow_consumption() {
        let mut b = StreamBuffer::default();
        b.append(10, b"abc");
        b.append(20, b"def");
        assert_eq!(b.ts_at(0), 10);
        assert_eq!(b.ts_at(2), 10);
        assert_eq!(b.ts_at(3), 20);
        b.consume(4);
        assert_eq!(b.bytes(), b"ef");
        assert_eq!(b.ts_at(0), 20);
        b.clear_and_skip(5);
        assert!(b.is_empty());
        b.append(30, b"x");
        assert_eq!(b.ts_at(0), 30);
    }
}
