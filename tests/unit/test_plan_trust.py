"""Pure planner cases of issue 18 (items 1 and 2), with the clock injected.

A partitioned asset whose table is missing has every partition missing whatever its ledger
says; a view between partitioned assets is looked through: re-created after its upstream
got a few partitions, it does not make the other downstream partitions stale, while its own
change still reaches every partition.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlorch.core.graph import AssetGraph, AssetKind, AssetNode
from sqlorch.core.partitions.definitions import daily
from sqlorch.core.partitions.ranges import PartitionSet
from sqlorch.core.partitions.segments import Segment, SegmentStatus
from sqlorch.core.plan.definition import ReasonKind
from sqlorch.core.plan.partitions import PlainUpstream, plan_graph
from sqlorch.core.plan.staleness import AssetRecord, StateSnapshot, table_missing

NOW = datetime(2026, 1, 1, tzinfo=UTC)
DAYS = daily("2024-01-01", end="2024-01-31", column="day")  # 30 partitions


def ps(lo: int, hi: int) -> PartitionSet:
    return PartitionSet({(): ((lo, hi),)})


def done(lo: int, hi: int, at: str, run: str) -> Segment:
    return Segment((), lo, hi, SegmentStatus.DONE, run, at, "v1")


def graph() -> AssetGraph:
    return AssetGraph(
        [
            AssetNode("raw.ev", AssetKind.PYTHON, "ev", partitions=DAYS, code_version="v1"),
            AssetNode("stg.ev", AssetKind.MODEL, "ev", deps=("raw.ev",), materialized="view"),
            AssetNode(
                "marts.f",
                AssetKind.MODEL,
                "f",
                deps=("stg.ev",),
                partitions=DAYS,
                code_version="v1",
                materialized="incremental",
            ),
        ]
    )


def test_a_missing_table_makes_every_partition_missing() -> None:
    g = graph()
    ledgers = {"raw.ev": [done(0, 29, "t1", "r1")], "marts.f": [done(0, 29, "t2", "r1")]}
    built = AssetRecord(materialized_at="t2", materialized_run="r1", rows=10)
    state = StateSnapshot({"marts.f": built, "raw.ev": built}, frozenset({"raw.ev", "stg.ev"}))
    assert table_missing(g.assets["marts.f"], state)
    assert not table_missing(g.assets["raw.ev"], state)

    assert plan_graph(g, list(g.assets), ledgers, NOW)["marts.f"].parts == PartitionSet()
    out = plan_graph(g, list(g.assets), ledgers, NOW, absent={"marts.f"})["marts.f"]
    assert out.parts == ps(0, 29)
    assert out.done == PartitionSet()
    assert out.plan is not None and out.plan.missing == ps(0, 29)
    assert out.reasons[0].kind is ReasonKind.TABLE_MISSING


def test_a_view_recreated_after_a_small_backfill_does_not_stale_the_rest() -> None:
    g = graph()
    # run r2 backfilled days 3..5 of raw.ev and their partitions of marts.f, and re-created
    # the view in between (later than every other partition of marts.f)
    ledgers = {
        "raw.ev": [done(0, 2, "t1", "r1"), done(3, 5, "t5", "r2"), done(6, 29, "t1", "r1")],
        "marts.f": [done(0, 2, "t2", "r1"), done(3, 5, "t7", "r2"), done(6, 29, "t2", "r1")],
    }
    view_rebuilt = {"stg.ev": PlainUpstream("t6", "r2", stale=False)}
    out = plan_graph(g, list(g.assets), ledgers, NOW, plain=view_rebuilt)["marts.f"]
    assert out.parts == PartitionSet(), out.reasons

    # the view's own change (code, a missing relation) still reaches every partition
    changed = {"stg.ev": PlainUpstream("t6", "r2", stale=True)}
    out = plan_graph(g, list(g.assets), ledgers, NOW, plain=changed)["marts.f"]
    assert out.parts == ps(0, 29)
    assert any(r.kind is ReasonKind.UPSTREAM_REBUILT for r in out.reasons)


def test_missing_upstream_partitions_plan_only_what_reads_them() -> None:
    g = graph()
    # a wiped week of raw.ev: planned upstream, the view is re-created, marts.f follows
    # for that week only
    ledgers = {
        "raw.ev": [done(0, 9, "t1", "r1"), done(17, 29, "t1", "r1")],
        "marts.f": [done(0, 29, "t2", "r1")],
    }
    plain = {"stg.ev": PlainUpstream("t2", "r1", stale=False)}
    out = plan_graph(g, list(g.assets), ledgers, NOW, plain=plain)
    assert out["raw.ev"].parts == ps(10, 16)
    assert out["marts.f"].parts == ps(10, 16)
