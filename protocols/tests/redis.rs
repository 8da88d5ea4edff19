//! Redis: RESP decoding, commands, redaction, rendering and pairing.

mod common;

use common::{Lcg, assert_chunking_equivalent, feed_chunks, mutate};
use sonde_protocols::MessageKind::{self, Request, Response};
use sonde_protocols::redis::{
    Aggregate, BulkString, RedisCommand, RedisEvent, RedisPairing, RespConfig, RespDecoder,
    RespError, RespValue, find_message_start, render,
};
use sonde_protocols::{Decoded, GapOutcome};

fn decode_all(
    kind: MessageKind,
    config: &RespConfig,
    stream: &[u8],
) -> Vec<Result<RespValue, RespError>> {
    let mut decoder = RespDecoder::new(kind, config.clone());
    feed_chunks(stream, [], |b| decoder.decode(b))
}

fn ok(values: Vec<RespValue>) -> Vec<Result<RespValue, RespError>> {
    values.into_iter().map(Ok).collect()
}

fn bulk(s: &str) -> RespValue {
    RespValue::bulk(s.as_bytes())
}

fn simple(s: &str) -> RespValue {
    RespValue::SimpleString(s.into())
}

fn array(items: Vec<RespValue>) -> RespValue {
    RespValue::Array(Aggregate::new(items))
}

fn cmd(args: &[&str]) -> RespValue {
    array(args.iter().map(|a| bulk(a)).collect())
}

/// A redis-cli session with pipelining: several commands in one write.
const PIPELINE_REQUESTS: &[u8] = b"*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nvalue\r\n\
*2\r\n$3\r\nGET\r\n$3\r\nkey\r\n\
*2\r\n$4\r\nINCR\r\n$7\r\ncounter\r\n\
*3\r\n$5\r\nLPUSH\r\n$4\r\nlist\r\n$1\r\na\r\n\
*4\r\n$6\r\nLRANGE\r\n$4\r\nlist\r\n$1\r\n0\r\n$2\r\n-1\r\n\
*2\r\n$4\r\nINCR\r\n$3\r\nkey\r\n\
*3\r\n$4\r\nHGET\r\n$1\r\nh\r\n$7\r\nmissing\r\n\
*3\r\n$6\r\nCLIENT\r\n$7\r\nSETNAME\r\n$3\r\ncli\r\n\
*1\r\n$4\r\nPING\r\n";

const PIPELINE_REPLIES: &[u8] = b"+OK\r\n$5\r\nvalue\r\n:1\r\n:1\r\n*1\r\n$1\r\na\r\n\
-ERR value is not an integer or out of range\r\n$-1\r\n+OK\r\n+PONG\r\n";

/// `HELLO 3 AUTH default <password> SETNAME app` and Redis 7's map reply.
const HELLO_REQUEST: &[u8] = b"*7\r\n$5\r\nHELLO\r\n$1\r\n3\r\n$4\r\nAUTH\r\n$7\r\ndefault\r\n\
$11\r\ns3cr3t-P4ss\r\n$7\r\nSETNAME\r\n$3\r\napp\r\n";
const HELLO_REPLY: &[u8] = b"%7\r\n$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nversion\r\n$5\r\n7.2.4\r\n\
$5\r\nproto\r\n:3\r\n$2\r\nid\r\n:5\r\n$4\r\nmode\r\n$10\r\nstandalone\r\n\
$4\r\nrole\r\n$6\r\nmaster\r\n$7\r\nmodules\r\n*0\r\n";

const PASSWORD: &str = "s3cr3t-P4ss";

#[test]
fn pipelined_requests_and_replies() {
    let config = RespConfig::default();
    let requests = assert_chunking_equivalent(PIPELINE_REQUESTS, || {
        let mut d = RespDecoder::new(Request, config.clone());
        move |b: &[u8]| d.decode(b)
    });
    assert_eq!(
        requests,
        ok(vec![
            cmd(&["SET", "key", "value"]),
            cmd(&["GET", "key"]),
            cmd(&["INCR", "counter"]),
            cmd(&["LPUSH", "list", "a"]),
            cmd(&["LRANGE", "list", "0", "-1"]),
            cmd(&["INCR", "key"]),
            cmd(&["HGET", "h", "missing"]),
            cmd(&["CLIENT", "SETNAME", "cli"]),
            cmd(&["PING"]),
        ])
    );
    let replies = assert_chunking_equivalent(PIPELINE_REPLIES, || {
        let mut d = RespDecoder::new(Response, config.clone());
        move |b: &[u8]| d.decode(b)
    });
    assert_eq!(
        replies,
        ok(vec![
            simple("OK"),
            bulk("value"),
            RespValue::Integer(1),
            RespValue::Integer(1),
            array(vec![bulk("a")]),
            RespValue::Error("ERR value is not an integer or out of range".into()),
            RespValue::Null,
            simple("OK"),
            simple("PONG"),
        ])
    );

    // Pairing in order, with timestamps.
    let mut session = RedisPairing::new(16, 256);
    for (i, v) in requests.into_iter().enumerate() {
        session.on_request(v.unwrap(), 100 + i as u64);
    }
    assert_eq!(session.pending(), 9);
    let events: Vec<_> = replies
        .into_iter()
        .enumerate()
        .map(|(i, v)| session.on_reply(v.unwrap(), 200 + i as u64).unwrap())
        .collect();
    let summary: Vec<(String, String, String, bool, u64)> = events
        .iter()
        .map(|e| match e {
            RedisEvent::Exchange {
                cmd,
                reply,
                is_error,
                req_ts,
                resp_ts,
            } => (
                cmd.cmd.clone(),
                cmd.args_json(),
                reply.clone(),
                *is_error,
                resp_ts - req_ts,
            ),
            other => panic!("{other:?}"),
        })
        .collect();
    let want = [
        ("SET", r#"["key","value"]"#, "OK", false, 100),
        ("GET", r#"["key"]"#, "value", false, 100),
        ("INCR", r#"["counter"]"#, "1", false, 100),
        ("LPUSH", r#"["list","a"]"#, "1", false, 100),
        ("LRANGE", r#"["list","0","-1"]"#, r#"["a"]"#, false, 100),
        (
            "INCR",
            r#"["key"]"#,
            "ERR value is not an integer or out of range",
            true,
            100,
        ),
        ("HGET", r#"["h","missing"]"#, "<NULL>", false, 100),
        ("CLIENT SETNAME", r#"["cli"]"#, "OK", false, 100),
        ("PING", "[]", "PONG", false, 100),
    ];
    let want: Vec<_> = want
        .iter()
        .map(|(c, a, r, e, l)| (c.to_string(), a.to_string(), r.to_string(), *e, *l))
        .collect();
    assert_eq!(summary, want);
    assert_eq!(session.pending(), 0);
    assert_eq!(session.finish(), 0);
}

#[test]
fn resp3_hello_map_and_secrets() {
    let config = RespConfig::default();
    let request = assert_chunking_equivalent(HELLO_REQUEST, || {
        let mut d = RespDecoder::new(Request, config.clone());
        move |b: &[u8]| d.decode(b)
    });
    assert_eq!(
        request,
        ok(vec![cmd(&[
            "HELLO",
            "3",
            "AUTH",
            "default",
            "<redacted>",
            "SETNAME",
            "app"
        ])])
    );
    let reply = assert_chunking_equivalent(HELLO_REPLY, || {
        let mut d = RespDecoder::new(Response, config.clone());
        move |b: &[u8]| d.decode(b)
    });
    let map = RespValue::Map(Aggregate::new(vec![
        bulk("server"),
        bulk("redis"),
        bulk("version"),
        bulk("7.2.4"),
        bulk("proto"),
        RespValue::Integer(3),
        bulk("id"),
        RespValue::Integer(5),
        bulk("mode"),
        bulk("standalone"),
        bulk("role"),
        bulk("master"),
        bulk("modules"),
        array(vec![]),
    ]));
    assert_eq!(reply, ok(vec![map.clone()]));
    assert_eq!(
        render(&map, 1000),
        r#"{"server":"redis","version":"7.2.4","proto":3,"id":5,"mode":"standalone","role":"master","modules":[]}"#
    );
    let mut session = RedisPairing::new(16, 1000);
    session.on_request(request[0].clone().unwrap(), 1);
    let event = session.on_reply(map, 2).unwrap();
    let text = format!("{event:?}");
    assert!(text.contains("HELLO"), "{text}");
    assert!(!text.contains(PASSWORD), "{text}");
}

#[test]
fn secrets_never_leave() {
    let p = PASSWORD;
    let acl_rule = format!(">{p}");
    let requests: Vec<(Vec<&str>, &str)> = vec![
        (vec!["AUTH", p], r#"["<redacted>"]"#),
        (vec!["auth", "alice", p], r#"["alice","<redacted>"]"#),
        (
            vec!["HELLO", "3", "auth", "bob", p],
            r#"["3","auth","bob","<redacted>"]"#,
        ),
        (
            vec![
                "MIGRATE", "h", "6379", "", "0", "5000", "AUTH", p, "KEYS", "a",
            ],
            r#"["h","6379","","0","5000","AUTH","<redacted>","KEYS","a"]"#,
        ),
        (
            vec!["MIGRATE", "h", "6379", "k", "0", "5000", "AUTH2", "u", p],
            r#"["h","6379","k","0","5000","AUTH2","u","<redacted>"]"#,
        ),
        (
            vec!["CONFIG", "SET", "maxmemory", "1gb", "requirepass", p],
            r#"["maxmemory","1gb","requirepass","<redacted>"]"#,
        ),
        (
            vec!["ACL", "SETUSER", "carol", "on", &acl_rule, "~*", "+@all"],
            r#"["carol","on","<redacted>","~*","+@all"]"#,
        ),
        (
            vec!["SENTINEL", "SET", "mymaster", "auth-pass", p],
            r#"["mymaster","auth-pass","<redacted>"]"#,
        ),
    ];
    for (args, want) in requests {
        let mut wire = format!("*{}\r\n", args.len());
        for a in &args {
            wire.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        // Also as an inline command when it has no empty argument.
        let mut streams = vec![wire.into_bytes()];
        if !args.contains(&"") {
            streams.push(format!("{}\r\n", args.join(" ")).into_bytes());
        }
        for stream in streams {
            let values = decode_all(Request, &RespConfig::default(), &stream);
            let value = values[0].clone().unwrap();
            assert!(!format!("{value:?}").contains(p), "{value:?}");
            let command = RedisCommand::from_value(&value).unwrap();
            assert_eq!(command.args_json(), want, "{args:?}");
            let mut session = RedisPairing::new(4, 100);
            session.on_request(value, 1);
            let event = session.on_reply(simple("OK"), 2).unwrap();
            assert!(!format!("{event:?}").contains(p));
        }
    }
    // Redaction also holds for values built by hand.
    let command = RedisCommand::from_value(&cmd(&["AUTH", p])).unwrap();
    assert_eq!(command.args, ["<redacted>"]);
    // CONFIG GET replies.
    let mut session = RedisPairing::new(4, 200);
    session.on_request(cmd(&["CONFIG", "GET", "*pass*"]), 1);
    let event = session
        .on_reply(
            array(vec![
                bulk("requirepass"),
                bulk(p),
                bulk("masterauth"),
                bulk(""),
            ]),
            2,
        )
        .unwrap();
    let RedisEvent::Exchange {
        cmd: command,
        reply,
        ..
    } = event
    else {
        panic!()
    };
    assert_eq!(command.cmd, "CONFIG GET");
    assert_eq!(
        reply,
        r#"["requirepass","<redacted>","masterauth","<redacted>"]"#
    );
    // Password hashes in ACL LIST.
    let hash = "5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8";
    session.on_request(cmd(&["ACL", "LIST"]), 3);
    let event = session
        .on_reply(
            array(vec![bulk(&format!("user default on #{hash} ~* +@all"))]),
            4,
        )
        .unwrap();
    assert!(!format!("{event:?}").contains(hash), "{event:?}");
}

#[test]
fn value_table() {
    let config = RespConfig::default();
    let cases: Vec<(&str, &[u8], Vec<RespValue>)> = vec![
        ("simple", b"+hello world\r\n", vec![simple("hello world")]),
        ("error", b"-WRONGTYPE bad\r\n", vec![RespValue::Error("WRONGTYPE bad".into())]),
        ("integers", b":0\r\n:-12\r\n:+7\r\n", vec![
            RespValue::Integer(0),
            RespValue::Integer(-12),
            RespValue::Integer(7),
        ]),
        ("empty bulk", b"$0\r\n\r\n", vec![bulk("")]),
        ("binary bulk", b"$3\r\n\x00\r\n\r\n", vec![RespValue::bulk(b"\x00\r\n")]),
        ("nulls", b"$-1\r\n*-1\r\n_\r\n", vec![RespValue::Null, RespValue::Null, RespValue::Null]),
        ("nested", b"*2\r\n*1\r\n:1\r\n*0\r\n", vec![array(vec![
            array(vec![RespValue::Integer(1)]),
            array(vec![]),
        ])]),
        ("resp3 scalars", b",3.14\r\n,-inf\r\n#t\r\n#f\r\n(3492890328409238509324850943850943825024385\r\n", vec![
            RespValue::Double("3.14".into()),
            RespValue::Double("-inf".into()),
            RespValue::Boolean(true),
            RespValue::Boolean(false),
            RespValue::BigNumber("3492890328409238509324850943850943825024385".into()),
        ]),
        ("blob error and verbatim", b"!21\r\nSYNTAX invalid syntax\r\n=15\r\ntxt:Some string\r\n", vec![
            RespValue::BlobError(BulkString::new(b"SYNTAX invalid syntax")),
            RespValue::Verbatim(BulkString::new(b"txt:Some string")),
        ]),
        ("set and push", b"~2\r\n+a\r\n:1\r\n>3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n", vec![
            RespValue::Set(Aggregate::new(vec![simple("a"), RespValue::Integer(1)])),
            RespValue::Push(Aggregate::new(vec![bulk("message"), bulk("ch"), bulk("hi")])),
        ]),
        ("attribute before a value is dropped", b"|1\r\n+key-popularity\r\n%1\r\n$1\r\na\r\n,0.19\r\n*2\r\n:2039123\r\n|1\r\n+ttl\r\n:3600\r\n:9543892\r\n", vec![
            array(vec![RespValue::Integer(2039123), RespValue::Integer(9543892)]),
        ]),
        ("streamed string", b"$?\r\n;4\r\nHell\r\n;5\r\no wor\r\n;1\r\nd\r\n;0\r\n", vec![bulk("Hello word")]),
        ("streamed aggregate", b"*?\r\n:1\r\n:2\r\n.\r\n%?\r\n+a\r\n:1\r\n.\r\n", vec![
            array(vec![RespValue::Integer(1), RespValue::Integer(2)]),
            RespValue::Map(Aggregate::new(vec![simple("a"), RespValue::Integer(1)])),
        ]),
    ];
    for (name, stream, want) in cases {
        let got = assert_chunking_equivalent(stream, || {
            let mut d = RespDecoder::new(Response, config.clone());
            move |b: &[u8]| d.decode(b)
        });
        assert_eq!(got, ok(want), "{name}");
    }
}

#[test]
fn inline_commands() {
    let got = decode_all(
        Request,
        &RespConfig::default(),
        b"PING\r\n\r\nset  k\tv\nGET k\r\n",
    );
    assert_eq!(
        got,
        ok(vec![
            cmd(&["PING"]),
            cmd(&["set", "k", "v"]),
            cmd(&["GET", "k"])
        ])
    );
    // Responses never parse as inline.
    let got = decode_all(Response, &RespConfig::default(), b"PING\r\n");
    assert_eq!(got, vec![Err(RespError::InvalidType)]);
}

#[test]
fn errors() {
    let config = RespConfig {
        max_line_bytes: 24,
        max_depth: 3,
        ..RespConfig::default()
    };
    let cases: Vec<(&[u8], RespError)> = vec![
        (b"?\r\n", RespError::InvalidType),
        (b"\r\n", RespError::InvalidType),
        (b"+ok\n", RespError::InvalidTerminator),
        (b"$3\r\nabcd\r\n", RespError::InvalidTerminator),
        (b"$-2\r\n", RespError::InvalidLength),
        (b"$x\r\n", RespError::InvalidLength),
        (b"$9999999999999\r\n", RespError::InvalidLength),
        (b"*-5\r\n", RespError::InvalidLength),
        (b":12a\r\n", RespError::InvalidNumber),
        (b":99999999999999999999\r\n", RespError::InvalidNumber),
        (b"#x\r\n", RespError::InvalidNumber),
        (
            b"+aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            RespError::LineTooLong,
        ),
        (b"*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n", RespError::TooDeep),
        (b".\r\n", RespError::UnexpectedStreamPart),
        (b"*1\r\n;3\r\n", RespError::UnexpectedStreamPart),
        (b"$?\r\n+x\r\n", RespError::UnexpectedStreamPart),
        (b"=2\r\nab\r\n", RespError::InvalidLength),
    ];
    for (stream, want) in cases {
        let got = assert_chunking_equivalent(stream, || {
            let mut d = RespDecoder::new(Response, config.clone());
            move |b: &[u8]| d.decode(b)
        });
        assert_eq!(
            got,
            vec![Err(want)],
            "{:?}",
            String::from_utf8_lossy(stream)
        );
    }
    // After an error the decoder is idle and decodes the next value.
    let mut d = RespDecoder::new(Response, config);
    assert!(d.decode(b"?\r\n").is_err());
    assert!(d.is_idle());
    assert_eq!(
        d.decode(b":1\r\n"),
        Ok(Decoded::Progress {
            consumed: 4,
            message: Some(RespValue::Integer(1))
        })
    );
}

#[test]
fn caps_bound_what_is_kept() {
    let config = RespConfig {
        max_kept_bytes: 4,
        max_elements: 2,
        max_total_elements: 3,
        ..RespConfig::default()
    };
    let got = decode_all(
        Response,
        &config,
        b"$10\r\n0123456789\r\n*3\r\n:1\r\n:2\r\n:3\r\n*2\r\n*2\r\n:1\r\n:2\r\n*2\r\n:3\r\n:4\r\n",
    );
    assert_eq!(
        got,
        ok(vec![
            RespValue::BulkString(BulkString {
                data: b"0123".to_vec(),
                len: 10,
                incomplete: false
            }),
            RespValue::Array(Aggregate {
                items: vec![RespValue::Integer(1), RespValue::Integer(2)],
                len: 3
            }),
            // 3 values kept in all: the second inner array is dropped.
            RespValue::Array(Aggregate {
                items: vec![array(vec![RespValue::Integer(1), RespValue::Integer(2)])],
                len: 2
            }),
        ])
    );
    assert_eq!(render(&got[0].clone().unwrap(), 100), "0123...");
    assert_eq!(render(&got[1].clone().unwrap(), 100), "[1,2,...(+1)]");
    assert_eq!(render(&got[2].clone().unwrap(), 100), "[[1,2],...(+1)]");
    // A huge declared bulk costs no memory and is consumed as it comes.
    let mut d = RespDecoder::new(Response, config);
    assert_eq!(
        d.decode(b"$1000000\r\n"),
        Ok(Decoded::Progress {
            consumed: 10,
            message: None
        })
    );
    let chunk = vec![b'x'; 4096];
    let mut left = 1_000_000usize;
    while left > 0 {
        let n = left.min(chunk.len());
        assert_eq!(
            d.decode(&chunk[..n]),
            Ok(Decoded::Progress {
                consumed: n,
                message: None
            })
        );
        left -= n;
    }
    assert_eq!(
        d.decode(b"\r\n"),
        Ok(Decoded::Progress {
            consumed: 2,
            message: Some(RespValue::BulkString(BulkString {
                data: b"xxxx".to_vec(),
                len: 1_000_000,
                incomplete: false
            }))
        })
    );
}

#[test]
fn gaps_inside_bulk_payloads_are_absorbed() {
    let config = RespConfig::default();
    // *2 $5 hello $100000 <gap> ...
    let mut d = RespDecoder::new(Request, config.clone());
    let head = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$100000\r\nabc";
    assert_eq!(
        d.decode(head),
        Ok(Decoded::Progress {
            consumed: head.len(),
            message: None
        })
    );
    assert_eq!(d.skip_gap(99_990), GapOutcome::Absorbed);
    assert!(!d.is_idle());
    let got = d.decode(b"0123456\r\n").unwrap();
    let Decoded::Progress {
        consumed: 9,
        message: Some(value),
    } = got
    else {
        panic!("{got:?}")
    };
    let command = RedisCommand::from_value(&value).unwrap();
    assert_eq!(command.cmd, "SET");
    assert_eq!(command.args, ["k", "abc..."]);
    // A gap that ends the payload and its CRLF completes the value.
    let mut d = RespDecoder::new(Response, config.clone());
    assert!(matches!(
        d.decode(b"$10\r\nab"),
        Ok(Decoded::Progress { consumed: 7, .. })
    ));
    assert_eq!(d.skip_gap(10), GapOutcome::Absorbed);
    assert_eq!(
        d.decode(b""),
        Ok(Decoded::Progress {
            consumed: 0,
            message: Some(RespValue::BulkString(BulkString {
                data: b"ab".to_vec(),
                len: 10,
                incomplete: true
            }))
        })
    );
    assert!(d.is_idle());
    // Beyond the payload, or between values: lost.
    let mut d = RespDecoder::new(Response, config.clone());
    assert!(matches!(
        d.decode(b"$10\r\nab"),
        Ok(Decoded::Progress { .. })
    ));
    assert_eq!(d.skip_gap(11), GapOutcome::MessageLost);
    assert!(d.is_idle());
    assert_eq!(d.skip_gap(1), GapOutcome::MessageLost);
    assert_eq!(d.skip_gap(0), GapOutcome::Absorbed);
    let mut d = RespDecoder::new(Response, config);
    assert!(matches!(
        d.decode(b"*2\r\n:1\r\n"),
        Ok(Decoded::Progress { .. })
    ));
    assert_eq!(d.skip_gap(3), GapOutcome::MessageLost);
    assert!(d.is_idle());
}

#[test]
fn resync() {
    let requests = b"o\r\n$3\r\nabc\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n";
    assert_eq!(find_message_start(requests, Request), Some(12));
    assert_eq!(
        find_message_start(b"*1\r\n$4\r\nPING\r\n", Request),
        Some(0)
    );
    assert_eq!(
        find_message_start(b"xx\r\n*1\r\n$4\r\nNOPE\r\n", Request),
        None
    );
    assert_eq!(find_message_start(b"lo\r\n-ERR no\r\n", Response), Some(4));
    assert_eq!(find_message_start(b"lo\r\n+OK\r\n", Response), None);
}

fn exchange(event: Option<RedisEvent>) -> (String, String, bool) {
    match event {
        Some(RedisEvent::Exchange {
            cmd,
            reply,
            is_error,
            ..
        }) => (cmd.cmd, reply, is_error),
        other => panic!("not an exchange: {other:?}"),
    }
}

fn push(event: Option<RedisEvent>) -> (String, Option<String>, String) {
    match event {
        Some(RedisEvent::Push {
            kind,
            channel,
            payload,
            ..
        }) => (kind, channel, payload),
        other => panic!("not a push: {other:?}"),
    }
}

fn strings(items: &[&str]) -> Vec<RespValue> {
    items.iter().map(|s| bulk(s)).collect()
}

#[test]
fn session_pubsub_resp2() {
    let mut s = RedisPairing::new(8, 100);
    s.on_request(cmd(&["SUBSCRIBE", "news", "sport"]), 1);
    let confirm = |kind: &str, ch: &str, n: i64| {
        let mut items = strings(&[kind, ch]);
        items.push(RespValue::Integer(n));
        array(items)
    };
    let first = confirm("subscribe", "news", 1);
    let second = confirm("subscribe", "sport", 2);
    assert_eq!(
        exchange(s.on_reply(first, 2)),
        (
            "SUBSCRIBE".into(),
            r#"["subscribe","news",1]"#.into(),
            false
        )
    );
    assert_eq!(s.on_reply(second, 3), None);
    assert_eq!(
        push(s.on_reply(array(strings(&["message", "news", "hello"])), 4)),
        ("message".into(), Some("news".into()), "hello".into())
    );
    s.on_request(cmd(&["PSUBSCRIBE", "n*"]), 5);
    assert!(matches!(
        s.on_reply(confirm("psubscribe", "n*", 3), 6),
        Some(RedisEvent::Exchange { .. })
    ));
    assert_eq!(
        push(s.on_reply(array(strings(&["pmessage", "n*", "news", "x"])), 7)),
        ("pmessage".into(), Some("news".into()), "x".into())
    );
    // PING in subscribed mode answers with an array.
    s.on_request(cmd(&["PING"]), 8);
    assert_eq!(
        exchange(s.on_reply(array(strings(&["pong", ""])), 9)),
        ("PING".into(), r#"["pong",""]"#.into(), false)
    );
    // UNSUBSCRIBE without channels: one confirmation per channel, until 0.
    s.on_request(cmd(&["UNSUBSCRIBE"]), 10);
    assert!(matches!(
        s.on_reply(confirm("unsubscribe", "news", 2), 11),
        Some(RedisEvent::Exchange { .. })
    ));
    assert_eq!(s.on_reply(confirm("unsubscribe", "sport", 1), 12), None);
    s.on_request(cmd(&["PUNSUBSCRIBE"]), 13);
    assert!(matches!(
        s.on_reply(confirm("punsubscribe", "n*", 0), 14),
        Some(RedisEvent::Exchange { .. })
    ));
    // Not subscribed any more: an array starting with "message" is a reply.
    s.on_request(cmd(&["LRANGE", "l", "0", "-1"]), 15);
    assert_eq!(
        exchange(s.on_reply(array(strings(&["message", "a", "b"])), 16)).0,
        "LRANGE"
    );
    assert_eq!(s.pending(), 0);
}

#[test]
fn session_resp3_pushes_monitor_and_client_reply() {
    let mut s = RedisPairing::new(8, 100);
    s.on_request(cmd(&["HELLO", "3"]), 1);
    assert_eq!(
        exchange(s.on_reply(RespValue::Map(Aggregate::new(vec![])), 2)).0,
        "HELLO"
    );
    s.on_request(cmd(&["SUBSCRIBE", "c"]), 3);
    let confirm = RespValue::Push(Aggregate::new(vec![
        bulk("subscribe"),
        bulk("c"),
        RespValue::Integer(1),
    ]));
    assert_eq!(exchange(s.on_reply(confirm, 4)).0, "SUBSCRIBE");
    // A command's reply in between pushes.
    s.on_request(cmd(&["GET", "k"]), 5);
    let message = RespValue::Push(Aggregate::new(strings(&["message", "c", "payload"])));
    assert_eq!(push(s.on_reply(message, 6)).2, "payload");
    // In RESP3 an array is always a reply.
    assert_eq!(
        exchange(s.on_reply(array(strings(&["message", "x", "y"])), 7)).0,
        "GET"
    );
    let invalidate = RespValue::Push(Aggregate::new(vec![
        bulk("invalidate"),
        array(strings(&["k"])),
    ]));
    assert_eq!(
        push(s.on_reply(invalidate, 8)),
        ("invalidate".into(), None, r#"["invalidate",["k"]]"#.into())
    );

    let mut s = RedisPairing::new(8, 200);
    s.on_request(cmd(&["MONITOR"]), 1);
    assert_eq!(exchange(s.on_reply(simple("OK"), 2)).0, "MONITOR");
    let line = r#"1700000000.123456 [0 127.0.0.1:50000] "get" "k""#;
    assert_eq!(
        push(s.on_reply(simple(line), 3)),
        ("monitor".into(), None, line.into())
    );

    let mut s = RedisPairing::new(8, 100);
    s.on_request(cmd(&["CLIENT", "REPLY", "SKIP"]), 1);
    s.on_request(cmd(&["SET", "a", "1"]), 2);
    s.on_request(cmd(&["SET", "b", "2"]), 3);
    s.on_request(cmd(&["CLIENT", "REPLY", "OFF"]), 4);
    s.on_request(cmd(&["SET", "c", "3"]), 5);
    s.on_request(cmd(&["CLIENT", "REPLY", "ON"]), 6);
    assert_eq!(s.pending(), 2);
    assert_eq!(exchange(s.on_reply(simple("OK"), 7)).0, "SET");
    assert_eq!(exchange(s.on_reply(simple("OK"), 8)).0, "CLIENT REPLY");
}

#[test]
fn session_unmatched_bounds_and_gaps() {
    let mut s = RedisPairing::new(2, 100);
    assert_eq!(
        s.on_reply(simple("OK"), 5),
        Some(RedisEvent::UnmatchedReply {
            reply: "OK".into(),
            is_error: false,
            ts: 5
        })
    );
    for i in 0..5 {
        s.on_request(cmd(&["INCR", "k"]), 10 + i);
    }
    assert_eq!(s.pending(), 2);
    assert_eq!(s.overflowed(), 3);
    // A reply that ended before the waiting request started answers a lost one.
    assert!(matches!(
        s.on_reply(RespValue::Integer(1), 12),
        Some(RedisEvent::UnmatchedReply { .. })
    ));
    assert!(matches!(
        s.on_reply(RespValue::Integer(2), 20),
        Some(RedisEvent::Exchange { req_ts: 13, .. })
    ));
    assert_eq!(s.on_gap(), 1);
    assert_eq!(s.finish(), 0);
    // Non-command request values are ignored.
    s.on_request(RespValue::Integer(3), 30);
    s.on_request(array(vec![array(vec![])]), 30);
    assert_eq!(s.pending(), 0);
}

#[test]
fn command_names() {
    let cases: Vec<(Vec<&str>, &str, Vec<&str>)> = vec![
        (vec!["get", "k"], "GET", vec!["k"]),
        (vec!["client", "setname", "x"], "CLIENT SETNAME", vec!["x"]),
        (
            vec!["CONFIG", "get", "maxmemory"],
            "CONFIG GET",
            vec!["maxmemory"],
        ),
        (vec!["xinfo", "STREAM", "s"], "XINFO STREAM", vec!["s"]),
        (vec!["ACL", "WHOAMI"], "ACL WHOAMI", vec![]),
        (vec!["CLIENT"], "CLIENT", vec![]),
        (
            vec!["JSON.SET", "k", "$", "{}"],
            "JSON.SET",
            vec!["k", "$", "{}"],
        ),
    ];
    for (args, name, rest) in cases {
        let c = RedisCommand::from_value(&cmd(&args)).unwrap();
        assert_eq!(
            (
                c.cmd.as_str(),
                c.args.iter().map(String::as_str).collect::<Vec<_>>()
            ),
            (name, rest)
        );
    }
    assert_eq!(RedisCommand::from_value(&RespValue::Integer(1)), None);
    assert_eq!(RedisCommand::from_value(&array(vec![])), None);
    assert_eq!(
        RedisCommand::from_value(&array(vec![RespValue::Integer(1)])),
        None
    );
}

#[test]
fn render_table() {
    let cases: Vec<(RespValue, usize, &str)> = vec![
        (simple("OK"), 100, "OK"),
        (RespValue::Integer(-3), 100, "-3"),
        (RespValue::Null, 100, "<NULL>"),
        (bulk("abcdefghij"), 8, "abcde..."),
        (
            array(vec![
                bulk("a\"b"),
                RespValue::Null,
                RespValue::Boolean(true),
            ]),
            100,
            r#"["a\"b",null,true]"#,
        ),
        (
            array(strings(&["aaaa", "bbbb", "cccc"])),
            10,
            r#"["aaaa"..."#,
        ),
        (RespValue::Verbatim(BulkString::new(b"txt:hi")), 100, "hi"),
        (RespValue::Error("ERR x".into()), 100, "ERR x"),
    ];
    for (value, max, want) in cases {
        assert_eq!(render(&value, max), want, "{value:?}");
    }
}

#[test]
fn no_panic_on_mutated_and_random_input() {
    let config = RespConfig {
        max_line_bytes: 64,
        max_kept_bytes: 8,
        max_depth: 4,
        max_elements: 4,
        max_total_elements: 8,
        ..RespConfig::default()
    };
    let seeds: &[&[u8]] = &[
        PIPELINE_REQUESTS,
        PIPELINE_REPLIES,
        HELLO_REQUEST,
        HELLO_REPLY,
        b"$?\r\n;4\r\nHell\r\n;0\r\n*?\r\n:1\r\n.\r\n|1\r\n+a\r\n+b\r\n:1\r\n",
    ];
    let tokens: &[&[u8]] = &[
        b"\r\n",
        b"*",
        b"$",
        b"%",
        b">",
        b"|",
        b"?",
        b"-1",
        b"0",
        b"99999999999",
        b";",
        b".",
    ];
    let mut rng = Lcg(7);
    let mut values = 0;
    const ROUNDS: usize = 20_000;
    for round in 0..ROUNDS {
        let seed = seeds[rng.below(seeds.len())];
        let input = mutate(&mut rng, seed, tokens);
        let kind = if round % 2 == 0 { Request } else { Response };
        let mut d = RespDecoder::new(kind, config.clone());
        let mut session = RedisPairing::new(4, 32);
        let mut buf = Vec::new();
        let mut rest = &input[..];
        while !rest.is_empty() {
            let (chunk, tail) = rest.split_at(rest.len().min(1 + rng.below(32)));
            rest = tail;
            buf.extend_from_slice(chunk);
            if rng.below(16) == 0 && d.skip_gap(rng.below(20) as u64) == GapOutcome::MessageLost {
                assert!(d.is_idle());
                buf.clear();
                session.on_gap();
            }
            loop {
                match d.decode(&buf) {
                    Ok(Decoded::NeedMore) => break,
                    Ok(Decoded::Progress { consumed, message }) => {
                        assert!(consumed <= buf.len());
                        assert!(consumed > 0 || message.is_some());
                        buf.drain(..consumed);
                        if let Some(v) = message {
                            values += 1;
                            let text = render(&v, 40);
                            assert!(text.len() <= 40);
                            if kind == Request {
                                session.on_request(v, round as u64);
                            } else {
                                session.on_reply(v, round as u64);
                            }
                            assert!(session.pending() <= 4);
                        }
                    }
                    Err(_) => {
                        assert!(d.is_idle());
                        match find_message_start(buf.get(1..).unwrap_or_default(), kind) {
                            Some(at) => drop(buf.drain(..=at)),
                            None => {
                                buf.clear();
                                break;
                            }
                        }
                    }
                }
            }
            assert!(
                buf.len() <= config.max_line_bytes + 2 + 32,
                "caller buffer grew"
            );
        }
        d.finish();
        assert!(d.is_idle());
    }
    assert!(values > ROUNDS, "only {values} values decoded");
}
