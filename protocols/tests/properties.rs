//! Properties over many inputs: chunked feeding is equivalent to feeding all
//! at once, and no input makes the decoder panic or break its invariants.

mod common;

use common::{Events, Lcg, decode_split};
use sonde_protocols::MessageKind::{self, Request, Response};
use sonde_protocols::http::{
    Decoded, GapOutcome, HttpConfig, HttpDecoder, HttpError, find_message_start,
};
use sonde_protocols::{Detection, Protocol, detect};

struct Golden {
    kind: MessageKind,
    methods: &'static [&'static str],
    stream: &'static [u8],
    /// Messages expected, and whether the stream ends in an error.
    messages: usize,
    error: Option<HttpError>,
}

const GOLDEN: &[Golden] = &[
    Golden {
        kind: Request,
        methods: &[],
        stream: b"GET /a HTTP/1.1\r\nHost: h\r\nAuthorization: x\r\n\r\n\
                  POST /b HTTP/1.1\r\nContent-Length: 11\r\n\r\nhello world\r\n\
                  PUT /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n\
                  3;e=1\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\nT: 1\r\n\r\n\
                  GET /d HTTP/1.0\r\n\r\n",
        messages: 4,
        error: None,
    },
    Golden {
        kind: Response,
        methods: &["POST", "HEAD", "DELETE", "GET", "GET", "GET"],
        stream: b"HTTP/1.1 100 Continue\r\n\r\n\
                  HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nbody\
                  HTTP/1.1 200 OK\r\nContent-Length: 999\r\n\r\n\
                  HTTP/1.1 204 No Content\r\n\r\n\
                  HTTP/1.1 304 Not Modified\r\n\r\n\
                  HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nSet-Cookie: s\r\n\r\n\
                  1\r\na\r\n2;x\r\nbc\r\n0\r\n\r\n\
                  HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end\r\n\r\n",
        messages: 7,
        error: None,
    },
    Golden {
        kind: Request,
        methods: &[],
        stream: b"GET /ok HTTP/1.1\r\n\r\nPOST /x HTTP/1.1\r\nContent-Length: 1x\r\n\r\n",
        messages: 1,
        error: Some(HttpError::InvalidContentLength),
    },
    Golden {
        kind: Response,
        methods: &["GET", "GET"],
        stream: b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n\
                  HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n5\r\nab",
        messages: 1,
        error: None, // truncated chunked body: dropped at finish
    },
    Golden {
        kind: Response,
        methods: &["GET"],
        stream: b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\nG\r\n",
        messages: 0,
        error: Some(HttpError::InvalidChunk),
    },
];

fn small_config() -> HttpConfig {
    HttpConfig {
        max_head_bytes: 256,
        max_headers: 8,
        body_prefix_bytes: 6,
        ..HttpConfig::default()
    }
}

fn check_golden(golden: &Golden, config: &HttpConfig) -> Events {
    let whole = decode_split(golden.kind, config, golden.methods, golden.stream, []);
    let messages = whole.iter().filter(|e| e.is_ok()).count();
    assert_eq!(messages, golden.messages, "{whole:#?}");
    assert_eq!(whole.last().and_then(|e| e.clone().err()), golden.error);
    whole
}

#[test]
fn chunked_feeding_is_equivalent() {
    for config in [HttpConfig::default(), small_config()] {
        for golden in GOLDEN {
            let whole = check_golden(golden, &config);
            let len = golden.stream.len();
            for size in 1..=len {
                let got = decode_split(
                    golden.kind,
                    &config,
                    golden.methods,
                    golden.stream,
                    std::iter::repeat(size),
                );
                assert_eq!(got, whole, "chunk size {size}");
            }
            let mut rng = Lcg(0x5eed);
            for pattern in 0..64 {
                let sizes: Vec<usize> = (0..len).map(|_| 1 + rng.below(40)).collect();
                let got = decode_split(golden.kind, &config, golden.methods, golden.stream, sizes);
                assert_eq!(got, whole, "random pattern {pattern}");
            }
        }
    }
}

/// Bytes that steer mutations towards interesting parser states.
const TOKENS: &[&[u8]] = &[
    b"\r\n",
    b"\n",
    b"\r\n\r\n",
    b" ",
    b":",
    b";",
    b",",
    b"0\r\n\r\n",
    b"ffffffffffffffff",
    b"Content-Length: ",
    b"Transfer-Encoding: chunked",
    b"Content-Length: 3, 4",
    b"GET / HTTP/1.1",
    b"HTTP/1.1 200 OK",
    b"HTTP/1.0 100 x",
    b"\xff\xfe",
    b"\0",
];

fn mutate(rng: &mut Lcg, seed: &[u8]) -> Vec<u8> {
    let mut data = seed.to_vec();
    for _ in 0..1 + rng.below(6) {
        let at = rng.below(data.len() + 1);
        match rng.below(6) {
            0 if at < data.len() => data[at] ^= 1 << rng.below(8),
            1 if at < data.len() => data[at] = rng.next_u32() as u8,
            2 => {
                let token = TOKENS[rng.below(TOKENS.len())];
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

/// Drives a decoder the way the agent and the fuzz targets do, checking
/// invariants; panics only on a broken invariant.
fn drive(kind: MessageKind, config: &HttpConfig, input: &[u8], rng: &mut Lcg) -> usize {
    let mut decoder = HttpDecoder::new(kind, config.clone());
    let mut buf: Vec<u8> = Vec::new();
    let mut rest = input;
    let mut messages = 0;
    let methods = [Some("GET"), Some("HEAD"), Some("CONNECT"), None];
    while !rest.is_empty() {
        let (chunk, tail) = rest.split_at(rest.len().min(1 + rng.below(64)));
        rest = tail;
        buf.extend_from_slice(chunk);
        if rng.below(16) == 0 {
            let gap = rng.below(40) as u64;
            if decoder.skip_gap(gap) == GapOutcome::MessageLost {
                assert!(decoder.is_idle());
                decoder.reset();
                buf.clear();
            }
        }
        loop {
            let method = methods[rng.below(methods.len())];
            match decoder.decode(&buf, method) {
                Ok(Decoded::NeedMore) => break,
                Ok(Decoded::Progress { consumed, message }) => {
                    assert!(consumed <= buf.len());
                    assert!(consumed > 0 || message.is_some());
                    buf.drain(..consumed);
                    if let Some(m) = message {
                        assert!(m.body.len() <= config.body_prefix_bytes);
                        assert!(m.body_size >= m.body.len() as u64);
                        assert!(m.headers.len() <= config.max_headers);
                        messages += 1;
                    }
                }
                Err(_) => {
                    assert!(decoder.is_idle());
                    match find_message_start(buf.get(1..).unwrap_or_default(), kind) {
                        Some(at) => {
                            buf.drain(..at + 1);
                        }
                        None => {
                            buf.clear();
                            break;
                        }
                    }
                }
            }
        }
        assert!(
            buf.len() <= config.max_head_bytes + 64,
            "caller buffer grew"
        );
    }
    if let Some(m) = decoder.finish() {
        assert!(m.body.len() <= config.body_prefix_bytes);
        messages += 1;
    }
    assert!(decoder.is_idle());
    messages
}

#[test]
fn no_panic_on_mutated_and_random_input() {
    let config = small_config();
    let seeds: Vec<&[u8]> = GOLDEN.iter().map(|g| g.stream).collect();
    let mut rng = Lcg(42);
    let mut messages = 0;
    const ROUNDS: usize = 300_000;
    for round in 0..ROUNDS {
        let input = if round % 8 == 0 {
            // Raw noise, mostly printable so that some of it parses.
            (0..rng.below(200))
                .map(|_| match rng.below(4) {
                    0 => rng.next_u32() as u8,
                    _ => b" \r\n:;0123456789abcdefGETHP/1."[rng.below(29)],
                })
                .collect()
        } else {
            let seed = seeds[rng.below(seeds.len())];
            mutate(&mut rng, seed)
        };
        let kind = if round % 2 == 0 { Request } else { Response };
        messages += drive(kind, &config, &input, &mut rng);
        if let Some(Detection { protocol, .. }) = detect(&input) {
            assert_eq!(protocol, Protocol::Http);
        }
        if let Some(at) = find_message_start(&input, kind) {
            assert!(at <= input.len());
        }
    }
    // The mutations must still reach deep states, or the test proves little.
    assert!(messages > ROUNDS / 3, "only {messages} messages decoded");
}

/// Regression (found by the http_request fuzz target): a head over the cap
/// with a malformed byte beyond the cap was InvalidHead when fed at once but
/// HeadTooLarge when split before the malformed byte.
#[test]
fn head_cap_error_does_not_depend_on_splits() {
    let config = HttpConfig::default();
    let stream = [
        b"GET / HTTP/1.1\r\nX: ".as_slice(),
        &[b'a'; 20_000],
        b"\r\nBad Name: v\r\n\r\n",
    ]
    .concat();
    for sizes in [
        vec![],
        vec![100],
        vec![16 * 1024],
        vec![16 * 1024 + 1],
        vec![7; 5000],
    ] {
        let got = decode_split(Request, &config, &[], &stream, sizes);
        assert_eq!(got, vec![Err(HttpError::HeadTooLarge)]);
    }
}
