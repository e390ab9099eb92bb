"""Spark benchmarks: `sqlorch build -t spark` against plain dbt-spark on the same profile.

Three comparisons, each a pair of processes run alternately (A B A B ...) on the same Spark
profile (dbt-spark `method: session`, local mode, warehouse and Derby metastore under the
project), printing wall and CPU seconds, their ratios and the load average:

- build: the synthetic project (benchmarks/generate.py, N models over `raw.events` loaded into
  Spark): `dbt build -t spark` vs `sqlorch build -t spark --full`;
- partitioned: a daily partitioned model over E events (insert_overwrite + partition_by):
  `dbt build -s daily --full-refresh` vs `sqlorch build -s daily --full` (every day rebuilt);
- backfill: D days of that model: dbt-spark microbatch (`dbt run -s daily_mb --event-time-start
  --event-time-end`, one batch a day) vs `sqlorch backfill daily --from --to` (one window).

Usage (the repo's venv; Spark needs Java 17):
    python benchmarks/run_spark.py                       # N=100, 20M events, 90 days, 2 pairs
    python benchmarks/run_spark.py --models 100 --rows 200000 --events 2000000 --repeat 1
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

SPARK_TARGET = """
    spark:
      type: spark
      method: session
      host: localhost
      schema: main
      threads: 1
      server_side_parameters:
        spark.master: "local[2]"
        spark.driver.memory: 2g
        spark.ui.enabled: "false"
        spark.ui.showConsoleProgress: "false"
        spark.sql.shuffle.partitions: "4"
        spark.sql.session.timeZone: UTC
        spark.sql.sources.partitionOverwriteMode: dynamic
        spark.sql.warehouse.dir: "{root}/warehouse"
        spark.hadoop.javax.jdo.option.ConnectionURL: >-
          jdbc:derby:;databaseName={root}/metastore_db;create=true
        spark.driver.extraJavaOptions: "-Dderby.system.home={root}"
"""

DAILY = """
{{{{ config(
    materialized='incremental',
    incremental_strategy='insert_overwrite',
    partition_by=['event_date'],
    file_format='parquet',
    meta={{'sqlorch': {{'partitions': {{'type': 'daily', 'start': '2024-01-01',
                                       'end': '{end}', 'column': 'event_date'}}}}}},
) }}}}
select event_date, event_type, user_id % 100 as bucket, count(*) as n, sum(amount) as amount
from {{{{ source('raw', 'events') }}}}
where {{{{ sqlorch_window('event_date') }}}}
group by 1, 2, 3
"""

DAILY_MICROBATCH = """
{{{{ config(
    materialized='incremental',
    incremental_strategy='microbatch',
    event_time='event_time',
    batch_size='day',
    begin='2024-01-01',
    partition_by=['event_date'],
    file_format='parquet',
) }}}}
select event_date, event_type, user_id % 100 as bucket, count(*) as n, sum(amount) as amount,
    min(event_time) as event_time
from {{{{ ref('events_mb') }}}}
group by 1, 2, 3
"""

# the source as a model with event_time, so microbatch filters it per batch
EVENTS_MB = """
{{ config(materialized='view', event_time='event_time') }}
select * from {{ source('raw', 'events') }}
"""


def spark_project(out: Path, models: int, rows: int, days: int, seed: int) -> Path:
    """The synthetic project with a spark target (its raw data loaded by `load_raw`)."""
    from generate import generate

    generate(out, models, rows, days, seed)
    root = (out / "spark").resolve()
    profiles = (out / "profiles.yml").read_text().rstrip() + "\n" + SPARK_TARGET.format(root=root)
    (out / "profiles.yml").write_text(profiles)
    # dbt-spark runs with the spark target's `threads: 1`: so does sqlorch (without `threads`
    # in its settings it hands dbt the profile's, as plain dbt does); 4 threads on `local[2]`
    # would measure contention, not overhead
    settings = out / "sqlorch.toml"
    settings.write_text(
        "".join(
            line
            for line in settings.read_text().splitlines(keepends=True)
            if not line.startswith("threads")
        )
    )
    (out / "macros").mkdir(exist_ok=True)
    shutil.copy(REPO / "sqlorch" / "dbt" / "macros" / "sqlorch.sql", out / "macros" / "sqlorch.sql")
    return out


def partitioned_project(out: Path, days: int) -> Path:
    """A project of one partitioned model (and its microbatch twin) over `raw.events`."""
    out.mkdir(parents=True, exist_ok=True)
    root = (out / "spark").resolve()
    end = time.strftime("%Y-%m-%d", time.gmtime(time.mktime((2024, 1, 1 + days, 0, 0, 0, 0, 0, 0))))
    files = {
        "dbt_project.yml": (
            "name: bench\nversion: '1.0.0'\nconfig-version: 2\nprofile: bench\n"
            "model-paths: ['models']\nmacro-paths: ['macros']\n"
        ),
        "profiles.yml": "bench:\n  target: spark\n  outputs:" + SPARK_TARGET.format(root=root),
        "sqlorch.toml": "ingest = []\nthreads = 1\n",
        "models/sources.yml": (
            "version: 2\nsources:\n  - name: raw\n    schema: raw\n    tables:\n"
            "      - name: events\n"
        ),
        "models/daily.sql": DAILY.format(end=end),
        "models/daily_mb.sql": DAILY_MICROBATCH.format(),
        "models/events_mb.sql": EVENTS_MB,
    }
    for rel, text in files.items():
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_text(text.lstrip("\n"))
    (out / "macros").mkdir(exist_ok=True)
    shutil.copy(REPO / "sqlorch" / "dbt" / "macros" / "sqlorch.sql", out / "macros" / "sqlorch.sql")
    return out


def load_raw(project: Path, rows: int, days: int, seed: int, partitioned: bool) -> None:
    """Create `raw.events` (rows over days) in the project's Spark catalog, in a child process
    (the Derby metastore admits one JVM at a time)."""
    code = f"""
import sys; sys.path.insert(0, {str(REPO)!r})
from sqlorch.warehouse.spark import start_session
root = {str((project / "spark").resolve())!r}
spark = start_session({{
    "spark.master": "local[2]", "spark.driver.memory": "2g",
    "spark.sql.warehouse.dir": root + "/warehouse",
    "spark.hadoop.javax.jdo.option.ConnectionURL":
        "jdbc:derby:;databaseName=" + root + "/metastore_db;create=true",
    "spark.driver.extraJavaOptions": "-Dderby.system.home=" + root,
    "spark.sql.session.timeZone": "UTC",
}})
spark.sql("create database if not exists raw")
spark.sql("drop table if exists raw.events")
df = spark.range({rows}).selectExpr(
    "id as event_id",
    "cast(pmod(hash(id, {seed}, 1), {max(1, min(100_000, rows // 10))}) as int) as user_id",
    "element_at(array('view','view','click','add_to_cart','purchase','refund'), "
    "cast(pmod(hash(id, {seed}, 2), 6) + 1 as int)) as event_type",
    "pmod(hash(id, {seed}, 3), 100000) / 100.0 as amount",
    "timestamp'2024-01-01 00:00:00' + make_interval(0, 0, 0, 0, 0, 0, "
    "pmod(hash(id, {seed}, 4), {days * 86400})) as event_time",
).selectExpr("*", "cast(event_time as date) as event_date")
w = df.write.format("parquet")
{"w = w.partitionBy('event_date')" if partitioned else ""}
w.saveAsTable("raw.events")
print(spark.table("raw.events").count())
spark.stop()
"""
    subprocess.run([sys.executable, "-c", code], check=True, cwd=project, env=_env())


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.update({"PYTHONPATH": str(REPO), "DO_NOT_TRACK": "1", "NO_COLOR": "1"})
    return env


def _become_subreaper() -> None:
    """Adopt every orphaned descendant (Linux PR_SET_CHILD_SUBREAPER), so its CPU is counted.

    RUSAGE_CHILDREN counts the processes that were waited for, and the children they waited
    for. pyspark's JVM is not waited for by the Python process that started it: without this
    it is re-parented to init when that process exits and its CPU (most of a Spark run) is
    lost. As a subreaper, this process adopts it, waits for it, and counts it.
    """
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(36, 1, 0, 0, 0) != 0:  # PR_SET_CHILD_SUBREAPER
        raise SystemExit("prctl(PR_SET_CHILD_SUBREAPER) failed: CPU times would miss the JVM")


def _reap_orphans(deadline: float) -> None:
    """Wait for every adopted descendant still running (a JVM outlives its Python a moment)."""
    while time.monotonic() < deadline:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return  # no children left
        if pid == 0:
            time.sleep(0.1)
    raise SystemExit("a process of the benchmark did not exit within 120 s of its parent")


def timed(cmd: list[str], cwd: Path, log: Path) -> tuple[float, float]:
    """Run `cmd`; return (wall seconds, CPU seconds of its whole process tree, JVM included)."""
    _reap_orphans(time.monotonic() + 120)  # what earlier commands left is not counted here
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    with log.open("a") as fh:
        fh.write(f"\n$ {' '.join(cmd)}\n")
        fh.flush()
        proc = subprocess.run(cmd, cwd=cwd, env=_env(), stdout=fh, stderr=fh, check=False)
    wall = time.perf_counter() - start
    _reap_orphans(time.monotonic() + 120)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed (exit {proc.returncode}); see {log}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def pair(
    name: str, a: tuple[str, list[str]], b: tuple[str, list[str]], cwd: Path, repeat: int
) -> dict[str, object]:
    """Run a and b alternately `repeat` times; print and return the best of each and ratios."""
    log = cwd / "bench_logs.txt"
    runs: dict[str, list[tuple[float, float]]] = {a[0]: [], b[0]: []}
    for i in range(repeat):
        for label, cmd in (a, b):
            runs[label].append(timed(cmd, cwd, log))
        (wa, ca), (wb, cb) = runs[a[0]][i], runs[b[0]][i]
        print(
            f"  pair {i + 1}: {a[0]} {wa:.1f}s wall {ca:.1f}s cpu | {b[0]} {wb:.1f}s wall "
            f"{cb:.1f}s cpu | wall {wb / wa:.2f}x cpu {cb / ca:.2f}x | load "
            f"{os.getloadavg()[0]:.1f}",
            flush=True,
        )
    # the best (least) wall and the best CPU of each side, each taken on its own: on a shared
    # machine the CPU seconds are the steadier figure (other work inflates the wall times)
    wa, wb = (min(w for w, _ in runs[x[0]]) for x in (a, b))
    ca, cb = (min(c for _, c in runs[x[0]]) for x in (a, b))
    load = os.getloadavg()
    print(
        f"{name}: {a[0]} {wa:.1f}s wall ({ca:.1f}s cpu) | {b[0]} {wb:.1f}s wall ({cb:.1f}s cpu) "
        f"| {b[0]}/{a[0]} wall {wb / wa:.2f}x, cpu {cb / ca:.2f}x | load {load[0]:.1f}",
        flush=True,
    )
    return {
        "name": name,
        "runs": {k: [list(r) for r in v] for k, v in runs.items()},
        "wall_ratio": wb / wa,
        "cpu_ratio": cb / ca,
        "load": load,
    }


def row_counts(out: Path, days: int, repeat: int) -> dict[str, object]:
    """The row count after a write: a Spark `count(*)` job vs the Parquet footers (sqlorch's
    way since issue 15's second round), alternately on one table of `days` partitions."""
    code = f"""
import json, sys, time
sys.path.insert(0, {str(REPO)!r})
from sqlorch.warehouse.spark import SparkWarehouse, quote_key, start_session
root = {str(out.resolve())!r}
spark = start_session({{
    "spark.master": "local[2]", "spark.driver.memory": "2g",
    "spark.sql.warehouse.dir": root + "/warehouse",
    "spark.hadoop.javax.jdo.option.ConnectionURL":
        "jdbc:derby:;databaseName=" + root + "/metastore_db;create=true",
    "spark.driver.extraJavaOptions": "-Dderby.system.home=" + root,
}})
spark.sql("create database if not exists bench")
spark.sql("drop table if exists bench.daily")
spark.range(540 * {days}).selectExpr("id", "date_add(date'2024-01-01', cast(id % {days} as int)) "
    "as day").write.partitionBy("day").format("parquet").saveAsTable("bench.daily")
w = SparkWarehouse(spark)
runs = {{"spark count(*)": [], "footers": []}}
for _ in range({repeat} + 1):  # the first round warms up
    t = time.perf_counter(); a = spark.sql("select count(*) from bench.daily").collect()[0][0]
    runs["spark count(*)"].append(time.perf_counter() - t)
    t = time.perf_counter(); b = w.row_counts(["bench.daily"])["bench.daily"]
    runs["footers"].append(time.perf_counter() - t)
    assert a == b, (a, b)
print(json.dumps({{k: v[1:] for k, v in runs.items()}}))
spark.stop()
"""
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=out, env=_env(), capture_output=True, text=True
    )
    if done.returncode != 0:
        raise SystemExit(done.stderr[-2000:])
    runs = json.loads(done.stdout.strip().splitlines()[-1])
    a, b = min(runs["spark count(*)"]), min(runs["footers"])
    print(
        f"row count of a {days}-partition table: spark count(*) {a:.2f}s | footers {b:.2f}s | "
        f"footers/count {b / a:.2f}x | load {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    return {"name": "row counts", "runs": runs, "wall_ratio": b / a, "load": os.getloadavg()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=int, default=100)
    parser.add_argument("--rows", type=int, default=1_000_000, help="raw rows of the N project")
    parser.add_argument("--events", type=int, default=20_000_000, help="partitioned model input")
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", default="build,partitioned,backfill")
    parser.add_argument("--out", type=Path, default=HERE / "projects" / "spark")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    _become_subreaper()
    if shutil.which("java") is None:
        print("Spark needs a Java runtime (apt-get install openjdk-17-jre-headless)")
        return 2
    bin_dir = Path(sys.executable).parent
    dbt, sqlorch = str(bin_dir / "dbt"), [sys.executable, "-m", "sqlorch.cli"]
    only = set(args.only.split(","))
    results = []
    if "build" in only:
        p = args.out / f"m{args.models}_r{args.rows}"
        shutil.rmtree(p, ignore_errors=True)
        spark_project(p, args.models, args.rows, args.days, args.seed)
        load_raw(p, args.rows, args.days, args.seed, partitioned=False)
        common = ["--project-dir", str(p), "--profiles-dir", str(p)]
        subprocess.run([dbt, "parse", *common, "--target", "spark"], cwd=p, env=_env(), check=True)
        subprocess.run([*sqlorch, "ls", *common, "-t", "spark"], cwd=p, env=_env(), check=True)
        results.append(
            pair(
                f"build N={args.models} ({args.rows:,} raw rows)",
                ("dbt-spark", [dbt, "build", *common, "--target", "spark"]),
                ("sqlorch", [*sqlorch, "build", *common, "-t", "spark", "--full"]),
                p,
                args.repeat,
            )
        )
    if only & {"partitioned", "backfill"}:
        p = args.out / f"partitioned_e{args.events}_d{args.days}"
        shutil.rmtree(p, ignore_errors=True)
        partitioned_project(p, args.days)
        load_raw(p, args.events, args.days, args.seed, partitioned=True)
        common = ["--project-dir", str(p), "--profiles-dir", str(p)]
        subprocess.run([dbt, "parse", *common], cwd=p, env=_env(), check=True)
        last = time.strftime(
            "%Y-%m-%d", time.gmtime(time.mktime((2024, 1, args.days, 0, 0, 0, 0, 0, 0)))
        )
        end = time.strftime(
            "%Y-%m-%d", time.gmtime(time.mktime((2024, 1, 1 + args.days, 0, 0, 0, 0, 0, 0)))
        )
        window = ["--event-time-start", "2024-01-01", "--event-time-end", end]
        # one first build of each (tables exist; sqlorch's ledger has every day); microbatch
        # gets the data's window (without it, dbt runs a batch a day from `begin` to today)
        log = p / "bench_logs.txt"
        if "backfill" in only:
            timed([dbt, "run", *common, "-s", "events_mb", "daily_mb", *window], p, log)
        timed([*sqlorch, "build", *common, "-s", "daily"], p, log)
        if "partitioned" in only:
            results.append(
                pair(
                    f"partitioned model, {args.events:,} events, {args.days} daily partitions",
                    ("dbt-spark", [dbt, "build", *common, "-s", "daily", "--full-refresh"]),
                    ("sqlorch", [*sqlorch, "build", *common, "-s", "daily", "--full"]),
                    p,
                    args.repeat,
                )
            )
        if "backfill" in only:
            results.append(
                pair(
                    f"{args.days}-day backfill",
                    (
                        "dbt-spark microbatch",
                        [
                            dbt,
                            "run",
                            *common,
                            "-s",
                            "daily_mb",
                            "--event-time-start",
                            "2024-01-01",
                            "--event-time-end",
                            end,
                        ],
                    ),
                    (
                        "sqlorch backfill",
                        [
                            *sqlorch,
                            "backfill",
                            "daily",
                            *common,
                            "--from",
                            "2024-01-01",
                            "--to",
                            last,
                        ],
                    ),
                    p,
                    args.repeat,
                )
            )
    if "counts" in only:
        results.append(row_counts(args.out / "counts", args.days, args.repeat))
    if args.json:
        print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
