//! Detection of protocol and message kind from stream prefixes.

use sonde_protocols::{Detection, MessageKind, Protocol, detect};

#[test]
fn detection_table() {
    let request = Some(Detection {
        protocol: Protocol::Http,
        kind: MessageKind::Request,
    });
    let response = Some(Detection {
        protocol: Protocol::Http,
        kind: MessageKind::Response,
    });
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
        (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", None),
        (b"HTTP/2 200", None),
        (b"HTTP/1.2 200", None),
        (b"HTTP/1.1 OK", None),
        (b" GET / HTTP/1.1", None),
        (b"+OK\r\n", None),
        (b"*1\r\n$4\r\nPING\r\n", None),
        (b"\x16\x03\x01\x02\x00\x01\x00", None),
        (b"\x00\x00\x01\x00\x00\x01", None),
    ];
    for (input, want) in cases {
        assert_eq!(detect(input), *want, "{:?}", String::from_utf8_lossy(input));
    }
}
