#!/usr/bin/env bash
# One command for Sonde's benchmarks; prints one table at the end.
#
#   scripts/bench.sh [--size tiny|full]
#
# full (default): release build, 3 A/B overhead pairs of 15 s, completeness at
#   1k/5k/10k/20k req/s, criterion with its default precision, queries over
#   1 M and 10 M rows. About 15 minutes once the release build exists.
# tiny: what CI runs to check the harness end to end (figures are not
#   meaningful): 1 pair of 3 s, 2 rates, quick criterion, 100 k rows.
#
# SONDE_BENCH_PROFILE=dev|release picks the cargo profile (default: release
# for full, dev for tiny). SONDE_BENCH_OUT (default target/bench) keeps the
# raw outputs. The live part (eBPF) needs root; it reruns itself with sudo.
# All load is on loopback and bounded in time and request count.
set -euo pipefail
cd "$(dirname "$0")/.."

size=full
while [ $# -gt 0 ]; do
    case "$1" in
        --size) size="$2"; shift 2 ;;
        --size=*) size="${1#--size=}"; shift ;;
        *) echo "usage: $0 [--size tiny|full]" >&2; exit 2 ;;
    esac
done
case "$size" in tiny|full) ;; *) echo "--size must be tiny or full" >&2; exit 2 ;; esac
if [ "$size" = tiny ]; then default_profile=dev; else default_profile=release; fi
profile="${SONDE_BENCH_PROFILE:-$default_profile}"
case "$profile" in
    dev) bin_dir=target/debug ;;
    release) bin_dir=target/release ;;
    *) echo "SONDE_BENCH_PROFILE must be dev or release" >&2; exit 2 ;;
esac
out="${SONDE_BENCH_OUT:-target/bench}"
rm -rf "$out"
mkdir -p "$out"
out="$(cd "$out" && pwd)"

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

echo "== setup"
bash scripts/setup.sh
missing=()
# bpftool names the BPF programs in the kernel-side figures.
for pkg in wrk nginx iperf3 bpftool; do
    command -v "$pkg" >/dev/null 2>&1 || [ -x "/usr/sbin/$pkg" ] || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if ! python3 -c "import duckdb, pyarrow, pytz" >/dev/null 2>&1; then
    python3 -m pip install --quiet --disable-pip-version-check duckdb pyarrow pytz
fi

if [ "$size" = tiny ]; then
    criterion_args=(--warm-up-time 0.2 --measurement-time 0.5 --sample-size 10)
    query_rows=100000
    query_repeat=3
    cluster_rows=100000
else
    criterion_args=()
    query_rows=1000000,10000000
    query_repeat=5
    cluster_rows=1000000
fi

# Whole-workspace builds with every target, like scripts/test.sh: the same
# feature set, so a dev-profile run reuses the test build instead of
# recompiling DataFusion and Arrow with other features.
echo "== build ($profile)"
cargo build --profile "$profile" --workspace --all-targets --locked

echo "== criterion: parsers, pipeline"
cargo bench --profile "$profile" --workspace --locked --bench parsers -- "${criterion_args[@]}" 2>&1 | tee "$out/criterion.log"
cargo bench --profile "$profile" --workspace --locked --bench pipeline -- "${criterion_args[@]}" 2>&1 | tee -a "$out/criterion.log"

echo "== dashboard queries: Sonde (DataFusion) vs DuckDB, rows: $query_rows"
mkdir -p "$out/query"
SONDE_BENCH_ROWS="$query_rows" SONDE_BENCH_REPEAT="$query_repeat" SONDE_BENCH_EXPORT_DIR="$out/query" \
    cargo bench --profile "$profile" --workspace --locked --bench dashboard | tee "$out/query_sonde.csv"
python3 bench/duckdb_queries.py "$out/query" "$query_repeat" | tee "$out/query_duckdb.csv"
rm -f "$out"/query/*.arrow "$out"/query/*.parquet

echo "== cluster: per-endpoint p99 over one node vs three nodes (a coordinator over three workers), rows per node: $cluster_rows"
SONDE_BENCH_ROWS="$cluster_rows" SONDE_BENCH_REPEAT=10 \
    cargo bench --profile "$profile" --workspace --locked --bench cluster | tee "$out/cluster.csv"

echo "== live: overhead, completeness, memory (real agent, real probes)"
as_root python3 bench/run.py live "$out" "$PWD/$bin_dir/sonde" "$size"

echo
echo "== Sonde benchmarks ($size, $profile build, $(nproc) cores, kernel $(uname -r))"
python3 bench/run.py report "$out"
