//! DNS: over TCP (length-prefixed messages on a stream) and over UDP (one
//! message per datagram, each with its own peer). Queries pair with responses
//! by (peer, transaction id) in `sonde_protocols::dns::DnsMatcher`.

use sonde_protocols::MessageKind;
use sonde_protocols::dns::{
    DnsConfig, DnsExchange, DnsMatcher, DnsMessage, DnsTcpDecoder, parse_message,
};
use sonde_query::records::{ConnFields, DnsRow, TraceRole};

use crate::session::{Dir, Outcome, ProtocolSession, RowSink};
use crate::stream_driver::{Driver, FailureStreak};
use crate::window::Window;

/// Queries waiting for a response, per socket.
const MAX_PENDING: usize = 1024;
/// A query unanswered this long is counted as unanswered and forgotten.
const QUERY_TIMEOUT_NS: u64 = 10_000_000_000;

/// The peer a datagram went to or came from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Peer {
    pub addr: String,
    pub port: i64,
}

fn append_row(exchange: &DnsExchange, conn: ConnFields, sink: &mut RowSink<'_>) {
    let row = DnsRow {
        time_ns: sink.clock.to_unix_ns(exchange.response_ts),
        conn,
        req_header: exchange.query.header_json(),
        req_body: exchange.query.questions_json(),
        resp_header: exchange.response.header_json(),
        resp_body: exchange.response.answers_json(),
        latency: i64::try_from(exchange.response_ts.saturating_sub(exchange.query_ts))
            .unwrap_or(i64::MAX),
    };
    sink.rows.dns.append(&row);
    sink.counters.dns_rows.inc();
}

/// Hands a message to the matcher; a completed exchange becomes a row.
fn match_message(
    matcher: &mut DnsMatcher<Peer>,
    peer: Peer,
    message: DnsMessage,
    ts: u64,
    conn: ConnFields,
    sink: &mut RowSink<'_>,
) {
    if message.is_response {
        let before = matcher.unmatched_responses();
        if let Some(exchange) = matcher.on_response(peer, message, ts) {
            append_row(&exchange, conn, sink);
        }
        sink.counters
            .dns_unmatched_responses
            .add(matcher.unmatched_responses() - before);
    } else if matcher.on_query(peer, message, ts).is_some() {
        // A retransmission replaced it, or the queue was full.
        sink.counters.dns_unanswered.inc();
    }
}

/// DNS over TCP on one connection.
pub struct DnsStreamSession {
    decoders: [DnsTcpDecoder; 2],
    drivers: [Driver; 2],
    matcher: DnsMatcher<Peer>,
    failures: FailureStreak,
}

impl DnsStreamSession {
    pub fn new(query_dir: Dir) -> Self {
        let kind = |dir: Dir| {
            if dir == query_dir {
                MessageKind::Request
            } else {
                MessageKind::Response
            }
        };
        Self {
            decoders: [
                DnsTcpDecoder::new(DnsConfig::default()),
                DnsTcpDecoder::new(DnsConfig::default()),
            ],
            drivers: [
                Driver::new(kind(Dir::Egress)),
                Driver::new(kind(Dir::Ingress)),
            ],
            matcher: DnsMatcher::new(MAX_PENDING, QUERY_TIMEOUT_NS),
            failures: FailureStreak::default(),
        }
    }
}

impl ProtocolSession for DnsStreamSession {
    fn process(&mut self, dir: Dir, window: &mut Window, sink: &mut RowSink<'_>) -> Outcome {
        let i = dir.index();
        let result = self.drivers[i].run(&mut self.decoders[i], window);
        sink.counters
            .dns_parse_failures
            .add(u64::from(result.errors));
        let give_up = self.failures.record(&result);
        // One peer per TCP connection: the key is constant. The matcher is
        // bounded (oldest queries evicted, counted); leftovers count at close.
        let peer = Peer {
            addr: String::new(),
            port: 0,
        };
        for timed in result.messages {
            let ts = if timed.message.is_response {
                timed.end_ts
            } else {
                timed.start_ts
            };
            match_message(
                &mut self.matcher,
                peer.clone(),
                timed.message,
                ts,
                sink.conn.clone(),
                sink,
            );
        }
        if give_up {
            Outcome::Abandon
        } else {
            Outcome::Continue
        }
    }

    fn gap(&mut self, dir: Dir, len: u64, ts: u64, window: &mut Window, sink: &mut RowSink<'_>) {
        let i = dir.index();
        if self.drivers[i].gap(&mut self.decoders[i], len, ts, window) {
            sink.counters.dns_messages_lost.inc();
        }
    }

    fn finish(&mut self, sink: &mut RowSink<'_>) {
        sink.counters
            .dns_unanswered
            .add(self.matcher.pending() as u64);
    }
}

/// DNS over UDP on one socket: every datagram is a whole message.
pub struct DnsDatagrams {
    config: DnsConfig,
    matcher: DnsMatcher<Peer>,
}

impl Default for DnsDatagrams {
    fn default() -> Self {
        Self {
            config: DnsConfig::default(),
            matcher: DnsMatcher::new(MAX_PENDING, QUERY_TIMEOUT_NS),
        }
    }
}

impl DnsDatagrams {
    /// One datagram of `dir` exchanged with `peer`; false if it is not DNS.
    pub fn on_datagram(
        &mut self,
        dir: Dir,
        peer: Peer,
        payload: &[u8],
        ts: u64,
        sink: &mut RowSink<'_>,
    ) -> bool {
        let Ok(message) = parse_message(payload, &self.config) else {
            sink.counters.dns_parse_failures.inc();
            return false;
        };
        // A query we send makes us the client; a query we receive, the server.
        let sent_query = (dir == Dir::Egress) != message.is_response;
        let mut conn = sink.conn.clone();
        conn.remote_addr.clone_from(&peer.addr);
        conn.remote_port = peer.port;
        conn.trace_role = if sent_query {
            TraceRole::Client
        } else {
            TraceRole::Server
        };
        match_message(&mut self.matcher, peer, message, ts, conn, sink);
        true
    }

    /// Forgets queries that timed out; returns how many.
    pub fn expire(&mut self, now_ns: u64) -> usize {
        self.matcher.expire(now_ns)
    }

    pub fn pending(&self) -> usize {
        self.matcher.pending()
    }
}
