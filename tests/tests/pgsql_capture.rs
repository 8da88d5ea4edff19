//! End to end: PostgreSQL captured by the real agent against a real server
//! (tests/src/postgres.rs) and real clients (psql, pgbench, psycopg 3,
//! node-postgres, psql over TLS): exact pgsql_events rows on both sides.
//!
//! Run as root, one test at a time: `cargo test -p sonde-e2e -- --test-threads=1`

use std::time::Duration;

use serde_json::Value;
use sonde_e2e::postgres::{self, PASSWORD, Postgres};
use sonde_e2e::{Agent, ebpf_available, fixture, free_port};

const WAIT: Duration = Duration::from_secs(30);

type Row = (String, String, String, String, Option<String>, Option<i64>);

/// (trace_role, req_cmd, req, resp, sqlstate, rows) on `port`, by side then time.
fn rows_on(agent: &Agent, port: u16, filter: &str, expected: usize) -> Vec<Row> {
    agent
        .wait_rows(
            &format!(
                "SELECT trace_role, req_cmd, req, resp, sqlstate, rows FROM pgsql_events \
                 WHERE (local_port = {port} OR remote_port = {port}) {filter} \
                 ORDER BY trace_role, time_"
            ),
            expected,
            WAIT,
        )
        .iter()
        .map(|r| {
            (
                text(&r[0]),
                text(&r[1]),
                text(&r[2]),
                text(&r[3]),
                r[4].as_str().map(str::to_string),
                r[5].as_i64(),
            )
        })
        .collect()
}

fn text(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

fn row(
    role: &str,
    cmd: &str,
    req: &str,
    resp: &str,
    sqlstate: Option<&str>,
    rows: Option<i64>,
) -> Row {
    (
        role.into(),
        cmd.into(),
        req.into(),
        resp.into(),
        sqlstate.map(str::to_string),
        rows,
    )
}

fn ok(out: std::process::Output) -> String {
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Both sides of each psql session give the same rows: the refused
/// SSLRequest, the SCRAM login, each statement of the query string, an
/// error with its SQLSTATE, Terminate. The password is never stored.
#[test]
fn psql_statements_and_errors_on_both_sides() {
    if !ebpf_available() {
        return;
    }
    let agent = Agent::start("pgsql-psql");
    let pg = postgres::start("cap-psql");
    let port = pg.port;
    ok(Postgres::psql(
        port,
        "prefer",
        &[
            "-c",
            "CREATE TABLE items (id int PRIMARY KEY, name text); \
             INSERT INTO items VALUES (1, 'one'), (2, 'two'); SELECT * FROM items ORDER BY id",
        ],
    ));
    let missing = Postgres::psql(port, "disable", &["-c", "SELECT * FROM missing_table"]);
    assert!(!missing.status.success());

    let login = |role: &str| {
        row(
            role,
            "Startup",
            "user=sonde database=shop application_name=psql",
            "OK (SCRAM-SHA-256)",
            None,
            None,
        )
    };
    let side = |role: &str| {
        vec![
            row(role, "SSLRequest", "", "refused", None, None),
            login(role),
            row(
                role,
                "Query",
                "CREATE TABLE items (id int PRIMARY KEY, name text)",
                "CREATE TABLE",
                None,
                None,
            ),
            row(
                role,
                "Query",
                "INSERT INTO items VALUES (1, 'one'), (2, 'two')",
                "INSERT 0 2",
                None,
                Some(2),
            ),
            row(
                role,
                "Query",
                "SELECT * FROM items ORDER BY id",
                "SELECT 2",
                None,
                Some(2),
            ),
            row(role, "Terminate", "", "", None, None),
            login(role),
            row(
                role,
                "Query",
                "SELECT * FROM missing_table",
                "ERROR: relation \"missing_table\" does not exist",
                Some("42P01"),
                None,
            ),
            row(role, "Terminate", "", "", None, None),
        ]
    };
    let got = rows_on(&agent, port, "", 18);
    assert_eq!(got, [side("client"), side("server")].concat());

    let who = agent.query(&format!(
        "SELECT DISTINCT trace_role, comm, db_user, db_name FROM pgsql_events \
         WHERE (local_port = {port} OR remote_port = {port}) AND req_cmd = 'Query' \
         ORDER BY trace_role"
    ));
    assert_eq!(
        who,
        [
            ["client", "psql", "sonde", "shop"],
            ["server", "postgres", "sonde", "shop"]
        ]
        .map(|r| r.map(Value::from).to_vec())
    );
    let leaked = agent.query(&format!(
        "SELECT count(*) FROM pgsql_events WHERE req LIKE '%{PASSWORD}%' OR resp LIKE '%{PASSWORD}%'"
    ));
    assert_eq!(leaked, [[Value::from(0)]]);
    let protocols = agent.wait_rows(
        &format!(
            // The harness's readiness probe is a connection without bytes.
            "SELECT DISTINCT protocol FROM conn_stats \
             WHERE (local_port = {port} OR remote_port = {port}) AND bytes_sent + bytes_recv > 0"
        ),
        1,
        WAIT,
    );
    assert_eq!(protocols, [[Value::from("pgsql")]]);
}

/// pgbench's TPC-B transaction is 7 statements; -t 3 gives 21 per side in
/// each protocol mode (plus pgbench's own catalog queries on another
/// connection), with the bound parameters rendered in extended modes.
#[test]
fn pgbench_in_simple_extended_and_prepared_modes() {
    if !ebpf_available() {
        return;
    }
    let agent = Agent::start("pgsql-pgbench");
    let pg = postgres::start("cap-pgbench");
    pg.pgbench_init();
    let port = pg.port;
    for (mode, cmd) in [
        ("simple", "Query"),
        ("extended", "Execute"),
        ("prepared", "Execute"),
    ] {
        ok(pg.pgbench(port, &["-n", "-M", mode, "-c", "1", "-t", "3"]));
        let counts = agent.wait_grouped_counts(
            &format!(
                "SELECT trace_role, count(*) FROM pgsql_events \
                 WHERE (local_port = {port} OR remote_port = {port}) AND req_cmd = '{cmd}' \
                 AND req LIKE 'UPDATE pgbench_accounts SET abalance = abalance + %' \
                 GROUP BY trace_role ORDER BY trace_role"
            ),
            // 3 per side per mode so far.
            if mode == "prepared" { 12 } else { 6 },
            WAIT,
        );
        let per_side = match mode {
            "simple" => 3,
            // extended and prepared both count as Execute.
            "extended" => 3,
            _ => 6,
        };
        assert_eq!(
            counts,
            [
                ("client".to_string(), per_side),
                ("server".to_string(), per_side)
            ],
            "{mode}"
        );
    }
    // Extended modes show the bound values; every UPDATE answered 1 row.
    let params = agent.query(&format!(
        "SELECT count(*) FROM pgsql_events WHERE local_port = {port} AND req_cmd = 'Execute' \
         AND req LIKE 'UPDATE pgbench_accounts%-- params: [%, %]' AND resp = 'UPDATE 1' AND rows = 1"
    ));
    assert_eq!(params, [[Value::from(6)]]);
    let errors = agent.query(&format!(
        "SELECT count(*) FROM pgsql_events WHERE (local_port = {port} OR remote_port = {port}) \
         AND sqlstate IS NOT NULL"
    ));
    assert_eq!(errors, [[Value::from(0)]]);
}

/// Two drivers: psycopg 3 over libpq (bound parameters in text and binary,
/// a pipelined batch, an error) and node-postgres (its own protocol code).
#[test]
fn psycopg_and_node_postgres_drivers() {
    if !ebpf_available() {
        return;
    }
    let agent = Agent::start("pgsql-drivers");
    let pg = postgres::start("cap-drivers");
    let port = pg.port;
    let out = ok(Postgres::script("python3", &fixture("pg_psycopg.py"), port));
    assert!(out.contains("error 22012"), "{out}");
    let division = rows_on(&agent, port, "AND sqlstate = '22012'", 2);
    assert_eq!(
        division
            .iter()
            .map(|r| (r.0.as_str(), r.1.as_str(), r.2.as_str()))
            .collect::<Vec<_>>(),
        // Constant folding at Bind: the server's error answers the Bind.
        [
            ("client", "Bind", "SELECT 1 / $1 -- params: [0]"),
            ("server", "Bind", "SELECT 1 / $1 -- params: [0]")
        ]
    );
    let out = ok(Postgres::script("node", &fixture("pg_node.js"), port));
    assert!(out.contains("labels b a"), "{out}");
    let node = agent.wait_rows(
        &format!(
            "SELECT count(*) FROM pgsql_events WHERE local_port = {port} AND comm = 'postgres' \
             AND req_cmd = 'Startup' AND req LIKE 'user=sonde database=shop%'"
        ),
        1,
        WAIT,
    );
    // psycopg's login and node-postgres's, server side.
    assert_eq!(node, [[Value::from(2)]]);
}

/// psql with sslmode=require: the SSLRequest is accepted on the wire, then
/// libpq's and the server's plaintext come from the OpenSSL probes.
#[test]
fn psql_over_tls_is_captured_in_plaintext() {
    if !ebpf_available() {
        return;
    }
    let agent = Agent::start("pgsql-tls");
    let pg = postgres::start_with("cap-tls", free_port(), true, "scram-sha-256");
    let port = pg.port;
    ok(Postgres::psql(port, "require", &["-c", "SELECT 42"]));
    let rows = agent.wait_rows(
        &format!(
            "SELECT trace_role, req_cmd, req, resp, encrypted FROM pgsql_events \
             WHERE (local_port = {port} OR remote_port = {port}) AND req_cmd = 'Query' \
             ORDER BY trace_role"
        ),
        2,
        WAIT,
    );
    assert_eq!(
        rows,
        ["client", "server"].map(|role| vec![
            Value::from(role),
            Value::from("Query"),
            Value::from("SELECT 42"),
            Value::from("SELECT 1"),
            Value::from(true)
        ])
    );
}
