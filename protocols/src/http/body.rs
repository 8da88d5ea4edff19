//! Body framing (RFC 9112 section 6 and 7.1): how many of the bytes after a
//! head belong to the message, with chunked framing removed.
//!
//! Bodies are streamed through a callback and never buffered here, so a body
//! of any size costs constant memory; the caller decides what to keep.

use super::HttpError;

/// How the end of a body is found, and how far the reader has got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Body {
    /// Content-Length framing (also used with 0 for messages without a body):
    /// this many bytes still belong to the body.
    Length { remaining: u64 },
    /// Transfer-Encoding: chunked.
    Chunked(Chunked),
    /// No framing at all (a response without Content-Length or chunked):
    /// the body runs until the connection closes.
    UntilClose,
}

/// Position inside a chunked body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Chunked {
    /// Reading the hex chunk size at the start of a chunk line.
    /// `line_len` counts the bytes of the line so far, against the cap.
    Size {
        value: u64,
        digits: usize,
        line_len: usize,
    },
    /// After the size: whitespace and chunk extensions, skipped up to LF.
    Extension { value: u64, line_len: usize },
    /// Inside chunk data.
    Data { remaining: u64 },
    /// The CRLF that ends chunk data.
    DataEnd { saw_cr: bool },
    /// Trailer fields after the last chunk, skipped up to an empty line.
    /// `line_len` counts non-CR bytes of the current line (0 = still empty).
    Trailers { line_len: usize, section_len: usize },
}

impl Chunked {
    pub(super) fn start() -> Self {
        Chunked::Size {
            value: 0,
            digits: 0,
            line_len: 0,
        }
    }
}

/// Result of one [`Body::feed`] call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Fed {
    /// Bytes of the input that belong to this body (framing included).
    pub consumed: usize,
    /// The body (and so the message) is complete.
    pub done: bool,
}

impl Body {
    /// Consumes as much of `input` as belongs to the body, passing decoded body
    /// bytes to `on_data`. `max_line` bounds chunk-size lines and the trailer
    /// section: the only parts of a body that are read byte by byte, and
    /// which a broken or hostile peer could otherwise make endless.
    pub(super) fn feed(
        &mut self,
        input: &[u8],
        max_line: usize,
        on_data: &mut impl FnMut(&[u8]),
    ) -> Result<Fed, HttpError> {
        match self {
            Body::Length { remaining } => {
                let (data, _) = take_up_to(input, *remaining);
                on_data(data);
                *remaining -= data.len() as u64;
                Ok(Fed {
                    consumed: data.len(),
                    done: *remaining == 0,
                })
            }
            Body::UntilClose => {
                on_data(input);
                Ok(Fed {
                    consumed: input.len(),
                    done: false,
                })
            }
            Body::Chunked(chunked) => chunked.feed(input, max_line, on_data),
        }
    }

    /// Accounts for `n` lost bytes if they certainly fall inside body data;
    /// returns false (state untouched) when they might not, e.g. when they
    /// would cover chunk framing whose content is unknown.
    pub(super) fn skip_gap(&mut self, n: u64) -> bool {
        match self {
            Body::UntilClose => true,
            Body::Length { remaining } if *remaining >= n => {
                *remaining -= n;
                true
            }
            Body::Chunked(Chunked::Data { remaining }) if *remaining >= n => {
                *remaining -= n;
                if *remaining == 0 {
                    *self = Body::Chunked(Chunked::DataEnd { saw_cr: false });
                }
                true
            }
            _ => false,
        }
    }

    /// True when no more bytes belong to the body (only a Content-Length body
    /// can end without reading a terminator).
    pub(super) fn is_done(&self) -> bool {
        matches!(self, Body::Length { remaining: 0 })
    }
}

impl Chunked {
    fn feed(
        &mut self,
        input: &[u8],
        max_line: usize,
        on_data: &mut impl FnMut(&[u8]),
    ) -> Result<Fed, HttpError> {
        let mut pos = 0;
        loop {
            let rest = input.get(pos..).unwrap_or_default();
            if let Chunked::Data { remaining } = self {
                // Data is copied in bulk; everything else goes byte by byte.
                let (data, _) = take_up_to(rest, *remaining);
                on_data(data);
                *remaining -= data.len() as u64;
                pos += data.len();
                if *remaining == 0 {
                    *self = Chunked::DataEnd { saw_cr: false };
                    continue;
                }
                return Ok(Fed {
                    consumed: pos,
                    done: false,
                });
            }
            let Some(&byte) = rest.first() else {
                return Ok(Fed {
                    consumed: pos,
                    done: false,
                });
            };
            pos += 1;
            if self.step(byte, max_line)? {
                return Ok(Fed {
                    consumed: pos,
                    done: true,
                });
            }
        }
    }

    /// Advances the framing state by one byte; true when the body ended.
    fn step(&mut self, byte: u8, max_line: usize) -> Result<bool, HttpError> {
        match *self {
            Chunked::Size {
                value,
                digits,
                line_len,
            } => {
                let line_len = bump_line(line_len, max_line)?;
                if let Some(digit) = hex_value(byte) {
                    // checked: a size beyond u64 is garbage, not a big chunk.
                    let value = value
                        .checked_mul(16)
                        .and_then(|v| v.checked_add(digit))
                        .ok_or(HttpError::InvalidChunk)?;
                    *self = Chunked::Size {
                        value,
                        digits: digits + 1,
                        line_len,
                    };
                } else if digits == 0 {
                    return Err(HttpError::InvalidChunk);
                } else {
                    match byte {
                        b'\n' => self.end_size_line(value),
                        // BWS before ';', the extension itself, or the CR of
                        // CRLF. Extensions carry nothing we record, so their
                        // syntax is not checked beyond this first byte.
                        b';' | b' ' | b'\t' | b'\r' => {
                            *self = Chunked::Extension { value, line_len };
                        }
                        _ => return Err(HttpError::InvalidChunk),
                    }
                }
            }
            Chunked::Extension { value, line_len } => {
                let line_len = bump_line(line_len, max_line)?;
                if byte == b'\n' {
                    self.end_size_line(value);
                } else {
                    *self = Chunked::Extension { value, line_len };
                }
            }
            Chunked::DataEnd { saw_cr } => match byte {
                b'\r' if !saw_cr => *self = Chunked::DataEnd { saw_cr: true },
                // A bare LF is accepted: the observed server may be lenient
                // too, and rejecting would lose the rest of the message.
                b'\n' => *self = Chunked::start(),
                _ => return Err(HttpError::InvalidChunk),
            },
            Chunked::Trailers {
                line_len,
                section_len,
            } => {
                let section_len = section_len + 1;
                if section_len > max_line {
                    return Err(HttpError::HeadTooLarge);
                }
                match byte {
                    b'\n' if line_len == 0 => return Ok(true),
                    b'\n' => {
                        *self = Chunked::Trailers {
                            line_len: 0,
                            section_len,
                        }
                    }
                    b'\r' => {
                        *self = Chunked::Trailers {
                            line_len,
                            section_len,
                        }
                    }
                    _ => {
                        *self = Chunked::Trailers {
                            line_len: line_len + 1,
                            section_len,
                        }
                    }
                }
            }
            // Handled in bulk by `feed`; never reached with a byte.
            Chunked::Data { .. } => {}
        }
        Ok(false)
    }

    fn end_size_line(&mut self, value: u64) {
        *self = if value == 0 {
            Chunked::Trailers {
                line_len: 0,
                section_len: 0,
            }
        } else {
            Chunked::Data { remaining: value }
        };
    }
}

/// Splits off at most `limit` bytes from the front of `input`.
fn take_up_to(input: &[u8], limit: u64) -> (&[u8], &[u8]) {
    let n = usize::try_from(limit)
        .unwrap_or(usize::MAX)
        .min(input.len());
    input.split_at_checked(n).unwrap_or((input, &[]))
}

fn bump_line(line_len: usize, max_line: usize) -> Result<usize, HttpError> {
    let line_len = line_len + 1;
    if line_len > max_line {
        return Err(HttpError::InvalidChunk);
    }
    Ok(line_len)
}

fn hex_value(byte: u8) -> Option<u64> {
    char::from(byte).to_digit(16).map(u64::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` in one piece to a fresh chunked reader.
    fn run(input: &[u8]) -> (Result<Fed, HttpError>, Vec<u8>) {
        let mut body = Body::Chunked(Chunked::start());
        let mut out = Vec::new();
        let fed = body.feed(input, 64, &mut |d| out.extend_from_slice(d));
        (fed, out)
    }

    /// Input, result of feeding it at once, decoded data.
    type Case = (&'static [u8], Result<Fed, HttpError>, &'static [u8]);

    #[test]
    fn chunked_cases() {
        let cases: &[Case] = &[
            (
                b"0\r\n\r\n",
                Ok(Fed {
                    consumed: 5,
                    done: true,
                }),
                b"",
            ),
            (
                b"3\r\nabc\r\n0\r\n\r\nNEXT",
                Ok(Fed {
                    consumed: 13,
                    done: true,
                }),
                b"abc",
            ),
            (
                b"A;name=\"v;x\"\r\n0123456789\n0\nT: v\r\n\n",
                Ok(Fed {
                    consumed: 34,
                    done: true,
                }),
                b"0123456789",
            ),
            (
                b"00003 \t;x\r\nabc\r\n",
                Ok(Fed {
                    consumed: 16,
                    done: false,
                }),
                b"abc",
            ),
            (b"\r\n", Err(HttpError::InvalidChunk), b""),
            (b"x\r\n", Err(HttpError::InvalidChunk), b""),
            (b"3x\r\n", Err(HttpError::InvalidChunk), b""),
            (b"3\r\nabcX", Err(HttpError::InvalidChunk), b"abc"),
            (b"3\r\nabc\r\r", Err(HttpError::InvalidChunk), b"abc"),
            (b"10000000000000000\r\n", Err(HttpError::InvalidChunk), b""),
            (
                b"ffffffffffffffff\r\nab",
                Ok(Fed {
                    consumed: 20,
                    done: false,
                }),
                b"ab",
            ),
        ];
        for (input, want, data) in cases {
            let (fed, out) = run(input);
            assert_eq!(&fed, want, "input {:?}", String::from_utf8_lossy(input));
            assert_eq!(
                &out[..],
                *data,
                "input {:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn chunk_line_and_trailer_caps() {
        let long_ext = [b"1;".as_slice(), &[b'e'; 70]].concat();
        assert_eq!(run(&long_ext).0, Err(HttpError::InvalidChunk));
        let long_trailer = [b"0\r\n".as_slice(), &[b't'; 70]].concat();
        assert_eq!(run(&long_trailer).0, Err(HttpError::HeadTooLarge));
    }

    #[test]
    fn gaps() {
        let mut body = Body::Length { remaining: 10 };
        assert!(body.skip_gap(4));
        assert!(!body.skip_gap(7));
        assert_eq!(body, Body::Length { remaining: 6 });
        assert!(body.skip_gap(6));
        assert!(body.is_done());

        let mut body = Body::Chunked(Chunked::Data { remaining: 3 });
        assert!(body.skip_gap(3));
        assert_eq!(body, Body::Chunked(Chunked::DataEnd { saw_cr: false }));
        assert!(!body.skip_gap(1), "gap over chunk framing");
        assert!(Body::UntilClose.skip_gap(u64::MAX));
    }
}
