"""Commands at the same time: defined outcomes.

- Two builds: the second is refused before it starts anything (exit 2, the DuckDB file is
  held by another process, run again later; no run recorded); the first completes.
- A build during `sqlorch check`: refused the same way; the check completes.
- `status` and `runs` during a build: they answer at once from the state store; the running
  run is `running`, and an asset it has not materialized yet is still stale.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import TinyProject, clean_environ, run_cli, run_cli_subprocess, scalar

pytestmark = pytest.mark.dbt

Make = Callable[..., TinyProject]

SLOW = """
import time
from pathlib import Path

import pyarrow as pa

from sqlorch import asset, check

HERE = Path(__file__).resolve().parent.parent


@asset
def slow():
    if (HERE / "slow_asset").exists():
        time.sleep(8)
    return pa.table({"n": [1, 2, 3]})


@check(asset="raw.slow", blocking=False)
def slow_check(connection):
    if (HERE / "slow_check").exists():
        time.sleep(8)
    return True
"""


@pytest.fixture
def project(make_dbt_project: Make) -> TinyProject:
    made = make_dbt_project({"models/a.sql": "select 1 as x\n"}, {"ingest/slow.py": SLOW})
    first = run_cli_subprocess(made.path, "build")
    assert first.exit_code == 0, first.describe()
    return made


def _start(project: TinyProject, *args: str) -> subprocess.Popen[str]:
    env = clean_environ({"PYTHONPATH": os.pathsep.join(sys.path)})
    return subprocess.Popen(
        [sys.executable, "-m", "sqlorch.cli", *args],
        cwd=project.path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for(project: TinyProject, kind: str, proc: subprocess.Popen[str]) -> None:
    """Wait until a running run recorded an event of `kind` (the process still running)."""
    state = project.path / ".sqlorch" / "state.db"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        con = sqlite3.connect(f"file:{state}?mode=ro", uri=True, timeout=1)
        try:
            (n,) = con.execute(
                "SELECT count(*) FROM events WHERE kind = ? AND run_id IN "
                "(SELECT run_id FROM runs WHERE status = 'running')",
                [kind],
            ).fetchone()
        finally:
            con.close()
        if n:
            return
        time.sleep(0.05)
    raise AssertionError(f"no {kind} event within 120 s")


def _runs(project: TinyProject) -> list[dict[str, object]]:
    doc: list[dict[str, object]] = run_cli(project.path, "runs", "--json").json()
    return doc


def test_a_second_build_is_refused_and_the_first_completes(project: TinyProject) -> None:
    (project.path / "slow_asset").touch()
    first = _start(project, "build", "--full", "-s", "slow")
    _wait_for(project, "asset_started", first)
    before = len(_runs(project))
    # (a real process: in this one, a database instance of the fixture's build may live on)
    second = run_cli_subprocess(project.path, "build", "--full", "-s", "a")
    assert second.exit_code == 2, second.describe()
    assert "held by another process" in second.flat, second.describe()
    assert "run again" in second.flat, second.describe()
    assert len(_runs(project)) == before  # the refused build recorded no run
    out, err = first.communicate(timeout=300)
    assert first.returncode == 0, out + err
    assert scalar(project.db, "select count(*) from raw.slow") == 3
    assert _runs(project)[0]["status"] == "success"


def test_a_build_during_check_is_refused_and_the_check_completes(project: TinyProject) -> None:
    (project.path / "slow_check").touch()
    checking = _start(project, "check", "-s", "slow")
    _wait_for(project, "run_started", checking)
    build = run_cli_subprocess(project.path, "build", "--full", "-s", "slow")
    assert build.exit_code == 2, build.describe()
    assert "held by another process" in build.flat, build.describe()
    out, err = checking.communicate(timeout=300)
    assert checking.returncode == 0, out + err
    assert "1 passed" in out, out + err


def test_status_during_a_build_answers_and_does_not_call_it_fresh(
    project: TinyProject,
) -> None:
    (project.path / "slow_asset").touch()
    source = project.path / "ingest" / "slow.py"
    source.write_text(source.read_text().replace("[1, 2, 3]", "[1, 2, 3, 4]"))  # code changed
    running = _start(project, "build", "-s", "slow")
    _wait_for(project, "asset_started", running)
    status = run_cli(project.path, "status", "-s", "slow", "--json")
    assert status.exit_code == 0, status.describe()
    (slow,) = status.json()
    assert slow["stale"], slow  # not materialized yet by the running build
    assert _runs(project)[0]["status"] == "running"
    out, err = running.communicate(timeout=300)
    assert running.returncode == 0, out + err
    (after,) = run_cli(project.path, "status", "-s", "slow", "--json").json()
    assert not after["stale"], after
    assert scalar(project.db, "select count(*) from raw.slow") == 4
    assert Path(project.db).exists()


GATED = """
import time
from pathlib import Path

import pyarrow as pa

from sqlorch import asset

HERE = Path(__file__).resolve().parent.parent


@asset
def gated():
    (HERE / "started").touch()
    deadline = time.monotonic() + 120
    while not (HERE / "go").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return pa.table({"n": [1, 2, 3]})
"""


@pytest.mark.parametrize("store", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_a_second_build_waits_for_the_holder_with_wait_and_then_plans_again(
    make_dbt_project: Make, tmp_path: Path, store: str, request: pytest.FixtureRequest
) -> None:
    project = make_dbt_project({"models/a.sql": "select 1 as x\n"}, {"ingest/gated.py": GATED})
    extra = {"SQLORCH_STATE_URL": request.getfixturevalue("pg_url")} if store == "postgres" else {}
    env = clean_environ({"PYTHONPATH": os.pathsep.join(sys.path), **extra})

    def start(*args: str, stderr: Path) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "sqlorch.cli", *args],
            cwd=project.path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=stderr.open("w"),
            text=True,
        )

    holder = start("build", stderr=tmp_path / "holder.err")
    deadline = time.monotonic() + 120
    while not (project.path / "started").exists():
        assert holder.poll() is None and time.monotonic() < deadline, holder.communicate()
        time.sleep(0.05)
    # without --wait: refused at once, naming the holder (its process), nothing recorded
    refused = run_cli_subprocess(project.path, "build", "-s", "gated", env=extra)
    assert refused.exit_code == 2, refused.describe()
    assert "being built by another run" in refused.flat, refused.describe()
    assert f"pid {holder.pid}@" in refused.flat, refused.describe()
    # with --wait: says once whom it waits for, waits, then plans again: nothing left to do
    err = tmp_path / "waiter.err"
    waiter = start("build", "--wait", "120", stderr=err)
    while "Waiting for" not in err.read_text():
        assert waiter.poll() is None and time.monotonic() < deadline, waiter.communicate()
        time.sleep(0.05)
    time.sleep(1)  # (it keeps waiting: the holder still holds the lease)
    assert waiter.poll() is None
    (project.path / "go").touch()
    out, _ = holder.communicate(timeout=300)
    assert holder.returncode == 0, out + (tmp_path / "holder.err").read_text()
    out, _ = waiter.communicate(timeout=300)
    said = err.read_text()
    assert waiter.returncode == 0, out + said
    assert said.count("Waiting for") == 1 and f"pid {holder.pid}@" in said, said
    assert "nothing to do" in " ".join(out.split()), out + said
    runs = run_cli(project.path, "runs", "--json", env=extra).json()
    assert len(runs) == 1 and runs[0]["status"] == "success"  # the holder's run only
    # a bad --wait: exit 2
    bad = run_cli(project.path, "build", "--wait", "soon", env=extra)
    assert bad.exit_code == 2 and "--wait" in bad.flat, bad.describe()
