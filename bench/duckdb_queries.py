"""Runs bench/queries.sql in DuckDB over the rows the Sonde query bench
exported (Arrow IPC -> Parquet with pyarrow). Prints CSV lines
`duckdb,rows,query,median_ms,result_rows` (median of REPEAT runs after one
warm-up), like query/benches/dashboard.rs. Usage: duckdb_queries.py DIR REPEAT"""
import os
import re
import sys
import time

import duckdb
import pyarrow.ipc
import pyarrow.parquet

here = os.path.dirname(os.path.abspath(__file__))


def queries():
    out = []
    for line in open(os.path.join(here, "queries.sql")):
        if line.startswith("-- name: "):
            out.append([line[len("-- name: "):].strip(), ""])
        elif out and not line.startswith("--"):
            out[-1][1] += line
    return out


def main():
    directory, repeat = sys.argv[1], int(sys.argv[2])
    for name in sorted(os.listdir(directory)):
        m = re.fullmatch(r"http_events_(\d+)\.arrow", name)
        if not m:
            continue
        rows = int(m.group(1))
        parquet = os.path.join(directory, f"http_events_{rows}.parquet")
        with pyarrow.ipc.open_file(os.path.join(directory, name)) as reader:
            table = reader.read_all()
        # Row groups of ~8 Ki rows like the store's batches would prune finer;
        # pyarrow's default (1 Mi rows) is what a user would get.
        pyarrow.parquet.write_table(table, parquet)
        del table
        con = duckdb.connect()
        con.execute("SET TimeZone = 'UTC'")
        con.execute(f"CREATE VIEW http_events AS SELECT * FROM read_parquet('{parquet}')")
        for qname, sql in queries():
            sql = sql.replace("{p99}", "approx_quantile(latency, 0.99)")
            times = []
            result_rows = 0
            for run in range(repeat + 1):
                t = time.perf_counter()
                result_rows = len(con.execute(sql).fetchall())
                if run > 0:
                    times.append(time.perf_counter() - t)
            times.sort()
            print(f"duckdb,{rows},{qname},{times[len(times) // 2] * 1e3:.2f},{result_rows}", flush=True)
        con.close()


if __name__ == "__main__":
    main()
