//! MySQL on one connection: a packet decoder per direction feeding the
//! handshake-aware state machine `sonde_protocols::mysql::MysqlSession`.

use sonde_protocols::mysql::{
    MysqlConfig, MysqlExchange, MysqlPacketDecoder, MysqlSession, MysqlStatus,
};
use sonde_query::records::MysqlRow;

use crate::session::{Dir, Outcome, ProtocolSession, RowSink};
use crate::stream_driver::{Driver, FailureStreak, kinds};
use crate::window::Window;

pub struct MysqlStreamSession {
    /// The client's direction (it sends commands).
    request_dir: Dir,
    decoders: [MysqlPacketDecoder; 2],
    drivers: [Driver; 2],
    state: MysqlSession,
    failures: FailureStreak,
    reported_unanswered: u64,
}

impl MysqlStreamSession {
    pub fn new(request_dir: Dir) -> Self {
        let [egress, ingress] = kinds(request_dir == Dir::Egress);
        let decoder = || MysqlPacketDecoder::new(MysqlConfig::default());
        Self {
            request_dir,
            decoders: [decoder(), decoder()],
            drivers: [Driver::new(egress), Driver::new(ingress)],
            state: MysqlSession::new(MysqlConfig::default()),
            failures: FailureStreak::default(),
            reported_unanswered: 0,
        }
    }

    fn emit(&mut self, exchange: MysqlExchange, sink: &mut RowSink<'_>) {
        let status = match exchange.resp_status {
            MysqlStatus::Ok => "OK",
            MysqlStatus::Err => "ERR",
            MysqlStatus::ResultSet => "RESULTSET",
            MysqlStatus::None => "NONE",
        };
        // Commands without a response end when they are sent.
        let end_ts = if exchange.resp_status == MysqlStatus::None {
            exchange.req_ts
        } else {
            exchange.resp_ts
        };
        let row = MysqlRow {
            time_ns: sink.clock.to_unix_ns(end_ts),
            conn: sink.conn.clone(),
            req_cmd: exchange.req_cmd_name.to_string(),
            req_body: exchange.req_body,
            resp_status: status.to_string(),
            resp_body: exchange.resp_body,
            latency: i64::try_from(end_ts.saturating_sub(exchange.req_ts)).unwrap_or(i64::MAX),
        };
        sink.rows.mysql.append(&row);
        sink.counters.mysql_rows.inc();
    }

    fn count_unanswered(&mut self, sink: &RowSink<'_>) {
        let unanswered = self.state.unanswered();
        sink.counters
            .mysql_unanswered
            .add(unanswered.saturating_sub(self.reported_unanswered));
        self.reported_unanswered = unanswered;
    }
}

impl ProtocolSession for MysqlStreamSession {
    fn process(&mut self, dir: Dir, window: &mut Window, sink: &mut RowSink<'_>) -> Outcome {
        let i = dir.index();
        let result = self.drivers[i].run(&mut self.decoders[i], window);
        sink.counters
            .mysql_parse_failures
            .add(u64::from(result.errors));
        let give_up = self.failures.record(&result);
        for timed in result.messages {
            let exchange = if dir == self.request_dir {
                self.state.on_client_packet(&timed.message, timed.start_ts)
            } else {
                self.state.on_server_packet(&timed.message, timed.end_ts)
            };
            if let Some(exchange) = exchange {
                self.emit(exchange, sink);
            }
        }
        self.count_unanswered(sink);
        if give_up {
            return Outcome::Abandon;
        }
        // After a TLS upgrade (SSL request) the stream is ciphertext.
        if self.state.is_opaque() {
            Outcome::Upgraded
        } else {
            Outcome::Continue
        }
    }

    fn gap(&mut self, dir: Dir, len: u64, ts: u64, window: &mut Window, sink: &mut RowSink<'_>) {
        let i = dir.index();
        if self.drivers[i].gap(&mut self.decoders[i], len, ts, window) {
            sink.counters.mysql_messages_lost.inc();
            self.state.on_gap();
            self.count_unanswered(sink);
        }
    }

    fn finish(&mut self, sink: &mut RowSink<'_>) {
        self.count_unanswered(sink);
    }
}
