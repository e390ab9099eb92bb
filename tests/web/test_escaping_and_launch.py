"""Names and messages from user code render as text; launches run `sqlorch` as a process."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import TinyProject, copy_example, run_cli
from webclient import csrf_token, this_tree_on_path, web_client

pytestmark = pytest.mark.dbt

SCRIPT = "<script>alert(1)</script>"
IMG = "<img src=x onerror=alert(2)>"

HOSTILE = f'''
import pyarrow as pa
from sqlorch import AssetContext, MaterializeResult, asset


@asset
def hostile(context: AssetContext):
    """Described with {SCRIPT} in it."""
    context.log.warning("log line with {SCRIPT}")
    table = pa.table({{"{IMG}": [1, 2, 3]}})
    return MaterializeResult(table, metadata={{"note": "{IMG}", "score": 3}})


@asset(deps=["raw.hostile"])
def fails(context: AssetContext):
    raise RuntimeError("broken with {SCRIPT}")
'''


def test_html_from_user_code_renders_as_text(make_dbt_project: Callable[..., TinyProject]) -> None:
    project = make_dbt_project(
        {"models/down.sql": "select 1 as x\n"}, {"ingest/assets.py": HOSTILE}
    )
    built = run_cli(project.path, "build")
    assert built.exit_code == 1, built.describe()  # `fails` fails, on purpose
    with web_client(project.path) as c:
        run_id = c.get("/api/runs").json()[0]["run_id"]
        pages = {
            url: c.get(url)
            for url in (
                "/",
                "/graph.svg",
                "/assets/raw.hostile",
                "/assets/raw.fails",
                f"/runs/{run_id}",
                "/runs",
            )
        }
        for url, response in pages.items():
            assert response.status_code == 200, url
            assert SCRIPT not in response.text, url
            assert IMG not in response.text, url
        asset = pages["/assets/raw.hostile"].text
        assert "&lt;img src=x onerror=alert(2)&gt;" in asset  # the column, and the metadata
        assert "Described with &lt;script&gt;alert(1)&lt;/script&gt;" in asset
        assert "log line with &lt;script&gt;" in pages[f"/runs/{run_id}"].text
        assert "broken with &lt;script&gt;" in pages[f"/runs/{run_id}"].text
        # the JSON twins carry the text as it is
        api = c.get("/api/assets/raw.hostile").json()
        assert api["asset"]["columns"][0]["name"] == IMG
        events = c.get(f"/api/runs/{run_id}/events").json()["events"]
        assert any(SCRIPT in e["message"] for e in events)
        # the series JSON in a <script> element cannot close it
        assert "<\\/script>" not in asset and "\\u003c" in asset


def _wait_for_run(c: Any, launch_url: str, timeout: float = 240) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = c.get(launch_url, follow_redirects=False)
        if response.status_code == 303:
            location = response.headers["location"]
            assert location.startswith("/runs/")
            return location.removeprefix("/runs/")
        doc = c.get("/api" + launch_url).json()
        assert doc["exit_code"] in (None, 0, 1), doc["output"]
        time.sleep(0.3)
    raise AssertionError(f"no run recorded for {launch_url}")


def _wait_finished(c: Any, run_id: str, timeout: float = 240) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = c.get(f"/api/runs/{run_id}").json()["run"]
        if run["status"] != "running":
            return dict(run)
        time.sleep(0.3)
    raise AssertionError(f"run {run_id} did not finish")


def test_launch_a_build_after_its_plan_and_refuse_while_the_file_is_held(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = copy_example(tmp_path / "nycflights")
    built = run_cli(project, "build", "-s", "raw.airlines")
    assert built.exit_code == 0, built.describe()
    this_tree_on_path(monkeypatch)
    with web_client(project) as c:
        token = csrf_token(c.get("/launch").text)
        form = {"command": "build", "select": "raw.airports", "csrf": token}
        plan = c.post("/launch/plan", data=form)
        assert plan.status_code == 200, plan.text
        assert "raw.airports" in plan.text and "never materialized" in plan.text
        assert 'data-testid="busy"' not in plan.text
        started = c.post("/launch/start", data=form, follow_redirects=False)
        assert started.status_code == 303, started.text
        run_id = _wait_for_run(c, started.headers["location"])
        # visible at once in the runs list, as running or already done
        assert run_id in [r["run_id"] for r in c.get("/api/runs").json()]
        run = _wait_finished(c, run_id)
        assert run["status"] == "success" and run["command"] == "build"
        assert run["selection"] == "raw.airports"
        status = {s["key"]: s for s in run_cli(project, "status", "--json").json()}
        assert status["raw.airports"]["last_run_id"] == run_id

        # another process holds the DuckDB file (a build): the UI says so and launches nothing
        holder = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import duckdb, sys, time; con = duckdb.connect(sys.argv[1]); "
                "print('held', flush=True); time.sleep(120)",
                str(project / "nycflights13.duckdb"),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
            plan = c.post("/launch/plan", data=form)
            assert plan.status_code == 200 and 'data-testid="busy"' in plan.text
            assert f"process {holder.pid} holds the DuckDB file" in plan.text
            refused = c.post("/launch/start", data=form, follow_redirects=False)
            assert refused.status_code == 409 and "holds the DuckDB file" in refused.text
        finally:
            holder.kill()
            holder.wait()
        assert len(c.get("/api/runs").json()) == 2  # the refused launch ran nothing
