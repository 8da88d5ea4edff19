//! Evidence that bytes start a PostgreSQL message from the client or the
//! server. Every check reads a bounded prefix through `at` (which answers
//! `Maybe` for bytes not arrived yet), so a verdict, once decided, holds for
//! every longer prefix.

use super::frame::BACKEND_TYPES;
use super::{
    CANCEL_REQUEST_CODE, GSSENC_REQUEST_CODE, MAX_STARTUP_LEN, PROTOCOL_3_0, SSL_REQUEST_CODE,
};
use crate::Verdict;

/// Longest message length taken as evidence (larger ones are legal but rare
/// enough that binary data claiming them is more likely not PostgreSQL).
const MAX_EVIDENCE_LEN: u32 = 64 << 20;
/// Longest statement, portal, parameter or field name looked at.
const MAX_NAME: usize = 64;
/// Bytes of statement text checked.
const TEXT_CHECK: usize = 16;

type Check = Result<Verdict, Verdict>;

/// Byte `i` of the input, or `Maybe` when it has not arrived.
fn at(input: &[u8], i: usize) -> Result<u8, Verdict> {
    input.get(i).copied().ok_or(Verdict::Maybe)
}

fn u32_at(input: &[u8], i: usize) -> Result<u32, Verdict> {
    Ok(u32::from_be_bytes([
        at(input, i)?,
        at(input, i + 1)?,
        at(input, i + 2)?,
        at(input, i + 3)?,
    ]))
}

fn u16_at(input: &[u8], i: usize) -> Result<u16, Verdict> {
    Ok(u16::from_be_bytes([at(input, i)?, at(input, i + 1)?]))
}

fn decided(r: Check) -> Verdict {
    r.unwrap_or_else(|v| v)
}

fn strong_if(ok: bool) -> Check {
    Ok(if ok { Verdict::Strong } else { Verdict::No })
}

/// A NUL-terminated name of printable ASCII starting at `i`, at most
/// `MAX_NAME` bytes, within `end`: its length (without the NUL), or `No`.
fn name(input: &[u8], i: usize, end: usize, allow_empty: bool) -> Result<usize, Verdict> {
    for n in 0..=MAX_NAME {
        if i + n >= end {
            return Err(Verdict::No);
        }
        match at(input, i + n)? {
            0 if n > 0 || allow_empty => return Ok(n),
            0x21..=0x7e => {}
            _ => return Err(Verdict::No),
        }
    }
    Err(Verdict::No)
}

/// The type byte and the body length of the typed message at 0.
fn typed_header(input: &[u8]) -> Result<(u8, u32), Verdict> {
    let tag = at(input, 0)?;
    let len = u32_at(input, 1)?;
    if !(4..=MAX_EVIDENCE_LEN).contains(&len) {
        return Err(Verdict::No);
    }
    Ok((tag, len - 4))
}

/// Messages from the client: the startup-phase messages (StartupMessage of
/// protocol 3.x with a first parameter name, SSLRequest, GSSENCRequest,
/// CancelRequest), a Query or Parse with text that starts like SQL, a Bind,
/// Execute, Describe or Close whose fields fill the length exactly (strong);
/// Sync, Flush, Terminate and CopyDone (weak: five common bytes).
pub(crate) fn request_verdict(input: &[u8]) -> Verdict {
    decided(request(input))
}

fn request(input: &[u8]) -> Check {
    if at(input, 0)? == 0 {
        return untyped(input);
    }
    let (tag, body) = typed_header(input)?;
    let end = 5 + body as usize;
    match tag {
        b'Q' => sql_text(input, 5, end),
        b'P' => {
            let n = name(input, 5, end, true)?;
            sql_text(input, 5 + n + 1, end)
        }
        b'B' => bind(input, end),
        b'E' => {
            let n = name(input, 5, end, true)?;
            strong_if(5 + n + 1 + 4 == end)
        }
        b'D' | b'C' => {
            if !matches!(at(input, 5)?, b'S' | b'P') {
                return Ok(Verdict::No);
            }
            let n = name(input, 6, end, true)?;
            strong_if(6 + n + 1 == end)
        }
        b'S' | b'H' | b'X' | b'c' => Ok(if body == 0 {
            Verdict::Weak
        } else {
            Verdict::No
        }),
        _ => Ok(Verdict::No),
    }
}

fn untyped(input: &[u8]) -> Check {
    let len = u32_at(input, 0)?;
    let code = u32_at(input, 4)?;
    match code {
        SSL_REQUEST_CODE | GSSENC_REQUEST_CODE => strong_if(len == 8),
        // Protocol 3.2 (PostgreSQL 18) allows keys of up to 256 bytes.
        CANCEL_REQUEST_CODE => strong_if((16..=12 + 256).contains(&len)),
        _ if code >> 16 == PROTOCOL_3_0 >> 16 && code & 0xffff <= 2 => {
            if !(10..=MAX_STARTUP_LEN).contains(&len) {
                return Ok(Verdict::No);
            }
            // The first parameter: an identifier, NUL, then printable text.
            let end = len as usize;
            let key = name(input, 8, end, false)?;
            let first = at(input, 8)?;
            if !(first.is_ascii_alphabetic() || first == b'_') {
                return Ok(Verdict::No);
            }
            let value = 8 + key + 1;
            for i in value..(value + 32).min(end) {
                match at(input, i)? {
                    0 => return Ok(Verdict::Strong),
                    0x20..=0x7e | 0x80..=0xff => {}
                    _ => return Ok(Verdict::No),
                }
            }
            Ok(Verdict::Strong)
        }
        _ => Ok(Verdict::No),
    }
}

/// Statement text from `i` to `end` (which holds its NUL): starts like SQL
/// (a letter, a parenthesis, a comment or whitespace) and its first bytes
/// are text.
fn sql_text(input: &[u8], i: usize, end: usize) -> Check {
    if i + 1 >= end {
        return Ok(Verdict::No);
    }
    let first = at(input, i)?;
    if !(first.is_ascii_alphabetic()
        || matches!(first, b'(' | b'/' | b'-' | b' ' | b'\t' | b'\r' | b'\n'))
    {
        return Ok(Verdict::No);
    }
    for j in i..(i + TEXT_CHECK).min(end) {
        let b = at(input, j)?;
        let ok = if j + 1 == end {
            b == 0
        } else {
            (0x20..0x7f).contains(&b) || matches!(b, b'\t' | b'\r' | b'\n') || b >= 0x80
        };
        if !ok {
            return Ok(Verdict::No);
        }
    }
    Ok(Verdict::Strong)
}

/// Portal and statement names, then format codes that are 0 or 1.
fn bind(input: &[u8], end: usize) -> Check {
    let portal = name(input, 5, end, true)?;
    let i = 5 + portal + 1;
    let stmt = name(input, i, end, true)?;
    let i = i + stmt + 1;
    // Formats, parameter count and result-format count at least.
    if i + 6 > end {
        return Ok(Verdict::No);
    }
    let formats = usize::from(u16_at(input, i)?);
    if formats > 1024 {
        return Ok(Verdict::No);
    }
    for f in 0..formats.min(4) {
        if u16_at(input, i + 2 + 2 * f)? > 1 {
            return Ok(Verdict::No);
        }
    }
    Ok(Verdict::Strong)
}

/// Messages from the server: an authentication request of a known code and
/// the right length, ReadyForQuery, CommandComplete (an upper-case tag that
/// fills the length), ErrorResponse/NoticeResponse (severity, then the
/// SQLSTATE), ParameterStatus, RowDescription, the bodiless completions
/// and BackendKeyData when a message follows (strong); the one-byte answer
/// to SSLRequest followed by an auth request or error (strong), alone or
/// before TLS (weak).
pub(crate) fn response_verdict(input: &[u8]) -> Verdict {
    decided(response(input, 0))
}

fn response(input: &[u8], depth: u8) -> Check {
    let first = at(input, 0)?;
    if matches!(first, b'S' | b'N' | b'G') && depth < 2 {
        let second = at(input, 1)?;
        if first == b'G' || second != 0 {
            return encryption_answer(first, input.get(1..).unwrap_or_default(), depth);
        }
    }
    let (tag, body) = typed_header(input)?;
    let end = 5 + body as usize;
    match tag {
        b'R' => auth(input, body),
        b'E' | b'N' => error_fields(input, end),
        b'Z' => strong_if(body == 1 && matches!(at(input, 5)?, b'I' | b'T' | b'E')),
        b'C' => command_tag(input, end),
        b'S' => {
            let n = name(input, 5, end, false)?;
            let value = 5 + n + 1;
            for i in value..end {
                match at(input, i)? {
                    0 => return strong_if(i + 1 == end),
                    0x20..=0x7e | 0x80..=0xff if i < value + 256 => {}
                    _ => return Ok(Verdict::No),
                }
            }
            Ok(Verdict::No)
        }
        b'T' => row_description(input, end),
        b'1' | b'2' | b'3' | b'n' | b'I' | b's' => {
            strong_if(body == 0 && BACKEND_TYPES.contains(&at(input, 5)?))
        }
        b'K' => {
            strong_if((8..=4 + 256).contains(&body) && BACKEND_TYPES.contains(&at(input, end)?))
        }
        _ => Ok(Verdict::No),
    }
}

/// A one-byte answer and what follows it (`rest`).
fn encryption_answer(answer: u8, rest: &[u8], depth: u8) -> Check {
    if answer != b'N' && rest.first_chunk::<2>() == Some(&[0x16, 0x03]) {
        return Ok(Verdict::Weak);
    }
    if rest.is_empty() {
        return Err(Verdict::Maybe);
    }
    match response(rest, depth + 1)? {
        Verdict::Strong => Ok(Verdict::Strong),
        _ => Ok(Verdict::No),
    }
}

fn auth(input: &[u8], body: u32) -> Check {
    let code = u32_at(input, 5)?;
    match code {
        // Ok, KerberosV5, cleartext, GSS, SSPI.
        0 | 2 | 3 | 7 | 9 => strong_if(body == 4),
        5 => strong_if(body == 8),
        // SASL: mechanism names such as "SCRAM-SHA-256".
        10 => {
            let end = 5 + body as usize;
            let n = name(input, 9, end, false)?;
            for i in 9..9 + n {
                let b = at(input, i)?;
                if !(b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-' || b == b'_') {
                    return Ok(Verdict::No);
                }
            }
            Ok(Verdict::Strong)
        }
        // SASLContinue (server-first-message "r=..."), SASLFinal ("v=...").
        11 | 12 => {
            let want = if code == 11 { b'r' } else { b'v' };
            strong_if(body > 6 && at(input, 9)? == want && at(input, 10)? == b'=')
        }
        8 => Ok(Verdict::Weak),
        _ => Ok(Verdict::No),
    }
}

/// Severity ('S', localized), optionally the non-localized one ('V'), then
/// the SQLSTATE ('C', five digits or upper-case letters).
fn error_fields(input: &[u8], end: usize) -> Check {
    if at(input, 5)? != b'S' {
        return Ok(Verdict::No);
    }
    let n = severity(input, 6, end)?;
    let mut i = 6 + n + 1;
    if at(input, i)? == b'V' {
        let n = severity(input, i + 1, end)?;
        i += 1 + n + 1;
    }
    if at(input, i)? != b'C' || i + 7 > end {
        return Ok(Verdict::No);
    }
    for j in i + 1..i + 6 {
        let b = at(input, j)?;
        if !(b.is_ascii_digit() || b.is_ascii_uppercase()) {
            return Ok(Verdict::No);
        }
    }
    strong_if(at(input, i + 6)? == 0)
}

/// A severity word (up to 32 bytes, upper case or non-ASCII when localized).
fn severity(input: &[u8], i: usize, end: usize) -> Result<usize, Verdict> {
    for n in 0..32 {
        if i + n >= end {
            return Err(Verdict::No);
        }
        match at(input, i + n)? {
            0 if n > 0 => return Ok(n),
            b'A'..=b'Z' | 0x80..=0xff => {}
            _ => return Err(Verdict::No),
        }
    }
    Err(Verdict::No)
}

/// "SELECT 1", "INSERT 0 1", "CREATE TABLE": upper-case words and numbers,
/// NUL at the end of the body.
fn command_tag(input: &[u8], end: usize) -> Check {
    if !(5 + 2..=5 + 64).contains(&end) || !at(input, 5)?.is_ascii_uppercase() {
        return Ok(Verdict::No);
    }
    for i in 6..end {
        let b = at(input, i)?;
        let ok = if i + 1 == end {
            b == 0
        } else {
            b.is_ascii_uppercase() || b.is_ascii_digit() || b == b' ' || b == b'_'
        };
        if !ok {
            return Ok(Verdict::No);
        }
    }
    Ok(Verdict::Strong)
}

/// Field count, then the first field: name, table oid, column number, type
/// oid, type size, type modifier, format code 0 or 1.
fn row_description(input: &[u8], end: usize) -> Check {
    let fields = u16_at(input, 5)?;
    if fields == 0 || fields > 1664 {
        return Ok(Verdict::No);
    }
    let n = name(input, 7, end, true)?;
    let i = 7 + n + 1;
    if i + 18 > end {
        return Ok(Verdict::No);
    }
    strong_if(u16_at(input, i + 16)? <= 1)
}

#[cfg(test)]
mod tests {
    use super::{request_verdict, response_verdict};
    use crate::Verdict;

    /// The first bytes each side sent on each connection of the recordings.
    fn recorded_starts() -> Vec<(Vec<u8>, Vec<u8>)> {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/pgsql");
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir).expect("recordings") {
            let text = std::fs::read_to_string(entry.expect("entry").path()).expect("file");
            let mut conns: std::collections::BTreeMap<&str, (Vec<u8>, Vec<u8>)> =
                Default::default();
            for line in text.lines().filter(|l| !l.starts_with('#')) {
                let f: Vec<&str> = line.split(' ').collect();
                let bytes: Vec<u8> = (0..f[3].len())
                    .step_by(2)
                    .map(|i| u8::from_str_radix(&f[3][i..i + 2], 16).expect("hex"))
                    .collect();
                let side = conns.entry(f[0]).or_default();
                let buf = if f[1] == "C" {
                    &mut side.0
                } else {
                    &mut side.1
                };
                buf.extend_from_slice(&bytes);
            }
            out.extend(conns.into_values());
        }
        out
    }

    /// Verdicts of every prefix: undecided, then one answer for good.
    fn settled(verdict: fn(&[u8]) -> Verdict, input: &[u8]) -> Verdict {
        let mut seen = None;
        for len in 0..=input.len().min(128) {
            let v = verdict(&input[..len]);
            match seen {
                Some(s) => assert_eq!(v, s, "changed at {len} bytes"),
                None if v != Verdict::Maybe => seen = Some(v),
                None => {}
            }
        }
        seen.unwrap_or(Verdict::Maybe)
    }

    #[test]
    fn recorded_streams_start_with_strong_evidence() {
        let starts = recorded_starts();
        assert!(starts.len() >= 15);
        for (client, server) in starts {
            assert_eq!(settled(request_verdict, &client), Verdict::Strong);
            // A TLS server's 'S' before ciphertext is weak on its own.
            let want = if server.get(1) == Some(&0x16) {
                Verdict::Weak
            } else {
                Verdict::Strong
            };
            assert_eq!(settled(response_verdict, &server), want, "{server:02x?}");
        }
    }

    /// Evidence only grows: over mutations of the recorded starts, a verdict
    /// once decided holds for every longer prefix (`settled` asserts it).
    #[test]
    fn verdicts_never_change_once_decided() {
        let mut state = 7_u64;
        let mut next = |n: usize| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 33) as usize % n.max(1)
        };
        for (client, server) in recorded_starts() {
            for seed in [client, server] {
                let seed = &seed[..seed.len().min(96)];
                for _ in 0..200 {
                    let mut input = seed.to_vec();
                    for _ in 0..1 + next(4) {
                        let at = next(input.len() + 1);
                        match next(3) {
                            0 if at < input.len() => input[at] ^= 1 << next(8),
                            1 if at < input.len() => input[at] = next(256) as u8,
                            _ => input.truncate(at),
                        }
                    }
                    settled(request_verdict, &input);
                    settled(response_verdict, &input);
                }
            }
        }
    }

    /// No other protocol claims PostgreSQL's first bytes: `detect` says
    /// PostgreSQL or waits for more.
    #[test]
    fn other_protocols_do_not_claim_recorded_streams() {
        for (client, server) in recorded_starts() {
            for input in [&client, &server] {
                for len in [1, 5, 8, 16, 64, input.len()] {
                    let prefix = &input[..len.min(input.len())];
                    let protocol = crate::detect(prefix).map(|d| d.protocol);
                    assert!(
                        matches!(protocol, None | Some(crate::Protocol::Pgsql)),
                        "{prefix:02x?}: {protocol:?}"
                    );
                }
            }
            // A client's first message is recognised as a request.
            assert_eq!(
                crate::detect(&client),
                Some(crate::Detection {
                    protocol: crate::Protocol::Pgsql,
                    kind: crate::MessageKind::Request
                })
            );
        }
    }

    #[test]
    fn other_protocols_and_random_bytes_are_not_strong() {
        let others: &[&[u8]] = &[
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
            b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n",
            b"+OK\r\n",
            b"-ERR unknown command\r\n",
            b"\x21\0\0\0\x03SELECT id FROM users WHERE x = 1",
            b"\x4a\0\0\0\x0a8.0.36\0\x08\0\0\0abcdefgh\0\xff\xf7",
            b"\x16\x03\x01\x02\0\x01\0\x01\xfc\x03\x03",
            b"\0\x1d\x12\x34\x01\0\0\x01\0\0\0\0\0\0\x07example\x03com\0\0\x01\0\x01",
            b"SSH-2.0-OpenSSH_9.2p1\r\n",
            b"\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0",
        ];
        for input in others {
            assert_ne!(request_verdict(input), Verdict::Strong, "{input:?}");
            assert_ne!(response_verdict(input), Verdict::Strong, "{input:?}");
        }
        let mut state = 0x5eed_u64;
        let mut strong = 0;
        for _ in 0..50_000 {
            let input: Vec<u8> = (0..64)
                .map(|_| {
                    state = state
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    (state >> 33) as u8
                })
                .collect();
            strong += usize::from(request_verdict(&input) == Verdict::Strong);
            strong += usize::from(response_verdict(&input) == Verdict::Strong);
        }
        assert_eq!(strong, 0);
    }

    #[test]
    fn startup_phase_messages() {
        let ssl = b"\0\0\0\x08\x04\xd2\x16\x2f";
        assert_eq!(request_verdict(ssl), Verdict::Strong);
        assert_eq!(request_verdict(&ssl[..7]), Verdict::Maybe);
        assert_eq!(
            request_verdict(b"\0\0\0\x09\x04\xd2\x16\x2f\0"),
            Verdict::No
        );
        let startup = b"\0\0\0\x17\0\x03\0\0user\0bob\0\0";
        assert_eq!(request_verdict(startup), Verdict::Strong);
        // Protocol 2.0 is not followed.
        assert_eq!(
            request_verdict(b"\0\0\0\x17\0\x02\0\0user\0bob\0\0"),
            Verdict::No
        );
        assert_eq!(response_verdict(b"R\0\0\0\x08\0\0\0\0"), Verdict::Strong);
        assert_eq!(response_verdict(b"R\0\0\0\x08\0\0\0\x05"), Verdict::No);
        assert_eq!(response_verdict(b"NR\0\0\0\x08\0\0\0\0"), Verdict::Strong);
        assert_eq!(response_verdict(b"N"), Verdict::Maybe);
        assert_eq!(response_verdict(b"Z\0\0\0\x05I"), Verdict::Strong);
        assert_eq!(response_verdict(b"Z\0\0\0\x05X"), Verdict::No);
    }
}
