"""A dbt-spark target sqlorch cannot join (Thrift, HTTP, ODBC) is refused before dbt parses.

No JVM and no server: the refusal comes from the profile alone, before dbt's parse (which
would stop first on a missing PyHive or pyodbc driver and say nothing of sqlorch's reason).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import assert_clean_error, run_cli, write_dbt_project

PROFILES = """
tiny:
  target: {method}
  outputs:
    {method}:
      type: spark
      method: {method}
      host: spark.example.invalid
      port: 443
      schema: main
      token: "s3cret-token-9f2c"
      cluster: abc
      driver: /opt/simba/spark/lib/libsparkodbc.so
"""

EVENTS = """
from pathlib import Path

from sqlorch import asset


@asset(schema="raw")
def events():
    Path("calls.txt").write_text("ran")
    return {"id": [1, 2]}
"""


@pytest.mark.parametrize("method", ["thrift", "http", "odbc"])
@pytest.mark.parametrize("command", ["build", "status"])
def test_a_non_session_spark_target_is_refused_before_dbt_parses(
    tmp_path: Path, method: str, command: str
) -> None:
    project = write_dbt_project(
        tmp_path / "tiny",
        {
            "profiles.yml": PROFILES.format(method=method),
            "models/counted.sql": "select count(*) as n from {{ ref('events') }}\n",
        },
        {"ingest/events.py": EVENTS},
    )
    result = run_cli(project.path, command)
    assert_clean_error(
        result,
        2,
        f"Target '{method}' of profile 'tiny' ({project.path / 'profiles.yml'})",
        f"`method: {method}`",
        "nothing was run",
        "Set `method: session`",
        "or run this target with plain dbt",
    )
    # sqlorch's reason, not dbt's parse error on a missing driver
    assert "PyHive" not in result.output and "pyodbc" not in result.output, result.describe()
    assert "s3cret-token-9f2c" not in result.output
    assert not (project.path / "calls.txt").exists()  # the Python asset did not run
    assert not (project.path / "target" / "manifest.json").exists()  # dbt did not parse
