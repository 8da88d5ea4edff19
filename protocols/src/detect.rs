//! Protocol inference from the first bytes of a message.
//!
//! The agent calls [`detect`] on the start of a stream (or on a message
//! boundary found after a gap) to choose a parser. A match must rest on strong
//! evidence because a wrong guess feeds a whole connection to the wrong parser;
//! when in doubt the answer is `None` and the agent waits for more bytes.

/// Application protocols Sonde understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    Http,
    Dns,
    Mysql,
    Redis,
}

/// Direction of a message within its protocol's request/response exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    Request,
    Response,
}

/// Result of a successful [`detect`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Detection {
    pub protocol: Protocol,
    pub kind: MessageKind,
}

/// Request methods recognized by detection and resync.
///
/// Kept small on purpose: every entry is one more way for a non-HTTP stream to
/// be mistaken for HTTP, and other methods are rare on the wire.
pub(crate) const HTTP_METHODS: &[&[u8]] = &[
    b"GET",
    b"HEAD",
    b"POST",
    b"PUT",
    b"DELETE",
    b"CONNECT",
    b"OPTIONS",
    b"TRACE",
    b"PATCH",
    // WebDAV, seen from file-sync clients.
    b"PROPFIND",
    b"PROPPATCH",
    b"MKCOL",
    b"COPY",
    b"MOVE",
    b"LOCK",
    b"UNLOCK",
];

/// Looks at the first bytes of a stream (or of a message boundary after
/// resync) and says which protocol and message kind they are, if the evidence
/// is strong.
///
/// `None` means "not enough evidence": too few bytes or no match. Short
/// prefixes work: `b"GET /x HT"` is an HTTP request (method, space, start of a
/// request target) and `b"HTTP/1.1 2"` a response, while `b"GE"` is `None`.
pub fn detect(input: &[u8]) -> Option<Detection> {
    let kind = if is_http_request_start(input) {
        MessageKind::Request
    } else if is_http_response_start(input) {
        MessageKind::Response
    } else {
        return None;
    };
    Some(Detection {
        protocol: Protocol::Http,
        kind,
    })
}

/// `METHOD SP <first byte of a plausible request-target>`.
pub(crate) fn is_http_request_start(input: &[u8]) -> bool {
    HTTP_METHODS.iter().any(|&method| {
        let Some(target) = input
            .strip_prefix(method)
            .and_then(|rest| rest.strip_prefix(b" "))
        else {
            return false;
        };
        let Some(&first) = target.first() else {
            // "GET " alone is not enough: the next byte tells a request line
            // apart from prose that happens to start with a method name.
            return false;
        };
        is_target_start(method, first)
    })
}

/// Whether `first` can begin the request-target of `method` (RFC 9112 3.2):
/// origin-form starts with '/', absolute-form with a scheme ("http..."),
/// authority-form (CONNECT only) with a host, asterisk-form (OPTIONS only)
/// with '*'.
fn is_target_start(method: &[u8], first: u8) -> bool {
    match method {
        b"CONNECT" => first.is_ascii_alphanumeric() || first == b'[',
        b"OPTIONS" => matches!(first, b'/' | b'*' | b'h' | b'H'),
        _ => matches!(first, b'/' | b'h' | b'H'),
    }
}

/// `HTTP/1.0` or `HTTP/1.1`, a space and the first digit of the status code.
pub(crate) fn is_http_response_start(input: &[u8]) -> bool {
    let Some(rest) = input.strip_prefix(b"HTTP/1.") else {
        return false;
    };
    matches!(rest, [b'0' | b'1', b' ', digit, ..] if digit.is_ascii_digit())
}
