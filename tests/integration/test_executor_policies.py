"""The executor's retries, rate limits and Python checks on a real DuckDB file.

Sleeping and clocks are faked (RunPolicies.sleep / monotonic): no test waits for a back-off.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from sqlorch import CheckResult, asset, check
from sqlorch.api.checks import CheckDefinition
from sqlorch.api.retries import RetryPolicy
from sqlorch.core.graph import AssetGraph, AssetKind, AssetNode, CheckKind, CheckNode
from sqlorch.core.plan.builder import build_plan
from sqlorch.events import Event, EventKind
from sqlorch.execute.policies import RunPolicies
from sqlorch.execute.scheduler import Executor
from sqlorch.execute.status import RunOutcome, Status
from sqlorch.warehouse.duckdb import DuckDBWarehouse


class FakeTime:
    """A clock that only moves when something sleeps."""

    def __init__(self) -> None:
        self.t = 0.0
        self.sleeps: list[float] = []
        self._lock = threading.Lock()

    def monotonic(self) -> float:
        with self._lock:
            return self.t

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            self.t += seconds


def run(
    tmp_path: Path,
    defs: dict[str, Any],
    deps: dict[str, tuple[str, ...]] | None = None,
    checks: dict[str, CheckDefinition] | None = None,
    **policies: Any,
) -> tuple[RunOutcome, list[Event]]:
    deps = deps or {}
    nodes = [
        AssetNode(
            key,
            AssetKind.PYTHON,
            key.split(".")[1],
            deps=deps.get(key, ()),
            file="ingest/x.py",
            pool=defs[key].pool,
        )
        for key in defs
    ]
    check_nodes = [
        CheckNode(
            unique_id=f"check.python.x.{d.name}",
            name=d.name,
            asset_keys=(d.asset,),
            file="tests/integration/test_executor_policies.py",
            severity="error" if d.blocking else "warn",
            kind=CheckKind.PYTHON,
        )
        for d in (checks or {}).values()
    ]
    graph = AssetGraph(nodes, check_nodes)
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
            threads=4,
            listeners=[events.append],
            pools=policies.pop("pools", None),
            policies=RunPolicies(
                python_checks={f"check.python.x.{d.name}": d for d in (checks or {}).values()},
                **policies,
            ),
        ).run()
    finally:
        warehouse.close()
    return outcome, events


def of_kind(events: list[Event], kind: EventKind, key: str | None = None) -> list[Event]:
    return [e for e in events if e.kind is kind and (key is None or e.asset == key)]


def test_a_flaky_asset_that_fails_twice_succeeds_on_its_third_attempt(tmp_path: Path) -> None:
    calls: list[int] = []

    @asset(retries=3, backoff="exponential", retry_delay="2s")
    def flaky(context):
        calls.append(context.attempt)
        if len(calls) < 3:
            raise ConnectionError(f"the API hung up (call {len(calls)})")
        return pa.table({"x": [1, 2]})

    time = FakeTime()
    outcome, events = run(tmp_path, {"raw.flaky": flaky}, sleep=time.sleep)
    assert outcome.status == "success", outcome.errors
    assert calls == [1, 2, 3]
    assert time.sleeps == [2.0, 4.0]  # exponential from 2 s
    retries = of_kind(events, EventKind.ASSET_RETRY, "raw.flaky")
    assert [e.data["attempt"] for e in retries] == [1, 2]
    assert "the API hung up (call 1)" in retries[0].message
    (mat,) = of_kind(events, EventKind.ASSET_MATERIALIZED, "raw.flaky")
    assert mat.data["metadata"] == {"attempts": 3}
    assert not of_kind(events, EventKind.ASSET_FAILED)


def test_retries_run_out_and_the_last_error_is_reported(tmp_path: Path) -> None:
    @asset(retries=2, backoff="constant", retry_delay=1)
    def hopeless():
        raise ValueError("always broken")

    @asset(deps=["raw.hopeless"])
    def child():
        return pa.table({"x": [1]})

    time = FakeTime()
    outcome, events = run(
        tmp_path,
        {"raw.hopeless": hopeless, "raw.child": child},
        {"raw.child": ("raw.hopeless",)},
        sleep=time.sleep,
    )
    assert outcome.statuses == {"raw.hopeless": Status.FAILED, "raw.child": Status.SKIPPED}
    assert time.sleeps == [1.0, 1.0]
    assert len(of_kind(events, EventKind.ASSET_RETRY)) == 2
    assert "always broken" in outcome.errors["raw.hopeless"]


def test_settings_policy_wins_over_the_decorator(tmp_path: Path) -> None:
    calls: list[int] = []

    @asset(retries=5)
    def once():
        calls.append(1)
        raise ValueError("no")

    time = FakeTime()
    outcome, _ = run(
        tmp_path, {"raw.once": once}, sleep=time.sleep, retries={"raw.once": RetryPolicy(0)}
    )
    assert outcome.status == "failed" and calls == [1] and time.sleeps == []


def test_transient_warehouse_errors_are_retried_without_a_policy(tmp_path: Path) -> None:
    calls: list[int] = []

    @asset
    def locked():
        calls.append(1)
        if len(calls) == 1:
            raise duckdb.IOException(
                'IO Error: Could not set lock on file "x.duckdb": Conflicting lock is held'
            )
        return pa.table({"x": [1]})

    @asset
    def plain_error():
        raise ValueError("not transient")

    time = FakeTime()
    outcome, events = run(
        tmp_path, {"raw.locked": locked, "raw.plain_error": plain_error}, sleep=time.sleep
    )
    assert outcome.statuses["raw.locked"] is Status.SUCCEEDED
    assert outcome.statuses["raw.plain_error"] is Status.FAILED
    assert time.sleeps == [0.5]
    assert [e.asset for e in of_kind(events, EventKind.ASSET_RETRY)] == ["raw.locked"]


def test_a_pool_rate_spaces_requests_across_its_assets(tmp_path: Path) -> None:
    stamps: list[float] = []
    time = FakeTime()
    lock = threading.Lock()

    def make(name: str) -> Any:
        def fn(context):
            for _ in range(3):
                context.throttle()
                with lock:
                    stamps.append(time.monotonic())
            return pa.table({"x": [1]})

        fn.__name__ = name
        return asset(pool="nyc_api")(fn)

    defs = {f"raw.api{i}": make(f"api{i}") for i in range(3)}
    outcome, _ = run(
        tmp_path,
        defs,
        sleep=time.sleep,
        monotonic=time.monotonic,
        pool_rates={"nyc_api": 2.0},
    )
    assert outcome.status == "success", outcome.errors
    stamps.sort()
    assert len(stamps) == 9
    # nine requests at 2 per second, from three assets at once: 4 s of (fake) time at least
    assert stamps[-1] - stamps[0] >= 4.0 - 1e-9
    gaps = [b - a for a, b in zip(stamps, stamps[1:], strict=False)]
    assert min(gaps) >= 0.5 - 1e-9


def test_a_failing_blocking_python_check_stops_downstream(tmp_path: Path) -> None:
    @asset
    def orders():
        return pa.table({"amount": [5, -3, 7]})

    @asset(deps=["raw.orders"])
    def report():
        return pa.table({"x": [1]})

    @asset
    def other():
        return pa.table({"x": [1]})

    @asset(deps=["raw.other"])
    def other_report():
        return pa.table({"x": [1]})

    @check(asset="raw.orders")
    def amounts_positive(rows):
        negative = sum(1 for v in rows.column("amount").to_pylist() if v < 0)
        return CheckResult(negative == 0, f"{negative} negative amounts", {"negative": negative})

    @check(asset="raw.other", blocking=False)
    def never_happy(connection):
        (n,) = connection.execute("select count(*) from raw.other").fetchone()
        return n > 100

    outcome, events = run(
        tmp_path,
        {
            "raw.orders": orders,
            "raw.report": report,
            "raw.other": other,
            "raw.other_report": other_report,
        },
        {"raw.report": ("raw.orders",), "raw.other_report": ("raw.other",)},
        {"a": amounts_positive, "b": never_happy},
    )
    assert outcome.statuses == {
        # the blocking check ran inside the write and rolled it back (write-audit-publish)
        "raw.orders": Status.FAILED,
        "raw.report": Status.SKIPPED,
        "raw.other": Status.SUCCEEDED,
        "raw.other_report": Status.SUCCEEDED,  # a warn check does not stop downstream
    }
    assert outcome.check_statuses == {
        "check.python.x.amounts_positive": "fail",
        "check.python.x.never_happy": "warn",
    }
    (failed,) = of_kind(events, EventKind.CHECK_FAILED)
    assert failed.asset == "raw.orders"
    assert failed.data["metadata"]["negative"] == 1
    assert failed.data["blocking"] is True and failed.data["check_kind"] == "python"
    (skipped,) = of_kind(events, EventKind.ASSET_SKIPPED)
    assert "amounts_positive" in skipped.message
    # the check ran on the new rows before they were published: nothing materialized
    kinds = [(e.kind, e.asset) for e in events]
    assert (EventKind.ASSET_MATERIALIZED, "raw.orders") not in kinds
    (failed_asset,) = [e for e in events if e.kind == EventKind.ASSET_FAILED]
    assert "rolled back" in failed_asset.message
    # the non-blocking check ran after its asset was materialized
    assert kinds.index((EventKind.ASSET_MATERIALIZED, "raw.other")) < kinds.index(
        (EventKind.CHECK_WARNED, "raw.other")
    )


def test_a_check_that_raises_is_an_error_naming_its_line(tmp_path: Path) -> None:
    @asset
    def t():
        return pa.table({"x": [1]})

    @check(asset="raw.t")
    def broken_check(context):
        context.log.info("looking at %s", context.table)
        return {"not": "a bool"}

    @check(asset="raw.t", name="divides")
    def raises(context):
        return 1 / 0 > 0

    outcome, events = run(tmp_path, {"raw.t": t}, checks={"a": broken_check, "b": raises})
    assert outcome.status == "failed"
    assert outcome.check_statuses == {
        "check.python.x.broken_check": "error",
        "check.python.x.divides": "error",
    }
    messages = {e.data["check"]: e.message for e in of_kind(events, EventKind.CHECK_FAILED)}
    assert "returned dict" in messages["broken_check"]
    assert "ZeroDivisionError" in messages["divides"]
    assert "test_executor_policies.py:" in messages["divides"]
    logs = [e.message for e in of_kind(events, EventKind.ASSET_LOG)]
    assert 'looking at "raw"."t"' in logs


def test_checks_without_a_queryable_warehouse_are_clear_errors(tmp_path: Path) -> None:
    from sqlorch.core.plan.definition import Plan

    source = AssetNode("raw.src", AssetKind.SOURCE, "src")
    builtin = CheckNode(
        unique_id="check.builtin.raw.src.row_count",
        name="row_count_src",
        asset_keys=("raw.src",),
        kind=CheckKind.BUILTIN,
        config={"type": "row_count", "severity": "error", "max_drop_pct": 50.0, "min_rows": 1},
    )
    graph = AssetGraph([source], [builtin])
    events: list[Event] = []
    outcome = Executor(
        graph=graph,
        plan=Plan(steps=(), checks=(builtin.unique_id,), selected=frozenset({"raw.src"})),
        python_fns={},
        warehouse=None,
        invoker=None,
        dbt_project=None,
        run_id="r1",
        run_dir=tmp_path / "run",
        threads=2,
        listeners=[events.append],
    ).run()
    assert outcome.status == "failed"
    (failed,) = of_kind(events, EventKind.CHECK_FAILED)
    assert "through a warehouse it can open" in failed.message
