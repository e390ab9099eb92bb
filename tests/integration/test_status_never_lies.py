"""Status never lies (issue 18, items 1, 2 and 4), on copies of the built example project.

Each test starts from one shared full build of the example (copied, so each can break its
own; the profile's DuckDB path is relative, so a copy has the same target and code
versions, and every command runs as its own process, so dbt-duckdb never shares a file
between copies): a dropped table or deleted DuckDB file makes every partition missing; a small
backfill, a wipe or `--no-downstream` does not make the next build redo the other
partitions of the facts behind the staging view; `status` and `partitions` agree; `retry`
rebuilds a partitioned asset skipped behind a failed unpartitioned one.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from conftest import EXAMPLE_DB, copy_example, query, scalar
from conftest import run_cli_subprocess as run_cli

pytestmark = pytest.mark.dbt

FAIL_SWITCH = "SQLORCH_TEST_FAIL_AIRLINES"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example, whose airlines asset raises when FAIL_SWITCH is set, built once."""
    path = copy_example(tmp_path_factory.mktemp("trust") / "nycflights")
    ingest = path / "ingest" / "nycflights.py"
    text = ingest.read_text()
    head = '    """Airline carriers: two-letter code and full name (16 rows)."""\n'
    assert head in text
    ingest.write_text(
        text.replace(
            head,
            head
            + f'    import os\n\n    if os.environ.get("{FAIL_SWITCH}"):\n'
            + '        raise RuntimeError("airlines made to fail by the test")\n',
        )
    )
    profiles = path / "profiles" / "profiles.yml"
    profiles.write_text(
        profiles.read_text().replace(f'"{(path / EXAMPLE_DB).as_posix()}"', EXAMPLE_DB)
    )
    assert f"path: {EXAMPLE_DB}" in profiles.read_text()
    result = run_cli(path, "build")
    assert result.exit_code == 0, result.describe()
    return path


def clone(src: Path, dest: Path) -> Path:
    """Copy a built project (its DuckDB file and state)."""
    shutil.copytree(src, dest)
    return dest


def status_of(project: Path) -> dict[str, dict[str, Any]]:
    result = run_cli(project, "status", "--json")
    assert result.exit_code == 0, result.describe()
    return {row["key"]: row for row in result.json()}


def counts(project: Path, asset: str) -> dict[str, int]:
    result = run_cli(project, "partitions", asset, "--json")
    assert result.exit_code == 0, result.describe()
    return dict(result.json()["counts"])


def dry_run(project: Path, *args: str) -> dict[str, Any]:
    result = run_cli(project, "build", "--dry-run", "--json", *args)
    assert result.exit_code == 0, result.describe()
    doc = result.json()
    return {s["key"]: s for s in doc["steps"]}


def partition_count(step: dict[str, Any], definition_days: int = 365) -> int:
    """How many partitions a planned step runs (sum of its inclusive ranges)."""
    from datetime import date

    total = 0
    for lo, hi in step["partitions"]:
        if len(lo) == 10:
            total += (date.fromisoformat(hi) - date.fromisoformat(lo)).days + 1
        else:  # monthly keys YYYY-MM
            total += (int(hi[:4]) - int(lo[:4])) * 12 + int(hi[5:7]) - int(lo[5:7]) + 1
    assert total <= definition_days
    return total


# -- item 1: a missing table makes every partition missing ------------------------------------


def test_a_dropped_partitioned_table_is_missing_everywhere_and_rebuilt(
    built: Path, tmp_path: Path
) -> None:
    project = clone(built, tmp_path / "p")
    query(project / EXAMPLE_DB, "drop table marts.fct_delays")

    row = status_of(project)["marts.fct_delays"]
    assert row["stale"], row
    assert counts(project, "marts.fct_delays")["missing"] == 365
    assert counts(project, "marts.fct_delays")["done"] == 0
    steps = dry_run(project)
    assert partition_count(steps["marts.fct_delays"]) == 365

    result = run_cli(project, "build")
    assert result.exit_code == 0, result.describe()
    assert scalar(project / EXAMPLE_DB, "select count(*) from marts.fct_delays") == 11864
    assert not status_of(project)["marts.fct_delays"]["stale"]


def test_a_deleted_duckdb_file_rebuilds_every_partition(built: Path, tmp_path: Path) -> None:
    project = clone(built, tmp_path / "p")
    (project / EXAMPLE_DB).unlink()
    assert counts(project, "raw.flights")["missing"] == 365
    steps = dry_run(project)
    assert partition_count(steps["raw.flights"]) == 365
    assert partition_count(steps["marts.mart_carrier_ontime_monthly"]) == 12


# -- item 2: views between partitioned assets are looked through ------------------------------


def _no_other_partitions_after(project: Path) -> None:
    """The next build plans nothing, and status and partitions agree on it."""
    status = status_of(project)
    for key in ("marts.fct_flights", "marts.fct_delays", "marts.mart_carrier_ontime_monthly"):
        c = counts(project, key)
        assert c["stale"] == 0 and c["missing"] == 0, (key, c)
        assert not status[key]["stale"], (key, status[key]["reasons"])
    assert dry_run(project) == {}


def test_a_small_backfill_does_not_make_the_rest_stale(built: Path, tmp_path: Path) -> None:
    project = clone(built, tmp_path / "p")
    result = run_cli(
        project, "backfill", "raw.flights", "--from", "2013-03-01", "--to", "2013-03-03"
    )
    assert result.exit_code == 0, result.describe()
    _no_other_partitions_after(project)


def test_a_backfill_without_downstream_plans_only_what_reads_it(
    built: Path, tmp_path: Path
) -> None:
    project = clone(built, tmp_path / "p")
    result = run_cli(
        project,
        "backfill",
        "raw.flights",
        "--from",
        "2013-03-01",
        "--to",
        "2013-03-03",
        "--no-downstream",
    )
    assert result.exit_code == 0, result.describe()
    status = status_of(project)
    c = counts(project, "marts.fct_flights")
    assert c["stale"] == 3, c
    assert status["marts.fct_flights"]["stale"]
    steps = dry_run(project)
    assert partition_count(steps["marts.fct_flights"]) == 3
    assert partition_count(steps["marts.fct_delays"]) == 3
    assert partition_count(steps["marts.mart_carrier_ontime_monthly"]) == 1
    result = run_cli(project, "build")
    assert result.exit_code == 0, result.describe()
    _no_other_partitions_after(project)


def test_a_wiped_month_rebuilds_that_month_only(built: Path, tmp_path: Path) -> None:
    project = clone(built, tmp_path / "p")
    result = run_cli(project, "wipe", "raw.flights", "--from", "2013-05-01", "--to", "2013-05-31")
    assert result.exit_code == 0, result.describe()
    steps = dry_run(project)
    assert partition_count(steps["raw.flights"]) == 31
    assert partition_count(steps["marts.fct_flights"]) == 31
    result = run_cli(project, "build")
    assert result.exit_code == 0, result.describe()
    _no_other_partitions_after(project)


# -- item 4: retry includes a skipped partitioned downstream asset ----------------------------


def test_retry_rebuilds_the_partitioned_mart_skipped_behind_a_failed_asset(
    built: Path, tmp_path: Path
) -> None:
    project = clone(built, tmp_path / "p")
    failed = run_cli(project, "build", "--full", "-s", "raw.airlines+", env={FAIL_SWITCH: "1"})
    assert failed.exit_code == 1, failed.describe()
    assert status_of(project)["marts.mart_carrier_ontime_monthly"]["stale"]

    retried = run_cli(project, "retry")
    assert retried.exit_code == 0, retried.describe()
    assert "mart_carrier_ontime_monthly" in retried.output, retried.describe()
    status = status_of(project)
    stale = {k: r["reasons"] for k, r in status.items() if r["stale"]}
    assert stale == {}, stale
