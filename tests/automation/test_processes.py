"""`sqlorch tick` and `sqlorch daemon` as real processes on a real dbt + DuckDB project.

A folder sensor hands CSV files to a Python asset (`context.files`) and two eager dbt models
follow it in the same run. The processes are started, killed with SIGKILL at chosen points,
restarted and stopped with SIGTERM; the state store must show every request run exactly once.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import pytest
from conftest import TinyProject, assert_clean_error, clean_environ, run_cli_subprocess

pytestmark = pytest.mark.dbt

SETTINGS = """
[tool.sqlorch]
profiles_dir = "."

[tool.sqlorch.sensors.orders]
path = "landing/*.csv"
select = "raw.orders"
settle = "0.2s"
interval = "1s"

[tool.sqlorch.automation."stg_orders order_totals"]
eager = true

[tool.sqlorch.daemon]
heartbeat = "1s"
shutdown_grace = "{grace}"
"""

ORDERS = """
import time
from pathlib import Path

from sqlorch import AssetContext, asset


@asset
def orders(context: AssetContext):
    import pyarrow as pa
    import pyarrow.csv as csv

    slow = Path("slow")
    if slow.exists():  # a test holds the run here to kill something mid-run
        Path("running").write_text(str(context.run_id))
        time.sleep(float(slow.read_text()))
    tables = [csv.read_csv(p) for p in context.files]
    context.add_metadata(files=[p.name for p in context.files])
    if not tables:
        return pa.table({"id": pa.array([], pa.int64()), "amount": pa.array([], pa.int64())})
    return pa.concat_tables(tables)
"""

FILES = {
    "models/sources.yml": """
        version: 2
        sources:
          - name: raw
            tables:
              - name: orders
    """,
    "models/stg_orders.sql": "select * from {{ source('raw', 'orders') }}\n",
    "models/order_totals.sql": (
        "select count(*) as n, sum(amount) as total from {{ ref('stg_orders') }}\n"
    ),
}


@pytest.fixture
def orders(make_dbt_project: Callable[..., TinyProject]) -> TinyProject:
    project = make_dbt_project(
        {**FILES, "pyproject.toml": SETTINGS.replace("{grace}", "30s")},
        {"ingest/orders.py": ORDERS},
    )
    (project.path / "landing").mkdir()
    return project


def drop(project: TinyProject, name: str, rows: str) -> None:
    """Write a CSV atomically into the landing folder (and let it settle)."""
    tmp = project.path / f".{name}.tmp"
    tmp.write_text("id,amount\n" + rows)
    tmp.rename(project.path / "landing" / name)
    time.sleep(0.3)


def requests(project: TinyProject) -> list[tuple[str, str, int]]:
    with sqlite3.connect(project.path / ".sqlorch" / "state.db") as con:
        return con.execute(
            "SELECT request_id, status, attempt FROM automation_requests ORDER BY created_at"
        ).fetchall()


def runs(project: TinyProject) -> list[tuple[str, str]]:
    with sqlite3.connect(project.path / ".sqlorch" / "state.db") as con:
        return con.execute("SELECT run_id, status FROM runs ORDER BY started_at").fetchall()


def wait_for(what: Callable[[], object], timeout: float = 120.0, why: str = "") -> object:
    deadline = time.time() + timeout
    while time.time() < deadline:
        got = what()
        if got:
            return got
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {why or what}")


def totals(project: TinyProject) -> tuple[int, int]:
    return tuple(scalar_row(project, "select n, total from main.order_totals"))  # type: ignore[return-value]


def scalar_row(project: TinyProject, sql: str) -> tuple[object, ...]:
    import duckdb

    con = duckdb.connect(str(project.db), read_only=True)
    try:
        return con.execute(sql).fetchone()  # type: ignore[return-value]
    finally:
        con.close()


# --------------------------------------------------------------------------- sqlorch tick


def test_two_ticks_in_a_row_run_the_chain_once_with_the_files(orders: TinyProject) -> None:
    drop(orders, "o1.csv", "1,10\n2,20\n")
    first = run_cli_subprocess(orders.path, "tick", "--json")
    assert first.exit_code == 0, first.describe()
    doc = json.loads(first.stdout)
    requested = {d["source"] for d in doc["decisions"] if d["status"] == "requested"}
    assert requested == {"sensor:orders", "asset:main.stg_orders", "asset:main.order_totals"}
    assert [r["status"] for r in doc["runs"]] == ["success"]  # ONE run for the chain
    second = run_cli_subprocess(orders.path, "tick", "--json")
    assert second.exit_code == 0, second.describe()
    assert json.loads(second.stdout)["runs"] == []
    assert len(runs(orders)) == 1
    assert totals(orders) == (2, 30)
    with sqlite3.connect(orders.path / ".sqlorch" / "state.db") as con:
        (metadata,) = con.execute(
            "SELECT metadata FROM materializations WHERE asset = 'raw.orders'"
        ).fetchone()
    assert json.loads(metadata)["files"] == ["o1.csv"]  # context.files reached the asset
    ticks = run_cli_subprocess(
        orders.path, "sensors", "ticks", "--json", "--project-dir", str(orders.path)
    )
    assert ticks.json()[-1]["status"] == "requested"
    assert ticks.json()[-1]["reasons"] == ["new file landing/o1.csv (20 bytes)"]


def test_a_tick_killed_mid_run_is_finished_by_the_next_tick_without_duplicates(
    orders: TinyProject,
) -> None:
    drop(orders, "o1.csv", "1,10\n")
    (orders.path / "slow").write_text("60")
    proc = subprocess.Popen(
        [sys.executable, "-m", "sqlorch.cli", "tick", "--project-dir", str(orders.path)],
        cwd=orders.path,
        env=clean_environ(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: (orders.path / "running").exists(), why="the run to start")
        [(rid, status, _)] = requests(orders)
        assert status == "running"
        with sqlite3.connect(orders.path / ".sqlorch" / "state.db") as con:
            (pid,) = con.execute(
                "SELECT pid FROM automation_requests WHERE request_id = ?", (rid,)
            ).fetchone()
        os.kill(proc.pid, signal.SIGKILL)  # the tick ...
        os.kill(pid, signal.SIGKILL)  # ... and the build it launched
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    (orders.path / "slow").unlink()
    again = run_cli_subprocess(orders.path, "tick", "--json")
    assert again.exit_code == 0, again.describe()
    # the dead request is failed and run once more; the file was handed over once (run key)
    assert [(s, a) for _, s, a in requests(orders)] == [("failed", 1), ("success", 2)]
    assert totals(orders) == (1, 10)
    third = run_cli_subprocess(orders.path, "tick", "--json")
    assert third.json()["runs"] == []


def test_tick_refuses_while_a_daemon_holds_the_store_and_names_it(orders: TinyProject) -> None:
    with daemon(orders) as d:
        wait_for(lambda: "daemon" in d.log(), why="the daemon to start")
        result = run_cli_subprocess(orders.path, "tick")
        assert_clean_error(result, 2, "already run by daemon:", f"pid {d.proc.pid}")
        second = run_cli_subprocess(orders.path, "daemon", timeout=60)
        assert_clean_error(second, 2, "already run by daemon:", f"pid {d.proc.pid}")


# --------------------------------------------------------------------------- the daemon


class Daemon:
    def __init__(self, project: TinyProject) -> None:
        self.project = project
        self.log_path = project.path / f"daemon-{time.time_ns()}.log"
        with open(self.log_path, "wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "sqlorch.cli", "daemon", "--project-dir", str(project.path)],
                cwd=project.path,
                env=clean_environ(),
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def log(self) -> str:
        return self.log_path.read_text()


@pytest.fixture
def daemon_factory() -> Iterator[Callable[[TinyProject], Daemon]]:
    started: list[Daemon] = []

    def start(project: TinyProject) -> Daemon:
        d = Daemon(project)
        started.append(d)
        return d

    yield start
    for d in started:
        if d.proc.poll() is None:
            d.proc.kill()
            d.proc.wait()


class daemon:  # noqa: N801 - a context manager used like a function
    def __init__(self, project: TinyProject) -> None:
        self.d = Daemon(project)

    def __enter__(self) -> Daemon:
        return self.d

    def __exit__(self, *exc: object) -> None:
        if self.d.proc.poll() is None:
            self.d.proc.send_signal(signal.SIGTERM)
            try:
                self.d.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.d.proc.kill()


def test_the_daemon_runs_a_dropped_file_through_the_chain_once_and_stops_on_sigterm(
    orders: TinyProject, daemon_factory: Callable[[TinyProject], Daemon]
) -> None:
    d = daemon_factory(orders)
    wait_for(lambda: "daemon " in d.log(), why="the daemon to start")
    drop(orders, "o1.csv", "1,10\n2,20\n3,30\n")
    wait_for(lambda: [r for r in requests(orders) if r[1] == "success"], why="the run")
    time.sleep(2)  # a few more evaluations: nothing new may be requested
    assert [(s, a) for _, s, a in requests(orders)] == [("success", 1)]
    assert len(runs(orders)) == 1
    assert totals(orders) == (3, 60)
    d.proc.send_signal(signal.SIGTERM)
    assert d.proc.wait(timeout=60) == 0, d.log()
    assert "daemon stopped" in d.log()


def test_kill_9_the_daemon_mid_run_and_restart_it_loses_and_duplicates_nothing(
    orders: TinyProject, daemon_factory: Callable[[TinyProject], Daemon]
) -> None:
    (orders.path / "slow").write_text("4")
    d = daemon_factory(orders)
    wait_for(lambda: "daemon " in d.log(), why="the daemon to start")
    drop(orders, "o1.csv", "1,10\n")
    wait_for(lambda: (orders.path / "running").exists(), why="the run to start")
    os.kill(d.proc.pid, signal.SIGKILL)  # the build it launched goes on alone
    d.proc.wait()
    drop(orders, "o2.csv", "2,20\n")  # lands while no daemon runs
    again = daemon_factory(orders)
    wait_for(
        lambda: len([r for r in requests(orders) if r[1] == "success"]) == 2,
        why="both files' runs",
    )
    time.sleep(2)
    assert [s for _, s, _ in requests(orders)] == ["success", "success"]
    assert totals(orders) == (1, 20)  # the second run read o2 (the asset replaces its table)
    with sqlite3.connect(orders.path / ".sqlorch" / "state.db") as con:
        keys = con.execute("SELECT run_key FROM automation_run_keys ORDER BY at").fetchall()
    assert [k.split("@")[0] for (k,) in keys] == ["landing/o1.csv", "landing/o2.csv"]
    again.proc.send_signal(signal.SIGTERM)
    assert again.proc.wait(timeout=60) == 0, again.log()


def test_sigterm_lets_the_running_build_finish_within_the_grace_then_cancels(
    orders: TinyProject, daemon_factory: Callable[[TinyProject], Daemon]
) -> None:
    orders.write({"pyproject.toml": SETTINGS.replace("{grace}", "1s")})
    (orders.path / "slow").write_text("120")
    d = daemon_factory(orders)
    wait_for(lambda: "daemon " in d.log(), why="the daemon to start")
    drop(orders, "o1.csv", "1,10\n")
    wait_for(lambda: (orders.path / "running").exists(), why="the run to start")
    d.proc.send_signal(signal.SIGTERM)
    assert d.proc.wait(timeout=90) == 0, d.log()
    assert "cancelling" in d.log()
    [(_, status, _)] = requests(orders)
    assert status == "cancelled"
    assert [s for _, s in runs(orders)] == ["cancelled"]


def test_a_bad_declaration_stops_tick_and_daemon_with_a_clear_error(orders: TinyProject) -> None:
    orders.write(
        {
            "pyproject.toml": SETTINGS.replace("{grace}", "1s")
            + '\n[tool.sqlorch.schedules.nightly]\ncron = "30 25 * * *"\nselect = "stg_orders"\n'
        }
    )
    for command in ("tick", "daemon"):
        result = run_cli_subprocess(orders.path, command, timeout=120)
        assert_clean_error(
            result, 2, "[tool.sqlorch.schedules.nightly]", "pyproject.toml", "not a valid cron"
        )
    orders.write({"pyproject.toml": SETTINGS.replace("landing/*.csv", "inbox/*.csv")})
    result = run_cli_subprocess(orders.path, "tick", timeout=120)
    assert_clean_error(result, 2, "[tool.sqlorch.sensors.orders]", "inbox", "does not exist")


# --------------------------------------------------------------------------- sqlorch dev


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_get(url: str) -> tuple[int, str]:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - loopback
            return response.status, response.read().decode()
    except (urllib.error.URLError, ConnectionError):
        return 0, ""


def test_dev_starts_the_ui_and_the_daemon_whose_ticks_the_automation_page_shows(
    orders: TinyProject,
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = orders.path / "dev.log"
    with open(log, "wb") as out:
        dev = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "sqlorch.cli",
                "dev",
                "--project-dir",
                str(orders.path),
                "--port",
                str(port),
            ],
            cwd=orders.path,
            env=clean_environ(),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for(lambda: "Run by" in http_get(f"{base}/automation")[1], why="UI + daemon")
        drop(orders, "o1.csv", "1,10\n2,20\n")
        wait_for(lambda: [r for r in requests(orders) if r[1] == "success"], why="the run")
        status, body = http_get(f"{base}/api/automation")
        assert status == 200
        doc = json.loads(body)
        assert doc["daemon"]["holder"].startswith("daemon:")
        [request] = doc["requests"]
        assert request["status"] == "success" and request["run_id"]
        requested = {t["source"]: t["reasons"] for t in doc["ticks"] if t["status"] == "requested"}
        assert requested["sensor:orders"] == ["new file landing/o1.csv (20 bytes)"]
        assert requested["asset:main.order_totals"] == [
            "eager: upstream main.stg_orders is built in this run"
        ]
        html = http_get(f"{base}/automation?status=requested")[1]
        assert "new file landing/o1.csv (20 bytes)" in html
        assert f'href="/runs/{request["run_id"]}"' in html
    finally:
        dev.send_signal(signal.SIGTERM)
        code = dev.wait(timeout=90)
    assert code == 0, log.read_text()
    assert http_get(f"{base}/automation")[0] == 0  # the UI stopped too
    assert "daemon stopped" in log.read_text()


# --------------------------------------------------------------------------- listings


def test_listings_preview_pause_and_resume(orders: TinyProject) -> None:
    from conftest import run_cli

    orders.write(
        {
            "pyproject.toml": SETTINGS.replace("{grace}", "1s")
            + '\n[tool.sqlorch.schedules.nightly]\ncron = "30 1 * * *"\n'
            'timezone = "America/New_York"\nselect = "+order_totals"\n'
        }
    )

    def cli(*args: str) -> object:
        result = run_cli(None, *args, "--project-dir", str(orders.path), cwd=orders.path)
        assert result.exit_code == 0, result.describe()
        return result

    [nightly] = cli("schedules", "ls", "--json").json()  # type: ignore[attr-defined]
    assert nightly["cron"] == "30 1 * * *" and nightly["timezone"] == "America/New_York"
    assert nightly["next_tick"].endswith(("05:30:00Z", "06:30:00Z"))  # 01:30 New York, in UTC
    assert nightly["assets"] == ["main.order_totals", "main.stg_orders", "raw.orders"]
    assets = cli("automation", "ls", "--json").json()  # type: ignore[attr-defined]
    assert [(a["key"], a["conditions"]) for a in assets] == [
        ("main.stg_orders", "eager"),
        ("main.order_totals", "eager"),
    ]
    drop(orders, "o1.csv", "1,10\n")
    preview = cli("sensors", "preview", "--json").json()  # type: ignore[attr-defined]
    assert [d["status"] for d in preview["decisions"]] == ["requested"]
    assert preview["run"]["full"] == ["raw.orders"]  # new data: rebuilt although not stale
    assert preview["run"]["select"] == ["main.stg_orders", "main.order_totals"]  # eager, after
    assert requests(orders) == []  # a preview records and launches nothing
    cli("sensors", "pause", "orders")
    assert cli("sensors", "ls", "--json").json()[0]["paused"] is True  # type: ignore[attr-defined]
    paused = cli("sensors", "preview", "--json").json()  # type: ignore[attr-defined]
    assert paused["run"] is None
    cli("sensors", "resume", "orders")
    cli("schedules", "resume", "nightly")
    with sqlite3.connect(orders.path / ".sqlorch" / "state.db") as con:
        cursors = dict(con.execute("SELECT source, cursor FROM automation_cursors"))
    assert "schedule:nightly" in cursors  # resumed: it starts from now, no flood
    bad = run_cli(None, "schedules", "pause", "weekly", "--project-dir", str(orders.path))
    assert_clean_error(bad, 2, "No schedule named 'weekly'", "Declared: nightly")


# --------------------------------------------------------------------------- file -> partition

DAILY_ORDERS = """
import pyarrow as pa
import pyarrow.csv as csv

from sqlorch import AssetContext, asset, daily


@asset(partitions=daily("2013-01-01", end="2013-01-10", column="day"))
def orders(context: AssetContext):
    day = context.partition.start.date()
    amounts = []
    for path in context.files:
        if path.name == f"orders_{day.isoformat()}.csv":
            amounts += csv.read_csv(path).column("amount").to_pylist()
    days = pa.array([day] * len(amounts), pa.date32())
    return pa.table({"day": days, "amount": pa.array(amounts, pa.int64())})
"""


def test_a_file_builds_the_partition_its_name_maps_to_and_downstream(
    make_dbt_project: Callable[..., TinyProject],
) -> None:
    project = make_dbt_project(
        {
            "models/sources.yml": FILES["models/sources.yml"],
            "models/daily_totals.sql": (
                "select day, sum(amount) as total from {{ source('raw', 'orders') }} group by day\n"
            ),
            "pyproject.toml": """
                [tool.sqlorch]
                profiles_dir = "."

                [tool.sqlorch.sensors.orders]
                path = "landing/*.csv"
                select = "raw.orders+"
                settle = "0.1s"
                partition = "orders_{key}.csv"
            """,
        },
        {"ingest/orders.py": DAILY_ORDERS},
        name="daily",
    )
    (project.path / "landing").mkdir()
    built = run_cli_subprocess(project.path, "build")
    assert built.exit_code == 0, built.describe()
    (project.path / "landing" / "orders_2013-01-03.csv").write_text("amount\n5\n7\n")
    time.sleep(0.3)
    tick = run_cli_subprocess(project.path, "tick", "--json")
    assert tick.exit_code == 0, tick.describe()
    [decision] = [d for d in tick.json()["decisions"] if d["status"] == "requested"]
    assert decision["reasons"] == [
        "new file landing/orders_2013-01-03.csv (11 bytes) -> partition 2013-01-03"
    ]
    assert scalar_row(project, "select sum(amount) from raw.orders") == (12,)
    assert scalar_row(project, "select total from main.daily_totals") == (12,)
    with sqlite3.connect(project.path / ".sqlorch" / "state.db") as con:
        ledger = con.execute(
            "SELECT lo, hi FROM partition_ledger WHERE asset = 'raw.orders' AND run_id = "
            "(SELECT run_id FROM runs WHERE command = 'automation')"
        ).fetchall()
    assert ledger == [("2013-01-03", "2013-01-03")]  # that partition only
