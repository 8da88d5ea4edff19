//! HTTP/1.x on one connection: requests paired with responses in order
//! (`sonde_protocols::http::HttpPairing`, which also covers pipelining),
//! each exchange an `http_events` row.

use std::sync::Arc;

use sonde_protocols::MessageKind;
use sonde_protocols::http::{
    AnsweredMethod, HttpConfig, HttpDecoder, HttpExchange, HttpMessage, HttpPairing,
    ResponseOutcome,
};
use sonde_query::records::HttpRow;

use super::stream_session::{StreamProtocol, Timed};
use super::{Outcome, RowSink};

/// Requests waiting for their response; beyond this the oldest is dropped (counted).
const MAX_PENDING_REQUESTS: usize = 256;

pub struct HttpStream {
    config: HttpConfig,
    pairing: HttpPairing,
    reported_overflow: u64,
}

impl HttpStream {
    pub fn new(config: HttpConfig) -> Self {
        Self {
            config,
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
        message: Timed<HttpMessage>,
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
            ResponseOutcome::Exchange(exchange) => {
                let upgraded = exchange.upgraded;
                sink.rows.http.push(row(*exchange, sink));
                sink.counters.http_rows.inc();
                if upgraded {
                    Outcome::Upgraded
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
        latency: i64::try_from(latency).unwrap_or(i64::MAX),
    }
}
