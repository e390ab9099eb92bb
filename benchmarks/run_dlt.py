"""Time a dlt load through sqlorch (`dlt_assets` + `sqlorch build`) against plain dlt.

    python benchmarks/run_dlt.py [--rows 1000000] [--repeat 3] [--shapes flat,nested] [--json]

Each shape is one dlt resource yielding `--rows` Python dicts (what a "simple resource" is):

- flat:   five scalar columns (one table);
- nested: the same plus a two-element list per row (dlt adds a child table of 2x rows).

For each shape, one folder holds a tiny project (a dbt project with no models, and
`ingest/load.py` declaring the resource with `dlt_assets`) and a plain script. The two
commands run as subprocesses, interleaved (sqlorch, dlt, sqlorch, dlt, ...):

- sqlorch: `python -m sqlorch.cli build` of the project; before each repetition the DuckDB
  file, the state store and `.sqlorch/dlt/` are removed (a first load every time; the dbt
  manifest cache is kept, as on a developer's machine after the first command);
- dlt:     `python plain.py`: `dlt.pipeline(destination=dlt.destinations.duckdb(FILE),
  pipelines_dir=...).run(resource)` into a fresh DuckDB file and pipelines folder.

Both pay Python start-up and `import dlt`; both end with the rows in a DuckDB file (checked).
Both use the loader file format `--file-format` (default parquet, as the resource's own
`file_format=` hint; `default` keeps dlt's insert_values for DuckDB, whose 1M-row INSERT
statement took DuckDB over 12 minutes on the loaded 2-core machine, for either tool).
The script prints best-of wall and CPU (children's user+sys) seconds, the ratios, and the load
average. Target (issue 17): sqlorch at most 1.1x plain dlt.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

TARGET = "1,000,000 rows through sqlorch at most 1.1x plain dlt pipeline.run()"
TARGET_RATIO = 1.1
REPO = Path(__file__).resolve().parents[1]

RESOURCE = """
import dlt


@dlt.resource(name="events", write_disposition="replace"{file_format})
def events():
    kinds = ("view", "click", "add_to_cart", "purchase")
    for i in range({rows}):
        row = {{"id": i, "user_id": i % 1000, "amount": i * 0.5, "kind": kinds[i % 4],
               "at": "2024-01-01T00:00:00+00:00"}}
        {nested}yield row
"""
NESTED = 'row["items"] = [{"sku": i % 97, "qty": 1}, {"sku": i % 89, "qty": 2}]\n        '

PROJECT = """{resource}

from sqlorch import dlt_assets

raw_events = dlt_assets(events, dataset="raw", name="bench")
"""

PLAIN = """import sys
{resource}

import dlt

pipeline = dlt.pipeline(
    pipeline_name="bench", destination=dlt.destinations.duckdb(sys.argv[1]),
    dataset_name="raw", pipelines_dir=sys.argv[2],
)
pipeline.run(events())
"""

PROFILES = """bench:
  target: dev
  outputs:
    dev:
      type: duckdb
      path: {db}
"""


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def make_shape(root: Path, shape: str, rows: int, file_format: str) -> Path:
    """Write the project and the plain script of one shape; return its folder."""
    folder = root / shape
    (folder / "ingest").mkdir(parents=True)
    code = RESOURCE.format(
        rows=rows,
        nested=NESTED if shape == "nested" else "",
        file_format="" if file_format == "default" else f", file_format={file_format!r}",
    )
    (folder / "ingest" / "__init__.py").write_text("")
    (folder / "ingest" / "load.py").write_text(PROJECT.format(resource=code))
    (folder / "plain.py").write_text(PLAIN.format(resource=code))
    (folder / "dbt_project.yml").write_text(
        "name: bench\nversion: '1.0'\nprofile: bench\nmodel-paths: [models]\n"
    )
    (folder / "models").mkdir()
    (folder / "profiles.yml").write_text(PROFILES.format(db=folder / "sqlorch.duckdb"))
    return folder


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(cmd: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float]:
    cpu = children_cpu()
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stdout}\n{done.stderr}")
    return wall, children_cpu() - cpu


def rows_in(db: Path, table: str) -> int:
    import duckdb

    con = duckdb.connect(str(db), read_only=True)
    try:
        row = con.execute(f"select count(*) from {table}").fetchone()
    finally:
        con.close()
    return int(row[0]) if row else 0


def run_sqlorch(folder: Path, env: dict[str, str]) -> tuple[float, float]:
    for path in (folder / "sqlorch.duckdb", folder / "sqlorch.duckdb.wal"):
        path.unlink(missing_ok=True)
    shutil.rmtree(folder / ".sqlorch" / "dlt", ignore_errors=True)
    for name in ("state.db", "state.db-wal", "state.db-shm"):
        (folder / ".sqlorch" / name).unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "sqlorch.cli", "build", "--project-dir", str(folder)]
    return timed(cmd, folder, env)


def run_plain(folder: Path, env: dict[str, str]) -> tuple[float, float]:
    db = folder / "plain.duckdb"
    for path in (db, folder / "plain.duckdb.wal"):
        path.unlink(missing_ok=True)
    shutil.rmtree(folder / "plain_pipelines", ignore_errors=True)
    return timed(
        [sys.executable, "plain.py", str(db), str(folder / "plain_pipelines")], folder, env
    )


def bench_shape(folder: Path, shape: str, rows: int, repeat: int, env: dict[str, str]) -> Any:
    log(f"{shape}: warm-up (`sqlorch ls` fills the dbt manifest cache)")
    timed([sys.executable, "-m", "sqlorch.cli", "ls", "--project-dir", str(folder)], folder, env)
    wall: dict[str, list[float]] = {"sqlorch": [], "dlt": []}
    cpu: dict[str, list[float]] = {"sqlorch": [], "dlt": []}
    for rep in range(1, repeat + 1):
        for name, fn in (("sqlorch", run_sqlorch), ("dlt", run_plain)):
            seconds, cpu_s = fn(folder, env)
            db = folder / ("sqlorch.duckdb" if name == "sqlorch" else "plain.duckdb")
            got = rows_in(db, "raw.events")
            if got != rows:
                raise SystemExit(f"{shape} {name}: raw.events has {got} rows, expected {rows}")
            if shape == "nested" and rows_in(db, "raw.events__items") != 2 * rows:
                raise SystemExit(f"{shape} {name}: raw.events__items is incomplete")
            wall[name].append(seconds)
            cpu[name].append(cpu_s)
            log(f"  rep {rep} {name}: {seconds:.2f} s wall, {cpu_s:.2f} s CPU")
    best = {k: min(v) for k, v in wall.items()}
    best_cpu = {k: min(v) for k, v in cpu.items()}
    return {
        "shape": shape,
        "sqlorch_s": round(best["sqlorch"], 3),
        "dlt_s": round(best["dlt"], 3),
        "ratio": round(best["sqlorch"] / best["dlt"], 3),
        "sqlorch_cpu_s": round(best_cpu["sqlorch"], 3),
        "dlt_cpu_s": round(best_cpu["dlt"], 3),
        "cpu_ratio": round(best_cpu["sqlorch"] / best_cpu["dlt"], 3),
        "sqlorch_runs": [round(s, 3) for s in wall["sqlorch"]],
        "dlt_runs": [round(s, 3) for s in wall["dlt"]],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--shapes", default="flat,nested")
    parser.add_argument(
        "--file-format",
        default="parquet",
        help="the resource's file_format hint (`default`: none, dlt's insert_values for DuckDB)",
    )
    parser.add_argument("--dir", type=Path, default=None, help="where the projects go")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    import dlt

    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        "RUNTIME__DLTHUB_TELEMETRY": "false",
    }
    load_before = os.getloadavg()
    results = []
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        for shape in args.shapes.split(","):
            folder = make_shape(Path(tmp), shape, args.rows, args.file_format)
            results.append(bench_shape(folder, shape, args.rows, args.repeat, env))
    load_after = os.getloadavg()
    worst = max(r["ratio"] for r in results)
    verdict = f"{worst:.2f}x {'PASS' if worst <= TARGET_RATIO else 'FAIL'}"
    lines = [
        f"dlt load of {args.rows:,} rows into a fresh DuckDB file (dlt {dlt.__version__}), "
        f"best of {args.repeat}, subprocesses interleaved, loader file format "
        f"{args.file_format}",
        "  shape    sqlorch s   dlt s   ratio   sqlorch CPU s   dlt CPU s   CPU ratio",
    ]
    for r in results:
        lines.append(
            f"  {r['shape']:<7} {r['sqlorch_s']:9.2f} {r['dlt_s']:7.2f} {r['ratio']:6.2f}x"
            f" {r['sqlorch_cpu_s']:15.2f} {r['dlt_cpu_s']:11.2f} {r['cpu_ratio']:10.2f}x"
        )
    lines.append(f"target: {TARGET}: {verdict} (worst shape)")
    lines.append(
        f"load average (1 min) before/after: {load_before[0]:.2f}/{load_after[0]:.2f}"
        f" on {os.cpu_count()} CPUs"
    )
    text = "\n".join(lines)
    if args.json:
        log(text)
        doc = {
            "rows": args.rows,
            "repeat": args.repeat,
            "shapes": results,
            "file_format": args.file_format,
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
