"""Partition arithmetic: windows, keys, range sets, the ledger's segments, mappings, planning."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sqlorch.core.graph import AssetGraph, AssetKind, AssetNode
from sqlorch.core.partitions.definitions import daily, hourly, monthly, multi, static, weekly
from sqlorch.core.partitions.mappings import (
    all_partitions,
    downstream_of,
    same,
    upstream_of,
    window,
)
from sqlorch.core.partitions.ranges import PartitionSet, intersect, normalize, subtract
from sqlorch.core.partitions.segments import (
    Segment,
    SegmentStatus,
    erase,
    record,
    status_set,
    to_segments,
    to_stored,
)
from sqlorch.core.plan.definition import ReasonKind
from sqlorch.core.plan.partitions import Upstream, plan_asset, plan_graph
from sqlorch.errors import PartitionError
from sqlorch.warehouse.sql import filter_sql

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def ps(*ranges: tuple[int, int]) -> PartitionSet:
    return PartitionSet({(): tuple(ranges)})


# -- windows and keys -------------------------------------------------------------------------


def test_daily_keys_count_only_complete_windows() -> None:
    d = daily("2013-01-01")
    assert d.count(datetime(2013, 1, 1, tzinfo=UTC)) == 0
    assert d.count(datetime(2013, 1, 1, 23, 59, tzinfo=UTC)) == 0
    assert d.count(datetime(2013, 1, 2, tzinfo=UTC)) == 1
    assert d.count(datetime(2013, 1, 3, 12, tzinfo=UTC)) == 2
    assert d.key((), 0) == "2013-01-01" and d.key((), 364) == "2013-12-31"


def test_end_bounds_a_finite_data_set() -> None:
    d = daily("2013-01-01", end="2014-01-01")
    assert d.count(NOW) == 365
    assert monthly("2013-01", end="2014-01").count(NOW) == 12


def test_hourly_five_years_is_about_44000_partitions() -> None:
    h = hourly("2021-01-01T00:00")
    n = h.count(NOW)
    assert n == 43824
    assert h.key((), n - 1) == "2025-12-31T23:00"
    assert h.split_key("2025-12-31T23:00") == ((), n - 1)


def test_weekly_weeks_start_on_the_start_weekday() -> None:
    w = weekly("2013-01-07")  # a Monday
    assert w.key((), 1) == "2013-01-14"
    with pytest.raises(PartitionError, match="not the start of a weekly partition"):
        w.split_key("2013-01-08")


def test_daily_in_a_time_zone_has_local_midnights_across_dst() -> None:
    d = daily("2013-03-09", timezone="America/New_York")
    t = d.time
    assert t is not None
    # 2013-03-10 is 23 hours long in New York
    assert t.window_end(1).astimezone(UTC) - t.window_start(1).astimezone(UTC) == timedelta(
        hours=23
    )
    assert t.window_start(1).hour == 0


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("2013-13-01", "is not a date"),
        ("yesterday", "is not a date"),
        ("2013-01-01|JFK", "has 2 part"),
    ],
)
def test_bad_keys_are_clear_errors(key: str, message: str) -> None:
    with pytest.raises(PartitionError, match=message):
        daily("2013-01-01").split_key(key)


def test_static_and_multi_keys() -> None:
    s = static(["JFK", "LGA", "EWR"], column="origin")
    assert s.split_key("LGA") == ((), 1)
    with pytest.raises(PartitionError, match="Unknown partition key 'BOS'"):
        s.split_key("BOS")
    m = multi(daily("2013-01-01", column="d"), static(["JFK", "LGA"], column="origin"))
    assert m.key(("LGA",), 2) == "2013-01-03|LGA"
    assert m.split_key("2013-01-03|LGA") == (("LGA",), 2)
    assert len(m.expected(datetime(2013, 1, 4, tzinfo=UTC))) == 6
    with pytest.raises(PartitionError, match="own `column=`"):
        multi(daily("2013-01-01"), static(["a"]))


def test_select_by_dates_keys_and_errors() -> None:
    d = daily("2013-01-01", end="2014-01-01", column="day")
    assert d.select(NOW, "2013-03-01", "2013-03-31").parts == {(): ((59, 89),)}
    assert len(d.select(NOW, keys=["2013-02-01", "2013-02-02"])) == 2
    with pytest.raises(PartitionError, match="outside this asset's partitions"):
        d.select(NOW, "2015-01-01", "2015-02-01")
    with pytest.raises(PartitionError, match="is not a date"):
        d.select(NOW, "2013-02-30", None)
    with pytest.raises(PartitionError, match="--from is after --to"):
        d.select(NOW, "2013-03-01", "2013-02-01")
    m = monthly("2013-01", end="2014-01")
    assert m.select(NOW, "2013-03-15", "2013-04-02").parts == {(): ((2, 3),)}


def test_filter_sql_bounds_the_window_and_the_static_keys() -> None:
    m = multi(daily("2013-01-01", column="day"), static(["JFK", "LGA"], column="origin"))
    sql, params = filter_sql(m, ("JFK",), 2, 4)
    assert '"day" >= ?' in sql and '"origin" = ?' in sql
    assert params == [datetime(2013, 1, 3), datetime(2013, 1, 6), "JFK"]


# -- range sets: properties -------------------------------------------------------------------

ranges = st.lists(
    st.tuples(st.integers(0, 200), st.integers(0, 30)).map(lambda t: (t[0], t[0] + t[1])),
    max_size=12,
)


def members(rs: tuple[tuple[int, int], ...] | list[tuple[int, int]]) -> set[int]:
    return {i for lo, hi in rs for i in range(lo, hi + 1)}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ranges, ranges)
def test_set_algebra_matches_python_sets(
    a: list[tuple[int, int]], b: list[tuple[int, int]]
) -> None:
    na, nb = normalize(a), normalize(b)
    assert members(na) == members(a)
    # normalized: sorted, disjoint, not adjacent
    assert all(x[1] + 1 < y[0] for x, y in zip(na, na[1:], strict=False))
    assert members(subtract(na, nb)) == members(a) - members(b)
    assert members(intersect(na, nb)) == members(a) & members(b)
    assert len(ps(*a) | ps(*b)) == len(members(a) | members(b))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, 100), st.integers(0, 20), st.booleans()), max_size=30))
def test_ledger_records_the_latest_status_of_every_partition(
    writes: list[tuple[int, int, bool]],
) -> None:
    segs: list[Segment] = []
    truth: dict[int, SegmentStatus] = {}
    for n, (lo, length, ok) in enumerate(writes):
        status = SegmentStatus.DONE if ok else SegmentStatus.FAILED
        segs = record(segs, Segment((), lo, lo + length, status, f"run{n % 3}", f"t{n:04d}"))
        for i in range(lo, lo + length + 1):
            truth[i] = status
    for status in SegmentStatus:
        assert members(status_set(segs, status).parts.get((), ())) == {
            i for i, s in truth.items() if s is status
        }
    # segments never overlap
    covered = [i for s in segs for i in range(s.lo, s.hi + 1)]
    assert len(covered) == len(set(covered))


def test_one_run_over_44000_hours_is_one_segment() -> None:
    segs: list[Segment] = []
    for lo in range(0, 44000, 1000):
        segs = record(segs, Segment((), lo, lo + 999, SegmentStatus.DONE, "r1", f"t{lo:06d}"))
    assert len(segs) == 1 and (segs[0].lo, segs[0].hi) == (0, 43999)
    h = hourly("2021-01-01T00:00")
    assert to_segments(h, to_stored(h, segs)) == segs


def test_erase_forgets_a_range() -> None:
    segs = [Segment((), 0, 99, SegmentStatus.DONE, "r", "t")]
    left = erase(segs, ps((10, 19)))
    assert [(s.lo, s.hi) for s in left] == [(0, 9), (20, 99)]


# -- mappings ---------------------------------------------------------------------------------


def test_monthly_from_daily_and_daily_from_monthly() -> None:
    d = daily("2013-01-01", end="2014-01-01")
    m = monthly("2013-01", end="2014-01")
    # March reads every day of March
    assert upstream_of(m, d, same(), ps((2, 2)), NOW).parts == {(): ((59, 89),)}
    # Feb 28 .. Mar 2 are read by February and March
    assert downstream_of(m, d, same(), ps((58, 60)), NOW).parts == {(): ((1, 2),)}
    # a day reads its month
    assert upstream_of(d, m, same(), ps((59, 59)), NOW).parts == {(): ((2, 2),)}


def test_window_offset_and_lookback() -> None:
    d = daily("2013-01-01", end="2014-01-01")
    assert upstream_of(d, d, window(offset=-1), ps((5, 9)), NOW).parts == {(): ((4, 8),)}
    assert upstream_of(d, d, window(lookback=6), ps((10, 10)), NOW).parts == {(): ((4, 10),)}
    assert downstream_of(d, d, window(lookback=6), ps((10, 10)), NOW).parts == {(): ((10, 16),)}
    # nothing before the first partition
    assert upstream_of(d, d, window(offset=-1), ps((0, 0)), NOW).parts == {}


def test_static_by_key_and_all_partitions() -> None:
    a = static(["x", "y", "z"], column="k")
    b = static(["y", "z", "w"], column="k")
    assert upstream_of(b, a, same(), ps((0, 0)), NOW).parts == {(): ((1, 1),)}
    d = daily("2013-01-01", end="2013-02-01")
    assert len(upstream_of(b, d, all_partitions(), ps((0, 0)), NOW)) == 31


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 364), st.integers(0, 30))
def test_mappings_are_consistent_both_ways(lo: int, length: int) -> None:
    d = daily("2013-01-01", end="2014-01-01")
    m = monthly("2013-01", end="2014-01")
    hi = min(364, lo + length)
    days = ps((lo, hi))
    months = downstream_of(m, d, same(), days, NOW)
    # every month that reads one of the days reads it back
    assert days.parts[()][0][0] >= upstream_of(m, d, same(), months, NOW).parts[()][0][0]
    assert (upstream_of(m, d, same(), months, NOW) & days) == days


# -- planning ---------------------------------------------------------------------------------


def seg(lo: int, hi: int, at: str, run: str = "r1", ok: bool = True) -> Segment:
    status = SegmentStatus.DONE if ok else SegmentStatus.FAILED
    return Segment((), lo, hi, status, run, at, "v1")


def test_catch_up_after_a_week_down_runs_exactly_the_missing_days() -> None:
    d = daily("2024-01-01")
    done = [seg(0, 29, "2024-01-31T01:00:00Z")]
    later = datetime(2024, 2, 7, 3, tzinfo=UTC)  # the job was down for a week
    plan = plan_asset(d, done, [], later, "v1")
    assert plan.to_run.parts == {(): ((30, 36),)}
    assert plan.reasons(d)[0].startswith("missing: 2024-01-31..2024-02-06")


def test_failed_stale_and_code_changed_partitions() -> None:
    d = daily("2024-01-01", end="2024-01-11")
    segs = [
        seg(0, 4, "t2"),
        seg(5, 5, "t2", ok=False),
        Segment((), 6, 9, SegmentStatus.DONE, "r0", "t1", "v0"),
    ]
    up = [Upstream("raw.x", d, same(), (seg(2, 3, "t3", run="r2"),))]
    plan = plan_asset(d, segs, up, NOW, "v1")
    assert plan.failed.parts == {(): ((5, 5),)}
    assert plan.stale.parts == {(): ((2, 3),)}
    assert plan.code_changed.parts == {(): ((6, 9),)}
    assert not plan.missing
    assert [r.kind for r in plan.reasons(d)] == [
        ReasonKind.PARTITIONS_FAILED,
        ReasonKind.PARTITIONS_UPSTREAM_NEWER,
        ReasonKind.PARTITIONS_CODE_CHANGED,
    ]


def test_plan_graph_propagates_through_views_and_to_coarser_assets() -> None:
    d = daily("2024-01-01", end="2024-03-01", column="day")
    m = monthly("2024-01", end="2024-03", column="month")
    graph = AssetGraph(
        [
            AssetNode("raw.ev", AssetKind.PYTHON, "ev", partitions=d, code_version="v1"),
            AssetNode("stg.ev", AssetKind.MODEL, "ev", deps=("raw.ev",), materialized="view"),
            AssetNode(
                "marts.m", AssetKind.MODEL, "m", deps=("stg.ev",), partitions=m, code_version="v1"
            ),
        ]
    )
    ledgers = {
        "raw.ev": [seg(0, 59, "t1")],
        "marts.m": [Segment((), 0, 1, SegmentStatus.DONE, "r1", "t2", "v1")],
    }
    assert plan_graph(graph, list(graph.assets), ledgers, NOW)["marts.m"].parts == PartitionSet()
    forced = {"raw.ev": ps((40, 45))}
    out = plan_graph(graph, list(graph.assets), ledgers, NOW, forced=forced)
    assert out["raw.ev"].parts == ps((40, 45))
    assert out["marts.m"].parts == ps((1, 1))  # February reads Feb 10..15
    # a newer upstream write makes the month stale
    ledgers["raw.ev"] = [seg(0, 59, "t1"), seg(10, 10, "t3", run="r3")]
    assert plan_graph(graph, list(graph.assets), ledgers, NOW)["marts.m"].parts == ps((0, 0))


# -- what a partition run hands to dbt and to Python ------------------------------------------


def test_dbt_window_args_for_meta_models_microbatch_and_static_keys() -> None:
    import json

    from sqlorch.execute.chunks import Chunk, context_of, dbt_window_args

    node = AssetNode("m.d", AssetKind.MODEL, "d", partitions=daily("2013-01-01"))
    args = dbt_window_args(node, Chunk((), 59, 89))
    assert args[0] == "--vars"
    assert json.loads(args[1]) == {"start_date": "2013-03-01", "end_date": "2013-04-01"}
    hourly_node = AssetNode("m.h", AssetKind.MODEL, "h", partitions=hourly("2013-01-01T00:00"))
    assert json.loads(dbt_window_args(hourly_node, Chunk((), 5, 6))[1]) == {
        "start_date": "2013-01-01 05:00:00",
        "end_date": "2013-01-01 07:00:00",
    }
    mb = AssetNode(
        "m.mb",
        AssetKind.MODEL,
        "mb",
        partitions=daily("2013-01-01", timezone="America/New_York"),
        metadata={"sqlorch_microbatch": True},
    )
    # microbatch windows are UTC
    assert dbt_window_args(mb, Chunk((), 0, 1)) == [
        "--event-time-start",
        "2013-01-01T05:00:00",
        "--event-time-end",
        "2013-01-03T05:00:00",
    ]
    both = multi(daily("2013-01-01", column="day"), static(["JFK", "LGA"], column="origin"))
    st_node = AssetNode("m.s", AssetKind.MODEL, "s", partitions=both)
    assert json.loads(dbt_window_args(st_node, Chunk(("LGA",), 0, 0))[1]) == {
        "start_date": "2013-01-01",
        "end_date": "2013-01-02",
        "partition_origin": "LGA",
    }
    ctx = context_of(both, Chunk(("LGA",), 1, 2))
    assert ctx.key == "2013-01-02|LGA" and ctx.keys == ("2013-01-02|LGA", "2013-01-03|LGA")
    assert ctx.values == {"origin": "LGA"} and ctx.is_range
    assert ctx.start == datetime(2013, 1, 2, tzinfo=UTC)
    assert ctx.end == datetime(2013, 1, 4, tzinfo=UTC)
