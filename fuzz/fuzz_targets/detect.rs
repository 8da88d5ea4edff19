#![no_main]

use libfuzzer_sys::fuzz_target;
use sonde_protocols::http::find_message_start;
use sonde_protocols::{MessageKind, detect};

fuzz_target!(|data: &[u8]| {
    // Evidence only grows with more bytes: once a prefix is detected, every
    // longer prefix gives the same answer.
    let mut seen = None;
    for len in 0..=data.len().min(32) {
        let got = detect(&data[..len]);
        if seen.is_some() {
            assert_eq!(got, seen, "detection changed at {len} bytes");
        }
        seen = got;
    }
    // Resync agrees with detection.
    for kind in [MessageKind::Request, MessageKind::Response] {
        if let Some(at) = find_message_start(data, kind) {
            assert!(at == 0 || data[at - 1] == b'\n', "not at a line start");
            assert_eq!(detect(&data[at..]).map(|d| d.kind), Some(kind));
        }
        if detect(data).is_some_and(|d| d.kind == kind) {
            assert_eq!(find_message_start(data, kind), Some(0));
        }
    }
});
