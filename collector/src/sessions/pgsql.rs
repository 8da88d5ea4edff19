//! PostgreSQL on one connection: frontend and backend messages fed to the
//! protocol-aware `sonde_protocols::pgsql::PgSession` (startup, simple and
//! extended query, COPY, errors), each exchange a `pgsql_events` row.

use std::sync::Arc;

use sonde_protocols::MessageKind;
use sonde_protocols::pgsql::{Encryption, PgConfig, PgCounters, PgDecoder, PgEvent, PgSession};
use sonde_query::records::PgsqlRow;

use super::stream_session::{StreamProtocol, Timed};
use super::{Outcome, RowSink};

pub struct PgsqlStream {
    config: PgConfig,
    session: PgSession,
    /// The session's counters already added to the capture counters.
    reported: PgCounters,
}

impl Default for PgsqlStream {
    fn default() -> Self {
        let config = PgConfig::default();
        Self {
            session: PgSession::new(config.clone()),
            config,
            reported: PgCounters::default(),
        }
    }
}

impl PgsqlStream {
    fn emit(&self, event: PgEvent, sink: &mut RowSink<'_>) {
        let row = PgsqlRow {
            time_ns: sink.clock.to_unix_ns(event.resp_ts),
            conn: Arc::clone(sink.conn),
            req_cmd: event.command.name().to_string(),
            req: event.req,
            resp: event.resp,
            sqlstate: event.sqlstate,
            rows: event.rows.map(|n| i64::try_from(n).unwrap_or(i64::MAX)),
            db_user: self.session.user().to_string(),
            db_name: self.session.database().to_string(),
            latency: i64::try_from(event.resp_ts.saturating_sub(event.req_ts)).unwrap_or(i64::MAX),
        };
        sink.rows.pgsql.push(row);
        sink.counters.pgsql_rows.inc();
    }

    /// Adds what the session counted since the last report.
    fn report_counters(&mut self, sink: &RowSink<'_>) {
        let now = self.session.counters().clone();
        let was = &self.reported;
        let c = sink.counters;
        c.pgsql_unanswered
            .add(now.unanswered.saturating_sub(was.unanswered));
        c.pgsql_unanswered
            .add(now.pending_evicted.saturating_sub(was.pending_evicted));
        c.pgsql_statements_evicted.add(
            (now.statements_evicted + now.portals_evicted)
                .saturating_sub(was.statements_evicted + was.portals_evicted),
        );
        c.pgsql_unknown_statements.add(
            now.unknown_statements
                .saturating_sub(was.unknown_statements),
        );
        c.pgsql_unmatched_responses.add(
            now.unmatched_responses
                .saturating_sub(was.unmatched_responses),
        );
        c.pgsql_split_mismatches
            .add(now.split_mismatches.saturating_sub(was.split_mismatches));
        self.reported = now;
    }
}

impl StreamProtocol for PgsqlStream {
    type Decoder = PgDecoder;

    fn decoder(&self, kind: MessageKind) -> PgDecoder {
        PgDecoder::new(kind, self.config.clone())
    }

    fn on_message(
        &mut self,
        kind: MessageKind,
        message: Timed<sonde_protocols::pgsql::PgMessage>,
        sink: &mut RowSink<'_>,
    ) -> Outcome {
        let event = match kind {
            MessageKind::Request => self.session.on_frontend(&message.message, message.start_ts),
            MessageKind::Response => self.session.on_backend(&message.message, message.end_ts),
        };
        if let Some(event) = event {
            self.emit(event, sink);
        }
        self.report_counters(sink);
        // After an accepted SSLRequest the wire carries ciphertext: libpq's
        // plaintext comes from the OpenSSL probes (a fresh stream).
        if self.session.encryption() == Encryption::None {
            Outcome::Continue
        } else {
            Outcome::Upgraded(None)
        }
    }

    fn on_parse_error(&mut self, _kind: MessageKind, sink: &mut RowSink<'_>) {
        sink.counters.pgsql_parse_failures.inc();
    }

    fn on_message_lost(&mut self, _kind: MessageKind, sink: &mut RowSink<'_>) {
        sink.counters.pgsql_messages_lost.inc();
        self.session.on_gap();
        self.report_counters(sink);
    }

    fn finish(&mut self, sink: &mut RowSink<'_>) {
        self.report_counters(sink);
        sink.counters
            .pgsql_unanswered
            .add(self.session.pending() as u64);
    }

    fn held_bytes(&self) -> usize {
        self.session.state_bytes()
    }
}
