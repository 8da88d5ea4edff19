//! One captured exchange (a typed http/dns/mysql/redis row) described the
//! way OpenTelemetry's semantic conventions name things: span name,
//! attributes, error, the duration histogram it counts in, and the process
//! it belongs to. Spans and RED metrics are both built from this, so they
//! agree. The protocol-specific parts live in one file per protocol.

mod dns;
mod grpc;
mod http;
mod mysql;
mod pgsql;
mod process;
mod redis;

pub use process::{Process, Processes, ServiceNaming};

use std::sync::Arc;

use opentelemetry::KeyValue;
use sonde_query::records::{ConnFields, TableRow, TraceRole};

use super::trace_context::RemoteParent;

/// Which side of the exchange the traced process was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Client,
    Server,
    Unknown,
}

/// The duration histograms of the semantic conventions, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Histogram {
    HttpServer,
    HttpClient,
    RpcServer,
    RpcClient,
    DbClient,
    DnsLookup,
}

impl Histogram {
    pub const ALL: [Histogram; 6] = [
        Histogram::HttpServer,
        Histogram::HttpClient,
        Histogram::RpcServer,
        Histogram::RpcClient,
        Histogram::DbClient,
        Histogram::DnsLookup,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Histogram::HttpServer => "http.server.request.duration",
            Histogram::HttpClient => "http.client.request.duration",
            Histogram::RpcServer => "rpc.server.call.duration",
            Histogram::RpcClient => "rpc.client.call.duration",
            Histogram::DbClient => "db.client.operation.duration",
            Histogram::DnsLookup => "dns.lookup.duration",
        }
    }

    pub fn description(self) -> &'static str {
        match self {
            Histogram::HttpServer => "Duration of HTTP server requests",
            Histogram::HttpClient => "Duration of HTTP client requests",
            Histogram::RpcServer => "Duration of incoming RPCs (gRPC calls)",
            Histogram::RpcClient => "Duration of outgoing RPCs (gRPC calls)",
            Histogram::DbClient => "Duration of database client operations",
            Histogram::DnsLookup => "Duration of DNS queries",
        }
    }

    /// Bucket boundaries the semantic conventions advise for each.
    pub fn boundaries(self) -> Vec<f64> {
        match self {
            Histogram::DbClient => vec![0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0],
            _ => vec![
                0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
            ],
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Operation {
    pub role: Role,
    pub start_ns: i64,
    pub end_ns: i64,
    pub name: String,
    /// A span is wanted: `describe` fills the name, the parent and the span
    /// attributes only then (the RED histograms need none of them).
    pub spans: bool,
    /// `describe` set `server.address` (the Host of HTTP, gRPC's authority);
    /// otherwise it is the connection's.
    pub addressed: bool,
    /// Span attributes.
    pub attributes: Vec<KeyValue>,
    /// The histogram this exchange counts in, with its (low-cardinality)
    /// attributes; None for exchanges no convention measures.
    pub metric: Option<(Histogram, Vec<KeyValue>)>,
    /// `error.type` when the exchange failed.
    pub error: Option<String>,
    pub parent: Option<RemoteParent>,
    /// Shared by every operation of the process (see [`Processes`]).
    pub process: Arc<Process>,
}

/// A typed row that is a request/response exchange: what its protocol adds
/// to the operation.
pub trait Exchange: TableRow {
    /// Nanoseconds from the request to the response.
    fn latency_ns(&self) -> i64;
    /// Names the operation and adds the protocol's attributes, metric and
    /// error; None for rows that are not exchanges (Redis pushes).
    fn describe(&self, op: &mut Operation) -> Option<()>;
    /// Every field `describe` reads for the metric (not the span): two rows
    /// of a batch with equal inputs count in the same RED series, so the
    /// batch describes only the first (see `Intake::take_rows`). None: each
    /// row is described.
    fn series_inputs(&self) -> Option<SeriesInputs<'_>> {
        None
    }
}

/// What decides an exchange's RED histogram and attributes (see
/// [`Exchange::series_inputs`]). `conn` is the address of the row's shared
/// connection fields, which stands for its process, role, addresses and
/// encryption: within a batch the rows keep them alive, so equal addresses
/// are the same connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SeriesInputs<'a> {
    conn: usize,
    texts: [Option<&'a str>; 4],
    numbers: [i64; 5],
}

impl<'a> SeriesInputs<'a> {
    pub fn new(conn: &Arc<ConnFields>, texts: [Option<&'a str>; 4], numbers: [i64; 5]) -> Self {
        Self {
            conn: Arc::as_ptr(conn) as usize,
            texts,
            numbers,
        }
    }
}

/// Start and end of the row's exchange, in ns (its time is the end).
pub fn exchange_bounds<R: Exchange>(row: &R) -> (i64, i64) {
    let end_ns = row.time_ns();
    (end_ns.saturating_sub(row.latency_ns().max(0)), end_ns)
}

/// The operation of one exchange row.
pub fn operation<R: Exchange>(
    row: &R,
    processes: &mut Processes,
    spans: bool,
) -> Option<Operation> {
    let conn = row.conn();
    let role = match conn.trace_role {
        TraceRole::Client => Role::Client,
        TraceRole::Server => Role::Server,
        TraceRole::Unknown => Role::Unknown,
    };
    let (start_ns, end_ns) = exchange_bounds(row);
    let process = processes.of(conn);
    let mut op = Operation {
        role,
        start_ns,
        end_ns,
        name: String::new(),
        spans,
        addressed: false,
        attributes: Vec::with_capacity(if spans { 16 } else { 0 }),
        metric: None,
        error: None,
        parent: None,
        process,
    };
    row.describe(&mut op)?;
    peer_attributes(conn, &mut op);
    if let Some(error) = &op.error {
        if op.spans {
            op.attributes
                .push(KeyValue::new("error.type", error.clone()));
        }
        if let Some((_, attrs)) = op.metric.as_mut() {
            attrs.push(KeyValue::new("error.type", error.clone()));
        }
    }
    Some(op)
}

fn database(op: &mut Operation, system: &'static str, operation: &str) {
    op.name = if operation.is_empty() {
        system.to_string()
    } else {
        operation.to_string()
    };
    op.attributes.push(KeyValue::new("db.system.name", system));
    op.attributes
        .push(KeyValue::new("db.operation.name", operation.to_string()));
    if op.role == Role::Client {
        op.metric = Some((
            Histogram::DbClient,
            vec![
                KeyValue::new("db.system.name", system),
                KeyValue::new("db.operation.name", operation.to_string()),
            ],
        ));
    }
}

/// Addresses every span carries: the peer, and for databases and DNS the server.
fn peer_attributes(conn: &ConnFields, op: &mut Operation) {
    if op.spans {
        op.attributes.push(KeyValue::new(
            "network.peer.address",
            conn.remote_addr.clone(),
        ));
        op.attributes
            .push(KeyValue::new("network.peer.port", conn.remote_port));
    }
    if !op.addressed {
        let (address, port) = match op.role {
            Role::Server => (&conn.local_addr, conn.local_port),
            _ => (&conn.remote_addr, conn.remote_port),
        };
        if let Some((_, attrs)) = op.metric.as_mut() {
            attrs.push(KeyValue::new("server.address", address.clone()));
            attrs.push(KeyValue::new("server.port", port));
        }
        if op.spans {
            op.attributes
                .push(KeyValue::new("server.address", address.clone()));
            op.attributes.push(KeyValue::new("server.port", port));
        }
    }
    if let Some(remote_service) = conn.k8s.remote_service.as_ref().filter(|_| op.spans) {
        op.attributes.push(KeyValue::new(
            "sonde.remote.service",
            remote_service.clone(),
        ));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use opentelemetry::trace::{SpanId, TraceId};
    use sonde_protocols::dns::{DnsHeader, DnsQuestion};
    use sonde_protocols::mysql::MysqlStatus;
    use sonde_query::records::{
        ConnFields, DnsRow, HttpRow, K8sFields, MysqlRow, PgsqlRow, RedisArgs, RedisRow, TraceRole,
    };

    use super::*;

    fn conn(role: TraceRole, comm: &str) -> Arc<ConnFields> {
        Arc::new(ConnFields {
            upid: "10:1".into(),
            pid: 10,
            comm: comm.into(),
            remote_addr: "10.0.0.2".into(),
            remote_port: 40000,
            local_addr: "10.0.0.1".into(),
            local_port: 8080,
            trace_role: role,
            encrypted: false,
            k8s: K8sFields {
                pod: Some("web-1".into()),
                namespace: Some("shop".into()),
                service: Some("shop/web".into()),
                ..K8sFields::default()
            },
        })
    }

    fn http_row(role: TraceRole, status: i64, headers: &[(&str, &str)]) -> HttpRow {
        HttpRow {
            time_ns: 5_000_000_000,
            conn: conn(role, "nginx"),
            major_version: 1,
            minor_version: 1,
            content_type: Default::default(),
            req_headers: headers.iter().copied().collect(),
            req_method: "GET".into(),
            req_path: "/users/42?x=1".into(),
            req_body: Vec::new(),
            req_body_size: 0,
            resp_headers: Default::default(),
            resp_status: status,
            resp_message: Default::default(),
            resp_body: Vec::new(),
            resp_body_size: 12,
            grpc_status: None,
            grpc_message: None,
            latency: 1_500_000,
        }
    }

    fn attr(op: &Operation, key: &str) -> Option<opentelemetry::Value> {
        op.attributes
            .iter()
            .find(|kv| kv.key.as_str() == key)
            .map(|kv| kv.value.clone())
    }

    fn processes() -> Processes {
        Processes::new(ServiceNaming {
            by_comm: vec![("redis-server".into(), "cache".into())],
        })
    }

    /// Asserts that rows with equal series inputs have the same metric
    /// (histogram, attributes, process; or equally none); returns how many
    /// distinct metrics the rows have, so a caller can check that its rows
    /// vary what matters.
    fn inputs_decide_the_metric<R: Exchange>(rows: &[R]) -> usize {
        let mut processes = processes();
        let mut first = std::collections::HashMap::new();
        let mut distinct = std::collections::HashSet::new();
        for (index, row) in rows.iter().enumerate() {
            let metric = operation(row, &mut processes, false).map(|op| {
                op.metric
                    .map(|(h, attrs)| (h, format!("{attrs:?}"), Arc::as_ptr(&op.process)))
            });
            distinct.insert(format!("{metric:?}"));
            let Some(inputs) = row.series_inputs() else {
                continue;
            };
            let (at, seen) = first.entry(inputs).or_insert((index, metric.clone()));
            assert_eq!(*seen, metric, "row {index} vs row {at}: {inputs:?}");
        }
        distinct.len()
    }

    #[test]
    fn database_and_dns_series_inputs_decide_the_metric() {
        let conns = [
            conn(TraceRole::Client, "app"),
            conn(TraceRole::Server, "db"),
            conn(TraceRole::Client, "worker"),
        ];
        let statements = [
            "select * from users where id = 1",
            "select * from users where id = 2",
            "SELECT 1",
            "update users set a = 1",
            "",
        ];
        let replies = [
            "1146: no table",
            "1064: syntax",
            "ERR",
            "",
            "WRONGTYPE x",
            "ok",
        ];
        let mut mysql = Vec::new();
        let mut pgsql = Vec::new();
        let mut redis = Vec::new();
        let mut dns = Vec::new();
        for conn in &conns {
            for (command, pg_command, redis_command) in [
                ("COM_QUERY", "Query", "GET"),
                ("COM_STMT_EXECUTE", "Execute", "SET"),
                ("COM_PING", "Sync", "PING"),
            ] {
                for statement in statements {
                    for reply in replies {
                        for failed in [false, true] {
                            mysql.push(MysqlRow {
                                time_ns: 10,
                                conn: conn.clone(),
                                req_cmd: command.into(),
                                req_body: statement.into(),
                                resp_status: if failed {
                                    MysqlStatus::Err
                                } else {
                                    MysqlStatus::Ok
                                },
                                resp_body: reply.into(),
                                latency: 4,
                            });
                            pgsql.push(PgsqlRow {
                                time_ns: 10,
                                conn: conn.clone(),
                                req_cmd: pg_command.into(),
                                req: format!("{statement} -- params: ['{reply}']"),
                                resp: reply.into(),
                                sqlstate: failed.then(|| reply.to_string()),
                                rows: None,
                                db_user: "app".into(),
                                db_name: reply.into(),
                                latency: 4,
                            });
                            redis.push(RedisRow {
                                time_ns: 10,
                                conn: conn.clone(),
                                req_cmd: redis_command.into(),
                                req_args: if statement.is_empty() {
                                    RedisArgs::Push {
                                        kind: "message".into(),
                                        channel: None,
                                    }
                                } else {
                                    RedisArgs::Command {
                                        args: vec![statement.into()],
                                        omitted: 0,
                                    }
                                },
                                resp: reply.into(),
                                resp_error: failed,
                                latency: 4,
                            });
                            dns.push(DnsRow {
                                time_ns: 10,
                                conn: conn.clone(),
                                req_header: DnsHeader::default(),
                                req_body: vec![DnsQuestion {
                                    name: statement.into(),
                                    qtype: if failed { 28 } else { 1 },
                                    qclass: 1,
                                }],
                                resp_header: DnsHeader {
                                    rcode: (reply.len() % 4) as u8,
                                    ..DnsHeader::default()
                                },
                                resp_body: vec![],
                                latency: 4,
                            });
                        }
                    }
                }
            }
        }
        assert!(inputs_decide_the_metric(&mysql) > 20);
        assert!(inputs_decide_the_metric(&pgsql) > 20);
        assert!(inputs_decide_the_metric(&redis) > 10);
        assert!(inputs_decide_the_metric(&dns) > 10);
        // What only a span reads does not split the inputs: the bound
        // parameters and database of PostgreSQL, a DNS question's type.
        let a = &pgsql[0];
        let b = PgsqlRow {
            req: a.req.replace("-- params: [", "-- params: ['other', "),
            db_name: "other".into(),
            ..a.clone()
        };
        assert_eq!(a.series_inputs(), b.series_inputs());
        let a = &dns[0];
        let mut b = a.clone();
        b.req_body[0].qtype = 16;
        assert_eq!(a.series_inputs(), b.series_inputs());
    }

    /// What makes `Intake::take_rows` count a row in the series of an
    /// earlier row with equal inputs, without describing it, exact: rows of
    /// a batch whose inputs are equal have the same metric (histogram,
    /// attributes, process); and rows that differ only in what no metric
    /// reads have equal inputs, so the shortcut is taken.
    #[test]
    fn equal_series_inputs_mean_the_same_metric() {
        let conns = [
            conn(TraceRole::Server, "nginx"),
            conn(TraceRole::Client, "nginx"),
            conn(TraceRole::Unknown, "nginx"),
            Arc::new(ConnFields {
                encrypted: true,
                ..(*conn(TraceRole::Client, "curl")).clone()
            }),
        ];
        let mut rows = Vec::new();
        for conn in &conns {
            for (major, minor) in [(1, 1), (1, 0), (2, 0)] {
                for method in ["GET", "POST", "BREW"] {
                    for path in ["/users/42?x=1", "/users/7", "/a.B/Call", "*"] {
                        for status in [0, 200, 404, 503] {
                            for content_type in ["", "application/grpc"] {
                                for grpc_status in [None, Some(0), Some(14)] {
                                    for host in [None, Some("api:8443"), Some("[::1]:80")] {
                                        let mut headers = vec![("user-agent", "t/1")];
                                        headers.extend(host.map(|h| ("host", h)));
                                        let mut row = http_row(TraceRole::Server, status, &headers);
                                        row.conn = conn.clone();
                                        (row.major_version, row.minor_version) = (major, minor);
                                        row.req_method = method.into();
                                        row.req_path = path.into();
                                        row.content_type = content_type.into();
                                        row.grpc_status = grpc_status;
                                        rows.push(row);
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        assert!(inputs_decide_the_metric(&rows) > 100);

        // Only the body, other headers, latency and time differ: one series.
        let mut a = http_row(TraceRole::Client, 200, &[("host", "api"), ("x-a", "1")]);
        let mut b = http_row(
            TraceRole::Client,
            200,
            &[("accept", "*/*"), ("host", "api")],
        );
        a.conn = conns[1].clone();
        b.conn = conns[1].clone();
        (b.req_body, b.resp_body_size, b.latency, b.time_ns) = (b"x".to_vec(), 99, 7, 1);
        assert_eq!(a.series_inputs(), b.series_inputs());
        // A server row's HTTP/1 metric reads no Host: not part of its inputs.
        let mut c = http_row(TraceRole::Server, 200, &[("host", "a")]);
        let mut d = http_row(TraceRole::Server, 200, &[("host", "b")]);
        c.conn = conns[0].clone();
        d.conn = conns[0].clone();
        assert_eq!(c.series_inputs(), d.series_inputs());
    }

    #[test]
    fn a_process_is_named_once_and_shared_by_its_connections() {
        let mut processes = processes();
        let first = conn(TraceRole::Server, "nginx");
        let second = conn(TraceRole::Server, "nginx");
        let other = conn(TraceRole::Client, "redis-server");
        let a = processes.of(&first);
        assert!(Arc::ptr_eq(&a, &processes.of(&first)));
        assert!(
            Arc::ptr_eq(&a, &processes.of(&second)),
            "same process, another connection: the same Arc"
        );
        let b = processes.of(&other);
        assert!(!Arc::ptr_eq(&a, &b));
        assert_eq!((a.service.as_str(), a.pid), ("web", 10));
        assert_eq!(b.service, "cache", "--service-name applies");
    }

    #[test]
    fn http_server_row() {
        let row = http_row(
            TraceRole::Server,
            503,
            &[
                ("Host", "shop.example:8080"),
                (
                    "traceparent",
                    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                ),
            ],
        );
        let op = operation(&row, &mut processes(), true).unwrap();
        assert_eq!(op.name, "GET /users/{id}");
        assert_eq!(op.role, Role::Server);
        assert_eq!((op.start_ns, op.end_ns), (4_998_500_000, 5_000_000_000));
        assert_eq!(op.error.as_deref(), Some("503"));
        assert_eq!(op.process.service, "web");
        assert_eq!(op.process.pod.as_deref(), Some("web-1"));
        assert_eq!(attr(&op, "url.path"), Some("/users/42".into()));
        assert_eq!(attr(&op, "http.route"), Some("/users/{id}".into()));
        assert_eq!(attr(&op, "server.address"), Some("shop.example".into()));
        assert_eq!(attr(&op, "server.port"), Some(8080.into()));
        assert_eq!(attr(&op, "client.address"), Some("10.0.0.2".into()));
        assert_eq!(attr(&op, "http.response.status_code"), Some(503.into()));
        assert_eq!(attr(&op, "error.type"), Some("503".into()));
        let parent = op.parent.unwrap();
        assert_eq!(
            parent.trace_id,
            TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap()
        );
        assert_eq!(
            parent.span_id,
            SpanId::from_hex("00f067aa0ba902b7").unwrap()
        );
        let (histogram, attrs) = op.metric.unwrap();
        assert_eq!(histogram, Histogram::HttpServer);
        let keys: Vec<&str> = attrs.iter().map(|kv| kv.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "http.request.method",
                "url.scheme",
                "network.protocol.version",
                "http.response.status_code",
                "http.route",
                "error.type"
            ]
        );
    }

    #[test]
    fn http_client_errors_start_at_400() {
        let row = http_row(TraceRole::Client, 404, &[]);
        let op = operation(&row, &mut Processes::new(ServiceNaming::default()), true).unwrap();
        assert_eq!(op.error.as_deref(), Some("404"));
        assert_eq!(attr(&op, "server.address"), Some("10.0.0.2".into()));
        assert_eq!(attr(&op, "url.template"), Some("/users/{id}".into()));
        assert_eq!(op.metric.unwrap().0, Histogram::HttpClient);
        assert!(op.parent.is_none());
        let row = http_row(TraceRole::Server, 404, &[]);
        let op = operation(&row, &mut Processes::new(ServiceNaming::default()), true).unwrap();
        assert_eq!(op.error, None);
    }

    /// Without a span (no OTLP endpoint), an operation carries the same
    /// histogram and attributes, and nothing only a span needs.
    #[test]
    fn metrics_only_operations_measure_the_same() {
        let rows = [
            http_row(TraceRole::Server, 503, &[("Host", "shop.example:8080")]),
            http_row(TraceRole::Client, 404, &[]),
            http_row(TraceRole::Client, 200, &[("Host", "api:81")]),
            HttpRow {
                req_method: "BREW".into(),
                major_version: 1,
                minor_version: 0,
                ..http_row(TraceRole::Server, 200, &[])
            },
            grpc_row(TraceRole::Server, Some(13)),
            grpc_row(TraceRole::Client, Some(0)),
        ];
        for row in &rows {
            let full = operation(row, &mut processes(), true).unwrap();
            let lean = operation(row, &mut processes(), false).unwrap();
            assert_eq!(format!("{:?}", full.metric), format!("{:?}", lean.metric));
            assert_eq!(full.error, lean.error);
            assert_eq!(full.process.service, lean.process.service);
            if row.major_version == 1 {
                assert!(lean.attributes.is_empty(), "{:?}", lean.attributes);
                assert!(lean.name.is_empty() && lean.parent.is_none());
            }
        }
        let lean = operation(&rows[3], &mut processes(), false).unwrap();
        let (_, attrs) = lean.metric.unwrap();
        let version = attrs
            .iter()
            .find(|kv| kv.key.as_str() == "network.protocol.version")
            .map(|kv| kv.value.clone());
        assert_eq!(version, Some("1.0".into()));
        let method = attrs
            .iter()
            .find(|kv| kv.key.as_str() == "http.request.method")
            .map(|kv| kv.value.clone());
        assert_eq!(method, Some("_OTHER".into()));
    }

    #[test]
    fn server_address_is_the_authority_of_http2_and_the_host_of_http1() {
        let headers = [(":authority", "h2.example:8443"), ("host", "h1.example:81")];
        let h2 = HttpRow {
            major_version: 2,
            minor_version: 0,
            ..http_row(TraceRole::Client, 200, &headers)
        };
        let op = operation(&h2, &mut processes(), true).unwrap();
        assert_eq!(attr(&op, "server.address"), Some("h2.example".into()));
        assert_eq!(attr(&op, "server.port"), Some(8443.into()));
        // HTTP/1 has no pseudo-headers: only Host counts.
        let h1 = http_row(TraceRole::Client, 200, &headers);
        let op = operation(&h1, &mut processes(), true).unwrap();
        assert_eq!(attr(&op, "server.address"), Some("h1.example".into()));
        assert_eq!(attr(&op, "server.port"), Some(81.into()));
    }

    fn grpc_row(role: TraceRole, status: Option<i64>) -> HttpRow {
        HttpRow {
            major_version: 2,
            minor_version: 0,
            content_type: "application/grpc".into(),
            req_headers: [(":authority", "echo.internal:50051"), (":scheme", "http")]
                .into_iter()
                .collect(),
            req_method: "POST".into(),
            req_path: "/demo.Echo/Fail".into(),
            resp_status: 200,
            grpc_status: status,
            ..http_row(role, 200, &[])
        }
    }

    #[test]
    fn grpc_calls_follow_the_rpc_conventions() {
        let op = operation(
            &grpc_row(TraceRole::Server, Some(5)),
            &mut processes(),
            true,
        )
        .unwrap();
        assert_eq!(op.name, "demo.Echo/Fail");
        assert_eq!(attr(&op, "rpc.system"), Some("grpc".into()));
        assert_eq!(attr(&op, "rpc.service"), Some("demo.Echo".into()));
        assert_eq!(attr(&op, "rpc.method"), Some("Fail".into()));
        assert_eq!(attr(&op, "rpc.grpc.status_code"), Some(5.into()));
        assert_eq!(
            attr(&op, "rpc.response.status_code"),
            Some("NOT_FOUND".into())
        );
        assert_eq!(attr(&op, "network.protocol.version"), Some("2".into()));
        assert_eq!(attr(&op, "server.address"), Some("echo.internal".into()));
        assert_eq!(attr(&op, "server.port"), Some(50051.into()));
        // NOT_FOUND answers the request: not a server error.
        assert_eq!(op.error, None);
        let (histogram, attrs) = op.metric.unwrap();
        assert_eq!(histogram, Histogram::RpcServer);
        assert_eq!(histogram.name(), "rpc.server.call.duration");
        let keys: Vec<&str> = attrs.iter().map(|kv| kv.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "rpc.system",
                "rpc.service",
                "rpc.method",
                "rpc.grpc.status_code"
            ]
        );
        // The client sees every status but OK as an error.
        let op = operation(
            &grpc_row(TraceRole::Client, Some(5)),
            &mut processes(),
            true,
        )
        .unwrap();
        assert_eq!(op.error.as_deref(), Some("NOT_FOUND"));
        assert_eq!(attr(&op, "error.type"), Some("NOT_FOUND".into()));
        let (histogram, attrs) = op.metric.unwrap();
        assert_eq!(histogram, Histogram::RpcClient);
        assert!(attrs.iter().any(|kv| kv.key.as_str() == "error.type"));
        let op = operation(
            &grpc_row(TraceRole::Server, Some(13)),
            &mut processes(),
            true,
        )
        .unwrap();
        assert_eq!(op.error.as_deref(), Some("INTERNAL"));
        let op = operation(
            &grpc_row(TraceRole::Client, Some(0)),
            &mut processes(),
            true,
        )
        .unwrap();
        assert_eq!(op.error, None);
        // HTTP/2 without gRPC is HTTP, version "2".
        let row = HttpRow {
            content_type: "text/plain".into(),
            req_method: "GET".into(),
            grpc_status: None,
            ..grpc_row(TraceRole::Server, None)
        };
        let op = operation(&row, &mut processes(), true).unwrap();
        assert_eq!(op.name, "GET /demo.Echo/Fail");
        assert_eq!(attr(&op, "network.protocol.version"), Some("2".into()));
        assert_eq!(attr(&op, "server.address"), Some("echo.internal".into()));
        assert_eq!(op.metric.unwrap().0, Histogram::HttpServer);
    }

    #[test]
    fn redis_and_mysql_rows() {
        let incr = RedisRow {
            time_ns: 10,
            conn: conn(TraceRole::Server, "redis-server"),
            req_cmd: "INCR".into(),
            req_args: RedisArgs::Command {
                args: vec!["k".into()],
                omitted: 0,
            },
            resp: "WRONGTYPE Operation against a key".into(),
            resp_error: true,
            latency: 4,
        };
        let push = RedisRow {
            time_ns: 11,
            conn: conn(TraceRole::Client, "app"),
            req_cmd: "PUSH".into(),
            req_args: RedisArgs::Push {
                kind: "message".into(),
                channel: None,
            },
            resp: "x".into(),
            resp_error: false,
            latency: 0,
        };
        let op = operation(&incr, &mut processes(), true).unwrap();
        assert_eq!(op.name, "INCR");
        assert_eq!(op.process.service, "cache");
        assert_eq!(op.error.as_deref(), Some("WRONGTYPE"));
        assert_eq!(attr(&op, "db.query.text"), Some("INCR k".into()));
        assert_eq!(attr(&op, "server.port"), Some(8080.into()));
        assert!(
            op.metric.is_none(),
            "server-side database rows have no client histogram"
        );
        assert!(operation(&push, &mut processes(), true).is_none());

        let mysql = MysqlRow {
            time_ns: 10,
            conn: conn(TraceRole::Client, "app"),
            req_cmd: "COM_QUERY".into(),
            req_body: "select * from users where email = 'a@b.c'".into(),
            resp_status: MysqlStatus::Err,
            resp_body: "1146: Table 'shop.users' doesn't exist".into(),
            latency: 4,
        };
        let op = operation(&mysql, &mut processes(), true).unwrap();
        assert_eq!(op.name, "SELECT");
        assert_eq!(op.error.as_deref(), Some("1146"));
        assert_eq!(
            attr(&op, "db.query.text"),
            Some("select * from users where email = ?".into())
        );
        let (histogram, attrs) = op.metric.unwrap();
        assert_eq!(histogram, Histogram::DbClient);
        assert_eq!(attrs.len(), 5, "{attrs:?}");
    }

    #[test]
    fn pgsql_rows_never_export_bound_values() {
        let pgsql = PgsqlRow {
            time_ns: 10,
            conn: conn(TraceRole::Client, "app"),
            req_cmd: "Execute".into(),
            req: "UPDATE users SET email = $1 WHERE name = 'bob' -- params: ['a@b.c']".into(),
            resp: "ERROR: duplicate key value violates unique constraint".into(),
            sqlstate: Some("23505".into()),
            rows: None,
            db_user: "app".into(),
            db_name: "shop".into(),
            latency: 4,
        };
        let op = operation(&pgsql, &mut processes(), true).unwrap();
        assert_eq!(op.name, "UPDATE");
        assert_eq!(op.error.as_deref(), Some("23505"));
        assert_eq!(attr(&op, "db.system.name"), Some("postgresql".into()));
        assert_eq!(attr(&op, "db.namespace"), Some("shop".into()));
        assert_eq!(
            attr(&op, "db.query.text"),
            Some("UPDATE users SET email = $1 WHERE name = ?".into())
        );
        assert_eq!(attr(&op, "db.response.status_code"), Some("23505".into()));
        assert_eq!(op.metric.unwrap().0, Histogram::DbClient);
    }

    #[test]
    fn dns_rows() {
        let dns = DnsRow {
            time_ns: 10,
            conn: conn(TraceRole::Client, "app"),
            req_header: DnsHeader::default(),
            req_body: vec![DnsQuestion {
                name: "nope.example".into(),
                qtype: 1,
                qclass: 1,
            }],
            resp_header: DnsHeader {
                rcode: 3,
                ..DnsHeader::default()
            },
            resp_body: vec![],
            latency: 4,
        };
        let op = operation(&dns, &mut processes(), true).unwrap();
        assert_eq!(op.name, "DNS A");
        assert_eq!(op.error.as_deref(), Some("NXDOMAIN"));
        assert_eq!(attr(&op, "dns.question.name"), Some("nope.example".into()));
        assert_eq!(op.metric.unwrap().0, Histogram::DnsLookup);
    }

    #[test]
    fn host_headers() {
        use super::http::host_header;
        assert_eq!(
            host_header(Some("example.com:8080")),
            (Some("example.com"), Some(8080))
        );
        assert_eq!(
            host_header(Some("example.com")),
            (Some("example.com"), None)
        );
        assert_eq!(host_header(Some("[::1]:80")), (Some("::1"), Some(80)));
        assert_eq!(host_header(Some("::1")), (Some("::1"), None));
        assert_eq!(host_header(Some(" ")), (None, None));
        assert_eq!(host_header(None), (None, None));
    }
}
