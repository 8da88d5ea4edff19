#!/usr/bin/env bash
# Tests the web dashboard in a real browser: starts the agent (root, real
# probes; node "a"), a second one (node "b") and a coordinator over both,
# nginx in front of a small Python backend, dnsmasq and redis-server; makes real traffic with curl (200s, 404/503/500s, slow
# requests), dig and redis-cli (including failures), then drives Debian's
# Chromium with Playwright (tests/browser/). Screenshots, dark and light,
# go to target/browser-screenshots/.
#
#   scripts/browser-test.sh
#
# Needs root (the agent loads eBPF programs; apt installs Chromium) and
# Node >= 20 with npm. Everything it starts is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$PWD"

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# ---- dependencies -----------------------------------------------------------

# Debian's Chromium: Playwright's own browser downloads are not used. The
# fonts give screenshots real glyphs on a minimal image.
missing=()
for pkg in chromium fonts-dejavu-core curl python3 dnsmasq-base bind9-dnsutils redis-server redis-tools; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
# Any nginx flavour will do (nginx, nginx-light, ...).
command -v nginx >/dev/null 2>&1 || missing+=(nginx)
if [ "${#missing[@]}" -gt 0 ]; then
    echo "browser-test: installing ${missing[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
command -v node >/dev/null || { echo "browser-test: Node >= 20 is required" >&2; exit 1; }
(cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)

# The whole workspace, like scripts/test.sh: the same feature set, so after
# the test build this is a no-op (`-p sonde` alone would rebuild DataFusion
# with other features).
cargo build --workspace --all-targets --locked
sonde="${CARGO_TARGET_DIR:-$repo/target}/debug/sonde"

# ---- services ---------------------------------------------------------------

work="$(mktemp -d /tmp/sonde-browser.XXXXXX)"
pids=()
cleanup() {
    local status=$?
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    if [ "$status" -ne 0 ] && [ -f "$work/agent.log" ]; then
        echo "browser-test: last lines of the agent log:" >&2
        tail -n 20 "$work/agent.log" >&2 || true
    fi
    rm -rf "$work"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# Waits until URL answers 200, or fails after about 60 s.
wait_for() {
    local url="$1" what="$2"
    for _ in $(seq 1 120); do
        if curl -fsS -o /dev/null "$url" 2>/dev/null; then return 0; fi
        sleep 0.5
    done
    echo "browser-test: $what did not come up at $url" >&2
    return 1
}

agent_port="$(free_port)"
agent_b_port="$(free_port)"
coordinator_port="$(free_port)"
backend_port="$(free_port)"
nginx_port="$(free_port)"
dns_port="$(free_port)"
redis_port="$(free_port)"

echo "browser-test: agent on 127.0.0.1:$agent_port"
# Started directly (not through a shell function) so that $! is the agent
# itself, or sudo, which passes our SIGTERM on.
# Each agent's PostgreSQL and worker endpoints on free ports too.
start_agent() {
    local node="$1" port="$2" worker="$3" log="$4"
    local args=(agent --listen "127.0.0.1:$port" --node-name "$node"
        --pg-listen "127.0.0.1:$(free_port)" --worker-listen "127.0.0.1:$worker")
    if [ "$(id -u)" -eq 0 ]; then
        "$sonde" "${args[@]}" >"$log" 2>&1 &
    else
        sudo "$sonde" "${args[@]}" >"$log" 2>&1 &
    fi
}
worker_a="$(free_port)"
worker_b="$(free_port)"
start_agent a "$agent_port" "$worker_a" "$work/agent.log"
pids+=($!)
start_agent b "$agent_b_port" "$worker_b" "$work/agent-b.log"
agent_b_pid=$!
pids+=($!)
wait_for "http://127.0.0.1:$agent_port/readyz" "the agent"
wait_for "http://127.0.0.1:$agent_b_port/readyz" "the second agent"
# The coordinator over both (unprivileged: it only queries the agents).
"$sonde" coordinator --listen "127.0.0.1:$coordinator_port" --pg-listen off \
    --peers "http://127.0.0.1:$worker_a,http://127.0.0.1:$worker_b" --peer-timeout-ms 1000 \
    >"$work/coordinator.log" 2>&1 &
pids+=($!)
wait_for "http://127.0.0.1:$coordinator_port/readyz" "the coordinator"

# Debian's python3 by full path: its process name (comm) is then "python3",
# which the tests look for on the service map.
/usr/bin/python3 tests/browser/fixtures/backend.py "$backend_port" >"$work/backend.log" 2>&1 &
pids+=($!)

mkdir -p "$work/nginx/html"
cat >"$work/nginx/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log warn;
events { worker_connections 256; }
http {
    access_log off;
    client_body_temp_path $work/nginx/body;
    proxy_temp_path $work/nginx/proxy;
    fastcgi_temp_path $work/nginx/fastcgi;
    uwsgi_temp_path $work/nginx/uwsgi;
    scgi_temp_path $work/nginx/scgi;
    server {
        listen 127.0.0.1:$nginx_port;
        root $work/nginx/html;
        location = /hello { default_type text/plain; return 200 "hello from nginx\n"; }
        location = /missing { return 404; }
        location = /fail { return 503; }
        location /api/ { proxy_pass http://127.0.0.1:$backend_port/; }
    }
}
EOF
/usr/sbin/nginx -c "$work/nginx/nginx.conf" -p "$work/nginx" >"$work/nginx.log" 2>&1 &
pids+=($!)
wait_for "http://127.0.0.1:$nginx_port/hello" "nginx"
wait_for "http://127.0.0.1:$nginx_port/api/items/0" "the Python backend behind nginx"

dnsmasq --keep-in-foreground --no-resolv --no-hosts --bind-interfaces \
    --listen-address=127.0.0.1 --port="$dns_port" --pid-file= --user=root --group=root \
    --log-facility=/dev/null --local=/sonde.test/ --host-record=api.sonde.test,10.9.8.7 \
    >"$work/dnsmasq.log" 2>&1 &
pids+=($!)
redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no \
    >"$work/redis.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 40); do
    redis-cli -p "$redis_port" PING >/dev/null 2>&1 && break
    sleep 0.25
done

# ---- traffic ----------------------------------------------------------------

base="http://127.0.0.1:$nginx_port"
get() { curl -s -o /dev/null "$base$1"; }
for i in $(seq 1 30); do get /hello; done
for i in $(seq 1 20); do get "/api/items/$i"; done
get /api/items/6f1c2a3e-1234-4bcd-9abc-0123456789ab
for i in $(seq 1 3); do get /api/boom; done
for i in $(seq 1 6); do get /missing; get /fail; done
# Slow requests with known latencies: the slowest-requests table must
# list them first.
for ms in 400 800 1500; do get "/api/slow/$ms?ms=$ms"; done
# DNS: answers, and NXDOMAIN (a failure for the client).
for i in $(seq 1 5); do dig +short -p "$dns_port" @127.0.0.1 api.sonde.test A >/dev/null; done
for i in $(seq 1 2); do dig +short -p "$dns_port" @127.0.0.1 "missing$i.sonde.test" A >/dev/null; done
# Redis: commands, and error replies.
redis() { redis-cli -p "$redis_port" "$@" >/dev/null; }
for i in $(seq 1 5); do redis SET "key:$i" "value $i"; redis GET "key:$i"; done
redis INCR key:1 || true # ERR value is not an integer
redis LPUSH key:2 x || true # WRONGTYPE
sleep 2 # the agent flushes rows at least every second

# ---- browser tests ----------------------------------------------------------

screenshots="$repo/target/browser-screenshots"
mkdir -p "$screenshots"
export SONDE_URL="http://127.0.0.1:$agent_port/"
export SONDE_COORDINATOR_URL="http://127.0.0.1:$coordinator_port/"
export SONDE_STOPPABLE_AGENT_PID="$agent_b_pid"
export SONDE_SCREENSHOT_DIR="$screenshots"
export SONDE_NGINX_PORT="$nginx_port"
export CHROMIUM_PATH=/usr/bin/chromium
(cd tests/browser && node --test --test-concurrency=1 dashboard.test.mjs)
echo "browser-test: screenshots in ${screenshots#"$repo"/}"
