"""The automation tables (lease, one-transaction commit, claims) and declaration errors."""

from __future__ import annotations

import os
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from sqlorch.api.automation import RunRequest, SensorResult, sensor
from sqlorch.automation.definitions import FunctionSensor, read_spec
from sqlorch.automation.evaluate import AssetFacts, Facts, TickStatus, evaluate
from sqlorch.automation.sensors import call_sensor
from sqlorch.automation.ticks import sweep
from sqlorch.core.graph import AssetGraph, AssetKind, AssetNode
from sqlorch.errors import ConfigError, SelectionError, StateError
from sqlorch.settings import load_settings
from sqlorch.state.automation import (
    AutomationStore,
    LeaseRecord,
    RequestRecord,
    RequestStatus,
    TickRecord,
)
from sqlorch.state.store import StateStore

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
GRAPH = AssetGraph(
    [
        AssetNode(key="raw.a", kind=AssetKind.PYTHON, name="a"),
        AssetNode(key="stg.b", kind=AssetKind.MODEL, name="b", deps=("raw.a",)),
    ]
)


def request(rid: str = "req-1", **kw: object) -> RequestRecord:
    return RequestRecord(
        request_id=rid,
        created_at="2026-03-02T12:00:00Z",
        status=RequestStatus.QUEUED,
        spec={"select": ["raw.a"]},
        **kw,  # type: ignore[arg-type]
    )


def tick(source: str = "schedule:n", rid: str | None = "req-1") -> TickRecord:
    return TickRecord(
        "t-1", source, "schedule", "2026-03-02T12:00:00Z", "requested", request_id=rid
    )


# --------------------------------------------------------------------------- the store


def test_the_lease_names_its_holder_and_is_taken_over_when_the_holder_died(tmp_path: Path) -> None:
    store = AutomationStore(StateStore(tmp_path / "state.db"))
    me = LeaseRecord("daemon:h:1", "h", os.getpid(), "t0", 100.0)
    assert store.acquire_lease("automation", me, 15, lambda pid: True) is None
    other = LeaseRecord("daemon:h:2", "h", 2, "t1", 105.0)
    held = store.acquire_lease("automation", other, 15, lambda pid: True)
    assert held is not None and held.holder == "daemon:h:1"
    # the holder's process is gone (same host): taken over at once
    assert store.acquire_lease("automation", other, 15, lambda pid: False) is None
    assert store.heartbeat("automation", "daemon:h:1", 106.0) is False
    # expired heartbeat (another host): taken over
    third = LeaseRecord("daemon:x:3", "x", 3, "t2", 200.0)
    assert store.acquire_lease("automation", third, 15, lambda pid: True) is None


def test_a_tick_commits_ticks_request_run_keys_and_cursor_together(tmp_path: Path) -> None:
    store = AutomationStore(StateStore(tmp_path / "state.db"))
    store.commit_tick([tick()], request(), [("schedule:n", "k1")], {"schedule:n": "c1"}, "now")
    assert store.used_run_keys("schedule:n", ["k1", "k2"]) == {"k1"}
    assert store.cursors() == {"schedule:n": "c1"}
    # a second commit that reuses the run key fails as a whole: no tick, no request, no cursor
    with pytest.raises(sqlite3.IntegrityError):
        store.commit_tick(
            [TickRecord("t-2", "schedule:n", "schedule", "x", "requested")],
            request("req-2"),
            [("schedule:n", "k1")],
            {"schedule:n": "c2"},
            "now",
        )
    assert [r.request_id for r in store.requests()] == ["req-1"]
    assert [t.tick_id for t in store.ticks()] == ["t-1"]
    assert store.cursors() == {"schedule:n": "c1"}


def test_a_commit_is_refused_when_the_cursor_moved_meanwhile(tmp_path: Path) -> None:
    store = AutomationStore(StateStore(tmp_path / "state.db"))
    store.commit_tick([], None, [], {"sensor:s": "new"}, "now")
    with pytest.raises(StateError, match="moved while this evaluation ran"):
        store.commit_tick([tick()], request(), [], {"sensor:s": "x"}, "now", {"sensor:s": "old"})
    assert store.requests() == []


def test_a_request_is_claimed_by_one_process_only(tmp_path: Path) -> None:
    store = AutomationStore(StateStore(tmp_path / "state.db"))
    store.commit_tick([tick()], request(), [], {}, "now")
    assert store.mark_launching("req-1", "tok-a", 1.0)
    assert not store.mark_launching("req-1", "tok-b", 1.0)  # no longer queued
    assert not store.claim("req-1", "tok-b", 42)  # a stale token
    assert store.claim("req-1", "tok-a", os.getpid())
    assert not store.claim("req-1", "tok-a", 43)  # claimed already
    got = store.request("req-1")
    assert got is not None and got.status is RequestStatus.RUNNING and got.pid == os.getpid()


def test_the_sweep_fails_a_dead_run_queues_it_once_more_and_requeues_lost_launches(
    tmp_path: Path,
) -> None:
    store = AutomationStore(StateStore(tmp_path / "state.db"))
    state = store.store
    store.commit_tick([tick()], request(), [], {}, "now")
    store.add_request(request("req-2"))
    assert store.mark_launching("req-1", "t", 0.0)
    dead = 2**22 + 12345  # no such process
    assert store.claim("req-1", "t", dead)
    assert store.mark_launching("req-2", "u", 0.0)  # launched long ago, never claimed
    lines = sweep(store, state, 1000.0)
    assert any("died" in line for line in lines)
    assert store.request("req-1").status is RequestStatus.FAILED  # type: ignore[union-attr]
    assert store.request("req-2").status is RequestStatus.QUEUED  # type: ignore[union-attr]
    retries = [r for r in store.requests() if r.attempt == 2]
    assert len(retries) == 1 and retries[0].spec == {"select": ["raw.a"]}


# --------------------------------------------------------------------------- declarations


def settings_with(tmp_path: Path, toml: str) -> object:
    (tmp_path / "dbt_project.yml").write_text("name: t\nprofile: t\n")
    (tmp_path / "pyproject.toml").write_text("[tool.sqlorch]\n" + toml)
    return load_settings(project_dir=tmp_path, env={})


def resolve(select: tuple[str, ...], exclude: tuple[str, ...]) -> frozenset[str]:
    keys = {k for k in GRAPH.assets if any(s in k for s in select)}
    if not keys:
        raise SelectionError(f"The selection {' '.join(select)!r} matched no asset.")
    return frozenset(keys)


@pytest.mark.parametrize(
    ("toml", "needles"),
    [
        (
            '[tool.sqlorch.schedules.n]\ncron = "61 * * * *"\nselect = "raw.a"\n',
            ["[tool.sqlorch.schedules.n]", "'61 * * * *' is not a valid cron expression"],
        ),
        (
            '[tool.sqlorch.schedules.n]\ncron = "0 * * * *"\ntimezone = "Mars/Olympus"\n'
            'select = "raw.a"\n',
            ["[tool.sqlorch.schedules.n]", "unknown time zone 'Mars/Olympus'"],
        ),
        (
            '[tool.sqlorch.schedules.n]\ncron = "0 * * * *"\nselect = "nothing_here"\n',
            ["[tool.sqlorch.schedules.n]", "matched no asset"],
        ),
        (
            '[tool.sqlorch.sensors.s]\npath = "landing/orders/*.csv"\nselect = "raw.a"\n',
            ["[tool.sqlorch.sensors.s]", "landing/orders", "does not exist"],
        ),
        (
            '[tool.sqlorch.automation."stg"]\neager = "yes"\n',
            ['[tool.sqlorch.automation."stg"]', "`eager` must be true or false"],
        ),
        (
            '[tool.sqlorch.schedules.n]\ncron = "0 * * * *"\nselect = "raw.a"\nevery = 1\n',
            ["unknown key(s) every"],
        ),
    ],
)
def test_bad_declarations_name_the_setting_and_file(
    tmp_path: Path, toml: str, needles: list[str]
) -> None:
    settings = settings_with(tmp_path, toml)
    with pytest.raises(ConfigError) as err:
        read_spec(settings, GRAPH, resolve)  # type: ignore[arg-type]
    for needle in needles:
        assert needle in err.value.message
    assert "pyproject.toml" in err.value.message
    assert err.value.exit_code == 2


def test_a_dbt_models_meta_declares_its_automation(tmp_path: Path) -> None:
    graph = AssetGraph(
        [
            AssetNode(key="raw.a", kind=AssetKind.PYTHON, name="a"),
            AssetNode(
                key="stg.b",
                kind=AssetKind.MODEL,
                name="b",
                deps=("raw.a",),
                file="models/b.sql",
                metadata={
                    "sqlorch": {"automation": {"on_cron": "0 * * * *", "timezone": "Nowhere"}}
                },
            ),
        ]
    )
    settings = settings_with(tmp_path, "")
    with pytest.raises(ConfigError, match=r"asset stg.b \(models/b.sql\).*unknown time zone"):
        read_spec(settings, graph, resolve)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- @sensor


def test_a_raising_sensor_is_a_failed_tick_naming_its_line_and_keeps_its_cursor() -> None:
    @sensor(select="raw.a", interval="10s")
    def flaky(context: object) -> None:
        raise RuntimeError("the API is down")

    fs = FunctionSensor(flaky, frozenset({"raw.a"}), 10.0, "@sensor flaky")
    out = call_sensor(fs, "cursor-1", NOW, GRAPH, lambda s: frozenset({"raw.a"}))
    assert out.error is not None
    assert "RuntimeError: the API is down" in out.error
    assert f"{__file__}:" in out.error
    ev = evaluate(_spec(fs), Facts(GRAPH, {"raw.a": AssetFacts()}), NOW, [out])
    assert ev.spec is None
    assert ev.decisions[0].status is TickStatus.FAILED
    assert "sensor:flaky" not in ev.cursors  # the cursor stays: retried next interval
    assert (out.next_wake - NOW).total_seconds() == 10  # type: ignore[operator]


def test_a_sensors_run_key_runs_once_and_its_cursor_moves_with_it() -> None:
    @sensor(select="raw.a")
    def orders(context: object) -> SensorResult:
        return SensorResult((RunRequest(run_key="batch-7"),), cursor="7")

    fs = FunctionSensor(orders, frozenset({"raw.a"}), 30.0, "@sensor orders")
    out = call_sensor(fs, None, NOW, GRAPH, lambda s: frozenset({"raw.a"}))
    first = evaluate(_spec(fs), Facts(GRAPH, {}), NOW, [out])
    assert first.run_keys == (("sensor:orders", "batch-7"),)
    assert first.cursors == {"sensor:orders": "7"}
    assert first.spec is not None and first.spec.full == ("raw.a",)  # rebuilt: new data
    used = Facts(GRAPH, {}, used_run_keys=lambda s, keys: set(keys))
    second = evaluate(_spec(fs), used, NOW, [out])
    assert second.spec is None
    assert "already ran" in second.decisions[0].reasons[0]


def _spec(fs: FunctionSensor) -> object:
    from sqlorch.automation.definitions import AutomationSpec

    return AutomationSpec(function_sensors=(fs,))
