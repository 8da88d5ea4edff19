//! Table-driven tests of the HTTP decoder: messages, errors, gaps, resync.

mod common;

use common::{Caller, Events, decode_whole, request, response};
use sonde_protocols::MessageKind::{self, Request, Response};
use sonde_protocols::http::{
    Decoded, GapOutcome, HttpConfig, HttpDecoder, HttpError, HttpMessage, find_message_start,
};

fn with_minor(mut message: HttpMessage, minor: u8) -> HttpMessage {
    message.minor_version = minor;
    message
}

#[test]
fn requests() {
    let cases: Vec<(&str, &[u8], Vec<HttpMessage>)> = vec![
        (
            "GET without body",
            b"GET /index.html?q=1 HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n",
            vec![request(
                "GET",
                "/index.html?q=1",
                &[("Host", "example.com"), ("Accept", "*/*")],
                b"",
            )],
        ),
        (
            "POST with Content-Length",
            b"POST /api HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 13\r\n\r\n{\"a\":\"hello\"}",
            vec![request(
                "POST",
                "/api",
                &[("Content-Type", "application/json"), ("Content-Length", "13")],
                b"{\"a\":\"hello\"}",
            )],
        ),
        (
            "chunked with extensions, trailers and several chunks",
            b"POST /up HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n\
              5;ext=1\r\nhello\r\n6;a;b=\"c\"\r\n world\r\n0\r\nX-Checksum: abc\r\n\r\n",
            vec![request(
                "POST",
                "/up",
                &[("Transfer-Encoding", "chunked")],
                b"hello world",
            )],
        ),
        (
            "Transfer-Encoding wins over Content-Length",
            b"POST /x HTTP/1.1\r\nContent-Length: 100\r\nTransfer-Encoding: gzip, chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
            vec![request(
                "POST",
                "/x",
                &[("Content-Length", "100"), ("Transfer-Encoding", "gzip, chunked")],
                b"abc",
            )],
        ),
        (
            "identical repeated Content-Length values",
            b"PUT /k HTTP/1.1\r\nContent-Length: 2, 2\r\ncontent-length: 2\r\n\r\nok",
            vec![request(
                "PUT",
                "/k",
                &[("Content-Length", "2, 2"), ("content-length", "2")],
                b"ok",
            )],
        ),
        (
            "HTTP/1.0",
            b"GET / HTTP/1.0\r\n\r\n",
            vec![with_minor(request("GET", "/", &[], b""), 0)],
        ),
        (
            "pipelining: three requests in one buffer, stray CRLF between",
            b"GET /a HTTP/1.1\r\nHost: h\r\n\r\n\
              POST /b HTTP/1.1\r\nContent-Length: 3\r\n\r\nxyz\r\n\
              DELETE /c HTTP/1.1\r\n\r\n",
            vec![
                request("GET", "/a", &[("Host", "h")], b""),
                request("POST", "/b", &[("Content-Length", "3")], b"xyz"),
                request("DELETE", "/c", &[], b""),
            ],
        ),
        (
            "redaction; names keep their case",
            b"GET / HTTP/1.1\r\nAUTHORIZATION: Bearer s3cret\r\nCookie: sid=1\r\n\
              x-api-key: k\r\nProxy-Authorization: Basic eA==\r\nApi-Key: k2\r\n\
              X-Auth-Token: t\r\nX-Mixed-CASE: Visible\r\n\r\n",
            vec![request(
                "GET",
                "/",
                &[
                    ("AUTHORIZATION", "<redacted>"),
                    ("Cookie", "<redacted>"),
                    ("x-api-key", "<redacted>"),
                    ("Proxy-Authorization", "<redacted>"),
                    ("Api-Key", "<redacted>"),
                    ("X-Auth-Token", "<redacted>"),
                    ("X-Mixed-CASE", "Visible"),
                ],
                b"",
            )],
        ),
        (
            "lossy UTF-8 in header values, UTF-8 kept",
            b"GET / HTTP/1.1\r\nX-Name: caf\xe9\r\nX-Utf8: caf\xc3\xa9\r\ncontent-TYPE: text/plain\r\n\r\n",
            vec![request(
                "GET",
                "/",
                &[
                    ("X-Name", "caf\u{fffd}"),
                    ("X-Utf8", "caf\u{e9}"),
                    ("content-TYPE", "text/plain"),
                ],
                b"",
            )],
        ),
        (
            "absolute-form and asterisk targets",
            b"OPTIONS * HTTP/1.1\r\n\r\nGET http://h/p HTTP/1.1\r\n\r\n",
            vec![
                request("OPTIONS", "*", &[], b""),
                request("GET", "http://h/p", &[], b""),
            ],
        ),
    ];
    for (name, input, want) in cases {
        let got = decode_whole(Request, &[], input);
        let want: Vec<_> = want.into_iter().map(Ok).collect();
        assert_eq!(got, want, "{name}");
    }
}

#[test]
fn responses() {
    // Name, methods of the requests answered, stream, expected messages.
    type Case = (
        &'static str,
        &'static [&'static str],
        &'static [u8],
        Vec<HttpMessage>,
    );
    let cases: Vec<Case> = vec![
        (
            "Content-Length",
            &["GET"],
            b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 5\r\n\r\nhello",
            vec![response(
                200,
                "OK",
                &[("Content-Type", "text/html"), ("Content-Length", "5")],
                b"hello",
            )],
        ),
        (
            "HEAD response has no body despite Content-Length",
            &["HEAD", "GET"],
            b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n\
              HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n",
            vec![
                response(200, "OK", &[("Content-Length", "1234")], b""),
                response(404, "Not Found", &[("Content-Length", "0")], b""),
            ],
        ),
        (
            "100 Continue then the final response",
            &["POST"],
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nid",
            vec![
                response(100, "Continue", &[], b""),
                response(201, "Created", &[("Content-Length", "2")], b"id"),
            ],
        ),
        (
            "204 and 304 have no body even with Content-Length",
            &["DELETE", "GET", "GET"],
            b"HTTP/1.1 204 No Content\r\n\r\n\
              HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n\
              HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx",
            vec![
                response(204, "No Content", &[], b""),
                response(304, "Not Modified", &[("Content-Length", "10")], b""),
                response(200, "OK", &[("Content-Length", "1")], b"x"),
            ],
        ),
        (
            "chunked response, Set-Cookie redacted",
            &["GET"],
            b"HTTP/1.1 200 OK\r\nSet-Cookie: a=b\r\nTransfer-Encoding: chunked\r\n\r\n\
              4\r\nWiki\r\n5\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\n\r\n",
            vec![response(
                200,
                "OK",
                &[("Set-Cookie", "<redacted>"), ("Transfer-Encoding", "chunked")],
                b"Wikipedia in\r\n\r\nchunks.",
            )],
        ),
        (
            "HTTP/1.0 close-delimited, completed by finish",
            &["GET"],
            b"HTTP/1.0 200 OK\r\nServer: old\r\n\r\nall of this until close",
            vec![with_minor(
                response(200, "OK", &[("Server", "old")], b"all of this until close"),
                0,
            )],
        ),
        (
            "Transfer-Encoding not ending in chunked: close-delimited",
            &["GET"],
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n\x1f\x8b",
            vec![response(
                200,
                "OK",
                &[("Transfer-Encoding", "gzip")],
                b"\x1f\x8b",
            )],
        ),
        (
            "reason phrase: lossy UTF-8, empty",
            &["GET", "GET"],
            b"HTTP/1.1 200 Tr\xe8s bien\r\nContent-Length: 0\r\n\r\nHTTP/1.1 500\r\nContent-Length: 0\r\n\r\n",
            vec![
                response(200, "Tr\u{fffd}s bien", &[("Content-Length", "0")], b""),
                response(500, "", &[("Content-Length", "0")], b""),
            ],
        ),
    ];
    for (name, methods, input, want) in cases {
        let got = decode_whole(Response, methods, input);
        let want: Vec<_> = want.into_iter().map(Ok).collect();
        assert_eq!(got, want, "{name}");
    }
}

#[test]
fn connect_tunnel_ends_http() {
    let input = b"HTTP/1.1 200 Connection Established\r\n\r\n\x16\x03\x01\x02\x00";
    let got = decode_whole(Response, &["CONNECT"], input);
    assert_eq!(
        got,
        vec![
            Ok(response(200, "Connection Established", &[], b"")),
            Err(HttpError::InvalidHead),
        ]
    );
}

#[test]
fn body_prefix_truncation() {
    let body: Vec<u8> = (0..5000u32).map(|i| b'a' + (i % 26) as u8).collect();
    let mut input = b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n".to_vec();
    input.extend_from_slice(&body);
    // Same body chunked, in pieces of 999 bytes.
    let mut chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for piece in body.chunks(999) {
        chunked.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        chunked.extend_from_slice(piece);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");

    for (stream, header) in [
        (input, ("Content-Length", "5000")),
        (chunked, ("Transfer-Encoding", "chunked")),
    ] {
        let got = decode_whole(Response, &["GET"], &stream);
        let mut want = response(200, "OK", &[header], &body[..1024]);
        want.body_size = 5000;
        assert_eq!(got, vec![Ok(want)]);
    }
}

#[test]
fn errors() {
    let many_headers: Vec<u8> = [
        b"GET / HTTP/1.1\r\n".as_slice(),
        &b"X: y\r\n".repeat(65),
        b"\r\n",
    ]
    .concat();
    let long_line = [b"GET / HTTP/1.1\r\nX: ".as_slice(), &[b'a'; 20_000]].concat();
    let long_head = [long_line.as_slice(), b"\r\n\r\n"].concat();
    let cases: Vec<(&str, MessageKind, &[u8], Events)> = vec![
        (
            "binary garbage",
            Request,
            b"\x00\x01\x02garbage",
            vec![Err(HttpError::InvalidHead)],
        ),
        (
            "garbage response",
            Response,
            b"SSH-2.0-OpenSSH\r\n",
            vec![Err(HttpError::InvalidHead)],
        ),
        (
            "HTTP/2 preface",
            Request,
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
            vec![Err(HttpError::InvalidHead)],
        ),
        (
            "space in header name",
            Request,
            b"GET / HTTP/1.1\r\nBad Name: v\r\n\r\n",
            vec![Err(HttpError::InvalidHead)],
        ),
        (
            "incomplete head over the cap",
            Request,
            &long_line,
            vec![Err(HttpError::HeadTooLarge)],
        ),
        (
            "complete head over the cap",
            Request,
            &long_head,
            vec![Err(HttpError::HeadTooLarge)],
        ),
        (
            "65 headers",
            Request,
            &many_headers,
            vec![Err(HttpError::TooManyHeaders)],
        ),
        (
            "non-numeric Content-Length",
            Request,
            b"POST / HTTP/1.1\r\nContent-Length: abc\r\n\r\n",
            vec![Err(HttpError::InvalidContentLength)],
        ),
        (
            "negative Content-Length",
            Response,
            b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            vec![Err(HttpError::InvalidContentLength)],
        ),
        (
            "Content-Length overflowing u64",
            Request,
            b"POST / HTTP/1.1\r\nContent-Length: 18446744073709551616\r\n\r\n",
            vec![Err(HttpError::InvalidContentLength)],
        ),
        (
            "conflicting Content-Length fields",
            Request,
            b"POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
            vec![Err(HttpError::InvalidContentLength)],
        ),
        (
            "conflicting Content-Length list",
            Response,
            b"HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\nhello",
            vec![Err(HttpError::InvalidContentLength)],
        ),
        (
            "bad chunk size after a good message",
            Request,
            b"GET / HTTP/1.1\r\n\r\nPOST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            vec![
                Ok(request("GET", "/", &[], b"")),
                Err(HttpError::InvalidChunk),
            ],
        ),
        (
            "missing CRLF after chunk data",
            Response,
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc",
            vec![Err(HttpError::InvalidChunk)],
        ),
        (
            "request with a non-chunked Transfer-Encoding",
            Request,
            b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
            vec![Err(HttpError::InvalidHead)],
        ),
    ];
    for (name, kind, input, want) in cases {
        assert_eq!(decode_whole(kind, &["GET", "GET"], input), want, "{name}");
    }
}

#[test]
fn error_display() {
    assert_eq!(
        HttpError::InvalidContentLength.to_string(),
        "invalid or conflicting Content-Length"
    );
    let err: Box<dyn std::error::Error> = Box::new(HttpError::InvalidChunk);
    assert_eq!(err.to_string(), "invalid chunked transfer coding");
}

fn progress(consumed: usize, message: Option<HttpMessage>) -> Result<Decoded, HttpError> {
    Ok(Decoded::Progress {
        consumed,
        message: message.map(Box::new),
    })
}

#[test]
fn gap_inside_content_length_body_is_absorbed() {
    let mut d = HttpDecoder::new(Request, HttpConfig::default());
    let first = b"POST /u HTTP/1.1\r\nContent-Length: 100\r\n\r\n0123456789";
    assert_eq!(d.decode(first, None), progress(first.len(), None));
    assert!(!d.is_idle());
    assert_eq!(d.skip_gap(50), GapOutcome::Absorbed);
    let mut want = request("POST", "/u", &[("Content-Length", "100")], b"0123456789");
    want.body_size = 100;
    want.body_incomplete = true;
    // 40 bytes finish the body; the other 5 belong to the next message.
    assert_eq!(d.decode(&[b'z'; 45], None), progress(40, Some(want)));
    assert!(d.is_idle());
}

#[test]
fn gap_ending_the_body_completes_the_message() {
    let mut d = HttpDecoder::new(Response, HttpConfig::default());
    let first = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nab";
    assert_eq!(d.decode(first, Some("GET")), progress(first.len(), None));
    assert_eq!(d.skip_gap(8), GapOutcome::Absorbed);
    assert!(!d.is_idle());
    let mut want = response(200, "OK", &[("Content-Length", "10")], b"ab");
    want.body_size = 10;
    want.body_incomplete = true;
    assert_eq!(d.decode(&[], Some("GET")), progress(0, Some(want)));
    assert!(d.is_idle());
    assert_eq!(d.decode(&[], Some("GET")), Ok(Decoded::NeedMore));
}

#[test]
fn gaps_in_chunked_and_close_delimited_bodies() {
    // Inside chunk data: absorbed.
    let mut d = HttpDecoder::new(Response, HttpConfig::default());
    let head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\na\r\nxy";
    assert_eq!(d.decode(head, None), progress(head.len(), None));
    assert_eq!(d.skip_gap(8), GapOutcome::Absorbed);
    let tail = b"\r\n1\r\nq\r\n0\r\n\r\n";
    let mut want = response(200, "OK", &[("Transfer-Encoding", "chunked")], b"xy");
    want.body_size = 11;
    want.body_incomplete = true;
    assert_eq!(d.decode(tail, None), progress(tail.len(), Some(want)));

    // Over chunk framing: lost.
    assert_eq!(d.decode(head, None), progress(head.len(), None));
    assert_eq!(d.skip_gap(9), GapOutcome::MessageLost);
    assert!(d.is_idle());

    // Close-delimited: any gap is absorbed, `finish` completes the message.
    let head = b"HTTP/1.0 200 OK\r\n\r\nstart";
    assert_eq!(d.decode(head, None), progress(head.len(), None));
    assert_eq!(d.skip_gap(1 << 40), GapOutcome::Absorbed);
    assert_eq!(d.decode(b"end", None), progress(3, None));
    let mut want = response(200, "OK", &[], b"start");
    want.minor_version = 0;
    want.body_size = 8 + (1 << 40);
    want.body_incomplete = true;
    assert_eq!(d.finish(), Some(Box::new(want)));
    assert!(d.is_idle());
}

#[test]
fn lost_messages() {
    let mut d = HttpDecoder::new(Request, HttpConfig::default());
    assert_eq!(d.skip_gap(0), GapOutcome::Absorbed, "nothing lost");
    assert_eq!(
        d.skip_gap(1),
        GapOutcome::MessageLost,
        "idle: unknown bytes lost"
    );

    // Gap larger than the rest of a Content-Length body.
    let first = b"POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\n12345";
    assert_eq!(d.decode(first, None), progress(first.len(), None));
    assert_eq!(d.skip_gap(6), GapOutcome::MessageLost);
    assert!(d.is_idle());
    assert_eq!(d.finish(), None);

    // Truncated Content-Length body at close: dropped.
    assert_eq!(d.decode(first, None), progress(first.len(), None));
    assert_eq!(d.finish(), None);
    assert!(d.is_idle());

    // reset drops a body in progress.
    assert_eq!(d.decode(first, None), progress(first.len(), None));
    d.reset();
    assert!(d.is_idle());
    assert_eq!(
        d.decode(b"GET / HTTP/1.1\r\n\r\n", None),
        progress(18, Some(request("GET", "/", &[], b"")))
    );
}

#[test]
fn gap_in_head_then_resync() {
    let mut caller = Caller::new(Request, HttpConfig::default(), &[]);
    caller.push(b"GET /first HTTP/1.1\r\nHo");
    assert!(
        !caller.decoder.is_idle(),
        "a partial head is a message in progress"
    );
    assert_eq!(caller.decoder.skip_gap(20), GapOutcome::MessageLost);
    assert!(caller.decoder.is_idle());

    // The agent drops its buffer and resyncs on what follows the gap.
    let after_gap = b"ader: v\r\n\r\nGET /next HTTP/1.1\r\nHost: h\r\n\r\n";
    let start = find_message_start(after_gap, Request);
    assert_eq!(start, Some(11));
    let mut caller = Caller::new(Request, HttpConfig::default(), &[]);
    caller.push(&after_gap[11..]);
    assert_eq!(
        caller.finish(),
        vec![Ok(request("GET", "/next", &[("Host", "h")], b""))]
    );
}

#[test]
fn message_start_offsets() {
    let cases: &[(MessageKind, &[u8], Option<usize>)] = &[
        (Request, b"GET / HTTP/1.1", Some(0)),
        (Request, b"xx\r\nPOST /a HTTP/1.1", Some(4)),
        (Request, b"say GET / here\nPUT /x", Some(15)),
        (Request, b"tail\nGE", None),
        (Request, b"tail\nGET ", None),
        (Request, b"HTTP/1.1 200 OK\r\n", None),
        (Request, b"", None),
        (Response, b"junk\r\nHTTP/1.1 200 OK", Some(6)),
        (Response, b"\nHTTP/1.0 404", Some(1)),
        (Response, b"xHTTP/1.1 200", None),
        (Response, b"GET / HTTP/1.1\r\n", None),
        (Response, b"\n\n\nHTTP/1.1 ", None),
    ];
    for (kind, input, want) in cases {
        assert_eq!(
            find_message_start(input, *kind),
            *want,
            "{kind:?} {:?}",
            String::from_utf8_lossy(input)
        );
    }
}

#[test]
fn header_lookup() {
    let headers = common::headers(&[("Host", "a"), ("traceparent", "00-1"), ("HOST", "b")]);
    assert_eq!(headers.get("host"), Some("a"));
    assert_eq!(headers.get("TraceParent"), Some("00-1"));
    assert_eq!(headers.get("missing"), None);
}

#[test]
fn config_defaults() {
    let config = HttpConfig::default();
    assert_eq!(config.max_head_bytes, 16 * 1024);
    assert_eq!(config.max_headers, 64);
    assert_eq!(config.body_prefix_bytes, 1024);
    assert_eq!(
        config.redacted_headers.iter().collect::<Vec<_>>(),
        [
            "authorization",
            "proxy-authorization",
            "cookie",
            "set-cookie",
            "x-api-key",
            "api-key",
            "x-auth-token"
        ]
    );
}

#[test]
fn idle_tracking() {
    let mut d = HttpDecoder::new(Request, HttpConfig::default());
    assert!(d.is_idle());
    assert_eq!(d.kind(), Request);
    assert_eq!(d.decode(b"", None), Ok(Decoded::NeedMore));
    assert!(d.is_idle(), "no bytes seen yet");
    assert_eq!(d.decode(b"GET / HT", None), Ok(Decoded::NeedMore));
    assert!(!d.is_idle(), "partial head held by the caller");
    assert_eq!(d.decode(b"", None), Ok(Decoded::NeedMore));
    assert!(!d.is_idle(), "still the same partial head");
    let whole = b"GET / HTTP/1.1\r\nContent-Length: 2\r\n\r\na";
    assert_eq!(d.decode(whole, None), progress(whole.len(), None));
    assert!(!d.is_idle(), "inside the body");
    assert_eq!(d.decode(b"", None), Ok(Decoded::NeedMore));
    let want = request("GET", "/", &[("Content-Length", "2")], b"ab");
    assert_eq!(d.decode(b"bGET", None), progress(1, Some(want)));
    assert!(d.is_idle());
}
