"""Assets that live in files (issue 18, items 1 and 9), on a tiny dbt-duckdb project.

An `external` model (written to parquet/csv, a view over the file in DuckDB) whose file was
deleted is stale, and the next build writes it again; sources declared with
`meta.external_location` (CSV files read in place) raise no hidden-dependency warning.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from conftest import TinyProject, run_cli, scalar

pytestmark = pytest.mark.dbt

Make = Callable[..., TinyProject]

FILES = {
    "out/.keep": "",
    "data/trips.csv": "id,city\n1,Oslo\n2,Lima\n3,Oslo\n",
    "models/sources.yml": """
        version: 2
        sources:
          - name: files
            meta:
              external_location: "data/{name}.csv"
            tables:
              - name: trips
    """,
    "models/city_counts.sql": """
        {{ config(materialized='external', location='out/city_counts.parquet') }}
        select city, count(*) as n from {{ source('files', 'trips') }} group by city
    """,
    "models/top_city.sql": """
        {{ config(materialized='table') }}
        select city from {{ ref('city_counts') }} order by n desc limit 1
    """,
}


def test_external_sources_raise_no_hidden_dependency(make_dbt_project: Make) -> None:
    project = make_dbt_project(FILES)
    result = run_cli(project.path, "build")
    assert result.exit_code == 0, result.describe()
    assert "hidden dependency" not in result.flat, result.describe()
    assert "trips.csv" not in result.flat, result.describe()
    lineage = run_cli(project.path, "lineage", "main.city_counts.n")
    assert "hidden dependency" not in lineage.flat, lineage.describe()
    assert "main.data/" not in lineage.flat, lineage.describe()
    again = run_cli(project.path, "build", "--full")
    assert again.exit_code == 0, again.describe()
    assert "hidden dependency" not in again.flat, again.describe()


def test_an_external_model_whose_file_was_deleted_is_stale(make_dbt_project: Make) -> None:
    project = make_dbt_project(FILES)
    result = run_cli(project.path, "build")
    assert result.exit_code == 0, result.describe()
    written = project.path / "out" / "city_counts.parquet"
    assert written.is_file()
    fresh = {r["key"]: r for r in run_cli(project.path, "status", "--json").json()}
    assert not fresh["main.city_counts"]["stale"], fresh["main.city_counts"]

    written.unlink()
    status = {r["key"]: r for r in run_cli(project.path, "status", "--json").json()}
    assert status["main.city_counts"]["stale"], status["main.city_counts"]
    assert any("missing" in r for r in status["main.city_counts"]["reasons"])

    rebuilt = run_cli(project.path, "build")
    assert rebuilt.exit_code == 0, rebuilt.describe()
    assert written.is_file()
    assert scalar(project.db, "select city from main.top_city") == "Oslo"
