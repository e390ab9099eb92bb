"""Partitioned assets end to end: real DuckDB files, real dbt, the CLI and the ledger."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import CliResult, TinyProject, assert_clean_error, query, scalar

pytestmark = pytest.mark.dbt  # runs real dbt

EVENTS = """
from datetime import date, timedelta

import pyarrow as pa

from sqlorch import AssetContext, asset, daily, monthly, static, multi, window


def rows_for(start: date, end: date) -> pa.Table:
    days, values = [], []
    d = start
    while d < end:
        for i in range(3):
            days.append(d)
            values.append(d.toordinal() * 10 + i)
        d += timedelta(days=1)
    return pa.table({"event_date": pa.array(days, pa.date32()), "value": values})


@asset(schema="raw", partitions=daily("2024-01-01", end="2024-03-01", column="event_date"))
def events(context: AssetContext) -> pa.Table:
    p = context.partition
    return rows_for(p.start.date(), p.end.date())


@asset(
    schema="raw",
    partitions=daily("2024-01-01", end="2024-03-01", column="event_date"),
    max_partitions_per_run=None,
    deps={"raw.events": window(offset=-1)},
)
def events_prev(context: AssetContext) -> pa.Table:
    p = context.partition
    return rows_for(p.start.date(), p.end.date())


@asset(schema="raw", partitions=multi(
    daily("2024-01-01", end="2024-01-05", column="event_date"),
    static(["a", "b"], column="site"),
))
def by_site(context: AssetContext) -> pa.Table:
    p = context.partition
    t = rows_for(p.start.date(), p.end.date())
    return t.append_column("site", pa.array([p.values["site"]] * t.num_rows))
"""

MODELS = {
    "models/monthly_events.sql": """
        {{ config(materialized='incremental', unique_key='event_month',
                  incremental_strategy='delete+insert',
                  meta={'sqlorch': {'partitions': {'type': 'monthly', 'start': '2024-01',
                        'end': '2024-03', 'column': 'event_month'}}}) }}
        select date_trunc('month', event_date)::date as event_month,
               count(*) as n, sum(value) as total
        from {{ source('raw', 'events') }}
        where event_date >= date '{{ var("start_date", "1900-01-01") }}'
          and event_date < date '{{ var("end_date", "2999-01-01") }}'
        group by 1
    """,
    "models/sources.yml": """
        version: 2
        sources:
          - name: raw
            schema: raw
            tables: [{name: events}]
    """,
}


@pytest.fixture
def project(make_dbt_project: Callable[..., TinyProject]) -> TinyProject:
    return make_dbt_project(MODELS, {"ingest/events.py": EVENTS})


def table_hash(db: Path, table: str) -> str:
    rows = query(db, f"select * from {table} order by all")
    return hashlib.sha256(repr(rows).encode()).hexdigest()


def cli(sqlorch: Callable[..., CliResult], p: TinyProject, *args: str) -> CliResult:
    return sqlorch(p.path, *args)


def test_build_materializes_every_partition_and_a_second_build_does_none(
    sqlorch: Callable[..., CliResult], project: TinyProject
) -> None:
    r = cli(sqlorch, project, "build")
    assert r.exit_code == 0, r.describe()
    db = project.db
    assert scalar(db, "select count(*) from raw.events") == 60 * 3
    assert scalar(db, "select count(distinct event_date) from raw.events") == 60
    assert scalar(db, "select count(*) from raw.by_site") == 4 * 2 * 3
    assert scalar(db, "select sum(n) from main.monthly_events") == 180
    doc = cli(sqlorch, project, "partitions", "raw.events", "--json").json()
    assert doc["partitions"]["done"] == [["2024-01-01", "2024-02-29"]]
    assert doc["partitions"]["missing"] == [] and doc["partitions"]["stale"] == []
    plan = cli(sqlorch, project, "build", "--dry-run", "--json").json()
    assert not [s for s in plan["steps"] if s["partitions"]], plan
    status = {s["key"]: s for s in cli(sqlorch, project, "status", "--json").json()}
    assert status["raw.events"]["partitions"]["done"] == [["2024-01-01", "2024-02-29"]]
    assert status["main.monthly_events"]["partitions"]["done"] == [["2024-01", "2024-02"]]


def test_backfill_twice_leaves_identical_tables_and_runs_one_dbt_invocation(
    sqlorch: Callable[..., CliResult], project: TinyProject
) -> None:
    assert cli(sqlorch, project, "build").exit_code == 0
    before = {t: table_hash(project.db, t) for t in ("raw.events", "main.monthly_events")}
    plan = cli(
        sqlorch,
        project,
        "backfill",
        "raw.events",
        "--from",
        "2024-01-10",
        "--to",
        "2024-02-05",
        "--dry-run",
        "--json",
    ).json()
    steps = {s["key"]: s for s in plan["steps"]}
    assert steps["raw.events"]["partitions"] == [["2024-01-10", "2024-02-05"]]
    assert steps["main.monthly_events"]["partitions"] == [["2024-01", "2024-02"]]
    assert steps["raw.events_prev"]["partitions"] == [["2024-01-11", "2024-02-06"]]
    for _ in range(2):
        r = cli(
            sqlorch, project, "backfill", "raw.events", "--from", "2024-01-10", "--to", "2024-02-05"
        )
        assert r.exit_code == 0, r.describe()
        assert {t: table_hash(project.db, t) for t in before} == before
    events = cli(sqlorch, project, "logs", "--json").json_lines()
    invocations = [e for e in events if e["kind"] == "dbt_invocation_started"]
    assert len(invocations) == 1, invocations  # two months, one invocation
    done = cli(sqlorch, project, "partitions", "raw.events", "--json").json()
    assert done["partitions"]["done"] == [["2024-01-01", "2024-02-29"]]


def test_no_downstream_and_partition_keys(
    sqlorch: Callable[..., CliResult], project: TinyProject
) -> None:
    assert cli(sqlorch, project, "build").exit_code == 0
    plan = cli(
        sqlorch,
        project,
        "backfill",
        "raw.by_site",
        "--partition",
        "2024-01-02|b",
        "--partition",
        "2024-01-04|a",
        "--no-downstream",
        "--dry-run",
        "--json",
    ).json()
    assert plan["steps"] == [
        {
            "key": "raw.by_site",
            "kind": "python",
            "partitions": [["2024-01-04|a", "2024-01-04|a"], ["2024-01-02|b", "2024-01-02|b"]],
            "reasons": ["backfill"],
        }
    ]


def test_wipe_marks_for_rebuild_and_the_next_build_fills_the_gap(
    sqlorch: Callable[..., CliResult], project: TinyProject
) -> None:
    assert cli(sqlorch, project, "build").exit_code == 0
    full = table_hash(project.db, "raw.events")
    r = cli(
        sqlorch,
        project,
        "wipe",
        "raw.events",
        "--from",
        "2024-02-01",
        "--to",
        "2024-02-10",
        "--delete-data",
    )
    assert r.exit_code == 0, r.describe()
    assert "deleted 30 rows" in r.flat
    assert scalar(project.db, "select count(*) from raw.events") == 50 * 3
    doc = cli(sqlorch, project, "partitions", "raw.events", "--json").json()
    assert doc["partitions"]["missing"] == [["2024-02-01", "2024-02-10"]]
    plan = cli(sqlorch, project, "build", "--dry-run", "--json").json()
    steps = {s["key"]: s["partitions"] for s in plan["steps"] if s["partitions"]}
    assert steps["raw.events"] == [["2024-02-01", "2024-02-10"]]
    assert steps["main.monthly_events"] == [["2024-02", "2024-02"]]
    assert cli(sqlorch, project, "build").exit_code == 0
    assert table_hash(project.db, "raw.events") == full


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["raw.events", "--from", "2030-01-01", "--to", "2030-02-01"], ["outside", "raw.events"]),
        (["raw.events", "--from", "2024-02-30"], ["'2024-02-30' is not a date"]),
        (["raw.events", "--partition", "2024-13-01"], ["is not a date"]),
        (["raw.by_site", "--partition", "2024-01-02|zz"], ["Unknown partition key 'zz'"]),
        (["raw.events"], ["needs a range"]),
    ],
)
def test_bad_backfills_are_clear_errors_before_anything_runs(
    sqlorch: Callable[..., CliResult], project: TinyProject, args: list[str], needles: list[str]
) -> None:
    r = cli(sqlorch, project, "backfill", *args)
    assert_clean_error(r, 2, *needles)
    assert not project.db.exists() or not query(
        project.db, "select 1 from information_schema.tables where table_schema = 'raw'"
    )


def test_a_partition_outside_its_window_or_without_its_column_writes_nothing(
    sqlorch: Callable[..., CliResult], make_dbt_project: Callable[..., TinyProject]
) -> None:
    bad = """
import pyarrow as pa
from datetime import date
from sqlorch import asset, daily

@asset(partitions=daily("2024-01-01", end="2024-01-03", column="d"))
def leaky(context):
    return pa.table({"d": pa.array([date(2024, 1, 1), date(2024, 1, 2)], pa.date32())})

@asset(partitions=daily("2024-01-01", end="2024-01-03", column="d"))
def nocol(context):
    return pa.table({"x": [1]})
"""
    p = make_dbt_project({}, {"ingest/bad.py": bad})
    r = cli(sqlorch, p, "build")
    assert r.exit_code == 1
    assert "outside the partition" in r.flat and "has no column d" in r.flat
    assert scalar(p.db, "select count(*) from raw.leaky") == 0
    doc = cli(sqlorch, p, "partitions", "raw.leaky", "--json").json()
    assert doc["partitions"]["failed"] == [["2024-01-01", "2024-01-02"]]
    assert doc["partitions"]["done"] == []


MICROBATCH = {
    "models/mb.sql": """
        {{ config(materialized='incremental', incremental_strategy='microbatch',
                  event_time='event_ts', batch_size='day', begin='2024-01-01',
                  meta={'sqlorch': {'partitions': {'end': '2024-03-01'}}}) }}
        select event_date::timestamp as event_ts, value from {{ source('raw', 'events') }}
    """,
    "models/sources.yml": MODELS["models/sources.yml"],
}


def test_a_microbatch_model_is_a_daily_partitioned_asset(
    sqlorch: Callable[..., CliResult], make_dbt_project: Callable[..., TinyProject]
) -> None:
    p = make_dbt_project(MICROBATCH, {"ingest/events.py": EVENTS})
    ls = {a["key"]: a for a in cli(sqlorch, p, "ls", "--json").json()}
    assert ls["main.mb"]["partitions"]["type"] == "daily"
    assert ls["main.mb"]["partitions"]["column"] == "event_ts"
    r = cli(sqlorch, p, "build")
    assert r.exit_code == 0, r.describe()
    assert scalar(p.db, "select count(*) from main.mb") == 180
    r = cli(sqlorch, p, "backfill", "mb", "--from", "2024-02-01", "--to", "2024-02-03")
    assert r.exit_code == 0, r.describe()
    args = [
        e["data"]["args"]
        for e in cli(sqlorch, p, "logs", "--json").json_lines()
        if e["kind"] == "dbt_invocation_finished"
    ]
    assert len(args) == 1 and "--event-time-start" in args[0]
    assert args[0][args[0].index("--event-time-start") + 1] == "2024-02-01T00:00:00"
    assert args[0][args[0].index("--event-time-end") + 1] == "2024-02-04T00:00:00"
    assert scalar(p.db, "select count(*) from main.mb") == 180


def test_a_microbatch_model_without_begin_is_a_clear_error(
    sqlorch: Callable[..., CliResult], make_dbt_project: Callable[..., TinyProject]
) -> None:
    files = dict(MICROBATCH)
    files["models/mb.sql"] = files["models/mb.sql"].replace(", begin='2024-01-01'", "")
    p = make_dbt_project(files, {"ingest/events.py": EVENTS})
    r = cli(sqlorch, p, "build")
    assert r.exit_code == 2, r.describe()
    assert "begin" in r.flat and "mb" in r.flat


SLOW = """
import time
from datetime import timedelta

import pyarrow as pa

from sqlorch import AssetContext, asset, daily


@asset(schema="raw", partitions=daily("2024-01-01", end="2024-01-31", column="event_date"))
def slow(context: AssetContext) -> pa.Table:
    time.sleep(0.3)
    day = context.partition.start.date()
    days = [day + timedelta(days=0)] * 1000
    return pa.table({"event_date": pa.array(days, pa.date32()), "value": list(range(1000))})
"""


def test_kill_9_during_a_backfill_then_build_completes_and_the_ledger_never_lies(
    sqlorch: Callable[..., CliResult], make_dbt_project: Callable[..., TinyProject]
) -> None:
    import os
    import signal
    import sqlite3
    import subprocess
    import sys
    import time

    from tests.conftest import clean_environ

    p = make_dbt_project({}, {"ingest/slow.py": SLOW})
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sqlorch.cli",
            "backfill",
            "raw.slow",
            "--from",
            "2024-01-01",
            "--to",
            "2024-01-30",
            "--threads",
            "2",
            "--project-dir",
            str(p.path),
        ],
        cwd=p.path,
        env=clean_environ(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    state = p.path / ".sqlorch" / "state.db"
    deadline = time.monotonic() + 120
    done_rows: list[tuple[str, str]] = []
    while time.monotonic() < deadline and not done_rows:
        time.sleep(0.2)
        if state.exists():
            try:
                with sqlite3.connect(state) as con:
                    done_rows = con.execute(
                        "select lo, hi from partition_ledger where status = 'done'"
                    ).fetchall()
            except sqlite3.OperationalError:
                pass  # the table does not exist yet
    time.sleep(0.5)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert done_rows, "the backfill recorded nothing before it was killed"
    # every partition the ledger calls done has its rows
    doc = cli(sqlorch, p, "partitions", "raw.slow", "--json").json()
    assert doc["partitions"]["missing"], "killed too late: nothing left to resume"
    for lo, hi in doc["partitions"]["done"]:
        n = scalar(
            p.db, f"select count(*) from raw.slow where event_date between '{lo}' and '{hi}'"
        )
        days = scalar(p.db, f"select date_diff('day', date '{lo}', date '{hi}') + 1")
        assert n == days * 1000
    r = cli(sqlorch, p, "build")
    assert r.exit_code == 0, r.describe()
    assert scalar(p.db, "select count(*) from raw.slow") == 30 * 1000
    assert scalar(p.db, "select count(distinct event_date) from raw.slow") == 30
    doc = cli(sqlorch, p, "partitions", "raw.slow", "--json").json()
    assert doc["partitions"]["done"] == [["2024-01-01", "2024-01-30"]]


def test_a_partition_column_the_table_lacks_is_an_error_before_anything_runs(
    sqlorch: Callable[..., CliResult], project: TinyProject
) -> None:
    assert cli(sqlorch, project, "build").exit_code == 0
    before = table_hash(project.db, "raw.events")
    events = (project.path / "ingest" / "events.py").read_text()
    project.write(
        {
            "ingest/events.py": events.replace(
                'end="2024-03-01", column="event_date"))\ndef events(',
                'end="2024-03-01", column="event_day"))\ndef events(',
            )
        }
    )
    r = cli(
        sqlorch, project, "backfill", "raw.events", "--from", "2024-01-01", "--to", "2024-01-02"
    )
    assert_clean_error(r, 2, "raw.events", "no column event_day", "nothing ran")
    assert table_hash(project.db, "raw.events") == before
    assert len(cli(sqlorch, project, "runs", "--json").json()) == 1
