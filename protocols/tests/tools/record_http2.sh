#!/usr/bin/env bash
# Records the HTTP/2 golden streams of protocols/tests/data/http2/ from real
# stacks on loopback, through h2relay.py (h2c only: a relay cannot read TLS).
#
# Needs (not needed by the tests, which read the committed recordings):
#   apt-get install nginx apache2 curl nghttp2-client
#   pip install grpcio h2
#   (cd protocols/tests/tools/grpc_js && npm install)
#
#   bash protocols/tests/tools/record_http2.sh [OUT_DIR]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${1:-$here/../data/http2}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
tmp="$(mktemp -d)"
# nginx workers run as www-data: they must reach the content.
chmod 755 "$tmp"
pids=()
relay_pid=
cleanup() {
    for p in "${pids[@]}" $relay_pid; do kill "$p" 2>/dev/null || true; done
    [ -f "$tmp/nginx.pid" ] && kill "$(cat "$tmp/nginx.pid")" 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'echo "record_http2.sh: failed at line $LINENO: $BASH_COMMAND" >&2' ERR

# Static content whose sizes the tests assert.
mkdir -p "$tmp/htdocs"
printf 'hello, http/2\n' > "$tmp/htdocs/hello.txt"                       # 14 bytes
python3 -c 'import sys; sys.stdout.buffer.write(bytes(i % 251 for i in range(100000)))' > "$tmp/htdocs/big.bin"
head -c 20000 /dev/zero | tr '\0' 'p' > "$tmp/post.bin"

cat > "$tmp/nginx.conf" <<CONF
worker_processes 1;
error_log $tmp/error.log;
pid $tmp/nginx.pid;
events {}
http {
    access_log off;
    client_body_temp_path $tmp/body;
    proxy_temp_path $tmp/proxy;
    fastcgi_temp_path $tmp/fastcgi;
    uwsgi_temp_path $tmp/uwsgi;
    scgi_temp_path $tmp/scgi;
    default_type application/octet-stream;
    types { text/plain txt; }
    server {
        listen 127.0.0.1:18181 http2;
        root $tmp/htdocs;
        location = /created { return 201 "created\n"; }
    }
}
CONF
nginx -c "$tmp/nginx.conf"

# Starts the relay on port $1 to upstream port $2, writing $3; waits until it listens.
relay() {
    python3 "$here/h2relay.py" --listen "$1" --upstream "127.0.0.1:$2" --out "$3" "${@:4}" > "$tmp/relay.out" 2>&1 &
    relay_pid=$!
    for _ in $(seq 50); do grep -q relay "$tmp/relay.out" 2>/dev/null && return; sleep 0.1; done
    echo "relay did not start" >&2; exit 1
}
stop_relay() {
    kill -TERM "$relay_pid"
    wait "$relay_pid" || true
    relay_pid=
}
wait_port() {
    for _ in $(seq 100); do (echo > "/dev/tcp/127.0.0.1/$1") 2>/dev/null && return; sleep 0.1; done
    echo "port $1 not open" >&2; exit 1
}
wait_port 18181

big_header="$(head -c 3000 /dev/zero | tr '\0' 't')"
base=http://127.0.0.1:18180
# curl 7.88 cannot reuse an h2 connection ("Error in the HTTP2 framing
# layer"), so each curl makes one request; nghttp below reuses one.
relay 18180 18181 "$out/curl_nginx.cap" \
    --note "curl $(curl --version | head -1 | cut -d' ' -f2) --http2-prior-knowledge -> nginx $(nginx -v 2>&1 | cut -d/ -f2) h2c, one request per connection:" \
    --note "1: GET /hello.txt with authorization and cookie; 2: GET /big.bin (100000 bytes); 3: GET /missing (404);" \
    --note "4: POST /created with a 20000-byte body (201)."
curl -sS -o /dev/null --http2-prior-knowledge \
    -H "authorization: Bearer secret-token" -H "cookie: session=abc123" "$base/hello.txt"
curl -sS -o /dev/null --http2-prior-knowledge "$base/big.bin"
curl -sS -o /dev/null --http2-prior-knowledge "$base/missing"
curl -sS -o /dev/null --http2-prior-knowledge --data-binary "@$tmp/post.bin" "$base/created"
stop_relay

relay 18180 18181 "$out/nghttp_nginx.cap" \
    --note "nghttp $(nghttp --version | cut -d' ' -f2) -> nginx h2c, one connection: GET /hello.txt, /big.bin, /missing, /hello.txt?again" \
    --note "at once, each with a 3000-byte x-trace and an x-repeat header (dynamic table)."
nghttp -n -H "x-trace: $big_header" -H "x-repeat: same-value" \
    "$base/hello.txt" "$base/big.bin" "$base/missing" "$base/hello.txt?again"
stop_relay

relay 18180 18181 "$out/h2load_nginx.cap" \
    --note "h2load -n 40 -c 1 -m 20 (nghttp2 $(h2load --version | cut -d' ' -f2)) -> nginx h2c: 40 GET /hello.txt, 20 streams at once."
h2load -n 40 -c 1 -m 20 -H "x-load: yes" "$base/hello.txt" > /dev/null
stop_relay

relay 18180 18181 "$out/reset_nginx.cap" \
    --note "python h2 client -> nginx h2c: GET /big.bin reset (CANCEL) after its first DATA frame, then GET /hello.txt."
python3 "$here/h2_reset.py" 18180
stop_relay

# nginx and nghttpd only speak h2c with prior knowledge: Apache's mod_http2
# answers an HTTP/1.1 "Upgrade: h2c".
cat > "$tmp/apache.conf" <<CONF
ServerRoot $tmp
LoadModule mpm_event_module /usr/lib/apache2/modules/mod_mpm_event.so
LoadModule authz_core_module /usr/lib/apache2/modules/mod_authz_core.so
LoadModule mime_module /usr/lib/apache2/modules/mod_mime.so
LoadModule http2_module /usr/lib/apache2/modules/mod_http2.so
Listen 127.0.0.1:18183
ServerName localhost
User www-data
Group www-data
PidFile $tmp/apache.pid
DefaultRuntimeDir $tmp
Mutex file:$tmp
ErrorLog $tmp/apache_error.log
TypesConfig /etc/mime.types
DocumentRoot $tmp/htdocs
Protocols h2c http/1.1
<Directory $tmp/htdocs>
    Require all granted
</Directory>
CONF
apache2 -f "$tmp/apache.conf" -k start
wait_port 18183
relay 18182 18183 "$out/curl_upgrade_apache.cap" \
    --note "curl --http2 (HTTP/1.1 Upgrade: h2c) -> Apache $(apache2 -v | head -1 | cut -d/ -f2 | cut -d' ' -f1) mod_http2: GET /hello.txt."
curl -sS -o /dev/null --http2 http://127.0.0.1:18182/hello.txt
stop_relay
apache2 -f "$tmp/apache.conf" -k stop

python3 "$here/grpc_demo.py" server 18185 > /dev/null 2>&1 &
pids+=($!)
wait_port 18185
relay 18184 18185 "$out/grpcio.cap" \
    --note "grpcio $(python3 -c 'import grpc; print(grpc.__version__)') client -> grpcio server (grpc_demo.py): Unary, ServerStream x5," \
    --note "ClientStream x3, Fail (NOT_FOUND), Endless cancelled by the client after 3 messages."
python3 "$here/grpc_demo.py" client 18184
stop_relay

node "$here/grpc_js/demo.js" server 18187 > /dev/null 2>&1 &
pids+=($!)
wait_port 18187
relay 18186 18187 "$out/grpc_js.cap" \
    --note "@grpc/grpc-js $(node -p "require('$here/grpc_js/node_modules/@grpc/grpc-js/package.json').version") client -> server (grpc_js/demo.js):" \
    --note "Unary, ServerStream x4, ClientStream x2, Fail (PERMISSION_DENIED)."
node "$here/grpc_js/demo.js" client 18186
stop_relay

ls -l "$out"
