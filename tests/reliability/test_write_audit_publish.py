"""Write-audit-publish: a blocking check runs on the NEW data inside the write's transaction.

When it fails, the write is rolled back: the table and every view over it keep their previous
content, and the run says so (issue 18, item 5). Also schema drift of a partitioned Python
asset (item 6): a changed column type is never coerced, and `build --full` or a declared
`on_schema_change` policy accepts it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from conftest import TinyProject, run_cli, scalar

pytestmark = pytest.mark.dbt

Make = Callable[..., TinyProject]

SOURCES = """
version: 2
sources:
  - name: raw
    tables:
      - name: readings
      - name: daily
"""

ASSETS = """
import os
from pathlib import Path

import pyarrow as pa

from sqlorch import CheckResult, asset, check, daily

HERE = Path(__file__).resolve().parent.parent


def mode() -> str:
    flag = HERE / "mode"
    return flag.read_text().strip() if flag.exists() else "good"


@asset(metadata={"sqlorch": {"checks": {"row_count": {"min_rows": 1}}}})
def readings():
    if mode() == "empty":
        return pa.table({"id": pa.array([], pa.int64()), "value": pa.array([], pa.int64())})
    if mode() == "negative":
        return pa.table({"id": [1, 2, 3, 4], "value": [5, -1, 7, 8]})
    return pa.table({"id": [1, 2, 3], "value": [10, 20, 30]})


@check(asset="raw.readings")
def values_are_positive(connection):
    (bad,) = connection.execute("select count(*) from raw.readings where value < 0").fetchone()
    return CheckResult(bad == 0, f"{bad} negative values")


@asset(partitions=daily("2024-01-01", end="2024-01-04", column="day"))
def daily(context):
    day = context.partition.start.date()
    value = -1 if mode() == "negative" and day.isoformat() == "2024-01-02" else 1
    if mode() == "retyped":
        return pa.table({"day": [day], "value": [str(value)]})
    if mode() == "widened":
        return pa.table({"day": [day], "value": [value], "extra": ["e"]})
    return pa.table({"day": [day], "value": [value]})


@check(asset="raw.daily")
def daily_positive(rows):
    return all(v is None or str(v)[0] != "-" for v in rows.column("value").to_pylist())
"""

DBT_PROJECT = """
name: tiny
version: "1.0.0"
config-version: 2
profile: tiny
models:
  tiny:
    +materialized: view
"""

FILES = {
    "models/sources.yml": SOURCES,
    "models/v_readings.sql": "select * from {{ source('raw', 'readings') }}\n",
    "models/v_daily.sql": "select * from {{ source('raw', 'daily') }}\n",
    "dbt_project.yml": DBT_PROJECT,
}


@pytest.fixture
def project(make_dbt_project: Make) -> TinyProject:
    made = make_dbt_project(FILES, {"ingest/assets.py": ASSETS})
    first = run_cli(made.path, "build")
    assert first.exit_code == 0, first.describe()
    return made


def _mode(project: TinyProject, mode: str) -> None:
    (project.path / "mode").write_text(mode)


def test_an_empty_result_is_never_published(project: TinyProject) -> None:
    _mode(project, "empty")
    result = run_cli(project.path, "build", "--full", "-s", "readings+")
    assert result.exit_code == 1, result.describe()
    assert scalar(project.db, "select count(*) from raw.readings") == 3
    assert scalar(project.db, "select count(*) from main.v_readings") == 3
    assert "row_count" in result.flat and "rolled back" in result.flat, result.describe()
    status = run_cli(project.path, "status", "-s", "readings", "--json").json()
    assert status[0]["stale"], status


def test_a_blocking_python_check_sees_the_new_rows_before_anyone_else(
    project: TinyProject,
) -> None:
    _mode(project, "negative")
    result = run_cli(project.path, "build", "--full", "-s", "readings+")
    assert result.exit_code == 1, result.describe()
    assert scalar(project.db, "select sum(value) from main.v_readings") == 60
    assert "values_are_positive" in result.flat, result.describe()
    assert "1 negative values" in result.flat, result.describe()
    assert "rolled back" in result.flat, result.describe()
    # fixed data publishes, and the check's failure no longer keeps the asset stale
    _mode(project, "good")
    again = run_cli(project.path, "build")
    assert again.exit_code == 0, again.describe()
    assert run_cli(project.path, "build").flat.startswith("0 assets stale")


def test_a_partition_failing_its_blocking_check_keeps_its_previous_rows(
    project: TinyProject,
) -> None:
    _mode(project, "negative")
    result = run_cli(project.path, "build", "--full", "-s", "daily")
    assert result.exit_code == 1, result.describe()
    rows = dict(
        (str(d), v) for d, v in _rows(project, "select day, value from main.v_daily order by 1")
    )
    assert rows == {"2024-01-01": 1, "2024-01-02": 1, "2024-01-03": 1}, rows
    assert "daily_positive" in result.flat and "rolled back" in result.flat, result.describe()
    doc = run_cli(project.path, "partitions", "raw.daily", "--json").json()
    assert doc["partitions"]["failed"] == [["2024-01-02", "2024-01-02"]], doc


def test_a_changed_column_type_is_never_coerced(project: TinyProject) -> None:
    _mode(project, "retyped")
    result = run_cli(project.path, "build", "--full", "-s", "daily")
    # --full accepts the change: every partition is rewritten with the new type
    assert result.exit_code == 0, result.describe()
    types = dict(
        _rows(
            project,
            "select column_name, data_type from duckdb_columns() where table_name = 'daily'",
        )
    )
    assert types["value"] == "VARCHAR", types
    assert scalar(project.db, "select min(value) from raw.daily") == "1"


def test_a_type_change_fails_a_plain_build_and_says_how_to_accept(project: TinyProject) -> None:
    # a later partition with another type: wipe one day, then build it with the new type
    wiped = run_cli(project.path, "wipe", "raw.daily", "--from", "2024-01-02", "--to", "2024-01-02")
    assert wiped.exit_code == 0, wiped.describe()
    _mode(project, "retyped")
    result = run_cli(project.path, "build", "-s", "daily")
    assert result.exit_code == 1, result.describe()
    for needle in (
        "value BIGINT -> VARCHAR",
        "nothing was written",
        "--full -s raw.daily",
        "on_schema_change",
    ):
        assert needle in result.flat, (needle, result.describe())
    assert scalar(project.db, "select count(*) from raw.daily where value = 1") == 3
    # a second build does not accept it silently either
    second = run_cli(project.path, "build", "-s", "daily")
    assert second.exit_code == 1, second.describe()
    assert "value BIGINT -> VARCHAR" in second.flat, second.describe()


def test_an_added_column_follows_the_declared_policy(project: TinyProject) -> None:
    wiped = run_cli(project.path, "wipe", "raw.daily", "--from", "2024-01-03", "--to", "2024-01-03")
    assert wiped.exit_code == 0, wiped.describe()
    _mode(project, "widened")
    refused = run_cli(project.path, "build", "-s", "daily")
    assert refused.exit_code == 1, refused.describe()
    assert "new columns extra" in refused.flat, refused.describe()
    text = (project.path / "ingest" / "assets.py").read_text()
    (project.path / "ingest" / "assets.py").write_text(
        text.replace(
            '@asset(partitions=daily("2024-01-01", end="2024-01-04", column="day"))',
            '@asset(partitions=daily("2024-01-01", end="2024-01-04", column="day"),\n'
            '       on_schema_change="append_new_columns")',
        )
    )
    appended = run_cli(project.path, "build", "-s", "daily")
    assert appended.exit_code == 0, appended.describe()
    rows = _rows(project, "select day, extra from raw.daily order by day")
    assert [r[1] for r in rows][-1] == "e", rows
    assert len(rows) == 3, rows


def _rows(project: TinyProject, sql: str) -> list[tuple[Any, ...]]:
    from conftest import query

    rows: list[tuple[Any, ...]] = query(project.db, sql)
    return rows


def test_a_window_write_failing_a_blocking_test_is_rolled_back(
    make_dbt_project: Make,
) -> None:
    from tests.integration.test_partitions import EVENTS
    from tests.integration.test_window_templates import FILES as WINDOW_FILES

    project = make_dbt_project(WINDOW_FILES, {"ingest/events.py": EVENTS})
    built = run_cli(project.path, "build")
    assert built.exit_code == 0, built.describe()
    # a second window makes dbt compile the template: later windows are sqlorch's own writes
    again = run_cli(
        project.path,
        "backfill",
        "daily_sum",
        "--from",
        "2024-01-01",
        "--to",
        "2024-01-02",
        "--no-downstream",
    )
    assert again.exit_code == 0, again.describe()
    assert (project.path / ".sqlorch" / "dbt" / "templates.json").exists()
    from conftest import query

    query(
        project.db, "delete from raw.events where event_date = date '2024-01-10' and value % 10 = 0"
    )
    result = run_cli(
        project.path,
        "backfill",
        "daily_sum",
        "--from",
        "2024-01-10",
        "--to",
        "2024-01-10",
        "--no-downstream",
    )
    assert result.exit_code == 1, result.describe()
    n = scalar(project.db, "select n from main.daily_sum where event_date = date '2024-01-10'")
    assert n == 3  # the window with 2 events was never published
    assert "three_events_a_day" in result.flat and "rolled back" in result.flat, result.describe()
    events = run_cli(project.path, "logs", "--json").json_lines()
    direct = [e for e in events if e["kind"] == "dbt_invocation_finished"]
    assert any(d["data"]["args"][0].startswith("sqlorch: window writes") for d in direct), direct
