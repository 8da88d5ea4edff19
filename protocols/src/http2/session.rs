//! One HTTP/2 connection: frames of both directions in, one event per
//! completed stream out.

use std::collections::{HashMap, VecDeque};
use std::mem;

use super::frame::{
    DataFrame, Frame, HeaderBlock, SETTINGS_ENABLE_PUSH, SETTINGS_HEADER_TABLE_SIZE,
    SETTINGS_INITIAL_WINDOW_SIZE, SETTINGS_MAX_CONCURRENT_STREAMS, SETTINGS_MAX_FRAME_SIZE,
    SETTINGS_MAX_HEADER_LIST_SIZE, Setting,
};
use super::grpc::{self, GrpcCall, GrpcScanner};
use super::hpack::{Field, HpackDecoder};
use super::{DEFAULT_MAX_FRAME_SIZE, Http2Config, MAX_FRAME_SIZE_LIMIT};
use crate::Headers;
use crate::held::{HeapSize, heap_bytes};
use crate::http::HttpMessage;
use crate::{MessageKind, REDACTED};
use compact_str::CompactString;

/// How a stream ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamEnd {
    /// Both sides sent END_STREAM.
    Complete,
    /// RST_STREAM sent by `by` (`Request`: the client).
    Reset { by: MessageKind, error_code: u32 },
    /// The connection closed while the stream was open.
    ConnectionClosed,
}

/// One side of a stream: a request or a response.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Http2Message {
    /// Regular header fields in order (pseudo-headers are in
    /// [`Http2Stream`]), names as sent (lowercase in HTTP/2), values lossy
    /// UTF-8, redacted per [`Http2Config::redacted_headers`] and when the
    /// sender marked them never-indexed (sensitive).
    pub headers: Headers,
    /// Fields of a trailing header block, the same way.
    pub trailers: Headers,
    /// Value of content-type, or "".
    pub content_type: CompactString,
    /// The first `body_prefix_bytes` of the body: a true prefix that stops
    /// where bytes were lost or not handed out by the decoder.
    pub body: Vec<u8>,
    /// Exact body size (sum of DATA lengths, padding excluded).
    pub body_size: u64,
    /// Body bytes were lost in capture gaps (or frames of this direction
    /// were lost): `body_size` may be short.
    pub body_incomplete: bool,
    /// Header fields that could not be decoded (dynamic table entries from
    /// before the capture, or a block that was lost or malformed).
    pub unknown_fields: u32,
    /// The side sent END_STREAM.
    pub ended: bool,
}

/// One stream: a request and its response (a gRPC call, streaming or not,
/// is one stream).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Http2Stream {
    pub stream_id: u32,
    /// `:method`, `:scheme`, `:authority`, `:path` of the request; None when
    /// absent or not decodable.
    pub method: Option<CompactString>,
    pub scheme: Option<CompactString>,
    pub authority: Option<CompactString>,
    pub path: Option<CompactString>,
    /// `:status` of the final response.
    pub status: Option<u16>,
    pub request: Http2Message,
    pub response: Http2Message,
    /// Set when the request or response content-type is gRPC, or the
    /// response carries a `grpc-status`.
    pub grpc: Option<GrpcCall>,
    pub end: StreamEnd,
    /// A server push: the request came in a PUSH_PROMISE.
    pub pushed: bool,
    /// Capture time of the first byte of the stream's first header block.
    pub start_ts: u64,
    /// Capture time of the last byte of the frame that ended the stream.
    pub end_ts: u64,
}

/// SETTINGS one side advertised (None: not seen).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PeerSettings {
    pub header_table_size: Option<u32>,
    pub enable_push: Option<bool>,
    pub max_concurrent_streams: Option<u32>,
    pub initial_window_size: Option<u32>,
    pub max_frame_size: Option<u32>,
    pub max_header_list_size: Option<u32>,
}

/// What the session dropped, could not decode or ended early. Monotonic;
/// the collector reads them to make loss queryable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Http2Counters {
    /// Events handed out.
    pub streams: u64,
    /// Streams ended by RST_STREAM (also counted in `streams`).
    pub streams_reset: u64,
    /// Streams dropped because `max_streams` were open.
    pub streams_evicted: u64,
    /// Streams dropped because a GOAWAY said they were not processed.
    pub streams_refused: u64,
    /// Streams dropped at close without a response head.
    pub streams_unanswered: u64,
    /// Header fields that could not be decoded.
    pub hpack_unknown_fields: u64,
    /// Header blocks that did not decode (dropped).
    pub hpack_errors: u64,
    /// Times a known header table became unknown (lost or cut blocks).
    pub hpack_desyncs: u64,
    /// Dynamic table size updates above the receiver's SETTINGS value.
    pub hpack_size_updates_over_setting: u64,
    /// Header blocks longer than `max_header_block_bytes`.
    pub header_blocks_too_large: u64,
    /// Header fields beyond `max_headers` in a block (dropped).
    pub headers_dropped: u64,
    /// Resyncs reported by the decoders (bytes lost between frames).
    pub discontinuities: u64,
    /// DATA or trailers for a stream not followed (opened before the capture,
    /// evicted, or already ended).
    pub frames_on_unknown_streams: u64,
}

/// Pseudo-headers and the fields the session reads from a header block.
#[derive(Debug, Default)]
struct DecodedBlock {
    method: Option<CompactString>,
    scheme: Option<CompactString>,
    authority: Option<CompactString>,
    path: Option<CompactString>,
    status: Option<CompactString>,
    content_type: Option<CompactString>,
    grpc_status: Option<CompactString>,
    grpc_message: Option<CompactString>,
    fields: Headers,
    unknown: u32,
}

/// One side of a stream in progress.
#[derive(Debug, Default)]
struct Half {
    message: Http2Message,
    /// The header block (non-informational, for responses) was seen.
    headers_seen: bool,
    /// The body prefix may still grow (no byte was skipped before its end).
    prefix_closed: bool,
    scanner: GrpcScanner,
}

#[derive(Debug)]
struct StreamState {
    pushed: bool,
    method: Option<CompactString>,
    scheme: Option<CompactString>,
    authority: Option<CompactString>,
    path: Option<CompactString>,
    status: Option<u16>,
    grpc_status: Option<CompactString>,
    grpc_message: Option<CompactString>,
    /// [client, server]
    halves: [Half; 2],
    start_ts: u64,
    /// Last byte of the latest frame (for eviction and the end time).
    last_ts: u64,
}

impl StreamState {
    fn new(start_ts: u64) -> Self {
        Self {
            pushed: false,
            method: None,
            scheme: None,
            authority: None,
            path: None,
            status: None,
            grpc_status: None,
            grpc_message: None,
            halves: [Half::default(), Half::default()],
            start_ts,
            last_ts: start_ts,
        }
    }

    fn half(&mut self, side: MessageKind) -> &mut Half {
        let [client, server] = &mut self.halves;
        match side {
            MessageKind::Request => client,
            MessageKind::Response => server,
        }
    }

    fn is_done(&self) -> bool {
        self.halves.iter().all(|h| h.message.ended)
    }

    fn state_bytes(&self) -> usize {
        let opt = |s: &Option<CompactString>| s.as_ref().map_or(0, heap_bytes);
        let halves: usize = self
            .halves
            .iter()
            .map(|h| {
                h.message.headers.heap_size()
                    + h.message.trailers.heap_size()
                    + h.message.body.capacity()
                    + heap_bytes(&h.message.content_type)
            })
            .sum();
        mem::size_of::<Self>()
            + opt(&self.method)
            + opt(&self.scheme)
            + opt(&self.authority)
            + opt(&self.path)
            + opt(&self.grpc_status)
            + opt(&self.grpc_message)
            + halves
    }
}

/// Index of a side in `[client, server]` arrays.
fn idx(side: MessageKind) -> usize {
    match side {
        MessageKind::Request => 0,
        MessageKind::Response => 1,
    }
}

fn other(side: MessageKind) -> MessageKind {
    match side {
        MessageKind::Request => MessageKind::Response,
        MessageKind::Response => MessageKind::Request,
    }
}

/// Follows one HTTP/2 connection. Bounded: at most `max_streams` streams in
/// flight, two header tables of at most `max_table_size`, body prefixes and
/// header fields capped per stream.
#[derive(Debug)]
pub struct Http2Session {
    config: Http2Config,
    /// Header tables by sending side: [client, server].
    hpack: [HpackDecoder; 2],
    /// SETTINGS by advertising side: [client, server].
    settings: [PeerSettings; 2],
    /// A frame of this side was seen.
    seen: [bool; 2],
    from_start: bool,
    streams: HashMap<u32, StreamState>,
    /// What `streams` holds ([`Self::stream_bytes`] summed), kept as frames
    /// change it: the memory bound reads it for every record, so it must
    /// not cost a walk over every stream in flight.
    streams_bytes: usize,
    /// Streams evicted lately: their later frames are counted, not taken
    /// for streams the capture joined late.
    evicted: VecDeque<u32>,
    counters: Http2Counters,
}

/// Evicted stream ids remembered.
const EVICTED_REMEMBERED: usize = 256;

impl Http2Session {
    /// A connection followed from its start (prior knowledge, or TLS with
    /// ALPN h2): both header tables are known (empty).
    pub fn new(config: Http2Config) -> Self {
        Self::with_start(config, true)
    }

    /// A connection joined mid-way (opened before the capture): header
    /// tables are unknown until rebuilt; fields that refer to older entries
    /// are counted, not guessed.
    pub fn mid_stream(config: Http2Config) -> Self {
        Self::with_start(config, false)
    }

    /// A connection switched from HTTP/1.1 by `Upgrade: h2c`: stream 1 is the
    /// upgraded `request` (decoded by the HTTP/1 decoder, whose first byte
    /// was seen at `start_ts`); its response comes as HTTP/2. The request's
    /// `HTTP2-Settings` header gives the client's settings. Both directions
    /// then go to HTTP/2 decoders: the client's starts with the preface, the
    /// server's right after the `101` response.
    pub fn after_upgrade(config: Http2Config, request: &HttpMessage, start_ts: u64) -> Self {
        let mut session = Self::new(config);
        if let Some(payload) = request
            .headers
            .get("http2-settings")
            .and_then(|v| base64url_decode(v.trim()))
        {
            session.apply_settings(
                MessageKind::Request,
                &super::frame::parse_settings(&payload),
            );
        }
        let mut stream = StreamState::new(start_ts);
        stream.method = Some(request.method.clone());
        stream.path = Some(request.path.clone());
        stream.scheme = Some("http".into());
        stream.authority = request.headers.get("host").map(CompactString::from);
        let half = stream.half(MessageKind::Request);
        half.headers_seen = true;
        half.message = Http2Message {
            headers: request
                .headers
                .iter()
                .map(|(n, v)| (n.to_ascii_lowercase(), v))
                .collect(),
            trailers: Headers::new(),
            content_type: request.content_type.clone(),
            body: request.body.clone(),
            body_size: request.body_size,
            body_incomplete: request.body_incomplete,
            unknown_fields: 0,
            ended: true,
        };
        half.prefix_closed = true;
        session.streams.insert(1, stream);
        session.streams_bytes = session.recount_streams_bytes();
        session
    }

    fn with_start(config: Http2Config, from_start: bool) -> Self {
        let cap = config.max_table_size;
        Self {
            hpack: [
                HpackDecoder::new(from_start, cap),
                HpackDecoder::new(from_start, cap),
            ],
            settings: [PeerSettings::default(); 2],
            seen: [false; 2],
            from_start,
            streams: HashMap::new(),
            streams_bytes: 0,
            evicted: VecDeque::new(),
            counters: Http2Counters::default(),
            config,
        }
    }

    pub fn counters(&self) -> &Http2Counters {
        &self.counters
    }

    /// Streams in flight.
    pub fn open_streams(&self) -> usize {
        self.streams.len()
    }

    /// SETTINGS advertised by `side` (`Request`: the client).
    pub fn settings(&self, side: MessageKind) -> &PeerSettings {
        &self.settings[idx(side)]
    }

    /// The SETTINGS_MAX_FRAME_SIZE that applies to frames sent by `sender`
    /// (the value its peer advertised; 16 384 by default from the start of
    /// a connection, the protocol's limit when joined mid-way). Hand it to
    /// the sender's [`Http2Decoder::set_max_frame_size`](super::Http2Decoder::set_max_frame_size).
    pub fn max_frame_size(&self, sender: MessageKind) -> u32 {
        let default = if self.from_start {
            DEFAULT_MAX_FRAME_SIZE
        } else {
            MAX_FRAME_SIZE_LIMIT
        };
        self.settings[idx(other(sender))]
            .max_frame_size
            .unwrap_or(default)
    }

    /// Estimate of the memory this session holds: header tables, streams in
    /// flight (fields, body prefixes). O(1).
    pub fn state_bytes(&self) -> usize {
        mem::size_of::<Self>()
            + self
                .hpack
                .iter()
                .map(HpackDecoder::state_bytes)
                .sum::<usize>()
            + self.evicted.capacity() * mem::size_of::<u32>()
            + self.streams_bytes
    }

    /// What stream `id` holds (0 if it is not in flight).
    fn stream_bytes(&self, id: u32) -> usize {
        self.streams
            .get(&id)
            .map_or(0, |s| s.state_bytes() + mem::size_of::<u32>())
    }

    fn recount_streams_bytes(&self) -> usize {
        self.streams
            .values()
            .map(|s| s.state_bytes() + mem::size_of::<u32>())
            .sum()
    }

    /// One frame sent by `from` (`Request`: the client), whose first and last
    /// bytes were captured at `start_ts` and `end_ts`. Streams it completes
    /// are appended to `out`.
    pub fn on_frame(
        &mut self,
        from: MessageKind,
        frame: Frame,
        start_ts: u64,
        end_ts: u64,
        out: &mut Vec<Http2Stream>,
    ) {
        // The one stream a frame changes (opening, growing or ending it):
        // the running total moves by its difference. Evictions and GOAWAY,
        // which drop other streams, adjust it themselves.
        let touched = match &frame {
            Frame::Headers(block) => Some(block.stream_id),
            Frame::PushPromise {
                promised_stream_id, ..
            } => Some(*promised_stream_id),
            Frame::Data(data) => Some(data.stream_id),
            Frame::RstStream { stream_id, .. } => Some(*stream_id),
            _ => None,
        };
        let before = touched.map_or(0, |id| self.stream_bytes(id));
        self.handle_frame(from, frame, start_ts, end_ts, out);
        if let Some(id) = touched {
            self.streams_bytes =
                (self.streams_bytes + self.stream_bytes(id)).saturating_sub(before);
        }
    }

    fn handle_frame(
        &mut self,
        from: MessageKind,
        frame: Frame,
        start_ts: u64,
        end_ts: u64,
        out: &mut Vec<Http2Stream>,
    ) {
        match frame {
            Frame::Preface => self.on_preface(),
            Frame::Discontinuity => self.on_discontinuity(from),
            Frame::Settings { ack: false, params } => self.apply_settings(from, &params),
            Frame::Headers(block) => self.on_headers(from, block, start_ts, end_ts, out),
            Frame::PushPromise {
                promised_stream_id,
                block,
            } => self.on_push_promise(from, promised_stream_id, block, start_ts, end_ts),
            Frame::Data(data) => self.on_data(from, data, end_ts, out),
            Frame::RstStream {
                stream_id,
                error_code,
            } => {
                if let Some(stream) = self.streams.remove(&stream_id) {
                    self.counters.streams_reset += 1;
                    let end = StreamEnd::Reset {
                        by: from,
                        error_code,
                    };
                    out.push(self.event(stream_id, stream, end, end_ts));
                }
            }
            Frame::GoAway { last_stream_id, .. } => self.on_goaway(from, last_stream_id),
            Frame::Settings { ack: true, .. }
            | Frame::Priority { .. }
            | Frame::Ping { .. }
            | Frame::WindowUpdate { .. }
            | Frame::Unknown { .. } => {}
        }
        self.seen[idx(from)] = true;
    }

    /// The connection closed: streams with a response head are handed out
    /// (ended by the close), the others counted as unanswered.
    pub fn finish(&mut self, end_ts: u64, out: &mut Vec<Http2Stream>) {
        let mut ids: Vec<u32> = self.streams.keys().copied().collect();
        ids.sort_unstable();
        for id in ids {
            let Some(stream) = self.streams.remove(&id) else {
                continue;
            };
            if stream.halves[1].headers_seen {
                let ts = stream.last_ts.max(end_ts);
                out.push(self.event(id, stream, StreamEnd::ConnectionClosed, ts));
            } else {
                self.counters.streams_unanswered += 1;
            }
        }
        self.streams_bytes = 0;
    }

    fn on_preface(&mut self) {
        // The connection starts here: whatever a mid-way join assumed, the
        // client's table is empty now, and the server's too if it has not
        // sent anything yet.
        let cap = self.config.max_table_size;
        if !self.hpack[0].is_complete() {
            self.hpack[0] = HpackDecoder::new(true, cap);
        }
        if !self.seen[1] && !self.hpack[1].is_complete() {
            self.hpack[1] = HpackDecoder::new(true, cap);
        }
        self.from_start = true;
    }

    fn on_discontinuity(&mut self, from: MessageKind) {
        self.counters.discontinuities += 1;
        if self.hpack[idx(from)].desync() {
            self.counters.hpack_desyncs += 1;
        }
        // Any frame of this side may be missing, DATA included.
        for stream in self.streams.values_mut() {
            let half = stream.half(from);
            half.message.body_incomplete = true;
            half.prefix_closed = true;
            half.scanner.skip(u64::MAX);
        }
    }

    fn apply_settings(&mut self, from: MessageKind, params: &[Setting]) {
        let s = &mut self.settings[idx(from)];
        for p in params {
            match p.id {
                SETTINGS_HEADER_TABLE_SIZE => {
                    s.header_table_size = Some(p.value);
                    // It bounds the table the other side encodes with.
                    self.hpack[idx(other(from))].set_allowed(p.value);
                }
                SETTINGS_ENABLE_PUSH => s.enable_push = Some(p.value != 0),
                SETTINGS_MAX_CONCURRENT_STREAMS => s.max_concurrent_streams = Some(p.value),
                SETTINGS_INITIAL_WINDOW_SIZE => s.initial_window_size = Some(p.value),
                SETTINGS_MAX_FRAME_SIZE => s.max_frame_size = Some(p.value),
                SETTINGS_MAX_HEADER_LIST_SIZE => s.max_header_list_size = Some(p.value),
                _ => {}
            }
        }
    }

    /// Decodes a header block with the sender's table.
    fn decode(&mut self, from: MessageKind, block: &HeaderBlock) -> DecodedBlock {
        let max_headers = self.config.max_headers;
        let redacted = &self.config.redacted_headers;
        let mut decoded = DecodedBlock::default();
        let mut dropped = 0u64;
        let outcome = self.hpack[idx(from)].decode_block(
            &block.fragment,
            block.is_truncated(),
            &mut |field| {
                let Field::Known {
                    name,
                    value,
                    never_indexed,
                } = field
                else {
                    return;
                };
                let value_text = || CompactString::from_utf8_lossy(value);
                let slot = match name {
                    b":method" => &mut decoded.method,
                    b":scheme" => &mut decoded.scheme,
                    b":authority" => &mut decoded.authority,
                    b":path" => &mut decoded.path,
                    b":status" => &mut decoded.status,
                    _ => {
                        if name.eq_ignore_ascii_case(b"content-type") {
                            decoded.content_type = Some(value_text());
                        } else if name.eq_ignore_ascii_case(b"grpc-status") {
                            decoded.grpc_status = Some(value_text());
                        } else if name.eq_ignore_ascii_case(b"grpc-message") {
                            decoded.grpc_message = Some(value_text());
                        }
                        if decoded.fields.len() >= max_headers {
                            dropped += 1;
                            return;
                        }
                        let secret = never_indexed || redacted.contains(name);
                        let value = if secret { REDACTED.as_bytes() } else { value };
                        decoded.fields.push_lossy(name, value);
                        return;
                    }
                };
                *slot = Some(value_text());
            },
        );
        self.counters.headers_dropped += dropped;
        self.counters.hpack_unknown_fields += u64::from(outcome.unknown);
        self.counters.hpack_desyncs += u64::from(outcome.desynced);
        self.counters.hpack_size_updates_over_setting +=
            u64::from(outcome.size_update_over_setting);
        if block.len > self.config.max_header_block_bytes {
            self.counters.header_blocks_too_large += 1;
        }
        if outcome.error.is_some() {
            // Fields of a block that does not decode are not trusted.
            self.counters.hpack_errors += 1;
            return DecodedBlock {
                unknown: 1,
                ..DecodedBlock::default()
            };
        }
        decoded.unknown = outcome.unknown + u32::from(block.is_truncated());
        decoded
    }

    fn on_headers(
        &mut self,
        from: MessageKind,
        block: HeaderBlock,
        start_ts: u64,
        end_ts: u64,
        out: &mut Vec<Http2Stream>,
    ) {
        let decoded = self.decode(from, &block);
        let id = block.stream_id;
        if !self.streams.contains_key(&id) {
            let mut stream = StreamState::new(start_ts);
            match from {
                MessageKind::Request => {}
                // A response head whose request came before the capture: the
                // request is taken as sent (its end cannot be seen), so the
                // stream ends with the response. Trailers of an unknown
                // stream, or frames of an evicted one, are not a stream.
                MessageKind::Response
                    if decoded.status.is_some() && !self.evicted.contains(&id) =>
                {
                    stream.half(MessageKind::Request).message.ended = true;
                }
                MessageKind::Response => {
                    self.counters.frames_on_unknown_streams += 1;
                    return;
                }
            }
            self.open(id, stream);
        }
        let Some(stream) = self.streams.get_mut(&id) else {
            return;
        };
        stream.last_ts = stream.last_ts.max(end_ts);
        let informational = decoded
            .status
            .as_deref()
            .is_some_and(|s| s.starts_with('1') && s.len() == 3);
        let half = stream.half(from);
        half.message.unknown_fields += decoded.unknown;
        if !half.headers_seen {
            if informational && !block.end_stream {
                // 100-continue, 103 Early Hints: the final head follows.
                return;
            }
            half.headers_seen = true;
            half.message.headers = decoded.fields;
            half.message.content_type = decoded.content_type.unwrap_or_default();
            match from {
                MessageKind::Request => {
                    stream.method = decoded.method;
                    stream.scheme = decoded.scheme;
                    stream.authority = decoded.authority;
                    stream.path = decoded.path;
                }
                MessageKind::Response => {
                    stream.status = decoded.status.and_then(|s| s.parse().ok());
                }
            }
        } else {
            half.message.trailers = decoded.fields;
        }
        if from == MessageKind::Response {
            // Trailers, or the head of a trailers-only response.
            if decoded.grpc_status.is_some() {
                stream.grpc_status = decoded.grpc_status;
            }
            if decoded.grpc_message.is_some() {
                stream.grpc_message = decoded.grpc_message;
            }
        }
        if block.end_stream {
            stream.half(from).message.ended = true;
        }
        self.complete_if_done(id, end_ts, out);
    }

    fn on_push_promise(
        &mut self,
        from: MessageKind,
        promised: u32,
        block: HeaderBlock,
        start_ts: u64,
        end_ts: u64,
    ) {
        // Decoded even if not followed: it changes the sender's table.
        let decoded = self.decode(from, &block);
        let mut stream = StreamState::new(start_ts);
        stream.pushed = true;
        stream.last_ts = end_ts;
        stream.method = decoded.method;
        stream.scheme = decoded.scheme;
        stream.authority = decoded.authority;
        stream.path = decoded.path;
        let half = stream.half(MessageKind::Request);
        half.headers_seen = true;
        half.message.headers = decoded.fields;
        half.message.content_type = decoded.content_type.unwrap_or_default();
        half.message.unknown_fields = decoded.unknown;
        half.message.ended = true;
        self.open(promised, stream);
    }

    fn on_data(
        &mut self,
        from: MessageKind,
        data: DataFrame,
        end_ts: u64,
        out: &mut Vec<Http2Stream>,
    ) {
        let Some(stream) = self.streams.get_mut(&data.stream_id) else {
            self.counters.frames_on_unknown_streams += 1;
            return;
        };
        stream.last_ts = stream.last_ts.max(end_ts);
        let cap = self.config.body_prefix_bytes;
        let half = stream.half(from);
        let len = u64::from(data.len);
        let known = data.prefix.get(..data.len as usize).unwrap_or(&data.prefix);
        let uncaptured = len - known.len() as u64;
        let m = &mut half.message;
        m.body_size += len;
        m.body_incomplete |= data.lost > 0;
        if !half.prefix_closed {
            let room = cap.saturating_sub(m.body.len());
            m.body.extend_from_slice(known.get(..room).unwrap_or(known));
            // Bytes after a hole would make the prefix a lie.
            half.prefix_closed = uncaptured > 0 && m.body.len() < cap;
        }
        half.scanner.feed(known);
        half.scanner.skip(uncaptured);
        if data.end_stream {
            m.ended = true;
        }
        self.complete_if_done(data.stream_id, end_ts, out);
    }

    fn on_goaway(&mut self, from: MessageKind, last_stream_id: u32) {
        // Streams the receiver opened above the last one processed were
        // not processed: they will be retried, not answered.
        let receiver_parity = match from {
            MessageKind::Response => 1,
            MessageKind::Request => 0,
        };
        let before = self.streams.len();
        self.streams
            .retain(|&id, _| id <= last_stream_id || id % 2 != receiver_parity);
        self.counters.streams_refused += (before - self.streams.len()) as u64;
        self.streams_bytes = self.recount_streams_bytes();
    }

    fn open(&mut self, id: u32, stream: StreamState) {
        if self.streams.len() >= self.config.max_streams.max(1) {
            let oldest = self
                .streams
                .iter()
                .min_by_key(|(id, s)| (s.last_ts, **id))
                .map(|(id, _)| *id);
            if let Some(oldest) = oldest {
                self.streams_bytes = self.streams_bytes.saturating_sub(self.stream_bytes(oldest));
                self.streams.remove(&oldest);
                self.counters.streams_evicted += 1;
                if self.evicted.len() >= EVICTED_REMEMBERED {
                    self.evicted.pop_front();
                }
                self.evicted.push_back(oldest);
            }
        }
        self.streams.insert(id, stream);
    }

    fn complete_if_done(&mut self, id: u32, end_ts: u64, out: &mut Vec<Http2Stream>) {
        if self.streams.get(&id).is_some_and(StreamState::is_done)
            && let Some(stream) = self.streams.remove(&id)
        {
            out.push(self.event(id, stream, StreamEnd::Complete, end_ts));
        }
    }

    fn event(&mut self, id: u32, stream: StreamState, end: StreamEnd, end_ts: u64) -> Http2Stream {
        self.counters.streams += 1;
        let [mut request, mut response] = stream.halves;
        // A grpc-status is gRPC too (a join mid-way may not know the
        // content-type, which gRPC stacks send from the dynamic table).
        let is_grpc = grpc::is_grpc_content_type(&request.message.content_type)
            || grpc::is_grpc_content_type(&response.message.content_type)
            || stream.grpc_status.is_some();
        let grpc = is_grpc.then(|| {
            let (service, method) = stream
                .path
                .as_deref()
                .map(grpc::split_path)
                .unwrap_or_default();
            GrpcCall {
                service,
                method,
                status: stream.grpc_status.as_deref().and_then(grpc::parse_status),
                message: stream.grpc_message.as_deref().map(grpc::percent_decode),
                request_messages: request.scanner.finish(request.message.ended),
                response_messages: response.scanner.finish(response.message.ended),
            }
        });
        Http2Stream {
            stream_id: id,
            method: stream.method,
            scheme: stream.scheme,
            authority: stream.authority,
            path: stream.path,
            status: stream.status,
            request: mem::take(&mut request.message),
            response: mem::take(&mut response.message),
            grpc,
            end,
            pushed: stream.pushed,
            start_ts: stream.start_ts,
            end_ts: end_ts.max(stream.start_ts),
        }
    }
}

/// base64url without padding (RFC 7540 3.2.1's HTTP2-Settings); padding is
/// tolerated.
fn base64url_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for b in s.bytes().take_while(|&b| b != b'=') {
        let v = match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'-' | b'+' => 62,
            b'_' | b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http2::DataFrame;

    const C: MessageKind = MessageKind::Request;
    const S: MessageKind = MessageKind::Response;

    /// A header block of literals without indexing (and static indices
    /// given as single bytes >= 0x80).
    fn block(stream_id: u32, end_stream: bool, fields: &[(&str, &str)]) -> HeaderBlock {
        let mut fragment = Vec::new();
        for (name, value) in fields {
            if let Some(index) = name.strip_prefix('#') {
                fragment.push(0x80 | index.parse::<u8>().unwrap());
                continue;
            }
            let never = name.starts_with('!');
            let name = name.trim_start_matches('!');
            fragment.push(if never { 0x10 } else { 0x00 });
            fragment.push(name.len() as u8);
            fragment.extend_from_slice(name.as_bytes());
            fragment.push(value.len() as u8);
            fragment.extend_from_slice(value.as_bytes());
        }
        HeaderBlock {
            stream_id,
            end_stream,
            len: fragment.len(),
            fragment,
        }
    }

    fn data(stream_id: u32, end_stream: bool, bytes: &[u8]) -> Frame {
        Frame::Data(DataFrame {
            stream_id,
            end_stream,
            len: bytes.len() as u32,
            prefix: bytes.to_vec(),
            lost: 0,
        })
    }

    /// `:method GET`, `:scheme http`, `:path /`, and an authority.
    fn get(stream_id: u32) -> Frame {
        Frame::Headers(block(
            stream_id,
            true,
            &[("#2", ""), ("#6", ""), ("#4", ""), (":authority", "a")],
        ))
    }

    /// `:status 200`, END_STREAM.
    fn ok(stream_id: u32) -> Frame {
        Frame::Headers(block(stream_id, true, &[("#8", "")]))
    }

    #[test]
    fn push_promise_is_a_stream_of_its_own() {
        let mut s = Http2Session::new(Http2Config::default());
        let mut out = Vec::new();
        s.on_frame(C, get(1), 1, 1, &mut out);
        let promise = block(
            1,
            false,
            &[
                ("#2", ""),
                ("#6", ""),
                (":path", "/style.css"),
                (":authority", "a"),
            ],
        );
        s.on_frame(
            S,
            Frame::PushPromise {
                promised_stream_id: 2,
                block: promise,
            },
            2,
            2,
            &mut out,
        );
        s.on_frame(
            S,
            Frame::Headers(block(1, false, &[("#8", "")])),
            3,
            3,
            &mut out,
        );
        s.on_frame(
            S,
            Frame::Headers(block(2, false, &[("#8", ""), ("content-type", "text/css")])),
            4,
            4,
            &mut out,
        );
        s.on_frame(S, data(2, true, b"body{}"), 5, 5, &mut out);
        s.on_frame(S, data(1, true, b"<html>"), 6, 6, &mut out);
        let got: Vec<(u32, bool, Option<&str>, u64, u64)> = out
            .iter()
            .map(|e| {
                (
                    e.stream_id,
                    e.pushed,
                    e.path.as_deref(),
                    e.start_ts,
                    e.end_ts,
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                (2, true, Some("/style.css"), 2, 5),
                (1, false, Some("/"), 1, 6)
            ]
        );
        assert_eq!(out[0].response.content_type, "text/css");
        assert_eq!(out[0].response.body, b"body{}");
        assert_eq!(s.open_streams(), 0);
    }

    #[test]
    fn goaway_refuses_streams_above_the_last_one() {
        let mut s = Http2Session::new(Http2Config::default());
        let mut out = Vec::new();
        for id in [1, 3, 5] {
            s.on_frame(C, get(id), 1, 1, &mut out);
        }
        s.on_frame(
            S,
            Frame::GoAway {
                last_stream_id: 3,
                error_code: 0,
            },
            2,
            2,
            &mut out,
        );
        assert_eq!((s.open_streams(), s.counters().streams_refused), (2, 1));
        s.on_frame(S, ok(3), 3, 3, &mut out);
        s.on_frame(S, ok(1), 4, 4, &mut out);
        let ids: Vec<u32> = out.iter().map(|e| e.stream_id).collect();
        assert_eq!(ids, [3, 1]);
        // The client's GOAWAY refuses server-initiated (even) streams only.
        s.on_frame(C, get(7), 5, 5, &mut out);
        s.on_frame(
            C,
            Frame::GoAway {
                last_stream_id: 0,
                error_code: 0,
            },
            6,
            6,
            &mut out,
        );
        assert_eq!((s.open_streams(), s.counters().streams_refused), (1, 1));
    }

    #[test]
    fn informational_heads_resets_and_close() {
        let mut s = Http2Session::new(Http2Config::default());
        let mut out = Vec::new();
        // 100-continue, then the final head and a body.
        s.on_frame(
            C,
            Frame::Headers(block(1, false, &[("#3", ""), ("#4", "")])),
            1,
            1,
            &mut out,
        );
        s.on_frame(
            S,
            Frame::Headers(block(1, false, &[(":status", "100")])),
            2,
            2,
            &mut out,
        );
        s.on_frame(C, data(1, true, b"upload"), 3, 3, &mut out);
        s.on_frame(
            S,
            Frame::Headers(block(1, false, &[(":status", "201")])),
            4,
            4,
            &mut out,
        );
        s.on_frame(S, data(1, true, b"done"), 5, 5, &mut out);
        assert_eq!(
            (out[0].status, out[0].end),
            (Some(201), StreamEnd::Complete)
        );
        assert_eq!(
            (
                out[0].request.body.as_slice(),
                out[0].start_ts,
                out[0].end_ts
            ),
            (&b"upload"[..], 1, 5)
        );
        // Reset before any response.
        s.on_frame(C, get(3), 6, 6, &mut out);
        s.on_frame(
            S,
            Frame::RstStream {
                stream_id: 3,
                error_code: 7,
            },
            7,
            7,
            &mut out,
        );
        assert_eq!(
            out[1].end,
            StreamEnd::Reset {
                by: S,
                error_code: 7
            }
        );
        assert_eq!((out[1].status, out[1].end_ts), (None, 7));
        // At close: a response in progress is handed out, a request alone
        // is counted as unanswered.
        s.on_frame(C, get(5), 8, 8, &mut out);
        s.on_frame(C, get(7), 9, 9, &mut out);
        s.on_frame(
            S,
            Frame::Headers(block(5, false, &[("#8", "")])),
            10,
            10,
            &mut out,
        );
        s.finish(11, &mut out);
        assert_eq!(
            (out[2].stream_id, out[2].end, out[2].end_ts),
            (5, StreamEnd::ConnectionClosed, 11)
        );
        assert_eq!(out.len(), 3);
        let c = s.counters();
        assert_eq!(
            (c.streams, c.streams_reset, c.streams_unanswered),
            (3, 1, 1)
        );
    }

    #[test]
    fn redaction_and_header_caps() {
        let config = Http2Config {
            max_headers: 3,
            ..Http2Config::default()
        };
        let mut s = Http2Session::new(config);
        let mut out = Vec::new();
        let fields = [
            ("#2", ""),
            ("#4", ""),
            ("Authorization", "Bearer x"),
            ("!x-session", "s3cret"),
            ("accept", "*/*"),
            ("x-dropped", "1"),
        ];
        s.on_frame(C, Frame::Headers(block(1, true, &fields)), 1, 1, &mut out);
        s.on_frame(S, ok(1), 2, 2, &mut out);
        let headers: Vec<(&str, &str)> = out[0].request.headers.iter().collect();
        assert_eq!(
            headers,
            [
                ("Authorization", "<redacted>"),
                ("x-session", "<redacted>"),
                ("accept", "*/*")
            ]
        );
        assert_eq!(s.counters().headers_dropped, 1);
    }

    #[test]
    fn settings_bound_frames_and_tables() {
        let mut s = Http2Session::new(Http2Config::default());
        let mut out = Vec::new();
        assert_eq!((s.max_frame_size(C), s.max_frame_size(S)), (16_384, 16_384));
        let params = vec![
            Setting {
                id: SETTINGS_MAX_FRAME_SIZE,
                value: 1 << 20,
            },
            Setting {
                id: SETTINGS_HEADER_TABLE_SIZE,
                value: 0,
            },
        ];
        s.on_frame(C, Frame::Settings { ack: false, params }, 1, 1, &mut out);
        // What the client accepts bounds what the server sends.
        assert_eq!(
            (s.max_frame_size(C), s.max_frame_size(S)),
            (16_384, 1 << 20)
        );
        assert_eq!(s.settings(C).header_table_size, Some(0));
        // The server's encoder then sets its table to 4096 regardless.
        s.on_frame(C, get(1), 2, 2, &mut out);
        let mut resp = block(1, true, &[("#8", "")]);
        resp.fragment.insert(0, 0x3f);
        resp.fragment.insert(1, 0xe1);
        resp.fragment.insert(2, 0x1f);
        resp.len += 3;
        s.on_frame(S, Frame::Headers(resp), 3, 3, &mut out);
        assert_eq!(out[0].status, Some(200));
        assert_eq!(s.counters().hpack_size_updates_over_setting, 1);
        assert_eq!(
            Http2Session::mid_stream(Http2Config::default()).max_frame_size(C),
            (1 << 24) - 1
        );
    }

    #[test]
    fn state_bytes_follow_what_is_held() {
        let mut s = Http2Session::new(Http2Config::default());
        let empty = s.state_bytes();
        let mut out = Vec::new();
        s.on_frame(
            C,
            Frame::Headers(block(1, false, &[("#3", ""), ("x-big", &"v".repeat(200))])),
            1,
            1,
            &mut out,
        );
        s.on_frame(C, data(1, false, &[7; 500]), 2, 2, &mut out);
        let held = s.state_bytes();
        assert!(held >= empty + 700, "{empty} -> {held}");
        s.on_frame(
            C,
            Frame::RstStream {
                stream_id: 1,
                error_code: 8,
            },
            3,
            3,
            &mut out,
        );
        assert_eq!(s.state_bytes(), empty);
    }

    /// The running total of what streams hold equals a recount after every
    /// kind of frame: opening, growing, completing, resetting, pushing,
    /// evicting, GOAWAY and the close.
    #[test]
    fn stream_bytes_are_kept_exact() {
        let config = Http2Config {
            max_streams: 3,
            ..Http2Config::default()
        };
        let mut s = Http2Session::new(config);
        let mut out = Vec::new();
        let mut step = |s: &mut Http2Session, from: MessageKind, frame: Frame| {
            s.on_frame(from, frame, 1, 1, &mut out);
            assert_eq!(
                s.streams_bytes,
                s.recount_streams_bytes(),
                "{:?}",
                s.streams.keys()
            );
        };
        for id in [1, 3, 5, 7, 9] {
            // The fourth and fifth evict the oldest.
            step(
                &mut s,
                C,
                Frame::Headers(block(id, false, &[("x-a", &"v".repeat(id as usize * 10))])),
            );
            step(&mut s, C, data(id, false, &[1; 300]));
        }
        step(&mut s, C, data(9, true, &[2; 100]));
        step(&mut s, S, ok(9));
        step(&mut s, S, data(9, true, b"done"));
        step(
            &mut s,
            C,
            Frame::RstStream {
                stream_id: 7,
                error_code: 8,
            },
        );
        step(
            &mut s,
            S,
            Frame::PushPromise {
                promised_stream_id: 2,
                block: block(5, false, &[("x-p", "1")]),
            },
        );
        step(&mut s, C, Frame::Headers(block(11, true, &[])));
        step(
            &mut s,
            S,
            Frame::GoAway {
                last_stream_id: 5,
                error_code: 0,
            },
        );
        assert!(s.streams_bytes > 0);
        s.finish(9, &mut out);
        assert_eq!((s.streams_bytes, s.recount_streams_bytes()), (0, 0));
    }

    #[test]
    fn base64url() {
        assert_eq!(
            base64url_decode("AAMAAABkAARAAAAAAAIAAAAA").unwrap(),
            [0, 3, 0, 0, 0, 0x64, 0, 4, 0x40, 0, 0, 0, 0, 2, 0, 0, 0, 0]
        );
        assert_eq!(base64url_decode("_-8").unwrap(), [0xff, 0xef]);
        assert_eq!(base64url_decode("a b"), None);
    }
}
