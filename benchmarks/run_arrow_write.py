"""Time sqlorch's Arrow write path into DuckDB against a plain DuckDB CREATE TABLE AS.

    python benchmarks/run_arrow_write.py [--rows 10000000] [--repeat 7] [--json]

Builds one pyarrow Table (int64, int32, float64, timestamp and two string columns, made with
numpy/pyarrow compute) and times, best of `--repeat`, each into a fresh DuckDB file:

- sqlorch: `DuckDBWarehouse(path).write("raw.big", table)`, then CHECKPOINT and close;
- floor:   `duckdb.connect(path)`, CREATE SCHEMA raw, `CREATE TABLE raw.big AS SELECT * FROM tbl`
           (replacement scan of the local variable), then CHECKPOINT and close.

Both include opening the file and a CHECKPOINT, so the data is really on disk. Repetitions are
interleaved (sqlorch, floor, sqlorch, ...) so background load hits both alike.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

TARGET = "sqlorch's Arrow write at most 1.2x a plain DuckDB CREATE TABLE AS"
TARGET_RATIO = 1.2


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def make_table(rows: int, seed: int = 0) -> Any:
    """Return a `rows`-row pyarrow Table, built with vectorized numpy/pyarrow code."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    rng = np.random.default_rng(seed)
    ids = pa.array(np.arange(rows, dtype=np.int64))
    users = rng.integers(0, 1_000_000, rows, dtype=np.int32)
    categories = pa.array(["view", "click", "add_to_cart", "purchase", "refund", "other"])
    seconds = rng.integers(0, 90 * 86_400, rows, dtype=np.int64)
    start = np.datetime64("2024-01-01T00:00:00", "s").astype(np.int64)
    return pa.table(
        {
            "id": ids,
            "user_id": pa.array(users),
            "amount": pa.array(rng.random(rows) * 1000.0),
            "event_time": pa.array(seconds + start, type=pa.timestamp("s")).cast(
                pa.timestamp("us")
            ),
            "category": categories.take(pa.array(rng.integers(0, 6, rows, dtype=np.int32))),
            "user_name": pc.binary_join_element_wise(
                "user-", pc.cast(pa.array(users), pa.string()), ""
            ),
        }
    )


def fresh_path(directory: Path) -> Path:
    path = directory / "write.duckdb"
    for p in (path, path.with_name(path.name + ".wal")):
        p.unlink(missing_ok=True)
    return path


def time_sqlorch(path: Path, table: Any) -> tuple[float, float, int]:
    """Time sqlorch's write path; return (wall seconds, CPU seconds, rows written)."""
    from sqlorch.warehouse.duckdb import DuckDBWarehouse

    cpu = time.process_time()
    start = time.perf_counter()
    wh = DuckDBWarehouse(str(path))
    rows = wh.write("raw.big", table)
    wh.connection.execute("CHECKPOINT")
    wh.close()
    return time.perf_counter() - start, time.process_time() - cpu, rows


def time_floor(path: Path, tbl: Any) -> tuple[float, float, int]:
    """Time the plain DuckDB replacement-scan CTAS; return (wall s, CPU s, rows written)."""
    import duckdb

    cpu = time.process_time()
    start = time.perf_counter()
    con = duckdb.connect(str(path))
    con.execute("CREATE SCHEMA raw")
    con.execute("CREATE TABLE raw.big AS SELECT * FROM tbl")
    con.execute("CHECKPOINT")
    con.close()
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    con = duckdb.connect(str(path), read_only=True)
    rows = con.execute("SELECT count(*) FROM raw.big").fetchone()
    con.close()
    return seconds, cpu, int(rows[0]) if rows else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--dir", type=Path, default=None, help="where the DuckDB file goes")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    import duckdb

    start = time.perf_counter()
    table = make_table(args.rows)
    log(
        f"built a {table.num_rows:,}-row table ({table.nbytes / 1e6:.0f} MB, "
        f"{table.num_columns} columns) in {time.perf_counter() - start:.1f} s"
    )
    load_before = os.getloadavg()
    wall: dict[str, list[float]] = {"sqlorch": [], "floor": []}
    cpu: dict[str, list[float]] = {"sqlorch": [], "floor": []}
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        for rep in range(1, args.repeat + 1):
            for name, fn in (("sqlorch", time_sqlorch), ("floor", time_floor)):
                seconds, cpu_s, rows = fn(fresh_path(Path(tmp)), table)
                if rows != table.num_rows:
                    raise SystemExit(f"{name} wrote {rows} rows, expected {table.num_rows}")
                wall[name].append(seconds)
                cpu[name].append(cpu_s)
                log(f"  rep {rep} {name}: {seconds:.3f} s wall, {cpu_s:.3f} s CPU")
    load_after = os.getloadavg()
    best = {k: min(v) for k, v in wall.items()}
    best_cpu = {k: min(v) for k, v in cpu.items()}
    ratio = best["sqlorch"] / best["floor"]
    cpu_ratio = best_cpu["sqlorch"] / best_cpu["floor"]
    verdict = f"{ratio:.2f}x {'PASS' if ratio <= TARGET_RATIO else 'FAIL'}"
    text = (
        f"Arrow write of {table.num_rows:,} rows into a fresh DuckDB file "
        f"(duckdb {duckdb.__version__}), best of {args.repeat}\n"
        f"                                 wall s   median   CPU s\n"
        f"  sqlorch DuckDBWarehouse.write: {best['sqlorch']:6.3f}   "
        f"{statistics.median(wall['sqlorch']):6.3f}  {best_cpu['sqlorch']:6.3f}\n"
        f"  floor CREATE TABLE AS:         {best['floor']:6.3f}   "
        f"{statistics.median(wall['floor']):6.3f}  {best_cpu['floor']:6.3f}\n"
        f"  sqlorch/floor:                 {ratio:5.2f}x            {cpu_ratio:5.2f}x\n"
        f"target: {TARGET}: {verdict}\n"
        f"load average (1 min) before/after: {load_before[0]:.2f}/{load_after[0]:.2f}"
        f" on {os.cpu_count()} CPUs"
    )
    if args.json:
        log(text)
        doc = {
            "rows": table.num_rows,
            "repeat": args.repeat,
            "sqlorch_s": round(best["sqlorch"], 4),
            "floor_s": round(best["floor"], 4),
            "sqlorch_over_floor": round(ratio, 4),
            "sqlorch_cpu_s": round(best_cpu["sqlorch"], 4),
            "floor_cpu_s": round(best_cpu["floor"], 4),
            "sqlorch_over_floor_cpu": round(cpu_ratio, 4),
            "sqlorch_runs": [round(s, 4) for s in wall["sqlorch"]],
            "floor_runs": [round(s, 4) for s in wall["floor"]],
            "target": TARGET,
            "target_ratio": TARGET_RATIO,
            "verdict": verdict,
            "load_average_before_after": [load_before[0], load_after[0]],
        }
        print(json.dumps(doc, indent=2))
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
