//! Incremental HTTP/1.x decoder.
//!
//! The caller owns the stream buffer: it hands [`HttpDecoder::decode`] the
//! bytes not consumed so far, drops the `consumed` prefix and calls again.
//! Heads are parsed once complete (so at most `max_head_bytes` are ever held
//! by the caller); bodies are consumed as they arrive and only a prefix is
//! kept, so a body of any size costs bounded memory.

mod body;
pub(crate) mod detect;
mod head;
mod pairing;

use std::fmt;
use std::mem;

use body::Body;
use compact_str::CompactString;

use crate::MessageKind;
use detect::{is_http_request_start, is_http_response_start};

use crate::held::{HeapSize, heap_bytes};
use crate::{Headers, REDACTED, RedactedNames};

/// Caps and policies of the decoder.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Longest accepted head (start line, headers, final empty line). Also
    /// bounds a chunk-size line and a trailer section. Default 16 KiB.
    pub max_head_bytes: usize,
    /// Most header fields accepted in one head. Default 64.
    pub max_headers: usize,
    /// How many bytes of the decoded body are kept. Default 1024.
    pub body_prefix_bytes: usize,
    /// Header names (compared case-insensitively) whose values are replaced
    /// by `<redacted>` before they leave the decoder.
    pub redacted_headers: RedactedNames,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            max_head_bytes: 16 * 1024,
            max_headers: 64,
            body_prefix_bytes: 1024,
            redacted_headers: [
                "authorization",
                "proxy-authorization",
                "cookie",
                "set-cookie",
                "x-api-key",
                "api-key",
                "x-auth-token",
            ]
            .into_iter()
            .collect(),
        }
    }
}

/// One decoded request or response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpMessage {
    pub kind: MessageKind,
    /// The `x` of `HTTP/1.x`; the major version is always 1.
    pub minor_version: u8,
    /// Request method; "" for responses.
    pub method: CompactString,
    /// Request target; "" for responses.
    pub path: CompactString,
    /// Response status; 0 for requests.
    pub status: u16,
    /// Response reason phrase (lossy UTF-8); "" for requests.
    pub reason: CompactString,
    /// Header fields in order, names as sent, values lossy UTF-8 and redacted
    /// per [`HttpConfig::redacted_headers`].
    pub headers: Headers,
    /// Value of Content-Type, or "".
    pub content_type: CompactString,
    /// The first `body_prefix_bytes` of the decoded body (chunked framing
    /// removed). Stops at the first gap, so it is always a true prefix.
    pub body: Vec<u8>,
    /// Full decoded body size, including bytes lost in gaps.
    pub body_size: u64,
    /// Part of the body was lost in a capture gap.
    pub body_incomplete: bool,
}

impl HeapSize for HttpMessage {
    fn heap_size(&self) -> usize {
        let strings = [&self.method, &self.path, &self.reason, &self.content_type];
        mem::size_of::<Self>() - mem::size_of::<Headers>()
            + strings.into_iter().map(heap_bytes).sum::<usize>()
            + self.headers.heap_size()
            + self.body.capacity()
    }
}

/// Why bytes could not be decoded. After an error the decoder is idle; the
/// caller resyncs with [`find_message_start`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpError {
    /// The start line or a header field is malformed, or a request has a
    /// Transfer-Encoding that does not end in chunked.
    InvalidHead,
    /// The head (or a chunked trailer section) exceeds `max_head_bytes`.
    HeadTooLarge,
    /// More than `max_headers` header fields.
    TooManyHeaders,
    /// Content-Length is not a decimal number, or several values disagree.
    InvalidContentLength,
    /// Malformed chunked framing.
    InvalidChunk,
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HttpError::InvalidHead => "invalid HTTP message head",
            HttpError::HeadTooLarge => "HTTP message head too large",
            HttpError::TooManyHeaders => "too many HTTP header fields",
            HttpError::InvalidContentLength => "invalid or conflicting Content-Length",
            HttpError::InvalidChunk => "invalid chunked transfer coding",
        })
    }
}

impl std::error::Error for HttpError {}

/// Outcome of one [`HttpDecoder::decode`] call.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded {
    /// Nothing consumed; more bytes are needed (e.g. the head is not complete yet).
    NeedMore,
    /// `consumed` bytes of the input belong to the current message; `message`
    /// is Some when it completed. `consumed` is 0 only when a message
    /// completed by a gap is handed out.
    Progress {
        consumed: usize,
        message: Option<Box<HttpMessage>>,
    },
}

pub use crate::GapOutcome;
pub use pairing::{HttpExchange, HttpPairing, ResponseOutcome};

/// What a response decoder must know of the request it answers: responses
/// to HEAD have no body, and a 2xx to CONNECT ends the HTTP stream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum AnsweredMethod {
    #[default]
    Other,
    Head,
    Connect,
}

impl AnsweredMethod {
    /// The framing class of a request method (compared exactly, as servers do).
    pub fn of(method: &str) -> Self {
        match method {
            "HEAD" => AnsweredMethod::Head,
            "CONNECT" => AnsweredMethod::Connect,
            _ => AnsweredMethod::Other,
        }
    }
}

#[derive(Debug, Default)]
enum State {
    /// Between messages.
    #[default]
    Idle,
    /// A partial head was seen: the caller holds the first bytes of the next
    /// message, so it is in progress (not idle) for start-time stamping.
    HeadStarted,
    /// Head parsed, body in progress.
    Body {
        message: Box<HttpMessage>,
        body: Body,
    },
    /// A gap consumed the rest of the body: the next `decode` hands this out.
    Complete(Box<HttpMessage>),
}

/// Incremental decoder of one direction of one HTTP/1.x connection.
#[derive(Debug)]
pub struct HttpDecoder {
    kind: MessageKind,
    config: HttpConfig,
    state: State,
}

impl HttpDecoder {
    pub fn new(kind: MessageKind, config: HttpConfig) -> Self {
        Self {
            kind,
            config,
            state: State::Idle,
        }
    }

    /// Bytes the message in progress keeps (its head and body prefix).
    pub fn held_bytes(&self) -> usize {
        match &self.state {
            State::Body { message, .. } | State::Complete(message) => message.heap_size(),
            State::Idle | State::HeadStarted => 0,
        }
    }

    pub fn kind(&self) -> MessageKind {
        self.kind
    }

    /// True between messages (no partial message in progress, including a
    /// partial head the caller is holding). The agent uses this to stamp a
    /// message's start time.
    pub fn is_idle(&self) -> bool {
        matches!(self.state, State::Idle)
    }

    /// Decodes from the start of `input`, the bytes of the stream not
    /// consumed by earlier calls. Completes at most one message per call; the
    /// caller loops while input remains and stops at `NeedMore`.
    ///
    /// `request_method` is, for a response decoder, the method of the request
    /// being answered (responses to HEAD have no body, 2xx to CONNECT end the
    /// HTTP stream). Ignored for requests.
    ///
    /// Framing follows RFC 9112: chunked, then Content-Length; requests
    /// without either have no body; responses without either run until
    /// [`finish`](Self::finish). After an error the decoder is idle.
    pub fn decode(
        &mut self,
        input: &[u8],
        request_method: Option<&str>,
    ) -> Result<Decoded, HttpError> {
        self.decode_answering(
            input,
            request_method.map(AnsweredMethod::of).unwrap_or_default(),
        )
    }

    /// [`decode`](Self::decode) with the answered request's method already
    /// classified (what the agent's pairing hands in).
    pub fn decode_answering(
        &mut self,
        input: &[u8],
        answering: AnsweredMethod,
    ) -> Result<Decoded, HttpError> {
        // Taking the state leaves the decoder idle if anything below fails.
        let (mut message, mut body, head_len) = match mem::take(&mut self.state) {
            State::Complete(message) => {
                return Ok(Decoded::Progress {
                    consumed: 0,
                    message: Some(message),
                });
            }
            State::Body { message, body } => (message, body, 0),
            idle @ (State::Idle | State::HeadStarted) if input.is_empty() => {
                self.state = idle;
                return Ok(Decoded::NeedMore);
            }
            State::Idle | State::HeadStarted => {
                let answering = match self.kind {
                    MessageKind::Request => AnsweredMethod::Other,
                    MessageKind::Response => answering,
                };
                match head::parse(input, self.kind, &self.config, answering)? {
                    Some(head) => (head.message, head.body, head.len),
                    None => {
                        self.state = State::HeadStarted;
                        return Ok(Decoded::NeedMore);
                    }
                }
            }
        };

        let rest = input.get(head_len..).unwrap_or_default();
        let cap = self.config.body_prefix_bytes;
        let fed = body.feed(rest, self.config.max_head_bytes, &mut |data| {
            append_body(&mut message, data, cap);
        })?;
        let consumed = head_len + fed.consumed;
        if fed.done {
            return Ok(Decoded::Progress {
                consumed,
                message: Some(message),
            });
        }
        self.state = State::Body { message, body };
        Ok(if consumed == 0 {
            Decoded::NeedMore
        } else {
            Decoded::Progress {
                consumed,
                message: None,
            }
        })
    }

    /// `n` bytes of the stream were lost (not captured).
    ///
    /// Absorbed when they certainly lie in body data of the message in
    /// progress: within the rest of a Content-Length body or of the current
    /// chunk, or in a close-delimited body. `body_size` still counts them and
    /// `body_incomplete` is set. If the gap ends the body exactly, the message
    /// is complete and the next `decode` call (even with empty input) returns
    /// it with `consumed: 0`.
    ///
    /// Otherwise, including when the decoder is idle (bytes of an unknown
    /// message were lost), returns `MessageLost` and the decoder is idle; the
    /// caller resyncs with [`find_message_start`]. A message already completed
    /// by an earlier gap is kept for the next `decode`. `n == 0` loses nothing
    /// and is `Absorbed`.
    pub fn skip_gap(&mut self, n: u64) -> GapOutcome {
        if n == 0 {
            return GapOutcome::Absorbed;
        }
        match mem::take(&mut self.state) {
            State::Body {
                mut message,
                mut body,
            } => {
                if !body.skip_gap(n) {
                    return GapOutcome::MessageLost;
                }
                message.body_size = message.body_size.saturating_add(n);
                message.body_incomplete = true;
                self.state = if body.is_done() {
                    State::Complete(message)
                } else {
                    State::Body { message, body }
                };
                GapOutcome::Absorbed
            }
            State::Complete(message) => {
                self.state = State::Complete(message);
                GapOutcome::MessageLost
            }
            State::Idle | State::HeadStarted => GapOutcome::MessageLost,
        }
    }

    /// The stream ended (connection closed). Completes a close-delimited body
    /// (or hands out a message completed by a gap); a truncated message of
    /// any other kind is dropped. The decoder becomes idle.
    pub fn finish(&mut self) -> Option<Box<HttpMessage>> {
        match mem::take(&mut self.state) {
            State::Complete(message)
            | State::Body {
                message,
                body: Body::UntilClose,
            } => Some(message),
            State::Body { .. } | State::Idle | State::HeadStarted => None,
        }
    }

    /// Drops any message in progress and becomes idle (after an error or
    /// `MessageLost`).
    pub fn reset(&mut self) {
        self.state = State::Idle;
    }
}

/// Records decoded body bytes: all are counted, the first `cap` kept. Once a
/// gap hit the body nothing more is kept, so `body` never splices bytes from
/// both sides of a hole.
fn append_body(message: &mut HttpMessage, data: &[u8], cap: usize) {
    message.body_size = message.body_size.saturating_add(data.len() as u64);
    if !message.body_incomplete {
        let room = cap.saturating_sub(message.body.len());
        message
            .body
            .extend_from_slice(data.get(..room).unwrap_or(data));
    }
}

/// Resync after a gap or parse error: the offset of the first plausible start
/// of a message of `kind` at a line start (offset 0, or just after "\n"): a
/// known method, a space and the start of a request target for requests;
/// "HTTP/1.x" and a space and a digit for responses.
///
/// `None` if there is none yet. The evidence needs up to 11 bytes (e.g.
/// "OPTIONS * ", "HTTP/1.1 2"), so a caller that discards data on `None`
/// should keep the last few bytes from the last "\n" on.
pub fn find_message_start(input: &[u8], kind: MessageKind) -> Option<usize> {
    let is_start = match kind {
        MessageKind::Request => is_http_request_start,
        MessageKind::Response => is_http_response_start,
    };
    let line_starts = input
        .iter()
        .enumerate()
        .filter(|&(_, &b)| b == b'\n')
        .map(|(i, _)| i + 1);
    std::iter::once(0)
        .chain(line_starts)
        .find(|&start| input.get(start..).is_some_and(is_start))
}
