//! DNS: over TCP (length-prefixed messages on a stream) and over UDP (one
//! message per datagram, each with its own peer). Queries pair with
//! responses by (peer, transaction id) in `sonde_protocols::dns::DnsMatcher`;
//! each exchange is a `dns_events` row.

use std::sync::Arc;

use sonde_protocols::MessageKind;
use sonde_protocols::dns::{
    DnsConfig, DnsExchange, DnsMatcher, DnsMessage, DnsTcpDecoder, parse_message,
};
use sonde_query::records::{ConnFields, DnsRow, TraceRole};

use super::stream_session::{StreamProtocol, Timed};
use super::{Dir, Outcome, RowSink};

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

fn append_row(exchange: DnsExchange, conn: Arc<ConnFields>, sink: &mut RowSink<'_>) {
    let DnsExchange {
        query,
        response,
        query_ts,
        response_ts,
    } = exchange;
    let row = DnsRow {
        time_ns: sink.clock.to_unix_ns(response_ts),
        conn,
        req_header: query.header(),
        req_body: query.questions,
        resp_header: response.header(),
        resp_body: response.answers,
        latency: i64::try_from(response_ts.saturating_sub(query_ts)).unwrap_or(i64::MAX),
    };
    sink.rows.dns.push(row);
    sink.counters.dns_rows.inc();
}

/// Hands a message to the matcher; a completed exchange becomes a row.
fn match_message(
    matcher: &mut DnsMatcher<Peer>,
    peer: Peer,
    message: DnsMessage,
    ts: u64,
    conn: Arc<ConnFields>,
    sink: &mut RowSink<'_>,
) {
    if message.is_response {
        let before = matcher.unmatched_responses();
        if let Some(exchange) = matcher.on_response(peer, message, ts) {
            append_row(exchange, conn, sink);
        }
        sink.counters
            .dns_unmatched_responses
            .add(matcher.unmatched_responses() - before);
    } else if matcher.on_query(peer, message, ts).is_some() {
        // A retransmission replaced it, or the queue was full.
        sink.counters.dns_unanswered.inc();
    }
}

/// DNS over TCP on one connection (one peer: the matcher key is constant).
pub struct DnsTcpStream {
    matcher: DnsMatcher<Peer>,
}

impl Default for DnsTcpStream {
    fn default() -> Self {
        Self {
            matcher: DnsMatcher::new(MAX_PENDING, QUERY_TIMEOUT_NS),
        }
    }
}

impl StreamProtocol for DnsTcpStream {
    type Decoder = DnsTcpDecoder;

    fn decoder(&self, _kind: MessageKind) -> DnsTcpDecoder {
        DnsTcpDecoder::new(DnsConfig::default())
    }

    fn on_message(
        &mut self,
        _kind: MessageKind,
        message: Timed<DnsMessage>,
        sink: &mut RowSink<'_>,
    ) -> Outcome {
        let ts = if message.message.is_response {
            message.end_ts
        } else {
            message.start_ts
        };
        let peer = Peer {
            addr: String::new(),
            port: 0,
        };
        let conn = Arc::clone(sink.conn);
        match_message(&mut self.matcher, peer, message.message, ts, conn, sink);
        Outcome::Continue
    }

    fn on_parse_error(&mut self, _kind: MessageKind, sink: &mut RowSink<'_>) {
        sink.counters.dns_parse_failures.inc();
    }

    fn on_message_lost(&mut self, _kind: MessageKind, sink: &mut RowSink<'_>) {
        sink.counters.dns_messages_lost.inc();
    }

    fn finish(&mut self, sink: &mut RowSink<'_>) {
        sink.counters
            .dns_unanswered
            .add(self.matcher.pending() as u64);
    }
    fn held_bytes(&self) -> usize {
        self.matcher.held_bytes()
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
        let mut conn = ConnFields::clone(sink.conn);
        conn.remote_addr.clone_from(&peer.addr);
        conn.remote_port = peer.port;
        conn.trace_role = if sent_query {
            TraceRole::Client
        } else {
            TraceRole::Server
        };
        match_message(&mut self.matcher, peer, message, ts, Arc::new(conn), sink);
        true
    }

    /// Bytes the waiting queries keep.
    pub fn held_bytes(&self) -> usize {
        self.matcher.held_bytes()
    }

    /// Forgets queries that timed out; returns how many.
    pub fn expire(&mut self, now_ns: u64) -> usize {
        self.matcher.expire(now_ns)
    }

    pub fn pending(&self) -> usize {
        self.matcher.pending()
    }
}
