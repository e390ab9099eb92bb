"""Native execution on PostgreSQL (issue 16): sqlorch against plain dbt and the floor.

    python benchmarks/run_native_postgres.py [--models 60 200] [--rows 200000] [--repeat 2]

Starts a throwaway PostgreSQL cluster (tests/postgres/cluster.py) and stops it at the end.
For each size, a project from benchmarks/generate.py (its two DuckDB-only spellings rewritten
for PostgreSQL: `double` -> `double precision`, `hour(x)` -> `extract(hour from x)`) with
`raw.events` loaded into its own database. Then, interleaved (A B C A B C ...), each from a
database holding only `raw.events` (schema `main` dropped):

- dbt:     `dbt build` (partial parse warm);
- sqlorch: `sqlorch build`, native execution, compiled SQL cached (no run state: every model
           is built);
- floor:   dbt's compiled SQL in dependency order, `create table|view ... as` in one psycopg
           connection and one transaction.

CPU is counted on both sides: the client's (the command's process tree) and the server's
(the cluster's postmaster and its reaped backends, read from /proc), since on PostgreSQL
most of the SQL's work is the server's. Printed: per mode the best wall, client, server and
total CPU seconds, the ratios to the floor and to dbt, and the load average before and
after. The machine may be shared: read the CPU ratios first.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))  # tests/postgres/cluster.py
sys.path.insert(0, str(HERE))

from generate import generate  # noqa: E402
from run_build import BIN, floor_plan, run_command  # noqa: E402
from run_native import timed  # noqa: E402

PASSWORD = "bench-native-pg"
USER = "bench"
MODES = ("dbt", "sqlorch", "floor")
TICKS = os.sysconf("SC_CLK_TCK")


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def server_cpu(cluster: Any) -> float:
    """CPU seconds of the postmaster and every backend it has reaped, plus live ones."""
    pid = int((cluster.data / "postmaster.pid").read_text().split()[0])
    total = 0.0
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    total += sum(int(f) for f in fields[11:15]) / TICKS  # utime stime cutime cstime
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        try:
            cf = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(f) for f in cf[11:13]) / TICKS
    return total


def pg_project(root: Path, models: int, rows: int, cluster: Any, dbname: str) -> Path:
    """A generated project rewritten for PostgreSQL, with raw.events loaded into `dbname`."""
    import duckdb
    import psycopg

    project = root / f"pg_m{models}_r{rows}"
    shutil.rmtree(project, ignore_errors=True)
    generate(project, models, rows, 30, 0)
    for sql in (project / "models").rglob("*.sql"):
        text = sql.read_text().replace(" as double)", " as double precision)")
        sql.write_text(re.sub(r"hour\((\w+)\)", r"extract(hour from \1)", text))
    (project / "profiles.yml").write_text(
        "bench:\n  target: dev\n  outputs:\n    dev:\n      type: postgres\n"
        f"      host: {json.dumps(str(cluster.socket_dir))}\n      port: {cluster.port}\n"
        f"      user: {USER}\n      password: \"{{{{ env_var('BENCH_PG_PASSWORD') }}}}\"\n"
        f"      dbname: {dbname}\n      schema: main\n      threads: 4\n"
    )
    csv = project / "events.csv"
    con = duckdb.connect(str(project / "bench.duckdb"))
    con.execute(f"copy raw.events to '{csv}' (header false)")
    con.close()
    cluster.sql(f"create database {dbname} owner {USER}")
    with psycopg.connect(cluster.conninfo(dbname, USER, PASSWORD), autocommit=True) as pg:
        pg.execute(
            "create schema raw; create table raw.events (event_id bigint, user_id integer, "
            "event_type text, amount double precision, event_time timestamp)"
        )
        with pg.cursor().copy("copy raw.events from stdin (format csv)") as copy, csv.open() as f:
            while chunk := f.read(1 << 20):
                copy.write(chunk)
        pg.execute("analyze raw.events")
    csv.unlink()
    return project


def reset(cluster: Any, dbname: str, project: Path) -> None:
    """Back to raw.events only: schema main dropped; sqlorch's run state forgotten."""
    cluster.sql("drop schema if exists main cascade", dbname)
    state = project / ".sqlorch"
    for name in ("state.db", "state.db-wal", "state.db-shm", "relations.json"):
        (state / name).unlink(missing_ok=True)
    shutil.rmtree(state / "runs", ignore_errors=True)


def count(cluster: Any, dbname: str) -> int:
    rows = cluster.sql(
        "select count(*) from pg_class c join pg_namespace n on n.oid = c.relnamespace "
        "where n.nspname = 'main' and c.relkind in ('r', 'v')",
        dbname,
    )
    return int(rows[0][0])


def run_floor(cluster: Any, dbname: str, plan: list[tuple[str, str, str]]) -> tuple[float, float]:
    """The compiled SQL in one connection and one transaction; (wall s, client CPU s)."""
    import psycopg

    cpu = time.process_time()
    start = time.perf_counter()
    with psycopg.connect(cluster.conninfo(dbname, USER, PASSWORD)) as con:
        con.execute("create schema if not exists main")
        for kind, relation, sql in plan:
            con.execute(f"create {kind} {relation} as (\n{sql}\n)")
        con.commit()
    return time.perf_counter() - start, time.process_time() - cpu


def bench(cluster: Any, project: Path, dbname: str, models: int, repeat: int) -> dict[str, Any]:
    dirs = ["--project-dir", str(project), "--profiles-dir", str(project)]
    logs = project / "bench_logs"
    env = {"BENCH_PG_PASSWORD": PASSWORD}
    os.environ.update(env)
    for step in ("parse", "compile"):
        seconds, _, code = run_command(
            [str(BIN / "dbt"), step, *dirs], project, logs / f"dbt-{step}.log", 3600
        )
        if code != 0:
            raise SystemExit(f"dbt {step} failed: see {logs / f'dbt-{step}.log'}")
    plan = floor_plan(project)
    reset(cluster, dbname, project)  # untimed warm-up: fills sqlorch's compiled-SQL cache
    timed([str(BIN / "sqlorch"), "build", *dirs], project, logs / "warmup.log", env)
    runs: dict[str, list[tuple[float, float, float]]] = {m: [] for m in MODES}
    for rep in range(1, repeat + 1):
        for mode in MODES:
            reset(cluster, dbname, project)
            before = server_cpu(cluster)
            if mode == "floor":
                wall, client = run_floor(cluster, dbname, plan)
            else:
                cmd = [str(BIN / mode), "build", *dirs]
                wall, client, _mb = timed(cmd, project, logs / f"{mode}-{rep}.log", env)
            server = server_cpu(cluster) - before
            built = count(cluster, dbname)
            if built != models:
                raise SystemExit(f"{mode} built {built} of {models} relations")
            runs[mode].append((wall, client, server))
            log(
                f"  m{models} rep {rep} {mode}: {wall:.2f} s wall, client {client:.2f} s CPU, "
                f"server {server:.2f} s CPU, load {os.getloadavg()[0]:.1f}"
            )
    out: dict[str, Any] = {"models": models}
    for mode, values in runs.items():
        best = min(values, key=lambda v: v[1] + v[2])
        out[mode] = {
            "wall_s": round(min(v[0] for v in values), 3),
            "client_cpu_s": round(best[1], 3),
            "server_cpu_s": round(best[2], 3),
            "cpu_s": round(best[1] + best[2], 3),
            "pairs": [[round(x, 3) for x in v] for v in values],
        }
    return out


def render(results: list[dict[str, Any]], load: tuple[str, str]) -> str:
    lines = [
        f"load average before: {load[0]}; after: {load[1]}",
        "| models | tool | CPU s (client+server) | CPU/floor | CPU/dbt | wall s | wall/dbt |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        floor, dbt = r["floor"], r["dbt"]
        for mode in MODES:
            m = r[mode]
            lines.append(
                f"| {r['models']} | {mode} | {m['cpu_s']:.2f} ({m['client_cpu_s']:.2f}+"
                f"{m['server_cpu_s']:.2f}) | {m['cpu_s'] / floor['cpu_s']:.2f}x | "
                f"{m['cpu_s'] / dbt['cpu_s']:.2f}x | {m['wall_s']:.2f} | "
                f"{m['wall_s'] / dbt['wall_s']:.2f}x |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from postgres.cluster import start_cluster

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=int, nargs="+", default=[60, 200])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    load_before = " ".join(f"{x:.1f}" for x in os.getloadavg())
    cluster = start_cluster(port=55000 + os.getpid() % 1000)
    work = Path(tempfile.mkdtemp(prefix="sqlorch-native-pg-"))
    try:
        cluster.sql(f"create role {USER} login createdb password '{PASSWORD}'")
        results = []
        for models in args.models:
            dbname = f"bench_m{models}"
            project = pg_project(work, models, args.rows, cluster, dbname)
            results.append(bench(cluster, project, dbname, models, args.repeat))
    finally:
        cluster.stop()
        shutil.rmtree(work, ignore_errors=True)
    load_after = " ".join(f"{x:.1f}" for x in os.getloadavg())
    print(
        json.dumps(results, indent=2) if args.json else render(results, (load_before, load_after))
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
