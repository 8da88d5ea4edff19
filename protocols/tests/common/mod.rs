//! Shared test helpers: a model of the agent's caller loop and message
//! builders.
#![allow(dead_code)] // each test binary uses a different subset

use sonde_protocols::MessageKind;
use sonde_protocols::http::{Decoded, HttpConfig, HttpDecoder, HttpError, HttpMessage};

/// What the caller loop saw, in order.
pub type Events = Vec<Result<HttpMessage, HttpError>>;

/// Emulates the agent: keeps unconsumed bytes, appends each chunk, loops
/// `decode` until `NeedMore`, stops at the first error, and calls `finish` at
/// the end of the stream. `methods` are the request methods answered by
/// successive final (non-1xx) responses.
pub struct Caller<'m> {
    pub decoder: HttpDecoder,
    buf: Vec<u8>,
    methods: &'m [&'m str],
    answered: usize,
    pub events: Events,
    failed: bool,
}

impl<'m> Caller<'m> {
    pub fn new(kind: MessageKind, config: HttpConfig, methods: &'m [&'m str]) -> Self {
        Self {
            decoder: HttpDecoder::new(kind, config),
            buf: Vec::new(),
            methods,
            answered: 0,
            events: Vec::new(),
            failed: false,
        }
    }

    pub fn push(&mut self, chunk: &[u8]) {
        if self.failed {
            return;
        }
        self.buf.extend_from_slice(chunk);
        loop {
            let method = self.methods.get(self.answered).copied();
            match self.decoder.decode(&self.buf, method) {
                Ok(Decoded::NeedMore) => return,
                Ok(Decoded::Progress { consumed, message }) => {
                    assert!(consumed <= self.buf.len(), "consumed beyond input");
                    assert!(
                        consumed > 0 || message.is_some(),
                        "Progress without progress"
                    );
                    self.buf.drain(..consumed);
                    if let Some(message) = message {
                        if !(100..200).contains(&message.status) {
                            self.answered += 1;
                        }
                        self.events.push(Ok(*message));
                    }
                }
                Err(err) => {
                    assert!(self.decoder.is_idle(), "not idle after error");
                    self.events.push(Err(err));
                    self.failed = true;
                    return;
                }
            }
        }
    }

    pub fn finish(mut self) -> Events {
        if !self.failed
            && let Some(message) = self.decoder.finish()
        {
            self.events.push(Ok(*message));
        }
        self.events
    }
}

/// Decodes `stream` fed in pieces of the given sizes (the last piece takes
/// whatever is left).
pub fn decode_split(
    kind: MessageKind,
    config: &HttpConfig,
    methods: &[&str],
    stream: &[u8],
    sizes: impl IntoIterator<Item = usize>,
) -> Events {
    let mut caller = Caller::new(kind, config.clone(), methods);
    let mut rest = stream;
    for size in sizes {
        if rest.is_empty() {
            break;
        }
        let (chunk, tail) = rest.split_at(size.min(rest.len()));
        caller.push(chunk);
        rest = tail;
    }
    caller.push(rest);
    caller.finish()
}

/// Decodes `stream` delivered in one piece.
pub fn decode_whole(kind: MessageKind, methods: &[&str], stream: &[u8]) -> Events {
    decode_split(kind, &HttpConfig::default(), methods, stream, [])
}

/// Deterministic pseudo-random numbers (Knuth's MMIX LCG); tests must not
/// depend on an RNG crate or on run-to-run randomness.
pub struct Lcg(pub u64);

impl Lcg {
    pub fn next_u32(&mut self) -> u32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) as u32
    }

    /// Uniform-ish in `0..n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        self.next_u32() as usize % n
    }
}

pub fn headers(pairs: &[(&str, &str)]) -> sonde_protocols::Headers {
    pairs.iter().copied().collect()
}

pub fn request(
    method: &str,
    path: &str,
    header_pairs: &[(&str, &str)],
    body: &[u8],
) -> HttpMessage {
    HttpMessage {
        kind: MessageKind::Request,
        minor_version: 1,
        method: method.into(),
        path: path.into(),
        status: 0,
        reason: Default::default(),
        headers: headers(header_pairs),
        content_type: content_type(header_pairs),
        body: body.to_vec(),
        body_size: body.len() as u64,
        body_incomplete: false,
    }
}

pub fn response(
    status: u16,
    reason: &str,
    header_pairs: &[(&str, &str)],
    body: &[u8],
) -> HttpMessage {
    HttpMessage {
        kind: MessageKind::Response,
        minor_version: 1,
        method: Default::default(),
        path: Default::default(),
        status,
        reason: reason.into(),
        headers: headers(header_pairs),
        content_type: content_type(header_pairs),
        body: body.to_vec(),
        body_size: body.len() as u64,
        body_incomplete: false,
    }
}

fn content_type(header_pairs: &[(&str, &str)]) -> compact_str::CompactString {
    header_pairs
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-type"))
        .map(|&(_, v)| v.into())
        .unwrap_or_default()
}

/// Feeds `stream` in pieces of the given sizes (the last piece takes what is
/// left) to a decoder with the crate's common `decode` convention, the way
/// the agent does: keeps unconsumed bytes, loops until `NeedMore`, stops at
/// the first error. Asserts the convention's invariants.
pub fn feed_chunks<T, E>(
    stream: &[u8],
    sizes: impl IntoIterator<Item = usize>,
    mut decode: impl FnMut(&[u8]) -> Result<sonde_protocols::Decoded<T>, E>,
) -> Vec<Result<T, E>> {
    use sonde_protocols::Decoded;
    let mut buf: Vec<u8> = Vec::new();
    let mut out = Vec::new();
    let mut rest = stream;
    let mut sizes = sizes.into_iter();
    loop {
        let size = sizes.next().unwrap_or(usize::MAX);
        let (chunk, tail) = rest.split_at(size.min(rest.len()));
        rest = tail;
        buf.extend_from_slice(chunk);
        loop {
            match decode(&buf) {
                Ok(Decoded::NeedMore) => break,
                Ok(Decoded::Progress { consumed, message }) => {
                    assert!(consumed <= buf.len(), "consumed beyond input");
                    assert!(consumed > 0 || message.is_some(), "no progress");
                    buf.drain(..consumed);
                    if let Some(m) = message {
                        out.push(Ok(m));
                    }
                }
                Err(e) => {
                    out.push(Err(e));
                    return out;
                }
            }
        }
        if rest.is_empty() {
            return out;
        }
    }
}

/// Asserts that feeding `stream` in chunks of every size up to 64 and in
/// random patterns gives the same result as feeding it at once, which is
/// returned. `decoder` makes a fresh decode function.
pub fn assert_chunking_equivalent<T, E, D>(
    stream: &[u8],
    mut decoder: impl FnMut() -> D,
) -> Vec<Result<T, E>>
where
    T: std::fmt::Debug + PartialEq,
    E: std::fmt::Debug + PartialEq,
    D: FnMut(&[u8]) -> Result<sonde_protocols::Decoded<T>, E>,
{
    let whole = feed_chunks(stream, [], decoder());
    for size in 1..=stream.len().min(64) {
        let got = feed_chunks(stream, std::iter::repeat(size), decoder());
        assert_eq!(got, whole, "chunk size {size}");
    }
    let mut rng = Lcg(0x5eed);
    for pattern in 0..32 {
        let sizes: Vec<usize> = (0..stream.len()).map(|_| 1 + rng.below(40)).collect();
        let got = feed_chunks(stream, sizes, decoder());
        assert_eq!(got, whole, "random pattern {pattern}");
    }
    whole
}

/// Mutates `seed` with bit flips, byte changes, inserted `tokens`, deletions,
/// duplications and truncation.
pub fn mutate(rng: &mut Lcg, seed: &[u8], tokens: &[&[u8]]) -> Vec<u8> {
    let mut data = seed.to_vec();
    for _ in 0..1 + rng.below(6) {
        let at = rng.below(data.len() + 1);
        match rng.below(6) {
            0 if at < data.len() => data[at] ^= 1 << rng.below(8),
            1 if at < data.len() => data[at] = rng.next_u32() as u8,
            2 if !tokens.is_empty() => {
                let token = tokens[rng.below(tokens.len())];
                data.splice(at..at, token.iter().copied());
            }
            3 => {
                let end = (at + rng.below(16)).min(data.len());
                data.drain(at..end);
            }
            4 => {
                let from = rng.below(data.len() + 1);
                let end = (from + rng.below(32)).min(data.len());
                let copy = data[from..end].to_vec();
                data.splice(at..at, copy);
            }
            _ => data.truncate(at),
        }
    }
    data
}

/// DNS wire builders.
pub mod dns {
    /// A name as plain labels.
    pub fn name(name: &str) -> Vec<u8> {
        let mut out = Vec::new();
        for label in name.split('.').filter(|l| !l.is_empty()) {
            out.push(label.len() as u8);
            out.extend_from_slice(label.as_bytes());
        }
        out.push(0);
        out
    }

    pub fn header(id: u16, flags: u16, counts: [u16; 4]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&id.to_be_bytes());
        out.extend_from_slice(&flags.to_be_bytes());
        for c in counts {
            out.extend_from_slice(&c.to_be_bytes());
        }
        out
    }

    /// A recursive query (RD) for `name`/`qtype`, class IN.
    pub fn query(id: u16, qname: &str, qtype: u16) -> Vec<u8> {
        let mut out = header(id, 0x0100, [1, 0, 0, 0]);
        out.extend(name(qname));
        out.extend_from_slice(&qtype.to_be_bytes());
        out.extend_from_slice(&1u16.to_be_bytes());
        out
    }

    /// A resource record with an owner given as raw bytes (so pointers can
    /// be used).
    pub fn record(owner: &[u8], rtype: u16, ttl: u32, rdata: &[u8]) -> Vec<u8> {
        let mut out = owner.to_vec();
        out.extend_from_slice(&rtype.to_be_bytes());
        out.extend_from_slice(&1u16.to_be_bytes());
        out.extend_from_slice(&ttl.to_be_bytes());
        out.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        out.extend_from_slice(rdata);
        out
    }

    /// The 2-byte length prefix of DNS over TCP.
    pub fn tcp(msg: &[u8]) -> Vec<u8> {
        let mut out = (msg.len() as u16).to_be_bytes().to_vec();
        out.extend_from_slice(msg);
        out
    }
}

/// MySQL wire builders.
pub mod mysql {
    /// One packet: 3-byte length, sequence id, payload.
    pub fn packet(seq: u8, payload: &[u8]) -> Vec<u8> {
        let len = payload.len() as u32;
        let mut out = len.to_le_bytes()[..3].to_vec();
        out.push(seq);
        out.extend_from_slice(payload);
        out
    }

    pub fn command(cmd: u8, body: &[u8]) -> Vec<u8> {
        let mut payload = vec![cmd];
        payload.extend_from_slice(body);
        packet(0, &payload)
    }

    /// A length-encoded string.
    pub fn lenenc_str(s: &[u8]) -> Vec<u8> {
        let mut out = lenenc_int(s.len() as u64);
        out.extend_from_slice(s);
        out
    }

    pub fn lenenc_int(n: u64) -> Vec<u8> {
        match n {
            0..=0xfa => vec![n as u8],
            0xfb..=0xffff => {
                let mut v = vec![0xfc];
                v.extend_from_slice(&(n as u16).to_le_bytes());
                v
            }
            0x10000..=0xff_ffff => {
                let mut v = vec![0xfd];
                v.extend_from_slice(&(n as u32).to_le_bytes()[..3]);
                v
            }
            _ => {
                let mut v = vec![0xfe];
                v.extend_from_slice(&n.to_le_bytes());
                v
            }
        }
    }

    /// A column definition (protocol 41) of `name` with `column_type`.
    pub fn column(seq: u8, table: &str, name: &str, column_type: u8) -> Vec<u8> {
        let mut p = Vec::new();
        for s in ["def", "shop", table, table, name, name] {
            p.extend(lenenc_str(s.as_bytes()));
        }
        p.push(0x0c);
        p.extend_from_slice(&33u16.to_le_bytes()); // charset
        p.extend_from_slice(&255u32.to_le_bytes()); // column length
        p.push(column_type);
        p.extend_from_slice(&0u16.to_le_bytes()); // flags
        p.push(0); // decimals
        p.extend_from_slice(&[0, 0]);
        packet(seq, &p)
    }

    /// OK packet: header 0x00 (or 0xfe), affected rows, last insert id,
    /// status, warnings.
    pub fn ok(seq: u8, header: u8, affected: u64, insert_id: u64, status: u16) -> Vec<u8> {
        let mut p = vec![header];
        p.extend(lenenc_int(affected));
        p.extend(lenenc_int(insert_id));
        p.extend_from_slice(&status.to_le_bytes());
        p.extend_from_slice(&0u16.to_le_bytes());
        packet(seq, &p)
    }

    pub fn eof(seq: u8, status: u16) -> Vec<u8> {
        let mut p = vec![0xfe, 0, 0];
        p.extend_from_slice(&status.to_le_bytes());
        packet(seq, &p)
    }

    pub fn err(seq: u8, code: u16, state: &str, message: &str) -> Vec<u8> {
        let mut p = vec![0xff];
        p.extend_from_slice(&code.to_le_bytes());
        p.push(b'#');
        p.extend_from_slice(state.as_bytes());
        p.extend_from_slice(message.as_bytes());
        packet(seq, &p)
    }

    /// A server greeting (protocol 10) offering `caps` and `plugin`.
    pub fn greeting(version: &str, caps: u32, plugin: &str) -> Vec<u8> {
        let mut p = vec![10];
        p.extend_from_slice(version.as_bytes());
        p.push(0);
        p.extend_from_slice(&42u32.to_le_bytes()); // connection id
        p.extend_from_slice(b"abcdefgh"); // scramble part 1
        p.push(0);
        p.extend_from_slice(&(caps as u16).to_le_bytes());
        p.push(255); // charset
        p.extend_from_slice(&2u16.to_le_bytes()); // status
        p.extend_from_slice(&((caps >> 16) as u16).to_le_bytes());
        p.push(21); // auth data length
        p.extend_from_slice(&[0; 10]);
        p.extend_from_slice(b"ijklmnopqrst\0"); // scramble part 2
        p.extend_from_slice(plugin.as_bytes());
        p.push(0);
        packet(0, &p)
    }

    /// A handshake response (protocol 41) with a lenenc auth response.
    pub fn handshake_response(
        caps: u32,
        user: &str,
        auth: &[u8],
        db: Option<&str>,
        plugin: &str,
    ) -> Vec<u8> {
        let caps = if db.is_some() {
            caps | 1 << 3
        } else {
            caps & !(1 << 3)
        };
        let mut p = caps.to_le_bytes().to_vec();
        p.extend_from_slice(&(16u32 << 20).to_le_bytes()); // max packet
        p.push(255);
        p.extend_from_slice(&[0; 23]);
        p.extend_from_slice(user.as_bytes());
        p.push(0);
        p.extend(lenenc_str(auth));
        if let Some(db) = db {
            p.extend_from_slice(db.as_bytes());
            p.push(0);
        }
        p.extend_from_slice(plugin.as_bytes());
        p.push(0);
        // Connection attributes.
        let mut attrs = Vec::new();
        attrs.extend(lenenc_str(b"_client_name"));
        attrs.extend(lenenc_str(b"libmysql"));
        p.extend(lenenc_str(&attrs));
        packet(1, &p)
    }
}
