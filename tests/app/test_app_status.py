"""The status, ls, runs and plans use cases called directly on a tiny real project."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from conftest import TinyProject, clean_environ

from sqlorch.app.assets import asset_document, list_assets
from sqlorch.app.build import build
from sqlorch.app.history import history_of
from sqlorch.app.plans import BuildRequest, plan_build, plan_request, selection_text
from sqlorch.app.runs import event_document, run_documents, run_log
from sqlorch.app.status import asset_status
from sqlorch.errors import SelectionError
from sqlorch.load.project import load_project
from sqlorch.settings import Settings, load_settings
from sqlorch.state.store import StateStore

pytestmark = pytest.mark.dbt

Make = Callable[..., TinyProject]

FILES = {
    "models/a.sql": "{{ config(materialized='table') }}\nselect 1 as id\n",
    "models/b.sql": "{{ config(materialized='table') }}\nselect id from {{ ref('a') }}\n",
}
PYTHON = {
    "ingest/assets.py": """
        import pyarrow as pa

        from sqlorch import asset


        @asset(deps=["b"])
        def p():
            return pa.table({"n": [1, 2, 3]})
    """
}


def settings_of(project: TinyProject) -> Settings:
    return load_settings(
        project_dir=project.path, profiles_dir=project.path, cwd=project.path, env=clean_environ()
    )


def test_status_before_and_after_a_build(make_dbt_project: Make) -> None:
    project = make_dbt_project(FILES, PYTHON)
    settings = settings_of(project)
    before = {r["key"]: r for r in asset_status(settings)}
    assert set(before) == {"main.a", "main.b", "raw.p"}
    assert all(r["stale"] and r["reasons"] and r["last_run_id"] is None for r in before.values())

    result = build(settings, BuildRequest())
    assert result.outcome is not None and result.outcome.status == "success"

    after = {r["key"]: r for r in asset_status(settings)}
    assert {k: r["stale"] for k, r in after.items()} == dict.fromkeys(after, False)
    assert after["raw.p"]["rows"] == 3 and after["raw.p"]["last_outcome"] == "success"
    assert after["raw.p"]["last_run_id"] == result.outcome.run_id
    assert after["main.a"]["kind"] == "model" and after["main.a"]["partitions"] is None

    selected = asset_status(settings, select=["+b"], exclude=["a"])
    assert [r["key"] for r in selected] == ["main.b"]
    warned: list[str] = []
    assert [r["key"] for r in asset_status(settings, ["a", "nope"], warn=warned.append)] == [
        "main.a"
    ]
    assert warned == ["The selector 'nope' matched no asset."]
    with pytest.raises(SelectionError, match="No asset matches 'nope'"):
        asset_status(settings, ["nope"])


def test_ls_runs_and_logs(make_dbt_project: Make) -> None:
    project = make_dbt_project(FILES, PYTHON)
    settings = settings_of(project)
    nodes = list_assets(settings, ["b+"])
    assert [n.key for n in nodes] == ["main.b", "raw.p"]
    doc = asset_document(nodes[1])
    assert (doc["kind"], doc["deps"], doc["file"]) == ("python", ["main.b"], "ingest/assets.py")

    assert run_documents(settings, 10) == []
    result = build(settings, BuildRequest(select=("a",)))
    assert result.outcome is not None
    [run] = run_documents(settings, 10)
    assert (run["run_id"], run["command"], run["selection"], run["status"]) == (
        result.outcome.run_id,
        "build",
        "a",
        "success",
    )
    assert run["assets"] == {"succeeded": 1, "failed": 0, "skipped": 0}
    events = [event_document(e) for e in run_log(settings, None)]
    assert events[0]["kind"] == "run_started" and events[-1]["kind"] == "run_finished"
    of_a = list(run_log(settings, result.outcome.run_id, assets=["A"], level="INFO"))
    assert {"asset_started", "asset_materialized"} <= {e.kind for e in of_a}
    assert {e.asset for e in of_a} == {"main.a"}
    assert list(run_log(settings, None, level="error")) == []

    key, history = history_of(settings, "a")
    assert key == "main.a"
    assert [m["run_id"] for m in history["materializations"]] == [result.outcome.run_id]


def test_plans_read_state_and_selection(make_dbt_project: Make) -> None:
    project = make_dbt_project(FILES, PYTHON)
    settings = settings_of(project)
    loaded = load_project(settings)
    store = StateStore(settings.state_path)
    plan = plan_build(loaded, store, ["b+"], None)
    assert plan.keys == ["main.b", "raw.p"]
    assert all(s.reasons for s in plan.steps)
    request = BuildRequest(select=("b+",), exclude=("p",))
    assert plan_request(loaded, store, request).keys == ["main.b"]
    assert selection_text(request) == "b+ --exclude p"
