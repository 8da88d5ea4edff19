//! Frame types handed out by the decoder, and the rules of a frame header:
//! which lengths, flags and stream ids each type allows and how its payload
//! is laid out. Shared by the decoder, resync and detection.

use super::Http2Error;
use crate::cursor::Cursor;

pub(crate) const DATA: u8 = 0x0;
pub(crate) const HEADERS: u8 = 0x1;
pub(crate) const PRIORITY: u8 = 0x2;
pub(crate) const RST_STREAM: u8 = 0x3;
pub(crate) const SETTINGS: u8 = 0x4;
pub(crate) const PUSH_PROMISE: u8 = 0x5;
pub(crate) const PING: u8 = 0x6;
pub(crate) const GOAWAY: u8 = 0x7;
pub(crate) const WINDOW_UPDATE: u8 = 0x8;
pub(crate) const CONTINUATION: u8 = 0x9;

/// END_STREAM on DATA and HEADERS; ACK on SETTINGS and PING.
pub(crate) const FLAG_END_STREAM: u8 = 0x1;
pub(crate) const FLAG_ACK: u8 = 0x1;
pub(crate) const FLAG_END_HEADERS: u8 = 0x4;
pub(crate) const FLAG_PADDED: u8 = 0x8;
pub(crate) const FLAG_PRIORITY: u8 = 0x20;

/// Frame header size.
pub(crate) const HEADER_LEN: usize = 9;

/// SETTINGS parameter identifiers (RFC 9113 section 6.5.2, RFC 8441, RFC 9218).
pub(crate) const SETTINGS_HEADER_TABLE_SIZE: u16 = 0x1;
pub(crate) const SETTINGS_ENABLE_PUSH: u16 = 0x2;
pub(crate) const SETTINGS_MAX_CONCURRENT_STREAMS: u16 = 0x3;
pub(crate) const SETTINGS_INITIAL_WINDOW_SIZE: u16 = 0x4;
pub(crate) const SETTINGS_MAX_FRAME_SIZE: u16 = 0x5;
pub(crate) const SETTINGS_MAX_HEADER_LIST_SIZE: u16 = 0x6;
pub(crate) const SETTINGS_ENABLE_CONNECT_PROTOCOL: u16 = 0x8;
pub(crate) const SETTINGS_NO_RFC7540_PRIORITIES: u16 = 0x9;

/// One decoded frame (HEADERS or PUSH_PROMISE with their CONTINUATION
/// frames count as one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// The client connection preface.
    Preface,
    Data(DataFrame),
    /// HEADERS and its CONTINUATION frames.
    Headers(HeaderBlock),
    /// PUSH_PROMISE and its CONTINUATION frames: `block.stream_id` is the
    /// associated stream, `promised_stream_id` the stream it reserves.
    PushPromise {
        promised_stream_id: u32,
        block: HeaderBlock,
    },
    Priority {
        stream_id: u32,
    },
    RstStream {
        stream_id: u32,
        error_code: u32,
    },
    Settings {
        ack: bool,
        /// Parameters in order (only those kept whole: a SETTINGS frame
        /// longer than 64 parameters, or hit by a gap, yields its first ones).
        params: Vec<Setting>,
    },
    Ping {
        ack: bool,
    },
    GoAway {
        last_stream_id: u32,
        error_code: u32,
    },
    WindowUpdate {
        stream_id: u32,
        increment: u32,
    },
    /// A frame of a type this decoder does not know (ignored, as RFC 9113
    /// requires).
    Unknown {
        frame_type: u8,
        stream_id: u32,
        len: u32,
    },
    /// Bytes of this direction were lost between frames (the decoder was
    /// reset): frames, and with them HPACK state, may be missing before the
    /// next frame.
    Discontinuity,
}

/// A DATA frame: its exact length and the first bytes of its data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataFrame {
    pub stream_id: u32,
    pub end_stream: bool,
    /// Data bytes (padding excluded), lost ones included.
    pub len: u32,
    /// The first `data_frame_prefix_bytes` of the data: a true prefix that
    /// stops at the first lost byte.
    pub prefix: Vec<u8>,
    /// Data bytes lost in capture gaps.
    pub lost: u32,
}

/// A header block: the HPACK-encoded fields of HEADERS or PUSH_PROMISE and
/// their CONTINUATION frames.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderBlock {
    pub stream_id: u32,
    /// END_STREAM was set on the HEADERS frame.
    pub end_stream: bool,
    /// The block, or its first `max_header_block_bytes` (stopping at the
    /// first lost byte).
    pub fragment: Vec<u8>,
    /// Length of the whole block on the wire.
    pub len: usize,
}

impl HeaderBlock {
    /// Part of the block is missing (over the cap, or lost in a gap).
    pub fn is_truncated(&self) -> bool {
        self.fragment.len() < self.len
    }
}

/// One SETTINGS parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setting {
    pub id: u16,
    pub value: u32,
}

/// The 9-byte frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FrameHeader {
    pub len: u32,
    pub frame_type: u8,
    pub flags: u8,
    /// With the reserved bit cleared.
    pub stream_id: u32,
}

impl FrameHeader {
    /// Reads a header from the start of `input` (`None` if shorter than 9).
    pub(crate) fn parse(input: &[u8]) -> Option<Self> {
        let mut c = Cursor::new(input);
        let [a, b, l] = c.array::<3>()?;
        let frame_type = c.u8()?;
        let flags = c.u8()?;
        let stream_id = c.u32_be()? & 0x7fff_ffff;
        Some(Self {
            len: u32::from_be_bytes([0, a, b, l]),
            frame_type,
            flags,
            stream_id,
        })
    }

    pub(crate) fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }
}

/// How a frame's payload is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Layout {
    /// Fixed fields read together with the header: pad length, priority,
    /// promised stream id, or the whole payload of small fixed-size frames.
    pub prologue: usize,
}

/// Checks a header against its type's rules (RFC 9113 section 6) and
/// returns the prologue size. Unknown types are accepted (they are skipped).
/// Padding is checked once the pad length is read.
pub(crate) fn layout(h: &FrameHeader) -> Result<Layout, Http2Error> {
    let padded = usize::from(h.has(FLAG_PADDED));
    let on_stream = h.stream_id != 0;
    let len = h.len as usize;
    let (ok, prologue) = match h.frame_type {
        DATA => (on_stream, padded),
        HEADERS => (on_stream, padded + 5 * usize::from(h.has(FLAG_PRIORITY))),
        PRIORITY => (on_stream && len == 5, 5),
        RST_STREAM => (on_stream && len == 4, 4),
        SETTINGS => (
            !on_stream && len.is_multiple_of(6) && !(h.has(FLAG_ACK) && len != 0),
            0,
        ),
        PUSH_PROMISE => (on_stream, padded + 4),
        PING => (!on_stream && len == 8, 8),
        GOAWAY => (!on_stream && len >= 8, 8),
        WINDOW_UPDATE => (len == 4, 4),
        CONTINUATION => (on_stream, 0),
        _ => (true, 0),
    };
    if !ok || prologue > len {
        return Err(Http2Error::InvalidFrame);
    }
    Ok(Layout { prologue })
}

/// Flags each known type defines; resync and detection reject others
/// (a real peer may set undefined flags, but a frame boundary found by
/// guessing must look exactly like what real stacks send).
pub(crate) fn defined_flags(frame_type: u8) -> Option<u8> {
    Some(match frame_type {
        DATA => FLAG_END_STREAM | FLAG_PADDED,
        HEADERS => FLAG_END_STREAM | FLAG_END_HEADERS | FLAG_PADDED | FLAG_PRIORITY,
        PRIORITY | RST_STREAM | GOAWAY | WINDOW_UPDATE => 0,
        SETTINGS | PING => FLAG_ACK,
        PUSH_PROMISE => FLAG_END_HEADERS | FLAG_PADDED,
        CONTINUATION => FLAG_END_HEADERS,
        _ => return None,
    })
}

/// Whether a SETTINGS parameter has an id this crate knows and a value its
/// definition allows.
pub(crate) fn setting_is_valid(s: Setting) -> bool {
    match s.id {
        SETTINGS_HEADER_TABLE_SIZE
        | SETTINGS_MAX_CONCURRENT_STREAMS
        | SETTINGS_MAX_HEADER_LIST_SIZE => true,
        SETTINGS_ENABLE_PUSH
        | SETTINGS_ENABLE_CONNECT_PROTOCOL
        | SETTINGS_NO_RFC7540_PRIORITIES => s.value <= 1,
        SETTINGS_INITIAL_WINDOW_SIZE => s.value <= 0x7fff_ffff,
        SETTINGS_MAX_FRAME_SIZE => {
            (super::DEFAULT_MAX_FRAME_SIZE..=super::MAX_FRAME_SIZE_LIMIT).contains(&s.value)
        }
        _ => false,
    }
}

/// A valid parameter, or one with an identifier this crate does not know
/// (peers must ignore those; gRPC stacks send some).
pub(crate) fn setting_is_plausible(s: Setting) -> bool {
    setting_is_valid(s) || !is_known_setting(s.id)
}

/// Identifiers RFC 9113, RFC 8441 and RFC 9218 define (7 is unassigned).
pub(crate) fn is_known_setting(id: u16) -> bool {
    (1..=9).contains(&id) && id != 7
}

/// SETTINGS parameters from whole 6-byte units of `payload`.
pub(crate) fn parse_settings(payload: &[u8]) -> Vec<Setting> {
    let mut c = Cursor::new(payload);
    let mut out = Vec::with_capacity(payload.len() / 6);
    while let (Some(id), Some(value)) = (c.u16_be(), c.u32_be()) {
        out.push(Setting { id, value });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_fields() {
        let h = FrameHeader::parse(&[0, 0x40, 0x01, 0x1, 0x25, 0x80, 0, 0, 3, 0xff]).unwrap();
        assert_eq!(
            h,
            FrameHeader {
                len: 0x4001,
                frame_type: HEADERS,
                flags: 0x25,
                stream_id: 3,
            }
        );
        assert!(h.has(FLAG_PRIORITY) && h.has(FLAG_END_HEADERS) && !h.has(FLAG_PADDED));
        assert_eq!(FrameHeader::parse(&[0; 8]), None);
    }

    #[test]
    fn layouts() {
        let h = |len, frame_type, flags, stream_id| FrameHeader {
            len,
            frame_type,
            flags,
            stream_id,
        };
        let cases = [
            (h(10, DATA, FLAG_PADDED, 1), Ok(1)),
            (h(0, DATA, FLAG_PADDED, 1), Err(Http2Error::InvalidFrame)),
            (h(0, DATA, 0, 0), Err(Http2Error::InvalidFrame)),
            (h(6, HEADERS, FLAG_PADDED | FLAG_PRIORITY, 1), Ok(6)),
            (
                h(5, HEADERS, FLAG_PADDED | FLAG_PRIORITY, 1),
                Err(Http2Error::InvalidFrame),
            ),
            (h(5, PRIORITY, 0, 1), Ok(5)),
            (h(4, PRIORITY, 0, 1), Err(Http2Error::InvalidFrame)),
            (h(4, RST_STREAM, 0, 0), Err(Http2Error::InvalidFrame)),
            (h(12, SETTINGS, 0, 0), Ok(0)),
            (h(7, SETTINGS, 0, 0), Err(Http2Error::InvalidFrame)),
            (h(6, SETTINGS, FLAG_ACK, 0), Err(Http2Error::InvalidFrame)),
            (h(0, SETTINGS, 0, 1), Err(Http2Error::InvalidFrame)),
            (h(8, PING, 0, 0), Ok(8)),
            (h(8, PING, 0, 1), Err(Http2Error::InvalidFrame)),
            (h(20, GOAWAY, 0, 0), Ok(8)),
            (h(7, GOAWAY, 0, 0), Err(Http2Error::InvalidFrame)),
            (h(4, WINDOW_UPDATE, 0, 0), Ok(4)),
            (h(4, WINDOW_UPDATE, 0, 5), Ok(4)),
            (h(5, PUSH_PROMISE, FLAG_PADDED, 2), Ok(5)),
            (h(0, CONTINUATION, 0, 0), Err(Http2Error::InvalidFrame)),
            (h(100, 0xfa, 0xff, 0), Ok(0)),
        ];
        for (header, want) in cases {
            assert_eq!(layout(&header).map(|l| l.prologue), want, "{header:?}");
        }
    }

    #[test]
    fn settings() {
        let payload = [0, 1, 0, 0, 0x10, 0, 0, 5, 0, 0, 0x40, 0, 9, 9];
        assert_eq!(
            parse_settings(&payload),
            vec![
                Setting { id: 1, value: 4096 },
                Setting {
                    id: 5,
                    value: 16384
                }
            ]
        );
        assert!(setting_is_valid(Setting {
            id: 5,
            value: 16384
        }));
        assert!(!setting_is_valid(Setting {
            id: 5,
            value: 16383
        }));
        assert!(!setting_is_valid(Setting { id: 2, value: 2 }));
        assert!(!setting_is_valid(Setting { id: 7, value: 0 }));
    }
}
