//! Harness for Sonde's end-to-end tests: start the real agent (real probes, as
//! root), real servers and clients on loopback, and query rows through the API.
//!
//! Without root or eBPF the tests skip with a message that says why, unless
//! `SONDE_REQUIRE_EBPF=1` (set by CI), in which case they fail.

use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

pub mod mariadb;
pub mod postgres;
pub mod servers;

/// Lowest port [`free_port`] hands out.
const TEST_PORTS_START: u16 = 10_000;

/// A free TCP port on loopback for a server or agent a test starts.
///
/// Chosen below the kernel's ephemeral range (`ip_local_port_range`) and
/// never handed out twice by one test process. A port from `bind(0)` lies
/// inside that range, so any outgoing connection on the host could take it
/// between this call and the server's own bind — a CI run failed that way
/// (`--pg-listen: Address already in use`).
pub fn free_port() -> u16 {
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let end = ephemeral_range_start().max(TEST_PORTS_START + 1_000);
    let span = u32::from(end - TEST_PORTS_START);
    // Start at a place that depends on the process, so two test binaries
    // run one after the other do not walk the same ports.
    let _ = NEXT.compare_exchange(
        u32::MAX,
        std::process::id().wrapping_mul(7_919) % span,
        Ordering::Relaxed,
        Ordering::Relaxed,
    );
    for _ in 0..span {
        let offset = NEXT.fetch_add(1, Ordering::Relaxed) % span;
        let port = TEST_PORTS_START + offset as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok()
            && TcpListener::bind(("0.0.0.0", port)).is_ok()
        {
            return port;
        }
    }
    panic!("no free TCP port in {TEST_PORTS_START}..{end}");
}

/// First port of the kernel's ephemeral range (32768 when unreadable).
fn ephemeral_range_start() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse().ok())
        .unwrap_or(32_768)
}

/// Directory of the test binaries' target profile (target/debug or target/release).
fn target_profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    // target/<profile>/deps/<test-binary>
    exe.parent()
        .and_then(Path::parent)
        .expect("target dir")
        .to_path_buf()
}

pub fn sonde_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("SONDE_BIN") {
        return PathBuf::from(path);
    }
    target_profile_dir().join("sonde")
}

/// A unique scratch directory under the target dir, kept for inspection after failures.
pub fn scratch_dir(name: &str) -> PathBuf {
    let dir = target_profile_dir()
        .join("e2e")
        .join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// The port of an endpoint flag (`--pg-listen`): the one `extra_args`
/// sets (`None` when `off`), else a free one, with the arguments to add.
fn endpoint_arg(extra_args: &[&str], flag: &str) -> (Option<u16>, Option<[String; 2]>) {
    let given = extra_args
        .iter()
        .position(|arg| *arg == flag)
        .and_then(|i| extra_args.get(i + 1));
    match given {
        Some(value) => (value.rsplit(':').next().and_then(|p| p.parse().ok()), None),
        None => {
            let port = free_port();
            (
                Some(port),
                Some([flag.to_owned(), format!("127.0.0.1:{port}")]),
            )
        }
    }
}

/// Why eBPF tests cannot run here, if they cannot.
fn ebpf_unavailable_reason() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not running as root".into());
    }
    if !Path::new("/sys/kernel/btf/vmlinux").exists() {
        return Some("the kernel has no BTF (/sys/kernel/btf/vmlinux)".into());
    }
    if !sonde_binary().exists() {
        return Some(format!(
            "{} is not built (cargo build -p sonde)",
            sonde_binary().display()
        ));
    }
    None
}

/// Returns false (after saying why) when the test should skip; panics instead
/// when SONDE_REQUIRE_EBPF=1.
pub fn ebpf_available() -> bool {
    match ebpf_unavailable_reason() {
        None => true,
        Some(reason) if std::env::var("SONDE_REQUIRE_EBPF").as_deref() == Ok("1") => {
            panic!("eBPF end-to-end tests required (SONDE_REQUIRE_EBPF=1) but cannot run: {reason}")
        }
        Some(reason) => {
            eprintln!("SKIPPED: eBPF end-to-end test cannot run: {reason}");
            false
        }
    }
}

/// A running `sonde agent`, stopped (SIGTERM) on drop.
pub struct Agent {
    child: Child,
    pub url: String,
    /// Port of the PostgreSQL endpoint, when on.
    pub pg_port: Option<u16>,
    /// URL of the worker endpoint, when on.
    pub worker_url: Option<String>,
    log_path: PathBuf,
    http: reqwest::blocking::Client,
}

impl Agent {
    pub fn start(name: &str) -> Agent {
        Self::start_with(name, &[])
    }

    /// Starts an agent with `extra_args`. Its PostgreSQL and worker
    /// endpoints get free ports too, unless `extra_args` sets them.
    pub fn start_with(name: &str, extra_args: &[&str]) -> Agent {
        Self::start_with_env(name, extra_args, &[])
    }

    /// [`Agent::start_with`], with extra environment variables.
    pub fn start_with_env(name: &str, extra_args: &[&str], env: &[(&str, &str)]) -> Agent {
        let port = free_port();
        let dir = scratch_dir(&format!("agent-{name}"));
        let log_path = dir.join("agent.log");
        let log = std::fs::File::create(&log_path).expect("agent log");
        let mut args: Vec<String> = vec![
            "agent".into(),
            "--listen".into(),
            format!("127.0.0.1:{port}"),
            "--log".into(),
            "info".into(),
        ];
        let (pg_port, pg_arg) = endpoint_arg(extra_args, "--pg-listen");
        let (worker_port, worker_arg) = endpoint_arg(extra_args, "--worker-listen");
        args.extend(pg_arg.into_iter().chain(worker_arg).flatten());
        let child = Command::new(sonde_binary())
            .args(&args)
            .args(extra_args)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn sonde agent");
        let mut agent = Agent {
            child,
            url: format!("http://127.0.0.1:{port}"),
            pg_port,
            worker_url: worker_port.map(|port| format!("http://127.0.0.1:{port}")),
            log_path,
            http: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("client"),
        };
        agent.wait_ready(Duration::from_secs(60));
        agent
    }

    /// The agent's log file.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    fn wait_ready(&mut self, timeout: Duration) {
        let log = self.log_path.clone();
        wait_ready(
            &mut self.child,
            &self.http,
            &self.url,
            &log,
            "agent",
            timeout,
        );
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Runs SQL; returns (status, body).
    pub fn query_raw(&self, sql: &str, format: &str) -> (u16, String) {
        let resp = self
            .http
            .post(format!("{}/api/v1/query?format={format}", self.url))
            .json(&serde_json::json!({ "sql": sql }))
            .send()
            .expect("query request");
        let status = resp.status().as_u16();
        (status, resp.text().unwrap_or_default())
    }

    /// Runs SQL and returns the rows (panics on an error status).
    pub fn query(&self, sql: &str) -> Vec<Vec<Value>> {
        let (status, body) = self.query_raw(sql, "json");
        assert_eq!(status, 200, "query failed: {sql}\n{body}");
        let value: Value = serde_json::from_str(&body).expect("json body");
        value["rows"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .map(|r| r.as_array().cloned().unwrap_or_default())
            .collect()
    }

    /// Polls until `sql` returns at least `count` rows (rows are flushed every second).
    pub fn wait_rows(&self, sql: &str, count: usize, timeout: Duration) -> Vec<Vec<Value>> {
        let deadline = Instant::now() + timeout;
        loop {
            let rows = self.query(sql);
            if rows.len() >= count {
                // One more flush period so late rows (a second copy) would show up too.
                std::thread::sleep(Duration::from_millis(1500));
                return self.query(sql);
            }
            if Instant::now() > deadline {
                panic!(
                    "expected {count} rows, got {}: {sql}\nrows: {rows:?}\ncapture_stats: {:?}\nagent log:\n{}",
                    rows.len(),
                    self.capture_stats(),
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Polls a `SELECT label, count(*) ... GROUP BY label` query until its
    /// counts add up to `total` (or the timeout passes); returns (label, count).
    pub fn wait_grouped_counts(
        &self,
        sql: &str,
        total: i64,
        timeout: Duration,
    ) -> Vec<(String, i64)> {
        let deadline = Instant::now() + timeout;
        loop {
            let counts: Vec<(String, i64)> = self
                .query(sql)
                .iter()
                .map(|r| {
                    (
                        r[0].as_str().unwrap_or_default().to_string(),
                        r[1].as_i64().unwrap_or(0),
                    )
                })
                .collect();
            if counts.iter().map(|(_, n)| n).sum::<i64>() >= total || Instant::now() > deadline {
                return counts;
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    /// Latest value of every capture counter.
    pub fn capture_stats(&self) -> Vec<(String, i64)> {
        // The latest snapshot: gauges (otlp_spans_queued) go down, so a
        // max over time would mix snapshots.
        self.query(
            "SELECT name, value FROM capture_stats \
             WHERE time_ = (SELECT max(time_) FROM capture_stats) ORDER BY name",
        )
        .into_iter()
        .map(|r| {
            (
                r[0].as_str().unwrap_or_default().to_string(),
                r[1].as_i64().unwrap_or(-1),
            )
        })
        .collect()
    }

    pub fn counter(&self, name: &str) -> i64 {
        self.capture_stats()
            .into_iter()
            .find(|(n, _)| n == name)
            .map_or(0, |(_, v)| v)
    }

    /// Stops the agent with SIGTERM and returns its log.
    pub fn stop(mut self) -> String {
        self.terminate();
        self.log()
    }

    fn terminate(&mut self) {
        terminate(&mut self.child, Duration::from_secs(20));
    }
}

/// Waits until `url`'s `/readyz` answers 200; panics with the log if the
/// `what` process exits first or is not ready within `timeout`.
fn wait_ready(
    child: &mut Child,
    http: &reqwest::blocking::Client,
    url: &str,
    log: &Path,
    what: &str,
    timeout: Duration,
) {
    let log = || std::fs::read_to_string(log).unwrap_or_default();
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("sonde {what} exited early ({status}):\n{}", log());
        }
        if let Ok(resp) = http.get(format!("{url}/readyz")).send()
            && resp.status().is_success()
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "sonde {what} not ready in {timeout:?}:\n{}",
            log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// SIGTERM, then SIGKILL if `child` has not exited within `grace`.
fn terminate(child: &mut Child, grace: Duration) {
    // SAFETY: kill with a valid pid and signal.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.terminate();
    }
}

/// A running `sonde coordinator` over agents' worker endpoints, stopped
/// (SIGTERM) on drop.
pub struct Coordinator {
    child: Child,
    pub url: String,
    pub pg_port: u16,
    log_path: PathBuf,
    http: reqwest::blocking::Client,
    /// Bearer token its API requires (`--auth-token-file`), sent with
    /// every request of this harness.
    token: Option<String>,
}

/// A coordinator's answer: status, body, and the `Sonde-Warning` headers.
pub struct Answer {
    pub status: u16,
    pub body: String,
    pub warnings: Vec<String>,
}

impl Answer {
    /// The rows of a JSON body.
    pub fn rows(&self) -> Vec<Vec<Value>> {
        let value: Value = serde_json::from_str(&self.body).expect("json body");
        value["rows"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .map(|r| r.as_array().cloned().unwrap_or_default())
            .collect()
    }
}

impl Coordinator {
    /// Starts a coordinator over `peers` (worker URLs) with `extra_args`.
    pub fn start(name: &str, peers: &[&str], extra_args: &[&str]) -> Coordinator {
        let peers = peers.join(",");
        let mut args = vec!["--peers", &peers];
        args.extend_from_slice(extra_args);
        Self::start_with(name, &args, None)
    }

    /// Starts a coordinator with `args` (which say where its peers are);
    /// `token`: the one its `--auth-token-file` holds.
    pub fn start_with(name: &str, args: &[&str], token: Option<&str>) -> Coordinator {
        let port = free_port();
        let pg_port = free_port();
        let dir = scratch_dir(&format!("coordinator-{name}"));
        let log_path = dir.join("coordinator.log");
        let log = std::fs::File::create(&log_path).expect("coordinator log");
        let child = Command::new(sonde_binary())
            .args(["coordinator", "--listen", &format!("127.0.0.1:{port}")])
            .args(["--pg-listen", &format!("127.0.0.1:{pg_port}")])
            .args(["--log", "info"])
            .args(args)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn sonde coordinator");
        let mut coordinator = Coordinator {
            child,
            url: format!("http://127.0.0.1:{port}"),
            pg_port,
            log_path,
            http: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .expect("client"),
            token: token.map(str::to_owned),
        };
        wait_ready(
            &mut coordinator.child,
            &coordinator.http,
            &coordinator.url,
            &coordinator.log_path,
            "coordinator",
            Duration::from_secs(30),
        );
        coordinator
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Runs SQL as JSON (`partial`: allow partial results).
    pub fn query_raw(&self, sql: &str, partial: bool) -> Answer {
        let mut request = self
            .http
            .post(format!("{}/api/v1/query", self.url))
            .json(&serde_json::json!({ "sql": sql, "partial": partial }));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let resp = request.send().expect("query request");
        let status = resp.status().as_u16();
        let warnings = resp
            .headers()
            .get_all("sonde-warning")
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_owned))
            .collect();
        Answer {
            status,
            body: resp.text().unwrap_or_default(),
            warnings,
        }
    }

    /// Runs SQL and returns the rows (panics on an error status).
    pub fn query(&self, sql: &str) -> Vec<Vec<Value>> {
        let answer = self.query_raw(sql, false);
        assert_eq!(
            answer.status,
            200,
            "query failed: {sql}\n{}\n{}",
            answer.body,
            self.log()
        );
        answer.rows()
    }
}

impl Drop for Coordinator {
    fn drop(&mut self) {
        terminate(&mut self.child, Duration::from_secs(20));
    }
}

/// A server process killed on drop.
pub struct Server {
    child: Child,
    pub port: u16,
}

impl Server {
    /// Spawns `cmd` and waits until `port` accepts connections.
    pub fn spawn(mut cmd: Command, port: u16) -> Server {
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn server");
        let mut server = Server { child, port };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = server.child.try_wait() {
                let mut err = String::new();
                if let Some(mut stderr) = server.child.stderr.take() {
                    let _ = stderr.read_to_string(&mut err);
                }
                panic!("server exited early ({status}): {err}");
            }
            assert!(
                Instant::now() < deadline,
                "server on port {port} did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // SIGTERM first: nginx's master stops its workers only when asked;
        // SIGKILL would leave them orphaned, still listening.
        terminate(&mut self.child, Duration::from_secs(5));
    }
}

/// nginx with a config of our own on `port`, in a scratch directory.
pub fn start_nginx(name: &str, port: u16) -> Server {
    let dir = scratch_dir(&format!("nginx-{name}"));
    std::fs::create_dir_all(dir.join("html")).expect("html dir");
    std::fs::write(dir.join("html/static.txt"), "x".repeat(5000)).expect("static file");
    let server = format!(
        r#"listen 127.0.0.1:{port};
        root {dir}/html;
        location = /hello {{ default_type text/plain; return 200 "hello from nginx\n"; }}
        location = /created {{ default_type application/json; return 201 '{{"id":1}}'; }}
        location = /missing {{ return 404; }}
        location = /fail {{ return 503; }}
        location = /empty {{ return 204; }}
        location /static.txt {{ }}"#,
        dir = dir.display()
    );
    nginx_with_server(&dir, port, &server)
}

/// nginx in `dir` (config, pid, logs, temp files) with one `server` block
/// whose body is `server`, listening on `port`.
pub fn nginx_with_server(dir: &Path, port: u16, server: &str) -> Server {
    let config = format!(
        r#"worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    sendfile on;
    keepalive_requests 100000;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    server {{
        {server}
    }}
}}
"#,
        dir = dir.display()
    );
    let conf_path = dir.join("nginx.conf");
    std::fs::write(&conf_path, config).expect("nginx.conf");
    let mut cmd = Command::new(nginx_binary());
    cmd.args([
        "-c",
        &conf_path.display().to_string(),
        "-p",
        &dir.display().to_string(),
    ]);
    Server::spawn(cmd, port)
}

fn nginx_binary() -> String {
    for candidate in ["/usr/sbin/nginx", "/usr/bin/nginx"] {
        if Path::new(candidate).exists() {
            return candidate.to_string();
        }
    }
    "nginx".to_string()
}

/// Runs a command to completion, panicking with its output if it fails.
/// Waits until `condition` holds; panics after `timeout`.
pub fn wait_until(timeout: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + timeout;
    while !condition() {
        assert!(
            std::time::Instant::now() < deadline,
            "condition not reached within {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn run(cmd: &mut Command) -> String {
    let output = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        output.status.success(),
        "{cmd:?} failed ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn curl(args: &[&str]) -> String {
    run(Command::new("curl")
        .args(["-sS", "--max-time", "10"])
        .args(args))
}

/// Path of a fixture script in tests/fixtures.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

/// A self-signed certificate for 127.0.0.1/localhost in `dir`: (cert.pem,
/// key.pem).
pub fn self_signed_cert(dir: &Path) -> (PathBuf, PathBuf) {
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    run(Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-keyout",
        ])
        .arg(&key)
        .arg("-out")
        .arg(&cert));
    (cert, key)
}

/// A private CA and a certificate it signed for 127.0.0.1/localhost, in
/// `dir`: (ca.pem, cert.pem, key.pem). What rustls clients (the
/// coordinator's) accept: they refuse a self-signed CA certificate used as
/// the server's own.
pub fn ca_signed_cert(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let ca = dir.join("ca.pem");
    let ca_key = dir.join("ca-key.pem");
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    let request = dir.join("cert.csr");
    let extensions = dir.join("cert.ext");
    run(Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args(["-subj", "/CN=sonde-test-ca", "-keyout"])
        .arg(&ca_key)
        .arg("-out")
        .arg(&ca));
    run(Command::new("openssl")
        .args([
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=localhost",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&request));
    std::fs::write(
        &extensions,
        "basicConstraints=CA:FALSE\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    .expect("extensions file");
    run(Command::new("openssl")
        .args(["x509", "-req", "-days", "1", "-set_serial", "2", "-in"])
        .arg(&request)
        .arg("-CA")
        .arg(&ca)
        .arg("-CAkey")
        .arg(&ca_key)
        .arg("-extfile")
        .arg(&extensions)
        .arg("-out")
        .arg(&cert));
    (ca, cert, key)
}
