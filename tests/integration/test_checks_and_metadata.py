"""What a build records about each table: columns, metadata, dbt's numbers, check results.

A tiny project mixes a Python asset, a view, tables and dbt tests of both severities; the
state store is read back through its public read methods (what staleness and lineage use).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import TinyProject, query, run_cli, tables

from sqlorch.state.store import StateStore

pytestmark = pytest.mark.dbt

Make = Callable[..., TinyProject]

ORDERS = """
    import pyarrow as pa

    from sqlorch import MaterializeResult, asset


    @asset
    def orders(context):
        context.add_metadata(source="unit")
        amounts = {amounts}
        return MaterializeResult(
            pa.table({{"id": list(range(1, len(amounts) + 1)), "amount": amounts}}),
            metadata={{"api_calls": 3}},
        )
"""

PROJECT = {
    "models/sources.yml": """
        version: 2
        sources:
          - name: raw
            schema: raw
            tables:
              - name: orders
    """,
    "models/stg_orders.sql": "select id, amount from {{ source('raw', 'orders') }}\n",
    "models/big_orders.sql": (
        "{{ config(materialized='table') }}\n"
        "select id, amount * 2 as doubled from {{ ref('stg_orders') }}\n"
    ),
    "models/after_big.sql": (
        "{{ config(materialized='table') }}\nselect * from {{ ref('big_orders') }}\n"
    ),
    "models/schema.yml": """
        version: 2
        models:
          - name: stg_orders
            columns:
              - name: id
                data_tests:
                  - accepted_values:
                      arguments:
                        values: [1, 2]
                      config:
                        severity: warn
          - name: big_orders
            columns:
              - name: doubled
                data_tests:
                  - not_null
    """,
}


def orders(amounts: list[float | None]) -> dict[str, str]:
    return {"ingest/orders.py": ORDERS.format(amounts=repr(amounts))}


def store_of(project: TinyProject) -> StateStore:
    return StateStore(project.path / ".sqlorch" / "state.db", readonly=True)


@pytest.fixture
def failing(make_dbt_project: Make) -> tuple[TinyProject, Any]:
    """The project after a build whose blocking not_null test on big_orders failed."""
    project = make_dbt_project(PROJECT, orders([1.5, 2.0, None]))
    result = run_cli(project.path, "build")
    return project, result


def test_a_failing_blocking_test_stops_downstream_and_a_warn_test_does_not(
    failing: tuple[TinyProject, Any],
) -> None:
    project, result = failing
    assert result.exit_code == 1, result.describe()
    status = {s["key"]: s for s in run_cli(project.path, "status", "--json").json()}
    # the warn test on stg_orders warned; big_orders still ran (and was materialized)
    assert status["main.big_orders"]["last_outcome"] == "success", result.describe()
    # its blocking test failed: what reads it was not built
    assert status["main.after_big"]["last_outcome"] == "skipped", result.describe()
    assert "main.after_big" not in tables(project.db)
    assert "not_null_big_orders_doubled" in result.output


def test_check_results_are_recorded_per_asset(failing: tuple[TinyProject, Any]) -> None:
    project, _ = failing
    store = store_of(project)
    big = store.check_results(asset="main.big_orders")
    assert [(r.name, r.status, r.blocking, r.kind) for r in big] == [
        ("not_null_big_orders_doubled", "fail", True, "dbt_test")
    ]
    assert big[0].metadata["failures"] == 1
    stg = store.check_results(asset="main.stg_orders")
    assert [(r.status, r.blocking) for r in stg] == [("warn", False)]
    failing_checks = store.failing_blocking_checks()
    assert set(failing_checks) == {"main.big_orders"}
    assert failing_checks["main.big_orders"][0].check_id.startswith("test.tiny.not_null")


def test_the_next_build_retries_it_and_a_pass_clears_the_failure(
    failing: tuple[TinyProject, Any],
) -> None:
    project, _ = failing
    project.write(orders([1.5, 2.0, 4.0]))
    again = run_cli(project.path, "build")
    assert again.exit_code == 0, again.describe()
    assert query(project.db, "select count(*) from main.after_big") == [(3,)]
    store = store_of(project)
    assert store.failing_blocking_checks() == {}
    statuses = [r.status for r in store.check_results(asset="main.big_orders")]
    assert statuses == ["pass", "fail"]  # newest first


def test_columns_and_types_of_every_materialization(failing: tuple[TinyProject, Any]) -> None:
    project, _ = failing
    columns = store_of(project).latest_columns()
    assert columns["raw.orders"] == [("id", "BIGINT"), ("amount", "DOUBLE")]
    assert columns["main.stg_orders"] == [("id", "BIGINT"), ("amount", "DOUBLE")]  # a view
    assert columns["main.big_orders"] == [("id", "BIGINT"), ("doubled", "DOUBLE")]
    assert "main.after_big" not in columns  # never materialized


def test_python_metadata_and_dbt_numbers_are_recorded(failing: tuple[TinyProject, Any]) -> None:
    project, _ = failing
    store = store_of(project)
    (py,) = store.materializations("raw.orders")
    assert py.metadata == {"api_calls": 3, "source": "unit"}
    assert py.rows == 3 and py.duration_s is not None and py.code_version
    (big,) = store.materializations("main.big_orders")
    assert big.rows == 3  # counted: dbt-duckdb reports no rows_affected
    assert set(big.metadata["dbt_timing"]) == {"compile", "execute"}
    assert all(v >= 0 for v in big.metadata["dbt_timing"].values())
    (view,) = store.materializations("main.stg_orders")
    assert view.rows is None  # a view has no row count


def test_state_store_migrates_a_version_one_store(tmp_path: Path) -> None:
    """A store written before this migration keeps its rows and gains the new tables."""
    import sqlite3

    from sqlorch.state.migrations import MIGRATIONS

    path = tmp_path / "state.db"
    con = sqlite3.connect(path)
    con.executescript(
        "CREATE TABLE schema_version (version INTEGER); INSERT INTO schema_version VALUES (1);"
        + MIGRATIONS[0]
        + ";INSERT INTO materializations (asset, run_id, materialized_at, rows) "
        "VALUES ('raw.a', 'r0', '2026-01-01T00:00:00Z', 5);"
    )
    con.commit()
    con.close()
    store = StateStore(path)
    (old,) = store.materializations("raw.a")
    assert old.rows == 5 and old.columns is None
    assert store.latest_columns() == {}
    assert store.failing_blocking_checks() == {}


def test_dbt_metadata_keeps_what_the_adapter_reports() -> None:
    from sqlorch.dbt.runner import DbtNodeEvent, DbtPhase
    from sqlorch.executor import dbt_metadata

    ev = DbtNodeEvent(
        "model.p.m",
        DbtPhase.FINISHED,
        status="success",
        rows_affected=42,
        adapter_response={"code": "INSERT", "rows_affected": 42, "query_id": "q1"},
        timing={"compile": 0.1, "execute": 2.5},
    )
    assert dbt_metadata(ev) == {
        "rows_affected": 42,
        "dbt_timing": {"compile": 0.1, "execute": 2.5},
        "adapter_response": {"code": "INSERT", "query_id": "q1"},
    }
    assert dbt_metadata(DbtNodeEvent("model.p.m", DbtPhase.FINISHED)) == {}
