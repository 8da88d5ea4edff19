#![no_main]

use libfuzzer_sys::fuzz_target;
use sonde_protocols::{
    MessageKind, Protocol, detect, detect_with_hint, dns, http, http2, mysql, redis,
};

fuzz_target!(|data: &[u8]| {
    // Evidence only grows with more bytes: once a prefix is detected, every
    // longer prefix gives the same answer, with or without a port hint.
    for hint in [None, Some(Protocol::Redis), Some(Protocol::Mysql)] {
        let mut seen = None;
        for len in 0..=data.len().min(48) {
            let got = detect_with_hint(&data[..len], hint);
            if seen.is_some() {
                assert_eq!(got, seen, "detection changed at {len} bytes with {hint:?}");
            }
            seen = got;
        }
    }
    // Resync agrees with detection: a detected message starts where its
    // protocol's resync looks.
    if let Some(d) = detect(data) {
        let at = match d.protocol {
            Protocol::Http => http::find_message_start(data, d.kind),
            // Detection decides on the first frames; resync wants a longer
            // chain of plausible frames, so it may look further.
            Protocol::Http2 => http2::find_message_start(data, d.kind).map(|_| 0),
            Protocol::Redis => redis::find_message_start(data, d.kind),
            Protocol::Mysql => mysql::find_message_start(data, d.kind),
            Protocol::Dns => dns::find_message_start(data, d.kind),
        };
        assert_eq!(at, Some(0), "{d:?}");
    }
    for kind in [MessageKind::Request, MessageKind::Response] {
        if let Some(at) = http::find_message_start(data, kind) {
            assert!(at == 0 || data[at - 1] == b'\n', "not at a line start");
            assert_eq!(
                detect(&data[at..]).map(|d| (d.protocol, d.kind)),
                Some((Protocol::Http, kind))
            );
        }
    }
});
