"""Environments on DuckDB: a PR-style build into `pr_7__*` leaves production untouched.

The example is built (production), one model is edited in the copy, and the pull request's
build runs as the generated workflow runs it: `SQLORCH_ENV=pr_7 sqlorch build -s
state:modified+ --defer --state dev`. Exactly the edited model and its downstream (a Python
asset and a model) are built, into the environment's schemas; the edited model reads
production's upstream (through the views sqlorch puts into the environment); every production
table keeps its content and production's state its rows; `sqlorch env drop pr_7` then drops
the environment's schemas and state and nothing else.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from conftest import assert_clean_error, copy_example, query, run_cli

pytestmark = pytest.mark.dbt

PR = {"SQLORCH_ENV": "pr_7"}
EDITED = ["marts.route_stats", "analytics.route_delay_score", "marts.mart_route_scorecard"]


def _tables(db: Path) -> dict[str, str]:
    """Every base table and view of the file: `schema.name` -> its kind."""
    rows = query(
        db,
        "select table_schema || '.' || table_name, table_type from information_schema.tables "
        "where table_catalog = current_database()",
    )
    return {str(k): str(t) for k, t in rows}


def _production_content(db: Path) -> dict[str, str]:
    """A hash of every production relation's rows (order-independent), by `schema.name`."""
    out = {}
    for key in sorted(k for k in _tables(db) if "__" not in k.split(".")[0]):
        schema, name = key.split(".", 1)
        out[key] = str(
            query(
                db,
                f'select count(*) || \':\' || coalesce(sum(hash(t)), 0) from "{schema}"."{name}" t',
            )[0][0]
        )
    return out


def _state_rows(state: Path) -> dict[str, int]:
    con = sqlite3.connect(f"file:{state}?mode=ro", uri=True)
    try:
        return {
            t: con.execute(f"select count(*) from {t}").fetchone()[0]
            for t in ("runs", "events", "materializations", "partition_ledger", "check_results")
        }
    finally:
        con.close()


def test_a_pr_build_goes_to_its_environment_and_production_stays_as_it_was(
    tmp_path: Path,
) -> None:
    project = copy_example(tmp_path / "nycflights")
    db = project / "nycflights13.duckdb"
    prod = run_cli(project, "build")
    assert prod.exit_code == 0, prod.describe()
    stats = project / "models" / "marts" / "route_stats.sql"
    stats.write_text(
        stats.read_text().replace(
            "    count(*) as flights,", "    count(*) as flights,\n    count(*) * 2 as twice,"
        )
    )
    content = _production_content(db)
    state = project / ".sqlorch" / "state.db"
    state_rows = _state_rows(state)

    # the plan: the edited model and its downstream, compared with production's state
    plan = run_cli(project, "build", "-s", "state:modified+", "--dry-run", "--json", env=PR)
    assert plan.exit_code == 0, plan.describe()
    assert [s["key"] for s in plan.json()["steps"]] == EDITED
    pr = run_cli(project, "build", "-s", "state:modified+", "--defer", "--state", "dev", env=PR)
    assert pr.exit_code == 0, pr.describe()
    assert "3 succeeded" in pr.flat, pr.describe()

    # production: every relation's content, and its state, unchanged
    assert _production_content(db) == content
    assert _state_rows(state) == state_rows
    assert not query(
        db,
        "select 1 from information_schema.columns "
        "where table_schema = 'marts' and table_name = 'route_stats' and column_name = 'twice'",
    )
    # the environment: the three built relations, and views of production's upstream they read
    tables = _tables(db)
    env = {k: v for k, v in tables.items() if k.startswith("pr_7__")}
    built = {f"pr_7__{k}" for k in EDITED}
    assert {k for k, v in env.items() if v == "BASE TABLE"} == built
    views = {k for k, v in env.items() if v == "VIEW"}
    assert views == {"pr_7__marts.fct_flights", "pr_7__staging.stg_airports"}
    definition = query(
        db,
        "select sql from duckdb_views() where schema_name = 'pr_7__marts' "
        "and view_name = 'fct_flights'",
    )[0][0]
    assert "marts.fct_flights" in definition.replace('"', "")
    # the edited model read production's flights: same routes, its new column filled
    assert query(db, "select count(*), sum(twice) = 2 * sum(flights) from pr_7__marts.route_stats")[
        0
    ] == (query(db, "select count(*) from marts.route_stats")[0][0], True)
    # the Python asset read the environment's route_stats (context.relation), not production's
    assert query(db, "select count(*) from pr_7__analytics.route_delay_score")[0][0] == 224
    # the environment's own state: one run, of exactly these assets
    runs = run_cli(project, "runs", "--json", env=PR).json()
    assert len(runs) == 1 and runs[0]["assets"]["succeeded"] == 3
    again = run_cli(project, "build", "-s", "state:modified+", "--defer", "--state", "dev", env=PR)
    assert again.exit_code == 0 and "nothing to do" in again.flat, again.describe()

    # dlt assets too: their dataset is the environment's (dlt would fold `pr_7__ops`)
    dlt = run_cli(project, "build", "-s", "ops.ground_stops", "--defer", "--state", "dev", env=PR)
    assert dlt.exit_code == 0, dlt.describe()
    assert query(db, "select count(*) from pr_7__ops.ground_stops") == query(
        db, "select count(*) from ops.ground_stops"
    )
    assert not [k for k in _tables(db) if k.startswith("pr_7_") and not k.startswith("pr_7__")]
    assert _production_content(db) == content

    # cleanup: the environment's schemas and state go; production's stay as they were
    dropped = run_cli(None, "env", "drop", "pr_7", "--project-dir", str(project))
    assert dropped.exit_code == 0, dropped.describe()
    assert "pr_7__marts" in dropped.flat
    assert not [k for k in _tables(db) if k.startswith("pr_7__")]
    assert not (project / ".sqlorch" / "envs" / "pr_7").exists()
    assert _production_content(db) == content
    assert _state_rows(state) == state_rows
    # bad names: one paragraph, exit 2, nothing done
    for bad in ("PR-7", "pr__7", "7pr"):
        refused = run_cli(project, "build", "-s", "route_stats", env={"SQLORCH_ENV": bad})
        assert_clean_error(refused, 2, "cannot name an environment", "SQLORCH_ENV")
    refused = run_cli(None, "env", "drop", "x;drop", "--project-dir", str(project))
    assert_clean_error(refused, 2, "cannot name an environment")
