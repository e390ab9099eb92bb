"""A dlt source as assets: one per table, built, recorded, bound to dbt sources; incremental
loads, schema changes and failing loads, with real dlt and real DuckDB."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from conftest import TinyProject, query, run_cli, scalar
from dlt_helpers import MODEL, SOURCE, SOURCES_YML, dlt_project, event, ok, status, write_lines

__all__ = ["dlt_project"]  # the fixture, imported for pytest

pytestmark = pytest.mark.dbt


def line_of(project: TinyProject, text: str) -> int:
    """The line of `text` in the project's ingest/loads.py."""
    lines = (project.path / "ingest/loads.py").read_text().splitlines()
    return next(n for n, line in enumerate(lines, 1) if text in line)


def ls(project: TinyProject) -> dict[str, dict[str, Any]]:
    return {a["key"]: a for a in ok(run_cli(project.path, "ls", "--json")).json()}


def materializations(project: TinyProject, key: str) -> list[dict[str, Any]]:
    events = ok(run_cli(project.path, "logs", "--json")).json_lines()
    return [e for e in events if e.get("kind") == "asset_materialized" and e.get("asset") == key]


def test_each_table_is_an_asset_built_and_recorded(dlt_project: TinyProject) -> None:
    assets = ls(dlt_project)
    assert {"raw.events", "raw.users", "main.enriched"} <= set(assets)
    assert assets["raw.events"]["kind"] == "python"
    assert "dlt" in assets["raw.events"]["tags"]
    # the dbt sources bind to the dlt tables: the model depends on them, no source nodes
    assert set(assets["main.enriched"]["deps"]) >= {"raw.events", "raw.users"}
    ok(run_cli(dlt_project.path, "build"))
    assert scalar(dlt_project.db, "select count(*) from raw.events") == 3
    assert scalar(dlt_project.db, "select count(*) from raw.events__tags") == 6
    assert scalar(dlt_project.db, "select count(*) from main.enriched where n_tags = 2") == 3
    st = status(dlt_project.path)
    assert st["raw.events"]["rows"] == 3 and st["raw.users"]["rows"] == 3
    # the nested child table a first load created is an asset from the next command on
    assets = ls(dlt_project)
    assert assets["raw.events__tags"]["kind"] == "python"
    assert "raw.events__tags" in assets["main.enriched"]["deps"]
    events = ok(run_cli(dlt_project.path, "logs", "--json")).json_lines()
    done = {e["asset"]: e for e in events if e.get("kind") == "asset_materialized"}
    meta = done["raw.events"]["data"]["metadata"]
    assert meta["rows_loaded"] == 3 and meta["dlt_load_id"]
    assert done["raw.users"]["data"]["metadata"]["dlt_load_id"] == meta["dlt_load_id"]
    # the load named the child table it created before it was an asset
    warned = [e["message"] for e in events if e.get("kind") == "asset_log"]
    assert any("raw.events__tags" in m and "next command" in m for m in warned), warned
    # dlt's state lives under .sqlorch/, written through sqlorch's connection
    assert (dlt_project.path / ".sqlorch/dlt/sqlorch_raw_files").is_dir()
    # one load writes every table: selecting one plans all of them
    plan = ok(
        run_cli(dlt_project.path, "build", "-s", "raw.users", "--full", "--dry-run", "--json")
    )
    steps = {s["key"]: s["reasons"] for s in plan.json()["steps"]}
    assert set(steps) == {"raw.users", "raw.events", "raw.events__tags"}
    assert steps["raw.events"] == ["loaded together with raw.users"]


def test_incremental_load_adds_only_new_rows_and_records_new_columns(
    dlt_project: TinyProject,
) -> None:
    ok(run_cli(dlt_project.path, "build"))
    first = query(dlt_project.db, "select _dlt_load_id from raw.events limit 1")[0][0]
    # new files: two new events (one with a new column), one already loaded (same cursor)
    write_lines(
        dlt_project.path / "data/events/day02.jsonl",
        [event(4, 2, channel="web"), event(5, 2)],
    )
    ok(run_cli(dlt_project.path, "build", "--full"))
    assert scalar(dlt_project.db, "select count(*) from raw.events") == 5
    loads = dict(query(dlt_project.db, "select id, _dlt_load_id from raw.events order by id"))
    assert loads[1] == first and loads[4] != first  # old rows were not reloaded
    assert scalar(dlt_project.db, "select channel from raw.events where id = 4") == "web"
    events = ok(run_cli(dlt_project.path, "logs", "--json")).json_lines()
    done = {e["asset"]: e for e in events if e.get("kind") == "asset_materialized"}
    meta = done["raw.events"]["data"]["metadata"]
    assert meta["rows_loaded"] == 2
    assert meta["schema_changes"] == {"new_columns": ["channel"]}
    assert done["raw.events__tags"]["data"]["metadata"]["rows_loaded"] == 4
    # the model downstream was rebuilt with the new rows
    assert scalar(dlt_project.db, "select count(*) from main.enriched") == 5


def test_a_failing_load_leaves_the_tables_intact(dlt_project: TinyProject) -> None:
    ok(run_cli(dlt_project.path, "build"))
    before = query(dlt_project.db, "select * from raw.events order by id")
    write_lines(
        dlt_project.path / "data/events/day03.jsonl",
        [event(6, 3), event(7, 3, boom=True)],
    )
    failed = run_cli(dlt_project.path, "build", "--full")
    assert failed.exit_code == 1, failed.describe()
    assert "ValueError: bad row 7" in failed.flat, failed.output
    declared, raised = (line_of(dlt_project, t) for t in ("dlt_assets(files()", "raise ValueError"))
    assert f"dlt assets 'files' (ingest/loads.py:{declared})" in failed.flat, failed.output
    assert f"extract step at ingest/loads.py:{raised}: ValueError" in failed.flat
    assert query(dlt_project.db, "select * from raw.events order by id") == before
    st = status(dlt_project.path)
    assert st["raw.events"]["stale"] and st["raw.users"]["stale"]
    # fixed: the next build loads what the failed one did not (its cursor did not advance)
    write_lines(dlt_project.path / "data/events/day03.jsonl", [event(6, 3), event(7, 3)])
    ok(run_cli(dlt_project.path, "build"))
    assert scalar(dlt_project.db, "select count(*) from raw.events") == 5


def test_the_one_line_setting_declares_a_source(
    make_dbt_project: Callable[..., TinyProject],
) -> None:
    source = SOURCE.replace("from sqlorch import dlt_assets\n", "").split("\n\nraw_files =")[0]
    project = make_dbt_project(
        {
            "models/sources.yml": SOURCES_YML,
            "models/enriched.sql": MODEL,
            "pyproject.toml": '[tool.sqlorch]\ndlt = {raw = "loaders.files:files"}\n',
        },
        {"loaders/files.py": source},
        name="dltset",
    )
    write_lines(project.path / "data/events/day01.jsonl", [event(1, 1), event(2, 1)])
    write_lines(project.path / "data/users/all.jsonl", [{"id": 1, "name": "u"}])
    assets = ls(project)
    assert assets["raw.events"]["file"] == "loaders/files.py"
    assert "raw.events" in assets["main.enriched"]["deps"]
    ok(run_cli(project.path, "build"))
    assert scalar(project.db, "select count(*) from main.enriched") == 2
    bad = make_dbt_project(
        {"pyproject.toml": '[tool.sqlorch]\ndlt = {raw = "loaders.files"}\n'}, name="dltbad"
    )
    result = run_cli(bad.path, "ls")
    assert result.exit_code == 2 and '"module:function"' in result.flat, result.describe()


def test_a_blocking_check_of_a_dlt_table_stops_downstream(dlt_project: TinyProject) -> None:
    checks = (
        "from sqlorch import check\n\n\n"
        '@check(asset="raw.users")\n'
        "def users_have_names(rows):\n"
        '    return rows.column("name").null_count == 0\n'
    )
    (dlt_project.path / "ingest/checks.py").write_text(checks)
    (dlt_project.path / "models/kinds.sql").write_text(  # reads the sibling raw.events only
        "select kind, count(*) as n from {{ source('raw', 'events') }} group by 1"
    )
    write_lines(dlt_project.path / "data/users/all.jsonl", [{"id": 0, "name": None}, {"id": 1}])
    failed = run_cli(dlt_project.path, "build")
    assert failed.exit_code == 1, failed.describe()
    st = status(dlt_project.path)
    assert st["raw.events"]["last_outcome"] == "success"
    assert st["main.enriched"]["last_materialized_at"] is None  # never built on bad users
    assert st["raw.users"]["stale"]
    assert any("users_have_names" in r for r in st["raw.users"]["reasons"]), st["raw.users"]
    assert st["main.kinds"]["last_outcome"] == "success"
    write_lines(dlt_project.path / "data/users/all.jsonl", [{"id": 0, "name": "a"}])
    plan = ok(run_cli(dlt_project.path, "build", "--dry-run", "--json")).json()
    reasons = {s["key"]: s["reasons"] for s in plan["steps"]}
    assert reasons["raw.events"][0].startswith("loaded together with raw."), reasons
    assert "main.kinds" in reasons  # downstream of a sibling: in the same plan
    ok(run_cli(dlt_project.path, "build"))
    assert scalar(dlt_project.db, "select count(*) from main.enriched") == 3
    stale = {k: s["reasons"] for k, s in status(dlt_project.path).items() if s["stale"]}
    assert stale == {}, stale  # one build leaves nothing stale
