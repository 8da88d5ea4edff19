//! One captured exchange (an http/dns/mysql/redis row) described the way
//! OpenTelemetry's semantic conventions name things: span name, attributes,
//! error, the duration histogram it counts in, and the process it belongs to.
//! Spans and RED metrics are both built from this, so they agree.

use opentelemetry::KeyValue;
use serde_json::{Map, Value};
use sonde_query::schema::{DNS_EVENTS, HTTP_EVENTS, MYSQL_EVENTS, REDIS_EVENTS};

use super::query_text::{redis_query_text, sanitize_sql, sql_operation};
use super::route::route_template;
use super::row_view::RowView;
use super::trace_context::{RemoteParent, remote_parent};

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
    DbClient,
    DnsLookup,
}

impl Histogram {
    pub const ALL: [Histogram; 4] = [
        Histogram::HttpServer,
        Histogram::HttpClient,
        Histogram::DbClient,
        Histogram::DnsLookup,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Histogram::HttpServer => "http.server.request.duration",
            Histogram::HttpClient => "http.client.request.duration",
            Histogram::DbClient => "db.client.operation.duration",
            Histogram::DnsLookup => "dns.lookup.duration",
        }
    }

    pub fn description(self) -> &'static str {
        match self {
            Histogram::HttpServer => "Duration of HTTP server requests",
            Histogram::HttpClient => "Duration of HTTP client requests",
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

/// Who did it: the resource of its spans and metrics.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Process {
    pub service: String,
    pub pid: u32,
    pub comm: String,
    pub pod: Option<String>,
    pub namespace: Option<String>,
    pub container: Option<String>,
    pub node: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Operation {
    pub role: Role,
    pub start_ns: i64,
    pub end_ns: i64,
    pub name: String,
    /// Span attributes.
    pub attributes: Vec<KeyValue>,
    /// The histogram this exchange counts in, with its (low-cardinality)
    /// attributes; None for exchanges no convention measures.
    pub metric: Option<(Histogram, Vec<KeyValue>)>,
    /// `error.type` when the exchange failed.
    pub error: Option<String>,
    pub parent: Option<RemoteParent>,
    pub process: Process,
}

/// How processes are named `service.name`.
#[derive(Debug, Clone, Default)]
pub struct ServiceNaming {
    /// Process name → service name, from --service-name.
    pub by_comm: Vec<(String, String)>,
}

impl ServiceNaming {
    fn service(&self, view: &RowView<'_>) -> String {
        let comm = view.str("comm");
        if let Some((_, name)) = self.by_comm.iter().find(|(c, _)| c == comm) {
            return name.clone();
        }
        // The Kubernetes service is `namespace/name`; the namespace is its own attribute.
        if let Some(service) = view.opt_str("service").filter(|s| !s.is_empty()) {
            return service.rsplit('/').next().unwrap_or(service).to_string();
        }
        if comm.is_empty() {
            "unknown_service".to_string()
        } else {
            comm.to_string()
        }
    }
}

/// The operation of row `row` of a `table` batch; None for rows that are
/// not request/response exchanges (Redis pushes) or of other tables.
pub fn operation(table: &str, view: &RowView<'_>, naming: &ServiceNaming) -> Option<Operation> {
    let role = match view.str("trace_role") {
        "client" => Role::Client,
        "server" => Role::Server,
        _ => Role::Unknown,
    };
    let end_ns = view.time_ns();
    let start_ns = end_ns.saturating_sub(view.i64("latency").max(0));
    let process = Process {
        service: naming.service(view),
        pid: view.u32("pid"),
        comm: view.str("comm").to_string(),
        pod: view.opt_str("pod").map(str::to_string),
        namespace: view.opt_str("namespace").map(str::to_string),
        container: view.opt_str("container").map(str::to_string),
        node: view.opt_str("node").map(str::to_string),
    };
    let mut op = Operation {
        role,
        start_ns,
        end_ns,
        name: String::new(),
        attributes: Vec::with_capacity(16),
        metric: None,
        error: None,
        parent: None,
        process,
    };
    match table {
        HTTP_EVENTS => http(view, &mut op),
        DNS_EVENTS => dns(view, &mut op),
        MYSQL_EVENTS => mysql(view, &mut op),
        REDIS_EVENTS => redis(view, &mut op)?,
        _ => return None,
    }
    peer_attributes(view, &mut op);
    if let Some(error) = &op.error {
        op.attributes
            .push(KeyValue::new("error.type", error.clone()));
        if let Some((_, attrs)) = op.metric.as_mut() {
            attrs.push(KeyValue::new("error.type", error.clone()));
        }
    }
    Some(op)
}

const KNOWN_METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
];

fn http(view: &RowView<'_>, op: &mut Operation) {
    let headers: Map<String, Value> =
        serde_json::from_str(view.str("req_headers")).unwrap_or_default();
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| v.as_str())
    };
    op.parent = remote_parent(&headers);
    let raw_method = view.str("req_method");
    let method = if KNOWN_METHODS.contains(&raw_method) {
        raw_method
    } else {
        "_OTHER"
    };
    let target = view.str("req_path");
    let path = target.split(['?', '#']).next().unwrap_or(target);
    let route = route_template(target);
    let status = view.i64("resp_status");
    let version = format!(
        "{}.{}",
        view.i64("major_version"),
        view.i64("minor_version")
    );
    let scheme = if view.bool("encrypted") {
        "https"
    } else {
        "http"
    };
    op.name = if method == "_OTHER" {
        "HTTP".to_string()
    } else {
        format!("{method} {route}")
    };
    let attrs = &mut op.attributes;
    attrs.push(KeyValue::new("http.request.method", method.to_string()));
    if method != raw_method {
        attrs.push(KeyValue::new(
            "http.request.method_original",
            raw_method.to_string(),
        ));
    }
    attrs.push(KeyValue::new("url.path", path.to_string()));
    attrs.push(KeyValue::new("url.scheme", scheme));
    attrs.push(KeyValue::new("network.protocol.version", version.clone()));
    if status > 0 {
        attrs.push(KeyValue::new("http.response.status_code", status));
    }
    attrs.push(KeyValue::new(
        "http.request.body.size",
        view.i64("req_body_size"),
    ));
    attrs.push(KeyValue::new(
        "http.response.body.size",
        view.i64("resp_body_size"),
    ));
    if let Some(agent) = header("user-agent") {
        attrs.push(KeyValue::new("user_agent.original", agent.to_string()));
    }
    let (host, host_port) = host_header(header("host"));
    let mut metric_attrs = vec![
        KeyValue::new("http.request.method", method.to_string()),
        KeyValue::new("url.scheme", scheme),
        KeyValue::new("network.protocol.version", version),
    ];
    if status > 0 {
        metric_attrs.push(KeyValue::new("http.response.status_code", status));
    }
    let histogram = match op.role {
        Role::Server => {
            attrs.push(KeyValue::new("http.route", route.clone()));
            metric_attrs.push(KeyValue::new("http.route", route));
            let port = host_port.unwrap_or(view.i64("local_port"));
            attrs.push(KeyValue::new(
                "server.address",
                host.unwrap_or(view.str("local_addr")).to_string(),
            ));
            attrs.push(KeyValue::new("server.port", port));
            attrs.push(KeyValue::new(
                "client.address",
                view.str("remote_addr").to_string(),
            ));
            attrs.push(KeyValue::new("client.port", view.i64("remote_port")));
            if status >= 500 {
                op.error = Some(status.to_string());
            }
            Some(Histogram::HttpServer)
        }
        Role::Client | Role::Unknown => {
            attrs.push(KeyValue::new("url.template", route));
            let address = host.unwrap_or(view.str("remote_addr")).to_string();
            let port = host_port.unwrap_or(view.i64("remote_port"));
            attrs.push(KeyValue::new("server.address", address.clone()));
            attrs.push(KeyValue::new("server.port", port));
            metric_attrs.push(KeyValue::new("server.address", address));
            metric_attrs.push(KeyValue::new("server.port", port));
            if status >= 400 {
                op.error = Some(status.to_string());
            }
            (op.role == Role::Client).then_some(Histogram::HttpClient)
        }
    };
    op.metric = histogram.map(|h| (h, metric_attrs));
}

/// `Host: name[:port]` split; bracketed IPv6 literals keep their address.
fn host_header(value: Option<&str>) -> (Option<&str>, Option<i64>) {
    let Some(value) = value.map(str::trim).filter(|v| !v.is_empty()) else {
        return (None, None);
    };
    if let Some(rest) = value.strip_prefix('[') {
        let (addr, after) = rest.split_once(']').unwrap_or((rest, ""));
        let port = after.strip_prefix(':').and_then(|p| p.parse().ok());
        return (Some(addr), port);
    }
    match value.rsplit_once(':') {
        Some((name, port)) if !name.contains(':') => (Some(name), port.parse().ok()),
        _ => (Some(value), None),
    }
}

fn dns(view: &RowView<'_>, op: &mut Operation) {
    let request: Value = serde_json::from_str(view.str("req_body")).unwrap_or_default();
    let question = request.get("queries").and_then(|q| q.get(0));
    let name = question
        .and_then(|q| q.get("name"))
        .and_then(Value::as_str)
        .unwrap_or("");
    let qtype = question
        .and_then(|q| q.get("type"))
        .and_then(Value::as_str)
        .unwrap_or("");
    let header: Value = serde_json::from_str(view.str("resp_header")).unwrap_or_default();
    let rcode = header.get("rcode").and_then(Value::as_u64).unwrap_or(0);
    let answers: Value = serde_json::from_str(view.str("resp_body")).unwrap_or_default();
    let answer_data: Vec<opentelemetry::StringValue> = answers
        .get("answers")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(|a| a.get("data").and_then(Value::as_str))
                .take(32)
                .map(|d| d.to_string().into())
                .collect()
        })
        .unwrap_or_default();
    op.name = if qtype.is_empty() {
        "DNS".to_string()
    } else {
        format!("DNS {qtype}")
    };
    op.attributes
        .push(KeyValue::new("dns.question.name", name.to_string()));
    if !qtype.is_empty() {
        op.attributes
            .push(KeyValue::new("dns.question.type", qtype.to_string()));
    }
    op.attributes.push(KeyValue::new(
        "dns.answers",
        opentelemetry::Value::Array(opentelemetry::Array::String(answer_data)),
    ));
    if rcode != 0 {
        op.error = Some(rcode_name(rcode).to_string());
    }
    if op.role == Role::Client {
        op.metric = Some((
            Histogram::DnsLookup,
            vec![KeyValue::new("dns.question.name", name.to_string())],
        ));
    }
}

fn rcode_name(rcode: u64) -> &'static str {
    match rcode {
        1 => "FORMERR",
        2 => "SERVFAIL",
        3 => "NXDOMAIN",
        4 => "NOTIMP",
        5 => "REFUSED",
        6 => "YXDOMAIN",
        7 => "YXRRSET",
        8 => "NXRRSET",
        9 => "NOTAUTH",
        10 => "NOTZONE",
        _ => "rcode_other",
    }
}

fn mysql(view: &RowView<'_>, op: &mut Operation) {
    let command = view.str("req_cmd");
    let text = view.str("req_body");
    let has_text = matches!(
        command,
        "COM_QUERY" | "COM_STMT_PREPARE" | "COM_STMT_EXECUTE"
    );
    let operation = if has_text { sql_operation(text) } else { None }
        .unwrap_or_else(|| command.trim_start_matches("COM_").to_string());
    database(op, "mysql", &operation);
    if has_text && !text.is_empty() {
        op.attributes
            .push(KeyValue::new("db.query.text", sanitize_sql(text)));
    }
    if view.str("resp_status") == "ERR" {
        let body = view.str("resp_body");
        let code: String = body.chars().take_while(char::is_ascii_digit).collect();
        if !code.is_empty() {
            op.attributes
                .push(KeyValue::new("db.response.status_code", code.clone()));
        }
        op.error = Some(if code.is_empty() {
            "ERR".to_string()
        } else {
            code
        });
    }
}

fn redis(view: &RowView<'_>, op: &mut Operation) -> Option<()> {
    let command = view.str("req_cmd");
    if command == "PUSH" {
        return None;
    }
    let args: Vec<String> = serde_json::from_str(view.str("req_args")).unwrap_or_default();
    database(op, "redis", command);
    op.attributes.push(KeyValue::new(
        "db.query.text",
        redis_query_text(command, &args),
    ));
    if view.bool("resp_error") {
        let reply = view.str("resp");
        let prefix = reply.split(' ').next().unwrap_or("");
        let error = if !prefix.is_empty() && prefix.bytes().all(|b| b.is_ascii_uppercase()) {
            prefix
        } else {
            "ERR"
        };
        op.attributes
            .push(KeyValue::new("db.response.status_code", error.to_string()));
        op.error = Some(error.to_string());
    }
    Some(())
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
fn peer_attributes(view: &RowView<'_>, op: &mut Operation) {
    let remote_addr = view.str("remote_addr").to_string();
    let remote_port = view.i64("remote_port");
    op.attributes
        .push(KeyValue::new("network.peer.address", remote_addr.clone()));
    op.attributes
        .push(KeyValue::new("network.peer.port", remote_port));
    let already = op
        .attributes
        .iter()
        .any(|kv| kv.key.as_str() == "server.address");
    if !already {
        let (address, port) = match op.role {
            Role::Server => (view.str("local_addr").to_string(), view.i64("local_port")),
            _ => (remote_addr, remote_port),
        };
        if let Some((_, attrs)) = op.metric.as_mut() {
            attrs.push(KeyValue::new("server.address", address.clone()));
            attrs.push(KeyValue::new("server.port", port));
        }
        op.attributes.push(KeyValue::new("server.address", address));
        op.attributes.push(KeyValue::new("server.port", port));
    }
    if let Some(remote_service) = view.opt_str("remote_service") {
        op.attributes.push(KeyValue::new(
            "sonde.remote.service",
            remote_service.to_string(),
        ));
    }
}

#[cfg(test)]
mod tests {
    use arrow::record_batch::RecordBatch;
    use opentelemetry::trace::{SpanId, TraceId};
    use sonde_query::records::{
        ConnFields, DnsEventsBuilder, DnsRow, HttpEventsBuilder, HttpRow, K8sFields,
        MysqlEventsBuilder, MysqlRow, RedisEventsBuilder, RedisRow, TraceRole,
    };

    use super::*;

    fn conn(role: TraceRole, comm: &str) -> ConnFields {
        ConnFields {
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
        }
    }

    fn http_batch(role: TraceRole, status: i64, headers: &[(&str, &str)]) -> RecordBatch {
        let mut builder = HttpEventsBuilder::new();
        builder.append(&HttpRow {
            time_ns: 5_000_000_000,
            conn: conn(role, "nginx"),
            major_version: 1,
            minor_version: 1,
            content_type: String::new(),
            req_headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            req_method: "GET".into(),
            req_path: "/users/42?x=1".into(),
            req_body: Vec::new(),
            req_body_size: 0,
            resp_headers: Vec::new(),
            resp_status: status,
            resp_message: String::new(),
            resp_body: Vec::new(),
            resp_body_size: 12,
            latency_ns: 1_500_000,
        });
        builder.finish()
    }

    fn attr(op: &Operation, key: &str) -> Option<opentelemetry::Value> {
        op.attributes
            .iter()
            .find(|kv| kv.key.as_str() == key)
            .map(|kv| kv.value.clone())
    }

    fn naming() -> ServiceNaming {
        ServiceNaming {
            by_comm: vec![("redis-server".into(), "cache".into())],
        }
    }

    #[test]
    fn http_server_row() {
        let batch = http_batch(
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
        let op = operation(HTTP_EVENTS, &RowView::new(&batch, 0), &naming()).unwrap();
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
        let batch = http_batch(TraceRole::Client, 404, &[]);
        let op = operation(
            HTTP_EVENTS,
            &RowView::new(&batch, 0),
            &ServiceNaming::default(),
        )
        .unwrap();
        assert_eq!(op.error.as_deref(), Some("404"));
        assert_eq!(attr(&op, "server.address"), Some("10.0.0.2".into()));
        assert_eq!(attr(&op, "url.template"), Some("/users/{id}".into()));
        assert_eq!(op.metric.unwrap().0, Histogram::HttpClient);
        assert!(op.parent.is_none());
        let batch = http_batch(TraceRole::Server, 404, &[]);
        let op = operation(
            HTTP_EVENTS,
            &RowView::new(&batch, 0),
            &ServiceNaming::default(),
        )
        .unwrap();
        assert_eq!(op.error, None);
    }

    #[test]
    fn redis_and_mysql_rows() {
        let mut redis = RedisEventsBuilder::new();
        redis.append(&RedisRow {
            time_ns: 10,
            conn: conn(TraceRole::Server, "redis-server"),
            req_cmd: "INCR".into(),
            req_args: "[\"k\"]".into(),
            resp: "WRONGTYPE Operation against a key".into(),
            resp_error: true,
            latency: 4,
        });
        redis.append(&RedisRow {
            time_ns: 11,
            conn: conn(TraceRole::Client, "app"),
            req_cmd: "PUSH".into(),
            req_args: "[]".into(),
            resp: "x".into(),
            resp_error: false,
            latency: 0,
        });
        let batch = redis.finish();
        let op = operation(REDIS_EVENTS, &RowView::new(&batch, 0), &naming()).unwrap();
        assert_eq!(op.name, "INCR");
        assert_eq!(op.process.service, "cache");
        assert_eq!(op.error.as_deref(), Some("WRONGTYPE"));
        assert_eq!(attr(&op, "db.query.text"), Some("INCR k".into()));
        assert_eq!(attr(&op, "server.port"), Some(8080.into()));
        assert!(
            op.metric.is_none(),
            "server-side database rows have no client histogram"
        );
        assert!(operation(REDIS_EVENTS, &RowView::new(&batch, 1), &naming()).is_none());

        let mut mysql = MysqlEventsBuilder::new();
        mysql.append(&MysqlRow {
            time_ns: 10,
            conn: conn(TraceRole::Client, "app"),
            req_cmd: "COM_QUERY".into(),
            req_body: "select * from users where email = 'a@b.c'".into(),
            resp_status: "ERR".into(),
            resp_body: "1146: Table 'shop.users' doesn't exist".into(),
            latency: 4,
        });
        let batch = mysql.finish();
        let op = operation(MYSQL_EVENTS, &RowView::new(&batch, 0), &naming()).unwrap();
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
    fn dns_rows() {
        let mut dns = DnsEventsBuilder::new();
        dns.append(&DnsRow {
            time_ns: 10,
            conn: conn(TraceRole::Client, "app"),
            req_header: "{}".into(),
            req_body: r#"{"queries":[{"name":"nope.example","type":"A"}]}"#.into(),
            resp_header: r#"{"rcode":3}"#.into(),
            resp_body: r#"{"answers":[]}"#.into(),
            latency: 4,
        });
        let batch = dns.finish();
        let op = operation(DNS_EVENTS, &RowView::new(&batch, 0), &naming()).unwrap();
        assert_eq!(op.name, "DNS A");
        assert_eq!(op.error.as_deref(), Some("NXDOMAIN"));
        assert_eq!(attr(&op, "dns.question.name"), Some("nope.example".into()));
        assert_eq!(op.metric.unwrap().0, Histogram::DnsLookup);
    }

    #[test]
    fn host_headers() {
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
