"""Time a 90-day backfill of a daily partitioned model, and the partition ledger's read path.

    python benchmarks/run_partitions.py [--events 2000000] [--days 90] [--ledger-only]

In one run, on a generated project (raw.events over `--days` days and a daily incremental
model `daily_totals` that opts into partitions and, as a twin, a dbt microbatch model):

- sqlorch: `sqlorch backfill daily_totals --from D0 --to D89` (sqlorch writes the range from
  the model's window template, compiled by dbt when it created the table: no dbt start-up),
  the same for the microbatch twin (one statement per day), and `daily_totals` again after
  an edit of its SQL (a re-parse, dbt compiles the new template, then the writes);
- dbt microbatch: `dbt run -s daily_mb --event-time-start D0 --event-time-end D90` (the
  source declares `event_time`, so each batch reads its own day);
- dbt per partition: one `dbt run -s daily_totals --vars {start_date, end_date}` process per
  day (the common orchestrator pattern; timed on the first 5 days and scaled to 90);
- floor: the same SQL as one DuckDB statement, timed in process and as a process of its own
  (Python start-up, `import duckdb`, connect, the statement).

Before timing, each tool builds the first day (so the tables exist, as in a project that
runs on a schedule) and dbt's partial parse and sqlorch's manifest cache are warm. The
script checks that sqlorch's table holds the floor's rows (`rows_match_floor` = 1).

And the ledger: an hourly asset with 5 years of history (43,824 partitions) recorded in the
state store; `sqlorch partitions` and `sqlorch status` are timed as processes, and their
ledger work (read, plan, summarize) in process. Figures are noisy on a shared machine.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent

MODEL = """
{{{{ config(materialized='incremental', unique_key='event_date',
            incremental_strategy='delete+insert',
            meta={{'sqlorch': {{'partitions': {{'type': 'daily', 'start': '{start}',
                   'end': '{end}', 'column': 'event_date'}}}}}}) }}}}
select event_ts::date as event_date, kind, count(*) as n, sum(amount) as amount
from {{{{ source('raw', 'events') }}}}
where event_ts >= '{{{{ var("start_date", "1900-01-01") }}}}'
  and event_ts < '{{{{ var("end_date", "2999-01-01") }}}}'
group by 1, 2
"""

MICROBATCH = """
{{{{ config(materialized='incremental', incremental_strategy='microbatch',
            event_time='event_date', batch_size='day', begin='{start}') }}}}
select event_ts::date::timestamp as event_date, kind, count(*) as n, sum(amount) as amount
from {{{{ source('raw', 'events') }}}}
group by 1, 2
"""

FLOOR = """
create or replace table main.floor_totals as
select event_ts::date as event_date, kind, count(*) as n, sum(amount) as amount
from raw.events group by 1, 2
"""


def write_project(root: Path, events: int, days: int) -> None:
    """Generate the project and its raw.events table."""
    import duckdb

    if root.exists():
        shutil.rmtree(root)
    (root / "models").mkdir(parents=True)
    start, end = "2024-01-01", f"2024-01-01'::date + interval {days} day"
    con = duckdb.connect(str(root / "bench.duckdb"))
    con.execute("create schema raw")
    con.execute(
        f"""create table raw.events as select
            timestamp '2024-01-01'
                + to_microseconds(((i::hugeint * 86400000000 * {days}) // {events})::bigint)
                as event_ts,
            (i % 7)::int as kind, (i % 1000) / 10.0 as amount
        from range({events}) t(i)"""
    )
    last = con.execute(f"select ('{start}'::date + interval {days} day)::date").fetchone()
    con.close()
    del end
    end_date = str(last[0]) if last else start
    (root / "dbt_project.yml").write_text(
        "name: bench\nversion: '1.0.0'\nconfig-version: 2\nprofile: bench\nmodel-paths: [models]\n"
    )
    (root / "profiles.yml").write_text(
        f"bench:\n  target: dev\n  outputs:\n    dev:\n      type: duckdb\n"
        f"      path: '{root / 'bench.duckdb'}'\n      threads: 2\n"
    )
    (root / "models" / "sources.yml").write_text(
        "version: 2\nsources:\n  - name: raw\n    schema: raw\n"
        "    tables: [{name: events, config: {event_time: event_ts}}]\n"
    )
    (root / "models" / "daily_totals.sql").write_text(MODEL.format(start=start, end=end_date))
    (root / "models" / "daily_mb.sql").write_text(MICROBATCH.format(start=start))


def timed(cmd: list[str], cwd: Path) -> float:
    """Run `cmd`, fail loudly, return seconds."""
    started = time.perf_counter()
    # as on a user's machine, Python caches bytecode (the tools' own modules are not
    # re-compiled from source on every start)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False, env=env)
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return seconds


FLOOR_PROCESS = """
import duckdb, sys
con = duckdb.connect(sys.argv[1])
con.execute(sys.argv[2])
con.close()
"""


def content_hash(db: Path, table: str) -> str:
    """An order-independent hash of a table's rows (to check sqlorch wrote the floor's rows)."""
    import duckdb

    con = duckdb.connect(str(db), read_only=True)
    try:
        row = con.execute(
            f"select count(*), sum(hash(event_date::date, kind, n, round(amount, 6))) from {table}"
        ).fetchone()
    finally:
        con.close()
    return f"{row[0]}:{row[1]}" if row else ""


def backfill_bench(events: int, days: int) -> dict[str, float]:
    """Time the ways of building `days` daily partitions, warm (after one day was built)."""
    import duckdb

    root = HERE / "projects" / f"partitions_{events}"
    write_project(root, events, days)
    flags = ["--project-dir", str(root), "--profiles-dir", str(root)]
    sqlorch, dbt = str(BIN / "sqlorch"), str(BIN / "dbt")
    timed([dbt, "parse", *flags], root)  # warm partial parse for dbt
    timed([sqlorch, "ls", *flags], root)  # and sqlorch's manifest cache
    d0 = "2024-01-01"
    con = duckdb.connect(str(root / "bench.duckdb"))
    end_row = con.execute(f"select ('{d0}'::date + interval {days} day)::date").fetchone()
    last_row = con.execute(f"select ('{d0}'::date + interval {days - 1} day)::date").fetchone()
    d1_row = con.execute(f"select ('{d0}'::date + interval 1 day)::date").fetchone()
    con.close()
    d_end, d_last, d1 = str(end_row[0]), str(last_row[0]), str(d1_row[0])
    db = str(root / "bench.duckdb")
    out: dict[str, float] = {}
    # the floor: in this process, and as a process of its own (start-up, import, connect)
    con = duckdb.connect(db)
    started = time.perf_counter()
    con.execute(FLOOR)
    out["floor_s"] = time.perf_counter() - started
    con.close()
    out["floor_process_s"] = min(
        timed([sys.executable, "-c", FLOOR_PROCESS, db, FLOOR], root) for _ in range(3)
    )
    # warm-ups: each tool builds day one first (tables exist, as in a scheduled project)
    timed([sqlorch, "backfill", "daily_totals", "daily_mb", "--from", d0, "--to", d0, *flags], root)
    timed(
        [dbt, "run", "-s", "daily_mb", "--event-time-start", d0, "--event-time-end", d1, *flags],
        root,
    )
    backfill = [sqlorch, "backfill", "--from", d0, "--to", d_last, *flags]
    # the warm-up's dbt invocation also compiled the window templates: no dbt start-up now
    out["sqlorch_backfill_s"] = timed([*backfill[:2], "daily_totals", *backfill[2:]], root)
    mb = [*backfill[:2], "daily_mb", *backfill[2:]]
    out["sqlorch_backfill_microbatch_s"] = timed(mb, root)
    # after an edit of the model: sqlorch re-parses (dbt's partial parse), dbt compiles the
    # new template, sqlorch writes the 90 days
    model = root / "models" / "daily_totals.sql"
    model.write_text(model.read_text().replace("count(*) as n", "count(1) as n"))
    out["sqlorch_backfill_after_edit_s"] = timed(
        [*backfill[:2], "daily_totals", *backfill[2:]], root
    )
    out["rows_match_floor"] = float(
        content_hash(root / "bench.duckdb", "main.daily_totals")
        == content_hash(root / "bench.duckdb", "main.floor_totals")
    )
    out["dbt_microbatch_s"] = timed(
        [dbt, "run", "-s", "daily_mb", "--event-time-start", d0, "--event-time-end", d_end, *flags],
        root,
    )
    sample = 5
    per = 0.0
    for i in range(sample):
        con = duckdb.connect(db)
        a, b = con.execute(
            f"select ('{d0}'::date + interval {i} day)::date, "
            f"('{d0}'::date + interval {i + 1} day)::date"
        ).fetchone() or ("", "")
        con.close()
        vars_ = json.dumps({"start_date": str(a), "end_date": str(b)})
        per += timed([dbt, "run", "-s", "daily_totals", "--vars", vars_, *flags], root)
    out["dbt_per_partition_s"] = per / sample * days
    return out


def ledger_bench() -> dict[str, float]:
    """Record 5 years of hourly partitions and time the read path."""
    from datetime import UTC, datetime

    from sqlorch.core.partitions.definitions import hourly
    from sqlorch.core.partitions.ranges import PartitionSet
    from sqlorch.core.partitions.segments import SegmentStatus
    from sqlorch.state import ledger
    from sqlorch.state.store import StateStore

    root = HERE / "projects" / "ledger"
    if root.exists():
        shutil.rmtree(root)
    (root / "ingest").mkdir(parents=True)
    (root / "ingest" / "__init__.py").write_text("")
    (root / "ingest" / "hours.py").write_text(
        "from sqlorch import asset, hourly\n\n"
        "@asset(partitions=hourly('2021-01-01T00:00', end='2026-01-01T00:00', column='h'))\n"
        "def hours(context):\n    raise RuntimeError('never run in the benchmark')\n"
    )
    (root / "dbt_project.yml").write_text(
        "name: ledger\nversion: '1.0.0'\nconfig-version: 2\nprofile: ledger\n"
    )
    (root / "profiles.yml").write_text(
        f"ledger:\n  target: dev\n  outputs:\n    dev:\n      type: duckdb\n"
        f"      path: '{root / 'l.duckdb'}'\n"
    )
    d = hourly("2021-01-01T00:00", end="2026-01-01T00:00", column="h")
    now = datetime(2026, 6, 1, tzinfo=UTC)
    n = d.count(now)
    store = StateStore(root / ".sqlorch" / "state.db")
    # a history: one backfill of everything, then a failed day every 30 days, then each
    # later day rebuilt by its own daily run (the rows a scheduled job leaves behind)
    everything = PartitionSet({(): ((0, n - 1),)})
    ledger.write(store, "raw.hours", d, everything, SegmentStatus.DONE, "backfill", "t0", None)
    for day in range(0, n // 24, 30):
        failed = PartitionSet({(): ((day * 24, day * 24 + 23),)})
        ledger.write(store, "raw.hours", d, failed, SegmentStatus.FAILED, f"f{day}", "t1", None)
    for day in range(n // 24 - 60, n // 24):
        recent = PartitionSet({(): ((day * 24, day * 24 + 23),)})
        ledger.write(store, "raw.hours", d, recent, SegmentStatus.DONE, f"d{day}", "t2", None)
    rows = len(store.ledger("raw.hours"))
    started = time.perf_counter()
    segs = ledger.segments(store, "raw.hours", d)
    summary = ledger.summary(d, segs, now)
    in_process = time.perf_counter() - started
    flags = ["--project-dir", str(root), "--profiles-dir", str(root)]
    timed([str(BIN / "sqlorch"), "ls", *flags], root)  # warm the dbt parse
    part_s = timed([str(BIN / "sqlorch"), "partitions", "raw.hours", "--json", *flags], root)
    status_s = timed([str(BIN / "sqlorch"), "status", "--json", *flags], root)
    return {
        "partitions": float(n),
        "ledger_rows": float(rows),
        "done_ranges": float(len(summary["done"])),
        "ledger_read_and_summary_s": in_process,
        "cli_partitions_s": part_s,
        "cli_status_s": status_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, nargs="+", default=[2_000_000])
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--ledger-only", action="store_true")
    args = parser.parse_args()
    results: dict[str, dict[str, float]] = {"ledger": ledger_bench()}
    if not args.ledger_only:
        for n in args.events:
            results[f"backfill_{n}"] = backfill_bench(n, args.days)
    for name, r in results.items():
        print(name)
        for k, v in r.items():
            print(f"  {k:<28} {v:10.3f}")
        if "floor_s" in r:
            s, edit = r["sqlorch_backfill_s"], r["sqlorch_backfill_after_edit_s"]
            mb, proc = r["sqlorch_backfill_microbatch_s"], r["floor_process_s"]
            dbt_mb, per = r["dbt_microbatch_s"], r["dbt_per_partition_s"]
            print(f"  sqlorch / floor (in process)        {s / r['floor_s']:10.2f}x")
            print(f"  sqlorch / floor (as a process)      {s / proc:10.2f}x")
            print(f"  dbt microbatch / sqlorch            {dbt_mb / s:10.2f}x")
            print(f"  dbt microbatch / sqlorch microbatch {dbt_mb / mb:10.2f}x")
            print(f"  dbt per partition / sqlorch         {per / s:10.2f}x")
            print(f"  after an edit: dbt microbatch / sqlorch {dbt_mb / edit:.2f}x, ")
            print(f"                 sqlorch / floor process  {edit / proc:.2f}x")


if __name__ == "__main__":
    main()
