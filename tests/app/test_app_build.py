"""The build use case called directly, as the CLI, the web UI and the daemon call it.

Real dbt and DuckDB on tiny projects; assertions on what `sqlorch.app.build.build` returns
and records.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from conftest import TinyProject, clean_environ, query

from sqlorch.app.build import BuildResult, RunEvents, build
from sqlorch.app.plans import BuildRequest, CheckRequest, Request, RetryRequest
from sqlorch.events import Event, EventKind, HiddenDependencyFound
from sqlorch.settings import Settings, load_settings
from sqlorch.state.store import StateStore

Make = Callable[..., TinyProject]

TWO_MODELS = {
    "models/a.sql": "{{ config(materialized='table') }}\nselect 1 as id, 'x' as label\n",
    "models/b.sql": "{{ config(materialized='table') }}\nselect id from {{ ref('a') }}\n",
}
HIDDEN = {
    **TWO_MODELS,
    # reads a (a known asset) and legacy.codes (no asset) by name, without ref/source
    "models/c.sql": """
        {{ config(materialized='table') }}
        select a.id, a.label, l.code
        from main.a as a
        left join legacy.codes as l on a.id = l.id
    """,
}
FAILING_PYTHON = {
    "ingest/assets.py": """
        from sqlorch import asset


        @asset
        def broken():
            raise RuntimeError("no data today")
    """
}


def settings_of(project: TinyProject) -> Settings:
    return load_settings(
        project_dir=project.path, profiles_dir=project.path, cwd=project.path, env=clean_environ()
    )


def run(
    project: TinyProject, request: Request | None = None, *, dry_run: bool = False
) -> tuple[BuildResult, list[Event]]:
    """Build `request` (default: everything stale); return the result and the events seen."""
    events: list[Event] = []
    result = build(
        settings_of(project), request or BuildRequest(), [events.append], dry_run=dry_run
    )
    return result, events


def recorded(project: TinyProject, run_id: str) -> list[str]:
    store = StateStore(settings_of(project).state_path, readonly=True)
    return [e.kind for e in store.events(run_id)]


@pytest.mark.dbt
def test_hidden_dependency_is_recorded_before_run_finished(make_dbt_project: Make) -> None:
    project = make_dbt_project(HIDDEN)
    query(project.db, "create schema legacy; create table legacy.codes as select 1 id, 'k' code")
    assert run(project, BuildRequest(select=("a",)))[0].hidden == ()

    result, events = run(project)
    assert result.outcome is not None and result.outcome.status == "success"
    assert [(h.asset, "legacy.codes" in h.message) for h in result.hidden] == [("main.c", True)]
    assert isinstance(result.hidden[0], HiddenDependencyFound)

    # the run's event stream, as recorded: the warning comes before run_finished, which is last
    kinds = recorded(project, result.outcome.run_id)
    assert kinds.count("hidden_dependency") == 1 and kinds.count("run_finished") == 1
    assert kinds.index("hidden_dependency") < kinds.index("run_finished") == len(kinds) - 1
    # ... and as the listeners saw it
    seen = [e.kind for e in events]
    assert seen.index(EventKind.HIDDEN_DEPENDENCY) < seen.index(EventKind.RUN_FINISHED)
    assert seen[-1] is EventKind.RUN_FINISHED
    hidden = next(e for e in events if e.kind is EventKind.HIDDEN_DEPENDENCY)
    assert (hidden.asset, hidden.level, hidden.data) == ("main.c", "warning", {})
    assert hidden.message == result.hidden[0].message

    store = StateStore(settings_of(project).state_path, readonly=True)
    record = store.run(result.outcome.run_id)
    assert record is not None and record.status == "success" and record.finished_at is not None
    finished = [e for e in store.events(record.run_id) if e.kind == "run_finished"][0]
    found = [e for e in store.events(record.run_id) if e.kind == "hidden_dependency"][0]
    assert found.ts <= finished.ts


@pytest.mark.dbt
def test_build_runs_what_is_stale_then_nothing(make_dbt_project: Make) -> None:
    project = make_dbt_project(TWO_MODELS)

    dry, _ = run(project, dry_run=True)
    assert [s.key for s in dry.plan.steps] == ["main.a", "main.b"]
    assert dry.outcome is None and not dry.failed
    assert StateStore(settings_of(project).state_path, readonly=True).runs() == []

    first, events = run(project)
    assert first.outcome is not None and first.outcome.status == "success" and not first.failed
    assert query(project.db, "select id from main.b") == [(1,)]
    kinds = [e.kind for e in events]
    assert kinds[0] is EventKind.RUN_STARTED and kinds[-1] is EventKind.RUN_FINISHED

    again, events = run(project)
    assert again.plan.steps == () and again.outcome is None
    assert again.selected_materializable == 2
    assert events == []

    full, _ = run(project, BuildRequest(select=("b",), full=True))
    assert [s.key for s in full.plan.steps] == ["main.b"]
    assert full.outcome is not None and full.outcome.status == "success"
    runs = StateStore(settings_of(project).state_path, readonly=True).runs()
    assert [(r.command, r.selection, r.status) for r in runs] == [
        ("build", "b", "success"),
        ("build", "", "success"),
    ]


@pytest.mark.dbt
def test_retry_reruns_what_failed_and_check_builds_nothing(make_dbt_project: Make) -> None:
    project = make_dbt_project(
        {
            **TWO_MODELS,
            "models/schema.yml": """
                version: 2
                models:
                  - name: b
                    columns:
                      - name: id
                        data_tests: [not_null]
            """,
        },
        FAILING_PYTHON,
    )
    failed, _ = run(project)
    assert failed.failed and failed.outcome is not None
    assert failed.outcome.errors.keys() == {"raw.broken"}

    retry, _ = run(project, RetryRequest())
    assert retry.retried is not None and retry.retried.run_id == failed.outcome.run_id
    assert [s.key for s in retry.plan.steps] == ["raw.broken"]
    assert retry.plan.steps[0].reasons[0] == f"failed in run {failed.outcome.run_id}"
    assert retry.failed

    runs = StateStore(settings_of(project).state_path, readonly=True).runs()
    assert runs[0].selection == f"retry {failed.outcome.run_id}"

    checked, events = run(project, CheckRequest(select=("b",)))
    assert checked.plan.steps == () and len(checked.plan.checks) == 1
    assert checked.outcome is not None and checked.outcome.status == "success"
    kinds = {e.kind for e in events}
    assert EventKind.CHECK_PASSED in kinds and EventKind.ASSET_MATERIALIZED not in kinds

    nothing, _ = run(project, CheckRequest(select=("a",)))
    assert nothing.plan.checks == () and nothing.outcome is None


def test_run_events_hand_on_run_finished_last() -> None:
    seen: list[Event] = []
    events = RunEvents([seen.append])
    finished = Event(EventKind.RUN_FINISHED, "r1", "2026-01-01T00:00:00.000000Z")
    events(Event(EventKind.RUN_STARTED, "r1", "2026-01-01T00:00:00.000000Z"))
    events(finished)
    events(HiddenDependencyFound("main.c", "reads x").event("r1", "2026-01-01T00:00:01.000000Z"))
    assert [e.kind for e in seen] == [EventKind.RUN_STARTED, EventKind.HIDDEN_DEPENDENCY]
    events.finish()
    events.finish()  # once only
    assert [e.kind for e in seen][-1] is EventKind.RUN_FINISHED and len(seen) == 3
    assert seen[-1].ts >= seen[1].ts  # stamped when handed on


def test_run_events_flush_the_listeners_that_buffer() -> None:
    flushed: list[str] = []

    class Buffering:
        def __call__(self, event: Event) -> None:
            pass

        def flush(self) -> None:
            flushed.append("flushed")

    RunEvents([Buffering(), lambda event: None]).flush()
    assert flushed == ["flushed"]
