//! Incremental framing of one direction: a type byte and a 4-byte
//! big-endian length that counts itself; frontend startup-phase messages
//! have no type byte (their first byte is the length's high byte, 0); the
//! server answers an SSLRequest or GSSENCRequest with a single byte.

use std::mem;

use super::detect::{request_verdict, response_verdict};
use super::{CANCEL_REQUEST_CODE, MAX_STARTUP_LEN, PgConfig, PgError, PgMessage, PgTag};
use crate::Verdict;
use crate::{Decoded, GapOutcome, MessageKind};

/// Type bytes a client sends.
pub(crate) const FRONTEND_TYPES: &[u8] = b"QPBDESHCXdcfFp";
/// Type bytes a server sends.
pub(crate) const BACKEND_TYPES: &[u8] = b"RKSZTDCEINn123stGHWdcAVv";

/// First byte of a TLS handshake record, then the major version 3.
const TLS_HANDSHAKE: u8 = 0x16;

/// The body length a message type must have, when it is fixed.
pub(crate) fn fixed_body_len(kind: MessageKind, tag: u8) -> Option<u32> {
    match (kind, tag) {
        (MessageKind::Request, b'S' | b'H' | b'X' | b'c') => Some(0),
        (MessageKind::Response, b'1' | b'2' | b'3' | b'n' | b'I' | b's' | b'c') => Some(0),
        (MessageKind::Response, b'Z') => Some(1),
        _ => None,
    }
}

/// Smallest body a message type can have, for those that are not fixed.
pub(crate) fn min_body_len(kind: MessageKind, tag: u8) -> u32 {
    match (kind, tag) {
        // Auth request code; BackendKeyData pid + key (protocol 3.2 keys
        // are longer).
        (MessageKind::Response, b'R') => 4,
        (MessageKind::Response, b'K') => 8,
        // Execute: portal NUL + max rows. Describe/Close: kind + NUL.
        (MessageKind::Request, b'E') => 5,
        (MessageKind::Request, b'D' | b'C') => 2,
        (MessageKind::Request, b'Q') => 1,
        _ => 0,
    }
}

#[derive(Debug, Default)]
enum State {
    /// Expecting the start of a message.
    #[default]
    Idle,
    /// Inside a body.
    Body {
        message: PgMessage,
        /// Body bytes still to come.
        remaining: u32,
        /// How many body bytes may be kept.
        keep: usize,
    },
    /// A gap completed the message: the next `decode` hands it out.
    Complete(PgMessage),
    /// Ciphertext: everything is consumed, nothing decoded.
    Opaque,
}

/// Incremental decoder of one direction of one PostgreSQL connection.
/// Headers are read once complete; bodies are consumed as they arrive and
/// only a prefix is kept.
#[derive(Debug)]
pub struct PgDecoder {
    kind: MessageKind,
    config: PgConfig,
    state: State,
    /// The caller holds a partial header.
    started: bool,
    /// A typed message was seen: one-byte encryption answers and TLS
    /// records can no longer come.
    typed_seen: bool,
    /// Messages whose body was longer than `max_kept_bytes`.
    cut: u64,
}

impl PgDecoder {
    /// A decoder for the client's messages (`Request`) or the server's
    /// (`Response`).
    pub fn new(kind: MessageKind, config: PgConfig) -> Self {
        Self {
            kind,
            config,
            state: State::Idle,
            started: false,
            typed_seen: false,
            cut: 0,
        }
    }

    /// True between messages (nothing partial held by the decoder or, as far
    /// as it knows, by the caller).
    pub fn is_idle(&self) -> bool {
        !self.started && matches!(self.state, State::Idle | State::Opaque)
    }

    /// The direction turned into ciphertext (TLS or GSS encryption).
    pub fn is_opaque(&self) -> bool {
        matches!(self.state, State::Opaque)
    }

    /// Messages whose body exceeded `max_kept_bytes` (kept cut).
    pub fn cut_messages(&self) -> u64 {
        self.cut
    }

    /// Decodes from the start of `input`, the bytes not consumed so far.
    /// Completes at most one message per call; the caller loops while input
    /// remains and stops at `NeedMore`.
    pub fn decode(&mut self, input: &[u8]) -> Result<Decoded<PgMessage>, PgError> {
        let mut pos = 0;
        loop {
            let rest = input.get(pos..).unwrap_or_default();
            match mem::take(&mut self.state) {
                State::Complete(message) => {
                    self.started = false;
                    return Ok(Decoded::Progress {
                        consumed: 0,
                        message: Some(message),
                    });
                }
                State::Opaque => {
                    self.state = State::Opaque;
                    self.started = false;
                    return Ok(if input.is_empty() {
                        Decoded::NeedMore
                    } else {
                        Decoded::Progress {
                            consumed: input.len(),
                            message: None,
                        }
                    });
                }
                State::Idle => match self.header(rest)? {
                    Header::NeedMore => {
                        self.started = !rest.is_empty();
                        return Ok(Decoded::NeedMore);
                    }
                    Header::Whole { message, consumed } => {
                        self.started = false;
                        if matches!(
                            message.tag,
                            PgTag::Encrypted | PgTag::EncryptionAnswer(b'S' | b'G')
                        ) {
                            self.state = State::Opaque;
                        }
                        let consumed = if message.tag == PgTag::Encrypted {
                            input.len()
                        } else {
                            consumed
                        };
                        return Ok(Decoded::Progress {
                            consumed,
                            message: Some(message),
                        });
                    }
                    Header::Body {
                        message,
                        header_len,
                    } => {
                        pos += header_len;
                        if message.len == 0 {
                            self.started = false;
                            return Ok(Decoded::Progress {
                                consumed: pos,
                                message: Some(message),
                            });
                        }
                        let keep = self.initial_keep(&message);
                        self.state = State::Body {
                            remaining: message.len,
                            message,
                            keep,
                        };
                    }
                },
                State::Body {
                    mut message,
                    remaining,
                    mut keep,
                } => {
                    let take = rest.len().min(remaining as usize);
                    let data = rest.get(..take).unwrap_or_default();
                    if !message.incomplete {
                        keep = self.keep_prefix(&mut message, data, keep);
                    }
                    let remaining = remaining - take as u32;
                    pos += take;
                    if remaining > 0 {
                        self.state = State::Body {
                            message,
                            remaining,
                            keep,
                        };
                        self.started = true;
                        return Ok(if pos == 0 {
                            Decoded::NeedMore
                        } else {
                            Decoded::Progress {
                                consumed: pos,
                                message: None,
                            }
                        });
                    }
                    self.finish_body(&message, keep);
                    self.started = false;
                    return Ok(Decoded::Progress {
                        consumed: pos,
                        message: Some(message),
                    });
                }
            }
        }
    }

    /// Reads the start of a message from `rest`.
    fn header(&mut self, rest: &[u8]) -> Result<Header, PgError> {
        let Some(&first) = rest.first() else {
            return Ok(Header::NeedMore);
        };
        let second = rest.get(1).copied();
        if !self.typed_seen && first == TLS_HANDSHAKE {
            return match second {
                None => Ok(Header::NeedMore),
                Some(3) => Ok(Header::Whole {
                    message: special(PgTag::Encrypted),
                    consumed: rest.len(),
                }),
                Some(_) => Err(self.fail(PgError::InvalidType)),
            };
        }
        if self.kind == MessageKind::Response
            && !self.typed_seen
            && matches!(first, b'S' | b'N' | b'G')
        {
            // ParameterStatus and NoticeResponse have lengths below 16 MiB
            // (second byte 0); what follows a one-byte answer is a TLS
            // record, an auth request or an error: never 0. CopyInResponse
            // ('G') cannot come before the first typed message.
            match second {
                None if first != b'G' => return Ok(Header::NeedMore),
                Some(0) if first != b'G' => {}
                _ => {
                    return Ok(Header::Whole {
                        message: special(PgTag::EncryptionAnswer(first)),
                        consumed: 1,
                    });
                }
            }
        }
        if self.kind == MessageKind::Request && first == 0 {
            let Some(len) = rest.first_chunk::<4>().map(|b| u32::from_be_bytes(*b)) else {
                return Ok(Header::NeedMore);
            };
            if !(8..=MAX_STARTUP_LEN).contains(&len) {
                return Err(self.fail(PgError::InvalidLength));
            }
            return Ok(Header::Body {
                message: PgMessage {
                    tag: PgTag::Untyped,
                    len: len - 4,
                    body: Vec::new(),
                    incomplete: false,
                },
                header_len: 4,
            });
        }
        let types = match self.kind {
            MessageKind::Request => FRONTEND_TYPES,
            MessageKind::Response => BACKEND_TYPES,
        };
        if !types.contains(&first) {
            return Err(self.fail(PgError::InvalidType));
        }
        let Some(&[_, a, b, c, d]) = rest.first_chunk::<5>() else {
            return Ok(Header::NeedMore);
        };
        let len = u32::from_be_bytes([a, b, c, d]);
        if len < 4 || len > self.config.max_message_len {
            return Err(self.fail(PgError::InvalidLength));
        }
        let body_len = len - 4;
        let fits = match fixed_body_len(self.kind, first) {
            Some(fixed) => body_len == fixed,
            None => body_len >= min_body_len(self.kind, first),
        };
        if !fits {
            return Err(self.fail(PgError::InvalidLength));
        }
        self.typed_seen = true;
        Ok(Header::Body {
            message: PgMessage {
                tag: PgTag::Typed(first),
                len: body_len,
                body: Vec::new(),
                incomplete: false,
            },
            header_len: 5,
        })
    }

    fn fail(&mut self, err: PgError) -> PgError {
        self.reset();
        err
    }

    /// Bytes of the body to keep: none of row data, copy data and password
    /// messages; of an auth request its code (see `adjust_keep`); of
    /// BackendKeyData the process id, not the secret key.
    fn initial_keep(&self, message: &PgMessage) -> usize {
        let max = self.config.max_kept_bytes;
        match (self.kind, message.tag) {
            (MessageKind::Response, PgTag::Typed(b'D'))
            | (_, PgTag::Typed(b'd'))
            | (MessageKind::Request, PgTag::Typed(b'p')) => 0,
            (MessageKind::Response, PgTag::Typed(b'R')) => 4.min(max),
            (MessageKind::Response, PgTag::Typed(b'K')) => 4.min(max),
            _ => max,
        }
    }

    /// Appends what fits of `data` to the kept prefix; returns the new
    /// limit. The limit can widen once the first bytes are in (then the rest
    /// of `data` is kept too: every byte before was kept, so the body stays
    /// a true prefix).
    fn keep_prefix(&self, message: &mut PgMessage, data: &[u8], mut keep: usize) -> usize {
        let mut used = 0;
        loop {
            let room = keep.saturating_sub(message.body.len());
            let more = data.get(used..).unwrap_or_default();
            let add = more.get(..room).unwrap_or(more);
            message.body.extend_from_slice(add);
            used += add.len();
            let next = self.adjust_keep(message, keep);
            if next <= keep {
                message.body.truncate(next);
                return next;
            }
            keep = next;
        }
    }

    /// Widens or narrows the kept prefix once its first bytes say what the
    /// message is: the SASL mechanism list of an auth request is kept (other
    /// auth payloads are not); of a CancelRequest only code and process id.
    fn adjust_keep(&self, message: &PgMessage, keep: usize) -> usize {
        let max = self.config.max_kept_bytes;
        let code = message
            .body
            .first_chunk::<4>()
            .map(|b| u32::from_be_bytes(*b));
        match (message.tag, code) {
            (PgTag::Typed(b'R'), Some(10)) if self.kind == MessageKind::Response => max,
            (PgTag::Untyped, Some(CANCEL_REQUEST_CODE)) => 8.min(max),
            _ => keep,
        }
    }

    /// Counts a message cut by `max_kept_bytes` (not one kept short on
    /// purpose).
    fn finish_body(&mut self, message: &PgMessage, keep: usize) {
        if keep == self.config.max_kept_bytes
            && !message.incomplete
            && (message.body.len() as u64) < u64::from(message.len)
        {
            self.cut += 1;
        }
    }

    /// `n` bytes of the stream were lost. Absorbed when they lie inside the
    /// body in progress (`len` still counts them, `incomplete` is set); if
    /// they end it, the next `decode` returns the message with `consumed:
    /// 0`. Lost ciphertext is absorbed too. Otherwise `MessageLost`: the
    /// decoder is idle and the caller resyncs. `n == 0` is `Absorbed`.
    pub fn skip_gap(&mut self, n: u64) -> GapOutcome {
        if n == 0 {
            return GapOutcome::Absorbed;
        }
        match mem::take(&mut self.state) {
            State::Body {
                mut message,
                remaining,
                keep,
            } if n <= u64::from(remaining) => {
                let remaining = remaining - n as u32;
                message.incomplete = true;
                self.state = if remaining == 0 {
                    State::Complete(message)
                } else {
                    State::Body {
                        message,
                        remaining,
                        keep,
                    }
                };
                GapOutcome::Absorbed
            }
            State::Opaque => {
                self.state = State::Opaque;
                GapOutcome::Absorbed
            }
            State::Complete(message) => {
                self.state = State::Complete(message);
                GapOutcome::MessageLost
            }
            _ => {
                self.reset();
                GapOutcome::MessageLost
            }
        }
    }

    /// Drops any message in progress and becomes idle. A direction that
    /// turned into ciphertext stays opaque.
    pub fn reset(&mut self) {
        if !matches!(self.state, State::Opaque) {
            self.state = State::Idle;
        }
        self.started = false;
    }
}

enum Header {
    NeedMore,
    /// A unit with nothing more to read (one-byte answer, TLS start).
    Whole {
        message: PgMessage,
        consumed: usize,
    },
    /// A message header; its body follows.
    Body {
        message: PgMessage,
        header_len: usize,
    },
}

fn special(tag: PgTag) -> PgMessage {
    PgMessage {
        tag,
        len: 0,
        body: Vec::new(),
        incomplete: false,
    }
}

/// Resync: the first offset where a message of `kind` with strong evidence
/// starts (see [`crate::detect`]): a startup-phase message, a query, a
/// Parse, Bind, Describe, Execute or Close from the client; an auth
/// request, ReadyForQuery, CommandComplete, an error or notice, a
/// RowDescription from the server. `None` if there is none yet.
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
