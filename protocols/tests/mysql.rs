//! MySQL: framing, handshake, commands, result sets, prepared statements.

mod common;

use common::mysql::*;
use common::{Lcg, assert_chunking_equivalent, feed_chunks, mutate};
use sonde_protocols::MessageKind::{Request, Response};
use sonde_protocols::mysql::{
    CLIENT_DEPRECATE_EOF, CLIENT_PLUGIN_AUTH, CLIENT_QUERY_ATTRIBUTES, CLIENT_SSL, COM_CONNECT,
    COM_QUERY, COM_QUIT, COM_STMT_CLOSE, COM_STMT_EXECUTE, COM_STMT_PREPARE, MysqlConfig,
    MysqlExchange, MysqlPacket, MysqlPacketDecoder, MysqlPairing, MysqlStatus, find_message_start,
};
use sonde_protocols::{Decoded, GapOutcome};

const PASSWORD: &[u8] = b"s3cr3t-P4ss";

/// Server capabilities of a MySQL 5.7 (no CLIENT_DEPRECATE_EOF) and of a
/// MySQL 8.0 server.
const CAPS_57: u32 = 0x807f_f7ff & !CLIENT_DEPRECATE_EOF & !CLIENT_QUERY_ATTRIBUTES;
const CAPS_80: u32 = 0xdfff_f7ff & !CLIENT_SSL;
/// What libmysqlclient sends (no SSL, no compression).
const CLIENT_CAPS: u32 = 0x19ff_a685 | CLIENT_PLUGIN_AUTH;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Dir {
    C,
    S,
}

/// Runs a conversation: each step is a direction and the bytes of one write
/// (one or more packets, or part of one). Each direction has its own
/// decoder; the step index is the timestamp.
fn run(config: &MysqlConfig, steps: &[(Dir, Vec<u8>)]) -> (Vec<MysqlExchange>, MysqlPairing) {
    let mut session = MysqlPairing::new(config.clone());
    let mut client = (MysqlPacketDecoder::new(config.clone()), Vec::new());
    let mut server = (MysqlPacketDecoder::new(config.clone()), Vec::new());
    let mut out = Vec::new();
    for (ts, (dir, bytes)) in steps.iter().enumerate() {
        let (decoder, buf) = match dir {
            Dir::C => (&mut client.0, &mut client.1),
            Dir::S => (&mut server.0, &mut server.1),
        };
        buf.extend_from_slice(bytes);
        loop {
            match decoder.decode(buf).unwrap() {
                Decoded::NeedMore => break,
                Decoded::Progress { consumed, message } => {
                    buf.drain(..consumed);
                    if let Some(pkt) = message {
                        let ex = match dir {
                            Dir::C => session.on_client_packet(&pkt, ts as u64),
                            Dir::S => session.on_server_packet(&pkt, ts as u64),
                        };
                        out.extend(ex);
                    }
                }
            }
        }
    }
    (out, session)
}

/// (cmd, body, status, resp_body, latency)
fn summary(exchanges: &[MysqlExchange]) -> Vec<(&'static str, String, MysqlStatus, String, u64)> {
    exchanges
        .iter()
        .map(|e| {
            (
                e.req_cmd_name,
                e.req_body.clone(),
                e.resp_status,
                e.resp_body.clone(),
                e.resp_ts - e.req_ts,
            )
        })
        .collect()
}

fn query(text: &str) -> Vec<u8> {
    command(COM_QUERY, text.as_bytes())
}

fn text_row(seq: u8, values: &[Option<&str>]) -> Vec<u8> {
    let mut p = Vec::new();
    for v in values {
        match v {
            Some(v) => p.extend(lenenc_str(v.as_bytes())),
            None => p.push(0xfb),
        }
    }
    packet(seq, &p)
}

fn concat(parts: &[Vec<u8>]) -> Vec<u8> {
    parts.concat()
}

/// mysql_native_password login, then a classic (EOF-delimited) result set,
/// an INSERT, a duplicate-key error and QUIT.
fn native_session() -> Vec<(Dir, Vec<u8>)> {
    use Dir::*;
    vec![
        (S, greeting("5.7.44-log", CAPS_57, "mysql_native_password")),
        (
            C,
            handshake_response(
                CLIENT_CAPS & !CLIENT_DEPRECATE_EOF,
                "app",
                &[0x5a; 20],
                Some("shop"),
                "mysql_native_password",
            ),
        ),
        (S, ok(2, 0, 0, 0, 2)),
        (C, query("SELECT id, name FROM users")),
        (
            S,
            concat(&[
                packet(1, &[2]),
                column(2, "users", "id", 3),
                column(3, "users", "name", 253),
                eof(4, 0x22),
                text_row(5, &[Some("1"), Some("alice")]),
                text_row(6, &[Some("2"), None]),
            ]),
        ),
        (
            S,
            concat(&[text_row(7, &[Some("3"), Some("carol")]), eof(8, 0x22)]),
        ),
        (C, query("INSERT INTO users (name) VALUES ('dave')")),
        (S, ok(1, 0, 1, 7, 2)),
        (C, query("INSERT INTO users (id) VALUES (1)")),
        (
            S,
            err(1, 1062, "23000", "Duplicate entry '1' for key 'PRIMARY'"),
        ),
        (C, command(COM_QUIT, b"")),
    ]
}

#[test]
fn native_password_session_with_classic_result_set() {
    let (exchanges, session) = run(&MysqlConfig::default(), &native_session());
    assert_eq!(session.server_version(), "5.7.44-log");
    assert_eq!(
        summary(&exchanges),
        vec![
            (
                "COM_CONNECT",
                "user=app db=shop plugin=mysql_native_password auth=<redacted>".to_string(),
                MysqlStatus::Ok,
                String::new(),
                1
            ),
            (
                "COM_QUERY",
                "SELECT id, name FROM users".into(),
                MysqlStatus::ResultSet,
                "columns=2 rows=3".into(),
                2
            ),
            (
                "COM_QUERY",
                "INSERT INTO users (name) VALUES ('dave')".into(),
                MysqlStatus::Ok,
                "affected_rows=1 last_insert_id=7".into(),
                1
            ),
            (
                "COM_QUERY",
                "INSERT INTO users (id) VALUES (1)".into(),
                MysqlStatus::Err,
                "1062: Duplicate entry '1' for key 'PRIMARY'".into(),
                1
            ),
            (
                "COM_QUIT",
                String::new(),
                MysqlStatus::None,
                String::new(),
                0
            ),
        ]
    );
    assert_eq!(exchanges[0].req_cmd, COM_CONNECT);
    assert_eq!(exchanges[1].rows, Some(3));
    assert_eq!(exchanges[2].affected_rows, Some(1));
    assert_eq!(exchanges[3].error_code, Some(1062));
    assert_eq!(exchanges[4].req_cmd, COM_QUIT);
    assert_eq!(session.unanswered(), 0);
}

/// caching_sha2_password: the client starts with mysql_native_password, the
/// server switches plugins; first a fast-auth success, then (second
/// connection) full authentication with the password in clear text (as over
/// TLS or a Unix socket).
fn sha2_session(full_auth: bool) -> Vec<(Dir, Vec<u8>)> {
    use Dir::*;
    let mut switch = vec![0xfe];
    switch.extend_from_slice(b"caching_sha2_password\0");
    switch.extend_from_slice(b"0123456789abcdefghij\0");
    let mut steps = vec![
        (S, greeting("8.0.36", CAPS_80, "caching_sha2_password")),
        (
            C,
            handshake_response(
                CLIENT_CAPS | CLIENT_DEPRECATE_EOF,
                "svc",
                &[0x11; 20],
                None,
                "mysql_native_password",
            ),
        ),
        (S, packet(2, &switch)),
        (C, packet(3, &[0x22; 32])),
    ];
    if full_auth {
        let mut password = PASSWORD.to_vec();
        password.push(0);
        steps.extend([
            (S, packet(4, &[1, 4])),
            (C, packet(5, &password)),
            (S, ok(6, 0, 0, 0, 2)),
        ]);
    } else {
        steps.extend([(S, packet(4, &[1, 3])), (S, ok(5, 0, 0, 0, 2))]);
    }
    steps.extend([
        // Query attributes (CLIENT_QUERY_ATTRIBUTES): 0 parameters, 1 set.
        (C, command(COM_QUERY, b"\x00\x01SELECT @@version")),
        (
            S,
            concat(&[
                packet(1, &[1]),
                column(2, "", "@@version", 253),
                text_row(3, &[Some("8.0.36")]),
                ok(4, 0xfe, 0, 0, 2),
            ]),
        ),
        (C, command(COM_QUERY, b"\x00\x01SELECT * FROM empty")),
        (
            S,
            concat(&[
                packet(1, &[1]),
                column(2, "empty", "x", 3),
                ok(3, 0xfe, 0, 0, 0x22),
            ]),
        ),
        (C, command(0x0e, b"")),
        (S, ok(1, 0, 0, 0, 2)),
    ]);
    steps
}

#[test]
fn caching_sha2_with_auth_switch_fast_and_full() {
    for full in [false, true] {
        let steps = sha2_session(full);
        let (exchanges, _) = run(&MysqlConfig::default(), &steps);
        let got = summary(&exchanges);
        assert_eq!(
            got[0],
            (
                "COM_CONNECT",
                "user=svc plugin=caching_sha2_password auth=<redacted>".into(),
                MysqlStatus::Ok,
                String::new(),
                if full { 5 } else { 4 }
            )
        );
        assert_eq!(
            got[1..],
            [
                (
                    "COM_QUERY",
                    "SELECT @@version".into(),
                    MysqlStatus::ResultSet,
                    "columns=1 rows=1".into(),
                    1
                ),
                (
                    "COM_QUERY",
                    "SELECT * FROM empty".into(),
                    MysqlStatus::ResultSet,
                    "columns=1 rows=0".into(),
                    1
                ),
                (
                    "COM_PING",
                    String::new(),
                    MysqlStatus::Ok,
                    "affected_rows=0".into(),
                    1
                ),
            ]
        );
        assert_no_secret(&steps, &exchanges);
    }
}

/// Every string a session hands out, for the whole conversation fed in one
/// piece and byte by byte, is free of the password.
fn assert_no_secret(steps: &[(Dir, Vec<u8>)], exchanges: &[MysqlExchange]) {
    let text = format!("{exchanges:?}");
    assert!(!contains(text.as_bytes(), PASSWORD), "{text}");
    let bytewise: Vec<(Dir, Vec<u8>)> = steps
        .iter()
        .flat_map(|(d, b)| b.iter().map(move |&x| (*d, vec![x])))
        .collect();
    let (again, session) = run(&MysqlConfig::default(), &bytewise);
    let text = format!("{again:?} {session:?}");
    assert!(!contains(text.as_bytes(), PASSWORD), "{text}");
    assert_eq!(again.len(), exchanges.len());
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn clear_text_passwords_never_leave() {
    use Dir::*;
    let mut password = PASSWORD.to_vec();
    password.push(0);
    let steps = vec![
        (S, greeting("8.0.36", CAPS_80, "mysql_clear_password")),
        // mysql_clear_password: the auth response is the password itself.
        (
            C,
            handshake_response(
                CLIENT_CAPS,
                "root",
                &password,
                Some("mysql"),
                "mysql_clear_password",
            ),
        ),
        (S, ok(2, 0, 0, 0, 2)),
        // COM_CHANGE_USER with a password.
        (
            C,
            command(
                0x11,
                &[
                    b"bob\0".as_slice(),
                    &[PASSWORD.len() as u8],
                    PASSWORD,
                    b"shop\0",
                ]
                .concat(),
            ),
        ),
        (S, ok(1, 0, 0, 0, 2)),
        // Passwords written in SQL.
        (
            C,
            query("CREATE USER 'carol'@'%' IDENTIFIED BY 's3cr3t-P4ss'"),
        ),
        (S, ok(1, 0, 0, 0, 2)),
        (
            C,
            command(
                COM_STMT_PREPARE,
                b"SET PASSWORD FOR 'carol'@'%' = 's3cr3t-P4ss'",
            ),
        ),
        (
            S,
            err(
                1,
                1295,
                "HY000",
                "This command is not supported in the prepared statement protocol yet",
            ),
        ),
    ];
    let (exchanges, _) = run(&MysqlConfig::default(), &steps);
    assert_eq!(exchanges.len(), 4);
    assert_eq!(
        exchanges[2].req_body,
        "CREATE USER 'carol'@'%' IDENTIFIED BY '<redacted>'"
    );
    assert_eq!(
        exchanges[3].req_body,
        "SET PASSWORD FOR 'carol'@'%' = '<redacted>'"
    );
    assert_eq!(
        exchanges[0].req_body,
        "user=root db=mysql plugin=mysql_clear_password auth=<redacted>"
    );
    assert_eq!(exchanges[1].req_body, "user=bob db=shop auth=<redacted>");
    assert_no_secret(&steps, &exchanges);
}

/// COM_STMT_PREPARE / EXECUTE / CLOSE with binary parameters and a binary
/// result set, classic protocol (EOF after definitions) or deprecate-EOF.
fn prepared_session(deprecate_eof: bool) -> Vec<(Dir, Vec<u8>)> {
    use Dir::*;
    let server_caps = if deprecate_eof { CAPS_80 } else { CAPS_57 };
    let client_caps = if deprecate_eof {
        CLIENT_CAPS | CLIENT_DEPRECATE_EOF
    } else {
        CLIENT_CAPS & !CLIENT_DEPRECATE_EOF
    };
    let eof_or_none = |seq| if deprecate_eof { vec![] } else { eof(seq, 2) };
    let mut prepare_ok = vec![0x00];
    prepare_ok.extend_from_slice(&1u32.to_le_bytes()); // stmt id
    prepare_ok.extend_from_slice(&2u16.to_le_bytes()); // columns
    prepare_ok.extend_from_slice(&3u16.to_le_bytes()); // params
    prepare_ok.extend_from_slice(&[0, 0, 0]);
    let mut defs = vec![packet(1, &prepare_ok)];
    let mut seq = 2;
    for name in ["?", "?", "?"] {
        defs.push(column(seq, "", name, 253));
        seq += 1;
    }
    defs.push(eof_or_none(seq));
    seq += u8::from(!deprecate_eof);
    for name in ["id", "name"] {
        defs.push(column(seq, "t", name, 8));
        seq += 1;
    }
    defs.push(eof_or_none(seq));

    // EXECUTE 1: 42 (LONGLONG), 'it''s' (VAR_STRING), 2024-05-06 07:08:09 (DATETIME).
    let mut exec1 = 1u32.to_le_bytes().to_vec();
    exec1.extend_from_slice(&[0, 1, 0, 0, 0]); // flags, iterations
    exec1.push(0); // null bitmap
    exec1.push(1); // new params bound
    exec1.extend_from_slice(&[8, 0, 0xfd, 0, 0x0c, 0]);
    exec1.extend_from_slice(&42u64.to_le_bytes());
    exec1.extend(lenenc_str(b"it's"));
    exec1.extend_from_slice(&[7, 0xe8, 0x07, 5, 6, 7, 8, 9]);
    // EXECUTE 2: types remembered; NULL, -1.5 would need DOUBLE: keep the
    // bound types: NULL, 'x', 2024-05-06 00:00:00 sent as 4-byte date.
    let mut exec2 = 1u32.to_le_bytes().to_vec();
    exec2.extend_from_slice(&[0, 1, 0, 0, 0]);
    exec2.push(0b001); // param 0 is NULL
    exec2.push(0); // types not re-sent
    exec2.extend(lenenc_str(b"x"));
    exec2.extend_from_slice(&[4, 0xe8, 0x07, 5, 6]);

    let binary_row = |seq: u8, id: u64, name: &[u8]| {
        let mut p = vec![0x00, 0x00];
        p.extend_from_slice(&id.to_le_bytes());
        p.extend(lenenc_str(name));
        packet(seq, &p)
    };
    let terminator = |seq| {
        if deprecate_eof {
            ok(seq, 0xfe, 0, 0, 2)
        } else {
            eof(seq, 2)
        }
    };
    let mut result = vec![
        packet(1, &[2]),
        column(2, "t", "id", 8),
        column(3, "t", "name", 253),
    ];
    let mut seq = 4;
    if !deprecate_eof {
        result.push(eof(4, 2));
        seq = 5;
    }
    result.push(binary_row(seq, 42, b"alice"));
    result.push(terminator(seq + 1));

    vec![
        (
            S,
            greeting(
                "8.0.36",
                server_caps & !CLIENT_QUERY_ATTRIBUTES,
                "mysql_native_password",
            ),
        ),
        (
            C,
            handshake_response(
                client_caps & !CLIENT_QUERY_ATTRIBUTES,
                "app",
                &[1; 20],
                Some("shop"),
                "mysql_native_password",
            ),
        ),
        (S, ok(2, 0, 0, 0, 2)),
        (
            C,
            command(
                COM_STMT_PREPARE,
                b"SELECT id, name FROM t WHERE id = ? AND name = ? AND ts < ?",
            ),
        ),
        (S, concat(&defs)),
        (C, command(COM_STMT_EXECUTE, &exec1)),
        (S, concat(&result)),
        (C, command(COM_STMT_EXECUTE, &exec2)),
        (
            S,
            concat(&[
                packet(1, &[2]),
                column(2, "t", "id", 8),
                column(3, "t", "name", 253),
                if deprecate_eof {
                    ok(4, 0xfe, 0, 0, 2)
                } else {
                    concat(&[eof(4, 2), eof(5, 2)])
                },
            ]),
        ),
        (C, command(COM_STMT_CLOSE, &1u32.to_le_bytes())),
        (C, command(COM_STMT_EXECUTE, &exec2)),
        (
            S,
            err(
                1,
                1243,
                "HY000",
                "Unknown prepared statement handler (1) given to mysqld_stmt_execute",
            ),
        ),
    ]
}

#[test]
fn prepared_statements_with_parameters() {
    let sql = "SELECT id, name FROM t WHERE id = ? AND name = ? AND ts < ?";
    for deprecate_eof in [false, true] {
        let (exchanges, session) = run(&MysqlConfig::default(), &prepared_session(deprecate_eof));
        let got = summary(&exchanges);
        assert_eq!(
            got[1..],
            [
                (
                    "COM_STMT_PREPARE",
                    sql.to_string(),
                    MysqlStatus::Ok,
                    "stmt_id=1 params=3 columns=2".into(),
                    1
                ),
                (
                    "COM_STMT_EXECUTE",
                    format!("{sql} -- params: [42, 'it\\'s', '2024-05-06 07:08:09']"),
                    MysqlStatus::ResultSet,
                    "columns=2 rows=1".into(),
                    1
                ),
                (
                    "COM_STMT_EXECUTE",
                    format!("{sql} -- params: [NULL, 'x', '2024-05-06 00:00:00']"),
                    MysqlStatus::ResultSet,
                    "columns=2 rows=0".into(),
                    1
                ),
                (
                    "COM_STMT_CLOSE",
                    sql.to_string(),
                    MysqlStatus::None,
                    String::new(),
                    0
                ),
                (
                    "COM_STMT_EXECUTE",
                    "stmt_id=1 (not prepared in capture)".into(),
                    MysqlStatus::Err,
                    "1243: Unknown prepared statement handler (1) given to mysqld_stmt_execute"
                        .into(),
                    1
                ),
            ],
            "deprecate_eof={deprecate_eof}"
        );
        assert_eq!(exchanges[1].req_cmd, COM_STMT_PREPARE);
        assert_eq!(exchanges[4].req_cmd, COM_STMT_CLOSE);
        assert_eq!(exchanges[2].req_cmd, COM_STMT_EXECUTE);
        assert_eq!(session.statements(), 0);
        assert_eq!(session.unanswered(), 0);
    }
}

#[test]
fn binary_parameter_types() {
    use Dir::*;
    let mut prepare_ok = vec![0x00];
    prepare_ok.extend_from_slice(&9u32.to_le_bytes());
    prepare_ok.extend_from_slice(&0u16.to_le_bytes());
    prepare_ok.extend_from_slice(&8u16.to_le_bytes());
    prepare_ok.extend_from_slice(&[0, 0, 0]);
    let mut exec = 9u32.to_le_bytes().to_vec();
    exec.extend_from_slice(&[0, 1, 0, 0, 0]);
    exec.push(0);
    exec.push(1);
    // TINY unsigned, SHORT signed, LONG, DOUBLE, FLOAT, TIME, BLOB, NEWDECIMAL
    exec.extend_from_slice(&[1, 0x80, 2, 0, 3, 0, 5, 0, 4, 0, 0x0b, 0, 0xfc, 0, 0xf6, 0]);
    exec.push(200);
    exec.extend_from_slice(&(-2i16).to_le_bytes());
    exec.extend_from_slice(&(-70000i32).to_le_bytes());
    exec.extend_from_slice(&2.5f64.to_le_bytes());
    exec.extend_from_slice(&0.25f32.to_le_bytes());
    exec.extend_from_slice(&[12, 1, 1, 0, 0, 0, 2, 3, 4, 0x40, 0xe2, 1, 0]);
    exec.extend(lenenc_str(b"\x00\xff"));
    exec.extend(lenenc_str(b"12.50"));
    // Every definition packet of the prepare response, then EXECUTE.
    let mut defs = vec![packet(1, &prepare_ok)];
    for i in 0..8 {
        defs.push(column(2 + i, "", "?", 253));
    }
    let steps = vec![
        (
            C,
            command(COM_STMT_PREPARE, b"INSERT INTO t VALUES (?,?,?,?,?,?,?,?)"),
        ),
        (S, concat(&defs)),
        (C, command(COM_STMT_EXECUTE, &exec)),
        (S, ok(1, 0, 1, 0, 2)),
    ];
    let (exchanges, _) = run(&MysqlConfig::default(), &steps);
    assert_eq!(exchanges.len(), 2, "{exchanges:#?}");
    assert_eq!(
        exchanges[1].req_body,
        "INSERT INTO t VALUES (?,?,?,?,?,?,?,?) -- params: [200, -2, -70000, 2.5, 0.25, '-26:03:04.123456', 0x00ff, 12.50]"
    );
    assert_eq!(exchanges[1].resp_body, "affected_rows=1");
}

#[test]
fn multi_results_local_infile_statistics_and_field_list() {
    use Dir::*;
    const MORE: u16 = 0x0008;
    let steps = vec![
        (C, query("CALL p()")),
        (
            S,
            concat(&[
                packet(1, &[1]),
                column(2, "", "a", 3),
                eof(3, 2 | MORE),
                text_row(4, &[Some("1")]),
                eof(5, 2 | MORE),
                packet(6, &[1]),
                column(7, "", "b", 3),
                eof(8, 2 | MORE),
                text_row(9, &[Some("2")]),
                text_row(10, &[Some("3")]),
                eof(11, 2 | MORE),
                ok(12, 0, 0, 0, 2),
            ]),
        ),
        (C, query("LOAD DATA LOCAL INFILE 'x.csv' INTO TABLE t")),
        (S, packet(1, b"\xfbx.csv")),
        (C, concat(&[packet(2, b"1,a\n2,b\n"), packet(3, b"")])),
        (S, ok(4, 0, 2, 0, 2)),
        (C, command(0x09, b"")),
        (S, packet(1, b"Uptime: 5  Threads: 1")),
        (C, command(0x04, b"users\0")),
        (
            S,
            concat(&[
                column(1, "users", "id", 3),
                column(2, "users", "name", 253),
                eof(3, 2),
            ]),
        ),
        (C, command(0x1b, &[1, 0])),
        (S, eof(1, 2)),
        (C, query("UPDATE t SET a = 1")),
        (S, {
            let mut p = vec![0, 3, 0, 2, 0, 0, 0];
            p.extend_from_slice(b"Rows matched: 3  Changed: 3  Warnings: 0");
            packet(1, &p)
        }),
    ];
    let (exchanges, session) = run(&MysqlConfig::default(), &steps);
    let got: Vec<_> = summary(&exchanges)
        .into_iter()
        .map(|(c, _, s, b, _)| (c, s, b))
        .collect();
    assert_eq!(
        got,
        vec![
            (
                "COM_QUERY",
                MysqlStatus::ResultSet,
                "columns=1 rows=3 results=2".into()
            ),
            ("COM_QUERY", MysqlStatus::Ok, "affected_rows=2".into()),
            (
                "COM_STATISTICS",
                MysqlStatus::Ok,
                "Uptime: 5  Threads: 1".into()
            ),
            ("COM_FIELD_LIST", MysqlStatus::Ok, "columns=2".into()),
            ("COM_SET_OPTION", MysqlStatus::Ok, String::new()),
            (
                "COM_QUERY",
                MysqlStatus::Ok,
                "affected_rows=3 info=Rows matched: 3  Changed: 3  Warnings: 0".into()
            ),
        ]
    );
    assert_eq!(session.unanswered(), 0);
}

#[test]
fn mid_connection_start_ssl_and_unanswered() {
    use Dir::*;
    // The capture starts after the handshake: commands are followed anyway
    // (deprecate-EOF unknown: inferred from the packets).
    let steps = vec![
        (S, text_row(9, &[Some("tail of an old result")])),
        (C, query("SELECT 1")),
        (
            S,
            concat(&[
                packet(1, &[1]),
                column(2, "", "1", 8),
                eof(3, 2),
                text_row(4, &[Some("1")]),
                eof(5, 2),
            ]),
        ),
        (C, query("SELECT 2")),
        (C, query("SELECT 3")),
        (
            S,
            concat(&[
                packet(1, &[1]),
                column(2, "", "3", 8),
                text_row(3, &[Some("3")]),
                ok(4, 0xfe, 0, 0, 2),
            ]),
        ),
    ];
    let (exchanges, session) = run(&MysqlConfig::default(), &steps);
    let got: Vec<_> = summary(&exchanges)
        .into_iter()
        .map(|(_, q, _, b, _)| (q, b))
        .collect();
    assert_eq!(
        got,
        vec![
            ("SELECT 1".into(), "columns=1 rows=1".into()),
            ("SELECT 3".into(), "columns=1 rows=1".into())
        ]
    );
    assert_eq!(session.unanswered(), 1);

    // An SSL request: the rest is TLS.
    let mut ssl = (CLIENT_CAPS | CLIENT_SSL).to_le_bytes().to_vec();
    ssl.extend_from_slice(&[0, 0, 0, 1, 255]);
    ssl.extend_from_slice(&[0; 23]);
    let steps = vec![
        (
            S,
            greeting("8.0.36", CAPS_80 | CLIENT_SSL, "caching_sha2_password"),
        ),
        (C, packet(1, &ssl)),
        (C, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03".to_vec()),
        (C, query("SELECT 1")),
    ];
    let (exchanges, session) = run(&MysqlConfig::default(), &steps);
    assert!(exchanges.is_empty());
    assert!(session.is_opaque());
}

/// The plaintext stream of a TLS connection (what the OpenSSL probes see)
/// starts with the handshake response at sequence 2, after the SSLRequest
/// that went on the wire: it is detected and gives the COM_CONNECT row.
#[test]
fn tls_plaintext_stream_starts_at_the_handshake_response() {
    use Dir::*;
    let mut response = handshake_response(
        CLIENT_CAPS | CLIENT_SSL,
        "app",
        &[0x5a; 20],
        Some("shop"),
        "mysql_native_password",
    );
    response[3] = 2; // sequence 2
    assert_eq!(
        sonde_protocols::detect(&response).map(|d| (d.protocol, d.kind)),
        Some((sonde_protocols::Protocol::Mysql, Request))
    );
    let steps = vec![
        (C, response),
        (S, ok(3, 0, 0, 0, 2)),
        (C, query("SELECT 1")),
        (
            S,
            concat(&[
                packet(1, &[1]),
                column(2, "", "1", 8),
                eof(3, 2),
                text_row(4, &[Some("1")]),
                eof(5, 2),
            ]),
        ),
    ];
    let (exchanges, session) = run(&MysqlConfig::default(), &steps);
    let got: Vec<_> = summary(&exchanges)
        .into_iter()
        .map(|(cmd, body, status, _, _)| (cmd, body, status))
        .collect();
    assert_eq!(
        got,
        vec![
            (
                "COM_CONNECT",
                "user=app db=shop plugin=mysql_native_password auth=<redacted>".to_string(),
                MysqlStatus::Ok
            ),
            ("COM_QUERY", "SELECT 1".to_string(), MysqlStatus::ResultSet),
        ]
    );
    assert!(!session.is_opaque());

    // MariaDB clients send extended capabilities in the last 4 filler bytes.
    let mut mariadb = handshake_response(CLIENT_CAPS | CLIENT_SSL, "app", &[0x5a; 20], None, "x");
    mariadb[3] = 2;
    mariadb[4 + 28..4 + 32].copy_from_slice(&[0x1c, 0, 0, 0]);
    assert_eq!(
        sonde_protocols::detect(&mariadb).map(|d| (d.protocol, d.kind)),
        Some((sonde_protocols::Protocol::Mysql, Request))
    );
    let (exchanges, _) = run(
        &MysqlConfig::default(),
        &[(C, mariadb), (S, ok(3, 0, 0, 0, 2))],
    );
    assert_eq!(exchanges.len(), 1);
    assert_eq!(exchanges[0].req_cmd, COM_CONNECT);
    assert_eq!(exchanges[0].resp_status, MysqlStatus::Ok);
}

#[test]
fn framing_is_chunking_independent() {
    let config = MysqlConfig::default();
    for steps in [
        native_session(),
        sha2_session(true),
        prepared_session(false),
        prepared_session(true),
    ] {
        for dir in [Dir::C, Dir::S] {
            let stream: Vec<u8> = steps
                .iter()
                .filter(|(d, _)| *d == dir)
                .flat_map(|(_, b)| b.clone())
                .collect();
            let packets = assert_chunking_equivalent(&stream, || {
                let mut d = MysqlPacketDecoder::new(config.clone());
                move |b: &[u8]| d.decode(b)
            });
            assert!(packets.iter().all(Result::is_ok));
            let total: u64 = packets.iter().map(|p| 4 + p.as_ref().unwrap().len).sum();
            assert_eq!(total, stream.len() as u64);
        }
        // And the session gives the same exchanges for any split of writes.
        let (whole, _) = run(&config, &steps);
        let mut rng = Lcg(3);
        for _ in 0..20 {
            let split: Vec<(Dir, Vec<u8>)> = steps
                .iter()
                .flat_map(|(d, b)| {
                    let mut parts = Vec::new();
                    let mut rest = &b[..];
                    while !rest.is_empty() {
                        let n = (1 + rng.below(9)).min(rest.len());
                        parts.push((*d, rest[..n].to_vec()));
                        rest = &rest[n..];
                    }
                    parts
                })
                .collect();
            let (got, _) = run(&config, &split);
            let strip = |v: &[MysqlExchange]| {
                summary(v)
                    .into_iter()
                    .map(|(c, q, s, b, _)| (c, q, s, b))
                    .collect::<Vec<_>>()
            };
            assert_eq!(strip(&got), strip(&whole));
        }
    }
}

#[test]
fn large_payloads_join_and_keep_a_prefix() {
    let config = MysqlConfig {
        max_kept_bytes: 64,
        ..MysqlConfig::default()
    };
    // A 16 MiB + 10 byte COM_QUERY: a full physical packet, then 10 more.
    let mut first = vec![0xff, 0xff, 0xff, 0];
    first.push(COM_QUERY);
    first.extend_from_slice(b"INSERT INTO blobs VALUES ('");
    first.resize(4 + 0xff_ffff, b'x');
    let mut stream = first;
    stream.extend_from_slice(&[10, 0, 0, 1]);
    stream.extend_from_slice(b"xxxxxxx')\n");
    stream.extend(query("SELECT 1"));
    for sizes in [vec![usize::MAX], vec![4096], vec![3, 1 << 20, 7]] {
        let mut d = MysqlPacketDecoder::new(config.clone());
        let got = feed_chunks(&stream, sizes.into_iter().cycle().take(20_000), |b| {
            d.decode(b)
        });
        let got: Vec<MysqlPacket> = got.into_iter().map(Result::unwrap).collect();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].len, 0xff_ffff + 10);
        assert_eq!(got[0].seq, 0);
        assert_eq!(got[0].payload.len(), 64);
        assert!(got[0].payload.starts_with(b"\x03INSERT INTO blobs"));
        assert!(!got[0].is_whole());
        assert_eq!(got[1], MysqlPacket::new(0, b"\x03SELECT 1"));
    }
    let mut session = MysqlPairing::new(MysqlConfig {
        max_body_len: 30,
        ..config.clone()
    });
    let mut d = MysqlPacketDecoder::new(config.clone());
    let packets = feed_chunks(&stream, [], |b| d.decode(b));
    assert_eq!(
        session.on_client_packet(packets[0].as_ref().unwrap(), 1),
        None
    );
    let ex = session
        .on_server_packet(&MysqlPacket::new(1, &[0, 1, 0, 2, 0, 0, 0]), 2)
        .unwrap();
    assert_eq!(ex.req_body, "INSERT INTO blobs VALUES ('...");
    // Too large for the cap.
    let mut d = MysqlPacketDecoder::new(MysqlConfig {
        max_packet_len: 100,
        ..config
    });
    assert!(d.decode(&stream).is_err());
    assert!(d.is_idle());
}

#[test]
fn gaps_inside_payloads() {
    let config = MysqlConfig {
        max_kept_bytes: 8,
        ..MysqlConfig::default()
    };
    let mut d = MysqlPacketDecoder::new(config.clone());
    let pkt = query("SELECT * FROM big_table");
    assert_eq!(
        d.decode(&pkt[..10]),
        Ok(Decoded::Progress {
            consumed: 10,
            message: None
        })
    );
    assert_eq!(d.skip_gap(5), GapOutcome::Absorbed);
    // The rest of the payload after the gap.
    let rest = &pkt[15..];
    let got = d.decode(rest).unwrap();
    let Decoded::Progress {
        consumed,
        message: Some(p),
    } = got
    else {
        panic!("{got:?}")
    };
    assert_eq!(consumed, rest.len());
    assert_eq!(p.payload, b"\x03SELEC"); // kept before the gap only
    assert_eq!(p.len, pkt.len() as u64 - 4);
    assert!(p.incomplete);
    // A gap ending the payload completes the packet.
    assert!(matches!(d.decode(&pkt[..6]), Ok(Decoded::Progress { .. })));
    assert_eq!(d.skip_gap(pkt.len() as u64 - 6), GapOutcome::Absorbed);
    assert!(matches!(
        d.decode(b""),
        Ok(Decoded::Progress {
            consumed: 0,
            message: Some(_)
        })
    ));
    // Beyond the payload: lost.
    assert!(matches!(d.decode(&pkt[..6]), Ok(Decoded::Progress { .. })));
    assert_eq!(d.skip_gap(1000), GapOutcome::MessageLost);
    assert!(d.is_idle());
    assert_eq!(d.skip_gap(1), GapOutcome::MessageLost);
    // Resync.
    let mut junk = b"xx\x01\x00".to_vec();
    junk.extend(query("SELECT 1"));
    assert_eq!(find_message_start(&junk, Request), Some(4));
    let mut junk = b"\x00\x00".to_vec();
    junk.extend(err(1, 1045, "28000", "Access denied"));
    assert_eq!(find_message_start(&junk, Response), Some(2));
    // The session drops the command in flight at a gap.
    let mut session = MysqlPairing::new(config);
    session.on_client_packet(&MysqlPacket::new(0, b"\x03SELECT 1"), 1);
    session.on_gap();
    assert_eq!(session.unanswered(), 1);
    assert_eq!(
        session.on_server_packet(&MysqlPacket::new(1, &[0, 0, 0, 2, 0, 0, 0]), 2),
        None
    );
}

#[test]
fn statement_map_is_bounded() {
    let config = MysqlConfig {
        max_statements: 4,
        ..MysqlConfig::default()
    };
    let mut session = MysqlPairing::new(config);
    for id in 0..10u32 {
        session.on_client_packet(
            &MysqlPacket::new(0, format!("\x16SELECT {id}").as_bytes()),
            1,
        );
        let mut ok = vec![0];
        ok.extend_from_slice(&id.to_le_bytes());
        ok.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0]);
        assert!(
            session
                .on_server_packet(&MysqlPacket::new(1, &ok), 2)
                .is_some()
        );
    }
    assert_eq!(session.statements(), 4);
}

#[test]
fn no_panic_on_mutated_and_random_input() {
    let config = MysqlConfig {
        max_kept_bytes: 48,
        max_body_len: 64,
        max_statements: 4,
        ..MysqlConfig::default()
    };
    let conversations = [
        native_session(),
        sha2_session(true),
        prepared_session(false),
        prepared_session(true),
    ];
    let tokens: &[&[u8]] = &[
        b"\x00",
        b"\x01",
        b"\xfe",
        b"\xff",
        b"\xfb",
        b"\xff\xff\xff",
        b"\x03def",
        b"#",
    ];
    let mut rng = Lcg(11);
    let mut exchanges = 0;
    for _ in 0..3000 {
        let conv = &conversations[rng.below(conversations.len())];
        let steps: Vec<(Dir, Vec<u8>)> = conv
            .iter()
            .map(|(d, b)| {
                (
                    *d,
                    if rng.below(3) == 0 {
                        mutate(&mut rng, b, tokens)
                    } else {
                        b.clone()
                    },
                )
            })
            .collect();
        let mut session = MysqlPairing::new(config.clone());
        let mut decoders = [
            MysqlPacketDecoder::new(config.clone()),
            MysqlPacketDecoder::new(config.clone()),
        ];
        let mut bufs = [Vec::new(), Vec::new()];
        for (ts, (dir, bytes)) in steps.iter().enumerate() {
            let i = usize::from(*dir == Dir::S);
            bufs[i].extend_from_slice(bytes);
            if rng.below(10) == 0
                && decoders[i].skip_gap(rng.below(30) as u64) == GapOutcome::MessageLost
            {
                bufs[i].clear();
                session.on_gap();
            }
            loop {
                match decoders[i].decode(&bufs[i]) {
                    Ok(Decoded::NeedMore) => break,
                    Ok(Decoded::Progress { consumed, message }) => {
                        assert!(consumed <= bufs[i].len());
                        bufs[i].drain(..consumed);
                        if let Some(pkt) = message {
                            assert!(pkt.payload.len() <= 48);
                            let ex = if i == 0 {
                                session.on_client_packet(&pkt, ts as u64)
                            } else {
                                session.on_server_packet(&pkt, ts as u64)
                            };
                            if let Some(ex) = ex {
                                assert!(ex.req_body.len() <= 64 + 3, "{}", ex.req_body);
                                assert!(ex.resp_body.len() <= 64 + 3);
                                exchanges += 1;
                            }
                        }
                    }
                    Err(_) => {
                        assert!(decoders[i].is_idle());
                        bufs[i].clear();
                        break;
                    }
                }
            }
        }
    }
    assert!(exchanges > 1500, "only {exchanges} exchanges");
}
