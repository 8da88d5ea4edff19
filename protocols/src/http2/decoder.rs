//! Incremental frame decoder for one direction of one connection.
//!
//! A frame is read as a head (the 9-byte header and the fixed fields after
//! it, at most 17 bytes, taken once all there) and a body streamed through:
//! DATA keeps a prefix, header block fragments go to the open block (capped),
//! SETTINGS keeps its parameters, everything else is skipped. So a frame of
//! any size costs bounded memory, and bytes lost inside a body are absorbed
//! with the frame boundary still known.

use std::mem;

use super::frame::{
    self, CONTINUATION, DATA, DataFrame, FLAG_ACK, FLAG_END_HEADERS, FLAG_END_STREAM, FLAG_PADDED,
    Frame, FrameHeader, GOAWAY, HEADER_LEN, HEADERS, HeaderBlock, PING, PRIORITY, PUSH_PROMISE,
    RST_STREAM, SETTINGS, WINDOW_UPDATE,
};
use super::{DEFAULT_MAX_FRAME_SIZE, Http2Config, Http2Error, MAX_FRAME_SIZE_LIMIT, PREFACE};
use crate::cursor::Cursor;
use crate::{Decoded, GapOutcome, MessageKind};

/// SETTINGS payload bytes kept (64 parameters; real stacks send under 10).
const MAX_SETTINGS_BYTES: usize = 64 * 6;

/// Largest frame a resync accepts as a boundary: real stacks raise
/// SETTINGS_MAX_FRAME_SIZE to 1 MiB at most, and a guessed header claiming
/// more is more likely noise.
const RESYNC_MAX_FRAME: u32 = 1 << 20;

/// What the body of the frame in progress becomes.
#[derive(Debug)]
enum Content {
    Data {
        stream_id: u32,
        end_stream: bool,
        len: u32,
        kept: Vec<u8>,
    },
    /// Fragment bytes of the open header block.
    Block {
        end_headers: bool,
    },
    Settings {
        ack: bool,
        kept: Vec<u8>,
    },
    GoAway {
        last_stream_id: u32,
        error_code: u32,
    },
    Unknown {
        frame_type: u8,
        stream_id: u32,
        len: u32,
    },
    /// Complete with its head (PING, RST_STREAM, PRIORITY, WINDOW_UPDATE).
    Ready(Frame),
}

#[derive(Debug, Default)]
enum State {
    /// Expecting a frame header (or, from a client, the preface).
    #[default]
    Head,
    Body {
        content: Content,
        /// Content bytes still to come.
        remaining: u32,
        /// Padding bytes after them.
        padding: u32,
        /// Content bytes lost in gaps.
        lost: u32,
    },
    /// A gap ended the frame: the next `decode` hands it out.
    Complete(Frame),
}

/// A header block spread over HEADERS/PUSH_PROMISE and CONTINUATION frames.
#[derive(Debug)]
struct OpenBlock {
    stream_id: u32,
    end_stream: bool,
    promised: Option<u32>,
    fragment: Vec<u8>,
    len: usize,
    /// A byte was lost or the cap reached: nothing more is kept.
    cut: bool,
}

/// Incremental decoder of the frames of one direction.
#[derive(Debug)]
pub struct Http2Decoder {
    kind: MessageKind,
    max_frame_size: u32,
    block_cap: usize,
    data_cap: usize,
    state: State,
    block: Option<OpenBlock>,
    /// The caller holds the first bytes of a frame.
    started: bool,
    /// Bytes were lost between frames: reported before the next frame.
    discontinuity: bool,
}

impl Http2Decoder {
    /// A decoder of the frames sent by the client (`Request`, which may start
    /// with the preface) or by the server (`Response`). The maximum frame
    /// size starts at the protocol's limit, since a decoder that joins a
    /// connection cannot know what was negotiated; see
    /// [`set_max_frame_size`](Self::set_max_frame_size).
    pub fn new(kind: MessageKind, config: &Http2Config) -> Self {
        Self {
            kind,
            max_frame_size: MAX_FRAME_SIZE_LIMIT,
            block_cap: config.max_header_block_bytes,
            data_cap: config.data_frame_prefix_bytes,
            state: State::Head,
            block: None,
            started: false,
            discontinuity: false,
        }
    }

    pub fn kind(&self) -> MessageKind {
        self.kind
    }

    /// Honours SETTINGS_MAX_FRAME_SIZE: frames longer than `size` (clamped to
    /// 16 384 ..= 2^24-1) are errors. The value that applies to a direction is
    /// the one the receiving side advertised:
    /// [`Http2Session::max_frame_size`](super::Http2Session::max_frame_size).
    pub fn set_max_frame_size(&mut self, size: u32) {
        self.max_frame_size = size.clamp(DEFAULT_MAX_FRAME_SIZE, MAX_FRAME_SIZE_LIMIT);
    }

    /// True between frames and header blocks, with nothing held by the
    /// caller and no discontinuity to report.
    pub fn is_idle(&self) -> bool {
        matches!(self.state, State::Head)
            && self.block.is_none()
            && !self.started
            && !self.discontinuity
    }

    /// Decodes from the start of `input`, the bytes not consumed so far.
    /// Completes at most one frame per call (a header block counts as one;
    /// its HEADERS frame alone completes nothing); the caller loops while
    /// input remains and stops at `NeedMore`. After an error the decoder is
    /// idle and reports a [`Frame::Discontinuity`] first thing next time.
    pub fn decode(&mut self, input: &[u8]) -> Result<Decoded<Frame>, Http2Error> {
        if mem::take(&mut self.discontinuity) {
            return Ok(Decoded::Progress {
                consumed: 0,
                message: Some(Frame::Discontinuity),
            });
        }
        let mut pos = 0;
        loop {
            let rest = input.get(pos..).unwrap_or_default();
            match mem::take(&mut self.state) {
                State::Complete(frame) => {
                    self.started = false;
                    return Ok(Decoded::Progress {
                        consumed: pos,
                        message: Some(frame),
                    });
                }
                State::Head => {
                    if self.kind == MessageKind::Request && self.block.is_none() {
                        match preface_at(rest) {
                            Some(true) => {
                                self.started = false;
                                return Ok(Decoded::Progress {
                                    consumed: pos + PREFACE.len(),
                                    message: Some(Frame::Preface),
                                });
                            }
                            Some(false) => return Ok(self.partial(pos, rest)),
                            None => {}
                        }
                    }
                    match self.read_head(rest) {
                        Ok(Some(used)) => pos += used,
                        Ok(None) => return Ok(self.partial(pos, rest)),
                        Err(e) => {
                            self.lose();
                            return Err(e);
                        }
                    }
                }
                State::Body {
                    mut content,
                    mut remaining,
                    mut padding,
                    lost,
                } => {
                    let take = rest.len().min(remaining as usize);
                    let (bytes, after) = rest.split_at(take);
                    self.keep(&mut content, bytes, lost);
                    remaining -= take as u32;
                    let pad = after.len().min(padding as usize);
                    padding -= pad as u32;
                    pos += take + pad;
                    if remaining > 0 || padding > 0 {
                        self.state = State::Body {
                            content,
                            remaining,
                            padding,
                            lost,
                        };
                        return Ok(self.partial(pos, after.get(pad..).unwrap_or_default()));
                    }
                    if let Some(frame) = self.finish(content, lost) {
                        self.started = false;
                        return Ok(Decoded::Progress {
                            consumed: pos,
                            message: Some(frame),
                        });
                    }
                }
            }
        }
    }

    /// Reads a frame head at the start of `input`: `Ok(None)` when not all
    /// of it is there yet, otherwise the bytes it took (the state is then
    /// the frame's body).
    fn read_head(&mut self, input: &[u8]) -> Result<Option<usize>, Http2Error> {
        let Some(h) = FrameHeader::parse(input) else {
            return Ok(None);
        };
        if h.len > self.max_frame_size {
            return Err(Http2Error::FrameTooLarge);
        }
        let layout = frame::layout(&h)?;
        // A header block is contiguous: CONTINUATION frames of its stream
        // follow it, and only them.
        let in_order = match &self.block {
            None => h.frame_type != CONTINUATION,
            Some(b) => h.frame_type == CONTINUATION && h.stream_id == b.stream_id,
        };
        if !in_order {
            return Err(Http2Error::UnexpectedContinuation);
        }
        let head_len = HEADER_LEN + layout.prologue;
        let Some(prologue) = input.get(HEADER_LEN..head_len) else {
            return Ok(None);
        };
        let mut c = Cursor::new(prologue);
        let padded = matches!(h.frame_type, DATA | HEADERS | PUSH_PROMISE) && h.has(FLAG_PADDED);
        let pad = if padded {
            u32::from(c.u8().unwrap_or(0))
        } else {
            0
        };
        let remaining = h
            .len
            .checked_sub(layout.prologue as u32)
            .and_then(|n| n.checked_sub(pad))
            .ok_or(Http2Error::InvalidFrame)?;
        let stream_id = h.stream_id;
        let content = match h.frame_type {
            DATA => Content::Data {
                stream_id,
                end_stream: h.has(FLAG_END_STREAM),
                len: remaining,
                kept: Vec::new(),
            },
            HEADERS | PUSH_PROMISE => {
                let promised = if h.frame_type == PUSH_PROMISE {
                    Some(c.u32_be().unwrap_or(0) & 0x7fff_ffff)
                } else {
                    // A PRIORITY flag's dependency and weight are in the
                    // prologue and skipped.
                    None
                };
                self.block = Some(OpenBlock {
                    stream_id,
                    end_stream: h.frame_type == HEADERS && h.has(FLAG_END_STREAM),
                    promised,
                    fragment: Vec::new(),
                    len: 0,
                    cut: false,
                });
                Content::Block {
                    end_headers: h.has(FLAG_END_HEADERS),
                }
            }
            CONTINUATION => Content::Block {
                end_headers: h.has(FLAG_END_HEADERS),
            },
            SETTINGS => Content::Settings {
                ack: h.has(FLAG_ACK),
                kept: Vec::new(),
            },
            GOAWAY => Content::GoAway {
                last_stream_id: c.u32_be().unwrap_or(0) & 0x7fff_ffff,
                error_code: c.u32_be().unwrap_or(0),
            },
            PRIORITY => Content::Ready(Frame::Priority { stream_id }),
            RST_STREAM => Content::Ready(Frame::RstStream {
                stream_id,
                error_code: c.u32_be().unwrap_or(0),
            }),
            PING => Content::Ready(Frame::Ping {
                ack: h.has(FLAG_ACK),
            }),
            WINDOW_UPDATE => Content::Ready(Frame::WindowUpdate {
                stream_id,
                increment: c.u32_be().unwrap_or(0) & 0x7fff_ffff,
            }),
            frame_type => Content::Unknown {
                frame_type,
                stream_id,
                len: h.len,
            },
        };
        self.state = State::Body {
            content,
            remaining,
            padding: pad,
            lost: 0,
        };
        Ok(Some(head_len))
    }

    /// Keeps what the frame needs of body bytes that arrived.
    fn keep(&mut self, content: &mut Content, bytes: &[u8], lost: u32) {
        let (kept, cap) = match content {
            Content::Data { kept, .. } => (kept, self.data_cap),
            Content::Settings { kept, .. } => (kept, MAX_SETTINGS_BYTES),
            Content::Block { .. } => {
                if let Some(block) = &mut self.block {
                    block.len += bytes.len();
                    if !block.cut {
                        let room = self.block_cap.saturating_sub(block.fragment.len());
                        block
                            .fragment
                            .extend_from_slice(bytes.get(..room).unwrap_or(bytes));
                        block.cut = bytes.len() > room;
                    }
                }
                return;
            }
            _ => return,
        };
        if lost == 0 {
            let room = cap.saturating_sub(kept.len());
            kept.extend_from_slice(bytes.get(..room).unwrap_or(bytes));
        }
    }

    /// The frame's body is complete: the frame to hand out, if any (a
    /// header block is handed out with its last frame).
    fn finish(&mut self, content: Content, lost: u32) -> Option<Frame> {
        Some(match content {
            Content::Data {
                stream_id,
                end_stream,
                len,
                kept,
            } => Frame::Data(DataFrame {
                stream_id,
                end_stream,
                len,
                prefix: kept,
                lost,
            }),
            Content::Block { end_headers } => {
                if !end_headers {
                    return None;
                }
                let b = self.block.take()?;
                let block = HeaderBlock {
                    stream_id: b.stream_id,
                    end_stream: b.end_stream,
                    fragment: b.fragment,
                    len: b.len,
                };
                match b.promised {
                    Some(promised_stream_id) => Frame::PushPromise {
                        promised_stream_id,
                        block,
                    },
                    None => Frame::Headers(block),
                }
            }
            Content::Settings { ack, kept } => Frame::Settings {
                ack,
                params: frame::parse_settings(&kept),
            },
            Content::GoAway {
                last_stream_id,
                error_code,
            } => Frame::GoAway {
                last_stream_id,
                error_code,
            },
            Content::Unknown {
                frame_type,
                stream_id,
                len,
            } => Frame::Unknown {
                frame_type,
                stream_id,
                len,
            },
            Content::Ready(frame) => frame,
        })
    }

    fn partial<T>(&mut self, pos: usize, rest: &[u8]) -> Decoded<T> {
        self.started = !rest.is_empty() || !matches!(self.state, State::Head);
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
    /// body or padding of the frame in progress: a DATA frame counts them in
    /// `lost`, a header block is handed out truncated, SETTINGS with the
    /// parameters read before. If they end the frame, the next `decode`
    /// hands it out with `consumed: 0`. Otherwise `MessageLost`: the decoder
    /// is idle and reports a [`Frame::Discontinuity`] next; the caller
    /// resyncs. `n == 0` is `Absorbed`.
    pub fn skip_gap(&mut self, n: u64) -> GapOutcome {
        if n == 0 {
            return GapOutcome::Absorbed;
        }
        match mem::take(&mut self.state) {
            State::Body {
                mut content,
                remaining,
                padding,
                lost,
            } if n <= u64::from(remaining) + u64::from(padding) => {
                let in_content = n.min(u64::from(remaining)) as u32;
                let remaining = remaining - in_content;
                let padding = padding - (n as u32 - in_content);
                if in_content > 0 {
                    if let Content::Block { .. } = content
                        && let Some(block) = &mut self.block
                    {
                        block.len += in_content as usize;
                        block.cut = true;
                    }
                    // Nothing after a hole is kept (true prefixes).
                    if let Content::Settings { kept, .. } = &mut content {
                        kept.truncate(kept.len() - kept.len() % 6);
                    }
                }
                let lost = lost.saturating_add(in_content);
                if remaining > 0 || padding > 0 {
                    self.state = State::Body {
                        content,
                        remaining,
                        padding,
                        lost,
                    };
                } else if let Some(frame) = self.finish(content, lost) {
                    self.state = State::Complete(frame);
                }
                GapOutcome::Absorbed
            }
            _ => {
                self.lose();
                GapOutcome::MessageLost
            }
        }
    }

    /// Drops any frame or header block in progress and becomes idle (after
    /// an error or `MessageLost`); the next `decode` reports a
    /// [`Frame::Discontinuity`].
    pub fn reset(&mut self) {
        self.lose();
    }

    fn lose(&mut self) {
        self.state = State::Head;
        self.block = None;
        self.started = false;
        self.discontinuity = true;
    }

    /// Bytes this decoder holds (kept prefixes and the open header block).
    pub fn state_bytes(&self) -> usize {
        let body = match &self.state {
            State::Body {
                content: Content::Data { kept, .. } | Content::Settings { kept, .. },
                ..
            } => kept.capacity(),
            _ => 0,
        };
        let block = self.block.as_ref().map_or(0, |b| b.fragment.capacity());
        mem::size_of::<Self>() + body + block
    }
}

/// `Some(true)`: `input` starts with the preface; `Some(false)`: it is a
/// proper prefix of it (wait); `None`: it is not the preface.
fn preface_at(input: &[u8]) -> Option<bool> {
    let n = input.len().min(PREFACE.len());
    if n == 0 || input.get(..n)? != PREFACE.get(..n)? {
        return None;
    }
    Some(n == PREFACE.len())
}

/// Resync: the first offset in `input` where a frame plausibly starts (or,
/// for the client, where the preface starts). See [`plausible_frame_at`]
/// for what is plausible. `None` if there is none yet.
pub fn find_message_start(input: &[u8], kind: MessageKind) -> Option<usize> {
    (0..input.len()).find(|&at| {
        let rest = input.get(at..).unwrap_or_default();
        (kind == MessageKind::Request && rest.starts_with(PREFACE)) || plausible_frame_at(rest)
    })
}

/// Frames checked in a row by [`plausible_frame_at`].
const RESYNC_CHAIN: usize = 4;

/// A plausible frame boundary at the start of `input`: the frame and the
/// ones after it that `input` holds (up to 4) each have a known type, only
/// flags their type defines, a clear reserved bit, a length their type
/// allows (up to 1 MiB), padding that fits, a purpose (DATA without data
/// ends the stream, WINDOW_UPDATE increments), valid SETTINGS, and a header
/// block followed by its CONTINUATION frames only. The first frame is not a
/// CONTINUATION.
pub(crate) fn plausible_frame_at(input: &[u8]) -> bool {
    let mut at = 0;
    let mut open_block = None;
    for _ in 0..RESYNC_CHAIN {
        let Some(rest) = input.get(at..).filter(|r| r.len() >= HEADER_LEN) else {
            // The next header is not there yet: plausible as far as known.
            return at > 0;
        };
        let Some(h) = plausible_header(rest, open_block) else {
            return false;
        };
        open_block = (matches!(h.frame_type, HEADERS | PUSH_PROMISE | CONTINUATION)
            && !h.has(FLAG_END_HEADERS))
        .then_some(h.stream_id);
        at += HEADER_LEN + h.len as usize;
    }
    true
}

/// The header at the start of `input` if it is plausible; `continuation`
/// is the stream whose header block is open (only a CONTINUATION of it is
/// plausible then, and only then).
pub(crate) fn plausible_header(input: &[u8], continuation: Option<u32>) -> Option<FrameHeader> {
    let h = FrameHeader::parse(input)?;
    let reserved_clear = input.get(5).is_some_and(|b| b & 0x80 == 0);
    let flags_ok = frame::defined_flags(h.frame_type).is_some_and(|f| h.flags & !f == 0);
    let continues = h.frame_type == CONTINUATION;
    if !reserved_clear
        || !flags_ok
        || h.len > RESYNC_MAX_FRAME
        || continues != continuation.is_some()
        || continuation.is_some_and(|id| id != h.stream_id)
    {
        return None;
    }
    let layout = frame::layout(&h).ok()?;
    let payload = input.get(HEADER_LEN..).unwrap_or_default();
    let payload = payload.get(..h.len as usize).unwrap_or(payload);
    let purposeful = match h.frame_type {
        DATA => h.len > 0 || h.has(FLAG_END_STREAM),
        WINDOW_UPDATE => payload.get(..4).is_none_or(|i| i != [0; 4]),
        SETTINGS => frame::parse_settings(payload)
            .into_iter()
            .all(frame::setting_is_plausible),
        _ => true,
    };
    let padding_fits = !(matches!(h.frame_type, DATA | HEADERS | PUSH_PROMISE)
        && h.has(FLAG_PADDED)
        && payload
            .first()
            .is_some_and(|&pad| usize::from(pad) + layout.prologue > h.len as usize));
    (purposeful && padding_fits).then_some(h)
}

#[cfg(test)]
mod tests {
    use super::super::frame::FLAG_PRIORITY;
    use super::*;

    fn frame(frame_type: u8, flags: u8, stream_id: u32, payload: &[u8]) -> Vec<u8> {
        let len = payload.len() as u32;
        let mut out = len.to_be_bytes()[1..].to_vec();
        out.push(frame_type);
        out.push(flags);
        out.extend_from_slice(&stream_id.to_be_bytes());
        out.extend_from_slice(payload);
        out
    }

    fn decode_all(kind: MessageKind, input: &[u8]) -> Vec<Result<Frame, Http2Error>> {
        let mut d = Http2Decoder::new(kind, &Http2Config::default());
        let mut rest = input;
        let mut out = Vec::new();
        loop {
            match d.decode(rest) {
                Ok(Decoded::NeedMore) => return out,
                Ok(Decoded::Progress { consumed, message }) => {
                    rest = &rest[consumed..];
                    out.extend(message.map(Ok));
                    if rest.is_empty() && d.is_idle() {
                        return out;
                    }
                }
                Err(e) => {
                    out.push(Err(e));
                    return out;
                }
            }
        }
    }

    #[test]
    fn padded_and_prioritised_frames() {
        let mut s = frame(
            DATA,
            FLAG_PADDED | FLAG_END_STREAM,
            1,
            &[3, b'a', b'b', 0, 0, 0],
        );
        s.extend(frame(
            HEADERS,
            FLAG_PADDED | FLAG_PRIORITY | FLAG_END_HEADERS,
            3,
            &[2, 0, 0, 0, 1, 16, 0x82, 0, 0],
        ));
        s.extend(frame(
            PUSH_PROMISE,
            FLAG_END_HEADERS,
            3,
            &[0, 0, 0, 4, 0x82],
        ));
        assert_eq!(
            decode_all(MessageKind::Response, &s),
            vec![
                Ok(Frame::Data(DataFrame {
                    stream_id: 1,
                    end_stream: true,
                    len: 2,
                    prefix: b"ab".to_vec(),
                    lost: 0,
                })),
                Ok(Frame::Headers(HeaderBlock {
                    stream_id: 3,
                    end_stream: false,
                    fragment: vec![0x82],
                    len: 1,
                })),
                Ok(Frame::PushPromise {
                    promised_stream_id: 4,
                    block: HeaderBlock {
                        stream_id: 3,
                        end_stream: false,
                        fragment: vec![0x82],
                        len: 1,
                    },
                }),
            ]
        );
        // Padding longer than the frame.
        let bad = frame(DATA, FLAG_PADDED, 1, &[5, 0, 0]);
        assert_eq!(
            decode_all(MessageKind::Response, &bad),
            vec![Err(Http2Error::InvalidFrame)]
        );
    }

    #[test]
    fn continuation_rules() {
        let mut s = frame(HEADERS, FLAG_END_STREAM, 1, &[0x82]);
        s.extend(frame(CONTINUATION, 0, 1, &[0x84]));
        s.extend(frame(CONTINUATION, FLAG_END_HEADERS, 1, &[0x86]));
        assert_eq!(
            decode_all(MessageKind::Request, &s),
            vec![Ok(Frame::Headers(HeaderBlock {
                stream_id: 1,
                end_stream: true,
                fragment: vec![0x82, 0x84, 0x86],
                len: 3,
            }))]
        );
        let mut interrupted = frame(HEADERS, 0, 1, &[0x82]);
        interrupted.extend(frame(DATA, 0, 1, b"x"));
        assert_eq!(
            decode_all(MessageKind::Request, &interrupted),
            vec![Err(Http2Error::UnexpectedContinuation)]
        );
        let mut other_stream = frame(HEADERS, 0, 1, &[0x82]);
        other_stream.extend(frame(CONTINUATION, FLAG_END_HEADERS, 3, &[0x84]));
        assert_eq!(
            decode_all(MessageKind::Request, &other_stream),
            vec![Err(Http2Error::UnexpectedContinuation)]
        );
        assert_eq!(
            decode_all(MessageKind::Request, &frame(CONTINUATION, 4, 1, &[])),
            vec![Err(Http2Error::UnexpectedContinuation)]
        );
    }

    #[test]
    fn preface_only_from_the_client() {
        let mut s = PREFACE.to_vec();
        s.extend(frame(SETTINGS, 0, 0, &[0, 4, 0, 0, 0xff, 0xff]));
        let settings = Frame::Settings {
            ack: false,
            params: vec![frame::Setting {
                id: 4,
                value: 65535,
            }],
        };
        assert_eq!(
            decode_all(MessageKind::Request, &s),
            vec![Ok(Frame::Preface), Ok(settings)]
        );
        // From a server the preface is a 5 MB frame of unknown type 0x20.
        let mut d = Http2Decoder::new(MessageKind::Response, &Http2Config::default());
        assert_eq!(
            d.decode(&s),
            Ok(Decoded::Progress {
                consumed: s.len(),
                message: None
            })
        );
        d.set_max_frame_size(16_384);
        d.reset();
        assert_eq!(
            d.decode(&s),
            Ok(Decoded::Progress {
                consumed: 0,
                message: Some(Frame::Discontinuity)
            })
        );
        assert_eq!(d.decode(&s), Err(Http2Error::FrameTooLarge));
        assert!(!d.is_idle(), "the error's discontinuity is pending");
    }

    #[test]
    fn gaps_inside_bodies_keep_the_framing() {
        let config = Http2Config {
            data_frame_prefix_bytes: 4,
            ..Http2Config::default()
        };
        let mut d = Http2Decoder::new(MessageKind::Response, &config);
        let data = frame(
            DATA,
            FLAG_PADDED | FLAG_END_STREAM,
            5,
            &[2, 1, 2, 3, 4, 5, 6, 0, 0],
        );
        // Head and two bytes, then 5 bytes lost (3 data, 2 padding).
        assert_eq!(
            d.decode(&data[..12]),
            Ok(Decoded::Progress {
                consumed: 12,
                message: None
            })
        );
        assert!(!d.is_idle());
        assert_eq!(d.skip_gap(5), GapOutcome::Absorbed);
        assert!(!d.is_idle());
        assert_eq!(d.skip_gap(1), GapOutcome::Absorbed);
        assert_eq!(
            d.decode(&[]),
            Ok(Decoded::Progress {
                consumed: 0,
                message: Some(Frame::Data(DataFrame {
                    stream_id: 5,
                    end_stream: true,
                    len: 6,
                    prefix: vec![1, 2],
                    lost: 4,
                }))
            })
        );
        assert!(d.is_idle());
        // A gap between frames loses the framing.
        assert_eq!(d.skip_gap(1), GapOutcome::MessageLost);
        assert!(!d.is_idle());
        assert_eq!(
            d.decode(&[]),
            Ok(Decoded::Progress {
                consumed: 0,
                message: Some(Frame::Discontinuity)
            })
        );
        assert!(d.is_idle());
        // A gap inside a header block: handed out truncated.
        let mut s = frame(HEADERS, 0, 1, &[0x82, 0x84]);
        s.extend(frame(CONTINUATION, FLAG_END_HEADERS, 1, &[0x86]));
        assert_eq!(
            d.decode(&s[..10]),
            Ok(Decoded::Progress {
                consumed: 10,
                message: None
            })
        );
        assert_eq!(d.skip_gap(1), GapOutcome::Absorbed);
        assert_eq!(
            d.decode(&s[11..]),
            Ok(Decoded::Progress {
                consumed: 10,
                message: Some(Frame::Headers(HeaderBlock {
                    stream_id: 1,
                    end_stream: false,
                    fragment: vec![0x82],
                    len: 3,
                }))
            })
        );
    }

    #[test]
    fn header_block_cap() {
        let config = Http2Config {
            max_header_block_bytes: 2,
            ..Http2Config::default()
        };
        let mut d = Http2Decoder::new(MessageKind::Response, &config);
        let s = frame(HEADERS, FLAG_END_HEADERS, 1, &[1, 2, 3]);
        let Ok(Decoded::Progress {
            message: Some(Frame::Headers(block)),
            ..
        }) = d.decode(&s)
        else {
            panic!("no block");
        };
        assert_eq!((block.fragment, block.len), (vec![1, 2], 3));
    }

    #[test]
    fn resync_finds_frames() {
        let mut s = b"garbage\0\0".to_vec();
        let at = s.len();
        s.extend(frame(WINDOW_UPDATE, 0, 0, &[0, 0, 0x10, 0]));
        s.extend(frame(PING, 0, 0, &[0; 8]));
        assert_eq!(find_message_start(&s, MessageKind::Response), Some(at));
        let mut p = b"xx".to_vec();
        p.extend_from_slice(PREFACE);
        assert_eq!(find_message_start(&p, MessageKind::Request), Some(2));
        assert_eq!(find_message_start(&p, MessageKind::Response), None);
        // A plausible header followed by an implausible one is no boundary.
        let mut q = frame(DATA, 0, 1, b"ab");
        q.extend_from_slice(&[0xff; 9]);
        assert!(!plausible_frame_at(&q));
        assert_eq!(find_message_start(&[0; 64], MessageKind::Response), None);
        // Found in grpcio's traffic: the tail of a frame that reads as an
        // empty DATA frame, chained to a "DATA frame" made of a HEADERS
        // frame's bytes. Empty DATA without END_STREAM has no purpose.
        let tail = [
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0a, 0x00, 0x00, 0x26, 0x01, 0x04, 0x00, 0x00,
            0x00, 0x05, 0x40, 0x05, 0x3a, 0x70, 0x61, 0x74, 0x68, 0x17, 0x2f, 0x64, 0x65, 0x6d,
            0x6f, 0x2e, 0x45, 0x63, 0x68, 0x6f, 0x2f, 0x43, 0x6c, 0x69, 0x65, 0x6e,
        ];
        assert_eq!(find_message_start(&tail, MessageKind::Request), Some(7));
        // A chain of four frames must all be plausible.
        let mut r = frame(PING, 0, 0, &[0; 8]);
        r.extend(frame(PING, FLAG_ACK, 0, &[0; 8]));
        r.extend(frame(WINDOW_UPDATE, 0, 0, &[0, 0, 0, 1]));
        assert!(plausible_frame_at(&r));
        r.extend(frame(WINDOW_UPDATE, 0, 0, &[0, 0, 0, 0]));
        assert!(!plausible_frame_at(&r));
    }
}
