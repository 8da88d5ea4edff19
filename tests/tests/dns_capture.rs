//! End to end: dnsmasq answering dig (UDP and TCP), the libc resolver (in a
//! network namespace of the test's own, with its own resolv.conf) and a burst
//! of lookups on one UDP socket; captured by the real agent.

use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use sonde_e2e::servers::{dig, dnsmasq, dnsmasq_args};
use sonde_e2e::{Agent, Server, ebpf_available, fixture, free_port, run};

const WAIT: Duration = Duration::from_secs(20);

fn s(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

fn json(v: &Value) -> Value {
    serde_json::from_str(v.as_str().unwrap_or("null")).expect("a JSON column")
}

#[test]
fn dig_over_udp_and_tcp() {
    if !ebpf_available() {
        return;
    }
    let agent = Agent::start("dns-dig");
    let port = free_port();
    let _dnsmasq = dnsmasq(port);
    assert_eq!(dig(port, &["api.sonde.test", "A"]).trim(), "10.9.8.7");
    assert_eq!(dig(port, &["api.sonde.test", "AAAA"]).trim(), "fd00::7");
    assert_eq!(
        dig(port, &["txt.sonde.test", "TXT"]).trim(),
        "\"hello dns\""
    );
    assert_eq!(
        dig(port, &["+tcp", "www.sonde.test", "A"]).trim(),
        "api.sonde.test.\n10.9.8.7"
    );
    assert_eq!(dig(port, &["nope.sonde.test", "A"]).trim(), "");

    let sql = format!(
        "SELECT req_body, resp_header, resp_body, latency, remote_addr FROM dns_events \
         WHERE trace_role = 'client' AND remote_port = {port} ORDER BY time_"
    );
    let rows = agent.wait_rows(&sql, 5, WAIT);
    assert_eq!(rows.len(), 5, "{rows:?}");
    let query = |i: usize| json(&rows[i][0])["queries"][0].clone();
    let answers = |i: usize| json(&rows[i][2])["answers"].clone();
    assert_eq!(
        query(0),
        serde_json::json!({"name": "api.sonde.test", "type": "A"})
    );
    assert_eq!(answers(0)[0]["data"], "10.9.8.7");
    assert_eq!(answers(0)[0]["type"], "A");
    assert_eq!(query(1)["type"], "AAAA");
    assert_eq!(answers(1)[0]["data"], "fd00::7");
    assert_eq!(answers(2)[0]["type"], "TXT");
    assert!(
        s(&answers(2)[0]["data"]).contains("hello dns"),
        "{:?}",
        answers(2)
    );
    // Over TCP: the CNAME chain.
    assert_eq!(query(3)["name"], "www.sonde.test");
    assert_eq!(answers(3)[0]["type"], "CNAME");
    assert_eq!(answers(3)[0]["data"], "api.sonde.test");
    assert_eq!(answers(3)[1]["data"], "10.9.8.7");
    // NXDOMAIN is rcode 3.
    assert_eq!(json(&rows[4][1])["rcode"], 3);
    for row in &rows {
        assert!(row[3].as_i64().unwrap_or(0) > 0, "latency > 0: {row:?}");
        assert_eq!(s(&row[4]), "127.0.0.1");
    }
    // dnsmasq's side: one socket answering; each row has the client's address and port.
    let server = agent.query(&format!(
        "SELECT count(*), count(DISTINCT remote_port) FROM dns_events WHERE trace_role = 'server' AND local_port = {port}"
    ));
    assert_eq!(server[0][0].as_i64(), Some(5), "{server:?}");
    assert!(
        server[0][1].as_i64().unwrap_or(0) >= 2,
        "per-datagram peers: {server:?}"
    );
}

/// A network namespace with its own loopback and resolv.conf, removed on drop.
struct Netns {
    name: String,
}

impl Netns {
    fn new(name: &str) -> Netns {
        let _ = Command::new("ip").args(["netns", "delete", name]).output();
        run(Command::new("ip").args(["netns", "add", name]));
        run(Command::new("ip").args(["netns", "exec", name, "ip", "link", "set", "lo", "up"]));
        let etc = format!("/etc/netns/{name}");
        std::fs::create_dir_all(&etc).expect("/etc/netns dir");
        std::fs::write(
            format!("{etc}/resolv.conf"),
            "nameserver 127.0.0.1\noptions attempts:1 timeout:2\n",
        )
        .expect("resolv.conf");
        Netns {
            name: name.to_string(),
        }
    }

    fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name, program]);
        cmd
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "delete", &self.name])
            .output();
        let _ = std::fs::remove_dir_all(format!("/etc/netns/{}", self.name));
    }
}

#[test]
fn libc_resolver_lookups_are_captured() {
    if !ebpf_available() {
        return;
    }
    let agent = Agent::start("dns-libc");
    let netns = Netns::new("sonde-e2e-dns");
    let mut dnsmasq = netns.command("dnsmasq");
    dnsmasq.args(dnsmasq_args(53));
    let mut dnsmasq = dnsmasq.spawn().expect("dnsmasq in the namespace");
    std::thread::sleep(Duration::from_millis(500));
    // gethostbyname2 through nss "dns": glibc's own resolver (connect + sendto + recvfrom).
    // (getaddrinfo would skip IPv4 here: AI_ADDRCONFIG sees only loopback in the namespace.)
    let out = run(netns.command("getent").args(["hosts", "api.sonde.test"]));
    let _ = dnsmasq.kill();
    let _ = dnsmasq.wait();
    assert!(out.contains("api.sonde.test"), "{out}");

    let rows = agent.wait_rows(
        "SELECT req_body, resp_body, remote_port, remote_addr FROM dns_events \
         WHERE trace_role = 'client' AND comm = 'getent'",
        1,
        WAIT,
    );
    for row in &rows {
        let question = json(&row[0])["queries"][0].clone();
        assert_eq!(question["name"], "api.sonde.test", "{rows:?}");
        let expected = if question["type"] == "AAAA" {
            "fd00::7"
        } else {
            "10.9.8.7"
        };
        assert_eq!(json(&row[1])["answers"][0]["data"], expected, "{rows:?}");
        assert_eq!(row[2].as_i64(), Some(53));
        assert_eq!(s(&row[3]), "127.0.0.1");
    }
}

#[test]
fn burst_of_lookups_on_one_socket_is_fully_captured() {
    if !ebpf_available() {
        return;
    }
    let agent = Agent::start("dns-burst");
    let port = free_port();
    let _dnsmasq = Server::spawn(
        {
            let mut cmd = Command::new("dnsmasq");
            cmd.args(dnsmasq_args(port));
            cmd.arg("--dns-forward-max=1000");
            cmd
        },
        port,
    );
    let sent = 1000;
    let out = run(Command::new("python3")
        .arg(fixture("dns_burst.py"))
        .args([&port.to_string(), &sent.to_string()]));
    assert_eq!(out.trim(), sent.to_string());

    let sql = format!(
        "SELECT trace_role, count(*) FROM dns_events WHERE (remote_port = {port} OR local_port = {port}) \
         AND req_body LIKE '%burst%' GROUP BY trace_role ORDER BY trace_role"
    );
    let got = agent.wait_grouped_counts(&sql, 2 * sent, WAIT);
    assert_eq!(
        got,
        vec![("client".to_string(), sent), ("server".to_string(), sent)],
        "{:?}",
        agent.capture_stats()
    );
}
