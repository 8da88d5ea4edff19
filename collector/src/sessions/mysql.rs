//! MySQL on one connection: packets fed to the handshake-aware state
//! machine `sonde_protocols::mysql::MysqlPairing`, each command and its
//! response a `mysql_events` row.

use std::sync::Arc;

use sonde_protocols::MessageKind;
use sonde_protocols::mysql::{
    MysqlConfig, MysqlExchange, MysqlPacket, MysqlPacketDecoder, MysqlPairing, MysqlStatus,
};
use sonde_query::records::MysqlRow;

use super::stream_session::{StreamProtocol, Timed};
use super::{Outcome, RowSink};

pub struct MysqlStream {
    pairing: MysqlPairing,
    reported_unanswered: u64,
}

impl Default for MysqlStream {
    fn default() -> Self {
        Self {
            pairing: MysqlPairing::new(MysqlConfig::default()),
            reported_unanswered: 0,
        }
    }
}

impl MysqlStream {
    fn emit(&mut self, exchange: MysqlExchange, sink: &mut RowSink<'_>) {
        // Commands without a response end when they are sent.
        let end_ts = if exchange.resp_status == MysqlStatus::None {
            exchange.req_ts
        } else {
            exchange.resp_ts
        };
        let row = MysqlRow {
            time_ns: sink.clock.to_unix_ns(end_ts),
            conn: Arc::clone(sink.conn),
            req_cmd: exchange.req_cmd_name.to_string(),
            req_body: exchange.req_body,
            resp_status: exchange.resp_status,
            resp_body: exchange.resp_body,
            latency: i64::try_from(end_ts.saturating_sub(exchange.req_ts)).unwrap_or(i64::MAX),
        };
        sink.rows.mysql.push(row);
        sink.counters.mysql_rows.inc();
    }

    fn count_unanswered(&mut self, sink: &RowSink<'_>) {
        let unanswered = self.pairing.unanswered();
        sink.counters
            .mysql_unanswered
            .add(unanswered.saturating_sub(self.reported_unanswered));
        self.reported_unanswered = unanswered;
    }
}

impl StreamProtocol for MysqlStream {
    type Decoder = MysqlPacketDecoder;

    fn decoder(&self, _kind: MessageKind) -> MysqlPacketDecoder {
        MysqlPacketDecoder::new(MysqlConfig::default())
    }

    fn on_message(
        &mut self,
        kind: MessageKind,
        message: Timed<MysqlPacket>,
        sink: &mut RowSink<'_>,
    ) -> Outcome {
        let exchange = match kind {
            MessageKind::Request => self
                .pairing
                .on_client_packet(&message.message, message.start_ts),
            MessageKind::Response => self
                .pairing
                .on_server_packet(&message.message, message.end_ts),
        };
        if let Some(exchange) = exchange {
            self.emit(exchange, sink);
        }
        self.count_unanswered(sink);
        // After a TLS upgrade (SSL request) the stream is ciphertext.
        if self.pairing.is_opaque() {
            Outcome::Upgraded(None)
        } else {
            Outcome::Continue
        }
    }

    fn on_parse_error(&mut self, _kind: MessageKind, sink: &mut RowSink<'_>) {
        sink.counters.mysql_parse_failures.inc();
    }

    fn on_message_lost(&mut self, _kind: MessageKind, sink: &mut RowSink<'_>) {
        sink.counters.mysql_messages_lost.inc();
        self.pairing.on_gap();
        self.count_unanswered(sink);
    }

    fn finish(&mut self, sink: &mut RowSink<'_>) {
        self.count_unanswered(sink);
    }
    fn held_bytes(&self) -> usize {
        self.pairing.held_bytes()
    }
}
