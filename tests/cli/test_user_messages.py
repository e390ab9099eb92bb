"""Messages a user trips on (issue 18, item 11): each one reproduced, then fixed.

Run ids are never cut, "the traceback is in `sqlorch logs`" is true, plurals, dbt's
`-s a b`, `--project-dir` from another folder, a backfill range partly outside the
partitions, `retry --dry-run --json` with nothing to retry.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import TRACEBACK, TinyProject, run_cli, run_cli_subprocess

pytestmark = pytest.mark.dbt

Make = Callable[..., TinyProject]

ASSETS = """
import pyarrow as pa

from sqlorch import asset, daily


@asset
def numbers():
    return pa.table({"n": [1, 2, 3]})


@asset(partitions=daily("2024-01-01", end="2024-01-05", column="day"))
def days(context):
    return pa.table({"day": [context.partition.start.date()]})
"""

RAISES = """
from sqlorch import asset


@asset
def broken():
    return 1 / 0
"""

FILES = {
    "models/a_model_with_a_rather_long_name_for_the_columns.sql": "select 1 as x\n",
    "models/b.sql": "select 2 as y\n",
}


@pytest.fixture
def project(make_dbt_project: Make) -> TinyProject:
    return make_dbt_project(FILES, {"ingest/assets.py": ASSETS})


def _run_id(text: str) -> str:
    found = re.search(r"run (\d{8}T\d{6}-[0-9a-f]{6})", text)
    assert found, text
    return found.group(1)


def test_run_ids_are_never_cut(project: TinyProject) -> None:
    built = run_cli(
        project.path,
        "build",
        "-s",
        "a_model_with_a_rather_long_name_for_the_columns",
        "-s",
        "numbers",
    )
    assert built.exit_code == 0, built.describe()
    run_id = _run_id(built.output)
    narrow = {"COLUMNS": "60"}
    runs = run_cli(project.path, "runs", env=narrow)
    assert run_id in runs.stdout.split(), runs.describe()
    history = run_cli(project.path, "history", "numbers", env=narrow)
    assert run_id in history.stdout.split(), history.describe()


def test_the_traceback_is_where_the_error_says(make_dbt_project: Make) -> None:
    project = make_dbt_project({"models/a.sql": "select 1 as x\n"}, {"ingest/assets.py": RAISES})
    built = run_cli_subprocess(project.path, "build")
    assert built.exit_code == 1, built.describe()
    assert "the traceback is in `sqlorch logs`" in built.flat, built.describe()
    assert TRACEBACK not in built.output
    logs = run_cli(project.path, "logs")
    assert TRACEBACK in logs.stdout and "ZeroDivisionError" in logs.stdout, logs.describe()
    assert "return 1 / 0" in logs.stdout, logs.describe()


def test_one_asset_is_singular(project: TinyProject) -> None:
    plan = run_cli(project.path, "build", "--dry-run", "-s", "b")
    assert plan.exit_code == 0, plan.describe()
    assert "Plan: 1 asset, 0 checks" in plan.stdout, plan.describe()


def test_several_values_after_one_select_as_dbt_takes_them(project: TinyProject) -> None:
    plan = run_cli(project.path, "build", "--dry-run", "--json", "-s", "b", "numbers")
    assert plan.exit_code == 0, plan.describe()
    assert sorted(s["key"] for s in plan.json()["steps"]) == ["main.b", "raw.numbers"]
    excluded = run_cli(
        project.path, "ls", "--json", "-s", "b", "numbers", "--exclude", "b", "numbers"
    )
    assert excluded.exit_code == 2, excluded.describe()  # nothing left: a usage error
    some = run_cli(project.path, "ls", "--json", "-s", "b", "numbers", "days", "--exclude", "b")
    assert sorted(a["key"] for a in some.json()) == ["raw.days", "raw.numbers"], some.describe()


def test_project_dir_from_another_folder_keeps_the_database_in_the_project(
    make_dbt_project: Make, tmp_path: Path
) -> None:
    project = make_dbt_project(FILES, {"ingest/assets.py": ASSETS})
    # a profile with a relative DuckDB path, as the example project's
    (project.path / "profiles.yml").write_text(
        "tiny:\n  target: dev\n  outputs:\n    dev:\n      type: duckdb\n"
        "      path: relative.duckdb\n      threads: 1\n"
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    built = run_cli_subprocess(
        None,
        "build",
        "--project-dir",
        str(project.path),
        "--profiles-dir",
        str(project.path),
        "-s",
        "numbers",
        cwd=elsewhere,
    )
    assert built.exit_code == 0, built.describe()
    assert (project.path / "relative.duckdb").exists()
    assert list(elsewhere.iterdir()) == []


def test_a_backfill_range_partly_outside_the_partitions_warns(project: TinyProject) -> None:
    result = run_cli(project.path, "backfill", "days", "--from", "2023-12-30", "--to", "2024-01-02")
    assert result.exit_code == 0, result.describe()
    assert "reaches outside its partitions" in result.flat, result.describe()
    assert "2024-01-01 .. 2024-01-02 run" in result.flat, result.describe()


def test_retry_dry_run_json_prints_json_when_nothing_is_left(project: TinyProject) -> None:
    built = run_cli(project.path, "build", "-s", "b")
    assert built.exit_code == 0, built.describe()
    result = run_cli(project.path, "retry", "--dry-run", "--json")
    assert result.exit_code == 0, result.describe()
    doc = json.loads(result.stdout)
    assert doc["steps"] == [], doc


def test_done_in_counts_loading_the_project(project: TinyProject) -> None:
    built = run_cli(project.path, "build", "-s", "b")  # the first build: dbt parses
    assert built.exit_code == 0, built.describe()
    done = next(line for line in built.stdout.splitlines() if line.startswith("Done in"))
    assert "loading the project)" in done, built.describe()
