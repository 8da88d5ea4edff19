//! HTTP/1.x on one connection: a request decoder on one direction, a response
//! decoder on the other, and the queue that pairs them (HTTP/1.x answers in
//! order, which also covers pipelining).

use std::collections::VecDeque;

use sonde_protocols::MessageKind;
use sonde_protocols::http::{
    Decoded, GapOutcome, HttpConfig, HttpDecoder, HttpMessage, find_message_start,
};
use sonde_query::records::HttpRow;

use crate::session::{Dir, Outcome, ProtocolSession, RowSink};
use crate::window::Window;

/// Requests waiting for their response; beyond this the oldest is dropped (counted).
const MAX_PENDING_REQUESTS: usize = 256;
/// Consecutive parse failures after which the connection is no longer taken for HTTP.
const MAX_CONSECUTIVE_FAILURES: u32 = 3;
/// Bytes kept when resynchronising finds no message start: a method token may straddle.
const RESYNC_KEEP: usize = 16;

struct PendingRequest {
    message: HttpMessage,
    start_ts: u64,
}

pub struct HttpSession {
    request_dir: Dir,
    /// Indexed by `Dir::index()`.
    decoders: [HttpDecoder; 2],
    message_start: [u64; 2],
    last_byte_ts: [u64; 2],
    resync: [bool; 2],
    pending: VecDeque<PendingRequest>,
    consecutive_failures: u32,
}

impl HttpSession {
    pub fn new(request_dir: Dir, config: &HttpConfig) -> Self {
        let decoder = |dir: Dir| {
            let kind = if dir == request_dir {
                MessageKind::Request
            } else {
                MessageKind::Response
            };
            HttpDecoder::new(kind, config.clone())
        };
        Self {
            request_dir,
            decoders: [decoder(Dir::Egress), decoder(Dir::Ingress)],
            message_start: [0; 2],
            last_byte_ts: [0; 2],
            resync: [false; 2],
            pending: VecDeque::new(),
            consecutive_failures: 0,
        }
    }

    fn kind(&self, dir: Dir) -> MessageKind {
        if dir == self.request_dir {
            MessageKind::Request
        } else {
            MessageKind::Response
        }
    }

    /// Parses as much of `window` as possible.
    fn process_window(&mut self, dir: Dir, window: &mut Window, sink: &mut RowSink<'_>) -> Outcome {
        let i = dir.index();
        loop {
            // An empty window still goes to a decoder in the middle of a message:
            // a gap may have completed its body.
            if window.is_empty() && self.decoders[i].is_idle() {
                return Outcome::Continue;
            }
            if self.resync[i] {
                match find_message_start(window.bytes(), self.kind(dir)) {
                    Some(offset) => {
                        window.consume(offset);
                        self.resync[i] = false;
                    }
                    None => {
                        window.consume(window.len().saturating_sub(RESYNC_KEEP));
                        return Outcome::Continue;
                    }
                }
            }
            let was_idle = self.decoders[i].is_idle();
            let method = self.pending.front().map(|r| r.message.method.clone());
            let step = self.decoders[i].decode(window.bytes(), method.as_deref());
            match step {
                Ok(Decoded::NeedMore) => {
                    // A partial head: the message started with the window's first byte.
                    if was_idle && !window.is_empty() {
                        self.message_start[i] = window.ts_at(0);
                    }
                    return Outcome::Continue;
                }
                Ok(Decoded::Progress { consumed, message }) => {
                    if was_idle {
                        self.message_start[i] = window.ts_at(0);
                    }
                    if consumed > 0 {
                        self.last_byte_ts[i] = window.ts_at(consumed - 1);
                    }
                    let end_ts = self.last_byte_ts[i];
                    window.consume(consumed);
                    if let Some(message) = message {
                        self.consecutive_failures = 0;
                        if self.on_message(dir, message, end_ts, sink) == Outcome::Upgraded {
                            return Outcome::Upgraded;
                        }
                    } else if consumed == 0 {
                        return Outcome::Continue;
                    }
                }
                Err(_) => {
                    sink.counters.http_parse_failures.inc();
                    self.decoders[i].reset();
                    self.consecutive_failures += 1;
                    if self.consecutive_failures >= MAX_CONSECUTIVE_FAILURES {
                        return Outcome::Abandon;
                    }
                    // Skip the bad start and look for the next message.
                    window.consume(1);
                    self.resync[i] = true;
                }
            }
        }
    }

    /// `len` bytes of `dir` were lost. Unparsed bytes before the gap are part of
    /// the message in progress; a gap inside a body of known length is skipped.
    /// `ts` is when the lost bytes were sent or received, 0 if unknown.
    fn apply_gap(
        &mut self,
        dir: Dir,
        len: u64,
        ts: u64,
        window: &mut Window,
        sink: &mut RowSink<'_>,
    ) {
        let i = dir.index();
        let absorbed = window.is_empty()
            && !self.decoders[i].is_idle()
            && self.decoders[i].skip_gap(len) == GapOutcome::Absorbed;
        if absorbed && ts != 0 {
            self.last_byte_ts[i] = ts;
        }
        if !absorbed {
            // Count a lost message once, not once per gap while resynchronising.
            if !self.resync[i] {
                sink.counters.http_messages_lost.inc();
            }
            self.decoders[i].reset();
            self.resync[i] = true;
        }
        window.clear_and_skip(len);
    }

    /// The connection closed: completes close-delimited responses; requests still
    /// waiting never got an answer.
    fn finish_session(&mut self, sink: &mut RowSink<'_>) {
        let response_dir = if self.request_dir == Dir::Egress {
            Dir::Ingress
        } else {
            Dir::Egress
        };
        let end_ts = self.last_byte_ts[response_dir.index()];
        if let Some(message) = self.decoders[response_dir.index()].finish() {
            self.on_message(response_dir, message, end_ts, sink);
        }
        self.decoders[self.request_dir.index()].finish();
        sink.counters
            .http_unmatched_requests
            .add(self.pending.len() as u64);
        self.pending.clear();
    }

    fn on_message(
        &mut self,
        dir: Dir,
        message: HttpMessage,
        end_ts: u64,
        sink: &mut RowSink<'_>,
    ) -> Outcome {
        let start_ts = self.message_start[dir.index()];
        if dir == self.request_dir {
            if self.pending.len() >= MAX_PENDING_REQUESTS {
                self.pending.pop_front();
                sink.counters.http_unmatched_requests.inc();
            }
            self.pending.push_back(PendingRequest { message, start_ts });
            return Outcome::Continue;
        }
        // 1xx responses (but 101) are interim: the final response follows.
        if (100..200).contains(&message.status) && message.status != 101 {
            return Outcome::Continue;
        }
        let Some(request) = self.pending.pop_front() else {
            sink.counters.http_unmatched_responses.inc();
            return Outcome::Continue;
        };
        // After 101, or a 2xx to CONNECT, the connection carries another protocol (or a tunnel).
        let upgraded = message.status == 101
            || (request.message.method.eq_ignore_ascii_case("CONNECT")
                && (200..300).contains(&message.status));
        let row = build_row(&request, &message, end_ts, sink);
        sink.rows.http.append(&row);
        sink.counters.http_rows.inc();
        if upgraded {
            Outcome::Upgraded
        } else {
            Outcome::Continue
        }
    }
}

impl ProtocolSession for HttpSession {
    fn process(&mut self, dir: Dir, window: &mut Window, sink: &mut RowSink<'_>) -> Outcome {
        self.process_window(dir, window, sink)
    }

    fn gap(&mut self, dir: Dir, len: u64, ts: u64, window: &mut Window, sink: &mut RowSink<'_>) {
        self.apply_gap(dir, len, ts, window, sink);
    }

    fn finish(&mut self, sink: &mut RowSink<'_>) {
        self.finish_session(sink);
    }
}

fn build_row(
    request: &PendingRequest,
    response: &HttpMessage,
    end_ts: u64,
    sink: &RowSink<'_>,
) -> HttpRow {
    let req = &request.message;
    let latency = end_ts.saturating_sub(request.start_ts);
    let content_type = if response.content_type.is_empty() {
        req.content_type.clone()
    } else {
        response.content_type.clone()
    };
    HttpRow {
        time_ns: sink.clock.to_unix_ns(end_ts),
        conn: sink.conn.clone(),
        major_version: 1,
        minor_version: i64::from(response.minor_version),
        content_type,
        req_headers: req.headers.clone(),
        req_method: req.method.clone(),
        req_path: req.path.clone(),
        req_body: req.body.clone(),
        req_body_size: i64::try_from(req.body_size).unwrap_or(i64::MAX),
        resp_headers: response.headers.clone(),
        resp_status: i64::from(response.status),
        resp_message: response.reason.clone(),
        resp_body: response.body.clone(),
        resp_body_size: i64::try_from(response.body_size).unwrap_or(i64::MAX),
        latency_ns: i64::try_from(latency).unwrap_or(i64::MAX),
    }
}
