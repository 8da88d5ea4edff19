//! Evidence that bytes start a MySQL packet from the client or the server.

use crate::Verdict;

use super::consts::*;

/// Byte `i` of the input, or `Maybe` when it has not arrived.
fn at(input: &[u8], i: usize) -> Result<u8, Verdict> {
    input.get(i).copied().ok_or(Verdict::Maybe)
}

/// Payload length and sequence id of the packet header at `off`.
fn header(input: &[u8], off: usize) -> Result<(usize, u8), Verdict> {
    let len = usize::from(at(input, off)?)
        | usize::from(at(input, off + 1)?) << 8
        | usize::from(at(input, off + 2)?) << 16;
    Ok((len, at(input, off + 3)?))
}

fn decided(r: Result<Verdict, Verdict>) -> Verdict {
    r.unwrap_or_else(|v| v)
}

/// A command packet (sequence 0, known command, plausible length and
/// payload) or a handshake response (sequence 1, or 2 after an SSLRequest:
/// the first packet of a TLS plaintext stream; CLIENT_PROTOCOL_41, 23 zero
/// filler bytes).
pub(crate) fn request_verdict(input: &[u8]) -> Verdict {
    decided(request(input))
}

fn request(input: &[u8]) -> Result<Verdict, Verdict> {
    let (len, seq) = header(input, 0)?;
    match seq {
        0 => command(input, len),
        1 | 2 => handshake_response(input, len),
        _ => Ok(Verdict::No),
    }
}

fn command(input: &[u8], len: usize) -> Result<Verdict, Verdict> {
    if len == 0 {
        return Ok(Verdict::No);
    }
    let cmd = at(input, 4)?;
    let strong_if = |ok: bool| Ok(if ok { Verdict::Strong } else { Verdict::No });
    match cmd {
        COM_QUIT | COM_PING | COM_STATISTICS | COM_RESET_CONNECTION | COM_DEBUG => {
            strong_if(len == 1)
        }
        COM_INIT_DB => {
            if !(2..=65).contains(&len) {
                return Ok(Verdict::No);
            }
            for i in 5..4 + len {
                if !(0x21..=0x7e).contains(&at(input, i)?) {
                    return Ok(Verdict::No);
                }
            }
            Ok(Verdict::Strong)
        }
        COM_QUERY | COM_STMT_PREPARE => query_text(input, len, cmd == COM_QUERY),
        COM_STMT_EXECUTE => {
            if len < 10 || at(input, 9)? & 0xf0 != 0 {
                return Ok(Verdict::No);
            }
            for (i, want) in [(10, 1), (11, 0), (12, 0), (13, 0)] {
                if at(input, i)? != want {
                    return Ok(Verdict::No);
                }
            }
            Ok(Verdict::Strong)
        }
        COM_STMT_CLOSE | COM_STMT_RESET => strong_if(len == 5),
        COM_STMT_FETCH => strong_if(len == 9),
        COM_SET_OPTION => {
            if len != 3 {
                return Ok(Verdict::No);
            }
            strong_if(at(input, 5)? <= 1 && at(input, 6)? == 0)
        }
        COM_FIELD_LIST | COM_CHANGE_USER => Ok(if len >= 2 { Verdict::Weak } else { Verdict::No }),
        COM_PROCESS_KILL => Ok(if len == 5 { Verdict::Weak } else { Verdict::No }),
        _ => Ok(Verdict::No),
    }
}

/// The start of a statement: up to 16 bytes of text (printable ASCII,
/// whitespace or UTF-8) beginning like SQL. A COM_QUERY may start with an
/// empty query-attributes block (0x00 0x01).
fn query_text(input: &[u8], len: usize, attributes: bool) -> Result<Verdict, Verdict> {
    let mut off = 5;
    if attributes && at(input, 5)? == 0 {
        if len < 4 || at(input, 6)? != 1 {
            return Ok(Verdict::No);
        }
        off = 7;
    }
    let text_len = (4 + len).saturating_sub(off);
    if text_len == 0 {
        return Ok(Verdict::No);
    }
    let first = at(input, off)?;
    if !(first.is_ascii_alphabetic()
        || matches!(
            first,
            b'(' | b'/' | b'-' | b'#' | b' ' | b'\t' | b'\r' | b'\n'
        ))
    {
        return Ok(Verdict::No);
    }
    for i in off..off + text_len.min(16) {
        let b = at(input, i)?;
        if !((0x20..0x7f).contains(&b) || matches!(b, b'\t' | b'\r' | b'\n') || b >= 0x80) {
            return Ok(Verdict::No);
        }
    }
    Ok(Verdict::Strong)
}

fn handshake_response(input: &[u8], len: usize) -> Result<Verdict, Verdict> {
    if !(32..=1 << 16).contains(&len) {
        return Ok(Verdict::No);
    }
    let caps = u32::from_le_bytes([at(input, 4)?, at(input, 5)?, at(input, 6)?, at(input, 7)?]);
    if caps & CLIENT_PROTOCOL_41 == 0 {
        return Ok(Verdict::No);
    }
    // 23 filler bytes, of which MariaDB clients use the last 4 for their
    // extended capabilities (when the server lacks CLIENT_MYSQL).
    for i in 13..32 {
        if at(input, i)? != 0 {
            return Ok(Verdict::No);
        }
    }
    Ok(Verdict::Strong)
}

/// A server greeting (sequence 0, protocol 10, version "digit...\0", filler
/// 0 after the first scramble part), an ERR packet with SQL state, or a
/// result set header followed by a column definition ("def") are strong; an
/// OK or EOF packet and a greeting-time error are weak.
pub(crate) fn response_verdict(input: &[u8]) -> Verdict {
    decided(response(input))
}

fn response(input: &[u8]) -> Result<Verdict, Verdict> {
    let (len, seq) = header(input, 0)?;
    if len == 0 {
        return Ok(Verdict::No);
    }
    let first = at(input, 4)?;
    match (seq, first) {
        (0, 10) => greeting(input, len),
        (0, 0xff) => {
            let code = u16::from_le_bytes([at(input, 5)?, at(input, 6)?]);
            Ok(
                if (4..=512).contains(&len) && (1000..2000).contains(&code) {
                    Verdict::Weak
                } else {
                    Verdict::No
                },
            )
        }
        (0, _) => Ok(Verdict::No),
        (_, 0xff) => {
            let code = u16::from_le_bytes([at(input, 5)?, at(input, 6)?]);
            if !(9..=0xffff).contains(&len)
                || !(1000..=50000).contains(&code)
                || at(input, 7)? != b'#'
            {
                return Ok(Verdict::No);
            }
            for i in 8..13 {
                if !at(input, i)?.is_ascii_alphanumeric() {
                    return Ok(Verdict::No);
                }
            }
            Ok(Verdict::Strong)
        }
        (_, 0x00) => ok_packet(input, len),
        (_, 0xfe) => Ok(if len < 9 { Verdict::Weak } else { Verdict::No }),
        (1, 1..=0xfa) if len == 1 => {
            // Column count, then the first column definition: catalog "def".
            let (next_len, next_seq) = header(input, 5)?;
            if next_seq != 2 || next_len < 20 {
                return Ok(Verdict::No);
            }
            for (i, want) in [(9, 3), (10, b'd'), (11, b'e'), (12, b'f')] {
                if at(input, i)? != want {
                    return Ok(Verdict::No);
                }
            }
            Ok(Verdict::Strong)
        }
        _ => Ok(Verdict::No),
    }
}

fn greeting(input: &[u8], len: usize) -> Result<Verdict, Verdict> {
    if !(20..=2048).contains(&len) || !at(input, 5)?.is_ascii_digit() {
        return Ok(Verdict::No);
    }
    let mut i = 6;
    loop {
        match at(input, i)? {
            0 => break,
            0x20..=0x7e if i < 5 + 64 => i += 1,
            _ => return Ok(Verdict::No),
        }
    }
    // NUL, connection id (4), scramble part 1 (8), filler 0.
    let filler = i + 13;
    if filler >= 4 + len {
        return Ok(Verdict::No);
    }
    Ok(if at(input, filler)? == 0 {
        Verdict::Strong
    } else {
        Verdict::No
    })
}

/// 0x00, affected rows, last insert id, status, warnings within the length.
fn ok_packet(input: &[u8], len: usize) -> Result<Verdict, Verdict> {
    if !(7..=256).contains(&len) {
        return Ok(Verdict::No);
    }
    let mut i = 5;
    for _ in 0..2 {
        i += match at(input, i)? {
            0..=0xfa => 1,
            0xfc => 3,
            0xfd => 4,
            0xfe => 9,
            _ => return Ok(Verdict::No),
        };
    }
    Ok(if i + 4 <= 4 + len {
        Verdict::Weak
    } else {
        Verdict::No
    })
}
