//! The file-backed mappings of a process (/proc/PID/maps), and which of
//! them look like OpenSSL's libssl.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// One file-backed mapping of /proc/PID/maps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    pub path: String,
    pub inode: u64,
    pub deleted: bool,
}

/// The file-backed mappings in the text of /proc/PID/maps, one per distinct
/// path, in order of first appearance. Malformed lines are skipped.
pub fn parse_maps(text: &str) -> Vec<Mapping> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for line in text.lines() {
        // address perms offset dev inode [path, which may contain spaces]
        let mut rest = line;
        let mut fields = [""; 5];
        let mut complete = true;
        for field in fields.iter_mut() {
            rest = rest.trim_start_matches(' ');
            let end = rest.find(' ').unwrap_or(rest.len());
            let (value, tail) = rest.split_at(end);
            if value.is_empty() {
                complete = false;
                break;
            }
            *field = value;
            rest = tail;
        }
        let path = rest.trim_start_matches(' ');
        let Ok(inode) = fields[4].parse::<u64>() else {
            continue;
        };
        if !complete || inode == 0 || !path.starts_with('/') {
            continue;
        }
        let (path, deleted) = match path.strip_suffix(" (deleted)") {
            Some(p) => (p, true),
            None => (path, false),
        };
        if seen.insert(path.to_string()) {
            out.push(Mapping {
                path: path.to_string(),
                inode,
                deleted,
            });
        }
    }
    out
}

/// Whether a file name looks like OpenSSL's libssl (`libssl.so.3`,
/// `libssl.so.1.1`, `libssl-a1b2c3.so.3` as bundled by Python wheels). The
/// symbols decide; NSS's `libssl3.so` passes here and fails there.
pub fn is_libssl_name(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    name.starts_with("libssl") && name.contains(".so")
}

/// /proc/PID/map_files/<range> of the first mapping of `path` (deleted files).
pub fn map_files_entry(proc: &Path, path: &str, maps: &str) -> Option<PathBuf> {
    let line = maps.lines().find(|l| l.contains(path))?;
    let range = line.split(' ').next()?;
    Some(proc.join("map_files").join(range))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAPS: &str = "\
55d0c0a00000-55d0c0a2a000 r--p 00000000 fd:01 1835123                    /usr/bin/curl
7f1c2a000000-7f1c2a021000 r--p 00000000 fd:01 1836001                    /usr/lib/x86_64-linux-gnu/libssl.so.3
7f1c2a021000-7f1c2a0a0000 r-xp 00021000 fd:01 1836001                    /usr/lib/x86_64-linux-gnu/libssl.so.3
7f1c2b000000-7f1c2b001000 rw-p 00000000 00:00 0 
7f1c2c000000-7f1c2c021000 r-xp 00000000 00:1f 99                         /tmp/my libs/libssl.so.1.1 (deleted)
7ffd1e000000-7ffd1e021000 rw-p 00000000 00:00 0                          [stack]
garbage line
";

    #[test]
    fn maps_lines_become_distinct_file_mappings() {
        assert_eq!(
            parse_maps(MAPS),
            vec![
                Mapping {
                    path: "/usr/bin/curl".into(),
                    inode: 1_835_123,
                    deleted: false
                },
                Mapping {
                    path: "/usr/lib/x86_64-linux-gnu/libssl.so.3".into(),
                    inode: 1_836_001,
                    deleted: false
                },
                Mapping {
                    path: "/tmp/my libs/libssl.so.1.1".into(),
                    inode: 99,
                    deleted: true
                },
            ]
        );
        assert_eq!(parse_maps(""), vec![]);
    }

    #[test]
    fn libssl_names() {
        assert!(is_libssl_name("/usr/lib/x86_64-linux-gnu/libssl.so.3"));
        assert!(is_libssl_name("/usr/lib/libssl.so.1.1"));
        assert!(is_libssl_name(
            "/venv/lib/python3.11/site-packages/x.libs/libssl-4a1b2c.so.3"
        ));
        assert!(is_libssl_name("libssl.so"));
        assert!(!is_libssl_name("/usr/lib/x86_64-linux-gnu/libcrypto.so.3"));
        assert!(!is_libssl_name("/usr/lib/x86_64-linux-gnu/libssl.a"));
        assert!(!is_libssl_name("/opt/libssl/bin/app"));
    }
}
