//! Records the golden PostgreSQL streams of protocols/tests/data/pgsql/:
//! a real server (tests/src/postgres.rs), a recording relay in front of it
//! (protocols/tests/tools/pg_relay.py) and real clients. Not run by default
//! (the recordings are committed; new ones change the expected events):
//!
//! ```sh
//! cargo test -p sonde-e2e --test pgsql_record -- --ignored --test-threads=1
//! ```

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use sonde_e2e::postgres::{self, Postgres};
use sonde_e2e::{fixture, free_port};

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../protocols/tests/data/pgsql")
}

/// The relay, recording into `name`.pgs; stopped once `connections` closed.
struct Relay {
    child: Child,
    port: u16,
    out: PathBuf,
}

impl Relay {
    fn start(name: &str, upstream: u16) -> Relay {
        std::fs::create_dir_all(data_dir()).expect("data dir");
        let port = free_port();
        let out = data_dir().join(format!("{name}.pgs"));
        let child = Command::new("python3")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../protocols/tests/tools/pg_relay.py"))
            .args([
                "--listen",
                &port.to_string(),
                "--upstream",
                &upstream.to_string(),
            ])
            .arg("--out")
            .arg(&out)
            .stdin(Stdio::null())
            .spawn()
            .expect("relay");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "relay did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        // That probe was connection 0 of the file: skip it when reading.
        Relay { child, port, out }
    }

    /// Waits until `connections` connections (the probe included) closed.
    fn finish(mut self, connections: usize) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let text = std::fs::read_to_string(&self.out).unwrap_or_default();
            if text.lines().filter(|l| l.starts_with("# closed")).count() >= connections {
                break;
            }
            assert!(Instant::now() < deadline, "connections did not close");
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn ok(output: Output) -> String {
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn psql_stdin(port: u16, sql: &str, stdin: &str) -> Output {
    use std::io::Write;
    let mut child = Command::new("psql")
        .args(["-X", "-c", sql])
        .envs(Postgres::client_env(port, "disable"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("psql");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[test]
#[ignore = "regenerates committed recordings"]
fn record_psql() {
    let pg = postgres::start("record-psql");
    let relay = Relay::start("psql", pg.port);
    let p = relay.port;
    // sslmode=prefer against a server without TLS: SSLRequest, 'N'.
    ok(Postgres::psql(
        p,
        "prefer",
        &[
            "-c",
            "CREATE TABLE items (id int PRIMARY KEY, name text); \
         INSERT INTO items VALUES (1, 'one'), (2, 'two'); SELECT * FROM items ORDER BY id",
        ],
    ));
    let missing = Postgres::psql(p, "disable", &["-c", "SELECT * FROM missing_table"]);
    assert!(!missing.status.success());
    ok(psql_stdin(
        p,
        "COPY items FROM STDIN",
        "3\tthree\n4\tfour\n",
    ));
    ok(Postgres::psql(
        p,
        "disable",
        &["-c", "COPY items TO STDOUT"],
    ));
    let partial = Postgres::psql(
        p,
        "disable",
        &["-c", "SELECT 1; SELECT * FROM nope; SELECT 2"],
    );
    assert!(!partial.status.success());
    relay.finish(6);
}

#[test]
#[ignore = "regenerates committed recordings"]
fn record_login_failure() {
    let pg = postgres::start("record-login");
    let relay = Relay::start("login_failure", pg.port);
    let out = Command::new("psql")
        .args(["-X", "-c", "SELECT 1"])
        .envs(Postgres::client_env(relay.port, "disable"))
        .env("PGPASSWORD", "wrong-password-123")
        .output()
        .unwrap();
    assert!(!out.status.success());
    relay.finish(2);
}

#[test]
#[ignore = "regenerates committed recordings"]
fn record_cleartext_password() {
    // The password crosses the wire in a PasswordMessage.
    let pg = postgres::start_with("record-cleartext", free_port(), false, "password");
    let relay = Relay::start("cleartext_password", pg.port);
    ok(Postgres::psql(
        relay.port,
        "disable",
        &["-c", "ALTER ROLE sonde PASSWORD 'n3w-s3cret'"],
    ));
    relay.finish(2);
}

#[test]
#[ignore = "regenerates committed recordings"]
fn record_pgbench() {
    let pg = postgres::start("record-pgbench");
    pg.pgbench_init();
    for mode in ["simple", "extended", "prepared"] {
        let relay = Relay::start(&format!("pgbench_{mode}"), pg.port);
        ok(pg.pgbench(relay.port, &["-n", "-M", mode, "-c", "1", "-t", "3"]));
        // pgbench's own connection, then the client's.
        relay.finish(3);
    }
}

#[test]
#[ignore = "regenerates committed recordings"]
fn record_psycopg() {
    let pg = postgres::start("record-psycopg");
    let relay = Relay::start("psycopg", pg.port);
    let out = ok(Postgres::script(
        "python3",
        &fixture("pg_psycopg.py"),
        relay.port,
    ));
    assert!(out.contains("error 22012"), "{out}");
    relay.finish(2);
}

#[test]
#[ignore = "regenerates committed recordings"]
fn record_node_postgres() {
    let pg = postgres::start("record-node");
    let relay = Relay::start("node_postgres", pg.port);
    let out = ok(Postgres::script("node", &fixture("pg_node.js"), relay.port));
    assert!(out.contains("labels b a"), "{out}");
    relay.finish(2);
}

#[test]
#[ignore = "regenerates committed recordings"]
fn record_tls() {
    let pg = postgres::start_with("record-tls", free_port(), true, "scram-sha-256");
    let relay = Relay::start("tls", pg.port);
    ok(Postgres::psql(relay.port, "require", &["-c", "SELECT 1"]));
    relay.finish(2);
}
