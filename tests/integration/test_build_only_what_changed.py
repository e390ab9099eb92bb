"""Build only what changed, on real dbt projects: edits, macros, vars, formatting, dropped
tables, a deleted database, failures, `retry`, state selectors and the manifest cache."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import TinyProject, clean_environ, query, run_cli, run_cli_subprocess

pytestmark = pytest.mark.dbt

Make = Callable[..., TinyProject]

FILES = {
    "dbt_project.yml": """
        name: tiny
        version: "1.0.0"
        config-version: 2
        profile: tiny
        model-paths: [models]
        macro-paths: [macros]
        vars:
          region: us
    """,
    "macros/money.sql": """
        {% macro cents(col) %}({{ col }} / 100.0){% endmacro %}
        {% macro label(col) %}'{{ var("region") }}-' || {{ col }}{% endmacro %}
    """,
    "models/a.sql": "select 1 as x\n",
    "models/b.sql": """
        {{ config(materialized='table') }}
        select x, {{ cents('x') }} as c from {{ ref('a') }}
    """,
    "models/c.sql": """
        {{ config(materialized='table') }}
        select x, {{ cents('x') }} as c, {{ label("'x'") }} as region from {{ ref('a') }}
    """,
    "models/d.sql": "select * from {{ ref('b') }}\n",
    "models/e.sql": "{{ config(materialized='table') }}\nselect 2 as z\n",
}
ALL = {"main.a", "main.b", "main.c", "main.d", "main.e"}


def ok(result: Any) -> Any:
    assert result.exit_code == 0 and result.exception is None, result.describe()
    return result


def plan(project: Path, *args: str) -> dict[str, list[str]]:
    """key -> reasons of `build --dry-run --json ARGS`."""
    doc = ok(run_cli(project, "build", "--dry-run", "--json", *args)).json()
    return {s["key"]: s["reasons"] for s in doc["steps"]}


def build(project: Path, *args: str) -> set[str]:
    """Run `build ARGS` and return the keys it materialized (empty when it ran nothing)."""
    before = ok(run_cli(project, "runs", "--json")).json()
    result = run_cli(project, "build", *args)
    assert result.exception is None, result.describe()
    after = ok(run_cli(project, "runs", "--json")).json()
    if len(after) == len(before):
        assert "0 assets stale" in result.stdout, result.describe()
        return set()
    events = ok(run_cli(project, "logs", after[0]["run_id"], "--json")).json_lines()
    return {e["asset"] for e in events if e["kind"] == "asset_materialized"}


@pytest.fixture
def tiny(make_dbt_project: Make) -> TinyProject:
    project = make_dbt_project(FILES)
    assert build(project.path) == ALL
    return project


def test_a_second_build_does_nothing_and_says_so(tiny: TinyProject) -> None:
    result = ok(run_cli(tiny.path, "build"))
    assert "0 assets stale: nothing to do (5 selected assets are up to date)" in result.flat
    assert len(ok(run_cli(tiny.path, "runs", "--json")).json()) == 1
    status = ok(run_cli(tiny.path, "status", "--json")).json()
    assert {s["key"]: s["stale"] for s in status} == dict.fromkeys(ALL, False)
    assert all(s["reasons"] == [] for s in status)


def test_editing_a_model_rebuilds_it_and_its_downstream_only(tiny: TinyProject) -> None:
    tiny.write({"models/b.sql": FILES["models/b.sql"].replace("as c", "as c, 7 as seven")})
    assert plan(tiny.path) == {
        "main.b": ["code changed (models/b.sql)"],
        "main.d": ["upstream main.b is stale"],
    }
    status = {s["key"]: s for s in ok(run_cli(tiny.path, "status", "--json")).json()}
    assert status["main.b"]["stale"] and status["main.b"]["reasons"] == [
        "code changed (models/b.sql)"
    ]
    assert not status["main.c"]["stale"]
    assert build(tiny.path) == {"main.b", "main.d"}
    assert query(tiny.db, "select seven from main.d") == [(7,)]
    assert build(tiny.path) == set()


def test_editing_a_macro_rebuilds_every_model_that_calls_it(tiny: TinyProject) -> None:
    tiny.write({"macros/money.sql": FILES["macros/money.sql"].replace("100.0", "1000.0")})
    reasons = plan(tiny.path)
    assert set(reasons) == {"main.b", "main.c", "main.d"}
    assert reasons["main.b"] == ["macro cents changed"]
    assert reasons["main.c"] == ["macro cents changed"]
    assert build(tiny.path) == {"main.b", "main.c", "main.d"}
    assert query(tiny.db, "select c from main.b") == [(0.001,)]


def test_changing_a_var_rebuilds_the_models_that_read_it(tiny: TinyProject) -> None:
    tiny.write({"dbt_project.yml": FILES["dbt_project.yml"].replace("region: us", "region: eu")})
    # c reads the var through the macro `label`, not in its own SQL
    assert plan(tiny.path) == {"main.c": ["var region changed"]}
    assert build(tiny.path) == {"main.c"}
    assert query(tiny.db, "select region from main.c") == [("eu-x",)]


def test_touching_or_reformatting_files_rebuilds_nothing(tiny: TinyProject) -> None:
    for rel in ("models/b.sql", "macros/money.sql", "dbt_project.yml"):
        os.utime(tiny.path / rel)
    assert plan(tiny.path) == {}
    tiny.write(
        {
            "models/b.sql": """
                -- the same model, reformatted and commented
                {{ config( materialized = 'table' ) }}
                {# a Jinja comment #}
                select
                    x,
                    {{ cents('x') }}   as c   /* cents */
                from {{ ref('a') }}
            """,
        }
    )
    assert plan(tiny.path) == {}
    assert build(tiny.path) == set()


def test_a_table_dropped_by_hand_is_rebuilt(tiny: TinyProject) -> None:
    query(tiny.db, "drop table main.e")
    assert plan(tiny.path) == {"main.e": ["table missing"]}
    assert build(tiny.path) == {"main.e"}
    assert query(tiny.db, "select z from main.e") == [(2,)]


def test_deleting_the_database_rebuilds_everything(make_dbt_project: Make) -> None:
    # a process per command: a process that still has the old file open keeps writing to it
    project = make_dbt_project(FILES)
    assert ok(run_cli_subprocess(project.path, "build")).exit_code == 0
    project.db.unlink()
    doc = ok(run_cli_subprocess(project.path, "build", "--dry-run", "--json")).json()
    assert {s["key"]: s["reasons"] for s in doc["steps"]} == dict.fromkeys(
        ALL, ["table missing"]
    ) | {"main.d": ["table missing"]}
    ok(run_cli_subprocess(project.path, "build"))
    assert query(project.db, "select count(*) from main.d") == [(1,)]
    assert "0 assets stale" in ok(run_cli_subprocess(project.path, "build")).stdout


FLAKY = """
from pathlib import Path
from sqlorch import asset

FLAG = Path(__file__).parent / "fail.flag"


@asset(schema="raw")
def numbers():
    import pyarrow as pa

    if FLAG.exists():
        raise RuntimeError("the source API is down")
    return pa.table({"n": [1, 2, 3]})
"""


def test_a_failed_asset_is_retried_by_the_next_build_and_by_retry(
    make_dbt_project: Make,
) -> None:
    files = {
        "models/sources.yml": """
            version: 2
            sources:
              - name: raw
                schema: raw
                tables: [{name: numbers}]
        """,
        "models/total.sql": "select sum(n) as total from {{ source('raw', 'numbers') }}\n",
        "models/other.sql": "{{ config(materialized='table') }}\nselect 1 as one\n",
    }
    project = make_dbt_project(files, {"ingest/assets.py": FLAKY})
    flag = project.path / "ingest" / "fail.flag"
    flag.write_text("")
    result = run_cli(project.path, "build")
    assert result.exit_code == 1, result.describe()
    # the next build retries the failed asset and what it skipped, not what succeeded
    reasons = plan(project.path)
    assert reasons == {
        "raw.numbers": [reasons["raw.numbers"][0]],
        "main.total": ["never materialized"],
    }
    assert reasons["raw.numbers"][0].startswith("never materialized; last attempt failed (run ")
    failed_run = ok(run_cli(project.path, "runs", "--json")).json()[0]["run_id"]
    retry = ok(run_cli(project.path, "retry", "--dry-run", "--json")).json()
    assert {s["key"]: s["reasons"][0] for s in retry["steps"]} == {
        "raw.numbers": f"failed in run {failed_run}",
        "main.total": f"skipped in run {failed_run}",
    }
    assert (
        ok(run_cli(project.path, "build", "-s", "result:error", "--dry-run", "--json")).json()[
            "steps"
        ][0]["key"]
        == "raw.numbers"
    )
    flag.unlink()
    ok(run_cli(project.path, "retry", failed_run[:12]))
    assert query(project.db, "select total from main.total") == [(6,)]
    last = ok(run_cli(project.path, "runs", "--json")).json()[0]
    assert last["command"] == "retry" and last["assets"]["succeeded"] == 2
    assert "nothing to retry" in ok(run_cli(project.path, "retry")).stdout
    assert build(project.path) == set()


def test_state_selectors(tiny: TinyProject) -> None:
    tiny.write({"models/b.sql": FILES["models/b.sql"].replace("as c", "as c, 1 as one")})
    assert set(plan(tiny.path, "-s", "state:modified")) == {"main.b"}
    assert set(plan(tiny.path, "-s", "state:modified+")) == {"main.b", "main.d"}
    assert set(plan(tiny.path, "-s", "state:stale", "--full")) == {"main.b", "main.d"}
    status = ok(run_cli(tiny.path, "status", "-s", "state:stale", "--json")).json()
    assert {s["key"] for s in status} == {"main.b", "main.d"}
    assert build(tiny.path, "-s", "b") == {"main.b"}
    # d was not selected: its upstream is now newer
    assert set(plan(tiny.path, "-s", "source_status:fresher")) == {"main.d"}
    reasons = plan(tiny.path)
    assert list(reasons) == ["main.d"]
    assert reasons["main.d"][0].startswith("upstream main.b materialized ")
    bad = run_cli(tiny.path, "build", "-s", "state:changed")
    assert bad.exit_code == 2 and "state:modified" in bad.flat


def _imported_modules(project: Path, *args: str) -> tuple[set[str], str]:
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "sqlorch.cli", *args],
        cwd=project,
        env=clean_environ(),
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    modules = set()
    for line in proc.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            modules.add(line.rsplit("|", 1)[1].strip())
    return modules, proc.stdout


def test_the_no_op_path_does_not_import_dbt(tiny: TinyProject) -> None:
    for args in (["build"], ["status"], ["ls"], ["build", "--dry-run"]):
        modules, out = _imported_modules(tiny.path, *args)
        assert modules, "no -X importtime output"
        assert not {m for m in modules if m == "dbt" or m.startswith("dbt.")}, args
        assert "sqlglot" not in modules
    assert "0 assets stale" in out or "Plan: 0 assets" in out
    # an edit re-parses (dbt is imported) and the next call is cached again
    tiny.write({"models/e.sql": "{{ config(materialized='table') }}\nselect 3 as z\n"})
    modules, out = _imported_modules(tiny.path, "build", "--dry-run")
    assert "dbt.cli.main" in modules and "main.e" in out
    modules, _ = _imported_modules(tiny.path, "build", "--dry-run")
    assert "dbt.cli.main" not in modules
    # touching files (a fresh checkout) changes times, not content: still no parse
    for path in (tiny.path / "models").iterdir():
        os.utime(path)
    modules, _ = _imported_modules(tiny.path, "status")
    assert "dbt.cli.main" not in modules
    # a new file is an input too
    tiny.write({"models/f.sql": "select 5 as f\n"})
    modules, out = _imported_modules(tiny.path, "ls")
    assert "dbt.cli.main" in modules and "main.f" in out


def test_an_observed_source_with_loaded_at_field_makes_downstream_stale(
    make_dbt_project: Make,
) -> None:
    project = make_dbt_project(
        {
            "models/sources.yml": """
                version: 2
                sources:
                  - name: ext
                    schema: ext
                    tables:
                      - name: events
                        loaded_at_field: loaded_at
                      - name: plain
            """,
            "models/latest.sql": """
                {{ config(materialized='table') }}
                select count(*) as n from {{ source('ext', 'events') }}
            """,
            "models/plain_count.sql": """
                {{ config(materialized='table') }}
                select count(*) as n from {{ source('ext', 'plain') }}
            """,
        }
    )
    query(
        project.db,
        "create schema ext; "
        "create table ext.events as select 1 as id, now() - interval 1 day as loaded_at; "
        "create table ext.plain as select 1 as id",
    )
    assert build(project.path) == {"main.latest", "main.plain_count"}
    assert plan(project.path) == {}
    # rows arrive behind sqlorch's back: only a source that says when rows arrive is seen
    query(project.db, "insert into ext.events select 2, now() + interval 1 minute")
    query(project.db, "insert into ext.plain select 2")
    reasons = plan(project.path)
    assert list(reasons) == ["main.latest"]
    assert reasons["main.latest"][0].startswith("source ext.events received rows ")
    assert set(plan(project.path, "-s", "source_status:fresher")) == {"main.latest"}
    assert build(project.path) == {"main.latest"}
    assert query(project.db, "select n from main.latest") == [(2,)]


RATED = """
import pyarrow as pa

from sqlorch import AssetContext, asset, daily


@asset(schema="raw")
def rates() -> pa.Table:
    return pa.table({"rate": [2]})


@asset(
    schema="raw",
    deps=["raw.rates"],
    partitions=daily("2024-01-01", end="2024-01-04", column="d"),
)
def sales(context: AssetContext) -> pa.Table:
    (rate,) = context.warehouse.connection.execute("select rate from raw.rates").fetchone()
    day = context.partition.start.date()
    return pa.table({"d": pa.array([day], pa.date32()), "amount": [10 * rate]})
"""


def test_partitions_of_an_asset_read_every_unpartitioned_upstream(
    make_dbt_project: Make,
) -> None:
    project = make_dbt_project({"models/one.sql": "select 1 as one\n"}, {"ingest/a.py": RATED})
    assert build(project.path) == {"raw.rates", "raw.sales", "main.one"}
    assert query(project.db, "select count(*), sum(amount) from raw.sales") == [(3, 60)]
    assert build(project.path) == set()

    # the upstream's code changes: it is rebuilt, and so is every partition that reads it
    project.write({"ingest/a.py": RATED.replace("[2]", "[3]")})
    doc = ok(run_cli(project.path, "build", "--dry-run", "--json")).json()
    steps = {s["key"]: s for s in doc["steps"]}
    assert set(steps) == {"raw.rates", "raw.sales"}
    assert steps["raw.sales"]["partitions"] == [["2024-01-01", "2024-01-03"]]
    assert any("raw.rates" in r for r in steps["raw.sales"]["reasons"]), steps["raw.sales"]
    build(project.path)
    assert query(project.db, "select count(*), sum(amount) from raw.sales") == [(3, 90)]
    assert build(project.path) == set()

    # the upstream alone is rebuilt: the partitions are older than it now
    build(project.path, "--full", "-s", "raw.rates")
    doc = ok(run_cli(project.path, "build", "--dry-run", "--json")).json()
    assert [(s["key"], s["partitions"]) for s in doc["steps"]] == [
        ("raw.sales", [["2024-01-01", "2024-01-03"]])
    ]
