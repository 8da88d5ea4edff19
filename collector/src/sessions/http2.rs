//! HTTP/2 on one connection: frames of both directions go to one
//! `sonde_protocols::http2::Http2Session`, which hands out every completed
//! stream; each becomes an `http_events` row (major_version 2; a gRPC call,
//! streaming or not, is one row with its `grpc_status`). What the session
//! drops or cannot decode is added to the capture counters.
//!
//! How a stream fills the HTTP/1 columns:
//! - `req_headers` starts with the request's `:authority` and `:scheme`
//!   pseudo-headers (the Host of HTTP/1), then its regular fields and
//!   trailers; `resp_headers` holds the response's fields and trailers
//!   (gRPC's `grpc-status`, `grpc-message`). Names are as sent (lowercase).
//!   A side with fields that could not be decoded (a connection joined
//!   mid-way, a lost header block) gets a `<undecoded>` entry whose value is
//!   how many: nothing is guessed.
//! - `resp_message` (the reason phrase, which HTTP/2 has not) says how a
//!   stream ended early: `RST_STREAM CANCEL by client`, `connection closed`;
//!   a server push is `server push`.
//! - Body prefixes are the first bytes of the DATA frames; body sizes are
//!   exact (the sum of DATA lengths, padding excluded) even where the
//!   kernel copied only frame heads.

use std::sync::Arc;

use compact_str::CompactString;

use sonde_protocols::http::HttpMessage;
use sonde_protocols::http2::{
    Frame, Http2Config, Http2Counters, Http2Decoder, Http2Session, Http2Stream, StreamEnd,
};
use sonde_protocols::{Headers, MessageKind};
use sonde_query::records::HttpRow;

use super::Outcome;
use super::RowSink;
use super::stream_session::{StreamProtocol, Timed};

/// Name of the header entry that counts fields not decoded.
pub const UNDECODED_FIELDS: &str = "<undecoded>";

/// The HTTP/2 protocol of a stream session: a frame decoder per direction
/// and the connection's session.
pub struct Http2Frames {
    config: Http2Config,
    session: Http2Session,
    /// Streams completed by the last frame, turned into rows at once.
    completed: Vec<Http2Stream>,
    /// The session's counters already added to the capture counters.
    reported: Http2Counters,
    /// Capture time of the last byte of the latest frame.
    last_ts: u64,
}

impl Http2Frames {
    /// A connection identified from its bytes. The session starts as if
    /// joined mid-way (header tables unknown) and becomes a connection
    /// followed from its start when the client's preface goes by, so a
    /// connection opened before the capture is never decoded with tables
    /// assumed empty.
    pub fn new(config: Http2Config) -> Self {
        let session = Http2Session::mid_stream(config.clone());
        Self::with_session(config, session)
    }

    /// A connection switched from HTTP/1.1 by `Upgrade: h2c`: stream 1 is
    /// `request` (whose first byte was captured at `start_ts`).
    pub fn after_upgrade(config: Http2Config, request: &HttpMessage, start_ts: u64) -> Self {
        let session = Http2Session::after_upgrade(config.clone(), request, start_ts);
        Self::with_session(config, session)
    }

    fn with_session(config: Http2Config, session: Http2Session) -> Self {
        Self {
            config,
            session,
            completed: Vec::new(),
            reported: Http2Counters::default(),
            last_ts: 0,
        }
    }

    /// Rows for the completed streams, and the session's new counts.
    fn emit(&mut self, sink: &mut RowSink<'_>) {
        for stream in self.completed.drain(..) {
            sink.rows.http.push(row(stream, sink));
            sink.counters.http_rows.inc();
        }
        let now = *self.session.counters();
        if now != self.reported {
            report(&self.reported, &now, sink);
            self.reported = now;
        }
    }
}

/// Adds what the session counted since `before` to the capture counters.
fn report(before: &Http2Counters, now: &Http2Counters, sink: &RowSink<'_>) {
    let c = sink.counters;
    let pairs = [
        (
            &c.http2_streams_reset,
            now.streams_reset - before.streams_reset,
        ),
        (
            &c.http2_streams_evicted,
            now.streams_evicted - before.streams_evicted,
        ),
        (
            &c.http2_streams_refused,
            now.streams_refused - before.streams_refused,
        ),
        (
            &c.http2_streams_unanswered,
            now.streams_unanswered - before.streams_unanswered,
        ),
        (
            &c.http2_frames_on_unknown_streams,
            now.frames_on_unknown_streams - before.frames_on_unknown_streams,
        ),
        (
            &c.http2_hpack_unknown_fields,
            now.hpack_unknown_fields - before.hpack_unknown_fields,
        ),
        (
            &c.http2_hpack_errors,
            now.hpack_errors - before.hpack_errors,
        ),
        (
            &c.http2_hpack_desyncs,
            now.hpack_desyncs - before.hpack_desyncs,
        ),
        (
            &c.http2_hpack_size_updates_over_setting,
            now.hpack_size_updates_over_setting - before.hpack_size_updates_over_setting,
        ),
        (
            &c.http2_header_blocks_too_large,
            now.header_blocks_too_large - before.header_blocks_too_large,
        ),
        (
            &c.http2_headers_dropped,
            now.headers_dropped - before.headers_dropped,
        ),
        (
            &c.http2_resyncs,
            now.discontinuities - before.discontinuities,
        ),
    ];
    for (counter, added) in pairs {
        if added > 0 {
            counter.add(added);
        }
    }
}

impl StreamProtocol for Http2Frames {
    type Decoder = Http2Decoder;

    fn decoder(&self, kind: MessageKind) -> Http2Decoder {
        Http2Decoder::new(kind, &self.config)
    }

    /// The maximum frame size the receiving side advertised.
    fn context(&self, kind: MessageKind) -> u32 {
        self.session.max_frame_size(kind)
    }

    fn on_message(
        &mut self,
        kind: MessageKind,
        frame: Timed<Frame>,
        sink: &mut RowSink<'_>,
    ) -> Outcome {
        self.last_ts = self.last_ts.max(frame.end_ts);
        self.session.on_frame(
            kind,
            frame.message,
            frame.start_ts,
            frame.end_ts,
            &mut self.completed,
        );
        self.emit(sink);
        Outcome::Continue
    }

    fn on_parse_error(&mut self, _kind: MessageKind, sink: &mut RowSink<'_>) {
        sink.counters.http2_parse_failures.inc();
    }

    /// Counted by the session when the decoder reports the discontinuity
    /// (`http2_resyncs`).
    fn on_message_lost(&mut self, _kind: MessageKind, _sink: &mut RowSink<'_>) {}

    fn finish(&mut self, sink: &mut RowSink<'_>) {
        self.session.finish(self.last_ts, &mut self.completed);
        self.emit(sink);
    }
    fn held_bytes(&self) -> usize {
        self.session.state_bytes()
    }
}

fn row(stream: Http2Stream, sink: &RowSink<'_>) -> HttpRow {
    let Http2Stream {
        method,
        scheme,
        authority,
        path,
        status,
        request,
        response,
        grpc,
        end,
        pushed,
        start_ts,
        end_ts,
        ..
    } = stream;
    let content_type = if response.content_type.is_empty() {
        request.content_type
    } else {
        response.content_type
    };
    let mut req_headers = Headers::with_capacity(
        request.headers.len() + request.trailers.len() + 3,
        request.headers.text_len() + request.trailers.text_len() + 64,
    );
    if let Some(authority) = &authority {
        req_headers.push(":authority", authority);
    }
    if let Some(scheme) = &scheme {
        req_headers.push(":scheme", scheme);
    }
    req_headers.append(&request.headers);
    req_headers.append(&request.trailers);
    mark_undecoded(&mut req_headers, request.unknown_fields);
    let mut resp_headers = response.headers;
    resp_headers.append(&response.trailers);
    mark_undecoded(&mut resp_headers, response.unknown_fields);
    let (grpc_status, grpc_message) = match grpc {
        Some(call) => {
            let status = call.status.map(i64::from).or_else(|| match end {
                StreamEnd::Reset { error_code, .. } => Some(grpc_status_of_reset(error_code)),
                _ => None,
            });
            (status, call.message)
        }
        None => (None, None),
    };
    let resp_message = match end {
        StreamEnd::Complete if pushed => CompactString::const_new("server push"),
        StreamEnd::Complete => CompactString::default(),
        StreamEnd::Reset { by, error_code } => compact_str::format_compact!(
            "RST_STREAM {} by {}",
            error_code_name(error_code),
            match by {
                MessageKind::Request => "client",
                MessageKind::Response => "server",
            }
        ),
        StreamEnd::ConnectionClosed => CompactString::const_new("connection closed"),
    };
    let latency = end_ts.saturating_sub(start_ts);
    HttpRow {
        time_ns: sink.clock.to_unix_ns(end_ts),
        conn: Arc::clone(sink.conn),
        major_version: 2,
        minor_version: 0,
        content_type,
        req_headers,
        req_method: method.unwrap_or_default(),
        req_path: path.unwrap_or_default(),
        req_body: request.body,
        req_body_size: i64::try_from(request.body_size).unwrap_or(i64::MAX),
        resp_headers,
        resp_status: status.map_or(0, i64::from),
        resp_message,
        resp_body: response.body,
        resp_body_size: i64::try_from(response.body_size).unwrap_or(i64::MAX),
        grpc_status,
        grpc_message,
        latency: i64::try_from(latency).unwrap_or(i64::MAX),
    }
}

fn mark_undecoded(headers: &mut Headers, unknown: u32) {
    if unknown > 0 {
        headers.push(UNDECODED_FIELDS, &unknown.to_string());
    }
}

/// The status a gRPC client reports for a call its peer reset before the
/// trailers (gRPC's PROTOCOL-HTTP2 "Errors" mapping of RST_STREAM codes).
fn grpc_status_of_reset(error_code: u32) -> i64 {
    match error_code {
        0x7 => 14, // REFUSED_STREAM -> UNAVAILABLE
        0x8 => 1,  // CANCEL -> CANCELLED
        0xb => 8,  // ENHANCE_YOUR_CALM -> RESOURCE_EXHAUSTED
        0xc => 7,  // INADEQUATE_SECURITY -> PERMISSION_DENIED
        _ => 13,   // INTERNAL
    }
}

/// RFC 9113 section 7 error code names.
fn error_code_name(code: u32) -> String {
    let name = match code {
        0x0 => "NO_ERROR",
        0x1 => "PROTOCOL_ERROR",
        0x2 => "INTERNAL_ERROR",
        0x3 => "FLOW_CONTROL_ERROR",
        0x4 => "SETTINGS_TIMEOUT",
        0x5 => "STREAM_CLOSED",
        0x6 => "FRAME_SIZE_ERROR",
        0x7 => "REFUSED_STREAM",
        0x8 => "CANCEL",
        0x9 => "COMPRESSION_ERROR",
        0xa => "CONNECT_ERROR",
        0xb => "ENHANCE_YOUR_CALM",
        0xc => "INADEQUATE_SECURITY",
        0xd => "HTTP_1_1_REQUIRED",
        other => return format!("0x{other:x}"),
    };
    name.to_string()
}
