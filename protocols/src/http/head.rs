//! Parsing of a complete message head (start line and header fields) with
//! httparse, and the choice of body framing that follows from it.

use super::body::{Body, Chunked};
use compact_str::CompactString;
use std::mem::MaybeUninit;

use super::{AnsweredMethod, HttpConfig, HttpError, HttpMessage, REDACTED};
use crate::{Headers, MessageKind};

/// Header slots on the stack, enough for the default field cap; a larger
/// configured cap takes a heap buffer.
const STACK_HEADER_SLOTS: usize = 64;

/// A parsed head: its length in the input, the message without body, and how
/// the body is framed.
#[derive(Debug)]
pub(super) struct Head {
    pub len: usize,
    /// Boxed from here to its row: the decoder, the session and the pairing
    /// hand it on as a pointer instead of copying ~200 bytes at every step.
    pub message: Box<HttpMessage>,
    pub body: Body,
}

/// Parses the head at the start of `input`. `Ok(None)` means it is not
/// complete yet (and still within the size cap).
pub(super) fn parse(
    input: &[u8],
    kind: MessageKind,
    config: &HttpConfig,
    answering: AnsweredMethod,
) -> Result<Option<Head>, HttpError> {
    let mut stack_slots =
        [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; STACK_HEADER_SLOTS];
    let mut heap_slots;
    let slots = if config.max_headers <= STACK_HEADER_SLOTS {
        stack_slots
            .get_mut(..config.max_headers)
            .unwrap_or_default()
    } else {
        heap_slots = vec![MaybeUninit::uninit(); config.max_headers];
        &mut heap_slots[..]
    };
    let mut parser = httparse::ParserConfig::default();
    // Leniency that real servers and clients show: an observer gains nothing
    // by rejecting what the peer accepted.
    parser
        .allow_multiple_spaces_in_request_line_delimiters(true)
        .allow_multiple_spaces_in_response_status_delimiters(true)
        .allow_spaces_after_header_name_in_responses(true)
        .allow_obsolete_multiline_headers_in_responses(true);

    // Only the first `max_head_bytes` are parsed. Besides bounding the work,
    // this makes the outcome independent of how the stream was split: a head
    // that does not end within the cap is HeadTooLarge even if a malformed
    // byte follows later, whether or not those later bytes have arrived.
    let window = input.get(..config.max_head_bytes).unwrap_or(input);
    let (status, start, raw_headers) = match kind {
        MessageKind::Request => {
            let mut req = httparse::Request::new(&mut []);
            let status = parser
                .parse_request_with_uninit_headers(&mut req, window, slots)
                .map_err(map_error)?;
            let start = StartLine {
                minor_version: req.version.unwrap_or(1),
                method: req.method.unwrap_or_default(),
                path: req.path.unwrap_or_default(),
                status: 0,
                reason: Some(""), // requests have none
            };
            (status, start, &*req.headers)
        }
        MessageKind::Response => {
            let mut resp = httparse::Response::new(&mut []);
            let status = parser
                .parse_response_with_uninit_headers(&mut resp, window, slots)
                .map_err(map_error)?;
            let start = StartLine {
                minor_version: resp.version.unwrap_or(1),
                method: "",
                path: "",
                status: resp.code.unwrap_or(0),
                // httparse hands out "" when the phrase has non-ASCII bytes:
                // recovered from the raw line once the head is complete.
                reason: resp.reason.filter(|reason| !reason.is_empty()),
            };
            (status, start, &*resp.headers)
        }
    };
    let len = match status {
        httparse::Status::Complete(len) => len,
        // No end of head within the window: too large if more bytes than the
        // cap are already there, else wait for them.
        httparse::Status::Partial if input.len() > config.max_head_bytes => {
            return Err(HttpError::HeadTooLarge);
        }
        httparse::Status::Partial => return Ok(None),
    };
    // On Complete, httparse has set the parsed fields (only then are they
    // all there).
    let body = framing(kind, start.status, answering, raw_headers)?;
    let text_bytes = raw_headers
        .iter()
        .map(|h| h.name.len() + h.value.len())
        .sum();
    let mut headers = Headers::with_capacity(raw_headers.len(), text_bytes);
    // One UTF-8 validation of the whole head rather than one per value
    // (short values made the per-call cost dominate): values are delimited
    // by ASCII bytes, so in a head that is valid text each value is too.
    let head_text = window
        .get(..len)
        .and_then(|head| std::str::from_utf8(head).ok());
    let mut content_type_field = None;
    for header in raw_headers {
        if content_type_field.is_none() && header.name.eq_ignore_ascii_case("content-type") {
            content_type_field = Some(headers.len());
        }
        if config.redacted_headers.contains(header.name.as_bytes()) {
            headers.push(header.name, REDACTED);
        } else if let Some(value) = head_text.and_then(|text| text_of(text, window, header.value)) {
            headers.push(header.name, value);
        } else {
            headers.push_value_lossy(header.name, header.value);
        }
    }
    let content_type = content_type_field
        .and_then(|index| headers.field(index))
        .map_or_else(CompactString::default, |(_, value)| value.into());
    let reason = match start.reason {
        Some(reason) => reason.into(),
        None => raw_reason(window),
    };
    let message = Box::new(HttpMessage {
        kind,
        minor_version: start.minor_version,
        method: start.method.into(),
        path: start.path.into(),
        status: start.status,
        reason,
        headers,
        content_type,
        body: Vec::new(),
        body_size: 0,
        body_incomplete: false,
    });
    Ok(Some(Head { len, message, body }))
}

/// `part` (a slice of `input`) as text, from `text`, the valid UTF-8 that
/// starts where `input` does; None if `part` lies outside it.
fn text_of<'a>(text: &'a str, input: &[u8], part: &[u8]) -> Option<&'a str> {
    let start = (part.as_ptr() as usize).checked_sub(input.as_ptr() as usize)?;
    text.get(start..start.checked_add(part.len())?)
}

/// The start line as parsed, borrowed from the input: owned copies are
/// made once the head is complete, not on every attempt at a partial one.
struct StartLine<'a> {
    minor_version: u8,
    method: &'a str,
    path: &'a str,
    status: u16,
    /// None: httparse gave no usable phrase (recovered from the raw line).
    reason: Option<&'a str>,
}

fn map_error(err: httparse::Error) -> HttpError {
    match err {
        httparse::Error::TooManyHeaders => HttpError::TooManyHeaders,
        _ => HttpError::InvalidHead,
    }
}

/// Decides how the body ends (RFC 9112 6.3). `raw_headers` are the headers as
/// received, so redaction settings cannot disturb framing.
fn framing(
    kind: MessageKind,
    status: u16,
    answering: AnsweredMethod,
    raw_headers: &[httparse::Header<'_>],
) -> Result<Body, HttpError> {
    const NO_BODY: Body = Body::Length { remaining: 0 };
    if kind == MessageKind::Response {
        let bodiless_status = matches!(status, 100..=199 | 204 | 304);
        let is_head = answering == AnsweredMethod::Head;
        // A 2xx to CONNECT turns the connection into a tunnel; what follows
        // is not this message's body.
        let tunnel = answering == AnsweredMethod::Connect && (200..300).contains(&status);
        if bodiless_status || is_head || tunnel {
            return Ok(NO_BODY);
        }
    }
    // Transfer-Encoding overrides Content-Length (RFC 9112 6.1), so a
    // Content-Length next to it is not even validated.
    match final_transfer_coding(raw_headers) {
        Some(coding) if coding.eq_ignore_ascii_case(b"chunked") => {
            return Ok(Body::Chunked(Chunked::start()));
        }
        // Not chunked last: a request cannot be delimited (the server must
        // reject it), a response runs until close.
        Some(_) if kind == MessageKind::Request => return Err(HttpError::InvalidHead),
        Some(_) => return Ok(Body::UntilClose),
        None => {}
    }
    match content_length(raw_headers)? {
        Some(remaining) => Ok(Body::Length { remaining }),
        None if kind == MessageKind::Request => Ok(NO_BODY),
        None => Ok(Body::UntilClose),
    }
}

/// The last transfer coding named by any Transfer-Encoding field, without
/// parameters; `Some(b"")` if the fields are present but name nothing.
fn final_transfer_coding<'a>(headers: &[httparse::Header<'a>]) -> Option<&'a [u8]> {
    let mut last = None;
    for header in headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("transfer-encoding"))
    {
        last = Some(last.unwrap_or_default());
        for coding in header.value.split(|&b| b == b',') {
            let name = coding.split(|&b| b == b';').next().unwrap_or_default();
            let name = trim_ows(name);
            if !name.is_empty() {
                last = Some(name);
            }
        }
    }
    last
}

/// The body length from Content-Length fields. Repeated fields or list
/// members must all agree (RFC 9110 8.6): a disagreement means the framing is
/// unknowable, so it is an error instead of a guess.
fn content_length(headers: &[httparse::Header<'_>]) -> Result<Option<u64>, HttpError> {
    let mut found = None;
    for header in headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("content-length"))
    {
        for member in header.value.split(|&b| b == b',') {
            let value = parse_decimal(trim_ows(member)).ok_or(HttpError::InvalidContentLength)?;
            if found.is_some_and(|prev| prev != value) {
                return Err(HttpError::InvalidContentLength);
            }
            found = Some(value);
        }
    }
    Ok(found)
}

/// `1*DIGIT` as u64; None on anything else, including overflow.
fn parse_decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |acc, &b| {
        let digit = char::from(b).to_digit(10)?;
        acc.checked_mul(10)?.checked_add(u64::from(digit))
    })
}

fn trim_ows(bytes: &[u8]) -> &[u8] {
    let is_ows = |b: &u8| *b == b' ' || *b == b'\t';
    let start = bytes.iter().position(|b| !is_ows(b)).unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !is_ows(b))
        .map_or(start, |i| i + 1);
    bytes.get(start..end).unwrap_or_default()
}

/// The reason phrase read straight from the status line, lossily decoded.
/// Only called after httparse accepted the line, but written to cope with
/// anything.
fn raw_reason(input: &[u8]) -> CompactString {
    let start = input
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(input.len());
    let line = input.get(start..).unwrap_or_default();
    let line = line.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    // "HTTP/1.x" SP+ 3DIGIT SP+ reason
    let after_version = line.get(8..).unwrap_or_default();
    let after_code = trim_leading_spaces(after_version)
        .get(3..)
        .unwrap_or_default();
    CompactString::from_utf8_lossy(trim_leading_spaces(after_code))
}

fn trim_leading_spaces(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|&b| b != b' ').unwrap_or(bytes.len());
    bytes.get(start..).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::held::HeapSize;

    #[test]
    fn decimal() {
        let cases: &[(&[u8], Option<u64>)] = &[
            (b"0", Some(0)),
            (b"0042", Some(42)),
            (b"18446744073709551615", Some(u64::MAX)),
            (b"18446744073709551616", None),
            (b"", None),
            (b"-1", None),
            (b"+1", None),
            (b"1 2", None),
            (b"0x10", None),
        ];
        for (input, want) in cases {
            assert_eq!(parse_decimal(input), *want, "{input:?}");
        }
    }

    #[test]
    fn ows() {
        assert_eq!(trim_ows(b" \t a b\t "), b"a b");
        assert_eq!(trim_ows(b"  "), b"");
        assert_eq!(trim_ows(b""), b"");
    }

    #[test]
    fn transfer_coding() {
        let h = |value: &'static [u8]| httparse::Header {
            name: "Transfer-Encoding",
            value,
        };
        let cases: &[(&[httparse::Header<'static>], Option<&[u8]>)] = &[
            (&[], None),
            (&[h(b"chunked")], Some(b"chunked")),
            (&[h(b"gzip, chunked")], Some(b"chunked")),
            (&[h(b"chunked"), h(b"gzip")], Some(b"gzip")),
            (&[h(b"gzip"), h(b" Chunked ;x=1 ,")], Some(b"Chunked")),
            (&[h(b"")], Some(b"")),
        ];
        for (headers, want) in cases {
            assert_eq!(final_transfer_coding(headers), *want, "{headers:?}");
        }
    }

    /// Methods, short targets, reason phrases and content types are kept
    /// inline (no allocation of their own), and the held-bytes estimate
    /// counts only what is on the heap.
    #[test]
    fn short_fields_stay_inline_and_long_ones_are_weighed() {
        let config = HttpConfig::default();
        let parse_one = |input: &[u8], kind| {
            parse(input, kind, &config, AnsweredMethod::Other)
                .unwrap()
                .unwrap()
                .message
        };
        let fixed = |m: &HttpMessage| {
            std::mem::size_of::<HttpMessage>() - std::mem::size_of::<Headers>()
                + m.headers.heap_size()
        };
        let request = parse_one(
            b"GET /r HTTP/1.1\r\nContent-Type: text/plain\r\n\r\n",
            MessageKind::Request,
        );
        assert_eq!(
            (request.method.as_str(), request.path.as_str()),
            ("GET", "/r")
        );
        assert_eq!(request.content_type, "text/plain");
        assert!(!request.method.is_heap_allocated());
        assert!(!request.path.is_heap_allocated());
        assert!(!request.content_type.is_heap_allocated());
        assert_eq!(request.heap_size(), fixed(&request));

        let response = parse_one(b"HTTP/1.1 404 Not Found\r\n\r\n", MessageKind::Response);
        assert_eq!(response.reason, "Not Found");
        assert!(!response.reason.is_heap_allocated());
        assert_eq!(response.heap_size(), fixed(&response));

        let long_path = format!("/{}", "a".repeat(100));
        let request = parse_one(
            format!("GET {long_path} HTTP/1.1\r\n\r\n").as_bytes(),
            MessageKind::Request,
        );
        assert_eq!(request.path, long_path);
        assert!(request.path.capacity() >= 101);
        assert_eq!(
            request.heap_size(),
            fixed(&request) + request.path.capacity()
        );
    }

    /// Values are text either way: from the head validated once when it is
    /// all UTF-8, else each value on its own, invalid bytes as U+FFFD.
    #[test]
    fn header_values_are_text_whether_or_not_the_head_is() {
        let config = HttpConfig::default();
        let values = |input: &[u8]| {
            let head = parse(input, MessageKind::Response, &config, AnsweredMethod::Other)
                .unwrap()
                .unwrap();
            head.message
                .headers
                .iter()
                .map(|(name, value)| format!("{name}={value}"))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            values(b"HTTP/1.1 200 OK\r\nX-A: caf\xc3\xa9\r\nX-B:  b \r\n\r\n"),
            ["X-A=caf\u{e9}", "X-B=b"]
        );
        assert_eq!(
            values(b"HTTP/1.1 200 OK\r\nX-A: caf\xc3\xa9\r\nX-B: \xffz\r\n\r\n"),
            ["X-A=caf\u{e9}", "X-B=\u{fffd}z"]
        );
        // Invalid only in the reason phrase: the values are still exact.
        assert_eq!(values(b"HTTP/1.1 200 \xff\r\nX-A: a\r\n\r\n"), ["X-A=a"]);
    }

    #[test]
    fn reason_from_raw_line() {
        let cases: &[(&[u8], &str)] = &[
            (b"HTTP/1.1 200 OK\r\n", "OK"),
            (b"\r\nHTTP/1.1  404  Not \xffFound\r\n", "Not \u{fffd}Found"),
            (b"HTTP/1.1 200\r\n", ""),
            (b"HTTP", ""),
        ];
        for (input, want) in cases {
            assert_eq!(raw_reason(input), *want);
        }
    }
}
