//! Orders one direction of a stream by byte position and makes losses explicit.
//!
//! The kernel stamps every chunk with its stream position, so order and loss are
//! facts, not guesses: a chunk at the expected position is delivered at once;
//! a chunk beyond it waits (bounded) for the missing bytes; bytes the kernel
//! said it did not copy (the tail of a call over the per-call cap, sendfile) are
//! delivered as a `Gap` right away; bytes that never arrive (ring buffer full)
//! become a `Gap` when the wait times out or the wait buffer is full.

use std::borrow::Cow;
use std::collections::BTreeMap;

use smallvec::SmallVec;

/// What the parser side receives, in stream order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece<'a> {
    Data {
        ts: u64,
        bytes: Cow<'a, [u8]>,
    },
    /// `len` bytes were lost; `ts` is when they were sent or received (0 if unknown).
    Gap {
        len: u64,
        ts: u64,
    },
}

/// What one chunk makes deliverable: nearly always one piece (its data),
/// sometimes a gap beside it; inline, so a record costs no allocation.
pub type Pieces<'a> = SmallVec<[Piece<'a>; 2]>;

/// One chunk as the kernel sent it.
#[derive(Debug, Clone, Copy)]
pub struct Chunk<'a> {
    pub position: u64,
    pub ts: u64,
    pub bytes: &'a [u8],
    /// Stream position just past all the bytes of the syscall.
    pub call_end: u64,
    /// Last chunk of its call: everything in [position + len, call_end) was not copied.
    pub last: bool,
}

#[derive(Debug)]
enum Held {
    Data { ts: u64, bytes: Vec<u8> },
    Gap { len: u64, ts: u64 },
}

/// What one held entry costs besides its bytes (the map node's share):
/// held gaps weigh this too, so a stream of tiny out-of-order gaps cannot
/// grow the map unbounded.
const HELD_ENTRY_BYTES: usize = 64;

impl Held {
    /// What holding this piece costs, counted in `held_bytes`.
    fn weight(&self) -> usize {
        HELD_ENTRY_BYTES
            + match self {
                Held::Data { bytes, .. } => bytes.len(),
                Held::Gap { .. } => 0,
            }
    }

    fn len(&self) -> u64 {
        match self {
            Held::Data { bytes, .. } => bytes.len() as u64,
            Held::Gap { len, .. } => *len,
        }
    }
}

#[derive(Debug)]
pub struct Reassembler {
    next: u64,
    held: BTreeMap<u64, Held>,
    held_bytes: usize,
    /// Timestamp of the oldest chunk waiting, to time out a gap.
    waiting_since: Option<u64>,
    max_held_bytes: usize,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PushStats {
    /// Bytes received again for positions already delivered (ignored).
    pub duplicate_bytes: u64,
    /// Gaps declared because the wait buffer overflowed.
    pub forced_gaps: u64,
}

impl Reassembler {
    pub fn new(max_held_bytes: usize) -> Self {
        Self {
            next: 0,
            held: BTreeMap::new(),
            held_bytes: 0,
            waiting_since: None,
            max_held_bytes,
        }
    }

    /// Stream position of the next byte to deliver.
    pub fn next_position(&self) -> u64 {
        self.next
    }

    /// Bytes waiting for earlier positions (and the entries holding them,
    /// gaps included).
    pub fn held_bytes(&self) -> usize {
        self.held_bytes
    }

    /// Adds a chunk, appending what became deliverable to `out`.
    pub fn push<'a>(&mut self, chunk: Chunk<'a>, out: &mut Pieces<'a>) -> PushStats {
        let mut stats = PushStats::default();
        let data_end = chunk.position + chunk.bytes.len() as u64;
        self.accept_data(chunk.position, chunk.ts, chunk.bytes, out, &mut stats);
        if chunk.last && chunk.call_end > data_end {
            self.accept_gap(
                data_end,
                chunk.call_end - data_end,
                chunk.ts,
                out,
                &mut stats,
            );
        }
        self.drain(out, &mut stats);
        if self.held_bytes > self.max_held_bytes {
            self.force_gap(out, &mut stats);
        }
        stats
    }

    /// Gives up waiting for missing bytes once the oldest waiting chunk is older
    /// than `max_wait_ns`: the missing range becomes a gap.
    pub fn expire<'a>(&mut self, now_ns: u64, max_wait_ns: u64, out: &mut Pieces<'a>) -> PushStats {
        let mut stats = PushStats::default();
        if let Some(since) = self.waiting_since
            && now_ns.saturating_sub(since) >= max_wait_ns
        {
            self.force_gap(out, &mut stats);
        }
        stats
    }

    fn accept_data<'a>(
        &mut self,
        position: u64,
        ts: u64,
        bytes: &'a [u8],
        out: &mut Pieces<'a>,
        stats: &mut PushStats,
    ) {
        if bytes.is_empty() {
            return;
        }
        let end = position + bytes.len() as u64;
        if end <= self.next {
            stats.duplicate_bytes += bytes.len() as u64;
            return;
        }
        // Part of the chunk may already have been delivered.
        let skip = self.next.saturating_sub(position);
        let fresh = bytes
            .get(usize::try_from(skip).unwrap_or(usize::MAX)..)
            .unwrap_or_default();
        stats.duplicate_bytes += skip;
        let position = position.max(self.next);
        if position == self.next {
            out.push(Piece::Data {
                ts,
                bytes: Cow::Borrowed(fresh),
            });
            self.next = end;
        } else {
            self.hold(
                position,
                Held::Data {
                    ts,
                    bytes: fresh.to_vec(),
                },
                ts,
            );
        }
    }

    fn accept_gap<'a>(
        &mut self,
        position: u64,
        len: u64,
        ts: u64,
        out: &mut Pieces<'a>,
        stats: &mut PushStats,
    ) {
        let end = position + len;
        if end <= self.next {
            stats.duplicate_bytes += len;
            return;
        }
        let position = position.max(self.next);
        if position == self.next {
            out.push(Piece::Gap {
                len: end - position,
                ts,
            });
            self.next = end;
        } else {
            self.hold(
                position,
                Held::Gap {
                    len: end - position,
                    ts,
                },
                ts,
            );
        }
    }

    fn hold(&mut self, position: u64, held: Held, ts: u64) {
        // Keep the longer of two holds at the same position.
        match self.held.get(&position) {
            Some(existing) if existing.len() >= held.len() => return,
            Some(existing) => self.held_bytes -= existing.weight(),
            None => {}
        }
        self.held_bytes += held.weight();
        self.held.insert(position, held);
        self.waiting_since.get_or_insert(ts);
    }

    /// Delivers held pieces that are now contiguous with `next`.
    fn drain<'a>(&mut self, out: &mut Pieces<'a>, stats: &mut PushStats) {
        while let Some(entry) = self.held.first_entry() {
            if *entry.key() > self.next {
                break;
            }
            let position = *entry.key();
            let held = entry.remove();
            self.held_bytes -= held.weight();
            let end = position + held.len();
            if end <= self.next {
                stats.duplicate_bytes += held.len();
                continue;
            }
            let skip = self.next - position;
            stats.duplicate_bytes += skip;
            match held {
                Held::Data { ts, bytes } => {
                    let fresh = bytes
                        .get(usize::try_from(skip).unwrap_or(usize::MAX)..)
                        .unwrap_or_default();
                    out.push(Piece::Data {
                        ts,
                        bytes: Cow::Owned(fresh.to_vec()),
                    });
                }
                Held::Gap { ts, .. } => out.push(Piece::Gap {
                    len: end - self.next,
                    ts,
                }),
            }
            self.next = end;
        }
        if self.held.is_empty() {
            self.waiting_since = None;
        }
    }

    /// Declares the bytes before the first held piece lost and delivers onward.
    fn force_gap<'a>(&mut self, out: &mut Pieces<'a>, stats: &mut PushStats) {
        while let Some((&first, _)) = self.held.first_key_value() {
            if first > self.next {
                out.push(Piece::Gap {
                    len: first - self.next,
                    ts: 0,
                });
                self.next = first;
                stats.forced_gaps += 1;
            }
            self.drain(out, stats);
            if self.held_bytes <= self.max_held_bytes / 2 || self.held.is_empty() {
                break;
            }
        }
        // What is still held started waiting now.
        self.waiting_since = if self.held.is_empty() {
            None
        } else {
            self.waiting_since
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(position: u64, bytes: &[u8]) -> Chunk<'_> {
        Chunk {
            position,
            ts: position,
            bytes,
            call_end: position + bytes.len() as u64,
            last: true,
        }
    }

    fn flatten(pieces: &[Piece<'_>]) -> String {
        pieces
            .iter()
            .map(|p| match p {
                Piece::Data { bytes, .. } => String::from_utf8_lossy(bytes).into_owned(),
                Piece::Gap { len, .. } => format!("<gap {len}>"),
            })
            .collect()
    }

    #[test]
    fn in_order_chunks_pass_through_borrowed() {
        let mut r = Reassembler::new(1024);
        let mut out = Pieces::new();
        r.push(chunk(0, b"GET "), &mut out);
        r.push(chunk(4, b"/ HTTP/1.1"), &mut out);
        assert_eq!(flatten(&out), "GET / HTTP/1.1");
        assert!(matches!(
            out[0],
            Piece::Data {
                bytes: Cow::Borrowed(_),
                ..
            }
        ));
        assert_eq!(r.next_position(), 14);
    }

    #[test]
    fn out_of_order_chunks_are_reordered() {
        let mut r = Reassembler::new(1024);
        let mut out = Pieces::new();
        r.push(chunk(5, b"world"), &mut out);
        assert!(out.is_empty());
        assert_eq!(r.held_bytes(), 5 + HELD_ENTRY_BYTES);
        r.push(chunk(0, b"hello"), &mut out);
        assert_eq!(flatten(&out), "helloworld");
        assert_eq!(r.held_bytes(), 0);
    }

    #[test]
    fn held_gaps_count_toward_the_bound() {
        // Out-of-order calls whose bytes were all uncopied: gaps only.
        let mut r = Reassembler::new(10 * HELD_ENTRY_BYTES);
        let mut out = Pieces::new();
        for i in 1..=10u64 {
            let gap = Chunk {
                position: i * 100,
                ts: i,
                bytes: b"",
                call_end: i * 100 + 1,
                last: true,
            };
            r.push(gap, &mut out);
        }
        assert!(out.is_empty());
        assert_eq!(r.held_bytes(), 10 * HELD_ENTRY_BYTES);
        // One more goes over the bound: the wait is given up.
        r.push(
            Chunk {
                position: 1100,
                ts: 11,
                bytes: b"",
                call_end: 1101,
                last: true,
            },
            &mut out,
        );
        assert!(!out.is_empty());
        assert!(r.held_bytes() <= 5 * HELD_ENTRY_BYTES, "{}", r.held_bytes());
    }

    #[test]
    fn uncopied_tail_is_an_immediate_gap() {
        let mut r = Reassembler::new(1024);
        let mut out = Pieces::new();
        let c = Chunk {
            position: 0,
            ts: 1,
            bytes: b"abc",
            call_end: 10,
            last: true,
        };
        r.push(c, &mut out);
        assert_eq!(flatten(&out), "abc<gap 7>");
        // A chunk that is not the last of its call does not imply a gap.
        let c = Chunk {
            position: 10,
            ts: 2,
            bytes: b"de",
            call_end: 20,
            last: false,
        };
        r.push(c, &mut out);
        assert_eq!(flatten(&out), "abc<gap 7>de");
        assert_eq!(r.next_position(), 12);
    }

    #[test]
    fn missing_bytes_become_a_gap_after_the_wait() {
        let mut r = Reassembler::new(1024);
        let mut out = Pieces::new();
        r.push(
            Chunk {
                position: 10,
                ts: 100,
                bytes: b"late",
                call_end: 14,
                last: true,
            },
            &mut out,
        );
        r.expire(150, 100, &mut out);
        assert!(out.is_empty());
        r.expire(200, 100, &mut out);
        assert_eq!(flatten(&out), "<gap 10>late");
    }

    #[test]
    fn overflowing_the_wait_buffer_forces_a_gap() {
        let mut r = Reassembler::new(8);
        let mut out = Pieces::new();
        let stats = r.push(chunk(4, b"0123456789"), &mut out);
        assert_eq!(stats.forced_gaps, 1);
        assert_eq!(flatten(&out), "<gap 4>0123456789");
    }

    #[test]
    fn duplicates_and_overlaps_are_trimmed() {
        let mut r = Reassembler::new(1024);
        let mut out = Pieces::new();
        r.push(chunk(0, b"abcdef"), &mut out);
        let stats = r.push(chunk(3, b"defgh"), &mut out);
        assert_eq!(stats.duplicate_bytes, 3);
        let stats = r.push(chunk(0, b"ab"), &mut out);
        assert_eq!(stats.duplicate_bytes, 2);
        assert_eq!(flatten(&out), "abcdefgh");
    }

    #[test]
    fn held_gap_then_data_in_order() {
        let mut r = Reassembler::new(1024);
        let mut out = Pieces::new();
        // A call at 3..10 copied only 3..5; it arrives before 0..3.
        r.push(
            Chunk {
                position: 3,
                ts: 5,
                bytes: b"de",
                call_end: 10,
                last: true,
            },
            &mut out,
        );
        assert!(out.is_empty());
        r.push(chunk(0, b"abc"), &mut out);
        r.push(chunk(10, b"k"), &mut out);
        assert_eq!(flatten(&out), "abcde<gap 5>k");
    }
}
