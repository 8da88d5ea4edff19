//! A PostgreSQL server of the test's own (initdb into a scratch directory,
//! run as the `postgres` system user, scram-sha-256 password logins over
//! TCP, optionally TLS), and its clients: psql, pgbench, psycopg 3 and
//! node-postgres scripts.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::{Server, free_port, run, scratch_dir};

/// Login role of [`start`], its password and its database.
pub const USER: &str = "sonde";
pub const PASSWORD: &str = "sekret-pg-pw";
pub const DATABASE: &str = "shop";

/// The system user PostgreSQL runs as (it refuses to run as root).
const SYSTEM_USER: &str = "postgres";

/// A running server: stopped (SIGTERM: a smart shutdown) on drop.
pub struct Postgres {
    server: Server,
    pub port: u16,
    /// Directory of the unix socket (local connections are trusted: the
    /// tests' own setup goes there, untraced by TCP probes).
    socket_dir: PathBuf,
    bin: PathBuf,
}

/// Directory of the server binaries (initdb, postgres, pgbench): Debian
/// keeps them under /usr/lib/postgresql/<major>/bin; the newest wins.
pub fn bin_dir() -> PathBuf {
    let mut majors: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL is not installed (run scripts/setup.sh)")
        .filter_map(|e| {
            let e = e.ok()?;
            let major = e.file_name().to_str()?.parse().ok()?;
            Some((major, e.path().join("bin")))
        })
        .filter(|(_, bin)| bin.join("postgres").exists())
        .collect();
    majors.sort();
    majors.pop().expect("no PostgreSQL server binaries").1
}

/// A server on a free loopback port (plaintext and TLS both refused: no
/// certificate).
pub fn start(name: &str) -> Postgres {
    start_with(name, free_port(), false, "scram-sha-256")
}

/// A server on `port`; with `tls` it has a self-signed certificate and
/// `ssl=on` (clients choose: sslmode=require or disable). `host_auth` is
/// the pg_hba method of TCP logins (`scram-sha-256`, `md5`, `password`).
pub fn start_with(name: &str, port: u16, tls: bool, host_auth: &str) -> Postgres {
    let dir = scratch_dir(&format!("postgres-{name}"));
    let data = dir.join("data");
    let bin = bin_dir();
    chown_to_postgres(&dir);
    run(as_postgres(&bin.join("initdb"))
        .args([
            "--auth-local=trust",
            &format!("--auth-host={host_auth}"),
            "-U",
        ])
        .arg(SYSTEM_USER)
        .arg("-D")
        .arg(&data)
        .env("LC_ALL", "C"));
    let mut cmd = as_postgres(&bin.join("postgres"));
    cmd.arg("-D").arg(&data).args([
        "-p",
        &port.to_string(),
        "-c",
        "listen_addresses=127.0.0.1",
        "-c",
        &format!("unix_socket_directories={}", dir.display()),
        "-c",
        "password_encryption=scram-sha-256",
        "-c",
        "fsync=off",
        "-c",
        "logging_collector=off",
    ]);
    if tls {
        let (cert, key) = crate::self_signed_cert(&dir);
        chown_to_postgres(&cert);
        chown_to_postgres(&key);
        cmd.args([
            "-c".into(),
            "ssl=on".to_string(),
            "-c".into(),
            format!("ssl_cert_file={}", cert.display()),
            "-c".into(),
            format!("ssl_key_file={}", key.display()),
        ]);
    }
    let server = Server::spawn(cmd, port);
    let pg = Postgres {
        server,
        port,
        socket_dir: dir,
        bin,
    };
    // The port opens before recovery ends ("the database system is
    // starting up"): wait until a login over the socket works.
    crate::wait_until(std::time::Duration::from_secs(30), || {
        pg.admin_command("postgres", "SELECT 1")
            .output()
            .is_ok_and(|out| out.status.success())
    });
    pg.admin(&format!("CREATE ROLE {USER} LOGIN PASSWORD '{PASSWORD}'"));
    pg.admin(&format!("CREATE DATABASE {DATABASE} OWNER {USER}"));
    pg
}

/// `command` run as the postgres system user (setpriv execs it directly, so
/// the child's pid is the program's own and signals reach it).
fn as_postgres(program: &Path) -> Command {
    let mut cmd = Command::new("setpriv");
    cmd.args([
        "--reuid",
        SYSTEM_USER,
        "--regid",
        SYSTEM_USER,
        "--init-groups",
        "--",
    ])
    .arg(program);
    cmd
}

fn chown_to_postgres(path: &Path) {
    run(Command::new("chown").args(["-R", SYSTEM_USER]).arg(path));
}

impl Postgres {
    pub fn pid(&self) -> u32 {
        self.server.pid()
    }

    /// Runs `sql` as the superuser over the unix socket (not over TCP: not
    /// what a test captures).
    pub fn admin(&self, sql: &str) -> String {
        self.admin_in("postgres", sql)
    }

    /// Runs `sql` as the superuser in `DATABASE` over the unix socket.
    pub fn admin_db(&self, sql: &str) -> String {
        self.admin_in(DATABASE, sql)
    }

    fn admin_in(&self, database: &str, sql: &str) -> String {
        run(&mut self.admin_command(database, sql))
    }

    fn admin_command(&self, database: &str, sql: &str) -> Command {
        let mut cmd = Command::new("psql");
        cmd.args(["-X", "-v", "ON_ERROR_STOP=1", "-h"])
            .arg(&self.socket_dir)
            .args([
                "-p",
                &self.port.to_string(),
                "-U",
                SYSTEM_USER,
                "-d",
                database,
                "-c",
                sql,
            ]);
        cmd
    }

    /// Environment for a libpq client logging in as `USER` over TCP to
    /// `port` (the server's, or a relay's in front of it).
    pub fn client_env(port: u16, sslmode: &str) -> Vec<(&'static str, String)> {
        vec![
            ("PGHOST", "127.0.0.1".into()),
            ("PGPORT", port.to_string()),
            ("PGUSER", USER.into()),
            ("PGPASSWORD", PASSWORD.into()),
            ("PGDATABASE", DATABASE.into()),
            ("PGSSLMODE", sslmode.into()),
            // No GSSENCRequest first (no Kerberos here).
            ("PGGSSENCMODE", "disable".into()),
        ]
    }

    /// `psql -X` over TCP to `port` with `args` (e.g. `["-c", "SELECT 1"]`).
    pub fn psql(port: u16, sslmode: &str, args: &[&str]) -> Output {
        Command::new("psql")
            .arg("-X")
            .args(args)
            .envs(Self::client_env(port, sslmode))
            .output()
            .expect("psql")
    }

    /// `pgbench` over TCP to `port` with `args`.
    pub fn pgbench(&self, port: u16, args: &[&str]) -> Output {
        Command::new(self.bin.join("pgbench"))
            .args(args)
            .envs(Self::client_env(port, "disable"))
            .output()
            .expect("pgbench")
    }

    /// Initializes pgbench's tables (scale 1) over the unix socket.
    pub fn pgbench_init(&self) {
        run(Command::new(self.bin.join("pgbench"))
            .args(["-i", "-q", "-h"])
            .arg(&self.socket_dir)
            .args(["-p", &self.port.to_string(), "-U", SYSTEM_USER, DATABASE]));
        self.admin_db(&format!(
            "GRANT ALL ON ALL TABLES IN SCHEMA public TO {USER};"
        ));
    }

    /// A Python (psycopg 3) or Node.js (node-postgres) client script from
    /// tests/fixtures, connecting over TCP to `port`.
    pub fn script(interpreter: &str, script: &Path, port: u16) -> Output {
        let mut cmd = Command::new(interpreter);
        if interpreter == "node" {
            cmd.env("NODE_PATH", node_modules());
        }
        cmd.arg(script)
            .envs(Self::client_env(port, "disable"))
            .output()
            .expect("client script")
    }
}

/// node_modules of tests/pg-node (installed by scripts/setup.sh).
pub fn node_modules() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("pg-node")
        .join("node_modules")
}
