//! Protocol inference from the first bytes of a message.
//!
//! The agent calls [`detect`] on the start of a stream (or on a message
//! boundary found after a gap) to choose a parser. A match must rest on strong
//! evidence because a wrong guess feeds a whole connection to the wrong parser;
//! when in doubt the answer is `None` and the agent waits for more bytes.
//!
//! Every candidate (protocol and message kind) weighs the evidence as one of
//! [`Verdict`]s, each decided by a bounded prefix and never revised once
//! decided. The answer is `Some` only when no candidate is still undecided
//! and exactly one has strong evidence (or, with a port hint, the hinted
//! protocol is the only one with evidence of its own). So evidence only grows
//! with more bytes: once a prefix is detected, every longer prefix gives the
//! same answer.

use crate::{Detection, MessageKind, Protocol, Verdict, dns, http, http2, mysql, pgsql, redis};

/// Looks at the first bytes of a stream (or of a message boundary after
/// resync) and says which protocol and message kind they are, if the evidence
/// is strong. Same as [`detect_with_hint`] without a hint.
///
/// `None` means "not enough evidence": too few bytes or no match. Short
/// prefixes work: `b"GET /x HT"` is an HTTP request (method, space, start of a
/// request target) and `b"HTTP/1.1 2"` a response, while `b"GE"` is `None`.
pub fn detect(input: &[u8]) -> Option<Detection> {
    detect_with_hint(input, None)
}

/// [`detect`] with the protocol suggested by the connection's port. The
/// hint breaks ties (several candidates with strong evidence, or only weak
/// evidence, e.g. a Redis `+OK\r\n` or a MySQL OK packet) in favour of the
/// hinted protocol when exactly one of its candidates has evidence; it never
/// decides without evidence of the bytes themselves.
///
/// Evidence per protocol:
/// - HTTP: a request line start (method, space, target start) or
///   `HTTP/1.x <digit>`.
/// - HTTP/2: the client's connection preface (request); a server's first
///   SETTINGS frame (response); in a connection joined mid-way, a few small
///   frames then a header block led by request pseudo-headers (request) or
///   `:status` (response).
/// - Redis: `*N\r\n$M\r\n<known command>\r\n` (request); error replies with
///   a Redis error prefix, `+PONG`, `+QUEUED`, a RESP3 HELLO map, pub/sub
///   deliveries (reply). Other well-formed RESP is weak.
/// - MySQL: a command packet (3-byte length, sequence 0, a known command
///   byte with a plausible length and payload) or a handshake response
///   (request); a server greeting (protocol 10, NUL-terminated version),
///   an ERR packet with SQL state, a result set header followed by a column
///   definition (reply). An OK packet is weak.
/// - DNS over TCP: a 2-byte length and a header and question that make sense
///   for a query (request) or an answer (reply).
pub fn detect_with_hint(input: &[u8], port_hint: Option<Protocol>) -> Option<Detection> {
    use MessageKind::{Request, Response};
    use Protocol::{Dns, Http, Http2, Mysql, Pgsql, Redis};
    let mut candidates = vec![
        (Http, Request, http::detect::request_verdict(input)),
        (Http, Response, http::detect::response_verdict(input)),
        (Http2, Request, http2::detect::request_verdict(input)),
        (Http2, Response, http2::detect::response_verdict(input)),
        (Redis, Request, redis::detect::request_verdict(input)),
        (Redis, Response, redis::detect::response_verdict(input)),
        (Mysql, Request, mysql::detect::request_verdict(input)),
        (Mysql, Response, mysql::detect::response_verdict(input)),
        (Dns, Request, dns::tcp_verdict(input, Request)),
        (Dns, Response, dns::tcp_verdict(input, Response)),
        (Pgsql, Request, pgsql::detect::request_verdict(input)),
    ];
    if port_hint == Some(Redis) {
        candidates.push((Redis, Request, redis::detect::inline_verdict(input)));
    }
    decide(&candidates, port_hint)
}

/// DNS in one UDP datagram: a header with sane flags and counts, a question
/// that parses, and records that fill the datagram exactly (or run past the
/// end of a copy cut short). Query or response from the QR bit.
pub fn detect_datagram(input: &[u8]) -> Option<Detection> {
    dns::datagram_kind(input).map(|kind| Detection {
        protocol: Protocol::Dns,
        kind,
    })
}

fn decide(
    candidates: &[(Protocol, MessageKind, Verdict)],
    hint: Option<Protocol>,
) -> Option<Detection> {
    if candidates.iter().any(|c| c.2 == Verdict::Maybe) {
        return None;
    }
    let pick = |level: Verdict, protocol: Option<Protocol>| {
        let mut found = candidates
            .iter()
            .filter(|c| c.2 == level && protocol.is_none_or(|p| p == c.0));
        match (found.next(), found.next()) {
            (Some(&(protocol, kind, _)), None) => Some(Detection { protocol, kind }),
            // Both directions of the hinted protocol fit weakly (a Redis
            // array of bulk strings): a stream's first message of that shape
            // is far more often a request.
            (Some(&(protocol, MessageKind::Request, _)), Some(&(p, _, _)))
                if protocol == p && found.next().is_none() =>
            {
                Some(Detection {
                    protocol,
                    kind: MessageKind::Request,
                })
            }
            _ => None,
        }
    };
    let strong = candidates.iter().filter(|c| c.2 == Verdict::Strong).count();
    match strong {
        0 => hint.and_then(|h| pick(Verdict::Weak, Some(h))),
        1 => pick(Verdict::Strong, None),
        _ => hint.and_then(|h| pick(Verdict::Strong, Some(h))),
    }
}
