//! The SSL BIO's read and write methods (`ssl_read`/`ssl_write` of
//! OpenSSL's bio_ssl.c): programs that do their I/O through the SSL BIO
//! (`openssl s_server -www`, `BIO_new_ssl_connect` clients) never call
//! `SSL_read`/`SSL_write` — the BIO calls libssl's internals — so these
//! static functions are probed too. They have no symbol: they are found
//! through the method table the exported `BIO_f_ssl` returns, by reading
//! its x86-64 code and the table's relocations. Nothing is guessed: any
//! other shape gives nothing.

use object::{Architecture, Object, ObjectSection, ReadRef, RelocationFlags, SectionFlags};

use super::elf::text_file_offset;

/// `BIO_TYPE_SSL` (7 | BIO_TYPE_FILTER), the first field of the SSL BIO's method table.
const BIO_TYPE_SSL: u32 = 0x0207;
/// Offsets in OpenSSL's `BIO_METHOD` since 1.1.1: int type; const char
/// *name; bwrite; bwrite_old; bread; bread_old; ... The SSL BIO leaves the
/// `_old` slots empty; 1.1.0's table (bwrite, bread, ... with other
/// signatures) has its read function in the first of them, and is refused.
const BIO_METHOD_BWRITE: u64 = 16;
const BIO_METHOD_BWRITE_OLD: u64 = 24;
const BIO_METHOD_BREAD: u64 = 32;
const BIO_METHOD_BREAD_OLD: u64 = 40;

/// File offsets of the SSL BIO's write and read methods (`ssl_write` and
/// `ssl_read` of OpenSSL's bio_ssl.c, static functions with no symbol),
/// read from the method table `BIO_f_ssl` (at `address`) returns. None when
/// the code or the table is not the expected shape: nothing is guessed.
pub(super) fn ssl_bio_methods<'data, R: ReadRef<'data>>(
    file: &object::File<'data, R>,
    address: u64,
) -> Option<(u64, u64)> {
    if file.architecture() != Architecture::X86_64 {
        return None;
    }
    let code = bytes_at(file, address, 12)?;
    let table = returned_address(code, address)?;
    let kind = u32::from_le_bytes(bytes_at(file, table, 4)?.try_into().ok()?);
    if kind != BIO_TYPE_SSL {
        return None;
    }
    for old_slot in [BIO_METHOD_BWRITE_OLD, BIO_METHOD_BREAD_OLD] {
        if pointer_at(file, table.checked_add(old_slot)?)? != 0 {
            return None;
        }
    }
    let write = pointer_at(file, table.checked_add(BIO_METHOD_BWRITE)?)?;
    let read = pointer_at(file, table.checked_add(BIO_METHOD_BREAD)?)?;
    Some((
        text_file_offset(file, write)?,
        text_file_offset(file, read)?,
    ))
}

/// The address a function of the form `return &static_object;` returns,
/// from its x86-64 machine code at `address`: `[endbr64] lea rax,
/// [rip+disp32]; ret` (position-independent code) or `[endbr64] mov eax,
/// imm32; ret` (non-PIE executables). None for any other code.
fn returned_address(code: &[u8], address: u64) -> Option<u64> {
    const ENDBR64: [u8; 4] = [0xf3, 0x0f, 0x1e, 0xfa];
    let (code, address) = match code.strip_prefix(&ENDBR64) {
        Some(rest) => (rest, address.checked_add(4)?),
        None => (code, address),
    };
    match code {
        [0x48, 0x8d, 0x05, d0, d1, d2, d3, 0xc3, ..] => {
            let displacement = i32::from_le_bytes([*d0, *d1, *d2, *d3]);
            address
                .checked_add(7)?
                .checked_add_signed(displacement.into())
        }
        [0xb8, i0, i1, i2, i3, 0xc3, ..] => Some(u32::from_le_bytes([*i0, *i1, *i2, *i3]).into()),
        _ => None,
    }
}

/// Up to `len` bytes of the file's contents from virtual address `address`
/// (fewer at the end of a section; None if no section holds the address).
fn bytes_at<'data, R: ReadRef<'data>>(
    file: &object::File<'data, R>,
    address: u64,
    len: usize,
) -> Option<&'data [u8]> {
    file.sections().find_map(|section| {
        let loaded = match section.flags() {
            SectionFlags::Elf { sh_flags } => sh_flags & u64::from(object::elf::SHF_ALLOC) != 0,
            _ => false,
        };
        let start = address.checked_sub(section.address())?;
        if !loaded || start >= section.size() {
            return None;
        }
        // Empty for sections that take no file space (.bss, .tbss): skipped.
        let rest = section.data().ok()?.get(usize::try_from(start).ok()?..)?;
        rest.get(..len)
            .or(Some(rest))
            .filter(|bytes| !bytes.is_empty())
    })
}

/// The pointer stored at `address` once the dynamic loader has relocated it:
/// the addend of its `R_X86_64_RELATIVE` relocation, or, without one, the
/// value in the file (RELR-packed relocations, non-PIE executables). None if
/// another relocation (a symbol's) sets it.
fn pointer_at<'data, R: ReadRef<'data>>(
    file: &object::File<'data, R>,
    address: u64,
) -> Option<u64> {
    if let Some(relocations) = file.dynamic_relocations() {
        for (offset, relocation) in relocations {
            if offset != address {
                continue;
            }
            let relative = RelocationFlags::Elf {
                r_type: object::elf::R_X86_64_RELATIVE,
            };
            if relocation.flags() != relative {
                return None;
            }
            if !relocation.has_implicit_addend() {
                return u64::try_from(relocation.addend()).ok();
            }
            break;
        }
    }
    let stored = bytes_at(file, address, 8)?;
    Some(u64::from_le_bytes(stored.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn returned_address_decodes_only_return_of_a_static_address() {
        let cases: &[(&[u8], Option<u64>)] = &[
            // lea rax,[rip+0x78729]; ret (Debian's libssl.so.3 at 0x230d0)
            (
                &[0x48, 0x8d, 0x05, 0x29, 0x87, 0x07, 0x00, 0xc3],
                Some(0x9b800),
            ),
            // endbr64 first: rip is 4 bytes further
            (
                &[
                    0xf3, 0x0f, 0x1e, 0xfa, 0x48, 0x8d, 0x05, 0x29, 0x87, 0x07, 0x00, 0xc3,
                ],
                Some(0x9b804),
            ),
            // negative displacement
            (
                &[0x48, 0x8d, 0x05, 0xf9, 0xff, 0xff, 0xff, 0xc3],
                Some(0x230d0),
            ),
            // mov eax, 0x4c6f80; ret (non-PIE)
            (&[0xb8, 0x80, 0x6f, 0x4c, 0x00, 0xc3], Some(0x4c_6f80)),
            // lea without ret: not a plain `return &x`
            (&[0x48, 0x8d, 0x05, 0x29, 0x87, 0x07, 0x00, 0x90], None),
            // lea into rcx, truncated code, nothing
            (&[0x48, 0x8d, 0x0d, 0x29, 0x87, 0x07, 0x00, 0xc3], None),
            (&[0x48, 0x8d, 0x05, 0x29], None),
            (&[0xf3, 0x0f, 0x1e, 0xfa], None),
            (&[], None),
        ];
        for (code, expected) in cases {
            assert_eq!(returned_address(code, 0x230d0), *expected, "{code:02x?}");
        }
    }
}
