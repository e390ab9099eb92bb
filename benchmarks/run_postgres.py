"""PostgreSQL benchmarks (issue 14), on a throwaway local cluster this script starts and stops.

    python benchmarks/run_postgres.py [--rows 1000000] [--repeat 3] [--models example,1000]

1. write: a Python asset's 1,000,000-row Arrow table written by sqlorch
   (`PostgresWarehouse.write`: ADBC bulk ingest, one transaction, into an existing table) vs
   PostgreSQL's own `COPY ... FROM 'file'` of the same rows (a CSV file the server reads, into
   the emptied table, one transaction). Target: sqlorch within 1.3x.
2. no-op build: `sqlorch build` with nothing to do, state in PostgreSQL vs in SQLite (the
   warehouse: the project's DuckDB file), as processes, on the example project and on a
   generated 1000-model one. Target: under 0.5 s with PostgreSQL.
3. status: `sqlorch status` with the project's history in the PostgreSQL state store vs SQLite
   (the history is the same rows in both stores). Target: under 0.5 s for 1000 assets.

The commands run with compiled bytecode, as an installed sqlorch does.

Every comparison runs its two commands alternately (A B A B ...) and prints the median wall
times, the ratio, the client's CPU seconds and the load average before and after: the
machine may be shared, so read the ratios, not the absolute times.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # tests/postgres/cluster.py
sys.path.insert(0, str(REPO / "benchmarks"))

PASSWORD = "bench-password"


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def self_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def pair(
    name: str,
    a: tuple[str, Callable[[], None]],
    b: tuple[str, Callable[[], None]],
    repeat: int,
    cpu: Callable[[], float],
) -> dict[str, Any]:
    """Run a and b alternately `repeat` times; return medians of wall and CPU seconds."""
    times: dict[str, list[float]] = {a[0]: [], b[0]: []}
    cpus: dict[str, list[float]] = {a[0]: [], b[0]: []}
    load_before = os.getloadavg()
    for _ in range(repeat):
        for label, fn in (a, b):
            c0, t0 = cpu(), time.perf_counter()
            fn()
            times[label].append(time.perf_counter() - t0)
            cpus[label].append(cpu() - c0)
    load_after = os.getloadavg()
    wa, wb = statistics.median(times[a[0]]), statistics.median(times[b[0]])
    ca, cb = statistics.median(cpus[a[0]]), statistics.median(cpus[b[0]])
    print(f"\n## {name}")
    print(f"  {a[0]:<34} wall {wa:7.3f}s  cpu {ca:7.3f}s  (all: {fmt(times[a[0]])})")
    print(f"  {b[0]:<34} wall {wb:7.3f}s  cpu {cb:7.3f}s  (all: {fmt(times[b[0]])})")
    print(f"  wall ratio {a[0]}/{b[0]}: {wa / wb:.2f}x   cpu ratio: {ca / max(cb, 1e-9):.2f}x")
    print(f"  load average before {load_before[0]:.2f}, after {load_after[0]:.2f}")
    return {"name": name, a[0]: wa, b[0]: wb, "ratio": wa / wb, "load": load_after[0]}


def fmt(values: list[float]) -> str:
    return " ".join(f"{v:.3f}" for v in values)


def make_table(rows: int) -> Any:
    from run_arrow_write import make_table as table

    return table(rows)


def bench_write(cluster: Any, rows: int, repeat: int) -> dict[str, Any]:
    import psycopg
    import pyarrow.csv as pcsv

    from sqlorch.warehouse.postgres import PostgresWarehouse

    cluster.sql("CREATE DATABASE bench_write OWNER bench")
    table = make_table(rows)
    keywords = {
        "host": str(cluster.socket_dir),
        "port": str(cluster.port),
        "user": "bench",
        "password": PASSWORD,
        "dbname": "bench_write",
    }
    warehouse = PostgresWarehouse(keywords)
    warehouse.write("raw.via_sqlorch", table)  # the table exists, as on every later build
    folder = Path(tempfile.mkdtemp(prefix="sqlorch-copy-"))
    csv = folder / "rows.csv"
    pcsv.write_csv(table, csv)
    os.chmod(folder, 0o755)
    os.chmod(csv, 0o644)
    admin = psycopg.connect(cluster.conninfo("bench_write"), autocommit=True)
    admin.execute("CREATE TABLE raw.via_copy (LIKE raw.via_sqlorch)")

    def sqlorch_write() -> None:
        assert warehouse.write("raw.via_sqlorch", table) == rows

    def copy_from_file() -> None:
        with admin.transaction():
            admin.execute("TRUNCATE raw.via_copy")
            admin.execute(f"COPY raw.via_copy FROM '{csv}' (FORMAT csv, HEADER)")

    result = pair(
        f"write {rows:,} rows (target: sqlorch <= 1.3x COPY FROM file)",
        ("sqlorch write (ADBC)", sqlorch_write),
        ("COPY FROM file", copy_from_file),
        repeat,
        self_cpu,
    )
    count = admin.execute("SELECT count(*) FROM raw.via_copy").fetchone()
    assert count is not None and count[0] == rows
    admin.close()
    warehouse.close()
    shutil.rmtree(folder, ignore_errors=True)
    return result


def run(cmd: list[str], cwd: Path, env: dict[str, str]) -> None:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}")


#: the example project's parts (the repository is laid out as the example, DESIGN.md §1)
EXAMPLE_PARTS = (
    "dbt_project.yml", "models", "seeds", "snapshots", "macros", "dbt_tests", "analyses",
    "ingest", "profiles", "pyproject.toml",
)  # fmt: skip


def example_copy(dest: Path) -> Path:
    """Copy the example project (NYC flights 2013) into `dest`."""
    dest.mkdir(parents=True)
    for part in EXAMPLE_PARTS:
        src = REPO / part
        if src.is_dir():
            shutil.copytree(src, dest / part, ignore=shutil.ignore_patterns("__pycache__"))
        elif src.is_file():
            shutil.copy2(src, dest / part)
    return dest


def bench_cli(cluster: Any, shape: str, repeat: int, work: Path) -> list[dict[str, Any]]:
    """No-op build and status with state in PostgreSQL vs SQLite, on one project shape.

    `shape`: "example" (the NYC flights project) or a number of models (benchmarks/generate.py).
    The warehouse is the project's DuckDB file in both: only the state store differs.
    """
    from generate import generate

    if shape == "example":
        project = example_copy(work / "example")
        name = "the example"
    else:
        models = int(shape)
        project = work / f"p{models}"
        generate(project, models=models, rows=20_000, days=30, seed=0)
        name = f"{models} models"
    db = f"bench_state_{shape}"
    cluster.sql(f"CREATE DATABASE {db} OWNER bench")
    url = cluster.url(db, "bench", PASSWORD)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SQLORCH_", "DBT_"))}
    env["PYTHONPATH"] = str(REPO)
    # what a user's installation has: compiled bytecode (PYTHONDONTWRITEBYTECODE would make
    # every command compile sqlorch's modules again)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(REPO / "sqlorch")], check=True)
    cli = [sys.executable, "-m", "sqlorch.cli"]
    pg_env = dict(env, SQLORCH_STATE_URL=url)
    log(f"building {name} (SQLite state), then copying the state ...")
    run([*cli, "build"], project, env)
    run([*cli, "state", "copy", "--to", url], project, env)
    # both stores now hold the same history: a no-op build and status read alike (one
    # untimed round of each first: what a build left to do, caches warm)
    for command in ("build", "status"):
        run([*cli, command], project, pg_env)
        run([*cli, command], project, env)
    out = [
        pair(
            f"no-op build, {name} (target: < 0.5 s with PostgreSQL state)",
            ("build, PostgreSQL state", lambda: run([*cli, "build"], project, pg_env)),
            ("build, SQLite state", lambda: run([*cli, "build"], project, env)),
            repeat,
            children_cpu,
        ),
        pair(
            f"status, {name} (target for 1000 assets: < 0.5 s with PostgreSQL state)",
            ("status, PostgreSQL state", lambda: run([*cli, "status"], project, pg_env)),
            ("status, SQLite state", lambda: run([*cli, "status"], project, env)),
            repeat,
            children_cpu,
        ),
    ]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--models", default="example,1000", help="project shapes: 'example' and/or model counts"
    )
    parser.add_argument("--skip-write", action="store_true")
    parser.add_argument("--json", action="store_true", help="also print the results as JSON")
    args = parser.parse_args(argv)

    from postgres.cluster import start_cluster

    cluster = start_cluster(port=55432)
    cluster.sql(f"CREATE ROLE bench LOGIN CREATEDB PASSWORD '{PASSWORD}'")
    work = Path(tempfile.mkdtemp(prefix="sqlorch-bench-pg-"))
    results: list[dict[str, Any]] = []
    try:
        print(f"PostgreSQL: {cluster.sql('SHOW server_version')[0][0]}; {os.cpu_count()} CPUs")
        if not args.skip_write:
            results.append(bench_write(cluster, args.rows, args.repeat))
        for shape in (m.strip() for m in args.models.split(",") if m.strip()):
            results += bench_cli(cluster, shape, args.repeat, work)
    finally:
        cluster.stop()
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
