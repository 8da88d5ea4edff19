//! Drivers shared by the fuzz targets. They play the agent's part (a buffer
//! of unconsumed bytes, a decode loop, gaps, resync) and assert the
//! decoder's invariants, so libFuzzer reports broken invariants as crashes
//! along with panics.

use sonde_protocols::MessageKind;
use sonde_protocols::http::{
    Decoded, GapOutcome, HttpConfig, HttpDecoder, HttpError, HttpMessage, find_message_start,
};

/// Small caps so that short inputs reach the limits.
fn config() -> HttpConfig {
    HttpConfig {
        max_head_bytes: 512,
        max_headers: 16,
        body_prefix_bytes: 16,
        ..HttpConfig::default()
    }
}

const METHODS: [Option<&str>; 5] = [
    Some("GET"),
    Some("HEAD"),
    Some("CONNECT"),
    Some("POST"),
    None,
];

/// Fuzzes one HTTP decoder. The first byte picks where the rest is split,
/// the size of a gap and the request method passed to response decoders.
pub fn run_http(kind: MessageKind, data: &[u8]) {
    let Some((&ctl, input)) = data.split_first() else {
        return;
    };
    let split = usize::from(ctl) * input.len() / 255;
    let (first, second) = input.split_at(split);
    let method = METHODS[usize::from(ctl) % METHODS.len()];
    let config = config();

    // Splitting must not change the result (up to the first error, where the
    // agent's resync starts to depend on what it has buffered).
    let whole = feed(kind, &config, method, &[input], None);
    let split_up = feed(kind, &config, method, &[first, second], None);
    assert_eq!(whole, split_up, "split at {split} changed the result");

    // With a gap between the parts: only invariants, and resync is exercised.
    feed(
        kind,
        &config,
        method,
        &[first, second],
        Some(u64::from(ctl)),
    );
}

/// Runs the caller loop over `parts`. Without a gap it stops at the first
/// error and returns what was decoded; with a gap (lost before the last part)
/// it resyncs after errors like the agent does.
fn feed(
    kind: MessageKind,
    config: &HttpConfig,
    method: Option<&str>,
    parts: &[&[u8]],
    gap: Option<u64>,
) -> Vec<Result<HttpMessage, HttpError>> {
    let mut decoder = HttpDecoder::new(kind, config.clone());
    let mut buf: Vec<u8> = Vec::new();
    let mut events = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        if i + 1 == parts.len()
            && let Some(n) = gap
            && decoder.skip_gap(n) == GapOutcome::MessageLost
        {
            assert!(decoder.is_idle(), "not idle after MessageLost");
            decoder.reset();
            buf.clear();
        }
        buf.extend_from_slice(part);
        loop {
            match decoder.decode(&buf, method) {
                Ok(Decoded::NeedMore) => break,
                Ok(Decoded::Progress { consumed, message }) => {
                    assert!(consumed <= buf.len(), "consumed beyond the input");
                    assert!(consumed > 0 || message.is_some(), "no progress");
                    buf.drain(..consumed);
                    if let Some(message) = message {
                        check_message(config, &message);
                        events.push(Ok(message));
                    }
                }
                Err(err) => {
                    assert!(decoder.is_idle(), "not idle after an error");
                    events.push(Err(err));
                    if gap.is_none() {
                        return events;
                    }
                    let rest = buf.get(1..).unwrap_or_default();
                    match find_message_start(rest, kind) {
                        Some(at) => drop(buf.drain(..=at)),
                        None => {
                            buf.clear();
                            break;
                        }
                    }
                }
            }
        }
    }
    if let Some(message) = decoder.finish() {
        check_message(config, &message);
        events.push(Ok(message));
    }
    assert!(decoder.is_idle(), "not idle after finish");
    events
}

fn check_message(config: &HttpConfig, message: &HttpMessage) {
    assert!(message.body.len() <= config.body_prefix_bytes);
    assert!(message.body_size >= message.body.len() as u64);
    assert!(message.headers.len() <= config.max_headers);
    assert!(message.minor_version <= 1);
}
