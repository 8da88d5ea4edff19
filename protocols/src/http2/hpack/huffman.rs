//! The HPACK Huffman code (RFC 7541 Appendix B).
//!
//! The code is canonical (codes of one length are consecutive, ordered by
//! symbol, and shorter codes come first), so the table is just the code
//! length of each symbol and decoding compares a left-justified 32-bit
//! window against the first code past each length.

/// Code length of each symbol 0..=255 and of EOS (256), from RFC 7541
/// Appendix B.
const CODE_LENGTHS: [u8; 257] = [
    13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 30, 28,
    28, 28, 28, 28, 28, 28, 28, 28, 6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6, 5, 5,
    5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10, 13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
    7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6, 15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6,
    6, 5, 6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28, 20, 22, 20, 20, 22, 22, 22, 23, 22,
    23, 23, 23, 23, 23, 24, 23, 24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24, 22,
    21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23, 21, 21, 22, 21, 23, 22, 23, 23, 20,
    22, 22, 22, 23, 22, 22, 23, 26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25, 19,
    21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27, 20, 24, 20, 21, 22, 21, 21, 23, 22,
    22, 25, 25, 24, 24, 26, 23, 26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26, 30,
];

const EOS: u16 = 256;
const MIN_LEN: usize = 5;
const MAX_LEN: usize = 30;

/// Decoding tables derived from [`CODE_LENGTHS`] at compile time.
struct Tables {
    /// Symbols ordered by (code length, symbol).
    sorted: [u16; 257],
    /// Per length: first code, index of its first symbol in `sorted`, and
    /// the left-justified (32-bit) end of that length's codes.
    first: [u32; MAX_LEN + 1],
    offset: [u16; MAX_LEN + 1],
    limit: [u64; MAX_LEN + 1],
}

const TABLES: Tables = build();

/// Codes of at most 8 bits (the common characters) by the byte they start:
/// `(symbol, length)`, length 0 when the code is longer.
const SHORT: [(u8, u8); 256] = build_short();

const fn build_short() -> [(u8, u8); 256] {
    let mut out = [(0u8, 0u8); 256];
    let mut byte = 0;
    while byte < 256 {
        let window = (byte as u64) << 24;
        let mut len = MIN_LEN;
        while len <= 8 {
            if window < TABLES.limit[len] {
                let index = TABLES.offset[len] as usize
                    + ((window >> (32 - len)) as u32 - TABLES.first[len]) as usize;
                out[byte] = (TABLES.sorted[index] as u8, len as u8);
                break;
            }
            len += 1;
        }
        byte += 1;
    }
    out
}

const fn build() -> Tables {
    let mut t = Tables {
        sorted: [0; 257],
        first: [0; MAX_LEN + 1],
        offset: [0; MAX_LEN + 1],
        limit: [0; MAX_LEN + 1],
    };
    let mut n = 0;
    let mut code: u32 = 0;
    let mut len = 1;
    while len <= MAX_LEN {
        t.first[len] = code;
        t.offset[len] = n as u16;
        let mut count = 0;
        let mut sym = 0;
        while sym < 257 {
            if CODE_LENGTHS[sym] as usize == len {
                t.sorted[n] = sym as u16;
                n += 1;
                count += 1;
            }
            sym += 1;
        }
        t.limit[len] = ((code + count) as u64) << (32 - len);
        code = (code + count) << 1;
        len += 1;
    }
    t
}

/// Invalid Huffman data: an EOS symbol, padding longer than 7 bits or not
/// made of ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct InvalidHuffman;

/// Appends the decoding of `input` to `out`.
pub(crate) fn decode(input: &[u8], out: &mut Vec<u8>) -> Result<(), InvalidHuffman> {
    out.reserve(input.len() * 8 / 5);
    let mut bits: u64 = 0;
    let mut nbits: usize = 0;
    let mut bytes = input.iter();
    loop {
        while nbits <= 56 {
            let Some(&b) = bytes.next() else { break };
            bits = (bits << 8) | u64::from(b);
            nbits += 8;
        }
        if nbits == 0 {
            return Ok(());
        }
        if nbits >= 8 {
            let (sym, len) = SHORT[((bits >> (nbits - 8)) & 0xff) as usize];
            if len > 0 {
                out.push(sym);
                nbits -= usize::from(len);
                bits &= (1u64 << nbits) - 1;
                continue;
            }
        }
        // The next 32 bits, left-justified (zero-filled past the end).
        let window = if nbits >= 32 {
            (bits >> (nbits - 32)) as u32
        } else {
            (bits << (32 - nbits)) as u32
        };
        let mut len = MIN_LEN;
        while len < MAX_LEN && u64::from(window) >= TABLES.limit[len] {
            len += 1;
        }
        if len > nbits {
            // Not a whole code left: this is the padding, a prefix of EOS
            // (all ones) shorter than a byte, and the input is over.
            let mask = (1u64 << nbits) - 1;
            return if nbits <= 7 && bits & mask == mask {
                Ok(())
            } else {
                Err(InvalidHuffman)
            };
        }
        let index =
            usize::from(TABLES.offset[len]) + ((window >> (32 - len)) - TABLES.first[len]) as usize;
        match TABLES.sorted.get(index) {
            Some(&sym) if sym != EOS => out.push(sym as u8),
            _ => return Err(InvalidHuffman),
        }
        nbits -= len;
        bits &= (1u64 << nbits) - 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Code of `sym` rebuilt from the tables.
    fn code_of(sym: u16) -> (u32, usize) {
        let len = usize::from(CODE_LENGTHS[usize::from(sym)]);
        let start = usize::from(TABLES.offset[len]);
        let rank = TABLES.sorted[start..]
            .iter()
            .position(|&s| s == sym)
            .unwrap();
        (TABLES.first[len] + rank as u32, len)
    }

    #[test]
    fn codes_match_rfc_7541_appendix_b() {
        let cases: &[(u16, u32, usize)] = &[
            (0, 0x1ff8, 13),
            (b' ' as u16, 0x14, 6),
            (b'0' as u16, 0x0, 5),
            (b'a' as u16, 0x3, 5),
            (b'z' as u16, 0x7b, 7),
            (b'~' as u16, 0x1ffd, 13),
            (10, 0x3ffffffc, 30),
            (255, 0x3ffffee, 26),
            (EOS, 0x3fffffff, 30),
        ];
        for &(sym, code, len) in cases {
            assert_eq!(code_of(sym), (code, len), "symbol {sym}");
        }
    }

    fn dec(input: &[u8]) -> Result<Vec<u8>, InvalidHuffman> {
        let mut out = Vec::new();
        decode(input, &mut out).map(|()| out)
    }

    #[test]
    fn decodes_and_checks_padding() {
        // RFC 7541 C.4.1: "www.example.com".
        let www = [
            0xf1, 0xe3, 0xc2, 0xe5, 0xf2, 0x3a, 0x6b, 0xa0, 0xab, 0x90, 0xf4, 0xff,
        ];
        assert_eq!(dec(&www).unwrap(), b"www.example.com");
        assert_eq!(dec(&[]).unwrap(), b"");
        // '0' is 00000: with 3 bits of ones as padding.
        assert_eq!(dec(&[0x07]).unwrap(), b"0");
        // Padding of zeros.
        assert_eq!(dec(&[0x00]), Err(InvalidHuffman));
        // A whole byte of padding.
        assert_eq!(dec(&[0x07, 0xff]), Err(InvalidHuffman));
        // EOS itself.
        assert_eq!(dec(&[0xff, 0xff, 0xff, 0xff]), Err(InvalidHuffman));
        // Every symbol round-trips through a hand-built encoding.
        let mut bits: Vec<bool> = Vec::new();
        for sym in 0..=255u16 {
            let (code, len) = code_of(sym);
            bits.extend((0..len).rev().map(|i| code >> i & 1 == 1));
        }
        while !bits.len().is_multiple_of(8) {
            bits.push(true);
        }
        let bytes: Vec<u8> = bits
            .chunks(8)
            .map(|c| c.iter().fold(0u8, |b, &bit| b << 1 | u8::from(bit)))
            .collect();
        assert_eq!(dec(&bytes).unwrap(), (0..=255u8).collect::<Vec<_>>());
    }
}
