"""Live part of the Sonde benchmark harness (needs root): overhead on nginx
under wrk with and without the agent, capture completeness at fixed rates,
memory, traffic of no known protocol (iperf3), and, opt-in, where the whole
machine's CPU goes per request (cpu_breakdown, needs perf). Writes OUT/live.json.
SONDE_BENCH_COMPARE="--flag value ..." (and/or SONDE_BENCH_COMPARE_BINARY=PATH,
another build of the agent) adds a third run to every overhead
pair: the agent with those flags (A/B of a setting in one run). Then `report` prints the whole table from OUT
(criterion logs, query CSVs, live.json).

Usage: run.py live OUT SONDE_BIN SIZE      run.py report OUT"""
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
NGINX_PORT = 18080
API = "127.0.0.1:19700"

SIZES = {
    # duration s, A/B pairs, wrk connections, completeness rates, requests per rate, flood s
    "tiny": dict(duration=3, pairs=1, conns=16, rates=[500, 2000], per_rate_seconds=2, flood=3, equal_rate=2000,
                 iperf=2, state_flood=(200, 20), file_io_calls=200_000),
    "full": dict(duration=15, pairs=3, conns=16, rates=[1000, 5000, 10000, 20000], per_rate_seconds=10, flood=20,
                 equal_rate=10000, iperf=5, state_flood=(2000, 100), file_io_calls=2_000_000),
}


def log(msg):
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- processes
def start_nginx(workdir):
    d = os.path.join(workdir, "nginx")
    os.makedirs(os.path.join(d, "html"), exist_ok=True)
    conf = f"""worker_processes 1;
daemon off;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    keepalive_requests 1000000;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    server {{
        listen 127.0.0.1:{NGINX_PORT};
        root {d}/html;
        location / {{ default_type text/plain; return 200 "hello from nginx\\n"; }}
    }}
}}
"""
    path = os.path.join(d, "nginx.conf")
    with open(path, "w") as f:
        f.write(conf)
    p = subprocess.Popen(["nginx", "-c", path, "-p", d], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(NGINX_PORT)
    return p


def wait_port(port, timeout=20):
    import socket
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"port {port} did not open")


COMPARE_ARGS = os.environ.get("SONDE_BENCH_COMPARE", "").split()
# Another agent binary for the compare run (an A/B of a build choice, e.g.
# the allocator): the same flags, or SONDE_BENCH_COMPARE's.
COMPARE_BINARY = os.environ.get("SONDE_BENCH_COMPARE_BINARY", "")


class Agent:
    def __init__(self, sonde, workdir, budget_mib=1024, tag="agent", extra_args=()):
        self.log_path = os.path.join(workdir, f"{tag}.log")
        self.proc = subprocess.Popen(
            [sonde, "agent", "--listen", API, "--store-budget-mib", str(budget_mib), "--log", "warn",
             *extra_args],
            stdout=open(self.log_path, "w"), stderr=subprocess.STDOUT)
        deadline = time.time() + 120
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"agent exited: {open(self.log_path).read()[-2000:]}")
            try:
                if urllib.request.urlopen(f"http://{API}/readyz", timeout=1).status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError("agent not ready after 120 s")

    def cpu_seconds(self):
        fields = open(f"/proc/{self.proc.pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def status_kib(self, key):
        for line in open(f"/proc/{self.proc.pid}/status"):
            if line.startswith(key + ":"):
                return int(line.split()[1])
        return 0

    def stop(self):
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def metrics():
    text = urllib.request.urlopen(f"http://{API}/metrics", timeout=10).read().decode()
    out = {}
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        name, _, value = line.rpartition(" ")
        try:
            out[name] = float(value)
        except ValueError:
            pass
    return out


def query(sql):
    req = urllib.request.Request(f"http://{API}/api/v1/query", data=json.dumps({"sql": sql}).encode(),
                                 headers={"Content-Type": "application/json"})
    return json.loads(urllib.request.urlopen(req, timeout=60).read())["rows"]


# ---------------------------------------------------------------- wrk
def wrk(duration, conns, path, delay_ms=None):
    cmd = ["wrk", "-t1", f"-c{conns}", f"-d{duration}s", "--latency", "--timeout", "5s"]
    env = dict(os.environ)
    if delay_ms is not None:
        cmd += ["-s", os.path.join(HERE, "rate.lua")]
        env["RATE_DELAY_MS"] = str(delay_ms)
    out = subprocess.run(cmd + [f"http://127.0.0.1:{NGINX_PORT}{path}"], capture_output=True, text=True,
                         env=env, timeout=duration + 60, check=True).stdout

    def lat(label):
        m = re.search(rf"^\s+{label}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        v = float(m.group(1))
        return v * {"us": 1, "ms": 1e3, "s": 1e6}[m.group(2)]
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "requests": int(re.search(r"(\d+) requests in", out).group(1)),
        "p50_us": lat("50"), "p99_us": lat("99"),
        "errors": bool(re.search(r"Non-2xx|Socket errors", out)),
    }


# ---------------------------------------------------------------- phases
LOSS_KEYS = ("lost", "drop", "gap", "full", "malformed", "unmatched", "unknown_conn", "fail", "evict", "not_copied",
             "truncat")


def loss_deltas(before, after):
    deltas = {}
    for k, v in after.items():
        if k.startswith("sonde_table") or k.startswith("sonde_evicted"):
            continue
        if any(s in k for s in LOSS_KEYS) and v - before.get(k, 0) > 0:
            deltas[k] = v - before.get(k, 0)
    return deltas


def pair_variants(sonde):
    """(traced, binary, extra agent flags, compare) of each run of an A/B
    pair: untraced, the defaults, and the compare build or flags if given
    (the one run with compare true)."""
    variants = [(False, None, None, False), (True, sonde, [], False)]
    if COMPARE_ARGS or COMPARE_BINARY:
        variants.append((True, COMPARE_BINARY or sonde, COMPARE_ARGS, True))
    return variants


def overhead(cfg, sonde, workdir):
    runs = []
    for pair in range(cfg["pairs"]):
        for traced, binary, extra, compare in pair_variants(sonde):
            agent = Agent(binary, workdir, tag=f"overhead{pair}", extra_args=extra) if traced else None
            cpu0 = agent.cpu_seconds() if agent else 0
            r = wrk(cfg["duration"], cfg["conns"], f"/overhead/{pair}/{int(traced)}")
            if agent:
                r["agent_cpu_s"] = agent.cpu_seconds() - cpu0
                r["agent_hwm_kib"] = agent.status_kib("VmHWM")
                time.sleep(2)
                m = metrics()
                r["table_rows"] = m.get('sonde_table_rows{table="http_events"}', 0)
                r["table_bytes"] = m.get('sonde_table_bytes{table="http_events"}', 0)
                r["loss_counters"] = loss_deltas({}, m)
                agent.stop()
            r["traced"] = traced
            r["compare"] = compare
            log(f"overhead pair {pair} traced={traced} binary={binary} flags={extra}: {r}")
            runs.append(r)
    # Equal load: same offered rate with and without the agent.
    delay = max(1, round(cfg["conns"] * 1000 / cfg["equal_rate"]))
    equal = []
    for traced in (False, True):
        agent = Agent(sonde, workdir, tag="equal") if traced else None
        r = wrk(cfg["duration"], cfg["conns"], f"/equal/{int(traced)}", delay_ms=delay)
        if agent:
            agent.stop()
        r["traced"] = traced
        log(f"equal load traced={traced}: {r}")
        equal.append(r)
    return {"runs": runs, "equal": equal, "equal_delay_ms": delay}


# The steady stage's store: small enough to be full after the warm-up, so
# the measured run evicts as much as it stores (a node that has run for a
# while), where the overhead stage's 1 GiB store is still filling with
# first-touch pages.
STEADY_BUDGET_MIB = 64
STEADY_WARMUP_S = 3


def steady(cfg, sonde, workdir):
    """The overhead load against an agent whose store is already full:
    untraced, then traced (and the compare build or flags) in each pair;
    agent CPU counted after a warm-up that fills the store."""
    runs = []
    for pair in range(cfg["pairs"]):
        for traced, binary, extra, compare in pair_variants(sonde):
            agent = None
            if traced:
                agent = Agent(binary, workdir, budget_mib=STEADY_BUDGET_MIB, tag=f"steady{pair}", extra_args=extra)
                wrk(STEADY_WARMUP_S, cfg["conns"], f"/steady/{pair}/warm")
                evicted0 = metrics().get("sonde_evicted_rows_http_events", 0)
                cpu0 = agent.cpu_seconds()
            r = wrk(cfg["duration"], cfg["conns"], f"/steady/{pair}/{int(traced)}")
            if agent:
                r["agent_cpu_s"] = agent.cpu_seconds() - cpu0
                r["evicted_rows"] = metrics().get("sonde_evicted_rows_http_events", 0) - evicted0
                r["agent_hwm_kib"] = agent.status_kib("VmHWM")
                agent.stop()
            r["traced"] = traced
            r["compare"] = compare
            log(f"steady pair {pair} traced={traced} binary={binary} flags={extra}: {r}")
            runs.append(r)
    return {"runs": runs, "budget_mib": STEADY_BUDGET_MIB, "warmup_s": STEADY_WARMUP_S}


def completeness(cfg, sonde, workdir):
    results = []
    for rate in cfg["rates"]:
        count = rate * cfg["per_rate_seconds"]
        agent = Agent(sonde, workdir, tag=f"complete{rate}")
        before = metrics()
        path = f"/complete/{rate}"
        procs = 1 if rate <= 2000 else 2
        out = subprocess.run([sys.executable, os.path.join(HERE, "loadgen.py"), str(NGINX_PORT), path, str(count),
                              "8", str(procs), str(rate), str(cfg["per_rate_seconds"] * 4 + 10)],
                             capture_output=True, text=True, timeout=cfg["per_rate_seconds"] * 4 + 60, check=True)
        gen = json.loads(out.stdout)
        time.sleep(3)  # reorder wait (0.5 s) + flush (1 s) + margin
        rows = dict((r[0], r[1]) for r in query(
            f"SELECT trace_role, count(*) FROM http_events WHERE req_path = '{path}' GROUP BY trace_role"))
        after = metrics()
        agent.stop()
        deltas = loss_deltas(before, after)
        r = {"target_rate": rate, "sent": gen["sent"], "ok": gen["ok"], "achieved_rate": round(gen["rate"]),
             "server_rows": rows.get("server", 0), "client_rows": rows.get("client", 0), "loss_counters": deltas}
        log(f"completeness {r}")
        results.append(r)
    return results


def memory(cfg, sonde, workdir):
    agent = Agent(sonde, workdir, budget_mib=16, tag="flood")
    r = wrk(cfg["flood"], cfg["conns"], "/flood/" + "x" * 64)
    time.sleep(2)
    m = metrics()
    res = {
        "budget_mib": 16, "flood_requests": r["requests"],
        "rss_kib": agent.status_kib("VmRSS"), "hwm_kib": agent.status_kib("VmHWM"),
        "http_rows": m.get('sonde_table_rows{table="http_events"}', 0),
        "http_bytes": m.get('sonde_table_bytes{table="http_events"}', 0),
        "http_budget": m.get('sonde_table_budget_bytes{table="http_events"}', 0),
        "store_bytes": sum(v for k, v in m.items() if k.startswith("sonde_table_bytes")),
        "evicted": {k: v for k, v in m.items() if "evict" in k and v > 0},
    }
    agent.stop()
    log(f"memory {res}")
    return res


def iperf(cfg, sonde, workdir):
    """iperf3 over loopback (a protocol Sonde does not parse): throughput
    with and without the agent, the bytes the kernel copied for the agent,
    and the agent's CPU."""
    port = 15201
    server = subprocess.Popen(["iperf3", "-s", "-p", str(port)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        wait_port(port)
        res = {}
        for traced in (False, True):
            agent = Agent(sonde, workdir, tag="iperf") if traced else None
            before = metrics() if agent else {}
            cpu0 = agent.cpu_seconds() if agent else 0
            out = subprocess.run(["iperf3", "-c", "127.0.0.1", "-p", str(port), "-t", str(cfg["iperf"]), "-J"],
                                 capture_output=True, text=True, timeout=cfg["iperf"] + 60, check=True).stdout
            end = json.loads(out)["end"]
            r = {"bytes": end["sum_sent"]["bytes"], "bits_per_second": end["sum_sent"]["bits_per_second"]}
            if agent:
                r["agent_cpu_s"] = agent.cpu_seconds() - cpu0
                time.sleep(2)
                after = metrics()
                for key in ("bytes_captured", "kernel_uncopied_bytes", "kernel_bytes_not_copied", "conns_opaque"):
                    r[key] = after.get(f"sonde_{key}", 0) - before.get(f"sonde_{key}", 0)
                agent.stop()
            res["traced" if traced else "untraced"] = r
            log(f"iperf3 traced={traced}: {r}")
        res["seconds"] = cfg["iperf"]
        return res
    finally:
        server.terminate()
        server.wait(timeout=10)


def file_io(cfg, sonde, workdir):
    """What the syscall tracepoints cost I/O on no socket: `dd bs=1` from
    /dev/zero to /dev/null (one read and one write per byte) with and
    without the agent (and the compare build or flags), per pair. Every
    process's file and pipe reads and writes run the agent's programs."""
    def dd_seconds():
        start = time.perf_counter()
        subprocess.run(["dd", "if=/dev/zero", "of=/dev/null", "bs=1", f"count={cfg['file_io_calls']}"],
                       check=True, capture_output=True)
        return time.perf_counter() - start

    runs = []
    for pair in range(cfg["pairs"]):
        for traced, binary, extra, compare in pair_variants(sonde):
            agent = Agent(binary, workdir, tag=f"file_io{pair}", extra_args=extra) if traced else None
            try:
                r = {"seconds": dd_seconds()}
            finally:
                if agent:
                    agent.stop()
            r["traced"] = traced
            r["compare"] = compare
            log(f"file io pair {pair} traced={traced} binary={binary} flags={extra}: {r}")
            runs.append(r)
    return {"calls": 2 * cfg["file_io_calls"], "runs": runs}


def state_flood(cfg, sonde, workdir):
    """Connections that pile up requests no one answers: the agent's memory
    must stay within the store budget + --max-connection-state-mib + a fixed
    margin, what it sheds counted."""
    budget, state_mib = 64, 32
    conns, per_conn = cfg["state_flood"]
    agent = Agent(sonde, workdir, budget_mib=budget, tag="state_flood",
                  extra_args=["--max-connection-state-mib", str(state_mib)])
    try:
        time.sleep(1)
        rss_before = agent.status_kib("VmRSS")
        flood = subprocess.Popen([sys.executable, os.path.join(HERE, "state_flood.py"), "18090", str(conns),
                                  str(per_conn), "3"], stdout=subprocess.PIPE, text=True)
        peak_state = 0
        while flood.poll() is None:
            peak_state = max(peak_state, metrics().get("sonde_connection_state_bytes", 0))
            time.sleep(0.5)
        sent = json.loads(flood.stdout.read())
        time.sleep(2)
        m = metrics()
        res = {"budget_mib": budget, "state_mib": state_mib, **sent,
               "rss_before_kib": rss_before, "hwm_kib": agent.status_kib("VmHWM"),
               "peak_state_bytes": peak_state, "state_after_close": m.get("sonde_connection_state_bytes", 0),
               "dropped_bytes": m.get("sonde_stream_buffer_dropped_bytes", 0),
               "unanswered": m.get("sonde_http_unmatched_requests", 0)}
    finally:
        agent.stop()
    log(f"state flood {res}")
    return res


def payload_bytes():
    """Bytes on the wire per request+response of the overhead runs (wrk's request, nginx's response)."""
    import socket
    path = "/overhead/0/1"
    req = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{NGINX_PORT}\r\n\r\n".encode()
    s = socket.create_connection(("127.0.0.1", NGINX_PORT))
    s.sendall(req)
    time.sleep(0.2)
    resp = s.recv(65536)
    s.close()
    return len(req), len(resp)


def bpf_programs(pid):
    """run_time_ns and run_cnt of each BPF program the process holds (fdinfo;
    counted while kernel.bpf_stats_enabled is 1)."""
    out = {}
    fdinfo = f"/proc/{pid}/fdinfo"
    for fd in os.listdir(fdinfo):
        try:
            text = open(os.path.join(fdinfo, fd)).read()
        except OSError:
            continue
        if "prog_type" not in text:
            continue
        kv = dict(line.split(":\t", 1) for line in text.strip().splitlines() if ":\t" in line)
        out[kv.get("prog_id", fd).strip()] = (int(kv.get("run_time_ns", "0")), int(kv.get("run_cnt", "0")))
    return out


def bpf_program_names():
    """id -> name of every loaded BPF program ({} without bpftool: the
    report then names programs by id)."""
    try:
        out = subprocess.run(["bpftool", "-j", "prog", "show"], capture_output=True, text=True, timeout=60,
                             check=True).stdout
        return {str(p["id"]): p.get("name", "") for p in json.loads(out)}
    except (OSError, ValueError, KeyError, subprocess.SubprocessError):
        return {}


def bpf_cost_run(cfg, binary, extra, workdir):
    """One agent under the wrk load: its BPF programs' run time and runs."""
    agent = Agent(binary, workdir, tag="bpf_cost", extra_args=extra)
    stats = "/proc/sys/kernel/bpf_stats_enabled"
    previous = open(stats).read().strip()
    try:
        open(stats, "w").write("1")
        before = bpf_programs(agent.proc.pid)
        cpu0 = agent.cpu_seconds()
        r = wrk(cfg["duration"], cfg["conns"], "/bpf_cost")
        after = bpf_programs(agent.proc.pid)
        r["agent_cpu_s"] = agent.cpu_seconds() - cpu0
        names = bpf_program_names()
    finally:
        open(stats, "w").write(previous)
        agent.stop()
    programs = []
    for prog, (ns, runs) in after.items():
        ns0, runs0 = before.get(prog, (0, 0))
        if runs > runs0:
            programs.append({"prog": prog, "name": names.get(prog) or f"id {prog}", "ns": ns - ns0,
                             "runs": runs - runs0})
    r["programs"] = sorted(programs, key=lambda p: -p["ns"])
    r["ns_per_request"] = sum(p["ns"] for p in programs) / max(r["requests"], 1)
    log(f"bpf cost: {r}")
    return r


def bpf_cost(cfg, sonde, workdir):
    """Time spent in the agent's BPF programs (in the traced processes'
    syscalls, so not in the agent's own CPU time) per wrk request. With a
    compare build or flags: A, B, A, B (the B runs under "compare")."""
    r = bpf_cost_run(cfg, sonde, [], workdir)
    if COMPARE_ARGS or COMPARE_BINARY:
        binary = COMPARE_BINARY or sonde
        first = bpf_cost_run(cfg, binary, COMPARE_ARGS, workdir)
        r["again"] = bpf_cost_run(cfg, sonde, [], workdir)
        r["compare"] = [first, bpf_cost_run(cfg, binary, COMPARE_ARGS, workdir)]
    return r


# Frames of the syscall-tracepoint path in the traced processes' stacks
# (the perf/BPF handlers of the enter and exit tracepoints).
TRACEPOINT_FRAMES = ("perf_syscall_enter", "perf_syscall_exit")


def perf_samples(data):
    """(command, frames innermost first) of each sample of a perf.data file."""
    text = subprocess.run(["perf", "script", "-i", data, "-F", "comm,ip,sym"], capture_output=True, text=True,
                          check=True).stdout
    comm, frames = None, []
    for line in text.splitlines() + [""]:
        if not line.strip():
            if comm is not None:
                yield comm, frames
            comm, frames = None, []
        elif not line[0].isspace():
            comm = line.strip()  # the whole line: a thread name may hold spaces
        else:
            parts = line.split(None, 1)
            frames.append(re.sub(r"\+0x[0-9a-f]+$", "", parts[1].strip()) if len(parts) > 1 else "?")


def cpu_breakdown(cfg, sonde, workdir):
    """Where the CPU of the whole machine goes per request, untraced and
    traced (perf record -a, cpu-clock): per command, and within the traced
    processes the syscall-tracepoint path split into its innermost
    functions (BPF program bodies, probe reads, maps, ring buffer, the
    tracepoint's own wrapper). Opt-in: SONDE_BENCH_STAGES=cpu_breakdown."""
    hz = 997
    out = {}
    for traced in (False, True):
        agent = Agent(sonde, workdir, tag="cpu_breakdown") if traced else None
        try:
            wrk(2, cfg["conns"], "/cpu_breakdown/warm")
            data = os.path.join(workdir, f"cpu_breakdown_{int(traced)}.data")
            perf = subprocess.Popen(["perf", "record", "-a", "-g", "-e", "cpu-clock", "-F", str(hz), "-o", data,
                                     "--", "sleep", str(cfg["duration"])],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                r = wrk(cfg["duration"], cfg["conns"], f"/cpu_breakdown/{int(traced)}")
            finally:
                perf_status = perf.wait(timeout=cfg["duration"] + 60)
            if perf_status != 0:
                raise RuntimeError("perf record failed (is linux-perf installed?)")
        finally:
            if agent:
                agent.stop()
        per_comm, tracepoint = {}, {}
        for comm, frames in perf_samples(data):
            per_comm[comm] = per_comm.get(comm, 0) + 1
            if comm in ("wrk", "nginx") and frames and any(f in TRACEPOINT_FRAMES for f in frames):
                inner = "BPF program bodies" if frames[0].startswith("bpf_prog_") else frames[0]
                tracepoint[inner] = tracepoint.get(inner, 0) + 1
        us = 1e6 / hz / r["requests"]
        r["us_per_request_by_command"] = {k: v * us for k, v in per_comm.items()}
        r["tracepoint_us_per_request"] = {k: v * us for k, v in tracepoint.items()}
        log(f"cpu breakdown traced={traced}: {r['rps']:.0f} req/s")
        out["traced" if traced else "untraced"] = r
    return out


STAGES = {"overhead": overhead, "completeness": completeness, "memory": memory, "iperf": iperf, "file_io": file_io,
          "state_flood": state_flood, "bpf_cost": bpf_cost, "steady": steady}
# Run only when named in SONDE_BENCH_STAGES (needs perf).
OPTIONAL_STAGES = {"cpu_breakdown": cpu_breakdown}
# SONDE_BENCH_STAGES=overhead,iperf runs only those stages (a quick A/B).
SELECTED_STAGES = [x for x in os.environ.get("SONDE_BENCH_STAGES", ",".join(STAGES)).split(",") if x]


def live(out, sonde, size):
    cfg = SIZES[size]
    workdir = os.path.join(out, "work")
    os.makedirs(workdir, exist_ok=True)
    nginx = start_nginx(workdir)
    try:
        res = {"size": size, "config": cfg, "compare_args": COMPARE_ARGS,
               "compare_binary": COMPARE_BINARY}
        res["payload"] = payload_bytes()
        for name, stage in {**STAGES, **OPTIONAL_STAGES}.items():
            if name in SELECTED_STAGES:
                res[name] = stage(cfg, sonde, workdir)
    finally:
        nginx.terminate()
        nginx.wait(timeout=10)
    with open(os.path.join(out, "live.json"), "w") as f:
        json.dump(res, f, indent=1)


# ---------------------------------------------------------------- report
def med(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2] if xs else float("nan")


def compare_label(res):
    """The compare build and flags of a run, as the report names them."""
    return " ".join(res.get("compare_args", []) + [res.get("compare_binary", "")]).strip()


def report(out):
    lines = []
    add = lines.append
    live_path = os.path.join(out, "live.json")
    if os.path.exists(live_path):
        res = json.load(open(live_path))
    if os.path.exists(live_path) and "overhead" in res:
        o = res["overhead"]
        a = [r for r in o["runs"] if not r["traced"]]
        b = [r for r in o["runs"] if r["traced"] and not r.get("compare")]
        c = [r for r in o["runs"] if r.get("compare")]
        add(f"== Overhead: wrk -t1 -c{res['config']['conns']} {res['config']['duration']} s x {len(a)} A/B pairs, nginx 'return 200' keep-alive loopback")
        add(f"{'':32}{'untraced':>12}{'traced':>12}{'ratio/delta':>14}")
        ra, rb = med([r["rps"] for r in a]), med([r["rps"] for r in b])
        add(f"{'throughput req/s (median)':32}{ra:>12.0f}{rb:>12.0f}{rb / ra:>14.3f}")
        for k, label in (("p50_us", "p50 latency us"), ("p99_us", "p99 latency us")):
            x, y = med([r[k] for r in a]), med([r[k] for r in b])
            add(f"{label:32}{x:>12.0f}{y:>12.0f}{y - x:>+14.0f}")
        cpu = sum(r["agent_cpu_s"] for r in b) / sum(r["requests"] for r in b) * 1e6
        add(f"{'agent CPU s per 1M requests':32}{'':>12}{cpu:>12.2f}")
        add(f"{'agent peak RSS MiB (VmHWM)':32}{'':>12}{max(r['agent_hwm_kib'] for r in b) / 1024:>12.1f}")
        cap = [r["table_rows"] / (2 * r["requests"]) for r in b]
        add("rows stored 2 s after the run / (2 x wrk requests, client+server rows): " + ", ".join("%.3f" % c for c in cap))
        losses = {}
        for r in b:
            for k, v in r.get("loss_counters", {}).items():
                losses[k] = losses.get(k, 0) + v
        add("loss counters during traced runs: " + (", ".join("%s=%d" % kv for kv in sorted(losses.items())) or "none"))
        add("per-pair ratios: " + ", ".join("%.3f" % (y["rps"] / x["rps"]) for x, y in zip(a, b)))
        if c:
            rc = med([r["rps"] for r in c])
            cpu_c = sum(r["agent_cpu_s"] for r in c) / sum(r["requests"] for r in c) * 1e6
            what = compare_label(res)
            add(f"with {what}: throughput {rc:.0f} req/s (ratio {rc / ra:.3f}), "
                f"agent CPU s per 1M requests {cpu_c:.2f}, "
                f"peak RSS {max(r['agent_hwm_kib'] for r in c) / 1024:.1f} MiB; per-pair ratios: "
                + ", ".join("%.3f" % (y["rps"] / x["rps"]) for x, y in zip(a, c)))
        e = o["equal"]
        add(f"== Equal load (wrk + rate.lua, {o['equal_delay_ms']} ms wait per connection)")
        add(f"{'achieved req/s':32}{e[0]['rps']:>12.0f}{e[1]['rps']:>12.0f}")
        for k, label in (("p50_us", "p50 latency us"), ("p99_us", "p99 latency us")):
            add(f"{label:32}{e[0][k]:>12.0f}{e[1][k]:>12.0f}{e[1][k] - e[0][k]:>+14.0f}")
    if os.path.exists(live_path) and "steady" in res:
        st = res["steady"]
        a = [r for r in st["runs"] if not r["traced"]]
        ra = med([r["rps"] for r in a])
        add(f"== Steady state: the same load, store full (--store-budget-mib {st['budget_mib']}, "
            f"{st['warmup_s']} s warm-up before counting), {len(a)} pairs")

        def steady_line(label, runs):
            rb = med([r["rps"] for r in runs])
            cpu = sum(r["agent_cpu_s"] for r in runs) / sum(r["requests"] for r in runs) * 1e6
            evicted = sum(r["evicted_rows"] for r in runs) / sum(2 * r["requests"] for r in runs)
            # Runs recorded before the peak RSS was kept have none.
            hwm = [r["agent_hwm_kib"] for r in runs if "agent_hwm_kib" in r]
            peak = f", peak RSS {max(hwm) / 1024:.1f} MiB" if hwm else ""
            add(f"{label}: {rb:.0f} req/s (ratio {rb / ra:.3f}; untraced {ra:.0f}), agent CPU us per request {cpu:.2f}, "
                f"rows evicted per row stored {evicted:.2f}{peak}; per-pair ratios: "
                + ", ".join("%.3f" % (y["rps"] / x["rps"]) for x, y in zip(a, runs)))
        steady_line("traced", [r for r in st["runs"] if r["traced"] and not r.get("compare")])
        c = [r for r in st["runs"] if r.get("compare")]
        if c:
            steady_line("with " + compare_label(res), c)
    if os.path.exists(live_path) and "completeness" in res:
        add("== Completeness (exact-count Python load generator, 8 keep-alive connections)")
        add(f"{'target/s':>9}{'achieved/s':>11}{'sent':>9}{'server rows':>12}{'client rows':>12}{'captured':>9}  loss counters (deltas)")
        for c in res["completeness"]:
            pct = 100 * c["server_rows"] / c["sent"] if c["sent"] else 0
            add(f"{c['target_rate']:>9}{c['achieved_rate']:>11}{c['sent']:>9}{c['server_rows']:>12}{c['client_rows']:>12}{pct:>8.2f}%  "
                + (", ".join(f"{k}={v:.0f}" for k, v in c["loss_counters"].items()) or "none"))
    if os.path.exists(live_path) and "memory" in res:
        req_b, resp_b = res["payload"]
        add("== Memory")
        b = [r for r in res.get("overhead", {}).get("runs", []) if r["traced"] and not r.get("compare")]
        rows = [r for r in b if r.get("table_rows")]
        if rows:
            bpr = med([r["table_bytes"] / r["table_rows"] for r in rows])
            add(f"store bytes per http_events row: {bpr:.0f} (wire payload per request+response: {req_b}+{resp_b} = {req_b + resp_b} B)")
        m = res["memory"]
        add(f"flood with --store-budget-mib 16: {m['flood_requests']} requests, http_events {m['http_rows']:.0f} rows "
            f"{m['http_bytes'] / 2**20:.1f} MiB (budget {m['http_budget'] / 2**20:.1f} MiB), all tables {m['store_bytes'] / 2**20:.1f} MiB, "
            f"RSS {m['rss_kib'] / 1024:.0f} MiB, peak {m['hwm_kib'] / 1024:.0f} MiB")
    if os.path.exists(live_path):
        ip = res.get("iperf")
        if ip:
            u, t = ip["untraced"], ip["traced"]
            moved = 2 * t["bytes"]  # the sender's writes and the receiver's reads
            add(f"== Unknown traffic: iperf3 -t {ip['seconds']} over loopback (not a protocol Sonde parses)")
            add(f"throughput Gbit/s untraced {u['bits_per_second'] / 1e9:.2f}, traced {t['bits_per_second'] / 1e9:.2f} "
                f"(ratio {t['bits_per_second'] / u['bits_per_second']:.3f})")
            add(f"bytes copied to the agent {t['bytes_captured']:.0f} of {moved} moved ({100 * t['bytes_captured'] / moved:.4f} %), "
                f"accounted uncopied {t['kernel_uncopied_bytes']:.0f}; agent CPU {100 * t['agent_cpu_s'] / ip['seconds']:.1f} % of a core")
        fio = res.get("file_io")
        if fio:
            def added_us(runs):
                # Per call, against the untraced run of the same pair.
                return [(t["seconds"] - u["seconds"]) * 1e6 / fio["calls"] for u, t in zip(untraced, runs)]
            untraced = [r for r in fio["runs"] if not r["traced"]]
            traced = [r for r in fio["runs"] if r["traced"] and not r.get("compare")]
            add(f"== Non-socket I/O: dd bs=1 from /dev/zero to /dev/null, {fio['calls']} calls (reads and writes)")
            add(f"untraced {med([r['seconds'] for r in untraced]):.2f} s, traced {med([r['seconds'] for r in traced]):.2f} s; "
                "µs added per call: " + ", ".join(f"{x:.3f}" for x in added_us(traced)))
            compared = [r for r in fio["runs"] if r.get("compare")]
            if compared:
                add(f"with {compare_label(res)}: {med([r['seconds'] for r in compared]):.2f} s; µs added per call: "
                    + ", ".join(f"{x:.3f}" for x in added_us(compared)))
        bc = res.get("bpf_cost")
        if bc:
            total = sum(p["ns"] for p in bc["programs"])
            add(f"== Kernel side: BPF program run time (kernel.bpf_stats_enabled) under wrk -t1 -c{res['config']['conns']}, {bc['rps']:.0f} req/s")
            add(f"BPF ns per request {total / bc['requests']:.0f} (in the traced processes' syscalls), "
                f"agent CPU us per request {bc['agent_cpu_s'] * 1e6 / bc['requests']:.2f}; busiest programs (runs per request x ns per run): "
                + ", ".join(f"{p.get('name', p['prog'])} {p['runs'] / bc['requests']:.2f}x{p['ns'] / p['runs']:.0f}"
                            for p in bc["programs"][:8]))
            if bc.get("compare"):
                def per_request(run):
                    return f"{run['ns_per_request']:.0f} ns, agent {run['agent_cpu_s'] * 1e6 / run['requests']:.2f} us"
                what = compare_label(res)
                add(f"A/B/A/B per request: A {per_request(bc)}; B {per_request(bc['compare'][0])}; "
                    f"A {per_request(bc['again'])}; B {per_request(bc['compare'][1])} (B: {what})")
        cb = res.get("cpu_breakdown")
        if cb:
            add(f"== CPU of the whole machine per request (perf record -a, cpu-clock; 'swapper' is idle time)")
            for side in ("untraced", "traced"):
                r = cb[side]
                top = sorted(r["us_per_request_by_command"].items(), key=lambda kv: -kv[1])[:6]
                total = sum(r["us_per_request_by_command"].values())
                add(f"{side} ({r['rps']:.0f} req/s): {total:.2f} us, " + ", ".join(f"{k} {v:.2f}" for k, v in top))
            tp = sorted(cb["traced"]["tracepoint_us_per_request"].items(), key=lambda kv: -kv[1])
            add(f"syscall-tracepoint path in wrk+nginx: {sum(v for _, v in tp):.2f} us per request; innermost: "
                + ", ".join(f"{k} {v:.2f}" for k, v in tp[:10]))
        sf = res.get("state_flood")
        if sf:
            add(f"== Connection-state flood: {sf['conns']} connections x {sf['requests'] // sf['conns']} pipelined ~1 KiB "
                f"requests never answered, --store-budget-mib {sf['budget_mib']} --max-connection-state-mib {sf['state_mib']}")
            add(f"agent RSS before {sf['rss_before_kib'] / 1024:.0f} MiB, peak {sf['hwm_kib'] / 1024:.0f} MiB; connection state "
                f"peak {sf['peak_state_bytes'] / 2**20:.1f} MiB (cap {sf['state_mib']}), after close {sf['state_after_close']:.0f} B; "
                f"shed {sf['dropped_bytes'] / 2**20:.1f} MiB (stream_buffer_dropped_bytes), "
                f"{sf['unanswered']:.0f} requests counted unanswered")
    crit = os.path.join(out, "criterion.log")
    if os.path.exists(crit):
        add("== Criterion (one core)")
        name = None
        for line in open(crit):
            m = re.match(r"^(\S+/\S+)", line)
            if m and "time:" in line or (m and not line.startswith(" ")):
                name = m.group(1)
            t = re.search(r"thrpt:\s+\[\S+ \S+ (\S+ \S+) \S+ \S+\]", line)
            if t and name:
                add(f"{name:45}{t.group(1):>20}")
    qrows = {}
    for fname in ("query_sonde.csv", "query_duckdb.csv"):
        p = os.path.join(out, fname)
        if os.path.exists(p):
            for line in open(p):
                eng, n, q, ms, _ = line.strip().split(",")
                qrows.setdefault((int(n), q), {})[eng] = float(ms)
    if qrows:
        add("== Dashboard queries, median ms (same rows; DuckDB reads them as Parquet)")
        add("   sonde: rows on 256 keep-alive connections; conn/row: the same rows on a"
            " connection each (the connection columns' worst case)")
        add(f"{'rows':>10} {'query':24}{'sonde':>10}{'conn/row':>10}{'duckdb':>10}{'sonde/duckdb':>14}")
        for (n, q), v in sorted(qrows.items()):
            s, w, d = v.get("sonde"), v.get("sonde_conn_per_row"), v.get("duckdb")
            ratio = f"{s / d:.2f}" if s and d else "-"
            add(f"{n:>10} {q:24}{s or float('nan'):>10.1f}{w or float('nan'):>10.1f}"
                f"{d or float('nan'):>10.1f}{ratio:>14}")
    cluster = os.path.join(out, "cluster.csv")
    if os.path.exists(cluster):
        add("== Cluster SQL: the same query over one node and over three (coordinator + 3 workers, loopback), ms")
        add(f"{'setup':12}{'rows/node':>10} {'query':22}{'median':>8}{'p90':>8}{'max':>8}")
        for line in open(cluster):
            parts = line.strip().split(",")
            if len(parts) == 8 and parts[1].isdigit():
                setup, rows, query, _, median, p90, mx, _ = parts
                add(f"{setup:12}{rows:>10} {query:22}{median:>8}{p90:>8}{mx:>8}")
    print("\n".join(lines))


if __name__ == "__main__":
    if sys.argv[1] == "live":
        live(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        report(sys.argv[2])
