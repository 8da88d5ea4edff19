//! Evidence that bytes start an HTTP/2 connection, and which side of one
//! sent a frame.
//!
//! - [`preface_verdict`]: the client's preface, 24 fixed bytes (strong).
//! - [`server_preface_verdict`]: a server's first frame, SETTINGS on stream
//!   0 with a length that is a multiple of 6 and parameters that make sense
//!   (strong once all are there; weak with unknown identifiers only).
//! - [`mid_stream_verdict`]: frames in the middle of a connection (one
//!   opened before the capture): a few small control frames at most, then a
//!   header block whose pseudo-headers name its sender (request
//!   pseudo-headers, or `:status`) through the static table (strong).
//!
//! [`request_verdict`] and [`response_verdict`] combine them into the one
//! candidate per direction that `crate::detect` weighs.

use super::PREFACE;
use super::decoder::plausible_header;
use super::frame::{self, FrameHeader, HEADER_LEN, HEADERS, PUSH_PROMISE, SETTINGS};
use super::hpack::{BlockLead, block_lead};
use super::{Frame, HeaderBlock};
use crate::MessageKind;
use crate::Verdict;

/// Bytes sent by a client: its preface, or frames of a connection joined
/// mid-way led by a request's header block.
pub(crate) fn request_verdict(input: &[u8]) -> Verdict {
    either(
        preface_verdict(input),
        mid_stream_verdict(input, MessageKind::Request),
    )
}

/// Bytes sent by a server: its first SETTINGS, or frames of a connection
/// joined mid-way led by a response's header block (or a PUSH_PROMISE).
pub(crate) fn response_verdict(input: &[u8]) -> Verdict {
    either(
        server_preface_verdict(input),
        mid_stream_verdict(input, MessageKind::Response),
    )
}

/// The stronger of two kinds of evidence for one candidate, undecided while
/// the one still open could beat the one decided (so the answer, once
/// given, stays as bytes are added).
fn either(a: Verdict, b: Verdict) -> Verdict {
    use Verdict::{Maybe, No, Strong, Weak};
    match (a, b) {
        (Strong, _) | (_, Strong) => Strong,
        (Maybe, _) | (_, Maybe) => Maybe,
        (Weak, _) | (_, Weak) => Weak,
        (No, No) => No,
    }
}

/// The client connection preface.
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
    let mut any_known = params.is_empty();
    for p in params {
        if frame::setting_is_valid(p) {
            any_known = true;
            continue;
        }
        // A known identifier with a bad value is not what a server sends;
        // an unknown identifier is legal (gRPC stacks send 0xfe03) but alone
        // it is weaker evidence.
        if frame::is_known_setting(p.id) {
            return Verdict::No;
        }
    }
    if any_known {
        Verdict::Strong
    } else {
        Verdict::Weak
    }
}

/// Frames looked at for a connection joined mid-way.
const MID_STREAM_FRAMES: usize = 8;

/// Longest frame allowed before the header block when joining mid-way:
/// control frames (WINDOW_UPDATE, PING, SETTINGS, RST_STREAM, PRIORITY) and
/// small DATA. A longer one is more likely not HTTP/2 at all.
const MID_STREAM_SMALL_FRAME: u32 = 64;

/// Longest header block frame accepted when joining mid-way (the default
/// SETTINGS_MAX_FRAME_SIZE).
const MID_STREAM_MAX_HEADERS: u32 = 16_384;

/// Bytes of a header block within which a name saying who sent it must
/// have been read.
const BLOCK_LEAD_BYTES: usize = 96;

/// Frames in the middle of a connection sent by `kind`: at most seven small
/// frames (each complete and plausible), then a HEADERS frame on a
/// client-initiated (odd) stream whose block's
/// pseudo-headers say it comes from `kind` (request pseudo-headers: the
/// client; `:status`: the server), or, from a server, a PUSH_PROMISE.
/// Decided by the first bytes of the block, not by what follows it, so the
/// verdict never changes once given.
pub(crate) fn mid_stream_verdict(input: &[u8], kind: MessageKind) -> Verdict {
    let mut at = 0;
    for _ in 0..MID_STREAM_FRAMES {
        let rest = input.get(at..).unwrap_or_default();
        let Some(h) = FrameHeader::parse(rest) else {
            return if head_prefix_plausible(rest) {
                Verdict::Maybe
            } else {
                Verdict::No
            };
        };
        if !head_prefix_plausible(rest) {
            return Verdict::No;
        }
        let Ok(layout) = frame::layout(&h) else {
            return Verdict::No;
        };
        let whole = HEADER_LEN + h.len as usize;
        match h.frame_type {
            HEADERS | PUSH_PROMISE => {
                // The pad length and the fixed fields decide plausibility.
                let head = HEADER_LEN + layout.prologue;
                if rest.len() < head {
                    return Verdict::Maybe;
                }
                // Header blocks of a request, and of its response, are on a
                // stream the client opened (odd); pushed responses are not
                // looked for.
                let client_stream = h.frame_type == PUSH_PROMISE || h.stream_id % 2 == 1;
                if !client_stream || plausible_header(rest, None).is_none() {
                    return Verdict::No;
                }
                let sender = if h.frame_type == PUSH_PROMISE {
                    Decided::Sender(MessageKind::Response)
                } else {
                    let pad = if h.has(frame::FLAG_PADDED) {
                        rest.get(HEADER_LEN).map_or(0, |&p| usize::from(p))
                    } else {
                        0
                    };
                    let block_end = whole.saturating_sub(pad);
                    let block = rest
                        .get(head..block_end.min(rest.len()))
                        .unwrap_or_default();
                    block_sender(block, rest.len() >= block_end)
                };
                return match sender {
                    Decided::Sender(s) if s == kind => Verdict::Strong,
                    Decided::Sender(_) | Decided::No => Verdict::No,
                    Decided::Open => Verdict::Maybe,
                };
            }
            _ => {
                if rest.len() < whole {
                    return Verdict::Maybe;
                }
                if plausible_header(rest, None).is_none() {
                    return Verdict::No;
                }
                at += whole;
            }
        }
    }
    Verdict::No
}

/// What a header block's lead says about its sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Decided {
    Sender(MessageKind),
    /// Not a lead this can read (a dynamic index, a regular header).
    No,
    /// More bytes are needed.
    Open,
}

/// The sender a block's first bytes name; `complete`: the block is all there.
fn block_sender(block: &[u8], complete: bool) -> Decided {
    match block_lead(block) {
        BlockLead::Request => Decided::Sender(MessageKind::Request),
        BlockLead::Response => Decided::Sender(MessageKind::Response),
        BlockLead::Other => Decided::No,
        BlockLead::Incomplete if complete || block.len() >= BLOCK_LEAD_BYTES => Decided::No,
        BlockLead::Incomplete => Decided::Open,
    }
}

/// The bytes of a frame header present so far (up to 9) fit a frame of a
/// mid-way join: a length up to 16 384 (64 unless a header block), a known
/// type other than CONTINUATION, flags that type defines, a clear reserved
/// bit.
fn head_prefix_plausible(head: &[u8]) -> bool {
    let byte = |i: usize| head.get(i).copied();
    if byte(0).is_some_and(|b| b != 0) {
        return false;
    }
    let len_so_far = match (byte(1), byte(2)) {
        (Some(hi), Some(lo)) => u32::from(hi) << 8 | u32::from(lo),
        (Some(hi), None) => u32::from(hi) << 8,
        _ => 0,
    };
    if len_so_far > MID_STREAM_MAX_HEADERS {
        return false;
    }
    let Some(frame_type) = byte(3) else {
        return true;
    };
    let block = matches!(frame_type, HEADERS | PUSH_PROMISE);
    if !block && len_so_far > MID_STREAM_SMALL_FRAME {
        return false;
    }
    let Some(defined) =
        frame::defined_flags(frame_type).filter(|_| frame_type != frame::CONTINUATION)
    else {
        return false;
    };
    if byte(4).is_some_and(|flags| flags & !defined != 0) {
        return false;
    }
    byte(5).is_none_or(|b| b & 0x80 == 0)
}

/// Which side sent a header block, from its pseudo-headers (static table
/// names and literal names, so it works without the dynamic table):
/// request pseudo-headers (`:method`, `:scheme`, `:path`, `:authority`)
/// come from the client, `:status` from the server. None when the block
/// does not start with a pseudo-header this can read.
pub fn header_block_sender(block: &[u8]) -> Option<MessageKind> {
    match block_lead(block) {
        BlockLead::Request => Some(MessageKind::Request),
        BlockLead::Response => Some(MessageKind::Response),
        BlockLead::Other | BlockLead::Incomplete => None,
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

    fn frame(frame_type: u8, flags: u8, stream_id: u32, payload: &[u8]) -> Vec<u8> {
        let mut out = (payload.len() as u32).to_be_bytes()[1..].to_vec();
        out.push(frame_type);
        out.push(flags);
        out.extend_from_slice(&stream_id.to_be_bytes());
        out.extend_from_slice(payload);
        out
    }

    #[test]
    fn mid_connection_frames() {
        use MessageKind::{Request, Response};
        let window_update = frame(8, 0, 0, &[0, 0, 1, 0]);
        let ping = frame(6, 0, 0, &[1; 8]);
        // :method GET, :scheme http, :path /
        let get = frame(HEADERS, 0x5, 7, &[0x82, 0x86, 0x84]);
        // :status 200, then a DATA frame.
        let ok = frame(HEADERS, 0x4, 7, &[0x88]);
        let client = [window_update.clone(), ping.clone(), get.clone()].concat();
        let server = [window_update.clone(), ok.clone(), frame(0, 1, 7, b"hi")].concat();
        assert_eq!(mid_stream_verdict(&client, Request), Verdict::Strong);
        assert_eq!(mid_stream_verdict(&client, Response), Verdict::No);
        assert_eq!(mid_stream_verdict(&server, Response), Verdict::Strong);
        assert_eq!(mid_stream_verdict(&server, Request), Verdict::No);
        // Undecided on every prefix short of the block's first byte.
        let decided_at = window_update.len() + ping.len() + HEADER_LEN + 1;
        for n in 0..decided_at {
            assert_eq!(
                mid_stream_verdict(&client[..n], Request),
                Verdict::Maybe,
                "prefix {n}"
            );
        }
        assert_eq!(request_verdict(&client[..decided_at]), Verdict::Strong);
        // A dynamic index first, a regular header first, a new-name literal.
        for block in [&[0xbe][..], &[0x9f], &[0x00, 1, b'x', 1, b'y']] {
            let f = frame(HEADERS, 0x4, 1, block);
            assert_eq!(mid_stream_verdict(&f, Request), Verdict::No, "{block:x?}");
        }
        // grpcio names `:path` literally; grpc-js starts with a dynamic
        // entry, then `:method POST`.
        let grpcio = frame(HEADERS, 0x4, 1, b"\x40\x05:path\x03/a/");
        assert_eq!(mid_stream_verdict(&grpcio, Request), Verdict::Strong);
        let grpc_js = frame(HEADERS, 0x4, 3, &[0xc3, 0x83]);
        assert_eq!(mid_stream_verdict(&grpc_js, Request), Verdict::Strong);
        // A PUSH_PROMISE comes from the server.
        let promise = frame(PUSH_PROMISE, 0x4, 1, &[0, 0, 0, 2, 0x82, 0x84]);
        assert_eq!(mid_stream_verdict(&promise, Response), Verdict::Strong);
        assert_eq!(mid_stream_verdict(&promise, Request), Verdict::No);
        // A large frame first, a CONTINUATION first, eight small frames first.
        let data = frame(0, 0, 1, &[0; 65]);
        assert_eq!(
            mid_stream_verdict(&[data, get.clone()].concat(), Request),
            Verdict::No
        );
        assert_eq!(
            mid_stream_verdict(&frame(9, 4, 1, &[0x82]), Request),
            Verdict::No
        );
        let eight = [vec![ping.clone(); 8].concat(), get.clone()].concat();
        assert_eq!(mid_stream_verdict(&eight, Request), Verdict::No);
        let seven = [vec![ping.clone(); 7].concat(), get].concat();
        assert_eq!(mid_stream_verdict(&seven, Request), Verdict::Strong);
        // Text and other binary protocols are ruled out at once.
        for other in [
            &b"GET / HTTP/1.1\r\n"[..],
            b"+OK\r\n",
            b"\x05\x00\x00\x00\x03",
            b"\x00\x45",
        ] {
            assert_eq!(
                mid_stream_verdict(other, Request),
                Verdict::No,
                "{other:x?}"
            );
            assert_eq!(
                mid_stream_verdict(other, Response),
                Verdict::No,
                "{other:x?}"
            );
        }
        assert_eq!(mid_stream_verdict(&[0, 0], Request), Verdict::Maybe);
        assert_eq!(request_verdict(PREFACE), Verdict::Strong);
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
