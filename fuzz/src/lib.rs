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
                        events.push(Ok(*message));
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
        events.push(Ok(*message));
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

/// Deterministic choices derived from the fuzz input's control byte.
struct Choices(u64);

impl Choices {
    fn next(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) as usize) % n.max(1)
    }
}

/// Runs a decoder with the crate's common convention over `parts`, resyncing
/// after errors when `resync` is given. Returns what was decoded (stopping at
/// the first error without `resync`). `gap` is lost before the last part.
fn feed_common<T, E, D>(
    parts: &[&[u8]],
    decoder: &mut D,
    decode: impl Fn(&mut D, &[u8]) -> Result<sonde_protocols::Decoded<T>, E>,
    skip_gap: impl Fn(&mut D, u64) -> sonde_protocols::GapOutcome,
    reset: impl Fn(&mut D),
    resync: Option<&dyn Fn(&[u8]) -> Option<usize>>,
    gap: Option<u64>,
    check: &mut dyn FnMut(&T),
) -> Vec<Result<T, E>> {
    use sonde_protocols::{Decoded, GapOutcome};
    let mut buf: Vec<u8> = Vec::new();
    let mut out = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        if i + 1 == parts.len()
            && let Some(n) = gap
            && skip_gap(decoder, n) == GapOutcome::MessageLost
        {
            reset(decoder);
            buf.clear();
        }
        buf.extend_from_slice(part);
        loop {
            match decode(decoder, &buf) {
                Ok(Decoded::NeedMore) => break,
                Ok(Decoded::Progress { consumed, message }) => {
                    assert!(consumed <= buf.len(), "consumed beyond the input");
                    assert!(consumed > 0 || message.is_some(), "no progress");
                    buf.drain(..consumed);
                    if let Some(m) = message {
                        check(&m);
                        out.push(Ok(m));
                    }
                }
                Err(e) => {
                    out.push(Err(e));
                    let Some(resync) = resync else {
                        return out;
                    };
                    reset(decoder);
                    match resync(buf.get(1..).unwrap_or_default()) {
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
    out
}

/// Cuts `input` into writes alternating between client and server (as
/// `ctl` chooses) and checks that splitting each write in two does not
/// change what `run` (a session over the conversation) produces.
fn check_conversation<Ev: PartialEq + std::fmt::Debug>(
    ctl: u8,
    input: &[u8],
    run: impl Fn(&[(bool, &[u8])], bool) -> Vec<Ev>,
) {
    let mut choices = Choices(u64::from(ctl));
    let mut segments = Vec::new();
    let mut rest = input;
    while !rest.is_empty() {
        let n = (1 + choices.next(96)).min(rest.len());
        let (seg, tail) = rest.split_at(n);
        segments.push((choices.next(2) == 0, seg));
        rest = tail;
    }
    assert_eq!(
        run(&segments, false),
        run(&segments, true),
        "write splits changed the session's output"
    );
}

/// Feeds a conversation (writes of the client when true) to a decoder per
/// direction, each write whole or (`cut`) in two halves, and hands each
/// message to `on_message` (from the client?, message, write index as the
/// time). Stops at the first decode error: what follows depends on what
/// the caller had buffered.
fn converse<D, M, E, Ev>(
    segments: &[(bool, &[u8])],
    cut: bool,
    mut decoders: [D; 2],
    decode: impl Fn(&mut D, &[u8]) -> Result<sonde_protocols::Decoded<M>, E>,
    mut on_message: impl FnMut(bool, &M, u64) -> Option<Ev>,
) -> Vec<Ev> {
    let mut bufs = [Vec::new(), Vec::new()];
    let mut out = Vec::new();
    for (ts, &(client, seg)) in segments.iter().enumerate() {
        let i = usize::from(!client);
        let pieces: Vec<&[u8]> = if cut {
            let (a, b) = seg.split_at(seg.len() / 2);
            vec![a, b]
        } else {
            vec![seg]
        };
        for piece in pieces {
            bufs[i].extend_from_slice(piece);
            loop {
                match decode(&mut decoders[i], &bufs[i]) {
                    Ok(sonde_protocols::Decoded::NeedMore) => break,
                    Ok(sonde_protocols::Decoded::Progress { consumed, message }) => {
                        bufs[i].drain(..consumed);
                        if let Some(m) = message {
                            out.extend(on_message(client, &m, ts as u64));
                        }
                    }
                    Err(_) => return out,
                }
            }
        }
    }
    out
}

/// Fuzzes the RESP decoder (direction from the control byte) and the
/// session: split equivalence, a gap with resync, caps and rendering.
pub fn run_redis(data: &[u8]) {
    use sonde_protocols::MessageKind;
    use sonde_protocols::redis::{
        RedisPairing, RespConfig, RespDecoder, RespValue, find_message_start, render,
    };
    let Some((&ctl, input)) = data.split_first() else {
        return;
    };
    let kind = if ctl & 1 == 0 {
        MessageKind::Request
    } else {
        MessageKind::Response
    };
    let config = RespConfig {
        max_line_bytes: 256,
        max_kept_bytes: 16,
        max_depth: 6,
        max_elements: 4,
        max_total_elements: 12,
        ..RespConfig::default()
    };
    let split = usize::from(ctl) * input.len() / 255;
    let (first, second) = input.split_at(split);
    let mut check = |v: &RespValue| check_resp(v, &config, 0);
    let run = |parts: &[&[u8]], gap: Option<u64>, check: &mut dyn FnMut(&RespValue)| {
        let mut d = RespDecoder::new(kind, config.clone());
        let resync = |b: &[u8]| find_message_start(b, kind);
        let out = feed_common(
            parts,
            &mut d,
            |d, b| d.decode(b),
            |d, n| d.skip_gap(n),
            |d| d.reset(),
            gap.map(|_| &resync as &dyn Fn(&[u8]) -> Option<usize>),
            gap,
            check,
        );
        d.finish();
        assert!(d.is_idle());
        out
    };
    let whole = run(&[input], None, &mut check);
    let split_up = run(&[first, second], None, &mut check);
    assert_eq!(whole, split_up, "split at {split} changed the result");
    let gapped = run(&[first, second], Some(u64::from(ctl >> 1)), &mut check);
    let mut session = RedisPairing::new(4, 64);
    for (i, v) in whole.into_iter().chain(gapped).flatten().enumerate() {
        assert!(render(&v, 64).len() <= 64);
        match kind {
            MessageKind::Request => session.on_request(v, i as u64),
            MessageKind::Response => {
                session.on_reply(v, i as u64);
            }
        }
        assert!(session.pending() <= 4);
    }
    session.finish();
}

fn check_resp(
    v: &sonde_protocols::redis::RespValue,
    config: &sonde_protocols::redis::RespConfig,
    depth: usize,
) {
    use sonde_protocols::redis::RespValue::*;
    assert!(depth <= config.max_depth);
    match v {
        BulkString(b) | BlobError(b) | Verbatim(b) => {
            assert!(b.data.len() <= config.max_kept_bytes);
            assert!(b.len >= b.data.len() as u64);
        }
        SimpleString(s) | Error(s) | Double(s) | BigNumber(s) => {
            assert!(s.len() <= config.max_kept_bytes)
        }
        Array(a) | Map(a) | Set(a) | Push(a) => {
            assert!(a.items.len() <= config.max_elements);
            assert!(a.len >= a.items.len() as u64);
            for item in &a.items {
                check_resp(item, config, depth + 1);
            }
        }
        Integer(_) | Null | Boolean(_) => {}
    }
}

/// Fuzzes MySQL: the packet decoder (split equivalence, gap and resync) and
/// the session, fed by two directions cut from the input; the session's
/// exchanges must not depend on how each write is split.
pub fn run_mysql(data: &[u8]) {
    use sonde_protocols::MessageKind;
    use sonde_protocols::mysql::{
        MysqlConfig, MysqlPacket, MysqlPacketDecoder, MysqlPairing, find_message_start,
    };
    let Some((&ctl, input)) = data.split_first() else {
        return;
    };
    let config = MysqlConfig {
        max_kept_bytes: 64,
        max_packet_len: 1 << 20,
        max_body_len: 80,
        max_statements: 3,
    };
    let split = usize::from(ctl) * input.len() / 255;
    let (first, second) = input.split_at(split);
    let kind = if ctl & 1 == 0 {
        MessageKind::Request
    } else {
        MessageKind::Response
    };
    let mut check = |p: &MysqlPacket| {
        assert!(p.payload.len() <= config.max_kept_bytes);
        assert!(p.len >= p.payload.len() as u64);
    };
    let run = |parts: &[&[u8]], gap: Option<u64>, check: &mut dyn FnMut(&MysqlPacket)| {
        let mut d = MysqlPacketDecoder::new(config.clone());
        let resync = |b: &[u8]| find_message_start(b, kind);
        feed_common(
            parts,
            &mut d,
            |d, b| d.decode(b),
            |d, n| d.skip_gap(n),
            |d| d.reset(),
            gap.map(|_| &resync as &dyn Fn(&[u8]) -> Option<usize>),
            gap,
            check,
        )
    };
    let whole = run(&[input], None, &mut check);
    assert_eq!(whole, run(&[first, second], None, &mut check));
    run(&[first, second], Some(u64::from(ctl)), &mut check);

    // A conversation: segments of the input alternate between directions.
    check_conversation(ctl, input, |segments, cut| {
        let mut session = MysqlPairing::new(config.clone());
        let decoders = [
            MysqlPacketDecoder::new(config.clone()),
            MysqlPacketDecoder::new(config.clone()),
        ];
        converse(
            segments,
            cut,
            decoders,
            |d, b| d.decode(b),
            |client, pkt, ts| {
                let ex = if client {
                    session.on_client_packet(pkt, ts)
                } else {
                    session.on_server_packet(pkt, ts)
                };
                if let Some(ex) = &ex {
                    assert!(ex.req_body.len() <= config.max_body_len + 3);
                    assert!(ex.resp_body.len() <= config.max_body_len + 3);
                    assert!(ex.req_ts <= ex.resp_ts);
                }
                ex
            },
        )
    });
}

/// Fuzzes DNS message parsing, its JSON, datagram detection and a matcher.
pub fn run_dns_message(data: &[u8]) {
    use sonde_protocols::dns::{DnsConfig, DnsMatcher, parse_message};
    let config = DnsConfig {
        max_questions: 2,
        max_answers: 4,
        max_data_len: 40,
        max_tcp_message_len: 65535,
    };
    let detected = sonde_protocols::detect_datagram(data);
    let parsed = parse_message(data, &config);
    if let Some(d) = detected {
        // Detection implies the header and question parse.
        let m = parsed.as_ref().expect("detected but unparsable");
        assert_eq!(
            d.kind == sonde_protocols::MessageKind::Response,
            m.is_response
        );
    }
    if let Ok(m) = parsed {
        assert!(m.questions.len() <= 2 && m.answers.len() <= 4);
        assert!(m.questions.len() <= usize::from(m.question_count));
        assert!(m.answers.len() <= usize::from(m.answer_count));
        for r in &m.answers {
            assert!(r.data.len() <= 40);
        }
        for json in [m.header_json(), m.questions_json(), m.answers_json()] {
            assert!(json.starts_with('{') && json.ends_with('}'));
        }
        let mut matcher = DnsMatcher::new(2, 10);
        matcher.on_query(0u8, m.clone(), 1);
        let mut response = m;
        response.is_response = true;
        assert!(matcher.on_response(0, response, 2).is_some());
        assert_eq!(matcher.expire(100), 0);
    }
}

/// Fuzzes DNS over TCP: split equivalence, a gap with resync.
pub fn run_dns_tcp(data: &[u8]) {
    use sonde_protocols::MessageKind;
    use sonde_protocols::dns::{DnsConfig, DnsMessage, DnsTcpDecoder, find_message_start};
    let Some((&ctl, input)) = data.split_first() else {
        return;
    };
    let config = DnsConfig {
        max_tcp_message_len: 512,
        ..DnsConfig::default()
    };
    let kind = if ctl & 1 == 0 {
        MessageKind::Request
    } else {
        MessageKind::Response
    };
    let split = usize::from(ctl) * input.len() / 255;
    let (first, second) = input.split_at(split);
    let mut check = |m: &DnsMessage| assert!(m.answers.len() <= config.max_answers);
    let run = |parts: &[&[u8]], gap: Option<u64>, check: &mut dyn FnMut(&DnsMessage)| {
        let mut d = DnsTcpDecoder::new(config.clone());
        let resync = |b: &[u8]| find_message_start(b, kind);
        feed_common(
            parts,
            &mut d,
            |d, b| d.decode(b),
            |d, n| d.skip_gap(n),
            |d| d.reset(),
            gap.map(|_| &resync as &dyn Fn(&[u8]) -> Option<usize>),
            gap,
            check,
        )
    };
    let whole = run(&[input], None, &mut check);
    assert_eq!(whole, run(&[first, second], None, &mut check));
    run(&[first, second], Some(u64::from(ctl)), &mut check);
    // Resync never lands where detection sees another protocol (it may see
    // nothing yet while another candidate is undecided).
    if let Some(at) = find_message_start(input, kind)
        && let Some(d) = sonde_protocols::detect(&input[at..])
    {
        assert_eq!((d.protocol, d.kind), (sonde_protocols::Protocol::Dns, kind));
    }
}

/// Fuzzes the PostgreSQL decoder (direction from the control byte) and the
/// session over a conversation cut from the input: split equivalence, a gap
/// with resync, caps on kept bytes, texts and state.
pub fn run_pgsql(data: &[u8]) {
    use sonde_protocols::MessageKind;
    use sonde_protocols::pgsql::{PgConfig, PgDecoder, PgMessage, PgSession, find_message_start};
    let Some((&ctl, input)) = data.split_first() else {
        return;
    };
    let config = PgConfig {
        max_kept_bytes: 64,
        max_message_len: 1 << 20,
        max_text_len: 80,
        max_statements: 3,
        max_portals: 2,
        max_pending: 8,
        max_query_statements: 4,
    };
    let split = usize::from(ctl) * input.len() / 255;
    let (first, second) = input.split_at(split);
    let kind = if ctl & 1 == 0 {
        MessageKind::Request
    } else {
        MessageKind::Response
    };
    let mut check = |m: &PgMessage| {
        assert!(m.body.len() <= config.max_kept_bytes);
        assert!(u64::from(m.len) >= m.body.len() as u64);
    };
    let run = |parts: &[&[u8]], gap: Option<u64>, check: &mut dyn FnMut(&PgMessage)| {
        let mut d = PgDecoder::new(kind, config.clone());
        let resync = |b: &[u8]| find_message_start(b, kind);
        feed_common(
            parts,
            &mut d,
            |d, b| d.decode(b),
            |d, n| d.skip_gap(n),
            |d| d.reset(),
            gap.map(|_| &resync as &dyn Fn(&[u8]) -> Option<usize>),
            gap,
            check,
        )
    };
    let whole = run(&[input], None, &mut check);
    assert_eq!(whole, run(&[first, second], None, &mut check));
    run(&[first, second], Some(u64::from(ctl)), &mut check);

    // A conversation: segments of the input alternate between directions.
    check_conversation(ctl, input, |segments, cut| {
        let mut session = PgSession::new(config.clone());
        let decoders = [
            PgDecoder::new(MessageKind::Request, config.clone()),
            PgDecoder::new(MessageKind::Response, config.clone()),
        ];
        converse(
            segments,
            cut,
            decoders,
            |d, b| d.decode(b),
            |client, msg, ts| {
                let ev = if client {
                    session.on_frontend(msg, ts)
                } else {
                    session.on_backend(msg, ts)
                };
                assert!(session.pending() <= config.max_pending);
                assert!(session.statements() <= config.max_statements + 1);
                if let Some(ev) = &ev {
                    assert!(ev.req.len() <= config.max_text_len + 3, "{ev:?}");
                    assert!(ev.resp.len() <= config.max_text_len + 3, "{ev:?}");
                    assert!(ev.req_ts <= ev.resp_ts);
                }
                ev
            },
        )
    });
}

/// Fuzzes HTTP/2: the frame decoder (split equivalence, a gap with resync,
/// caps), then a session fed by both directions cut from the input, whose
/// events must not depend on how each write is split. With the control
/// byte's top bit set, the input's segments are wrapped in HEADERS frames so
/// that HPACK decoding gets the bytes directly.
pub fn run_http2(data: &[u8]) {
    use sonde_protocols::MessageKind;
    use sonde_protocols::http2::{
        Frame, Http2Config, Http2Decoder, Http2Session, Http2Stream, find_message_start,
    };
    let Some((&ctl, input)) = data.split_first() else {
        return;
    };
    let config = Http2Config {
        max_header_block_bytes: 128,
        max_headers: 4,
        data_frame_prefix_bytes: 8,
        body_prefix_bytes: 12,
        max_streams: 3,
        max_table_size: 256,
        ..Http2Config::default()
    };
    let kind = if ctl & 1 == 0 {
        MessageKind::Request
    } else {
        MessageKind::Response
    };
    let split = usize::from(ctl) * input.len() / 255;
    let (first, second) = input.split_at(split);
    let mut check = |f: &Frame| match f {
        Frame::Data(d) => {
            assert!(d.prefix.len() <= config.data_frame_prefix_bytes);
            assert!(d.prefix.len() as u64 + u64::from(d.lost) <= u64::from(d.len));
        }
        Frame::Headers(b) | Frame::PushPromise { block: b, .. } => {
            assert!(b.fragment.len() <= config.max_header_block_bytes);
            assert!(b.fragment.len() <= b.len);
        }
        _ => {}
    };
    let run = |parts: &[&[u8]], gap: Option<u64>, check: &mut dyn FnMut(&Frame)| {
        let mut d = Http2Decoder::new(kind, &config);
        let resync = |b: &[u8]| find_message_start(b, kind);
        feed_common(
            parts,
            &mut d,
            |d, b| d.decode(b),
            |d, n| d.skip_gap(n),
            |d| d.reset(),
            gap.map(|_| &resync as &dyn Fn(&[u8]) -> Option<usize>),
            gap,
            check,
        )
    };
    let whole = run(&[input], None, &mut check);
    assert_eq!(whole, run(&[first, second], None, &mut check));
    run(&[first, second], Some(u64::from(ctl >> 1)), &mut check);

    // A conversation: segments alternate between directions.
    let hpack = ctl & 0x80 != 0;
    let mut choices = Choices(u64::from(ctl));
    let mut segments: Vec<(bool, Vec<u8>)> = Vec::new();
    let mut rest = input;
    let mut stream_id = 1u32;
    while !rest.is_empty() {
        let n = (1 + choices.next(96)).min(rest.len());
        let (seg, tail) = rest.split_at(n);
        let client = choices.next(2) == 0;
        let bytes = if hpack {
            // HEADERS, END_HEADERS and maybe END_STREAM, on a stream both
            // sides use in turn.
            let mut frame = (seg.len() as u32).to_be_bytes()[1..].to_vec();
            frame.extend_from_slice(&[1, 4 | (tail.len() as u8 & 1)]);
            frame.extend_from_slice(&stream_id.to_be_bytes());
            frame.extend_from_slice(seg);
            if !client {
                stream_id += 2;
            }
            frame
        } else {
            seg.to_vec()
        };
        segments.push((client, bytes));
        rest = tail;
    }
    let converse = |cut: bool| -> Vec<Http2Stream> {
        let mut session = if hpack {
            Http2Session::new(config.clone())
        } else {
            Http2Session::mid_stream(config.clone())
        };
        let mut decoders = [
            Http2Decoder::new(MessageKind::Request, &config),
            Http2Decoder::new(MessageKind::Response, &config),
        ];
        let mut bufs = [Vec::new(), Vec::new()];
        let mut out = Vec::new();
        for (ts, (client, seg)) in segments.iter().enumerate() {
            let i = usize::from(!client);
            let pieces: Vec<&[u8]> = if cut {
                let (a, b) = seg.split_at(seg.len() / 2);
                vec![a, b]
            } else {
                vec![seg]
            };
            for piece in pieces {
                bufs[i].extend_from_slice(piece);
                loop {
                    match decoders[i].decode(&bufs[i]) {
                        Ok(sonde_protocols::Decoded::NeedMore) => break,
                        Ok(sonde_protocols::Decoded::Progress { consumed, message }) => {
                            bufs[i].drain(..consumed);
                            if let Some(frame) = message {
                                let kind = decoders[i].kind();
                                session.on_frame(kind, frame, ts as u64, ts as u64, &mut out);
                                assert!(session.open_streams() <= config.max_streams);
                            }
                        }
                        // What follows an error depends on what the
                        // caller had buffered: compare up to it.
                        Err(_) => return out,
                    }
                }
            }
        }
        session.finish(segments.len() as u64, &mut out);
        assert!(session.state_bytes() < 1 << 20);
        for e in &out {
            for m in [&e.request, &e.response] {
                assert!(m.body.len() <= config.body_prefix_bytes);
                assert!(m.body_size >= m.body.len() as u64);
                assert!(m.headers.len() <= config.max_headers);
                assert!(m.trailers.len() <= config.max_headers);
            }
            assert!(e.end_ts >= e.start_ts);
        }
        out
    };
    assert_eq!(
        converse(false),
        converse(true),
        "write splits changed the events"
    );
}
