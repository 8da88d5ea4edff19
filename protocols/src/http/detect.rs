//! HTTP/1.x evidence: request and status lines, for protocol detection and
//! for resynchronising after a gap.

use crate::Verdict;

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

pub(crate) fn request_verdict(input: &[u8]) -> Verdict {
    if is_http_request_start(input) {
        return Verdict::Strong;
    }
    // Still a prefix of "METHOD " (or exactly that, awaiting the target)?
    let open = HTTP_METHODS.iter().any(|&method| {
        if input.len() <= method.len() {
            method.starts_with(input)
        } else {
            input.len() == method.len() + 1 && input.starts_with(method) && input.ends_with(b" ")
        }
    });
    if open { Verdict::Maybe } else { Verdict::No }
}

pub(crate) fn response_verdict(input: &[u8]) -> Verdict {
    if is_http_response_start(input) {
        return Verdict::Strong;
    }
    // Still a prefix of "HTTP/1.x <digit>"?
    let open = input.len() < 10
        && input.iter().enumerate().all(|(i, &b)| match i {
            0..=6 => b"HTTP/1.".get(i) == Some(&b),
            7 => b == b'0' || b == b'1',
            8 => b == b' ',
            _ => false,
        });
    if open { Verdict::Maybe } else { Verdict::No }
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
