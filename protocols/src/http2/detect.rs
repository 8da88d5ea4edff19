//! Evidence that bytes start an HTTP/2 connection, and which side of one
//! sent a frame.
//!
//! - [`preface_verdict`]: the client's preface, 24 fixed bytes (strong).
//! - [`server_preface_verdict`]: a server's first frame, SETTINGS on stream
//!   0 with a length that is a multiple of 6 and parameters that make sense
//!   (strong once all are there; weak with unknown identifiers).
//! - [`frames_verdict`]: frames in the middle of a connection (a connection
//!   opened before the capture): two chained plausible frame headers are
//!   weak evidence (only a port hint should pick it).

use super::PREFACE;
use super::decoder::plausible_frame_at;
use super::frame::{self, FrameHeader, HEADER_LEN, SETTINGS};
use super::{Frame, HeaderBlock};
use crate::MessageKind;
use crate::Verdict;

/// The client connection preface.
#[cfg_attr(
    not(test),
    expect(dead_code, reason = "wired into crate::detect on main")
)]
pub(crate) fn preface_verdict(input: &[u8]) -> Verdict {
    let n = input.len().min(PREFACE.len());
    if input.get(..n) != PREFACE.get(..n) {
        Verdict::No
    } else if n == PREFACE.len() {
        Verdict::Strong
    } else {
        Verdict::Maybe
    }
}

/// A server's first frame: SETTINGS (not an ACK) on stream 0.
#[cfg_attr(
    not(test),
    expect(dead_code, reason = "wired into crate::detect on main")
)]
pub(crate) fn server_preface_verdict(input: &[u8]) -> Verdict {
    // The fixed bytes of the header: type, flags, stream id; the length's
    // top byte is 0 (at most 2730 parameters fit in the default frame size).
    let fixed = [
        (0, 0u8),
        (3, SETTINGS),
        (4, 0),
        (5, 0),
        (6, 0),
        (7, 0),
        (8, 0),
    ];
    if fixed
        .iter()
        .any(|&(at, want)| input.get(at).is_some_and(|&b| b != want))
    {
        return Verdict::No;
    }
    let Some(h) = FrameHeader::parse(input) else {
        return Verdict::Maybe;
    };
    if !h.len.is_multiple_of(6) || h.len > 16_384 {
        return Verdict::No;
    }
    let Some(payload) = input.get(HEADER_LEN..HEADER_LEN + h.len as usize) else {
        return Verdict::Maybe;
    };
    let params = frame::parse_settings(payload);
    let mut all_known = true;
    for p in params {
        if frame::setting_is_valid(p) {
            continue;
        }
        // A known identifier with a bad value is not what a server sends;
        // an unknown identifier is legal but weaker evidence.
        if frame::is_known_setting(p.id) {
            return Verdict::No;
        }
        all_known = false;
    }
    if all_known {
        Verdict::Strong
    } else {
        Verdict::Weak
    }
}

/// Frames in the middle of a connection: a plausible frame header whose
/// successor is plausible too (both must be there).
#[cfg_attr(
    not(test),
    expect(dead_code, reason = "wired into crate::detect on main")
)]
pub(crate) fn frames_verdict(input: &[u8]) -> Verdict {
    let Some(h) = FrameHeader::parse(input) else {
        return if input.len() < HEADER_LEN && !input.is_empty() {
            Verdict::Maybe
        } else {
            Verdict::No
        };
    };
    let next = HEADER_LEN + h.len as usize;
    if !plausible_frame_at(input) {
        return Verdict::No;
    }
    if input.len() < next + HEADER_LEN {
        // The successor is not there yet: plausible so far, undecided. A
        // frame longer than a typical head copy keeps this open, so cap it.
        return if h.len <= 16_384 {
            Verdict::Maybe
        } else {
            Verdict::No
        };
    }
    Verdict::Weak
}

/// Which side sent a header block, from its first field (static table
/// names only, so it works without the dynamic table): request
/// pseudo-headers (`:method`, `:scheme`, `:path`, `:authority`) come from
/// the client, `:status` from the server. None when the block does not
/// start with a pseudo-header this can read.
pub fn header_block_sender(block: &[u8]) -> Option<MessageKind> {
    let mut c = crate::cursor::Cursor::new(block);
    // Skip dynamic table size updates.
    while c.peek()? & 0xe0 == 0x20 {
        read_int(&mut c, 5)?;
    }
    let b = c.peek()?;
    let index = if b & 0x80 != 0 {
        read_int(&mut c, 7)?
    } else if b & 0xc0 == 0x40 {
        read_int(&mut c, 6)?
    } else {
        read_int(&mut c, 4)?
    };
    match super::hpack::static_name(index)? {
        ":method" | ":scheme" | ":path" | ":authority" => Some(MessageKind::Request),
        ":status" => Some(MessageKind::Response),
        _ => None,
    }
}

/// Which side sent `frame`, when the frame alone says so: the preface and
/// header blocks led by request pseudo-headers come from the client;
/// PUSH_PROMISE and blocks led by `:status` from the server. How the
/// collector tells the client side of a connection it joined mid-way.
pub fn frame_sender(frame: &Frame) -> Option<MessageKind> {
    match frame {
        Frame::Preface => Some(MessageKind::Request),
        Frame::PushPromise { .. } => Some(MessageKind::Response),
        Frame::Headers(HeaderBlock { fragment, .. }) => header_block_sender(fragment),
        _ => None,
    }
}

fn read_int(c: &mut crate::cursor::Cursor<'_>, n: u32) -> Option<u64> {
    let mask = u8::MAX >> (8 - n);
    let mut value = u64::from(c.u8()? & mask);
    if value < u64::from(mask) {
        return Some(value);
    }
    for shift in (0..35).step_by(7) {
        let b = c.u8()?;
        value += u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preface() {
        assert_eq!(preface_verdict(PREFACE), Verdict::Strong);
        assert_eq!(
            preface_verdict(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0"),
            Verdict::Strong
        );
        assert_eq!(preface_verdict(b"PRI * HT"), Verdict::Maybe);
        assert_eq!(preface_verdict(b"PRI * HTTP/1.1"), Verdict::No);
        assert_eq!(preface_verdict(b"GET / HTTP/1.1"), Verdict::No);
    }

    #[test]
    fn server_settings() {
        // nginx: MAX_CONCURRENT_STREAMS 128, INITIAL_WINDOW_SIZE 65536,
        // MAX_FRAME_SIZE 16777215.
        let nginx = [
            0, 0, 18, 4, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 128, 0, 4, 0, 1, 0, 0, 0, 5, 0, 255, 255,
            255,
        ];
        assert_eq!(server_preface_verdict(&nginx), Verdict::Strong);
        for n in 1..nginx.len() {
            assert_eq!(
                server_preface_verdict(&nginx[..n]),
                Verdict::Maybe,
                "prefix {n}"
            );
        }
        assert_eq!(
            server_preface_verdict(&[0, 0, 0, 4, 0, 0, 0, 0, 0]),
            Verdict::Strong
        );
        // Unknown identifier: weak; a known one with a bad value: no.
        assert_eq!(
            server_preface_verdict(&[0, 0, 6, 4, 0, 0, 0, 0, 0, 0, 0x20, 0, 0, 0, 1]),
            Verdict::Weak
        );
        assert_eq!(
            server_preface_verdict(&[0, 0, 6, 4, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 7]),
            Verdict::No
        );
        // ACK, length not a multiple of 6, other stream, other type.
        assert_eq!(server_preface_verdict(&[0, 0, 0, 4, 1]), Verdict::No);
        assert_eq!(
            server_preface_verdict(&[0, 0, 5, 4, 0, 0, 0, 0, 0]),
            Verdict::No
        );
        assert_eq!(
            server_preface_verdict(&[0, 0, 0, 4, 0, 0, 0, 0, 1]),
            Verdict::No
        );
        assert_eq!(server_preface_verdict(b"HTTP/1.1 200 OK"), Verdict::No);
        assert_eq!(server_preface_verdict(b"+OK\r\n"), Verdict::No);
    }

    #[test]
    fn mid_connection_frames() {
        // WINDOW_UPDATE then PING.
        let mut s = vec![0, 0, 4, 8, 0, 0, 0, 0, 0, 0, 0, 1, 0];
        assert_eq!(frames_verdict(&s), Verdict::Maybe);
        s.extend_from_slice(&[0, 0, 8, 6, 0, 0, 0, 0, 0]);
        assert_eq!(frames_verdict(&s), Verdict::Weak);
        assert_eq!(frames_verdict(b"GET / HTTP/1.1\r\n"), Verdict::No);
        assert_eq!(frames_verdict(&[0, 0]), Verdict::Maybe);
    }

    #[test]
    fn senders() {
        assert_eq!(
            header_block_sender(&[0x82, 0x86]),
            Some(MessageKind::Request)
        );
        assert_eq!(header_block_sender(&[0x88]), Some(MessageKind::Response));
        // Size update, then a literal with the :status name (index 8).
        assert_eq!(
            header_block_sender(&[0x3f, 0xe1, 0x1f, 0x48, 0x03]),
            Some(MessageKind::Response)
        );
        // Literal :path (index 4) without indexing.
        assert_eq!(
            header_block_sender(&[0x04, 0x01, b'/']),
            Some(MessageKind::Request)
        );
        // A dynamic index or a regular header: unknown.
        assert_eq!(header_block_sender(&[0xbe]), None);
        assert_eq!(header_block_sender(&[0x9f]), None);
        assert_eq!(header_block_sender(&[]), None);
        assert_eq!(frame_sender(&Frame::Preface), Some(MessageKind::Request));
    }
}
