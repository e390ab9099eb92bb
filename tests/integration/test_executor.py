"""The executor on Python assets with a real DuckDB file (dbt runs are in other tests)."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa
import pytest

from sqlorch import MaterializeResult, asset, daily
from sqlorch.core.graph import AssetGraph, AssetKind, AssetNode
from sqlorch.core.plan.builder import build_plan
from sqlorch.core.plan.definition import Plan, Step
from sqlorch.events import Event, EventKind
from sqlorch.execute.scheduler import Executor
from sqlorch.execute.status import Status
from sqlorch.warehouse.duckdb import DuckDBWarehouse


def _run(tmp_path: Path, defs: dict[str, Any], deps: dict[str, tuple[str, ...]], **kw: Any):
    nodes = [
        AssetNode(
            key,
            AssetKind.PYTHON,
            key.split(".")[1],
            deps=deps.get(key, ()),
            file="ingest/x.py",
            pool=getattr(defs[key], "pool", None),
        )
        for key in defs
    ]
    graph = AssetGraph(nodes)
    events: list[Event] = []
    warehouse = DuckDBWarehouse(str(tmp_path / "wh.duckdb"))
    try:
        outcome = Executor(
            graph=graph,
            plan=build_plan(graph, set(graph.assets)),
            python_fns=defs,
            warehouse=warehouse,
            invoker=None,
            dbt_project=None,
            run_id="r1",
            run_dir=tmp_path / "run",
            threads=kw.get("threads", 4),
            listeners=[events.append],
            pools=kw.get("pools"),
        ).run()
    finally:
        warehouse.close()
    return outcome, events


def test_python_assets_write_every_supported_return_type(tmp_path: Path) -> None:
    @asset
    def arrow_table():
        return pa.table({"x": [1, 2, 3]})

    @asset
    def reader():
        return pa.table({"x": [1, 2]}).to_reader()

    @asset
    def pandas_frame():
        return pd.DataFrame({"x": [1, 2, 3, 4]})

    @asset
    def relation(context):
        return context.warehouse.connection.sql("SELECT * FROM range(5) t(x)")

    @asset
    def writes_itself(context):
        context.warehouse.connection.execute(
            "CREATE OR REPLACE TABLE raw.writes_itself AS SELECT 42 AS answer"
        )
        context.log.info("wrote it myself")

    @asset
    def with_metadata(context):
        context.add_metadata(source="unit-test")
        return MaterializeResult(pa.table({"x": [1]}), metadata={"extra": 1})

    defs = {
        f"raw.{d.name}": d
        for d in (arrow_table, reader, pandas_frame, relation, writes_itself, with_metadata)
    }
    outcome, events = _run(tmp_path, defs, {})
    assert outcome.status == "success", outcome.errors
    rows = {e.asset: e.data["rows"] for e in events if e.kind is EventKind.ASSET_MATERIALIZED}
    assert rows == {
        "raw.arrow_table": 3,
        "raw.reader": 2,
        "raw.pandas_frame": 4,
        "raw.relation": 5,
        "raw.writes_itself": 1,
        "raw.with_metadata": 1,
    }
    meta = next(
        e.data["metadata"]
        for e in events
        if e.asset == "raw.with_metadata" and e.kind is EventKind.ASSET_MATERIALIZED
    )
    assert meta == {"extra": 1, "source": "unit-test"}
    logs = [e.message for e in events if e.kind is EventKind.ASSET_LOG]
    assert logs == ["wrote it myself"]
    con = duckdb.connect(str(tmp_path / "wh.duckdb"))
    assert con.execute("SELECT sum(x) FROM raw.pandas_frame").fetchone() == (10,)
    assert con.execute("SELECT answer FROM raw.writes_itself").fetchone() == (42,)


def test_a_failure_skips_downstream_and_independent_branches_go_on(tmp_path: Path) -> None:
    @asset
    def broken():
        raise ValueError("the API said no")

    @asset
    def after_broken():
        return pa.table({"x": [1]})

    @asset
    def independent():
        return pa.table({"x": [1]})

    @asset
    def bad_type():
        return 42

    defs = {
        "raw.broken": broken,
        "raw.after_broken": after_broken,
        "raw.independent": independent,
        "raw.bad_type": bad_type,
    }
    outcome, events = _run(tmp_path, defs, {"raw.after_broken": ("raw.broken",)})
    assert outcome.status == "failed"
    assert outcome.statuses == {
        "raw.broken": Status.FAILED,
        "raw.after_broken": Status.SKIPPED,
        "raw.independent": Status.SUCCEEDED,
        "raw.bad_type": Status.FAILED,
    }
    assert "ValueError" in outcome.errors["raw.broken"]
    assert "the API said no" in outcome.errors["raw.broken"]
    assert "test_executor.py:" in outcome.errors["raw.broken"]  # file:line of the raise
    assert "builtins.int" in outcome.errors["raw.bad_type"]
    skipped = next(e for e in events if e.kind is EventKind.ASSET_SKIPPED)
    assert "raw.broken" in skipped.message


def test_a_pool_of_one_never_runs_two_of_its_assets_at_once(tmp_path: Path) -> None:
    spans: list[tuple[str, float, float]] = []
    lock = threading.Lock()

    def make(name: str) -> Any:
        def fn():
            start = time.monotonic()
            time.sleep(0.05)
            with lock:
                spans.append((name, start, time.monotonic()))
            return pa.table({"x": [1]})

        fn.__name__ = name
        return asset(pool="api")(fn)

    defs = {f"raw.a{i}": make(f"a{i}") for i in range(4)}
    outcome, _ = _run(tmp_path, defs, {}, pools={"api": 1}, threads=4)
    assert outcome.status == "success"
    spans.sort(key=lambda s: s[1])
    for (_, _, end), (_, start, _) in zip(spans, spans[1:], strict=False):
        assert start >= end


# a query that runs for minutes unless interrupted (DuckDB checks for interrupts between vectors)
LONG_QUERY = "SELECT sum(hash(a.range + b.range)) FROM range(1000000) a, range(1000000) b"


@pytest.mark.parametrize("partitioned", [False, True], ids=["whole", "partitioned"])
def test_a_second_ctrl_c_interrupts_a_python_assets_running_query(
    tmp_path: Path, partitioned: bool, ctrl_c_raises: None
) -> None:
    """Whole or partitioned, a Python asset's warehouse query stops at the second Ctrl-C."""
    started = threading.Event()
    ended: list[str] = []
    connections: list[Any] = []
    # what went wrong in the presser thread, or the watchdog stopping a query nothing stopped
    # (either way the asset's query is interrupted so the test ends, and then fails)
    problems: list[str] = []

    def stop_the_query(why: str) -> None:
        problems.append(why)
        for con in connections:
            with contextlib.suppress(duckdb.Error):
                con.interrupt()

    @asset(partitions=daily("2024-01-01", end="2024-01-02") if partitioned else None)
    def slow(context):
        con = context.warehouse.connection
        connections.append(con)
        started.set()
        try:
            con.execute(LONG_QUERY).fetchall()
        except duckdb.InterruptException:
            ended.append("interrupted")
            raise
        ended.append("finished")
        return pa.table({"x": [1]})

    key = "raw.slow"
    node = AssetNode(key, AssetKind.PYTHON, "slow", file="ingest/x.py", partitions=slow.partitions)
    graph = AssetGraph([node])
    ranges = (("2024-01-01", "2024-01-01"),) if partitioned else None
    plan = Plan(
        steps=(Step(key, AssetKind.PYTHON, ("test",), partitions=ranges),),
        checks=(),
        selected=frozenset({key}),
    )
    events: list[Event] = []
    warehouse = DuckDBWarehouse(str(tmp_path / "wh.duckdb"))
    executor = Executor(
        graph=graph,
        plan=plan,
        python_fns={key: slow},
        warehouse=warehouse,
        invoker=None,
        dbt_project=None,
        run_id="r1",
        run_dir=tmp_path / "run",
        threads=2,
        listeners=[events.append],
    )

    def press_ctrl_c_twice() -> None:
        if not started.wait(30):
            return stop_the_query("the asset never started")
        time.sleep(0.3)  # let its query get going
        os.kill(os.getpid(), signal.SIGINT)
        deadline = time.monotonic() + 30
        while not any("cancelling" in e.message for e in list(events)):
            if time.monotonic() > deadline:
                return stop_the_query("the executor never noticed the first Ctrl-C")
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGINT)

    presser = threading.Thread(target=press_ctrl_c_twice, daemon=True)
    watchdog = threading.Timer(120, stop_the_query, ("no Ctrl-C stopped the query in 120 s",))
    presser.start()
    watchdog.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            executor.run()
        presser.join(5)
        deadline = time.monotonic() + 10
        while not ended and time.monotonic() < deadline:
            time.sleep(0.05)
        assert problems == []
        assert ended == ["interrupted"], "the second Ctrl-C did not interrupt the asset's query"
        assert executor.status[key] is Status.FAILED
        assert "second Ctrl-C" in events[-1].message
    finally:
        watchdog.cancel()
        for con in connections:  # never leave the query running past the test
            with contextlib.suppress(duckdb.Error):
                con.interrupt()
        warehouse.close()


@pytest.fixture
def ctrl_c_raises() -> Iterator[None]:
    """Make SIGINT raise KeyboardInterrupt, as in a terminal, for the length of a test.

    A process started in the background by a shell without job control (`pytest &`, some CI
    runners) inherits SIGINT ignored: the test's simulated Ctrl-C would never arrive.
    """
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
