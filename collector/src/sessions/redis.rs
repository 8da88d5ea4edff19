//! Redis on one connection: commands paired with replies by
//! `sonde_protocols::redis::RedisPairing` (in order, pipelining, pub/sub),
//! each exchange or push a `redis_events` row.

use std::sync::Arc;

use sonde_protocols::MessageKind;
use sonde_protocols::redis::{RedisEvent, RedisPairing, RespConfig, RespDecoder, RespValue};
use sonde_query::records::{RedisArgs, RedisRow};

use super::stream_session::{StreamProtocol, Timed};
use super::{Outcome, RowSink};

/// Requests waiting for replies; beyond, the oldest are dropped (counted).
const MAX_PENDING: usize = 1024;
/// Longest rendered reply kept in the `resp` column.
const MAX_REPLY_LEN: usize = 1024;

pub struct RedisStream {
    pairing: RedisPairing,
    reported_overflow: u64,
}

impl Default for RedisStream {
    fn default() -> Self {
        Self {
            pairing: RedisPairing::new(MAX_PENDING, MAX_REPLY_LEN),
            reported_overflow: 0,
        }
    }
}

impl RedisStream {
    fn emit(&mut self, event: RedisEvent, sink: &mut RowSink<'_>) {
        let row = match event {
            RedisEvent::Exchange {
                cmd,
                reply,
                is_error,
                req_ts,
                resp_ts,
            } => RedisRow {
                time_ns: sink.clock.to_unix_ns(resp_ts),
                conn: Arc::clone(sink.conn),
                req_cmd: cmd.cmd,
                req_args: RedisArgs::Command {
                    args: cmd.args,
                    omitted: cmd.omitted_args,
                },
                resp: reply,
                resp_error: is_error,
                latency: i64::try_from(resp_ts.saturating_sub(req_ts)).unwrap_or(i64::MAX),
            },
            RedisEvent::Push {
                kind,
                channel,
                payload,
                ts,
            } => RedisRow {
                time_ns: sink.clock.to_unix_ns(ts),
                conn: Arc::clone(sink.conn),
                req_cmd: "PUSH".into(),
                req_args: RedisArgs::Push { kind, channel },
                resp: payload,
                resp_error: false,
                latency: 0,
            },
            RedisEvent::UnmatchedReply { .. } => {
                sink.counters.redis_unmatched_replies.inc();
                return;
            }
        };
        sink.rows.redis.push(row);
        sink.counters.redis_rows.inc();
    }

    fn count_overflow(&mut self, sink: &RowSink<'_>) {
        let overflowed = self.pairing.overflowed();
        sink.counters
            .redis_unanswered
            .add(overflowed - self.reported_overflow);
        self.reported_overflow = overflowed;
    }
}

impl StreamProtocol for RedisStream {
    type Decoder = RespDecoder;

    fn decoder(&self, kind: MessageKind) -> RespDecoder {
        RespDecoder::new(kind, RespConfig::default())
    }

    fn on_message(
        &mut self,
        kind: MessageKind,
        message: Timed<RespValue>,
        sink: &mut RowSink<'_>,
    ) -> Outcome {
        match kind {
            MessageKind::Request => self.pairing.on_request(message.message, message.start_ts),
            MessageKind::Response => {
                if let Some(event) = self.pairing.on_reply(message.message, message.end_ts) {
                    self.emit(event, sink);
                }
            }
        }
        self.count_overflow(sink);
        Outcome::Continue
    }

    fn on_parse_error(&mut self, _kind: MessageKind, sink: &mut RowSink<'_>) {
        sink.counters.redis_parse_failures.inc();
    }

    fn on_message_lost(&mut self, _kind: MessageKind, sink: &mut RowSink<'_>) {
        sink.counters.redis_messages_lost.inc();
        // Replies can no longer be paired by position.
        sink.counters
            .redis_unanswered
            .add(self.pairing.on_gap() as u64);
    }

    fn finish(&mut self, sink: &mut RowSink<'_>) {
        sink.counters
            .redis_unanswered
            .add(self.pairing.finish() as u64);
        self.count_overflow(sink);
    }
    fn held_bytes(&self) -> usize {
        self.pairing.held_bytes()
    }
}
