"""Bad dlt declarations get one clear paragraph naming the asset and file:line."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from conftest import TinyProject, assert_clean_error, run_cli

pytestmark = pytest.mark.dbt

HEAD = """
import dlt

from sqlorch import asset, daily, dlt_assets


@dlt.resource(write_disposition="replace")
def users():
    yield {"id": 1, "name": "a"}
"""


def make(make_dbt_project: Callable[..., TinyProject], body: str) -> TinyProject:
    return make_dbt_project(
        {"models/a.sql": "select 1 as x\n"}, {"ingest/loads.py": HEAD + body}, name="dlterr"
    )


def line(project: TinyProject, text: str) -> int:
    lines = (project.path / "ingest/loads.py").read_text().splitlines()
    return next(n for n, t in enumerate(lines, 1) if text in t)


def test_a_table_colliding_with_another_asset(make_dbt_project: Callable[..., TinyProject]) -> None:
    p = make(
        make_dbt_project,
        """
raw_users = dlt_assets(users, dataset="raw")


@asset(schema="raw")
def users_table():
    return None


users_table = asset(schema="raw", name="users")(lambda: None)
""",
    )
    result = run_cli(p.path, "ls")
    assert_clean_error(result, 2, "'raw.users'", f"ingest/loads.py:{line(p, 'dlt_assets(')}")


def test_a_destination_mismatch(make_dbt_project: Callable[..., TinyProject]) -> None:
    p = make(
        make_dbt_project, '\nraw_users = dlt_assets(users, dataset="raw", destination="postgres")\n'
    )
    result = run_cli(p.path, "build")
    where = f"ingest/loads.py:{line(p, 'dlt_assets(')}"
    assert_clean_error(result, 1, "raw.users", where, "destination 'postgres'", "duckdb")


def test_a_source_that_raises_while_listing_its_tables(
    make_dbt_project: Callable[..., TinyProject],
) -> None:
    p = make(
        make_dbt_project,
        """

@dlt_assets(dataset="raw")
def broken():
    raise RuntimeError("no credentials for the API")
""",
    )
    result = run_cli(p.path, "ls")
    assert_clean_error(
        result,
        2,
        "dlt assets 'broken'",
        f"(ingest/loads.py:{line(p, '@dlt_assets')})",
        f"failed at ingest/loads.py:{line(p, 'raise RuntimeError')}",
        "RuntimeError: no credentials for the API",
    )


def test_a_partitioned_resource_without_an_incremental(
    make_dbt_project: Callable[..., TinyProject],
) -> None:
    p = make(
        make_dbt_project,
        "\nraw_users = dlt_assets(\n"
        '    users, dataset="raw", partitions=daily("2024-01-01", end="2024-01-02")\n'
        ")\n",
    )
    result = run_cli(p.path, "build")
    assert_clean_error(
        result,
        1,
        "raw.users",
        f"ingest/loads.py:{line(p, 'dlt_assets(')}",
        "declares no `dlt.sources.incremental",
    )


def test_something_that_is_no_dlt_source(make_dbt_project: Callable[..., TinyProject]) -> None:
    p = make(make_dbt_project, '\nraw_users = dlt_assets([1, 2], dataset="raw", name="nums")\n')
    result = run_cli(p.path, "ls")
    assert_clean_error(
        result,
        2,
        "dlt assets 'nums'",
        f"ingest/loads.py:{line(p, 'dlt_assets(')}",
        "not a dlt source or resource",
    )


def test_a_spark_target_is_refused_before_anything_runs(
    make_dbt_project: Callable[..., TinyProject],
) -> None:
    p = make(make_dbt_project, '\nraw_users = dlt_assets(users, dataset="raw")\n')
    profiles = (p.path / "profiles.yml").read_text() + (
        "    spark:\n      type: spark\n      method: session\n      host: localhost\n"
        "      schema: main\n"
    )
    (p.path / "profiles.yml").write_text(profiles)
    result = run_cli(p.path, "build", "-t", "spark")
    where = f"ingest/loads.py:{line(p, 'dlt_assets(users')}"
    assert_clean_error(
        result,
        2,
        "nothing was run",
        f"dlt assets raw.users ({where})",
        "DuckDB and PostgreSQL targets only, not spark",
        '--exclude "path:ingest/loads.py+"',
    )
    assert ok_runs(p) == []


def ok_runs(p: TinyProject) -> list[object]:
    result = run_cli(p.path, "runs", "--json")
    assert result.exit_code == 0, result.describe()
    runs: list[object] = result.json()
    return runs
