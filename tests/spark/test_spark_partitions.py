"""Partitions on Spark: exact partition replacement, idempotent reruns, one job per chunk, refusals.

A tiny project on the shared Spark session: a daily partitioned Python asset `raw.events`
(rows per day read from `days.json`, so a test can empty a day) and a dbt model
`marts.daily` over it (`insert_overwrite` + `partition_by`), both partitioned by `day`.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from conftest import TinyProject, assert_clean_error, run_cli, run_cli_subprocess
from spark_support import content_hash, partitions, spark_project, table_rows, warehouse_path

pytestmark = pytest.mark.spark

EVENTS = '''
import json
from datetime import date, timedelta
from pathlib import Path

import pyarrow as pa

from sqlorch import AssetContext, asset, daily

HERE = Path(__file__).resolve().parents[1]


@asset(schema="raw", partitions=daily(start="2024-01-01", end="2024-01-07", column="day"),
       max_partitions_per_run=None)
def events(context: AssetContext):
    """`days.json` rows on each day of the window; each call is logged to calls.txt."""
    with open(HERE / "calls.txt", "a") as f:
        f.write(context.partition.key + ".." + context.partition.keys[-1] + "\\n")
    counts = json.loads((HERE / "days.json").read_text())
    day, end = context.partition.start.date(), context.partition.end.date()
    days, values = [], []
    while day < end:
        for i in range(counts.get(day.isoformat(), 0)):
            days.append(day)
            values.append(i)
        day += timedelta(days=1)
    return pa.table({"id": pa.array(values, pa.int64()), "day": pa.array(days, pa.date32())})
'''

DAILY = """
{{ config(
    materialized='incremental',
    incremental_strategy='insert_overwrite',
    partition_by=['day'],
    file_format='parquet',
    meta={'sqlorch': {'partitions': {'type': 'daily', 'start': '2024-01-01',
                                     'end': '2024-01-07', 'column': 'day'}}},
) }}
select day, count(*) as events, sum(id) as id_sum
from {{ source('raw', 'events') }}
where {{ sqlorch_window('day') }}
group by day
"""

FILES = {
    "dbt_project.yml": """
        name: tiny
        version: "1.0.0"
        config-version: 2
        profile: tiny
        model-paths: [models]
        macro-paths: [macros]
        models:
          tiny:
            +schema: marts
        """,
    "models/sources.yml": """
        version: 2
        sources:
          - name: raw
            schema: raw
            tables:
              - name: events
        models:
          - name: daily
            columns:
              - name: day
                data_tests: [not_null, unique]
        """,
    "models/daily.sql": DAILY,
    "pyproject.toml": '[tool.sqlorch]\ningest = ["ingest"]\nprofiles_dir = "."\n',
}

DAYS = {f"2024-01-0{d}": n for d, n in zip(range(1, 7), (3, 4, 5, 2, 1, 6), strict=True)}


def _project(tmp_path: Path) -> TinyProject:
    project = spark_project(tmp_path / "tiny", FILES, {"ingest/events.py": EVENTS})
    (project.path / "days.json").write_text(json.dumps(DAYS))
    return project


def _ok(project: TinyProject, *args: str) -> None:
    result = run_cli(project.path, *args)
    assert result.exit_code == 0, result.describe()


def _calls(project: TinyProject) -> list[str]:
    return (project.path / "calls.txt").read_text().split()


def _dbt_invocations(project: TinyProject) -> list[dict[str, Any]]:
    result = run_cli(project.path, "logs", "--json")
    assert result.exit_code == 0, result.describe()
    events = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    return [e for e in events if e.get("kind") == "dbt_invocation_finished"]


def test_partitions_replace_exactly_their_window_and_reruns_are_identical(
    spark: Any, tmp_path: Path
) -> None:
    project = _project(tmp_path)
    _ok(project, "build")
    # the whole range is one Python call and one dbt invocation (one Spark job each)
    assert _calls(project) == ["2024-01-01..2024-01-06"]
    assert len(_dbt_invocations(project)) == 1
    days = [f"day=2024-01-0{d}" for d in range(1, 7)]
    assert partitions(spark, "raw.events") == days
    assert partitions(spark, "marts.daily") == days
    assert spark.table("raw.events").count() == sum(DAYS.values())
    assert dict(spark.sql("select cast(day as string), events from marts.daily").collect()) == DAYS
    before = {k: content_hash(spark, k) for k in ("raw.events", "marts.daily")}

    # a backfill of a range is one chunk: one call, one dbt invocation; twice = same tables
    for _ in range(2):
        _ok(project, "backfill", "events", "--from", "2024-01-02", "--to", "2024-01-04")
        assert _calls(project)[-1] == "2024-01-02..2024-01-04"
        assert len(_dbt_invocations(project)) == 1
        assert {k: content_hash(spark, k) for k in before} == before

    # day 3 now has no rows: its partition goes, in the asset and in the model downstream
    (project.path / "days.json").write_text(json.dumps({**DAYS, "2024-01-03": 0}))
    other = table_rows(spark, "raw.events")
    _ok(project, "backfill", "events", "--from", "2024-01-03", "--to", "2024-01-03")
    gone = [d for d in days if d != "day=2024-01-03"]
    assert partitions(spark, "raw.events") == gone
    assert partitions(spark, "marts.daily") == gone
    assert table_rows(spark, "raw.events") == [r for r in other if str(r[1]) != "2024-01-03"]
    assert "2024-01-03" not in {
        str(r[0]) for r in spark.sql("select day from marts.daily").collect()
    }

    # the ledger has every partition done; status calls both fresh
    status = run_cli(project.path, "status", "--json")
    assert status.exit_code == 0, status.describe()
    for item in json.loads(status.stdout):
        if item["key"] in ("raw.events", "marts.daily"):
            assert not item["stale"], item
            assert item["partitions"]["done"] == [["2024-01-01", "2024-01-06"]], item


def test_a_merge_model_is_refused_before_anything_runs(spark: Any, tmp_path: Path) -> None:
    merge = DAILY.replace("'insert_overwrite'", "'merge', unique_key='day'")
    project = spark_project(
        tmp_path / "tiny",
        {**FILES, "models/daily.sql": merge},
        {"ingest/events.py": EVENTS},
    )
    (project.path / "days.json").write_text(json.dumps(DAYS))
    result = run_cli(project.path, "build")
    assert_clean_error(result, 2, "'daily'", "models/daily.sql", "merge", "insert_overwrite")
    assert not (project.path / "calls.txt").exists()  # nothing ran, not even the Python asset
    assert not spark.catalog.databaseExists("raw")


def test_a_partitioned_model_without_partition_by_is_refused(spark: Any, tmp_path: Path) -> None:
    project = spark_project(
        tmp_path / "tiny",
        {**FILES, "models/daily.sql": DAILY.replace("partition_by=['day'],", "")},
        {"ingest/events.py": EVENTS},
    )
    (project.path / "days.json").write_text(json.dumps(DAYS))
    result = run_cli(project.path, "build")
    assert_clean_error(result, 2, "'daily'", "partition_by=['day']", "overwrite the whole table")
    assert not (project.path / "calls.txt").exists()


RECENT = "{{ config(materialized='view') }}\nselect day, events from {{ ref('daily') }}\n"


def _status(project: TinyProject) -> dict[str, dict[str, Any]]:
    """`sqlorch status --json` as a new process without Java: it must not start Spark."""
    result = run_cli_subprocess(
        project.path, "status", "--json", env={"PATH": "/nonexistent", "JAVA_HOME": "/nonexistent"}
    )
    assert result.exit_code == 0, result.describe()
    return {item["key"]: item for item in json.loads(result.stdout)}


def test_status_sees_tables_dropped_outside_a_build_without_starting_spark(
    spark: Any, tmp_path: Path
) -> None:
    project = spark_project(
        tmp_path / "tiny", {**FILES, "models/recent.sql": RECENT}, {"ingest/events.py": EVENTS}
    )
    (project.path / "days.json").write_text(json.dumps(DAYS))
    _ok(project, "build")
    status = _status(project)
    assert [k for k, item in status.items() if item["stale"]] == []
    # tables are directories of the warehouse; a view is only in the metastore: not checked
    assert status["raw.events"]["presence_checked"] and status["marts.daily"]["presence_checked"]
    assert not status["marts.recent"]["presence_checked"]
    text = run_cli_subprocess(project.path, "status", env={"PATH": "/nonexistent"})
    assert "presence in the warehouse not checked" in text.flat, text.describe()

    # dropped through Spark, and a table's files deleted by hand: both missing, not fresh
    spark.sql("DROP TABLE marts.daily")
    shutil.rmtree(warehouse_path(spark) / "raw.db" / "events")
    status = _status(project)
    for key in ("raw.events", "marts.daily"):
        assert any(r.startswith("table missing") for r in status[key]["reasons"]), status[key]
    assert status["marts.recent"]["stale"], status["marts.recent"]

    # the next build (a new process would see the same) rebuilds both, with every row
    _ok(project, "build")
    assert spark.table("raw.events").count() == sum(DAYS.values())
    assert dict(spark.sql("select cast(day as string), events from marts.daily").collect()) == DAYS
    assert [k for k, item in _status(project).items() if item["stale"]] == []


def test_after_a_window_write_only_the_partitions_it_left_unchanged_are_dropped(
    spark: Any, tmp_path: Path
) -> None:
    from datetime import date

    from sqlorch.warehouse.spark import SparkWarehouse

    w = SparkWarehouse(spark)
    spark.sql("create database w")
    spark.sql("create table w.t (v int, day date) using parquet partitioned by (day)")
    spark.sql("insert into w.t values (1, date'2024-01-01'), (2, date'2024-01-02'), (3, null)")
    spark.sql("insert into w.t values (4, date'2024-01-03')")
    before = w.partition_files("w.t")
    assert before is not None
    assert sorted(before) == [
        "day=2024-01-01",
        "day=2024-01-02",
        "day=2024-01-03",
        "day=__HIVE_DEFAULT_PARTITION__",
    ]
    # what dbt's insert_overwrite does with a window (days 1-2) whose new data has day 1 only
    spark.sql("insert overwrite table w.t partition (day) select 10, date'2024-01-01'")
    where, params = '"day" >= ? AND "day" < ?', [date(2024, 1, 1), date(2024, 1, 3)]
    assert w.drop_unwritten("w.t", where, params, before) == 1
    # day 2 (in the window, not rewritten) is gone; day 1 has its new row; the rest is kept
    assert partitions(spark, "w.t") == [
        "day=2024-01-01",
        "day=2024-01-03",
        "day=__HIVE_DEFAULT_PARTITION__",
    ]
    assert table_rows(spark, "w.t") == sorted(
        [(10, date(2024, 1, 1)), (4, date(2024, 1, 3)), (3, None)], key=repr
    )
    # a window write without any row (nothing rewritten): every partition of the window goes
    assert w.drop_unwritten("w.t", where, params, w.partition_files("w.t") or {}) == 1
    assert partitions(spark, "w.t") == ["day=2024-01-03", "day=__HIVE_DEFAULT_PARTITION__"]

    # a table that does not exist has nothing stale; a table outside the warehouse folder
    # cannot be told apart by its files: its window is dropped before the write instead
    assert w.partition_files("w.missing") == {}
    spark.sql(
        "create table w.e (v int, day date) using parquet partitioned by (day) "
        f"location '{tmp_path / 'e'}'"
    )
    spark.sql("insert into w.e values (1, date'2024-01-01')")
    assert w.partition_files("w.e") is None


def test_a_build_in_an_environment_leaves_productions_partitions_alone(
    spark: Any, tmp_path: Path
) -> None:
    project = _project(tmp_path)
    _ok(project, "build")
    prod = {k: content_hash(spark, k) for k in ("raw.events", "marts.daily")}
    # the environment's data has no rows on day 3: its window drops that day there only
    (project.path / "days.json").write_text(json.dumps({**DAYS, "2024-01-03": 0}))
    result = run_cli(project.path, "build", env={"SQLORCH_ENV": "pr_7"})
    assert result.exit_code == 0, result.describe()
    days = [f"day=2024-01-0{d}" for d in range(1, 7)]
    gone = [d for d in days if d != "day=2024-01-03"]
    assert partitions(spark, "pr_7__marts.daily") == gone
    assert partitions(spark, "marts.daily") == days
    assert {k: content_hash(spark, k) for k in prod} == prod
