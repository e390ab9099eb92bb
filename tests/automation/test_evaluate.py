"""The pure evaluation, with the clock passed in: schedules, conditions, sensors, one run."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from sqlorch.automation.cron import parse_cron
from sqlorch.automation.definitions import (
    AssetConditions,
    AutomationSpec,
    CatchUp,
    FolderSensor,
    Schedule,
)
from sqlorch.automation.evaluate import (
    AssetFacts,
    Facts,
    TickStatus,
    evaluate,
    iso,
)
from sqlorch.automation.sensors import folder_outcome
from sqlorch.core.graph import AssetGraph, AssetKind, AssetNode
from sqlorch.core.plan.definition import Reason, ReasonKind

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def graph(
    edges: dict[str, tuple[str, ...]], partitioned: frozenset[str] = frozenset()
) -> AssetGraph:
    return AssetGraph(
        AssetNode(key=k, kind=AssetKind.MODEL, name=k.split(".")[1], deps=deps)
        for k, deps in edges.items()
    )


CHAIN = graph({"raw.a": (), "stg.b": ("raw.a",), "marts.c": ("stg.b",), "marts.d": ("marts.c",)})


def stale(kind: ReasonKind, text: str = "x") -> tuple[Reason, ...]:
    return (Reason(text, kind),)


def facts(g: AssetGraph = CHAIN, **kw: object) -> Facts:
    assets = kw.pop("assets", {})
    base = {
        k: AssetFacts(materialized_at=T0 - timedelta(hours=1), duration_s=1.0) for k in g.assets
    }
    base.update(assets)  # type: ignore[arg-type]
    return Facts(graph=g, assets=base, **kw)  # type: ignore[arg-type]


def schedule(cron: str = "30 5 * * *", tz: str = "UTC", **kw: object) -> Schedule:
    return Schedule(
        name="nightly",
        cron=parse_cron(cron, tz, "test"),
        select=("+marts.c",),
        exclude=(),
        keys=frozenset({"raw.a", "stg.b", "marts.c"}),
        **kw,  # type: ignore[arg-type]
    )


# --------------------------------------------------------------------------- cron and DST


def test_a_0130_job_fires_once_on_the_fall_back_day() -> None:
    # America/New_York falls back on 2026-11-01 at 02:00 -> 01:00: 01:30 happens twice
    cron = parse_cron("30 1 * * *", "America/New_York", "test")
    start = datetime(2026, 10, 31, 12, 0, tzinfo=ZoneInfo("America/New_York"))
    end = datetime(2026, 11, 2, 12, 0, tzinfo=ZoneInfo("America/New_York"))
    ticks = cron.between(start, end)
    local = [t.astimezone(ZoneInfo("America/New_York")).strftime("%m-%d %H:%M") for t in ticks]
    assert local == ["11-01 01:30", "11-02 01:30"]


def test_croniter_fires_twice_where_cronsim_fires_once() -> None:
    """The measurement behind choosing cronsim (croniter is only installed to compare)."""
    croniter = pytest.importorskip("croniter").croniter
    start = datetime(2026, 10, 31, 12, 0, tzinfo=ZoneInfo("America/New_York"))
    it = croniter("30 1 * * *", start)
    fired = [it.get_next(datetime) for _ in range(3)]
    assert [f.strftime("%m-%d %H:%M") for f in fired][:2] == ["11-01 01:30", "11-01 01:30"]


def test_spring_forward_runs_the_skipped_time_once() -> None:
    cron = parse_cron("30 2 * * *", "America/New_York", "test")
    start = datetime(2026, 3, 7, 12, 0, tzinfo=UTC)
    ticks = cron.between(start, start + timedelta(days=2))
    assert len(ticks) == 2


# --------------------------------------------------------------------------- schedules


def test_a_new_schedule_starts_now_then_fires_at_its_tick_once() -> None:
    spec = AutomationSpec(schedules=(schedule(),))
    first = evaluate(spec, facts(), T0)
    assert first.spec is None
    assert [d.status for d in first.decisions] == [TickStatus.SKIPPED]
    assert "first tick 2026-03-03T05:30:00Z" in first.decisions[0].reasons[0]
    cursor = first.cursors["schedule:nightly"]

    later = T0 + timedelta(hours=18)  # 06:00 next day
    second = evaluate(spec, facts(cursors={"schedule:nightly": cursor}), later)
    assert second.spec is not None
    assert set(second.spec.select) == {"raw.a", "stg.b", "marts.c"}
    assert second.run_keys == (("schedule:nightly", "2026-03-03T05:30:00Z"),)
    assert second.cursors["schedule:nightly"] == "2026-03-03T05:30:00Z"
    # the same tick again (the cursor was not moved, e.g. a crash before commit) -> run key used
    used = {("schedule:nightly", "2026-03-03T05:30:00Z")}
    again = evaluate(
        spec,
        facts(
            cursors={"schedule:nightly": cursor},
            used_run_keys=lambda s, keys: {k for k in keys if (s, k) in used},
        ),
        later,
    )
    assert again.spec is None
    assert "already ran" in again.decisions[0].reasons[0]


def test_catch_up_latest_runs_one_tick_and_says_what_it_skipped() -> None:
    spec = AutomationSpec(schedules=(schedule(),))
    week_later = T0 + timedelta(days=7)
    ev = evaluate(spec, facts(cursors={"schedule:nightly": iso(T0)}), week_later)
    assert len(ev.run_keys) == 1
    assert ev.run_keys[0][1] == "2026-03-09T05:30:00Z"
    assert "older missed ticks not run: catch_up=latest" in ev.decisions[-1].reasons[0]


def test_catch_up_all_records_each_tick_up_to_the_cap_in_one_run() -> None:
    spec = AutomationSpec(schedules=(schedule(catch_up=CatchUp.ALL, max_catch_up=3),))
    ev = evaluate(spec, facts(cursors={"schedule:nightly": iso(T0)}), T0 + timedelta(days=7))
    assert [k for _, k in ev.run_keys] == [
        "2026-03-07T05:30:00Z",
        "2026-03-08T05:30:00Z",
        "2026-03-09T05:30:00Z",
    ]
    assert ev.spec is not None  # one run for all of them
    assert ev.cursors["schedule:nightly"] == "2026-03-09T05:30:00Z"


def test_a_paused_schedule_requests_nothing() -> None:
    spec = AutomationSpec(schedules=(schedule(),))
    ev = evaluate(
        spec,
        facts(cursors={"schedule:nightly": iso(T0)}, paused=frozenset({"schedule:nightly"})),
        T0 + timedelta(days=1),
    )
    assert ev.spec is None and ev.decisions[0].reasons == ("paused",)


# --------------------------------------------------------------------------- declarative


def eager(*keys: str) -> dict[str, AssetConditions]:
    return {k: AssetConditions(k, eager=True) for k in keys}


def test_an_eager_chain_is_one_run_over_the_stale_set() -> None:
    spec = AutomationSpec(assets=eager("raw.a", "stg.b", "marts.c", "marts.d"))
    f = facts(assets={"raw.a": AssetFacts(stale=stale(ReasonKind.CODE_CHANGED, "code changed"))})
    ev = evaluate(spec, f, T0)
    assert ev.spec is not None
    assert ev.spec.select == ("raw.a", "stg.b", "marts.c", "marts.d")  # dependency order
    assert len(ev.requested) == 4
    reasons = {d.source: d.reasons[0] for d in ev.requested}
    assert reasons["asset:raw.a"] == "eager: code changed"
    assert reasons["asset:stg.b"] == "eager: upstream raw.a is built in this run"


def test_eager_does_not_loop_on_a_failure_and_waits_for_unautomated_upstreams() -> None:
    spec = AutomationSpec(assets=eager("stg.b", "marts.c"))
    f = facts(
        assets={
            "raw.a": AssetFacts(stale=stale(ReasonKind.CODE_CHANGED)),
            "stg.b": AssetFacts(stale=stale(ReasonKind.UPSTREAM_STALE, "upstream raw.a is stale")),
            "marts.c": AssetFacts(stale=stale(ReasonKind.LAST_ATTEMPT_FAILED)),
        }
    )
    ev = evaluate(spec, f, T0)
    assert ev.spec is None
    why = {d.source: d.reasons[0] for d in ev.decisions}
    assert "waiting for upstream raw.a" in why["asset:stg.b"]
    assert "last attempt failed" in why["asset:marts.c"]
    # the same skip again is not recorded twice
    last = {d.source: (str(d.status), d.reasons) for d in ev.decisions}
    again = evaluate(spec, Facts(f.graph, f.assets, last_ticks=last), T0)
    assert again.decisions == ()


def test_eager_upstream_materialized_after_it_is_requested() -> None:
    spec = AutomationSpec(assets=eager("marts.d"))
    f = facts(assets={"marts.d": AssetFacts(stale=stale(ReasonKind.UPSTREAM_NEWER, "newer"))})
    ev = evaluate(spec, f, T0)
    assert ev.spec is not None and ev.spec.select == ("marts.d",)


def test_an_asset_in_an_open_run_is_not_requested_again() -> None:
    spec = AutomationSpec(assets=eager("raw.a", "stg.b"))
    f = facts(
        assets={"raw.a": AssetFacts(stale=stale(ReasonKind.CODE_CHANGED))},
        in_flight=frozenset({"raw.a"}),
    )
    ev = evaluate(spec, f, T0)
    assert ev.spec is None


def test_on_cron_waits_for_its_upstreams_to_update_after_the_tick() -> None:
    cond = AssetConditions("marts.c", on_cron=parse_cron("0 * * * *", None, "t"))
    spec = AutomationSpec(assets={"marts.c": cond})
    first = evaluate(spec, facts(), T0 + timedelta(minutes=5))
    assert first.spec is None  # starts now
    cursor = first.cursors["asset:marts.c:on_cron"]
    assert cursor == "2026-03-02T12:00:00Z"
    at = T0 + timedelta(hours=1, minutes=5)  # tick 13:00 passed; stg.b last built 11:00
    waiting = evaluate(spec, facts(cursors={"asset:marts.c:on_cron": cursor}), at)
    assert waiting.spec is None
    assert "waiting for stg.b to update" in waiting.decisions[0].reasons[0]
    updated = {"stg.b": AssetFacts(materialized_at=T0 + timedelta(hours=1, minutes=2))}
    ready = evaluate(spec, facts(cursors={"asset:marts.c:on_cron": cursor}, assets=updated), at)
    assert ready.spec is not None and ready.spec.full == ("marts.c",)
    assert ready.cursors["asset:marts.c:on_cron"] == "2026-03-02T13:00:00Z"


def test_max_lag_requests_before_the_asset_goes_stale_and_wakes_then() -> None:
    spec = AutomationSpec(assets={"marts.c": AssetConditions("marts.c", max_lag_s=7200)})
    built = {"marts.c": AssetFacts(materialized_at=T0, duration_s=30.0)}
    early = evaluate(spec, facts(assets=built), T0 + timedelta(minutes=30))
    assert early.spec is None
    # due 2h minus max(12 min, 2 x 30 s) after the build
    assert early.next_wake == T0 + timedelta(hours=2) - timedelta(minutes=12)
    late = evaluate(spec, facts(assets=built), T0 + timedelta(hours=1, minutes=50))
    assert late.spec is not None and late.spec.full == ("marts.c",)
    assert "max_lag 2h00m" in late.requested[0].reasons[0]


def test_on_missing_requests_a_never_built_asset_only() -> None:
    spec = AutomationSpec(assets={"marts.d": AssetConditions("marts.d", on_missing=True)})
    missing = {"marts.d": AssetFacts(stale=stale(ReasonKind.NEVER_MATERIALIZED, "never"))}
    assert evaluate(spec, facts(assets=missing), T0).spec is not None
    code = {"marts.d": AssetFacts(stale=stale(ReasonKind.CODE_CHANGED))}
    assert evaluate(spec, facts(assets=code), T0).spec is None


def test_schedule_and_eager_downstream_share_one_run() -> None:
    spec = AutomationSpec(schedules=(schedule(),), assets=eager("marts.d"))
    ev = evaluate(spec, facts(cursors={"schedule:nightly": iso(T0)}), T0 + timedelta(days=1))
    assert ev.spec is not None
    assert ev.spec.select == ("raw.a", "stg.b", "marts.c", "marts.d")


# --------------------------------------------------------------------------- folder sensors


def folder(tmp_path: Path, partition: str | None = None) -> FolderSensor:
    regex = None
    if partition:
        before, after = partition.split("{key}")
        regex = re.compile(f"{re.escape(before)}(?P<key>.+?){re.escape(after)}$")
    return FolderSensor(
        name="orders",
        pattern="landing/*.csv",
        root=tmp_path,
        select=("raw.a+",),
        keys=frozenset({"raw.a", "stg.b", "marts.c", "marts.d"}),
        settle_s=5.0,
        partition=regex,
    )


def test_a_file_counts_once_it_settled_and_once_only(tmp_path: Path) -> None:
    sensor = folder(tmp_path)
    now = T0
    listing = {"landing/o1.csv": (10, now.timestamp() - 1, 1)}
    young = folder_outcome(sensor, listing, None, now, CHAIN)
    assert young.requests == ()
    assert "still changing" in (young.skip_reason or "")
    assert young.next_wake == now + timedelta(seconds=4)
    settled = folder_outcome(sensor, listing, None, now + timedelta(seconds=5), CHAIN)
    assert len(settled.requests) == 1
    request = settled.requests[0]
    assert request.files == {"raw.a": (str(tmp_path / "landing/o1.csv"),)}
    assert request.run_key == "landing/o1.csv@10:1"
    again = folder_outcome(sensor, listing, settled.cursor, now + timedelta(seconds=9), CHAIN)
    assert again.requests == ()
    # the sensor's request makes one run, the selection rebuilt, the files handed over
    spec = AutomationSpec(folder_sensors=(sensor,))
    ev = evaluate(spec, facts(), now, [settled])
    assert ev.spec is not None and set(ev.spec.full) == {"raw.a", "stg.b", "marts.c", "marts.d"}
    assert ev.spec.files == {"raw.a": (str(tmp_path / "landing/o1.csv"),)}
    assert json.loads(ev.cursors["sensor:orders"] or "{}") == {"landing/o1.csv": "10:1"}


def test_a_file_maps_to_a_partition_by_its_pattern(tmp_path: Path) -> None:
    sensor = folder(tmp_path, partition="orders_{key}.csv")
    listing = {
        "landing/orders_2013-03-01.csv": (5, T0.timestamp() - 60, 7),
        "landing/notes.csv": (5, T0.timestamp() - 60, 8),
    }
    out = folder_outcome(sensor, listing, None, T0, CHAIN)
    assert [r.partition_key for r in out.requests] == ["2013-03-01"]
    ev = evaluate(AutomationSpec(folder_sensors=(sensor,)), facts(), T0, [out])
    assert ev.spec is not None and ev.spec.backfills == ((("raw.a",), ("2013-03-01",)),)


def test_eager_waits_for_an_upstream_that_was_never_materialized() -> None:
    spec = AutomationSpec(assets=eager("stg.b"))
    f = facts(
        assets={
            "raw.a": AssetFacts(stale=stale(ReasonKind.NEVER_MATERIALIZED)),
            "stg.b": AssetFacts(stale=stale(ReasonKind.NEVER_MATERIALIZED)),
        }
    )
    ev = evaluate(spec, f, T0)
    assert ev.spec is None
    assert "waiting for upstream raw.a (never materialized)" in ev.decisions[0].reasons[0]


def test_an_eager_asset_in_an_open_run_still_follows_an_upstream_built_now() -> None:
    spec = AutomationSpec(assets=eager("raw.a", "stg.b"))
    f = facts(
        assets={"raw.a": AssetFacts(stale=stale(ReasonKind.CODE_CHANGED))},
        in_flight=frozenset({"stg.b"}),
    )
    ev = evaluate(spec, f, T0)
    assert ev.spec is not None and ev.spec.select == ("raw.a", "stg.b")
