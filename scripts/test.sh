#!/usr/bin/env bash
# One command to set up everything and run the whole test suite: formatting,
# lints, unit and property tests, and the end-to-end tests that run the real
# agent with real probes against real servers (these need root; they skip with
# a reason otherwise, or fail when SONDE_REQUIRE_EBPF=1).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

# The debug profile (with optimised dependencies) keeps a cold build near 6
# minutes on 2 cores; a release build would take about 20.
echo "== cargo fmt"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== build"
cargo build --workspace --all-targets --locked
echo "== deployment manifests (kustomize render + schema validation + Dockerfile lint)"
bash scripts/validate-deploy.sh
echo "== unit tests"
cargo test --workspace --exclude sonde-e2e --locked
echo "== end-to-end tests (real agent, real probes)"
if [ "$(id -u)" -eq 0 ]; then
    cargo test -p sonde-e2e --locked -- --test-threads=1
else
    echo "end-to-end tests need root: re-running them with sudo"
    sudo -E env "PATH=$PATH" cargo test -p sonde-e2e --locked -- --test-threads=1
fi
echo "== kernel matrix (Debian's 5.10, 6.1 and 6.12 under qemu, with the debug agent; ~7 min cold)"
if [ "$(id -u)" -eq 0 ]; then
    bash scripts/kernel-matrix.sh --debug 5.10 6.1 6.12
else
    sudo -E env "PATH=$PATH" bash scripts/kernel-matrix.sh --debug 5.10 6.1 6.12
fi
echo "== browser tests (dashboard in Chromium)"
bash scripts/browser-test.sh
echo "== benchmark harness, tiny size (checks it runs end to end; figures not meaningful)"
SONDE_BENCH_OUT=target/bench-tiny bash scripts/bench.sh --size tiny
