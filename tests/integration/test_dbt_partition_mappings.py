"""Partition mappings of dbt models (`meta.sqlorch.deps`): real dbt, real DuckDB, the CLI."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import CliResult, TinyProject, assert_clean_error, query, scalar

pytestmark = pytest.mark.dbt  # runs real dbt

EVENTS = """
from datetime import date, timedelta
from pathlib import Path

import pyarrow as pa

from sqlorch import AssetContext, asset, daily

BUMP = Path(__file__).resolve().parent.parent / "bump.txt"


@asset(schema="raw", partitions=daily("2024-01-01", end="2024-03-01", column="event_date"))
def events(context: AssetContext) -> pa.Table:
    # `bump.txt` stands for the source data changing: a rewritten day has other values
    bump = int(BUMP.read_text()) if BUMP.exists() else 0
    p = context.partition
    d = p.start.date()
    days = [d] * 3
    values = [d.toordinal() * 10 + i + bump for i in range(3)]
    return pa.table({"event_date": pa.array(days, pa.date32()), "value": values})
"""

# every model's window comes as vars start_date/end_date; a plain dbt run takes everything
WINDOW = """{%- macro window_filter(column, shift_days=0) -%}
    {%- if var('start_date', none) is not none -%}
        {{ column }} >= (date '{{ var("start_date") }}' + {{ shift_days }})
        and {{ column }} < (date '{{ var("end_date") }}' + {{ shift_days }})
    {%- else -%} true {%- endif -%}
{%- endmacro %}
"""


def _config(partitions: str, deps: str | None = None) -> str:
    sqlorch = f"'partitions': {partitions}" + (f", 'deps': {deps}" if deps else "")
    return (
        "{{ config(materialized='incremental', incremental_strategy='delete+insert', "
        f"unique_key='day', meta={{'sqlorch': {{{sqlorch}}}}}) }}}}\n"
    )


DAILY = "{'type': 'daily', 'start': '2024-01-01', 'end': '2024-03-01', 'column': 'day'}"
MONTHLY = "{'type': 'monthly', 'start': '2024-01', 'end': '2024-03', 'column': 'day'}"
DEPS = {
    "prev_day": "{'raw.events': {'window': {'offset': -1}}}",
    "rolling_3d": "{'daily_events': {'window': {'lookback': 2}}}",
    "daily_share": "{main.daily_events: all}",  # in models/schema.yml
}

MODELS = {
    "macros/window.sql": WINDOW,
    "models/sources.yml": """
        version: 2
        sources:
          - name: raw
            schema: raw
            tables: [{name: events}]
    """,
    # each day reads the day before of the Python asset (through its dbt source)
    "models/prev_day.sql": _config(DAILY, DEPS["prev_day"])
    + """
        select (event_date + 1)::date as day, count(*) as n, sum(value) as total
        from {{ source('raw', 'events') }}
        where {{ window_filter('event_date', -1) }}
        group by 1
    """,
    # the default mapping, for contrast
    "models/same_day.sql": _config(DAILY)
    + """
        select event_date as day, count(*) as n, sum(value) as total
        from {{ source('raw', 'events') }}
        where {{ window_filter('event_date') }}
        group by 1
    """,
    # a daily dbt upstream of the next three
    "models/daily_events.sql": _config(DAILY)
    + """
        select event_date as day, sum(value) as total from {{ source('raw', 'events') }}
        where {{ window_filter('event_date') }}
        group by 1
    """,
    # a lookback on a dbt upstream, named by its ref name: each day reads the 3 days up to it
    "models/rolling_3d.sql": _config(DAILY, DEPS["rolling_3d"])
    + """
        select d.day, sum(u.total) as total_3d
        from (select distinct day from {{ ref('daily_events') }}
              where {{ window_filter('day') }}) as d
        join {{ ref('daily_events') }} as u
          on u.day between d.day - 2 and d.day
        group by 1
    """,
    # coarser from finer with the default mapping: a month reads all its days
    "models/monthly_events.sql": _config(MONTHLY)
    + """
        select date_trunc('month', day)::date as day, sum(total) as total
        from {{ ref('daily_events') }}
        where {{ window_filter('day') }}
        group by 1
    """,
    # every day reads every day of the upstream (its share of the grand total); its meta is
    # in the .yml
    "models/schema.yml": f"""
        version: 2
        models:
          - name: daily_share
            config:
              meta:
                sqlorch:
                  partitions: {{type: daily, start: "2024-01-01", end: "2024-03-01", column: day}}
                  deps: {DEPS["daily_share"]}
    """,
    "models/daily_share.sql": """
        {{ config(materialized='incremental', incremental_strategy='delete+insert',
                  unique_key='day') }}
        select day, total / (select sum(total) from {{ ref('daily_events') }}) as share
        from {{ ref('daily_events') }}
        where {{ window_filter('day') }}
    """,
}


@pytest.fixture
def project(make_dbt_project: Callable[..., TinyProject]) -> TinyProject:
    return make_dbt_project(MODELS, {"ingest/events.py": EVENTS})


def cli(sqlorch: Callable[..., CliResult], p: TinyProject, *args: str) -> CliResult:
    r = sqlorch(p.path, *args)
    assert r.exception is None, r.describe()
    return r


def ok(sqlorch: Callable[..., CliResult], p: TinyProject, *args: str) -> CliResult:
    r = cli(sqlorch, p, *args)
    assert r.exit_code == 0, r.describe()
    return r


def planned(sqlorch: Callable[..., CliResult], p: TinyProject, *args: str) -> dict[str, list]:
    """The partitions a `build`/`backfill ... --dry-run --json` plans, per asset."""
    plan = ok(sqlorch, p, *args, "--dry-run", "--json").json()
    return {s["key"]: s["partitions"] for s in plan["steps"] if s["partitions"]}


def day_total(db: Path, table: str, day: str, column: str = "total") -> int:
    return int(scalar(db, f"select {column} from {table} where day = date '{day}'"))


def events_total(db: Path, day: str) -> int:
    return int(scalar(db, f"select sum(value) from raw.events where event_date = date '{day}'"))


def test_ls_shows_the_mappings_resolved_to_asset_keys(
    sqlorch: Callable[..., CliResult], project: TinyProject
) -> None:
    assets = {a["key"]: a for a in ok(sqlorch, project, "ls", "--json").json()}
    assert assets["main.prev_day"]["partition_mappings"] == {
        "raw.events": {"window": {"offset": -1, "lookback": 0}}
    }
    assert assets["main.rolling_3d"]["partition_mappings"] == {
        "main.daily_events": {"window": {"offset": 0, "lookback": 2}}
    }
    assert assets["main.daily_share"]["partition_mappings"] == {"main.daily_events": "all"}
    assert assets["main.same_day"]["partition_mappings"] == {}


def test_an_offset_window_backfills_and_rebuilds_the_next_day(
    sqlorch: Callable[..., CliResult], project: TinyProject
) -> None:
    ok(sqlorch, project, "build")
    db = project.db
    assert scalar(db, "select count(*) from main.prev_day") == 59  # Jan 1 reads Dec 31: none
    assert day_total(db, "main.prev_day", "2024-01-06") == events_total(db, "2024-01-05")
    assert planned(sqlorch, project, "build") == {}  # nothing stale

    # a backfill of upstream day D plans D+1 of the offset model, D of the default one
    plan = planned(
        sqlorch, project, "backfill", "raw.events", "--from", "2024-01-05", "--to", "2024-01-05"
    )
    assert plan["raw.events"] == [["2024-01-05", "2024-01-05"]]
    assert plan["main.prev_day"] == [["2024-01-06", "2024-01-06"]]
    assert plan["main.same_day"] == [["2024-01-05", "2024-01-05"]]
    assert plan["main.rolling_3d"] == [["2024-01-05", "2024-01-07"]]  # lookback 2
    assert plan["main.monthly_events"] == [["2024-01", "2024-01"]]
    assert plan["main.daily_share"] == [["2024-01-01", "2024-02-29"]]  # all

    old_d5 = events_total(db, "2024-01-05")
    before = {d: day_total(db, "main.prev_day", d) for d in ("2024-01-05", "2024-01-07")}
    (project.path / "bump.txt").write_text("1000")
    ok(sqlorch, project, "backfill", "raw.events", "--from", "2024-01-05", "--to", "2024-01-05")
    new_d5 = events_total(db, "2024-01-05")
    assert new_d5 == old_d5 + 3000  # day 5 was rewritten with other values
    assert day_total(db, "main.prev_day", "2024-01-06") == new_d5  # D+1 read the new day
    assert {d: day_total(db, "main.prev_day", d) for d in before} == before
    assert day_total(db, "main.same_day", "2024-01-05") == new_d5
    assert planned(sqlorch, project, "build") == {}


def test_a_rewritten_upstream_day_makes_exactly_the_mapped_partitions_stale(
    sqlorch: Callable[..., CliResult], project: TinyProject
) -> None:
    ok(sqlorch, project, "build")
    (project.path / "bump.txt").write_text("7")
    args = ("raw.events", "--from", "2024-02-10", "--to", "2024-02-10", "--no-downstream")
    ok(sqlorch, project, "backfill", *args)

    doc = ok(sqlorch, project, "partitions", "main.prev_day", "--json").json()
    assert doc["partitions"]["stale"] == [["2024-02-11", "2024-02-11"]]
    doc = ok(sqlorch, project, "partitions", "main.same_day", "--json").json()
    assert doc["partitions"]["stale"] == [["2024-02-10", "2024-02-10"]]
    status = {s["key"]: s for s in ok(sqlorch, project, "status", "--json").json()}
    assert status["main.prev_day"]["stale"] is True
    assert any("2024-02-11" in r for r in status["main.prev_day"]["reasons"]), status
    assert status["raw.events"]["stale"] is False

    plan = planned(sqlorch, project, "build")
    assert plan["main.prev_day"] == [["2024-02-11", "2024-02-11"]]
    assert plan["main.same_day"] == [["2024-02-10", "2024-02-10"]]
    assert plan["main.daily_events"] == [["2024-02-10", "2024-02-10"]]
    assert plan["main.rolling_3d"] == [["2024-02-10", "2024-02-12"]]
    assert plan["main.monthly_events"] == [["2024-02", "2024-02"]]
    assert plan["main.daily_share"] == [["2024-01-01", "2024-02-29"]]
    assert "raw.events" not in plan

    ok(sqlorch, project, "build")
    db = project.db
    assert day_total(db, "main.prev_day", "2024-02-11") == events_total(db, "2024-02-10")
    feb = scalar(db, "select sum(value) from raw.events where month(event_date) = 2")
    assert day_total(db, "main.monthly_events", "2024-02-01") == feb
    assert scalar(db, "select round(sum(share), 9) from main.daily_share") == 1
    three = scalar(
        db,
        "select sum(value) from raw.events where event_date between "
        "date '2024-02-10' and date '2024-02-12'",
    )
    assert day_total(db, "main.rolling_3d", "2024-02-12", "total_3d") == three
    assert planned(sqlorch, project, "build") == {}


def test_changing_a_mapping_changes_the_code_version(
    sqlorch: Callable[..., CliResult], project: TinyProject
) -> None:
    ok(sqlorch, project, "build")
    model = project.path / "models" / "rolling_3d.sql"
    model.write_text(model.read_text().replace("'lookback': 2", "'lookback': 3"))
    status = {s["key"]: s for s in ok(sqlorch, project, "status", "--json").json()}
    assert status["main.rolling_3d"]["stale"] is True
    assert any("code changed" in r for r in status["main.rolling_3d"]["reasons"]), status
    assert status["main.prev_day"]["stale"] is False
    plan = planned(sqlorch, project, "build")
    assert plan["main.rolling_3d"] == [["2024-01-01", "2024-02-29"]]
    assert set(plan) == {"main.rolling_3d"}


@pytest.mark.parametrize(
    ("model", "deps", "needles"),
    [
        (
            "prev_day",
            "{'raw.event': {'window': {'offset': -1}}}",
            [
                "dbt model 'prev_day' (models/prev_day.sql)",
                "names 'raw.event', which is not one of its parents",
                "it reads raw.events",
            ],
        ),
        (
            "rolling_3d",
            "{'daily_events': {'window': {'offset': 'yesterday'}}}",
            [
                "dbt model 'rolling_3d' (models/rolling_3d.sql)",
                "meta.sqlorch.deps['daily_events'] is malformed",
                "whole number of windows; got 'yesterday'",
            ],
        ),
        (
            "daily_share",
            "{daily_events: everything}",
            [
                "dbt model 'daily_share' (models/daily_share.sql, models/schema.yml)",
                "unknown mapping 'everything'",
            ],
        ),
    ],
)
def test_bad_mappings_are_clear_errors_before_anything_runs(
    sqlorch: Callable[..., CliResult],
    make_dbt_project: Callable[..., TinyProject],
    model: str,
    deps: str,
    needles: list[str],
) -> None:
    files = dict(MODELS)
    path = "models/schema.yml" if model == "daily_share" else f"models/{model}.sql"
    files[path] = files[path].replace(DEPS[model], deps)
    assert files[path] != MODELS[path]
    p = make_dbt_project(files, {"ingest/events.py": EVENTS})
    for command in ("build", "status", "ls"):
        assert_clean_error(sqlorch(p.path, command), 2, *needles)
    assert not p.db.exists() or not query(
        p.db, "select 1 from information_schema.tables where table_schema in ('raw', 'main')"
    )


SHORT = "{'type': 'daily', 'start': '2024-01-01', 'end': '2024-01-06', 'column': 'day'}"
CHUNKED = {
    "macros/window.sql": WINDOW,
    "models/sources.yml": MODELS["models/sources.yml"],
    # one dbt invocation per day (max_partitions_per_run: 1)
    "models/daily_events.sql": _config(SHORT + ", 'max_partitions_per_run': 1")
    + """
        select event_date as day, sum(value) as total from {{ source('raw', 'events') }}
        where {{ window_filter('event_date') }}
        group by 1
    """,
    # each day reads the NEXT day of its dbt upstream
    "models/next_day.sql": _config(
        SHORT + ", 'max_partitions_per_run': 1", "{'daily_events': {'window': {'offset': 1}}}"
    )
    + """
        select (day - 1)::date as day, total from {{ ref('daily_events') }}
        where {{ window_filter('day', 1) }}
    """,
    # each day reads every day of it
    "models/share.sql": _config(SHORT + ", 'max_partitions_per_run': 1", "{'daily_events': 'all'}")
    + """
        select day, total / (select sum(total) from {{ ref('daily_events') }}) as share
        from {{ ref('daily_events') }}
        where {{ window_filter('day') }}
    """,
}


def test_a_chunk_never_reads_upstream_partitions_this_run_has_not_written_yet(
    sqlorch: Callable[..., CliResult], make_dbt_project: Callable[..., TinyProject]
) -> None:
    """Chunks of models with the same window share a dbt invocation, unless the downstream
    chunk reads upstream partitions of a later chunk (an offset forward, `all`)."""
    p = make_dbt_project(CHUNKED, {"ingest/events.py": EVENTS})
    ok(sqlorch, p, "build")
    rows = query(
        p.db,
        "select n.day, n.total, u.total from main.next_day n "
        "left join main.daily_events u on u.day = n.day + 1 order by 1",
    )
    assert len(rows) == 4 and all(a == b for _, a, b in rows), rows  # Jan 5 reads Jan 6: none
    assert scalar(p.db, "select round(sum(share), 9) from main.share") == 1
    assert scalar(p.db, "select count(*) from main.share") == 5
    assert planned(sqlorch, p, "build") == {}
