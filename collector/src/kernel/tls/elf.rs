//! The OpenSSL functions an ELF file defines, with the file offsets a
//! uprobe is attached to.

use std::collections::HashMap;
use std::path::Path;

use object::{Object, ObjectSection, ObjectSymbol, SymbolKind};
use sonde_ebpf::TLS_UPROBES;

/// Files larger than this are not parsed for symbols.
const MAX_ELF_BYTES: u64 = 1 << 30;

/// The TLS functions a file defines, with their file offsets (what a uprobe
/// is attached to), in `TLS_UPROBES` order. Err if it is not an ELF object.
pub fn tls_symbols(data: &[u8]) -> Result<Vec<(&'static str, u64)>, String> {
    let file = object::File::parse(data).map_err(|e| format!("not an ELF object: {e}"))?;
    let mut found: HashMap<&'static str, u64> = HashMap::new();
    for symbol in file.dynamic_symbols().chain(file.symbols()) {
        if symbol.is_undefined() || symbol.kind() != SymbolKind::Text {
            continue;
        }
        let Ok(name) = symbol.name() else {
            continue;
        };
        let Some(&(_, _, wanted)) = TLS_UPROBES.iter().find(|(_, _, s)| *s == name) else {
            continue;
        };
        if found.contains_key(wanted) {
            continue;
        }
        let Some(index) = symbol.section_index() else {
            continue;
        };
        let Ok(section) = file.section_by_index(index) else {
            continue;
        };
        let Some((section_offset, _)) = section.file_range() else {
            continue;
        };
        let offset = symbol
            .address()
            .checked_sub(section.address())
            .and_then(|o| o.checked_add(section_offset));
        if let Some(offset) = offset {
            found.insert(wanted, offset);
        }
    }
    Ok(TLS_UPROBES
        .iter()
        .filter_map(|&(_, _, name)| found.get(name).map(|&off| (name, off)))
        .collect())
}

/// True if the symbols cover at least one read and one write function.
pub fn covers_read_and_write(symbols: &[(&str, u64)]) -> bool {
    let has = |prefix: &str| symbols.iter().any(|(s, _)| s.starts_with(prefix));
    has("SSL_read") && has("SSL_write")
}

/// A read-only private mapping of a whole file (symbol tables are read lazily).
struct MappedFile {
    ptr: *mut libc::c_void,
    len: usize,
}

impl MappedFile {
    fn open(path: &Path) -> Result<MappedFile, String> {
        let file = std::fs::File::open(path).map_err(|e| format!("open: {e}"))?;
        let len = file.metadata().map_err(|e| format!("stat: {e}"))?.len();
        if len == 0 || len > MAX_ELF_BYTES {
            return Err(format!("size {len} bytes not parsed"));
        }
        let len = usize::try_from(len).map_err(|_| "too large".to_string())?;
        use std::os::fd::AsRawFd;
        // SAFETY: a fresh private read-only mapping of an open fd; the result is checked.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_PRIVATE,
                file.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(format!("mmap: {}", std::io::Error::last_os_error()));
        }
        Ok(MappedFile { ptr, len })
    }

    fn bytes(&self) -> &[u8] {
        // SAFETY: ptr/len describe a live read-only mapping owned by self.
        unsafe { std::slice::from_raw_parts(self.ptr.cast::<u8>(), self.len) }
    }
}

impl Drop for MappedFile {
    fn drop(&mut self) {
        // SAFETY: unmapping the mapping created in open, once.
        unsafe { libc::munmap(self.ptr, self.len) };
    }
}

/// The TLS symbols of the file at `path` (None: it defines none of them).
pub fn file_tls_symbols(path: &Path) -> Result<Vec<(&'static str, u64)>, String> {
    let mapped = MappedFile::open(path)?;
    tls_symbols(mapped.bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_elf_bytes_are_an_error() {
        assert!(tls_symbols(b"definitely not an ELF file").is_err());
        assert!(tls_symbols(&[]).is_err());
    }

    #[test]
    fn a_binary_without_openssl_defines_no_tls_symbols() {
        let exe = std::env::current_exe().unwrap();
        assert_eq!(file_tls_symbols(&exe).unwrap(), vec![]);
    }

    #[test]
    fn coverage_needs_a_read_and_a_write() {
        assert!(covers_read_and_write(&[("SSL_read", 1), ("SSL_write", 2)]));
        assert!(covers_read_and_write(&[
            ("SSL_read_ex", 1),
            ("SSL_write", 2)
        ]));
        assert!(!covers_read_and_write(&[
            ("SSL_read", 1),
            ("SSL_read_ex", 2)
        ]));
        assert!(!covers_read_and_write(&[]));
    }

    /// The system's OpenSSL 3, where installed: the four functions, at the
    /// offsets readelf lists (Debian's libssl has .text at equal file offset
    /// and address, so the symbol value is the file offset).
    #[test]
    fn finds_the_functions_of_the_system_libssl() {
        let path = Path::new("/usr/lib/x86_64-linux-gnu/libssl.so.3");
        let readelf = std::process::Command::new("readelf")
            .args(["-W", "--dyn-syms"])
            .arg(path)
            .output();
        let Ok(readelf) = readelf.map(|o| String::from_utf8_lossy(&o.stdout).into_owned()) else {
            eprintln!("SKIPPED: no readelf");
            return;
        };
        if !path.exists() {
            eprintln!("SKIPPED: no {}", path.display());
            return;
        }
        let listed = |name: &str| -> u64 {
            readelf
                .lines()
                .find_map(|line| {
                    let cols: Vec<&str> = line.split_whitespace().collect();
                    let symbol = cols.get(7)?.split('@').next()?;
                    (symbol == name && cols.get(3) == Some(&"FUNC"))
                        .then(|| u64::from_str_radix(cols.get(1)?, 16).ok())
                        .flatten()
                })
                .unwrap_or_else(|| panic!("{name} not in readelf output"))
        };
        let symbols = file_tls_symbols(path).unwrap();
        let expected: Vec<(&str, u64)> = [
            "SSL_write",
            "SSL_read",
            "SSL_write_ex",
            "SSL_read_ex",
            "SSL_do_handshake",
        ]
        .into_iter()
        .map(|name| (name, listed(name)))
        .collect();
        assert_eq!(symbols, expected);
    }
}
