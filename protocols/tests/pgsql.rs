//! PostgreSQL: golden streams recorded from a real server (psql, pgbench,
//! psycopg 3, node-postgres; see tests/tests/pgsql_record.rs) decoded into
//! exact events, whole and in arbitrary chunks; message types and edge
//! cases built by hand.

mod common;

use common::Lcg;
use sonde_protocols::Decoded;
use sonde_protocols::MessageKind::{Request, Response};
use sonde_protocols::pgsql::{
    Encryption, PgCommand, PgConfig, PgDecoder, PgError, PgEvent, PgMessage, PgSession,
};

/// One recorded read: connection, from the client?, microseconds, bytes.
struct Chunk {
    conn: u32,
    client: bool,
    ts: u64,
    bytes: Vec<u8>,
}

fn load(name: &str) -> Vec<Chunk> {
    let path = format!("{}/tests/data/pgsql/{name}.pgs", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            let hex = f[3];
            Chunk {
                conn: f[0].parse().unwrap(),
                client: f[1] == "C",
                ts: f[2].parse().unwrap(),
                bytes: (0..hex.len())
                    .step_by(2)
                    .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
                    .collect(),
            }
        })
        .collect()
}

/// What one connection turned into.
#[derive(Debug, PartialEq)]
struct Conn {
    events: Vec<PgEvent>,
    user: String,
    database: String,
    encryption: Encryption,
}

/// Runs the reads of one connection through a decoder per direction and a
/// session; `split` cuts every read into random pieces (None: whole).
fn run_conn<'a>(
    config: &PgConfig,
    chunks: impl Iterator<Item = &'a Chunk>,
    mut split: Option<&mut Lcg>,
) -> (Vec<PgEvent>, PgSession) {
    let mut session = PgSession::new(config.clone());
    let mut decoders = [
        PgDecoder::new(Request, config.clone()),
        PgDecoder::new(Response, config.clone()),
    ];
    let mut bufs: [Vec<u8>; 2] = [Vec::new(), Vec::new()];
    let mut events = Vec::new();
    for chunk in chunks {
        let i = usize::from(!chunk.client);
        let mut rest = chunk.bytes.as_slice();
        while !rest.is_empty() {
            let n = match split.as_deref_mut() {
                Some(rng) => 1 + rng.below(rest.len().min(40)),
                None => rest.len(),
            };
            let (piece, tail) = rest.split_at(n);
            rest = tail;
            bufs[i].extend_from_slice(piece);
            loop {
                match decoders[i].decode(&bufs[i]).expect("stream decodes") {
                    Decoded::NeedMore => break,
                    Decoded::Progress { consumed, message } => {
                        bufs[i].drain(..consumed);
                        let Some(msg) = message else { continue };
                        let ev = if chunk.client {
                            session.on_frontend(&msg, chunk.ts)
                        } else {
                            session.on_backend(&msg, chunk.ts)
                        };
                        events.extend(ev);
                    }
                }
            }
        }
    }
    (events, session)
}

/// Replays each connection of a recording.
fn replay(chunks: &[Chunk], mut split: Option<&mut Lcg>) -> Vec<Conn> {
    let mut conns: Vec<u32> = chunks.iter().map(|c| c.conn).collect();
    conns.sort();
    conns.dedup();
    conns
        .into_iter()
        .map(|conn| {
            let mine = chunks.iter().filter(|c| c.conn == conn);
            let (events, session) = run_conn(&PgConfig::default(), mine, split.as_deref_mut());
            Conn {
                events,
                user: session.user().to_string(),
                database: session.database().to_string(),
                encryption: session.encryption(),
            }
        })
        .collect()
}

/// Replays whole, then in random pieces (several patterns): same result.
fn golden(name: &str) -> Vec<Conn> {
    let chunks = load(name);
    let whole = replay(&chunks, None);
    for seed in 0..8 {
        let mut rng = Lcg(seed);
        assert_eq!(
            replay(&chunks, Some(&mut rng)),
            whole,
            "{name}: split pattern {seed}"
        );
    }
    whole
}

/// (command, req, resp, sqlstate, rows) of an event.
type Summary = (&'static str, String, String, Option<String>, Option<u64>);

fn summary(events: &[PgEvent]) -> Vec<Summary> {
    events
        .iter()
        .map(|e| {
            (
                e.command.name(),
                e.req.clone(),
                e.resp.clone(),
                e.sqlstate.clone(),
                e.rows,
            )
        })
        .collect()
}

type Row<'a> = (&'a str, &'a str, &'a str, Option<&'a str>, Option<u64>);

fn check(conn: &Conn, want: &[Row<'_>]) {
    let got = summary(&conn.events);
    let want: Vec<_> = want
        .iter()
        .map(|&(c, req, resp, state, rows)| {
            (
                c,
                req.to_string(),
                resp.to_string(),
                state.map(String::from),
                rows,
            )
        })
        .collect();
    assert_eq!(got, want);
    for e in &conn.events {
        assert!(e.req_ts <= e.resp_ts, "{e:?}");
    }
}

const LOGIN: Row<'static> = (
    "Startup",
    "user=sonde database=shop application_name=psql",
    "OK (SCRAM-SHA-256)",
    None,
    None,
);
const TERMINATE: Row<'static> = ("Terminate", "", "", None, None);

#[test]
fn psql_statements_errors_and_copy() {
    let conns = golden("psql");
    assert_eq!(conns.len(), 5);
    for conn in &conns {
        assert_eq!(
            (conn.user.as_str(), conn.database.as_str()),
            ("sonde", "shop")
        );
        assert_eq!(conn.encryption, Encryption::None);
    }
    // sslmode=prefer against a server without TLS; three statements in
    // one query string.
    check(
        &conns[0],
        &[
            ("SSLRequest", "", "refused", None, None),
            LOGIN,
            (
                "Query",
                "CREATE TABLE items (id int PRIMARY KEY, name text)",
                "CREATE TABLE",
                None,
                None,
            ),
            (
                "Query",
                "INSERT INTO items VALUES (1, 'one'), (2, 'two')",
                "INSERT 0 2",
                None,
                Some(2),
            ),
            (
                "Query",
                "SELECT * FROM items ORDER BY id",
                "SELECT 2",
                None,
                Some(2),
            ),
            TERMINATE,
        ],
    );
    check(
        &conns[1],
        &[
            LOGIN,
            (
                "Query",
                "SELECT * FROM missing_table",
                "ERROR: relation \"missing_table\" does not exist",
                Some("42P01"),
                None,
            ),
            TERMINATE,
        ],
    );
    // "3\tthree\n4\tfour\n" in, all four rows out.
    check(
        &conns[2],
        &[
            LOGIN,
            (
                "CopyIn",
                "COPY items FROM STDIN",
                "COPY 2 (15 bytes)",
                None,
                Some(2),
            ),
            TERMINATE,
        ],
    );
    assert_eq!(conns[2].events[1].copy_bytes, Some(15));
    check(
        &conns[3],
        &[
            LOGIN,
            (
                "CopyOut",
                "COPY items TO STDOUT",
                "COPY 4 (27 bytes)",
                None,
                Some(4),
            ),
            TERMINATE,
        ],
    );
    assert_eq!(conns[3].events[1].copy_bytes, Some(27));
    // The statement after the error never ran: no event for it.
    check(
        &conns[4],
        &[
            LOGIN,
            ("Query", "SELECT 1", "SELECT 1", None, Some(1)),
            (
                "Query",
                "SELECT * FROM nope",
                "ERROR: relation \"nope\" does not exist",
                Some("42P01"),
                None,
            ),
            TERMINATE,
        ],
    );
}

#[test]
fn failed_scram_login() {
    let conns = golden("login_failure");
    check(
        &conns[0],
        &[(
            "Startup",
            "user=sonde database=shop application_name=psql",
            "FATAL: password authentication failed for user \"sonde\"",
            Some("28P01"),
            None,
        )],
    );
}

/// The passwords of every recording (scram: never on the wire; cleartext:
/// on the wire in a PasswordMessage; in SQL text: redacted) appear in no
/// event, and the decoder keeps nothing of password messages.
#[test]
fn passwords_appear_in_no_event() {
    let conns = golden("cleartext_password");
    check(
        &conns[0],
        &[
            (
                "Startup",
                "user=sonde database=shop application_name=psql",
                "OK (password)",
                None,
                None,
            ),
            (
                "Query",
                "ALTER ROLE sonde PASSWORD '<redacted>'",
                "ALTER ROLE",
                None,
                None,
            ),
            TERMINATE,
        ],
    );
    let raw: Vec<u8> = load("cleartext_password")
        .into_iter()
        .flat_map(|c| c.bytes)
        .collect();
    assert!(
        raw.windows(12).any(|w| w == b"sekret-pg-pw"),
        "not on the wire"
    );
    for name in [
        "cleartext_password",
        "psql",
        "login_failure",
        "pgbench_simple",
        "psycopg",
        "node_postgres",
    ] {
        for conn in golden(name) {
            for e in &conn.events {
                for secret in ["sekret-pg-pw", "wrong-password-123", "n3w-s3cret"] {
                    assert!(!e.req.contains(secret) && !e.resp.contains(secret), "{e:?}");
                }
            }
        }
    }
    // The PasswordMessage itself: decoded with its length, nothing kept.
    let mut decoder = PgDecoder::new(Request, PgConfig::default());
    let mut msg = b"p\0\0\0\x11sekret-pg-pw\0".to_vec();
    msg.push(b'S');
    let Ok(Decoded::Progress {
        consumed: 18,
        message: Some(m),
    }) = decoder.decode(&msg)
    else {
        panic!("password message not decoded");
    };
    assert_eq!((m.len, m.body.as_slice()), (13, &b""[..]));
}

/// pgbench's TPC-B-like script: 7 statements per transaction.
fn pgbench_statements(extended: bool) -> [&'static str; 7] {
    if extended {
        [
            "BEGIN;",
            "UPDATE pgbench_accounts SET abalance = abalance + $1 WHERE aid = $2;",
            "SELECT abalance FROM pgbench_accounts WHERE aid = $1;",
            "UPDATE pgbench_tellers SET tbalance = tbalance + $1 WHERE tid = $2;",
            "UPDATE pgbench_branches SET bbalance = bbalance + $1 WHERE bid = $2;",
            "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES ($1, $2, $3, $4, CURRENT_TIMESTAMP);",
            "END;",
        ]
    } else {
        [
            "BEGIN",
            "UPDATE pgbench_accounts SET abalance = abalance + ",
            "SELECT abalance FROM pgbench_accounts WHERE aid = ",
            "UPDATE pgbench_tellers SET tbalance = tbalance + ",
            "UPDATE pgbench_branches SET bbalance = bbalance + ",
            "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (",
            "END",
        ]
    }
}

const PGBENCH_TAGS: [(&str, Option<u64>); 7] = [
    ("BEGIN", None),
    ("UPDATE 1", Some(1)),
    ("SELECT 1", Some(1)),
    ("UPDATE 1", Some(1)),
    ("UPDATE 1", Some(1)),
    ("INSERT 0 1", Some(1)),
    ("COMMIT", None),
];

/// pgbench -t 3: its own connection (two catalog queries), then the
/// client's: login, 3 transactions of 7 statements, Terminate.
fn check_pgbench(name: &str, command: &str, extended: bool, first: &[&str; 7]) {
    let conns = golden(name);
    assert_eq!(conns.len(), 2);
    let setup = summary(&conns[0].events);
    assert_eq!(setup.len(), 4);
    assert_eq!(
        (setup[1].0, setup[1].1.as_str(), setup[1].2.as_str()),
        ("Query", "select count(*) from pgbench_branches", "SELECT 1")
    );
    let events = &conns[1].events;
    assert_eq!(events.len(), 1 + 21 + 1);
    assert_eq!(events[0].command, PgCommand::Startup);
    assert_eq!(events[0].resp, "OK (SCRAM-SHA-256)");
    assert_eq!(events[22].command, PgCommand::Terminate);
    let statements = pgbench_statements(extended);
    for (i, e) in events[1..22].iter().enumerate() {
        let k = i % 7;
        assert_eq!(e.command.name(), command, "{e:?}");
        assert!(e.req.starts_with(statements[k]), "{e:?}");
        assert_eq!((e.resp.as_str(), e.rows), PGBENCH_TAGS[k], "{e:?}");
        assert_eq!(e.sqlstate, None);
    }
    let first_tx: Vec<&str> = events[1..8].iter().map(|e| e.req.as_str()).collect();
    assert_eq!(first_tx, first);
}

#[test]
fn pgbench_simple_protocol() {
    check_pgbench(
        "pgbench_simple",
        "Query",
        false,
        &[
            "BEGIN",
            "UPDATE pgbench_accounts SET abalance = abalance + -1451 WHERE aid = 6271",
            "SELECT abalance FROM pgbench_accounts WHERE aid = 6271",
            "UPDATE pgbench_tellers SET tbalance = tbalance + -1451 WHERE tid = 10",
            "UPDATE pgbench_branches SET bbalance = bbalance + -1451 WHERE bid = 1",
            "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (10, 1, 6271, -1451, CURRENT_TIMESTAMP)",
            "END",
        ],
    );
}

#[test]
fn pgbench_extended_protocol() {
    check_pgbench(
        "pgbench_extended",
        "Execute",
        true,
        &[
            "BEGIN;",
            "UPDATE pgbench_accounts SET abalance = abalance + $1 WHERE aid = $2; -- params: ['-346', '41979']",
            "SELECT abalance FROM pgbench_accounts WHERE aid = $1; -- params: ['41979']",
            "UPDATE pgbench_tellers SET tbalance = tbalance + $1 WHERE tid = $2; -- params: ['-346', '4']",
            "UPDATE pgbench_branches SET bbalance = bbalance + $1 WHERE bid = $2; -- params: ['-346', '1']",
            "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES ($1, $2, $3, $4, CURRENT_TIMESTAMP); -- params: ['4', '1', '41979', '-346']",
            "END;",
        ],
    );
}

#[test]
fn pgbench_prepared_statements() {
    check_pgbench(
        "pgbench_prepared",
        "Execute",
        true,
        &[
            "BEGIN;",
            "UPDATE pgbench_accounts SET abalance = abalance + $1 WHERE aid = $2; -- params: ['1174', '75483']",
            "SELECT abalance FROM pgbench_accounts WHERE aid = $1; -- params: ['75483']",
            "UPDATE pgbench_tellers SET tbalance = tbalance + $1 WHERE tid = $2; -- params: ['1174', '8']",
            "UPDATE pgbench_branches SET bbalance = bbalance + $1 WHERE bid = $2; -- params: ['1174', '1']",
            "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES ($1, $2, $3, $4, CURRENT_TIMESTAMP); -- params: ['8', '1', '75483', '1174']",
            "END;",
        ],
    );
}

#[test]
fn psycopg_text_and_binary_parameters_and_a_pipeline() {
    let conns = golden("psycopg");
    let row = "'it''s', 12.50, true, '2024-05-01 12:30:00+00', \
               '550e8400-e29b-41d4-a716-446655440000', '{\"a\": 1}', '\\x0001ff', \
               '2024-02-29', 0.25]";
    let insert = "INSERT INTO things VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) -- params: [";
    let text_row = format!("{insert}1, {row}");
    let binary_row = format!("{insert}2, {row}");
    check(
        &conns[0],
        &[
            (
                "Startup",
                "user=sonde database=shop",
                "OK (SCRAM-SHA-256)",
                None,
                None,
            ),
            (
                "Query",
                "CREATE TEMP TABLE things (id int, name text, price numeric, ok bool, at timestamptz, u uuid, doc jsonb, raw bytea, day date, ratio float8)",
                "CREATE TABLE",
                None,
                None,
            ),
            ("Execute", &text_row, "INSERT 0 1", None, Some(1)),
            ("Execute", &binary_row, "INSERT 0 1", None, Some(1)),
            (
                "Execute",
                "SELECT id, name FROM things WHERE id = $1 ORDER BY id -- params: [2]",
                "SELECT 1",
                None,
                Some(1),
            ),
            // The pipeline: three Executes before one Sync.
            (
                "Execute",
                "UPDATE things SET ok = $1 WHERE id = $2 -- params: [false, 1]",
                "UPDATE 1",
                None,
                Some(1),
            ),
            (
                "Execute",
                "DELETE FROM things WHERE id = $1 -- params: [2]",
                "DELETE 1",
                None,
                Some(1),
            ),
            (
                "Execute",
                "SELECT count(*) FROM things WHERE name = $1 -- params: ['it''s']",
                "SELECT 1",
                None,
                Some(1),
            ),
            // Constant folding at Bind: the server's error answers the Bind.
            (
                "Bind",
                "SELECT 1 / $1 -- params: [0]",
                "ERROR: division by zero",
                Some("22012"),
                None,
            ),
            TERMINATE,
        ],
    );
}

#[test]
fn node_postgres_unnamed_and_named_statements() {
    let conns = golden("node_postgres");
    check(
        &conns[0],
        &[
            (
                "Startup",
                "user=sonde database=shop client_encoding=UTF8",
                "OK (SCRAM-SHA-256)",
                None,
                None,
            ),
            (
                "Query",
                "CREATE TEMP TABLE labels (id int, label text)",
                "CREATE TABLE",
                None,
                None,
            ),
            (
                "Execute",
                "INSERT INTO labels VALUES ($1, $2), ($3, $4) -- params: ['1', 'a', '2', 'b']",
                "INSERT 0 2",
                None,
                Some(2),
            ),
            // Named: parsed once, then only bound.
            (
                "Execute",
                "SELECT label FROM labels WHERE id = $1 -- params: ['2']",
                "SELECT 1",
                None,
                Some(1),
            ),
            (
                "Execute",
                "SELECT label FROM labels WHERE id = $1 -- params: ['1']",
                "SELECT 1",
                None,
                Some(1),
            ),
            (
                "Execute",
                "SELECT $1::int + 1 AS x -- params: ['41']",
                "SELECT 1",
                None,
                Some(1),
            ),
            (
                "Execute",
                "UPDATE labels SET label = $1 WHERE id > $2 -- params: ['z', '0']",
                "UPDATE 2",
                None,
                Some(2),
            ),
            TERMINATE,
        ],
    );
}

/// psql with sslmode=require: SSLRequest accepted, then ciphertext (the
/// session says TLS; the decoders consume the rest without messages).
#[test]
fn ssl_request_accepted_switches_to_tls() {
    let conns = golden("tls");
    check(&conns[0], &[("SSLRequest", "", "accepted", None, None)]);
    assert_eq!(conns[0].encryption, Encryption::Tls);
    assert_eq!(conns[0].user, "");
}

// ---- Hand-built conversations ----

/// A typed message.
fn m(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    out.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
    out.extend_from_slice(body);
    out
}

/// An untyped (startup-phase) message with `code`.
fn untyped(code: u32, rest: &[u8]) -> Vec<u8> {
    let mut out = (rest.len() as u32 + 8).to_be_bytes().to_vec();
    out.extend_from_slice(&code.to_be_bytes());
    out.extend_from_slice(rest);
    out
}

fn startup(params: &[(&str, &str)]) -> Vec<u8> {
    let mut body = Vec::new();
    for (k, v) in params {
        body.extend_from_slice(k.as_bytes());
        body.push(0);
        body.extend_from_slice(v.as_bytes());
        body.push(0);
    }
    body.push(0);
    untyped(196_608, &body)
}

fn cstr(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}

fn error(severity: &str, code: &str, message: &str) -> Vec<u8> {
    let mut body = Vec::new();
    for (f, v) in [
        (b'S', severity),
        (b'V', severity),
        (b'C', code),
        (b'M', message),
    ] {
        body.push(f);
        body.extend(cstr(v));
    }
    body.push(0);
    body
}

fn ready() -> Vec<u8> {
    m(b'Z', b"I")
}

/// Steps of (from the client?, bytes); the step index is the time.
fn converse(config: &PgConfig, steps: &[(bool, Vec<u8>)]) -> (Vec<PgEvent>, PgSession) {
    let chunks: Vec<Chunk> = steps
        .iter()
        .enumerate()
        .map(|(ts, (client, bytes))| Chunk {
            conn: 0,
            client: *client,
            ts: ts as u64,
            bytes: bytes.clone(),
        })
        .collect();
    run_conn(config, chunks.iter(), None)
}

const C: bool = true;
const S: bool = false;

#[test]
fn md5_and_trust_logins_gss_refused_and_cancel() {
    let config = PgConfig::default();
    let (events, session) = converse(
        &config,
        &[
            (C, untyped(80_877_104, b"")),
            (S, b"N".to_vec()),
            (C, startup(&[("user", "alice")])),
            (S, m(b'R', b"\0\0\0\x05salt")),
            (C, m(b'p', b"md5abcdef0123456789abcdef0123456789\0")),
            (
                S,
                [
                    m(b'R', b"\0\0\0\0"),
                    m(b'S', b"server_version\x0016.2\0"),
                    m(b'K', b"\0\0\x01\x02secr"),
                    ready(),
                ]
                .concat(),
            ),
        ],
    );
    assert_eq!(
        summary(&events),
        [
            ("GSSENCRequest", String::new(), "refused".into(), None, None),
            (
                "Startup",
                "user=alice".into(),
                "OK (md5)".into(),
                None,
                None
            ),
        ]
    );
    // No database named: the user's name is the database.
    assert_eq!((session.user(), session.database()), ("alice", "alice"));
    assert_eq!(session.server_version(), "16.2");
    assert_eq!((events[1].req_ts, events[1].resp_ts), (2, 5));

    let (events, _) = converse(
        &config,
        &[
            (C, startup(&[("user", "bob"), ("database", "db")])),
            (S, [m(b'R', b"\0\0\0\0"), ready()].concat()),
            (C, untyped(80_877_102, b"\0\0\x30\x39SECRETKY")),
        ],
    );
    assert_eq!(
        summary(&events),
        [
            (
                "Startup",
                "user=bob database=db".into(),
                "OK (trust)".into(),
                None,
                None
            ),
            (
                "CancelRequest",
                "pid=12345".into(),
                String::new(),
                None,
                None
            ),
        ]
    );
}

#[test]
fn notices_notifications_empty_queries_and_unsolicited_errors() {
    let config = PgConfig::default();
    let notice = |msg: &str| m(b'N', &error("NOTICE", "00000", msg));
    let (events, _) = converse(
        &config,
        &[
            (C, m(b'Q', b"DROP TABLE IF EXISTS gone; ;\0")),
            (
                S,
                [
                    notice("table \"gone\" does not exist, skipping"),
                    m(b'C', b"DROP TABLE\0"),
                    ready(),
                ]
                .concat(),
            ),
            (C, m(b'Q', b"-- nothing\0")),
            (S, [m(b'I', b""), ready()].concat()),
            (S, m(b'A', b"\0\0\0\x07jobs\0hello\0")),
            (S, notice("idle")),
            (
                S,
                m(
                    b'E',
                    &error(
                        "FATAL",
                        "57P01",
                        "terminating connection due to administrator command",
                    ),
                ),
            ),
        ],
    );
    assert_eq!(
        summary(&events),
        [
            (
                "Query",
                "DROP TABLE IF EXISTS gone".into(),
                "DROP TABLE; NOTICE: table \"gone\" does not exist, skipping".into(),
                None,
                None,
            ),
            (
                "Query",
                String::new(),
                "EmptyQueryResponse".into(),
                None,
                None
            ),
            ("Notification", "jobs".into(), "hello".into(), None, None),
            (
                "Notice",
                String::new(),
                "NOTICE: idle".into(),
                Some("00000".into()),
                None
            ),
            (
                "Error",
                String::new(),
                "FATAL: terminating connection due to administrator command".into(),
                Some("57P01".into()),
                None,
            ),
        ]
    );
}

/// Parse + Describe (the server's ParameterDescription gives the types),
/// then binary binds; a portal executed in two parts (PortalSuspended);
/// Close; an error at Parse skips the rest up to Sync.
#[test]
fn extended_protocol_types_portals_close_and_errors() {
    let config = PgConfig::default();
    let mut bind = b"cur\0s1\0\0\x01\0\x01\0\x02".to_vec();
    bind.extend_from_slice(&4u32.to_be_bytes());
    bind.extend_from_slice(&7i32.to_be_bytes());
    bind.extend_from_slice(&u32::MAX.to_be_bytes());
    bind.extend_from_slice(b"\0\0");
    let (events, session) = converse(
        &config,
        &[
            (
                C,
                [
                    m(b'P', b"s1\0SELECT x FROM t WHERE a = $1 OR b = $2\0\0\0"),
                    m(b'D', b"Ss1\0"),
                    m(b'S', b""),
                ]
                .concat(),
            ),
            (
                S,
                [
                    m(b'1', b""),
                    m(b't', b"\0\x02\0\0\0\x17\0\0\0\x19"),
                    m(b'n', b""),
                    ready(),
                ]
                .concat(),
            ),
            (
                C,
                [
                    m(b'B', &bind),
                    m(b'E', b"cur\0\0\0\0\x02"),
                    m(b'E', b"cur\0\0\0\0\0"),
                    m(b'C', b"Pcur\0"),
                    m(b'S', b""),
                ]
                .concat(),
            ),
            (
                S,
                [
                    m(b'2', b""),
                    m(b'D', b"\0\0"),
                    m(b'D', b"\0\0"),
                    m(b's', b""),
                    m(b'D', b"\0\0"),
                    m(b'C', b"SELECT 1\0"),
                    m(b'3', b""),
                    ready(),
                ]
                .concat(),
            ),
            (
                C,
                [
                    m(b'P', b"\0SELEC oops\0\0\0"),
                    m(b'B', b"\0\0\0\0\0\0\0\0"),
                    m(b'E', b"\0\0\0\0\0"),
                    m(b'S', b""),
                ]
                .concat(),
            ),
            (
                S,
                [
                    m(
                        b'E',
                        &error("ERROR", "42601", "syntax error at or near \"SELEC\""),
                    ),
                    ready(),
                ]
                .concat(),
            ),
            (C, [m(b'C', b"Ss1\0"), m(b'S', b"")].concat()),
            (S, [m(b'3', b""), ready()].concat()),
        ],
    );
    let req = "SELECT x FROM t WHERE a = $1 OR b = $2 -- params: [7, NULL]";
    assert_eq!(
        summary(&events),
        [
            (
                "Execute",
                req.into(),
                "PortalSuspended".into(),
                None,
                Some(2)
            ),
            ("Execute", req.into(), "SELECT 1".into(), None, Some(1)),
            (
                "Parse",
                "SELEC oops".into(),
                "ERROR: syntax error at or near \"SELEC\"".into(),
                Some("42601".into()),
                None,
            ),
        ]
    );
    // The second part of the portal starts with its own Execute.
    assert_eq!((events[0].req_ts, events[1].req_ts), (2, 2));
    assert_eq!(session.pending(), 0);
    // The unnamed statement of the failed Parse is known (texts are
    // remembered as sent); s1 was closed.
    assert_eq!(session.statements(), 1);
    assert_eq!(session.counters().unanswered, 0);
}

#[test]
fn caps_evict_and_count() {
    let config = PgConfig {
        max_statements: 2,
        max_pending: 3,
        max_text_len: 40,
        ..PgConfig::default()
    };
    let parse = |name: &str| m(b'P', &[cstr(name), cstr("SELECT 1"), vec![0, 0]].concat());
    let (events, session) = converse(
        &config,
        &[
            (
                C,
                [parse("a"), parse("b"), parse("c"), m(b'S', b"")].concat(),
            ),
            (C, m(b'B', b"\0zz\0\0\0\0\0\0\0")),
            (
                C,
                m(b'Q', format!("SELECT '{}'\0", "x".repeat(100)).as_bytes()),
            ),
            (S, [m(b'C', b"SELECT 1\0"), ready()].concat()),
        ],
    );
    let c = session.counters();
    assert_eq!(c.statements_evicted, 1);
    assert_eq!(c.unknown_statements, 1);
    // 4 + 1 + 1 requests queued with room for 3.
    assert_eq!(c.pending_evicted, 3);
    assert_eq!(session.statements(), 2);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].req.len(), 40);
    assert!(events[0].req.ends_with("..."));
    assert!(session.state_bytes() > 0);
}

/// After a gap, responses are ignored up to the next ReadyForQuery, so a
/// response is never paired with the wrong request.
#[test]
fn gaps_drop_requests_in_flight_and_never_mispair() {
    let config = PgConfig::default();
    let mut session = PgSession::new(config);
    let q = |text: &str| PgMessage::typed(b'Q', &cstr(text));
    let tag = |t: &str| PgMessage::typed(b'C', &cstr(t));
    let z = PgMessage::typed(b'Z', b"I");
    assert!(session.on_frontend(&q("SELECT 1"), 1).is_none());
    session.on_gap();
    assert_eq!(session.counters().unanswered, 1);
    // The answer to the lost query, then its ReadyForQuery: ignored.
    assert!(session.on_backend(&tag("SELECT 1"), 2).is_none());
    assert!(session.on_backend(&z, 3).is_none());
    assert!(session.on_frontend(&q("SELECT 2"), 4).is_none());
    let ev = session.on_backend(&tag("SELECT 2"), 5).expect("paired");
    assert_eq!(
        (ev.req.as_str(), ev.resp.as_str(), ev.req_ts),
        ("SELECT 2", "SELECT 2", 4)
    );
}

// ---- The decoder ----

#[test]
fn decoder_keeps_prefixes_skips_gaps_and_rejects_garbage() {
    let config = PgConfig {
        max_kept_bytes: 8,
        ..PgConfig::default()
    };
    let mut d = PgDecoder::new(Request, config.clone());
    let q = m(b'Q', b"SELECT 123456789\0");
    let Ok(Decoded::Progress {
        consumed,
        message: Some(msg),
    }) = d.decode(&q)
    else {
        panic!("query not decoded");
    };
    assert_eq!(
        (consumed, msg.len, msg.body.as_slice()),
        (q.len(), 17, &b"SELECT 1"[..])
    );
    assert_eq!(d.cut_messages(), 1);
    // A DataRow of 1 MiB: its header, then a gap over the rest of its body.
    let mut d = PgDecoder::new(Response, config.clone());
    let mut head = vec![b'D'];
    head.extend_from_slice(&(4 + (1u32 << 20)).to_be_bytes());
    head.extend_from_slice(b"\0\x01");
    assert_eq!(
        d.decode(&head),
        Ok(Decoded::Progress {
            consumed: 7,
            message: None
        })
    );
    assert_eq!(
        d.skip_gap((1 << 20) - 2),
        sonde_protocols::GapOutcome::Absorbed
    );
    let Ok(Decoded::Progress {
        consumed: 0,
        message: Some(row),
    }) = d.decode(b"")
    else {
        panic!("row not completed by the gap");
    };
    assert!(row.incomplete && row.body.is_empty() && row.len == 1 << 20);
    // Bad type byte, bad fixed length: errors, then idle.
    assert_eq!(d.decode(b"\x07\0\0\0\x04"), Err(PgError::InvalidType));
    assert!(d.is_idle());
    assert_eq!(d.decode(b"Z\0\0\0\x09I"), Err(PgError::InvalidLength));
    let mut d = PgDecoder::new(Request, config);
    assert_eq!(d.decode(b"\0\0\x27\x11"), Err(PgError::InvalidLength));
}

/// SASL exchanges, secret keys: only what the session needs is kept.
#[test]
fn decoder_keeps_no_secrets() {
    let config = PgConfig::default();
    let kept = |kind, bytes: &[u8]| {
        let mut d = PgDecoder::new(kind, config.clone());
        match d.decode(bytes) {
            Ok(Decoded::Progress {
                message: Some(m), ..
            }) => m.body,
            other => panic!("{other:?}"),
        }
    };
    // SASL: the mechanism list is kept, the server's challenge and proof are not.
    let sasl = m(b'R', b"\0\0\0\x0aSCRAM-SHA-256\0\0");
    assert_eq!(kept(Response, &sasl), b"\0\0\0\x0aSCRAM-SHA-256\0\0");
    let cont = m(b'R', b"\0\0\0\x0br=nonce,s=c2FsdA==,i=4096");
    assert_eq!(kept(Response, &cont), b"\0\0\0\x0b");
    let fin = m(b'R', b"\0\0\0\x0cv=c2lnbmF0dXJl");
    assert_eq!(kept(Response, &fin), b"\0\0\0\x0c");
    // SASLInitialResponse and SASLResponse from the client: nothing.
    let initial = m(b'p', b"SCRAM-SHA-256\0\0\0\0\x20n,,n=,r=clientnonce");
    assert_eq!(kept(Request, &initial), b"");
    // BackendKeyData: the process id, not the key; CancelRequest likewise.
    assert_eq!(
        kept(Response, &m(b'K', b"\0\0\x30\x39SECR")),
        b"\0\0\x30\x39"
    );
    let cancel = untyped(80_877_102, b"\0\0\x30\x39SECR");
    assert_eq!(kept(Request, &cancel), b"\x04\xd2\x16\x2e\0\0\x30\x39");
}

#[test]
fn resync_finds_message_starts() {
    use sonde_protocols::pgsql::find_message_start;
    let mut stream = b"\x9a\x01junk".to_vec();
    let at = stream.len();
    stream.extend(m(b'Q', b"SELECT 1\0"));
    assert_eq!(find_message_start(&stream, Request), Some(at));
    let mut stream = b"\xff\xfe\x00garbage".to_vec();
    let at = stream.len();
    stream.extend([m(b'C', b"UPDATE 1\0"), ready()].concat());
    assert_eq!(find_message_start(&stream, Response), Some(at));
    assert_eq!(
        find_message_start(b"\x01\x02\x03\x04\x05\x06\x07\x08", Response),
        None
    );
}

/// Fuzz finding: a notification's channel name (up to 128 bytes kept) was
/// not cut to `max_text_len`; every `req` and `resp` now is.
#[test]
fn every_text_is_cut_to_max_text_len() {
    let config = PgConfig {
        max_text_len: 20,
        ..PgConfig::default()
    };
    let long = "c".repeat(100);
    let (events, _) = converse(
        &config,
        &[
            (
                S,
                m(
                    b'A',
                    &[&[0, 0, 0, 1][..], &cstr(&long), &cstr("payload")].concat(),
                ),
            ),
            (C, m(b'C', &[b"S".to_vec(), cstr(&long)].concat())),
            (C, m(b'S', b"")),
            (
                S,
                [m(b'E', &error("ERROR", "26000", &long)), ready()].concat(),
            ),
        ],
    );
    assert_eq!(events.len(), 2);
    for e in &events {
        assert!(e.req.len() <= 20 && e.resp.len() <= 20, "{e:?}");
    }
    assert_eq!(events[0].req, format!("{}...", "c".repeat(17)));
    assert_eq!(events[1].req, "statement \"cccccc...");
}
