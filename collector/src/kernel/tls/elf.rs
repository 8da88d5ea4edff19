//! The OpenSSL functions an ELF file defines, with the file offsets a
//! uprobe is attached to. Files are read through bounded, checked reads
//! (`object::ReadCache`), never mapped: a file truncated while it is read
//! (another process's library being replaced) is an error, not a SIGBUS.

use std::collections::HashMap;
use std::path::Path;

use object::{Object, ObjectSection, ObjectSymbol, ReadCache, ReadRef, SectionKind, SymbolKind};
use sonde_ebpf::{BIO_SSL_READ, BIO_SSL_WRITE, TLS_UPROBES};

use super::ssl_bio::ssl_bio_methods;

/// Files larger than this are not parsed for symbols.
const MAX_ELF_BYTES: u64 = 1 << 30;

/// The TLS functions a file defines, with their file offsets (what a uprobe
/// is attached to), in `TLS_UPROBES` order: the exported `SSL_*` functions,
/// and the SSL BIO's read/write methods found through `BIO_f_ssl`. Err if
/// it is not an ELF object.
pub fn tls_symbols<'data, R: ReadRef<'data>>(data: R) -> Result<Vec<(&'static str, u64)>, String> {
    let file = object::File::parse(data).map_err(|e| format!("not an ELF object: {e}"))?;
    let mut found: HashMap<&'static str, u64> = HashMap::new();
    let mut bio_f_ssl = None;
    for symbol in file.dynamic_symbols().chain(file.symbols()) {
        if symbol.is_undefined() || symbol.kind() != SymbolKind::Text {
            continue;
        }
        let Ok(name) = symbol.name() else {
            continue;
        };
        if name == "BIO_f_ssl" {
            bio_f_ssl.get_or_insert(symbol.address());
            continue;
        }
        let Some(&(_, _, wanted)) = TLS_UPROBES.iter().find(|(_, _, s)| *s == name) else {
            continue;
        };
        if found.contains_key(wanted) {
            continue;
        }
        if let Some(offset) = text_file_offset(&file, symbol.address()) {
            found.insert(wanted, offset);
        }
    }
    if let Some((write, read)) = bio_f_ssl.and_then(|address| ssl_bio_methods(&file, address)) {
        found.insert(BIO_SSL_WRITE, write);
        found.insert(BIO_SSL_READ, read);
    }
    Ok(TLS_UPROBES
        .iter()
        .filter_map(|&(_, _, name)| found.get(name).map(|&off| (name, off)))
        .collect())
}

/// The file offset of code at `address` (None: not in an executable section).
pub(super) fn text_file_offset<'data, R: ReadRef<'data>>(
    file: &object::File<'data, R>,
    address: u64,
) -> Option<u64> {
    let section = file.sections().find(|section| {
        section.kind() == SectionKind::Text
            && address >= section.address()
            && address - section.address() < section.size()
    })?;
    let (section_offset, _) = section.file_range()?;
    section_offset.checked_add(address - section.address())
}

/// True if the symbols cover at least one read and one write function.
pub fn covers_read_and_write(symbols: &[(&str, u64)]) -> bool {
    let has = |prefix: &str| symbols.iter().any(|(s, _)| s.starts_with(prefix));
    has("SSL_read") && has("SSL_write")
}

/// The TLS symbols of the file at `path`, read in bounded pieces.
pub fn file_tls_symbols(path: &Path) -> Result<Vec<(&'static str, u64)>, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("open: {e}"))?;
    open_file_tls_symbols(file)
}

fn open_file_tls_symbols(file: std::fs::File) -> Result<Vec<(&'static str, u64)>, String> {
    let len = file.metadata().map_err(|e| format!("stat: {e}"))?.len();
    if len == 0 || len > MAX_ELF_BYTES {
        return Err(format!("size {len} bytes not parsed"));
    }
    let cache = ReadCache::new(file);
    tls_symbols(&cache)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn non_elf_bytes_are_an_error() {
        assert!(tls_symbols(&b"definitely not an ELF file"[..]).is_err());
        assert!(tls_symbols(&[][..]).is_err());
    }

    #[test]
    fn a_binary_without_openssl_defines_no_tls_symbols() {
        let exe = std::env::current_exe().unwrap();
        assert_eq!(file_tls_symbols(&exe).unwrap(), vec![]);
    }

    /// A library shrinking while it is read (replaced by a package
    /// upgrade) gives an error; mapped, it would kill the agent (SIGBUS).
    #[test]
    fn a_file_truncated_while_it_is_read_is_an_error_not_a_crash() {
        let source = Path::new("/usr/lib/x86_64-linux-gnu/libssl.so.3");
        if !source.exists() {
            eprintln!("SKIPPED: no {}", source.display());
            return;
        }
        let copy = std::env::temp_dir().join(format!("sonde-truncated-{}.so", std::process::id()));
        std::fs::copy(source, &copy).unwrap();
        let file = std::fs::File::open(&copy).unwrap();
        // The size is read (and checked) before the file shrinks.
        let shrink = std::fs::OpenOptions::new().write(true).open(&copy).unwrap();
        let len = file.metadata().unwrap().len();
        let cache = ReadCache::new(file);
        shrink.set_len(len / 8).unwrap();
        let result = tls_symbols(&cache);
        assert!(
            result.is_err() || result.as_ref().is_ok_and(|s| s.len() < 7),
            "{result:?}"
        );
        let _ = std::fs::remove_file(&copy);
        assert!(open_file_tls_symbols(std::fs::File::open(source).unwrap()).is_ok());
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
        // The SSL BIO's methods: the table BIO_f_ssl returns (objdump's note
        // on its `lea`), then the relocations readelf lists at the table's
        // bwrite (+16) and bread (+32) slots.
        let bio_f_ssl = listed("BIO_f_ssl");
        let objdump = tool_output(
            "objdump",
            &[
                "-d",
                &format!("--start-address={bio_f_ssl:#x}"),
                &format!("--stop-address={:#x}", bio_f_ssl + 12),
            ],
            path,
        );
        let table = objdump
            .lines()
            .find(|line| line.contains("lea "))
            .and_then(|line| line.split('#').nth(1)?.split_whitespace().next())
            .and_then(|hex| u64::from_str_radix(hex, 16).ok())
            .unwrap_or_else(|| panic!("no lea in BIO_f_ssl:\n{objdump}"));
        let relocations = tool_output("readelf", &["-W", "-r"], path);
        let relocated = |slot: u64| -> u64 {
            relocations
                .lines()
                .find_map(|line| {
                    let cols: Vec<&str> = line.split_whitespace().collect();
                    (u64::from_str_radix(cols.first()?, 16).ok()? == slot
                        && cols.get(2) == Some(&"R_X86_64_RELATIVE"))
                    .then(|| u64::from_str_radix(cols.get(3)?, 16).ok())
                    .flatten()
                })
                .unwrap_or_else(|| panic!("no relocation at {slot:#x}"))
        };
        let symbols = file_tls_symbols(path).unwrap();
        let mut expected: Vec<(&str, u64)> = [
            "SSL_write",
            "SSL_read",
            "SSL_write_ex",
            "SSL_read_ex",
            "SSL_do_handshake",
        ]
        .into_iter()
        .map(|name| (name, listed(name)))
        .collect();
        expected.push((BIO_SSL_WRITE, relocated(table + 16)));
        expected.push((BIO_SSL_READ, relocated(table + 32)));
        assert_eq!(symbols, expected);
    }

    /// stdout of `tool args... path`, which must succeed.
    fn tool_output(tool: &str, args: &[&str], path: &Path) -> String {
        let out = std::process::Command::new(tool)
            .args(args)
            .arg(path)
            .output()
            .unwrap_or_else(|e| panic!("{tool}: {e}"));
        assert!(out.status.success(), "{tool} {args:?} failed");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// An OpenSSL-shaped object built here: BIO_f_ssl returning a BIO_METHOD
    /// table of two static functions. Their offsets are checked against
    /// `nm` (the object is not stripped), for a shared library with and
    /// without endbr64 and for a non-PIE executable; a table of another
    /// BIO type gives nothing.
    #[test]
    fn finds_the_ssl_bio_methods_through_bio_f_ssl() {
        let dir = std::env::temp_dir().join(format!("sonde-bio-f-ssl-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // `bio_type` and what the bwrite_old slot holds vary: 0x207 and NULL
        // is OpenSSL 1.1.1+'s SSL BIO; a non-NULL second slot is 1.1.0's
        // layout (bwrite, bread, ...: other signatures), refused.
        let source = |bio_type: &str, second_slot: &str| {
            format!(
                "#include <stddef.h>\n\
                 struct bio_method {{ int type; const char *name;\n\
                   int (*bwrite)(void *, const char *, size_t, size_t *);\n\
                   void *bwrite_old;\n\
                   int (*bread)(void *, char *, size_t, size_t *);\n\
                   void *bread_old;\n\
                   void *rest[6]; }};\n\
                 static int ssl_write(void *b, const char *p, size_t n, size_t *w) {{ *w = n; return b != p; }}\n\
                 static int ssl_read(void *b, char *p, size_t n, size_t *r) {{ *r = n + 1; return 2; }}\n\
                 static const struct bio_method methods_sslp = {{ {bio_type}, \"ssl\", ssl_write, {second_slot}, ssl_read, NULL, {{ NULL }} }};\n\
                 const struct bio_method *BIO_f_ssl(void) {{ return &methods_sslp; }}\n\
                 int SSL_read(void *s, void *p, int n) {{ return s == p ? 0 : n; }}\n\
                 int SSL_write(void *s, const void *p, int n) {{ return s == p ? n : 0; }}\n\
                 int main(void) {{ return 0; }}\n"
            )
        };
        std::fs::write(dir.join("ssl.c"), source("0x207", "NULL")).unwrap();
        std::fs::write(dir.join("other.c"), source("0x205", "NULL")).unwrap();
        std::fs::write(dir.join("old.c"), source("0x207", "(void *)ssl_read")).unwrap();
        let build = |name: &str, source: &str, flags: &[&str]| -> Option<PathBuf> {
            let out = dir.join(name);
            let status = std::process::Command::new("cc")
                .args(["-O2", "-o"])
                .arg(&out)
                .arg(dir.join(source))
                .args(flags)
                .status()
                .ok()?;
            assert!(status.success(), "cc {flags:?} failed");
            Some(out)
        };
        let Some(plain) = build(
            "libssl-plain.so",
            "ssl.c",
            &["-shared", "-fPIC", "-fcf-protection=none"],
        ) else {
            eprintln!("SKIPPED: no cc");
            return;
        };
        let builds = [
            plain,
            build(
                "libssl-cet.so",
                "ssl.c",
                &["-shared", "-fPIC", "-fcf-protection=full"],
            )
            .unwrap(),
            build("ssl-nopie", "ssl.c", &["-fno-pie", "-no-pie"]).unwrap(),
        ];
        for path in &builds {
            let nm = tool_output("nm", &[], path);
            let address = |name: &str| -> u64 {
                nm.lines()
                    .find_map(|line| {
                        let cols: Vec<&str> = line.split_whitespace().collect();
                        (cols.get(2) == Some(&name))
                            .then(|| u64::from_str_radix(cols.first()?, 16).ok())
                            .flatten()
                    })
                    .unwrap_or_else(|| panic!("{name} not in nm output of {}", path.display()))
            };
            let data = std::fs::read(path).unwrap();
            let file = object::File::parse(&*data).unwrap();
            let offset = |name: &str| text_file_offset(&file, address(name)).unwrap();
            let symbols = tls_symbols(&data[..]).unwrap();
            assert_eq!(
                symbols,
                vec![
                    ("SSL_write", offset("SSL_write")),
                    ("SSL_read", offset("SSL_read")),
                    (BIO_SSL_WRITE, offset("ssl_write")),
                    (BIO_SSL_READ, offset("ssl_read")),
                ],
                "{}",
                path.display()
            );
        }
        for refused in ["other.c", "old.c"] {
            let path = build(&format!("lib{refused}.so"), refused, &["-shared", "-fPIC"]).unwrap();
            let names: Vec<&str> = tls_symbols(&std::fs::read(&path).unwrap()[..])
                .unwrap()
                .into_iter()
                .map(|(name, _)| name)
                .collect();
            assert_eq!(names, vec!["SSL_write", "SSL_read"], "{refused}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
