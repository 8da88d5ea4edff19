//! Real servers the end-to-end tests talk to, on loopback ports of their own.

use std::process::Command;

use crate::{Server, run, scratch_dir};

/// Python's `http.server` serving a directory holding `hello.txt` (whose
/// content is `hello`); other paths answer 404.
pub fn python_http_server(name: &str, port: u16, hello: &str) -> Server {
    let dir = scratch_dir(&format!("www-{name}"));
    std::fs::write(dir.join("hello.txt"), hello).expect("file");
    let mut cmd = Command::new("python3");
    cmd.args([
        "-m",
        "http.server",
        &port.to_string(),
        "--bind",
        "127.0.0.1",
        "--directory",
    ])
    .arg(&dir);
    Server::spawn(cmd, port)
}

/// redis-server without persistence, with a password when given.
pub fn redis_server(port: u16, password: Option<&str>) -> Server {
    let mut cmd = Command::new("redis-server");
    cmd.args([
        "--port",
        &port.to_string(),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        "/tmp",
    ]);
    if let Some(password) = password {
        cmd.args(["--requirepass", password]);
    }
    Server::spawn(cmd, port)
}

/// dnsmasq's arguments for the tests' records; `--local` makes unknown names
/// under sonde.test NXDOMAIN.
pub fn dnsmasq_args(port: u16) -> Vec<String> {
    [
        "--keep-in-foreground",
        "--no-resolv",
        "--no-hosts",
        "--bind-interfaces",
        "--listen-address=127.0.0.1",
        "--pid-file=",
        "--user=root",
        "--group=root",
        "--log-facility=/dev/null",
        "--local=/sonde.test/",
        "--host-record=api.sonde.test,10.9.8.7,fd00::7",
        "--txt-record=txt.sonde.test,hello dns",
        "--cname=www.sonde.test,api.sonde.test",
    ]
    .into_iter()
    .map(String::from)
    .chain([format!("--port={port}")])
    .collect()
}

/// dnsmasq with [`dnsmasq_args`] on `port`.
pub fn dnsmasq(port: u16) -> Server {
    let mut cmd = Command::new("dnsmasq");
    cmd.args(dnsmasq_args(port));
    Server::spawn(cmd, port)
}

/// `dig @127.0.0.1 -p PORT +short ARGS...` (one try, 2 s timeout).
pub fn dig(port: u16, args: &[&str]) -> String {
    run(Command::new("dig")
        .args([
            "@127.0.0.1",
            "-p",
            &port.to_string(),
            "+short",
            "+tries=1",
            "+time=2",
        ])
        .args(args))
}
