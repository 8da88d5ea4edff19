//! A MariaDB server of the test's own, and the `mariadb` command-line client.

use std::path::Path;
use std::process::Command;

use crate::{Server, free_port, run, scratch_dir};

/// Password of the `sonde` user of [`start`].
pub const PASSWORD: &str = "sekret-mysql-pw";

/// A MariaDB server on a free loopback port with user `sonde` (password
/// PASSWORD) and a `shop.items` table, prepared over the unix socket (not traced).
pub fn start(name: &str) -> (Server, u16) {
    let port = free_port();
    (start_with(name, port, None), port)
}

/// The same on `port`; with `tls` (certificate, key: PEM files, the
/// certificate also serving as CA) the server speaks TLS and the `sonde`
/// user must use it.
pub fn start_with(name: &str, port: u16, tls: Option<(&Path, &Path)>) -> Server {
    let dir = scratch_dir(&format!("mariadb-{name}"));
    let data = dir.join("data");
    run(Command::new("mariadb-install-db").args([
        &format!("--datadir={}", data.display()),
        "--auth-root-authentication-method=normal",
        "--user=root",
        "--skip-test-db",
    ]));
    let socket = dir.join("mysqld.sock");
    let mut cmd = Command::new("mariadbd");
    cmd.args([
        format!("--datadir={}", data.display()),
        format!("--socket={}", socket.display()),
        format!("--port={port}"),
        "--bind-address=127.0.0.1".into(),
        "--user=root".into(),
        format!("--pid-file={}", dir.join("mysqld.pid").display()),
        format!("--log-error={}", dir.join("error.log").display()),
        "--skip-log-bin".into(),
    ]);
    if let Some((cert, key)) = tls {
        cmd.args([
            format!("--ssl-cert={}", cert.display()),
            format!("--ssl-key={}", key.display()),
            format!("--ssl-ca={}", cert.display()),
        ]);
    }
    let server = Server::spawn(cmd, port);
    let require = if tls.is_some() { " REQUIRE SSL" } else { "" };
    admin(
        &socket,
        &format!(
            "CREATE USER 'sonde'@'127.0.0.1' IDENTIFIED BY '{PASSWORD}'{require}; \
         GRANT ALL ON *.* TO 'sonde'@'127.0.0.1'; \
         CREATE DATABASE shop; CREATE TABLE shop.items (id INT PRIMARY KEY, name VARCHAR(50));"
        ),
    );
    server
}

fn admin(socket: &Path, sql: &str) {
    run(Command::new("mariadb").args([
        &format!("--socket={}", socket.display()),
        "-u",
        "root",
        "-e",
        sql,
    ]));
}

pub fn client(port: u16, sql: &str) -> std::process::Output {
    Command::new("mariadb")
        .args([
            "-h",
            "127.0.0.1",
            "-P",
            &port.to_string(),
            "-u",
            "sonde",
            &format!("-p{PASSWORD}"),
            "shop",
            "-e",
            sql,
        ])
        .output()
        .expect("mariadb client")
}
