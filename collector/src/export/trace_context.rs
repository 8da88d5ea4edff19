//! The caller's trace context, read from a captured request's headers: W3C
//! `traceparent`, B3 single (`b3`) or B3 multi (`X-B3-TraceId`...). A span
//! built with it joins the application's own trace.

use opentelemetry::trace::{SpanId, TraceFlags, TraceId};
use sonde_protocols::Headers;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemoteParent {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    pub flags: TraceFlags,
}

/// Looks for a trace context in a request's headers (names as received,
/// so compared case-insensitively; the first field of a name counts).
/// `traceparent` wins over B3 when both are present and valid.
pub fn remote_parent(headers: &Headers) -> Option<RemoteParent> {
    let header = |name: &str| headers.get(name);
    if let Some(parent) = header("traceparent").and_then(parse_traceparent) {
        return Some(parent);
    }
    if let Some(parent) = header("b3").and_then(parse_b3_single) {
        return Some(parent);
    }
    let trace_id = parse_trace_id(header("x-b3-traceid")?)?;
    let span_id = parse_span_id(header("x-b3-spanid")?)?;
    let sampled = matches!(header("x-b3-sampled"), Some("1") | Some("true"))
        || header("x-b3-flags") == Some("1");
    Some(RemoteParent {
        trace_id,
        span_id,
        flags: flags(sampled),
    })
}

/// `version-traceid-parentid-flags` (W3C Trace Context level 1). Future
/// versions may append fields; version `ff` and all-zero ids are invalid.
pub fn parse_traceparent(value: &str) -> Option<RemoteParent> {
    let mut parts = value.trim().split('-');
    let version = parts.next()?;
    let trace = parts.next()?;
    let span = parts.next()?;
    let trace_flags = parts.next()?;
    if version.len() != 2 || !is_lower_hex(version) || version == "ff" {
        return None;
    }
    if version == "00" && parts.next().is_some() {
        return None;
    }
    if trace.len() != 32 || span.len() != 16 || trace_flags.len() != 2 {
        return None;
    }
    if !is_lower_hex(trace) || !is_lower_hex(span) || !is_lower_hex(trace_flags) {
        return None;
    }
    let trace_id = TraceId::from_hex(trace).ok()?;
    let span_id = SpanId::from_hex(span).ok()?;
    let flag_bits = u8::from_str_radix(trace_flags, 16).ok()?;
    valid(trace_id, span_id).then_some(RemoteParent {
        trace_id,
        span_id,
        flags: flags(flag_bits & 1 == 1),
    })
}

/// `traceid-spanid[-sampling[-parentspanid]]`; a lone sampling decision
/// (`0`, `1`, `d`) carries no ids.
pub fn parse_b3_single(value: &str) -> Option<RemoteParent> {
    let mut parts = value.trim().split('-');
    let trace_id = parse_trace_id(parts.next()?)?;
    let span_id = parse_span_id(parts.next()?)?;
    let sampled = matches!(parts.next(), None | Some("1") | Some("d"));
    Some(RemoteParent {
        trace_id,
        span_id,
        flags: flags(sampled),
    })
}

/// B3 trace ids are 64 or 128 bits; a 64-bit id is left-padded.
fn parse_trace_id(hex: &str) -> Option<TraceId> {
    let hex = hex.trim();
    if !(hex.len() == 16 || hex.len() == 32) || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let id = TraceId::from_hex(hex).ok()?;
    (id != TraceId::INVALID).then_some(id)
}

fn parse_span_id(hex: &str) -> Option<SpanId> {
    let hex = hex.trim();
    if hex.len() != 16 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let id = SpanId::from_hex(hex).ok()?;
    (id != SpanId::INVALID).then_some(id)
}

fn valid(trace_id: TraceId, span_id: SpanId) -> bool {
    trace_id != TraceId::INVALID && span_id != SpanId::INVALID
}

fn flags(sampled: bool) -> TraceFlags {
    if sampled {
        TraceFlags::SAMPLED
    } else {
        TraceFlags::default()
    }
}

fn is_lower_hex(s: &str) -> bool {
    s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> Headers {
        pairs.iter().copied().collect()
    }

    #[test]
    fn w3c_traceparent() {
        let parent = remote_parent(&headers(&[(
            "Traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )]))
        .unwrap();
        assert_eq!(
            parent.trace_id,
            TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap()
        );
        assert_eq!(
            parent.span_id,
            SpanId::from_hex("00f067aa0ba902b7").unwrap()
        );
        assert_eq!(parent.flags, TraceFlags::SAMPLED);
    }

    #[test]
    fn invalid_traceparents_are_ignored() {
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "0é-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert_eq!(parse_traceparent(bad), None, "{bad}");
        }
        // A later version may append fields.
        assert!(
            parse_traceparent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-x")
                .is_some()
        );
    }

    #[test]
    fn b3_single_and_multi() {
        let single = remote_parent(&headers(&[(
            "b3",
            "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90",
        )]))
        .unwrap();
        assert_eq!(
            single.trace_id,
            TraceId::from_hex("80f198ee56343ba864fe8b2a57d3eff7").unwrap()
        );
        assert_eq!(
            single.span_id,
            SpanId::from_hex("e457b5a2e4d86bd1").unwrap()
        );
        assert_eq!(single.flags, TraceFlags::SAMPLED);

        let multi = remote_parent(&headers(&[
            ("X-B3-TraceId", "64fe8b2a57d3eff7"),
            ("X-B3-SpanId", "e457b5a2e4d86bd1"),
            ("X-B3-Sampled", "0"),
        ]))
        .unwrap();
        assert_eq!(
            multi.trace_id,
            TraceId::from_hex("000000000000000064fe8b2a57d3eff7").unwrap()
        );
        assert_eq!(multi.flags, TraceFlags::default());
        assert_eq!(remote_parent(&headers(&[("b3", "1")])), None);
        assert_eq!(remote_parent(&headers(&[("host", "x")])), None);
    }

    #[test]
    fn traceparent_wins_over_b3() {
        let parent = remote_parent(&headers(&[
            ("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1"),
            (
                "traceparent",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
            ),
        ]))
        .unwrap();
        assert_eq!(
            parent.span_id,
            SpanId::from_hex("00f067aa0ba902b7").unwrap()
        );
        assert_eq!(parent.flags, TraceFlags::default());
    }
}
