//! The incremental RESP2/RESP3 decoder.
//!
//! Lines (type byte and length, simple strings, errors, numbers) are parsed
//! once complete, so the caller holds at most `max_line_bytes` of an
//! incomplete line. Bulk payloads are consumed as they arrive and only a
//! prefix is kept; aggregates are built on an explicit stack (no recursion),
//! so hostile nesting costs neither stack nor unbounded memory.

use std::mem;

use super::command::redact_request;
use super::{Aggregate, BulkString, RespConfig, RespError, RespValue};
use crate::text::lossy_capped;
use crate::{Decoded, GapOutcome, MessageKind};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AggKind {
    Array,
    Map,
    Set,
    Push,
    /// RESP3 attribute: parsed, then dropped.
    Attribute,
    /// RESP3 streamed string (`$?`): its parts are appended to `bulk`.
    StreamedString,
}

/// An aggregate in progress.
#[derive(Debug)]
struct Frame {
    kind: AggKind,
    /// Elements still expected; `None` for a streamed aggregate, which ends
    /// with a `.` line.
    remaining: Option<u64>,
    items: Vec<RespValue>,
    /// Elements seen so far.
    seen: u64,
    /// Whether this value is kept (so whether its children may be).
    keep: bool,
    /// Parts of a streamed string.
    bulk: BulkString,
}

impl Frame {
    fn into_value(self) -> Option<RespValue> {
        let agg = Aggregate {
            items: self.items,
            len: self.seen,
        };
        Some(match self.kind {
            AggKind::Array => RespValue::Array(agg),
            AggKind::Map => RespValue::Map(agg),
            AggKind::Set => RespValue::Set(agg),
            AggKind::Push => RespValue::Push(agg),
            AggKind::StreamedString => RespValue::BulkString(self.bulk),
            AggKind::Attribute => return None,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PayloadKind {
    Bulk,
    BlobError,
    Verbatim,
    /// A part of the streamed string on top of the stack.
    Part,
}

/// A length-prefixed payload in progress.
#[derive(Debug)]
struct Payload {
    kind: PayloadKind,
    remaining: u64,
    /// Bytes of the final CRLF still to read.
    crlf_left: u8,
    keep: bool,
    bulk: BulkString,
}

#[derive(Debug, Default)]
enum State {
    /// At the start of a line.
    #[default]
    Line,
    Payload(Payload),
}

/// Incremental decoder of one direction of one Redis connection.
#[derive(Debug)]
pub struct RespDecoder {
    kind: MessageKind,
    config: RespConfig,
    state: State,
    stack: Vec<Frame>,
    /// Values kept so far in the current top-level value.
    kept: usize,
    /// A partial value (or line) is held by the caller or by the decoder.
    started: bool,
    /// A value completed by a gap, handed out by the next `decode`.
    ready: Option<RespValue>,
}

impl RespDecoder {
    /// A decoder for requests (client to server: arrays of bulk strings or
    /// inline commands; secrets are redacted before values leave) or
    /// responses (any RESP2/RESP3 value).
    pub fn new(kind: MessageKind, config: RespConfig) -> Self {
        Self {
            kind,
            config,
            state: State::Line,
            stack: Vec::new(),
            kept: 0,
            started: false,
            ready: None,
        }
    }

    pub fn kind(&self) -> MessageKind {
        self.kind
    }

    /// True between values (nothing partial held by the decoder or, as far as
    /// it knows, by the caller). The agent uses this to stamp start times.
    pub fn is_idle(&self) -> bool {
        !self.started
            && self.ready.is_none()
            && self.stack.is_empty()
            && matches!(self.state, State::Line)
    }

    /// Decodes from the start of `input`, the bytes of the stream not
    /// consumed so far. Completes at most one top-level value per call; the
    /// caller loops while input remains and stops at `NeedMore`. After an
    /// error the decoder is idle.
    pub fn decode(&mut self, input: &[u8]) -> Result<Decoded<RespValue>, RespError> {
        if let Some(value) = self.ready.take() {
            self.started = false;
            return Ok(Decoded::Progress {
                consumed: 0,
                message: Some(value),
            });
        }
        match self.run(input) {
            Ok((consumed, Some(mut value))) => {
                if self.kind == MessageKind::Request {
                    redact_request(&mut value);
                }
                self.started = false;
                self.kept = 0;
                Ok(Decoded::Progress {
                    consumed,
                    message: Some(value),
                })
            }
            Ok((0, None)) => {
                self.started |= !input.is_empty();
                Ok(Decoded::NeedMore)
            }
            Ok((consumed, None)) => {
                self.started = true;
                Ok(Decoded::Progress {
                    consumed,
                    message: None,
                })
            }
            Err(err) => {
                self.reset();
                Err(err)
            }
        }
    }

    /// Consumes input until a top-level value completes or the input ends.
    fn run(&mut self, input: &[u8]) -> Result<(usize, Option<RespValue>), RespError> {
        let mut pos = 0;
        loop {
            let rest = input.get(pos..).unwrap_or_default();
            if rest.is_empty() {
                return Ok((pos, None));
            }
            let done = if matches!(self.state, State::Payload(_)) {
                let (used, finished) = self.feed_payload(rest)?;
                pos += used;
                if !finished {
                    return Ok((pos, None));
                }
                match mem::take(&mut self.state) {
                    State::Payload(payload) => self.finish_payload(payload),
                    State::Line => None,
                }
            } else if self.kind == MessageKind::Request
                && self.stack.is_empty()
                && rest.first() != Some(&b'*')
            {
                match self.inline(rest)? {
                    None => return Ok((pos, None)),
                    Some((used, value)) => {
                        pos += used;
                        value
                    }
                }
            } else {
                let Some(line) = self.line(rest)? else {
                    return Ok((pos, None));
                };
                pos += line.len() + 2;
                self.handle_line(line)?
            };
            if let Some(value) = done {
                return Ok((pos, Some(value)));
            }
        }
    }

    /// A complete CRLF-terminated line at the start of `rest` (without the
    /// CRLF), or `None` if it has not fully arrived.
    fn line<'a>(&self, rest: &'a [u8]) -> Result<Option<&'a [u8]>, RespError> {
        let window = rest
            .get(..self.config.max_line_bytes.saturating_add(2))
            .unwrap_or(rest);
        match window.iter().position(|&b| b == b'\n') {
            Some(nl) => match nl.checked_sub(1).and_then(|cr| rest.get(cr)) {
                Some(b'\r') => Ok(rest.get(..nl - 1)),
                _ => Err(RespError::InvalidTerminator),
            },
            None if window.len() >= self.config.max_line_bytes.saturating_add(2) => {
                Err(RespError::LineTooLong)
            }
            None => Ok(None),
        }
    }

    /// An inline command (a request not starting with `*`): a line split on
    /// spaces and tabs, ended by LF with an optional CR. Returns the bytes
    /// used and the command, `None` inside for an empty line.
    fn inline(&self, rest: &[u8]) -> Result<Option<(usize, Option<RespValue>)>, RespError> {
        let max = self.config.max_line_bytes;
        let window = rest.get(..max.saturating_add(1)).unwrap_or(rest);
        let Some(nl) = window.iter().position(|&b| b == b'\n') else {
            return if window.len() > max {
                Err(RespError::LineTooLong)
            } else {
                Ok(None)
            };
        };
        let line = rest.get(..nl).unwrap_or_default();
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let mut words = line
            .split(|&b| b == b' ' || b == b'\t')
            .filter(|w| !w.is_empty());
        let mut items = Vec::new();
        let mut seen = 0u64;
        for word in words.by_ref() {
            seen += 1;
            if items.len() < self.config.max_elements {
                items.push(RespValue::BulkString(BulkString {
                    data: word
                        .get(..self.config.max_kept_bytes)
                        .unwrap_or(word)
                        .to_vec(),
                    len: word.len() as u64,
                    incomplete: false,
                }));
            }
        }
        let value = (seen > 0).then_some(RespValue::Array(Aggregate { items, len: seen }));
        Ok(Some((nl + 1, value)))
    }

    /// Whether a value starting now (as the next element of the top frame)
    /// is kept.
    fn child_keep(&mut self) -> bool {
        let keep = match self.stack.last() {
            None => true,
            Some(top) => {
                top.keep
                    && top.kind != AggKind::Attribute
                    && top.items.len() < self.config.max_elements
                    && self.kept < self.config.max_total_elements
            }
        };
        if keep && !self.stack.is_empty() {
            self.kept += 1;
        }
        keep
    }

    fn handle_line(&mut self, line: &[u8]) -> Result<Option<RespValue>, RespError> {
        let Some((&tag, body)) = line.split_first() else {
            return Err(RespError::InvalidType);
        };
        if self
            .stack
            .last()
            .is_some_and(|top| top.kind == AggKind::StreamedString)
        {
            return self.stream_part(tag, body);
        }
        let cap = self.config.max_kept_bytes;
        let text = |body: &[u8]| lossy_capped(body, cap);
        let scalar = match tag {
            b'+' => RespValue::SimpleString(text(body)),
            b'-' => RespValue::Error(text(body)),
            b':' => RespValue::Integer(parse_i64(body).ok_or(RespError::InvalidNumber)?),
            b'_' if body.is_empty() => RespValue::Null,
            b'_' => return Err(RespError::InvalidNumber),
            b',' if is_double(body) => RespValue::Double(text(body)),
            b',' => return Err(RespError::InvalidNumber),
            b'(' if is_big_number(body) => RespValue::BigNumber(text(body)),
            b'(' => return Err(RespError::InvalidNumber),
            b'#' => match body {
                b"t" => RespValue::Boolean(true),
                b"f" => RespValue::Boolean(false),
                _ => return Err(RespError::InvalidNumber),
            },
            b'$' | b'!' | b'=' => return self.start_payload(tag, body),
            b'*' | b'%' | b'~' | b'>' | b'|' => return self.start_aggregate(tag, body),
            b'.' if body.is_empty() => return self.end_stream(),
            b'.' | b';' => return Err(RespError::UnexpectedStreamPart),
            _ => return Err(RespError::InvalidType),
        };
        let keep = self.child_keep();
        Ok(self.complete(scalar, keep))
    }

    fn start_payload(&mut self, tag: u8, body: &[u8]) -> Result<Option<RespValue>, RespError> {
        if tag == b'$' && body == b"?" {
            return self.push_frame(AggKind::StreamedString, None);
        }
        let len = match parse_i64(body) {
            Some(-1) => {
                let keep = self.child_keep();
                return Ok(self.complete(RespValue::Null, keep));
            }
            Some(len) => u64::try_from(len).map_err(|_| RespError::InvalidLength)?,
            None => return Err(RespError::InvalidLength),
        };
        if len > self.config.max_bulk_len || (tag == b'=' && len < 4) {
            return Err(RespError::InvalidLength);
        }
        let keep = self.child_keep();
        let kind = match tag {
            b'!' => PayloadKind::BlobError,
            b'=' => PayloadKind::Verbatim,
            _ => PayloadKind::Bulk,
        };
        self.state = State::Payload(Payload {
            kind,
            remaining: len,
            crlf_left: 2,
            keep,
            bulk: BulkString {
                data: Vec::new(),
                len,
                incomplete: false,
            },
        });
        Ok(None)
    }

    fn start_aggregate(&mut self, tag: u8, body: &[u8]) -> Result<Option<RespValue>, RespError> {
        let kind = match tag {
            b'%' => AggKind::Map,
            b'~' => AggKind::Set,
            b'>' => AggKind::Push,
            b'|' => AggKind::Attribute,
            _ => AggKind::Array,
        };
        if body == b"?" && kind != AggKind::Attribute {
            return self.push_frame(kind, None);
        }
        let count = match parse_i64(body) {
            Some(-1) if kind != AggKind::Attribute => {
                let keep = self.child_keep();
                return Ok(self.complete(RespValue::Null, keep));
            }
            Some(n) => u64::try_from(n).map_err(|_| RespError::InvalidLength)?,
            None => return Err(RespError::InvalidLength),
        };
        let count = match kind {
            AggKind::Map | AggKind::Attribute => count.checked_mul(2),
            _ => Some(count),
        }
        .filter(|&n| n <= self.config.max_aggregate_len)
        .ok_or(RespError::InvalidLength)?;
        self.push_frame(kind, Some(count))
    }

    fn push_frame(
        &mut self,
        kind: AggKind,
        remaining: Option<u64>,
    ) -> Result<Option<RespValue>, RespError> {
        if self.stack.len() >= self.config.max_depth {
            return Err(RespError::TooDeep);
        }
        let keep = kind != AggKind::Attribute && self.child_keep();
        let frame = Frame {
            kind,
            remaining,
            items: Vec::new(),
            seen: 0,
            keep,
            bulk: BulkString::default(),
        };
        if remaining == Some(0) {
            return Ok(match frame.into_value() {
                Some(value) => self.complete(value, keep),
                None => None,
            });
        }
        self.stack.push(frame);
        Ok(None)
    }

    /// A line inside a streamed string: `;N` starts a part, `;0` ends it.
    fn stream_part(&mut self, tag: u8, body: &[u8]) -> Result<Option<RespValue>, RespError> {
        if tag != b';' {
            return Err(RespError::UnexpectedStreamPart);
        }
        let len = parse_i64(body)
            .and_then(|n| u64::try_from(n).ok())
            .ok_or(RespError::InvalidLength)?;
        let Some(top) = self.stack.last_mut() else {
            return Err(RespError::UnexpectedStreamPart);
        };
        if len == 0 {
            return self.end_stream();
        }
        top.bulk.len = top
            .bulk
            .len
            .checked_add(len)
            .filter(|&n| n <= self.config.max_bulk_len)
            .ok_or(RespError::InvalidLength)?;
        self.state = State::Payload(Payload {
            kind: PayloadKind::Part,
            remaining: len,
            crlf_left: 2,
            keep: top.keep,
            bulk: BulkString::default(),
        });
        Ok(None)
    }

    /// The end of a streamed aggregate (`.`) or string (`;0`).
    fn end_stream(&mut self) -> Result<Option<RespValue>, RespError> {
        match self.stack.last() {
            Some(top) if top.remaining.is_none() => {}
            _ => return Err(RespError::UnexpectedStreamPart),
        }
        let Some(frame) = self.stack.pop() else {
            return Err(RespError::UnexpectedStreamPart);
        };
        let keep = frame.keep;
        Ok(match frame.into_value() {
            Some(value) => self.complete(value, keep),
            None => None,
        })
    }

    /// Consumes payload bytes and the CRLF after them. Returns the bytes used
    /// and whether the payload is complete.
    fn feed_payload(&mut self, rest: &[u8]) -> Result<(usize, bool), RespError> {
        let cap = self.config.max_kept_bytes;
        let State::Payload(payload) = &mut self.state else {
            return Ok((0, true));
        };
        let n = usize::try_from(payload.remaining)
            .unwrap_or(usize::MAX)
            .min(rest.len());
        let data = rest.get(..n).unwrap_or_default();
        let target = match payload.kind {
            PayloadKind::Part => self.stack.last_mut().map(|f| &mut f.bulk),
            _ => Some(&mut payload.bulk),
        };
        if payload.keep
            && let Some(target) = target
            && !target.incomplete
        {
            let room = cap.saturating_sub(target.data.len());
            target
                .data
                .extend_from_slice(data.get(..room).unwrap_or(data));
        }
        payload.remaining -= n as u64;
        let mut used = n;
        while payload.remaining == 0 && payload.crlf_left > 0 {
            let Some(&byte) = rest.get(used) else {
                break;
            };
            let want = if payload.crlf_left == 2 { b'\r' } else { b'\n' };
            if byte != want {
                return Err(RespError::InvalidTerminator);
            }
            payload.crlf_left -= 1;
            used += 1;
        }
        Ok((used, payload.remaining == 0 && payload.crlf_left == 0))
    }

    fn finish_payload(&mut self, payload: Payload) -> Option<RespValue> {
        let value = match payload.kind {
            PayloadKind::Part => return None,
            PayloadKind::Bulk => RespValue::BulkString(payload.bulk),
            PayloadKind::BlobError => RespValue::BlobError(payload.bulk),
            PayloadKind::Verbatim => RespValue::Verbatim(payload.bulk),
        };
        self.complete(value, payload.keep)
    }

    /// A value is complete: adds it to its parent, completing parents in
    /// turn. Returns the top-level value once it is complete.
    fn complete(&mut self, mut value: RespValue, mut keep: bool) -> Option<RespValue> {
        loop {
            let Some(top) = self.stack.last_mut() else {
                return Some(value);
            };
            top.seen += 1;
            if keep {
                top.items.push(value);
            }
            match &mut top.remaining {
                Some(remaining) => {
                    *remaining -= 1;
                    if *remaining > 0 {
                        return None;
                    }
                }
                None => return None,
            }
            let frame = self.stack.pop()?;
            keep = frame.keep;
            value = frame.into_value()?;
        }
    }

    /// `n` bytes of the stream were lost. Absorbed when they certainly lie in
    /// the payload (or its final CRLF) of the bulk string in progress: its
    /// `len` still counts them and `incomplete` is set. If the gap ends the
    /// value, the next `decode` (even with empty input) returns it with
    /// `consumed: 0`. Otherwise `MessageLost`: the decoder is idle and the
    /// caller resyncs. `n == 0` is `Absorbed`.
    pub fn skip_gap(&mut self, n: u64) -> GapOutcome {
        if n == 0 {
            return GapOutcome::Absorbed;
        }
        if self.ready.is_some() {
            return GapOutcome::MessageLost;
        }
        let State::Payload(payload) = &mut self.state else {
            self.reset();
            return GapOutcome::MessageLost;
        };
        if n > payload.remaining + u64::from(payload.crlf_left) {
            self.reset();
            return GapOutcome::MessageLost;
        }
        let in_data = n.min(payload.remaining);
        payload.remaining -= in_data;
        payload.crlf_left -= u8::try_from(n - in_data).unwrap_or(payload.crlf_left);
        let target = match payload.kind {
            PayloadKind::Part => self.stack.last_mut().map(|f| &mut f.bulk),
            _ => Some(&mut payload.bulk),
        };
        if let Some(target) = target {
            target.incomplete = true;
        }
        if payload.remaining == 0 && payload.crlf_left == 0 {
            let State::Payload(payload) = mem::take(&mut self.state) else {
                return GapOutcome::Absorbed;
            };
            if let Some(mut value) = self.finish_payload(payload) {
                if self.kind == MessageKind::Request {
                    redact_request(&mut value);
                }
                self.kept = 0;
                self.ready = Some(value);
            }
        }
        GapOutcome::Absorbed
    }

    /// The stream ended: hands out a value completed by a gap, drops a
    /// partial one. The decoder becomes idle.
    pub fn finish(&mut self) -> Option<RespValue> {
        let ready = self.ready.take();
        self.reset();
        ready
    }

    /// Drops any value in progress and becomes idle.
    pub fn reset(&mut self) {
        self.state = State::Line;
        self.stack.clear();
        self.kept = 0;
        self.started = false;
        self.ready = None;
    }
}

/// A RESP integer: optional '-' (or '+'), then 1 to 19 digits, no overflow.
pub(super) fn parse_i64(body: &[u8]) -> Option<i64> {
    let (neg, digits) = match body.split_first() {
        Some((b'-', rest)) => (true, rest),
        Some((b'+', rest)) => (false, rest),
        _ => (false, body),
    };
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut value: i64 = 0;
    for &d in digits {
        let d = i64::from(d - b'0');
        value = value.checked_mul(10)?;
        value = if neg {
            value.checked_sub(d)?
        } else {
            value.checked_add(d)?
        };
    }
    Some(value)
}

fn is_double(body: &[u8]) -> bool {
    matches!(body, b"inf" | b"-inf" | b"nan" | b"-nan")
        || (!body.is_empty()
            && body.len() <= 64
            && body
                .iter()
                .all(|b| b.is_ascii_digit() || matches!(b, b'-' | b'+' | b'.' | b'e' | b'E'))
            && body.iter().any(u8::is_ascii_digit))
}

fn is_big_number(body: &[u8]) -> bool {
    let digits = body.strip_prefix(b"-").unwrap_or(body);
    !digits.is_empty() && digits.iter().all(u8::is_ascii_digit)
}
