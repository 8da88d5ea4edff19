//! Runs one direction's incremental decoder over its window: resynchronises
//! after errors and lost bytes, and stamps each message with the capture time
//! of its first and last byte. Shared by the Redis, MySQL and DNS-over-TCP
//! sessions (the decoders of `sonde_protocols` share one calling convention).

use sonde_protocols::{Decoded, GapOutcome, MessageKind, dns, mysql, redis};

use crate::window::Window;

/// Bytes kept when resynchronising finds no message start: a marker may straddle.
const RESYNC_KEEP: usize = 16;

/// A decoder rejected its input (the protocol's own error says why; the
/// driver only needs to know that it must resynchronise).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MalformedInput;

/// The calling convention of the stream decoders in `sonde_protocols`.
pub trait StreamDecoder {
    type Message;
    fn is_idle(&self) -> bool;
    fn decode(&mut self, input: &[u8]) -> Result<Decoded<Self::Message>, MalformedInput>;
    fn skip_gap(&mut self, n: u64) -> GapOutcome;
    fn reset(&mut self);
    /// Offset of the first plausible message start, for resynchronising.
    fn find_start(input: &[u8], kind: MessageKind) -> Option<usize>;
}

/// Implements [`StreamDecoder`] for a decoder with the common inherent API.
macro_rules! stream_decoder {
    ($decoder:ty, $message:ty, $find_start:path) => {
        impl StreamDecoder for $decoder {
            type Message = $message;
            fn is_idle(&self) -> bool {
                <$decoder>::is_idle(self)
            }
            fn decode(&mut self, input: &[u8]) -> Result<Decoded<Self::Message>, MalformedInput> {
                <$decoder>::decode(self, input).map_err(|_| MalformedInput)
            }
            fn skip_gap(&mut self, n: u64) -> GapOutcome {
                <$decoder>::skip_gap(self, n)
            }
            fn reset(&mut self) {
                <$decoder>::reset(self);
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

/// A decoded message with the capture times of its first and last byte.
pub struct Timed<M> {
    pub message: M,
    pub start_ts: u64,
    pub end_ts: u64,
}

/// What one `run` produced.
pub struct RunResult<M> {
    pub messages: Vec<Timed<M>>,
    pub errors: u32,
}

/// Consecutive parse failures after which a session gives up its protocol
/// (the guess was wrong; the connection is looked at afresh).
const MAX_CONSECUTIVE_FAILURES: u32 = 3;

/// Counts parse failures in a row; any parsed message resets it.
#[derive(Debug, Default)]
pub struct FailureStreak(u32);

impl FailureStreak {
    /// Records one run; true when the session should give up.
    pub fn record<M>(&mut self, result: &RunResult<M>) -> bool {
        if result.messages.is_empty() {
            self.0 += result.errors;
        } else {
            self.0 = 0;
        }
        self.0 >= MAX_CONSECUTIVE_FAILURES
    }
}

#[derive(Debug)]
pub struct Driver {
    /// What this direction carries (for resynchronising).
    kind: MessageKind,
    resync: bool,
    message_start: u64,
    last_byte_ts: u64,
}

impl Driver {
    pub fn new(kind: MessageKind) -> Self {
        Self {
            kind,
            resync: false,
            message_start: 0,
            last_byte_ts: 0,
        }
    }

    /// Decodes all complete messages in `window`.
    pub fn run<D: StreamDecoder>(
        &mut self,
        decoder: &mut D,
        window: &mut Window,
    ) -> RunResult<D::Message> {
        let mut result = RunResult {
            messages: Vec::new(),
            errors: 0,
        };
        loop {
            // An empty window still goes to a decoder in the middle of a
            // message: a gap may have completed it.
            if window.is_empty() && decoder.is_idle() {
                return result;
            }
            if self.resync {
                match D::find_start(window.bytes(), self.kind) {
                    Some(offset) => {
                        window.consume(offset);
                        self.resync = false;
                    }
                    None => {
                        window.consume(window.len().saturating_sub(RESYNC_KEEP));
                        return result;
                    }
                }
            }
            let was_idle = decoder.is_idle();
            if was_idle && !window.is_empty() {
                self.message_start = window.ts_at(0);
            }
            match decoder.decode(window.bytes()) {
                Ok(Decoded::NeedMore) => return result,
                Ok(Decoded::Progress { consumed, message }) => {
                    if consumed > 0 {
                        self.last_byte_ts = window.ts_at(consumed - 1);
                    }
                    window.consume(consumed);
                    match message {
                        Some(message) => result.messages.push(Timed {
                            message,
                            start_ts: self.message_start,
                            end_ts: self.last_byte_ts,
                        }),
                        None if consumed == 0 => return result,
                        None => {}
                    }
                }
                Err(MalformedInput) => {
                    result.errors += 1;
                    decoder.reset();
                    // Skip the bad start and look for the next message.
                    window.consume(1);
                    self.resync = true;
                }
            }
        }
    }

    /// `len` bytes were lost after what `window` holds. Returns true when a
    /// message was lost (counted once per resynchronisation).
    pub fn gap<D: StreamDecoder>(
        &mut self,
        decoder: &mut D,
        len: u64,
        ts: u64,
        window: &mut Window,
    ) -> bool {
        let absorbed = window.is_empty()
            && !decoder.is_idle()
            && decoder.skip_gap(len) == GapOutcome::Absorbed;
        window.clear_and_skip(len);
        if absorbed {
            if ts != 0 {
                self.last_byte_ts = ts;
            }
            return false;
        }
        decoder.reset();
        let newly_lost = !self.resync;
        self.resync = true;
        newly_lost
    }
}

/// The message kind each direction carries, given where requests go.
pub fn kinds(request_dir_is_egress: bool) -> [MessageKind; 2] {
    if request_dir_is_egress {
        [MessageKind::Request, MessageKind::Response]
    } else {
        [MessageKind::Response, MessageKind::Request]
    }
}
