"""Edge cases of the merged graph and the executor, each on a purpose-built tiny project.

Zero configuration (a plain dbt project), sources merged into the assets that produce them,
every return type a Python asset may use, event order across dbt and Python, and running
several projects in one process.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import (
    TinyProject,
    query,
    run_cli,
    scalar,
    tables,
    write_dbt_project,
)

pytestmark = pytest.mark.dbt

Make = Callable[..., TinyProject]


def ok(result: Any) -> Any:
    assert result.exit_code == 0 and result.exception is None, result.describe()
    return result


def ls(project: Path) -> dict[str, dict[str, Any]]:
    return {a["key"]: a for a in ok(run_cli(project, "ls", "--json")).json()}


def last_events(project: Path) -> list[dict[str, Any]]:
    return ok(run_cli(project, "logs", "--json")).json_lines()


# --------------------------------------------------------------------------- zero configuration


def test_plain_dbt_project_needs_no_settings(make_dbt_project: Make) -> None:
    project = make_dbt_project(
        {
            "models/a.sql": "select 1 as x\n",
            "models/b.sql": "{{ config(materialized='table') }}\nselect x from {{ ref('a') }}\n",
        }
    )
    assert not (project.path / "pyproject.toml").exists()
    ok(run_cli(project.path, "build"))
    assert (project.path / ".sqlorch" / "state.db").is_file()
    assert tables(project.db) == {"main.a": "VIEW", "main.b": "BASE TABLE"}
    status = {s["key"]: s for s in ok(run_cli(project.path, "status", "--json")).json()}
    assert status["main.b"]["rows"] == 1
    assert status["main.a"]["last_outcome"] == "success"
    ok(run_cli(project.path, "build", "--full", "--threads", "1"))
    assert len(ok(run_cli(project.path, "runs", "--json")).json()) == 2


def test_profiles_dir_from_the_environment_and_the_flag(
    make_dbt_project: Make, tmp_path: Path
) -> None:
    project = make_dbt_project({"models/a.sql": "select 1 as x\n"})
    elsewhere = tmp_path / "profiles_elsewhere"
    elsewhere.mkdir()
    (project.path / "profiles.yml").rename(elsewhere / "profiles.yml")
    ok(run_cli(project.path, "build", env={"DBT_PROFILES_DIR": str(elsewhere)}))
    ok(run_cli(project.path, "build", "--full", "--profiles-dir", str(elsewhere)))
    assert len(ok(run_cli(project.path, "runs", "--json")).json()) == 2


def test_target_flag_picks_the_output(make_dbt_project: Make, tmp_path: Path) -> None:
    other_db = tmp_path / "other.duckdb"
    project = make_dbt_project(
        {
            "models/a.sql": "select '{{ target.name }}' as target_name\n",
            "profiles.yml": f"""
                tiny:
                  target: dev
                  outputs:
                    dev:
                      type: duckdb
                      path: "{tmp_path / "dev.duckdb"}"
                    other:
                      type: duckdb
                      path: "{other_db}"
            """,
        },
        {
            "ingest/assets.py": """
                import pyarrow as pa

                from sqlorch import asset


                @asset
                def p():
                    return pa.table({"n": [1, 2, 3]})
            """
        },
    )
    ok(run_cli(project.path, "build", "--target", "other"))
    assert not (tmp_path / "dev.duckdb").exists()
    assert query(other_db, "select target_name from main.a") == [("other",)]
    # Python assets land in the same database as dbt's models
    assert scalar(other_db, "select count(*) from raw.p") == 3


# --------------------------------------------------------------------------- the merged graph


SOURCES = """
version: 2
sources:
  - name: raw
    schema: raw
    tables:
      - name: events
      - name: observed
  - name: ref_data
    schema: main
    tables:
      - name: countries
"""


@pytest.fixture
def merged_project(make_dbt_project: Make) -> TinyProject:
    project = make_dbt_project(
        {
            "seeds/countries.csv": "code,name\nfr,France\nde,Germany\n",
            "models/sources.yml": SOURCES,
            # the project reads its own seed through source(): the source IS the seed
            "models/with_names.sql": """
                select e.id, c.name
                from {{ source('raw', 'events') }} e
                join {{ source('ref_data', 'countries') }} c on c.code = e.country
            """,
            "models/from_observed.sql": "select * from {{ source('raw', 'observed') }}\n",
        },
        {
            "ingest/assets.py": """
                import pyarrow as pa

                from sqlorch import asset


                @asset(tags=["nightly"])
                def events():
                    return pa.table({"id": [1, 2, 3], "country": ["fr", "de", "fr"]})
            """
        },
    )
    return project


def test_sources_merge_into_the_assets_that_produce_them(merged_project: TinyProject) -> None:
    assets = ls(merged_project.path)
    assert assets["raw.events"]["kind"] == "python"
    assert assets["main.countries"]["kind"] == "seed"
    # a source nothing produces stays, observed only
    assert assets["raw.observed"]["kind"] == "source"
    assert assets["raw.observed"]["file"] == "models/sources.yml"
    assert sorted(assets["main.with_names"]["deps"]) == ["main.countries", "raw.events"]
    assert assets["main.from_observed"]["deps"] == ["raw.observed"]
    assert list(assets).count("raw.events") == 1


def test_a_seed_read_through_source_is_built_first(merged_project: TinyProject) -> None:
    # the observed source does not exist: leave its reader out
    ok(run_cli(merged_project.path, "build", "--exclude", "from_observed"))
    assert sorted(query(merged_project.db, "select id, name from main.with_names")) == [
        (1, "France"),
        (2, "Germany"),
        (3, "France"),
    ]
    planned = ok(run_cli(merged_project.path, "build", "--dry-run", "--json")).json()["steps"]
    assert "raw.observed" not in [s["key"] for s in planned], "an observed source is no step"


def test_source_selector_selects_the_producing_assets(merged_project: TinyProject) -> None:
    listed = ok(run_cli(merged_project.path, "ls", "-s", "source:raw", "--json")).json()
    assert {a["key"] for a in listed} == {"raw.events", "raw.observed"}


# --------------------------------------------------------------------------- Python assets


RETURN_TYPES = """
import pyarrow as pa

from sqlorch import AssetContext, MaterializeResult, asset


@asset
def arrow_table():
    return pa.table({"n": [1, 2, 3]})


@asset
def batch_reader():
    batches = [pa.record_batch({"n": [i, i + 1]}) for i in range(0, 10, 2)]
    return pa.RecordBatchReader.from_batches(batches[0].schema, batches)


@asset
def pandas_frame():
    import pandas as pd

    return pd.DataFrame({"n": [1, 2], "s": ["a", "b"]})


@asset(deps=["arrow_table"])
def duckdb_relation(context: AssetContext):
    return context.warehouse.connection.sql("select n * 10 as n from raw.arrow_table")


@asset(deps=["arrow_table"])
def writes_itself(context: AssetContext):
    context.log.info("writing %s myself", context.key)
    context.warehouse.connection.execute(
        "create or replace table raw.writes_itself as select n from raw.arrow_table where n > 1"
    )


@asset(schema="other", metadata={"owner": "data"})
def with_metadata():
    return MaterializeResult(pa.table({"n": [7]}), metadata={"source_rows": 1})
"""


def test_python_assets_may_return_any_supported_type(make_dbt_project: Make) -> None:
    project = make_dbt_project(
        {
            "models/total.sql": "select sum(n) as n from {{ source('raw', 'duckdb_relation') }}\n",
            "models/sources.yml": """
                version: 2
                sources:
                  - name: raw
                    schema: raw
                    tables:
                      - name: duckdb_relation
            """,
        },
        {"ingest/assets.py": RETURN_TYPES},
    )
    ok(run_cli(project.path, "build"))
    counts = {
        key: scalar(project.db, f"select count(*) from {key}")
        for key in (
            "raw.arrow_table",
            "raw.batch_reader",
            "raw.pandas_frame",
            "raw.duckdb_relation",
            "raw.writes_itself",
            "other.with_metadata",
        )
    }
    assert counts == {
        "raw.arrow_table": 3,
        "raw.batch_reader": 10,
        "raw.pandas_frame": 2,
        "raw.duckdb_relation": 3,
        "raw.writes_itself": 2,
        "other.with_metadata": 1,
    }
    assert scalar(project.db, "select n from main.total") == 60
    status = {s["key"]: s for s in ok(run_cli(project.path, "status", "--json")).json()}
    for key, rows in counts.items():
        assert status[key]["rows"] == rows, key
    events = last_events(project.path)
    logs = [e for e in events if e["kind"] == "asset_log" and e["asset"] == "raw.writes_itself"]
    assert [e["message"] for e in logs] == ["writing raw.writes_itself myself"]
    materialized = {e["asset"]: e for e in events if e["kind"] == "asset_materialized"}
    # the user's metadata, and the target sqlorch wrote it to (checks compare within one)
    metadata = materialized["other.with_metadata"]["data"]["metadata"]
    assert metadata == {"source_rows": 1, "target": metadata["target"]}
    assert metadata["target"].startswith("duckdb:"), metadata


def test_dbt_python_dbt_chain_runs_in_order(make_dbt_project: Make) -> None:
    # model -> Python -> model -> Python -> model: each reads what the previous one wrote
    project = make_dbt_project(
        {
            "models/m1.sql": "{{ config(materialized='table') }}\nselect 1 as n\n",
            "models/m2.sql": """
                {{ config(materialized='table') }}
                select n + 1 as n from {{ source('py', 'p1') }}
            """,
            "models/m3.sql": "select n + 1 as n from {{ source('py', 'p2') }}\n",
            "models/sources.yml": """
                version: 2
                sources:
                  - name: py
                    schema: py
                    tables:
                      - name: p1
                      - name: p2
            """,
        },
        {
            "ingest/chain.py": """
                from sqlorch import asset


                @asset(schema="py", deps=["m1"])
                def p1(context):
                    return context.warehouse.connection.sql("select n * 10 as n from main.m1")


                @asset(schema="py", deps=["m2"])
                def p2(context):
                    return context.warehouse.connection.sql("select n * 10 as n from main.m2")
            """
        },
    )
    ok(run_cli(project.path, "build"))
    assert scalar(project.db, "select n from main.m3") == ((1 * 10) + 1) * 10 + 1
    events = last_events(project.path)
    invocations = [
        e for e in events if e["kind"] == "dbt_invocation_started" and not e["data"].get("compile")
    ]
    # one batch per segment: here sqlorch executes each natively (issue 16)
    assert len(invocations) == 3, "one dbt invocation per segment"
    assert all(e["data"].get("native") for e in invocations)
    order = [e["asset"] for e in events if e["kind"] == "asset_started"]
    assert order == ["main.m1", "py.p1", "main.m2", "py.p2", "main.m3"]


def test_events_never_show_a_child_starting_before_its_parent_finished(
    make_dbt_project: Make,
) -> None:
    project = make_dbt_project(
        {"models/m1.sql": "{{ config(materialized='table') }}\nselect 1 as n\n"},
        {
            "ingest/chain.py": """
                from sqlorch import asset


                @asset(deps=["m1"])
                def p1(context):
                    return context.warehouse.connection.sql("select n from main.m1")
            """
        },
    )
    ok(run_cli(project.path, "build"))
    events = last_events(project.path)
    index = {(e["kind"], e["asset"]): i for i, e in enumerate(events) if e["asset"]}
    assert index[("asset_materialized", "main.m1")] < index[("asset_started", "raw.p1")]


# --------------------------------------------------------------------------- one process


def test_ingest_folder_without_init_is_not_shadowed(
    make_dbt_project: Make, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A project's `ingest/` without __init__.py is a namespace package; another regular
    `ingest` package on sys.path (as the repo's own example is under an editable install)
    must not hide it."""
    decoy = tmp_path / "decoy"
    (decoy / "ingest").mkdir(parents=True)
    (decoy / "ingest" / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(decoy))
    project = make_dbt_project(
        {"models/a.sql": "select 1 as x\n"},
        {
            "ingest/__init__.py": "",
            "ingest/assets.py": """
                import pyarrow as pa

                from sqlorch import asset


                @asset
                def p():
                    return pa.table({"n": [1]})
            """,
        },
    )
    (project.path / "ingest" / "__init__.py").unlink()
    ok(run_cli(project.path, "build"))
    assert scalar(project.db, "select count(*) from raw.p") == 1


def test_two_projects_with_the_same_relative_db_path_in_one_process(tmp_path: Path) -> None:
    profiles = """
        tiny:
          target: dev
          outputs:
            dev:
              type: duckdb
              path: tiny.duckdb
    """
    first = write_dbt_project(
        tmp_path / "first",
        {"models/only_first.sql": "select 1 as x\n", "profiles.yml": profiles},
    )
    second = write_dbt_project(
        tmp_path / "second",
        {"models/only_second.sql": "select 2 as x\n", "profiles.yml": profiles},
    )
    ok(run_cli(first.path, "build"))
    ok(run_cli(second.path, "build"))
    assert "main.only_second" in tables(second.path / "tiny.duckdb")
    assert "main.only_second" not in tables(first.path / "tiny.duckdb")
