//! Message parsing over a bounds-checked cursor.

use std::fmt::Write;
use std::net::{Ipv4Addr, Ipv6Addr};

use super::{DnsConfig, DnsError, DnsFlags, DnsMessage, DnsQuestion, DnsRecord};
use crate::cursor::Cursor;
use crate::text::{hex_capped, truncate_on_char};

/// Most compression pointers followed in one name.
const MAX_POINTERS: usize = 64;
/// Longest name on the wire (RFC 1035 2.3.4).
const MAX_NAME_LEN: usize = 255;

/// Parses one DNS message (a UDP datagram, or a TCP message without its
/// length prefix). Errors in the header or question section fail the
/// message; if it ends inside the answers, the complete answers are kept
/// and `partial` is set. Malformed record data is rendered as hex.
pub fn parse_message(bytes: &[u8], config: &DnsConfig) -> Result<DnsMessage, DnsError> {
    let mut c = Cursor::new(bytes);
    let header = Header::read(&mut c).ok_or(DnsError::Truncated)?;
    let mut message = header.message();
    for _ in 0..header.qdcount {
        let name = read_name(bytes, &mut c)?;
        let qtype = c.u16_be().ok_or(DnsError::Truncated)?;
        let qclass = c.u16_be().ok_or(DnsError::Truncated)?;
        if message.questions.len() < config.max_questions {
            message.questions.push(DnsQuestion {
                name,
                qtype,
                qclass,
            });
        }
    }
    let answers = usize::from(header.ancount).min(config.max_answers);
    for _ in 0..answers {
        match read_record(bytes, &mut c, config) {
            Ok(record) => message.answers.push(record),
            Err(DnsError::Truncated) => {
                message.partial = true;
                break;
            }
            Err(err) => return Err(err),
        }
    }
    Ok(message)
}

/// The 12-byte header.
pub(super) struct Header {
    pub id: u16,
    pub flags: u16,
    pub qdcount: u16,
    pub ancount: u16,
    pub nscount: u16,
    pub arcount: u16,
}

impl Header {
    pub(super) fn read(c: &mut Cursor<'_>) -> Option<Self> {
        Some(Self {
            id: c.u16_be()?,
            flags: c.u16_be()?,
            qdcount: c.u16_be()?,
            ancount: c.u16_be()?,
            nscount: c.u16_be()?,
            arcount: c.u16_be()?,
        })
    }

    fn message(&self) -> DnsMessage {
        let bit = |n: u16| self.flags & (1 << n) != 0;
        DnsMessage {
            id: self.id,
            is_response: bit(15),
            opcode: ((self.flags >> 11) & 0xf) as u8,
            rcode: (self.flags & 0xf) as u8,
            flags: DnsFlags {
                aa: bit(10),
                tc: bit(9),
                rd: bit(8),
                ra: bit(7),
                ad: bit(5),
                cd: bit(4),
            },
            question_count: self.qdcount,
            answer_count: self.ancount,
            authority_count: self.nscount,
            additional_count: self.arcount,
            questions: Vec::new(),
            answers: Vec::new(),
            partial: false,
        }
    }
}

/// Reads a possibly compressed name at the cursor; the cursor ends after
/// the name's bytes at this position (after the first pointer, if any).
/// Each pointer must point strictly before the previous one (or before the
/// name, for the first), so following pointers always terminates.
pub(super) fn read_name<'a>(msg: &'a [u8], c: &mut Cursor<'a>) -> Result<String, DnsError> {
    let mut out = String::new();
    let mut pos = c.pos();
    let mut limit = pos;
    let mut jumped = false;
    let mut pointers = 0;
    let mut wire_len = 1;
    loop {
        let len = *msg.get(pos).ok_or(DnsError::Truncated)?;
        match len & 0xc0 {
            0x00 if len == 0 => {
                if !jumped {
                    *c = Cursor::at(msg, pos + 1);
                }
                break;
            }
            0x00 => {
                let len = usize::from(len);
                let label = msg.get(pos + 1..pos + 1 + len).ok_or(DnsError::Truncated)?;
                wire_len += len + 1;
                if wire_len > MAX_NAME_LEN {
                    return Err(DnsError::NameTooLong);
                }
                if !out.is_empty() {
                    out.push('.');
                }
                push_label(&mut out, label);
                pos += len + 1;
            }
            0xc0 => {
                let low = *msg.get(pos + 1).ok_or(DnsError::Truncated)?;
                let target = usize::from(len & 0x3f) << 8 | usize::from(low);
                if !jumped {
                    *c = Cursor::at(msg, pos + 2);
                    jumped = true;
                }
                pointers += 1;
                if target >= limit || pointers > MAX_POINTERS {
                    return Err(DnsError::CompressionLoop);
                }
                limit = target;
                pos = target;
            }
            _ => return Err(DnsError::InvalidLabel),
        }
    }
    if out.is_empty() {
        out.push('.');
    }
    Ok(out)
}

/// Appends a label, escaping '.', '\\' and bytes outside printable ASCII as
/// in zone files (`\.`, `\\`, `\DDD`).
fn push_label(out: &mut String, label: &[u8]) {
    for &b in label {
        match b {
            b'.' | b'\\' => {
                out.push('\\');
                out.push(char::from(b));
            }
            0x21..=0x7e => out.push(char::from(b)),
            _ => {
                let _ = write!(out, "\\{b:03}");
            }
        }
    }
}

fn read_record<'a>(
    msg: &'a [u8],
    c: &mut Cursor<'a>,
    config: &DnsConfig,
) -> Result<DnsRecord, DnsError> {
    let name = read_name(msg, c)?;
    let rtype = c.u16_be().ok_or(DnsError::Truncated)?;
    let class = c.u16_be().ok_or(DnsError::Truncated)?;
    let ttl = c.u32_be().ok_or(DnsError::Truncated)?;
    let rdlen = usize::from(c.u16_be().ok_or(DnsError::Truncated)?);
    let start = c.pos();
    let rdata = c.take(rdlen).ok_or(DnsError::Truncated)?;
    let mut data = render_rdata(msg, start, rdata, rtype)
        .unwrap_or_else(|| hex_capped(rdata, config.max_data_len / 2));
    if data.len() > config.max_data_len {
        truncate_on_char(&mut data, config.max_data_len.saturating_sub(3));
        data.push_str("...");
    }
    Ok(DnsRecord {
        name,
        rtype,
        class,
        ttl,
        data,
    })
}

/// Skips one record (for walking sections that are not kept).
pub(super) fn skip_record<'a>(msg: &'a [u8], c: &mut Cursor<'a>) -> Result<(), DnsError> {
    read_name(msg, c)?;
    c.skip(8).ok_or(DnsError::Truncated)?;
    let rdlen = usize::from(c.u16_be().ok_or(DnsError::Truncated)?);
    c.skip(rdlen).ok_or(DnsError::Truncated)
}

/// Text of known record data; `None` (then hex) when malformed or unknown.
fn render_rdata<'a>(msg: &'a [u8], start: usize, rdata: &[u8], rtype: u16) -> Option<String> {
    let end = start + rdata.len();
    // A name inside the data: may point anywhere before, must end inside.
    let name_at = |c: &mut Cursor<'a>| -> Option<String> {
        let name = read_name(msg, c).ok()?;
        (c.pos() <= end).then_some(name)
    };
    let mut c = Cursor::at(msg, start);
    let text = match rtype {
        1 => Ipv4Addr::from(<[u8; 4]>::try_from(rdata).ok()?).to_string(),
        28 => Ipv6Addr::from(<[u8; 16]>::try_from(rdata).ok()?).to_string(),
        2 | 5 | 12 | 39 => name_at(&mut c)?,
        15 => {
            let preference = c.u16_be()?;
            format!("{preference} {}", name_at(&mut c)?)
        }
        33 => {
            let (priority, weight, port) = (c.u16_be()?, c.u16_be()?, c.u16_be()?);
            format!("{priority} {weight} {port} {}", name_at(&mut c)?)
        }
        6 => {
            let mname = name_at(&mut c)?;
            let rname = name_at(&mut c)?;
            let values = [
                c.u32_be()?,
                c.u32_be()?,
                c.u32_be()?,
                c.u32_be()?,
                c.u32_be()?,
            ];
            if c.pos() > end {
                return None;
            }
            let [serial, refresh, retry, expire, minimum] = values;
            format!("{mname} {rname} {serial} {refresh} {retry} {expire} {minimum}")
        }
        16 | 99 => {
            let mut r = Cursor::new(rdata);
            let mut out = String::new();
            while !r.is_empty() {
                let part = r.lenenc_dns()?;
                if !out.is_empty() {
                    out.push(' ');
                }
                push_quoted(&mut out, part);
            }
            out
        }
        _ => return None,
    };
    Some(text)
}

/// A TXT character-string, quoted, with '"', '\\' and non-printable bytes
/// escaped.
fn push_quoted(out: &mut String, s: &[u8]) {
    out.push('"');
    for &b in s {
        match b {
            b'"' | b'\\' => {
                out.push('\\');
                out.push(char::from(b));
            }
            0x20..=0x7e => out.push(char::from(b)),
            _ => {
                let _ = write!(out, "\\{b:03}");
            }
        }
    }
    out.push('"');
}

impl<'a> Cursor<'a> {
    /// A DNS character-string: one length byte and that many bytes.
    fn lenenc_dns(&mut self) -> Option<&'a [u8]> {
        let len = usize::from(self.u8()?);
        self.take(len)
    }
}
