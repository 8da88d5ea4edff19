//! End to end: the real agent with real probes, real HTTP servers (nginx,
//! Python) and clients (curl, Python), rows checked through the SQL API.
//!
//! Run as root, one test at a time (each starts its own agent):
//! `cargo test -p sonde-e2e -- --test-threads=1`

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use sonde_e2e::{
    Agent, Server, curl, ebpf_available, fixture, free_port, run, start_nginx, wait_until,
};

const WAIT: Duration = Duration::from_secs(20);

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_default()
}

fn i(v: &Value) -> i64 {
    v.as_i64().unwrap_or(i64::MIN)
}

fn python_server(port: u16) -> Server {
    let mut cmd = Command::new("python3");
    cmd.arg(fixture("http_server.py")).arg(port.to_string());
    Server::spawn(cmd, port)
}

fn python_client(args: &[&str]) -> String {
    run(Command::new("python3")
        .arg(fixture("http_client.py"))
        .args(args))
}

#[test]
fn curl_to_python_http_server_records_both_sides() {
    if !ebpf_available() {
        return;
    }
    let agent = Agent::start("python-http");
    let port = free_port();
    let _server = sonde_e2e::servers::python_http_server("python-root", port, "hello, sonde");

    curl(&[&format!("http://127.0.0.1:{port}/hello.txt")]);
    curl(&["-o", "/dev/null", &format!("http://127.0.0.1:{port}/nope")]);

    let sql = format!(
        "SELECT trace_role, comm, req_method, req_path, resp_status, resp_body_size, resp_body, latency, \
         major_version, minor_version, remote_port, local_port \
         FROM http_events WHERE local_port = {port} OR remote_port = {port} ORDER BY req_path, trace_role"
    );
    let rows = agent.wait_rows(&sql, 4, WAIT);
    assert_eq!(rows.len(), 4, "{rows:?}");
    // (path, role) sorted: /hello.txt client, /hello.txt server, /nope client, /nope server.
    let expect = [
        ("/hello.txt", "client", 200),
        ("/hello.txt", "server", 200),
        ("/nope", "client", 404),
        ("/nope", "server", 404),
    ];
    for (row, (path, role, status)) in rows.iter().zip(expect) {
        assert_eq!(s(&row[0]), role, "{row:?}");
        assert_eq!(s(&row[2]), "GET");
        assert_eq!(s(&row[3]), path);
        assert_eq!(i(&row[4]), status);
        assert!(i(&row[7]) > 0, "latency must be positive: {row:?}");
        assert_eq!(i(&row[8]), 1);
        // python's http.server answers HTTP/1.0.
        assert_eq!(i(&row[9]), 0, "{row:?}");
        if role == "client" {
            assert_eq!(s(&row[1]), "curl");
            assert_eq!(i(&row[10]), i64::from(port));
        } else {
            assert!(s(&row[1]).starts_with("python"), "{row:?}");
            assert_eq!(i(&row[11]), i64::from(port));
        }
    }
    assert_eq!(i(&rows[0][5]), 12);
    assert_eq!(s(&rows[0][6]), "hello, sonde");
    assert_eq!(s(&rows[1][6]), "hello, sonde");
}

#[test]
fn nginx_keepalive_statuses_sendfile_and_post() {
    if !ebpf_available() {
        return;
    }
    let agent = Agent::start("nginx");
    let port = free_port();
    let _nginx = start_nginx("basic", port);
    let base = format!("http://127.0.0.1:{port}");

    // One curl, one keep-alive connection, four requests.
    curl(&[
        "-o",
        "/dev/null",
        "-o",
        "/dev/null",
        "-o",
        "/dev/null",
        "-o",
        "/dev/null",
        &format!("{base}/hello"),
        &format!("{base}/missing"),
        &format!("{base}/fail"),
        &format!("{base}/empty"),
    ]);
    // The static file goes out with sendfile: its body is a gap the parser skips.
    curl(&["-o", "/dev/null", &format!("{base}/static.txt")]);
    curl(&[
        "-o",
        "/dev/null",
        "-d",
        "name=sonde",
        &format!("{base}/created"),
    ]);

    let sql = format!(
        "SELECT req_method, req_path, resp_status, resp_body_size, resp_body, req_body_size, content_type, minor_version \
         FROM http_events WHERE trace_role = 'server' AND local_port = {port} ORDER BY time_"
    );
    let rows = agent.wait_rows(&sql, 6, WAIT);
    let got: Vec<(String, String, i64, i64)> = rows
        .iter()
        .map(|r| {
            (
                s(&r[0]).to_string(),
                s(&r[1]).to_string(),
                i(&r[2]),
                i(&r[3]),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("GET".into(), "/hello".into(), 200, 17),
            ("GET".into(), "/missing".into(), 404, i(&rows[1][3])),
            ("GET".into(), "/fail".into(), 503, i(&rows[2][3])),
            ("GET".into(), "/empty".into(), 204, 0),
            ("GET".into(), "/static.txt".into(), 200, 5000),
            ("POST".into(), "/created".into(), 201, 8),
        ]
    );
    assert_eq!(s(&rows[0][4]), "hello from nginx\n");
    assert_eq!(s(&rows[0][6]), "text/plain");
    assert!(i(&rows[1][3]) > 0, "nginx 404 page has a body");
    assert_eq!(s(&rows[5][4]), "{\"id\":1}");
    assert_eq!(i(&rows[5][5]), 10, "request body size");
    assert_eq!(i(&rows[5][7]), 1, "HTTP/1.1");

    // The same six exchanges seen from curl's side.
    let client = agent.query(&format!(
        "SELECT count(*) FROM http_events WHERE trace_role = 'client' AND remote_port = {port}"
    ));
    assert_eq!(i(&client[0][0]), 6);

    // conn_stats: every connection to nginx, with its protocol and byte counts.
    let conns = agent.wait_rows(
        &format!(
            "SELECT protocol, transport, bytes_sent, bytes_recv, conn_close_ns FROM conn_stats \
             WHERE trace_role = 'server' AND local_port = {port} AND conn_close_ns > 0 ORDER BY bytes_recv"
        ),
        4,
        WAIT,
    );
    // The harness's readiness probe connected and closed without a byte: still a flow.
    assert_eq!(conns.len(), 4, "{conns:?}");
    assert_eq!(
        (s(&conns[0][0]), i(&conns[0][2]), i(&conns[0][3])),
        ("unknown", 0, 0)
    );
    let conns = &conns[1..];
    for row in conns {
        assert_eq!((s(&row[0]), s(&row[1])), ("http", "tcp"), "{row:?}");
        assert!(i(&row[2]) > 0 && i(&row[3]) > 0, "{row:?}");
    }
    let total_sent: i64 = conns.iter().map(|r| i(&r[2])).sum();
    assert!(
        total_sent > 5000,
        "the 5000-byte static file was sent: {conns:?}"
    );
}

#[test]
fn pipelined_requests_pair_in_order() {
    if !ebpf_available() {
        return;
    }
    let agent = Agent::start("pipeline");
    let port = free_port();
    let _nginx = start_nginx("pipeline", port);
    assert_eq!(
        python_client(&["pipeline", &port.to_string()]).trim(),
        "200 404 201"
    );

    let sql = format!(
        "SELECT trace_role, req_path, resp_status FROM http_events \
         WHERE local_port = {port} OR remote_port = {port} ORDER BY trace_role, time_"
    );
    let rows = agent.wait_rows(&sql, 6, WAIT);
    let got: Vec<(String, String, i64)> = rows
        .iter()
        .map(|r| (s(&r[0]).to_string(), s(&r[1]).to_string(), i(&r[2])))
        .collect();
    let mut expected = Vec::new();
    for role in ["client", "server"] {
        for (path, status) in [("/hello", 200), ("/missing", 404), ("/created", 201)] {
            expected.push((role.to_string(), path.to_string(), status));
        }
    }
    assert_eq!(got, expected);
}

#[test]
fn chunked_head_304_post_and_close_delimited_framing() {
    if !ebpf_available() {
        return;
    }
    let agent = Agent::start("framing");
    let port = free_port();
    let _server = python_server(port);
    let base = format!("http://127.0.0.1:{port}");

    assert_eq!(curl(&[&format!("{base}/chunked")]), "alphabetagamma");
    curl(&["-I", &format!("{base}/head")]);
    curl(&["-o", "/dev/null", &format!("{base}/notmodified")]);
    assert_eq!(curl(&["--http1.0", &format!("{base}/close10")]).len(), 300);
    // 100 000 bytes: more than the per-call copy cap, so part of it is a gap
    // inside a body of known length.
    let body = "b".repeat(100_000);
    let dir = sonde_e2e::scratch_dir("post-body");
    std::fs::write(dir.join("body"), &body).expect("body");
    let echoed = curl(&[
        "-H",
        "Content-Type: application/octet-stream",
        "-H",
        "Expect:",
        "--data-binary",
        &format!("@{}", dir.join("body").display()),
        &format!("{base}/echo"),
    ]);
    assert_eq!(echoed, "{\"received\": 100000}");
    // An interim 100 Continue precedes the final response on the same stream.
    let continued = curl(&[
        "-H",
        "Expect: 100-continue",
        "--data-binary",
        &"c".repeat(2000),
        &format!("{base}/echo"),
    ]);
    assert_eq!(continued, "{\"received\": 2000}");

    let sql = format!(
        "SELECT req_method, req_path, resp_status, resp_body_size, resp_body, req_body_size, length(req_body) \
         FROM http_events WHERE trace_role = 'server' AND local_port = {port} ORDER BY time_"
    );
    let rows = agent.wait_rows(&sql, 6, WAIT);
    let got: Vec<(String, String, i64, i64)> = rows
        .iter()
        .map(|r| {
            (
                s(&r[0]).to_string(),
                s(&r[1]).to_string(),
                i(&r[2]),
                i(&r[3]),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("GET".into(), "/chunked".into(), 200, 14),
            ("HEAD".into(), "/head".into(), 200, 0),
            ("GET".into(), "/notmodified".into(), 304, 0),
            ("GET".into(), "/close10".into(), 200, 300),
            ("POST".into(), "/echo".into(), 200, 20),
            ("POST".into(), "/echo".into(), 200, 18),
        ]
    );
    assert_eq!(s(&rows[0][4]), "alphabetagamma");
    assert_eq!(i(&rows[4][5]), 100_000, "full request body size recorded");
    assert_eq!(i(&rows[4][6]), 1024, "body prefix kept: 1 KiB by default");
}

#[test]
fn secrets_are_redacted_before_storage() {
    if !ebpf_available() {
        return;
    }
    let agent = Agent::start("redaction");
    let port = free_port();
    let _nginx = start_nginx("redaction", port);
    curl(&[
        "-o",
        "/dev/null",
        "-H",
        "Authorization: Bearer very-secret-token",
        "-H",
        "Cookie: session=also-secret",
        "-H",
        "X-Api-Key: key-secret",
        "-H",
        "X-Request-Id: visible-42",
        &format!("http://127.0.0.1:{port}/hello"),
    ]);
    let sql = format!(
        "SELECT req_headers FROM http_events WHERE local_port = {port} OR remote_port = {port}"
    );
    let rows = agent.wait_rows(&sql, 2, WAIT);
    for row in &rows {
        let headers: Value = serde_json::from_str(s(&row[0])).expect("req_headers is JSON");
        assert_eq!(headers["Authorization"], "<redacted>", "{headers}");
        assert_eq!(headers["Cookie"], "<redacted>", "{headers}");
        assert_eq!(headers["X-Api-Key"], "<redacted>", "{headers}");
        assert_eq!(headers["X-Request-Id"], "visible-42", "{headers}");
        assert!(!s(&row[0]).contains("secret"), "{headers}");
    }
}

#[test]
fn connection_opened_before_the_agent_is_traced() {
    if !ebpf_available() {
        return;
    }
    let port = free_port();
    let _nginx = start_nginx("preexisting", port);
    let (mut client, mut stdout, line) =
        start_talking_fixture("http_client.py", &["preexisting", &port.to_string()]);
    assert_eq!(line, "connected");

    let agent = Agent::start("preexisting");
    assert_eq!(go_and_read_line(&mut client, &mut stdout), "200");
    let _ = client.wait();

    let sql = format!(
        "SELECT trace_role, req_path, resp_status, comm FROM http_events \
         WHERE remote_port = {port} AND comm LIKE 'python%'"
    );
    let rows = agent.wait_rows(&sql, 1, WAIT);
    assert_eq!(rows.len(), 1, "{rows:?}");
    // The kernel did not see this connect; the role comes from the HTTP direction.
    assert_eq!(s(&rows[0][0]), "client");
    assert_eq!(s(&rows[0][1]), "/hello");
    assert_eq!(i(&rows[0][2]), 200);
}

/// A server thread already blocked in `recv` on a keep-alive connection when
/// the agent starts (its syscall entered before the probes existed): the
/// next request on that connection is captured on the server side too. The
/// default BPF object's exit of a call that receives reads its arguments
/// from the registers the syscall saved, so no seed is used (the compat
/// object, for kernels before 5.17, takes them from the seed the agent
/// writes at start).
#[test]
fn a_server_blocked_in_read_when_the_agent_starts_is_traced() {
    if !ebpf_available() {
        return;
    }
    let port = free_port();
    let server = python_server(port);
    let (mut client, mut stdout, line) =
        start_talking_fixture("http_client.py", &["preexisting", &port.to_string()]);
    assert_eq!(line, "connected");
    // The server's handler thread is in recvfrom (45) or read (0) on the
    // accepted socket before the agent starts.
    wait_until(WAIT, || blocked_in_socket_read(server.pid()));

    let agent = Agent::start("blocked-read");
    assert_eq!(go_and_read_line(&mut client, &mut stdout), "404");
    let _ = client.wait();

    let sql = format!(
        "SELECT trace_role, req_method, req_path, resp_status FROM http_events \
         WHERE local_port = {port} OR remote_port = {port} ORDER BY trace_role"
    );
    let rows = agent.wait_rows(&sql, 2, WAIT);
    assert_eq!(rows.len(), 2, "{rows:?}");
    for (row, role) in rows.iter().zip(["client", "server"]) {
        assert_eq!(s(&row[0]), role, "{rows:?}");
        assert_eq!(s(&row[1]), "GET");
        assert_eq!(s(&row[2]), "/hello");
        assert_eq!(i(&row[3]), 404);
    }
    assert_eq!(agent.counter("kernel_seeded_calls_used"), 0);
    assert_eq!(agent.counter("kernel_seeded_calls_stale"), 0);
}

/// A client thread already blocked in one `send` of a large request when the
/// agent starts: its entry ran before the probes, yet the request is
/// captured, both sides, with the exact body size. The agent seeds that
/// call's arguments from /proc at start (with either BPF object: only the
/// calls that receive read theirs from the saved registers), and the exit
/// takes exactly that one seed.
#[test]
fn a_client_blocked_in_a_send_when_the_agent_starts_is_traced() {
    if !ebpf_available() {
        return;
    }
    const BODY: i64 = 8 << 20;
    let port = free_port();
    let (mut fixture_process, mut stdout, line) =
        start_talking_fixture("blocked_sender.py", &[&port.to_string(), &BODY.to_string()]);
    let tid: u32 = line
        .strip_prefix("blocked ")
        .and_then(|tid| tid.parse().ok())
        .unwrap_or_else(|| panic!("unexpected line {line:?}"));
    // sendto (44) or write (1): the thread waits for room in the socket.
    wait_until(WAIT, || {
        let text =
            std::fs::read_to_string(format!("/proc/{}/task/{tid}/syscall", fixture_process.id()))
                .unwrap_or_default();
        matches!(text.split_whitespace().next(), Some("44" | "1"))
    });

    let agent = Agent::start("blocked-send");
    assert_eq!(go_and_read_line(&mut fixture_process, &mut stdout), "201");
    let _ = fixture_process.wait();

    let sql = format!(
        "SELECT trace_role, req_method, req_path, req_body_size, resp_status, resp_body, \
         latency > 0 FROM http_events WHERE local_port = {port} OR remote_port = {port} \
         ORDER BY trace_role"
    );
    let rows = agent.wait_rows(&sql, 2, WAIT);
    assert_eq!(rows.len(), 2, "{rows:?}");
    for (row, role) in rows.iter().zip(["client", "server"]) {
        assert_eq!(s(&row[0]), role, "{rows:?}");
        assert_eq!(s(&row[1]), "POST");
        assert_eq!(s(&row[2]), "/upload");
        assert_eq!(i(&row[3]), BODY);
        assert_eq!(i(&row[4]), 201);
        assert_eq!(s(&row[5]), "ok");
        assert_eq!(row[6], serde_json::json!(true), "{rows:?}");
    }
    assert_eq!(agent.counter("kernel_seeded_calls_used"), 1);
    assert_eq!(agent.counter("kernel_seeded_calls_stale"), 0);
}

/// Starts a Python fixture that waits on its stdin for the agent to start,
/// and returns it, its stdout and the first line it printed, trimmed.
fn start_talking_fixture(script: &str, args: &[&str]) -> (Child, BufReader<ChildStdout>, String) {
    let mut child = Command::new("python3")
        .arg(fixture(script))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|err| panic!("{script}: {err}"));
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    stdout.read_line(&mut line).expect("first line");
    (child, stdout, line.trim().to_string())
}

/// Tells a fixture waiting on its stdin to go on, and returns the next line
/// it prints (its status line), trimmed.
fn go_and_read_line(fixture: &mut Child, stdout: &mut BufReader<ChildStdout>) -> String {
    fixture
        .stdin
        .as_mut()
        .expect("stdin")
        .write_all(b"go\n")
        .expect("go");
    let mut line = String::new();
    stdout.read_line(&mut line).expect("status line");
    line.trim().to_string()
}

/// True when a thread of `pid` is blocked in read/recvfrom on a socket.
fn blocked_in_socket_read(pid: u32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    tasks.flatten().any(|task| {
        let text = std::fs::read_to_string(task.path().join("syscall")).unwrap_or_default();
        let mut fields = text.split_whitespace();
        let nr = fields.next().unwrap_or("");
        let fd = fields
            .next()
            .and_then(|f| i64::from_str_radix(f.trim_start_matches("0x"), 16).ok());
        (nr == "45" || nr == "0")
            && fd.is_some_and(|fd| {
                std::fs::read_link(format!("/proc/{pid}/fd/{fd}"))
                    .is_ok_and(|l| l.to_string_lossy().starts_with("socket:"))
            })
    })
}

/// An fd of a traced connection replaced by a pipe without a close syscall
/// (`dup2`): what the process writes to the pipe is not the connection's,
/// although the kernel still tracks the connection on that fd.
#[test]
fn a_socket_fd_replaced_without_close_is_not_traced_as_the_socket() {
    if !ebpf_available() {
        return;
    }
    let agent = Agent::start("dup2");
    let port = free_port();
    let _server = python_server(port);
    let out = python_client(&["dup2", &port.to_string()]);
    let fields: Vec<&str> = out.split_whitespace().collect();
    // The test server answers 404 for any path it does not serve.
    let [first_port, "404", second_port, "404"] = fields[..] else {
        panic!("client output: {out}");
    };
    let sql = format!(
        "SELECT local_port, req_path FROM http_events \
         WHERE remote_port = {port} AND trace_role = 'client' ORDER BY req_path"
    );
    let rows = agent.wait_rows(&sql, 2, WAIT);
    let got: Vec<(String, &str)> = rows.iter().map(|r| (r[0].to_string(), s(&r[1]))).collect();
    assert_eq!(
        got,
        vec![
            (second_port.to_string(), "/after"),
            (first_port.to_string(), "/before")
        ]
    );
    // The first connection's bytes end with its one request (the client
    // exits, which closes it for the agent): the pipe write is not in them.
    let request = "GET /before HTTP/1.1\r\nHost: localhost\r\n\r\n".len();
    let sql = format!(
        "SELECT bytes_sent FROM conn_stats WHERE local_port = {first_port} \
         AND remote_port = {port} AND conn_close_ns > 0"
    );
    let rows = agent.wait_rows(&sql, 1, WAIT);
    assert_eq!(i(&rows[0][0]), request as i64, "{rows:?}");
}

#[test]
fn every_request_of_a_keepalive_burst_is_accounted_for() {
    if !ebpf_available() {
        return;
    }
    let agent = Agent::start("burst");
    let port = free_port();
    let _nginx = start_nginx("burst", port);
    let sent = 1000;
    assert_eq!(
        python_client(&["keepalive", &port.to_string(), &sent.to_string(), "/hello"]).trim(),
        "1000"
    );
    let sql = format!(
        "SELECT trace_role, count(*) FROM http_events WHERE local_port = {port} OR remote_port = {port} \
         GROUP BY trace_role ORDER BY trace_role"
    );
    let got = agent.wait_grouped_counts(&sql, 2 * sent, WAIT);
    let lost = agent.counter("kernel_ring_full_events") + agent.counter("http_messages_lost");
    assert_eq!(
        got,
        vec![("client".to_string(), sent), ("server".to_string(), sent)],
        "losses counted: {lost}; stats: {:?}",
        agent.capture_stats()
    );
}

#[test]
fn capture_stats_counts_events_and_shutdown_logs_them() {
    if !ebpf_available() {
        return;
    }
    let agent = Agent::start("stats");
    let port = free_port();
    let _nginx = start_nginx("stats", port);
    curl(&["-o", "/dev/null", &format!("http://127.0.0.1:{port}/hello")]);
    agent.wait_rows(
        &format!("SELECT 1 FROM http_events WHERE local_port = {port}"),
        1,
        WAIT,
    );
    let stats = agent.capture_stats();
    let get = |name: &str| stats.iter().find(|(n, _)| n == name).map(|(_, v)| *v);
    assert!(get("events_data").unwrap_or(0) >= 4, "{stats:?}");
    assert!(get("events_open").unwrap_or(0) >= 2, "{stats:?}");
    assert!(get("http_rows").unwrap_or(0) >= 2, "{stats:?}");
    // The default object's 32 tracepoints but the five enters of the calls
    // that receive, which only the compat object has.
    assert_eq!(get("probes_attached"), Some(27), "{stats:?}");
    for name in [
        "kernel_ring_full_events",
        "stream_gaps",
        "http_parse_failures",
        "events_malformed",
    ] {
        assert!(get(name).is_some(), "counter {name} missing: {stats:?}");
    }
    let log = agent.stop();
    assert!(log.contains("capture statistics at shutdown"), "{log}");
    assert!(log.contains("events_data"), "{log}");
}

#[test]
fn cli_query_and_tables_against_the_agent() {
    if !ebpf_available() {
        return;
    }
    let agent = Agent::start("cli");
    let port = free_port();
    let _nginx = start_nginx("cli", port);
    curl(&["-o", "/dev/null", &format!("http://127.0.0.1:{port}/hello")]);
    let sql = format!(
        "SELECT req_method, req_path, resp_status FROM http_events WHERE trace_role = 'server' AND local_port = {port}"
    );
    agent.wait_rows(&sql, 1, WAIT);
    let sonde = sonde_e2e::sonde_binary();

    let table = run(Command::new(&sonde).args(["query", &sql, "--server", &agent.url]));
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("req_method") && l.contains("resp_status")),
        "{table}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("GET") && l.contains("/hello") && l.contains("200")),
        "{table}"
    );

    let csv =
        run(Command::new(&sonde).args(["query", &sql, "--server", &agent.url, "--format", "csv"]));
    assert_eq!(csv, "req_method,req_path,resp_status\nGET,/hello,200\n");

    let json =
        run(Command::new(&sonde).args(["query", &sql, "--server", &agent.url, "--format", "json"]));
    let value: Value = serde_json::from_str(&json).expect("json output");
    assert_eq!(value["rows"], serde_json::json!([["GET", "/hello", 200]]));

    let tables = run(Command::new(&sonde).args(["tables", "--server", &agent.url]));
    assert!(tables.lines().any(|l| l == "http_events"), "{tables}");
    assert!(tables.contains("resp_status"), "{tables}");
    assert!(tables.lines().any(|l| l == "capture_stats"), "{tables}");

    // Bad SQL and writes: a clear error and a non-zero exit.
    let out = Command::new(&sonde)
        .args(["query", "SELEC nope", "--server", &agent.url])
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("400"),
        "{out:?}"
    );
    let (status, body) = agent.query_raw("DROP TABLE http_events", "json");
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("read-only"), "{body}");

    // Agent unreachable: a clear error and a non-zero exit.
    let out = Command::new(&sonde)
        .args([
            "query",
            "SELECT 1",
            "--server",
            &format!("http://127.0.0.1:{}", free_port()),
        ])
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot reach the Sonde agent"),
        "{out:?}"
    );
}

#[test]
fn api_token_is_required_when_configured() {
    if !ebpf_available() {
        return;
    }
    let dir = sonde_e2e::scratch_dir("token");
    let token = "e2e-token-0123456789abcdef";
    std::fs::write(dir.join("token"), format!("{token}\n")).expect("token file");
    let token_file = dir.join("token").display().to_string();
    let agent = Agent::start_with("token", &["--auth-token-file", &token_file]);

    let (status, body) = agent.query_raw("SELECT 1", "json");
    assert_eq!(status, 401, "{body}");
    let sonde = sonde_e2e::sonde_binary();
    let out = Command::new(&sonde)
        .args([
            "query",
            "SELECT 41 + 1 AS answer",
            "--server",
            &agent.url,
            "--format",
            "csv",
        ])
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("401"),
        "{out:?}"
    );
    let csv = run(Command::new(&sonde).args([
        "query",
        "SELECT 41 + 1 AS answer",
        "--server",
        &agent.url,
        "--format",
        "csv",
        "--token",
        token,
    ]));
    assert_eq!(csv, "answer\n42\n");

    // Listening beyond loopback without a token is refused before anything is loaded.
    let out = Command::new(&sonde)
        .args(["agent", "--listen", "0.0.0.0:0"])
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--auth-token-file"),
        "{out:?}"
    );
}
