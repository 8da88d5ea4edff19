//! PostgreSQL: golden streams recorded from a real server (psql, pgbench,
//! psycopg 3, node-postgres; see tests/tests/pgsql_record.rs) decoded into
//! exact events, whole and in arbitrary chunks; message types and edge
//! cases built by hand.

mod common;

use common::Lcg;
use sonde_protocols::Decoded;
use sonde_protocols::MessageKind::{Request, Response};
use sonde_protocols::pgsql::{Encryption, PgCommand, PgConfig, PgDecoder, PgEvent, PgSession};

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

/// Replays each connection of a recording through a decoder per direction
/// and a session; `split` cuts every read into pieces (None: whole).
fn replay(chunks: &[Chunk], mut split: Option<&mut Lcg>) -> Vec<Conn> {
    let mut conns: Vec<u32> = chunks.iter().map(|c| c.conn).collect();
    conns.dedup();
    conns.sort();
    conns.dedup();
    conns
        .into_iter()
        .map(|conn| {
            let config = PgConfig::default();
            let mut session = PgSession::new(config.clone());
            let mut decoders = [
                PgDecoder::new(Request, config.clone()),
                PgDecoder::new(Response, config.clone()),
            ];
            let mut bufs: [Vec<u8>; 2] = [Vec::new(), Vec::new()];
            let mut events = Vec::new();
            for chunk in chunks.iter().filter(|c| c.conn == conn) {
                let i = usize::from(!chunk.client);
                let mut pieces = Vec::new();
                let mut rest = chunk.bytes.as_slice();
                while !rest.is_empty() {
                    let n = match split.as_deref_mut() {
                        Some(rng) => 1 + rng.below(rest.len().min(40)),
                        None => rest.len(),
                    };
                    let (a, b) = rest.split_at(n);
                    pieces.push(a);
                    rest = b;
                }
                for piece in pieces {
                    bufs[i].extend_from_slice(piece);
                    loop {
                        match decoders[i]
                            .decode(&bufs[i])
                            .expect("recorded stream decodes")
                        {
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
