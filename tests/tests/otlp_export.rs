//! End to end: spans and RED metrics of real captured traffic, exported by
//! the real agent over OTLP (gRPC and HTTP/protobuf) to a real receiver that
//! decodes them with the official OpenTelemetry protobuf definitions
//! (tests/fixtures/otlp_receiver.py); and a backend that never answers must
//! not stall capture.

use std::collections::HashMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use sonde_e2e::{Agent, Server, curl, ebpf_available, fixture, free_port, run, scratch_dir};

const WAIT: Duration = Duration::from_secs(30);
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_ID: &str = "00f067aa0ba902b7";

struct Receiver {
    _server: Server,
    out: PathBuf,
    grpc_port: u16,
    http_port: u16,
}

impl Receiver {
    fn start(name: &str) -> Receiver {
        Self::start_with_tls(name, None)
    }

    /// With `tls` (certificate, key), both ports speak TLS only.
    fn start_with_tls(name: &str, tls: Option<(&Path, &Path)>) -> Receiver {
        let out = scratch_dir(&format!("otlp-{name}")).join("received.jsonl");
        let grpc_port = free_port();
        let http_port = free_port();
        let mut cmd = Command::new("python3");
        cmd.arg(fixture("otlp_receiver.py"))
            .arg(&out)
            .arg(grpc_port.to_string())
            .arg(http_port.to_string());
        if let Some((cert, key)) = tls {
            cmd.arg(cert).arg(key);
        }
        // The HTTP port opens after the gRPC one: both are up when it accepts.
        let server = Server::spawn(cmd, http_port);
        Receiver {
            _server: server,
            out,
            grpc_port,
            http_port,
        }
    }

    /// An agent exporting to this receiver over `protocol`, metrics every second.
    fn agent(&self, name: &str, protocol: &str, extra: &[&str]) -> Agent {
        let port = if protocol == "grpc" {
            self.grpc_port
        } else {
            self.http_port
        };
        let endpoint = format!("http://127.0.0.1:{port}");
        let mut args = vec![
            "--otlp-endpoint",
            &endpoint,
            "--otlp-protocol",
            protocol,
            "--otlp-metrics-interval-ms",
            "1000",
        ];
        args.extend_from_slice(extra);
        Agent::start_with(name, &args)
    }

    fn requests(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    fn spans(&self) -> Vec<Span> {
        let mut spans = Vec::new();
        for request in self.requests() {
            if request["signal"] != "traces" {
                continue;
            }
            let transport = request["transport"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            for rs in request["body"]["resourceSpans"]
                .as_array()
                .into_iter()
                .flatten()
            {
                let resource = attributes(&rs["resource"]["attributes"]);
                for ss in rs["scopeSpans"].as_array().into_iter().flatten() {
                    for span in ss["spans"].as_array().into_iter().flatten() {
                        spans.push(Span {
                            transport: transport.clone(),
                            resource: resource.clone(),
                            name: str_of(&span["name"]),
                            kind: str_of(&span["kind"]),
                            trace_id: str_of(&span["traceId"]),
                            span_id: str_of(&span["spanId"]),
                            parent_id: str_of(&span["parentSpanId"]),
                            start: num(&span["startTimeUnixNano"]),
                            end: num(&span["endTimeUnixNano"]),
                            attributes: attributes(&span["attributes"]),
                            status: str_of(&span["status"]["code"]),
                        });
                    }
                }
            }
        }
        spans
    }

    /// Polls until `pick` finds `count` spans (then waits a little longer
    /// so that spans which should not be there would show up).
    fn wait_spans(&self, count: usize, pick: impl Fn(&Span) -> bool) -> Vec<Span> {
        let deadline = Instant::now() + WAIT;
        loop {
            let spans: Vec<Span> = self.spans().into_iter().filter(|s| pick(s)).collect();
            if spans.len() >= count {
                std::thread::sleep(Duration::from_secs(2));
                return self.spans().into_iter().filter(|s| pick(s)).collect();
            }
            assert!(
                Instant::now() < deadline,
                "expected {count} spans, got {}: {spans:#?}",
                spans.len()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Histogram data points of `metric` (latest export first) with their
    /// resource attributes.
    fn histogram_points(&self, metric: &str) -> Vec<(String, HashMap<String, Value>, Value)> {
        let mut points = Vec::new();
        for request in self.requests().iter().rev() {
            if request["signal"] != "metrics" {
                continue;
            }
            let transport = str_of(&request["transport"]);
            for rm in request["body"]["resourceMetrics"]
                .as_array()
                .into_iter()
                .flatten()
            {
                let resource = attributes(&rm["resource"]["attributes"]);
                for sm in rm["scopeMetrics"].as_array().into_iter().flatten() {
                    for m in sm["metrics"].as_array().into_iter().flatten() {
                        if m["name"] != metric {
                            continue;
                        }
                        assert_eq!(m["unit"], "s");
                        assert_eq!(
                            m["histogram"]["aggregationTemporality"],
                            "AGGREGATION_TEMPORALITY_CUMULATIVE"
                        );
                        for point in m["histogram"]["dataPoints"]
                            .as_array()
                            .into_iter()
                            .flatten()
                        {
                            let mut point = point.clone();
                            point["attrs"] = Value::Object(
                                attributes(&point["attributes"]).into_iter().collect(),
                            );
                            points.push((transport.clone(), resource.clone(), point));
                        }
                    }
                }
            }
        }
        points
    }

    /// Waits for the newest data point of `metric` matching `pick` to reach `count`.
    fn wait_point(
        &self,
        metric: &str,
        count: u64,
        pick: impl Fn(&HashMap<String, Value>, &Value) -> bool,
    ) -> (String, Value) {
        let deadline = Instant::now() + WAIT;
        loop {
            let found = self
                .histogram_points(metric)
                .into_iter()
                .find(|(_, resource, point)| pick(resource, point));
            if let Some((transport, _, point)) = &found
                && num(&point["count"]) == count
            {
                return (transport.clone(), point.clone());
            }
            assert!(
                Instant::now() < deadline,
                "no {metric} point with count {count}; newest match: {found:#?}"
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

#[derive(Debug, Clone)]
struct Span {
    transport: String,
    resource: HashMap<String, Value>,
    name: String,
    kind: String,
    trace_id: String,
    span_id: String,
    parent_id: String,
    start: u64,
    end: u64,
    attributes: HashMap<String, Value>,
    status: String,
}

impl Span {
    fn attr(&self, key: &str) -> Value {
        self.attributes.get(key).cloned().unwrap_or(Value::Null)
    }
}

fn str_of(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

/// OTLP JSON gives 64-bit integers as strings.
fn num(v: &Value) -> u64 {
    v.as_str()
        .and_then(|s| s.parse().ok())
        .or_else(|| v.as_u64())
        .unwrap_or(0)
}

/// `[{"key": k, "value": {"stringValue": ..}}]` → {k: value}; integers
/// become JSON numbers.
fn attributes(list: &Value) -> HashMap<String, Value> {
    let mut out = HashMap::new();
    for kv in list.as_array().into_iter().flatten() {
        let value = &kv["value"];
        let v = if let Some(s) = value.get("stringValue") {
            s.clone()
        } else if let Some(i) = value.get("intValue") {
            Value::from(num(i) as i64)
        } else if let Some(b) = value.get("boolValue") {
            b.clone()
        } else if let Some(a) = value.get("arrayValue") {
            a.clone()
        } else {
            value.clone()
        };
        out.insert(str_of(&kv["key"]), v);
    }
    out
}

fn python_server(port: u16) -> Server {
    sonde_e2e::servers::python_http_server(&format!("otlp-{port}"), port, "hello, otlp")
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// (trace_role, path) → (time_ ns, latency ns) of the http_events rows on `port`.
fn http_rows(agent: &Agent, port: u16, count: usize) -> HashMap<(String, String), (u64, u64)> {
    let rows = agent.wait_rows(
        &format!(
            "SELECT trace_role, req_path, CAST(time_ AS BIGINT), latency FROM http_events \
             WHERE local_port = {port} OR remote_port = {port}"
        ),
        count,
        WAIT,
    );
    assert_eq!(rows.len(), count, "{rows:?}");
    rows.iter()
        .map(|r| {
            (
                (str_of(&r[0]), str_of(&r[1])),
                (r[2].as_u64().unwrap(), r[3].as_u64().unwrap()),
            )
        })
        .collect()
}

#[test]
fn http_spans_and_metrics_over_grpc_join_the_callers_trace() {
    if !ebpf_available() {
        return;
    }
    let receiver = Receiver::start("grpc");
    let agent = receiver.agent(
        "otlp-grpc",
        "grpc",
        &[
            "--service-name",
            "python3=shop",
            "--otel-resource-attributes",
            "deployment.environment.name=e2e",
        ],
    );
    let port = free_port();
    let server = python_server(port);
    let url = format!("http://127.0.0.1:{port}");
    curl(&[
        "-H",
        &format!("traceparent: 00-{TRACE_ID}-{PARENT_ID}-01"),
        &format!("{url}/hello.txt"),
    ]);
    curl(&["-o", "/dev/null", &format!("{url}/users/42")]);

    let rows = http_rows(&agent, port, 4);
    let spans = receiver.wait_spans(4, |s| s.attr("server.port") == port);
    assert_eq!(spans.len(), 4, "{spans:#?}");
    let find = |kind: &str, path: &str| {
        spans
            .iter()
            .find(|s| s.kind == kind && s.attr("url.path") == path)
            .unwrap_or_else(|| panic!("no {kind} span for {path}: {spans:#?}"))
            .clone()
    };
    let host = host_name();
    for span in &spans {
        assert_eq!(span.transport, "grpc");
        assert_eq!(span.resource["host.name"], host.as_str());
        assert_eq!(span.resource["deployment.environment.name"], "e2e");
        assert_eq!(span.attr("http.request.method"), "GET");
        assert_eq!(span.attr("network.peer.address"), "127.0.0.1");
        assert_eq!(span.span_id.len(), 16);
        // Timings are the captured request's, to the nanosecond.
        let role = if span.kind == "SPAN_KIND_SERVER" {
            "server"
        } else {
            "client"
        };
        let (time, latency) = rows[&(role.to_string(), str_of(&span.attr("url.path")))];
        assert_eq!(span.end, time, "{span:#?}");
        assert_eq!(span.start, time - latency, "{span:#?}");
    }

    // The request carried a traceparent: both of Sonde's spans join that trace.
    let server_hello = find("SPAN_KIND_SERVER", "/hello.txt");
    assert_eq!(server_hello.name, "GET /hello.txt");
    assert_eq!(server_hello.trace_id, TRACE_ID);
    assert_eq!(server_hello.parent_id, PARENT_ID);
    assert_eq!(server_hello.attr("http.route"), "/hello.txt");
    assert_eq!(server_hello.attr("http.response.status_code"), 200);
    assert_eq!(server_hello.attr("client.address"), "127.0.0.1");
    assert_eq!(server_hello.status, "");
    assert_eq!(server_hello.resource["service.name"], "shop");
    assert_eq!(server_hello.resource["process.executable.name"], "python3");
    assert_eq!(
        server_hello.resource["process.pid"],
        i64::from(server.pid())
    );
    let client_hello = find("SPAN_KIND_CLIENT", "/hello.txt");
    assert_eq!(client_hello.trace_id, TRACE_ID);
    assert_eq!(client_hello.parent_id, PARENT_ID);
    assert_eq!(client_hello.resource["service.name"], "curl");
    assert_eq!(client_hello.attr("server.address"), "127.0.0.1");
    assert_ne!(client_hello.span_id, server_hello.span_id);

    // No trace context: a new trace; a 404 is an error for the client only.
    let server_404 = find("SPAN_KIND_SERVER", "/users/42");
    assert_eq!(server_404.name, "GET /users/{id}");
    assert_eq!(server_404.attr("http.route"), "/users/{id}");
    assert_eq!(server_404.attr("http.response.status_code"), 404);
    assert_eq!(server_404.status, "");
    assert_ne!(server_404.trace_id, TRACE_ID);
    assert_eq!(server_404.trace_id.len(), 32);
    assert_eq!(server_404.parent_id, "");
    let client_404 = find("SPAN_KIND_CLIENT", "/users/42");
    assert_eq!(client_404.status, "STATUS_CODE_ERROR");
    assert_eq!(client_404.attr("error.type"), "404");

    // RED metrics: the server histogram of the 404 route counts one request
    // whose duration is the captured latency.
    let (transport, point) = receiver.wait_point("http.server.request.duration", 1, |res, p| {
        res["service.name"] == "shop" && p["attrs"]["http.route"] == "/users/{id}"
    });
    assert_eq!(transport, "grpc");
    assert_eq!(point["attrs"]["http.response.status_code"], 404);
    assert_eq!(point["attrs"]["http.request.method"], "GET");
    let (_, latency) = rows[&("server".to_string(), "/users/42".to_string())];
    let sum = point["sum"].as_f64().unwrap();
    assert!(
        (sum - latency as f64 / 1e9).abs() < 1e-9,
        "sum {sum} latency {latency}"
    );
    let bounds: Vec<f64> = point["explicitBounds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b.as_f64().unwrap())
        .collect();
    assert_eq!(
        bounds,
        [
            0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0
        ]
    );
    let (_, client_point) = receiver.wait_point("http.client.request.duration", 1, |res, p| {
        res["service.name"] == "curl"
            && p["attrs"]["server.port"] == port
            && p["attrs"]["error.type"] == "404"
    });
    assert_eq!(client_point["attrs"]["http.response.status_code"], 404);
    agent.stop();
}

#[test]
fn http_protobuf_export_with_an_edge_filter_and_prometheus_metrics() {
    if !ebpf_available() {
        return;
    }
    let receiver = Receiver::start("http");
    let agent = receiver.agent(
        "otlp-http",
        "http/protobuf",
        &["--traces-filter", "http_events: resp_status >= 400"],
    );
    let port = free_port();
    let _server = python_server(port);
    let url = format!("http://127.0.0.1:{port}");
    for _ in 0..3 {
        curl(&[&format!("{url}/hello.txt")]);
    }
    for _ in 0..2 {
        curl(&["-o", "/dev/null", &format!("{url}/missing/7")]);
    }
    // Every row stays queryable locally ...
    http_rows(&agent, port, 10).len();
    // ... only the failures leave the node.
    let spans = receiver.wait_spans(4, |s| s.attr("server.port") == port);
    assert_eq!(spans.len(), 4, "{spans:#?}");
    for span in &spans {
        assert_eq!(span.transport, "http");
        assert_eq!(span.name, "GET /missing/{id}");
        assert_eq!(span.attr("http.response.status_code"), 404);
    }
    assert!(agent.counter("otlp_rows_filtered_out") >= 6);

    // Metrics are not filtered: all five server requests, over OTLP ...
    let (transport, _) = receiver.wait_point("http.server.request.duration", 2, |res, p| {
        res["service.name"] == "python3" && p["attrs"]["http.route"] == "/missing/{id}"
    });
    assert_eq!(transport, "http");
    receiver.wait_point("http.server.request.duration", 3, |res, p| {
        res["service.name"] == "python3" && p["attrs"]["http.route"] == "/hello.txt"
    });
    // ... and as Prometheus text on /metrics.
    let text = run(Command::new("curl").args(["-sf", &format!("{}/metrics", agent.url)]));
    let sample = |suffix: &str, route: &str| -> Vec<String> {
        text.lines()
            .filter(|l| {
                l.starts_with(&format!("http_server_request_duration_seconds_{suffix}{{"))
                    && l.contains("service_name=\"python3\"")
                    && l.contains(&format!("http_route=\"{route}\""))
            })
            .map(|l| l.rsplit(' ').next().unwrap_or_default().to_string())
            .collect()
    };
    assert_eq!(sample("count", "/missing/{id}"), ["2"], "{text}");
    assert_eq!(sample("count", "/hello.txt"), ["3"], "{text}");
    let inf: Vec<String> = text
        .lines()
        .filter(|l| {
            l.starts_with("http_server_request_duration_seconds_bucket{")
                && l.contains("http_route=\"/hello.txt\"")
                && l.contains("le=\"+Inf\"")
        })
        .map(|l| l.rsplit(' ').next().unwrap_or_default().to_string())
        .collect();
    assert_eq!(inf, ["3"], "{text}");
    assert!(text.contains("# TYPE http_server_request_duration_seconds histogram"));
    assert!(text.contains("sonde_otlp_spans_exported"), "{text}");
    agent.stop();
}

#[test]
fn redis_spans_and_database_metrics() {
    if !ebpf_available() {
        return;
    }
    let receiver = Receiver::start("redis");
    let agent = receiver.agent("otlp-redis", "grpc", &[]);
    let port = free_port();
    let _server = sonde_e2e::servers::redis_server(port, None);
    let cli = |args: &[&str]| {
        run(Command::new("redis-cli")
            .args(["-p", &port.to_string()])
            .args(args))
    };
    assert_eq!(cli(&["SET", "user:1", "secret-value"]).trim(), "OK");
    assert_eq!(cli(&["GET", "user:1"]).trim(), "secret-value");
    assert!(cli(&["INCR", "user:1"]).contains("not an integer"));

    let spans = receiver.wait_spans(6, |s| {
        s.attr("db.system.name") == "redis"
            && (s.attr("server.port") == port)
            && ["SET", "GET", "INCR"].contains(&s.name.as_str())
    });
    assert_eq!(spans.len(), 6, "{spans:#?}");
    for kind in ["SPAN_KIND_CLIENT", "SPAN_KIND_SERVER"] {
        let by_name = |name: &str| {
            spans
                .iter()
                .find(|s| s.kind == kind && s.name == name)
                .unwrap_or_else(|| panic!("no {kind} {name}: {spans:#?}"))
                .clone()
        };
        let set = by_name("SET");
        assert_eq!(set.attr("db.operation.name"), "SET");
        assert_eq!(set.attr("db.query.text"), "SET user:1 ?");
        assert_eq!(set.status, "");
        let incr = by_name("INCR");
        assert_eq!(incr.status, "STATUS_CODE_ERROR");
        assert_eq!(incr.attr("error.type"), "ERR");
        assert_eq!(incr.attr("db.response.status_code"), "ERR");
    }
    let client = spans.iter().find(|s| s.kind == "SPAN_KIND_CLIENT").unwrap();
    assert_eq!(client.resource["service.name"], "redis-cli");
    let server = spans.iter().find(|s| s.kind == "SPAN_KIND_SERVER").unwrap();
    assert_eq!(server.resource["service.name"], "redis-server");

    let (_, point) = receiver.wait_point("db.client.operation.duration", 1, |res, p| {
        res["service.name"] == "redis-cli"
            && p["attrs"]["db.operation.name"] == "INCR"
            && p["attrs"]["server.port"] == port
    });
    assert_eq!(point["attrs"]["db.system.name"], "redis");
    assert_eq!(point["attrs"]["error.type"], "ERR");
    let bounds = point["explicitBounds"].as_array().unwrap().len();
    assert_eq!(bounds, 9);
    agent.stop();
}

#[test]
fn a_backend_that_never_answers_does_not_stall_capture() {
    if !ebpf_available() {
        return;
    }
    // Accepts connections and never answers: every export times out.
    let blackhole = TcpListener::bind("127.0.0.1:0").unwrap();
    let blackhole_port = blackhole.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in blackhole.incoming().flatten() {
            held.push(conn);
        }
    });
    let port = free_port();
    let agent = Agent::start_with(
        "otlp-down",
        &[
            "--otlp-endpoint",
            &format!("http://127.0.0.1:{blackhole_port}"),
            "--otlp-protocol",
            "grpc",
            "--otlp-timeout-ms",
            "300",
            "--otlp-max-queued-spans",
            "50",
            "--traces-filter",
            &format!("local_port = {port} OR remote_port = {port}"),
        ],
    );
    let _server = python_server(port);
    let started = Instant::now();
    run(Command::new("python3")
        .arg(fixture("http_client.py"))
        .args(["keepalive", &port.to_string(), "200", "/hello.txt"]));
    // Capture goes on: every request on both sides.
    let counts = agent.wait_grouped_counts(
        &format!(
            "SELECT trace_role, count(*) FROM http_events \
             WHERE local_port = {port} OR remote_port = {port} GROUP BY trace_role ORDER BY trace_role"
        ),
        400,
        WAIT,
    );
    assert_eq!(
        counts,
        [("client".to_string(), 200), ("server".to_string(), 200)],
        "after {:?}",
        started.elapsed()
    );
    // Every span is accounted for: exported, dropped (counted) or still queued.
    let deadline = Instant::now() + WAIT;
    loop {
        let stats: HashMap<String, i64> = agent.capture_stats().into_iter().collect();
        let get = |name: &str| stats.get(name).copied().unwrap_or(-1);
        let created = get("otlp_spans_created");
        let accounted = get("otlp_spans_exported")
            + get("otlp_spans_dropped_queue_full")
            + get("otlp_spans_dropped_export_failed")
            + get("otlp_spans_queued");
        if created == 400 && accounted == 400 && get("otlp_span_export_failures") >= 1 {
            assert_eq!(get("otlp_spans_exported"), 0);
            assert!(get("otlp_spans_queued") <= 50 + 2048, "{stats:?}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "spans not accounted for: {stats:?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let log = agent.stop();
    assert!(log.contains("span export failed"), "{log}");
}

/// A private CA and a server certificate it signed for localhost/127.0.0.1;
/// returns (ca.pem, server.pem, server.key).
fn test_certificates(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let path = |name: &str| dir.join(name);
    let openssl = |args: &[&str]| {
        run(Command::new("openssl").args(args).current_dir(dir));
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=sonde-test-ca",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=localhost",
    ]);
    std::fs::write(
        path("server.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .expect("extensions file");
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "server.ext",
    ]);
    (path("ca.pem"), path("server.pem"), path("server.key"))
}

#[test]
fn https_endpoints_over_grpc_and_http_verify_the_collector_certificate() {
    if !ebpf_available() {
        return;
    }
    let dir = scratch_dir("otlp-tls-certs");
    let (ca, cert, key) = test_certificates(&dir);
    let receiver = Receiver::start_with_tls("tls", Some((&cert, &key)));
    let port = free_port();
    let _server = python_server(port);
    let ca_arg = ca.to_str().unwrap().to_string();
    let cases = [
        ("grpc", receiver.grpc_port, "/grpc-path"),
        ("http/protobuf", receiver.http_port, "/http-path"),
    ];
    for (protocol, receiver_port, path) in cases {
        let agent = Agent::start_with(
            "otlp-tls",
            &[
                "--otlp-endpoint",
                &format!("https://localhost:{receiver_port}"),
                "--otlp-protocol",
                protocol,
                "--otlp-certificate",
                &ca_arg,
                "--otlp-metrics-interval-ms",
                "1000",
            ],
        );
        curl(&["-o", "/dev/null", &format!("http://127.0.0.1:{port}{path}")]);
        let spans = receiver.wait_spans(2, |s| s.attr("url.path") == path);
        assert_eq!(spans.len(), 2, "{spans:#?}");
        let transport = if protocol == "grpc" { "grpc" } else { "http" };
        assert!(spans.iter().all(|s| s.transport == transport), "{spans:#?}");
        let (metrics_transport, _) =
            receiver.wait_point("http.server.request.duration", 1, |res, p| {
                res["service.name"] == "python3" && p["attrs"]["http.route"] == path
            });
        assert_eq!(metrics_transport, transport);
        agent.stop();
    }

    // Without the CA the collector's certificate is not trusted: nothing is
    // exported, and the failures are counted.
    let agent = Agent::start_with(
        "otlp-tls-untrusted",
        &[
            "--otlp-endpoint",
            &format!("https://localhost:{}", receiver.http_port),
            "--otlp-signals",
            "traces",
            "--otlp-timeout-ms",
            "1000",
            "--traces-filter",
            &format!("local_port = {port} OR remote_port = {port}"),
        ],
    );
    curl(&[
        "-o",
        "/dev/null",
        &format!("http://127.0.0.1:{port}/untrusted"),
    ]);
    let deadline = Instant::now() + WAIT;
    while agent.counter("otlp_span_export_failures") < 1 {
        assert!(
            Instant::now() < deadline,
            "no export failure counted:\n{}",
            agent.log()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    assert_eq!(agent.counter("otlp_spans_exported"), 0);
    assert!(
        receiver
            .spans()
            .iter()
            .all(|s| s.attr("url.path") != "/untrusted")
    );
    agent.stop();
}

#[test]
fn dns_spans_and_lookup_metrics() {
    if !ebpf_available() {
        return;
    }
    let receiver = Receiver::start("dns");
    let agent = receiver.agent("otlp-dns", "http/protobuf", &[]);
    let port = free_port();
    let _dnsmasq = sonde_e2e::servers::dnsmasq(port);
    let dig = |name: &str| sonde_e2e::servers::dig(port, &[name, "A"]);
    assert_eq!(dig("api.sonde.test").trim(), "10.9.8.7");
    assert_eq!(dig("nope.sonde.test").trim(), "");

    let spans = receiver.wait_spans(4, |s| s.attr("server.port") == port);
    assert_eq!(spans.len(), 4, "{spans:#?}");
    for span in &spans {
        assert_eq!(span.name, "DNS A");
        assert_eq!(span.attr("dns.question.type"), "A");
    }
    let find = |kind: &str, name: &str| {
        spans
            .iter()
            .find(|s| s.kind == kind && s.attr("dns.question.name") == name)
            .unwrap_or_else(|| panic!("no {kind} span for {name}: {spans:#?}"))
            .clone()
    };
    let ok = find("SPAN_KIND_CLIENT", "api.sonde.test");
    assert_eq!(ok.status, "");
    assert_eq!(ok.resource["service.name"], "dig");
    assert_eq!(
        ok.attr("dns.answers"),
        serde_json::json!({"values": [{"stringValue": "10.9.8.7"}]})
    );
    let nx = find("SPAN_KIND_CLIENT", "nope.sonde.test");
    assert_eq!(nx.status, "STATUS_CODE_ERROR");
    assert_eq!(nx.attr("error.type"), "NXDOMAIN");
    let server = find("SPAN_KIND_SERVER", "nope.sonde.test");
    assert_eq!(server.resource["service.name"], "dnsmasq");
    assert_eq!(server.attr("error.type"), "NXDOMAIN");

    let (_, point) = receiver.wait_point("dns.lookup.duration", 1, |res, p| {
        res["service.name"] == "dig" && p["attrs"]["dns.question.name"] == "nope.sonde.test"
    });
    assert_eq!(point["attrs"]["error.type"], "NXDOMAIN");
    agent.stop();
}

#[test]
fn mysql_spans_carry_sanitized_statements() {
    if !ebpf_available() {
        return;
    }
    let receiver = Receiver::start("mysql");
    let agent = receiver.agent("otlp-mysql", "grpc", &[]);
    let (_server, port) = sonde_e2e::mariadb::start("otlp");
    let ok = sonde_e2e::mariadb::client(port, "INSERT INTO items VALUES (7, 'secret-name')");
    assert!(ok.status.success(), "{ok:?}");
    let err = sonde_e2e::mariadb::client(port, "SELECT * FROM missing_table WHERE id = 42");
    assert!(!err.status.success());

    let pick = |s: &Span| {
        s.attr("db.system.name") == "mysql"
            && s.attr("server.port") == port
            && ["INSERT", "SELECT"].contains(&s.name.as_str())
            && s.attr("db.query.text")
                .as_str()
                .is_some_and(|t| t.contains("items") || t.contains("missing_table"))
    };
    let spans = receiver.wait_spans(4, pick);
    assert_eq!(spans.len(), 4, "{spans:#?}");
    for kind in ["SPAN_KIND_CLIENT", "SPAN_KIND_SERVER"] {
        let by_name = |name: &str| {
            spans
                .iter()
                .find(|s| s.kind == kind && s.name == name)
                .unwrap_or_else(|| panic!("no {kind} {name}: {spans:#?}"))
                .clone()
        };
        let insert = by_name("INSERT");
        assert_eq!(
            insert.attr("db.query.text"),
            "INSERT INTO items VALUES (?, ?)"
        );
        assert_eq!(insert.attr("db.operation.name"), "INSERT");
        assert_eq!(insert.status, "");
        let select = by_name("SELECT");
        assert_eq!(
            select.attr("db.query.text"),
            "SELECT * FROM missing_table WHERE id = ?"
        );
        assert_eq!(select.status, "STATUS_CODE_ERROR");
        assert_eq!(select.attr("error.type"), "1146");
        assert_eq!(select.attr("db.response.status_code"), "1146");
    }
    let (_, point) = receiver.wait_point("db.client.operation.duration", 1, |res, p| {
        res["service.name"] == "mariadb"
            && p["attrs"]["db.operation.name"] == "SELECT"
            && p["attrs"]["error.type"] == "1146"
    });
    assert_eq!(point["attrs"]["db.system.name"], "mysql");
    agent.stop();
}

#[test]
fn grpc_spans_and_rpc_metrics() {
    if !ebpf_available() {
        return;
    }
    let receiver = Receiver::start("grpc");
    let agent = receiver.agent("otlp-grpc", "grpc", &[]);
    let port = free_port();
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../protocols/tests/tools/grpc_demo.py");
    let mut cmd = Command::new("python3");
    cmd.arg(&demo).args(["server", &port.to_string()]);
    let _server = Server::spawn(cmd, port);
    run(Command::new("python3")
        .arg(&demo)
        .args(["client", &port.to_string()]));

    // Unary, ServerStream, ClientStream, Fail, Endless (cancelled), each
    // seen by the client and the server.
    let spans = receiver.wait_spans(10, |s| {
        s.attr("rpc.system") == "grpc" && s.attr("server.port") == port
    });
    assert_eq!(spans.len(), 10, "{spans:#?}");
    let find = |kind: &str, name: &str| {
        spans
            .iter()
            .find(|s| s.kind == kind && s.name == name)
            .unwrap_or_else(|| panic!("no {kind} {name}: {spans:#?}"))
            .clone()
    };
    for kind in ["SPAN_KIND_CLIENT", "SPAN_KIND_SERVER"] {
        let unary = find(kind, "demo.Echo/Unary");
        assert_eq!(unary.attr("rpc.service"), "demo.Echo");
        assert_eq!(unary.attr("rpc.method"), "Unary");
        assert_eq!(unary.attr("rpc.grpc.status_code"), 0);
        assert_eq!(unary.attr("rpc.response.status_code"), "OK");
        assert_eq!(unary.attr("network.protocol.version"), "2");
        assert_eq!(unary.status, "");
        let fail = find(kind, "demo.Echo/Fail");
        assert_eq!(fail.attr("rpc.grpc.status_code"), 5);
        let cancelled = find(kind, "demo.Echo/Endless");
        assert_eq!(cancelled.attr("rpc.grpc.status_code"), 1);
    }
    // A client fails on any status but OK; a server only on its own
    // failures (NOT_FOUND and CANCELLED answer the caller).
    for name in ["demo.Echo/Fail", "demo.Echo/Endless"] {
        assert_eq!(find("SPAN_KIND_CLIENT", name).status, "STATUS_CODE_ERROR");
        assert_eq!(find("SPAN_KIND_SERVER", name).status, "");
    }
    assert_eq!(
        find("SPAN_KIND_CLIENT", "demo.Echo/Fail").attr("error.type"),
        "NOT_FOUND"
    );

    let (_, point) = receiver.wait_point("rpc.server.call.duration", 1, |_, p| {
        p["attrs"]["rpc.method"] == "Fail" && p["attrs"]["rpc.service"] == "demo.Echo"
    });
    assert_eq!(point["attrs"]["rpc.system"], "grpc");
    assert_eq!(point["attrs"]["rpc.grpc.status_code"], 5);
    let (_, point) = receiver.wait_point("rpc.client.call.duration", 1, |_, p| {
        p["attrs"]["rpc.method"] == "Fail" && p["attrs"]["server.port"] == port
    });
    assert_eq!(point["attrs"]["error.type"], "NOT_FOUND");
    agent.stop();
}
