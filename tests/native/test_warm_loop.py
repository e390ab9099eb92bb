"""The edit-build loop with `sqlorch dev` warm (issue 16): real processes, real dbt and DuckDB.

`sqlorch dev` keeps dbt parsed; a model edited while it runs is parsed and compiled there,
so the next `sqlorch build` (a fresh process) imports no dbt and writes the new SQL, with
the same relations as plain `dbt build` of the same edit.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import TinyProject, clean_environ, query, run_cli, run_dbt
from test_native_execution import TWIN_FILES, Make, events, not_imported_dbt, ok, relations

pytestmark = pytest.mark.dbt

EDITED = {
    "models/after_table.sql": """
        {{ config(materialized='table') }}
        select team, people * 3 as tripled from {{ ref('people_table') }}
    """
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_idle(project: Path) -> None:
    """Block until the warm process is not parsing or compiling (its lock is free)."""
    time.sleep(0.5)  # it takes the lock within its polling interval of a change
    fd = os.open(project / ".sqlorch" / "dbt" / "warm.lock", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
    finally:
        os.close(fd)


@contextlib.contextmanager
def dev_process(project: Path) -> Iterator[subprocess.Popen[str]]:
    """`sqlorch dev` over `project`, warm (its first refresh done); stopped with SIGTERM."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "sqlorch.cli", "dev", "--project-dir", str(project)]
        + ["--port", str(free_port())],
        cwd=project,
        env=clean_environ(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        info = project / ".sqlorch" / "dbt" / "warm.json"
        deadline = time.monotonic() + 120
        while not info.exists():
            assert proc.poll() is None, proc.communicate()[0]
            assert time.monotonic() < deadline, "sqlorch dev did not announce its warm compiler"
            time.sleep(0.1)
        wait_idle(project)
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        out = proc.communicate(timeout=60)[0]
        print(out)
    assert not info.exists(), "the warm compiler did not withdraw on SIGTERM"


@pytest.fixture
def warm_twins(make_dbt_project: Make) -> Iterator[tuple[TinyProject, TinyProject]]:
    """Twin projects built once; the sqlorch one under a running `sqlorch dev`."""
    by_dbt = make_dbt_project(TWIN_FILES, name="twin", folder="dbt")
    by_sqlorch = make_dbt_project(TWIN_FILES, name="twin", folder="sqlorch")
    assert run_dbt(by_dbt.path, "build").returncode == 0
    ok(run_cli(by_sqlorch.path, "build"))
    with dev_process(by_sqlorch.path):
        yield by_dbt, by_sqlorch


def test_a_model_edited_under_sqlorch_dev_builds_without_importing_dbt(
    warm_twins: tuple[TinyProject, TinyProject],
) -> None:
    by_dbt, by_sqlorch = warm_twins
    by_sqlorch.write(EDITED)
    by_dbt.write(EDITED)
    # the build starts at once: it waits for the warm process's parse and compile
    assert not_imported_dbt(by_sqlorch.path, "build")
    assert query(by_sqlorch.db, "select tripled from main.after_table order by 1") == [
        (3,),
        (3,),
        (6,),
    ]
    assert run_dbt(by_dbt.path, "build").returncode == 0
    assert relations(by_sqlorch.db) == relations(by_dbt.db)
    runs = events(by_sqlorch.path)
    started = [e["data"] for e in runs if e["kind"] == "dbt_invocation_started"]
    assert not [d for d in started if d.get("compile")]
    # a second edit: again no dbt in the build, the new rows written
    second = {
        "models/after_table.sql": """
            {{ config(materialized='table') }}
            select team, people * 4 as quadrupled from {{ ref('people_table') }}
        """
    }
    by_sqlorch.write(second)
    by_dbt.write(second)
    assert not_imported_dbt(by_sqlorch.path, "build")
    assert run_dbt(by_dbt.path, "build").returncode == 0
    assert relations(by_sqlorch.db) == relations(by_dbt.db)


def test_a_build_parses_itself_when_the_warm_process_cannot(make_dbt_project: Make) -> None:
    project = make_dbt_project(TWIN_FILES, name="twin")
    ok(run_cli(project.path, "build"))
    with dev_process(project.path):
        # a half-edited file: the warm process cannot parse it; the build says what is wrong
        project.write({"models/after_table.sql": "select {{ ref('people_table' }}\n"})
        bad = run_cli(project.path, "build")
        assert bad.exit_code == 2, bad.describe()
        assert "after_table" in bad.flat
        # fixed: the warm process takes it up again, the build imports no dbt
        project.write(EDITED)
        assert not_imported_dbt(project.path, "build")


def test_an_incremental_model_and_a_seed_edited_under_sqlorch_dev_import_no_dbt(
    warm_twins: tuple[TinyProject, TinyProject],
) -> None:
    by_dbt, by_sqlorch = warm_twins
    # a row only an incremental run keeps (a full rebuild would drop it)
    for twin in warm_twins:
        query(twin.db, "insert into main.growing values (99, 'kept')")
    growing = {
        "models/growing.sql": """
            {{ config(materialized='incremental', unique_key='id') }}
            select id, lower(name) as name from {{ ref('people_view') }}
        """
    }
    by_sqlorch.write(growing)
    by_dbt.write(growing)
    assert not_imported_dbt(by_sqlorch.path, "build")
    assert run_dbt(by_dbt.path, "build").returncode == 0
    assert query(
        by_sqlorch.db, "select name from main.growing where id in (1, 99) order by id"
    ) == [
        ("ann",),
        ("kept",),
    ]
    assert relations(by_sqlorch.db) == relations(by_dbt.db)
    started = [e["data"] for e in events(by_sqlorch.path) if e["kind"] == "dbt_invocation_started"]
    assert not [d for d in started if d.get("compile")]

    teams = {"seeds/teams.csv": "id,label\n10,red\n20,blue\n30,green\n40,black\n"}
    by_sqlorch.write(teams)
    by_dbt.write(teams)
    assert not_imported_dbt(by_sqlorch.path, "build", "-s", "teams")
    assert run_dbt(by_dbt.path, "build", "-s", "teams").returncode == 0
    assert relations(by_sqlorch.db) == relations(by_dbt.db)


@contextlib.contextmanager
def ui_process(project: Path, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`sqlorch ui` over `project` (warm by default), its output in `log`; stopped by SIGTERM."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "sqlorch.cli", "ui", "--project-dir", str(project)]
            + ["--port", str(free_port())],
            cwd=project,
            env=clean_environ(),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        print(log.read_text())


def test_sqlorch_ui_alone_keeps_the_project_warm_and_a_second_one_does_not_compete(
    make_dbt_project: Make, tmp_path: Path
) -> None:
    project = make_dbt_project(TWIN_FILES, name="twin")
    ok(run_cli(project.path, "build"))
    info = project.path / ".sqlorch" / "dbt" / "warm.json"
    with ui_process(project.path, tmp_path / "first.log") as first:
        deadline = time.monotonic() + 120
        while not info.exists():
            assert first.poll() is None, (tmp_path / "first.log").read_text()
            assert time.monotonic() < deadline, "sqlorch ui did not announce a warm compiler"
            time.sleep(0.1)
        assert json.loads(info.read_text())["pid"] == first.pid
        wait_idle(project.path)
        project.write(EDITED)
        assert not_imported_dbt(project.path, "build")
        assert query(project.db, "select tripled from main.after_table order by 1") == [
            (3,),
            (3,),
            (6,),
        ]
        second_log = tmp_path / "second.log"
        with ui_process(project.path, second_log):
            deadline = time.monotonic() + 120
            while "already keeps this project warm" not in second_log.read_text():
                assert time.monotonic() < deadline, "the second ui did not leave it to the first"
                time.sleep(0.2)
            assert json.loads(info.read_text())["pid"] == first.pid
        assert f"process {first.pid} already keeps" in second_log.read_text()
    assert not info.exists(), "the warm compiler did not withdraw on SIGTERM"
