//! End to end: Kubernetes columns. A stand-in API server serves recorded pod,
//! service, EndpointSlice and node lists; a client process is placed in a
//! cgroup named like a containerd container of one of those pods (the
//! kubelet's cgroupfs layout); its rows must carry that pod, while a host
//! process's rows carry nulls.

use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use sonde_e2e::{Agent, Server, ebpf_available, fixture, free_port, start_nginx};

const WAIT: Duration = Duration::from_secs(20);
/// From k8s/tests/fixtures/pods-list-1.json: pod default/web-7d4b9c8f6-abcde on node-1, container "web".
const POD_UID: &str = "19056a21-4c5d-4e0a-9d3b-7f930b2b6ee6";
const CONTAINER_ID: &str = "4b5e57f6eb2f42b9039b3d1e13929295f231749c510cbe341cd68036d9af97e2";

/// A cgroup (v1 `pids` hierarchy) shaped like the kubelet's, removed on drop.
struct PodCgroup {
    path: String,
}

impl PodCgroup {
    fn create() -> Option<PodCgroup> {
        let root = "/sys/fs/cgroup/pids";
        let root = if std::path::Path::new(root).is_dir() {
            root
        } else {
            "/sys/fs/cgroup"
        };
        let path = format!("{root}/kubepods/besteffort/pod{POD_UID}/{CONTAINER_ID}");
        std::fs::create_dir_all(&path).ok()?;
        Some(PodCgroup { path })
    }
}

impl Drop for PodCgroup {
    fn drop(&mut self) {
        let mut dir = std::path::PathBuf::from(&self.path);
        for _ in 0..3 {
            let _ = std::fs::remove_dir(&dir);
            dir.pop();
        }
    }
}

fn s(v: &Value) -> Option<String> {
    v.as_str().map(str::to_string)
}

#[test]
fn rows_carry_the_pod_of_a_containerised_process() {
    if !ebpf_available() {
        return;
    }
    let api_port = free_port();
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../k8s/tests/fixtures");
    let mut api = Command::new("python3");
    api.arg(fixture("fake_kube_api.py"))
        .arg(api_port.to_string())
        .arg(&fixtures);
    let _api = Server::spawn(api, api_port);
    let agent = Agent::start_with(
        "k8s",
        &[
            "--kubernetes-api",
            &format!("http://127.0.0.1:{api_port}"),
            "--node-name",
            "node-1",
        ],
    );
    // Wait until the resolver has listed pods, services, slices and nodes.
    let deadline = std::time::Instant::now() + WAIT;
    while agent.counter("kubernetes_metadata_synced") != 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "metadata never synced: {:?}",
            agent.capture_stats()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let port = free_port();
    let _nginx = start_nginx("k8s", port);
    let cgroup =
        PodCgroup::create().expect("cannot create a cgroup (needs root and a cgroup v1/v2 mount)");

    // The client joins the pod's cgroup first, and keeps the connection open a
    // moment so the agent can read its /proc entry while it is alive.
    let script = format!(
        "import socket, time\n\
         s = socket.create_connection(('127.0.0.1', {port}))\n\
         time.sleep(0.5)\n\
         s.sendall(b'GET /hello HTTP/1.1\\r\\nHost: pod\\r\\nConnection: close\\r\\n\\r\\n')\n\
         print(s.recv(4096).split(b' ')[1].decode())\n"
    );
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "echo $$ > {}/cgroup.procs && exec python3 -c \"$0\"",
            cgroup.path
        ))
        .arg(&script)
        .output()
        .expect("client in the pod cgroup");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "200",
        "{out:?}"
    );

    let sql = format!(
        "SELECT trace_role, pod, namespace, container, node, service FROM http_events \
         WHERE remote_port = {port} OR local_port = {port} ORDER BY trace_role"
    );
    let rows = agent.wait_rows(&sql, 2, WAIT);
    let client = &rows[0];
    assert_eq!(s(&client[0]).as_deref(), Some("client"));
    assert_eq!(
        s(&client[1]).as_deref(),
        Some("web-7d4b9c8f6-abcde"),
        "{rows:?}"
    );
    assert_eq!(s(&client[2]).as_deref(), Some("default"));
    assert_eq!(s(&client[3]).as_deref(), Some("web"));
    assert_eq!(s(&client[4]).as_deref(), Some("node-1"));
    assert_eq!(s(&client[5]).as_deref(), Some("default/web"), "{rows:?}");
    // nginx runs on the host: no pod, and the pod columns are null, not
    // errors; the node is where the row was captured.
    let server = &rows[1];
    assert_eq!(s(&server[0]).as_deref(), Some("server"));
    assert!(server[1..4].iter().all(Value::is_null), "{rows:?}");
    assert_eq!(s(&server[4]).as_deref(), Some("node-1"), "{rows:?}");
    assert!(server[5].is_null(), "{rows:?}");
}
