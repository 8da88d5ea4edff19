//! HPACK header decoding (RFC 7541) for a passive observer.
//!
//! Written here rather than taken from a crate: the HPACK crates on
//! crates.io (`hpack`, `fluke-hpack`/`loona-hpack`, `httlib-hpack`, and
//! `h2`'s private one) are decoders for an endpoint. They fail the whole
//! header block on an index outside their table, and their table is either
//! right or broken. An observer that joins a connection mid-way, or loses a
//! header block in a capture gap, knows only the entries inserted since: it
//! must go on decoding, mark the fields it cannot resolve and keep the table
//! positions right for later blocks, which needs a table that knows which of
//! its parts are known. The RFC 7541 Appendix C examples are the tests.
//!
//! The mirrored table stays exact by construction: entries are inserted at
//! the front exactly when the sender's encoder inserted them, so the `k`
//! newest entries seen since joining are the sender's `k` newest entries.
//! An index past them is an entry from before the join ("unknown"), unless
//! the table is known to be complete, where it is an error. A table becomes
//! complete again when it can hold nothing older: a size update below the
//! smallest entry size, or known entries filling a known maximum size.

mod huffman;

use std::borrow::Cow;
use std::collections::VecDeque;

use crate::cursor::Cursor;

/// Overhead of an entry in the RFC 7541 size (section 4.1).
const ENTRY_OVERHEAD: usize = 32;

/// Bytes an entry costs in memory beyond its name and value (boxes, deque
/// slot), for [`HpackDecoder::state_bytes`].
const ENTRY_MEMORY_OVERHEAD: usize = 48;

/// RFC 7541 Appendix A.
const STATIC_TABLE: [(&str, &str); 61] = [
    (":authority", ""),
    (":method", "GET"),
    (":method", "POST"),
    (":path", "/"),
    (":path", "/index.html"),
    (":scheme", "http"),
    (":scheme", "https"),
    (":status", "200"),
    (":status", "204"),
    (":status", "206"),
    (":status", "304"),
    (":status", "400"),
    (":status", "404"),
    (":status", "500"),
    ("accept-charset", ""),
    ("accept-encoding", "gzip, deflate"),
    ("accept-language", ""),
    ("accept-ranges", ""),
    ("accept", ""),
    ("access-control-allow-origin", ""),
    ("age", ""),
    ("allow", ""),
    ("authorization", ""),
    ("cache-control", ""),
    ("content-disposition", ""),
    ("content-encoding", ""),
    ("content-language", ""),
    ("content-length", ""),
    ("content-location", ""),
    ("content-range", ""),
    ("content-type", ""),
    ("cookie", ""),
    ("date", ""),
    ("etag", ""),
    ("expect", ""),
    ("expires", ""),
    ("from", ""),
    ("host", ""),
    ("if-match", ""),
    ("if-modified-since", ""),
    ("if-none-match", ""),
    ("if-range", ""),
    ("if-unmodified-since", ""),
    ("last-modified", ""),
    ("link", ""),
    ("location", ""),
    ("max-forwards", ""),
    ("proxy-authenticate", ""),
    ("proxy-authorization", ""),
    ("range", ""),
    ("referer", ""),
    ("refresh", ""),
    ("retry-after", ""),
    ("server", ""),
    ("set-cookie", ""),
    ("strict-transport-security", ""),
    ("transfer-encoding", ""),
    ("user-agent", ""),
    ("vary", ""),
    ("via", ""),
    ("www-authenticate", ""),
];

/// What the pseudo-header fields at the start of a header block say about
/// its sender, read without a header table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BlockLead {
    /// A request pseudo-header (`:method`, `:scheme`, `:path`,
    /// `:authority`, `:protocol`): the client.
    Request,
    /// `:status`: the server.
    Response,
    /// A regular field (or something malformed) before any pseudo-header
    /// whose name could be read.
    Other,
    /// The bytes end before a name could be read.
    Incomplete,
}

/// Fields looked at by [`block_lead`].
const LEAD_FIELDS: usize = 16;

/// Reads the names of a block's first fields (static table names and
/// literal names; dynamic table references are skipped, their names being
/// unknown without the table) until one says who sent the block. Pseudo-
/// headers precede regular fields (RFC 9113 8.3), so a regular name ends
/// the search.
pub(crate) fn block_lead(block: &[u8]) -> BlockLead {
    let mut c = Cursor::new(block);
    let classify = |name: &[u8]| match name {
        b":method" | b":scheme" | b":path" | b":authority" | b":protocol" => {
            Some(BlockLead::Request)
        }
        b":status" => Some(BlockLead::Response),
        _ => Some(BlockLead::Other),
    };
    let static_entry = |index: u64| {
        usize::try_from(index)
            .ok()
            .and_then(|i| i.checked_sub(1))
            .and_then(|i| STATIC_TABLE.get(i))
    };
    let truncated = |e: HpackError| match e {
        HpackError::Truncated => BlockLead::Incomplete,
        _ => BlockLead::Other,
    };
    for _ in 0..LEAD_FIELDS {
        let Some(b) = c.peek() else {
            return BlockLead::Incomplete;
        };
        let lead = if b & 0x80 != 0 {
            match integer(&mut c, 7) {
                Ok(0) => return BlockLead::Other,
                Ok(index) => static_entry(index).and_then(|&(name, _)| classify(name.as_bytes())),
                Err(e) => return truncated(e),
            }
        } else if b & 0xe0 == 0x20 {
            if let Err(e) = integer(&mut c, 5) {
                return truncated(e);
            }
            None
        } else {
            let index = match integer(&mut c, if b & 0xc0 == 0x40 { 6 } else { 4 }) {
                Ok(index) => index,
                Err(e) => return truncated(e),
            };
            let lead = if index == 0 {
                match string(&mut c) {
                    Ok(name) => classify(&name),
                    Err(e) => return truncated(e),
                }
            } else {
                static_entry(index).and_then(|&(name, _)| classify(name.as_bytes()))
            };
            if lead.is_none() {
                // A dynamic name: skip the value, undecoded.
                let skipped = integer(&mut c, 7).and_then(|len| {
                    let len = usize::try_from(len).map_err(|_| HpackError::IntegerOverflow)?;
                    c.skip(len).ok_or(HpackError::Truncated)
                });
                if let Err(e) = skipped {
                    return truncated(e);
                }
            }
            lead
        };
        if let Some(lead) = lead {
            return lead;
        }
    }
    BlockLead::Other
}

/// Why a header block could not be decoded. The sender's peer would fail the
/// connection (COMPRESSION_ERROR); the observer drops the block and counts
/// the table as out of step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HpackError {
    /// Index 0, or past a table known to be complete.
    InvalidIndex,
    /// An integer over 2^32.
    IntegerOverflow,
    /// Bad Huffman data.
    InvalidHuffman,
    /// A representation runs past the end of a whole block.
    Truncated,
    /// A dynamic table size update after the first field.
    LateSizeUpdate,
}

/// One decoded field, borrowed from the block, the table or a scratch
/// buffer.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Field<'a> {
    Known {
        name: &'a [u8],
        value: &'a [u8],
        /// Sent as "never indexed": the sender marked the value sensitive.
        never_indexed: bool,
    },
    /// A field whose name (or whole entry) lies in the unknown part of the
    /// dynamic table.
    Unknown,
}

/// What decoding a block did besides handing out fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct BlockOutcome {
    /// Fields handed out as [`Field::Unknown`].
    pub unknown: u32,
    /// The block is invalid; the fields handed out before are not reliable.
    pub error: Option<HpackError>,
    /// A size update above the receiver's SETTINGS_HEADER_TABLE_SIZE.
    pub size_update_over_setting: bool,
    /// The table was known to be complete before this block and no longer is.
    pub desynced: bool,
}

#[derive(Debug)]
struct Entry {
    /// `None` when the name came from an unknown entry.
    name: Option<Box<[u8]>>,
    value: Box<[u8]>,
    /// RFC 7541 size; a lower bound when the name is unknown.
    size: usize,
}

/// The sender's dynamic table as far as it is known.
#[derive(Debug)]
struct DynamicTable {
    /// Newest first.
    entries: VecDeque<Entry>,
    /// Sum of entry sizes.
    size: usize,
    /// Memory held by entries, for `state_bytes`.
    bytes: usize,
    /// The maximum size the encoder set, when known.
    max_size: Option<usize>,
    /// Largest size mirrored (memory bound).
    cap: usize,
    /// No entry of the sender's table lies past `entries`.
    complete: bool,
}

impl DynamicTable {
    /// Evicts the oldest entries until `incoming` more bytes fit in the
    /// limit.
    fn evict_for(&mut self, incoming: usize) {
        let limit = self.limit();
        while self.size + incoming > limit {
            let Some(e) = self.entries.pop_back() else {
                break;
            };
            // Evicted only for want of memory: the sender still has it.
            if self.max_size.is_none_or(|m| self.size + incoming <= m) {
                self.complete = false;
            }
            self.size -= e.size;
            self.bytes -= memory_of(&e);
        }
    }

    fn limit(&self) -> usize {
        self.max_size.unwrap_or(self.cap).min(self.cap)
    }

    fn insert(&mut self, name: Option<Box<[u8]>>, value: Box<[u8]>, name_len: usize) {
        let size = name_len + value.len() + ENTRY_OVERHEAD;
        if self.max_size.is_some_and(|m| size > m) {
            // RFC 7541 4.4: the table is emptied and the entry not added.
            self.clear();
            self.complete = true;
            return;
        }
        if size > self.limit() {
            self.clear();
            self.complete = false;
            return;
        }
        self.evict_for(size);
        let entry = Entry { name, value, size };
        self.size += size;
        self.bytes += memory_of(&entry);
        self.entries.push_front(entry);
        self.recheck_complete();
    }

    fn set_max_size(&mut self, max: usize) {
        self.max_size = Some(max);
        self.evict_for(0);
        self.recheck_complete();
    }

    /// Complete again when nothing older can fit next to what is known.
    fn recheck_complete(&mut self) {
        if let Some(m) = self.max_size
            && m <= self.cap
            && self.size + ENTRY_OVERHEAD > m
        {
            self.complete = true;
        }
    }

    fn clear(&mut self) {
        self.entries.clear();
        self.size = 0;
        self.bytes = 0;
    }
}

fn memory_of(e: &Entry) -> usize {
    e.name.as_ref().map_or(0, |n| n.len()) + e.value.len() + ENTRY_MEMORY_OVERHEAD
}

/// Where an index points.
enum Lookup<'a> {
    Found(&'a [u8], &'a [u8]),
    /// Entry with an unknown name (value known but useless alone).
    NameUnknown,
    /// Past the known entries of an incomplete table.
    Unknown,
}

/// The HPACK decoder of one sending side of one connection.
#[derive(Debug)]
pub(crate) struct HpackDecoder {
    table: DynamicTable,
    /// SETTINGS_HEADER_TABLE_SIZE the receiving side advertised, if seen.
    allowed: Option<usize>,
}

impl HpackDecoder {
    /// A decoder from the start of a connection (empty table, maximum size
    /// 4096) when `from_start`, otherwise one that joined mid-way.
    pub(crate) fn new(from_start: bool, cap: usize) -> Self {
        Self {
            table: DynamicTable {
                entries: VecDeque::new(),
                size: 0,
                bytes: 0,
                max_size: from_start.then_some(super::DEFAULT_HEADER_TABLE_SIZE as usize),
                cap,
                complete: from_start,
            },
            allowed: None,
        }
    }

    /// The receiving side advertised SETTINGS_HEADER_TABLE_SIZE.
    pub(crate) fn set_allowed(&mut self, size: u32) {
        self.allowed = Some(size as usize);
    }

    /// Header blocks were lost: the table's content and size are unknown.
    /// Returns true when it was known before.
    pub(crate) fn desync(&mut self) -> bool {
        let was = self.table.complete;
        self.table.clear();
        self.table.complete = false;
        self.table.max_size = None;
        was
    }

    pub(crate) fn is_complete(&self) -> bool {
        self.table.complete
    }

    /// Bytes held by the table.
    pub(crate) fn state_bytes(&self) -> usize {
        self.table.bytes + std::mem::size_of::<Self>()
    }

    /// Decodes a header block, handing each field to `on_field` in order.
    /// `truncated`: the block is only a prefix of the one sent; its fields are
    /// decoded as far as they go and the table is then out of step.
    pub(crate) fn decode_block(
        &mut self,
        block: &[u8],
        truncated: bool,
        on_field: &mut dyn FnMut(Field<'_>),
    ) -> BlockOutcome {
        let was_complete = self.table.complete;
        let mut out = BlockOutcome::default();
        let mut c = Cursor::new(block);
        let mut first = true;
        while !c.is_empty() {
            match self.representation(&mut c, first, &mut out, on_field) {
                Ok(field) => first &= !field,
                Err(HpackError::Truncated) if truncated => break,
                Err(e) => {
                    out.error = Some(e);
                    self.desync();
                    break;
                }
            }
        }
        if truncated {
            self.desync();
        }
        out.desynced = was_complete && !self.table.complete;
        out
    }

    /// Decodes one representation; true when it was a field (not a size
    /// update).
    fn representation(
        &mut self,
        c: &mut Cursor<'_>,
        first: bool,
        out: &mut BlockOutcome,
        on_field: &mut dyn FnMut(Field<'_>),
    ) -> Result<bool, HpackError> {
        let b = c.peek().ok_or(HpackError::Truncated)?;
        if b & 0x80 != 0 {
            // Indexed field (6.1).
            let index = integer(c, 7)?;
            match self.lookup(index)? {
                Lookup::Found(name, value) => on_field(Field::Known {
                    name,
                    value,
                    never_indexed: false,
                }),
                Lookup::NameUnknown | Lookup::Unknown => {
                    out.unknown += 1;
                    on_field(Field::Unknown);
                }
            }
            return Ok(true);
        }
        if b & 0xe0 == 0x20 {
            // Dynamic table size update (6.3), only before the first field.
            let size = integer(c, 5)?;
            if !first {
                return Err(HpackError::LateSizeUpdate);
            }
            if self.allowed.is_some_and(|a| size > a as u64) {
                out.size_update_over_setting = true;
            }
            self.table
                .set_max_size(usize::try_from(size).unwrap_or(usize::MAX));
            return Ok(false);
        }
        // Literal with incremental indexing (6.2.1, 6-bit index), without
        // indexing (6.2.2) or never indexed (6.2.3, 4-bit index).
        let indexing = b & 0xc0 == 0x40;
        let never_indexed = b & 0xf0 == 0x10;
        let index = integer(c, if indexing { 6 } else { 4 })?;
        let literal_name = if index == 0 { Some(string(c)?) } else { None };
        let value = string(c)?;
        let name: Option<&[u8]> = match &literal_name {
            Some(name) => Some(name),
            None => match self.lookup(index)? {
                Lookup::Found(name, _) => Some(name),
                Lookup::NameUnknown | Lookup::Unknown => None,
            },
        };
        match name {
            Some(name) => on_field(Field::Known {
                name,
                value: &value,
                never_indexed,
            }),
            None => {
                out.unknown += 1;
                on_field(Field::Unknown);
            }
        }
        if indexing {
            // Copied only now: the name may live in the table it goes into.
            let name_len = name.map_or(0, <[u8]>::len);
            let name = name.map(Box::<[u8]>::from);
            self.table
                .insert(name, value.into_owned().into_boxed_slice(), name_len);
        }
        Ok(true)
    }

    fn lookup(&self, index: u64) -> Result<Lookup<'_>, HpackError> {
        if index == 0 {
            return Err(HpackError::InvalidIndex);
        }
        if let Some(&(name, value)) = usize::try_from(index - 1)
            .ok()
            .and_then(|i| STATIC_TABLE.get(i))
        {
            return Ok(Lookup::Found(name.as_bytes(), value.as_bytes()));
        }
        let dynamic = usize::try_from(index - 1 - STATIC_TABLE.len() as u64).unwrap_or(usize::MAX);
        match self.table.entries.get(dynamic) {
            Some(Entry {
                name: Some(name),
                value,
                ..
            }) => Ok(Lookup::Found(name, value)),
            Some(_) => Ok(Lookup::NameUnknown),
            None if self.table.complete => Err(HpackError::InvalidIndex),
            None => Ok(Lookup::Unknown),
        }
    }
}

/// An integer with an `n`-bit prefix (RFC 7541 5.1), at most 2^32.
fn integer(c: &mut Cursor<'_>, n: u32) -> Result<u64, HpackError> {
    let mask = u8::MAX >> (8 - n);
    let mut value = u64::from(c.u8().ok_or(HpackError::Truncated)? & mask);
    if value < u64::from(mask) {
        return Ok(value);
    }
    let mut shift = 0;
    loop {
        let b = c.u8().ok_or(HpackError::Truncated)?;
        value += u64::from(b & 0x7f) << shift;
        if value > 1 << 32 {
            return Err(HpackError::IntegerOverflow);
        }
        if b & 0x80 == 0 {
            return Ok(value);
        }
        shift += 7;
        if shift > 28 {
            return Err(HpackError::IntegerOverflow);
        }
    }
}

/// A string literal (RFC 7541 5.2), Huffman-decoded if flagged.
fn string<'a>(c: &mut Cursor<'a>) -> Result<Cow<'a, [u8]>, HpackError> {
    let huffman = c.peek().ok_or(HpackError::Truncated)? & 0x80 != 0;
    let len = usize::try_from(integer(c, 7)?).map_err(|_| HpackError::IntegerOverflow)?;
    let raw = c.take(len).ok_or(HpackError::Truncated)?;
    if !huffman {
        return Ok(Cow::Borrowed(raw));
    }
    let mut out = Vec::new();
    huffman::decode(raw, &mut out).map_err(|_| HpackError::InvalidHuffman)?;
    Ok(Cow::Owned(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let digits: Vec<u8> = s.bytes().filter(u8::is_ascii_hexdigit).collect();
        digits
            .chunks(2)
            .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap())
            .collect()
    }

    /// Decodes `block` into "name: value" lines ("?" for unknown fields).
    fn run(d: &mut HpackDecoder, block: &[u8]) -> (Vec<String>, BlockOutcome) {
        let mut fields = Vec::new();
        let outcome = d.decode_block(block, false, &mut |f| {
            fields.push(match f {
                Field::Known {
                    name,
                    value,
                    never_indexed,
                } => format!(
                    "{}: {}{}",
                    String::from_utf8_lossy(name),
                    String::from_utf8_lossy(value),
                    if never_indexed {
                        " (never indexed)"
                    } else {
                        ""
                    }
                ),
                Field::Unknown => "?".into(),
            })
        });
        (fields, outcome)
    }

    /// (name, value) of the table, newest first, and its size.
    fn table(d: &HpackDecoder) -> (Vec<(String, String)>, usize) {
        let entries = d
            .table
            .entries
            .iter()
            .map(|e| {
                (
                    e.name
                        .as_ref()
                        .map_or("?".into(), |n| String::from_utf8_lossy(n).into_owned()),
                    String::from_utf8_lossy(&e.value).into_owned(),
                )
            })
            .collect();
        (entries, d.table.size)
    }

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn integers_rfc_7541_c1() {
        let cases: &[(&[u8], u32, Result<u64, HpackError>)] = &[
            (&[0x0a], 5, Ok(10)),
            (&[0x1f, 0x9a, 0x0a], 5, Ok(1337)),
            (&[0x2a], 8, Ok(42)),
            (&[0x1f], 5, Err(HpackError::Truncated)),
            (
                &[0x1f, 0xff, 0xff, 0xff, 0xff, 0x7f],
                5,
                Err(HpackError::IntegerOverflow),
            ),
            (
                &[0x1f, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
                5,
                Err(HpackError::IntegerOverflow),
            ),
        ];
        for (input, n, want) in cases {
            assert_eq!(integer(&mut Cursor::new(input), *n), *want, "{input:?}");
        }
    }

    #[test]
    fn field_representations_rfc_7541_c2() {
        // C.2.1 literal with indexing.
        let mut d = HpackDecoder::new(true, 4096);
        let (f, o) = run(
            &mut d,
            &hex("400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572"),
        );
        assert_eq!(f, ["custom-key: custom-header"]);
        assert_eq!(o, BlockOutcome::default());
        assert_eq!(table(&d), (pairs(&[("custom-key", "custom-header")]), 55));
        // C.2.2 without indexing.
        let mut d = HpackDecoder::new(true, 4096);
        let (f, _) = run(&mut d, &hex("040c 2f73 616d 706c 652f 7061 7468"));
        assert_eq!(f, [":path: /sample/path"]);
        assert_eq!(table(&d), (vec![], 0));
        // C.2.3 never indexed.
        let (f, _) = run(&mut d, &hex("1008 7061 7373 776f 7264 0673 6563 7265 74"));
        assert_eq!(f, ["password: secret (never indexed)"]);
        assert_eq!(table(&d), (vec![], 0));
        // C.2.4 indexed.
        let (f, _) = run(&mut d, &hex("82"));
        assert_eq!(f, [":method: GET"]);
    }

    /// RFC 7541 C.3 (requests, no Huffman) and C.4 (same with Huffman).
    #[test]
    fn requests_rfc_7541_c3_c4() {
        for blocks in [
            [
                "8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d",
                "8286 84be 5808 6e6f 2d63 6163 6865",
                "8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65",
            ],
            [
                "8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff",
                "8286 84be 5886 a8eb 1064 9cbf",
                "8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf",
            ],
        ] {
            let mut d = HpackDecoder::new(true, 4096);
            let (f, _) = run(&mut d, &hex(blocks[0]));
            assert_eq!(
                f,
                [
                    ":method: GET",
                    ":scheme: http",
                    ":path: /",
                    ":authority: www.example.com"
                ]
            );
            assert_eq!(table(&d), (pairs(&[(":authority", "www.example.com")]), 57));
            let (f, _) = run(&mut d, &hex(blocks[1]));
            assert_eq!(
                f,
                [
                    ":method: GET",
                    ":scheme: http",
                    ":path: /",
                    ":authority: www.example.com",
                    "cache-control: no-cache"
                ]
            );
            assert_eq!(
                table(&d),
                (
                    pairs(&[
                        ("cache-control", "no-cache"),
                        (":authority", "www.example.com")
                    ]),
                    110
                )
            );
            let (f, _) = run(&mut d, &hex(blocks[2]));
            assert_eq!(
                f,
                [
                    ":method: GET",
                    ":scheme: https",
                    ":path: /index.html",
                    ":authority: www.example.com",
                    "custom-key: custom-value"
                ]
            );
            assert_eq!(
                table(&d),
                (
                    pairs(&[
                        ("custom-key", "custom-value"),
                        ("cache-control", "no-cache"),
                        (":authority", "www.example.com")
                    ]),
                    164
                )
            );
        }
    }

    /// RFC 7541 C.5 (responses with evictions, table size 256, no Huffman)
    /// and C.6 (same with Huffman).
    #[test]
    fn responses_with_eviction_rfc_7541_c5_c6() {
        for blocks in [
            [
                "4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3120 474d 546e 1768 7474 7073 3a2f 2f77 7777 2e65 7861 6d70 6c65 2e63 6f6d",
                "4803 3330 37c1 c0bf",
                "88c1 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3220 474d 54c0 5a04 677a 6970 7738 666f 6f3d 4153 444a 4b48 514b 425a 584f 5157 454f 5049 5541 5851 5745 4f49 553b 206d 6178 2d61 6765 3d33 3630 303b 2076 6572 7369 6f6e 3d31",
            ],
            [
                "4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6 2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3",
                "4883 640e ffc1 c0bf",
                "88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b d9ab 77ad 94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f 9587 3160 65c0 03ed 4ee5 b106 3d50 07",
            ],
        ] {
            let mut d = HpackDecoder::new(true, 4096);
            // The peer set SETTINGS_HEADER_TABLE_SIZE 256; the examples assume
            // the encoder uses it (the mirror follows the wire, so say so).
            d.table.set_max_size(256);
            let (f, _) = run(&mut d, &hex(blocks[0]));
            assert_eq!(
                f,
                [
                    ":status: 302",
                    "cache-control: private",
                    "date: Mon, 21 Oct 2013 20:13:21 GMT",
                    "location: https://www.example.com"
                ]
            );
            assert_eq!(table(&d).1, 222);
            let (f, _) = run(&mut d, &hex(blocks[1]));
            assert_eq!(
                f,
                [
                    ":status: 307",
                    "cache-control: private",
                    "date: Mon, 21 Oct 2013 20:13:21 GMT",
                    "location: https://www.example.com"
                ]
            );
            assert_eq!(
                table(&d),
                (
                    pairs(&[
                        (":status", "307"),
                        ("location", "https://www.example.com"),
                        ("date", "Mon, 21 Oct 2013 20:13:21 GMT"),
                        ("cache-control", "private")
                    ]),
                    222
                )
            );
            let (f, o) = run(&mut d, &hex(blocks[2]));
            assert_eq!(
                f,
                [
                    ":status: 200",
                    "cache-control: private",
                    "date: Mon, 21 Oct 2013 20:13:22 GMT",
                    "location: https://www.example.com",
                    "content-encoding: gzip",
                    "set-cookie: foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1"
                ]
            );
            assert_eq!(o, BlockOutcome::default());
            assert_eq!(
                table(&d),
                (
                    pairs(&[
                        (
                            "set-cookie",
                            "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1"
                        ),
                        ("content-encoding", "gzip"),
                        ("date", "Mon, 21 Oct 2013 20:13:22 GMT")
                    ]),
                    215
                )
            );
            assert!(d.is_complete());
        }
    }

    #[test]
    fn joined_mid_way_decodes_what_it_can() {
        let mut d = HpackDecoder::new(false, 4096);
        // Index 62 refers to an entry from before the join; a new entry
        // (custom-key) then takes index 62 and pushes the unknown one to 63.
        let (f, o) = run(
            &mut d,
            &hex(
                "82 be 400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572 be bf 7f00 0178",
            ),
        );
        assert_eq!(
            f,
            [
                ":method: GET",
                "?",
                "custom-key: custom-header",
                "custom-key: custom-header",
                "?",
                "?"
            ]
        );
        assert_eq!(o.unknown, 3);
        assert_eq!(o.error, None);
        // The literal with an unknown indexed name (64 = 0x7f 0x01... here
        // 0x7f00 = index 63) was inserted with its name unknown.
        assert_eq!(
            table(&d).0,
            pairs(&[("?", "x"), ("custom-key", "custom-header")])
        );
        assert!(!d.is_complete());
        // A size update to 0 empties the sender's table: complete again.
        let (_, o) = run(&mut d, &hex("20 3fe1 1f 82"));
        assert_eq!((o.unknown, o.error), (0, None));
        assert!(d.is_complete());
        assert_eq!(
            run(&mut d, &hex("be")).1.error,
            Some(HpackError::InvalidIndex)
        );
    }

    #[test]
    fn a_known_maximum_filled_by_known_entries_completes_the_table() {
        let mut d = HpackDecoder::new(false, 4096);
        // Size update to 100, then two entries of 32 + 2 + 10 = 44 bytes:
        // 88 + 32 > 100, so nothing older can be left.
        let (_, o) = run(&mut d, &hex("3f45 82"));
        assert_eq!(o.error, None);
        assert!(!d.is_complete());
        let lit = hex("4002 6b31 0a30 3132 3334 3536 3738 39");
        run(&mut d, &lit);
        assert!(!d.is_complete());
        run(&mut d, &lit);
        assert!(d.is_complete(), "{:?}", table(&d));
    }

    #[test]
    fn errors_and_truncation_desync_the_table() {
        let mut d = HpackDecoder::new(true, 4096);
        run(&mut d, &hex("4001 6101 62"));
        assert_eq!(table(&d).0, pairs(&[("a", "b")]));
        // A size update after a field.
        let (_, o) = run(&mut d, &hex("82 20"));
        assert_eq!(o.error, Some(HpackError::LateSizeUpdate));
        assert!(o.desynced && !d.is_complete());
        let mut d = HpackDecoder::new(true, 4096);
        // Truncated: fields before the cut are handed out.
        let mut fields = 0;
        let o = d.decode_block(&hex("82 84 4005 6162"), true, &mut |_| fields += 1);
        assert_eq!((fields, o.error, o.desynced), (2, None, true));
        // The same bytes as a whole block are an error.
        let mut d = HpackDecoder::new(true, 4096);
        assert_eq!(
            run(&mut d, &hex("82 84 4005 6162")).1.error,
            Some(HpackError::Truncated)
        );
        assert_eq!(
            run(&mut d, &hex("80")).1.error,
            Some(HpackError::InvalidIndex)
        );
        // A size update beyond the receiver's setting is applied and flagged.
        let mut d = HpackDecoder::new(true, 65536);
        d.set_allowed(4096);
        let (_, o) = run(&mut d, &hex("3fe1 3f 82"));
        assert!(o.size_update_over_setting);
        assert_eq!(d.table.max_size, Some(8192));
    }

    #[test]
    fn memory_cap_smaller_than_the_senders_table() {
        // The sender's table is 4096 but only 100 bytes are mirrored: an
        // entry evicted for want of memory becomes unknown, not an error.
        let mut d = HpackDecoder::new(true, 100);
        let lit = hex("4002 6b31 0a30 3132 3334 3536 3738 39");
        run(&mut d, &lit);
        run(&mut d, &lit);
        run(&mut d, &lit);
        assert_eq!(table(&d).0.len(), 2);
        assert!(!d.is_complete());
        let (f, o) = run(&mut d, &hex("be c0"));
        assert_eq!(f, ["k1: 0123456789", "?"]);
        assert_eq!((o.unknown, o.error), (1, None));
    }
}
