#!/usr/bin/env bash
# Installs what Sonde needs to build, run and test on Debian/Ubuntu. Idempotent:
# packages already present are not reinstalled.
set -euo pipefail

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# clang + libbpf-dev: compile the BPF programs (build.rs). The rest are the
# real servers and clients of the end-to-end tests: nginx, curl, python3 (HTTP),
# redis-server/redis-cli, mariadb-server/client, dnsmasq + dig (DNS), iproute2
# (a network namespace for the libc-resolver test).
# gcc + make: jemalloc, the agent's allocator, is C built by its -sys crate.
packages=(clang llvm libbpf-dev gcc make curl python3 ca-certificates redis-server redis-tools
    mariadb-server mariadb-client dnsmasq-base bind9-dnsutils iproute2)
# TLS tests: openssl (certificates, s_server), gcc (above) + libssl-dev (a client with OpenSSL linked statically).
packages+=(openssl libssl-dev)
# PostgreSQL tests: the server (with pgbench) and psql; libpq for psycopg;
# Node.js + npm for node-postgres (unless a Node.js with npm is there).
packages+=(postgresql postgresql-client libpq5)
# HTTP/2 tests: nghttp and h2load (nghttp2-client); Node.js (above) for the
# @grpc/grpc-js server and client.
packages+=(nghttp2-client)
command -v npm >/dev/null 2>&1 || packages+=(nodejs npm)
command -v nginx >/dev/null 2>&1 || packages+=(nginx)

missing=()
for pkg in "${packages[@]}"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "setup: installing ${missing[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# A real MySQL driver with server-side prepared statements (pure Python).
if ! python3 -c "import mysql.connector" >/dev/null 2>&1; then
    echo "setup: installing mysql-connector-python"
    python3 -m pip install --quiet --disable-pip-version-check mysql-connector-python==26.10.0
fi

# The OTLP receiver of the export tests: the official OpenTelemetry protobuf
# definitions and gRPC.
if ! python3 -c "import grpc, opentelemetry.proto.collector.trace.v1.trace_service_pb2_grpc" >/dev/null 2>&1; then
    echo "setup: installing grpcio and opentelemetry-proto"
    python3 -m pip install --quiet --disable-pip-version-check \
        grpcio==1.85.1 opentelemetry-proto==1.45.2 protobuf==7.36.2
fi

# psycopg 3, the pure-Python package over the system libpq (not
# psycopg[binary], which bundles its own libpq and OpenSSL).
if ! python3 -c "import psycopg" >/dev/null 2>&1; then
    echo "setup: installing psycopg"
    python3 -m pip install --quiet --disable-pip-version-check psycopg==3.2.13
fi

# node-postgres, for tests/fixtures/pg_node.js (versions pinned in the lock file).
pg_node="$(cd "$(dirname "$0")/.." && pwd)/tests/pg-node"
if [ ! -d "$pg_node/node_modules/pg" ]; then
    echo "setup: installing node-postgres"
    npm ci --prefix "$pg_node" --no-audit --no-fund --silent
fi

# HTTP/2 tests: python-hyper h2 (an h2c server that accepts Upgrade, a client
# that resets a stream and one that keeps a connection open).
if ! python3 -c "import h2" >/dev/null 2>&1; then
    echo "setup: installing h2"
    python3 -m pip install --quiet --disable-pip-version-check h2==4.4.1
fi

# The second gRPC implementation of the HTTP/2 tests: @grpc/grpc-js, pinned
# by the lockfile of protocols/tests/tools/grpc_js (shared with the
# recordings of the parser's tests).
grpc_js="$(dirname "$0")/../protocols/tests/tools/grpc_js"
if [ ! -d "$grpc_js/node_modules/@grpc/grpc-js" ]; then
    echo "setup: installing @grpc/grpc-js"
    (cd "$grpc_js" && npm ci --no-audit --no-fund --loglevel=error)
fi

if ! command -v cargo >/dev/null 2>&1; then
    echo "setup: no Rust toolchain found. Install one with rustup (https://rustup.rs), Rust >= 1.95, then rerun." >&2
    exit 1
fi
rustc_minor=$(rustc --version | sed -E 's/^rustc 1\.([0-9]+).*/\1/')
if [ "$rustc_minor" -lt 95 ]; then
    echo "setup: Rust >= 1.95 is required, found $(rustc --version). Run: rustup update stable" >&2
    exit 1
fi
if [ ! -e /sys/kernel/btf/vmlinux ]; then
    echo "setup: warning: this kernel has no BTF (/sys/kernel/btf/vmlinux); the agent needs Linux >= 5.10 with BTF." >&2
fi
echo "setup: ok ($(rustc --version), $(clang --version | head -n1))"
