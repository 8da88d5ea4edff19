//! Parser throughput (bytes/s, one core) over recorded-style streams: HTTP/1.1
//! requests and responses, pipelined Redis commands and replies, MySQL
//! packets and DNS messages; PostgreSQL events/s (rows) through both
//! decoders and the session over a pgbench-like extended-protocol stream. Run with `cargo bench -p sonde-protocols`
//! (`scripts/bench.sh` passes quick settings for `--size tiny`).
//!
//! The `streams` group is the cost per request/response exchange (elements/s):
//! HTTP/2 streams recorded from h2load and grpcio (both directions through
//! the frame decoders, HPACK and the session) next to the same h2load
//! exchanges written as HTTP/1.1.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sonde_protocols::Decoded;
use sonde_protocols::MessageKind;
use sonde_protocols::dns::{DnsConfig, parse_message};
use sonde_protocols::http::{Decoded as HttpDecoded, HttpConfig, HttpDecoder};
use sonde_protocols::http2::{Http2Config, Http2Decoder, Http2Session, Http2Stream};
use sonde_protocols::mysql::{MysqlConfig, MysqlPacketDecoder};
use sonde_protocols::pgsql::{PgConfig, PgDecoder, PgMessage, PgSession};
use sonde_protocols::redis::{RespConfig, RespDecoder};

/// Messages per stream: enough that per-stream setup is negligible.
const MESSAGES: usize = 1_000;

fn http_requests() -> Vec<u8> {
    let mut s = Vec::new();
    for i in 0..MESSAGES {
        s.extend_from_slice(
            format!(
                "GET /api/v1/items/{i}?limit=20 HTTP/1.1\r\nHost: shop.internal:8080\r\n\
                 User-Agent: Mozilla/5.0 (X11; Linux x86_64) bench/1.0\r\n\
                 Accept: application/json\r\nAccept-Encoding: gzip, deflate\r\n\
                 Authorization: Bearer abcdef0123456789\r\nX-Request-Id: req-{i:08}\r\n\r\n"
            )
            .as_bytes(),
        );
    }
    s
}

fn http_responses() -> Vec<u8> {
    let body = "{\"items\":[".to_string() + &"{\"id\":1,\"name\":\"widget\"},".repeat(20) + "]}";
    let mut s = Vec::new();
    for _ in 0..MESSAGES {
        s.extend_from_slice(
            format!(
                "HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Sat, 21 Nov 2026 22:00:00 GMT\r\n\
                 Content-Type: application/json\r\nContent-Length: {}\r\nConnection: keep-alive\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        );
    }
    s
}

fn decode_http(kind: MessageKind, stream: &[u8]) -> usize {
    let mut decoder = HttpDecoder::new(kind, HttpConfig::default());
    let mut rest = stream;
    let mut messages = 0;
    loop {
        match decoder.decode(rest, Some("GET")).expect("valid HTTP") {
            HttpDecoded::NeedMore => break,
            HttpDecoded::Progress { consumed, message } => {
                messages += usize::from(message.is_some());
                rest = &rest[consumed..];
            }
        }
    }
    assert_eq!(messages, MESSAGES);
    messages
}

fn redis_commands() -> Vec<u8> {
    let mut s = Vec::new();
    for i in 0..MESSAGES {
        let key = format!("session:{i:08}");
        let value = "v".repeat(64);
        s.extend_from_slice(
            format!(
                "*3\r\n$3\r\nSET\r\n${}\r\n{key}\r\n${}\r\n{value}\r\n",
                key.len(),
                value.len()
            )
            .as_bytes(),
        );
    }
    s
}

fn redis_replies() -> Vec<u8> {
    let mut s = Vec::new();
    for i in 0..MESSAGES {
        if i % 2 == 0 {
            s.extend_from_slice(b"+OK\r\n");
        } else {
            s.extend_from_slice(format!("$64\r\n{}\r\n", "r".repeat(64)).as_bytes());
        }
    }
    s
}

fn decode_redis(kind: MessageKind, stream: &[u8]) -> usize {
    let mut decoder = RespDecoder::new(kind, RespConfig::default());
    let mut rest = stream;
    let mut messages = 0;
    loop {
        match decoder.decode(rest).expect("valid RESP") {
            Decoded::NeedMore => break,
            Decoded::Progress { consumed, message } => {
                messages += usize::from(message.is_some());
                rest = &rest[consumed..];
            }
        }
    }
    assert_eq!(messages, MESSAGES);
    messages
}

/// COM_QUERY packets (client side of a MySQL connection).
fn mysql_queries() -> Vec<u8> {
    let mut s = Vec::new();
    for i in 0..MESSAGES {
        let sql = format!("SELECT id, name, price FROM products WHERE category_id = {i} LIMIT 50");
        let len = sql.len() + 1;
        s.extend_from_slice(&[len as u8, (len >> 8) as u8, (len >> 16) as u8, 0, 0x03]);
        s.extend_from_slice(sql.as_bytes());
    }
    s
}

fn decode_mysql(stream: &[u8]) -> usize {
    let mut decoder = MysqlPacketDecoder::new(MysqlConfig::default());
    let mut rest = stream;
    let mut messages = 0;
    loop {
        match decoder.decode(rest).expect("valid MySQL") {
            Decoded::NeedMore => break,
            Decoded::Progress { consumed, message } => {
                messages += usize::from(message.is_some());
                rest = &rest[consumed..];
            }
        }
    }
    assert_eq!(messages, MESSAGES);
    messages
}

/// One DNS response: www.example.com A with two answers (compressed names).
fn dns_response() -> Vec<u8> {
    let mut m = vec![0x12, 0x34, 0x81, 0x80, 0, 1, 0, 2, 0, 0, 0, 0];
    for label in ["www", "example", "com"] {
        m.push(label.len() as u8);
        m.extend_from_slice(label.as_bytes());
    }
    m.extend_from_slice(&[0, 0, 1, 0, 1]);
    for last in [34u8, 35] {
        m.extend_from_slice(&[
            0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0x0e, 0x10, 0, 4, 93, 184, 216, last,
        ]);
    }
    m
}

/// A PostgreSQL message: type byte, length, body.
fn pg_message(out: &mut Vec<u8>, tag: u8, body: &[u8]) {
    out.push(tag);
    out.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
    out.extend_from_slice(body);
}

/// What pgbench -M extended sends and gets per statement: Parse (unnamed),
/// Bind with two text parameters, Describe, Execute, Sync; ParseComplete,
/// BindComplete, RowDescription, one DataRow, CommandComplete,
/// ReadyForQuery. Returns (client stream, server stream).
fn pgsql_streams() -> (Vec<u8>, Vec<u8>) {
    let (mut client, mut server) = (Vec::new(), Vec::new());
    for i in 0..MESSAGES {
        pg_message(
            &mut client,
            b'P',
            b"\0UPDATE pgbench_accounts SET abalance = abalance + $1 WHERE aid = $2;\0\0\0",
        );
        let mut bind = b"\0\0\0\0\0\x02".to_vec();
        for value in [format!("{}", i % 5000), format!("{}", i * 7 % 100_000)] {
            bind.extend_from_slice(&(value.len() as u32).to_be_bytes());
            bind.extend_from_slice(value.as_bytes());
        }
        bind.extend_from_slice(b"\0\0");
        pg_message(&mut client, b'B', &bind);
        pg_message(&mut client, b'D', b"P\0");
        pg_message(&mut client, b'E', b"\0\0\0\0\0");
        pg_message(&mut client, b'S', b"");
        pg_message(&mut server, b'1', b"");
        pg_message(&mut server, b'2', b"");
        pg_message(
            &mut server,
            b'T',
            b"\0\x01abalance\0\0\0\x40\x00\0\x03\0\0\0\x17\0\x04\xff\xff\xff\xff\0\0",
        );
        pg_message(&mut server, b'D', b"\0\x01\0\0\0\x041234");
        pg_message(&mut server, b'C', b"UPDATE 1\0");
        pg_message(&mut server, b'Z', b"I");
    }
    (client, server)
}

/// Decodes both directions (the client's statement, then the server's
/// answer, as they alternate on the wire) into the session: events.
fn pgsql_events(client: &[u8], server: &[u8]) -> usize {
    let config = PgConfig::default();
    let mut session = PgSession::new(config.clone());
    let mut decoders = [
        PgDecoder::new(MessageKind::Request, config.clone()),
        PgDecoder::new(MessageKind::Response, config),
    ];
    let mut rests = [client, server];
    let mut events = 0;
    // Five client messages, then six server messages, per statement.
    let next = |i: usize, decoders: &mut [PgDecoder; 2], rests: &mut [&[u8]; 2]| -> PgMessage {
        loop {
            match decoders[i].decode(rests[i]).expect("valid PostgreSQL") {
                Decoded::NeedMore => panic!("stream ended early"),
                Decoded::Progress { consumed, message } => {
                    rests[i] = &rests[i][consumed..];
                    if let Some(m) = message {
                        return m;
                    }
                }
            }
        }
    };
    for ts in 0..MESSAGES as u64 {
        for _ in 0..5 {
            let m = next(0, &mut decoders, &mut rests);
            events += usize::from(session.on_frontend(&m, ts).is_some());
        }
        for _ in 0..6 {
            let m = next(1, &mut decoders, &mut rests);
            events += usize::from(session.on_backend(&m, ts).is_some());
        }
    }
    assert_eq!(events, MESSAGES);
    events
}

/// A named input stream and the function that parses all of it (returning
/// how many messages it found, so the work cannot be optimised away).
type Case = (&'static str, Vec<u8>, fn(&[u8]) -> usize);

fn parsers(c: &mut Criterion) {
    let mut group = c.benchmark_group("parsers");
    let cases: Vec<Case> = vec![
        ("http_requests", http_requests(), |s| {
            decode_http(MessageKind::Request, s)
        }),
        ("http_responses", http_responses(), |s| {
            decode_http(MessageKind::Response, s)
        }),
        ("redis_pipelined_commands", redis_commands(), |s| {
            decode_redis(MessageKind::Request, s)
        }),
        ("redis_replies", redis_replies(), |s| {
            decode_redis(MessageKind::Response, s)
        }),
        ("mysql_com_query", mysql_queries(), decode_mysql),
    ];
    for (name, stream, decode) in &cases {
        group.throughput(Throughput::Bytes(stream.len() as u64));
        group.bench_function(*name, |b| b.iter(|| decode(black_box(stream))));
    }
    let dns = dns_response();
    let config = DnsConfig::default();
    group.throughput(Throughput::Bytes(dns.len() as u64));
    group.bench_function("dns_response", |b| {
        b.iter(|| parse_message(black_box(&dns), &config).expect("valid DNS"))
    });
    group.finish();

    let (client, server) = pgsql_streams();
    let mut group = c.benchmark_group("pgsql");
    group.throughput(Throughput::Elements(MESSAGES as u64));
    group.bench_function("pgbench_extended_events", |b| {
        b.iter(|| pgsql_events(black_box(&client), black_box(&server)))
    });
    group.throughput(Throughput::Bytes((client.len() + server.len()) as u64));
    group.bench_function("pgbench_extended_bytes", |b| {
        b.iter(|| pgsql_events(black_box(&client), black_box(&server)))
    });
    group.finish();
}

/// A recorded connection (see `tests/data/http2/`): each direction's bytes.
fn recorded(name: &str) -> [Vec<u8>; 2] {
    let path = format!("{}/tests/data/http2/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).expect("recording");
    let mut dirs = [Vec::new(), Vec::new()];
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let parts: Vec<&str> = line.split(' ').collect();
        if parts[0] != "1" || parts[1] == "end" {
            continue;
        }
        let hex = parts[3];
        dirs[usize::from(parts[1] == "s")].extend(
            (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()),
        );
    }
    dirs
}

/// Decodes one recorded connection: the client's frames, then the
/// server's, through the session. Returns the streams completed.
fn decode_http2(dirs: &[Vec<u8>; 2]) -> usize {
    let config = Http2Config::default();
    let mut session = Http2Session::new(config.clone());
    let mut out: Vec<Http2Stream> = Vec::new();
    for (bytes, kind) in dirs
        .iter()
        .zip([MessageKind::Request, MessageKind::Response])
    {
        let mut decoder = Http2Decoder::new(kind, &config);
        let mut rest = &bytes[..];
        while let Ok(Decoded::Progress { consumed, message }) = decoder.decode(rest) {
            rest = &rest[consumed..];
            if let Some(frame) = message {
                session.on_frame(kind, frame, 0, 0, &mut out);
            }
        }
    }
    out.len()
}

/// h2load's 40 exchanges of `h2load_nginx.cap` as HTTP/1.1.
fn http1_like_h2load() -> [Vec<u8>; 2] {
    let mut req = Vec::new();
    let mut resp = Vec::new();
    for _ in 0..40 {
        req.extend_from_slice(
            b"GET /hello.txt HTTP/1.1\r\nHost: 127.0.0.1:18180\r\n\
              User-Agent: h2load nghttp2/1.52.0\r\nx-load: yes\r\n\r\n",
        );
        resp.extend_from_slice(
            b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Sat, 28 Nov 2026 19:39:22 GMT\r\n\
              Content-Type: text/plain\r\nContent-Length: 14\r\n\
              Last-Modified: Sat, 28 Nov 2026 19:39:20 GMT\r\nETag: \"6b0b2de8-e\"\r\n\
              Accept-Ranges: bytes\r\n\r\nhello, http/2\n",
        );
    }
    [req, resp]
}

fn decode_http1_exchanges(dirs: &[Vec<u8>; 2]) -> usize {
    let mut messages = 0;
    for (bytes, kind) in dirs
        .iter()
        .zip([MessageKind::Request, MessageKind::Response])
    {
        let mut decoder = HttpDecoder::new(kind, HttpConfig::default());
        let mut rest = &bytes[..];
        while let Ok(HttpDecoded::Progress { consumed, message }) =
            decoder.decode(rest, Some("GET"))
        {
            messages += usize::from(message.is_some());
            rest = &rest[consumed..];
        }
    }
    messages / 2
}

/// A named connection (both directions), its exchange count and the
/// function that decodes it.
type StreamCase = (
    &'static str,
    [Vec<u8>; 2],
    usize,
    fn(&[Vec<u8>; 2]) -> usize,
);

/// Cost per exchange (stream): elements/s.
fn streams(c: &mut Criterion) {
    let mut group = c.benchmark_group("streams");
    let cases: Vec<StreamCase> = vec![
        (
            "http1_like_h2load",
            http1_like_h2load(),
            40,
            decode_http1_exchanges,
        ),
        (
            "http2_h2load_nginx",
            recorded("h2load_nginx.cap"),
            40,
            decode_http2,
        ),
        ("http2_grpcio", recorded("grpcio.cap"), 5, decode_http2),
    ];
    for (name, dirs, n, decode) in &cases {
        assert_eq!(decode(dirs), *n, "{name}");
        group.throughput(Throughput::Elements(*n as u64));
        group.bench_function(*name, |b| b.iter(|| decode(black_box(dirs))));
    }
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args()
}

criterion_group! { name = benches; config = config(); targets = parsers, streams }
criterion_main!(benches);
