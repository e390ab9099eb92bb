"""Native execution (issue 16): sqlorch runs dbt's compiled SQL for view, table and data tests.

A twin project holds a model of each natively executed kind (view, table, each over an
ephemeral model, an incremental model, two seeds) and of the kinds dbt keeps (a post-hook,
an enforced contract), with tests of each kind: generic (unique, not_null,
accepted_values with severity warn, relationships), singular, with `limit`, `fail_calc`,
`warn_if`/`error_if`, `where` and `store_failures`. It is built by plain `dbt build` and by
`sqlorch build`, and the relations compared; `sqlorch verify` compares both ways itself.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import (
    TinyProject,
    clean_environ,
    query,
    run_cli,
    run_dbt,
    scalar,
)

pytestmark = pytest.mark.dbt

Make = Callable[..., TinyProject]
TABLE = "{{ config(materialized='table') }}\n"

TWIN_FILES = {
    "seeds/people.csv": """
        id,name,team_id
        1,Ann,10
        2,Bob,10
        3,Cid,20
        4,Dee,30
    """,
    "seeds/teams.csv": """
        id,label
        10,red
        20,blue
        30,green
    """,
    "models/staging/stg_people.sql": """
        {{ config(materialized='ephemeral') }}
        select id, upper(name) as name, team_id from {{ ref('people') }}
    """,
    "models/people_view.sql": """
        {{ config(materialized='view') }}
        select p.id, p.name, t.label as team from {{ ref('stg_people') }} p
        join {{ ref('teams') }} t on t.id = p.team_id
    """,
    "models/people_table.sql": """
        {{ config(materialized='table') }}
        select team, count(*)::integer as people, list(name order by name) as names,
               sum(id)::decimal(10, 2) as id_sum
        from {{ ref('people_view') }} group by team
    """,
    "models/hooked.sql": """
        {{ config(materialized='table',
                  post_hook="create or replace table main.hook_ran as select 1 as x") }}
        select * from {{ ref('people_table') }}
    """,
    "models/contracted.sql": """
        {{ config(materialized='table', contract={'enforced': true}) }}
        select team::varchar as team, people::integer as people from {{ ref('people_table') }}
    """,
    "models/growing.sql": """
        {{ config(materialized='incremental', unique_key='id') }}
        select id, name from {{ ref('people_view') }}
    """,
    "models/after_table.sql": """
        {{ config(materialized='table') }}
        select team, people * 2 as doubled from {{ ref('people_table') }}
    """,
    "models/schema.yml": """
        version: 2
        models:
          - name: people_view
            columns:
              - name: id
                data_tests: [unique, not_null]
              - name: team
                data_tests:
                  - accepted_values:
                      arguments:
                        values: [red, blue]
                      config:
                        severity: warn
          - name: people_table
            columns:
              - name: team
                data_tests:
                  - unique
                  - relationships:
                      arguments:
                        to: ref('people_view')
                        field: team
                  - not_null:
                      config:
                        where: "people > 1"
              - name: people
                data_tests:
                  - accepted_values:
                      arguments:
                        values: [1]
                      config:
                        severity: error
                        warn_if: ">= 1"
                        error_if: ">= 5"
                        store_failures: true
                        limit: 1
          - name: contracted
            config:
              contract:
                enforced: true
            columns:
              - name: team
                data_type: varchar
              - name: people
                data_type: integer
    """,
    "dbt_tests/no_big_teams.sql": """
        {{ config(fail_calc='coalesce(max(people), 0)', warn_if='> 1', error_if='> 9') }}
        select people from {{ ref('people_table') }}
    """,
}


def ok(result: Any) -> Any:
    assert result.exit_code == 0 and result.exception is None, result.describe()
    return result


def events(project: Path) -> list[dict[str, Any]]:
    return list(ok(run_cli(project, "logs", "--json")).json_lines())


def native_keys(evs: list[dict[str, Any]]) -> list[str]:
    """The models the run's native batches executed."""
    return [
        k
        for e in evs
        if e["kind"] == "dbt_invocation_finished"
        and str(e["data"].get("args", [""])[0]).startswith("sqlorch: native")
        for k in e["data"]["args"][1:]
    ]


def relations(db: Path, schemas: tuple[str, ...] = ("main", "main_dbt_test__audit")) -> dict:
    """Every relation's kind, columns (name, type) and rows, in sorted order."""
    out = {}
    for schema, name, kind in query(
        db,
        "select table_schema, table_name, table_type from information_schema.tables "
        "where table_schema in (select unnest(?)) order by 1, 2",
        [list(schemas)],
    ):
        cols = query(
            db,
            "select column_name, data_type from information_schema.columns "
            "where table_schema = ? and table_name = ? order by ordinal_position",
            [schema, name],
        )
        rows = sorted(map(repr, query(db, f'select * from "{schema}"."{name}"')))
        out[f"{schema}.{name}"] = (kind, cols, rows)
    return out


@pytest.fixture
def twins(make_dbt_project: Make) -> tuple[TinyProject, TinyProject]:
    """The twin project twice: one for plain dbt, one for sqlorch."""
    return make_dbt_project(TWIN_FILES, name="twin", folder="dbt"), make_dbt_project(
        TWIN_FILES, name="twin", folder="sqlorch"
    )


def test_native_build_equals_plain_dbt_build(twins: tuple[TinyProject, TinyProject]) -> None:
    by_dbt, by_sqlorch = twins
    done = run_dbt(by_dbt.path, "build")
    # the accepted_values test on people_view warns; every error-severity test passes
    assert done.returncode == 0, done.stdout[-3000:]
    ok(run_cli(by_sqlorch.path, "build"))
    evs = events(by_sqlorch.path)
    assert sorted(native_keys(evs)) == [
        "main.after_table",
        "main.growing",
        "main.people",
        "main.people_table",
        "main.people_view",
        "main.teams",
    ]
    because = {
        k: v
        for e in evs
        if e["kind"] == "dbt_invocation_started"
        for k, v in e["data"].get("dbt_runs_because", {}).items()
    }
    assert because["main.hooked"] == "dbt: has post-hook"
    assert because["main.contracted"] == "dbt: contract enforced"
    # relations, column types, rows: the same both ways, the failures table included
    dbt_rel = relations(by_dbt.db)
    assert relations(by_sqlorch.db) == dbt_rel
    assert "main_dbt_test__audit.accepted_values_people_table_people__1" in dbt_rel
    assert scalar(by_sqlorch.db, "select x from main.hook_ran") == 1
    # the tests' outcomes as dbt reported them
    checks = {e["data"].get("check", e["message"]): e["kind"] for e in evs if "check" in e["kind"]}
    assert "check_warned" in checks.values()
    assert "check_failed" not in checks.values()
    # a second build does nothing, and a --full rebuild imports no dbt (all compiled SQL cached)
    native = "people teams people_view people_table after_table"
    assert not_imported_dbt(by_sqlorch.path, "build", "--full", "-s", native)


def not_imported_dbt(project: Path, *args: str) -> bool:
    """Run the CLI in a fresh process; True when it succeeded without importing dbt."""
    code = (
        "import sys\n"
        "from sqlorch.cli import cli\n"
        "try:\n"
        f"    cli({[*args, '--project-dir', str(project)]!r}, prog_name='sqlorch')\n"
        "except SystemExit as exc:\n"
        "    assert not exc.code, exc.code\n"
        "dbt = any(m == 'dbt' or m.startswith('dbt.') for m in sys.modules)\n"
        "print('DBT' if dbt else 'NODBT')\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=project,
        env=clean_environ(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout.strip().splitlines()[-1] == "NODBT"


def test_editing_one_model_compiles_only_that_model(make_dbt_project: Make) -> None:
    project = make_dbt_project(TWIN_FILES, name="twin")
    ok(run_cli(project.path, "build"))
    view = project.path / "models" / "people_view.sql"
    view.write_text(view.read_text().replace("upper", "lower").replace("p.name", "p.name"))
    (project.path / "models" / "after_table.sql").write_text(
        "{{ config(materialized='table') }}\nselect team, people * 3 as tripled "
        "from {{ ref('people_table') }}\n"
    )
    ok(run_cli(project.path, "build", "-s", "after_table"))
    compiles = [
        e["data"]
        for e in events(project.path)
        if e["kind"] == "dbt_invocation_finished" and e["data"].get("compile")
    ]
    assert [c["compiled"] for c in compiles] == [["main.after_table"]]
    tripled = query(project.db, "select tripled from main.after_table order by 1")
    assert tripled == [(3,), (3,), (6,)]


def test_failing_blocking_test_skips_downstream_and_a_failed_write_keeps_the_old_relation(
    make_dbt_project: Make,
) -> None:
    files = {
        "models/base.sql": TABLE + "select 1 as id union all select 2\n",
        "models/child.sql": TABLE + "select id from {{ ref('base') }}\n",
        "models/schema.yml": """
            version: 2
            models:
              - name: base
                columns:
                  - name: id
                    data_tests: [unique]
        """,
    }
    project = make_dbt_project(files)
    ok(run_cli(project.path, "build"))
    # a duplicate id: the blocking unique test fails, child is skipped as dbt would
    project.write({"models/base.sql": TABLE + "select 1 as id union all select 1\n"})
    result = run_cli(project.path, "build")
    assert result.exit_code == 1
    evs = events(project.path)
    kinds = {(e["kind"], e["asset"]) for e in evs}
    assert ("check_failed", "main.base") in kinds
    assert ("asset_skipped", "main.child") in kinds
    assert native_keys(evs) == ["main.base", "main.child"]
    assert query(project.db, "select id from main.child order by 1") == [(1,), (2,)]
    # a runtime error: the old table stays, whole
    bad = TABLE + "select cast('x' || id as integer) as id from {{ ref('base') }}\n"
    project.write({"models/child.sql": bad})
    project.write({"models/base.sql": files["models/base.sql"]})
    result = run_cli(project.path, "build")
    assert result.exit_code == 1
    assert "Could not convert" in result.output, result.describe()
    assert query(project.db, "select id from main.child order by 1") == [(1,), (2,)]
    tables = [r[0] for r in query(project.db, "select table_name from information_schema.tables")]
    assert not [t for t in tables if "__dbt_" in t]


def test_execution_settings_fall_back_to_dbt(make_dbt_project: Make) -> None:
    files = {
        "models/a.sql": "{{ config(materialized='table') }}\nselect 1 as id\n",
        "models/b.sql": "{{ config(materialized='table', tags=['legacy']) }}\n"
        "select * from {{ ref('a') }}\n",
        "models/c.sql": "{{ config(materialized='view', meta={'sqlorch': {'execution': 'dbt'}})"
        " }}\n"
        "select * from {{ ref('b') }}\n",
    }
    project = make_dbt_project(files)
    project.write({"sqlorch.toml": '[execution]\ndefault = "native"\n"tag:legacy" = "dbt"\n'})
    plan = ok(run_cli(project.path, "build", "--dry-run", "--json")).json()
    how = {s["key"]: s["execution"] for s in plan["steps"]}
    assert how == {
        "main.a": "native",
        "main.b": "dbt: execution = 'dbt' for 'tag:legacy' (settings)",
        "main.c": "dbt: meta.sqlorch.execution is 'dbt'",
    }
    text = ok(run_cli(project.path, "build", "--dry-run")).flat
    assert "execution: native" in text and "execution: dbt: meta.sqlorch.execution" in text
    project.write({"sqlorch.toml": 'execution = "dbt"\n'})
    ok(run_cli(project.path, "build"))
    assert native_keys(events(project.path)) == []
    assert scalar(project.db, "select id from main.c") == 1
    project.write({"sqlorch.toml": 'execution = "sometimes"\n'})
    result = run_cli(project.path, "build")
    assert result.exit_code == 2 and "execution" in result.output, result.describe()


def test_verify_reports_same_on_the_twins_and_a_difference_when_there_is_one(
    make_dbt_project: Make, tmp_path: Path
) -> None:
    project = make_dbt_project(TWIN_FILES, name="twin")
    ok(run_cli(project.path, "build", "-s", "people teams"))  # the seeds: verify's sources
    doc = ok(run_cli(project.path, "verify", "--json")).json()
    assert doc["same"] is True, doc
    models = {m["key"]: m for m in doc["models"]}
    assert models["main.people_table"]["execution"] == "native"
    assert models["main.people_view"]["kind"] == "view"
    assert models["main.hooked"]["execution"] == "dbt: has post-hook"
    assert len(doc["tests"]) == 8  # 7 generic tests and the singular one
    # the comparison itself sees a difference in content, type and row count
    import duckdb

    from sqlorch.app.verify import _differences, relation_facts

    a, b = tmp_path / "a.duckdb", tmp_path / "b.duckdb"
    two = "select 1 as x union all select"
    for path, sql in ((a, f"{two} 2"), (b, f"{two} 3")):
        con = duckdb.connect(str(path))
        con.execute(f"create table t as {sql}")
        con.execute("create table u as select 1::integer as x")
        con.close()
    con = duckdb.connect(str(b))
    con.execute("create or replace table u as select 1::bigint as x union all select 1")
    con.close()
    con = duckdb.connect()
    con.execute(f"attach '{a}' as a (read_only)")
    con.execute(f"attach '{b}' as b (read_only)")
    t = _differences(relation_facts(con, "a", "main", "t"), relation_facts(con, "b", "main", "t"))
    u = _differences(relation_facts(con, "a", "main", "u"), relation_facts(con, "b", "main", "u"))
    assert t == ("contents differ (same row count)",)
    assert u[0].startswith("columns differ") and u[1] == "rows differ: dbt 1, native 2"


def test_verify_on_the_example_project(built_example: Any) -> None:
    # the example's dbt nodes (staging views, partitioned incremental facts, marts), built
    # both ways from the warehouse as the session's build left it: the same relations
    doc = ok(built_example.cli("verify", "--json")).json()
    assert doc["same"] is True, json.dumps(doc, indent=1)[:4000]
    how = {m["key"]: m["execution"] for m in doc["models"]}
    assert "native" in how.values(), how
    assert all(m["rows"] is not None for m in doc["models"]), doc["models"]
    # the project's own state was not touched: a build after verify has nothing to do
    assert "0 assets stale" in ok(built_example.cli("build")).output
