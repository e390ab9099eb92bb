"""What recording columns costs: the catalog read sqlorch adds to every build (issue 6).

Copies the DuckDB file of a built synthetic project (run `run_build.py` first), then times,
best of N, reading the columns of every relation the way the executor does (batches of 200,
one `duckdb_columns()` query each) against the row counts the foundation already took in the
same batches. Prints milliseconds per 1000 relations and the ratio.

    .venv/bin/python benchmarks/run_metadata.py [--project benchmarks/projects/bench_m1000_...]
"""

from __future__ import annotations

import argparse
import glob
import os
import shutil
import tempfile
import time
from pathlib import Path


def main() -> None:
    from sqlorch.warehouse.duckdb import DuckDBWarehouse

    parser = argparse.ArgumentParser()
    parser.add_argument("--project", help="a built benchmark project folder")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    found = [args.project] if args.project else sorted(glob.glob("benchmarks/projects/bench_m*"))
    if not found:
        raise SystemExit("no built benchmark project: run benchmarks/run_build.py first")
    for project in found:
        with tempfile.TemporaryDirectory() as tmp:
            db = Path(tmp) / "bench.duckdb"
            shutil.copy(Path(project) / "bench.duckdb", db)
            w = DuckDBWarehouse(str(db))
            keys = [
                f"{s}.{n}"
                for s, n in w.execute(
                    "select schema_name, table_name from duckdb_tables() union all "
                    "select schema_name, view_name from duckdb_views() where not internal"
                )
            ]
            best: dict[str, float] = {}
            for _ in range(args.repeat):
                for name in ("row_counts", "table_columns"):
                    started = time.perf_counter()
                    for i in range(0, len(keys), 200):
                        getattr(w, name)(keys[i : i + 200])
                    took = time.perf_counter() - started
                    best[name] = min(best.get(name, took), took)
            w.close()
        per_k = {k: v / len(keys) * 1000 * 1000 for k, v in best.items()}
        print(
            f"{Path(project).name}: {len(keys)} relations; columns {per_k['table_columns']:.1f} ms"
            f" per 1000, row counts {per_k['row_counts']:.1f} ms per 1000; columns/row counts "
            f"{best['table_columns'] / best['row_counts']:.2f}x "
            f"(load {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)"
        )


if __name__ == "__main__":
    main()
