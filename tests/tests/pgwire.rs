//! The PostgreSQL wire protocol of the real agent: psql (simple protocol and
//! the catalog queries of `\d`) and a driver (psycopg 3, extended protocol
//! with parameters), the read-only gate, and the token as password beyond
//! loopback.
//!
//! Run as root, one test at a time: `cargo test -p sonde-e2e --test pgwire -- --test-threads=1`

use std::process::{Command, Output};
use std::time::Duration;

use serde_json::{Value, json};
use sonde_e2e::{Agent, curl, ebpf_available, fixture, free_port, scratch_dir};

const WAIT: Duration = Duration::from_secs(20);

/// Runs psql against 127.0.0.1:`port` (no password prompt, unaligned
/// tuples-only output).
fn psql(port: u16, password: Option<&str>, args: &[&str]) -> Output {
    let mut cmd = Command::new("psql");
    cmd.args([
        "-h",
        "127.0.0.1",
        "-p",
        &port.to_string(),
        "-U",
        "anyone",
        "-d",
        "sonde",
        "-w",
    ])
    .args(["-v", "ON_ERROR_STOP=1", "-X"])
    .args(args)
    .env_remove("PGPASSWORD");
    if let Some(password) = password {
        cmd.env("PGPASSWORD", password);
    }
    cmd.output().expect("run psql")
}

fn stdout(output: &Output) -> String {
    assert!(
        output.status.success(),
        "psql failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// `count` requests to a Python server on a fresh port, at `path`; waits
/// until the agent has the server side of each.
fn traffic(agent: &Agent, path: &str, count: usize) -> sonde_e2e::Server {
    let port = free_port();
    let server = sonde_e2e::servers::python_http_server("pgwire", port, "hi");
    for _ in 0..count {
        curl(&["-o", "/dev/null", &format!("http://127.0.0.1:{port}{path}")]);
    }
    agent.wait_rows(
        &format!("SELECT 1 FROM http_events WHERE req_path = '{path}' AND trace_role = 'server'"),
        count,
        WAIT,
    );
    server
}

#[test]
fn psql_selects_describes_and_is_refused_writes() {
    if !ebpf_available() {
        return;
    }
    let agent = Agent::start("pgwire-psql");
    let pg = agent.pg_port.expect("the PostgreSQL endpoint is on");
    let path = format!("/pgwire-{}", std::process::id());
    let _server = traffic(&agent, &path, 3);

    // SELECT, simple protocol.
    let rows = stdout(&psql(
        pg,
        None,
        &[
            "-At",
            "-c",
            &format!(
                "SELECT req_method, req_path, resp_status FROM http_events \
                 WHERE req_path = '{path}' AND trace_role = 'server' ORDER BY time_"
            ),
        ],
    ));
    let expected = format!("GET|{path}|404\n").repeat(3);
    assert_eq!(rows, expected);

    // \d http_events: psql's own catalog queries, answered from pg_catalog.
    let described = stdout(&psql(pg, None, &["-c", "\\d http_events"]));
    assert!(
        described.contains("Table \"public.http_events\""),
        "{described}"
    );
    let columns: Vec<&str> = described
        .lines()
        .filter_map(|line| line.split('|').next().map(str::trim))
        .skip_while(|name| *name != "Column")
        .skip(1)
        .filter(|name| !name.is_empty() && !name.starts_with('-'))
        .collect();
    let schema: Vec<String> = agent
        .query(
            "SELECT column_name FROM information_schema.columns \
             WHERE table_name = 'http_events' ORDER BY ordinal_position",
        )
        .into_iter()
        .map(|row| row[0].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(columns, schema, "{described}");
    assert!(
        described
            .lines()
            .any(|l| l.contains("req_path") && l.contains("text")),
        "{described}"
    );
    let listed = stdout(&psql(pg, None, &["-c", "\\dt"]));
    for table in ["http_events", "capture_stats", "probe_status"] {
        assert!(listed.contains(table), "{listed}");
    }

    // A write: refused, with the reason, and nothing changed.
    let refused = psql(pg, None, &["-c", "DELETE FROM http_events"]);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains(
            "ERROR:  only read-only statements are allowed: SELECT, WITH, EXPLAIN, SHOW, DESCRIBE; got DELETE"
        ),
        "{stderr}"
    );
    let count = stdout(&psql(
        pg,
        None,
        &[
            "-At",
            "-c",
            &format!("SELECT count(*) FROM http_events WHERE req_path = '{path}'"),
        ],
    ));
    assert_eq!(count.trim(), "6", "client and server sides of 3 requests");
    // The same limits as the HTTP API.
    let deep = format!("SELECT {}1{}", "(".repeat(200), ")".repeat(200));
    let refused = psql(pg, None, &["-c", &deep]);
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("levels deep"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
}

#[test]
fn a_driver_binds_parameters() {
    if !ebpf_available() {
        return;
    }
    let agent = Agent::start("pgwire-driver");
    let pg = agent.pg_port.expect("the PostgreSQL endpoint is on");
    let path = format!("/pgwire-driver-{}", std::process::id());
    let _server = traffic(&agent, &path, 2);
    let output = Command::new("python3")
        .arg(fixture("pg_client.py"))
        .args(["127.0.0.1", &pg.to_string(), &path])
        .output()
        .expect("run the psycopg client");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let out: Value = serde_json::from_slice(&output.stdout).expect("JSON from the client");
    assert_eq!(
        out["params"],
        json!([["GET", path, 404], ["GET", path, 404]])
    );
    // text, text, int8
    assert_eq!(out["types"], json!([25, 25, 20]));
    assert_eq!(out["count"], json!(4));
    assert_eq!(out["columns"], json!(["time_", "name", "value", "node"]));
    assert_eq!(out["write"]["sqlstate"], json!("25006"), "{out}");
}

#[test]
fn beyond_loopback_the_token_is_the_password() {
    if !ebpf_available() {
        return;
    }
    let dir = scratch_dir("pgwire-token");
    let token = "pg-token-0123456789abcdef";
    let token_file = dir.join("token");
    std::fs::write(&token_file, token).unwrap();
    let pg = free_port();

    // Without a token the agent refuses to listen beyond loopback.
    let refused = Command::new(sonde_e2e::sonde_binary())
        .args(["agent", "--pg-listen", &format!("0.0.0.0:{pg}")])
        .output()
        .expect("run sonde");
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains(&format!(
            "--pg-listen 0.0.0.0:{pg} is reachable from other hosts"
        )),
        "{stderr}"
    );

    let agent = Agent::start_with(
        "pgwire-token",
        &[
            "--pg-listen",
            &format!("0.0.0.0:{pg}"),
            "--auth-token-file",
            token_file.to_str().unwrap(),
        ],
    );
    let none = psql(pg, None, &["-At", "-c", "SELECT 1"]);
    assert!(!none.status.success());
    let stderr = String::from_utf8_lossy(&none.stderr);
    assert!(stderr.contains("no password supplied"), "{stderr}");
    let wrong = psql(pg, Some("not-the-token"), &["-At", "-c", "SELECT 1"]);
    assert!(!wrong.status.success());
    let stderr = String::from_utf8_lossy(&wrong.stderr);
    assert!(
        // pgwire's wording ("Password authentication failed for user ...").
        stderr
            .to_lowercase()
            .contains("password authentication failed"),
        "{stderr}"
    );
    let right = stdout(&psql(pg, Some(token), &["-At", "-c", "SELECT 41 + 1"]));
    assert_eq!(right, "42\n");
    drop(agent);
}

/// The catalog queries Grafana's PostgreSQL data source sends to fill its
/// query builder (search_path arrays, `generate_series`, `parse_ident`,
/// `quote_ident`): the tables, then one table's columns.
#[test]
fn grafana_catalog_queries() {
    if !ebpf_available() {
        return;
    }
    let agent = Agent::start("pgwire-grafana");
    let pg = agent.pg_port.expect("the PostgreSQL endpoint is on");
    let file = |name: &str| fixture(name).to_str().unwrap().to_owned();

    let tables = stdout(&psql(pg, None, &["-At", "-f", &file("grafana_tables.sql")]));
    assert_eq!(
        tables,
        "public.capture_stats\npublic.conn_stats\npublic.dns_events\npublic.http_events\n\
         public.mysql_events\npublic.pgsql_events\npublic.probe_status\npublic.redis_events\n"
    );

    let columns = stdout(&psql(
        pg,
        None,
        &["-At", "-f", &file("grafana_columns.sql")],
    ));
    let columns: Vec<&str> = columns.lines().collect();
    let expected = agent
        .query("SELECT count(*) FROM information_schema.columns WHERE table_name = 'http_events'");
    assert_eq!(json!(columns.len()), expected[0][0], "{columns:?}");
    assert_eq!(columns.first(), Some(&"time_|Timestamp(ns, \"UTC\")"));
    for column in [
        "req_path|Utf8",
        "resp_status|Int64",
        "latency|Int64",
        "node|Dictionary(Int32, Utf8)",
    ] {
        assert!(columns.contains(&column), "{column} not in {columns:?}");
    }
}
