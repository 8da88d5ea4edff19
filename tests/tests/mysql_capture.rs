//! End to end: MariaDB server, the `mariadb` command-line client and a real
//! driver's server-side prepared statements (mysql-connector-python), captured
//! by the real agent; rows checked through SQL.

use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use sonde_e2e::mariadb::{self, PASSWORD, client};
use sonde_e2e::{Agent, ebpf_available, fixture, run, scratch_dir};

const WAIT: Duration = Duration::from_secs(20);

fn s(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

#[test]
fn mysql_queries_errors_and_prepared_statements() {
    if !ebpf_available() {
        return;
    }
    let agent = Agent::start("mysql");
    let (_server, port) = mariadb::start("queries");

    assert!(
        client(port, "INSERT INTO items VALUES (1, 'apple'), (2, 'pear')")
            .status
            .success()
    );
    let out = client(port, "SELECT id, name FROM items ORDER BY id");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "id\tname\n1\tapple\n2\tpear\n"
    );
    let out = client(port, "SELECT * FROM missing_table");
    assert!(!out.status.success());
    // Server-side prepared statements from a real driver.
    let out = run(Command::new("python3")
        .arg(fixture("mysql_prepared.py"))
        .args([&port.to_string(), PASSWORD]));
    assert_eq!(out.trim(), "pear");

    let sql = format!(
        "SELECT req_cmd, req_body, resp_status, resp_body, latency FROM mysql_events \
         WHERE trace_role = 'client' AND remote_port = {port} AND req_cmd <> 'COM_CONNECT' \
         AND (req_body LIKE '%items%' OR req_body LIKE '%missing%') \
         AND req_cmd IN ('COM_QUERY', 'COM_STMT_PREPARE', 'COM_STMT_EXECUTE') ORDER BY time_"
    );
    let rows = agent.wait_rows(&sql, 7, WAIT);
    let got: Vec<(String, String, String, String)> = rows
        .iter()
        .map(|r| (s(&r[0]), s(&r[1]), s(&r[2]), s(&r[3])))
        .collect();
    let q = |cmd: &str, body: &str, status: &str, resp: &str| {
        (
            cmd.to_string(),
            body.to_string(),
            status.to_string(),
            resp.to_string(),
        )
    };
    assert_eq!(
        got[0],
        q(
            "COM_QUERY",
            "INSERT INTO items VALUES (1, 'apple'), (2, 'pear')",
            "OK",
            "affected_rows=2 info=Records: 2  Duplicates: 0  Warnings: 0"
        )
    );
    assert_eq!(
        got[1],
        q(
            "COM_QUERY",
            "SELECT id, name FROM items ORDER BY id",
            "RESULTSET",
            "columns=2 rows=2"
        )
    );
    assert_eq!(got[2].0, "COM_QUERY");
    assert_eq!(got[2].2, "ERR");
    assert!(
        got[2]
            .3
            .starts_with("1146: Table 'shop.missing_table' doesn't exist"),
        "{:?}",
        got[2]
    );
    assert_eq!(got[3].0, "COM_STMT_PREPARE");
    assert_eq!(got[3].1, "SELECT name FROM items WHERE id = ?");
    assert_eq!(
        got[4],
        q(
            "COM_STMT_EXECUTE",
            "SELECT name FROM items WHERE id = ? -- params: [2]",
            "RESULTSET",
            "columns=1 rows=1"
        )
    );
    assert_eq!(got[5].0, "COM_STMT_PREPARE");
    assert_eq!(got[5].1, "UPDATE items SET name = ? WHERE id = ?");
    assert_eq!(
        got[6],
        q(
            "COM_STMT_EXECUTE",
            "UPDATE items SET name = ? WHERE id = ? -- params: ['quince', 1]",
            "OK",
            "affected_rows=1 info=Rows matched: 1  Changed: 1  Warnings: 0"
        )
    );
    assert!(
        rows.iter().all(|r| r[4].as_i64().unwrap_or(0) > 0),
        "latency > 0: {rows:?}"
    );

    // The handshake is recorded with the user, never the password.
    let all = agent.query(&format!("SELECT req_cmd, req_body, resp_body FROM mysql_events WHERE remote_port = {port} OR local_port = {port}"));
    assert!(
        !format!("{all:?}").contains(PASSWORD),
        "password leaked: {all:?}"
    );
    assert!(
        all.iter()
            .any(|r| s(&r[0]) == "COM_CONNECT" && s(&r[1]).contains("user=sonde")),
        "{all:?}"
    );
    // The server's side is captured too.
    let server = agent.query(&format!(
        "SELECT count(*) FROM mysql_events WHERE trace_role = 'server' AND local_port = {port} AND req_body LIKE '%items%'"
    ));
    assert!(server[0][0].as_i64().unwrap_or(0) >= 5, "{server:?}");
}

#[test]
fn mysql_burst_of_queries_is_fully_captured() {
    if !ebpf_available() {
        return;
    }
    let agent = Agent::start("mysql-burst");
    let (_server, port) = mariadb::start("burst");
    let sent = 1000;
    let script: String = (0..sent)
        .map(|i| format!("SELECT {i} AS n, 'burst';\n"))
        .collect();
    let dir = scratch_dir("mysql-burst-script");
    std::fs::write(dir.join("burst.sql"), script).expect("script");
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "mariadb -h 127.0.0.1 -P {port} -u sonde -p{PASSWORD} shop < {}",
            dir.join("burst.sql").display()
        ))
        .output()
        .expect("mariadb");
    assert!(out.status.success(), "{out:?}");

    let sql = format!(
        "SELECT trace_role, count(*) FROM mysql_events WHERE req_body LIKE '%''burst''' AND resp_status = 'RESULTSET' \
         AND (remote_port = {port} OR local_port = {port}) GROUP BY trace_role ORDER BY trace_role"
    );
    let got = agent.wait_grouped_counts(&sql, 2 * sent, WAIT);
    assert_eq!(
        got,
        vec![("client".to_string(), sent), ("server".to_string(), sent)],
        "{:?}",
        agent.capture_stats()
    );
}
