"""A Python check of a partitioned asset runs per partition run and fails only that partition."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from conftest import TinyProject, run_cli

from sqlorch.state.store import StateStore

pytestmark = pytest.mark.dbt

Make = Callable[..., TinyProject]

READINGS = """
    from datetime import timedelta
    from pathlib import Path

    import pyarrow as pa

    from sqlorch import CheckResult, asset, check, daily

    HERE = Path(__file__).resolve().parent.parent


    @asset(partitions=daily("2024-01-01", end="2024-01-06", column="day"), max_partitions_per_run=1)
    def readings(context):
        day = context.partition.start.date()
        bad = day.isoformat() == "2024-01-03" and not (HERE / "fixed").exists()
        return pa.table({"day": [day, day], "value": [-1 if bad else 1, 2]})


    @check(asset="raw.readings")
    def values_are_positive(context, rows):
        negative = sum(1 for v in rows.column("value").to_pylist() if v < 0)
        context.log.info("checked %s: %d rows", context.partition.key, rows.num_rows)
        return CheckResult(negative == 0, f"{negative} negative values", {"rows": rows.num_rows})
"""


def test_a_partition_check_fails_only_its_partition(make_dbt_project: Make) -> None:
    project = make_dbt_project(
        {"models/a.sql": "select 1 as x\n"}, {"ingest/readings.py": READINGS}
    )
    first = run_cli(project.path, "build")
    assert first.exit_code == 1, first.describe()
    assert "values_are_positive [2024-01-03]: 1 negative values" in first.flat, first.describe()
    store = StateStore(project.path / ".sqlorch" / "state.db", readonly=True)
    results = {r.partition: r for r in store.check_results(asset="raw.readings")}
    assert sorted(results) == [f"2024-01-0{d}" for d in range(1, 6)]
    assert {p: r.status for p, r in results.items()} == {
        "2024-01-01": "pass",
        "2024-01-02": "pass",
        "2024-01-03": "fail",
        "2024-01-04": "pass",
        "2024-01-05": "pass",
    }
    assert all(r.metadata["rows"] == 2 for r in results.values())  # each saw its own rows
    failing = store.failing_blocking_checks()
    assert [(r.name, r.partition) for r in failing["raw.readings"]] == [
        ("values_are_positive", "2024-01-03")
    ]
    doc = run_cli(project.path, "partitions", "raw.readings", "--json").json()
    assert doc["partitions"]["failed"] == [["2024-01-03", "2024-01-03"]]
    assert ["2024-01-01", "2024-01-02"] in doc["partitions"]["done"]
    assert ["2024-01-04", "2024-01-05"] in doc["partitions"]["done"]

    (project.path / "fixed").touch()
    second = run_cli(project.path, "build")
    assert second.exit_code == 0, second.describe()
    assert store.failing_blocking_checks() == {}
    doc = run_cli(project.path, "partitions", "raw.readings", "--json").json()
    assert doc["partitions"]["failed"] == []
    # history plots the whole table (10 rows), not the partition runs (2 rows each)
    history = run_cli(project.path, "history", "readings")
    rows_line = next(line for line in history.output.splitlines() if line.startswith("rows"))
    assert "10 rows (min 10 rows, max 10 rows)" in rows_line, history.output
    doc = run_cli(project.path, "history", "readings", "--json").json()
    assert {m["partition"] for m in doc["materializations"]} >= {None, "2024-01-03"}


DAYS = """
    import pyarrow as pa

    from sqlorch import asset, daily


    @asset(partitions=daily("{start}", column="day"))
    def days(context):
        day = context.partition.start.date()
        return pa.table({{"day": [day], "n": [1]}})
"""


def test_freshness_of_a_partitioned_asset_wants_its_latest_complete_partition(
    make_dbt_project: Make,
) -> None:
    from datetime import UTC, datetime, timedelta

    import duckdb

    today = datetime.now(UTC).date()
    start = today - timedelta(days=3)
    project = make_dbt_project(
        {
            "models/a.sql": "select 1 as x\n",
            "pyproject.toml": """
                [tool.sqlorch.checks."raw.days"]
                freshness = true
            """,
        },
        {"ingest/days.py": DAYS.format(start=start.isoformat())},
    )
    built = run_cli(project.path, "build")
    assert built.exit_code == 0, built.describe()
    store = StateStore(project.path / ".sqlorch" / "state.db", readonly=True)
    (result,) = store.check_results(asset="raw.days")
    assert result.name == "freshness_days" and result.status == "pass"
    yesterday = (today - timedelta(days=1)).isoformat()
    assert result.metadata["latest_partition"] == yesterday

    con = duckdb.connect(str(project.db))
    con.execute("delete from raw.days where day = ?", [today - timedelta(days=1)])
    con.close()
    checked = run_cli(project.path, "check")
    assert checked.exit_code == 1, checked.describe()
    assert f"the latest complete partition is missing: {yesterday}" in checked.flat
