//! HTTP/1.x on one connection: requests paired with responses in order
//! (`sonde_protocols::http::HttpPairing`, which also covers pipelining),
//! each exchange an `http_events` row. A `101` to `Upgrade: h2c` hands the
//! connection to an HTTP/2 session whose stream 1 is the upgraded request.

use std::sync::Arc;

use sonde_protocols::http::{
    AnsweredMethod, HttpConfig, HttpDecoder, HttpExchange, HttpMessage, HttpPairing,
    ResponseOutcome,
};
use sonde_protocols::http2::Http2Config;
use sonde_protocols::{MessageKind, Protocol};
use sonde_query::records::HttpRow;

use super::http2::Http2Frames;
use super::stream_session::{StreamProtocol, StreamSession, Timed};
use super::{Dir, Handover, Outcome, RowSink};

/// Requests waiting for their response; beyond this the oldest is dropped (counted).
const MAX_PENDING_REQUESTS: usize = 256;

pub struct HttpStream {
    config: HttpConfig,
    /// The direction carrying requests (for the session of an upgrade).
    request_dir: Dir,
    pairing: HttpPairing,
    reported_overflow: u64,
}

impl HttpStream {
    pub fn new(config: HttpConfig, request_dir: Dir) -> Self {
        Self {
            config,
            request_dir,
            pairing: HttpPairing::new(MAX_PENDING_REQUESTS),
            reported_overflow: 0,
        }
    }

    fn count_overflow(&mut self, sink: &RowSink<'_>) {
        let overflowed = self.pairing.overflowed();
        sink.counters
            .http_unmatched_requests
            .add(overflowed - self.reported_overflow);
        self.reported_overflow = overflowed;
    }
}

impl StreamProtocol for HttpStream {
    type Decoder = HttpDecoder;

    fn decoder(&self, kind: MessageKind) -> HttpDecoder {
        HttpDecoder::new(kind, self.config.clone())
    }

    fn context(&self, kind: MessageKind) -> AnsweredMethod {
        match kind {
            MessageKind::Request => AnsweredMethod::Other,
            MessageKind::Response => self.pairing.answering(),
        }
    }

    fn on_message(
        &mut self,
        kind: MessageKind,
        message: Timed<Box<HttpMessage>>,
        sink: &mut RowSink<'_>,
    ) -> Outcome {
        if kind == MessageKind::Request {
            self.pairing.on_request(message.message, message.start_ts);
            self.count_overflow(sink);
            return Outcome::Continue;
        }
        match self.pairing.on_response(message.message, message.end_ts) {
            ResponseOutcome::Interim => Outcome::Continue,
            ResponseOutcome::Unmatched => {
                sink.counters.http_unmatched_responses.inc();
                Outcome::Continue
            }
            ResponseOutcome::Exchange(exchange) if is_h2c_upgrade(&exchange) => {
                // The request's response comes as HTTP/2 stream 1: its row
                // is that stream's, not the 101's.
                let frames = Http2Frames::after_upgrade(
                    Http2Config::from_http(&self.config),
                    &exchange.request,
                    exchange.req_ts,
                );
                Outcome::Upgraded(Some(Handover {
                    protocol: Protocol::Http2,
                    session: Box::new(StreamSession::new(self.request_dir, frames)),
                }))
            }
            ResponseOutcome::Exchange(exchange) => {
                let upgraded = exchange.upgraded;
                sink.rows.http.push(row(exchange, sink));
                sink.counters.http_rows.inc();
                if upgraded {
                    Outcome::Upgraded(None)
                } else {
                    Outcome::Continue
                }
            }
        }
    }

    fn on_parse_error(&mut self, _kind: MessageKind, sink: &mut RowSink<'_>) {
        sink.counters.http_parse_failures.inc();
    }

    fn on_message_lost(&mut self, _kind: MessageKind, sink: &mut RowSink<'_>) {
        sink.counters.http_messages_lost.inc();
    }

    fn finish(&mut self, sink: &mut RowSink<'_>) {
        sink.counters
            .http_unmatched_requests
            .add(self.pairing.finish() as u64);
    }
    fn held_bytes(&self) -> usize {
        self.pairing.held_bytes()
    }
}

/// A `101 Switching Protocols` to HTTP/2 over cleartext (RFC 7540 3.2).
fn is_h2c_upgrade(exchange: &HttpExchange) -> bool {
    exchange.response.status == 101
        && exchange
            .response
            .headers
            .get("upgrade")
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("h2c"))
}

fn row(exchange: HttpExchange, sink: &RowSink<'_>) -> HttpRow {
    let HttpExchange {
        request,
        response,
        req_ts,
        resp_ts,
        ..
    } = exchange;
    let latency = resp_ts.saturating_sub(req_ts);
    let content_type = if response.content_type.is_empty() {
        request.content_type
    } else {
        response.content_type
    };
    HttpRow {
        time_ns: sink.clock.to_unix_ns(resp_ts),
        conn: Arc::clone(sink.conn),
        major_version: 1,
        minor_version: i64::from(response.minor_version),
        content_type,
        req_headers: request.headers,
        req_method: request.method,
        req_path: request.path,
        req_body: request.body,
        req_body_size: i64::try_from(request.body_size).unwrap_or(i64::MAX),
        resp_headers: response.headers,
        resp_status: i64::from(response.status),
        resp_message: response.reason,
        resp_body: response.body,
        resp_body_size: i64::try_from(response.body_size).unwrap_or(i64::MAX),
        grpc_status: None,
        grpc_message: None,
        latency: i64::try_from(latency).unwrap_or(i64::MAX),
    }
}
