"""A dbt invocation that fails before running anything is said (issue 18, item 7).

A DuckDB setting dbt-duckdb refuses (`memory_limit: lots`) makes every dbt invocation fail
before any node runs. With only a Python asset and the dbt test of its source selected,
the run used to end with exit 1, no message and `status` calling the asset fresh: now the
error is printed and recorded, the test is failed (not passed, not silently skipped), and
the asset stays stale until the test passes.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from conftest import TinyProject, run_cli

pytestmark = pytest.mark.dbt

Make = Callable[..., TinyProject]

FILES = {
    "models/sources.yml": """
        version: 2
        sources:
          - name: raw
            tables:
              - name: p
                columns:
                  - name: n
                    tests: [not_null]
    """,
    "models/m.sql": "{{ config(materialized='table') }}\nselect n from {{ source('raw', 'p') }}\n",
}
PYTHON = {
    "ingest/assets.py": """
        import pyarrow as pa

        from sqlorch import asset


        @asset(schema="raw")
        def p():
            return pa.table({"n": [1, 2, 3]})
    """
}
DBT_SAYS = "Memory must have a number"


def _broken_profile(project: TinyProject) -> None:
    profiles = project.path / "profiles.yml"
    profiles.write_text(profiles.read_text() + '      settings:\n        memory_limit: "lots"\n')


def test_a_failed_test_invocation_is_said_recorded_and_keeps_the_asset_stale(
    make_dbt_project: Make,
) -> None:
    project = make_dbt_project(FILES, PYTHON)
    _broken_profile(project)
    result = run_cli(project.path, "build", "-s", "raw.p")
    assert result.exit_code == 1, result.describe()
    assert DBT_SAYS in result.flat, result.describe()
    assert "dbt failed before running it" in result.flat, result.describe()
    assert "1 failed" in result.flat and "checks: 1 passed" not in result.flat

    status = {r["key"]: r for r in run_cli(project.path, "status", "--json").json()}
    assert status["raw.p"]["stale"], status["raw.p"]
    assert any("source_not_null_raw_p_n" in r for r in status["raw.p"]["reasons"])

    logs = run_cli(project.path, "logs", "--json")
    assert logs.exit_code == 0, logs.describe()
    assert DBT_SAYS in logs.output

    check = run_cli(project.path, "check", "-s", "raw.p")
    assert check.exit_code == 1, check.describe()
    assert DBT_SAYS in check.flat, check.describe()


def test_a_model_dbt_never_ran_is_failed_with_dbts_error(make_dbt_project: Make) -> None:
    project = make_dbt_project(FILES, PYTHON)
    _broken_profile(project)
    result = run_cli(project.path, "build")
    assert result.exit_code == 1, result.describe()
    assert DBT_SAYS in result.flat, result.describe()
    status = {r["key"]: r for r in run_cli(project.path, "status", "--json").json()}
    assert status["main.m"]["stale"], status["main.m"]
