//! Evidence that bytes are a DNS message (over TCP or in a datagram).

use super::parse::{Header, read_name, skip_record};
use crate::MessageKind;
use crate::Verdict;
use crate::cursor::Cursor;

/// Largest query accepted as evidence (EDNS options and padding included).
const MAX_QUERY_LEN: usize = 4096;

/// DNS over TCP: the 2-byte length, then a header and question that make
/// sense for `kind` (see [`message_verdict`]).
pub(crate) fn tcp_verdict(input: &[u8], kind: MessageKind) -> Verdict {
    let (Some(&hi), Some(&lo)) = (input.first(), input.get(1)) else {
        return Verdict::Maybe;
    };
    let len = usize::from(u16::from_be_bytes([hi, lo]));
    if len < 17 || (kind == MessageKind::Request && len > MAX_QUERY_LEN) {
        return Verdict::No;
    }
    let body = input.get(2..).unwrap_or_default();
    message_verdict(body.get(..len).unwrap_or(body), len, kind)
}

/// Header and first question of a message of `total_len` bytes of which
/// `msg` is a prefix. A query: opcode QUERY, no AA/TC/Z, rcode 0, one
/// question, no answers or authority, at most 2 additional records. A
/// response: opcode QUERY, no Z, rcode <= 10, one question, record counts
/// that fit the length. The question's name must be plain labels of
/// printable characters, its class IN, CH, HS, NONE or ANY.
fn message_verdict(msg: &[u8], total_len: usize, kind: MessageKind) -> Verdict {
    let response = kind == MessageKind::Response;
    let Some(&f1) = msg.get(2) else {
        return Verdict::Maybe;
    };
    let qr = f1 & 0x80 != 0;
    let opcode = (f1 >> 3) & 0xf;
    let (aa, tc) = (f1 & 0x04 != 0, f1 & 0x02 != 0);
    if qr != response || opcode != 0 || (!response && (aa || tc)) {
        return Verdict::No;
    }
    let Some(&f2) = msg.get(3) else {
        return Verdict::Maybe;
    };
    let (z, rcode) = (f2 & 0x40 != 0, f2 & 0x0f);
    if z || (!response && rcode != 0) || rcode > 10 {
        return Verdict::No;
    }
    let mut c = Cursor::new(msg);
    let Some(header) = Header::read(&mut c) else {
        return Verdict::Maybe;
    };
    let records =
        usize::from(header.ancount) + usize::from(header.nscount) + usize::from(header.arcount);
    let plausible = if response {
        header.qdcount == 1 && 17 + records * 11 <= total_len
    } else {
        header.qdcount == 1 && header.ancount == 0 && header.nscount == 0 && header.arcount <= 2
    };
    if !plausible {
        return Verdict::No;
    }
    // The question name: plain labels only (a pointer here could only point
    // into the header).
    let mut wire_len = 1;
    loop {
        let Some(len) = c.u8() else {
            return Verdict::Maybe;
        };
        if len == 0 {
            break;
        }
        let len = usize::from(len);
        wire_len += len + 1;
        if len > 63 || wire_len > 255 || 12 + wire_len + 4 > total_len {
            return Verdict::No;
        }
        for _ in 0..len {
            match c.u8() {
                None => return Verdict::Maybe,
                Some(b) if !(0x21..=0x7e).contains(&b) || b == b'.' => return Verdict::No,
                Some(_) => {}
            }
        }
    }
    let (Some(qtype), Some(qclass)) = (c.u16_be(), c.u16_be()) else {
        return Verdict::Maybe;
    };
    if qtype == 0 || !matches!(qclass & 0x7fff, 1 | 3 | 4 | 254 | 255) {
        return Verdict::No;
    }
    Verdict::Strong
}

/// DNS in a whole datagram: the kind from the QR bit when the header and
/// question are evidence (see [`message_verdict`]) and the records fill the
/// datagram exactly (or run past its end: a copy cut short).
pub(crate) fn datagram_kind(input: &[u8]) -> Option<MessageKind> {
    let kind = match input.get(2)? & 0x80 {
        0 => MessageKind::Request,
        _ => MessageKind::Response,
    };
    if message_verdict(input, input.len(), kind) != Verdict::Strong {
        return None;
    }
    let mut c = Cursor::new(input);
    let header = Header::read(&mut c)?;
    read_name(input, &mut c).ok()?;
    c.skip(4)?;
    let records = u32::from(header.ancount) + u32::from(header.nscount) + u32::from(header.arcount);
    for _ in 0..records {
        match skip_record(input, &mut c) {
            Ok(()) => {}
            Err(crate::dns::DnsError::Truncated) => return Some(kind),
            Err(_) => return None,
        }
    }
    c.is_empty().then_some(kind)
}
