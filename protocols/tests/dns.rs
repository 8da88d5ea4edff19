//! DNS: parsing, rendering, JSON, TCP framing, matching.

mod common;

use common::dns::{header, name, query, record, tcp};
use common::{Lcg, assert_chunking_equivalent, mutate};
use sonde_protocols::MessageKind::{Request, Response};
use sonde_protocols::dns::{
    DnsConfig, DnsError, DnsMatcher, DnsMessage, DnsTcpDecoder, find_message_start, parse_message,
    type_label,
};
use sonde_protocols::{Decoded, GapOutcome, detect_datagram};

/// Response to `www.example.com A`: a CNAME to example.com and its address,
/// with compression, and an EDNS OPT record.
fn cname_response() -> Vec<u8> {
    let mut m = header(0xbeef, 0x8180, [1, 2, 0, 1]);
    m.extend(name("www.example.com")); // at 12; "example" at 16
    m.extend_from_slice(&[0, 1, 0, 1]);
    m.extend(record(&[0xc0, 12], 5, 3600, &[0xc0, 16]));
    m.extend(record(&[0xc0, 16], 1, 300, &[93, 184, 216, 34]));
    m.extend(record(&[0], 41, 0, &[]));
    m
}

fn response_with(qname: &str, qtype: u16, answers: &[(u16, u32, Vec<u8>)]) -> Vec<u8> {
    let mut m = header(7, 0x8580, [1, answers.len() as u16, 0, 0]);
    m.extend(name(qname));
    m.extend_from_slice(&qtype.to_be_bytes());
    m.extend_from_slice(&[0, 1]);
    for (rtype, ttl, rdata) in answers {
        m.extend(record(&[0xc0, 12], *rtype, *ttl, rdata));
    }
    m
}

fn parse(bytes: &[u8]) -> Result<DnsMessage, DnsError> {
    parse_message(bytes, &DnsConfig::default())
}

#[test]
fn cname_chain_with_compression_and_json() {
    let m = parse(&cname_response()).unwrap();
    assert_eq!(
        (m.id, m.is_response, m.opcode, m.rcode),
        (0xbeef, true, 0, 0)
    );
    assert!(m.flags.rd && m.flags.ra && !m.flags.aa && !m.flags.tc);
    assert_eq!(
        m.header_json(),
        r#"{"txid":48879,"qr":1,"opcode":0,"aa":0,"tc":0,"rd":1,"ra":1,"ad":0,"cd":0,"rcode":0,"num_queries":1,"num_answers":2,"num_auth":0,"num_addl":1}"#
    );
    assert_eq!(
        m.questions_json(),
        r#"{"queries":[{"name":"www.example.com","type":"A"}]}"#
    );
    assert_eq!(
        m.answers_json(),
        r#"{"answers":[{"name":"www.example.com","type":"CNAME","ttl":3600,"data":"example.com"},{"name":"example.com","type":"A","ttl":300,"data":"93.184.216.34"}]}"#
    );
    assert!(!m.partial);
    let q = parse(&query(0x1234, "example.com", 28)).unwrap();
    assert_eq!(
        q.header_json(),
        r#"{"txid":4660,"qr":0,"opcode":0,"aa":0,"tc":0,"rd":1,"ra":0,"ad":0,"cd":0,"rcode":0,"num_queries":1,"num_answers":0,"num_auth":0,"num_addl":0}"#
    );
    assert_eq!(
        q.questions_json(),
        r#"{"queries":[{"name":"example.com","type":"AAAA"}]}"#
    );
    assert_eq!(q.answers_json(), r#"{"answers":[]}"#);
}

#[test]
fn record_data_table() {
    let mut mx = vec![0, 10, 4];
    mx.extend_from_slice(b"mail");
    mx.extend_from_slice(&[0xc0, 12]);
    let mut srv = vec![0, 10, 0, 60, 0x13, 0xc4, 3];
    srv.extend_from_slice(b"sip");
    srv.extend_from_slice(&[0xc0, 22]); // example.com inside _sip._tcp.example.com
    let mut txt = vec![11];
    txt.extend_from_slice(b"v=spf1 -all");
    txt.push(12);
    txt.extend_from_slice(b"say \"hi\"\\\x01ok");
    let mut soa = name("ns1.example.com");
    soa.extend(name("hostmaster.example.com"));
    for v in [2024010101u32, 7200, 3600, 1209600, 300] {
        soa.extend_from_slice(&v.to_be_bytes());
    }
    let aaaa = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    let cases: Vec<(&str, u16, Vec<u8>, &str, &str)> = vec![
        ("example.com", 15, mx, "MX", "10 mail.example.com"),
        (
            "_sip._tcp.example.com",
            33,
            srv,
            "SRV",
            "10 60 5060 sip.example.com",
        ),
        (
            "example.com",
            16,
            txt,
            "TXT",
            r#""v=spf1 -all" "say \"hi\"\\\001ok""#,
        ),
        (
            "example.com",
            6,
            soa,
            "SOA",
            "ns1.example.com hostmaster.example.com 2024010101 7200 3600 1209600 300",
        ),
        ("example.com", 28, aaaa.to_vec(), "AAAA", "2001:db8::1"),
        (
            "4.3.2.1.in-addr.arpa",
            12,
            name("host.example"),
            "PTR",
            "host.example",
        ),
        (
            "example.com",
            2,
            name("ns.example.net"),
            "NS",
            "ns.example.net",
        ),
        (
            "example.com",
            257,
            vec![0, 5, b'i', b's', b's', b'u', b'e', b'x'],
            "CAA",
            "0005697373756578",
        ),
        ("example.com", 65534, vec![0xde, 0xad], "TYPE65534", "dead"),
        // Malformed data of a known type: hex.
        ("example.com", 1, vec![1, 2, 3], "A", "010203"),
        ("example.com", 15, vec![0, 1, 0xc0, 0xff], "MX", "0001c0ff"),
    ];
    for (qname, rtype, rdata, type_name, data) in cases {
        let msg = response_with(qname, rtype, &[(rtype, 60, rdata)]);
        let m = parse(&msg).unwrap();
        assert_eq!(m.answers.len(), 1, "{qname} {type_name}");
        assert_eq!(m.answers[0].name, qname);
        assert_eq!(type_label(m.answers[0].rtype), type_name);
        assert_eq!(m.answers[0].data, data, "{type_name}");
        assert!(m.flags.aa);
    }
    assert_eq!(DnsMessage::type_name(65534), "UNKNOWN");
    assert_eq!(DnsMessage::type_name(33), "SRV");
}

#[test]
fn nxdomain_truncation_and_errors() {
    // NXDOMAIN with the zone's SOA in the authority section.
    let mut m = header(9, 0x8183, [1, 0, 1, 0]);
    m.extend(name("nope.example.com"));
    m.extend_from_slice(&[0, 1, 0, 1]);
    let mut soa = name("ns1.example.com");
    soa.extend(name("hostmaster.example.com"));
    soa.extend_from_slice(&[0; 20]);
    m.extend(record(&[0xc0, 17], 6, 900, &soa));
    let nx = parse(&m).unwrap();
    assert_eq!(nx.rcode, 3);
    assert_eq!((nx.answer_count, nx.authority_count), (0, 1));
    assert!(nx.answers.is_empty());
    assert!(nx.header_json().contains(r#""rcode":3"#));

    // Cut inside the second answer: the first is kept, `partial` set.
    let full = cname_response();
    let cut = parse(&full[..full.len() - 14]).unwrap();
    assert!(cut.partial);
    assert_eq!(cut.answers.len(), 1);
    assert_eq!(cut.answers[0].data, "example.com");
    // Cut inside the header or the question: an error.
    assert_eq!(parse(&full[..11]), Err(DnsError::Truncated));
    assert_eq!(parse(&full[..20]), Err(DnsError::Truncated));
    assert_eq!(parse(&full[..31]), Err(DnsError::Truncated));

    let with_answer_owner = |owner: &[u8]| {
        let mut m = header(1, 0x8180, [1, 1, 0, 0]);
        m.extend(name("a.example"));
        m.extend_from_slice(&[0, 1, 0, 1]);
        m.extend(record(owner, 1, 1, &[1, 2, 3, 4]));
        m
    };
    // A pointer to itself (offset 27), forward, and two pointing at each
    // other.
    assert_eq!(
        parse(&with_answer_owner(&[0xc0, 27])),
        Err(DnsError::CompressionLoop)
    );
    assert_eq!(
        parse(&with_answer_owner(&[0xc0, 40])),
        Err(DnsError::CompressionLoop)
    );
    let mut looped = header(1, 0x8180, [1, 0, 0, 0]);
    looped.extend_from_slice(&[1, b'a', 0xc0, 16, 1, b'b', 0xc0, 12, 0, 1, 0, 1]);
    assert_eq!(parse(&looped), Err(DnsError::CompressionLoop));
    // Reserved label types, names over 255 bytes.
    assert_eq!(
        parse(&with_answer_owner(&[0x40, 1])),
        Err(DnsError::InvalidLabel)
    );
    let long = vec!["abcdefghij"; 30].join(".");
    assert_eq!(parse(&query(1, &long, 1)), Err(DnsError::NameTooLong));
    // Escaping of odd bytes in labels.
    let mut odd = header(2, 0x0100, [1, 0, 0, 0]);
    odd.extend_from_slice(&[4, b'a', b'.', b'\\', 0x07, 0, 0, 1, 0, 1]);
    assert_eq!(parse(&odd).unwrap().questions[0].name, "a\\.\\\\\\007");
    let mut root = header(3, 0x0100, [1, 0, 0, 0]);
    root.extend_from_slice(&[0, 0, 2, 0, 1]);
    assert_eq!(
        parse(&root).unwrap().questions_json(),
        r#"{"queries":[{"name":".","type":"NS"}]}"#
    );
}

#[test]
fn caps_bound_what_is_kept() {
    let config = DnsConfig {
        max_answers: 2,
        max_questions: 1,
        max_data_len: 12,
        ..DnsConfig::default()
    };
    let mut long_txt = vec![100];
    long_txt.extend_from_slice(&[b'x'; 100]);
    let msg = response_with(
        "example.com",
        16,
        &[
            (16, 1, long_txt.clone()),
            (16, 1, long_txt.clone()),
            (16, 1, long_txt),
        ],
    );
    let m = parse_message(&msg, &config).unwrap();
    assert_eq!(m.answers.len(), 2);
    assert_eq!(m.answer_count, 3);
    assert_eq!(m.answers[0].data, "\"xxxxxxxx...");
    let mut two = header(1, 0x0100, [2, 0, 0, 0]);
    two.extend(name("a.example"));
    two.extend_from_slice(&[0, 1, 0, 1]);
    two.extend(name("b.example"));
    two.extend_from_slice(&[0, 28, 0, 1]);
    let m = parse_message(&two, &config).unwrap();
    assert_eq!(m.questions.len(), 1);
    assert_eq!(m.question_count, 2);
}

#[test]
fn tcp_framing() {
    let config = DnsConfig::default();
    let stream = [
        tcp(&query(1, "example.com", 1)),
        tcp(&cname_response()),
        tcp(&query(2, "example.org", 28)),
    ]
    .concat();
    let got = assert_chunking_equivalent(&stream, || {
        let mut d = DnsTcpDecoder::new(config.clone());
        move |b: &[u8]| d.decode(b)
    });
    let ids: Vec<u16> = got.iter().map(|m| m.as_ref().unwrap().id).collect();
    assert_eq!(ids, [1, 0xbeef, 2]);
    // A malformed message, a bad length.
    let mut bad = tcp(&query(1, "example.com", 1));
    bad.extend(tcp(&with_loop()));
    let got = assert_chunking_equivalent(&bad, || {
        let mut d = DnsTcpDecoder::new(config.clone());
        move |b: &[u8]| d.decode(b)
    });
    assert_eq!(got.len(), 2);
    assert_eq!(got[1], Err(DnsError::CompressionLoop));
    let mut d = DnsTcpDecoder::new(config.clone());
    assert_eq!(
        d.decode(&[0, 5, 1, 2, 3, 4, 5]),
        Err(DnsError::InvalidLength)
    );
    assert!(d.is_idle());
    let mut d = DnsTcpDecoder::new(DnsConfig {
        max_tcp_message_len: 100,
        ..config.clone()
    });
    assert_eq!(d.decode(&[1, 0]), Err(DnsError::TooLarge));
    // Partial messages are held by the caller; any gap loses the message.
    let mut d = DnsTcpDecoder::new(config);
    assert_eq!(d.decode(&stream[..10]), Ok(Decoded::NeedMore));
    assert!(!d.is_idle());
    assert_eq!(d.skip_gap(3), GapOutcome::MessageLost);
    assert!(d.is_idle());
    assert_eq!(d.skip_gap(0), GapOutcome::Absorbed);
    // Resync after the gap.
    let after_gap = &stream[5..];
    let at = find_message_start(after_gap, Response).unwrap();
    assert_eq!(at, tcp(&query(1, "example.com", 1)).len() - 5);
    assert_eq!(
        find_message_start(after_gap, Request),
        Some(at + tcp(&cname_response()).len())
    );
}

fn with_loop() -> Vec<u8> {
    let mut m = header(5, 0x8180, [1, 1, 0, 0]);
    m.extend(name("a.example"));
    m.extend_from_slice(&[0, 1, 0, 1]);
    m.extend(record(&[0xc0, 27], 1, 1, &[1, 2, 3, 4]));
    m
}

#[test]
fn matcher_pairs_bounds_and_expires() {
    let q = |id, n: &str| parse(&query(id, n, 1)).unwrap();
    let r = |id, n: &str| {
        let mut m = header(id, 0x8180, [1, 0, 0, 0]);
        m.extend(name(n));
        m.extend_from_slice(&[0, 1, 0, 1]);
        parse(&m).unwrap()
    };
    let mut matcher: DnsMatcher<&str> = DnsMatcher::new(2, 1000);
    assert_eq!(matcher.on_query("a", q(1, "x.example"), 10), None);
    assert_eq!(matcher.on_query("b", q(1, "x.example"), 11), None);
    // Same id, other peer: no match. Other question: no match.
    assert_eq!(matcher.on_response("c", r(1, "x.example"), 12), None);
    assert_eq!(matcher.on_response("a", r(1, "y.example"), 12), None);
    assert_eq!(matcher.unmatched_responses(), 2);
    let ex = matcher.on_response("a", r(1, "X.EXAMPLE"), 15).unwrap();
    assert_eq!((ex.query_ts, ex.response_ts, ex.query.id), (10, 15, 1));
    assert_eq!(matcher.pending(), 1);
    // Retransmission replaces; overflow evicts the oldest.
    let evicted = matcher.on_query("b", q(1, "x.example"), 20).unwrap();
    assert_eq!((evicted.key, evicted.query_ts), ("b", 11));
    assert_eq!(matcher.on_query("c", q(2, "x.example"), 21), None);
    let evicted = matcher.on_query("d", q(3, "x.example"), 22).unwrap();
    assert_eq!(evicted.key, "b");
    assert_eq!(matcher.pending(), 2);
    assert_eq!(matcher.expire(1021), 0);
    assert_eq!(matcher.expire(1022), 1);
    assert_eq!(matcher.expire(5000), 1);
    assert_eq!(matcher.pending(), 0);
    assert_eq!(matcher.on_response("d", r(3, "x.example"), 5001), None);
}

#[test]
fn no_panic_on_mutated_and_random_input() {
    let config = DnsConfig {
        max_answers: 3,
        max_questions: 2,
        max_data_len: 20,
        max_tcp_message_len: 512,
    };
    let seeds = [
        cname_response(),
        query(1, "a.b.c", 255),
        with_loop(),
        response_with("example.com", 15, &[(15, 1, vec![0, 1, 0xc0, 12])]),
    ];
    let tokens: &[&[u8]] = &[&[0xc0, 12], &[0xc0], &[0], &[63], &[0xff, 0xff], &[0x80]];
    let mut rng = Lcg(5);
    let mut parsed = 0;
    let mut matcher: DnsMatcher<u8> = DnsMatcher::new(8, 100);
    for round in 0..20_000u64 {
        let seed = &seeds[rng.below(seeds.len())];
        let input = mutate(&mut rng, seed, tokens);
        if let Ok(m) = parse_message(&input, &config) {
            parsed += 1;
            assert!(m.answers.len() <= 3 && m.questions.len() <= 2);
            for r in &m.answers {
                assert!(r.data.len() <= 20, "{}", r.data);
                assert!(r.name.len() <= 4 * 255);
            }
            let _ = (m.header_json(), m.questions_json(), m.answers_json());
            if m.is_response {
                matcher.on_response(round as u8 % 4, m, round);
            } else {
                matcher.on_query(round as u8 % 4, m, round);
            }
            assert!(matcher.pending() <= 8);
            matcher.expire(round);
        }
        let _ = detect_datagram(&input);
        let framed = tcp(&input);
        let mut d = DnsTcpDecoder::new(config.clone());
        let _ = d.decode(&framed);
        let _ = find_message_start(&input, Request);
    }
    assert!(parsed > 5000, "only {parsed} parsed");
}
