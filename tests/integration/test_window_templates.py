"""Partition windows of dbt models written from dbt's compiled SQL (sqlorch.dbt.templates).

Each eligible model has a twin that opts out (`window_writes: dbt`), so every test compares
sqlorch's own delete-then-insert with dbt's materialization of the same SQL, on real dbt and
real DuckDB files.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from sqlorch.dbt.package import macros_text
from tests.conftest import CliResult, TinyProject, query, scalar
from tests.integration.test_partitions import EVENTS, table_hash

pytestmark = pytest.mark.dbt  # runs real dbt

DAILY = """
    {{{{ config(materialized='incremental', unique_key='event_date',
              incremental_strategy='delete+insert', on_schema_change='append_new_columns',
              meta={{'sqlorch': {{'partitions': {{'type': 'daily', 'start': '2024-01-01',
                    'end': '2024-03-01', 'column': 'event_date'}}{extra}}}}}) }}}}
    select event_date, count(*) as n, sum(value) as total
    from {{{{ source('raw', 'events') }}}}
    where {{{{ sqlorch_window('event_date') }}}}
    group by 1
"""

MICRO = """
    {{{{ config(materialized='incremental', incremental_strategy='microbatch',
              event_time='event_ts', batch_size='day', begin='2024-01-01',
              meta={{'sqlorch': {{'partitions': {{'end': '2024-03-01'}}{extra}}}}}) }}}}
    select event_date::timestamp as event_ts, value from {{{{ source('raw', 'events') }}}}
"""

DBT_WRITES = ", 'window_writes': 'dbt'"

FILES = {
    "macros/sqlorch.sql": macros_text(),  # as `sqlorch macros` writes it
    "models/daily_sum.sql": DAILY.format(extra=""),
    "models/daily_sum_dbt.sql": DAILY.format(extra=DBT_WRITES),
    "models/mb.sql": MICRO.format(extra=""),
    "models/mb_dbt.sql": MICRO.format(extra=DBT_WRITES),
    "models/sources.yml": """
        version: 2
        sources:
          - name: raw
            schema: raw
            tables: [{name: events, config: {event_time: event_date}}]
    """,
    "models/schema.yml": """
        version: 2
        models:
          - name: daily_sum
            columns:
              - name: n
                data_tests: [not_null]
    """,
    "dbt_tests/three_events_a_day.sql": """
        select * from {{ ref('daily_sum') }} where n <> 3
    """,
}

TWINS = (("main.daily_sum", "main.daily_sum_dbt"), ("main.mb", "main.mb_dbt"))


@pytest.fixture
def project(make_dbt_project: Callable[..., TinyProject]) -> TinyProject:
    return make_dbt_project(FILES, {"ingest/events.py": EVENTS})


def templates(p: TinyProject) -> dict[str, dict[str, object]]:
    path = p.path / ".sqlorch" / "dbt" / "templates.json"
    return json.loads(path.read_text()) if path.exists() else {}


def invocations(sqlorch: Callable[..., CliResult], p: TinyProject) -> list[list[str]]:
    """The args of each dbt invocation of the last run (sqlorch's window writes included)."""
    events = sqlorch(p.path, "logs", "--json").json_lines()
    return [e["data"]["args"] for e in events if e["kind"] == "dbt_invocation_finished"]


def backfill(sqlorch: Callable[..., CliResult], p: TinyProject, *args: str) -> CliResult:
    r = sqlorch(p.path, "backfill", *args)
    assert r.exit_code == 0, r.describe()
    return r


def same_rows(db: Path, a: str, b: str) -> bool:
    return table_hash(db, a) == table_hash(db, b)


def test_windows_written_from_templates_equal_dbts_and_need_no_dbt_once_compiled(
    sqlorch: Callable[..., CliResult], project: TinyProject
) -> None:
    r = sqlorch(project.path, "build")
    assert r.exit_code == 0, r.describe()
    db = project.db
    # the tables did not exist: dbt created them, then (dbt being loaded) compiled the
    # templates their next windows are written from
    assert set(templates(project)) == {"main.daily_sum", "main.mb"}
    args = invocations(sqlorch, project)
    assert args and not [a for a in args if a[0].startswith("sqlorch:")], args
    for a, b in TWINS:
        assert scalar(db, f"select count(*) from {a}") > 0
        assert same_rows(db, a, b)
    # damage the tables: a day's rows gone, a row of a day that does not belong
    for table in ("main.daily_sum", "main.daily_sum_dbt"):
        query(db, f"delete from {table} where event_date = date '2024-01-20'")
        query(db, f"insert into {table} values (date '2024-01-21', 99, 99)")
    for table in ("main.mb", "main.mb_dbt"):
        query(db, f"delete from {table} where event_ts::date = date '2024-01-20'")
        query(db, f"insert into {table} values (timestamp '2024-01-21 05:00', 99)")
    sel = ("daily_sum", "daily_sum_dbt", "mb", "mb_dbt")
    backfill(sqlorch, project, *sel, "--from", "2024-01-18", "--to", "2024-01-24")
    written = templates(project)
    assert set(written) == {"main.daily_sum", "main.mb"}, written
    assert all("parts" in t for t in written.values()), written
    runs = sorted((project.path / ".sqlorch" / "runs").iterdir())
    assert not list(runs[-1].glob("dbt-*/templates-*")), list(runs[-1].rglob("*"))
    args = invocations(sqlorch, project)
    events = sqlorch(project.path, "logs", "--json").json_lines()
    because = {
        k: v
        for e in events
        if e["kind"] == "dbt_invocation_finished"
        for k, v in e["data"]["dbt_writes_because"].items()
    }
    assert because == {
        "main.daily_sum_dbt": "meta.sqlorch.window_writes is 'dbt'",
        "main.mb_dbt": "meta.sqlorch.window_writes is 'dbt'",
    }, because
    # one group per window shape (vars, event time); the twins join it as dbt's part
    direct = {a[1]: a for a in args if a[0].startswith("sqlorch: window writes")}
    assert set(direct) == {"main.daily_sum", "main.mb"}, args
    assert "+ dbt:" in direct["main.mb"] and "--event-time-start" in direct["main.mb"]
    assert "+ dbt:" in direct["main.daily_sum"] and "--vars" in direct["main.daily_sum"]
    for a, b in TWINS:
        assert same_rows(db, a, b), (a, query(db, f"select * from {a} except select * from {b}"))
    assert scalar(db, "select count(*) from main.daily_sum where n = 99") == 0
    assert scalar(db, "select n from main.daily_sum where event_date = date '2024-01-20'") == 3
    history = sqlorch(project.path, "history", "main.daily_sum", "--json").json()
    window = [m for m in history["materializations"] if m["partition"] == "2024-01-18..2024-01-24"]
    assert window and window[0]["rows"] == 7, history  # the rows of the window, exactly
    ran = {c["check"]: c["status"] for c in window[0]["checks"]}
    assert ran == {"not_null_daily_sum_n": "pass", "three_events_a_day": "pass"}, ran
    # without their twins: no dbt start-up for the templated models' windows
    before = {t: table_hash(db, t) for pair in TWINS for t in pair}
    backfill(sqlorch, project, "daily_sum", "mb", "--from", "2024-01-02", "--to", "2024-02-20")
    assert {t: table_hash(db, t) for pair in TWINS for t in pair} == before
    args = invocations(sqlorch, project)
    assert sorted(args) == [
        ["sqlorch: window writes from dbt's compiled SQL", "main.daily_sum"],
        ["sqlorch: window writes from dbt's compiled SQL", "main.mb"],
    ], args
    finished = [
        e["data"]
        for e in sqlorch(project.path, "logs", "--json").json_lines()
        if e["kind"] == "dbt_invocation_finished"
    ]
    assert sorted(w for d in finished for w in d["window_writes"]) == ["main.daily_sum", "main.mb"]
    assert [d["log"] for d in finished] == [None, None]  # dbt wrote no log: it did not run
    # daily_sum's tests ran from their compiled SQL, as dbt runs them
    history = sqlorch(project.path, "history", "main.daily_sum", "--json").json()
    latest = history["materializations"][0]
    ran = {c["check"]: (c["status"], c["run_id"]) for c in latest["checks"]}
    assert ran == {
        "not_null_daily_sum_n": ("pass", latest["run_id"]),
        "three_events_a_day": ("pass", latest["run_id"]),
    }, latest


def test_an_edited_model_recompiles_its_template_and_new_columns_go_through_dbt(
    sqlorch: Callable[..., CliResult], project: TinyProject
) -> None:
    assert sqlorch(project.path, "build").exit_code == 0
    backfill(sqlorch, project, "daily_sum", "--from", "2024-01-01", "--to", "2024-01-02")
    first = templates(project)["main.daily_sum"]
    # a new column: the template changes, its columns no longer match, dbt appends it
    path = project.path / "models" / "daily_sum.sql"
    sql = path.read_text()
    path.write_text(sql.replace("sum(value) as total", "sum(value) as total, 1 as one"))
    r = sqlorch(project.path, "build")
    assert r.exit_code == 0, r.describe()
    assert templates(project)["main.daily_sum"]["inputs"] != first["inputs"]
    assert [c[0] for c in query(project.db, "describe main.daily_sum")][-1] == "one"
    assert scalar(project.db, "select count(*) from main.daily_sum where one is null") == 0
    assert not [a for a in invocations(sqlorch, project) if a[0].startswith("sqlorch:")]
    # an edit that keeps the columns: written from the new template, every day rebuilt
    path.write_text(path.read_text().replace("sum(value) as total", "sum(value) * 2 as total"))
    r = sqlorch(project.path, "build")
    assert r.exit_code == 0, r.describe()
    assert [a[0] for a in invocations(sqlorch, project)][0].startswith("sqlorch: window writes")
    assert (
        scalar(
            project.db,
            "select count(*) from main.daily_sum d join main.daily_sum_dbt o using (event_date) "
            "where d.total <> 2 * o.total",
        )
        == 0
    )
    assert scalar(project.db, "select count(*) from main.daily_sum") == 60


def test_a_model_that_computes_with_its_window_stays_with_dbt(
    sqlorch: Callable[..., CliResult], make_dbt_project: Callable[..., TinyProject]
) -> None:
    files = dict(FILES)
    # the day before the window too (a lookback computed in Jinja): not a template
    files["models/daily_sum.sql"] = DAILY.format(extra="").replace(
        "where {{ sqlorch_window('event_date') }}",
        """where event_date >= date '{{ (modules.datetime.date.fromisoformat("""
        """var("start_date", "1900-01-02")) - modules.datetime.timedelta(days=1)).isoformat() }}'"""
        """ and event_date < date '{{ var("end_date", "2999-01-01") }}'""",
    )
    p = make_dbt_project(files, {"ingest/events.py": EVENTS})
    assert sqlorch(p.path, "build").exit_code == 0
    backfill(sqlorch, p, "daily_sum", "--from", "2024-01-05", "--to", "2024-01-06")
    reason = templates(p)["main.daily_sum"]["reason"]
    assert "uses the window in ways other than its bounds" in str(reason)
    events = sqlorch(p.path, "logs", "--json").json_lines()
    finished = [e["data"] for e in events if e["kind"] == "dbt_invocation_finished"]
    assert finished[0]["dbt_writes_because"]["main.daily_sum"] == reason
    assert "--vars" in invocations(sqlorch, p)[0]
    assert scalar(p.db, "select count(*) from main.daily_sum") == 60
    assert scalar(p.db, "select count(*) from main.daily_sum where n <> 3") == 0


def test_a_failing_dbt_test_after_window_writes_is_a_failed_check(
    sqlorch: Callable[..., CliResult], project: TinyProject
) -> None:
    assert sqlorch(project.path, "build").exit_code == 0
    backfill(sqlorch, project, "daily_sum", "--from", "2024-01-01", "--to", "2024-01-01")
    (project.path / "dbt_tests" / "three_events_a_day.sql").write_text(
        "select * from {{ ref('daily_sum') }} where n = 3\n"
    )
    r = sqlorch(project.path, "backfill", "daily_sum", "--from", "2024-01-03", "--to", "2024-01-04")
    assert r.exit_code != 0, r.describe()
    # the edited test changed the template's inputs: recompiled, then run by sqlorch
    tests = templates(project)["main.daily_sum"]["tests"]
    assert isinstance(tests, list)
    assert {t["unique_id"].split(".")[2] for t in tests} == {
        "not_null_daily_sum_n",
        "three_events_a_day",
    }
    args = invocations(sqlorch, project)
    assert args == [["sqlorch: window writes from dbt's compiled SQL", "main.daily_sum"]], args
    # the blocking tests ran inside the window's write, which the failure rolled back
    # (write-audit-publish): nothing was materialized, both results are recorded
    events = sqlorch(project.path, "logs", "--json").json_lines()
    ran = {
        e["data"]["check"]: e["data"]["status"]
        for e in events
        if e["kind"] in ("check_passed", "check_failed")
    }
    assert ran["three_events_a_day"] == "fail", events
    assert ran["not_null_daily_sum_n"] == "pass", events
    assert not [e for e in events if e["kind"] == "partitions_materialized"], events
    assert "rolled back" in r.flat, r.describe()


SLOW_DAILY = """
    {{ config(materialized='incremental', unique_key='event_date',
              incremental_strategy='delete+insert',
              meta={'sqlorch': {'max_partitions_per_run': 1, 'partitions': {'type': 'daily',
                    'start': '2024-01-01', 'end': '2024-01-21', 'column': 'event_date'}}}) }}
    select event_date, count(*) as n, sum(value) as total
    from {{ source('raw', 'events') }}
    where event_date >= date '{{ var("start_date", "1900-01-01") }}'
      and event_date < date '{{ var("end_date", "2999-01-01") }}'
      -- work enough that a window takes a moment
      and (select sum(i % 7) from range(60000000) t(i)) >= 0
    group by 1
"""


def test_kill_9_during_window_writes_then_build_completes_and_the_ledger_never_lies(
    sqlorch: Callable[..., CliResult], make_dbt_project: Callable[..., TinyProject]
) -> None:
    import os
    import signal
    import sqlite3
    import subprocess
    import sys
    import time

    from tests.conftest import clean_environ

    files = {"models/slow_daily.sql": SLOW_DAILY, "models/sources.yml": FILES["models/sources.yml"]}
    p = make_dbt_project(files, {"ingest/events.py": EVENTS})
    r = sqlorch(p.path, "build", "-s", "+slow_daily")
    assert r.exit_code == 0, r.describe()
    assert "parts" in templates(p)["main.slow_daily"]  # the windows after the first: sqlorch's
    wiped = sqlorch(
        p.path, "wipe", "slow_daily", "--from", "2024-01-01", "--to", "2024-01-20", "--delete-data"
    )
    assert wiped.exit_code == 0, wiped.describe()
    assert scalar(p.db, "select count(*) from main.slow_daily") == 0
    proc = subprocess.Popen(
        [sys.executable, "-m", "sqlorch.cli", "build", "-s", "slow_daily"],
        cwd=p.path,
        env=clean_environ(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    state = p.path / ".sqlorch" / "state.db"
    with sqlite3.connect(state) as con:
        before = con.execute("select count(*) from partition_ledger").fetchone()[0]
    deadline = time.monotonic() + 120
    grew = False
    while time.monotonic() < deadline and not grew and proc.poll() is None:
        time.sleep(0.1)
        try:
            with sqlite3.connect(state) as con:
                grew = con.execute("select count(*) from partition_ledger").fetchone()[0] > before
        except sqlite3.OperationalError:
            pass  # locked for a moment
    time.sleep(0.3)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert grew, "the build recorded no window before it was killed"
    doc = sqlorch(p.path, "partitions", "slow_daily", "--json").json()
    assert doc["partitions"]["missing"], "killed too late: nothing left to resume"
    for lo, hi in doc["partitions"]["done"]:
        n = scalar(
            p.db,
            f"select count(*) from main.slow_daily where event_date between '{lo}' and '{hi}'",
        )
        assert n == scalar(p.db, f"select date_diff('day', date '{lo}', date '{hi}') + 1")
    assert scalar(p.db, "select count(*) from main.slow_daily where n <> 3") == 0
    r = sqlorch(p.path, "build", "-s", "slow_daily")
    assert r.exit_code == 0, r.describe()
    assert scalar(p.db, "select count(*) from main.slow_daily") == 20
    assert scalar(p.db, "select count(distinct event_date) from main.slow_daily") == 20
    assert scalar(p.db, "select count(*) from main.slow_daily where n <> 3") == 0
    doc = sqlorch(p.path, "partitions", "slow_daily", "--json").json()
    assert doc["partitions"]["done"] == [["2024-01-01", "2024-01-20"]]


SITE_DAILY = """
    {{ config(materialized='incremental', incremental_strategy='delete+insert',
              unique_key=['event_date', 'site'],
              meta={'sqlorch': {'partitions': [
                  {'type': 'daily', 'start': '2024-01-01', 'end': '2024-01-05',
                   'column': 'event_date'},
                  {'type': 'static', 'keys': ['a', 'b'], 'column': 'site'}]}}) }}
    select event_date, site, count(*) as n, sum(value) as total
    from {{ source('raw', 'by_site') }}
    where {{ sqlorch_window('event_date', ['site']) }}
    group by 1, 2
"""


def test_a_dbt_model_partitioned_by_day_and_site_with_the_provided_macro(
    sqlorch: Callable[..., CliResult], make_dbt_project: Callable[..., TinyProject]
) -> None:
    files = {
        "macros/sqlorch.sql": macros_text(),
        "models/site_daily.sql": SITE_DAILY,
        "models/sources.yml": """
            version: 2
            sources:
              - name: raw
                schema: raw
                tables: [{name: by_site}]
        """,
    }
    p = make_dbt_project(files, {"ingest/events.py": EVENTS})
    r = sqlorch(p.path, "build", "-s", "+site_daily")
    assert r.exit_code == 0, r.describe()
    expected = "select event_date, site, count(*), sum(value) from raw.by_site group by all"
    assert sorted(query(p.db, "select * from main.site_daily")) == sorted(query(p.db, expected))
    doc = sqlorch(p.path, "partitions", "site_daily", "--json").json()
    assert doc["partitions"]["missing"] == [], doc
    # one site's days, damaged then rebuilt: the other site's rows are left alone
    query(p.db, "update main.site_daily set n = 0")
    r = sqlorch(
        p.path,
        "backfill",
        "site_daily",
        "--partition",
        "2024-01-02|a",
        "--partition",
        "2024-01-03|a",
    )
    assert r.exit_code == 0, r.describe()
    fixed = query(p.db, "select event_date::varchar, site from main.site_daily where n > 0")
    assert sorted(fixed) == [("2024-01-02", "a"), ("2024-01-03", "a")]
    args = invocations(sqlorch, p)
    assert len(args) == 1 and "--vars" in args[0], args  # static dimensions: dbt writes
    passed = json.loads(args[0][args[0].index("--vars") + 1])
    assert passed == {"start_date": "2024-01-02", "end_date": "2024-01-04", "partition_site": "a"}


def test_sqlorch_macros_writes_updates_and_refuses_a_foreign_file(
    sqlorch: Callable[..., CliResult], make_dbt_project: Callable[..., TinyProject]
) -> None:
    p = make_dbt_project({"models/one.sql": "select 1 as x"})
    r = sqlorch(p.path, "macros")
    assert r.exit_code == 0, r.describe()
    path = p.path / "macros" / "sqlorch.sql"
    assert path.read_text() == macros_text()
    assert "written" in r.output
    assert "already up to date" in sqlorch(p.path, "macros").output
    path.write_text(macros_text().replace("sqlorch_window", "old_window"))  # an older version
    assert sqlorch(p.path, "macros").exit_code == 0
    assert path.read_text() == macros_text()
    path.write_text("{% macro mine() %}1{% endmacro %}\n")
    r = sqlorch(p.path, "macros")
    assert r.exit_code == 2 and "was not written by sqlorch" in r.output, r.describe()
    assert path.read_text() == "{% macro mine() %}1{% endmacro %}\n"
    assert sqlorch(p.path, "macros", "--print").output == macros_text()


HOURS = """
from datetime import timedelta

import pyarrow as pa

from sqlorch import AssetContext, asset, hourly


@asset(schema="raw", partitions=hourly("2024-01-01T00:00", end="2024-01-03T00:00", column="ts"))
def readings(context: AssetContext) -> pa.Table:
    start = context.partition.start.replace(tzinfo=None)
    stamps = [start + timedelta(minutes=10 * i) for i in range(6)]
    return pa.table({"ts": pa.array(stamps, pa.timestamp("us")), "value": list(range(6))})
"""

HOURLY = """
    {{{{ config(materialized='incremental', incremental_strategy='delete+insert',
              unique_key='hour',
              meta={{'sqlorch': {{'partitions': {{'type': 'hourly', 'start': '2024-01-01T00:00',
                    'end': '2024-01-03T00:00', 'column': 'hour'}}{extra}}}}}) }}}}
    select date_trunc('hour', ts) as hour, count(*) as n, sum(value) as total
    from {{{{ source('raw', 'readings') }}}}
    where {{{{ sqlorch_window('ts') }}}}
    group by 1
"""


def test_hourly_windows_from_templates_equal_dbts(
    sqlorch: Callable[..., CliResult], make_dbt_project: Callable[..., TinyProject]
) -> None:
    files = {
        "macros/sqlorch.sql": macros_text(),
        "models/by_hour.sql": HOURLY.format(extra=""),
        "models/by_hour_dbt.sql": HOURLY.format(extra=DBT_WRITES),
        "models/sources.yml": """
            version: 2
            sources:
              - name: raw
                schema: raw
                tables: [{name: readings}]
        """,
    }
    p = make_dbt_project(files, {"ingest/readings.py": HOURS})
    assert sqlorch(p.path, "build").exit_code == 0
    assert "parts" in templates(p)["main.by_hour"]
    for table in ("main.by_hour", "main.by_hour_dbt"):
        query(p.db, f"update {table} set n = 0")
    window = ("--from", "2024-01-01T05:00", "--to", "2024-01-02T02:00")
    backfill(sqlorch, p, "by_hour", "by_hour_dbt", *window)
    args = {a[1]: a for a in invocations(sqlorch, p)}
    assert args["main.by_hour"][0].startswith("sqlorch: window writes"), args
    passed = json.loads(args["main.by_hour"][args["main.by_hour"].index("--vars") + 1])
    assert passed == {"start_date": "2024-01-01 05:00:00", "end_date": "2024-01-02 03:00:00"}
    assert same_rows(p.db, "main.by_hour", "main.by_hour_dbt")
    assert scalar(p.db, "select count(*) from main.by_hour where n = 6") == 22
    assert scalar(p.db, "select min(hour)::varchar from main.by_hour where n = 6") == (
        "2024-01-01 05:00:00"
    )


def test_a_bad_window_writes_setting_is_a_clear_error(
    sqlorch: Callable[..., CliResult], make_dbt_project: Callable[..., TinyProject]
) -> None:
    files = dict(FILES)
    files["models/daily_sum.sql"] = DAILY.format(extra=", 'window_writes': 'DBT'")
    p = make_dbt_project(files, {"ingest/events.py": EVENTS})
    r = sqlorch(p.path, "build")
    assert r.exit_code == 2, r.describe()
    assert "daily_sum" in r.output and "models/daily_sum.sql" in r.output, r.output
    assert "window_writes is 'DBT'" in r.output and "use 'dbt'" in r.output, r.output
    assert (
        not p.db.exists()
        or scalar(
            p.db, "select count(*) from information_schema.tables where table_name = 'events'"
        )
        == 0
    )


def test_the_examples_macros_are_what_sqlorch_macros_writes() -> None:
    example = Path(__file__).resolve().parents[2] / "macros" / "sqlorch.sql"
    assert example.read_text() == macros_text(), "run `sqlorch macros` in the repo root"
