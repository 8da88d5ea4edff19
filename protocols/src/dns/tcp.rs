//! DNS over TCP: each message is preceded by its 2-byte big-endian length.

use super::detect::tcp_verdict;
use super::{DnsConfig, DnsError, DnsMessage, parse_message};
use crate::Verdict;
use crate::{Decoded, GapOutcome, MessageKind};

/// Incremental decoder of one direction of a DNS-over-TCP connection.
/// Messages are parsed once complete, so the caller holds at most
/// `max_tcp_message_len + 2` bytes.
#[derive(Debug)]
pub struct DnsTcpDecoder {
    config: DnsConfig,
    started: bool,
}

impl DnsTcpDecoder {
    pub fn new(config: DnsConfig) -> Self {
        Self {
            config,
            started: false,
        }
    }

    /// True between messages (the caller holds no partial message).
    pub fn is_idle(&self) -> bool {
        !self.started
    }

    /// Decodes the message at the start of `input` once it is complete.
    /// After an error the decoder is idle; the caller resyncs with
    /// [`find_message_start`].
    pub fn decode(&mut self, input: &[u8]) -> Result<Decoded<DnsMessage>, DnsError> {
        let (Some(&hi), Some(&lo)) = (input.first(), input.get(1)) else {
            self.started = !input.is_empty();
            return Ok(Decoded::NeedMore);
        };
        let len = usize::from(u16::from_be_bytes([hi, lo]));
        let fail = |this: &mut Self, err| {
            this.started = false;
            Err(err)
        };
        if len < 12 {
            return fail(self, DnsError::InvalidLength);
        }
        if len > self.config.max_tcp_message_len {
            return fail(self, DnsError::TooLarge);
        }
        let Some(body) = input.get(2..2 + len) else {
            self.started = true;
            return Ok(Decoded::NeedMore);
        };
        self.started = false;
        let message = parse_message(body, &self.config)?;
        Ok(Decoded::Progress {
            consumed: 2 + len,
            message: Some(message),
        })
    }

    /// `n` lost bytes: messages are only parsed whole, so any loss is
    /// `MessageLost` (the decoder is idle; the caller resyncs). `n == 0` is
    /// `Absorbed`.
    pub fn skip_gap(&mut self, n: u64) -> GapOutcome {
        if n == 0 {
            return GapOutcome::Absorbed;
        }
        self.started = false;
        GapOutcome::MessageLost
    }

    /// The stream ended. Messages are length-prefixed, so none ends with
    /// the stream: a partial one is dropped and the decoder becomes idle.
    pub fn finish(&mut self) -> Option<DnsMessage> {
        self.reset();
        None
    }

    /// Becomes idle.
    pub fn reset(&mut self) {
        self.started = false;
    }
}

/// Resync: the first offset where a length prefix and a plausible header
/// and question of a message of `kind` start (see [`crate::detect`]).
/// `None` if there is none yet (a caller that discards data on `None`
/// should keep the last 300 bytes, enough for a header and a question).
pub fn find_message_start(input: &[u8], kind: MessageKind) -> Option<usize> {
    (0..input.len()).find(|&at| {
        input
            .get(at..)
            .is_some_and(|rest| tcp_verdict(rest, kind) == Verdict::Strong)
    })
}
