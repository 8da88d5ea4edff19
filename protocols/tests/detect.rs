//! Detection of protocol and message kind from stream prefixes, port hints
//! and datagrams.

mod common;

use common::{Lcg, dns, mutate, mysql};
use sonde_protocols::MessageKind::{Request, Response};
use sonde_protocols::Protocol::{Dns, Http, Mysql, Redis};
use sonde_protocols::{
    Detection, MessageKind, Protocol, detect, detect_datagram, detect_with_hint,
};

fn d(protocol: Protocol, kind: MessageKind) -> Option<Detection> {
    Some(Detection { protocol, kind })
}

#[test]
fn detection_table() {
    let request = d(Http, Request);
    let response = d(Http, Response);
    let cases: &[(&[u8], Option<Detection>)] = &[
        (b"GET /x HT", request),
        (b"GET /", request),
        (b"GET /index.html HTTP/1.1\r\nHost: a\r\n\r\n", request),
        (b"POST /api HTTP/1.1\r\n", request),
        (b"HEAD / HTTP/1.0", request),
        (b"PUT /k", request),
        (b"DELETE /k", request),
        (b"PATCH /k", request),
        (b"TRACE /", request),
        (b"OPTIONS * HTTP/1.1", request),
        (b"CONNECT example.com:443 HTTP/1.1", request),
        (b"CONNECT [::1]:443 HTTP/1.1", request),
        (b"GET http://proxy.example/ HTTP/1.1", request),
        (b"PROPFIND /dav/ HTTP/1.1", request),
        (b"HTTP/1.1 200", response),
        (b"HTTP/1.1 2", response),
        (b"HTTP/1.0 404 Not Found\r\n", response),
        (b"HTTP/1.1 101 Switching Protocols", response),
        // Too short to tell.
        (b"", None),
        (b"G", None),
        (b"GE", None),
        (b"GET", None),
        (b"GET ", None),
        (b"HTTP/1.1", None),
        (b"HTTP/1.1 ", None),
        (b"HTTP/1.", None),
        // Not HTTP/1.x, or not a request line.
        (b"get / HTTP/1.1", None),
        (b"GETX / HTTP/1.1", None),
        (b"GET  / HTTP/1.1", None),
        (b"GET x", None),
        (b"CONNECT /", None),
        (b"OPTIONS -", None),
        (b"FOO / HTTP/1.1", None),
        (
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
            d(Protocol::Http2, Request),
        ),
        (b"PRI * HTTP/2.0\r\n\r\nSM", None),
        (b"HTTP/2 200", None),
        (b"HTTP/1.2 200", None),
        (b"HTTP/1.1 OK", None),
        (b" GET / HTTP/1.1", None),
        (b"\x16\x03\x01\x02\x00\x01\x00", None),
        (b"\x00\x00\x01\x00\x00\x01", None),
        // Redis.
        (b"*1\r\n$4\r\nPING\r\n", d(Redis, Request)),
        (
            b"*3\r\n$3\r\nset\r\n$1\r\nk\r\n$1\r\nv\r\n",
            d(Redis, Request),
        ),
        (b"*1\r\n$4\r\nPI", None),
        (b"*2\r\n$8\r\nJSON.GET\r\n$1\r\nk\r\n", None),
        (b"*1\r\n$4\r\nP NG\r\n", None),
        (b"-ERR unknown command 'x'\r\n", d(Redis, Response)),
        (
            b"-WRONGTYPE Operation against a key\r\n",
            d(Redis, Response),
        ),
        (b"-ERR", None),
        (b"+PONG\r\n", d(Redis, Response)),
        (b"+OK\r\n", None),
        (b":1\r\n", None),
        (b"$5\r\nhello\r\n", None),
        (b"%7\r\n$6\r\nserver\r\n$5\r\nredis\r\n", d(Redis, Response)),
        (b">3\r\n$7\r\nmessage\r\n$1\r\nc\r\n", d(Redis, Response)),
        (b"*3\r\n$7\r\nmessage\r\n$1\r\nc\r\n", d(Redis, Response)),
        (b"*2\r\n$1\r\na\r\n$1\r\nb\r\n", None),
        (b"PING\r\n", None),
    ];
    for (input, want) in cases {
        assert_eq!(detect(input), *want, "{:?}", String::from_utf8_lossy(input));
    }
}

fn select() -> Vec<u8> {
    mysql::command(0x03, b"SELECT * FROM users WHERE id = 1")
}

#[test]
fn mysql_and_dns_detection() {
    let caps = 0x0fff_f7ff;
    let greeting = mysql::greeting("8.0.36", caps, "caching_sha2_password");
    let login = mysql::handshake_response(
        0x01ff_a685,
        "app",
        &[1; 20],
        Some("shop"),
        "mysql_native_password",
    );
    let mut result_set = mysql::packet(1, &[2]);
    result_set.extend(mysql::column(2, "users", "id", 3));
    let query = dns::query(0x1234, "example.com", 1);
    let mut answer = dns::header(0x1234, 0x8180, [1, 1, 0, 0]);
    answer.extend(dns::name("example.com"));
    answer.extend_from_slice(&[0, 1, 0, 1]);
    answer.extend(dns::record(&[0xc0, 12], 1, 300, &[93, 184, 216, 34]));
    let cases: Vec<(Vec<u8>, Option<Detection>)> = vec![
        (select(), d(Mysql, Request)),
        (select()[..8].to_vec(), None),
        (mysql::command(0x03, b"\x00\x01select 1"), d(Mysql, Request)),
        (mysql::command(0x03, b"\x01\x02\x03"), None),
        (mysql::command(0x0e, b""), d(Mysql, Request)),
        (mysql::command(0x0e, b"x"), None),
        (mysql::command(0x02, b"shop"), d(Mysql, Request)),
        (mysql::command(0x16, b"SELECT ?"), d(Mysql, Request)),
        (
            mysql::command(0x17, &[1, 0, 0, 0, 0, 1, 0, 0, 0]),
            d(Mysql, Request),
        ),
        (mysql::command(0x19, &[1, 0, 0, 0]), d(Mysql, Request)),
        (mysql::command(0x42, b"x"), None),
        (greeting.clone(), d(Mysql, Response)),
        (greeting[..12].to_vec(), None),
        (login, d(Mysql, Request)),
        (
            mysql::err(1, 1146, "42S02", "Table 'shop.x' doesn't exist"),
            d(Mysql, Response),
        ),
        (mysql::err(1, 1146, "42S02", "")[..10].to_vec(), None),
        (mysql::ok(1, 0, 1, 0, 2), None),
        (result_set, d(Mysql, Response)),
        (dns::tcp(&query), d(Dns, Request)),
        (dns::tcp(&query)[..16].to_vec(), None),
        (dns::tcp(&answer), d(Dns, Response)),
        // A query whose flags say response, or with answers, is no evidence.
        (dns::tcp(&dns::header(1, 0x0100, [1, 1, 0, 0])), None),
        (
            dns::tcp(&{
                let mut q = query.clone();
                q[2] |= 0x84;
                q[3] = 0x43;
                q
            }),
            None,
        ),
        // A response without answers (NODATA) is a response.
        (
            dns::tcp(&{
                let mut q = query.clone();
                q[2] |= 0x80;
                q
            }),
            d(Dns, Response),
        ),
    ];
    for (input, want) in &cases {
        assert_eq!(detect(input), *want, "{input:x?}");
    }
}

/// Regression (dns_tcp fuzz target): a DNS response whose length prefix
/// starts with '#' (a RESP3 boolean) stayed undecided for Redis, so
/// detection waited forever; scalar reply lines are now ruled out at the
/// first byte that cannot belong to them.
#[test]
fn undecided_candidates_are_ruled_out_early() {
    let data = [
        0x23, 0x00, 0xff, 0xff, 0x80, 0x04, 0x00, 0x01, 0x00, 0x01, 0x00, 0x01, 0x01, 0x00, 0x00,
        0x04, 0x00, 0x00, 0x01, 0x00, 0x29, 0xb4, 0x00,
    ];
    assert_eq!(detect(&data), d(Dns, Response));
    let cases: &[&[u8]] = &[b"#\x00", b"#tx", b":12a", b"+a\x01", b"_x", b",1z"];
    for input in cases {
        assert_eq!(detect_with_hint(input, Some(Redis)), None, "{input:?}");
    }
}

#[test]
fn port_hints_break_ties_but_never_decide_alone() {
    let ok = mysql::ok(1, 0, 1, 0, 2);
    let cases: Vec<(&[u8], Option<Protocol>, Option<Detection>)> = vec![
        (b"+OK\r\n", Some(Redis), d(Redis, Response)),
        (b"+OK\r\n", Some(Mysql), None),
        (b"+OK\r\n", None, None),
        (b":42\r\n", Some(Redis), d(Redis, Response)),
        (
            b"*2\r\n$8\r\nJSON.GET\r\n$1\r\nk\r\n",
            Some(Redis),
            d(Redis, Request),
        ),
        (b"PING\r\n", Some(Redis), d(Redis, Request)),
        (b"get k\r\n", Some(Redis), d(Redis, Request)),
        (b"GET / HTTP/1.1\r\n", Some(Redis), d(Http, Request)),
        (&ok, Some(Mysql), d(Mysql, Response)),
        (&ok, Some(Redis), None),
        (&ok, None, None),
        // Evidence of the hinted protocol is needed.
        (b"\x01\x02\x03\x04\x05\x06\x07", Some(Mysql), None),
        (b"hello world", Some(Redis), None),
        (b"hello world", Some(Dns), None),
        // A strong candidate wins whatever the hint.
        (b"*1\r\n$4\r\nPING\r\n", Some(Http), d(Redis, Request)),
    ];
    for (input, hint, want) in cases {
        assert_eq!(detect_with_hint(input, hint), want, "{input:x?} {hint:?}");
    }
}

#[test]
fn datagrams() {
    let query = dns::query(7, "example.com", 28);
    let mut answer = dns::header(7, 0x8180, [1, 2, 0, 1]);
    answer.extend(dns::name("example.com"));
    answer.extend_from_slice(&[0, 28, 0, 1]);
    answer.extend(dns::record(
        &[0xc0, 12],
        5,
        60,
        &[3, b'w', b'w', b'w', 0xc0, 12],
    ));
    answer.extend(dns::record(
        &[0xc0, 29],
        28,
        60,
        &[0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
    ));
    answer.extend(dns::record(&[0], 41, 0, &[]));
    let mut trailing = answer.clone();
    trailing.push(0);
    let mut with_edns = dns::header(9, 0x0120, [1, 0, 0, 1]);
    with_edns.extend(dns::name("example.org"));
    with_edns.extend_from_slice(&[0, 1, 0, 1, 0, 0, 41, 0x10, 0, 0, 0, 0, 0, 0, 0]);
    let cases: Vec<(Vec<u8>, Option<Detection>)> = vec![
        (query.clone(), d(Dns, Request)),
        (with_edns, d(Dns, Request)),
        (answer.clone(), d(Dns, Response)),
        // A copy cut short inside the records is still DNS.
        (answer[..answer.len() - 20].to_vec(), d(Dns, Response)),
        // Cut inside the question, or with bytes after the records: not.
        (query[..20].to_vec(), None),
        (trailing, None),
        (b"GET / HTTP/1.1\r\n\r\n".to_vec(), None),
        (vec![0; 40], None),
        (vec![], None),
    ];
    for (input, want) in cases {
        assert_eq!(detect_datagram(&input), want, "{input:x?}");
    }
}

/// Evidence only grows with more bytes: once a prefix is detected, every
/// longer prefix gives the same answer, with or without a hint.
#[test]
fn detection_is_monotonic() {
    let mut answer = dns::header(1, 0x8180, [1, 1, 0, 0]);
    answer.extend(dns::name("a.example"));
    answer.extend_from_slice(&[0, 1, 0, 1]);
    answer.extend(dns::record(&[0xc0, 12], 1, 1, &[1, 2, 3, 4]));
    let seeds: Vec<Vec<u8>> = vec![
        b"GET /index.html HTTP/1.1\r\n\r\n".to_vec(),
        b"HTTP/1.1 200 OK\r\n\r\n".to_vec(),
        b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n".to_vec(),
        b"-ERR x\r\n+OK\r\n%1\r\n$6\r\nserver\r\n".to_vec(),
        select(),
        mysql::greeting("5.7.44-log", 0xffff_ffff, "mysql_native_password"),
        mysql::err(1, 1062, "23000", "Duplicate entry"),
        dns::tcp(&dns::query(5, "x.example.com", 1)),
        dns::tcp(&answer),
        // HTTP/2: the client preface and SETTINGS; a server's SETTINGS; a
        // WINDOW_UPDATE then a request's HEADERS, mid-way.
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x06\x04\x00\x00\x00\x00\x00\x00\x03\x00\x00\x00\x64".to_vec(),
        b"\x00\x00\x06\x04\x00\x00\x00\x00\x00\x00\x04\x00\x01\x00\x00\x00\x00\x01\x04\x00\x00\x00\x01\x88".to_vec(),
        b"\x00\x00\x04\x08\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x03\x01\x05\x00\x00\x00\x03\x82\x86\x84".to_vec(),
    ];
    let tokens: &[&[u8]] = &[
        b"\r\n", b"*1", b"$4", b"\x00", b"\x01", b"\xff", b"#", b"def",
    ];
    let hints = [None, Some(Http), Some(Dns), Some(Mysql), Some(Redis)];
    let mut rng = Lcg(99);
    let mut detected = 0;
    for round in 0..6000 {
        let seed = &seeds[round % seeds.len()];
        let input = if round < seeds.len() {
            seed.clone()
        } else {
            mutate(&mut rng, seed, tokens)
        };
        for hint in hints {
            let mut seen = None;
            for len in 0..=input.len().min(80) {
                let got = detect_with_hint(&input[..len], hint);
                if seen.is_some() {
                    assert_eq!(got, seen, "{input:x?} at {len} with {hint:?}");
                }
                seen = got;
            }
            detected += usize::from(seen.is_some());
        }
        detect_datagram(&input);
    }
    assert!(detected > 6000, "only {detected} detections");
}
