//! The agent's own counters. They land in `capture_stats` and on `/metrics`,
//! so every loss is data a user can query.

use std::sync::Arc;

use sonde_query::stats::{Counter, StatsRegistry};

macro_rules! capture_counters {
    ($($field:ident => $help:literal,)*) => {
        /// Userspace capture counters (kernel counters are mirrored separately).
        pub struct CaptureCounters {
            $(pub $field: Arc<Counter>,)*
        }

        impl CaptureCounters {
            pub fn register(stats: &StatsRegistry) -> Self {
                Self { $($field: stats.counter(stringify!($field), $help),)* }
            }
        }
    };
}

capture_counters! {
    events_open => "Connection open events received from the kernel",
    events_data => "Data events received from the kernel",
    events_close => "Connection close events received from the kernel",
    events_proc_exit => "Process exit events received from the kernel",
    events_malformed => "Ring buffer records that could not be decoded",
    events_unknown_conn => "Data or close events for a connection whose open event was lost",
    bytes_captured => "Payload bytes received from the kernel",
    stream_gaps => "Gaps in reassembled streams (bytes lost or not copied)",
    stream_gap_bytes => "Bytes missing from reassembled streams",
    stream_duplicate_bytes => "Bytes received twice for the same stream position (ignored)",
    connection_state_bytes => "Memory held for connection state now (a gauge, updated every second): unparsed and out-of-order bytes, pending requests, messages in progress",
    stream_buffer_dropped_bytes => "Bytes dropped (as gaps) because connection state reached --max-connection-state-mib",
    conns_tracked => "Connections tracked since start",
    conns_table_full => "Connections not tracked because the connection table was full",
    conns_expired => "Idle connections expired from the connection table",
    protocol_unknown_bytes => "Bytes of traffic no protocol parser recognised",
    protocol_revisions => "Times a connection's inferred protocol was abandoned after parse failures",
    conns_opaque => "Connections no parser wants (no protocol recognised, or upgraded to one not parsed): the kernel stops copying their bytes",
    http_parse_failures => "HTTP messages that failed to parse",
    http_messages_lost => "HTTP messages lost to a stream gap",
    http_unmatched_requests => "HTTP requests that never got a response (connection closed or queue full)",
    http_unmatched_responses => "HTTP responses without a pending request",
    http_rows => "Rows appended to http_events (HTTP/1.x exchanges and HTTP/2 streams)",
    http2_parse_failures => "HTTP/2 frames that failed to decode (the direction resyncs on a frame boundary)",
    http2_resyncs => "HTTP/2 directions that lost bytes between frames and resynced (frames and header state may be missing)",
    http2_streams_reset => "HTTP/2 streams ended by RST_STREAM (rows are still written)",
    http2_streams_evicted => "HTTP/2 streams dropped because too many were open on one connection",
    http2_streams_refused => "HTTP/2 streams dropped because a GOAWAY said they were not processed",
    http2_streams_unanswered => "HTTP/2 streams that never got a response head (connection closed)",
    http2_frames_on_unknown_streams => "HTTP/2 DATA or trailers on streams not followed (opened before the capture, evicted or ended)",
    http2_hpack_unknown_fields => "HTTP/2 header fields not decodable (dynamic table entries from before the capture or a loss)",
    http2_hpack_errors => "HTTP/2 header blocks that failed to decode (dropped)",
    http2_hpack_desyncs => "Times an HTTP/2 header table became unknown (lost or cut header blocks)",
    http2_hpack_size_updates_over_setting => "HTTP/2 dynamic table size updates above the peer's SETTINGS_HEADER_TABLE_SIZE",
    http2_header_blocks_too_large => "HTTP/2 header blocks longer than the cap (decoded as far as kept)",
    http2_headers_dropped => "HTTP/2 header fields beyond the per-block cap (dropped)",
    pgsql_rows => "pgsql_events rows written",
    pgsql_parse_failures => "PostgreSQL messages that failed to parse",
    pgsql_messages_lost => "PostgreSQL messages lost to a stream gap",
    pgsql_unanswered => "PostgreSQL requests that never got their response (lost, evicted beyond 1024 waiting, or the connection closed)",
    pgsql_unmatched_responses => "PostgreSQL responses with no request waiting for them",
    pgsql_statements_evicted => "Prepared statements and portals forgotten beyond the per-connection caps",
    pgsql_unknown_statements => "Binds and Executes naming a statement or portal not seen (prepared before the capture, or evicted)",
    pgsql_split_mismatches => "Simple queries whose statements could not be paired one to one with the server's completions",
    redis_rows => "Rows appended to redis_events",
    redis_parse_failures => "Redis values that failed to parse",
    redis_messages_lost => "Redis values lost to a stream gap",
    redis_unanswered => "Redis commands that never got a reply (connection closed, gap or queue full)",
    redis_unmatched_replies => "Redis replies without a pending command",
    mysql_rows => "Rows appended to mysql_events",
    mysql_parse_failures => "MySQL packets that failed to parse",
    mysql_messages_lost => "MySQL packets lost to a stream gap",
    mysql_unanswered => "MySQL commands whose response was never seen complete",
    dns_rows => "Rows appended to dns_events",
    dns_parse_failures => "DNS messages that failed to parse",
    dns_messages_lost => "DNS-over-TCP messages lost to a stream gap",
    dns_unanswered => "DNS queries that never got a response (timeout, close, retransmission or queue full)",
    dns_unmatched_responses => "DNS responses without a pending query",
    store_append_failures => "Batches the table store refused",
    tls_connections => "Connections switched to the plaintext stream of a TLS library probe",
    tls_plaintext_bytes => "Plaintext bytes received from TLS library probes",
    tls_ciphertext_bytes => "Bytes of TLS records copied from the wire, not parsed (the first records; then the kernel stops copying them)",
}
