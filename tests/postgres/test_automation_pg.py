"""`sqlorch tick` and `sqlorch daemon` as real processes with the state in PostgreSQL.

The project of tests/automation/test_processes.py (a folder sensor hands CSV files to a Python
asset; two eager dbt models follow in the same run), its state store in a fresh database of
the session's cluster: ticks, run keys, cursors, the request queue and the daemon lease live
in PostgreSQL, and every request still runs exactly once when processes are killed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from conftest import TinyProject, clean_environ, run_cli_subprocess

from tests.automation.test_processes import FILES, ORDERS, SETTINGS, drop, totals, wait_for

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_orders(make_dbt_project: Callable[..., TinyProject], pg_url: str) -> TinyProject:
    settings = SETTINGS.replace("{grace}", "30s").replace(
        "[tool.sqlorch]\n", f'[tool.sqlorch]\nstate_url = "{pg_url}"\n', 1
    )
    project = make_dbt_project({**FILES, "pyproject.toml": settings}, {"ingest/orders.py": ORDERS})
    (project.path / "landing").mkdir()
    return project


def sql(project: TinyProject, statement: str, params: tuple[Any, ...] = ()) -> list[Any]:
    """Query the project's state store (the URL in its settings)."""
    import tomllib

    import psycopg

    url = tomllib.loads((project.path / "pyproject.toml").read_text())["tool"]["sqlorch"]
    with psycopg.connect(url["state_url"], autocommit=True) as con:
        return con.execute(statement, params).fetchall()


def requests(project: TinyProject) -> list[tuple[str, str, int]]:
    return sql(
        project,
        "SELECT request_id, status, attempt FROM sqlorch.automation_requests ORDER BY created_at",
    )


def runs(project: TinyProject) -> list[tuple[str, str]]:
    return sql(project, "SELECT run_id, status FROM sqlorch.runs ORDER BY started_at")


def tick(project: TinyProject) -> Any:
    result = run_cli_subprocess(project.path, "tick", "--json")
    assert result.exit_code == 0, result.describe()
    return result.json()


@pytest.fixture
def spawn() -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []

    def start(project: TinyProject, command: str, log: str = "") -> subprocess.Popen[bytes]:
        out = open(project.path / log, "wb") if log else subprocess.DEVNULL  # noqa: SIM115
        proc = subprocess.Popen(
            [sys.executable, "-m", "sqlorch.cli", command, "--project-dir", str(project.path)],
            cwd=project.path,
            env=clean_environ(),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_ticks_on_postgres_state_run_each_file_once_even_when_a_tick_is_killed(
    pg_orders: TinyProject, spawn: Callable[..., subprocess.Popen[bytes]]
) -> None:
    drop(pg_orders, "o1.csv", "1,10\n2,20\n")
    first = tick(pg_orders)
    assert [r["status"] for r in first["runs"]] == ["success"]  # ONE run for the chain
    assert tick(pg_orders)["runs"] == []  # the file was handed over once (its run key)
    assert totals(pg_orders) == (2, 30)
    assert not (pg_orders.path / ".sqlorch" / "state.db").exists()  # all of it in PostgreSQL
    keys = sql(pg_orders, "SELECT run_key FROM sqlorch.automation_run_keys")
    assert [k.split("@")[0] for (k,) in keys] == ["landing/o1.csv"]

    # a tick killed (with the build it launched) mid-run: the next tick fails the dead
    # request and runs it once more; the file is not handed over twice
    drop(pg_orders, "o2.csv", "3,30\n")
    (pg_orders.path / "slow").write_text("60")
    proc = spawn(pg_orders, "tick")
    wait_for(lambda: (pg_orders.path / "running").exists(), why="the run to start")
    (rid, status, _) = requests(pg_orders)[-1]
    assert status == "running"
    [(pid,)] = sql(
        pg_orders, "SELECT pid FROM sqlorch.automation_requests WHERE request_id = %s", (rid,)
    )
    os.kill(proc.pid, signal.SIGKILL)
    os.kill(pid, signal.SIGKILL)
    proc.wait(timeout=30)
    (pg_orders.path / "slow").unlink()
    (pg_orders.path / "running").unlink()
    again = tick(pg_orders)
    assert [r["status"] for r in again["runs"]] == ["success"], again
    assert [(s, a) for _, s, a in requests(pg_orders)] == [
        ("success", 1),
        ("failed", 1),
        ("success", 2),
    ]
    assert totals(pg_orders) == (1, 30)  # the asset replaces its table with o2's rows
    assert tick(pg_orders)["runs"] == []
    keys = sql(pg_orders, "SELECT run_key FROM sqlorch.automation_run_keys ORDER BY at")
    assert [k.split("@")[0] for (k,) in keys] == ["landing/o1.csv", "landing/o2.csv"]


def test_the_daemon_on_postgres_state_killed_mid_run_and_restarted_duplicates_nothing(
    pg_orders: TinyProject, spawn: Callable[..., subprocess.Popen[bytes]]
) -> None:
    (pg_orders.path / "slow").write_text("4")
    first = spawn(pg_orders, "daemon", "daemon-1.log")
    log = pg_orders.path / "daemon-1.log"
    wait_for(lambda: "daemon " in log.read_text(), why="the daemon to start")
    # while it holds the lease (in PostgreSQL), a tick is refused, naming it
    refused = run_cli_subprocess(pg_orders.path, "tick")
    assert refused.exit_code == 2 and f"pid {first.pid}" in refused.output, refused.describe()
    drop(pg_orders, "o1.csv", "1,10\n")
    wait_for(lambda: (pg_orders.path / "running").exists(), why="the run to start")
    os.kill(first.pid, signal.SIGKILL)  # the build it launched goes on alone
    first.wait()
    drop(pg_orders, "o2.csv", "2,20\n")  # lands while no daemon runs
    again = spawn(pg_orders, "daemon", "daemon-2.log")
    wait_for(
        lambda: len([r for r in requests(pg_orders) if r[1] == "success"]) == 2,
        why="both files' runs",
    )
    time.sleep(2)  # a few more evaluations: nothing new may be requested
    assert [s for _, s, _ in requests(pg_orders)] == ["success", "success"]
    assert [s for _, s in runs(pg_orders)] == ["success", "success"]
    assert totals(pg_orders) == (1, 20)
    keys = sql(pg_orders, "SELECT run_key FROM sqlorch.automation_run_keys ORDER BY at")
    assert [k.split("@")[0] for (k,) in keys] == ["landing/o1.csv", "landing/o2.csv"]
    again.send_signal(signal.SIGTERM)
    assert again.wait(timeout=60) == 0, (pg_orders.path / "daemon-2.log").read_text()
