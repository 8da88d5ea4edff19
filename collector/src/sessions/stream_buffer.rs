//! A stream direction's bytes not parsed yet (the unparsed tail the
//! decoder waits on), with the capture timestamp of every byte (kept per
//! delivered piece, not per byte).

use std::collections::VecDeque;

#[derive(Debug, Default)]
pub struct StreamBuffer {
    /// Parsed bytes (`..head`), then the unparsed ones.
    bytes: Vec<u8>,
    /// Where the unparsed bytes start in `bytes`. Parsed bytes are dropped
    /// lazily, when the next piece arrives and they are at least as many as
    /// the unparsed ones: consuming message after message from a large
    /// buffer would otherwise move its whole tail each time (quadratic; it
    /// was a tenth of the capture thread's time under load).
    head: usize,
    /// (stream offset where a piece starts, its timestamp), oldest first.
    stamps: VecDeque<(u64, u64)>,
    /// Stream offset of the first unparsed byte.
    start: u64,
}

impl StreamBuffer {
    pub fn bytes(&self) -> &[u8] {
        self.bytes.get(self.head..).unwrap_or_default()
    }

    pub fn len(&self) -> usize {
        self.bytes.len() - self.head
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes held: the unparsed ones and parsed ones not dropped yet.
    pub fn held_bytes(&self) -> usize {
        self.bytes.len()
    }

    pub fn append(&mut self, ts: u64, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        if self.head > 0 && self.head >= self.len() {
            // Moves at most as many bytes as were consumed since the last
            // move: linear overall.
            self.bytes.drain(..self.head);
            self.head = 0;
        }
        let offset = self.start + self.len() as u64;
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
        let n = n.min(self.len());
        self.head += n;
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
        if self.is_empty() {
            self.bytes.clear();
            self.head = 0;
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

    #[test]
    fn consumed_bytes_are_dropped_lazily_without_changing_what_is_seen() {
        let mut b = StreamBuffer::default();
        b.append(1, b"GET /a\r\nGET /b\r\nGET /c\r\n");
        b.consume(8);
        assert_eq!(b.bytes(), b"GET /b\r\nGET /c\r\n");
        assert_eq!(b.len(), 16);
        // Fewer parsed bytes than unparsed: kept until later.
        b.append(2, b"GET /d");
        assert_eq!(b.bytes(), b"GET /b\r\nGET /c\r\nGET /d");
        assert_eq!(b.ts_at(16), 2);
        b.consume(16);
        assert_eq!(b.bytes(), b"GET /d");
        assert_eq!(b.ts_at(0), 2);
        // Now they outnumber the unparsed bytes: moved away on this append.
        b.append(3, b"\r\n");
        assert_eq!(b.bytes(), b"GET /d\r\n");
        assert_eq!(b.bytes.len(), 8);
        assert_eq!(b.ts_at(7), 3);
        b.consume(8);
        assert!(b.is_empty());
        assert_eq!(b.bytes.len(), 0);
    }
}
