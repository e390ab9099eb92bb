"""Column lineage end to end: hand-checked traces on the example project, hidden
dependencies, columns from state, and lineage that never breaks a command."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from conftest import (
    BuiltExample,
    TinyProject,
    assert_clean_error,
    query,
    run_cli,
    run_cli_subprocess,
)

from sqlorch.lineage.trace import leaves

pytestmark = pytest.mark.dbt

Make = Callable[..., TinyProject]


def ok(result: Any) -> Any:
    assert result.exit_code == 0 and result.exception is None, result.describe()
    return result


def edges(node: dict[str, Any]) -> set[tuple[str, str]]:
    return {(c["column"], c["transform"]) for c in node["upstream"]}


def child(node: dict[str, Any], column: str) -> dict[str, Any]:
    found = [c for c in node["upstream"] if c["column"] == column]
    assert found, f"{column} not upstream of {node['column']}: {edges(node)}"
    return found[0]


# --------------------------------------------------------------------------- the example project


def test_avg_dep_delay_traces_to_the_raw_column(built_example: BuiltExample) -> None:
    tree = ok(built_example.cli("lineage", "marts.fct_delays.avg_dep_delay", "--json")).json()
    assert tree["column"] == "marts.fct_delays.avg_dep_delay"
    assert edges(tree) == {("marts.fct_flights.dep_delay_min", "aggregation")}
    fct = child(tree, "marts.fct_flights.dep_delay_min")
    assert fct["kind"] == "model"
    assert edges(fct) == {("staging.stg_flights.dep_delay_min", "copy")}
    stg = child(fct, "staging.stg_flights.dep_delay_min")
    assert edges(stg) == {("raw.flights.dep_delay", "copy")}
    raw = child(stg, "raw.flights.dep_delay")
    assert raw["kind"] == "python" and raw["upstream"] == []
    assert "computed in Python" in raw["note"] and "ingest/nycflights.py" in raw["note"]


def test_trace_through_a_python_asset_and_a_macro(built_example: BuiltExample) -> None:
    tree = ok(
        built_example.cli("lineage", "mart_route_scorecard.avg_arr_delay_hours", "--json")
    ).json()
    # minutes_to_hours(...) is a macro: round(x / 60.0, 2)
    assert edges(tree) == {("marts.route_stats.avg_arr_delay", "expression")}
    assert leaves(tree) == ["raw.flights.arr_delay"]
    route = child(tree, "marts.route_stats.avg_arr_delay")
    assert edges(route) == {("marts.fct_flights.arr_delay_min", "aggregation")}

    score = ok(built_example.cli("lineage", "marts.mart_route_scorecard.delay_grade", "--json"))
    doc = score.json()
    assert edges(doc) == {("analytics.route_delay_score.delay_score", "expression")}
    py = child(doc, "analytics.route_delay_score.delay_score")
    assert py["kind"] == "python" and "marts.route_stats" in py["note"]


def test_expressions_joins_and_seeds(built_example: BuiltExample) -> None:
    flight_id = ok(built_example.cli("lineage", "staging.stg_flights.flight_id", "--json")).json()
    assert edges(flight_id) == {
        ("raw.flights.flight_date", "expression"),
        ("raw.flights.carrier", "expression"),
        ("raw.flights.flight", "expression"),
        ("raw.flights.origin", "expression"),
    }
    holiday = ok(built_example.cli("lineage", "marts.fct_flights.is_holiday", "--json")).json()
    assert edges(holiday) == {("reference.us_federal_holidays_2013.holiday_date", "expression")}
    assert child(holiday, "reference.us_federal_holidays_2013.holiday_date")["kind"] == "seed"
    name = ok(
        built_example.cli("lineage", "marts.mart_route_scorecard.origin_name", "--json")
    ).json()
    assert leaves(name) == ["raw.airports.name"]
    # with --keys the join keys that pick the airport row appear too
    keyed = ok(
        built_example.cli("lineage", "marts.mart_route_scorecard.origin_name", "--keys", "--json")
    ).json()
    assert ("staging.stg_airports.airport_code", "join_key") in edges(keyed)
    assert ("marts.route_stats.origin", "join_key") in edges(keyed)


def test_depth_limits_the_tree(built_example: BuiltExample) -> None:
    tree = ok(
        built_example.cli("lineage", "marts.fct_delays.avg_dep_delay", "--depth", "1", "--json")
    ).json()
    assert [c["upstream"] for c in tree["upstream"]] == [[]]


def test_downstream_of_a_raw_column(built_example: BuiltExample) -> None:
    tree = ok(
        built_example.cli("lineage", "raw.flights.dep_delay", "--downstream", "--json")
    ).json()
    found = set()

    def walk(node: dict[str, Any]) -> None:
        for c in node["downstream"]:
            found.add((c["column"], c["transform"]))
            walk(c)

    walk(tree)
    assert ("staging.stg_flights.dep_delay_min", "copy") in found
    assert ("marts.fct_delays.avg_dep_delay", "aggregation") in found
    assert ("marts.route_stats.avg_dep_delay", "aggregation") in found
    assert ("marts.mart_route_scorecard.avg_dep_delay", "copy") in found
    assert ("marts.mart_delay_weather.avg_dep_delay", "aggregation") in found
    assert not any(col.startswith("marts.fct_delays.delay_id") for col, _ in found)


def test_table_lists_every_column_with_its_direct_upstream(built_example: BuiltExample) -> None:
    doc = ok(built_example.cli("lineage", "marts.fct_delays", "--json")).json()
    assert doc["asset"] == "marts.fct_delays" and doc["kind"] == "model"
    cols = {c["name"]: c for c in doc["columns"]}
    assert list(cols)[:4] == ["delay_id", "flight_date", "origin", "carrier_code"]
    assert cols["flight_date"]["upstream"] == [
        {"column": "marts.fct_flights.flight_date", "transform": "copy"}
    ]
    assert cols["flights"]["upstream"] == []  # count(*)
    assert cols["avg_dep_delay"]["type"]  # from the warehouse after the build
    group_keys = {k["column"] for k in doc["keys"] if k["transform"] == "group_key"}
    assert group_keys == {
        "marts.fct_flights.flight_date",
        "marts.fct_flights.origin",
        "marts.fct_flights.carrier_code",
    }
    assert doc["reads"] == ["marts.fct_flights"]
    assert doc["hidden_dependencies"] == []
    text = ok(built_example.cli("lineage", "marts.fct_delays")).stdout
    assert "avg_dep_delay" in text and "aggregation" in text and "group key" in text


def test_snapshot_columns(built_example: BuiltExample) -> None:
    doc = ok(built_example.cli("lineage", "snapshots.planes_snapshot", "--json")).json()
    cols = {c["name"]: c for c in doc["columns"]}
    assert cols["seats"]["upstream"] == [{"column": "raw.planes.seats", "transform": "copy"}]
    assert cols["dbt_valid_to"]["upstream"] == []


def test_unknown_column_and_asset_are_clean_errors(built_example: BuiltExample) -> None:
    assert_clean_error(
        built_example.cli("lineage", "marts.fct_delays.nope"), 2, "has no column 'nope'"
    )
    assert_clean_error(built_example.cli("lineage", "marts.nothing.x"), 2, "sqlorch ls")


def test_ls_json_columns_come_from_the_warehouse_after_materialization(
    built_example: BuiltExample,
) -> None:
    assets = {a["key"]: a for a in ok(built_example.cli("ls", "--json")).json()}
    cols = {c["name"]: c["type"] for c in assets["marts.fct_delays"]["columns"]}
    assert cols["avg_dep_delay"] == "DOUBLE"
    assert cols["flights"] == "BIGINT"
    assert "delay_id" in cols  # not documented in yml: only the warehouse knows it


# --------------------------------------------------------------------------- tiny projects


HIDDEN = {
    "models/a.sql": "{{ config(materialized='table') }}\nselect 1 as id, 'x' as label\n",
    "models/schema.yml": """
        version: 2
        models:
          - name: a
            columns:
              - name: id
              - name: label
    """,
    # reads a (a known asset) and legacy.codes (no asset) by name, without ref/source
    "models/c.sql": """
        {{ config(materialized='table') }}
        select a.id, a.label, l.code
        from main.a as a
        left join legacy.codes as l on a.id = l.id
    """,
}


def _legacy_table(db: Path) -> None:
    query(db, "create schema legacy; create table legacy.codes as select 1 as id, 'k' as code")


def test_hidden_dependency_is_reported_and_orders_the_graph(make_dbt_project: Make) -> None:
    project = make_dbt_project(HIDDEN)
    _legacy_table(project.db)
    before = {a["key"]: a for a in ok(run_cli(project.path, "ls", "--json")).json()}
    assert before["main.c"]["deps"] == []
    assert before["main.a"]["columns"] == [
        {"name": "id", "type": ""},
        {"name": "label", "type": ""},
    ]  # from the yml before materialization
    ok(run_cli(project.path, "build", "-s", "a"))
    built = ok(run_cli(project.path, "build"))
    message = built.flat
    assert "Model main.c (models/c.sql) reads main.a" in message
    assert "hidden dependency" in message
    assert "legacy.codes (no asset of this project produces it)" in message

    logged = [e for e in ok(run_cli(project.path, "logs", "--json")).json_lines()]
    hidden = [e for e in logged if e["kind"] == "hidden_dependency"]
    assert [(e["asset"], e["level"]) for e in hidden] == [("main.c", "warning")]
    assert "legacy.codes" in hidden[0]["message"]

    after = {a["key"]: a for a in ok(run_cli(project.path, "ls", "--json")).json()}
    assert after["main.c"]["deps"] == ["main.a"]
    assert after["main.a"]["columns"] == [
        {"name": "id", "type": "INTEGER"},
        {"name": "label", "type": "VARCHAR"},
    ]
    # dbt does not know the edge: sqlorch runs the two in separate invocations, in order
    ok(run_cli(project.path, "build", "--full", "--threads", "2"))
    events = ok(run_cli(project.path, "logs", "--json")).json_lines()
    done_a = next(
        i
        for i, e in enumerate(events)
        if e["kind"] == "asset_materialized" and e["asset"] == "main.a"
    )
    start_c = next(
        i for i, e in enumerate(events) if e["kind"] == "asset_started" and e["asset"] == "main.c"
    )
    assert done_a < start_c
    assert sum(1 for e in events if e["kind"] == "dbt_invocation_started") == 2

    doc = ok(run_cli(project.path, "lineage", "main.c", "--json")).json()
    assert doc["hidden_dependencies"] == ["main.a", "legacy.codes"]
    cols = {c["name"]: c["upstream"] for c in doc["columns"]}
    assert cols["code"] == [{"column": "legacy.codes.code", "transform": "copy"}]
    assert cols["label"] == [{"column": "main.a.label", "transform": "copy"}]


def test_editing_the_model_drops_a_stale_hidden_edge(make_dbt_project: Make) -> None:
    project = make_dbt_project(HIDDEN)
    _legacy_table(project.db)
    ok(run_cli(project.path, "build", "-s", "a"))
    ok(run_cli(project.path, "build", "-s", "c"))
    assert {a["key"]: a for a in ok(run_cli(project.path, "ls", "--json")).json()}["main.c"][
        "deps"
    ] == ["main.a"]
    project.write({"models/c.sql": "select 2 as id\n"})
    assets = {a["key"]: a for a in ok(run_cli(project.path, "ls", "--json")).json()}
    assert assets["main.c"]["deps"] == []


@contextmanager
def holding_the_file(db: Path) -> Iterator[None]:
    """Keep `db` open for writing in another process (as a running build does)."""
    code = textwrap.dedent(
        f"""
        import duckdb, sys, time
        con = duckdb.connect({str(db)!r})
        print("ready", flush=True)
        sys.stdin.read()
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        yield
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(timeout=60)


def test_lineage_while_another_process_holds_the_warehouse(make_dbt_project: Make) -> None:
    # subprocesses only: this test process may keep dbt-duckdb's connection to a file open
    project = make_dbt_project(
        {
            "models/a.sql": "{{ config(materialized='table') }}\nselect 1 as id, 2 as v\n",
            "models/b.sql": "select id, v * 2 as v2 from {{ ref('a') }}\n",
        }
    )
    ok(run_cli_subprocess(project.path, "build"))
    # a changed model needs compiling, which opens no connection to the file (dbt compile
    # without the adapter cache): its lineage is there; the column types are not
    project.write({"models/b.sql": "select id, v * 3 as v3 from {{ ref('a') }}\n"})
    with holding_the_file(project.db):
        cached = ok(run_cli_subprocess(project.path, "lineage", "main.a.id", "--json")).json()
        assert cached == {"column": "main.a.id", "kind": "model", "upstream": []}
        changed = ok(run_cli_subprocess(project.path, "lineage", "main.b", "--json"))
        assert changed.json()["columns"][1]["upstream"] == [
            {"column": "main.a.v", "transform": "expression"}
        ]
        assert "columns come from dbt yml and the models' SQL" in changed.flat
    after = ok(run_cli_subprocess(project.path, "lineage", "main.b", "--json")).json()
    assert after["columns"][1] == {
        "name": "v3",
        "type": None,
        "upstream": [{"column": "main.a.v", "transform": "expression"}],
        "error": None,
    }


def test_sql_sqlglot_cannot_read_never_fails_a_build(make_dbt_project: Make) -> None:
    project = make_dbt_project(
        {
            "models/odd.sql": "{{ config(materialized='table') }}\n"
            "pivot (select 1 as k, 'a' as name, 2 as v) on name using sum(v)\n",
            "models/after.sql": "select * from {{ ref('odd') }}\n",
        }
    )
    ok(run_cli(project.path, "build"))
    doc = ok(run_cli(project.path, "lineage", "main.odd", "--json")).json()
    assert doc["error"] or all(c["error"] is None for c in doc["columns"])
    after = ok(run_cli(project.path, "lineage", "main.after", "--json")).json()
    # its columns are the warehouse's, whatever sqlglot made of `odd`
    assert [c["name"] for c in after["columns"]] == ["k", "a"]


def test_lineage_cache_is_reused(make_dbt_project: Make) -> None:
    project = make_dbt_project(
        {
            "models/a.sql": "select 1 as id\n",
            "models/b.sql": "select id + 1 as id2 from {{ ref('a') }}\n",
        }
    )
    first = ok(run_cli(project.path, "lineage", "main.b.id2", "--json")).json()
    cache = json.loads((project.path / ".sqlorch/lineage/lineage.json").read_text())
    assert set(cache["assets"]) == {"main.a", "main.b"}
    stamp = (project.path / ".sqlorch/lineage/lineage.json").stat().st_mtime_ns
    second = ok(run_cli(project.path, "lineage", "main.b.id2", "--json")).json()
    assert first == second
    assert (project.path / ".sqlorch/lineage/lineage.json").stat().st_mtime_ns == stamp
    assert second["upstream"] == [
        {"column": "main.a.id", "transform": "expression", "kind": "model", "upstream": []}
    ]


# --------------------------------------------------------------------------- diff and impact

CHAIN = {
    "models/a.sql": "{{ config(materialized='table') }}\nselect 1 as id, 10 as amount\n",
    "models/b.sql": "{{ config(materialized='table') }}\n"
    "select id, amount * 2 as doubled from {{ ref('a') }}\n",
    "models/c.sql": "{{ config(materialized='table') }}\nselect id from {{ ref('b') }}\n",
}


def _diff(project: Path) -> dict[str, Any]:
    return {c["key"]: c for c in ok(run_cli(project, "diff", "--json")).json()["changes"]}


def _planned(project: Path, *args: str) -> list[str]:
    result = ok(run_cli(project, "build", "--dry-run", "--json", *args))
    return [s["key"] for s in result.json()["steps"]]


def test_diff_tells_breaking_from_non_breaking(make_dbt_project: Make) -> None:
    project = make_dbt_project(CHAIN)
    assert _diff(project.path)["main.a"]["status"] == "new"
    ok(run_cli(project.path, "build"))
    assert _diff(project.path) == {}
    assert "No model changed" in ok(run_cli(project.path, "diff")).stdout

    # a column added: non-breaking, nothing downstream affected, downstream can be skipped
    project.write(
        {
            "models/a.sql": "{{ config(materialized='table') }}\nselect 1 as id, 10 as amount, "
            "'x' as note\n"
        }
    )
    change = _diff(project.path)["main.a"]
    assert (change["status"], change["breaking"], change["added"]) == ("modified", False, ["note"])
    assert change["affected"] == []
    assert _planned(project.path, "-s", "a+") == ["main.a", "main.b", "main.c"]
    assert _planned(project.path, "-s", "a+", "--skip-non-breaking") == ["main.a"]

    # a derivation changed: breaking; b.doubled is affected, c is not (it reads only b.id)
    project.write(
        {"models/a.sql": "{{ config(materialized='table') }}\nselect 1 as id, 10 * 100 as amount\n"}
    )
    change = _diff(project.path)["main.a"]
    assert change["breaking"] and change["modified"] == ["amount"]
    assert change["affected"] == ["main.b.doubled"]
    assert _planned(project.path, "-s", "a+", "--skip-non-breaking") == ["main.a", "main.b"]
    text = ok(run_cli(project.path, "diff")).stdout
    assert "breaking" in text and "main.b.doubled" in text

    # a rename: breaking
    project.write(
        {"models/a.sql": "{{ config(materialized='table') }}\nselect 1 as id, 10 as amt\n"}
    )
    change = _diff(project.path)["main.a"]
    assert change["breaking"]
    assert change["renamed"] == [{"from": "amount", "to": "amt"}]

    # a filter: every row may differ, so every column downstream is affected
    project.write(
        {
            "models/a.sql": "{{ config(materialized='table') }}\n"
            "select * from (select 1 as id, 10 as amount) where id > 0\n"
        }
    )
    change = _diff(project.path)["main.a"]
    assert change["breaking"] and change["keys_changed"], json.dumps(change)
    assert set(change["affected"]) == {"main.b.id", "main.b.doubled", "main.c.id"}


def test_skip_non_breaking_keeps_assets_fed_by_something_else(make_dbt_project: Make) -> None:
    project = make_dbt_project(
        {
            **CHAIN,
            "models/c.sql": "{{ config(materialized='table') }}\n"
            "select b.id, s.n from {{ ref('b') }} as b cross join {{ ref('s') }} as s\n",
            "seeds/s.csv": "n\n1\n",
        }
    )
    ok(run_cli(project.path, "build"))
    project.write(
        {
            "models/a.sql": "{{ config(materialized='table') }}\nselect 1 as id, 10 as amount, "
            "2 as extra\n"
        }
    )
    # only the change is stale: b and c are skipped
    assert _planned(project.path, "--skip-non-breaking") == ["main.a"]
    # c is downstream of the seed too, which a --full build reloads: c stays, b does not
    assert _planned(project.path, "--full", "--skip-non-breaking") == [
        "main.a",
        "main.s",
        "main.c",
    ]
