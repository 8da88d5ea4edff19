//! Incremental framing: 3-byte little-endian length and sequence id; a
//! payload of 0xffffff bytes continues in the next packet.

use std::mem;

use super::detect::{request_verdict, response_verdict};
use super::{MysqlConfig, MysqlError, MysqlPacket};
use crate::Verdict;
use crate::{Decoded, GapOutcome, MessageKind};

/// Physical payload size that announces a continuation packet.
const MAX_PHYSICAL: usize = 0xff_ffff;

#[derive(Debug, Default)]
enum State {
    /// Expecting the header of a new logical packet.
    #[default]
    Header,
    /// Expecting the header of a continuation packet.
    Continuation(MysqlPacket),
    /// Inside a physical payload.
    Payload {
        packet: MysqlPacket,
        /// Bytes of the current physical payload still to come.
        remaining: usize,
        /// The current physical packet is full: another follows.
        more: bool,
    },
    /// A gap completed the packet: the next `decode` hands it out.
    Complete(MysqlPacket),
}

/// Incremental decoder of one direction of one MySQL connection. Headers are
/// read once complete (4 bytes); payloads are consumed as they arrive and
/// only a prefix is kept.
#[derive(Debug)]
pub struct MysqlPacketDecoder {
    config: MysqlConfig,
    state: State,
    started: bool,
}

impl MysqlPacketDecoder {
    pub fn new(config: MysqlConfig) -> Self {
        Self {
            config,
            state: State::Header,
            started: false,
        }
    }

    /// True between packets (nothing partial held by the decoder or, as far
    /// as it knows, by the caller).
    pub fn is_idle(&self) -> bool {
        !self.started && matches!(self.state, State::Header)
    }

    /// Decodes from the start of `input`, the bytes not consumed so far.
    /// Completes at most one logical packet per call; the caller loops while
    /// input remains and stops at `NeedMore`.
    pub fn decode(&mut self, input: &[u8]) -> Result<Decoded<MysqlPacket>, MysqlError> {
        let mut pos = 0;
        loop {
            let rest = input.get(pos..).unwrap_or_default();
            match mem::take(&mut self.state) {
                State::Complete(packet) => {
                    self.started = false;
                    return Ok(Decoded::Progress {
                        consumed: 0,
                        message: Some(packet),
                    });
                }
                state @ (State::Header | State::Continuation(_)) => {
                    let Some(&[a, b, c, seq]) = rest.first_chunk::<4>() else {
                        self.state = state;
                        return Ok(self.partial(pos, rest));
                    };
                    let len = usize::from(a) | usize::from(b) << 8 | usize::from(c) << 16;
                    let mut packet = match state {
                        State::Continuation(packet) => packet,
                        _ => MysqlPacket {
                            seq,
                            payload: Vec::new(),
                            len: 0,
                            incomplete: false,
                        },
                    };
                    packet.len += len as u64;
                    if packet.len > self.config.max_packet_len {
                        self.reset();
                        return Err(MysqlError::TooLarge);
                    }
                    pos += 4;
                    self.state = State::Payload {
                        packet,
                        remaining: len,
                        more: len == MAX_PHYSICAL,
                    };
                }
                State::Payload {
                    mut packet,
                    mut remaining,
                    more,
                } => {
                    let data = rest.get(..remaining).unwrap_or(rest);
                    if !packet.incomplete {
                        let room = self
                            .config
                            .max_kept_bytes
                            .saturating_sub(packet.payload.len());
                        packet
                            .payload
                            .extend_from_slice(data.get(..room).unwrap_or(data));
                    }
                    remaining -= data.len();
                    pos += data.len();
                    if remaining > 0 {
                        self.state = State::Payload {
                            packet,
                            remaining,
                            more,
                        };
                        return Ok(self.partial(pos, rest));
                    }
                    if more {
                        self.state = State::Continuation(packet);
                        continue;
                    }
                    self.started = false;
                    return Ok(Decoded::Progress {
                        consumed: pos,
                        message: Some(packet),
                    });
                }
            }
        }
    }

    fn partial<T>(&mut self, pos: usize, rest: &[u8]) -> Decoded<T> {
        self.started = pos > 0 || !rest.is_empty() || !matches!(self.state, State::Header);
        if pos == 0 {
            Decoded::NeedMore
        } else {
            Decoded::Progress {
                consumed: pos,
                message: None,
            }
        }
    }

    /// `n` bytes of the stream were lost. Absorbed when they lie inside the
    /// payload in progress (`len` still counts them, `incomplete` is set);
    /// if they end it, the next `decode` returns the packet with
    /// `consumed: 0`. Otherwise `MessageLost`: the decoder is idle and the
    /// caller resyncs. `n == 0` is `Absorbed`.
    pub fn skip_gap(&mut self, n: u64) -> GapOutcome {
        if n == 0 {
            return GapOutcome::Absorbed;
        }
        match mem::take(&mut self.state) {
            State::Payload {
                mut packet,
                remaining,
                more,
            } if n <= remaining as u64 => {
                let remaining = remaining - n as usize;
                packet.incomplete = true;
                self.state = match (remaining, more) {
                    (0, false) => State::Complete(packet),
                    (0, true) => State::Continuation(packet),
                    _ => State::Payload {
                        packet,
                        remaining,
                        more,
                    },
                };
                GapOutcome::Absorbed
            }
            State::Complete(packet) => {
                self.state = State::Complete(packet);
                GapOutcome::MessageLost
            }
            _ => {
                self.reset();
                GapOutcome::MessageLost
            }
        }
    }

    /// The stream ended. Messages are length-prefixed, so none ends with
    /// the stream: a partial one is dropped and the decoder becomes idle.
    pub fn finish(&mut self) -> Option<MysqlPacket> {
        self.reset();
        None
    }

    /// Drops any packet in progress and becomes idle.
    pub fn reset(&mut self) {
        self.state = State::Header;
        self.started = false;
    }
}

/// Resync: the first offset where a packet of `kind` with strong evidence
/// starts (a command packet from the client; a greeting, ERR packet or
/// result set header from the server; see [`crate::detect`]). `None` if
/// there is none yet.
pub fn find_message_start(input: &[u8], kind: MessageKind) -> Option<usize> {
    let verdict = match kind {
        MessageKind::Request => request_verdict,
        MessageKind::Response => response_verdict,
    };
    (0..input.len()).find(|&at| {
        input
            .get(at..)
            .is_some_and(|rest| verdict(rest) == Verdict::Strong)
    })
}
