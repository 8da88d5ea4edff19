//! One query over every node: three real agents on this machine (each sees
//! the whole host, so each request appears once per node) with
//! `--node-name n1/n2/n3`, and a coordinator over their worker endpoints.
//!
//! Run as root, one test at a time: `cargo test -p sonde-e2e --test cluster -- --test-threads=1`

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sonde_e2e::{
    Agent, Coordinator, Server, ca_signed_cert, curl, ebpf_available, fixture, free_port,
    scratch_dir,
};

const WAIT: Duration = Duration::from_secs(30);
const REQUESTS: usize = 5;

fn start_agents() -> Vec<Agent> {
    ["n1", "n2", "n3"]
        .iter()
        .map(|node| Agent::start_with(&format!("cluster-{node}"), &["--node-name", node]))
        .collect()
}

fn worker_urls(agents: &[Agent]) -> Vec<String> {
    agents
        .iter()
        .map(|agent| agent.worker_url.clone().expect("the worker endpoint is on"))
        .collect()
}

/// `REQUESTS` requests at `path`; waits until every agent has the server
/// side of each.
fn traffic(agents: &[Agent], path: &str) -> sonde_e2e::Server {
    let port = free_port();
    let server = sonde_e2e::servers::python_http_server("cluster", port, "hi");
    for _ in 0..REQUESTS {
        curl(&["-o", "/dev/null", &format!("http://127.0.0.1:{port}{path}")]);
    }
    for agent in agents {
        agent.wait_rows(
            &format!(
                "SELECT 1 FROM http_events WHERE req_path = '{path}' AND trace_role = 'server'"
            ),
            REQUESTS,
            WAIT,
        );
    }
    server
}

fn per_node(path: &str) -> String {
    format!(
        "SELECT node, count(*) AS n FROM http_events \
         WHERE req_path = '{path}' AND trace_role = 'server' GROUP BY node ORDER BY node"
    )
}

#[test]
fn one_query_counts_every_node() {
    if !ebpf_available() {
        return;
    }
    let agents = start_agents();
    let urls = worker_urls(&agents);
    let peers: Vec<&str> = urls.iter().map(String::as_str).collect();
    let coordinator = Coordinator::start("count", &peers, &[]);
    let path = format!("/cluster-{}", std::process::id());
    let _server = traffic(&agents, &path);

    let rows = coordinator.query(&per_node(&path));
    let n = REQUESTS as i64;
    assert_eq!(
        rows,
        vec![
            vec![json!("n1"), json!(n)],
            vec![json!("n2"), json!(n)],
            vec![json!("n3"), json!(n)]
        ],
        "{}",
        coordinator.log()
    );

    // The agents' own tables carry the node too: every agent attached the
    // same tracepoints, and each node's rows come from that node alone.
    let own = agents[0].query("SELECT count(*) FROM probe_status WHERE kind = 'tracepoint'");
    let probes = own[0][0].as_i64().expect("a count");
    assert!(probes > 0);
    let rows = coordinator.query(
        "SELECT node, count(*) FROM probe_status WHERE kind = 'tracepoint' GROUP BY node ORDER BY node",
    );
    assert_eq!(
        rows,
        vec![
            vec![json!("n1"), json!(probes)],
            vec![json!("n2"), json!(probes)],
            vec![json!("n3"), json!(probes)]
        ]
    );
    let nodes = coordinator
        .query("SELECT DISTINCT node FROM capture_stats WHERE name = 'events_data' ORDER BY node");
    assert_eq!(
        nodes,
        vec![vec![json!("n1")], vec![json!("n2")], vec![json!("n3")]]
    );

    // Rows travel as results: a filter and a limit over all nodes.
    let rows = coordinator.query(&format!(
        "SELECT node, req_path, resp_status FROM http_events \
         WHERE req_path = '{path}' AND trace_role = 'server' AND node = 'n2' LIMIT 2"
    ));
    assert_eq!(rows.len(), 2);
    assert!(
        rows.iter()
            .all(|r| r[0] == json!("n2") && r[2] == json!(404)),
        "{rows:?}"
    );

    // The plan: scans and partial aggregates on the workers, below the
    // network shuffle; the final aggregate above it.
    let plan = coordinator.query("EXPLAIN SELECT node, count(*) FROM http_events GROUP BY node");
    let physical = plan
        .iter()
        .find(|row| row[0] == json!("physical_plan"))
        .and_then(|row| row[1].as_str())
        .unwrap_or_else(|| panic!("no physical plan: {plan:?}"))
        .to_owned();
    let lines: Vec<&str> = physical.lines().collect();
    let position = |needle: &str| {
        lines
            .iter()
            .position(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no {needle} in:\n{physical}"))
    };
    let shuffle = position("NetworkShuffleExec");
    let partial = position("AggregateExec: mode=Partial");
    let scan = position("ClusterScanExec: table=http_events");
    let final_aggregate = position("AggregateExec: mode=FinalPartitioned");
    assert!(
        final_aggregate < shuffle && shuffle < partial && partial < scan,
        "{physical}"
    );
    assert!(physical.contains("input_tasks=3"), "{physical}");

    // psql at the coordinator.
    let output = Command::new("psql")
        .args(["-h", "127.0.0.1", "-p", &coordinator.pg_port.to_string()])
        .args(["-U", "x", "-d", "sonde", "-w", "-X", "-At", "-c"])
        .arg(format!(
            "SELECT count(*) FROM http_events WHERE req_path = '{path}' AND trace_role = 'server'"
        ))
        .output()
        .expect("psql");
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        format!("{}\n", 3 * REQUESTS),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn a_stopped_node_is_named() {
    if !ebpf_available() {
        return;
    }
    let mut agents = start_agents();
    let urls = worker_urls(&agents);
    let peers: Vec<&str> = urls.iter().map(String::as_str).collect();
    let coordinator = Coordinator::start("stopped", &peers, &["--peer-timeout-ms", "1000"]);
    let path = format!("/cluster-stop-{}", std::process::id());
    let _server = traffic(&agents, &path);
    // All three answer: learn their names.
    assert_eq!(coordinator.query(&per_node(&path)).len(), 3);

    let n2 = agents.remove(1);
    let n2_url = n2.worker_url.clone().unwrap();
    n2.stop();

    // Without partial results: an error naming the node.
    let started = Instant::now();
    let failed = coordinator.query_raw(&per_node(&path), false);
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(failed.status, 503, "{}", failed.body);
    let error: Value = serde_json::from_str(&failed.body).unwrap();
    let message = error["error"].as_str().unwrap();
    assert!(
        message.starts_with(&format!("1 of 3 nodes did not answer: n2 ({n2_url})")),
        "{message}"
    );

    // With partial results: the others' rows, and a warning naming it.
    let partial = coordinator.query_raw(&per_node(&path), true);
    assert_eq!(partial.status, 200, "{}", partial.body);
    let n = REQUESTS as i64;
    assert_eq!(
        partial.rows(),
        vec![vec![json!("n1"), json!(n)], vec![json!("n3"), json!(n)]]
    );
    let body: Value = serde_json::from_str(&partial.body).unwrap();
    let warnings = body["warnings"].as_array().cloned().unwrap_or_default();
    assert_eq!(warnings.len(), 1, "{body}");
    let warning = warnings[0].as_str().unwrap();
    assert!(
        warning.starts_with(
            "partial results: 1 of 3 nodes did not answer and their rows are missing: n2 ("
        ),
        "{warning}"
    );
    assert_eq!(partial.warnings, [warning.to_owned()]);

    // The CLI: rows on stdout, the warning on stderr.
    let output = Command::new(sonde_e2e::sonde_binary())
        .args([
            "query",
            "--server",
            &coordinator.url,
            "--format",
            "csv",
            "--partial",
        ])
        .arg(per_node(&path))
        .output()
        .expect("sonde query");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        format!("node,n\nn1,{n}\nn3,{n}\n")
    );
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        format!("sonde: warning: {warning}\n")
    );
    let output = Command::new(sonde_e2e::sonde_binary())
        .args(["query", "--server", &coordinator.url])
        .arg(per_node(&path))
        .output()
        .expect("sonde query");
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("n2 ("),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The DaemonSet's way: the coordinator finds the agents through their
/// headless Service's EndpointSlices (a stand-in API server serves them),
/// calls their worker endpoints over TLS (a private CA's certificate,
/// trusted with `--worker-certificate`) and with the cluster's token; a coordinator
/// without the token gets nothing from them.
#[test]
fn agents_found_through_kubernetes_over_tls_with_the_token() {
    if !ebpf_available() {
        return;
    }
    let dir = scratch_dir("cluster-kubernetes");
    let (ca, cert, key) = ca_signed_cert(&dir);
    let (ca, cert, key) = (
        ca.to_str().unwrap(),
        cert.to_str().unwrap(),
        key.to_str().unwrap(),
    );
    let token = "cluster-token-0123456789";
    let token_file = dir.join("token");
    std::fs::write(&token_file, format!("{token}\n")).unwrap();
    let token_file = token_file.to_str().unwrap();
    let agents: Vec<Agent> = ["n1", "n2"]
        .iter()
        .map(|node| {
            Agent::start_with(
                &format!("cluster-tls-{node}"),
                &[
                    "--node-name",
                    node,
                    "--auth-token-file",
                    token_file,
                    "--worker-tls-cert",
                    cert,
                    "--worker-tls-key",
                    key,
                    // Agents call each other in a query's shuffles.
                    "--worker-certificate",
                    ca,
                ],
            )
        })
        .collect();

    // One EndpointSlice per agent: they share 127.0.0.1, so each needs its
    // own port.
    let slices: Vec<Value> = agents
        .iter()
        .zip(["n1", "n2"])
        .map(|(agent, node)| {
            let url = agent.worker_url.as_deref().unwrap();
            let port: u16 = url.rsplit(':').next().unwrap().parse().unwrap();
            json!({
                "metadata": {
                    "name": format!("sonde-agents-{node}"),
                    "labels": {"kubernetes.io/service-name": "sonde-agents"}
                },
                "addressType": "IPv4",
                "ports": [{"name": "worker", "port": port, "protocol": "TCP"}],
                "endpoints": [{
                    "addresses": ["127.0.0.1"],
                    "conditions": {"ready": true},
                    "nodeName": node
                }]
            })
        })
        .collect();
    let list = json!({"kind": "EndpointSliceList", "apiVersion": "discovery.k8s.io/v1",
                      "metadata": {"resourceVersion": "1"}, "items": slices});
    std::fs::write(
        dir.join("endpointslices-sonde.json"),
        serde_json::to_vec(&list).unwrap(),
    )
    .unwrap();
    let api_port = free_port();
    let mut api = Command::new("python3");
    api.arg(fixture("fake_kube_api.py"))
        .arg(api_port.to_string())
        .arg(&dir);
    let _api = Server::spawn(api, api_port);
    let api_url = format!("http://127.0.0.1:{api_port}");
    let discovery = [
        "--peers-from-kubernetes",
        "sonde/sonde-agents",
        "--kubernetes-api",
        &api_url,
        "--worker-certificate",
        ca,
        "--peer-timeout-ms",
        "5000",
    ];
    let mut args = discovery.to_vec();
    args.extend(["--auth-token-file", token_file]);
    let coordinator = Coordinator::start_with("kubernetes", &args, Some(token));

    let port = free_port();
    let _server = sonde_e2e::servers::python_http_server("cluster-tls", port, "hi");
    let path = format!("/cluster-tls-{}", std::process::id());
    for _ in 0..REQUESTS {
        curl(&["-o", "/dev/null", &format!("http://127.0.0.1:{port}{path}")]);
    }
    let n = REQUESTS as i64;
    let expected = vec![vec![json!("n1"), json!(n)], vec![json!("n2"), json!(n)]];
    let deadline = Instant::now() + WAIT;
    loop {
        let rows = coordinator.query(&per_node(&path));
        if rows == expected {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{rows:?} != {expected:?}\n{}",
            coordinator.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // The same discovery without the token: both agents refuse it, and the
    // query says so instead of answering with nothing.
    let no_token = Coordinator::start_with("kubernetes-no-token", &discovery, None);
    let refused = no_token.query_raw(&per_node(&path), false);
    assert_eq!(refused.status, 503, "{}", refused.body);
    let error: Value = serde_json::from_str(&refused.body).unwrap();
    let message = error["error"].as_str().unwrap_or_default();
    assert!(
        message.starts_with("2 of 2 nodes did not answer: n1 (https://127.0.0.1:"),
        "{message}"
    );
    assert_eq!(
        message.matches("missing or wrong bearer token").count(),
        2,
        "{message}"
    );
}
