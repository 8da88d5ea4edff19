//! A MariaDB server of the test's own, and the `mariadb` command-line client.

use std::path::Path;
use std::process::Command;

use crate::{Server, free_port, run, scratch_dir};

/// Password of the `sonde` user of [`start`].
pub const PASSWORD: &str = "sekret-mysql-pw";

/// A MariaDB server on a free loopback port with user `sonde` (password
/// PASSWORD) and a `shop.items` table, prepared over the unix socket (not traced).
pub fn start(name: &str) -> (Server, u16) {
    let dir = scratch_dir(&format!("mariadb-{name}"));
    let data = dir.join("data");
    run(Command::new("mariadb-install-db").args([
        &format!("--datadir={}", data.display()),
        "--auth-root-authentication-method=normal",
        "--user=root",
        "--skip-test-db",
    ]));
    let port = free_port();
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
    let server = Server::spawn(cmd, port);
    admin(
        &socket,
        &format!(
            "CREATE USER 'sonde'@'127.0.0.1' IDENTIFIED BY '{PASSWORD}'; \
         GRANT ALL ON *.* TO 'sonde'@'127.0.0.1'; \
         CREATE DATABASE shop; CREATE TABLE shop.items (id INT PRIMARY KEY, name VARCHAR(50));"
        ),
    );
    (server, port)
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
