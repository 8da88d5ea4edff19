#!/usr/bin/env bash
# One command to set up, build and run the Sonde agent on this machine.
# Extra arguments go to `sonde agent` (see `sonde agent --help`).
#
#   scripts/run-agent.sh                 # API on http://127.0.0.1:9700
#   scripts/run-agent.sh --listen 127.0.0.1:9800
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# Release build: the agent runs on every node, so it is built optimised
# (about 20 minutes cold on 2 cores, about a minute after that).
cargo build --release --locked -p sonde
echo "run-agent: starting target/release/sonde agent $* (Ctrl-C to stop)"
if [ "$(id -u)" -eq 0 ]; then
    exec ./target/release/sonde agent "$@"
else
    exec sudo ./target/release/sonde agent "$@"
fi
