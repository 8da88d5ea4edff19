//! The one session shape of every stream protocol: a decoder per direction
//! driven over its [`StreamBuffer`] — resynchronising after errors and lost
//! bytes, stamping each message with the capture time of its first and last
//! byte — and a [`StreamProtocol`] that pairs the decoded messages into rows.

use sonde_protocols::{Decoded, GapOutcome, MessageKind, dns, http, http2, mysql, pgsql, redis};

use super::{Dir, Outcome, ProtocolSession, RowSink, StreamBuffer};

/// Bytes kept when resynchronising finds no message start: a marker (an
/// HTTP method, a RESP type byte and length) may straddle the boundary.
const RESYNC_KEEP: usize = 16;

/// Consecutive parse failures after which a session gives up its protocol
/// (the guess was wrong; the connection is looked at afresh).
const MAX_CONSECUTIVE_FAILURES: u32 = 3;

/// A decoder rejected its input (the protocol's own error says why; the
/// driver only needs to know that it must resynchronise).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MalformedInput;

/// The calling convention of the stream decoders in `sonde_protocols`.
pub trait StreamDecoder: Send {
    type Message;
    /// What decoding the next message needs to know from the other
    /// direction (HTTP: the method of the request a response answers).
    type Context: Copy + Default;
    fn is_idle(&self) -> bool;
    fn decode(
        &mut self,
        input: &[u8],
        context: Self::Context,
    ) -> Result<Decoded<Self::Message>, MalformedInput>;
    fn skip_gap(&mut self, n: u64) -> GapOutcome;
    fn reset(&mut self);
    /// The stream ended: a message that ends with the connection, if any.
    fn finish(&mut self) -> Option<Self::Message>;
    /// Offset of the first plausible message start, for resynchronising.
    fn find_start(input: &[u8], kind: MessageKind) -> Option<usize>;
    /// Bytes the decoder keeps of a message in progress (beyond the stream
    /// buffer, which is counted apart).
    fn held_bytes(&self) -> usize {
        0
    }
}

/// Implements [`StreamDecoder`] for a decoder with the common inherent API
/// and no context.
macro_rules! stream_decoder {
    ($decoder:ty, $message:ty, $find_start:path) => {
        impl StreamDecoder for $decoder {
            type Message = $message;
            type Context = ();
            fn is_idle(&self) -> bool {
                <$decoder>::is_idle(self)
            }
            fn decode(&mut self, input: &[u8], _: ()) -> Result<Decoded<$message>, MalformedInput> {
                <$decoder>::decode(self, input).map_err(|_| MalformedInput)
            }
            fn skip_gap(&mut self, n: u64) -> GapOutcome {
                <$decoder>::skip_gap(self, n)
            }
            fn reset(&mut self) {
                <$decoder>::reset(self);
            }
            fn finish(&mut self) -> Option<$message> {
                <$decoder>::finish(self)
            }
            fn find_start(input: &[u8], kind: MessageKind) -> Option<usize> {
                $find_start(input, kind)
            }
        }
    };
}

stream_decoder!(
    redis::RespDecoder,
    redis::RespValue,
    redis::find_message_start
);
stream_decoder!(
    mysql::MysqlPacketDecoder,
    mysql::MysqlPacket,
    mysql::find_message_start
);
stream_decoder!(dns::DnsTcpDecoder, dns::DnsMessage, dns::find_message_start);

/// PostgreSQL messages end where their length says: nothing is left to
/// complete when the stream ends.
impl StreamDecoder for pgsql::PgDecoder {
    type Message = pgsql::PgMessage;
    type Context = ();
    fn is_idle(&self) -> bool {
        pgsql::PgDecoder::is_idle(self)
    }
    fn decode(&mut self, input: &[u8], _: ()) -> Result<Decoded<pgsql::PgMessage>, MalformedInput> {
        pgsql::PgDecoder::decode(self, input).map_err(|_| MalformedInput)
    }
    fn skip_gap(&mut self, n: u64) -> GapOutcome {
        pgsql::PgDecoder::skip_gap(self, n)
    }
    fn reset(&mut self) {
        pgsql::PgDecoder::reset(self);
    }
    fn finish(&mut self) -> Option<pgsql::PgMessage> {
        None
    }
    fn find_start(input: &[u8], kind: MessageKind) -> Option<usize> {
        pgsql::find_message_start(input, kind)
    }
}

impl StreamDecoder for http::HttpDecoder {
    type Message = Box<http::HttpMessage>;
    type Context = http::AnsweredMethod;
    fn is_idle(&self) -> bool {
        http::HttpDecoder::is_idle(self)
    }
    fn decode(
        &mut self,
        input: &[u8],
        answering: http::AnsweredMethod,
    ) -> Result<Decoded<Box<http::HttpMessage>>, MalformedInput> {
        match self.decode_answering(input, answering) {
            Ok(http::Decoded::NeedMore) => Ok(Decoded::NeedMore),
            Ok(http::Decoded::Progress { consumed, message }) => {
                Ok(Decoded::Progress { consumed, message })
            }
            Err(_) => Err(MalformedInput),
        }
    }
    fn skip_gap(&mut self, n: u64) -> GapOutcome {
        http::HttpDecoder::skip_gap(self, n)
    }
    fn reset(&mut self) {
        http::HttpDecoder::reset(self);
    }
    fn finish(&mut self) -> Option<Box<http::HttpMessage>> {
        http::HttpDecoder::finish(self)
    }
    fn find_start(input: &[u8], kind: MessageKind) -> Option<usize> {
        http::find_message_start(input, kind)
    }
    fn held_bytes(&self) -> usize {
        http::HttpDecoder::held_bytes(self)
    }
}

/// HTTP/2 frames; the context is the SETTINGS_MAX_FRAME_SIZE that applies
/// to the direction (negotiated by the other side's SETTINGS).
impl StreamDecoder for http2::Http2Decoder {
    type Message = http2::Frame;
    type Context = u32;
    fn is_idle(&self) -> bool {
        http2::Http2Decoder::is_idle(self)
    }
    fn decode(
        &mut self,
        input: &[u8],
        max_frame_size: u32,
    ) -> Result<Decoded<http2::Frame>, MalformedInput> {
        self.set_max_frame_size(max_frame_size);
        http2::Http2Decoder::decode(self, input).map_err(|_| MalformedInput)
    }
    fn skip_gap(&mut self, n: u64) -> GapOutcome {
        http2::Http2Decoder::skip_gap(self, n)
    }
    fn reset(&mut self) {
        http2::Http2Decoder::reset(self);
    }
    /// Frames never end with the connection (the session completes the
    /// streams left open).
    fn finish(&mut self) -> Option<http2::Frame> {
        None
    }
    fn find_start(input: &[u8], kind: MessageKind) -> Option<usize> {
        http2::find_message_start(input, kind)
    }
    fn held_bytes(&self) -> usize {
        http2::Http2Decoder::state_bytes(self)
    }
}

/// A decoded message with the capture times of its first and last byte.
pub struct Timed<M> {
    pub message: M,
    pub start_ts: u64,
    pub end_ts: u64,
}

/// What one protocol adds to the stream session: its decoders, what they
/// need per message, and what decoded messages become (rows, counters).
pub trait StreamProtocol: Send {
    type Decoder: StreamDecoder;
    /// A decoder for the direction carrying `kind`.
    fn decoder(&self, kind: MessageKind) -> Self::Decoder;
    /// What the decoder of `kind` needs for its next message.
    fn context(&self, _kind: MessageKind) -> <Self::Decoder as StreamDecoder>::Context {
        Default::default()
    }
    /// A complete message of `kind`: pair it, emit rows. `Upgraded` stops
    /// parsing the connection.
    fn on_message(
        &mut self,
        kind: MessageKind,
        message: Timed<<Self::Decoder as StreamDecoder>::Message>,
        sink: &mut RowSink<'_>,
    ) -> Outcome;
    /// A message of `kind` could not be decoded (counted; the driver resyncs).
    fn on_parse_error(&mut self, kind: MessageKind, sink: &mut RowSink<'_>);
    /// A message of `kind` was lost in a gap (once per resynchronisation).
    fn on_message_lost(&mut self, kind: MessageKind, sink: &mut RowSink<'_>);
    /// The connection ended: count what never completed.
    fn finish(&mut self, sink: &mut RowSink<'_>);
    /// Bytes the pairing keeps (messages waiting for their answer). Read
    /// for every captured record of the connection: must be cheap.
    fn held_bytes(&self) -> usize;
}

/// One direction's decoder and the driver state around it.
struct Direction<D> {
    kind: MessageKind,
    decoder: D,
    /// Looking for the next message start after an error or a lost message.
    resync: bool,
    /// Capture time of the first byte of the message in progress.
    message_start: u64,
    /// Capture time of the last byte consumed.
    last_byte_ts: u64,
}

/// A stream protocol's session on one connection.
pub struct StreamSession<P: StreamProtocol> {
    request_dir: Dir,
    /// Indexed by `Dir::index()`.
    directions: [Direction<P::Decoder>; 2],
    protocol: P,
    consecutive_failures: u32,
}

impl<P: StreamProtocol> StreamSession<P> {
    pub fn new(request_dir: Dir, protocol: P) -> Self {
        let direction = |dir: Dir| {
            let kind = if dir == request_dir {
                MessageKind::Request
            } else {
                MessageKind::Response
            };
            Direction {
                kind,
                decoder: protocol.decoder(kind),
                resync: false,
                message_start: 0,
                last_byte_ts: 0,
            }
        };
        let directions = [direction(Dir::Egress), direction(Dir::Ingress)];
        Self {
            request_dir,
            directions,
            protocol,
            consecutive_failures: 0,
        }
    }
}

impl<P: StreamProtocol> ProtocolSession for StreamSession<P> {
    fn held_bytes(&self) -> usize {
        self.protocol.held_bytes()
            + self
                .directions
                .iter()
                .map(|d| d.decoder.held_bytes())
                .sum::<usize>()
    }

    /// Decodes every complete message in `buffer`, one at a time, so that
    /// each decode sees the context its predecessors left (HTTP responses
    /// answering pipelined requests).
    fn process(&mut self, dir: Dir, buffer: &mut StreamBuffer, sink: &mut RowSink<'_>) -> Outcome {
        let d = &mut self.directions[dir.index()];
        loop {
            // An empty buffer still goes to a decoder in the middle of a
            // message: a gap may have completed it.
            if buffer.is_empty() && d.decoder.is_idle() {
                return Outcome::Continue;
            }
            if d.resync {
                match P::Decoder::find_start(buffer.bytes(), d.kind) {
                    Some(offset) => {
                        buffer.consume(offset);
                        d.resync = false;
                    }
                    None => {
                        buffer.consume(buffer.len().saturating_sub(RESYNC_KEEP));
                        return Outcome::Continue;
                    }
                }
            }
            if d.decoder.is_idle() && !buffer.is_empty() {
                d.message_start = buffer.ts_at(0);
            }
            let context = self.protocol.context(d.kind);
            match d.decoder.decode(buffer.bytes(), context) {
                Ok(Decoded::NeedMore) => return Outcome::Continue,
                Ok(Decoded::Progress { consumed, message }) => {
                    if consumed > 0 {
                        d.last_byte_ts = buffer.ts_at(consumed - 1);
                    }
                    buffer.consume(consumed);
                    match message {
                        Some(message) => {
                            self.consecutive_failures = 0;
                            let timed = Timed {
                                message,
                                start_ts: d.message_start,
                                end_ts: d.last_byte_ts,
                            };
                            let outcome = self.protocol.on_message(d.kind, timed, sink);
                            if !matches!(outcome, Outcome::Continue) {
                                return outcome;
                            }
                        }
                        None if consumed == 0 => return Outcome::Continue,
                        None => {}
                    }
                }
                Err(MalformedInput) => {
                    self.protocol.on_parse_error(d.kind, sink);
                    d.decoder.reset();
                    self.consecutive_failures += 1;
                    if self.consecutive_failures >= MAX_CONSECUTIVE_FAILURES {
                        return Outcome::Abandon;
                    }
                    // Skip the bad start and look for the next message.
                    buffer.consume(1);
                    d.resync = true;
                }
            }
        }
    }

    /// Unparsed bytes before the gap are part of the message in progress; a
    /// gap inside a body of known length is skipped. Anything else loses
    /// the message, counted once per resynchronisation.
    fn gap(
        &mut self,
        dir: Dir,
        len: u64,
        ts: u64,
        buffer: &mut StreamBuffer,
        sink: &mut RowSink<'_>,
    ) {
        let d = &mut self.directions[dir.index()];
        let absorbed = buffer.is_empty()
            && !d.decoder.is_idle()
            && d.decoder.skip_gap(len) == GapOutcome::Absorbed;
        buffer.clear_and_skip(len);
        if absorbed {
            if ts != 0 {
                d.last_byte_ts = ts;
            }
            return;
        }
        d.decoder.reset();
        if !d.resync {
            d.resync = true;
            self.protocol.on_message_lost(d.kind, sink);
        }
    }

    /// Completes a response delimited by the connection's end (HTTP/1.0
    /// bodies), then lets the protocol count what was never answered.
    fn finish(&mut self, sink: &mut RowSink<'_>) {
        let response = &mut self.directions[self.request_dir.other().index()];
        if let Some(message) = response.decoder.finish() {
            let timed = Timed {
                message,
                start_ts: response.message_start,
                end_ts: response.last_byte_ts,
            };
            self.protocol.on_message(MessageKind::Response, timed, sink);
        }
        self.directions[self.request_dir.index()].decoder.finish();
        self.protocol.finish(sink);
    }
}
