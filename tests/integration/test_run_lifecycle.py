"""A run seen from outside: state readable while a build writes it, Ctrl-C, recovery, status.

The build runs as a real process; a Python asset in it waits for a file the test creates,
so the test decides exactly when the run moves on (no timing in any assertion).
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import TRACEBACK, TinyProject, clean_environ, query, run_cli, tables

pytestmark = pytest.mark.dbt

Make = Callable[..., TinyProject]

WAIT = 60  # seconds before a stuck test gives up (never reached when things work)

GATED = {
    "models/a.sql": "{{ config(materialized='table') }}\nselect 1 as n\n",
    "models/b.sql": "select * from {{ source('raw', 'gated') }}\n",
    "models/sources.yml": """
        version: 2
        sources:
          - name: raw
            schema: raw
            tables:
              - name: gated
    """,
}
GATED_PYTHON = {
    "ingest/gate.py": """
        import time
        from pathlib import Path

        import pyarrow as pa

        from sqlorch import asset

        HERE = Path(__file__).resolve().parent.parent


        @asset(deps=["a"])
        def gated():
            (HERE / "started").touch()
            deadline = time.monotonic() + 120
            while not (HERE / "release").exists():
                if time.monotonic() > deadline:
                    raise TimeoutError("the test never released the asset")
                time.sleep(0.02)
            return pa.table({"n": [1, 2]})
    """
}


def start_build(project: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "sqlorch.cli", "build", "--project-dir", str(project)],
        cwd=project,
        env=clean_environ(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # a job started in the background (as CI may start pytest) inherits SIGINT ignored, and
        # Python then installs no Ctrl-C handler: give the build the default back
        preexec_fn=_sigint_default,
    )


def _sigint_default() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def wait_for(what: str, predicate: Callable[[], bool], proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + WAIT
    while not predicate():
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"the build ended (exit {proc.returncode}) before {what}:\n{out}\n{err}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.05)


def finish(proc: subprocess.Popen[str]) -> tuple[int, str]:
    try:
        out, err = proc.communicate(timeout=WAIT)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"the build did not finish:\n{out}\n{err}")
    return proc.returncode, out + err


def json_of(project: Path, *args: str) -> Any:
    result = run_cli(project, *args)
    assert result.exit_code == 0 and result.exception is None, result.describe()
    return result.json() if "logs" not in args else result.json_lines()


def test_status_before_any_build(make_dbt_project: Make) -> None:
    project = make_dbt_project(GATED, GATED_PYTHON)
    rows = {s["key"]: s for s in json_of(project.path, "status", "--json")}
    assert set(rows) == {"main.a", "main.b", "raw.gated"}
    for row in rows.values():
        assert row["stale"] is True and row["reasons"], row
        assert row["last_materialized_at"] is None and row["rows"] is None, row
        assert row["duration_s"] is None and row["last_run_id"] is None, row
    plan = json_of(project.path, "build", "--dry-run", "--json")
    assert [s["key"] for s in plan["steps"]] == ["main.a", "raw.gated", "main.b"]
    assert all(s["reasons"] for s in plan["steps"])
    assert json_of(project.path, "runs", "--json") == []


def test_state_is_readable_while_a_build_runs(make_dbt_project: Make) -> None:
    project = make_dbt_project(GATED, GATED_PYTHON)
    proc = start_build(project.path)
    try:
        wait_for("the gated asset started", (project.path / "started").exists, proc)
        # another process reads the state store while the build holds it (and the warehouse)
        runs = json_of(project.path, "runs", "--json")
        assert len(runs) == 1
        assert runs[0]["status"] == "running" and runs[0]["finished_at"] is None
        status = {s["key"]: s for s in json_of(project.path, "status", "--json")}
        assert set(status) == {"main.a", "main.b", "raw.gated"}
        assert status["main.b"]["last_materialized_at"] is None
        events = json_of(project.path, "logs", runs[0]["run_id"], "--json")
        assert "run_finished" not in [e["kind"] for e in events]
        # a second build of the same assets is refused by the lease: a clear error naming the
        # run that holds them, and how to wait for it
        second = run_cli(project.path, "build")
        assert second.exception is None, second.describe()
        assert second.exit_code == 2, second.describe()
        assert TRACEBACK not in second.output
        assert "being built by another run" in second.flat, second.describe()
        assert runs[0]["run_id"] in second.flat and "--wait" in second.flat
        # ... and it must not mark the live run as abandoned
        first = [
            r for r in json_of(project.path, "runs", "--json") if r["run_id"] == runs[0]["run_id"]
        ]
        assert first[0]["status"] == "running"
    finally:
        (project.path / "release").touch()
    code, output = finish(proc)
    assert code == 0, output
    runs = {r["run_id"]: r for r in json_of(project.path, "runs", "--json")}
    run = runs[first[0]["run_id"]]
    assert run["status"] == "success" and run["finished_at"]
    assert query(project.db, "select count(*) from main.b") == [(2,)]


# Python only until the gate: no dbt segment runs beside it (its events would flush the state)
QUICK_THEN_GATED = {
    "ingest/gate.py": """
        import time
        from pathlib import Path

        import pyarrow as pa

        from sqlorch import asset

        HERE = Path(__file__).resolve().parent.parent


        @asset
        def quick():
            return pa.table({"n": [1]})


        @asset(deps=["quick"])
        def gated():
            (HERE / "started").touch()
            deadline = time.monotonic() + 120
            while not (HERE / "release").exists():
                if time.monotonic() > deadline:
                    raise TimeoutError("the test never released the asset")
                time.sleep(0.02)
            return pa.table({"n": [1, 2]})
    """
}
DOWNSTREAM_OF_GATED = {k: v for k, v in GATED.items() if k != "models/a.sql"}


def test_finished_assets_show_in_the_state_while_a_long_asset_runs(
    make_dbt_project: Make,
) -> None:
    project = make_dbt_project(DOWNSTREAM_OF_GATED, QUICK_THEN_GATED)
    proc = start_build(project.path)
    try:
        wait_for("the gated asset started", (project.path / "started").exists, proc)

        def recorded() -> bool:
            status = {s["key"]: s for s in json_of(project.path, "status", "--json")}
            run_id = json_of(project.path, "runs", "--json")[0]["run_id"]
            started = {
                e["asset"]
                for e in json_of(project.path, "logs", run_id, "--json")
                if e["kind"] == "asset_started"
            }
            return status["raw.quick"]["last_outcome"] == "success" and "raw.gated" in started

        # generous next to the recorder's flush interval (0.2 s); the gate holds the run still
        deadline = time.monotonic() + 5
        while not recorded() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert recorded(), "raw.quick finished but the state store does not know it yet"
    finally:
        (project.path / "release").touch()
        finish(proc)


def test_ctrl_c_drains_records_cancelled_and_the_next_build_finishes(
    make_dbt_project: Make,
) -> None:
    project = make_dbt_project(GATED, GATED_PYTHON)
    proc = start_build(project.path)
    try:
        wait_for("the gated asset started", (project.path / "started").exists, proc)
        # let the run go quiet first, so the interrupt lands while only the gated asset runs
        time.sleep(1.0)
        proc.send_signal(signal.SIGINT)

        def cancelling() -> bool:
            runs = json_of(project.path, "runs", "--json")
            events = json_of(project.path, "logs", runs[0]["run_id"], "--json")
            return any("cancel" in e["message"].lower() for e in events)

        wait_for("the build noticed Ctrl-C", cancelling, proc)
    finally:
        (project.path / "release").touch()
    code, output = finish(proc)
    run = json_of(project.path, "runs", "--json")[0]
    events = json_of(project.path, "logs", run["run_id"], "--json")
    story = output + "\n" + "\n".join(f"{e['kind']} {e['asset']} {e['message']}" for e in events)
    assert code != 0, story
    assert TRACEBACK not in output, story
    assert run["status"] == "cancelled", story
    # the running asset was drained and recorded; what had not started was not run
    status = {s["key"]: s for s in json_of(project.path, "status", "--json")}
    assert status["raw.gated"]["last_outcome"] == "success", story
    assert status["main.b"]["last_materialized_at"] is None
    assert "main.b" not in tables(project.db)
    assert query(project.db, "select count(*) from raw.gated") == [(2,)]
    # the next build finishes the job
    again = run_cli(project.path, "build")
    assert again.exit_code == 0, again.describe()
    assert query(project.db, "select count(*) from main.b") == [(2,)]
    assert [r["status"] for r in json_of(project.path, "runs", "--json")] == [
        "success",
        "cancelled",
    ]


def test_second_ctrl_c_cancels_the_running_asset_and_leaves_consistent_state(
    make_dbt_project: Make,
) -> None:
    project = make_dbt_project(GATED, GATED_PYTHON)
    proc = start_build(project.path)
    try:
        wait_for("the gated asset started", (project.path / "started").exists, proc)
        time.sleep(1.0)
        proc.send_signal(signal.SIGINT)

        def cancelling() -> bool:
            runs = json_of(project.path, "runs", "--json")
            events = json_of(project.path, "logs", runs[0]["run_id"], "--json")
            return any("cancel" in e["message"].lower() for e in events)

        wait_for("the build noticed Ctrl-C", cancelling, proc)
        proc.send_signal(signal.SIGINT)  # the gated asset is never released: abandon it
        code, output = finish(proc)
    finally:
        (project.path / "release").touch()
    run = json_of(project.path, "runs", "--json")[0]
    events = json_of(project.path, "logs", run["run_id"], "--json")
    story = output + "\n" + "\n".join(f"{e['kind']} {e['asset']} {e['message']}" for e in events)
    assert code == 130, story
    assert TRACEBACK not in output, story
    assert run["status"] == "cancelled", story
    assert run["finished_at"] is not None, story
    assert run["assets"] == {"succeeded": 1, "failed": 1, "skipped": 1}, story
    status = {s["key"]: s for s in json_of(project.path, "status", "--json")}
    assert status["main.a"]["last_outcome"] == "success", story
    assert status["raw.gated"]["last_outcome"] == "failed", story
    assert "second Ctrl-C" in events[-1]["message"] or any(
        "second Ctrl-C" in e["message"] for e in events
    ), story
    # the warehouse holds exactly what was recorded: a's table, no gated/b
    assert query(project.db, "select count(*) from main.a") == [(1,)]
    assert "raw.gated" not in tables(project.db)
    assert "main.b" not in tables(project.db)
    again = run_cli(project.path, "build")
    assert again.exit_code == 0, again.describe()
    assert query(project.db, "select count(*) from main.b") == [(2,)]
