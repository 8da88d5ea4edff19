//! HTTP/2 and gRPC: golden streams recorded from real stacks on loopback
//! (`tests/tools/record_http2.sh`: curl, nghttp, h2load, a python h2 client,
//! nginx, Apache, grpcio, @grpc/grpc-js), replayed the way the agent drives
//! the decoders and the session, whole and in arbitrary chunks; joins
//! mid-way; gaps.

mod common;

use std::collections::BTreeMap;

use common::{Lcg, assert_chunking_equivalent};
use sonde_protocols::http::{self, HttpConfig, HttpDecoder};
use sonde_protocols::http2::{
    Frame, GrpcMessages, Http2Config, Http2Counters, Http2Decoder, Http2Session, Http2Stream,
    StreamEnd, find_message_start, frame_sender,
};
use sonde_protocols::{Decoded, GapOutcome, MessageKind};

/// One read of a recording.
#[derive(Debug, Clone)]
struct Chunk {
    client: bool,
    ts: u64,
    bytes: Vec<u8>,
}

/// The reads of each connection of a recording, and when it ended.
#[derive(Debug, Default)]
struct Connection {
    chunks: Vec<Chunk>,
    end_ts: u64,
}

fn load(name: &str) -> Vec<Connection> {
    let path = format!("{}/tests/data/http2/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut conns: BTreeMap<u32, Connection> = BTreeMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let parts: Vec<&str> = line.split(' ').collect();
        let conn = conns.entry(parts[0].parse().unwrap()).or_default();
        let ts: u64 = parts[2].parse().unwrap();
        match parts[1] {
            "end" => conn.end_ts = ts,
            dir => conn.chunks.push(Chunk {
                client: dir == "c",
                ts,
                bytes: (0..parts[3].len())
                    .step_by(2)
                    .map(|i| u8::from_str_radix(&parts[3][i..i + 2], 16).unwrap())
                    .collect(),
            }),
        }
    }
    conns.into_values().collect()
}

/// One direction, driven like the agent's stream driver: a buffer of
/// unconsumed bytes with the capture time of each, a decode loop, resync
/// after errors and lost bytes, frames stamped with the times of their
/// first and last byte.
struct Side {
    kind: MessageKind,
    decoder: Http2Decoder,
    buf: Vec<u8>,
    ts: Vec<u64>,
    resync: bool,
    message_start: u64,
    last_byte_ts: u64,
}

impl Side {
    fn consume(&mut self, n: usize) {
        self.buf.drain(..n);
        self.ts.drain(..n);
    }
}

/// Bytes kept when a resync finds nothing (as the agent does).
const RESYNC_KEEP: usize = 16;

struct Conn {
    sides: [Side; 2],
    session: Http2Session,
    events: Vec<Http2Stream>,
    errors: u32,
    /// Sender of each frame, as [`frame_sender`] tells it when it can.
    senders: Vec<(MessageKind, MessageKind)>,
}

impl Conn {
    fn new(session: Http2Session, config: &Http2Config, resync: bool) -> Self {
        let side = |kind| Side {
            kind,
            decoder: Http2Decoder::new(kind, config),
            buf: Vec::new(),
            ts: Vec::new(),
            resync,
            message_start: 0,
            last_byte_ts: 0,
        };
        Self {
            sides: [side(MessageKind::Request), side(MessageKind::Response)],
            session,
            events: Vec::new(),
            errors: 0,
            senders: Vec::new(),
        }
    }

    fn append(&mut self, client: bool, ts: u64, bytes: &[u8]) {
        let side = &mut self.sides[usize::from(!client)];
        side.buf.extend_from_slice(bytes);
        side.ts.extend(std::iter::repeat_n(ts, bytes.len()));
    }

    fn push(&mut self, client: bool, ts: u64, bytes: &[u8]) {
        self.append(client, ts, bytes);
        self.run(client);
    }

    fn run(&mut self, client: bool) {
        let i = usize::from(!client);
        loop {
            let side = &mut self.sides[i];
            if side.buf.is_empty() && side.decoder.is_idle() {
                return;
            }
            if side.resync {
                match find_message_start(&side.buf, side.kind) {
                    Some(at) => {
                        side.consume(at);
                        side.resync = false;
                    }
                    None => {
                        let drop = side.buf.len().saturating_sub(RESYNC_KEEP);
                        side.consume(drop);
                        return;
                    }
                }
            }
            if side.decoder.is_idle() && !side.buf.is_empty() {
                side.message_start = side.ts[0];
            }
            match side.decoder.decode(&side.buf) {
                Ok(Decoded::NeedMore) => return,
                Ok(Decoded::Progress { consumed, message }) => {
                    assert!(consumed <= side.buf.len());
                    if consumed > 0 {
                        side.last_byte_ts = side.ts[consumed - 1];
                    }
                    side.consume(consumed);
                    let Some(frame) = message else {
                        assert!(consumed > 0, "Progress without progress");
                        continue;
                    };
                    let (kind, start, end) = (side.kind, side.message_start, side.last_byte_ts);
                    if let Some(sender) = frame_sender(&frame) {
                        self.senders.push((kind, sender));
                    }
                    self.session
                        .on_frame(kind, frame, start, end, &mut self.events);
                    // SETTINGS_MAX_FRAME_SIZE as negotiated so far.
                    for side in &mut self.sides {
                        side.decoder
                            .set_max_frame_size(self.session.max_frame_size(side.kind));
                    }
                }
                Err(_) => {
                    self.errors += 1;
                    side.decoder.reset();
                    side.consume(1);
                    side.resync = true;
                }
            }
        }
    }

    /// `n` bytes of one direction were lost at `ts`.
    fn gap(&mut self, client: bool, n: u64, ts: u64) {
        let side = &mut self.sides[usize::from(!client)];
        let absorbed = side.buf.is_empty()
            && !side.decoder.is_idle()
            && side.decoder.skip_gap(n) == GapOutcome::Absorbed;
        side.buf.clear();
        side.ts.clear();
        if absorbed {
            side.last_byte_ts = ts;
        } else {
            side.decoder.reset();
            side.resync = true;
        }
        self.run(client);
    }

    fn close(mut self, ts: u64) -> (Vec<Http2Stream>, Http2Counters) {
        self.run(true);
        self.run(false);
        self.session.finish(ts, &mut self.events);
        for (kind, sender) in &self.senders {
            assert_eq!(kind, sender, "frame_sender misread a frame");
        }
        (self.events, *self.session.counters())
    }
}

/// Replays a connection followed from its start, in the recorded reads.
fn replay(conn: &Connection) -> (Vec<Http2Stream>, Http2Counters) {
    let config = Http2Config::default();
    let mut c = Conn::new(Http2Session::new(config.clone()), &config, false);
    for chunk in &conn.chunks {
        c.push(chunk.client, chunk.ts, &chunk.bytes);
    }
    let (events, counters) = c.close(conn.end_ts);
    assert_eq!(counters.discontinuities, 0);
    (events, counters)
}

/// Replays with every read cut into random pieces, each direction decoded
/// only at random points (always before the other direction's next read).
fn replay_chunked(conn: &Connection, rng: &mut Lcg) -> (Vec<Http2Stream>, Http2Counters) {
    let config = Http2Config::default();
    let mut c = Conn::new(Http2Session::new(config.clone()), &config, false);
    let mut pending: Option<bool> = None;
    for chunk in &conn.chunks {
        if let Some(client) = pending
            && client != chunk.client
        {
            c.run(client);
        }
        let mut rest = &chunk.bytes[..];
        while !rest.is_empty() {
            let span = 64 + rng.below(4096);
            let n = (1 + rng.below(span)).min(rest.len());
            c.append(chunk.client, chunk.ts, &rest[..n]);
            rest = &rest[n..];
            if rng.below(3) == 0 {
                c.run(chunk.client);
            }
        }
        pending = Some(chunk.client);
    }
    c.close(conn.end_ts)
}

/// Checks that every chunking gives what the recorded reads give.
fn assert_chunking_invariant(conn: &Connection, whole: &(Vec<Http2Stream>, Http2Counters)) {
    let mut rng = Lcg(0x4832);
    for round in 0..12 {
        let got = replay_chunked(conn, &mut rng);
        assert_eq!(&got, whole, "chunking round {round}");
    }
}

/// A compact, exact view of an event for assertions: everything but the
/// headers (checked separately where they matter) and the timestamps.
fn summary(e: &Http2Stream) -> String {
    let grpc = e.grpc.as_ref().map_or(String::new(), |g| {
        let m = |m: &GrpcMessages| {
            format!(
                "{}/{}{}{}",
                m.count,
                m.bytes,
                if m.compressed > 0 { "z" } else { "" },
                if m.exact { "" } else { "~" }
            )
        };
        format!(
            " grpc={}.{} status={:?} message={:?} req_msgs={} resp_msgs={}",
            g.service,
            g.method,
            g.status,
            g.message,
            m(&g.request_messages),
            m(&g.response_messages)
        )
    });
    format!(
        "#{} {} {} {} {} -> {} req_body={}{} resp_body={}{} unknown={}/{} end={:?}{}{}",
        e.stream_id,
        e.method.as_deref().unwrap_or("-"),
        e.scheme.as_deref().unwrap_or("-"),
        e.authority.as_deref().unwrap_or("-"),
        e.path.as_deref().unwrap_or("-"),
        e.status.map_or("-".into(), |s| s.to_string()),
        e.request.body_size,
        if e.request.body_incomplete { "~" } else { "" },
        e.response.body_size,
        if e.response.body_incomplete { "~" } else { "" },
        e.request.unknown_fields,
        e.response.unknown_fields,
        e.end,
        if e.pushed { " pushed" } else { "" },
        grpc
    )
}

fn summaries(events: &[Http2Stream]) -> Vec<String> {
    events.iter().map(summary).collect()
}

fn header<'a>(fields: &'a sonde_protocols::Headers, name: &str) -> Option<&'a str> {
    fields.get(name)
}

/// Frames of one direction of a connection, decoded straight.
fn frames(conn: &Connection, client: bool) -> Vec<Frame> {
    let kind = if client {
        MessageKind::Request
    } else {
        MessageKind::Response
    };
    let mut decoder = Http2Decoder::new(kind, &Http2Config::default());
    let bytes: Vec<u8> = conn
        .chunks
        .iter()
        .filter(|c| c.client == client)
        .flat_map(|c| c.bytes.clone())
        .collect();
    let mut rest = &bytes[..];
    let mut out = Vec::new();
    while let Ok(Decoded::Progress { consumed, message }) = decoder.decode(rest) {
        rest = &rest[consumed..];
        out.extend(message);
    }
    assert!(rest.is_empty(), "{} bytes left undecoded", rest.len());
    out
}

/// The body of /big.bin: bytes `i % 251`.
fn big_bin(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8).collect()
}

#[test]
fn curl_prior_knowledge_against_nginx() {
    let conns = load("curl_nginx.cap");
    let got: Vec<(Vec<Http2Stream>, Http2Counters)> = conns.iter().map(replay).collect();
    let lines: Vec<String> = got.iter().flat_map(|(e, _)| summaries(e)).collect();
    assert_eq!(
        lines,
        [
            "#1 GET http 127.0.0.1:18180 /hello.txt -> 200 req_body=0 resp_body=14 unknown=0/0 end=Complete",
            "#1 GET http 127.0.0.1:18180 /big.bin -> 200 req_body=0 resp_body=100000 unknown=0/0 end=Complete",
            "#1 GET http 127.0.0.1:18180 /missing -> 404 req_body=0 resp_body=153 unknown=0/0 end=Complete",
            "#1 POST http 127.0.0.1:18180 /created -> 201 req_body=20000 resp_body=8 unknown=0/0 end=Complete",
        ]
    );
    for (_, counters) in &got {
        assert_eq!(
            *counters,
            Http2Counters {
                streams: 1,
                ..Http2Counters::default()
            }
        );
    }
    let hello = &got[0].0[0];
    assert_eq!(
        hello.request.headers.iter().collect::<Vec<_>>(),
        [
            ("user-agent", "curl/7.88.1"),
            ("accept", "*/*"),
            ("authorization", "<redacted>"),
            ("cookie", "<redacted>"),
        ]
    );
    assert_eq!(hello.response.content_type, "text/plain");
    assert_eq!(
        header(&hello.response.headers, "server"),
        Some("nginx/1.22.1")
    );
    assert_eq!(
        header(&hello.response.headers, "content-length"),
        Some("14")
    );
    assert_eq!(hello.response.body, b"hello, http/2\n");
    assert!(hello.request.trailers.is_empty() && hello.response.trailers.is_empty());
    assert!(hello.grpc.is_none());
    // First byte of the client's HEADERS (in its first read, with the
    // preface), last byte of nginx's END_STREAM DATA frame.
    assert_eq!((hello.start_ts, hello.end_ts), (119_693_793, 122_997_830));
    assert_eq!(conns[0].chunks[0].ts, hello.start_ts);

    let big = &got[1].0[0];
    assert_eq!(big.response.body, big_bin(1024));
    assert!(!big.response.body_incomplete);
    let missing = &got[2].0[0];
    assert!(
        missing
            .response
            .body
            .starts_with(b"<html>\r\n<head><title>404 Not Found")
    );
    let post = &got[3].0[0];
    assert_eq!(post.request.body, vec![b'p'; 1024]);
    assert_eq!(
        post.request.content_type,
        "application/x-www-form-urlencoded"
    );
    assert_eq!(post.response.body, b"created\n");
}

#[test]
fn nghttp_reuses_the_dynamic_table() {
    let conns = load("nghttp_nginx.cap");
    assert_eq!(conns.len(), 1);
    let (events, counters) = replay(&conns[0]);
    assert_eq!(
        summaries(&events),
        [
            "#13 GET http 127.0.0.1:18180 /hello.txt -> 200 req_body=0 resp_body=14 unknown=0/0 end=Complete",
            "#17 GET http 127.0.0.1:18180 /missing -> 404 req_body=0 resp_body=153 unknown=0/0 end=Complete",
            "#19 GET http 127.0.0.1:18180 /hello.txt?again -> 200 req_body=0 resp_body=14 unknown=0/0 end=Complete",
            "#15 GET http 127.0.0.1:18180 /big.bin -> 200 req_body=0 resp_body=100000 unknown=0/0 end=Complete",
        ]
    );
    assert_eq!(counters.streams, 4);
    assert_eq!(counters.hpack_unknown_fields, 0);
    let trace = "t".repeat(3000);
    for e in &events {
        assert_eq!(header(&e.request.headers, "x-trace"), Some(trace.as_str()));
        assert_eq!(header(&e.request.headers, "x-repeat"), Some("same-value"));
        assert_eq!(
            header(&e.request.headers, "user-agent"),
            Some("nghttp2/1.52.0")
        );
    }
    // The 3000-byte header went on the wire once: later requests refer to
    // its dynamic table entry (so this test does exercise the table).
    let blocks: Vec<usize> = frames(&conns[0], true)
        .into_iter()
        .filter_map(|f| match f {
            Frame::Headers(b) => Some(b.len),
            _ => None,
        })
        .collect();
    assert_eq!(blocks.len(), 4);
    assert!(blocks[0] > 1800, "{blocks:?}");
    assert!(blocks[1..].iter().all(|&n| n < 40), "{blocks:?}");
}

#[test]
fn h2load_runs_twenty_streams_at_once() {
    let conns = load("h2load_nginx.cap");
    let (events, counters) = replay(&conns[0]);
    assert_eq!(counters.streams, 40);
    let ids: Vec<u32> = events.iter().map(|e| e.stream_id).collect();
    assert_eq!(ids, (0..40).map(|i| 2 * i + 1).collect::<Vec<u32>>());
    for e in &events {
        assert_eq!(
            summary(e),
            format!(
                "#{} GET http 127.0.0.1:18180 /hello.txt -> 200 req_body=0 resp_body=14 unknown=0/0 end=Complete",
                e.stream_id
            )
        );
        assert_eq!(header(&e.request.headers, "x-load"), Some("yes"));
        assert_eq!(e.response.body, b"hello, http/2\n");
    }
    // h2load opened 20 streams in its first write and 20 more once they
    // were answered.
    let first = conns[0].chunks[0].ts;
    assert_eq!(events.iter().filter(|e| e.start_ts == first).count(), 20);
    assert!(events[20..].iter().all(|e| e.start_ts > events[19].end_ts));
}

#[test]
fn stream_reset_mid_response() {
    let conns = load("reset_nginx.cap");
    let (events, counters) = replay(&conns[0]);
    assert_eq!(
        summaries(&events),
        [
            "#1 GET http 127.0.0.1:18180 /big.bin -> 200 req_body=0 resp_body=65535 unknown=0/0 end=Reset { by: Request, error_code: 8 }",
            "#3 GET http 127.0.0.1:18180 /hello.txt -> 200 req_body=0 resp_body=14 unknown=0/0 end=Complete",
        ]
    );
    assert_eq!((counters.streams, counters.streams_reset), (2, 1));
    // The client's second RST_STREAM (STREAM_CLOSED) for stream 1 finds
    // nothing to end.
    let rsts = frames(&conns[0], true)
        .into_iter()
        .filter(|f| matches!(f, Frame::RstStream { stream_id: 1, .. }))
        .count();
    assert_eq!(rsts, 2);
    // nginx's first response block starts with a dynamic table size update.
    let first_block = frames(&conns[0], false)
        .into_iter()
        .find_map(|f| match f {
            Frame::Headers(b) => Some(b.fragment),
            _ => None,
        })
        .unwrap();
    assert_eq!(first_block[0], 0x20);
    assert_eq!(events[0].response.body, big_bin(1024));
    assert_eq!(events[1].response.body, b"hello, http/2\n");
}

#[test]
fn upgrade_from_http1_to_h2c() {
    let conns = load("curl_upgrade_apache.cap");
    let conn = &conns[0];
    let config = Http2Config::default();
    // The HTTP/1.1 phase: the request and the 101, each direction switching
    // to HTTP/2 right after its message.
    let mut req_decoder = HttpDecoder::new(MessageKind::Request, HttpConfig::default());
    let mut resp_decoder = HttpDecoder::new(MessageKind::Response, HttpConfig::default());
    let mut h1 = [Vec::new(), Vec::new()];
    let mut switched = [false, false];
    let mut c: Option<Conn> = None;
    let mut waiting: Vec<Chunk> = Vec::new();
    for chunk in &conn.chunks {
        let i = usize::from(!chunk.client);
        let mut h2_bytes = chunk.bytes.clone();
        if !switched[i] {
            h1[i].extend_from_slice(&chunk.bytes);
            let decoded = if chunk.client {
                req_decoder.decode(&h1[i], None)
            } else {
                resp_decoder.decode(&h1[i], Some("GET"))
            };
            let Ok(http::Decoded::Progress {
                consumed,
                message: Some(message),
            }) = decoded
            else {
                continue;
            };
            switched[i] = true;
            h2_bytes = h1[i][consumed..].to_vec();
            if chunk.client {
                assert_eq!(header(&message.headers, "upgrade"), Some("h2c"));
                c = Some(Conn::new(
                    Http2Session::after_upgrade(config.clone(), &message, chunk.ts),
                    &config,
                    false,
                ));
            } else {
                assert_eq!(message.status, 101);
            }
        }
        waiting.push(Chunk {
            bytes: h2_bytes,
            ..chunk.clone()
        });
        if let Some(c) = &mut c {
            for w in waiting.drain(..) {
                c.push(w.client, w.ts, &w.bytes);
            }
        }
    }
    let c = c.expect("no upgrade request");
    // The client's SETTINGS came in the HTTP2-Settings header.
    assert_eq!(
        c.session
            .settings(MessageKind::Request)
            .max_concurrent_streams,
        Some(100)
    );
    let (events, counters) = c.close(conn.end_ts);
    assert_eq!(
        summaries(&events),
        [
            "#1 GET http 127.0.0.1:18182 /hello.txt -> 200 req_body=0 resp_body=14 unknown=0/0 end=Complete"
        ]
    );
    assert_eq!(counters.streams, 1);
    let e = &events[0];
    assert_eq!(
        header(&e.request.headers, "http2-settings"),
        Some("AAMAAABkAAQCAAAAAAIAAAAA")
    );
    assert_eq!(e.response.body, b"hello, http/2\n");
    assert_eq!(e.start_ts, conn.chunks[0].ts);
}

#[test]
fn grpcio_unary_streaming_errors_and_a_cancel() {
    let conns = load("grpcio.cap");
    let (events, counters) = replay(&conns[0]);
    assert_eq!(
        summaries(&events),
        [
            "#1 POST http 127.0.0.1:18184 /demo.Echo/Unary -> 200 req_body=15 resp_body=15 unknown=0/0 end=Complete \
             grpc=demo.Echo.Unary status=Some(0) message=Some(\"\") req_msgs=1/10 resp_msgs=1/10",
            "#3 POST http 127.0.0.1:18184 /demo.Echo/ServerStream -> 200 req_body=6 resp_body=85 unknown=0/0 end=Complete \
             grpc=demo.Echo.ServerStream status=Some(0) message=Some(\"\") req_msgs=1/1 resp_msgs=5/60",
            "#5 POST http 127.0.0.1:18184 /demo.Echo/ClientStream -> 200 req_body=615 resp_body=9 unknown=0/0 end=Complete \
             grpc=demo.Echo.ClientStream status=Some(0) message=Some(\"\") req_msgs=3/600 resp_msgs=1/4",
            "#7 POST http 127.0.0.1:18184 /demo.Echo/Fail -> 200 req_body=12 resp_body=0 unknown=0/0 end=Complete \
             grpc=demo.Echo.Fail status=Some(5) message=Some(\"no such item: café 100%\") req_msgs=1/7 resp_msgs=0/0",
            "#9 POST http 127.0.0.1:18184 /demo.Echo/Endless -> 200 req_body=5 resp_body=315 unknown=0/0 \
             end=Reset { by: Request, error_code: 8 } grpc=demo.Echo.Endless status=None message=None \
             req_msgs=1/0 resp_msgs=3/300~",
        ]
    );
    assert_eq!((counters.streams, counters.streams_reset), (5, 1));
    let unary = &events[0];
    assert_eq!(unary.request.body, b"\0\0\0\0\x0ahello grpc");
    assert_eq!(unary.response.body, b"\0\0\0\0\x0acprg olleh");
    assert_eq!(
        unary.response.trailers.iter().collect::<Vec<_>>(),
        [("grpc-status", "0"), ("grpc-message", "")]
    );
    assert_eq!(header(&unary.request.headers, "te"), Some("trailers"));
    // Fail is a trailers-only response: status and message in the head.
    let fail = &events[3];
    assert!(fail.response.trailers.is_empty());
    assert_eq!(
        header(&fail.response.headers, "grpc-message"),
        Some("no such item: caf%C3%A9 100%25")
    );
    // grpcio's client refuses pushes and adds grpc's own setting 0xfe03.
    let settings = frames(&conns[0], true)
        .into_iter()
        .find_map(|f| match f {
            Frame::Settings { ack: false, params } => Some(params),
            _ => None,
        })
        .unwrap();
    let ids: Vec<u16> = settings.iter().map(|s| s.id).collect();
    assert_eq!(ids, [2, 3, 4, 5, 6, 0xfe03]);
    assert!(!conns[0].chunks[0].client, "grpcio's server speaks first");
}

#[test]
fn grpc_js_is_a_second_implementation() {
    let conns = load("grpc_js.cap");
    let (events, counters) = replay(&conns[0]);
    assert_eq!(
        summaries(&events),
        [
            "#1 POST http 127.0.0.1:18186 /demo.Echo/Unary -> 200 req_body=18 resp_body=18 unknown=0/0 end=Complete \
             grpc=demo.Echo.Unary status=Some(0) message=Some(\"OK\") req_msgs=1/13 resp_msgs=1/13",
            "#3 POST http 127.0.0.1:18186 /demo.Echo/ServerStream -> 200 req_body=6 resp_body=106 unknown=0/0 end=Complete \
             grpc=demo.Echo.ServerStream status=Some(0) message=Some(\"OK\") req_msgs=1/1 resp_msgs=4/86",
            "#5 POST http 127.0.0.1:18186 /demo.Echo/ClientStream -> 200 req_body=710 resp_body=9 unknown=0/0 end=Complete \
             grpc=demo.Echo.ClientStream status=Some(0) message=Some(\"OK\") req_msgs=2/700 resp_msgs=1/4",
            "#7 POST http 127.0.0.1:18186 /demo.Echo/Fail -> 200 req_body=6 resp_body=0 unknown=0/0 end=Complete \
             grpc=demo.Echo.Fail status=Some(7) message=Some(\"denied: 50% off\") req_msgs=1/1 resp_msgs=0/0",
        ]
    );
    // Both sides sent GOAWAY at the end; nothing was in flight.
    assert_eq!(
        counters,
        Http2Counters {
            streams: 4,
            ..Http2Counters::default()
        }
    );
    assert_eq!(events[0].response.content_type, "application/grpc+proto");
    assert_eq!(
        header(&events[0].request.headers, "user-agent"),
        Some("grpc-node-js/1.14.7")
    );
}

const ALL: [&str; 7] = [
    "curl_nginx.cap",
    "nghttp_nginx.cap",
    "h2load_nginx.cap",
    "reset_nginx.cap",
    "curl_upgrade_apache.cap",
    "grpcio.cap",
    "grpc_js.cap",
];

#[test]
fn arbitrary_chunks_give_the_same_events() {
    for name in ALL {
        if name == "curl_upgrade_apache.cap" {
            continue; // starts as HTTP/1.1 (see upgrade_from_http1_to_h2c)
        }
        for conn in load(name) {
            let whole = replay(&conn);
            assert!(!whole.0.is_empty(), "{name}");
            assert_chunking_invariant(&conn, &whole);
        }
    }
}

/// Replays `conn` joined mid-way: the first `skip` bytes of each direction
/// were sent before the capture started.
fn replay_joined(conn: &Connection, skip: [usize; 2]) -> (Vec<Http2Stream>, Http2Counters) {
    let config = Http2Config::default();
    let mut c = Conn::new(Http2Session::mid_stream(config.clone()), &config, true);
    let mut seen = [0usize; 2];
    for chunk in &conn.chunks {
        let i = usize::from(!chunk.client);
        let start = skip[i].saturating_sub(seen[i]).min(chunk.bytes.len());
        seen[i] += chunk.bytes.len();
        if start < chunk.bytes.len() {
            c.push(chunk.client, chunk.ts, &chunk.bytes[start..]);
        }
    }
    c.close(conn.end_ts)
}

/// Offset in one direction of the first byte of the read at `index`.
fn offset_of(conn: &Connection, index: usize) -> [usize; 2] {
    let mut at = [0, 0];
    for chunk in &conn.chunks[..index] {
        at[usize::from(!chunk.client)] += chunk.bytes.len();
    }
    at
}

#[test]
fn joined_mid_way() {
    let conns = load("grpcio.cap");
    let conn = &conns[0];
    // Join right where the client starts ClientStream (stream 5): the
    // header tables built by streams 1 and 3 are unknown.
    let start = conn
        .chunks
        .iter()
        .position(|c| c.client && c.ts == 622_446_315)
        .unwrap();
    let (events, counters) = replay_joined(conn, offset_of(conn, start));
    // Paths are literals (grpcio indexes each new one), :method and
    // :scheme are static; :authority, content-type and the repeated
    // trailers come from entries made before the join: unknown, counted,
    // not guessed. Fail's trailers-only head is all literals, so it is still
    // known as gRPC by its grpc-status; the others cannot be told apart.
    assert_eq!(
        summaries(&events),
        [
            "#5 POST http - /demo.Echo/ClientStream -> 200 req_body=615 resp_body=9 unknown=5/3 end=Complete",
            "#7 POST http - /demo.Echo/Fail -> 200 req_body=12 resp_body=0 unknown=5/1 end=Complete \
             grpc=demo.Echo.Fail status=Some(5) message=Some(\"no such item: café 100%\") req_msgs=1/7 resp_msgs=0/0",
            "#9 POST http - /demo.Echo/Endless -> 200 req_body=5 resp_body=315 unknown=5/2 \
             end=Reset { by: Request, error_code: 8 }",
        ]
    );
    assert_eq!(counters.hpack_unknown_fields, 21);
    assert_eq!((counters.hpack_errors, counters.discontinuities), (0, 0));
    assert!(events.iter().all(|e| e.request.content_type.is_empty()));

    // Joined in the middle of frames: each direction resyncs on a frame
    // boundary first; what follows is the same.
    let mut skip = offset_of(conn, start);
    skip[0] -= 7;
    skip[1] -= 3;
    let (again, counters) = replay_joined(conn, skip);
    assert_eq!(summaries(&again), summaries(&events));
    assert_eq!(counters.hpack_unknown_fields, 21);
}

/// What the agent receives when the kernel copies frame heads but not
/// bodies: every DATA frame's first `keep` bytes, the rest of it reported
/// as lost.
enum Op {
    Bytes(bool, u64, Vec<u8>),
    Gap(bool, u64, u64),
}

fn heads_only(conn: &Connection, keep: u32) -> Vec<Op> {
    // Per direction: bytes of the current header read so far, then how many
    // payload bytes to pass and to drop.
    struct Walk {
        header: Vec<u8>,
        pass: u64,
        drop: u64,
        preface: usize,
    }
    let mut walks = [
        Walk {
            header: Vec::new(),
            pass: 0,
            drop: 0,
            preface: 24,
        },
        Walk {
            header: Vec::new(),
            pass: 0,
            drop: 0,
            preface: 0,
        },
    ];
    let mut ops = Vec::new();
    for chunk in &conn.chunks {
        let w = &mut walks[usize::from(!chunk.client)];
        let mut kept = Vec::new();
        let mut dropped = 0u64;
        let flush = |kept: &mut Vec<u8>, dropped: &mut u64, ops: &mut Vec<Op>| {
            if *dropped > 0 {
                ops.push(Op::Gap(chunk.client, std::mem::take(dropped), chunk.ts));
            }
            if !kept.is_empty() {
                ops.push(Op::Bytes(chunk.client, chunk.ts, std::mem::take(kept)));
            }
        };
        for &b in &chunk.bytes {
            if w.preface > 0 {
                w.preface -= 1;
                kept.push(b);
            } else if w.pass > 0 {
                w.pass -= 1;
                kept.push(b);
            } else if w.drop > 0 {
                w.drop -= 1;
                if !kept.is_empty() {
                    flush(&mut kept, &mut dropped, &mut ops);
                }
                dropped += 1;
            } else {
                if dropped > 0 {
                    flush(&mut kept, &mut dropped, &mut ops);
                }
                kept.push(b);
                w.header.push(b);
                if w.header.len() == 9 {
                    let len = u32::from_be_bytes([0, w.header[0], w.header[1], w.header[2]]);
                    let pass = if w.header[3] == 0 { len.min(keep) } else { len };
                    w.pass = u64::from(pass);
                    w.drop = u64::from(len - pass);
                    w.header.clear();
                }
            }
        }
        flush(&mut kept, &mut dropped, &mut ops);
    }
    ops
}

fn replay_ops(ops: &[Op], config: &Http2Config, end_ts: u64) -> (Vec<Http2Stream>, Http2Counters) {
    let mut c = Conn::new(Http2Session::new(config.clone()), config, false);
    for op in ops {
        match op {
            Op::Bytes(client, ts, bytes) => c.push(*client, *ts, bytes),
            Op::Gap(client, n, ts) => c.gap(*client, *n, *ts),
        }
    }
    c.close(end_ts)
}

#[test]
fn bodies_not_copied_are_absorbed_as_gaps() {
    // nginx's 100000-byte body with only 100 bytes of each DATA frame
    // captured: the size stays exact, the prefix stops at the first hole.
    let conns = load("curl_nginx.cap");
    let ops = heads_only(&conns[1], 100);
    let lost: u64 = ops
        .iter()
        .map(|op| match op {
            Op::Gap(_, n, _) => *n,
            Op::Bytes(..) => 0,
        })
        .sum();
    assert!(lost > 90_000, "{lost}");
    let (events, counters) = replay_ops(&ops, &Http2Config::default(), conns[1].end_ts);
    let (whole, _) = replay(&conns[1]);
    assert_eq!(
        summaries(&events),
        [
            "#1 GET http 127.0.0.1:18180 /big.bin -> 200 req_body=0 resp_body=100000~ unknown=0/0 end=Complete"
        ]
    );
    assert_eq!(events[0].response.body, big_bin(100));
    assert_eq!(
        (events[0].start_ts, events[0].end_ts),
        (whole[0].start_ts, whole[0].end_ts)
    );
    assert_eq!(counters.discontinuities, 0);

    // gRPC: with the first 5 bytes of each DATA frame (the message prefix
    // when a frame starts a message), grpcio's message counts stay exact.
    let conns = load("grpcio.cap");
    let (events, counters) = replay_ops(
        &heads_only(&conns[0], 5),
        &Http2Config::default(),
        conns[0].end_ts,
    );
    assert_eq!(
        summaries(&events),
        [
            "#1 POST http 127.0.0.1:18184 /demo.Echo/Unary -> 200 req_body=15~ resp_body=15~ unknown=0/0 end=Complete \
             grpc=demo.Echo.Unary status=Some(0) message=Some(\"\") req_msgs=1/10 resp_msgs=1/10",
            "#3 POST http 127.0.0.1:18184 /demo.Echo/ServerStream -> 200 req_body=6~ resp_body=85~ unknown=0/0 end=Complete \
             grpc=demo.Echo.ServerStream status=Some(0) message=Some(\"\") req_msgs=1/1 resp_msgs=5/60",
            "#5 POST http 127.0.0.1:18184 /demo.Echo/ClientStream -> 200 req_body=615~ resp_body=9~ unknown=0/0 end=Complete \
             grpc=demo.Echo.ClientStream status=Some(0) message=Some(\"\") req_msgs=3/600 resp_msgs=1/4",
            "#7 POST http 127.0.0.1:18184 /demo.Echo/Fail -> 200 req_body=12~ resp_body=0 unknown=0/0 end=Complete \
             grpc=demo.Echo.Fail status=Some(5) message=Some(\"no such item: café 100%\") req_msgs=1/7 resp_msgs=0/0",
            "#9 POST http 127.0.0.1:18184 /demo.Echo/Endless -> 200 req_body=5 resp_body=315~ unknown=0/0 \
             end=Reset { by: Request, error_code: 8 } grpc=demo.Echo.Endless status=None message=None \
             req_msgs=1/0 resp_msgs=3/300~",
        ]
    );
    assert_eq!(counters.discontinuities, 0);
    assert_eq!(events[1].response.body, b"\0\0\0\0\x0a");
}

fn replay_with(conn: &Connection, config: &Http2Config) -> (Vec<Http2Stream>, Http2Counters) {
    let mut c = Conn::new(Http2Session::new(config.clone()), config, false);
    for chunk in &conn.chunks {
        c.push(chunk.client, chunk.ts, &chunk.bytes);
    }
    c.close(conn.end_ts)
}

#[test]
fn a_lost_read_desyncs_one_header_table() {
    // The server read holding ServerStream's response head and first
    // message is lost: the server's table is then unknown, so later heads
    // decode only their static and literal fields.
    let conns = load("grpcio.cap");
    let conn = &conns[0];
    let lost = conn
        .chunks
        .iter()
        .position(|c| !c.client && c.ts == 617_756_239)
        .unwrap();
    let config = Http2Config::default();
    let mut c = Conn::new(Http2Session::new(config.clone()), &config, false);
    for (i, chunk) in conn.chunks.iter().enumerate() {
        if i == lost {
            c.gap(false, chunk.bytes.len() as u64, chunk.ts);
        } else {
            c.push(chunk.client, chunk.ts, &chunk.bytes);
        }
    }
    let (events, counters) = c.close(conn.end_ts);
    assert_eq!(
        summaries(&events),
        [
            "#1 POST http 127.0.0.1:18184 /demo.Echo/Unary -> 200 req_body=15 resp_body=15 unknown=0/0 end=Complete \
             grpc=demo.Echo.Unary status=Some(0) message=Some(\"\") req_msgs=1/10 resp_msgs=1/10",
            // Its trailers came as its first head: no status, and the
            // grpc-status entry is unknown.
            "#3 POST http 127.0.0.1:18184 /demo.Echo/ServerStream -> - req_body=6 resp_body=70~ unknown=0/1 end=Complete \
             grpc=demo.Echo.ServerStream status=None message=Some(\"\") req_msgs=1/1 resp_msgs=0/0~",
            "#5 POST http 127.0.0.1:18184 /demo.Echo/ClientStream -> 200 req_body=615 resp_body=9 unknown=0/3 end=Complete \
             grpc=demo.Echo.ClientStream status=None message=Some(\"\") req_msgs=3/600 resp_msgs=1/4",
            "#7 POST http 127.0.0.1:18184 /demo.Echo/Fail -> 200 req_body=12 resp_body=0 unknown=0/1 end=Complete \
             grpc=demo.Echo.Fail status=Some(5) message=Some(\"no such item: café 100%\") req_msgs=1/7 resp_msgs=0/0",
            "#9 POST http 127.0.0.1:18184 /demo.Echo/Endless -> 200 req_body=5 resp_body=315 unknown=0/2 \
             end=Reset { by: Request, error_code: 8 } grpc=demo.Echo.Endless status=None message=None \
             req_msgs=1/0 resp_msgs=3/300~",
        ]
    );
    assert_eq!(
        (
            counters.discontinuities,
            counters.hpack_desyncs,
            counters.hpack_unknown_fields
        ),
        (1, 1, 7)
    );
    assert_eq!(counters.hpack_errors, 0);
}

#[test]
fn stream_cap_evicts_and_counts() {
    // h2load opens 20 streams at once; with room for 8 the 12 oldest of
    // each burst are dropped, and the frames that come for them later are
    // counted, not turned into streams.
    let config = Http2Config {
        max_streams: 8,
        ..Http2Config::default()
    };
    let conns = load("h2load_nginx.cap");
    let (events, counters) = replay_with(&conns[0], &config);
    let ids: Vec<u32> = events.iter().map(|e| e.stream_id).collect();
    assert_eq!(
        ids,
        [
            25, 27, 29, 31, 33, 35, 37, 39, 65, 67, 69, 71, 73, 75, 77, 79
        ]
    );
    assert!(
        events
            .iter()
            .all(|e| e.end == StreamEnd::Complete && e.method.is_some())
    );
    assert_eq!(
        (
            counters.streams,
            counters.streams_evicted,
            counters.frames_on_unknown_streams
        ),
        (16, 24, 48)
    );
}

#[test]
fn header_block_over_the_cap() {
    // nghttp's first request block (about 1900 bytes with its 3000-byte
    // x-trace) is over a 1000-byte cap: fields before the cut are kept, the
    // client's table is unknown from then on.
    let config = Http2Config {
        max_header_block_bytes: 1000,
        ..Http2Config::default()
    };
    let conns = load("nghttp_nginx.cap");
    let (events, counters) = replay_with(&conns[0], &config);
    assert_eq!(
        summaries(&events),
        [
            "#13 GET http 127.0.0.1:18180 /hello.txt -> 200 req_body=0 resp_body=14 unknown=1/0 end=Complete",
            "#17 GET http - /missing -> 404 req_body=0 resp_body=153 unknown=5/0 end=Complete",
            "#19 GET http - /hello.txt?again -> 200 req_body=0 resp_body=14 unknown=5/0 end=Complete",
            "#15 GET http - /big.bin -> 200 req_body=0 resp_body=100000 unknown=5/0 end=Complete",
        ]
    );
    let names: Vec<&str> = events[0].request.headers.iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["accept", "accept-encoding", "user-agent"]);
    assert_eq!(
        (
            counters.header_blocks_too_large,
            counters.hpack_desyncs,
            counters.hpack_unknown_fields
        ),
        (1, 1, 15)
    );
}

/// Flips, inserts and deletes random bytes.
fn mutate(rng: &mut Lcg, bytes: &[u8]) -> Vec<u8> {
    let mut out = bytes.to_vec();
    for _ in 0..1 + rng.below(4) {
        if out.is_empty() {
            break;
        }
        let at = rng.below(out.len());
        match rng.below(3) {
            0 => out[at] ^= 1 << rng.below(8),
            1 => out.insert(at, rng.next_u32() as u8),
            _ => drop(out.remove(at)),
        }
    }
    out
}

#[test]
fn damaged_traffic_never_panics_and_stays_bounded() {
    let config = Http2Config {
        max_streams: 4,
        max_headers: 3,
        body_prefix_bytes: 16,
        data_frame_prefix_bytes: 8,
        max_header_block_bytes: 256,
        max_table_size: 512,
        ..Http2Config::default()
    };
    let mut rng = Lcg(0xbad5eed);
    for name in ALL {
        for conn in load(name) {
            for round in 0..6 {
                let mut c = Conn::new(
                    Http2Session::mid_stream(config.clone()),
                    &config,
                    round % 2 == 0,
                );
                for chunk in &conn.chunks {
                    let bytes = if rng.below(4) == 0 {
                        mutate(&mut rng, &chunk.bytes)
                    } else {
                        chunk.bytes.clone()
                    };
                    if rng.below(10) == 0 {
                        c.gap(chunk.client, rng.below(5000) as u64, chunk.ts);
                    }
                    c.push(chunk.client, chunk.ts, &bytes);
                    assert!(c.session.open_streams() <= config.max_streams);
                    assert!(c.session.state_bytes() < 64 * 1024, "{name}");
                }
                // Frames from either side may be misread as the other's now.
                c.senders.clear();
                let (events, _) = c.close(conn.end_ts);
                for e in events {
                    for m in [&e.request, &e.response] {
                        assert!(m.body.len() <= config.body_prefix_bytes);
                        assert!(m.body_size >= m.body.len() as u64);
                        assert!(m.headers.len() <= config.max_headers);
                        assert!(m.trailers.len() <= config.max_headers);
                    }
                    assert!(e.end_ts >= e.start_ts);
                }
            }
        }
    }
}

#[test]
fn decoder_frames_do_not_depend_on_splits() {
    // The decoder alone, with the crate's common chunking check (every
    // chunk size up to 64 and random patterns) on each recorded direction.
    let config = Http2Config::default();
    for name in [
        "grpcio.cap",
        "grpc_js.cap",
        "h2load_nginx.cap",
        "reset_nginx.cap",
    ] {
        for conn in load(name) {
            for (client, kind) in [(true, MessageKind::Request), (false, MessageKind::Response)] {
                let stream: Vec<u8> = conn
                    .chunks
                    .iter()
                    .filter(|c| c.client == client)
                    .flat_map(|c| c.bytes.clone())
                    .collect();
                let frames = assert_chunking_equivalent(&stream, || {
                    let mut d = Http2Decoder::new(kind, &config);
                    move |b: &[u8]| d.decode(b)
                });
                assert!(
                    frames.len() > 5 && frames.iter().all(Result::is_ok),
                    "{name}"
                );
            }
        }
    }
}

/// Detection on real streams: each side's first bytes say HTTP/2 and who
/// sent them; a read that starts a later write (a connection joined mid-way)
/// is either recognised with the right side or left undecided, never taken
/// for another protocol or the other side.
#[test]
fn detection_from_the_start_and_mid_way() {
    use sonde_protocols::{Detection, Protocol, detect};
    let mut joined = [0usize; 2];
    for name in [
        "curl_nginx.cap",
        "nghttp_nginx.cap",
        "h2load_nginx.cap",
        "reset_nginx.cap",
        "grpcio.cap",
        "grpc_js.cap",
    ] {
        for conn in load(name) {
            for client in [true, false] {
                let kind = if client {
                    MessageKind::Request
                } else {
                    MessageKind::Response
                };
                let want = Some(Detection {
                    protocol: Protocol::Http2,
                    kind,
                });
                let reads: Vec<&Chunk> =
                    conn.chunks.iter().filter(|c| c.client == client).collect();
                let start: Vec<u8> = reads
                    .iter()
                    .flat_map(|c| c.bytes.clone())
                    .take(512)
                    .collect();
                assert_eq!(detect(&start), want, "{name}: first bytes");
                for read in reads.iter().skip(1) {
                    match detect(&read.bytes) {
                        None => {}
                        got => {
                            assert_eq!(
                                got,
                                want,
                                "{name}: {:x?}",
                                &read.bytes[..read.bytes.len().min(32)]
                            );
                            joined[usize::from(!client)] += 1;
                        }
                    }
                }
            }
        }
    }
    // Requests and responses that start with their header block.
    assert!(joined[0] >= 10 && joined[1] >= 10, "{joined:?}");
}
