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


def test_a_failed_blocking_check_keeps_its_asset_stale_and_retry_rebuilds_it(
    failing: tuple[TinyProject, Any],
) -> None:
    project, _ = failing
    run_id = run_cli(project.path, "runs", "--json").json()[0]["run_id"]
    status = {s["key"]: s for s in run_cli(project.path, "status", "--json").json()}
    assert status["main.big_orders"]["reasons"] == ["check not_null_big_orders_doubled failed"]
    retry = run_cli(project.path, "retry", "--dry-run", "--json")
    assert retry.exit_code == 0, retry.describe()
    assert {s["key"]: s["reasons"][0] for s in retry.json()["steps"]} == {
        "main.big_orders": f"check not_null_big_orders_doubled failed in run {run_id}",
        "main.after_big": f"skipped in run {run_id}",
    }


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
    assert py.metadata == {"api_calls": 3, "source": "unit", "target": py.metadata["target"]}
    assert py.metadata["target"].startswith("duckdb:"), py.metadata
    assert py.rows == 3 and py.duration_s is not None and py.code_version
    (big,) = store.materializations("main.big_orders")
    assert big.rows == 3  # counted: dbt-duckdb reports no rows_affected
    # dbt's phases; natively executed (issue 16), the compile happened before (cached SQL)
    timing = big.metadata["dbt_timing"]
    assert "execute" in timing and set(timing) <= {"compile", "execute"}
    assert all(v >= 0 for v in timing.values())
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
    from sqlorch.execute.dbt_steps import dbt_metadata

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


# --------------------------------------------------------------------------- @check and built-ins

EVENTS = {
    "pyproject.toml": """
        [tool.sqlorch]
        check_modules = ["quality"]

        [tool.sqlorch.checks."raw.events"]
        row_count = { max_drop_pct = 50 }
    """,
    "models/sources.yml": """
        version: 2
        sources:
          - name: raw
            schema: raw
            tables:
              - name: events
    """,
    "models/stg_events.sql": (
        "{{ config(materialized='table') }}\nselect * from {{ source('raw', 'events') }}\n"
    ),
    "models/final.sql": (
        "{{ config(materialized='table') }}\nselect * from {{ ref('stg_events') }}\n"
    ),
    "models/schema.yml": """
        version: 2
        models:
          - name: stg_events
            config:
              meta:
                sqlorch:
                  checks:
                    schema_change: true
    """,
}
EVENTS_PYTHON = {
    "ingest/events.py": """
        from pathlib import Path

        import pyarrow as pa

        from sqlorch import asset

        HERE = Path(__file__).resolve().parent.parent


        @asset
        def events():
            n = int((HERE / "n.txt").read_text())
            cols = {"id": list(range(n)), "v": [1.0] * n}
            if (HERE / "drop_v").exists():
                del cols["v"]
            return pa.table(cols)
    """,
    "quality/checks.py": """
        from pathlib import Path

        from sqlorch import CheckResult, check

        HERE = Path(__file__).resolve().parent.parent


        @check(asset="stg_events")
        def ids_are_unique(connection):
            (dupes,) = connection.execute(
                "select count(*) - count(distinct id) from main.stg_events"
            ).fetchone()
            broken = (HERE / "fail_check").exists()
            message = "forced" if broken else ""
            return CheckResult(dupes == 0 and not broken, message, {"dupes": dupes})
    """,
}


def _run_id(result: Any) -> str:
    import re

    found = re.search(r"run (\d{8}T\d{6}-[0-9a-f]{6})", result.output)
    assert found, result.describe()
    return found.group(1)


def build_with(project: TinyProject, n: int) -> Any:
    (project.path / "n.txt").write_text(str(n))
    # the source data changed, not the code: rebuild regardless of staleness
    return run_cli(project.path, "build", "--full")


def outcomes(project: TinyProject) -> dict[str, str]:
    return {s["key"]: s["last_outcome"] for s in run_cli(project.path, "status", "--json").json()}


def test_builtin_and_python_checks_from_settings_meta_and_check_modules(
    make_dbt_project: Make,
) -> None:
    project = make_dbt_project(EVENTS, EVENTS_PYTHON)
    first = build_with(project, 1000)
    assert first.exit_code == 0, first.describe()
    store = store_of(project)
    ran = {(r.name, r.kind, r.status) for r in store.check_results()}
    assert ran == {
        ("row_count_events", "builtin", "pass"),
        ("schema_change_stg_events", "builtin", "pass"),
        ("ids_are_unique", "python", "pass"),
    }

    # a 10% drop passes
    second = build_with(project, 900)
    assert second.exit_code == 0, second.describe()

    # a 60% drop fails the blocking row-count check: nothing downstream of raw.events runs
    third = build_with(project, 360)
    assert third.exit_code == 1, third.describe()
    assert "rows dropped 60.0% (900 -> 360)" in third.flat
    assert outcomes(project)["main.stg_events"] == "skipped"
    assert set(store.failing_blocking_checks()) == {"raw.events"}
    assert query(project.db, "select count(*) from main.final") == [(900,)]
    # the check ran on the new rows before they were published: nothing changed
    assert query(project.db, "select count(*) from raw.events") == [(900,)]

    # a second build does not accept the drop silently: the previous count still holds
    again = build_with(project, 360)
    assert again.exit_code == 1, again.describe()
    assert "rows dropped 60.0% (900 -> 360)" in again.flat
    # the user accepts it by loosening the check; then the rest catches up
    settings = project.path / "pyproject.toml"
    settings.write_text(settings.read_text().replace("max_drop_pct = 50", "max_drop_pct = 70"))
    fourth = build_with(project, 360)
    assert fourth.exit_code == 0, fourth.describe()
    assert query(project.db, "select count(*) from main.final") == [(360,)]
    assert store.failing_blocking_checks() == {}

    # a column removed from stg_events: schema_change (from dbt meta) blocks final
    (project.path / "drop_v").touch()
    fifth = build_with(project, 360)
    assert fifth.exit_code == 1, fifth.describe()
    assert "column(s) removed: v" in fifth.flat
    assert "--accept-schema" in fifth.flat  # it says how to accept the change
    assert outcomes(project)["main.final"] == "skipped"
    # dbt committed stg_events; a second build still compares with the accepted columns
    again = build_with(project, 360)
    assert again.exit_code == 1, again.describe()
    assert "column(s) removed: v" in again.flat
    accepted = run_cli(project.path, "build", "--accept-schema")
    assert accepted.exit_code == 0, accepted.describe()
    (latest,) = [
        r
        for r in store.check_results(asset="main.stg_events")
        if r.name == "schema_change_stg_events" and r.run_id == _run_id(accepted)
    ]
    assert latest.status == "pass", latest
    assert "column(s) removed: v" in latest.metadata["accepted"], latest
    (project.path / "drop_v").unlink()

    # the Python check from check_modules gates the dbt model downstream of its asset
    (project.path / "fail_check").touch()
    sixth = build_with(project, 360)
    assert sixth.exit_code == 1, sixth.describe()
    assert "ids_are_unique" in sixth.flat and "forced" in sixth.flat
    assert outcomes(project)["main.stg_events"] == "success"
    assert outcomes(project)["main.final"] == "skipped"
    failing = store.failing_blocking_checks()
    assert [r.name for r in failing["main.stg_events"]] == ["ids_are_unique"]
    assert failing["main.stg_events"][0].metadata["dupes"] == 0


def test_a_check_of_an_unknown_asset_is_a_clear_error(make_dbt_project: Make) -> None:
    from conftest import assert_clean_error

    project = make_dbt_project(
        {"models/a.sql": "select 1 as x\n"},
        {
            "ingest/checks.py": """
                from sqlorch import check


                @check(asset="nope")
                def c(connection):
                    return True
            """
        },
    )
    assert_clean_error(run_cli(project.path, "build"), 2, "ingest/checks.py:4", "'nope'")
    project.write(
        {
            "ingest/checks.py": "",
            "pyproject.toml": """
                [tool.sqlorch.checks.a]
                row_cnt = true
            """,
        }
    )
    assert_clean_error(run_cli(project.path, "build"), 2, "row_cnt", "pyproject.toml")


# --------------------------------------------------------------------------- dbt retries

FLAKY_MODEL = """
from pathlib import Path


def model(dbt, session):
    dbt.config(materialized="table", tags=["flaky"])
    marker = Path({marker!r})
    n = int(marker.read_text()) if marker.exists() else 0
    marker.write_text(str(n + 1))
    if n < {failures}:
        raise RuntimeError(f"the upstream API hung up (attempt {{n + 1}})")
    return session.sql("select 1 as x union all select 2")
"""


def test_a_flaky_dbt_model_is_retried_by_the_settings_policy(make_dbt_project: Make) -> None:
    def project_files(root: Path, failures: int, retries: int) -> dict[str, str]:
        return {
            "models/flaky.py": FLAKY_MODEL.format(
                marker=str(root / "attempts.txt"), failures=failures
            ),
            "models/after_flaky.sql": (
                "{{ config(materialized='table') }}\nselect * from {{ ref('flaky') }}\n"
            ),
            "models/schema.yml": """
                version: 2
                models:
                  - name: flaky
                    columns:
                      - name: x
                        data_tests: [not_null]
            """,
            "pyproject.toml": f"""
                [tool.sqlorch.retries."tag:flaky"]
                retries = {retries}
                backoff = "constant"
                delay = 0
            """,
        }

    project = make_dbt_project({"models/a.sql": "select 1 as x\n"}, folder="flaky")
    project.write(project_files(project.path, failures=2, retries=3))
    result = run_cli(project.path, "build")
    assert result.exit_code == 0, result.describe()
    assert (project.path / "attempts.txt").read_text() == "3"
    assert query(project.db, "select count(*) from main.after_flaky") == [(2,)]
    events = run_cli(project.path, "logs", "--json").json_lines()
    retries = [e for e in events if e["kind"] == "asset_retry"]
    assert [(e["asset"], e["data"]["attempt"]) for e in retries] == [
        ("main.flaky", 1),
        ("main.flaky", 2),
    ]
    assert "the upstream API hung up (attempt 1)" in retries[0]["message"]
    assert not [e for e in events if e["kind"] in ("asset_failed", "asset_skipped")]
    (mat,) = store_of(project).materializations("main.flaky")
    assert mat.metadata["attempts"] == 3
    assert [r.status for r in store_of(project).check_results(asset="main.flaky")] == ["pass"]

    # retries run out: the last error fails the model and skips its downstream
    (project.path / "attempts.txt").unlink()
    project.write(project_files(project.path, failures=5, retries=1))
    failed = run_cli(project.path, "build")
    assert failed.exit_code == 1, failed.describe()
    assert (project.path / "attempts.txt").read_text() == "2"
    status = {s["key"]: s["last_outcome"] for s in run_cli(project.path, "status", "--json").json()}
    assert status["main.flaky"] == "failed" and status["main.after_flaky"] == "skipped"


def test_the_example_runs_python_and_builtin_checks(built_example: Any) -> None:
    store = StateStore(built_example.path / ".sqlorch" / "state.db", readonly=True)
    results = {(r.asset, r.name): r for r in store.check_results()}
    assert results[("raw.flights", "flights_depart_from_nyc")].status == "pass"
    by_origin = results[("raw.flights", "flights_depart_from_nyc")].metadata["flights_by_origin"]
    assert sum(by_origin.values()) == 336_776
    assert results[("analytics.route_delay_score", "worst_route_is_ranked_first")].status == "pass"
    for table in ("airlines", "airports", "planes", "weather", "flights"):
        assert results[(f"raw.{table}", f"row_count_{table}")].status == "pass"
        assert results[(f"raw.{table}", f"schema_change_{table}")].status == "pass"
    assert results[("marts.fct_flights", "freshness_fct_flights")].status == "pass"
    assert store.failing_blocking_checks() == {}
    columns = store.latest_columns()
    assert ("origin", "VARCHAR") in columns["raw.flights"]
    assert set(columns) >= {"raw.flights", "marts.fct_flights", "analytics.route_delay_score"}


# --------------------------------------------------------------------------- sqlorch check

ARRIVALS = {
    "pyproject.toml": """
        [tool.sqlorch.checks."source:raw.arrivals"]
        freshness = { max_age = "26h", column = "loaded_at" }
        row_count = true
    """,
    "models/sources.yml": """
        version: 2
        sources:
          - name: raw
            schema: raw
            tables:
              - name: arrivals
                columns:
                  - name: loaded_at
                    data_tests: [not_null]
    """,
    "models/daily.sql": "select count(*) as n from {{ source('raw', 'arrivals') }}\n",
}
ARRIVALS_PYTHON = {
    "ingest/arrivals.py": """
        from datetime import datetime, timezone

        import pyarrow as pa

        from sqlorch import asset


        @asset
        def arrivals():
            now = datetime.now(timezone.utc).replace(tzinfo=None)
            return pa.table({"id": [1, 2], "loaded_at": [now, now]})
    """
}


def test_check_command_runs_checks_on_the_warehouse_as_it_is(make_dbt_project: Make) -> None:
    project = make_dbt_project(ARRIVALS, ARRIVALS_PYTHON)
    built = run_cli(project.path, "build")
    assert built.exit_code == 0, built.describe()

    checked = run_cli(project.path, "check")
    assert checked.exit_code == 0, checked.describe()
    run = run_cli(project.path, "runs", "--json").json()[0]
    assert run["command"] == "check" and run["assets"]["succeeded"] == 0
    names = {r.name: r.status for r in store_of(project).check_results(run_id=run["run_id"])}
    assert names == {
        "freshness_arrivals": "pass",
        "row_count_arrivals": "pass",
        "source_not_null_raw_arrivals_loaded_at": "pass",
    }

    # the data grows old (nothing loads it): the next check notices, and nothing was built
    import duckdb

    con = duckdb.connect(str(project.db))
    con.execute("update raw.arrivals set loaded_at = loaded_at - interval 3 day")
    con.close()
    stale = run_cli(project.path, "check", "-s", "source:raw.arrivals")
    assert stale.exit_code == 1, stale.describe()
    assert "newest loaded_at is 3d0h old" in stale.flat and "older than 26h" in stale.flat
    assert query(project.db, "select count(*) from raw.arrivals") == [(2,)]
    assert set(store_of(project).failing_blocking_checks()) == {"raw.arrivals"}


TWO_TARGETS = {
    "profiles.yml": """
        targets:
          target: dev
          outputs:
            dev:
              type: duckdb
              path: {dev}
            other:
              type: duckdb
              path: {other}
    """,
    "pyproject.toml": """
        [tool.sqlorch.checks."raw.events"]
        schema_change = true
    """,
    "models/sources.yml": EVENTS["models/sources.yml"],
    "models/counted.sql": "select count(*) as n from {{ source('raw', 'events') }}\n",
}
TYPED_EVENTS = {
    "ingest/events.py": """
        from pathlib import Path

        import pyarrow as pa

        from sqlorch import asset

        HERE = Path(__file__).resolve().parent.parent


        @asset
        def events():
            ids = [1, 2, 3]
            if (HERE / "as_text").exists():
                return pa.table({"id": [str(i) for i in ids]})
            return pa.table({"id": ids})
    """,
}


def test_schema_change_compares_only_with_materializations_of_the_same_target(
    make_dbt_project: Make, tmp_path: Path
) -> None:
    dev, other = tmp_path / "dev.duckdb", tmp_path / "other.duckdb"
    files = dict(TWO_TARGETS)
    files["profiles.yml"] = files["profiles.yml"].format(dev=dev, other=other)
    project = make_dbt_project(files, TYPED_EVENTS, name="targets")
    first = run_cli(project.path, "build")
    assert first.exit_code == 0, first.describe()
    # the same asset written with other column types on another target (as DuckDB's VARCHAR
    # becomes Spark's `string`): that target has no earlier materialization to compare with
    (project.path / "as_text").touch()
    elsewhere = run_cli(project.path, "build", "-t", "other")
    assert elsewhere.exit_code == 0, elsewhere.describe()
    assert query(other, "select typeof(id) from raw.events limit 1") == [("VARCHAR",)]
    # back on dev the type change is a change, against dev's own last materialization
    again = run_cli(project.path, "build", "--full")
    assert again.exit_code == 1, again.describe()
    assert "type(s) changed: id BIGINT -> VARCHAR" in again.flat, again.describe()
    store = store_of(project)
    targets = {m.metadata.get("target") for m in store.materializations("raw.events")}
    assert targets == {"duckdb:dev", "duckdb:other"}, targets
