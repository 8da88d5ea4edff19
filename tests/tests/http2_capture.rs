//! End to end: HTTP/2 and gRPC with the real agent and real stacks — nginx
//! (h2c with prior knowledge, h2 over TLS with ALPN), curl, nghttp, h2load,
//! a python-hyper h2 server (Upgrade: h2c) and client (a reset mid-response,
//! a connection opened before the agent), grpcio and @grpc/grpc-js servers
//! and clients. Both sides of every connection are on this host: each
//! stream is a row seen by the client and a row seen by the server.
//!
//! Run as root, one test at a time (each starts its own agent):
//! `cargo test -p sonde-e2e --test http2_capture -- --test-threads=1`

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use sonde_e2e::{
    Agent, Server, curl, ebpf_available, fixture, free_port, nginx_with_server, run, scratch_dir,
    self_signed_cert,
};

const WAIT: Duration = Duration::from_secs(30);

fn s(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

fn i(v: &Value) -> i64 {
    v.as_i64().unwrap_or(i64::MIN)
}

/// The body of /big.bin: 100 000 bytes.
const BIG: usize = 100_000;

/// nginx speaking HTTP/2 on `port` (`listen` parameters `listen`: `http2`
/// for h2c with prior knowledge, `ssl http2` with a certificate for h2).
fn nginx_h2(name: &str, port: u16, listen: &str, tls: Option<(&Path, &Path)>) -> (Server, PathBuf) {
    let dir = scratch_dir(&format!("nginx-h2-{name}"));
    std::fs::create_dir_all(dir.join("html")).expect("html dir");
    std::fs::write(dir.join("html/big.bin"), vec![b'b'; BIG]).expect("big.bin");
    let tls = tls.map_or(String::new(), |(cert, key)| {
        format!(
            "ssl_certificate {}; ssl_certificate_key {}; ssl_protocols TLSv1.2 TLSv1.3;",
            cert.display(),
            key.display()
        )
    });
    // `return` answers without reading a request body, and nginx then
    // resets the stream (RST_STREAM NO_ERROR) with the body unread or half
    // read: the server-side body size would depend on timing (and curl
    // 7.88 may report the reset as an error). Proxying /created to a plain
    // HTTP/1 listener of the same server reads the whole body first.
    let backend = free_port();
    let server = format!(
        r#"listen 127.0.0.1:{port} {listen};
        listen 127.0.0.1:{backend};
        {tls}
        root {dir}/html;
        location = /hello {{ default_type text/plain; return 200 "hello over h2\n"; }}
        location = /created {{ proxy_pass http://127.0.0.1:{backend}/created-backend; }}
        location = /created-backend {{ default_type application/json; return 201 '{{"id":2}}'; }}
        location = /missing {{ return 404; }}
        location /big.bin {{ }}"#,
        dir = dir.display()
    );
    // nginx's workers must be able to read the content.
    run(Command::new("chmod").args(["-R", "a+rX"]).arg(&dir));
    (nginx_with_server(&dir, port, &server), dir)
}

/// (trace_role, comm, major_version, method, path, status, req_body_size,
/// resp_body_size) of the rows on `port`, ordered by path, role, time.
fn rows_on(agent: &Agent, port: u16, expected: usize) -> Vec<Vec<Value>> {
    agent.wait_rows(
        &format!(
            "SELECT trace_role, comm, major_version, req_method, req_path, resp_status, \
             req_body_size, resp_body_size, latency, req_headers, resp_body, resp_message, \
             grpc_status, grpc_message, encrypted \
             FROM http_events WHERE local_port = {port} OR remote_port = {port} \
             ORDER BY req_path, trace_role, time_"
        ),
        expected,
        WAIT,
    )
}

type Summary = (String, String, i64, String, String, i64, i64, i64);

fn summary(r: &[Value]) -> Summary {
    (
        s(&r[0]),
        s(&r[1]),
        i(&r[2]),
        s(&r[3]),
        s(&r[4]),
        i(&r[5]),
        i(&r[6]),
        i(&r[7]),
    )
}

/// The same stream seen by the client (`client_comm`) and the server.
fn both(
    client_comm: &str,
    server_comm: &str,
    method: &str,
    path: &str,
    status: i64,
    req: i64,
    resp: i64,
) -> [Summary; 2] {
    let one = |role: &str, comm: &str| {
        (
            role.to_string(),
            comm.to_string(),
            2,
            method.to_string(),
            path.to_string(),
            status,
            req,
            resp,
        )
    };
    [one("client", client_comm), one("server", server_comm)]
}

#[test]
fn nginx_h2c_with_curl_nghttp_and_h2load() {
    if !ebpf_available() {
        return;
    }
    let agent = Agent::start("h2c-nginx");
    let port = free_port();
    let (_nginx, dir) = nginx_h2("h2c", port, "http2", None);
    let base = format!("http://127.0.0.1:{port}");
    let h2 = "--http2-prior-knowledge";

    assert_eq!(
        curl(&[
            h2,
            "-H",
            "authorization: Bearer s3cret",
            &format!("{base}/hello")
        ]),
        "hello over h2\n"
    );
    curl(&[
        h2,
        "-o",
        "/dev/null",
        "-d",
        "name=sonde",
        &format!("{base}/created"),
    ]);
    curl(&[h2, "-o", "/dev/null", &format!("{base}/missing")]);
    // 100 000 bytes sent with sendfile: the kernel copies frame heads, the
    // body is counted, not copied.
    curl(&[h2, "-o", "/dev/null", &format!("{base}/big.bin")]);

    let rows = rows_on(&agent, port, 8);
    let got: Vec<Summary> = rows.iter().map(|r| summary(r)).collect();
    let want: Vec<Summary> = [
        both("curl", "nginx", "GET", "/big.bin", 200, 0, BIG as i64),
        both("curl", "nginx", "POST", "/created", 201, 10, 8),
        both("curl", "nginx", "GET", "/hello", 200, 0, 14),
        both("curl", "nginx", "GET", "/missing", 404, 0, 153),
    ]
    .concat();
    assert_eq!(got, want, "{rows:#?}\n{:?}", agent.capture_stats());
    let hello = &rows[4];
    assert_eq!(s(&hello[10]), "hello over h2\n");
    let headers: Value = serde_json::from_str(&s(&hello[9])).expect("headers json");
    assert_eq!(headers[":authority"], format!("127.0.0.1:{port}"));
    assert_eq!(headers["authorization"], "<redacted>");
    assert_eq!(headers["user-agent"], "curl/7.88.1");
    for r in &rows {
        assert!(i(&r[8]) > 0, "latency: {r:?}");
        assert_eq!(
            (s(&r[11]), r[12].clone(), r[14].clone()),
            (String::new(), Value::Null, Value::from(false))
        );
    }
    let created = &rows[2];
    assert_eq!(s(&created[10]), r#"{"id":2}"#);

    // Large and repeated headers on one connection: nghttp sends the same
    // 3000-byte field and a repeated one with each of three requests, the
    // second and third times from the dynamic table.
    let trace = "t".repeat(3000);
    run(Command::new("nghttp").args([
        "-n",
        "-H",
        &format!("x-trace: {trace}"),
        "-H",
        "x-repeat: same-value",
        &format!("{base}/hello?a"),
        &format!("{base}/hello?b"),
        &format!("{base}/hello?c"),
    ]));
    let repeated = agent.wait_rows(
        &format!(
            "SELECT trace_role, req_path, resp_status, req_headers FROM http_events \
             WHERE (local_port = {port} OR remote_port = {port}) AND req_path LIKE '/hello?%' \
             ORDER BY req_path, trace_role"
        ),
        6,
        WAIT,
    );
    let paths: Vec<(String, String, i64)> = repeated
        .iter()
        .map(|r| (s(&r[0]), s(&r[1]), i(&r[2])))
        .collect();
    let mut want = Vec::new();
    for path in ["/hello?a", "/hello?b", "/hello?c"] {
        for role in ["client", "server"] {
            want.push((role.to_string(), path.to_string(), 200));
        }
    }
    assert_eq!(paths, want);
    for r in &repeated {
        let headers: Value = serde_json::from_str(&s(&r[3])).expect("headers json");
        assert_eq!(headers["x-trace"], trace.as_str(), "{r:?}");
        assert_eq!(headers["x-repeat"], "same-value", "{r:?}");
        assert!(headers.get("<undecoded>").is_none(), "{r:?}");
    }

    // Many concurrent streams: 200 requests over 2 connections, 20 streams
    // in flight on each.
    let out = run(Command::new("h2load").args([
        "-n",
        "200",
        "-c",
        "2",
        "-m",
        "20",
        &format!("{base}/hello?load"),
    ]));
    assert!(out.contains("200 succeeded"), "{out}");
    let counts = agent.wait_grouped_counts(
        &format!(
            "SELECT trace_role, count(*) FROM http_events WHERE req_path = '/hello?load' \
             AND resp_status = 200 AND resp_body_size = 14 AND major_version = 2 \
             AND (local_port = {port} OR remote_port = {port}) GROUP BY trace_role ORDER BY trace_role"
        ),
        400,
        WAIT,
    );
    assert_eq!(
        counts,
        [("client".to_string(), 200), ("server".to_string(), 200)],
        "{:?}",
        agent.capture_stats()
    );
    let conns = agent.wait_rows(
        &format!(
            "SELECT DISTINCT protocol FROM conn_stats WHERE local_port = {port} \
             AND conn_close_ns > 0 AND bytes_recv > 0"
        ),
        1,
        WAIT,
    );
    assert_eq!(conns, vec![vec![Value::from("http2")]]);
    for counter in [
        "http2_parse_failures",
        "http2_resyncs",
        "http2_hpack_errors",
    ] {
        assert_eq!(agent.counter(counter), 0, "{counter}");
    }
    drop(dir);
}

#[test]
fn nginx_h2_over_tls_through_the_openssl_probes() {
    if !ebpf_available() {
        return;
    }
    let agent = Agent::start("h2-tls");
    let dir = scratch_dir("h2-tls-cert");
    let (cert, key) = self_signed_cert(&dir);
    let port = free_port();
    let (_nginx, _) = nginx_h2("tls", port, "ssl http2", Some((&cert, &key)));
    let base = format!("https://127.0.0.1:{port}");
    let cacert = cert.display().to_string();

    // ALPN picks h2; both requests on one connection.
    let body = curl(&[
        "--http2",
        "--cacert",
        &cacert,
        &format!("{base}/hello"),
        "--next",
        "--http2",
        "--cacert",
        &cacert,
        "-o",
        "/dev/null",
        "-d",
        "name=sonde",
        &format!("{base}/created"),
    ]);
    assert_eq!(body, "hello over h2\n");

    let rows = rows_on(&agent, port, 4);
    let got: Vec<Summary> = rows.iter().map(|r| summary(r)).collect();
    let want: Vec<Summary> = [
        both("curl", "nginx", "POST", "/created", 201, 10, 8),
        both("curl", "nginx", "GET", "/hello", 200, 0, 14),
    ]
    .concat();
    assert_eq!(got, want, "{rows:#?}\n{:?}", agent.capture_stats());
    for r in &rows {
        assert_eq!(r[14], Value::from(true), "encrypted: {r:?}");
    }
    assert_eq!(s(&rows[2][10]), "hello over h2\n");
    let conns = agent.wait_rows(
        &format!(
            "SELECT DISTINCT protocol, encrypted FROM conn_stats \
             WHERE (local_port = {port} OR remote_port = {port}) AND bytes_sent > 0"
        ),
        1,
        WAIT,
    );
    assert_eq!(conns, vec![vec![Value::from("http2"), Value::from(true)]]);
}

#[test]
fn curl_upgrades_http1_to_h2c() {
    if !ebpf_available() {
        return;
    }
    let agent = Agent::start("h2c-upgrade");
    let port = free_port();
    let mut cmd = Command::new("python3");
    cmd.arg(fixture("h2_server.py")).arg(port.to_string());
    let _server = Server::spawn(cmd, port);
    let base = format!("http://127.0.0.1:{port}");

    // `--http2` on http:// asks for `Upgrade: h2c`; the server switches.
    let out = curl(&["--http2", &format!("{base}/hello")]);
    assert_eq!(out, "hello over h2c\n");
    curl(&["--http2", "-o", "/dev/null", &format!("{base}/nope")]);

    let rows = rows_on(&agent, port, 4);
    let got: Vec<Summary> = rows.iter().map(|r| summary(r)).collect();
    let want: Vec<Summary> = [
        both("curl", "python3", "GET", "/hello", 200, 0, 15),
        both("curl", "python3", "GET", "/nope", 404, 0, 0),
    ]
    .concat();
    assert_eq!(got, want, "{rows:#?}\n{:?}", agent.capture_stats());
    let headers: Value = serde_json::from_str(&s(&rows[0][9])).expect("headers json");
    assert_eq!(headers["upgrade"], "h2c");
    assert_eq!(headers[":authority"], format!("127.0.0.1:{port}"));
    assert_eq!(s(&rows[0][10]), "hello over h2c\n");
    // No row for the 101: its request is the HTTP/2 stream's.
    let http1 = agent.query(&format!(
        "SELECT count(*) FROM http_events WHERE major_version = 1 \
         AND (local_port = {port} OR remote_port = {port})"
    ));
    assert_eq!(i(&http1[0][0]), 0);
}

/// Path of a tool of the HTTP/2 recordings (shared with the parser's tests).
fn recording_tool(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../protocols/tests/tools")
        .join(name)
}

/// The gRPC rows on `port`: (role, path, grpc_status, grpc_message,
/// resp_message, req_body_size, resp_body_size), by path, role.
fn grpc_rows(agent: &Agent, port: u16, expected: usize) -> Vec<Vec<Value>> {
    agent.wait_rows(
        &format!(
            "SELECT trace_role, req_path, grpc_status, grpc_message, resp_message, \
             req_body_size, resp_body_size, major_version, req_method, resp_status, content_type, comm \
             FROM http_events WHERE (local_port = {port} OR remote_port = {port}) \
             ORDER BY req_path, trace_role"
        ),
        expected,
        WAIT,
    )
}

type Call = (String, String, Option<i64>, Option<String>, String);

fn call(r: &[Value]) -> Call {
    (
        s(&r[0]),
        s(&r[1]),
        r[2].as_i64(),
        r[3].as_str().map(str::to_string),
        s(&r[4]),
    )
}

fn calls(path: &str, status: i64, message: &str, end: &str) -> [Call; 2] {
    let one = |role: &str| {
        (
            role.to_string(),
            path.to_string(),
            Some(status),
            (!end.starts_with("RST")).then(|| message.to_string()),
            end.to_string(),
        )
    };
    [one("client"), one("server")]
}

#[test]
fn grpcio_unary_streaming_error_and_cancel() {
    if !ebpf_available() {
        return;
    }
    let agent = Agent::start("grpcio");
    let port = free_port();
    let mut cmd = Command::new("python3");
    cmd.arg(recording_tool("grpc_demo.py"))
        .args(["server", &port.to_string()]);
    let _server = Server::spawn(cmd, port);
    run(Command::new("python3")
        .arg(recording_tool("grpc_demo.py"))
        .args(["client", &port.to_string()]));

    let rows = grpc_rows(&agent, port, 10);
    let got: Vec<Call> = rows.iter().map(|r| call(r)).collect();
    let want: Vec<Call> = [
        calls("/demo.Echo/ClientStream", 0, "", ""),
        // Cancelled by the client after three messages: CANCELLED.
        calls("/demo.Echo/Endless", 1, "", "RST_STREAM CANCEL by client"),
        calls("/demo.Echo/Fail", 5, "no such item: café 100%", ""),
        calls("/demo.Echo/ServerStream", 0, "", ""),
        calls("/demo.Echo/Unary", 0, "", ""),
    ]
    .concat();
    assert_eq!(got, want, "{rows:#?}\n{:?}", agent.capture_stats());
    // Exact body sizes: 5-byte message prefixes plus the messages.
    let sizes: Vec<(String, i64, i64)> = rows
        .iter()
        .filter(|r| s(&r[1]) != "/demo.Echo/Endless")
        .map(|r| (s(&r[1]), i(&r[5]), i(&r[6])))
        .collect();
    let mut want = Vec::new();
    for (path, req, resp) in [
        ("/demo.Echo/ClientStream", 615, 9),
        ("/demo.Echo/Fail", 12, 0),
        ("/demo.Echo/ServerStream", 6, 85),
        ("/demo.Echo/Unary", 15, 15),
    ] {
        want.push((path.to_string(), req, resp));
        want.push((path.to_string(), req, resp));
    }
    assert_eq!(sizes, want);
    for r in &rows {
        assert_eq!(
            (i(&r[7]), s(&r[8]), i(&r[9])),
            (2, "POST".into(), 200),
            "{r:?}"
        );
        assert_eq!(s(&r[10]), "application/grpc", "{r:?}");
        assert!(s(&r[11]).starts_with("python"), "{r:?}");
    }

    // The dashboard's endpoints panel, with the SQL it runs: gRPC methods
    // are endpoints, and their errors are the statuses other than OK.
    let endpoints = agent.query(&dashboard_sql(
        "endpoints(protocolById('http'), WINDOWS['5m'], null)",
    ));
    // (The test's own queries to the agent are there too.)
    let mut got: Vec<(String, String, i64, i64)> = endpoints
        .iter()
        .filter(|r| s(&r[0]).starts_with("python"))
        .map(|r| (s(&r[1]), s(&r[2]), i(&r[3]), i(&r[4])))
        .collect();
    got.sort();
    let mut want = Vec::new();
    for role in ["client", "server"] {
        for (method, errors) in [
            ("ClientStream", 0),
            ("Endless", 1),
            ("Fail", 1),
            ("ServerStream", 0),
            ("Unary", 0),
        ] {
            want.push((
                role.to_string(),
                format!("gRPC demo.Echo/{method}"),
                1,
                errors,
            ));
        }
    }
    assert_eq!(got, want, "{endpoints:?}");
}

/// A query of the dashboard, built by its own code (web/dashboard/js/sql.js)
/// from `call`, a JavaScript expression over sql.js and protocols.js.
fn dashboard_sql(call: &str) -> String {
    let js = Path::new(env!("CARGO_MANIFEST_DIR")).join("../web/dashboard/js");
    let script = format!(
        "import {{ endpoints, WINDOWS }} from '{sql}';\n\
         import {{ protocolById }} from '{protocols}';\n\
         process.stdout.write({call});",
        sql = js.join("sql.js").display(),
        protocols = js.join("protocols.js").display(),
    );
    run(Command::new("node").args(["--input-type=module", "-e", &script]))
}

#[test]
fn grpc_js_is_a_second_implementation() {
    if !ebpf_available() {
        return;
    }
    let agent = Agent::start("grpc-js");
    let port = free_port();
    let demo = recording_tool("grpc_js/demo.js");
    let mut cmd = Command::new("node");
    cmd.arg(&demo).args(["server", &port.to_string()]);
    let _server = Server::spawn(cmd, port);
    run(Command::new("node")
        .arg(&demo)
        .args(["client", &port.to_string()]));

    let rows = grpc_rows(&agent, port, 8);
    let got: Vec<Call> = rows.iter().map(|r| call(r)).collect();
    let want: Vec<Call> = [
        calls("/demo.Echo/ClientStream", 0, "OK", ""),
        calls("/demo.Echo/Fail", 7, "denied: 50% off", ""),
        calls("/demo.Echo/ServerStream", 0, "OK", ""),
        calls("/demo.Echo/Unary", 0, "OK", ""),
    ]
    .concat();
    assert_eq!(got, want, "{rows:#?}\n{:?}", agent.capture_stats());
    let sizes: Vec<(i64, i64)> = rows.iter().map(|r| (i(&r[5]), i(&r[6]))).collect();
    assert_eq!(
        sizes,
        [
            (710, 9),
            (710, 9),
            (6, 0),
            (6, 0),
            (6, 106),
            (6, 106),
            (18, 18),
            (18, 18)
        ]
    );
    for r in &rows {
        assert_eq!(s(&r[10]), "application/grpc+proto", "{r:?}");
        assert_eq!(s(&r[11]), "node", "{r:?}");
    }
}

#[test]
fn stream_reset_mid_response() {
    if !ebpf_available() {
        return;
    }
    let agent = Agent::start("h2-reset");
    let port = free_port();
    let (_nginx, _) = nginx_h2("reset", port, "http2", None);
    let out = run(Command::new("python3")
        .arg(fixture("h2_client.py"))
        .args(["reset", &port.to_string()]));
    assert!(out.starts_with("reset "), "{out}");

    let rows = rows_on(&agent, port, 4);
    let got: Vec<(String, String, i64, String)> = rows
        .iter()
        .map(|r| (s(&r[0]), s(&r[4]), i(&r[5]), s(&r[11])))
        .collect();
    let reset = "RST_STREAM CANCEL by client".to_string();
    assert_eq!(
        got,
        [
            ("client".into(), "/big.bin".into(), 200, reset.clone()),
            ("server".into(), "/big.bin".into(), 200, reset),
            ("client".into(), "/hello".into(), 200, String::new()),
            ("server".into(), "/hello".into(), 200, String::new()),
        ],
        "{rows:#?}"
    );
    // The reset response is shorter than the file. Each side counts the
    // DATA it saw before the reset went its way: the client what it had
    // read when it reset, nginx what it had sent when the reset reached it
    // (at most the initial flow-control window).
    let big = (i(&rows[0][7]), i(&rows[1][7]));
    assert!(big.0 > 0 && big.0 <= big.1 && big.1 <= 65_535, "{big:?}");
    assert_eq!((i(&rows[2][7]), i(&rows[3][7])), (14, 14));
    assert!(agent.counter("http2_streams_reset") >= 2);
}

#[test]
fn connection_opened_before_the_agent() {
    if !ebpf_available() {
        return;
    }
    let port = free_port();
    let (_nginx, _) = nginx_h2("held", port, "http2", None);
    let mut client = Command::new("python3")
        .arg(fixture("h2_client.py"))
        .args(["held", &port.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("h2_client.py");
    let mut lines = BufReader::new(client.stdout.take().expect("stdout")).lines();
    assert_eq!(lines.next().and_then(Result::ok).as_deref(), Some("ready"));

    // The connection and both header tables exist before the agent starts.
    let agent = Agent::start("h2-held");
    let mut stdin = client.stdin.take().expect("stdin");
    writeln!(stdin, "go").expect("signal");
    assert_eq!(lines.next().and_then(Result::ok).as_deref(), Some("done"));
    assert!(client.wait().expect("wait").success());

    let rows = rows_on(&agent, port, 6);
    let got: Vec<Summary> = rows.iter().map(|r| summary(r)).collect();
    let want: Vec<Summary> = [
        both("python3", "nginx", "GET", "/hello?n=1", 200, 0, 14),
        both("python3", "nginx", "GET", "/hello?n=2", 200, 0, 14),
        both("python3", "nginx", "GET", "/hello?n=3", 200, 0, 14),
    ]
    .concat();
    assert_eq!(got, want, "{rows:#?}\n{:?}", agent.capture_stats());
    // The fields the client had indexed before the join cannot be read:
    // they are counted and marked, never guessed.
    for r in &rows {
        let headers: Value = serde_json::from_str(&s(&r[9])).expect("headers json");
        assert!(headers.get("x-held").is_none(), "{r:?}");
        assert!(
            headers["<undecoded>"].as_str().is_some_and(|n| n != "0"),
            "{r:?}"
        );
    }
    assert!(agent.counter("http2_hpack_unknown_fields") >= 6);
}
