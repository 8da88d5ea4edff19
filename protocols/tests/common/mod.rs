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
                        self.events.push(Ok(message));
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
            self.events.push(Ok(message));
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

pub fn headers(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
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
        reason: String::new(),
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
        method: String::new(),
        path: String::new(),
        status,
        reason: reason.into(),
        headers: headers(header_pairs),
        content_type: content_type(header_pairs),
        body: body.to_vec(),
        body_size: body.len() as u64,
        body_incomplete: false,
    }
}

fn content_type(header_pairs: &[(&str, &str)]) -> String {
    header_pairs
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-type"))
        .map(|(_, v)| v.to_string())
        .unwrap_or_default()
}
