#!/usr/bin/env bash
# One kernel's check for scripts/kernel-matrix.sh: starts the agent, nginx,
# redis-server and dnsmasq, makes HTTP (curl -> nginx, both sides recorded),
# HTTPS (the same, read in plaintext by the OpenSSL uprobes), DNS (dig ->
# dnsmasq, UDP and TCP) and Redis (redis-cli -> redis-server) traffic, and
# checks the rows, probe_status and /readyz through the API with
# `sonde query`. Runs inside the qemu guest (as part of its init) or directly on
# this machine (kernel-matrix.sh --host).
#
# Prints diagnostics, then exactly one last line:
#   KMATRIX-RESULT <pass|fail|refused>: <detail>
#
# Environment: SONDE_BIN (the agent), KMATRIX_WORK (scratch directory),
# KMATRIX_READY_TIMEOUT (seconds to wait for /readyz; BPF verification under
# TCG is slow), KMATRIX_ROWS_TIMEOUT (seconds to wait for rows).
set -uo pipefail

SONDE_BIN=${SONDE_BIN:-sonde}
WORK=${KMATRIX_WORK:-/tmp/kmatrix}
READY_TIMEOUT=${KMATRIX_READY_TIMEOUT:-900}
ROWS_TIMEOUT=${KMATRIX_ROWS_TIMEOUT:-120}
# The static file fetched over HTTP: 2000 numbered 10-byte lines, more than
# two 8 KiB kernel chunks, so the copy loop (bpf_loop or its bounded fallback)
# runs several times per call; the agent keeps whole bodies, and the check
# compares every byte (a chunk lost, repeated or misplaced changes the text).
BIG_LINES=2000
BIG_BYTES=$((BIG_LINES * 10))

rm -rf "$WORK"
mkdir -p "$WORK/html"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null; done
    wait 2>/dev/null
}
trap cleanup EXIT

result() {
    echo "KMATRIX-RESULT $1: $2"
    exit 0
}

# A free TCP and UDP port on loopback (the host mode shares the machine).
free_port() {
    local port
    while :; do
        port=$((20000 + RANDOM % 40000))
        if ! ss -Htuln "sport = :$port" 2>/dev/null | grep -q .; then
            echo "$port"
            return
        fi
    done
}

wait_port() { # port what
    local deadline=$((SECONDS + 30))
    until ss -Htln "sport = :$1" | grep -q .; do
        [ $SECONDS -lt $deadline ] || result fail "$2 did not listen on port $1"
        sleep 0.2
    done
}

API_PORT=$(free_port)
HTTP_PORT=$(free_port)
REDIS_PORT=$(free_port)
TLS_PORT=$(free_port)
DNS_PORT=$(free_port)
SERVER="http://127.0.0.1:$API_PORT"

echo "kernel: $(uname -r)"

# --- servers ---
printf '%09d\n' $(seq 0 $((BIG_LINES - 1))) >"$WORK/html/big.txt"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
    -subj /CN=localhost -addext subjectAltName=IP:127.0.0.1 \
    -keyout "$WORK/key.pem" -out "$WORK/cert.pem" >"$WORK/openssl.log" 2>&1 ||
    result fail "openssl could not make a certificate: $(tail -n 1 "$WORK/openssl.log")"
cat >"$WORK/nginx.conf" <<EOF
worker_processes 1;
daemon off;
user root;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log warn;
events { worker_connections 64; }
http {
    access_log off;
    # Responses go through write/writev (copied), not sendfile (a gap).
    sendfile off;
    client_body_temp_path $WORK/body;
    proxy_temp_path $WORK/proxy;
    fastcgi_temp_path $WORK/fastcgi;
    uwsgi_temp_path $WORK/uwsgi;
    scgi_temp_path $WORK/scgi;
    server {
        listen 127.0.0.1:$HTTP_PORT;
        root $WORK/html;
        location /kmatrix/ { default_type text/plain; return 200 "kmatrix ok\n"; }
        location = /big.txt { }
    }
    server {
        listen 127.0.0.1:$TLS_PORT ssl;
        ssl_certificate $WORK/cert.pem;
        ssl_certificate_key $WORK/key.pem;
        location /tls/ { default_type text/plain; return 200 "kmatrix tls\n"; }
    }
}
EOF
nginx -c "$WORK/nginx.conf" -p "$WORK" >"$WORK/nginx.out" 2>&1 &
pids+=($!)
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$WORK" \
    >"$WORK/redis.log" 2>&1 &
pids+=($!)
dnsmasq --keep-in-foreground --no-resolv --no-hosts --bind-interfaces --listen-address=127.0.0.1 \
    --pid-file= --user=root --group=root --log-facility=/dev/null --local=/kmatrix.test/ \
    --host-record=api.kmatrix.test,10.9.8.7 --port="$DNS_PORT" >"$WORK/dnsmasq.log" 2>&1 &
pids+=($!)
wait_port "$HTTP_PORT" nginx
wait_port "$TLS_PORT" "nginx (TLS)"
wait_port "$REDIS_PORT" redis-server
wait_port "$DNS_PORT" dnsmasq

# --- the agent ---
started=$SECONDS
"$SONDE_BIN" agent --listen "127.0.0.1:$API_PORT" --body-prefix-bytes "$BIG_BYTES" --log info \
    >"$WORK/agent.log" 2>&1 &
agent_pid=$!
pids+=($agent_pid)
until curl -fsS -o /dev/null "$SERVER/readyz" 2>/dev/null; do
    if ! kill -0 "$agent_pid" 2>/dev/null; then
        echo "--- agent log"
        tail -n 40 "$WORK/agent.log"
        refusal=$(grep -o 'kernel not supported: .*' "$WORK/agent.log" | head -n 1)
        [ -n "$refusal" ] && result refused "$refusal"
        result fail "agent exited before ready: $(grep -v '^\s*$' "$WORK/agent.log" | tail -n 1)"
    fi
    if [ $((SECONDS - started)) -ge "$READY_TIMEOUT" ]; then
        tail -n 40 "$WORK/agent.log"
        result fail "agent not ready after ${READY_TIMEOUT}s"
    fi
    sleep 1
done
ready_secs=$((SECONDS - started))
echo "agent ready in ${ready_secs}s: $(curl -fsS "$SERVER/readyz")"

query() { # SQL -> CSV rows without the header, one per line
    "$SONDE_BIN" query --server "$SERVER" --format csv "$1" | tail -n +2
}
joined() { query "$1" | paste -sd ' ' -; }

# --- traffic ---
failures=()
# The TLS uprobes attach after /readyz (the library scan runs on its own
# thread): wait for libssl's.
deadline=$((SECONDS + 120))
until [ "$(query "SELECT count(*) FROM probe_status WHERE kind = 'uprobe' AND status = 'attached' \
AND target LIKE '%libssl.so%'")" -ge 1 ] 2>/dev/null; do
    if [ $SECONDS -ge $deadline ]; then
        failures+=("TLS uprobes not attached to libssl: $(joined "SELECT concat(target, ': ', detail) \
FROM probe_status WHERE kind = 'uprobe' AND status = 'failed'")")
        break
    fi
    sleep 1
done
for i in 1 2; do
    body=$(curl -fsS --cacert "$WORK/cert.pem" "https://127.0.0.1:$TLS_PORT/tls/$i") ||
        failures+=("curl https /tls/$i failed")
    [ "$body" = "kmatrix tls" ] || failures+=("curl https /tls/$i: '$body'")
done
for i in 1 2 3; do
    body=$(curl -fsS "http://127.0.0.1:$HTTP_PORT/kmatrix/$i") || failures+=("curl /kmatrix/$i failed")
    [ "$body" = "kmatrix ok" ] || failures+=("curl /kmatrix/$i: '$body'")
done
big=$(curl -fsS "http://127.0.0.1:$HTTP_PORT/big.txt" | wc -c)
[ "$big" = "$BIG_BYTES" ] || failures+=("curl /big.txt: $big bytes")
dig_a() { dig @127.0.0.1 -p "$DNS_PORT" +short +tries=1 +time=5 "$@" api.kmatrix.test A; }
[ "$(dig_a)" = "10.9.8.7" ] || failures+=("dig (UDP) failed")
[ "$(dig_a +tcp)" = "10.9.8.7" ] || failures+=("dig (TCP) failed")
[ "$(redis-cli -p "$REDIS_PORT" SET kmatrix hello)" = "OK" ] || failures+=("redis-cli SET failed")
[ "$(redis-cli -p "$REDIS_PORT" GET kmatrix)" = "hello" ] || failures+=("redis-cli GET failed")
[ ${#failures[@]} -eq 0 ] || result fail "traffic: ${failures[*]}"

# --- rows: wait until every expected set is complete, then check it exactly ---
HTTP_SQL="SELECT concat(trace_role, ' ', req_path, ' ', CAST(resp_status AS VARCHAR), ' ', \
CAST(resp_body_size AS VARCHAR)) AS r FROM http_events \
WHERE (req_path LIKE '/kmatrix/%' OR req_path = '/big.txt') \
AND ((trace_role = 'client' AND remote_port = $HTTP_PORT) OR (trace_role = 'server' AND local_port = $HTTP_PORT)) \
ORDER BY r"
HTTP_WANT="client /big.txt 200 $BIG_BYTES client /kmatrix/1 200 11 client /kmatrix/2 200 11 client /kmatrix/3 200 11"
HTTP_WANT="$HTTP_WANT server /big.txt 200 $BIG_BYTES server /kmatrix/1 200 11 server /kmatrix/2 200 11 server /kmatrix/3 200 11"
# Every byte of the multi-chunk response, on both sides, against big.txt
# rebuilt in SQL.
BODY_SQL="SELECT concat(trace_role, ' ', CAST(length(resp_body) AS VARCHAR), ' ', \
CAST(resp_body = want AS VARCHAR)) AS r FROM http_events, \
(SELECT string_agg(lpad(CAST(value AS VARCHAR), 9, '0') || chr(10), '' ORDER BY value) AS want \
FROM generate_series(0, $((BIG_LINES - 1)))) AS big \
WHERE req_path = '/big.txt' AND ((trace_role = 'client' AND remote_port = $HTTP_PORT) \
OR (trace_role = 'server' AND local_port = $HTTP_PORT)) ORDER BY r"
BODY_WANT="client $BIG_BYTES true server $BIG_BYTES true"
DNS_SQL="SELECT concat(trace_role, ' ', CAST(strpos(resp_body, '10.9.8.7') > 0 AS VARCHAR)) AS r \
FROM dns_events WHERE (trace_role = 'client' AND remote_port = $DNS_PORT) \
OR (trace_role = 'server' AND local_port = $DNS_PORT) ORDER BY r"
DNS_WANT="client true client true server true server true"
REDIS_SQL="SELECT concat(trace_role, ' ', req_cmd, ' ', resp) AS r FROM redis_events \
WHERE (trace_role = 'client' AND remote_port = $REDIS_PORT) \
OR (trace_role = 'server' AND local_port = $REDIS_PORT) ORDER BY r"
REDIS_WANT="client GET hello client SET OK server GET hello server SET OK"
TLS_SQL="SELECT concat(trace_role, ' ', req_path, ' ', CAST(resp_status AS VARCHAR), ' ', \
CAST(encrypted AS VARCHAR)) AS r FROM http_events \
WHERE (trace_role = 'client' AND remote_port = $TLS_PORT) OR (trace_role = 'server' AND local_port = $TLS_PORT) \
ORDER BY r"
TLS_WANT="client /tls/1 200 true client /tls/2 200 true server /tls/1 200 true server /tls/2 200 true"

deadline=$((SECONDS + ROWS_TIMEOUT))
declare -A got
for name in HTTP BODY TLS DNS REDIS; do
    sql_var="${name}_SQL"
    want_var="${name}_WANT"
    while :; do
        got[$name]=$(joined "${!sql_var}")
        [ "${got[$name]}" = "${!want_var}" ] && break
        [ $SECONDS -lt $deadline ] || break
        sleep 1
    done
done
# One more flush period: a late duplicate row must show up, not slip by.
sleep 2
for name in HTTP BODY TLS DNS REDIS; do
    sql_var="${name}_SQL"
    want_var="${name}_WANT"
    got[$name]=$(joined "${!sql_var}")
    if [ "${got[$name]}" != "${!want_var}" ]; then
        failures+=("$name rows: got [${got[$name]}], want [${!want_var}]")
    fi
done

# --- probes: every tracepoint attached; what the kernel lacks, said ---
tracepoints=$(joined "SELECT concat(status, '=', CAST(count(*) AS VARCHAR)) FROM probe_status \
WHERE kind = 'tracepoint' GROUP BY status ORDER BY status")
failed_tp=$(joined "SELECT probe FROM probe_status WHERE kind = 'tracepoint' AND status <> 'attached' ORDER BY probe")
[ -z "$failed_tp" ] || failures+=("tracepoints not attached: $failed_tp")
kernel=$(query "SELECT concat(probe, ' ', status) FROM probe_status WHERE kind = 'kernel' ORDER BY probe" | paste -sd ',' -)
degraded=$(query "SELECT probe FROM probe_status WHERE kind = 'kernel' AND status = 'missing' ORDER BY probe" | paste -sd ',' -)
readyz=$(curl -fsS "$SERVER/readyz")
if [ -n "$degraded" ]; then
    case "$readyz" in
    *degraded*) ;;
    *) failures+=("/readyz does not say degraded ($degraded): '$readyz'") ;;
    esac
fi
echo "probe_status tracepoints: $tracepoints"
echo "probe_status kernel: $kernel"
echo "probe_status uprobes: $(joined "SELECT concat(status, ' ', target) FROM probe_status WHERE kind = 'uprobe' ORDER BY target")"
echo "readyz: $readyz"
kernel_loss=$(joined "SELECT concat(name, '=', CAST(value AS VARCHAR)) FROM capture_stats \
WHERE time_ = (SELECT max(time_) FROM capture_stats) AND value > 0 AND name LIKE 'kernel_%' ORDER BY name")
echo "capture_stats kernel counters above zero: ${kernel_loss:-none}"

if [ ${#failures[@]} -gt 0 ]; then
    echo "--- agent log"
    tail -n 40 "$WORK/agent.log"
    result fail "$(printf '%s; ' "${failures[@]}" | sed 's/; $//')"
fi
detail="http 4+4 rows, https 2+2, dns 2+2, redis 2+2, tracepoints ${tracepoints// /, }, ready in ${ready_secs}s"
if [ -n "$degraded" ]; then
    detail="$detail, degraded: $degraded"
fi
result pass "$detail"
