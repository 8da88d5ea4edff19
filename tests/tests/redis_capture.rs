//! End to end: redis-server and redis-cli (RESP2, RESP3, pipelining, pub/sub,
//! AUTH) captured by the real agent; rows checked through SQL.

use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use sonde_e2e::{Agent, Server, ebpf_available, free_port, run};

const WAIT: Duration = Duration::from_secs(20);
const PASSWORD: &str = "s3cret-redis-pass";

fn s(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

fn redis_server(port: u16) -> Server {
    sonde_e2e::servers::redis_server(port, Some(PASSWORD))
}

fn cli(port: u16, args: &[&str]) -> String {
    run(Command::new("redis-cli")
        .args(["-p", &port.to_string(), "--no-auth-warning", "-a", PASSWORD])
        .args(args))
}

#[test]
fn redis_commands_replies_and_secrets() {
    if !ebpf_available() {
        return;
    }
    let agent = Agent::start("redis");
    let port = free_port();
    let _server = redis_server(port);

    assert_eq!(cli(port, &["SET", "greeting", "hello"]).trim(), "OK");
    assert_eq!(cli(port, &["GET", "greeting"]).trim(), "hello");
    assert_eq!(cli(port, &["INCRBY", "counter", "5"]).trim(), "5");
    assert_eq!(cli(port, &["CLIENT", "SETNAME", "sonde-e2e"]).trim(), "OK");
    cli(port, &["GET", "missing"]);
    cli(port, &["LPUSH"]); // wrong arity: an error reply

    let sql = format!(
        "SELECT req_cmd, req_args, resp, latency FROM redis_events \
         WHERE trace_role = 'client' AND remote_port = {port} ORDER BY time_"
    );
    let rows = agent.wait_rows(&sql, 12, WAIT);
    let got: Vec<(String, String, String)> = rows
        .iter()
        .map(|r| (s(&r[0]), s(&r[1]), s(&r[2])))
        .collect();
    // Every redis-cli run authenticates first; the password never reaches the table.
    let auth = (
        "AUTH".to_string(),
        "[\"<redacted>\"]".to_string(),
        "OK".to_string(),
    );
    let expected = vec![
        auth.clone(),
        ("SET".into(), "[\"greeting\",\"hello\"]".into(), "OK".into()),
        auth.clone(),
        ("GET".into(), "[\"greeting\"]".into(), "hello".into()),
        auth.clone(),
        ("INCRBY".into(), "[\"counter\",\"5\"]".into(), "5".into()),
        auth.clone(),
        (
            "CLIENT SETNAME".into(),
            "[\"sonde-e2e\"]".into(),
            "OK".into(),
        ),
        auth.clone(),
        ("GET".into(), "[\"missing\"]".into(), "<NULL>".into()),
        auth,
    ];
    // redis-cli may send COMMAND DOCS at start in interactive mode only; these are one-shot runs.
    assert_eq!(got[..expected.len()], expected[..], "{got:#?}");
    assert_eq!(got[11].0, "LPUSH");
    assert!(
        got[11].2.starts_with("ERR wrong number of arguments"),
        "{:?}",
        got[11]
    );
    assert!(
        rows.iter().all(|r| r[3].as_i64().unwrap_or(0) > 0),
        "latency > 0: {rows:?}"
    );
    let all = agent.query("SELECT req_args, resp FROM redis_events");
    assert!(
        !format!("{all:?}").contains(PASSWORD),
        "password leaked: {all:?}"
    );
    // The server side sees the same commands.
    let server = agent.query(&format!(
        "SELECT count(*) FROM redis_events WHERE trace_role = 'server' AND local_port = {port}"
    ));
    assert_eq!(server[0][0].as_i64(), Some(12));
}

#[test]
fn redis_pipelined_burst_is_fully_captured() {
    if !ebpf_available() {
        return;
    }
    let agent = Agent::start("redis-pipe");
    let port = free_port();
    let _server = redis_server(port);
    let sent = 1000;
    let mut input = String::new();
    for i in 0..sent {
        input.push_str(&format!("SET pipe:{i} value-{i}\r\n"));
    }
    let mut child = Command::new("redis-cli")
        .args([
            "-p",
            &port.to_string(),
            "--no-auth-warning",
            "-a",
            PASSWORD,
            "--pipe",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("redis-cli --pipe");
    use std::io::Write;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("wait");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&format!("replies: {sent}")),
        "{out:?}"
    );

    let sql = format!(
        "SELECT trace_role, count(*) FROM redis_events WHERE req_cmd = 'SET' AND resp = 'OK' \
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

#[test]
fn redis_resp3_and_pubsub_pushes() {
    if !ebpf_available() {
        return;
    }
    let agent = Agent::start("redis-resp3");
    let port = free_port();
    let _server = redis_server(port);
    cli(port, &["HSET", "h", "field", "value"]);
    // RESP3: redis-cli -3 sends HELLO 3; HGETALL then answers with a map.
    assert!(cli(port, &["-3", "HGETALL", "h"]).contains("field"));
    cli(port, &["HELLO", "3", "AUTH", "default", PASSWORD]);

    let mut subscriber = Command::new("redis-cli")
        .args([
            "-p",
            &port.to_string(),
            "--no-auth-warning",
            "-a",
            PASSWORD,
            "SUBSCRIBE",
            "news",
        ])
        .stdout(Stdio::null())
        .spawn()
        .expect("subscriber");
    // Publish once the subscriber is really subscribed.
    let deadline = std::time::Instant::now() + WAIT;
    while cli(port, &["PUBSUB", "NUMSUB", "news"]).lines().nth(1) != Some("1") {
        assert!(
            std::time::Instant::now() < deadline,
            "subscriber never subscribed"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(cli(port, &["PUBLISH", "news", "extra-extra"]).trim(), "1");
    std::thread::sleep(Duration::from_millis(300));
    let _ = subscriber.kill();
    let _ = subscriber.wait();

    let hgetall = agent.wait_rows(
        &format!(
            "SELECT resp FROM redis_events WHERE req_cmd = 'HGETALL' AND remote_port = {port}"
        ),
        1,
        WAIT,
    );
    assert_eq!(s(&hgetall[0][0]), "{\"field\":\"value\"}");
    let hello = agent.query(&format!(
        "SELECT req_args FROM redis_events WHERE req_cmd = 'HELLO' AND remote_port = {port} ORDER BY time_"
    ));
    // redis-cli -3 sends a bare HELLO 3 (it authenticates with AUTH); the explicit
    // HELLO ... AUTH below carries the password, which must be redacted.
    assert_eq!(s(&hello[0][0]), "[\"3\"]", "{hello:?}");
    assert_eq!(
        s(&hello[1][0]),
        "[\"3\",\"AUTH\",\"default\",\"<redacted>\"]",
        "{hello:?}"
    );
    let all = agent.query("SELECT req_args, resp FROM redis_events");
    assert!(
        !format!("{all:?}").contains(PASSWORD),
        "password leaked: {all:?}"
    );
    let pushes = agent.wait_rows(
        &format!(
            "SELECT req_cmd, req_args, resp, latency FROM redis_events WHERE req_cmd = 'PUSH' \
             AND trace_role = 'client' AND remote_port = {port}"
        ),
        1,
        WAIT,
    );
    assert_eq!(pushes.len(), 1, "{pushes:?}");
    assert_eq!(s(&pushes[0][1]), "[\"message\",\"news\"]");
    assert_eq!(s(&pushes[0][2]), "extra-extra");
    assert_eq!(pushes[0][3].as_i64(), Some(0));
    let subscribe = agent.query(&format!(
        "SELECT req_args FROM redis_events WHERE req_cmd = 'SUBSCRIBE' AND remote_port = {port}"
    ));
    assert_eq!(subscribe.len(), 1, "{subscribe:?}");
}
