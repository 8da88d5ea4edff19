#!/usr/bin/env python3
"""Quick A/B of agent variants on the overhead load, for trying an idea
before a full `bench/run.py` run.

usage: bench/quick_ab.py ROUNDS SECONDS VARIANT...

A VARIANT is an agent binary (or a wrapper script that execs one, e.g. to
run it under `chrt` or `nice`), optionally followed by `@NAME=VALUE,...`:
environment variables set for that agent only (SONDE_* settings).
`QUICK_AB_BUDGET_MIB` sets the store budget (default 1024).

Each round runs `wrk -t1 -c16` against one nginx `return 200` for SECONDS
untraced, then once under each variant in turn, and prints per variant:
agent CPU µs per request, traced/untraced req/s, http_events rows per two
requests (client and server rows), and the loss counters that moved. The
end prints medians. Root, wrk and nginx needed (scripts/bench.sh installs
them). Figures are comparable only within one run.
"""
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run as R  # noqa: E402


def median(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2]


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    rounds, seconds, variants = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
    budget = int(os.environ.get("QUICK_AB_BUDGET_MIB", "1024"))
    workdir = tempfile.mkdtemp(prefix="quick_ab.")
    nginx = R.start_nginx(workdir)
    results = {v: [] for v in variants}
    try:
        for r in range(rounds):
            untraced = R.wrk(seconds, 16, f"/untraced/{r}")
            for variant in variants:
                binary, _, env_list = variant.partition("@")
                env = dict(kv.split("=", 1) for kv in env_list.split(",")) if env_list else {}
                saved = {k: os.environ.get(k) for k in env}
                os.environ.update(env)
                try:
                    agent = R.Agent(binary, workdir, budget_mib=budget, tag="quick_ab")
                finally:
                    for k, v in saved.items():
                        if v is None:
                            os.environ.pop(k, None)
                        else:
                            os.environ[k] = v
                try:
                    cpu0 = agent.cpu_seconds()
                    traced = R.wrk(seconds, 16, f"/traced/{r}")
                    cpu = agent.cpu_seconds() - cpu0
                    time.sleep(1.5)  # the last rows flush about once a second
                    m = R.metrics()
                finally:
                    agent.stop()
                us = cpu * 1e6 / traced["requests"]
                ratio = traced["rps"] / untraced["rps"]
                rows = m.get('sonde_table_rows{table="http_events"}', 0) / (2 * traced["requests"])
                results[variant].append((us, ratio))
                print(f"round {r} {variant}: {us:.2f} us/req, ratio {ratio:.3f} (untraced {untraced['rps']:.0f}), "
                      f"rows/2req {rows:.3f}, loss {R.loss_deltas({}, m)}", flush=True)
    finally:
        nginx.terminate()
    for variant, runs in results.items():
        print(f"{variant}: us/req median {median([u for u, _ in runs]):.2f} "
              f"{[round(u, 2) for u, _ in runs]}; ratio median {median([x for _, x in runs]):.3f} "
              f"{[round(x, 3) for _, x in runs]}")


if __name__ == "__main__":
    main()
