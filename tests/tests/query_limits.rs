//! End to end: SQL built to recurse deeply is refused by the real agent,
//! which keeps capturing. Before the query limits and threads, one request
//! of `SELECT 1 UNION ALL …` with 5 000 terms aborted the agent with a stack
//! overflow (issue 13, part 1).
//!
//! Run as root, one test at a time: `cargo test -p sonde-e2e -- --test-threads=1`

use std::time::Duration;

use serde_json::Value;
use sonde_e2e::{Agent, curl, ebpf_available, free_port};

const WAIT: Duration = Duration::from_secs(20);

fn error_of(agent: &Agent, sql: &str) -> (u16, String) {
    let (status, body) = agent.query_raw(sql, "json");
    let body: Value = serde_json::from_str(&body).unwrap_or_else(|_| panic!("JSON error: {body}"));
    (
        status,
        body["error"].as_str().unwrap_or_default().to_owned(),
    )
}

#[test]
fn hostile_sql_is_refused_and_capture_goes_on() {
    if !ebpf_available() {
        return;
    }
    let agent = Agent::start("query-limits");
    let port = free_port();
    let _server = sonde_e2e::servers::python_http_server("query-limits-root", port, "still here");

    let union = |terms: usize| vec!["SELECT 1"; terms].join(" UNION ALL ");
    let in_list = (0..100_000)
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let nesting = "at most 500 levels are accepted";
    let parser = "at most 50 are accepted";
    let length = "bytes are accepted";
    let cases = [
        (union(5_000), nesting),
        (union(50_000), length),
        (format!("SELECT {}", vec!["1"; 20_000].join("+")), nesting),
        (
            format!("SELECT {}1{}", "(".repeat(5_000), ")".repeat(5_000)),
            parser,
        ),
        (format!("SELECT {}true", "NOT ".repeat(5_000)), parser),
        (
            format!(
                "SELECT {}1{}",
                "CASE WHEN true THEN ".repeat(2_000),
                " END".repeat(2_000)
            ),
            parser,
        ),
        (
            format!("SELECT {}1{}", "(SELECT ".repeat(2_000), ")".repeat(2_000)),
            parser,
        ),
        (format!("SELECT 1 IN ({in_list})"), length),
    ];
    for (round, (sql, expected)) in cases.iter().enumerate() {
        let (status, message) = error_of(&agent, sql);
        assert_eq!(status, 400, "{message}");
        assert!(message.ends_with(expected), "{message}");

        // Capture goes on: a request made after each refusal is recorded.
        let path = format!("/after-{round}");
        curl(&["-o", "/dev/null", &format!("http://127.0.0.1:{port}{path}")]);
        let rows = agent.wait_rows(
            &format!(
                "SELECT req_path FROM http_events \
                 WHERE trace_role = 'client' AND remote_port = {port} AND req_path = '{path}'"
            ),
            1,
            WAIT,
        );
        assert_eq!(rows.len(), 1, "{path}: {rows:?}");
    }
    let log = agent.stop();
    assert!(!log.contains("overflow"), "{log}");
}
