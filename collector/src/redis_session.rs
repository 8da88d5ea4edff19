//! Redis on one connection: a RESP decoder per direction, paired by
//! `sonde_protocols::redis::RedisSession` (in order, pipelining, pub/sub).

use sonde_protocols::redis::{RedisEvent, RedisSession, RespConfig, RespDecoder};
use sonde_query::records::RedisRow;

use crate::session::{Dir, Outcome, ProtocolSession, RowSink};
use crate::stream_driver::{Driver, FailureStreak, kinds};
use crate::window::Window;

/// Requests waiting for replies; beyond, the oldest are dropped (counted).
const MAX_PENDING: usize = 1024;
/// Longest rendered reply kept in the `resp` column.
const MAX_REPLY_LEN: usize = 1024;

pub struct RedisStreamSession {
    request_dir: Dir,
    decoders: [RespDecoder; 2],
    drivers: [Driver; 2],
    pairing: RedisSession,
    failures: FailureStreak,
    reported_overflow: u64,
}

impl RedisStreamSession {
    pub fn new(request_dir: Dir) -> Self {
        let [egress, ingress] = kinds(request_dir == Dir::Egress);
        Self {
            request_dir,
            decoders: [
                RespDecoder::new(egress, RespConfig::default()),
                RespDecoder::new(ingress, RespConfig::default()),
            ],
            drivers: [Driver::new(egress), Driver::new(ingress)],
            pairing: RedisSession::new(MAX_PENDING, MAX_REPLY_LEN),
            failures: FailureStreak::default(),
            reported_overflow: 0,
        }
    }

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
                conn: sink.conn.clone(),
                req_cmd: cmd.cmd.clone(),
                req_args: cmd.args_json(),
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
                conn: sink.conn.clone(),
                req_cmd: "PUSH".into(),
                req_args: serde_json::json!([kind, channel]).to_string(),
                resp: payload,
                resp_error: false,
                latency: 0,
            },
            RedisEvent::UnmatchedReply { .. } => {
                sink.counters.redis_unmatched_replies.inc();
                return;
            }
        };
        sink.rows.redis.append(&row);
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

impl ProtocolSession for RedisStreamSession {
    fn process(&mut self, dir: Dir, window: &mut Window, sink: &mut RowSink<'_>) -> Outcome {
        let i = dir.index();
        let result = self.drivers[i].run(&mut self.decoders[i], window);
        sink.counters
            .redis_parse_failures
            .add(u64::from(result.errors));
        let give_up = self.failures.record(&result);
        for timed in result.messages {
            if dir == self.request_dir {
                self.pairing.on_request(timed.message, timed.start_ts);
            } else if let Some(event) = self.pairing.on_reply(timed.message, timed.end_ts) {
                self.emit(event, sink);
            }
        }
        self.count_overflow(sink);
        if give_up {
            Outcome::Abandon
        } else {
            Outcome::Continue
        }
    }

    fn gap(&mut self, dir: Dir, len: u64, ts: u64, window: &mut Window, sink: &mut RowSink<'_>) {
        let i = dir.index();
        if self.drivers[i].gap(&mut self.decoders[i], len, ts, window) {
            sink.counters.redis_messages_lost.inc();
            // Replies can no longer be paired by position.
            sink.counters
                .redis_unanswered
                .add(self.pairing.on_gap() as u64);
        }
    }

    fn finish(&mut self, sink: &mut RowSink<'_>) {
        let reply_dir = self.request_dir.other();
        if let Some(value) = self.decoders[reply_dir.index()].finish()
            && let Some(event) = self.pairing.on_reply(value, 0)
        {
            self.emit(event, sink);
        }
        sink.counters
            .redis_unanswered
            .add(self.pairing.finish() as u64);
        self.count_overflow(sink);
    }
}
